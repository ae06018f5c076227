//! Reaching an authorised path without being redirected.
//!
//! homeostat runs as root, so whoever can change a directory on the way to a managed path
//! must not be able to redirect a write (or a read) elsewhere. Every call reaches its path
//! in one of two ways:
//!
//! - **No symlink on the way** (the usual case): the kernel resolves the whole path in the
//!   one call that uses it, told to refuse every symlink (`openat2` with
//!   `RESOLVE_NO_SYMLINKS`). A path without links lands exactly where it says, whoever
//!   owns the directories on the way: no user can make a plain directory lead elsewhere.
//! - **A symlink on the way** (`/var/run -> /run`, a link a user made): the walk
//!   ([`locate`]) opens one component at a time from `/` with `O_NOFOLLOW`, holding each
//!   directory open, and follows a link only when all of these hold:
//!   1. the resource could not have made it: no write grant of its footprint covers the
//!      link, and it is not below the grant that allowed the access;
//!   2. the graph does not manage that path ([`Managed`]): a path some resource writes is
//!      never followed as a link (it was a directory, a file or a link the graph
//!      declared; a link there now is drift, not a layout);
//!   3. no *unsafe transition* (systemd's `chase()` with `CHASE_SAFE`, the fix for
//!      CVE-2018-6954): from an entry owned by an unprivileged user to one owned by anyone
//!      else. Checked from the directory to the link, from the link to where its target
//!      starts (`/` for an absolute target, the link's directory for a relative one: the
//!      kernel's `protected_symlinks` rule, which resolving links by hand would otherwise
//!      bypass), and at every step of resolving the target (`..` included). A link a user owns can therefore lead only to what that user
//!      owns, while root's own links keep working. The operator lifts this rule for one
//!      resource with the `trust_parents` metaparam
//!      ([`Footprint::trust_parents`](crate::sys::footprint::Footprint::trust_parents)).
//!
//! Refusals are errors naming the link, its owner and the rule. The final component is
//! never followed: it is handled with `*at` calls that do not follow it (`lstat`,
//! `O_NOFOLLOW` opens, `lchown`, rename over a link). Kernels without `openat2` (before
//! 5.6) take the walk every time.

use std::collections::{HashMap, VecDeque};
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::error::{ErrorCode, FsError, code_for, os_text};
use super::path::{Authorized, within, write_covers};
use super::stat::{FileType, file_stat, kind_of};
use crate::sys::footprint::Footprint;

/// Symlinks the walk follows for one path at most (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Whether this kernel has `openat2`; cleared the first time it answers `ENOSYS`.
static OPENAT2: AtomicBool = AtomicBool::new(true);

/// Where an authorised path is: its parent directory, opened, and the last component, for
/// the `*at` calls.
pub(super) struct Located {
    pub(super) parent: OwnedFd,
    pub(super) name: CString,
}

/// Why a path's parent could not be opened.
pub(super) enum WalkError {
    /// A directory on the way does not exist or is not a directory (`ENOENT`, `ENOTDIR`):
    /// the path itself does not exist.
    Absent { dir: PathBuf, err: Errno },
    /// Anything else, already phrased.
    Fail(FsError),
}

