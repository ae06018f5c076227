//! Converged-state tracking: each vertex reports its phase; the graph is *settled* when
//! no vertex has work in progress, and *converged* when it has stayed settled with every
//! vertex in a good state for the converged timeout.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Where a vertex is in its life, as far as convergence is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Counts of vertices by phase, updated on every transition.
#[derive(Debug)]
pub struct Converger {
    busy: AtomicUsize,
    not_ok: AtomicUsize,
    /// Bumped on every transition, so a waiter can tell "nothing happened".
    epoch: AtomicU64,
    changed: Notify,
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
        }
    }

    /// Record a vertex moving from `from` to `to`.
    pub fn transition(&self, from: Phase, to: Phase) {
        if from == to {
            return;
        }
        if from == Phase::Busy {
            self.busy.fetch_sub(1, Ordering::AcqRel);
        }
        if to == Phase::Busy {
            self.busy.fetch_add(1, Ordering::AcqRel);
        }
        if from == Phase::Ok {
            self.not_ok.fetch_add(1, Ordering::AcqRel);
        }
        if to == Phase::Ok {
            self.not_ok.fetch_sub(1, Ordering::AcqRel);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// A vertex that leaves the graph in phase `last`.
    pub fn remove(&self, last: Phase) {
        if last == Phase::Busy {
            self.busy.fetch_sub(1, Ordering::AcqRel);
        }
        if last != Phase::Ok {
            self.not_ok.fetch_sub(1, Ordering::AcqRel);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Vertices with work in progress.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// Wait until the graph has stayed settled, with no transition at all, for `hold`.
    pub async fn settled_for(&self, hold: Duration) -> Settled {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.busy() > 0 {
                notified.await;
                continue;
            }
            let epoch = self.epoch.load(Ordering::Acquire);
            tokio::select! {
                _ = tokio::time::sleep(hold) => {}
                _ = &mut notified => continue,
            }
            if self.busy() == 0 && self.epoch.load(Ordering::Acquire) == epoch {
                return if self.not_ok.load(Ordering::Acquire) == 0 {
                    Settled::Converged
                } else {
                    Settled::WithFailures
                };
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
}
