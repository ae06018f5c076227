//! What the inotify reader hands the router: an event already classified by what it means
//! for routing, and the mark of the hub's own threads.

use std::cell::Cell;
use std::io;
use std::path::PathBuf;

/// What an event means for routing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Change {
    /// Content or metadata of the path changed; nothing below it is affected.
    Content,
    /// A directory appeared at the path.
    Appeared,
    /// Something other than a directory appeared at the path: new content for the path
    /// itself, and, when it is a symbolic link, perhaps a way to a directory for the paths
    /// below it (a user replacing a directory of a managed path with a link).
    Created,
    /// The path was removed or renamed away.
    Gone,
    /// The path was replaced, or something unknown happened to it.
    Replaced,
}

/// What the reader thread hands the router.
pub(super) enum Raw {
    /// Something happened at `path` (an entry of a watched directory, or the directory).
    Event { path: PathBuf, change: Change },
    /// The kernel's event queue overflowed: events were lost.
    Overflow,
    /// Reading events failed.
    Error(io::Error),
}

thread_local! {
    /// Set on the hub's own threads (the inotify event thread, the control thread): there, public
    /// calls must not wait for the control thread.
    static INTERNAL: Cell<bool> = const { Cell::new(false) };
}

pub(super) fn on_internal_thread() -> bool {
    INTERNAL.with(Cell::get)
}

/// Marks the calling thread as one of the hub's own.
pub(super) fn mark_internal() {
    INTERNAL.with(|c| c.set(true));
}
