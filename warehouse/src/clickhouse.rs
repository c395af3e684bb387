//! The ClickHouse warehouse (`clickhouse` crate over HTTP).
//!
//! Tables are `ReplacingMergeTree(version) ORDER BY id` (`sql/clickhouse/`); reads use
//! `FINAL`. Inserts are one `INSERT` per table per batch, a fresh `Insert` each time (an
//! `Insert` must not be reused after an error, clickhouse-rs #138). Validation is off: the
//! test server (18.16) predates `RowBinaryWithNamesAndTypes`, so rows go as RowBinary in
//! DDL column order, which the migrations test checks against the row types.
//!
//! The row types are the project's ([`schemas::facts`]); this adapter maps them to the
//! client's `Row` through two thin wrappers ([`Write`], [`Read`]) that serialise the row
//! itself, column by column, so the port never names the client's traits.
//!
//! Errors are triaged into transient (retry with backoff) and permanent (stop): network
//! failures, timeouts and the server codes below are transient; everything else (unknown
//! table or column, syntax, type mismatch, access) is permanent. Codes:
//! <https://github.com/ClickHouse/ClickHouse/blob/master/src/Common/ErrorCodes.cpp>.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use clickhouse::Client;
use futures_util::StreamExt;
use schemas::facts::{EventRow, FactSet, FactTable, StateRow, TableKind, TableVisitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::prefix_end;
use crate::query::{check_aggregate, check_rows, month_from_yyyymm};
use crate::{
    statements, Account, AggregateQuery, AggregateRow, Condition, Filter, GroupKey,
    MissingBalanceTransaction, Result, RowQuery, RowStream, StateQuery, Warehouse, WarehouseError,
    MIGRATIONS,
};

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

/// The fixed queries this adapter sends (`?fields` and `?` are filled by the client); the
/// read port's queries are built by [`rows_sql`] and [`aggregate_sql`]. Kept public so a
/// test can run each on ClickHouse 18.16 and on current ClickHouse (chDB).
pub mod sql {
    pub const CREATE_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at DateTime) ENGINE = MergeTree ORDER BY version";
    pub const APPLIED_MIGRATIONS: &str = "SELECT ?fields FROM schema_migrations";
    pub const RECORD_MIGRATION: &str =
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, now())";
    pub const LOAD_STATE: &str = "SELECT ?fields FROM reconcile_state FINAL";
    /// [`LOAD_STATE`] without the values (an empty one, `null` for a deleted row).
    pub const LOAD_STATE_KEYS: &str =
        "SELECT id, if(value = 'null', 'null', '') AS value, version FROM reconcile_state FINAL";
    pub const LOAD_STATE_IDS: &str = "SELECT ?fields FROM reconcile_state FINAL WHERE has(?, id)";
    /// Balance transactions charges and refunds reference that `balance_transactions`
    /// lacks (`?` is the limit).
    pub const MISSING_BALANCE_TRANSACTIONS: &str = "SELECT bt AS id, any(acct) AS account, any(live) AS livemode, any(src) AS source_event_id FROM (SELECT assumeNotNull(balance_transaction_id) AS bt, account AS acct, livemode AS live, source_event_id AS src FROM payments FINAL WHERE kind = 'charge' AND isNotNull(balance_transaction_id) UNION ALL SELECT assumeNotNull(balance_transaction_id) AS bt, account AS acct, livemode AS live, source_event_id AS src FROM refunds FINAL WHERE isNotNull(balance_transaction_id) UNION ALL SELECT assumeNotNull(failure_balance_transaction_id) AS bt, account AS acct, livemode AS live, source_event_id AS src FROM refunds FINAL WHERE isNotNull(failure_balance_transaction_id)) WHERE bt GLOBAL NOT IN (SELECT id FROM balance_transactions) GROUP BY bt ORDER BY bt LIMIT ?";
    /// Every raw event after a position, in receipt order: one query for a whole replay.
    pub const RAW_EVENTS_AFTER: &str = "SELECT ?fields FROM stripe_events FINAL WHERE received_at_ms > ? OR (received_at_ms = ? AND id > ?) ORDER BY received_at_ms, id";
}

