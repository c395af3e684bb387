//! Realistic Stripe events for tests and benchmarks: body builders (basil shape), a
//! generated business [`scenario`], and [`converge`], a model of the warehouse that keeps
//! the highest-version row per id exactly as both adapters do.
//!
//! A development crate (`publish = false`), used by tests and benchmark programs only; the
//! release binary never links it.

use std::collections::BTreeMap;

use schemas::facts::{FactSet, FactTable, TableKind, TableVisitor};
use schemas::{Envelope, LogRecord};
use serde_json::{json, Value};

/// 2026-02-01 00:00:00 UTC.
pub const T0: i64 = 1_769_904_000;

pub const BASIL: &str = "2025-05-28.basil";

/// A log record for an event body, as ingest would store it.
pub fn record(body: Value) -> LogRecord {
    let bytes = serde_json::to_vec(&body).unwrap();
    let env = Envelope::parse(&bytes, None);
    LogRecord::new(bytes, &env, "default", 1_770_000_000_000)
}

pub fn event(
    id: &str,
    event_type: &str,
    created: i64,
    api_version: &str,
    object: Value,
) -> LogRecord {
    record(json!({
        "id": id, "object": "event", "api_version": api_version, "created": created,
        "livemode": true, "pending_webhooks": 1, "type": event_type,
        "request": {"id": null, "idempotency_key": null},
        "data": {"object": object},
    }))
}

/// A basil subscription invoice with one line.
pub fn invoice(
    id: &str,
    customer: &str,
    sub: &str,
    status: &str,
    amount: i64,
    paid: i64,
    period_start: i64,
) -> Value {
    let line = json!({
        "id": format!("il_{id}"), "object": "line_item", "amount": amount, "currency": "usd",
        "quantity": 1, "period": {"start": period_start, "end": period_start + 2_592_000},
        "discount_amounts": [], "pretax_credit_amounts": [], "taxes": [],
        "parent": {"type": "subscription_item_details", "subscription_item_details": {
            "subscription": sub, "subscription_item": format!("si_{sub}"), "proration": false, "invoice_item": null}},
        "pricing": {"type": "price_details", "price_details": {"price": "price_pro", "product": "prod_pro"}, "unit_amount_decimal": amount.to_string()}
    });
    let finalized_at = if status == "draft" {
        Value::Null
    } else {
        json!(period_start + 3600)
    };
    let paid_at = if status == "paid" {
        json!(period_start + 3602)
    } else {
        Value::Null
    };
    json!({
        "id": id, "object": "invoice", "customer": customer, "currency": "usd", "status": status,
        "billing_reason": "subscription_cycle", "collection_method": "charge_automatically",
        "number": format!("N-{id}"), "created": period_start,
        "subtotal": amount, "total": amount, "total_excluding_tax": amount,
        "amount_due": amount, "amount_paid": paid, "amount_remaining": amount - paid,
        "total_discount_amounts": [], "total_taxes": [],
        "period_start": period_start - 2_592_000, "period_end": period_start,
        "status_transitions": {
            "finalized_at": finalized_at, "paid_at": paid_at,
            "voided_at": null, "marked_uncollectible_at": null
        },
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub, "metadata": {}}},
        "lines": {"object": "list", "has_more": false, "data": [line]}
    })
}

