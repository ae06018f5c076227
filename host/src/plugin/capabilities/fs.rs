//! Host side of the `fs` capability (`homeostat:resource/fs`): every file-system call a
//! resource makes, confined to the [`Footprint`] it declared, and the durable atomic
//! `write`/`copy` behind them.
//!
//! **Confinement.** [`Footprint::check`] is lexical: a path must be absolute, free of `.` and
//! `..`, and equal to a grant or below a recursive one (writes need a write grant). On top of
//! that, the operations never follow a symlink the resource could have made: directories on
//! the way to a path are opened one by one with `O_NOFOLLOW` from the first one that a write
//! grant of the footprint covers, or that lies below the grant allowing the access (the
//! leading run, the operator's own layout such as `/var/run -> /run`, is resolved normally),
//! and the final component is handled with `*at` calls that do not follow it (`lstat`,
//! `O_NOFOLLOW` opens, `lchown`, rename over a link). A resource that may create symlinks
//! under (or at) `/srv/app` therefore cannot reach `/etc/shadow` through `/srv/app/link/shadow`,
//! nor read it through `/srv/app/link`. When every directory on the way may be followed (the
//! usual case: a file resource's grant is its own path), a lookup (`stat`, `content-equals`)
//! hands the whole path to its one syscall instead of opening the parent first.
//!
//! **Durability.** `write` and `copy` never modify a file in place. The content goes into a
//! temporary file in the same directory (`.NAME.homeostat-XXXXXXXXXXXX`, created with
//! `O_EXCL` and mode `0600`, then `fchown`/`fchmod` to the requested attributes, or to the
//! replaced file's, or `0644`; when the target does not exist, an unnamed `O_TMPFILE` inode
//! instead, see `TempName`), which is handed to a single *commit thread*. That thread works
//! in rounds; a round takes everything queued (whatever arrived while the previous round was
//! flushing: no timer, so a lone write pays only for its own flushes) and
//!
//! 1. with one flush per file system (grouped by `st_dev`), makes durable both the data of
//!    the new temporary files and the renames done by the previous round: `fsync` when there
//!    is a single thing to flush (one file, or one directory), one `syncfs` otherwise;
//! 2. wakes the previous round's writers, each with its own result;
//! 3. `renameat`s each new temporary file over its target, or `linkat`s an unnamed one as
//!    the target (a failing rename or link fails only its writer; temporary files that were
//!    not put in place are removed). These writers are answered
//!    after the next round's flush, which follows at once: a plain `fsync` of the directory
//!    when nothing new arrived meanwhile.
//!
//! When the path written is one the calling resource watches (the engine hands its watches
//! to the call), the link or rename runs through the watch hub's [`Echo::own`], so the
//! resource is not woken by its own write (others watching the path are).
//!
//! A lone write thus costs `fsync(file)`, `rename`, `fsync(dir)`; under load every flush
//! serves two batches (the data of one, the names of the one before), half the flushes of a
//! data-flush-then-directory-fsync per batch. The inode being replaced is held open until its
//! writer has been answered, so freeing its blocks (and, with `-o discard`, trimming them)
//! lands after the flush the writer waits for, not in it.
//!
//! So when `write` returns `Ok`, content, attributes and name are on disk, and at no point can
//! a crash or power cut leave a truncated or empty file under the target name: the name points
//! at the old inode until a rename whose data was flushed first (and a new file's name
//! appears only by a link of flushed data). The file is `fsync`ed rather
//! than `fdatasync`ed because the attributes set on the temporary file must be durable too.
//! A crash can leave a stray `.NAME.homeostat-*` file behind, never a damaged target. The
//! other changes (`symlink`, which is a temporary link renamed over the path, `mkdir`, `remove`,
//! `set_attrs`) are single atomic operations and are not flushed: after a crash each is either
//! done or not, and the next check-apply repairs it.
//!
//! **Threads.** Small calls run their few syscalls inline on the calling tokio task; reads,
//! copies and writes above [`INLINE_IO_MAX`], directory listings, recursive removals and
//! user/group lookups (NSS may go to the network) run on `spawn_blocking`; every flush and
//! rename runs on the commit thread. [`FsHost`] is a cheap `Clone` handle; the commit thread
//! starts with the first write and exits when the last handle is dropped.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::watch::Echo;

/// Files larger than this are read, compared, hashed, written or copied on a blocking thread
/// instead of inline on the async task.
pub const INLINE_IO_MAX: usize = 128 * 1024;

/// Mode of a file created by `write`/`copy` without a requested mode.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// Mode of a directory created by `mkdir` without a requested mode.
const DEFAULT_DIR_MODE: u32 = 0o755;
/// Permission bits, including setuid, setgid and sticky.
const MODE_MASK: u32 = 0o7777;
/// How many bytes of the target's name are kept in a temporary file's name (NAME_MAX is 255).
const TEMP_NAME_KEEP: usize = 200;

// ---------------------------------------------------------------------------------------------
// Plain types mirrored by the WIT bindings.
// ---------------------------------------------------------------------------------------------

/// A path a resource may touch (WIT `path-grant`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PathGrant {
    /// Absolute, normalised path.
    pub path: PathBuf,
    /// The grant covers everything below `path` as well.
    pub recursive: bool,
    /// Writes (create, replace, remove, chmod, chown) are allowed; otherwise read-only.
    pub write: bool,
}

/// Everything a resource may touch (WIT `footprint`). `fs` checks `paths`; `commands` and
/// `units` are checked by the `process` and `systemd` capabilities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footprint {
    pub paths: Vec<PathGrant>,
    /// Exact command lines the resource may run.
    pub commands: Vec<Vec<String>>,
    /// systemd units (and on which manager) the resource may query and control.
    pub units: Vec<crate::plugin::capabilities::systemd::UnitRef>,
    /// Addresses the resource may bind while serving.
    pub sockets: Vec<crate::plugin::capabilities::net::SocketGrant>,
}

/// Type of a directory entry, from `lstat` (WIT `file-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    File,
    Directory,
    Symlink,
    Other,
}

/// `lstat` of a path (WIT `file-stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub file_type: FileType,
    pub size: u64,
    /// Permission bits, including setuid/setgid/sticky (`0o7777` mask).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Ownership and permissions to set; `None` leaves as is (WIT `attrs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// What went wrong, for the guest to branch on (WIT `error-code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Outside the footprint, or a write to a read-only grant.
    NotAllowed,
    /// The path (or a parent) does not exist.
    NotFound,
    /// The operating system refused (EACCES, EPERM, EROFS).
    PermissionDenied,
    /// The path exists with an incompatible type.
    WrongType,
    /// A directory that is not empty, where an empty one was required.
    NotEmpty,
    /// A user or group name that does not exist.
    UnknownId,
    /// Anything else; see the message.
    Other,
}

/// An `fs` call's failure (WIT `error`). The message names the path and, when the operating
/// system refused, its description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FsError {
    pub code: ErrorCode,
    pub message: String,
}

/// Group-commit counters since the [`FsHost`] was created.
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

impl FsError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        FsError {
            code,
            message: message.into(),
        }
    }

    /// `cannot {what} `{path}`: {os error}`.
    fn os(what: &str, path: &Path, err: Errno) -> Self {
        FsError::new(
            code_for(err),
            format!("cannot {what} `{}`: {}", path.display(), os_text(err)),
        )
    }

    fn io(what: &str, path: &Path, err: &io::Error) -> Self {
        let code = err.raw_os_error().map_or(ErrorCode::Other, |raw| {
            code_for(Errno::from_raw_os_error(raw))
        });
        FsError::new(code, format!("cannot {what} `{}`: {err}", path.display()))
    }

    fn internal(what: &str, path: &Path, detail: impl fmt::Display) -> Self {
        FsError::new(
            ErrorCode::Other,
            format!("cannot {what} `{}`: {detail}", path.display()),
        )
    }
}

