//! One transaction for a run of deliveries: the handlers, the inbox, parking and dead
//! letters, the group's positions, one commit.
//!
//! Handlers almost never fail, so a batch first runs without savepoints, its inbox rows
//! written up front by one statement that also finds the duplicates (`Care::Optimistic`). If
//! a handler fails, or an event touches parked ones, that transaction is rolled back and the
//! batch runs again with a savepoint per event (`Care::Careful`), in which a failing event
//! rolls back alone; the handler that failed is not called again there (its failure is known:
//! a retry waits for its backoff).

use std::collections::HashSet;
use std::time::Instant;

use platform::db::{Tx, is_unique_violation};
use tracing::Instrument;

use super::HandlerError;
use super::parked::ParkedEvent;
use super::positions;
use super::runner::Consumer;
use crate::Envelope;
use crate::bus::{Delivery, Positions};
use crate::dlq::NewDeadLetter;
use crate::telemetry::{Consumed, consumer_span, count_consumed};

/// What became of a run of deliveries.
pub(crate) struct Finished {
    /// How many of them, from the first, are done: handled, duplicates, skipped, parked or
    /// dead-lettered, and committed.
    pub count: usize,
    /// Why the next one could not be handled, when a transient failure stopped the run.
    pub failed: Option<HandlerError>,
}

/// How a batch guards its events against each other's failures.
enum Care {
    /// No savepoints; any failure sends the batch to `Careful`.
    Optimistic,
    /// A savepoint per event; the event at this index (if any) already failed so.
    Careful(Option<(usize, HandlerError)>),
}

/// Why an optimistic batch was rolled back.
enum NeedsCare {
    /// The handler failed on the event at this index.
    Failed(usize, HandlerError),
    /// Parked events are involved.
    Involved,
}

/// What the handler said of a delivery when the batch began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Yes,
    No,
    /// Not an event at all: it goes to the dead letters.
    Unreadable,
}

/// What trying one event inside its savepoint came to.
pub(crate) enum Step {
    Handled,
    /// Another instance of the group handled it first.
    Duplicate,
    Failed(HandlerError),
}

/// Effects of the transaction to apply once it has committed.
#[derive(Default)]
struct Done<'a> {
    /// Each delivery, what became of it, how long it took, and the span it was handled in.
    consumed: Vec<(
        &'a Delivery,
        Consumed,
        std::time::Duration,
        Option<tracing::Span>,
    )>,
    /// Parked events handled or dead-lettered meanwhile (owned: they came from the table),
    /// and the span each was handled in.
    unparked: Vec<(Delivery, Consumed, tracing::Span)>,
    dead_letters: Vec<(Delivery, String)>,
    /// Per subject, parked events released (-1).
    parking: Vec<(String, i64)>,
    /// Events parked in this transaction, tried once more right after it commits.
    parked: Vec<Delivery>,
    /// Whether anything was written besides positions.
    wrote: bool,
}

/// The line that says how the group's handling of `delivery` ended, in the span it was handled
/// in, so that it carries the trace, event and order ids. Logged from this module: operators
/// turn it on with `RUST_LOG=events::consumer=debug`.
pub(super) fn log_consumed(span: &tracing::Span, delivery: &Delivery, outcome: Consumed) {
    span.in_scope(|| {
        tracing::debug!(
            partition = delivery.partition,
            offset = delivery.offset,
            outcome = ?outcome,
            "event consumed"
        )
    });
}

impl Consumer {
    /// Handles as many of `deliveries` as it can in one transaction; `Err` when the
    /// transaction itself failed (the database is away): nothing of it happened, and no
    /// handler's attempts were used up.
    pub(crate) async fn in_one_transaction(
        &self,
        deliveries: &[Delivery],
        unsaved: &mut Positions,
    ) -> Result<Finished, sqlx::Error> {
        // Asked once per delivery: the answer may change while the batch runs (the webhooks
        // handler learns of new subscriptions), and every step below must use the same one.
        let wanted: Vec<Wanted> = deliveries
            .iter()
            .map(|d| {
                if d.unreadable.is_some() {
                    Wanted::Unreadable
                } else if self.handler.handles(&d.envelope.event_type) {
                    Wanted::Yes
                } else {
                    Wanted::No
                }
            })
            .collect();
        if wanted.iter().all(|w| *w == Wanted::No) {
            // Nothing for the database: only the positions move, saved with the next
            // transaction (or by `save_positions` if none comes soon).
            for delivery in deliveries {
                self.handler.after_commit(&delivery.envelope).await;
                count_consumed(
                    &self.settings.group,
                    &delivery.envelope.event_type,
                    Consumed::Skipped,
                    std::time::Duration::ZERO,
                );
            }
            unsaved.extend(positions::after(deliveries));
            return Ok(Finished {
                count: deliveries.len(),
                failed: None,
            });
        }
        let known = match self
            .attempt(deliveries, &wanted, unsaved, Care::Optimistic)
            .await?
        {
            Ok(finished) => return Ok(finished),
            Err(NeedsCare::Failed(at, error)) => Some((at, error)),
            Err(NeedsCare::Involved) => None,
        };
        match self
            .attempt(deliveries, &wanted, unsaved, Care::Careful(known))
            .await?
        {
            Ok(finished) => Ok(finished),
            Err(_) => Err(sqlx::Error::Protocol(
                "a careful batch gave up, which it never does".into(),
            )),
        }
    }

