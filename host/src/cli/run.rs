//! `homeostat run GRAPH.yaml`: run the graph until a signal, or until it has converged
//! for `--converged-timeout` seconds. Saving a new version of the graph file swaps it in
//! live (an invalid one is reported and the running graph stays); `--no-reload` turns
//! that off.
//!
//! **Signals.** SIGINT and SIGTERM are handled from the first moment: while starting
//! (reading the graph, loading plugins, planning) nothing has been applied yet, so a
//! signal ends the process at once (exit 130) whatever it is waiting for. Once the engine
//! runs, the first signal stops it after the check-applies in progress, the second
//! abandons them (exit 130), and a third, or a cancel that does not finish in 5 s, exits.
//!
//! **The graph file** is read with a size cap (`--max-graph-size`) and a file-type check
//! ([`crate::sys::input`]): once at start, before anything else (its `remotes:` decide
//! whether this host serves etcd; the parse thread takes the same text), and at every
//! live swap (on a blocking thread, so a slow file system never holds up the engine): a
//! graph path that became a FIFO, a device or a link to one is refused and the running
//! graph stays.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use super::exit::{RunResult, Scheme};
use super::input::GraphFileArgs;
use super::load::PluginArgs;
use super::remote::RemoteArgs;
use super::report;
use super::world::WorldArgs;
use crate::cluster::rbac;
use crate::engine::{
    self, Outcome, Plan, ResourceOutcome, RunOptions, Settled, Shutdown, Stopped, Summary,
};
use crate::graph::{GraphDoc, Meta};
use crate::plan::PlanError;
use crate::plan::cache::{self, PlanCache};
use crate::plan::source::{self, WorldSide};
use crate::plan::target;
use crate::plugin::registry::Registry;
use crate::remote::certs::{CertSource, RemoteTls};
use crate::sys::Services;
use crate::sys::inotify::WatchHub;
use crate::sys::process::Processes;
use crate::sys::text;
use crate::world::converged;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The graph file (YAML); optional with --remote (this host then only serves the
    /// World its remotes join).
    #[arg(required_unless_present = "remotes")]
    graph: Option<PathBuf>,
    /// Exit once every resource has been converged for N seconds (0, or 0.001 to 86400;
    /// fractions allowed): 0 when all are in their declared state, 1 when some failed.
    #[arg(long, value_name = "N", value_parser = converged_timeout)]
    converged_timeout: Option<Duration>,
    /// Change nothing: report what would change (exit 2 when something would).
    #[arg(long)]
    noop: bool,
    /// Also show content diffs of the changes made (under --noop they are always shown),
    /// for text files up to 256 KiB; never for `meta: {sensitive: true}`.
    #[arg(long)]
    diff: bool,
    /// Puppet's exit codes: 0 nothing changed, 2 changes made (or pending under --noop),
    /// 4 failures, 6 both (see docs/exit-codes.md).
    #[arg(long)]
    detailed_exitcodes: bool,
    /// Write a JSON report of the run to FILE (`-`: standard output): every resource's
    /// outcome, timings, the graph's and the plugins' digests (docs/report.md). A long
    /// run also writes one each time the graph settles, keeping the last 5 as FILE.1..5.
    #[arg(long, value_name = "FILE", value_parser = report::Target::parse)]
    report: Option<report::Target>,
    /// Run only this resource (`kind[name]`; repeat for more) and what it depends on;
    /// resources that depend on it are not run (docs/user-guide.md#running-part-of-a-graph).
    #[arg(long, value_name = "KIND[NAME]", value_parser = target::parse_id)]
    only: Vec<crate::graph::ResId>,
    /// Run only resources tagged with one of these (`meta: {tags: [...]}`; comma-separated
    /// or repeated) and what they depend on.
    #[arg(long, value_name = "TAG", value_delimiter = ',')]
    tags: Vec<String>,
    /// Do not watch the graph file for changes (by default, saving it swaps the new
    /// graph in without restarting unchanged resources).
    #[arg(long)]
    no_reload: bool,
    #[command(flatten)]
    input: GraphFileArgs,
    #[command(flatten)]
    plugins: PluginArgs,
    #[command(flatten)]
    world: WorldArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Stop (like a first SIGTERM) when standard input closes: remote execution runs
    /// its hosts with it, so a lost SSH connection stops them.
    #[arg(long, hide = true)]
    exit_with_stdin: bool,
}

