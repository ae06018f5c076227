//! The World: the store every host-to-host feature goes through. Key-value with watch,
//! values that live as long as their host ("leased"), exported resources
//! ([`exports`]), the converged state of every host ([`converged`]) and the plugins'
//! `state` values ([`states`]).
//!
//! Two backends behind one type, [`World`]:
//! - [`local`] (the default): an embedded [`redb`] database in the state directory
//!   (`--prefix`), so `state` values and the host's own exports survive a restart, and
//!   one machine needs nothing but the binary. Only this host writes it.
//! - [`etcd`]: a real etcd cluster (`--seeds`, or the one-member etcd that
//!   [`crate::cluster`] runs), every key under one prefix (`/homeostat/` by default).
//!
//! Keys are written here relative to that prefix; `docs/clustering.md` lists them all:
//!
//! | key | value | lives |
//! |---|---|---|
//! | `hosts/<host>` | JSON: its homeostat version and process id | leased |
//! | `converged/<host>` | JSON: `busy`, `converged` or `failed` | leased |
//! | `exported/<to>/<from>/<kind>/<name>` | JSON: the resource's params | leased |
//! | `state/<host>/<kind>/<name>` | a plugin's `state` value (text) | until the resource leaves the graph |
//! | `values/<host>/<key>` | a host's value of a `world` key (WIT 0.2, the `kv` resource) | leased |
//!
//! A *leased* value is attached to its host's etcd lease: when the host dies (or loses
//! etcd for longer than the lease's TTL) it disappears by itself. In the local store,
//! where there is no other host, it is kept until the host retracts it.
//!
//! A watch ([`World::watch`]) says *that* something under a prefix changed, coalesced, and
//! the watcher reads the prefix again: simple to get right across reconnects (a watch
//! that was cut and comes back reports a change, whatever it missed), and the prefixes
//! watched are small (one host's exports, the hosts' converged states).

pub mod converged;
pub mod etcd;
pub mod exports;
pub mod local;
pub mod states;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How long a value written with [`Lifetime::Leased`] outlives its host in etcd: the
/// lease's TTL. A host that dies is noticed by the others after at most this long.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// How long a written value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Until it is deleted.
    Persistent,
    /// Until it is deleted or its host dies (its etcd lease expires).
    Leased,
}

/// Why the World could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WorldError {
    /// The local store could not be opened, read or written.
    #[error("local store {path}: {message}")]
    Local { path: String, message: String },
    /// etcd refused the request or could not be reached.
    #[error("etcd at {endpoints}: {message}")]
    Etcd { endpoints: String, message: String },
}

/// One key and its value.
pub type Entry = (String, Vec<u8>);

/// The store, in one of its backends. Cheap to clone: every clone is the same store.
#[derive(Clone)]
pub enum World {
    /// Embedded, persisted in the state directory.
    Local(Arc<local::LocalWorld>),
    /// A real etcd cluster.
    Etcd(Arc<etcd::EtcdWorld>),
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            World::Local(l) => write!(f, "World::Local({})", l.path().display()),
            World::Etcd(e) => write!(f, "World::Etcd({})", e.endpoints()),
        }
    }
}

impl World {
    /// This host's name, as the other hosts see it.
    pub fn hostname(&self) -> &str {
        match self {
            World::Local(l) => l.hostname(),
            World::Etcd(e) => e.hostname(),
        }
    }

    /// Whether other hosts may share this store (etcd): cluster-wide features (converged
    /// across hosts) only wait for others then.
    pub fn is_shared(&self) -> bool {
        matches!(self, World::Etcd(_))
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, WorldError> {
        match self {
            World::Local(l) => l.get(key),
            World::Etcd(e) => e.get(key).await,
        }
    }

    /// Every key under `prefix` with its value, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>, WorldError> {
        match self {
            World::Local(l) => l.list(prefix),
            World::Etcd(e) => e.list(prefix).await,
        }
    }

    /// Set `key` to `value` for `lifetime`.
    pub async fn put(&self, key: &str, value: &[u8], lifetime: Lifetime) -> Result<(), WorldError> {
        match self {
            World::Local(l) => {
                let (l, key, value) = (l.clone(), key.to_owned(), value.to_vec());
                blocking(move || l.put(&key, &value)).await
            }
            World::Etcd(e) => e.put(key, value, lifetime).await,
        }
    }

