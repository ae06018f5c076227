//! The bundled `provision` resource (work in progress).

pub mod files;
pub mod http;
pub mod tftp;

#[cfg(test)]
mod testutil;
