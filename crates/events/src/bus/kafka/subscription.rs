//! A consumer-group member. Offsets are committed by hand after the handler's transaction,
//! gathered and sent at most every `COMMIT_EVERY` and when the member stops (`leave`): a
//! crash before they are sent redelivers those events, and the inbox drops them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::ClientContext;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use super::positions::Unsent;
use super::{KafkaBus, KafkaConfig, Record, decode, dlq_topic};
use crate::bus::{BusError, Delivery, Subscription};

/// After the first record, how long to wait for more before handing back a batch.
const BATCH_LINGER: Duration = Duration::from_millis(2);

/// How long a position waits to be sent to the broker. One commit request per batch and
/// partition was a request per event or two under load; gathered, it is a few per second
/// per member. What a crash loses of them only comes again, as duplicates the inbox drops.
const COMMIT_EVERY: Duration = Duration::from_millis(200);

/// How often a member looks for partitions of its topics that the group has stopped
/// consuming (see `KafkaSubscription::poll`).
const STALL_CHECK_EVERY: Duration = Duration::from_secs(15);
/// Records waiting this long behind a committed offset that does not move mean the group
/// has stopped consuming that partition. Longer than a handler's transient retries take.
const STALLED_AFTER: Duration = Duration::from_secs(60);
/// How long the stall check waits for the broker's answers.
const STALL_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub struct KafkaSubscription {
    consumer: StreamConsumer<LagReporter>,
    config: KafkaConfig,
    group: String,
    bus_dlq: DlqSink,
    topics: Vec<String>,
    stalls: StallWatch,
    unsent: Unsent,
}

/// Per partition of the member's topics: the group's committed offset when records were
/// last seen waiting behind it, and since when.
struct StallWatch {
    checked: Instant,
    waiting_since: HashMap<(String, i32), (i64, Instant)>,
}

/// Turns librdkafka's periodic statistics into `commercex_consumer_lag{consumer_group, topic,
/// partition}` for the partitions this member owns (the high watermark minus the committed
/// offset, as the broker last reported them).
pub struct LagReporter {
    group: String,
    /// The deployment's topic prefix, left off the topic label.
    prefix: String,
}

impl ClientContext for LagReporter {
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in statistics.topics {
            let label = name.strip_prefix(&self.prefix).unwrap_or(&name).to_owned();
            for (partition, stats) in topic.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a lag of -1 is unknown.
                if partition < 0 || stats.consumer_lag < 0 {
                    continue;
                }
                crate::telemetry::record_lag(
                    &self.group,
                    &label,
                    Some(partition),
                    stats.consumer_lag,
                );
            }
        }
    }
}

impl ConsumerContext for LagReporter {}

/// Where records that are not events at all go: the group's dead-letter topic, as they came.
struct DlqSink {
    producer: std::sync::Arc<super::producer::Producer>,
    topic: String,
}

impl KafkaSubscription {
    pub fn join(bus: &KafkaBus, group: &str, topics: &[String]) -> Result<Self, BusError> {
        let config = bus.config().clone();
        // A saga is a chain of hops; waiting up to librdkafka's default 500 ms for a fetch to
        // fill at every hop would make each checkout take seconds. A member that crashed holds
        // its partitions until its session times out (45 s by default): 10 s bounds how long
        // a crashed instance's orders wait for another to take over.
        let consumer: StreamConsumer<LagReporter> = config
            .client(&[
                ("fetch.wait.max.ms", "20"),
                ("session.timeout.ms", "10000"),
                ("heartbeat.interval.ms", "2000"),
            ])
            // Prefixed like the topics: platforms sharing a cluster must not share groups.
            .set("group.id", config.topic(group))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // A handler may retry for a while before it dead-letters; stay in the group that
            // long, but no longer: a rebalance can wait this long for a member to rejoin.
            .set("max.poll.interval.ms", "60000")
            // Statistics carry each assigned partition's lag; see `LagReporter`.
            .set("statistics.interval.ms", "5000")
            .create_with_context(LagReporter {
                group: group.to_owned(),
                prefix: config.topic(""),
            })
            .map_err(|e| BusError::Unavailable(format!("creating the Kafka consumer: {e}")))?;
        let names: Vec<String> = topics.iter().map(|topic| config.topic(topic)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| BusError::Unavailable(format!("subscribing to {names:?}: {e}")))?;
        Ok(Self {
            bus_dlq: DlqSink {
                producer: bus.producer.clone(),
                topic: config.topic(&dlq_topic(group)),
            },
            consumer,
            config,
            group: group.to_owned(),
            topics: names.iter().map(|name| (*name).to_owned()).collect(),
            stalls: StallWatch {
                checked: Instant::now(),
                waiting_since: HashMap::new(),
            },
            unsent: Unsent::default(),
        })
    }

