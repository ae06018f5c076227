//! Host interfaces offered to plugins, one module per interface. `log` needs no module
//! (it is always granted and implemented in `bindings`); `fs`, `process`, `systemd` and `net`
//! are scoped to the calling resource's footprint (its paths, command lines, units and
//! sockets).

pub mod fs;
pub mod net;
pub mod process;
pub mod systemd;
