//! The embedded warehouse: the fact tables in `warehouse.sqlite` under the data dir, so
//! analysts can open it with any SQLite (or DuckDB) client.
//!
//! Each batch is one transaction of upserts that keep the highest version per id
//! (`ON CONFLICT (id) DO UPDATE … WHERE excluded.version >= version`; equal versions carry
//! equal content). WAL with `synchronous = FULL`: the consumer stores its log cursor only
//! after this commit returned, so a crash replays at most the last batch. Reads that stream
//! (reports) use a read-only connection of their own, so a long report never holds up the
//! writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension};
use schemas::facts::{EventRow, FactSet, FactTable, StateRow, TableVisitor};
use serde_json::{Map, Value};

use crate::prefix_end;
use crate::query::{check_aggregate, check_rows};
use crate::{
    statements, Account, AggregateQuery, AggregateRow, Condition, Filter, GroupKey,
    MissingBalanceTransaction, Result, RowQuery, RowStream, StateQuery, Warehouse, WarehouseError,
    MIGRATIONS,
};

pub const FILE_NAME: &str = "warehouse.sqlite";

/// Rows a streaming read hands over ahead of its consumer.
const STREAM_AHEAD: usize = 256;

/// Raw events read per query of a replay's stream.
const RAW_EVENTS_PAGE: i64 = 1_000;

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

/// Upserts every table of a batch inside the caller's transaction.
struct Upserts<'c> {
    conn: &'c Connection,
    result: rusqlite::Result<()>,
}

impl<'a> TableVisitor<'a> for Upserts<'_> {
    fn rows<T: FactTable>(&mut self, rows: &'a [T]) {
        if self.result.is_ok() {
            self.result = upsert(self.conn, rows);
        }
    }
}

