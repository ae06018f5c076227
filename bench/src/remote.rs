//! `homeostat-bench remote` (`cargo xtask bench remote`): remote execution against real
//! OpenSSH servers, each simulated host an `sshd` in namespaces of its own (the test
//! harness's, [`homeostat_tests::ssh`]), reached over veth pairs; root only.
//!
//! 1. **Hello graph** (one file on each host) on 1, 5 and 10 hosts: **cold** (fresh
//!    hosts, the binary copied) and **warm** (the same hosts again: cache hit), wall time
//!    of the whole `homeostat run --remote ... --converged-timeout 0`, and the bytes sent
//!    to each host.
//! 2. **Depth 2** over the same 10 leaves: the initiator runs 2 hosts, each of which runs
//!    5 of the leaves (reached over links of their own), cold and warm, against the flat
//!    run of step 1.
//! 3. **Live edit**: on one running host, the time from saving its graph on the initiator
//!    to the new content on the host, p50 and p95 of 20 edits.
//! 4. **Peers** with the same work, against the same hosts: `ansible-playbook` (a `copy`
//!    task, `forks` = hosts) and `pyinfra` (`files.put`), installed with pip into a
//!    virtual environment under `target/` for the bench only; skipped with a note when
//!    pip cannot install them.
//!
//! The binary shipped is `target/dist/homeostat` (`cargo xtask dist`, which `cargo xtask
//! bench remote` runs first). Numbers are printed, nothing is asserted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use homeostat_tests::ssh::{Agent, ClientKeys, KeyKind, SshHost, skip_reason};

use crate::cluster::free_port;

struct Options {
    homeostat: PathBuf,
    ship: PathBuf,
    sizes: Vec<usize>,
    runs: usize,
    peers: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let here = std::env::current_exe().map_err(|e| e.to_string())?;
    let target = here
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find target/")?
        .to_path_buf();
    let mut o = Options {
        homeostat: here.with_file_name("homeostat"),
        ship: target.join("dist/homeostat"),
        sizes: vec![1, 5, 10],
        runs: 3,
        peers: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--homeostat" => o.homeostat = value()?.into(),
            "--ship" => o.ship = value()?.into(),
            "--hosts" => {
                o.sizes = value()?
                    .split(',')
                    .map(|n| n.parse().map_err(|_| format!("--hosts: {n}")))
                    .collect::<Result<_, _>>()?
            }
            "--runs" => o.runs = value()?.parse().map_err(|_| "--runs N")?,
            "--no-peers" => o.peers = false,
            other => return Err(format!("unknown option {other}; see the module doc")),
        }
    }
    if !o.ship.is_file() {
        return Err(format!(
            "{} is missing: run `cargo xtask dist` (or give --ship)",
            o.ship.display()
        ));
    }
    Ok(o)
}

/// One initiator: keys, known hosts, its own etcd ports.
struct Initiator {
    dir: tempfile::TempDir,
    keys: ClientKeys,
}

impl Initiator {
    fn new() -> Initiator {
        let dir = tempfile::Builder::new()
            .prefix("homeostat-bench-remote.")
            .tempdir_in("/var/tmp")
            .expect("a work directory");
        let keys = ClientKeys::new(dir.path());
        Initiator { dir, keys }
    }

    fn hosts(&self, prefix: &str, n: usize) -> Vec<SshHost> {
        (0..n)
            .map(|i| {
                let h = SshHost::start(
                    &format!("{prefix}{i}"),
                    &[self.keys.pub_line(KeyKind::Ed25519)],
                );
                self.keys.add_known_host(&h);
                h
            })
            .collect()
    }

    fn graph(&self, name: &str, url: &str, remotes: &[PathBuf]) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.yaml"));
        let remotes = if remotes.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = remotes
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            format!("remotes: [{}]\n", names.join(", "))
        };
        std::fs::write(
            &path,
            format!(
                "graph: {name}\nremote: {url}\n{remotes}resources:\n  file:\n  - name: hello\n    path: /tmp/hello\n    content: \"hello from {name}\\n\"\n"
            ),
        )
        .expect("write a graph");
        path
    }

    fn command(&self, o: &Options, graphs: &[PathBuf], extra: &[&str]) -> Command {
        let mut c = Command::new(&o.homeostat);
        c.arg("run")
            .arg("--tmp-prefix")
            .args(["--lease-ttl", "2"])
            .args([
                "--client-urls",
                &format!("http://127.0.0.1:{}", free_port()),
            ])
            .args([
                "--server-urls",
                &format!("http://127.0.0.1:{}", free_port()),
            ])
            .arg("--remote-binary")
            .arg(&o.ship)
            .args(extra)
            .env("HOME", self.keys.home())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for g in graphs {
            c.arg("--remote").arg(g);
        }
        c
    }

    /// One run to its end: wall time and the bytes the initiator sent to each host.
    fn run_once(&self, o: &Options, graphs: &[PathBuf], extra: &[&str]) -> (Duration, Vec<u64>) {
        let started = Instant::now();
        let out = self
            .command(o, graphs, extra)
            .output()
            .expect("run homeostat");
        let wall = started.elapsed();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the run failed:\n{log}");
        (wall, bytes_sent(&log))
    }
}

