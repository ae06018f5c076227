//! The flags that choose the World (mgmt's names): where the state directory is, whether
//! this host serves etcd, joins one, or keeps everything local (the default).
//!
//! | flags | World |
//! |---|---|
//! | none | local, in `--prefix` (default `/var/lib/homeostat` as root, else the XDG state dir) |
//! | `--client-urls` and/or `--server-urls` | serve a one-member etcd (data in `--prefix`/etcd) and use it |
//! | `--seeds URL,...` (alone, or with `--no-server`) | join that etcd cluster as a client |
//! | `--seeds` with `--client-urls`/`--server-urls` | join it and volunteer to serve: the chooser nominates volunteers up to the ideal size |
//! | `--ideal-cluster-size N` (no seeds) | serve on the default URLs and let the cluster grow to N |
//!
//! A host that served before comes back from its data directory (and its `etcd.json`
//! marker): its etcd starts at once, whatever the seeds; a host that was unnominated
//! finds its cluster again from the URLs the marker remembers, rather than bootstrapping
//! a second one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::cluster::chooser;
use crate::cluster::membership::{self, Follower, Membership};
use crate::cluster::server::{EtcdServer, Marker, ServerConfig, has_data};
use crate::world::etcd::EtcdWorld;
use crate::world::local::LocalWorld;
use crate::world::{DEFAULT_LEASE_TTL, World, converged};

/// The etcd key prefix by default.
pub const DEFAULT_ETCD_PREFIX: &str = "/homeostat/";
/// etcd's client URL by default when this host serves etcd.
pub const DEFAULT_CLIENT_URL: &str = "http://127.0.0.1:2379";
/// etcd's peer URL by default when this host serves etcd.
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:2380";

#[derive(Debug, Args)]
pub(super) struct WorldArgs {
    /// This host's name in the cluster (default: the machine's hostname).
    #[arg(long, value_name = "NAME", env = "HOMEOSTAT_HOSTNAME")]
    hostname: Option<String>,
    /// The state directory: the local World (plugin state, this host's exports) and the
    /// data of the etcd this host serves (default: /var/lib/homeostat as root, else
    /// $XDG_STATE_HOME/homeostat or ~/.local/state/homeostat).
    #[arg(long, value_name = "DIR", env = "HOMEOSTAT_PREFIX")]
    prefix: Option<PathBuf>,
    /// Use a throwaway state directory, removed at exit (also when HOMEOSTAT_TMP_PREFIX
    /// is set and no --prefix is given).
    #[arg(long, conflicts_with = "prefix")]
    tmp_prefix: bool,
    /// Join the etcd cluster at these client URLs as a client (comma-separated).
    #[arg(
        long,
        value_name = "URL,...",
        value_delimiter = ',',
        env = "HOMEOSTAT_SEEDS"
    )]
    seeds: Vec<String>,
    /// Serve etcd: its client URLs (default http://127.0.0.1:2379 when --server-urls is set).
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    client_urls: Vec<String>,
    /// Serve etcd: its peer URLs (default http://127.0.0.1:2380 when --client-urls is set).
    #[arg(
        long,
        alias = "peer-urls",
        value_name = "URL,...",
        value_delimiter = ','
    )]
    server_urls: Vec<String>,
    /// The client URLs other hosts use to reach this host's etcd (default: --client-urls).
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    advertise_client_urls: Vec<String>,
    /// The peer URLs other members use (default: --server-urls).
    #[arg(
        long,
        alias = "advertise-peer-urls",
        value_name = "URL,...",
        value_delimiter = ','
    )]
    advertise_server_urls: Vec<String>,
    /// Never serve etcd (a client of --seeds).
    #[arg(long)]
    no_server: bool,
    /// Send requests only to --seeds, never to the members' own client URLs: the seeds
    /// are a tunnel or a proxy, and the members are not reachable from here (remote
    /// execution runs its hosts with it).
    #[arg(long, requires = "no_server")]
    seeds_only: bool,
    /// The prefix of every key homeostat writes in etcd.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_ETCD_PREFIX)]
    etcd_prefix: String,
    /// Seconds a dead host's exports and converged state outlive it (its etcd lease).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_LEASE_TTL.as_secs(),
          value_parser = super::load::whole(2, 3600))]
    lease_ttl: u64,
    /// The number of etcd voting members the hosts keep (1 to 7; default 5). Written
    /// into the cluster when it has none; change it live with `homeostat cluster set
    /// ideal-size N`. Without --seeds, serves etcd (on the default URLs unless given).
    #[arg(long, value_name = "N")]
    ideal_cluster_size: Option<u64>,
}

