//! The compiled-component cache: compiling a component takes ~100 ms, loading a
//! precompiled one ~1 ms. The key is the wasm's sha256 plus a hash of the engine's
//! compatibility hash (wasmtime version, config, CPU features); artifacts are only ever
//! produced here, on the host that runs them (never shipped).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::sys::fs::cache_file::{CacheFile, write_cache_file};

/// The compiled component, from the on-disk cache when possible.
pub(crate) fn component(
    engine: &Engine,
    cache_dir: Option<&Path>,
    wasm: &[u8],
    sha256: &str,
) -> Result<Component, String> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, wasm).map_err(|e| format!("{e:#}"));
    };
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let path = dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()));
    if matches!(
        Engine::detect_precompiled_file(&path),
        Ok(Some(wasmtime::Precompiled::Component))
    ) {
        // SAFETY: files in the cache directory are only ever written by this
        // function from `precompile_component` of an engine with the same
        // compatibility hash (it is part of the name), then renamed into place.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!("ignoring unusable cached component {}: {e}", path.display())
            }
        }
    }
    let bytes = engine
        .precompile_component(wasm)
        .map_err(|e| format!("{e:#}"))?;
    if let Err(e) = write_cache_file(dir, &path, &bytes, CacheFile::Public) {
        tracing::warn!("cannot cache the compiled plugin in {}: {e}", dir.display());
    }
    // SAFETY: `bytes` was produced just now by this engine's `precompile_component`.
    unsafe { Component::deserialize(engine, &bytes) }.map_err(|e| format!("{e:#}"))
}
