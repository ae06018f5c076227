//! A plugin's pool of instances, and the [`Plugin`] handle the engine holds.
//!
//! Calls are stateless (resource id + params on every call), so one instance serves many
//! resources of a kind. A plugin gets a pool of at most [`Limits::pool_size`] instances;
//! each lives in its own `Store`. A caller *checks out* an idle instance (or creates one,
//! while the pool is below its size; beyond it, callers wait for a permit), runs its call
//! on its own task and puts the instance back: one task owns a store at a time and runs
//! one call on it. A call that does not suspend (a file check: host calls run inline)
//! therefore costs no task switch at all; an earlier version had an actor task per
//! instance taking jobs from a queue, and the queue hop, the actor's wake-up and the
//! reply's wake-up of the caller cost more than the call (~40 % of an idempotent pass at
//! 10 000 files went to waking threads). Instances only pile up while calls are suspended
//! (waiting for a command, a flush, a unit), so 10 000 file resources use a handful of
//! instances (~55 KiB each) instead of 10 000. A caller dropped in the middle of a call
//! (its task was cancelled) discards the instance instead of returning it: a store
//! interrupted mid-call is never reused (see [`crate::plugin::call`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::plugin::bindings::{Guest, Pre};
use crate::plugin::grants::Access;
use crate::plugin::manifest::Manifest;
use crate::plugin::shape::Shape;
use crate::plugin::store::{HostState, Limits};
use crate::plugin::types::CallError;
use crate::sys::Services;

/// Bytes of guest stdout/stderr kept per instance before it is recycled.
pub(crate) const STDERR_CAPACITY: usize = 256 * 1024;

/// The pool of one plugin, shared by its callers.
pub(crate) struct PoolShared {
    pub(crate) engine: Engine,
    /// The component, linked and ready to instantiate.
    pub(crate) pre: Pre,
    /// What the instances' host interfaces reach.
    pub(crate) sys: Services,
    pub(crate) access: Arc<Access>,
    /// `name version`.
    pub(crate) label: Arc<str>,
    pub(crate) limits: Limits,
    /// One permit per instance the pool may have: at most `pool_size` calls at once.
    pub(crate) permits: Semaphore,
    /// What one instance creates and asks for (see `shape`): its store's limits.
    pub(crate) shape: Shape,
    /// Instances not serving a call.
    pub(crate) idle: Mutex<Vec<Instance>>,
    /// Instances alive, idle or not (those of `serve` calls included).
    pub(crate) live: Arc<AtomicUsize>,
}

