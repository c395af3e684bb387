//! The webhook receiver end to end on the embedded log: the real binary, real HTTP, and
//! the SQLite log file it writes, read back independently.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{event_body, now, run_to_exit, sign, sign_at, wait_until, Options, Revline, TEST_SECRET};
use eventlog::embedded::LogReader;

fn reader(app: &Revline) -> LogReader {
    LogReader::open(&app.log_path()).expect("open the event log")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/stripe-events")
            .join(name),
    )
    .expect("fixture")
}

#[tokio::test]
async fn signed_event_is_acknowledged_and_stored_byte_for_byte() {
    let app = Revline::start(Options::default()).await;
    let body = fixture("invoice.paid__2025-03-31.basil.json");
    let resp = app.post_signed(&body).await;
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    let id = answer["id"].as_str().unwrap().to_owned();
    assert_eq!(answer["received"], true);
    assert!(id.starts_with("evt_"));

    let stored = reader(&app).find(&id).unwrap().expect("event in the log");
    assert_eq!(
        stored.record.payload, body,
        "stored bytes differ from the posted bytes"
    );
    let h = &stored.record.headers;
    assert_eq!(h.event_type.as_deref(), Some("invoice.paid"));
    assert_eq!(h.api_version.as_deref(), Some("2025-03-31.basil"));
    assert_eq!(h.livemode, Some(false));
    assert_eq!(h.endpoint, "default");
    assert_eq!(h.flag, None);
    assert!(
        stored.record.key.starts_with("cus_"),
        "key {}",
        stored.record.key
    );
    assert!((h.received_at_ms / 1000 - now()).abs() < 60);
}

#[tokio::test]
async fn duplicate_event_is_acknowledged_and_stored_once() {
    let app = Revline::start(Options::default()).await;
    let body = event_body("evt_dup_1", "invoice.paid", "cus_dup");
    let first = app.post_signed(&body).await;
    assert_eq!(first.status(), 200);
    // Stripe re-signs each retry with a fresh timestamp.
    let second = app
        .post(
            "/webhooks/stripe",
            &body,
            Some(&sign_at(TEST_SECRET, now() - 5, &body)),
        )
        .await;
    assert_eq!(second.status(), 200);
    let answer: serde_json::Value = second.json().await.unwrap();
    assert_eq!(answer["id"], "evt_dup_1");
    assert_eq!(answer["duplicate"], true);
    assert_eq!(reader(&app).count().unwrap(), 1);
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("revline_webhook_duplicates_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn thousand_concurrent_distinct_events_are_all_stored_exactly_once() {
    let app = Revline::start(Options::default()).await;
    let bodies: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            event_body(
                &format!("evt_conc_{i:04}"),
                "invoice.paid",
                &format!("cus_{}", i % 37),
            )
        })
        .collect();
    let posts = bodies.iter().map(|b| app.post_signed(b));
    let statuses: Vec<u16> = futures_util::future::join_all(posts)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|&s| s == 200),
        "not all 200: {:?}",
        statuses.iter().filter(|&&s| s != 200).collect::<Vec<_>>()
    );

    let log = reader(&app);
    let records = log.read_after(0, 5000).unwrap();
    assert_eq!(records.len(), 1000);
    let mut ids: Vec<_> = records
        .iter()
        .map(|r| r.record.headers.event_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000);
    for r in &records {
        let i: usize = r.record.headers.event_id["evt_conc_".len()..]
            .parse()
            .unwrap();
        assert_eq!(r.record.payload, bodies[i]);
    }
}

