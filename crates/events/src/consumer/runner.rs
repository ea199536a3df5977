use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::db::Db;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::batch::{Finished, Step, log_consumed};
use super::parked::{Parked, ParkedEvent};
use super::{EventHandler, HandlerError, RetryPolicy, positions};
use crate::bus::{BusError, Delivery, EventBus, Positions, Subscription};
use crate::dlq::{DeadLetters, NewDeadLetter};
use crate::telemetry::{Consumed, consumer_span, count_consumed, count_outage_pause, count_retry};

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// The consumer group: one inbox, one position per partition, one DLQ.
    pub group: String,
    pub topics: Vec<String>,
    pub retry: RetryPolicy,
    /// Most events handled in one transaction.
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

/// What became of one event handled on its own (a replay, a parked event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Handled,
    /// The group's inbox already had it: no effect, as intended.
    Duplicate,
}

/// How long positions moved past events the group does not handle may stay unsaved when no
/// transaction comes to carry them. Losing them costs only reading those events again.
const SAVE_SKIPPED_EVERY: Duration = Duration::from_secs(5);
/// How often the upkeep reader looks for dead letters an operator asked to replay.
const REPLAYS_EVERY: Duration = Duration::from_secs(1);
/// How often parked events this process knows of are tried again without a wake-up (their
/// prerequisite handled by another instance of the group, or their wait over).
const SWEEP_PARKED_EVERY: Duration = Duration::from_secs(2);
/// How often the parking is looked at even when this process parked nothing: another
/// instance of the group may have, and stopped.
const SWEEP_ALL_PARKED_EVERY: Duration = Duration::from_secs(30);

pub struct Consumer {
    pub(crate) db: Db,
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) handler: Arc<dyn EventHandler>,
    pub(crate) settings: ConsumerSettings,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) parked: Arc<Parked>,
}

/// Shutdown arrived while waiting; what was not committed is delivered again after restart.
pub(crate) struct Interrupted;

impl Consumer {
    /// `db` is the consuming service's database: the handler's effects, the inbox, the
    /// positions, the parked events and the dead letters live there.
    pub fn new(
        db: Db,
        bus: Arc<dyn EventBus>,
        handler: Arc<dyn EventHandler>,
        settings: ConsumerSettings,
    ) -> Self {
        let dead_letters = DeadLetters::new(db.clone());
        let parked = Arc::new(Parked::empty(&settings.group));
        Self {
            db,
            bus,
            handler,
            settings,
            dead_letters,
            parked,
        }
    }

    pub fn settings(&self) -> &ConsumerSettings {
        &self.settings
    }

    /// Consumes until `cancel` fires. A batch being handled when it fires is finished (or,
    /// where an event waits to retry, left for redelivery) before this returns. Each topic
    /// has a reader of its own: buses order events only within a partition, and one topic's
    /// backlog must not hold up another's.
    pub async fn run(mut self, cancel: CancellationToken) {
        let Some(parked) = self.load_parked(&cancel).await else {
            return;
        };
        self.parked = Arc::new(parked);
        let readers = self.settings.topics.iter().enumerate().map(|(i, topic)| {
            let reader = Consumer {
                db: self.db.clone(),
                bus: self.bus.clone(),
                handler: self.handler.clone(),
                settings: ConsumerSettings {
                    topics: vec![topic.clone()],
                    ..self.settings.clone()
                },
                dead_letters: self.dead_letters.clone(),
                parked: self.parked.clone(),
            };
            // One reader is enough to act on the group's replay requests and parked events.
            tokio::spawn(reader.consume(cancel.clone(), i == 0))
        });
        let readers: Vec<_> = readers.collect();
        for reader in readers {
            if let Err(error) = reader.await {
                tracing::error!(group = self.settings.group, %error, "a topic reader panicked");
            }
        }
    }

    async fn load_parked(&self, cancel: &CancellationToken) -> Option<Parked> {
        loop {
            match Parked::load(&self.db, &self.settings.group).await {
                Ok(parked) => return Some(parked),
                Err(error) => {
                    tracing::warn!(group = self.settings.group, %error, "cannot read parked events; retrying");
                    pause(cancel, Duration::from_secs(1)).await.ok()?;
                }
            }
        }
    }

