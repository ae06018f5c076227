//! The wasmtime side of plugins: one `Engine`, a compiled-component cache on disk, the
//! epoch ticker, and for each plugin a small pool of instances.
//!
//! **Instances.** Calls are stateless (resource id + params on every call), so one
//! instance serves many resources of a kind. A plugin gets a pool of at most
//! [`Limits::pool_size`] instances; each lives in its own `Store`. A caller *checks out*
//! an idle instance (or creates one, while the pool is below its size; beyond it, callers
//! wait for a permit), runs its call on its own task and puts the instance back: one task
//! owns a store at a time and runs one call on it. A call that does not suspend (a file
//! check: host calls run inline) therefore costs no task switch at all; an earlier
//! version had an actor task per instance taking jobs from a queue, and the queue hop,
//! the actor's wake-up and the reply's wake-up of the caller cost more than the call
//! (~40 % of an idempotent pass at 10 000 files went to waking threads). Instances only
//! pile up while calls are suspended (waiting for a command, a flush, a unit), so
//! 10 000 file resources use a handful of instances (~55 KiB each) instead of 10 000.
//! A caller dropped in the middle of a call (its task was cancelled) discards the
//! instance instead of returning it: a store interrupted mid-call is never reused.
//!
//! **Limits.** Each call gets a CPU budget (epoch interruption: a ticker thread advances
//! the epoch every [`EPOCH_TICK`]; the store traps once the budget is spent and yields to
//! tokio at every tick meanwhile), a memory cap (`StoreLimits`) and a wall-clock timeout.
//! A trap, an exceeded limit or a timeout poisons only that instance: it is dropped and
//! rebuilt from the `InstancePre` for the next call, and the caller gets a
//! [`CallError`] naming the plugin. Nothing else is disturbed.
//!
//! **Cache.** Compiling a component takes ~100 ms; loading a precompiled one ~1 ms. The
//! cache key is the wasm's sha256 plus a hash of the engine's compatibility hash
//! (wasmtime version, config, CPU features), and artifacts are only ever produced here.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::plugin::bindings::{
    CheckOutcome, PluginError, ResourceInfo, ResourcePlugin, ResourcePluginPre, ResourceRef,
};
use crate::plugin::capabilities::fs::{ErrorCode, Footprint, FsError, FsHost};
use crate::plugin::capabilities::process::{self as pcap, ProcessError};
use crate::plugin::capabilities::systemd::{self as scap, SystemdError};
use crate::plugin::grants::{Access, Capability};
use crate::plugin::manifest::Manifest;
use crate::watch::Echo;

/// How often the epoch advances; the unit of the CPU budget.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of guest stdout/stderr kept per instance before it is recycled.
const STDERR_CAPACITY: usize = 256 * 1024;

/// Resource limits applied to every plugin instance and call.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory cap per instance.
    pub memory_bytes: usize,
    /// CPU time a single call may spend executing wasm.
    pub cpu: Duration,
    /// Wall-clock time a single call may take, host calls included.
    pub call_timeout: Duration,
    /// Maximum instances per plugin (calls beyond it wait for one).
    pub pool_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            cpu: Duration::from_secs(10),
            call_timeout: Duration::from_secs(60),
            pool_size: 64,
        }
    }
}

/// One resource's overrides of the plugin-wide [`Limits`] for its check-applies (its
/// `timeout`, `cpu` and `memory` metaparams); `None` keeps the global value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallLimits {
    /// Wall-clock time of one call.
    pub timeout: Option<Duration>,
    /// CPU time of one call.
    pub cpu: Option<Duration>,
    /// Linear memory cap of the instance serving the call.
    pub memory_bytes: Option<usize>,
}

/// Grows memory up to a cap that can change from call to call (the per-resource
/// `memory` metaparam), and remembers how large the instance's memory got, so an
/// instance grown beyond the next call's cap is replaced instead of reused.
struct Limiter {
    inner: StoreLimits,
    cap: usize,
    grown_to: usize,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            return Ok(false);
        }
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        if ok {
            self.grown_to = self.grown_to.max(desired);
        }
        Ok(ok)
    }
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }
    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

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
}

