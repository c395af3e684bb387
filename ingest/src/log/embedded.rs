//! The embedded event log: an append-only SQLite table under the data dir, for the
//! one-machine deployment.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a commit returns only after the
//! WAL is fsynced (<https://www.sqlite.org/pragma.html#pragma_synchronous>). Throughput:
//! one writer thread takes every append waiting in its queue and commits them in one
//! transaction (group commit), so concurrent requests share one fsync. Deduplication:
//! `event_id` is unique; a second append of the same id writes nothing and reports
//! [`Appended::Duplicate`].
//!
//! Reading: records come back in append order (`seq`), with a named, stored cursor so a
//! consumer resumes where it stopped. Readers use their own connection; WAL lets them read
//! while the writer commits, from this process or another.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use schemas::{LogRecord, RecordHeaders};
use tokio::sync::oneshot;

use super::{Appended, EventLog, LogError};

/// File name of the log inside the data dir.
pub const FILE_NAME: &str = "events.sqlite";

/// Appends waiting for the writer beyond this are refused with [`LogError::QueueFull`].
const QUEUE_CAPACITY: usize = 16_384;
/// Most appends one transaction takes; bounds the time each commit holds the write lock.
const MAX_GROUP: usize = 2_048;
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

/// A record read back from the log, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Position in the log, strictly increasing in append order.
    pub seq: i64,
    pub record: LogRecord,
}

enum Request {
    Append(Box<LogRecord>, oneshot::Sender<Result<Appended, LogError>>),
    Ping(oneshot::Sender<Result<(), LogError>>),
    Close(oneshot::Sender<()>),
}

/// The embedded event log (writer side plus a reader).
pub struct EmbeddedLog {
    path: PathBuf,
    queue: SyncSender<Request>,
    writer: Mutex<Option<JoinHandle<()>>>,
    reader: LogReader,
    max_record_bytes: usize,
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, OpenError> {
    let sqlite = |source| OpenError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(sqlite)?;
    Ok(conn)
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log in `data_dir`.
    pub fn open(data_dir: &Path, max_record_bytes: usize) -> Result<Self, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OpenError::CreateDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(FILE_NAME);
        let sqlite = |source| OpenError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = open_connection(&path, OpenFlags::default())?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sqlite)?;
        if version > SCHEMA_VERSION {
            return Err(OpenError::Version {
                path,
                found: version,
            });
        }
        conn.execute_batch(SCHEMA).map_err(sqlite)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sqlite)?;

        let (queue, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let writer = std::thread::Builder::new()
            .name("event-log-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(OpenError::Thread)?;
        let reader = LogReader::open(&path)?;
        Ok(EmbeddedLog {
            path,
            queue,
            writer: Mutex::new(Some(writer)),
            reader,
            max_record_bytes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A reader over this log (sharing its read connection).
    pub fn reader(&self) -> &LogReader {
        &self.reader
    }

    fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<oneshot::Receiver<T>, LogError> {
        let (tx, rx) = oneshot::channel();
        match self.queue.try_send(make(tx)) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(LogError::QueueFull),
            Err(TrySendError::Disconnected(_)) => {
                Err(LogError::Unavailable("the event log is closed".into()))
            }
        }
    }
}

impl EventLog for EmbeddedLog {
    async fn append(&self, record: LogRecord) -> Result<Appended, LogError> {
        if record.payload.len() > self.max_record_bytes {
            return Err(LogError::TooLarge);
        }
        let rx = self.submit(|tx| Request::Append(Box::new(record), tx))?;
        rx.await
            .map_err(|_| LogError::Unavailable("the event log writer stopped".into()))?
    }

    async fn ready(&self) -> Result<(), LogError> {
        let rx = self.submit(Request::Ping)?;
        rx.await
            .map_err(|_| LogError::Unavailable("the event log writer stopped".into()))?
    }

    async fn close(&self) {
        if let Ok(rx) = self.submit(Request::Close) {
            let _ = rx.await;
        }
        let handle = self.writer.lock().expect("writer handle lock").take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }

    fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }
}

fn writer_loop(mut conn: Connection, rx: Receiver<Request>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let mut appends = Vec::with_capacity(group.len());
        let mut closing = None;
        for request in group.drain(..) {
            match request {
                Request::Append(record, reply) => appends.push((record, reply)),
                Request::Ping(reply) => {
                    let result = conn
                        .query_row("SELECT count(*) FROM cursors", [], |r| r.get::<_, i64>(0))
                        .map(|_| ())
                        .map_err(|e| LogError::Unavailable(e.to_string()));
                    let _ = reply.send(result);
                }
                Request::Close(reply) => closing = Some(reply),
            }
        }
        if !appends.is_empty() {
            commit_group(&mut conn, appends);
        }
        if let Some(reply) = closing {
            // Everything queued before the close has been committed above.
            let _ = reply.send(());
            break;
        }
    }
    if let Err((_, err)) = conn.close() {
        tracing::warn!(error = %err, "closing the event log");
    }
}

