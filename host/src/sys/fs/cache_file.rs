//! homeostat's own files: cache files (compiled plugins, cached plans) and what it writes
//! for the operator (run reports, plugin lock files), each written whole or not at all (a
//! temporary file renamed into place). Not footprint-scoped: these are homeostat's files.

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

/// Write `path` whole or not at all: a temporary file (`prefix`...) in its directory,
/// written and flushed, then renamed over it; `before_rename` runs just before the
/// rename (a report rotates the earlier ones out there).
pub(crate) fn write_whole(
    path: &Path,
    prefix: &str,
    bytes: &[u8],
    before_rename: impl FnOnce(),
) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(prefix).tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    before_rename();
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
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
