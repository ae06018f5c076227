//! [`FsHost`]: every call a resource's `fs` interface makes, each authorised against the
//! resource's footprint (see `path`) before any syscall.
//!
//! **Threads.** Small calls run their few syscalls inline on the calling tokio task; reads,
//! copies and writes above [`INLINE_IO_MAX`], directory listings, recursive removals and
//! user/group lookups (NSS may go to the network) run on `spawn_blocking`; every flush and
//! rename runs on the commit thread (see `commit`). [`FsHost`] is a cheap `Clone` handle;
//! the commit thread starts with the first write and exits when the last handle is dropped.

use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use super::claims::{Claims, ConflictWatch};
use super::commit::{CommitStats, Committer};
use super::edits::{self, Edits, StagedEdit};
use super::error::{ErrorCode, FsError, os_text};
use super::path::{Authorized, authorize, covers_tree, describe};
use super::stat::{
    Attrs, FileStat, FileType, MODE_MASK, dev_ino, file_stat, kind_of, to_mode, wrong_type,
};
use super::sweep::{Swept, sweep};
use super::temp::{TempFile, under_temp_name};
use super::walk::{
    Entry, Located, Managed, Regular, Rules, WalkError, locate, lstat_at, open_dir, open_entry,
    open_regular,
};
use crate::sys::footprint::Footprint;
use crate::sys::ids::{self, IdKind};
use crate::sys::inotify::Echo;
use crate::sys::waker::Waker;

/// Files larger than this are read, compared, hashed, written or copied on a blocking thread
/// instead of inline on the async task.
pub const INLINE_IO_MAX: usize = 128 * 1024;

/// Mode of a file created by `write`/`copy` without a requested mode.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// Mode of a directory created by `mkdir` without a requested mode.
const DEFAULT_DIR_MODE: u32 = 0o755;

/// The most `read_at` returns in one call.
pub const READ_AT_MAX: usize = 1 << 20;

fn check_id(path: &Path, what: &str, id: Option<u32>) -> Result<(), FsError> {
    if id == Some(u32::MAX) {
        return Err(FsError::new(
            ErrorCode::Other,
            format!(
                "cannot set the {what} of `{}`: {} is not a valid id",
                path.display(),
                u32::MAX
            ),
        ));
    }
    Ok(())
}

/// The `fs` host interface's implementation, shared by every resource instance. Cheap to clone.
#[derive(Clone, Default)]
pub struct FsHost {
    /// Shared by the clones: one commit thread for the whole host.
    committer: Arc<Committer>,
    /// The paths the running graph writes, which the walk never follows as symlinks.
    managed: Arc<RwLock<Arc<Managed>>>,
    /// Which resource writes which directory entry (one file, two names).
    claims: Arc<Claims>,
    /// `run --diff`: the host diffs text files around each write.
    diffs: Arc<std::sync::atomic::AtomicBool>,
    /// Content editing resources wrote to a file they share, not on disk yet.
    edits: Arc<Edits>,
}

impl fmt::Debug for FsHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsHost")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A write's temporary file, created beside its target and not filled yet.
pub(super) struct Staged {
    pub(super) temp: TempFile,
    /// `(st_dev, st_ino)` of the temporary file's (and the target's) directory.
    pub(super) dir: (u64, u64),
    /// The target's name in the temporary file's directory.
    pub(super) target: CString,
    /// The mode the new file gets: asked for, else the replaced file's, else `0644`.
    pub(super) mode: u32,
    /// The owner it gets (asked for, else the replaced file's; `None`: the host's).
    pub(super) uid: Option<u32>,
    /// The group it gets, likewise.
    pub(super) gid: Option<u32>,
}

/// Runs `f` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    what: &str,
    path: &Path,
    f: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, FsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FsError::internal(what, path, format!("blocking task failed: {e}")))?
}

/// Runs `f`, which moves `size` bytes, on the caller's thread when that is at most
/// [`INLINE_IO_MAX`] (a thread hop costs more than the I/O) and on the blocking pool
/// otherwise, so a large file never stalls the runtime.
async fn sized<T: Send + 'static>(
    what: &str,
    path: &Path,
    size: u64,
    f: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, FsError> {
    if size <= INLINE_IO_MAX as u64 {
        f()
    } else {
        blocking(what, path, f).await
    }
}

impl FsHost {
    /// A new host; the commit thread starts with the first `write` or `copy`.
    pub fn new() -> FsHost {
        FsHost::default()
    }

    /// `run --diff`: diff text files around each write (see [`FsHost::diff_base`]).
    pub fn show_diffs(&self, on: bool) {
        self.diffs.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether writes are diffed (`run --diff`).
    pub fn diffs_shown(&self) -> bool {
        self.diffs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What a write of `path` is diffed against: `Some(None)` when nothing is there yet,
    /// `Some(Some(content))` for a regular file of at most
    /// [`crate::sys::text::MAX_DIFF_BYTES`],
    /// `None` when there is nothing to diff (too large, not a file, unreadable).
    pub async fn diff_base(&self, fp: &Footprint, path: &str) -> Option<Option<Vec<u8>>> {
        match self.stat(fp, path).await.ok()? {
            None => Some(None),
            Some(st)
                if st.file_type == FileType::File
                    && st.size <= crate::sys::text::MAX_DIFF_BYTES as u64 =>
            {
                self.read(fp, path).await.ok().map(Some)
            }
            Some(_) => None,
        }
    }

    /// Group-commit counters, e.g. for a benchmark's mean batch size.
    pub fn stats(&self) -> CommitStats {
        self.committer.stats()
    }

    /// The paths the running graph writes (every resource's write grants): on the way to
    /// any path, a symlink at one of them is never followed. The engine sets it for each
    /// graph it runs.
    /// It also forgets which resource wrote which entry (see [`FsHost::conflict_of`]).
    pub fn set_managed(&self, managed: Managed) {
        *self.managed.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(managed);
        self.claims.clear();
    }

    /// Why the resource `owner` (`Footprint::owner`) may not be applied until the graph
    /// changes: it writes a file another resource writes through another name (a linked
    /// or bind-mounted directory, a received path).
    pub fn conflict_of(&self, owner: &str) -> Option<String> {
        self.claims.conflict_of(owner)
    }

    /// Removes the staging files a killed homeostat left beside the paths the graph
    /// writes (see `sweep`): the engine calls it once, before the first check-apply.
    pub fn sweep(&self) -> Swept {
        sweep(&self.managed())
    }

    /// Calls `wake` when the resource `owner` is found writing a file another resource
    /// writes, until the returned guard is dropped (the engine wakes the resource, which
    /// then fails with [`FsHost::conflict_of`]).
    pub fn on_conflict(&self, owner: Arc<str>, wake: Waker) -> ConflictWatch {
        self.claims.on_conflict(owner, wake)
    }

    /// Claims the entry at `loc` for the resource of `fp` (see `claims`); returns its
    /// directory's `(st_dev, st_ino)`.
    /// A shared file (`auth.shared`: editing resources share it by design) is not claimed.
    fn claim(
        &self,
        loc: &Located,
        auth: &Authorized,
        fp: &Footprint,
    ) -> Result<(u64, u64), FsError> {
        let st = rustix::fs::fstat(&loc.parent)
            .map_err(|e| FsError::os("stat the directory of", &auth.path, e))?;
        let dir = dev_ino(&st);
        if let Some(owner) = &fp.owner
            && !auth.shared
        {
            self.claims.claim(dir, &loc.name, &auth.path, owner)?;
        }
        Ok(dir)
    }

    /// [`authorize`] for a change that is not a content write (copy, symlink, mkdir,
    /// remove, set-attrs: `what`), which a shared file refuses (see `edits`).
    fn authorize_whole<'a>(
        fp: &'a Footprint,
        path: &str,
        what: &str,
    ) -> Result<Authorized<'a>, FsError> {
        let auth = authorize(fp, path, true)?;
        if auth.shared {
            return Err(edits::refused(what, &auth.path));
        }
        Ok(auth)
    }

