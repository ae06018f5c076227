//! What crosses the wire to a remote, over SFTP: the homeostat binary, the third-party
//! plugins the graph's kinds need, the grants policy, and the graph.
//!
//! **Layout on the remote.** A working directory (`/var/lib/homeostat/remote/` when
//! logged in as root, else `~/.cache/homeostat/remote/`; with `--no-caching` a fresh
//! private `/tmp/homeostat.XXXXXXXXXXXX`, removed at the end) holds `cache/<sha256>`, every file shipped
//! by its content's SHA-256, and `run/<host>/` with the graph, the grants, `plugins/`
//! (hard links into `cache/`) and `state/` (the run's `--prefix`).
//!
//! **Cache and atomicity.** A file whose name is its hash is skipped when it is already
//! there with its size: it was renamed into place only once complete. A blob is written
//! to a temporary name, flushed (`fsync@openssh.com`), then renamed, so an interrupted
//! copy never leaves a binary that runs. The graph and the grants are replaced with
//! `mv -f` (SFTP's own rename refuses an existing target), under the host's staging
//! name, so the remote's live reload sees one rename and never a half-written graph.
//!
//! **Platform.** Before anything is copied, the remote's kernel must be Linux and its
//! machine (`/proc/sys/kernel/ostype` and `arch`, what `uname -s -m` says) the one the
//! binary shipped is built for (the running one, or `--remote-binary`, whose ELF header
//! says it): a mismatch is refused with both names.
//!
//! **No shell until the run.** Everything here goes over SFTP; the one command, the run,
//! puts the copies in place first ([`Placed::finish`]). Each command starts the user's
//! login shell on the host, and its start-up files can cost more than a whole warm run.

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
    /// Shell commands that put the copies in place (make the binary executable, link the
    /// plugins, rename the graphs over the old ones): run just before homeostat starts,
    /// in the same command, since every command costs a round trip or more.
    pub finish: Vec<String>,
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
    /// More files, by their path relative to the run directory (the TLS certificates,
    /// see [`super::certs`]): written 0600 like everything shipped.
    pub extra: Vec<(String, Vec<u8>)>,
}

/// Copies the payload and the graphs for `host`, skipping what the cache has. All of it
/// over SFTP, without a shell (each command on the host starts the user's shell, whose
/// start-up files can cost more than the rest of a warm run): the platform check, the
/// working directory, which cached files are there, the copies; [`Placed::finish`] is
/// what the run command does first.
pub async fn place(
    conn: &Connection,
    sftp: &SftpSession,
    host: &str,
    payload: &Payload,
    graphs: &Graphs,
    caching: bool,
) -> Result<Placed, String> {
    let run_rel = format!("run/{}", file_name_of(host));
    check_platform(conn, sftp, &payload.machine).await?;
    let base = working_directory(conn, sftp, caching).await?;
    let mut dirs = vec![
        format!("{base}/cache"),
        format!("{base}/{run_rel}/plugins"),
        format!("{base}/{run_rel}/state"),
        format!("{base}/{run_rel}/tree"),
    ];
    for (rel, _) in &graphs.files {
        if let Some((parent, _)) = rel.rsplit_once('/') {
            dirs.push(format!("{base}/{run_rel}/tree/{parent}"));
        }
    }
    for (rel, _) in &graphs.extra {
        if let Some((parent, _)) = rel.rsplit_once('/') {
            dirs.push(format!("{base}/{run_rel}/{parent}"));
        }
    }
    for dir in &dirs {
        make_dirs(sftp, dir)
            .await
            .map_err(|e| format!("{}: cannot make {dir}: {e}", conn.label))?;
    }
    let run_dir = format!("{base}/{run_rel}");
    let plugin_dir = format!("{run_dir}/plugins");
    let tree = format!("{run_dir}/tree");
    let mut sent = 0;
    // Plugins of an earlier run of this host that this graph does not need go.
    let mut finish = vec![format!("rm -f {}/*.wasm", quote(&plugin_dir))];
    let binary = format!("{base}/cache/{}", payload.binary.sha256);
    sent += upload_blob(sftp, host, "homeostat", &payload.binary, &binary).await?;
    finish.push(format!("chmod 0755 {}", quote(&binary)));
    for (name, blob, _) in &payload.plugins {
        let cached_path = format!("{base}/cache/{}", blob.sha256);
        sent += upload_blob(sftp, host, name, blob, &cached_path).await?;
        finish.push(format!(
            "ln -f {} {}",
            quote(&cached_path),
            quote(&format!("{plugin_dir}/{name}"))
        ));
    }
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let grants = payload.grants.as_ref().map(|text| {
        let path = format!("{run_dir}/grants.toml");
        files.push((path.clone(), text.clone()));
        path
    });
    let known_hosts = graphs.known_hosts.as_ref().map(|text| {
        let path = format!("{run_dir}/known_hosts");
        files.push((path.clone(), text.clone()));
        path
    });
    for (rel, text) in &graphs.extra {
        files.push((format!("{run_dir}/{rel}"), text.clone()));
    }
    let mut shipped = Vec::new();
    for (rel, text) in &graphs.files {
        let path = format!("{tree}/{rel}");
        files.push((path.clone(), text.clone()));
        shipped.push((rel.clone(), path));
    }
    for (path, text) in files {
        let tmp = write_staging(conn, sftp, &path, &text).await?;
        sent += text.len() as u64;
        finish.push(format!("mv -f {} {}", quote(&tmp), quote(&path)));
    }
    Ok(Placed {
        base,
        temporary: !caching,
        binary,
        run_dir,
        graph: shipped.first().map(|(_, p)| p.clone()).unwrap_or_default(),
        graphs: shipped,
        known_hosts,
        plugin_dir: (!payload.plugins.is_empty()).then_some(plugin_dir),
        grants,
        bytes_sent: sent,
        finish,
    })
}

