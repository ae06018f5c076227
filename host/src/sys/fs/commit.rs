//! The commit thread: new content made durable and put in place, group-committed.
//!
//! `write` and `copy` never modify a file in place. Their content goes into a temporary
//! file beside the target (see `temp`), which is handed to a single *commit thread*. That
//! thread works in rounds; a round takes everything queued (whatever arrived while the
//! previous round was flushing: no timer, so a lone write pays only for its own flushes)
//! and
//!
//! 1. with one flush per file system (grouped by `st_dev`), makes durable both the data of
//!    the new temporary files and the renames done by the previous round: `fsync` when
//!    there is a single thing to flush (one file, or one directory), one `syncfs`
//!    otherwise;
//! 2. wakes the previous round's writers, each with its own result;
//! 3. `renameat`s each new temporary file over its target, or `linkat`s an unnamed one as
//!    the target (a failing rename or link fails only its writer; temporary files that
//!    were not put in place are removed). These writers are answered after the next
//!    round's flush, which follows at once: a plain `fsync` of the directory when nothing
//!    new arrived meanwhile.
//!
//! When the path written is one the calling resource watches (the engine hands its
//! watches to the call), the link or rename runs through the watch hub's [`Echo::own`],
//! so the resource is not woken by its own write (others watching the path are).
//!
//! A lone write thus costs `fsync(file)`, `rename`, `fsync(dir)`; under load every flush
//! serves two batches (the data of one, the names of the one before), half the flushes of
//! a data-flush-then-directory-fsync per batch. The inode being replaced is held open until
//! its writer has been answered, so freeing its blocks (and, with `-o discard`, trimming
//! them) lands after the flush the writer waits for, not in it.
//!
//! So when a write returns `Ok`, content, attributes and name are on disk, and at no point
//! can a crash or power cut leave a truncated or empty file under the target name: the
//! name points at the old inode until a rename whose data was flushed first (and a new
//! file's name appears only by a link of flushed data). The file is `fsync`ed rather than
//! `fdatasync`ed because the attributes set on the temporary file must be durable too. A
//! crash can leave a stray `.NAME.homeostat-*` file behind, never a damaged target. The
//! other changes (`symlink`, which is a temporary link renamed over the path, `mkdir`,
//! `remove`, `set_attrs`) are single atomic operations and are not flushed: after a crash
//! each is either done or not, and the next check-apply repairs it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Instant;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use tokio::sync::oneshot;

use super::error::FsError;
use super::temp::{TempFile, TempName};
use crate::sys::inotify::Echo;

/// Group-commit counters since the `FsHost` was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Batches flushed by the commit thread.
    pub batches: u64,
    /// Files (successful or not) those batches carried.
    pub files: u64,
}

impl CommitStats {
    /// Mean number of files per batch (0 before the first batch).
    pub fn mean_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.files as f64 / self.batches as f64
        }
    }
}

/// The commit thread's queue (the thread starts with the first write) and its counters;
/// one per [`FsHost`](super::FsHost), shared by its clones. The thread exits when the
/// last clone is dropped.
#[derive(Default)]
pub(super) struct Committer {
    queue: OnceLock<Result<mpsc::Sender<Pending>, String>>,
    counters: Arc<Counters>,
}

impl Committer {
    /// Group-commit counters so far.
    pub(super) fn stats(&self) -> CommitStats {
        CommitStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            files: self.counters.files.load(Ordering::Relaxed),
        }
    }

    /// Hands `temp`, written and given its attributes, to the commit thread to be made
    /// durable and put in place as `target` in its directory (`dir`: its `st_dev` and
    /// `st_ino`), and waits for the result. `echo` is the writing resource's watch of
    /// `path`: putting the file in place does not wake it. Once handed over, the write
    /// completes even if the caller stops waiting.
    pub(super) async fn commit(
        &self,
        temp: TempFile,
        dir: (u64, u64),
        target: CString,
        path: PathBuf,
        echo: Option<Arc<Echo>>,
    ) -> Result<(), FsError> {
        let sender = self
            .queue
            .get_or_init(|| start_committer(Arc::clone(&self.counters)))
            .as_ref()
            .map_err(|e| FsError::internal("write", &path, e))?;
        let (reply, result) = oneshot::channel();
        let stopped =
            |path: &Path| FsError::internal("write", path, "the fs commit thread stopped");
        sender
            .send(Pending {
                temp,
                dir,
                target,
                path: path.clone(),
                echo,
                reply,
            })
            .map_err(|_| stopped(&path))?;
        result.await.map_err(|_| stopped(&path))?
    }
}

/// One file waiting to be made durable and renamed into place.
struct Pending {
    temp: TempFile,
    /// `(st_dev, st_ino)` of `temp.dir`.
    dir: (u64, u64),
    /// The target's name in `temp.dir`.
    target: CString,
    /// For messages.
    path: PathBuf,
    /// The writing resource's watch of `path`: putting the file in place does not wake it.
    echo: Option<Arc<Echo>>,
    reply: oneshot::Sender<Result<(), FsError>>,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    files: AtomicU64,
}

