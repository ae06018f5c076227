//! Finds plugins (bundled in the binary, then `--plugin-dir` directories), reads each
//! one's manifest, loads it into the runtime and maps kinds to plugins.
//!
//! A kind provided twice is an error naming both files; a directory plugin cannot
//! shadow a bundled kind (that is the same error, naming `bundled:KIND`).
//!
//! Each plugin gets its [`Access`]: bundled plugins are trusted with what they declare,
//! directory plugins get what the grants [`Policy`] allows (see [`crate::plugin::grants`]).
//! A directory plugin that cannot be used (not a component, truncated, no manifest, an
//! unsupported API, an import the host does not provide, ...) fails alone: it is logged,
//! recorded in [`Registry::unavailable`], and every other plugin still loads; a graph
//! that uses one of its kinds gets a validation error saying why the kind is missing.
//! Plugin files are read through [`crate::sys::input`]: a FIFO, a device, a socket or a
//! directory named `*.wasm` is refused without being read (nor waited on), and so is a
//! file above [`MAX_PLUGIN_BYTES`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::plugin::grants::{self, Access, Policy};
use crate::plugin::manifest::{self, ManifestError, SendType};
use crate::plugin::pool::Plugin;
use crate::plugin::runtime::{Runtime, RuntimeError};
use crate::sys::input::{self, Cap, InputError};
use crate::sys::text;

/// Largest plugin file read: far above any resource plugin (the bundled ones are well
/// under 1 MiB; a component embedding a whole language runtime is tens of MiB).
pub const MAX_PLUGIN_BYTES: u64 = 256 << 20;

/// The [`Cap`] of a plugin file.
pub const PLUGIN_CAP: Cap = Cap {
    what: "plugin",
    bytes: MAX_PLUGIN_BYTES,
    flag: None,
};

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
}

/// Why plugins could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("plugin {origin} {source}")]
    Manifest {
        origin: String,
        source: ManifestError,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot read plugin directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A plugin file that was not read: unreadable, not a regular file, or too large.
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(
        "kind `{kind}` is provided by both {first} and {second}; {}",
        duplicate_hint(first)
    )]
    DuplicateKind {
        kind: String,
        first: String,
        second: String,
    },
    #[error("plugin {origin} has an invalid params schema for kind `{kind}`: {message}")]
    Schema {
        origin: String,
        kind: String,
        message: String,
    },
    #[error(
        "plugin {origin} requests the capability `{capability}`, which this homeostat does \
         not provide (known: {})",
        grants::Capability::known()
    )]
    UnknownCapability { origin: String, capability: String },
}

fn duplicate_hint(first: &str) -> &'static str {
    if first.starts_with("bundled:") {
        "a plugin cannot replace a bundled kind: rename the plugin's kind"
    } else {
        "remove one of them"
    }
}

/// A plugin file that could not be loaded, and the kinds its manifest names (if it could
/// be read).
#[derive(Debug)]
pub struct Unavailable {
    pub origin: String,
    pub error: RegistryError,
    pub kinds: Vec<String>,
}

/// Where a plugin comes from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// Embedded in this binary: trusted with what it declares, built against this very
    /// host (so linking cannot fail), and therefore compiled, linked and its kinds' schemas
    /// compiled on first use.
    Bundled(&'static [u8]),
    /// A `--plugin-dir` file: granted what `policy` allows, and compiled and linked at
    /// start so that a broken plugin is reported at once.
    Dir { wasm: &'a [u8], policy: &'a Policy },
}

impl Source<'_> {
    fn wasm(&self) -> &[u8] {
        match self {
            Source::Bundled(wasm) => wasm,
            Source::Dir { wasm, .. } => wasm,
        }
    }
}

/// One kind: its plugin and compiled params schema.
pub struct KindEntry {
    pub plugin: Arc<Plugin>,
    /// Compiled when the plugin is loaded from a directory (so a bad schema is reported
    /// then), on first use for a bundled kind (whose schema a test compiles).
    schema: std::sync::OnceLock<jsonschema::Validator>,
    /// The schema as JSON (for `plugin inspect` and did-you-mean suggestions).
    pub schema_json: serde_json::Value,
    /// The values check-apply publishes for send/recv, with their types.
    pub sends: Arc<BTreeMap<String, SendType>>,
}

impl KindEntry {
    /// The compiled params schema.
    pub fn schema(&self) -> &jsonschema::Validator {
        self.schema.get_or_init(|| {
            jsonschema::validator_for(&self.schema_json)
                .expect("bundled schemas compile (tests::bundled_schemas_compile)")
        })
    }