impl WalkError {
    /// For calls on which an absent path is an error.
    pub(super) fn into_error(self, path: &Path) -> FsError {
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

pub(super) fn cstring(path: &Path, bytes: &[u8]) -> Result<CString, FsError> {
    CString::new(bytes).map_err(|_| {
        FsError::new(
            ErrorCode::NotAllowed,
            format!("`{}` contains a NUL byte", path.display()),
        )
    })
}

/// The paths the whole graph writes: every resource's write grants, with the resource
/// that declared each. A symlink found at one of them (or below a recursive one) is never
/// followed on the way to another path.
#[derive(Debug, Default)]
pub struct Managed {
    /// Exact write grants, by path. Hashed, not ordered: built for every graph, from up to
    /// tens of thousands of paths, where comparing paths component by component costs more
    /// than hashing them.
    exact: HashMap<PathBuf, Arc<str>>,
    /// Recursive write grants, by path.
    trees: HashMap<PathBuf, Arc<str>>,
}

impl Managed {
    /// The write grants of every `(owner, footprint)` of a graph; `owner` names the
    /// resource in errors (`file[motd]`).
    pub fn new<'a>(resources: impl IntoIterator<Item = (String, &'a Footprint)>) -> Managed {
        let mut managed = Managed::default();
        let resources = resources.into_iter();
        managed.exact.reserve(resources.size_hint().0);
        for (owner, fp) in resources {
            let owner: Arc<str> = owner.into();
            for g in fp.paths.iter().filter(|g| g.write) {
                let map = if g.recursive {
                    &mut managed.trees
                } else {
                    &mut managed.exact
                };
                map.entry(g.path.clone()).or_insert_with(|| owner.clone());
            }
        }
        managed
    }

    /// Every write grant: its path, and whether it is recursive.
    pub(super) fn grants(&self) -> impl Iterator<Item = (&Path, bool)> {
        let exact = self.exact.keys().map(|p| (p.as_path(), false));
        exact.chain(self.trees.keys().map(|p| (p.as_path(), true)))
    }

    /// The resource that manages `path` (a write grant of it, or below a recursive one).
    fn owner_of(&self, path: &Path) -> Option<&str> {
        if let Some(owner) = self.exact.get(path) {
            return Some(owner);
        }
        path.ancestors()
            .find_map(|a| self.trees.get(a))
            .map(|o| &**o)
    }
}

/// What a walk to one path may follow (see the module docs).
pub(super) struct Rules<'a> {
    pub(super) fp: &'a Footprint,
    pub(super) auth: &'a Authorized<'a>,
    pub(super) managed: &'a Managed,
}

/// Opens the parent directory of the authorised path with `last` (`O_PATH` for lookups,
/// `O_RDONLY` when it must be `fsync`ed) without being redirected (see the module docs).
pub(super) fn locate(rules: &Rules, last: OFlags) -> Result<Located, WalkError> {
    let path = &rules.auth.path;
    let (Some(parent_path), Some(name)) = (path.parent(), path.file_name()) else {
        // The root directory itself: operate on "." inside "/".
        let parent = open_dir(CWD, Path::new("/"), last)
            .map_err(|err| WalkError::Fail(FsError::os("open directory", Path::new("/"), err)))?;
        return Ok(Located {
            parent,
            name: c".".to_owned(),
        });
    };
    let name = cstring(path, name.as_bytes()).map_err(WalkError::Fail)?;
    let flags = last | OFlags::DIRECTORY;
    let parent = match open_without_links(parent_path, flags) {
        Ok(fd) => fd,
        Err(err @ (Errno::NOENT | Errno::NOTDIR)) => {
            return Err(WalkError::Absent {
                dir: parent_path.to_path_buf(),
                err,
            });
        }
        // A symlink on the way, or no `openat2`.
        Err(Errno::LOOP | Errno::NOSYS) => walk(rules, parent_path, last)?,
        Err(err) => {
            return Err(WalkError::Fail(FsError::os(
                "open directory",
                parent_path,
                err,
            )));
        }
    };
    Ok(Located { parent, name })
}

/// What [`open_entry`] found at the path itself.
pub(super) enum Entry {
    /// The entry, opened with the flags asked for.
    Open(OwnedFd),
    /// Nothing there (or a directory on the way is missing).
    Absent,
    /// A symlink, which was not opened (only `O_PATH` opens one).
    Symlink,
}

