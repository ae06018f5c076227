//! One vertex of the running graph and the task that drives it: wait until dirty, wait
//! for every predecessor to be in a good state, honour the rate limit and semaphores,
//! receive sent values, call check-apply, publish sends, refresh and poke successors,
//! and retry on failure.
//!
//! A vertex's links (predecessors and successors) live behind a lock so a live graph
//! swap can rewire an unchanged vertex without restarting its task. Phase changes
//! *nudge* the successors (a `Notify` permit, so none is lost), which is how a blocked
//! vertex learns that its predecessor recovered.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};

use super::converger::Converger;
use super::converger::Phase;
use super::edits::{EditGroup, EditGroups};
use super::groups::{self, Group, Groups};
use super::limits::Bucket;
use super::limits::Semaphores;
use super::types::{MAX_RECORDED, PlannedResource};
use crate::graph::{Meta, ResId};
use crate::plugin::manifest::SendType;
use crate::plugin::pool::Plugin;
use crate::plugin::serve::Server;
use crate::plugin::store::CallLimits;
use crate::plugin::types::{Change, CheckOutcome, MAX_SENT_VALUE, ResourceRef, WatchItem};
use crate::sys::Services;
use crate::sys::footprint::Footprint;
use crate::sys::fs::ConflictWatch;
use crate::sys::inotify::{Echo, Request, Subscription};
use crate::sys::kmsg::KmsgSubscription;
use crate::sys::text;
use crate::sys::waker::Waker;
use crate::watch::supervise::{Backoff, Restarts};

/// An edge seen from its downstream end.
pub(super) struct Pred {
    pub v: Arc<Vertex>,
    /// send/recv: the upstream's key → this vertex's param.
    pub send: Arc<BTreeMap<String, String>>,
}

/// An edge seen from its upstream end.
pub(super) struct Succ {
    pub v: Arc<Vertex>,
    pub notify: bool,
    pub send: Arc<BTreeMap<String, String>>,
}

#[derive(Default)]
pub(super) struct Links {
    pub preds: Vec<Pred>,
    pub succs: Vec<Succ>,
}

/// Params after send/recv, with the footprint `validate` declared for them.
struct Effective {
    params: Arc<str>,
    footprint: Arc<Footprint>,
}

pub(super) struct Vertex {
    pub id: ResId,
    pub reference: ResourceRef,
    /// Params as written in the graph (JSON text).
    pub params: Arc<str>,
    pub plugin: Arc<Plugin>,
    pub meta: Meta,
    watch: Vec<WatchItem>,
    /// One per non-recursive path watch: the resource's own writes there do not wake it.
    pub(super) echoes: Arc<[Arc<Echo>]>,
    /// Values this kind declares it sends, with their types.
    sends_declared: Arc<BTreeMap<String, SendType>>,
    /// The footprint declared for the graph's params.
    pub footprint: Arc<Footprint>,
    /// The params and footprint of the last run with received values.
    effective: Mutex<Option<Effective>>,
    dirty: AtomicBool,
    wake: Notify,
    /// Set between "dirty, about to run" and the start of check-apply: a poke then is
    /// redundant (the coming check-apply sees the new state), so it is skipped.
    waiting: AtomicBool,
    /// A predecessor's phase or the links changed.
    nudge: Notify,
    /// Set by an upstream notify edge; consumed by the next check-apply, restored if it
    /// fails so the refresh is not lost.
    refresh: AtomicBool,
    phase: AtomicU8,
    /// noop: the last check found changes to make.
    pub pending: AtomicBool,
    /// Values published by the last successful check-apply.
    sent: Mutex<HashMap<String, Value>>,
    pub links: RwLock<Links>,
    /// Check-applies that changed something.
    pub changes: AtomicUsize,
    /// Check-applies that would have changed something (noop).
    pub would: AtomicUsize,
    /// The last error, while the vertex is failing.
    pub last_error: Mutex<Option<String>>,
    /// What its check-applies did, for the summary and the run report.
    pub record: Mutex<Record>,
    /// Failed for a conflict with another resource (one file, two names): not run again
    /// until a new graph is swapped in, which pokes it.
    pub conflicted: AtomicBool,
    /// Stops this vertex's task (on shutdown, or when a swap removes it).
    pub stop: watch::Sender<bool>,
    /// The group of the file it edits, for an editing resource (see `edits`).
    pub(super) edit: std::sync::OnceLock<Arc<EditGroup>>,
    /// The resources of its kind it is applied with, when its kind groups (see
    /// `groups`).
    pub(super) group: std::sync::OnceLock<Arc<Group>>,
}

