//! The flags that choose the World (mgmt's names): where the state directory is, whether
//! this host serves etcd, joins one, or keeps everything local (the default).
//!
//! | flags | World |
//! |---|---|
//! | none | local, in `--prefix` (default `/var/lib/homeostat` as root, else the XDG state dir) |
//! | `--client-urls` and/or `--server-urls` | serve a one-member etcd (data in `--prefix`/etcd) and use it |
//! | `--seeds URL,...` (with `--no-server`) | join that etcd cluster as a client |

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::cluster::server::{EtcdServer, ServerConfig};
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
    /// The prefix of every key homeostat writes in etcd.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_ETCD_PREFIX)]
    etcd_prefix: String,
    /// Seconds a dead host's exports and converged state outlive it (its etcd lease).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_LEASE_TTL.as_secs(),
          value_parser = super::load::whole(2, 3600))]
    lease_ttl: u64,
}

/// What the World flags opened; dropped (after [`Opened::close`]) at exit.
pub(super) struct Opened {
    pub(super) world: World,
    server: Option<EtcdServer>,
    lease_ttl: Duration,
    _tmp: Option<tempfile::TempDir>,
}

impl Opened {
    /// Retract this host's leased values and stop its etcd. After a cluster-wide
    /// converge (`settled`), the host serving etcd first waits (up to twice the lease's
    /// TTL) for the other hosts to read the final states and leave.
    pub(super) async fn close(self, settled: bool) {
        if settled && self.server.is_some() {
            converged::others_gone(&self.world, self.lease_ttl * 2).await;
        }
        self.world.close().await;
        if let Some(server) = self.server {
            server.stop().await;
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

    fn hostname(&self) -> anyhow::Result<String> {
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
        let serving = !self.client_urls.is_empty() || !self.server_urls.is_empty();
        if !self.etcd_prefix.starts_with('/') || !self.etcd_prefix.ends_with('/') {
            bail!(
                "--etcd-prefix {:?}: a key prefix starts and ends with `/` (e.g. /homeostat/)",
                self.etcd_prefix
            );
        }
        if self.no_server && self.seeds.is_empty() {
            bail!("--no-server needs --seeds: the etcd cluster to join");
        }
        if serving && (self.no_server || !self.seeds.is_empty()) {
            bail!(
                "--client-urls/--server-urls serve etcd, --seeds/--no-server join one as a \
                 client: choose one (serving while joining comes with elastic membership)"
            );
        }
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
        let (world, server) = if !self.seeds.is_empty() {
            (
                connect(&hostname, &self.seeds, &self.etcd_prefix, ttl).await,
                None,
            )
        } else if serving {
            let or = |given: &[String], default: &[String]| {
                if given.is_empty() {
                    default.to_vec()
                } else {
                    given.to_vec()
                }
            };
            let client_urls = or(&self.client_urls, &[DEFAULT_CLIENT_URL.to_owned()]);
            let server_urls = or(&self.server_urls, &[DEFAULT_SERVER_URL.to_owned()]);
            let server = EtcdServer::start(ServerConfig {
                name: hostname.clone(),
                state_dir: state_dir()?,
                advertise_client_urls: or(&self.advertise_client_urls, &client_urls),
                advertise_server_urls: or(&self.advertise_server_urls, &server_urls),
                client_urls,
                server_urls,
            })
            .await?;
            let world = connect(&hostname, server.client_urls(), &self.etcd_prefix, ttl).await;
            (world, Some(server))
        } else {
            let dir = state_dir()?;
            let started = std::time::Instant::now();
            let world =
                tokio::task::spawn_blocking(move || LocalWorld::open(&dir, &hostname)).await??;
            tracing::debug!(
                "world: local store {} opened in {:.1?}",
                world.path().display(),
                started.elapsed()
            );
            (World::Local(world.into()), None)
        };
        Ok(Opened {
            world,
            server,
            lease_ttl: ttl,
            _tmp: tmp,
        })
    }
}

/// Connect to etcd, retrying with a backoff (0.5 s doubling to 10 s) and an error line
/// per failed attempt until it answers; a signal ends the wait (the process is still
/// starting).
async fn connect(hostname: &str, endpoints: &[String], prefix: &str, ttl: Duration) -> World {
    let mut backoff = Duration::from_millis(500);
    loop {
        match EtcdWorld::connect(hostname, endpoints, prefix, ttl).await {
            Ok(w) => {
                tracing::info!("world: etcd at {} as host `{hostname}`", w.endpoints());
                return World::Etcd(w.into());
            }
            Err(e) => {
                tracing::error!(
                    "cannot join the cluster: {e}; retrying in {:.1} s",
                    backoff.as_secs_f64()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}
