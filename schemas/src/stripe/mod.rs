//! Tolerant typed views of the Stripe objects `reconcile` matches, normalised across API
//! generations: up to `2025-02-24.acacia` ("old" paths) and from `2025-03-31.basil` on
//! (basil, clover, dahlia, endive: "new" paths). `docs/stripe-events.md` tells which field
//! moved where; the doc comments below give each field's old and new paths.
//!
//! Decoding rules:
//! - unknown fields and unknown enum values are ignored (enums are kept as strings);
//! - ids may arrive as strings or as expanded objects: both give the id;
//! - amounts are `i64` in the currency's minor unit; currencies are lowercase;
//! - the generation is picked from the event's `api_version` date ([`Generation`]); a
//!   `null` api_version is an error (the event is dead-lettered);
//! - an object missing what its fact needs (an invoice without `id` or `currency`, …) is a
//!   [`DecodeError`], never a panic.

mod decode;
pub mod fetched;

pub use decode::{decode_balance_transaction, decode_event, DecodeError};

/// Which payload shape an event's `data.object` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Generation {
    /// `api_version` before `2025-03-31`: invoice `subscription`, `charge`,
    /// `payment_intent`, `paid`; line `price`/`plan`/`proration`; subscription periods on
    /// the subscription; `charge.invoice`, `payment_intent.invoice`.
    Acacia,
    /// `api_version` from `2025-03-31`: invoice `parent.subscription_details`, line
    /// `parent`/`pricing`/`taxes`, periods on subscription items, `invoice_payment` objects.
    Basil,
}

impl Generation {
    /// `YYYY-MM-DD[.train]` → generation by date; `None` when it is not a date.
    pub fn from_api_version(api_version: &str) -> Option<Generation> {
        let date = api_version.get(..10)?;
        let b = date.as_bytes();
        if b.len() != 10
            || b[4] != b'-'
            || b[7] != b'-'
            || !date
                .bytes()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        {
            return None;
        }
        Some(if date < "2025-03-31" {
            Generation::Acacia
        } else {
            Generation::Basil
        })
    }
}

/// The envelope fields every fact carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub id: String,
    /// e.g. `invoice.paid`.
    pub event_type: String,
    /// Unix seconds.
    pub created: i64,
    pub livemode: bool,
    /// Connect account, when the event came from a connected account.
    pub account: Option<String>,
    /// Always present for snapshot events (a `null` one is a decode error).
    pub api_version: String,
    pub generation: Generation,
}

/// A decoded snapshot event.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEvent {
    pub meta: EventMeta,
    pub object: StripeObject,
}

/// `data.object`, by its `object` field.
#[derive(Debug, Clone, PartialEq)]
pub enum StripeObject {
    Invoice(Invoice),
    Subscription(Subscription),
    Charge(Charge),
    PaymentIntent(PaymentIntent),
    InvoicePayment(InvoicePayment),
    Refund(Refund),
    Dispute(Dispute),
    CreditNote(CreditNote),
    Customer(Customer),
    BalanceTransaction(BalanceTransaction),
    CheckoutSession(CheckoutSession),
    Quote(Quote),
    /// `customer.discount.*` events.
    Discount(Discount),
    /// `coupon.*` events.
    Coupon(Coupon),
    /// `payout.*` events.
    Payout(Payout),
    /// A page of the balance transactions of a payout, fetched by revline
    /// ([`fetched::PAYOUT_ITEMS`]).
    PayoutItems(PayoutItems),
    /// A page of an invoice's lines, fetched by revline ([`fetched::INVOICE_LINES`]).
    InvoiceLines(InvoiceLinesPage),
    /// Any other object type (`invoiceitem`, `balance`, `transfer`, …): kept in the raw
    /// events table, no facts.
    Other {
        object: String,
        id: Option<String>,
    },
}

/// Where an invoice line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineSource {
    /// A subscription item (`type: subscription` / `parent.type: subscription_item_details`).
    Subscription,
    /// An invoice item (`type: invoiceitem` / `parent.type: invoice_item_details`).
    InvoiceItem,
    Other,
}

