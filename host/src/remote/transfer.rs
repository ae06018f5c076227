//! What crosses the wire to a remote, over SFTP: the homeostat binary, the third-party
//! plugins the graph's kinds need, the grants policy, and the graph.
//!
//! **Layout on the remote.** A working directory (`/var/lib/homeostat/remote/` when
//! logged in as root, else `~/.cache/homeostat/remote/`; with `--no-caching` a fresh
//! `mktemp -d` directory, removed at the end) holds `cache/<sha256>`, every file shipped
//! by its content's SHA-256, and `run/<host>/` with the graph, the grants, `plugins/`
//! (hard links into `cache/`) and `state/` (the run's `--prefix`).
//!
//! **Cache and atomicity.** A file whose name is its hash is skipped when it is already
//! there with its size: it was renamed into place only once complete. A copy is written
//! to a temporary name, flushed (`fsync@openssh.com`), then renamed, so an interrupted
//! copy never leaves a binary that runs. The graph and the grants are replaced with
//! `mv -f` (SFTP's own rename refuses an existing target), under the host's staging
//! name, so the remote's live reload sees one rename and never a half-written graph.
//!
//! **Platform.** Before anything is copied, `uname -s -m` on the remote must match the
//! binary shipped (the running one, or `--remote-binary`, whose ELF header says its
//! machine): a mismatch is refused with both names.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use russh_sftp::client::SftpSession;
use russh_sftp::protocol::OpenFlags;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ssh::{Connection, quote};
use crate::sys::temp_name;

/// A local file to ship, with its digest.
#[derive(Debug, Clone)]
pub struct Blob {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

impl Blob {
    /// Reads and hashes `path` (on a blocking thread: a binary is tens of MB).
    pub async fn hash(path: &Path) -> Result<Blob, String> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut hasher = Sha256::new();
            let size = std::io::copy(&mut file, &mut hasher)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Ok(Blob {
                sha256: hex::encode(hasher.finalize()),
                size,
                path,
            })
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// What hosts get: the binary, plugins (file name on the remote, blob, the kinds it
/// provides), grants.
#[derive(Debug, Clone)]
pub struct Payload {
    pub binary: Blob,
    /// The machine the binary is built for (`x86_64`, `aarch64`, ...).
    pub machine: String,
    pub plugins: Vec<(String, Blob, Vec<String>)>,
    pub grants: Option<Vec<u8>>,
}

impl Payload {
    /// Only the plugins whose kinds `docs` use (resources or collects), and the grants
    /// only when some plugin goes.
    pub fn for_docs(&self, docs: &[&crate::graph::GraphDoc]) -> Payload {
        let used = |kind: &String| {
            docs.iter().any(|d| {
                d.resources.iter().any(|r| &r.kind == kind)
                    || d.collect.iter().any(|c| &c.kind == kind)
            })
        };
        let plugins: Vec<_> = self
            .plugins
            .iter()
            .filter(|(_, _, kinds)| kinds.iter().any(used))
            .cloned()
            .collect();
        Payload {
            binary: self.binary.clone(),
            machine: self.machine.clone(),
            grants: if plugins.is_empty() {
                None
            } else {
                self.grants.clone()
            },
            plugins,
        }
    }
}

/// Where things landed on one remote.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The working directory (absolute).
    pub base: String,
    /// Whether `base` is a temporary directory to remove at the end.
    pub temporary: bool,
    pub binary: String,
    pub run_dir: String,
    /// The graph this host runs (the first of the files shipped).
    pub graph: String,
    /// Every graph file shipped, by its path relative to the tree's base, to where it is.
    pub graphs: Vec<(String, String)>,
    /// The known_hosts file for the hosts below this one.
    pub known_hosts: Option<String>,
    pub plugin_dir: Option<String>,
    pub grants: Option<String>,
    /// Bytes of file content sent (the binary, plugins, grants, graph).
    pub bytes_sent: u64,
}

/// The remote's platform and home, from one command.
struct Remote {
    machine: String,
    root: bool,
    home: String,
}

async fn probe(conn: &Connection) -> Result<Remote, String> {
    let out = conn
        .check("uname -s && uname -m && id -u && printf '%s\\n' \"$HOME\"")
        .await?;
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    let [os, machine, uid, home] = lines[..] else {
        return Err(format!(
            "{}: unexpected answer to `uname`/`id`: {text:?}",
            conn.label
        ));
    };
    if os != "Linux" {
        return Err(format!(
            "{}: the remote runs {os}; homeostat runs on Linux only",
            conn.label
        ));
    }
    Ok(Remote {
        machine: machine.to_string(),
        root: uid == "0",
        home: home.to_string(),
    })
}

/// The machine an ELF executable is built for, from its header (`e_machine`). Read by
/// hand: 20 bytes at a fixed offset do not need an object-file crate.
pub fn elf_machine(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut head = Vec::with_capacity(20);
    std::fs::File::open(path)
        .and_then(|f| f.take(20).read_to_end(&mut head))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return Err(format!("{} is not an ELF executable", path.display()));
    }
    let machine = if head[5] == 2 {
        u16::from_be_bytes([head[18], head[19]])
    } else {
        u16::from_le_bytes([head[18], head[19]])
    };
    Ok(match machine {
        0x3e => "x86_64",
        0xb7 => "aarch64",
        0x28 => "arm",
        0x03 => "i686",
        0xf3 => "riscv64",
        0x15 => "ppc64",
        0x16 => "s390x",
        other => return Ok(format!("ELF machine {other:#x}")),
    }
    .to_string())
}