type Reply = oneshot::Sender<Result<Appended, LogError>>;

/// Inserts a group in one transaction, then answers every request of the group: each
/// learns the outcome only after the commit (and its fsync) returned.
fn commit_group(conn: &mut Connection, appends: Vec<(Box<LogRecord>, Reply)>) {
    let mut outcomes: Vec<Result<Appended, LogError>> = Vec::with_capacity(appends.len());
    let result = (|| -> rusqlite::Result<()> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (event_id, record_key, event_type, account, livemode, api_version,
                                     received_at_ms, format_version, endpoint, flag, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (event_id) DO NOTHING",
            )?;
            for (record, _) in &appends {
                let h = &record.headers;
                let outcome = stmt
                    .execute(params![
                        h.event_id,
                        record.key,
                        h.event_type,
                        h.account,
                        h.livemode,
                        h.api_version,
                        h.received_at_ms,
                        h.format_version,
                        h.endpoint,
                        h.flag,
                        record.payload,
                    ])
                    .map(|changed| {
                        if changed == 1 {
                            Appended::Stored
                        } else {
                            Appended::Duplicate
                        }
                    })
                    .map_err(|e| LogError::Unavailable(e.to_string()));
                outcomes.push(outcome);
            }
        }
        tx.commit()
    })();
    match result {
        Ok(()) => {
            for ((_, reply), outcome) in appends.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, records = appends.len(), "event log commit failed");
            for (_, reply) in appends {
                let _ = reply.send(Err(LogError::Unavailable(err.to_string())));
            }
        }
    }
}

/// Reads the embedded log in append order and keeps named consumer cursors.
pub struct LogReader {
    conn: Mutex<Connection>,
}

