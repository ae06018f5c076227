//! What one instance's `Store` holds ([`HostState`]) and the limits it runs under: the WASI
//! context (which grants nothing), the memory limiter, the CPU budget of the call in
//! progress, the resource that call is about, and the handles to the OS services its host
//! interfaces reach.
//!
//! Every host interface asks `HostState::granted` first: it says whether the plugin may
//! use that capability (declared ∩ granted, see [`crate::plugin::grants`]) and hands back
//! the footprint of the resource being called, which the OS service then enforces.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::plugin::grants::{Access, CapError, Capability};
use crate::plugin::serving::{Event, ServeCtx};
use crate::plugin::types::ResourceRef;
use crate::sys::Services;
use crate::sys::footprint::Footprint;
use crate::sys::inotify::Echo;
use crate::sys::net::NetHost;

/// How often the epoch advances; the unit of the CPU budget.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

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

impl Limits {
    /// Epoch ticks in a CPU budget of `cpu` (at least one).
    pub(crate) fn ticks(cpu: Duration) -> u64 {
        (cpu.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
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
pub(crate) struct Limiter {
    inner: StoreLimits,
    cap: usize,
    pub(crate) grown_to: usize,
}

impl Limiter {
    /// A limiter allowing `cap` bytes of linear memory, and `(instances, tables,
    /// memories)`: what the component creates (`plugin::shape`).
    pub(crate) fn new(cap: usize, (instances, tables, memories): (usize, usize, usize)) -> Limiter {
        Limiter {
            inner: StoreLimitsBuilder::new()
                .instances(instances)
                .tables(tables)
                .memories(memories)
                .build(),
            cap,
            grown_to: 0,
        }
    }
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

/// Why a host call may not go ahead.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Refused {
    /// The plugin did not declare the capability, or was not granted it.
    #[error(transparent)]
    NotGranted(#[from] CapError),
    /// Called between calls (no resource is being served).
    #[error("no resource is being served")]
    NoResource,
    /// A socket call outside a `serve` call.
    #[error(
        "sockets are only available to a resource's `serve` call (the long-running watch), \
         not to validate or check-apply"
    )]
    NotServing,
}

/// Per-store data: WASI context, limits and the context of the call in progress.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: Limiter,
    /// The OS services the host interfaces reach.
    sys: Services,
    /// The plugin's effective capabilities (declared ∩ granted), checked by every host
    /// interface before it does anything.
    access: Arc<Access>,
    /// `name version` of the plugin, for log lines and errors.
    plugin: Arc<str>,
    /// The resource the current call is about and its footprint.
    current: Option<(ResourceRef, Arc<Footprint>)>,
    /// The current resource's path watches, for `fs` to make its writes there without
    /// waking it (see [`Echo`]); empty outside a check-apply.
    own: Arc<[Arc<Echo>]>,
    /// Epoch ticks left before the current call is interrupted.
    pub(crate) budget: u64,
    /// Set in the instance running a resource's `serve` call (the long-running watch).
    serve: Option<ServeCtx>,
    /// Which export is being called (some host calls are allowed in some only).
    pub(crate) call: CallPhase,
    /// The `world` keys the current `validate` declared it watches.
    pub(crate) world_watches: Vec<String>,
    /// `run --diff`: the diffs of the text files the current check-apply wrote.
    pub(crate) written: Vec<String>,
    /// What the current applying check-apply changed so far, as the host saw it (files
    /// written, copied, linked, made, removed or re-attributed; unit jobs): when the call
    /// then fails, the engine still counts and lists these as changes (see
    /// [`HostState::landed`]).
    pub(crate) landed: Vec<String>,
}

/// Which of a plugin's exports the host is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallPhase {
    /// Between calls.
    Idle,
    Validate,
    CheckApply {
        apply: bool,
    },
    Cleanup,
    Serve,
    /// `describe` (0.3): reads only.
    Describe,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The `own` of a call that is not a check-apply.
pub(crate) fn no_echoes() -> Arc<[Arc<Echo>]> {
    static NONE: OnceLock<Arc<[Arc<Echo>]>> = OnceLock::new();
    NONE.get_or_init(|| Arc::new([])).clone()
}

impl HostState {
    /// The state of a fresh instance: `wasi` is its (empty) WASI context, between calls.
    pub(crate) fn new(
        wasi: WasiCtx,
        memory_bytes: usize,
        counts: (usize, usize, usize),
        sys: Services,
        access: Arc<Access>,
        plugin: Arc<str>,
    ) -> HostState {
        HostState {
            wasi,
            table: ResourceTable::new(),
            limits: Limiter::new(memory_bytes, counts),
            sys,
            access,
            plugin,
            current: None,
            own: no_echoes(),
            budget: u64::MAX,
            serve: None,
            call: CallPhase::Idle,
            world_watches: Vec::new(),
            written: Vec::new(),
            landed: Vec::new(),
        }
    }

