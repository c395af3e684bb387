//! Opening a SQLite file the way revline's embedded stores need it, in one place: the
//! embedded event log and the embedded warehouse both keep their data in SQLite under the
//! data dir and must agree on durability.
//!
//! - `journal_mode = WAL`: readers (the reconciler, an analyst's client) never block the
//!   writer (<https://www.sqlite.org/wal.html>);
//! - `synchronous = FULL`: a commit returns only after the WAL is fsynced, so what was
//!   committed survives a power loss (<https://www.sqlite.org/pragma.html#pragma_synchronous>);
//! - a busy timeout, so a second connection waits for the writer instead of failing.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How long a connection waits for a lock held by another one.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating it if needed) a database file for writing, in WAL mode with fsync on
/// every commit.
pub fn open_durable(path: &Path) -> rusqlite::Result<Connection> {
    let conn = open_with(path, OpenFlags::default())?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Opens an existing database file with `flags` and the busy timeout (readers, cursor
/// updates).
pub fn open_with(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_connections_use_wal_and_full_sync() {
        let dir = std::env::temp_dir().join(format!("revline-sqlite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conn = open_durable(&dir.join("t.sqlite")).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), sync), ("wal", 2));
        drop(conn);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
