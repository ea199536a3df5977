//! Topic provisioning: every event topic and each consumer group's dead-letter topic, with
//! the configured partitions, replication factor and `min.insync.replicas`. Existing topics
//! are left as they are, but one with fewer replicas than configured is reported loudly:
//! it silently weakens the durability the configuration promises.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::KafkaConfig;
use crate::bus::BusError;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The dead-letter topic of consumer group `group`.
pub fn dlq_topic(group: &str) -> String {
    format!("commercex.dlq.{group}")
}

/// What `ensure_topics` found and did, a line per topic.
#[derive(Debug, Default)]
pub struct TopicReport {
    lines: Vec<String>,
    under_replicated: bool,
}

impl TopicReport {
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub fn under_replicated(&self) -> bool {
        self.under_replicated
    }
}

fn admin(config: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>, BusError> {
    config
        .client(&[])
        .create()
        .map_err(|e| BusError::Unavailable(format!("creating the Kafka admin client: {e}")))
}

/// Creates what is missing among `topics` (unprefixed names) and checks the replication of
/// what exists.
pub async fn ensure_topics(
    config: &KafkaConfig,
    topics: &[String],
) -> Result<TopicReport, BusError> {
    let admin = std::sync::Arc::new(admin(config)?);
    let settings = config.topics;
    let names: Vec<String> = topics.iter().map(|topic| config.topic(topic)).collect();
    let min_insync = settings.min_insync_replicas.to_string();
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
            .set("min.insync.replicas", &min_insync)
        })
        .collect();
    let results = admin
        .create_topics(
            &new_topics,
            &AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)),
        )
        .await
        .map_err(|e| BusError::Unavailable(format!("creating topics: {e}")))?;
    let mut report = TopicReport::default();
    for result in results {
        match result {
            Ok(name) => report.lines.push(format!(
                "{name}: created ({} partitions, replication factor {}, min.insync.replicas {})",
                settings.partitions, settings.replication_factor, settings.min_insync_replicas
            )),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(BusError::Unavailable(format!(
                    "creating topic {name}: {code}"
                )));
            }
        }
    }
    check_replication(config, admin, &names, &mut report).await?;
    Ok(report)
}

async fn check_replication(
    config: &KafkaConfig,
    admin: std::sync::Arc<AdminClient<DefaultClientContext>>,
    names: &[String],
    report: &mut TopicReport,
) -> Result<(), BusError> {
    let wanted = usize::try_from(config.topics.replication_factor).unwrap_or(0);
    let metadata = {
        tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, ADMIN_TIMEOUT))
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?
            .map_err(|e| BusError::Unavailable(format!("reading topic metadata: {e}")))?
    };
    for name in names {
        let Some(topic) = metadata.topics().iter().find(|t| t.name() == name) else {
            report
                .lines
                .push(format!("{name}: not visible in the cluster metadata yet"));
            continue;
        };
        let replicas = topic
            .partitions()
            .iter()
            .map(|p| p.replicas().len())
            .min()
            .unwrap_or(0);
        if replicas < wanted {
            report.under_replicated = true;
            let line = format!(
                "{name}: UNDER-REPLICATED: {replicas} replica(s), configured {wanted}; \
                 raise it with kafka-reassign-partitions"
            );
            tracing::error!(
                topic = name,
                replicas,
                configured = wanted,
                "topic has fewer replicas than configured"
            );
            report.lines.push(line);
        } else {
            report.lines.push(format!(
                "{name}: ok ({} partitions, {replicas} replica(s))",
                topic.partitions().len()
            ));
        }
    }
    Ok(())
}

/// The dead-letter topic of `group`, made when a group first subscribes.
pub async fn ensure_dlq_topic(config: &KafkaConfig, group: &str) -> Result<(), BusError> {
    ensure_topics(config, &[dlq_topic(group)]).await.map(drop)
}
