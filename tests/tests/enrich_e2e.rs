//! Enrichment end to end: `revline serve` with `STRIPE_API_KEY` fetches the balance
//! transactions of charges and refunds from a local test double of Stripe's API that serves
//! recorded responses (fixtures/stripe-events/api_object__balance_transactions.json).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use e2e::{wait_until, Options, Revline};
use schemas::facts::BalanceTransactionRow;
use warehouse::embedded::Embedded;
use warehouse::Warehouse;

const KEY: &str = "sk_test_double_0123456789";

/// What the double saw: (path, authorization header, status answered).
type Seen = Arc<Mutex<Vec<(String, String, u16)>>>;

/// Stripe's `GET /v1/balance_transactions/{id}`: 401 without the right key, 429 with
/// `Retry-After` on the very first call (to exercise the retry), then the recorded objects.
async fn balance_transaction(
    req: HttpRequest,
    id: web::Path<String>,
    seen: web::Data<Seen>,
) -> HttpResponse {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let recorded = e2e::stripe::recorded_balance_transactions();
    let mut seen = seen.lock().unwrap();
    let first = seen.is_empty();
    let (status, response) = if auth != format!("Bearer {KEY}") {
        (401, HttpResponse::Unauthorized().json(serde_json::json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})))
    } else if first {
        (
            429,
            HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", "1"))
                .json(serde_json::json!({"error": {"type": "rate_limit_error"}})),
        )
    } else {
        match ["charge_bt", "refund_bt"]
            .iter()
            .map(|k| &recorded[k])
            .find(|bt| bt["id"] == id.as_str())
        {
            Some(bt) => (200, HttpResponse::Ok().json(bt)),
            None => (
                404,
                HttpResponse::NotFound()
                    .json(serde_json::json!({"error": {"type": "invalid_request_error"}})),
            ),
        }
    };
    seen.push((req.path().to_owned(), auth, status));
    response
}

fn start_double() -> (String, Seen, actix_web::dev::ServerHandle) {
    let seen: Seen = Arc::default();
    let data = web::Data::new(seen.clone());
    let (url, handle) = e2e::http_double(move |cfg| {
        cfg.app_data(data.clone()).route(
            "/v1/balance_transactions/{id}",
            web::get().to(balance_transaction),
        );
    });
    (url, seen, handle)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/stripe-events")
            .join(name),
    )
    .unwrap()
}

fn serve_with_key(base: &str, key: &str) -> Options {
    Options::default()
        .env("STRIPE_API_KEY", key)
        .env("REVLINE_STRIPE_API_BASE", base)
        .env("REVLINE_ENRICH_INTERVAL_SECS", "1")
        .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "100")
}

#[tokio::test]
async fn balance_transactions_are_fetched_with_retries_and_written() {
    let (base, seen, double) = start_double();
    let app = Revline::start(serve_with_key(&base, KEY)).await;
    for name in [
        "charge.refunded__2025-03-31.basil__partial.json",
        "refund.created__2025-03-31.basil.json",
    ] {
        assert_eq!(app.post_signed(&fixture(name)).await.status(), 200);
    }
    let warehouse = Embedded::open(&app.data_dir).unwrap();
    let mut rows: Vec<BalanceTransactionRow> = Vec::new();
    for _ in 0..150 {
        rows = warehouse.fetch_all().await.unwrap_or_default();
        if rows.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        rows.len(),
        2,
        "balance transactions not fetched:\n{}",
        app.logs()
    );
    let charge = rows
        .iter()
        .find(|r| r.id == "txn_1ExampleCharge0001")
        .unwrap();
    assert_eq!(
        (
            charge.amount,
            charge.fee,
            charge.net,
            charge.currency.as_str()
        ),
        (2000, 88, 1912, "usd")
    );
    assert_eq!(charge.reporting_category.as_deref(), Some("charge"));
    assert_eq!(charge.source_id.as_deref(), Some("ch_1ExampleCharge0001"));
    assert_eq!(charge.exchange_rate, None);
    let refund = rows
        .iter()
        .find(|r| r.id == "txn_1ExampleRefund0001")
        .unwrap();
    assert_eq!((refund.amount, refund.fee, refund.net), (-500, 0, -500));
    assert_eq!(refund.reporting_category.as_deref(), Some("refund"));
    // Through the event log, as events of their own: a replay needs no API.
    for row in &rows {
        assert_eq!(row.source_event_id, format!("rvl_bt_{}", row.id));
    }

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].2, 429, "the first call is rate limited");
    assert!(seen
        .iter()
        .all(|(_, auth, _)| auth == &format!("Bearer {KEY}")));
    assert_eq!(
        seen.iter().filter(|(_, _, s)| *s == 200).count(),
        2,
        "each transaction fetched once: {seen:?}"
    );
    assert!(!app.logs().contains(KEY), "the API key reached the logs");
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"revline_enrich_fetches_total{outcome="fetched"} 2"#),
        "{metrics}"
    );
    double.stop(true).await;
}

#[tokio::test]
async fn a_refused_key_stops_enrichment_but_not_reconciliation() {
    let (base, seen, double) = start_double();
    let app = Revline::start(serve_with_key(&base, "sk_test_wrong_key")).await;
    assert_eq!(
        app.post_signed(&fixture("refund.created__2025-03-31.basil.json"))
            .await
            .status(),
        200
    );
    assert!(
        wait_until(Duration::from_secs(30), || app
            .logs()
            .contains("Stripe refused the API key"))
        .await,
        "{}",
        app.logs()
    );
    let warehouse = Embedded::open(&app.data_dir).unwrap();
    assert_eq!(
        warehouse.count("refunds").await.unwrap(),
        1,
        "facts are reconciled all the same"
    );
    assert_eq!(warehouse.count("balance_transactions").await.unwrap(), 0);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "no retry storm after a refused key"
    );
    assert!(!app.logs().contains("sk_test_wrong_key"));
    double.stop(true).await;
}
