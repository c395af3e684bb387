//! The embedded warehouse: the fact tables in `warehouse.sqlite` under the data dir, so
//! analysts can open it with any SQLite (or DuckDB) client.
//!
//! Each batch is one transaction of upserts that keep the highest version per id
//! (`ON CONFLICT (id) DO UPDATE … WHERE excluded.version >= version`; equal versions carry
//! equal content). WAL with `synchronous = FULL`: the consumer stores its log cursor only
//! after this commit returned, so a crash replays at most the last batch.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use schemas::facts::*;
use serde_json::{Map, Value};

use super::{
    statements, MissingBalanceTransaction, RawEvent, Result, Warehouse, WarehouseError,
    WarehouseRow, MIGRATIONS,
};
use crate::matcher::FactSet;

pub const FILE_NAME: &str = "warehouse.sqlite";

/// The SQLite adapter.
#[derive(Clone)]
pub struct Embedded {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

fn sql_err(err: rusqlite::Error) -> WarehouseError {
    match err {
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
            ) =>
        {
            WarehouseError::Transient(err.to_string())
        }
        other => WarehouseError::Permanent(other.to_string()),
    }
}

fn to_sql(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| u as i64))
            .map(SqlValue::Integer)
            .unwrap_or_else(|| SqlValue::Real(n.as_f64().unwrap_or_default())),
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn from_sql(value: SqlValue) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::from(i),
        SqlValue::Real(f) => Value::from(f),
        SqlValue::Text(s) => Value::String(s),
        SqlValue::Blob(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
    }
}

fn upsert<T: FactTable>(conn: &Connection, rows: &[T]) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let cols = T::COLUMNS;
    let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = cols
        .iter()
        .filter(|c| **c != "id")
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO {t} ({cols}) VALUES ({ph}) ON CONFLICT (id) DO UPDATE SET {upd} WHERE excluded.version >= {t}.version",
        t = T::TABLE,
        cols = cols.join(", "),
        ph = placeholders.join(", "),
        upd = updates.join(", "),
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    for row in rows {
        let Value::Object(map) = serde_json::to_value(row).expect("fact rows serialise") else {
            unreachable!("fact rows are structs");
        };
        stmt.execute(params_from_iter(
            cols.iter()
                .map(|c| to_sql(map.get(*c).unwrap_or(&Value::Null))),
        ))?;
    }
    Ok(())
}

fn select<T: FactTable>(
    conn: &Connection,
    where_sql: &str,
    params: Vec<SqlValue>,
) -> rusqlite::Result<Vec<T>> {
    let sql = format!(
        "SELECT {} FROM {} {where_sql}",
        T::COLUMNS.join(", "),
        T::TABLE
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(params), |r| {
        let mut map = Map::new();
        for (i, c) in T::COLUMNS.iter().enumerate() {
            map.insert((*c).to_owned(), from_sql(r.get::<_, SqlValue>(i)?));
        }
        Ok(map)
    })?;
    let mut out = Vec::new();
    for map in rows {
        let map = map?;
        let row = T::from_json(Value::Object(map)).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?;
        out.push(row);
    }
    Ok(out)
}

impl Embedded {
    /// Opens (creating) `warehouse.sqlite` in `data_dir`. Call [`Warehouse::migrate`] next.
    pub fn open(data_dir: &Path) -> Result<Embedded> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            WarehouseError::Permanent(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(FILE_NAME);
        let conn = Connection::open(&path).map_err(sql_err)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(sql_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql_err)?;
        Ok(Embedded {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().expect("warehouse connection lock");
            f(&mut conn)
        })
        .await
        .map_err(|e| WarehouseError::Transient(format!("warehouse task failed: {e}")))?
        .map_err(sql_err)
    }
}

impl Warehouse for Embedded {
    async fn migrate(&self) -> Result<Vec<String>> {
        self.run(|conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
            )?;
            let mut applied = Vec::new();
            for m in MIGRATIONS {
                let done: Option<i64> = conn
                    .query_row("SELECT version FROM schema_migrations WHERE version = ?1", [m.version], |r| r.get(0))
                    .optional()?;
                if done.is_some() {
                    continue;
                }
                let tx = conn.transaction()?;
                for stmt in statements(m.embedded) {
                    tx.execute_batch(&stmt)?;
                }
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, strftime('%s','now'))",
                    rusqlite::params![m.version, m.name],
                )?;
                tx.commit()?;
                applied.push(m.name.to_owned());
            }
            Ok(applied)
        })
        .await
    }

    async fn write(&self, facts: Arc<FactSet>) -> Result<()> {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            macro_rules! up {
                ($field:ident, $ty:ty) => {
                    upsert::<$ty>(&tx, &facts.$field)?;
                };
            }
            crate::for_each_table!(up);
            tx.commit()
        })
        .await
    }

    async fn load_state(&self, ids: Option<&[String]>) -> Result<Vec<StateRow>> {
        let ids = ids.map(<[String]>::to_vec);
        self.run(move |conn| match ids {
            None => select::<StateRow>(conn, "", vec![]),
            Some(ids) => {
                let mut out = Vec::new();
                for chunk in ids.chunks(500) {
                    let ph: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
                    out.extend(select::<StateRow>(
                        conn,
                        &format!("WHERE id IN ({})", ph.join(",")),
                        chunk.iter().map(|s| SqlValue::Text(s.clone())).collect(),
                    )?);
                }
                Ok(out)
            }
        })
        .await
    }

    async fn fetch_all<T: WarehouseRow>(&self) -> Result<Vec<T>> {
        self.run(|conn| select::<T>(conn, "ORDER BY id", vec![]))
            .await
    }

    async fn raw_events_after(
        &self,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<RawEvent>> {
        self.run(move |conn| {
            let (at, id) = after.unwrap_or((i64::MIN, String::new()));
            select::<EventRow>(
                conn,
                "WHERE received_at_ms > ?1 OR (received_at_ms = ?1 AND id > ?2) ORDER BY received_at_ms, id LIMIT ?3",
                vec![SqlValue::Integer(at), SqlValue::Text(id), SqlValue::Integer(limit as i64)],
            )
        })
        .await
    }

    async fn missing_balance_transactions(
        &self,
        limit: usize,
    ) -> Result<Vec<MissingBalanceTransaction>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT bt, min(account), min(livemode), min(source_event_id) FROM (
                     SELECT balance_transaction_id AS bt, account, livemode, source_event_id FROM payments
                      WHERE kind = 'charge' AND balance_transaction_id IS NOT NULL
                     UNION ALL SELECT balance_transaction_id, account, livemode, source_event_id FROM refunds
                      WHERE balance_transaction_id IS NOT NULL
                     UNION ALL SELECT failure_balance_transaction_id, account, livemode, source_event_id FROM refunds
                      WHERE failure_balance_transaction_id IS NOT NULL)
                 WHERE bt NOT IN (SELECT id FROM balance_transactions)
                 GROUP BY bt ORDER BY bt LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| {
                Ok(MissingBalanceTransaction {
                    id: r.get(0)?,
                    account: r.get(1)?,
                    livemode: r.get(2)?,
                    source_event_id: r.get(3)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn count(&self, table: &str) -> Result<u64> {
        if !schemas::facts::TABLES.iter().any(|(t, _)| *t == table) {
            return Err(WarehouseError::Permanent(format!("unknown table {table}")));
        }
        let sql = format!("SELECT count(*) FROM {table}");
        self.run(move |conn| {
            conn.query_row(&sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.run(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }
}
