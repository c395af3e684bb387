//! The Kafka loop: a consumer-group member that reconciles batches and stores offsets only
//! after the warehouse confirmed the facts covering them (rust-rdkafka
//! `examples/at_least_once.rs`): `enable.auto.offset.store=false`, auto-commit of stored
//! offsets, and a synchronous commit when partitions are revoked. After any rebalance the
//! matcher state is reloaded from the warehouse, so state learned by the previous owner
//! of a partition (committed with its facts) is picked up and nothing cached for a
//! revoked partition lingers.
//!
//! Poison records (undecodable events, records without revline headers) go to the
//! dead-letter topic with the reason, and to the `dead_letters` table, before their offset
//! is stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::ClientContext;
use schemas::{LogRecord, RecordHeaders};
use tokio::sync::watch;

use super::{DeadLetter, InFlight, LoopOptions, Pipeline, PipelineError};
use crate::warehouse::Warehouse;

/// Consumer-side settings.
#[derive(Debug, Clone)]
pub struct KafkaSource {
    pub brokers: String,
    pub topic: String,
    pub dlq_topic: String,
    pub group_id: String,
    /// Extra librdkafka properties (credentials, TLS, `session.timeout.ms`, …).
    pub librdkafka: BTreeMap<String, String>,
}

struct Context {
    rebalanced: AtomicBool,
}

impl ClientContext for Context {}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Offsets stored for confirmed batches must not be lost with the partitions.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                Err(err) => tracing::debug!(error = %err, "commit on revoke (nothing stored yet?)"),
            }
            tracing::info!(partitions = ?partitions(tpl), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = ?partitions(tpl), "partitions assigned")
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(err) => tracing::warn!(error = %err, "rebalance error"),
        }
        self.rebalanced.store(true, Ordering::SeqCst);
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(err) = result {
            tracing::debug!(error = %err, "offset commit");
        }
    }
}

/// Client settings: `defaults`, then the operator's librdkafka properties over them.
fn client_config(source: &KafkaSource, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &source.brokers);
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for (key, value) in &source.librdkafka {
        config.set(key, value);
    }
    config
}

/// A consumed message as a log record. A record without revline's headers is still
/// passed on, flagged, so it is dead-lettered rather than lost or fatal.
fn to_record<M: Message>(msg: &M) -> LogRecord {
    let payload = msg.payload().unwrap_or_default().to_vec();
    let key = msg
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    let pairs: Vec<(&str, &[u8])> = msg
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key, h.value.unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let headers = RecordHeaders::from_pairs(pairs).unwrap_or_else(|err| {
        tracing::warn!(error = %err, partition = msg.partition(), offset = msg.offset(), "record without revline headers");
        RecordHeaders {
        event_id: format!("kafka:{}/{}/{}", msg.topic(), msg.partition(), msg.offset()),
        event_type: None,
        account: None,
        livemode: None,
        api_version: None,
        received_at_ms: msg.timestamp().to_millis().unwrap_or(0),
        format_version: 0,
        endpoint: String::new(),
        flag: Some("bad_record_headers".to_owned()),
    }});
    LogRecord {
        key,
        headers,
        payload,
    }
}