pub async fn run(mut args: RunArgs) -> anyhow::Result<ExitCode> {
    let sys = Services::default();
    sys.fs.show_diffs(args.diff);
    let (stop_tx, stop_rx) = watch::channel(Shutdown::Run);
    let engine_started = Arc::new(Mutex::new(false));
    let stopped_by = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let started_at = std::time::SystemTime::now();
    handle_signals(
        stop_tx,
        stopped_by.clone(),
        engine_started.clone(),
        sys.processes.clone(),
        args.exit_with_stdin,
    )?;
    let max_bytes = args.input.max_bytes();
    // The graph is read once, here: its `remotes:` decide whether this host serves etcd
    // before the World opens, and the parse thread below takes the same text.
    let local_text = args
        .graph
        .as_deref()
        .map(|g| crate::plan::read(g, max_bytes));
    // Remote graphs are read and their targets checked before anything is opened.
    let local = args.graph.as_deref().zip(
        local_text
            .as_ref()
            .and_then(|t| t.as_ref().ok())
            .map(String::as_str),
    );
    let nodes = args
        .remote
        .nodes(local, max_bytes, &args.world.hostname()?)?;
    let remotes = if nodes.is_empty() {
        None
    } else {
        args.world.serve_for_remotes();
        Some(nodes)
    };
    // Without a graph of its own (only --remote), this host runs an empty one: it serves
    // the World and takes part in the fleet's converged state.
    let _empty_graph;
    let (graph_path, text) = match (args.graph.clone(), local_text) {
        (Some(p), Some(text)) => (p, text),
        _ => {
            let dir = tempfile::Builder::new()
                .prefix("homeostat-fleet.")
                .tempdir()?;
            let path = dir.path().join("fleet.yaml");
            let text = "graph: fleet\n".to_string();
            std::fs::write(&path, &text)?;
            _empty_graph = dir;
            (path, Ok(text))
        }
    };
    args.graph = Some(graph_path.clone());
    // A graph with a plugin lock file is planned every time: a cached plan would skip the
    // check of its pins.
    let plan_cache = args
        .plugins
        .cache_dir()
        .filter(|_| !crate::plan::pins::lock_path(&graph_path).exists())
        .and_then(|dir| PlanCache::new(&dir, &graph_path));
    // Reading and parsing the graph (or reading its cached plan) needs no plugin: do it
    // while the plugins load.
    let parsing = std::thread::Builder::new()
        .name("homeostat-parse".into())
        .spawn({
            let graph = graph_path.clone();
            let plan_cache = plan_cache.clone();
            move || read_graph(&graph, text, plan_cache.as_ref())
        })?;
    // The World (the local store, or etcd: served here or joined) opens while the plugins
    // load.
    let passed_on = PassedOn {
        etcd_prefix: args.world.etcd_prefix().to_string(),
        lease_ttl: args.world.lease_ttl(),
        noop: args.noop,
        converged_timeout: args.converged_timeout,
        live_push: !args.no_reload,
        ca_dir: args.world.ca_dir(),
    };
    let opening = tokio::spawn(async move { args.world.open().await });
    let (_runtime, registry) = args.plugins.load(&sys)?;
    let registry = Arc::new(registry);
    let opened = opening.await??;
    let world = opened.world.clone();
    if world.is_shared() {
        // etcd may be between leaders, or the member asked may have just died: wait.
        let attach = || sys.states.attach(&world);
        super::world::until_ok("reading this host's plugin state from etcd", attach).await;
        let announce = || converged::announce(&world);
        super::world::until_ok("announcing this host in etcd", announce).await;
    } else {
        sys.states.attach(&world).await?;
    }
    let _ = sys.world.set(world.clone());
    let fleet = match remotes {
        Some(targets) => match start_fleet(
            &args.remote,
            &args.plugins,
            passed_on,
            targets,
            &registry,
            &world,
            &stop_rx,
        )
        .await
        {
            Ok(fleet) => Some(fleet),
            Err(e) => {
                opened.close(false).await;
                return Err(e);
            }
        },
        None => None,
    };
    let read = match parsing.join() {
        Ok(read) => read,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let mut world_side = WorldSide::new(world.clone(), args.noop);
    // `--only` / `--tags`: the part of the graph that runs (and, for live swaps, of each
    // new version).
    let selection = target::Selection {
        only: std::mem::take(&mut args.only),
        tags: std::mem::take(&mut args.tags),
    };
    let planned = match plan_graph(&graph_path, read, &registry, plan_cache, &mut world_side).await
    {
        Ok((text, plan, doc, writer)) => target::select(plan, &selection)
            .map(|(plan, left_out)| (text, plan, doc, writer, left_out))
            .map_err(|e| format!("error: {e}")),
        Err(errors) => Err(errors.to_string()),
    };
    let (text, plan, doc, cache_writer, left_out) = match planned {
        Ok(planned) => planned,
        Err(message) => {
            eprintln_in_order!("{message}");
            if let Some(fleet) = fleet {
                fleet.stop(false).await;
            }
            opened.close(false).await;
            return Ok(ExitCode::FAILURE);
        }
    };
    let converged_timeout = args.converged_timeout;
    if !left_out.is_empty() {
        tracing::info!(
            "--only/--tags: running {} resources; {} not targeted (not run)",
            plan.resources.len(),
            left_out.len()
        );
    }
    let left_out = Arc::new(Mutex::new(left_out));
    let report_ctx = args.report.as_ref().map(|_| report::Context {
        host: world.hostname().to_string(),
        graph_name: plan.name.clone(),
        graph_path: std::path::absolute(&graph_path).unwrap_or_else(|_| graph_path.clone()),
        graph_sha256: cache::text_digest(&text),
        noop: args.noop,
        plugins: report::Context::plugins_of(&registry),
        started: started_at,
    });
    let report_ctx = report_ctx.map(Arc::new);
    // A long run with a report file writes one per converged period.
    let (periods, period_writer) = match (&args.report, &report_ctx, converged_timeout) {
        (Some(target @ report::Target::File(_)), Some(ctx), None) => {
            let (tx, rx) = mpsc::unbounded_channel();
            let writer = tokio::spawn(write_periods(rx, target.clone(), ctx.clone()));
            (Some(tx), Some(writer))
        }
        _ => (None, None),
    };
    tracing::info!(
        "running graph `{}`: {} resources, {} edges",
        plan.name,
        plan.resources.len(),
        plan.edges.len()
    );
    let hub = WatchHub::new()?;
    let (update_tx, update_rx) = mpsc::channel(1);
    let update_tx = if selection.is_everything() {
        update_tx
    } else {
        select_updates(update_tx, selection, left_out.clone())
    };
    let graph_source = source::start(
        source::Start {
            path: graph_path.clone(),
            max_bytes,
            loaded: text.into_bytes(),
            doc,
            reload: !args.no_reload,
        },
        &hub,
        registry.clone(),
        world_side,
        update_tx,
    )?;
    // On a worker thread rather than the thread blocked in `block_on`: the engine spawns
    // a task per vertex and is woken by them, and from a worker both stay on the
    // runtime's local queues instead of crossing threads through its global one.
    let engine = {
        // From here on a signal stops the engine instead of the process (see
        // `handle_signals`); the lock orders the two.
        let mut started = engine_started
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *started = true;
        tokio::spawn(engine::run(
            plan,
            hub,
            sys,
            RunOptions {
                noop: args.noop,
                diff: args.diff,
                converged_timeout,
                cluster: world.is_shared().then(|| world.clone()),
                periods,
            },
            stop_rx,
            update_rx,
        ))
    };
    let mut summary = engine.await?;
    drop(graph_source);
    summary.each.extend(
        std::mem::take(&mut *left_out.lock().unwrap_or_else(PoisonError::into_inner))
            .into_iter()
            .map(|id| ResourceOutcome::not_run(id, Outcome::NotTargeted)),
    );
    if let Some(writer) = period_writer {
        // The engine has dropped its sender: the writer ends after the last period.
        let _ = writer.await;
    }
    let settled = matches!(summary.stopped, Stopped::Settled(_));
    // The remotes leave before the World they joined closes.
    let hosts = match fleet {
        Some(fleet) => Some(fleet.stop(settled).await),
        None => None,
    };
    opened.close(settled).await;
    print_summary(&summary, args.noop);
    let hosts_changed = hosts.iter().flatten().any(|r| r.changed());
    let hosts_failed = match &hosts {
        Some(results) => {
            let failed = results.iter().filter(|r| !r.ok()).count();
            eprintln_in_order!("remote hosts: {}, {failed} failed", results.len());
            for line in crate::remote::fleet::summary_lines(results) {
                eprintln_in_order!("{line}");
            }
            failed
        }
        None => 0,
    };
    if let Some(writer) = cache_writer {
        // Long finished by now, unless the run was very short.
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
    let signal = stopped_by.load(std::sync::atomic::Ordering::Acquire);
    let result = RunResult {
        changed: summary.changes > 0 || (!args.noop && hosts_changed),
        pending: summary.count(Outcome::WouldChange) > 0 || (args.noop && hosts_changed),
        failed: summary.count(Outcome::Failed) + summary.count(Outcome::Blocked) > 0
            || hosts_failed > 0,
        interrupted: match summary.stopped {
            Stopped::Cancelled => Some(if signal > 0 { signal } else { libc::SIGINT }),
            Stopped::Shutdown if !summary.idle_at_stop => Some(signal).filter(|s| *s > 0),
            _ => None,
        },
    };
    let scheme = if args.detailed_exitcodes {
        Scheme::Detailed
    } else {
        Scheme::Plain
    };
    let code = scheme.code(result, args.noop);
    if let (Some(target), Some(ctx)) = (&args.report, &report_ctx) {
        let text = report::render(ctx, &summary, Some(code), None, summary.elapsed);
        if let Err(e) = report::write(target, &text, true) {
            eprintln_in_order!("error: cannot write the run report: {e}");
        }
    }
    Ok(ExitCode::from(code))
}

/// The sender the graph source sends new plans to, cutting each down to `selection`
/// before the engine gets it; a new version the selection does not fit (its `--only`
/// resource is gone) is refused like an invalid one, and the running graph stays.
fn select_updates(
    engine: mpsc::Sender<Plan>,
    selection: target::Selection,
    left_out: Arc<Mutex<Vec<crate::graph::ResId>>>,
) -> mpsc::Sender<Plan> {
    let (tx, mut rx) = mpsc::channel::<Plan>(1);
    tokio::spawn(async move {
        while let Some(plan) = rx.recv().await {
            match target::select(plan, &selection) {
                Ok((plan, out)) => {
                    *left_out.lock().unwrap_or_else(PoisonError::into_inner) = out;
                    if engine.send(plan).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::error!("the new version of the graph is not run: {e}"),
            }
        }
    });
    tx
}

/// Writes a report per converged period of a long run (see [`report`]).
async fn write_periods(
    mut rx: mpsc::UnboundedReceiver<Summary>,
    target: report::Target,
    ctx: Arc<report::Context>,
) {
    let mut periods = report::Periods::default();
    while let Some(snapshot) = rx.recv().await {
        let (n, period, length) = periods.next(&snapshot);
        let text = report::render(&ctx, &period, None, Some(n), length);
        let target = target.clone();
        let written = tokio::task::spawn_blocking(move || report::write(&target, &text, true));
        if let Ok(Err(e)) = written.await {
            tracing::warn!("cannot write the report of converged period {n}: {e}");
        }
    }
}

/// Handle SIGINT and SIGTERM for the whole run (see the module's "Signals"). While
/// `engine_started` is false a signal exits at once; the flag is set under its lock
/// together with the engine's start, so a signal either ends the process before the
/// engine exists or stops the engine.
fn handle_signals(
    stop_tx: watch::Sender<Shutdown>,
    stopped_by: Arc<std::sync::atomic::AtomicI32>,
    engine_started: Arc<Mutex<bool>>,
    processes: Processes,
    exit_with_stdin: bool,
) -> anyhow::Result<()> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        // What stopped the run, for its exit code (128 + the signal; a closed standard
        // input counts as SIGTERM: asked to stop).
        let signal = tokio::select! {
            _ = sigint.recv() => libc::SIGINT,
            _ = sigterm.recv() => libc::SIGTERM,
            _ = stdin_closed(), if exit_with_stdin => {
                tracing::info!("standard input closed (--exit-with-stdin)");
                libc::SIGTERM
            }
        };
        stopped_by.store(signal, std::sync::atomic::Ordering::Release);
        {
            let started = engine_started
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !*started {
                // Reading the graph (whatever its source), loading plugins or planning:
                // nothing was applied, so there is nothing to wait for.
                eprintln_in_order!("interrupted while starting: nothing was applied");
                processes.kill_all();
                super::logging::flush();
                std::process::exit(128 + signal);
            }
        }
        tracing::info!(
            "stopping: waiting for check-applies in progress (signal again to abandon them)"
        );
        stop_tx.send_replace(Shutdown::Graceful);
        let again = tokio::select! {
            _ = sigint.recv() => libc::SIGINT,
            _ = sigterm.recv() => libc::SIGTERM,
        };
        stopped_by.store(again, std::sync::atomic::Ordering::Release);
        eprintln_in_order!("interrupted: abandoning check-applies in progress");
        stop_tx.send_replace(Shutdown::Cancel);
        // A third signal, or a cancel that does not finish, ends the process.
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        // exit() runs no destructors: kill the commands still running ourselves.
        processes.kill_all();
        super::logging::flush();
        std::process::exit(128 + again);
    });
    Ok(())
}

