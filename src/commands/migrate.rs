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
        topics(k).await?;
    }
    Ok(())
}

/// Creates the events and dead-letter topics with durable settings, and says what they are:
/// replication min(3, brokers) unless configured, `min.insync.replicas` one less (at least
/// 1), the configured retention. A broker that refuses the settings (Tansu ignores or
/// rejects some) gets the topic with its own defaults, and the output says so.
async fn topics(k: &crate::config::KafkaConfig) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = backends::kafka_connection(k)
        .admin_config()
        .create()
        .context("cannot create a kafka admin client")?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(30))
        .context("cannot read the cluster's metadata (are the brokers reachable?)")?;
    let brokers = i32::try_from(metadata.brokers().len())
        .unwrap_or(i32::MAX)
        .max(1);
    let replication = k.replication.unwrap_or(brokers.min(3));
    if replication > brokers {
        println!(
            "kafka: warning: replication {replication} asked, but the cluster has {brokers} broker(s): topic creation will fail"
        );
    }
    let min_insync = (replication - 1).max(1).to_string();
    let retention_ms = (k.retention_hours * 3_600_000).to_string();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for topic in [&k.topic, &k.dlq_topic] {
        if let Some(existing) = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic.as_str())
        {
            let replicas = existing
                .partitions()
                .first()
                .map_or(0, |p| p.replicas().len());
            println!(
                "kafka: topic {topic} exists ({} partitions, replication {replicas})",
                existing.partitions().len()
            );
            if replicas == 1 {
                single_replica_warning(topic);
            }
            continue;
        }
        let durable = NewTopic::new(topic, k.partitions, TopicReplication::Fixed(replication))
            .set("min.insync.replicas", &min_insync)
            .set("retention.ms", &retention_ms);
        let settings = format!(
            "{} partitions, replication {replication} of {brokers} broker(s), min.insync.replicas {min_insync}, retention {} h",
            k.partitions, k.retention_hours
        );
        match admin.create_topics([&durable], &options).await {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) => println!("kafka: created topic {topic}: {settings}"),
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {
                    println!("kafka: topic {topic} exists")
                }
                Some(Err((_, code))) if refused_settings(code) => {
                    let plain =
                        NewTopic::new(topic, k.partitions, TopicReplication::Fixed(replication));
                    match admin.create_topics([&plain], &options).await?.into_iter().next() {
                        Some(Ok(_)) => println!(
                            "kafka: created topic {topic} with the broker's defaults: it refused min.insync.replicas and retention ({code})"
                        ),
                        Some(Err((_, code))) => {
                            anyhow::bail!("kafka: cannot create topic {topic}: {code}")
                        }
                        None => anyhow::bail!("kafka: no answer creating topic {topic}"),
                    }
                }
                Some(Err((_, code))) => anyhow::bail!("kafka: cannot create topic {topic}: {code}"),
                None => anyhow::bail!("kafka: no answer creating topic {topic}"),
            },
            Err(err) => return Err(err).context("cannot create kafka topics"),
        }
        if replication == 1 {
            single_replica_warning(topic);
        }
    }
    Ok(())
}

/// Errors of a broker that does not take a topic setting.
fn refused_settings(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::InvalidConfig
            | RDKafkaErrorCode::PolicyViolation
            | RDKafkaErrorCode::InvalidRequest
            | RDKafkaErrorCode::UnsupportedVersion
    )
}

fn single_replica_warning(topic: &str) {
    println!(
        "kafka: warning: topic {topic} has replication 1: an acknowledged event lives on one \
         broker until it is reconciled (embedded mode fsyncs it; Kafka mode needs replicas, \
         or set REVLINE_KAFKA_REPLICATION with more brokers)"
    );
}
