//! The remote-execution flags of `homeostat run` (mgmt's names where mgmt had them) and
//! what turns them into a fleet run ([`crate::remote`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::load::PluginArgs;
use crate::graph::GraphDoc;
use crate::plugin::registry::Registry;
use crate::remote::transfer::{Blob, Payload, elf_machine};
use crate::remote::{KnownHosts, SshOptions, Target, target};

/// Most connections `--cconns` accepts.
const MAX_CCONNS: u64 = 1024;

#[derive(Debug, Args)]
pub(super) struct RemoteArgs {
    /// Run this graph on the host its `remote: ssh://user@host:port` names (repeatable):
    /// the binary, plugins and graph are copied there over SSH, and the host joins this
    /// host's World through a reverse tunnel.
    #[arg(long = "remote", value_name = "GRAPH.yaml")]
    pub(super) remotes: Vec<PathBuf>,
    /// Hosts connected to and copied to at once (1 to 1024). A host whose graph runs no
    /// longer counts. 16 keeps an uplink busy with copies without making every host
    /// wait for all the others' handshakes.
    #[arg(long, value_name = "N", default_value_t = 16, env = "HOMEOSTAT_CCONNS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_CCONNS))]
    cconns: u64,
    /// A private key to log in with (repeatable; default: ~/.ssh/id_ed25519, id_ecdsa,
    /// id_rsa). The SSH agent's keys are tried first when SSH_AUTH_SOCK is set.
    #[arg(long, value_name = "PATH")]
    ssh_identity: Vec<PathBuf>,
    /// Record the host key of a host that known_hosts does not know yet (a changed key
    /// is always refused).
    #[arg(long)]
    ssh_accept_new: bool,
    /// Ask for a password on the terminal when no key logs in.
    #[arg(long)]
    allow_interactive: bool,
    /// Seconds to connect, verify and log in to a host before it is reported as failed.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    ssh_timeout: u64,
    /// Copy into a fresh temporary directory on each host and remove it at the end,
    /// instead of the cache keyed by SHA-256.
    #[arg(long)]
    no_caching: bool,
    /// Ship this homeostat binary instead of the running one (e.g. a static musl build
    /// for hosts of another distribution, or another architecture).
    #[arg(long, value_name = "PATH")]
    remote_binary: Option<PathBuf>,
}

impl RemoteArgs {
    pub(super) fn any(&self) -> bool {
        !self.remotes.is_empty()
    }

    /// The targets of the `--remote` graphs, parsed and checked (duplicates refused)
    /// before anything is opened or copied; with their documents.
    pub(super) fn targets(
        &self,
        max_bytes: u64,
        me: &str,
    ) -> anyhow::Result<Vec<(Target, GraphDoc)>> {
        let docs = crate::remote::fleet::parse_graphs(&self.remotes, max_bytes)
            .map_err(anyhow::Error::msg)?;
        let targets = target::targets(&docs, me).map_err(anyhow::Error::msg)?;
        Ok(targets
            .into_iter()
            .zip(docs.into_iter().map(|(_, d)| d))
            .collect())
    }

    pub(super) fn ssh(&self) -> SshOptions {
        SshOptions {
            known_hosts: KnownHosts::standard(self.ssh_accept_new),
            identities: self.ssh_identity.clone(),
            allow_interactive: self.allow_interactive,
            timeout: Duration::from_secs(self.ssh_timeout),
        }
    }

    pub(super) fn cconns(&self) -> usize {
        usize::try_from(self.cconns).unwrap_or(usize::MAX)
    }

    pub(super) fn caching(&self) -> bool {
        !self.no_caching
    }

    /// What every host gets: the binary (hashed once), the third-party plugins that
    /// provide the kinds the remote graphs use, and the grants file when one is in use.
    pub(super) async fn payload(
        &self,
        docs: &[&GraphDoc],
        registry: &Registry,
        plugins: &PluginArgs,
    ) -> anyhow::Result<Payload> {
        let binary = match &self.remote_binary {
            Some(p) => p.clone(),
            None => std::env::current_exe()?,
        };
        let machine = elf_machine(&binary).map_err(anyhow::Error::msg)?;
        let binary = Blob::hash(&binary).await.map_err(anyhow::Error::msg)?;
        if self.remote_binary.is_none() && binary.size > 100 << 20 {
            tracing::warn!(
                "shipping a {:.0} MB binary with its debug information; `cargo xtask dist` \
                 builds a stripped one to pass with --remote-binary",
                binary.size as f64 / 1e6
            );
        }
        let mut wanted: Vec<(String, PathBuf)> = Vec::new();
        for doc in docs {
            let kinds = doc.resources.iter().map(|r| &r.kind);
            for kind in kinds.chain(doc.collect.iter().map(|c| &c.kind)) {
                let Some(entry) = registry.kind(kind) else {
                    continue; // the remote reports an unknown kind, located
                };
                let origin = Path::new(&entry.plugin.origin);
                if entry.plugin.origin == "bundled" || !origin.is_file() {
                    continue;
                }
                let name = origin
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("{}.wasm", entry.plugin.manifest.name));
                if !wanted.iter().any(|(_, p)| p == origin) {
                    wanted.push((name, origin.to_path_buf()));
                }
            }
        }
        let mut shipped = Vec::new();
        for (name, path) in wanted {
            shipped.push((name, Blob::hash(&path).await.map_err(anyhow::Error::msg)?));
        }
        let grants = match plugins.grants_in_use() {
            Some(path) if !shipped.is_empty() => Some(std::fs::read(&path).map_err(|e| {
                anyhow::anyhow!("cannot read the grants file {}: {e}", path.display())
            })?),
            _ => None,
        };
        Ok(Payload {
            binary,
            machine,
            plugins: shipped,
            grants,
        })
    }
}