fn code_for(err: Errno) -> ErrorCode {
    match err {
        Errno::NOENT => ErrorCode::NotFound,
        Errno::ACCESS | Errno::PERM | Errno::ROFS => ErrorCode::PermissionDenied,
        Errno::ISDIR | Errno::NOTDIR | Errno::LOOP => ErrorCode::WrongType,
        Errno::NOTEMPTY => ErrorCode::NotEmpty,
        _ => ErrorCode::Other,
    }
}

/// The operating system's description, e.g. `No such file or directory (os error 2)`.
fn os_text(err: Errno) -> io::Error {
    io::Error::from_raw_os_error(err.raw_os_error())
}

// ---------------------------------------------------------------------------------------------
// Footprint check.
// ---------------------------------------------------------------------------------------------

/// The most `read_at` returns in one call.
pub const READ_AT_MAX: usize = 1 << 20;

/// A path that passed the footprint check, with the grant that allowed it.
#[derive(Debug)]
struct Authorized<'a> {
    /// The normalised path.
    path: PathBuf,
    /// The path of the deepest grant allowing the access; symlinks below it are never
    /// followed.
    root: &'a Path,
}

impl Footprint {
    /// Checks that `path` may be read (or written, with `write`) and returns it normalised.
    ///
    /// The path must be absolute and free of `.` and `..` components; repeated and trailing
    /// slashes are dropped. It is allowed when it equals a grant's path or lies below a
    /// recursive grant; a write needs such a grant with `write` set.
    pub fn check(&self, path: &str, write: bool) -> Result<PathBuf, FsError> {
        self.authorize(path, write).map(|a| a.path)
    }

    fn authorize(&self, path: &str, write: bool) -> Result<Authorized<'_>, FsError> {
        let norm = normalise(path)?;
        let mut best: Option<&PathGrant> = None;
        for grant in &self.paths {
            if write && !grant.write {
                continue;
            }
            // Of two grants covering the path, the longer path is the deeper one.
            if grant_covers(grant, &norm)
                && best.is_none_or(|b| grant.path.as_os_str().len() > b.path.as_os_str().len())
            {
                best = Some(grant);
            }
        }
        match best {
            Some(grant) => Ok(Authorized {
                root: &grant.path,
                path: norm,
            }),
            None => Err(self.denied(&norm, write)),
        }
    }

    /// Whether some write grant covers `path`: the resource may replace that entry.
    fn write_covers(&self, path: &Path) -> bool {
        self.paths.iter().any(|g| g.write && grant_covers(g, path))
    }

    /// Whether some write grant with `recursive` covers `path` (needed to empty a directory).
    fn covers_tree(&self, path: &Path) -> bool {
        self.paths
            .iter()
            .any(|g| g.write && g.recursive && grant_covers(g, path))
    }

    fn denied(&self, path: &Path, write: bool) -> FsError {
        let read_only = write && self.paths.iter().any(|g| grant_covers(g, path));
        let what = if read_only {
            "is read-only in this resource's footprint"
        } else {
            "is outside this resource's footprint"
        };
        FsError::new(
            ErrorCode::NotAllowed,
            format!("`{}` {what} ({})", path.display(), self.describe()),
        )
    }

    /// A short list of the grants, for error messages.
    fn describe(&self) -> String {
        const SHOWN: usize = 4;
        fn list(grants: &[&PathGrant]) -> String {
            let mut out: Vec<String> = grants
                .iter()
                .take(SHOWN)
                .map(|g| {
                    if g.recursive {
                        format!("`{}` and below", g.path.display())
                    } else {
                        format!("`{}`", g.path.display())
                    }
                })
                .collect();
            if grants.len() > SHOWN {
                out.push(format!("{} more", grants.len() - SHOWN));
            }
            out.join(", ")
        }
        let writes: Vec<&PathGrant> = self.paths.iter().filter(|g| g.write).collect();
        let reads: Vec<&PathGrant> = self.paths.iter().filter(|g| !g.write).collect();
        match (reads.is_empty(), writes.is_empty()) {
            (true, true) => "it declared no paths".to_owned(),
            (true, false) => format!("it may write {}", list(&writes)),
            (false, true) => format!("it may read {}", list(&reads)),
            (false, false) => format!("it may read {} / write {}", list(&reads), list(&writes)),
        }
    }
}

fn grant_covers(grant: &PathGrant, path: &Path) -> bool {
    path == grant.path || (grant.recursive && within(path, &grant.path))
}

/// Whether the normalised path `path` is `base` or below it. Compares bytes: `Path::starts_with`
/// goes component by component, and this runs several times per `fs` call.
fn within(path: &Path, base: &Path) -> bool {
    let (path, base) = (path.as_os_str().as_bytes(), base.as_os_str().as_bytes());
    path.starts_with(base) && (path.len() == base.len() || base == b"/" || path[base.len()] == b'/')
}

