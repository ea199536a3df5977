//! Following a PostgreSQL notification channel, for state a process keeps in memory that
//! other processes change (the catalog's search index, the webhooks' subscriptions).
//!
//! PostgreSQL delivers a `NOTIFY` when the transaction that sent it commits, and only if it
//! commits. Notifications sent while the listening connection is down are lost, so a follower
//! is told when it stops hearing (`deaf`) and when it hears again (`listening`), and reads
//! everything again then.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

/// What keeps a copy of some state in step with the notifications of a channel.
#[async_trait]
pub trait Follower: Send + Sync + 'static {
    /// The channel is listened to now; what was sent before was not heard.
    async fn listening(&self);
    /// One notification, in the order the transactions that sent them committed.
    async fn heard(&self, payload: &str);
    /// Nothing is heard from now until `listening` again; `error` is why, when it failed.
    fn deaf(&self, error: Option<&sqlx::Error>);
}

/// How long to wait before listening again after a failure, at first and at most.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(10);

/// Listens to `channel` of the PostgreSQL database at `url` for a `Follower`.
pub struct Listener<F> {
    url: SecretString,
    channel: &'static str,
    follower: F,
}

impl<F: Follower> Listener<F> {
    pub fn new(url: SecretString, channel: &'static str, follower: F) -> Self {
        Self {
            url,
            channel,
            follower,
        }
    }

    /// Listens until `cancel` fires, listening again whenever the connection is lost.
    pub async fn run(self, cancel: CancellationToken) {
        let mut retry = FIRST_RETRY;
        loop {
            let outcome = tokio::select! {
                () = cancel.cancelled() => return,
                outcome = self.follow(&mut retry) => outcome,
            };
            self.follower.deaf(outcome.as_ref().err());
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(LAST_RETRY);
        }
    }

    /// Listens, then passes on each notification until the connection is lost (`Ok`) or
    /// fails.
    async fn follow(&self, retry: &mut Duration) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect(self.url.expose_secret()).await?;
        // A lost connection ends this listener; the next one makes the follower read
        // everything again.
        listener.eager_reconnect(false);
        listener.listen(self.channel).await?;
        *retry = FIRST_RETRY;
        self.follower.listening().await;
        while let Some(notification) = listener.try_recv().await? {
            self.follower.heard(notification.payload()).await;
        }
        Ok(())
    }
}
