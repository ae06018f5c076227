//! Agentless remote execution over SSH: `homeostat run --remote a.yaml --remote b.yaml`
//! runs each graph on the host its `remote: ssh://user@host:port` names, without
//! installing anything there first. Called only from `cli/run`.
//!
//! Per host ([`fleet`]): connect and verify the host key ([`ssh`], [`trust`]), copy the
//! binary, the third-party plugins the graph's kinds need, their grants and the graph
//! into a cache keyed by SHA-256 ([`transfer`]), open a reverse tunnel from the remote's
//! loopback to the initiator's etcd, and run `homeostat run --no-server --seeds <tunnel>`
//! there: the remote joins the initiator's World as a client, exports and collects like
//! any host, streams its log back, takes graph edits live, and stops when the initiator
//! stops or once the whole fleet has converged. When the initiator's World is on mutual
//! TLS, each remote gets its own certificate and uses TLS through the tunnel
//! ([`certs`]).

pub mod certs;
pub mod fleet;
pub mod ssh;
pub mod target;
pub mod transfer;
pub mod trust;

pub use fleet::{FleetOptions, HostResult};
pub use ssh::SshOptions;
pub use target::{SshUrl, Target};
pub use trust::KnownHosts;