    /// One transaction over `deliveries`; `Err` when an optimistic one could not go through
    /// (it was rolled back: nothing happened).
    async fn attempt(
        &self,
        deliveries: &[Delivery],
        wanted: &[Wanted],
        unsaved: &mut Positions,
        care: Care,
    ) -> Result<Result<Finished, NeedsCare>, sqlx::Error> {
        let of = |want: Wanted| {
            deliveries
                .iter()
                .zip(wanted)
                .filter(move |(_, w)| **w == want)
                .map(|(d, _)| d)
        };
        let mut tx = self.db.begin_as("handle events").await?;
        let span = tx.span().clone();
        for delivery in of(Wanted::Yes).chain(of(Wanted::Unreadable)) {
            platform::trace_context::link_to_traceparent(
                &span,
                delivery.envelope.traceparent.as_deref(),
            );
        }
        let (careful, mut known_failure) = match care {
            Care::Careful(known) => (true, known),
            Care::Optimistic => (false, None),
        };
        let mut seen = if careful {
            self.inbox(&mut tx, of(Wanted::Yes).chain(of(Wanted::Unreadable)))
                .instrument(span.clone())
                .await?
        } else {
            // Optimistic: the inbox rows go in first, in one statement that also says which
            // events the group had handled before; a failure later rolls them back with
            // everything else.
            let handleable = of(Wanted::Yes).map(|d| d.envelope.id);
            self.claim_in_inbox(&mut tx, handleable)
                .instrument(span.clone())
                .await?
        };
        let mut done = Done::default();
        let mut failed = None;
        let mut count = 0;
        for (index, delivery) in deliveries.iter().enumerate() {
            let envelope = &delivery.envelope;
            let started = Instant::now();
            let mut handled_in = None;
            let consumed = if let Some(why) = &delivery.unreadable {
                done.dead_letters
                    .push((delivery.clone(), format!("not an event: {why}")));
                Consumed::DeadLettered
            } else if wanted[index] == Wanted::No {
                Consumed::Skipped
            } else if !seen.insert(envelope.id) {
                Consumed::Duplicate
            } else {
                let consumer_span = consumer_span(&self.settings.group, delivery);
                handled_in = Some(consumer_span.clone());
                let step = if careful {
                    match known_failure.take_if(|(at, _)| *at == index) {
                        Some((_, error)) => Step::Failed(error),
                        None => {
                            self.try_one(&mut tx, envelope)
                                .instrument(consumer_span.clone())
                                .await?
                        }
                    }
                } else {
                    if self.parked.waiting_on(&envelope.subject) {
                        tx.rollback().await?;
                        return Ok(Err(NeedsCare::Involved));
                    }
                    let outcome = self
                        .handler
                        .handle(&mut tx, envelope)
                        .instrument(consumer_span.clone())
                        .await;
                    if let Err(error) = outcome {
                        tx.rollback().await?;
                        return Ok(Err(NeedsCare::Failed(index, error)));
                    }
                    Step::Handled
                };
                match step {
                    Step::Handled => {
                        done.wrote = true;
                        self.unpark(&mut tx, &envelope.subject, &mut seen, &mut done)
                            .await?;
                        Consumed::Handled
                    }
                    Step::Duplicate => Consumed::Duplicate,
                    Step::Failed(HandlerError::NotYet(error)) => {
                        self.parked
                            .park(&mut tx, delivery, &error.to_string())
                            .await?;
                        // Known at once, before the commit: a transaction of another
                        // reader that handles the awaited event and starts after this one
                        // commits must look for it (if this one rolls back, the hint only
                        // costs that reader a look that finds nothing).
                        self.parked.noted(&[(envelope.subject.clone(), 1)]);
                        done.parked.push(delivery.clone());
                        done.wrote = true;
                        Consumed::Parked
                    }
                    Step::Failed(HandlerError::Permanent(error)) => {
                        consumer_span.record("otel.status_code", "ERROR");
                        done.dead_letters
                            .push((delivery.clone(), error.to_string()));
                        Consumed::DeadLettered
                    }
                    Step::Failed(transient) => {
                        failed = Some(transient);
                        break;
                    }
                }
            };
            done.consumed
                .push((delivery, consumed, started.elapsed(), handled_in));
            count += 1;
        }
        for (delivery, error) in &done.dead_letters {
            let letter = NewDeadLetter {
                group: &self.settings.group,
                delivery,
                error,
                attempts: 1,
            };
            self.dead_letters.insert(&mut tx, &letter).await?;
            done.wrote = true;
        }
        unsaved.extend(positions::after(&deliveries[..count]));
        if self.bus.positions_in_consumer_db() && !unsaved.is_empty() {
            positions::save(&mut tx, &self.settings.group, unsaved).await?;
            done.wrote = true;
        }
        if done.wrote {
            tx.commit().await?;
            unsaved.clear();
        } else {
            tx.rollback().await?;
        }
        self.after(done).await;
        Ok(Ok(Finished { count, failed }))
    }

