//! The router: which subscribers an event concerns, and the shared state the public
//! handles, the event handler and the control thread work on.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};

use super::echo::Echo;
use super::error::WatchError;
use super::event::{Change, Raw};
use crate::sys::waker::Waker;

/// State shared by the event handler, the control thread and the public handles.
pub(super) struct Shared {
    pub(super) routes: Mutex<Routes>,
    pub(super) tx: mpsc::Sender<Cmd>,
    /// Set by `WatchHub::close`: no more events are routed, and dropping a
    /// subscription costs nothing.
    pub(super) closed: AtomicBool,
}

/// One subscriber as the router sees it.
pub(super) struct Sub {
    pub(super) id: u64,
    pub(super) target: PathBuf,
    pub(super) recursive: bool,
    pub(super) waker: Waker,
    /// Changes of `target` made on the subscriber's behalf, which do not wake it.
    pub(super) echo: Option<Arc<Echo>>,
}

#[derive(Default)]
pub(super) struct Routes {
    /// Every subscriber, by the bytes of its (normalised) target path.
    pub(super) exact: SubMap,
    /// Recursive subscribers, by the bytes of their target path.
    pub(super) recursive: SubMap,
    /// Watched directory (the path given to inotify, canonical) -> the literal paths of
    /// subscribers that it stands for. Events arrive under the canonical path.
    pub(super) aliases: BTreeMap<PathBuf, Vec<PathBuf>>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends to the control thread; false when it is gone.
    pub(super) fn send(&self, cmd: Cmd) -> bool {
        self.tx.send(cmd).is_ok()
    }

    pub(super) fn unroute(&self, id: u64, target: &Path, recursive: bool) {
        let mut routes = self.lock();
        remove_sub(&mut routes.exact, id, target);
        if recursive {
            remove_sub(&mut routes.recursive, id, target);
        }
    }

    /// The event handler; runs on the inotify event thread.
    pub(super) fn on_event(&self, raw: Raw) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let (path, change) = match raw {
            Raw::Event { path, change } => (path, change),
            Raw::Overflow => {
                tracing::warn!("inotify event queue overflowed; waking every subscriber");
                self.send(Cmd::Resync);
                self.wake_all();
                return;
            }
            Raw::Error(err) => {
                tracing::warn!(error = %err, "file watch error; waking every subscriber");
                self.send(Cmd::Resync);
                self.wake_all();
                return;
            }
        };
        let mut subs = Vec::new();
        self.collect(&path, change, &mut subs);
        for sub in subs {
            sub.wake();
        }
    }

    /// Finds the subscribers an event for the watched path `path` concerns and, when the event
    /// changes the directory structure someone depends on, tells the control thread.
    pub(super) fn collect(&self, path: &Path, change: Change, out: &mut Vec<Arc<Sub>>) {
        let structural = change != Change::Content;
        // A new file, link or socket changes no directory of a recursive tree (links in
        // trees are not followed); it matters to recursive ancestors as content only.
        let tree = structural && change != Change::Created;
        let gone = matches!(change, Change::Gone | Change::Replaced);
        let start = out.len();
        let mut interested = false;
        let literals = {
            let routes = self.lock();
            let literals = routes.translate(path);
            for lit in &literals {
                if let Some(subs) = routes.exact.get(bytes(lit)) {
                    // A link or rename onto the path: it may be a subscriber's own.
                    let own =
                        matches!(change, Change::Content | Change::Created | Change::Replaced);
                    out.extend(
                        subs.iter()
                            .filter(|s| !(own && s.echo.as_ref().is_some_and(|e| e.swallow())))
                            .cloned(),
                    );
                    interested |= structural && subs.iter().any(|s| s.recursive);
                }
                if structural {
                    for subs in subs_below(&routes.exact, lit) {
                        out.extend(subs.iter().cloned());
                        interested = true;
                    }
                }
                if !routes.recursive.is_empty() {
                    for ancestor in lit.ancestors().skip(1) {
                        if let Some(subs) = routes.recursive.get(bytes(ancestor)) {
                            out.extend(subs.iter().cloned());
                            interested |= tree;
                        }
                    }
                }
            }
            if gone && !interested {
                interested = descendants(&routes.aliases, path).next().is_some()
                    || routes.aliases.contains_key(path);
            }
            literals
        };
        if literals.len() > 1 {
            let mut seen = std::collections::HashSet::new();
            let mut i = start;
            while i < out.len() {
                if seen.insert(out[i].id) {
                    i += 1;
                } else {
                    out.swap_remove(i);
                }
            }
        }
        if structural && interested {
            self.send(Cmd::Changed {
                path: path.to_path_buf(),
                literals,
                gone,
            });
        }
    }

    /// After lost events: every subscriber looks again, and no own change is expected any
    /// more (its event may have been lost).
    pub(super) fn wake_all(&self) {
        let subs: Vec<Arc<Sub>> = self.lock().exact.values().flatten().cloned().collect();
        for echo in subs.iter().filter_map(|s| s.echo.as_ref()) {
            echo.reset(false);
        }
        for sub in subs {
            sub.wake();
        }
    }
}

