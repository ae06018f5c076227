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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnResponse, WatchOptions,
};
use tokio::sync::watch;

use super::{Entry, Lifetime, WorldError};
use crate::tls::Security;

/// Longest wait between two attempts at a broken watch or keep-alive.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Tries of a request that could not be sent (see `EtcdWorld::unsent_again`).
const UNSENT_TRIES: u32 = 4;
/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A World on etcd (see the module doc).
pub struct EtcdWorld {
    hostname: String,
    endpoints: String,
    prefix: String,
    client: Client,
    /// Plain or mutual TLS: every connection this host makes to etcd uses it.
    security: Security,
    /// The current lease, and the leased values to write again under a new one.
    lease: Arc<Mutex<Lease>>,
    /// Held while a leased value is written or any value removed, and while the leased
    /// values are written again under a new lease: one does not undo the other.
    writes: Arc<tokio::sync::Mutex<()>>,
    keeper: tokio::task::JoinHandle<()>,
    /// Set by [`EtcdWorld::close`]: the watches end quietly when etcd goes away after it
    /// (a serving host stops its etcd right after).
    closed: Arc<AtomicBool>,
}

#[derive(Default)]
struct Lease {
    id: i64,
    values: BTreeMap<String, Vec<u8>>,
}

impl EtcdWorld {
    /// Connect to the etcd cluster at `endpoints` (`http://host:port`, or `https://`
    /// with TLS, each) and take a lease of `ttl`. Fails (does not retry) when no
    /// endpoint answers within a few seconds; the caller retries with a backoff.
    pub async fn connect(
        hostname: &str,
        endpoints: &[String],
        prefix: &str,
        ttl: Duration,
        security: &Security,
    ) -> Result<EtcdWorld, WorldError> {
        let joined = endpoints.join(",");
        let fail = |message: String| WorldError::Etcd {
            endpoints: joined.clone(),
            message,
        };
        // `require_leader`: a member cut off from its cluster fails the requests and
        // streams it holds (etcd's "no leader") instead of holding them silently, so
        // watches and the lease's keep-alive move to a member that can answer (found by
        // the fault schedule: a keep-alive held by a cut-off member never answered, and
        // the host's lease, with its exports, was lost for good).
        let options = security.options(
            ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(3))
                .with_timeout(REQUEST_TIMEOUT)
                .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
                .with_require_leader(true),
        );
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
        let writes = Arc::new(tokio::sync::Mutex::new(()));
        let keeper = tokio::spawn(keep_alive(
            client.clone(),
            lease.clone(),
            writes.clone(),
            ttl,
            prefix.to_owned(),
            joined.clone(),
        ));
        Ok(EtcdWorld {
            hostname: hostname.to_owned(),
            endpoints: joined,
            prefix: prefix.to_owned(),
            client,
            security: security.clone(),
            lease,
            writes,
            keeper,
            closed: Arc::default(),
        })
    }

    /// This host's name.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// How this host talks to etcd (for the other connections it makes: status probes).
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// The endpoints, comma-separated, for messages.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    fn fail(&self, e: &etcd_client::Error) -> WorldError {
        WorldError::Etcd {
            endpoints: self.endpoints.clone(),
            message: describe(e),
        }
    }

    /// `key` with the World's prefix: the key as etcd stores it.
    pub fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A handle on the connection, for what the World does not wrap (the chooser's
    /// membership changes): clones share the connection and its endpoints.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The etcd members (not linearizable in etcd 3.4: the member asked answers from
    /// its own copy).
    pub async fn members(&self) -> Result<Vec<etcd_client::Member>, WorldError> {
        let listed = self
            .unsent_again(|mut c| async move { c.member_list().await })
            .await?;
        Ok(listed.members().to_vec())
    }

    /// Run a transaction (keys in it are full keys: see [`EtcdWorld::full`]).
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse, WorldError> {
        self.unsent_again(|mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }

    /// The host's current lease (it changes when a lost lease is replaced).
    pub fn lease_id(&self) -> i64 {
        self.lease().id
    }

    /// Also send requests to `url` (a member that joined); adding one twice is harmless.
    pub async fn add_endpoint(&self, url: &str) {
        if let Err(e) = self.client.add_endpoint(url).await {
            tracing::debug!("etcd: adding endpoint {url}: {}", describe(&e));
        }
    }

    /// Stop sending requests to `url` (a member that left).
    pub async fn remove_endpoint(&self, url: &str) {
        if let Err(e) = self.client.remove_endpoint(url).await {
            tracing::debug!("etcd: removing endpoint {url}: {}", describe(&e));
        }
    }

    fn lease(&self) -> std::sync::MutexGuard<'_, Lease> {
        self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Make a request, again (at most [`UNSENT_TRIES`] times) while it fails without
    /// having been sent: the connection spreads requests over the members' endpoints,
    /// and one whose member just died refuses the TCP connection. The membership task
    /// drops such endpoints within seconds (`cluster::membership::Follower`); until then
    /// another try goes to another endpoint.
    async fn unsent_again<T, F: Future<Output = Result<T, etcd_client::Error>>>(
        &self,
        mut request: impl FnMut(Client) -> F,
    ) -> Result<T, WorldError> {
        let mut tries = 1;
        loop {
            match request(self.client.clone()).await {
                Err(e) if tries < UNSENT_TRIES && describe(&e).contains("tcp connect error") => {
                    tries += 1;
                }
                result => return result.map_err(|e| self.fail(&e)),
            }
        }
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, WorldError> {
        let resp = self
            .unsent_again(|mut c| async move { c.get(self.full(key), None).await })
            .await?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Every key under `prefix`, in key order, relative to the World's prefix.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>, WorldError> {
        let resp = self
            .unsent_again(|mut c| async move {
                c.get(self.full(prefix), Some(GetOptions::new().with_prefix()))
                    .await
            })
            .await?;
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
        let _writing = match lifetime {
            Lifetime::Persistent => None,
            Lifetime::Leased => Some(self.writes.lock().await),
        };
        let options = match lifetime {
            Lifetime::Persistent => None,
            Lifetime::Leased => {
                let mut lease = self.lease();
                lease.values.insert(key.to_owned(), value.to_vec());
                Some(PutOptions::new().with_lease(lease.id))
            }
        };
        self.unsent_again(|mut c| {
            let options = options.clone();
            async move { c.put(self.full(key), value, options).await }
        })
        .await?;
        Ok(())
    }

    /// Remove `key`.
    pub async fn delete(&self, key: &str) -> Result<(), WorldError> {
        let _writing = self.writes.lock().await;
        self.lease().values.remove(key);
        self.unsent_again(
            |mut c| async move { c.delete(self.full(key), None::<DeleteOptions>).await },
        )
        .await?;
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
            self.closed.clone(),
        ));
        rx
    }

    /// Stop keeping the lease alive and revoke it: every leased value goes at once.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
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
pub fn describe(e: &etcd_client::Error) -> String {
    let text = match e {
        etcd_client::Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        e => e.to_string(),
    };
    // TLS failures, said in the words of what to check.
    let hint = if text.contains("invalid peer certificate") {
        " (the server's certificate is not one this host trusts: is it issued by the CA \
         in this host's --ca, for the address dialled?)"
    } else if text.contains("certificate required") || text.contains("bad certificate") {
        " (the server refused this host's certificate: is it issued by the cluster's CA?)"
    } else if text.contains("corrupt message")
        || text.contains("InvalidContentType")
        || text.contains("handshake eof")
    {
        " (the server ended the TLS handshake: is it a plaintext etcd? its URL is then \
         http://)"
    } else if text.contains("permission denied") || text.contains("user name not found") {
        " (etcd's rights: this host's user may not do this; a member allows a host with \
         `homeostat cluster allow HOST`, see docs/security.md)"
    } else {
        ""
    };
    format!("{text}{hint}")
}

/// Why keeping a lease alive stopped.
enum LeaseLost {
    /// etcd says it expired (or no longer has it).
    Expired,
    /// The keep-alive stream failed (etcd unreachable, restarting, ...).
    Failed(etcd_client::Error),
}

/// Keep the lease `id` alive every `every` until it is lost; also says whether any
/// keep-alive was answered.
///
/// Every step waits at most `every` times three (the lease's TTL): an answer that has
/// not come by then will not save the lease, and the stream is opened again (on a
/// member that answers, one hopes).
async fn keep_until_lost(c: &mut Client, id: i64, every: Duration) -> (LeaseLost, bool) {
    let patience = every * 3;
    let silent = || {
        LeaseLost::Failed(etcd_client::Error::LeaseKeepAliveError(format!(
            "no answer within {patience:.1?}"
        )))
    };
    let (mut keeper, mut stream) =
        match tokio::time::timeout(patience, c.lease_keep_alive(id)).await {
            Ok(Ok(pair)) => pair,
            // etcd-client asks once when it opens the stream, and says so for a lease
            // that is gone (found by the fault schedule: taken for a failure to connect,
            // the lease was never renewed, and the host's exports were gone for good).
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(m))) if m.contains("not found") => {
                return (LeaseLost::Expired, false);
            }
            Ok(Err(e)) => return (LeaseLost::Failed(e), false),
            Err(_) => return (silent(), false),
        };
    let mut answered = false;
    loop {
        match tokio::time::timeout(patience, keeper.keep_alive()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return (LeaseLost::Failed(e), answered),
            Err(_) => return (silent(), answered),
        }
        match tokio::time::timeout(patience, stream.message()).await {
            Ok(Ok(Some(r))) if r.ttl() > 0 => answered = true,
            Ok(Ok(Some(_))) => return (LeaseLost::Expired, answered),
            // A stream that ends says nothing about the lease: taking it for expiry would
            // leave the old lease alive, and a value written under it meanwhile would go
            // when it runs out.
            Ok(Ok(None)) => {
                let ended = "the keep-alive stream ended".to_owned();
                return (
                    LeaseLost::Failed(etcd_client::Error::LeaseKeepAliveError(ended)),
                    answered,
                );
            }
            Ok(Err(e)) => return (LeaseLost::Failed(e), answered),
            Err(_) => return (silent(), answered),
        }
        tokio::time::sleep(every).await;
    }
}

