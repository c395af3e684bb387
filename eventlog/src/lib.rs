//! The event log: where verified events become durable before `ingest` answers 2xx, and
//! where `reconcile` reads them back from.
//!
//! Two ports, each with two adapters:
//! - the append port, [`EventLog`]: [`kafka::KafkaLog`] (distributed: `acks=all`, idempotent
//!   producer) and [`embedded::EmbeddedLog`] (one machine: SQLite in WAL mode, fsync per
//!   group commit);
//! - the read/cursor port, [`EventSource`]: [`kafka::KafkaSource`] (a consumer-group member
//!   that stores offsets only when told, and sends poison records to the dead-letter topic)
//!   and [`embedded::EmbeddedSource`] (reads the SQLite log in order from a stored cursor).
//!
//! Both adapters store and return the same [`LogRecord`]: the body exactly as Stripe sent
//! it, a key, and the headers of [`schemas::record`].

pub mod embedded;
pub mod kafka;

use std::future::Future;
use std::time::Duration;

use schemas::LogRecord;
use tokio::sync::watch;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The record is durable now.
    Stored,
    /// A record with this event id is already in the log; nothing was written.
    Duplicate,
}

/// Why a log call did not succeed. For an append every variant means "not stored": the
/// caller must not acknowledge the event.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log cannot take or serve requests right now (broker down, disk error);
    /// retrying later may work.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// The log's storage is full (a full disk, or the embedded log's configured size
    /// limit); retrying after space is freed works.
    #[error("event log is full: {0}")]
    Full(String),
    /// The in-memory queue in front of the log is full; retrying later may work.
    #[error("event log queue is full")]
    QueueFull,
    /// The record is larger than the log accepts; retrying never helps.
    #[error("record is larger than the event log accepts")]
    TooLarge,
}

impl LogError {
    /// Low-cardinality label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::Full(_) => "full",
            Self::QueueFull => "queue_full",
            Self::TooLarge => "too_large",
        }
    }
}

/// The append port: a durable, append-only log of verified events, deduplicated by event id
/// where the backend can do it cheaply.
pub trait EventLog: Send + Sync + 'static {
    /// Appends one record and resolves once it is durable (or known to be a duplicate).
    fn append(&self, record: LogRecord) -> impl Future<Output = Result<Appended, LogError>> + Send;

    /// Whether the log can take writes now (for `/readyz`).
    fn ready(&self) -> impl Future<Output = Result<(), LogError>> + Send;

    /// Finishes in-flight writes before the process exits.
    fn close(&self) -> impl Future<Output = ()> + Send;

    /// The most a record's value may hold, in bytes.
    fn max_record_bytes(&self) -> usize;
}

/// Records read together, and where the source stands once they are done.
#[derive(Debug)]
pub struct Batch<P> {
    pub records: Vec<LogRecord>,
    /// Pass to [`EventSource::commit`] once every record's facts are durable.
    pub position: P,
}

/// A record the reconciler could not turn into facts, with the reason (forwarded to the
/// dead-letter topic by the Kafka source; the embedded log keeps only the table row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub record: LogRecord,
    /// Stable reason code (`thin_event`, `bad_object`, …).
    pub reason: String,
    pub detail: String,
}

/// The read/cursor port: an ordered stream of records with a stored position that moves
/// only when the consumer says the records are done, so a crash replays at most what was
/// not committed.
pub trait EventSource: Send {
    /// Where a batch ends (Kafka: the highest offset per partition; embedded: a sequence).
    type Position: Send + 'static;

    /// Reads the next records: at most `max`, waiting at most `wait` for them. An empty batch
    /// means nothing arrived in time (or `shutdown` turned true). Errors are worth retrying.
    fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Result<Batch<Self::Position>, LogError>> + Send;

    /// Called once a batch's facts are durable: forwards its dead letters, then stores the
    /// position past it. Batches are committed in the order they were read; a failed commit
    /// may be called again with the same arguments.
    fn commit(
        &mut self,
        position: &Self::Position,
        dead_letters: &[DeadLetter],
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Result<(), LogError>> + Send;

    /// Folds the position of a later batch into an earlier one's, so that committing the
    /// result commits both (a consumer may commit several batches at once).
    fn merge_position(earlier: &mut Self::Position, later: Self::Position);

    /// Whether the set of records this reader owns changed since the last call (a Kafka
    /// rebalance): state cached for records it no longer owns must be reloaded.
    fn take_reassigned(&mut self) -> bool;

    /// After a reassignment: moves the read position of every record this reader now owns
    /// back to its committed position, so the records read but not committed are read
    /// again (their batches were matched before the reassignment and are not written).
    /// Errors are worth retrying.
    fn rewind(&mut self) -> impl Future<Output = Result<(), LogError>> + Send;

    /// Whether the records this reader owns are given to it after it starts (a consumer
    /// group's assignment, reported by [`EventSource::take_reassigned`]): the reconciler
    /// then reads its state at that assignment, and not before it as well.
    fn assigned_later(&self) -> bool {
        false
    }

    /// Whether this reader owns every record of the log as of its last assignment (every
    /// partition of the topic), so that no other reader of its group writes state for
    /// records it does not see. Asked after each reassignment; `false` when it cannot
    /// tell, which is always safe.
    fn sole_reader(&mut self) -> impl Future<Output = bool> + Send {
        async { false }
    }

    /// Records in the log not read yet, when the source can tell (a metric).
    fn lag(&mut self) -> impl Future<Output = Option<i64>> + Send;

    /// Makes stored positions durable before the process exits.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// Resolves once `shutdown` turns true (or its sender is gone). The `Ref` that `wait_for`
/// returns is dropped here, so callers' futures stay `Send`.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