impl LogReader {
    /// Opens an existing log file for reading and cursor updates.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let conn = open_connection(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Ok(LogReader {
            conn: Mutex::new(conn),
        })
    }

    /// Up to `limit` records with `seq > after`, in order. Blocking.
    pub fn read_after(&self, after: i64, limit: usize) -> rusqlite::Result<Vec<StoredRecord>> {
        let conn = self.conn.lock().expect("reader lock");
        let mut stmt = conn.prepare_cached(
            "SELECT seq, event_id, record_key, event_type, account, livemode, api_version,
                    received_at_ms, format_version, endpoint, flag, payload
             FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok(StoredRecord {
                seq: r.get(0)?,
                record: LogRecord {
                    key: r.get(2)?,
                    headers: RecordHeaders {
                        event_id: r.get(1)?,
                        event_type: r.get(3)?,
                        account: r.get(4)?,
                        livemode: r.get(5)?,
                        api_version: r.get(6)?,
                        received_at_ms: r.get(7)?,
                        format_version: r.get(8)?,
                        endpoint: r.get(9)?,
                        flag: r.get(10)?,
                    },
                    payload: r.get(11)?,
                },
            })
        })?;
        rows.collect()
    }

    /// The record stored for an event id, if any. Blocking.
    pub fn find(&self, event_id: &str) -> rusqlite::Result<Option<StoredRecord>> {
        let seq: Option<i64> = {
            let conn = self.conn.lock().expect("reader lock");
            conn.query_row(
                "SELECT seq FROM events WHERE event_id = ?1",
                [event_id],
                |r| r.get(0),
            )
            .optional()?
        };
        match seq {
            Some(seq) => Ok(self.read_after(seq - 1, 1)?.into_iter().next()),
            None => Ok(None),
        }
    }

    /// Number of records in the log. Blocking.
    pub fn count(&self) -> rusqlite::Result<i64> {
        let conn = self.conn.lock().expect("reader lock");
        conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
    }

    /// The highest `seq` in the log (0 when empty). Blocking.
    pub fn head(&self) -> rusqlite::Result<i64> {
        let conn = self.conn.lock().expect("reader lock");
        conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))
    }

    /// The stored position of consumer `name` (0 = from the start). Blocking.
    pub fn cursor(&self, name: &str) -> rusqlite::Result<i64> {
        let conn = self.conn.lock().expect("reader lock");
        Ok(conn
            .query_row("SELECT seq FROM cursors WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0))
    }

    /// Durably moves consumer `name` to `seq`. Blocking.
    pub fn store_cursor(&self, name: &str, seq: i64) -> rusqlite::Result<()> {
        let conn = self.conn.lock().expect("reader lock");
        conn.execute(
            "INSERT INTO cursors (name, seq) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
            params![name, seq],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::Envelope;

    fn record(id: &str) -> LogRecord {
        let body = format!(
            r#"{{"id":"{id}","object":"event","type":"invoice.paid","created":1,"data":{{"object":{{"id":"in_1","customer":"cus_1"}}}}}}"#
        );
        let env = Envelope::parse(body.as_bytes(), None);
        LogRecord::new(body.into_bytes(), &env, "default", 42)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("revline-embedded-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn appends_are_stored_once_and_read_back_in_order() {
        let dir = temp_dir("order");
        let log = EmbeddedLog::open(&dir, 1 << 20).unwrap();
        assert_eq!(log.append(record("evt_a")).await.unwrap(), Appended::Stored);
        assert_eq!(log.append(record("evt_b")).await.unwrap(), Appended::Stored);
        assert_eq!(
            log.append(record("evt_a")).await.unwrap(),
            Appended::Duplicate
        );
        let all = log.reader().read_after(0, 10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].record, record("evt_a"));
        assert_eq!(all[1].record.headers.event_id, "evt_b");
        assert!(all[0].seq < all[1].seq);
        log.close().await;

        // Reopened: the data and the uniqueness survive.
        let log = EmbeddedLog::open(&dir, 1 << 20).unwrap();
        assert_eq!(
            log.append(record("evt_b")).await.unwrap(),
            Appended::Duplicate
        );
        assert_eq!(log.reader().count().unwrap(), 2);
        log.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn concurrent_appends_share_commits_and_all_land() {
        let dir = temp_dir("group");
        let log = std::sync::Arc::new(EmbeddedLog::open(&dir, 1 << 20).unwrap());
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    log.append(record(&format!("evt_{}", i % 250)))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut stored = 0;
        for t in tasks {
            if t.await.unwrap() == Appended::Stored {
                stored += 1;
            }
        }
        assert_eq!(stored, 250);
        assert_eq!(log.reader().count().unwrap(), 250);
        log.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn oversized_records_and_closed_logs_are_refused() {
        let dir = temp_dir("refuse");
        let log = EmbeddedLog::open(&dir, 16).unwrap();
        assert!(matches!(
            log.append(record("evt_big")).await,
            Err(LogError::TooLarge)
        ));
        log.close().await;
        assert!(matches!(
            log.append(LogRecord {
                payload: vec![],
                ..record("evt_x")
            })
            .await,
            Err(LogError::Unavailable(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn cursors_persist() {
        let dir = temp_dir("cursor");
        let log = EmbeddedLog::open(&dir, 1 << 20).unwrap();
        assert_eq!(log.reader().cursor("reconcile").unwrap(), 0);
        log.reader().store_cursor("reconcile", 7).unwrap();
        log.reader().store_cursor("reconcile", 9).unwrap();
        assert_eq!(
            LogReader::open(log.path())
                .unwrap()
                .cursor("reconcile")
                .unwrap(),
            9
        );
        log.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
