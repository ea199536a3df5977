//! `commercex bench-events`: the Kafka event bus alone, without services or databases. For
//! each partition count it creates a fresh topic with that many partitions, publishes N events
//! through the same `KafkaBus` the services use (batches of 100, keys spread over the
//! partitions), then consumes them with a consumer group of one member per partition, each
//! committing every event's offset as the services' consumers do. It prints events per second
//! for both halves, so how event throughput grows with partitions can be read off one table.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use events::Envelope;
use events::bus::kafka::{KafkaBus, KafkaConfig, ensure_topics};
use events::bus::{EventBus, Outgoing};

/// The topic every run writes to, under a prefix of its own.
const TOPIC: &str = "bench.events";
const BATCH: usize = 100;
/// A run that stops receiving events for this long has lost some: it fails.
const STALL: Duration = Duration::from_secs(60);

pub async fn run(config: KafkaConfig, events: usize, partitions: &[i32]) -> anyhow::Result<()> {
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    println!("| partitions | consumers | events | published/s | consumed/s |");
    println!("|---|---|---|---|---|");
    for &count in partitions {
        if count < 1 {
            bail!("a topic has at least one partition");
        }
        let mut config = config.clone();
        config.topic_prefix = format!("{}bench-{run_id}-p{count}.", config.topic_prefix);
        config.topics.partitions = count;
        ensure_topics(&config, &[TOPIC.to_owned()])
            .await
            .context("creating the benchmark topic")?;
        let bus = Arc::new(KafkaBus::connect(config)?);
        let published = publish(&bus, events).await?;
        let consumed = consume(&bus, &run_id, count, events).await?;
        println!(
            "| {count} | {count} | {events} | {:.0} | {:.0} |",
            events as f64 / published.as_secs_f64(),
            events as f64 / consumed.as_secs_f64()
        );
    }
    Ok(())
}

async fn publish(bus: &KafkaBus, events: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut sent = 0;
    while sent < events {
        let batch: Vec<Outgoing> = (sent..events.min(sent + BATCH))
            .map(|n| Outgoing {
                topic: TOPIC.to_owned(),
                envelope: Envelope::new(
                    "commercex-bench",
                    "commercex.bench.event.v1",
                    uuid::Uuid::now_v7().to_string(),
                    &serde_json::json!({ "n": n }),
                ),
            })
            .collect();
        sent += batch.len();
        bus.publish(&batch).await.context("publishing")?;
    }
    Ok(started.elapsed())
}

/// From the first member's subscription until every event has been committed (counted once:
/// a rebalance may deliver some twice, as Kafka's at-least-once allows).
async fn consume(
    bus: &Arc<KafkaBus>,
    run_id: &str,
    members: i32,
    events: usize,
) -> anyhow::Result<Duration> {
    let group = format!("bench-{run_id}-{members}");
    let seen = Arc::new(Mutex::new(HashSet::with_capacity(events)));
    let count = |seen: &Mutex<HashSet<uuid::Uuid>>| {
        seen.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    };
    let started = Instant::now();
    let readers: Vec<_> = (0..members)
        .map(|_| {
            let (bus, group, seen) = (bus.clone(), group.clone(), seen.clone());
            tokio::spawn(async move {
                let mut subscription = bus
                    .subscribe(&group, &[TOPIC.to_owned()], &Default::default())
                    .await?;
                let mut last_seen = Instant::now();
                while count(&seen) < events {
                    let deliveries = subscription.poll(BATCH, Duration::from_millis(200)).await?;
                    if deliveries.is_empty() && last_seen.elapsed() > STALL {
                        bail!("no event for {} s with events missing", STALL.as_secs());
                    }
                    for delivery in &deliveries {
                        subscription.commit(delivery).await?;
                    }
                    if !deliveries.is_empty() {
                        last_seen = Instant::now();
                        seen.lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .extend(deliveries.iter().map(|d| d.envelope.id));
                    }
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for reader in readers {
        reader.await??;
    }
    let elapsed = started.elapsed();
    let consumed = count(&seen);
    if consumed != events {
        bail!("{consumed} distinct events consumed, {events} published");
    }
    Ok(elapsed)
}
