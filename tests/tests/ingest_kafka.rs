//! The webhook receiver end to end in Kafka mode, against Tansu (a Kafka-protocol broker).

use std::time::{Duration, Instant};

use e2e::kafka::{brokers, consume, create_topic, headers, Tansu};
use e2e::{event_body, unique, Options, Revline};
use rdkafka::Message;

fn kafka_options(brokers: &str, topic: &str) -> Options {
    Options::default()
        .arg("ingest")
        .env("REVLINE_KAFKA_BROKERS", brokers)
        .env("REVLINE_KAFKA_TOPIC", topic)
}

#[tokio::test]
async fn record_value_key_and_headers_are_what_the_design_says() {
    let brokers = brokers();
    let topic = unique("events");
    create_topic(&brokers, &topic, 3).await;
    let app = Revline::start(kafka_options(&brokers, &topic)).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    let body = br#"{"id":"evt_kafka_1","object":"event","api_version":"2025-03-31.basil","created":1769907602,"account":"acct_1Connect","data":{"object":{"id":"in_k1","object":"invoice","customer":"cus_k1","amount_paid":2000}},"livemode":true,"type":"invoice.paid"}"#;
    let resp = app.post_signed(body).await;
    assert_eq!(resp.status(), 200);
    // A duplicate is acknowledged without a second record.
    assert_eq!(app.post_signed(body).await.status(), 200);
    // A malformed but authentic body is stored with its flag.
    let odd = b"not json at all";
    assert_eq!(app.post_signed(odd).await.status(), 200);

    let records = consume(
        &brokers,
        &topic,
        2,
        Duration::from_secs(30),
        Duration::from_secs(2),
    );
    assert_eq!(records.len(), 2, "expected exactly two records");
    let rec = records
        .iter()
        .find(|m| m.payload() == Some(&body[..]))
        .expect("event record");
    assert_eq!(rec.key(), Some(&b"acct_1Connect/cus_k1"[..]));
    let h = headers(rec);
    let get = |name: &str| h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(get("stripe-event-id"), Some("evt_kafka_1"));
    assert_eq!(get("stripe-event-type"), Some("invoice.paid"));
    assert_eq!(get("stripe-account"), Some("acct_1Connect"));
    assert_eq!(get("stripe-livemode"), Some("true"));
    assert_eq!(get("stripe-api-version"), Some("2025-03-31.basil"));
    assert_eq!(get("revline-format"), Some("1"));
    assert_eq!(get("revline-endpoint"), Some("default"));
    assert_eq!(get("revline-flag"), None);
    let received: i64 = get("revline-received-at").unwrap().parse().unwrap();
    assert!((received / 1000 - e2e::now()).abs() < 120);

    let odd_rec = records
        .iter()
        .find(|m| m.payload() == Some(&odd[..]))
        .expect("flagged record");
    let h = headers(odd_rec);
    assert!(
        h.contains(&("revline-flag".to_owned(), "not_json".to_owned())),
        "{h:?}"
    );
    assert!(h
        .iter()
        .any(|(k, v)| k == "stripe-event-id" && v.starts_with("sha256:")));
}

#[tokio::test]
async fn broker_down_answers_503_and_recovers_by_itself() {
    let mut tansu = Tansu::start();
    let topic = unique("outage");
    create_topic(&tansu.brokers(), &topic, 1).await;
    let app = Revline::start(
        kafka_options(&tansu.brokers(), &topic)
            .env("REVLINE_APPEND_DEADLINE_MS", "1500")
            .env("REVLINE_KAFKA_MESSAGE_TIMEOUT_MS", "5000"),
    )
    .await;
    let before = event_body("evt_before_outage", "invoice.paid", "cus_o");
    assert_eq!(app.post_signed(&before).await.status(), 200);

    tansu.stop();
    let mut unavailable = 0;
    for i in 0..3 {
        let body = event_body(&format!("evt_during_outage_{i}"), "invoice.paid", "cus_o");
        let resp = app.post_signed(&body).await;
        assert_eq!(resp.status(), 503, "acknowledged while the broker is down");
        assert!(resp.headers().contains_key("retry-after"));
        assert_eq!(
            resp.json::<serde_json::Value>().await.unwrap()["error"],
            "log_unavailable"
        );
        unavailable += 1;
    }
    assert_eq!(unavailable, 3);
    assert_eq!(app.get("/readyz").await.status(), 503);

    // The broker comes back (empty: in-memory storage), the topic is recreated, and the
    // same running revline starts acknowledging again without a restart.
    tansu.restart();
    create_topic(&tansu.brokers(), &topic, 1).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut recovered = None;
    let mut attempt = 0;
    while Instant::now() < deadline {
        let id = format!("evt_after_outage_{attempt}");
        let body = event_body(&id, "invoice.paid", "cus_o");
        let status = app.post_signed(&body).await.status().as_u16();
        assert!(status == 200 || status == 503, "unexpected status {status}");
        if status == 200 {
            recovered = Some(id);
            break;
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let Some(id) = recovered else {
        panic!(
            "revline did not recover within 90 s after the broker returned:\n{}",
            app.logs()
        );
    };
    let records = consume(
        &tansu.brokers(),
        &topic,
        1,
        Duration::from_secs(30),
        Duration::from_secs(2),
    );
    assert!(
        records
            .iter()
            .any(|m| headers(m).contains(&("stripe-event-id".to_owned(), id.clone()))),
        "the acknowledged event is not in the topic"
    );
    assert_eq!(app.get("/readyz").await.status(), 200);
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("revline_log_errors_total"), "{metrics}");
}