/// A basil subscription with one item.
pub fn subscription(
    id: &str,
    customer: &str,
    status: &str,
    quantity: i64,
    unit_amount: i64,
    period_start: i64,
) -> Value {
    json!({
        "id": id, "object": "subscription", "customer": customer, "status": status, "currency": "usd",
        "cancel_at_period_end": false, "canceled_at": null, "ended_at": null, "start_date": 1_767_225_600,
        "items": {"object": "list", "data": [{
            "id": format!("si_{id}"), "object": "subscription_item", "quantity": quantity,
            "current_period_start": period_start, "current_period_end": period_start + 2_592_000,
            "price": {"id": "price_pro", "product": "prod_pro", "unit_amount": unit_amount, "currency": "usd",
                      "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}}
        }]}
    })
}

pub fn charge(
    id: &str,
    pi: &str,
    customer: &str,
    amount: i64,
    refunded: i64,
    created: i64,
) -> Value {
    json!({
        "id": id, "object": "charge", "amount": amount, "amount_captured": amount, "amount_refunded": refunded,
        "currency": "usd", "customer": customer, "payment_intent": pi, "status": "succeeded",
        "captured": true, "paid": true, "refunded": refunded == amount, "disputed": false,
        "balance_transaction": format!("txn_{id}"), "created": created
    })
}

/// `invoice.paid` for `invoice` (2,000 of `customer`'s subscription `sub`) at `t`, then the
/// `invoice_payment.paid` that links payment intent `pi` to it one second later.
pub fn paid_invoice_events(
    invoice_id: &str,
    customer: &str,
    sub: &str,
    pi: &str,
    t: i64,
) -> Vec<LogRecord> {
    vec![
        event(
            &format!("evt_paid_{invoice_id}"),
            "invoice.paid",
            t,
            BASIL,
            invoice(invoice_id, customer, sub, "paid", 2000, 2000, t),
        ),
        event(
            &format!("evt_pay_{invoice_id}"),
            "invoice_payment.paid",
            t + 1,
            BASIL,
            invoice_payment(&format!("inpay_{invoice_id}"), invoice_id, pi, 2000, t + 1),
        ),
    ]
}

pub fn invoice_payment(id: &str, invoice: &str, pi: &str, amount: i64, created: i64) -> Value {
    json!({
        "id": id, "object": "invoice_payment", "invoice": invoice, "amount_requested": amount, "amount_paid": amount,
        "currency": "usd", "is_default": true, "status": "paid", "created": created, "livemode": true,
        "status_transitions": {"paid_at": created, "canceled_at": null},
        "payment": {"type": "payment_intent", "payment_intent": pi}
    })
}

pub fn refund(id: &str, charge: &str, pi: &str, amount: i64, status: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "refund", "amount": amount, "currency": "usd", "charge": charge, "payment_intent": pi,
        "status": status, "reason": "requested_by_customer", "balance_transaction": format!("txn_{id}"), "created": created
    })
}

pub fn dispute(id: &str, charge: &str, amount: i64, status: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "dispute", "amount": amount, "currency": "usd", "charge": charge,
        "reason": "fraudulent", "status": status, "is_charge_refundable": false,
        "balance_transactions": [], "created": created
    })
}

/// Rows per `(table, id)` after keeping the highest version, as JSON, for every table but
/// the state and the same-second ties. Panics if two rows with the same id and version differ: that would make the
/// warehouse order-dependent.
pub fn converge(facts: &FactSet) -> BTreeMap<(String, String), (u64, Value)> {
    struct Converge(BTreeMap<(String, String), (u64, Value)>);
    impl<'a> TableVisitor<'a> for Converge {
        fn rows<T: FactTable>(&mut self, rows: &'a [T]) {
            // Ties are observations of arrival order, not facts: a tie that a newer snapshot
            // supersedes before its twin arrives is never seen, harmlessly.
            if T::KIND == TableKind::State || T::TABLE == "same_second_ties" {
                return;
            }
            for row in rows {
                let key = (T::TABLE.to_owned(), row.id().to_owned());
                let value = serde_json::to_value(row).unwrap();
                match self.0.get(&key) {
                    Some((v, _)) if *v > row.version() => {}
                    Some((v, existing)) if *v == row.version() => {
                        assert_eq!(
                            existing,
                            &value,
                            "same id and version, different content in {}",
                            T::TABLE
                        );
                    }
                    _ => {
                        self.0.insert(key, (row.version(), value));
                    }
                }
            }
        }
    }
    let mut out = Converge(BTreeMap::new());
    facts.visit(&mut out);
    out.0
}

/// The converged row of `table` with `id`.
pub fn row(rows: &BTreeMap<(String, String), (u64, Value)>, table: &str, id: &str) -> Value {
    rows.get(&(table.to_owned(), id.to_owned()))
        .unwrap_or_else(|| panic!("no {table} row {id}"))
        .1
        .clone()
}

