//! TLS to ClickHouse: a private `clickhouse-server` serving HTTPS with a certificate this
//! test makes (its own CA, a leaf for 127.0.0.1 and localhost, no Diffie-Hellman file).
//! revline reconciles into it and reads reports from it over `https://`, trusting the CA
//! through `REVLINE_CLICKHOUSE_CA_FILE`; another CA is refused with an error that says the
//! certificate is not trusted.

use e2e::clickhouse::{http, ClickHouseServer};
use e2e::stripe::{event, post_all, report, reporting, wait_for_report};
use e2e::tls::{make_ca, make_leaf};
use e2e::{run_to_exit, unique, Options, Revline, TempDir};
use serde_json::json;

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
    let invoice = json!({
        "id": "in_tls", "object": "invoice", "customer": "cus_tls", "currency": "usd",
        "status": "paid", "billing_reason": "manual", "collection_method": "charge_automatically",
        "number": "N-tls", "created": 1_772_323_200, "subtotal": 4200, "total": 4200,
        "total_excluding_tax": 4200, "amount_due": 4200, "amount_paid": 4200, "amount_remaining": 0,
        "total_discount_amounts": [], "total_taxes": [],
        "status_transitions": {"finalized_at": 1_772_323_200, "paid_at": 1_772_323_200,
                               "voided_at": null, "marked_uncollectible_at": null},
        "lines": {"object": "list", "has_more": false, "data": []}
    });
    post_all(
        &app,
        &[event(
            "evt_tls",
            "invoice.paid",
            "2026-03-01T00:00:00Z",
            invoice,
        )],
    )
    .await;
    wait_for_report(
        &app,
        "/reports/invoices?format=csv",
        "invoice_id,number,customer_id,subscription_id,status,currency,subtotal,discounts,tax,total,amount_paid,amount_remaining,created_utc,finalized_utc,due_utc,paid_utc,voided_utc\n\
         in_tls,N-tls,cus_tls,,paid,usd,42.00,0.00,0.00,42.00,42.00,0.00,2026-03-01T00:00:00Z,2026-03-01T00:00:00Z,,2026-03-01T00:00:00Z,\n",
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
