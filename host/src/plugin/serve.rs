//! The long-running watch (DESIGN.md §3): a resource whose `validate` returned the
//! `serve` watch item gets an instance of its own in which the plugin's `serve` export
//! runs for as long as the resource is in the graph. It is a loop around `net.wait`:
//! the guest's fiber is suspended while the host waits on its sockets
//! ([`crate::sys::net`]), so no thread is ever blocked and all
//! network-facing parsing stays inside the sandbox.
//!
//! **Limits.** The instance has the resource's memory cap. Its CPU budget is per *turn*:
//! every return from `net.wait` starts a fresh budget of the resource's `cpu` limit, so a
//! loop that stops coming back (a spin) is interrupted like any call. There is no
//! wall-clock timeout: serving is supposed to last.
//!
//! **Status and restarts.** A [`Server`] reports [`State::Starting`] until the guest
//! first waits for events (it has bound its sockets by then), [`State::Serving`] after,
//! and [`State::Ended`] with the reason when `serve` returned, returned an error or
//! trapped; a server that had been serving wakes its resource then. It is never
//! restarted on its own: the engine calls [`Server::ready`] after each successful
//! check-apply of the resource, which reports an end once (the resource fails with the
//! reason, e.g. an address in use) and restarts the server on the next call, so the
//! resource's own `retry` and `delay` govern restarts and a server that keeps failing
//! cannot spin.
//!
//! **Params changes** do not restart it: [`Server::reconfigure`] hands the new params
//! and footprint to the running instance, whose next `net.wait` returns a
//! `reconfigured` event, so transfers in progress survive a graph swap.
//!
//! **State changes.** A `state.set` from the serve call that changes the value wakes
//! the resource, so its check-apply runs and can publish what the server did.
//!
//! Dropping the [`Server`] drops the instance and closes every socket. The serve call's part
//! of its store, and one turn of its loop, are [`crate::plugin::serving`]'s.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::plugin::pool::{Plugin, PoolShared, instantiate};
use crate::plugin::serving::{Config, ServeCtx, State, Status};
use crate::plugin::store::{CallLimits, Limits};
use crate::plugin::trap::{describe_trap, drain_stderr};
use crate::plugin::types::ResourceRef;
use crate::sys::footprint::Footprint;
use crate::sys::net::NetHost;
use crate::sys::waker::Waker;

/// A running (or ended) serve instance; dropping it stops serving.
pub struct Server {
    config: watch::Sender<Config>,
    status: watch::Receiver<Status>,
    restart: Arc<Notify>,
    wake: Arc<Mutex<Waker>>,
    /// How long [`Server::ready`] waits for a start unless told otherwise.
    timeout: Duration,
    /// The last attempt whose end a [`Server::ready`] reported.
    reported: std::sync::atomic::AtomicU64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl Plugin {
    /// Start serving `id` with `params` in an instance of its own (see the module docs).
    /// `wake` runs when the server ends or stores a new `state` value.
    pub fn serve(
        &self,
        id: &ResourceRef,
        params: Arc<str>,
        footprint: Arc<Footprint>,
        limits: CallLimits,
        wake: Waker,
    ) -> Server {
        let (config, config_rx) = watch::channel(Config { params, footprint });
        let (status_tx, status) = watch::channel(Status {
            attempt: 0,
            state: State::Starting,
        });
        let restart = Arc::new(Notify::new());
        let wake = Arc::new(Mutex::new(wake));
        // A server starts after a successful check-apply of the same plugin, so its pool
        // exists (it is built by the first call, and only once).
        let pool = Arc::clone(
            self.pool()
                .expect("a plugin that served a check-apply has a pool"),
        );
        let timeout = pool.limits.call_timeout;
        let task = tokio::spawn(supervise(
            pool,
            id.clone(),
            config_rx,
            Arc::new(status_tx),
            restart.clone(),
            wake.clone(),
            limits,
        ));
        Server {
            config,
            status,
            restart,
            wake,
            timeout,
            reported: std::sync::atomic::AtomicU64::new(0),
            task,
        }
    }
}

impl Server {
    /// Hand new params and footprint to the running instance (a `reconfigured` event),
    /// and wake `wake` from now on.
    pub fn reconfigure(&self, params: Arc<str>, footprint: Arc<Footprint>, wake: Waker) {
        *self.wake.lock().expect("wake lock") = wake;
        self.config.send_if_modified(|c| {
            let changed = c.params != params || c.footprint != footprint;
            if changed {
                *c = Config { params, footprint };
            }
            changed
        });
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Wait until it serves. An end not reported yet is reported (`Err` with why: the
    /// plugin's error, a trap) rather than restarted, so the resource fails and its
    /// `retry` and `delay` decide; an end already reported is restarted and waited for
    /// (at most `timeout`, by default the plugin call timeout).
    pub async fn ready(&self, timeout: Option<Duration>) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        let timeout = timeout.unwrap_or(self.timeout);
        let mut rx = self.status.clone();
        let now = rx.borrow_and_update().clone();
        let attempt = match &now.state {
            State::Ended(why) if self.reported.load(Ordering::Acquire) < now.attempt => {
                self.reported.store(now.attempt, Ordering::Release);
                return Err(why.clone());
            }
            State::Ended(_) => {
                self.restart.notify_one();
                now.attempt + 1
            }
            _ => now.attempt,
        };
        let settled = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| s.attempt >= attempt && s.state != State::Starting),
        )
        .await;
        match settled {
            Err(_) => Err(format!(
                "its server did not start within {}ms",
                timeout.as_millis()
            )),
            Ok(Err(_)) => Err("its server is gone".to_string()),
            Ok(Ok(s)) => match &s.state {
                State::Ended(why) => {
                    self.reported.fetch_max(s.attempt, Ordering::AcqRel);
                    Err(why.clone())
                }
                _ => Ok(()),
            },
        }
    }
}

