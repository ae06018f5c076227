//! Host interfaces offered to plugins, one module per interface. `log` needs no module
//! (it is always granted and implemented in `bindings`); `fs` is scoped to the calling
//! resource's footprint.

pub mod fs;
