//! Host keys: a remote is trusted only when the key it offers is recorded for it in
//! `~/.ssh/known_hosts` or `/etc/ssh/ssh_known_hosts` (mgmt never checked). An unknown
//! key is refused with its fingerprint and the way to accept it; `--ssh-accept-new`
//! records a new host's key in the user's file (OpenSSH's `accept-new`); a key that
//! differs from the recorded one is always refused.
//!
//! The files are read with russh's parser (plain and hashed host names, `[host]:port` for
//! other ports); its limits are OpenSSH's rarely used markers (`@cert-authority`,
//! `@revoked`) and patterns (`*.example`, `!host`), which match nothing here.

use std::path::{Path, PathBuf};

use russh::keys::{Algorithm, HashAlg, PublicKey};

/// Where keys are looked up and whether new ones are learned.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    /// `~/.ssh/known_hosts` (learned keys go here).
    pub user: PathBuf,
    /// `/etc/ssh/ssh_known_hosts`.
    pub system: PathBuf,
    /// `--ssh-accept-new`.
    pub accept_new: bool,
}

/// Why a host key was refused; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error(
        "the host key of {host} is not known: {algorithm} key {fingerprint}. Check the \
         fingerprint on the host (`ssh-keygen -lf /etc/ssh/ssh_host_{short}_key.pub`), then \
         add it with `ssh-keyscan {scan} >> {file}` or run once with --ssh-accept-new"
    )]
    Unknown {
        host: String,
        algorithm: String,
        short: String,
        fingerprint: String,
        scan: String,
        file: String,
    },
    #[error(
        "the host key of {host} has CHANGED: it offers {algorithm} key {fingerprint}, \
         {file}:{line} records another. Someone may be intercepting the connection, or the \
         host was reinstalled; if you know it was, remove the old key with \
         `ssh-keygen -R '{entry}' -f {file}` and connect again"
    )]
    Changed {
        host: String,
        algorithm: String,
        fingerprint: String,
        file: String,
        line: usize,
        entry: String,
    },
    #[error("cannot read the known host keys in {file}: {error}")]
    Unreadable { file: String, error: String },
    #[error("cannot record the host key of {host} in {file}: {error}")]
    Unwritable {
        host: String,
        file: String,
        error: String,
    },
}

impl KnownHosts {
    /// The standard files: the user's (under `$HOME`) and the system's.
    pub fn standard(accept_new: bool) -> KnownHosts {
        let home = std::env::home_dir().unwrap_or_else(|| PathBuf::from("/root"));
        KnownHosts {
            user: home.join(".ssh/known_hosts"),
            system: PathBuf::from("/etc/ssh/ssh_known_hosts"),
            accept_new,
        }
    }

    /// The key algorithms recorded for `host`, to ask the server for one of those first
    /// (as OpenSSH does), so that a host known by its ECDSA key is not asked for Ed25519.
    pub fn recorded_algorithms(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let mut out = Vec::new();
        for file in [&self.user, &self.system] {
            for (_, key) in recorded(file, host, port).unwrap_or_default() {
                if !out.contains(&key.algorithm()) {
                    out.push(key.algorithm());
                }
            }
        }
        out
    }

    /// The known_hosts lines recorded for `host:port` (to ship to a host that connects to
    /// it in turn: the initiator's trust decides for the whole tree).
    pub fn lines_for(&self, host: &str, port: u16) -> Vec<String> {
        let mut out = Vec::new();
        for file in [&self.user, &self.system] {
            for (_, key) in recorded(file, host, port).unwrap_or_default() {
                if let Ok(text) = key.to_openssh() {
                    let line = format!("{} {text}", entry(host, port));
                    if !out.contains(&line) {
                        out.push(line);
                    }
                }
            }
        }
        out
    }

