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
//! line that would allow it, and the file to put it in: the one homeostat looked for
//! (`--grants FILE`, or the default path for this user, saying when it does not exist).
//! It is read through [`crate::sys::input`]: at most [`MAX_GRANTS_BYTES`], and a FIFO or
//! a device is refused without being read.
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
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;

use crate::plugin::manifest::Manifest;
use crate::sys::input::{self, Cap, InputError};

/// Largest grants file read: a grant line is about 120 bytes, so this is thousands of
/// plugins.
pub const MAX_GRANTS_BYTES: u64 = 1 << 20;

/// The [`Cap`] of the grants file.
pub const GRANTS_CAP: Cap = Cap {
    what: "grants file",
    bytes: MAX_GRANTS_BYTES,
    flag: None,
};

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
    /// `homeostat:resource/world@0.2.0`: values shared between hosts.
    World,
}

impl Capability {
    /// Every capability, in the order they are listed to users.
    pub const ALL: &'static [Capability] = &[
        Capability::Fs,
        Capability::Process,
        Capability::Systemd,
        Capability::Kmsg,
        Capability::Net,
        Capability::World,
    ];

    /// The name used in manifests and grants.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Fs => "fs",
            Capability::Process => "process",
            Capability::Systemd => "systemd",
            Capability::Kmsg => "kmsg",
            Capability::Net => "net",
            Capability::World => "world",
        }
    }

    /// The capability called `name`, if there is one.
    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// `fs, process, systemd, kmsg, net, world`.
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
    /// Not read: unreadable, not a regular file, or too large.
    #[error(transparent)]
    Input(#[from] InputError),
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
    /// Instances of the plugin's pool, instead of the size its memory gives it.
    #[serde(default)]
    pool: Option<usize>,
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
    pool: Option<usize>,
}

/// The operator's grants, by plugin name.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Where the grants were looked for, for messages.
    source: Source,
    plugins: BTreeMap<String, Grant>,
}

/// Where a [`Policy`] comes from: the file homeostat read, or looked for and did not find.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Source {
    /// No file was looked for ([`Policy::empty`]).
    #[default]
    Nothing,
    /// The grants file read (`--grants FILE`, or the default one), as an absolute path.
    File(PathBuf),
    /// No `--grants`, and the default file for this user does not exist.
    MissingDefault(PathBuf),
    /// No `--grants`, and no default file (no home directory to find one in).
    NoDefault,
}

/// The grants file used when `--grants` is not given: `/etc/homeostat/grants.toml` for
/// root, `$XDG_CONFIG_HOME/homeostat/grants.toml` (else `~/.config/homeostat/grants.toml`)
/// for other users. An empty or relative `XDG_CONFIG_HOME` is ignored, as the XDG base
/// directory specification says.
pub fn default_path() -> Option<PathBuf> {
    default_path_for(
        rustix::process::geteuid().is_root(),
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    )
}

/// [`default_path`] for a user who is root or not, with these variables.
fn default_path_for(
    root: bool,
    xdg_config_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    if root {
        return Some(PathBuf::from("/etc/homeostat/grants.toml"));
    }
    let absolute = |v: OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    xdg_config_home
        .and_then(absolute)
        .or_else(|| home.and_then(absolute).map(|h| h.join(".config")))
        .map(|d| d.join("homeostat/grants.toml"))
}