/// The bytes of each `(N bytes sent, ...)` line the initiator logged itself.
fn bytes_sent(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| !l.contains(" | ") && l.contains(" bytes sent, set up in"))
        .filter_map(|l| {
            let at = l.find(" bytes sent")?;
            l[..at].rsplit('(').next()?.parse().ok()
        })
        .collect()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mb(bytes: &[u64]) -> String {
    match (bytes.iter().min(), bytes.iter().max()) {
        (Some(a), Some(b)) if a == b => format!("{:.2} MB", *a as f64 / 1e6),
        (Some(a), Some(b)) => format!("{:.2}-{:.2} MB", *a as f64 / 1e6, *b as f64 / 1e6),
        _ => "?".into(),
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(why) = skip_reason() {
        return Err(format!("needs the SSH harness: {why}"));
    }
    let o = parse(args)?;
    println!(
        "remote execution: hello graph, binary shipped {:.1} MB ({}), median of {} runs",
        std::fs::metadata(&o.ship)
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(0.0),
        o.ship.display(),
        o.runs
    );
    println!("| hosts | cold | warm | bytes sent per host, cold | warm |");
    println!("|---|---|---|---|---|");
    let mut flat10 = None;
    for &n in &o.sizes {
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        let (mut cold_bytes, mut warm_bytes) = (Vec::new(), Vec::new());
        for _ in 0..o.runs {
            let init = Initiator::new();
            let hosts = init.hosts("b", n);
            let graphs: Vec<PathBuf> = hosts
                .iter()
                .enumerate()
                .map(|(i, h)| init.graph(&format!("h{i}"), &format!("ssh://root@{}", h.ip()), &[]))
                .collect();
            let extra = ["--converged-timeout", "0"];
            let (t, b) = init.run_once(&o, &graphs, &extra);
            cold.push(t);
            cold_bytes = b;
            let (t, b) = init.run_once(&o, &graphs, &extra);
            warm.push(t);
            warm_bytes = b;
        }
        let (c, w) = (median(cold), median(warm));
        if n == 10 {
            flat10 = Some((c, w));
        }
        println!(
            "| {n} | {} | {} | {} | {} |",
            secs(c),
            secs(w),
            mb(&cold_bytes),
            mb(&warm_bytes)
        );
    }
    depth_two(&o, flat10);
    live_edit(&o);
    if o.peers {
        peers(&o);
    }
    Ok(())
}

/// 2 hosts running 5 leaves each, against the flat run over 10.
fn depth_two(o: &Options, flat: Option<(Duration, Duration)>) {
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..o.runs {
        let init = Initiator::new();
        let mids = init.hosts("m", 2);
        let mut leaves = Vec::new();
        let mut mid_graphs = Vec::new();
        for (i, mid) in mids.iter().enumerate() {
            let mut children = Vec::new();
            for j in 0..5 {
                let leaf =
                    SshHost::start(&format!("l{i}{j}"), &[init.keys.pub_line(KeyKind::Ed25519)]);
                let addr = mid.link(&leaf);
                init.keys
                    .add_known_hosts_line(&format!("{addr} {}", leaf.host_key_line()));
                children.push(init.graph(&format!("l{i}{j}"), &format!("ssh://root@{addr}"), &[]));
                leaves.push(leaf);
            }
            mid_graphs.push(init.graph(
                &format!("m{i}"),
                &format!("ssh://root@{}", mid.ip()),
                &children,
            ));
        }
        let agent = Agent::start(&init.keys, init.dir.path());
        let run = |init: &Initiator| {
            let started = Instant::now();
            let out = init
                .command(o, &mid_graphs, &["--converged-timeout", "0"])
                .env("SSH_AUTH_SOCK", agent.socket())
                .output()
                .expect("run homeostat");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            started.elapsed()
        };
        cold.push(run(&init));
        warm.push(run(&init));
        drop(leaves);
    }
    let (c, w) = (median(cold), median(warm));
    match flat {
        Some((fc, fw)) => println!(
            "depth 2 (2 hosts running 5 leaves each): cold {} ({:.2}x flat 10), warm {} ({:.2}x flat 10)",
            secs(c),
            c.as_secs_f64() / fc.as_secs_f64(),
            secs(w),
            w.as_secs_f64() / fw.as_secs_f64()
        ),
        None => println!(
            "depth 2 (2 hosts running 5 leaves each): cold {}, warm {}",
            secs(c),
            secs(w)
        ),
    }
}

/// Save → new content on the host, 20 times.
fn live_edit(o: &Options) {
    let init = Initiator::new();
    let host = &init.hosts("e", 1)[0];
    let url = format!("ssh://root@{}", host.ip());
    let graph = init.graph("edit", &url, &[]);
    let mut child = init
        .command(o, std::slice::from_ref(&graph), &[])
        .spawn()
        .expect("run");
    let target = host.path(Path::new("/tmp/hello"));
    let wait = |want: &str| {
        let until = Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(&target).ok().as_deref() != Some(want) {
            assert!(Instant::now() < until, "the host never got {want:?}");
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    wait("hello from edit\n");
    let mut times = Vec::new();
    for i in 0..20 {
        let text = format!(
            "graph: edit\nremote: {url}\nresources:\n  file:\n  - name: hello\n    path: /tmp/hello\n    content: \"edit {i}\\n\"\n"
        );
        let tmp = graph.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write");
        let started = Instant::now();
        std::fs::rename(&tmp, &graph).expect("rename");
        wait(&format!("edit {i}\n"));
        times.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    times.sort();
    println!(
        "live edit, save -> new content on the host: p50 {:.0} ms, p95 {:.0} ms (20 edits)",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() * 95 / 100].as_secs_f64() * 1e3
    );
}

/// ansible-playbook and pyinfra doing the same work on the same kind of hosts.
fn peers(o: &Options) {
    let venv = o
        .homeostat
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("bench-venv"))
        .unwrap_or_else(|| PathBuf::from("/var/tmp/homeostat-bench-venv"));
    let python = venv.join("bin/python");
    if !python.exists() {
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status();
        if !made.is_ok_and(|s| s.success()) {
            println!("peers: skipped (python3 -m venv failed)");
            return;
        }
    }
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "ansible-core", "pyinfra"])
        .status();
    if !installed.is_ok_and(|s| s.success()) {
        println!("peers: skipped (pip could not install ansible-core and pyinfra)");
        return;
    }
    println!("| hosts | ansible-playbook | pyinfra |");
    println!("|---|---|---|");
    for &n in &o.sizes {
        let (mut ansible, mut pyinfra) = (Vec::new(), Vec::new());
        for _ in 0..o.runs {
            let init = Initiator::new();
            let hosts = init.hosts("p", n);
            ansible.push(run_ansible(&init, &venv, &hosts));
            pyinfra.push(run_pyinfra(&init, &venv, &hosts));
        }
        println!(
            "| {n} | {} | {} |",
            secs(median(ansible)),
            secs(median(pyinfra))
        );
    }
}

