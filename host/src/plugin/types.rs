//! The engine-facing side of a plugin call: what the engine and the planner hand a plugin
//! and get back, as plain Rust types. Each WIT version's bindings convert to and from
//! these (see [`crate::plugin::bindings`]), so no generated type leaves its bindings.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

use crate::sys::footprint::{Footprint, UnitRef};
use crate::sys::process::CommandSpec;

// What a plugin hands the host crosses into the host's memory and log: each kind of
// string has a cap (in bytes, before escaping). Longer ones are cut with a visible marker
// (`… [N bytes cut] …`, keeping both ends), and control characters are escaped where they enter (the
// bindings' conversions, `crate::sys::text`), so nothing a plugin says can forge a log
// line, reach the operator's terminal as an escape sequence, or take the engine down.

/// An `error.message` (and a trap's description, which quotes the plugin's output).
pub const MAX_ERROR_MESSAGE: usize = 16 << 10;
/// One `log` call's message, and each line a plugin prints on stdout or stderr.
pub const MAX_LOG_MESSAGE: usize = 16 << 10;
/// A change's one-line `summary`.
pub const MAX_CHANGE_SUMMARY: usize = 4 << 10;
/// A change's unified `diff` (shown by `--noop`).
pub const MAX_CHANGE_DIFF: usize = 1 << 20;
/// Changes listed per check-apply; the rest are counted in one last entry.
pub const MAX_CHANGES: usize = 256;
/// One value published for send/recv (JSON text); a larger one is dropped with a
/// warning. Room for an `exec`'s whole captured output (4 MiB) escaped as JSON.
pub const MAX_SENT_VALUE: usize = 16 << 20;

/// A resource's identity as the plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    /// Its kind, e.g. `file`.
    pub kind: String,
    /// Its name in the graph.
    pub name: String,
}

/// An expected failure reported by the plugin (a WIT `error` value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What went wrong, for the user.
    pub message: String,
    /// The param it is about, if the plugin said so.
    pub field: Option<String>,
}

/// Something that may change a resource's state and should wake it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchItem {
    /// A path, or (`recursive`) a directory and everything below it.
    Path { path: PathBuf, recursive: bool },
    /// A timer, every `ms` milliseconds.
    Interval { ms: u32 },
    /// Every new kernel log record.
    Kmsg,
    /// A long-running command whose stdout lines are events.
    Command(CommandSpec),
    /// A systemd unit's property changes and its manager's reloads.
    Unit(UnitRef),
    /// Run the plugin's `serve` export in an instance of its own (the long-running watch).
    Serve,
    /// Any host's value of a `world` key (declared with `world.watch` from `validate`).
    World { key: String },
}

/// What `validate` returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInfo {
    /// What it may touch.
    pub footprint: Footprint,
    /// What wakes it.
    pub watch: Vec<WatchItem>,
    /// Paths whose managing resource this one depends on (autoedges).
    pub depends_on_paths: Vec<String>,
}

/// What one check-apply found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckOutcome {
    /// Already in the declared state.
    pub ok: bool,
    /// One entry per change made (or that would be made in noop).
    pub changes: Vec<Change>,
    /// Published values: name and JSON text.
    pub sends: Vec<(String, String)>,
    /// With `run --diff`: the diffs of the text files this check-apply wrote, made by the
    /// host around each write (whatever the plugin reports).
    pub written: Vec<String>,
}

impl CheckOutcome {
    /// A check-apply's answer as a plugin gave it (`ok`, its changes as summary and
    /// diff, its sends), with the summaries and diffs cut to their caps and escaped here,
    /// where they enter the host, and at most [`MAX_CHANGES`] changes listed.
    pub(crate) fn from_plugin(
        ok: bool,
        changes: Vec<(String, Option<String>)>,
        sends: Vec<(String, String)>,
    ) -> CheckOutcome {
        let ok = ok && changes.is_empty();
        let total = changes.len();
        let mut listed: Vec<Change> = changes
            .into_iter()
            .take(MAX_CHANGES)
            .map(|(summary, diff)| Change {
                summary: crate::sys::text::one_line(summary, MAX_CHANGE_SUMMARY),
                diff: diff.map(|d| crate::sys::text::lines(d, MAX_CHANGE_DIFF)),
            })
            .collect();
        if total > MAX_CHANGES {
            listed.push(Change {
                summary: format!("and {} more changes", total - MAX_CHANGES),
                diff: None,
            });
        }
        CheckOutcome {
            ok,
            changes: listed,
            sends,
            written: Vec::new(),
        }
    }
}

/// One change a check-apply made or would make.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// One line, e.g. `mode 0644 -> 0600`.
    pub summary: String,
    /// A unified diff of text content, when the plugin could show one.
    pub diff: Option<String>,
}

/// Why a call into a plugin failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin returned an error value: an expected failure.
    #[error("{}", .0.message)]
    Plugin(PluginError),
    /// The plugin trapped (a bug, or a limit was exceeded); its instance was discarded.
    #[error(
        "plugin `{plugin}` trapped: {message} (the instance was discarded and will be rebuilt)"
    )]
    Trap { plugin: String, message: String },
    /// The call took longer than its wall-clock timeout; its instance was discarded.
    #[error(
        "plugin `{plugin}` did not return within {}ms (the instance was discarded and will be rebuilt)",
        .after.as_millis()
    )]
    Timeout { plugin: String, after: Duration },
    /// A fresh instance could not be created.
    #[error("plugin `{plugin}` could not be instantiated: {message}")]
    Instantiate { plugin: String, message: String },
    /// The runtime is shutting down.
    #[error("plugin `{plugin}` is shut down")]
    Closed { plugin: String },
    /// A check-apply failed (`error`) after some of its changes had landed: what the
    /// host saw it change (files written, removed..., unit jobs), one line each.
    #[error("{error}")]
    Partly {
        error: Box<CallError>,
        landed: Vec<String>,
    },
}

impl CallError {
    /// The changes that landed before the call failed (see [`CallError::Partly`]), taken
    /// out; none for other errors.
    pub fn take_landed(&mut self) -> Vec<String> {
        match self {
            CallError::Partly { landed, .. } => std::mem::take(landed),
            _ => Vec::new(),
        }
    }
}
