//! The wasmtime side of plugins as a whole: one `Engine` (configured once), the `Linker`
//! with WASI and every host interface of every supported WIT version, the epoch ticker
//! that drives CPU budgets, and loading a plugin: compiling it (through the
//! [`crate::plugin::cache`]), linking it, and giving it a pool
//! ([`crate::plugin::pool`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

use crate::plugin::bindings::{self, Pre};
use crate::plugin::grants::Access;
use crate::plugin::manifest::Manifest;
use crate::plugin::pool::{Loader, Plugin, PoolShared};
use crate::plugin::shape::Shape;
use crate::plugin::store::{EPOCH_TICK, HostState, Limits};
use crate::plugin::{cache, inspect};
use crate::sys::Services;

/// Why a plugin or the runtime could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("plugin `{plugin}` ({origin}) cannot be compiled: {message}")]
    Compile {
        plugin: String,
        origin: String,
        message: String,
    },
    #[error(
        "plugin `{plugin}` ({origin}) cannot be linked: {message}, which this homeostat does \
         not provide (`homeostat plugin inspect` lists its imports; rebuild it against the \
         homeostat-sdk of this version)"
    )]
    Link {
        plugin: String,
        origin: String,
        message: String,
    },
    #[error("plugin `{plugin}` ({origin}) cannot be used: {message}")]
    Shape {
        plugin: String,
        origin: String,
        message: String,
    },
}

/// Runs plugin code: owns the engine, the linker, the cache and the epoch ticker.
pub struct Runtime {
    core: Arc<Core>,
    ticker_stop: Arc<AtomicBool>,
}

/// What building a plugin's pool needs; shared with the plugins linked on first use.
struct Core {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    /// What the plugins' host interfaces reach.
    sys: Services,
    limits: Limits,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Create the engine and start the epoch ticker. `cache_dir` = where compiled
    /// components are kept (`None`: compile every time); `sys` = the OS services the
    /// plugins' host interfaces reach.
    pub fn new(
        cache_dir: Option<PathBuf>,
        limits: Limits,
        sys: Services,
    ) -> Result<Runtime, RuntimeError> {
        let mut config = Config::new();
        // Plugins are plain WASI p2 components: the component-model async ABI would
        // triple the cost of every call (measured 1.5 µs vs 0.5 µs).
        config.concurrency_support(false);
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        bindings::add_to_linker(&mut linker).map_err(|e| RuntimeError::Engine(e.to_string()))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("homeostat-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        }
        Ok(Runtime {
            core: Arc::new(Core {
                engine,
                linker,
                cache_dir,
                sys,
                limits,
            }),
            ticker_stop,
        })
    }

    /// The limits every instance runs under.
    pub fn limits(&self) -> &Limits {
        &self.core.limits
    }

    /// Compile (or load from the cache) and link a plugin whose manifest was read;
    /// `sha256` is the hex SHA-256 of `wasm` (the cache key).
    pub fn load(
        &self,
        manifest: Manifest,
        wasm: &[u8],
        sha256: &str,
        origin: String,
        access: Access,
    ) -> Result<Plugin, RuntimeError> {
        let limits = self.core.limits.clone();
        let plugin = Plugin::new(manifest, sha256, origin, access, limits, None);
        let pool = self.core.pool(&plugin, wasm)?;
        let _ = plugin.pool.set(Ok(Arc::new(pool)));
        Ok(plugin)
    }

    /// [`Runtime::load`] deferred to the plugin's first call: for the bundled plugins,
    /// which were linked against this very host when it was built, so linking cannot
    /// fail, and a graph that uses one kind pays for one plugin (loading all five took
    /// ~5 ms, a quarter of a 100-file run).
    pub fn load_lazily(
        &self,
        manifest: Manifest,
        wasm: &'static [u8],
        sha256: &str,
        origin: String,
        access: Access,
    ) -> Plugin {
        let core = Arc::clone(&self.core);
        let limits = core.limits.clone();
        let loader: Loader =
            Box::new(move |plugin: &Plugin| core.pool(plugin, wasm).map_err(|e| e.to_string()));
        Plugin::new(manifest, sha256, origin, access, limits, Some(loader))
    }
}

impl Core {
    /// The compiled, linked component of `plugin` and its (empty) pool.
    fn pool(&self, plugin: &Plugin, wasm: &[u8]) -> Result<PoolShared, RuntimeError> {
        let manifest = &plugin.manifest;
        let origin = &plugin.origin;
        let shape_error = |message: String| RuntimeError::Shape {
            plugin: manifest.name.clone(),
            origin: origin.clone(),
            message,
        };
        let shape = Shape::of(wasm).map_err(|e| shape_error(e.to_string()))?;
        if let Some(why) = shape.refused() {
            return Err(shape_error(why));
        }
        let component = cache::component(
            &self.engine,
            self.cache_dir.as_deref(),
            wasm,
            &plugin.sha256,
        )
        .map_err(|message| RuntimeError::Compile {
            plugin: manifest.name.clone(),
            origin: origin.clone(),
            message,
        })?;
        let pre = Pre::new(&self.linker, &component).map_err(|e| {
            let missing = inspect::missing_imports(wasm);
            RuntimeError::Link {
                plugin: manifest.name.clone(),
                origin: origin.clone(),
                message: if missing.is_empty() {
                    e.to_string()
                } else {
                    format!("it imports `{}`", missing.join("`, `"))
                },
            }
        })?;
        Ok(PoolShared::new(
            self.engine.clone(),
            pre,
            self.sys.clone(),
            plugin,
            shape,
        ))
    }
}
