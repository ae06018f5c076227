//! Why the hub could not start or place a watch.

use std::io;
use std::path::PathBuf;

/// Why a watch could not be started or placed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// inotify could not be initialised (for example `fs.inotify.max_user_instances` reached) or
    /// the hub's control thread could not be started.
    #[error("cannot start the file watcher: {source}")]
    Init {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The inotify watch limit is exhausted.
    #[error(
        "cannot watch directory {} (for {}): inotify watch limit reached; raise the sysctl \
         fs.inotify.max_user_watches (e.g. `sysctl -w fs.inotify.max_user_watches=524288`)",
        dir.display(),
        path.display()
    )]
    WatchLimit {
        /// The subscribed path.
        path: PathBuf,
        /// The directory whose watch could not be added.
        dir: PathBuf,
    },
    /// The process may not read the directory that has to be watched.
    #[error(
        "cannot watch directory {} (for {}): permission denied",
        dir.display(),
        path.display()
    )]
    PermissionDenied {
        /// The subscribed path.
        path: PathBuf,
        /// The directory that could not be watched.
        dir: PathBuf,
    },
    /// Any other failure to place a watch.
    #[error("cannot watch directory {} (for {}): {source}", dir.display(), path.display())]
    Watch {
        /// The subscribed path.
        path: PathBuf,
        /// The directory that could not be watched.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A `/proc` file the kernel signals through `poll` could not be watched (see
    /// [`proc_poll`](crate::sys::proc_poll)).
    #[error("cannot watch {} (through poll): {source}", path.display())]
    Proc {
        /// The subscribed path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A relative path was given and the current directory could not be determined.
    #[error("cannot resolve relative path {}: {source}", path.display())]
    RelativePath {
        /// The path as given.
        path: PathBuf,
        /// The error from reading the current directory.
        #[source]
        source: io::Error,
    },
    /// The hub's control thread is gone (it panicked).
    #[error("the file watch hub has stopped")]
    Closed,
}
