//! homeostat's own cache files (compiled plugins, cached plans): written whole or not at
//! all (a temporary file renamed into place), with who may read them decided by the
//! caller. Not footprint-scoped: these are homeostat's files, in its cache directory.

use std::path::Path;

/// Who may read a file of the cache directory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheFile {
    /// Anyone (compiled plugins: nothing secret).
    Public,
    /// Only the owner, in a directory only the owner can list (cached plans hold params,
    /// which may be secrets the graph file itself protects).
    Private,
}

/// Write a file of the cache directory atomically: a temporary file renamed into place.
pub(crate) fn write_cache_file(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    who: CacheFile,
) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let (dir_mode, file_mode) = match who {
        CacheFile::Public => (0o755, 0o644),
        CacheFile::Private => (0o700, 0o600),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(dir_mode)
        .create(dir)?;
    if who == CacheFile::Private {
        // A directory made before (or by someone else's umask) is narrowed too.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(file_mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}
