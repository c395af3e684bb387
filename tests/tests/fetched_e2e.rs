//! Lists fetched from Stripe's API into the event log, end to end, against a local test
//! double of the API:
//! - payouts: payout webhooks reconciled, the balance transactions of a reconciled automatic
//!   payout fetched (three pages), appended to the event log and reconciled like events, and
//!   the `payouts` report worked out by hand, on the embedded warehouse and on ClickHouse
//!   (fed shuffled and duplicated);
//! - invoice lines: an invoice whose webhook carried only its first line
//!   (`lines.has_more`) gets the others from the API, and its revenue is recognised whole;
//! - same-second ties: two snapshots of a charge from one second that nothing orders are
//!   recorded and counted, and the charge fetched again settles them.
//!
//! Each time a replay without the API rebuilds the rows from the log alone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use e2e::clickhouse::{http as clickhouse_http, url as clickhouse_url, TestDb};
use e2e::stripe::{event, post_all, shuffled_with_duplicates, t};
use e2e::{run_to_exit, wait_until_async, Options, Revline};
use serde_json::{json, Value};
use warehouse::Warehouse;

const KEY: &str = "sk_test_payouts_0123456789";
const NOW: &str = "2026-04-15T00:00:00Z";

fn bt(id: &str, kind: &str, category: &str, amount: i64, fee: i64, source: Value) -> Value {
    json!({
        "id": id, "object": "balance_transaction", "amount": amount, "fee": fee,
        "net": amount - fee, "currency": "usd", "exchange_rate": null, "type": kind,
        "reporting_category": category, "source": source, "status": "available",
        "created": t("2026-02-27T00:00:00Z"), "available_on": t("2026-03-01T00:00:00Z")
    })
}

/// The balance transactions of po_auto: a 100.00 charge (3.20 fee), a 20.00 refund, a
/// Stripe fee of 1.50, a lost dispute's 30.00 withdrawal with its 15.00 fee, and the
/// payout's own debit of 30.30.
fn po_auto_items() -> Vec<Value> {
    vec![
        bt("txn_ch_1", "charge", "charge", 10000, 320, json!("ch_1")),
        bt("txn_re_1", "refund", "refund", -2000, 0, json!("re_1")),
        bt("txn_fee_1", "stripe_fee", "fee", -150, 0, Value::Null),
        bt(
            "txn_dp_1",
            "adjustment",
            "dispute",
            -3000,
            1500,
            json!("dp_1"),
        ),
        bt(
            "txn_po_auto",
            "payout",
            "payout",
            -3030,
            0,
            json!("po_auto"),
        ),
    ]
}

/// What the double answered: (path and query, status).
type Seen = Arc<Mutex<Vec<(String, u16)>>>;

/// `GET /v1/balance_transactions?payout=…` in pages of two, `GET /v1/balance_transactions/{id}`.
async fn list(req: HttpRequest, seen: web::Data<Seen>) -> HttpResponse {
    let query: Vec<(String, String)> =
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let authorized = req
        .headers()
        .get("authorization")
        .is_some_and(|v| v == format!("Bearer {KEY}").as_str());
    let (status, body) = if !authorized {
        (401, json!({"error": {"type": "invalid_request_error"}}))
    } else if get("payout").as_deref() == Some("po_auto") {
        let items = po_auto_items();
        let start = match get("starting_after") {
            Some(after) => {
                items
                    .iter()
                    .position(|b| b["id"] == after.as_str())
                    .unwrap()
                    + 1
            }
            None => 0,
        };
        let page: Vec<Value> = items.iter().skip(start).take(2).cloned().collect();
        let has_more = start + page.len() < items.len();
        (
            200,
            json!({"object": "list", "url": "/v1/balance_transactions", "has_more": has_more, "data": page}),
        )
    } else {
        (404, json!({"error": {"type": "invalid_request_error"}}))
    };
    seen.lock()
        .unwrap()
        .push((format!("{}?{}", req.path(), req.query_string()), status));
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(body)
}

