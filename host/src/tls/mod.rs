//! Trust between hosts: etcd over mutual TLS.
//!
//! Every host of a cluster holds three files, by default in `<state dir>/tls/`:
//! the cluster's CA certificate (`ca.crt`), its own certificate (`host.crt`, common name
//! = its hostname) and that certificate's key (`host.key`, mode 0600). [`ca`] makes them
//! (`homeostat ca`). With them, the etcd a host serves takes only clients and peers that
//! present a certificate of the same CA (`--client-cert-auth`, `--peer-client-cert-auth`),
//! and the host's own etcd client presents its certificate and checks the server's
//! against the CA and the address it dialled.
//!
//! [`Identity::load`] checks the files before anything connects, so that a wrong file is
//! a clear error naming it instead of a handshake that fails (or hangs) later: a key that
//! others can read, a certificate not signed by the CA, one that has expired or is not
//! yet valid, one made for another host, a key that is not the certificate's.
//!
//! [`Security`] is what every etcd connection of a host is made with ([`Security::options`]),
//! and [`Security::check_url`] refuses plaintext to anything but loopback unless the
//! operator said `--insecure`.

pub mod ca;

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The directory of a host's TLS files in its state directory.
pub const DIR: &str = "tls";
/// The CA certificate's file name (in [`DIR`] and in a CA directory).
pub const CA_CERT: &str = "ca.crt";
/// The host certificate's file name in [`DIR`].
pub const HOST_CERT: &str = "host.crt";
/// The host key's file name in [`DIR`].
pub const HOST_KEY: &str = "host.key";

/// A certificate this many days from its expiry is warned about ([`CertInfo::expires_soon`]).
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Why TLS files cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file that cannot be read or parsed.
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    /// A private key that others may read.
    #[error(
        "{}: a private key must be readable by its owner only (mode 0600), not {mode:04o}; \
         run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    OpenKey { path: PathBuf, mode: u32 },
}

fn file_error(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Read a file, naming it in the error (and saying how to make it when it is missing).
pub(crate) fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => file_error(
            path,
            "no such file; make the cluster's certificates with `homeostat ca init` and \
             `homeostat ca issue HOSTNAME` (docs/security.md)",
        ),
        _ => file_error(path, format!("cannot read it: {e}")),
    })
}

/// Read a private key: refused when anyone but its owner may read or write it.
pub(crate) fn read_key(path: &Path) -> Result<String, TlsError> {
    let text = read(path)?;
    let mode = std::fs::metadata(path)
        .map_err(|e| file_error(path, e.to_string()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(TlsError::OpenKey {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(text)
}

/// The DER of the first certificate in a PEM text.
fn der_of(path: &Path, pem: &str) -> Result<Vec<u8>, TlsError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| file_error(path, format!("not a PEM certificate: {e}")))?;
    if pem.label != "CERTIFICATE" {
        return Err(file_error(
            path,
            format!("holds a {}, not a CERTIFICATE", pem.label),
        ));
    }
    Ok(pem.contents)
}

/// What homeostat reads off a certificate: for `ca show` and for the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's common name (a host certificate's: the hostname).
    pub name: String,
    /// The issuer's common name.
    pub issuer: String,
    /// DNS names and IP addresses it is valid for.
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub is_ca: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl CertInfo {
    /// Read the certificate in `pem` (from `path`, for errors).
    pub fn parse(path: &Path, pem: &str) -> Result<CertInfo, TlsError> {
        let der = der_of(path, pem)?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| file_error(path, format!("not an X.509 certificate: {e}")))?;
        Ok(info(&cert))
    }

    /// The whole days left when it is close to its expiry at `now`: under
    /// [`EXPIRY_WARNING_DAYS`], or in the last quarter of its life (the short-lived
    /// certificates of remote runs); a host warns about it at start.
    pub fn expires_soon(&self, now: OffsetDateTime) -> Option<i64> {
        let left = self.not_after - now;
        let warn_at =
            time::Duration::days(EXPIRY_WARNING_DAYS).min((self.not_after - self.not_before) / 4);
        (left < warn_at).then(|| left.whole_days())
    }

    /// Why it is not valid at `now`, if it is not.
    pub fn invalid_at(&self, now: OffsetDateTime) -> Option<String> {
        if now < self.not_before {
            Some(format!(
                "not valid before {} (check this machine's clock)",
                date(self.not_before)
            ))
        } else if now > self.not_after {
            Some(format!(
                "expired on {}; issue a new one with `homeostat ca issue {}`",
                date(self.not_after),
                self.name
            ))
        } else {
            None
        }
    }
}

/// A date for messages: `2027-12-06 07:00 UTC`.
pub fn date(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_else(|_| t.to_string())
}

fn common_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn info(cert: &X509Certificate<'_>) -> CertInfo {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).expect("4 bytes"))),
                    16 => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).expect("16 bytes"))),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    CertInfo {
        name: common_name(cert.subject()),
        issuer: common_name(cert.issuer()),
        dns,
        ips,
        is_ca: cert.is_ca(),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
    }
}