/// Opens the authorised path itself with `flags` (plus `O_NOFOLLOW`): in one call when no
/// symlink is on the way, else through [`locate`]. A lookup (`O_PATH`, for `stat`) or a
/// read (`O_RDONLY | O_NONBLOCK | O_NOCTTY`: a FIFO does not block the open) costs one
/// syscall in the usual case, as the plain `stat`/`open` of the whole path did, without
/// following a link a user could have put on the way.
pub(super) fn open_entry(rules: &Rules, flags: OFlags) -> Result<Entry, WalkError> {
    let path = &rules.auth.path;
    let flags = flags | OFlags::NOFOLLOW;
    match open_without_links(path, flags) {
        Ok(fd) => return Ok(Entry::Open(fd)),
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(Entry::Absent),
        // A symlink on the way (or the last component is one), or no `openat2`.
        Err(Errno::LOOP | Errno::NOSYS) => {}
        Err(err) => return Err(WalkError::Fail(FsError::os("open", path, err))),
    }
    let loc = match locate(rules, OFlags::PATH) {
        Ok(loc) => loc,
        Err(WalkError::Absent { .. }) => return Ok(Entry::Absent),
        Err(e) => return Err(e),
    };
    match rustix::fs::openat(
        &loc.parent,
        &loc.name,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Entry::Open(fd)),
        Err(Errno::NOENT | Errno::NOTDIR) => Ok(Entry::Absent),
        Err(Errno::LOOP) => Ok(Entry::Symlink),
        Err(err) => Err(WalkError::Fail(FsError::os("open", path, err))),
    }
}

/// `openat2(path, flags, RESOLVE_NO_SYMLINKS)`; `ENOSYS` (and, once known, every call on
/// this kernel) when there is no `openat2`.
fn open_without_links(path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    if !OPENAT2.load(Ordering::Relaxed) {
        return Err(Errno::NOSYS);
    }
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(CWD, path, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
        Err(Errno::NOSYS) => {
            OPENAT2.store(false, Ordering::Relaxed);
            Err(Errno::NOSYS)
        }
        other => other,
    }
}

/// The walk: `parent_path` from `/`, one component at a time (see the module docs);
/// returns the directory opened with `last`.
fn walk(rules: &Rules, parent_path: &Path, last: OFlags) -> Result<OwnedFd, WalkError> {
    let fail = |e: FsError| WalkError::Fail(e);
    let mut dir = open_dir(CWD, Path::new("/"), OFlags::PATH)
        .map_err(|err| fail(FsError::os("open directory", Path::new("/"), err)))?;
    let mut dir_st = fstat(&dir, Path::new("/"))?;
    let mut at = PathBuf::from("/");
    let mut queue: VecDeque<OsString> = components(parent_path);
    // How many items at the front of `queue` come from link targets: their steps are
    // checked for unsafe transitions (the path's own components are walked as named).
    let mut from_links = 0usize;
    let mut links = 0usize;
    // The link whose target is being resolved, for refusals.
    let mut via = PathBuf::new();
    while let Some(name) = queue.pop_front() {
        let resolving = from_links > 0;
        from_links = from_links.saturating_sub(1);
        if name == ".." {
            let up = open_dir(&dir, Path::new(".."), OFlags::PATH)
                .map_err(|err| fail(FsError::os("open directory", &at, err)))?;
            let up_st = fstat(&up, &at)?;
            at.pop();
            if resolving {
                check_transition(rules, &via, &dir_st, &up_st, &at)?;
            }
            (dir, dir_st) = (up, up_st);
            continue;
        }
        let next = at.join(&name);
        let child = match rustix::fs::openat(
            &dir,
            Path::new(&name),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(err @ (Errno::NOENT | Errno::NOTDIR)) => {
                return Err(WalkError::Absent { dir: next, err });
            }
            Err(err) => return Err(fail(FsError::os("open directory", &next, err))),
        };
        let st = fstat(&child, &next)?;
        match kind_of(&st) {
            FileType::Directory => {
                if resolving {
                    check_transition(rules, &via, &dir_st, &st, &next)?;
                }
                (dir, dir_st, at) = (child, st, next);
            }
            FileType::Symlink => {
                refuse_link(rules, &next, &dir_st, &st)?;
                links += 1;
                if links > MAX_LINKS {
                    return Err(fail(FsError::os("reach", &rules.auth.path, Errno::LOOP)));
                }
                let target = rustix::fs::readlinkat(&child, c"", Vec::new())
                    .map_err(|err| fail(FsError::os("read the symlink", &next, err)))?;
                let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                let parts = components(&target);
                // Where the target starts must be the link owner's too (the kernel's
                // `protected_symlinks` rule, which this walk would otherwise bypass: a
                // user's link in `/tmp` to `../etc` leads nowhere).
                if target.is_absolute() {
                    let root = open_dir(CWD, Path::new("/"), OFlags::PATH)
                        .map_err(|err| fail(FsError::os("open directory", Path::new("/"), err)))?;
                    let root_st = fstat(&root, Path::new("/"))?;
                    check_transition(rules, &next, &st, &root_st, Path::new("/"))?;
                    (dir, dir_st, at) = (root, root_st, PathBuf::from("/"));
                } else {
                    check_transition(rules, &next, &st, &dir_st, &at)?;
                }
                via = next;
                from_links += parts.len();
                for part in parts.into_iter().rev() {
                    queue.push_front(part);
                }
            }
            _ => {
                return Err(WalkError::Absent {
                    dir: next,
                    err: Errno::NOTDIR,
                });
            }
        }
    }
    if last == OFlags::PATH {
        return Ok(dir);
    }
    open_dir(&dir, Path::new("."), last)
        .map_err(|err| fail(FsError::os("open directory", &at, err)))
}

