//! HTTPS on the webhook listener (`REVLINE_TLS_CERT_FILE`, `REVLINE_TLS_KEY_FILE`): Stripe
//! delivers live-mode events to `https://` URLs only. A client trusting the test's CA posts
//! a signed event and it is reconciled; a client trusting another CA and a plain-HTTP
//! client get nothing through; `revline healthcheck` finds the listener from the same
//! configuration; a key that is not a key stops the start with an error naming the file.

use std::time::Duration;

use e2e::stripe::{paid_invoice_event, paid_invoice_register, reporting, wait_for_report};
use e2e::tls::{make_ca, make_leaf};
use e2e::{run_to_exit, sign, Options, Revline, TempDir, TEST_SECRET};

/// A client that trusts only the CA in `ca_pem`.
fn client_trusting(ca_pem: &std::path::Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_pem).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn webhooks_arrive_over_https_with_the_configured_certificate() {
    let certs = TempDir::new("revline-https");
    make_ca(certs.path(), "test-ca");
    make_ca(certs.path(), "other-ca");
    make_leaf(certs.path(), "test-ca");
    let cert = certs.path().join("leaf.pem").display().to_string();
    let key = certs.path().join("leaf.key").display().to_string();
    let tls = [
        ("REVLINE_TLS_CERT_FILE", cert.as_str()),
        ("REVLINE_TLS_KEY_FILE", key.as_str()),
    ];
    let app = Revline::start(reporting("2026-03-10T00:00:00Z", &tls)).await;
    assert!(
        app.logs().contains(r#""scheme":"https""#),
        "the start says the listener is HTTPS:\n{}",
        app.logs()
    );
    let url = format!("https://{}/webhooks/stripe", app.addr);
    let body = paid_invoice_event("in_https", "cus_https", 4200);

    // Another CA: the handshake fails, nothing is stored.
    let refused = client_trusting(&certs.path().join("other-ca.pem"))
        .post(&url)
        .header("Stripe-Signature", sign(TEST_SECRET, &body))
        .body(body.clone())
        .send()
        .await;
    let err = refused.expect_err("a certificate from an untrusted CA must not be accepted");
    assert!(
        err.is_connect(),
        "a TLS failure, not an HTTP answer: {err:?}"
    );

    // Plain HTTP on the HTTPS port: no HTTP answer at all.
    let plain = app
        .http
        .post(format!("http://{}/webhooks/stripe", app.addr))
        .header("Stripe-Signature", sign(TEST_SECRET, &body))
        .body(body.clone())
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP must not be served on the HTTPS listener: {plain:?}"
    );

    // The test CA: 200, reconciled.
    let resp = client_trusting(&certs.path().join("test-ca.pem"))
        .post(&url)
        .header("Stripe-Signature", sign(TEST_SECRET, &body))
        .body(body)
        .send()
        .await
        .expect("the HTTPS request goes through");
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    wait_for_report(
        &app,
        "/reports/invoices?format=csv",
        &paid_invoice_register("in_https", "cus_https", 4200),
    )
    .await;

    // The health check finds the HTTPS listener from the same settings.
    let mut probe = Options::default()
        .env("REVLINE_LISTEN", app.addr.to_string())
        .arg("healthcheck");
    for (k, v) in tls {
        probe = probe.env(k, v);
    }
    let (status, _, stderr) = run_to_exit(probe);
    assert!(
        status.success(),
        "healthcheck of a running server: {stderr}"
    );
    let (status, _, stderr) = run_to_exit(
        Options::default()
            .env("REVLINE_LISTEN", "127.0.0.1:9")
            .arg("healthcheck"),
    );
    assert!(!status.success(), "nothing listens on port 9");
    assert!(stderr.contains("http://127.0.0.1:9/readyz"), "{stderr}");

    // A key file that holds no key: the start fails and says which file.
    let (status, _, stderr) = run_to_exit(
        Options::default()
            .env("REVLINE_TLS_CERT_FILE", cert.as_str())
            .env("REVLINE_TLS_KEY_FILE", cert.as_str()),
    );
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("key file {cert}: no PEM private key in it")),
        "{stderr}"
    );
}
