//! Fact rows: what `reconcile` writes to the warehouse, one struct per table, declared
//! once in [`fact_tables!`] below. Everything else that lists the tables follows from that
//! one declaration: [`FactSet`] (a batch of rows per table, its counts and merging),
//! [`TABLES`] (names, columns and Rust types, which the warehouse's DDL test checks every
//! migration against) and the visitors the warehouse adapters write and read through.
//!
//! Every row has a deterministic `id` (so re-processing overwrites instead of adding) and
//! a `version` (the warehouse keeps the row with the highest version per id: ClickHouse
//! `ReplacingMergeTree(version)`, an upsert in the embedded store). Field order is the
//! column order of the DDL (ClickHouse reads rows as RowBinary, by position).
//!
//! Conventions: money is `i64` in the currency's minor unit next to a lowercase
//! `currency`; instants are Unix seconds (`u32`, a `DateTime` in ClickHouse); flags are
//! `u8` 0/1; `account` is the Connect account (`None` for the platform).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What a table holds, which decides when it is written within a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// Derived facts: written first, in any order.
    Fact,
    /// The raw events (`stripe_events`): written after the batch's facts, so an event is
    /// visible only once its facts are.
    RawEvents,
    /// The reconciler's persisted state: written last, so it never runs ahead of the facts
    /// it describes.
    State,
}

/// What every fact row type offers the warehouse adapters.
pub trait FactTable:
    Serialize + DeserializeOwned + Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static
{
    /// The table's name.
    const TABLE: &'static str;
    /// Column names in DDL order (the struct's fields).
    const COLUMNS: &'static [&'static str];
    /// The Rust type of each column, as written in the declaration (`Option<String>`, `i64`).
    const TYPES: &'static [&'static str];
    const KIND: TableKind;
    /// The deterministic fact id.
    fn id(&self) -> &str;
    /// Higher wins.
    fn version(&self) -> u64;
}

/// One table's shape, for code that works from names (SQL builders, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableInfo {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub types: &'static [&'static str],
    pub kind: TableKind,
}

impl TableInfo {
    /// The Rust type of `column`, when the table has it.
    pub fn column_type(&self, column: &str) -> Option<&'static str> {
        self.columns
            .iter()
            .position(|c| *c == column)
            .map(|i| self.types[i])
    }
}

/// The table called `name`, if it is one of revline's ([`TABLES`]).
pub fn table(name: &str) -> Option<&'static TableInfo> {
    TABLES.iter().find(|t| t.name == name)
}

/// Receives each table's rows of a [`FactSet`], typed ([`FactSet::visit`]).
pub trait TableVisitor<'a> {
    fn rows<T: FactTable>(&mut self, rows: &'a [T]);
}

/// Receives each table's row type ([`visit_tables`]), to read or create every table.
pub trait TableTypeVisitor {
    fn table<T: FactTable>(&mut self);
}

