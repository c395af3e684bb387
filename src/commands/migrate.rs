//! `revline migrate`: creates or upgrades the warehouse tables (versioned, idempotent) and,
//! in Kafka mode, the events and dead-letter topics. `--cluster NAME` creates the
//! ClickHouse tables on a cluster (replicated local tables, distributed ones under the
//! plain names; see `warehouse::cluster`); `--print` prints the ClickHouse DDL instead of
//! running anything.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use warehouse::embedded::Embedded;
use warehouse::Warehouse;

use crate::backends;
use crate::config::Config;
use crate::UsageError;

#[derive(clap::Args, Default)]
pub struct MigrateArgs {
    /// Create the ClickHouse tables on this cluster (a name in the servers'
    /// `remote_servers`): `ON CLUSTER`, `ReplicatedReplacingMergeTree` tables `<name>_local`
    /// and `Distributed` tables `<name>` sharded by `cityHash64(id)`. Same as
    /// `REVLINE_CLICKHOUSE_CLUSTER`, which the other commands need too.
    #[arg(long)]
    cluster: Option<String>,
    /// Print the ClickHouse DDL of every migration (for the cluster when one is given) and
    /// exit without connecting to anything.
    #[arg(long)]
    print: bool,
}

pub async fn run(mut config: Config, args: MigrateArgs) -> anyhow::Result<()> {
    if let Some(cluster) = &args.cluster {
        if !crate::config::valid_identifier(cluster) {
            return Err(UsageError(format!(
                "--cluster {cluster}: must be 1 to 64 of letters, digits and '_'"
            ))
            .into());
        }
    }
    let cluster = args
        .cluster
        .clone()
        .or_else(|| config.clickhouse.as_ref().and_then(|c| c.cluster.clone()));
    if args.print {
        let database = config
            .clickhouse
            .as_ref()
            .map_or(crate::config::DEFAULT_CLICKHOUSE_DATABASE, |c| {
                c.database.as_str()
            });
        let ddl = match &cluster {
            Some(cluster) => warehouse::clickhouse::cluster_ddl(cluster, database)?,
            None => warehouse::MIGRATIONS
                .iter()
                .flat_map(|m| warehouse::statements(m.clickhouse))
                .collect(),
        };
        let mut out = std::io::stdout().lock();
        for stmt in ddl {
            // A closed pipe (`| head`) ends the listing, not with a panic.
            if writeln!(out, "{stmt};\n").is_err() {
                break;
            }
        }
        return Ok(());
    }
    match (&mut config.clickhouse, cluster) {
        (Some(ch), cluster) => ch.cluster = cluster,
        (None, Some(_)) => {
            return Err(UsageError(
                "--cluster is for ClickHouse: set REVLINE_CLICKHOUSE_URL to one of the cluster's servers".into(),
            )
            .into())
        }
        (None, None) => {}
    }
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
        .with_context(|| {
            let why =
                eventlog::kafka::diagnose(&backends::kafka_connection(k), Duration::from_secs(5));
            if why.is_empty() {
                "cannot read the cluster's metadata (are the brokers reachable?)".to_owned()
            } else {
                format!(
                    "cannot read the cluster's metadata; librdkafka says: {}",
                    why.join("; ")
                )
            }
        })?;
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
