//! `homeostat ca`: a cluster's certificate authority, kept in one directory.
//!
//! ```text
//! <ca dir>/ca.crt              the CA certificate, given to every host
//! <ca dir>/ca.key              its key (0600; the directory 0700)
//! <ca dir>/hosts/<host>/       what `ca issue <host>` made: ca.crt, host.crt, host.key
//! ```
//!
//! A host certificate's common name is the hostname; it is valid for that name (a DNS
//! SAN), for loopback (`127.0.0.1`, `::1`: the default etcd URLs, and the tunnel of remote
//! execution) and for the addresses and names given with `--ip` and `--dns` (etcd checks
//! that a peer connects from an address its certificate names). It may serve and connect
//! (TLS server and client use), as an etcd member does both. Keys are ECDSA P-256.
//!
//! Keys are written 0600 and refused when they are not (`read_key`): a CA key
//! that anyone can read lets anyone join the cluster.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use super::{CA_CERT, CertInfo, HOST_CERT, TlsError, TlsFiles, file_error};

/// The CA directory's name in a state directory (`homeostat ca`'s default `--dir`).
pub const CA_DIR: &str = "ca";
/// The CA key's file name.
pub const CA_KEY: &str = "ca.key";
/// Where `ca issue` puts a host's files, by default.
pub const HOSTS: &str = "hosts";
/// How long a CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long a host certificate is valid unless told.
pub const HOST_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

/// An opened CA directory.
pub struct Ca {
    dir: PathBuf,
    cert_pem: String,
    key: KeyPair,
    info: CertInfo,
}

/// A host certificate just made, not yet written.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub info: CertInfo,
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> TlsError {
    file_error(path, format!("cannot {what}: {e}"))
}

/// Write `contents` to `path` with `mode`, atomically (a temporary file in the same
/// directory, flushed, renamed over it): a crash leaves the old file or the new one.
pub(crate) fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path, "write it", e)
    })
}

fn make_dir(dir: &Path) -> Result<(), TlsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_error(dir, "create the directory", e))
}

fn validity(params: &mut CertificateParams, valid: Duration) {
    let now = OffsetDateTime::now_utc();
    // An hour's slack for clocks a little behind the issuer's.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + valid;
}

fn rcgen_error(path: &Path, e: rcgen::Error) -> TlsError {
    file_error(path, format!("cannot make the certificate: {e}"))
}