/// The normal components of `path` (`.` and the root dropped, `..` kept).
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn fstat(fd: &OwnedFd, path: &Path) -> Result<rustix::fs::Stat, WalkError> {
    rustix::fs::fstat(fd).map_err(|err| WalkError::Fail(FsError::os("stat", path, err)))
}

/// Refuses to follow the symlink `link` (whose stat is `link_st`, in a directory whose stat
/// is `dir_st`) when one of the walk's rules forbids it.
fn refuse_link(
    rules: &Rules,
    link: &Path,
    dir_st: &rustix::fs::Stat,
    link_st: &rustix::fs::Stat,
) -> Result<(), WalkError> {
    let Rules { fp, auth, managed } = rules;
    let path = &auth.path;
    let refused = |why: String| {
        WalkError::Fail(FsError::new(
            ErrorCode::NotAllowed,
            format!(
                "`{}` goes through the symlink `{}`, {why}",
                path.display(),
                link.display()
            ),
        ))
    };
    if write_covers(fp, link) || (within(link, auth.root) && link != auth.root) {
        return Err(refused(
            "which is inside this resource's footprint; symlinks there are not followed \
             (declare the link's target instead)"
                .into(),
        ));
    }
    if let Some(owner) = managed.owner_of(link) {
        return Err(refused(format!(
            "a path the graph manages ({owner}); a path the graph declares is never followed \
             as a symlink (declare the link's target instead)"
        )));
    }
    if !fp.trust_parents && unsafe_transition(dir_st, link_st) {
        return Err(refused(format!(
            "owned by uid {} in a directory owned by uid {}; {}",
            link_st.st_uid, dir_st.st_uid, TRANSITION_RULE
        )));
    }
    Ok(())
}

/// The rule and the way out, for refusals.
const TRANSITION_RULE: &str = "homeostat never follows a path from an entry an unprivileged \
     user owns to an entry another user owns (that user could point it anywhere); if this \
     layout is yours, set `meta: {trust_parents: true}` on the resource";