/// What a vertex's check-applies did (see [`super::types::ResourceOutcome`]).
#[derive(Debug, Default, Clone)]
pub(super) struct Record {
    /// What changed (or would), oldest first, at most [`MAX_RECORDED`] lines.
    pub what: Vec<String>,
    /// Change lines not kept.
    pub more: usize,
    /// Check-applies run, and the time they took.
    pub checks: usize,
    pub busy: Duration,
    /// The failed predecessor it waits for, while blocked.
    pub blocked_by: Option<ResId>,
}

/// What every vertex task shares.
pub(super) struct Ctx {
    pub(super) converger: Converger,
    /// Check-applies that changed something.
    pub(super) changes: AtomicUsize,
    /// Check-applies that would have changed something (noop).
    pub(super) would: AtomicUsize,
    pub(super) noop: bool,
    /// `run --diff`: log content diffs of real changes.
    pub(super) diff: bool,
    pub(super) semaphores: Semaphores,
    /// The running servers of resources with a `serve` watch, by resource. Kept here
    /// rather than in the vertex so that a vertex replaced in a graph swap hands its
    /// server to its successor (transfers in progress survive a params change).
    pub(super) servers: Servers,
    /// The OS services the vertices' watches use (watch commands, units, the kernel log).
    pub(super) sys: Services,
    /// The editing resources of each shared file.
    pub(super) edits: EditGroups,
    /// The resources applied together, by kind.
    pub(super) groups: Groups,
}

impl Vertex {
    /// `what` of this vertex panicked (a homeostat bug): the resource failed for good,
    /// said so, and counted.
    fn panicked(&self, ctx: &Ctx, what: &str, panic: &str) {
        let why = format!(
            "internal error: {what} panicked ({panic}); the resource is not enforced until \
             homeostat restarts or the graph changes (please report this bug)"
        );
        tracing::error!("{}: {why}", self.id);
        *self.last_error.lock().expect("error lock") = Some(why);
        ctx.converger.activity();
        self.set_phase(ctx, Phase::Failed);
    }

    /// Whether this running vertex can keep running for `r` (a graph swap): same id,
    /// params, metaparams and plugin.
    pub(super) fn runs(&self, r: &PlannedResource) -> bool {
        self.id == r.id
            && self.params == r.params
            && self.meta == r.meta
            && Arc::ptr_eq(&self.plugin, &r.plugin)
    }

    pub fn new(r: PlannedResource) -> Vertex {
        let footprint = Arc::new(enforced(r.info.footprint, &r.id, &r.meta));
        Vertex {
            reference: ResourceRef {
                kind: r.id.kind.clone(),
                name: r.id.name.clone(),
            },
            id: r.id,
            params: r.params,
            plugin: r.plugin,
            meta: r.meta,
            echoes: r
                .info
                .watch
                .iter()
                .filter_map(|item| match item {
                    WatchItem::Path {
                        path,
                        recursive: false,
                    } => Some(Echo::new(path.clone())),
                    _ => None,
                })
                .collect(),
            watch: r.info.watch,
            sends_declared: r.sends,
            footprint,
            effective: Mutex::new(None),
            dirty: AtomicBool::new(true),
            wake: Notify::new(),
            waiting: AtomicBool::new(false),
            nudge: Notify::new(),
            refresh: AtomicBool::new(false),
            phase: AtomicU8::new(Phase::Busy as u8),
            pending: AtomicBool::new(false),
            sent: Mutex::new(HashMap::new()),
            links: RwLock::new(Links::default()),
            changes: AtomicUsize::new(0),
            would: AtomicUsize::new(0),
            last_error: Mutex::new(None),
            record: Mutex::default(),
            conflicted: AtomicBool::new(false),
            stop: watch::channel(false).0,
            edit: std::sync::OnceLock::new(),
            group: std::sync::OnceLock::new(),
        }
    }

