//! Misbehaving resource kinds for the sandbox tests. Each kind takes a `path` (its
//! declared footprint, written when it behaves) and misbehaves in check-apply:
//!
//! - `trap`: panics (a trap) on every check-apply;
//! - `spin`: loops forever (stopped by the CPU budget);
//! - `hog`: allocates until the memory cap stops it;
//! - `escape`: reads `target` (e.g. `/etc/shadow`), outside its footprint;
//! - `flaky`: fails with an error value until the file at `path` exists, then succeeds;
//! - `runaway`: declares the command line `/bin/true` but runs `target` (split at spaces);
//! - `unitgrab`: stops the system unit `target` although the plugin never declared the
//!   `systemd` capability;
//! - `socket`: opens a TCP connection to `target` (`127.0.0.1:PORT`) and binds a listener
//!   through WASI sockets, which no plugin is granted;
//! - `servespin`: a server (`serve` watch) that loops forever before it ever waits for
//!   events (stopped by the CPU budget of its turn);
//! - `netescape`: a server that declares UDP on `target` but binds another port, and
//!   whose check-apply tries a socket (sockets are for `serve` only);
//! - `forge`: says `target` (meant to hold newlines, fake log lines and escape sequences)
//!   every way a plugin can: a log message, a line on stderr, a change summary and a
//!   change diff;
//! - `forgefail`: fails with `target` as its error message;
//! - `loud`: says `target` bytes (a number) at once: a log message, a change summary and
//!   a sent value of that size;
//! - `stall`: loops forever in `validate` (so in start-up), after logging that it does.

use homeostat_sdk::{
    CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, fs, log, net, process, systemd,
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    path: String,
    #[serde(default)]
    target: Option<String>,
}

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {"path": {"type": "string"}, "target": {"type": "string"}},
  "required": ["path"],
  "additionalProperties": false
}"#;

fn info(p: &Params) -> Result<Info> {
    Ok(Info::new()
        .write_path(&p.path)
        .watch_path(&p.path)
        .command(&["/bin/true".to_string()]))
}

macro_rules! kind {
    ($ty:ident, $kind:literal, |$p:ident| $body:block) => {
        struct $ty;
        impl Resource for $ty {
            const KIND: &'static str = $kind;
            const SCHEMA: &'static str = SCHEMA;
            type Params = Params;
            fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
                info(p)
            }
            fn check_apply(_: &ResourceId, $p: &Params, _: &CheckApply) -> Result<Outcome> $body
        }
    };
}

kind!(Trap, "trap", |_p| {
    panic!("hostile plugin: deliberate trap")
});

kind!(Spin, "spin", |p| {
    let mut n: u64 = 0;
    loop {
        n = n.wrapping_add(1);
        if n == u64::MAX && p.path.is_empty() {
            return Ok(Outcome::new());
        }
        std::hint::black_box(n);
    }
});

kind!(Hog, "hog", |_p| {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 8 << 20]);
        std::hint::black_box(&hoard);
    }
});

kind!(Escape, "escape", |p| {
    let target = p.target.as_deref().unwrap_or("/etc/shadow");
    let data = fs::read(target)?;
    Err(Error::new(format!(
        "read {} bytes it should not have",
        data.len()
    )))
});

kind!(Flaky, "flaky", |p| {
    match fs::stat(&p.path)? {
        Some(_) => Ok(Outcome::new()),
        None => Err(Error::new(format!("{} does not exist yet", p.path))),
    }
});

kind!(Runaway, "runaway", |p| {
    let target = p.target.as_deref().unwrap_or("/bin/sh -c id");
    let argv = target.split(' ').map(str::to_string).collect();
    let out = process::run(&process::Command::new(argv), None, None)?;
    Err(Error::new(format!(
        "ran a command it should not have (exit {})",
        out.exit_code
    )))
});

kind!(Unitgrab, "unitgrab", |p| {
    let unit = p.target.as_deref().unwrap_or("ssh.service");
    systemd::stop(unit, false)?;
    Err(Error::new("stopped a unit it should not have"))
});