/// Resolves when standard input reaches its end (or cannot be read). Read on a thread of
/// its own, not tokio's blocking pool: a read that never returns would hold up the
/// runtime's shutdown at exit for its whole timeout.
async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("homeostat-stdin".into())
        .spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 512];
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
    match spawned {
        Ok(_) => {
            let _ = rx.await;
        }
        // Never read: never closed.
        Err(_) => std::future::pending().await,
    }
}

/// The remote hosts' runs, in the background of this host's own.
struct Fleet {
    task: tokio::task::JoinHandle<Vec<crate::remote::HostResult>>,
    stop: watch::Sender<bool>,
    /// How long hosts get to end by themselves after a cluster-wide converge.
    linger: Duration,
}

impl Fleet {
    /// After this host's run: once it `settled` (cluster-wide, with --converged-timeout)
    /// the remotes end by themselves, so wait for them a while; otherwise, or after
    /// that, stop them.
    async fn stop(self, settled: bool) -> Vec<crate::remote::HostResult> {
        let mut task = self.task;
        if settled && let Ok(done) = tokio::time::timeout(self.linger, &mut task).await {
            return done.unwrap_or_default();
        }
        self.stop.send_replace(true);
        task.await.unwrap_or_default()
    }
}

/// What this run passes on to its remote hosts' runs.
struct PassedOn {
    etcd_prefix: String,
    lease_ttl: u64,
    noop: bool,
    converged_timeout: Option<Duration>,
    live_push: bool,
    /// The state directory's CA (for the remotes' certificates).
    ca_dir: Option<std::path::PathBuf>,
}