/// Whether a binary built for `ours` runs on a host whose `uname -m` says `theirs`.
fn runs_on(ours: &str, theirs: &str) -> bool {
    let norm = |m: &str| match m {
        "amd64" => "x86_64".to_string(),
        "arm64" | "armv8l" | "aarch64_be" => "aarch64".to_string(),
        m if m.starts_with("armv") => "arm".to_string(),
        "i386" | "i486" | "i586" => "i686".to_string(),
        m => m.to_string(),
    };
    norm(ours) == norm(theirs)
}

/// Reports a copy's progress: a bar on a terminal, else one line when it starts.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn start(host: &str, what: &str, size: u64) -> Progress {
        if size >= 1 << 20 && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(size),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{prefix} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(format!("{host}: {what}"));
            return Progress(Some(bar));
        }
        if size >= 1 << 20 {
            tracing::info!("{host}: copying {what} ({:.1} MB)", size as f64 / 1e6);
        }
        Progress(None)
    }

    fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// The graph files one host gets: its own first, then those it runs remotely, each by
/// its path relative to their common directory (so `remotes:` entries still resolve).
#[derive(Debug, Clone)]
pub struct Graphs {
    pub files: Vec<(String, Vec<u8>)>,
    /// known_hosts lines for the hosts below (when there are any).
    pub known_hosts: Option<Vec<u8>>,
}

