//! The graph module owns the way from a YAML graph file to a typed, validated resource graph:
//! [`parse`] reads mgmt's yamlgraph shape strictly (unknown keys, bad metaparams, duplicate
//! names and YAML bombs are errors) and remembers the line and column of every resource, param
//! and edge; [`check_params`] checks kinds, edge endpoints and each resource's params against
//! its kind's JSON schema; [`path_autoedges`] derives "depends on whoever manages my parent
//! directory" edges; and [`build()`] assembles the petgraph [`StableDiGraph`] the engine runs,
//! rejecting cycles. Every error is a [`GraphError`] rendered as `FILE:LINE:COLUMN: message`,
//! and all errors found are reported together as [`GraphErrors`]. Live graph swaps compare
//! planned resources in the engine (`engine::run`), not here.

mod autoedge;
mod build;
mod check;
mod doc;
pub(crate) mod suggest;
mod yaml;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

pub use autoedge::path_autoedges;
pub use build::{EdgeInfo, Graph, build};
pub use check::{KindCatalog, SchemaCatalog, SchemaError, check_params, schema_param_names};
pub use doc::parse;
pub use petgraph::stable_graph::{NodeIndex, StableDiGraph};

/// A position in a graph file: the file as given by the user, 1-based line and column
/// (columns count characters). Displays as `FILE:LINE:COLUMN`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The graph file, spelled as the user gave it (shared by every location of one file).
    pub file: Arc<Path>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem in a graph file. Every variant names where it is; `Display` renders
/// `FILE:LINE:COLUMN: message`, one paragraph a user can act on.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// The text is not valid YAML, or it exceeds a limit (size, depth, alias expansion).
    #[error("{loc}: {message}")]
    Yaml {
        /// Where the parser stopped.
        loc: Location,
        /// The parser's message, or which limit was exceeded.
        message: String,
    },
    /// Valid YAML in the wrong shape: unknown or missing key, wrong type, bad metaparam.
    #[error("{loc}: {message}")]
    Invalid {
        /// The offending key or value.
        loc: Location,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A resource name or mapping key declared twice; the message names the first place.
    #[error("{loc}: {message}")]
    Duplicate {
        /// The second declaration.
        loc: Location,
        /// Includes the location of the first declaration.
        message: String,
    },
    /// A resource kind no loaded plugin provides.
    #[error("{loc}: {message}")]
    UnknownKind {
        /// The kind's key under `resources:` (or the `kind:` of a collect entry).
        loc: Location,
        /// Names the known kinds.
        message: String,
    },
    /// An edge whose `from` or `to` is not a resource of this graph.
    #[error("{loc}: {message}")]
    DanglingEdge {
        /// The edge's `from` or `to`.
        loc: Location,
        /// Names the missing resource.
        message: String,
    },
    /// A param rejected by the kind's JSON schema or by its plugin's validate.
    #[error("{loc}: {message}")]
    Param {
        /// The param (its value, or its key for an unknown param), else the resource entry.
        loc: Location,
        /// Names the resource `kind[name]` and the param.
        message: String,
    },
    /// A dependency cycle; the message lists the resources around it with their locations.
    #[error("{loc}: {message}")]
    Cycle {
        /// The first resource of the cycle.
        loc: Location,
        /// `cycle: a -> b -> a (…locations…)`.
        message: String,
    },
}

impl GraphError {
    /// Where the problem is.
    pub fn location(&self) -> &Location {
        match self {
            GraphError::Yaml { loc, .. }
            | GraphError::Invalid { loc, .. }
            | GraphError::Duplicate { loc, .. }
            | GraphError::UnknownKind { loc, .. }
            | GraphError::DanglingEdge { loc, .. }
            | GraphError::Param { loc, .. }
            | GraphError::Cycle { loc, .. } => loc,
        }
    }

    /// The message without the location prefix.
    pub fn message(&self) -> &str {
        match self {
            GraphError::Yaml { message, .. }
            | GraphError::Invalid { message, .. }
            | GraphError::Duplicate { message, .. }
            | GraphError::UnknownKind { message, .. }
            | GraphError::DanglingEdge { message, .. }
            | GraphError::Param { message, .. }
            | GraphError::Cycle { message, .. } => message,
        }
    }
}

/// Every problem found in a graph file, sorted by position; `Display` prints one per line.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphErrors(pub Vec<GraphError>);

impl GraphErrors {
    /// Sorts `errors` by file, line and column (stable, so same-position errors keep their
    /// order) and drops exact repeats.
    pub fn new(mut errors: Vec<GraphError>) -> Self {
        errors.sort_by(|a, b| a.location().cmp(b.location()));
        errors.dedup();
        GraphErrors(errors)
    }

    /// `Ok(())` when `errors` is empty, else the sorted errors.
    pub fn check(errors: Vec<GraphError>) -> Result<(), GraphErrors> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(GraphErrors::new(errors))
        }
    }

    /// The errors, in position order.
    pub fn iter(&self) -> std::slice::Iter<'_, GraphError> {
        self.0.iter()
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never true for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for GraphErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GraphErrors {}

impl From<GraphError> for GraphErrors {
    fn from(e: GraphError) -> Self {
        GraphErrors(vec![e])
    }
}

impl<'a> IntoIterator for &'a GraphErrors {
    type Item = &'a GraphError;
    type IntoIter = std::slice::Iter<'a, GraphError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

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
            export: Vec::new(),
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
    /// The pattern (for `file`, a path prefix); empty collects all.
    pub pattern: String,
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
}
