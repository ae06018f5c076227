//! Running graphs on remote hosts: per host, connect, copy ([`super::transfer`]), open
//! the reverse tunnel to the initiator's etcd, start `homeostat run` there, stream its
//! log back prefixed with the host, push graph edits, and stop it.
//!
//! **Concurrency.** At most `--cconns` hosts are being connected to and copied to at
//! once; a host whose graph runs no longer counts (its connection only carries log lines,
//! live pushes and the tunnel). An unreachable or failing host is reported within the
//! connect timeout and never delays the others.
//!
//! **Converged.** Before a host is connected to, the initiator announces it in the World
//! as a live, busy host (on the initiator's lease): a cluster-wide converged exit waits
//! for hosts that are still being set up, instead of ending before they join. The
//! remote's own announcement replaces it; a host that fails is withdrawn.
//!
//! **Stopping.** The remote homeostat runs with `--exit-with-stdin`: closing its input
//! (the initiator stops it, or the SSH connection is lost) stops it like a first SIGTERM.
//! If it has not ended after [`STOP_GRACE`], it is killed with everything it started
//! (`pkill -KILL -s` of the session whose leader is the pid it printed first). With
//! `--no-caching` its directory is then removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::ChannelMsg;
use tokio::sync::{Semaphore, watch};

use super::certs::RemoteTls;
use super::ssh::{self, SshOptions, quote};
use super::target::Node;
use super::transfer::{self, Graphs, Payload, Placed};
use crate::sys::inotify::WatchHub;
use crate::world::converged::{CONVERGED, HOSTS, HostState};
use crate::world::{Lifetime, World, segment};

/// How long a remote homeostat gets to stop after its input closed before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Prints one line of output (the CLI keeps it in order with its own log).
pub type Printer = Arc<dyn Fn(&str) + Send + Sync>;

/// What the fleet needs besides the targets.
pub struct FleetOptions {
    pub ssh: SshOptions,
    /// `--cconns`.
    pub cconns: usize,
    pub caching: bool,
    pub payload: Arc<Payload>,
    /// `host:port` of the etcd the tunnels lead to.
    pub etcd: String,
    /// The World's key prefix, passed on (`--etcd-prefix`).
    pub etcd_prefix: String,
    /// Passed on to every remote run.
    pub noop: bool,
    pub converged_timeout: Option<Duration>,
    pub lease_ttl: u64,
    /// This host's depth in a hierarchy (0: the initiator) and the deepest allowed.
    pub depth: u32,
    pub max_depth: u32,
    /// More flags for every remote run (the plugin limits).
    pub pass_on: Vec<String>,
    /// Push graph edits (off with `--no-reload`).
    pub live_push: bool,
    /// Certificates for the remotes when the World is on mutual TLS.
    pub tls: Option<Arc<RemoteTls>>,
    pub print: Printer,
}

/// How one host's run ended.
#[derive(Debug, Clone)]
pub struct HostResult {
    pub host: String,
    /// Its homeostat's exit code (`None`: it never ran, or was killed).
    pub exit: Option<u32>,
    /// Why it failed before or while running.
    pub error: Option<String>,
    /// Its closing summary line (`converged after ...`), when it printed one.
    pub summary: Option<String>,
    /// Bytes of files sent to it.
    pub bytes_sent: u64,
    /// Connect, copy and start, until its graph ran.
    pub setup: Duration,
}

impl HostResult {
    /// A host that has not run (yet).
    fn new(host: &str) -> HostResult {
        HostResult {
            host: host.to_string(),
            exit: None,
            error: None,
            summary: None,
            bytes_sent: 0,
            setup: Duration::ZERO,
        }
    }

    /// It ran and nothing failed (remote runs use `--detailed-exitcodes`: 0 or 2).
    pub fn ok(&self) -> bool {
        self.error.is_none() && matches!(self.exit, Some(0) | Some(2))
    }

    /// It changed something, or would have under `--noop` (its run exited 2 or 6).
    pub fn changed(&self) -> bool {
        self.error.is_none() && matches!(self.exit, Some(2) | Some(6))
    }
}

