//! Background work (relays, consumers, the sweeper, key refresh), collected while the process
//! is built and started together when it runs. It stops in two steps: first everything that
//! can still write events (consumers, the sweeper), then the relays, so that what the last
//! handled event wrote to an outbox is published before the process exits.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type Start = Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

#[derive(Default)]
pub struct Workers {
    producers: Vec<Start>,
    publishers: Vec<Start>,
}

/// The running workers.
pub struct Running {
    producers: (CancellationToken, TaskTracker),
    publishers: (CancellationToken, TaskTracker),
}

fn boxed<F, Fut>(work: F) -> Start
where
    F: FnOnce(CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Box::new(move |cancel| Box::pin(work(cancel)))
}

fn start_all(work: Vec<Start>) -> (CancellationToken, TaskTracker) {
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    for start in work {
        tasks.spawn(start(cancel.clone()));
    }
    tasks.close();
    (cancel, tasks)
}

impl Workers {
    /// Adds work that runs until the token it is given is cancelled.
    pub fn spawn<F, Fut>(&mut self, work: F)
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.producers.push(boxed(work));
    }

    /// Adds a relay: stopped only after all other work has stopped.
    pub fn spawn_publisher<F, Fut>(&mut self, work: F)
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.publishers.push(boxed(work));
    }

    pub fn start(self) -> Running {
        Running {
            publishers: start_all(self.publishers),
            producers: start_all(self.producers),
        }
    }
}

impl Running {
    /// Stops the work, then the relays, each step within `timeout`; false if one overran.
    pub async fn stop(self, timeout: Duration) -> bool {
        let mut in_time = true;
        for (cancel, tasks) in [self.producers, self.publishers] {
            cancel.cancel();
            in_time &= tokio::time::timeout(timeout, tasks.wait()).await.is_ok();
        }
        in_time
    }
}
