//! The plan cache: `run` keeps the plan of each graph file it planned, and the next start
//! on the same text skips parsing, param checks, the plugins' `validate` calls and
//! planning, which are most of an idempotent pass's start-up (about 150 ms of 350 at
//! 10 000 resources; see docs/performance.md).
//!
//! CFEngine does the same (`cf_promises_validated`). It is sound because a plan is a pure
//! function of what the key covers:
//!
//! - the graph's text (its SHA-256): the YAML alone decides resources, params, metaparams
//!   and edges; nothing in it depends on the environment or the working directory
//!   (relative paths are refused);
//! - every kind's plugin, by the SHA-256 of its wasm and where it was loaded from: the
//!   kind → plugin mapping, the params schemas, and `validate`, which the WIT contract
//!   forbids to touch the system (it has no footprint yet), so its answer depends only on
//!   the resource's id and params;
//! - this very binary (device, inode, size and modification time of `/proc/self/exe`):
//!   any rebuild or upgrade of the host changes the key, so a cached plan is never read by
//!   code that plans differently or lays plans out differently. (Not the change time:
//!   cargo re-linking an unchanged binary, or any new hard link, changes it.)
//!
//! Only graphs that planned without error are cached, so a hit has nothing to report.
//! `validate` and `graph` never use the cache; neither does a live graph swap. One file
//! per graph path (`CACHE/plans/<SHA-256 of the absolute path>.plan`), replaced whenever
//! that graph is planned anew; a file that cannot be read back is a miss, never an error.
//! Writing one also removes the plans not written for [`MAX_AGE`] (graphs that moved or
//! went away), so the directory does not grow without bound.
//! `--no-cache` turns it off along with the compiled-plugin cache. A plan holds every
//! resource's params, which may be secrets, so `plans/` is 0700 and its files 0600.
//!
//! File format: one header line `homeostat-plan-v1 TEXT-SHA256 KEY\n`, then the plan in
//! postcard (serde's compact binary format, already used by wasmtime for its compiled
//! artifacts): reading 10 000 resources back took 40 ms as JSON, most of it scanning
//! field names and the paths each resource repeats. The header's text digest lets the parse thread decide, before the plugins have
//! loaded, whether to parse the YAML or read the cached plan; the full key is checked once
//! they have.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::{Plan, PlannedEdge, PlannedResource};
use crate::graph::{Meta, ResId};
use crate::plugin::inspect::sha256_hex;
use crate::plugin::registry::Registry;
use crate::plugin::types::ResourceInfo;
use crate::sys::fs::cache_file::{CacheFile, write_cache_file};

/// First word of a cache file; bump it when the layout changes in a way the binary's
/// identity would not catch (it always does today: the layout is compiled in).
const MAGIC: &str = "homeostat-plan-v1";

/// Plans not rewritten for this long are removed when another one is written.
pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// Where the plan of one graph file is cached.
#[derive(Debug, Clone)]
pub struct PlanCache {
    file: PathBuf,
}

/// A hex SHA-256.
pub type Digest256 = String;

/// A cached plan read for a given text, not yet checked against the full key.
pub struct Cached {
    key: Digest256,
    plan: CachedPlan,
}

#[derive(Serialize, Deserialize)]
struct CachedPlan {
    name: String,
    resources: Vec<CachedResource>,
    edges: Vec<PlannedEdge>,
}

#[derive(Serialize, Deserialize)]
struct CachedResource {
    id: ResId,
    params: String,
    /// `None` when every metaparam has its default (most resources).
    meta: Option<Meta>,
    info: ResourceInfo,
}

impl PlanCache {
    /// The cache of `graph` under `cache_dir`; `None` when the graph's absolute path
    /// cannot be known.
    pub fn new(cache_dir: &Path, graph: &Path) -> Option<PlanCache> {
        let absolute = std::path::absolute(graph).ok()?;
        let name = sha256_hex(absolute.as_os_str().as_encoded_bytes());
        Some(PlanCache {
            file: cache_dir.join("plans").join(format!("{name}.plan")),
        })
    }

    /// The cached plan, if the file holds one planned from a text with digest
    /// `text_sha` (the rest of the key is checked by [`Cached::resolve`]).
    pub fn read(&self, text_sha: &str) -> Option<Cached> {
        let started = std::time::Instant::now();
        let bytes = std::fs::read(&self.file).ok()?;
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let header = std::str::from_utf8(&bytes[..newline]).ok()?;
        let mut words = header.split(' ');
        if words.next() != Some(MAGIC) || words.next() != Some(text_sha) {
            tracing::debug!("plan cache: {} is for another text", self.file.display());
            return None;
        }
        let key = words.next()?.to_owned();
        match postcard::from_bytes(&bytes[newline + 1..]) {
            Ok(plan) => {
                tracing::debug!(
                    "plan cache: read {} in {:.1?}",
                    self.file.display(),
                    started.elapsed()
                );
                Some(Cached { key, plan })
            }
            Err(e) => {
                tracing::debug!("plan cache: ignoring {}: {e}", self.file.display());
                None
            }
        }
    }

