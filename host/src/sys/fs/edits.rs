//! Shared edits of one file: the content editing resources (`line`, `ini`: kinds whose
//! manifest says `edits`) wrote but that is not on disk yet.
//!
//! Several editing resources may hold one path (their grants are `shared`). The engine
//! runs their check-applies one at a time (`engine::edits`); each reads the file and
//! writes it whole, as any plugin does. A write of a shared path does not go to disk: it
//! is *staged* here, and the next editor's read (and stat, digest, compare) of the path
//! sees the staged content, so its edit lands on top. Once no other editor of the file
//! is ready to run, the engine flushes the staged content with one atomic, durable write
//! ([`FsHost::flush_edits`](super::FsHost::flush_edits)): ten `line` resources on one
//! file converge with one rewrite, not ten.
//!
//! Editors only read and replace content. Removing the file, making it a link or a
//! directory and setting its attributes outside a write belong to the resource that
//! manages the whole file (a `file` with no `content`), so `fs` refuses them on a shared
//! path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::error::{ErrorCode, FsError};
use super::stat::Attrs;

/// Content staged for a shared path, and the attributes its writers asked for.
#[derive(Debug, Clone)]
pub(super) struct StagedEdit {
    pub(super) data: Vec<u8>,
    pub(super) attrs: Attrs,
}

/// The staged content of every shared path (a handful at a time: only while their
/// editors run).
#[derive(Default)]
pub(super) struct Edits {
    /// Shared, so that a read hands out the content without copying the map's entry.
    staged: Mutex<HashMap<PathBuf, Arc<StagedEdit>>>,
}

impl Edits {
    /// The content staged for `path`, if any.
    pub(super) fn get(&self, path: &Path) -> Option<Arc<StagedEdit>> {
        self.lock().get(path).cloned()
    }

    /// Stage `data` for `path`. Attributes a later write leaves unset keep what an
    /// earlier one asked for.
    pub(super) fn stage(&self, path: PathBuf, data: Vec<u8>, attrs: Attrs) {
        let mut staged = self.lock();
        let attrs = match staged.get(&path) {
            Some(before) => Attrs {
                mode: attrs.mode.or(before.attrs.mode),
                uid: attrs.uid.or(before.attrs.uid),
                gid: attrs.gid.or(before.attrs.gid),
            },
            None => attrs,
        };
        staged.insert(path, Arc::new(StagedEdit { data, attrs }));
    }

    /// Take what is staged for `path`, to write it.
    pub(super) fn take(&self, path: &Path) -> Option<Arc<StagedEdit>> {
        self.lock().remove(path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<StagedEdit>>> {
        self.staged.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The error for a call an editing resource may not make on its shared file (`what`: the
/// call, e.g. `remove`).
pub(super) fn refused(what: &str, path: &Path) -> FsError {
    FsError::new(
        ErrorCode::NotAllowed,
        format!(
            "cannot {what} `{}`: the file is shared by editing resources, which may only read \
             it and replace its content (its existence, type and attributes belong to a `file` \
             resource)",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_write_replaces_content_and_keeps_earlier_attrs() {
        let e = Edits::default();
        let p = PathBuf::from("/etc/x");
        assert!(e.get(&p).is_none());
        e.stage(
            p.clone(),
            b"a\n".to_vec(),
            Attrs {
                mode: Some(0o600),
                ..Attrs::default()
            },
        );
        e.stage(
            p.clone(),
            b"a\nb\n".to_vec(),
            Attrs {
                uid: Some(0),
                ..Attrs::default()
            },
        );
        let got = e.get(&p).unwrap();
        assert_eq!(got.data, b"a\nb\n");
        assert_eq!(
            got.attrs,
            Attrs {
                mode: Some(0o600),
                uid: Some(0),
                gid: None
            }
        );
        assert!(e.take(&p).is_some());
        assert!(e.get(&p).is_none() && e.take(&p).is_none());
    }
}