    /// Remove `key` (nothing happens if it is absent).
    pub async fn delete(&self, key: &str) -> Result<(), WorldError> {
        match self {
            World::Local(l) => {
                let (l, key) = (l.clone(), key.to_owned());
                blocking(move || l.delete(&key)).await
            }
            World::Etcd(e) => e.delete(key).await,
        }
    }

    /// A receiver whose value moves whenever something under `prefix` changes (and once
    /// after a watch that was cut is re-established). Coalesced: a burst of changes may
    /// move it once; read the prefix again after it moved.
    pub fn watch(&self, prefix: &str) -> watch::Receiver<u64> {
        match self {
            World::Local(l) => l.watch(prefix),
            World::Etcd(e) => e.watch(prefix),
        }
    }

    /// Remove what this host leased and release its lease (a clean stop: the other hosts
    /// see its exports go at once instead of after the lease's TTL). Persistent values
    /// stay.
    pub async fn close(&self) {
        match self {
            World::Local(_) => {}
            World::Etcd(e) => e.close().await,
        }
    }
}

/// The prefix of the plugins' `world` values (WIT 0.2): `values/<host>/<key>`. The
/// writer comes first, so that one prefix holds everything a host may write (etcd's
/// rights are key ranges, see [`crate::cluster::rbac`]); a reader of one key lists
/// [`VALUES`] and keeps that key's entries ([`parse_value_key`]).
pub const VALUES: &str = "values/";

/// The key of `host`'s value of the `world` key `key`: `values/<host>/<key>`.
pub fn value_of(key: &str, host: &str) -> String {
    format!("{VALUES}{}/{}", segment(host), segment(key))
}

/// The host and `world` key of a key under [`VALUES`].
pub fn parse_value_key(full: &str) -> Option<(String, String)> {
    let (host, key) = full.strip_prefix(VALUES)?.split_once('/')?;
    (!key.contains('/')).then(|| (unsegment(host), unsegment(key)))
}

/// Run a local store's write (which waits for its flush) off the async workers.
async fn blocking(
    write: impl FnOnce() -> Result<(), WorldError> + Send + 'static,
) -> Result<(), WorldError> {
    tokio::task::spawn_blocking(write)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// One path segment of a key made from a name that may hold anything: `/` and `%` are
/// percent-encoded, so `exported/<to>/<from>/<kind>/<name>` always splits back into its
/// five parts, whatever the name holds.
pub fn segment(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.contains(['/', '%']) {
        return name.into();
    }
    name.replace('%', "%25").replace('/', "%2F").into()
}

/// The name a [`segment`] was made from.
pub fn unsegment(segment: &str) -> String {
    segment.replace("%2F", "/").replace("%25", "%")
}

/// Watch senders by prefix: a change to a key moves every watch whose prefix it has.
#[derive(Default)]
pub(crate) struct Watchers {
    senders: std::sync::Mutex<Vec<(String, watch::Sender<u64>)>>,
}

impl Watchers {
    /// A new watch of `prefix`.
    pub(crate) fn add(&self, prefix: &str) -> watch::Receiver<u64> {
        let (tx, rx) = watch::channel(0);
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        senders.retain(|(_, s)| !s.is_closed());
        senders.push((prefix.to_owned(), tx));
        rx
    }

    /// `key` changed (or, with `None`, everything may have: a reconnect).
    pub(crate) fn changed(&self, key: Option<&str>) {
        let senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        for (prefix, tx) in senders.iter() {
            if key.is_none_or(|k| k.starts_with(prefix.as_str())) {
                tx.send_modify(|n| *n += 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_never_hold_a_slash() {
        for name in ["motd", "/etc/motd", "a%2Fb", "%", "", "x/y%z"] {
            let s = segment(name);
            assert!(!s.contains('/'), "{s}");
            assert_eq!(unsegment(&s), name);
        }
    }

    #[tokio::test]
    async fn a_watch_moves_for_keys_under_its_prefix_only() {
        let w = Watchers::default();
        let mut exports = w.add("exported/h1/");
        let mut all = w.add("");
        w.changed(Some("converged/h1"));
        assert!(!exports.has_changed().unwrap());
        assert!(all.has_changed().unwrap());
        all.mark_unchanged();
        w.changed(Some("exported/h1/h2/file/motd"));
        assert!(exports.has_changed().unwrap());
        w.changed(None);
        assert!(all.has_changed().unwrap());
        exports.changed().await.unwrap();
    }
}