    /// The delivery in `message`, or `None` when it is not a readable event (it has then been
    /// copied to the dead-letter topic, and its position is to be committed, so it never
    /// blocks its partition).
    async fn delivery(&self, message: &BorrowedMessage<'_>) -> Result<Option<Delivery>, BusError> {
        let record = record_of(message);
        let topic = self.config.unprefixed(message.topic()).to_owned();
        match decode(&record) {
            Ok(envelope) => Ok(Some(Delivery {
                topic,
                partition: message.partition(),
                offset: message.offset(),
                envelope,
                unreadable: None,
            })),
            Err(error) => {
                tracing::error!(group = self.group, topic, partition = message.partition(), offset = message.offset(), %error, "unreadable record; moving it to the dead-letter topic");
                self.bus_dlq.forward(&record, &error.to_string()).await?;
                Ok(None)
            }
        }
    }

    /// The partitions of this member's topics (whichever member owns them) where records
    /// have waited behind the same committed offset for `STALLED_AFTER`. A broker that does
    /// not answer shows no stall: joining again would not help.
    fn stalled_partitions(&mut self) -> Vec<String> {
        let mut partitions = TopicPartitionList::new();
        for topic in &self.topics {
            let Ok(metadata) = self
                .consumer
                .fetch_metadata(Some(topic), STALL_CHECK_TIMEOUT)
            else {
                return Vec::new();
            };
            for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                partitions.add_partition(topic, partition.id());
            }
        }
        let Ok(committed) = self
            .consumer
            .committed_offsets(partitions, STALL_CHECK_TIMEOUT)
        else {
            return Vec::new();
        };
        let now = Instant::now();
        let mut stalled = Vec::new();
        for entry in committed.elements() {
            let Ok((low, high)) = self.consumer.fetch_watermarks(
                entry.topic(),
                entry.partition(),
                STALL_CHECK_TIMEOUT,
            ) else {
                return Vec::new();
            };
            let offset = match entry.offset() {
                Offset::Offset(offset) => offset,
                _ => low,
            };
            let key = (entry.topic().to_owned(), entry.partition());
            if high <= offset {
                self.stalls.waiting_since.remove(&key);
                continue;
            }
            let since = self
                .stalls
                .waiting_since
                .entry(key)
                .or_insert((offset, now));
            if since.0 != offset {
                *since = (offset, now);
            } else if now.duration_since(since.1) >= STALLED_AFTER {
                stalled.push(format!(
                    "{}/{}@{offset} ({} waiting)",
                    entry.topic(),
                    entry.partition(),
                    high - offset
                ));
            }
        }
        stalled
    }

    /// Sends the positions taken so far, if there are any. Async: a commit lost in a crash
    /// only means a redelivery, which the inbox absorbs. Those that cannot be sent stay, to
    /// go with the next.
    fn send_positions(&mut self) -> Result<(), BusError> {
        let mut positions = TopicPartitionList::new();
        for (topic, partition, offset) in self.unsent.to_send() {
            positions
                .add_partition_offset(topic, partition, Offset::Offset(offset))
                .map_err(|e| BusError::Unavailable(e.to_string()))?;
        }
        if positions.count() == 0 {
            return Ok(());
        }
        if let Err(error) = self.consumer.commit(&positions, CommitMode::Async) {
            // Tried again once they are due again, not at every poll.
            self.unsent.not_sent();
            return Err(BusError::Unavailable(format!(
                "committing positions: {error}"
            )));
        }
        self.unsent.sent();
        Ok(())
    }

    fn send_positions_if_due(&mut self) -> Result<(), BusError> {
        match self.unsent.due_in(COMMIT_EVERY) {
            Some(due_in) if due_in.is_zero() => self.send_positions(),
            _ => Ok(()),
        }
    }
}

