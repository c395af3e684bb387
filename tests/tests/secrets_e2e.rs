//! Secrets never leave the process: the real binary runs with distinctive secret values and
//! every line it writes (logs on stderr, stdout) and its `/metrics` are searched for them.
//! The ClickHouse password, given both in the URL (`user:password@`) and in
//! `REVLINE_CLICKHOUSE_PASSWORD`, and the webhook signing secret; then the whole pipeline
//! (Kafka, ClickHouse, the enrichment's API key, a named endpoint's secret, a SASL password,
//! the admin token) on working and failing paths alike.

use std::time::Duration;

use e2e::clickhouse::{url as clickhouse_url, TestDb};
use e2e::{event_body, run_to_exit, wait_until, Options, Revline};

const URL_PASSWORD: &str = "UrlPw-7d41c9e0-never-log-me";
const PASSWORD: &str = "EnvPw-52be77a3-never-log-me";
const WEBHOOK_SECRET: &str = "whsec_0f9e8d7c6b5a-never-log-me";

fn assert_clean(what: &str, text: &str) {
    for secret in [URL_PASSWORD, PASSWORD, WEBHOOK_SECRET] {
        assert!(!text.contains(secret), "{what} shows a secret:\n{text}");
    }
}

#[tokio::test]
async fn clickhouse_credentials_and_webhook_secrets_appear_in_no_log_line_or_metric() {
    let url = clickhouse_url().await;
    let db = TestDb::new(&url);
    let with_credentials = url.replacen("://", &format!("://revline_user:{URL_PASSWORD}@"), 1);
    let options = || {
        Options::default()
            .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("REVLINE_CLICKHOUSE_URL", &with_credentials)
            .env("REVLINE_CLICKHOUSE_DATABASE", &db.name)
            .env("REVLINE_CLICKHOUSE_USER", "revline_user")
            .env("REVLINE_CLICKHOUSE_PASSWORD", PASSWORD)
            .env("RUST_LOG", "debug")
    };

    // The receiver alone: a signed event is accepted, a forged one refused; both are logged
    // (debug level) and counted.
    let mut ingest = Revline::start(Options {
        with_secret: false,
        ..Options::default()
            .arg("ingest")
            .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("RUST_LOG", "debug")
    })
    .await;
    let body = event_body("evt_secret_1", "invoice.paid", "cus_secret");
    let signature = e2e::sign(WEBHOOK_SECRET, &body);
    let accepted = ingest
        .post("/webhooks/stripe", &body, Some(&signature))
        .await;
    assert_eq!(accepted.status(), 200);
    assert_clean("an accepted answer", &accepted.text().await.unwrap());
    let rejected = ingest
        .post(
            "/webhooks/stripe",
            &body,
            Some(&e2e::sign("whsec_wrong", &body)),
        )
        .await;
    assert_eq!(rejected.status(), 400);
    assert_clean("a rejection", &rejected.text().await.unwrap());
    let metrics = ingest.admin_get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("revline_webhook_requests_total"));
    assert_clean("/metrics", &metrics);
    assert!(ingest.terminate().success());
    assert_clean("ingest's logs", &ingest.logs());
    assert_clean(
        "ingest's stdout",
        &ingest.whole_stdout(Duration::from_secs(10)).await,
    );

    // `serve` logs which warehouse it writes to, then tries it: the server refuses the
    // unknown user, and that failure (which stops reconcile until its next retry, not the
    // receiver) is logged with its reason.
    let mut app = Revline::start(Options {
        with_secret: false,
        ..options()
    })
    .await;
    assert!(
        wait_until(Duration::from_secs(60), || app
            .logs()
            .contains("reconcile failed: webhooks are still received"))
        .await,
        "serve did not report the refused warehouse:\n{}",
        app.logs()
    );
    let logs = app.logs();
    assert!(
        logs.contains("warehouse: clickhouse") && logs.contains("[redacted]@"),
        "the URL is logged with its credentials replaced:\n{logs}"
    );
    app.kill();
    assert_clean("serve's logs", &app.logs());
    assert_clean(
        "serve's stdout",
        &app.whole_stdout(Duration::from_secs(10)).await,
    );

    // `migrate` against the same warehouse fails (unknown user) and says why.
    let (status, stdout, stderr) = run_to_exit(options().arg("migrate"));
    assert!(!status.success(), "migrate with a refused user succeeded");
    assert!(!stderr.is_empty());
    assert_clean("migrate's stdout", &stdout);
    assert_clean("migrate's stderr", &stderr);
}

const API_KEY: &str = "sk_test_4c1a9-never-log-me";
const ADMIN_TOKEN: &str = "AdminTok-93e1c7d2-never-log-me";
const SASL_PASSWORD: &str = "SaslPw-0b7f2e11-never-log-me";
const CLICKHOUSE_PASSWORD: &str = "ChPw-6a2d90f3-never-log-me";
const ENDPOINT_SECRET: &str = "whsec_shop_18be4f-never-log-me";

