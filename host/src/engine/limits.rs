//! The metaparams that limit how often and how many check-applies run: the `limit` +
//! `burst` event rate limit (a token bucket per vertex) and the `sema` named semaphores
//! shared by every vertex that names them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::graph::Semaphore as SemaDecl;

/// A token bucket: `burst` tokens, refilled at `rate` per second. Hand-written (a dozen
/// lines) rather than a rate-limiting crate because the engine needs "how long until
/// the next token", not a limiter that sleeps on its own, and it never shares buckets.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    /// `rate` events per second, `burst` at once; the parser keeps both in their ranges
    /// (`Meta::MIN_LIMIT`..=`Meta::MAX_LIMIT`, at least 1), and a wait that would not fit
    /// a `Duration` anyway is capped instead of panicking.
    pub fn new(rate: f64, burst: u32) -> Bucket {
        let burst = f64::from(burst.max(1));
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Take a token at `now`; returns how long to wait before the event may pass (zero
    /// when a token was available). The token is taken either way.
    pub fn take(&mut self, now: Instant) -> Duration {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.last = Some(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-self.tokens / self.rate).unwrap_or(Duration::MAX)
        }
    }
}

/// Named semaphores, created on first use with the count the graph gives them.
#[derive(Debug, Default)]
pub struct Semaphores {
    by_id: Mutex<HashMap<String, (u32, Arc<Semaphore>)>>,
}

impl Semaphores {
    /// The semaphores for `decls`, sorted by id. A count that differs from the one a
    /// semaphore was created with (only possible across a graph swap; within one graph
    /// the planner rejects it) replaces the semaphore for later holders.
    pub fn get(&self, decls: &[SemaDecl]) -> Vec<Arc<Semaphore>> {
        let mut sorted: Vec<&SemaDecl> = decls.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        sorted.dedup_by(|a, b| a.id == b.id);
        let mut map = self.by_id.lock().expect("semaphores lock");
        sorted
            .into_iter()
            .map(|d| {
                let entry = map
                    .entry(d.id.clone())
                    .or_insert_with(|| (d.count, Arc::new(Semaphore::new(permits(d.count)))));
                if entry.0 != d.count {
                    *entry = (d.count, Arc::new(Semaphore::new(permits(d.count))));
                }
                entry.1.clone()
            })
            .collect()
    }
}

/// A semaphore's count as tokio permits. The parser caps counts far below tokio's
/// maximum; a larger one is capped rather than panicking in `Semaphore::new`.
fn permits(count: u32) -> usize {
    usize::try_from(count).map_or(Semaphore::MAX_PERMITS, |n| n.min(Semaphore::MAX_PERMITS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_lets_a_burst_through_then_spaces_events() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2.0, 2);
        assert_eq!(b.take(t0), Duration::ZERO);
        assert_eq!(b.take(t0), Duration::ZERO);
        assert_eq!(b.take(t0), Duration::from_millis(500));
        // After waiting, the next event is spaced by 1/rate again.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.take(t1), Duration::from_millis(500));
        // A long quiet spell refills only up to the burst.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(b.take(t2), Duration::ZERO);
        assert_eq!(b.take(t2), Duration::ZERO);
        assert!(b.take(t2) > Duration::ZERO);
    }

    #[test]
    fn extreme_rates_never_panic() {
        let t0 = Instant::now();
        for rate in [f64::MIN_POSITIVE, 1e-300, 1e-9] {
            let mut b = Bucket::new(rate, 1);
            assert_eq!(b.take(t0), Duration::ZERO);
            assert!(b.take(t0) > Duration::from_secs(1_000_000));
        }
        let mut b = Bucket::new(1e300, u32::MAX);
        assert_eq!(b.take(t0), Duration::ZERO);
        assert_eq!(permits(u32::MAX), 4_294_967_295.min(Semaphore::MAX_PERMITS));
    }

    #[test]
    fn semaphores_are_shared_by_id_and_sorted() {
        let s = Semaphores::default();
        let decl = |id: &str, count| SemaDecl {
            id: id.into(),
            count,
        };
        let a = s.get(&[decl("b", 2), decl("a", 1)]);
        let b = s.get(&[decl("a", 1)]);
        assert!(Arc::ptr_eq(&a[0], &b[0]), "same id, same semaphore");
        assert_eq!(a[0].available_permits(), 1);
        assert_eq!(a[1].available_permits(), 2);
    }
}