/// Start serving, and again each time [`Server::ready`] asks after it ended.
async fn supervise(
    shared: Arc<PoolShared>,
    id: ResourceRef,
    config: watch::Receiver<Config>,
    status: Arc<watch::Sender<Status>>,
    restart: Arc<Notify>,
    wake: Arc<Mutex<Waker>>,
    limits: CallLimits,
) {
    let who = format!("{}[{}]", id.kind, id.name);
    let mut attempt = 0;
    loop {
        attempt += 1;
        status.send_replace(Status {
            attempt,
            state: State::Starting,
        });
        let why = serve_once(&shared, &id, config.clone(), &status, &wake, limits).await;
        tracing::error!("{who}: stopped serving: {why}");
        let was_serving = status.borrow().state == State::Serving;
        status.send_replace(Status {
            attempt,
            state: State::Ended(why),
        });
        // A server that never started is reported to the check-apply waiting for it;
        // one that stopped later wakes its resource, whose check-apply reports it.
        if was_serving {
            let w = wake.lock().expect("wake lock").clone();
            w();
        }
        restart.notified().await;
    }
}

/// One instance's serve call; returns why it ended.
async fn serve_once(
    shared: &PoolShared,
    id: &ResourceRef,
    mut config: watch::Receiver<Config>,
    status: &Arc<watch::Sender<Status>>,
    wake: &Arc<Mutex<Waker>>,
    limits: CallLimits,
) -> String {
    let cpu = limits.cpu.unwrap_or(shared.limits.cpu);
    let memory = limits.memory_bytes.unwrap_or(shared.limits.memory_bytes);
    let mut inst = match instantiate(shared).await {
        Ok(i) => i,
        Err(m) => return format!("plugin `{}` could not be instantiated: {m}", shared.label),
    };
    let params = config.borrow_and_update().params.clone();
    let serve = ServeCtx {
        id: id.clone(),
        net: NetHost::new(),
        config,
        status: status.clone(),
        wake: wake.clone(),
        ticks: Limits::ticks(cpu),
    };
    inst.store.data_mut().begin_serving(serve, memory);
    inst.store.set_epoch_deadline(1);
    let result = inst.guest.serve(&mut inst.store, id, &params).await;
    let why = match result {
        Ok(Ok(())) => "its serve call returned".to_string(),
        Ok(Err(e)) => e.message,
        Err(trap) => format!(
            "plugin `{}` trapped: {}",
            shared.label,
            describe_trap(shared, &trap, &inst, cpu, memory)
        ),
    };
    drain_stderr(shared, &mut inst);
    why
}
