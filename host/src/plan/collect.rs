//! Exported and collected resources, on the graph side.
//!
//! - [`exports_of`]: what a graph exports: each `@@NAME` resource to every host (`*`), and
//!   each resource with `meta: {export: [host, ...]}` to those hosts (it also runs here).
//!   Only params travel: the collector runs an export with its own default metaparams.
//! - [`Collector`]: turns the exports this host may collect into ordinary resource
//!   declarations, per the graph's `collect:` entries. For `file`, the entry's `pattern` is
//!   the directory the collected file is placed in (mgmt's meaning: `path` keeps its base
//!   name, `/srv/a/motd` collected with `pattern: /etc/` becomes `/etc/motd`); for every
//!   other kind it is a prefix the collected names must start with. Empty collects all,
//!   unchanged.
//! - Two hosts exporting the same `kind[name]` to this one: an error naming both, and
//!   neither is collected. A collected resource that clashes with one of the graph's own,
//!   or whose params this host's plugin rejects, is reported and left out; the rest of the
//!   graph runs ([`plan_with`]).
//! - `purge: true`: when an export vanishes, its resource stays in the graph with only
//!   the params its kind requires and `state: absent` (for kinds whose `state` param takes
//!   `absent`), so what it made is removed, as Puppet users ask of PuppetDB. It stays
//!   until the collector stops or the export comes back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::PlanError;
use crate::engine::Plan;
use crate::graph::{GraphDoc, GraphErrors, Location, Meta, ResId, ResourceDecl};
use crate::plugin::registry::Registry;
use crate::world::exports::{EVERYWHERE, Export};

/// The file name of a collected resource's [`Location`]: `world:<its key>`.
pub const WORLD_FILE: &str = "world:";

/// What `doc` exports, from host `me`.
pub fn exports_of(doc: &GraphDoc, me: &str) -> Vec<Export> {
    let mut out = Vec::new();
    for r in &doc.resources {
        let mut targets: BTreeSet<&str> = r.meta.export.iter().map(String::as_str).collect();
        if r.exported {
            targets.insert(EVERYWHERE);
        }
        for to in targets {
            out.push(Export {
                to: to.to_owned(),
                from: me.to_owned(),
                kind: r.kind.clone(),
                name: r.name.clone(),
                params: r.params.clone(),
            });
        }
    }
    out
}

/// Whether a collect entry takes `e`, and the params it runs with. `collect_dir` is the
/// kind's path param that the pattern places in its directory (its manifest says which),
/// if it has one; otherwise the pattern is a name prefix.
fn apply_pattern(
    collect_dir: Option<&str>,
    pattern: &str,
    e: &Export,
) -> Option<Map<String, Value>> {
    if pattern.is_empty() {
        return Some(e.params.clone());
    }
    if let Some(param) = collect_dir {
        let mut params = e.params.clone();
        let path = e.params.get(param)?.as_str()?;
        let dir = path.ends_with('/');
        let base = Path::new(path.trim_end_matches('/')).file_name()?;
        let mut placed = Path::new(pattern).join(base).to_string_lossy().into_owned();
        if dir {
            placed.push('/');
        }
        params.insert(param.into(), Value::String(placed));
        return Some(params);
    }
    e.name.starts_with(pattern).then(|| e.params.clone())
}

