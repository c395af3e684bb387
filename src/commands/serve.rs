//! `revline serve` (the default) and `revline ingest`: the webhook receiver on the event
//! log the configuration selects (Kafka when brokers are set, else the embedded log).
//! `serve` also runs the reconcile loop over that log in the same process and serves the
//! reports on the admin listener; `ingest` does neither (its admin listener has `/metrics`
//! only).

use std::sync::Arc;

use actix_web::dev::ServerHandle;
use anyhow::{bail, Context};
use eventlog::embedded::{EmbeddedLog, LogReader};
use eventlog::kafka::{self, KafkaLog, ProducerSettings, RECORD_OVERHEAD_BYTES};
use eventlog::EventLog;
use ingest::metrics::IngestMetrics;
use ingest::routes::stripe_webhook::WebhookState;
use ingest::{Endpoint, IngestSettings, DEFAULT_ENDPOINT};
use prometheus_client::registry::Registry;

use tokio::sync::watch;

use reconcile::enrich;

use crate::backends::{self, Reconciler, Source};
use crate::config::Config;
use crate::secret_file;

/// Which subcommand is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything in one process (the embedded default).
    Serve,
    /// Only the receiver (distributed deployments, many replicas).
    Ingest,
}

pub async fn run(config: Config, mode: Mode) -> anyhow::Result<()> {
    // `serve` reconciles: no replay may write the matcher's state meanwhile.
    let _lock = match mode {
        Mode::Serve => Some(crate::state_lock::acquire(
            &config.data_dir,
            "revline serve",
        )?),
        Mode::Ingest => None,
    };
    let default_secrets = if config.default_secrets.is_empty() {
        if mode == Mode::Ingest {
            bail!(
                "invalid configuration: STRIPE_WEBHOOK_SECRET: `revline ingest` needs the endpoint's signing secret \
                 (replicas must share it, so none is generated)"
            );
        }
        vec![secret_file::load_or_generate(
            &config.data_dir,
            config.listen,
        )?]
    } else {
        config.default_secrets.clone()
    };
    let mut endpoints = vec![Endpoint {
        name: DEFAULT_ENDPOINT.to_owned(),
        secrets: default_secrets,
        livemode: config.default_livemode,
    }];
    endpoints.extend(config.endpoints.iter().map(|e| Endpoint {
        name: e.name.clone(),
        secrets: e.secrets.clone(),
        livemode: e.livemode,
    }));
    let mut settings = IngestSettings {
        endpoints,
        tolerance_secs: config.tolerance_secs,
        body_limit_bytes: config.body_limit_bytes,
        append_deadline: config.append_deadline,
        body_timeout: config.body_timeout,
        retry_after_secs: config.retry_after_secs,
    };

    let mut registry = Registry::default();
    let metrics = IngestMetrics::register(&mut registry);
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {} (REVLINE_LISTEN)", config.listen))?;
    let tls = config
        .tls
        .as_ref()
        .map(|files| ingest::tls::server_config(&files.cert_file, &files.key_file))
        .transpose()
        .context("invalid configuration: REVLINE_TLS_CERT_FILE / REVLINE_TLS_KEY_FILE")?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    match &config.kafka {
        Some(k) => {
            let mut kafka_settings = ProducerSettings {
                connection: backends::kafka_connection(k),
                topic: k.topic.clone(),
                dedupe_cache: k.dedupe_cache,
                message_timeout_ms: k.message_timeout_ms,
                max_record_bytes: settings.body_limit_bytes,
            };
            settings.body_limit_bytes = fit_body_limit(&config, &kafka_settings).await?;
            kafka_settings.max_record_bytes = settings.body_limit_bytes;
            let log = Arc::new(
                KafkaLog::new(kafka_settings).context("cannot create the kafka producer")?,
            );
            tracing::info!(
                brokers = %k.brokers,
                topic = %k.topic,
                client = %eventlog::kafka::librdkafka_build(),
                "event log: kafka"
            );
            let (reconciler, migrated) = match mode {
                Mode::Serve => {
                    let (reconciler, migrated) = backends::reconciler(
                        &config,
                        Source::Kafka(backends::kafka_source(&config, k)),
                        Some(enrich::appender(log.clone())),
                        &mut registry,
                        shutdown_rx,
                    )?;
                    (Some(reconciler), Some(migrated))
                }
                Mode::Ingest => (None, None),
            };
            let admin = crate::admin::start_from_config(&config, registry, migrated)?;
            serve(
                log,
                settings,
                metrics,
                admin,
                listener,
                tls,
                config.workers,
                reconciler.map(|r| (r, config.reconcile.retry_interval)),
                shutdown_tx,
            )
            .await
        }
        None => {
            let log = Arc::new(EmbeddedLog::open_limited(
                &config.data_dir,
                settings.body_limit_bytes,
                config.log_max_mb.map(|mb| mb << 20),
            )?);
            tracing::info!(path = %log.path().display(), "event log: embedded");
            let (reconciler, migrated) = match mode {
                Mode::Serve => {
                    let reader = LogReader::open(log.path())?;
                    let (reconciler, migrated) = backends::reconciler(
                        &config,
                        Source::Embedded(Arc::new(reader)),
                        Some(enrich::appender(log.clone())),
                        &mut registry,
                        shutdown_rx,
                    )?;
                    (Some(reconciler), Some(migrated))
                }
                Mode::Ingest => (None, None),
            };
            let admin = crate::admin::start_from_config(&config, registry, migrated)?;
            serve(
                log,
                settings,
                metrics,
                admin,
                listener,
                tls,
                config.workers,
                reconciler.map(|r| (r, config.reconcile.retry_interval)),
                shutdown_tx,
            )
            .await
        }
    }
}