impl Sub {
    /// Calls the waker; a panicking waker must not take the hub's threads down with it.
    pub(super) fn wake(&self) {
        let call = std::panic::AssertUnwindSafe(|| (self.waker)());
        if std::panic::catch_unwind(call).is_err() {
            tracing::error!(path = %self.target.display(), "file watch waker panicked");
        }
    }
}

impl Routes {
    /// Routes events for `sub`'s target (and below it, when recursive) to it.
    pub(super) fn add(&mut self, sub: &Arc<Sub>) {
        let key = bytes(&sub.target);
        match self.exact.get_mut(key) {
            Some(subs) => subs.push(Arc::clone(sub)),
            None => {
                self.exact.insert(key.to_vec(), vec![Arc::clone(sub)]);
            }
        }
        if sub.recursive {
            self.recursive
                .entry(key.to_vec())
                .or_default()
                .push(Arc::clone(sub));
        }
    }

    /// The literal (subscriber-side) paths an event path under a watched directory stands for.
    pub(super) fn translate(&self, path: &Path) -> Vec<PathBuf> {
        let mut out = Vec::with_capacity(1);
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name())
            && let Some(lits) = self.aliases.get(parent)
        {
            out.extend(lits.iter().map(|l| l.join(name)));
        }
        // Events about a watched directory itself (deleted, moved, chmod).
        if let Some(lits) = self.aliases.get(path) {
            for lit in lits {
                if !out.contains(lit) {
                    out.push(lit.clone());
                }
            }
        }
        out
    }
}

/// Subscribers by the bytes of a normalised path. Byte order rather than `Path`'s
/// component-by-component order: every subscription and every routed event compares keys,
/// and comparing components was ~35 ms of starting 10 000 file resources.
pub(super) type SubMap = BTreeMap<Vec<u8>, Vec<Arc<Sub>>>;

pub(super) fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// Subscriber lists of `map` strictly below the normalised `path`. In byte order they are
/// the keys starting with `path/` (a contiguous range; `/a/b-c` sorts between `/a/b` and
/// `/a/b/c`, so the range starts at the slash).
pub(super) fn subs_below<'a>(map: &'a SubMap, path: &Path) -> Vec<&'a Vec<Arc<Sub>>> {
    let mut prefix = bytes(path).to_vec();
    if prefix.last() != Some(&b'/') {
        prefix.push(b'/');
    }
    map.range::<[u8], _>((Bound::Included(&prefix[..]), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter(|(k, _)| k.as_slice() != bytes(path)) // `/` itself, when `path` is `/`
        .map(|(_, subs)| subs)
        .collect()
}

/// Entries of `map` strictly below `path` (a contiguous range: paths order by component).
pub(super) fn descendants<'a, V>(
    map: &'a BTreeMap<PathBuf, V>,
    path: &'a Path,
) -> impl Iterator<Item = (&'a PathBuf, &'a V)> + 'a {
    map.range::<Path, _>((Bound::Excluded(path), Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(path))
}

pub(super) fn remove_sub(map: &mut SubMap, id: u64, target: &Path) {
    if let Some(subs) = map.get_mut(bytes(target)) {
        subs.retain(|s| s.id != id);
        if subs.is_empty() {
            map.remove(bytes(target));
        }
    }
}

/// Work for the control thread.
pub(super) enum Cmd {
    /// New subscribers (already routed): place their watches and reply, one result each.
    Add {
        subs: Vec<Arc<Sub>>,
        reply: Option<mpsc::SyncSender<Vec<Result<(), WatchError>>>>,
    },
    /// A subscriber is gone (already unrouted): release its watches.
    Remove {
        id: u64,
        reply: Option<mpsc::SyncSender<()>>,
    },
    /// Something appeared at, or left, the watched path `path` (the literal paths are what it
    /// stands for on the subscribers' side).
    Changed {
        path: PathBuf,
        literals: Vec<PathBuf>,
        gone: bool,
    },
    /// Events were lost: check every watch and anchor.
    Resync,
    /// These mount points appeared or went: re-check the watches at and below them, and
    /// wake their subscribers.
    Mounts(Vec<PathBuf>),
    /// Reply once everything queued before has been handled.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "only tests wait for the control thread")
    )]
    Flush(mpsc::SyncSender<()>),
    /// The hub was dropped.
    Shutdown,
}