/// `path` made absolute (for messages that must name the file unambiguously).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Policy {
    /// No grants at all (third-party plugins get nothing).
    pub fn empty() -> Policy {
        Policy::default()
    }

    /// Read and check the grants file at `path` (a regular file of at most
    /// [`MAX_GRANTS_BYTES`]).
    pub fn load(path: &Path) -> Result<Policy, GrantsError> {
        let bytes = input::read_file(path, &GRANTS_CAP)?;
        let text = String::from_utf8(bytes).map_err(|e| GrantsError::Invalid {
            path: path.to_path_buf(),
            message: format!("not UTF-8 text: {}", e.utf8_error()),
        })?;
        Policy::parse(&text, path)
    }

    /// `--grants FILE` when given (it must exist), else the default file when it exists.
    pub fn load_default(explicit: Option<&Path>) -> Result<Policy, GrantsError> {
        Policy::resolve(explicit, default_path())
    }

    /// [`Policy::load_default`] with `default` as this user's default file.
    fn resolve(explicit: Option<&Path>, default: Option<PathBuf>) -> Result<Policy, GrantsError> {
        use std::io::ErrorKind;
        match (explicit, default) {
            (Some(p), _) => Policy::load(p),
            (None, Some(p)) => match Policy::load(&p) {
                Err(GrantsError::Input(e))
                    if matches!(
                        e.io_kind(),
                        Some(ErrorKind::NotFound | ErrorKind::NotADirectory)
                    ) =>
                {
                    Ok(Policy {
                        source: Source::MissingDefault(absolute(&p)),
                        plugins: BTreeMap::new(),
                    })
                }
                loaded => loaded,
            },
            (None, None) => Ok(Policy {
                source: Source::NoDefault,
                plugins: BTreeMap::new(),
            }),
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
            if let Some(n) = entry.pool
                && !(1..=crate::plugin::shape::MAX_POOL).contains(&n)
            {
                return Err(invalid(format!(
                    "plugin `{name}`: `pool = {n}` is not between 1 and {}",
                    crate::plugin::shape::MAX_POOL
                )));
            }
            plugins.insert(
                name,
                Grant {
                    sha256,
                    capabilities,
                    pool: entry.pool,
                },
            );
        }
        Ok(Policy {
            source: Source::File(absolute(path)),
            plugins,
        })
    }

    /// The file a grant line belongs in: the one read, or the default one homeostat looked
    /// for; `None` when there is neither.
    fn grants_file(&self) -> Option<&Path> {
        match &self.source {
            Source::File(p) | Source::MissingDefault(p) => Some(p),
            Source::Nothing | Source::NoDefault => None,
        }
    }

    /// Why `plugin` has no grant at all, naming the file looked for.
    fn no_grant(&self, plugin: &str) -> String {
        match &self.source {
            Source::File(p) => {
                format!(
                    "the grants file {} has no grant for plugin `{plugin}`",
                    p.display()
                )
            }
            Source::MissingDefault(p) => format!(
                "no grants file was given (--grants FILE) and the default one, {}, does not \
                 exist",
                p.display()
            ),
            Source::NoDefault => "no grants file was given (--grants FILE), and there is no \
                                  default one (no home directory)"
                .to_string(),
            Source::Nothing => "no grants file was read".to_string(),
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
        // A grant was found, so a file was read.
        let place = || {
            self.grants_file()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let why = match grant {
            None => self.no_grant(&manifest.name),
            Some(g) if !sha_ok => format!(
                "the grant for `{}` in {} is for sha256 {}, but {origin} has sha256 {sha256} \
                 (a different build: check it before trusting it)",
                manifest.name,
                place(),
                g.sha256.join(", ")
            ),
            Some(_) => format!(
                "{} grants `{}` only [{}]",
                place(),
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
            grants_file: self.grants_file().map(Path::to_path_buf),
            explained: Explained::default(),
            pool: grant.filter(|_| sha_ok).and_then(|g| g.pool),
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
    /// The grants file homeostat read or looked for (where a grant line goes).
    grants_file: Option<PathBuf>,
    /// Capabilities whose refusal has been explained in full already.
    explained: Explained,
    /// The pool size the grant sets for this build, if it does.
    pool: Option<usize>,
}

/// The capabilities whose refusal was explained (shared by an [`Access`]'s clones): the
/// whole explanation, with the grant line, is given once per plugin; every other resource
/// of the plugin gets a short error pointing at it.
#[derive(Debug, Clone, Default)]
struct Explained(Arc<Mutex<BTreeSet<Capability>>>);

impl PartialEq for Explained {
    /// What was said is no part of what is granted.
    fn eq(&self, _: &Explained) -> bool {
        true
    }
}

impl Eq for Explained {}

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
            grants_file: None,
            explained: Explained::default(),
            pool: None,
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
                 (add it to the manifest's `capabilities`: `export_resource!(..; capabilities \
                 = [..])` in Rust, `plugin pack --manifest` otherwise; and rebuild)",
                self.plugin
            )));
        }
        let first = self
            .explained
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cap);
        if !first {
            return Err(CapError(format!(
                "plugin `{}` ({}) is not granted the `{cap}` capability (the first resource \
                 refused it says how to grant it)",
                self.plugin, self.origin
            )));
        }
        let mut want = self.effective.clone();
        want.insert(cap);
        Err(CapError(format!(
            "plugin `{}` ({}) is not granted the `{cap}` capability: {}. To allow it, put \
             this line under `[plugins]` in {}: {}",
            self.plugin,
            self.origin,
            self.denied_because
                .as_deref()
                .unwrap_or("it is not granted"),
            self.grants_file_hint(),
            self.grant_line(&want)
        )))
    }

    /// Where a grant line goes, for messages: the grants file homeostat read or looked
    /// for, else how to give one.
    pub fn grants_file_hint(&self) -> String {
        match &self.grants_file {
            Some(p) => p.display().to_string(),
            None => "a grants file, passed with --grants FILE".to_string(),
        }
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

    /// The pool size the operator's grant sets for this build (`pool = N`), if any.
    pub fn pool(&self) -> Option<usize> {
        self.pool
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
    fn a_refusal_is_explained_once_per_plugin() {
        let a = Policy::empty().access(&manifest(&["fs"]), SHA, "/p/line.wasm");
        let first = a.allowed(Capability::Fs).unwrap_err().0;
        assert!(first.contains("To allow it"), "{first}");
        // Every other resource of the plugin (clones share what was said): short.
        for again in [a.allowed(Capability::Fs), a.clone().allowed(Capability::Fs)] {
            let e = again.unwrap_err().0;
            assert!(
                e.contains("not granted the `fs` capability (the first resource"),
                "{e}"
            );
            assert!(!e.contains("To allow it"), "{e}");
        }
    }

    #[test]
    fn a_grant_may_size_the_pool_of_its_build() {
        let p = policy(&format!(
            "[plugins]\nline = {{ sha256 = \"{SHA}\", capabilities = [\"fs\"], pool = 3 }}\n"
        ));
        assert_eq!(
            p.access(&manifest(&["fs"]), SHA, "/p/line.wasm").pool(),
            Some(3)
        );
        // Another build: the grant, its pool included, is not for it.
        assert_eq!(
            p.access(&manifest(&["fs"]), OTHER, "/p/line.wasm").pool(),
            None
        );
        let bad = Policy::parse(
            &format!("[plugins]\nline = {{ sha256 = \"{SHA}\", pool = 0 }}\n"),
            Path::new("/g.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("`pool = 0` is not between 1 and 1024"),
            "{bad}"
        );
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

    /// The message a call of `fs` gets from a plugin `policy` does not grant.
    fn refusal(policy: &Policy) -> String {
        policy
            .access(&manifest(&["fs"]), SHA, "/p/line.wasm")
            .allowed(Capability::Fs)
            .unwrap_err()
            .0
    }

    #[test]
    fn the_refusal_names_the_grants_file_given() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("my-grants.toml");
        std::fs::write(&file, "[plugins]\n").unwrap();
        // --grants FILE, whatever the default path is.
        let p = Policy::resolve(Some(&file), Some(d.path().join("default.toml"))).unwrap();
        let e = refusal(&p);
        assert!(
            e.contains(&format!(
                "the grants file {} has no grant for plugin `line`",
                file.display()
            )) && e.contains(&format!("under `[plugins]` in {}:", file.display())),
            "{e}"
        );
        assert!(!e.contains("default.toml"), "{e}");
        let a = p.access(&manifest(&["fs"]), SHA, "/p/line.wasm");
        assert_eq!(a.grants_file_hint(), file.display().to_string());
    }

    #[test]
    fn the_refusal_names_the_default_file_looked_for() {
        let d = tempfile::tempdir().unwrap();
        let default = d.path().join("homeostat/grants.toml");
        // It does not exist: the message says so, and where the line goes.
        let p = Policy::resolve(None, Some(default.clone())).unwrap();
        let e = refusal(&p);
        assert!(
            e.contains(&format!(
                "the default one, {}, does not exist",
                default.display()
            )) && e.contains(&format!("under `[plugins]` in {}:", default.display())),
            "{e}"
        );
        // It exists: it is read, and named.
        std::fs::create_dir_all(default.parent().unwrap()).unwrap();
        std::fs::write(&default, "[plugins]\n").unwrap();
        let e = refusal(&Policy::resolve(None, Some(default.clone())).unwrap());
        assert!(
            e.contains(&format!(
                "the grants file {} has no grant",
                default.display()
            )),
            "{e}"
        );
        // No default at all (no home directory): how to give one.
        let e = refusal(&Policy::resolve(None, None).unwrap());
        assert!(
            e.contains("no grants file was given") && e.contains("--grants FILE"),
            "{e}"
        );
    }

    #[test]
    fn a_relative_grants_path_is_named_absolute() {
        let relative = PathBuf::from("no-such-dir-here/grants.toml");
        let e = refusal(&Policy::resolve(None, Some(relative.clone())).unwrap());
        let absolute = std::env::current_dir().unwrap().join(&relative);
        assert!(e.contains(&format!("in {}:", absolute.display())), "{e}");
    }

    #[test]
    fn the_default_path_follows_the_user_and_xdg() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            default_path_for(true, os("/x"), os("/root")),
            Some(PathBuf::from("/etc/homeostat/grants.toml"))
        );
        assert_eq!(
            default_path_for(false, os("/cfg"), os("/home/u")),
            Some(PathBuf::from("/cfg/homeostat/grants.toml"))
        );
        // Empty or relative XDG_CONFIG_HOME: ignored, as the specification says.
        for xdg in ["", "relative/cfg"] {
            assert_eq!(
                default_path_for(false, os(xdg), os("/home/u")),
                Some(PathBuf::from("/home/u/.config/homeostat/grants.toml")),
                "XDG_CONFIG_HOME={xdg:?}"
            );
        }
        assert_eq!(default_path_for(false, None, None), None);
        assert_eq!(default_path_for(false, None, os("")), None);
    }

    #[test]
    fn a_grants_file_that_is_not_a_regular_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("grants.toml");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = Policy::load_default(Some(&fifo)).unwrap_err().to_string();
        assert!(e.contains("grants file") && e.contains("is a FIFO"), "{e}");
        // The default path, too: it exists, so it is not "missing".
        let e = Policy::resolve(None, Some(fifo)).unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
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
