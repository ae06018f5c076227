//! `homeostat-bench cluster`: hosts sharing a World on a real etcd, all on this machine
//! (loopback ports), each a `homeostat run` process with its own state directory.
//!
//! 1. **Export → applied** (1 exporter, `--collectors` collectors, default 5): the
//!    exporter's graph is edited `--edits` times (atomic rename, 400 ms apart); for each
//!    edit, the time until each collector's file holds the new content, from the edit
//!    of the graph file (what a user waits for; it includes the exporter's 100 ms
//!    settle of an editor's burst) and from the moment the new export is in etcd (seen
//!    by a long-running `etcdctl watch`). p50/p99 over every (edit, collector).
//! 2. **Removal after death**: the exporter is killed with SIGKILL; the time until every
//!    collector (`purge: true`) has removed the file. Bounded below by the lease's TTL
//!    (`--lease-ttl`, 2 s here).
//! 3. **RSS** of the serving host's homeostat and of its etcd, and of a collector.
//! 4. **Cluster-wide converged**: a server and the collectors with
//!    `--converged-timeout 1` and one file each: from the moment the last host started
//!    its graph plus the 1 s hold to the moment the last host exited.
//! 5. **Scale** (`--scale`, default 100; 0 skips): the same export and as many
//!    collectors, each collecting into its own directory: p50/p99 of export → applied at
//!    the last collector of each edit and over all, etcd's CPU per edit and RSS, and
//!    the collectors' median RSS.
//!
//! The collectors' files are all polled every millisecond (each read is a few
//! microseconds; the figures are tens to hundreds of milliseconds). Nothing is asserted:
//! the numbers are printed.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homeostat_tests::{collector_graph, exporter_graph};

/// Options of `homeostat-bench cluster`.
struct Options {
    homeostat: PathBuf,
    collectors: usize,
    edits: usize,
    scale: usize,
}

/// Output lines, each with when it arrived.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

/// One `homeostat run` host, with its stderr lines timed as they arrive.
pub(crate) struct Host {
    pub(crate) child: Child,
    lines: Lines,
}

impl Host {
    pub(crate) fn start(bin: &Path, graph: &Path, args: &[String], cache: &Path) -> Host {
        let mut child = Command::new(bin)
            .arg("run")
            .arg(graph)
            .args(args)
            .arg("--cache-dir")
            .arg(cache)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start homeostat");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let err = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Host { child, lines }
    }

