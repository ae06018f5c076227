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
//! The engine takes everything it touches as arguments ([`run`]), so tests drive it
//! directly.

pub mod converger;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::graph::{Meta, ResId};
use crate::plugin::bindings::{ResourceInfo, ResourceRef, WatchItem};
use crate::plugin::capabilities::fs::Footprint;
use crate::plugin::runtime::Plugin;
use crate::watch::WatchHub;
pub use converger::{Converger, Phase, Settled};

/// One resource, ready to run: validated, with its plugin and what it declared.
#[derive(Debug, Clone)]
pub struct PlannedResource {
    pub id: ResId,
    /// Params as JSON text, passed to every call.
    pub params: Arc<str>,
    pub meta: Meta,
    pub plugin: Arc<Plugin>,
    pub info: ResourceInfo,
}

/// A dependency: `from` runs before `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEdge {
    pub from: usize,
    pub to: usize,
    /// `to` gets `refresh = true` after `from` changed something.
    pub notify: bool,
}

/// A validated graph, resources in topological order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub resources: Vec<PlannedResource>,
    pub edges: Vec<PlannedEdge>,
}

/// How the engine runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Report what would change, change nothing.
    pub noop: bool,
    /// Stop once the graph has been settled for this long.
    pub converged_timeout: Option<Duration>,
}

/// Why the engine stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Asked to stop (signal).
    Shutdown,
    /// Settled for the converged timeout.
    Settled(Settled),
}

/// What a run did, for the summary printed at the end.
#[derive(Debug, Clone)]
pub struct Summary {
    pub stopped: Stopped,
    pub resources: usize,
    /// Check-applies that changed something (or would have, in noop).
    pub changes: usize,
    /// Resources whose last check-apply failed.
    pub failed: usize,
    /// Resources with changes pending (noop only).
    pub pending: usize,
    pub elapsed: Duration,
}

struct Vertex {
    id: ResId,
    reference: ResourceRef,
    params: Arc<str>,
    footprint: Arc<Footprint>,
    plugin: Arc<Plugin>,
    meta: Meta,
    watch: Vec<WatchItem>,
    dirty: AtomicBool,
    wake: Notify,
    /// Set by an upstream notify edge; cleared once a check-apply succeeds.
    refresh: AtomicBool,
    /// This vertex's phase, watched by its successors.
    phase: watch::Sender<Phase>,
    /// noop: the last check found changes to make.
    pending: AtomicBool,
}

