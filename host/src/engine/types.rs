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
    /// Stop once the graph has been settled for this long (in a cluster: once every live
    /// host has).
    pub converged_timeout: Option<Duration>,
    /// The World shared with other hosts, when there is one: this host's converged state
    /// is published there, and `converged_timeout` waits for every host.
    pub cluster: Option<crate::world::World>,
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
}

/// What a run did, for the summary printed at the end.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Why it stopped.
    pub stopped: Stopped,
    /// Resources in the (last) graph.
    pub resources: usize,
    /// Check-applies that changed something.
    pub changes: usize,
    /// Check-applies that would have changed something (`--noop`, or `meta: {noop: true}`).
    pub would_change: usize,
    /// Resources whose last check-apply failed.
    pub failed: usize,
    /// Resources whose last check-apply would have changed something (noop).
    pub pending: usize,
    /// Time from start to stop.
    pub elapsed: Duration,
    /// Resources that changed something, with how many check-applies did, in graph order.
    pub changed: Vec<(ResId, usize)>,
    /// Resources that would have changed something (noop), likewise.
    pub would: Vec<(ResId, usize)>,
    /// Resources failed or blocked at the end, with their last error.
    pub failures: Vec<(ResId, String)>,
    /// Graph swaps applied while running.
    pub swaps: usize,
}