fn normalise(path: &str) -> Result<PathBuf, FsError> {
    // Already normal (the usual case): no copy component by component.
    if path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .skip(1)
            .all(|part| !part.is_empty() && part != "." && part != "..")
    {
        return Ok(PathBuf::from(path));
    }
    if path.contains('\0') {
        return Err(FsError::new(
            ErrorCode::NotAllowed,
            format!("`{}` contains a NUL byte", path.escape_debug()),
        ));
    }
    if !path.starts_with('/') {
        return Err(FsError::new(
            ErrorCode::NotAllowed,
            format!("`{path}` is not an absolute path; fs calls take absolute paths"),
        ));
    }
    let mut out = PathBuf::from("/");
    for part in path.split('/') {
        match part {
            "" => {}
            "." | ".." => {
                return Err(FsError::new(
                    ErrorCode::NotAllowed,
                    format!("`{path}` has a `{part}` component; fs calls take normalised paths"),
                ));
            }
            name => out.push(name),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Reaching a path: parent directory fd + final name, without symlinks inside the grant.
// ---------------------------------------------------------------------------------------------

/// Where an authorised path is: a directory and a name to use with the `*at` calls. From
/// [`locate`], the opened parent directory and the last component; from [`locate_lookup`],
/// possibly no directory ([`Parent::Cwd`]) and the whole path.
struct Located<D = OwnedFd> {
    parent: D,
    name: CString,
}

/// The directory a name from [`locate_lookup`] is resolved in.
enum Parent {
    /// The path's parent directory, opened by [`locate`].
    Opened(OwnedFd),
    /// No directory was opened: `name` is the whole path, resolved by the kernel in the one
    /// call that uses it (see [`locate_lookup`]).
    Cwd,
}

impl AsFd for Parent {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Parent::Opened(fd) => fd.as_fd(),
            Parent::Cwd => CWD,
        }
    }
}

/// Why a path's parent could not be opened.
enum WalkError {
    /// A directory on the way does not exist or is not a directory (`ENOENT`, `ENOTDIR`): the
    /// path itself does not exist.
    Absent { dir: PathBuf, err: Errno },
    /// Anything else, already phrased.
    Fail(FsError),
}

impl WalkError {
    /// For calls on which an absent path is an error.
    fn into_error(self, path: &Path) -> FsError {
        match self {
            WalkError::Absent { dir, err } => FsError::new(
                code_for(err),
                format!(
                    "cannot reach `{}`: directory `{}`: {}",
                    path.display(),
                    dir.display(),
                    os_text(err)
                ),
            ),
            WalkError::Fail(e) => e,
        }
    }
}

fn cstring(path: &Path, bytes: &[u8]) -> Result<CString, FsError> {
    CString::new(bytes).map_err(|_| {
        FsError::new(
            ErrorCode::NotAllowed,
            format!("`{}` contains a NUL byte", path.display()),
        )
    })
}

/// Opens the parent directory of `auth.path`. A directory on the way is followed if it is a
/// symlink only when this resource could not have made it one: when no write grant of `fp`
/// covers it and it is not below the grant that allowed the access. Everything else is opened
/// with `O_NOFOLLOW`, and a symlink there is refused. (So a recursive write grant whose own
/// path is a symlink is refused too: the resource could have replaced it.) The parent is
/// opened with `last` (`O_PATH` for lookups, `O_RDONLY` when it must be `fsync`ed).
fn locate(fp: &Footprint, auth: &Authorized, last: OFlags) -> Result<Located, WalkError> {
    let path = &auth.path;
    let (Some(parent_path), Some(name)) = (path.parent(), path.file_name()) else {
        // The root directory itself: operate on "." inside "/".
        let parent = open_dir(CWD, Path::new("/"), last, true)
            .map_err(|err| WalkError::Fail(FsError::os("open directory", Path::new("/"), err)))?;
        return Ok(Located {
            parent,
            name: c".".to_owned(),
        });
    };
    let name = cstring(path, name.as_bytes()).map_err(WalkError::Fail)?;

    // The usual case, decided without listing the ancestors: one `openat` resolves the
    // parent.
    if every_parent_followed(fp, auth, parent_path) {
        let parent = open_dir(CWD, parent_path, last, true).map_err(|err| match err {
            Errno::NOENT | Errno::NOTDIR => WalkError::Absent {
                dir: parent_path.to_path_buf(),
                err,
            },
            err => WalkError::Fail(FsError::os("open directory", parent_path, err)),
        })?;
        return Ok(Located { parent, name });
    }

    // The directories from the top down to the parent, and whether each may be followed.
    let mut dirs: Vec<&Path> = parent_path.ancestors().collect();
    dirs.pop(); // "/"
    dirs.reverse();
    let follow: Vec<bool> = dirs
        .iter()
        .map(|d| !(fp.write_covers(d) || (within(d, auth.root) && *d != auth.root)))
        .collect();
    // The leading run that may be followed is resolved by the kernel in one `openat`.
    let trusted = follow.iter().position(|f| !f).unwrap_or(dirs.len());
    let start = if trusted == 0 {
        Path::new("/")
    } else {
        dirs[trusted - 1]
    };
    let flags = if trusted == dirs.len() {
        last
    } else {
        OFlags::PATH
    };
    let mut dir = open_dir(CWD, start, flags, true).map_err(|err| match err {
        Errno::NOENT | Errno::NOTDIR => WalkError::Absent {
            dir: start.to_path_buf(),
            err,
        },
        err => WalkError::Fail(FsError::os("open directory", start, err)),
    })?;
    for i in trusted..dirs.len() {
        let at = dirs[i];
        let component = Path::new(at.file_name().unwrap_or_default());
        let flags = if i + 1 == dirs.len() {
            last
        } else {
            OFlags::PATH
        };
        dir = match open_dir(&dir, component, flags, follow[i]) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                return Err(WalkError::Absent {
                    dir: at.to_path_buf(),
                    err: Errno::NOENT,
                });
            }
            Err(err @ (Errno::NOTDIR | Errno::LOOP)) => {
                let is_link = !follow[i]
                    && rustix::fs::statat(&dir, component, AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| kind_of(&st) == FileType::Symlink);
                if is_link {
                    return Err(WalkError::Fail(FsError::new(
                        ErrorCode::NotAllowed,
                        format!(
                            "`{}` goes through the symlink `{}`, which is inside this resource's \
                             footprint; symlinks there are not followed (declare the link's \
                             target instead)",
                            path.display(),
                            at.display(),
                        ),
                    )));
                }
                return Err(WalkError::Absent {
                    dir: at.to_path_buf(),
                    err,
                });
            }
            Err(err) => return Err(WalkError::Fail(FsError::os("open directory", at, err))),
        };
    }
    Ok(Located { parent: dir, name })
}

/// Whether every directory from `/` down to `parent_path` may be followed: no write grant of
/// `fp` is at or above it, and the grant allowing the access is not above it either.
fn every_parent_followed(fp: &Footprint, auth: &Authorized, parent_path: &Path) -> bool {
    let root_above = auth.root != parent_path && within(parent_path, auth.root);
    let written_above = fp
        .paths
        .iter()
        .any(|g| g.write && within(parent_path, &g.path));
    !root_above && !written_above
}

/// [`locate`] for calls that only look the path itself up (`lstat`, an `open` for reading).
/// When every directory on the way may be followed, nothing is opened: the name is the
/// whole path, which the kernel resolves in the call itself exactly as `locate` would have
/// resolved the parent (following the directories, not the last component). That saves an
/// `openat` and a `close` per call: a `file` check (`stat`, `content-equals`) went from 11
/// syscalls to 7, an idempotent pass at 10 000 files from ~178 to ~165 ms. A directory
/// on the way that is missing or not a directory then shows as `ENOENT`/`ENOTDIR` from
/// that call rather than as [`WalkError::Absent`].
fn locate_lookup(fp: &Footprint, auth: &Authorized) -> Result<Located<Parent>, WalkError> {
    match auth.path.parent() {
        Some(parent_path) if every_parent_followed(fp, auth, parent_path) => Ok(Located {
            parent: Parent::Cwd,
            name: cstring(&auth.path, auth.path.as_os_str().as_bytes()).map_err(WalkError::Fail)?,
        }),
        _ => locate(fp, auth, OFlags::PATH).map(|loc| Located {
            parent: Parent::Opened(loc.parent),
            name: loc.name,
        }),
    }
}

fn open_dir<Fd: AsFd>(at: Fd, path: &Path, flags: OFlags, follow: bool) -> Result<OwnedFd, Errno> {
    let mut flags = flags | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    rustix::fs::openat(at, path, flags, Mode::empty())
}

// ---------------------------------------------------------------------------------------------
// Small helpers over `stat`.
// ---------------------------------------------------------------------------------------------

fn kind_of(st: &rustix::fs::Stat) -> FileType {
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::RegularFile => FileType::File,
        rustix::fs::FileType::Directory => FileType::Directory,
        rustix::fs::FileType::Symlink => FileType::Symlink,
        _ => FileType::Other,
    }
}

#[allow(clippy::unnecessary_cast)] // field widths differ between architectures
fn file_stat(st: &rustix::fs::Stat) -> FileStat {
    FileStat {
        file_type: kind_of(st),
        size: u64::try_from(st.st_size).unwrap_or(0),
        mode: (st.st_mode as u32) & MODE_MASK,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
    }
}

/// `(st_dev, st_ino)`: identifies a directory (and its file system by the first half).
#[allow(clippy::unnecessary_cast)] // field widths differ between architectures
fn dev_ino(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

fn lstat_at<D: AsFd>(loc: &Located<D>) -> Result<Option<rustix::fs::Stat>, Errno> {
    match rustix::fs::statat(&loc.parent, &loc.name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        // `ENOTDIR`: a directory on the way of a whole-path name is not one.
        Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
        Err(err) => Err(err),
    }
}

fn describe_kind(kind: FileType) -> &'static str {
    match kind {
        FileType::File => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Other => "a special file",
    }
}

fn wrong_type(path: &Path, kind: FileType, wanted: &str) -> FsError {
    FsError::new(
        ErrorCode::WrongType,
        format!(
            "`{}` is {}, not {wanted}",
            path.display(),
            describe_kind(kind)
        ),
    )
}

/// What [`open_regular`] found.
enum Regular {
    /// An open regular file and its size.
    File(File, u64),
    Absent,
    /// Something else is there.
    Not(FileType),
}

/// Opens the regular file at `loc` for reading, without following a symlink and without
/// opening devices or FIFOs.
fn open_regular<D: AsFd>(loc: &Located<D>, path: &Path) -> Result<Regular, FsError> {
    let Some(st) = lstat_at(loc).map_err(|e| FsError::os("stat", path, e))? else {
        return Ok(Regular::Absent);
    };
    let kind = kind_of(&st);
    if kind != FileType::File {
        return Ok(Regular::Not(kind));
    }
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(&loc.parent, &loc.name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(Regular::Absent),
        Err(Errno::LOOP) => return Ok(Regular::Not(FileType::Symlink)),
        Err(err) => return Err(FsError::os("open", path, err)),
    };
    // It may have been replaced between the `lstat` and the `open`.
    let st = rustix::fs::fstat(&fd).map_err(|e| FsError::os("stat", path, e))?;
    match kind_of(&st) {
        FileType::File => Ok(Regular::File(File::from(fd), file_stat(&st).size)),
        kind => Ok(Regular::Not(kind)),
    }
}

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