impl Vertex {
    fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

struct Ctx {
    converger: Converger,
    /// Check-applies that changed something (or would have, in noop).
    changes: AtomicUsize,
    noop: bool,
    shutdown: watch::Receiver<bool>,
}

/// Run `plan` until `shutdown` turns true or, with a converged timeout, until it settles.
pub async fn run(
    plan: Plan,
    hub: WatchHub,
    opts: RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Summary {
    let started = Instant::now();
    let n = plan.resources.len();
    let ctx = Arc::new(Ctx {
        converger: Converger::new(n),
        changes: AtomicUsize::new(0),
        noop: opts.noop,
        shutdown: shutdown.clone(),
    });
    let vertices: Vec<Arc<Vertex>> = plan
        .resources
        .into_iter()
        .map(|r| {
            Arc::new(Vertex {
                reference: ResourceRef {
                    kind: r.id.kind.clone(),
                    name: r.id.name.clone(),
                },
                id: r.id,
                params: r.params,
                footprint: Arc::new(r.info.footprint),
                plugin: r.plugin,
                meta: r.meta,
                watch: r.info.watch,
                dirty: AtomicBool::new(true),
                wake: Notify::new(),
                refresh: AtomicBool::new(false),
                phase: watch::channel(Phase::Busy).0,
                pending: AtomicBool::new(false),
            })
        })
        .collect();
    let mut preds: Vec<Vec<Arc<Vertex>>> = vec![Vec::new(); n];
    let mut succs: Vec<Vec<(Arc<Vertex>, bool)>> = vec![Vec::new(); n];
    for e in &plan.edges {
        preds[e.to].push(vertices[e.from].clone());
        succs[e.from].push((vertices[e.to].clone(), e.notify));
    }

    let mut tasks = tokio::task::JoinSet::new();
    for ((v, p), s) in vertices.iter().cloned().zip(preds).zip(succs) {
        tasks.spawn(vertex_task(v, p, s, hub.clone(), ctx.clone()));
    }

    let mut shutdown_rx = shutdown.clone();
    let stopped = match opts.converged_timeout {
        Some(hold) => tokio::select! {
            s = ctx.converger.settled_for(hold) => Stopped::Settled(s),
            _ = shutdown_rx.wait_for(|s| *s) => Stopped::Shutdown,
        },
        None => {
            let _ = shutdown_rx.wait_for(|s| *s).await;
            Stopped::Shutdown
        }
    };
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}

    // Cleanups run concurrently (one after another took ~0.3 s at 10 000 resources).
    let mut cleanups = tokio::task::JoinSet::new();
    for v in vertices.iter().cloned() {
        cleanups.spawn(async move {
            if let Err(e) = v
                .plugin
                .cleanup(&v.reference, v.params.clone(), v.footprint.clone())
                .await
            {
                tracing::warn!("{}: cleanup failed: {e}", v.id);
            }
        });
    }
    while cleanups.join_next().await.is_some() {}
    let mut seen = std::collections::HashSet::new();
    for v in &vertices {
        if seen.insert(Arc::as_ptr(&v.plugin)) {
            tracing::debug!(
                "plugin {}: {} instances",
                v.plugin.label(),
                v.plugin.instances()
            );
        }
    }
    let failed = vertices
        .iter()
        .filter(|v| matches!(*v.phase.borrow(), Phase::Failed))
        .count();
    let pending = vertices
        .iter()
        .filter(|v| v.pending.load(Ordering::Acquire))
        .count();
    Summary {
        stopped,
        resources: n,
        changes: ctx.changes.load(Ordering::Acquire),
        failed,
        pending,
        elapsed: started.elapsed(),
    }
}

fn set_phase(v: &Vertex, ctx: &Ctx, to: Phase) {
    let from = v.phase.send_replace(to);
    ctx.converger.transition(from, to);
}

/// Wait until `v` is dirty (consuming the flag); false on shutdown.
async fn wait_dirty(v: &Vertex, shutdown: &mut watch::Receiver<bool>) -> bool {
    loop {
        let notified = v.wake.notified();
        if v.dirty.swap(false, Ordering::AcqRel) {
            return true;
        }
        tokio::select! {
            _ = notified => {}
            _ = shutdown.wait_for(|s| *s) => return false,
        }
    }
}

/// Wait until every predecessor is `Ok`, reporting `Blocked` while one has failed.
async fn wait_preds(v: &Vertex, preds: &[Arc<Vertex>], ctx: &Ctx) {
    for p in preds {
        let mut rx = p.phase.subscribe();
        loop {
            let phase = *rx.borrow_and_update();
            match phase {
                Phase::Ok => break,
                Phase::Failed | Phase::Blocked => {
                    if *v.phase.borrow() != Phase::Blocked {
                        tracing::warn!("{}: waiting for {}, which failed", v.id, p.id);
                        set_phase(v, ctx, Phase::Blocked);
                    }
                }
                Phase::Busy => {
                    if *v.phase.borrow() == Phase::Blocked {
                        set_phase(v, ctx, Phase::Busy);
                    }
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
    set_phase(v, ctx, Phase::Busy);
}

async fn vertex_task(
    v: Arc<Vertex>,
    preds: Vec<Arc<Vertex>>,
    succs: Vec<(Arc<Vertex>, bool)>,
    hub: WatchHub,
    ctx: Arc<Ctx>,
) {
    // Subscribe before the first check so that no change between check and watch is lost.
    let mut _subscriptions = Vec::new();
    let mut tickers = Vec::new();
    for item in &v.watch {
        match item {
            WatchItem::Path { path, recursive } => {
                let w = v.clone();
                match hub.subscribe(path, *recursive, Arc::new(move || w.mark_dirty())) {
                    Ok(s) => _subscriptions.push(s),
                    Err(e) => tracing::error!(
                        "{}: cannot watch {}: {e}; drift there is repaired only on other events",
                        v.id,
                        path.display()
                    ),
                }
            }
            WatchItem::Interval { ms } => {
                let w = v.clone();
                let period = Duration::from_millis(u64::from((*ms).max(1)));
                tickers.push(tokio::spawn(async move {
                    let mut t = tokio::time::interval(period);
                    t.tick().await;
                    loop {
                        t.tick().await;
                        w.mark_dirty();
                    }
                }));
            }
            WatchItem::Command(spec) => {
                let w = v.clone();
                tickers.push(tokio::spawn(crate::watch::process::watch(
                    v.id.to_string(),
                    spec.clone(),
                    v.footprint.clone(),
                    v.meta.retry,
                    v.meta.delay,
                    Arc::new(move || w.mark_dirty()),
                )));
            }
            WatchItem::Unit { name, session } => {
                let w = v.clone();
                tickers.push(tokio::spawn(crate::watch::systemd::watch(
                    v.id.to_string(),
                    name.clone(),
                    *session,
                    v.footprint.clone(),
                    v.meta.retry,
                    v.meta.delay,
                    Arc::new(move || w.mark_dirty()),
                )));
            }
        }
    }
    struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.iter().for_each(|t| t.abort());
        }
    }
    let _tickers = AbortOnDrop(tickers);

    let mut shutdown = ctx.shutdown.clone();
    let mut retries_left = v.meta.retry;
    loop {
        if !wait_dirty(&v, &mut shutdown).await {
            return;
        }
        set_phase(&v, &ctx, Phase::Busy);
        wait_preds(&v, &preds, &ctx).await;
        let apply = !(ctx.noop || v.meta.noop);
        let refresh = v.refresh.load(Ordering::Acquire);
        let timeout = v.meta.timeout.map(Duration::from_millis);
        let result = v
            .plugin
            .check_apply(
                &v.reference,
                v.params.clone(),
                v.footprint.clone(),
                apply,
                refresh,
                timeout,
            )
            .await;
        match result {
            Ok(out) => {
                retries_left = v.meta.retry;
                v.refresh.store(false, Ordering::Release);
                let changed = !out.ok;
                v.pending.store(changed && !apply, Ordering::Release);
                if changed {
                    ctx.changes.fetch_add(1, Ordering::AcqRel);
                    let what = if out.changes.is_empty() {
                        "changed".to_string()
                    } else {
                        out.changes
                            .iter()
                            .map(|c| c.summary.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    };
                    if apply {
                        tracing::info!("{}: {what}", v.id);
                    } else {
                        tracing::info!("{}: would change (noop): {what}", v.id);
                    }
                    if apply {
                        for (s, notify) in &succs {
                            if *notify {
                                s.refresh.store(true, Ordering::Release);
                                s.mark_dirty();
                            }
                        }
                    }
                } else {
                    tracing::debug!("{}: ok", v.id);
                }
                set_phase(&v, &ctx, Phase::Ok);
            }
            Err(e) => {
                tracing::error!("{}: {e}", v.id);
                if retries_left != 0 {
                    if retries_left > 0 {
                        retries_left -= 1;
                    }
                    let delay = Duration::from_millis(v.meta.delay);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                    v.mark_dirty();
                } else {
                    set_phase(&v, &ctx, Phase::Failed);
                }
            }
        }
    }
}