    /// The JSON types the schema allows for the top-level param `name`: `None` when the
    /// param does not exist, an empty list when any type is allowed.
    pub fn param_types(&self, name: &str) -> Option<Vec<String>> {
        let prop = self.schema_json.get("properties")?.get(name)?;
        Some(match prop.get("type") {
            Some(serde_json::Value::String(t)) => vec![t.clone()],
            Some(serde_json::Value::Array(ts)) => ts
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        })
    }
}

/// All loaded plugins, by kind.
pub struct Registry {
    kinds: BTreeMap<String, KindEntry>,
    plugins: Vec<Arc<Plugin>>,
    unavailable: Vec<Unavailable>,
}

impl Registry {
    /// Load the bundled plugins, then every `*.wasm` in `dirs` (in order), granting the
    /// latter what `policy` allows. A directory plugin that cannot be loaded is logged and
    /// skipped; a kind provided twice and an unreadable directory are errors.
    pub fn load(
        runtime: &Runtime,
        dirs: &[PathBuf],
        policy: &Policy,
    ) -> Result<Registry, RegistryError> {
        let started = std::time::Instant::now();
        let mut reg = Registry {
            kinds: BTreeMap::new(),
            plugins: Vec::new(),
            unavailable: Vec::new(),
        };
        for (name, wasm, sha256) in bundled::BUNDLED {
            reg.add(
                runtime,
                Source::Bundled(wasm),
                sha256,
                format!("bundled:{name}"),
            )?;
        }
        for dir in dirs {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|source| RegistryError::Dir {
                    path: dir.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
                .collect();
            files.sort();
            for path in files {
                let origin = path.display().to_string();
                let wasm = match input::read_file(&path, &PLUGIN_CAP) {
                    Ok(w) => w,
                    Err(e) => {
                        reg.skip(origin, RegistryError::Input(e), Vec::new());
                        continue;
                    }
                };
                let sha256 = crate::plugin::inspect::sha256_hex(&wasm);
                let source = Source::Dir {
                    wasm: &wasm,
                    policy,
                };
                match reg.add(runtime, source, &sha256, origin.clone()) {
                    Ok(()) => {}
                    Err(e @ RegistryError::DuplicateKind { .. }) => return Err(e),
                    Err(error) => {
                        let kinds = manifest::read(&wasm)
                            .map(|m| m.kinds.into_keys().collect())
                            .unwrap_or_default();
                        reg.skip(origin, error, kinds);
                    }
                }
            }
        }
        tracing::debug!(
            "loaded {} plugins in {:.1?}",
            reg.plugins.len(),
            started.elapsed()
        );
        Ok(reg)
    }

    /// Record a directory plugin that cannot be used; everything else goes on.
    fn skip(&mut self, origin: String, error: RegistryError, kinds: Vec<String>) {
        tracing::error!("skipping plugin: {error}");
        self.unavailable.push(Unavailable {
            origin,
            error,
            kinds,
        });
    }

    /// Load one plugin (`sha256`: hex SHA-256 of its wasm).
    fn add(
        &mut self,
        runtime: &Runtime,
        source: Source<'_>,
        sha256: &str,
        origin: String,
    ) -> Result<(), RegistryError> {
        let wasm = source.wasm();
        let manifest = manifest::read(wasm).map_err(|source| RegistryError::Manifest {
            origin: origin.clone(),
            source,
        })?;
        if let Some(capability) = grants::unknown_capabilities(&manifest).into_iter().next() {
            return Err(RegistryError::UnknownCapability { origin, capability });
        }
        let access = match source {
            Source::Bundled(_) => Access::trusted(&manifest, sha256, &origin),
            Source::Dir { policy, .. } => policy.access(&manifest, sha256, &origin),
        };
        if !access.missing().is_empty() {
            let missing: Vec<&str> = access.missing().iter().map(|c| c.name()).collect();
            tracing::warn!(
                "plugin `{} {}` ({origin}) is not granted [{}], which it declares: its calls \
                 to them will fail. To grant them, put this line under `[plugins]` in {}: {}",
                manifest.name,
                manifest.version,
                missing.join(", "),
                access.grants_file_hint(),
                access.full_grant_line()
            );
        }
        for kind in manifest.kinds.keys() {
            if let Some(existing) = self.kinds.get(kind) {
                return Err(RegistryError::DuplicateKind {
                    kind: kind.clone(),
                    first: existing.plugin.origin.clone(),
                    second: origin,
                });
            }
        }
        let mut schemas = Vec::new();
        for (kind, k) in &manifest.kinds {
            let bad = |message: String| RegistryError::Schema {
                origin: origin.clone(),
                kind: kind.clone(),
                message,
            };
            let json: serde_json::Value =
                serde_json::from_str(&k.schema).map_err(|e| bad(e.to_string()))?;
            let schema = std::sync::OnceLock::new();
            if let Source::Dir { .. } = source {
                let validator = jsonschema::validator_for(&json).map_err(|e| bad(e.to_string()))?;
                let _ = schema.set(validator);
            }
            schemas.push((kind.clone(), schema, json, Arc::new(k.sends.clone())));
        }
        let plugin = Arc::new(match source {
            Source::Bundled(wasm) => runtime.load_lazily(manifest, wasm, sha256, origin, access),
            Source::Dir { wasm, .. } => runtime.load(manifest, wasm, sha256, origin, access)?,
        });
        for (kind, schema, schema_json, sends) in schemas {
            self.kinds.insert(
                kind,
                KindEntry {
                    plugin: plugin.clone(),
                    schema,
                    schema_json,
                    sends,
                },
            );
        }
        self.plugins.push(plugin);
        Ok(())
    }

    /// The plugin and schema for `kind`.
    pub fn kind(&self, kind: &str) -> Option<&KindEntry> {
        self.kinds.get(kind)
    }

    /// Every loaded plugin.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// Names of the known kinds, sorted.
    pub fn kind_names(&self) -> Vec<String> {
        self.kinds.keys().cloned().collect()
    }

    /// The directory plugins that could not be loaded, and why.
    pub fn unavailable(&self) -> &[Unavailable] {
        &self.unavailable
    }

    /// Why `kind` is missing, when a plugin naming it could not be loaded: on one line,
    /// escaped (it may quote the plugin's manifest, and it is printed in graph errors).
    pub fn why_unavailable(&self, kind: &str) -> Option<String> {
        self.unavailable
            .iter()
            .find(|u| u.kinds.iter().any(|k| k == kind))
            .map(|u| text::escape(&u.error.to_string()).into_owned())
    }
}

/// The system plugin directory, searched for every user.
pub const SYSTEM_PLUGIN_DIR: &str = "/usr/local/lib/homeostat/plugins";

/// The default plugin directories, in load order (each used when it exists): for root,
/// only [`SYSTEM_PLUGIN_DIR`]; for other users, `$XDG_DATA_HOME/homeostat/plugins` (else
/// `~/.local/share/homeostat/plugins`), then [`SYSTEM_PLUGIN_DIR`].
pub fn default_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if !rustix::process::geteuid().is_root()
        && let Some(data) = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
    {
        dirs.push(data.join("homeostat/plugins"));
    }
    dirs.push(PathBuf::from(SYSTEM_PLUGIN_DIR));
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// The wasm of the bundled plugin `name` (`file`, `exec`, ...), if there is one.
pub fn bundled(name: &str) -> Option<&'static [u8]> {
    bundled::BUNDLED
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, wasm, _)| *wasm)
}