/// What the World flags opened; dropped (after [`Opened::close`]) at exit.
pub(super) struct Opened {
    pub(super) world: World,
    membership: Option<Membership>,
    /// A client's task that follows the etcd members (see [`Follower`]).
    follower: Option<tokio::task::JoinHandle<()>>,
    lease_ttl: Duration,
    _tmp: Option<tempfile::TempDir>,
}

impl Opened {
    /// Retract this host's leased values and stop its etcd. After a cluster-wide
    /// converge (`settled`), a host serving etcd first waits (up to twice the lease's
    /// TTL) for the hosts that do not serve to read the final states and leave.
    pub(super) async fn close(self, settled: bool) {
        let serving = match &self.membership {
            Some(m) => m.serving().await,
            None => false,
        };
        if settled && serving {
            let servers = match &self.world {
                World::Etcd(etcd) => membership::member_names(etcd).await,
                World::Local(_) => Default::default(),
            };
            converged::others_gone(&self.world, &servers, self.lease_ttl * 2).await;
        }
        if let Some(f) = &self.follower {
            f.abort();
        }
        self.world.close().await;
        if let Some(m) = self.membership {
            m.stop().await;
        }
    }
}

/// The machine's hostname.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl WorldArgs {
    /// `--remote` needs this host's World on etcd for the remotes to join: without any
    /// cluster flag, serve a one-member etcd on the default URLs.
    pub(super) fn serve_for_remotes(&mut self) {
        let clustered = !self.seeds.is_empty()
            || !self.client_urls.is_empty()
            || !self.server_urls.is_empty()
            || self.ideal_cluster_size.is_some();
        if !clustered {
            self.client_urls = vec![DEFAULT_CLIENT_URL.to_string()];
            self.server_urls = vec![DEFAULT_SERVER_URL.to_string()];
        }
    }

    /// The key prefix and lease TTL the remotes are given.
    pub(super) fn etcd_prefix(&self) -> &str {
        &self.etcd_prefix
    }

    pub(super) fn lease_ttl(&self) -> u64 {
        self.lease_ttl
    }

    /// The state directory the flags name.
    fn state_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.prefix {
            return Ok(p.clone());
        }
        if rustix::process::geteuid().is_root() {
            return Ok(PathBuf::from("/var/lib/homeostat"));
        }
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .map(|d| d.join("homeostat"))
            .context("no state directory: set --prefix (or HOME)")
    }

    pub(super) fn hostname(&self) -> anyhow::Result<String> {
        let name = self.hostname.clone().unwrap_or_else(system_hostname);
        if name.is_empty() || name.contains(['/', '=', ',']) || name.chars().any(char::is_control) {
            bail!(
                "--hostname {name:?}: a host name cannot be empty or hold `/`, `=`, `,` or control characters"
            );
        }
        Ok(name)
    }

    /// Open the World the flags ask for (see the module doc), serving etcd first when
    /// asked to. Joining etcd retries with a backoff until it answers, saying so each time.
    pub(super) async fn open(&self) -> anyhow::Result<Opened> {
        let hostname = self.hostname()?;
        let urls_given = !self.client_urls.is_empty() || !self.server_urls.is_empty();
        if !self.etcd_prefix.starts_with('/') || !self.etcd_prefix.ends_with('/') {
            bail!(
                "--etcd-prefix {:?}: a key prefix starts and ends with `/` (e.g. /homeostat/)",
                self.etcd_prefix
            );
        }
        if self.no_server && self.seeds.is_empty() {
            bail!("--no-server needs --seeds: the etcd cluster to join");
        }
        if self.no_server && (urls_given || self.ideal_cluster_size.is_some()) {
            bail!(
                "--no-server never serves etcd: drop it, or drop --client-urls, --server-urls \
                 and --ideal-cluster-size"
            );
        }
        let ideal = match self.ideal_cluster_size {
            Some(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                match membership::check_ideal_size(n) {
                    Ok(Some(warning)) => tracing::warn!("--ideal-cluster-size: {warning}"),
                    Ok(None) => {}
                    Err(e) => bail!("--ideal-cluster-size {n}: {e}"),
                }
                Some(n)
            }
            None => None,
        };
        // A host serves, or may serve, etcd when given its URLs or an ideal size.
        let may_serve = !self.no_server && (urls_given || ideal.is_some());
        let tmp_from_env = self.prefix.is_none()
            && std::env::var_os("HOMEOSTAT_TMP_PREFIX").is_some_and(|v| !v.is_empty());
        let tmp = if self.tmp_prefix || tmp_from_env {
            Some(
                tempfile::Builder::new()
                    .prefix("homeostat-state.")
                    .tempdir()?,
            )
        } else {
            None
        };
        let state_dir = || match &tmp {
            Some(t) => Ok(t.path().to_path_buf()),
            None => self.state_dir(),
        };
        let ttl = Duration::from_secs(self.lease_ttl);
        if !may_serve && !self.seeds.is_empty() {
            let etcd = connect(&hostname, &self.seeds, &self.etcd_prefix, ttl).await;
            let follower =
                (!self.seeds_only).then(|| tokio::spawn(Follower::new(etcd.clone()).run()));
            return Ok(Opened {
                world: World::Etcd(etcd),
                membership: None,
                follower,
                lease_ttl: ttl,
                _tmp: tmp,
            });
        }
        if !may_serve {
            let dir = state_dir()?;
            let started = std::time::Instant::now();
            let world =
                tokio::task::spawn_blocking(move || LocalWorld::open(&dir, &hostname)).await??;
            tracing::debug!(
                "world: local store {} opened in {:.1?}",
                world.path().display(),
                started.elapsed()
            );
            return Ok(Opened {
                world: World::Local(world.into()),
                membership: None,
                follower: None,
                lease_ttl: ttl,
                _tmp: tmp,
            });
        }
        let or = |given: &[String], default: &[String]| {
            if given.is_empty() {
                default.to_vec()
            } else {
                given.to_vec()
            }
        };
        let client_urls = or(&self.client_urls, &[DEFAULT_CLIENT_URL.to_owned()]);
        let server_urls = or(&self.server_urls, &[DEFAULT_SERVER_URL.to_owned()]);
        let state = state_dir()?;
        let cfg = ServerConfig {
            name: hostname.clone(),
            state_dir: state.clone(),
            advertise_client_urls: or(&self.advertise_client_urls, &client_urls),
            advertise_server_urls: or(&self.advertise_server_urls, &server_urls),
            client_urls,
            server_urls,
            join: None,
        };
        // The seeds: given, or the cluster this host was part of.
        let remembered = Marker::read(&state)
            .filter(|m| m.host == hostname)
            .map(|m| m.endpoints)
            .unwrap_or_default();
        let seeds = if self.seeds.is_empty() {
            remembered
        } else {
            self.seeds.clone()
        };
        let (server, endpoints, bootstrap) = if has_data(&state) {
            // A member: come back from the data directory (etcd ignores the bootstrap
            // flags then); its etcd must run before the cluster can have a quorum. When
            // it will not start (the cluster removed the member while this host was
            // down, and etcd exits at once), a host that knows its cluster joins it as a
            // volunteer: the membership check clears the stale data.
            match EtcdServer::start(cfg.clone()).await {
                Ok(server) => {
                    let mut endpoints = server.client_urls().to_vec();
                    for s in &seeds {
                        if !endpoints.contains(s) {
                            endpoints.push(s.clone());
                        }
                    }
                    (Some(server), endpoints, false)
                }
                Err(e) if !seeds.is_empty() => {
                    tracing::warn!(
                        "{e}; joining the cluster at {} as a volunteer instead",
                        seeds.join(",")
                    );
                    (None, seeds, false)
                }
                Err(e) => return Err(e.into()),
            }
        } else if seeds.is_empty() {
            let server = EtcdServer::start(cfg.clone()).await?;
            let endpoints = server.client_urls().to_vec();
            (Some(server), endpoints, true)
        } else {
            if self.seeds.is_empty() {
                tracing::info!(
                    "world: this host left the etcd server set earlier; joining its cluster \
                     at {} again (remembered in {})",
                    seeds.join(","),
                    state.join("etcd.json").display()
                );
            }
            (None, seeds, false)
        };
        let etcd = connect(&hostname, &endpoints, &self.etcd_prefix, ttl).await;
        let etcd = &etcd;
        // Asked while etcd may be electing a leader, or while this host's own member,
        // removed while it was down, is going away: wait rather than fail.
        let setting = "reading the cluster's settings";
        if bootstrap {
            let n = ideal.unwrap_or(membership::DEFAULT_IDEAL_SIZE);
            let n = until_ok(setting, || membership::init_ideal_size(etcd, n)).await;
            tracing::info!("cluster: bootstrapped; ideal cluster size {n}");
        } else if !until_ok(setting, || membership::is_homeostat_cluster(etcd)).await {
            if let Some(server) = server {
                server.stop().await;
            }
            etcd.close().await;
            bail!(
                "the etcd at {} is not a cluster homeostat formed (it has no {}{}): \
                 homeostat serves only in clusters it started. Join it as a client with \
                 --no-server, or start the first host without --seeds",
                endpoints.join(","),
                self.etcd_prefix,
                membership::IDEAL_SIZE
            );
        } else if let Some(n) = ideal {
            let kept = until_ok(setting, || membership::init_ideal_size(etcd, n)).await;
            if kept != n {
                tracing::warn!(
                    "--ideal-cluster-size {n}: the cluster's ideal size is {kept} (set earlier, \
                     or with `homeostat cluster set ideal-size`); keeping it"
                );
            }
        }
        let membership = Membership::start(etcd.clone(), cfg, server)
            .also(tokio::spawn(chooser::run(etcd.clone())));
        Ok(Opened {
            world: World::Etcd(etcd.clone()),
            membership: Some(membership),
            follower: None,
            lease_ttl: ttl,
            _tmp: tmp,
        })
    }
}

/// Connect to etcd, retrying until it answers (see [`until_ok`]).
async fn connect(
    hostname: &str,
    endpoints: &[String],
    prefix: &str,
    ttl: Duration,
) -> Arc<EtcdWorld> {
    let w = until_ok("cannot join the cluster", || {
        EtcdWorld::connect(hostname, endpoints, prefix, ttl)
    })
    .await;
    tracing::info!("world: etcd at {} as host `{hostname}`", w.endpoints());
    Arc::new(w)
}

/// Run `attempt` until it succeeds, with a backoff (0.5 s doubling to 10 s) and an error
/// line per failure (`what: ERROR; retrying in ...`). For the requests a host makes to
/// etcd while it starts: etcd may be electing a leader, or the member it asked may have
/// just died, and nothing has been applied yet, so a signal ends the wait.
pub(super) async fn until_ok<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let mut backoff = Duration::from_millis(500);
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::error!("{what}: {e}; retrying in {:.1} s", backoff.as_secs_f64());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}
