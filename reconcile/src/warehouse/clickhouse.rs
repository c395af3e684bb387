//! The ClickHouse warehouse (`clickhouse` crate over HTTP).
//!
//! Tables are `ReplacingMergeTree(version) ORDER BY id` (schemas/clickhouse/); reads use
//! `FINAL`. Inserts are one `INSERT` per table per batch, a fresh `Insert` each time (an
//! `Insert` must not be reused after an error, clickhouse-rs #138). Validation is off: the
//! test server (18.16) predates `RowBinaryWithNamesAndTypes`, so rows go as RowBinary in
//! DDL column order, which a test checks against the structs.
//!
//! Errors are triaged into transient (retry with backoff) and permanent (stop): network
//! failures, timeouts and the server codes below are transient; everything else (unknown
//! table or column, syntax, type mismatch, access) is permanent. Codes:
//! <https://github.com/ClickHouse/ClickHouse/blob/master/src/Common/ErrorCodes.cpp>.

use std::sync::Arc;
use std::time::Duration;

use clickhouse::Client;
use schemas::facts::*;

use super::{statements, RawEvent, Result, Warehouse, WarehouseError, WarehouseRow, MIGRATIONS};
use crate::matcher::FactSet;

/// A balance transaction that facts reference but the warehouse does not hold yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, clickhouse::Row)]
pub struct MissingBalanceTransaction {
    pub id: String,
    pub account: Option<String>,
    pub livemode: u8,
    /// An event that referenced it (kept on the fetched row).
    pub source_event_id: String,
}

/// Server error codes worth retrying.
const TRANSIENT_CODES: &[u32] = &[
    3,   // UNEXPECTED_END_OF_FILE
    159, // TIMEOUT_EXCEEDED
    160, // TOO_SLOW
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    203, // NO_FREE_CONNECTION
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    225, // NO_ZOOKEEPER
    236, // ABORTED
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY (a replica that lost its keeper session)
    252, // TOO_MANY_PARTS
    285, // TOO_FEW_LIVE_REPLICAS
    319, // UNKNOWN_STATUS_OF_INSERT
    394, // QUERY_WAS_CANCELLED
    425, // SYSTEM_ERROR
    439, // CANNOT_SCHEDULE_TASK
    999, // KEEPER_EXCEPTION
];

/// Every query this adapter sends (`?fields` and `?` are filled by the client). Kept here
/// so a test can run each on ClickHouse 18.16 and on current ClickHouse (chDB).
pub mod sql {
    pub const CREATE_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at DateTime) ENGINE = MergeTree ORDER BY version";
    pub const APPLIED_MIGRATIONS: &str = "SELECT ?fields FROM schema_migrations";
    pub const RECORD_MIGRATION: &str =
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, now())";
    pub const LOAD_STATE: &str = "SELECT ?fields FROM reconcile_state FINAL";
    pub const LOAD_STATE_IDS: &str = "SELECT ?fields FROM reconcile_state FINAL WHERE has(?, id)";
    /// `{table}` is a fact table.
    pub const FETCH_ALL: &str = "SELECT ?fields FROM {table} FINAL ORDER BY id";
    pub const COUNT: &str = "SELECT count() FROM {table} FINAL";
    /// Balance transactions charges and refunds reference that `balance_transactions`
    /// lacks (`?` is the limit).
    pub const MISSING_BALANCE_TRANSACTIONS: &str = "SELECT bt AS id, any(acct) AS account, any(live) AS livemode, any(src) AS source_event_id FROM (SELECT assumeNotNull(balance_transaction_id) AS bt, account AS acct, livemode AS live, source_event_id AS src FROM payments FINAL WHERE kind = 'charge' AND isNotNull(balance_transaction_id) UNION ALL SELECT assumeNotNull(balance_transaction_id) AS bt, account AS acct, livemode AS live, source_event_id AS src FROM refunds FINAL WHERE isNotNull(balance_transaction_id) UNION ALL SELECT assumeNotNull(failure_balance_transaction_id) AS bt, account AS acct, livemode AS live, source_event_id AS src FROM refunds FINAL WHERE isNotNull(failure_balance_transaction_id)) WHERE bt NOT IN (SELECT id FROM balance_transactions) GROUP BY bt ORDER BY bt LIMIT ?";
    pub const RAW_EVENTS_AFTER: &str = "SELECT ?fields FROM stripe_events FINAL WHERE received_at_ms > ? OR (received_at_ms = ? AND id > ?) ORDER BY received_at_ms, id LIMIT ?";
}