/// The files a host proves itself with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster's CA certificate.
    pub ca: PathBuf,
    /// This host's certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files at their default place in a state directory (`tls/`).
    pub fn in_state_dir(state_dir: &Path) -> TlsFiles {
        TlsFiles::in_dir(&state_dir.join(DIR))
    }

    /// The files `ca.crt`, `host.crt` and `host.key` in `dir`.
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join(CA_CERT),
            cert: dir.join(HOST_CERT),
            key: dir.join(HOST_KEY),
        }
    }
}

/// A host's checked TLS files (see [`Identity::load`]).
#[derive(Debug, Clone)]
pub struct Identity {
    /// Where they were read from.
    pub files: TlsFiles,
    /// The host certificate, as read.
    pub cert: CertInfo,
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl Identity {
    /// Read and check `files` for `host`: the key readable by its owner only, the
    /// certificate signed by the CA, valid now, made for `host` (its common name; any
    /// host's when `None`: an operator's `cluster status`), and the key the
    /// certificate's.
    pub fn load(files: &TlsFiles, host: Option<&str>) -> Result<Identity, TlsError> {
        let ca_pem = read(&files.ca)?;
        let cert_pem = read(&files.cert)?;
        let key_pem = read_key(&files.key)?;
        let ca_der = der_of(&files.ca, &ca_pem)?;
        let (_, ca) = X509Certificate::from_der(&ca_der)
            .map_err(|e| file_error(&files.ca, format!("not an X.509 certificate: {e}")))?;
        if !ca.is_ca() {
            return Err(file_error(
                &files.ca,
                "is not a CA certificate (make one with `homeostat ca init`)",
            ));
        }
        let cert_der = der_of(&files.cert, &cert_pem)?;
        let (_, cert) = X509Certificate::from_der(&cert_der)
            .map_err(|e| file_error(&files.cert, format!("not an X.509 certificate: {e}")))?;
        let cert_info = info(&cert);
        let host = host.unwrap_or(&cert_info.name);
        if cert.verify_signature(Some(ca.public_key())).is_err() {
            return Err(file_error(
                &files.cert,
                format!(
                    "is not signed by the CA in {} (it was issued by `{}`, the CA is `{}`): \
                     issue it again with that CA's `homeostat ca issue {host}`",
                    files.ca.display(),
                    cert_info.issuer,
                    common_name(ca.subject())
                ),
            ));
        }
        if let Some(why) = info(&ca).invalid_at(OffsetDateTime::now_utc()) {
            return Err(file_error(&files.ca, why));
        }
        if let Some(why) = cert_info.invalid_at(OffsetDateTime::now_utc()) {
            return Err(file_error(&files.cert, why));
        }
        if cert_info.name != *host {
            return Err(file_error(
                &files.cert,
                format!(
                    "is the certificate of host `{}`, not of this host `{host}` \
                     (--hostname): issue one with `homeostat ca issue {host}`",
                    cert_info.name
                ),
            ));
        }
        let key = rcgen::KeyPair::from_pem(&key_pem)
            .map_err(|e| file_error(&files.key, format!("not a private key: {e}")))?;
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(file_error(
                &files.key,
                format!("is not the key of the certificate {}", files.cert.display()),
            ));
        }
        Ok(Identity {
            files: files.clone(),
            cert: cert_info,
            ca_pem,
            cert_pem,
            key_pem,
        })
    }

