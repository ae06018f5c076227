//! `homeostat cluster status`: the etcd members and the live hosts of a cluster, read
//! from any member (`--seeds`, default the local etcd's client URL). `--json` for scripts.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::world::{DEFAULT_CLIENT_URL, DEFAULT_ETCD_PREFIX};
use crate::cluster::status;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Members (voter or learner, URLs, health, leader) and every live host's converged
    /// state.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Any member's client URLs (comma-separated).
    #[arg(long, value_name = "URL,...", value_delimiter = ',', env = "HOMEOSTAT_SEEDS",
          default_value = DEFAULT_CLIENT_URL)]
    seeds: Vec<String>,
    /// The prefix of homeostat's keys in etcd.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_ETCD_PREFIX)]
    etcd_prefix: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn cluster(cmd: ClusterCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClusterCommand::Status(args) => {
            let s = status::read(&args.seeds, &args.etcd_prefix).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", s.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