/// Write every leased value again under the current lease; returns how many were
/// written. Fails at the first value that could not be written: the caller writes them
/// all again (found by the fault schedule: a write that failed was only logged, and the
/// host's export was gone for good while the log said it had been written again).
///
/// Holds `writes` throughout, so a leased value set or removed meanwhile is not undone
/// by an older copy written here.
async fn rewrite(
    c: &mut Client,
    lease: &Mutex<Lease>,
    writes: &tokio::sync::Mutex<()>,
    prefix: &str,
) -> Result<usize, etcd_client::Error> {
    let _writing = writes.lock().await;
    let (id, values) = {
        let l = lease.lock().unwrap_or_else(PoisonError::into_inner);
        (l.id, l.values.clone())
    };
    for (key, value) in &values {
        let options = PutOptions::new().with_lease(id);
        c.put(format!("{prefix}{key}"), value.clone(), Some(options))
            .await?;
    }
    Ok(values.len())
}

/// What the keep-alive task does next.
enum Step {
    /// Keep the current lease alive.
    Keep,
    /// Take a new lease: the current one is gone.
    Grant,
    /// Write the leased values under the (new) current lease.
    Rewrite,
}

/// Keep the lease alive; when it is lost, take a new one and write the leased values
/// again under it (again until every one is written). A failure is reported once until
/// the lease is kept alive again.
async fn keep_alive(
    client: Client,
    lease: Arc<Mutex<Lease>>,
    writes: Arc<tokio::sync::Mutex<()>>,
    ttl: Duration,
    prefix: String,
    endpoints: String,
) {
    let every = (ttl / 3).max(Duration::from_millis(300));
    let mut backoff = Duration::from_millis(200);
    let mut reported = false;
    let mut step = Step::Keep;
    // Every step is bounded: a request that waits for a member forever must not stop the
    // lease from ever being renewed.
    let bound = REQUEST_TIMEOUT * 2;
    let late = |what: &str| {
        etcd_client::Error::LeaseKeepAliveError(format!("{what}: no answer within {bound:?}"))
    };
    loop {
        let id = lease.lock().unwrap_or_else(PoisonError::into_inner).id;
        let mut c = client.clone();
        let (what, e) = match step {
            Step::Keep => {
                let (lost, answered) = keep_until_lost(&mut c, id, every).await;
                tracing::debug!(
                    "etcd: lease {id:x} {}",
                    match &lost {
                        LeaseLost::Expired => "expired".to_owned(),
                        LeaseLost::Failed(e) => format!("not kept alive: {}", describe(e)),
                    }
                );
                if answered {
                    backoff = Duration::from_millis(200);
                    reported = false;
                }
                match lost {
                    LeaseLost::Expired => {
                        step = Step::Grant;
                        continue;
                    }
                    LeaseLost::Failed(e) => ("keeping this host's lease alive", e),
                }
            }
            Step::Grant => {
                let ttl_secs = ttl.as_secs().max(1) as i64;
                match tokio::time::timeout(bound, c.lease_grant(ttl_secs, None)).await {
                    Ok(Ok(granted)) => {
                        lease.lock().unwrap_or_else(PoisonError::into_inner).id = granted.id();
                        step = Step::Rewrite;
                        continue;
                    }
                    Ok(Err(e)) => ("cannot renew this host's lease", e),
                    Err(_) => ("cannot renew this host's lease", late("granting")),
                }
            }
            Step::Rewrite => {
                match tokio::time::timeout(bound, rewrite(&mut c, &lease, &writes, &prefix)).await {
                    Ok(Ok(n)) => {
                        tracing::warn!(
                            "etcd: this host's lease had expired; took a new one and wrote its \
                             {n} leased keys again"
                        );
                        reported = false;
                        step = Step::Keep;
                        continue;
                    }
                    Ok(Err(e)) => {
                        // The new lease went too while the values were being written.
                        if describe(&e).contains("lease not found") {
                            step = Step::Grant;
                        }
                        ("writing this host's leased keys again", e)
                    }
                    Err(_) => ("writing this host's leased keys again", late("writing")),
                }
            }
        };
        let line = format!("{what}: {}", describe(&e));
        if !reported {
            tracing::warn!("etcd at {endpoints}: {line}; retrying");
            reported = true;
        } else {
            tracing::debug!("etcd at {endpoints}: {line}; retrying");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Watch `prefix` (a full key) until every receiver of `tx` is gone.
async fn watch_prefix(
    client: Client,
    prefix: String,
    endpoints: String,
    tx: watch::Sender<u64>,
    closed: Arc<AtomicBool>,
) {
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
            let result = watching.await;
            if closed.load(Ordering::Acquire) {
                return;
            }
            if let Err(e) = result
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