/// Runs one consumer-group member until `shutdown` turns true or a permanent error.
pub async fn run<W: Warehouse>(
    source: KafkaSource,
    mut pipeline: Pipeline<W>,
    options: LoopOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let context = Context {
        rebalanced: AtomicBool::new(false),
    };
    let consumer: Arc<StreamConsumer<Context>> = Arc::new(
        client_config(
            &source,
            &[
                ("group.id", &source.group_id),
                ("enable.auto.commit", "true"),
                ("auto.commit.interval.ms", "1000"),
                ("auto.offset.reset", "earliest"),
                // Prefetch per partition (librdkafka's default, 64 MiB each, would dominate RSS).
                ("queued.max.messages.kbytes", "8192"),
            ],
        )
        // Offsets are stored only after the warehouse confirmed a batch: not overridable.
        .set("enable.auto.offset.store", "false")
        .create_with_context(context)
        .map_err(|e| PipelineError::Log(format!("cannot create the kafka consumer: {e}")))?,
    );
    let producer: FutureProducer = client_config(
        &source,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            // Room for the largest body ingest accepts plus the dead-letter headers.
            ("message.max.bytes", "4194304"),
        ],
    )
    .create()
    .map_err(|e| PipelineError::Log(format!("cannot create the dead-letter producer: {e}")))?;
    consumer
        .subscribe(&[&source.topic])
        .map_err(|e| PipelineError::Log(format!("cannot subscribe to {}: {e}", source.topic)))?;
    pipeline.load_state().await?;
    tracing::info!(topic = %source.topic, group = %source.group_id, "kafka reconcile loop started");

    let mut last_sweep = Instant::now();
    let mut last_lag = Instant::now();
    // Batch N+1 is collected and matched while batch N is written; N's dead letters are
    // produced and its offsets stored only after its write returned.
    let mut inflight: Option<InFlight<Done>> = None;
    let result = loop {
        let mut batch: Vec<(LogRecord, i32, i64)> = Vec::new();
        let deadline = tokio::time::Instant::now() + options.batch_wait;
        let mut stopping = false;
        while batch.len() < options.batch_events {
            tokio::select! {
                msg = consumer.recv() => match msg {
                    Ok(msg) => batch.push((to_record(&msg), msg.partition(), msg.offset())),
                    Err(err) => {
                        tracing::warn!(error = %err, "kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = crate::consumer::stopped(&mut shutdown) => { stopping = true; break; }
            }
        }
        let rebalanced = consumer.context().rebalanced.swap(false, Ordering::SeqCst);
        if batch.is_empty() || rebalanced || stopping {
            if let Err(err) =
                settle(&consumer, &producer, &source, &mut inflight, &mut shutdown).await
            {
                break Err(err);
            }
        }
        if rebalanced {
            // Drop what was cached for partitions that moved; take what their previous
            // owners confirmed.
            if let Err(err) = pipeline.load_state().await {
                break Err(err);
            }
        }
        if !batch.is_empty() {
            let records: Vec<LogRecord> = batch.iter().map(|(r, _, _)| r.clone()).collect();
            let prepared = pipeline.prepare(&records);
            let mut highest: HashMap<i32, i64> = HashMap::new();
            for (_, partition, offset) in &batch {
                let e = highest.entry(*partition).or_insert(*offset);
                *e = (*e).max(*offset);
            }
            let dead: Vec<(DeadLetter, LogRecord)> = prepared
                .dead_letters
                .into_iter()
                .filter_map(|d| {
                    records
                        .iter()
                        .find(|r| r.headers.event_id == d.event_id)
                        .map(|r| (d, r.clone()))
                })
                .collect();
            if let Err(err) =
                settle(&consumer, &producer, &source, &mut inflight, &mut shutdown).await
            {
                break Err(err);
            }
            inflight = Some(InFlight::spawn(
                pipeline.writer(),
                prepared.facts,
                Done { dead, highest },
            ));
            if stopping {
                break settle(&consumer, &producer, &source, &mut inflight, &mut shutdown).await;
            }
        }
        if stopping {
            break Ok(());
        }
        if last_sweep.elapsed() >= options.sweep_interval {
            // Due even under steady traffic: orphans whose parents another member
            // reconciled wait on it. It reads and writes state, so nothing may be in flight.
            if let Err(err) =
                settle(&consumer, &producer, &source, &mut inflight, &mut shutdown).await
            {
                break Err(err);
            }
            if let Err(err) = pipeline.sweep().await {
                break Err(err);
            }
            last_sweep = Instant::now();
        }
        if last_lag.elapsed() >= Duration::from_secs(10) {
            let c = consumer.clone();
            let topic = source.topic.clone();
            if let Ok(Some(lag)) = tokio::task::spawn_blocking(move || lag(&c, &topic)).await {
                pipeline.metrics().lag.set(lag);
            }
            last_lag = Instant::now();
        }
    };
    let c = consumer.clone();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || c.commit_consumer_state(CommitMode::Sync)),
    )
    .await;
    match result {
        Err(PipelineError::Stopped) => Ok(()),
        other => other,
    }
}