    /// The resource's `timeout`, `cpu` and `memory` metaparams.
    pub(super) fn call_limits(&self) -> CallLimits {
        CallLimits {
            timeout: self.meta.timeout.map(Duration::from_millis),
            cpu: self.meta.cpu.map(Duration::from_millis),
            // At most `Meta::MAX_MEMORY_MIB` (4096) by the parser; saturate, never wrap.
            memory_bytes: self
                .meta
                .memory
                .map(|m| usize::try_from(m).map_or(usize::MAX, |m| m.saturating_mul(1 << 20))),
        }
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Whether it is about to run: dirty, or woken and not yet in its check-apply.
    pub(super) fn is_pending(&self) -> bool {
        self.dirty.load(Ordering::Acquire) || self.waiting.load(Ordering::SeqCst)
    }

    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Make the vertex run again unless a run is already about to start.
    fn poke(&self) {
        if !self.waiting.load(Ordering::SeqCst) {
            self.mark_dirty();
        }
    }

    /// Re-check the predecessors (after a swap rewired them).
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    fn set_phase(&self, ctx: &Ctx, to: Phase) {
        let from = Phase::from_u8(self.phase.swap(to as u8, Ordering::AcqRel));
        if from == to {
            return;
        }
        ctx.converger.transition(from, to);
        for s in &self.links.read().expect("links lock").succs {
            s.v.nudge();
        }
    }

    /// The values to receive from predecessors, as param → value; empty without
    /// `send` edges.
    fn received(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for p in &self.links.read().expect("links lock").preds {
            if p.send.is_empty() {
                continue;
            }
            let sent = p.v.sent.lock().expect("sent lock");
            for (key, param) in p.send.iter() {
                if let Some(value) = sent.get(key) {
                    out.insert(param.clone(), value.clone());
                }
            }
        }
        out
    }

    /// Params with received values applied, re-validated when they differ from the
    /// graph's (the footprint may depend on them).
    async fn effective(&self) -> Result<(Arc<str>, Arc<Footprint>), String> {
        let received = self.received();
        if received.is_empty() {
            return Ok((self.params.clone(), self.footprint.clone()));
        }
        let mut params: serde_json::Map<String, Value> =
            serde_json::from_str(&self.params).expect("params are a JSON object");
        params.extend(received);
        let text: Arc<str> = Value::Object(params).to_string().into();
        if let Some(e) = &*self.effective.lock().expect("effective lock")
            && e.params == text
        {
            return Ok((e.params.clone(), e.footprint.clone()));
        }
        let info = self
            .plugin
            .validate(&self.reference, text.clone())
            .await
            .map_err(|e| format!("the params with received values are invalid: {e}"))?;
        let footprint = Arc::new(enforced(info.footprint, &self.id, &self.meta));
        *self.effective.lock().expect("effective lock") = Some(Effective {
            params: text.clone(),
            footprint: footprint.clone(),
        });
        Ok((text, footprint))
    }

    /// Store the values of a successful check-apply; returns whether any changed.
    fn publish(&self, sends: Vec<(String, String)>) -> Vec<String> {
        let mut changed = Vec::new();
        let mut sent = self.sent.lock().expect("sent lock");
        for (key, json) in sends {
            if json.len() > MAX_SENT_VALUE {
                tracing::warn!(
                    "{}: sent `{}` is {} ({} bytes), more than the cap of {} for one value; \
                     dropped",
                    self.id,
                    text::clip(&key, 256),
                    text::bytes(json.len() as u64),
                    json.len(),
                    text::bytes(MAX_SENT_VALUE as u64)
                );
                continue;
            }
            let Some(ty) = self.sends_declared.get(&key) else {
                tracing::warn!(
                    "{}: the plugin sent `{}`, which its kind does not declare; dropped",
                    self.id,
                    text::clip(&key, 256)
                );
                continue;
            };
            let value: Value = match serde_json::from_str(&json) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("{}: sent `{key}` is not JSON ({e}); dropped", self.id);
                    continue;
                }
            };
            if !ty.matches(&value) {
                tracing::warn!(
                    "{}: sent `{key}` = {}, which is not of its declared type {}; dropped",
                    self.id,
                    text::clip(&value.to_string(), 1024),
                    ty.name()
                );
                continue;
            }
            if sent.get(&key) != Some(&value) {
                sent.insert(key.clone(), value);
                changed.push(key);
            }
        }
        changed
    }
}

/// Watch subscriptions and tickers of one vertex; dropping it stops them all.
struct Watches {
    _subscriptions: Vec<Subscription>,
    _kmsg: Option<KmsgSubscription>,
    _conflict: Option<ConflictWatch>,
    tickers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        self.tickers.iter().for_each(|t| t.abort());
    }
}