/// Refuses the step from `from` to `to` (reached at `at`) while resolving the target of
/// the symlink `link`, when it is an unsafe transition.
fn check_transition(
    rules: &Rules,
    link: &Path,
    from: &rustix::fs::Stat,
    to: &rustix::fs::Stat,
    at: &Path,
) -> Result<(), WalkError> {
    if rules.fp.trust_parents || !unsafe_transition(from, to) {
        return Ok(());
    }
    Err(WalkError::Fail(FsError::new(
        ErrorCode::NotAllowed,
        format!(
            "`{}` goes through the symlink `{}`, which leads from an entry owned by uid {} to \
             `{}`, owned by uid {}; {}",
            rules.auth.path.display(),
            link.display(),
            from.st_uid,
            at.display(),
            to.st_uid,
            TRANSITION_RULE
        ),
    )))
}

/// systemd's `unsafe_transition()`: from something root owns, anything goes; from something
/// an unprivileged user owns, only to something the same user owns.
fn unsafe_transition(from: &rustix::fs::Stat, to: &rustix::fs::Stat) -> bool {
    from.st_uid != 0 && from.st_uid != to.st_uid
}

pub(super) fn open_dir<Fd: AsFd>(at: Fd, path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    let flags = flags | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(at, path, flags, Mode::empty())
}

pub(super) fn lstat_at(loc: &Located) -> Result<Option<rustix::fs::Stat>, Errno> {
    match rustix::fs::statat(&loc.parent, &loc.name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
        Err(err) => Err(err),
    }
}

/// What [`open_regular`] found.
pub(super) enum Regular {
    /// An open regular file and its size.
    File(File, u64),
    Absent,
    /// Something else is there.
    Not(FileType),
}

