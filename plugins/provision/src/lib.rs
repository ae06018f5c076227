//! The bundled `provision` resource (work in progress).

pub mod files;
pub mod tftp;

#[cfg(test)]
mod testutil;
