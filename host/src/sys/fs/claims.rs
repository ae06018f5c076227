//! Which resource writes which directory entry.
//!
//! Two resources can reach one entry through two names: a linked or bind-mounted
//! directory, or a path one of them received from the other (send/recv). Each would then
//! rewrite what the other just wrote, forever. The lexical check at plan time cannot see
//! it; the entry itself can: an entry is its directory's `(st_dev, st_ino)` and its name,
//! whatever path led there. Every write, copy, symlink and mkdir claims its entry for the
//! resource making it; a second resource claiming the same entry is refused, and both are
//! recorded as in conflict, so that the engine applies neither again until the graph
//! changes (a new graph clears every claim).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use super::error::{ErrorCode, FsError};
use crate::sys::waker::Waker;

/// A directory entry: its directory's device and inode, and its name there.
type EntryKey = (u64, u64, CString);

#[derive(Default)]
struct Inner {
    /// Who writes each entry, and by which path.
    by_entry: HashMap<EntryKey, (Arc<str>, PathBuf)>,
    /// Resources found writing an entry another one writes, with why.
    conflicts: HashMap<Arc<str>, String>,
    /// Who to wake when a resource is found in conflict (it may be idle: the other one's
    /// write was refused, so no event reaches it). Weak: the resource's [`ConflictWatch`]
    /// holds the waker, so a stopped resource is not woken and its guard's drop takes no
    /// lock (a graph of ten thousand resources stops at once); the entries of stopped
    /// resources are pruned by the next graph's `clear`.
    wakers: HashMap<Arc<str>, Weak<dyn Fn() + Send + Sync>>,
}

/// The claims of the graph being run (see the module docs).
#[derive(Default)]
pub(super) struct Claims {
    inner: Mutex<Inner>,
    /// Whether `inner.conflicts` has any: every check-apply asks, almost always for
    /// nothing, so the answer "none" costs no lock.
    any_conflict: AtomicBool,
}

impl Claims {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `owner` writes `name` in the directory `dir` (`st_dev`, `st_ino`),
    /// reached as `path`. Refused, and both resources recorded in conflict, when another
    /// resource writes that entry.
    pub(super) fn claim(
        &self,
        dir: (u64, u64),
        name: &CStr,
        path: &Path,
        owner: &Arc<str>,
    ) -> Result<(), FsError> {
        let mut inner = self.lock();
        let key = (dir.0, dir.1, name.to_owned());
        let (first, first_path) = match inner.by_entry.get(&key) {
            None => {
                inner
                    .by_entry
                    .insert(key, (owner.clone(), path.to_path_buf()));
                return Ok(());
            }
            Some((first, _)) if first == owner => return Ok(()),
            Some((first, first_path)) => (first.clone(), first_path.clone()),
        };
        let why = |this: &str, this_path: &Path, other: &str, other_path: &Path| {
            format!(
                "`{}` is the same file as `{}`, which {other} manages: one file, two names \
                 (a linked or bind-mounted directory, or a path received from another \
                 resource); {this} and {other} are not applied again until the graph changes",
                this_path.display(),
                other_path.display(),
            )
        };
        let mine = why(owner, path, &first, &first_path);
        let theirs = why(&first, &first_path, owner, path);
        let wake = inner.wakers.get(&first).and_then(Weak::upgrade);
        inner.conflicts.insert(owner.clone(), mine.clone());
        inner.conflicts.insert(first, theirs);
        self.any_conflict.store(true, Ordering::Release);
        drop(inner);
        if let Some(wake) = wake {
            wake();
        }
        Err(FsError::new(ErrorCode::NotAllowed, mine))
    }

    /// Why `owner` is in conflict with another resource, if it is.
    pub(super) fn conflict_of(&self, owner: &str) -> Option<String> {
        if !self.any_conflict.load(Ordering::Acquire) {
            return None;
        }
        self.lock().conflicts.get(owner).cloned()
    }

    /// Calls `wake` when `owner` is found in conflict, until the returned guard is
    /// dropped.
    pub(super) fn on_conflict(&self, owner: Arc<str>, wake: Waker) -> ConflictWatch {
        // A newer registration for the same resource (a graph swap) replaces the older.
        self.lock().wakers.insert(owner, Arc::downgrade(&wake));
        ConflictWatch { _wake: wake }
    }

    /// Forget every claim and conflict (a new graph).
    pub(super) fn clear(&self) {
        let mut inner = self.lock();
        inner.by_entry.clear();
        inner.conflicts.clear();
        // Resources that stay across a graph swap keep their registration.
        inner.wakers.retain(|_, wake| wake.strong_count() > 0);
        self.any_conflict.store(false, Ordering::Release);
    }
}

/// Keeps a resource's conflict waker registered while it lives (from `Claims::on_conflict`).
pub struct ConflictWatch {
    _wake: Waker,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_of_one_entry_is_refused_and_both_are_in_conflict() {
        let claims = Claims::default();
        let (a, b): (Arc<str>, Arc<str>) = ("file[a]".into(), "file[b]".into());
        claims
            .claim((1, 2), c"f", Path::new("/x/f"), &a)
            .expect("first");
        claims
            .claim((1, 2), c"f", Path::new("/x/f"), &a)
            .expect("again by the same resource");
        claims
            .claim((1, 3), c"f", Path::new("/y/f"), &b)
            .expect("another entry");
        let err = claims
            .claim((1, 2), c"f", Path::new("/link/f"), &b)
            .expect_err("the same entry by another resource");
        assert!(
            err.message.contains("`/link/f` is the same file as `/x/f`"),
            "{err}"
        );
        assert!(claims.conflict_of("file[a]").unwrap().contains("file[b]"));
        assert!(claims.conflict_of("file[b]").unwrap().contains("file[a]"));
        assert_eq!(claims.conflict_of("file[c]"), None);
        claims.clear();
        assert_eq!(claims.conflict_of("file[a]"), None);
        claims
            .claim((1, 2), c"f", Path::new("/link/f"), &b)
            .expect("a new graph starts over");
    }

    #[test]
    fn the_first_writer_is_woken_while_its_watch_lives() {
        use std::sync::atomic::AtomicUsize;
        let claims = Claims::default();
        let (a, b): (Arc<str>, Arc<str>) = ("file[a]".into(), "file[b]".into());
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&woken);
        let watch = claims.on_conflict(
            a.clone(),
            Arc::new(move || {
                counter.fetch_add(1, Ordering::Relaxed);
            }),
        );
        claims.claim((1, 2), c"f", Path::new("/x/f"), &a).unwrap();
        claims
            .claim((1, 2), c"f", Path::new("/y/f"), &b)
            .unwrap_err();
        assert_eq!(
            woken.load(Ordering::Relaxed),
            1,
            "a is idle: it must look again"
        );
        // A stopped resource is not woken, and the next graph forgets it.
        drop(watch);
        claims.clear();
        claims.claim((1, 2), c"f", Path::new("/x/f"), &a).unwrap();
        claims
            .claim((1, 2), c"f", Path::new("/y/f"), &b)
            .unwrap_err();
        assert_eq!(woken.load(Ordering::Relaxed), 1);
        assert!(claims.lock().wakers.is_empty());
    }
}
