//! The hub's public face: [`WatchHub`] starts the threads and places subscriptions,
//! [`Subscription`] keeps one alive.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use super::control::Control;
use super::echo::Echo;
use super::error::WatchError;
use super::event::on_internal_thread;
use super::mounts;
use super::reader::DirWatcher;
use super::routes::{Cmd, Routes, Shared, Sub};
use crate::sys::proc_poll::{self, ProcPoll, ProcSubscription};
use crate::sys::waker::Waker;

/// Shared handle to the host's file watches. Cheap to clone; all clones share one inotify
/// instance. The watches end when the last clone and the last [`Subscription`] are dropped.
#[derive(Clone)]
pub struct WatchHub {
    inner: Arc<HubInner>,
}

/// Keeps one subscription alive. Dropping it unsubscribes: later events no longer reach its
/// waker (a call already under way on a hub thread may still complete), and the directory
/// watches no other subscriber needs are removed before the drop returns (when dropped inside a
/// waker, shortly after).
#[must_use = "dropping a Subscription unsubscribes at once"]
pub struct Subscription {
    hub: Arc<HubInner>,
    id: u64,
    target: PathBuf,
    recursive: bool,
    /// For a `/proc` file the kernel signals through `poll` ([`proc_poll`]), its
    /// subscription there instead of a route.
    proc: Option<ProcSubscription>,
}

struct HubInner {
    shared: Arc<Shared>,
    next_id: AtomicU64,
    /// The watchers of the `/proc` files inotify does not see.
    proc: ProcPoll,
}

/// What [`WatchHub::subscribe_many`] is asked for, one path.
pub struct Request {
    /// The path to watch.
    pub path: PathBuf,
    /// Also everything below the directory `path`.
    pub recursive: bool,
    /// Called whenever the path may have changed.
    pub waker: Waker,
    /// The subscriber's own changes, which do not wake it (non-recursive only).
    pub echo: Option<Arc<Echo>>,
}

