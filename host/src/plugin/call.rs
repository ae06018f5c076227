//! Running calls: validate, check-apply and cleanup, one at a time on a checked-out
//! instance ([`crate::plugin::pool`]), or in batches spread over the pool for a whole
//! graph's validates and cleanups.
//!
//! **Limits.** Each call gets a CPU budget (epoch interruption: a ticker thread advances
//! the epoch every [`EPOCH_TICK`](crate::plugin::store::EPOCH_TICK); the store traps once
//! the budget is spent and yields to tokio at every tick meanwhile), a memory cap and a
//! wall-clock timeout. A trap, an exceeded limit or a timeout poisons only that instance:
//! it is dropped and rebuilt from the component for the next call, and the caller gets a
//! [`CallError`] naming the plugin. Nothing else is disturbed.

use std::sync::Arc;
use std::time::Duration;

use crate::plugin::bindings::Member;
use crate::plugin::pool::{Checkout, Instance, Plugin, PoolShared, STDERR_CAPACITY, instantiate};
use crate::plugin::store::{CallLimits, CallPhase, Limits, no_echoes};
use crate::plugin::trap::{describe_trap, drain_stderr};
use crate::plugin::types::{
    CallError, CheckOutcome, PluginError, ResourceInfo, ResourceRef, WatchItem,
};
use crate::sys::footprint::Footprint;
use crate::sys::inotify::Echo;

/// Which export a [`Job`] calls.
enum CallKind {
    Validate,
    CheckApply {
        apply: bool,
        refresh: bool,
    },
    Cleanup,
    Describe,
    /// `check-apply-group` (0.3): these members (name, params, refresh) of the job's kind.
    CheckApplyGroup {
        members: Vec<(String, Arc<str>, bool)>,
        apply: bool,
    },
}

/// What a [`Job`] returned.
enum Reply {
    Validate(ResourceInfo),
    CheckApply(CheckOutcome),
    Cleanup,
    Describe(String),
    Group(Vec<Result<CheckOutcome, PluginError>>),
}

/// One resource of [`Plugin::check_apply_group`].
pub struct GroupMember {
    pub name: String,
    pub params: Arc<str>,
    pub footprint: Arc<Footprint>,
    pub refresh: bool,
    /// Its `timeout`, `cpu` and `memory` metaparams.
    pub limits: CallLimits,
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

impl Plugin {
    /// [`Plugin::validate`] for many resources, in batches spread over the pool;
    /// results in the order of `resources`.
    pub async fn validate_many(
        &self,
        resources: Vec<(ResourceRef, Arc<str>)>,
    ) -> Vec<Result<ResourceInfo, CallError>> {
        // The kinds of editing resources, whose grants `editing` marks (most plugins have
        // none: nothing is cloned for them).
        let kinds: Vec<Option<String>> = resources
            .iter()
            .map(|(id, _)| self.edits(&id.kind).then(|| id.kind.clone()))
            .collect();
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
            .zip(kinds)
            .map(|(r, kind)| match r {
                Ok(Reply::Validate(info)) => match kind {
                    Some(kind) => self.editing(&kind, info),
                    None => Ok(info),
                },
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
            Reply::Validate(info) => self.editing(&id.kind, info),
            _ => unreachable!("validate answered with another call's reply"),
        }
    }

    /// What `validate` declared, with the write grants of an editing kind (its manifest
    /// says `edits`) marked shared. Such a kind edits files: a recursive write grant is
    /// refused, as the plugin's error.
    fn editing(&self, kind: &str, mut info: ResourceInfo) -> Result<ResourceInfo, CallError> {
        if !self.edits(kind) {
            return Ok(info);
        }
        for g in info.footprint.paths.iter_mut().filter(|g| g.write) {
            if g.recursive {
                return Err(CallError::Plugin(PluginError {
                    message: format!(
                        "the kind `{kind}` edits part of files, so it cannot claim the tree \
                         `{}` (a bug in plugin `{}`: an editing kind declares files only)",
                        g.path.display(),
                        self.manifest.name
                    ),
                    field: None,
                }));
            }
            g.shared = true;
        }
        Ok(info)
    }

    /// Check (and with `apply`, repair) one resource within its footprint. `own` are the
    /// resource's path watches: its writes to those paths do not wake it again.
    #[expect(
        clippy::too_many_arguments,
        reason = "each comes from elsewhere: params and footprint after send/recv, limits from the metaparams, `own` from the watches"
    )]
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