/// `GET /v1/charges/{id}`: ch_tie as it is now (customer cus_b); only with the fixed API
/// version revline decodes fetched objects with.
async fn charge_now(
    req: HttpRequest,
    id: web::Path<String>,
    seen: web::Data<Seen>,
) -> HttpResponse {
    let versioned = req
        .headers()
        .get("stripe-version")
        .is_some_and(|v| v == schemas::stripe::fetched::FETCH_API_VERSION);
    let status = if id.as_str() == "ch_tie" && versioned {
        200
    } else {
        404
    };
    seen.lock().unwrap().push((req.path().to_owned(), status));
    if status == 200 {
        HttpResponse::Ok().json(tie_charge("cus_b"))
    } else {
        HttpResponse::NotFound().json(json!({"error": {"type": "invalid_request_error"}}))
    }
}

fn tie_charge(customer: &str) -> Value {
    json!({
        "id": "ch_tie", "object": "charge", "amount": 5000, "amount_captured": 5000,
        "amount_refunded": 0, "currency": "usd", "customer": customer, "payment_intent": "pi_tie",
        "status": "succeeded", "captured": true, "paid": true, "refunded": false, "disputed": false,
        "balance_transaction": null, "created": t("2026-03-01T00:00:00Z")
    })
}

async fn one(req: HttpRequest, id: web::Path<String>, seen: web::Data<Seen>) -> HttpResponse {
    let found = po_auto_items().into_iter().find(|b| b["id"] == id.as_str());
    let status = if found.is_some() { 200 } else { 404 };
    seen.lock().unwrap().push((req.path().to_owned(), status));
    match found {
        Some(bt) => HttpResponse::Ok().json(bt),
        None => HttpResponse::NotFound().json(json!({"error": {"type": "invalid_request_error"}})),
    }
}

/// The lines of in_big: il_1 (in the webhook too), il_2 and il_3, in pages of two.
fn big_lines() -> Vec<Value> {
    let line = |id: &str, amount: i64, start: &str, end: &str| {
        json!({
            "id": id, "object": "line_item", "amount": amount, "currency": "usd",
            "period": {"start": t(start), "end": t(end)}, "discount_amounts": [],
            "pretax_credit_amounts": [], "taxes": [],
            "parent": {"type": "invoice_item_details", "invoice_item_details": {"invoice_item": format!("ii_{id}")}},
            "pricing": {"type": "price_details", "price_details": {"price": "price_1", "product": "prod_1"}}
        })
    };
    vec![
        line("il_1", 1000, "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z"),
        line("il_2", 3100, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"),
        line("il_3", 2000, "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z"),
    ]
}

/// `GET /v1/invoices/{id}/lines`, in pages of two.
async fn lines(req: HttpRequest, id: web::Path<String>, seen: web::Data<Seen>) -> HttpResponse {
    let after = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == "starting_after")
        .map(|(_, v)| v);
    let (status, body) = if id.as_str() != "in_big" {
        (404, json!({"error": {"type": "invalid_request_error"}}))
    } else {
        let all = big_lines();
        let start = after.map_or(0, |a| {
            all.iter().position(|l| l["id"] == a.as_str()).unwrap() + 1
        });
        let page: Vec<Value> = all.iter().skip(start).take(2).cloned().collect();
        let has_more = start + page.len() < all.len();
        (
            200,
            json!({"object": "list", "url": "/v1/invoices/in_big/lines", "has_more": has_more, "data": page}),
        )
    };
    seen.lock()
        .unwrap()
        .push((format!("{}?{}", req.path(), req.query_string()), status));
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(body)
}

fn start_double() -> (String, Seen, actix_web::dev::ServerHandle) {
    let seen: Seen = Arc::default();
    let data = web::Data::new(seen.clone());
    let (url, handle) = e2e::http_double(move |cfg| {
        cfg.app_data(data.clone())
            .route("/v1/balance_transactions", web::get().to(list))
            .route("/v1/balance_transactions/{id}", web::get().to(one))
            .route("/v1/invoices/{id}/lines", web::get().to(lines))
            .route("/v1/charges/{id}", web::get().to(charge_now));
    });
    (url, seen, handle)
}