impl Ca {
    /// Make a new CA in `dir` (created 0700), named `name`. Refused when `dir` already
    /// holds one: replacing a CA cuts every host off the cluster.
    pub fn init(dir: &Path, name: &str) -> Result<Ca, TlsError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        if cert_path.exists() || key_path.exists() {
            return Err(file_error(
                &cert_path,
                "a CA is already there; every host's certificate depends on it, so it is \
                 never replaced (`homeostat ca show` lists it)",
            ));
        }
        make_dir(dir)?;
        let key = KeyPair::generate().map_err(|e| rcgen_error(&key_path, e))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "homeostat");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_VALIDITY);
        let cert = params
            .self_signed(&key)
            .map_err(|e| rcgen_error(&cert_path, e))?;
        write_file(&key_path, &key.serialize_pem(), 0o600)?;
        write_file(&cert_path, &cert.pem(), 0o644)?;
        Ca::open(dir)
    }

    /// Open the CA in `dir`: its key must be readable by its owner only.
    pub fn open(dir: &Path) -> Result<Ca, TlsError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        if !cert_path.exists() {
            return Err(file_error(
                &cert_path,
                format!(
                    "no CA here; make one with `homeostat ca init --dir {}`",
                    dir.display()
                ),
            ));
        }
        // Whoever may write the directory may swap the CA for theirs.
        let dir_mode = std::fs::metadata(dir)
            .map_err(|e| io_error(dir, "read the directory's mode", e))?
            .permissions()
            .mode();
        if dir_mode & 0o022 != 0 {
            return Err(file_error(
                dir,
                format!(
                    "a CA directory must be writable by its owner only (mode 0700), not \
                     {:04o}; run `chmod 700 {}`",
                    dir_mode & 0o7777,
                    dir.display()
                ),
            ));
        }
        let cert_pem = super::read(&cert_path)?;
        let key_pem = super::read_key(&key_path)?;
        let info = CertInfo::parse(&cert_path, &cert_pem)?;
        if !info.is_ca {
            return Err(file_error(&cert_path, "is not a CA certificate"));
        }
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| file_error(&key_path, format!("not a private key: {e}")))?;
        Ok(Ca {
            dir: dir.to_owned(),
            cert_pem,
            key,
            info,
        })
    }

    /// The CA's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM), as every host gets it.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// What the CA certificate says.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// Make a certificate for `host` (its common name), valid for `valid` from now, for
    /// `host` as a DNS name (when it is one), loopback, and `ips` and `dns`.
    pub fn issue(
        &self,
        host: &str,
        ips: &[IpAddr],
        dns: &[String],
        valid: Duration,
    ) -> Result<Issued, TlsError> {
        let path = self.dir.join(HOSTS).join(host);
        if host.is_empty() || host.contains(['/', '=', ',']) || host.chars().any(char::is_control) {
            return Err(file_error(
                &path,
                format!("{host:?} is not a host name (no `/`, `=`, `,` or control characters)"),
            ));
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        dn.push(DnType::OrganizationName, "homeostat");
        params.distinguished_name = dn;
        let mut names: Vec<SanType> = Vec::new();
        for name in std::iter::once(host).chain(dns.iter().map(String::as_str)) {
            match name.to_owned().try_into() {
                Ok(n) => names.push(SanType::DnsName(n)),
                Err(_) if name == host => {} // a hostname that is not a DNS name: CN only
                Err(_) => {
                    return Err(file_error(&path, format!("--dns {name}: not a DNS name")));
                }
            }
        }
        let mut all_ips: Vec<IpAddr> = vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ];
        for ip in ips {
            if !all_ips.contains(ip) {
                all_ips.push(*ip);
            }
        }
        names.extend(all_ips.into_iter().map(SanType::IpAddress));
        params.subject_alt_names = names;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, valid);
        let key = KeyPair::generate().map_err(|e| rcgen_error(&path, e))?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
            .map_err(|e| rcgen_error(&self.dir.join(CA_CERT), e))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| rcgen_error(&path, e))?;
        let cert_pem = cert.pem();
        let info = CertInfo::parse(&path, &cert_pem)?;
        Ok(Issued {
            cert_pem,
            key_pem: key.serialize_pem(),
            info,
        })
    }
}

impl Issued {
    /// Write it with the CA certificate into `dir` (created 0700) as `ca.crt`,
    /// `host.crt` and `host.key` (0600): a host's `tls/` directory, ready to copy.
    pub fn write(&self, ca_pem: &str, dir: &Path) -> Result<TlsFiles, TlsError> {
        make_dir(dir)?;
        let files = TlsFiles::in_dir(dir);
        write_file(&files.key, &self.key_pem, 0o600)?;
        write_file(&files.cert, &self.cert_pem, 0o644)?;
        write_file(&files.ca, ca_pem, 0o644)?;
        Ok(files)
    }
}