/// Why a call into a plugin failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin returned an error value: an expected failure.
    #[error("{}", .0.message)]
    Plugin(PluginError),
    /// The plugin trapped (a bug, or a limit was exceeded); its instance was discarded.
    #[error(
        "plugin `{plugin}` trapped: {message} (the instance was discarded and will be rebuilt)"
    )]
    Trap { plugin: String, message: String },
    /// The call took longer than its wall-clock timeout; its instance was discarded.
    #[error(
        "plugin `{plugin}` did not return within {}ms (the instance was discarded and will be rebuilt)",
        .after.as_millis()
    )]
    Timeout { plugin: String, after: Duration },
    /// A fresh instance could not be created.
    #[error("plugin `{plugin}` could not be instantiated: {message}")]
    Instantiate { plugin: String, message: String },
    /// The runtime is shutting down.
    #[error("plugin `{plugin}` is shut down")]
    Closed { plugin: String },
}

/// Per-store data: WASI context, limits and the context of the call in progress.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limiter,
    fs: FsHost,
    /// The plugin's effective capabilities (declared ∩ granted), checked by every host
    /// interface before it does anything.
    pub(super) access: Arc<Access>,
    /// The `state` values of the plugin's resources (shared by its instances).
    states: States,
    /// `name version` of the plugin, for log lines and errors.
    plugin: Arc<str>,
    /// The resource the current call is about and its footprint.
    pub(super) current: Option<(ResourceRef, Arc<Footprint>)>,
    /// The current resource's path watches, for `fs` to make its writes there without
    /// waking it (see [`Echo`]); empty outside a check-apply.
    own: Arc<[Arc<Echo>]>,
    /// Epoch ticks left before the current call is interrupted.
    pub(super) budget: u64,
    /// Set in the instance running a resource's `serve` call (the long-running watch).
    pub(super) serve: Option<crate::plugin::serve::ServeCtx>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// Cap the instance's memory (checked whenever it grows).
    pub(super) fn set_memory_cap(&mut self, bytes: usize) {
        self.limits.cap = bytes;
    }

    /// `kind[name]` of the resource being served, or the plugin's name between calls.
    pub(crate) fn who(&self) -> String {
        match &self.current {
            Some((r, _)) => format!("{}[{}]", r.kind, r.name),
            None => self.plugin.to_string(),
        }
    }

    /// Whether the plugin may read the kernel log; the error names what is missing.
    pub(crate) fn kmsg_access(&self) -> Result<(), String> {
        self.access
            .allowed(Capability::Kmsg)
            .map_err(|e| e.to_string())
    }

    /// The `state` value of the resource being called.
    pub(crate) fn state_get(&self) -> Option<String> {
        let (r, _) = self.current.as_ref()?;
        self.states.lock().expect("states lock").get(r).cloned()
    }

    /// Store the `state` value of the resource being called (ignored between calls). From
    /// a `serve` call, a new value wakes the resource so its check-apply can publish it.
    pub(crate) fn state_set(&self, value: String) {
        if let Some((r, _)) = &self.current {
            let old = self
                .states
                .lock()
                .expect("states lock")
                .insert(r.clone(), value.clone());
            if let Some(serve) = &self.serve
                && old.as_deref() != Some(value.as_str())
            {
                serve.wake();
            }
        }
    }

    /// The fs capability, the current resource's footprint and its path watches, if `fs`
    /// is granted.
    #[allow(clippy::type_complexity)]
    pub(crate) fn fs_access(&self) -> Result<(FsHost, Arc<Footprint>, Arc<[Arc<Echo>]>), FsError> {
        if let Err(e) = self.access.allowed(Capability::Fs) {
            return Err(FsError {
                code: ErrorCode::NotAllowed,
                message: e.to_string(),
            });
        }
        match &self.current {
            Some((_, fp)) => Ok((self.fs.clone(), fp.clone(), self.own.clone())),
            None => Err(FsError {
                code: ErrorCode::NotAllowed,
                message: "no resource is being served".to_string(),
            }),
        }
    }
}