    /// The managed paths now.
    fn managed(&self) -> Arc<Managed> {
        self.managed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `lstat`; `None` when the path (or a parent) does not exist.
    pub async fn stat(&self, fp: &Footprint, path: &str) -> Result<Option<FileStat>, FsError> {
        let auth = authorize(fp, path, false)?;
        let managed = self.managed();
        let rules = Rules {
            fp,
            auth: &auth,
            managed: &managed,
        };
        let on_disk =
            match open_entry(&rules, OFlags::PATH).map_err(|e| e.into_error(&auth.path))? {
                Entry::Open(fd) => rustix::fs::fstat(&fd)
                    .map(|st| Some(file_stat(&st)))
                    .map_err(|err| FsError::os("stat", &auth.path, err))?,
                Entry::Absent => None,
                // `O_PATH` opens a symlink itself; this is for completeness.
                Entry::Symlink => return Err(FsError::os("stat", &auth.path, Errno::LOOP)),
            };
        // A shared file with staged content is what its next write will make of it.
        match self.staged(&auth) {
            Some(edit) => {
                let before = on_disk.filter(|st| st.file_type == FileType::File);
                let (mode, uid, gid) = written_attrs(edit.attrs, before);
                Ok(Some(FileStat {
                    file_type: FileType::File,
                    size: edit.data.len() as u64,
                    mode,
                    uid: uid.unwrap_or_else(|| rustix::process::geteuid().as_raw()),
                    gid: gid.unwrap_or_else(|| rustix::process::getegid().as_raw()),
                }))
            }
            None => Ok(on_disk),
        }
    }

    /// What is staged for a shared path (see `edits`), if `auth` is one.
    fn staged(&self, auth: &Authorized) -> Option<Arc<StagedEdit>> {
        if auth.shared {
            self.edits.get(&auth.path)
        } else {
            None
        }
    }

    /// The walk's rules for `auth` in `fp`, with the graph's managed paths `managed`.
    fn rules<'a>(fp: &'a Footprint, auth: &'a Authorized<'a>, managed: &'a Managed) -> Rules<'a> {
        Rules { fp, auth, managed }
    }

    /// Opens a regular file for reading; errors when it is absent or something else.
    fn open_for_read(&self, fp: &Footprint, auth: &Authorized) -> Result<(File, u64), FsError> {
        let managed = self.managed();
        match open_regular(&Self::rules(fp, auth, &managed))? {
            Regular::File(file, size) => Ok((file, size)),
            Regular::Absent => Err(FsError::os("read", &auth.path, Errno::NOENT)),
            Regular::Not(kind) => Err(wrong_type(&auth.path, kind, "a regular file")),
        }
    }

    /// The whole content of a regular file.
    pub async fn read(&self, fp: &Footprint, path: &str) -> Result<Vec<u8>, FsError> {
        let auth = authorize(fp, path, false)?;
        if let Some(edit) = self.staged(&auth) {
            return Ok(edit.data.clone());
        }
        let (mut file, size) = self.open_for_read(fp, &auth)?;
        let read = move |file: &mut File, path: &Path| {
            let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1));
            file.read_to_end(&mut buf)
                .map_err(|e| FsError::io("read", path, &e))?;
            Ok(buf)
        };
        let path = auth.path.clone();
        sized("read", &auth.path, size, move || read(&mut file, &path)).await
    }

    /// Up to `len` bytes (at most [`READ_AT_MAX`]) of a regular file from `offset`.
    pub async fn read_at(
        &self,
        fp: &Footprint,
        path: &str,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, FsError> {
        use std::os::unix::fs::FileExt;
        let auth = authorize(fp, path, false)?;
        if let Some(edit) = self.staged(&auth) {
            let from = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(edit.data.len());
            let to = from
                .saturating_add((len as usize).min(READ_AT_MAX))
                .min(edit.data.len());
            return Ok(edit.data[from..to].to_vec());
        }
        let (file, size) = self.open_for_read(fp, &auth)?;
        let want = (len as usize)
            .min(READ_AT_MAX)
            .min(usize::try_from(size.saturating_sub(offset)).unwrap_or(usize::MAX));
        let read = move |file: &File, path: &Path| {
            let mut buf = vec![0u8; want];
            let mut got = 0;
            while got < want {
                match file.read_at(&mut buf[got..], offset + got as u64) {
                    Ok(0) => break, // shrank meanwhile
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(FsError::io("read", path, &e)),
                }
            }
            buf.truncate(got);
            Ok(buf)
        };
        let path = auth.path.clone();
        sized("read", &auth.path, want as u64, move || read(&file, &path)).await
    }

    /// Lower-case hex SHA-256 of a regular file's content.
    pub async fn digest(&self, fp: &Footprint, path: &str) -> Result<String, FsError> {
        let auth = authorize(fp, path, false)?;
        if let Some(edit) = self.staged(&auth) {
            return Ok(hex::encode(Sha256::digest(&edit.data)));
        }
        let (mut file, size) = self.open_for_read(fp, &auth)?;
        let hash = |file: &mut File, path: &Path| -> Result<String, FsError> {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => hasher.update(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(FsError::io("read", path, &e)),
                }
            }
            Ok(hex::encode(hasher.finalize()))
        };
        let path = auth.path.clone();
        sized("hash", &auth.path, size, move || hash(&mut file, &path)).await
    }

    /// Whether the regular file at `path` holds exactly `data`; `false` when the path does
    /// not exist or is not a regular file (a symlink, a directory...). Sizes are compared
    /// first, then the content chunk by chunk.
    pub async fn content_equals(
        &self,
        fp: &Footprint,
        path: &str,
        data: &[u8],
    ) -> Result<bool, FsError> {
        let auth = authorize(fp, path, false)?;
        if let Some(edit) = self.staged(&auth) {
            return Ok(edit.data == data);
        }
        let managed = self.managed();
        let Regular::File(mut file, size) = open_regular(&Self::rules(fp, &auth, &managed))? else {
            return Ok(false);
        };
        if size != data.len() as u64 {
            return Ok(false);
        }
        if data.len() <= INLINE_IO_MAX {
            stream_equals(&mut file, data).map_err(|e| FsError::io("read", &auth.path, &e))
        } else {
            let data = data.to_vec();
            let path = auth.path;
            blocking("read", &path.clone(), move || {
                stream_equals(&mut file, &data).map_err(|e| FsError::io("read", &path, &e))
            })
            .await
        }
    }

    /// Atomically and durably replaces `path` with a regular file holding `data` (see the
    /// module documentation). Without attrs, a replaced regular file's mode and owner are
    /// kept; a new file gets `0644` and the host's user. A symlink at `path` is replaced, not
    /// followed. Once handed to the commit thread, the write completes even if the caller
    /// stops waiting. When `path` is one of `own`, the resource's path watches, putting the
    /// file in place does not wake the resource (see [`Echo`]).
    pub async fn write(
        &self,
        fp: &Footprint,
        path: &str,
        data: Vec<u8>,
        attrs: Attrs,
        own: &[Arc<Echo>],
    ) -> Result<(), FsError> {
        let auth = authorize(fp, path, true)?;
        if auth.shared {
            // Written with the other editors' edits once they have run (`flush_edits`).
            check_id(&auth.path, "owner", attrs.uid)?;
            check_id(&auth.path, "group", attrs.gid)?;
            self.edits.stage(auth.path, data, attrs);
            return Ok(());
        }
        self.write_now(fp, auth, data, attrs, own).await
    }

    /// Writes what the editing resources of the shared file `path` staged (see `edits`)
    /// with one atomic, durable write, through `fp` (the footprint of one of them); true
    /// when something was staged. `own`: as for [`FsHost::write`].
    pub async fn flush_edits(
        &self,
        fp: &Footprint,
        path: &Path,
        own: &[Arc<Echo>],
    ) -> Result<bool, FsError> {
        let auth = authorize(fp, &path.to_string_lossy(), true)?;
        let Some(edit) = self.edits.take(&auth.path) else {
            return Ok(false);
        };
        let StagedEdit { data, attrs } = Arc::unwrap_or_clone(edit);
        self.write_now(fp, auth, data, attrs, own)
            .await
            .map(|()| true)
    }

    /// [`FsHost::write`], to disk now.
    async fn write_now(
        &self,
        fp: &Footprint,
        auth: Authorized<'_>,
        data: Vec<u8>,
        attrs: Attrs,
        own: &[Arc<Echo>],
    ) -> Result<(), FsError> {
        let Staged {
            mut temp,
            dir,
            target,
            mode,
            uid,
            gid,
        } = self.stage(&Self::rules(fp, &auth, &self.managed()), attrs)?;
        let path = auth.path.clone();
        let mut temp = sized("write", &auth.path, data.len() as u64, move || {
            write_all(&mut temp, &data, &path)?;
            Ok(temp)
        })
        .await?;
        temp.set_attrs(&auth.path, mode, uid, gid)?;
        self.commit(temp, dir, target, auth.path, own).await
    }

    /// Like [`FsHost::write`], with the content of the regular file `source` (which needs a
    /// read grant).
    pub async fn copy(
        &self,
        fp: &Footprint,
        source: &str,
        path: &str,
        attrs: Attrs,
        own: &[Arc<Echo>],
    ) -> Result<(), FsError> {
        let src = authorize(fp, source, false)?;
        let auth = Self::authorize_whole(fp, path, "copy into")?;
        let (mut from, size) = self.open_for_read(fp, &src)?;
        let Staged {
            mut temp,
            dir,
            target,
            mode,
            uid,
            gid,
        } = self.stage(&Self::rules(fp, &auth, &self.managed()), attrs)?;
        let copy = move |from: &mut File, temp: &mut TempFile, src: &Path| -> Result<(), FsError> {
            let to = temp.file()?;
            // `io::copy` between files uses `copy_file_range` on Linux.
            io::copy(from, to).map_err(|e| FsError::io("copy from", src, &e))?;
            Ok(())
        };
        let src_path = src.path.clone();
        let mut temp = sized("copy from", &src.path, size, move || {
            copy(&mut from, &mut temp, &src_path)?;
            Ok(temp)
        })
        .await?;
        temp.set_attrs(&auth.path, mode, uid, gid)?;
        self.commit(temp, dir, target, auth.path, own).await
    }

    /// Opens the parent, checks what is there now and creates the temporary file.
    pub(super) fn stage(&self, rules: &Rules, attrs: Attrs) -> Result<Staged, FsError> {
        let auth = rules.auth;
        check_id(&auth.path, "owner", attrs.uid)?;
        check_id(&auth.path, "group", attrs.gid)?;
        let loc = locate(rules, OFlags::RDONLY).map_err(|e| e.into_error(&auth.path))?;
        let existing = lstat_at(&loc)
            .map_err(|e| FsError::os("stat", &auth.path, e))?
            .map(|st| file_stat(&st));
        let inherited = match existing {
            Some(st) if st.file_type == FileType::Directory => {
                return Err(FsError::new(
                    ErrorCode::WrongType,
                    format!("cannot write `{}`: it is a directory", auth.path.display()),
                ));
            }
            Some(st) if st.file_type == FileType::File => Some(st),
            // A symlink or special file is replaced like an absent one.
            _ => None,
        };
        let (mode, uid, gid) = written_attrs(attrs, inherited);
        let dir = self.claim(&loc, auth, rules.fp)?;
        let Located { parent, name } = loc;
        let temp = TempFile::create(parent, &name, existing.is_none(), &auth.path)?;
        Ok(Staged {
            temp,
            dir,
            target: name,
            mode,
            uid,
            gid,
        })
    }

    /// Hands a written temporary file to the commit thread and waits for its result; the
    /// resource's watch of `path`, if it is one of `own`, is not woken by it.
    pub(super) async fn commit(
        &self,
        temp: TempFile,
        dir: (u64, u64),
        target: CString,
        path: PathBuf,
        own: &[Arc<Echo>],
    ) -> Result<(), FsError> {
        let echo = own.iter().find(|e| e.path() == path).cloned();
        self.committer.commit(temp, dir, target, path, echo).await
    }

    /// Atomically makes `path` a symlink to `target` (not checked): a temporary link in the
    /// same directory renamed over `path`.
    pub async fn symlink(&self, fp: &Footprint, target: &str, path: &str) -> Result<(), FsError> {
        let auth = Self::authorize_whole(fp, path, "make a symlink of")?;
        let loc = locate(&Self::rules(fp, &auth, &self.managed()), OFlags::PATH)
            .map_err(|e| e.into_error(&auth.path))?;
        let ctarget = CString::new(target).map_err(|_| {
            FsError::new(
                ErrorCode::Other,
                format!(
                    "cannot make `{}` a symlink: its target contains a NUL byte",
                    auth.path.display()
                ),
            )
        })?;
        if let Some(st) = lstat_at(&loc).map_err(|e| FsError::os("stat", &auth.path, e))?
            && kind_of(&st) == FileType::Directory
        {
            return Err(FsError::new(
                ErrorCode::WrongType,
                format!(
                    "cannot make `{}` a symlink: it is a directory",
                    auth.path.display()
                ),
            ));
        }
        self.claim(&loc, &auth, fp)?;
        let (temp, ()) =
            under_temp_name(&loc.name, &auth.path, "create a symlink next to", |temp| {
                rustix::fs::symlinkat(&ctarget, &loc.parent, temp)
            })?;
        rustix::fs::renameat(&loc.parent, &temp, &loc.parent, &loc.name).map_err(|err| {
            let _ = rustix::fs::unlinkat(&loc.parent, &temp, AtFlags::empty());
            FsError::os("replace with a symlink", &auth.path, err)
        })
    }

    /// The target of a symlink.
    pub async fn read_link(&self, fp: &Footprint, path: &str) -> Result<String, FsError> {
        let auth = authorize(fp, path, false)?;
        let loc = locate(&Self::rules(fp, &auth, &self.managed()), OFlags::PATH)
            .map_err(|e| e.into_error(&auth.path))?;
        match rustix::fs::readlinkat(&loc.parent, &loc.name, Vec::new()) {
            Ok(target) => target.into_string().map_err(|e| {
                FsError::new(
                    ErrorCode::Other,
                    format!(
                        "the target of `{}` is not UTF-8: {:?}",
                        auth.path.display(),
                        e.into_cstring()
                    ),
                )
            }),
            Err(Errno::INVAL) => {
                let kind = lstat_at(&loc)
                    .ok()
                    .flatten()
                    .map_or(FileType::Other, |st| kind_of(&st));
                Err(wrong_type(&auth.path, kind, "a symlink"))
            }
            Err(err) => Err(FsError::os("read the symlink", &auth.path, err)),
        }
    }

    /// Creates one directory (the parent must exist) with `attrs` (mode `0755` by default,
    /// exactly: the umask does not apply). An existing directory is not an error: the given
    /// attrs are applied to it. Anything else in the way is `wrong-type`.
    pub async fn mkdir(&self, fp: &Footprint, path: &str, attrs: Attrs) -> Result<(), FsError> {
        let auth = Self::authorize_whole(fp, path, "make a directory of")?;
        check_id(&auth.path, "owner", attrs.uid)?;
        check_id(&auth.path, "group", attrs.gid)?;
        let loc = locate(&Self::rules(fp, &auth, &self.managed()), OFlags::PATH)
            .map_err(|e| e.into_error(&auth.path))?;
        self.claim(&loc, &auth, fp)?;
        // Created private, then opened, chowned and chmoded, so it is never briefly wider.
        match rustix::fs::mkdirat(&loc.parent, &loc.name, Mode::from_bits_retain(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = lstat_at(&loc)
                    .map_err(|e| FsError::os("stat", &auth.path, e))?
                    .map(|st| file_stat(&st));
                return match st {
                    Some(st) if st.file_type == FileType::Directory => {
                        set_attrs_at(&loc, &auth.path, &st, attrs)
                    }
                    Some(st) => Err(wrong_type(&auth.path, st.file_type, "a directory")),
                    None => Err(FsError::os("create directory", &auth.path, Errno::EXIST)),
                };
            }
            Err(err) => return Err(FsError::os("create directory", &auth.path, err)),
        }
        let dir = open_dir(
            &loc.parent,
            Path::new(OsStr::from_bytes(loc.name.to_bytes())),
            OFlags::RDONLY,
        )
        .map_err(|e| FsError::os("open the new directory", &auth.path, e))?;
        if attrs.uid.is_some() || attrs.gid.is_some() {
            rustix::fs::fchown(
                &dir,
                attrs.uid.map(rustix::fs::Uid::from_raw),
                attrs.gid.map(rustix::fs::Gid::from_raw),
            )
            .map_err(|e| FsError::os("set the owner of", &auth.path, e))?;
        }
        rustix::fs::fchmod(&dir, to_mode(attrs.mode.unwrap_or(DEFAULT_DIR_MODE)))
            .map_err(|e| FsError::os("set the mode of", &auth.path, e))
    }

    /// Removes a file, symlink or empty directory; with `recursive`, a whole tree (which
    /// needs a recursive write grant when the directory is not empty). Symlinks are removed,
    /// never followed, and other file systems mounted inside the tree are not entered.
    /// Removing a path that does not exist succeeds.
    pub async fn remove(&self, fp: &Footprint, path: &str, recursive: bool) -> Result<(), FsError> {
        let auth = Self::authorize_whole(fp, path, "remove")?;
        if auth.path == Path::new("/") {
            return Err(FsError::new(
                ErrorCode::NotAllowed,
                "refusing to remove `/`",
            ));
        }
        let loc = match locate(&Self::rules(fp, &auth, &self.managed()), OFlags::PATH) {
            Ok(loc) => loc,
            Err(WalkError::Absent { .. }) => return Ok(()),
            Err(WalkError::Fail(e)) => return Err(e),
        };
        let Some(st) = lstat_at(&loc).map_err(|e| FsError::os("stat", &auth.path, e))? else {
            return Ok(());
        };
        if kind_of(&st) != FileType::Directory {
            return match rustix::fs::unlinkat(&loc.parent, &loc.name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(err) => Err(FsError::os("remove", &auth.path, err)),
            };
        }
        match rustix::fs::unlinkat(&loc.parent, &loc.name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(Errno::NOTEMPTY | Errno::EXIST) => {}
            Err(err) => return Err(FsError::os("remove directory", &auth.path, err)),
        }
        if !recursive {
            return Err(FsError::new(
                ErrorCode::NotEmpty,
                format!(
                    "cannot remove `{}`: {} (remove it recursively to delete its content)",
                    auth.path.display(),
                    os_text(Errno::NOTEMPTY)
                ),
            ));
        }
        if !covers_tree(fp, &auth.path) {
            return Err(FsError::new(
                ErrorCode::NotAllowed,
                format!(
                    "cannot remove `{}` recursively: the directory is not empty and this \
                     resource's footprint has no recursive write grant for it ({})",
                    auth.path.display(),
                    describe(fp)
                ),
            ));
        }
        let (dev, _) = dev_ino(&st);
        let path = auth.path;
        blocking("remove", &path.clone(), move || {
            let parent_dev = rustix::fs::fstat(&loc.parent)
                .map(|st| dev_ino(&st).0)
                .map_err(|e| FsError::os("stat the parent of", &path, e))?;
            if parent_dev != dev {
                return Err(mount_point(&path));
            }
            remove_tree(loc.parent.as_fd(), &loc.name, dev, &path)
        })
        .await
    }

    /// Sets the attributes of an existing entry: owner and group with `lchown`, mode with
    /// `chmod` (a symlink has no mode of its own: asking for one is `wrong-type`). Values
    /// already in place are not set again, so no needless inotify event is raised.
    pub async fn set_attrs(&self, fp: &Footprint, path: &str, attrs: Attrs) -> Result<(), FsError> {
        let auth = Self::authorize_whole(fp, path, "set the attributes of")?;
        check_id(&auth.path, "owner", attrs.uid)?;
        check_id(&auth.path, "group", attrs.gid)?;
        let loc = locate(&Self::rules(fp, &auth, &self.managed()), OFlags::PATH)
            .map_err(|e| e.into_error(&auth.path))?;
        let Some(st) = lstat_at(&loc).map_err(|e| FsError::os("stat", &auth.path, e))? else {
            return Err(FsError::os("set attributes of", &auth.path, Errno::NOENT));
        };
        let current = file_stat(&st);
        if changes_attrs(&current, attrs) {
            refuse_hard_link(&loc, &auth.path, &st)?;
        }
        set_attrs_at(&loc, &auth.path, &current, attrs)
    }

    /// Names of the entries of a directory, sorted, without `.` and `..`. A name that is not
    /// UTF-8 is an error rather than a lossy name that would not exist.
    pub async fn read_dir(&self, fp: &Footprint, path: &str) -> Result<Vec<String>, FsError> {
        let auth = authorize(fp, path, false)?;
        let loc = locate(&Self::rules(fp, &auth, &self.managed()), OFlags::PATH)
            .map_err(|e| e.into_error(&auth.path))?;
        let name = Path::new(OsStr::from_bytes(loc.name.to_bytes()));
        let fd = match open_dir(&loc.parent, name, OFlags::RDONLY) {
            Ok(fd) => fd,
            Err(err @ (Errno::NOTDIR | Errno::LOOP)) => {
                return Err(match lstat_at(&loc) {
                    Ok(Some(st)) => wrong_type(&auth.path, kind_of(&st), "a directory"),
                    _ => FsError::os("list", &auth.path, err),
                });
            }
            Err(err) => return Err(FsError::os("list", &auth.path, err)),
        };
        let path = auth.path;
        blocking("list", &path.clone(), move || {
            let names = list_dir(fd, &path)?;
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                match name.into_string() {
                    Ok(s) => out.push(s),
                    Err(e) => {
                        return Err(FsError::new(
                            ErrorCode::Other,
                            format!(
                                "cannot list `{}`: the entry {:?} is not UTF-8",
                                path.display(),
                                e.into_cstring()
                            ),
                        ));
                    }
                }
            }
            out.sort_unstable();
            Ok(out)
        })
        .await
    }

    /// Resolves a user name to its uid through the host's user database (`getpwnam_r`); a
    /// decimal number is taken as a uid as is.
    pub async fn user_id(&self, name: &str) -> Result<u32, FsError> {
        ids::resolve(name, IdKind::User)
            .await
            .map_err(FsError::from)
    }

    /// Resolves a group name to its gid through the host's group database (`getgrnam_r`); a
    /// decimal number is taken as a gid as is.
    pub async fn group_id(&self, name: &str) -> Result<u32, FsError> {
        ids::resolve(name, IdKind::Group)
            .await
            .map_err(FsError::from)
    }
}