impl DlqSink {
    async fn forward(&self, record: &Record, error: &str) -> Result<(), BusError> {
        let mut record = record.clone();
        record
            .headers
            .push(("x-dlq-error".to_owned(), error.to_owned()));
        self.producer.send(&self.topic, &record).await
    }
}

fn record_of(message: &BorrowedMessage<'_>) -> Record {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .filter_map(|header| {
                    let value = std::str::from_utf8(header.value?).ok()?;
                    Some((header.key.to_owned(), value.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        key: message
            .key()
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .unwrap_or_default(),
        headers,
        value: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    /// An error when the group has stopped consuming a partition of this member's topics,
    /// which makes the consumer runner join again with a fresh member (a rebalance for the
    /// whole group, each member starting from the committed offsets). Seen against tansu
    /// after the broker stopped answering for longer than the session timeout: once the
    /// group was joined again, some partitions were consumed by no member for minutes,
    /// while a new member read them at once.
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        if self.stalls.checked.elapsed() >= STALL_CHECK_EVERY {
            self.stalls.checked = Instant::now();
            // The check makes blocking calls to the broker; keep other tasks running.
            let stalled = match tokio::runtime::Handle::current().runtime_flavor() {
                tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(|| self.stalled_partitions())
                }
                _ => self.stalled_partitions(),
            };
            if !stalled.is_empty() {
                self.stalls.waiting_since.clear();
                return Err(BusError::Unavailable(format!(
                    "the group has not consumed {} for {}s; joining again",
                    stalled.join(", "),
                    STALLED_AFTER.as_secs()
                )));
            }
        }
        let mut deliveries = Vec::new();
        let mut interrupted = None;
        // Waiting no longer than the positions may wait, so an idle member still sends them.
        let mut until = Instant::now()
            + self
                .unsent
                .due_in(COMMIT_EVERY)
                .map_or(wait, |due| wait.min(due));
        while deliveries.len() < max {
            let message = match tokio::time::timeout_at(until.into(), self.consumer.recv()).await {
                Err(_) => break,
                Ok(Err(error @ KafkaError::MessageConsumptionFatal(_))) => {
                    // This member is done for: the runner joins again with a new one, which
                    // gets what this one had taken, done or not, again (the inbox drops
                    // what was done). Sending positions into a broker that is away would
                    // hold this member's close for the session timeout.
                    self.unsent = Unsent::default();
                    return Err(BusError::Unavailable(format!("Kafka consumer: {error}")));
                }
                // Anything else (all brokers down, a transport failure, a timeout) librdkafka
                // recovers from by itself, rejoining the group when it must, so the member
                // stays. Replacing it at every outage made its group rebalance each time, and
                // closing members with requests in flight made tansu's storage stop again and
                // again (the fault run of 2026-12-07). The errors queued during an outage
                // are read through here, within this poll's wait: one per poll would keep
                // the member from its records long after the broker is back.
                Ok(Err(error)) => {
                    interrupted = Some(error);
                    continue;
                }
                Ok(Ok(message)) => message,
            };
            match self.delivery(&message).await? {
                Some(delivery) => {
                    self.unsent
                        .hand_out(message.topic(), message.partition(), message.offset());
                    deliveries.push(delivery);
                }
                // Copied to the dead-letter topic: the group is past it once the events
                // before it are done.
                None => {
                    self.unsent
                        .pass_over(message.topic(), message.partition(), message.offset())
                }
            }
            until = Instant::now() + BATCH_LINGER;
        }
        if let (true, Some(error)) = (deliveries.is_empty(), interrupted) {
            return Err(BusError::Interrupted(format!("Kafka consumer: {error}")));
        }
        // Sent once the broker has just answered, or the wait for it ended quietly.
        if let Err(error) = self.send_positions_if_due() {
            tracing::warn!(group = self.group, %error, "positions not committed; will retry");
        }
        Ok(deliveries)
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let topic = self.config.topic(&delivery.topic);
        self.unsent
            .done(&topic, delivery.partition, delivery.offset);
        self.send_positions_if_due()
    }

    /// Sends the positions taken; closing the consumer (its drop) then waits for them. Only
    /// a member that stops does this: one joining again after a failure drops what it had
    /// (it comes again), since a commit in flight to a broker that is away holds the close
    /// for the session timeout.
    async fn leave(&mut self) -> Result<(), BusError> {
        self.send_positions()
    }
}
