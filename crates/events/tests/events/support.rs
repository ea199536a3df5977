use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use events::Envelope;
use events::bus::outbox_log::{OutboxLog, Source};
use events::bus::{BusError, EventBus, Outgoing, Positions, Subscription};
use events::consumer::{Consumer, ConsumerSettings, EventHandler, HandlerError, RetryPolicy};
use events::outbox::{Handoff, Outbox};
use events::sequencer::Sequencer;
use platform::db::{Backend, Db, PoolSettings, Tx};
use testkit::TestStorage;
pub use testkit::wait_for;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Span;
use uuid::Uuid;

pub const TOPIC: &str = "commercex.test";
pub const GROUP: &str = "test-consumer";

/// A service database whose outbox is the in-database bus's log, as a service process on the
/// in-database bus has it: it produces `TOPIC` (and `commercex.other`) and consumes them.
pub struct World {
    pub service: Db,
    pub bus: Arc<OutboxLog>,
    pub outbox: Outbox,
    /// PostgreSQL: the sequencer that makes committed rows readable, until dropped.
    _sequencing: Option<DropGuard>,
}

impl World {
    pub async fn new(storage: &TestStorage) -> Self {
        let world = Self::reopen(storage).await;
        sqlx::query("CREATE TABLE effects (seq INTEGER NOT NULL UNIQUE, event_id TEXT NOT NULL)")
            .execute(world.service.pool())
            .await
            .expect("create effects table");
        world
    }

    pub async fn reopen(storage: &TestStorage) -> Self {
        let service = open_service(storage).await;
        let handoff = match service.backend() {
            Backend::Sqlite => Handoff::InPlace,
            Backend::Postgres => Handoff::Sequenced,
        };
        let outbox = Outbox::new(handoff);
        let source = || Source {
            db: service.clone(),
            outbox: outbox.clone(),
        };
        let bus = OutboxLog::new()
            .with_source(TOPIC, source())
            .with_source(OTHER_TOPIC, source());
        let sequencing = (handoff == Handoff::Sequenced).then(|| {
            let cancel = CancellationToken::new();
            let sequencer = Sequencer::new(service.clone(), outbox.clone(), Default::default());
            tokio::spawn(sequencer.run(cancel.clone()));
            cancel.drop_guard()
        });
        Self {
            service,
            bus: Arc::new(bus),
            outbox,
            _sequencing: sequencing,
        }
    }

    pub async fn publish(&self, events: &[Envelope]) {
        self.publish_on(TOPIC, events).await;
    }

    pub async fn publish_on(&self, topic: &str, events: &[Envelope]) {
        let outgoing: Vec<Outgoing> = events
            .iter()
            .map(|envelope| Outgoing {
                topic: topic.into(),
                envelope: envelope.clone(),
            })
            .collect();
        self.bus.publish(&outgoing).await.expect("publish");
    }

    pub fn start(&self, handler: Arc<Recorder>, retry: RetryPolicy) -> Running {
        self.start_on(&[TOPIC], handler, retry)
    }

    pub fn start_on(&self, topics: &[&str], handler: Arc<Recorder>, retry: RetryPolicy) -> Running {
        let mut settings = ConsumerSettings::new(GROUP, topics);
        settings.retry = retry;
        settings.poll_wait = Duration::from_millis(100);
        let bus: Arc<dyn EventBus> = self.bus.clone();
        let consumer = Consumer::new(self.service.clone(), bus, handler, settings);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(consumer.run(cancel.clone()));
        Running { cancel, task }
    }

    /// Event ids whose effect was committed, in commit order.
    pub async fn effects(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT event_id FROM effects ORDER BY seq")
            .fetch_all(self.service.pool())
            .await
            .expect("read effects")
    }

    /// The ids in `TOPIC`'s log, in log order, as a new consumer group reads them.
    pub async fn logged_event_ids(&self) -> Vec<String> {
        let mut reader = self
            .bus
            .subscribe("reader", &[TOPIC.into()], &Positions::new())
            .await
            .expect("subscribe");
        let mut ids = Vec::new();
        loop {
            let batch = reader
                .poll(1000, Duration::from_millis(10))
                .await
                .expect("poll");
            if batch.is_empty() {
                return ids;
            }
            ids.extend(batch.iter().map(|d| d.envelope.id.to_string()));
        }
    }

    /// Where `GROUP` stands in `TOPIC`, as stored.
    pub async fn stored_position(&self) -> Option<i64> {
        sqlx::query_scalar(
            "SELECT position FROM consumer_positions WHERE consumer_group = $1 AND topic = $2",
        )
        .bind(GROUP)
        .bind(TOPIC)
        .fetch_optional(self.service.pool())
        .await
        .expect("read positions")
    }
}

pub const OTHER_TOPIC: &str = "commercex.other";

pub async fn open_service(storage: &TestStorage) -> Db {
    let service = storage
        .storage
        .open("svc", PoolSettings::default())
        .await
        .expect("open service db");
    service
        .migrate(&events::service_migrations())
        .await
        .expect("migrate service db");
    service
}

/// Every row of the service's outbox, published or not.
pub async fn outbox_rows(service: &Db) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(service.pool())
        .await
        .expect("count outbox rows")
}

/// A bus outside the database, as the relay sees Kafka: it keeps what it is given, and
/// refuses while `down`.
#[derive(Default)]
pub struct RecordingBus {
    pub published: Mutex<Vec<Outgoing>>,
    pub down: AtomicBool,
}