kind!(Socket, "socket", |p| {
    let target = p.target.as_deref().unwrap_or("127.0.0.1:9");
    if let Ok(s) = std::net::TcpStream::connect(target) {
        drop(s);
        return Err(Error::new(format!(
            "connected to {target}, which it should not have"
        )));
    }
    let connect = std::net::TcpStream::connect(target).unwrap_err();
    match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(_) => Err(Error::new("bound a listener, which it should not have")),
        Err(bind) => Err(Error::new(format!(
            "network refused: connect to {target}: {connect}; bind: {bind}"
        ))),
    }
});

/// Servers: `serve` watch, UDP on `target` (default `127.0.0.1:9`).
macro_rules! server {
    ($ty:ident, $kind:literal, check |$c:ident| $check:block, serve |$p:ident| $body:block) => {
        struct $ty;
        impl Resource for $ty {
            const KIND: &'static str = $kind;
            const SCHEMA: &'static str = SCHEMA;
            type Params = Params;
            fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
                Ok(info(p)?
                    .udp(p.target.as_deref().unwrap_or("127.0.0.1:9"))
                    .serve())
            }
            fn check_apply(_: &ResourceId, $c: &Params, _: &CheckApply) -> Result<Outcome> $check
            fn serve(_: &ResourceId, $p: &Params) -> Result<()> $body
        }
    };
}

server!(
    ServeSpin,
    "servespin",
    check | _p | { Ok(Outcome::new()) },
    serve | p | {
        let mut n: u64 = 0;
        loop {
            n = n.wrapping_add(1);
            if n == u64::MAX && p.path.is_empty() {
                return Ok(());
            }
            std::hint::black_box(n);
        }
    }
);

server!(
    NetEscape,
    "netescape",
    check | p | {
        match net::bind_udp(p.target.as_deref().unwrap_or("127.0.0.1:9")) {
            Ok(_) => Err(Error::new(
                "bound a socket in check-apply, which it should not have",
            )),
            Err(e) => {
                homeostat_sdk::log::warn(&format!("check-apply socket refused: {}", e.message));
                Ok(Outcome::new())
            }
        }
    },
    serve | p | {
        let declared = p.target.as_deref().unwrap_or("127.0.0.1:9");
        let other = match declared.rsplit_once(':') {
            Some((ip, port)) => {
                format!("{ip}:{}", port.parse::<u16>().unwrap_or(9).wrapping_add(1))
            }
            None => "127.0.0.1:10".to_string(),
        };
        net::bind_udp(&other)?;
        Err(Error::new(format!(
            "bound {other}, which it should not have"
        )))
    }
);

kind!(Forge, "forge", |p| {
    let t = p.target.as_deref().unwrap_or("");
    log::info(t);
    eprintln!("{t}");
    let mut out = Outcome::new();
    out.change_with_diff(t, format!("--- {0}\n+++ {0}\n-{t}\n+{t}\n", p.path));
    Ok(out)
});

kind!(ForgeFail, "forgefail", |p| {
    Err(Error::new(p.target.clone().unwrap_or_default()))
});

struct Loud;
impl Resource for Loud {
    const KIND: &'static str = "loud";
    const SCHEMA: &'static str = SCHEMA;
    const SENDS: &'static [(&'static str, &'static str)] = &[("blob", "string")];
    type Params = Params;
    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        info(p)
    }
    fn check_apply(_: &ResourceId, p: &Params, _: &CheckApply) -> Result<Outcome> {
        let n: usize = p.target.as_deref().unwrap_or("0").parse().unwrap_or(0);
        let big = "y".repeat(n);
        log::warn(&format!("loud log {big}"));
        let mut out = Outcome::new();
        out.change(format!("loud change {big}"));
        out.send("blob", &big);
        Ok(out)
    }
}

struct Stall;
impl Resource for Stall {
    const KIND: &'static str = "stall";
    const SCHEMA: &'static str = SCHEMA;
    type Params = Params;
    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        log::warn("stalling in validate");
        let mut n: u64 = 0;
        loop {
            n = n.wrapping_add(1);
            if n == u64::MAX && p.path.is_empty() {
                return info(p);
            }
            std::hint::black_box(n);
        }
    }
    fn check_apply(_: &ResourceId, _: &Params, _: &CheckApply) -> Result<Outcome> {
        Ok(Outcome::new())
    }
}

homeostat_sdk::export_resource!(
    Trap, Spin, Hog, Escape, Flaky, Runaway, Unitgrab, Socket, ServeSpin, NetEscape, Forge,
    ForgeFail, Loud, Stall;
    capabilities = ["fs", "process", "net"]
);
