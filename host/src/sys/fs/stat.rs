//! What an entry is, as `lstat` tells it (WIT `file-type`, `file-stat`), and the owner and
//! mode a write or `set-attrs` asks for (WIT `attrs`), with the small conversions between
//! them and `rustix`'s raw `stat`.

use std::path::Path;

use rustix::fs::Mode;

use super::error::{ErrorCode, FsError};

/// Permission bits, including setuid, setgid and sticky.
pub(super) const MODE_MASK: u32 = 0o7777;

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

pub(super) fn kind_of(st: &rustix::fs::Stat) -> FileType {
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::RegularFile => FileType::File,
        rustix::fs::FileType::Directory => FileType::Directory,
        rustix::fs::FileType::Symlink => FileType::Symlink,
        _ => FileType::Other,
    }
}

#[allow(
    clippy::unnecessary_cast,
    reason = "the field widths of `stat` differ between architectures"
)]
pub(super) fn file_stat(st: &rustix::fs::Stat) -> FileStat {
    FileStat {
        file_type: kind_of(st),
        size: u64::try_from(st.st_size).unwrap_or(0),
        mode: (st.st_mode as u32) & MODE_MASK,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
    }
}

/// `(st_dev, st_ino)`: identifies a directory (and its file system by the first half).
#[allow(
    clippy::unnecessary_cast,
    reason = "the field widths of `stat` differ between architectures"
)]
pub(super) fn dev_ino(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

pub(super) fn describe_kind(kind: FileType) -> &'static str {
    match kind {
        FileType::File => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Other => "a special file",
    }
}

pub(super) fn wrong_type(path: &Path, kind: FileType, wanted: &str) -> FsError {
    FsError::new(
        ErrorCode::WrongType,
        format!(
            "`{}` is {}, not {wanted}",
            path.display(),
            describe_kind(kind)
        ),
    )
}

pub(super) fn to_mode(mode: u32) -> Mode {
    Mode::from_bits_retain((mode & MODE_MASK) as rustix::fs::RawMode)
}
