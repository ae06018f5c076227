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
//! **TLS** (see [`crate::tls`]): with `--ca`, `--cert` and `--key`, or the same files in
//! `tls/` of the state directory, every etcd URL is `https://`, the etcd this host
//! serves takes only clients and peers with a certificate of the cluster's CA, and this
//! host presents its own. Without them, a plaintext URL off loopback is refused unless
//! `--insecure` is given.
//!
//! A host that served before comes back from its data directory (and its `etcd.json`
//! marker): its etcd starts at once, whatever the seeds; a host that was unnominated
//! finds its cluster again from the URLs the marker remembers, rather than bootstrapping
//! a second one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::cluster::chooser;
use crate::cluster::membership::{self, Follower, Membership};
use crate::cluster::rbac;
use crate::cluster::server::{EtcdServer, Marker, ServerConfig, has_data};
use crate::tls::{Identity, Security, TlsFiles};
use crate::world::etcd::EtcdWorld;
use crate::world::local::LocalWorld;
use crate::world::{DEFAULT_LEASE_TTL, World, converged};

/// The etcd key prefix by default.
pub const DEFAULT_ETCD_PREFIX: &str = "/homeostat/";
/// etcd's client address by default when this host serves etcd (`http://` or, with TLS,
/// `https://` before it).
pub const DEFAULT_CLIENT_ADDR: &str = "127.0.0.1:2379";
/// etcd's peer address by default when this host serves etcd.
pub const DEFAULT_SERVER_ADDR: &str = "127.0.0.1:2380";

/// The TLS flags (see [`crate::tls`]), shared by `run` and `cluster`.
#[derive(Debug, Clone, Default, Args)]
pub(super) struct TlsArgs {
    /// The cluster's CA certificate (default: tls/ca.crt in the state directory).
    /// With a CA, certificate and key, etcd is served and reached over mutual TLS.
    #[arg(long, value_name = "FILE", env = "HOMEOSTAT_CA")]
    ca: Option<PathBuf>,
    /// This host's certificate, made by `homeostat ca issue HOSTNAME` (default:
    /// tls/host.crt in the state directory).
    #[arg(long, value_name = "FILE", env = "HOMEOSTAT_CERT")]
    cert: Option<PathBuf>,
    /// The certificate's private key, mode 0600 (default: tls/host.key in the state
    /// directory).
    #[arg(long, value_name = "FILE", env = "HOMEOSTAT_KEY")]
    key: Option<PathBuf>,
    /// Allow plaintext etcd URLs off loopback: anyone who reaches them can change what
    /// every host runs. Only on a network you trust.
    #[arg(long)]
    insecure: bool,
    /// The name the etcd servers' certificates are checked against, instead of the host
    /// of the URL dialled (remote execution: its tunnel's 127.0.0.1 is the initiator).
    #[arg(long, value_name = "NAME", hide = true)]
    tls_server_name: Option<String>,
}

impl TlsArgs {
    /// How this host talks to etcd: mutual TLS when a TLS flag is given or the state
    /// directory holds a host certificate (checked now, see [`Identity::load`]), else
    /// plain. `host`: the name the certificate must be for (any host's when `None`).
    pub(super) fn security(
        &self,
        state_dir: Option<&Path>,
        host: Option<&str>,
    ) -> anyhow::Result<Security> {
        let defaults = state_dir.map(TlsFiles::in_state_dir);
        let given = self.ca.is_some() || self.cert.is_some() || self.key.is_some();
        if !given && !defaults.as_ref().is_some_and(|d| d.cert.exists()) {
            if self.tls_server_name.is_some() {
                bail!("--tls-server-name needs this host's TLS files (--ca, --cert, --key)");
            }
            return Ok(Security::Plain);
        }
        let pick = |flag: &Option<PathBuf>, default: Option<PathBuf>, name: &str| {
            flag.clone().or(default).with_context(|| {
                format!("--{name} is needed with the other TLS flags (no state directory)")
            })
        };
        let files = TlsFiles {
            ca: pick(&self.ca, defaults.as_ref().map(|d| d.ca.clone()), "ca")?,
            cert: pick(
                &self.cert,
                defaults.as_ref().map(|d| d.cert.clone()),
                "cert",
            )?,
            key: pick(&self.key, defaults.map(|d| d.key), "key")?,
        };
        let identity = Identity::load(&files, host)?;
        if let Some(days) = identity.cert.expires_soon(time::OffsetDateTime::now_utc()) {
            tracing::warn!(
                "tls: {} expires on {} ({days} days left): issue a new one with `homeostat ca \
                 issue {}` before then, or this host loses the cluster",
                files.cert.display(),
                crate::tls::date(identity.cert.not_after),
                identity.name()
            );
        }
        tracing::debug!(
            "tls: etcd over mutual TLS as `{}` ({}, valid until {})",
            identity.name(),
            files.cert.display(),
            crate::tls::date(identity.cert.not_after)
        );
        Ok(Security::Tls {
            identity: Arc::new(identity),
            server_name: self.tls_server_name.clone(),
        })
    }

