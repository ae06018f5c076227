//! One supervised `etcd` server process (Debian's `etcd-server`, 3.4).
//!
//! - **Bootstrap or come back.** The data directory is `<state dir>/etcd`. The first start
//!   bootstraps a one-member cluster named after the host; a later start with the same
//!   flags finds the member's data there and comes back from it (etcd ignores the
//!   bootstrap flags then), with everything it stored. A marker file beside it
//!   (`etcd.json`) names the host that created it: a data directory that homeostat did not
//!   create, or that another host created, is refused rather than served.
//! - **Checked before it starts.** `etcd` must be on `PATH` (the error names the Debian
//!   package), and every port it is to listen on must be free (a port in use is named in
//!   the error, instead of an etcd that exits with a log line).
//! - **Supervised.** Its log (zap's JSON lines) goes into homeostat's log prefixed
//!   `etcd:`, at etcd's level (its info lines at debug). When it dies it is restarted after
//!   a backoff (0.5 s doubling to 8 s), at most [`MAX_RESTARTS`] times in a row without a
//!   minute of uptime; each death is reported, and giving up is an error in the log. An
//!   etcd that ends by itself with status 0 found its member removed from the cluster: it
//!   is not restarted, and [`EtcdServer::alive`] says so (the membership task then clears
//!   the data and volunteers again).
//! - **Stopped with homeostat.** [`EtcdServer::stop`] sends SIGTERM and waits (SIGKILL
//!   after 10 s); and should homeostat die without stopping it, the kernel sends etcd
//!   SIGTERM (`PR_SET_PDEATHSIG`), so no etcd outlives it.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::tls::Identity;

/// Restarts in a row (each less than a minute after the last) before giving up.
pub const MAX_RESTARTS: u32 = 5;

/// The Debian package that has the `etcd` server.
pub const PACKAGE: &str = "etcd-server";

/// Why etcd could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "cannot serve etcd: `etcd` is not installed (not found on PATH); install Debian's \
         `{PACKAGE}` package (apt-get install {PACKAGE}), or join a cluster with --seeds"
    )]
    NotInstalled,
    #[error("cannot serve etcd on {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot serve etcd from {}: {reason}", dir.display())]
    DataDir { dir: PathBuf, reason: String },
    #[error("etcd exited while starting ({status}){}", last_lines(.log))]
    Exited { status: String, log: Vec<String> },
    #[error("etcd did not start listening on {url} within {secs} s")]
    NotListening { url: String, secs: u64 },
    #[error("cannot start etcd: {0}")]
    Spawn(std::io::Error),
}

fn last_lines(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("; its last words:\n  {}", log.join("\n  "))
    }
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The member's name: the host's.
    pub name: String,
    /// The state directory; the data directory is `etcd/` in it.
    pub state_dir: PathBuf,
    /// URLs clients connect to (`--listen-client-urls`).
    pub client_urls: Vec<String>,
    /// URLs the other members connect to (`--listen-peer-urls`).
    pub server_urls: Vec<String>,
    /// Client URLs given to others (default: `client_urls`).
    pub advertise_client_urls: Vec<String>,
    /// Peer URLs given to others (default: `server_urls`).
    pub advertise_server_urls: Vec<String>,
    /// Join a running cluster as the member it added for this host (its
    /// `--initial-cluster`, `name=peer-url,...`) instead of bootstrapping a new one.
    /// Ignored by etcd when the data directory already holds a member.
    pub join: Option<String>,
    /// Serve clients and peers over mutual TLS with this host's certificate (its URLs
    /// are then `https://`).
    pub tls: Option<Arc<Identity>>,
}

impl ServerConfig {
    fn data_dir(&self) -> PathBuf {
        data_dir(&self.state_dir)
    }

    fn marker(&self) -> PathBuf {
        marker_path(&self.state_dir)
    }

