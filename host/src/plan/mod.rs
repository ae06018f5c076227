//! From a graph file to a runnable [`Plan`]: read, parse and check the YAML, validate
//! every resource in its plugin (which declares its footprint, watches and
//! dependencies), reject conflicting footprints, add autoedges, and refuse cycles.
//!
//! `run` and `validate` share this pipeline, so `validate` checks exactly what `run`
//! would refuse. Every error names the file, line and column of what is wrong. `run`
//! also keeps each plan it made in the [`cache`], and starts from it while the graph, its
//! plugins and the binary are unchanged.
//!
//! The graph file is read through [`crate::sys::input`]: a FIFO, a device or a directory
//! is refused before anything is read, and so is a file above its cap
//! ([`DEFAULT_MAX_GRAPH_MIB`], `--max-graph-size`). What plugins declared (paths, units)
//! is escaped ([`crate::sys::text`]) where it appears in an error.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::{Plan, PlannedEdge, PlannedResource};
use crate::graph::{self, GraphDoc, GraphError, GraphErrors, KindCatalog, ResId};
use crate::plugin::pool::Plugin;
use crate::plugin::registry::{KindEntry, Registry};
use crate::plugin::types::{CallError, ResourceInfo, ResourceRef};
use crate::sys::footprint::UnitRef;
use crate::sys::input::{self, Cap, InputError};
use crate::sys::systemd::bus_name;
use crate::sys::text;

pub mod cache;
pub mod collect;
pub mod pins;
pub mod source;
pub mod target;

/// Largest graph file accepted by default, in MiB (`--max-graph-size`): a YAML bomb
/// guard before parsing even starts, and far above any real graph (10 000 resources are
/// about 1 MiB).
pub const DEFAULT_MAX_GRAPH_MIB: u64 = 64;

/// The graph file's [`Cap`] when it may be `max_bytes` long.
pub fn graph_cap(max_bytes: u64) -> Cap {
    Cap {
        what: "graph file",
        bytes: max_bytes,
        flag: Some("--max-graph-size"),
    }
}

/// Why a graph cannot run. Displays one error per paragraph.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Not read: missing, not a regular file, or larger than its cap.
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("cannot read graph {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Graph(#[from] GraphErrors),
    /// A third-party plugin is not the build the graph's lock file pins (see [`pins`]).
    #[error("{0}")]
    Pins(String),
}

impl PlanError {
    /// The graph file does not exist (e.g. between an editor's delete and create).
    pub fn is_not_found(&self) -> bool {
        matches!(self, PlanError::Input(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound))
    }
}

impl KindCatalog for Registry {
    fn schema(&self, kind: &str) -> Option<&jsonschema::Validator> {
        self.kind(kind).map(|k| k.schema())
    }
    fn kinds(&self) -> Vec<String> {
        self.kind_names()
    }
    fn param_names(&self, kind: &str) -> Vec<String> {
        self.kind(kind)
            .map(|k| graph::schema_param_names(&k.schema_json))
            .unwrap_or_default()
    }
    fn unavailable(&self, kind: &str) -> Option<String> {
        self.why_unavailable(kind)
    }
}

/// Load, check and plan the graph in `path` (at most [`DEFAULT_MAX_GRAPH_MIB`]).
pub async fn load(path: &Path, registry: &Registry) -> Result<Plan, PlanError> {
    load_capped(path, DEFAULT_MAX_GRAPH_MIB << 20, registry).await
}

/// [`load`] a graph file of at most `max_bytes`.
pub async fn load_capped(
    path: &Path,
    max_bytes: u64,
    registry: &Registry,
) -> Result<Plan, PlanError> {
    let (_, doc) = parse(path, max_bytes)?;
    check_and_plan(doc, registry).await
}

/// Read and parse the graph in `path`; returns its text with the document.
pub fn parse(path: &Path, max_bytes: u64) -> Result<(String, GraphDoc), PlanError> {
    let text = read(path, max_bytes)?;
    let doc = parse_text(path, &text)?;
    Ok((text, doc))
}

/// Read the graph file in `path`: a regular file of at most `max_bytes` (anything else,
/// a FIFO or a device included, is refused before it is read; see [`crate::sys::input`]).
pub fn read(path: &Path, max_bytes: u64) -> Result<String, PlanError> {
    let bytes = input::read_file(path, &graph_cap(max_bytes))?;
    // Not UTF-8: the error names the offset, line and column of the first bad byte.
    Ok(graph::decode_owned(path, bytes).map_err(GraphErrors::from)?)
}

