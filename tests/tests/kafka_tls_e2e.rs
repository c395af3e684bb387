//! Kafka over TLS: Debian's `stunnel4` terminates TLS in front of a Tansu broker of the
//! test's own that advertises the TLS port. `revline migrate` creates the topics over TLS
//! (and prints librdkafka's built-in features), `revline serve` produces and consumes over
//! TLS with the test CA. A wrong CA fails with librdkafka's reason (the certificate could
//! not be verified), and SASL over TLS reaches the broker with the configured mechanism.
//!
//! SASL cannot complete against Tansu 0.6.0: it answers every SASL handshake with
//! "unsupported mechanism" while listing the very mechanism asked for (and with
//! `--authentication` it drops the connection), so the test shows the configured
//! mechanism reaching the broker through TLS, and the password never in the output; a
//! successful authentication needs a broker that implements SASL (Apache Kafka, managed
//! services).

use e2e::kafka::{free_port, Tansu};
use e2e::stripe::{
    paid_invoice_event, paid_invoice_register, post_all, reporting, wait_for_report,
};
use e2e::tls::{make_ca, make_leaf, Stunnel};
use e2e::{run_to_exit, unique, Options, Revline, TempDir};

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
    post_all(&app, &[paid_invoice_event("in_ktls", "cus_k", 1500)]).await;
    wait_for_report(
        &app,
        "/reports/invoices?format=csv&livemode=true",
        &paid_invoice_register("in_ktls", "cus_k", 1500),
    )
    .await;
}

#[tokio::test]
async fn a_wrong_ca_fails_with_the_reason_and_sasl_reaches_the_broker_over_tls() {
    let certs = TempDir::new("revline-kafka-tls-bad");
    make_ca(certs.path(), "test-ca");
    make_ca(certs.path(), "other-ca");
    make_leaf(certs.path(), "test-ca");
    let tls_port = free_port();
    let broker_port = std::iter::repeat_with(free_port)
        .find(|p| *p != tls_port)
        .unwrap();
    let _tansu = Tansu::start_advertising(broker_port, tls_port);
    let tls = Stunnel::start(
        tls_port,
        broker_port,
        &certs.path().join("leaf.pem"),
        &certs.path().join("leaf.key"),
    );
    const PASSWORD: &str = "sasl-Pa55word-never-shown";
    let migrate = |extra: Vec<(&'static str, String)>| {
        let mut opts = Options::default()
            .env("REVLINE_KAFKA_BROKERS", format!("127.0.0.1:{tls_port}"))
            .env("REVLINE_KAFKA_TOPIC", unique("tls-bad"))
            .arg("migrate");
        for (k, v) in extra {
            opts = opts.env(k, v);
        }
        tokio::task::spawn_blocking(move || run_to_exit(opts))
    };
    let ca = |name: &str| {
        certs
            .path()
            .join(format!("{name}.pem"))
            .display()
            .to_string()
    };
    let sasl = |mechanism: &str| {
        vec![
            (
                "REVLINE_KAFKA_RDKAFKA_SECURITY_PROTOCOL",
                "sasl_ssl".to_owned(),
            ),
            ("REVLINE_KAFKA_RDKAFKA_SSL_CA_LOCATION", ca("test-ca")),
            ("REVLINE_KAFKA_RDKAFKA_SASL_MECHANISM", mechanism.to_owned()),
            ("REVLINE_KAFKA_RDKAFKA_SASL_USERNAME", "revline".to_owned()),
            ("REVLINE_KAFKA_RDKAFKA_SASL_PASSWORD", PASSWORD.to_owned()),
        ]
    };
    // All at once: each waits out librdkafka's metadata timeout.
    let wrong_ca = migrate(vec![
        ("REVLINE_KAFKA_RDKAFKA_SECURITY_PROTOCOL", "ssl".to_owned()),
        ("REVLINE_KAFKA_RDKAFKA_SSL_CA_LOCATION", ca("other-ca")),
    ]);
    let mechanisms = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
    let sasl_runs: Vec<_> = mechanisms.iter().map(|m| migrate(sasl(m))).collect();

    let (status, _, stderr) = wrong_ca.await.unwrap();
    assert!(
        !status.success(),
        "an untrusted broker certificate must fail"
    );
    assert!(
        stderr.contains("certificate verify failed"),
        "the error says the broker's certificate was not trusted:\n{stderr}\n{}",
        tls.log()
    );
    for (mechanism, run) in mechanisms.iter().zip(sasl_runs) {
        let (status, _, stderr) = run.await.unwrap();
        assert!(!status.success(), "Tansu 0.6.0 completes no SASL handshake");
        assert!(
            stderr.contains(&format!("sasl_ssl://127.0.0.1:{tls_port}/bootstrap: SASL {mechanism} mechanism handshake failed"))
                && stderr.contains(&format!("broker's supported mechanisms: {mechanism}")),
            "TLS was established and the broker saw the {mechanism} handshake:\n{stderr}"
        );
        assert!(
            !stderr.contains(PASSWORD),
            "the SASL password leaked:\n{stderr}"
        );
    }
}
