//! The graph module owns the way from a YAML graph file to a typed, validated resource graph:
//! [`decode`] takes the file's bytes as UTF-8 (naming the first bad byte); [`parse`] reads
//! mgmt's yamlgraph shape strictly (unknown keys, metaparams out of their ranges, names
//! outside [`NAME_PUNCTUATION`], duplicate names and YAML bombs are errors) and remembers
//! the line and column of every resource, param and edge; [`check_params`] checks kinds,
//! edge endpoints and each resource's params against its kind's JSON schema;
//! [`path_autoedges`] derives "depends on whoever manages my parent directory" edges; and
//! [`build()`] assembles the petgraph [`StableDiGraph`] the engine runs, rejecting cycles.
//! Every error is a [`GraphError`] rendered as `FILE:LINE:COLUMN: message`, and all errors
//! found are reported together as [`GraphErrors`]. Live graph swaps compare planned
//! resources in the engine (`engine::run`), not here. With the `fuzzing` feature,
//! `fuzzing` holds the loader's oracle for the fuzz target and the property tests.

mod autoedge;
mod build;
mod check;
mod decl;
mod doc;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub(crate) mod suggest;
mod text;
mod yaml;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use autoedge::path_autoedges;
pub use build::{EdgeInfo, Graph, build};
pub use check::{
    KindCatalog, SchemaCatalog, SchemaError, check_params, drop_unset_zero_values,
    schema_param_names,
};
pub use decl::{CollectDecl, EdgeDecl, FieldLoc, GraphDoc, Meta, ResId, ResourceDecl, Semaphore};
pub use doc::{NAME_PUNCTUATION, parse};
pub use error::{GraphError, GraphErrors, Location};
pub use petgraph::stable_graph::{NodeIndex, StableDiGraph};
pub use text::{decode, decode_owned, parse_bytes};
