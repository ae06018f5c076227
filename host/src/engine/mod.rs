//! The engine: one task per vertex turns watch events into check-apply calls in
//! dependency order, and a converger says when the graph has settled.
//!
//! A vertex is *dirty* when something it watches changed (or at start). A dirty vertex
//! waits until every predecessor's last check-apply succeeded, then calls its plugin's
//! check-apply; events that arrive meanwhile mark it dirty again, so nothing is lost and
//! bursts coalesce. Independent vertices run in parallel (bounded by each plugin's
//! instance pool). A failure is logged with `kind[name]`, retried per the `retry` and
//! `delay` metaparams, and blocks only the vertex's successors; the engine keeps going.
//!
//! Edges order vertices, and carry more: a `notify` edge gives the downstream
//! `refresh = true` after the upstream changed something (kept until a check-apply of the
//! downstream succeeds); a `send` edge maps values the upstream published onto the
//! downstream's params (a changed value makes the downstream dirty); and an upstream that
//! changed something pokes its successors. Metaparams (`poll`, `limit`/`burst`, `sema`,
//! `timeout`, `retry`/`delay`, `noop`, `hidden`) are honoured per vertex. Editing
//! resources that share a file (`line`, `ini`) take turns on it and have their edits
//! written together (`edits`). Resources of a kind that groups (`pkg`) and are ready at
//! the same moment are applied in one call of their plugin (`groups`, mgmt's
//! `autogroup`).
//!
//! A running graph can be replaced ([`run`]'s `updates`): unchanged vertices keep running
//! untouched (same task, state, refresh flags and sent values), changed ones are stopped,
//! cleaned up and started anew, removed ones are cleaned up, new ones start, and every
//! vertex is rewired to the new edges.
//!
//! The engine takes everything it touches as arguments ([`run`]), so tests drive it
//! directly.

pub mod converger;
mod edits;
mod groups;
mod limits;
mod types;
mod vertex;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::graph::ResId;
use crate::sys::Services;
use crate::sys::fs::Managed;
use crate::sys::inotify::{Subscription, WatchHub};
use crate::world::World;
pub use converger::{Converger, Phase, Settled};
pub use types::{
    Outcome, Plan, PlannedEdge, PlannedResource, ResourceOutcome, RunOptions, Shutdown, Stopped,
    Summary,
};
use vertex::{Ctx, Links, Pred, Succ, Vertex};

/// A vertex and its task.
struct Running {
    v: Arc<Vertex>,
    task: tokio::task::JoinHandle<()>,
}

/// Vertices subscribed to their paths in one batch before their tasks start. Starting in
/// batches lets the first check-applies run (on another worker) while the watch hub is still
/// placing the later vertices' watches, instead of after all 10 000 of them.
const SPAWN_BATCH: usize = 500;

/// The graph being run.
struct Engine {
    ctx: Arc<Ctx>,
    hub: WatchHub,
    /// The vertices in the plan's (topological) order. Kept as a list rather than a map
    /// by id: only a graph swap looks vertices up by id, and it indexes them itself.
    running: Vec<Running>,
    swaps: usize,
}

impl Engine {
    /// Subscribe linked vertices to their paths and start their tasks, a batch at a time;
    /// returns the tasks in the order of `vertices`. The converger must already count them.
    /// `started` is when building the vertices began, for the debug log.
    fn spawn(
        &mut self,
        vertices: &[Arc<Vertex>],
        started: Instant,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::with_capacity(vertices.len());
        for batch in vertices.chunks(SPAWN_BATCH) {
            let mut owners = Vec::new();
            let mut requests = Vec::new();
            for (i, v) in batch.iter().enumerate() {
                for r in vertex::path_watches(v) {
                    owners.push(i);
                    requests.push(r);
                }
            }
            let mut subs: Vec<Vec<Subscription>> = batch.iter().map(|_| Vec::new()).collect();
            let placed = self.hub.subscribe_many(requests);
            // The n-th result of a vertex is for its n-th path watch. The path is looked up
            // again only when it failed, rather than copied for every request up front.
            let mut nth = vec![0usize; batch.len()];
            for (i, result) in owners.into_iter().zip(placed) {
                let n = nth[i];
                nth[i] += 1;
                match result {
                    Ok(s) => subs[i].push(s),
                    Err(e) => {
                        let path = vertex::path_watches(&batch[i])
                            .into_iter()
                            .nth(n)
                            .map(|r| r.path)
                            .unwrap_or_default();
                        tracing::error!(
                            "{}: cannot watch {}: {e}; drift there is repaired only on other \
                             events",
                            batch[i].id,
                            path.display()
                        )
                    }
                }
            }
            if tasks.is_empty() && batch.len() < vertices.len() {
                tracing::debug!(
                    "starting the first {} of {} vertices after {:.1?}",
                    batch.len(),
                    vertices.len(),
                    started.elapsed()
                );
            }
            for (v, paths) in batch.iter().zip(subs) {
                tasks.push(tokio::spawn(vertex::run(
                    v.clone(),
                    paths,
                    self.ctx.clone(),
                )));
            }
        }
        tasks
    }

