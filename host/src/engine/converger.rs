//! Converged-state tracking: each vertex reports its phase; the graph is *settled* when
//! no vertex has work in progress and nothing *happened* for the converged timeout, and
//! *converged* when it settled with every vertex in a good state.
//!
//! Something happens when a check-apply changes something (or would, in noop) or fails,
//! when a vertex fails, is blocked, or joins or leaves the graph. A poll or an event whose
//! check-apply finds nothing to do is busy for a moment but does not restart the timer,
//! so a resource polling every second still lets the graph converge; a resource waiting
//! to retry stays busy, so a graph with retries left never counts as converged.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Where a vertex is in its life, as far as convergence is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Dirty, running check-apply, or waiting to retry: work is in progress.
    Busy,
    /// The last check-apply succeeded and nothing has happened since.
    Ok,
    /// The last check-apply failed and no retry is left; waits for the next event.
    Failed,
    /// Waiting for a predecessor that failed.
    Blocked,
}

impl Phase {
    /// The phase stored as `phase as u8` (vertices keep theirs in an atomic).
    pub fn from_u8(n: u8) -> Phase {
        match n {
            0 => Phase::Busy,
            1 => Phase::Ok,
            2 => Phase::Failed,
            _ => Phase::Blocked,
        }
    }
}

/// Counts of vertices by phase, updated on every transition.
#[derive(Debug)]
pub struct Converger {
    busy: AtomicUsize,
    not_ok: AtomicUsize,
    /// Bumped whenever something happens, so a waiter can tell "nothing happened".
    epoch: AtomicU64,
    /// Woken when the epoch moves.
    changed: Notify,
    /// Woken when `busy` drops to zero. A waiter waits on these two only: waking it on
    /// every transition cost one wake of the waiting task (the main thread) per
    /// check-apply.
    idle: Notify,
}

/// How a settled graph ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Every vertex is in a good state.
    Converged,
    /// Nothing is in progress, but some vertices failed or are blocked.
    WithFailures,
}

impl Converger {
    /// All `vertices` start busy (they have not been checked yet).
    pub fn new(vertices: usize) -> Converger {
        Converger {
            busy: AtomicUsize::new(vertices),
            not_ok: AtomicUsize::new(vertices),
            epoch: AtomicU64::new(0),
            changed: Notify::new(),
            idle: Notify::new(),
        }
    }

    /// A vertex joins the graph (busy: it has not been checked yet).
    pub fn add(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.not_ok.fetch_add(1, Ordering::AcqRel);
        self.activity();
    }

    /// Something happened that restarts the converged timer (a change or a failure).
    pub fn activity(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Record a vertex moving from `from` to `to`. Only moves into or out of a failed or
    /// blocked phase count as activity; busy ↔ ok does not.
    pub fn transition(&self, from: Phase, to: Phase) {
        if from == to {
            return;
        }
        // Count up before counting down, so `busy` never reads zero while a vertex is
        // between two busy phases.
        if to == Phase::Busy {
            self.busy.fetch_add(1, Ordering::AcqRel);
        }
        if from == Phase::Ok {
            self.not_ok.fetch_add(1, Ordering::AcqRel);
        }
        if to == Phase::Ok {
            self.not_ok.fetch_sub(1, Ordering::AcqRel);
        }
        let bad = |p| matches!(p, Phase::Failed | Phase::Blocked);
        if bad(from) || bad(to) {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            self.changed.notify_waiters();
        }
        if from == Phase::Busy && self.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// A vertex that leaves the graph in phase `last`.
    pub fn remove(&self, last: Phase) {
        if last != Phase::Ok {
            self.not_ok.fetch_sub(1, Ordering::AcqRel);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        if last == Phase::Busy && self.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Vertices with work in progress.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// Wait until nothing is busy.
    async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.busy() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Wait until something happens (a change, a failure, a vertex joining or leaving).
    pub async fn unsettled(&self) {
        self.changed_since(self.epoch()).await;
    }

    /// The count of what happened so far (see [`Converger::changed_since`]).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Wait until something has happened since [`Converger::epoch`] said `epoch`.
    pub async fn changed_since(&self, epoch: u64) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.epoch.load(Ordering::Acquire) != epoch {
                return;
            }
            changed.await;
        }
    }

    /// Wait until nothing has happened for `hold` and nothing is busy.
    pub async fn settled_for(&self, hold: Duration) -> Settled {
        'restart: loop {
            self.idle().await;
            let epoch = self.epoch.load(Ordering::Acquire);
            let deadline = tokio::time::Instant::now() + hold;
            loop {
                let changed = self.changed.notified();
                let idle = self.idle.notified();
                tokio::pin!(changed, idle);
                changed.as_mut().enable();
                idle.as_mut().enable();
                if self.epoch.load(Ordering::Acquire) != epoch {
                    continue 'restart;
                }
                let timed_out = tokio::time::Instant::now() >= deadline;
                if timed_out && self.busy() == 0 {
                    return if self.not_ok.load(Ordering::Acquire) == 0 {
                        Settled::Converged
                    } else {
                        Settled::WithFailures
                    };
                }
                if timed_out {
                    tokio::select! {
                        _ = &mut changed => {}
                        _ = &mut idle => {}
                    }
                } else {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = &mut changed => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settles_only_when_nothing_is_busy() {
        let c = std::sync::Arc::new(Converger::new(2));
        c.transition(Phase::Busy, Phase::Ok);
        let c2 = c.clone();
        let waiter = tokio::spawn(async move { c2.settled_for(Duration::from_millis(20)).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        c.transition(Phase::Busy, Phase::Failed);
        assert_eq!(waiter.await.unwrap(), Settled::WithFailures);
        c.transition(Phase::Failed, Phase::Busy);
        c.transition(Phase::Busy, Phase::Ok);
        assert_eq!(
            c.settled_for(Duration::from_millis(1)).await,
            Settled::Converged
        );
    }

    #[tokio::test(start_paused = true)]
    async fn polls_that_change_nothing_do_not_restart_the_timer() {
        let c = std::sync::Arc::new(Converger::new(1));
        c.transition(Phase::Busy, Phase::Ok);
        let c2 = c.clone();
        let waiter = tokio::spawn(async move { c2.settled_for(Duration::from_secs(2)).await });
        // A poll every 500 ms that finds nothing to do.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            c.transition(Phase::Ok, Phase::Busy);
            c.transition(Phase::Busy, Phase::Ok);
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            waiter.is_finished(),
            "no-op polls kept the graph unconverged"
        );
        assert_eq!(waiter.await.unwrap(), Settled::Converged);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_restarts_the_timer() {
        let c = std::sync::Arc::new(Converger::new(1));
        c.transition(Phase::Busy, Phase::Ok);
        let c2 = c.clone();
        let waiter = tokio::spawn(async move { c2.settled_for(Duration::from_secs(2)).await });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        c.transition(Phase::Ok, Phase::Busy);
        c.activity();
        c.transition(Phase::Busy, Phase::Ok);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(!waiter.is_finished(), "a change did not restart the timer");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(waiter.is_finished());
    }
}