    /// Consumes `settings.topics` through one subscription; `upkeep` says whether this
    /// reader also handles replay requests and parked events.
    async fn consume(self, cancel: CancellationToken, upkeep: bool) {
        let group = self.settings.group.clone();
        let Some(mut subscription) = self.subscribe(&cancel).await else {
            return;
        };
        tracing::info!(group, topics = ?self.settings.topics, "consumer started");
        let mut unsaved = Positions::new();
        let mut saved_at = Instant::now();
        let mut swept_at = Instant::now();
        let mut replays_at: Option<Instant> = None;
        while !cancel.is_cancelled() {
            if upkeep {
                if replays_at.is_none_or(|at| at.elapsed() >= REPLAYS_EVERY) {
                    replays_at = Some(Instant::now());
                    if self.replay_requested(&cancel).await.is_err() {
                        break;
                    }
                }
                let due = if self.parked.is_empty() {
                    SWEEP_ALL_PARKED_EVERY
                } else {
                    SWEEP_PARKED_EVERY
                };
                if swept_at.elapsed() >= due {
                    swept_at = Instant::now();
                    if self.sweep_parked(&cancel).await.is_err() {
                        break;
                    }
                }
            }
            let batch = tokio::select! {
                () = cancel.cancelled() => break,
                batch = subscription.poll(self.settings.batch_size, self.settings.poll_wait) => batch,
            };
            let deliveries = match batch {
                Ok(deliveries) => deliveries,
                Err(BusError::Interrupted(error)) => {
                    tracing::warn!(group, %error, "the bus did not answer; polling again");
                    if pause(&cancel, Duration::from_secs(1)).await.is_err() {
                        break;
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(group, %error, "polling the bus failed; retrying");
                    if pause(&cancel, Duration::from_secs(1)).await.is_err() {
                        break;
                    }
                    // The subscription's cursor may be ahead of what was committed.
                    unsaved.clear();
                    let Some(fresh) = self.subscribe(&cancel).await else {
                        break;
                    };
                    // Closing a Kafka member waits for what it has in flight, seconds while
                    // the broker is away: not on a worker of the runtime.
                    let failed = std::mem::replace(&mut subscription, fresh);
                    tokio::task::spawn_blocking(move || drop(failed));
                    continue;
                }
            };
            if self
                .deliver(subscription.as_mut(), &deliveries, &mut unsaved, &cancel)
                .await
                .is_err()
            {
                break;
            }
            if !unsaved.is_empty() && saved_at.elapsed() >= SAVE_SKIPPED_EVERY {
                saved_at = Instant::now();
                self.save_positions(&mut unsaved).await;
            }
        }
        self.save_positions(&mut unsaved).await;
        if let Err(error) = subscription.leave().await {
            tracing::warn!(group, %error, "positions not sent on leaving; they come again");
        }
        tracing::info!(group, "consumer stopped");
    }

    async fn subscribe(&self, cancel: &CancellationToken) -> Option<Box<dyn Subscription>> {
        loop {
            let resumed = async {
                let resume = if self.bus.positions_in_consumer_db() {
                    positions::load(&self.db, &self.settings.group, &self.settings.topics)
                        .await
                        .map_err(|e| e.to_string())?
                } else {
                    Positions::new()
                };
                self.bus
                    .subscribe(&self.settings.group, &self.settings.topics, &resume)
                    .await
                    .map_err(|e| e.to_string())
            };
            match resumed.await {
                Ok(subscription) => return Some(subscription),
                Err(error) => {
                    tracing::warn!(group = self.settings.group, %error, "cannot subscribe; retrying");
                    pause(cancel, Duration::from_secs(1)).await.ok()?;
                }
            }
        }
    }

    /// Positions moved past events the group does not handle, saved on their own when no
    /// transaction carried them. Best effort: if it fails they are read again after a
    /// restart, and skipped again.
    async fn save_positions(&self, unsaved: &mut Positions) {
        if unsaved.is_empty() || !self.bus.positions_in_consumer_db() {
            unsaved.clear();
            return;
        }
        let saved = async {
            let mut tx = self.db.begin_as("save consumer positions").await?;
            positions::save(&mut tx, &self.settings.group, unsaved).await?;
            tx.commit().await
        };
        match saved.await {
            Ok(()) => unsaved.clear(),
            Err(error) => {
                tracing::warn!(group = self.settings.group, %error, "cannot save positions")
            }
        }
    }

    /// Handles `deliveries` in as few transactions as it can. An event that fails transiently
    /// ends a transaction before it and is retried on its own; a transaction that fails as a
    /// whole (the database is away) is tried again, with growing pauses, until it goes
    /// through: an outage pauses the consumer and never uses up a handler's attempts.
    async fn deliver(
        &self,
        subscription: &mut dyn Subscription,
        deliveries: &[Delivery],
        unsaved: &mut Positions,
        cancel: &CancellationToken,
    ) -> Result<(), Interrupted> {
        let mut rest = deliveries;
        let mut outage = 0;
        while !rest.is_empty() {
            match self.in_one_transaction(rest, unsaved).await {
                Ok(Finished { count, failed }) => {
                    outage = 0;
                    self.commit_to_bus(subscription, &rest[..count], cancel)
                        .await?;
                    rest = &rest[count..];
                    if let Some(error) = failed {
                        self.retry_alone(subscription, &rest[0], error, unsaved, cancel)
                            .await?;
                        rest = &rest[1..];
                    }
                }
                Err(error) => {
                    outage += 1;
                    let delay = self.settings.retry.outage_delay(outage);
                    count_outage_pause(&self.settings.group);
                    tracing::warn!(
                        group = self.settings.group,
                        %error,
                        retry_in_ms = delay.as_millis() as u64,
                        "the database failed the consumer's transaction; pausing"
                    );
                    pause(cancel, delay).await?;
                }
            }
        }
        Ok(())
    }

    /// Tells the bus that `done` are done (the last of each partition).
    async fn commit_to_bus(
        &self,
        subscription: &mut dyn Subscription,
        done: &[Delivery],
        cancel: &CancellationToken,
    ) -> Result<(), Interrupted> {
        let mut last = std::collections::HashMap::new();
        for delivery in done {
            last.insert((&delivery.topic, delivery.partition), delivery);
        }
        for delivery in last.into_values() {
            // The effects are committed; if the bus does not take the position, the event
            // comes again and the inbox turns it into a duplicate.
            let mut wait = Duration::from_millis(200);
            while let Err(error) = subscription.commit(delivery).await {
                tracing::warn!(group = self.settings.group, %error, "position commit failed; retrying");
                pause(cancel, wait).await?;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
        Ok(())
    }

    /// `delivery` failed transiently: tried again on its own with backoff, up to the policy's
    /// attempts, then dead-lettered. The partition waits meanwhile, which keeps its order.
    async fn retry_alone(
        &self,
        subscription: &mut dyn Subscription,
        delivery: &Delivery,
        first: HandlerError,
        unsaved: &mut Positions,
        cancel: &CancellationToken,
    ) -> Result<(), Interrupted> {
        let policy = self.settings.retry;
        let started = Instant::now();
        let mut error = first;
        // Whether the last try failed as a whole transaction (the database, not the handler).
        let mut transaction_failed = false;
        let mut attempt = 1;
        let mut outages = 0;
        loop {
            let delay = if transaction_failed || error.is_outage() {
                // The database is unavailable: the consumer waits it out, however long,
                // without using up the handler's attempts.
                outages += 1;
                count_outage_pause(&self.settings.group);
                let delay = policy.outage_delay(outages);
                tracing::warn!(
                    group = self.settings.group,
                    event_id = %delivery.envelope.id,
                    retry_in_ms = delay.as_millis() as u64,
                    %error,
                    "the handler's database is unavailable; pausing"
                );
                delay
            } else {
                outages = 0;
                if attempt >= policy.max_attempts {
                    let reason = format!("gave up after {attempt} attempts: {error}");
                    self.dead_letter_alone(delivery, &reason, attempt, unsaved, cancel)
                        .await?;
                    count_consumed(
                        &self.settings.group,
                        &delivery.envelope.event_type,
                        Consumed::DeadLettered,
                        started.elapsed(),
                    );
                    break;
                }
                count_retry(
                    &self.settings.group,
                    &delivery.envelope.event_type,
                    "transient",
                );
                let delay = policy.delay(attempt);
                tracing::warn!(
                    group = self.settings.group,
                    event_id = %delivery.envelope.id,
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    %error,
                    "handler failed; will retry"
                );
                attempt += 1;
                delay
            };
            pause(cancel, delay).await?;
            match self
                .in_one_transaction(std::slice::from_ref(delivery), unsaved)
                .await
            {
                Ok(Finished { failed: None, .. }) => break,
                Ok(Finished {
                    failed: Some(again),
                    ..
                }) => {
                    error = again;
                    transaction_failed = false;
                }
                Err(db_error) => {
                    error = HandlerError::transient(db_error);
                    transaction_failed = true;
                }
            }
        }
        self.commit_to_bus(subscription, std::slice::from_ref(delivery), cancel)
            .await
    }

    /// Stores a dead letter for `delivery`, with the group's position past it, in one
    /// transaction; tried until it goes through (nothing is dropped).
    async fn dead_letter_alone(
        &self,
        delivery: &Delivery,
        error: &str,
        attempts: u32,
        unsaved: &mut Positions,
        cancel: &CancellationToken,
    ) -> Result<(), Interrupted> {
        unsaved.extend(positions::after(std::slice::from_ref(delivery)));
        let mut wait = Duration::from_millis(200);
        loop {
            let stored = async {
                let mut tx = self.db.begin_as("dead-letter event").await?;
                let letter = NewDeadLetter {
                    group: &self.settings.group,
                    delivery,
                    error,
                    attempts,
                };
                self.dead_letters.insert(&mut tx, &letter).await?;
                if self.bus.positions_in_consumer_db() {
                    positions::save(&mut tx, &self.settings.group, unsaved).await?;
                }
                tx.commit().await
            };
            match stored.await {
                Ok(()) => break,
                Err(db_error) => {
                    tracing::warn!(group = self.settings.group, error = %db_error, "cannot store dead letter; retrying");
                    pause(cancel, wait).await?;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        unsaved.clear();
        self.report_dead_letter(delivery, error, attempts).await;
        Ok(())
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
            let delivery = Delivery {
                topic: letter.topic.clone(),
                partition: i32::try_from(letter.partition).unwrap_or(0),
                offset: letter.offset,
                envelope: letter.envelope.clone(),
                unreadable: None,
            };
            let result = match self.with_retries(&delivery, cancel).await? {
                Ok(_) => self.dead_letters.mark_replayed(&letter.id).await,
                Err((attempts, error)) => {
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

    /// Tries the parked events again: those whose prerequisite another instance of the group
    /// handled, and those that have waited long enough to be dead-lettered.
    async fn sweep_parked(&self, cancel: &CancellationToken) -> Result<(), Interrupted> {
        let parked = match self.parked.all(&self.db).await {
            Ok(parked) => parked,
            Err(error) => {
                tracing::warn!(group = self.settings.group, %error, "cannot read parked events");
                return Ok(());
            }
        };
        let wait = self.settings.retry.prerequisite_wait;
        for ParkedEvent {
            delivery,
            parked_at,
        } in parked
        {
            if cancel.is_cancelled() {
                return Err(Interrupted);
            }
            let waited = platform::time::to_millis(platform::time::now()) - parked_at;
            let overdue = Duration::from_millis(u64::try_from(waited).unwrap_or(0)) >= wait;
            match self.unpark_alone(&delivery, overdue).await {
                Ok(()) => {}
                Err(error) => {
                    tracing::warn!(group = self.settings.group, %error, "cannot retry a parked event");
                }
            }
        }
        Ok(())
    }

    /// One parked event in a transaction of its own: handled, still waiting, or (when it
    /// has waited its time, or fails for good) dead-lettered.
    pub(crate) async fn unpark_alone(
        &self,
        delivery: &Delivery,
        overdue: bool,
    ) -> Result<(), sqlx::Error> {
        let envelope = &delivery.envelope;
        let span = consumer_span(&self.settings.group, delivery);
        let mut tx = self.db.begin_as("retry parked event").await?;
        let outcome = match self
            .attempt_in(&mut tx, envelope)
            .instrument(span.clone())
            .await?
        {
            Ok(outcome) => Ok(outcome),
            Err(HandlerError::NotYet(error)) if overdue => Err(format!(
                "waited {}s for an earlier event: {error}",
                self.settings.retry.prerequisite_wait.as_secs()
            )),
            Err(HandlerError::Permanent(error)) => Err(error.to_string()),
            Err(_) => {
                tx.rollback().await?;
                return Ok(());
            }
        };
        if !self.parked.release(&mut tx, envelope).await? {
            // Another reader took it out meanwhile.
            tx.rollback().await?;
            return Ok(());
        }
        if let Err(error) = &outcome {
            let letter = NewDeadLetter {
                group: &self.settings.group,
                delivery,
                error,
                attempts: 1,
            };
            self.dead_letters.insert(&mut tx, &letter).await?;
        }
        tx.commit().await?;
        self.parked.noted(&[(envelope.subject.clone(), -1)]);
        let consumed = match &outcome {
            Ok(Outcome::Handled) => {
                self.handler.after_commit(envelope).await;
                Consumed::Handled
            }
            Ok(Outcome::Duplicate) => Consumed::Duplicate,
            Err(_) => Consumed::DeadLettered,
        };
        count_consumed(
            &self.settings.group,
            &envelope.event_type,
            consumed,
            Duration::ZERO,
        );
        log_consumed(&span, delivery, consumed);
        if let Err(error) = outcome {
            self.report_dead_letter(delivery, &error, 1).await;
        }
        Ok(())
    }

    /// Handles `delivery` on its own with retries (a replay); the outcome, or the attempts
    /// made and why it failed.
    async fn with_retries(
        &self,
        delivery: &Delivery,
        cancel: &CancellationToken,
    ) -> Result<Result<Outcome, (u32, String)>, Interrupted> {
        let policy = self.settings.retry;
        // Every attempt in the event's own trace, as when it was first delivered.
        let span = consumer_span(&self.settings.group, delivery);
        let mut attempt = 1;
        loop {
            let tried = async {
                let mut tx = self.db.begin_as("replay event").await?;
                let outcome = self.attempt_in(&mut tx, &delivery.envelope).await?;
                if outcome.is_ok() {
                    tx.commit().await?;
                }
                Ok::<_, sqlx::Error>(outcome)
            };
            let error = match tried.instrument(span.clone()).await {
                Ok(Ok(outcome)) => {
                    if outcome == Outcome::Handled {
                        self.handler.after_commit(&delivery.envelope).await;
                    }
                    return Ok(Ok(outcome));
                }
                Ok(Err(HandlerError::Transient(error))) | Ok(Err(HandlerError::NotYet(error))) => {
                    error.to_string()
                }
                Ok(Err(HandlerError::Permanent(error))) => {
                    return Ok(Err((attempt, error.to_string())));
                }
                Err(error) => error.to_string(),
            };
            if attempt >= policy.max_attempts {
                return Ok(Err((
                    attempt,
                    format!("gave up after {attempt} attempts: {error}"),
                )));
            }
            pause(cancel, policy.delay(attempt)).await?;
            attempt += 1;
        }
    }

    /// `event` in `tx`, unless the inbox has it: the handler's outcome, or `Err` when the
    /// transaction is lost.
    async fn attempt_in(
        &self,
        tx: &mut platform::db::Tx,
        event: &crate::Envelope,
    ) -> Result<Result<Outcome, HandlerError>, sqlx::Error> {
        let seen: Option<i64> = sqlx::query_scalar(
            "SELECT handled_at FROM inbox WHERE consumer_group = $1 AND event_id = $2",
        )
        .bind(&self.settings.group)
        .bind(event.id.to_string())
        .fetch_optional(&mut ***tx)
        .await?;
        if seen.is_some() {
            return Ok(Ok(Outcome::Duplicate));
        }
        Ok(match self.try_one(tx, event).await? {
            Step::Handled => Ok(Outcome::Handled),
            Step::Duplicate => Ok(Outcome::Duplicate),
            Step::Failed(error) => Err(error),
        })
    }
}

pub(crate) async fn pause(
    cancel: &CancellationToken,
    duration: Duration,
) -> Result<(), Interrupted> {
    tokio::select! {
        () = cancel.cancelled() => Err(Interrupted),
        () = tokio::time::sleep(duration) => Ok(()),
    }
}