/// Every certificate in a CA directory: the CA's, then each issued host's (by name).
pub fn list(dir: &Path) -> Result<Vec<(PathBuf, CertInfo)>, TlsError> {
    let ca = dir.join(CA_CERT);
    let mut out = vec![(ca.clone(), CertInfo::parse(&ca, &super::read(&ca)?)?)];
    let hosts = dir.join(HOSTS);
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&hosts) {
        for entry in entries.flatten() {
            let cert = entry.path().join(HOST_CERT);
            if cert.is_file() {
                found.push(cert);
            }
        }
    }
    found.sort();
    for cert in found {
        let info = CertInfo::parse(&cert, &super::read(&cert)?)?;
        out.push((cert, info));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {

    use super::super::{Identity, Security};
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_issue_and_load_a_host_identity() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let ca = Ca::init(&dir, "test cluster").unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(CA_KEY)), 0o600);
        assert!(ca.info().is_ca);
        let e = Ca::init(&dir, "again").err().unwrap().to_string();
        assert!(e.contains("never replaced"), "{e}");

        let issued = ca
            .issue(
                "web1",
                &["10.0.0.5".parse().unwrap()],
                &["web1.example".into()],
                HOST_VALIDITY,
            )
            .unwrap();
        assert_eq!(issued.info.name, "web1");
        assert_eq!(issued.info.issuer, "test cluster");
        assert_eq!(issued.info.dns, ["web1", "web1.example"]);
        assert!(issued.info.ips.contains(&"10.0.0.5".parse().unwrap()));
        assert!(issued.info.ips.contains(&"127.0.0.1".parse().unwrap()));
        let out = dir.join(HOSTS).join("web1");
        let files = issued.write(ca.cert_pem(), &out).unwrap();
        assert_eq!(mode(&files.key), 0o600);
        let id = Identity::load(&files, Some("web1")).unwrap();
        assert_eq!(id.name(), "web1");
        assert!(
            id.server_args()
                .contains(&"--peer-client-cert-auth".to_owned())
        );
        let tls = Security::Tls {
            identity: id.into(),
            server_name: None,
        };
        assert_eq!(tls.scheme(), "https");
        assert!(
            tls.check_url("--seeds", "http://127.0.0.1:1", false)
                .is_err()
        );

        let listed = list(&dir).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].1.name, "web1");
    }

    #[test]
    fn bad_files_are_named_in_the_error() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::init(&tmp.path().join("ca"), "one").unwrap();
        let other = Ca::init(&tmp.path().join("other"), "two").unwrap();
        let files = ca
            .issue("a", &[], &[], HOST_VALIDITY)
            .unwrap()
            .write(ca.cert_pem(), &tmp.path().join("a"))
            .unwrap();

        // Another host's certificate.
        let e = Identity::load(&files, Some("b")).unwrap_err().to_string();
        assert!(
            e.contains("host.crt") && e.contains("of host `a`, not of this host `b`"),
            "{e}"
        );

        // Signed by another CA.
        let wrong = other
            .issue("a", &[], &[], HOST_VALIDITY)
            .unwrap()
            .write(ca.cert_pem(), &tmp.path().join("wrong"))
            .unwrap();
        let e = Identity::load(&wrong, Some("a")).unwrap_err().to_string();
        assert!(
            e.contains("is not signed by the CA") && e.contains("`two`"),
            "{e}"
        );

        // A key others can read.
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Identity::load(&files, Some("a")).unwrap_err().to_string();
        assert!(
            e.contains("host.key") && e.contains("0644") && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).unwrap();

        // A CA directory others may write.
        std::fs::set_permissions(ca.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Ca::open(ca.dir()).err().unwrap().to_string();
        assert!(e.contains("0777") && e.contains("chmod 700"), "{e}");
        std::fs::set_permissions(ca.dir(), std::fs::Permissions::from_mode(0o700)).unwrap();

        // The CA key too.
        let ca_key = ca.dir().join(CA_KEY);
        std::fs::set_permissions(&ca_key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = Ca::open(ca.dir()).err().unwrap().to_string();
        assert!(e.contains("ca.key") && e.contains("0640"), "{e}");

        // A key that is not the certificate's.
        std::fs::copy(wrong.key.clone(), &files.key).unwrap();
        let e = Identity::load(&files, Some("a")).unwrap_err().to_string();
        assert!(e.contains("is not the key of the certificate"), "{e}");

        // A missing file says how to make it.
        std::fs::remove_file(&files.key).unwrap();
        let e = Identity::load(&files, Some("a")).unwrap_err().to_string();
        assert!(
            e.contains("host.key: no such file") && e.contains("homeostat ca"),
            "{e}"
        );
    }

    #[test]
    fn an_expired_certificate_is_refused_with_its_date() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::init(&tmp.path().join("ca"), "c").unwrap();
        let issued = ca.issue("a", &[], &[], Duration::ZERO).unwrap();
        let files = issued.write(ca.cert_pem(), &tmp.path().join("a")).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        let e = Identity::load(&files, Some("a")).unwrap_err().to_string();
        assert!(
            e.contains("expired on") && e.contains("homeostat ca issue a"),
            "{e}"
        );
    }
}
