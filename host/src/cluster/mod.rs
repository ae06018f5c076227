//! Runs the real `etcd` servers of a cluster (homeostat never embeds etcd) and grows and
//! shrinks their set:
//! - [`server`]: one supervised etcd process: its flags, its data directory under the
//!   state directory, its output in homeostat's log, a restart when it dies, a clean
//!   stop with homeostat;
//! - [`membership`]: a host's side of elastic membership (volunteer, serve when
//!   nominated, leave when unnominated) and the keys it uses;
//! - [`chooser`]: the one host at a time (a lease-backed election) that adds, promotes and
//!   removes members, by the rules in [`rules`];
//! - [`status`]: what `homeostat cluster status` reads from any member;
//! - [`rbac`]: per-host rights in etcd on a cluster over TLS (`homeostat cluster
//!   allow`).

pub mod chooser;
pub mod membership;
pub mod rbac;
pub mod rules;
pub mod server;
pub mod status;
