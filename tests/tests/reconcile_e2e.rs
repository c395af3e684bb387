//! Reconcile end to end: signed events posted to the real binary, through Tansu (Kafka
//! protocol) or the embedded log, into real ClickHouse or the embedded warehouse.

use std::time::Duration;

use e2e::clickhouse::{url as clickhouse_url, ClickHouseServer, TestDb};
use e2e::facts::{assert_same, first_difference, snapshot};
use e2e::kafka::{brokers, consume, create_topic, headers};
use e2e::{unique, wait_until, wait_until_async, Options, Revline};
use schemas::facts::*;
use schemas::LogRecord;
use testkit::scenario;
use warehouse::embedded::Embedded;
use warehouse::{StateQuery, Warehouse};

/// Posts every record's body, signed now, 16 at a time; all must be acknowledged.
async fn post_all(app: &Revline, records: &[LogRecord]) {
    for chunk in records.chunks(16) {
        let posts = chunk.iter().map(|r| app.post_signed(&r.payload));
        for resp in futures_util::future::join_all(posts).await {
            assert_eq!(resp.status(), 200);
        }
    }
}

fn fixtures() -> Vec<LogRecord> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/stripe-events");
    [
        "invoice.paid__2025-03-31.basil.json",
        "invoice.paid__2025-02-24.acacia.json",
        "customer.subscription.updated__2025-03-31.basil__renewal.json",
        "charge.refunded__2025-03-31.basil__partial.json",
        "refund.created__2025-03-31.basil.json",
        "thin__v1.billing.meter.error_report_triggered.json",
    ]
    .iter()
    .map(|f| {
        let body = std::fs::read(dir.join(f)).unwrap();
        let env = schemas::Envelope::parse(&body, None);
        LogRecord::new(body, &env, "default", 0)
    })
    .collect()
}

/// A topic and its dead-letter topic on the shared broker.
struct Topics {
    brokers: String,
    events: String,
    dlq: String,
}

async fn topics(partitions: i32) -> Topics {
    let brokers = brokers();
    let events = unique("events");
    let dlq = format!("{events}.dlq");
    create_topic(&brokers, &events, partitions).await;
    create_topic(&brokers, &dlq, 1).await;
    Topics {
        brokers,
        events,
        dlq,
    }
}

/// Ingest producing to Tansu, one record per record batch.
///
/// Tansu 0.6.0 skips records when a fetch starts inside a record batch: with records 0–9
/// produced as one batch and 10–19 as another, a fetch from offset 3 returns offset 10
/// first, so 3–9 are never delivered (Apache Kafka returns the batch holding offset 3 and
/// the client skips 0–2). A consumer that resumes from a committed offset after a crash
/// or a rebalance lands inside a batch whenever ingest batched several events, and the
/// rest of that batch is stranded: that was the intermittent "only 533 of 534 events
/// reconciled" of the crash tests. One record per batch (`batch.num.messages=1`) keeps
/// every committed offset on a batch boundary. Real Kafka needs no such setting.
fn ingest(t: &Topics) -> Options {
    Options::default()
        .arg("ingest")
        .env("REVLINE_KAFKA_BROKERS", &t.brokers)
        .env("REVLINE_KAFKA_TOPIC", &t.events)
        .env("REVLINE_KAFKA_RDKAFKA_BATCH_NUM_MESSAGES", "1")
}

fn reconciler(t: &Topics, group: &str, clickhouse: &str, database: &str) -> Options {
    Options::default()
        .arg("reconcile")
        .env("REVLINE_KAFKA_BROKERS", &t.brokers)
        .env("REVLINE_KAFKA_TOPIC", &t.events)
        .env("REVLINE_KAFKA_DLQ_TOPIC", &t.dlq)
        .env("REVLINE_KAFKA_GROUP_ID", group)
        .env("REVLINE_CLICKHOUSE_URL", clickhouse)
        .env("REVLINE_CLICKHOUSE_DATABASE", database)
        .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "100")
        .env("REVLINE_RECONCILE_SWEEP_SECS", "2")
        // The bounded state at its smallest: every batch reads its state back from
        // ClickHouse (compared with `revline serve`, which keeps all of it, below).
        .env("REVLINE_RECONCILE_STATE_CACHE_MB", "0")
        .env("REVLINE_KAFKA_RDKAFKA_SESSION_TIMEOUT_MS", "6000")
        .env("REVLINE_KAFKA_RDKAFKA_HEARTBEAT_INTERVAL_MS", "1000")
        .env("REVLINE_KAFKA_RDKAFKA_MAX_POLL_INTERVAL_MS", "10000")
}

/// Waits until `db` holds `n` raw events (written after each batch's facts).
async fn wait_for_events(db: &TestDb, n: u64, timeout: Duration, logs: impl Fn() -> String) {
    if !wait_until_async(timeout, || async { db.count("stripe_events").await >= n }).await {
        panic!(
            "only {} of {n} events reconciled in {timeout:?}:\n{}",
            db.count("stripe_events").await,
            logs()
        );
    }
}

/// Which records of the topic have no event in `db` yet, with their partition and offset:
/// what a failed wait prints, so that a stranded event can be traced to its partition.
async fn missing_records(t: &Topics, db: &TestDb, n: usize) -> String {
    use rdkafka::Message;
    let stored = e2e::clickhouse::http(
        &db.url,
        &format!("SELECT id FROM {}.stripe_events FINAL", db.name),
    )
    .await
    .unwrap_or_default();
    let stored: std::collections::HashSet<&str> = stored.lines().collect();
    let brokers = t.brokers.clone();
    let topic = t.events.clone();
    let records = tokio::task::spawn_blocking(move || {
        consume(
            &brokers,
            &topic,
            n,
            Duration::from_secs(20),
            Duration::from_secs(1),
        )
    })
    .await
    .unwrap();
    let mut out = Vec::new();
    for m in &records {
        let body: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
        let id = body["id"].as_str().unwrap_or("?");
        if !stored.contains(id) {
            out.push(format!(
                "{id} at partition {} offset {}",
                m.partition(),
                m.offset()
            ));
        }
    }
    format!("{} records read, missing: {out:?}", records.len())
}

