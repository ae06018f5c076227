//! The World on a real etcd cluster ([`etcd_client`], tested against Debian's etcd 3.4).
//! Every key is written under one prefix (`/homeostat/` by default), so one etcd can
//! serve other users too.
//!
//! **Leased values.** The host holds one lease (TTL [`super::DEFAULT_LEASE_TTL`] unless
//! set), kept alive every third of its TTL by a task. Leased values are also remembered
//! here: when the lease is lost (etcd was unreachable for longer than the TTL, or restarted
//! without its data), a new lease is granted and every leased value is written again, so a
//! host that comes back is seen again without a restart.
//!
//! **Watches** run on their own task each, re-established with a backoff when the
//! connection breaks; every (re-)establishment counts as a change, so the watcher reads
//! its prefix again and misses nothing that happened while the watch was down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, DeleteOptions, GetOptions, PutOptions, WatchOptions};
use tokio::sync::watch;

use super::{Entry, Lifetime, WorldError};

/// Longest wait between two attempts at a broken watch or keep-alive.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A World on etcd (see the module doc).
pub struct EtcdWorld {
    hostname: String,
    endpoints: String,
    prefix: String,
    client: Client,
    ttl: Duration,
    /// The current lease, and the leased values to write again under a new one.
    lease: Arc<Mutex<Lease>>,
    keeper: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Lease {
    id: i64,
    values: BTreeMap<String, Vec<u8>>,
}

impl EtcdWorld {
    /// Connect to the etcd cluster at `endpoints` (`http://host:port` each) and take a
    /// lease of `ttl`. Fails (does not retry) when no endpoint answers within a few
    /// seconds; the caller retries with a backoff.
    pub async fn connect(
        hostname: &str,
        endpoints: &[String],
        prefix: &str,
        ttl: Duration,
    ) -> Result<EtcdWorld, WorldError> {
        let joined = endpoints.join(",");
        let fail = |message: String| WorldError::Etcd {
            endpoints: joined.clone(),
            message,
        };
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5));
        let mut client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| fail(describe(&e)))?;
        // Connecting is lazy: ask something, so an unreachable etcd is an error here.
        let ttl_secs = ttl.as_secs().max(1) as i64;
        let granted = tokio::time::timeout(REQUEST_TIMEOUT, client.lease_grant(ttl_secs, None))
            .await
            .map_err(|_| fail("no answer within 5 s".into()))?
            .map_err(|e| fail(describe(&e)))?;
        let lease = Arc::new(Mutex::new(Lease {
            id: granted.id(),
            values: BTreeMap::new(),
        }));
        let keeper = tokio::spawn(keep_alive(
            client.clone(),
            lease.clone(),
            ttl,
            prefix.to_owned(),
            joined.clone(),
        ));
        Ok(EtcdWorld {
            hostname: hostname.to_owned(),
            endpoints: joined,
            prefix: prefix.to_owned(),
            client,
            ttl,
            lease,
            keeper,
        })
    }

    /// This host's name.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The endpoints, comma-separated, for messages.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// The lease's TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn fail(&self, e: &etcd_client::Error) -> WorldError {
        WorldError::Etcd {
            endpoints: self.endpoints.clone(),
            message: describe(e),
        }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn lease(&self) -> std::sync::MutexGuard<'_, Lease> {
        self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, WorldError> {
        let mut c = self.client.clone();
        let resp = c
            .get(self.full(key), None)
            .await
            .map_err(|e| self.fail(&e))?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Every key under `prefix`, in key order, relative to the World's prefix.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>, WorldError> {
        let mut c = self.client.clone();
        let resp = c
            .get(self.full(prefix), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.fail(&e))?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                let key = kv.key_str().ok()?.strip_prefix(&self.prefix)?;
                Some((key.to_owned(), kv.value().to_vec()))
            })
            .collect())
    }

    /// Set `key`; a leased value is attached to this host's lease.
    pub async fn put(&self, key: &str, value: &[u8], lifetime: Lifetime) -> Result<(), WorldError> {
        let options = match lifetime {
            Lifetime::Persistent => None,
            Lifetime::Leased => {
                let mut lease = self.lease();
                lease.values.insert(key.to_owned(), value.to_vec());
                Some(PutOptions::new().with_lease(lease.id))
            }
        };
        let mut c = self.client.clone();
        c.put(self.full(key), value, options)
            .await
            .map_err(|e| self.fail(&e))?;
        Ok(())
    }

    /// Remove `key`.
    pub async fn delete(&self, key: &str) -> Result<(), WorldError> {
        self.lease().values.remove(key);
        let mut c = self.client.clone();
        c.delete(self.full(key), None::<DeleteOptions>)
            .await
            .map_err(|e| self.fail(&e))?;
        Ok(())
    }

    /// See [`super::World::watch`].
    pub fn watch(&self, prefix: &str) -> watch::Receiver<u64> {
        let (tx, rx) = watch::channel(0);
        tokio::spawn(watch_prefix(
            self.client.clone(),
            self.full(prefix),
            self.endpoints.clone(),
            tx,
        ));
        rx
    }

    /// Stop keeping the lease alive and revoke it: every leased value goes at once.
    pub async fn close(&self) {
        self.keeper.abort();
        let id = self.lease().id;
        let mut c = self.client.clone();
        if let Err(e) = tokio::time::timeout(Duration::from_secs(2), c.lease_revoke(id)).await {
            tracing::debug!("etcd: revoking the lease at stop: {e}");
        }
    }
}

