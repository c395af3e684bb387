//! The embedded event log: an append-only SQLite table under the data dir, for the
//! one-machine deployment. [`EmbeddedLog`] appends (one writer thread, group commit);
//! [`LogReader`] reads in order and keeps named cursors; [`EmbeddedSource`] is the read
//! port over a reader, which `revline serve` reconciles from.
//!
//! Durability: WAL journal with `synchronous = FULL` (`schemas::sqlite`), so a commit
//! returns only after the WAL is fsynced. Deduplication: `event_id` is unique; a second
//! append of the same id writes nothing and reports [`crate::Appended::Duplicate`]. Readers
//! use their own connection; WAL lets them read while the writer commits, from this process
//! or another.

mod reader;
mod writer;

use std::path::PathBuf;

pub use reader::{EmbeddedSource, LogReader, StoredRecord};
pub use writer::EmbeddedLog;

/// File name of the log inside the data dir.
pub const FILE_NAME: &str = "events.sqlite";

/// Cursor name of the reconciler in the embedded log.
pub const RECONCILE_CURSOR: &str = "reconcile";

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT    NOT NULL UNIQUE,
    record_key     TEXT    NOT NULL,
    event_type     TEXT,
    account        TEXT,
    livemode       INTEGER,
    api_version    TEXT,
    received_at_ms INTEGER NOT NULL,
    format_version INTEGER NOT NULL,
    endpoint       TEXT    NOT NULL,
    flag           TEXT,
    payload        BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);
";

/// The log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data dir {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open event log {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("event log {path} has schema version {found}, this build knows {SCHEMA_VERSION}")]
    Version { path: PathBuf, found: i64 },
    #[error("cannot start the event log writer: {0}")]
    Thread(std::io::Error),
}