fn start_committer(counters: Arc<Counters>) -> Result<mpsc::Sender<Pending>, String> {
    let (tx, rx) = mpsc::channel::<Pending>();
    std::thread::Builder::new()
        .name("homeostat-fs-commit".to_owned())
        .spawn(move || commit_loop(&rx, &counters))
        .map_err(|e| format!("cannot start the fs commit thread: {e}"))?;
    Ok(tx)
}

fn commit_loop(rx: &mpsc::Receiver<Pending>, counters: &Counters) {
    // Renamed files whose directory entry is not durable yet: the next round's flush covers
    // them. While there are any, the loop does not wait for new work.
    let mut renamed: Vec<Entry> = Vec::new();
    loop {
        let mut fresh = Vec::new();
        if renamed.is_empty() {
            // Ends when every `FsHost` handle (hence every sender) is gone.
            match rx.recv() {
                Ok(first) => fresh.push(first),
                Err(_) => return,
            }
        }
        fresh.extend(rx.try_iter());
        if !fresh.is_empty() {
            counters.batches.fetch_add(1, Ordering::Relaxed);
            counters
                .files
                .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        }
        renamed = commit_round(fresh, renamed);
    }
}

/// A file on its way through the commit thread.
struct Entry {
    pending: Pending,
    /// `(st_dev, st_ino)` of the parent directory.
    dir: (u64, u64),
    /// The inode being replaced, held open until the writer has been answered: its blocks are
    /// then freed (and, with `-o discard`, trimmed) after the flush that matters, not in it.
    replaced: Option<OwnedFd>,
}

impl Entry {
    fn finish(self, result: Result<(), FsError>) {
        let Entry {
            pending, replaced, ..
        } = self;
        let Pending { temp, reply, .. } = pending;
        if result.is_ok() {
            temp.placed();
        } else {
            // Removed (when not renamed yet) before the writer learns about the failure.
            drop(temp);
        }
        // The writer may have stopped waiting; the file is committed regardless.
        let _ = reply.send(result);
        drop(replaced);
    }
}

/// What one flush on one file system covers.
#[derive(Default)]
struct DeviceRound {
    /// Indices into `fresh`: data to make durable.
    fresh: Vec<usize>,
    /// Indices into `renamed`: directory entries to make durable.
    renamed: Vec<usize>,
    /// One index into `renamed` per distinct directory.
    dirs: Vec<usize>,
}

/// One round of the commit thread:
///
/// 1. one flush per file system makes durable both the data of the `fresh` temporary files
///    and the renames of the previous round (`renamed`): `fsync` when there is a single thing
///    to flush (one file, or one directory), `syncfs` otherwise;
/// 2. the writers of `renamed` get their result;
/// 3. the `fresh` files whose data is durable are renamed over their targets and returned, to
///    be covered by the next round's flush (which runs at once, and is a mere directory
///    `fsync` when nothing new arrived meanwhile).
///
/// So a lone write costs `fsync(file)`, `rename`, `fsync(dir)`, and under load every flush
/// serves two batches.
fn commit_round(fresh: Vec<Pending>, renamed: Vec<Entry>) -> Vec<Entry> {
    let started = Instant::now();
    let (fresh_count, renamed_count) = (fresh.len(), renamed.len());
    let mut fresh_entries: Vec<Entry> = Vec::with_capacity(fresh.len());
    for pending in fresh {
        fresh_entries.push(Entry {
            dir: pending.dir,
            pending,
            replaced: None,
        });
    }

    // 1. Flush, once per file system.
    let mut devices: BTreeMap<u64, DeviceRound> = BTreeMap::new();
    for (i, e) in fresh_entries.iter().enumerate() {
        devices.entry(e.dir.0).or_default().fresh.push(i);
    }
    let mut seen_dirs = HashSet::new();
    for (i, e) in renamed.iter().enumerate() {
        let round = devices.entry(e.dir.0).or_default();
        round.renamed.push(i);
        if seen_dirs.insert(e.dir) {
            round.dirs.push(i);
        }
    }
    let mut failed_devices: HashMap<u64, Errno> = HashMap::new();
    for (&dev, round) in &devices {
        let flushed = match (round.fresh.as_slice(), round.dirs.as_slice()) {
            ([i], []) => match fresh_entries[*i].pending.temp.file.as_ref() {
                Some(file) => rustix::fs::fsync(file),
                None => Err(Errno::BADF),
            },
            ([], [i]) => rustix::fs::fsync(&renamed[*i].pending.temp.dir),
            ([i, ..], _) => match fresh_entries[*i].pending.temp.file.as_ref() {
                Some(file) => rustix::fs::syncfs(file),
                None => Err(Errno::BADF),
            },
            ([], [i, ..]) => rustix::fs::syncfs(&renamed[*i].pending.temp.dir),
            ([], []) => Ok(()),
        };
        if let Err(err) = flushed {
            failed_devices.insert(dev, err);
        }
    }

    let flushed_at = Instant::now();

    // 2. The previous round's renames are durable (or not): answer their writers.
    for e in renamed {
        let result = match failed_devices.get(&e.dir.0) {
            None => Ok(()),
            Some(&err) => Err(FsError::os(
                "flush to disk the directory entry of",
                &e.pending.path,
                err,
            )),
        };
        e.finish(result);
    }

    // 3. Rename the files whose data is durable; the next round makes the renames durable.
    let mut next = Vec::with_capacity(fresh_entries.len());
    let mut failed = 0usize;
    for mut e in fresh_entries {
        if let Some(&err) = failed_devices.get(&e.dir.0) {
            failed += 1;
            let error = FsError::os("flush to disk the new content of", &e.pending.path, err);
            e.finish(Err(error));
            continue;
        }
        match put_in_place(&mut e) {
            Ok(()) => next.push(e),
            Err(error) => {
                failed += 1;
                e.finish(Err(error));
            }
        }
    }
    tracing::trace!(
        fresh = fresh_count,
        settled = renamed_count,
        devices = devices.len(),
        failed,
        flush_us = (flushed_at - started).as_micros() as u64,
        elapsed_us = started.elapsed().as_micros() as u64,
        "fs group commit round"
    );
    next
}