impl Drop for EtcdWorld {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// An etcd error in a line a user can act on (the gRPC status's message, not its debug
/// form).
fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        e => e.to_string(),
    }
}

/// Keep the lease alive; when it is lost, take a new one and write the leased values
/// again under it.
async fn keep_alive(
    client: Client,
    lease: Arc<Mutex<Lease>>,
    ttl: Duration,
    prefix: String,
    endpoints: String,
) {
    let every = (ttl / 3).max(Duration::from_millis(300));
    let mut backoff = Duration::from_millis(200);
    let mut reported = false;
    loop {
        let id = lease.lock().unwrap_or_else(PoisonError::into_inner).id;
        let mut c = client.clone();
        let alive = async {
            let (mut keeper, mut stream) = c.lease_keep_alive(id).await?;
            loop {
                keeper.keep_alive().await?;
                match stream.message().await? {
                    Some(r) if r.ttl() > 0 => {}
                    // The lease expired (or etcd lost it): a new one is needed.
                    _ => return Ok::<bool, etcd_client::Error>(false),
                }
                tokio::time::sleep(every).await;
            }
        };
        match alive.await {
            Ok(_) => {
                // Lost: take a new lease and put the leased values back under it.
                let mut c = client.clone();
                let ttl_secs = ttl.as_secs().max(1) as i64;
                match c.lease_grant(ttl_secs, None).await {
                    Ok(granted) => {
                        let values = {
                            let mut l = lease.lock().unwrap_or_else(PoisonError::into_inner);
                            l.id = granted.id();
                            l.values.clone()
                        };
                        tracing::warn!(
                            "etcd: this host's lease had expired; took a new one and wrote its \
                             {} leased keys again",
                            values.len()
                        );
                        for (key, value) in values {
                            let options = PutOptions::new().with_lease(granted.id());
                            if let Err(e) =
                                c.put(format!("{prefix}{key}"), value, Some(options)).await
                            {
                                tracing::warn!("etcd: writing {key} again: {}", describe(&e));
                            }
                        }
                        backoff = Duration::from_millis(200);
                        reported = false;
                        continue;
                    }
                    Err(e) => {
                        if !reported {
                            tracing::warn!(
                                "etcd at {endpoints}: cannot renew this host's lease: {}",
                                describe(&e)
                            );
                            reported = true;
                        }
                    }
                }
            }
            Err(e) => {
                if !reported {
                    tracing::warn!(
                        "etcd at {endpoints}: keeping this host's lease alive: {}; retrying",
                        describe(&e)
                    );
                    reported = true;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Watch `prefix` (a full key) until every receiver of `tx` is gone.
async fn watch_prefix(client: Client, prefix: String, endpoints: String, tx: watch::Sender<u64>) {
    let mut backoff = Duration::from_millis(200);
    let mut reported = false;
    let bump = |tx: &watch::Sender<u64>| tx.send_modify(|n| *n += 1);
    let run = async {
        loop {
            let mut c = client.clone();
            let watching = async {
                let mut stream = c
                    .watch(prefix.as_str(), Some(WatchOptions::new().with_prefix()))
                    .await?;
                // Whatever changed while the watch was being (re-)established.
                bump(&tx);
                while let Some(resp) = stream.message().await? {
                    if resp.canceled() {
                        break;
                    }
                    if !resp.events().is_empty() {
                        bump(&tx);
                    }
                    reported = false;
                    backoff = Duration::from_millis(200);
                }
                Ok::<(), etcd_client::Error>(())
            };
            if let Err(e) = watching.await
                && !reported
            {
                tracing::warn!(
                    "etcd at {endpoints}: watch of {prefix} broke: {}; re-establishing",
                    describe(&e)
                );
                reported = true;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    };
    tokio::select! {
        () = run => {}
        () = tx.closed() => {}
    }
}
