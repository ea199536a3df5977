//! What events look like from outside the process: spans that carry one trace across every
//! asynchronous hop (OpenTelemetry messaging conventions), and Prometheus metrics for
//! publishing and consuming.
//!
//! The trace of an event: the span of the work that wrote it (an HTTP request, another
//! event's handler) has a `{topic} publish` producer child, whose context is stored in the
//! envelope's `traceparent` with the outbox row and travels with the event on the bus. Each
//! consumer group handles it in a `{topic} process` span that continues that context, so the
//! handler's own events become the next link of the same trace. The relay moves batches that
//! mix many traces; its span links to each event's producer instead of adopting one.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use platform::trace_context;
use tracing::Span;

use crate::Envelope;
use crate::bus::Delivery;

/// The producer span of `envelope` on `topic`, a child of the current span.
pub fn producer_span(topic: &str, envelope: &Envelope) -> Span {
    tracing::info_span!(
        "event.publish",
        otel.name = %format!("{topic} publish"),
        otel.kind = "producer",
        messaging.system = "commercex",
        messaging.operation.type = "create",
        messaging.destination.name = topic,
        messaging.message.id = %envelope.id,
        event_type = envelope.event_type,
        event_id = %envelope.id,
        order_id = envelope.correlationid.as_deref(),
    )
}

/// The span one consumer group handles `delivery` in, continuing the publisher's trace.
pub fn consumer_span(group: &str, delivery: &Delivery) -> Span {
    let envelope = &delivery.envelope;
    let span = tracing::info_span!(
        "event.process",
        otel.name = %format!("{} process", delivery.topic),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "commercex",
        messaging.operation.type = "process",
        messaging.destination.name = delivery.topic,
        messaging.consumer.group.name = group,
        messaging.message.id = %envelope.id,
        messaging.destination.partition.id = delivery.partition,
        event_type = envelope.event_type,
        event_id = %envelope.id,
        order_id = envelope.correlationid.as_deref(),
    );
    trace_context::continue_from_traceparent(&span, envelope.traceparent.as_deref());
    span
}

/// The span of one relay batch, linked to the producer of every event in it.
pub fn relay_span<'a>(schema: &str, events: impl Iterator<Item = &'a Envelope>) -> Span {
    let span = tracing::info_span!(
        "outbox.relay",
        otel.name = "outbox relay",
        otel.kind = "producer",
        messaging.system = "commercex",
        messaging.operation.type = "send",
        messaging.batch.message_count = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        db.namespace = schema,
    );
    let mut count = 0;
    for envelope in events {
        count += 1;
        trace_context::link_to_traceparent(&span, envelope.traceparent.as_deref());
    }
    span.record("messaging.batch.message_count", count);
    span
}

/// `commercex_events_published_total{topic, event_type, outcome}`: `ok` once the bus took the
/// event, `error` for each try it refused.
pub fn count_published(topic: &str, event_type: &str, ok: bool) {
    metrics::counter!(
        "commercex_events_published_total",
        "topic" => topic.to_owned(),
        "event_type" => event_type.to_owned(),
        "outcome" => if ok { "ok" } else { "error" },
    )
    .increment(1);
}

/// How one delivery ended for a consumer group.
#[derive(Debug, Clone, Copy)]
pub enum Consumed {
    Handled,
    Duplicate,
    DeadLettered,
    /// Waiting for an event it needs; handled later.
    Parked,
    /// Not an event the group handles.
    Skipped,
}

impl Consumed {
    fn label(self) -> &'static str {
        match self {
            Consumed::Handled => "handled",
            Consumed::Duplicate => "duplicate",
            Consumed::DeadLettered => "dead_lettered",
            Consumed::Parked => "parked",
            Consumed::Skipped => "skipped",
        }
    }
}

/// `commercex_events_consumed_total` and `commercex_event_handler_duration_seconds`, by group,
/// event type and outcome. The duration covers every attempt, retries included (zero for
/// events the group skips or handles after parking).
pub fn count_consumed(group: &str, event_type: &str, outcome: Consumed, took: Duration) {
    let labels = [
        ("consumer_group", group.to_owned()),
        ("event_type", event_type.to_owned()),
        ("outcome", outcome.label().to_owned()),
    ];
    metrics::counter!("commercex_events_consumed_total", &labels).increment(1);
    metrics::histogram!("commercex_event_handler_duration_seconds", &labels)
        .record(took.as_secs_f64());
}

/// `commercex_event_handler_retries_total`: attempts that failed and will be tried again.
pub fn count_retry(group: &str, event_type: &str, reason: &'static str) {
    metrics::counter!(
        "commercex_event_handler_retries_total",
        "consumer_group" => group.to_owned(),
        "event_type" => event_type.to_owned(),
        "reason" => reason,
    )
    .increment(1);
}

/// `commercex_consumer_outage_pauses_total`: pauses of a consumer group because its
/// database was unavailable (the consumer waits the outage out; nothing is dead-lettered).
pub fn count_outage_pause(group: &str) {
    metrics::counter!(
        "commercex_consumer_outage_pauses_total",
        "consumer_group" => group.to_owned(),
    )
    .increment(1);
}

/// `commercex_dlq_depth` at 0 for `group`, before anything is sampled: a series that does
/// not exist yet hides the queue from dashboards and from `absent()` alerts.
pub fn start_dlq_depth(group: &str) {
    metrics::gauge!("commercex_dlq_depth", "consumer_group" => group.to_owned()).set(0.0);
}

