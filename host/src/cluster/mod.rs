//! Runs the real `etcd` server a host serves (homeostat never embeds etcd): its flags, its
//! data directory under the state directory, its output in homeostat's log, a restart
//! when it dies, and a clean stop with homeostat. See [`server`]. [`status`] is what
//! `homeostat cluster status` reads from any member.
//!
//! Growing and shrinking the server set (volunteer, nominate, learners) builds on this.

pub mod server;
pub mod status;