/// Starts the remote hosts' runs: the payload is hashed, the World's etcd is where
/// their tunnels lead, and this run's stop (a signal) stops them.
async fn start_fleet(
    remote: &RemoteArgs,
    plugins: &PluginArgs,
    passed_on: PassedOn,
    nodes: Vec<crate::remote::target::Node>,
    registry: &Registry,
    world: &crate::world::World,
    stop_rx: &watch::Receiver<Shutdown>,
) -> anyhow::Result<Fleet> {
    let crate::world::World::Etcd(etcd) = world else {
        anyhow::bail!("--remote needs this host's World on etcd (it serves one by default)");
    };
    let endpoint = etcd
        .endpoints()
        .split(',')
        .next()
        .unwrap_or_default()
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_string();
    let tls = remote.tls(etcd.security().server_name_for_remotes(), passed_on.ca_dir)?;
    if let Some(RemoteTls {
        source: CertSource::Ca(_),
        ..
    }) = &tls
    {
        // The host holding the CA lets every host of the tree in, with its own rights
        // (those in the middle of a hierarchy have no right to).
        let mut client = etcd.client();
        for host in nodes.iter().flat_map(|n| {
            std::iter::once(&n.target.hostname).chain(n.below.iter().map(|(t, _)| &t.hostname))
        }) {
            rbac::allow(&mut client, &passed_on.etcd_prefix, host, false)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot let remote host `{host}` into the cluster ({e}): the \
                         initiator of a TLS cluster must be a member (`homeostat cluster \
                         allow {} --serve`)",
                        etcd.hostname()
                    )
                })?;
        }
    }
    let docs: Vec<&GraphDoc> = nodes.iter().flat_map(|n| n.docs()).collect();
    let payload = remote.payload(&docs, registry, plugins).await?;
    let (stop, fleet_stop) = watch::channel(false);
    let mut shutdown = stop_rx.clone();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if shutdown.wait_for(|s| *s != Shutdown::Run).await.is_ok() {
            on_signal.send_replace(true);
        }
    });
    let opts = crate::remote::FleetOptions {
        ssh: remote.ssh(),
        cconns: remote.cconns(),
        caching: remote.caching(),
        payload: Arc::new(payload),
        etcd: endpoint,
        etcd_prefix: passed_on.etcd_prefix,
        noop: passed_on.noop,
        converged_timeout: passed_on.converged_timeout,
        lease_ttl: passed_on.lease_ttl,
        depth: remote.depths().0,
        max_depth: remote.depths().1,
        live_push: passed_on.live_push,
        tls: tls.map(Arc::new),
        pass_on: plugins.limit_args(),
        print: Arc::new(|line: &str| eprintln_in_order!("{line}")),
    };
    let task = tokio::spawn(crate::remote::fleet::run(
        nodes,
        opts,
        world.clone(),
        fleet_stop,
    ));
    Ok(Fleet {
        task,
        stop,
        linger: Duration::from_secs(passed_on.lease_ttl * 2 + 10),
    })
}

