//! `revline reconcile`: the reconcile consumer alone (distributed mode), one member of the
//! Kafka consumer group; scale by running more (up to the topic's partitions). Serves
//! `/healthz` and `/readyz` on `REVLINE_LISTEN`, and `/metrics` and the reports on the admin listener.

use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use anyhow::{bail, Context};
use eventlog::kafka::{KafkaLog, ProducerSettings};
use prometheus_client::registry::Registry;
use reconcile::enrich;
use tokio::sync::watch;

use crate::backends::{self, Source};
use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let Some(kafka) = &config.kafka else {
        bail!(
            "invalid configuration: REVLINE_KAFKA_BROKERS: `revline reconcile` consumes Kafka \
             (the embedded log is reconciled inside `revline serve`)"
        );
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut registry = Registry::default();
    // What the enrichment fetches from Stripe's API is appended to the topic it reads.
    let append = match &config.stripe {
        Some(_) => {
            let settings = ProducerSettings {
                connection: backends::kafka_connection(kafka),
                topic: kafka.topic.clone(),
                dedupe_cache: kafka.dedupe_cache,
                message_timeout_ms: kafka.message_timeout_ms,
                max_record_bytes: config.body_limit_bytes,
            };
            let log = KafkaLog::new(settings).context("cannot create the kafka producer")?;
            Some(enrich::appender(Arc::new(log)))
        }
        None => None,
    };
    let (reconciler, migrated) = backends::reconciler(
        &config,
        Source::Kafka(backends::kafka_source(&config, kafka)),
        append,
        &mut registry,
        shutdown_rx,
    )?;
    let admin = crate::admin::start_from_config(&config, registry, Some(migrated))?;
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {} (REVLINE_LISTEN)", config.listen))?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        // Alive is ready: the consumer's state is in the warehouse, not in this process.
        App::new()
            .route("/healthz", web::get().to(ingest::routes::health::healthz))
            .route("/readyz", web::get().to(ingest::routes::health::healthz))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    tracing::info!(%addr, "listening");

    // A permanent error ends the process: a supervisor (systemd, Kubernetes) starts
    // another, which resumes from the committed offsets.
    let mut task = tokio::spawn(reconciler.task()?);
    let result = tokio::select! {
        ended = &mut task => ended,
        _ = crate::shutdown_signal() => {
            tracing::info!("stopping: finishing the current batch");
            let _ = shutdown_tx.send(true);
            (&mut task).await
        }
    };
    handle.stop(true).await;
    if let Some(admin) = admin {
        admin.stop(true).await;
    }
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(anyhow::anyhow!(err)),
        Err(join) => Err(anyhow::anyhow!(join)),
    }
}