fn ticker(v: &Arc<Vertex>, ctx: &Arc<Ctx>, period: Duration) -> tokio::task::JoinHandle<()> {
    let w = v.clone();
    spawn_watch(v, ctx, "its timer", async move {
        let mut t = tokio::time::interval(period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t.tick().await;
        loop {
            t.tick().await;
            injected_panic("timer", &w.id);
            w.mark_dirty();
        }
    })
}

/// Test builds only: panics at `place` of the resource `id` when `HOMEOSTAT_TEST_PANIC`
/// is `place:kind[name]`, so the suites can check that a homeostat bug there fails the
/// resource visibly (release builds compile this to nothing).
fn injected_panic(place: &str, id: &ResId) {
    #[cfg(debug_assertions)]
    {
        static WANTED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let wanted = WANTED.get_or_init(|| std::env::var("HOMEOSTAT_TEST_PANIC").ok());
        if let Some(w) = wanted
            && w.split_once(':') == Some((place, id.to_string().as_str()))
        {
            panic!("injected by HOMEOSTAT_TEST_PANIC");
        }
    }
    let _ = (place, id);
}

/// The paths a vertex watches, as subscription requests for [`WatchHub::subscribe_many`](crate::sys::inotify::WatchHub::subscribe_many)
/// (none when hidden or polling).
pub(super) fn path_watches(v: &Arc<Vertex>) -> Vec<Request> {
    if v.meta.hidden || v.meta.poll > 0 {
        return Vec::new();
    }
    v.watch
        .iter()
        .filter_map(|item| match item {
            WatchItem::Path { path, recursive } => {
                let target = v.clone();
                let waker: Waker = Arc::new(move || target.mark_dirty());
                Some(Request {
                    path: path.clone(),
                    recursive: *recursive,
                    waker,
                    // The hub ignores it for a recursive watch.
                    echo: v.echoes.iter().find(|e| e.path() == path).cloned(),
                })
            }
            _ => None,
        })
        .collect()
}

/// Start the other watches of the vertex (timers, kmsg) or poll it with `meta.poll`;
/// `paths` are its path subscriptions, placed by the engine in one batch.
fn start_watches(v: &Arc<Vertex>, paths: Vec<Subscription>, ctx: &Arc<Ctx>) -> Watches {
    let sys = &ctx.sys;
    let mut w = Watches {
        _subscriptions: paths,
        _kmsg: None,
        // Found writing a file another resource writes: look again (and fail for good).
        _conflict: v.footprint.owner.clone().map(|owner| {
            let target = v.clone();
            sys.fs
                .on_conflict(owner, Arc::new(move || target.mark_dirty()))
        }),
        tickers: Vec::new(),
    };
    if v.meta.poll > 0 {
        w.tickers
            .push(ticker(v, ctx, Duration::from_secs(u64::from(v.meta.poll))));
        return w;
    }
    for item in &v.watch {
        match item {
            WatchItem::Path { .. } => {}
            WatchItem::Interval { ms } => w.tickers.push(ticker(
                v,
                ctx,
                Duration::from_millis(u64::from((*ms).max(1))),
            )),
            WatchItem::Command(spec) => {
                w.tickers.push(spawn_watch(
                    v,
                    ctx,
                    "its watch command",
                    crate::watch::process::watch(
                        spec.clone(),
                        v.footprint.clone(),
                        sys.processes.clone(),
                        restarts(v),
                    ),
                ));
            }
            WatchItem::Unit(unit) => {
                w.tickers.push(spawn_watch(
                    v,
                    ctx,
                    "its unit watch",
                    crate::watch::systemd::watch(
                        unit.clone(),
                        v.footprint.clone(),
                        sys.systemd.clone(),
                        restarts(v),
                    ),
                ));
            }
            // Started by the first check-apply (see `Servers`).
            WatchItem::Serve => {}
            WatchItem::World { key } => match sys.world.get() {
                // Every host's values are under one prefix, writer first (see
                // `world::VALUES`): any value's change wakes the watch; the check reads
                // its key again.
                Some(world) => {
                    let mut changed = world.watch(crate::world::VALUES);
                    let target = v.clone();
                    w.tickers
                        .push(spawn_watch(v, ctx, "its world watch", async move {
                            while changed.changed().await.is_ok() {
                                target.mark_dirty();
                            }
                        }));
                }
                None => tracing::error!("{}: cannot watch world key {key}: no World is open", v.id),
            },
            WatchItem::Kmsg => match sys.kmsg.get() {
                Ok(k) => {
                    let target = v.clone();
                    w._kmsg = Some(k.subscribe(Arc::new(move || target.mark_dirty())));
                }
                Err(e) => tracing::error!("{}: cannot watch the kernel log: {e}", v.id),
            },
        }
    }
    w
}

/// `footprint` as the host enforces it for the resource `id` with `meta`: whose it is
/// (one file, two names is told by it), and the metaparams that widen or narrow what its
/// calls may do.
fn enforced(mut footprint: Footprint, id: &ResId, meta: &Meta) -> Footprint {
    footprint.trust_parents = meta.trust_parents;
    footprint.owner = Some(id.to_string().into());
    footprint
}

/// Why `v` may not be applied until the graph changes (it writes a file another resource
/// writes through another name), if so.
fn conflict(v: &Vertex, ctx: &Ctx) -> Option<String> {
    ctx.sys.fs.conflict_of(v.footprint.owner.as_deref()?)
}

/// `v` failed with `why` and is not retried: only a new graph (which may change either of
/// the two resources) runs it again.
fn fail_for_good(v: &Vertex, ctx: &Ctx, why: String) {
    v.waiting.store(false, Ordering::SeqCst);
    let repeated = v.last_error.lock().expect("error lock").as_deref() == Some(why.as_str());
    if !repeated {
        tracing::error!("{}: {why}", v.id);
    }
    *v.last_error.lock().expect("error lock") = Some(why);
    v.conflicted.store(true, Ordering::SeqCst);
    ctx.converger.activity();
    v.set_phase(ctx, Phase::Failed);
}

/// How `v`'s watch command or unit watch is restarted: its `retry` and `delay`.
fn restarts(v: &Arc<Vertex>) -> Restarts {
    let target = v.clone();
    Restarts {
        who: v.id.to_string(),
        retry: v.meta.retry,
        delay_ms: v.meta.delay,
        wake: Arc::new(move || target.mark_dirty()),
    }
}

/// Whether a resource runs a server (its `serve` watch): not in noop, not when hidden.
pub(super) fn serves(meta: &Meta, watch: &[WatchItem], noop: bool) -> bool {
    !noop && !meta.noop && !meta.hidden && watch.contains(&WatchItem::Serve)
}

/// The servers of the running graph, by resource (see `Ctx::servers`).
#[derive(Default)]
pub(super) struct Servers(Mutex<HashMap<ResId, ServerOf>>);

/// A server and the plugin it runs in (a swap that changes the plugin starts anew).
type ServerOf = (Arc<Plugin>, Arc<Server>);

impl Servers {
    /// Stop the servers of the resources `keep` refuses.
    pub fn retain(&self, keep: impl Fn(&ResId) -> bool) {
        self.0
            .lock()
            .expect("servers lock")
            .retain(|id, _| keep(id));
    }

    /// Start `v`'s server, or hand the running one `v`'s params and waker, then wait
    /// until it serves.
    async fn ready(
        &self,
        v: &Arc<Vertex>,
        params: Arc<str>,
        footprint: Arc<Footprint>,
    ) -> Result<(), String> {
        let target = v.clone();
        let wake: Waker = Arc::new(move || target.mark_dirty());
        let limits = v.call_limits();
        let server = {
            let mut all = self.0.lock().expect("servers lock");
            match all.get(&v.id) {
                Some((plugin, s)) if Arc::ptr_eq(plugin, &v.plugin) => {
                    s.reconfigure(params, footprint, wake);
                    s.clone()
                }
                _ => {
                    let s = Arc::new(
                        v.plugin
                            .serve(&v.reference, params, footprint, limits, wake),
                    );
                    all.insert(v.id.clone(), (v.plugin.clone(), s.clone()));
                    s
                }
            }
        };
        server.ready(limits.timeout).await
    }
}

/// Resolves when `stop` turns true.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Wait until `v` is dirty (consuming the flag); false when stopped.
async fn wait_dirty(v: &Vertex, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        let notified = v.wake.notified();
        if v.dirty.swap(false, Ordering::AcqRel) {
            return true;
        }
        tokio::select! {
            _ = notified => {}
            _ = stopped(stop) => return false,
        }
    }
}