/// Parses `--converged-timeout`: seconds from 0 to one day, fractions allowed. NaN,
/// infinities, negative numbers and a positive value under a millisecond (`1e-300`, which
/// would silently become 0) are refused while the command line is parsed.
fn converged_timeout(text: &str) -> Result<Duration, String> {
    let max = Meta::MAX_MILLIS / 1000;
    let range = || format!("expected 0, or a number of seconds from 0.001 to {max}");
    let secs: f64 = text.trim().parse().map_err(|_| range())?;
    if secs == 0.0 {
        return Ok(Duration::ZERO);
    }
    if !(0.001..=Duration::from_secs(max).as_secs_f64()).contains(&secs) {
        return Err(range());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| range())
}

/// What the parse thread found: the graph's text, its digest when the plan cache is on,
/// and either the parsed document or the plan cached for exactly this text.
struct ReadGraph {
    text: String,
    digest: Option<cache::Digest256>,
    /// The graph may export or collect ([`source::may_use_world`]).
    uses_world: bool,
    content: Content,
}

enum Content {
    Parsed(GraphDoc),
    Cached(cache::Cached),
}

fn read_graph(
    path: &Path,
    text: Result<String, PlanError>,
    plan_cache: Option<&PlanCache>,
) -> Result<ReadGraph, PlanError> {
    let text = text?;
    // The plan cache keeps no exports or collects: such a graph is always parsed.
    let uses_world = source::may_use_world(&text);
    let plan_cache = plan_cache.filter(|_| !uses_world);
    let digest = plan_cache.map(|_| cache::text_digest(&text));
    let cached = plan_cache
        .zip(digest.as_deref())
        .and_then(|(c, d)| c.read(d));
    let content = match cached {
        Some(cached) => Content::Cached(cached),
        None => Content::Parsed(crate::plan::parse_text(path, &text)?),
    };
    Ok(ReadGraph {
        text,
        digest,
        uses_world,
        content,
    })
}