impl HostState {
    /// The current resource's footprint, if `capability` is granted; else why not.
    fn footprint_for(&self, capability: Capability) -> Result<Arc<Footprint>, String> {
        self.access.allowed(capability).map_err(|e| e.to_string())?;
        match &self.current {
            Some((_, fp)) => Ok(fp.clone()),
            None => Err("no resource is being served".to_string()),
        }
    }

    /// The current resource's footprint, if `process` is granted.
    pub(crate) fn process_access(&self) -> Result<Arc<Footprint>, ProcessError> {
        self.footprint_for(Capability::Process)
            .map_err(|message| ProcessError {
                code: pcap::ErrorCode::NotAllowed,
                message,
            })
    }

    /// The current resource's footprint, if `systemd` is granted.
    pub(crate) fn systemd_access(&self) -> Result<Arc<Footprint>, SystemdError> {
        self.footprint_for(Capability::Systemd)
            .map_err(|message| SystemdError {
                code: scap::ErrorCode::NotAllowed,
                message,
            })
    }
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
    fs: FsHost,
    limits: Limits,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Create the engine and start the epoch ticker. `cache_dir` = where compiled
    /// components are kept (`None`: compile every time).
    pub fn new(
        cache_dir: Option<PathBuf>,
        limits: Limits,
        fs: FsHost,
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
        ResourcePlugin::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| RuntimeError::Engine(e.to_string()))?;

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
                fs,
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
        let loader: Loader = Box::new(move |plugin: &Plugin| core.pool(plugin, wasm));
        Plugin::new(manifest, sha256, origin, access, limits, Some(loader))
    }
}

impl Core {
    /// The compiled, linked component of `plugin` and its (empty) pool.
    fn pool(&self, plugin: &Plugin, wasm: &[u8]) -> Result<PoolShared, RuntimeError> {
        let manifest = &plugin.manifest;
        let origin = &plugin.origin;
        let component =
            self.component(wasm, &plugin.sha256)
                .map_err(|message| RuntimeError::Compile {
                    plugin: manifest.name.clone(),
                    origin: origin.clone(),
                    message,
                })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(ResourcePluginPre::new)
            .map_err(|e| {
                let missing = crate::plugin::inspect::missing_imports(wasm);
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
        Ok(PoolShared {
            engine: self.engine.clone(),
            pre,
            fs: self.fs.clone(),
            access: plugin.access.clone(),
            states: States::default(),
            label: plugin.label.clone(),
            permits: Semaphore::new(self.limits.pool_size.max(1)),
            limits: self.limits.clone(),
            idle: Mutex::new(Vec::new()),
            live: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The compiled component, from the on-disk cache when possible.
    fn component(&self, wasm: &[u8], sha256: &str) -> Result<Component, String> {
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, wasm).map_err(|e| format!("{e:#}"));
        };
        let mut h = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let path = dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()));
        if matches!(
            Engine::detect_precompiled_file(&path),
            Ok(Some(wasmtime::Precompiled::Component))
        ) {
            // SAFETY: files in the cache directory are only ever written by this
            // function from `precompile_component` of an engine with the same
            // compatibility hash (it is part of the name), then renamed into place.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!("ignoring unusable cached component {}: {e}", path.display())
                }
            }
        }
        let bytes = self
            .engine
            .precompile_component(wasm)
            .map_err(|e| format!("{e:#}"))?;
        if let Err(e) = write_cache_file(dir, &path, &bytes, CacheFile::Public) {
            tracing::warn!("cannot cache the compiled plugin in {}: {e}", dir.display());
        }
        // SAFETY: `bytes` was produced just now by this engine's `precompile_component`.
        unsafe { Component::deserialize(&self.engine, &bytes) }.map_err(|e| format!("{e:#}"))
    }
}

