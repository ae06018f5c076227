//! What a graph file declares, typed: resources ([`ResourceDecl`], with their
//! metaparams [`Meta`] and where each field is), edges ([`EdgeDecl`]), collects
//! ([`CollectDecl`]), all in one [`GraphDoc`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::Location;

/// A resource's identity: its kind and name. Displays as `kind[name]`, like mgmt.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResId {
    /// The resource kind, e.g. `file`.
    pub kind: String,
    /// The name, without the `@@` export marker.
    pub name: String,
}

impl ResId {
    /// Builds an id from a kind and a name.
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        ResId {
            kind: kind.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ResId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.kind, self.name)
    }
}

/// A named semaphore a resource holds while it runs check-apply (`sema: ["id:count"]`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Semaphore {
    /// The semaphore's id, shared by every resource naming it.
    pub id: String,
    /// How many holders it admits at once (`id` alone means 1).
    pub count: u32,
}

/// Metaparams every resource accepts under `meta:` (mgmt's names and units).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Run check-apply with apply = false: report, never change.
    pub noop: bool,
    /// Retries for watch and check-apply after an error; -1 retries forever.
    pub retry: i32,
    /// Milliseconds to wait between retries.
    pub delay: u64,
    /// Seconds between polls instead of watching; 0 means watch.
    pub poll: u32,
    /// Events per second allowed; `None` is unlimited. When set, `burst` is at least 1.
    pub limit: Option<f64>,
    /// Events allowed at once above `limit`.
    pub burst: u32,
    /// Semaphores held around check-apply, in the order written.
    pub sema: Vec<Semaphore>,
    /// Check-apply deadline in milliseconds; `None` (or 0 in YAML) is no deadline.
    pub timeout: Option<u64>,
    /// CPU time one check-apply may use, in milliseconds (`None`: `--plugin-cpu`).
    pub cpu: Option<u64>,
    /// Memory cap of the plugin instance during this resource's check-applies, in MiB
    /// (`None`: `--plugin-memory`).
    pub memory: Option<u64>,
    /// On a graph swap, restart this resource's watch if it had failed permanently.
    pub rewatch: bool,
    /// Whether automatic edges (e.g. to the parent directory's file resource) are added.
    pub autoedge: bool,
    /// In the graph (for edges, send/recv, export) but never watched or applied.
    pub hidden: bool,
    /// Hostnames (or `*`) this resource is exported to.
    pub export: Vec<String>,
    /// Follow symlinks on the way to this resource's paths even where an unprivileged
    /// user owns them (the operator vouches for the layout; see `sys::fs::walk`).
    pub trust_parents: bool,
    /// Names `run --tags` selects this resource by.
    pub tags: Vec<String>,
    /// Its content is secret: no diff of it is ever logged (only sizes and attributes).
    pub sensitive: bool,
    /// Applied together with other resources of its kind that are ready at the same
    /// moment, when the kind groups (mgmt's `autogroup`, default on: `pkg` installs its
    /// packages in one transaction); `false` runs it alone.
    #[serde(default = "yes")]
    pub autogroup: bool,
}

fn yes() -> bool {
    true
}

/// The accepted range of every numeric metaparam, checked by [`parse`](super::parse) with
/// a located error. The limit flags of the command line share them, so a flag and the
/// metaparam that overrides it accept the same values. A value outside its range is an
/// error, never clamped, wrapped or truncated.
impl Meta {
    /// Longest duration in milliseconds (`delay`, `timeout`, `cpu`): one day.
    pub const MAX_MILLIS: u64 = 86_400_000;
    /// Longest `poll` interval in seconds: one day.
    pub const MAX_POLL_SECS: u32 = 86_400;
    /// Largest `memory` cap in MiB: a wasm32 linear memory cannot exceed 4 GiB.
    pub const MAX_MEMORY_MIB: u64 = 4096;
    /// Slowest finite `limit`, in events per second (one per 1000 s; slower is `poll`).
    pub const MIN_LIMIT: f64 = 0.001;
    /// Fastest finite `limit`, in events per second (faster: `.inf`, unlimited).
    pub const MAX_LIMIT: f64 = 1_000_000.0;
    /// Largest `burst`.
    pub const MAX_BURST: u32 = 1_000_000;
    /// Largest count of a `sema` semaphore.
    pub const MAX_SEMA_COUNT: u32 = 1_000_000;
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            noop: false,
            retry: 0,
            delay: 0,
            poll: 0,
            limit: None,
            burst: 0,
            sema: Vec::new(),
            timeout: None,
            cpu: None,
            memory: None,
            rewatch: false,
            autoedge: true,
            hidden: false,
            trust_parents: false,
            export: Vec::new(),
            tags: Vec::new(),
            sensitive: false,
            autogroup: true,
        }
    }
}