    /// Rewire every vertex to `edges` (indices into `vertices`), then nudge them all so
    /// waiters re-check their predecessors.
    fn link(vertices: &[Arc<Vertex>], edges: &[PlannedEdge]) {
        let mut links: Vec<Links> = vertices.iter().map(|_| Links::default()).collect();
        for e in edges {
            let send = Arc::new(e.send.clone());
            links[e.to].preds.push(Pred {
                v: vertices[e.from].clone(),
                send: send.clone(),
            });
            links[e.from].succs.push(Succ {
                v: vertices[e.to].clone(),
                notify: e.notify,
                send,
            });
        }
        for (v, l) in vertices.iter().zip(links) {
            *v.links.write().expect("links lock") = l;
        }
        vertices.iter().for_each(|v| v.nudge());
    }

    /// Start a fresh plan (no vertex running yet; the converger already counts them).
    fn load(&mut self, plan: Plan) {
        let started = Instant::now();
        self.manage(&plan);
        // The sweep (a directory listing of every managed directory) overlaps building
        // the vertices; it is done before any task starts.
        let vertices: Vec<Arc<Vertex>> = std::thread::scope(|scope| {
            let sweep = scope.spawn(|| self.sweep());
            let vertices = plan
                .resources
                .into_iter()
                .map(|r| Arc::new(Vertex::new(r)))
                .collect();
            if sweep.join().is_err() {
                tracing::error!("sweeping staging files panicked");
            }
            vertices
        });
        tracing::debug!(
            "managed paths recorded, staging files swept and vertices built in {:.1?}",
            started.elapsed()
        );
        // Link before the tasks run: start them after.
        Self::link(&vertices, &plan.edges);
        self.ctx.edits.join(&vertices);
        self.ctx.groups.join(&vertices);
        let tasks = self.spawn(&vertices, started);
        self.running = vertices
            .into_iter()
            .zip(tasks)
            .map(|(v, task)| Running { v, task })
            .collect();
    }

    /// Tell the `fs` service which paths `plan` writes: on the way to any path, a symlink
    /// at one of them is never followed.
    fn manage(&self, plan: &Plan) {
        let managed = Managed::new(
            plan.resources
                .iter()
                .map(|r| (r.id.to_string(), &r.info.footprint)),
        );
        self.ctx.sys.fs.set_managed(managed);
    }