/// How long one call may take before it counts as a transient failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Connection settings.
#[derive(Clone)]
pub struct ClickHouseSettings {
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    /// Never logged.
    pub password: Option<String>,
}

impl std::fmt::Debug for ClickHouseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseSettings")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The ClickHouse adapter.
#[derive(Clone)]
pub struct ClickHouse {
    client: Client,
    server: Client,
    database: String,
}

/// Sorts a client error into transient or permanent.
pub fn triage(err: clickhouse::error::Error) -> WarehouseError {
    use clickhouse::error::Error as E;
    match &err {
        E::Network(_) | E::TimedOut => WarehouseError::Transient(err.to_string()),
        E::BadResponse(msg) => {
            let code = msg
                .split("Code: ")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|digits| digits.parse::<u32>().ok());
            match code {
                Some(code) if TRANSIENT_CODES.contains(&code) => {
                    WarehouseError::Transient(err.to_string())
                }
                // No code: a proxy or a server going down answered.
                None => WarehouseError::Transient(err.to_string()),
                Some(_) => WarehouseError::Permanent(err.to_string()),
            }
        }
        _ => WarehouseError::Permanent(err.to_string()),
    }
}

async fn timed<T>(
    fut: impl std::future::Future<Output = clickhouse::error::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(result) => result.map_err(triage),
        Err(_) => Err(WarehouseError::Transient(format!(
            "no answer within {CALL_TIMEOUT:?}"
        ))),
    }
}

