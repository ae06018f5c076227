//! The `provision` params (`schema/provision.json`) and their checks, turned into the
//! settings the TFTP and HTTP cores take. Pure: no host calls.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use homeostat_sdk::{Error, Result};
use serde::Deserialize;

use crate::files::{MemFiles, PathError, confine};
use crate::http::{LOCAL_BOOT_IPXE, SiteConfig};
use crate::tftp;

/// The params as written in the graph.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub root: String,
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    #[serde(default = "default_tftp")]
    pub tftp_address: String,
    #[serde(default = "default_http")]
    pub http_address: String,
    #[serde(default = "default_max_transfers")]
    pub max_transfers: u32,
    #[serde(default)]
    pub boot: Option<String>,
    #[serde(default)]
    pub local_boot: Option<String>,
}

fn default_tftp() -> String {
    ":69".into()
}
fn default_http() -> String {
    ":4280".into()
}
fn default_max_transfers() -> u32 {
    64
}

/// Largest accepted `max_transfers`.
pub const MAX_TRANSFERS: u32 = 10_000;

/// A listening address: an IP (`None`: every address) and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            None => write!(f, ":{}", self.port),
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

/// Parse `:PORT`, `IPV4:PORT` or `[IPV6]:PORT`.
pub fn parse_address(s: &str) -> Option<Address> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let ip = if host.is_empty() {
        None
    } else if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(IpAddr::V6(v6.parse().ok()?))
    } else {
        Some(IpAddr::V4(host.parse().ok()?))
    };
    Some(Address { ip, port })
}

/// Checked params.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Absolute, without a trailing `/`.
    pub root: String,
    pub inline: MemFiles,
    pub tftp_address: Address,
    pub http_address: Address,
    pub max_transfers: usize,
    pub boot: Option<String>,
    pub local_boot: String,
}

impl Spec {
    pub fn from_params(p: &Params) -> Result<Spec> {
        let root = check_root(&p.root)?;
        let mut inline = MemFiles::new();
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (name, content) in &p.files {
            let rel = confine(name).map_err(|e| {
                Error::param("files", format!("file name `{name}` is not allowed: {e}"))
            })?;
            if let Some(other) = seen.insert(rel.as_str().to_string(), name) {
                return Err(Error::param(
                    "files",
                    format!("`{other}` and `{name}` name the same file `{rel}`"),
                ));
            }
            let mut parts = rel.as_str().splitn(2, '/');
            if let (Some(top @ ("done" | "boot")), Some(_)) = (parts.next(), parts.next()) {
                return Err(Error::param(
                    "files",
                    format!(
                        "`{name}`: paths under `{top}/` are reserved for the HTTP endpoint /{top}/<host>"
                    ),
                ));
            }
            inline
                .insert(rel.as_str(), content.as_bytes().to_vec())
                .map_err(|e| Error::param("files", e.to_string()))?;
        }
        let address = |field: &str, s: &str| {
            parse_address(s).ok_or_else(|| {
                Error::param(
                    field,
                    format!("`{s}` is not an address; write `:PORT`, `IPV4:PORT` or `[IPV6]:PORT` with a port from 1 to 65535"),
                )
            })
        };
        let tftp_address = address("tftp_address", &p.tftp_address)?;
        let http_address = address("http_address", &p.http_address)?;
        if p.max_transfers == 0 || p.max_transfers > MAX_TRANSFERS {
            return Err(Error::param(
                "max_transfers",
                format!("must be between 1 and {MAX_TRANSFERS}"),
            ));
        }
        let boot = match &p.boot {
            None => None,
            Some(b) => Some(
                confine(b)
                    .map_err(|e| Error::param("boot", format!("`{b}` is not allowed: {e}")))?
                    .as_str()
                    .to_string(),
            ),
        };
        Ok(Spec {
            root,
            inline,
            tftp_address,
            http_address,
            max_transfers: p.max_transfers as usize,
            boot,
            local_boot: p
                .local_boot
                .clone()
                .unwrap_or_else(|| LOCAL_BOOT_IPXE.to_string()),
        })
    }

    /// Settings for the TFTP server.
    pub fn tftp_config(&self) -> tftp::Config {
        tftp::Config {
            root: self.root.clone(),
            max_transfers: self.max_transfers,
            ..tftp::Config::default()
        }
    }