#[tokio::test]
async fn every_rejected_request_stores_nothing() {
    let app = Revline::start(Options::default().env("REVLINE_BODY_LIMIT_BYTES", "4096")).await;
    let body = event_body("evt_rejected", "invoice.paid", "cus_r");
    let good = sign(TEST_SECRET, &body);
    let sig_hex = good.split_once(",v1=").unwrap().1.to_owned();
    let t = now();
    let cases: Vec<(Option<String>, u16, &str)> = vec![
        (None, 400, "missing_signature"),
        (Some(String::new()), 400, "missing_signature"),
        (Some(format!("v1={sig_hex}")), 400, "malformed_signature"),
        (
            Some(format!("t=abc,v1={sig_hex}")),
            400,
            "malformed_signature",
        ),
        (Some(format!("t={t},v0={sig_hex}")), 400, "no_v1_signature"),
        (Some(format!("t={t}, v1={sig_hex}")), 400, "no_v1_signature"),
        (
            Some(sign(
                e2e::TEST_SECRET.replace("test", "other").as_str(),
                &body,
            )),
            400,
            "no_matching_signature",
        ),
        (
            Some(sign_at(TEST_SECRET, t - 330, &body)),
            400,
            "timestamp_out_of_tolerance",
        ),
        (
            Some(sign_at(TEST_SECRET, t + 330, &body)),
            400,
            "timestamp_out_of_tolerance",
        ),
    ];
    for (header, status, code) in cases {
        let resp = app.post("/webhooks/stripe", &body, header.as_deref()).await;
        assert_eq!(resp.status().as_u16(), status, "{header:?}");
        let text = resp.text().await.unwrap();
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["error"], code, "{header:?}");
        assert!(
            !text.contains(TEST_SECRET) && !text.contains("whsec_"),
            "secret echoed: {text}"
        );
        assert!(!text.contains("evt_rejected"), "body echoed: {text}");
    }

    // A body changed after signing.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let resp = app.post("/webhooks/stripe", &tampered, Some(&good)).await;
    assert_eq!(resp.status(), 400);

    // Unknown endpoint, wrong method, too large.
    let resp = app.post("/webhooks/stripe/nope", &body, Some(&good)).await;
    assert_eq!(resp.status(), 404);
    let resp = app.get("/webhooks/stripe").await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let big = event_body("evt_big", "invoice.paid", "cus_r").repeat(2);
    let resp = app
        .post("/webhooks/stripe", &big, Some(&sign(TEST_SECRET, &big)))
        .await;
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["error"],
        "payload_too_large"
    );

    assert_eq!(
        reader(&app).count().unwrap(),
        0,
        "a rejected request was stored"
    );
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"revline_webhook_requests_total{outcome="rejected",reason="timestamp_out_of_tolerance"} 2"#),
        "{metrics}"
    );
    let logs = app.logs();
    assert!(!logs.contains(TEST_SECRET), "secret in the logs");
}

#[tokio::test]
async fn authentic_malformed_body_is_stored_once_and_flagged() {
    let app = Revline::start(
        Options::default()
            .env("REVLINE_ENDPOINT_LIVE_SECRET", "whsec_live_endpoint")
            .env("REVLINE_ENDPOINT_LIVE_LIVEMODE", "true"),
    )
    .await;
    let cases: Vec<(&[u8], &str)> = vec![
        (b"this is not json", "not_json"),
        (b"[1,2,3]", "not_an_object"),
        (
            br#"{"object":"event","type":"invoice.paid","created":1}"#,
            "missing_id",
        ),
        (
            br#"{"id":"evt_noobj","object":"invoice","type":"invoice.paid","created":1}"#,
            "unexpected_object",
        ),
    ];
    for (body, flag) in &cases {
        for _ in 0..2 {
            let resp = app.post_signed(body).await;
            assert_eq!(resp.status(), 200, "{flag}");
        }
    }
    // An event for test mode on an endpoint configured for live mode.
    let body = event_body("evt_wrong_mode", "invoice.paid", "cus_m");
    let resp = app
        .post(
            "/webhooks/stripe/live",
            &body,
            Some(&sign("whsec_live_endpoint", &body)),
        )
        .await;
    assert_eq!(resp.status(), 200);

    let records = reader(&app).read_after(0, 100).unwrap();
    assert_eq!(
        records.len(),
        cases.len() + 1,
        "each authentic body stored exactly once"
    );
    for ((body, flag), stored) in cases.iter().zip(&records) {
        assert_eq!(stored.record.payload, *body);
        assert_eq!(stored.record.headers.flag.as_deref(), Some(*flag));
    }
    assert!(records[0].record.headers.event_id.starts_with("sha256:"));
    let last = records.last().unwrap();
    assert_eq!(
        last.record.headers.flag.as_deref(),
        Some("livemode_mismatch")
    );
    assert_eq!(last.record.headers.endpoint, "live");
}

