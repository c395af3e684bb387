//! The warehouse: where facts land and where reports read them. One port, [`Warehouse`],
//! in the project's own types ([`schemas::facts`]), with two adapters over the same tables
//! and columns: [`clickhouse::ClickHouse`] (distributed) and [`embedded::Embedded`] (SQLite
//! under the data dir, the default of `revline serve`). Each adapter maps the row types to
//! its own wire format; nothing outside this crate sees either client library.
//!
//! Writes are idempotent: a table keeps, per `id`, the row with the highest `version`
//! (equal versions carry equal content), so writing a batch twice, or batches in any
//! order, ends in the same rows. Reads see that deduplicated view (`FINAL` on ClickHouse).
//!
//! The DDL of both adapters and its migrations live in `sql/` ([`migrations`]); a test
//! applies every migration of both folders and checks each table, column and type against
//! the row types, both ways.

pub mod clickhouse;
pub mod cluster;
pub mod embedded;
pub mod fetched;
pub mod migrations;
pub mod query;

use std::future::Future;
use std::sync::Arc;

use futures_util::stream::BoxStream;
use futures_util::TryStreamExt;
use schemas::facts::{EventRow, FactSet, FactTable, StateRow};

pub use migrations::{statements, Migration, MIGRATIONS};
pub use query::{
    Account, AggregateQuery, AggregateRow, Condition, Filter, GroupKey, RowQuery, TimeRange,
};

/// Why a warehouse call failed.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// Worth retrying: the server is down, busy or timed out.
    #[error("warehouse unavailable: {0}")]
    Transient(String),
    /// Retrying the same call cannot help (schema mismatch, bad SQL, permissions).
    #[error("warehouse error: {0}")]
    Permanent(String),
    /// The query asks for something the table does not have (an unknown column, a sum over
    /// text): a caller's mistake, caught before any SQL is sent.
    #[error("invalid warehouse query: {0}")]
    InvalidQuery(String),
}

impl WarehouseError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

pub type Result<T, E = WarehouseError> = std::result::Result<T, E>;

/// Rows of one table, read one at a time (memory stays bounded by what the caller keeps).
pub type RowStream<T> = BoxStream<'static, Result<T>>;

/// A balance transaction that facts reference but the warehouse does not hold yet (what
/// enrichment fetches from Stripe's API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingBalanceTransaction {
    pub id: String,
    pub account: Option<String>,
    pub livemode: u8,
    /// An event that referenced it (kept on the fetched row).
    pub source_event_id: String,
}

/// Which state rows to read: exact ids, and every id that starts with one of the
/// prefixes (a subscription's snapshots `sub:<id>#…`, the rows waiting on a link
/// `wait:<link>#…`). Both tables keep state ordered by id, so each part is an index range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateQuery {
    pub ids: Vec<String>,
    pub prefixes: Vec<String>,
    /// Only rows written at or after this version (state rows are stamped with the time
    /// in microseconds): what changed recently.
    pub since: Option<u64>,
    /// Only which rows there are: each row's id and version, its value left empty unless
    /// it is `null` (a deleted row). For a caller that wants the ids of many rows whose
    /// values would be most of what is read and held.
    pub keys_only: bool,
}

impl StateQuery {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.prefixes.is_empty()
    }

    /// `row` as this query returns it: without its value when only keys are asked.
    pub fn shape(&self, mut row: StateRow) -> StateRow {
        if self.keys_only && row.value != "null" {
            row.value.clear();
        }
        row
    }

    /// Whether the row with this id is asked for.
    pub fn matches(&self, row: &StateRow) -> bool {
        let id = row.id.as_str();
        (self.ids.iter().any(|i| i == id) || self.prefixes.iter().any(|p| id.starts_with(p)))
            && self.since.is_none_or(|since| row.version >= since)
    }
}

/// The smallest string above every string that starts with `prefix` (its last character
/// moved up by one); `None` for an empty prefix or one ending in the last character.
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    let last = chars.pop()?;
    let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32)?;
    chars.push(next);
    Some(chars.into_iter().collect())
}

/// The port.
pub trait Warehouse: Send + Sync + 'static {
    /// Applies pending migrations; returns the names applied now.
    fn migrate(&self) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Writes all rows of a batch: facts first, then the raw events, then state (see
    /// [`schemas::facts::TableKind`]). Returns once durable.
    fn write(&self, facts: Arc<FactSet>) -> impl Future<Output = Result<()>> + Send;

    /// State rows: all of them, or those with the given ids.
    fn load_state(
        &self,
        ids: Option<&[String]>,
    ) -> impl Future<Output = Result<Vec<StateRow>>> + Send;

    /// The state rows `query` asks for (an index lookup per id and per prefix, never a
    /// scan of the whole state). The default reads everything and filters, for doubles.
    fn load_state_matching(
        &self,
        query: &StateQuery,
    ) -> impl Future<Output = Result<Vec<StateRow>>> + Send {
        async move {
            let rows = self.load_state(None).await?;
            Ok(rows
                .into_iter()
                .filter(|r| query.matches(r))
                .map(|r| query.shape(r))
                .collect())
        }
    }

    /// The rows of `T`'s table that pass `query`'s filter, deduplicated (highest version per
    /// id), in `query`'s order.
    fn rows<T: FactTable>(&self, query: &RowQuery) -> RowStream<T>;

    /// Integer `count` and `sum`s of a table grouped by keys, over the rows that pass the
    /// filter, ordered by the keys.
    fn aggregate(
        &self,
        query: &AggregateQuery,
    ) -> impl Future<Output = Result<Vec<AggregateRow>>> + Send;

    /// Every raw event after `(received_at_ms, id)` (from the first when `None`), in
    /// receipt order, ties by id, each once in its kept version: what `revline replay`
    /// reads, once, as it goes.
    fn raw_events(&self, after: Option<(i64, String)>) -> RowStream<EventRow>;

    /// Balance transactions referenced by charges and refunds but not in the warehouse yet,
    /// at most `limit`, ordered by id.
    fn missing_balance_transactions(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<MissingBalanceTransaction>>> + Send;

    /// Whether the warehouse answers (for `/readyz`).
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;

    /// Every row of a table (deduplicated), ordered by id.
    fn fetch_all<T: FactTable>(&self) -> impl Future<Output = Result<Vec<T>>> + Send {
        self.rows::<T>(&RowQuery::default()).try_collect()
    }

    /// Rows in a table after deduplication; an unknown table is an error.
    fn count(&self, table: &str) -> impl Future<Output = Result<u64>> + Send {
        let query = schemas::facts::table(table)
            .map(|t| AggregateQuery::count(t.name))
            .ok_or_else(|| WarehouseError::InvalidQuery(format!("unknown table {table}")));
        async move {
            let rows = self.aggregate(&query?).await?;
            Ok(rows.first().map_or(0, |r| r.count))
        }
    }
}
