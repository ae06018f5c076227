//! What each plugin may use: the operator's grants policy and, per plugin, the effective
//! set of host capabilities that every host interface consults before doing anything.
//!
//! **Rule.** A bundled plugin (inside the binary) gets what its manifest declares. A
//! third-party plugin (from a plugin directory) gets nothing but `log` and `state` until
//! the policy file grants it capabilities by plugin name **and** the SHA-256 of its
//! `.wasm`, so a replaced file loses its grant. Effective = declared ∩ granted.
//!
//! **Policy file** (TOML; `--grants FILE`, else [`default_path`] when it exists): one line
//! per plugin under `[plugins]`, so the error for an ungranted call can print the exact
//! line that would allow it:
//!
//! ```toml
//! [plugins]
//! line = { sha256 = "3b0c…e1", capabilities = ["fs"] }
//! # several builds may be trusted at once (e.g. during an upgrade):
//! sysctl = { sha256 = ["9f2a…", "77c1…"], capabilities = ["fs"] }
//! ```
//!
//! **Enforcement.** [`Access::allowed`] is the one check: the host state of every
//! instance holds its plugin's [`Access`] and each host interface asks it for its
//! [`Capability`] first (a capability added later gets a variant here and one call at the
//! top of its interface). An ungranted call fails closed with a [`CapError`] naming the
//! plugin, the capability and the grant line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::plugin::manifest::Manifest;

/// A host interface a plugin must be granted (`log` and `state` are always available).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// `homeostat:resource/fs`: files within the resource's footprint.
    Fs,
    /// `homeostat:resource/process`: the resource's own command lines.
    Process,
    /// `homeostat:resource/systemd`: the resource's own units.
    Systemd,
    /// `homeostat:resource/kmsg`: reading the kernel log.
    Kmsg,
    /// `homeostat:resource/net`: binding the resource's own addresses while serving.
    Net,
}

impl Capability {
    /// Every capability, in the order they are listed to users.
    pub const ALL: &'static [Capability] = &[
        Capability::Fs,
        Capability::Process,
        Capability::Systemd,
        Capability::Kmsg,
        Capability::Net,
    ];

    /// The name used in manifests and grants.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Fs => "fs",
            Capability::Process => "process",
            Capability::Systemd => "systemd",
            Capability::Kmsg => "kmsg",
            Capability::Net => "net",
        }
    }

    /// The capability called `name`, if there is one.
    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// `fs, process, systemd, kmsg, net`.
    pub fn known() -> String {
        Capability::ALL
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the grants file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GrantsError {
    #[error("cannot read grants file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("grants file {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    plugins: BTreeMap<String, GrantEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantEntry {
    sha256: OneOrMany,
    #[serde(default)]
    capabilities: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// One plugin's grant: the builds it covers and what they may use.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    sha256: Vec<String>,
    capabilities: BTreeSet<Capability>,
}

/// The operator's grants, by plugin name.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Where it was read from (`None`: no file; nothing is granted).
    path: Option<PathBuf>,
    plugins: BTreeMap<String, Grant>,
}

/// The grants file used when `--grants` is not given: `/etc/homeostat/grants.toml` for
/// root, `$XDG_CONFIG_HOME/homeostat/grants.toml` (else `~/.config/homeostat/grants.toml`)
/// for other users.
pub fn default_path() -> Option<PathBuf> {
    if rustix::process::geteuid().is_root() {
        return Some(PathBuf::from("/etc/homeostat/grants.toml"));
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))
        .map(|d| d.join("homeostat/grants.toml"))
}

impl Policy {
    /// No grants at all (third-party plugins get nothing).
    pub fn empty() -> Policy {
        Policy::default()
    }

    /// Read and check the grants file at `path`.
    pub fn load(path: &Path) -> Result<Policy, GrantsError> {
        let text = std::fs::read_to_string(path).map_err(|source| GrantsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&text, path)
    }

    /// `--grants FILE` when given (it must exist), else the default file when it exists.
    pub fn load_default(explicit: Option<&Path>) -> Result<Policy, GrantsError> {
        match explicit {
            Some(p) => Policy::load(p),
            None => match default_path() {
                Some(p) if p.is_file() => Policy::load(&p),
                _ => Ok(Policy {
                    path: default_path(),
                    plugins: BTreeMap::new(),
                }),
            },
        }
    }

