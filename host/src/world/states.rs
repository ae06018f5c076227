//! The plugins' `state` values: one text per resource, read and written by the `state`
//! host interface, kept at `state/<host>/<kind>/<name>` in the World so they survive a
//! restart (in the local store, and in etcd).
//!
//! Reads come from memory (the host's values are read once at start); writes go to
//! memory at once and to the World behind, in order, on a task of their own, so a
//! plugin call never waits for a flush or a round trip. A value is dropped when its
//! resource leaves the graph, but not when the engine stops ([`States::stopping`]):
//! that is what lets it survive the restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::{mpsc, oneshot};

use super::{Lifetime, World, WorldError, segment, unsegment};

/// The prefix of every host's values.
pub const PREFIX: &str = "state/";

/// `kind`, `name`.
type Key = (String, String);

enum Op {
    Put(String, String),
    Delete(String),
    Flush(oneshot::Sender<()>),
}

/// The values, shared by every plugin of a run (see the module doc).
#[derive(Default)]
pub struct States {
    values: Mutex<HashMap<Key, String>>,
    /// Where writes go, when persisted.
    writer: OnceLock<(String, mpsc::UnboundedSender<Op>)>,
    stopping: AtomicBool,
}

impl std::fmt::Debug for States {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("States")
            .field("persisted", &self.writer.get().is_some())
            .finish_non_exhaustive()
    }
}

impl States {
    /// Values kept in memory only (`validate`, tests).
    pub fn in_memory() -> Arc<States> {
        Arc::new(States::default())
    }

    /// This host's values from `world`, with every change written back to it.
    pub async fn load(world: &World) -> Result<Arc<States>, WorldError> {
        let states = States::in_memory();
        states.attach(world).await?;
        Ok(states)
    }

    /// From now on keep the values in `world`: read this host's values from it (they
    /// replace those in memory) and write every change back. Once per run; a second call
    /// changes nothing.
    pub async fn attach(&self, world: &World) -> Result<(), WorldError> {
        if self.writer.get().is_some() {
            return Ok(());
        }
        let prefix = format!("{PREFIX}{}/", segment(world.hostname()));
        let mut values = HashMap::new();
        for (key, value) in world.list(&prefix).await? {
            let rest = &key[prefix.len()..];
            let Some((kind, name)) = rest.split_once('/') else {
                continue;
            };
            let text = String::from_utf8_lossy(&value).into_owned();
            values.insert((unsegment(kind), unsegment(name)), text);
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let writer_world = world.clone();
        tokio::spawn(async move {
            while let Some(op) = rx.recv().await {
                let result = match op {
                    Op::Put(key, value) => {
                        writer_world
                            .put(&key, value.as_bytes(), Lifetime::Persistent)
                            .await
                    }
                    Op::Delete(key) => writer_world.delete(&key).await,
                    Op::Flush(done) => {
                        let _ = done.send(());
                        Ok(())
                    }
                };
                if let Err(e) = result {
                    tracing::warn!("a plugin's state value was not saved: {e}");
                }
            }
        });
        self.values().extend(values);
        let _ = self.writer.set((prefix, tx));
        Ok(())
    }

    fn values(&self) -> std::sync::MutexGuard<'_, HashMap<Key, String>> {
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn key(prefix: &str, kind: &str, name: &str) -> String {
        format!("{prefix}{}/{}", segment(kind), segment(name))
    }

    /// The value of `kind[name]`.
    pub fn get(&self, kind: &str, name: &str) -> Option<String> {
        self.values()
            .get(&(kind.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Set the value of `kind[name]`; returns whether it changed.
    pub fn set(&self, kind: &str, name: &str, value: String) -> bool {
        let old = self
            .values()
            .insert((kind.to_owned(), name.to_owned()), value.clone());
        let changed = old.as_deref() != Some(value.as_str());
        if changed && let Some((prefix, tx)) = self.writer.get() {
            let _ = tx.send(Op::Put(Self::key(prefix, kind, name), value));
        }
        changed
    }

    /// `kind[name]` left the graph (its cleanup ran): its value goes, in the World too
    /// unless the engine is stopping.
    pub fn forget(&self, kind: &str, name: &str) {
        let removed = self
            .values()
            .remove(&(kind.to_owned(), name.to_owned()))
            .is_some();
        if removed
            && !self.stopping.load(Ordering::Acquire)
            && let Some((prefix, tx)) = self.writer.get()
        {
            let _ = tx.send(Op::Delete(Self::key(prefix, kind, name)));
        }
    }

    /// The engine is stopping: the cleanups that follow keep the values in the World.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Wait until every write so far has reached the World.
    pub async fn flush(&self) {
        if let Some((_, tx)) = self.writer.get() {
            let (done, wait) = oneshot::channel();
            if tx.send(Op::Flush(done)).is_ok() {
                let _ = wait.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_survive_a_stop_but_not_leaving_the_graph() {
        let dir = tempfile::tempdir().unwrap();
        let world = World::Local(Arc::new(
            super::super::local::LocalWorld::open(dir.path(), "h1").unwrap(),
        ));
        let states = States::load(&world).await.unwrap();
        assert!(states.set("svc", "web/1", "up".into()));
        assert!(!states.set("svc", "web/1", "up".into()));
        states.set("svc", "db", "down".into());
        states.forget("svc", "db");
        states.stopping();
        states.forget("svc", "web/1");
        states.flush().await;
        let again = States::load(&world).await.unwrap();
        assert_eq!(again.get("svc", "web/1").as_deref(), Some("up"));
        assert_eq!(again.get("svc", "db"), None);
    }
}