/// Text of the ids one state lookup holds (counted as if every character were escaped):
/// half of ClickHouse's default `max_query_size` (256 KiB).
const STATE_QUERY_ID_BYTES: usize = 128 * 1024;
/// Id ranges (prefixes) one state lookup ORs together.
const STATE_QUERY_RANGES: usize = 50;

/// A value bound to a `?` of a generated query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Int(i64),
    Text(String),
}

/// The `WHERE` conditions of a filter (empty string when none), with their parameters.
fn where_clause(filter: &Filter, params: &mut Vec<Param>) -> String {
    let mut conds = Vec::new();
    if let Some(live) = filter.livemode {
        conds.push("livemode = ?".to_owned());
        params.push(Param::Int(i64::from(live)));
    }
    match &filter.account {
        Account::All => {}
        Account::Platform => conds.push("isNull(account)".to_owned()),
        Account::One(acct) => {
            conds.push("account = ?".to_owned());
            params.push(Param::Text(acct.clone()));
        }
    }
    if let Some(currency) = &filter.currency {
        conds.push("currency = ?".to_owned());
        params.push(Param::Text(currency.clone()));
    }
    if let Some(range) = &filter.time {
        if let Some(from) = range.from {
            conds.push(format!("{} >= toDateTime(?)", range.column));
            params.push(Param::Int(from));
        }
        if let Some(until) = range.until {
            conds.push(format!("{} < toDateTime(?)", range.column));
            params.push(Param::Int(until));
        }
        if range.from.is_none() && range.until.is_none() {
            conds.push(format!("isNotNull({})", range.column));
        }
    }
    for condition in &filter.conditions {
        match condition {
            Condition::Eq(column, value) => {
                conds.push(format!("{column} = ?"));
                params.push(Param::Text(value.clone()));
            }
            Condition::IsNull(column) => conds.push(format!("isNull({column})")),
            Condition::NotNull(column) => conds.push(format!("isNotNull({column})")),
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

/// The SQL of a row read of `T`'s table (`?fields` filled by the client) and its parameters.
pub fn rows_sql<T: FactTable>(query: &RowQuery) -> Result<(String, Vec<Param>)> {
    let info = schemas::facts::table(T::TABLE).expect("every row type is declared");
    let order = check_rows(info, query)?;
    let mut params = Vec::new();
    let sql = format!(
        "SELECT ?fields FROM {} FINAL{} ORDER BY {}",
        T::TABLE,
        where_clause(&query.filter, &mut params),
        order.join(", ")
    );
    Ok((sql, params))
}

/// The SQL of an aggregate (one JSON object per group: `k0`, `k1`, …, `c`, `s0`, …) and its
/// parameters.
pub fn aggregate_sql(query: &AggregateQuery) -> Result<(String, Vec<Param>)> {
    let info = check_aggregate(query)?;
    let mut select = Vec::new();
    let mut keys = Vec::new();
    for (i, key) in query.group_by.iter().enumerate() {
        let expr = match key {
            GroupKey::Column(c) => format!("toString({c})"),
            // `toYYYYMM` exists on 18.16; the `YYYY-MM` form is made in Rust.
            GroupKey::Month(c) => format!("toString(toYYYYMM({c}))"),
        };
        select.push(format!("{expr} AS k{i}"));
        keys.push(format!("k{i}"));
    }
    select.push("count() AS c".to_owned());
    for (i, column) in query.sums.iter().enumerate() {
        select.push(format!("toInt64(sum({column})) AS s{i}"));
    }
    for (i, column) in query.earliest.iter().enumerate() {
        select.push(format!("toInt64(min(toUInt32({column}))) AS e{i}"));
    }
    let mut params = Vec::new();
    let mut sql = format!(
        "SELECT {} FROM {} FINAL{}",
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
    Ok((sql, params))
}

/// How long one call may take before it counts as a transient failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the first raw event of a replay may take: ClickHouse sorts the whole rest of
/// `stripe_events` into receipt order before it sends one.
const SORTED_FIRST_ROW_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Memory a replay's sort may take in ClickHouse before it spills to disk.
const REPLAY_SORT_MEMORY_BYTES: u64 = 256 << 20;

/// How long `migrate` waits for a mutation (a migration's `ALTER TABLE … DELETE`).
const MUTATION_WAIT: Duration = Duration::from_secs(600);

/// Connection settings.
#[derive(Clone)]
pub struct ClickHouseSettings {
    /// `http(s)://host:port`; may carry `user:password@`, so it is only ever shown through
    /// [`ClickHouseSettings::redacted_url`].
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    /// Never logged.
    pub password: Option<String>,
    /// PEM file of CA certificates trusted for `https://` besides the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// A ClickHouse cluster (`remote_servers`): DDL `ON CLUSTER` with replicated local
    /// tables and distributed ones under the plain names ([`crate::cluster`]).
    pub cluster: Option<String>,
}

impl ClickHouseSettings {
    /// The URL with any `user:password@` replaced, fit for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// A URL split into the URL without `user:password@` and those credentials
/// (percent-decoded), so credentials travel in the client's headers and never in an
/// address that libraries might log.
fn split_credentials(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None, None);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some(at) = authority.rfind('@') else {
        return (url.to_owned(), None, None);
    };
    let (userinfo, host) = (&authority[..at], &authority[at + 1..]);
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    let user = Some(percent_decode(user)).filter(|u| !u.is_empty());
    (
        format!("{scheme}://{host}{tail}"),
        user,
        password.map(percent_decode),
    )
}

/// `%XX` sequences decoded (bytes that do not form UTF-8 are replaced).
fn percent_decode(text: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        char::from(b).to_digit(16).map(|d| d as u8)
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `scheme://[userinfo@]host…` with the userinfo replaced by `[redacted]@`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("[redacted]@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

impl std::fmt::Debug for ClickHouseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseSettings")
            .field("url", &self.redacted_url())
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
    cluster: Option<String>,
}

/// A row of `T` on its way in: serialised as `T` itself (RowBinary, by position).
pub struct Write<'a, T>(&'a T);

impl<'a, T: FactTable> clickhouse::Row for Write<'a, T> {
    const NAME: &'static str = T::TABLE;
    const COLUMN_NAMES: &'static [&'static str] = T::COLUMNS;
    const COLUMN_COUNT: usize = T::COLUMNS.len();
    const KIND: clickhouse::_priv::RowKind = clickhouse::_priv::RowKind::Struct;
    type Value<'v> = Write<'v, T>;
}

impl<T: Serialize> Serialize for Write<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// A row of `T` on its way out.
pub struct Read<T>(T);

impl<T: FactTable> clickhouse::Row for Read<T> {
    const NAME: &'static str = T::TABLE;
    const COLUMN_NAMES: &'static [&'static str] = T::COLUMNS;
    const COLUMN_COUNT: usize = T::COLUMNS.len();
    const KIND: clickhouse::_priv::RowKind = clickhouse::_priv::RowKind::Struct;
    type Value<'v> = Read<T>;
}

impl<'de, T: FactTable> Deserialize<'de> for Read<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        T::deserialize(deserializer).map(Read)
    }
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct MissingRow {
    id: String,
    account: Option<String>,
    livemode: u8,
    source_event_id: String,
}

/// Sorts a client error into transient or permanent.
/// An error and its causes, `: `-separated, each said once.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

pub fn triage(err: clickhouse::error::Error) -> WarehouseError {
    use clickhouse::error::Error as E;
    match &err {
        // The causes say what went wrong (refused, a certificate not trusted, …).
        E::Network(_) | E::TimedOut => WarehouseError::Transient(with_causes(&err)),
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

/// The rows of `query` as they arrive: the first within `first_row`, each next one within
/// [`CALL_TIMEOUT`].
fn stream<T: FactTable>(query: clickhouse::query::Query, first_row: Duration) -> RowStream<T> {
    match query.fetch::<Read<T>>() {
        Ok(cursor) => {
            futures_util::stream::try_unfold((cursor, first_row), |(mut cursor, wait)| async move {
                match tokio::time::timeout(wait, cursor.next()).await {
                    Ok(Ok(Some(row))) => Ok(Some((row.0, (cursor, CALL_TIMEOUT)))),
                    Ok(Ok(None)) => Ok(None),
                    Ok(Err(err)) => Err(triage(err)),
                    Err(_) => Err(WarehouseError::Transient(format!(
                        "no rows within {wait:?}"
                    ))),
                }
            })
            .boxed()
        }
        Err(err) => futures_util::stream::once(async move { Err(triage(err)) }).boxed(),
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

type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// Collects one insert per non-empty table of a batch, by write phase.
struct Inserts<'a> {
    warehouse: &'a ClickHouse,
    facts: Vec<WriteFuture<'a>>,
    raw: Vec<WriteFuture<'a>>,
    state: Vec<WriteFuture<'a>>,
}

impl<'a> TableVisitor<'a> for Inserts<'a> {
    fn rows<T: FactTable>(&mut self, rows: &'a [T]) {
        if rows.is_empty() {
            return;
        }
        let insert = Box::pin(self.warehouse.insert(rows));
        match T::KIND {
            TableKind::Fact => self.facts.push(insert),
            TableKind::RawEvents => self.raw.push(insert),
            TableKind::State => self.state.push(insert),
        }
    }
}

impl ClickHouse {
    pub fn new(settings: &ClickHouseSettings) -> Result<ClickHouse> {
        if !valid_identifier(&settings.database) {
            return Err(WarehouseError::Permanent(format!(
                "database name {:?} must use letters, digits and '_'",
                settings.database
            )));
        }
        // Credentials in the URL go to the client's headers like the separate settings
        // (which win), and the address it connects to carries none.
        let (url, url_user, url_password) = split_credentials(&settings.url);
        let mut server = http_client(settings.ca_file.as_deref())?
            .with_url(url)
            .with_validation(false);
        if let Some(user) = settings.user.as_ref().or(url_user.as_ref()) {
            server = server.with_user(user);
        }
        if let Some(password) = settings.password.as_ref().or(url_password.as_ref()) {
            server = server.with_password(password);
        }
        let mut client = server.clone().with_database(&settings.database);
        if settings.cluster.is_some() {
            // An insert returns once the rows are on their shards, not queued on this node:
            // the reconciler commits its log position after it.
            client = client.with_setting("insert_distributed_sync", "1");
        }
        Ok(ClickHouse {
            client,
            server,
            database: settings.database.clone(),
            cluster: settings.cluster.clone(),
        })
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The versions of the migrations `schema_migrations` records as applied.
    async fn applied_migrations(&self) -> Result<Vec<u32>> {
        Ok(timed(
            self.client
                .query(sql::APPLIED_MIGRATIONS)
                .fetch_all::<AppliedMigration>(),
        )
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect())
    }

    /// Records `m` as applied (after all its statements ran).
    async fn record_migration(&self, m: &crate::Migration) -> Result<()> {
        timed(
            self.client
                .query(sql::RECORD_MIGRATION)
                .bind(m.version)
                .bind(m.name)
                .execute(),
        )
        .await
    }

    /// The migrations not applied yet, on a cluster: each statement in its
    /// [`crate::cluster`] form (idempotent too: `IF NOT EXISTS` everywhere).
    async fn migrate_cluster(&self, cluster: &str) -> Result<Vec<String>> {
        let on = |stmt: &str| {
            crate::cluster::rewrite(stmt, cluster, &self.database)
                .map_err(|e| WarehouseError::Permanent(e.to_string()))
        };
        for stmt in on(&format!("CREATE DATABASE IF NOT EXISTS {}", self.database))? {
            timed(self.server.query(&stmt).execute()).await?;
        }
        for stmt in on(sql::CREATE_MIGRATIONS)? {
            self.execute(&stmt).await?;
        }
        let done = self.applied_migrations().await?;
        let mut applied = Vec::new();
        for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
            for stmt in statements(m.clickhouse) {
                for part in on(&stmt)? {
                    self.execute(&part).await?;
                }
                if let Some(table) = mutated_table(&stmt) {
                    self.wait_for_mutations(&format!("{table}_local")).await?;
                }
            }
            self.record_migration(m).await?;
            applied.push(m.name.to_owned());
        }
        Ok(applied)
    }
}

/// Every statement `revline migrate --cluster` runs on an empty database, in order
/// (`revline migrate --print`).
pub fn cluster_ddl(
    cluster: &str,
    database: &str,
) -> std::result::Result<Vec<String>, crate::cluster::Unsupported> {
    let mut out = crate::cluster::rewrite(
        &format!("CREATE DATABASE IF NOT EXISTS {database}"),
        cluster,
        database,
    )?;
    out.extend(crate::cluster::rewrite(
        sql::CREATE_MIGRATIONS,
        cluster,
        database,
    )?);
    for m in MIGRATIONS {
        for stmt in statements(m.clickhouse) {
            out.extend(crate::cluster::rewrite(&stmt, cluster, database)?);
        }
    }
    Ok(out)
}

/// ClickHouse uses 3 s by default: idle sockets are closed before the server does.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// A client over plain HTTP, or TLS through rustls (ring) trusting the system's roots and,
/// when given, the CA certificates of `ca_file`.
fn http_client(ca_file: Option<&std::path::Path>) -> Result<Client> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let bad = |why: String| {
            WarehouseError::Permanent(format!(
                "REVLINE_CLICKHOUSE_CA_FILE {}: {why}",
                path.display()
            ))
        };
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| WarehouseError::Permanent(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::with_http_client(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector),
    ))
}

impl ClickHouse {
    async fn insert<T: FactTable>(&self, rows: &[T]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = timed(self.client.insert::<Write<'static, T>>(T::TABLE)).await?;
        for row in rows {
            timed(insert.write(&Write(row))).await?;
        }
        timed(insert.end()).await
    }

    /// Waits until every mutation of `table` is done, so that a migration is recorded only
    /// once its rows have moved (18.16 has no synchronous mutations).
    async fn wait_for_mutations(&self, table: &str) -> Result<()> {
        let deadline = std::time::Instant::now() + MUTATION_WAIT;
        loop {
            let pending: u64 = timed(
                self.server
                    .query(
                        "SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0",
                    )
                    .bind(self.database.as_str())
                    .bind(table)
                    .fetch_one(),
            )
            .await?;
            if pending == 0 {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(WarehouseError::Permanent(format!(
                    "a mutation of {table} is still running after {}s: see system.mutations \
                     (latest_fail_reason), then run `revline migrate` again",
                    MUTATION_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether `table` of this database has `column`.
    async fn has_column(&self, table: &str, column: &str) -> Result<bool> {
        let n: u64 = timed(
            self.server
                .query(
                    "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
                )
                .bind(self.database.as_str())
                .bind(table)
                .bind(column)
                .fetch_one(),
        )
        .await?;
        Ok(n > 0)
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

fn bind_all(mut query: clickhouse::query::Query, params: Vec<Param>) -> clickhouse::query::Query {
    for p in params {
        query = match p {
            Param::Int(i) => query.bind(i),
            Param::Text(t) => query.bind(t),
        };
    }
    query
}

/// A JSON value of an aggregate result: ClickHouse quotes 64-bit integers by default.
fn json_int(v: Option<&serde_json::Value>) -> Option<i64> {
    match v? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The table of an `ALTER TABLE t DELETE …` statement (a mutation, which ClickHouse runs
/// in the background).
fn mutated_table(stmt: &str) -> Option<&str> {
    let words: Vec<&str> = stmt.split_whitespace().take(4).collect();
    match words.as_slice() {
        ["ALTER", "TABLE", table, "DELETE" | "UPDATE"] => Some(table),
        _ => None,
    }
}

/// The table and column of an `ALTER TABLE t ADD COLUMN c …` statement.
fn added_column(stmt: &str) -> Option<(&str, &str)> {
    let words: Vec<&str> = stmt.split_whitespace().take(6).collect();
    match words.as_slice() {
        ["ALTER", "TABLE", table, "ADD", "COLUMN", column] => Some((table, column)),
        _ => None,
    }
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct AppliedMigration {
    version: u32,
}

impl Warehouse for ClickHouse {
    async fn migrate(&self) -> Result<Vec<String>> {
        // Up to date is found by reading alone, so that commands which only read (reports
        // under an analyst's read-only account) never need the right to create anything.
        if let Ok(done) = self.applied_migrations().await {
            if MIGRATIONS.iter().all(|m| done.contains(&m.version)) {
                return Ok(Vec::new());
            }
        }
        if let Some(cluster) = &self.cluster {
            return self.migrate_cluster(cluster).await;
        }
        timed(
            self.server
                .query(&format!("CREATE DATABASE IF NOT EXISTS {}", self.database))
                .execute(),
        )
        .await?;
        self.execute(sql::CREATE_MIGRATIONS).await?;
        let done = self.applied_migrations().await?;
        let mut applied = Vec::new();
        for m in MIGRATIONS {
            if done.contains(&m.version) {
                continue;
            }
            // Every statement is idempotent, so a migration interrupted half-way is simply
            // run again: tables are created IF NOT EXISTS, and a column is added only when
            // missing (ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`).
            // Several processes may migrate at once (reconcilers of one group starting
            // together): a column another one added in between is not an error.
            for stmt in statements(m.clickhouse) {
                if let Some((table, column)) = added_column(&stmt) {
                    if self.has_column(table, column).await? {
                        continue;
                    }
                    if let Err(err) = self.execute(&stmt).await {
                        if self.has_column(table, column).await? {
                            continue;
                        }
                        return Err(err);
                    }
                    continue;
                }
                self.execute(&stmt).await?;
                if let Some(table) = mutated_table(&stmt) {
                    self.wait_for_mutations(table).await?;
                }
            }
            self.record_migration(m).await?;
            applied.push(m.name.to_owned());
        }
        Ok(applied)
    }

    async fn write(&self, facts: Arc<FactSet>) -> Result<()> {
        // Fact tables in parallel (one INSERT each), then the raw events, then state: a raw
        // event is visible only once its batch's facts are, and state never runs ahead.
        let mut inserts = Inserts {
            warehouse: self,
            facts: Vec::new(),
            raw: Vec::new(),
            state: Vec::new(),
        };
        facts.visit(&mut inserts);
        let Inserts {
            facts, raw, state, ..
        } = inserts;
        for phase in [facts, raw, state] {
            for result in futures_util::future::join_all(phase).await {
                result?;
            }
        }
        Ok(())
    }

    async fn load_state(&self, ids: Option<&[String]>) -> Result<Vec<StateRow>> {
        match ids {
            None => {
                let rows = timed(
                    self.client
                        .query(sql::LOAD_STATE)
                        .fetch_all::<Read<StateRow>>(),
                )
                .await?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }
            Some(ids) => {
                let mut out = Vec::new();
                for chunk in ids.chunks(1000) {
                    out.extend(
                        timed(
                            self.client
                                .query(sql::LOAD_STATE_IDS)
                                .bind(chunk)
                                .fetch_all::<Read<StateRow>>(),
                        )
                        .await?
                        .into_iter()
                        .map(|r| r.0),
                    );
                }
                Ok(out)
            }
        }
    }

    async fn load_state_matching(&self, query: &StateQuery) -> Result<Vec<StateRow>> {
        // Each id and each prefix range is a primary-key range (the table is ordered by id),
        // so a lookup reads a few granules, never the whole state. A query holds as many
        // ids as fit well below `max_query_size` (every query has a fixed cost: a batch
        // asks thousands of ids), but few ranges: ClickHouse 18.16 analyses OR'ed ranges in
        // time that grows with their number squared.
        let mut ids = query.ids.iter().peekable();
        let mut ranges = query
            .prefixes
            .iter()
            .filter_map(|p| prefix_end(p).map(|end| (p.clone(), end)));
        let mut out = Vec::new();
        loop {
            let mut chunk_ids = Vec::new();
            let mut bytes = 0;
            while let Some(id) = ids.peek() {
                // Quoted, separated, and room for escapes.
                let cost = 2 * id.len() + 4;
                if !chunk_ids.is_empty() && bytes + cost > STATE_QUERY_ID_BYTES {
                    break;
                }
                bytes += cost;
                chunk_ids.extend(ids.next().cloned());
            }
            let chunk_ranges: Vec<(String, String)> =
                ranges.by_ref().take(STATE_QUERY_RANGES).collect();
            if chunk_ids.is_empty() && chunk_ranges.is_empty() {
                break;
            }
            let mut conds = Vec::with_capacity(1 + chunk_ranges.len());
            let mut binds = Vec::with_capacity(chunk_ids.len() + 2 * chunk_ranges.len());
            if !chunk_ids.is_empty() {
                conds.push(format!("id IN ({})", vec!["?"; chunk_ids.len()].join(", ")));
                binds.extend(chunk_ids);
            }
            for (start, end) in chunk_ranges {
                conds.push("(id >= ? AND id < ?)".to_owned());
                binds.push(start);
                binds.push(end);
            }
            let select = if query.keys_only {
                sql::LOAD_STATE_KEYS
            } else {
                sql::LOAD_STATE
            };
            let mut sql = format!("{select} WHERE ({})", conds.join(" OR "));
            if query.since.is_some() {
                sql.push_str(" AND version >= ?");
            }
            let mut q = self.client.query(&sql);
            for b in binds {
                q = q.bind(b);
            }
            if let Some(since) = query.since {
                q = q.bind(since);
            }
            let rows = timed(q.fetch_all::<Read<StateRow>>()).await?;
            out.extend(rows.into_iter().map(|r| r.0));
        }
        Ok(out)
    }

    fn rows<T: FactTable>(&self, query: &RowQuery) -> RowStream<T> {
        let (sql, params) = match rows_sql::<T>(query) {
            Ok(built) => built,
            Err(err) => return futures_util::stream::once(async { Err(err) }).boxed(),
        };
        stream(bind_all(self.client.query(&sql), params), CALL_TIMEOUT)
    }

    async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let (sql, params) = aggregate_sql(query)?;
        let mut cursor = bind_all(self.client.query(&sql), params)
            .fetch_bytes("JSONEachRow")
            .map_err(triage)?;
        let body = timed(cursor.collect()).await?;
        let mut out = Vec::new();
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)
                .map_err(|e| WarehouseError::Permanent(format!("unreadable aggregate row: {e}")))?;
            let keys = query
                .group_by
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    obj.get(&format!("k{i}"))
                        .and_then(|v| v.as_str())
                        .map(|s| match key {
                            GroupKey::Month(_) => month_from_yyyymm(s),
                            GroupKey::Column(_) => s.to_owned(),
                        })
                })
                .collect();
            let count = json_int(obj.get("c")).unwrap_or(0) as u64;
            let sums = (0..query.sums.len())
                .map(|i| json_int(obj.get(&format!("s{i}"))).unwrap_or(0))
                .collect();
            // Over no rows ClickHouse's min() is 0, not null.
            let earliest = (0..query.earliest.len())
                .map(|i| json_int(obj.get(&format!("e{i}"))).filter(|_| count > 0))
                .collect();
            out.push(AggregateRow {
                keys,
                count,
                sums,
                earliest,
            });
        }
        if query.group_by.is_empty() && out.is_empty() {
            out.push(AggregateRow {
                keys: Vec::new(),
                count: 0,
                sums: vec![0; query.sums.len()],
                earliest: vec![None; query.earliest.len()],
            });
        }
        Ok(out)
    }

    fn raw_events(&self, after: Option<(i64, String)>) -> RowStream<EventRow> {
        // One read in receipt order for the whole replay. Pages of `ORDER BY … LIMIT` each
        // read (and merged) every part of the table, which is ordered by id: a replay was
        // quadratic in the history.
        let (at, id) = after.unwrap_or((i64::MIN, String::new()));
        let query = self
            .client
            .query(sql::RAW_EVENTS_AFTER)
            .bind(at)
            .bind(at)
            .bind(id)
            .with_setting(
                "max_bytes_before_external_sort",
                REPLAY_SORT_MEMORY_BYTES.to_string(),
            );
        stream(query, SORTED_FIRST_ROW_TIMEOUT)
    }

    async fn missing_balance_transactions(
        &self,
        limit: usize,
    ) -> Result<Vec<MissingBalanceTransaction>> {
        let rows = timed(
            self.client
                .query(sql::MISSING_BALANCE_TRANSACTIONS)
                .bind(limit as u64)
                .fetch_all::<MissingRow>(),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| MissingBalanceTransaction {
                id: r.id,
                account: r.account,
                livemode: r.livemode,
                source_event_id: r.source_event_id,
            })
            .collect())
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

    #[test]
    fn credentials_in_the_url_are_taken_out_of_the_address() {
        assert_eq!(
            split_credentials("https://rev%40line:p%3Ass@ch.example.com:8443/x?y=1"),
            (
                "https://ch.example.com:8443/x?y=1".to_owned(),
                Some("rev@line".to_owned()),
                Some("p:ss".to_owned())
            )
        );
        assert_eq!(
            split_credentials("http://127.0.0.1:8123"),
            ("http://127.0.0.1:8123".to_owned(), None, None)
        );
        assert_eq!(
            split_credentials("http://user@host"),
            ("http://host".to_owned(), Some("user".to_owned()), None)
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%é%41"), "%éA");
    }

    #[test]
    fn urls_lose_their_credentials_in_logs() {
        assert_eq!(
            redact_url("https://revline:s3cr3t-Pa55@ch.example.com:8443/?database=x"),
            "https://[redacted]@ch.example.com:8443/?database=x"
        );
        assert_eq!(redact_url("http://127.0.0.1:8123"), "http://127.0.0.1:8123");
        assert_eq!(redact_url("http://a@b@host/"), "http://[redacted]@host/");
        let settings = ClickHouseSettings {
            ca_file: None,
            cluster: None,
            url: "http://user:hunter2@127.0.0.1:8123".into(),
            database: "revline".into(),
            user: None,
            password: Some("hunter3".into()),
        };
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("hunter3"),
            "{shown}"
        );
    }

    #[test]
    fn generated_queries_filter_and_group_with_bound_values() {
        use schemas::facts::PaymentRow;
        let query = RowQuery {
            filter: Filter {
                livemode: Some(true),
                account: Account::Platform,
                currency: Some("usd".into()),
                time: Some(crate::TimeRange {
                    column: "created_at",
                    from: Some(10),
                    until: Some(20),
                }),
                conditions: vec![
                    Condition::Eq("status", "succeeded".into()),
                    Condition::IsNull("invoice_id"),
                    Condition::NotNull("balance_transaction_id"),
                ],
            },
            order_by: vec!["created_at"],
        };
        let (sql, params) = rows_sql::<PaymentRow>(&query).unwrap();
        assert_eq!(
            sql,
            "SELECT ?fields FROM payments FINAL WHERE livemode = ? AND isNull(account) AND currency = ? AND created_at >= toDateTime(?) AND created_at < toDateTime(?) AND status = ? AND isNull(invoice_id) AND isNotNull(balance_transaction_id) ORDER BY created_at, id"
        );
        assert_eq!(
            params,
            [
                Param::Int(1),
                Param::Text("usd".into()),
                Param::Int(10),
                Param::Int(20),
                Param::Text("succeeded".into()),
            ]
        );
        let (sql, _) = aggregate_sql(&AggregateQuery {
            table: "payments",
            group_by: vec![GroupKey::Column("currency"), GroupKey::Month("created_at")],
            sums: vec!["amount"],
            earliest: vec!["paid_at"],
            filter: Filter::default(),
        })
        .unwrap();
        assert_eq!(
            sql,
            "SELECT toString(currency) AS k0, toString(toYYYYMM(created_at)) AS k1, count() AS c, toInt64(sum(amount)) AS s0, toInt64(min(toUInt32(paid_at))) AS e0 FROM payments FINAL GROUP BY k0, k1 ORDER BY k0, k1"
        );
    }
}