    /// Write `plan` as the cached plan for `key` (made from `text_sha`), on a thread of
    /// its own: a copy of the plan is taken now, the serialising and writing happen while
    /// the graph runs. Join the handle before exiting so the file is complete (a torn
    /// write cannot happen: the file is renamed into place).
    pub fn write(
        &self,
        text_sha: &str,
        key: &str,
        plan: &Plan,
    ) -> Option<std::thread::JoinHandle<()>> {
        let snapshot = CachedPlan {
            name: plan.name.clone(),
            resources: plan
                .resources
                .iter()
                .map(|r| CachedResource {
                    id: r.id.clone(),
                    params: r.params.to_string(),
                    meta: (r.meta != Meta::default()).then(|| r.meta.clone()),
                    info: r.info.clone(),
                })
                .collect(),
            edges: plan.edges.clone(),
        };
        let header = format!("{MAGIC} {text_sha} {key}\n");
        let file = self.file.clone();
        std::thread::Builder::new()
            .name("homeostat-plan-cache".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let dir = file.parent().expect("the file is in plans/");
                let written = postcard::to_extend(&snapshot, header.into_bytes())
                    .map_err(std::io::Error::other)
                    .and_then(|bytes| {
                        write_cache_file(dir, &file, &bytes, CacheFile::Private)
                            .map(|()| bytes.len())
                    });
                match written {
                    Ok(len) => tracing::debug!(
                        "plan cache: wrote {} ({} KiB) in {:.1?}",
                        file.display(),
                        len >> 10,
                        started.elapsed()
                    ),
                    Err(e) => tracing::debug!("plan cache: cannot write {}: {e}", file.display()),
                }
                prune(dir, MAX_AGE);
            })
            .ok()
    }
}

/// Remove the `*.plan` files of `dir` last written more than `max_age` ago.
fn prune(dir: &Path, max_age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for entry in entries.flatten() {
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > max_age));
        if old && path.extension().is_some_and(|x| x == "plan") {
            let _ = std::fs::remove_file(&path);
        }
    }
}

impl Cached {
    /// The plan, if it was cached under `key` and every kind it uses is still provided
    /// (the key covers that; checked again rather than trusted).
    pub fn resolve(self, key: &str, registry: &Registry) -> Option<Plan> {
        if self.key != key {
            tracing::debug!("plan cache: planned with other plugins or another homeostat");
            return None;
        }
        let n = self.plan.resources.len();
        if self
            .plan
            .edges
            .iter()
            .any(|e| e.from >= n || e.to >= n || e.from == e.to)
        {
            return None;
        }
        let mut resources = Vec::with_capacity(n);
        let mut kinds = super::KindCache::default();
        for r in self.plan.resources {
            let entry = kinds.lookup(registry, &r.id.kind)?;
            resources.push(PlannedResource {
                id: r.id,
                params: Arc::from(r.params),
                meta: r.meta.unwrap_or_default(),
                plugin: entry.plugin.clone(),
                info: r.info,
                sends: entry.sends.clone(),
            });
        }
        Some(Plan {
            name: self.plan.name,
            resources,
            edges: self.plan.edges,
        })
    }
}

/// The hex SHA-256 of a graph's text.
pub fn text_digest(text: &str) -> Digest256 {
    sha256_hex(text.as_bytes())
}

/// The full key of a plan made from the text with digest `text_sha` by these plugins and
/// this binary; `None` (do not cache) when the binary cannot be identified.
pub fn key(text_sha: &str, registry: &Registry) -> Option<Digest256> {
    let exe = std::fs::metadata("/proc/self/exe").ok()?;
    let mut h = Sha256::new();
    let mut line = |s: &str| {
        h.update(s.as_bytes());
        h.update(b"\n");
    };
    line(MAGIC);
    line(&format!(
        "exe {} {} {} {}.{}",
        exe.dev(),
        exe.ino(),
        exe.size(),
        exe.mtime(),
        exe.mtime_nsec(),
    ));
    line(text_sha);
    for kind in registry.kind_names() {
        let entry = registry.kind(&kind).expect("a listed kind");
        line(&format!(
            "kind {kind} {} {}",
            entry.plugin.sha256, entry.plugin.origin
        ));
    }
    Some(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_per_graph_path() {
        let a = PlanCache::new(Path::new("/c"), Path::new("/g/a.yaml")).unwrap();
        let b = PlanCache::new(Path::new("/c"), Path::new("/g/b.yaml")).unwrap();
        assert_ne!(a.file, b.file);
        assert!(a.file.starts_with("/c/plans"));
        assert_eq!(
            a.file,
            PlanCache::new(Path::new("/c"), Path::new("/g/a.yaml"))
                .unwrap()
                .file
        );
    }

    #[test]
    fn a_file_for_another_text_or_garbage_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PlanCache::new(dir.path(), Path::new("/g/a.yaml")).unwrap();
        assert!(cache.read("abc").is_none(), "no file");
        std::fs::create_dir_all(cache.file.parent().unwrap()).unwrap();
        std::fs::write(&cache.file, format!("{MAGIC} other key\n{{}}")).unwrap();
        assert!(cache.read("abc").is_none(), "another text");
        std::fs::write(&cache.file, format!("{MAGIC} abc key\n\x05garbage")).unwrap();
        assert!(cache.read("abc").is_none(), "garbage");
        let mut bytes = format!("{MAGIC} abc key\n").into_bytes();
        let empty = CachedPlan {
            name: "g".into(),
            resources: Vec::new(),
            edges: Vec::new(),
        };
        bytes.extend(postcard::to_stdvec(&empty).unwrap());
        std::fs::write(&cache.file, bytes).unwrap();
        let cached = cache.read("abc").expect("a plan for this text");
        assert_eq!(cached.key, "key");
    }

    #[test]
    fn writing_a_plan_removes_only_old_plans() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let old = std::time::SystemTime::now() - MAX_AGE - std::time::Duration::from_secs(60);
        for name in ["old.plan", "old.other", "new.plan"] {
            let f = std::fs::File::create(d.join(name)).unwrap();
            if name.starts_with("old") {
                f.set_modified(old).unwrap();
            }
        }
        prune(d, MAX_AGE);
        assert!(!d.join("old.plan").exists());
        assert!(d.join("old.other").exists(), "not a plan: left alone");
        assert!(d.join("new.plan").exists());
    }
}
