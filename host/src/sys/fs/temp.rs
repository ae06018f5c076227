//! Temporary files beside their target.
//!
//! New content is never written in place: it goes into a temporary file in the target's
//! directory, created private (`0600`, `O_EXCL`) and given its final owner and mode before
//! the commit thread puts it in place. When the target does not exist yet it is an unnamed
//! `O_TMPFILE` inode (linked under the target's name at the end, so a crash leaves
//! nothing); otherwise it has a name of its own, `.NAME.homeostat-` and 12 hex digits
//! ([`crate::sys::temp_name`]), renamed over the target. The watch hub ignores entries with
//! such names: they are this host's own staging files. A [`TempFile`] that is dropped before it
//! was put in place removes itself.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

use super::error::{ErrorCode, FsError, os_text};
use super::stat::{file_stat, to_mode};
use super::walk::cstring;
use crate::sys::temp_name;

/// A temporary file next to its target. Removed on drop unless it was put in place
/// ([`TempFile::placed`]), so every early return, cancelled task or failed commit cleans up
/// after itself.
pub(super) struct TempFile {
    /// The parent directory (`O_RDONLY`, so the commit thread can `fsync` it).
    pub(super) dir: OwnedFd,
    pub(super) name: TempName,
    /// The open file; the commit thread closes it after the flush.
    pub(super) file: Option<File>,
}

/// Where a [`TempFile`] is in its directory.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TempName {
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
    pub(super) fn create(
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

    pub(super) fn file(&mut self) -> Result<&mut File, FsError> {
        self.file
            .as_mut()
            .ok_or_else(|| FsError::new(ErrorCode::Other, "temporary file already closed"))
    }

    /// Sets owner then mode (in that order: `chown` clears setuid/setgid).
    pub(super) fn set_attrs(
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
    pub(super) fn link_as(&self, name: &CStr) -> Result<(), Errno> {
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
    pub(super) fn name_it(&mut self, target: &CStr, path: &Path) -> Result<(), FsError> {
        let what = "create a temporary file next to";
        let (name, ()) = under_temp_name(target, path, what, |name| self.link_as(name))?;
        self.name = TempName::Named(name);
        Ok(())
    }

    pub(super) fn placed(mut self) {
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
pub(super) static EMPTY_PATH_LINKS: AtomicBool = AtomicBool::new(true);

/// Whether `O_TMPFILE` files are used at all: only when `/proc/self/fd` is there, the way
/// [`TempFile::link_as`] names one when `AT_EMPTY_PATH` is refused (a file that could not be
/// named would lose its write). Checked once; without it, every temporary file is created
/// under a name.
fn unnamed_files_linkable() -> bool {
    static LINKABLE: OnceLock<bool> = OnceLock::new();
    *LINKABLE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// Runs `make` (an exclusive create, a link or a symlink) under fresh `temp_name`s until
/// one is free (up to 16 tries on `EEXIST`); returns the name it succeeded with and its
/// result. `what` names the failure: "create a temporary file next to" `path`.
pub(super) fn under_temp_name<T>(
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

/// A fresh staging name for `target` (see [`crate::sys::temp_name`]).
fn temp_name(target: &CStr, path: &Path) -> Result<CString, FsError> {
    cstring(path, &temp_name::fresh(target.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fs::testutil::*;
    use crate::sys::temp_name::is_temp_name;

    #[tokio::test]
    async fn failed_or_dropped_writes_leave_no_temporary_file() {
        let dir = tempdir();
        let fp = tree(dir.path());
        let auth = authorize(&fp, &at(dir.path(), "x"), true).expect("allowed");
        // A file being replaced gets a named temporary file to rename over it.
        std::fs::write(dir.path().join("x"), "old").expect("write");
        let temp = FsHost::new()
            .stage(&rules(&fp, &auth), Attrs::default())
            .expect("stage")
            .temp;
        let TempName::Named(name) = &temp.name else {
            panic!("not named: {:?}", temp.name);
        };
        let name = name.to_str().expect("utf-8").to_owned();
        assert!(name.starts_with(".x.homeostat-"), "{name}");
        assert!(is_temp_name(name.as_bytes()), "{name}");
        assert!(dir.path().join(&name).exists());
        drop(temp);
        assert!(!dir.path().join(&name).exists());
        std::fs::remove_file(dir.path().join("x")).expect("rm");
        // A new file's is unnamed: nothing in the directory until it is linked.
        let temp = FsHost::new()
            .stage(&rules(&fp, &auth), Attrs::default())
            .expect("stage")
            .temp;
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
        let auth = authorize(&fp, &at(dir.path(), "late"), true).expect("allowed");
        let Staged {
            mut temp,
            dir: entry_dir,
            target,
            mode,
            uid,
            gid,
        } = host
            .stage(&rules(&fp, &auth), Attrs::default())
            .expect("stage");
        assert_eq!(temp.name, TempName::Unnamed);
        write_all(&mut temp, b"ours\n", &auth.path).expect("write");
        temp.set_attrs(&auth.path, mode, uid, gid).expect("attrs");
        std::fs::write(dir.path().join("late"), "theirs\n").expect("rival");
        host.commit(temp, entry_dir, target, auth.path.clone(), &[])
            .await
            .expect("commit");
        assert_eq!(
            std::fs::read(dir.path().join("late")).expect("read"),
            b"ours\n"
        );
        assert_eq!(entries(dir.path()), ["late", "new", "via-proc"]);
    }
}