/// The mode, owner and group a write gives its file: what `attrs` sets, else what the
/// regular file it replaces (`inherited`) had; a new file gets `0644` and (`None`) the
/// host's user and group.
fn written_attrs(attrs: Attrs, inherited: Option<FileStat>) -> (u32, Option<u32>, Option<u32>) {
    (
        attrs
            .mode
            .or(inherited.map(|s| s.mode))
            .unwrap_or(DEFAULT_FILE_MODE),
        attrs.uid.or(inherited.map(|s| s.uid)),
        attrs.gid.or(inherited.map(|s| s.gid)),
    )
}

pub(super) fn write_all(temp: &mut TempFile, data: &[u8], path: &Path) -> Result<(), FsError> {
    temp.file()?
        .write_all(data)
        .map_err(|e| FsError::io("write the new content of", path, &e))
}

fn stream_equals(file: &mut File, data: &[u8]) -> io::Result<bool> {
    let mut buf = vec![0u8; (64 * 1024).min(data.len() + 1)];
    let mut at = 0usize;
    loop {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(at == data.len());
        }
        if at + n > data.len() || buf[..n] != data[at..at + n] {
            return Ok(false);
        }
        at += n;
    }
}

/// Whether `attrs` would change anything of an entry that is `current`.
fn changes_attrs(current: &FileStat, attrs: Attrs) -> bool {
    attrs.uid.is_some_and(|u| u != current.uid)
        || attrs.gid.is_some_and(|g| g != current.gid)
        || attrs.mode.is_some_and(|m| m & MODE_MASK != current.mode)
}