/// Wait until every predecessor is `Ok`, reporting `Blocked` (once, with the reason)
/// while one has failed. False when stopped.
async fn wait_preds(v: &Vertex, ctx: &Ctx, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        let notified = v.nudge.notified();
        let blocker = {
            let links = v.links.read().expect("links lock");
            let mut all_ok = true;
            let mut blocker = None;
            for p in &links.preds {
                match p.v.phase() {
                    Phase::Ok => {}
                    Phase::Busy => all_ok = false,
                    Phase::Failed | Phase::Blocked => {
                        all_ok = false;
                        blocker.get_or_insert_with(|| p.v.id.clone());
                    }
                }
            }
            if all_ok {
                break;
            }
            blocker
        };
        match blocker {
            Some(p) if v.phase() != Phase::Blocked => {
                tracing::warn!("{}: blocked: waiting for {p}, which failed", v.id);
                v.record.lock().expect("record lock").blocked_by = Some(p);
                v.set_phase(ctx, Phase::Blocked);
            }
            None if v.phase() == Phase::Blocked => {
                tracing::info!("{}: unblocked", v.id);
                v.record.lock().expect("record lock").blocked_by = None;
                v.set_phase(ctx, Phase::Busy);
            }
            _ => {}
        }
        tokio::select! {
            _ = notified => {}
            _ = stopped(stop) => return false,
        }
    }
    if v.phase() == Phase::Blocked {
        tracing::info!("{}: unblocked", v.id);
        v.record.lock().expect("record lock").blocked_by = None;
    }
    v.set_phase(ctx, Phase::Busy);
    true
}

/// How long a failed check-apply waits for its predecessors' events to arrive before
/// it calls the failure an error (see [`pred_at_work`]): inotify reports a removed tree
/// one entry at a time, the deepest first.
const PRED_GRACE: Duration = Duration::from_millis(50);

/// Silent tries (of [`PRED_GRACE`] each) after which a failure is reported whatever its
/// predecessors do.
const PRED_TRIES: u32 = 10;

