//! The Kafka event bus: the relay publishes through an idempotent producer (`acks=all`), keyed
//! by aggregate id so one aggregate's events stay in order in one partition; consumers join
//! consumer groups and commit an offset only after the handler's transaction has committed
//! (the inbox still dedups what a rebalance redelivers). No Kafka transactions are needed.
//!
//! Plain Kafka protocol through librdkafka: it runs unchanged on Apache Kafka, Redpanda, MSK
//! or tansu.

mod binding;
mod positions;
mod producer;
mod subscription;
mod topics;

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::producer::Producer as _;

use crate::bus::{BusError, EventBus, Outgoing, Subscription};
pub use binding::{Record, decode, encode};
pub use topics::{TopicReport, dlq_topic, ensure_topics};

/// How long a publish waits for the cluster before the relay retries the batch.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port,host:port`.
    pub brokers: String,
    /// Prepended to every topic name.
    pub topic_prefix: String,
    /// librdkafka properties applied to every client (security, batching, timeouts).
    pub client_options: Vec<(String, String)>,
    /// librdkafka properties for the producer alone (batching, linger).
    pub producer_options: Vec<(String, String)>,
    /// Whether CommerceX creates topics (at start-up, and a group's dead-letter topic when it
    /// joins), or finds them made by whoever manages the cluster.
    pub create_topics: bool,
    pub topics: TopicSettings,
}

#[derive(Debug, Clone, Copy)]
pub struct TopicSettings {
    pub partitions: i32,
    pub replication_factor: i32,
    pub min_insync_replicas: i32,
}

impl KafkaConfig {
    /// A client configuration: `defaults`, then the operator's own settings over them.
    fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.client_options {
            config.set(key, value);
        }
        config
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    /// The unprefixed name of `topic`.
    fn unprefixed<'a>(&self, topic: &'a str) -> &'a str {
        topic.strip_prefix(&self.topic_prefix).unwrap_or(topic)
    }
}

pub struct KafkaBus {
    config: KafkaConfig,
    producer: std::sync::Arc<producer::Producer>,
}

impl KafkaBus {
    /// Creates the producer; it connects in the background, so a broker that is down at
    /// start-up only delays publishing (events wait in the outbox).
    pub fn connect(config: KafkaConfig) -> Result<Self, BusError> {
        // Batches of records, compressed: a relay batch becomes a few requests rather than one
        // per event. The operator's options come after (tansu 0.6 needs
        // `batch.num.messages=1`: its consumers lose the rest of a batch they resume inside).
        let mut client = config.client(&[("linger.ms", "5"), ("compression.type", "lz4")]);
        for (key, value) in &config.producer_options {
            client.set(key, value);
        }
        // Not the operator's to loosen: "nothing accepted is ever lost" rests on these.
        client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "delivery.timeout.ms",
                DELIVERY_TIMEOUT.as_millis().to_string(),
            );
        let producer = producer::Producer::create(client, DELIVERY_TIMEOUT)?;
        Ok(Self {
            config,
            producer: std::sync::Arc::new(producer),
        })
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }
}

#[async_trait]
impl EventBus for KafkaBus {
    /// Sends every record, then waits for every acknowledgement: the producer pipelines them,
    /// and idempotence keeps their order within a partition even across retries.
    async fn publish(&self, events: &[Outgoing]) -> Result<(), BusError> {
        let records = events
            .iter()
            .map(|event| Ok((self.config.topic(&event.topic), encode(&event.envelope)?)))
            .collect::<Result<Vec<_>, BusError>>()?;
        let sends = records
            .iter()
            .map(|(topic, record)| self.producer.send(topic, record));
        futures::future::try_join_all(sends).await.map(drop)
    }

    /// Resumes at the group's offsets committed in Kafka; `_resume` is not needed.
    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
        _resume: &crate::bus::Positions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        if self.config.create_topics {
            topics::ensure_dlq_topic(&self.config, group).await?;
        }
        let subscription = subscription::KafkaSubscription::join(self, group, topics)?;
        Ok(Box::new(subscription))
    }

    async fn dead_letter(
        &self,
        group: &str,
        delivery: &crate::bus::Delivery,
        error: &str,
    ) -> Result<(), BusError> {
        let mut record = encode(&delivery.envelope)?;
        record.headers.extend([
            ("x-dlq-group".to_owned(), group.to_owned()),
            ("x-dlq-error".to_owned(), error.to_owned()),
            ("x-dlq-topic".to_owned(), delivery.topic.clone()),
            ("x-dlq-partition".to_owned(), delivery.partition.to_string()),
            ("x-dlq-offset".to_owned(), delivery.offset.to_string()),
        ]);
        self.producer
            .send(&self.config.topic(&dlq_topic(group)), &record)
            .await
    }

    async fn ping(&self) -> Result<(), BusError> {
        let producer = self.producer.current();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(3))
                .map(drop)
                .map_err(|e| BusError::Unavailable(format!("Kafka metadata: {e}")))
        })
        .await
        .map_err(|e| BusError::Unavailable(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka rejects `security.protocol=ssl` at client creation when built without TLS;
    /// this build must take it (brokers such as MSK require TLS).
    #[test]
    fn clients_can_be_configured_for_tls() {
        let config = KafkaConfig {
            brokers: "localhost:9093".into(),
            topic_prefix: String::new(),
            client_options: vec![
                ("security.protocol".into(), "ssl".into()),
                (
                    "ssl.endpoint.identification.algorithm".into(),
                    "https".into(),
                ),
            ],
            producer_options: Vec::new(),
            create_topics: true,
            topics: TopicSettings {
                partitions: 1,
                replication_factor: 1,
                min_insync_replicas: 1,
            },
        };
        assert!(KafkaBus::connect(config).is_ok());
    }
}
