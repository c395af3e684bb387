//! `revline backfill` against a local test double of Stripe's `GET /v1/events` serving
//! recorded pages, beside a running `revline serve` on the same data directory: a 429 is
//! waited out, a page that keeps failing stops the run with an error saying how to
//! continue, the second run continues after the last durable page (page 1 is not asked
//! again), every event is reconciled once and marked as backfilled, and a backfill over
//! events already received changes nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use e2e::stripe::paid_invoice_event;
use e2e::{run_to_exit, wait_until, Options, Revline};

const KEY: &str = "rk_test_backfill_0123456789";
/// Events the double holds, newest first as Stripe lists them; 3 pages of 100 and one of 50.
const EVENTS: usize = 350;

struct Double {
    /// Event JSON, newest first.
    events: Vec<serde_json::Value>,
    /// Query strings seen, in order, with the status answered.
    seen: Mutex<Vec<(String, u16)>>,
    /// Answer 500 to the page after the second (until the test heals it).
    fail_page_3: AtomicBool,
    /// A 429 is answered once.
    throttled: AtomicBool,
}

async fn list_events(req: HttpRequest, double: web::Data<Arc<Double>>) -> HttpResponse {
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .unwrap_or_default();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let answer = |status: u16, body: serde_json::Value| {
        double
            .seen
            .lock()
            .unwrap()
            .push((req.query_string().to_owned(), status));
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(body)
    };
    if auth != format!("Bearer {KEY}") {
        return answer(
            401,
            serde_json::json!({"error": {"type": "invalid_request_error"}}),
        );
    }
    if !query.contains_key("created[gte]") || !query.contains_key("created[lte]") {
        return answer(
            400,
            serde_json::json!({"error": {"message": "created bounds expected"}}),
        );
    }
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10);
    let start = match query.get("starting_after") {
        Some(after) => match double.events.iter().position(|e| e["id"] == after.as_str()) {
            Some(i) => i + 1,
            None => {
                return answer(
                    400,
                    serde_json::json!({"error": {"message": "no such event"}}),
                )
            }
        },
        None => 0,
    };
    if start == limit && !double.throttled.swap(true, Ordering::SeqCst) {
        double
            .seen
            .lock()
            .unwrap()
            .push((req.query_string().to_owned(), 429));
        return HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "1"))
            .json(serde_json::json!({"error": {"type": "rate_limit_error"}}));
    }
    if start == 2 * limit && double.fail_page_3.load(Ordering::SeqCst) {
        return answer(500, serde_json::json!({"error": {"type": "api_error"}}));
    }
    let end = (start + limit).min(double.events.len());
    answer(
        200,
        serde_json::json!({
            "object": "list", "url": "/v1/events",
            "has_more": end < double.events.len(),
            "data": double.events[start..end],
        }),
    )
}

fn start_double(
    events: Vec<serde_json::Value>,
) -> (String, Arc<Double>, actix_web::dev::ServerHandle) {
    let double = Arc::new(Double {
        events,
        seen: Mutex::default(),
        fail_page_3: AtomicBool::new(true),
        throttled: AtomicBool::new(false),
    });
    let data = web::Data::new(double.clone());
    let (url, handle) = e2e::http_double(move |cfg| {
        cfg.app_data(data.clone())
            .route("/v1/events", web::get().to(list_events));
    });
    (url, double, handle)
}

fn backfill(app: &Revline, base: &str, args: &[&str]) -> (bool, String, String) {
    let (status, stdout, stderr) = run_to_exit(
        Options {
            data_dir: Some(app.data_dir.clone()),
            ..Options::default()
        }
        .env("STRIPE_API_KEY", KEY)
        .env("REVLINE_STRIPE_API_BASE", base)
        .env("REVLINE_STRIPE_API_RPS", "100")
        .arg("backfill")
        .args_of(args),
    );
    (status.success(), stdout, stderr)
}

