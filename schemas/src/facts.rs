//! Fact rows: what `reconcile` writes to the warehouse, one struct per table.
//!
//! Every row has a deterministic `id` (so re-processing overwrites instead of adding) and
//! a `version` (the warehouse keeps the row with the highest version per id: ClickHouse
//! `ReplacingMergeTree(version)`, an upsert in the embedded store). Field order is the
//! column order of the DDL in `schemas/clickhouse/` and `schemas/embedded/` (ClickHouse
//! reads rows as RowBinary, by position); a test checks both files against these structs.
//!
//! Conventions: money is `i64` in the currency's minor unit next to a lowercase
//! `currency`; instants are Unix seconds (`u32`, a `DateTime` in ClickHouse); flags are
//! `u8` 0/1; `account` is the Connect account (`None` for the platform).

use serde::{Deserialize, Serialize};

/// What every fact row type offers the warehouse adapters. (Deserialisation goes through
/// [`FactTable::from_json`] rather than a `DeserializeOwned` bound, which would collide
/// with the ClickHouse client's own row bounds.)
pub trait FactTable:
    Serialize + Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static
{
    const TABLE: &'static str;
    const COLUMNS: &'static [&'static str];
    /// The deterministic fact id.
    fn id(&self) -> &str;
    /// Higher wins.
    fn version(&self) -> u64;
    /// A row from a JSON object keyed by column name.
    fn from_json(value: serde_json::Value) -> Result<Self, serde_json::Error>;
}