/// Opens the authorised path for reading if it is a regular file, without following a
/// symlink and without blocking on a FIFO.
pub(super) fn open_regular(rules: &Rules) -> Result<Regular, FsError> {
    let path = &rules.auth.path;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = match open_entry(rules, flags).map_err(|e| e.into_error(path))? {
        Entry::Open(fd) => fd,
        Entry::Absent => return Ok(Regular::Absent),
        Entry::Symlink => return Ok(Regular::Not(FileType::Symlink)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| FsError::os("stat", path, e))?;
    match kind_of(&st) {
        FileType::File => Ok(Regular::File(File::from(fd), file_stat(&st).size)),
        kind => Ok(Regular::Not(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fs::testutil::*;

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

    /// The uid the tests hand directories and links to: an unprivileged user.
    const USER: u32 = 65534;

    /// `T/home/alice` (owned by [`USER`]) and `T/etc` (root's), with a footprint that may
    /// write `T/home/alice/www/index.html`.
    fn home(dir: &Path) -> (PathBuf, PathBuf, Footprint) {
        let alice = dir.join("home/alice");
        let etc = dir.join("etc");
        std::fs::create_dir_all(&alice).expect("mkdir");
        std::fs::create_dir(&etc).expect("mkdir");
        std::os::unix::fs::chown(&alice, Some(USER), Some(USER)).expect("chown");
        let fp = Footprint {
            paths: vec![grant(&at(&alice, "www/index.html"), false, true)],
            ..Default::default()
        };
        (alice, etc, fp)
    }

    /// A symlink at `link` to `target`, owned by `uid`.
    fn link_as(target: &Path, link: &Path, uid: u32) {
        os_symlink(target, link).expect("symlink");
        std::os::unix::fs::lchown(link, Some(uid), Some(uid)).expect("lchown");
    }

    fn page(alice: &Path) -> String {
        at(alice, "www/index.html")
    }

    #[tokio::test]
    async fn a_users_link_does_not_lead_into_another_owners_directory() {
        if !is_root() {
            return;
        }
        let dir = tempdir();
        let (alice, etc, fp) = home(dir.path());
        let host = FsHost::new();
        // Alice's own layout, written before she changes it.
        std::fs::create_dir(alice.join("www")).expect("mkdir");
        std::os::unix::fs::chown(alice.join("www"), Some(USER), Some(USER)).expect("chown");
        host.write(
            &fp,
            &page(&alice),
            b"hello\n".to_vec(),
            Attrs::default(),
            &[],
        )
        .await
        .expect("a plain path is written");
        // Between two check-applies she replaces the directory with a link to root's.
        std::fs::rename(alice.join("www"), alice.join("www.old")).expect("rename");
        for target in [etc.clone(), PathBuf::from("../../etc")] {
            let _ = std::fs::remove_file(alice.join("www"));
            link_as(&target, &alice.join("www"), USER);
            let err = host
                .write(
                    &fp,
                    &page(&alice),
                    b"pwned\n".to_vec(),
                    Attrs::default(),
                    &[],
                )
                .await
                .expect_err("the link is not followed");
            assert_eq!(err.code, ErrorCode::NotAllowed, "{err}");
            assert!(
                err.message.contains("www") && err.message.contains("uid 65534"),
                "{err}"
            );
            assert!(err.message.contains("trust_parents"), "{err}");
            // Nothing is read through it either (a diff would show another file's content).
            assert!(host.read(&fp, &page(&alice)).await.is_err());
            assert!(host.content_equals(&fp, &page(&alice), b"").await.is_err());
            assert!(host.remove(&fp, &page(&alice), false).await.is_err());
            assert_eq!(entries(&etc), Vec::<String>::new(), "{target:?}");
        }
    }

    #[tokio::test]
    async fn a_users_link_in_a_sticky_directory_leads_nowhere() {
        if !is_root() {
            return;
        }
        // The /tmp attack: a name the graph uses, made first by a user, pointing up.
        let dir = tempdir();
        let tmp = dir.path().join("tmp");
        let etc = dir.path().join("etc");
        std::fs::create_dir(&tmp).expect("mkdir");
        std::fs::create_dir(&etc).expect("mkdir");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        link_as(Path::new("../etc"), &tmp.join("app"), USER);
        let fp = Footprint {
            paths: vec![grant(&at(&tmp, "app/conf"), false, true)],
            ..Default::default()
        };
        let err = FsHost::new()
            .write(
                &fp,
                &at(&tmp, "app/conf"),
                b"x".to_vec(),
                Attrs::default(),
                &[],
            )
            .await
            .expect_err("refused");
        assert_eq!(err.code, ErrorCode::NotAllowed, "{err}");
        assert_eq!(entries(&etc), Vec::<String>::new());
    }

    #[tokio::test]
    async fn roots_own_links_are_followed_and_trust_parents_lifts_the_rule() {
        if !is_root() {
            return;
        }
        let dir = tempdir();
        // `/var/run -> /run`: root's link, followed.
        let run = dir.path().join("run");
        std::fs::create_dir(&run).expect("mkdir");
        os_symlink(&run, dir.path().join("varrun")).expect("symlink");
        let fp = Footprint {
            paths: vec![grant(&at(dir.path(), "varrun/pid"), false, true)],
            ..Default::default()
        };
        let host = FsHost::new();
        host.write(
            &fp,
            &at(dir.path(), "varrun/pid"),
            b"1\n".to_vec(),
            Attrs::default(),
            &[],
        )
        .await
        .expect("root's link is followed");
        assert_file(&run, "pid", b"1\n", 0o644);
        assert_eq!(
            host.read(&fp, &at(dir.path(), "varrun/pid")).await,
            Ok(b"1\n".to_vec())
        );
        // A user's link, with the operator vouching for the layout.
        let (alice, etc, mut fp) = home(dir.path());
        link_as(&etc, &alice.join("www"), USER);
        fp.trust_parents = true;
        host.write(&fp, &page(&alice), b"ok\n".to_vec(), Attrs::default(), &[])
            .await
            .expect("trusted");
        assert_file(&etc, "index.html", b"ok\n", 0o644);
    }

    #[tokio::test]
    async fn a_path_the_graph_manages_is_never_followed_as_a_link() {
        let dir = tempdir();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        os_symlink(&real, dir.path().join("app")).expect("symlink");
        let app = at(dir.path(), "app");
        let conf = at(dir.path(), "app/conf");
        let fp = Footprint {
            paths: vec![grant(&conf, false, true)],
            ..Default::default()
        };
        let auth = authorize(&fp, &conf, true).expect("allowed");
        // Another resource of the graph declares `app` (as a directory).
        let managed = Managed::new([(
            "file[app]".to_owned(),
            &Footprint {
                paths: vec![grant(&app, false, true)],
                ..Default::default()
            },
        )]);
        let rules = Rules {
            fp: &fp,
            auth: &auth,
            managed: &managed,
        };
        let Err(WalkError::Fail(err)) = locate(&rules, OFlags::PATH) else {
            panic!("the managed link was followed");
        };
        assert!(err.message.contains("file[app]"), "{err}");
        // The same link, not managed by anyone, is root's own and followed.
        let free = Managed::default();
        let rules = Rules {
            managed: &free,
            ..rules
        };
        assert!(locate(&rules, OFlags::PATH).is_ok());
        // Below a recursive grant counts too.
        let tree = Managed::new([(
            "file[top]".to_owned(),
            &Footprint {
                paths: vec![grant(&at(dir.path(), ""), true, true)],
                ..Default::default()
            },
        )]);
        assert_eq!(tree.owner_of(Path::new(&app)), Some("file[top]"));
    }

    #[tokio::test]
    async fn a_hard_link_in_a_users_directory_gets_no_new_owner_or_mode() {
        if !is_root() {
            return;
        }
        let dir = tempdir();
        let (alice, _, _) = home(dir.path());
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s").expect("write");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::hard_link(&secret, alice.join("f")).expect("link");
        let fp = Footprint {
            paths: vec![grant(&at(&alice, "f"), false, true)],
            ..Default::default()
        };
        let attrs = Attrs {
            mode: Some(0o666),
            uid: Some(USER),
            ..Attrs::default()
        };
        let err = FsHost::new()
            .set_attrs(&fp, &at(&alice, "f"), attrs)
            .await
            .expect_err("refused");
        assert!(err.message.contains("hard links"), "{err}");
        assert_eq!(mode_of(secret.to_str().expect("utf-8")), 0o600);
        assert_eq!(std::fs::metadata(&secret).expect("stat").uid(), 0);
    }

    /// Without `openat2` every call takes the walk, with the same answers.
    #[tokio::test]
    async fn the_walk_alone_gives_the_same_answers() {
        let dir = tempdir();
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::fs::write(dir.path().join("d/f"), "x").expect("write");
        let fp = tree(dir.path());
        let host = FsHost::new();
        let f = at(dir.path(), "d/f");
        let auth = authorize(&fp, &f, false).expect("allowed");
        let managed = Managed::default();
        let rules = Rules {
            fp: &fp,
            auth: &auth,
            managed: &managed,
        };
        let walked = walk(&rules, auth.path.parent().expect("parent"), OFlags::PATH)
            .map_err(|e| e.into_error(&auth.path))
            .expect("walked");
        let direct =
            open_without_links(auth.path.parent().expect("parent"), OFlags::PATH).expect("opened");
        let (a, b) = (
            rustix::fs::fstat(&walked).expect("stat"),
            rustix::fs::fstat(&direct).expect("stat"),
        );
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
        let missing = at(dir.path(), "d/nope/f");
        let auth = authorize(&fp, &missing, false).expect("allowed");
        let rules = Rules {
            auth: &auth,
            ..rules
        };
        assert!(matches!(
            walk(&rules, auth.path.parent().expect("parent"), OFlags::PATH),
            Err(WalkError::Absent { .. })
        ));
        assert_eq!(host.stat(&fp, &missing).await, Ok(None));
    }
}
