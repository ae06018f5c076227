//! A subscriber's own changes of its path, which do not wake it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Keeps a subscriber from being woken by its own changes of its path.
///
/// A resource that writes its file would otherwise be woken by that very write (the link
/// or rename into place reaches the hub like anyone's) and check everything again: at
/// 10 000 new files that second check-apply was ~11 % of a cold run. The change is made
/// through [`Echo::own`], which counts the one event it causes; the router then drops that
/// many events for the path before the subscriber's waker would run.
///
/// Only as many events as own changes are dropped, so whatever the order in which an
/// outside change and an own one reach the router, the later of them still wakes the
/// subscriber, and its check then sees both. That holds only if every counted change is
/// reported to the subscriber, so a change is counted only while the target's parent
/// directory is watched for it (not while it is anchored higher up, waiting for the parent
/// to appear), the count is cleared whenever the subscriber's watch moves, and an event
/// queue overflow clears every count.
///
/// It also needs the counted event to stay one event: inotify merges an event into the
/// last one queued when both are identical (same watch, mask, cookie and name). A link
/// onto the name (`IN_CREATE`) cannot follow an identical event, since the name must have
/// gone in between, and a rename's `IN_MOVED_TO` carries a cookie of its own; so writes
/// and copies, which end in one of the two, are counted. A `chmod` or `chown`
/// (`IN_ATTRIB`) is not: an outside `chmod` right after an own one would merge into it
/// and be swallowed as the echo. So `set-attrs` wakes its resource once more (that check
/// finds nothing to do), as do the rarer `mkdir`, `symlink` and `remove`, which are not
/// counted either.
#[derive(Debug)]
pub struct Echo {
    path: PathBuf,
    state: Mutex<EchoState>,
}

#[derive(Debug, Default)]
struct EchoState {
    /// The target's parent directory is watched for the subscriber.
    direct: bool,
    /// Events of own changes the router has not seen yet.
    expected: u32,
}

impl Echo {
    /// For a subscription to `path` (as `WatchHub::subscribe` will be given it).
    pub fn new(path: PathBuf) -> Arc<Echo> {
        Arc::new(Echo {
            path,
            state: Mutex::new(EchoState::default()),
        })
    }

    /// The subscribed path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `change`, which must change the subscribed path in exactly one inotify event
    /// under its own name (a `linkat` or `renameat` onto it in its parent directory), so
    /// that this event does not wake the subscriber. The router waits while `change` runs,
    /// so it never sees the event before it is counted; a failed change counts nothing.
    pub fn own<T, E>(&self, change: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let mut state = self.lock();
        if !state.direct {
            drop(state);
            return change();
        }
        let done = change();
        if done.is_ok() {
            state.expected += 1;
        }
        done
    }

    /// Called by the router for an event about the path: true when it was an own change.
    pub(super) fn swallow(&self) -> bool {
        let mut state = self.lock();
        let own = state.expected > 0;
        if own {
            state.expected -= 1;
        }
        own
    }

    /// Forgets counted changes whose events may never come; `direct` says whether the
    /// parent directory is watched for the subscriber now.
    pub(super) fn reset(&self, direct: bool) {
        self.anchored(direct, true);
    }

    /// The control thread placed (or kept) the subscriber's anchor: `direct` when that is
    /// the target's parent; `moved` when the watch changed, so that counted changes may
    /// have gone unreported.
    pub(super) fn anchored(&self, direct: bool, moved: bool) {
        let mut state = self.lock();
        state.direct = direct;
        if moved {
            state.expected = 0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, EchoState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
