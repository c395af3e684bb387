//! The fault suite: a generated Stripe history (`revline demo --write`) posted the way
//! Stripe delivers it (signed, every event twice and one in twenty three times, shuffled,
//! every post that did not get a 2xx sent again with backoff) while the pipeline is broken
//! on purpose:
//!
//! - Kafka + ClickHouse: ClickHouse is stopped and started twice, `revline reconcile` is
//!   SIGKILLed at five random moments and `revline ingest` once with requests in flight,
//!   each started again. With `REVLINE_FAULTS_BROKER_RESTARTS=N` the broker (Tansu on
//!   SQLite storage, which keeps what it acknowledged) is also stopped and started N times.
//!   That is off by default: Tansu 0.6.0's SQLite engine was seen to answer a fetch from a
//!   committed offset with the record after it (or with nothing for seconds), and to form
//!   a consumer group with an empty assignment after members were killed, so a run with
//!   broker restarts fails on the broker, not on revline (the stall watchdog below only
//!   gets around the second).
//! - Embedded: `revline serve` is SIGKILLed at three random moments, and its event log
//!   fills up (`REVLINE_LOG_MAX_MB`, SQLite's `max_page_count`): requests get 503
//!   `log_full` until the limit is raised and the server restarted.
//!
//! Each run prints what was acknowledged, what the warehouse holds, what is missing (must
//! be 0), which fact ids have more than one row (must be 0) and whether every report and
//! every fact equals an undisturbed run of the same history on the embedded default (they
//! must). Each run starts its own broker and ClickHouse, never the shared ones.
//!
//! Size: `REVLINE_FAULTS_CUSTOMERS` (default 85) and `REVLINE_FAULTS_MONTHS` (default 24)
//! give about 5,000 events, the CI run; `bench/faults.sh` runs 100,000 and more.
//! `REVLINE_FAULTS_SEED` fixes the history and the moments of the faults (printed).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::clickhouse::{http as clickhouse, ClickHouseServer, TestDb};
use e2e::facts::{first_difference, snapshot};
use e2e::kafka::{free_port, Tansu};
use e2e::{run_to_exit, sign, wait_until_async, Options, Revline, TempDir, TEST_SECRET};
use reports::ReportName;
use schemas::facts::TABLES;
use warehouse::embedded::Embedded;
use warehouse::Warehouse;

/// "Now" of the generated history and of every report.
const NOW: &str = "2026-11-30T00:00:00Z";
/// Requests in flight at once.
const WORKERS: usize = 16;

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{key}: not a number")))
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift) for the delivery order and fault moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A moment between 5 % and 95 % of the delivery.
    fn moment(&mut self) -> f64 {
        0.05 + (self.next() % 9_000) as f64 / 10_000.0
    }
}

/// The generated history: each event's body, once, in the order they happened.
struct History {
    bodies: Vec<Vec<u8>>,
    ids: Vec<String>,
    seed: u64,
}

