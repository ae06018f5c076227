//! Elastic membership, the host's side: a host that may serve etcd **volunteers**, serves
//! when the chooser **nominates** it, and stops serving (clearing its data directory, and
//! staying a client) when it is **unnominated**.
//!
//! Keys (under the World's etcd prefix; docs/clustering.md lists them with the others):
//!
//! | key | value | lives |
//! |---|---|---|
//! | `volunteers/<host>` | JSON: its client and peer URLs, and the member whose data it holds | leased |
//! | `nominated/<host>` | JSON: the member id added for it and its `--initial-cluster` | until unnominated |
//! | `cluster/ideal-size` | the ideal number of voting members (text) | persistent |
//! | `cluster/chooser` | the host that decides (see [`super::chooser`]) | leased |
//!
//! **What the host does**, on every change to its nomination and at least every
//! [`CHECK`]:
//! - nominated, not serving: it starts etcd, from its data directory when that holds the
//!   nominated member, else (wiping whatever is there) joining the cluster as that member,
//!   but only while the member has never started: a member that ran before and whose data
//!   this host lost is left for the chooser to replace (joining it with an empty log would
//!   corrupt it);
//! - serving, and its member is no longer in the cluster (missing from the member list
//!   for a second: a member's list may lag a change): it stops etcd, wipes the data
//!   directory and volunteers again, on the same ports; the same, without the stop, for
//!   data of a member removed while the host was down;
//! - always: it sends its requests to every voting member that answers ([`Follower`],
//!   which a client-only host runs too), and remembers their URLs in the marker, so a
//!   host restarted without `--seeds` finds its cluster again instead of bootstrapping a
//!   second one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, StatusResponse};
use tokio::sync::Mutex;

use super::server::{EtcdServer, Marker, ServerConfig, has_data, wipe_data};
use crate::tls::Security;
use crate::world::etcd::EtcdWorld;
use crate::world::{Entry, Lifetime, WorldError, segment, unsegment};

/// Hosts offering to serve etcd.
pub const VOLUNTEERS: &str = "volunteers/";
/// Hosts chosen to serve, and their members.
pub const NOMINATED: &str = "nominated/";
/// The cluster's own settings.
pub const CLUSTER: &str = "cluster/";
/// The ideal number of voting members.
pub const IDEAL_SIZE: &str = "cluster/ideal-size";
/// The host that chooses the members.
pub const CHOOSER: &str = "cluster/chooser";
/// How long a member has to answer the chooser's and the followers' status requests.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// Connections to members' client URLs, kept between rounds, for status requests.
pub struct Probes {
    clients: HashMap<String, Client>,
    security: Security,
    timeout: Duration,
}

impl Probes {
    /// Probes made with `world`'s security, waiting a second for each answer.
    pub fn of(world: &EtcdWorld) -> Probes {
        Probes::new(world.security().clone(), STATUS_TIMEOUT)
    }

    /// Probes that connect with `security` and wait `timeout` for each answer.
    pub fn new(security: Security, timeout: Duration) -> Probes {
        Probes {
            clients: HashMap::new(),
            security,
            timeout,
        }
    }

    /// The connection to `url`, made once (connecting is lazy: this fails only for a
    /// malformed URL).
    async fn client(&mut self, url: &str) -> Option<Client> {
        if let Some(c) = self.clients.get(url) {
            return Some(c.clone());
        }
        let options = self.security.options(
            ConnectOptions::new()
                .with_connect_timeout(self.timeout)
                .with_timeout(self.timeout),
        );
        let c = Client::connect([url], Some(options)).await.ok()?;
        self.clients.insert(url.to_owned(), c.clone());
        Some(c)
    }

    /// Ask the member at each URL for its status, all at once; `None` for one that does
    /// not answer within the timeout (or has no URL yet).
    pub async fn status(&mut self, urls: &[Option<String>]) -> Vec<Option<StatusResponse>> {
        let mut asks = Vec::new();
        for url in urls {
            let client = match url {
                Some(url) => self.client(url).await,
                None => None,
            };
            let timeout = self.timeout;
            asks.push(async move {
                let mut c = client?;
                tokio::time::timeout(timeout, c.status()).await.ok()?.ok()
            });
        }
        futures_util::future::join_all(asks).await
    }
}