/// The body limit may never exceed what the topic accepts: lowered to fit when it is the
/// default, an error when the operator set it explicitly.
async fn fit_body_limit(config: &Config, settings: &ProducerSettings) -> anyhow::Result<usize> {
    let topic_max = match kafka::topic_max_message_bytes(settings).await {
        Some(max) => max,
        None => {
            tracing::warn!(
                topic = %settings.topic,
                assumed = kafka::KAFKA_DEFAULT_TOPIC_MAX_BYTES,
                "the broker did not report the topic's max.message.bytes; assuming Kafka's default"
            );
            kafka::KAFKA_DEFAULT_TOPIC_MAX_BYTES
        }
    };
    let fits = topic_max.saturating_sub(RECORD_OVERHEAD_BYTES);
    if config.body_limit_bytes <= fits {
        return Ok(config.body_limit_bytes);
    }
    if config.body_limit_explicit {
        bail!(
            "invalid configuration: REVLINE_BODY_LIMIT_BYTES: {} is more than topic {} accepts ({} bytes, less {} for key and headers)",
            config.body_limit_bytes,
            settings.topic,
            topic_max,
            RECORD_OVERHEAD_BYTES
        );
    }
    tracing::info!(
        body_limit_bytes = fits,
        topic_max_message_bytes = topic_max,
        "body limit lowered to fit the topic"
    );
    Ok(fits)
}

#[allow(clippy::too_many_arguments)]
async fn serve<L: EventLog>(
    log: Arc<L>,
    settings: IngestSettings,
    metrics: IngestMetrics,
    admin: Option<ServerHandle>,
    listener: std::net::TcpListener,
    tls: Option<ingest::tls::ServerConfig>,
    workers: Option<usize>,
    reconciler: Option<(Reconciler, std::time::Duration)>,
    shutdown: watch::Sender<bool>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let state = Arc::new(WebhookState::new(log.clone(), settings, metrics));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = ingest::startup::serve(listener, state, workers, tls)?;
    let server = tokio::spawn(server);
    tracing::info!(%addr, scheme, "listening");

    // The receiver never stops because reconcile did: the log is durable, so webhooks keep
    // being acknowledged while reconcile waits to be started again.
    let reconcile = reconciler.map(|(reconciler, retry)| {
        tokio::spawn(supervise(reconciler, retry, shutdown.subscribe()))
    });
    let served = server.await;
    tracing::info!("http server stopped; finishing reconcile and closing the event log");
    let _ = shutdown.send(true);
    let mut failure = None;
    if let Some(task) = reconcile {
        match tokio::time::timeout(std::time::Duration::from_secs(30), task).await {
            Ok(Ok(Err(err))) => failure = Some(err),
            Ok(_) => {}
            Err(_) => tracing::warn!("reconcile did not stop within 30 s"),
        }
    }
    log.close().await;
    if let Some(admin) = admin {
        admin.stop(true).await;
    }
    served
        .context("http server task failed")?
        .context("http server failed")?;
    tracing::info!("stopped");
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Runs the reconcile loop until shutdown. A permanent error (a warehouse that refuses the
/// writes, say) stops the loop, not the process: `revline_reconcile_status` turns 0, the
/// reason is logged, and the loop is started again every `retry` (a minute by default)
/// until it runs, resuming from the last committed batch.
async fn supervise(
    reconciler: Reconciler,
    retry: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let ended = match reconciler.task() {
            Ok(task) => task.await.map_err(anyhow::Error::from),
            Err(err) => Err(err),
        };
        let err = match ended {
            Ok(()) => return Ok(()),
            Err(err) if *shutdown.borrow() => return Err(err),
            Err(err) => err,
        };
        reconciler.metrics().status.set(0);
        tracing::error!(
            error = format!("{err:#}"),
            retry_in_secs = retry.as_secs(),
            "reconcile failed: webhooks are still received into the event log; reconcile starts again after the wait"
        );
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = reconcile::consumer::stopped(&mut shutdown) => return Ok(()),
        }
        tracing::info!("starting reconcile again");
    }
}