    /// Start the `call` about `id` with `footprint` (and, for a check-apply, its path
    /// watches `own`), with `ticks` of CPU and `memory_bytes` of memory.
    pub(crate) fn begin(
        &mut self,
        call: CallPhase,
        id: &ResourceRef,
        footprint: &Arc<Footprint>,
        own: &Arc<[Arc<Echo>]>,
        ticks: u64,
        memory_bytes: usize,
    ) {
        self.call = call;
        self.world_watches.clear();
        self.written.clear();
        self.landed.clear();
        self.limits.cap = memory_bytes;
        self.current = Some((id.clone(), footprint.clone()));
        self.own = own.clone();
        self.budget = ticks;
    }

    /// Note a change that has landed, when `done` says the host call succeeded and this
    /// is an applying check-apply (what `what` says is only built then). At most
    /// [`MAX_CHANGES`](crate::plugin::types::MAX_CHANGES) are kept.
    pub(crate) fn landed<T, E>(
        &mut self,
        done: &wasmtime::Result<Result<T, E>>,
        what: impl FnOnce() -> String,
    ) {
        if matches!(done, Ok(Ok(_)))
            && self.call == (CallPhase::CheckApply { apply: true })
            && self.landed.len() < crate::plugin::types::MAX_CHANGES
        {
            let line = crate::sys::text::one_line(what(), crate::plugin::types::MAX_CHANGE_SUMMARY);
            self.landed.push(line);
        }
    }

    /// The call is over: nothing is being served until the next one.
    pub(crate) fn end(&mut self) {
        self.call = CallPhase::Idle;
        self.current = None;
        self.own = no_echoes();
    }

    /// Make this the instance serving `id` (see [`crate::plugin::serve`]).
    pub(crate) fn begin_serving(&mut self, serve: ServeCtx, memory_bytes: usize) {
        let footprint = serve.config.borrow().footprint.clone();
        let ticks = serve.ticks;
        self.begin(
            CallPhase::Serve,
            &serve.id.clone(),
            &footprint,
            &no_echoes(),
            ticks,
            memory_bytes,
        );
        self.serve = Some(serve);
    }

    /// `kind[name]` of the resource being served, or the plugin's name between calls.
    pub(crate) fn who(&self) -> String {
        match &self.current {
            Some((r, _)) => format!("{}[{}]", r.kind, r.name),
            None => self.plugin.to_string(),
        }
    }

    /// The footprint of the resource being called, if the plugin may use `capability`.
    pub(crate) fn granted(&self, capability: Capability) -> Result<Arc<Footprint>, Refused> {
        self.access.allowed(capability)?;
        match &self.current {
            Some((_, fp)) => Ok(fp.clone()),
            None => Err(Refused::NoResource),
        }
    }

    /// The OS services.
    pub(crate) fn sys(&self) -> &Services {
        &self.sys
    }

    /// The path watches of the resource being checked (empty outside a check-apply).
    pub(crate) fn own(&self) -> &Arc<[Arc<Echo>]> {
        &self.own
    }

    /// The `state` value of the resource being called.
    pub(crate) fn state_get(&self) -> Option<String> {
        let (r, _) = self.current.as_ref()?;
        self.sys.states.get(&r.kind, &r.name)
    }

    /// Store the `state` value of the resource being called (ignored between calls). From
    /// a `serve` call, a new value wakes the resource so its check-apply can publish it.
    pub(crate) fn state_set(&self, value: String) {
        if let Some((r, _)) = &self.current {
            let changed = self.sys.states.set(&r.kind, &r.name, value);
            if let Some(serve) = &self.serve
                && changed
            {
                serve.wake();
            }
        }
    }

    /// The sockets and footprint of the serve call, if `net` is granted and this instance
    /// is serving.
    pub(crate) fn serving(&mut self) -> Result<(&mut NetHost, Arc<Footprint>), Refused> {
        self.access.allowed(Capability::Net)?;
        let fp = match &self.current {
            Some((_, fp)) => fp.clone(),
            None => Footprint::default().into(),
        };
        match self.serve.as_mut() {
            Some(s) => Ok((&mut s.net, fp)),
            None => Err(Refused::NotServing),
        }
    }

    /// `net.wait`: one turn of the serve loop (see [`ServeCtx::wait`]); a reconfiguration
    /// puts the new footprint in place. Starts a new CPU budget.
    pub(crate) async fn serve_wait(&mut self, timeout: Duration) -> Vec<Event> {
        let Some(s) = self.serve.as_mut() else {
            return Vec::new();
        };
        let turn = s.wait(timeout).await;
        if let Some(footprint) = turn.footprint {
            self.current = Some((s.id.clone(), footprint));
        }
        self.budget = turn.ticks;
        turn.events
    }
}