/// Step 3 of a round for one file whose data is durable: links an unnamed temporary file
/// under its target's name, or renames a named one over it (also when the target appeared
/// after an unnamed file was staged). Closes the temporary file.
fn put_in_place(e: &mut Entry) -> Result<(), FsError> {
    let Pending {
        temp,
        target,
        path,
        echo,
        ..
    } = &mut e.pending;
    // The link or rename is the one event of the write under the target's name.
    let echo = echo.as_deref();
    let own = |change: &mut dyn FnMut() -> Result<(), Errno>| match echo {
        Some(echo) => echo.own(change),
        None => change(),
    };
    if temp.name == TempName::Unnamed {
        match own(&mut || temp.link_as(target)) {
            Ok(()) => {
                temp.file = None;
                return Ok(());
            }
            Err(Errno::EXIST) => temp.name_it(target, path)?,
            Err(err) => return Err(FsError::os("link the new content into", path, err)),
        }
    }
    temp.file = None;
    let TempName::Named(name) = &temp.name else {
        return Err(FsError::internal(
            "write",
            path,
            "temporary file already placed",
        ));
    };
    let old = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    e.replaced = rustix::fs::openat(&temp.dir, &*target, old, Mode::empty()).ok();
    own(&mut || rustix::fs::renameat(&temp.dir, name, &temp.dir, &*target))
        .map_err(|err| FsError::os("rename the new content into", path, err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fs::testutil::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn readers_never_see_a_partial_file() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let host = FsHost::new();
        let path = at(dir.path(), "big");
        let size = 4 * INLINE_IO_MAX;
        host.write(&fp, &path, vec![b'a'; size], Attrs::default(), &[])
            .await
            .expect("first write");

        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (stop, path) = (Arc::clone(&stop), path.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let data = std::fs::read(&path).expect("the file always exists");
                    let first = data.first().copied();
                    assert_eq!(data.len(), size, "torn read after {reads} reads");
                    assert!(
                        data.iter().all(|&b| Some(b) == first),
                        "mixed content after {reads} reads"
                    );
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..40 {
            let byte = if i % 2 == 0 { b'b' } else { b'a' };
            host.write(&fp, &path, vec![byte; size], Attrs::default(), &[])
                .await
                .expect("write");
        }
        stop.store(true, Ordering::Relaxed);
        let reads = reader.join().expect("reader saw only whole files");
        assert!(reads > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_are_group_committed() {
        let dir = tempdir();
        let fp = Arc::new(tree(dir.path()));
        let host = FsHost::new();
        let mut tasks = Vec::new();
        for i in 0..500 {
            let (host, fp) = (host.clone(), Arc::clone(&fp));
            let path = at(dir.path(), &format!("f{i:03}"));
            tasks.push(tokio::spawn(async move {
                let data = format!("content of file {i}\n").into_bytes();
                host.write(&fp, &path, data, Attrs::default(), &[]).await
            }));
        }
        for task in tasks {
            task.await.expect("task").expect("write");
        }
        for i in 0..500 {
            let data = std::fs::read(dir.path().join(format!("f{i:03}"))).expect("read");
            assert_eq!(data, format!("content of file {i}\n").into_bytes());
        }
        let stats = host.stats();
        assert_eq!(stats.files, 500);
        assert!(
            stats.batches < stats.files,
            "no batching: {stats:?}, mean {}",
            stats.mean_batch()
        );
        assert_eq!(
            host.read_dir(&fp, dir.path().to_str().expect("utf-8"))
                .await
                .map(|names| names.len()),
            Ok(500)
        );
    }
}
