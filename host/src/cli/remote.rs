//! The remote-execution flags of `homeostat run` (mgmt's names where mgmt had them) and
//! what turns them into a fleet run ([`crate::remote`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::load::PluginArgs;
use crate::graph::GraphDoc;
use crate::plugin::registry::Registry;
use crate::remote::certs::{CertSource, RemoteTls};
use crate::remote::target::{self, Node};
use crate::remote::transfer::{Blob, Payload, elf_machine};
use crate::remote::{KnownHosts, SshOptions};
use crate::tls::ca::Ca;

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
    /// Compress the SSH connection (zlib): fewer bytes on a slow link, more CPU on a
    /// fast one (off by default; a stripped binary compresses to about a third).
    #[arg(long)]
    ssh_compression: bool,
    /// Copy into a fresh temporary directory on each host and remove it at the end,
    /// instead of the cache keyed by SHA-256.
    #[arg(long)]
    no_caching: bool,
    /// Record and check host keys in this file instead of ~/.ssh/known_hosts (hosts
    /// running graphs below them in a hierarchy get the initiator's lines this way).
    #[arg(long, value_name = "FILE")]
    ssh_known_hosts: Option<PathBuf>,
    /// The deepest level of hierarchical remote execution: a graph run at this depth may
    /// not list `remotes:` (1 to 8).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=8))]
    max_depth: u32,
    /// This host's level in a hierarchy (0 for the initiator; set by the host above).
    #[arg(long, value_name = "N", default_value_t = 0, hide = true)]
    depth: u32,
    /// Ship this homeostat binary instead of the running one (e.g. a static musl build
    /// for hosts of another distribution, or another architecture).
    #[arg(long, value_name = "PATH")]
    remote_binary: Option<PathBuf>,
    /// The cluster CA that issues each remote host a short-lived certificate when this
    /// host's World is on mutual TLS (default: ca/ in the state directory).
    #[arg(long, value_name = "DIR", env = "HOMEOSTAT_CA_DIR")]
    ca_dir: Option<PathBuf>,
    /// The certificates of the hosts below this one, issued by the host above (set by
    /// the host above in a hierarchy).
    #[arg(long, value_name = "DIR", hide = true)]
    remote_certs: Option<PathBuf>,
}

impl RemoteArgs {
    /// The graphs to run remotely: `--remote` files, and those the local graph lists
    /// under `remotes:`, each with what runs below it; read and checked (duplicates,
    /// depth) before anything is opened or copied. Empty when there are none.
    /// `local` is this host's graph file and its text (parsed again here only when it
    /// may list `remotes:`).
    pub(super) fn nodes(
        &self,
        local: Option<(&Path, &str)>,
        max_bytes: u64,
        me: &str,
    ) -> anyhow::Result<Vec<Node>> {
        let mut files = self.remotes.clone();
        if let Some((path, text)) = local
            && text.contains("remotes")
        {
            let doc = crate::plan::parse_text(path, text)?;
            if !doc.remotes.is_empty() {
                target::check_depth(path, self.depth, self.max_depth)
                    .map_err(anyhow::Error::msg)?;
            }
            files.extend(target::remotes_of(path, &doc));
        }
        if files.is_empty() {
            return Ok(Vec::new());
        }
        target::tree(&files, me, self.depth, self.max_depth, max_bytes).map_err(anyhow::Error::msg)
    }

    /// Where the remotes' certificates come from when the World is on mutual TLS
    /// (`server_name`: what they check this host's etcd against, see
    /// [`crate::tls::Security::server_name_for_remotes`]; `None`: plaintext).
    /// `default_ca`: the state directory's `ca/`.
    pub(super) fn tls(
        &self,
        server_name: Option<Option<&str>>,
        default_ca: Option<PathBuf>,
    ) -> anyhow::Result<Option<RemoteTls>> {
        let Some(server_name) = server_name else {
            return Ok(None);
        };
        let source = match (&self.remote_certs, self.ca_dir.clone().or(default_ca)) {
            (Some(dir), _) => CertSource::Dir(dir.clone()),
            (None, Some(dir)) => CertSource::Ca(
                Ca::open(&dir)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "this host's World is on mutual TLS, so each remote host gets a \
                     certificate issued by the cluster CA, and the CA cannot be opened: {e} \
                     (give its directory with --ca-dir, or run the remotes from the host \
                     that holds it)"
                        )
                    })?
                    .into(),
            ),
            (None, None) => anyhow::bail!(
                "this host's World is on mutual TLS, so each remote host needs a \
                 certificate issued by the cluster CA: give its directory with --ca-dir"
            ),
        };
        Ok(Some(RemoteTls {
            source,
            server_name: server_name.map(str::to_owned),
        }))
    }

    pub(super) fn depths(&self) -> (u32, u32) {
        (self.depth, self.max_depth)
    }

    pub(super) fn ssh(&self) -> SshOptions {
        let mut known_hosts = KnownHosts::standard(self.ssh_accept_new);
        if let Some(file) = &self.ssh_known_hosts {
            known_hosts.user = file.clone();
        }
        SshOptions {
            known_hosts,
            identities: self.ssh_identity.clone(),
            allow_interactive: self.allow_interactive,
            timeout: Duration::from_secs(self.ssh_timeout),
            compression: self.ssh_compression,
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
        // A locked graph ships exactly its pinned builds: another build here stops the
        // run before any host is reached.
        for doc in docs {
            crate::plan::pins::check(doc, registry)
                .map_err(|e| anyhow::anyhow!("{}: {e}", doc.file.display()))?;
        }
        let mut wanted: Vec<(String, PathBuf, Vec<String>)> = Vec::new();
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
                match wanted.iter_mut().find(|(_, p, _)| p == origin) {
                    Some((_, _, kinds)) if !kinds.contains(kind) => kinds.push(kind.clone()),
                    Some(_) => {}
                    None => wanted.push((name, origin.to_path_buf(), vec![kind.clone()])),
                }
            }
        }
        let mut shipped = Vec::new();
        for (name, path, kinds) in wanted {
            let blob = Blob::hash(&path).await.map_err(anyhow::Error::msg)?;
            shipped.push((name, blob, kinds));
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
