//! Builds the reconcile side from the configuration: which warehouse (ClickHouse when
//! `REVLINE_CLICKHOUSE_URL` is set, else the embedded one under the data dir) and which
//! loop (Kafka when brokers are set, else the embedded log), as one future to run.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ingest::log::embedded::LogReader;
use prometheus_client::registry::Registry;
use reconcile::consumer::kafka::KafkaSource;
use reconcile::consumer::{
    embedded as embedded_loop, kafka as kafka_loop, LoopOptions, Pipeline, PipelineError,
};
use reconcile::enrich::{self, StripeApi};
use reconcile::metrics::ReconcileMetrics;
use reconcile::warehouse::clickhouse::{ClickHouse, ClickHouseSettings};
use reconcile::warehouse::embedded::Embedded;
use reconcile::warehouse::Warehouse;
use tokio::sync::watch;

use crate::config::{Config, KafkaConfig};

pub type ReconcileTask = Pin<Box<dyn Future<Output = Result<(), PipelineError>> + Send>>;

pub fn clickhouse(settings: &ClickHouseSettings) -> anyhow::Result<ClickHouse> {
    ClickHouse::new(settings).context("invalid configuration: REVLINE_CLICKHOUSE_DATABASE")
}

pub fn kafka_source(k: &KafkaConfig) -> KafkaSource {
    KafkaSource {
        brokers: k.brokers.clone(),
        topic: k.topic.clone(),
        dlq_topic: k.dlq_topic.clone(),
        group_id: k.group_id.clone(),
        librdkafka: k.librdkafka.clone(),
    }
}

pub fn loop_options(config: &Config) -> LoopOptions {
    LoopOptions {
        batch_events: config.reconcile.batch_events,
        batch_wait: config.reconcile.batch_wait,
        sweep_interval: config.reconcile.sweep_interval,
    }
}

/// Applies migrations, waiting out a warehouse that is not up yet.
pub async fn migrate_when_up<W: Warehouse>(
    warehouse: &W,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match warehouse.migrate().await {
            Ok(applied) => {
                if !applied.is_empty() {
                    tracing::info!(?applied, "warehouse migrations applied");
                }
                return Ok(());
            }
            Err(err) if err.is_transient() => {
                tracing::warn!(error = %err, "warehouse not reachable for migrations; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = reconcile::consumer::stopped(shutdown) => return Err(PipelineError::Stopped),
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(err) => return Err(err.into()),
        }
    }
}

fn task<W: Warehouse>(
    warehouse: W,
    source: Source,
    options: LoopOptions,
    stripe: Option<StripeApi>,
    metrics: ReconcileMetrics,
    shutdown: watch::Receiver<bool>,
) -> ReconcileTask {
    Box::pin(async move {
        let mut stop = shutdown.clone();
        migrate_when_up(&warehouse, &mut stop).await?;
        let warehouse = Arc::new(warehouse);
        let enrichment = match stripe {
            Some(api) => Some(tokio::spawn(enrich::run(
                api,
                warehouse.clone(),
                metrics.clone(),
                shutdown.clone(),
            ))),
            None => {
                tracing::info!(
                    "STRIPE_API_KEY is not set: balance transactions (fees, net, exchange rates) of \
                     charges and refunds are not fetched, so those columns stay empty"
                );
                None
            }
        };
        let pipeline = Pipeline::new(warehouse, metrics, shutdown.clone());
        let result = match source {
            Source::Kafka(source) => kafka_loop::run(source, pipeline, options, shutdown).await,
            Source::Embedded(reader) => {
                embedded_loop::run(reader, pipeline, options, shutdown).await
            }
        };
        if let Some(enrichment) = enrichment {
            enrichment.abort();
        }
        result
    })
}

/// Where events are read from.
pub enum Source {
    Kafka(KafkaSource),
    Embedded(Arc<LogReader>),
}

/// The reconcile loop for this configuration, its metrics registered in `registry`.
pub fn reconciler(
    config: &Config,
    source: Source,
    registry: &mut Registry,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<ReconcileTask> {
    let metrics = ReconcileMetrics::register(registry);
    let options = loop_options(config);
    Ok(match &config.clickhouse {
        Some(ch) => {
            tracing::info!(url = %ch.url, database = %ch.database, "warehouse: clickhouse");
            task(
                clickhouse(ch)?,
                source,
                options,
                config.stripe.clone(),
                metrics,
                shutdown,
            )
        }
        None => {
            let embedded =
                Embedded::open(&config.data_dir).context("cannot open the embedded warehouse")?;
            tracing::info!(path = %embedded.path().display(), "warehouse: embedded");
            task(
                embedded,
                source,
                options,
                config.stripe.clone(),
                metrics,
                shutdown,
            )
        }
    })
}
