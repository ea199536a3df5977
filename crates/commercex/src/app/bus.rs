//! The event bus backend, chosen here and nowhere else: the in-database log or Kafka.

use std::sync::Arc;

use async_trait::async_trait;
use events::bus::EventBus;
use events::bus::dblog::DbLogBus;
use platform::db::{Db, PoolSettings, Storage};
use platform::http::ReadinessCheck;

use crate::settings::{BusSettings, Settings};

/// The SQLite file / PostgreSQL schema of the in-database event bus.
const BUS_SCHEMA: &str = "bus";

/// Opens the event bus database and applies its migrations.
pub async fn open_bus_db(storage: &Storage, pool: PoolSettings) -> anyhow::Result<Db> {
    let bus = storage.open(BUS_SCHEMA, pool).await?;
    bus.migrate(&events::bus_migrations()).await?;
    Ok(bus)
}

/// The bus, and the database it lives in when it is the in-database log (closed at shutdown).
pub struct OpenBus {
    pub bus: Arc<dyn EventBus>,
    pub db: Option<Db>,
}

pub async fn open_bus(settings: &Settings) -> anyhow::Result<OpenBus> {
    match &settings.bus {
        BusSettings::Db => {
            let db = open_bus_db(&settings.storage, settings.pool).await?;
            Ok(OpenBus {
                bus: Arc::new(DbLogBus::new(db.clone())),
                db: Some(db),
            })
        }
        #[cfg(feature = "kafka")]
        BusSettings::Kafka(config) => {
            if config.create_topics {
                provision_topics(config).await;
            }
            let bus = events::bus::kafka::KafkaBus::connect(config.clone())?;
            Ok(OpenBus {
                bus: Arc::new(bus),
                db: None,
            })
        }
    }
}

/// Makes sure the event topics exist. A broker that is down does not stop start-up: the
/// service still takes requests, events wait in the outbox, and consumers join once it is up.
#[cfg(feature = "kafka")]
async fn provision_topics(config: &events::bus::kafka::KafkaConfig) {
    let topics: Vec<String> = events::contract::TOPICS
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    match events::bus::kafka::ensure_topics(config, &topics).await {
        Ok(report) => {
            for line in report.lines() {
                tracing::info!(topic_status = line, "kafka topic");
            }
        }
        Err(error) => {
            tracing::warn!(%error, "could not provision Kafka topics now; run `commercex topics ensure` once the cluster is reachable")
        }
    }
}

pub struct BusReady(pub Arc<dyn EventBus>);

#[async_trait]
impl ReadinessCheck for BusReady {
    fn name(&self) -> &str {
        "event_bus"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}
