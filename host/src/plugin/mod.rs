//! Resource plugins: sandboxed WebAssembly components implementing
//! `homeostat:resource@0.1.0`.
//!
//! [`manifest`] reads what a plugin declares, [`inspect`] reads a plugin file without
//! running it, [`grants`] decides what each plugin may use, [`registry`] finds plugins and
//! maps kinds to them, [`runtime`] compiles, caches and runs them under limits, [`serve`] runs the
//! long-running watch of resources that are servers, [`bindings`] is the
//! generated host side of the WIT, and [`capabilities`] holds one module per host
//! interface.

pub mod bindings;
pub mod capabilities;
pub mod grants;
pub mod inspect;
pub mod manifest;
pub mod registry;
pub mod runtime;
pub mod serve;
