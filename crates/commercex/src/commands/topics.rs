//! `commercex topics ensure`: the Kafka topics, created ahead of a deployment (services also
//! ensure them at start-up).

use anyhow::bail;

use crate::settings::BusSettings;

pub async fn ensure(bus: BusSettings) -> anyhow::Result<()> {
    match bus {
        BusSettings::Db => bail!("topics are a Kafka concept: run with --bus kafka"),
        #[cfg(feature = "kafka")]
        BusSettings::Kafka(config) => {
            let groups = [
                catalog::reactions::GROUP,
                inventory::reactions::GROUP,
                orders::reactions::GROUP,
                payments::reactions::GROUP,
                webhooks::reactions::GROUP,
            ];
            let topics: Vec<String> = events::contract::TOPICS
                .iter()
                .map(|topic| (*topic).to_owned())
                .chain(
                    groups
                        .iter()
                        .map(|group| events::bus::kafka::dlq_topic(group)),
                )
                .collect();
            let report = events::bus::kafka::ensure_topics(&config, &topics).await?;
            for line in report.lines() {
                println!("{line}");
            }
            if report.under_replicated() {
                bail!("some topics have fewer replicas than configured (see above)");
            }
            Ok(())
        }
    }
}