/// The ideal size when none was set (etcd's recommendation: five tolerates two failures).
pub const DEFAULT_IDEAL_SIZE: usize = 5;
/// The largest ideal size accepted (etcd's FAQ: more than seven members slow every write
/// and gain little).
pub const MAX_IDEAL_SIZE: usize = 7;
/// The longest time between two checks of this host's membership.
pub const CHECK: Duration = Duration::from_secs(2);
/// How long this host's member must be missing from the member list before the host
/// takes it as removed (see `Host::gone`).
const GONE_AFTER: Duration = Duration::from_secs(1);

/// What a volunteer offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Volunteer {
    /// Its etcd's client URLs (advertised).
    pub client_urls: Vec<String>,
    /// Its etcd's peer URLs (advertised).
    pub server_urls: Vec<String>,
    /// The member (hex id) whose data its data directory holds, if any.
    #[serde(default)]
    pub holds: Option<String>,
}

impl Volunteer {
    /// The member id it holds data for.
    pub fn holds_id(&self) -> Option<u64> {
        u64::from_str_radix(self.holds.as_deref()?, 16).ok()
    }
}

/// A host's nomination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Nomination {
    /// The member id (hex) added for it.
    pub member: String,
    /// Its `--initial-cluster`: every started member and itself.
    pub cluster: String,
}

impl Nomination {
    pub fn new(id: u64, cluster: String) -> Nomination {
        Nomination {
            member: format!("{id:x}"),
            cluster,
        }
    }

    pub fn member_id(&self) -> Option<u64> {
        u64::from_str_radix(&self.member, 16).ok()
    }
}

/// Check an ideal size: 1 to [`MAX_IDEAL_SIZE`]; an even one is kept, with a warning of
/// what it costs (returned).
pub fn check_ideal_size(n: usize) -> Result<Option<String>, String> {
    if n == 0 {
        return Err(
            "an ideal cluster size of 0 would leave no etcd member to serve the \
                    cluster: use 1 or more (3 or 5 tolerate 1 or 2 failed members)"
                .into(),
        );
    }
    if n > MAX_IDEAL_SIZE {
        return Err(format!(
            "an ideal cluster size of {n} is more than etcd's recommended {MAX_IDEAL_SIZE}: \
             every write waits for a majority, so more members make each slower and \
             tolerate few more failures"
        ));
    }
    Ok(n.is_multiple_of(2).then(|| {
        format!(
            "an ideal cluster size of {n} is even: it tolerates as many failed members as \
             {} ({}), and every write waits for one more member; kept as asked",
            n - 1,
            (n - 1) / 2
        )
    }))
}

/// An ideal size as the key `cluster/ideal-size` holds it; `None` when it is not one
/// [`check_ideal_size`] accepts.
pub fn parse_ideal_size(value: &[u8]) -> Option<usize> {
    std::str::from_utf8(value)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|n| check_ideal_size(*n).is_ok())
}

/// The cluster's ideal size (the key, else [`DEFAULT_IDEAL_SIZE`]).
pub async fn ideal_size(world: &EtcdWorld) -> Result<usize, WorldError> {
    Ok(world
        .get(IDEAL_SIZE)
        .await?
        .and_then(|v| parse_ideal_size(&v))
        .unwrap_or(DEFAULT_IDEAL_SIZE))
}

/// The keys under `prefix` (`volunteers/`, `nominated/`, `hosts/`) by host, with their
/// JSON values (see [`by_host`]).
pub async fn list_by_host<T: serde::de::DeserializeOwned>(
    world: &EtcdWorld,
    prefix: &str,
) -> Result<BTreeMap<String, T>, WorldError> {
    Ok(by_host(world.list(prefix).await?, prefix))
}

/// The entries under `prefix` (keys relative to the World's prefix, as listed), by host
/// name, with their JSON values; values that do not parse are skipped.
pub fn by_host<T: serde::de::DeserializeOwned>(
    entries: Vec<Entry>,
    prefix: &str,
) -> BTreeMap<String, T> {
    entries
        .into_iter()
        .filter_map(|(key, value)| {
            let host = unsegment(key.strip_prefix(prefix)?);
            Some((host, serde_json::from_slice(&value).ok()?))
        })
        .collect()
}

