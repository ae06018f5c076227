//! The node tree of a graph file → [`GraphDoc`], checking mgmt's yamlgraph shape strictly.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Number, Value};

use super::decl::{
    CollectDecl, EdgeDecl, FieldLoc, GraphDoc, Meta, ResId, ResourceDecl, Semaphore,
};
use super::error::{GraphError, GraphErrors, Location};
use super::suggest::did_you_mean;
use super::yaml::{self, Entry, Node, Pos, Val};

const TOP_KEYS: &[&str] = &[
    "graph",
    "comment",
    "resources",
    "edges",
    "collect",
    "remote",
    "remotes",
];
const EDGE_KEYS: &[&str] = &["name", "from", "to", "notify", "send"];
const ENDPOINT_KEYS: &[&str] = &["kind", "name"];
const COLLECT_KEYS: &[&str] = &["kind", "pattern", "purge", "hosts"];
/// The metaparams a resource's `meta:` may set.
pub(super) const META_KEYS: &[&str] = &[
    "noop",
    "retry",
    "delay",
    "poll",
    "limit",
    "burst",
    "sema",
    "timeout",
    "cpu",
    "memory",
    "rewatch",
    "autoedge",
    "hidden",
    "export",
    "trust_parents",
    "tags",
    "sensitive",
];
/// mgmt metaparams homeostat deliberately does not have.
const MGMT_ONLY_META: &[&str] = &["retryreset", "reset", "realize", "dollar", "reverse"];

/// Lists at least this long are converted on two threads (a thread costs far less than
/// converting this many entries).
const PARALLEL_MIN: usize = 1024;