fn to_mode(mode: u32) -> Mode {
    Mode::from_bits_retain((mode & MODE_MASK) as rustix::fs::RawMode)
}

// ---------------------------------------------------------------------------------------------
// Temporary files.
// ---------------------------------------------------------------------------------------------

/// A temporary file next to its target. Removed on drop unless it was put in place
/// ([`TempFile::placed`]), so every early return, cancelled task or failed commit cleans up
/// after itself.
struct TempFile {
    /// The parent directory (`O_RDONLY`, so the commit thread can `fsync` it).
    dir: OwnedFd,
    name: TempName,
    /// The open file; the commit thread closes it after the flush.
    file: Option<File>,
}

/// Where a [`TempFile`] is in its directory.
#[derive(Debug, PartialEq, Eq)]
enum TempName {
    /// Under a name of its own (`.NAME.homeostat-…`), to be renamed over the target.
    Named(CString),
    /// Nowhere yet: an `O_TMPFILE` inode, to be linked under the target's name, which did
    /// not exist when the write began. Nothing to remove if it never is: closing frees it.
    Unnamed,
    /// Put in place under the target's name.
    Placed,
}

impl TempFile {
    /// Creates the temporary file in `dir`. When the target does not exist (`target_absent`),
    /// it is an unnamed `O_TMPFILE` inode where the file system supports that: creating a
    /// file then costs one directory entry (the final `linkat`) instead of three (the
    /// temporary name, and the rename's removal and insertion), four inotify events instead
    /// of six for watchers of the directory, and a crash leaves nothing behind.
    fn create(
        dir: OwnedFd,
        target: &CStr,
        target_absent: bool,
        path: &Path,
    ) -> Result<TempFile, FsError> {
        let flags = OFlags::WRONLY | OFlags::NOCTTY | OFlags::CLOEXEC;
        if target_absent && unnamed_files_linkable() {
            match rustix::fs::openat(
                &dir,
                c".",
                flags | OFlags::TMPFILE,
                Mode::from_bits_retain(0o600),
            ) {
                Ok(fd) => {
                    return Ok(TempFile {
                        dir,
                        name: TempName::Unnamed,
                        file: Some(File::from(fd)),
                    });
                }
                // The file system has no `O_TMPFILE` (EOPNOTSUPP; EISDIR or EINVAL from
                // kernels or file systems that do not know the flag): use a name.
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {}
                Err(err) => return Err(FsError::os("create a temporary file next to", path, err)),
            }
        }
        let flags = flags | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let (name, fd) =
            under_temp_name(target, path, "create a temporary file next to", |name| {
                rustix::fs::openat(&dir, name, flags, Mode::from_bits_retain(0o600))
            })?;
        Ok(TempFile {
            dir,
            name: TempName::Named(name),
            file: Some(File::from(fd)),
        })
    }

    fn file(&mut self) -> Result<&mut File, FsError> {
        self.file
            .as_mut()
            .ok_or_else(|| FsError::new(ErrorCode::Other, "temporary file already closed"))
    }

