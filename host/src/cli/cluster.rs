//! `homeostat cluster status`: the etcd members, the ideal size, the chooser, the
//! volunteers and nominees and the live hosts of a cluster, read from any member
//! (`--seeds`, default the local etcd's client URL); `--json` for scripts.
//! `homeostat cluster set ideal-size N`: change the ideal size live (the chooser grows or
//! shrinks the server set to it).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::world::{DEFAULT_CLIENT_URL, DEFAULT_ETCD_PREFIX};
use crate::cluster::{membership, status};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Members (voter or learner, URLs, health, leader) and every live host's converged
    /// state.
    Status(StatusArgs),
    /// Change a cluster setting live.
    #[command(subcommand)]
    Set(SetCommand),
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
    /// Any member's client URLs (comma-separated).
    #[arg(long, value_name = "URL,...", value_delimiter = ',', env = "HOMEOSTAT_SEEDS",
          default_value = DEFAULT_CLIENT_URL)]
    seeds: Vec<String>,
    /// The prefix of homeostat's keys in etcd.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_ETCD_PREFIX)]
    etcd_prefix: String,
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
            let s = status::read(&args.at.seeds, &args.at.etcd_prefix).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", s.to_text());
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
            let old = status::set_ideal_size(&args.at.seeds, &args.at.etcd_prefix, n).await?;
            eprintln!(
                "ideal cluster size {n} (was {old}); the chooser grows or shrinks the server \
                 set to it, one member at a time (`homeostat cluster status` shows how far)"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