    /// When a line containing `needle` arrived, waiting up to `limit`.
    pub(crate) fn wait_line(&self, needle: &str, limit: Duration) -> Option<Instant> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some((t, _)) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|(_, l)| l.contains(needle))
            {
                return Some(*t);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// The last `n` lines it wrote.
    pub(crate) fn tail(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap();
        let start = lines.len().saturating_sub(n);
        lines[start..]
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port below Linux's ephemeral range (see `free_port` in the test
/// harness: a port from that range can be taken at once by an outgoing connection).
pub(crate) fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let port = 20_000 + (std::hash::RandomState::new().build_hasher().finish() % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Resident memory of `pid`, MiB.
pub(crate) fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// CPU time (user + system) of `pid`.
fn cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// The etcd process a homeostat serves (its child, spawned by any of its threads).
pub(crate) fn etcd_of(pid: u32) -> Option<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .find(|c| {
            std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == "etcd")
        })
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Wait until `path` holds `want` (or, with `None`, is gone); when, if within `limit`.
fn wait_file(path: &Path, want: Option<&str>, limit: Duration) -> Option<Instant> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let now = std::fs::read_to_string(path).ok();
        if now.as_deref() == want {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// When each of `files` came to hold `want`: all of them polled every millisecond, so
/// one collector's time is not held up by waiting for another's.
fn wait_all(files: &[PathBuf], want: &str, limit: Duration) -> Vec<Instant> {
    let start = Instant::now();
    let mut done: Vec<Option<Instant>> = vec![None; files.len()];
    while start.elapsed() < limit && done.iter().any(Option::is_none) {
        for (f, d) in files.iter().zip(done.iter_mut()) {
            if d.is_none() && std::fs::read_to_string(f).ok().as_deref() == Some(want) {
                *d = Some(Instant::now());
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    done.into_iter().flatten().collect()
}

/// A cluster: the serving host, the exporter, the collectors and their directories.
/// Fields drop in order: the clients stop before the host serving their etcd.
struct Cluster {
    seeds: String,
    exporter: Option<Host>,
    exporter_graph: PathBuf,
    collectors: Vec<(Host, PathBuf)>,
    server: Host,
}

/// The flags of the host `server`, which serves etcd to clients at `seeds` and to peers
/// on `peer`, with its state in `dir`, plus `extra`.
fn server_args(dir: &Path, seeds: &str, peer: u16, extra: [&str; 2]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--hostname",
        "server",
        "--client-urls",
        seeds,
        "--server-urls",
        &format!("http://127.0.0.1:{peer}"),
        "--prefix",
        &dir.join("state-server").display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.map(String::from));
    args
}

fn client_args(dir: &Path, name: &str, seeds: &str) -> Vec<String> {
    homeostat_tests::client_args(&dir.join(format!("state-{name}")), name, seeds)
}

fn start_cluster(
    o: &Options,
    root: &Path,
    cache: &Path,
    collectors: usize,
) -> Result<Cluster, String> {
    let dir = tempfile::Builder::new()
        .prefix("cluster.")
        .tempdir_in(root)
        .map_err(|e| e.to_string())?
        .keep();
    let empty = dir.join("server.yaml");
    std::fs::write(&empty, "graph: server\nresources: {}\n").unwrap();
    let (client, peer) = (free_port(), free_port());
    let seeds = format!("http://127.0.0.1:{client}");
    let server = Host::start(
        &o.homeostat,
        &empty,
        &server_args(&dir, &seeds, peer, ["--lease-ttl", "2"]),
        cache,
    );
    server
        .wait_line("running graph", Duration::from_secs(60))
        .ok_or("the serving host did not start")?;
    let exporter_graph = dir.join("exporter.yaml");
    std::fs::write(&exporter_graph, exporter_graph_text(0)).unwrap();
    let exporter = Host::start(
        &o.homeostat,
        &exporter_graph,
        &client_args(&dir, "exporter", &seeds),
        cache,
    );
    let mut hosts = Vec::new();
    for i in 0..collectors {
        let name = format!("c{i:03}");
        let out = dir.join(&name);
        let g = dir.join(format!("{name}.yaml"));
        std::fs::write(&g, collector_graph(&out, true)).unwrap();
        hosts.push((
            Host::start(&o.homeostat, &g, &client_args(&dir, &name, &seeds), cache),
            out,
        ));
        // Starting a hundred at once would measure the machine's start-up storm.
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    for (h, out) in &hosts {
        h.wait_line("running graph", Duration::from_secs(120))
            .ok_or_else(|| format!("a collector did not start; its log ends:\n{}", h.tail(10)))?;
        wait_file(
            &out.join("motd"),
            Some(&format!("{}\n", edit_text(0))),
            Duration::from_secs(60),
        )
        .ok_or("a collector never got the first export")?;
    }
    Ok(Cluster {
        seeds,
        server,
        exporter: Some(exporter),
        exporter_graph,
        collectors: hosts,
    })
}

fn edit_text(i: usize) -> String {
    format!("edit {i}")
}

fn exporter_graph_text(i: usize) -> String {
    exporter_graph(&format!("{}\\n", edit_text(i)))
}

/// `etcdctl watch` on the exports, its lines timed as they arrive.
fn watch_exports(seeds: &str) -> Option<(Child, Lines)> {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            seeds,
            "watch",
            "--prefix",
            "/homeostat/exported/",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let out = child.stdout.take()?;
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push((Instant::now(), line));
        }
    });
    Some((child, lines))
}

/// Export → applied over `edits` edits: (from the edit, from etcd, last collector per edit).
fn edits(c: &Cluster, edits: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let watcher = watch_exports(&c.seeds);
    std::thread::sleep(Duration::from_millis(300));
    let (mut from_edit, mut from_etcd, mut last) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=edits {
        let t0 = Instant::now();
        write_atomic(&c.exporter_graph, &exporter_graph_text(i));
        let want = format!("{}\n", edit_text(i));
        let files: Vec<PathBuf> = c
            .collectors
            .iter()
            .map(|(_, out)| out.join("motd"))
            .collect();
        let applied = wait_all(&files, &want, Duration::from_secs(30));
        if applied.len() < files.len() {
            eprintln!(
                "homeostat-bench: {} collectors missed edit {i}",
                files.len() - applied.len()
            );
        }
        let mut slowest = Duration::ZERO;
        for t in &applied {
            from_edit.push(ms(*t - t0));
            slowest = slowest.max(*t - t0);
        }
        last.push(ms(slowest));
        if let Some((_, lines)) = &watcher {
            let seen = lines
                .lock()
                .unwrap()
                .iter()
                .find(|(t, l)| *t >= t0 && l.contains(&edit_text(i)))
                .map(|(t, _)| *t);
            if let Some(te) = seen {
                from_etcd.extend(applied.iter().map(|t| ms(t.saturating_duration_since(te))));
            }
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    if let Some((mut child, _)) = watcher {
        let _ = child.kill();
        let _ = child.wait();
    }
    for v in [&mut from_edit, &mut from_etcd, &mut last] {
        v.sort_by(f64::total_cmp);
    }
    (from_edit, from_etcd, last)
}

fn row(what: &str, v: &[f64]) -> String {
    format!(
        "| {what} | {:.0} ms | {:.0} ms | {} |",
        percentile(v, 0.5),
        percentile(v, 0.99),
        v.len()
    )
}

/// Cluster-wide converged: from the last host's start of its graph plus the hold to the
/// last exit.
fn converged_detection(o: &Options, root: &Path, cache: &Path) -> Result<f64, String> {
    let dir = tempfile::Builder::new()
        .prefix("converged.")
        .tempdir_in(root)
        .map_err(|e| e.to_string())?;
    let (client, peer) = (free_port(), free_port());
    let seeds = format!("http://127.0.0.1:{client}");
    let graph = |name: &str| {
        let g = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &g,
            format!(
                "graph: g\nresources:\n  file:\n  - name: f\n    path: {}/{name}\n    content: x\n",
                dir.path().display()
            ),
        )
        .unwrap();
        g
    };
    let mut hosts = vec![Host::start(
        &o.homeostat,
        &graph("server"),
        &server_args(dir.path(), &seeds, peer, ["--converged-timeout", "1"]),
        cache,
    )];
    hosts[0]
        .wait_line("world: etcd at", Duration::from_secs(60))
        .ok_or("the serving host did not start")?;
    for i in 0..o.collectors {
        let name = format!("h{i}");
        let mut args = client_args(dir.path(), &name, &seeds);
        args.extend(["--converged-timeout".into(), "1".into()]);
        hosts.push(Host::start(&o.homeostat, &graph(&name), &args, cache));
    }
    let mut started = Vec::new();
    for h in &hosts {
        started.push(
            h.wait_line("running graph", Duration::from_secs(60))
                .ok_or("a host did not start its graph")?,
        );
    }
    let mut exits = Vec::new();
    for h in &mut hosts {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = h.child.try_wait() {
                exits.push(Instant::now());
                break;
            }
            if Instant::now() > deadline {
                return Err("a host did not exit on cluster-wide converge".into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let last_start = *started.iter().max().unwrap();
    let last_exit = *exits.iter().max().unwrap();
    Ok(ms(last_exit.saturating_duration_since(
        last_start + Duration::from_secs(1),
    )))
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        homeostat: super::default_homeostat(),
        collectors: 5,
        edits: 30,
        scale: 100,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--homeostat" => o.homeostat = PathBuf::from(value()?),
            "--collectors" => {
                o.collectors = value()?.parse().map_err(|_| "--collectors: a number")?
            }
            "--edits" => o.edits = value()?.parse().map_err(|_| "--edits: a number")?,
            "--scale" => o.scale = value()?.parse().map_err(|_| "--scale: a number")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// Run it with its arguments (after `cluster`).
pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let root = tempfile::Builder::new()
        .prefix("homeostat-bench-cluster.")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let cache = root.path().join("cache");
    println!(
        "## Cluster (homeostat {}, etcd on loopback)\n",
        o.homeostat.display()
    );

    // 1-3: one exporter, a few collectors.
    let mut c = start_cluster(&o, root.path(), &cache, o.collectors)?;
    let (from_edit, from_etcd, _) = edits(&c, o.edits);
    let server_rss = rss_mib(c.server.pid());
    let etcd = etcd_of(c.server.pid());
    let etcd_rss = etcd.map_or(f64::NAN, rss_mib);
    let collector_rss = rss_mib(c.collectors[0].0.pid());
    let mut exporter = c.exporter.take().expect("started");
    let t0 = Instant::now();
    let _ = exporter.child.kill();
    let _ = exporter.child.wait();
    let mut removal = Vec::new();
    for (_, out) in &c.collectors {
        if let Some(t) = wait_file(&out.join("motd"), None, Duration::from_secs(30)) {
            removal.push(ms(t - t0));
        }
    }
    removal.sort_by(f64::total_cmp);
    println!(
        "1 exporter, {} collectors, {} edits (p50, p99, samples):\n",
        o.collectors, o.edits
    );
    println!("| export → applied | p50 | p99 | n |\n|---|---|---|---|");
    println!(
        "{}",
        row("from the edit of the exporter's graph", &from_edit)
    );
    println!("{}", row("from the export's arrival in etcd", &from_etcd));
    println!(
        "\nExporter killed (SIGKILL, lease TTL 2 s): every collector removed the file after {:.0} ms (first {:.0} ms).",
        removal.last().copied().unwrap_or(f64::NAN),
        removal.first().copied().unwrap_or(f64::NAN)
    );
    println!(
        "RSS: serving homeostat {server_rss:.1} MiB + its etcd {etcd_rss:.1} MiB; a collector {collector_rss:.1} MiB."
    );
    drop(c);

    // 4: cluster-wide converged.
    let detection = converged_detection(&o, root.path(), &cache)?;
    println!(
        "Cluster-wide converged ({} hosts, --converged-timeout 1): the last host exited {detection:.0} ms after the last graph started plus the 1 s hold.",
        o.collectors + 1
    );

    // 5: scale.
    if o.scale > 0 {
        let c = start_cluster(&o, root.path(), &cache, o.scale)?;
        let etcd = etcd_of(c.server.pid());
        let cpu0 = etcd.map(cpu);
        let n = o.edits.min(10);
        let (all, _, last) = edits(&c, n);
        let etcd_cpu = match (etcd, cpu0) {
            (Some(p), Some(before)) => ms(cpu(p).saturating_sub(before)) / n as f64,
            _ => f64::NAN,
        };
        let mut rss: Vec<f64> = c.collectors.iter().map(|(h, _)| rss_mib(h.pid())).collect();
        rss.sort_by(f64::total_cmp);
        println!("\n{} collectors, 1 exporter, {n} edits:\n", o.scale);
        println!("| export → applied | p50 | p99 | n |\n|---|---|---|---|");
        println!("{}", row("at the last collector of each edit", &last));
        println!("{}", row("at every collector", &all));
        println!(
            "\netcd: {etcd_cpu:.0} ms of CPU per edit, {:.1} MiB RSS; collectors' RSS median {:.1} MiB (max {:.1}).",
            etcd.map_or(f64::NAN, rss_mib),
            percentile(&rss, 0.5),
            rss.last().copied().unwrap_or(f64::NAN)
        );
        drop(c);
    }
    Ok(())
}