#[allow(clippy::too_many_arguments)]
fn payout(
    id: &str,
    amount: i64,
    arrival: &str,
    status: &str,
    automatic: bool,
    reconciliation: &str,
) -> Value {
    json!({
        "id": id, "object": "payout", "amount": amount, "currency": "usd",
        "arrival_date": t(arrival), "status": status, "method": "standard", "type": "bank_account",
        "failure_code": null, "automatic": automatic, "reconciliation_status": reconciliation,
        "balance_transaction": format!("txn_{id}"), "created": t("2026-02-28T00:00:00Z")
    })
}

fn history() -> Vec<Vec<u8>> {
    let march2 = "2026-03-02T00:00:00Z";
    vec![
        event(
            "evt_ch_1",
            "charge.succeeded",
            "2026-02-27T00:00:00Z",
            json!({
                "id": "ch_1", "object": "charge", "amount": 10000, "amount_captured": 10000,
                "amount_refunded": 0, "currency": "usd", "customer": "cus_9", "payment_intent": "pi_1",
                "status": "succeeded", "captured": true, "paid": true, "refunded": false,
                "disputed": false, "balance_transaction": "txn_ch_1", "created": t("2026-02-27T00:00:00Z")
            }),
        ),
        event(
            "evt_re_1",
            "refund.created",
            "2026-02-27T12:00:00Z",
            json!({
                "id": "re_1", "object": "refund", "amount": 2000, "currency": "usd", "charge": "ch_1",
                "payment_intent": "pi_1", "status": "succeeded", "reason": "requested_by_customer",
                "balance_transaction": "txn_re_1", "created": t("2026-02-27T12:00:00Z")
            }),
        ),
        event(
            "evt_po_1",
            "payout.paid",
            march2,
            payout("po_auto", 3030, march2, "paid", true, "in_progress"),
        ),
        event(
            "evt_po_2",
            "payout.reconciliation_completed",
            "2026-03-03T00:00:00Z",
            payout("po_auto", 3030, march2, "paid", true, "completed"),
        ),
        event(
            "evt_po_3",
            "payout.paid",
            "2026-03-05T00:00:00Z",
            payout(
                "po_manual",
                5000,
                "2026-03-05T00:00:00Z",
                "paid",
                false,
                "not_applicable",
            ),
        ),
        event(
            "evt_po_4",
            "payout.updated",
            "2026-04-13T00:00:00Z",
            payout(
                "po_pending",
                1000,
                "2026-04-14T00:00:00Z",
                "in_transit",
                true,
                "in_progress",
            ),
        ),
    ]
}

/// po_auto: 100.00 − 20.00 − 30.00 − (3.20 + 15.00 + 1.50) = 30.30, all itemised; po_manual
/// cannot be itemised (manual); po_pending is not reconciled by Stripe yet.
const EXPECTED: &str = "\
payout_id,arrival_utc,currency,amount,charges_gross,refunds,disputes,fees,other,missing,status,reconciled
po_auto,2026-03-02T00:00:00Z,usd,30.30,100.00,-20.00,-30.00,-19.70,0.00,0.00,paid,true
po_manual,2026-03-05T00:00:00Z,usd,50.00,0.00,0.00,0.00,0.00,0.00,50.00,paid,false
po_pending,2026-04-14T00:00:00Z,usd,10.00,0.00,0.00,0.00,0.00,0.00,10.00,in_transit,false
";

/// The items, the payout's own debit left out; the refund reaches cus_9 through its charge,
/// the dispute (no webhook here) names no customer.
const EXPECTED_DETAIL: &str = "\
payout_id,balance_transaction_id,currency,type,source_id,invoice_id,customer_id,gross,fee,net
po_auto,txn_ch_1,usd,charge,ch_1,,cus_9,100.00,3.20,96.80
po_auto,txn_dp_1,usd,adjustment,dp_1,,,-30.00,15.00,-45.00
po_auto,txn_fee_1,usd,stripe_fee,,,,-1.50,0.00,-1.50
po_auto,txn_re_1,usd,refund,re_1,,cus_9,-20.00,0.00,-20.00
";