    /// Parse policy text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Policy, GrantsError> {
        let invalid = |message: String| GrantsError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let file: PolicyFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut plugins = BTreeMap::new();
        for (name, entry) in file.plugins {
            let sha256 = match entry.sha256 {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(v) => v,
            };
            if sha256.is_empty() {
                return Err(invalid(format!(
                    "plugin `{name}`: `sha256` lists no digest"
                )));
            }
            for s in &sha256 {
                if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid(format!(
                        "plugin `{name}`: `{s}` is not a SHA-256 (64 hex digits); \
                         `homeostat plugin inspect FILE.wasm` prints it"
                    )));
                }
            }
            let mut capabilities = BTreeSet::new();
            for c in &entry.capabilities {
                let cap = Capability::parse(c).ok_or_else(|| {
                    invalid(format!(
                        "plugin `{name}`: unknown capability `{c}` (known: {})",
                        Capability::known()
                    ))
                })?;
                capabilities.insert(cap);
            }
            let sha256 = sha256.into_iter().map(|s| s.to_ascii_lowercase()).collect();
            plugins.insert(
                name,
                Grant {
                    sha256,
                    capabilities,
                },
            );
        }
        Ok(Policy {
            path: Some(path.to_path_buf()),
            plugins,
        })
    }

    /// Where the grants come from, for messages.
    fn place(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "a grants file (--grants FILE)".to_string(),
        }
    }

    /// What a third-party plugin may use, given its manifest and the SHA-256 of its file.
    pub fn access(&self, manifest: &Manifest, sha256: &str, origin: &str) -> Access {
        let declared = declared(manifest);
        let grant = self.plugins.get(&manifest.name);
        let sha_ok = grant.is_some_and(|g| g.sha256.iter().any(|s| s == sha256));
        let granted: BTreeSet<Capability> = match grant {
            Some(g) if sha_ok => g.capabilities.clone(),
            _ => BTreeSet::new(),
        };
        let effective: BTreeSet<Capability> = declared.intersection(&granted).copied().collect();
        let why = match grant {
            None => format!(
                "{} has no grant for plugin `{}`",
                self.place(),
                manifest.name
            ),
            Some(g) if !sha_ok => format!(
                "the grant for `{}` in {} is for sha256 {}, but {origin} has sha256 {sha256} \
                 (a different build: check it before trusting it)",
                manifest.name,
                self.place(),
                g.sha256.join(", ")
            ),
            Some(_) => format!(
                "{} grants `{}` only [{}]",
                self.place(),
                manifest.name,
                names(&granted)
            ),
        };
        Access {
            plugin: format!("{} {}", manifest.name, manifest.version),
            origin: origin.to_string(),
            name: manifest.name.clone(),
            sha256: sha256.to_string(),
            declared,
            effective,
            denied_because: Some(why),
        }
    }
}

fn declared(manifest: &Manifest) -> BTreeSet<Capability> {
    manifest
        .capabilities
        .iter()
        .filter_map(|c| Capability::parse(c))
        .collect()
}

fn names(caps: &BTreeSet<Capability>) -> String {
    caps.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
}

/// The capabilities named in a manifest that this homeostat does not know.
pub fn unknown_capabilities(manifest: &Manifest) -> Vec<String> {
    manifest
        .capabilities
        .iter()
        .filter(|c| Capability::parse(c).is_none())
        .cloned()
        .collect()
}

/// One plugin's effective capabilities, consulted by every host interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `name version`.
    plugin: String,
    /// `bundled:NAME` or the file's path.
    origin: String,
    name: String,
    sha256: String,
    declared: BTreeSet<Capability>,
    effective: BTreeSet<Capability>,
    /// Why a declared capability is missing from `effective`; `None` for bundled plugins.
    denied_because: Option<String>,
}

/// A host call the plugin may not make. The message says how to allow it, if it can be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CapError(pub String);

impl Access {
    /// A bundled plugin: trusted with everything it declares.
    pub fn trusted(manifest: &Manifest, sha256: &str, origin: &str) -> Access {
        let declared = declared(manifest);
        Access {
            plugin: format!("{} {}", manifest.name, manifest.version),
            origin: origin.to_string(),
            name: manifest.name.clone(),
            sha256: sha256.to_string(),
            effective: declared.clone(),
            declared,
            denied_because: None,
        }
    }

    /// Whether calls of `cap` are allowed; the error names plugin, capability and the grant
    /// line that would allow it.
    pub fn allowed(&self, cap: Capability) -> Result<(), CapError> {
        if self.effective.contains(&cap) {
            return Ok(());
        }
        if !self.declared.contains(&cap) {
            return Err(CapError(format!(
                "plugin `{}` did not declare the `{cap}` capability in its manifest \
                 (add it to `export_resource!(..; capabilities = [..])` and rebuild)",
                self.plugin
            )));
        }
        let mut want = self.effective.clone();
        want.insert(cap);
        Err(CapError(format!(
            "plugin `{}` ({}) is not granted the `{cap}` capability: {}. To allow it, put \
             this line under `[plugins]` in the grants file: {}",
            self.plugin,
            self.origin,
            self.denied_because
                .as_deref()
                .unwrap_or("it is not granted"),
            self.grant_line(&want)
        )))
    }

