//! The producer every record leaves through, replaced when the broker has stopped taking its
//! records. An idempotent producer keeps a producer id and a sequence per partition; after an
//! outage the broker may no longer accept them: librdkafka can declare the producer failed
//! for good (a fatal error, librdkafka issue #3584), or the broker keeps answering its
//! produce requests with an error (tansu 0.6 restarted under a producer answers `Unknown`
//! to every one). Either way librdkafka does not recover by itself, while a new producer,
//! with a new producer id, sends at once. Without this a relay retried the same batch for
//! ever while its outbox grew (the fault run of 2026-12-07: payments and inventory stopped
//! publishing after the broker came back). Errors of librdkafka's own (a timeout, no
//! connection, a full queue) keep the producer: it reconnects by itself.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use super::binding::Record;
use crate::bus::BusError;

pub(crate) struct Producer {
    config: ClientConfig,
    current: RwLock<Arc<FutureProducer>>,
    /// How long a send waits for the cluster before it fails.
    delivery_timeout: Duration,
}

impl Producer {
    pub(crate) fn create(
        config: ClientConfig,
        delivery_timeout: Duration,
    ) -> Result<Self, BusError> {
        let producer = create(&config)?;
        Ok(Self {
            config,
            current: RwLock::new(Arc::new(producer)),
            delivery_timeout,
        })
    }

    /// The producer in use now.
    pub(crate) fn current(&self) -> Arc<FutureProducer> {
        // A poisoned lock still holds a usable producer: a panic elsewhere must not stop
        // publishing.
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sends `record` to `topic` and waits for the cluster to acknowledge it.
    pub(crate) async fn send(&self, topic: &str, record: &Record) -> Result<(), BusError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        let future_record = FutureRecord::to(topic)
            .key(&record.key)
            .payload(&record.value)
            .headers(headers);
        let producer = self.current();
        let sent = producer.send(future_record, self.delivery_timeout).await;
        match sent {
            Ok(_) => Ok(()),
            Err((error, _)) => {
                self.replace_if_refused(&producer, &error);
                Err(BusError::Unavailable(format!(
                    "publishing to {topic}: {error}"
                )))
            }
        }
    }

    /// Puts a new producer in place of `used` if the broker refused the record or librdkafka
    /// says `used` can no longer send, unless a concurrent send has already done so.
    fn replace_if_refused(&self, used: &Arc<FutureProducer>, error: &KafkaError) {
        let failed_for_good = used.client().fatal_error();
        let refused_by_broker = error
            .rdkafka_error_code()
            .is_some_and(|code| code as i32 > RDKafkaErrorCode::End as i32);
        if failed_for_good.is_none() && !refused_by_broker {
            return;
        }
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !Arc::ptr_eq(&current, used) {
            return;
        }
        match create(&self.config) {
            Ok(fresh) => {
                let failed = std::mem::replace(&mut *current, Arc::new(fresh));
                let cause = failed_for_good.map_or_else(
                    || error.to_string(),
                    |(code, reason)| format!("{code:?}: {reason}"),
                );
                tracing::error!(
                    error = %cause,
                    "the broker stopped taking the Kafka producer's records; publishing through a new one"
                );
                // Dropping a producer purges and flushes it, which blocks for a while.
                tokio::task::spawn_blocking(move || drop(failed));
            }
            Err(error) => tracing::error!(
                %error,
                "the Kafka producer needs replacing and a new one could not be created; will try again"
            ),
        }
    }
}

fn create(config: &ClientConfig) -> Result<FutureProducer, BusError> {
    config
        .create()
        .map_err(|e| BusError::Unavailable(format!("creating the Kafka producer: {e}")))
}

#[cfg(test)]
mod tests {
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    use super::*;

    /// librdkafka's own mock cluster refuses the producer an id for good, which leaves an
    /// idempotent producer failed for good (a broker's answer after an outage does the same).
    #[tokio::test]
    async fn a_producer_failed_for_good_is_replaced_and_the_next_send_goes_through() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("events", 1, 1).unwrap();
        cluster.request_errors(
            RDKafkaApiKey::InitProducerId,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED],
        );
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("enable.idempotence", "true");
        let producer = Producer::create(config, Duration::from_secs(10)).unwrap();
        let first = producer.current();
        let record = Record {
            key: "k".into(),
            headers: vec![("h".into(), "v".into())],
            value: b"event".to_vec(),
        };

        let refused = producer.send("events", &record).await;
        assert!(refused.is_err(), "{refused:?}");
        assert!(first.client().fatal_error().is_some());
        assert!(
            !Arc::ptr_eq(&first, &producer.current()),
            "a new producer took its place"
        );
        producer.send("events", &record).await.unwrap();
    }
}
