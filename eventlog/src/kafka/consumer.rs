//! The Kafka read port: a consumer-group member whose offsets move only when the reconciler
//! commits a batch, i.e. after the warehouse confirmed the facts covering it (rust-rdkafka
//! `examples/at_least_once.rs`): `enable.auto.offset.store=false`, auto-commit of the
//! stored offsets, and a synchronous commit when partitions are revoked. A rebalance is
//! reported through [`EventSource::take_reassigned`], so the reconciler reloads the state the
//! previous owners of its new partitions confirmed.
//!
//! Poison records (undecodable events, records without revline headers) are produced to
//! the dead-letter topic with the reason before their offset is stored. A dead letter the
//! topic can never take (too large, not authorised) or still failing after
//! [`DLQ_ATTEMPTS`] is logged and left out of the topic: it is already in the warehouse's
//! `dead_letters` table and `stripe_events`, and one poison record must not stop the
//! consumer.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use tokio::sync::watch;

use super::{record_from_message, to_kafka_headers, Client, KafkaConnection, DURABLE_PRODUCER};
use crate::{Batch, DeadLetter, EventSource, LogError};

/// Header carrying a dead letter's reason code on the dead-letter topic.
pub const DLQ_REASON_HEADER: &str = "revline-dlq-reason";
/// Header carrying a dead letter's human-readable detail.
pub const DLQ_DETAIL_HEADER: &str = "revline-dlq-detail";

/// Attempts at producing one dead letter before giving up on the topic copy.
pub const DLQ_ATTEMPTS: usize = 12;

/// How long one dead-letter produce may wait for the broker's acknowledgement. Without it a
/// broker that never answers would hold the consumer for librdkafka's default of 5 minutes.
const DLQ_MESSAGE_TIMEOUT_MS: &str = "10000";

/// How long a batch that has records waits for the next one before it is handed over.
const BATCH_IDLE: Duration = Duration::from_millis(25);

/// How long a rewind waits for the group coordinator's committed offsets, and for a seek.
const REWIND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the check whether this member holds every partition waits for the topic's
/// metadata (it answers "no" when the broker does not).
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Consumer-side settings.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub connection: KafkaConnection,
    pub topic: String,
    pub dlq_topic: String,
    pub group_id: String,
    /// Records librdkafka fetches ahead per assigned partition, in KiB
    /// (`queued.max.messages.kbytes`; a `REVLINE_KAFKA_RDKAFKA_…` property overrides it).
    pub prefetch_kbytes: u32,
}

/// The prefetch per partition when the consumer's rate is the log's: less would have it
/// wait on fetches (a 2 MiB one halved a whole-state matcher's rate, BENCHMARKS.md *Run
/// G*). librdkafka's own default, 64 MiB, would dominate RSS.
pub const PREFETCH_KBYTES: u32 = 8192;
/// The prefetch per partition when the consumer's rate is the warehouse's (a matcher
/// reading its state from it): as fast as [`PREFETCH_KBYTES`] there, and about 10 MB of
/// RSS per partition less.
pub const PREFETCH_KBYTES_BOUNDED: u32 = 2048;

struct Context {
    rebalanced: AtomicBool,
    /// Set while this member is assigned partition 0 (the enrichment's owner).
    holds_first: Arc<AtomicBool>,
}

impl ClientContext for Context {}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if partitions(tpl).contains(&0) {
                self.holds_first.store(false, Ordering::SeqCst);
            }
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
                let assigned = partitions(tpl);
                self.holds_first
                    .store(assigned.contains(&0), Ordering::SeqCst);
                tracing::info!(partitions = ?assigned, "partitions assigned")
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

/// The highest offset read per partition.
pub type Offsets = HashMap<i32, i64>;

/// A consumer-group member over the events topic, with its dead-letter producer.
pub struct KafkaSource {
    settings: SourceSettings,
    consumer: Arc<StreamConsumer<Context>>,
    dlq: FutureProducer,
}

impl KafkaSource {
    /// A flag set while this member is assigned partition 0 of the topic: work done once
    /// per consumer group (the enrichment) goes with it.
    pub fn holds_first_partition(&self) -> Arc<AtomicBool> {
        self.consumer.context().holds_first.clone()
    }

