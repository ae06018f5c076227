//! Restarting event sources that can stop: a watch command that exits, a D-Bus connection
//! that breaks. [`supervise`] runs a source again after the resource's `delay`, at most
//! `retry` times (-1: forever), logging each stop with `kind[name]` so the user sees why
//! the resource is not watched, and wakes the resource after every restart because the
//! system may have changed while nothing was watching.
//!
//! **A floor under restarts.** Whatever `retry` and `delay` say, a source that keeps
//! failing is restarted no sooner than a [`Backoff`] allows: 50 ms after the first quick
//! failure, twice that after the next, up to 30 s; a source that ran for a while starts
//! over at 50 ms. The engine keeps a resource's retried check-applies at least
//! [`Backoff::FLOOR`] apart, so nothing is restarted or re-applied hundreds of times a
//! second.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::sys::waker::Waker;

/// Whose event source it is and how it is restarted: the resource's `retry` and `delay`
/// metaparams, and how to wake it.
#[derive(Clone)]
pub struct Restarts {
    /// `kind[name]`, for the log.
    pub who: String,
    /// Restarts left (-1: forever).
    pub retry: i32,
    /// Pause before each restart.
    pub delay_ms: u64,
    /// Wakes the resource: for every event, and after every restart.
    pub wake: Waker,
}

/// The growing least pause between restarts (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    /// Failures in a row that came quickly.
    quick: u32,
}

impl Backoff {
    /// The first pause.
    pub const FLOOR: Duration = Duration::from_millis(50);
    /// The longest pause.
    pub const CEILING: Duration = Duration::from_secs(30);
    /// A source that ran at least this long before failing starts over at [`Self::FLOOR`].
    pub const SETTLED: Duration = Duration::from_secs(10);

    /// The pause before the next restart, after a failure of something that ran for
    /// `ran`, given the configured `delay`: the longer of the two.
    pub fn next(&mut self, ran: Duration, delay: Duration) -> Duration {
        if ran >= Self::SETTLED {
            self.quick = 0;
        }
        let floor = Self::FLOOR
            .saturating_mul(1u32 << self.quick.min(20))
            .min(Self::CEILING);
        self.quick = self.quick.saturating_add(1);
        floor.max(delay)
    }

    /// It worked: the next failure starts over.
    pub fn reset(&mut self) {
        self.quick = 0;
    }
}

/// Run `start` until it fails for good. Each call runs the source until it stops and
/// returns why (`Err(message)`); `Ok(())` means it ended on purpose and is not restarted.
pub async fn supervise<F, Fut>(restarts: Restarts, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let Restarts {
        who,
        retry,
        delay_ms,
        wake,
    } = restarts;
    let mut left = retry;
    let mut restarts = 0u64;
    let mut backoff = Backoff::default();
    loop {
        let started = Instant::now();
        let message = match start().await {
            Ok(()) => return,
            Err(m) => m,
        };
        let pause = backoff.next(started.elapsed(), Duration::from_millis(delay_ms));
        if left == 0 {
            tracing::error!(
                "{who}: {message}; not restarting the watch (retry: {retry}, {restarts} \
                 restarts); drift is repaired only on other events"
            );
            return;
        }
        if left > 0 {
            left -= 1;
        }
        let remaining = if left < 0 {
            "retrying forever".to_string()
        } else {
            format!("{left} retries left")
        };
        tracing::error!(
            "{who}: {message}; restarting the watch in {}ms ({remaining})",
            pause.as_millis()
        );
        tokio::time::sleep(pause).await;
        restarts += 1;
        wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn restarts_at_most_retry_times_and_wakes_after_each() {
        let starts = Arc::new(AtomicUsize::new(0));
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        let s = starts.clone();
        let restarts = Restarts {
            who: "exec[x]".into(),
            retry: 2,
            delay_ms: 1,
            wake: Arc::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            }),
        };
        supervise(restarts, move || {
            s.fetch_add(1, Ordering::SeqCst);
            async { Err("it died".to_string()) }
        })
        .await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_floor_grows_and_starts_over_after_a_long_run() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(1);
        let zero = Duration::ZERO;
        let pauses: Vec<u128> = (0..5).map(|_| b.next(quick, zero).as_millis()).collect();
        assert_eq!(pauses, [50, 100, 200, 400, 800]);
        for _ in 0..20 {
            b.next(quick, zero);
        }
        assert_eq!(b.next(quick, zero), Backoff::CEILING);
        // A configured delay above the floor wins.
        assert_eq!(
            b.next(Backoff::SETTLED, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        assert_eq!(b.next(quick, zero).as_millis(), 100);
        b.reset();
        assert_eq!(b.next(quick, zero).as_millis(), 50);
    }

    /// A watch command that fails at once with `delay: 0` and `retry: -1` is not
    /// restarted hundreds of times a second.
    #[tokio::test(start_paused = true)]
    async fn a_source_that_fails_at_once_is_not_restarted_in_a_hot_loop() {
        let starts = Arc::new(AtomicUsize::new(0));
        let s = starts.clone();
        let restarts = Restarts {
            who: "exec[x]".into(),
            retry: -1,
            delay_ms: 0,
            wake: Arc::new(|| {}),
        };
        let run = tokio::spawn(supervise(restarts, move || {
            s.fetch_add(1, Ordering::SeqCst);
            async { Err("exited".to_string()) }
        }));
        tokio::time::sleep(Duration::from_secs(10)).await;
        run.abort();
        // 50 + 100 + ... ms: 8 starts fit in 10 s, not thousands.
        let n = starts.load(Ordering::SeqCst);
        assert!((7..=9).contains(&n), "{n} starts in 10 s");
    }
}
