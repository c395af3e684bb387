//! Builds the reconcile side from the configuration: which warehouse (ClickHouse when
//! `REVLINE_CLICKHOUSE_URL` is set, else the embedded one under the data dir) and which
//! event source (the Kafka consumer group when brokers are set, else the embedded log), as
//! one future to run.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use eventlog::embedded::{EmbeddedSource, LogReader, RECONCILE_CURSOR};
use eventlog::kafka::{
    KafkaConnection, KafkaSource, SourceSettings, PREFETCH_KBYTES, PREFETCH_KBYTES_BOUNDED,
};
use prometheus_client::registry::Registry;
use reconcile::consumer::{self, LoopOptions, Pipeline, PipelineError};
use reconcile::enrich::{self, Appender, StripeApi};
use reconcile::metrics::ReconcileMetrics;
use tokio::sync::watch;
use warehouse::clickhouse::{ClickHouse, ClickHouseSettings};
use warehouse::embedded::Embedded;
use warehouse::Warehouse;

use crate::config::{Config, KafkaConfig};

pub type ReconcileTask = Pin<Box<dyn Future<Output = Result<(), PipelineError>> + Send>>;

pub fn clickhouse(settings: &ClickHouseSettings) -> anyhow::Result<ClickHouse> {
    ClickHouse::new(settings).context("invalid configuration: REVLINE_CLICKHOUSE_DATABASE")
}

/// The embedded warehouse under the data dir.
pub fn embedded(config: &Config) -> anyhow::Result<Embedded> {
    Embedded::open(&config.data_dir).context("cannot open the embedded warehouse")
}

/// `w` with its migrations applied, for a command that reads it before any server has
/// (a fresh data dir or database has no tables yet; migrating twice is harmless).
pub async fn migrated<W: Warehouse>(w: W) -> anyhow::Result<W> {
    w.migrate()
        .await
        .context("cannot create or upgrade the warehouse tables")?;
    Ok(w)
}

/// "Now" for reports: `REVLINE_REPORT_NOW` when set, else the system clock.
pub fn report_clock(config: &Config) -> reports::Clock {
    match config.report_now {
        Some(now) => Arc::new(move || now),
        None => reports::system_clock(),
    }
}

/// How every Kafka client of this process reaches the brokers.
pub fn kafka_connection(k: &KafkaConfig) -> KafkaConnection {
    KafkaConnection {
        brokers: k.brokers.clone(),
        librdkafka: k.librdkafka.clone(),
    }
}

pub fn loop_options(config: &Config) -> LoopOptions {
    LoopOptions {
        batch_events: config.reconcile.batch_events,
        batch_wait: config.reconcile.batch_wait,
        sweep_interval: config.reconcile.sweep_interval,
        state_cache_bytes: config.reconcile.state_cache_bytes,
        checkpoint_events: config.reconcile.checkpoint_events,
        checkpoint_interval: config.reconcile.checkpoint_interval,
        ..LoopOptions::default()
    }
}

/// Applies migrations, waiting out a warehouse that is not up yet.
pub async fn migrate_when_up<W: Warehouse>(
    warehouse: &W,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let applied = consumer::retry(
        "apply warehouse migrations",
        shutdown,
        || warehouse.migrate(),
        warehouse::WarehouseError::is_transient,
        |_| {},
    )
    .await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "warehouse migrations applied");
    }
    Ok(())
}

/// Where events are read from.
#[derive(Clone)]
pub enum Source {
    Kafka(SourceSettings),
    Embedded(Arc<LogReader>),
}

/// A [`Source`] opened.
enum Either {
    Kafka(KafkaSource),
    Embedded(EmbeddedSource),
}

async fn run_source<S: eventlog::EventSource, W: Warehouse>(
    source: S,
    pipeline: Pipeline<W>,
    options: LoopOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    consumer::run(source, pipeline, options, shutdown).await
}