/// Refuses to change the owner or mode of a file with several hard links in a directory an
/// unprivileged user owns: that user may have linked another user's file (`/etc/shadow`)
/// under the managed name, and a `chown` would change that file (CVE-2017-18078;
/// systemd-tmpfiles' `hardlink_vulnerable()`). Directories have no such links.
fn refuse_hard_link(loc: &Located, path: &Path, st: &rustix::fs::Stat) -> Result<(), FsError> {
    if kind_of(st) == FileType::Directory || st.st_nlink <= 1 {
        return Ok(());
    }
    let dir =
        rustix::fs::fstat(&loc.parent).map_err(|e| FsError::os("stat the parent of", path, e))?;
    if dir.st_uid == 0 {
        return Ok(());
    }
    Err(FsError::new(
        ErrorCode::NotAllowed,
        format!(
            "cannot set the owner or mode of `{}`: it has {} hard links and its directory is \
             owned by uid {}, who could have linked another user's file under this name; \
             homeostat changes no attributes through such a name (remove the extra links, \
             or manage the file where its owner cannot link)",
            path.display(),
            st.st_nlink,
            dir.st_uid
        ),
    ))
}

fn set_attrs_at(
    loc: &Located,
    path: &Path,
    current: &FileStat,
    attrs: Attrs,
) -> Result<(), FsError> {
    let uid = attrs.uid.filter(|&u| u != current.uid);
    let gid = attrs.gid.filter(|&g| g != current.gid);
    if uid.is_some() || gid.is_some() {
        rustix::fs::chownat(
            &loc.parent,
            &loc.name,
            uid.map(rustix::fs::Uid::from_raw),
            gid.map(rustix::fs::Gid::from_raw),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| FsError::os("set the owner of", path, e))?;
    }
    if let Some(mode) = attrs.mode {
        if current.file_type == FileType::Symlink {
            return Err(FsError::new(
                ErrorCode::WrongType,
                format!(
                    "cannot set the mode of `{}`: it is a symlink, which has no mode of its own",
                    path.display()
                ),
            ));
        }
        // chown clears setuid/setgid, so the mode is set again after an owner change.
        if mode & MODE_MASK != current.mode || uid.is_some() || gid.is_some() {
            // Linux's fchmodat cannot refuse symlinks; the entry was just lstat'ed as a
            // non-symlink inside a directory opened without following symlinks.
            rustix::fs::chmodat(&loc.parent, &loc.name, to_mode(mode), AtFlags::empty())
                .map_err(|e| FsError::os("set the mode of", path, e))?;
        }
    }
    Ok(())
}