/// Runs every target until each remote homeostat has ended: by itself (converged), or
/// because `stop` turned true. Returns one result per target, in order.
pub async fn run(
    nodes: Vec<Node>,
    opts: FleetOptions,
    world: World,
    stop: watch::Receiver<bool>,
) -> Vec<HostResult> {
    let opts = Arc::new(opts);
    let gate = Arc::new(Semaphore::new(opts.cconns.max(1)));
    let hub = if opts.live_push {
        match WatchHub::new() {
            Ok(hub) => Some(hub),
            Err(e) => {
                tracing::warn!("graph files are not watched (no live push): {e}");
                None
            }
        }
    } else {
        None
    };
    for n in &nodes {
        hold_place(&world, &n.target.hostname).await;
    }
    let tasks: Vec<_> = nodes
        .into_iter()
        .map(|node| {
            let opts = opts.clone();
            let gate = gate.clone();
            let world = world.clone();
            let stop = stop.clone();
            let hub = hub.clone();
            tokio::spawn(async move {
                let host = node.target.hostname.clone();
                let started = Instant::now();
                let mut result = HostResult::new(&host);
                if let Err(e) = run_host(&node, &opts, gate, stop, hub, &mut result, started).await
                {
                    (opts.print)(&format!("{host}: error: {e}"));
                    result.error = Some(e);
                    withdraw(&world, &host).await;
                }
                result
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        match task.await {
            Ok(r) => out.push(r),
            Err(e) => out.push(HostResult {
                error: Some(format!("remote task failed: {e}")),
                ..HostResult::new("?")
            }),
        }
    }
    out
}

/// Announces `host` as live and busy until its own homeostat announces itself.
async fn hold_place(world: &World, host: &str) {
    let about = serde_json::json!({ "pending": true, "by": world.hostname() }).to_string();
    let h = segment(host);
    let _ = world
        .put(&format!("{HOSTS}{h}"), about.as_bytes(), Lifetime::Leased)
        .await;
    let _ = world
        .put(
            &format!("{CONVERGED}{h}"),
            HostState::Busy.as_str().as_bytes(),
            Lifetime::Leased,
        )
        .await;
}

/// Withdraws a host that will not run (or has ended) from the live hosts.
async fn withdraw(world: &World, host: &str) {
    let h = segment(host);
    let _ = world.delete(&format!("{HOSTS}{h}")).await;
    let _ = world.delete(&format!("{CONVERGED}{h}")).await;
}

async fn run_host(
    node: &Node,
    opts: &FleetOptions,
    gate: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    hub: Option<WatchHub>,
    result: &mut HostResult,
    started: Instant,
) -> Result<(), String> {
    let target = &node.target;
    let host = target.hostname.as_str();
    let permit = tokio::select! {
        p = gate.acquire_owned() => p.map_err(|e| e.to_string())?,
        _ = stopped(&mut stop) => return Err("stopped before it was reached".into()),
    };
    let mut local_files = tree_files(node);
    // Each graph's lock file goes along beside it: the host checks the pins too.
    let locks: Vec<(PathBuf, String)> = local_files
        .iter()
        .filter_map(|(path, rel)| {
            let lock = crate::plan::pins::lock_path(path);
            lock.is_file().then(|| (lock, format!("{rel}.lock")))
        })
        .collect();
    local_files.extend(locks);
    let graphs = Graphs {
        files: read_files(&local_files)?,
        known_hosts: (!node.below.is_empty()).then(|| {
            let mut text = String::new();
            for (t, _) in &node.below {
                for line in opts.ssh.known_hosts.lines_for(&t.url.host, t.url.port) {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
            text.into_bytes()
        }),
        extra: match &opts.tls {
            Some(tls) => tls_files(node, tls)?,
            None => Vec::new(),
        },
    };
    let payload = opts.payload.for_docs(&node.docs());
    let conn = tokio::select! {
        c = ssh::connect(&target.url, &opts.ssh) => c?,
        _ = stopped(&mut stop) => return Err("stopped while connecting".into()),
    };
    tracing::debug!("{host}: logged in after {:.1?}", started.elapsed());
    let sftp = conn.sftp().await?;
    let placed = match transfer::place(&conn, &sftp, host, &payload, &graphs, opts.caching).await {
        Ok(p) => p,
        Err(e) => {
            conn.close().await;
            return Err(e);
        }
    };
    result.bytes_sent = placed.bytes_sent;
    tracing::debug!("{host}: files in place after {:.1?}", started.elapsed());
    let outcome = async {
        let port = conn.reverse_forward(opts.etcd.clone()).await?;
        let command = command(node, &placed, port, opts);
        tracing::debug!("{host}: {command}");
        let mut channel = conn.session().await?;
        // Hosts below log in with the initiator's agent, whose keys never leave it.
        if !node.below.is_empty()
            && std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty())
        {
            let _ = channel.agent_forward(false).await;
        }
        channel
            .exec(true, command.as_str())
            .await
            .map_err(|e| format!("cannot start homeostat: {e}"))?;
        result.setup = started.elapsed();
        drop(permit);
        tracing::info!(
            "{host}: running {} ({} bytes sent, set up in {:.2?})",
            target.graph.display(),
            placed.bytes_sent,
            result.setup
        );
        // Live push: graph saves wake this; the copy goes through the same SFTP session.
        let (edits_tx, mut edits) = tokio::sync::mpsc::channel::<()>(1);
        let _watches: Vec<_> = hub
            .iter()
            .flat_map(|hub| {
                local_files.iter().filter_map(|(path, _)| {
                    let tx = edits_tx.clone();
                    let waker: crate::sys::waker::Waker = Arc::new(move || {
                        let _ = tx.try_send(());
                    });
                    hub.subscribe(path, false, waker).ok()
                })
            })
            .collect();
        let mut last_pushed: Vec<Vec<u8>> =
            graphs.files.iter().map(|(_, text)| text.clone()).collect();
        let mut lines = LineSplitter::default();
        // The command's first line is homeostat's pid (see `command`).
        let mut first_line = true;
        let mut pid: Option<u32> = None;
        let mut stop_sent = false;
        // When to kill it: once asked to stop, if it has not ended by then.
        let mut kill_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                msg = channel.wait() => match msg {
                    Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                        for line in lines.push(&data) {
                            if std::mem::take(&mut first_line) {
                                pid = line.trim().parse().ok();
                                if pid.is_some() {
                                    continue;
                                }
                            }
                            if is_summary(&line) {
                                result.summary = Some(line.clone());
                            }
                            (opts.print)(&format!("{host} | {line}"));
                        }
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => result.exit = Some(exit_status),
                    Some(_) => {}
                    None => break,
                },
                Some(()) = edits.recv() => {
                    for (i, (path, _)) in local_files.iter().enumerate() {
                        let Ok(text) = std::fs::read(path) else { continue };
                        if text == last_pushed[i] { continue }
                        let remote = &placed.graphs[i].1;
                        match transfer::replace_file(&conn, &sftp, remote, &text).await {
                            Ok(_) => {
                                tracing::info!(
                                    "{host}: copied over new graph definition {} ({} bytes)",
                                    path.display(),
                                    text.len()
                                );
                                last_pushed[i] = text;
                            }
                            Err(e) => tracing::warn!("{host}: live push failed: {e}"),
                        }
                    }
                }
                _ = stopped(&mut stop), if !stop_sent => {
                    stop_sent = true;
                    kill_at = Some(tokio::time::Instant::now() + STOP_GRACE);
                    let _ = channel.eof().await;
                }
                _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)),
                    if kill_at.is_some() =>
                {
                    tracing::warn!(
                        "{host}: homeostat did not stop within {STOP_GRACE:?}; killing it"
                    );
                    // sshd made the command a session leader and homeostat execs into
                    // it, so its pid is the session's: its commands go with it.
                    if let Some(p) = pid {
                        let kill = format!("pkill -KILL -s {p} || kill -KILL {p}");
                        let _ = tokio::time::timeout(STOP_GRACE, conn.output(&kill)).await;
                    }
                    // Nothing more worth waiting for on this channel.
                    break;
                }
            }
        }
        if let Some(rest) = lines.rest() {
            (opts.print)(&format!("{host} | {rest}"));
        }
        Ok::<(), String>(())
    }
    .await;
    transfer::clean(&conn, &placed).await;
    conn.close().await;
    outcome?;
    match result.exit {
        // `--detailed-exitcodes`: nothing to do, or changes made (pending under --noop).
        Some(0 | 2) => Ok(()),
        Some(4 | 6) => Err("resources failed there".into()),
        Some(code) => Err(format!("homeostat exited {code}")),
        None => Err(
            "homeostat ended without an exit status (killed, or the connection was lost)".into(),
        ),
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The graph files of `node`'s subtree (its own first), each with its path relative to
/// their common directory.
fn tree_files(node: &Node) -> Vec<(PathBuf, String)> {
    let absolute: Vec<PathBuf> = node
        .files()
        .into_iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
        .collect();
    let mut base = absolute[0]
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for p in &absolute[1..] {
        while !p.starts_with(&base) {
            if !base.pop() {
                break;
            }
        }
    }
    absolute
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&base)
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_else(|_| p.to_string_lossy().trim_start_matches('/').to_string());
            (p, rel)
        })
        .collect()
}