fn valid_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl ClickHouse {
    pub fn new(settings: &ClickHouseSettings) -> Result<ClickHouse> {
        if !valid_identifier(&settings.database) {
            return Err(WarehouseError::Permanent(format!(
                "database name {:?} must use letters, digits and '_'",
                settings.database
            )));
        }
        let mut server = Client::default()
            .with_url(&settings.url)
            .with_validation(false);
        if let Some(user) = &settings.user {
            server = server.with_user(user);
        }
        if let Some(password) = &settings.password {
            server = server.with_password(password);
        }
        Ok(ClickHouse {
            client: server.clone().with_database(&settings.database),
            server,
            database: settings.database.clone(),
        })
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    async fn insert<T: WarehouseRow>(&self, rows: &[T]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = timed(self.client.insert::<T>(T::TABLE)).await?;
        for row in rows {
            timed(insert.write(row)).await?;
        }
        timed(insert.end()).await
    }

    /// Runs one statement (DDL, maintenance).
    pub async fn execute(&self, sql: &str) -> Result<()> {
        timed(self.client.query(sql).execute()).await
    }

    /// Drops the database (tests).
    pub async fn drop_database(&self) -> Result<()> {
        timed(
            self.server
                .query(&format!("DROP DATABASE IF EXISTS {}", self.database))
                .execute(),
        )
        .await
    }
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct AppliedMigration {
    version: u32,
}

impl Warehouse for ClickHouse {
    async fn migrate(&self) -> Result<Vec<String>> {
        timed(
            self.server
                .query(&format!("CREATE DATABASE IF NOT EXISTS {}", self.database))
                .execute(),
        )
        .await?;
        self.execute(sql::CREATE_MIGRATIONS).await?;
        let done: Vec<u32> = timed(
            self.client
                .query(sql::APPLIED_MIGRATIONS)
                .fetch_all::<AppliedMigration>(),
        )
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect();
        let mut applied = Vec::new();
        for m in MIGRATIONS {
            if done.contains(&m.version) {
                continue;
            }
            // Every statement is idempotent (IF NOT EXISTS), so a migration interrupted
            // half-way is simply run again.
            for stmt in statements(m.clickhouse) {
                self.execute(&stmt).await?;
            }
            timed(
                self.client
                    .query(sql::RECORD_MIGRATION)
                    .bind(m.version)
                    .bind(m.name)
                    .execute(),
            )
            .await?;
            applied.push(m.name.to_owned());
        }
        Ok(applied)
    }

    async fn write(&self, facts: Arc<FactSet>) -> Result<()> {
        // Fact tables in parallel (one INSERT each), then the raw events, then state: a raw
        // event is visible only once its batch's facts are, and state never runs ahead.
        let f = &facts;
        let results = futures_util::future::join_all([
            Box::pin(self.insert(&f.invoices))
                as std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>>,
            Box::pin(self.insert(&f.invoice_history)),
            Box::pin(self.insert(&f.invoice_lines)),
            Box::pin(self.insert(&f.payments)),
            Box::pin(self.insert(&f.refunds)),
            Box::pin(self.insert(&f.disputes)),
            Box::pin(self.insert(&f.balance_transactions)),
            Box::pin(self.insert(&f.credit_notes)),
            Box::pin(self.insert(&f.credit_note_lines)),
            Box::pin(self.insert(&f.subscription_items)),
            Box::pin(self.insert(&f.customers)),
            Box::pin(self.insert(&f.attributions)),
            Box::pin(self.insert(&f.dead_letters)),
        ])
        .await;
        for result in results {
            result?;
        }
        self.insert(&f.events).await?;
        self.insert(&f.state).await
    }

    async fn load_state(&self, ids: Option<&[String]>) -> Result<Vec<StateRow>> {
        match ids {
            None => timed(self.client.query(sql::LOAD_STATE).fetch_all::<StateRow>()).await,
            Some(ids) => {
                let mut out = Vec::new();
                for chunk in ids.chunks(1000) {
                    out.extend(
                        timed(
                            self.client
                                .query(sql::LOAD_STATE_IDS)
                                .bind(chunk)
                                .fetch_all::<StateRow>(),
                        )
                        .await?,
                    );
                }
                Ok(out)
            }
        }
    }

    async fn fetch_all<T: WarehouseRow>(&self) -> Result<Vec<T>> {
        let query = sql::FETCH_ALL.replace("{table}", T::TABLE);
        timed(self.client.query(&query).fetch_all::<T>()).await
    }

    async fn raw_events_after(
        &self,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<RawEvent>> {
        let (at, id) = after.unwrap_or((i64::MIN, String::new()));
        timed(
            self.client
                .query(sql::RAW_EVENTS_AFTER)
                .bind(at)
                .bind(at)
                .bind(id)
                .bind(limit as u64)
                .fetch_all::<EventRow>(),
        )
        .await
    }

    async fn missing_balance_transactions(
        &self,
        limit: usize,
    ) -> Result<Vec<MissingBalanceTransaction>> {
        timed(
            self.client
                .query(sql::MISSING_BALANCE_TRANSACTIONS)
                .bind(limit as u64)
                .fetch_all::<MissingBalanceTransaction>(),
        )
        .await
    }

    async fn count(&self, table: &str) -> Result<u64> {
        if !schemas::facts::TABLES.iter().any(|(t, _)| *t == table) {
            return Err(WarehouseError::Permanent(format!("unknown table {table}")));
        }
        let query = sql::COUNT.replace("{table}", table);
        timed(self.client.query(&query).fetch_one::<u64>()).await
    }

    async fn ping(&self) -> Result<()> {
        timed(self.server.query("SELECT 1").execute()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(msg: &str) -> WarehouseError {
        triage(clickhouse::error::Error::BadResponse(msg.to_owned()))
    }

    #[test]
    fn server_errors_are_triaged_by_code() {
        assert!(bad("Code: 252. DB::Exception: Too many parts (300)").is_transient());
        assert!(bad("Code: 241. DB::Exception: Memory limit (total) exceeded").is_transient());
        assert!(
            !bad("Code: 60. DB::Exception: Table revline.invoices doesn't exist").is_transient()
        );
        assert!(
            !bad("Code: 164. DB::Exception: Cannot execute query in readonly mode").is_transient()
        );
        assert!(
            bad("502 Bad Gateway").is_transient(),
            "a proxy answering without a code"
        );
        assert!(triage(clickhouse::error::Error::TimedOut).is_transient());
    }
}
