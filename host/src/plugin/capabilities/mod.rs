//! Host interfaces offered to plugins, one module per interface. `log` needs no module
//! (it is always granted and implemented in `bindings`); `fs`, `process` and `systemd` are
//! scoped to the calling resource's footprint (its paths, command lines and units).

pub mod fs;
pub mod process;
pub mod systemd;
