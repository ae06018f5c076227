//! Files read from outside (the graph, plugin `.wasm` files, the grants file): bounded,
//! and never waited on.
//!
//! [`read_file`] is the one way such a file is read:
//!
//! 1. `stat` the path (following links) and refuse anything but a regular file — a FIFO,
//!    a character or block device, a socket, a directory — before opening it: opening a
//!    FIFO waits for a writer, reading `/dev/zero` never ends, and opening some devices
//!    has effects of its own;
//! 2. open it with `O_NONBLOCK | O_NOCTTY | O_CLOEXEC` (so even a path swapped for a FIFO
//!    or a terminal between the two steps is neither waited on nor made the controlling
//!    terminal) and check the type again with `fstat` on what was opened;
//! 3. refuse a file whose size (`st_size`) is above its [`Cap`], naming the file, its size
//!    and the cap — a sparse file of 1 TiB occupies no disk but is refused the same;
//! 4. read at most cap + 1 bytes, so a file that grows while it is read (or one whose size
//!    the kernel reports as 0, such as files under `/proc`) is still bounded.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

use crate::sys::text;

/// How much of a kind of file homeostat reads, and how a user raises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// What the file is, for messages: `graph file`, `plugin`, `grants file`.
    pub what: &'static str,
    /// The largest size accepted, in bytes.
    pub bytes: u64,
    /// The flag that raises it, if there is one.
    pub flag: Option<&'static str>,
}

/// Why a file from outside was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{what} {} is {kind}, not a regular file: refused without reading it",
        path.display()
    )]
    NotRegular {
        what: &'static str,
        path: PathBuf,
        /// `a FIFO`, `a character device`, ...
        kind: &'static str,
    },
    #[error(
        "{what} {} is {} ({size} bytes), larger than the cap of {}{}",
        path.display(),
        text::bytes(*size),
        text::bytes(*cap),
        flag.map(|f| format!(" (raise it with {f})")).unwrap_or_default()
    )]
    TooLarge {
        what: &'static str,
        path: PathBuf,
        /// Its size, or (when it grew while read) at least this much.
        size: u64,
        cap: u64,
        flag: Option<&'static str>,
    },
}

impl InputError {
    /// The I/O error behind it, if it is one (e.g. to tell a file that is gone).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            InputError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// `a FIFO`, `a directory`, ... for a file type that is not a regular file.
fn describe(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        FileType::Symlink => "a symbolic link",
        _ => "not a file homeostat knows",
    }
}

/// The whole content of the regular file `path`, at most `cap.bytes` long (see the
/// module's steps). Errors name the file as `cap.what`.
pub fn read_file(path: &Path, cap: &Cap) -> Result<Vec<u8>, InputError> {
    let io = |source: std::io::Error| InputError::Io {
        what: cap.what,
        path: path.to_path_buf(),
        source,
    };
    let check = |st: &rustix::fs::Stat| -> Result<u64, InputError> {
        let t = FileType::from_raw_mode(st.st_mode);
        if t != FileType::RegularFile {
            return Err(InputError::NotRegular {
                what: cap.what,
                path: path.to_path_buf(),
                kind: describe(t),
            });
        }
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if size > cap.bytes {
            return Err(too_large(path, cap, size));
        }
        Ok(size)
    };
    check(&rustix::fs::stat(path).map_err(|e| io(e.into()))?)?;
    let fd: OwnedFd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(e.into()))?;
    let size = check(&rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?)?;
    let file = std::fs::File::from(fd);
    let limit = cap.bytes.saturating_add(1);
    let mut out = Vec::with_capacity(usize::try_from(size.min(limit)).unwrap_or(0));
    file.take(limit).read_to_end(&mut out).map_err(io)?;
    if out.len() as u64 > cap.bytes {
        return Err(too_large(path, cap, out.len() as u64));
    }
    Ok(out)
}

fn too_large(path: &Path, cap: &Cap, size: u64) -> InputError {
    InputError::TooLarge {
        what: cap.what,
        path: path.to_path_buf(),
        size,
        cap: cap.bytes,
        flag: cap.flag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Cap = Cap {
        what: "test file",
        bytes: 1024,
        flag: Some("--max-test-size"),
    };

    #[test]
    fn a_regular_file_within_the_cap_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_file(&p, &CAP).unwrap(), b"hello");
        // Through a link, too: the link's target is what counts.
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert_eq!(read_file(&l, &CAP).unwrap(), b"hello");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = read_file(&p, &CAP).unwrap_err().to_string();
        assert!(
            e.contains("test file") && e.contains("fifo") && e.contains("is a FIFO"),
            "{e}"
        );
    }

    #[test]
    fn devices_and_directories_are_refused() {
        let e = read_file(Path::new("/dev/zero"), &CAP)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/dev/zero is a character device"), "{e}");
        let d = tempfile::tempdir().unwrap();
        let e = read_file(d.path(), &CAP).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        // A link to a device is the device.
        let l = d.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &l).unwrap();
        let e = read_file(&l, &CAP).unwrap_err().to_string();
        assert!(e.contains("is a character device"), "{e}");
    }

    #[test]
    fn a_large_sparse_file_is_refused_by_its_size() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sparse");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(1 << 40).unwrap();
        let e = read_file(&p, &CAP).unwrap_err();
        assert!(matches!(e, InputError::TooLarge { size, .. } if size == 1 << 40));
        let e = e.to_string();
        assert!(
            e.contains("is 1 TiB (1099511627776 bytes), larger than the cap of 1 KiB")
                && e.contains("--max-test-size"),
            "{e}"
        );
    }

    #[test]
    fn at_most_cap_plus_one_bytes_are_read() {
        // /proc files report a size of 0; reading stops one byte past the cap.
        let cap = Cap { bytes: 8, ..CAP };
        let e = read_file(Path::new("/proc/self/status"), &cap).unwrap_err();
        assert!(matches!(e, InputError::TooLarge { size: 9, .. }), "{e}");
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("exact");
        std::fs::write(&p, [b'x'; 8]).unwrap();
        assert_eq!(read_file(&p, &cap).unwrap().len(), 8);
    }

    #[test]
    fn a_missing_file_says_so() {
        let e = read_file(Path::new("/nonexistent/g.yaml"), &CAP).unwrap_err();
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::NotFound));
        assert!(
            e.to_string()
                .contains("cannot read test file /nonexistent/g.yaml")
        );
    }
}