impl PoolShared {
    /// An empty pool of `plugin`'s component `pre`, whose instances reach `sys`.
    /// The pool holds at most the instances [`Shape::pool_size`] says.
    pub(crate) fn new(
        engine: Engine,
        pre: Pre,
        sys: Services,
        plugin: &Plugin,
        shape: Shape,
    ) -> PoolShared {
        let size = shape.pool_size(plugin.limits.pool_size, plugin.access.pool());
        tracing::debug!(
            "plugin `{}`: pool of {size} instances ({} core instances and {} KiB of memory \
             at start each)",
            plugin.label,
            shape.core_instances,
            shape.memory_bytes >> 10
        );
        PoolShared {
            engine,
            pre,
            sys,
            access: plugin.access.clone(),
            label: plugin.label.clone(),
            permits: Semaphore::new(size),
            shape,
            limits: plugin.limits.clone(),
            idle: Mutex::new(Vec::new()),
            live: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// One instance and the store that owns it.
pub(crate) struct Instance {
    pub(crate) store: Store<HostState>,
    /// The component's exports, in its WIT version.
    pub(crate) guest: Guest,
    /// What the guest printed (kept up to [`STDERR_CAPACITY`]).
    pub(crate) stderr: MemoryOutputPipe,
    /// How much of `stderr` went to the log already.
    pub(crate) stderr_seen: usize,
    _live: LiveCount,
}

/// Counts an instance in [`PoolShared::live`] while it exists.
struct LiveCount(Arc<AtomicUsize>);

impl LiveCount {
    fn new(live: &Arc<AtomicUsize>) -> LiveCount {
        live.fetch_add(1, Ordering::Relaxed);
        LiveCount(Arc::clone(live))
    }
}

impl Drop for LiveCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An instance checked out of the pool (or the right to create one) for the calls of one
/// caller. Dropping it puts the instance back, unless a call was in progress: the caller
/// was cancelled mid-call, and that store is discarded.
pub(crate) struct Checkout<'a> {
    pub(crate) shared: &'a PoolShared,
    pub(crate) instance: Option<Instance>,
    /// A call is running on `instance`: if the checkout is dropped now, the call was
    /// cancelled and the instance is discarded.
    pub(crate) in_call: bool,
    _permit: SemaphorePermit<'a>,
}

impl<'a> Checkout<'a> {
    pub(crate) async fn new(shared: &'a PoolShared) -> Checkout<'a> {
        let permit = shared
            .permits
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let instance = shared
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        Checkout {
            shared,
            instance,
            in_call: false,
            _permit: permit,
        }
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take()
            && !self.in_call
        {
            self.shared
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(instance);
        }
    }
}

/// Builds a plugin's pool on its first call.
/// Its error is why the plugin cannot run, for every call.
pub(crate) type Loader = Box<dyn FnOnce(&Plugin) -> Result<PoolShared, String> + Send>;

/// A loaded plugin: its manifest and the pool of instances serving its kinds.
pub struct Plugin {
    /// What it declares (name, version, kinds, capabilities).
    pub manifest: Manifest,
    /// Hex SHA-256 of the `.wasm`.
    pub sha256: String,
    /// Where it came from: `bundled` or a file path.
    pub origin: String,
    /// `name version`.
    pub(crate) label: Arc<str>,
    /// What it may use (declared ∩ granted).
    access: Arc<Access>,
    /// The runtime's limits for its calls (before per-resource overrides).
    pub(crate) limits: Limits,
    /// The pool, once built (at load, or at the first call of a lazily loaded plugin);
    /// why not, if building it failed.
    pub(crate) pool: OnceLock<Result<Arc<PoolShared>, String>>,
    /// Builds the pool at the first call (lazily loaded plugins).
    loader: Mutex<Option<Loader>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.manifest.name)
            .field("origin", &self.origin)
            .finish()
    }
}

impl Plugin {
    pub(crate) fn new(
        manifest: Manifest,
        sha256: &str,
        origin: String,
        access: Access,
        limits: Limits,
        loader: Option<Loader>,
    ) -> Plugin {
        Plugin {
            limits,
            label: format!("{} {}", manifest.name, manifest.version).into(),
            manifest,
            sha256: sha256.to_owned(),
            origin,
            access: Arc::new(access),
            pool: OnceLock::new(),
            loader: Mutex::new(loader),
        }
    }

    /// `name version`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// What the plugin may use (declared ∩ granted).
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Instances currently alive (for diagnostics and benchmarks).
    pub fn instances(&self) -> usize {
        match self.pool.get() {
            Some(Ok(pool)) => pool.live.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// The pool, built now if this is the first call of a lazily loaded plugin.
    pub(crate) fn pool(&self) -> Result<&Arc<PoolShared>, CallError> {
        self.pool
            .get_or_init(|| {
                let loader = self
                    .loader
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                match loader {
                    Some(load) => load(self).map(Arc::new),
                    None => Err("it was not loaded".to_string()),
                }
            })
            .as_ref()
            .map_err(|message| CallError::Instantiate {
                plugin: self.label.to_string(),
                message: message.clone(),
            })
    }
}

/// A fresh instance of the pool's component, between calls.
pub(crate) async fn instantiate(shared: &PoolShared) -> Result<Instance, String> {
    let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
    // Deny by default: no preopens, no env, no args, no network; output is captured.
    let wasi = WasiCtxBuilder::new()
        .stdout(stderr.clone())
        .stderr(stderr.clone())
        .build();
    let state = HostState::new(
        wasi,
        shared.limits.memory_bytes,
        shared.shape.store_limits(),
        shared.sys.clone(),
        shared.access.clone(),
        shared.label.clone(),
    );
    let mut store = Store::new(&shared.engine, state);
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut cx| {
        let s = cx.data_mut();
        if s.budget == 0 {
            return Ok(UpdateDeadline::Interrupt);
        }
        s.budget -= 1;
        Ok(UpdateDeadline::Yield(1))
    });
    let guest = shared
        .pre
        .instantiate(&mut store)
        .await
        .map_err(|e| format!("{e:#}"))?;
    Ok(Instance {
        store,
        guest,
        stderr,
        stderr_seen: 0,
        _live: LiveCount::new(&shared.live),
    })
}
