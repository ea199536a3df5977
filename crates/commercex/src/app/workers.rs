//! Background work (relays, consumers, the sweeper, key refresh), collected while the process
//! is built and started together when it runs, all stopped by one cancellation token.

use std::future::Future;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type Start = Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

#[derive(Default)]
pub struct Workers {
    pending: Vec<Start>,
}

impl Workers {
    /// Adds work that runs until the token it is given is cancelled.
    pub fn spawn<F, Fut>(&mut self, work: F)
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.pending
            .push(Box::new(move |cancel| Box::pin(work(cancel))));
    }

    /// Starts everything; the tracker says when all of it has stopped.
    pub fn start(self, cancel: &CancellationToken) -> TaskTracker {
        let tasks = TaskTracker::new();
        for work in self.pending {
            tasks.spawn(work(cancel.clone()));
        }
        tasks.close();
        tasks
    }
}
