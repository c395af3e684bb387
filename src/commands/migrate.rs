//! `revline migrate`: creates or upgrades the warehouse tables (versioned, idempotent) and,
//! in Kafka mode, the events and dead-letter topics.

use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use warehouse::embedded::Embedded;
use warehouse::Warehouse;

use crate::backends;
use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let applied = match &config.clickhouse {
        Some(ch) => backends::clickhouse(ch)?
            .migrate()
            .await
            .context("clickhouse migration failed")?,
        None => Embedded::open(&config.data_dir)?
            .migrate()
            .await
            .context("embedded warehouse migration failed")?,
    };
    if applied.is_empty() {
        println!("warehouse: up to date");
    } else {
        println!("warehouse: applied {}", applied.join(", "));
    }
    if let Some(k) = &config.kafka {
        println!("kafka: {}", eventlog::kafka::librdkafka_build());
        let admin: AdminClient<DefaultClientContext> = backends::kafka_connection(k)
            .admin_config()
            .create()
            .context("cannot create a kafka admin client")?;
        let topics = [
            NewTopic::new(
                &k.topic,
                k.partitions,
                TopicReplication::Fixed(k.replication),
            ),
            NewTopic::new(
                &k.dlq_topic,
                k.partitions,
                TopicReplication::Fixed(k.replication),
            ),
        ];
        let results = admin
            .create_topics(
                &topics,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .context("cannot create kafka topics")?;
        for result in results {
            match result {
                Ok(topic) => println!("kafka: created topic {topic}"),
                Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    println!("kafka: topic {topic} exists")
                }
                Err((topic, code)) => anyhow::bail!("kafka: cannot create topic {topic}: {code}"),
            }
        }
    }
    Ok(())
}