/// Copies the payload and the graphs for `host`, skipping what the cache has.
pub async fn place(
    conn: &Connection,
    sftp: &SftpSession,
    host: &str,
    payload: &Payload,
    graphs: &Graphs,
    caching: bool,
) -> Result<Placed, String> {
    let remote = probe(conn).await?;
    if !runs_on(&payload.machine, &remote.machine) {
        return Err(format!(
            "{}: the remote is {} but the binary to ship is built for {}; build one for \
             the remote (e.g. `cargo build --release --target {}-unknown-linux-musl`) and \
             pass it with --remote-binary",
            conn.label, remote.machine, payload.machine, remote.machine
        ));
    }
    let (base, temporary) = if caching {
        let base = if remote.root {
            "/var/lib/homeostat/remote".to_string()
        } else {
            format!(
                "{}/.cache/homeostat/remote",
                remote.home.trim_end_matches('/')
            )
        };
        (base, false)
    } else {
        let out = conn.check("mktemp -d /tmp/homeostat.XXXXXXXXXX").await?;
        (out.stdout_text(), true)
    };
    let run_dir = format!("{base}/run/{}", file_name_of(host));
    let plugin_dir = format!("{run_dir}/plugins");
    let tree = format!("{run_dir}/tree");
    let mut dirs: Vec<String> = vec![
        format!("{base}/cache"),
        plugin_dir.clone(),
        format!("{run_dir}/state"),
    ];
    for (rel, _) in &graphs.files {
        if let Some((parent, _)) = rel.rsplit_once('/') {
            dirs.push(format!("{tree}/{parent}"));
        }
    }
    dirs.push(tree.clone());
    let dirs: Vec<String> = dirs.iter().map(|d| quote(d)).collect();
    conn.check(&format!(
        "umask 077 && rm -rf {} && mkdir -p {} && rm -f {}/*.wasm",
        quote(&tree),
        dirs.join(" "),
        quote(&plugin_dir)
    ))
    .await?;
    let mut sent = 0;
    let binary = format!("{base}/cache/{}", payload.binary.sha256);
    sent += upload_blob(sftp, host, "homeostat", &payload.binary, &binary).await?;
    let mut links = vec![format!("chmod 0755 {}", quote(&binary))];
    for (name, blob, _) in &payload.plugins {
        let cached = format!("{base}/cache/{}", blob.sha256);
        sent += upload_blob(sftp, host, name, blob, &cached).await?;
        links.push(format!(
            "ln -f {} {}",
            quote(&cached),
            quote(&format!("{plugin_dir}/{name}"))
        ));
    }
    conn.check(&links.join(" && ")).await?;
    let grants = match &payload.grants {
        Some(text) => {
            let path = format!("{run_dir}/grants.toml");
            sent += replace_file(conn, sftp, &path, text).await?;
            Some(path)
        }
        None => None,
    };
    let known_hosts = match &graphs.known_hosts {
        Some(text) => {
            let path = format!("{run_dir}/known_hosts");
            sent += replace_file(conn, sftp, &path, text).await?;
            Some(path)
        }
        None => None,
    };
    let mut shipped = Vec::new();
    for (rel, text) in &graphs.files {
        let path = format!("{tree}/{rel}");
        sent += replace_file(conn, sftp, &path, text).await?;
        shipped.push((rel.clone(), path));
    }
    Ok(Placed {
        base,
        temporary,
        binary,
        run_dir,
        graph: shipped.first().map(|(_, p)| p.clone()).unwrap_or_default(),
        graphs: shipped,
        known_hosts,
        plugin_dir: (!payload.plugins.is_empty()).then_some(plugin_dir),
        grants,
        bytes_sent: sent,
    })
}