/// Parse the text of the graph file `path`. This needs no plugin, so `run` does it while
/// the plugins load.
pub fn parse_text(path: &Path, text: &str) -> Result<GraphDoc, PlanError> {
    let started = std::time::Instant::now();
    let doc = graph::parse(path, text)?;
    tracing::debug!("parsed {} in {:.1?}", path.display(), started.elapsed());
    Ok(doc)
}

/// Check a parsed graph's kinds, edges and params against the plugins, then [`plan`] it.
pub async fn check_and_plan(mut doc: GraphDoc, registry: &Registry) -> Result<Plan, PlanError> {
    let started = std::time::Instant::now();
    pins::check(&doc, registry).map_err(PlanError::Pins)?;
    for p in graph::drop_unset_zero_values(&mut doc, registry) {
        tracing::debug!("{p}: mgmt's zero value for an unset param, taken as unset");
    }
    graph::check_params(&doc, registry)?;
    warn_autogroup_without_effect(&doc, registry);
    let params: Vec<Arc<str>> = doc.resources.iter().map(params_json).collect();
    let checked = started.elapsed();
    let file = doc.file.clone();
    let plan = plan(doc, params, registry).await?;
    tracing::debug!(
        "planned {} in {:.1?} (params {:.1?}, validate and plan {:.1?})",
        file.display(),
        started.elapsed(),
        checked,
        started.elapsed() - checked
    );
    Ok(plan)
}

/// mgmt's `autogroup` written on a resource whose kind does not group: accepted (mgmt
/// graphs say it everywhere), with a located warning that it does nothing.
fn warn_autogroup_without_effect(doc: &GraphDoc, registry: &Registry) {
    for r in &doc.resources {
        if let Some((line, col)) = r.autogroup_at
            && !registry
                .kind(&r.kind)
                .is_some_and(|k| k.plugin.groups(&r.kind))
        {
            tracing::warn!(
                "{}:{line}:{col}: metaparam `autogroup` of {} has no effect: the kind `{}` \
                 does not group resources (`pkg` does: its packages go in one transaction)",
                r.loc.file.display(),
                r.id(),
                r.kind
            );
        }
    }
}

/// Reverses the automatic edges `(manager, dependent)` whose manager *removes* what it
/// manages (its kind's manifest says when: `file` with `state: absent`): what depends on
/// the thing removed must be done with it first (a service stopped before its unit file
/// goes). Only managers are looked at, so a graph of 10 000 files under one directory
/// parses one resource's params here, not 10 000.
fn reverse_removals(
    auto: &mut [(usize, usize)],
    doc: &GraphDoc,
    params: &[Arc<str>],
    registry: &Registry,
) {
    let mut removes: HashMap<usize, bool> = HashMap::new();
    for edge in auto.iter_mut() {
        let manager = edge.0;
        let remover = *removes.entry(manager).or_insert_with(|| {
            registry
                .kind(&doc.resources[manager].kind)
                .and_then(|k| k.plugin.manifest.kinds.get(&doc.resources[manager].kind))
                .and_then(|k| k.removes_when.as_ref())
                .is_some_and(|r| r.removes(&params[manager]))
        });
        if remover {
            *edge = (edge.1, edge.0);
        }
    }
}

