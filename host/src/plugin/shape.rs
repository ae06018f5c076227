//! What one instance of a plugin takes, read from its component's binary without running
//! it: how many core instances instantiating it creates (wasmtime's per-store instance
//! limit must allow them all), and the linear memory its core modules ask for at start
//! (the least each instance costs). The host sizes each plugin's instance cap and pool
//! from them.
//!
//! A component's instances are fixed by its structure (the component model has no
//! dynamic instantiation), so the cap is exactly what the component declares, refused
//! above [`MAX_CORE_INSTANCES`]. A Rust plugin built with the SDK creates 5; a default
//! `componentize-py` build 14, its `--stub-wasi` build 17. Memory decides the pool: a
//! Python component starts with megabytes of linear memory per instance where a Rust one
//! starts with about one, so the same pool of 64 would cost hundreds of MiB. The pool
//! gets as many instances as fit in [`POOL_MEMORY_BUDGET`] (at least [`MIN_POOL`], at
//! most `--plugin-pool`); a grant's `pool = N` sets it instead.

use super::manifest::ManifestError;

/// Core instances one plugin instance may create; a component that needs more is
/// refused when loaded.
pub const MAX_CORE_INSTANCES: usize = 256;

/// The per-store instance limit never goes below this (what every plugin got before it
/// was computed per component).
const MIN_INSTANCE_CAP: usize = 16;

/// Linear memory, at start, that a plugin's pool may reach with its own size.
pub const POOL_MEMORY_BUDGET: u64 = 128 << 20;

/// The smallest pool sized from memory (calls of one plugin still overlap).
pub const MIN_POOL: usize = 2;

/// The largest pool (`--plugin-pool`, a grant's `pool`): 1024 instances at the default
/// 64 MiB memory cap could reach 64 GiB.
pub const MAX_POOL: usize = 1024;

/// What instantiating a component creates and asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Shape {
    /// Core module instances, nested components included.
    pub core_instances: usize,
    /// Linear memories, tables of its core modules.
    pub memories: usize,
    pub tables: usize,
    /// The initial size of every defined linear memory, summed, in bytes.
    pub memory_bytes: u64,
}

impl Shape {
    /// The shape of `wasm` (a component or a module).
    pub fn of(wasm: &[u8]) -> Result<Shape, ManifestError> {
        let invalid = |e: wasmparser::BinaryReaderError| ManifestError::Invalid(e.to_string());
        let mut s = Shape::default();
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            match payload.map_err(invalid)? {
                // Only instantiations count: an instance made of exports creates nothing.
                wasmparser::Payload::InstanceSection(r) => {
                    for i in r {
                        if let wasmparser::Instance::Instantiate { .. } = i.map_err(invalid)? {
                            s.core_instances += 1;
                        }
                    }
                }
                wasmparser::Payload::MemorySection(r) => {
                    for m in r {
                        let m = m.map_err(invalid)?;
                        let page = 1u64 << m.page_size_log2.unwrap_or(16);
                        s.memories += 1;
                        s.memory_bytes = s
                            .memory_bytes
                            .saturating_add(m.initial.saturating_mul(page));
                    }
                }
                wasmparser::Payload::TableSection(r) => s.tables += r.count() as usize,
                _ => {}
            }
        }
        Ok(s)
    }

    /// Why a component of this shape is refused, if it is.
    pub fn refused(&self) -> Option<String> {
        (self.core_instances > MAX_CORE_INSTANCES).then(|| {
            format!(
                "instantiating it creates {} core instances, more than the {MAX_CORE_INSTANCES} \
                 a plugin may",
                self.core_instances
            )
        })
    }

    /// The per-store limits for one instance: (instances, tables, memories).
    pub fn store_limits(&self) -> (usize, usize, usize) {
        (
            self.core_instances.max(MIN_INSTANCE_CAP),
            self.tables.max(MIN_INSTANCE_CAP),
            self.memories.max(4),
        )
    }

    /// The pool's size: `granted` when the grant sets one, else as many instances as
    /// their initial memory fits in [`POOL_MEMORY_BUDGET`], between [`MIN_POOL`] and
    /// `most` (`--plugin-pool`).
    pub fn pool_size(&self, most: usize, granted: Option<usize>) -> usize {
        if let Some(n) = granted {
            return n.max(1);
        }
        let each = self.memory_bytes.max(1 << 20);
        let fits = usize::try_from(POOL_MEMORY_BUDGET / each).unwrap_or(usize::MAX);
        fits.clamp(MIN_POOL.min(most.max(1)), most.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundled_plugin_is_small_and_gets_the_whole_pool() {
        let wasm = crate::plugin::registry::bundled("file").expect("bundled file");
        let s = Shape::of(wasm).expect("parses");
        assert!((1..=16).contains(&s.core_instances), "{s:?}");
        assert!(s.memories >= 1 && s.memory_bytes >= 64 << 10, "{s:?}");
        assert_eq!(s.store_limits().0, 16);
        assert_eq!(s.pool_size(64, None), 64);
        assert!(s.refused().is_none());
    }

    #[test]
    fn memory_sizes_the_pool_and_a_grant_overrides_it() {
        let python = Shape {
            core_instances: 17,
            memories: 3,
            tables: 4,
            memory_bytes: 20 << 20,
        };
        assert_eq!(python.store_limits(), (17, 16, 4));
        assert_eq!(python.pool_size(64, None), 6);
        assert_eq!(python.pool_size(4, None), 4);
        assert_eq!(python.pool_size(64, Some(3)), 3);
        let huge = Shape {
            memory_bytes: 1 << 30,
            ..python
        };
        assert_eq!(huge.pool_size(64, None), MIN_POOL);
        assert_eq!(huge.pool_size(1, None), 1);
        let many = Shape {
            core_instances: 300,
            ..python
        };
        assert!(many.refused().unwrap().contains("300 core instances"));
    }
}