impl WatchHub {
    /// Starts a hub: one inotify instance, its event thread and the hub's control thread.
    pub fn new() -> Result<WatchHub, WatchError> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            routes: Mutex::new(Routes::default()),
            tx,
            closed: AtomicBool::new(false),
        });
        let handler_shared = Arc::clone(&shared);
        let watcher = DirWatcher::new(move |raw| handler_shared.on_event(raw))
            .map_err(|source| WatchError::Init { source })?;
        let control = Control::new(Arc::clone(&shared), watcher);
        mounts::watch(Arc::clone(&shared));
        std::thread::Builder::new()
            .name("homeostat-watch".into())
            .spawn(move || control.run(rx))
            .map_err(|source| WatchError::Init { source })?;
        Ok(WatchHub {
            inner: Arc::new(HubInner {
                shared,
                next_id: AtomicU64::new(1),
                proc: ProcPoll::default(),
            }),
        })
    }

    /// Calls `waker` whenever `path` may have changed: created, deleted, content modified or
    /// closed after writing, attributes changed (chmod, chown), replaced by a rename, or an
    /// ancestor directory created, removed or renamed. `path` need not exist, nor its parents.
    /// With `recursive`, also any change anywhere below the directory `path`.
    ///
    /// Returns once the watches are in place, so every change after the call is seen; this
    /// blocks the calling thread for a few file-system calls and a round trip to the hub's
    /// threads (tens of microseconds; a waker that blocks would stall it). Called from inside a
    /// waker, it returns at once and a failure is only logged. Dropping the returned
    /// [`Subscription`] unsubscribes.
    ///
    /// # Errors
    ///
    /// [`WatchError::WatchLimit`] when `fs.inotify.max_user_watches` is exhausted,
    /// [`WatchError::PermissionDenied`] when the directory to watch is not readable,
    /// [`WatchError::Watch`] for other failures to place a watch.
    pub fn subscribe(
        &self,
        path: &Path,
        recursive: bool,
        waker: Waker,
    ) -> Result<Subscription, WatchError> {
        let mut all = self.subscribe_many(vec![Request {
            path: path.to_path_buf(),
            recursive,
            waker,
            echo: None,
        }]);
        all.pop().expect("one result per request")
    }

    /// [`WatchHub::subscribe`] for many paths with one round trip to the hub's control
    /// thread (starting a graph of 10 000 files subscribes 10 000 times); one result per
    /// request, in order.
    pub fn subscribe_many(&self, requests: Vec<Request>) -> Vec<Result<Subscription, WatchError>> {
        let shared = &self.inner.shared;
        let mut results: Vec<Option<Result<Subscription, WatchError>>> = Vec::new();
        let mut subs = Vec::new();
        // One lock for the whole batch, not one per subscriber.
        let mut routes = shared.lock();
        for Request {
            path,
            recursive,
            waker,
            echo,
        } in requests
        {
            let target = match normalize(&path) {
                Ok(t) => t,
                Err(e) => {
                    results.push(Some(Err(e)));
                    continue;
                }
            };
            if proc_poll::pollable(&target) {
                results.push(Some(self.subscribe_proc(target, recursive, waker)));
                continue;
            }
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            let sub = Arc::new(Sub {
                id,
                target,
                recursive,
                waker,
                echo: echo.filter(|_| !recursive),
            });
            routes.add(&sub);
            results.push(None);
            subs.push(sub);
        }
        drop(routes);
        let placed: Vec<Result<(), WatchError>> = if subs.is_empty() {
            Vec::new()
        } else if on_internal_thread() {
            // Waiting here would deadlock: the control thread may be waiting for this thread.
            let n = subs.len();
            shared.send(Cmd::Add {
                subs: subs.clone(),
                reply: None,
            });
            (0..n).map(|_| Ok(())).collect()
        } else {
            let (reply, wait) = mpsc::sync_channel(1);
            let n = subs.len();
            if shared.send(Cmd::Add {
                subs: subs.clone(),
                reply: Some(reply),
            }) {
                wait.recv()
                    .unwrap_or_else(|_| (0..n).map(|_| Err(WatchError::Closed)).collect())
            } else {
                (0..n).map(|_| Err(WatchError::Closed)).collect()
            }
        };
        let mut placed = subs.into_iter().zip(placed);
        results
            .into_iter()
            .map(|r| match r {
                Some(done) => done,
                None => {
                    let (sub, result) = placed.next().expect("one placement per routed sub");
                    match result {
                        Ok(()) => Ok(Subscription {
                            hub: Arc::clone(&self.inner),
                            id: sub.id,
                            target: sub.target.clone(),
                            recursive: sub.recursive,
                            proc: None,
                        }),
                        Err(e) => {
                            // The control thread keeps nothing for a subscription it refused.
                            shared.unroute(sub.id, &sub.target, sub.recursive);
                            Err(e)
                        }
                    }
                }
            })
            .collect()
    }

    /// A `/proc` file the kernel signals through `poll` (see [`proc_poll`]): watched there,
    /// since inotify sees nothing in procfs.
    fn subscribe_proc(
        &self,
        target: PathBuf,
        recursive: bool,
        waker: Waker,
    ) -> Result<Subscription, WatchError> {
        match self.inner.proc.subscribe(&target, waker) {
            Ok(p) => Ok(Subscription {
                hub: Arc::clone(&self.inner),
                id: 0,
                target,
                recursive,
                proc: Some(p),
            }),
            Err(source) => Err(WatchError::Proc {
                path: target,
                source,
            }),
        }
    }

    /// Stop watching for good, for every clone of this hub: no waker is called after this
    /// returns (except for an event already being routed), the inotify watches go with the control
    /// thread, and dropping the remaining subscriptions costs nothing (unsubscribing
    /// 10 000 of them one by one at exit took ~75 ms). Later subscriptions fail with
    /// [`WatchError::Closed`].
    pub fn close(&self) {
        let shared = &self.inner.shared;
        if !shared.closed.swap(true, Ordering::AcqRel) {
            self.inner.proc.close();
            // Taking the lock waits for a router that is collecting wakers right now.
            drop(shared.lock());
            shared.send(Cmd::Shutdown);
        }
    }

    /// Number of directories currently under an inotify watch (diagnostics and tests).
    pub fn watched_dirs(&self) -> usize {
        self.inner.shared.lock().aliases.len()
    }

    /// Waits until the control thread has handled everything queued before this call.
    #[cfg(test)]
    pub(super) fn flush(&self) {
        let (reply, wait) = mpsc::sync_channel(1);
        if self.inner.shared.send(Cmd::Flush(reply)) {
            let _ = wait.recv();
        }
    }
}

impl fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchHub")
            .field("watched_dirs", &self.watched_dirs())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The subscribed path, absolute and normalised.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Whether changes below the path are included.
    pub fn is_recursive(&self) -> bool {
        self.recursive
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("path", &self.target)
            .field("recursive", &self.recursive)
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let shared = &self.hub.shared;
        // A `/proc` subscription leaves its watcher as `proc` drops.
        if self.proc.is_some() || shared.closed.load(Ordering::Acquire) {
            return;
        }
        // Unrouting is synchronous, so no event reaches this subscriber after the drop
        // returns (except a waker call already running). Removing the inotify watch is
        // left to the control thread without waiting: drop runs on async tasks, and
        // waiting made dropping 10 000 subscriptions at exit take ~0.4 s.
        shared.unroute(self.id, &self.target, self.recursive);
        shared.send(Cmd::Remove {
            id: self.id,
            reply: None,
        });
    }
}

impl Drop for HubInner {
    fn drop(&mut self) {
        self.shared.send(Cmd::Shutdown);
    }
}

/// Absolute, without `.` and with `..` resolved lexically.
pub(super) fn normalize(path: &Path) -> Result<PathBuf, WatchError> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|source| WatchError::RelativePath {
                path: path.to_path_buf(),
                source,
            })?
            .join(path)
    };
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    Ok(out)
}