fn run_ansible(init: &Initiator, venv: &Path, hosts: &[SshHost]) -> Duration {
    let dir = init.dir.path();
    let key = init.keys.key(KeyKind::Ed25519);
    let mut inventory = String::from("[all]\n");
    for h in hosts {
        inventory.push_str(&format!("{}\n", h.ip()));
    }
    inventory.push_str(&format!(
        "[all:vars]\nansible_user=root\nansible_ssh_private_key_file={}\nansible_python_interpreter=/usr/bin/python3\n\
         ansible_ssh_common_args='-F /dev/null -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes'\n",
        key.display(),
        init.keys.known_hosts().display()
    ));
    std::fs::write(dir.join("inventory.ini"), inventory).expect("write inventory");
    std::fs::write(
        dir.join("hello.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n  - copy:\n      dest: /tmp/hello\n      content: \"hello from {{ inventory_hostname }}\\n\"\n",
    )
    .expect("write playbook");
    let started = Instant::now();
    let out = Command::new(venv.join("bin/ansible-playbook"))
        .current_dir(dir)
        .args(["-i", "inventory.ini", "hello.yml", "--forks"])
        .arg(hosts.len().to_string())
        .env("ANSIBLE_HOST_KEY_CHECKING", "True")
        .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-tmp"))
        .env("HOME", init.keys.home())
        .output()
        .expect("ansible-playbook runs");
    let t = started.elapsed();
    assert!(
        out.status.success(),
        "ansible-playbook failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    t
}

fn run_pyinfra(init: &Initiator, venv: &Path, hosts: &[SshHost]) -> Duration {
    let dir = init.dir.path();
    let key = init.keys.key(KeyKind::Ed25519);
    let names: Vec<String> = hosts.iter().map(|h| format!("\"{}\"", h.ip())).collect();
    std::fs::write(
        dir.join("inventory.py"),
        format!(
            "hosts = ([{}], {{\"ssh_user\": \"root\", \"ssh_key\": \"{}\", \"ssh_known_hosts_file\": \"{}\", \"ssh_strict_host_key_checking\": \"yes\"}})\n",
            names.join(", "),
            key.display(),
            init.keys.known_hosts().display()
        ),
    )
    .expect("write inventory");
    std::fs::write(
        dir.join("deploy.py"),
        "from io import StringIO\nfrom pyinfra import host\nfrom pyinfra.operations import files\n\
         files.put(src=StringIO(\"hello from \" + host.name + \"\\n\"), dest=\"/tmp/hello\")\n",
    )
    .expect("write deploy");
    let started = Instant::now();
    let out = Command::new(venv.join("bin/pyinfra"))
        .current_dir(dir)
        .args(["-y", "--parallel"])
        .arg(hosts.len().to_string())
        .args(["inventory.py", "deploy.py"])
        .env("HOME", init.keys.home())
        .output()
        .expect("pyinfra runs");
    let t = started.elapsed();
    assert!(
        out.status.success(),
        "pyinfra failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t
}
