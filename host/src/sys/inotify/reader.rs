//! The hub's inotify instance: non-recursive directory watches and the thread that reads
//! their events and hands each one, already classified, to the hub's router.
//!
//! Hand-written on `rustix::fs::inotify` rather than through the `notify` crate because the
//! hub needs a narrower mask than notify 8 offers: notify adds `IN_OPEN` (and reports
//! closes after reading) on every watch, so each time a resource *reads* a watched file, to
//! check it, the kernel queues an event and wakes the event thread, which the hub then
//! discards. At 10 000 files that was ~15 % of the CPU of an idempotent pass. Here the mask
//! holds only what can change a path ([`MASK`]); reading or opening a file queues nothing.
//! The hub needs none of notify's cross-platform layer or recursion (it places one watch
//! per directory itself), and this reader takes events 64 KiB at a time (notify: 1 KiB).
//!
//! Threads: [`DirWatcher::watch`]/[`DirWatcher::unwatch`] are called by the hub's control
//! thread; the event thread blocks in `poll` on the inotify descriptor and an `eventfd` that
//! [`Drop`] signals. The table of watch descriptors is shared under a mutex that `watch`
//! holds across `inotify_add_watch`, so the first event of a new watch is never read before
//! its descriptor is known.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, PollFd, PollFlags};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

use super::event::{Change, Raw, mark_internal};
use crate::sys::temp_name::is_temp_name;

/// What a watch reports: whatever can change an entry of the directory or the directory
/// itself. No `IN_OPEN`, `IN_ACCESS` or `IN_CLOSE_NOWRITE`: reads never wake anyone.
/// `IN_MODIFY` stays (a writer that keeps a file open, a log, never closes it), and
/// `IN_CLOSE_WRITE` covers a write that changed nothing but was still made.
const MASK: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

/// The least time between two reads of the event queue. A lone event (an outside edit) is
/// read the moment it arrives; when another one comes within this time of the last read,
/// the thread lets the queue fill for the rest of it, so a burst (a cold run writing
/// thousands of files, each write queueing several events) wakes the thread a few times per
/// millisecond instead of once per event. At 10 000 files that was ~1 wake-up of this
/// thread per file, each also costing the writing thread a wake-up in the kernel.
const COALESCE: Duration = Duration::from_micros(500);

/// Bytes read from the inotify descriptor at once (an event is 16 bytes plus its name).
const READ_BUFFER: usize = 64 * 1024;

/// Watch descriptors and the directories they stand for. The kernel gives one descriptor
/// per inode, so two paths of one directory share one; events are reported under the path
/// watched last. Every operation is O(paths of one descriptor), so dropping thousands of
/// watches stays linear.
#[derive(Default)]
struct Table {
    by_wd: HashMap<i32, Vec<PathBuf>>,
    by_path: HashMap<PathBuf, i32>,
}

impl Table {
    /// Records that `path` is watched as `wd`. When the path was watched before as another
    /// descriptor (another directory lived there) that nothing else uses, returns it: the
    /// caller removes that stale watch.
    fn insert(&mut self, wd: i32, path: &Path) -> Option<i32> {
        let released = match self.by_path.insert(path.to_path_buf(), wd) {
            Some(old) if old != wd => self.unlink(old, path).then_some(old),
            _ => None,
        };
        let paths = self.by_wd.entry(wd).or_default();
        paths.retain(|p| p != path);
        paths.push(path.to_path_buf());
        released
    }

    /// The directory events of `wd` are reported under.
    fn dir(&self, wd: i32) -> Option<&PathBuf> {
        self.by_wd.get(&wd)?.last()
    }

    /// Forgets `path`; returns its descriptor when no other path shares it.
    fn remove_path(&mut self, path: &Path) -> Option<i32> {
        let wd = self.by_path.remove(path)?;
        self.unlink(wd, path).then_some(wd)
    }

    /// Takes `path` off `wd`'s list; true when that was the last one.
    fn unlink(&mut self, wd: i32, path: &Path) -> bool {
        let Some(paths) = self.by_wd.get_mut(&wd) else {
            return false;
        };
        paths.retain(|p| p != path);
        if paths.is_empty() {
            self.by_wd.remove(&wd);
            true
        } else {
            false
        }
    }

    /// The kernel dropped `wd`: forget every path of it.
    fn remove_wd(&mut self, wd: i32) {
        for path in self.by_wd.remove(&wd).unwrap_or_default() {
            if self.by_path.get(&path) == Some(&wd) {
                self.by_path.remove(&path);
            }
        }
    }
}

struct Inner {
    fd: OwnedFd,
    table: Mutex<Table>,
}

impl Inner {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An inotify instance with its event thread. Dropping it stops the thread.
pub(super) struct DirWatcher {
    inner: Arc<Inner>,
    stop: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl DirWatcher {
    /// Starts the instance and its event thread; `handler` runs on that thread, once per
    /// event, in the order the kernel reported them.
    pub(super) fn new(handler: impl FnMut(Raw) + Send + 'static) -> io::Result<DirWatcher> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        let stop = Arc::new(rustix::event::eventfd(
            0,
            EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
        )?);
        let inner = Arc::new(Inner {
            fd,
            table: Mutex::new(Table::default()),
        });
        let thread = {
            let (inner, stop) = (Arc::clone(&inner), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("homeostat-inotify".into())
                .spawn(move || event_loop(&inner, &stop, handler))?
        };
        Ok(DirWatcher {
            inner,
            stop,
            thread: Some(thread),
        })
    }

