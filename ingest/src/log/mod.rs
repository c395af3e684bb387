//! The event log port: where verified events become durable before `ingest` answers 2xx.
//!
//! Two adapters: [`kafka::KafkaLog`] (distributed: `acks=all`, idempotent producer) and
//! [`embedded::EmbeddedLog`] (one machine: SQLite in WAL mode, fsync per group commit).

pub mod embedded;
pub mod kafka;

use std::future::Future;

use schemas::LogRecord;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The record is durable now.
    Stored,
    /// A record with this event id is already in the log; nothing was written.
    Duplicate,
}

/// Why an append did not become durable. Every variant means "not stored": the caller
/// must not acknowledge the event.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log cannot take writes right now (broker down, disk error); retrying later may work.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
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
            Self::QueueFull => "queue_full",
            Self::TooLarge => "too_large",
        }
    }
}

/// A durable, append-only log of verified events, deduplicated by event id where the
/// backend can do it cheaply.
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