/// One row of `T` read by name from the statement's columns (`T::COLUMNS` in order).
fn read_row<T: FactTable>(r: &rusqlite::Row<'_>) -> rusqlite::Result<T> {
    let mut map = Map::new();
    for (i, c) in T::COLUMNS.iter().enumerate() {
        map.insert((*c).to_owned(), from_sql(r.get::<_, SqlValue>(i)?));
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
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
    let rows = stmt.query_map(params_from_iter(params), read_row::<T>)?;
    rows.collect()
}

/// The `WHERE` conditions of a filter (empty string when none), with their parameters.
fn where_clause(filter: &Filter, params: &mut Vec<SqlValue>) -> String {
    let mut conds = Vec::new();
    let bind = |params: &mut Vec<SqlValue>, v: SqlValue| {
        params.push(v);
        format!("?{}", params.len())
    };
    if let Some(live) = filter.livemode {
        let p = bind(params, SqlValue::Integer(i64::from(live)));
        conds.push(format!("livemode = {p}"));
    }
    match &filter.account {
        Account::All => {}
        Account::Platform => conds.push("account IS NULL".to_owned()),
        Account::One(acct) => {
            let p = bind(params, SqlValue::Text(acct.clone()));
            conds.push(format!("account = {p}"));
        }
    }
    if let Some(currency) = &filter.currency {
        let p = bind(params, SqlValue::Text(currency.clone()));
        conds.push(format!("currency = {p}"));
    }
    if let Some(range) = &filter.time {
        conds.push(format!("{} IS NOT NULL", range.column));
        if let Some(from) = range.from {
            let p = bind(params, SqlValue::Integer(from));
            conds.push(format!("{} >= {p}", range.column));
        }
        if let Some(until) = range.until {
            let p = bind(params, SqlValue::Integer(until));
            conds.push(format!("{} < {p}", range.column));
        }
    }
    for condition in &filter.conditions {
        match condition {
            Condition::Eq(column, value) => {
                let p = bind(params, SqlValue::Text(value.clone()));
                conds.push(format!("{column} = {p}"));
            }
            Condition::IsNull(column) => conds.push(format!("{column} IS NULL")),
            Condition::NotNull(column) => conds.push(format!("{column} IS NOT NULL")),
            Condition::Positive(column) => conds.push(format!("{column} > 0")),
            Condition::Zero(column) => conds.push(format!("{column} = 0")),
        }
    }
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

impl Embedded {
    /// Opens (creating) `warehouse.sqlite` in `data_dir`. Call [`Warehouse::migrate`] next.
    pub fn open(data_dir: &Path) -> Result<Embedded> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            WarehouseError::Permanent(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(FILE_NAME);
        let conn = schemas::sqlite::open_durable(&path).map_err(sql_err)?;
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

    /// Runs `f` on a read-only connection of its own, off the async threads.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = schemas::sqlite::open_with(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            f(&conn)
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
                // The check and the migration share one write transaction, so a second
                // process (`revline report` beside `serve`) waits and then skips it.
                let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let done: Option<i64> = tx
                    .query_row("SELECT version FROM schema_migrations WHERE version = ?1", [m.version], |r| r.get(0))
                    .optional()?;
                if done.is_some() {
                    continue;
                }
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
            let mut upserts = Upserts {
                conn: &tx,
                result: Ok(()),
            };
            facts.visit(&mut upserts);
            upserts.result?;
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

    async fn load_state_matching(&self, query: &StateQuery) -> Result<Vec<StateRow>> {
        let query = query.clone();
        // State versions are microsecond stamps, far inside i64.
        let since = query
            .since
            .map_or(i64::MIN, |v| i64::try_from(v).unwrap_or(i64::MAX));
        self.run(move |conn| {
            let mut out = Vec::new();
            for chunk in query.ids.chunks(500) {
                let ph: Vec<String> = (2..=chunk.len() + 1).map(|i| format!("?{i}")).collect();
                let mut params = vec![SqlValue::Integer(since)];
                params.extend(chunk.iter().map(|s| SqlValue::Text(s.clone())));
                out.extend(select::<StateRow>(
                    conn,
                    &format!("WHERE version >= ?1 AND id IN ({})", ph.join(",")),
                    params,
                )?);
            }
            // One index range per prefix: `prefix <= id < prefix with its last byte + 1`.
            for prefix in &query.prefixes {
                let Some(end) = prefix_end(prefix) else {
                    continue;
                };
                out.extend(select::<StateRow>(
                    conn,
                    "WHERE id >= ?1 AND id < ?2 AND version >= ?3",
                    vec![
                        SqlValue::Text(prefix.clone()),
                        SqlValue::Text(end),
                        SqlValue::Integer(since),
                    ],
                )?);
            }
            Ok(out.into_iter().map(|r| query.shape(r)).collect())
        })
        .await
    }

    fn rows<T: FactTable>(&self, query: &RowQuery) -> RowStream<T> {
        let info = schemas::facts::table(T::TABLE).expect("every row type is declared");
        let order = match check_rows(info, query) {
            Ok(order) => order,
            Err(err) => return futures_util::stream::once(async { Err(err) }).boxed(),
        };
        let mut params = Vec::new();
        let sql = format!(
            "SELECT {} FROM {}{} ORDER BY {}",
            T::COLUMNS.join(", "),
            T::TABLE,
            where_clause(&query.filter, &mut params),
            order.join(", ")
        );
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<T>>(STREAM_AHEAD);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let run = || -> rusqlite::Result<()> {
                let conn = schemas::sqlite::open_with(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
                let mut stmt = conn.prepare(&sql)?;
                let rows = stmt.query_map(params_from_iter(params), read_row::<T>)?;
                for row in rows {
                    if tx.blocking_send(row.map_err(sql_err)).is_err() {
                        // The reader went away: stop reading.
                        return Ok(());
                    }
                }
                Ok(())
            };
            if let Err(err) = run() {
                let _ = tx.blocking_send(Err(sql_err(err)));
            }
        });
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|row| (row, rx)) },
        )
        .boxed()
    }

    async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let info = check_aggregate(query)?;
        let mut select = Vec::new();
        let mut keys = Vec::new();
        for (i, key) in query.group_by.iter().enumerate() {
            let expr = match key {
                GroupKey::Column(c) => format!("CAST({c} AS TEXT)"),
                GroupKey::Month(c) => format!("strftime('%Y-%m', {c}, 'unixepoch')"),
            };
            select.push(format!("{expr} AS k{i}"));
            keys.push(format!("k{i}"));
        }
        select.push("count(*)".to_owned());
        for column in &query.sums {
            // SQLite's sum() of integers is an integer, and an error on overflow.
            select.push(format!("coalesce(sum({column}), 0)"));
        }
        for column in &query.earliest {
            select.push(format!("min({column})"));
        }
        let mut params = Vec::new();
        let mut sql = format!(
            "SELECT {} FROM {}{}",
            select.join(", "),
            info.name,
            where_clause(&query.filter, &mut params)
        );
        if !keys.is_empty() {
            sql.push_str(&format!(
                " GROUP BY {} ORDER BY {}",
                keys.join(", "),
                keys.join(", ")
            ));
        }
        let (n_keys, n_sums, n_earliest) =
            (query.group_by.len(), query.sums.len(), query.earliest.len());
        self.read(move |conn| {
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(params), |r| {
                let keys = (0..n_keys)
                    .map(|i| r.get::<_, Option<String>>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let count = r.get::<_, i64>(n_keys)? as u64;
                let sums = (0..n_sums)
                    .map(|i| r.get::<_, i64>(n_keys + 1 + i))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let earliest = (0..n_earliest)
                    .map(|i| r.get::<_, Option<i64>>(n_keys + 1 + n_sums + i))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(AggregateRow {
                    keys,
                    count,
                    sums,
                    earliest,
                })
            })?;
            rows.collect()
        })
        .await
    }

    fn raw_events(&self, after: Option<(i64, String)>) -> RowStream<EventRow> {
        // Pages of an indexed range read, handed on one row at a time.
        let start = (self.clone(), after, Vec::new().into_iter());
        futures_util::stream::try_unfold(start, |(this, mut after, mut page)| async move {
            loop {
                if let Some(row) = page.next() {
                    return Ok(Some((row, (this, after, page))));
                }
                let (at, id) = after.clone().unwrap_or((i64::MIN, String::new()));
                let rows = this
                    .run(move |conn| {
                        select::<EventRow>(
                            conn,
                            "WHERE received_at_ms > ?1 OR (received_at_ms = ?1 AND id > ?2) ORDER BY received_at_ms, id LIMIT ?3",
                            vec![
                                SqlValue::Integer(at),
                                SqlValue::Text(id),
                                SqlValue::Integer(RAW_EVENTS_PAGE),
                            ],
                        )
                    })
                    .await?;
                let Some(last) = rows.last() else {
                    return Ok(None);
                };
                after = Some((last.received_at_ms, last.id.clone()));
                page = rows.into_iter();
            }
        })
        .boxed()
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

    async fn ping(&self) -> Result<()> {
        self.run(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;
    use schemas::facts::PaymentRow;

    use super::*;
    use crate::TimeRange;

    fn payment(
        id: &str,
        currency: &str,
        account: Option<&str>,
        created: u32,
        amount: i64,
        version: u64,
    ) -> PaymentRow {
        PaymentRow {
            id: id.into(),
            kind: "charge".into(),
            account: account.map(str::to_owned),
            livemode: 1,
            invoice_id: None,
            subscription_id: None,
            customer_id: Some("cus_1".into()),
            payment_intent_id: None,
            charge_id: Some(id.into()),
            amount,
            amount_captured: amount,
            amount_refunded: 0,
            currency: currency.into(),
            status: "succeeded".into(),
            failure_code: None,
            balance_transaction_id: None,
            created_at: created,
            paid_at: Some(created),
            source_event_id: format!("evt_{id}_{version}"),
            version,
        }
    }

    async fn warehouse(name: &str) -> (Embedded, PathBuf) {
        let dir = std::env::temp_dir().join(format!("revline-wh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let w = Embedded::open(&dir).unwrap();
        w.migrate().await.unwrap();
        (w, dir)
    }

    /// 2026-01-15 and 2026-02-15, 12:00 UTC.
    const JAN: u32 = 1_768_478_400;
    const FEB: u32 = 1_771_156_800;

    #[tokio::test]
    async fn rows_are_deduplicated_filtered_and_ordered() {
        let (w, dir) = warehouse("rows").await;
        let facts = FactSet {
            payments: vec![
                payment("ch_b", "usd", None, JAN, 100, 1),
                payment("ch_b", "usd", None, JAN, 150, 2),
                payment("ch_a", "usd", None, FEB, 200, 1),
                payment("ch_c", "eur", None, JAN, 300, 1),
                payment("ch_d", "usd", Some("acct_1"), JAN, 400, 1),
            ],
            ..FactSet::default()
        };
        w.write(Arc::new(facts)).await.unwrap();
        // Written twice: still one row per id.
        let all: Vec<PaymentRow> = w.fetch_all().await.unwrap();
        assert_eq!(
            all.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["ch_a", "ch_b", "ch_c", "ch_d"]
        );
        assert_eq!(all[1].amount, 150, "the highest version wins");

        let query = RowQuery {
            filter: Filter {
                livemode: Some(true),
                account: Account::Platform,
                currency: Some("usd".into()),
                time: None,
                conditions: vec![],
            },
            order_by: vec!["created_at"],
        };
        let rows: Vec<PaymentRow> = w.rows(&query).try_collect().await.unwrap();
        assert_eq!(
            rows.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["ch_b", "ch_a"]
        );
        let january = RowQuery {
            filter: Filter {
                time: Some(TimeRange {
                    column: "created_at",
                    from: Some(i64::from(JAN)),
                    until: Some(i64::from(FEB)),
                }),
                account: Account::One("acct_1".into()),
                ..Filter::default()
            },
            order_by: vec![],
        };
        let rows: Vec<PaymentRow> = w.rows(&january).try_collect().await.unwrap();
        assert_eq!(
            rows.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["ch_d"]
        );
        let bad = RowQuery {
            order_by: vec!["nope"],
            ..RowQuery::default()
        };
        let err = w
            .rows::<PaymentRow>(&bad)
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert!(matches!(err, WarehouseError::InvalidQuery(_)), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn aggregates_count_sum_and_find_the_earliest_per_group() {
        let (w, dir) = warehouse("aggregate").await;
        let facts = FactSet {
            payments: vec![
                payment("ch_1", "usd", None, JAN, 100, 1),
                payment("ch_2", "usd", None, JAN + 60, 250, 1),
                payment("ch_3", "usd", None, FEB, 1000, 1),
                payment("ch_4", "jpy", None, FEB, 5000, 1),
            ],
            ..FactSet::default()
        };
        w.write(Arc::new(facts)).await.unwrap();
        let rows = w
            .aggregate(&AggregateQuery {
                table: "payments",
                group_by: vec![GroupKey::Column("currency"), GroupKey::Month("created_at")],
                sums: vec!["amount", "amount_refunded"],
                earliest: vec!["paid_at"],
                filter: Filter::default(),
            })
            .await
            .unwrap();
        type Group = (Vec<Option<String>>, u64, Vec<i64>, Vec<Option<i64>>);
        let got: Vec<Group> = rows
            .into_iter()
            .map(|r| (r.keys, r.count, r.sums, r.earliest))
            .collect();
        let key = |c: &str, m: &str| vec![Some(c.to_owned()), Some(m.to_owned())];
        let (jan, feb) = (Some(i64::from(JAN)), Some(i64::from(FEB)));
        assert_eq!(
            got,
            [
                (key("jpy", "2026-02"), 1, vec![5000, 0], vec![feb]),
                (key("usd", "2026-01"), 2, vec![350, 0], vec![jan]),
                (key("usd", "2026-02"), 1, vec![1000, 0], vec![feb]),
            ]
        );
        assert_eq!(w.count("payments").await.unwrap(), 4);
        assert!(matches!(
            w.count("nope").await,
            Err(WarehouseError::InvalidQuery(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A warehouse written by a build that knew only migration 001 keeps its subscription
    /// items through 002, which rebuilds that table (the new columns start empty), and 003
    /// moves invoice payments out of payments.
    #[tokio::test]
    async fn upgrades_keep_the_rows_written_at_schema_001() {
        use schemas::facts::SubscriptionItemRow;

        let dir = std::env::temp_dir().join(format!("revline-wh-upgrade-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            let conn = Connection::open(dir.join(FILE_NAME)).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, '001_init', 0);",
            )
            .unwrap();
            for stmt in statements(MIGRATIONS[0].embedded) {
                conn.execute_batch(&stmt).unwrap();
            }
            conn.execute_batch(
                "INSERT INTO subscription_items (id, subscription_id, item_id, account, livemode, customer_id, status, price_id, product_id, currency, unit_amount, quantity, interval, interval_count, usage_type, cancel_at_period_end, cancel_at, canceled_at, ended_at, trial_start, trial_end, pause_collection, cancellation_reason, discount_ids, current_period_start, current_period_end, valid_from, valid_to, source_event_id, version)
                 VALUES ('sub_1/si_1/7', 'sub_1', 'si_1', NULL, 1, 'cus_1', 'active', 'price_1', 'prod_1', 'usd', 2000, 3, 'month', 1, 'licensed', 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'di_1', 100, 200, 100, NULL, 'evt_1', 7)",
            )
            .unwrap();
        }
        {
            // A charge and the invoice payment linking it to in_1, both in payments as
            // schema 001 had them.
            let conn = Connection::open(dir.join(FILE_NAME)).unwrap();
            conn.execute_batch(
                "INSERT INTO payments (id, kind, account, livemode, invoice_id, subscription_id, customer_id, payment_intent_id, charge_id, amount, amount_captured, amount_refunded, currency, status, failure_code, balance_transaction_id, created_at, paid_at, source_event_id, version) VALUES
                 ('ch_1', 'charge', NULL, 1, 'in_1', 'sub_1', 'cus_1', 'pi_1', 'ch_1', 2000, 2000, 0, 'usd', 'succeeded', NULL, 'txn_1', 100, 100, 'evt_2', 5),
                 ('inpay_1', 'invoice_payment', NULL, 1, 'in_1', 'sub_1', 'cus_1', 'pi_1', 'ch_1', 2000, 2000, 0, 'usd', 'paid', NULL, NULL, 101, 101, 'evt_3', 6)",
            )
            .unwrap();
        }
        let w = Embedded::open(&dir).unwrap();
        assert_eq!(
            w.migrate().await.unwrap(),
            [
                "002_discounts",
                "003_invoice_payments",
                "004_views",
                "005_payouts",
                "006_ledger_closes",
                "007_finance_views",
                "008_ties",
                "009_replay_order",
            ]
        );
        assert!(w.migrate().await.unwrap().is_empty(), "applied once");
        let rows: Vec<SubscriptionItemRow> = w.fetch_all().await.unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(
            (
                row.id.as_str(),
                row.customer_id.as_deref(),
                row.unit_amount,
                row.quantity
            ),
            ("sub_1/si_1/7", Some("cus_1"), Some(2000), 3)
        );
        assert_eq!((row.discount_ids.as_str(), row.version), ("di_1", 7));
        assert_eq!(
            (row.billing_scheme.as_deref(), row.tiers.as_deref()),
            (None, None)
        );
        assert_eq!(row.item_discount_ids, "");
        // 003: payments holds the money once; the invoice payment is a link of its own.
        let payments: Vec<PaymentRow> = w.fetch_all().await.unwrap();
        assert_eq!(
            payments
                .iter()
                .map(|p| (p.id.as_str(), p.kind.as_str(), p.amount_captured))
                .collect::<Vec<_>>(),
            [("ch_1", "charge", 2000)]
        );
        let links: Vec<schemas::facts::InvoicePaymentRow> = w.fetch_all().await.unwrap();
        assert_eq!(links.len(), 1);
        let link = &links[0];
        assert_eq!(
            (
                link.id.as_str(),
                link.invoice_id.as_deref(),
                link.charge_id.as_deref()
            ),
            ("inpay_1", Some("in_1"), Some("ch_1"))
        );
        assert_eq!(
            (
                link.amount_requested,
                link.amount_paid,
                link.status.as_str(),
                link.paid_at,
                link.version
            ),
            (2000, 2000, "paid", Some(101), 6)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