    /// The CA certificate, the host certificate and its key, as read (PEM).
    pub fn pems(&self) -> (&str, &str, &str) {
        (&self.ca_pem, &self.cert_pem, &self.key_pem)
    }

    /// The host's name: its certificate's common name.
    pub fn name(&self) -> &str {
        &self.cert.name
    }

    /// The flags that make a supervised etcd serve clients and peers over TLS and take
    /// only those with a certificate of the same CA.
    pub fn server_args(&self) -> Vec<String> {
        let (ca, cert, key) = (
            self.files.ca.display(),
            self.files.cert.display(),
            self.files.key.display(),
        );
        vec![
            format!("--trusted-ca-file={ca}"),
            format!("--cert-file={cert}"),
            format!("--key-file={key}"),
            "--client-cert-auth".into(),
            format!("--peer-trusted-ca-file={ca}"),
            format!("--peer-cert-file={cert}"),
            format!("--peer-key-file={key}"),
            "--peer-client-cert-auth".into(),
        ]
    }

    fn client_tls(&self, server_name: Option<&str>) -> etcd_client::TlsOptions {
        let tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(&self.ca_pem))
            .identity(etcd_client::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ));
        match server_name {
            Some(name) => tls.domain_name(name),
            None => tls,
        }
    }
}

/// How a host talks to etcd: in plain text, or over mutual TLS.
#[derive(Debug, Clone, Default)]
pub enum Security {
    /// No TLS: allowed on loopback, and elsewhere only with `--insecure`.
    #[default]
    Plain,
    /// Mutual TLS with this identity. `server_name`: the name the servers' certificates
    /// are checked against instead of the address dialled (a tunnel's `127.0.0.1` is
    /// not the server's name: remote execution checks the initiator's hostname).
    Tls {
        identity: Arc<Identity>,
        server_name: Option<String>,
    },
}

impl Security {
    /// What the hosts this one runs remotely check its etcd against, through their
    /// tunnel (`None`: plain): the name it checks its own servers against, else its own
    /// name when its certificate holds it as a DNS name, else nothing more than the
    /// loopback address every host certificate holds (`Some(None)`).
    pub fn server_name_for_remotes(&self) -> Option<Option<&str>> {
        match self {
            Security::Plain => None,
            Security::Tls {
                server_name: Some(name),
                ..
            } => Some(Some(name)),
            Security::Tls { identity, .. } => Some(
                identity
                    .cert
                    .dns
                    .iter()
                    .any(|d| d == identity.name())
                    .then(|| identity.name()),
            ),
        }
    }

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Security::Tls { .. })
    }

    /// The URL scheme etcd is reached with.
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }

    /// `options` with this host's TLS, if it has any.
    pub fn options(&self, options: etcd_client::ConnectOptions) -> etcd_client::ConnectOptions {
        match self {
            Security::Plain => options,
            Security::Tls {
                identity,
                server_name,
            } => options.with_tls(identity.client_tls(server_name.as_deref())),
        }
    }

    /// Check a URL this host serves or connects to (`what`: the flag, for the error):
    /// with TLS it must be `https://`; without, `http://` and on loopback unless
    /// `insecure`.
    pub fn check_url(&self, what: &str, url: &str, insecure: bool) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{what} {url}: {e}"))?;
        match (self.is_tls(), parsed.scheme()) {
            (true, "https") => Ok(()),
            (true, _) => Err(format!(
                "{what} {url}: this host has TLS certificates, so its etcd URLs are \
                 https:// (write https://{})",
                host_port(&parsed)
            )),
            (false, "https") => Err(format!(
                "{what} {url}: https:// needs this host's TLS files (--ca, --cert, --key, or \
                 {DIR}/ in the state directory); make them with `homeostat ca`"
            )),
            (false, "http") if insecure || is_loopback(&parsed) => Ok(()),
            (false, "http") => Err(format!(
                "{what} {url}: refusing plaintext etcd off loopback: anyone who reaches it \
                 can write what every host runs. Make certificates with `homeostat ca init` \
                 and `homeostat ca issue HOSTNAME` (docs/security.md) and use https://, or \
                 pass --insecure on a network you trust"
            )),
            (_, other) => Err(format!(
                "{what} {url}: expected http:// or https://, not {other}://"
            )),
        }
    }
}

