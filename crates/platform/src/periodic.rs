//! Background work done at a steady interval (sweeps, pruning) until the process stops.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// When pruning first runs after a process starts: out of the way of a process that is
/// starting (and of one that only runs for a moment).
const PRUNE_FIRST_AFTER: Duration = Duration::from_secs(60);

/// How often what outlived its retention is looked for.
pub const PRUNE_EVERY: Duration = Duration::from_secs(10 * 60);

/// Runs `work` at once, then every `every` after each run finishes, until `cancel` fires.
///
/// A run still going when `cancel` fires is dropped, not waited for: what it had committed
/// stays and its open transaction rolls back, so stopping loses nothing, and a database that
/// is slow or locked never holds up the process's shutdown.
///
/// `work` makes each run's future (`|| self.sweep()`), rather than being an async closure:
/// a future an async closure lends from itself cannot be shown to be `Send` for every
/// lifetime, and the workers run on a multi-threaded runtime.
pub async fn every<F, Fut>(every: Duration, cancel: &CancellationToken, work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    every_after(Duration::ZERO, every, cancel, work).await;
}

/// Deletes what outlived its retention: `prune(now)` a minute after start-up, then every
/// `every`, until `cancel` fires. What it deleted (when anything) is logged, and a failure
/// (the database away) is logged and tried again next time: nothing is lost by pruning late.
pub async fn prune_every<F, Fut, T, E>(
    what: &str,
    every: Duration,
    cancel: &CancellationToken,
    mut prune: F,
) where
    F: FnMut(DateTime<Utc>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    T: std::fmt::Debug + Default + PartialEq,
    E: std::fmt::Display,
{
    let run = || {
        let pruning = prune(crate::time::now());
        async move {
            match pruning.await {
                Ok(pruned) if pruned == T::default() => {}
                Ok(pruned) => tracing::info!(what, ?pruned, "pruned what outlived its retention"),
                Err(error) => tracing::warn!(what, %error, "pruning failed; will retry"),
            }
        }
    };
    every_after(PRUNE_FIRST_AFTER, every, cancel, run).await;
}

/// As [`every`], the first run after `first`.
async fn every_after<F, Fut>(
    first: Duration,
    every: Duration,
    cancel: &CancellationToken,
    mut work: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut pause = first;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = work() => {}
        }
        pause = every;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn runs_at_the_interval_and_a_run_in_progress_does_not_hold_up_the_stop() {
        let cancel = CancellationToken::new();
        let runs = Arc::new(AtomicU32::new(0));
        let worker = {
            let (cancel, runs) = (cancel.clone(), runs.clone());
            tokio::spawn(async move {
                every_after(
                    Duration::from_secs(60),
                    Duration::from_secs(600),
                    &cancel,
                    || {
                        let runs = runs.clone();
                        async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            // The third run never ends (a lock that is never released).
                            if runs.load(Ordering::SeqCst) == 3 {
                                std::future::pending::<()>().await;
                            }
                        }
                    },
                )
                .await;
            })
        };
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0, "not before the first pause");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(1200)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(1), worker)
            .await
            .expect("stops at once")
            .expect("worker");
    }
}
