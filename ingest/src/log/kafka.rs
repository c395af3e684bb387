//! The Kafka event log: each verified event is produced to the events topic and
//! acknowledged only after the delivery report says the brokers have it.
//!
//! Producer settings follow DESIGN.md: `acks=all` with the idempotent producer (no
//! duplicates or reordering from internal retries, librdkafka `CONFIGURATION.md`), lz4
//! compression, a small linger. Records are enqueued with `send_result`, which queues at
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
//! cache of recently produced ids avoids most re-produces of Stripe's retries; the
//! reconciler's idempotent facts absorb the rest (DESIGN.md, guarantee 3).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use schemas::LogRecord;

use super::{Appended, EventLog, LogError};

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
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topic the events are produced to.
    pub topic: String,
    /// How many recently produced event ids to remember for deduplication.
    pub dedupe_cache: usize,
    /// librdkafka `message.timeout.ms`: how long a queued record may wait for delivery.
    pub message_timeout_ms: u64,
    /// Largest event body accepted.
    pub max_record_bytes: usize,
    /// Extra librdkafka properties, applied last (credentials, TLS, tuning).
    pub librdkafka: BTreeMap<String, String>,
}

impl KafkaSettings {
    /// The client configuration shared by the producer and the admin/metadata calls.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            // 1 ms: requests wait for their own delivery report, so linger is latency
            // on every acknowledgement; measured 9.8k req/s at 5 ms vs 24k at 1 ms (BENCHMARKS.md).
            .set("linger.ms", "1")
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            .set(
                "message.max.bytes",
                (self.max_record_bytes + RECORD_OVERHEAD_BYTES)
                    .max(1_000_000)
                    .to_string(),
            )
            // Bounds the memory a broker outage can pin: beyond this, appends fail fast
            // with QueueFull (503) instead of growing the process.
            .set("queue.buffering.max.kbytes", "32768")
            .set("queue.buffering.max.messages", "100000");
        for (key, value) in &self.librdkafka {
            config.set(key, value);
        }
        config
    }
}

/// Remembers the last N event ids produced, oldest forgotten first.
struct RecentIds {
    capacity: usize,
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentIds {
    fn new(capacity: usize) -> Self {
        RecentIds {
            capacity,
            set: HashSet::with_capacity(capacity.min(1 << 16)),
            order: VecDeque::with_capacity(capacity.min(1 << 16)),
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: &str) {
        if self.capacity == 0 || !self.set.insert(id.to_owned()) {
            return;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
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
    settings: KafkaSettings,
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
    pub fn new(settings: KafkaSettings) -> Result<Self, KafkaError> {
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
pub async fn topic_max_message_bytes(settings: &KafkaSettings) -> Option<usize> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<_> = settings.client_config().create().ok()?;
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
        let pairs = record.headers.to_pairs();
        let mut headers = OwnedHeaders::new_with_capacity(pairs.len());
        for (name, value) in &pairs {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
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
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest_beyond_capacity() {
        let mut ids = RecentIds::new(2);
        ids.insert("a");
        ids.insert("b");
        ids.insert("a");
        assert!(ids.contains("a") && ids.contains("b"));
        ids.insert("c");
        assert!(!ids.contains("a"));
        assert!(ids.contains("b") && ids.contains("c"));
        let mut off = RecentIds::new(0);
        off.insert("a");
        assert!(!off.contains("a"));
    }

    #[test]
    fn extra_librdkafka_settings_are_applied_last() {
        let mut librdkafka = BTreeMap::new();
        librdkafka.insert("linger.ms".to_owned(), "50".to_owned());
        let settings = KafkaSettings {
            brokers: "127.0.0.1:9092".into(),
            topic: "stripe.events".into(),
            dedupe_cache: 10,
            message_timeout_ms: 10_000,
            max_record_bytes: 1 << 20,
            librdkafka,
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