    /// Watches the directory `dir` (not what is below its entries). Errors as the OS gives
    /// them: `ENOENT`/`ENOTDIR` when it is not a directory (any more), `EACCES`, `ENOSPC` at
    /// the watch limit.
    pub(super) fn watch(&self, dir: &Path) -> io::Result<()> {
        let mut table = self.inner.table();
        let wd = inotify::add_watch(&self.inner.fd, dir, MASK)?;
        if let Some(stale) = table.insert(wd, dir) {
            let _ = inotify::remove_watch(&self.inner.fd, stale);
        }
        Ok(())
    }

    /// Stops watching `dir`. Not an error when the kernel already dropped the watch (the
    /// directory was deleted) or it was never watched.
    pub(super) fn unwatch(&self, dir: &Path) {
        let wd = self.inner.table().remove_path(dir);
        if let Some(wd) = wd
            && let Err(e) = inotify::remove_watch(&self.inner.fd, wd)
        {
            tracing::trace!(dir = %dir.display(), error = %e, "inotify_rm_watch");
        }
    }
}

impl Drop for DirWatcher {
    fn drop(&mut self) {
        let _ = rustix::io::write(&*self.stop, &1u64.to_ne_bytes());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn event_loop(inner: &Inner, stop: &OwnedFd, mut handler: impl FnMut(Raw)) {
    mark_internal();
    let mut buf = vec![MaybeUninit::<u8>::uninit(); READ_BUFFER];
    let mut last_read: Option<Instant> = None;
    loop {
        // Under a burst of events, read at most once per `COALESCE`: see its doc.
        if let Some(wait) = last_read.and_then(|at| COALESCE.checked_sub(at.elapsed())) {
            std::thread::sleep(wait);
        }
        let mut fds = [
            PollFd::new(&inner.fd, PollFlags::IN),
            PollFd::new(stop, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => {
                handler(Raw::Error(e.into()));
                return;
            }
        }
        if !fds[1].revents().is_empty() {
            return;
        }
        last_read = Some(Instant::now());
        let mut reader = inotify::Reader::new(&inner.fd, &mut buf);
        loop {
            let event = match reader.next() {
                Ok(event) => event,
                Err(Errno::WOULDBLOCK) => break,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    handler(Raw::Error(e.into()));
                    break;
                }
            };
            let flags = event.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                handler(Raw::Overflow);
                continue;
            }
            if flags.contains(ReadFlags::IGNORED) {
                // The kernel dropped the watch (its directory was deleted or unmounted,
                // or we removed it).
                inner.table().remove_wd(event.wd());
                continue;
            }
            let name = event.file_name().map(|n| n.to_bytes()).unwrap_or_default();
            // The host's own staging files: created, written and renamed over a target by
            // every durable write over an existing file, five events nobody needs (the
            // rename is reported under the target's name).
            if is_temp_name(name) {
                continue;
            }
            let Some(change) = classify(flags) else {
                continue;
            };
            let Some(dir) = inner.table().dir(event.wd()).cloned() else {
                continue; // a watch removed meanwhile
            };
            let path = if name.is_empty() {
                dir
            } else {
                dir.join(OsStr::from_bytes(name))
            };
            // A watched directory that was deleted or renamed away: its watch no longer
            // stands for this path (the kernel drops a deleted one by itself).
            if matches!(change, Change::Gone) {
                let wd = inner.table().remove_path(&path);
                if let Some(wd) = wd {
                    let _ = inotify::remove_watch(&inner.fd, wd);
                }
            }
            handler(Raw::Event { path, change });
        }
    }
}

/// What an event means for routing.
fn classify(flags: ReadFlags) -> Option<Change> {
    Some(
        if flags.intersects(ReadFlags::DELETE | ReadFlags::DELETE_SELF | ReadFlags::MOVED_FROM)
            || flags.contains(ReadFlags::MOVE_SELF)
        {
            Change::Gone
        } else if flags.contains(ReadFlags::MOVED_TO) {
            Change::Replaced
        } else if flags.contains(ReadFlags::CREATE) {
            if flags.contains(ReadFlags::ISDIR) {
                Change::Appeared
            } else {
                Change::Created
            }
        } else if flags.intersects(ReadFlags::MODIFY | ReadFlags::ATTRIB | ReadFlags::CLOSE_WRITE) {
            Change::Content
        } else {
            return None;
        },
    )
}

#[cfg(test)]
mod tests {
    use super::Table;
    use std::path::Path;

    #[test]
    fn table_shares_a_descriptor_between_paths_of_one_directory() {
        let mut t = Table::default();
        assert_eq!(t.insert(1, Path::new("/a")), None);
        assert_eq!(t.insert(1, Path::new("/b")), None); // same inode, second spelling
        assert_eq!(t.insert(2, Path::new("/c")), None);
        assert_eq!(t.dir(1), Some(&Path::new("/b").to_path_buf()));
        assert_eq!(t.remove_path(Path::new("/b")), None, "/a still uses it");
        assert_eq!(t.dir(1), Some(&Path::new("/a").to_path_buf()));
        assert_eq!(t.remove_path(Path::new("/a")), Some(1));
        assert_eq!(t.dir(1), None);
        assert_eq!(t.remove_path(Path::new("/a")), None, "already gone");
        // A path watched again gets the new descriptor; the old one is released.
        assert_eq!(t.insert(3, Path::new("/c")), Some(2));
        assert_eq!(t.dir(2), None);
        t.remove_wd(3);
        assert_eq!(t.dir(3), None);
        assert_eq!(t.remove_path(Path::new("/c")), None);
    }
}