fn task<W: Warehouse>(
    warehouse: W,
    source: Source,
    options: LoopOptions,
    stripe: Option<(StripeApi, Option<Appender>)>,
    metrics: ReconcileMetrics,
    shutdown: watch::Receiver<bool>,
    migrated: Arc<watch::Sender<bool>>,
) -> ReconcileTask {
    Box::pin(async move {
        let mut stop = shutdown.clone();
        migrate_when_up(&warehouse, &mut stop).await?;
        let _ = migrated.send(true);
        metrics.status.set(1);
        let warehouse = Arc::new(warehouse);
        // The enrichment runs once per deployment: with Kafka in the member holding
        // partition 0, so the source comes first.
        let (source, duty) = match source {
            Source::Kafka(settings) => {
                let source = KafkaSource::new(settings)?;
                let duty = enrich::Duty::while_set(source.holds_first_partition());
                (Either::Kafka(source), duty)
            }
            Source::Embedded(reader) => (
                Either::Embedded(EmbeddedSource::new(reader, RECONCILE_CURSOR)),
                enrich::Duty::always(),
            ),
        };
        let enrichment = match stripe {
            Some((api, append)) => Some(tokio::spawn(enrich::run(
                api,
                warehouse.clone(),
                append,
                metrics.clone(),
                duty,
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
            Either::Kafka(source) => run_source(source, pipeline, options, shutdown).await,
            Either::Embedded(source) => run_source(source, pipeline, options, shutdown).await,
        };
        if let Some(enrichment) = enrichment {
            enrichment.abort();
        }
        result
    })
}

/// The Kafka source settings of this configuration. A matcher with a bounded state
/// reconciles at the rate its warehouse answers lookups, so it prefetches less.
pub fn kafka_source(config: &Config, k: &KafkaConfig) -> SourceSettings {
    SourceSettings {
        connection: kafka_connection(k),
        topic: k.topic.clone(),
        dlq_topic: k.dlq_topic.clone(),
        group_id: k.group_id.clone(),
        prefetch_kbytes: match config.reconcile.state_cache_bytes {
            Some(_) => PREFETCH_KBYTES_BOUNDED,
            None => PREFETCH_KBYTES,
        },
    }
}

/// Builds the reconcile loop of a configuration, as often as it must run: once for
/// `revline reconcile`, again after each permanent failure for `revline serve`, which keeps
/// receiving webhooks meanwhile.
pub struct Reconciler {
    config: Config,
    source: Source,
    append: Option<Appender>,
    metrics: ReconcileMetrics,
    shutdown: watch::Receiver<bool>,
    migrated: Arc<watch::Sender<bool>>,
}

/// The reconcile loop for this configuration, its metrics registered in `registry`, and a
/// flag that turns true once a loop has applied the warehouse's migrations (reports wait
/// for it rather than query tables that do not exist yet). `append` writes to the event log
/// `source` reads (what the enrichment fetches goes there).
pub fn reconciler(
    config: &Config,
    source: Source,
    append: Option<Appender>,
    registry: &mut Registry,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(Reconciler, watch::Receiver<bool>)> {
    let (migrated_tx, migrated) = watch::channel(false);
    let reconciler = Reconciler {
        config: config.clone(),
        source,
        append,
        metrics: ReconcileMetrics::register(registry),
        shutdown,
        migrated: Arc::new(migrated_tx),
    };
    match &config.clickhouse {
        Some(ch) => {
            tracing::info!(url = %ch.redacted_url(), database = %ch.database, "warehouse: clickhouse")
        }
        None => {
            tracing::info!(path = %config.data_dir.join(warehouse::embedded::FILE_NAME).display(), "warehouse: embedded")
        }
    }
    // Settings the warehouse refuses are an error now, not at the first retry.
    drop(reconciler.task()?);
    Ok((reconciler, migrated))
}

impl Reconciler {
    pub fn metrics(&self) -> &ReconcileMetrics {
        &self.metrics
    }

    /// A new reconcile loop, ready to run.
    pub fn task(&self) -> anyhow::Result<ReconcileTask> {
        let config = &self.config;
        let options = loop_options(config);
        let stripe = config.stripe.clone().map(|api| (api, self.append.clone()));
        let (source, metrics, shutdown, migrated) = (
            self.source.clone(),
            self.metrics.clone(),
            self.shutdown.clone(),
            self.migrated.clone(),
        );
        Ok(match &config.clickhouse {
            Some(ch) => task(
                clickhouse(ch)?,
                source,
                options,
                stripe,
                metrics,
                shutdown,
                migrated,
            ),
            None => task(
                embedded(config)?,
                source,
                options,
                stripe,
                metrics,
                shutdown,
                migrated,
            ),
        })
    }
}