#[tokio::test]
async fn rotated_secrets_are_all_accepted() {
    let app = Revline::start(
        Options::default().env("STRIPE_WEBHOOK_SECRET", "whsec_old_one,whsec_new_one"),
    )
    .await;
    let a = event_body("evt_rot_a", "invoice.paid", "cus_x");
    let b = event_body("evt_rot_b", "invoice.paid", "cus_x");
    assert_eq!(
        app.post("/webhooks/stripe", &a, Some(&sign("whsec_old_one", &a)))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post("/webhooks/stripe", &b, Some(&sign("whsec_new_one", &b)))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post("/webhooks/stripe", &a, Some(&sign(TEST_SECRET, &a)))
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn first_run_generates_a_private_secret_and_prints_it_once() {
    let dir = e2e::TempDir::new("revline-e2e-first-run");
    let opts = || Options {
        with_secret: false,
        data_dir: Some(dir.path().to_owned()),
        ..Options::default()
    };
    let mut app = Revline::start(opts()).await;
    let path = dir.path().join("webhook_secret");
    let secret = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() > 40);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // stdout shows it with the stripe listen hint; the logs never do.
    assert!(
        app.wait_for_stdout("stripe listen --forward-to", Duration::from_secs(10))
            .await,
        "no stripe listen hint on stdout: {}",
        app.stdout()
    );
    assert!(app.stdout().contains(&secret));
    assert!(!app.logs().contains(&secret));

    let body = event_body("evt_first_run", "invoice.paid", "cus_f");
    assert_eq!(
        app.post("/webhooks/stripe", &body, Some(&sign(&secret, &body)))
            .await
            .status(),
        200
    );
    let unsigned = app.post("/webhooks/stripe", &body, None).await;
    assert_eq!(unsigned.status(), 400);
    assert!(app.terminate().success());

    // Second run: same secret, never printed again (checked on the whole of stdout, read to
    // its end after the process exited, so a slow reader cannot make this pass).
    let mut app = Revline::start(opts()).await;
    let body = event_body("evt_second_run", "invoice.paid", "cus_f");
    assert_eq!(
        app.post("/webhooks/stripe", &body, Some(&sign(&secret, &body)))
            .await
            .status(),
        200
    );
    assert!(app.terminate().success());
    let stdout = app.whole_stdout(Duration::from_secs(10)).await;
    assert!(!stdout.contains(&secret), "printed again: {stdout}");
    assert!(
        !stdout.contains("stripe listen"),
        "announced again: {stdout}"
    );
}

#[test]
fn config_errors_name_the_key_and_hide_secrets() {
    let (status, _, stderr) =
        run_to_exit(Options::default().env("REVLINE_WEBHOOK_TOLERANCE_SECS", "abc"));
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("REVLINE_WEBHOOK_TOLERANCE_SECS"),
        "{stderr}"
    );

    let (status, _, stderr) = run_to_exit(
        Options::default().env("STRIPE_WEBHOOK_SECRET", "sk_live_not_a_webhook_secret"),
    );
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("STRIPE_WEBHOOK_SECRET") && stderr.contains("whsec_"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("sk_live_not_a_webhook_secret"),
        "secret echoed: {stderr}"
    );

    let (status, _, stderr) = run_to_exit(Options {
        with_secret: false,
        ..Options::default().arg("ingest")
    });
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("STRIPE_WEBHOOK_SECRET"), "{stderr}");
}