    /// Sets owner then mode (in that order: `chown` clears setuid/setgid).
    fn set_attrs(
        &mut self,
        path: &Path,
        mode: u32,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<(), FsError> {
        let file = self.file()?;
        if uid.is_some() || gid.is_some() {
            // Only what differs from the creator's ids, so an unprivileged host can keep them.
            let st = rustix::fs::fstat(&*file)
                .map_err(|e| FsError::os("stat temporary file for", path, e))?;
            let current = file_stat(&st);
            let uid = uid.filter(|&u| u != current.uid);
            let gid = gid.filter(|&g| g != current.gid);
            if uid.is_some() || gid.is_some() {
                rustix::fs::fchown(
                    &*file,
                    uid.map(rustix::fs::Uid::from_raw),
                    gid.map(rustix::fs::Gid::from_raw),
                )
                .map_err(|e| FsError::os("set the owner of", path, e))?;
            }
        }
        rustix::fs::fchmod(&*file, to_mode(mode))
            .map_err(|e| FsError::os("set the mode of", path, e))
    }

    /// Links an [`TempName::Unnamed`] file under `name` in its directory (`EEXIST` if
    /// something has that name). The file must still be open.
    fn link_as(&self, name: &CStr) -> Result<(), Errno> {
        let file = self.file.as_ref().ok_or(Errno::BADF)?;
        if EMPTY_PATH_LINKS.load(Ordering::Relaxed) {
            match rustix::fs::linkat(file, c"", &self.dir, name, AtFlags::EMPTY_PATH) {
                Err(Errno::NOENT) => EMPTY_PATH_LINKS.store(false, Ordering::Relaxed),
                other => return other,
            }
        }
        let proc_link = format!("/proc/self/fd/{}", file.as_raw_fd());
        rustix::fs::linkat(
            CWD,
            proc_link.as_str(),
            &self.dir,
            name,
            AtFlags::SYMLINK_FOLLOW,
        )
    }

    /// Gives an [`TempName::Unnamed`] file a temporary name, for when its target appeared
    /// after all and must be replaced by a rename.
    fn name_it(&mut self, target: &CStr, path: &Path) -> Result<(), FsError> {
        let what = "create a temporary file next to";
        let (name, ()) = under_temp_name(target, path, what, |name| self.link_as(name))?;
        self.name = TempName::Named(name);
        Ok(())
    }

    fn placed(mut self) {
        // Nothing left to remove; the name now belongs to the target.
        self.name = TempName::Placed;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let TempName::Named(name) = &self.name else {
            return;
        };
        self.file = None;
        if let Err(err) = rustix::fs::unlinkat(&self.dir, name, AtFlags::empty())
            && err != Errno::NOENT
        {
            tracing::warn!(
                name = %name.to_string_lossy(),
                error = %os_text(err),
                "could not remove a temporary file"
            );
        }
    }
}

/// Whether `linkat(fd, "", …, AT_EMPTY_PATH)` may work. It links the descriptor itself but
/// needs CAP_DAC_READ_SEARCH; without it the kernel answers ENOENT, this turns false, and
/// the descriptor's `/proc/self/fd` link does the same job from then on.
static EMPTY_PATH_LINKS: AtomicBool = AtomicBool::new(true);

/// Whether `O_TMPFILE` files are used at all: only when `/proc/self/fd` is there, the way
/// [`TempFile::link_as`] names one when `AT_EMPTY_PATH` is refused (a file that could not be
/// named would lose its write). Checked once; without it, every temporary file is created
/// under a name.
fn unnamed_files_linkable() -> bool {
    static LINKABLE: OnceLock<bool> = OnceLock::new();
    *LINKABLE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// `.NAME.homeostat-XXXXXXXXXXXX`, unique within the process and very likely across.
/// Suffix of a temporary file's name before its 12 hex digits.
const TEMP_SUFFIX: &[u8] = b".homeostat-";

/// Whether `name` (one path component) has the shape of `temp_name`'s names. The file
/// watch hub ignores such entries: they are this host's own staging files, and the rename
/// that puts one in place is reported under the target's name.
pub fn is_temp_name(name: &[u8]) -> bool {
    let Some(stem) = name.len().checked_sub(12).map(|at| &name[..at]) else {
        return false;
    };
    name.first() == Some(&b'.')
        && stem.ends_with(TEMP_SUFFIX)
        && stem.len() > TEMP_SUFFIX.len() + 1
        && name[name.len() - 12..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// Runs `make` (an exclusive create, a link or a symlink) under fresh [`temp_name`]s until
/// one is free (up to 16 tries on `EEXIST`); returns the name it succeeded with and its
/// result. `what` names the failure: "create a temporary file next to" `path`.
fn under_temp_name<T>(
    target: &CStr,
    path: &Path,
    what: &str,
    mut make: impl FnMut(&CStr) -> Result<T, Errno>,
) -> Result<(CString, T), FsError> {
    let mut last = Errno::EXIST;
    for _ in 0..16 {
        let name = temp_name(target, path)?;
        match make(&name) {
            Ok(made) => return Ok((name, made)),
            Err(Errno::EXIST) => last = Errno::EXIST,
            Err(err) => {
                last = err;
                break;
            }
        }
    }
    Err(FsError::os(what, path, last))
}

fn temp_name(target: &CStr, path: &Path) -> Result<CString, FsError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // Looked up once: `getpid` is a syscall, and a cold run of 10 000 files made 10 000.
    static PID: OnceLock<u64> = OnceLock::new();
    let pid = *PID.get_or_init(|| u64::from(std::process::id()));
    let mut x = nanos ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ pid.rotate_left(40);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let bytes = target.to_bytes();
    let keep = &bytes[..bytes.len().min(TEMP_NAME_KEEP)];
    let mut name = Vec::with_capacity(keep.len() + 32);
    name.push(b'.');
    name.extend_from_slice(keep);
    name.extend_from_slice(TEMP_SUFFIX);
    name.extend_from_slice(format!("{:012x}", x & 0xffff_ffff_ffff).as_bytes());
    cstring(path, &name)
}

// ---------------------------------------------------------------------------------------------
// The commit thread.
// ---------------------------------------------------------------------------------------------

/// One file waiting to be made durable and renamed into place.
struct Pending {
    temp: TempFile,
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
        match rustix::fs::fstat(&pending.temp.dir) {
            Ok(st) => fresh_entries.push(Entry {
                pending,
                dir: dev_ino(&st),
                replaced: None,
            }),
            Err(err) => {
                let e = FsError::os("stat the directory of", &pending.path, err);
                Entry {
                    pending,
                    dir: (0, 0),
                    replaced: None,
                }
                .finish(Err(e));
            }
        }
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

// ---------------------------------------------------------------------------------------------
// The host.
// ---------------------------------------------------------------------------------------------

/// The `fs` capability's implementation, shared by every resource instance. Cheap to clone.
#[derive(Clone, Default)]
pub struct FsHost {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Queue to the commit thread, started by the first write.
    committer: OnceLock<Result<mpsc::Sender<Pending>, String>>,
    counters: Arc<Counters>,
}

impl fmt::Debug for FsHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsHost")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
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

impl FsHost {
    /// A new host; the commit thread starts with the first `write` or `copy`.
    pub fn new() -> FsHost {
        FsHost::default()
    }

    /// Group-commit counters, e.g. for a benchmark's mean batch size.
    pub fn stats(&self) -> CommitStats {
        CommitStats {
            batches: self.inner.counters.batches.load(Ordering::Relaxed),
            files: self.inner.counters.files.load(Ordering::Relaxed),
        }
    }

    /// `lstat`; `None` when the path (or a parent) does not exist.
    pub async fn stat(&self, fp: &Footprint, path: &str) -> Result<Option<FileStat>, FsError> {
        let auth = fp.authorize(path, false)?;
        let loc = match locate_lookup(fp, &auth) {
            Ok(loc) => loc,
            Err(WalkError::Absent { .. }) => return Ok(None),
            Err(WalkError::Fail(e)) => return Err(e),
        };
        match rustix::fs::statat(&loc.parent, &loc.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(file_stat(&st))),
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
            Err(err) => Err(FsError::os("stat", &auth.path, err)),
        }
    }

    /// Opens a regular file for reading; errors when it is absent or something else.
    fn open_for_read(fp: &Footprint, auth: &Authorized) -> Result<(File, u64), FsError> {
        let loc = locate(fp, auth, OFlags::PATH).map_err(|e| e.into_error(&auth.path))?;
        match open_regular(&loc, &auth.path)? {
            Regular::File(file, size) => Ok((file, size)),
            Regular::Absent => Err(FsError::os("read", &auth.path, Errno::NOENT)),
            Regular::Not(kind) => Err(wrong_type(&auth.path, kind, "a regular file")),
        }
    }

    /// The whole content of a regular file.
    pub async fn read(&self, fp: &Footprint, path: &str) -> Result<Vec<u8>, FsError> {
        let auth = fp.authorize(path, false)?;
        let (mut file, size) = Self::open_for_read(fp, &auth)?;
        let read = move |file: &mut File, path: &Path| {
            let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1));
            file.read_to_end(&mut buf)
                .map_err(|e| FsError::io("read", path, &e))?;
            Ok(buf)
        };
        if size <= INLINE_IO_MAX as u64 {
            read(&mut file, &auth.path)
        } else {
            let path = auth.path;
            blocking("read", &path.clone(), move || read(&mut file, &path)).await
        }
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
        let auth = fp.authorize(path, false)?;
        let (file, size) = Self::open_for_read(fp, &auth)?;
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
        if want <= INLINE_IO_MAX {
            read(&file, &auth.path)
        } else {
            let path = auth.path;
            blocking("read", &path.clone(), move || read(&file, &path)).await
        }
    }

    /// Lower-case hex SHA-256 of a regular file's content.
    pub async fn digest(&self, fp: &Footprint, path: &str) -> Result<String, FsError> {
        let auth = fp.authorize(path, false)?;
        let (mut file, size) = Self::open_for_read(fp, &auth)?;
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
        if size <= INLINE_IO_MAX as u64 {
            hash(&mut file, &auth.path)
        } else {
            let path = auth.path;
            blocking("hash", &path.clone(), move || hash(&mut file, &path)).await
        }
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
        let auth = fp.authorize(path, false)?;
        let loc = match locate_lookup(fp, &auth) {
            Ok(loc) => loc,
            Err(WalkError::Absent { .. }) => return Ok(false),
            Err(WalkError::Fail(e)) => return Err(e),
        };
        let Regular::File(mut file, size) = open_regular(&loc, &auth.path)? else {
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
        let auth = fp.authorize(path, true)?;
        let (mut temp, target, (mode, uid, gid)) = Self::stage(fp, &auth, attrs)?;
        if data.len() <= INLINE_IO_MAX {
            write_all(&mut temp, &data, &auth.path)?;
        } else {
            let path = auth.path.clone();
            temp = blocking("write", &auth.path, move || {
                write_all(&mut temp, &data, &path)?;
                Ok(temp)
            })
            .await?;
        }
        temp.set_attrs(&auth.path, mode, uid, gid)?;
        self.commit(temp, target, auth.path, own).await
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
        let src = fp.authorize(source, false)?;
        let auth = fp.authorize(path, true)?;
        let (mut from, size) = Self::open_for_read(fp, &src)?;
        let (mut temp, target, (mode, uid, gid)) = Self::stage(fp, &auth, attrs)?;
        let copy = move |from: &mut File, temp: &mut TempFile, src: &Path| -> Result<(), FsError> {
            let to = temp.file()?;
            // `io::copy` between files uses `copy_file_range` on Linux.
            io::copy(from, to).map_err(|e| FsError::io("copy from", src, &e))?;
            Ok(())
        };
        if size <= INLINE_IO_MAX as u64 {
            copy(&mut from, &mut temp, &src.path)?;
        } else {
            let src_path = src.path.clone();
            temp = blocking("copy from", &src.path, move || {
                copy(&mut from, &mut temp, &src_path)?;
                Ok(temp)
            })
            .await?;
        }
        temp.set_attrs(&auth.path, mode, uid, gid)?;
        self.commit(temp, target, auth.path, own).await
    }

    /// Opens the parent, checks what is there now and creates the temporary file. Returns it,
    /// the target name and the attributes the new file must get.
    #[allow(clippy::type_complexity)]
    fn stage(
        fp: &Footprint,
        auth: &Authorized,
        attrs: Attrs,
    ) -> Result<(TempFile, CString, (u32, Option<u32>, Option<u32>)), FsError> {
        check_id(&auth.path, "owner", attrs.uid)?;
        check_id(&auth.path, "group", attrs.gid)?;
        let loc = locate(fp, auth, OFlags::RDONLY).map_err(|e| e.into_error(&auth.path))?;
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
        let mode = attrs
            .mode
            .or(inherited.map(|s| s.mode))
            .unwrap_or(DEFAULT_FILE_MODE);
        let uid = attrs.uid.or(inherited.map(|s| s.uid));
        let gid = attrs.gid.or(inherited.map(|s| s.gid));
        let Located { parent, name } = loc;
        let temp = TempFile::create(parent, &name, existing.is_none(), &auth.path)?;
        Ok((temp, name, (mode, uid, gid)))
    }

    /// Hands a written temporary file to the commit thread and waits for its result.
    async fn commit(
        &self,
        temp: TempFile,
        target: CString,
        path: PathBuf,
        own: &[Arc<Echo>],
    ) -> Result<(), FsError> {
        let echo = own.iter().find(|e| e.path() == path).cloned();
        let sender = self
            .inner
            .committer
            .get_or_init(|| start_committer(Arc::clone(&self.inner.counters)))
            .as_ref()
            .map_err(|e| FsError::internal("write", &path, e))?;
        let (reply, result) = oneshot::channel();
        let stopped =
            |path: &Path| FsError::internal("write", path, "the fs commit thread stopped");
        sender
            .send(Pending {
                temp,
                target,
                path: path.clone(),
                echo,
                reply,
            })
            .map_err(|_| stopped(&path))?;
        result.await.map_err(|_| stopped(&path))?
    }

    /// Atomically makes `path` a symlink to `target` (not checked): a temporary link in the
    /// same directory renamed over `path`.
    pub async fn symlink(&self, fp: &Footprint, target: &str, path: &str) -> Result<(), FsError> {
        let auth = fp.authorize(path, true)?;
        let loc = locate(fp, &auth, OFlags::PATH).map_err(|e| e.into_error(&auth.path))?;
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
        let auth = fp.authorize(path, false)?;
        let loc = locate(fp, &auth, OFlags::PATH).map_err(|e| e.into_error(&auth.path))?;
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
        let auth = fp.authorize(path, true)?;
        check_id(&auth.path, "owner", attrs.uid)?;
        check_id(&auth.path, "group", attrs.gid)?;
        let loc = locate(fp, &auth, OFlags::PATH).map_err(|e| e.into_error(&auth.path))?;
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
            false,
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
        let auth = fp.authorize(path, true)?;
        if auth.path == Path::new("/") {
            return Err(FsError::new(
                ErrorCode::NotAllowed,
                "refusing to remove `/`",
            ));
        }
        let loc = match locate(fp, &auth, OFlags::PATH) {
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
        if !fp.covers_tree(&auth.path) {
            return Err(FsError::new(
                ErrorCode::NotAllowed,
                format!(
                    "cannot remove `{}` recursively: the directory is not empty and this \
                     resource's footprint has no recursive write grant for it ({})",
                    auth.path.display(),
                    fp.describe()
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
        let auth = fp.authorize(path, true)?;
        check_id(&auth.path, "owner", attrs.uid)?;
        check_id(&auth.path, "group", attrs.gid)?;
        let loc = locate(fp, &auth, OFlags::PATH).map_err(|e| e.into_error(&auth.path))?;
        let Some(st) = lstat_at(&loc).map_err(|e| FsError::os("stat", &auth.path, e))? else {
            return Err(FsError::os("set attributes of", &auth.path, Errno::NOENT));
        };
        set_attrs_at(&loc, &auth.path, &file_stat(&st), attrs)
    }

    /// Names of the entries of a directory, sorted, without `.` and `..`. A name that is not
    /// UTF-8 is an error rather than a lossy name that would not exist.
    pub async fn read_dir(&self, fp: &Footprint, path: &str) -> Result<Vec<String>, FsError> {
        let auth = fp.authorize(path, false)?;
        let loc = locate(fp, &auth, OFlags::PATH).map_err(|e| e.into_error(&auth.path))?;
        let name = Path::new(OsStr::from_bytes(loc.name.to_bytes()));
        let fd = match open_dir(&loc.parent, name, OFlags::RDONLY, false) {
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
        resolve_id(name, IdKind::User).await
    }

    /// Resolves a group name to its gid through the host's group database (`getgrnam_r`); a
    /// decimal number is taken as a gid as is.
    pub async fn group_id(&self, name: &str) -> Result<u32, FsError> {
        resolve_id(name, IdKind::Group).await
    }
}

fn write_all(temp: &mut TempFile, data: &[u8], path: &Path) -> Result<(), FsError> {
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
        false,
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

// ---------------------------------------------------------------------------------------------
// User and group names.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum IdKind {
    User,
    Group,
}

async fn resolve_id(name: &str, kind: IdKind) -> Result<u32, FsError> {
    let what = match kind {
        IdKind::User => "user",
        IdKind::Group => "group",
    };
    let unknown = |name: &str| {
        FsError::new(
            ErrorCode::UnknownId,
            format!("no {what} named `{name}` in this host's {what} database"),
        )
    };
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return match name.parse::<u32>() {
            Ok(id) if id != u32::MAX => Ok(id),
            _ => Err(FsError::new(
                ErrorCode::UnknownId,
                format!("`{name}` is not a valid {what} id"),
            )),
        };
    }
    let Ok(cname) = CString::new(name) else {
        return Err(unknown(name));
    };
    let looked_up = tokio::task::spawn_blocking(move || lookup_id(&cname, kind))
        .await
        .map_err(|e| {
            FsError::new(
                ErrorCode::Other,
                format!("cannot look up {what} `{name}`: blocking task failed: {e}"),
            )
        })?;
    match looked_up {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(unknown(name)),
        Err(err) => Err(FsError::new(
            ErrorCode::Other,
            format!("cannot look up {what} `{name}`: {err}"),
        )),
    }
}

/// `getpwnam_r` / `getgrnam_r`, growing the buffer on `ERANGE`.
///
/// Hand-written over libc on purpose: rustix has no NSS lookups, and `nix`/`uzers` would
/// add a crate for these two calls. Going through libc (not parsing /etc/passwd) keeps
/// LDAP/sssd users working.
fn lookup_id(name: &CStr, kind: IdKind) -> io::Result<Option<u32>> {
    let mut buf = vec![0u8; 1024];
    loop {
        let mut id: u32 = 0;
        let mut found = false;
        // SAFETY: `name` is NUL-terminated, `buf` outlives the call and its length is passed,
        // the out-records are zeroed POD structs, and the result pointer is only compared
        // with null (it points into the record we own).
        let rc = unsafe {
            match kind {
                IdKind::User => {
                    let mut rec: libc::passwd = std::mem::zeroed();
                    let mut res: *mut libc::passwd = std::ptr::null_mut();
                    let rc = libc::getpwnam_r(
                        name.as_ptr(),
                        &mut rec,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        &mut res,
                    );
                    if rc == 0 && !res.is_null() {
                        found = true;
                        id = rec.pw_uid;
                    }
                    rc
                }
                IdKind::Group => {
                    let mut rec: libc::group = std::mem::zeroed();
                    let mut res: *mut libc::group = std::ptr::null_mut();
                    let rc = libc::getgrnam_r(
                        name.as_ptr(),
                        &mut rec,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        &mut res,
                    );
                    if rc == 0 && !res.is_null() {
                        found = true;
                        id = rec.gr_gid;
                    }
                    rc
                }
            }
        };
        match rc {
            0 => return Ok(found.then_some(id)),
            libc::ERANGE if buf.len() < (1 << 24) => buf.resize(buf.len() * 2, 0),
            libc::EINTR => {}
            // "Not found" as some NSS modules report it (getpwnam_r(3)).
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            rc => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink as os_symlink};
    use std::sync::atomic::AtomicBool;

    fn grant(path: &str, recursive: bool, write: bool) -> PathGrant {
        PathGrant {
            path: PathBuf::from(path),
            recursive,
            write,
        }
    }

    /// A footprint granting the whole directory `dir` for reading and writing.
    fn tree(dir: &Path) -> Footprint {
        Footprint {
            paths: vec![PathGrant {
                path: dir.to_path_buf(),
                recursive: true,
                write: true,
            }],
            ..Default::default()
        }
    }

    fn at(dir: &Path, name: &str) -> String {
        dir.join(name)
            .to_str()
            .expect("temp dirs are UTF-8")
            .to_owned()
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().expect("create a temporary directory")
    }

    fn mode_of(path: &str) -> u32 {
        std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777
    }

    /// The names in `dir`, sorted.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        names
    }

    /// Asserts that `dir/name` holds `content` with `mode`.
    fn assert_file(dir: &Path, name: &str, content: &[u8], mode: u32) {
        let path = dir.join(name);
        assert_eq!(std::fs::read(&path).expect("read"), content, "{name}");
        assert_eq!(mode_of(path.to_str().expect("utf-8")), mode, "{name}");
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn within_compares_whole_components() {
        let w = |p: &str, b: &str| within(Path::new(p), Path::new(b));
        assert!(w("/a/b", "/a") && w("/a", "/a") && w("/a", "/") && w("/", "/"));
        assert!(!w("/ab", "/a") && !w("/a", "/a/b") && !w("/b/a", "/a"));
    }

    #[test]
    fn normalise_keeps_normal_paths_and_cleans_the_rest() {
        let n = |p: &str| normalise(p).map(|p| p.to_string_lossy().into_owned());
        assert_eq!(n("/etc/hosts").unwrap(), "/etc/hosts");
        assert_eq!(n("/etc//hosts/").unwrap(), "/etc/hosts");
        assert_eq!(n("/").unwrap(), "/");
        assert_eq!(n("//").unwrap(), "/");
        assert!(n("/etc/../shadow").is_err());
        assert!(n("/etc/./hosts").is_err());
        assert!(n("/etc/..").is_err());
        assert!(n("etc/hosts").is_err());
        assert!(n("/etc/ho\0sts").is_err());
    }

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

    #[test]
    fn footprint_allows_granted_paths() {
        let fp = Footprint {
            paths: vec![
                grant("/etc/motd", false, true),
                grant("/srv/app", true, true),
                grant("/etc/hosts", false, false),
            ],
            ..Default::default()
        };
        assert_eq!(fp.check("/etc/motd", true), Ok(PathBuf::from("/etc/motd")));
        assert_eq!(fp.check("/etc/motd/", true), Ok(PathBuf::from("/etc/motd")));
        assert_eq!(fp.check("/etc/motd", false), Ok(PathBuf::from("/etc/motd")));
        assert_eq!(
            fp.check("/etc/hosts", false),
            Ok(PathBuf::from("/etc/hosts"))
        );
        assert_eq!(fp.check("/srv/app", true), Ok(PathBuf::from("/srv/app")));
        assert_eq!(
            fp.check("/srv//app/a/b/", true),
            Ok(PathBuf::from("/srv/app/a/b"))
        );
        let root = Footprint {
            paths: vec![grant("/", true, false)],
            ..Default::default()
        };
        assert_eq!(root.check("/", false), Ok(PathBuf::from("/")));
        assert_eq!(root.check("/a/b", false), Ok(PathBuf::from("/a/b")));
    }

    #[test]
    fn footprint_refuses_everything_else() {
        let fp = Footprint {
            paths: vec![
                grant("/etc/motd", false, true),
                grant("/srv/app", true, true),
                grant("/etc/hosts", false, false),
            ],
            ..Default::default()
        };
        let refused = |path: &str, write: bool| {
            let err = fp.check(path, write).expect_err(path);
            assert_eq!(err.code, ErrorCode::NotAllowed, "{path}: {err}");
            err.message
        };
        let msg = refused("/etc/shadow", false);
        assert!(
            msg.starts_with("`/etc/shadow` is outside this resource's footprint (it may read"),
            "{msg}"
        );
        assert!(
            msg.contains("`/etc/hosts`")
                && msg.contains("`/etc/motd`")
                && msg.contains("`/srv/app` and below"),
            "{msg}"
        );
        assert!(refused("/srv/app/../../etc/shadow", false).contains("`..`"));
        assert!(refused("/srv/app/./x", true).contains("`.`"));
        assert!(refused("etc/motd", false).contains("not an absolute path"));
        refused("", false);
        refused("/srv/app/\0", false);
        // A write to a read-only grant.
        assert!(refused("/etc/hosts", true).contains("is read-only"));
        // Prefixes are compared by component, and exact grants do not cover children.
        refused("/srv/application", false);
        refused("/etc/motd/x", false);
        refused("/etc", false);
        refused("/", false);
        let none = Footprint::default();
        let err = none.check("/x", false).expect_err("empty footprint");
        assert!(err.message.contains("declared no paths"), "{err}");
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
    async fn failed_or_dropped_writes_leave_no_temporary_file() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let auth = fp.authorize(&at(dir.path(), "x"), true).expect("allowed");
        // A file being replaced gets a named temporary file to rename over it.
        std::fs::write(dir.path().join("x"), "old").expect("write");
        let (temp, _, _) = FsHost::stage(&fp, &auth, Attrs::default()).expect("stage");
        let TempName::Named(name) = &temp.name else {
            panic!("not named: {:?}", temp.name);
        };
        let name = name.to_str().expect("utf-8").to_owned();
        assert!(name.starts_with(".x.homeostat-"), "{name}");
        assert!(is_temp_name(name.as_bytes()), "{name}");
        assert!(!is_temp_name(b"x.homeostat-0123456789ab"));
        assert!(!is_temp_name(b".homeostat-0123456789ab"));
        assert!(!is_temp_name(b".x.homeostat-0123456789ag"));
        assert!(!is_temp_name(b".x.homeostat-0123456789"));
        assert!(dir.path().join(&name).exists());
        drop(temp);
        assert!(!dir.path().join(&name).exists());
        std::fs::remove_file(dir.path().join("x")).expect("rm");
        // A new file's is unnamed: nothing in the directory until it is linked.
        let (temp, _, _) = FsHost::stage(&fp, &auth, Attrs::default()).expect("stage");
        assert_eq!(temp.name, TempName::Unnamed);
        assert_eq!(entries(dir.path()), Vec::<String>::new());
        drop(temp);

        if !is_root() {
            // chown to another user fails after the temporary file was created.
            let host = FsHost::new();
            let attrs = Attrs {
                uid: Some(0),
                ..Attrs::default()
            };
            let err = host
                .write(&fp, &at(dir.path(), "x"), b"x".to_vec(), attrs, &[])
                .await
                .expect_err("chown");
            assert_eq!(err.code, ErrorCode::PermissionDenied, "{err}");
        }
        assert_eq!(entries(dir.path()), Vec::<String>::new());
    }

    #[tokio::test]
    async fn new_files_are_linked_into_place_and_late_rivals_replaced() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let host = FsHost::new();
        let attrs = Attrs {
            mode: Some(0o640),
            ..Attrs::default()
        };
        host.write(&fp, &at(dir.path(), "new"), b"one\n".to_vec(), attrs, &[])
            .await
            .expect("write");
        assert_file(dir.path(), "new", b"one\n", 0o640);
        // The same through /proc/self/fd, the way a host without CAP_DAC_READ_SEARCH links.
        let before = EMPTY_PATH_LINKS.swap(false, Ordering::Relaxed);
        let proc_write = host
            .write(
                &fp,
                &at(dir.path(), "via-proc"),
                b"two\n".to_vec(),
                Attrs::default(),
                &[],
            )
            .await;
        EMPTY_PATH_LINKS.store(before, Ordering::Relaxed);
        proc_write.expect("write via /proc");
        assert_file(dir.path(), "via-proc", b"two\n", 0o644);

        // Absent when staged, there by the time of the commit: replaced like any target.
        let auth = fp
            .authorize(&at(dir.path(), "late"), true)
            .expect("allowed");
        let (mut temp, target, (mode, uid, gid)) =
            FsHost::stage(&fp, &auth, Attrs::default()).expect("stage");
        assert_eq!(temp.name, TempName::Unnamed);
        write_all(&mut temp, b"ours\n", &auth.path).expect("write");
        temp.set_attrs(&auth.path, mode, uid, gid).expect("attrs");
        std::fs::write(dir.path().join("late"), "theirs\n").expect("rival");
        host.commit(temp, target, auth.path.clone(), &[])
            .await
            .expect("commit");
        assert_eq!(
            std::fs::read(dir.path().join("late")).expect("read"),
            b"ours\n"
        );
        assert_eq!(entries(dir.path()), ["late", "new", "via-proc"]);
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
    async fn lookups_through_directories_that_may_be_followed() {
        let dir = tempdir();
        std::fs::write(dir.path().join("f"), "hello\n").expect("write");
        std::fs::create_dir(dir.path().join("real")).expect("mkdir");
        std::fs::write(dir.path().join("real/conf"), "conf").expect("write");
        // The operator's symlinked directory, above every grant: followed.
        os_symlink(dir.path().join("real"), dir.path().join("alias")).expect("symlink");
        // A symlink at the granted path itself: not followed.
        os_symlink(dir.path().join("f"), dir.path().join("link")).expect("symlink");
        let only = |name: &str| Footprint {
            paths: vec![grant(&at(dir.path(), name), false, true)],
            ..Default::default()
        };
        let host = FsHost::new();
        let path = at(dir.path(), "f");
        let st = host.stat(&only("f"), &path).await.expect("stat");
        assert_eq!(st.map(|s| (s.file_type, s.size)), Some((FileType::File, 6)));
        assert_eq!(
            host.content_equals(&only("f"), &path, b"hello\n").await,
            Ok(true)
        );
        assert_eq!(
            host.content_equals(&only("f"), &path, b"hello!").await,
            Ok(false)
        );

        let through = at(dir.path(), "alias/conf");
        assert_eq!(
            host.stat(&only("alias/conf"), &through)
                .await
                .map(|s| s.map(|s| s.size)),
            Ok(Some(4))
        );
        assert_eq!(
            host.content_equals(&only("alias/conf"), &through, b"conf")
                .await,
            Ok(true)
        );

        let link = at(dir.path(), "link");
        let st = host.stat(&only("link"), &link).await.expect("stat");
        assert_eq!(st.map(|s| s.file_type), Some(FileType::Symlink));
        assert_eq!(
            host.content_equals(&only("link"), &link, b"hello\n").await,
            Ok(false)
        );

        // Absent, under a missing directory, under a file: absent, not an error.
        for absent in ["nope", "nope/x", "f/x"] {
            let p = at(dir.path(), absent);
            assert_eq!(host.stat(&only(absent), &p).await, Ok(None), "{absent}");
            assert_eq!(
                host.content_equals(&only(absent), &p, b"").await,
                Ok(false),
                "{absent}"
            );
        }
    }

    #[tokio::test]
    async fn symlinks_inside_a_grant_are_not_followed() {
        let dir = tempdir();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        std::fs::write(outside.join("secret"), "secret").expect("write");
        let app = dir.path().join("app");
        std::fs::create_dir(&app).expect("mkdir");
        let fp = tree(&app);
        let host = FsHost::new();

        // The plugin may create the link (the target is not checked)...
        host.symlink(&fp, outside.to_str().expect("utf-8"), &at(&app, "escape"))
            .await
            .expect("symlink");
        // ...but not go through it.
        let through = at(&app, "escape/secret");
        for err in [
            host.read(&fp, &through).await.expect_err("read"),
            host.stat(&fp, &through).await.expect_err("stat"),
            host.write(&fp, &through, b"pwned".to_vec(), Attrs::default(), &[])
                .await
                .expect_err("write"),
            host.remove(&fp, &through, false).await.expect_err("remove"),
            host.mkdir(&fp, &at(&app, "escape/new"), Attrs::default())
                .await
                .expect_err("mkdir"),
        ] {
            assert_eq!(err.code, ErrorCode::NotAllowed, "{err}");
            assert!(err.message.contains("symlink"), "{err}");
            assert!(!err.message.contains("  "), "one paragraph, no gaps: {err}");
        }
        // Nor read or list the link itself as its target.
        let escape = at(&app, "escape");
        assert_eq!(
            host.read(&fp, &escape).await.map_err(|e| e.code),
            Err(ErrorCode::WrongType)
        );
        assert_eq!(
            host.read_dir(&fp, &escape).await.map_err(|e| e.code),
            Err(ErrorCode::WrongType)
        );
        assert_eq!(
            host.content_equals(&fp, &escape, b"secret").await,
            Ok(false)
        );
        assert_eq!(
            std::fs::read(outside.join("secret")).expect("read"),
            b"secret"
        );

        // A symlink the resource could not have made (above its write grants, or at the path
        // of a read-only grant) is the operator's: it is followed.
        os_symlink(&app, dir.path().join("app-link")).expect("symlink");
        std::fs::write(app.join("conf"), "conf").expect("write");
        let conf = at(dir.path(), "app-link/conf");
        let read_only = Footprint {
            paths: vec![grant(&at(dir.path(), "app-link"), true, false)],
            ..Default::default()
        };
        assert_eq!(host.read(&read_only, &conf).await, Ok(b"conf".to_vec()));
        // But the path of a write grant may have been replaced by the resource itself.
        let writable = tree(&dir.path().join("app-link"));
        let err = host
            .read(&writable, &conf)
            .await
            .expect_err("write grant root");
        assert_eq!(err.code, ErrorCode::NotAllowed, "{err}");
        let exact = Footprint {
            paths: vec![grant(&at(dir.path(), "app-link/conf"), false, true)],
            ..Default::default()
        };
        host.write(
            &exact,
            &at(dir.path(), "app-link/conf"),
            b"new".to_vec(),
            Attrs::default(),
            &[],
        )
        .await
        .expect("write through the grant's parent");
        assert_eq!(std::fs::read(app.join("conf")).expect("read"), b"new");
    }

    #[tokio::test]
    async fn a_write_grant_replaced_by_a_symlink_is_not_followed() {
        let dir = tempdir();
        let outside = dir.path().join("etc");
        std::fs::create_dir(&outside).expect("mkdir");
        std::fs::write(outside.join("shadow"), "secret").expect("write");
        // The resource may write `app` itself (create, replace), and everything below it; and,
        // separately, one file below another path it may replace.
        let app = at(dir.path(), "app");
        let fp = Footprint {
            paths: vec![
                grant(&app, true, true),
                grant(&at(dir.path(), "x"), false, true),
                grant(&at(dir.path(), "x/shadow"), false, true),
            ],
            ..Default::default()
        };
        let host = FsHost::new();
        let target = outside.to_str().expect("utf-8");
        host.symlink(&fp, target, &app)
            .await
            .expect("symlink at the grant");
        host.symlink(&fp, target, &at(dir.path(), "x"))
            .await
            .expect("symlink at the exact grant");
        for path in [at(dir.path(), "app/shadow"), at(dir.path(), "x/shadow")] {
            let err = host.read(&fp, &path).await.expect_err("read");
            assert_eq!(err.code, ErrorCode::NotAllowed, "{err}");
            let err = host
                .write(&fp, &path, b"pwned".to_vec(), Attrs::default(), &[])
                .await
                .expect_err("write");
            assert_eq!(err.code, ErrorCode::NotAllowed, "{err}");
            let err = host.remove(&fp, &path, false).await.expect_err("remove");
            assert_eq!(err.code, ErrorCode::NotAllowed, "{err}");
        }
        assert_eq!(
            std::fs::read(outside.join("shadow")).expect("read"),
            b"secret"
        );
    }

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