    /// The ids among `deliveries` that the group's inbox already has.
    async fn inbox<'d>(
        &self,
        tx: &mut Tx,
        deliveries: impl Iterator<Item = &'d Delivery>,
    ) -> Result<HashSet<uuid::Uuid>, sqlx::Error> {
        let ids: Vec<String> = deliveries.map(|d| d.envelope.id.to_string()).collect();
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT event_id FROM inbox WHERE consumer_group = $1 AND event_id IN ({})",
            placeholders.join(", ")
        );
        let mut query =
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(&self.settings.group);
        for id in &ids {
            query = query.bind(id);
        }
        let found = query.fetch_all(&mut ***tx).await?;
        Ok(found
            .iter()
            .filter_map(|id| uuid::Uuid::parse_str(id).ok())
            .collect())
    }

    /// Runs the handler on `event` and writes its inbox row, inside a savepoint: a failure
    /// undoes this event's effects alone. `Err` only when the savepoint itself cannot be
    /// taken or undone (the transaction is lost).
    pub(crate) async fn try_one(&self, tx: &mut Tx, event: &Envelope) -> Result<Step, sqlx::Error> {
        sqlx::query("SAVEPOINT event").execute(&mut ***tx).await?;
        let step = match self.handler.handle(tx, event).await {
            Ok(()) => match self.record_in_inbox(tx, event).await {
                Ok(()) => Step::Handled,
                Err(error) if is_unique_violation(&error) => Step::Duplicate,
                Err(error) => Step::Failed(error.into()),
            },
            Err(error) => Step::Failed(error),
        };
        let end = match step {
            Step::Handled => "RELEASE SAVEPOINT event",
            _ => "ROLLBACK TO SAVEPOINT event",
        };
        sqlx::query(end).execute(&mut ***tx).await?;
        if !matches!(step, Step::Handled) {
            sqlx::query("RELEASE SAVEPOINT event")
                .execute(&mut ***tx)
                .await?;
        }
        Ok(step)
    }

    /// Writes the inbox rows of `events` unless the group has them already, in one statement,
    /// and returns the ids it had: those are duplicates. Rows go in id order, so that two
    /// instances of a group claiming the same events on PostgreSQL wait for each other (the
    /// second then finds the first's rows) rather than deadlock.
    async fn claim_in_inbox(
        &self,
        tx: &mut Tx,
        events: impl Iterator<Item = uuid::Uuid>,
    ) -> Result<HashSet<uuid::Uuid>, sqlx::Error> {
        let mut events: Vec<uuid::Uuid> = events.collect();
        if events.is_empty() {
            return Ok(HashSet::new());
        }
        events.sort_unstable();
        events.dedup();
        let rows: Vec<String> = (0..events.len())
            .map(|i| format!("($1, ${}, $2)", i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO inbox (consumer_group, event_id, handled_at) VALUES {} \
             ON CONFLICT (consumer_group, event_id) DO NOTHING RETURNING event_id",
            rows.join(", ")
        );
        let mut insert = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
            .bind(&self.settings.group)
            .bind(platform::time::to_millis(platform::time::now()));
        for id in &events {
            insert = insert.bind(id.to_string());
        }
        let claimed: HashSet<uuid::Uuid> = insert
            .fetch_all(&mut ***tx)
            .await?
            .iter()
            .filter_map(|id| uuid::Uuid::parse_str(id).ok())
            .collect();
        Ok(events
            .into_iter()
            .filter(|id| !claimed.contains(id))
            .collect())
    }

    async fn record_in_inbox(&self, tx: &mut Tx, event: &Envelope) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO inbox (consumer_group, event_id, handled_at) VALUES ($1, $2, $3)")
            .bind(&self.settings.group)
            .bind(event.id.to_string())
            .bind(platform::time::to_millis(platform::time::now()))
            .execute(&mut ***tx)
            .await?;
        Ok(())
    }

    /// An event about `subject` was handled: the events parked waiting for it get their turn,
    /// in the same transaction.
    async fn unpark(
        &self,
        tx: &mut Tx,
        subject: &str,
        seen: &mut HashSet<uuid::Uuid>,
        done: &mut Done<'_>,
    ) -> Result<(), sqlx::Error> {
        if !self.parked.waiting_on(subject) {
            return Ok(());
        }
        for ParkedEvent { delivery, .. } in self.parked.on_subject(tx, subject).await? {
            let envelope = &delivery.envelope;
            // Its own trace: the events its handler writes continue the one it came with.
            let span = consumer_span(&self.settings.group, &delivery);
            let consumed = if !seen.insert(envelope.id) {
                Consumed::Duplicate
            } else {
                match self.try_one(tx, envelope).instrument(span.clone()).await? {
                    Step::Handled => Consumed::Handled,
                    Step::Duplicate => Consumed::Duplicate,
                    Step::Failed(HandlerError::Permanent(error)) => {
                        done.dead_letters
                            .push((delivery.clone(), error.to_string()));
                        Consumed::DeadLettered
                    }
                    // Still waiting, or failing for now: the sweep tries it again.
                    Step::Failed(_) => {
                        seen.remove(&envelope.id);
                        continue;
                    }
                }
            };
            if self.parked.release(tx, envelope).await? {
                done.parking.push((subject.to_owned(), -1));
            }
            done.unparked.push((delivery, consumed, span));
        }
        Ok(())
    }

    /// What follows a commit: the handlers' after-commit effects, metrics, the parking
    /// index, and copies of the dead letters on the bus.
    async fn after(&self, done: Done<'_>) {
        let group = &self.settings.group;
        self.parked.noted(&done.parking);
        // The awaited event may have been handled while this transaction was open, by another
        // reader that could not see the parked one yet: look once more now.
        for delivery in &done.parked {
            if let Err(error) = self.unpark_alone(delivery, false).await {
                tracing::warn!(group, %error, "cannot retry a parked event");
            }
        }
        for (delivery, consumed, took, span) in done.consumed {
            let envelope = &delivery.envelope;
            if !matches!(consumed, Consumed::Duplicate | Consumed::Parked) {
                self.handler.after_commit(envelope).await;
            }
            count_consumed(group, &envelope.event_type, consumed, took);
            if let Some(span) = span {
                log_consumed(&span, delivery, consumed);
            }
        }
        for (delivery, consumed, span) in done.unparked {
            if matches!(consumed, Consumed::Handled) {
                self.handler.after_commit(&delivery.envelope).await;
            }
            count_consumed(
                group,
                &delivery.envelope.event_type,
                consumed,
                std::time::Duration::ZERO,
            );
            log_consumed(&span, &delivery, consumed);
        }
        for (delivery, error) in &done.dead_letters {
            self.report_dead_letter(delivery, error, 1).await;
        }
    }

    /// Logs a dead letter that has been stored, and copies it where the bus's own tooling
    /// finds it (the stored letter is the record).
    pub(crate) async fn report_dead_letter(&self, delivery: &Delivery, error: &str, attempts: u32) {
        let group = &self.settings.group;
        tracing::error!(
            group,
            event_id = %delivery.envelope.id,
            event_type = delivery.envelope.event_type,
            attempts,
            error,
            "event dead-lettered"
        );
        if let Err(bus_error) = self.bus.dead_letter(group, delivery, error).await {
            tracing::warn!(group, error = %bus_error, "could not copy the dead letter to the bus");
        }
    }
}