macro_rules! fact_tables {
    ($( $(#[$meta:meta])* $field:ident : $table:literal ($kind:ident) => pub struct $name:ident { $( $(#[$fmeta:meta])* pub $col:ident : $ty:ty ),* $(,)? } )*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
            pub struct $name { $( $(#[$fmeta])* pub $col: $ty ),* }

            impl FactTable for $name {
                const TABLE: &'static str = $table;
                const COLUMNS: &'static [&'static str] = &[$(stringify!($col)),*];
                const TYPES: &'static [&'static str] = &[$(stringify!($ty)),*];
                const KIND: TableKind = TableKind::$kind;
                fn id(&self) -> &str {
                    &self.id
                }
                fn version(&self) -> u64 {
                    self.version
                }
            }
        )*

        /// The rows one batch (or one call of the matcher) produced, per table.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct FactSet {
            $( pub $field: Vec<$name>, )*
        }

        impl FactSet {
            /// Rows in all tables but the state.
            pub fn fact_count(&self) -> usize {
                0 $( + if <$name as FactTable>::KIND == TableKind::State { 0 } else { self.$field.len() } )*
            }

            /// Whether no table has a row.
            pub fn is_empty(&self) -> bool {
                true $( && self.$field.is_empty() )*
            }

            /// Appends every row of `other` (taking its tables whole where this set's are
            /// empty, as they are for the first batch of a checkpoint, rather than copying).
            pub fn extend(&mut self, other: FactSet) {
                $(
                    if self.$field.is_empty() {
                        self.$field = other.$field;
                    } else {
                        self.$field.extend(other.$field);
                    }
                )*
            }

            /// Hands each table's rows to `visitor`, in declaration order.
            pub fn visit<'a, V: TableVisitor<'a>>(&'a self, visitor: &mut V) {
                $( visitor.rows::<$name>(&self.$field); )*
            }
        }

        /// Every table, in declaration order.
        pub const TABLES: &[TableInfo] = &[$(
            TableInfo {
                name: $table,
                columns: <$name as FactTable>::COLUMNS,
                types: <$name as FactTable>::TYPES,
                kind: TableKind::$kind,
            }
        ),*];

        /// Hands every table's row type to `visitor`, in declaration order.
        pub fn visit_tables<V: TableTypeVisitor>(visitor: &mut V) {
            $( visitor.table::<$name>(); )*
        }
    };
}

fact_tables! {
    /// Every event as received (audit and `revline replay`).
    events: "stripe_events" (RawEvents) => pub struct EventRow {
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
    dead_letters: "dead_letters" (Fact) => pub struct DeadLetterRow {
        pub id: String,
        pub event_type: Option<String>,
        /// Stable reason code (`not_json`, `null_api_version`, `bad_object`, …).
        pub reason: String,
        pub detail: String,
        pub received_at_ms: i64,
        pub version: u64,
    }

    /// Invoices, latest version.
    invoices: "invoices" (Fact) => pub struct InvoiceRow {
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
    invoice_history: "invoice_history" (Fact) => pub struct InvoiceHistoryRow {
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
    invoice_lines: "invoice_lines" (Fact) => pub struct InvoiceLineRow {
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

    /// Payments: one row per money movement, a charge. Its invoice and subscription come
    /// from the charge, its payment intent or an invoice payment that links them. (The
    /// matcher also keeps pending invoice payments in this shape, with `kind`
    /// `invoice_payment`; those are written to `invoice_payments`, never here.)
    payments: "payments" (Fact) => pub struct PaymentRow {
        /// `ch_…` (an invoice payment's `inpay_…` while pending in the matcher).
        pub id: String,
        /// `charge` in the table (migration 003 moved invoice payments out).
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

    /// Invoice payments (basil and later): links between an invoice and the charge or
    /// payment intent that pays it, never money of their own (the charge is in `payments`).
    invoice_payments: "invoice_payments" (Fact) => pub struct InvoicePaymentRow {
        /// `inpay_…`.
        pub id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub invoice_id: Option<String>,
        pub subscription_id: Option<String>,
        pub customer_id: Option<String>,
        pub payment_intent_id: Option<String>,
        pub charge_id: Option<String>,
        pub amount_requested: i64,
        pub amount_paid: i64,
        pub currency: String,
        pub status: String,
        pub created_at: u32,
        pub paid_at: Option<u32>,
        pub source_event_id: String,
        pub version: u64,
    }

    refunds: "refunds" (Fact) => pub struct RefundRow {
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

    disputes: "disputes" (Fact) => pub struct DisputeRow {
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
    balance_transactions: "balance_transactions" (Fact) => pub struct BalanceTransactionRow {
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

    /// Payouts: money leaving the Stripe balance for the bank, latest version.
    payouts: "payouts" (Fact) => pub struct PayoutRow {
        pub id: String,
        pub account: Option<String>,
        pub livemode: u8,
        /// Positive: sent to the bank.
        pub amount: i64,
        pub currency: String,
        pub arrival_date: Option<u32>,
        /// `pending`, `in_transit`, `paid`, `failed`, `canceled`.
        pub status: String,
        /// `standard` or `instant`.
        pub method: Option<String>,
        /// `bank_account` or `card`.
        pub payout_type: Option<String>,
        pub failure_code: Option<String>,
        /// 1 when sent by Stripe's automatic schedule (only those can be itemised).
        pub automatic: u8,
        /// `not_applicable`, `in_progress`, `completed`.
        pub reconciliation_status: Option<String>,
        /// The payout's own balance transaction.
        pub balance_transaction_id: Option<String>,
        pub created_at: u32,
        pub source_event_id: String,
        pub version: u64,
    }

    /// Which balance transaction went into which payout (from Stripe's list of a payout's
    /// balance transactions); the transactions themselves are in `balance_transactions`.
    payout_items: "payout_items" (Fact) => pub struct PayoutItemRow {
        /// `<payout id>/<balance transaction id>`.
        pub id: String,
        pub payout_id: String,
        pub balance_transaction_id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub source_event_id: String,
        pub version: u64,
    }

    credit_notes: "credit_notes" (Fact) => pub struct CreditNoteRow {
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

    credit_note_lines: "credit_note_lines" (Fact) => pub struct CreditNoteLineRow {
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
    subscription_items: "subscription_items" (Fact) => pub struct SubscriptionItemRow {
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
        /// Exact decimal text of the unit price (sub-cent prices), when the payload has it.
        pub unit_amount_decimal: Option<String>,
        /// `per_unit` or `tiered`.
        pub billing_scheme: Option<String>,
        /// `volume` or `graduated`.
        pub tiers_mode: Option<String>,
        /// The price's tiers when the payload carried them: JSON text
        /// `[{"up_to":10,"unit":"500","flat":null},…]` (decimal texts, `up_to` null last).
        pub tiers: Option<String>,
        /// `transform_quantity.divide_by` and `.round` (`up` / `down`).
        pub transform_divide_by: Option<i64>,
        pub transform_round: Option<String>,
        pub cancel_at_period_end: u8,
        pub cancel_at: Option<u32>,
        pub canceled_at: Option<u32>,
        pub ended_at: Option<u32>,
        pub trial_start: Option<u32>,
        pub trial_end: Option<u32>,
        /// `pause_collection.behavior` while collection is paused.
        pub pause_collection: Option<String>,
        pub cancellation_reason: Option<String>,
        /// The subscription's discount ids, comma-separated, in the order they apply.
        pub discount_ids: String,
        /// The item's own discount ids, comma-separated, in order (absent from state
        /// persisted before migration 002, hence the default).
        #[serde(default)]
        pub item_discount_ids: String,
        pub current_period_start: Option<u32>,
        pub current_period_end: Option<u32>,
        pub valid_from: u32,
        /// `None` while this is the latest snapshot.
        pub valid_to: Option<u32>,
        pub source_event_id: String,
        pub version: u64,
    }

    /// Discounts: a coupon applied to a customer, a subscription, an item or an invoice.
    /// The coupon's terms are copied when the payload carried the coupon; otherwise they
    /// are in `coupons` (join on `coupon_id`).
    discounts: "discounts" (Fact) => pub struct DiscountRow {
        pub id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub coupon_id: Option<String>,
        /// Exact decimal text (`"12.5"`).
        pub percent_off: Option<String>,
        pub amount_off: Option<i64>,
        pub amount_off_currency: Option<String>,
        /// `forever`, `once` or `repeating`.
        pub duration: Option<String>,
        pub duration_in_months: Option<i64>,
        /// Product ids the coupon is limited to, comma-separated; empty: every product.
        pub applies_to_products: String,
        pub customer_id: Option<String>,
        pub subscription_id: Option<String>,
        pub subscription_item_id: Option<String>,
        pub invoice_id: Option<String>,
        pub start_at: Option<u32>,
        pub end_at: Option<u32>,
        /// `created` of the `customer.discount.deleted` event.
        pub deleted_at: Option<u32>,
        pub source_event_id: String,
        pub version: u64,
    }

    /// Coupons, from `coupon.*` events and from discounts that carried them.
    coupons: "coupons" (Fact) => pub struct CouponRow {
        pub id: String,
        pub account: Option<String>,
        pub livemode: u8,
        pub percent_off: Option<String>,
        pub amount_off: Option<i64>,
        pub currency: Option<String>,
        pub duration: Option<String>,
        pub duration_in_months: Option<i64>,
        pub applies_to_products: String,
        /// `created` of the `coupon.deleted` event.
        pub deleted_at: Option<u32>,
        pub source_event_id: String,
        pub version: u64,
    }

    customers: "customers" (Fact) => pub struct CustomerRow {
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
    attributions: "attributions" (Fact) => pub struct AttributionRow {
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

    /// Same-second ties nothing in the payloads decides: two snapshots of one object from the
    /// same second, with the same status and the same growing fields, but different content.
    /// The event-id hash picks one; with `STRIPE_API_KEY` revline fetches the object and
    /// appends it to the log, which settles it.
    ties: "same_second_ties" (Fact) => pub struct TieRow {
        /// `<object type>/<object id>/<created>`.
        pub id: String,
        /// `charge`, `invoice`, `invoice_payment`, `dispute`.
        pub object_type: String,
        pub object_id: String,
        pub account: Option<String>,
        pub livemode: u8,
        /// The second both snapshots are from.
        pub created_at: u32,
        /// The events, comma-separated, in id order.
        pub event_ids: String,
        pub version: u64,
    }

    /// Closed months of the journal (`revline close`), per scope (mode and Connect account).
    ledger_closes: "ledger_closes" (Fact) => pub struct LedgerCloseRow {
        /// `<scope>/<month>`.
        pub id: String,
        /// `live/platform`, `test/acct_…`, `live/all`, …
        pub scope: String,
        /// `YYYY-MM`.
        pub month: String,
        pub closed_at: u32,
        pub version: u64,
    }

    /// The journal lines of a closed month exactly as they were when it was closed, so an
    /// exported month never changes: what later events change is posted in the next open
    /// month.
    ledger_closed_lines: "ledger_closed_lines" (Fact) => pub struct LedgerClosedLineRow {
        /// `<scope>/<month>/<entry id>/<account name>/<currency>`.
        pub id: String,
        pub scope: String,
        pub month: String,
        /// `YYYY-MM-DD`, as printed.
        pub date: String,
        pub entry_id: String,
        /// The account's name (`revenue`), not its code, so codes can be changed later.
        pub ledger_account: String,
        pub currency: String,
        /// Debit positive, credit negative, minor units.
        pub amount: i64,
        pub memo: String,
        pub source_type: String,
        pub source_id: String,
        pub version: u64,
    }

    /// The reconciler's own state (links, subscription snapshots, pending orphans), so a
    /// restarted or newly assigned consumer resumes with what earlier batches learned.
    state: "reconcile_state" (State) => pub struct StateRow {
        pub id: String,
        /// JSON.
        pub value: String,
        pub version: u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_in_the_fact_set_and_the_table_list_once() {
        let mut names = Vec::new();
        struct Names<'n>(&'n mut Vec<&'static str>);
        impl TableTypeVisitor for Names<'_> {
            fn table<T: FactTable>(&mut self) {
                self.0.push(T::TABLE);
            }
        }
        visit_tables(&mut Names(&mut names));
        let listed: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        assert_eq!(names, listed);
        let mut unique = listed.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), listed.len(), "a table is declared twice");
        for t in TABLES {
            assert_eq!(t.columns.first(), Some(&"id"), "{}: id first", t.name);
            assert_eq!(
                t.columns.last(),
                Some(&"version"),
                "{}: version last",
                t.name
            );
            assert_eq!(t.column_type("version"), Some("u64"));
        }
        assert_eq!(table("payments").map(|t| t.kind), Some(TableKind::Fact));
        assert_eq!(
            table("stripe_events").map(|t| t.kind),
            Some(TableKind::RawEvents)
        );
        assert_eq!(
            table("reconcile_state").map(|t| t.kind),
            Some(TableKind::State)
        );
        assert!(table("nope").is_none());
    }

    #[test]
    fn fact_set_counts_and_merges_every_table() {
        let state = StateRow {
            id: "k".into(),
            value: "null".into(),
            version: 1,
        };
        let dead = DeadLetterRow {
            id: "evt_1".into(),
            event_type: None,
            reason: "not_json".into(),
            detail: String::new(),
            received_at_ms: 0,
            version: 1,
        };
        let mut a = FactSet {
            state: vec![state.clone()],
            ..FactSet::default()
        };
        assert!(!a.is_empty());
        assert_eq!(a.fact_count(), 0, "state rows are not facts");
        a.extend(FactSet {
            dead_letters: vec![dead.clone()],
            state: vec![state],
            ..FactSet::default()
        });
        assert_eq!((a.fact_count(), a.state.len()), (1, 2));
        struct Count(usize);
        impl<'a> TableVisitor<'a> for Count {
            fn rows<T: FactTable>(&mut self, rows: &'a [T]) {
                self.0 += rows.len();
            }
        }
        let mut count = Count(0);
        a.visit(&mut count);
        assert_eq!(count.0, 3);
        assert!(FactSet::default().is_empty());
    }
}
