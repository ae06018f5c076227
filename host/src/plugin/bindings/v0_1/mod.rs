//! `homeostat:resource@0.1.0`, frozen: [`wit`] is its one `bindgen!` and the conversions
//! of its types, [`guest`] calls its exports, and each host interface is one glue file
//! (`log`, `state`, `fs`, `process`, `systemd`, `kmsg`, `net`) holding its `Host` impl,
//! its grant check and its error mapping. [`INTERFACES`] links them all.

mod fs;
mod guest;
mod kmsg;
mod log;
mod net;
mod process;
mod state;
mod systemd;
mod wit;

use wasmtime::component::Linker;

use crate::plugin::store::HostState;

pub(super) use guest::{Guest, Pre};

/// The WIT package versions these bindings run: `0.1.x`.
pub(super) const SERIES: &str = "0.1";

/// Adds one interface's host functions to the linker.
type Link = fn(&mut Linker<HostState>) -> wasmtime::Result<()>;

/// Every host interface of 0.1 and how it is linked: a new interface is its glue file and
/// a line here.
const LINKED: &[(&str, Link)] = &[
    ("types", wit::add_to_linker),
    ("log", log::add_to_linker),
    ("state", state::add_to_linker),
    ("fs", fs::add_to_linker),
    ("process", process::add_to_linker),
    ("systemd", systemd::add_to_linker),
    ("kmsg", kmsg::add_to_linker),
    ("net", net::add_to_linker),
];

/// The names of [`LINKED`], for `plugin inspect` and link errors.
pub(super) const INTERFACES: &[&str] = &{
    let mut names = [""; LINKED.len()];
    let mut i = 0;
    while i < LINKED.len() {
        names[i] = LINKED[i].0;
        i += 1;
    }
    names
};

/// Link every host interface of 0.1.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    for (_, link) in LINKED {
        link(linker)?;
    }
    Ok(())
}