/// What to do once a batch's facts are durable.
struct Done {
    dead: Vec<(DeadLetter, LogRecord)>,
    highest: HashMap<i32, i64>,
}

/// Waits for the batch in flight, dead-letters its poison records, stores its offsets.
async fn settle(
    consumer: &StreamConsumer<Context>,
    producer: &FutureProducer,
    source: &KafkaSource,
    inflight: &mut Option<InFlight<Done>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let Some(batch) = inflight.take() else {
        return Ok(());
    };
    let done = batch.finish().await?;
    dead_letter(producer, source, &done.dead, shutdown).await?;
    for (partition, offset) in done.highest {
        if let Err(err) = consumer.store_offset(&source.topic, partition, offset) {
            // The partition was revoked meanwhile; its new owner replays the batch.
            tracing::debug!(partition, offset, error = %err, "offset not stored");
        }
    }
    Ok(())
}

/// Events not yet consumed on the assigned partitions.
fn lag(consumer: &StreamConsumer<Context>, topic: &str) -> Option<i64> {
    let position = consumer.position().ok()?;
    let mut total = 0;
    for e in position.elements_for_topic(topic) {
        let (_, high) = consumer
            .fetch_watermarks(topic, e.partition(), Duration::from_secs(2))
            .ok()?;
        let at = e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0);
        total += (high - at).max(0);
    }
    Some(total)
}

/// Attempts at producing one dead letter before giving up on the topic copy.
const DLQ_ATTEMPTS: u32 = 12;

/// Produces dead-lettered records to the dead-letter topic. Transient failures are retried
/// with backoff; a record the topic can never take (too large, not authorised) or one still
/// failing after [`DLQ_ATTEMPTS`] is logged as an error and left out of the topic: it is
/// already in the `dead_letters` table and `stripe_events`, and one poison record must not
/// stop the consumer.
async fn dead_letter(
    producer: &FutureProducer,
    source: &KafkaSource,
    dead: &[(DeadLetter, LogRecord)],
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    for (d, record) in dead {
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=DLQ_ATTEMPTS {
            let mut headers = OwnedHeaders::new();
            let pairs = record.headers.to_pairs();
            for (name, value) in &pairs {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value.as_bytes()),
                });
            }
            headers = headers
                .insert(Header {
                    key: "revline-dlq-reason",
                    value: Some(d.reason.as_bytes()),
                })
                .insert(Header {
                    key: "revline-dlq-detail",
                    value: Some(d.detail.as_bytes()),
                });
            let delivery = producer
                .send(
                    FutureRecord::to(&source.dlq_topic)
                        .key(record.key.as_bytes())
                        .payload(&record.payload)
                        .headers(headers),
                    Duration::from_secs(5),
                )
                .await;
            match delivery {
                Ok(_) => break,
                Err((err, _)) => {
                    let final_error = matches!(
                        err.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::MessageSizeTooLarge
                                | RDKafkaErrorCode::TopicAuthorizationFailed
                                | RDKafkaErrorCode::InvalidRecord
                        )
                    );
                    if final_error || attempt == DLQ_ATTEMPTS {
                        tracing::error!(
                            error = %err,
                            topic = %source.dlq_topic,
                            stripe_event_id = %d.event_id,
                            "dead-letter topic write failed; the event stays in the dead_letters table"
                        );
                        break;
                    }
                    tracing::warn!(error = %err, topic = %source.dlq_topic, "dead-letter produce failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = crate::consumer::stopped(shutdown) => return Err(PipelineError::Stopped),
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
    Ok(())
}
