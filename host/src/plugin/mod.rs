//! Resource plugins: sandboxed WebAssembly components implementing
//! `homeostat:resource`. This layer is the WebAssembly side only; what a host call does to
//! the machine is [`crate::sys`]'s.
//!
//! - Reading plugins: [`manifest`] (what a plugin declares), [`inspect`] (a plugin file
//!   without running it), [`shape`] (what one instance creates and costs, which sizes its
//!   store limits and pool), [`grants`] (what each plugin may use), [`registry`] (finding
//!   plugins and mapping kinds to them).
//! - Running them: [`runtime`] (the engine, the linker, the epoch ticker, loading),
//!   [`cache`] (compiled components on disk), [`store`] (what one instance's store holds,
//!   and the limits), [`pool`] (a plugin's instances and the [`Plugin`](pool::Plugin)
//!   handle), [`call`] (running validate, check-apply and cleanup), [`trap`] (why a call
//!   trapped, in words), [`serve`] and [`serving`] (the long-running watch).
//! - The contract: [`types`] is what the engine hands a plugin and gets back;
//!   [`bindings`] is the generated host side of each WIT version, with one glue file per
//!   host interface.
//!
//! A new host interface (`world`, next) is one glue file under `bindings/vX_Y/` and one
//! line in that version's `LINKED` table, plus a [`grants::Capability`] variant when it
//! must be granted.

pub mod bindings;
pub mod cache;
pub mod call;
pub mod grants;
pub mod inspect;
pub mod manifest;
pub mod pool;
pub mod registry;
pub mod runtime;
pub mod serve;
pub mod serving;
pub mod shape;
pub mod store;
pub mod trap;
pub mod types;