/// One resource as declared in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceDecl {
    /// The kind it was listed under in `resources:`.
    pub kind: String,
    /// Its name, without a leading `@@`.
    pub name: String,
    /// Declared as `@@name`: exported to the cluster instead of applied here.
    pub exported: bool,
    /// Every key of the entry except `name` and `meta`, as JSON, for the kind's plugin.
    pub params: Map<String, Value>,
    /// The parsed `meta:` mapping (defaults when absent).
    pub meta: Meta,
    /// The entry (the start of its mapping).
    pub loc: Location,
    /// Every top-level field of the entry, params plus `name` and `meta`, in file order.
    /// An entry has a handful, so a scan finds one faster than a map would, and a map per
    /// resource was a visible cost of parsing 10 000 of them.
    pub fields: Vec<FieldLoc>,
    /// Where the `autogroup` metaparam was written (line, column), if it was: the
    /// planner warns there when the kind does not group.
    pub autogroup_at: Option<(u32, u32)>,
}

/// Where one top-level field of a resource entry is written (in the entry's file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldLoc {
    /// The field's key, e.g. `path`.
    pub name: String,
    /// 1-based line and column of the key.
    pub key: (u32, u32),
    /// 1-based line and column of the value.
    pub value: (u32, u32),
}

/// The top-level param a field path such as `env.PATH`, `args[2]` or `/env/PATH` starts with.
fn first_segment(field: &str) -> &str {
    let field = field.strip_prefix('/').unwrap_or(field);
    let end = field.find(['.', '[', '/']).unwrap_or(field.len());
    &field[..end]
}

impl ResourceDecl {
    /// The resource's `kind[name]` identity.
    pub fn id(&self) -> ResId {
        ResId::new(self.kind.clone(), self.name.clone())
    }

    /// Where to point an error about `field` (a top-level param, or a path such as `env.PATH`
    /// whose first segment is one): that param's key, or the entry when it is absent or `None`.
    pub fn loc_of(&self, field: Option<&str>) -> Location {
        self.field_loc(field, |f| f.key)
    }

    /// Like [`ResourceDecl::loc_of`] but pointing at the param's value, which suits errors
    /// about a bad value.
    pub fn value_loc_of(&self, field: Option<&str>) -> Location {
        self.field_loc(field, |f| f.value)
    }

    fn field_loc(&self, field: Option<&str>, at: impl Fn(&FieldLoc) -> (u32, u32)) -> Location {
        let found = field.and_then(|f| {
            let name = first_segment(f);
            self.fields.iter().find(|l| l.name == name)
        });
        match found {
            Some(f) => {
                let (line, column) = at(f);
                Location {
                    file: self.loc.file.clone(),
                    line,
                    column,
                }
            }
            None => self.loc.clone(),
        }
    }
}

/// One entry of `edges:`.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeDecl {
    /// The optional `name:` (mgmt requires one; we do not).
    pub name: Option<String>,
    /// The upstream resource.
    pub from: ResId,
    /// The downstream resource, which runs after `from`.
    pub to: ResId,
    /// Refresh `to` after `from` changed something.
    pub notify: bool,
    /// send/recv: sender key → receiver param.
    pub send: BTreeMap<String, String>,
    /// The edge entry.
    pub loc: Location,
    /// The `from:` value.
    pub from_loc: Location,
    /// The `to:` value.
    pub to_loc: Location,
}

impl EdgeDecl {
    /// `edge `e1`` or `edge #3` (1-based position) for messages.
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(n) => format!("edge `{n}`"),
            None => format!("edge #{}", index + 1),
        }
    }
}

/// One entry of `collect:`: collect exported resources of `kind` matching `pattern`.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectDecl {
    /// The kind to collect.
    pub kind: String,
    /// The pattern: for `file`, the directory collected files are placed in; for other
    /// kinds, a prefix of the names collected. Empty collects all, unchanged.
    pub pattern: String,
    /// When an export vanishes, apply `state: absent` to what it made (kinds with a
    /// `state` param that takes `absent`).
    pub purge: bool,
    /// Collect only what these hosts export (`hosts: [...]`); `None`: from every host.
    /// Collecting a kind that runs commands (`exec`) from every host trusts every host.
    pub hosts: Option<Vec<String>>,
    /// The entry.
    pub loc: Location,
    /// The `kind:` value.
    pub kind_loc: Location,
}

/// A parsed graph file.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphDoc {
    /// The `graph:` name.
    pub name: String,
    /// The file as given (shared with every [`Location`]).
    pub file: Arc<Path>,
    /// All resources, in file order (exported ones included, flagged).
    pub resources: Vec<ResourceDecl>,
    /// All explicit edges, in file order.
    pub edges: Vec<EdgeDecl>,
    /// All collect entries, in file order.
    pub collect: Vec<CollectDecl>,
    /// Where each kind's key under `resources:` is.
    pub kind_locs: BTreeMap<String, Location>,
    /// The `remote:` target (`ssh://user@host:port`, mgmt's key) and where it is: used by
    /// `homeostat run --remote` on the initiator, ignored where the graph runs.
    pub remote: Option<(String, Location)>,
    /// `remotes:`: graph files (relative to this one) that the host running this graph
    /// runs remotely itself, one level deeper (hierarchical remote execution).
    pub remotes: Vec<(String, Location)>,
}
