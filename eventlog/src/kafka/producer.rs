//! The Kafka event log: each verified event is produced to the events topic and
//! acknowledged only after the delivery report says the brokers have it.
//!
//! Producer settings: `acks=all` with the idempotent producer (no duplicates or reordering
//! from internal retries, librdkafka `CONFIGURATION.md`), lz4 compression, a small linger. Records are enqueued with `send_result`, which queues at
//! once; awaiting `FutureProducer::send` one by one would serialise every request behind
//! `linger.ms`. A fatal producer error (possible with idempotence, rust-rdkafka PR #287)
//! makes the client unusable, so the producer is rebuilt when one is seen.
//!
//! Stalls: a producer can stay wedged after its broker lost state (seen with Tansu's
//! in-memory storage: every produce fails with UNKNOWN_PRODUCER_ID and librdkafka keeps
//! bumping the epoch locally). When no append has succeeded for [`STALL_RECREATE_AFTER`]
//! while several failed, the producer is replaced by a fresh one (new producer id). Records
//! still queued in the old one were never acknowledged (their requests got 503), so nothing
//! acknowledged is lost.
//!
//! Duplicates: Kafka cannot refuse a second record with the same event id, so a bounded
//! least-recently-used set of produced ids avoids most re-produces of Stripe's retries; the
//! reconciler's idempotent facts absorb the rest (every fact has a deterministic id).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lru::LruCache;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use schemas::LogRecord;

use super::{to_kafka_headers, Client, KafkaConnection, DURABLE_PRODUCER};
use crate::{Appended, EventLog, LogError};

/// Bytes a record needs beyond its value (key, headers, batch framing); the broker's
/// limit applies to the whole batch.
pub const RECORD_OVERHEAD_BYTES: usize = 16 * 1024;

/// Kafka's default `max.message.bytes` for a topic, assumed when the broker does not say.
pub const KAFKA_DEFAULT_TOPIC_MAX_BYTES: usize = 1_048_588;

/// Replace the producer when nothing was delivered for this long while appends failed.
pub const STALL_RECREATE_AFTER: Duration = Duration::from_secs(15);
/// ... and at least this many appends failed or timed out in that time.
const STALL_MIN_FAILURES: u32 = 3;

/// Producer-side settings.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    pub connection: KafkaConnection,
    /// Topic the events are produced to.
    pub topic: String,
    /// How many recently produced event ids to remember for deduplication (0: none).
    pub dedupe_cache: usize,
    /// librdkafka `message.timeout.ms`: how long a queued record may wait for delivery.
    pub message_timeout_ms: u64,
    /// Largest event body accepted.
    pub max_record_bytes: usize,
}

impl ProducerSettings {
    /// The producer's client configuration.
    pub fn client_config(&self) -> ClientConfig {
        self.connection.client_config(
            Client::Producer,
            &[
                ("compression.type", "lz4".to_owned()),
                // 1 ms: requests wait for their own delivery report, so linger is latency
                // on every acknowledgement; measured 9.8k req/s at 5 ms vs 24k at 1 ms
                // (BENCHMARKS.md).
                ("linger.ms", "1".to_owned()),
                ("message.timeout.ms", self.message_timeout_ms.to_string()),
                (
                    "message.max.bytes",
                    (self.max_record_bytes + RECORD_OVERHEAD_BYTES)
                        .max(1_000_000)
                        .to_string(),
                ),
                // Bounds the memory a broker outage can pin: beyond this, appends fail fast
                // with QueueFull (503) instead of growing the process.
                ("queue.buffering.max.kbytes", "32768".to_owned()),
                ("queue.buffering.max.messages", "100000".to_owned()),
            ],
            DURABLE_PRODUCER,
        )
    }
}

/// Event ids produced recently, the least recently seen forgotten first.
struct RecentIds(Option<LruCache<String, ()>>);

