//! The `/proc` files the kernel signals through `poll(2)`, as event sources.
//!
//! inotify sees nothing in procfs: a file there is generated on each read. A few of them
//! are marked instead: `poll` on an open descriptor returns `POLLPRI | POLLERR` once the
//! thing behind it changed since the descriptor last looked (and re-arms itself as it
//! says so, so no read is needed):
//!
//! - `/proc/self/mountinfo`, `/proc/self/mounts` and `/proc/mounts`: the mount table of
//!   homeostat's mount namespace (a mount, unmount, remount or move);
//! - `/proc/sys/kernel/hostname` and `/proc/sys/kernel/domainname`: the kernel's host
//!   and domain name (`sethostname(2)`, `setdomainname(2)`; the kernel signals a change
//!   in any UTS namespace, so a wake may be spurious).
//!
//! The inotify hub ([`crate::sys::inotify`]) hands a subscription to one of these
//! ([`pollable`]) to its `ProcPoll`, so every path watch works on them. Each watched file
//! gets one thread, started with its first subscriber and ending within [`CHECK_CLOSED`]
//! of its last one leaving (or of [`ProcPoll::close`]); wakers run on it. Other `/proc/sys` values give no event at all, so kinds poll them (`sysctl`'s
//! `pollint`).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};

use crate::sys::waker::Waker;

/// The files whose changes the kernel signals through `poll`.
const POLLABLE: &[&str] = &[
    "/proc/self/mountinfo",
    "/proc/self/mounts",
    "/proc/mounts",
    "/proc/sys/kernel/hostname",
    "/proc/sys/kernel/domainname",
];

/// How often a thread looks whether its last subscriber left, between changes.
pub const CHECK_CLOSED: Duration = Duration::from_millis(500);

/// Whether `path` is a `/proc` file this service watches (see the module docs).
pub fn pollable(path: &Path) -> bool {
    // Asked for every path a graph watches: bytes first, components only under /proc.
    path.as_os_str().as_encoded_bytes().starts_with(b"/proc/")
        && POLLABLE.iter().any(|p| Path::new(p) == path)
}

/// Waits until `file` is signalled (`POLLPRI`) or `timeout` passes: `Ok(true)` when it
/// was signalled. Interrupted waits count as timeouts.
pub(crate) fn wait_signalled(file: &File, timeout: Duration) -> io::Result<bool> {
    let mut fds = [PollFd::new(file, PollFlags::PRI)];
    let timeout = rustix::event::Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(0) | Err(rustix::io::Errno::INTR) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// The watched files and their subscribers. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ProcPoll {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Each watched file's subscribers; an entry exists exactly while its thread runs.
    files: Mutex<HashMap<PathBuf, Vec<(u64, Waker)>>>,
    next_id: AtomicU64,
    /// Set by [`ProcPoll::close`]: no waker runs after it.
    closed: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files = self.files.lock().map(|m| m.len()).unwrap_or_default();
        f.debug_struct("ProcPoll").field("files", &files).finish()
    }
}

/// Keeps one subscription alive; dropping it unsubscribes.
#[must_use = "dropping a ProcSubscription unsubscribes at once"]
pub struct ProcSubscription {
    inner: Arc<Inner>,
    path: PathBuf,
    id: u64,
}

impl ProcPoll {
    /// Calls `waker` whenever the kernel signals `path` (one of [`pollable`]).
    ///
    /// # Errors
    ///
    /// When `path` is not one of them, or it cannot be opened (no `/proc`), or its thread
    /// cannot start.
    pub fn subscribe(&self, path: &Path, waker: Waker) -> io::Result<ProcSubscription> {
        if !pollable(path) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} gives no poll events", path.display()),
            ));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut files = self.inner.files.lock().expect("proc poll lock");
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(io::Error::other("the file watch hub has stopped"));
        }
        if let Some(subs) = files.get_mut(path) {
            subs.push((id, waker));
        } else {
            // Opened here, before the caller goes on, so every change after the call is
            // seen (the descriptor remembers the state it was opened in).
            let file = File::open(path)?;
            let inner = self.inner.clone();
            let owned = path.to_path_buf();
            std::thread::Builder::new()
                .name("homeostat-proc".into())
                .spawn(move || run(&inner, &owned, &file))?;
            files.insert(path.to_path_buf(), vec![(id, waker)]);
        }
        Ok(ProcSubscription {
            inner: self.inner.clone(),
            path: path.to_path_buf(),
            id,
        })
    }

    /// Stop for good: no waker is called after this returns (but for a call already
    /// running), the threads end on their next look, and later subscriptions fail.
    pub fn close(&self) {
        let mut files = self.inner.files.lock().expect("proc poll lock");
        self.inner.closed.store(true, Ordering::Release);
        files.clear();
    }
}

/// One file's thread: wake its subscribers at every signal; end when none is left.
fn run(inner: &Inner, path: &Path, file: &File) {
    loop {
        let signalled = match wait_signalled(file, CHECK_CLOSED) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("stopped watching {}: {e}", path.display());
                inner.files.lock().expect("proc poll lock").remove(path);
                return;
            }
        };
        let wakers: Vec<Waker> = {
            let mut files = inner.files.lock().expect("proc poll lock");
            match files.get(path) {
                Some(subs) if subs.is_empty() => {
                    files.remove(path);
                    return;
                }
                Some(subs) if signalled => subs.iter().map(|(_, w)| w.clone()).collect(),
                Some(_) => continue,
                None => return,
            }
        };
        tracing::debug!(path = %path.display(), "signalled");
        // No lock held: a waker may subscribe or unsubscribe.
        wakers.iter().for_each(|w| w());
    }
}

impl Drop for ProcSubscription {
    fn drop(&mut self) {
        if let Ok(mut files) = self.inner.files.lock()
            && let Some(subs) = files.get_mut(&self.path)
        {
            subs.retain(|(id, _)| *id != self.id);
        }
    }
}

impl std::fmt::Debug for ProcSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcSubscription")
            .field("path", &self.path)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn only_the_signalled_files_are_pollable() {
        assert!(pollable(Path::new("/proc/self/mountinfo")));
        assert!(pollable(Path::new("/proc/sys/kernel/hostname")));
        assert!(!pollable(Path::new("/proc/sys/net/ipv4/ip_forward")));
        let e = ProcPoll::default()
            .subscribe(Path::new("/proc/sys/vm/swappiness"), Arc::new(|| {}))
            .unwrap_err();
        assert!(e.to_string().contains("gives no poll events"), "{e}");
    }

    /// The real kernel: a mount in a namespace of this test's own (needs root and
    /// `unshare`, as the whole suite does) is not seen from here, so this checks the
    /// subscribe/unsubscribe life cycle only; tests/mount.rs sees real changes.
    #[test]
    fn the_thread_ends_with_its_last_subscriber() {
        let poll = ProcPoll::default();
        let (tx, _rx) = mpsc::channel::<()>();
        let tx = Mutex::new(tx);
        let sub = poll
            .subscribe(
                Path::new("/proc/self/mountinfo"),
                Arc::new(move || {
                    let _ = tx.lock().unwrap().send(());
                }),
            )
            .unwrap();
        let again = poll
            .subscribe(Path::new("/proc/self/mountinfo"), Arc::new(|| {}))
            .unwrap();
        assert_eq!(poll.inner.files.lock().unwrap().len(), 1);
        drop(sub);
        drop(again);
        let deadline = std::time::Instant::now() + CHECK_CLOSED * 4;
        while !poll.inner.files.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "thread still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
