use std::sync::Arc;
use std::time::Duration;

use platform::db::{Db, Tx, is_unique_violation};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{EventHandler, HandlerError, RetryPolicy};
use crate::Envelope;
use crate::bus::{Delivery, EventBus, Subscription};
use crate::dlq::{DeadLetters, NewDeadLetter};
use crate::observe::{Consumed, count_retry};
use crate::outbox::Outbox;

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// The consumer group: one inbox, one offset per topic, one DLQ.
    pub group: String,
    pub topics: Vec<String>,
    pub retry: RetryPolicy,
    pub batch_size: usize,
    /// Longest wait for new events before checking for replay requests and shutdown.
    pub poll_wait: Duration,
}

impl ConsumerSettings {
    pub fn new(group: &str, topics: &[&str]) -> Self {
        Self {
            group: group.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            retry: RetryPolicy::default(),
            batch_size: 100,
            poll_wait: Duration::from_millis(500),
        }
    }
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Handled {
        attempts: u32,
    },
    /// The group's inbox already had it: no effect, as intended.
    Duplicate,
    DeadLettered {
        attempts: u32,
    },
}

pub struct Consumer {
    db: Db,
    bus: Arc<dyn EventBus>,
    handler: Arc<dyn EventHandler>,
    settings: ConsumerSettings,
    dead_letters: DeadLetters,
    /// The consuming service's outbox, woken after each handled event so that what the
    /// handler wrote leaves at once rather than at the relay's next poll.
    outbox: Option<Outbox>,
}

/// Shutdown arrived while waiting between attempts; the event stays uncommitted and is
/// delivered again after restart.
struct Interrupted;

enum Attempt {
    Done(Outcome),
    Failed { attempts: u32, error: String },
}

impl Consumer {
    /// `db` is the consuming service's database: the handler's effects, the inbox and the
    /// dead letters live there.
    pub fn new(
        db: Db,
        bus: Arc<dyn EventBus>,
        handler: Arc<dyn EventHandler>,
        settings: ConsumerSettings,
    ) -> Self {
        let dead_letters = DeadLetters::new(db.clone());
        Self {
            db,
            bus,
            handler,
            settings,
            dead_letters,
            outbox: None,
        }
    }

    pub fn settings(&self) -> &ConsumerSettings {
        &self.settings
    }

    /// Wakes `outbox`'s relay after every handled event.
    pub fn waking(mut self, outbox: Outbox) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// Consumes until `cancel` fires. The event being handled when it fires is finished (or,
    /// if it is waiting to retry, left for redelivery) before this returns.
    pub async fn run(self, cancel: CancellationToken) {
        if self.bus.orders_across_topics() || self.settings.topics.len() < 2 {
            return self.consume(cancel, true).await;
        }
        let readers = self.settings.topics.iter().enumerate().map(|(i, topic)| {
            let settings = ConsumerSettings {
                topics: vec![topic.clone()],
                ..self.settings.clone()
            };
            let mut reader = Consumer::new(
                self.db.clone(),
                self.bus.clone(),
                self.handler.clone(),
                settings,
            );
            reader.outbox = self.outbox.clone();
            // One reader is enough to act on the group's replay requests.
            reader.consume(cancel.clone(), i == 0)
        });
        let readers: Vec<_> = readers.map(tokio::spawn).collect();
        for reader in readers {
            if let Err(error) = reader.await {
                tracing::error!(group = self.settings.group, %error, "a topic reader panicked");
            }
        }
    }

    /// Consumes `settings.topics` through one subscription; `replays` says whether this
    /// reader also handles the replay requests of dead letters.
    async fn consume(self, cancel: CancellationToken, replays: bool) {
        let group = self.settings.group.clone();
        let Some(mut subscription) = self.subscribe(&cancel).await else {
            return;
        };
        tracing::info!(group, topics = ?self.settings.topics, "consumer started");
        while !cancel.is_cancelled() {
            if replays && let Err(Interrupted) = self.replay_requested(&cancel).await {
                break;
            }
            let batch = tokio::select! {
                () = cancel.cancelled() => break,
                batch = subscription.poll(self.settings.batch_size, self.settings.poll_wait) => batch,
            };
            let deliveries = match batch {
                Ok(deliveries) => deliveries,
                Err(error) => {
                    tracing::warn!(group, %error, "polling the bus failed; retrying");
                    if pause(&cancel, Duration::from_secs(1)).await.is_err() {
                        break;
                    }
                    // The subscription's cursor may be ahead of what was committed.
                    match self.subscribe(&cancel).await {
                        Some(fresh) => subscription = fresh,
                        None => break,
                    }
                    continue;
                }
            };
            for delivery in deliveries {
                if self
                    .deliver(subscription.as_mut(), &delivery, &cancel)
                    .await
                    .is_err()
                {
                    tracing::info!(group, "consumer stopped");
                    return;
                }
            }
        }
        tracing::info!(group, "consumer stopped");
    }