/// Every secret of the whole-pipeline test.
fn assert_none_of_all(what: &str, text: &str) {
    assert_clean(what, text);
    for secret in [
        API_KEY,
        ADMIN_TOKEN,
        SASL_PASSWORD,
        CLICKHOUSE_PASSWORD,
        ENDPOINT_SECRET,
    ] {
        assert!(!text.contains(secret), "{what} shows a secret:\n{text}");
    }
}

#[tokio::test]
async fn no_secret_of_the_whole_pipeline_appears_in_logs_metrics_or_answers() {
    use actix_web::{web, HttpResponse};
    // ClickHouse with a user of revline's that has a password; Stripe's API refusing the key.
    let server = e2e::clickhouse::ClickHouseServer::start_with_users(&format!(
        r#"<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>10000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota>
        </default>
        <revline>
            <password>{CLICKHOUSE_PASSWORD}</password>
            <networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota>
        </revline>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
"#
    ))
    .await;
    let (api, api_handle) = e2e::http_double(|cfg| {
        cfg.default_service(web::to(|| async {
            HttpResponse::Unauthorized()
                .json(serde_json::json!({"error": {"type": "invalid_request_error"}}))
        }));
    });
    let brokers = e2e::kafka::brokers();
    let topic = e2e::unique("secrets");
    e2e::kafka::create_topic(&brokers, &topic, 2).await;
    e2e::kafka::create_topic(&brokers, &format!("{topic}.dlq"), 1).await;
    let database = e2e::unique("revline_secrets").replace('-', "_");
    let app = Revline::start(Options {
        with_secret: false,
        ..Options::default()
            .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("REVLINE_ENDPOINT_SHOP_SECRET", ENDPOINT_SECRET)
            .env("REVLINE_KAFKA_BROKERS", brokers.as_str())
            .env("REVLINE_KAFKA_TOPIC", topic.as_str())
            .env("REVLINE_KAFKA_DLQ_TOPIC", format!("{topic}.dlq"))
            .env("REVLINE_KAFKA_RDKAFKA_SASL_USERNAME", "revline")
            .env("REVLINE_KAFKA_RDKAFKA_SASL_PASSWORD", SASL_PASSWORD)
            .env("REVLINE_KAFKA_RDKAFKA_BATCH_NUM_MESSAGES", "1")
            .env("REVLINE_CLICKHOUSE_URL", server.url())
            .env("REVLINE_CLICKHOUSE_DATABASE", database.as_str())
            .env("REVLINE_CLICKHOUSE_USER", "revline")
            .env("REVLINE_CLICKHOUSE_PASSWORD", CLICKHOUSE_PASSWORD)
            .env("STRIPE_API_KEY", API_KEY)
            .env("REVLINE_STRIPE_API_BASE", api.as_str())
            .env("REVLINE_ENRICH_INTERVAL_SECS", "1")
            .env("REVLINE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "50")
            .env("RUST_LOG", "debug")
    })
    .await;

    // Webhooks: accepted on both endpoints, forged ones refused.
    let charge = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/stripe-events/charge.refunded__2025-03-31.basil__partial.json"
    ))
    .unwrap();
    let mut answers = Vec::new();
    for (path, secret) in [
        ("/webhooks/stripe", WEBHOOK_SECRET),
        ("/webhooks/stripe/shop", ENDPOINT_SECRET),
    ] {
        let ok = app
            .post(path, &charge, Some(&e2e::sign(secret, &charge)))
            .await;
        assert_eq!(ok.status(), 200);
        answers.push(ok.text().await.unwrap());
        let forged = app
            .post(path, &charge, Some(&e2e::sign("whsec_forged", &charge)))
            .await;
        assert_eq!(forged.status(), 400);
        answers.push(forged.text().await.unwrap());
    }
    // The charge is reconciled with the password; its balance transaction is asked of the
    // API, which refuses the key (logged, without it).
    let refused = wait_until(Duration::from_secs(60), || {
        app.logs().contains("Stripe refused the API key")
            || app.logs().contains("refused the API key")
    })
    .await;
    assert!(
        refused,
        "the enrichment never asked the API:\n{}",
        app.logs()
    );

    // The admin listener: refused without the token, served with it.
    let without = app.admin_get("/metrics").await;
    assert_eq!(without.status(), 401);
    answers.push(without.text().await.unwrap());
    let metrics = app
        .http
        .get(app.admin_url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("revline_reconcile_status"), "{metrics}");
    let report = app
        .http
        .get(app.admin_url("/reports/revenue?format=csv"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 200);
    answers.push(report.text().await.unwrap());

    let mut app = app;
    assert!(app.terminate().success());
    for answer in &answers {
        assert_none_of_all("an answer", answer);
    }
    assert_none_of_all("/metrics", &metrics);
    assert_none_of_all("serve's logs", &app.logs());
    assert_none_of_all(
        "serve's stdout",
        &app.whole_stdout(Duration::from_secs(10)).await,
    );
    api_handle.stop(false).await;
}