/// Displays by calling a closure, so that messages are only formatted when an error is
/// reported (formatting them eagerly was a visible cost on 10 000-resource graphs).
struct Lazy<F>(F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

/// Parses a graph file. `path` is only used in locations (as given, e.g. `graph.yaml`).
///
/// Reports every problem it can find in one go: malformed YAML or an exceeded limit (size over
/// 16 MiB, nesting over 64, aliases expanding past 100 000 nodes) stops at the first, shape
/// errors are collected.
pub fn parse(path: &Path, text: &str) -> Result<GraphDoc, GraphErrors> {
    let file: Arc<Path> = Arc::from(path);
    let mut cx = Cx {
        file: file.clone(),
        errors: Vec::new(),
    };
    let loaded = match yaml::load(text) {
        Ok(l) => l,
        Err(e) => {
            return Err(GraphErrors::from(GraphError::Yaml {
                loc: cx.loc(e.pos),
                message: e.message,
            }));
        }
    };
    for e in loaded.errors {
        let loc = cx.loc(e.pos);
        cx.errors.push(GraphError::Duplicate {
            loc,
            message: e.message,
        });
    }
    let mut doc = GraphDoc {
        name: String::new(),
        file,
        resources: Vec::new(),
        edges: Vec::new(),
        collect: Vec::new(),
        kind_locs: BTreeMap::new(),
        remote: None,
        remotes: Vec::new(),
    };
    cx.top(loaded.root, &mut doc);
    GraphErrors::check(cx.errors).map(|()| doc)
}

/// Parsing context: the file and the errors found so far.
struct Cx {
    file: Arc<Path>,
    errors: Vec<GraphError>,
}

impl Cx {
    fn loc(&self, pos: Pos) -> Location {
        Location {
            file: self.file.clone(),
            line: pos.line,
            column: pos.col,
        }
    }

    fn invalid(&mut self, pos: Pos, message: impl Into<String>) {
        let loc = self.loc(pos);
        self.errors.push(GraphError::Invalid {
            loc,
            message: message.into(),
        });
    }

    fn unknown_key(&mut self, e: &Entry<'_>, what: impl fmt::Display, known: &[&str]) {
        let hint = did_you_mean(&e.key, known.iter().copied());
        self.invalid(
            e.key_pos,
            format!(
                "unknown key `{}` in {what}{hint} (expected one of: {})",
                e.key,
                known.join(", ")
            ),
        );
    }

    fn string(&mut self, node: Node<'_>, what: impl fmt::Display) -> Option<String> {
        match node.val {
            Val::Str(s) => Some(s.into_owned()),
            other => {
                let quote = if matches!(other, Val::Bool(_) | Val::Int(_) | Val::UInt(_)) {
                    " (quote it to make it a string)"
                } else {
                    ""
                };
                self.invalid(
                    node.pos,
                    format!("{what} must be a string, found {}{quote}", other.describe()),
                );
                None
            }
        }
    }

    fn nonempty(&mut self, node: Node<'_>, what: impl fmt::Display) -> Option<String> {
        let pos = node.pos;
        let s = self.string(node, &what)?;
        if s.is_empty() {
            self.invalid(pos, format!("{what} must not be empty"));
            return None;
        }
        Some(s)
    }

    /// A name (of a resource, an edge or the graph): a non-empty string of the characters
    /// [`NAME_PUNCTUATION`] lists besides ASCII letters and digits. A name reaches logs,
    /// summaries and terminals, so a control character in it is refused here rather than
    /// escaped everywhere it is shown.
    fn name(&mut self, node: Node<'_>, what: impl fmt::Display) -> Option<String> {
        let pos = node.pos;
        let s = self.nonempty(node, &what)?;
        if let Some(message) = name_error(&what, &s) {
            self.invalid(pos, message);
            return None;
        }
        Some(s)
    }

    /// A mapping's entries; `null` (an empty value) counts as an empty mapping.
    fn mapping<'a>(
        &mut self,
        node: Node<'a>,
        what: impl fmt::Display,
    ) -> Option<(Pos, Vec<Entry<'a>>)> {
        match node.val {
            Val::Map(m) => Some((node.pos, m)),
            Val::Null => Some((node.pos, Vec::new())),
            other => {
                self.invalid(
                    node.pos,
                    format!("{what} must be a mapping, found {}", other.describe()),
                );
                None
            }
        }
    }

    /// A sequence's items; `null` counts as an empty list.
    fn sequence<'a>(&mut self, node: Node<'a>, what: impl fmt::Display) -> Option<Vec<Node<'a>>> {
        match node.val {
            Val::Seq(items) => Some(items),
            Val::Null => Some(Vec::new()),
            other => {
                self.invalid(
                    node.pos,
                    format!("{what} must be a list, found {}", other.describe()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: Node<'_>, what: impl fmt::Display) -> Option<bool> {
        match node.val {
            Val::Bool(b) => Some(b),
            other => {
                self.invalid(
                    node.pos,
                    format!("{what} must be true or false, found {}", other.describe()),
                );
                None
            }
        }
    }

    /// A whole number from 0 to `max`.
    fn unsigned(&mut self, node: Node<'_>, what: impl fmt::Display, max: u64) -> Option<u64> {
        self.whole(node, what, 0, max)
    }

    /// A whole number from 1 to `max` (a limit: 0 would stop every call).
    fn positive(&mut self, node: Node<'_>, what: impl fmt::Display, max: u64) -> Option<u64> {
        self.whole(node, what, 1, max)
    }

    /// A whole number from `min` to `max`. Anything else (a fraction, a negative or huge
    /// number, NaN, text) is reported at the value, never wrapped or truncated.
    fn whole(
        &mut self,
        node: Node<'_>,
        what: impl fmt::Display,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let message = match node.val {
            Val::UInt(n) if (min..=max).contains(&n) => return Some(n),
            Val::UInt(n) if n < min => format!("{what} must be at least {min}, found {n}"),
            Val::UInt(n) => format!("{what} must be at most {max}, found {n}"),
            Val::Int(n) => format!("{what} must not be negative, found {n}"),
            ref other => format!(
                "{what} must be a whole number from {min} to {max}, found {}",
                describe_number(other)
            ),
        };
        self.invalid(node.pos, message);
        None
    }

    fn top(&mut self, root: Node<'_>, doc: &mut GraphDoc) {
        let root_pos = root.pos;
        let entries = match root.val {
            Val::Map(m) => m,
            Val::Null => {
                self.invalid(
                    root_pos,
                    "the graph file is empty; it needs at least `graph: NAME` and `resources:`",
                );
                return;
            }
            other => {
                self.invalid(
                    root_pos,
                    format!(
                        "a graph file must be a mapping with `graph:` and `resources:`, found {}",
                        other.describe()
                    ),
                );
                return;
            }
        };
        let mut have_graph = false;
        for e in entries {
            match e.key.as_ref() {
                "graph" => {
                    have_graph = true;
                    if let Some(name) = self.name(e.value, "`graph` (the graph's name)") {
                        doc.name = name;
                    }
                }
                "comment" => {
                    if !matches!(e.value.val, Val::Null) {
                        self.string(e.value, "`comment`");
                    }
                }
                "resources" => self.resources(e.value, doc),
                "edges" => {
                    for (i, item) in self
                        .sequence(e.value, "`edges`")
                        .unwrap_or_default()
                        .into_iter()
                        .enumerate()
                    {
                        if let Some(edge) = self.edge(item, i) {
                            doc.edges.push(edge);
                        }
                    }
                }
                "collect" => {
                    for (i, item) in self
                        .sequence(e.value, "`collect`")
                        .unwrap_or_default()
                        .into_iter()
                        .enumerate()
                    {
                        if let Some(c) = self.collect(item, i) {
                            doc.collect.push(c);
                        }
                    }
                }
                "remote" => {
                    let loc = self.loc(e.value.pos);
                    if let Some(url) = self.string(e.value, "`remote` (an ssh:// URL)") {
                        doc.remote = Some((url, loc));
                    }
                }
                "remotes" => {
                    for item in self
                        .sequence(e.value, "`remotes` (graph files)")
                        .unwrap_or_default()
                    {
                        let loc = self.loc(item.pos);
                        if let Some(path) =
                            self.string(item, "an entry of `remotes` (a graph file)")
                        {
                            doc.remotes.push((path, loc));
                        }
                    }
                }
                _ => self.unknown_key(&e, "the graph file", TOP_KEYS),
            }
        }
        self.refuse_duplicate_edge_names(&doc.edges);
        if !have_graph {
            self.invalid(
                root_pos,
                "missing `graph:` — every graph file needs a name, e.g. `graph: web`",
            );
        }
    }

    fn resources(&mut self, node: Node<'_>, doc: &mut GraphDoc) {
        let Some((_, kinds)) = self.mapping(node, "`resources` (kind → list of resources)")
        else {
            return;
        };
        for k in kinds {
            let kind = k.key.into_owned();
            doc.kind_locs.insert(kind.clone(), self.loc(k.key_pos));
            let what = format!("`resources.{kind}`");
            let Some(mut items) = self.sequence(k.value, &what) else {
                continue;
            };
            doc.resources.reserve(items.len());
            if items.len() < PARALLEL_MIN {
                self.convert(&kind, items, &mut doc.resources);
                continue;
            }
            // Each entry converts on its own, so a long list converts in two halves on two
            // threads; the halves stay in file order and errors are sorted by position later.
            let rest = items.split_off(items.len() / 2);
            let file = self.file.clone();
            let second = std::thread::scope(|s| {
                let worker = s.spawn(|| {
                    let mut cx = Cx {
                        file,
                        errors: Vec::new(),
                    };
                    let mut out = Vec::with_capacity(rest.len());
                    cx.convert(&kind, rest, &mut out);
                    (out, cx.errors)
                });
                self.convert(&kind, items, &mut doc.resources);
                worker.join()
            });
            match second {
                Ok((resources, errors)) => {
                    doc.resources.extend(resources);
                    self.errors.extend(errors);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        self.refuse_duplicates(&mut doc.resources);
    }

    /// Converts the entries of one kind's list, appending the valid ones to `out`.
    fn convert(&mut self, kind: &str, items: Vec<Node<'_>>, out: &mut Vec<ResourceDecl>) {
        for item in items {
            if let Some(decl) = self.resource(kind, item) {
                out.push(decl);
            }
        }
    }

    /// Reports every edge whose `name:` an earlier edge already has, naming both: a name
    /// is how a message, `homeostat graph` and a reader tell edges apart.
    fn refuse_duplicate_edge_names(&mut self, edges: &[EdgeDecl]) {
        let mut first: HashMap<&str, &EdgeDecl> = HashMap::new();
        for edge in edges {
            let Some(name) = &edge.name else { continue };
            match first.entry(name) {
                MapEntry::Vacant(v) => {
                    v.insert(edge);
                }
                MapEntry::Occupied(f) => {
                    let other = f.get();
                    self.errors.push(GraphError::Duplicate {
                        loc: edge.loc.clone(),
                        message: format!(
                            "duplicate edge name `{name}`: this edge ({} -> {}) and the edge \
                             at {} ({} -> {}) are both named `{name}`; give each edge its own \
                             name",
                            edge.from, edge.to, other.loc, other.from, other.to
                        ),
                    });
                }
            }
        }
    }

    /// Reports every resource whose `kind[name]` an earlier one already has, and drops it.
    fn refuse_duplicates(&mut self, resources: &mut Vec<ResourceDecl>) {
        let mut first: HashMap<(&str, &str), usize> = HashMap::with_capacity(resources.len());
        let mut duplicate = Vec::new();
        for (i, decl) in resources.iter().enumerate() {
            match first.entry((&decl.kind, &decl.name)) {
                MapEntry::Vacant(v) => {
                    v.insert(i);
                }
                MapEntry::Occupied(f) => {
                    let message = format!(
                        "duplicate resource {}: a {} named `{}` is already declared at {}",
                        decl.id(),
                        decl.kind,
                        decl.name,
                        resources[*f.get()].loc_of(Some("name"))
                    );
                    let loc = decl.loc_of(Some("name"));
                    self.errors.push(GraphError::Duplicate { loc, message });
                    duplicate.push(i);
                }
            }
        }
        drop(first);
        if !duplicate.is_empty() {
            let mut i = 0;
            let mut next = duplicate.into_iter().peekable();
            resources.retain(|_| {
                let drop = next.next_if_eq(&i).is_some();
                i += 1;
                !drop
            });
        }
    }

    fn resource(&mut self, kind: &str, item: Node<'_>) -> Option<ResourceDecl> {
        let pos = item.pos;
        let entries = match item.val {
            Val::Map(m) => m,
            other => {
                self.invalid(
                    pos,
                    format!(
                        "each `{kind}` resource must be a mapping with `name:` and its params, \
                         found {}",
                        other.describe()
                    ),
                );
                return None;
            }
        };
        let mut name: Option<(String, bool)> = None;
        let mut name_seen = false;
        let mut meta_node = None;
        let mut params = Map::new();
        let mut fields = Vec::with_capacity(entries.len());
        for e in entries {
            fields.push(FieldLoc {
                name: e.key.to_string(),
                key: (e.key_pos.line, e.key_pos.col),
                value: (e.value.pos.line, e.value.pos.col),
            });
            match e.key.as_ref() {
                "name" => {
                    name_seen = true;
                    let vpos = e.value.pos;
                    if let Some(n) = self.name(e.value, "`name`") {
                        match n.strip_prefix("@@") {
                            Some("") => self.invalid(
                                vpos,
                                "`name` is just the export marker `@@`; write `@@NAME`",
                            ),
                            Some(rest) => name = Some((rest.to_owned(), true)),
                            None => name = Some((n, false)),
                        }
                    }
                }
                "meta" => meta_node = Some(e.value),
                _ => match to_json(e.value) {
                    Ok(v) => {
                        params.insert(e.key.into_owned(), v);
                    }
                    Err((p, m)) => self.invalid(p, format!("param `{}`: {m}", e.key)),
                },
            }
        }
        let Some((name, exported)) = name else {
            if !name_seen {
                self.invalid(
                    pos,
                    format!("this `{kind}` resource has no `name:`; every resource needs one"),
                );
            }
            return None;
        };
        let id = Lazy(|f: &mut fmt::Formatter<'_>| write!(f, "{kind}[{name}]"));
        let (meta, autogroup_at) = match meta_node {
            Some(m) => self.meta(m, &id),
            None => (Meta::default(), None),
        };
        Some(ResourceDecl {
            kind: kind.to_owned(),
            name,
            exported,
            params,
            meta,
            loc: self.loc(pos),
            fields,
            autogroup_at,
        })
    }

    /// The metaparams, and where `autogroup` was written (for the planner's warning
    /// when its kind does not group; a place is no part of what `Meta` means).
    fn meta(&mut self, node: Node<'_>, id: &dyn fmt::Display) -> (Meta, Option<(u32, u32)>) {
        let mut meta = Meta::default();
        let mut autogroup_at = None;
        let Some((_, entries)) = self.mapping(node, format_args!("`meta` of {id}")) else {
            return (meta, autogroup_at);
        };
        let mut limit_pos = None;
        // The `burst` given and where, to check it against `limit` at the end.
        let mut burst: Option<(u32, Pos)> = None;
        for e in entries {
            let what = Lazy(|f: &mut fmt::Formatter<'_>| write!(f, "meta `{}` of {id}", e.key));
            match e.key.as_ref() {
                "noop" => meta.noop = self.boolean(e.value, &what).unwrap_or(meta.noop),
                "rewatch" => meta.rewatch = self.boolean(e.value, &what).unwrap_or(meta.rewatch),
                "autoedge" => {
                    meta.autoedge = self.boolean(e.value, &what).unwrap_or(meta.autoedge);
                }
                "hidden" => meta.hidden = self.boolean(e.value, &what).unwrap_or(meta.hidden),
                "sensitive" => {
                    meta.sensitive = self.boolean(e.value, &what).unwrap_or(meta.sensitive);
                }
                "tags" => {
                    let items = self.sequence(e.value, &what).unwrap_or_default();
                    for item in items {
                        if let Some(tag) = self.name(item, format_args!("each tag in {what}")) {
                            meta.tags.push(tag);
                        }
                    }
                }
                "trust_parents" => {
                    meta.trust_parents = self.boolean(e.value, &what).unwrap_or(meta.trust_parents);
                }
                "retry" => match e.value.val {
                    Val::Int(-1) => meta.retry = -1,
                    Val::UInt(n) => match i32::try_from(n) {
                        Ok(n) => meta.retry = n,
                        Err(_) => self.invalid(
                            e.value.pos,
                            format!(
                                "{what} is too large ({n}, at most {}); use -1 to retry forever",
                                i32::MAX
                            ),
                        ),
                    },
                    ref other => self.invalid(
                        e.value.pos,
                        format!(
                            "{what} must be -1 (retry forever) or a count of 0 or more, found {}",
                            describe_number(other)
                        ),
                    ),
                },
                "delay" => {
                    meta.delay = self
                        .unsigned(
                            e.value,
                            format_args!("{what} (milliseconds)"),
                            Meta::MAX_MILLIS,
                        )
                        .unwrap_or(0);
                }
                "poll" => {
                    meta.poll = self
                        .unsigned(
                            e.value,
                            format_args!("{what} (seconds, 0 = watch)"),
                            u64::from(Meta::MAX_POLL_SECS),
                        )
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0);
                }
                "burst" => {
                    let pos = e.value.pos;
                    if let Some(n) = self
                        .unsigned(e.value, &what, u64::from(Meta::MAX_BURST))
                        .and_then(|n| u32::try_from(n).ok())
                    {
                        meta.burst = n;
                        burst = Some((n, pos));
                    } else {
                        // Reported; do not also report a missing burst.
                        burst = Some((1, pos));
                    }
                }
                "timeout" => {
                    meta.timeout = self
                        .unsigned(
                            e.value,
                            format_args!("{what} (milliseconds, 0 = none)"),
                            Meta::MAX_MILLIS,
                        )
                        .filter(|&t| t > 0);
                }
                "cpu" => {
                    meta.cpu = self.positive(
                        e.value,
                        format_args!("{what} (milliseconds)"),
                        Meta::MAX_MILLIS,
                    );
                }
                "memory" => {
                    meta.memory =
                        self.positive(e.value, format_args!("{what} (MiB)"), Meta::MAX_MEMORY_MIB);
                }
                "limit" => {
                    // Integers beyond u32 are far above the largest limit: no need to
                    // convert them exactly.
                    let rate = match e.value.val {
                        Val::UInt(n) => Some(u32::try_from(n).map_or(f64::MAX, f64::from)),
                        Val::Int(_) => Some(-1.0),
                        Val::Float(f) => Some(f),
                        _ => None,
                    };
                    match rate {
                        Some(f) if f == f64::INFINITY => meta.limit = None,
                        Some(f) if (Meta::MIN_LIMIT..=Meta::MAX_LIMIT).contains(&f) => {
                            meta.limit = Some(f);
                            limit_pos = Some(e.key_pos);
                        }
                        _ => self.invalid(
                            e.value.pos,
                            format!(
                                "{what} must be a number of events per second from {} to {} \
                                 (or .inf for unlimited), found {}",
                                Meta::MIN_LIMIT,
                                Meta::MAX_LIMIT,
                                describe_number(&e.value.val)
                            ),
                        ),
                    }
                }
                "sema" => {
                    let items = self.sequence(e.value, &what).unwrap_or_default();
                    for item in items {
                        let p = item.pos;
                        if let Some(s) = self.nonempty(item, format_args!("each of {what}")) {
                            match parse_sema(&s) {
                                Ok(sema) => meta.sema.push(sema),
                                Err(m) => self.invalid(p, format!("{what}: {m}")),
                            }
                        }
                    }
                }
                "export" => {
                    let items = self.sequence(e.value, &what).unwrap_or_default();
                    for item in items {
                        if let Some(h) = self.nonempty(
                            item,
                            format_args!("each host in {what} (a hostname or `*`)"),
                        ) {
                            meta.export.push(h);
                        }
                    }
                }
                // Resources applied together (packages in one transaction), for kinds
                // that group; on another kind the planner warns that it does nothing.
                "autogroup" => {
                    if let Some(b) = self.boolean(e.value, &what) {
                        meta.autogroup = b;
                        autogroup_at = Some((e.key_pos.line, e.key_pos.col));
                    }
                }
                k if MGMT_ONLY_META.contains(&k) => self.invalid(
                    e.key_pos,
                    format!(
                        "metaparam `{k}` of {id} is an mgmt metaparam homeostat does not support \
                         (known: {})",
                        META_KEYS.join(", ")
                    ),
                ),
                _ => {
                    let hint = did_you_mean(&e.key, META_KEYS.iter().copied());
                    self.invalid(
                        e.key_pos,
                        format!(
                            "unknown metaparam `{}` in {id}{hint} (known: {})",
                            e.key,
                            META_KEYS.join(", ")
                        ),
                    );
                }
            }
        }
        if let Some(p) = limit_pos {
            match burst {
                None => self.invalid(
                    p,
                    format!(
                        "meta `limit` of {id} needs a `burst` of at least 1 (how many events \
                         may pass at once); add e.g. `burst: 1` next to it"
                    ),
                ),
                Some((0, at)) => self.invalid(
                    at,
                    format!(
                        "meta `burst` of {id} must be at least 1 when `limit` is set (how many \
                         events may pass at once), found 0"
                    ),
                ),
                Some(_) => {}
            }
        }
        (meta, autogroup_at)
    }

    fn endpoint(&mut self, node: Node<'_>, which: &str, label: &str) -> Option<ResId> {
        let (pos, entries) = match node.val {
            Val::Map(m) => (node.pos, m),
            other => {
                self.invalid(
                    node.pos,
                    format!(
                        "`{which}` of {label} must be a mapping `{{kind: KIND, name: NAME}}`, \
                         found {}",
                        other.describe()
                    ),
                );
                return None;
            }
        };
        let (mut kind, mut name) = (None, None);
        // Keys given with a bad value are reported as such, not as missing.
        let (mut kind_given, mut name_given) = (false, false);
        for e in entries {
            match e.key.as_ref() {
                "kind" => {
                    kind_given = true;
                    kind = self.nonempty(e.value, format_args!("`{which}.kind` of {label}"));
                }
                "name" => {
                    name_given = true;
                    name = self.name(e.value, format_args!("`{which}.name` of {label}"));
                }
                _ => self.unknown_key(&e, format_args!("`{which}` of {label}"), ENDPOINT_KEYS),
            }
        }
        match (kind, name) {
            (Some(k), Some(n)) => Some(ResId::new(k, n)),
            _ => {
                let missing = match (kind_given, name_given) {
                    (false, false) => "`kind` and `name`",
                    (false, true) => "`kind`",
                    (true, false) => "`name`",
                    (true, true) => return None,
                };
                self.invalid(pos, format!("`{which}` of {label} needs {missing}"));
                None
            }
        }
    }

    fn edge(&mut self, item: Node<'_>, index: usize) -> Option<EdgeDecl> {
        let pos = item.pos;
        let Val::Map(entries) = item.val else {
            self.invalid(
                pos,
                format!(
                    "edge #{} must be a mapping with `from:` and `to:`, found {}",
                    index + 1,
                    item.val.describe()
                ),
            );
            return None;
        };
        // The name first, so that every message can say which edge it is about.
        let mut name = None;
        for e in &entries {
            if e.key == "name"
                && let Val::Str(s) = &e.value.val
                && !s.is_empty()
                && bad_name_char(s).is_none()
            {
                name = Some(s.to_string());
            }
        }
        let label = match &name {
            Some(n) => format!("edge `{n}`"),
            None => format!("edge #{}", index + 1),
        };
        let (mut from, mut to, mut notify, mut send) = (None, None, false, BTreeMap::new());
        let mut ok = true;
        for e in entries {
            match e.key.as_ref() {
                "name" => {
                    if self
                        .name(e.value, format_args!("the name of {label}"))
                        .is_none()
                    {
                        ok = false;
                    }
                }
                "from" => {
                    let p = e.value.pos;
                    from = Some((self.endpoint(e.value, "from", &label), p));
                }
                "to" => {
                    let p = e.value.pos;
                    to = Some((self.endpoint(e.value, "to", &label), p));
                }
                "notify" => match self.boolean(e.value, format_args!("`notify` of {label}")) {
                    Some(b) => notify = b,
                    None => ok = false,
                },
                "send" => {
                    let what = format!("`send` of {label} (sender key → receiver param)");
                    let Some((_, pairs)) = self.mapping(e.value, &what) else {
                        ok = false;
                        continue;
                    };
                    for pair in pairs {
                        if let Some(param) = self.nonempty(
                            pair.value,
                            format_args!("`send.{}` of {label} (the receiver's param)", pair.key),
                        ) {
                            send.insert(pair.key.into_owned(), param);
                        } else {
                            ok = false;
                        }
                    }
                }
                _ => {
                    ok = false;
                    self.unknown_key(&e, &label, EDGE_KEYS);
                }
            }
        }
        let missing: Vec<&str> = [("`from`", from.is_none()), ("`to`", to.is_none())]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(k, _)| *k)
            .collect();
        if !missing.is_empty() {
            self.invalid(pos, format!("{label} needs {}", missing.join(" and ")));
            return None;
        }
        let (Some((Some(from), from_pos)), Some((Some(to), to_pos))) = (from, to) else {
            return None;
        };
        if !ok {
            return None;
        }
        Some(EdgeDecl {
            name,
            from,
            to,
            notify,
            send,
            loc: self.loc(pos),
            from_loc: self.loc(from_pos),
            to_loc: self.loc(to_pos),
        })
    }

    fn collect(&mut self, item: Node<'_>, index: usize) -> Option<CollectDecl> {
        let pos = item.pos;
        let label = format!("collect entry #{}", index + 1);
        let Val::Map(entries) = item.val else {
            self.invalid(
                pos,
                format!(
                    "{label} must be a mapping `{{kind: KIND, pattern: PATTERN}}`, found {}",
                    item.val.describe()
                ),
            );
            return None;
        };
        let (mut kind, mut pattern, mut purge, mut hosts) = (None, String::new(), false, None);
        for e in entries {
            match e.key.as_ref() {
                "kind" => {
                    let p = e.value.pos;
                    kind = self
                        .nonempty(e.value, format_args!("`kind` of {label}"))
                        .map(|k| (k, p));
                }
                "pattern" => {
                    if !matches!(e.value.val, Val::Null) {
                        pattern = self
                            .string(e.value, format_args!("`pattern` of {label}"))
                            .unwrap_or_default();
                    }
                }
                "purge" => {
                    purge = self
                        .boolean(e.value, format_args!("`purge` of {label}"))
                        .unwrap_or_default();
                }
                "hosts" => {
                    let what = format!("`hosts` of {label}");
                    let vpos = e.value.pos;
                    if let Some(items) = self.sequence(e.value, &what) {
                        if items.is_empty() {
                            self.invalid(
                                vpos,
                                format!(
                                    "{what} is empty: it would collect nothing; name the \
                                     exporting hosts, or drop `hosts` to collect from every host"
                                ),
                            );
                        }
                        let names: Vec<String> = items
                            .into_iter()
                            .filter_map(|h| self.name(h, format_args!("a host in {what}")))
                            .collect();
                        hosts = Some(names);
                    }
                }
                _ => self.unknown_key(&e, &label, COLLECT_KEYS),
            }
        }
        let Some((kind, kind_pos)) = kind else {
            self.invalid(pos, format!("{label} needs `kind`"));
            return None;
        };
        Some(CollectDecl {
            kind,
            pattern,
            purge,
            hosts,
            loc: self.loc(pos),
            kind_loc: self.loc(kind_pos),
        })
    }
}

/// What a name may hold besides ASCII letters and digits: space and `-_.:@/+=,\`. Enough
/// for mgmt-style path names (`/etc/motd`), systemd units with instances and escapes
/// (`getty@tty1.service`, `mnt-my\x2ddata.mount`), `host:port` and `key=value` pairs;
/// without control characters (a newline could forge a log line, ESC drive a terminal),
/// brackets (which would blur `kind[name]`), quotes or non-ASCII look-alikes.
pub const NAME_PUNCTUATION: &str = " -_.:@/+=,\\";

/// The first character of `name` that a name may not hold.
pub(crate) fn bad_name_char(name: &str) -> Option<char> {
    name.chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || NAME_PUNCTUATION.contains(c)))
}

/// Why `name` is not a valid name, naming its first bad character escaped (`\n`,
/// `\u{1b}`) with its code point; `None` when it is valid.
fn name_error(what: &dyn fmt::Display, name: &str) -> Option<String> {
    let c = bad_name_char(name)?;
    let at = name.chars().take_while(|&x| x != c).count() + 1;
    const SHOWN: usize = 60;
    let mut shown: String = name
        .chars()
        .take(SHOWN)
        .flat_map(char::escape_default)
        .collect();
    if name.chars().nth(SHOWN).is_some() {
        shown.push('…');
    }
    Some(format!(
        "{what} \"{shown}\" holds the character `{}` (U+{:04X}) at position {at}, which a name \
         may not hold; use ASCII letters, digits, spaces and `{}`",
        c.escape_default(),
        u32::from(c),
        NAME_PUNCTUATION.trim_start()
    ))
}

/// A value where a number was expected, for an error message: the number as YAML spells
/// it (`1.5`, `1e-300`, `.nan`), or what else it is. Integers too large for 64 bits and
/// integers with a leading zero stay strings in the YAML loader; they are named as such.
fn describe_number(v: &Val) -> String {
    match v {
        Val::UInt(n) => n.to_string(),
        Val::Int(n) => n.to_string(),
        Val::Float(f) => show_float(*f),
        Val::Str(s) => {
            let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                "a string".to_owned()
            } else if digits.len() > 1 && digits.starts_with('0') {
                format!("`{s}`, a string (YAML keeps a number with a leading zero as text)")
            } else if s.parse::<i64>().is_ok() || s.parse::<u64>().is_ok() {
                format!("`{s}`, a string (write numbers without quotes)")
            } else {
                format!("`{s}`, which is too large")
            }
        }
        other => other.describe().to_owned(),
    }
}

/// A float as YAML writes it; tiny and huge ones in exponent form (`1e-300`, not three
/// hundred zeros).
fn show_float(f: f64) -> String {
    if f.is_nan() {
        ".nan".to_owned()
    } else if f == f64::INFINITY {
        ".inf".to_owned()
    } else if f == f64::NEG_INFINITY {
        "-.inf".to_owned()
    } else if f != 0.0 && !(1e-4..1e16).contains(&f.abs()) {
        format!("{f:e}")
    } else {
        format!("{f:?}")
    }
}

/// `"id"` or `"id:count"` with count >= 1.
fn parse_sema(s: &str) -> Result<Semaphore, String> {
    let Some((id, count)) = s.rsplit_once(':') else {
        return Ok(Semaphore {
            id: s.to_owned(),
            count: 1,
        });
    };
    if id.is_empty() {
        return Err(format!(
            "`{s}` has an empty semaphore id; write `ID` or `ID:COUNT`"
        ));
    }
    match count.parse::<u32>() {
        Ok(0) => Err(format!(
            "`{s}`: a semaphore count must be at least 1 (`{id}:1` lets one resource in at a time)"
        )),
        Ok(n) if n > Meta::MAX_SEMA_COUNT => Err(format!(
            "`{s}`: a semaphore count must be at most {}",
            Meta::MAX_SEMA_COUNT
        )),
        Ok(n) => Ok(Semaphore {
            id: id.to_owned(),
            count: n,
        }),
        Err(_) => Err(format!(
            "`{s}`: the count after `:` must be a whole number from 1 to {}",
            Meta::MAX_SEMA_COUNT
        )),
    }
}

/// Converts a YAML node to JSON for a plugin; fails on non-finite numbers.
fn to_json(node: Node<'_>) -> Result<Value, (Pos, String)> {
    Ok(match node.val {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(b),
        Val::Int(i) => Value::Number(Number::from(i)),
        Val::UInt(u) => Value::Number(Number::from(u)),
        Val::Float(f) => match Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None => {
                return Err((
                    node.pos,
                    format!("{f} cannot be passed to a plugin (JSON has no infinities or NaN)"),
                ));
            }
        },
        Val::Str(s) => Value::String(s.into_owned()),
        Val::Seq(items) => Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Val::Map(entries) => {
            let mut m = Map::new();
            for e in entries {
                m.insert(e.key.into_owned(), to_json(e.value)?);
            }
            Value::Object(m)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sema_forms() {
        assert_eq!(
            parse_sema("lock"),
            Ok(Semaphore {
                id: "lock".into(),
                count: 1
            })
        );
        assert_eq!(
            parse_sema("a:b:3"),
            Ok(Semaphore {
                id: "a:b".into(),
                count: 3
            })
        );
        assert!(parse_sema("x:0").is_err());
        assert!(parse_sema(":3").is_err());
        assert!(parse_sema("x:y").is_err());
    }
}
