//! The end-to-end harness: finds the `homeostat` binary and the test plugins built by
//! `cargo xtask test`, runs the binary as a child process with its log captured, and
//! cleans up what it started (the child is killed when its handle drops).
//!
//! Test plugins are third-party plugins, so they may use nothing until granted: every
//! `homeostat` the harness starts with `--plugin-dir` and without `--grants` gets
//! [`test_grants`], which trusts each `.wasm` of [`test_plugins`] with every capability
//! (what a plugin may use is still only what it declares). A test about grants passes its
//! own `--grants FILE`.
//!
//! [`ssh`] simulates remote hosts: real `sshd`s in namespaces of their own.
//!
//! Waiting helpers poll what a test observes (a file's content, a log line) with a
//! generous deadline; they never assert how fast something happened (speed lives in
//! the benchmark).

pub mod ssh;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen "at once".
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `homeostat` binary built by `cargo xtask test` (or `cargo build`).
pub fn binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let bin = target.join("debug/homeostat");
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo xtask test`",
        bin.display()
    );
    bin
}

/// `homeostat` as a command, with a throwaway state directory of its own
/// (`HOMEOSTAT_TMP_PREFIX`, unless the test passes `--prefix`), so that runs in parallel
/// never share a local World.
pub fn command() -> Command {
    let mut c = Command::new(binary());
    c.env("HOMEOSTAT_TMP_PREFIX", "1");
    c
}

/// Directory of the test plugins (`hostile.wasm`, ...).
pub fn test_plugins() -> PathBuf {
    let dir = root().join("target/test-plugins");
    assert!(
        dir.is_dir(),
        "{} is missing: run the tests with `cargo xtask test`",
        dir.display()
    );
    dir
}

/// A grants file trusting every plugin in [`test_plugins`] (by file name and SHA-256)
/// with every capability; written once per test binary.
pub fn test_grants() -> PathBuf {
    static WRITTEN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    WRITTEN
        .get_or_init(|| {
            let mut text = String::from("[plugins]\n");
            let mut files: Vec<PathBuf> = std::fs::read_dir(test_plugins())
                .expect("read test plugins")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
                .collect();
            files.sort();
            for f in files {
                let name = f.file_stem().unwrap().to_string_lossy().replace('_', "-");
                text.push_str(&format!(
                    "{name} = {{ sha256 = \"{}\", capabilities = [\"fs\", \"process\", \"systemd\", \"kmsg\", \"net\", \"world\"] }}\n",
                    sha256_file(&f)
                ));
            }
            // Test binaries run at once: write aside, then rename (the content is the same).
            let path = root().join("target/test-grants.toml");
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, text).expect("write test grants");
            std::fs::rename(&tmp, &path).expect("rename test grants");
            path
        })
        .clone()
}

/// Lower-case hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        std::fs::read(path).expect("read file to hash"),
    ))
}

/// `args` plus `--grants` [`test_grants`] when they load a plugin directory and name no
/// grants file.
fn with_grants(args: &[&str]) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    if args.contains(&"--plugin-dir") && !args.contains(&"--grants") {
        v.push("--grants".into());
        v.push(test_grants().into());
    }
    v
}

/// A compiled-plugin cache shared by all tests, so each plugin is compiled once.
pub fn cache_dir() -> PathBuf {
    root().join("target/test-cache")
}

/// `homeostat ARGS` with the shared cache, run to completion.
pub fn homeostat(args: &[&str]) -> Output {
    homeostat_in(&std::env::current_dir().expect("current dir"), args)
}

/// `homeostat ARGS` run from `dir` (so relative paths in messages are relative to it).
pub fn homeostat_in(dir: &Path, args: &[&str]) -> Output {
    homeostat_command(dir, args)
        .output()
        .expect("run homeostat")
}

/// The command `homeostat ARGS` from `dir` with the shared cache (and the test grants when
/// ARGS load a plugin directory), logging at `info`; set `RUST_LOG` again for more.
pub fn homeostat_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = command();
    command
        .current_dir(dir)
        .args(with_grants(args))
        .arg("--cache-dir")
        .arg(cache_dir())
        .env("RUST_LOG", "info");
    command
}

/// Run `command` to completion with its output captured, but for at most [`DEADLINE`]:
/// one still running then is killed and the test fails. For input that must be refused
/// at once (a FIFO is never waited on), so that a regression fails instead of hanging.
pub fn output_within_deadline(mut command: Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start homeostat");
    let out = drain(child.stdout.take().expect("stdout is piped"));
    let err = drain(child.stderr.take().expect("stderr is piped"));
    let status = wait_for(|| child.try_wait().expect("try_wait"));
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "homeostat did not exit within {DEADLINE:?} (killed); stderr:\n{}",
            String::from_utf8_lossy(&err.join().unwrap_or_default())
        );
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Read `pipe` to its end on a thread of its own.
fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// `homeostat ARGS` like [`homeostat`], within [`DEADLINE`] ([`output_within_deadline`]).
pub fn homeostat_within_deadline(args: &[&str]) -> Output {
    let cwd = std::env::current_dir().expect("current dir");
    output_within_deadline(homeostat_command(&cwd, args))
}

/// Make a FIFO (named pipe) at `path`.
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in path");
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(
        r,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// `homeostat run GRAPH --converged-timeout SECONDS EXTRA...`, run to completion.
pub fn run_converged(graph: &Path, seconds: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        graph.to_str().expect("UTF-8 graph path"),
        "--converged-timeout",
        seconds,
    ];
    args.extend_from_slice(extra);
    homeostat(&args)
}

/// Write `text` to `dir/name` and return the path.
pub fn write_graph(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write graph");
    p
}

/// A running `homeostat run`, killed when dropped.
pub struct Running {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Start `homeostat run GRAPH EXTRA...` with the shared cache.
    pub fn start(graph: &Path, extra: &[&str]) -> Running {
        Running::start_env(graph, extra, &[])
    }

    /// [`Running::start`] with extra environment variables (e.g. a user manager's bus).
    pub fn start_env(graph: &Path, extra: &[&str], env: &[(String, String)]) -> Running {
        let mut child = command()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("run")
            .arg(graph)
            .args(with_grants(extra))
            .arg("--cache-dir")
            .arg(cache_dir())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start homeostat run");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
                sink.lock().expect("log lock").push(line);
            }
        });
        Running { child, log }
    }

    /// Everything logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Wait until a log line contains every one of `needles`; returns that line.
    pub fn wait_log(&self, needles: &[&str]) -> String {
        let found = wait_for(|| {
            self.log()
                .into_iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
        });
        found.unwrap_or_else(|| {
            panic!(
                "no log line containing {needles:?}; log:\n{}",
                self.log().join("\n")
            )
        })
    }

    /// Number of log lines containing every one of `needles`.
    pub fn count_log(&self, needles: &[&str]) -> usize {
        self.log()
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// The process id (for /proc readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the process, in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// CPU time the process has used (user + system), from /proc/PID/stat.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14.
        let rest = &stat[stat.rfind(')').expect("comm in stat") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no memory-safety preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Wait for the process to exit on its own.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let status = wait_for(|| self.child.try_wait().expect("try_wait"));
        status.unwrap_or_else(|| panic!("homeostat did not exit; log:\n{}", self.log().join("\n")))
    }

    /// Send `signal` (e.g. `libc::SIGINT`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Send SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `f` every 10 ms until it returns `Some`, for at most [`DEADLINE`].
pub fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > DEADLINE {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Replace `path` with `content` the way editors do (temp file + rename), so a resource
/// woken by the change never reads a half-written file. Use it for drift whose repair
/// depends on the file's current content (a plain `fs::write` truncates first, and a
/// repair racing it may act on the empty file).
pub fn write_atomic(path: &Path, content: &str) {
    let tmp = path.with_extension("homeostat-test-tmp");
    std::fs::write(&tmp, content).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename over the target");
}

/// Wait until `path` holds exactly `content`.
pub fn wait_content(path: &Path, content: &str) {
    let ok =
        wait_for(|| (std::fs::read_to_string(path).ok().as_deref() == Some(content)).then_some(()));
    assert!(
        ok.is_some(),
        "{} never held {content:?}; it holds {:?}",
        path.display(),
        std::fs::read_to_string(path)
    );
}

/// Wait until `path`'s permission bits are `mode`.
pub fn wait_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let ok = wait_for(|| {
        (std::fs::symlink_metadata(path).ok()?.permissions().mode() & 0o7777 == mode).then_some(())
    });
    assert!(ok.is_some(), "{} never got mode {mode:o}", path.display());
}

/// Seconds since midnight (UTC) of a log line's timestamp
/// (`2026-11-24T17:43:23.026190Z  INFO ...`), to compare when two lines were written.
pub fn log_time(line: &str) -> f64 {
    let time = line
        .split_once('T')
        .and_then(|(_, rest)| rest.split_once('Z'))
        .map(|(t, _)| t)
        .unwrap_or_else(|| panic!("no timestamp in log line {line:?}"));
    let mut parts = time
        .split(':')
        .map(|p| p.parse::<f64>().expect("a time field"));
    let (h, m, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    h * 3600.0 + m * 60.0 + s
}

/// Text of stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether process `pid` is running (exists and is not a zombie).
pub fn process_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// A `systemd --user` service manager of the test's own, with its own runtime directory
/// (hence its own session bus) and its own unit directory (`XDG_CONFIG_HOME`), stopped
/// (SIGTERM, which stops its units) when dropped. homeostat reaches it through
/// [`UserManager::env`].
///
/// Only one runs at a time in a test process. Where the managers cannot make cgroups of
/// their own (a container whose PID 1 is not systemd, like these machines), every manager
/// names its units' cgroups from the same root: two managers' `dbus.service` share
/// `/session.slice/dbus.service`, and `KillMode=control-group` makes stopping one kill
/// the other's bus daemon, then wait out its stop timeout for processes it does not own.
/// Run side by side, the svc tests failed now and then (a bus that went away mid-test)
/// and took 10 s longer in a third of the runs.
pub struct UserManager {
    child: Child,
    dir: tempfile::TempDir,
    /// Held until after the manager has exited (fields drop after [`Drop::drop`]).
    _alone: MutexGuard<'static, ()>,
}

impl UserManager {
    /// Start one, or `None` (with a message) where `systemd` is not installed.
    pub fn start() -> Option<UserManager> {
        let systemd = ["/usr/lib/systemd/systemd", "/lib/systemd/systemd"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(systemd) = systemd else {
            eprintln!("SKIP: systemd is not installed (apt-get install systemd dbus-user-session)");
            return None;
        };
        // `systemd --user` refuses to run unless the machine looks booted with systemd.
        let _ = std::fs::create_dir_all("/run/systemd/system");
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        // A test that failed while holding it poisoned it; the manager it held is gone.
        let alone = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).expect("runtime dir");
        std::fs::create_dir_all(dir.path().join("config/systemd/user")).expect("unit dir");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700))
                .expect("chmod runtime dir");
        }
        let child = Command::new(systemd)
            .arg("--user")
            .env("XDG_RUNTIME_DIR", &run)
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start systemd --user");
        let m = UserManager {
            child,
            dir,
            _alone: alone,
        };
        let ready = wait_for(|| {
            let o = m.systemctl(&["is-system-running"]);
            let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            (m.dir.path().join("run/bus").exists()
                && matches!(state.as_str(), "running" | "degraded"))
            .then_some(())
        });
        assert!(ready.is_some(), "systemd --user did not come up");
        // The manager answering `systemctl` (its private socket) does not mean the session
        // bus can reach it: its dbus-daemon is socket-activated on the first connection,
        // and the manager joins that bus only after the daemon is up. The harness waits
        // until the manager owns its name there, so a test's first call reaches it.
        let bus = wait_for(|| m.manager_on_bus().then_some(()));
        assert!(
            bus.is_some(),
            "systemd --user never joined its session bus (busctl NameHasOwner \
             org.freedesktop.systemd1 stayed false)"
        );
        Some(m)
    }

    /// Whether the session bus answers and the manager owns `org.freedesktop.systemd1` on
    /// it (`busctl` ships with systemd; without it, assume so).
    fn manager_on_bus(&self) -> bool {
        let o = Command::new("busctl")
            .args(["--user", "--timeout=2", "call", "org.freedesktop.DBus"])
            .args(["/org/freedesktop/DBus", "org.freedesktop.DBus"])
            .args(["NameHasOwner", "s", "org.freedesktop.systemd1"])
            .envs(self.env())
            .output();
        match o {
            Ok(o) => o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "b true",
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        }
    }

    /// Where its unit files go (`$XDG_CONFIG_HOME/systemd/user`).
    pub fn unit_dir(&self) -> PathBuf {
        self.dir.path().join("config/systemd/user")
    }

    /// The variables that point homeostat (or systemctl) at this manager.
    pub fn env(&self) -> Vec<(String, String)> {
        let run = self.dir.path().join("run");
        vec![
            ("XDG_RUNTIME_DIR".into(), run.display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                self.dir.path().join("config").display().to_string(),
            ),
            (
                "DBUS_SESSION_BUS_ADDRESS".into(),
                format!("unix:path={}/bus", run.display()),
            ),
        ]
    }

    /// `systemctl --user ARGS` against this manager.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        Command::new("systemctl")
            .arg("--user")
            .args(args)
            .envs(self.env())
            .output()
            .expect("run systemctl")
    }

    /// `systemctl --user is-active UNIT` (e.g. `active`, `inactive`, `failed`).
    pub fn active_state(&self, unit: &str) -> String {
        let o = self.systemctl(&["is-active", unit]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// `systemctl --user is-enabled UNIT`.
    pub fn enabled_state(&self, unit: &str) -> String {
        let o = self.systemctl(&["is-enabled", unit]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Wait until `unit`'s active state is `state`.
    pub fn wait_active(&self, unit: &str, state: &str) {
        let ok = wait_for(|| (self.active_state(unit) == state).then_some(()));
        assert!(
            ok.is_some(),
            "{unit} never became {state}; it is {}",
            self.active_state(unit)
        );
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Anything it left in its process group (its dbus-daemon, services).
        // SAFETY: as above; the group id is the child's pid.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
    }
}

/// Whether a system service manager is reachable (PID 1 is systemd, with a system bus).
pub fn system_manager_available() -> bool {
    Path::new("/run/systemd/private").exists()
        && Path::new("/run/dbus/system_bus_socket").exists()
        && std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd")
}

/// A loopback port nobody listens on (bound and released; the tests that use it start
/// at once), below Linux's ephemeral range (32768 and up): a port the kernel hands out
/// could be taken again at once as the source port of some outgoing connection (etcd
/// opens many), and a server told to listen on it would find it in use.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = 20_000 + (h.finish() % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// An exporter's graph: `/srv/motd` holding `content` (as written in a YAML double-quoted
/// string, `\\n` for a newline), exported to every host as `@@motd`.
pub fn exporter_graph(content: &str) -> String {
    format!(
        "graph: exporter\nresources:\n  file:\n  - name: \"@@motd\"\n    path: /srv/motd\n    content: \"{content}\"\n"
    )
}

/// A collector's graph: its own directory `dir`, and every exported file placed in it
/// (removed again when its export vanishes, with `purge`).
pub fn collector_graph(dir: &Path, purge: bool) -> String {
    let d = dir.display();
    format!(
        "graph: collector\nresources:\n  file:\n  - name: own\n    path: {d}/\ncollect:\n- kind: file\n  pattern: {d}/\n  purge: {purge}\n"
    )
}

/// The flags of a host `name` that joins the etcd at `seeds` as a client, with its state
/// in `state` and a lease of 2 s (short, so that the tests of a host's death are).
pub fn client_args(state: &Path, name: &str, seeds: &str) -> Vec<String> {
    [
        "--hostname",
        name,
        "--seeds",
        seeds,
        "--no-server",
        "--lease-ttl",
        "2",
        "--prefix",
        &state.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// `homeostat ca ARGS --dir DIR`, which must succeed; its standard output.
pub fn homeostat_ca(dir: &Path, args: &[&str]) -> String {
    let out = command()
        .arg("ca")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("homeostat runs");
    assert!(out.status.success(), "ca {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `http://127.0.0.1:PORT`: the URL of an etcd (or HTTP server) on a loopback port.