/// A server that only reads the reports of the ClickHouse database in `ch_env`.
fn reports_on(ch_env: &[(&str, String)]) -> Options {
    let mut opts = Options::default().env("REVLINE_REPORT_NOW", NOW);
    for (k, v) in ch_env {
        opts = opts.env(k, v.clone());
    }
    opts
}

fn serve(base: &str, extra: &[(&str, String)]) -> Options {
    let mut opts = Options::default()
        .env("STRIPE_API_KEY", KEY)
        .env("REVLINE_STRIPE_API_BASE", base)
        .env("REVLINE_ENRICH_INTERVAL_SECS", "1")
        .env("REVLINE_REPORT_NOW", NOW)
        .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "50");
    for (k, v) in extra {
        opts = opts.env(k, v.clone());
    }
    opts
}

async fn report(app: &Revline, path: &str) -> (u16, String, Vec<String>) {
    let resp = app.admin_get(path).await;
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("revline-warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    (status, resp.text().await.unwrap(), warnings)
}

#[tokio::test]
async fn a_reconciled_payout_is_itemised_from_the_api_through_the_log() {
    let (base, seen, double) = start_double();
    let embedded = Revline::start(serve(&base, &[])).await;
    post_all(&embedded, &history()).await;
    let db = TestDb::new(&clickhouse_url().await);
    let ch_env = vec![
        ("REVLINE_CLICKHOUSE_URL", db.url.clone()),
        ("REVLINE_CLICKHOUSE_DATABASE", db.name.clone()),
    ];
    let mut clickhouse = Revline::start(serve(&base, &ch_env)).await;
    post_all(&clickhouse, &shuffled_with_duplicates(&history())).await;

    for app in [&embedded, &clickhouse] {
        let reached = wait_until_async(Duration::from_secs(60), || async {
            report(app, "/reports/payouts?format=csv").await.1 == EXPECTED
        })
        .await;
        let (_, last, _) = report(app, "/reports/payouts?format=csv").await;
        assert!(
            reached,
            "payouts never itemised; last:\n{last}\n{}",
            app.logs()
        );
        let (status, detail, _) = report(app, "/reports/payouts?format=csv&detail=true").await;
        assert_eq!((status, detail.as_str()), (200, EXPECTED_DETAIL));
    }
    let (_, _, warnings) = report(&embedded, "/reports/payouts").await;
    assert!(
        warnings.iter().any(|w| w.starts_with("1 manual payout")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("1 payout(s) not reconciled")),
        "{warnings:?}"
    );
    for path in [
        "/reports/payouts?format=json",
        "/reports/payouts?from=2026-04&format=csv",
    ] {
        let (a, b) = (
            report(&embedded, path).await.1,
            report(&clickhouse, path).await.1,
        );
        assert_eq!(a, b, "{path}: the two warehouses differ");
    }
    let (_, april, _) = report(&embedded, "/reports/payouts?from=2026-04&format=csv").await;
    assert_eq!(
        april
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect::<Vec<_>>(),
        ["po_pending"]
    );

    // The pages (and the balance transactions the charge and refund name) are events of
    // their own in the log, each fetched once per server.
    let pages: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.contains("payout=po_auto"))
        .cloned()
        .collect();
    assert_eq!(
        pages.len(),
        6,
        "five items in pages of two, two servers: {pages:?}"
    );
    assert!(pages.iter().all(|(_, s)| *s == 200));
    assert!(
        !embedded.logs().contains(KEY),
        "the API key reached the logs"
    );
    // The payout's pages are events of their own in the log. The charge's and refund's
    // transactions are fetched one by one too when the enrichment sees their payment and
    // refund before the pages' items land in `balance_transactions`; once the pages are in,
    // nothing is missing and they are not (under load, the pages won the race once, and
    // waiting for the single fetches failed). Either way each id is in the log once.
    let fetched_ids = || async {
        clickhouse_http(
            &db.url,
            &format!(
                "SELECT id FROM {}.stripe_events FINAL WHERE id LIKE 'rvl_%' ORDER BY id FORMAT CSV",
                db.name
            ),
        )
        .await
        .unwrap()
    };
    const PAGES: [&str; 3] = [
        "\"rvl_po_auto_bt_0\"",
        "\"rvl_po_auto_bt_1\"",
        "\"rvl_po_auto_bt_2\"",
    ];
    const SINGLE: [&str; 2] = ["\"rvl_bt_txn_ch_1\"", "\"rvl_bt_txn_re_1\""];
    let has_pages = || async {
        let ids = fetched_ids().await;
        PAGES.iter().all(|p| ids.lines().any(|l| l == *p))
    };
    wait_until_async(Duration::from_secs(30), has_pages).await;
    let ids = fetched_ids().await;
    for id in ids.lines() {
        assert!(
            PAGES.contains(&id) || SINGLE.contains(&id),
            "an unexpected fetch in the log: {id}\n{ids}"
        );
    }
    for page in PAGES {
        assert_eq!(ids.lines().filter(|l| l == &page).count(), 1, "{ids}");
    }

    // Replay needs no API: with the items gone and no key, it rebuilds them from the log.
    double.stop(true).await;
    for table in ["payout_items", "balance_transactions"] {
        clickhouse_http(&db.url, &format!("TRUNCATE TABLE {}.{table}", db.name))
            .await
            .unwrap();
    }
    let (_, gone, _) = report(&clickhouse, "/reports/payouts?format=csv").await;
    assert_ne!(gone, EXPECTED, "the items are gone before the replay");
    // One writer of matcher state at a time: the server stops for the replay.
    assert!(clickhouse.terminate().success());
    let mut opts = Options {
        data_dir: Some(clickhouse.data_dir.clone()),
        ..Options::default()
    }
    .arg("replay");
    for (k, v) in &ch_env {
        opts = opts.env(k, v.clone());
    }
    let (status, _, stderr) = run_to_exit(opts);
    assert!(status.success(), "{stderr}");
    let reader = Revline::start(reports_on(&ch_env)).await;
    let (_, replayed, _) = report(&reader, "/reports/payouts?format=csv").await;
    assert_eq!(replayed, EXPECTED);
}

