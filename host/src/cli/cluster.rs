//! `homeostat cluster status`: the etcd members, the ideal size, the chooser, the
//! volunteers and nominees and the live hosts of a cluster, read from any member
//! (`--seeds`, default the local etcd's client URL); `--json` for scripts. With TLS
//! files (`--ca`, `--cert`, `--key`, or `tls/` in the state directory) it connects over
//! mutual TLS, presenting that host's certificate.
//! `homeostat cluster set ideal-size N`: change the ideal size live (the chooser grows or
//! shrinks the server set to it).
//! `homeostat cluster allow HOST [--serve]` and `cluster deny HOST`: per-host rights on a
//! cluster over TLS (see [`crate::cluster::rbac`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::world::{DEFAULT_CLIENT_ADDR, DEFAULT_ETCD_PREFIX, TlsArgs, state_dir};
use crate::cluster::{membership, rbac, status};
use crate::tls::Security;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Members (voter or learner, URLs, health, leader) and every live host's converged
    /// state.
    Status(StatusArgs),
    /// Change a cluster setting live.
    #[command(subcommand)]
    Set(SetCommand),
    /// Let a host into a cluster on TLS: as a host that writes only its own keys, or as
    /// a member (`--serve`). Run with a member's certificate.
    Allow(AllowArgs),
    /// Take every right from a host of a cluster on TLS (its certificate stays valid,
    /// etcd refuses it everything). Run with a member's certificate.
    Deny(DenyArgs),
}

#[derive(Debug, Args)]
pub struct AllowArgs {
    /// The host (its certificate's common name, its `--hostname`).
    #[arg(value_name = "HOSTNAME")]
    host: String,
    /// As a member: it may serve etcd and change the membership (etcd's root role).
    #[arg(long)]
    serve: bool,
    #[command(flatten)]
    at: At,
}

#[derive(Debug, Args)]
pub struct DenyArgs {
    /// The host.
    #[arg(value_name = "HOSTNAME")]
    host: String,
    #[command(flatten)]
    at: At,
}

#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// The number of etcd voting members the hosts keep (1 to 7).
    IdealSize(IdealSizeArgs),
}

#[derive(Debug, Args)]
pub struct IdealSizeArgs {
    /// The new ideal size.
    #[arg(value_name = "N")]
    size: u64,
    #[command(flatten)]
    at: At,
}

/// Where the cluster is.
#[derive(Debug, Args)]
pub struct At {
    /// Any member's client URLs (comma-separated; default the local etcd's,
    /// http://127.0.0.1:2379, or https:// with TLS).
    #[arg(
        long,
        value_name = "URL,...",
        value_delimiter = ',',
        env = "HOMEOSTAT_SEEDS"
    )]
    seeds: Vec<String>,
    /// The prefix of homeostat's keys in etcd.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_ETCD_PREFIX)]
    etcd_prefix: String,
    /// The state directory whose `tls/` holds the certificate to connect with (default
    /// as for `run`).
    #[arg(long, value_name = "DIR", env = "HOMEOSTAT_PREFIX")]
    prefix: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
}

impl At {
    /// A connection for changing etcd's users: over TLS only (per-host rights need the
    /// certificates' names).
    async fn admin(&self) -> anyhow::Result<etcd_client::Client> {
        let (seeds, security) = self.open()?;
        if !security.is_tls() {
            anyhow::bail!(
                "per-host rights need a cluster on mutual TLS (its hosts are known by their \
                 certificates): give a member's --ca, --cert and --key, or its --prefix"
            );
        }
        let (client, _) = status::connect_any(&seeds, &security)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the cluster at {}: {e}", seeds.join(",")))?;
        Ok(client)
    }

    /// The seeds (checked) and how to connect to them.
    fn open(&self) -> anyhow::Result<(Vec<String>, Security)> {
        let state = state_dir(self.prefix.as_deref()).ok();
        let security = self.tls.security(state.as_deref(), None)?;
        let seeds = if self.seeds.is_empty() {
            vec![format!("{}://{DEFAULT_CLIENT_ADDR}", security.scheme())]
        } else {
            self.seeds.clone()
        };
        self.tls
            .check_urls(&security, seeds.iter().map(|u| ("--seeds", u)))?;
        Ok((seeds, security))
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    at: At,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn cluster(cmd: ClusterCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClusterCommand::Status(args) => {
            let (seeds, security) = args.at.open()?;
            let s = status::read(&seeds, &args.at.etcd_prefix, &security).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", s.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Allow(args) => {
            let mut client = args.at.admin().await?;
            rbac::allow(&mut client, &args.at.etcd_prefix, &args.host, args.serve).await?;
            let what = if args.serve {
                "a member: it may serve etcd"
            } else {
                "a host: it writes only its own keys"
            };
            eprintln!("allowed `{}` as {what}", args.host);
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Deny(args) => {
            let mut client = args.at.admin().await?;
            let member = rbac::deny(&mut client, &args.at.etcd_prefix, &args.host).await?;
            eprintln!(
                "`{}` may no longer read or write the World; its exports are gone",
                args.host
            );
            if member {
                eprintln!(
                    "warning: `{}` was a member: its etcd still holds every key and stays in \
                     the cluster until it stops; stop homeostat there (the chooser then \
                     removes its member), and never give it back its data directory",
                    args.host
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Set(SetCommand::IdealSize(args)) => {
            let n = usize::try_from(args.size).unwrap_or(usize::MAX);
            match membership::check_ideal_size(n) {
                Ok(Some(warning)) => eprintln!("warning: {warning}"),
                Ok(None) => {}
                Err(e) => anyhow::bail!("ideal-size {n}: {e}"),
            }
            let (seeds, security) = args.at.open()?;
            let old = status::set_ideal_size(&seeds, &args.at.etcd_prefix, n, &security).await?;
            eprintln!(
                "ideal cluster size {n} (was {old}); the chooser grows or shrinks the server \
                 set to it, one member at a time (`homeostat cluster status` shows how far)"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