/// Refuses a host that is not Linux, or whose machine the binary is not built for: read
/// from `/proc/sys/kernel/ostype` and `arch` (what `uname -s` and `-m` say).
async fn check_platform(conn: &Connection, sftp: &SftpSession, ours: &str) -> Result<(), String> {
    let read = |path: &'static str| async move {
        sftp.read(path)
            .await
            .ok()
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
    };
    match read("/proc/sys/kernel/ostype").await.as_deref() {
        Some("Linux") => {}
        other => {
            return Err(format!(
                "{}: the remote is not Linux ({}); homeostat runs on Linux only",
                conn.label,
                other.unwrap_or("no /proc/sys/kernel/ostype")
            ));
        }
    }
    let theirs = match read("/proc/sys/kernel/arch").await {
        Some(m) if !m.is_empty() => m,
        // Kernels before 4.17 have no `arch` entry.
        _ => conn.check("uname -m").await?.stdout_text(),
    };
    if runs_on(ours, &theirs) {
        return Ok(());
    }
    Err(format!(
        "{}: the remote is {theirs} but the binary to ship is built for {ours}; build one \
         for the remote (e.g. `cargo xtask dist --musl` on a {theirs} machine) and pass it \
         with --remote-binary",
        conn.label
    ))
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

/// The working directory: the cache (`/var/lib/homeostat/remote` as root, else
/// `~/.cache/homeostat/remote`), or a new `/tmp/homeostat.XXXXXXXXXXXX` (`--no-caching`).
async fn working_directory(
    conn: &Connection,
    sftp: &SftpSession,
    caching: bool,
) -> Result<String, String> {
    if caching {
        if conn.user == "root" {
            return Ok("/var/lib/homeostat/remote".into());
        }
        let home = sftp
            .canonicalize(".")
            .await
            .map_err(|e| format!("{}: cannot find the home directory: {e}", conn.label))?;
        return Ok(format!(
            "{}/.cache/homeostat/remote",
            home.trim_end_matches('/')
        ));
    }
    for _ in 0..8 {
        let name = temp_name::fresh(b"");
        let suffix = String::from_utf8_lossy(&name[name.len() - 12..]).into_owned();
        let dir = format!("/tmp/homeostat.{suffix}");
        if sftp.create_dir(dir.clone()).await.is_ok() {
            sftp.set_metadata(dir.clone(), mode(0o700))
                .await
                .map_err(|e| format!("{}: cannot make {dir} private: {e}", conn.label))?;
            return Ok(dir);
        }
    }
    Err(format!("{}: cannot make a directory in /tmp", conn.label))
}

/// SFTP attributes that set only the permission bits.
fn mode(bits: u32) -> russh_sftp::protocol::FileAttributes {
    let mut attrs = russh_sftp::protocol::FileAttributes::empty();
    attrs.permissions = Some(bits);
    attrs
}

/// `mkdir -p` over SFTP: the missing directories of `path`, mode 0700.
async fn make_dirs(sftp: &SftpSession, path: &str) -> Result<(), String> {
    let mut missing = Vec::new();
    let mut at = path.trim_end_matches('/').to_string();
    while !at.is_empty() && !sftp.try_exists(at.clone()).await.unwrap_or(false) {
        missing.push(at.clone());
        match at.rsplit_once('/') {
            Some((parent, _)) => at = parent.to_string(),
            None => break,
        }
    }
    for dir in missing.into_iter().rev() {
        if let Err(e) = sftp.create_dir(dir.clone()).await {
            // Made meanwhile by another run: fine.
            if !sftp.try_exists(dir.clone()).await.unwrap_or(false) {
                return Err(e.to_string());
            }
            continue;
        }
        sftp.set_metadata(dir, mode(0o700))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A host name as one path component.
pub(crate) fn file_name_of(host: &str) -> String {
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

/// Uploads `blob` to `path` unless a file of its size is there (named by its hash, a
/// file is complete once renamed into place). Returns the bytes sent.
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

/// Writes `data` to a staging name beside `path` (the name the host's own watches
/// ignore), mode 0600, and returns that name: renaming it over `path` is one step.
async fn write_staging(
    conn: &Connection,
    sftp: &SftpSession,
    path: &str,
    data: &[u8],
) -> Result<String, String> {
    let tmp = staging(path);
    let written = async {
        let mut file = sftp
            .open_with_flags_and_attributes(
                tmp.clone(),
                OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE,
                mode(0o600),
            )
            .await
            .map_err(|e| format!("{}: cannot create {tmp}: {e}", conn.label))?;
        file.write_all(data)
            .await
            .map_err(|e| format!("{}: writing {tmp}: {e}", conn.label))?;
        file.shutdown()
            .await
            .map_err(|e| format!("{}: closing {tmp}: {e}", conn.label))
    }
    .await;
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = sftp.remove_file(tmp).await;
            Err(e)
        }
    }
}

/// Replaces `path` with `data` while the host runs (a live push): a staging file, then
/// `mv -f` (SFTP's own rename refuses an existing target). Returns the bytes sent.
pub async fn replace_file(
    conn: &Connection,
    sftp: &SftpSession,
    path: &str,
    data: &[u8],
) -> Result<u64, String> {
    let tmp = write_staging(conn, sftp, path, data).await?;
    conn.check(&format!("mv -f {} {}", quote(&tmp), quote(path)))
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