/// Changes made by `v`'s predecessors so far (see [`pred_at_work`]).
fn preds_progress(v: &Vertex) -> usize {
    preds_progress_of(&v.links.read().expect("links lock"))
}

fn preds_progress_of(links: &Links) -> usize {
    links
        .preds
        .iter()
        .map(|p| p.v.changes.load(Ordering::Acquire))
        .sum()
}

/// After a failed check-apply that began when its predecessors had made `before`
/// changes: after [`PRED_GRACE`], a predecessor that has work pending (dirty or running)
/// or made a change meanwhile, if one has; the failure is then likely theirs (`rm -rf` of
/// a managed directory: this file's event came first and found its directory gone). A
/// vertex without predecessors does not wait.
async fn pred_at_work(
    v: &Vertex,
    before: usize,
    stop: &mut watch::Receiver<bool>,
) -> Option<ResId> {
    if v.links.read().expect("links lock").preds.is_empty() {
        return None;
    }
    if !sleep(PRED_GRACE, stop).await {
        return None;
    }
    let links = v.links.read().expect("links lock");
    let working = links
        .preds
        .iter()
        .find(|p| p.v.phase() == Phase::Busy || p.v.dirty.load(Ordering::Acquire));
    match working {
        Some(p) => Some(p.v.id.clone()),
        None if preds_progress_of(&links) != before => links.preds.first().map(|p| p.v.id.clone()),
        None => None,
    }
}

/// Sleep for `d` unless stopped first; false when stopped.
async fn sleep(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stopped(stop) => false,
    }
}

/// Take every semaphore the vertex names, in sorted order (no deadlock between
/// resources naming the same ones). `None` when stopped.
async fn acquire(
    v: &Vertex,
    ctx: &Ctx,
    stop: &mut watch::Receiver<bool>,
) -> Option<Vec<OwnedSemaphorePermit>> {
    let mut permits = Vec::with_capacity(v.meta.sema.len());
    for sema in ctx.semaphores.get(&v.meta.sema) {
        let acquired = tokio::select! {
            p = sema.acquire_owned() => p,
            _ = stopped(stop) => return None,
        };
        permits.push(acquired.expect("semaphores are never closed"));
    }
    Some(permits)
}

/// Drive one vertex until it is stopped. `paths` are its path subscriptions, placed
/// before the task starts so that no change between check and watch is lost.
/// Runs a vertex's task. A panic in it (a homeostat bug) fails the resource, reported,
/// counted in the summary and carried by the exit code like any failure, instead of
/// leaving it quietly unenforced.
pub(super) async fn run(v: Arc<Vertex>, paths: Vec<Subscription>, ctx: Arc<Ctx>) {
    // Built in the `await` expression, not in a local: a future held in a local and then
    // moved into another is stored twice in the task (one vertex task per resource, so
    // 7 MiB more at 10 000 resources when it was).
    if let Err(panic) = caught(run_loop(v.clone(), paths, ctx.clone())).await {
        v.panicked(&ctx, "its check-apply loop", &panic);
    }
}

/// `fut`, with a panic in it turned into its message. Not an `async fn`, so that `fut` is
/// stored once, inside the returned future.
pub(super) fn caught<T>(fut: impl Future<Output = T>) -> impl Future<Output = Result<T, String>> {
    std::panic::AssertUnwindSafe(fut)
        .catch_unwind()
        .map(|caught| {
            caught.map_err(|panic| {
                panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_string())
            })
        })
}

/// Spawns one of `v`'s watch sources; a panic in it fails the resource (see [`run`]).
fn spawn_watch(
    v: &Arc<Vertex>,
    ctx: &Arc<Ctx>,
    what: &'static str,
    fut: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (v, ctx) = (v.clone(), ctx.clone());
    tokio::spawn(async move {
        if let Err(panic) = caught(fut).await {
            v.panicked(&ctx, what, &panic);
        }
    })
}

