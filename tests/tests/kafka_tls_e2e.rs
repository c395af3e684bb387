//! Kafka over TLS: Debian's `stunnel4` terminates TLS in front of a Tansu broker of the
//! test's own that advertises the TLS port. `revline migrate` creates the topics over TLS
//! (and prints librdkafka's built-in features), `revline serve` produces and consumes over
//! TLS with the test CA. Not tested yet: SASL (the Tansu this suite runs did not answer a
//! SASL handshake as configured here) and a wrong CA (librdkafka reports the failed
//! handshake only as a timeout of the admin request, which is not a clear error).

use e2e::kafka::{free_port, Tansu};
use e2e::stripe::{event, post_all, reporting, wait_for_report};
use e2e::tls::{make_ca, make_leaf, Stunnel};
use e2e::{run_to_exit, unique, Options, Revline, TempDir};
use serde_json::json;

#[tokio::test]
async fn topics_are_created_and_events_produced_and_consumed_over_tls_with_the_test_ca() {
    let certs = TempDir::new("revline-kafka-tls");
    make_ca(certs.path(), "test-ca");
    make_leaf(certs.path(), "test-ca");
    // Two different ports (a port found free may be found free twice).
    let tls_port = free_port();
    let broker_port = std::iter::repeat_with(free_port)
        .find(|p| *p != tls_port)
        .unwrap();
    let tansu = Tansu::start_advertising(broker_port, tls_port);
    let tls = Stunnel::start(
        tls_port,
        tansu.port,
        &certs.path().join("leaf.pem"),
        &certs.path().join("leaf.key"),
    );
    let topic = unique("tls-events");
    let ca = certs.path().join("test-ca.pem").display().to_string();
    let kafka = |ca: &str| -> Vec<(&'static str, String)> {
        vec![
            ("REVLINE_KAFKA_BROKERS", format!("127.0.0.1:{tls_port}")),
            ("REVLINE_KAFKA_TOPIC", topic.clone()),
            ("REVLINE_KAFKA_DLQ_TOPIC", format!("{topic}-dlq")),
            ("REVLINE_KAFKA_GROUP_ID", format!("{topic}-group")),
            ("REVLINE_KAFKA_RDKAFKA_SECURITY_PROTOCOL", "ssl".into()),
            ("REVLINE_KAFKA_RDKAFKA_SSL_CA_LOCATION", ca.to_owned()),
        ]
    };
    let with = |env: Vec<(&'static str, String)>, opts: Options| {
        env.into_iter().fold(opts, |o, (k, v)| o.env(k, v))
    };

    // Topics created over TLS; librdkafka says it has SSL and the SASL mechanisms.
    let (status, stdout, stderr) = run_to_exit(with(kafka(&ca), Options::default().arg("migrate")));
    assert!(status.success(), "{stdout}\n{stderr}\n{}", tls.log());
    let build = stdout
        .lines()
        .find(|l| l.starts_with("kafka: librdkafka"))
        .unwrap_or_default();
    for feature in ["ssl", "sasl_plain", "sasl_scram"] {
        assert!(build.contains(feature), "{feature} in {build}");
    }
    assert!(
        stdout.contains(&format!("created topic {topic}")),
        "{stdout}"
    );

    // Events produced and consumed over TLS, reconciled into the embedded warehouse.
    let app = Revline::start(with(
        kafka(&ca),
        reporting(
            "2026-03-10T00:00:00Z",
            &[("REVLINE_KAFKA_RDKAFKA_BATCH_NUM_MESSAGES", "1")],
        ),
    ))
    .await;
    let invoice = json!({
        "id": "in_ktls", "object": "invoice", "customer": "cus_k", "currency": "usd",
        "status": "paid", "billing_reason": "manual", "collection_method": "charge_automatically",
        "number": "N-ktls", "created": 1_772_323_200, "subtotal": 1500, "total": 1500,
        "total_excluding_tax": 1500, "amount_due": 1500, "amount_paid": 1500, "amount_remaining": 0,
        "total_discount_amounts": [], "total_taxes": [],
        "status_transitions": {"finalized_at": 1_772_323_200, "paid_at": 1_772_323_200,
                               "voided_at": null, "marked_uncollectible_at": null},
        "lines": {"object": "list", "has_more": false, "data": []}
    });
    post_all(
        &app,
        &[event(
            "evt_ktls",
            "invoice.paid",
            "2026-03-01T00:00:00Z",
            invoice,
        )],
    )
    .await;
    wait_for_report(
        &app,
        "/reports/invoices?format=csv&livemode=true",
        "invoice_id,number,customer_id,subscription_id,status,currency,subtotal,discounts,tax,total,amount_paid,amount_remaining,created_utc,finalized_utc,due_utc,paid_utc,voided_utc\n\
         in_ktls,N-ktls,cus_k,,paid,usd,15.00,0.00,0.00,15.00,15.00,0.00,2026-03-01T00:00:00Z,2026-03-01T00:00:00Z,,2026-03-01T00:00:00Z,\n",
    )
    .await;
}