macro_rules! fact_rows {
    ($( $(#[$meta:meta])* $table:literal => pub struct $name:ident { $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)? } )*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
            #[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
            pub struct $name { $( $(#[$fmeta])* pub $field: $ty ),* }

            impl $name {
                /// The table this row belongs to.
                pub const TABLE: &'static str = $table;
                /// Column names in DDL order.
                pub const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
            }

            impl FactTable for $name {
                const TABLE: &'static str = $table;
                const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
                fn id(&self) -> &str {
                    &self.id
                }
                fn version(&self) -> u64 {
                    self.version
                }
                fn from_json(value: serde_json::Value) -> Result<Self, serde_json::Error> {
                    serde_json::from_value(value)
                }
            }
        )*

        /// Every fact table with its columns in DDL order.
        pub const TABLES: &[(&str, &[&str])] = &[$(($table, $name::COLUMNS)),*];
    };
}

fact_rows! {
    /// Every event as received (audit and `revline replay`).
    "stripe_events" => pub struct EventRow {
        /// The event id (or `sha256:<hex>` for a body without one).
        pub id: String,
        pub event_type: Option<String>,
        pub api_version: Option<String>,
        pub created_at: Option<u32>,
        pub livemode: u8,
        pub account: Option<String>,
        pub object_type: Option<String>,
        pub object_id: Option<String>,
        /// Webhook endpoint name it arrived on.
        pub endpoint: String,
        /// Unix milliseconds when `ingest` accepted it.
        pub received_at_ms: i64,
        /// Dead-letter flag set by `ingest` (see `EnvelopeFlag`), kept for replays.
        pub flag: Option<String>,
        /// The body; exact for every UTF-8 body (all JSON is), lossy otherwise.
        pub payload: String,
        pub version: u64,
    }

    /// Events that produced no facts because they could not be decoded, with the reason.
    "dead_letters" => pub struct DeadLetterRow {
        pub id: String,
        pub event_type: Option<String>,
        /// Stable reason code (`not_json`, `null_api_version`, `bad_object`, …).
        pub reason: String,
        pub detail: String,
        pub received_at_ms: i64,
        pub version: u64,
    }

    /// Invoices, latest version.
    "invoices" => pub struct InvoiceRow {
        pub id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub customer_id: Option<String>,
        pub subscription_id: Option<String>,
        pub number: Option<String>,
        pub status: Option<String>,
        pub billing_reason: Option<String>,
        pub collection_method: Option<String>,
        pub currency: String,
        pub subtotal: i64,
        pub total_discount: i64,
        pub total_tax: i64,
        pub total: i64,
        pub total_excluding_tax: i64,
        pub amount_due: i64,
        pub amount_paid: i64,
        pub amount_remaining: i64,
        pub amount_overpaid: i64,
        pub starting_balance: i64,
        pub ending_balance: Option<i64>,
        pub pre_payment_credit_notes_amount: i64,
        pub post_payment_credit_notes_amount: i64,
        pub period_start: Option<u32>,
        pub period_end: Option<u32>,
        pub created_at: u32,
        pub finalized_at: Option<u32>,
        pub due_date: Option<u32>,
        pub paid_at: Option<u32>,
        pub voided_at: Option<u32>,
        pub marked_uncollectible_at: Option<u32>,
        pub paid_out_of_band: u8,
        pub quote_id: Option<String>,
        /// 0 when the event carried only the first page of lines (`lines.has_more`).
        pub lines_complete: u8,
        pub source_event_id: String,
        /// `created` of the event this version comes from.
        pub event_created_at: u32,
        pub version: u64,
    }

    /// One row per invoice version seen (as-of status and balance, for AR aging).
    "invoice_history" => pub struct InvoiceHistoryRow {
        /// `<invoice id>/<event id>`.
        pub id: String,
        pub invoice_id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub customer_id: Option<String>,
        pub status: Option<String>,
        pub currency: String,
        pub total: i64,
        pub amount_paid: i64,
        pub amount_remaining: i64,
        pub due_date: Option<u32>,
        pub finalized_at: Option<u32>,
        /// The event's `created`: this version holds from then on.
        pub valid_from: u32,
        pub source_event_id: String,
        pub version: u64,
    }

    /// Lines of finalized invoices.
    "invoice_lines" => pub struct InvoiceLineRow {
        /// `<invoice id>/<line id>`.
        pub id: String,
        pub line_id: String,
        pub invoice_id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub customer_id: Option<String>,
        pub subscription_id: Option<String>,
        pub subscription_item_id: Option<String>,
        pub invoice_item_id: Option<String>,
        pub price_id: Option<String>,
        pub product_id: Option<String>,
        /// `subscription`, `invoiceitem` or `other`.
        pub source_type: String,
        pub proration: u8,
        pub quantity: Option<i64>,
        pub unit_amount: Option<i64>,
        pub currency: String,
        pub amount: i64,
        pub discount_amount: i64,
        pub pretax_credit_amount: i64,
        pub inclusive_tax_amount: i64,
        pub exclusive_tax_amount: i64,
        /// Excluding tax, net of discounts and pretax credits: the line's revenue, see
        /// [`crate::stripe::InvoiceLine::recognizable_amount`].
        pub recognizable_amount: i64,
        pub period_start: Option<u32>,
        pub period_end: Option<u32>,
        pub invoice_finalized_at: Option<u32>,
        pub source_event_id: String,
        pub version: u64,
    }

    /// Payments: charges and (basil and later) invoice payments.
    "payments" => pub struct PaymentRow {
        /// `ch_…` or `inpay_…`.
        pub id: String,
        /// `charge` or `invoice_payment`.
        pub kind: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub invoice_id: Option<String>,
        pub subscription_id: Option<String>,
        pub customer_id: Option<String>,
        pub payment_intent_id: Option<String>,
        pub charge_id: Option<String>,
        /// Charge amount, or the invoice payment's `amount_requested`.
        pub amount: i64,
        /// Charge `amount_captured`, or the invoice payment's `amount_paid`.
        pub amount_captured: i64,
        pub amount_refunded: i64,
        pub currency: String,
        pub status: String,
        pub failure_code: Option<String>,
        pub balance_transaction_id: Option<String>,
        pub created_at: u32,
        pub paid_at: Option<u32>,
        pub source_event_id: String,
        pub version: u64,
    }

    "refunds" => pub struct RefundRow {
        pub id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub charge_id: Option<String>,
        pub payment_intent_id: Option<String>,
        pub invoice_id: Option<String>,
        pub subscription_id: Option<String>,
        pub customer_id: Option<String>,
        pub amount: i64,
        pub currency: String,
        pub status: String,
        pub reason: Option<String>,
        pub failure_reason: Option<String>,
        pub balance_transaction_id: Option<String>,
        pub failure_balance_transaction_id: Option<String>,
        pub created_at: u32,
        pub source_event_id: String,
        pub version: u64,
    }

    "disputes" => pub struct DisputeRow {
        pub id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub charge_id: Option<String>,
        pub payment_intent_id: Option<String>,
        pub invoice_id: Option<String>,
        pub subscription_id: Option<String>,
        pub customer_id: Option<String>,
        pub amount: i64,
        pub currency: String,
        pub reason: Option<String>,
        pub status: String,
        /// `won`, `lost`, `warning_closed`, `prevented` once closed; empty while open.
        pub outcome: String,
        /// Comma-separated `txn_…` ids of its withdrawal / reinstatement.
        pub balance_transaction_ids: String,
        pub created_at: u32,
        /// `created` of the event that first showed it closed (this version's event).
        pub closed_at: Option<u32>,
        pub source_event_id: String,
        pub version: u64,
    }

    /// Balance transactions (gross, fee, net in the settlement currency) when known.
    "balance_transactions" => pub struct BalanceTransactionRow {
        pub id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub source_id: Option<String>,
        /// Stripe's `type`.
        pub kind: String,
        pub reporting_category: Option<String>,
        pub amount: i64,
        pub fee: i64,
        pub net: i64,
        pub currency: String,
        /// Exact decimal text; `None` without conversion.
        pub exchange_rate: Option<String>,
        pub status: Option<String>,
        pub created_at: u32,
        pub available_on: Option<u32>,
        pub source_event_id: String,
        pub version: u64,
    }

    "credit_notes" => pub struct CreditNoteRow {
        pub id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub invoice_id: Option<String>,
        pub customer_id: Option<String>,
        pub number: Option<String>,
        /// `pre_payment`, `post_payment`, `mixed`.
        pub kind: Option<String>,
        pub status: String,
        pub reason: Option<String>,
        pub currency: String,
        pub amount: i64,
        pub subtotal: i64,
        pub total: i64,
        pub total_excluding_tax: Option<i64>,
        pub discount_amount: i64,
        pub pre_payment_amount: i64,
        pub post_payment_amount: i64,
        pub out_of_band_amount: i64,
        pub created_at: u32,
        pub voided_at: Option<u32>,
        pub source_event_id: String,
        pub version: u64,
    }

    "credit_note_lines" => pub struct CreditNoteLineRow {
        /// `<credit note id>/<line id>`.
        pub id: String,
        pub credit_note_id: String,
        pub line_id: String,
        pub invoice_id: Option<String>,
        pub invoice_line_id: Option<String>,
        pub account: Option<String>,
        pub livemode: u8,
        pub currency: String,
        pub amount: i64,
        pub amount_excluding_tax: i64,
        pub tax_amount: i64,
        pub quantity: Option<i64>,
        pub created_at: u32,
        pub source_event_id: String,
        pub version: u64,
    }

    /// Subscription items, one row per validity interval (SCD type 2): each subscription
    /// snapshot opens an interval at its event's `created`, closed by the next snapshot.
    "subscription_items" => pub struct SubscriptionItemRow {
        /// `<subscription id>/<item id>/<snapshot version, hex>`.
        pub id: String,
        pub subscription_id: String,
        pub item_id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub customer_id: Option<String>,
        pub status: String,
        pub price_id: Option<String>,
        pub product_id: Option<String>,
        pub currency: Option<String>,
        pub unit_amount: Option<i64>,
        pub quantity: i64,
        pub interval: Option<String>,
        pub interval_count: i64,
        pub usage_type: Option<String>,
        pub cancel_at_period_end: u8,
        pub cancel_at: Option<u32>,
        pub canceled_at: Option<u32>,
        pub ended_at: Option<u32>,
        pub trial_start: Option<u32>,
        pub trial_end: Option<u32>,
        /// `pause_collection.behavior` while collection is paused.
        pub pause_collection: Option<String>,
        pub cancellation_reason: Option<String>,
        pub discount_ids: String,
        pub current_period_start: Option<u32>,
        pub current_period_end: Option<u32>,
        pub valid_from: u32,
        /// `None` while this is the latest snapshot.
        pub valid_to: Option<u32>,
        pub source_event_id: String,
        pub version: u64,
    }

    "customers" => pub struct CustomerRow {
        pub id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub country: Option<String>,
        pub currency: Option<String>,
        pub balance: Option<i64>,
        pub created_at: Option<u32>,
        pub deleted: u8,
        pub source_event_id: String,
        pub version: u64,
    }

    /// Where a sale came from: checkout sessions (payment links) and quotes.
    "attributions" => pub struct AttributionRow {
        /// `cs_…` or `qt_…`.
        pub id: String,
        /// `checkout_session` or `quote`.
        pub kind: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub customer_id: Option<String>,
        pub subscription_id: Option<String>,
        pub invoice_id: Option<String>,
        pub payment_intent_id: Option<String>,
        pub payment_link_id: Option<String>,
        pub mode: Option<String>,
        pub status: Option<String>,
        pub amount_total: Option<i64>,
        pub currency: Option<String>,
        pub created_at: u32,
        pub source_event_id: String,
        pub version: u64,
    }

    /// The reconciler's own state (links, subscription snapshots, pending orphans), so a
    /// restarted or newly assigned consumer resumes with what earlier batches learned.
    "reconcile_state" => pub struct StateRow {
        pub id: String,
        /// JSON.
        pub value: String,
        pub version: u64,
    }
}

#[cfg(test)]
mod tests {
    use super::TABLES;

    /// `(column, type)` pairs of each `CREATE TABLE` in a DDL file, in order.
    fn ddl_columns(sql: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut out = Vec::new();
        for stmt in sql.split(';') {
            let Some(start) = stmt.find("CREATE TABLE IF NOT EXISTS ") else {
                continue;
            };
            let rest = &stmt[start + "CREATE TABLE IF NOT EXISTS ".len()..];
            let name = rest
                .split(|c: char| c.is_whitespace() || c == '(')
                .next()
                .unwrap()
                .to_owned();
            let open = rest.find('(').unwrap();
            let mut level = 0;
            let close = rest[open..]
                .char_indices()
                .find(|&(_, c)| {
                    level += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    level == 0
                })
                .map(|(i, _)| open + i)
                .unwrap();
            let inner = &rest[open + 1..close];
            let mut cols = Vec::new();
            let mut depth = 0;
            let mut current = String::new();
            for ch in inner.chars().chain(std::iter::once(',')) {
                match ch {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if ch == ',' && depth == 0 {
                    let col = current.trim().to_owned();
                    if !col.is_empty() {
                        let (n, t) = col.split_once(char::is_whitespace).unwrap();
                        cols.push((n.to_owned(), t.trim().to_owned()));
                    }
                    current.clear();
                } else {
                    current.push(ch);
                }
            }
            out.push((name, cols));
        }
        out
    }

    #[test]
    fn clickhouse_and_embedded_ddl_match_the_row_structs_column_for_column() {
        for (file, sql) in [
            ("clickhouse", include_str!("../clickhouse/001_init.sql")),
            ("embedded", include_str!("../embedded/001_init.sql")),
        ] {
            let tables = ddl_columns(sql);
            assert_eq!(tables.len(), TABLES.len(), "{file}: table count");
            for ((name, cols), (table, columns)) in tables.iter().zip(TABLES) {
                assert_eq!(name, table, "{file}: table order");
                let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
                assert_eq!(&names, columns, "{file}: columns of {table}");
            }
        }
    }

    #[test]
    fn clickhouse_types_follow_the_rust_types() {
        // RowBinary is positional: a wrong width would shift every later column.
        let sql = include_str!("../clickhouse/001_init.sql");
        for (table, cols) in ddl_columns(sql) {
            for (name, ty) in cols {
                if name == "version" {
                    assert_eq!(ty, "UInt64", "{table}.{name}");
                }
                if name == "id" {
                    assert_eq!(ty, "String", "{table}.{name}");
                }
                if name.ends_with("_at") && name != "received_at_ms" {
                    assert!(ty.contains("DateTime"), "{table}.{name} is {ty}");
                }
            }
        }
    }
}