fn read_files(files: &[(PathBuf, String)]) -> Result<Vec<(String, Vec<u8>)>, String> {
    files
        .iter()
        .map(|(path, rel)| {
            std::fs::read(path)
                .map(|text| (rel.clone(), text))
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        })
        .collect()
}

/// The TLS files a host gets (paths relative to its run directory): its own in
/// `state/tls/`, and those of every host below it in `certs/<host>/` (it has no CA key
/// to issue them).
fn tls_files(node: &Node, tls: &RemoteTls) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = tls.certs_for(&node.target.hostname)?.files(TLS_DIR);
    for (t, _) in &node.below {
        let dir = format!("{CERTS_DIR}/{}", transfer::file_name_of(&t.hostname));
        files.extend(tls.certs_for(&t.hostname)?.files(&dir));
    }
    Ok(files)
}

/// Where a remote's own TLS files go in its run directory (its state directory's `tls/`).
const TLS_DIR: &str = "state/tls";
/// Where the certificates of the hosts below a remote go in its run directory.
const CERTS_DIR: &str = "certs";

/// The remote command: print the shell's pid (homeostat's, after `exec`), then run.
fn command(node: &Node, placed: &Placed, port: u16, opts: &FleetOptions) -> String {
    let host = node.target.hostname.as_str();
    let mut args: Vec<String> = vec![
        placed.binary.clone(),
        "run".into(),
        "--hostname".into(),
        host.into(),
        "--no-server".into(),
        "--seeds".into(),
        format!(
            "{}://127.0.0.1:{port}",
            if opts.tls.is_some() { "https" } else { "http" }
        ),
        "--seeds-only".into(),
        "--etcd-prefix".into(),
        opts.etcd_prefix.clone(),
        "--lease-ttl".into(),
        opts.lease_ttl.to_string(),
        "--prefix".into(),
        format!("{}/state", placed.run_dir),
        "--exit-with-stdin".into(),
        // Its changes count in the initiator's result (see `HostResult::changed`).
        "--detailed-exitcodes".into(),
    ];
    if opts.noop {
        args.push("--noop".into());
    }
    if let Some(t) = opts.converged_timeout {
        args.push("--converged-timeout".into());
        args.push(format!("{}", t.as_secs_f64()));
    }
    args.extend(opts.pass_on.iter().cloned());
    if let Some(tls) = &opts.tls {
        let dir = format!("{}/{TLS_DIR}", placed.run_dir);
        args.extend([
            "--ca".into(),
            format!("{dir}/{}", crate::tls::CA_CERT),
            "--cert".into(),
            format!("{dir}/{}", crate::tls::HOST_CERT),
            "--key".into(),
            format!("{dir}/{}", crate::tls::HOST_KEY),
        ]);
        if let Some(name) = &tls.server_name {
            args.push("--tls-server-name".into());
            args.push(name.clone());
        }
        if !node.below.is_empty() {
            args.push("--remote-certs".into());
            args.push(format!("{}/{CERTS_DIR}", placed.run_dir));
        }
    }
    if let Some(dir) = &placed.plugin_dir {
        args.push("--plugin-dir".into());
        args.push(dir.clone());
    }
    if let Some(grants) = &placed.grants {
        args.push("--grants".into());
        args.push(grants.clone());
    }
    if !node.below.is_empty() {
        // It runs the graphs below it itself, one level deeper, with the same settings.
        args.extend([
            "--depth".into(),
            (opts.depth + 1).to_string(),
            "--max-depth".into(),
            opts.max_depth.to_string(),
            "--cconns".into(),
            opts.cconns.to_string(),
            "--ssh-timeout".into(),
            opts.ssh.timeout.as_secs().to_string(),
        ]);
        if let Some(k) = &placed.known_hosts {
            args.push("--ssh-known-hosts".into());
            args.push(k.clone());
        }
        if opts.ssh.known_hosts.accept_new {
            args.push("--ssh-accept-new".into());
        }
        if !opts.caching {
            args.push("--no-caching".into());
        }
        if opts.ssh.compression {
            args.push("--ssh-compression".into());
        }
        if !opts.live_push {
            args.push("--no-reload".into());
        }
    }
    args.push(placed.graph.clone());
    let quoted: Vec<String> = args.iter().map(|a| quote(a)).collect();
    // Through `sh` whatever the login shell is (`$$` is not fish's), which execs into
    // homeostat: the pid printed is homeostat's.
    // The copies go into place first (see `Placed::finish`), in the same command.
    let mut steps = placed.finish.clone();
    steps.push(format!("echo $$; exec {} 2>&1", quoted.join(" ")));
    let script = format!("set -e; {}", steps.join("; "));
    format!("exec sh -c {}", quote(&script))
}

