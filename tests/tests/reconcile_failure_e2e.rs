//! `revline serve` keeps receiving webhooks while reconcile is stopped by a permanent
//! warehouse error: ClickHouse is reached through a local proxy that answers every query
//! with ClickHouse's "authentication failed" (a permanent error) until the test heals it.
//! Meanwhile every webhook gets 200, `/readyz` says ready, `revline_reconcile_status` is 0
//! and the log says why; once healed, the next retry reconciles every event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use e2e::clickhouse::{url as clickhouse_url, TestDb};
use e2e::stripe::paid_invoice_event;
use e2e::{wait_until, wait_until_async, Options, Revline};

struct Proxy {
    upstream: String,
    broken: AtomicBool,
    http: reqwest::Client,
}

/// Forwards a ClickHouse HTTP request upstream, or refuses it as a wrong password would.
async fn forward(req: HttpRequest, body: web::Bytes, proxy: web::Data<Arc<Proxy>>) -> HttpResponse {
    if proxy.broken.load(Ordering::SeqCst) {
        return HttpResponse::InternalServerError().body(
            "Code: 516. DB::Exception: revline: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)\n",
        );
    }
    let url = format!("{}{}", proxy.upstream, req.uri());
    let mut upstream = proxy.http.request(
        reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap(),
        url,
    );
    for (name, value) in req.headers() {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    match upstream.body(body.to_vec()).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap_or_default();
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body(bytes)
        }
        Err(err) => HttpResponse::BadGateway().body(err.to_string()),
    }
}

#[tokio::test]
async fn webhooks_are_received_while_reconcile_waits_for_the_warehouse_then_reconciled() {
    let upstream = clickhouse_url().await;
    let db = TestDb::new(&upstream);
    let proxy = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        broken: AtomicBool::new(true),
        http: reqwest::Client::new(),
    });
    let data = web::Data::new(proxy.clone());
    let (via_proxy, handle) = e2e::http_double(move |cfg| {
        cfg.app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 << 20))
            .default_service(web::to(forward));
    });

    let app = Revline::start(
        Options::default()
            .env("REVLINE_CLICKHOUSE_URL", via_proxy.as_str())
            .env("REVLINE_CLICKHOUSE_DATABASE", db.name.as_str())
            .env("REVLINE_RECONCILE_RETRY_SECS", "2")
            .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "50"),
    )
    .await;
    let failed = wait_until(Duration::from_secs(30), || {
        app.logs()
            .contains("reconcile failed: webhooks are still received")
    })
    .await;
    assert!(
        failed,
        "reconcile never reported the failure:\n{}",
        app.logs()
    );
    assert!(
        app.logs().contains("AUTHENTICATION_FAILED"),
        "the reason is logged:\n{}",
        app.logs()
    );

    // The receiver keeps working.
    const EVENTS: usize = 20;
    for i in 0..EVENTS {
        let body = paid_invoice_event(&format!("in_wait_{i}"), "cus_wait", 100 + i as i64);
        let resp = app.post_signed(&body).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    assert_eq!(app.get("/readyz").await.status(), 200);
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("\nrevline_reconcile_status 0\n"),
        "{metrics}"
    );
    // Retried every 2 s, failing each time, and still serving.
    let retried = wait_until(Duration::from_secs(30), || {
        app.logs().matches("starting reconcile again").count() >= 2
    })
    .await;
    assert!(retried, "{}", app.logs());
    assert_eq!(db.count("stripe_events").await, 0);

    // Healed: the next retry runs, and every event is reconciled.
    proxy.broken.store(false, Ordering::SeqCst);
    let all = wait_until_async(Duration::from_secs(60), || async {
        db.count("invoices").await == EVENTS as u64
    })
    .await;
    assert!(
        all,
        "{} of {EVENTS} invoices:\n{}",
        db.count("invoices").await,
        app.logs()
    );
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("\nrevline_reconcile_status 1\n"),
        "{metrics}"
    );
    handle.stop(false).await;
}