async fn run_loop(v: Arc<Vertex>, paths: Vec<Subscription>, ctx: Arc<Ctx>) {
    let mut stop = v.stop.subscribe();
    if v.meta.hidden {
        // In the graph (edges, export) but never watched or applied.
        v.dirty.store(false, Ordering::Release);
        v.set_phase(&ctx, Phase::Ok);
        stopped(&mut stop).await;
        return;
    }
    let _watches = start_watches(&v, paths, &ctx);
    let mut bucket = v.meta.limit.map(|rate| Bucket::new(rate, v.meta.burst));
    let mut retries_left = v.meta.retry;
    // Failures not reported in a row, each waiting for a predecessor at work.
    let mut silent_tries = 0;
    loop {
        if !wait_dirty(&v, &mut stop).await {
            return;
        }
        v.waiting.store(true, Ordering::SeqCst);
        v.set_phase(&ctx, Phase::Busy);
        if !wait_preds(&v, &ctx, &mut stop).await {
            return;
        }
        if let Some(b) = bucket.as_mut() {
            let wait = b.take(tokio::time::Instant::now());
            if !wait.is_zero() {
                tracing::debug!("{}: rate limited for {wait:?}", v.id);
                if !sleep(wait, &mut stop).await {
                    return;
                }
            }
        }
        if let Some(why) = conflict(&v, &ctx) {
            // One file, two names: not applied again until the graph changes.
            fail_for_good(&v, &ctx, why);
            continue;
        }
        let Some(permits) = acquire(&v, &ctx, &mut stop).await else {
            return;
        };
        // After the semaphores: a member holding the turn never waits for one.
        let turn = match v.edit.get() {
            Some(group) => match group.turn(&mut stop).await {
                Some(turn) => Some(turn),
                None => return,
            },
            None => None,
        };
        v.waiting.store(false, Ordering::SeqCst);
        injected_panic("check-apply", &v.id);
        let apply = !(ctx.noop || v.meta.noop);
        let refresh = v.refresh.swap(false, Ordering::SeqCst);
        let serving = serves(&v.meta, &v.watch, ctx.noop);
        let began = Instant::now();
        let progress = preds_progress(&v);
        let effective = v.effective().await;
        let used = match &effective {
            Ok((_, footprint)) => footprint.clone(),
            Err(_) => v.footprint.clone(),
        };
        // What a check-apply that then failed had already changed (`CallError::Partly`).
        let mut landed = Vec::new();
        let result = match effective {
            Ok((params, footprint)) => {
                let done = match v.group.get() {
                    Some(group) => {
                        let member = groups::member(&v, params.clone(), footprint.clone(), refresh);
                        group.check_apply(&v, member, apply, &mut stop).await
                    }
                    None => {
                        v.plugin
                            .check_apply(
                                &v.reference,
                                params.clone(),
                                footprint.clone(),
                                apply,
                                refresh,
                                v.call_limits(),
                                v.echoes.clone(),
                            )
                            .await
                    }
                };
                done.map(|out| (out, serving.then_some((params, footprint))))
                    .map_err(|mut e| {
                        landed = e.take_landed();
                        e.to_string()
                    })
            }
            Err(e) => Err(e),
        };
        // A server is started (or handed the new params) once its resource checked out.
        let result = match result {
            Ok((out, Some((params, footprint)))) => {
                // Stopping does not wait for a server that is still starting.
                let ready = tokio::select! {
                    // Boxed: a server start is rare, and inline its future would be
                    // part of every vertex's task.
                    r = Box::pin(ctx.servers.ready(&v, params, footprint)) => r,
                    _ = stopped(&mut stop) => Err("stopping".to_string()),
                };
                ready.map(|()| out).map_err(|e| format!("not serving: {e}"))
            }
            Ok((out, None)) => Ok(out),
            Err(e) => Err(e),
        };
        drop(permits);
        // An editing resource's edits are written with those of the others ready.
        let result = match turn {
            Some(turn) => {
                let changed = apply && matches!(&result, Ok(out) if !out.ok);
                match turn.end(&v, &ctx, &used, changed, &mut stop).await {
                    Ok(()) => result,
                    Err(e) => Err(e),
                }
            }
            None => result,
        };
        {
            let mut record = v.record.lock().expect("record lock");
            record.checks += 1;
            record.busy += began.elapsed();
        }
        match result {
            Ok(out) => {
                retries_left = v.meta.retry;
                silent_tries = 0;
                succeeded(&v, &ctx, out, apply);
            }
            Err(e) => {
                if refresh {
                    v.refresh.store(true, Ordering::SeqCst);
                }
                if !landed.is_empty() {
                    // Changed, then failed: it is listed under both.
                    let partly = CheckOutcome {
                        ok: false,
                        changes: landed
                            .into_iter()
                            .map(|summary| Change {
                                summary,
                                diff: None,
                            })
                            .collect(),
                        ..CheckOutcome::default()
                    };
                    count_changes(&v, &ctx, &partly, true);
                }
                if let Some(why) = conflict(&v, &ctx) {
                    fail_for_good(&v, &ctx, why);
                    continue;
                }
                // A resource it depends on that has work pending is the likely cause
                // (`rm -rf` of a managed directory: this file's event came first, and its
                // directory is gone): wait for it and try again, without calling it an
                // error of this resource.
                if silent_tries < PRED_TRIES
                    && let Some(p) = pred_at_work(&v, progress, &mut stop).await
                {
                    silent_tries += 1;
                    tracing::debug!("{}: {e} (trying again once {p} is done)", v.id);
                    v.mark_dirty();
                    continue;
                }
                silent_tries = 0;
                tracing::error!("{}: {e}", v.id);
                *v.last_error.lock().expect("error lock") = Some(e);
                ctx.converger.activity();
                if retries_left != 0 {
                    if retries_left > 0 {
                        retries_left -= 1;
                    }
                    // A floor under retries, whatever `delay` says: never hundreds a second.
                    let pause = Duration::from_millis(v.meta.delay).max(Backoff::FLOOR);
                    if !sleep(pause, &mut stop).await {
                        return;
                    }
                    v.mark_dirty();
                } else {
                    v.set_phase(&ctx, Phase::Failed);
                }
            }
        }
    }
}

