use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use events::Envelope;
use events::bus::dblog::DbLogBus;
use events::bus::{EventBus, Outgoing};
use events::consumer::{Consumer, ConsumerSettings, EventHandler, HandlerError, RetryPolicy};
use events::outbox::Outbox;
use events::relay::{Relay, RelaySettings};
use platform::db::{Db, PoolSettings};
use sqlx::{Any, Transaction};
use testkit::TestStorage;
pub use testkit::wait_for;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const TOPIC: &str = "commercex.test";
pub const GROUP: &str = "test-consumer";

/// A service database and a bus database, migrated, as a service process would have them.
pub struct World {
    pub service: Db,
    pub bus_db: Db,
    pub bus: Arc<DbLogBus>,
    pub outbox: Outbox,
}

impl World {
    pub async fn new(storage: &TestStorage) -> Self {
        let world = Self::reopen(storage).await;
        sqlx::query("CREATE TABLE effects (seq INTEGER NOT NULL, event_id TEXT NOT NULL)")
            .execute(world.service.pool())
            .await
            .expect("create effects table");
        world
    }

    pub async fn reopen(storage: &TestStorage) -> Self {
        let service = storage
            .storage
            .open("svc", PoolSettings::default())
            .await
            .expect("open service db");
        service
            .migrate(&events::service_migrations())
            .await
            .expect("migrate service db");
        let bus_db = storage
            .storage
            .open("bus", PoolSettings::default())
            .await
            .expect("open bus db");
        bus_db
            .migrate(&events::bus_migrations())
            .await
            .expect("migrate bus db");
        Self {
            bus: Arc::new(DbLogBus::new(bus_db.clone())),
            service,
            bus_db,
            outbox: Outbox::new(),
        }
    }

    pub fn relay(&self) -> Relay<DbLogBus> {
        Relay::new(
            self.service.clone(),
            self.outbox.clone(),
            self.bus.clone(),
            RelaySettings::default(),
        )
    }

    pub fn spawn_relay(&self) -> Running {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(self.relay().run(cancel.clone()));
        Running { cancel, task }
    }

    pub async fn publish(&self, events: &[Envelope]) {
        let outgoing: Vec<Outgoing> = events
            .iter()
            .map(|envelope| Outgoing {
                topic: TOPIC.into(),
                envelope: envelope.clone(),
            })
            .collect();
        self.bus.publish(&outgoing).await.expect("publish");
    }

    pub fn start(&self, handler: Arc<Recorder>, retry: RetryPolicy) -> Running {
        let mut settings = ConsumerSettings::new(GROUP, &[TOPIC]);
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

    pub async fn logged_event_ids(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT event_id FROM event_log ORDER BY position")
            .fetch_all(self.bus_db.pool())
            .await
            .expect("read event log")
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
    always_transient: Mutex<Option<Uuid>>,
    waiting_on_earlier: Mutex<Option<Uuid>>,
    healed: AtomicBool,
    seq: AtomicU32,
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

    pub fn fail_transiently_on(&self, event: Uuid) {
        *self.always_transient.lock().expect("lock") = Some(event);
    }

    /// `event` needs one that has not arrived (until `heal`).
    pub fn wait_on_earlier(&self, event: Uuid) {
        *self.waiting_on_earlier.lock().expect("lock") = Some(event);
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
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.times.lock().expect("lock").push(Instant::now());
        let healed = self.healed.load(Ordering::SeqCst);
        if !healed && event.data.get("poison").is_some() {
            return Err(HandlerError::permanent(
                "poison pill: cannot interpret this event",
            ));
        }
        if !healed && *self.waiting_on_earlier.lock().expect("lock") == Some(event.id) {
            return Err(HandlerError::not_yet("the order is not known yet"));
        }
        if !healed && *self.always_transient.lock().expect("lock") == Some(event.id) {
            return Err(HandlerError::transient("dependency unavailable"));
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
        sqlx::query("INSERT INTO effects (seq, event_id) VALUES ($1, $2)")
            .bind(i64::from(self.seq.fetch_add(1, Ordering::SeqCst)))
            .bind(event.id.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
