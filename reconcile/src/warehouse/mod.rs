//! The warehouse port: where facts land. Two adapters with the same tables and columns:
//! [`clickhouse::ClickHouse`] (distributed) and [`embedded::Embedded`] (SQLite under the
//! data dir, the default of `revline serve`).
//!
//! Writes are idempotent: a table keeps, per `id`, the row with the highest `version`
//! (equal versions carry equal content), so writing a batch twice, or batches in any
//! order, ends in the same rows.

pub mod clickhouse;
pub mod embedded;

use std::future::Future;
use std::sync::Arc;

use schemas::facts::*;

use crate::matcher::FactSet;

/// Migration files, applied in order by `revline migrate` and at start.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub clickhouse: &'static str,
    pub embedded: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "001_init",
    clickhouse: include_str!("../../../schemas/clickhouse/001_init.sql"),
    embedded: include_str!("../../../schemas/embedded/001_init.sql"),
}];

/// Statements of a SQL file: split on `;`, comments and blank statements dropped.
pub fn statements(sql: &str) -> Vec<String> {
    sql.split(';')
        .map(|stmt| {
            stmt.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// A fact row both adapters can write and read.
pub trait WarehouseRow:
    FactTable + ::clickhouse::RowOwned + ::clickhouse::RowRead + ::clickhouse::RowWrite
{
}
impl<T: FactTable + ::clickhouse::RowOwned + ::clickhouse::RowRead + ::clickhouse::RowWrite>
    WarehouseRow for T
{
}

/// Calls `$m!(field, RowType)` for every table, in write order: the facts, then the raw
/// events (so a raw event is visible only once its batch's facts are), state last (so
/// persisted state never runs ahead of the facts it describes).
#[macro_export]
macro_rules! for_each_table {
    ($m:ident) => {
        $m!(invoices, InvoiceRow);
        $m!(invoice_history, InvoiceHistoryRow);
        $m!(invoice_lines, InvoiceLineRow);
        $m!(payments, PaymentRow);
        $m!(refunds, RefundRow);
        $m!(disputes, DisputeRow);
        $m!(balance_transactions, BalanceTransactionRow);
        $m!(credit_notes, CreditNoteRow);
        $m!(credit_note_lines, CreditNoteLineRow);
        $m!(subscription_items, SubscriptionItemRow);
        $m!(customers, CustomerRow);
        $m!(attributions, AttributionRow);
        $m!(dead_letters, DeadLetterRow);
        $m!(events, EventRow);
        $m!(state, StateRow);
    };
}

/// Why a warehouse call failed.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// Worth retrying: the server is down, busy or timed out.
    #[error("warehouse unavailable: {0}")]
    Transient(String),
    /// Retrying the same call cannot help (schema mismatch, bad SQL, permissions).
    #[error("warehouse error: {0}")]
    Permanent(String),
}

impl WarehouseError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

pub type Result<T, E = WarehouseError> = std::result::Result<T, E>;

pub use self::clickhouse::MissingBalanceTransaction;

/// A raw event read back from `stripe_events` (for `revline replay`).
pub type RawEvent = EventRow;

/// The port.
pub trait Warehouse: Send + Sync + 'static {
    /// Applies pending migrations; returns the names applied now.
    fn migrate(&self) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Writes all facts of a batch, state rows last. Returns once durable.
    fn write(&self, facts: Arc<FactSet>) -> impl Future<Output = Result<()>> + Send;

    /// State rows: all of them, or those with the given ids.
    fn load_state(
        &self,
        ids: Option<&[String]>,
    ) -> impl Future<Output = Result<Vec<StateRow>>> + Send;

    /// Every row of a table after deduplication (highest version per id), ordered by id.
    fn fetch_all<T: WarehouseRow>(&self) -> impl Future<Output = Result<Vec<T>>> + Send;

    /// Raw events after `(received_at_ms, id)` in receipt order, at most `limit`.
    fn raw_events_after(
        &self,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RawEvent>>> + Send;

    /// Balance transactions referenced by charges and refunds but not in the warehouse yet
    /// (what enrichment fetches), at most `limit`, ordered by id.
    fn missing_balance_transactions(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<MissingBalanceTransaction>>> + Send;

    /// Rows in a table after deduplication.
    fn count(&self, table: &str) -> impl Future<Output = Result<u64>> + Send;

    /// Whether the warehouse answers (for `/readyz`).
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;
}
