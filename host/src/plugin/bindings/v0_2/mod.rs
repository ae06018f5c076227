//! `homeostat:resource@0.2.0`: what 0.2 adds to 0.1, the `world` interface ([`world`]).
//! A 0.2 plugin imports 0.1's interfaces at `@0.1.0` (linked by `v0_1`) and exports
//! 0.1's `plugin`, so it runs through `v0_1`'s `Pre` and `Guest`; only its `world`
//! import is linked here.

mod world;

use wasmtime::component::Linker;

use crate::plugin::store::HostState;

/// The WIT package versions these bindings run: `0.2.x`.
pub(super) const SERIES: &str = "0.2";

/// The host interfaces 0.2 adds.
pub(super) const INTERFACES: &[&str] = &["world"];

/// Link the interfaces 0.2 adds.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    world::add_to_linker(linker)
}
