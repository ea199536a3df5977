//! The event bus backend, chosen here and nowhere else: the services' outboxes read as a log
//! (the in-database bus) or Kafka.

use std::sync::Arc;

use async_trait::async_trait;
use events::bus::EventBus;
use events::bus::outbox_log::{OutboxLog, Source};
use events::contract;
use events::service_db::ServiceDb;
use platform::db::Db;
use platform::http::ReadinessCheck;

use super::services::Services;
use crate::settings::{BusSettings, Settings};

/// The bus, and the databases of other processes' services it reads (closed at shutdown).
pub struct OpenBus {
    pub bus: Arc<dyn EventBus>,
    pub databases: Vec<Db>,
    /// The in-database bus's log, whose retention this process keeps.
    pub log: Option<OutboxLog>,
}

pub async fn open_bus(settings: &Settings, services: &Services) -> anyhow::Result<OpenBus> {
    match &settings.bus {
        BusSettings::Db => outbox_log(settings, services).await,
        #[cfg(feature = "kafka")]
        BusSettings::Kafka(config) => {
            if config.create_topics {
                provision_topics(config).await;
            }
            Ok(OpenBus {
                bus: Arc::new(events::bus::kafka::KafkaBus::connect(config.clone())?),
                databases: Vec::new(),
                log: None,
            })
        }
    }
}

/// Each topic is read from its producer's outbox: the open service's own, or, for a
/// service running in another process, its database opened here to read (it wakes nobody
/// here, so those topics are read every poll wait).
async fn outbox_log(settings: &Settings, services: &Services) -> anyhow::Result<OpenBus> {
    let (storage, store) = (&settings.storage, settings.store);
    let mut log = OutboxLog::new();
    let mut databases = Vec::new();
    for topic in contract::TOPICS {
        let producer = match topic {
            contract::users::TOPIC => match &services.users {
                Some(users) => users.store().clone(),
                None => opened(
                    &mut databases,
                    users::UsersService::open_db(storage, store).await?,
                ),
            },
            contract::catalog::TOPIC => match &services.catalog {
                Some(catalog) => catalog.store().clone(),
                None => opened(
                    &mut databases,
                    catalog::CatalogService::open_db(storage, store).await?,
                ),
            },
            contract::inventory::TOPIC => match &services.inventory {
                Some(inventory) => inventory.store().clone(),
                None => opened(
                    &mut databases,
                    inventory::InventoryService::open_db(storage, store).await?,
                ),
            },
            contract::orders::TOPIC => match &services.orders {
                Some(orders) => orders.store().clone(),
                None => opened(
                    &mut databases,
                    orders::OrdersService::open_db(storage, store).await?,
                ),
            },
            contract::payments::TOPIC => match &services.payments {
                Some(payments) => payments.store().clone(),
                None => opened(
                    &mut databases,
                    payments::PaymentsService::open_db(storage, store).await?,
                ),
            },
            other => anyhow::bail!("no service produces {other}"),
        };
        let ServiceDb { db, outbox } = producer;
        log = log.with_source(topic, Source { db, outbox });
    }
    Ok(OpenBus {
        bus: Arc::new(log.clone()),
        databases,
        log: Some(log),
    })
}

fn opened(databases: &mut Vec<Db>, store: ServiceDb) -> ServiceDb {
    databases.push(store.db.clone());
    store
}

/// Makes sure the event topics exist. A broker that is down does not stop start-up: the
/// service still takes requests, events wait in the outbox, and consumers join once it is up.
#[cfg(feature = "kafka")]
async fn provision_topics(config: &events::bus::kafka::KafkaConfig) {
    let topics: Vec<String> = contract::TOPICS.iter().map(|t| (*t).to_owned()).collect();
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
