//! The file system as resources reach it (the `fs` host interface): every call confined to
//! the calling resource's [`Footprint`](crate::sys::footprint::Footprint), and writes that
//! are atomic and durable, group-committed across resources.
//!
//! One file per concern, each with its tests beside it:
//!
//! - `host`: [`FsHost`], the API a resource's calls reach (stat, read, digest, compare,
//!   write, copy, symlink, mkdir, remove, set-attrs, list, user and group ids through
//!   [`crate::sys::ids`]) and which thread each runs on;
//! - `path`: the footprint check;
//! - `walk`: reaching a path without being redirected (no symlink the resource or
//!   another user could have made, none at a path the graph manages, no unsafe
//!   transition from a user's entry to another owner's);
//! - `temp`: temporary files beside their target, named by
//!   [`crate::sys::temp_name`];
//! - `claims`: which resource writes which directory entry (one file, two names);
//! - `edits`: content editing resources staged for a file they share, written at once;
//! - `commit`: the commit thread, which flushes and renames new content into place in
//!   group-committed rounds;
//! - `sweep`: removing the staging files a killed homeostat left behind;
//! - `stat` and `error`: the plain types the WIT mirrors (file type and stat,
//!   attributes, error codes);
//! - [`cache_file`]: atomic writes of homeostat's own cache files (compiled plugins,
//!   plans), outside any footprint.

pub mod cache_file;
mod claims;
mod commit;
mod edits;
mod error;
mod host;
mod path;
#[cfg(test)]
mod proptests;
mod stat;
mod sweep;
mod temp;
#[cfg(test)]
mod testutil;
mod walk;

pub use claims::ConflictWatch;
pub use commit::CommitStats;
pub use error::{ErrorCode, FsError};
pub use host::{FsHost, INLINE_IO_MAX, READ_AT_MAX};
pub use path::{check, stages};
pub use stat::{Attrs, FileStat, FileType};
pub use sweep::Swept;
pub use walk::Managed;