    /// Whether `kind`'s resources are applied together (its manifest's `groups`).
    pub fn groups(&self, kind: &str) -> bool {
        self.manifest.kinds.get(kind).is_some_and(|k| k.groups)
    }

    /// Whether `kind` edits part of its files (its manifest's `edits`).
    fn edits(&self, kind: &str) -> bool {
        self.manifest.kinds.get(kind).is_some_and(|k| k.edits)
    }

    /// Whether `kind`'s cleanup does anything (its manifest says so); when not, the host
    /// skips the call and only [`forget`](Self::forget)s the resource.
    pub fn has_cleanup(&self, kind: &str) -> bool {
        self.manifest.kinds.get(kind).is_none_or(|k| k.cleanup)
    }

    /// The path param a `collect:` pattern places in its directory, if `kind` has one
    /// (its manifest's `collect_dir`).
    pub fn collect_dir(&self, kind: &str) -> Option<&str> {
        self.manifest.kinds.get(kind)?.collect_dir.as_deref()
    }

    /// What a skipped cleanup still does on the host side: drop the `state` value.
    pub fn forget(&self, id: &ResourceRef) {
        if let Some(Ok(pool)) = self.pool.get() {
            pool.sys.states.forget(&id.kind, &id.name);
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

    /// The params that declare what `id` with `params` would manage, as it is now
    /// (`homeostat resource`; the plugin's `describe` export, 0.3). `footprint` is the
    /// one its `validate` declared: only its paths (made read-only) and its units (whose
    /// status it may read: `systemd` refuses every change in `describe`) are kept.
    pub async fn describe(
        &self,
        id: &ResourceRef,
        params: Arc<str>,
        footprint: &Footprint,
    ) -> Result<String, CallError> {
        let mut read_only = Footprint {
            paths: footprint.paths.clone(),
            units: footprint.units.clone(),
            trust_parents: footprint.trust_parents,
            ..Footprint::default()
        };
        for g in &mut read_only.paths {
            g.write = false;
            g.shared = false;
        }
        let reply = self
            .submit(
                id,
                params,
                Arc::new(read_only),
                CallKind::Describe,
                CallLimits::default(),
            )
            .await?;
        match reply {
            Reply::Describe(json) => Ok(json),
            _ => unreachable!("describe answered with another call's reply"),
        }
    }

    /// Check-apply `members` of `kind` in one call of the plugin's `check-apply-group`
    /// (0.3), under the union of their footprints (see [`Footprint::union`]): one result
    /// per member, in order. The call's wall-clock and CPU budgets are the sums of the
    /// members' (each its metaparam or the plugin's default), its memory cap the largest.
    /// An error of the call as a whole (a trap, a timeout) is every member's.
    pub async fn check_apply_group(
        &self,
        kind: &str,
        members: &[GroupMember],
        apply: bool,
    ) -> Vec<Result<CheckOutcome, CallError>> {
        let global = &self.limits;
        let limits = CallLimits {
            timeout: Some(
                members
                    .iter()
                    .map(|m| m.limits.timeout.unwrap_or(global.call_timeout))
                    .sum(),
            ),
            cpu: Some(
                members
                    .iter()
                    .map(|m| m.limits.cpu.unwrap_or(global.cpu))
                    .sum(),
            ),
            memory_bytes: members
                .iter()
                .map(|m| m.limits.memory_bytes.unwrap_or(global.memory_bytes))
                .max(),
        };
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        let id = ResourceRef {
            kind: kind.to_string(),
            name: names.join(", "),
        };
        let footprint = Arc::new(Footprint::union(members.iter().map(|m| &*m.footprint)));
        let job = CallKind::CheckApplyGroup {
            members: members
                .iter()
                .map(|m| (m.name.clone(), m.params.clone(), m.refresh))
                .collect(),
            apply,
        };
        match self.submit(&id, "{}".into(), footprint, job, limits).await {
            Ok(Reply::Group(results)) => results
                .into_iter()
                .map(|r| r.map_err(CallError::Plugin))
                .collect(),
            Ok(_) => unreachable!("a group call answered with another call's reply"),
            // A failure of the call as a whole is every member's; what it changed first
            // cannot be told apart by member, so none is counted against one.
            Err(CallError::Partly { error, .. }) => {
                members.iter().map(|_| Err((*error).clone())).collect()
            }
            Err(e) => members.iter().map(|_| Err(e.clone())).collect(),
        }
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

impl Checkout<'_> {
    /// Runs `call` on the checked-out instance (creating it first when needed); while it
    /// runs, dropping the checkout discards the instance.
    async fn run(&mut self, call: &Job) -> Result<Reply, CallError> {
        self.in_call = true;
        let result = run_call(self.shared, &mut self.instance, call).await;
        self.in_call = false;
        result
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

/// Run one job; returns the result and whether the instance must be discarded.
async fn run_job(
    shared: &PoolShared,
    inst: &mut Instance,
    job: &Job,
) -> (Result<Reply, CallError>, bool) {
    let ticks = Limits::ticks(job.cpu);
    let call = match job.kind {
        CallKind::Validate => CallPhase::Validate,
        CallKind::CheckApply { apply, .. } => CallPhase::CheckApply { apply },
        CallKind::Cleanup => CallPhase::Cleanup,
        CallKind::Describe => CallPhase::Describe,
        CallKind::CheckApplyGroup { apply, .. } => CallPhase::CheckApply { apply },
    };
    inst.store.data_mut().begin(
        call,
        &job.id,
        &job.footprint,
        &job.own,
        ticks,
        job.memory_bytes,
    );
    inst.store.set_epoch_deadline(1);
    let (guest, store) = (&inst.guest, &mut inst.store);
    let (id, params) = (&job.id, &job.params);
    let call = async {
        match job.kind {
            CallKind::Validate => guest
                .validate(store, id, params)
                .await
                .map(|r| r.map(Reply::Validate)),
            CallKind::CheckApply { apply, refresh } => guest
                .check_apply(store, id, params, apply, refresh)
                .await
                .map(|r| r.map(Reply::CheckApply)),
            CallKind::Cleanup => guest
                .cleanup(store, id, params)
                .await
                .map(|r| r.map(|()| Reply::Cleanup)),
            CallKind::Describe => guest
                .describe(store, id, params)
                .await
                .map(|r| r.map(Reply::Describe)),
            CallKind::CheckApplyGroup { ref members, apply } => {
                let members: Vec<Member<'_>> = members
                    .iter()
                    .map(|(name, params, refresh)| Member {
                        name,
                        params,
                        refresh: *refresh,
                    })
                    .collect();
                guest
                    .check_apply_group(store, &id.kind, &members, apply)
                    .await
                    .map(|r| Ok(Reply::Group(r)))
            }
        }
    };
    let outcome = tokio::time::timeout(job.timeout, call).await;
    inst.store.data_mut().end();
    // The world keys `validate` declared become watches, like those of its answer.
    let world_watches = std::mem::take(&mut inst.store.data_mut().world_watches);
    let written = std::mem::take(&mut inst.store.data_mut().written);
    let landed = std::mem::take(&mut inst.store.data_mut().landed);
    let outcome = match outcome {
        Ok(Ok(Ok(Reply::CheckApply(mut out)))) => {
            out.written = written;
            Ok(Ok(Ok(Reply::CheckApply(out))))
        }
        Ok(Ok(Ok(Reply::Validate(mut info)))) => {
            info.watch.extend(
                world_watches
                    .into_iter()
                    .map(|key| WatchItem::World { key }),
            );
            Ok(Ok(Ok(Reply::Validate(info))))
        }
        other => other,
    };
    if matches!(job.kind, CallKind::Cleanup) {
        // The resource leaves the graph: its `state` goes with it.
        shared.sys.states.forget(&job.id.kind, &job.id.name);
    }
    let plugin = shared.label.to_string();
    let (result, poisoned) = match outcome {
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
    };
    // A failed check-apply may have changed things first: those still count.
    let result = match result {
        Err(error) if !landed.is_empty() => Err(CallError::Partly {
            error: Box::new(error),
            landed,
        }),
        other => other,
    };
    (result, poisoned)
}