    /// Creates the consumer and subscribes; partitions are assigned in the background.
    pub fn new(settings: SourceSettings) -> Result<KafkaSource, LogError> {
        let consumer: StreamConsumer<Context> = settings
            .connection
            .client_config(
                Client::Consumer,
                &[
                    ("group.id", settings.group_id.clone()),
                    ("enable.auto.commit", "true".to_owned()),
                    ("auto.commit.interval.ms", "1000".to_owned()),
                    ("auto.offset.reset", "earliest".to_owned()),
                    (
                        "queued.max.messages.kbytes",
                        settings.prefetch_kbytes.to_string(),
                    ),
                    // A broker that holds an empty fetch for its whole wait (Tansu does)
                    // would add up to that wait to every webhook's way to the warehouse;
                    // brokers that answer as soon as a record arrives are unaffected.
                    ("fetch.wait.max.ms", "100".to_owned()),
                ],
                // Offsets are stored only once the warehouse confirmed a batch.
                &[("enable.auto.offset.store", "false")],
            )
            .create_with_context(Context {
                rebalanced: AtomicBool::new(false),
                holds_first: Arc::new(AtomicBool::new(false)),
            })
            .map_err(|e| LogError::Unavailable(format!("cannot create the kafka consumer: {e}")))?;
        let dlq: FutureProducer = settings
            .connection
            .client_config(
                Client::Producer,
                &[
                    // Room for the largest body ingest accepts plus the dead-letter headers.
                    ("message.max.bytes", "4194304".to_owned()),
                    ("message.timeout.ms", DLQ_MESSAGE_TIMEOUT_MS.to_owned()),
                ],
                DURABLE_PRODUCER,
            )
            .create()
            .map_err(|e| {
                LogError::Unavailable(format!("cannot create the dead-letter producer: {e}"))
            })?;
        consumer.subscribe(&[&settings.topic]).map_err(|e| {
            LogError::Unavailable(format!("cannot subscribe to {}: {e}", settings.topic))
        })?;
        tracing::info!(topic = %settings.topic, group = %settings.group_id, "kafka consumer subscribed");
        Ok(KafkaSource {
            settings,
            consumer: Arc::new(consumer),
            dlq,
        })
    }

    /// Produces one dead letter, retrying transient failures with backoff.
    async fn dead_letter(
        &self,
        dead: &DeadLetter,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), LogError> {
        let record = &dead.record;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(DLQ_ATTEMPTS - 1)
            .build();
        loop {
            let headers = to_kafka_headers(
                &record.headers,
                &[
                    (DLQ_REASON_HEADER, dead.reason.as_str()),
                    (DLQ_DETAIL_HEADER, dead.detail.as_str()),
                ],
            );
            let delivery = self
                .dlq
                .send(
                    FutureRecord::to(&self.settings.dlq_topic)
                        .key(record.key.as_bytes())
                        .payload(&record.payload)
                        .headers(headers),
                    Duration::from_secs(5),
                )
                .await;
            let err = match delivery {
                Ok(_) => return Ok(()),
                Err((err, _)) => err,
            };
            let final_error = matches!(
                err.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::MessageSizeTooLarge
                        | RDKafkaErrorCode::TopicAuthorizationFailed
                        | RDKafkaErrorCode::InvalidRecord
                )
            );
            let delay = if final_error { None } else { delays.next() };
            let Some(delay) = delay else {
                tracing::error!(
                    error = %err,
                    topic = %self.settings.dlq_topic,
                    stripe_event_id = %record.headers.event_id,
                    "dead-letter topic write failed; the event stays in the dead_letters table"
                );
                return Ok(());
            };
            tracing::warn!(error = %err, topic = %self.settings.dlq_topic, retry_in_ms = delay.as_millis() as u64, "dead-letter produce failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = crate::stopped(shutdown) => {
                    return Err(LogError::Unavailable("stopped while producing a dead letter".into()))
                }
            }
        }
    }
}

impl EventSource for KafkaSource {
    type Position = Offsets;

    /// Waits until `max` records arrived or `wait` passed since the first call.
    async fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Batch<Offsets>, LogError> {
        let mut records = Vec::new();
        let mut highest: Offsets = HashMap::new();
        let deadline = tokio::time::Instant::now() + wait;
        // A batch closes when it is full, at the deadline, or once no record has come for
        // BATCH_IDLE: a backlog still fills whole batches (its records are all waiting), and a
        // trickle of webhooks is reconciled within milliseconds rather than after the whole
        // wait.
        let mut close = deadline;
        // Errors (a broker down, say) queue up one event per occurrence; they are all read
        // here, in one call, so that a backlog of them after an outage never holds back
        // the records behind it (one error per call, with the caller's backoff between
        // calls, took minutes to drain).
        let mut errors = 0u64;
        let mut last_error = None;
        while records.len() < max {
            tokio::select! {
                msg = self.consumer.recv() => match msg {
                    Ok(msg) => {
                        close = deadline.min(tokio::time::Instant::now() + BATCH_IDLE);
                        let e = highest.entry(msg.partition()).or_insert(msg.offset());
                        *e = (*e).max(msg.offset());
                        records.push(record_from_message(&msg));
                    }
                    Err(err) => {
                        // Broker errors are reported here but the client reconnects by
                        // itself: keep reading until the batch closes.
                        if errors == 0 {
                            tracing::warn!(error = %err, "kafka consumer error");
                        }
                        errors += 1;
                        last_error = Some(err.to_string());
                    }
                },
                _ = tokio::time::sleep_until(close) => break,
                _ = crate::stopped(shutdown) => break,
            }
        }
        if errors > 1 {
            tracing::warn!(errors, last = ?last_error, "kafka consumer errors while reading one batch");
        }
        if let (true, Some(err)) = (records.is_empty(), last_error) {
            return Err(LogError::Unavailable(err));
        }
        Ok(Batch {
            records,
            position: highest,
        })
    }

