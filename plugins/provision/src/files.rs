//! What a network request may read: path confinement and the [`FileSource`] trait.
//!
//! Both servers take a path from the network (a TFTP filename, a percent-decoded HTTP
//! path) and must only ever read below the served root. [`confine`] turns such a path
//! into a [`RelPath`] — the only type a [`FileSource`] accepts — or refuses it:
//!
//! - `\` is read as `/` (PXE clients of Windows servers send `boot\x86\wdsnbp.com`);
//! - a leading `/` means the served root, and an absolute path that starts with the
//!   root itself has that prefix removed ([`confine_under`]): with root `/srv/tftp`,
//!   `/srv/tftp/pxelinux.0`, `/pxelinux.0` and `pxelinux.0` are the same file, and
//!   `/etc/passwd` is `/srv/tftp/etc/passwd` — nothing absolute escapes;
//! - empty and `.` components are dropped; a `..` component anywhere is refused (not
//!   resolved), as are NUL bytes, an empty result (the root itself) and overlong paths.
//!
//! Symlinks are not this module's business: it never sees the file system. The real
//! source reads through the host's `fs` interface, which only opens paths inside the
//! resource's declared footprint (`read_tree(root)`), so a symlink under the root that
//! points elsewhere is refused by the host, not followed.
//!
//! [`FileSource`] is what the TFTP and HTTP cores read through: the plugin backs it by
//! the host `fs` interface, tests by [`MemFiles`]. [`Layered`] serves the inline `files`
//! param before the tree, as the resource promises.

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

/// Longest accepted path, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH: usize = 4096;
/// Longest accepted path component, in bytes (Linux's `NAME_MAX`).
pub const MAX_COMPONENT: usize = 255;

/// A path relative to the served root: non-empty components separated by `/`, none of
/// them `.` or `..`, no NUL. Only [`confine`] makes one, so holding a `RelPath` means
/// the path was checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// The path, e.g. `pxelinux.cfg/default`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The absolute path below `root` (which should be absolute and is not checked).
    pub fn under(&self, root: &str) -> String {
        let root = root.trim_end_matches('/');
        format!("{root}/{}", self.0)
    }

    /// The last component, e.g. `default` (used to guess a content type).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a requested path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Nothing is left once separators and `.` are removed: the root itself.
    Empty,
    /// The path contains a NUL byte.
    Nul,
    /// The path has a `..` component.
    Parent,
    /// Longer than [`MAX_PATH`], or a component longer than [`MAX_COMPONENT`].
    TooLong,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::Empty => "no file name",
            PathError::Nul => "the path contains a NUL byte",
            PathError::Parent => "`..` is not allowed in a path",
            PathError::TooLong => "the path is too long",
        })
    }
}

impl std::error::Error for PathError {}

/// Check a requested path and make it relative to the served root (see the module docs).
pub fn confine(request: &str) -> Result<RelPath, PathError> {
    if request.contains('\0') {
        return Err(PathError::Nul);
    }
    if request.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    let mut out = String::with_capacity(request.len());
    for part in request.split(['/', '\\']) {
        match part {
            "" | "." => continue,
            ".." => return Err(PathError::Parent),
            _ if part.len() > MAX_COMPONENT => return Err(PathError::TooLong),
            _ => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(part);
            }
        }
    }
    if out.is_empty() {
        return Err(PathError::Empty);
    }
    Ok(RelPath(out))
}

/// [`confine`], after removing `root` from the front of an absolute request that starts
/// with it (`/srv/tftp/pxelinux.0` with root `/srv/tftp` is `pxelinux.0`).
pub fn confine_under(root: &str, request: &str) -> Result<RelPath, PathError> {
    let root = root.trim_end_matches('/');
    let rest = match request.strip_prefix(root) {
        Some(rest) if !root.is_empty() && (rest.is_empty() || rest.starts_with('/')) => rest,
        _ => request,
    };
    confine(rest)
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// No such file (TFTP error 1, HTTP 404).
    NotFound,
    /// It exists but is not a regular file: a directory, a device, a symlink the source
    /// does not follow (TFTP error 1, HTTP 404).
    NotAFile,
    /// The source refused, e.g. outside the host footprint (TFTP error 2, HTTP 403).
    Denied,
    /// Anything else, with a message for the log (TFTP error 0, HTTP 500).
    Io(String),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::NotFound => f.write_str("file not found"),
            FileError::NotAFile => f.write_str("not a regular file"),
            FileError::Denied => f.write_str("access denied"),
            FileError::Io(m) => write!(f, "read error: {m}"),
        }
    }
}

