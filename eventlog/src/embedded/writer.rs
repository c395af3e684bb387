//! The writer side of the embedded log: one thread takes every append waiting in its queue
//! and commits them in one transaction (group commit), so concurrent requests share one
//! fsync, and answers each request only after that commit returned.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;

use rusqlite::{params, Connection};
use schemas::LogRecord;
use tokio::sync::oneshot;

use super::{LogReader, OpenError, FILE_NAME, SCHEMA, SCHEMA_VERSION};
use crate::{Appended, EventLog, LogError};

/// Appends waiting for the writer beyond this are refused with [`LogError::QueueFull`].
const QUEUE_CAPACITY: usize = 16_384;
/// Most appends one transaction takes; bounds the time each commit holds the write lock.
const MAX_GROUP: usize = 2_048;

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

impl EmbeddedLog {
    /// Opens (creating if needed) the log in `data_dir`, without a size limit.
    pub fn open(data_dir: &Path, max_record_bytes: usize) -> Result<Self, OpenError> {
        Self::open_limited(data_dir, max_record_bytes, None)
    }

    /// Opens the log with its file limited to about `max_bytes` (SQLite's
    /// `max_page_count`; never below what the file already holds). Appends beyond it fail
    /// with [`LogError::Full`], as on a full disk, and work again once the limit is
    /// raised (on the next open).
    pub fn open_limited(
        data_dir: &Path,
        max_record_bytes: usize,
        max_bytes: Option<u64>,
    ) -> Result<Self, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OpenError::CreateDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(FILE_NAME);
        let sqlite = |source| OpenError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = schemas::sqlite::open_durable(&path).map_err(sqlite)?;
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
        if let Some(max_bytes) = max_bytes {
            let page_size: u64 = conn
                .pragma_query_value(None, "page_size", |r| r.get(0))
                .map_err(sqlite)?;
            conn.pragma_update(None, "max_page_count", max_bytes.div_ceil(page_size.max(1)))
                .map_err(sqlite)?;
        }

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
                // Once the file cannot grow, the rest of the group cannot be stored either
                // (and SQLite may have rolled the transaction back).
                if let Some(Err(LogError::Full(reason))) = outcomes.last() {
                    outcomes.push(Err(LogError::Full(reason.clone())));
                    continue;
                }
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
                    .map_err(|e| append_error(&e));
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
            let full = outcomes.into_iter().find_map(|o| match o {
                Err(LogError::Full(reason)) => Some(reason),
                _ => None,
            });
            for (_, reply) in appends {
                let error = match &full {
                    Some(reason) => LogError::Full(reason.clone()),
                    None => append_error(&err),
                };
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// An append's error: [`LogError::Full`] when the file cannot grow (a full disk, or the
/// configured limit), [`LogError::Unavailable`] otherwise.
fn append_error(err: &rusqlite::Error) -> LogError {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => LogError::Full(format!(
            "{err} (free disk space, or raise REVLINE_LOG_MAX_MB, then retry)"
        )),
        _ => LogError::Unavailable(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::Envelope;
    use std::path::PathBuf;

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
    async fn a_full_log_refuses_appends_keeps_what_it_stored_and_takes_more_once_it_may_grow() {
        let dir = temp_dir("full");
        let padded = |id: &str| {
            let mut r = record(id);
            r.payload.extend(std::iter::repeat_n(b' ', 8_000));
            r
        };
        let log = std::sync::Arc::new(
            EmbeddedLog::open_limited(&dir, 1 << 20, Some(256 * 1024)).unwrap(),
        );
        // Stored until the file reaches its limit, refused from then on.
        // One at a time (each its own commit), then 40 at once (one group).
        let mut outcomes = Vec::new();
        for i in 0..60 {
            outcomes.push(log.append(padded(&format!("evt_{i}"))).await);
        }
        let tasks: Vec<_> = (60..100)
            .map(|i| {
                let (log, r) = (log.clone(), padded(&format!("evt_{i}")));
                tokio::spawn(async move { log.append(r).await })
            })
            .collect();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let mut stored = Vec::new();
        let mut refused = Vec::new();
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(Appended::Stored) => stored.push(i),
                Err(LogError::Full(reason)) => {
                    assert!(reason.contains("REVLINE_LOG_MAX_MB"), "{reason}");
                    refused.push(i);
                }
                other => panic!("append {i}: {other:?}"),
            }
        }
        assert!(
            !stored.is_empty() && !refused.is_empty(),
            "{stored:?} {refused:?}"
        );
        // Everything acknowledged is there, nothing refused is.
        let ids = |log: &EmbeddedLog| -> Vec<String> {
            let rows = log.reader().read_after(0, 1_000).unwrap();
            rows.into_iter()
                .map(|r| r.record.headers.event_id)
                .collect()
        };
        let held = ids(&log);
        for i in &stored {
            assert!(
                held.contains(&format!("evt_{i}")),
                "evt_{i} was acknowledged"
            );
        }
        assert_eq!(held.len(), stored.len());
        log.close().await;

        // Space returns: the refused events are stored on their retry.
        let log = EmbeddedLog::open_limited(&dir, 1 << 20, Some(4 << 20)).unwrap();
        for i in &refused {
            let r = padded(&format!("evt_{i}"));
            assert_eq!(log.append(r).await.unwrap(), Appended::Stored);
        }
        assert_eq!(ids(&log).len(), 100);
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
}