fn mount_point(path: &Path) -> FsError {
    FsError::new(
        ErrorCode::Other,
        format!(
            "cannot remove `{}` recursively: another file system is mounted there",
            path.display()
        ),
    )
}

/// All names in the directory `fd` except `.` and `..`.
fn list_dir(fd: OwnedFd, path: &Path) -> Result<Vec<CString>, FsError> {
    let dir = rustix::fs::Dir::new(fd).map_err(|e| FsError::os("list", path, e))?;
    let mut names = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| FsError::os("list", path, e))?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Removes the directory `name` in `parent` and everything below it, without following
/// symlinks and without entering another file system (`dev`).
fn remove_tree(parent: BorrowedFd<'_>, name: &CStr, dev: u64, path: &Path) -> Result<(), FsError> {
    let fd = match open_dir(
        parent,
        Path::new(OsStr::from_bytes(name.to_bytes())),
        OFlags::RDONLY,
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(err) => return Err(FsError::os("open directory", path, err)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| FsError::os("stat", path, e))?;
    if dev_ino(&st).0 != dev {
        return Err(mount_point(path));
    }
    // Listed first, then removed: removing while reading may skip entries.
    let dup = rustix::io::dup(&fd).map_err(|e| FsError::os("list", path, e))?;
    for child in list_dir(dup, path)? {
        let child_path = path.join(OsStr::from_bytes(child.to_bytes()));
        let is_dir = match rustix::fs::statat(&fd, &child, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => kind_of(&st) == FileType::Directory,
            Err(Errno::NOENT) => continue,
            Err(err) => return Err(FsError::os("stat", &child_path, err)),
        };
        if is_dir {
            remove_tree(fd.as_fd(), &child, dev, &child_path)?;
        } else {
            match rustix::fs::unlinkat(&fd, &child, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(err) => return Err(FsError::os("remove", &child_path, err)),
            }
        }
    }
    drop(fd);
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(err) => Err(FsError::os("remove directory", path, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fs::testutil::*;

    #[test]
    fn host_and_futures_are_send() {
        fn shared<T: Send + Sync + Clone + 'static>() {}
        fn send<T: Send>(_: T) {}
        shared::<FsHost>();
        let (host, fp) = (FsHost::new(), Footprint::default());
        // Built, never polled.
        send(host.stat(&fp, "/x"));
        send(host.read(&fp, "/x"));
        send(host.digest(&fp, "/x"));
        send(host.content_equals(&fp, "/x", b""));
        send(host.write(&fp, "/x", Vec::new(), Attrs::default(), &[]));
        send(host.copy(&fp, "/x", "/y", Attrs::default(), &[]));
        send(host.symlink(&fp, "/x", "/y"));
        send(host.read_link(&fp, "/x"));
        send(host.mkdir(&fp, "/x", Attrs::default()));
        send(host.remove(&fp, "/x", true));
        send(host.set_attrs(&fp, "/x", Attrs::default()));
        send(host.read_dir(&fp, "/x"));
        send(host.user_id("root"));
        send(host.group_id("root"));
    }

    #[tokio::test]
    async fn stat_read_digest_and_compare() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let host = FsHost::new();
        std::fs::write(dir.path().join("f"), "hello\n").expect("write");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        os_symlink("f", dir.path().join("l")).expect("symlink");

        let st = host.stat(&fp, &at(dir.path(), "f")).await.expect("stat");
        let st = st.expect("exists");
        assert_eq!((st.file_type, st.size), (FileType::File, 6));
        assert_eq!(st.mode, mode_of(&at(dir.path(), "f")));
        let d = host.stat(&fp, &at(dir.path(), "d")).await.expect("stat");
        assert_eq!(d.map(|s| s.file_type), Some(FileType::Directory));
        let l = host.stat(&fp, &at(dir.path(), "l")).await.expect("stat");
        assert_eq!(l.map(|s| s.file_type), Some(FileType::Symlink));
        for absent in ["nope", "nope/x", "f/x"] {
            assert_eq!(host.stat(&fp, &at(dir.path(), absent)).await, Ok(None));
        }

        assert_eq!(
            host.read(&fp, &at(dir.path(), "f")).await,
            Ok(b"hello\n".to_vec())
        );
        let err = host
            .read(&fp, &at(dir.path(), "nope"))
            .await
            .expect_err("absent");
        assert_eq!(err.code, ErrorCode::NotFound);
        assert!(
            err.message.contains("nope") && err.message.contains("os error 2"),
            "{err}"
        );
        for not_file in ["d", "l"] {
            let err = host
                .read(&fp, &at(dir.path(), not_file))
                .await
                .expect_err(not_file);
            assert_eq!(err.code, ErrorCode::WrongType, "{err}");
        }

        assert_eq!(
            host.digest(&fp, &at(dir.path(), "f")).await.as_deref(),
            Ok("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        );

        let f = at(dir.path(), "f");
        assert_eq!(host.content_equals(&fp, &f, b"hello\n").await, Ok(true));
        assert_eq!(host.content_equals(&fp, &f, b"hellO\n").await, Ok(false));
        assert_eq!(host.content_equals(&fp, &f, b"hello").await, Ok(false));
        for other in ["nope", "nope/x", "d", "l"] {
            let path = at(dir.path(), other);
            assert_eq!(host.content_equals(&fp, &path, b"hello\n").await, Ok(false));
        }

        // Large files go through the blocking pool.
        let mut big: Vec<u8> = (0..(3 * INLINE_IO_MAX as u32)).map(|i| i as u8).collect();
        let b = at(dir.path(), "big");
        std::fs::write(&b, &big).expect("write");
        assert_eq!(host.read(&fp, &b).await.as_deref(), Ok(&big[..]));
        assert_eq!(host.content_equals(&fp, &b, &big).await, Ok(true));
        assert_eq!(
            host.digest(&fp, &b).await,
            Ok(hex::encode(Sha256::digest(&big)))
        );
        if let Some(last) = big.last_mut() {
            *last ^= 1;
        }
        assert_eq!(host.content_equals(&fp, &b, &big).await, Ok(false));

        let outside = Footprint {
            paths: vec![grant(&at(dir.path(), "f"), false, false)],
            ..Default::default()
        };
        let err = host
            .read(&outside, &at(dir.path(), "big"))
            .await
            .expect_err("outside");
        assert_eq!(err.code, ErrorCode::NotAllowed);
    }

    #[tokio::test]
    async fn shared_files_stage_writes_until_flushed() {
        let dir = tempdir();
        let f = at(dir.path(), "shared.conf");
        std::fs::write(&f, b"a\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let mut shared = grant(&f, false, true);
        shared.shared = true;
        let fp = Footprint {
            paths: vec![shared],
            ..Footprint::default()
        };
        let host = FsHost::new();
        host.write(&fp, &f, b"a\nb\n".to_vec(), Attrs::default(), &[])
            .await
            .expect("staged");
        // Staged, not written: the next editor sees it, the disk does not yet.
        assert_eq!(std::fs::read(&f).expect("read"), b"a\n");
        assert_eq!(host.read(&fp, &f).await.expect("read"), b"a\nb\n");
        assert!(
            host.content_equals(&fp, &f, b"a\nb\n")
                .await
                .expect("compare")
        );
        assert_eq!(host.read_at(&fp, &f, 2, 10).await.expect("read at"), b"b\n");
        let st = host.stat(&fp, &f).await.expect("stat").expect("exists");
        assert_eq!((st.size, st.mode), (4, 0o640));
        // Only content: the rest belongs to the file's whole-file resource.
        for refused in [
            host.remove(&fp, &f, false).await,
            host.set_attrs(
                &fp,
                &f,
                Attrs {
                    mode: Some(0o600),
                    ..Attrs::default()
                },
            )
            .await,
            host.mkdir(&fp, &f, Attrs::default()).await,
            host.symlink(&fp, "/x", &f).await,
        ] {
            let e = refused.expect_err("refused on a shared file");
            assert_eq!(e.code, super::ErrorCode::NotAllowed);
            assert!(
                e.message.contains("shared by editing resources"),
                "{}",
                e.message
            );
        }
        assert!(
            host.flush_edits(&fp, Path::new(&f), &[])
                .await
                .expect("flush")
        );
        assert_file(dir.path(), "shared.conf", b"a\nb\n", 0o640);
        assert!(
            !host
                .flush_edits(&fp, Path::new(&f), &[])
                .await
                .expect("nothing staged")
        );
        assert_eq!(host.read(&fp, &f).await.expect("read"), b"a\nb\n");
    }

    #[tokio::test]
    async fn write_creates_and_replaces_with_attrs() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let host = FsHost::new();
        let f = at(dir.path(), "conf");

        host.write(&fp, &f, b"one\n".to_vec(), Attrs::default(), &[])
            .await
            .expect("write new");
        assert_eq!(std::fs::read(&f).expect("read"), b"one\n");
        assert_eq!(mode_of(&f), 0o644);

        // No attrs: the replaced file's mode is kept.
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        host.write(&fp, &f, b"two\n".to_vec(), Attrs::default(), &[])
            .await
            .expect("replace");
        assert_eq!(std::fs::read(&f).expect("read"), b"two\n");
        assert_eq!(mode_of(&f), 0o640);

        let attrs = Attrs {
            mode: Some(0o4750),
            ..Attrs::default()
        };
        host.write(&fp, &f, Vec::new(), attrs, &[])
            .await
            .expect("write empty");
        assert_eq!(std::fs::read(&f).expect("read"), b"");
        assert_eq!(mode_of(&f), 0o4750);

        if is_root() {
            let attrs = Attrs {
                mode: None,
                uid: Some(1),
                gid: Some(2),
            };
            host.write(&fp, &f, b"owned\n".to_vec(), attrs, &[])
                .await
                .expect("chown");
            let md = std::fs::metadata(&f).expect("stat");
            assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (1, 2, 0o4750));
            // Kept on the next write without attrs.
            host.write(&fp, &f, b"again\n".to_vec(), Attrs::default(), &[])
                .await
                .expect("rewrite");
            let md = std::fs::metadata(&f).expect("stat");
            assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (1, 2, 0o4750));
        }

        // Large content goes through the blocking pool.
        let big = vec![7u8; 2 * INLINE_IO_MAX + 3];
        host.write(&fp, &f, big.clone(), Attrs::default(), &[])
            .await
            .expect("write big");
        assert_eq!(std::fs::read(&f).expect("read"), big);

        // Only the target is left: no temporary file.
        assert_eq!(
            host.read_dir(&fp, &at(dir.path(), "")).await,
            Ok(vec!["conf".to_owned()])
        );

        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let err = host
            .write(
                &fp,
                &at(dir.path(), "sub"),
                b"x".to_vec(),
                Attrs::default(),
                &[],
            )
            .await
            .expect_err("directory");
        assert_eq!(err.code, ErrorCode::WrongType, "{err}");
        let err = host
            .write(
                &fp,
                &at(dir.path(), "missing/x"),
                b"x".to_vec(),
                Attrs::default(),
                &[],
            )
            .await
            .expect_err("no parent");
        assert_eq!(err.code, ErrorCode::NotFound, "{err}");
        let read_only = Footprint {
            paths: vec![grant(&f, false, false)],
            ..Default::default()
        };
        let err = host
            .write(&read_only, &f, b"x".to_vec(), Attrs::default(), &[])
            .await
            .expect_err("read-only grant");
        assert_eq!(err.code, ErrorCode::NotAllowed);
        let bad = Attrs {
            uid: Some(u32::MAX),
            ..Attrs::default()
        };
        let err = host
            .write(&fp, &f, b"x".to_vec(), bad, &[])
            .await
            .expect_err("bad uid");
        assert_eq!(err.code, ErrorCode::Other);
        assert_eq!(std::fs::read(&f).expect("read"), big);
    }

    #[tokio::test]
    async fn write_replaces_a_symlink_not_its_target() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let host = FsHost::new();
        std::fs::write(dir.path().join("real"), "original").expect("write");
        os_symlink("real", dir.path().join("link")).expect("symlink");

        let link = at(dir.path(), "link");
        assert_eq!(
            host.content_equals(&fp, &link, b"original").await,
            Ok(false)
        );
        host.write(&fp, &link, b"new".to_vec(), Attrs::default(), &[])
            .await
            .expect("write over link");
        let st = host.stat(&fp, &link).await.expect("stat").expect("exists");
        assert_eq!((st.file_type, st.mode), (FileType::File, 0o644));
        assert_eq!(std::fs::read(&link).expect("read"), b"new");
        assert_eq!(
            std::fs::read(dir.path().join("real")).expect("read"),
            b"original"
        );
    }

    #[tokio::test]
    async fn copy_is_a_write_of_the_source() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let host = FsHost::new();
        let big: Vec<u8> = (0..(2 * INLINE_IO_MAX as u32 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(dir.path().join("small"), "small\n").expect("write");
        std::fs::write(dir.path().join("big"), &big).expect("write");
        os_symlink("small", dir.path().join("link")).expect("symlink");

        let attrs = Attrs {
            mode: Some(0o600),
            ..Attrs::default()
        };
        host.copy(
            &fp,
            &at(dir.path(), "small"),
            &at(dir.path(), "c1"),
            attrs,
            &[],
        )
        .await
        .expect("copy small");
        assert_file(dir.path(), "c1", b"small\n", 0o600);
        host.copy(
            &fp,
            &at(dir.path(), "big"),
            &at(dir.path(), "c1"),
            Attrs::default(),
            &[],
        )
        .await
        .expect("copy big over it");
        assert_file(dir.path(), "c1", &big, 0o600);

        let err = host
            .copy(
                &fp,
                &at(dir.path(), "link"),
                &at(dir.path(), "c2"),
                Attrs::default(),
                &[],
            )
            .await
            .expect_err("symlink source");
        assert_eq!(err.code, ErrorCode::WrongType, "{err}");
        let err = host
            .copy(
                &fp,
                &at(dir.path(), "nope"),
                &at(dir.path(), "c2"),
                Attrs::default(),
                &[],
            )
            .await
            .expect_err("absent source");
        assert_eq!(err.code, ErrorCode::NotFound, "{err}");
        let dest_only = Footprint {
            paths: vec![grant(&at(dir.path(), "c2"), false, true)],
            ..Default::default()
        };
        let err = host
            .copy(
                &dest_only,
                &at(dir.path(), "small"),
                &at(dir.path(), "c2"),
                Attrs::default(),
                &[],
            )
            .await
            .expect_err("source outside");
        assert_eq!(err.code, ErrorCode::NotAllowed);
        assert!(!dir.path().join("c2").exists());
    }

    #[tokio::test]
    async fn symlinks_are_made_atomically_and_read() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let host = FsHost::new();
        let link = at(dir.path(), "link");

        host.symlink(&fp, "target/one", &link)
            .await
            .expect("symlink");
        assert_eq!(
            host.read_link(&fp, &link).await.as_deref(),
            Ok("target/one")
        );
        host.symlink(&fp, "/elsewhere", &link)
            .await
            .expect("replace link");
        assert_eq!(
            host.read_link(&fp, &link).await.as_deref(),
            Ok("/elsewhere")
        );

        std::fs::write(dir.path().join("file"), "x").expect("write");
        let file = at(dir.path(), "file");
        let err = host.read_link(&fp, &file).await.expect_err("not a link");
        assert_eq!(err.code, ErrorCode::WrongType, "{err}");
        host.symlink(&fp, "link", &file)
            .await
            .expect("replace file");
        assert_eq!(host.read_link(&fp, &file).await.as_deref(), Ok("link"));

        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        let err = host
            .symlink(&fp, "x", &at(dir.path(), "d"))
            .await
            .expect_err("over a directory");
        assert_eq!(err.code, ErrorCode::WrongType, "{err}");
        let err = host
            .read_link(&fp, &at(dir.path(), "nope"))
            .await
            .expect_err("absent");
        assert_eq!(err.code, ErrorCode::NotFound, "{err}");

        let mut names = host.read_dir(&fp, &at(dir.path(), "")).await.expect("list");
        names.retain(|n| n.contains("homeostat"));
        assert!(names.is_empty(), "{names:?}");
    }

    #[tokio::test]
    async fn mkdir_and_set_attrs() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let host = FsHost::new();
        let d = at(dir.path(), "d");
        let attrs = Attrs {
            mode: Some(0o2750),
            ..Attrs::default()
        };
        host.mkdir(&fp, &d, attrs).await.expect("mkdir");
        let st = host.stat(&fp, &d).await.expect("stat").expect("exists");
        assert_eq!((st.file_type, st.mode), (FileType::Directory, 0o2750));
        host.mkdir(&fp, &at(dir.path(), "d/e"), Attrs::default())
            .await
            .expect("mkdir default");
        assert_eq!(mode_of(&at(dir.path(), "d/e")), 0o755);
        // Existing directory: fine, attrs applied.
        let attrs = Attrs {
            mode: Some(0o700),
            ..Attrs::default()
        };
        host.mkdir(&fp, &d, attrs).await.expect("mkdir again");
        assert_eq!(mode_of(&d), 0o700);
        let err = host
            .mkdir(&fp, &at(dir.path(), "x/y"), Attrs::default())
            .await
            .expect_err("no parent");
        assert_eq!(err.code, ErrorCode::NotFound, "{err}");

        let f = at(dir.path(), "f");
        std::fs::write(&f, "x").expect("write");
        let err = host
            .mkdir(&fp, &f, Attrs::default())
            .await
            .expect_err("file");
        assert_eq!(err.code, ErrorCode::WrongType, "{err}");

        let attrs = Attrs {
            mode: Some(0o600),
            ..Attrs::default()
        };
        host.set_attrs(&fp, &f, attrs).await.expect("chmod");
        assert_eq!(mode_of(&f), 0o600);
        host.set_attrs(&fp, &f, Attrs::default())
            .await
            .expect("no-op");
        assert_eq!(mode_of(&f), 0o600);

        let l = at(dir.path(), "l");
        os_symlink("f", &l).expect("symlink");
        let err = host
            .set_attrs(&fp, &l, attrs)
            .await
            .expect_err("mode of link");
        assert_eq!(err.code, ErrorCode::WrongType, "{err}");
        if is_root() {
            let attrs = Attrs {
                mode: None,
                uid: Some(3),
                gid: Some(4),
            };
            host.set_attrs(&fp, &l, attrs).await.expect("lchown");
            let link = std::fs::symlink_metadata(&l).expect("lstat");
            let target = std::fs::metadata(&f).expect("stat");
            assert_eq!((link.uid(), link.gid()), (3, 4));
            assert_eq!((target.uid(), target.gid()), (0, 0));
            let attrs = Attrs {
                mode: Some(0o4711),
                uid: Some(5),
                gid: None,
            };
            host.set_attrs(&fp, &f, attrs).await.expect("chown + chmod");
            let md = std::fs::metadata(&f).expect("stat");
            assert_eq!((md.uid(), md.mode() & 0o7777), (5, 0o4711));
        }
        let err = host
            .set_attrs(&fp, &at(dir.path(), "nope"), attrs)
            .await
            .expect_err("absent");
        assert_eq!(err.code, ErrorCode::NotFound, "{err}");
    }

    #[tokio::test]
    async fn remove_files_dirs_and_trees() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let host = FsHost::new();
        std::fs::write(dir.path().join("f"), "x").expect("write");
        host.remove(&fp, &at(dir.path(), "f"), false)
            .await
            .expect("file");
        assert!(!dir.path().join("f").exists());
        host.remove(&fp, &at(dir.path(), "f"), false)
            .await
            .expect("absent");
        host.remove(&fp, &at(dir.path(), "no/such"), true)
            .await
            .expect("absent parent");

        std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
        host.remove(&fp, &at(dir.path(), "empty"), false)
            .await
            .expect("empty dir");
        assert!(!dir.path().join("empty").exists());

        std::fs::create_dir_all(dir.path().join("t/a/b")).expect("mkdir");
        std::fs::write(dir.path().join("t/a/b/f"), "x").expect("write");
        std::fs::write(dir.path().join("t/g"), "x").expect("write");
        let err = host
            .remove(&fp, &at(dir.path(), "t"), false)
            .await
            .expect_err("not empty");
        assert_eq!(err.code, ErrorCode::NotEmpty, "{err}");

        // A non-recursive grant does not cover the content.
        let exact = Footprint {
            paths: vec![grant(&at(dir.path(), "t"), false, true)],
            ..Default::default()
        };
        let err = host
            .remove(&exact, &at(dir.path(), "t"), true)
            .await
            .expect_err("needs a recursive grant");
        assert_eq!(err.code, ErrorCode::NotAllowed, "{err}");

        host.remove(&fp, &at(dir.path(), "t"), true)
            .await
            .expect("tree");
        assert!(!dir.path().join("t").exists());
    }

    #[tokio::test]
    async fn recursive_remove_does_not_follow_symlinks() {
        let dir = tempdir();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(outside.join("deep")).expect("mkdir");
        std::fs::write(outside.join("keep"), "keep").expect("write");
        std::fs::write(outside.join("deep/keep"), "keep").expect("write");
        let t = dir.path().join("t");
        std::fs::create_dir_all(t.join("sub")).expect("mkdir");
        os_symlink(&outside, t.join("sub/to-dir")).expect("symlink");
        os_symlink(outside.join("keep"), t.join("to-file")).expect("symlink");
        os_symlink("../../outside/deep", t.join("sub/relative")).expect("symlink");

        let fp = tree(&t);
        let host = FsHost::new();
        host.remove(&fp, &at(dir.path(), "t"), true)
            .await
            .expect("remove tree");
        assert!(!t.exists());
        assert_eq!(std::fs::read(outside.join("keep")).expect("read"), b"keep");
        assert_eq!(
            std::fs::read(outside.join("deep/keep")).expect("read"),
            b"keep"
        );
    }

    /// A grant on the file alone (as a `file` resource declares): lookups take the whole
    /// path in one syscall, with the same answers as through an opened parent.

    #[tokio::test]
    async fn read_at_reads_ranges_and_stops_at_the_end() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let host = FsHost::new();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("big"), &data).expect("write");
        let path = at(dir.path(), "big");
        assert_eq!(
            host.read_at(&fp, &path, 10, 5).await.unwrap(),
            &data[10..15]
        );
        // Above the inline limit: read on the blocking pool.
        let mid = host.read_at(&fp, &path, 1000, 200_000).await.unwrap();
        assert_eq!(mid, &data[1000..201_000]);
        assert_eq!(
            host.read_at(&fp, &path, 299_990, 100).await.unwrap(),
            &data[299_990..]
        );
        assert!(
            host.read_at(&fp, &path, 400_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).expect("symlink");
        let err = host
            .read_at(&fp, &at(dir.path(), "link"), 0, 10)
            .await
            .expect_err("a symlink below the grant is not followed");
        assert_eq!(err.code, ErrorCode::WrongType, "{err}");
    }

    #[tokio::test]
    async fn read_dir_is_sorted() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let host = FsHost::new();
        for name in ["c", "a", "b.txt", ".hidden"] {
            std::fs::write(dir.path().join(name), "").expect("write");
        }
        std::fs::create_dir(dir.path().join("B")).expect("mkdir");
        assert_eq!(
            host.read_dir(&fp, dir.path().to_str().expect("utf-8"))
                .await,
            Ok(vec![
                ".hidden".to_owned(),
                "B".to_owned(),
                "a".to_owned(),
                "b.txt".to_owned(),
                "c".to_owned()
            ])
        );
        let err = host
            .read_dir(&fp, &at(dir.path(), "a"))
            .await
            .expect_err("file");
        assert_eq!(err.code, ErrorCode::WrongType, "{err}");
        let err = host
            .read_dir(&fp, &at(dir.path(), "nope"))
            .await
            .expect_err("absent");
        assert_eq!(err.code, ErrorCode::NotFound, "{err}");
    }

    #[tokio::test]
    async fn user_and_group_ids() {
        let host = FsHost::new();
        assert_eq!(host.user_id("root").await, Ok(0));
        assert_eq!(host.group_id("root").await, Ok(0));
        assert_eq!(host.user_id("0").await, Ok(0));
        assert_eq!(host.group_id("4242").await, Ok(4242));
        for bad in [
            "no-such-user-homeostat",
            "",
            "4294967295",
            "99999999999",
            "a\0b",
        ] {
            let err = host.user_id(bad).await.expect_err(bad);
            assert_eq!(err.code, ErrorCode::UnknownId, "{err}");
        }
        let err = host
            .group_id("no-such-group-homeostat")
            .await
            .expect_err("unknown group");
        assert_eq!(err.code, ErrorCode::UnknownId);
        assert!(err.message.contains("no-such-group-homeostat"), "{err}");
    }
}