impl RecentIds {
    fn new(capacity: usize) -> Self {
        RecentIds(NonZeroUsize::new(capacity).map(LruCache::new))
    }

    fn contains(&mut self, id: &str) -> bool {
        self.0.as_mut().is_some_and(|ids| ids.get(id).is_some())
    }

    fn insert(&mut self, id: &str) {
        if let Some(ids) = self.0.as_mut() {
            ids.put(id.to_owned(), ());
        }
    }
}

/// Failed appends since the last successful one.
#[derive(Default)]
struct Stall {
    since: Option<Instant>,
    failures: u32,
}

/// The Kafka adapter of the event log.
pub struct KafkaLog {
    settings: ProducerSettings,
    producer: RwLock<Arc<FutureProducer>>,
    recent: Mutex<RecentIds>,
    stall: Mutex<Stall>,
}

/// Counts an append as failed unless it is marked delivered before being dropped (the
/// request's deadline drops the future without telling the log).
struct Attempt<'a> {
    log: &'a KafkaLog,
    producer: Arc<FutureProducer>,
    delivered: bool,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.delivered {
            *self.log.stall.lock().expect("stall lock") = Stall::default();
        } else {
            self.log.note_failure(&self.producer);
        }
    }
}

impl KafkaLog {
    /// Creates the producer. Connecting happens in the background; `ready()` tells when
    /// the topic is reachable.
    pub fn new(settings: ProducerSettings) -> Result<Self, KafkaError> {
        let producer = settings.client_config().create::<FutureProducer>()?;
        Ok(KafkaLog {
            recent: Mutex::new(RecentIds::new(settings.dedupe_cache)),
            producer: RwLock::new(Arc::new(producer)),
            stall: Mutex::new(Stall::default()),
            settings,
        })
    }

    pub fn topic(&self) -> &str {
        &self.settings.topic
    }

    fn producer(&self) -> Arc<FutureProducer> {
        self.producer.read().expect("producer lock").clone()
    }

    /// Records a failed append; replaces the producer when it is fatally broken or stalled.
    fn note_failure(&self, producer: &Arc<FutureProducer>) {
        if let Some((code, reason)) = producer.client().fatal_error() {
            tracing::error!(?code, %reason, "fatal kafka producer error; recreating the producer");
            self.replace(producer);
            return;
        }
        let stalled = {
            let mut stall = self.stall.lock().expect("stall lock");
            let since = *stall.since.get_or_insert_with(Instant::now);
            stall.failures += 1;
            stall.failures >= STALL_MIN_FAILURES && since.elapsed() >= STALL_RECREATE_AFTER
        };
        if stalled {
            tracing::warn!(
                after_secs = STALL_RECREATE_AFTER.as_secs(),
                "no kafka delivery succeeded while appends kept failing; recreating the producer"
            );
            self.replace(producer);
        }
    }

    /// Swaps in a fresh producer unless another request already replaced `failed`.
    fn replace(&self, failed: &Arc<FutureProducer>) {
        let old = {
            let mut slot = self.producer.write().expect("producer lock");
            if !Arc::ptr_eq(&slot, failed) {
                return;
            }
            match self.settings.client_config().create::<FutureProducer>() {
                Ok(fresh) => std::mem::replace(&mut *slot, Arc::new(fresh)),
                Err(err) => {
                    tracing::error!(error = %err, "cannot recreate the kafka producer");
                    return;
                }
            }
        };
        *self.stall.lock().expect("stall lock") = Stall::default();
        // Dropping a producer purges and waits for its queue: never on a request thread.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || drop(old));
        }
    }
}

/// The topic's `max.message.bytes` as the broker reports it, if it does (not every
/// Kafka-protocol broker implements DescribeConfigs).
pub async fn topic_max_message_bytes(settings: &ProducerSettings) -> Option<usize> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<_> = settings.connection.admin_config().create().ok()?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(5)));
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(&settings.topic)], &options)
        .await
        .ok()?;
    let resource = results.into_iter().next()?.ok()?;
    resource
        .get("max.message.bytes")?
        .value
        .as_deref()?
        .parse()
        .ok()
}