/// The params that remove what a resource of `kind` made, if it has a `state: absent`.
fn purged_params(
    registry: &Registry,
    kind: &str,
    params: &Map<String, Value>,
) -> Option<Map<String, Value>> {
    let schema = &registry.kind(kind)?.schema_json;
    let takes_absent = schema["properties"]["state"]["enum"]
        .as_array()
        .is_some_and(|v| v.iter().any(|s| s == "absent"));
    if !takes_absent {
        return None;
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out: Map<String, Value> = params
        .iter()
        .filter(|(k, _)| required.contains(&k.as_str()) && *k != "state")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert("state".into(), Value::String("absent".into()));
    Some(out)
}

/// A resource declaration for a collected export (or a purge).
fn decl(kind: &str, name: &str, params: Map<String, Value>, origin: &str) -> ResourceDecl {
    ResourceDecl {
        kind: kind.to_owned(),
        name: name.to_owned(),
        exported: false,
        params,
        meta: Meta::default(),
        loc: Location {
            file: Arc::from(Path::new(&format!("{WORLD_FILE}{origin}"))),
            line: 1,
            column: 1,
        },
        fields: Vec::new(),
        autogroup_at: None,
    }
}

/// What one host collects, remembered between rounds for `purge`.
#[derive(Default)]
pub struct Collector {
    /// What was collected last round, by `kind[name]`: its params and the entry's purge.
    last: BTreeMap<ResId, (Map<String, Value>, bool)>,
    /// Purged resources still in the graph.
    purged: BTreeMap<ResId, Map<String, Value>>,
}

impl Collector {
    /// The declarations `doc` collects from `exports` (all for this host), and the errors
    /// of exports that cannot be collected (duplicates).
    pub fn collect(
        &mut self,
        doc: &GraphDoc,
        exports: &[Export],
        registry: &Registry,
    ) -> (Vec<ResourceDecl>, Vec<String>) {
        let mut errors = Vec::new();
        // kind[name] → (params, exporting host, key, purge)
        let mut taken: BTreeMap<ResId, (Map<String, Value>, String, String, bool)> =
            BTreeMap::new();
        let mut clashes: BTreeMap<ResId, BTreeSet<String>> = BTreeMap::new();
        for c in &doc.collect {
            let collect_dir = registry
                .kind(&c.kind)
                .and_then(|k| k.plugin.collect_dir(&c.kind));
            let from_allowed = |e: &&Export| match &c.hosts {
                Some(hosts) => hosts.contains(&e.from),
                None => true,
            };
            for e in exports
                .iter()
                .filter(|e| e.kind == c.kind)
                .filter(from_allowed)
            {
                let Some(params) = apply_pattern(collect_dir, &c.pattern, e) else {
                    continue;
                };
                let id = ResId::new(e.kind.clone(), e.name.clone());
                match taken.get(&id) {
                    // Exported by one host both to this one and to `*`, or matched by two
                    // entries: the same resource.
                    Some((_, from, _, _)) if *from == e.from => {}
                    Some((_, from, _, _)) => {
                        let set = clashes.entry(id).or_default();
                        set.insert(from.clone());
                        set.insert(e.from.clone());
                    }
                    None => {
                        taken.insert(id, (params, e.from.clone(), e.key(), c.purge));
                    }
                }
            }
        }
        for (id, hosts) in &clashes {
            taken.remove(id);
            errors.push(format!(
                "{id} is exported to this host by {}: collecting neither (export it from one \
                 host, or give each its own name)",
                hosts
                    .iter()
                    .map(|h| format!("`{h}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
        }
        let mut decls = Vec::new();
        let mut now: BTreeMap<ResId, (Map<String, Value>, bool)> = BTreeMap::new();
        for (id, (params, _, key, purge)) in taken {
            self.purged.remove(&id);
            decls.push(decl(&id.kind, &id.name, params.clone(), &key));
            now.insert(id, (params, purge));
        }
        // Exports that vanished, from entries that purge.
        for (id, (params, purge)) in std::mem::take(&mut self.last) {
            if purge
                && !now.contains_key(&id)
                && !clashes.contains_key(&id)
                && let Some(p) = purged_params(registry, &id.kind, &params)
            {
                self.purged.insert(id, p);
            }
        }
        for (id, params) in &self.purged {
            decls.push(decl(&id.kind, &id.name, params.clone(), "purged"));
        }
        self.last = now;
        (decls, errors)
    }
}

/// Plan `doc` with the `collected` declarations added. A collected one that cannot run
/// (it clashes with the graph's own, or its plugin rejects its params) is left out and its
/// errors are returned beside the plan; errors in the graph file itself fail as always.
pub async fn plan_with(
    doc: GraphDoc,
    mut collected: Vec<ResourceDecl>,
    registry: &Registry,
) -> Result<(Plan, Vec<String>), PlanError> {
    let mut dropped = Vec::new();
    // The graph's own resources, as this host runs them: an `@@` one is only sent away,
    // so collecting it back (a host collects its own exports) is no clash.
    let own: BTreeSet<ResId> = doc
        .resources
        .iter()
        .filter(|r| !r.exported)
        .map(ResourceDecl::id)
        .collect();
    collected.retain(|d| {
        let clash = own.contains(&d.id());
        if clash {
            dropped.push(format!(
                "{}: {} is also declared by this graph: the graph's own is kept, the \
                 collected one left out",
                d.loc.file.display(),
                d.id()
            ));
        }
        !clash
    });
    loop {
        let mut merged = doc.clone();
        merged.resources.extend(collected.iter().cloned());
        match super::check_and_plan(merged, registry).await {
            Ok(plan) => return Ok((plan, dropped)),
            Err(PlanError::Graph(GraphErrors(errors))) => {
                let is_collected =
                    |loc: &Location| loc.file.to_string_lossy().starts_with(WORLD_FILE);
                if errors.iter().any(|e| !is_collected(e.location())) || collected.is_empty() {
                    // The file's own errors (with those of collected resources).
                    return Err(PlanError::Graph(GraphErrors::new(errors)));
                }
                let bad: BTreeSet<Arc<Path>> =
                    errors.iter().map(|e| e.location().file.clone()).collect();
                let before = collected.len();
                collected.retain(|d| !bad.contains(&d.loc.file));
                if collected.len() == before {
                    // Nothing left to leave out: report rather than plan the same again.
                    return Err(PlanError::Graph(GraphErrors::new(errors)));
                }
                dropped.extend(
                    errors
                        .iter()
                        .map(|e| format!("{e} (collected resource left out)")),
                );
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(from: &str, name: &str, path: &str) -> Export {
        let mut params = Map::new();
        params.insert("path".into(), Value::String(path.into()));
        params.insert("content".into(), Value::String("hi\n".into()));
        Export {
            to: "*".into(),
            from: from.into(),
            kind: "file".into(),
            name: name.into(),
            params,
        }
    }

    #[test]
    fn a_file_pattern_is_the_directory_it_is_placed_in() {
        let e = export("h1", "motd", "/srv/a/motd");
        let p = apply_pattern(Some("path"), "/etc/", &e).unwrap();
        assert_eq!(p["path"], "/etc/motd");
        let p = apply_pattern(Some("path"), "", &e).unwrap();
        assert_eq!(p["path"], "/srv/a/motd");
        let d = export("h1", "d", "/srv/a/d/");
        assert_eq!(
            apply_pattern(Some("path"), "/x", &d).unwrap()["path"],
            "/x/d/"
        );
        // Other kinds: a name prefix.
        let mut s = e.clone();
        s.kind = "svc".into();
        s.name = "web-nginx".into();
        assert!(apply_pattern(None, "web-", &s).is_some());
        assert!(apply_pattern(None, "db-", &s).is_none());
    }

    #[test]
    fn exports_go_to_every_host_or_the_ones_named() {
        let doc = crate::graph::parse(
            Path::new("g.yaml"),
            "graph: g\nresources:\n  file:\n  - name: \"@@a\"\n    path: /tmp/a\n  - name: b\n    path: /tmp/b\n    meta:\n      export: [h2, h3]\n  - name: c\n    path: /tmp/c\n",
        )
        .unwrap();
        let out: Vec<(String, String)> = exports_of(&doc, "h1")
            .into_iter()
            .map(|e| (e.to, e.name))
            .collect();
        assert_eq!(
            out,
            [
                ("*".to_owned(), "a".to_owned()),
                ("h2".to_owned(), "b".to_owned()),
                ("h3".to_owned(), "b".to_owned())
            ]
        );
    }
}