    /// Check every URL of `urls` (named by its flag) against `security` (see
    /// [`Security::check_url`]).
    pub(super) fn check_urls<'a>(
        &self,
        security: &Security,
        urls: impl IntoIterator<Item = (&'a str, &'a String)>,
    ) -> anyhow::Result<()> {
        for (flag, url) in urls {
            security
                .check_url(flag, url, self.insecure)
                .map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }
}

/// The state directory: `prefix`, else /var/lib/homeostat as root, else the XDG state
/// directory.
pub(super) fn state_dir(prefix: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = prefix {
        return Ok(p.to_owned());
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
    /// Serve etcd: its client URLs (default http://127.0.0.1:2379, https:// with TLS,
    /// when --server-urls is set).
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    client_urls: Vec<String>,
    /// Serve etcd: its peer URLs (default http://127.0.0.1:2380, https:// with TLS, when
    /// --client-urls is set).
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
    #[command(flatten)]
    tls: TlsArgs,
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
            let scheme = if self.tls_given() { "https" } else { "http" };
            self.client_urls = vec![format!("{scheme}://{DEFAULT_CLIENT_ADDR}")];
            self.server_urls = vec![format!("{scheme}://{DEFAULT_SERVER_ADDR}")];
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
        state_dir(self.prefix.as_deref())
    }

    /// The CA directory in the state directory (`ca/`, as `homeostat ca` makes it).
    pub(super) fn ca_dir(&self) -> Option<PathBuf> {
        self.persistent_state_dir()
            .map(|d| d.join(crate::tls::ca::CA_DIR))
    }

    /// Whether the state directory is a throwaway one (`--tmp-prefix`, or
    /// HOMEOSTAT_TMP_PREFIX without `--prefix`): it holds no TLS files or CA.
    fn tmp_state(&self) -> bool {
        self.tmp_prefix
            || (self.prefix.is_none()
                && std::env::var_os("HOMEOSTAT_TMP_PREFIX").is_some_and(|v| !v.is_empty()))
    }

    /// The state directory, unless it is a throwaway one.
    fn persistent_state_dir(&self) -> Option<PathBuf> {
        (!self.tmp_state()).then(|| self.state_dir().ok()).flatten()
    }

    /// Whether this host has TLS files (given, or in the state directory's `tls/`).
    fn tls_given(&self) -> bool {
        self.tls.ca.is_some()
            || self.tls.cert.is_some()
            || self.tls.key.is_some()
            || self
                .persistent_state_dir()
                .is_some_and(|d| TlsFiles::in_state_dir(&d).cert.exists())
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
        let tmp = if self.tmp_state() {
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
        let security = if may_serve || !self.seeds.is_empty() {
            let state = state_dir().ok();
            self.tls.security(state.as_deref(), Some(&hostname))?
        } else {
            Security::Plain
        };
        self.tls
            .check_urls(&security, self.seeds.iter().map(|u| ("--seeds", u)))?;
        if !may_serve && !self.seeds.is_empty() {
            let etcd = connect(&hostname, &self.seeds, &self.etcd_prefix, ttl, &security).await?;
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
        let scheme = security.scheme();
        let client_urls = or(
            &self.client_urls,
            &[format!("{scheme}://{DEFAULT_CLIENT_ADDR}")],
        );
        let server_urls = or(
            &self.server_urls,
            &[format!("{scheme}://{DEFAULT_SERVER_ADDR}")],
        );
        let state = state_dir()?;
        let cfg = ServerConfig {
            name: hostname.clone(),
            state_dir: state.clone(),
            advertise_client_urls: or(&self.advertise_client_urls, &client_urls),
            advertise_server_urls: or(&self.advertise_server_urls, &server_urls),
            client_urls,
            server_urls,
            join: None,
            tls: match &security {
                Security::Tls { identity, .. } => Some(identity.clone()),
                Security::Plain => None,
            },
        };
        self.tls.check_urls(
            &security,
            (cfg.client_urls.iter().map(|u| ("--client-urls", u)))
                .chain(cfg.server_urls.iter().map(|u| ("--server-urls", u)))
                .chain(
                    cfg.advertise_client_urls
                        .iter()
                        .map(|u| ("--advertise-client-urls", u)),
                )
                .chain(
                    cfg.advertise_server_urls
                        .iter()
                        .map(|u| ("--advertise-server-urls", u)),
                ),
        )?;
        // The seeds: given, or the cluster this host was part of.
        let remembered = Marker::read(&state)
            .filter(|m| m.host == hostname)
            .map(|m| m.endpoints)
            .unwrap_or_default();
        if self.seeds.is_empty() {
            self.tls.check_urls(
                &security,
                remembered
                    .iter()
                    .map(|u| ("the cluster's URL remembered in etcd.json", u)),
            )?;
        }
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
        let etcd = connect(&hostname, &endpoints, &self.etcd_prefix, ttl, &security).await?;
        let etcd = &etcd;
        // Asked while etcd may be electing a leader, or while this host's own member,
        // removed while it was down, is going away: wait rather than fail.
        let setting = "reading the cluster's settings";
        if bootstrap {
            let n = ideal.unwrap_or(membership::DEFAULT_IDEAL_SIZE);
            let n = until_ok(setting, || membership::init_ideal_size(etcd, n)).await;
            tracing::info!("cluster: bootstrapped; ideal cluster size {n}");
            if security.is_tls() {
                // Over TLS, per-host rights from the start (see `cluster::rbac`).
                rbac::bootstrap(&mut etcd.client(), &hostname).await?;
                tracing::info!(
                    "cluster: etcd's per-host rights are on: `{hostname}` is a member; allow \
                     each other host with `homeostat cluster allow HOST [--serve]`"
                );
            }
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

/// Connect to etcd, retrying until it answers (see [`until_ok`]). Fails at once when
/// this host speaks plaintext to an etcd that serves only TLS, which no retry mends.
async fn connect(
    hostname: &str,
    endpoints: &[String],
    prefix: &str,
    ttl: Duration,
    security: &Security,
) -> anyhow::Result<Arc<EtcdWorld>> {
    const WHAT: &str = "cannot join the cluster";
    let w = match EtcdWorld::connect(hostname, endpoints, prefix, ttl, security).await {
        Ok(w) => w,
        Err(e) => {
            if !security.is_tls() {
                for url in endpoints {
                    if crate::tls::serves_only_tls(url).await {
                        bail!(
                            "{WHAT}: etcd at {url} answers in TLS: it serves TLS only. \
                             Give this host its certificate (`homeostat ca issue \
                             {hostname}`, then --ca, --cert and --key, or tls/ in the state \
                             directory) and use https:// (docs/security.md)"
                        );
                    }
                }
            }
            tracing::error!("{WHAT}: {e}; retrying in 0.5 s");
            tokio::time::sleep(Duration::from_millis(500)).await;
            until_ok(WHAT, || {
                EtcdWorld::connect(hostname, endpoints, prefix, ttl, security)
            })
            .await
        }
    };
    let tls = if security.is_tls() {
        " over mutual TLS"
    } else {
        ""
    };
    tracing::info!("world: etcd at {}{tls} as host `{hostname}`", w.endpoints());
    Ok(Arc::new(w))
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
