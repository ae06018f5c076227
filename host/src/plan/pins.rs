//! Pinned plugins: a lock file beside a graph (`site.yaml` → `site.yaml.lock`), written by
//! `homeostat plugin lock site.yaml`, names the third-party plugin of each kind the
//! graph uses and its SHA-256 (Terraform's dependency lock file is the model). While it
//! exists, a graph whose plugin of a kind is another build, or whose kind is not pinned,
//! is refused before anything runs, with both digests. Bundled kinds are not pinned: the
//! binary pins them.
//!
//! ```toml
//! # homeostat plugin lock: ...
//! [kinds]
//! line = { plugin = "line", sha256 = "3b0c…" }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::graph::GraphDoc;
use crate::plugin::registry::Registry;
use crate::sys::text;

/// Largest lock file read (a line per kind).
const MAX_LOCK_BYTES: u64 = 1 << 20;

/// What a lock file holds.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Lock {
    #[serde(default)]
    kinds: BTreeMap<String, Pin>,
}

/// One kind's plugin, pinned.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Pin {
    plugin: String,
    sha256: String,
}

/// The lock file of the graph at `graph`.
pub fn lock_path(graph: &Path) -> PathBuf {
    let mut p = graph.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// The kinds `doc` uses (its resources' and its collects') whose plugin is not bundled,
/// each with its plugin's name, origin and digest.
fn third_party(doc: &GraphDoc, registry: &Registry) -> BTreeMap<String, (String, String, String)> {
    let used: BTreeSet<&str> = doc
        .resources
        .iter()
        .map(|r| r.kind.as_str())
        .chain(doc.collect.iter().map(|c| c.kind.as_str()))
        .collect();
    used.into_iter()
        .filter_map(|kind| {
            let p = &registry.kind(kind)?.plugin;
            (!p.origin.starts_with("bundled")).then(|| {
                (
                    kind.to_string(),
                    (p.manifest.name.clone(), p.origin.clone(), p.sha256.clone()),
                )
            })
        })
        .collect()
}

/// Checks `doc`'s third-party plugins against its lock file, when there is one: every
/// problem, one per line; `Ok` without a lock file.
pub fn check(doc: &GraphDoc, registry: &Registry) -> Result<(), String> {
    let path = lock_path(&doc.file);
    let lock = match read(&path)? {
        Some(lock) => lock,
        None => return Ok(()),
    };
    let again = format!(
        "after checking the new build, pin it with `homeostat plugin lock {}`",
        doc.file.display()
    );
    let mut problems = Vec::new();
    for (kind, (name, origin, sha256)) in third_party(doc, registry) {
        let (kind, name, origin) = (
            text::escape(&kind),
            text::escape(&name),
            text::escape(&origin),
        );
        match lock.kinds.get(kind.as_ref()) {
            None => problems.push(format!(
                "{}: kind `{kind}` (plugin `{name}`, {origin}) is not pinned; {again}",
                path.display()
            )),
            Some(pin) if pin.sha256 != sha256 => problems.push(format!(
                "{}: plugin `{name}` ({origin}) for kind `{kind}` has SHA-256 {sha256}, but \
                 the lock pins {} (plugin `{}`): refused before anything runs; {again}",
                path.display(),
                text::escape(&pin.sha256),
                text::escape(&pin.plugin)
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The lock file at `path`, `None` when there is none.
fn read(path: &Path) -> Result<Option<Lock>, String> {
    let cap = crate::sys::input::Cap {
        what: "plugin lock file",
        bytes: MAX_LOCK_BYTES,
        flag: None,
    };
    let bytes = match crate::sys::input::read_file(path, &cap) {
        Ok(b) => b,
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{}: the lock file is not UTF-8", path.display()))?;
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{}: {}", path.display(), e.message()))
}

/// Writes the lock file of `doc`: its third-party kinds with their plugins' digests, as
/// loaded now. Returns the file and how many kinds it pins.
pub fn write(doc: &GraphDoc, registry: &Registry) -> std::io::Result<(PathBuf, usize)> {
    let lock = Lock {
        kinds: third_party(doc, registry)
            .into_iter()
            .map(|(kind, (plugin, _, sha256))| (kind, Pin { plugin, sha256 }))
            .collect(),
    };
    let path = lock_path(&doc.file);
    let body = toml::to_string(&lock).map_err(std::io::Error::other)?;
    let text = format!(
        "# Written by `homeostat plugin lock {}`: the third-party plugin of each kind the \
         graph uses,\n# pinned by SHA-256. A plugin whose file differs is refused before \
         anything runs.\n{body}",
        doc.file.display()
    );
    crate::sys::fs::cache_file::write_whole(&path, ".homeostat-lock.", text.as_bytes(), || {})?;
    Ok((path, lock.kinds.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_sits_beside_the_graph() {
        assert_eq!(
            lock_path(Path::new("/etc/hs/site.yaml")),
            Path::new("/etc/hs/site.yaml.lock")
        );
    }

    #[test]
    fn a_lock_file_is_strict() {
        let lock: Lock =
            toml::from_str("[kinds]\nline = { plugin = \"line\", sha256 = \"ab\" }\n").unwrap();
        assert_eq!(lock.kinds["line"].sha256, "ab");
        assert!(toml::from_str::<Lock>("[kinds]\nline = { sha = \"ab\" }\n").is_err());
        assert!(toml::from_str::<Lock>("[plugins]\n").is_err());
    }
}