/// Rows of the embedded warehouse: `sql` answers one integer.
fn count(app: &Revline, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(app.data_dir.join("warehouse.sqlite")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn backfill_pages_resumes_after_a_failure_and_counts_nothing_twice() {
    // Newest first; the oldest one was also delivered as a webhook.
    let events: Vec<serde_json::Value> = (0..EVENTS)
        .rev()
        .map(|i| {
            serde_json::from_slice(&paid_invoice_event(
                &format!("in_bf_{i:03}"),
                &format!("cus_bf_{}", i % 7),
                100 + i as i64,
            ))
            .unwrap()
        })
        .collect();
    let (base, double, handle) = start_double(events);
    let app = Revline::start(Options::default().env("REVLINE_RECONCILE_BATCH_WAIT_MS", "50")).await;
    let resp = app
        .post_signed(&paid_invoice_event("in_bf_000", "cus_bf_0", 100))
        .await;
    assert_eq!(resp.status(), 200);

    // Bad input first: no key, too far back.
    let (status, _, stderr) = run_to_exit(
        Options {
            data_dir: Some(app.data_dir.clone()),
            ..Options::default()
        }
        .args_of(&["backfill", "--since", "3d"]),
    );
    assert!(!status.success());
    assert!(stderr.contains("STRIPE_API_KEY"), "{stderr}");
    let (ok, _, stderr) = backfill(&app, &base, &["--since", "45d"]);
    assert!(!ok);
    assert!(
        stderr.contains("Stripe keeps events for 30 days"),
        "{stderr}"
    );
    assert!(
        double.seen.lock().unwrap().is_empty(),
        "no request before the checks pass"
    );

    // Page 2 is throttled once (waited out), page 3 keeps failing: the run stops and says
    // how to continue.
    let (ok, _, stderr) = backfill(&app, &base, &["--since", "3d"]);
    assert!(!ok, "a page that keeps failing must fail the run");
    assert!(
        stderr.contains("page 3 of GET /v1/events failed; pages 1 to 2 are in the event log, run the same command again to continue"),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 500"), "the cause is named: {stderr}");
    assert!(app.data_dir.join("backfill/platform.json").exists());
    {
        let seen = double.seen.lock().unwrap();
        let statuses: Vec<u16> = seen.iter().map(|(_, s)| *s).collect();
        assert_eq!(&statuses[..3], &[200, 429, 200], "{seen:?}");
        assert!(statuses[3..].iter().all(|s| *s == 500), "{seen:?}");
    }

    // Healed: the second run continues at page 3 (page 1 is not asked again).
    double.fail_page_3.store(false, Ordering::SeqCst);
    let first_requests = double.seen.lock().unwrap().len();
    let (ok, stdout, stderr) = backfill(&app, &base, &["--since", "3d"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("continuing after page 2 (200 events appended so far)"),
        "{stderr}"
    );
    assert!(
        stdout.contains("done: 349 events appended, 1 already in the log, 4 pages"),
        "{stdout}"
    );
    {
        let seen = double.seen.lock().unwrap();
        let resumed = &seen[first_requests..];
        assert_eq!(resumed.len(), 2, "pages 3 and 4 only: {resumed:?}");
        assert!(
            resumed[0].0.contains("starting_after=evt_in_bf_150"),
            "page 3 starts after page 2's oldest event: {resumed:?}"
        );
    }
    assert!(!app.data_dir.join("backfill/platform.json").exists());

    // Everything reconciled by the running server, once, marked as backfilled.
    let all = wait_until(Duration::from_secs(60), || {
        count(&app, "SELECT count(*) FROM invoices") == EVENTS as i64
    })
    .await;
    assert!(
        all,
        "invoices reconciled: {}",
        count(&app, "SELECT count(*) FROM invoices")
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM stripe_events WHERE endpoint = 'backfill'"
        ),
        EVENTS as i64 - 1
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM stripe_events WHERE endpoint = 'default'"
        ),
        1,
        "the webhook's copy is the one kept"
    );
    let paid = count(&app, "SELECT sum(amount_paid) FROM invoices");
    assert_eq!(paid, (0..EVENTS as i64).map(|i| 100 + i).sum::<i64>());

    // Again over the same events: nothing new.
    let (ok, stdout, stderr) = backfill(&app, &base, &["--since", "3d"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("done: 0 events appended, 350 already in the log, 4 pages"),
        "{stdout}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&app, "SELECT count(*) FROM invoices"), EVENTS as i64);
    assert_eq!(
        count(&app, "SELECT count(*) FROM stripe_events"),
        EVENTS as i64
    );
    assert_eq!(count(&app, "SELECT sum(amount_paid) FROM invoices"), paid);
    handle.stop(false).await;
}