    /// Remove the staging files a killed homeostat left beside what the graph writes, before
    /// any check-apply runs (so none of this run's writes is in flight).
    fn sweep(&self) {
        let swept = self.ctx.sys.fs.sweep();
        if !swept.removed.is_empty() {
            tracing::info!(
                "removed {} temporary file(s) left by an earlier run that was killed: {}",
                swept.removed.len(),
                swept
                    .removed
                    .iter()
                    .take(5)
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for (path, why) in swept.failed {
            tracing::warn!("cannot remove temporary files in {}: {why}", path.display());
        }
    }

    /// Stop the given vertices (their in-flight check-applies finish), clean them up and
    /// take them out of the converger.
    async fn retire(&mut self, gone: Vec<Running>) {
        for r in &gone {
            r.v.stop.send_replace(true);
        }
        let mut cleanups = tokio::task::JoinSet::new();
        for r in gone {
            let ctx = self.ctx.clone();
            cleanups.spawn(async move {
                let _ = r.task.await;
                ctx.converger.remove(r.v.phase());
                cleanup(&r.v).await;
                // What its commands left running (a daemon) stops with it.
                if let Some(owner) = r.v.footprint.owner.clone() {
                    let processes = ctx.sys.processes.clone();
                    let _ = tokio::task::spawn_blocking(move || processes.stop_owner(&owner)).await;
                }
            });
        }
        while cleanups.join_next().await.is_some() {}
    }

    /// Apply a new plan: keep what is unchanged, replace what changed, remove what is
    /// gone, start what is new, rewire everything.
    async fn swap(&mut self, plan: Plan) {
        self.manage(&plan);
        let mut new_ids: HashMap<&ResId, &PlannedResource> = HashMap::new();
        for r in &plan.resources {
            new_ids.insert(&r.id, r);
        }
        let mut keep: HashMap<ResId, Running> = HashMap::new();
        let mut replace = Vec::new();
        let mut changed = 0;
        for running in std::mem::take(&mut self.running) {
            let id = &running.v.id;
            match new_ids.get(id) {
                Some(r) if running.v.runs(r) => {
                    let v = &running.v;
                    if v.meta.rewatch && v.phase() == Phase::Failed {
                        tracing::info!("{id}: failed earlier; restarting it (meta rewatch)");
                        changed += 1;
                        replace.push(running);
                    } else {
                        // A conflict (one file, two names) holds until the graph changes:
                        // it just did, so look again.
                        if v.conflicted.swap(false, Ordering::SeqCst) {
                            v.mark_dirty();
                        }
                        keep.insert(id.clone(), running);
                    }
                }
                Some(_) => {
                    tracing::info!("{id}: changed in the new graph; replacing it");
                    changed += 1;
                    replace.push(running);
                }
                None => {
                    tracing::info!("{id}: not in the new graph; removing it");
                    replace.push(running);
                }
            }
        }
        // Every resource of the new plan that was running is either kept or changed.
        let added = plan.resources.len() - keep.len() - changed;
        let removed = replace.len() - changed;
        drop(new_ids);
        // Servers of resources that are gone or no longer serve stop now; the others are
        // handed to the replacing vertex by its first check-apply.
        let serving: std::collections::HashSet<&ResId> = plan
            .resources
            .iter()
            .filter(|r| vertex::serves(&r.meta, &r.info.watch, self.ctx.noop))
            .map(|r| &r.id)
            .collect();
        self.ctx.servers.retain(|id| serving.contains(id));
        drop(serving);
        self.retire(replace).await;

        let started = Instant::now();
        let mut fresh = Vec::new();
        let mut kept = Vec::with_capacity(plan.resources.len());
        let vertices: Vec<Arc<Vertex>> = plan
            .resources
            .into_iter()
            .map(|r| match keep.remove(&r.id) {
                Some(running) => {
                    let v = running.v.clone();
                    kept.push(Some(running));
                    v
                }
                None => {
                    let v = Arc::new(Vertex::new(r));
                    fresh.push(v.clone());
                    kept.push(None);
                    v
                }
            })
            .collect();
        Self::link(&vertices, &plan.edges);
        fresh.iter().for_each(|_| self.ctx.converger.add());
        self.ctx.edits.join(&fresh);
        self.ctx.groups.join(&fresh);
        let mut tasks = self.spawn(&fresh, started).into_iter();
        self.running = vertices
            .into_iter()
            .zip(kept)
            .map(|(v, kept)| {
                kept.unwrap_or_else(|| Running {
                    v,
                    task: tasks.next().expect("a task per fresh vertex"),
                })
            })
            .collect();
        self.swaps += 1;
        tracing::info!(
            "graph `{}` swapped in: {} unchanged, {changed} replaced, {added} added, {removed} removed",
            plan.name,
            self.running.len() - changed - added,
        );
    }

    fn vertices(&self) -> impl Iterator<Item = &Arc<Vertex>> {
        self.running.iter().map(|r| &r.v)
    }
}

/// How long a host in a cluster must be settled before it says it has converged, when no
/// `--converged-timeout` says.
const CLUSTER_HOLD: Duration = Duration::from_secs(5);

/// In a cluster: publish this host's converged state as it changes, and (with a converged
/// timeout) return once this host and every other live host have converged.
async fn cluster_settled(converger: &Converger, hold: Option<Duration>, world: &World) -> Settled {
    use crate::world::converged::{self, HostState};
    let publish = async |state: HostState| {
        if let Err(e) = converged::publish(world, state).await {
            tracing::warn!("cannot publish this host's converged state: {e}");
        }
    };
    loop {
        let settled = converger.settled_for(hold.unwrap_or(CLUSTER_HOLD)).await;
        publish(match settled {
            Settled::Converged => HostState::Converged,
            Settled::WithFailures => HostState::Failed,
        })
        .await;
        tokio::select! {
            () = converged::all_settled(world), if hold.is_some() => return settled,
            () = converger.unsettled() => publish(HostState::Busy).await,
        }
    }
}

async fn cleanup(v: &Vertex) {
    if let Err(e) = v
        .plugin
        .cleanup(&v.reference, v.params.clone(), v.footprint.clone())
        .await
    {
        tracing::warn!("{}: cleanup failed: {e}", v.id);
    }
}

/// Clean up many vertices: one batched request per plugin (its batches spread over the
/// plugin's instances), all plugins at once. One task and queue hop per resource took
/// ~0.1 s at 10 000 resources; one after another ~0.3 s.
async fn cleanup_all(vertices: Vec<Arc<Vertex>>) {
    let mut by_plugin: Vec<Vec<Arc<Vertex>>> = Vec::new();
    // A kind whose cleanup does nothing (e.g. `file`) needs no call, only its `state`
    // values dropped: at 10 000 resources, copying each one's id, params and footprint
    // into a request that is then skipped was ~3 % of an idempotent pass.
    let (called, skipped): (Vec<_>, Vec<_>) = vertices
        .into_iter()
        .partition(|v| v.plugin.has_cleanup(&v.reference.kind));
    for v in &skipped {
        v.plugin.forget(&v.reference);
    }
    for v in called {
        match by_plugin
            .iter_mut()
            .find(|group| Arc::ptr_eq(&group[0].plugin, &v.plugin))
        {
            Some(group) => group.push(v),
            None => by_plugin.push(vec![v]),
        }
    }
    let mut cleanups = tokio::task::JoinSet::new();
    for group in by_plugin {
        cleanups.spawn(async move {
            let plugin = group[0].plugin.clone();
            let requests = group
                .iter()
                .map(|v| (v.reference.clone(), v.params.clone(), v.footprint.clone()))
                .collect();
            for (v, result) in group.iter().zip(plugin.cleanup_many(requests).await) {
                if let Err(e) = result {
                    tracing::warn!("{}: cleanup failed: {e}", v.id);
                }
            }
        });
    }
    while cleanups.join_next().await.is_some() {}
}

/// Run `plan` until `shutdown` asks to stop or, with a converged timeout, until it
/// settles. Each plan received on `updates` replaces the running graph (see the module
/// docs); the caller validates it first, so a bad graph never reaches the engine.
pub async fn run(
    plan: Plan,
    hub: WatchHub,
    sys: Services,
    opts: RunOptions,
    mut shutdown: watch::Receiver<Shutdown>,
    mut updates: mpsc::Receiver<Plan>,
) -> Summary {
    let started = Instant::now();
    let ctx = Arc::new(Ctx {
        // Counts the plan's vertices from the start (as busy): the same as adding them one
        // by one, without a notification per vertex.
        converger: Converger::new(plan.resources.len()),
        changes: AtomicUsize::new(0),
        would: AtomicUsize::new(0),
        noop: opts.noop,
        diff: opts.diff,
        semaphores: limits::Semaphores::default(),
        servers: vertex::Servers::default(),
        sys,
        edits: edits::EditGroups::default(),
        groups: groups::Groups::default(),
    });
    let mut engine = Engine {
        ctx: ctx.clone(),
        hub,
        running: Vec::new(),
        swaps: 0,
    };
    engine.load(plan);
    tracing::debug!("engine started in {:.1?}", started.elapsed());

    // With `periods`, a snapshot each time the graph settles after activity.
    let mut period_sent: Option<u64> = None;
    let stopped = loop {
        let period = async {
            let Some(tx) = &opts.periods else {
                return std::future::pending().await;
            };
            if let Some(epoch) = period_sent {
                ctx.converger.changed_since(epoch).await;
            }
            ctx.converger.settled_for(Duration::ZERO).await;
            tx
        };
        let settle = async {
            match (opts.converged_timeout, &opts.cluster) {
                (Some(hold), None) => ctx.converger.settled_for(hold).await,
                (hold, Some(world)) => cluster_settled(&ctx.converger, hold, world).await,
                (None, None) => std::future::pending().await,
            }
        };
        tokio::select! {
            s = settle => break Stopped::Settled(s),
            // The guard `wait_for` returns is dropped at once: held across the swap's
            // await it would make this future `!Send`.
            _ = async { drop(shutdown.wait_for(|s| *s >= Shutdown::Graceful).await) } => {
                break Stopped::Shutdown
            }
            Some(plan) = updates.recv() => engine.swap(plan).await,
            tx = period => {
                period_sent = Some(ctx.converger.epoch());
                let _ = tx.send(summarize(&engine, Stopped::Period, true, started));
            }
        }
    };

    tracing::debug!("engine stopping after {:.1?}", started.elapsed());
    // Whether the stop interrupts anything: asked while every resource was checked and
    // settled, a stop is the end of a run that did its work.
    let idle_at_stop = ctx.converger.busy() == 0;
    // The graph is done: no more events are needed, and with the hub closed the
    // vertices drop their watches for free (one by one, 10 000 took ~75 ms).
    engine.hub.close();
    // Let in-flight check-applies finish unless told to abandon them.
    for r in &engine.running {
        r.v.stop.send_replace(true);
    }
    let mut tasks: Vec<_> = engine.running.iter_mut().map(|r| &mut r.task).collect();
    let all_done = async {
        for t in tasks.iter_mut() {
            let _ = t.await;
        }
    };
    let cancelled = tokio::select! {
        _ = all_done => false,
        _ = shutdown.wait_for(|s| *s == Shutdown::Cancel) => true,
    };
    ctx.servers.retain(|_| false);
    let stopped = if cancelled {
        engine.running.iter().for_each(|r| r.task.abort());
        Stopped::Cancelled
    } else {
        // The resources stay in the graph: their `state` values are kept for the next run.
        engine.ctx.sys.states.stopping();
        cleanup_all(engine.vertices().cloned().collect()).await;
        engine.ctx.sys.states.flush().await;
        // What the resources' commands left running (daemons) stops with them.
        let processes = engine.ctx.sys.processes.clone();
        let _ = tokio::task::spawn_blocking(move || processes.stop_all()).await;
        stopped
    };
    tracing::debug!("engine stopped after {:.1?}", started.elapsed());
    log_instances(&engine);
    let summary = summarize(&engine, stopped, idle_at_stop, started);
    // Freeing a large graph takes a while (~30 ms for 10 000 resources) and nobody waits
    // for it: do it off the caller's path.
    drop_in_background(engine);
    summary
}

/// Drops `value` on a short-lived thread: for large structures nobody waits for (a graph
/// of 10 000 resources takes tens of milliseconds to free). If no thread can be started,
/// `spawn` drops the closure, and the value with it, right here.
pub(crate) fn drop_in_background<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("homeostat-drop".into())
        .spawn(move || drop(value));
}

/// Log how many instances each plugin of the graph ended with.
fn log_instances(engine: &Engine) {
    let mut seen = std::collections::HashSet::new();
    for v in engine.vertices() {
        if seen.insert(Arc::as_ptr(&v.plugin)) {
            tracing::debug!(
                "plugin {}: {} instances",
                v.plugin.label(),
                v.plugin.instances()
            );
        }
    }
}

/// What the run did so far: at the end, or (`Stopped::Period`) each time it settles.
fn summarize(engine: &Engine, stopped: Stopped, idle_at_stop: bool, started: Instant) -> Summary {
    Summary {
        stopped,
        idle_at_stop,
        changes: engine.ctx.changes.load(Ordering::Acquire),
        would_change: engine.ctx.would.load(Ordering::Acquire),
        elapsed: started.elapsed(),
        each: engine.vertices().map(|v| outcome_of(v)).collect(),
        swaps: engine.swaps,
    }
}

/// What became of `v` so far.
fn outcome_of(v: &Vertex) -> ResourceOutcome {
    let record = v.record.lock().expect("record lock").clone();
    let changes = v.changes.load(Ordering::Acquire);
    let would_change = v.would.load(Ordering::Acquire);
    let error = v.last_error.lock().expect("error lock").clone();
    let outcome = match v.phase() {
        Phase::Failed => Outcome::Failed,
        Phase::Blocked => Outcome::Blocked,
        // Waiting to retry after an error.
        Phase::Busy if error.is_some() => Outcome::Failed,
        Phase::Busy => Outcome::Unfinished,
        Phase::Ok if v.meta.hidden => Outcome::Skipped,
        Phase::Ok if v.pending.load(Ordering::Acquire) => Outcome::WouldChange,
        Phase::Ok if changes > 0 => Outcome::Changed,
        Phase::Ok => Outcome::Unchanged,
    };
    ResourceOutcome {
        id: v.id.clone(),
        outcome,
        changes,
        would_change,
        what: record.what,
        more: record.more,
        error: matches!(outcome, Outcome::Failed).then(|| error.unwrap_or_else(|| "failed".into())),
        blocked_by: record.blocked_by.filter(|_| outcome == Outcome::Blocked),
        checks: record.checks,
        busy: record.busy,
    }
}