    /// The policy line granting `caps` to this exact build.
    pub fn grant_line(&self, caps: &BTreeSet<Capability>) -> String {
        let key = if self
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.name.clone()
        } else {
            format!("{:?}", self.name)
        };
        let list: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
        format!(
            "{key} = {{ sha256 = \"{}\", capabilities = [{}] }}",
            self.sha256,
            list.join(", ")
        )
    }

    /// Capabilities declared in the manifest but not granted (empty when all are).
    pub fn missing(&self) -> BTreeSet<Capability> {
        self.declared.difference(&self.effective).copied().collect()
    }

    /// The line granting everything the plugin declares, for the load-time warning.
    pub fn full_grant_line(&self) -> String {
        self.grant_line(&self.declared)
    }

    /// What the plugin may use.
    pub fn effective(&self) -> &BTreeSet<Capability> {
        &self.effective
    }

    /// Whether this is a bundled (trusted) plugin.
    pub fn is_trusted(&self) -> bool {
        self.denied_because.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(caps: &[&str]) -> Manifest {
        Manifest {
            api: "0.1.0".into(),
            name: "line".into(),
            version: "0.2.0".into(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            kinds: BTreeMap::new(),
        }
    }

    const SHA: &str = "3b0c6f1d9a7e4c2b8f5a1e0d7c6b5a493827161504f3e2d1c0b9a8f7e6d5c4b3";
    const OTHER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn policy(text: &str) -> Policy {
        Policy::parse(text, Path::new("/etc/homeostat/grants.toml")).unwrap()
    }

    #[test]
    fn bundled_plugins_get_what_they_declare() {
        let a = Access::trusted(&manifest(&["fs"]), SHA, "bundled:line");
        assert!(a.allowed(Capability::Fs).is_ok());
        let e = a.allowed(Capability::Process).unwrap_err().0;
        assert!(
            e.contains("did not declare the `process` capability"),
            "{e}"
        );
    }

    #[test]
    fn an_ungranted_plugin_gets_nothing_and_is_told_the_line() {
        let a = Policy::empty().access(&manifest(&["fs"]), SHA, "/p/line.wasm");
        let e = a.allowed(Capability::Fs).unwrap_err().0;
        assert!(e.contains("plugin `line 0.2.0` (/p/line.wasm)"), "{e}");
        assert!(e.contains("not granted the `fs` capability"), "{e}");
        assert!(
            e.contains(&format!(
                "line = {{ sha256 = \"{SHA}\", capabilities = [\"fs\"] }}"
            )),
            "{e}"
        );
        assert_eq!(a.missing().len(), 1);
    }

    #[test]
    fn a_grant_needs_the_name_and_the_sha256() {
        let p = policy(&format!(
            "[plugins]\nline = {{ sha256 = \"{OTHER}\", capabilities = [\"fs\"] }}\n"
        ));
        let a = p.access(&manifest(&["fs"]), SHA, "/p/line.wasm");
        let e = a.allowed(Capability::Fs).unwrap_err().0;
        assert!(e.contains("is for sha256 0000") && e.contains(SHA), "{e}");

        let p = policy(&format!(
            "[plugins]\nline = {{ sha256 = [\"{OTHER}\", \"{}\"], capabilities = [\"fs\"] }}\n",
            SHA.to_uppercase()
        ));
        let a = p.access(&manifest(&["fs"]), SHA, "/p/line.wasm");
        assert!(a.allowed(Capability::Fs).is_ok());
        assert!(a.missing().is_empty());
    }

    #[test]
    fn effective_is_declared_intersected_with_granted() {
        let p = policy(&format!(
            "[plugins]\nline = {{ sha256 = \"{SHA}\", capabilities = [\"fs\", \"systemd\"] }}\n"
        ));
        let a = p.access(&manifest(&["fs", "process"]), SHA, "/p/line.wasm");
        assert!(a.allowed(Capability::Fs).is_ok());
        // Granted but not declared: still refused.
        assert!(a.allowed(Capability::Systemd).is_err());
        // Declared but not granted: refused, with the line that adds it.
        let e = a.allowed(Capability::Process).unwrap_err().0;
        assert!(
            e.contains("grants `line` only [fs, systemd]")
                && e.contains("capabilities = [\"fs\", \"process\"]"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_policy_file_is_refused_with_what_is_wrong() {
        let bad = |t: &str| {
            Policy::parse(t, Path::new("g.toml"))
                .unwrap_err()
                .to_string()
        };
        assert!(bad("[plugins]\nx = { sha256 = \"abc\" }\n").contains("not a SHA-256"));
        let e = bad(&format!(
            "[plugins]\nx = {{ sha256 = \"{SHA}\", capabilities = [\"nett\"] }}\n"
        ));
        assert!(
            e.contains("unknown capability `nett`") && e.contains("fs, process"),
            "{e}"
        );
        assert!(bad("[plugin]\n").contains("g.toml"));
        assert!(bad(&format!("[plugins]\nx = {{ sha = \"{SHA}\" }}\n")).contains("sha"));
    }
}