#[async_trait]
impl EventBus for RecordingBus {
    async fn publish(&self, events: &[Outgoing]) -> Result<(), BusError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BusError::Unavailable("the broker is down".into()));
        }
        self.published
            .lock()
            .expect("lock")
            .extend_from_slice(events);
        Ok(())
    }

    async fn subscribe(
        &self,
        _: &str,
        _: &[String],
        _: &Positions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        Err(BusError::Unavailable("publishing only".into()))
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

pub struct Running {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stops promptly")
            .expect("task did not panic");
    }
}

pub fn event(n: i64) -> Envelope {
    Envelope::new(
        "commercex/test",
        "commercex.test.happened.v1",
        format!("agg-{}", n % 3),
        &serde_json::json!({"n": n}),
    )
}

/// `event(n)`, published under a trace of its own: the trace's id and the event.
pub fn traced_event(n: i64) -> (String, Envelope) {
    let trace = Uuid::new_v4().simple().to_string();
    let mut envelope = event(n);
    envelope.traceparent = Some(format!("00-{trace}-{:016x}-01", n + 1));
    (trace, envelope)
}

/// The trace id in a W3C `traceparent`.
fn trace_id(traceparent: Option<String>) -> Option<String> {
    Some(traceparent?.split('-').nth(1)?.to_owned())
}

/// Spans get trace ids from here on, as under the binary's OpenTelemetry layer. For the
/// whole test process: the consumer's tasks run on any of the runtime's threads.
pub fn with_trace_ids() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
    });
}

/// A type the test handler does not handle.
pub const IGNORED: &str = "commercex.test.ignored.v1";

pub fn ignored_event(n: i64) -> Envelope {
    Envelope::new(
        "commercex/test",
        IGNORED,
        format!("agg-{n}"),
        &serde_json::json!({"n": n}),
    )
}

pub fn poison_event() -> Envelope {
    Envelope::new(
        "commercex/test",
        "commercex.test.happened.v1",
        "agg-p",
        &serde_json::json!({"poison": true}),
    )
}

/// A handler that records each effect in the `effects` table, and fails on command.
#[derive(Default)]
pub struct Recorder {
    pub calls: AtomicU32,
    transient_failures_left: AtomicU32,
    outage_failures_left: AtomicU32,
    always_transient: Mutex<Option<Uuid>>,
    /// Events, each with the one whose effect it needs first.
    waiting_on_earlier: Mutex<HashMap<Uuid, Uuid>>,
    /// The trace each event was handled in, when tracing is on (`with_trace_ids`).
    traces: Mutex<HashMap<Uuid, Option<String>>>,
    healed: AtomicBool,
    times: Mutex<Vec<Instant>>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn failing_transiently(times: u32) -> Arc<Self> {
        let recorder = Self::default();
        recorder
            .transient_failures_left
            .store(times, Ordering::SeqCst);
        Arc::new(recorder)
    }

    /// Fails `times` as a handler does whose database is unavailable (its pool exhausted).
    pub fn failing_with_outage(times: u32) -> Arc<Self> {
        let recorder = Self::default();
        recorder.outage_failures_left.store(times, Ordering::SeqCst);
        Arc::new(recorder)
    }

    pub fn fail_transiently_on(&self, event: Uuid) {
        *self.always_transient.lock().expect("lock") = Some(event);
    }

    /// `event` needs one that has not arrived (until `heal`).
    /// `event` cannot be handled before `needed` has been (as a reservation needs its order).
    pub fn wait_on_earlier(&self, event: Uuid, needed: Uuid) {
        self.waiting_on_earlier
            .lock()
            .expect("lock")
            .insert(event, needed);
    }

    /// The trace id of the span `event` was last handled in.
    pub fn trace_of(&self, event: Uuid) -> Option<String> {
        self.traces
            .lock()
            .expect("lock")
            .get(&event)
            .cloned()
            .flatten()
    }

    /// The bug behind the failures is fixed (or the awaited event arrived).
    pub fn heal(&self) {
        self.healed.store(true, Ordering::SeqCst);
    }

    pub fn gaps(&self) -> Vec<Duration> {
        let times = self.times.lock().expect("lock");
        times.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[async_trait]
impl EventHandler for Recorder {
    fn handles(&self, event_type: &str) -> bool {
        event_type != IGNORED
    }

    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.times.lock().expect("lock").push(Instant::now());
        let trace = trace_id(platform::trace_context::traceparent(&Span::current()));
        self.traces.lock().expect("lock").insert(event.id, trace);
        let healed = self.healed.load(Ordering::SeqCst);
        if !healed && event.data.get("poison").is_some() {
            return Err(HandlerError::permanent(
                "poison pill: cannot interpret this event",
            ));
        }
        let needed = self
            .waiting_on_earlier
            .lock()
            .expect("lock")
            .get(&event.id)
            .copied();
        if let Some(needed) = needed {
            let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM effects WHERE event_id = $1")
                .bind(needed.to_string())
                .fetch_one(&mut ***tx)
                .await?;
            if found == 0 {
                return Err(HandlerError::not_yet("the order is not known yet"));
            }
        }
        if !healed && *self.always_transient.lock().expect("lock") == Some(event.id) {
            return Err(HandlerError::transient("dependency unavailable"));
        }
        if self
            .outage_failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
        {
            return Err(sqlx::Error::PoolTimedOut.into());
        }
        if self
            .transient_failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
        {
            return Err(HandlerError::transient("simulated timeout"));
        }
        // What this transaction wrote so far is visible to it: effects of earlier events of
        // the same batch count.
        let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM effects")
            .fetch_one(&mut ***tx)
            .await?;
        sqlx::query("INSERT INTO effects (seq, event_id) VALUES ($1, $2)")
            .bind(before)
            .bind(event.id.to_string())
            .execute(&mut ***tx)
            .await?;
        Ok(())
    }
}