    /// Accepts `key` for `host:port`, or says why not. With `accept_new`, a host nobody
    /// recorded is learned (logged with its fingerprint).
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Result<(), Box<HostKeyError>> {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let algorithm = key.algorithm().to_string();
        let entry = entry(host, port);
        let mut other = None;
        for file in [&self.user, &self.system] {
            let keys = recorded(file, host, port).map_err(|error| {
                Box::new(HostKeyError::Unreadable {
                    file: file.display().to_string(),
                    error,
                })
            })?;
            for (line, recorded) in keys {
                if recorded.key_data() == key.key_data() {
                    return Ok(());
                }
                other.get_or_insert((file.clone(), line));
            }
        }
        if let Some((file, line)) = other {
            return Err(Box::new(HostKeyError::Changed {
                host: entry.clone(),
                algorithm,
                fingerprint,
                file: file.display().to_string(),
                line,
                entry,
            }));
        }
        if self.accept_new {
            russh::keys::known_hosts::learn_known_hosts_path(host, port, key, &self.user).map_err(
                |e| HostKeyError::Unwritable {
                    host: entry.clone(),
                    file: self.user.display().to_string(),
                    error: e.to_string(),
                },
            )?;
            tracing::warn!(
                "{entry}: new host key {algorithm} {fingerprint} recorded in {} \
                 (--ssh-accept-new)",
                self.user.display()
            );
            return Ok(());
        }
        let short = match key.algorithm() {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Ecdsa { .. } => "ecdsa",
            Algorithm::Rsa { .. } => "rsa",
            _ => "*",
        };
        let scan = if port == 22 {
            host.to_string()
        } else {
            format!("-p {port} {host}")
        };
        Err(Box::new(HostKeyError::Unknown {
            host: entry,
            algorithm,
            short: short.into(),
            fingerprint,
            scan,
            file: self.user.display().to_string(),
        }))
    }
}

/// `host` or `[host]:port`, as known_hosts writes it.
fn entry(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The keys `file` records for `host:port` (none when it does not exist).
fn recorded(file: &Path, host: &str, port: u16) -> Result<Vec<(usize, PublicKey)>, String> {
    if !file.exists() {
        return Ok(Vec::new());
    }
    russh::keys::known_hosts::known_host_keys_path(host, port, file).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PublicKey {
        let private = russh::keys::PrivateKey::from(
            russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]),
        );
        private.public_key().clone()
    }

    fn hosts(dir: &Path, accept_new: bool) -> KnownHosts {
        KnownHosts {
            user: dir.join("home/.ssh/known_hosts"),
            system: dir.join("ssh_known_hosts"),
            accept_new,
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_the_fingerprint_and_the_fix() {
        let t = tempfile::tempdir().unwrap();
        let k = key(1);
        let e = hosts(t.path(), false)
            .check("10.0.0.1", 2222, &k)
            .unwrap_err();
        let text = e.to_string();
        let fp = k.fingerprint(HashAlg::Sha256).to_string();
        assert!(text.contains(&fp), "{text}");
        assert!(text.contains("ssh-keyscan -p 2222 10.0.0.1 >>"), "{text}");
        assert!(text.contains("--ssh-accept-new"), "{text}");
        assert!(!t.path().join("home/.ssh/known_hosts").exists());
    }

    #[test]
    fn accept_new_records_once_and_a_changed_key_is_always_refused() {
        let t = tempfile::tempdir().unwrap();
        let learn = hosts(t.path(), true);
        learn.check("h1", 22, &key(1)).unwrap();
        let file = std::fs::read_to_string(&learn.user).unwrap();
        assert!(
            file.lines().any(|l| l.starts_with("h1 ssh-ed25519 ")),
            "{file}"
        );
        // Known now, without accept-new too.
        hosts(t.path(), false).check("h1", 22, &key(1)).unwrap();
        assert_eq!(
            hosts(t.path(), false).recorded_algorithms("h1", 22),
            [Algorithm::Ed25519]
        );
        // Another key for the same host: refused even with accept-new, nothing written.
        let e = learn.check("h1", 22, &key(2)).unwrap_err().to_string();
        assert!(e.contains("has CHANGED"), "{e}");
        assert!(e.contains("ssh-keygen -R 'h1'"), "{e}");
        assert_eq!(std::fs::read_to_string(&learn.user).unwrap(), file);
        // Another port is another entry.
        let e = hosts(t.path(), false)
            .check("h1", 2222, &key(1))
            .unwrap_err();
        assert!(matches!(*e, HostKeyError::Unknown { .. }), "{e}");
    }

    #[test]
    fn the_system_file_counts_too() {
        let t = tempfile::tempdir().unwrap();
        let h = hosts(t.path(), false);
        std::fs::write(
            &h.system,
            format!("[h2]:2200 {}\n", key(3).to_openssh().unwrap()),
        )
        .unwrap();
        h.check("h2", 2200, &key(3)).unwrap();
        let e = h.check("h2", 2200, &key(4)).unwrap_err().to_string();
        assert!(e.contains("ssh_known_hosts:1"), "{e}");
    }
}