    fn args(&self) -> Vec<String> {
        let adv_server = self.advertise_server_urls.join(",");
        let (initial, state) = match &self.join {
            Some(cluster) => (cluster.clone(), "existing"),
            None => (
                self.advertise_server_urls
                    .iter()
                    .map(|u| format!("{}={u}", self.name))
                    .collect::<Vec<_>>()
                    .join(","),
                "new",
            ),
        };
        let mut args = vec![
            format!("--name={}", self.name),
            format!("--data-dir={}", self.data_dir().display()),
            format!("--listen-client-urls={}", self.client_urls.join(",")),
            format!(
                "--advertise-client-urls={}",
                self.advertise_client_urls.join(",")
            ),
            format!("--listen-peer-urls={}", self.server_urls.join(",")),
            format!("--initial-advertise-peer-urls={adv_server}"),
            format!("--initial-cluster={initial}"),
            format!("--initial-cluster-state={state}"),
            "--initial-cluster-token=homeostat".into(),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
        ];
        if let Some(identity) = &self.tls {
            args.extend(identity.server_args());
        }
        args
    }
}

/// The socket address of an `http://host:port` (or `https://`) URL.
fn url_addr(url: &str) -> Result<SocketAddr, ServerError> {
    let bad = |reason: &str| ServerError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad("expected http://HOST:PORT or https://HOST:PORT"))?;
    let hostport = rest.trim_end_matches('/');
    if !hostport.contains(':') {
        return Err(bad("expected http(s)://HOST:PORT: the port is missing"));
    }
    hostport
        .to_socket_addrs()
        .map_err(|e| bad(&e.to_string()))?
        .next()
        .ok_or_else(|| bad("the host has no address"))
}

/// Whether `etcd` is on `PATH`.
fn find_etcd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

/// The etcd data directory in a state directory.
pub fn data_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("etcd")
}

fn marker_path(state_dir: &Path) -> PathBuf {
    state_dir.join("etcd.json")
}

/// What the marker file (`etcd.json` in the state directory) records: whose data
/// directory it is and, for elastic membership, which member the data belongs to and
/// where the cluster was last seen (a host that left the server set finds its cluster
/// again from there, rather than bootstrapping a second one).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    /// homeostat's version that created it.
    pub created_by: String,
    /// The host whose member the data is.
    pub host: String,
    /// The etcd member id (hex) the data directory holds, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The cluster's client URLs when this host last served or saw it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
}

impl Marker {
    /// A new marker for `host`'s data directory, by this version of homeostat.
    pub fn new(host: &str) -> Marker {
        Marker {
            created_by: format!("homeostat {}", env!("CARGO_PKG_VERSION")),
            host: host.to_owned(),
            ..Marker::default()
        }
    }

    /// The marker in `state_dir`, if there is one homeostat can read.
    pub fn read(state_dir: &Path) -> Option<Marker> {
        serde_json::from_slice(&std::fs::read(marker_path(state_dir)).ok()?).ok()
    }

    /// Write it to `state_dir` (atomically: a crash leaves the old one or the new one).
    pub fn write(&self, state_dir: &Path) -> std::io::Result<()> {
        let path = marker_path(state_dir);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("serialises"))?;
        std::fs::rename(tmp, path)
    }

    /// The member id it records.
    pub fn member_id(&self) -> Option<u64> {
        u64::from_str_radix(self.member.as_deref()?, 16).ok()
    }
}

/// Whether the data directory in `state_dir` holds an etcd member's data.
pub fn has_data(state_dir: &Path) -> bool {
    data_dir(state_dir).join("member").is_dir()
}

