//! How an `fs` call fails (WIT `fs.error`): a code the guest can branch on and a message
//! that names the path and, when the operating system refused, its own description.

use std::fmt;
use std::io;
use std::path::Path;

use rustix::io::Errno;

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

impl FsError {
    pub(super) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        FsError {
            code,
            message: message.into(),
        }
    }

    /// `cannot {what} `{path}`: {os error}`.
    pub(super) fn os(what: &str, path: &Path, err: Errno) -> Self {
        FsError::new(
            code_for(err),
            format!("cannot {what} `{}`: {}", path.display(), os_text(err)),
        )
    }

    pub(super) fn io(what: &str, path: &Path, err: &io::Error) -> Self {
        let code = err.raw_os_error().map_or(ErrorCode::Other, |raw| {
            code_for(Errno::from_raw_os_error(raw))
        });
        FsError::new(code, format!("cannot {what} `{}`: {err}", path.display()))
    }

    pub(super) fn internal(what: &str, path: &Path, detail: impl fmt::Display) -> Self {
        FsError::new(
            ErrorCode::Other,
            format!("cannot {what} `{}`: {detail}", path.display()),
        )
    }
}

pub(super) fn code_for(err: Errno) -> ErrorCode {
    match err {
        Errno::NOENT => ErrorCode::NotFound,
        Errno::ACCESS | Errno::PERM | Errno::ROFS => ErrorCode::PermissionDenied,
        Errno::ISDIR | Errno::NOTDIR | Errno::LOOP => ErrorCode::WrongType,
        Errno::NOTEMPTY => ErrorCode::NotEmpty,
        _ => ErrorCode::Other,
    }
}

/// The operating system's description, e.g. `No such file or directory (os error 2)`.
pub(super) fn os_text(err: Errno) -> io::Error {
    io::Error::from_raw_os_error(err.raw_os_error())
}

/// An unknown or invalid name is `unknown-id`; a failed lookup is `other`.
impl From<crate::sys::ids::IdError> for FsError {
    fn from(e: crate::sys::ids::IdError) -> Self {
        use crate::sys::ids::IdError;
        let code = match e {
            IdError::Unknown { .. } | IdError::Invalid { .. } => ErrorCode::UnknownId,
            IdError::Lookup { .. } => ErrorCode::Other,
        };
        FsError::new(code, e.to_string())
    }
}