    /// Settings for the HTTP site.
    pub fn site_config(&self) -> SiteConfig {
        SiteConfig {
            root: self.root.clone(),
            boot: self.boot.clone(),
            local_boot: self.local_boot.clone(),
        }
    }
}

fn check_root(root: &str) -> Result<String> {
    let bad = |why: &str| Error::param("root", format!("`{root}` {why}"));
    if !root.starts_with('/') {
        return Err(bad("is not an absolute path"));
    }
    match confine(root) {
        Ok(rel) => Ok(format!("/{rel}")),
        Err(PathError::Empty) => Err(bad("would serve the whole file system; choose a directory")),
        Err(e) => Err(bad(&format!("is not allowed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::FileSource;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    fn err(json: &str) -> Error {
        Spec::from_params(&params(json)).unwrap_err()
    }

    #[test]
    fn defaults() {
        let s = Spec::from_params(&params(r#"{"root": "/srv/install/"}"#)).unwrap();
        assert_eq!(s.root, "/srv/install");
        assert_eq!(s.tftp_address, Address { ip: None, port: 69 });
        assert_eq!(s.http_address.to_string(), ":4280");
        assert_eq!(s.max_transfers, 64);
        assert_eq!(s.boot, None);
        assert_eq!(s.local_boot, LOCAL_BOOT_IPXE);
        assert!(s.inline.is_empty());
        assert_eq!(s.tftp_config().max_transfers, 64);
        assert_eq!(s.tftp_config().root, "/srv/install");
        assert_eq!(s.site_config().local_boot, LOCAL_BOOT_IPXE);
    }

    #[test]
    fn everything_set() {
        let s = Spec::from_params(&params(
            r##"{"root": "/srv/tftp", "files": {"ks.cfg": "text\n", "/pxelinux.cfg/default": "x"},
                "tftp_address": "127.0.0.1:6969", "http_address": "[::1]:8080",
                "max_transfers": 3, "boot": "boot.ipxe", "local_boot": "#!ipxe\nsanboot --no-describe --drive 0x80\n"}"##,
        ))
        .unwrap();
        assert_eq!(s.inline.len(), 2);
        let p = confine("pxelinux.cfg/default").unwrap();
        assert_eq!(s.inline.size(&p), Ok(1));
        assert_eq!(s.tftp_address.to_string(), "127.0.0.1:6969");
        assert_eq!(s.http_address.to_string(), "[::1]:8080");
        assert_eq!(s.max_transfers, 3);
        assert_eq!(s.boot.as_deref(), Some("boot.ipxe"));
        assert!(s.local_boot.contains("sanboot"));
    }

    #[test]
    fn bad_params_name_their_field() {
        let cases = [
            (r#"{"root": "srv"}"#, "root"),
            (r#"{"root": "/"}"#, "root"),
            (r#"{"root": "/srv/../etc"}"#, "root"),
            (r#"{"root": "/s", "files": {"../x": ""}}"#, "files"),
            (r#"{"root": "/s", "files": {"": ""}}"#, "files"),
            (r#"{"root": "/s", "files": {"a": "", "/a": ""}}"#, "files"),
            (r#"{"root": "/s", "files": {"done/x": ""}}"#, "files"),
            (r#"{"root": "/s", "tftp_address": "69"}"#, "tftp_address"),
            (r#"{"root": "/s", "tftp_address": ":0"}"#, "tftp_address"),
            (
                r#"{"root": "/s", "http_address": "::1:80"}"#,
                "http_address",
            ),
            (
                r#"{"root": "/s", "http_address": "host:80"}"#,
                "http_address",
            ),
            (
                r#"{"root": "/s", "http_address": ":65536"}"#,
                "http_address",
            ),
            (r#"{"root": "/s", "max_transfers": 0}"#, "max_transfers"),
            (r#"{"root": "/s", "boot": "../x"}"#, "boot"),
        ];
        for (json, field) in cases {
            assert_eq!(err(json).field.as_deref(), Some(field), "{json}");
        }
        assert!(serde_json::from_str::<Params>(r#"{"root": "/s", "port": 1}"#).is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("0.0.0.0:69"),
            Some(Address {
                ip: Some("0.0.0.0".parse().unwrap()),
                port: 69
            })
        );
        assert_eq!(parse_address("[::]:69").unwrap().to_string(), "[::]:69");
        for bad in [
            "",
            ":",
            "69",
            "1.2.3.4",
            "[::1]",
            "::1:69",
            "1.2.3.4:x",
            "[zz]:1",
        ] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }
}