/// A host name as one path component.
fn file_name_of(host: &str) -> String {
    host.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Uploads `blob` to `path` unless a file of its size is there (named by its hash, it
/// was complete when renamed into place). Returns the bytes sent.
async fn upload_blob(
    sftp: &SftpSession,
    host: &str,
    what: &str,
    blob: &Blob,
    path: &str,
) -> Result<u64, String> {
    if let Ok(meta) = sftp.metadata(path).await
        && meta.size == Some(blob.size)
    {
        tracing::debug!("{host}: {what} cached ({})", &blob.sha256[..12]);
        return Ok(0);
    }
    let tmp = staging(path);
    let progress = Progress::start(host, what, blob.size);
    let result = async {
        let mut local = tokio::fs::File::open(&blob.path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", blob.path.display()))?;
        let mut remote = sftp
            .open_with_flags(
                tmp.clone(),
                OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE,
            )
            .await
            .map_err(|e| format!("{host}: cannot create {tmp}: {e}"))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = local
                .read(&mut buf)
                .await
                .map_err(|e| format!("cannot read {}: {e}", blob.path.display()))?;
            if n == 0 {
                break;
            }
            remote
                .write_all(&buf[..n])
                .await
                .map_err(|e| format!("{host}: writing {tmp}: {e}"))?;
            progress.inc(n as u64);
        }
        remote
            .flush()
            .await
            .map_err(|e| format!("{host}: writing {tmp}: {e}"))?;
        // Durable before it gets its name (a server without fsync@openssh.com: best effort).
        let _ = remote.sync_all().await;
        remote
            .shutdown()
            .await
            .map_err(|e| format!("{host}: closing {tmp}: {e}"))?;
        match sftp.rename(tmp.clone(), path.to_string()).await {
            Ok(()) => Ok(blob.size),
            // Another initiator put the same content there meanwhile.
            Err(_)
                if sftp
                    .metadata(path)
                    .await
                    .is_ok_and(|m| m.size == Some(blob.size)) =>
            {
                let _ = sftp.remove_file(tmp.clone()).await;
                Ok(blob.size)
            }
            Err(e) => Err(format!("{host}: cannot rename {tmp} to {path}: {e}")),
        }
    }
    .await;
    if result.is_err() {
        let _ = sftp.remove_file(tmp).await;
    }
    result
}

/// `DIR/.NAME.homeostat-XXXX` for `path`: the name the host's own watches ignore.
fn staging(path: &str) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap_or((".", path));
    let tmp = temp_name::fresh(name.as_bytes());
    format!("{dir}/{}", String::from_utf8_lossy(&tmp))
}

/// Writes `data` to `path` through a staging file and `mv -f` (one rename on the
/// remote). Returns the bytes sent.
pub async fn replace_file(
    conn: &Connection,
    sftp: &SftpSession,
    path: &str,
    data: &[u8],
) -> Result<u64, String> {
    let tmp = staging(path);
    let written = async {
        let mut file = sftp
            .create(tmp.clone())
            .await
            .map_err(|e| format!("{}: cannot create {tmp}: {e}", conn.label))?;
        file.write_all(data)
            .await
            .map_err(|e| format!("{}: writing {tmp}: {e}", conn.label))?;
        let _ = file.sync_all().await;
        file.shutdown()
            .await
            .map_err(|e| format!("{}: closing {tmp}: {e}", conn.label))
    }
    .await;
    if let Err(e) = written {
        let _ = sftp.remove_file(tmp).await;
        return Err(e);
    }
    conn.check(&format!(
        "chmod 0600 {0} && mv -f {0} {1}",
        quote(&tmp),
        quote(path)
    ))
    .await?;
    Ok(data.len() as u64)
}

/// Removes what a run left that should not stay: the whole directory when it was a
/// temporary one (`--no-caching`), else nothing (the cache and the run's state are
/// kept for the next run).
pub async fn clean(conn: &Connection, placed: &Placed) {
    if placed.temporary
        && let Err(e) = conn.check(&format!("rm -rf {}", quote(&placed.base))).await
    {
        tracing::warn!("{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_match_across_spellings() {
        assert!(runs_on("x86_64", "x86_64"));
        assert!(runs_on("x86_64", "amd64"));
        assert!(runs_on("aarch64", "arm64"));
        assert!(!runs_on("aarch64", "x86_64"));
        assert!(runs_on("arm", "armv7l"));
    }

    #[test]
    fn the_running_binary_is_read_as_this_machine() {
        let me = std::env::current_exe().unwrap();
        assert_eq!(elf_machine(&me).unwrap(), std::env::consts::ARCH);
        let t = tempfile::tempdir().unwrap();
        let fake = t.path().join("arm");
        let mut head = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\xb7\0".to_vec();
        head.resize(64, 0);
        std::fs::write(&fake, head).unwrap();
        assert_eq!(elf_machine(&fake).unwrap(), "aarch64");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        assert!(elf_machine(&fake).unwrap_err().contains("not an ELF"));
    }

    #[test]
    fn host_names_become_one_path_component() {
        assert_eq!(file_name_of("web-1.example"), "web-1.example");
        assert_eq!(file_name_of("../x y"), ".._x_y");
    }

    #[test]
    fn staging_names_are_ignored_by_the_watches() {
        let s = staging("/var/lib/x/graph.yaml");
        let name = s.rsplit_once('/').unwrap().1;
        assert!(s.starts_with("/var/lib/x/.graph.yaml.homeostat-"), "{s}");
        assert!(temp_name::is_temp_name(name.as_bytes()));
    }
}
