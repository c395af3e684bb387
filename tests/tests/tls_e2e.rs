//! TLS to ClickHouse: a private `clickhouse-server` serving HTTPS with a certificate this
//! test makes (its own CA, a leaf for 127.0.0.1 and localhost, no Diffie-Hellman file).
//! revline reconciles into it and reads reports from it over `https://`, trusting the CA
//! through `REVLINE_CLICKHOUSE_CA_FILE`; another CA is refused with an error that says the
//! certificate is not trusted.

use e2e::clickhouse::{http, ClickHouseServer};
use e2e::stripe::{
    paid_invoice_event, paid_invoice_register, post_all, report, reporting, wait_for_report,
};
use e2e::tls::{make_ca, make_leaf};
use e2e::{run_to_exit, unique, Options, Revline, TempDir};

#[tokio::test]
async fn reconcile_and_reports_go_over_https_trusting_the_configured_ca_only() {
    let certs = TempDir::new("revline-tls");
    make_ca(certs.path(), "test-ca");
    make_ca(certs.path(), "other-ca");
    make_leaf(certs.path(), "test-ca");
    let server =
        ClickHouseServer::start_tls(certs.path().join("leaf.pem"), certs.path().join("leaf.key"))
            .await;
    let database = unique("revline_tls").replace('-', "_");
    let https = server.https_url();
    let ca = certs.path().join("test-ca.pem").display().to_string();

    // A wrong CA: refused, and the error says why.
    let other = certs.path().join("other-ca.pem").display().to_string();
    let (status, _, stderr) = run_to_exit(
        Options::default()
            .env("REVLINE_CLICKHOUSE_URL", https.clone())
            .env("REVLINE_CLICKHOUSE_DATABASE", database.clone())
            .env("REVLINE_CLICKHOUSE_CA_FILE", other)
            .arg("migrate"),
    );
    assert!(
        !status.success(),
        "an untrusted certificate must fail: {stderr}"
    );
    assert!(
        stderr.contains("invalid peer certificate: UnknownIssuer"),
        "the error names the certificate problem: {stderr}"
    );

    // The right CA: events reconciled over https, reports read over https.
    let app = Revline::start(reporting(
        "2026-03-10T00:00:00Z",
        &[
            ("REVLINE_CLICKHOUSE_URL", https.as_str()),
            ("REVLINE_CLICKHOUSE_DATABASE", database.as_str()),
            ("REVLINE_CLICKHOUSE_CA_FILE", ca.as_str()),
        ],
    ))
    .await;
    post_all(&app, &[paid_invoice_event("in_tls", "cus_tls", 4200)]).await;
    wait_for_report(
        &app,
        "/reports/invoices?format=csv",
        &paid_invoice_register("in_tls", "cus_tls", 4200),
    )
    .await;
    // What revline wrote over TLS is in the server (checked over its plain port).
    let count = http(
        &server.url(),
        &format!("SELECT count() FROM {database}.invoices FINAL"),
    )
    .await
    .unwrap();
    assert_eq!(count.trim(), "1");
    let (status, revenue) = report(&app, "/reports/revenue?format=csv").await;
    assert_eq!(status, 200);
    assert!(revenue.contains("2026-03,usd,42.00"), "{revenue}");
}
