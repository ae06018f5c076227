//! Restarting event sources that can stop: a watch command that exits, a D-Bus connection
//! that breaks. [`supervise`] runs a source again after the resource's `delay`, at most
//! `retry` times (-1: forever), logging each stop with `kind[name]` so the user sees why
//! the resource is not watched, and wakes the resource after every restart because the
//! system may have changed while nothing was watching.

use std::future::Future;
use std::time::Duration;

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
    loop {
        let message = match start().await {
            Ok(()) => return,
            Err(m) => m,
        };
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
        tracing::error!("{who}: {message}; restarting the watch in {delay_ms}ms ({remaining})");
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
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
}
