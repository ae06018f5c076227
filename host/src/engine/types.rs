//! What the engine is given and what it gives back: a [`Plan`] (validated resources and
//! their edges), how to run it ([`RunOptions`], [`Shutdown`]), and what happened
//! ([`Stopped`], [`Summary`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::converger::Settled;
use crate::graph::{Meta, ResId};
use crate::plugin::manifest::SendType;
use crate::plugin::pool::Plugin;
use crate::plugin::types::ResourceInfo;

/// One resource, ready to run: validated, with its plugin and what it declared.
#[derive(Debug, Clone)]
pub struct PlannedResource {
    /// `kind[name]`.
    pub id: ResId,
    /// Params as JSON text, passed to every call.
    pub params: Arc<str>,
    /// Its metaparams.
    pub meta: Meta,
    /// The plugin of its kind.
    pub plugin: Arc<Plugin>,
    /// What its `validate` declared.
    pub info: ResourceInfo,
    /// The values its kind declares it sends.
    pub sends: Arc<BTreeMap<String, SendType>>,
}

/// A dependency: `from` runs before `to`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedEdge {
    /// Index of the upstream resource in [`Plan::resources`].
    pub from: usize,
    /// Index of the downstream resource.
    pub to: usize,
    /// `to` gets `refresh = true` after `from` changed something.
    pub notify: bool,
    /// send/recv: `from`'s key → `to`'s param.
    pub send: BTreeMap<String, String>,
    /// Added by the engine (autoedge), not written in the graph.
    pub auto: bool,
}

/// A validated graph, resources in topological order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The graph's name.
    pub name: String,
    /// Its resources, in topological order.
    pub resources: Vec<PlannedResource>,
    /// Its edges, autoedges included.
    pub edges: Vec<PlannedEdge>,
}

/// How the engine runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Report what would change, change nothing.
    pub noop: bool,
    /// Log content diffs of real changes too (`run --diff`; the host makes them around
    /// each write, see `FsHost::show_diffs`).
    pub diff: bool,
    /// Stop once the graph has been settled for this long (in a cluster: once every live
    /// host has).
    pub converged_timeout: Option<Duration>,
    /// The World shared with other hosts, when there is one: this host's converged state
    /// is published there, and `converged_timeout` waits for every host.
    pub cluster: Option<crate::world::World>,
    /// Sent a [`Summary`] (with [`Stopped::Period`]) each time the graph settles after
    /// activity: the run report of a long run.
    pub periods: Option<tokio::sync::mpsc::UnboundedSender<Summary>>,
}

/// How far a stop request has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shutdown {
    /// Keep running.
    Run,
    /// Stop starting check-applies, let those in progress finish, clean up.
    Graceful,
    /// Abandon check-applies in progress now (no cleanup).
    Cancel,
}

/// Why the engine stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Asked to stop (signal); in-flight check-applies finished.
    Shutdown,
    /// Asked twice: in-flight check-applies were abandoned.
    Cancelled,
    /// Settled for the converged timeout.
    Settled(Settled),
    /// Not stopped: a snapshot taken while running, when the graph settled (see
    /// [`RunOptions::periods`]).
    Period,
}

/// What became of one resource in a run (or in one converged period of a long run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Checked, and already in its declared state.
    Unchanged,
    /// Changed by a check-apply and in its declared state at the end.
    Changed,
    /// Would change (`--noop` or `meta: {noop: true}`): changes pending.
    WouldChange,
    /// Its last check-apply failed.
    Failed,
    /// Not run: a resource it depends on failed.
    Blocked,
    /// Not run by design (`meta: {hidden: true}`).
    Skipped,
    /// Not run to the end: the run stopped while it was being checked or waited for.
    Unfinished,
    /// Not run: outside `run --only`/`--tags` and what those depend on.
    NotTargeted,
}

/// One resource's record: its outcome and how it got there.
#[derive(Debug, Clone)]
pub struct ResourceOutcome {
    /// `kind[name]`.
    pub id: ResId,
    /// What became of it.
    pub outcome: Outcome,
    /// Check-applies that changed something.
    pub changes: usize,
    /// Check-applies that would have changed something (noop).
    pub would_change: usize,
    /// What changed (or would), one line per change, oldest first; at most
    /// `MAX_RECORDED` (32) lines are kept, the count of the others is in `more`.
    pub what: Vec<String>,
    /// Lines of `what` that were not kept.
    pub more: usize,
    /// The error of its last check-apply, when it failed.
    pub error: Option<String>,
    /// The failed resource it waits for, when blocked.
    pub blocked_by: Option<ResId>,
    /// Check-applies run.
    pub checks: usize,
    /// Time spent in them.
    pub busy: Duration,
}

impl ResourceOutcome {
    /// A resource that did not run, with `outcome`.
    pub fn not_run(id: ResId, outcome: Outcome) -> ResourceOutcome {
        ResourceOutcome {
            id,
            outcome,
            changes: 0,
            would_change: 0,
            what: Vec::new(),
            more: 0,
            error: None,
            blocked_by: None,
            checks: 0,
            busy: Duration::ZERO,
        }
    }
}

/// Most change lines kept per resource (see [`ResourceOutcome::what`]).
pub const MAX_RECORDED: usize = 32;

/// What a run did, for the summary printed at the end and the run report.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Why it stopped.
    pub stopped: Stopped,
    /// Nothing was in progress when it stopped: every resource had been checked since
    /// its last event (a stop then interrupts nothing).
    pub idle_at_stop: bool,
    /// Check-applies that changed something.
    pub changes: usize,
    /// Check-applies that would have changed something (`--noop`, or `meta: {noop: true}`).
    pub would_change: usize,
    /// Time from start to stop.
    pub elapsed: Duration,
    /// Every resource of the (last) graph, in graph order.
    pub each: Vec<ResourceOutcome>,
    /// Graph swaps applied while running.
    pub swaps: usize,
}

impl Summary {
    /// Resources in the (last) graph.
    pub fn resources(&self) -> usize {
        self.each.len()
    }

    /// Resources whose outcome is `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.each.iter().filter(|r| r.outcome == outcome).count()
    }

    /// Resources with an outcome in `outcomes`, in graph order.
    pub fn with(&self, outcomes: &[Outcome]) -> impl Iterator<Item = &ResourceOutcome> {
        self.each
            .iter()
            .filter(move |r| outcomes.contains(&r.outcome))
    }
}