pub fn loopback_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Issue 24's shared-edit scenario for an editing kind `kind`: two settings in one file
/// (which also holds a line written by hand) converge, each once and without touching
/// that line, and a third added by a live swap converges while the first two keep
/// running unchanged.
/// `params(key, value)` are the YAML params of one setting (below `path`, indented four
/// spaces), `written(key, value)` the line it puts in the file; `extra`: more `run`
/// arguments (a plugin directory).
pub fn shared_edit_scenario(
    kind: &str,
    params: &dyn Fn(&str, &str) -> String,
    written: &dyn Fn(&str, &str) -> String,
    extra: &[&str],
) {
    let d = tempfile::tempdir().expect("temp dir");
    let conf = d.path().join("app.conf");
    std::fs::write(&conf, "# kept by hand\n").expect("write the file");
    let graph = |keys: &[(&str, &str)]| {
        let mut g = format!("graph: shared\nresources:\n  {kind}:\n");
        for (k, v) in keys {
            g.push_str(&format!(
                "  - name: {k}\n    path: {}\n{}",
                conf.display(),
                params(k, v)
            ));
        }
        g
    };
    let holds = |keys: &[(&str, &str)]| {
        let ok = wait_for(|| {
            let text = std::fs::read_to_string(&conf).ok()?;
            let once = |want: &str| text.lines().filter(|l| *l == want).count() == 1;
            (once("# kept by hand") && keys.iter().all(|(k, v)| once(&written(k, v)))).then_some(())
        });
        assert!(
            ok.is_some(),
            "{} never held {keys:?}; it holds {:?}",
            conf.display(),
            std::fs::read_to_string(&conf)
        );
    };
    let two = [("port", "8080"), ("host", "example.org")];
    let path = write_graph(d.path(), "g.yaml", &graph(&two));
    let r = Running::start(&path, extra);
    holds(&two);
    let three = [two[0], two[1], ("workers", "4")];
    write_atomic(&path, &graph(&three));
    r.wait_log(&["swapped in: 2 unchanged, 0 replaced, 1 added, 0 removed"]);
    holds(&three);
}