impl std::error::Error for FileError {}

/// Read-only access to the served files, by checked relative path.
///
/// A file may change while it is being served; the cores cope (a transfer ends where
/// the reads end), but what a client gets is then a mix — the same as any server
/// reading a file that is being rewritten in place. Atomic replacement (the `file`
/// resource's way) keeps old transfers on the old content when the source holds the
/// file open, which the host decides.
pub trait FileSource {
    /// Size in bytes of a regular file.
    fn size(&self, path: &RelPath) -> Result<u64, FileError>;

    /// Read bytes at `offset` into `buf`; returns how many were read, 0 at or past the
    /// end. May return fewer than `buf.len()` before the end (the cores call again).
    fn read_at(&self, path: &RelPath, offset: u64, buf: &mut [u8]) -> Result<usize, FileError>;
}

/// Fill `buf` from `offset` as far as the file goes: fewer bytes than `buf.len()` means
/// the end of the file was reached.
pub fn read_full<S: FileSource + ?Sized>(
    src: &S,
    path: &RelPath,
    offset: u64,
    buf: &mut [u8],
) -> Result<usize, FileError> {
    let mut done = 0;
    while done < buf.len() {
        let n = src.read_at(path, offset + done as u64, &mut buf[done..])?;
        if n == 0 {
            break;
        }
        done += n.min(buf.len() - done);
    }
    Ok(done)
}

impl<T: FileSource + ?Sized> FileSource for &T {
    fn size(&self, path: &RelPath) -> Result<u64, FileError> {
        (**self).size(path)
    }
    fn read_at(&self, path: &RelPath, offset: u64, buf: &mut [u8]) -> Result<usize, FileError> {
        (**self).read_at(path, offset, buf)
    }
}

impl<T: FileSource + ?Sized> FileSource for Rc<T> {
    fn size(&self, path: &RelPath) -> Result<u64, FileError> {
        (**self).size(path)
    }
    fn read_at(&self, path: &RelPath, offset: u64, buf: &mut [u8]) -> Result<usize, FileError> {
        (**self).read_at(path, offset, buf)
    }
}

impl<T: FileSource + ?Sized> FileSource for Arc<T> {
    fn size(&self, path: &RelPath) -> Result<u64, FileError> {
        (**self).size(path)
    }
    fn read_at(&self, path: &RelPath, offset: u64, buf: &mut [u8]) -> Result<usize, FileError> {
        (**self).read_at(path, offset, buf)
    }
}

/// Files held in memory: the inline `files` param, and the tests' file trees. Cloning
/// is cheap (shared until modified): every TFTP transfer and HTTP response holds a
/// clone of the server's source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemFiles {
    files: Rc<BTreeMap<RelPath, Vec<u8>>>,
}

impl MemFiles {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) a file; `name` is confined like a request path, so what is
    /// stored is exactly what a request can name.
    pub fn insert(&mut self, name: &str, content: impl Into<Vec<u8>>) -> Result<(), PathError> {
        Rc::make_mut(&mut self.files).insert(confine(name)?, content.into());
        Ok(())
    }

    /// The content of a file, if present.
    pub fn get(&self, path: &RelPath) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }
}

impl FileSource for MemFiles {
    fn size(&self, path: &RelPath) -> Result<u64, FileError> {
        self.get(path)
            .map(|c| c.len() as u64)
            .ok_or(FileError::NotFound)
    }

    fn read_at(&self, path: &RelPath, offset: u64, buf: &mut [u8]) -> Result<usize, FileError> {
        let content = self.get(path).ok_or(FileError::NotFound)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(content.len());
        let n = buf.len().min(content.len() - start);
        buf[..n].copy_from_slice(&content[start..start + n]);
        Ok(n)
    }
}

/// The inline files first, then the tree: what both servers serve.
#[derive(Debug, Clone, Default)]
pub struct Layered<S> {
    pub inline: MemFiles,
    pub tree: S,
}

impl<S> Layered<S> {
    pub fn new(inline: MemFiles, tree: S) -> Self {
        Layered { inline, tree }
    }
}

impl<S: FileSource> FileSource for Layered<S> {
    fn size(&self, path: &RelPath) -> Result<u64, FileError> {
        match self.inline.size(path) {
            Err(FileError::NotFound) => self.tree.size(path),
            found => found,
        }
    }