fn map_error(err: &KafkaError) -> LogError {
    match err.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => LogError::QueueFull,
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => LogError::TooLarge,
        _ => LogError::Unavailable(err.to_string()),
    }
}

impl EventLog for KafkaLog {
    async fn append(&self, record: LogRecord) -> Result<Appended, LogError> {
        if record.payload.len() > self.settings.max_record_bytes {
            return Err(LogError::TooLarge);
        }
        let event_id = record.headers.event_id.clone();
        if self
            .recent
            .lock()
            .expect("recent ids lock")
            .contains(&event_id)
        {
            return Ok(Appended::Duplicate);
        }
        let headers = to_kafka_headers(&record.headers, &[]);
        let mut attempt = Attempt {
            log: self,
            producer: self.producer(),
            delivered: false,
        };
        let delivery = attempt
            .producer
            .send_result(
                FutureRecord::to(&self.settings.topic)
                    .key(record.key.as_bytes())
                    .payload(&record.payload)
                    .headers(headers),
            )
            .map_err(|(err, _)| map_error(&err))?;
        match delivery.await {
            Ok(Ok(_)) => {
                attempt.delivered = true;
                self.recent
                    .lock()
                    .expect("recent ids lock")
                    .insert(&event_id);
                Ok(Appended::Stored)
            }
            Ok(Err((err, _))) => Err(map_error(&err)),
            Err(_canceled) => Err(LogError::Unavailable(
                "the kafka producer was dropped".into(),
            )),
        }
    }

    async fn ready(&self) -> Result<(), LogError> {
        let producer = self.producer();
        let topic = self.settings.topic.clone();
        tokio::task::spawn_blocking(move || {
            if let Some((_, reason)) = producer.client().fatal_error() {
                return Err(LogError::Unavailable(format!(
                    "fatal producer error: {reason}"
                )));
            }
            let metadata = producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(2))
                .map_err(|e| LogError::Unavailable(e.to_string()))?;
            match metadata.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
                Some(t) => Err(LogError::Unavailable(format!(
                    "topic {topic} is not available: {:?}",
                    t.error()
                ))),
                None => Err(LogError::Unavailable(format!(
                    "topic {topic} does not exist"
                ))),
            }
        })
        .await
        .map_err(|e| LogError::Unavailable(e.to_string()))?
    }

    async fn close(&self) {
        let producer = self.producer();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
    }

    fn max_record_bytes(&self) -> usize {
        self.settings.max_record_bytes
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn recent_ids_forget_the_least_recently_seen_beyond_capacity() {
        let mut ids = RecentIds::new(2);
        ids.insert("a");
        ids.insert("b");
        assert!(ids.contains("a"), "seen again: now the most recent");
        ids.insert("c");
        assert!(!ids.contains("b"));
        assert!(ids.contains("a") && ids.contains("c"));
        let mut off = RecentIds::new(0);
        off.insert("a");
        assert!(!off.contains("a"));
    }

    #[test]
    fn the_producer_is_durable_whatever_the_operator_sets() {
        let mut librdkafka = BTreeMap::new();
        librdkafka.insert("linger.ms".to_owned(), "50".to_owned());
        librdkafka.insert("enable.idempotence".to_owned(), "false".to_owned());
        let settings = ProducerSettings {
            connection: KafkaConnection {
                brokers: "127.0.0.1:9092".into(),
                librdkafka,
            },
            topic: "stripe.events".into(),
            dedupe_cache: 10,
            message_timeout_ms: 10_000,
            max_record_bytes: 1 << 20,
        };
        let config = settings.client_config();
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(
            config.get("message.max.bytes"),
            Some(((1 << 20) + RECORD_OVERHEAD_BYTES).to_string().as_str())
        );
    }
}
