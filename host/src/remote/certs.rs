//! The TLS certificates remote hosts run with, when the initiator's World is on mutual
//! TLS (see [`crate::tls`]).
//!
//! The tunnel is transport, not trust: a remote host dials its end of the tunnel
//! (`https://127.0.0.1:PORT`) with its own certificate and checks that the server is the
//! initiator (its certificate's name, `--tls-server-name`), exactly as it would over a
//! network.
//!
//! Where the certificates come from ([`CertSource`]): the initiator holding the cluster
//! CA issues a short-lived certificate ([`REMOTE_VALIDITY`]) for each remote host as it
//! sets it up; a host in the middle of a hierarchy, which has no CA key, gets the
//! certificates of the hosts below it from the host above (pre-issued, in
//! `certs/<host>/` of its run directory, `--remote-certs`). The CA key never leaves the
//! initiator. Every file is copied with the graph, mode 0600, into the remote's
//! `state/tls/`.

use std::path::PathBuf;
use std::time::Duration;

use crate::tls::ca::Ca;
use crate::tls::{CA_CERT, HOST_CERT, HOST_KEY, Identity, TlsFiles};

/// How long a certificate issued for a remote run is valid: a run that lasts longer
/// keeps its connections, but cannot make new ones after that (run it again).
pub const REMOTE_VALIDITY: Duration = Duration::from_secs(7 * 86_400);

/// Where a remote host's certificate comes from.
pub enum CertSource {
    /// The cluster CA: a certificate is issued for each host.
    Ca(Box<Ca>),
    /// Certificates issued by the host above, in `<dir>/<host>/`.
    Dir(PathBuf),
}

/// What remote hosts get for TLS.
pub struct RemoteTls {
    pub source: CertSource,
    /// The name the remotes check the initiator's etcd certificate against (`None`:
    /// the tunnel's loopback address, which every host certificate holds).
    pub server_name: Option<String>,
}

/// One host's `ca.crt`, `host.crt` and `host.key`, as text.
pub struct HostCerts {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

impl HostCerts {
    /// The three files under `dir` (a path relative to the run directory), to copy.
    pub fn files(&self, dir: &str) -> Vec<(String, Vec<u8>)> {
        vec![
            (format!("{dir}/{CA_CERT}"), self.ca.clone().into_bytes()),
            (format!("{dir}/{HOST_CERT}"), self.cert.clone().into_bytes()),
            (format!("{dir}/{HOST_KEY}"), self.key.clone().into_bytes()),
        ]
    }
}

impl RemoteTls {
    /// The certificates for `host`: issued now, or read (and checked) from the
    /// directory the host above filled.
    pub fn certs_for(&self, host: &str) -> Result<HostCerts, String> {
        match &self.source {
            CertSource::Ca(ca) => {
                let issued = ca
                    .issue(host, &[], &[], REMOTE_VALIDITY)
                    .map_err(|e| e.to_string())?;
                Ok(HostCerts {
                    ca: ca.cert_pem().to_owned(),
                    cert: issued.cert_pem,
                    key: issued.key_pem,
                })
            }
            CertSource::Dir(dir) => {
                let files =
                    TlsFiles::in_dir(&dir.join(crate::remote::transfer::file_name_of(host)));
                let id = Identity::load(&files, Some(host)).map_err(|e| e.to_string())?;
                let (ca, cert, key) = id.pems();
                Ok(HostCerts {
                    ca: ca.to_owned(),
                    cert: cert.to_owned(),
                    key: key.to_owned(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_above_hands_down_what_the_initiator_issued() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::init(&tmp.path().join("ca"), "c").unwrap();
        let top = RemoteTls {
            source: CertSource::Ca(ca.into()),
            server_name: Some("me".into()),
        };
        let certs = top.certs_for("leaf").unwrap();
        // What the host in the middle finds in its run directory.
        let dir = tmp.path().join("certs");
        for (rel, data) in certs.files("leaf") {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            crate::tls::ca::write_file(&path, std::str::from_utf8(&data).unwrap(), 0o600).unwrap();
        }
        let middle = RemoteTls {
            source: CertSource::Dir(dir),
            server_name: Some("me".into()),
        };
        let again = middle.certs_for("leaf").unwrap();
        assert_eq!(again.cert, certs.cert);
        let e = middle.certs_for("other").err().unwrap();
        assert!(e.contains("other") && e.contains("no such file"), "{e}");
    }
}
