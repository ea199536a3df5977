//! Following a PostgreSQL notification channel, for state a process keeps in memory that
//! other processes change (the catalog's search index, the webhooks' subscriptions).
//!
//! PostgreSQL delivers a `NOTIFY` when the transaction that sent it commits, and only if it
//! commits. Notifications sent while the listening connection is down are lost, so a follower
//! is told when it stops hearing (`deaf`) and when it hears again (`listening`), and reads
//! everything again then.
//!
//! A `LISTEN` can succeed and still hear nothing: behind a pooler in transaction mode
//! (PgBouncer's usual setting) the session that listens is handed to other clients between
//! statements, and what is sent to it is lost. So the listener proves it hears before it says
//! `listening`, and every so often after: it sends a probe on its channel from another
//! connection, as the notifications it follows arrive, and must hear it back in time.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnection, PgListener};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What keeps a copy of some state in step with the notifications of a channel.
#[async_trait]
pub trait Follower: Send + Sync + 'static {
    /// The channel is listened to now; what was sent before was not heard.
    async fn listening(&self);
    /// One notification, in the order the transactions that sent them committed.
    async fn heard(&self, payload: &str);
    /// Nothing is heard from now until `listening` again; `error` is why, when it failed.
    fn deaf(&self, error: Option<&ListenError>);
}

/// Why a listener stopped hearing.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(
        "no probe on {channel} came back ({why}): listening needs a session of its own (a \
         direct URL, or a pooler in session mode, not transaction mode)"
    )]
    NotHeard { channel: &'static str, why: String },
}

/// How often a listener proves it still hears, and how long it waits for its probe.
const PROBE_EVERY: Duration = Duration::from_secs(30);
const PROBE_WITHIN: Duration = Duration::from_secs(5);
/// The payloads of probes start so; no follower is given one.
const PROBE: &str = "commercex-probe:";

/// Why receiving stopped.
enum Until {
    Deadline,
    /// The connection was lost.
    Lost,
    /// The awaited probe came back.
    Token,
}

/// How long to wait before listening again after a failure, at first and at most.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(10);

/// Listens to `channel` of the PostgreSQL database at `url` for a `Follower`.
pub struct Listener<F> {
    url: SecretString,
    channel: &'static str,
    follower: F,
    probe_every: Duration,
    probe_within: Duration,
}

impl<F: Follower> Listener<F> {
    pub fn new(url: SecretString, channel: &'static str, follower: F) -> Self {
        Self {
            url,
            channel,
            follower,
            probe_every: PROBE_EVERY,
            probe_within: PROBE_WITHIN,
        }
    }

    /// Proves it hears every `every`, waiting `within` for each probe.
    pub fn probing(mut self, every: Duration, within: Duration) -> Self {
        self.probe_every = every;
        self.probe_within = within;
        self
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

    /// Listens, proves it hears, then passes on each notification until the connection is
    /// lost (`Ok`), fails, or a probe goes unheard.
    async fn follow(&self, retry: &mut Duration) -> Result<(), ListenError> {
        let mut listener = PgListener::connect(self.url.expose_secret()).await?;
        // A lost connection ends this listener; the next one makes the follower read
        // everything again.
        listener.eager_reconnect(false);
        listener.listen(self.channel).await?;
        // What arrives before `listening` needs no passing on: the follower reads everything
        // then.
        if !self.probe(&mut listener, false).await? {
            return Ok(());
        }
        *retry = FIRST_RETRY;
        self.follower.listening().await;
        loop {
            let next_probe = Instant::now() + self.probe_every;
            if let Until::Lost = self.receive(&mut listener, next_probe, None, true).await? {
                return Ok(());
            }
            if !self.probe(&mut listener, true).await? {
                return Ok(());
            }
        }
    }

    /// Sends a probe from a connection of its own and waits to hear it on `listener`, passing
    /// on (when `pass_on`) what else arrives meanwhile. `Ok(false)`: the connection was lost.
    async fn probe(&self, listener: &mut PgListener, pass_on: bool) -> Result<bool, ListenError> {
        let token = format!("{PROBE}{}", uuid::Uuid::new_v4());
        // Behind a transaction-mode pooler the sender may even be handed the listening
        // session, and be sent the probe itself.
        self.send(&token)
            .await
            .map_err(|error| ListenError::NotHeard {
                channel: self.channel,
                why: format!("sending it failed: {error}"),
            })?;
        let deadline = Instant::now() + self.probe_within;
        match self
            .receive(listener, deadline, Some(&token), pass_on)
            .await?
        {
            Until::Token => Ok(true),
            Until::Lost => Ok(false),
            Until::Deadline => Err(ListenError::NotHeard {
                channel: self.channel,
                why: format!("none within {:?}", self.probe_within),
            }),
        }
    }

    /// Receives on `listener` until `deadline`, the connection is lost, or `token` arrives,
    /// passing on (when `pass_on`) every notification that is not a probe.
    async fn receive(
        &self,
        listener: &mut PgListener,
        deadline: Instant,
        token: Option<&str>,
        pass_on: bool,
    ) -> Result<Until, sqlx::Error> {
        loop {
            let Ok(received) = tokio::time::timeout_at(deadline, listener.try_recv()).await else {
                return Ok(Until::Deadline);
            };
            let Some(notification) = received? else {
                return Ok(Until::Lost);
            };
            let payload = notification.payload();
            if token == Some(payload) {
                return Ok(Until::Token);
            }
            if pass_on && !payload.starts_with(PROBE) {
                self.follower.heard(payload).await;
            }
        }
    }

    /// Sends `payload` on the channel from a connection of its own, as the notifications the
    /// listener follows are sent.
    async fn send(&self, payload: &str) -> Result<(), sqlx::Error> {
        let mut sender = PgConnection::connect(self.url.expose_secret()).await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(self.channel)
            .bind(payload)
            .execute(&mut sender)
            .await?;
        sender.close().await
    }
}