    async fn subscribe(&self, cancel: &CancellationToken) -> Option<Box<dyn Subscription>> {
        loop {
            match self
                .bus
                .subscribe(&self.settings.group, &self.settings.topics)
                .await
            {
                Ok(subscription) => return Some(subscription),
                Err(error) => {
                    tracing::warn!(group = self.settings.group, %error, "cannot subscribe; retrying");
                    pause(cancel, Duration::from_secs(1)).await.ok()?;
                }
            }
        }
    }

    /// Handles one delivery to a final outcome, then commits its offset.
    async fn deliver(
        &self,
        subscription: &mut dyn Subscription,
        delivery: &Delivery,
        cancel: &CancellationToken,
    ) -> Result<Outcome, Interrupted> {
        let span = crate::observe::consumer_span(&self.settings.group, delivery);
        let started = std::time::Instant::now();
        let outcome = self
            .process(delivery, cancel)
            .instrument(span.clone())
            .await?;
        let consumed = match outcome {
            Outcome::Handled { .. } => Consumed::Handled,
            Outcome::Duplicate => Consumed::Duplicate,
            Outcome::DeadLettered { .. } => {
                span.record("otel.status_code", "ERROR");
                Consumed::DeadLettered
            }
        };
        crate::observe::count_consumed(
            &self.settings.group,
            &delivery.envelope.event_type,
            consumed,
            started.elapsed(),
        );
        // In the consumer span: the line carries the trace, event and order ids.
        span.in_scope(|| {
            tracing::debug!(
                partition = delivery.partition,
                offset = delivery.offset,
                ?outcome,
                "event consumed"
            )
        });
        // The effects are committed; if the offset commit fails the event comes again and
        // the inbox turns it into a duplicate.
        let mut wait = Duration::from_millis(200);
        while let Err(error) = subscription.commit(delivery).await {
            tracing::warn!(group = self.settings.group, %error, "offset commit failed; retrying");
            pause(cancel, wait).await?;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
        Ok(outcome)
    }

    /// Handles `delivery` with retries; dead-letters it if it cannot be handled.
    async fn process(
        &self,
        delivery: &Delivery,
        cancel: &CancellationToken,
    ) -> Result<Outcome, Interrupted> {
        match self
            .attempt_with_retries(&delivery.envelope, cancel)
            .await?
        {
            Attempt::Done(outcome) => Ok(outcome),
            Attempt::Failed { attempts, error } => {
                let letter = NewDeadLetter {
                    group: &self.settings.group,
                    delivery,
                    error: &error,
                    attempts,
                };
                let mut wait = Duration::from_millis(200);
                // Nothing is dropped: until the dead letter is stored, the offset stays put.
                while let Err(db_error) = self.dead_letters.insert(&letter).await {
                    tracing::warn!(group = self.settings.group, error = %db_error, "cannot store dead letter; retrying");
                    pause(cancel, wait).await?;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                tracing::error!(
                    group = self.settings.group,
                    event_id = %delivery.envelope.id,
                    event_type = delivery.envelope.event_type,
                    attempts,
                    error,
                    "event dead-lettered"
                );
                // A copy for the bus's own tooling; the stored letter above is the record.
                if let Err(bus_error) = self
                    .bus
                    .dead_letter(&self.settings.group, delivery, &error)
                    .await
                {
                    tracing::warn!(group = self.settings.group, error = %bus_error, "could not copy the dead letter to the bus");
                }
                Ok(Outcome::DeadLettered { attempts })
            }
        }
    }

    async fn attempt_with_retries(
        &self,
        event: &Envelope,
        cancel: &CancellationToken,
    ) -> Result<Attempt, Interrupted> {
        let policy = self.settings.retry;
        let mut attempt = 1;
        let started = std::time::Instant::now();
        loop {
            match self.attempt(event).await {
                Err(HandlerError::NotYet(error))
                    if started.elapsed() >= policy.prerequisite_wait =>
                {
                    return Ok(Attempt::Failed {
                        attempts: attempt,
                        error: format!(
                            "waited {}s for an earlier event: {error}",
                            started.elapsed().as_secs()
                        ),
                    });
                }
                Err(HandlerError::NotYet(error)) => {
                    count_retry(&self.settings.group, &event.event_type, "not_yet");
                    let delay = policy.delay(attempt.min(6));
                    tracing::debug!(
                        group = self.settings.group,
                        event_id = %event.id,
                        retry_in_ms = delay.as_millis() as u64,
                        %error,
                        "waiting for an earlier event"
                    );
                    pause(cancel, delay).await?;
                    attempt += 1;
                }
                Ok(true) => return Ok(Attempt::Done(Outcome::Handled { attempts: attempt })),
                Ok(false) => return Ok(Attempt::Done(Outcome::Duplicate)),
                Err(HandlerError::Permanent(error)) => {
                    return Ok(Attempt::Failed {
                        attempts: attempt,
                        error: error.to_string(),
                    });
                }
                Err(HandlerError::Transient(error)) if attempt >= policy.max_attempts => {
                    return Ok(Attempt::Failed {
                        attempts: attempt,
                        error: format!("gave up after {attempt} attempts: {error}"),
                    });
                }
                Err(HandlerError::Transient(error)) => {
                    count_retry(&self.settings.group, &event.event_type, "transient");
                    let delay = policy.delay(attempt);
                    tracing::warn!(
                        group = self.settings.group,
                        event_id = %event.id,
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        %error,
                        "handler failed; will retry"
                    );
                    pause(cancel, delay).await?;
                    attempt += 1;
                }
            }
        }
    }

    /// One try in one transaction. `Ok(false)` means the inbox already had the event.
    async fn attempt(&self, event: &Envelope) -> Result<bool, HandlerError> {
        let tx = self.db.begin_as("handle event").await?;
        let span = tx.span().clone();
        let handled = self.attempt_in(tx, event).instrument(span).await?;
        if handled {
            self.handler.after_commit(event).await;
        }
        Ok(handled)
    }

    async fn attempt_in(&self, mut tx: Tx, event: &Envelope) -> Result<bool, HandlerError> {
        let group = &self.settings.group;
        let event_id = event.id.to_string();
        let seen: Option<i64> = sqlx::query_scalar(
            "SELECT handled_at FROM inbox WHERE consumer_group = $1 AND event_id = $2",
        )
        .bind(group)
        .bind(&event_id)
        .fetch_optional(&mut **tx)
        .await?;
        if seen.is_some() {
            return Ok(false);
        }
        self.handler.handle(&mut tx, event).await?;
        let inserted = sqlx::query(
            "INSERT INTO inbox (consumer_group, event_id, handled_at) VALUES ($1, $2, $3)",
        )
        .bind(group)
        .bind(&event_id)
        .bind(platform::time::to_millis(platform::time::now()))
        .execute(&mut **tx)
        .await;
        match inserted {
            // Another instance of this group handled it concurrently: ours rolls back.
            Err(error) if is_unique_violation(&error) => return Ok(false),
            other => other?,
        };
        match &self.outbox {
            Some(outbox) => outbox.commit(tx).await?,
            None => tx.commit().await?,
        }
        Ok(true)
    }

    /// Handles the dead letters an operator asked to replay.
    async fn replay_requested(&self, cancel: &CancellationToken) -> Result<(), Interrupted> {
        let requested = match self
            .dead_letters
            .replay_requested(&self.settings.group)
            .await
        {
            Ok(requested) => requested,
            Err(error) => {
                tracing::warn!(group = self.settings.group, %error, "cannot read replay requests");
                return Ok(());
            }
        };
        for letter in requested {
            let outcome = self.attempt_with_retries(&letter.envelope, cancel).await?;
            let result = match outcome {
                Attempt::Done(_) => self.dead_letters.mark_replayed(&letter.id).await,
                Attempt::Failed { attempts, error } => {
                    self.dead_letters
                        .mark_failed_again(&letter.id, attempts, &error)
                        .await
                }
            };
            if let Err(error) = result {
                tracing::warn!(group = self.settings.group, %error, "cannot record replay outcome");
            }
        }
        Ok(())
    }
}

async fn pause(cancel: &CancellationToken, duration: Duration) -> Result<(), Interrupted> {
    tokio::select! {
        () = cancel.cancelled() => Err(Interrupted),
        () = tokio::time::sleep(duration) => Ok(()),
    }
}
