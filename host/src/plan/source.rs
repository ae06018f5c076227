//! The graph source of a run: it feeds the engine's swap channel with a new [`Plan`]
//! whenever the graph changes, from either side:
//!
//! - **the file**: each saved version that differs from the last one loaded is planned
//!   and, when valid, swapped in; an invalid one is reported and the running graph stays.
//!   The file is read with its cap and type check ([`crate::sys::input`]) on a blocking
//!   thread, so a slow file system never holds up the engine.
//! - **the World**, for a graph that exports or collects: its exports are published (and
//!   retracted when they leave the graph), and every change to what this host may
//!   collect is merged in ([`super::collect`]) and swapped in through the same live swap
//!   (a new export is applied, a changed one updates its vertex, a vanished one removes
//!   it). An unchanged set of collected resources swaps nothing. Exports that could not
//!   be published, and exports to collect that could not be read (etcd unreachable),
//!   are tried again every 2 s until they are; `--noop` publishes none.
//!
//! Dropping the [`Source`] stops it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::collect::{self, Collector};
use super::{PlanError, check_and_plan, parse_text, read};
use crate::engine::Plan;
use crate::graph::{GraphDoc, ResourceDecl};
use crate::plugin::registry::Registry;
use crate::sys::inotify::{Subscription, WatchHub};
use crate::world::exports::{self, Exporter};
use crate::world::{World, segment};

/// Whether a graph's text may export or collect, so that it must be parsed (not taken
/// from the plan cache, which keeps no exports) and the World consulted. Conservative: a
/// comment that mentions `collect` costs the cache, never correctness.
pub fn may_use_world(text: &str) -> bool {
    text.contains("@@") || text.contains("export") || text.contains("collect")
}

/// The World side of a graph source.
pub struct WorldSide {
    world: World,
    exporter: Exporter,
    collector: Collector,
    /// The collected declarations last planned.
    collected: Vec<ResourceDecl>,
    /// Exports that could not be published (etcd unreachable): tried again every
    /// [`RETRY`] until they are.
    unpublished: Option<Vec<exports::Export>>,
    /// The last read of what this host may collect failed: read again every [`RETRY`]
    /// until it succeeds (no change in the World may come to wake it: found by the fault
    /// schedule, a collector kept a dead host's export for good).
    uncollected: bool,
    /// `--noop`: the World is read (collected resources run, in noop) but not written.
    noop: bool,
}

/// How long after a failed publish of the exports it is tried again.
const RETRY: Duration = Duration::from_secs(2);

impl WorldSide {
    /// `noop`: change nothing in the World either (exports are reported, not published).
    pub fn new(world: World, noop: bool) -> WorldSide {
        WorldSide {
            exporter: Exporter::new(world.clone()),
            noop,
            world,
            collector: Collector::default(),
            collected: Vec::new(),
            unpublished: None,
            uncollected: false,
        }
    }

    /// Make this host's exports in the World `exports`, logging what changed.
    pub async fn publish(&mut self, exports: &[exports::Export]) {
        if self.noop {
            if !exports.is_empty() {
                tracing::info!(
                    "world: would export {} resources (noop: nothing is published)",
                    exports.len()
                );
            }
            return;
        }
        match self.exporter.sync(exports).await {
            Ok((written, retracted)) => {
                if written + retracted > 0 {
                    tracing::info!("world: exported {written} resources, retracted {retracted}");
                }
                if self.unpublished.take().is_some() {
                    tracing::info!("world: this host's exports are published again");
                }
            }
            Err(e) => {
                if self.unpublished.is_none() {
                    tracing::error!(
                        "world: cannot publish this host's exports: {e}; retrying every {} s",
                        RETRY.as_secs()
                    );
                }
                self.unpublished = Some(exports.to_vec());
            }
        }
    }

    /// Wait until a failed publish or collect is due again (forever when none failed).
    async fn retry_due(&self) {
        if self.unpublished.is_some() || self.uncollected {
            tokio::time::sleep(RETRY).await;
        } else {
            std::future::pending::<()>().await;
        }
    }

    /// Publish `doc`'s exports, collect what it collects, and plan it with them.
    pub async fn plan(&mut self, doc: GraphDoc, registry: &Registry) -> Result<Plan, PlanError> {
        let me = self.world.hostname().to_owned();
        self.publish(&collect::exports_of(&doc, &me)).await;
        if doc.collect.is_empty() {
            self.collected.clear();
            return check_and_plan(doc, registry).await;
        }
        self.collected = self.collect(&doc, registry).await;
        self.plan_collected(doc, registry).await
    }

    /// What `doc` collects now; errors are logged.
    async fn collect(&mut self, doc: &GraphDoc, registry: &Registry) -> Vec<ResourceDecl> {
        let me = self.world.hostname().to_owned();
        let available = match exports::collectable(&self.world, &me).await {
            Ok(a) => {
                if std::mem::take(&mut self.uncollected) {
                    tracing::info!("world: the exports to collect are read again");
                }
                a
            }
            Err(e) => {
                if !self.uncollected {
                    tracing::error!(
                        "world: cannot read the exports to collect: {e}; keeping what was \
                         collected, reading again every {} s",
                        RETRY.as_secs()
                    );
                }
                self.uncollected = true;
                return self.collected.clone();
            }
        };
        let (decls, errors) = self.collector.collect(doc, &available, registry);
        for e in errors {
            tracing::error!("collect: {e}");
        }
        decls
    }

    async fn plan_collected(&self, doc: GraphDoc, registry: &Registry) -> Result<Plan, PlanError> {
        let (plan, dropped) = collect::plan_with(doc, self.collected.clone(), registry).await?;
        for d in dropped {
            tracing::error!("collect: {d}");
        }
        Ok(plan)
    }

