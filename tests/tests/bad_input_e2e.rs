//! The bad-input catalogue, part two (part one is `ingest_embedded.rs`: missing, empty,
//! malformed and mismatched signatures, stale timestamps, tampered, oversized and
//! not-an-event bodies, unknown endpoint, wrong method, a trickling body). Against the real
//! `revline serve`: each unauthenticated request gets its exact status and error code and
//! stores nothing; each authentic but malformed body is stored once and dead-lettered with
//! its reason by the reconciler, which keeps running (no stack overflow on deep nesting).

use std::time::Duration;

use e2e::{now, sign, sign_at, wait_until, Options, Revline, TEST_SECRET};
use eventlog::embedded::LogReader;

fn event(id: &str, event_type: &str, object: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id, "object": "event", "type": event_type, "created": 1_772_323_200,
        "livemode": false, "api_version": "2025-03-31.basil", "data": {"object": object}
    }))
    .unwrap()
}

/// The reason each dead letter of the embedded warehouse gives, by event id.
fn dead_letters(app: &Revline) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(app.data_dir.join("warehouse.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, reason FROM dead_letters ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn unauthenticated_requests_get_their_code_and_store_nothing() {
    let app = Revline::start(Options::default()).await;
    let body = event(
        "evt_bad_sig",
        "invoice.paid",
        serde_json::json!({"id": "in_x"}),
    );
    let good = sign(TEST_SECRET, &body);
    let t = now();
    let v1 = good.split_once(",v1=").unwrap().1.to_owned();
    let many = |n: usize| {
        let mut h = format!("t={t}");
        for _ in 0..n {
            h.push_str(",v1=");
            h.push_str(&"0".repeat(64));
        }
        h
    };
    let cases: Vec<(&str, Vec<String>, u16, &str)> = vec![
        (
            "the header twice",
            vec![good.clone(), good.clone()],
            400,
            "malformed_signature",
        ),
        (
            "300 wrong v1 entries",
            vec![many(300)],
            400,
            "no_matching_signature",
        ),
        (
            "non-hex v1",
            vec![format!("t={t},v1={}", "zz".repeat(32))],
            400,
            "no_v1_signature",
        ),
        (
            "odd-length v1",
            vec![format!("t={t},v1={}", "0".repeat(63))],
            400,
            "no_v1_signature",
        ),
        (
            "a day in the future",
            vec![sign_at(TEST_SECRET, t + 86_400, &body)],
            400,
            "timestamp_out_of_tolerance",
        ),
        (
            "timestamp overflowing i64",
            vec![format!("t=99999999999999999999999,v1={v1}")],
            400,
            "malformed_signature",
        ),
        (
            "negative timestamp",
            vec![format!("t=-5,v1={v1}")],
            400,
            "malformed_signature",
        ),
        (
            "signed by another secret",
            vec![sign("whsec_someone_else", &body)],
            400,
            "no_matching_signature",
        ),
    ];
    for (what, headers, status, code) in &cases {
        let mut req = app
            .http
            .post(app.url("/webhooks/stripe"))
            .body(body.clone());
        for h in headers {
            req = req.header("stripe-signature", h.as_str());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), *status, "{what}");
        let answer: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(answer["error"], *code, "{what}");
    }
    // Thousands of v1 entries: the header itself is over the server's limit.
    let resp = app
        .http
        .post(app.url("/webhooks/stripe"))
        .header("stripe-signature", many(5_000))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 431, "5,000 v1 entries");
    // Over the limit without Content-Length (chunked): refused once the limit is passed.
    let addr = app.addr;
    let signature = sign(TEST_SECRET, b"{}");
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            conn,
            "POST /webhooks/stripe HTTP/1.1\r\nHost: revline\r\nTransfer-Encoding: chunked\r\n\
             Stripe-Signature: {signature}\r\n\r\n"
        )
        .unwrap();
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..32 {
            let sent = write!(conn, "{:x}\r\n", chunk.len())
                .and_then(|()| conn.write_all(&chunk))
                .and_then(|()| conn.write_all(b"\r\n"));
            if sent.is_err() {
                break;
            }
        }
        let _ = conn.write_all(b"0\r\n\r\n");
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "chunked body over the limit: {answer}"
    );
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert_eq!(
        LogReader::open(&app.log_path()).unwrap().count().unwrap(),
        0,
        "nothing unauthenticated is stored"
    );
}