/// How events stand in one service's database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreFlow {
    /// Events in the outbox not yet published.
    pub outbox_backlog: i64,
    /// How long the oldest of them has waited, in seconds (0 when the outbox is drained).
    pub oldest_unpublished_seconds: f64,
    /// Dead letters waiting for an operator or a replay, per consumer group (every group
    /// that ever dead-lettered, 0 included).
    pub dead_letters: BTreeMap<String, i64>,
}

/// Reads how events stand in a service database.
pub async fn store_flow(db: &platform::db::Db) -> Result<StoreFlow, sqlx::Error> {
    let (backlog, oldest): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE published_at IS NULL")
            .fetch_one(db.pool())
            .await?;
    let age = oldest.map_or(0.0, |millis| {
        (platform::time::to_millis(platform::time::now()) - millis).max(0) as f64 / 1000.0
    });
    let depths: Vec<(String, i64)> = sqlx::query_as(
        "SELECT consumer_group, \
         SUM(CASE WHEN status IN ('dead', 'replay_requested') THEN 1 ELSE 0 END) \
         FROM dead_letters GROUP BY consumer_group",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(StoreFlow {
        outbox_backlog: backlog,
        oldest_unpublished_seconds: age,
        dead_letters: depths.into_iter().collect(),
    })
}

/// Samples what a service database says about event flow: `commercex_outbox_backlog` and
/// `commercex_outbox_oldest_age_seconds` (unpublished events), `commercex_dlq_depth` per
/// consumer group (dead letters waiting for an operator), and the pool's connections.
pub async fn sample_store(db: &platform::db::Db) -> Result<(), sqlx::Error> {
    let schema = db.schema().to_owned();
    let flow = store_flow(db).await?;
    metrics::gauge!("commercex_outbox_backlog", "db_namespace" => schema.clone())
        .set(flow.outbox_backlog as f64);
    metrics::gauge!("commercex_outbox_oldest_age_seconds", "db_namespace" => schema.clone())
        .set(flow.oldest_unpublished_seconds);
    // Every group that ever dead-lettered, so a depth back to 0 shows as 0, not as stale.
    for (group, depth) in flow.dead_letters {
        metrics::gauge!("commercex_dlq_depth", "consumer_group" => group).set(depth as f64);
    }
    db.record_pool_usage();
    Ok(())
}

/// A consumer group's lag on one topic (and partition, on Kafka), as last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    pub group: String,
    pub topic: String,
    pub partition: Option<i32>,
    pub events: i64,
}

/// Where a lag is: (consumer group, topic, partition on Kafka).
type LagKey = (String, String, Option<i32>);

/// The lag last reported in this process, kept for the admin API beside the gauge.
static LAGS: LazyLock<Mutex<BTreeMap<LagKey, i64>>> = LazyLock::new(Default::default);

/// Reports a group's lag: sets `commercex_consumer_lag` and keeps the figure for
/// [`lags_of`].
pub fn record_lag(group: &str, topic: &str, partition: Option<i32>, events: i64) {
    match partition {
        None => metrics::gauge!(
            "commercex_consumer_lag",
            "consumer_group" => group.to_owned(),
            "topic" => topic.to_owned(),
        )
        .set(events as f64),
        Some(partition) => metrics::gauge!(
            "commercex_consumer_lag",
            "consumer_group" => group.to_owned(),
            "topic" => topic.to_owned(),
            "partition" => partition.to_string(),
        )
        .set(events as f64),
    }
    if let Ok(mut lags) = LAGS.lock() {
        lags.insert((group.to_owned(), topic.to_owned(), partition), events);
    }
}

/// The lag last reported for `group`'s topics in this process.
pub fn lags_of(group: &str) -> Vec<Lag> {
    let Ok(lags) = LAGS.lock() else {
        return Vec::new();
    };
    lags.iter()
        .filter(|((g, _, _), _)| g == group)
        .map(|((group, topic, partition), events)| Lag {
            group: group.clone(),
            topic: topic.clone(),
            partition: *partition,
            events: *events,
        })
        .collect()
}

/// `commercex_log_pruned_total{topic}`: events the in-database bus's log let go.
pub fn count_pruned(topic: &str, events: u64) {
    metrics::counter!("commercex_log_pruned_total", "topic" => topic.to_owned()).increment(events);
}

/// Help text for the event metrics.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "commercex_events_published_total",
        "Events the relay handed to the bus (outcome ok), and refused attempts (outcome error)."
    );
    describe_counter!(
        "commercex_events_consumed_total",
        "Events a consumer group finished with, by outcome: handled, duplicate (already in the inbox), dead_lettered, parked (waiting for an event it needs) or skipped (not handled by the group)."
    );
    describe_histogram!(
        "commercex_event_handler_duration_seconds",
        Unit::Seconds,
        "Time to handle one event, retries included."
    );
    describe_counter!(
        "commercex_event_handler_retries_total",
        "Handler attempts that failed and will be retried, by reason (transient, not_yet)."
    );
    describe_gauge!(
        "commercex_outbox_backlog",
        "Committed events not yet published by the relay."
    );
    describe_gauge!(
        "commercex_outbox_oldest_age_seconds",
        Unit::Seconds,
        "Age of the oldest unpublished event (0 when the outbox is drained)."
    );
    describe_counter!(
        "commercex_log_pruned_total",
        "Events deleted from the in-database bus's log: older than --event-retention and read by every consumer group."
    );
    describe_counter!(
        "commercex_inbox_pruned_total",
        "Inbox rows deleted because they outlived the inbox retention (--inbox-retention)."
    );
    describe_gauge!(
        "commercex_dlq_depth",
        "Dead letters waiting for an operator (dead or replay requested), per consumer group."
    );
    describe_gauge!(
        "commercex_consumer_lag",
        "Events on the bus that a consumer group has not committed yet, per topic (and partition on Kafka)."
    );
}
