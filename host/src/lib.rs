//! homeostat: keeps machines in their declared state the instant they drift.
//!
//! A graph of resources (YAML, [`graph`]) is turned into a runnable [`plan`] by
//! validating every resource in its sandboxed WebAssembly [`plugin`]; the [`engine`]
//! then watches each resource through host event sources ([`watch`], and the OS
//! services' own subscriptions in [`sys`]) and runs check-apply in dependency order the
//! moment something changes. [`cli`] is the command line on top.
//!
//! Hosts share a [`world`] (the local store by default, etcd in a cluster, whose server
//! [`cluster`] runs): exported and collected resources, converged states, plugin state.
//!
//! Layers, top to bottom (an import only ever points down): `cli` → `plan` → `engine` →
//! `watch` → `plugin` → `sys` → `world`, with `graph` beside them (YAML to a typed graph,
//! used by `plan` and `engine`) and `cluster` used by `cli` only.

pub mod cli;
pub mod cluster;
pub mod engine;
pub mod graph;
pub mod plan;
pub mod plugin;
pub mod remote;
pub mod sys;
pub mod tls;
pub mod watch;
pub mod world;