    async fn commit(
        &mut self,
        position: &Offsets,
        dead_letters: &[DeadLetter],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), LogError> {
        for dead in dead_letters {
            self.dead_letter(dead, shutdown).await?;
        }
        for (&partition, &offset) in position {
            // `rd_kafka_offset_store` stores offset + 1: the next record to read.
            if let Err(err) = self
                .consumer
                .store_offset(&self.settings.topic, partition, offset)
            {
                // The partition was revoked meanwhile; its new owner replays the batch.
                tracing::debug!(partition, offset, error = %err, "offset not stored");
            }
        }
        Ok(())
    }

    /// Every partition either batch read, at the higher of the two offsets.
    fn merge_position(earlier: &mut Offsets, later: Offsets) {
        for (partition, offset) in later {
            let at = earlier.entry(partition).or_insert(offset);
            *at = (*at).max(offset);
        }
    }

    fn take_reassigned(&mut self) -> bool {
        self.consumer
            .context()
            .rebalanced
            .swap(false, Ordering::SeqCst)
    }

    /// Seeks every assigned partition to its committed offset (the beginning when nothing
    /// was committed, as `auto.offset.reset=earliest` would), after committing the offsets
    /// stored for checkpoints already durable, so nothing durable is read twice. Records
    /// fetched past that point are dropped by the seek.
    async fn rewind(&mut self) -> Result<(), LogError> {
        let consumer = self.consumer.clone();
        let topic = self.settings.topic.clone();
        let unavailable = |what: &str, err: rdkafka::error::KafkaError| {
            LogError::Unavailable(format!("rewind after a rebalance: {what}: {err}"))
        };
        tokio::task::spawn_blocking(move || {
            if let Err(err) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %err, "commit before a rewind (nothing stored yet?)");
            }
            let assigned = consumer
                .assignment()
                .map_err(|err| unavailable("read the assignment", err))?;
            if assigned.count() == 0 {
                return Ok(());
            }
            let committed = consumer
                .committed_offsets(assigned, REWIND_TIMEOUT)
                .map_err(|err| unavailable("read the committed offsets", err))?;
            let mut seek = TopicPartitionList::new();
            let mut to = Vec::new();
            for e in committed.elements_for_topic(&topic) {
                let offset = match e.offset() {
                    Offset::Offset(at) => Offset::Offset(at),
                    _ => Offset::Beginning,
                };
                seek.add_partition_offset(&topic, e.partition(), offset)
                    .map_err(|err| unavailable("list the partitions", err))?;
                to.push((e.partition(), offset));
            }
            let done = consumer
                .seek_partitions(seek, REWIND_TIMEOUT)
                .map_err(|err| unavailable("seek", err))?;
            for e in done.elements() {
                e.error().map_err(|err| {
                    unavailable(&format!("seek partition {}", e.partition()), err)
                })?;
            }
            tracing::info!(positions = ?to, "read positions moved back to the committed offsets");
            Ok(())
        })
        .await
        .map_err(|err| LogError::Unavailable(format!("rewind task failed: {err}")))?
    }

    /// Partitions come with the group's first rebalance, after the start.
    fn assigned_later(&self) -> bool {
        true
    }

    /// Compares the assignment with the topic's partitions in the broker's metadata.
    async fn sole_reader(&mut self) -> bool {
        let consumer = self.consumer.clone();
        let topic = self.settings.topic.clone();
        tokio::task::spawn_blocking(move || {
            let assigned: BTreeSet<i32> = consumer
                .assignment()
                .ok()?
                .elements_for_topic(&topic)
                .iter()
                .map(|e| e.partition())
                .collect();
            let metadata = consumer
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                .ok()?;
            let partitions: BTreeSet<i32> = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)?
                .partitions()
                .iter()
                .map(|p| p.id())
                .collect();
            Some(!partitions.is_empty() && partitions == assigned)
        })
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
    }

    async fn lag(&mut self) -> Option<i64> {
        let consumer = self.consumer.clone();
        let topic = self.settings.topic.clone();
        tokio::task::spawn_blocking(move || {
            let position = consumer.position().ok()?;
            let mut total = 0;
            for e in position.elements_for_topic(&topic) {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, e.partition(), Duration::from_secs(2))
                    .ok()?;
                let at = e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0);
                total += (high - at).max(0);
            }
            Some(total)
        })
        .await
        .ok()
        .flatten()
    }

    async fn close(&mut self) {
        let consumer = self.consumer.clone();
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync)),
        )
        .await;
    }
}