/// Who may read a file of the cache directory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheFile {
    /// Anyone (compiled plugins: nothing secret).
    Public,
    /// Only the owner, in a directory only the owner can list (cached plans hold params,
    /// which may be secrets the graph file itself protects).
    Private,
}

/// Write a file of the cache directory atomically: a temporary file renamed into place.
pub(crate) fn write_cache_file(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    who: CacheFile,
) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let (dir_mode, file_mode) = match who {
        CacheFile::Public => (0o755, 0o644),
        CacheFile::Private => (0o700, 0o600),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(dir_mode)
        .create(dir)?;
    if who == CacheFile::Private {
        // A directory made before (or by someone else's umask) is narrowed too.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(file_mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// The WIT `state` values of one plugin's resources, kept until the resource is
/// cleaned up.
pub(crate) type States = Arc<std::sync::Mutex<std::collections::HashMap<ResourceRef, String>>>;

/// The pool of one plugin, shared by its callers.
pub(super) struct PoolShared {
    engine: Engine,
    pre: ResourcePluginPre<HostState>,
    fs: FsHost,
    pub(super) access: Arc<Access>,
    pub(super) states: States,
    pub(super) label: Arc<str>,
    pub(super) limits: Limits,
    /// One permit per instance the pool may have: at most `pool_size` calls at once.
    permits: Semaphore,
    /// Instances not serving a call.
    idle: Mutex<Vec<Instance>>,
    /// Instances alive, idle or not (those of `serve` calls included).
    live: Arc<AtomicUsize>,
}

enum CallKind {
    Validate,
    CheckApply { apply: bool, refresh: bool },
    Cleanup,
}

enum Reply {
    Validate(ResourceInfo),
    CheckApply(CheckOutcome),
    Cleanup,
}

/// The `own` of a call that is not a check-apply.
fn no_echoes() -> Arc<[Arc<Echo>]> {
    static NONE: OnceLock<Arc<[Arc<Echo>]>> = OnceLock::new();
    NONE.get_or_init(|| Arc::new([])).clone()
}

/// One call into the plugin.
struct Job {
    id: ResourceRef,
    params: Arc<str>,
    footprint: Arc<Footprint>,
    /// The resource's path watches (check-apply only).
    own: Arc<[Arc<Echo>]>,
    kind: CallKind,
    timeout: Duration,
    /// CPU budget of this call.
    cpu: Duration,
    /// Memory cap of the instance during this call.
    memory_bytes: usize,
}

/// Calls per batch of [`Plugin::validate_many`] and [`Plugin::cleanup_many`]: one
/// checkout and one task per batch, small enough that a large graph's batches spread over
/// several instances (and cores), large enough that the task per batch is noise. Each
/// call of a batch keeps its own limits, footprint and error; a trap poisons the
/// instance for the calls after it only.
const BATCH: usize = 64;

/// One instance and the store that owns it.
pub(super) struct Instance {
    pub(super) store: Store<HostState>,
    pub(super) bindings: ResourcePlugin,
    stderr: MemoryOutputPipe,
    stderr_seen: usize,
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
struct Checkout<'a> {
    shared: &'a PoolShared,
    instance: Option<Instance>,
    in_call: bool,
    _permit: SemaphorePermit<'a>,
}

impl<'a> Checkout<'a> {
    async fn new(shared: &'a PoolShared) -> Checkout<'a> {
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

    async fn run(&mut self, call: &Job) -> Result<Reply, CallError> {
        self.in_call = true;
        let result = run_call(self.shared, &mut self.instance, call).await;
        self.in_call = false;
        result
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
type Loader = Box<dyn FnOnce(&Plugin) -> Result<PoolShared, RuntimeError> + Send>;

/// A loaded plugin: its manifest and the pool of instances serving its kinds.
pub struct Plugin {
    pub manifest: Manifest,
    /// Hex SHA-256 of the `.wasm`.
    pub sha256: String,
    /// Where it came from: `bundled` or a file path.
    pub origin: String,
    /// `name version`.
    label: Arc<str>,
    /// What it may use (declared ∩ granted).
    access: Arc<Access>,
    /// The runtime's limits for its calls (before per-resource overrides).
    limits: Limits,
    /// The pool, once built (at load, or at the first call of a lazily loaded plugin);
    /// why not, if building it failed.
    pool: std::sync::OnceLock<Result<Arc<PoolShared>, String>>,
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
    fn new(
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
            pool: std::sync::OnceLock::new(),
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
    pub(super) fn pool(&self) -> Result<&Arc<PoolShared>, CallError> {
        self.pool
            .get_or_init(|| {
                let loader = self
                    .loader
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                match loader {
                    Some(load) => load(self).map(Arc::new).map_err(|e| e.to_string()),
                    None => Err("it was not loaded".to_string()),
                }
            })
            .as_ref()
            .map_err(|message| CallError::Instantiate {
                plugin: self.label.to_string(),
                message: message.clone(),
            })
    }

    /// [`Plugin::validate`] for many resources, in batches spread over the pool;
    /// results in the order of `resources`.
    pub async fn validate_many(
        &self,
        resources: Vec<(ResourceRef, Arc<str>)>,
    ) -> Vec<Result<ResourceInfo, CallError>> {
        let calls = resources
            .into_iter()
            .map(|(id, params)| {
                self.call(
                    id,
                    params,
                    Arc::new(Footprint::default()),
                    CallKind::Validate,
                    CallLimits::default(),
                )
            })
            .collect();
        self.submit_many(calls)
            .await
            .into_iter()
            .map(|r| match r {
                Ok(Reply::Validate(info)) => Ok(info),
                Ok(_) => unreachable!("validate answered with another call's reply"),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// [`Plugin::cleanup`] for many resources, in batches spread over the pool;
    /// results in the order of `resources`.
    pub async fn cleanup_many(
        &self,
        resources: Vec<(ResourceRef, Arc<str>, Arc<Footprint>)>,
    ) -> Vec<Result<(), CallError>> {
        let mut results: Vec<Result<(), CallError>> = resources.iter().map(|_| Ok(())).collect();
        let mut calls = Vec::new();
        let mut called = Vec::new();
        for (i, (id, params, footprint)) in resources.into_iter().enumerate() {
            if self.has_cleanup(&id.kind) {
                called.push(i);
                calls.push(self.call(
                    id,
                    params,
                    footprint,
                    CallKind::Cleanup,
                    CallLimits::default(),
                ));
            } else {
                self.forget(&id);
            }
        }
        for (i, result) in called.into_iter().zip(self.submit_many(calls).await) {
            results[i] = result.map(|_| ());
        }
        results
    }

    /// Validate params and learn the resource's footprint, watches and dependencies.
    pub async fn validate(
        &self,
        id: &ResourceRef,
        params: Arc<str>,
    ) -> Result<ResourceInfo, CallError> {
        match self
            .submit(
                id,
                params,
                Arc::new(Footprint::default()),
                CallKind::Validate,
                CallLimits::default(),
            )
            .await?
        {
            Reply::Validate(info) => Ok(info),
            _ => unreachable!("validate answered with another call's reply"),
        }
    }

    /// Check (and with `apply`, repair) one resource within its footprint. `own` are the
    /// resource's path watches: its writes to those paths do not wake it again.
    #[allow(clippy::too_many_arguments)]
    pub async fn check_apply(
        &self,
        id: &ResourceRef,
        params: Arc<str>,
        footprint: Arc<Footprint>,
        apply: bool,
        refresh: bool,
        limits: CallLimits,
        own: Arc<[Arc<Echo>]>,
    ) -> Result<CheckOutcome, CallError> {
        let mut call = self.call(
            id.clone(),
            params,
            footprint,
            CallKind::CheckApply { apply, refresh },
            limits,
        );
        call.own = own;
        match self.run_one(call).await? {
            Reply::CheckApply(out) => Ok(out),
            _ => unreachable!("check-apply answered with another call's reply"),
        }
    }

    /// Whether the kind of `id` has a `cleanup` that does something (its manifest can
    /// say it does not; then the call is skipped).
    /// Whether `kind`'s cleanup does anything (its manifest says so); when not, the host
    /// skips the call and only [`forget`](Self::forget)s the resource.
    pub fn has_cleanup(&self, kind: &str) -> bool {
        self.manifest.kinds.get(kind).is_none_or(|k| k.cleanup)
    }

    /// What a skipped cleanup still does on the host side: drop the `state` value.
    pub fn forget(&self, id: &ResourceRef) {
        if let Some(Ok(pool)) = self.pool.get() {
            pool.states.lock().expect("states lock").remove(id);
        }
    }

    /// Tell the plugin a resource is leaving the graph.
    pub async fn cleanup(
        &self,
        id: &ResourceRef,
        params: Arc<str>,
        footprint: Arc<Footprint>,
    ) -> Result<(), CallError> {
        if !self.has_cleanup(&id.kind) {
            self.forget(id);
            return Ok(());
        }
        self.submit(
            id,
            params,
            footprint,
            CallKind::Cleanup,
            CallLimits::default(),
        )
        .await
        .map(|_| ())
    }

    fn call(
        &self,
        id: ResourceRef,
        params: Arc<str>,
        footprint: Arc<Footprint>,
        kind: CallKind,
        over: CallLimits,
    ) -> Job {
        let global = &self.limits;
        Job {
            id,
            params,
            footprint,
            own: no_echoes(),
            kind,
            timeout: over.timeout.unwrap_or(global.call_timeout),
            cpu: over.cpu.unwrap_or(global.cpu),
            memory_bytes: over.memory_bytes.unwrap_or(global.memory_bytes),
        }
    }

    fn closed(&self) -> CallError {
        CallError::Closed {
            plugin: self.label.to_string(),
        }
    }

    async fn submit(
        &self,
        id: &ResourceRef,
        params: Arc<str>,
        footprint: Arc<Footprint>,
        kind: CallKind,
        over: CallLimits,
    ) -> Result<Reply, CallError> {
        self.run_one(self.call(id.clone(), params, footprint, kind, over))
            .await
    }

    /// Runs one call on an instance checked out of the pool.
    async fn run_one(&self, call: Job) -> Result<Reply, CallError> {
        let pool = self.pool()?;
        // Boxed: the checkout, the wasm call on its fiber and its timeout make a future of
        // ~1.5 KiB, which would otherwise sit inline in every caller's task (each of 10 000
        // vertex tasks) although only a call in flight needs it.
        Box::pin(async move { Checkout::new(pool).await.run(&call).await }).await
    }

    /// Runs `calls` in batches, each batch on one checked-out instance in a task of its own
    /// (so a large graph's batches run on several instances and cores), and collects their
    /// results in order.
    async fn submit_many(&self, calls: Vec<Job>) -> Vec<Result<Reply, CallError>> {
        let n = calls.len();
        let pool = match self.pool() {
            Ok(pool) => pool,
            Err(e) => return (0..n).map(|_| Err(e.clone())).collect(),
        };
        let mut tasks = Vec::with_capacity(n.div_ceil(BATCH));
        // Taken from the front by one iterator: splitting the rest off the vector batch
        // after batch copied it each time (quadratic: ~80 MB of copies and page faults
        // at 10 000 resources, a third of planning).
        let mut calls = calls.into_iter();
        loop {
            let batch: Vec<Job> = calls.by_ref().take(BATCH).collect();
            if batch.is_empty() {
                break;
            }
            let len = batch.len();
            let shared = Arc::clone(pool);
            let task = tokio::spawn(async move {
                let mut slot = Checkout::new(&shared).await;
                let mut results = Vec::with_capacity(batch.len());
                for call in &batch {
                    results.push(slot.run(call).await);
                }
                results
            });
            tasks.push((len, task));
        }
        let mut out = Vec::with_capacity(n);
        for (len, task) in tasks {
            match task.await {
                Ok(results) => out.extend(results),
                Err(_) => out.extend((0..len).map(|_| Err(self.closed()))),
            }
        }
        out
    }
}

/// Run one call on a checked-out instance, creating (or replacing) the instance first
/// when needed and discarding it when the call poisoned it.
async fn run_call(
    shared: &PoolShared,
    instance: &mut Option<Instance>,
    call: &Job,
) -> Result<Reply, CallError> {
    // An instance whose memory grew beyond this call's cap (another resource with a
    // larger one used it) is replaced, so every call starts within its own cap.
    if instance
        .as_ref()
        .is_some_and(|i| i.store.data().limits.grown_to > call.memory_bytes)
    {
        *instance = None;
    }
    if instance.is_none() {
        match instantiate(shared).await {
            Ok(i) => *instance = Some(i),
            Err(message) => {
                return Err(CallError::Instantiate {
                    plugin: shared.label.to_string(),
                    message,
                });
            }
        }
    }
    let inst = instance.as_mut().expect("instance was just created");
    let (result, poisoned) = run_job(shared, inst, call).await;
    // A trapped instance's output is already part of the error; drop the instance.
    if poisoned {
        *instance = None;
    } else {
        drain_stderr(shared, inst);
        if inst.stderr_seen > STDERR_CAPACITY / 2 {
            *instance = None;
        }
    }
    result
}

pub(super) async fn instantiate(shared: &PoolShared) -> Result<Instance, String> {
    let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
    // Deny by default: no preopens, no env, no args, no network; output is captured.
    let wasi = WasiCtxBuilder::new()
        .stdout(stderr.clone())
        .stderr(stderr.clone())
        .build();
    let limits = Limiter {
        inner: StoreLimitsBuilder::new()
            .instances(16)
            .tables(16)
            .memories(4)
            .build(),
        cap: shared.limits.memory_bytes,
        grown_to: 0,
    };
    let state = HostState {
        wasi,
        table: ResourceTable::new(),
        limits,
        fs: shared.fs.clone(),
        access: shared.access.clone(),
        states: shared.states.clone(),
        plugin: shared.label.clone(),
        current: None,
        own: no_echoes(),
        budget: u64::MAX,
        serve: None,
    };
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
    let bindings = shared
        .pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| format!("{e:#}"))?;
    Ok(Instance {
        store,
        bindings,
        stderr,
        stderr_seen: 0,
        _live: LiveCount::new(&shared.live),
    })
}

/// Run one job; returns the result and whether the instance must be discarded.
async fn run_job(
    shared: &PoolShared,
    inst: &mut Instance,
    job: &Job,
) -> (Result<Reply, CallError>, bool) {
    let ticks = (job.cpu.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
    {
        let data = inst.store.data_mut();
        data.limits.cap = job.memory_bytes;
        data.current = Some((job.id.clone(), job.footprint.clone()));
        data.own = job.own.clone();
        data.budget = ticks;
    }
    inst.store.set_epoch_deadline(1);
    let wid = (&job.id).into();
    let api = inst.bindings.homeostat_resource_plugin();
    let store = &mut inst.store;
    let call = async {
        match job.kind {
            CallKind::Validate => {
                api.call_validate(&mut *store, &wid, &job.params)
                    .await
                    .map(|r| {
                        r.map_err(PluginError::from)
                            .and_then(ResourceInfo::try_from)
                            .map(Reply::Validate)
                    })
            }
            CallKind::CheckApply { apply, refresh } => api
                .call_check_apply(&mut *store, &wid, &job.params, apply, refresh)
                .await
                .map(|r| {
                    r.map(|o| Reply::CheckApply(o.into()))
                        .map_err(PluginError::from)
                }),
            CallKind::Cleanup => api
                .call_cleanup(&mut *store, &wid, &job.params)
                .await
                .map(|r| r.map(|()| Reply::Cleanup).map_err(PluginError::from)),
        }
    };
    let outcome = tokio::time::timeout(job.timeout, call).await;
    inst.store.data_mut().current = None;
    inst.store.data_mut().own = no_echoes();
    if matches!(job.kind, CallKind::Cleanup) {
        // The resource leaves the graph: its `state` goes with it.
        shared.states.lock().expect("states lock").remove(&job.id);
    }
    let plugin = shared.label.to_string();
    match outcome {
        Ok(Ok(Ok(reply))) => (Ok(reply), false),
        Ok(Ok(Err(e))) => (Err(CallError::Plugin(e)), false),
        Ok(Err(trap)) => {
            let message = describe_trap(shared, &trap, inst, job.cpu, job.memory_bytes);
            (Err(CallError::Trap { plugin, message }), true)
        }
        Err(_) => (
            Err(CallError::Timeout {
                plugin,
                after: job.timeout,
            }),
            true,
        ),
    }
}

/// A trap message a user can act on: which limit, or where and why the plugin
/// panicked. The wasm backtrace goes to the debug log.
pub(super) fn describe_trap(
    shared: &PoolShared,
    err: &wasmtime::Error,
    inst: &Instance,
    cpu: Duration,
    memory_bytes: usize,
) -> String {
    tracing::debug!(target: "homeostat::plugin", "{} trapped: {err:?}", shared.label);
    let trap = err.downcast_ref::<wasmtime::Trap>();
    if let Some(wasmtime::Trap::Interrupt) = trap {
        return format!(
            "it used more than its CPU budget of {}ms in one call (an endless loop? see --plugin-cpu and the `cpu` metaparam)",
            cpu.as_millis()
        );
    }
    let out = inst.stderr.contents();
    let output = String::from_utf8_lossy(&out[inst.stderr_seen.min(out.len())..]).into_owned();
    if output.contains("memory allocation") || trap == Some(&wasmtime::Trap::AllocationTooLarge) {
        return format!(
            "it ran out of memory (capped at {} MiB per instance; see --plugin-memory and \
             the `memory` metaparam)",
            memory_bytes >> 20
        );
    }
    if let Some(panic) = panic_message(&output) {
        return format!("it panicked at {panic}");
    }
    let base = match trap {
        Some(t) => t.to_string(),
        None => err
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let tail: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    if tail.is_empty() {
        base
    } else {
        format!(
            "{base}; plugin output: {}",
            tail[tail.len().saturating_sub(5)..].join(" | ")
        )
    }
}

/// `FILE:LINE:COL: MESSAGE` from Rust's panic output
/// (`thread '<unnamed>' panicked at FILE:LINE:COL:` followed by the message lines).
fn panic_message(output: &str) -> Option<String> {
    let mut lines = output.lines().skip_while(|l| !l.contains(" panicked at "));
    let head = lines.next()?;
    let at = head.split(" panicked at ").nth(1)?.trim_end_matches(':');
    let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note: ")).collect();
    Some(format!("{at}: {}", message.join(" ").trim()))
}

/// Forward what the guest printed since the last call to the log.
pub(super) fn drain_stderr(shared: &PoolShared, inst: &mut Instance) {
    let out = inst.stderr.contents();
    if out.len() > inst.stderr_seen {
        let text = String::from_utf8_lossy(&out[inst.stderr_seen..]);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            tracing::warn!(target: "homeostat::plugin", "{} printed: {line}", shared.label);
        }
        inst.stderr_seen = out.len();
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_output_becomes_one_line() {
        let out = "thread '<unnamed>' (1) panicked at src/lib.rs:46:28:\nboom: it broke\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(out).as_deref(),
            Some("src/lib.rs:46:28: boom: it broke")
        );
        assert_eq!(panic_message("just output\n"), None);
    }
}
