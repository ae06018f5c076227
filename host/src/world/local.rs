//! The local World: one [`redb`] database file, `world.redb` in the state directory.
//! Every write is its own durable transaction (redb flushes before `commit` returns), so
//! a value written before a crash is there after it. A second homeostat on the same state
//! directory is refused (redb locks the file), with an error that says so.
//!
//! There is no other host here, so leased values are kept like persistent ones until
//! their host retracts them (an export that left the graph is retracted at the next
//! start, see [`super::exports`]).

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::watch;

use super::{Entry, Watchers, WorldError};

/// Every key of the World, with its value.
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("world");

/// The page cache of the local store.
const CACHE_BYTES: usize = 4 << 20;

/// The database file's name in the state directory.
pub const FILE: &str = "world.redb";

/// An embedded World (see the module doc).
pub struct LocalWorld {
    hostname: String,
    path: PathBuf,
    db: Database,
    watchers: Watchers,
}

impl LocalWorld {
    /// Open (or create) the store in the state directory `dir` (created if missing,
    /// mode 0700: `state` values may be private).
    pub fn open(dir: &Path, hostname: &str) -> Result<LocalWorld, WorldError> {
        let path = dir.join(FILE);
        let fail = |message: String| WorldError::Local {
            path: path.display().to_string(),
            message,
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail(format!("cannot create the state directory: {e}")))?;
        }
        // The store holds a host's exports and small values: a few MiB of cache is plenty
        // (redb's default of 1 GiB is reserved as it fills, but sizes its buffers for it).
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => fail(
                    "already in use by another homeostat (give this one its own --prefix, or \
                 --tmp-prefix)"
                        .into(),
                ),
                e => fail(e.to_string()),
            })?;
        // Create the table once, so that reads never meet a missing one (a write
        // transaction at every start would cost a flush).
        let exists = db
            .begin_read()
            .map_err(|e| fail(e.to_string()))?
            .open_table(KEYS)
            .is_ok();
        if !exists {
            let txn = db.begin_write().map_err(|e| fail(e.to_string()))?;
            txn.open_table(KEYS).map_err(|e| fail(e.to_string()))?;
            txn.commit().map_err(|e| fail(e.to_string()))?;
        }
        Ok(LocalWorld {
            hostname: hostname.to_owned(),
            path,
            db,
            watchers: Watchers::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This host's name.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    fn fail(&self, e: impl std::fmt::Display) -> WorldError {
        WorldError::Local {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, WorldError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(KEYS).map_err(|e| self.fail(e))?;
        let value = table.get(key).map_err(|e| self.fail(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Every key under `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Result<Vec<Entry>, WorldError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(KEYS).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(|e| self.fail(e))? {
            let (k, v) = item.map_err(|e| self.fail(e))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Set `key`, durably. Blocks for the flush: call it off the async workers.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<(), WorldError> {
        if self.get(key)?.as_deref() == Some(value) {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        {
            let mut table = txn.open_table(KEYS).map_err(|e| self.fail(e))?;
            table.insert(key, value).map_err(|e| self.fail(e))?;
        }
        txn.commit().map_err(|e| self.fail(e))?;
        self.watchers.changed(Some(key));
        Ok(())
    }

    /// Remove `key`, durably. Blocks for the flush, like [`LocalWorld::put`].
    pub fn delete(&self, key: &str) -> Result<(), WorldError> {
        let txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        let removed = {
            let mut table = txn.open_table(KEYS).map_err(|e| self.fail(e))?;
            table.remove(key).map_err(|e| self.fail(e))?.is_some()
        };
        txn.commit().map_err(|e| self.fail(e))?;
        if removed {
            self.watchers.changed(Some(key));
        }
        Ok(())
    }

    /// See [`super::World::watch`].
    pub fn watch(&self, prefix: &str) -> watch::Receiver<u64> {
        self.watchers.add(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopening_and_a_second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let w = LocalWorld::open(dir.path(), "h1").unwrap();
        w.put("state/h1/file/motd", b"one").unwrap();
        w.put("state/h1/file/zz", b"two").unwrap();
        w.put("statf", b"not under the prefix").unwrap();
        let e = LocalWorld::open(dir.path(), "h1").err().unwrap();
        assert!(e.to_string().contains("already in use"), "{e}");
        drop(w);
        let w = LocalWorld::open(dir.path(), "h1").unwrap();
        let listed: Vec<String> = w
            .list("state/")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(listed, ["state/h1/file/motd", "state/h1/file/zz"]);
        w.delete("state/h1/file/motd").unwrap();
        assert_eq!(w.get("state/h1/file/motd").unwrap(), None);
        assert_eq!(
            w.get("state/h1/file/zz").unwrap().as_deref(),
            Some(&b"two"[..])
        );
    }

    #[test]
    fn an_unchanged_put_moves_no_watch() {
        let dir = tempfile::tempdir().unwrap();
        let w = LocalWorld::open(dir.path(), "h1").unwrap();
        let rx = w.watch("k");
        w.put("k", b"v").unwrap();
        assert!(rx.has_changed().unwrap());
        let mut rx = w.watch("k");
        rx.mark_unchanged();
        w.put("k", b"v").unwrap();
        assert!(!rx.has_changed().unwrap());
        w.delete("absent").unwrap();
        assert!(!rx.has_changed().unwrap());
    }
}