/// Record a successful check-apply, publish its sends, and refresh and poke the
/// successors that must see it.
fn succeeded(v: &Vertex, ctx: &Ctx, out: CheckOutcome, apply: bool) {
    if v.last_error.lock().expect("error lock").take().is_some() {
        tracing::info!("{}: recovered", v.id);
    }
    let changed = !out.ok;
    v.pending.store(changed && !apply, Ordering::Release);
    if changed {
        count_changes(v, ctx, &out, apply);
    } else {
        tracing::debug!("{}: ok", v.id);
    }
    let sent = v.publish(out.sends);
    {
        let links = v.links.read().expect("links lock");
        for s in &links.succs {
            if changed && s.notify {
                if !apply {
                    tracing::info!("{}: would refresh {} (noop)", v.id, s.v.id);
                }
                s.v.refresh.store(true, Ordering::SeqCst);
            }
            let received = s.send.keys().any(|k| sent.contains(k));
            if changed || received {
                s.v.poke();
            }
        }
    }
    v.set_phase(ctx, Phase::Ok);
}

/// Count a check-apply that changed something (or would have, in noop: never counted
/// as a repair), log it, and keep what it changed for the summary and the report.
fn count_changes(v: &Vertex, ctx: &Ctx, out: &CheckOutcome, apply: bool) {
    let (mine, all) = if apply {
        (&v.changes, &ctx.changes)
    } else {
        (&v.would, &ctx.would)
    };
    mine.fetch_add(1, Ordering::AcqRel);
    all.fetch_add(1, Ordering::AcqRel);
    ctx.converger.activity();
    log_changes(v, ctx, out, apply);
    let mut record = v.record.lock().expect("record lock");
    let lines: Vec<String> = if out.changes.is_empty() {
        vec!["changed".into()]
    } else {
        out.changes.iter().map(|c| c.summary.clone()).collect()
    };
    for line in lines {
        if record.what.len() < MAX_RECORDED {
            record.what.push(line);
        } else {
            record.more += 1;
        }
    }
}

/// One INFO line per changing check-apply, with the diffs below it in noop (and with
/// `--diff`, of real changes: the plugin's, else those the host made around its writes).
/// The diffs go in the log's `diff` field: the log writes each of its lines escaped and
/// indented below the line (`cli/logging.rs`), so they stay readable and cannot pass for
/// log lines. A `sensitive` resource's diffs are never logged.
fn log_changes(v: &Vertex, ctx: &Ctx, out: &CheckOutcome, apply: bool) {
    let summary = if out.changes.is_empty() {
        "changed".to_string()
    } else {
        out.changes
            .iter()
            .map(|c| c.summary.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let shown = !v.meta.sensitive && (!apply || ctx.diff);
    let mut diffs: Vec<&str> = out
        .changes
        .iter()
        .filter(|_| shown)
        .filter_map(|c| c.diff.as_deref())
        .map(|d| d.trim_end_matches('\n'))
        .collect();
    if diffs.is_empty() && shown && apply {
        diffs = out
            .written
            .iter()
            .map(|d| d.trim_end_matches('\n'))
            .collect();
    }
    let what = if apply {
        String::new()
    } else {
        "would change (noop): ".to_string()
    };
    if diffs.is_empty() {
        tracing::info!("{}: {what}{summary}", v.id);
    } else {
        let diff = diffs.join("\n");
        tracing::info!(diff = %diff, "{}: {what}{summary}", v.id);
    }
}

#[cfg(test)]
mod tests {
    use super::caught;

    #[tokio::test]
    async fn a_panic_becomes_its_message() {
        assert_eq!(caught(async { 5 }).await, Ok(5));
        let n = 1;
        assert_eq!(
            caught(async move { panic!("boom {n}") }).await,
            Err::<(), _>("boom 1".to_string())
        );
        assert_eq!(
            caught(async { panic!("static") }).await,
            Err::<(), _>("static".into())
        );
        let odd = caught(async { std::panic::panic_any(3u8) }).await;
        assert_eq!(odd, Err::<(), _>("a panic without a message".into()));
    }
}
