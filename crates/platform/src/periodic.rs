//! Background work done at a steady interval (sweeps, pruning) until the process stops.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `work` at once, then every `every` after it finishes, until `cancel` fires. A run
/// in progress is finished, not abandoned: each is a transaction or a few, and stopping
/// between them loses nothing.
///
/// `work` makes each run's future (`|| self.sweep()`), rather than being an async closure:
/// a future an async closure lends from itself cannot be shown to be `Send` for every
/// lifetime, and the workers run on a multi-threaded runtime.
pub async fn every<F, Fut>(every: Duration, cancel: &CancellationToken, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        work().await;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