/// Validate every resource of a parsed, param-checked graph in its plugin and build
/// the plan; `params` holds each resource's params as JSON text.
///
/// Resources are handled by their index in `doc.resources` throughout: the footprints,
/// autoedges, graph and topological order never copy a declaration or hash a `kind[name]`,
/// which at 10 000 resources took longer than the plugin's validate calls.
pub async fn plan(
    mut doc: GraphDoc,
    params: Vec<Arc<str>>,
    registry: &Registry,
) -> Result<Plan, PlanError> {
    GraphErrors::check([check_sends(&doc, registry), check_semaphores(&doc)].concat())?;
    let started = std::time::Instant::now();
    let infos = validate_all(&doc, &params, registry).await?;
    tracing::debug!(
        "validated {} resources in {:.1?}",
        infos.len(),
        started.elapsed()
    );
    let started = std::time::Instant::now();
    check_footprints(&doc, &infos, &params, registry)?;
    GraphErrors::check(received_footprints(&doc, &params, &infos, registry).await)?;

    let paths: Vec<(Vec<Cow<'_, str>>, &[String])> = infos
        .iter()
        .map(|info| {
            let managed = info
                .footprint
                .paths
                .iter()
                // An editing resource manages part of its file, not the file: what
                // depends on the path depends on the file's manager (or its directory's).
                .filter(|g| g.write && !g.shared)
                .map(|g| g.path.to_string_lossy())
                .collect();
            (managed, &info.depends_on_paths[..])
        })
        .collect();
    let mut auto = graph::path_autoedges(&paths);
    drop(paths);
    reverse_removals(&mut auto, &doc, &params, registry);
    let g = graph::build(&doc, &auto)?;

    let order: Vec<usize> = g.order().collect();
    let mut position = vec![usize::MAX; doc.resources.len()];
    for (p, &i) in order.iter().enumerate() {
        position[i] = p;
    }
    let mut edges = Vec::new();
    for &i in &order {
        for (succ, edge) in g.successors_at(i) {
            edges.push(PlannedEdge {
                from: position[i],
                to: position[succ],
                notify: edge.notify,
                send: edge.send.clone(),
                auto: edge.auto,
            });
        }
    }
    drop(g);

    // Nothing can fail from here on: move what the plan keeps out of the declarations
    // instead of cloning it.
    let mut infos: Vec<Option<ResourceInfo>> = infos.into_iter().map(Some).collect();
    let mut kinds = KindCache::default();
    let mut resources = Vec::with_capacity(order.len());
    for &i in &order {
        let decl = &mut doc.resources[i];
        let entry = kinds.get(registry, &decl.kind);
        resources.push(PlannedResource {
            id: ResId {
                kind: std::mem::take(&mut decl.kind),
                name: std::mem::take(&mut decl.name),
            },
            params: params[i].clone(),
            meta: std::mem::take(&mut decl.meta),
            plugin: entry.plugin.clone(),
            info: infos[i].take().expect("each resource is planned once"),
            sends: entry.sends.clone(),
        });
    }
    let name = std::mem::take(&mut doc.name);
    // What is left (params, locations) takes milliseconds to free at 10 000 resources and
    // nobody needs it: free it off the start-up path.
    crate::engine::drop_in_background(doc);
    tracing::debug!(
        "planned {} resources and {} edges after validate in {:.1?}",
        resources.len(),
        edges.len(),
        started.elapsed()
    );
    Ok(Plan {
        name,
        resources,
        edges,
    })
}

/// The registry entry of the last kind looked up: resources of one kind come in runs, so
/// this saves a map lookup per resource.
#[derive(Default)]
struct KindCache<'r> {
    last: Option<(String, &'r KindEntry)>,
}

impl<'r> KindCache<'r> {
    /// The entry of a kind known to be in `registry`.
    fn get(&mut self, registry: &'r Registry, kind: &str) -> &'r KindEntry {
        self.lookup(registry, kind).expect("kinds were checked")
    }

    /// The entry of `kind`, if `registry` has it.
    fn lookup(&mut self, registry: &'r Registry, kind: &str) -> Option<&'r KindEntry> {
        match &self.last {
            Some((k, entry)) if k == kind => Some(entry),
            _ => {
                let entry = registry.kind(kind)?;
                self.last = Some((kind.to_owned(), entry));
                Some(entry)
            }
        }
    }
}

fn params_json(decl: &graph::ResourceDecl) -> Arc<str> {
    serde_json::to_string(&decl.params)
        .expect("a JSON map always serialises")
        .into()
}

/// Run every resource's `validate` in its plugin: one batched request per plugin, all
/// plugins in parallel (a task and a queue hop per resource cost more than the call).
async fn validate_all(
    doc: &GraphDoc,
    params: &[Arc<str>],
    registry: &Registry,
) -> Result<Vec<ResourceInfo>, PlanError> {
    /// A plugin, the indices of its resources and their validate requests.
    type Group = (Arc<Plugin>, Vec<usize>, Vec<(ResourceRef, Arc<str>)>);
    let mut by_plugin: Vec<Group> = Vec::new();
    for (i, decl) in doc.resources.iter().enumerate() {
        let plugin = &registry
            .kind(&decl.kind)
            .expect("kinds were checked")
            .plugin;
        let slot = match by_plugin
            .iter()
            .position(|(p, _, _)| Arc::ptr_eq(p, plugin))
        {
            Some(slot) => slot,
            None => {
                by_plugin.push((plugin.clone(), Vec::new(), Vec::new()));
                by_plugin.len() - 1
            }
        };
        let reference = ResourceRef {
            kind: decl.kind.clone(),
            name: decl.name.clone(),
        };
        by_plugin[slot].1.push(i);
        by_plugin[slot].2.push((reference, params[i].clone()));
    }
    let mut set = tokio::task::JoinSet::new();
    for (plugin, indices, requests) in by_plugin {
        set.spawn(async move {
            let results = plugin.validate_many(requests).await;
            indices.into_iter().zip(results).collect::<Vec<_>>()
        });
    }
    let mut infos: Vec<Option<ResourceInfo>> = vec![None; doc.resources.len()];
    let mut errors = Vec::new();
    let mut results = Vec::with_capacity(doc.resources.len());
    while let Some(joined) = set.join_next().await {
        results.extend(joined.expect("validate tasks do not panic"));
    }
    results.sort_unstable_by_key(|(i, _)| *i);
    for (i, result) in results {
        let decl = &doc.resources[i];
        match result {
            Ok(info) => infos[i] = Some(info),
            Err(CallError::Plugin(e)) => errors.push(GraphError::Param {
                loc: decl.value_loc_of(e.field.as_deref()),
                message: format!("{}: {}", decl.id(), e.message),
            }),
            Err(e) => errors.push(GraphError::Param {
                loc: decl.loc_of(None),
                message: format!("{}: {e}", decl.id()),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(GraphErrors::new(errors).into());
    }
    Ok(infos
        .into_iter()
        .map(|i| i.expect("every resource was validated"))
        .collect())
}

/// Every `send:` of an edge names a value the sender declares, a param the receiver
/// has, and types that fit.
fn check_sends(doc: &GraphDoc, registry: &Registry) -> Vec<GraphError> {
    let mut errors = Vec::new();
    if doc.edges.iter().all(|e| e.send.is_empty()) {
        return errors;
    }
    let by_id: HashMap<(&str, &str), &graph::ResourceDecl> = doc
        .resources
        .iter()
        .map(|r| ((r.kind.as_str(), r.name.as_str()), r))
        .collect();
    let lookup = |id: &ResId| by_id.get(&(id.kind.as_str(), id.name.as_str())).copied();
    for (index, edge) in doc.edges.iter().enumerate() {
        if edge.send.is_empty() {
            continue;
        }
        let (Some(from), Some(to)) = (lookup(&edge.from), lookup(&edge.to)) else {
            continue; // a dangling edge, reported by check_params
        };
        let (Some(sender), Some(receiver)) = (registry.kind(&from.kind), registry.kind(&to.kind))
        else {
            continue; // an unknown kind, reported by check_params
        };
        let label = edge.label(index);
        let mut error = |message: String| {
            errors.push(GraphError::Invalid {
                loc: edge.loc.clone(),
                message: format!("{label}: {message}"),
            })
        };
        for (key, param) in &edge.send {
            let Some(ty) = sender.sends.get(key) else {
                let known: Vec<&str> = sender.sends.keys().map(String::as_str).collect();
                let hint = graph::suggest::did_you_mean(key, known.iter().copied());
                error(if known.is_empty() {
                    format!("{} sends no values, so it cannot send `{key}`", edge.from)
                } else {
                    format!(
                        "{} sends no value `{key}`{hint} (it sends: {})",
                        edge.from,
                        known.join(", ")
                    )
                });
                continue;
            };
            let Some(types) = receiver.param_types(param) else {
                let names = graph::schema_param_names(&receiver.schema_json);
                let hint = graph::suggest::did_you_mean(param, names.iter().map(String::as_str));
                error(format!(
                    "{} has no param `{param}` to receive `{key}` into{hint}",
                    edge.to
                ));
                continue;
            };
            if !types.is_empty() && !types.iter().any(|t| ty.fits(t)) {
                error(format!(
                    "type mismatch: {} sends `{key}` as {}, but `{param}` of {} takes {}",
                    edge.from,
                    ty.name(),
                    edge.to,
                    types.join(" or ")
                ));
            }
        }
    }
    errors
}

/// A resource that would receive, through send/recv, a value that makes it write what its
/// sender writes: the sender's own param of the sent key's name is what it sends in the
/// common case (a `file` sends its `path`), so the receiver is validated with that value
/// and its write grants compared with the sender's. At run time the `fs` service catches
/// the same (one file, two names); this says it before anything runs.
async fn received_footprints(
    doc: &GraphDoc,
    params: &[Arc<str>],
    infos: &[ResourceInfo],
    registry: &Registry,
) -> Vec<GraphError> {
    let mut errors = Vec::new();
    if doc.edges.iter().all(|e| e.send.is_empty()) {
        return errors;
    }
    let index: HashMap<(&str, &str), usize> = doc
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.kind.as_str(), r.name.as_str()), i))
        .collect();
    let at = |id: &ResId| index.get(&(id.kind.as_str(), id.name.as_str())).copied();
    for (n, edge) in doc.edges.iter().enumerate() {
        let (Some(from), Some(to)) = (at(&edge.from), at(&edge.to)) else {
            continue;
        };
        let Ok(serde_json::Value::Object(sender)) = serde_json::from_str(&params[from]) else {
            continue;
        };
        let Ok(serde_json::Value::Object(mut receiver)) = serde_json::from_str(&params[to]) else {
            continue;
        };
        let mut predicted = false;
        for (key, param) in &edge.send {
            if let Some(value) = sender.get(key) {
                receiver.insert(param.clone(), value.clone());
                predicted = true;
            }
        }
        if !predicted {
            continue;
        }
        let decl = &doc.resources[to];
        let Some(entry) = registry.kind(&decl.kind) else {
            continue;
        };
        let reference = ResourceRef {
            kind: decl.kind.clone(),
            name: decl.name.clone(),
        };
        let text: Arc<str> = serde_json::Value::Object(receiver).to_string().into();
        // Invalid with the received values: the run reports it when they arrive.
        let Ok(info) = entry.plugin.validate(&reference, text).await else {
            continue;
        };
        let theirs = infos[from].footprint.paths.iter().filter(|g| g.write);
        let clash = info
            .footprint
            .paths
            .iter()
            .filter(|g| g.write)
            .find_map(|mine| {
                theirs
                    .clone()
                    .find(|t| !(mine.shared && t.shared) && grants_overlap(mine, t))
                    .map(|t| (mine, t))
            });
        if let Some((mine, theirs)) = clash {
            errors.push(GraphError::Invalid {
                loc: edge.loc.clone(),
                message: format!(
                    "{}: {} would receive its `{}` from {} and then write {}, which {} writes \
                     ({}): one file, two names, and the two would rewrite it in turn forever",
                    edge.label(n),
                    edge.to,
                    edge.send.values().cloned().collect::<Vec<_>>().join("`, `"),
                    edge.from,
                    mine.path.display(),
                    edge.from,
                    theirs.path.display()
                ),
            });
        }
    }
    errors
}

/// Whether two write grants reach a common path.
fn grants_overlap(
    a: &crate::sys::footprint::PathGrant,
    b: &crate::sys::footprint::PathGrant,
) -> bool {
    let below = |p: &Path, g: &crate::sys::footprint::PathGrant| {
        p == g.path || (g.recursive && p.starts_with(&g.path))
    };
    below(&a.path, b) || below(&b.path, a)
}

/// Resources naming the same semaphore must agree on its count.
fn check_semaphores(doc: &GraphDoc) -> Vec<GraphError> {
    let mut first: HashMap<&str, (u32, &graph::ResourceDecl)> = HashMap::new();
    let mut errors = Vec::new();
    for r in &doc.resources {
        for s in &r.meta.sema {
            match first.get(s.id.as_str()) {
                Some((count, other)) if *count != s.count => errors.push(GraphError::Invalid {
                    loc: r.value_loc_of(Some("meta")),
                    message: format!(
                        "{} uses semaphore `{}` with count {}, but {} (at {}) gives it count {count}; \
                         use one count everywhere",
                        r.id(),
                        s.id,
                        s.count,
                        other.id(),
                        other.loc_of(None)
                    ),
                }),
                Some(_) => {}
                None => {
                    first.insert(&s.id, (s.count, r));
                }
            }
        }
    }
    errors
}

/// Two resources may not both write the same path, nor a path inside a tree another one
/// writes recursively, nor both manage the same systemd unit on the same manager, nor
/// bind overlapping addresses. Editing resources (shared grants) may share a file with
/// each other, and with one resource that leaves its content alone (see
/// [`shared_files`]).
fn check_footprints(
    doc: &GraphDoc,
    infos: &[ResourceInfo],
    params: &[Arc<str>],
    registry: &Registry,
) -> Result<(), PlanError> {
    let mut owner: HashMap<&Path, usize> = HashMap::new();
    let mut unit_owner: HashMap<&UnitRef, usize> = HashMap::new();
    let mut errors = Vec::new();
    for (i, info) in infos.iter().enumerate() {
        for unit in &info.footprint.units {
            match unit_owner.get(unit) {
                Some(&j) if j != i => {
                    let (a, b) = (&doc.resources[j], &doc.resources[i]);
                    errors.push(GraphError::Duplicate {
                        loc: b.loc_of(None),
                        message: format!(
                            "{} and {} (at {}) both manage unit {} on the {}; a unit can have \
                             only one resource",
                            b.id(),
                            a.id(),
                            a.loc_of(None),
                            text::escape(&unit.name),
                            bus_name(unit.session)
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    unit_owner.insert(unit, i);
                }
            }
        }
        for grant in info.footprint.paths.iter().filter(|g| g.write && !g.shared) {
            if let Some(&j) = owner.get(grant.path.as_path()) {
                if j != i {
                    let (a, b) = (&doc.resources[j], &doc.resources[i]);
                    errors.push(GraphError::Duplicate {
                        loc: b.loc_of(None),
                        message: format!(
                            "{} and {} (at {}) both manage {}; a path can have only one resource",
                            b.id(),
                            a.id(),
                            a.loc_of(None),
                            text::escape(&grant.path.to_string_lossy())
                        ),
                    });
                }
            } else {
                owner.insert(grant.path.as_path(), i);
            }
        }
    }
    errors.extend(shared_files(doc, infos, params, registry, &owner));
    errors.extend(overlapping_trees(doc, infos));
    errors.extend(overlapping_sockets(doc, infos));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(GraphErrors::new(errors).into())
    }
}

/// An editing resource (a `line`, an `ini` key) shares its file with the other editors
/// of it, and with the resource that writes it whole (`owner`) only when that one leaves
/// the content alone (a `file` with no `content`, `source` or `symlink`, not `absent`:
/// its kind's manifest says which params own the content). Otherwise each would undo the
/// other's edits forever.
fn shared_files(
    doc: &GraphDoc,
    infos: &[ResourceInfo],
    params: &[Arc<str>],
    registry: &Registry,
    owner: &HashMap<&Path, usize>,
) -> Vec<GraphError> {
    let mut leaves: HashMap<usize, bool> = HashMap::new();
    let mut reported = std::collections::HashSet::new();
    let mut errors = Vec::new();
    for (i, info) in infos.iter().enumerate() {
        for g in info.footprint.paths.iter().filter(|g| g.shared) {
            let Some(&w) = owner.get(g.path.as_path()) else {
                continue;
            };
            let whole = &doc.resources[w];
            let kind = registry
                .kind(&whole.kind)
                .and_then(|k| k.plugin.manifest.kinds.get(&whole.kind));
            let ok = *leaves.entry(w).or_insert_with(|| {
                let value = serde_json::from_str(&params[w]).unwrap_or_default();
                kind.is_some_and(|k| k.leaves_content(&value))
            });
            if ok || !reported.insert(w) {
                continue;
            }
            let b = &doc.resources[i];
            let owned = kind
                .map(|k| {
                    let set: Vec<&str> = k
                        .content_params
                        .iter()
                        .filter(|p| whole.params.get(p.as_str()).is_some_and(|v| !v.is_null()))
                        .map(String::as_str)
                        .collect();
                    if declared_absent(whole) {
                        (Some("state"), "declares `state: absent`".to_string())
                    } else if let Some(first) = set.first() {
                        (
                            Some(*first),
                            format!("sets its whole content (`{}`)", set.join("`, `")),
                        )
                    } else {
                        (None, "writes it whole".to_string())
                    }
                })
                .unwrap_or((None, "writes it whole".to_string()));
            errors.push(GraphError::Duplicate {
                loc: b.loc_of(None),
                message: format!(
                    "{} edits part of {}, and {} (at {}) {}: the two would undo each other \
                     forever. Put the whole content in {}, or drop its content so that it \
                     only manages the file's attributes",
                    b.id(),
                    text::escape(&g.path.to_string_lossy()),
                    whole.id(),
                    whole.loc_of(owned.0),
                    owned.1,
                    whole.id(),
                ),
            });
        }
    }
    errors
}

/// Two resources binding the same protocol and port on the same IP, or one of them on
/// every address (`0.0.0.0`): only one of them could ever serve.
fn overlapping_sockets(doc: &GraphDoc, infos: &[ResourceInfo]) -> Vec<GraphError> {
    use crate::sys::footprint::{Protocol, SocketGrant};
    let mut by_port: HashMap<(Protocol, u16), Vec<(SocketGrant, usize)>> = HashMap::new();
    let mut errors = Vec::new();
    for (i, info) in infos.iter().enumerate() {
        for g in &info.footprint.sockets {
            let seen = by_port.entry((g.protocol, g.address.port())).or_default();
            if let Some((other, j)) = seen.iter().find(|(o, j)| *j != i && o.overlaps(g)) {
                let (a, b) = (&doc.resources[*j], &doc.resources[i]);
                errors.push(GraphError::Duplicate {
                    loc: b.loc_of(None),
                    message: format!(
                        "{} binds {g} and {} (at {}) binds {other}; only one of them could \
                         listen there",
                        b.id(),
                        a.id(),
                        a.loc_of(None),
                    ),
                });
            } else {
                seen.push((*g, i));
            }
        }
    }
    errors
}

/// Whether `decl` says `state: absent`. Only the wording of an error depends on it: what
/// is refused follows from the footprints alone (a `file` declared absent claims its whole
/// tree, as a recursive one does).
fn declared_absent(decl: &graph::ResourceDecl) -> bool {
    decl.params.get("state").and_then(serde_json::Value::as_str) == Some("absent")
}

/// A resource writing a path inside a tree that another resource writes recursively
/// (`file` with `recurse`/`force`, or `state: absent`: nothing may exist below it). A directory and a file inside it do not conflict: the
/// directory's grant is that entry only. Ancestors are looked up in a map of the recursive
/// grants, so this costs O(paths × depth), not O(paths²).
fn overlapping_trees(doc: &GraphDoc, infos: &[ResourceInfo]) -> Vec<GraphError> {
    let mut trees: HashMap<&Path, usize> = HashMap::new();
    for (i, info) in infos.iter().enumerate() {
        for g in info
            .footprint
            .paths
            .iter()
            .filter(|g| g.write && g.recursive)
        {
            trees.entry(g.path.as_path()).or_insert(i);
        }
    }
    if trees.is_empty() {
        return Vec::new();
    }
    let mut reported = std::collections::HashSet::new();
    let mut errors = Vec::new();
    for (i, info) in infos.iter().enumerate() {
        for g in info.footprint.paths.iter().filter(|g| g.write) {
            for tree in g.path.ancestors().skip(1) {
                let Some(&j) = trees.get(tree) else { continue };
                if j == i || !reported.insert((i, j)) {
                    continue;
                }
                let (a, b) = (&doc.resources[j], &doc.resources[i]);
                let message = if declared_absent(a) {
                    format!(
                        "{} manages {}, which is inside {}, which {} (at {}) declares \
                         `state: absent`: nothing may exist there, so the two would undo each \
                         other forever; drop one of them",
                        b.id(),
                        g.path.display(),
                        tree.display(),
                        a.id(),
                        a.loc_of(Some("state")),
                    )
                } else {
                    format!(
                        "{} manages {}, which is inside {}, managed recursively by {} (at {}); \
                         a path can have only one resource: drop one of them, or make {} \
                         non-recursive",
                        b.id(),
                        text::escape(&g.path.to_string_lossy()),
                        text::escape(&tree.to_string_lossy()),
                        a.id(),
                        a.loc_of(None),
                        a.id()
                    )
                };
                errors.push(GraphError::Duplicate {
                    loc: b.loc_of(None),
                    message,
                });
            }
        }
    }
    errors
}