/// Whether the etcd behind `world` is a cluster homeostat formed (its bootstrap host
/// wrote the ideal size).
pub async fn is_homeostat_cluster(world: &EtcdWorld) -> Result<bool, WorldError> {
    Ok(world.get(IDEAL_SIZE).await?.is_some())
}

/// Write the ideal size `n` unless the cluster has one; returns the cluster's.
pub async fn init_ideal_size(world: &EtcdWorld, n: usize) -> Result<usize, WorldError> {
    use etcd_client::{Compare, CompareOp, Txn, TxnOp};
    let key = world.full(IDEAL_SIZE);
    let txn = Txn::new()
        .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key.as_str(), n.to_string(), None)]);
    world.txn(txn).await?;
    ideal_size(world).await
}

/// Which etcd members a host sends its requests to: every voting member that answers a
/// status request. Learners refuse client requests, and the World's connection would
/// send some requests to a member that is down, which then fail; so the seeds a host
/// started with may go away, and members that join are used as soon as they vote.
pub struct Follower {
    world: Arc<EtcdWorld>,
    /// The client URLs requests are sent to (first the ones the World connected with).
    endpoints: BTreeSet<String>,
    /// Connections for status requests (also the host's own etcd's, see `Host`).
    probes: Probes,
}

impl Follower {
    pub fn new(world: Arc<EtcdWorld>) -> Follower {
        Follower {
            endpoints: world.endpoints().split(',').map(str::to_owned).collect(),
            probes: Probes::of(&world),
            world,
        }
    }

    /// Send requests to the voting members of `members` that answer; returns every
    /// voter's client URLs.
    pub async fn follow(&mut self, members: &[etcd_client::Member]) -> Vec<String> {
        let voters: Vec<String> = members
            .iter()
            .filter(|m| !m.is_learner())
            .flat_map(|m| m.client_urls().iter().cloned())
            .collect();
        let urls: Vec<Option<String>> = voters.iter().cloned().map(Some).collect();
        let answering: BTreeSet<String> = voters
            .iter()
            .zip(self.probes.status(&urls).await)
            .filter(|(_, answer)| answer.is_some())
            .map(|(url, _)| url.clone())
            .collect();
        // With none answering there is nothing better to send requests to.
        if !answering.is_empty() {
            for url in answering.difference(&self.endpoints.clone()) {
                self.world.add_endpoint(url).await;
                self.endpoints.insert(url.clone());
            }
            for url in self.endpoints.clone().difference(&answering) {
                self.drop_endpoint(url).await;
            }
        }
        voters
    }

    /// Send requests to `urls` too (those not already in use): a host whose own etcd
    /// stopped reaches its cluster through the members it remembers.
    pub async fn reach(&mut self, urls: &[String]) {
        for url in urls {
            if self.endpoints.insert(url.clone()) {
                self.world.add_endpoint(url).await;
            }
        }
    }

    /// Stop sending requests to `url`.
    pub async fn drop_endpoint(&mut self, url: &str) {
        self.world.remove_endpoint(url).await;
        self.endpoints.remove(url);
    }

    /// Follow the members until aborted: a client's task (a host that may serve follows
    /// them in its membership check).
    pub async fn run(mut self) {
        loop {
            match self.world.members().await {
                Ok(members) => {
                    self.follow(&members).await;
                }
                Err(e) => tracing::debug!("cluster: listing the members: {e}"),
            }
            tokio::time::sleep(CHECK).await;
        }
    }
}

/// The names of the etcd members (the hosts that serve); empty when etcd cannot say.
pub async fn member_names(world: &EtcdWorld) -> BTreeSet<String> {
    match world.members().await {
        Ok(members) => members
            .iter()
            .map(|m| m.name().to_owned())
            .filter(|n| !n.is_empty())
            .collect(),
        Err(e) => {
            tracing::debug!("cluster: listing the members: {e}");
            BTreeSet::new()
        }
    }
}