/// Names of the bundled plugins.
pub fn bundled_names() -> Vec<&'static str> {
    bundled::BUNDLED.iter().map(|(n, _, _)| *n).collect()
}

/// The bundled plugin that provides `kind`, if one does (read from the manifests, which
/// costs no compilation).
pub fn bundled_kind_owner(kind: &str) -> Option<&'static str> {
    bundled::BUNDLED.iter().find_map(|(name, wasm, _)| {
        let manifest = manifest::read(wasm).ok()?;
        manifest.kinds.contains_key(kind).then_some(*name)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_schemas_compile() {
        for (name, wasm, _) in super::bundled::BUNDLED {
            let manifest = super::manifest::read(wasm).expect("bundled manifests parse");
            for (kind, k) in &manifest.kinds {
                let json: serde_json::Value = serde_json::from_str(&k.schema)
                    .unwrap_or_else(|e| panic!("{name}: kind {kind}: schema is not JSON: {e}"));
                if let Err(e) = jsonschema::validator_for(&json) {
                    panic!("{name}: kind {kind}: schema does not compile: {e}");
                }
            }
        }
    }

    #[test]
    fn bundled_hashes_match_the_embedded_bytes() {
        for (name, wasm, sha256) in super::bundled::BUNDLED {
            assert_eq!(
                crate::plugin::inspect::sha256_hex(wasm),
                *sha256,
                "bundled plugin {name}: the hash computed at build time is stale"
            );
        }
    }
}
