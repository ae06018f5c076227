//! Exported resources in the World: `exported/<to>/<from>/<kind>/<name>` (each part a
//! [`segment`]), the value the resource's params as JSON, leased to the
//! exporting host so that they vanish when it dies. `<to>` is a hostname, or `*` for
//! every host (a resource named `@@NAME`).
//!
//! An [`Exporter`] keeps this host's exports equal to what its graph exports: new and
//! changed ones are written, those that left the graph are retracted (at start too, for
//! what an earlier run of this host left behind). An unchanged export is not written
//! again, except one an earlier run left on its own lease (etcd, after a crash): it is
//! moved to this run's lease, or it would vanish when that lease expires.
//! [`collectable`] lists what a host may collect: everything exported to it or to `*`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{Lifetime, World, WorldError, segment, unsegment};

/// The prefix of every export.
pub const PREFIX: &str = "exported/";

/// The target of an export to every host.
pub const EVERYWHERE: &str = "*";

/// One exported resource, as a collector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// The host it is exported to (or [`EVERYWHERE`]).
    pub to: String,
    /// The host that exports it.
    pub from: String,
    pub kind: String,
    pub name: String,
    /// Its params, as the exporter's graph wrote them.
    pub params: Map<String, Value>,
}

impl Export {
    /// Its key in the World.
    pub fn key(&self) -> String {
        key(&self.to, &self.from, &self.kind, &self.name)
    }
}

/// The key of an export.
pub fn key(to: &str, from: &str, kind: &str, name: &str) -> String {
    format!(
        "{PREFIX}{}/{}/{}/{}",
        segment(to),
        segment(from),
        segment(kind),
        segment(name)
    )
}