/// Remove the data directory in `state_dir` (a member that left, or whose data belongs
/// to a member the cluster removed).
pub fn wipe_data(state_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(data_dir(state_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Refuse a data directory that homeostat did not create for this host; write the marker
/// for a new one.
fn check_data_dir(cfg: &ServerConfig) -> Result<(), ServerError> {
    let dir = cfg.data_dir();
    let fail = |reason: String| ServerError::DataDir {
        dir: dir.clone(),
        reason,
    };
    let has_data = std::fs::read_dir(&dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    match std::fs::read(cfg.marker()) {
        Ok(bytes) => {
            let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| {
                fail(format!(
                    "its marker {} is not homeostat's: {e}",
                    cfg.marker().display()
                ))
            })?;
            if marker.host != cfg.name {
                return Err(fail(format!(
                    "it holds the etcd member of host `{}`, not of `{}` (run with --hostname {} \
                     or another --prefix)",
                    marker.host, cfg.name, marker.host
                )));
            }
            Ok(())
        }
        Err(_) if has_data => Err(fail(format!(
            "it holds data homeostat did not create (no {}); move it away or use another \
             --prefix",
            cfg.marker().display()
        ))),
        Err(_) => {
            std::fs::create_dir_all(&cfg.state_dir)
                .map_err(|e| fail(format!("cannot create the state directory: {e}")))?;
            Marker::new(&cfg.name)
                .write(&cfg.state_dir)
                .map_err(|e| fail(format!("cannot write {}: {e}", cfg.marker().display())))
        }
    }
}

/// A running, supervised etcd server.
pub struct EtcdServer {
    child: Arc<Mutex<Option<Child>>>,
    stopping: Arc<AtomicBool>,
    supervisor: tokio::task::JoinHandle<()>,
    client_urls: Vec<String>,
}

impl EtcdServer {
    /// Check everything (see the module doc), start etcd and wait until it listens for
    /// clients.
    pub async fn start(cfg: ServerConfig) -> Result<EtcdServer, ServerError> {
        let binary = find_etcd().ok_or(ServerError::NotInstalled)?;
        for url in cfg.client_urls.iter().chain(&cfg.server_urls) {
            let addr = url_addr(url)?;
            if let Err(e) = TcpListener::bind(addr) {
                return Err(ServerError::Url {
                    url: url.clone(),
                    reason: if e.kind() == std::io::ErrorKind::AddrInUse {
                        "the port is in use (another etcd, or another program)".into()
                    } else {
                        e.to_string()
                    },
                });
            }
        }
        for url in cfg
            .advertise_client_urls
            .iter()
            .chain(&cfg.advertise_server_urls)
        {
            url_addr(url)?;
        }
        check_data_dir(&cfg)?;
        let (child, log) = spawn(&binary, &cfg)?;
        let probe = url_addr(&cfg.client_urls[0])?;
        let child = Arc::new(Mutex::new(Some(child)));
        wait_listening(&child, probe, &cfg.client_urls[0], log).await?;
        let stopping = Arc::new(AtomicBool::new(false));
        let supervisor = tokio::spawn(supervise(
            binary,
            cfg.clone(),
            child.clone(),
            stopping.clone(),
        ));
        tracing::info!(
            "etcd: serving clients on {} (member `{}`, data in {})",
            cfg.client_urls.join(","),
            cfg.name,
            cfg.data_dir().display()
        );
        Ok(EtcdServer {
            child,
            stopping,
            supervisor,
            client_urls: cfg.client_urls,
        })
    }

    /// Where clients reach it.
    pub fn client_urls(&self) -> &[String] {
        &self.client_urls
    }

    /// Stop it: SIGTERM, then SIGKILL after 10 s. No etcd process is left.
    /// Whether etcd still runs (or is being restarted): false once the supervisor gave
    /// up, or etcd ended by itself because the cluster removed its member.
    pub async fn alive(&self) -> bool {
        self.child.lock().await.is_some()
    }

    pub async fn stop(self) {
        self.stopping.store(true, Ordering::Release);
        self.supervisor.abort();
        let mut guard = self.child.lock().await;
        if let Some(child) = guard.as_mut() {
            terminate(child).await;
        }
        *guard = None;
        tracing::debug!("etcd: stopped");
    }
}

/// SIGTERM, wait up to 10 s, then SIGKILL.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid of our own child that has not been reaped yet.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        tracing::warn!("etcd: did not stop within 10 s of SIGTERM; killing it");
        let _ = child.kill().await;
    }
}

/// The last lines etcd wrote, for an error when it exits while starting.
type Log = Arc<std::sync::Mutex<Vec<String>>>;

fn spawn(binary: &Path, cfg: &ServerConfig) -> Result<(Child, Log), ServerError> {
    let mut cmd = Command::new(binary);
    cmd.args(cfg.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the
    // parent; it makes the kernel send etcd SIGTERM should homeostat die first.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(ServerError::Spawn)?;
    let log: Log = Arc::default();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(BufReader::new(out), log.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(BufReader::new(err), log.clone()));
    }
    Ok((child, log))
}

/// Lines kept for an error message.
const KEPT_LINES: usize = 5;

/// etcd's warnings that say nothing an operator can act on, logged at debug:
/// - its default auth token is not signed: homeostat uses no tokens (over TLS, a
///   client's user is its certificate's name, see `cluster::rbac`);
/// - a peer connection came up (good news, at warn level in etcd 3.4);
/// - it refused a membership change because a member joined less than 5 s ago: the
///   chooser asked, gets the refusal, and reports it (see `cluster::chooser`);
/// - a role granted again (homeostat's grants are idempotent);
/// - over TLS, a connection closed before its handshake (homeostat's own check that etcd
///   listens, or a client that went away); a refused certificate is still a warning.
const QUIET: &[&str] = &[
    "simple token is not cryptographically signed",
    "rejected connection: EOF",
    "ignored grant role request to a user",
    "rejected connection: write tcp",
    "rejected connection: read tcp",
    "established TCP streaming connection with remote peer",
    "peer became active",
    "rejecting member add request",
    "rejecting member remove request",
    "rejecting member promote request",
];

/// Forward etcd's output into the log, `etcd:` first, at etcd's level.
async fn forward(reader: impl AsyncBufReadExt + Unpin, log: Log) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let (level, text) = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(v) => {
                let level = v["level"].as_str().unwrap_or("info").to_owned();
                let mut text = v["msg"].as_str().unwrap_or(&line).to_owned();
                if let Some(e) = v["error"].as_str() {
                    text.push_str(&format!(": {e}"));
                }
                (level, text)
            }
            Err(_) => ("info".to_owned(), line.clone()),
        };
        let text = crate::sys::text::escape(&text).into_owned();
        let level = if QUIET.iter().any(|q| text.contains(q)) {
            "debug".to_owned()
        } else {
            level
        };
        match level.as_str() {
            "warn" => tracing::warn!("etcd: {text}"),
            "error" | "dpanic" | "panic" | "fatal" => tracing::error!("etcd: {text}"),
            _ => tracing::debug!("etcd: {text}"),
        }
        let mut kept = log.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == KEPT_LINES {
            kept.remove(0);
        }
        kept.push(text);
    }
}