/// How far along an invoice status is, for ordering two versions of one invoice from the
/// same second (the matcher) or at the same instant (as-of reports): a further-along
/// status wins. `deleted` is the matcher's name for `invoice.deleted`.
pub fn invoice_status_rank(status: &str) -> u8 {
    match status {
        "draft" => 0,
        "open" => 1,
        "uncollectible" => 2,
        "paid" | "void" => 3,
        "deleted" => 4,
        _ => 0,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    pub id: String,
    pub number: Option<String>,
    pub customer: Option<String>,
    /// old: `subscription`; new: `parent.subscription_details.subscription`.
    pub subscription: Option<String>,
    /// `draft`, `open`, `paid`, `void`, `uncollectible` (kept as sent).
    pub status: Option<String>,
    pub billing_reason: Option<String>,
    pub collection_method: Option<String>,
    pub currency: String,
    pub subtotal: i64,
    pub total: i64,
    /// `total_excluding_tax`, else `total - total_tax`.
    pub total_excluding_tax: i64,
    /// Σ `total_discount_amounts[].amount`.
    pub total_discount: i64,
    /// old: `tax` (or Σ `total_tax_amounts[].amount`); new: Σ `total_taxes[].amount`.
    pub total_tax: i64,
    pub amount_due: i64,
    pub amount_paid: i64,
    /// Payment attempts so far (only grows).
    pub attempt_count: i64,
    pub amount_remaining: i64,
    /// new only (`amount_overpaid`); 0 otherwise.
    pub amount_overpaid: i64,
    pub starting_balance: i64,
    pub ending_balance: Option<i64>,
    pub pre_payment_credit_notes_amount: i64,
    pub post_payment_credit_notes_amount: i64,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub created: i64,
    pub due_date: Option<i64>,
    /// `status_transitions.*`.
    pub finalized_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub voided_at: Option<i64>,
    pub marked_uncollectible_at: Option<i64>,
    /// old only: the charge / payment intent that paid it.
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    /// old: `paid_out_of_band`; new: always false (out-of-band money is in `amount_paid`).
    pub paid_out_of_band: bool,
    /// old: `quote`; new: `parent.quote_details.quote`.
    pub quote: Option<String>,
    pub lines: Vec<InvoiceLine>,
    /// `lines.has_more`: the event carries only the first page of lines.
    pub lines_has_more: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceLine {
    pub id: String,
    pub currency: String,
    /// `amount`: before discounts, may include inclusive tax.
    pub amount: i64,
    /// old only: `amount_excluding_tax`.
    pub amount_excluding_tax: Option<i64>,
    pub quantity: Option<i64>,
    /// `period.start` / `period.end`.
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    /// old: `proration`; new: `parent.<details>.proration`.
    pub proration: bool,
    /// old: `price.id`; new: `pricing.price_details.price` (string or expanded).
    pub price_id: Option<String>,
    /// old: `price.product`; new: `pricing.price_details.product`.
    pub product_id: Option<String>,
    /// old: `price.unit_amount`; new: `pricing.unit_amount_decimal` when it is a whole number.
    pub unit_amount: Option<i64>,
    pub source: LineSource,
    /// old: `subscription`; new: `parent.subscription_item_details.subscription` or
    /// `parent.invoice_item_details.subscription`.
    pub subscription: Option<String>,
    /// old: `subscription_item`; new: `parent.subscription_item_details.subscription_item`.
    pub subscription_item: Option<String>,
    /// old: `invoice_item`; new: `parent.<details>.invoice_item`.
    pub invoice_item: Option<String>,
    /// Σ `discount_amounts[].amount`.
    pub discount_amount: i64,
    /// Σ `pretax_credit_amounts[].amount` where `type == "credit_balance_transaction"`.
    pub pretax_credit_amount: i64,
    /// old: Σ `tax_amounts[].amount` where `inclusive`; new: Σ `taxes[].amount` where
    /// `tax_behavior == "inclusive"`.
    pub inclusive_tax_amount: i64,
    /// The same sums for exclusive tax.
    pub exclusive_tax_amount: i64,
}

impl InvoiceLine {
    /// Revenue to recognise for this line, excluding tax (a liability, never revenue) and net
    /// of discounts and of pretax credits from the customer's credit balance: new generation
    /// `amount − discounts − pretax credits − inclusive tax`; old generation
    /// `amount_excluding_tax − discounts − pretax credits` (falling back to
    /// `amount − inclusive tax` when `amount_excluding_tax` is absent).
    pub fn recognizable_amount(&self) -> i64 {
        let base = match self.amount_excluding_tax {
            Some(excl) => excl,
            None => self.amount.saturating_sub(self.inclusive_tax_amount),
        };
        base.saturating_sub(self.discount_amount)
            .saturating_sub(self.pretax_credit_amount)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub customer: Option<String>,
    /// `incomplete`, `incomplete_expired`, `trialing`, `active`, `past_due`, `canceled`,
    /// `unpaid`, `paused`.
    pub status: String,
    pub currency: Option<String>,
    pub items: Vec<SubscriptionItem>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    /// `pause_collection.behavior` when collection is paused.
    pub pause_collection: Option<String>,
    pub start_date: Option<i64>,
    pub created: Option<i64>,
    pub latest_invoice: Option<String>,
    /// `cancellation_details.reason`.
    pub cancellation_reason: Option<String>,
    /// Discount ids in the order they apply: `discounts[]`, plus the old single
    /// `discount`, without repeats.
    pub discounts: Vec<String>,
    /// The discounts the payload carries as objects (the old inline `discount`, expanded
    /// entries of `discounts[]`, the items' ones).
    pub discount_objects: Vec<Discount>,
}

/// A coupon: what a discount takes off, for how long, on which products.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub id: String,
    /// `percent_off` as exact decimal text (`"12.5"`): JSON numbers are read back as the
    /// shortest text that round-trips, which is what Stripe wrote (two decimals at most).
    pub percent_off: Option<String>,
    /// `amount_off` in `currency`'s minor unit.
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    /// `forever`, `once` or `repeating`.
    pub duration: Option<String>,
    pub duration_in_months: Option<i64>,
    /// `applies_to.products`; empty: every product.
    pub applies_to_products: Vec<String>,
    /// `deleted: true` (a `coupon.deleted` payload).
    pub deleted: bool,
}

/// A discount: a coupon applied to a customer, a subscription, an item or an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discount {
    pub id: String,
    /// `coupon` (older versions) or `source.coupon` (2025-09-30.clover and later), an id
    /// or an object.
    pub coupon_id: Option<String>,
    /// The coupon's terms when the payload carries the coupon as an object.
    pub coupon: Option<Coupon>,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub subscription_item: Option<String>,
    pub invoice: Option<String>,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionItem {
    pub id: String,
    /// `price.id` (or `plan.id` when there is no price).
    pub price_id: Option<String>,
    /// `price.product` (string or expanded).
    pub product_id: Option<String>,
    /// `price.unit_amount`.
    pub unit_amount: Option<i64>,
    pub currency: Option<String>,
    /// Defaults to 1.
    pub quantity: i64,
    /// `price.recurring.interval`: `day`, `week`, `month`, `year`.
    pub interval: Option<String>,
    /// `price.recurring.interval_count`, default 1.
    pub interval_count: i64,
    /// `price.recurring.usage_type`: `licensed` or `metered`.
    pub usage_type: Option<String>,
    /// `price.unit_amount_decimal`: exact decimal text, for sub-cent prices.
    pub unit_amount_decimal: Option<String>,
    /// `price.billing_scheme`: `per_unit` or `tiered`.
    pub billing_scheme: Option<String>,
    /// `price.tiers_mode`: `volume` or `graduated`.
    pub tiers_mode: Option<String>,
    /// `price.tiers` when expanded, as canonical JSON text:
    /// `[{"up_to":10,"unit":"5","flat":null},…,{"up_to":null,…}]` (decimal texts).
    pub tiers: Option<String>,
    /// `price.transform_quantity.divide_by` and `.round` (`up` or `down`).
    pub transform_divide_by: Option<i64>,
    pub transform_round: Option<String>,
    /// The item's own `discounts[]` ids, in order.
    pub discounts: Vec<String>,
    /// new: the item's own `current_period_*`; old: the subscription's.
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    pub id: String,
    pub amount: i64,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub currency: String,
    pub customer: Option<String>,
    pub payment_intent: Option<String>,
    /// old only.
    pub invoice: Option<String>,
    /// `succeeded`, `pending`, `failed`.
    pub status: String,
    pub captured: bool,
    pub paid: bool,
    pub refunded: bool,
    pub disputed: bool,
    pub failure_code: Option<String>,
    pub balance_transaction: Option<String>,
    /// The balance transaction when it arrived expanded.
    pub balance_transaction_object: Option<BalanceTransaction>,
    pub created: i64,
    /// Before 2022-11-15: `refunds.data[]` inside the charge.
    pub refunds: Vec<Refund>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaymentIntent {
    pub id: String,
    pub amount: i64,
    pub amount_received: i64,
    pub currency: String,
    pub customer: Option<String>,
    pub status: String,
    pub latest_charge: Option<String>,
    /// old only.
    pub invoice: Option<String>,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InvoicePayment {
    /// `inpay_…`
    pub id: String,
    pub invoice: String,
    pub amount_requested: i64,
    pub amount_paid: Option<i64>,
    pub currency: String,
    pub is_default: bool,
    /// `open`, `paid`, `canceled`.
    pub status: String,
    pub paid_at: Option<i64>,
    pub canceled_at: Option<i64>,
    /// `payment.type`: `payment_intent`, `charge`, `payment_record`.
    pub payment_type: Option<String>,
    pub payment_intent: Option<String>,
    pub charge: Option<String>,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    /// dahlia (`2026-07-29`) and later only.
    pub customer: Option<String>,
    /// `pending`, `requires_action`, `succeeded`, `failed`, `canceled`.
    pub status: String,
    pub reason: Option<String>,
    pub failure_reason: Option<String>,
    pub balance_transaction: Option<String>,
    pub failure_balance_transaction: Option<String>,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dispute {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    pub reason: Option<String>,
    /// `warning_needs_response`, `warning_under_review`, `warning_closed`,
    /// `needs_response`, `under_review`, `won`, `lost`, `prevented`.
    pub status: String,
    pub is_charge_refundable: bool,
    /// `balance_transactions[]` (expanded objects in the payload).
    pub balance_transactions: Vec<BalanceTransaction>,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreditNote {
    pub id: String,
    pub number: Option<String>,
    pub invoice: Option<String>,
    pub customer: Option<String>,
    pub currency: String,
    /// Including tax.
    pub amount: i64,
    pub subtotal: i64,
    pub total: i64,
    pub total_excluding_tax: Option<i64>,
    /// Σ `discount_amounts[].amount`.
    pub discount_amount: i64,
    pub pre_payment_amount: i64,
    pub post_payment_amount: i64,
    pub out_of_band_amount: i64,
    /// `issued`, `void`.
    pub status: String,
    /// `pre_payment`, `post_payment`, `mixed`.
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub created: i64,
    pub voided_at: Option<i64>,
    pub lines: Vec<CreditNoteLine>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreditNoteLine {
    pub id: String,
    /// Including tax.
    pub amount: i64,
    /// `amount_excluding_tax` when present, else `amount − inclusive tax` (a credit-note
    /// line's `amount` already excludes exclusive tax).
    pub amount_excluding_tax: i64,
    pub quantity: Option<i64>,
    pub invoice_line_item: Option<String>,
    /// old: Σ `tax_amounts`; new: Σ `taxes`.
    pub tax_amount: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: String,
    /// `address.country`, else `shipping.address.country`.
    pub country: Option<String>,
    pub currency: Option<String>,
    pub created: Option<i64>,
    /// A `customer.deleted` object (`deleted: true`).
    pub deleted: bool,
    pub balance: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BalanceTransaction {
    pub id: String,
    /// Gross, signed.
    pub amount: i64,
    pub fee: i64,
    pub net: i64,
    /// Settlement currency.
    pub currency: String,
    /// The JSON number as written (exact decimal text), e.g. `"1.234"`.
    pub exchange_rate: Option<String>,
    pub kind: String,
    pub reporting_category: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    pub created: i64,
    pub available_on: Option<i64>,
}

/// A payout: money leaving the Stripe balance for the bank (or a debit card).
#[derive(Debug, Clone, PartialEq)]
pub struct Payout {
    pub id: String,
    /// Positive for money sent to the bank (Stripe's sign).
    pub amount: i64,
    pub currency: String,
    /// Expected arrival at the bank (Unix seconds, a midnight UTC).
    pub arrival_date: Option<i64>,
    /// `pending`, `in_transit`, `paid`, `failed` or `canceled`.
    pub status: String,
    /// `standard` or `instant`.
    pub method: Option<String>,
    /// `bank_account` or `card`.
    pub kind: Option<String>,
    pub failure_code: Option<String>,
    /// Sent by Stripe's automatic schedule (only those can be itemised by the API).
    pub automatic: bool,
    /// `not_applicable`, `in_progress` or `completed`.
    pub reconciliation_status: Option<String>,
    /// The payout's own balance transaction (the debit of the balance).
    pub balance_transaction: Option<String>,
    pub failure_balance_transaction: Option<String>,
    pub created: i64,
}

/// Lines of an invoice fetched from the API (one page), with the invoice they belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceLinesPage {
    pub invoice: fetched::InvoiceContext,
    pub lines: Vec<InvoiceLine>,
}

/// Balance transactions Stripe lists for a payout (one page).
#[derive(Debug, Clone, PartialEq)]
pub struct PayoutItems {
    pub payout: String,
    pub transactions: Vec<BalanceTransaction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckoutSession {
    pub id: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub invoice: Option<String>,
    pub payment_intent: Option<String>,
    pub payment_link: Option<String>,
    /// `payment`, `subscription`, `setup`.
    pub mode: Option<String>,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    pub status: Option<String>,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub id: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub invoice: Option<String>,
    pub status: Option<String>,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    pub created: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_follows_the_api_version_date() {
        assert_eq!(
            Generation::from_api_version("2025-02-24.acacia"),
            Some(Generation::Acacia)
        );
        assert_eq!(
            Generation::from_api_version("2024-06-20"),
            Some(Generation::Acacia)
        );
        assert_eq!(
            Generation::from_api_version("2025-03-31.basil"),
            Some(Generation::Basil)
        );
        assert_eq!(
            Generation::from_api_version("2026-09-30.endive"),
            Some(Generation::Basil)
        );
        assert_eq!(Generation::from_api_version("nonsense"), None);
    }
}
