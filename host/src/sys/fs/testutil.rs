//! Helpers the `fs` parts' tests share: footprints over a temporary directory and checks
//! of what ended up on disk.

pub(super) use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub(super) use super::host::{FsHost, INLINE_IO_MAX, Staged, write_all};
pub(super) use super::path::{Authorized, authorize, check};
pub(super) use super::stat::Attrs;
pub(super) use super::walk::{Managed, Rules};
pub(super) use crate::sys::footprint::{Footprint, PathGrant};
pub(super) use std::os::unix::fs::{PermissionsExt, symlink as os_symlink};
pub(super) use std::sync::atomic::AtomicBool;

pub(super) fn grant(path: &str, recursive: bool, write: bool) -> PathGrant {
    PathGrant {
        path: PathBuf::from(path),
        recursive,
        write,
        shared: false,
    }
}

/// A footprint granting the whole directory `dir` for reading and writing.
pub(super) fn tree(dir: &Path) -> Footprint {
    Footprint {
        paths: vec![PathGrant {
            path: dir.to_path_buf(),
            recursive: true,
            write: true,
            shared: false,
        }],
        ..Default::default()
    }
}

pub(super) fn at(dir: &Path, name: &str) -> String {
    dir.join(name)
        .to_str()
        .expect("temp dirs are UTF-8")
        .to_owned()
}

pub(super) fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

pub(super) fn mode_of(path: &str) -> u32 {
    std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777
}

/// The names in `dir`, sorted.
pub(super) fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}

/// Asserts that `dir/name` holds `content` with `mode`.
pub(super) fn assert_file(dir: &Path, name: &str, content: &[u8], mode: u32) {
    let path = dir.join(name);
    assert_eq!(std::fs::read(&path).expect("read"), content, "{name}");
    assert_eq!(mode_of(path.to_str().expect("utf-8")), mode, "{name}");
}

pub(super) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The walk's rules for `auth` in `fp`, with no path managed by a graph.
pub(super) fn rules<'a>(fp: &'a Footprint, auth: &'a Authorized<'a>) -> Rules<'a> {
    static NONE: std::sync::OnceLock<Managed> = std::sync::OnceLock::new();
    Rules {
        fp,
        auth,
        managed: NONE.get_or_init(Managed::default),
    }
}

/// The graph's managed paths when one resource, `owner`, has the grants `grants`.
pub(super) fn managed_by(owner: &str, grants: &[PathGrant]) -> Managed {
    let fp = Footprint {
        paths: grants.to_vec(),
        ..Footprint::default()
    };
    Managed::new([(owner.to_owned(), &fp)])
}
