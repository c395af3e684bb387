//! Hand-built Stripe event histories for the report tests: basil event envelopes with
//! readable timestamps, posting them, and a deterministic shuffled, duplicated delivery.

use std::time::Duration;

use reports::calendar::parse_utc;
use serde_json::{json, Value};

use crate::clickhouse::{url as clickhouse_url, TestDb};
use crate::{wait_until_async, Options, Revline};

pub const BASIL: &str = "2025-05-28.basil";

/// `YYYY-MM-DDTHH:MM:SSZ` as Unix seconds.
pub fn t(text: &str) -> i64 {
    parse_utc(text).unwrap_or_else(|| panic!("not an instant: {text}"))
}

/// A live-mode basil event of `object`, created at `created`.
pub fn event(id: &str, event_type: &str, created: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "object": "event", "api_version": BASIL, "created": t(created),
        "livemode": true, "pending_webhooks": 1, "type": event_type,
        "request": {"id": null, "idempotency_key": null},
        "data": {"object": object},
    }))
    .expect("JSON serialises")
}

/// Posts every body, signed, and expects 200 for each.
pub async fn post_all(app: &Revline, bodies: &[Vec<u8>]) {
    for body in bodies {
        let resp = app.post_signed(body).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
}

/// A deterministic shuffle with every event twice and a few three times.
pub fn shuffled_with_duplicates(bodies: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = bodies.iter().chain(bodies).cloned().collect();
    out.extend(bodies.iter().step_by(4).cloned());
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..out.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    out
}

/// A server whose reports are as of `now` (`REVLINE_REPORT_NOW`), reconciling in small
/// batches, with `extra` environment.
pub fn reporting(now: &str, extra: &[(&str, &str)]) -> Options {
    let mut opts = Options::default()
        .env("REVLINE_REPORT_NOW", now)
        .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "50");
    for (k, v) in extra {
        opts = opts.env(k, *v);
    }
    opts
}

/// A report over the admin listener, as text, with its status.
pub async fn report(app: &Revline, path_and_query: &str) -> (u16, String) {
    let resp = app.admin_get(path_and_query).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("a body"))
}

/// Waits (up to a minute) until the report at `path` reads `expected`, and fails with the
/// last answer otherwise.
pub async fn wait_for_report(app: &Revline, path: &str, expected: &str) {
    let reached = wait_until_async(Duration::from_secs(60), || async {
        report(app, path).await.1 == expected
    })
    .await;
    let (_, last) = report(app, path).await;
    assert!(
        reached,
        "{path} never reached the expected figures; last:\n{last}"
    );
}

/// One history delivered twice: in order to a server on the embedded warehouse, shuffled
/// and duplicated to a server on ClickHouse (a database of its own, kept alive by the
/// returned guard). Both servers' reports are as of `now`.
pub async fn on_both_warehouses(now: &str, history: &[Vec<u8>]) -> (Revline, Revline, TestDb) {
    let embedded = Revline::start(reporting(now, &[])).await;
    post_all(&embedded, history).await;
    let db = TestDb::new(&clickhouse_url().await);
    let clickhouse = Revline::start(reporting(
        now,
        &[
            ("REVLINE_CLICKHOUSE_URL", db.url.as_str()),
            ("REVLINE_CLICKHOUSE_DATABASE", db.name.as_str()),
        ],
    ))
    .await;
    post_all(&clickhouse, &shuffled_with_duplicates(history)).await;
    (embedded, clickhouse, db)
}

/// A paid basil invoice of `amount` (usd minor units) for `customer`, finalized and paid on
/// 1 March 2026, as an `invoice.paid` event.
pub fn paid_invoice_event(id: &str, customer: &str, amount: i64) -> Vec<u8> {
    let at = t("2026-03-01T00:00:00Z");
    event(
        &format!("evt_{id}"),
        "invoice.paid",
        "2026-03-01T00:00:00Z",
        json!({
            "id": id, "object": "invoice", "customer": customer, "currency": "usd",
            "status": "paid", "billing_reason": "manual", "collection_method": "charge_automatically",
            "number": format!("N-{id}"), "created": at, "subtotal": amount, "total": amount,
            "total_excluding_tax": amount, "amount_due": amount, "amount_paid": amount,
            "amount_remaining": 0, "total_discount_amounts": [], "total_taxes": [],
            "status_transitions": {"finalized_at": at, "paid_at": at,
                                   "voided_at": null, "marked_uncollectible_at": null},
            "lines": {"object": "list", "has_more": false, "data": []}
        }),
    )
}

/// The `invoices` report's CSV (header and one row) for [`paid_invoice_event`] of the
/// same id, customer and amount.
pub fn paid_invoice_register(id: &str, customer: &str, amount: i64) -> String {
    let money = format!("{}.{:02}", amount / 100, amount % 100);
    let at = "2026-03-01T00:00:00Z";
    format!(
        "{INVOICES_HEADER}\n{id},N-{id},{customer},,paid,usd,{money},0.00,0.00,{money},{money},0.00,{at},{at},,{at},\n"
    )
}

/// The header of the `invoices` report's CSV.
pub const INVOICES_HEADER: &str = "invoice_id,number,customer_id,subscription_id,status,currency,subtotal,discounts,tax,total,amount_paid,amount_remaining,created_utc,finalized_utc,due_utc,paid_utc,voided_utc";

/// Stripe API objects recorded for the enrichment tests
/// (`fixtures/stripe-events/api_object__balance_transactions.json`: `charge_bt`,
/// `refund_bt`).
pub fn recorded_balance_transactions() -> Value {
    serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/stripe-events/api_object__balance_transactions.json"
        ))
        .expect("the recorded balance transactions"),
    )
    .expect("recorded balance transactions are JSON")
}
