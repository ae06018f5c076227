//! Where an `fs` call may go: the footprint check.
//!
//! **The footprint check** ([`check`], [`authorize`]) is lexical: a path must be absolute,
//! free of `.` and `..`, and equal to a grant or below a recursive one (writes need a write
//! grant).
//!
//! Where the path then leads, without being redirected, is [`super::walk`]'s.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::{ErrorCode, FsError};
use crate::sys::footprint::{Footprint, PathGrant};

/// A path that passed the footprint check, with the grant that allowed it.
#[derive(Debug)]
pub(super) struct Authorized<'a> {
    /// The normalised path.
    pub(super) path: PathBuf,
    /// The path of the deepest grant allowing the access; symlinks below it are never
    /// followed.
    pub(super) root: &'a Path,
    /// That grant is shared by editing resources (see `edits`).
    pub(super) shared: bool,
}

/// Checks that `path` may be read (or written, with `write`) and returns it normalised.
///
/// The path must be absolute and free of `.` and `..` components; repeated and trailing
/// slashes are dropped. It is allowed when it equals a grant's path or lies below a
/// recursive grant; a write needs such a grant with `write` set.
pub fn check(fp: &Footprint, path: &str, write: bool) -> Result<PathBuf, FsError> {
    authorize(fp, path, write).map(|a| a.path)
}

/// Whether a write of `path` through `fp` is only staged: the path is a shared file, whose
/// edits are written together later (see `edits`, [`FsHost::flush_edits`](super::FsHost::flush_edits)).
pub fn stages(fp: &Footprint, path: &str) -> bool {
    authorize(fp, path, true).is_ok_and(|a| a.shared)
}

pub(super) fn authorize<'a>(
    fp: &'a Footprint,
    path: &str,
    write: bool,
) -> Result<Authorized<'a>, FsError> {
    let norm = normalise(path)?;
    let mut best: Option<&PathGrant> = None;
    for grant in &fp.paths {
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
            shared: grant.shared,
            path: norm,
        }),
        None => Err(denied(fp, &norm, write)),
    }
}

/// Whether some write grant covers `path`: the resource may replace that entry.
pub(super) fn write_covers(fp: &Footprint, path: &Path) -> bool {
    fp.paths.iter().any(|g| g.write && grant_covers(g, path))
}

/// Whether some write grant with `recursive` covers `path` (needed to empty a directory).
pub(super) fn covers_tree(fp: &Footprint, path: &Path) -> bool {
    fp.paths
        .iter()
        .any(|g| g.write && g.recursive && grant_covers(g, path))
}

fn denied(fp: &Footprint, path: &Path, write: bool) -> FsError {
    let read_only = write && fp.paths.iter().any(|g| grant_covers(g, path));
    let what = if read_only {
        "is read-only in this resource's footprint"
    } else {
        "is outside this resource's footprint"
    };
    FsError::new(
        ErrorCode::NotAllowed,
        format!("`{}` {what} ({})", path.display(), describe(fp)),
    )
}

/// A short list of the grants, for error messages.
pub(super) fn describe(fp: &Footprint) -> String {
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
    let writes: Vec<&PathGrant> = fp.paths.iter().filter(|g| g.write).collect();
    let reads: Vec<&PathGrant> = fp.paths.iter().filter(|g| !g.write).collect();
    match (reads.is_empty(), writes.is_empty()) {
        (true, true) => "it declared no paths".to_owned(),
        (true, false) => format!("it may write {}", list(&writes)),
        (false, true) => format!("it may read {}", list(&reads)),
        (false, false) => format!("it may read {} / write {}", list(&reads), list(&writes)),
    }
}

pub(super) fn grant_covers(grant: &PathGrant, path: &Path) -> bool {
    path == grant.path || (grant.recursive && within(path, &grant.path))
}

/// Whether the normalised path `path` is `base` or below it. Compares bytes: `Path::starts_with`
/// goes component by component, and this runs several times per `fs` call.
pub(super) fn within(path: &Path, base: &Path) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fs::testutil::*;

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

    /// `/etc/motd` read-write, the tree `/srv/app` read-write, `/etc/hosts` read-only.
    fn motd_app_hosts() -> Footprint {
        Footprint {
            paths: vec![
                grant("/etc/motd", false, true),
                grant("/srv/app", true, true),
                grant("/etc/hosts", false, false),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn footprint_allows_granted_paths() {
        let fp = motd_app_hosts();
        assert_eq!(
            check(&fp, "/etc/motd", true),
            Ok(PathBuf::from("/etc/motd"))
        );
        assert_eq!(
            check(&fp, "/etc/motd/", true),
            Ok(PathBuf::from("/etc/motd"))
        );
        assert_eq!(
            check(&fp, "/etc/motd", false),
            Ok(PathBuf::from("/etc/motd"))
        );
        assert_eq!(
            check(&fp, "/etc/hosts", false),
            Ok(PathBuf::from("/etc/hosts"))
        );
        assert_eq!(check(&fp, "/srv/app", true), Ok(PathBuf::from("/srv/app")));
        assert_eq!(
            check(&fp, "/srv//app/a/b/", true),
            Ok(PathBuf::from("/srv/app/a/b"))
        );
        let root = Footprint {
            paths: vec![grant("/", true, false)],
            ..Default::default()
        };
        assert_eq!(check(&root, "/", false), Ok(PathBuf::from("/")));
        assert_eq!(check(&root, "/a/b", false), Ok(PathBuf::from("/a/b")));
    }

    #[test]
    fn footprint_refuses_everything_else() {
        let fp = motd_app_hosts();
        let refused = |path: &str, write: bool| {
            let err = check(&fp, path, write).expect_err(path);
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
        let err = check(&none, "/x", false).expect_err("empty footprint");
        assert!(err.message.contains("declared no paths"), "{err}");
    }
}