#[tokio::test]
async fn authentic_malformed_bodies_are_stored_once_and_dead_lettered_with_the_reason() {
    let app = Revline::start(
        Options::default()
            .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "50")
            .env("REVLINE_BODY_LIMIT_BYTES", "262144"),
    )
    .await;
    let invoice = |id: &str| {
        serde_json::json!({
            "id": id, "object": "invoice", "customer": "cus_bad", "currency": "usd",
            "status": "paid", "amount_paid": 1, "amount_due": 1, "total": 1, "subtotal": 1,
            "created": 1_772_323_200,
            "lines": {"object": "list", "data": [], "has_more": false}
        })
    };
    let truncated = event("evt_trunc", "invoice.paid", invoice("in_trunc"));
    let huge_amount = String::from_utf8(event("evt_huge", "invoice.paid", invoice("in_huge")))
        .unwrap()
        .replace(
            r#""amount_paid":1"#,
            r#""amount_paid":99999999999999999999999"#,
        );
    let negative = String::from_utf8(event("evt_negative", "invoice.paid", invoice("in_neg")))
        .unwrap()
        .replace(r#""amount_paid":1"#, r#""amount_paid":-2000"#);
    let unknown_currency = String::from_utf8(event("evt_xyz", "invoice.paid", invoice("in_xyz")))
        .unwrap()
        .replace(r#""currency":"usd""#, r#""currency":"xyz""#);
    let deep = String::from_utf8(event("evt_deep", "invoice.paid", invoice("in_deep")))
        .unwrap()
        .replace(
            r#""id":"in_deep""#,
            &format!(
                r#""id":"in_deep","x":{}{}"#,
                "[".repeat(20_000),
                "]".repeat(20_000)
            ),
        );
    let bodies: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            truncated[..truncated.len() - 7].to_vec(),
            "sha256:",
            "not_json",
        ),
        (
            b"{\"id\":\"evt_\xff\xfe\",\"object\":\"event\"}".to_vec(),
            "sha256:",
            "not_json",
        ),
        (
            br#"{"id":"evt_no_type","object":"event","created":1}"#.to_vec(),
            "evt_no_type",
            "missing_type",
        ),
        (
            br#"{"id":"evt_no_created","object":"event","type":"invoice.paid"}"#.to_vec(),
            "evt_no_created",
            "missing_created",
        ),
        (huge_amount.into_bytes(), "evt_huge", "bad_object"),
        (negative.into_bytes(), "evt_negative", "bad_object"),
        (unknown_currency.into_bytes(), "evt_xyz", "bad_object"),
        (deep.into_bytes(), "evt_deep", "not_json"),
    ];
    for (body, id, _) in &bodies {
        let resp = app.post_signed(body).await;
        assert_eq!(resp.status(), 200, "{id}");
        let answer: serde_json::Value = resp.json().await.unwrap();
        assert!(answer["id"].as_str().unwrap().starts_with(id), "{answer}");
        // Twice: stored once all the same.
        assert_eq!(app.post_signed(body).await.status(), 200);
    }
    // An event type revline does not know: kept raw, no facts, no dead letter.
    let unknown = event(
        "evt_made_up",
        "made.up",
        serde_json::json!({"id": "x_1", "object": "thing"}),
    );
    assert_eq!(app.post_signed(&unknown).await.status(), 200);

    assert_eq!(
        LogReader::open(&app.log_path()).unwrap().count().unwrap(),
        bodies.len() as i64 + 1,
        "each authentic body stored exactly once"
    );
    let all = wait_until(Duration::from_secs(60), || {
        dead_letters(&app).len() == bodies.len()
    })
    .await;
    assert!(all, "{:?}\n{}", dead_letters(&app), app.logs());
    let letters = dead_letters(&app);
    for (_, id, reason) in &bodies {
        assert!(
            letters
                .iter()
                .any(|(i, r)| i.starts_with(id) && r == reason),
            "{id}: {reason} expected in {letters:?}"
        );
    }
    // The reconciler is still alive and well: a good event after all that is reconciled.
    let good = event("evt_after", "invoice.paid", invoice("in_after"));
    assert_eq!(app.post_signed(&good).await.status(), 200);
    let conn = rusqlite::Connection::open(app.data_dir.join("warehouse.sqlite")).unwrap();
    let reconciled = wait_until(Duration::from_secs(60), || {
        conn.query_row(
            "SELECT count(*) FROM invoices WHERE id = 'in_after'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(0)
            == 1
    })
    .await;
    assert!(reconciled, "{}", app.logs());
    let refused: i64 = conn
        .query_row(
            "SELECT count(*) FROM invoices WHERE id IN ('in_neg', 'in_xyz')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        refused, 0,
        "a negative payment or an unknown currency is no fact"
    );
    let raw_unknown: i64 = conn
        .query_row(
            "SELECT count(*) FROM stripe_events WHERE id = 'evt_made_up'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(raw_unknown, 1, "the unknown type is kept raw");
    assert!(!app.logs().contains("panicked"), "{}", app.logs());
}

/// A flood of unsigned requests (64 connections, as fast as they go, for 10 s) while a
/// second client posts 100 valid events at 10 per second: every valid one gets 200 and is
/// stored, every flood request gets 400 and stores nothing. The valid events' latencies
/// are printed (p50, p99, worst); `bench/flood.sh` runs this on a release build and the
/// figures are in BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_unsigned_requests_does_not_keep_valid_events_out() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    let app = Revline::start(Options::default()).await;
    let url = app.url("/webhooks/stripe");
    let stop = Arc::new(AtomicBool::new(false));
    let (refused, other) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let flood: Vec<_> = (0..64)
        .map(|i| {
            let (url, stop) = (url.clone(), stop.clone());
            let (refused, other) = (refused.clone(), other.clone());
            tokio::spawn(async move {
                // One connection per flooder, kept alive.
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let body = event(
                    &format!("evt_flood_{i}"),
                    "invoice.paid",
                    serde_json::json!({"id": "in_flood"}),
                );
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    let sent = client.post(&url).body(body.clone()).send().await;
                    match sent {
                        Ok(r) if r.status() == 400 => refused.fetch_add(1, Ordering::Relaxed),
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    // 100 valid events at 10 per second, each timed from send to answer.
    let mut latencies = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let valid = reqwest::Client::new();
    for n in 0..100 {
        ticker.tick().await;
        let body = event(
            &format!("evt_valid_{n}"),
            "invoice.paid",
            serde_json::json!({"id": format!("in_valid_{n}"), "object": "invoice",
                "customer": "cus_v", "currency": "usd", "status": "paid",
                "amount_paid": 100, "amount_due": 100, "total": 100, "subtotal": 100}),
        );
        let started = Instant::now();
        let resp = valid
            .post(&url)
            .header("stripe-signature", sign(TEST_SECRET, &body))
            .body(body)
            .send()
            .await
            .expect("a valid event's post");
        latencies.push(started.elapsed());
        assert_eq!(resp.status(), 200, "valid event {n} during the flood");
    }
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.await.unwrap();
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "flood: {} unsigned requests refused with 400 ({} other outcomes); 100 valid events: \
         p50 {:?}, p99 {:?}, worst {:?}",
        refused.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
        at(0.50),
        at(0.99),
        latencies.last().unwrap()
    );
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the flood never reached the server"
    );
    assert_eq!(
        other.load(Ordering::Relaxed),
        0,
        "every flood request gets 400"
    );
    assert_eq!(
        LogReader::open(&app.log_path()).unwrap().count().unwrap(),
        100,
        "the 100 valid events are stored, nothing of the flood is"
    );
}