fn history(dir: &Path) -> History {
    let seed = std::env::var("REVLINE_FAULTS_SEED")
        .ok()
        .map(|s| s.parse().expect("REVLINE_FAULTS_SEED: a number"))
        .unwrap_or_else(|| u64::from(std::process::id()) * 7919 + e2e::now() as u64 % 1000);
    let (customers, months) = (
        env_or("REVLINE_FAULTS_CUSTOMERS", 85),
        env_or("REVLINE_FAULTS_MONTHS", 24),
    );
    let path = dir.join("history.jsonl");
    let (status, _, stderr) = run_to_exit(
        Options::default()
            .args_of(&["demo", "--write", path.to_str().unwrap()])
            .args_of(&["--customers", &customers.to_string()])
            .args_of(&["--months", &months.to_string()])
            .args_of(&["--seed", &seed.to_string()])
            .env("REVLINE_REPORT_NOW", NOW),
    );
    assert!(status.success(), "revline demo --write: {stderr}");
    let bodies: Vec<Vec<u8>> = std::fs::read(&path)
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let ids = bodies
        .iter()
        .map(|b| {
            let v: serde_json::Value = serde_json::from_slice(b).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect();
    println!(
        "history: {} events ({customers} customers, {months} months, seed {seed})",
        bodies.len()
    );
    History { bodies, ids, seed }
}

/// Stripe's delivery: every event twice and one in twenty a third time, shuffled.
fn delivery_order(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).chain(0..n).collect();
    order.extend((0..n).filter(|i| i % 20 == 7));
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// Plays Stripe: posts signed bodies and sends each again, with backoff, until it gets a
/// 2xx.
struct Driver {
    url: String,
    client: reqwest::Client,
    bodies: Arc<Vec<Vec<u8>>>,
    acked: Vec<AtomicBool>,
    /// Deliveries that got their 2xx.
    delivered: AtomicUsize,
    attempts: AtomicU64,
    /// Answers other than 2xx, by status and error code (or "connection failed").
    refusals: Mutex<BTreeMap<String, u64>>,
}

impl Driver {
    fn new(port: u16, bodies: Arc<Vec<Vec<u8>>>) -> Arc<Driver> {
        Arc::new(Driver {
            url: format!("http://127.0.0.1:{port}/webhooks/stripe"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .pool_max_idle_per_host(WORKERS)
                .build()
                .unwrap(),
            acked: bodies.iter().map(|_| AtomicBool::new(false)).collect(),
            bodies,
            delivered: AtomicUsize::new(0),
            attempts: AtomicU64::new(0),
            refusals: Mutex::new(BTreeMap::new()),
        })
    }

    /// Delivers `order` with [`WORKERS`] requests in flight; panics when an event is still
    /// not acknowledged at `deadline`.
    async fn run(self: &Arc<Self>, order: Vec<usize>, deadline: Instant) {
        let order = Arc::new(order);
        let next = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (me, order, next) = (self.clone(), order.clone(), next.clone());
                tokio::spawn(async move {
                    let mut rng = Rng(0x5EED + w as u64);
                    loop {
                        let k = next.fetch_add(1, Ordering::SeqCst);
                        let Some(&i) = order.get(k) else { break };
                        me.deliver(i, deadline, &mut rng).await;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.expect("a delivery worker panicked");
        }
    }

    async fn deliver(&self, i: usize, deadline: Instant, rng: &mut Rng) {
        let mut backoff = Duration::from_millis(50);
        loop {
            assert!(
                Instant::now() < deadline,
                "event {i} was still not acknowledged at the deadline; refusals: {:?}",
                self.refusals.lock().unwrap()
            );
            let body = &self.bodies[i];
            self.attempts.fetch_add(1, Ordering::Relaxed);
            let sent = self
                .client
                .post(&self.url)
                .header("content-type", "application/json; charset=utf-8")
                .header("stripe-signature", sign(TEST_SECRET, body))
                .body(body.clone())
                .send()
                .await;
            let refusal = match sent {
                Ok(r) if r.status().is_success() => {
                    self.acked[i].store(true, Ordering::SeqCst);
                    self.delivered.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    assert!(
                        status >= 500 || status == 408 || status == 429,
                        "an authentic event was refused for good: {status} {body}"
                    );
                    format!("{status} {}", body["error"].as_str().unwrap_or("-"))
                }
                Err(_) => "connection failed".to_owned(),
            };
            *self.refusals.lock().unwrap().entry(refusal).or_default() += 1;
            let jitter = Duration::from_millis(rng.next() % 50);
            tokio::time::sleep(backoff + jitter).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn acknowledged(&self) -> usize {
        self.acked
            .iter()
            .filter(|a| a.load(Ordering::SeqCst))
            .count()
    }

    fn refused(&self, what: &str) -> u64 {
        self.refusals
            .lock()
            .unwrap()
            .get(what)
            .copied()
            .unwrap_or(0)
    }

    fn summary(&self, total: usize) -> String {
        format!(
            "deliveries {total}, attempts {}, refused on the way {:?}",
            self.attempts.load(Ordering::Relaxed),
            self.refusals.lock().unwrap()
        )
    }
}

/// Starts Stripe's delivery of `history` to the webhook on `port` in the background:
/// the driver, the number of deliveries, and the task (which fails when an event is not
/// acknowledged in time).
fn deliver(
    history: &History,
    rng: &mut Rng,
    port: u16,
) -> (Arc<Driver>, usize, tokio::task::JoinHandle<()>) {
    let order = delivery_order(history.bodies.len(), rng);
    let total = order.len();
    let driver = Driver::new(port, Arc::new(history.bodies.clone()));
    let deadline = Instant::now() + Duration::from_secs(60 + total as u64 / 20);
    let delivery = tokio::spawn({
        let driver = driver.clone();
        async move { driver.run(order, deadline).await }
    });
    (driver, total, delivery)
}

/// Every report (test mode, as the demo's events are), as CSV, as of [`NOW`].
fn reports(opts: impl Fn() -> Options) -> BTreeMap<&'static str, String> {
    ReportName::ALL
        .iter()
        .map(|name| {
            let (status, stdout, stderr) = run_to_exit(
                opts()
                    .args_of(&["report", name.as_str(), "--livemode", "false"])
                    .args_of(&["--format", "csv"])
                    .env("REVLINE_REPORT_NOW", NOW),
            );
            assert!(status.success(), "report {}: {stderr}", name.as_str());
            (name.as_str(), stdout)
        })
        .collect()
}

/// Names of the reports that differ from the reference's.
fn differing(
    got: &BTreeMap<&'static str, String>,
    reference: &BTreeMap<&'static str, String>,
) -> Vec<&'static str> {
    reference
        .iter()
        .filter(|(name, text)| got.get(*name) != Some(*text))
        .map(|(name, _)| *name)
        .collect()
}

/// The undisturbed run: every event once, in order, into `revline serve` on the embedded
/// default. Returns its reports and the server (its warehouse is the facts' reference).
async fn reference(history: &History) -> (BTreeMap<&'static str, String>, Revline) {
    let port = free_port();
    let app = Revline::start(serving(port, None)).await;
    let driver = Driver::new(port, Arc::new(history.bodies.clone()));
    let deadline = Instant::now() + Duration::from_secs(600);
    driver
        .run((0..history.bodies.len()).collect(), deadline)
        .await;
    let warehouse = Embedded::open(&app.data_dir).unwrap();
    let n = history.bodies.len() as u64;
    let reconciled = wait_until_async(Duration::from_secs(600), || async {
        warehouse.count("stripe_events").await.unwrap_or(0) >= n
    })
    .await;
    assert!(
        reconciled,
        "the reference run did not reconcile every event"
    );
    let dir = app.data_dir.clone();
    let reports = reports(|| Options {
        data_dir: Some(dir.clone()),
        ..Options::default()
    });
    (reports, app)
}

/// `revline serve` on the embedded default, on `port`, with an optional log size limit.
fn serving(port: u16, log_max_mb: Option<u64>) -> Options {
    let mut opts = Options::default()
        .arg("serve")
        .env("REVLINE_LISTEN", format!("127.0.0.1:{port}"))
        .env("REVLINE_REPORT_NOW", NOW)
        .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "100");
    if let Some(mb) = log_max_mb {
        opts = opts.env("REVLINE_LOG_MAX_MB", mb.to_string());
    }
    opts
}

/// What a run ends with, printed and then asserted.
struct Outcome {
    acknowledged: usize,
    in_warehouse: usize,
    missing: Vec<String>,
    /// `None` where the warehouse cannot hold two rows of one id (upserts by id).
    duplicated: Option<u64>,
    reports_differing: Vec<&'static str>,
    facts_difference: Option<String>,
}

impl Outcome {
    fn print_and_check(&self, what: &str, started: Instant, driver: &Driver, total: usize) {
        println!(
            "{what}: {}\n  events acknowledged {}, in the warehouse {}, missing {}, duplicated facts {}\n  \
             reports equal to the undisturbed run: {} ({} of {} differ), facts equal: {}\n  took {:.0} s",
            driver.summary(total),
            self.acknowledged,
            self.in_warehouse,
            self.missing.len(),
            self.duplicated
                .map_or("none possible (upsert by id)".to_owned(), |n| n.to_string()),
            if self.reports_differing.is_empty() { "yes" } else { "NO" },
            self.reports_differing.len(),
            ReportName::ALL.len(),
            if self.facts_difference.is_none() { "yes" } else { "NO" },
            started.elapsed().as_secs_f64()
        );
        assert!(
            self.missing.is_empty(),
            "acknowledged but missing: {:?}",
            &self.missing[..self.missing.len().min(10)]
        );
        assert!(
            self.duplicated.unwrap_or(0) == 0,
            "fact ids with more than one row"
        );
        assert!(
            self.reports_differing.is_empty(),
            "reports differ: {:?}",
            self.reports_differing
        );
        if let Some(diff) = &self.facts_difference {
            panic!("facts differ from the undisturbed run: {diff}");
        }
    }
}

/// Ids of `history` acknowledged but not among `stored`.
fn missing(history: &History, driver: &Driver, stored: &HashSet<String>) -> Vec<String> {
    history
        .ids
        .iter()
        .zip(&driver.acked)
        .filter(|(id, acked)| acked.load(Ordering::SeqCst) && !stored.contains(*id))
        .map(|(id, _)| id.clone())
        .collect()
}

/// Polls `reports` until they equal `reference` (orphans may wait for a sweep) or two
/// minutes pass; returns the names still differing.
async fn settled_reports(
    reference: &BTreeMap<&'static str, String>,
    reports: impl Fn() -> BTreeMap<&'static str, String>,
) -> Vec<&'static str> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let diff = differing(&reports(), reference);
        if diff.is_empty() || Instant::now() > deadline {
            return diff;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    RestartBroker,
    RestartClickHouse,
    KillReconcile,
    KillIngest,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_and_clickhouse_faults_lose_nothing_and_count_nothing_twice() {
    let started = Instant::now();
    let dir = TempDir::new("revline-faults-kafka");
    let history = history(dir.path());
    let mut rng = Rng(history.seed | 1);
    let (reference_reports, reference_app) = reference(&history).await;

    // Broker restarts need a broker that keeps its data: Tansu on SQLite storage. Its
    // 0.6.0 engine is not yet reliable enough for this (see the module's notes), so they
    // are off unless REVLINE_FAULTS_BROKER_RESTARTS asks for them, and the broker is the
    // in-memory Tansu the other Kafka tests use.
    let broker_restarts = env_or("REVLINE_FAULTS_BROKER_RESTARTS", 0);
    let broker_dir = dir.path().join("tansu");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let mut broker = if broker_restarts > 0 {
        Tansu::start_persistent(&broker_dir)
    } else {
        Tansu::start()
    };
    let mut server = ClickHouseServer::start().await;
    let db = TestDb::new(&server.url());
    // Both keep their ports across restarts.
    let (brokers, clickhouse_url) = (broker.brokers(), server.url());
    let env = |opts: Options| {
        opts.env("REVLINE_KAFKA_BROKERS", &brokers)
            .env("REVLINE_KAFKA_TOPIC", "faults.events")
            .env("REVLINE_KAFKA_DLQ_TOPIC", "faults.events.dlq")
            .env("REVLINE_KAFKA_PARTITIONS", "4")
            .env("REVLINE_CLICKHOUSE_URL", &clickhouse_url)
            .env("REVLINE_CLICKHOUSE_DATABASE", &db.name)
    };
    let (status, _, stderr) = run_to_exit(env(Options::default().arg("migrate")));
    assert!(status.success(), "migrate: {stderr}");
    let ingest_port = free_port();
    // One record per Kafka batch: Tansu 0.6.0 skips the rest of a batch when a consumer
    // resumes inside one (see reconcile_e2e.rs); real Kafka needs no such setting.
    let ingest_opts = env(Options::default()
        .arg("ingest")
        .env("REVLINE_LISTEN", format!("127.0.0.1:{ingest_port}"))
        .env("REVLINE_KAFKA_RDKAFKA_BATCH_NUM_MESSAGES", "1"));
    let reconcile_opts = env(Options::default()
        .arg("reconcile")
        .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "100")
        .env("REVLINE_RECONCILE_SWEEP_SECS", "2")
        // Tansu's SQLite engine serves every request through one storage task: a fetch of
        // many one-record batches (see above) can hold heartbeats back for seconds. With
        // a 6 s session the group then times out, rebalances and fetches again, for
        // ever (seen here); smaller fetches and a 30 s session keep it progressing.
        .env("REVLINE_KAFKA_RDKAFKA_SESSION_TIMEOUT_MS", "30000")
        .env("REVLINE_KAFKA_RDKAFKA_HEARTBEAT_INTERVAL_MS", "3000")
        .env("REVLINE_KAFKA_RDKAFKA_MAX_POLL_INTERVAL_MS", "30000")
        .env("REVLINE_KAFKA_RDKAFKA_MAX_PARTITION_FETCH_BYTES", "65536")
        // Static membership (KIP-345), as a supervised reconciler with a stable name
        // (a StatefulSet's pod) has it: the restarted process takes its predecessor's place
        // in the group at once instead of waiting for that session to expire.
        .env(
            "REVLINE_KAFKA_RDKAFKA_GROUP_INSTANCE_ID",
            "faults-reconcile-0",
        ));
    let mut ingest = Revline::start(ingest_opts.clone()).await;
    let mut reconcile = Revline::start(reconcile_opts.clone()).await;

    let mut plan: Vec<(f64, Fault)> = (0..broker_restarts)
        .map(|n| {
            (
                0.25 + 0.4 * n as f64 / broker_restarts as f64,
                Fault::RestartBroker,
            )
        })
        .collect();
    plan.extend([
        (0.40, Fault::RestartClickHouse),
        (0.80, Fault::RestartClickHouse),
        (0.50, Fault::KillIngest),
    ]);
    plan.extend((0..5).map(|_| (rng.moment(), Fault::KillReconcile)));
    plan.sort_by(|a, b| a.0.total_cmp(&b.0));

    let (driver, total, delivery) = deliver(&history, &mut rng, ingest_port);
    let unique = history.bodies.len() as u64;
    let stored_ids = || async {
        let ids = clickhouse(
            &db.url,
            &format!("SELECT DISTINCT id FROM {}.stripe_events", db.name),
        )
        .await
        .unwrap_or_default();
        ids.lines().map(str::to_owned).collect::<HashSet<String>>()
    };
    // The faults at their moments; meanwhile, as a supervisor (systemd, Kubernetes) would,
    // a revline process that exited on its own is started again (`revline reconcile`
    // exits on an error it cannot retry, such as a warehouse still starting). Until every
    // event is in the warehouse, or the catch-up time is up.
    let mut plan = plan.into_iter().peekable();
    let mut restarts = 0;
    let mut catch_up: Option<Instant> = None;
    // A reconciler that reads nothing while events are missing is restarted after a
    // minute without progress, as a liveness check on the warehouse's growth would. Tansu
    // 0.6.0 sometimes forms the group with an empty assignment after members were killed
    // (its stored group state reads `"assignments": {}`), and the member then waits for
    // ever; a real Kafka broker reassigns. Counted and printed.
    let (mut stall_restarts, mut progress) = (0, (0usize, Instant::now()));
    let mut checked = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let done = driver.delivered.load(Ordering::SeqCst) as f64 / total as f64;
        if let Some((moment, fault)) = plan.next_if(|(m, _)| done >= *m) {
            println!(
                "{:>6.1} s: {fault:?} at {:.0} % of the deliveries",
                started.elapsed().as_secs_f64(),
                moment * 100.0
            );
            match fault {
                Fault::RestartBroker => {
                    tokio::task::block_in_place(|| broker.stop());
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    tokio::task::block_in_place(|| broker.restart());
                }
                Fault::RestartClickHouse => {
                    server.stop();
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    server.restart().await;
                }
                Fault::KillReconcile => {
                    reconcile.kill();
                    reconcile = Revline::start(reconcile_opts.clone()).await;
                }
                Fault::KillIngest => {
                    // WORKERS requests are in flight at any moment of the delivery.
                    ingest.kill();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    ingest = Revline::start(ingest_opts.clone()).await;
                }
            }
        }
        for (name, process, opts) in [
            ("ingest", &mut ingest, &ingest_opts),
            ("reconcile", &mut reconcile, &reconcile_opts),
        ] {
            if let Some(status) = process.exited() {
                restarts += 1;
                assert!(
                    restarts <= 20,
                    "{name} keeps exiting ({status}):\n{}",
                    process.logs()
                );
                let logs = process.logs();
                let last = logs.lines().rev().find(|l| l.contains("ERROR"));
                println!(
                    "{:>6.1} s: {name} exited ({status}): started again; its last error: {}",
                    started.elapsed().as_secs_f64(),
                    last.unwrap_or("none")
                );
                *process = Revline::start(opts.clone()).await;
            }
        }
        if checked.elapsed() > Duration::from_secs(2) {
            checked = Instant::now();
            let stored = stored_ids().await.len();
            if stored != progress.0 {
                progress = (stored, Instant::now());
            } else if (stored as u64) < unique
                && progress.1.elapsed() > Duration::from_secs(60)
                && stall_restarts < 5
            {
                stall_restarts += 1;
                let logs = reconcile.logs();
                let tail: Vec<&str> = logs
                    .lines()
                    .filter(|l| !l.contains("CONFWARN") && !l.contains("actix"))
                    .collect();
                println!(
                    "{:>6.1} s: no event reconciled for 60 s with {} of {unique} stored: \
                     reconcile restarted; the end of its log:\n{}",
                    started.elapsed().as_secs_f64(),
                    stored,
                    tail[tail.len().saturating_sub(12)..].join("\n")
                );
                reconcile.kill();
                reconcile = Revline::start(reconcile_opts.clone()).await;
                progress = (stored, Instant::now());
            }
        }
        if delivery.is_finished() && plan.peek().is_none() {
            let since = *catch_up.get_or_insert_with(Instant::now);
            if stored_ids().await.len() as u64 >= unique
                || since.elapsed() > Duration::from_secs(300 + unique / 50)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    delivery.await.expect("the delivery failed");
    println!(
        "processes restarted after exiting on their own: {restarts}; reconcile restarted \
         after a minute without progress: {stall_restarts}"
    );
    if (stored_ids().await.len() as u64) < unique {
        println!("reconcile did not catch up; its log:\n{}", reconcile.logs());
    }
    let clickhouse_opts = || env(Options::default());
    let reports_differing = settled_reports(&reference_reports, || reports(clickhouse_opts)).await;
    let stored = stored_ids().await;
    let mut duplicated = 0;
    for table in TABLES {
        let sql = format!(
            "SELECT count() FROM (SELECT id FROM {}.{} FINAL GROUP BY id HAVING count() > 1)",
            db.name, table.name
        );
        let n = clickhouse(&db.url, &sql).await.expect(table.name);
        duplicated += n.trim().parse::<u64>().unwrap();
    }
    let reference_warehouse = Embedded::open(&reference_app.data_dir).unwrap();
    let facts_difference = first_difference(
        &snapshot(&db.warehouse(), true).await,
        &snapshot(&reference_warehouse, true).await,
    );
    Outcome {
        acknowledged: driver.acknowledged(),
        in_warehouse: stored.len(),
        missing: missing(&history, &driver, &stored),
        duplicated: Some(duplicated),
        reports_differing,
        facts_difference,
    }
    .print_and_check("kafka + clickhouse", started, &driver, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_crashes_and_a_full_log_lose_nothing_and_count_nothing_twice() {
    let started = Instant::now();
    let dir = TempDir::new("revline-faults-embedded");
    let history = history(dir.path());
    let mut rng = Rng(history.seed | 1);
    let (reference_reports, reference_app) = reference(&history).await;

    // The log fills up at about 40 % of the history's bytes.
    let bytes: usize = history.bodies.iter().map(Vec::len).sum();
    let cap_mb = (bytes * 2 / 5).div_ceil(1 << 20) as u64;
    let port = free_port();
    let data_dir = dir.path().join("data");
    let opts = |cap: Option<u64>| Options {
        data_dir: Some(data_dir.clone()),
        ..serving(port, cap)
    };
    let mut cap = Some(cap_mb);
    let mut app = Revline::start(opts(cap)).await;

    let (driver, total, delivery) = deliver(&history, &mut rng, port);
    let mut kills: Vec<f64> = (0..3).map(|_| rng.moment()).collect();
    kills.sort_by(f64::total_cmp);
    let mut kills = kills.into_iter().peekable();
    let log_full = "503 log_full";
    let mut full_since: Option<Instant> = None;
    while !delivery.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let done = driver.delivered.load(Ordering::SeqCst) as f64 / total as f64;
        if kills.peek().is_some_and(|m| done >= *m) {
            let moment = kills.next().unwrap();
            println!(
                "{:>6.1} s: SIGKILL revline serve at {:.0} % of the deliveries",
                started.elapsed().as_secs_f64(),
                moment * 100.0
            );
            app.kill();
            app = Revline::start(opts(cap)).await;
        }
        if cap.is_some() && driver.refused(log_full) > 0 {
            let since = *full_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(3) {
                println!(
                    "{:>6.1} s: the log is full ({} answers 503 log_full); space returns: \
                     restarted without the limit at {:.0} % of the deliveries",
                    started.elapsed().as_secs_f64(),
                    driver.refused(log_full),
                    done * 100.0
                );
                assert!(app.terminate().success(), "{}", app.logs());
                cap = None;
                app = Revline::start(opts(cap)).await;
            }
        }
    }
    delivery.await.expect("the delivery failed");
    assert!(
        driver.refused(log_full) > 0,
        "the log never filled up at {cap_mb} MiB"
    );

    let warehouse = Embedded::open(&data_dir).unwrap();
    let unique = history.bodies.len() as u64;
    let caught_up = wait_until_async(Duration::from_secs(300 + unique / 50), || async {
        warehouse.count("stripe_events").await.unwrap_or(0) >= unique
    })
    .await;
    if !caught_up {
        println!("reconcile did not catch up; the log:\n{}", app.logs());
    }
    let reports_differing = settled_reports(&reference_reports, || {
        reports(|| Options {
            data_dir: Some(data_dir.clone()),
            ..Options::default()
        })
    })
    .await;
    let events: Vec<schemas::facts::EventRow> = warehouse.fetch_all().await.unwrap();
    let stored: HashSet<String> = events.into_iter().map(|e| e.id).collect();
    let reference_warehouse = Embedded::open(&reference_app.data_dir).unwrap();
    let facts_difference = first_difference(
        &snapshot(&warehouse, true).await,
        &snapshot(&reference_warehouse, true).await,
    );
    Outcome {
        acknowledged: driver.acknowledged(),
        in_warehouse: stored.len(),
        missing: missing(&history, &driver, &stored),
        // The embedded warehouse upserts by id: a second row for an id cannot exist, and a
        // fact counted twice under another id shows as a difference of facts.
        duplicated: None,
        reports_differing,
        facts_difference,
    }
    .print_and_check("embedded", started, &driver, total);
}