/// Waits until `db` holds the `n` events of the topic, and otherwise fails naming the
/// records still missing (partition and offset) with every member's logs.
async fn wait_for_all(t: &Topics, db: &TestDb, n: usize, timeout: Duration, members: &[&Revline]) {
    let all = wait_until_async(timeout, || async {
        db.count("stripe_events").await >= n as u64
    })
    .await;
    if !all {
        let logs: Vec<String> = members.iter().map(|m| m.logs()).collect();
        panic!(
            "only {} of {n} events reconciled in {timeout:?}; {}\n{}",
            db.count("stripe_events").await,
            missing_records(t, db, n).await,
            logs.join("\n---\n")
        );
    }
}

/// Waits until two warehouses hold the same facts: writes land table by table, and with
/// several consumers an orphan whose parent another member reconciled is resolved by the
/// periodic sweep (2 s in these tests), possibly in two steps (charge, then invoice).
async fn wait_same<A: Warehouse, B: Warehouse>(a: &A, b: &B, ignore_receipt: bool, what: &str) {
    for _ in 0..200 {
        if first_difference(
            &snapshot(a, ignore_receipt).await,
            &snapshot(b, ignore_receipt).await,
        )
        .is_none()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_same(
        &snapshot(a, ignore_receipt).await,
        &snapshot(b, ignore_receipt).await,
        what,
    );
}

/// Reconciles the whole topic once more, uninterrupted, into `reference` (a group of its
/// own) and waits until `db` holds the same facts.
async fn assert_same_as_uninterrupted(
    t: &Topics,
    reference: &TestDb,
    db: &TestDb,
    events: usize,
    what: &str,
) {
    let check = Revline::start(reconciler(
        t,
        &unique("ref"),
        &reference.url,
        &reference.name,
    ))
    .await;
    wait_for_events(reference, events as u64, Duration::from_secs(120), || {
        check.logs()
    })
    .await;
    wait_same(&reference.warehouse(), &db.warehouse(), false, what).await;
}

#[tokio::test]
async fn kafka_events_land_as_the_expected_facts_in_clickhouse() {
    let t = topics(3).await;
    let db = TestDb::new(&clickhouse_url().await);
    let app = Revline::start(ingest(&t)).await;
    let rec = Revline::start(reconciler(&t, &unique("group"), &db.url, &db.name)).await;
    post_all(&app, &fixtures()).await;
    wait_for_events(&db, 6, Duration::from_secs(60), || rec.logs()).await;

    let w = db.warehouse();
    let invoices = w.fetch_all::<InvoiceRow>().await.unwrap();
    assert_eq!(invoices.len(), 2);
    for inv in &invoices {
        assert_eq!(
            (
                inv.status.as_deref(),
                inv.total,
                inv.amount_paid,
                inv.currency.as_str()
            ),
            (Some("paid"), 2000, 2000, "usd")
        );
        assert!(inv.subscription_id.is_some());
    }
    let lines = w.fetch_all::<InvoiceLineRow>().await.unwrap();
    assert_eq!(
        lines.iter().map(|l| l.recognizable_amount).sum::<i64>(),
        4000
    );
    let refunds = w.fetch_all::<RefundRow>().await.unwrap();
    assert_eq!(
        (refunds[0].id.as_str(), refunds[0].amount),
        ("re_1ExampleRefund0001", 500)
    );
    assert_eq!(
        refunds[0].charge_id.as_deref(),
        Some("ch_1ExampleCharge0001")
    );
    let payments = w.fetch_all::<PaymentRow>().await.unwrap();
    assert_eq!(
        (payments[0].amount, payments[0].amount_refunded),
        (2000, 500)
    );
    let items = w.fetch_all::<SubscriptionItemRow>().await.unwrap();
    assert_eq!(
        (
            items[0].status.as_str(),
            items[0].quantity,
            items[0].valid_to
        ),
        ("active", 1, None)
    );
    let dead = w.fetch_all::<DeadLetterRow>().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "thin_event");

    // The poison record went to the dead-letter topic with its reason.
    let dlq = consume(
        &t.brokers,
        &t.dlq,
        1,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    assert_eq!(dlq.len(), 1);
    assert!(headers(&dlq[0]).contains(&("revline-dlq-reason".to_owned(), "thin_event".to_owned())));
    let metrics = rec.admin_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"revline_reconcile_dead_letters_total{reason="thin_event"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn reconcile_killed_mid_stream_gives_the_same_facts_as_an_uninterrupted_run() {
    let t = topics(4).await;
    let url = clickhouse_url().await;
    let (uninterrupted, killed) = (TestDb::new(&url), TestDb::new(&url));
    let app = Revline::start(ingest(&t)).await;
    let records = scenario(11, 60);
    let n = records.len() as u64;
    post_all(&app, &records).await;

    let reference = Revline::start(reconciler(&t, &unique("ref"), &url, &uninterrupted.name)).await;
    wait_for_events(&uninterrupted, n, Duration::from_secs(120), || {
        reference.logs()
    })
    .await;

    let group = unique("killed");
    // Checkpoints of three batches: the kill lands between two, with facts of the batches
    // after the last one written or not, and their offsets not committed.
    let opts = || {
        reconciler(&t, &group, &url, &killed.name)
            .env("REVLINE_RECONCILE_BATCH_EVENTS", "20")
            .env("REVLINE_RECONCILE_CHECKPOINT_EVENTS", "60")
    };
    let mut first = Revline::start(opts()).await;
    assert!(
        wait_until_async(Duration::from_secs(60), || async {
            killed.count("stripe_events").await >= n / 4
        })
        .await
    );
    first.kill(); // SIGKILL: no chance to commit or flush anything
    let at_kill = killed.count("stripe_events").await;
    assert!(
        at_kill < n,
        "killed after the whole stream ({at_kill} of {n}); not mid-stream"
    );
    let second = Revline::start(opts()).await;
    wait_for_events(&killed, n, Duration::from_secs(120), || second.logs()).await;

    wait_same(
        &uninterrupted.warehouse(),
        &killed.warehouse(),
        false,
        "killed run vs uninterrupted run",
    )
    .await;
}

#[tokio::test]
async fn clickhouse_outage_makes_reconcile_wait_then_catch_up_without_loss() {
    let t = topics(2).await;
    let mut server = ClickHouseServer::start().await;
    let db = TestDb::new(&server.url());
    let reference = TestDb::new(&clickhouse_url().await);
    let app = Revline::start(ingest(&t)).await;
    let rec = Revline::start(reconciler(&t, &unique("outage"), &server.url(), &db.name)).await;

    let records = scenario(23, 30);
    let (before, after) = records.split_at(records.len() / 2);
    post_all(&app, before).await;
    wait_for_events(&db, before.len() as u64, Duration::from_secs(60), || {
        rec.logs()
    })
    .await;

    server.stop();
    post_all(&app, after).await; // ingest does not depend on ClickHouse
    assert!(
        wait_until(Duration::from_secs(30), || rec
            .logs()
            .lines()
            // Whichever call meets the outage first (a write, or the orphan sweep) waits.
            .any(
                |l| l.contains("failed; retrying") && l.contains("warehouse unavailable")
            ))
        .await,
        "reconcile did not notice the outage:\n{}",
        rec.logs()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart().await;
    wait_for_events(&db, records.len() as u64, Duration::from_secs(120), || {
        rec.logs()
    })
    .await;

    assert_same_as_uninterrupted(
        &t,
        &reference,
        &db,
        records.len(),
        "after the outage vs without one",
    )
    .await;
}

/// The partitions each process was last assigned, from its logs.
fn last_assignment(logs: &str) -> Option<Vec<i64>> {
    logs.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "partitions assigned")
        .and_then(|v| serde_json::from_str(v["fields"]["partitions"].as_str()?).ok())
}

/// Whether two members' last assignments cover every partition of four between them.
fn split_between(a: &Revline, b: &Revline) -> bool {
    split_among(&[a, b], 4)
}

/// Whether every member's last assignment is non-empty and together they hold each of
/// `partitions` partitions exactly once.
fn split_among(members: &[&Revline], partitions: i64) -> bool {
    let mut all = Vec::new();
    for member in members {
        match last_assignment(&member.logs()) {
            Some(held) if !held.is_empty() => all.extend(held),
            _ => return false,
        }
    }
    all.sort();
    all == (0..partitions).collect::<Vec<_>>()
}

/// Two members split the partitions; one is killed mid-stream; its partitions move on
/// without loss or double counting.
///
/// Tansu 0.6.0 limitation, seen here: when a member's session expires, Tansu drops it but
/// keeps the group "formed" and answers the survivor's SyncGroup with the previous
/// assignment (its `Formed::sync` ignores the leader's new one), so the survivor alone
/// never receives the dead member's partitions. Apache Kafka starts a new generation
/// instead. The test therefore lets a replacement member join (what an orchestrator does
/// after a crash), which makes Tansu form a new generation; the dead member's uncommitted
/// batch is then replayed by its new owner.
#[tokio::test]
async fn two_reconcilers_split_partitions_and_a_killed_ones_work_moves_on() {
    let t = topics(4).await;
    let url = clickhouse_url().await;
    let (db, reference) = (TestDb::new(&url), TestDb::new(&url));
    let app = Revline::start(ingest(&t)).await;
    let group = unique("pair");
    // Checkpoints of up to three batches: a kill can land inside one.
    let member = || {
        reconciler(&t, &group, &url, &db.name)
            .env("REVLINE_RECONCILE_BATCH_EVENTS", "20")
            .env("REVLINE_RECONCILE_CHECKPOINT_EVENTS", "60")
    };
    let mut a = Revline::start(member()).await;
    let b = Revline::start(member()).await;
    let split = wait_until(Duration::from_secs(60), || split_between(&a, &b)).await;
    assert!(
        split,
        "the two members did not split the partitions:\nA:\n{}\nB:\n{}",
        a.logs(),
        b.logs()
    );

    let records = scenario(31, 40);
    let (first, second) = records.split_at(records.len() / 2);
    post_all(&app, first).await;
    wait_for_events(&db, first.len() as u64 / 2, Duration::from_secs(60), || {
        format!("{}\n{}", a.logs(), b.logs())
    })
    .await;
    let assignments = |logs: &str| logs.matches("partitions assigned").count();
    let before = assignments(&b.logs());
    a.kill(); // SIGKILL, possibly in the middle of a batch
    post_all(&app, second).await;
    // Once Tansu expires A (session timeout 6 s) B goes through a rebalance; a member that
    // joins before that would share the partitions with the dead one.
    let expired = wait_until(Duration::from_secs(60), || assignments(&b.logs()) > before).await;
    assert!(expired, "A's session never expired:\n{}", b.logs());
    let c = Revline::start(member()).await;
    let covered = wait_until(Duration::from_secs(60), || split_between(&b, &c)).await;
    assert!(
        covered,
        "B and C did not take over every partition:\nB:\n{}\nC:\n{}",
        b.logs(),
        c.logs()
    );
    wait_for_all(&t, &db, records.len(), Duration::from_secs(120), &[&b, &c]).await;

    assert_same_as_uninterrupted(
        &t,
        &reference,
        &db,
        records.len(),
        "members with a crash vs one member",
    )
    .await;
}

#[tokio::test]
async fn embedded_serve_gives_the_same_facts_as_kafka_and_clickhouse() {
    let records = scenario(47, 25);
    let n = records.len() as u64;
    let t = topics(3).await;
    let db = TestDb::new(&clickhouse_url().await);
    let app = Revline::start(ingest(&t)).await;
    let rec = Revline::start(reconciler(&t, &unique("cmp"), &db.url, &db.name)).await;
    post_all(&app, &records).await;

    let serve =
        Revline::start(Options::default().env("REVLINE_RECONCILE_BATCH_WAIT_MS", "100")).await;
    post_all(&serve, &records).await;
    wait_for_events(&db, n, Duration::from_secs(120), || rec.logs()).await;
    let embedded = Embedded::open(&serve.data_dir).unwrap();
    assert!(
        wait_for_count(&embedded, n).await,
        "serve did not reconcile every event:\n{}",
        serve.logs()
    );
    wait_same(
        &db.warehouse(),
        &embedded,
        true,
        "ClickHouse via Kafka vs embedded",
    )
    .await;
}

#[tokio::test]
async fn both_warehouse_adapters_hold_identical_facts_for_the_same_events() {
    let (facts, _) = reconcile::matcher::reconcile(Default::default(), &scenario(5, 20));
    let facts = std::sync::Arc::new(facts);
    let db = TestDb::new(&clickhouse_url().await);
    let clickhouse = db.warehouse();
    clickhouse.migrate().await.unwrap();
    let dir = e2e::TempDir::new("revline-e2e-adapters");
    let embedded = Embedded::open(dir.path()).unwrap();
    embedded.migrate().await.unwrap();
    for _ in 0..2 {
        // Writing twice changes nothing: the tables are idempotent.
        clickhouse.write(facts.clone()).await.unwrap();
        embedded.write(facts.clone()).await.unwrap();
    }
    let (ch, em) = (
        snapshot(&clickhouse, false).await,
        snapshot(&embedded, false).await,
    );
    assert!(
        ch["invoices"].len() > 5 && ch["subscription_items"].len() > 5 && ch["payments"].len() > 5
    );
    assert_same(&ch, &em, "ClickHouse vs embedded");
    assert_eq!(
        clickhouse.migrate().await.unwrap(),
        Vec::<String>::new(),
        "migrations are applied once"
    );
}

/// A migrated ClickHouse warehouse in a database of its own and a migrated embedded one in
/// a temporary directory (each dropped with its guard).
async fn both_adapters(
    name: &str,
) -> (
    TestDb,
    warehouse::clickhouse::ClickHouse,
    e2e::TempDir,
    Embedded,
) {
    let db = TestDb::new(&clickhouse_url().await);
    let clickhouse = db.warehouse();
    clickhouse.migrate().await.unwrap();
    let dir = e2e::TempDir::new(name);
    let embedded = Embedded::open(dir.path()).unwrap();
    embedded.migrate().await.unwrap();
    (db, clickhouse, dir, embedded)
}

fn raw_event(id: &str, received_at_ms: i64, version: u64) -> EventRow {
    EventRow {
        id: id.to_owned(),
        event_type: Some("invoice.paid".to_owned()),
        api_version: None,
        created_at: None,
        livemode: 0,
        account: None,
        object_type: None,
        object_id: None,
        endpoint: "default".to_owned(),
        received_at_ms,
        flag: None,
        payload: format!("{{\"id\":\"{id}\",\"v\":{version}}}"),
        version,
    }
}

/// The raw events after `after`, as `revline replay` reads them.
async fn raw_events<W: Warehouse>(w: &W, after: Option<(i64, &str)>) -> Vec<(String, i64, u64)> {
    use futures_util::TryStreamExt;
    let after = after.map(|(at, id)| (at, id.to_owned()));
    let rows: Vec<EventRow> = w.raw_events(after).try_collect().await.unwrap();
    rows.into_iter()
        .map(|r| (r.id, r.received_at_ms, r.version))
        .collect()
}

/// What replay reads: receipt order, ties by id, each event once in its newest version even
/// when a redelivery moved it later (written as separate inserts, so ClickHouse holds both
/// versions in unmerged parts), the same on both adapters, and from any position.
#[tokio::test]
async fn replay_reads_each_event_once_in_receipt_order_on_both_adapters() {
    let (_db, clickhouse, _dir, embedded) = both_adapters("revline-e2e-raw-events").await;
    // 2,100 events (more than one of the embedded adapter's pages), three per millisecond;
    // then e_0005 received again later, e_0020 again at its own time, and e_0012 again
    // earlier with an older version (which must lose).
    let first: Vec<EventRow> = (0..2_100)
        .map(|i| raw_event(&format!("e_{i:04}"), 1_000 + i / 3, 1))
        .collect();
    let again = vec![
        raw_event("e_0005", 5_000, 2),
        raw_event("e_0020", 1_006, 2),
        raw_event("e_0012", 900, 0),
    ];
    for rows in [first, again] {
        let facts = std::sync::Arc::new(FactSet {
            events: rows,
            ..FactSet::default()
        });
        clickhouse.write(facts.clone()).await.unwrap();
        embedded.write(facts).await.unwrap();
    }
    let mut expected: Vec<(String, i64, u64)> = (0..2_100)
        .filter(|i| *i != 5)
        .map(|i| {
            (
                format!("e_{i:04}"),
                1_000 + i / 3,
                if i == 20 { 2 } else { 1 },
            )
        })
        .collect();
    expected.push(("e_0005".to_owned(), 5_000, 2));
    assert_eq!(raw_events(&clickhouse, None).await, expected, "ClickHouse");
    assert_eq!(raw_events(&embedded, None).await, expected, "embedded");
    // Resuming after a position: what follows it, ties at its millisecond included.
    let after = (1_006, "e_0019");
    let rest: Vec<_> = expected
        .iter()
        .filter(|(id, at, _)| (*at, id.as_str()) > after)
        .cloned()
        .collect();
    assert_eq!(rest[0].0, "e_0020");
    assert_eq!(
        raw_events(&clickhouse, Some(after)).await,
        rest,
        "ClickHouse, resumed"
    );
    assert_eq!(
        raw_events(&embedded, Some(after)).await,
        rest,
        "embedded, resumed"
    );
}

/// The state rows a sweep asks for by prefix and age, keys only: the rows written since a
/// version, newest per id, each with its value left out unless it is `null` (a deleted
/// row); the same on both adapters, and a full read of the same rows still has the values.
#[tokio::test]
async fn state_reads_by_prefix_and_age_can_leave_the_values_out_on_both_adapters() {
    let (_db, clickhouse, _dir, embedded) = both_adapters("revline-e2e-state-keys").await;
    let row = |id: &str, value: &str, version: u64| StateRow {
        id: id.to_owned(),
        value: value.to_owned(),
        version,
    };
    // Two writes, so ClickHouse holds an older and a newer version of pend:b and
    // wait:ch_1#p in separate parts.
    let writes = [
        vec![
            row("pend:a", r#"{"old":true}"#, 10),
            row("pend:b", r#"{"fact":"b"}"#, 100),
            row("wait:ch_1#p", r#"{"fact":"w"}"#, 100),
            row("ch:ch_1", r#"{"customer":"cus_1"}"#, 200),
        ],
        vec![
            row("pend:b", r#"{"fact":"b2"}"#, 300),
            row("wait:ch_1#p", "null", 300),
            row("pend:c", r#"{"fact":"c"}"#, 300),
        ],
    ];
    for rows in writes {
        let facts = std::sync::Arc::new(FactSet {
            state: rows,
            ..FactSet::default()
        });
        clickhouse.write(facts.clone()).await.unwrap();
        embedded.write(facts).await.unwrap();
    }
    let recent = StateQuery {
        prefixes: vec!["pend:".to_owned(), "wait:".to_owned()],
        since: Some(50),
        keys_only: true,
        ..StateQuery::default()
    };
    let read = |mut rows: Vec<StateRow>| {
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows.into_iter()
            .map(|r| (r.id, r.value, r.version))
            .collect::<Vec<_>>()
    };
    let keys = vec![
        ("pend:b".to_owned(), String::new(), 300),
        ("pend:c".to_owned(), String::new(), 300),
        ("wait:ch_1#p".to_owned(), "null".to_owned(), 300),
    ];
    for (name, rows) in [
        (
            "ClickHouse",
            clickhouse.load_state_matching(&recent).await.unwrap(),
        ),
        (
            "embedded",
            embedded.load_state_matching(&recent).await.unwrap(),
        ),
    ] {
        assert_eq!(read(rows), keys, "{name}, keys only");
    }
    let full = StateQuery {
        keys_only: false,
        ..recent.clone()
    };
    for (name, rows) in [
        (
            "ClickHouse",
            clickhouse.load_state_matching(&full).await.unwrap(),
        ),
        (
            "embedded",
            embedded.load_state_matching(&full).await.unwrap(),
        ),
    ] {
        let rows = read(rows);
        assert_eq!(rows[0].1, r#"{"fact":"b2"}"#, "{name}, with values");
        assert_eq!(rows[1].1, r#"{"fact":"c"}"#, "{name}, with values");
        assert_eq!(rows.len(), 3, "{name}, with values");
    }
}

/// A ClickHouse warehouse at schema 001 with rows in it, and migration 002 interrupted after
/// its first column: `migrate` finishes 002 (18.16 has no `ADD COLUMN IF NOT EXISTS`, so
/// revline skips the columns already there) and keeps the rows; 003 moves invoice payments
/// out of payments.
#[tokio::test]
async fn clickhouse_upgrades_resume_and_keep_the_rows_written_at_schema_001() {
    let db = TestDb::new(&clickhouse_url().await);
    let w = db.warehouse();
    w.migrate().await.unwrap();
    // Back to what a build that knew only 001 left, then the first statement of 002 again.
    for stmt in [
        "DROP TABLE discounts",
        "DROP TABLE coupons",
        "DROP TABLE invoice_payments",
        "ALTER TABLE subscription_items DROP COLUMN billing_scheme",
        "ALTER TABLE subscription_items DROP COLUMN tiers_mode",
        "ALTER TABLE subscription_items DROP COLUMN tiers",
        "ALTER TABLE subscription_items DROP COLUMN transform_divide_by",
        "ALTER TABLE subscription_items DROP COLUMN transform_round",
        "ALTER TABLE subscription_items DROP COLUMN item_discount_ids",
        "DROP TABLE schema_migrations",
        warehouse::clickhouse::sql::CREATE_MIGRATIONS,
        "INSERT INTO schema_migrations VALUES (1, '001_init', now())",
        "INSERT INTO payments (id, kind, livemode, invoice_id, customer_id, payment_intent_id, charge_id, amount, amount_captured, amount_refunded, currency, status, created_at, paid_at, source_event_id, version) VALUES ('ch_1', 'charge', 1, 'in_1', 'cus_1', 'pi_1', 'ch_1', 2000, 2000, 0, 'usd', 'succeeded', 100, 100, 'evt_2', 5), ('inpay_1', 'invoice_payment', 1, 'in_1', 'cus_1', 'pi_1', 'ch_1', 2000, 2000, 0, 'usd', 'paid', 101, 101, 'evt_3', 6)",
        "INSERT INTO subscription_items (id, subscription_id, item_id, livemode, customer_id, status, quantity, interval_count, unit_amount, discount_ids, cancel_at_period_end, valid_from, source_event_id, version) VALUES ('sub_1/si_1/7', 'sub_1', 'si_1', 1, 'cus_1', 'active', 3, 1, 2000, 'di_1', 0, 100, 'evt_1', 7)",
    ] {
        w.execute(stmt).await.unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    assert_eq!(
        w.migrate().await.unwrap(),
        [
            "002_discounts",
            "003_invoice_payments",
            "004_views",
            "005_payouts",
            "006_ledger_closes",
            "007_finance_views",
            "008_ties",
            "009_replay_order",
        ]
    );
    let rows: Vec<SubscriptionItemRow> = w.fetch_all().await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (
            row.id.as_str(),
            row.customer_id.as_deref(),
            row.unit_amount,
            row.quantity
        ),
        ("sub_1/si_1/7", Some("cus_1"), Some(2000), 3)
    );
    assert_eq!((row.discount_ids.as_str(), row.version), ("di_1", 7));
    assert_eq!(
        (
            row.billing_scheme.as_deref(),
            row.item_discount_ids.as_str()
        ),
        (None, "")
    );
    let discounts: Vec<DiscountRow> = w.fetch_all().await.unwrap();
    assert!(discounts.is_empty());
    // 003 has moved the invoice payment out of payments (and waited for the delete).
    let payments: Vec<PaymentRow> = w.fetch_all().await.unwrap();
    assert_eq!(
        payments
            .iter()
            .map(|p| (p.id.as_str(), p.kind.as_str()))
            .collect::<Vec<_>>(),
        [("ch_1", "charge")]
    );
    let links: Vec<InvoicePaymentRow> = w.fetch_all().await.unwrap();
    assert_eq!(
        links
            .iter()
            .map(|l| (
                l.id.as_str(),
                l.invoice_id.as_deref(),
                l.charge_id.as_deref(),
                l.amount_paid,
                l.version
            ))
            .collect::<Vec<_>>(),
        [("inpay_1", Some("in_1"), Some("ch_1"), 2000, 6)]
    );
}

#[tokio::test]
async fn replay_rebuilds_the_facts_from_raw_events() {
    let records = scenario(59, 10);
    let mut serve =
        Revline::start(Options::default().env("REVLINE_RECONCILE_BATCH_WAIT_MS", "100")).await;
    post_all(&serve, &records).await;
    let dir = serve.data_dir.clone();
    let embedded = Embedded::open(&dir).unwrap();
    assert!(
        wait_for_count(&embedded, records.len() as u64).await,
        "{}",
        serve.logs()
    );
    assert!(serve.terminate().success());
    let before = snapshot(&embedded, false).await;

    // Lose derived facts, then rebuild them from stripe_events.
    rusqlite::Connection::open(dir.join("warehouse.sqlite"))
        .unwrap()
        .execute_batch("DELETE FROM invoices; DELETE FROM invoice_lines; DELETE FROM subscription_items; DELETE FROM refunds;")
        .unwrap();
    let (status, stdout, stderr) = e2e::run_to_exit(Options {
        data_dir: Some(dir.clone()),
        ..Options::default().arg("replay")
    });
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("replayed {} events", records.len())),
        "{stdout}"
    );
    let after = snapshot(&embedded, false).await;
    // State rows are written again with new timestamps (which `snapshot` leaves out); their
    // content must come back the same, like every fact's.
    assert!(
        !before["reconcile_state"].is_empty(),
        "the matcher persisted state"
    );
    assert_same(&before, &after, "before vs after replay");
}

/// Waits up to 60 s until the embedded warehouse holds `n` raw events.
async fn wait_for_count(embedded: &Embedded, n: u64) -> bool {
    for _ in 0..300 {
        if embedded.count("stripe_events").await.unwrap_or(0) >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Scale-out: three members of one group over eight partitions under load; one is killed
/// with SIGKILL while events are being posted, a new one joins (see the Tansu note above);
/// the facts equal an uninterrupted single-member run: nothing lost, nothing doubled.
#[tokio::test]
async fn three_reconcilers_over_eight_partitions_survive_a_kill_under_load() {
    let t = topics(8).await;
    let url = clickhouse_url().await;
    let (db, reference) = (TestDb::new(&url), TestDb::new(&url));
    let app = Revline::start(ingest(&t)).await;
    let group = unique("trio");
    // Checkpoints of up to three batches: a kill can land inside one.
    let member = || {
        reconciler(&t, &group, &url, &db.name)
            .env("REVLINE_RECONCILE_BATCH_EVENTS", "20")
            .env("REVLINE_RECONCILE_CHECKPOINT_EVENTS", "60")
    };
    let mut a = Revline::start(member()).await;
    let b = Revline::start(member()).await;
    let c = Revline::start(member()).await;
    let split = wait_until(Duration::from_secs(90), || split_among(&[&a, &b, &c], 8)).await;
    assert!(
        split,
        "three members did not split eight partitions:\nA:\n{}\nB:\n{}\nC:\n{}",
        a.logs(),
        b.logs(),
        c.logs()
    );

    let records = scenario(53, 60);
    let (first, second) = records.split_at(records.len() / 3);
    post_all(&app, first).await;
    let assignments = |m: &Revline| m.logs().matches("partitions assigned").count();
    let before = (assignments(&b), assignments(&c));
    // The kill lands while the rest is being posted and reconciled.
    tokio::join!(post_all(&app, second), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.kill();
    });
    // Once Tansu expires A (session timeout 6 s) the survivors go through a rebalance, or
    // Tansu keeps the old assignment (the note above); either way the newcomer joins after
    // the expiry, so that it does not share the partitions with the dead member.
    let _ = wait_until(Duration::from_secs(20), || {
        assignments(&b) > before.0 || assignments(&c) > before.1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = Revline::start(member()).await;
    let covered = wait_until(Duration::from_secs(90), || split_among(&[&b, &c, &d], 8)).await;
    assert!(
        covered,
        "B, C and D did not take over every partition:\nB:\n{}\nC:\n{}\nD:\n{}",
        b.logs(),
        c.logs(),
        d.logs()
    );
    wait_for_all(
        &t,
        &db,
        records.len(),
        Duration::from_secs(180),
        &[&b, &c, &d],
    )
    .await;
    assert_same_as_uninterrupted(
        &t,
        &reference,
        &db,
        records.len(),
        "three members with a kill and a newcomer vs one member",
    )
    .await;
}

/// Stripe's `GET /v1/balance_transactions/{id}`: the recorded charge transaction under the
/// asked id; every id asked is counted.
async fn balance_transaction(
    id: actix_web::web::Path<String>,
    seen: actix_web::web::Data<std::sync::Mutex<Vec<String>>>,
) -> actix_web::HttpResponse {
    let recorded = e2e::stripe::recorded_balance_transactions();
    let mut bt = recorded["charge_bt"].clone();
    bt["id"] = serde_json::json!(id.as_str());
    bt["source"] = serde_json::json!(id.replace("txn_", "ch_"));
    seen.lock().unwrap().push(id.into_inner());
    actix_web::HttpResponse::Ok().json(bt)
}

/// The enrichment runs once per consumer group: three members with an API key, and each
/// balance transaction is asked of the API once, by the member holding partition 0.
#[tokio::test]
async fn enrichment_runs_once_per_consumer_group() {
    use actix_web::web;
    let seen = web::Data::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (api, handle) = {
        let seen = seen.clone();
        e2e::http_double(move |cfg| {
            cfg.app_data(seen.clone()).route(
                "/v1/balance_transactions/{id}",
                web::get().to(balance_transaction),
            );
        })
    };

    let t = topics(8).await;
    let db = TestDb::new(&clickhouse_url().await);
    let app = Revline::start(ingest(&t)).await;
    let group = unique("enrich");
    let member = || {
        reconciler(&t, &group, &db.url, &db.name)
            .env("STRIPE_API_KEY", "sk_test_once_per_group_0123")
            .env("REVLINE_STRIPE_API_BASE", api.as_str())
            .env("REVLINE_ENRICH_INTERVAL_SECS", "1")
            // The fetched transactions go back to the topic: one record per batch too.
            .env("REVLINE_KAFKA_RDKAFKA_BATCH_NUM_MESSAGES", "1")
    };
    let members = [
        Revline::start(member()).await,
        Revline::start(member()).await,
        Revline::start(member()).await,
    ];
    let all: Vec<&Revline> = members.iter().collect();
    let split = wait_until(Duration::from_secs(90), || split_among(&all, 8)).await;
    assert!(split, "three members did not split eight partitions");

    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/stripe-events/charge.refunded__2025-03-31.basil__partial.json"),
    )
    .unwrap();
    const CHARGES: usize = 16;
    for i in 0..CHARGES {
        let body = fixture
            .replace("evt_1ExampleChargeRefunded", &format!("evt_once_{i}"))
            .replace("ExampleCharge0001", &format!("ExampleCharge{i:04}"))
            .replace("cus_ExampleCustomer1", &format!("cus_Once{i}"));
        assert_eq!(app.post_signed(body.as_bytes()).await.status(), 200);
    }
    let fetched = wait_until_async(Duration::from_secs(120), || async {
        db.count("balance_transactions").await >= CHARGES as u64
    })
    .await;
    let logs = || {
        members
            .iter()
            .map(|m| m.logs())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    assert!(
        fetched,
        "{} of {CHARGES} balance transactions fetched:\n{}",
        db.count("balance_transactions").await,
        logs()
    );
    // A few more sweeps: nobody asks again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut asked = seen.lock().unwrap().clone();
    asked.sort();
    let requests = asked.len();
    asked.dedup();
    assert_eq!(asked.len(), CHARGES, "{asked:?}");
    assert_eq!(requests, CHARGES, "each balance transaction is asked once");
    let on_duty = members
        .iter()
        .filter(|m| {
            m.logs()
                .lines()
                .rev()
                .find(|l| {
                    l.contains("enrichment: this member")
                        || l.contains("enrichment: another member")
                })
                .is_some_and(|l| l.contains("so it enriches"))
        })
        .count();
    assert_eq!(on_duty, 1, "exactly one member enriches:\n{}", logs());
    handle.stop(false).await;
}

/// `revline replay` never runs beside `revline serve` on one data directory (both would
/// write the matcher's state), and a replay killed half-way continues where it stopped.
#[tokio::test]
async fn replay_continues_after_a_kill_and_never_runs_beside_serve() {
    let records = scenario(61, 12);
    let mut serve =
        Revline::start(Options::default().env("REVLINE_RECONCILE_BATCH_WAIT_MS", "100")).await;
    post_all(&serve, &records).await;
    let dir = serve.data_dir.clone();
    let embedded = Embedded::open(&dir).unwrap();
    assert!(wait_for_count(&embedded, records.len() as u64).await);
    let replay = |args: &[&str]| Options {
        data_dir: Some(dir.clone()),
        ..Options::default().arg("replay").args_of(args)
    };

    let (status, _, stderr) = e2e::run_to_exit(replay(&[]));
    assert!(
        !status.success(),
        "a replay beside a running serve must refuse"
    );
    assert!(
        stderr.contains("revline serve (pid ") && stderr.contains("stop it first"),
        "{stderr}"
    );
    assert!(serve.terminate().success());
    let before = snapshot(&embedded, false).await;
    rusqlite::Connection::open(dir.join("warehouse.sqlite"))
        .unwrap()
        .execute_batch(
            "DELETE FROM invoices; DELETE FROM subscription_items; DELETE FROM payments;",
        )
        .unwrap();

    // Killed once its first pages are saved (one event a page, so that it takes a while).
    let mut child = std::process::Command::new(e2e::revline_bin())
        .args(["replay", "--page-events", "1"])
        .env("REVLINE_DATA_DIR", &dir)
        .env("REVLINE_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cursor = dir.join("replay.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let saved = loop {
        let done = std::fs::read_to_string(&cursor)
            .ok()
            .and_then(|c| serde_json::from_str::<serde_json::Value>(&c).ok())
            .and_then(|c| c["done"].as_u64());
        if done.is_some_and(|done| done >= 10) {
            break true;
        }
        if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(saved, "no page saved before the replay ended");
    child.kill().unwrap();
    child.wait().unwrap();
    let done: u64 =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&cursor).unwrap())
            .unwrap()["done"]
            .as_u64()
            .unwrap();
    assert!(
        done < records.len() as u64,
        "killed before the end ({done})"
    );

    let (status, stdout, stderr) = e2e::run_to_exit(replay(&["--page-events", "7"]));
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("replay: continuing after {done} events")),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("replayed {} events", records.len() as u64 - done)),
        "only the rest is replayed: {stdout}"
    );
    assert!(!cursor.exists(), "the cursor is removed at the end");
    assert_same(
        &before,
        &snapshot(&embedded, false).await,
        "before vs after a resumed replay",
    );
}

/// The rebuild of an older `reconcile_state` that docs/operations.md gives, as written there.
fn documented_state_rebuild() -> Vec<String> {
    const DOC: &str = include_str!("../../docs/operations.md");
    let section = DOC
        .split_once("### An older state table")
        .expect("the section in docs/operations.md")
        .1;
    let block = section
        .split_once("```sql\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a sql block in the section")
        .0;
    warehouse::migrations::statements(block)
}

/// `migrate` indexes `reconcile_state` every 256 rows (lookups of exact ids read small
/// granules); a table of an earlier release, indexed every 8,192, is rebuilt by the
/// documented statements with every row and version kept.
#[tokio::test]
async fn reconcile_state_is_indexed_finely_and_the_documented_rebuild_keeps_every_row() {
    let db = TestDb::new(&clickhouse_url().await);
    let w = db.warehouse();
    w.migrate().await.unwrap();
    let in_db = format!("{}/?database={}", db.url.trim_end_matches('/'), db.name);
    // The table's `index_granularity`, as `SHOW CREATE TABLE` gives it.
    let granularity = || async {
        let create = e2e::clickhouse::http(&in_db, "SHOW CREATE TABLE reconcile_state")
            .await
            .unwrap();
        let setting = create.split_once("index_granularity = ").map(|(_, s)| s);
        let digits = setting.unwrap_or_default();
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        digits[..end].to_owned()
    };
    assert_eq!(granularity().await, "256");

    // What an earlier release created, with rows of two versions of one id.
    for stmt in [
        "DROP TABLE reconcile_state",
        "CREATE TABLE reconcile_state (id String, value String, version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY id",
        "INSERT INTO reconcile_state VALUES ('link:in_1', 'cus_1', 1), ('link:in_1', 'cus_2', 2), ('meta:state_format', '3', 1)",
        "INSERT INTO reconcile_state VALUES ('wait:ch_1#dp_1', '', 5)",
    ] {
        w.execute(stmt).await.unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    assert_eq!(granularity().await, "8192");
    let rows = || async {
        e2e::clickhouse::http(
            &in_db,
            "SELECT id, value, version FROM reconcile_state FINAL ORDER BY id FORMAT TSV",
        )
        .await
        .unwrap()
    };
    let before = rows().await;
    assert_eq!(before.lines().count(), 3, "{before}");

    let rebuild = documented_state_rebuild();
    assert_eq!(rebuild.len(), 4, "{rebuild:?}");
    for stmt in &rebuild {
        e2e::clickhouse::http(&in_db, stmt)
            .await
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    assert_eq!(granularity().await, "256");
    assert_eq!(rows().await, before);
    let tables = e2e::clickhouse::http(&in_db, "SHOW TABLES").await.unwrap();
    assert!(
        !tables.contains("reconcile_state_") && tables.contains("reconcile_state"),
        "{tables}"
    );
}