#[tokio::test]
async fn an_invoice_with_more_lines_than_the_webhook_carries_is_completed_from_the_api() {
    let (base, seen, double) = start_double();
    // 61.00 in three lines; the webhook carries the first only.
    let body = event(
        "evt_big",
        "invoice.finalized",
        "2026-03-10T00:00:00Z",
        json!({
            "id": "in_big", "object": "invoice", "customer": "cus_big", "currency": "usd",
            "status": "open", "billing_reason": "manual", "collection_method": "send_invoice",
            "number": "N-big", "created": t("2026-03-10T00:00:00Z"), "subtotal": 6100,
            "total": 6100, "total_excluding_tax": 6100, "amount_due": 6100, "amount_paid": 0,
            "amount_remaining": 6100, "total_discount_amounts": [], "total_taxes": [],
            "status_transitions": {"finalized_at": t("2026-03-10T00:00:00Z"), "paid_at": null,
                                   "voided_at": null, "marked_uncollectible_at": null},
            "lines": {"object": "list", "has_more": true, "data": [big_lines()[0].clone()]}
        }),
    );
    let db = TestDb::new(&clickhouse_url().await);
    let ch_env = vec![
        ("REVLINE_CLICKHOUSE_URL", db.url.clone()),
        ("REVLINE_CLICKHOUSE_DATABASE", db.name.clone()),
    ];
    let mut with_key = Revline::start(serve(&base, &ch_env)).await;
    let without_key = Revline::start(
        Options::default()
            .env("REVLINE_REPORT_NOW", NOW)
            .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "50"),
    )
    .await;
    for app in [&with_key, &without_key] {
        post_all(app, std::slice::from_ref(&body)).await;
    }
    const MARCH: &str = "/reports/revenue-recognition?format=csv&from=2026-03&to=2026-03";
    // With the key: all three lines, 61.00 billed and recognised in March, no warning.
    let whole = "month,currency,billed,recognized,deferred_end\n2026-03,usd,61.00,61.00,0.00\n";
    let reached = wait_until_async(Duration::from_secs(60), || async {
        report(&with_key, MARCH).await.1 == whole
    })
    .await;
    let (_, last, warnings) = report(&with_key, MARCH).await;
    assert!(
        reached,
        "lines never completed; last:\n{last}\n{}",
        with_key.logs()
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(db.count("invoice_lines").await, 3);
    let pages = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.starts_with("/v1/invoices/in_big/lines"))
        .count();
    assert_eq!(pages, 2, "three lines in pages of two, fetched once");
    // The journal explains the whole invoice by its lines: nothing unallocated.
    let (_, journal, _) = report(&with_key, "/reports/journal?format=csv").await;
    assert!(!journal.contains(",2990,"), "{journal}");

    // Without the key: the first line only, and the report says why.
    let partial = "month,currency,billed,recognized,deferred_end\n2026-03,usd,10.00,10.00,0.00\n";
    let reached = wait_until_async(Duration::from_secs(60), || async {
        report(&without_key, MARCH).await.1 == partial
    })
    .await;
    let (_, last, warnings) = report(&without_key, MARCH).await;
    assert!(reached, "{last}");
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("1 finalized invoice(s) carried only the first page")),
        "{warnings:?}"
    );

    // A replay rebuilds the fetched lines from the log, without the API.
    double.stop(true).await;
    clickhouse_http(
        &db.url,
        &format!("TRUNCATE TABLE {}.invoice_lines", db.name),
    )
    .await
    .unwrap();
    assert!(with_key.terminate().success());
    let mut opts = Options {
        data_dir: Some(with_key.data_dir.clone()),
        ..Options::default()
    }
    .arg("replay");
    for (k, v) in &ch_env {
        opts = opts.env(k, v.clone());
    }
    let (status, _, stderr) = run_to_exit(opts);
    assert!(status.success(), "{stderr}");
    assert_eq!(db.count("invoice_lines").await, 3);
    let reader = Revline::start(reports_on(&ch_env)).await;
    assert_eq!(report(&reader, MARCH).await.1, whole);
}