/// The third-party example plugin `line` (kind `lineinfile`), built by
/// `cargo xtask build-plugins` from `examples/third-party-plugin`.
pub fn line_wasm() -> PathBuf {
    let p = root().join("target/example-plugins/line.wasm");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo xtask test`",
        p.display()
    );
    p
}

/// A plugin directory holding a copy of `wasm`, and a grants file with the line
/// `plugin inspect --grant-line` prints for it: (owner of both, directory, grants file).
pub fn granted_dir(wasm: &Path) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().expect("temp dir");
    let plugins = d.path().join("plugins");
    std::fs::create_dir(&plugins).expect("create the plugin directory");
    let copy = plugins.join(wasm.file_name().expect("a file name"));
    std::fs::copy(wasm, &copy).expect("copy the plugin");
    let out = command()
        .args(["plugin", "inspect", "--grant-line"])
        .arg(&copy)
        .output()
        .expect("run homeostat plugin inspect");
    assert!(out.status.success(), "{}", stderr(&out));
    let grants = d.path().join("grants.toml");
    std::fs::write(
        &grants,
        format!("[plugins]\n{}", String::from_utf8_lossy(&out.stdout)),
    )
    .expect("write grants");
    (d, plugins, grants)
}

/// A process killed (and reaped) when dropped, also when the test fails.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `PROGRAM ARGS` in new namespaces (`unshare FLAGS`: `--mount`, `--net`, `--uts`), with
/// each `(source, target)` of `binds` bind-mounted first (the mount namespace is made
/// private, so nothing leaks to the machine's). `sh` and `unshare` exec: the child is
/// `PROGRAM` itself, and the namespaces go away with it.
pub fn unshared(flags: &[&str], binds: &[(&Path, &str)], program: &Path, args: &[&str]) -> Command {
    let mounts: Vec<String> = binds
        .iter()
        .map(|(from, to)| format!("mount --bind '{}' {to} && ", from.display()))
        .collect();
    let mut c = Command::new("unshare");
    c.args(flags)
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("{}exec \"$@\"", mounts.concat()))
        .arg("sh")
        .arg(program)
        .args(args)
        .env("HOMEOSTAT_TMP_PREFIX", "1");
    c
}

/// `ARGS` run in the `kind` namespace (`net`, `uts`, `mount`) of process `pid`; its
/// output.
pub fn nsenter(kind: &str, pid: u32, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!(
            "--{kind}=/proc/{pid}/ns/{}",
            if kind == "mount" { "mnt" } else { kind }
        ))
        .args(args)
        .output()
        .expect("run nsenter")
}

/// A copy of this machine's `/etc` in `dir/etc`, for a test to bind over `/etc` in a
/// mount namespace of its own.
pub fn copy_etc(dir: &Path) -> PathBuf {
    let etc = dir.join("etc");
    let ok = Command::new("cp")
        .args(["-a", "/etc"])
        .arg(&etc)
        .status()
        .expect("run cp");
    assert!(ok.success(), "copy /etc");
    etc
}

/// A local apt world for the `pkg` kind: copies of `/etc` (its apt sources only a
/// `file:` repository), dpkg's and apt's state, and empty `/var/log` and `/opt`, bound
/// over the real ones in a mount namespace ([`LocalApt::command`]); the repository holds
/// `package` at each of `versions`, each installing `/opt/PACKAGE/hello.txt`. The
/// machine's packages never change, and nothing goes to the network.
pub struct LocalApt {
    pub dir: tempfile::TempDir,
    pub package: String,
}

impl LocalApt {
    /// The copies and the repository, with the package lists read.
    pub fn new(package: &str, versions: &[&str]) -> LocalApt {
        LocalApt::with(&[(package, versions)])
    }

    /// [`LocalApt::new`] with several packages, each at its versions (the first is
    /// the one [`LocalApt::status`] and [`LocalApt::file`] are about).
    pub fn with(packages: &[(&str, &[&str])]) -> LocalApt {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display().to_string();
        let sh = |script: String| {
            let o = Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .expect("run sh");
            assert!(
                o.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        sh(format!(
            "set -e; cd {d}; cp -a /etc etc; cp -a /var/lib/dpkg dpkg; \
             rm -f etc/apt/sources.list.d/*; echo 'deb [trusted=yes] file:{d}/repo ./' > etc/apt/sources.list; \
             mkdir -p aptlib/lists/partial aptcache/archives/partial log/apt opt repo"
        ));
        for (package, versions) in packages {
            for v in *versions {
                let b = format!("b-{package}-{v}");
                sh(format!(
                    "set -e; cd {d}; mkdir -p {b}/DEBIAN {b}/opt/{package}; echo 'version {v}' > {b}/opt/{package}/hello.txt; \
                     printf 'Package: {package}\\nVersion: {v}\\nArchitecture: all\\nMaintainer: homeostat tests <t@localhost>\\nDescription: a test package\\n' > {b}/DEBIAN/control; \
                     dpkg-deb --build --root-owner-group {b} repo/{package}_{v}_all.deb >/dev/null"
                ));
            }
        }
        sh(format!(
            "set -e; cd {d}/repo; dpkg-scanpackages --multiversion . /dev/null > Packages 2>/dev/null"
        ));
        let apt = LocalApt {
            dir,
            package: packages[0].0.to_string(),
        };
        let o = apt
            .command(Path::new("apt-get"), &["-q", "update"])
            .output()
            .expect("run apt-get update");
        assert!(o.status.success(), "apt-get update: {}", stderr(&o));
        apt
    }

    /// `PROGRAM ARGS` in a mount namespace with the copies in place.
    pub fn command(&self, program: &Path, args: &[&str]) -> Command {
        let d = self.dir.path();
        let binds: Vec<(PathBuf, &str)> = [
            ("etc", "/etc"),
            ("dpkg", "/var/lib/dpkg"),
            ("aptlib", "/var/lib/apt"),
            ("aptcache", "/var/cache/apt"),
            ("log", "/var/log"),
            ("opt", "/opt"),
        ]
        .into_iter()
        .map(|(from, to)| (d.join(from), to))
        .collect();
        let binds: Vec<(&Path, &str)> = binds.iter().map(|(f, t)| (f.as_path(), *t)).collect();
        unshared(&[], &binds, program, args)
    }

    /// The package's (status, version) in the copy of dpkg's database.
    pub fn status(&self) -> Option<(String, String)> {
        self.status_of(&self.package)
    }

    /// [`LocalApt::status`] of `package`.
    pub fn status_of(&self, package: &str) -> Option<(String, String)> {
        let text = std::fs::read_to_string(self.dir.path().join("dpkg/status")).unwrap_or_default();
        text.split("\n\n").find_map(|s| {
            let f = |k: &str| {
                s.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.trim().to_string())
            };
            (f("Package:").as_deref() == Some(package)).then(|| {
                (
                    f("Status:").unwrap_or_default(),
                    f("Version:").unwrap_or_default(),
                )
            })
        })
    }

    /// Whether the package is installed.
    pub fn installed(&self) -> bool {
        self.status()
            .is_some_and(|(s, _)| s == "install ok installed")
    }

    /// The file the package installs.
    pub fn file(&self) -> PathBuf {
        self.dir
            .path()
            .join("opt")
            .join(&self.package)
            .join("hello.txt")
    }
}