/// A small business: customers with subscriptions that change, renewal invoices going
/// draft → open → paid (some in the same second), charges, invoice payments, refunds and
/// disputes, for `customers` customers. Which objects exist and their timings depend on
/// `seed`; event ids are unique within one seed.
pub fn scenario(seed: u64, customers: usize) -> Vec<LogRecord> {
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut out = Vec::new();
    for c in 0..customers {
        let cus = format!("cus_{c}");
        let sub = format!("sub_{c}");
        let snapshots = 1 + next(3);
        for k in 0..snapshots {
            let t = T0 + (k as i64) * 86_400 * next(2) as i64; // sometimes the same second
            let status = if k == 0 { "trialing" } else { "active" };
            out.push(event(
                &format!("evt_s_{c}_{k}"),
                "customer.subscription.updated",
                t,
                BASIL,
                subscription(&sub, &cus, status, 1 + next(3) as i64, 2000, t),
            ));
        }
        for k in 0..(1 + next(2)) {
            let inv = format!("in_{c}_{k}");
            let t = T0 + k as i64 * 2_592_000;
            let pi = format!("pi_{c}_{k}");
            let ch = format!("ch_{c}_{k}");
            out.push(event(
                &format!("evt_id_{c}_{k}"),
                "invoice.created",
                t,
                BASIL,
                invoice(&inv, &cus, &sub, "draft", 2000, 0, t),
            ));
            out.push(event(
                &format!("evt_io_{c}_{k}"),
                "invoice.finalized",
                t + 3600,
                BASIL,
                invoice(&inv, &cus, &sub, "open", 2000, 0, t),
            ));
            let paid_at = t + 3600 + next(2) as i64;
            out.push(event(
                &format!("evt_ip_{c}_{k}"),
                "invoice.paid",
                paid_at,
                BASIL,
                invoice(&inv, &cus, &sub, "paid", 2000, 2000, t),
            ));
            out.push(event(
                &format!("evt_ch_{c}_{k}"),
                "charge.succeeded",
                paid_at,
                BASIL,
                charge(&ch, &pi, &cus, 2000, 0, paid_at),
            ));
            if next(4) > 0 {
                out.push(event(
                    &format!("evt_pay_{c}_{k}"),
                    "invoice_payment.paid",
                    paid_at,
                    BASIL,
                    invoice_payment(&format!("inpay_{c}_{k}"), &inv, &pi, 2000, paid_at),
                ));
            }
            if next(2) == 0 {
                let re = format!("re_{c}_{k}");
                out.push(event(
                    &format!("evt_rc_{c}_{k}"),
                    "refund.created",
                    paid_at + 100,
                    BASIL,
                    refund(&re, &ch, &pi, 500, "pending", paid_at + 100),
                ));
                out.push(event(
                    &format!("evt_ru_{c}_{k}"),
                    "refund.updated",
                    paid_at + 100 + next(2) as i64,
                    BASIL,
                    refund(&re, &ch, &pi, 500, "succeeded", paid_at + 100),
                ));
                out.push(event(
                    &format!("evt_cr_{c}_{k}"),
                    "charge.refunded",
                    paid_at + 100,
                    BASIL,
                    charge(&ch, &pi, &cus, 2000, 500, paid_at),
                ));
            }
            if next(3) == 0 {
                let dp = format!("dp_{c}_{k}");
                out.push(event(
                    &format!("evt_dc_{c}_{k}"),
                    "charge.dispute.created",
                    paid_at + 200,
                    BASIL,
                    dispute(&dp, &ch, 2000, "needs_response", paid_at + 200),
                ));
                out.push(event(
                    &format!("evt_dx_{c}_{k}"),
                    "charge.dispute.closed",
                    paid_at + 900,
                    BASIL,
                    dispute(&dp, &ch, 2000, "won", paid_at + 200),
                ));
            }
        }
    }
    out
}
