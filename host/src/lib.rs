//! homeostat: keeps machines in their declared state the instant they drift.
//!
//! A graph of resources (YAML, [`graph`]) is turned into a runnable [`plan`] by
//! validating every resource in its sandboxed WebAssembly [`plugin`]; the [`engine`]
//! then watches each resource through host event sources ([`watch`]) and runs
//! check-apply in dependency order the moment something changes.

pub mod cli;
pub mod engine;
pub mod graph;
pub mod plan;
pub mod plugin;
pub mod watch;