/// The graph's text, its plan, its document when it collects (the graph source plans it
/// again as what it collects changes), and the thread writing the plan cache.
type Planned = (
    String,
    Plan,
    Option<GraphDoc>,
    Option<std::thread::JoinHandle<()>>,
);

/// The plan of the graph read: the cached one when its key still matches, else a new
/// one (with its exports published and what it collects merged in), then cached on a
/// thread (whose handle is returned) for the next start.
async fn plan_graph(
    path: &Path,
    read: Result<ReadGraph, PlanError>,
    registry: &Registry,
    plan_cache: Option<PlanCache>,
    world: &mut WorldSide,
) -> Result<Planned, PlanError> {
    let ReadGraph {
        text,
        digest,
        uses_world,
        content,
    } = read?;
    let key = digest.as_deref().and_then(|d| cache::key(d, registry));
    let doc = match content {
        Content::Cached(cached) => match key.as_deref().and_then(|k| cached.resolve(k, registry)) {
            Some(plan) => {
                tracing::debug!("plan cache: hit, {} resources", plan.resources.len());
                // A cached graph exports nothing: retract what an earlier run exported.
                world.publish(&[]).await;
                return Ok((text, plan, None, None));
            }
            None => crate::plan::parse_text(path, &text)?,
        },
        Content::Parsed(doc) => doc,
    };
    if uses_world {
        let collecting = (!doc.collect.is_empty()).then(|| doc.clone());
        let plan = world.plan(doc, registry).await?;
        return Ok((text, plan, collecting, None));
    }
    let plan = crate::plan::check_and_plan(doc, registry).await?;
    world.publish(&[]).await;
    let writer = match (plan_cache, digest, key) {
        (Some(c), Some(d), Some(k)) => c.write(&d, &k, &plan),
        _ => None,
    };
    Ok((text, plan, None, writer))
}