    /// Watches of the two prefixes whose changes may change what this host collects:
    /// the exports to it and those to every host.
    fn watch_collectable(&self) -> Watches {
        let me = segment(self.world.hostname());
        (
            self.world.watch(&format!("{}{me}/", exports::PREFIX)),
            self.world
                .watch(&format!("{}{}/", exports::PREFIX, exports::EVERYWHERE)),
        )
    }
}

/// What [`WorldSide::watch_collectable`] watches.
type Watches = (
    tokio::sync::watch::Receiver<u64>,
    tokio::sync::watch::Receiver<u64>,
);

/// A running graph source (see the module doc).
pub struct Source {
    _subscription: Option<Subscription>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Source {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the source starts from.
pub struct Start {
    /// The graph file.
    pub path: PathBuf,
    /// Its cap.
    pub max_bytes: u64,
    /// The text the running graph was planned from: a save is compared with it (rather
    /// than with a second read at start-up, which cost time and could miss an edit made
    /// while the graph was being planned).
    pub loaded: Vec<u8>,
    /// The running graph's document, when it collects (it is planned again whenever what
    /// it may collect changes).
    pub doc: Option<GraphDoc>,
    /// Watch the file (`--no-reload` turns this off).
    pub reload: bool,
}

/// Start the source. Returns `None` when there is nothing to watch (no reload, nothing
/// collected and no export waiting to be published again).
pub fn start(
    start: Start,
    hub: &WatchHub,
    registry: Arc<Registry>,
    mut world: WorldSide,
    updates: mpsc::Sender<Plan>,
) -> Result<Option<Source>, crate::sys::inotify::WatchError> {
    let collecting = start.doc.as_ref().is_some_and(|d| !d.collect.is_empty());
    if !start.reload && !collecting && world.unpublished.is_none() {
        return Ok(None);
    }
    let file_changed = Arc::new(Notify::new());
    let subscription = if start.reload {
        let absolute = std::path::absolute(&start.path).unwrap_or_else(|_| start.path.clone());
        let waker = file_changed.clone();
        Some(hub.subscribe(&absolute, false, Arc::new(move || waker.notify_one()))?)
    } else {
        None
    };
    let mut world_changed = collecting.then(|| world.watch_collectable());
    let Start {
        path,
        max_bytes,
        loaded,
        mut doc,
        ..
    } = start;
    let task = tokio::spawn(async move {
        let mut last = loaded;
        // The last refusal logged (a FIFO, a device, too large), so a file that keeps
        // changing while refused is reported once.
        let mut refused: Option<String> = None;
        loop {
            let from_file = tokio::select! {
                () = file_changed.notified() => true,
                () = world_moved(&mut world_changed) => false,
                () = world.retry_due() => {
                    if let Some(exports) = world.unpublished.clone() {
                        world.publish(&exports).await;
                    }
                    if !world.uncollected {
                        continue;
                    }
                    false
                }
            };
            let planned = if from_file {
                // Editors write in several steps; let a burst settle before reading.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(text) = read_file(&path, max_bytes, &mut refused).await else {
                    continue;
                };
                if text.as_bytes() == last.as_slice() {
                    continue;
                }
                last = text.as_bytes().to_vec();
                match parse_text(&path, &text) {
                    Ok(new) => {
                        let now_collecting = !new.collect.is_empty();
                        if !now_collecting {
                            world_changed = None;
                        } else if world_changed.is_none() {
                            world_changed = Some(world.watch_collectable());
                        }
                        doc = now_collecting.then(|| new.clone());
                        world.plan(new, &registry).await
                    }
                    Err(e) => Err(e),
                }
            } else {
                let Some(d) = doc.as_ref() else {
                    continue;
                };
                let decls = world.collect(d, &registry).await;
                if decls == world.collected {
                    continue;
                }
                tracing::info!("world: what this host collects changed; swapping it in");
                world.collected = decls;
                world.plan_collected(d.clone(), &registry).await
            };
            match planned {
                Ok(plan) => {
                    if from_file {
                        tracing::info!("{}: changed; swapping in the new graph", path.display());
                    }
                    if updates.send(plan).await.is_err() {
                        return;
                    }
                }
                // One error per paragraph: below the line, in the log's `lines` field.
                Err(errors) => tracing::error!(
                    lines = %errors,
                    "{}: the new version is invalid; still running the previous graph:",
                    path.display()
                ),
            }
        }
    });
    Ok(Some(Source {
        _subscription: subscription,
        task,
    }))
}

/// Wait until either watch of the World moves (forever when there is none).
async fn world_moved(watches: &mut Option<Watches>) {
    let Some((a, b)) = watches else {
        return std::future::pending().await;
    };
    let moved = tokio::select! {
        r = a.changed() => r.is_ok(),
        r = b.changed() => r.is_ok(),
    };
    if !moved {
        *watches = None;
    }
}

/// Read the graph file; `None` (logged once per distinct refusal) when it cannot be.
async fn read_file(path: &Path, max_bytes: u64, refused: &mut Option<String>) -> Option<String> {
    let reading = tokio::task::spawn_blocking({
        let path = path.to_path_buf();
        move || read(&path, max_bytes)
    });
    match reading.await {
        Ok(Ok(text)) => {
            *refused = None;
            Some(text)
        }
        // Between an editor's delete and create: the next event brings it back.
        Ok(Err(e)) if e.is_not_found() => None,
        Ok(Err(e)) => {
            let message = e.to_string();
            if refused.as_deref() != Some(message.as_str()) {
                tracing::error!("{message}; still running the previous graph");
                *refused = Some(message);
            }
            None
        }
        // The runtime is shutting down.
        Err(_) => std::future::pending().await,
    }
}