    fn read_at(&self, path: &RelPath, offset: u64, buf: &mut [u8]) -> Result<usize, FileError> {
        match self.inline.get(path) {
            Some(_) => self.inline.read_at(path, offset, buf),
            None => self.tree.read_at(path, offset, buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str) -> String {
        confine(p).unwrap().as_str().to_string()
    }

    #[test]
    fn confine_normalises_separators_and_dots() {
        assert_eq!(ok("pxelinux.0"), "pxelinux.0");
        assert_eq!(ok("/pxelinux.0"), "pxelinux.0");
        assert_eq!(ok("//a///b/./c/"), "a/b/c");
        assert_eq!(ok("boot\\x86\\wdsnbp.com"), "boot/x86/wdsnbp.com");
        assert_eq!(ok("./a"), "a");
        assert_eq!(ok("a..b/..c/d.."), "a..b/..c/d..");
    }

    #[test]
    fn confine_refuses_escapes() {
        for p in [
            "..",
            "../etc/passwd",
            "/../etc/passwd",
            "a/../../b",
            "a/..",
            "a\\..\\..\\b",
            "/a/b/../../..",
        ] {
            assert_eq!(confine(p), Err(PathError::Parent), "{p}");
        }
        assert_eq!(confine("a\0b"), Err(PathError::Nul));
        assert_eq!(confine(""), Err(PathError::Empty));
        assert_eq!(confine("/"), Err(PathError::Empty));
        assert_eq!(confine("./."), Err(PathError::Empty));
        assert_eq!(confine(&"a".repeat(256)), Err(PathError::TooLong));
        assert_eq!(confine(&"a/".repeat(2049)), Err(PathError::TooLong));
    }

    #[test]
    fn absolute_paths_stay_below_the_root() {
        let c = |r: &str, p: &str| confine_under(r, p).map(|p| p.as_str().to_string());
        assert_eq!(
            c("/srv/tftp", "/srv/tftp/pxelinux.0").unwrap(),
            "pxelinux.0"
        );
        assert_eq!(c("/srv/tftp/", "/srv/tftp/a/b").unwrap(), "a/b");
        assert_eq!(c("/srv/tftp", "/etc/passwd").unwrap(), "etc/passwd");
        // A sibling that shares the prefix is not the root.
        assert_eq!(c("/srv/tftp", "/srv/tftpx/a").unwrap(), "srv/tftpx/a");
        assert_eq!(c("/srv/tftp", "/srv/tftp"), Err(PathError::Empty));
        assert_eq!(c("/srv/tftp", "/srv/tftp/../x"), Err(PathError::Parent));
        assert_eq!(
            confine("a/b").unwrap().under("/srv/tftp/"),
            "/srv/tftp/a/b".to_string()
        );
    }

    /// A source that returns at most 3 bytes per call, like a short `pread`.
    struct Trickle(MemFiles);
    impl FileSource for Trickle {
        fn size(&self, p: &RelPath) -> Result<u64, FileError> {
            self.0.size(p)
        }
        fn read_at(&self, p: &RelPath, o: u64, b: &mut [u8]) -> Result<usize, FileError> {
            let n = b.len().min(3);
            self.0.read_at(p, o, &mut b[..n])
        }
    }

    #[test]
    fn read_full_loops_over_short_reads() {
        let mut m = MemFiles::new();
        m.insert("f", b"0123456789".to_vec()).unwrap();
        let src = Trickle(m);
        let p = confine("f").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(read_full(&src, &p, 0, &mut buf), Ok(8));
        assert_eq!(&buf, b"01234567");
        assert_eq!(read_full(&src, &p, 8, &mut buf), Ok(2));
        assert_eq!(&buf[..2], b"89");
        assert_eq!(read_full(&src, &p, 100, &mut buf), Ok(0));
    }

    #[test]
    fn inline_files_come_before_the_tree() {
        let mut tree = MemFiles::new();
        tree.insert("ks.cfg", b"from tree".to_vec()).unwrap();
        tree.insert("only-tree", b"t".to_vec()).unwrap();
        let mut inline = MemFiles::new();
        inline.insert("/ks.cfg", b"inline".to_vec()).unwrap();
        let src = Layered::new(inline, tree);
        let ks = confine("ks.cfg").unwrap();
        assert_eq!(src.size(&ks), Ok(6));
        let mut buf = [0u8; 16];
        assert_eq!(src.read_at(&ks, 0, &mut buf), Ok(6));
        assert_eq!(&buf[..6], b"inline");
        assert_eq!(src.size(&confine("only-tree").unwrap()), Ok(1));
        assert_eq!(
            src.size(&confine("missing").unwrap()),
            Err(FileError::NotFound)
        );
    }
}
