//! Secrets never leave the process: the real binary runs with distinctive secret values and
//! every line it writes (logs on stderr, stdout) and its `/metrics` are searched for them.
//! Today: the ClickHouse password, given both in the URL (`user:password@`) and in
//! `REVLINE_CLICKHOUSE_PASSWORD`, and the webhook signing secret.

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
