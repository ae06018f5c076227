//! What a resource may touch: the footprint it declares from its params in `validate`
//! (WIT `footprint`), which every OS service enforces on every call made for it. Plain
//! data with no behaviour of its own beyond comparing grants: the checks live with the
//! service that enforces them (`fs::path`, `process::check_argv`, `systemd::check_unit`,
//! `net::check_bind`), so each rule is stated once, where the syscalls are.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// A path a resource may touch (WIT `path-grant`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PathGrant {
    /// Absolute, normalised path.
    pub path: PathBuf,
    /// The grant covers everything below `path` as well.
    pub recursive: bool,
    /// Writes (create, replace, remove, chmod, chown) are allowed; otherwise read-only.
    pub write: bool,
    /// A write grant of a kind that edits *part* of a file (a line, a key; its manifest
    /// says `edits`): several resources may hold it on one path, `fs` lets them read and
    /// replace the content only, and their writes are staged and committed together
    /// (see `sys::fs::edits`). Not part of the WIT: the host sets it from the manifest.
    #[serde(default)]
    pub shared: bool,
}

/// Everything a resource may touch (WIT `footprint`): `fs` enforces `paths`, `process`
/// `commands`, `systemd` `units` and `net` `sockets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footprint {
    /// Paths the resource may read, or write.
    pub paths: Vec<PathGrant>,
    /// Exact command lines the resource may run.
    pub commands: Vec<Vec<String>>,
    /// systemd units (and on which manager) the resource may query and control.
    pub units: Vec<UnitRef>,
    /// Addresses the resource may bind while serving.
    pub sockets: Vec<SocketGrant>,
    /// Follow links on the way to `paths` even where an unprivileged user owns them (the
    /// `trust_parents` metaparam: the operator vouches for the layout; see
    /// `sys::fs::walk`). Not part of the WIT: the host sets it from the metaparam.
    #[serde(default)]
    pub trust_parents: bool,
    /// The resource whose footprint this is (`file[motd]`), so that the `fs` service can
    /// tell two resources writing one file through two names apart; set by the engine,
    /// `None` for calls that write nothing (validate).
    #[serde(skip)]
    pub owner: Option<Arc<str>>,
    /// A group call's footprint (the union of its resources'): command lines that
    /// differ only in their last argument may run merged (see
    /// [`check_argv`](crate::sys::process::check_argv)). Not part of the WIT.
    #[serde(skip)]
    pub merge_commands: bool,
}

impl Footprint {
    /// The footprint of a group call: everything any of `footprints` allows, with
    /// [`merge_commands`](Footprint::merge_commands) on. Links are trusted only where
    /// every member trusts them.
    pub fn union<'a>(footprints: impl IntoIterator<Item = &'a Footprint>) -> Footprint {
        let mut u = Footprint {
            trust_parents: true,
            merge_commands: true,
            ..Footprint::default()
        };
        // Sets, not `contains` on the lists: a group may have thousands of members.
        let mut paths = std::collections::HashSet::new();
        let mut commands = std::collections::HashSet::new();
        for f in footprints {
            for g in &f.paths {
                if paths.insert(g) {
                    u.paths.push(g.clone());
                }
            }
            for c in &f.commands {
                if commands.insert(c) {
                    u.commands.push(c.clone());
                }
            }
            for x in &f.units {
                if !u.units.contains(x) {
                    u.units.push(x.clone());
                }
            }
            for x in &f.sockets {
                if !u.sockets.contains(x) {
                    u.sockets.push(*x);
                }
            }
            u.trust_parents &= f.trust_parents;
        }
        u
    }
}

/// A unit on one of the two managers (WIT `unit-ref`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnitRef {
    /// Full unit name, e.g. `nginx.service`.
    pub name: String,
    /// The user's session manager rather than the system manager.
    pub session: bool,
}

/// The two socket protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    /// Datagrams (TFTP).
    Udp,
    /// Streams (HTTP).
    Tcp,
}

impl Protocol {
    /// `udp` or `tcp`, as users write it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        }
    }
}

/// An address a resource may bind (WIT `socket-grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SocketGrant {
    pub protocol: Protocol,
    pub address: SocketAddr,
}

impl std::fmt::Display for SocketGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.protocol.name(), self.address)
    }
}

impl SocketGrant {
    /// Whether both can never be bound at once: same protocol and port, and the same IP
    /// or one of them every address (`0.0.0.0`, `[::]`).
    pub fn overlaps(&self, other: &SocketGrant) -> bool {
        let (a, b) = (self.address, other.address);
        self.protocol == other.protocol
            && a.port() == b.port()
            && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
    }
}