/// The host's side of elastic membership, running until [`Membership::stop`].
pub struct Membership {
    server: Arc<Mutex<Option<EtcdServer>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One receiver that wakes when anything under any of `prefixes` changes (the
/// forwarding tasks end with the receiver).
pub(super) fn merged_watches(
    world: &EtcdWorld,
    prefixes: &[&str],
) -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    for prefix in prefixes {
        let mut watch = world.watch(prefix);
        let tx = tx.clone();
        tokio::spawn(async move {
            while watch.changed().await.is_ok() {
                if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                    return;
                }
            }
        });
    }
    rx
}

impl Membership {
    /// Volunteer and serve when nominated (the caller runs the chooser beside it, see
    /// [`Membership::also`]). `server` is the etcd this host already serves
    /// (bootstrapped, or come back from its data directory).
    pub fn start(
        world: Arc<EtcdWorld>,
        cfg: ServerConfig,
        server: Option<EtcdServer>,
    ) -> Membership {
        let server = Arc::new(Mutex::new(server));
        let host = Host {
            world: world.clone(),
            marker: Marker::read(&cfg.state_dir).unwrap_or_else(|| Marker::new(&cfg.name)),
            cfg,
            server: server.clone(),
            follower: Follower::new(world.clone()),
            published: None,
            refused: false,
            warned: None,
            missing: None,
        };
        let tasks = vec![tokio::spawn(host.run())];
        Membership { server, tasks }
    }

    /// Another task that ends with this host's membership (the chooser).
    pub fn also(mut self, task: tokio::task::JoinHandle<()>) -> Membership {
        self.tasks.push(task);
        self
    }

    /// Whether this host serves etcd now.
    pub async fn serving(&self) -> bool {
        self.server.lock().await.is_some()
    }

    /// Stop deciding and volunteering (the keys go with the lease), then stop etcd. The
    /// host stays a member: started again, it comes back from its data directory.
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(server) = self.server.lock().await.take() {
            server.stop().await;
        }
    }
}

/// The volunteer's loop (see the module doc).
struct Host {
    world: Arc<EtcdWorld>,
    cfg: ServerConfig,
    /// The marker in the state directory, as last read or written.
    marker: Marker,
    server: Arc<Mutex<Option<EtcdServer>>>,
    /// Which members requests go to.
    follower: Follower,
    /// The volunteer value last written.
    published: Option<Volunteer>,
    /// The last warning, logged once.
    warned: Option<String>,
    /// etcd refused its volunteer key (logged once).
    refused: bool,
    /// A member of this host's missing from the member list, and since when.
    missing: Option<(u64, Instant)>,
}

impl Host {
    fn state_dir(&self) -> &Path {
        &self.cfg.state_dir
    }

    /// The member whose data this host holds.
    fn held(&self) -> Option<u64> {
        self.marker
            .member_id()
            .filter(|_| has_data(self.state_dir()))
    }

    /// Record the member whose data this host holds (`None`: none any more) or the
    /// cluster's client URLs in the marker, when they changed.
    fn remember(&mut self, member: Option<Option<u64>>, endpoints: Option<Vec<String>>) {
        let mut marker = self.marker.clone();
        if let Some(m) = member {
            marker.member = m.map(|id| format!("{id:x}"));
        }
        if let Some(e) = endpoints {
            marker.endpoints = e;
        }
        if marker == self.marker {
            return;
        }
        let dir = self.state_dir();
        match std::fs::create_dir_all(dir).and_then(|()| marker.write(dir)) {
            Ok(()) => self.marker = marker,
            Err(e) => tracing::warn!("cluster: writing {}: {e}", dir.join("etcd.json").display()),
        }
    }

    /// Clear the data of member `id`, which left the cluster (`how`: while serving, or
    /// while this host was down), and be a plain volunteer again.
    fn forget(&mut self, id: Option<u64>, how: &str) {
        let member = id.map_or_else(
            || "this host's member".to_string(),
            |id| format!("member {id:x}"),
        );
        match wipe_data(self.state_dir()) {
            Ok(()) => tracing::info!(
                "cluster: unnominated: {member} left the cluster{how}; cleared its data; this \
                 host stays a client and a volunteer"
            ),
            Err(e) => tracing::warn!("cluster: clearing the etcd data directory: {e}"),
        }
        self.remember(Some(None), None);
    }