/// The export stored under `key` (relative to the World's prefix) with `value`; `None`
/// for a key or value that is not one (written by something else).
pub fn parse(key: &str, value: &[u8]) -> Option<Export> {
    let rest = key.strip_prefix(PREFIX)?;
    let mut parts = rest.split('/');
    let (to, from, kind, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let params: Map<String, Value> = serde_json::from_slice(value).ok()?;
    Some(Export {
        to: unsegment(to),
        from: unsegment(from),
        kind: unsegment(kind),
        name: unsegment(name),
        params,
    })
}

/// Everything `host` may collect: the exports to it and to every host, in key order.
/// Entries that do not parse are skipped with a warning.
pub async fn collectable(world: &World, host: &str) -> Result<Vec<Export>, WorldError> {
    let mut out = Vec::new();
    for to in [host, EVERYWHERE] {
        for (key, value) in world.list(&format!("{PREFIX}{}/", segment(to))).await? {
            match parse(&key, &value) {
                Some(e) => out.push(e),
                None => tracing::warn!("world: {key} is not an exported resource; ignored"),
            }
        }
    }
    Ok(out)
}

/// Keeps this host's exports in the World equal to its graph's.
pub struct Exporter {
    world: World,
    /// What this host has written: key → value.
    written: BTreeMap<String, Vec<u8>>,
    /// Whether what an earlier run left has been looked for.
    swept: bool,
    /// Keys an earlier run wrote on a lease of its own (etcd): written again even when
    /// unchanged, so that they move to this run's lease.
    earlier_lease: BTreeSet<String>,
}

impl Exporter {
    pub fn new(world: World) -> Exporter {
        Exporter {
            world,
            written: BTreeMap::new(),
            swept: false,
            earlier_lease: BTreeSet::new(),
        }
    }

    /// Make this host's exports exactly `exports` (whose `from` is this host): write the
    /// new and changed ones, retract the rest. Returns how many keys were written and
    /// retracted.
    pub async fn sync(&mut self, exports: &[Export]) -> Result<(usize, usize), WorldError> {
        let mut wanted: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for e in exports {
            let value = serde_json::to_vec(&e.params).expect("a JSON map always serialises");
            wanted.insert(e.key(), value);
        }
        if !self.swept {
            // What an earlier run of this host exported and this graph may no longer.
            // In the local store: all of `exported/`. In etcd: under
            // `exported/<to>/<me>/` of every host it exports to now, every live host and
            // `*`, never all of `exported/` (a host of a cluster with per-host rights
            // may read only what it may collect, and its own); an export of an earlier
            // run to a host not found so goes with that run's lease.
            let me = self.world.hostname().to_owned();
            let mut under = BTreeSet::new();
            if self.world.is_shared() {
                let mut to: BTreeSet<String> = exports.iter().map(|e| e.to.clone()).collect();
                to.insert(EVERYWHERE.to_owned());
                to.extend(super::converged::hosts(&self.world).await?.into_keys());
                for to in to {
                    under.insert(format!("{PREFIX}{}/{}/", segment(&to), segment(&me)));
                }
            } else {
                under.insert(PREFIX.to_owned());
            }
            for under in under {
                let listed = match self.world.list(&under).await {
                    // Exports to a host this one may not export to (per-host rights):
                    // it has none there.
                    Err(e) if e.to_string().contains("permission denied") => Vec::new(),
                    listed => listed?,
                };
                for (key, value) in listed {
                    if parse(&key, &value).is_some_and(|e| e.from == me) {
                        if self.world.is_shared() {
                            self.earlier_lease.insert(key.clone());
                        }
                        self.written.insert(key, value);
                    }
                }
            }
            self.swept = true;
        }
        let mut retracted = 0;
        for key in self.written.keys() {
            if !wanted.contains_key(key) {
                self.world.delete(key).await?;
                retracted += 1;
            }
        }
        self.written.retain(|k, _| wanted.contains_key(k));
        let mut written = 0;
        for (key, value) in wanted {
            if self.written.get(&key) != Some(&value) || self.earlier_lease.contains(&key) {
                self.world.put(&key, &value, Lifetime::Leased).await?;
                self.earlier_lease.remove(&key);
                written += 1;
            }
            self.written.insert(key, value);
        }
        Ok((written, retracted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(to: &str, from: &str, name: &str, path: &str) -> Export {
        let mut params = Map::new();
        params.insert("path".into(), Value::String(path.into()));
        Export {
            to: to.into(),
            from: from.into(),
            kind: "file".into(),
            name: name.into(),
            params,
        }
    }

    #[test]
    fn keys_parse_back_whatever_the_names_hold() {
        let e = export("*", "web/1", "/etc/motd", "/etc/motd");
        let key = e.key();
        assert_eq!(key, "exported/*/web%2F1/file/%2Fetc%2Fmotd");
        let value = serde_json::to_vec(&e.params).unwrap();
        assert_eq!(parse(&key, &value), Some(e));
        assert_eq!(parse("exported/a/b/c", b"{}"), None);
        assert_eq!(parse("exported/a/b/c/d/e", b"{}"), None);
        assert_eq!(parse("exported/a/b/c/d", b"not json"), None);
    }

    #[tokio::test]
    async fn the_exporter_writes_changes_and_retracts_what_left_even_from_an_earlier_run() {
        let dir = tempfile::tempdir().unwrap();
        let world = World::Local(std::sync::Arc::new(
            super::super::local::LocalWorld::open(dir.path(), "h1").unwrap(),
        ));
        let mut ex = Exporter::new(world.clone());
        let a = export("*", "h1", "a", "/tmp/a");
        let b = export("h2", "h1", "b", "/tmp/b");
        assert_eq!(ex.sync(&[a.clone(), b.clone()]).await.unwrap(), (2, 0));
        assert_eq!(ex.sync(&[a.clone(), b.clone()]).await.unwrap(), (0, 0));
        // Someone else's export is never touched.
        world
            .put(&export("*", "h9", "z", "/z").key(), b"{}", Lifetime::Leased)
            .await
            .unwrap();
        // A new run of h1 whose graph exports only `a`.
        let mut ex = Exporter::new(world.clone());
        assert_eq!(ex.sync(std::slice::from_ref(&a)).await.unwrap(), (0, 1));
        assert_eq!(collectable(&world, "h2").await.unwrap().len(), 2);
        assert_eq!(collectable(&world, "h3").await.unwrap(), {
            let mut z = export("*", "h9", "z", "/z");
            z.params = Map::new();
            vec![a, z]
        });
    }
}
