//! What the services stored and published: their databases, the events on the bus, and
//! events put on it by hand.

use std::time::Duration;

use platform::db::{Db, PoolSettings};
use serde_json::Value;

use super::{SERVICE_SCHEMAS, TestApp};
use crate::deployment::Deployment;

/// The server processes of the connections of `db`'s database that listen to `channel`.
pub async fn listening(db: &Db, channel: &str) -> Vec<i32> {
    let listeners: Vec<(i32,)> = sqlx::query_as(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' || $1 || '%'",
    )
    .bind(channel)
    .fetch_all(db.pool())
    .await
    .expect("read pg_stat_activity");
    listeners.into_iter().map(|(pid,)| pid).collect()
}

impl TestApp {
    /// A connection to one of the app's databases, for assertions on what it stored.
    pub async fn database(&self, schema: &str) -> Db {
        let settings = PoolSettings {
            max_connections: 2,
            ..PoolSettings::default()
        };
        self.storage
            .open(schema, settings)
            .await
            .expect("open database")
    }

    /// The envelopes published about `key` (an aggregate id), in publication order per
    /// topic, from whichever bus the app runs on (the in-database bus: the services'
    /// outboxes, rows that are in the log).
    pub async fn published(&self, key: &str) -> Vec<Value> {
        match &self.deployment {
            Some(deployment) => published_on_kafka(deployment, key).await,
            None => {
                let mut rows: Vec<String> = Vec::new();
                for schema in SERVICE_SCHEMAS {
                    let db = self.database(schema).await;
                    rows.extend(
                        sqlx::query_scalar::<_, String>(
                            "SELECT envelope FROM outbox WHERE event_key = $1 \
                             AND published_at IS NOT NULL ORDER BY seq",
                        )
                        .bind(key)
                        .fetch_all(db.pool())
                        .await
                        .expect("read an outbox"),
                    );
                    db.close().await;
                }
                rows.iter()
                    .map(|row| serde_json::from_str(row).expect("envelope json"))
                    .collect()
            }
        }
    }

    /// Publishes `envelope` on `topic` of the app's bus, as a faulty or hostile producer
    /// would.
    pub async fn inject(&self, topic: &str, envelope: events::Envelope) {
        use events::bus::{EventBus, Outgoing};
        let outgoing = [Outgoing {
            topic: topic.to_owned(),
            envelope,
        }];
        match &self.deployment {
            Some(deployment) => kafka_bus(deployment).publish(&outgoing).await,
            None => {
                // Into the producer's outbox, as a second instance of it would write: the
                // running app reads it at its next poll.
                let schema = topic.strip_prefix("commercex.").expect("a CommerceX topic");
                let db = self.database(schema).await;
                let handoff = match db.backend() {
                    platform::db::Backend::Sqlite => events::outbox::Handoff::InPlace,
                    platform::db::Backend::Postgres => events::outbox::Handoff::Sequenced,
                };
                let source = events::bus::outbox_log::Source {
                    db: db.clone(),
                    outbox: events::outbox::Outbox::new(handoff),
                };
                let published = events::bus::outbox_log::OutboxLog::new()
                    .with_source(topic, source)
                    .publish(&outgoing)
                    .await;
                db.close().await;
                published
            }
        }
        .expect("publish");
    }
}

/// A client of the deployment's Kafka, with its topic prefix.
fn kafka_bus(deployment: &Deployment) -> events::bus::kafka::KafkaBus {
    use events::bus::kafka::{KafkaBus, KafkaConfig, TopicSettings};
    KafkaBus::connect(KafkaConfig {
        brokers: deployment.kafka_brokers.clone(),
        topic_prefix: deployment.kafka_prefix.clone(),
        client_options: Vec::new(),
        producer_options: Vec::new(),
        create_topics: true,
        topics: TopicSettings {
            partitions: 3,
            replication_factor: 1,
            min_insync_replicas: 1,
        },
    })
    .expect("kafka client")
}

/// Reads every event topic from the start with a throwaway consumer group.
async fn published_on_kafka(deployment: &Deployment, key: &str) -> Vec<Value> {
    use events::bus::EventBus;
    let bus = kafka_bus(deployment);
    let topics: Vec<String> = events::contract::TOPICS
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    let group = format!("reader-{}", uuid::Uuid::new_v4().simple());
    let mut subscription = bus
        .subscribe(&group, &topics, &Default::default())
        .await
        .expect("subscribe");
    let mut found = Vec::new();
    // Joining the group takes a moment; then the topics are read until they go quiet.
    let mut wait = Duration::from_secs(10);
    loop {
        let batch = subscription.poll(500, wait).await.expect("poll");
        if batch.is_empty() {
            break;
        }
        wait = Duration::from_secs(1);
        found.extend(
            batch
                .into_iter()
                .filter(|delivery| delivery.envelope.subject == key)
                .map(|delivery| serde_json::to_value(&delivery.envelope).expect("envelope")),
        );
    }
    found
}