#[tokio::test]
async fn health_readiness_and_graceful_shutdown() {
    let mut app = Revline::start(Options::default()).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);

    // 32 clients post distinct events back to back, so that requests are always in flight;
    // SIGTERM arrives in the middle. Requests in flight must finish, and every acknowledged
    // event must be in the log.
    let signalled: Arc<Mutex<Option<Instant>>> = Arc::default();
    let url = app.url("/webhooks/stripe");
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let (http, url, signalled) = (app.http.clone(), url.clone(), signalled.clone());
            tokio::spawn(async move {
                // (event id, answered after the signal)
                let mut acknowledged: Vec<(String, bool)> = Vec::new();
                for i in 0.. {
                    let id = format!("evt_shut_{c}_{i}");
                    let body = event_body(&id, "invoice.paid", "cus_s");
                    let sent = http
                        .post(&url)
                        .header("stripe-signature", sign(TEST_SECRET, &body))
                        .body(body)
                        .send()
                        .await;
                    let answered = Instant::now();
                    match sent {
                        Ok(resp) if resp.status() == 200 => {
                            let after = signalled.lock().unwrap().is_some_and(|t| answered > t);
                            acknowledged.push((id, after));
                        }
                        // Refused or cut once the server stops accepting: the client would retry.
                        _ => {
                            if signalled.lock().unwrap().is_some() {
                                break;
                            }
                        }
                    }
                    if signalled
                        .lock()
                        .unwrap()
                        .is_some_and(|t| t.elapsed() > Duration::from_secs(30))
                    {
                        break;
                    }
                }
                acknowledged
            })
        })
        .collect();
    let log_path = app.log_path();
    let stored = || {
        LogReader::open(&log_path)
            .ok()
            .and_then(|r| r.count().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(30), || stored() >= 200).await,
        "the clients did not get going"
    );
    *signalled.lock().unwrap() = Some(Instant::now());
    assert!(app.terminate().success());

    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap());
    }
    let after_signal = acknowledged.iter().filter(|(_, after)| *after).count();
    assert!(
        after_signal > 0,
        "no request in flight at SIGTERM was answered ({} acknowledged before)",
        acknowledged.len()
    );
    let reader = LogReader::open(&log_path).unwrap();
    for (id, _) in &acknowledged {
        assert!(
            reader.find(id).unwrap().is_some(),
            "{id} was acknowledged but is not in the log"
        );
    }
    // Stored may exceed acknowledged (a write that became durable after its request gave
    // up), never the other way round.
    assert!(reader.count().unwrap() as usize >= acknowledged.len());
}

#[tokio::test]
async fn a_log_that_cannot_commit_answers_503_and_recovers() {
    let app = Revline::start(Options::default().env("REVLINE_APPEND_DEADLINE_MS", "500")).await;
    let first = event_body("evt_before_lock", "invoice.paid", "cus_l");
    assert_eq!(app.post_signed(&first).await.status(), 200);

    // Another process holds the database's write lock (as a stuck disk or a backup tool
    // would): the log cannot commit within the request's deadline.
    let locker = rusqlite::Connection::open(app.log_path()).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let blocked = event_body("evt_while_locked", "invoice.paid", "cus_l");
    let resp = app.post_signed(&blocked).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["error"], "log_unavailable");
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            r#"revline_webhook_requests_total{outcome="unavailable",reason="deadline"} 1"#
        ),
        "{metrics}"
    );
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);

    // Stripe retries: the same event is acknowledged once the log commits again (it may
    // have been committed late after the 503, then it is a duplicate), and stored once.
    let mut status = 0;
    for _ in 0..50 {
        status = app.post_signed(&blocked).await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "the log did not recover:\n{}", app.logs());
    let reader = reader(&app);
    assert!(reader.find("evt_while_locked").unwrap().is_some());
    assert_eq!(reader.count().unwrap(), 2);
}

/// A body sent a byte a second is cut off after the body timeout with 408 and the
/// connection closed; nothing is stored, and a normal request right after succeeds.
#[tokio::test]
async fn a_trickling_body_is_cut_off_after_the_body_timeout() {
    use std::io::{Read, Write};
    let app = Revline::start(Options::default().env("REVLINE_BODY_TIMEOUT_SECS", "2")).await;
    let body = event_body("evt_slow", "invoice.paid", "cus_slow");
    let signature = sign(TEST_SECRET, &body);
    let addr = app.addr;
    let started = Instant::now();
    let (answer, elapsed) = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            conn,
            "POST /webhooks/stripe HTTP/1.1\r\nHost: revline\r\nContent-Type: application/json\r\n\
             Stripe-Signature: {signature}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        // One byte a second until the server answers or closes (a write then fails).
        for byte in &body {
            if conn.write_all(&[*byte]).is_err() {
                break;
            }
            let mut peek = [0u8; 1];
            conn.set_nonblocking(true).unwrap();
            let answered = matches!(conn.peek(&mut peek), Ok(n) if n > 0);
            conn.set_nonblocking(false).unwrap();
            if answered {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        (answer, started.elapsed())
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"body_timeout""#), "{answer}");
    assert!(
        elapsed < Duration::from_secs(15),
        "cut off after the timeout, not after the whole body: {elapsed:?}"
    );
    assert_eq!(reader(&app).count().unwrap(), 0);
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            r#"revline_webhook_requests_total{outcome="rejected",reason="body_timeout"} 1"#
        ),
        "{metrics}"
    );
    let ok = app
        .post_signed(&event_body("evt_fast", "invoice.paid", "cus_fast"))
        .await;
    assert_eq!(ok.status(), 200);
}