#[tokio::test]
async fn a_same_second_tie_is_recorded_counted_and_settled_by_fetching_the_object() {
    let (base, seen, double) = start_double();
    let app = Revline::start(serve(&base, &[])).await;
    // Two snapshots of ch_tie from one second: same status and amounts, another customer.
    let at = "2026-03-02T00:00:00Z";
    post_all(
        &app,
        &[
            event("evt_tie_a", "charge.updated", at, tie_charge("cus_a")),
            event("evt_tie_b", "charge.updated", at, tie_charge("cus_b")),
        ],
    )
    .await;
    let warehouse = warehouse::embedded::Embedded::open(&app.data_dir).unwrap();
    let settled = wait_until_async(Duration::from_secs(60), || async {
        let events: Vec<schemas::facts::EventRow> = warehouse.fetch_all().await.unwrap_or_default();
        let payments: Vec<schemas::facts::PaymentRow> =
            warehouse.fetch_all().await.unwrap_or_default();
        events
            .iter()
            .any(|e| e.id.starts_with("rvl_refetch_ch_tie_"))
            && payments
                .iter()
                .any(|p| p.id == "ch_tie" && p.source_event_id.starts_with("rvl_refetch_"))
    })
    .await;
    assert!(settled, "the tie was never settled:\n{}", app.logs());
    let ties: Vec<schemas::facts::TieRow> = warehouse.fetch_all().await.unwrap();
    assert_eq!(ties.len(), 1);
    assert_eq!(ties[0].event_ids, "evt_tie_a,evt_tie_b");
    assert_eq!(i64::from(ties[0].created_at), t(at));
    let payments: Vec<schemas::facts::PaymentRow> = warehouse.fetch_all().await.unwrap();
    let charge = payments.iter().find(|p| p.id == "ch_tie").unwrap();
    assert_eq!(
        charge.customer_id.as_deref(),
        Some("cus_b"),
        "the charge as it is now"
    );
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("revline_reconcile_same_second_ties_total 1"),
        "{metrics}"
    );
    let fetched = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, s)| p == "/v1/charges/ch_tie" && *s == 200)
        .count();
    assert_eq!(
        fetched, 1,
        "fetched once, with the API version revline decodes"
    );
    double.stop(true).await;
}
