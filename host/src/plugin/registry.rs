//! Finds plugins (bundled in the binary, then `--plugin-dir` directories), reads each
//! one's manifest, loads it into the runtime and maps kinds to plugins.
//!
//! A kind provided twice is an error naming both files; a directory plugin cannot
//! shadow a bundled kind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::plugin::manifest::{self, ManifestError, SendType};
use crate::plugin::runtime::{Plugin, Runtime, RuntimeError};

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
    #[error("cannot read plugin {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kind `{kind}` is provided by both {first} and {second}; remove one of them")]
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
}

/// One kind: its plugin and compiled params schema.
pub struct KindEntry {
    pub plugin: Arc<Plugin>,
    pub schema: jsonschema::Validator,
    /// The schema as JSON (for `plugin inspect` and did-you-mean suggestions).
    pub schema_json: serde_json::Value,
    /// The values check-apply publishes for send/recv, with their types.
    pub sends: Arc<BTreeMap<String, SendType>>,
}

impl KindEntry {
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
}

impl Registry {
    /// Load the bundled plugins, then every `*.wasm` in `dirs` (in order).
    pub fn load(runtime: &Runtime, dirs: &[PathBuf]) -> Result<Registry, RegistryError> {
        let mut reg = Registry {
            kinds: BTreeMap::new(),
            plugins: Vec::new(),
        };
        for (name, wasm) in bundled::BUNDLED {
            reg.add(runtime, wasm, format!("bundled:{name}"))?;
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
                let wasm = std::fs::read(&path).map_err(|source| RegistryError::Read {
                    path: path.clone(),
                    source,
                })?;
                reg.add(runtime, &wasm, path.display().to_string())?;
            }
        }
        Ok(reg)
    }

    fn add(&mut self, runtime: &Runtime, wasm: &[u8], origin: String) -> Result<(), RegistryError> {
        let manifest = manifest::read(wasm).map_err(|source| RegistryError::Manifest {
            origin: origin.clone(),
            source,
        })?;
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
            let validator = jsonschema::validator_for(&json).map_err(|e| bad(e.to_string()))?;
            schemas.push((kind.clone(), validator, json, Arc::new(k.sends.clone())));
        }
        let plugin = Arc::new(runtime.load(manifest, wasm, origin)?);
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
}

/// The default per-user and system plugin directories (used when they exist).
pub fn default_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(data) = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
    {
        dirs.push(data.join("homeostat/plugins"));
    }
    dirs.push(PathBuf::from("/usr/local/lib/homeostat/plugins"));
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}