/// Most resources listed by name in the closing summary, per list.
const SUMMARY_LIST: usize = 8;

/// The closing summary: one line that scripts parse (`converged after 0.31s: 3
/// resources, 3 changes, 0 failed`, with `, N blocked` when some were), then which
/// resources changed, failed and were blocked (by whom).
fn print_summary(s: &Summary, noop: bool) {
    let how = match s.stopped {
        // Asked to stop while resources were still being checked or waited for.
        Stopped::Shutdown if !s.idle_at_stop => "interrupted",
        Stopped::Shutdown => "stopped",
        Stopped::Cancelled => "cancelled",
        Stopped::Settled(Settled::Converged) => "converged",
        Stopped::Settled(Settled::WithFailures) => "settled with failures",
        Stopped::Period => "converged period",
    };
    // Changes made and changes that would be made (noop) are never added up: a dry run
    // cannot be mistaken for a repair.
    let counts = if noop {
        format!("{} changes pending", s.would_change)
    } else if s.would_change > 0 {
        format!(
            "{} changes, {} changes pending (noop)",
            s.changes, s.would_change
        )
    } else {
        format!("{} changes", s.changes)
    };
    let blocked = s.count(Outcome::Blocked);
    eprintln_in_order!(
        "{how} after {:.2}s: {} resources, {counts}, {} failed{}",
        s.elapsed.as_secs_f64(),
        s.resources(),
        s.count(Outcome::Failed),
        if blocked > 0 {
            format!(", {blocked} blocked")
        } else {
            String::new()
        }
    );
    let list = |items: Vec<String>| {
        let more = items.len().saturating_sub(SUMMARY_LIST);
        let mut text = items
            .into_iter()
            .take(SUMMARY_LIST)
            .collect::<Vec<_>>()
            .join(", ");
        if more > 0 {
            text.push_str(&format!(", and {more} more"));
        }
        text
    };
    let id = |r: &ResourceOutcome| text::escape(&r.id.to_string()).into_owned();
    let times = |r: &ResourceOutcome, n: usize| {
        if n > 1 {
            format!("{} ({n}x)", id(r))
        } else {
            id(r)
        }
    };
    /// A count of a resource's check-applies.
    type Count = fn(&ResourceOutcome) -> usize;
    let counted: [(&str, Count); 2] = [
        ("changed", |r| r.changes),
        ("would change (noop)", |r| r.would_change),
    ];
    for (label, count) in counted {
        let named: Vec<String> = s
            .each
            .iter()
            .filter(|r| count(r) > 0)
            .map(|r| times(r, count(r)))
            .collect();
        if !named.is_empty() {
            eprintln_in_order!("  {label}: {}", list(named));
        }
    }
    let failed: Vec<&ResourceOutcome> = s.with(&[Outcome::Failed]).collect();
    for r in failed.iter().take(SUMMARY_LIST) {
        let error = r.error.as_deref().unwrap_or_default();
        let first = error.lines().next().unwrap_or_default();
        eprintln_in_order!("  failed: {}: {}", id(r), text::escape(first));
    }
    if failed.len() > SUMMARY_LIST {
        eprintln_in_order!("  ... and {} more failed", failed.len() - SUMMARY_LIST);
    }
    let blocked: Vec<String> = s
        .with(&[Outcome::Blocked])
        .map(|r| match &r.blocked_by {
            Some(by) => format!("{} (by {})", id(r), text::escape(&by.to_string())),
            None => id(r),
        })
        .collect();
    if !blocked.is_empty() {
        eprintln_in_order!("  blocked: {}", list(blocked));
    }
    let untargeted: Vec<String> = s.with(&[Outcome::NotTargeted]).map(id).collect();
    if !untargeted.is_empty() {
        eprintln_in_order!("  not targeted (not run): {}", list(untargeted));
    }
    if s.swaps > 0 {
        eprintln_in_order!("  graph swaps: {}", s.swaps);
    }
}
