//! The OS services: everything homeostat does to the machine it runs on, below both the
//! WebAssembly side (`plugin`) and the per-resource event sources (`watch`). Nothing here
//! imports anything above it.
//!
//! - [`footprint`]: what a resource may touch, as it declared it;
//! - [`fs`]: the file system, footprint-scoped, with atomic durable writes and group
//!   commit;
//! - [`process`]: the command lines a resource declared, each in a process group and a
//!   cgroup of its own (`cgroup`);
//! - [`systemd`]: unit state and jobs over D-Bus;
//! - [`net`]: the sockets of a resource's server;
//! - [`kmsg`]: the kernel log as a stream of records;
//! - [`proc_poll`]: the few `/proc` files the kernel signals through `poll` (the mount
//!   table, the host name), which inotify does not see (the hub watches them there);
//! - [`inotify`]: the file watch hub, and the [`Echo`](inotify::Echo) that keeps a resource
//!   from waking at its own writes;
//! - [`ids`]: user and group names;
//! - [`input`]: files read from outside (graph, plugins, grants): type-checked before the
//!   first read, and capped;
//! - [`text`]: text for a terminal or a log: control characters escaped, sizes capped;
//! - [`temp_name`]: the names of homeostat's staging files, which `fs` makes and the hub
//!   ignores;
//! - [`waker`]: how all of them say "look again".
//!
//! [`Services`] bundles the handles a host hands to the runtime and the engine, so that
//! nothing reaches for a process-wide instance and a test can hand in its own.

pub(crate) mod cgroup;
pub mod footprint;
pub mod fs;
pub mod ids;
pub mod inotify;
pub mod input;
pub mod kmsg;
pub mod net;
pub mod proc_poll;
pub mod process;
pub mod systemd;
pub mod temp_name;
pub mod text;
pub mod waker;

/// The handles to the OS services that plugins' host interfaces and the engine's watches
/// use. Cheap to clone: each is a shared handle. [`Services::default`] is the real machine
/// (`/dev/kmsg`, the system and session buses as the environment names them).
#[derive(Debug, Clone, Default)]
pub struct Services {
    /// Files, and the commit thread of durable writes.
    pub fs: fs::FsHost,
    /// The process groups of running commands.
    pub processes: process::Processes,
    /// The connections to the service managers.
    pub systemd: systemd::SystemdHost,
    /// The kernel log reader, opened on first use.
    pub kmsg: kmsg::KmsgSource,
    /// The plugins' `state` values (in memory unless loaded from the World).
    pub states: std::sync::Arc<crate::world::states::States>,
    /// The World, once the run has opened it (the `world` host interface and world-key
    /// watches reach it here).
    pub world: std::sync::Arc<std::sync::OnceLock<crate::world::World>>,
}