    fn warn_once(&mut self, text: String) {
        if self.warned.as_ref() != Some(&text) {
            tracing::warn!("cluster: {text}");
            self.warned = Some(text);
        }
    }

    async fn run(mut self) {
        let key = format!("{NOMINATED}{}", segment(&self.cfg.name));
        let mut changes = merged_watches(&self.world, &[key.as_str()]);
        loop {
            if let Err(e) = self.step(&key).await {
                tracing::debug!("cluster: membership check: {e}");
                // Nothing answers: perhaps this host's own etcd was all it used, and it
                // stopped (removed while cut off). The members it remembers may answer.
                self.reach_remembered().await;
            }
            let _ = tokio::time::timeout(CHECK, changes.recv()).await;
        }
    }

    async fn step(&mut self, key: &str) -> Result<(), String> {
        let members = self.world.members().await.map_err(|e| e.to_string())?;
        let members = members.as_slice();
        let held = self.held();
        // An etcd that ended for good (its member removed, or the supervisor gave up) is
        // no longer served: clear its data and volunteer again, like a member removed
        // while this host was down; the chooser replaces the old member if it is still
        // listed.
        let ended = {
            let guard = self.server.lock().await;
            match guard.as_ref() {
                Some(server) => !server.alive().await,
                None => false,
            }
        };
        if ended {
            self.leave(held, " (its etcd ended by itself)").await;
            return Ok(());
        }
        let serving = self.server.lock().await.is_some();
        if serving {
            // Our own member's id, once etcd knows it (a learner that just joined, or
            // data from an earlier run).
            let own = match held {
                Some(id) => Some(id),
                None => self.own_member_id().await,
            };
            match own {
                Some(id) if self.gone(id, members) => self.leave(Some(id), "").await,
                Some(id) if held.is_none() => self.remember(Some(Some(id)), None),
                _ => {}
            }
        } else if let Some(id) = held
            && self.gone(id, members)
        {
            // The cluster removed the member while this host was down (its etcd would
            // not start from the data).
            self.forget(Some(id), " while this host was down");
        } else if let Some(nomination) = self
            .world
            .get(key)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|v| serde_json::from_slice::<Nomination>(&v).ok())
        {
            let id = nomination.member_id();
            let member = members.iter().find(|m| Some(m.id()) == id);
            match member {
                Some(_) if held == id => self.serve(None, id).await,
                Some(m) if m.name().is_empty() => {
                    if let Err(e) = wipe_data(self.state_dir()) {
                        self.warn_once(format!("cannot clear the etcd data directory: {e}"));
                    } else {
                        self.serve(Some(nomination.cluster.clone()), id).await;
                    }
                }
                Some(m) => self.warn_once(format!(
                    "nominated as member {:x}, which ran before, but this host does not hold \
                     its data (it was removed or lost); waiting for the chooser to replace it",
                    m.id()
                )),
                None => {}
            }
        }
        self.follow(members).await;
        self.publish().await;
        Ok(())
    }

    /// Whether member `id` has left the cluster: missing from the member lists of at
    /// least one second. A member answers the list from its own copy, which may lag a
    /// change by a moment (etcd 3.4 has no linearizable member list), and what follows
    /// (clearing the data directory) cannot be undone.
    fn gone(&mut self, id: u64, members: &[etcd_client::Member]) -> bool {
        if members.iter().any(|m| m.id() == id) {
            self.missing = None;
            return false;
        }
        match self.missing {
            Some((missing, since)) if missing == id => since.elapsed() >= GONE_AFTER,
            _ => {
                self.missing = Some((id, Instant::now()));
                false
            }
        }
    }

    /// The member id of the etcd this host serves, as that etcd says.
    async fn own_member_id(&mut self) -> Option<u64> {
        let url = self.cfg.client_urls.first().cloned();
        let answer = self.follower.probes.status(&[url]).await.pop()??;
        Some(answer.header()?.member_id())
    }

    /// Start etcd: from the data directory (`join` none) or joining as a new member.
    async fn serve(&mut self, join: Option<String>, id: Option<u64>) {
        let mut cfg = self.cfg.clone();
        cfg.join = join;
        let joining = cfg.join.is_some();
        match EtcdServer::start(cfg).await {
            Ok(server) => {
                *self.server.lock().await = Some(server);
                if id.is_some() {
                    self.remember(Some(id), None);
                }
                self.warned = None;
                tracing::info!(
                    "cluster: nominated: serving etcd as member {:x}{}",
                    id.unwrap_or_default(),
                    if joining {
                        ", joining the cluster"
                    } else {
                        " from its data"
                    }
                );
            }
            Err(e) => self.warn_once(format!("nominated, but cannot serve etcd: {e}")),
        }
    }

    /// The member was removed: stop etcd, clear its data, volunteer again, sending
    /// requests to the other members it knows.
    async fn leave(&mut self, id: Option<u64>, why: &str) {
        if let Some(server) = self.server.lock().await.take() {
            server.stop().await;
        }
        self.forget(id, &format!("{why}; stopped etcd"));
        self.reach_remembered().await;
        for url in &self.cfg.advertise_client_urls {
            self.follower.drop_endpoint(url).await;
        }
    }

    /// Send requests to the cluster's client URLs the marker remembers (this host's own
    /// aside when it does not serve).
    async fn reach_remembered(&mut self) {
        let serving = self.server.lock().await.is_some();
        let urls: Vec<String> = self
            .marker
            .endpoints
            .iter()
            .filter(|u| serving || !self.cfg.advertise_client_urls.contains(u))
            .cloned()
            .collect();
        self.follower.reach(&urls).await;
    }

    /// Follow the voting members (see [`Follower`]) and remember their URLs.
    async fn follow(&mut self, members: &[etcd_client::Member]) {
        let mut now = self.follower.follow(members).await;
        now.sort();
        now.dedup();
        if !now.is_empty() {
            self.remember(None, Some(now));
        }
    }

    /// Write the volunteer key when it changed.
    async fn publish(&mut self) {
        let v = Volunteer {
            client_urls: self.cfg.advertise_client_urls.clone(),
            server_urls: self.cfg.advertise_server_urls.clone(),
            holds: self.held().map(|id| format!("{id:x}")),
        };
        if self.published.as_ref() == Some(&v) {
            return;
        }
        let key = format!("{VOLUNTEERS}{}", segment(&self.cfg.name));
        match self
            .world
            .put(
                &key,
                &serde_json::to_vec(&v).expect("serialises"),
                Lifetime::Leased,
            )
            .await
        {
            Ok(()) => self.published = Some(v),
            // Refused by etcd's rights: this host is not allowed to serve (said once; it
            // stays a client, and volunteers once allowed).
            Err(e) if e.to_string().contains("permission denied") => {
                if !std::mem::replace(&mut self.refused, true) {
                    tracing::error!(
                        "cluster: this host may not serve etcd: it is not a member ({e}); a \
                         member makes it one with `homeostat cluster allow {} --serve`",
                        self.cfg.name
                    );
                }
            }
            Err(e) => tracing::debug!("cluster: volunteering: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ideal_sizes_from_one_to_seven_and_even_ones_warn() {
        assert!(check_ideal_size(0).unwrap_err().contains("no etcd member"));
        assert!(check_ideal_size(8).unwrap_err().contains("recommended 7"));
        assert_eq!(check_ideal_size(1), Ok(None));
        assert_eq!(check_ideal_size(5), Ok(None));
        let w = check_ideal_size(4).unwrap().unwrap();
        assert!(w.contains("as many failed members as 3 (1)"), "{w}");
    }

    #[test]
    fn keys_round_trip_their_member_ids() {
        let n = Nomination::new(0x8e9e05c52164694d, "h1=http://a:1".into());
        assert_eq!(n.member, "8e9e05c52164694d");
        assert_eq!(n.member_id(), Some(0x8e9e05c52164694d));
        let v: Volunteer =
            serde_json::from_str(r#"{"client_urls":[],"server_urls":[],"holds":"ff"}"#).unwrap();
        assert_eq!(v.holds_id(), Some(255));
    }
}