/// Whether the server at the plaintext `url` speaks TLS: it answers the start of a TLS
/// handshake (a record too short to be a ClientHello) with a TLS record, an alert or a
/// handshake, where a plaintext etcd answers HTTP or nothing (a server that is starting
/// may close at once, which says nothing). Asked once a plaintext connection failed, to
/// say why instead of retrying forever; `false` when it cannot tell.
pub async fn serves_only_tls(url: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A TLS handshake record holding a ClientHello of length 0: a TLS server refuses it
    // with an alert record (0x15).
    const HELLO: [u8; 9] = [0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00];
    let Some(addr) = url::Url::parse(url)
        .ok()
        .filter(|u| u.scheme() == "http")
        .map(|u| host_port(&u))
    else {
        return false;
    };
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(addr.as_str()).await.ok()?;
        stream.write_all(&HELLO).await.ok()?;
        let mut first = [0u8; 1];
        let n = stream.read(&mut first).await.ok()?;
        Some(n == 1 && matches!(first[0], 0x15 | 0x16))
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

fn host_port(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    }
}

/// Whether a URL names this machine's loopback.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_warned_about_a_month_or_a_quarter_of_the_life_before() {
        let now = OffsetDateTime::now_utc();
        let cert = |lived: i64, left: i64| CertInfo {
            name: "h".into(),
            issuer: "c".into(),
            dns: Vec::new(),
            ips: Vec::new(),
            is_ca: false,
            not_before: now - time::Duration::days(lived),
            not_after: now + time::Duration::days(left),
        };
        // A year's certificate: from 30 days before.
        assert_eq!(cert(300, 65).expires_soon(now), None);
        assert_eq!(cert(340, 25).expires_soon(now), Some(25));
        // A remote run's 7 days: from its last quarter.
        assert_eq!(cert(4, 3).expires_soon(now), None);
        assert_eq!(cert(6, 1).expires_soon(now), Some(1));
    }

    #[test]
    fn plaintext_is_refused_off_loopback_unless_insecure() {
        let plain = Security::Plain;
        for ok in [
            "http://127.0.0.1:2379",
            "http://[::1]:2379",
            "http://localhost:2379",
        ] {
            assert_eq!(plain.check_url("--seeds", ok, false), Ok(()), "{ok}");
        }
        let e = plain
            .check_url("--seeds", "http://10.0.0.1:2379", false)
            .unwrap_err();
        assert!(
            e.contains("refusing plaintext") && e.contains("homeostat ca init"),
            "{e}"
        );
        assert_eq!(
            plain.check_url("--seeds", "http://10.0.0.1:2379", true),
            Ok(())
        );
        let e = plain
            .check_url("--seeds", "https://10.0.0.1:2379", false)
            .unwrap_err();
        assert!(e.contains("needs this host's TLS files"), "{e}");
        let e = plain
            .check_url("--seeds", "ftp://10.0.0.1:2379", true)
            .unwrap_err();
        assert!(e.contains("expected http:// or https://"), "{e}");
    }
}