/// The remote's closing line (`converged after 1.02s: ...`, `stopped after ...`).
fn is_summary(line: &str) -> bool {
    [
        "converged after ",
        "stopped after ",
        "settled with failures after ",
        "cancelled after ",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

/// Splits a byte stream into lines (invalid UTF-8 replaced).
#[derive(Default)]
struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, data: &[u8]) -> Vec<String> {
        self.partial.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            out.push(String::from_utf8_lossy(&line[..i]).into_owned());
        }
        out
    }

    fn rest(&mut self) -> Option<String> {
        (!self.partial.is_empty())
            .then(|| String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned())
    }
}

/// Each host's result, for the initiator's summary.
pub fn summary_lines(results: &[HostResult]) -> Vec<String> {
    let mut by_host: BTreeMap<&str, &HostResult> = BTreeMap::new();
    for r in results {
        by_host.insert(&r.host, r);
    }
    by_host
        .values()
        .map(|r| {
            let what = match (&r.error, &r.summary) {
                (Some(e), _) => format!("failed: {}", e.lines().next().unwrap_or_default()),
                (None, Some(s)) => s.clone(),
                (None, None) => format!("exit {}", r.exit.map_or("?".into(), |c| c.to_string())),
            };
            format!(
                "  {}: {what} ({:.1} MB sent)",
                r.host,
                r.bytes_sent as f64 / 1e6
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"12").is_empty());
        assert_eq!(s.push(b"34\nab"), vec!["1234".to_string()]);
        assert_eq!(s.push(b"c\n\nd"), vec!["abc".to_string(), String::new()]);
        assert_eq!(s.rest().as_deref(), Some("d"));
        assert_eq!(s.rest(), None);
    }

    fn node(remotes: &[&str]) -> Node {
        let t = tempfile::tempdir().unwrap();
        let parse = |name: &str, text: &str| {
            let p = t.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        for (i, leaf) in remotes.iter().enumerate() {
            parse(leaf, &format!("graph: l{i}\nremote: ssh://root@leaf{i}\n"));
        }
        let list = remotes.join(", ");
        let top = parse(
            "top.yaml",
            &format!("graph: top\nremote: ssh://root@web1\nremotes: [{list}]\n"),
        );
        let top = if remotes.is_empty() {
            parse("top.yaml", "graph: top\nremote: ssh://root@web1\n")
        } else {
            top
        };
        super::super::target::tree(&[top], "me", 0, 3, 1 << 20)
            .unwrap()
            .remove(0)
    }

    fn options(noop: bool) -> FleetOptions {
        let blob = transfer::Blob {
            path: PathBuf::from("/bin/true"),
            sha256: "ab".repeat(32),
            size: 1,
        };
        FleetOptions {
            ssh: SshOptions {
                known_hosts: super::super::KnownHosts::standard(true),
                identities: Vec::new(),
                allow_interactive: false,
                timeout: Duration::from_secs(7),
                compression: false,
            },
            cconns: 4,
            caching: true,
            payload: Arc::new(Payload {
                binary: blob,
                machine: "x86_64".into(),
                plugins: Vec::new(),
                grants: None,
            }),
            etcd: "127.0.0.1:2379".into(),
            etcd_prefix: "/homeostat/".into(),
            noop,
            converged_timeout: Some(Duration::from_millis(1500)),
            lease_ttl: 2,
            depth: 0,
            max_depth: 3,
            pass_on: vec!["--plugin-memory".into(), "32".into()],
            live_push: true,
            tls: None,
            print: Arc::new(|_: &str| {}),
        }
    }

    fn placed() -> Placed {
        Placed {
            base: "/var/lib/homeostat/remote".into(),
            temporary: false,
            binary: "/var/lib/homeostat/remote/cache/ab".into(),
            run_dir: "/var/lib/homeostat/remote/run/web1".into(),
            graph: "/var/lib/homeostat/remote/run/web1/tree/top.yaml".into(),
            graphs: Vec::new(),
            known_hosts: Some("/var/lib/homeostat/remote/run/web1/known_hosts".into()),
            plugin_dir: None,
            grants: None,
            bytes_sent: 0,
            finish: vec!["chmod 0755 /var/lib/homeostat/remote/cache/ab".into()],
        }
    }

    #[test]
    fn the_remote_command_runs_a_pinned_client_and_passes_the_run_on() {
        let cmd = command(&node(&[]), &placed(), 40123, &options(true));
        assert!(cmd.starts_with("exec sh -c "), "{cmd}");
        for want in [
            "set -e; chmod 0755 /var/lib/homeostat/remote/cache/ab; echo $$; exec ",
            "--hostname web1 --no-server --seeds http://127.0.0.1:40123 --seeds-only",
            "--lease-ttl 2",
            "--prefix /var/lib/homeostat/remote/run/web1/state",
            "--exit-with-stdin --detailed-exitcodes --noop --converged-timeout 1.5 \
             --plugin-memory 32",
            "/var/lib/homeostat/remote/run/web1/tree/top.yaml 2>&1",
        ] {
            assert!(cmd.contains(want), "{want}\nin {cmd}");
        }
        // A leaf runs nothing further.
        assert!(!cmd.contains("--depth"), "{cmd}");
    }

    #[test]
    fn a_host_with_remotes_below_runs_them_one_level_deeper() {
        let cmd = command(&node(&["leaf.yaml"]), &placed(), 1, &options(false));
        for want in [
            "--depth 1 --max-depth 3 --cconns 4 --ssh-timeout 7",
            "--ssh-known-hosts /var/lib/homeostat/remote/run/web1/known_hosts",
            "--ssh-accept-new",
        ] {
            assert!(cmd.contains(want), "{want}\nin {cmd}");
        }
        assert!(!cmd.contains("--noop"), "{cmd}");
    }

    #[test]
    fn on_tls_a_remote_dials_https_with_its_own_files_and_checks_the_initiator() {
        let mut opts = options(false);
        opts.tls = Some(Arc::new(RemoteTls {
            source: super::super::certs::CertSource::Dir("/nowhere".into()),
            server_name: Some("init".into()),
        }));
        let cmd = command(&node(&["leaf.yaml"]), &placed(), 40123, &opts);
        let run = "/var/lib/homeostat/remote/run/web1";
        for want in [
            "--seeds https://127.0.0.1:40123 --seeds-only".to_owned(),
            format!("--ca {run}/state/tls/ca.crt --cert {run}/state/tls/host.crt"),
            format!("--key {run}/state/tls/host.key --tls-server-name init"),
            format!("--remote-certs {run}/certs"),
        ] {
            assert!(cmd.contains(&want), "{want}\nin {cmd}");
        }
        // A leaf gets no certificates to hand down.
        let leaf = command(&node(&[]), &placed(), 40123, &opts);
        assert!(!leaf.contains("--remote-certs"), "{leaf}");
    }

    #[test]
    fn summaries_are_recognised() {
        assert!(is_summary(
            "converged after 0.31s: 3 resources, 3 changes, 0 failed"
        ));
        assert!(is_summary(
            "stopped after 4.98s: 1 resources, 1 changes, 1 failed"
        ));
        assert!(!is_summary("2026-12-07T04:09:49Z INFO converged"));
    }
}