/// Wait until etcd accepts connections on `addr`, or fail when it exits first.
async fn wait_listening(
    child: &Mutex<Option<Child>>,
    addr: SocketAddr,
    url: &str,
    log: Log,
) -> Result<(), ServerError> {
    const LIMIT: Duration = Duration::from_secs(30);
    let started = Instant::now();
    loop {
        {
            let mut guard = child.lock().await;
            if let Some(c) = guard.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                // Let the forwarders catch its last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(ServerError::Exited {
                    status: status.to_string(),
                    log,
                });
            }
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if started.elapsed() > LIMIT {
            if let Some(c) = child.lock().await.as_mut() {
                let _ = c.kill().await;
            }
            return Err(ServerError::NotListening {
                url: url.to_owned(),
                secs: LIMIT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Restart etcd when it dies (see the module doc).
async fn supervise(
    binary: PathBuf,
    cfg: ServerConfig,
    child: Arc<Mutex<Option<Child>>>,
    stopping: Arc<AtomicBool>,
) {
    let mut restarts = 0u32;
    let mut backoff = Duration::from_millis(500);
    let mut up_since = Instant::now();
    loop {
        let status = {
            let mut guard = child.lock().await;
            let Some(c) = guard.as_mut() else { return };
            // Poll rather than hold the lock across `wait`, so `stop` can take it.
            match c.try_wait() {
                Ok(Some(status)) => Some(status),
                Ok(None) => None,
                Err(_) => return,
            }
        };
        let Some(status) = status else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if stopping.load(Ordering::Acquire) {
            return;
        }
        // etcd ends by itself with status 0 when it finds its member removed from the
        // cluster ("the member has been permanently removed from the cluster"): it would
        // do so again at every start. Not restarted; the membership task sees it is not
        // alive, clears the data and makes this host a volunteer again (found by the fault
        // schedule: restarted five times, then given up, the host was neither a member
        // nor a volunteer, and the cluster stayed one voter short).
        if status.success() {
            tracing::warn!(
                "etcd: ended by itself (exit status 0: its member was removed from the \
                 cluster); not restarted"
            );
            *child.lock().await = None;
            return;
        }
        if up_since.elapsed() > Duration::from_secs(60) {
            restarts = 0;
            backoff = Duration::from_millis(500);
        }
        if restarts == MAX_RESTARTS {
            tracing::error!(
                "etcd: exited ({status}) after {MAX_RESTARTS} restarts in a row; giving up: \
                 this host no longer serves etcd"
            );
            *child.lock().await = None;
            return;
        }
        restarts += 1;
        tracing::error!(
            "etcd: exited ({status}); restarting in {:.1} s (restart {restarts} of at most \
             {MAX_RESTARTS})",
            backoff.as_secs_f64()
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(8));
        match spawn(&binary, &cfg) {
            Ok((c, _)) => {
                *child.lock().await = Some(c);
                up_since = Instant::now();
            }
            Err(e) => tracing::error!("etcd: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, name: &str) -> ServerConfig {
        ServerConfig {
            name: name.into(),
            state_dir: dir.into(),
            client_urls: vec!["http://127.0.0.1:1".into()],
            server_urls: vec!["http://127.0.0.1:2".into()],
            advertise_client_urls: vec!["http://127.0.0.1:1".into()],
            advertise_server_urls: vec!["http://127.0.0.1:2".into()],
            join: None,
            tls: None,
        }
    }

    #[test]
    fn urls_need_http_and_a_port() {
        assert!(url_addr("http://127.0.0.1:2379").is_ok());
        let e = url_addr("127.0.0.1:2379").unwrap_err().to_string();
        assert!(e.contains("expected http://HOST:PORT or https://"), "{e}");
        let e = url_addr("http://127.0.0.1").unwrap_err().to_string();
        assert!(e.contains("port is missing"), "{e}");
    }

    #[test]
    fn a_data_directory_from_elsewhere_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A fresh one gets the marker; the same host may come back to it.
        check_data_dir(&config(dir.path(), "h1")).unwrap();
        check_data_dir(&config(dir.path(), "h1")).unwrap();
        let e = check_data_dir(&config(dir.path(), "h2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("host `h1`, not of `h2`"), "{e}");
        // Data with no marker: not homeostat's.
        let foreign = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(foreign.path().join("etcd/member")).unwrap();
        let e = check_data_dir(&config(foreign.path(), "h1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not create"), "{e}");
    }

    #[test]
    fn bootstrap_flags_name_the_member_and_its_peer_url() {
        let args = config(Path::new("/s"), "h1").args();
        assert!(args.contains(&"--initial-cluster=h1=http://127.0.0.1:2".to_owned()));
        assert!(args.contains(&"--data-dir=/s/etcd".to_owned()));
        assert!(args.contains(&"--initial-cluster-state=new".to_owned()));
        let mut joining = config(Path::new("/s"), "h2");
        joining.join = Some("h1=http://a:1,h2=http://127.0.0.1:2".into());
        let args = joining.args();
        assert!(args.contains(&"--initial-cluster=h1=http://a:1,h2=http://127.0.0.1:2".to_owned()));
        assert!(args.contains(&"--initial-cluster-state=existing".to_owned()));
    }
}
