//! The read side of the embedded log: [`LogReader`] reads records in append order (`seq`)
//! and keeps named, stored cursors; [`EmbeddedSource`] is the read port over it, from which
//! `revline serve` reconciles.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use schemas::{LogRecord, RecordHeaders};
use tokio::sync::watch;

use super::OpenError;
use crate::{Batch, DeadLetter, EventSource, LogError};

/// A record read back from the log, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Position in the log, strictly increasing in append order.
    pub seq: i64,
    pub record: LogRecord,
}

/// Reads the embedded log in append order and keeps named consumer cursors.
pub struct LogReader {
    conn: Mutex<Connection>,
}

impl LogReader {
    /// Opens an existing log file for reading and cursor updates.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let conn = schemas::sqlite::open_with(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| OpenError::Sqlite {
            path: path.to_owned(),
            source,
        })?;
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

/// How often an idle [`EmbeddedSource`] looks for new records while it waits.
const POLL: Duration = Duration::from_millis(50);

/// The read port over the embedded log for one named cursor. A batch holds whatever is
/// there when it reads (it does not wait to fill up); only an empty log makes it wait,
/// polling, for up to the batch wait.
pub struct EmbeddedSource {
    reader: Arc<LogReader>,
    cursor: String,
    /// Where the next read starts (past every record handed out, committed or not).
    read_to: Option<i64>,
}

impl EmbeddedSource {
    pub fn new(reader: Arc<LogReader>, cursor: &str) -> Self {
        EmbeddedSource {
            reader,
            cursor: cursor.to_owned(),
            read_to: None,
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LogReader) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, LogError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || f(&reader))
            .await
            .map_err(|e| LogError::Unavailable(format!("event log reader task failed: {e}")))?
            .map_err(|e| LogError::Unavailable(e.to_string()))
    }
}

impl EventSource for EmbeddedSource {
    /// The `seq` of the batch's last record.
    type Position = i64;

    async fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Batch<i64>, LogError> {
        let from = match self.read_to {
            Some(seq) => seq,
            None => {
                let name = self.cursor.clone();
                let seq = self.blocking(move |r| r.cursor(&name)).await?;
                tracing::info!(
                    cursor = seq,
                    "embedded event log: reading from the stored cursor"
                );
                self.read_to = Some(seq);
                seq
            }
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let stored = self.blocking(move |r| r.read_after(from, max)).await?;
            if let Some(last) = stored.last() {
                let position = last.seq;
                self.read_to = Some(position);
                return Ok(Batch {
                    records: stored.into_iter().map(|s| s.record).collect(),
                    position,
                });
            }
            let now = tokio::time::Instant::now();
            if now >= deadline || *shutdown.borrow() {
                return Ok(Batch {
                    records: Vec::new(),
                    position: from,
                });
            }
            tokio::select! {
                _ = tokio::time::sleep_until((now + POLL).min(deadline)) => {}
                _ = crate::stopped(shutdown) => {}
            }
        }
    }

    async fn commit(
        &mut self,
        position: &i64,
        _dead_letters: &[DeadLetter],
        _shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), LogError> {
        // Dead letters stay in the log and in the warehouse's table: nothing to forward.
        let (name, position) = (self.cursor.clone(), *position);
        self.blocking(move |r| r.store_cursor(&name, position))
            .await
    }

    /// Sequences only grow: the later one covers the earlier.
    fn merge_position(earlier: &mut i64, later: i64) {
        *earlier = (*earlier).max(later);
    }

    fn take_reassigned(&mut self) -> bool {
        // One reader owns the whole log.
        false
    }

    /// Reads from the stored cursor again.
    async fn rewind(&mut self) -> Result<(), LogError> {
        self.read_to = None;
        Ok(())
    }

    async fn lag(&mut self) -> Option<i64> {
        let read_to = self.read_to?;
        let head = self.blocking(|r| r.head()).await.ok()?;
        Some(head.saturating_sub(read_to))
    }

    async fn close(&mut self) {
        // Every commit is durable when it returns.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedLog;
    use crate::EventLog;
    use schemas::Envelope;

    fn record(id: &str) -> LogRecord {
        let body = format!(
            r#"{{"id":"{id}","object":"event","type":"invoice.paid","created":1,"data":{{"object":{{"id":"in_1","customer":"cus_1"}}}}}}"#
        );
        let env = Envelope::parse(body.as_bytes(), None);
        LogRecord::new(body.into_bytes(), &env, "default", 42)
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("revline-embedded-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
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

    #[tokio::test]
    async fn the_source_reads_in_order_resumes_at_the_committed_position_and_waits_when_idle() {
        let dir = temp_dir("source");
        let log = EmbeddedLog::open(&dir, 1 << 20).unwrap();
        for id in ["evt_a", "evt_b", "evt_c"] {
            log.append(record(id)).await.unwrap();
        }
        let (_stop, mut shutdown) = watch::channel(false);
        let reader = Arc::new(LogReader::open(log.path()).unwrap());
        let mut source = EmbeddedSource::new(reader.clone(), "test");
        let first = source
            .next_batch(2, Duration::from_millis(10), &mut shutdown)
            .await
            .unwrap();
        let ids: Vec<_> = first
            .records
            .iter()
            .map(|r| r.headers.event_id.as_str())
            .collect();
        assert_eq!(ids, ["evt_a", "evt_b"]);
        // Read ahead without committing: the next batch continues after what was handed out.
        let second = source
            .next_batch(10, Duration::from_millis(10), &mut shutdown)
            .await
            .unwrap();
        assert_eq!(second.records.len(), 1);
        assert_eq!(source.lag().await, Some(0));
        source
            .commit(&first.position, &[], &mut shutdown)
            .await
            .unwrap();

        // A new source on the same cursor starts after the committed batch, not the read one.
        let mut again = EmbeddedSource::new(reader, "test");
        let replayed = again
            .next_batch(10, Duration::from_millis(10), &mut shutdown)
            .await
            .unwrap();
        assert_eq!(replayed.records[0].headers.event_id, "evt_c");

        // Nothing new: an empty batch after the wait.
        let started = std::time::Instant::now();
        let empty = again
            .next_batch(10, Duration::from_millis(120), &mut shutdown)
            .await
            .unwrap();
        assert!(empty.records.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(!again.take_reassigned());

        // A rewind goes back to the committed position: the read-ahead comes again.
        source.rewind().await.unwrap();
        let rewound = source
            .next_batch(10, Duration::from_millis(10), &mut shutdown)
            .await
            .unwrap();
        let ids: Vec<_> = rewound
            .records
            .iter()
            .map(|r| r.headers.event_id.as_str())
            .collect();
        assert_eq!(ids, ["evt_c"]);
        log.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
