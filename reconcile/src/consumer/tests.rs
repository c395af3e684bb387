//! The loop's logic without services: an in-memory event source and an in-memory
//! warehouse, each able to fail on cue. Whatever fails, the loop must end with exactly the
//! facts the matcher gives for the whole stream, and must never commit a position before
//! the facts of every record up to it are in the warehouse.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventlog::{Batch, DeadLetter, EventSource, LogError};
use futures_util::StreamExt;
use prometheus_client::registry::Registry;
use schemas::facts::{EventRow, FactSet, FactTable, StateRow, TableKind, TableVisitor};
use schemas::LogRecord;
use serde_json::Value;
use tokio::sync::watch;
use warehouse::{
    AggregateQuery, AggregateRow, MissingBalanceTransaction, RowQuery, RowStream, Warehouse,
    WarehouseError,
};

use super::{run, sweep_chunk_size, LoopOptions, Pipeline, PipelineError};
use crate::metrics::ReconcileMetrics;

/// How the next write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteFailure {
    /// Nothing written; worth retrying.
    Transient,
    /// The fact tables written, then the connection dropped (raw events and state not).
    HalfWritten,
    /// Nothing written; retrying cannot help.
    Permanent,
}

/// Rows per `(table, id)`, highest version kept, as both real adapters do.
#[derive(Default)]
struct MemoryWarehouse {
    rows: Mutex<BTreeMap<(String, String), (u64, Value)>>,
    failures: Mutex<VecDeque<WriteFailure>>,
    writes: Mutex<u32>,
    /// State rows in the writes that succeeded.
    state_rows: Mutex<usize>,
    /// Reads of the whole state.
    state_loads: Mutex<usize>,
}

struct Store<'m> {
    rows: &'m mut BTreeMap<(String, String), (u64, Value)>,
    only_facts: bool,
}

impl<'a> TableVisitor<'a> for Store<'_> {
    fn rows<T: FactTable>(&mut self, rows: &'a [T]) {
        if self.only_facts && T::KIND != TableKind::Fact {
            return;
        }
        for row in rows {
            let key = (T::TABLE.to_owned(), row.id().to_owned());
            if self.rows.get(&key).is_none_or(|(v, _)| *v <= row.version()) {
                self.rows
                    .insert(key, (row.version(), serde_json::to_value(row).unwrap()));
            }
        }
    }
}

impl MemoryWarehouse {
    fn fail_next(&self, failures: &[WriteFailure]) {
        self.failures.lock().unwrap().extend(failures);
    }

    fn has_event(&self, id: &str) -> bool {
        self.rows
            .lock()
            .unwrap()
            .contains_key(&("stripe_events".to_owned(), id.to_owned()))
    }

    /// Every row but the state's (whose versions are write times).
    fn facts(&self) -> BTreeMap<(String, String), (u64, Value)> {
        self.rows
            .lock()
            .unwrap()
            .iter()
            .filter(|((table, _), _)| table != "reconcile_state")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl Warehouse for MemoryWarehouse {
    async fn migrate(&self) -> warehouse::Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn write(&self, facts: Arc<FactSet>) -> warehouse::Result<()> {
        *self.writes.lock().unwrap() += 1;
        let failure = self.failures.lock().unwrap().pop_front();
        let mut rows = self.rows.lock().unwrap();
        match failure {
            None => {
                facts.visit(&mut Store {
                    rows: &mut rows,
                    only_facts: false,
                });
                *self.state_rows.lock().unwrap() += facts.state.len();
                Ok(())
            }
            Some(WriteFailure::HalfWritten) => {
                facts.visit(&mut Store {
                    rows: &mut rows,
                    only_facts: true,
                });
                Err(WarehouseError::Transient(
                    "connection reset mid-batch".into(),
                ))
            }
            Some(WriteFailure::Transient) => {
                Err(WarehouseError::Transient("server restarting".into()))
            }
            Some(WriteFailure::Permanent) => {
                Err(WarehouseError::Permanent("table is missing".into()))
            }
        }
    }

    async fn load_state(&self, ids: Option<&[String]>) -> warehouse::Result<Vec<StateRow>> {
        let rows = self.rows.lock().unwrap();
        Ok(rows
            .iter()
            .filter(|((table, id), _)| {
                table == "reconcile_state" && ids.is_none_or(|ids| ids.contains(id))
            })
            .map(|(_, (_, v))| serde_json::from_value(v.clone()).unwrap())
            .collect())
    }

    fn rows<T: FactTable>(&self, _query: &RowQuery) -> RowStream<T> {
        if T::TABLE == "reconcile_state" {
            *self.state_loads.lock().unwrap() += 1;
        }
        let rows: Vec<warehouse::Result<T>> = self
            .rows
            .lock()
            .unwrap()
            .iter()
            .filter(|((table, _), _)| table == T::TABLE)
            .map(|(_, (_, v))| Ok(serde_json::from_value(v.clone()).unwrap()))
            .collect();
        futures_util::stream::iter(rows).boxed()
    }

    async fn aggregate(&self, _query: &AggregateQuery) -> warehouse::Result<Vec<AggregateRow>> {
        Err(WarehouseError::InvalidQuery(
            "the test double does not aggregate".into(),
        ))
    }

    fn raw_events(&self, _after: Option<(i64, String)>) -> RowStream<EventRow> {
        futures_util::stream::empty().boxed()
    }

    async fn missing_balance_transactions(
        &self,
        _limit: usize,
    ) -> warehouse::Result<Vec<MissingBalanceTransaction>> {
        Ok(Vec::new())
    }

    async fn ping(&self) -> warehouse::Result<()> {
        Ok(())
    }
}

/// A log in memory: batches in order, a committed position, failing reads on cue.
struct MemorySource {
    records: Vec<LogRecord>,
    read_to: usize,
    committed: Arc<Mutex<usize>>,
    failing_reads: u32,
    /// Checked at every commit: the facts of everything committed must be there.
    warehouse: Arc<MemoryWarehouse>,
    dead_letters: Arc<Mutex<Vec<String>>>,
    /// What [`EventSource::sole_reader`] answers.
    sole: bool,
}

impl EventSource for MemorySource {
    type Position = usize;

    async fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
        _shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Batch<usize>, LogError> {
        if self.failing_reads > 0 {
            self.failing_reads -= 1;
            return Err(LogError::Unavailable("disk I/O error".into()));
        }
        let end = (self.read_to + max).min(self.records.len());
        let records = self.records[self.read_to..end].to_vec();
        self.read_to = end;
        if records.is_empty() {
            tokio::time::sleep(wait).await;
        }
        Ok(Batch {
            records,
            position: end,
        })
    }

    async fn commit(
        &mut self,
        position: &usize,
        dead_letters: &[DeadLetter],
        _shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), LogError> {
        for record in &self.records[..*position] {
            assert!(
                self.warehouse.has_event(&record.headers.event_id),
                "position {position} committed before the facts of {} were written",
                record.headers.event_id
            );
        }
        let mut committed = self.committed.lock().unwrap();
        assert!(*position >= *committed, "positions move forward only");
        *committed = *position;
        self.dead_letters
            .lock()
            .unwrap()
            .extend(dead_letters.iter().map(|d| d.reason.clone()));
        Ok(())
    }

    fn merge_position(earlier: &mut usize, later: usize) {
        *earlier = (*earlier).max(later);
    }

    fn take_reassigned(&mut self) -> bool {
        false
    }

    async fn rewind(&mut self) -> Result<(), LogError> {
        self.read_to = *self.committed.lock().unwrap();
        Ok(())
    }

    async fn sole_reader(&mut self) -> bool {
        self.sole
    }

    async fn lag(&mut self) -> Option<i64> {
        Some((self.records.len() - self.read_to) as i64)
    }

    async fn close(&mut self) {}
}

struct Harness {
    warehouse: Arc<MemoryWarehouse>,
    committed: Arc<Mutex<usize>>,
    dead_letters: Arc<Mutex<Vec<String>>>,
    records: Vec<LogRecord>,
    /// Events per checkpoint (batches hold [`BATCH`]).
    checkpoint_events: usize,
    /// Whether the source says it holds every partition.
    sole: bool,
    sweep_interval: Duration,
    metrics: ReconcileMetrics,
}

/// Events per batch in the harness.
const BATCH: usize = 7;
/// Events per checkpoint in the harness: three batches.
const CHECKPOINT: usize = 20;

impl Harness {
    fn new(records: Vec<LogRecord>) -> Harness {
        Harness {
            warehouse: Arc::default(),
            committed: Arc::default(),
            dead_letters: Arc::default(),
            records,
            checkpoint_events: CHECKPOINT,
            sole: false,
            sweep_interval: Duration::from_secs(3600),
            metrics: ReconcileMetrics::register(&mut Registry::default()),
        }
    }

    /// Writes one run makes when nothing fails: the state format, written at the first
    /// start on an empty warehouse, the first batch on its own, then one per checkpoint.
    fn writes(&self) -> usize {
        let per = self.checkpoint_events.div_ceil(BATCH) * BATCH;
        2 + self.records.len().saturating_sub(BATCH).div_ceil(per)
    }

    /// Runs the loop until every record is committed (or the loop ends), then stops it.
    async fn run(&self, failing_reads: u32) -> Result<(), PipelineError> {
        self.run_until(failing_reads, self.records.len(), false)
            .await
    }

    /// Runs the loop from the committed position until `until` records are committed;
    /// then stops it, or with `crash` aborts it where it is (its window and any write in
    /// flight are lost, as in a crash).
    async fn run_until(
        &self,
        failing_reads: u32,
        until: usize,
        crash: bool,
    ) -> Result<(), PipelineError> {
        let source = MemorySource {
            records: self.records.clone(),
            read_to: *self.committed.lock().unwrap(),
            committed: self.committed.clone(),
            failing_reads,
            warehouse: self.warehouse.clone(),
            dead_letters: self.dead_letters.clone(),
            sole: self.sole,
        };
        let (stop, shutdown) = watch::channel(false);
        let pipeline = Pipeline::new(
            self.warehouse.clone(),
            self.metrics.clone(),
            shutdown.clone(),
        );
        let options = LoopOptions {
            batch_events: BATCH,
            batch_wait: Duration::from_millis(5),
            sweep_interval: self.sweep_interval,
            sole_sweep_interval: Duration::from_secs(3600),
            lag_interval: Duration::from_secs(3600),
            // Every batch reads its state back from the warehouse.
            state_cache_bytes: Some(0),
            checkpoint_events: self.checkpoint_events,
            checkpoint_interval: Duration::from_secs(3600),
        };
        let mut task = tokio::spawn(run(source, pipeline, options, shutdown));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if *self.committed.lock().unwrap() >= until {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "only {} of {until} records committed",
                    self.committed.lock().unwrap()
                );
            }
            tokio::select! {
                ended = &mut task => return ended.unwrap(),
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
        if crash {
            task.abort();
            let _ = task.await;
            return Ok(());
        }
        stop.send(true).unwrap();
        task.await.unwrap()
    }

    /// What the matcher gives for the whole stream at once.
    fn expected(&self) -> BTreeMap<(String, String), (u64, Value)> {
        let (facts, _) = crate::matcher::reconcile(Default::default(), &self.records);
        testkit::converge(&facts)
    }
}

fn events() -> Vec<LogRecord> {
    let mut records = testkit::scenario(3, 6);
    // A poison record among them: dead-lettered, forwarded at commit, never fatal.
    records.insert(5, testkit::record(serde_json::json!({"id": "evt_thin", "object": "v2.core.event", "type": "v1.billing.meter.error_report_triggered", "created": "2026-02-01T00:00:00Z"})));
    records
}

#[tokio::test]
async fn an_undisturbed_run_writes_what_the_matcher_gives_and_commits_everything() {
    let h = Harness::new(events());
    h.run(0).await.unwrap();
    assert_eq!(h.warehouse.facts(), h.expected());
    assert_eq!(*h.dead_letters.lock().unwrap(), ["thin_event"]);
}

/// A consumer that holds every partition sweeps once after its assignment (for what the
/// previous owners left), then only every `sole_sweep_interval`: no other consumer writes
/// state, and its own batches find the orphans their links resolve. One that does not
/// sweeps at every `sweep_interval`. Both give the same facts.
#[tokio::test]
async fn a_sole_reader_sweeps_once_after_its_assignment() {
    for sole in [true, false] {
        let mut h = Harness::new(events());
        h.sole = sole;
        h.sweep_interval = Duration::ZERO;
        h.run(0).await.unwrap();
        assert_eq!(h.warehouse.facts(), h.expected(), "sole reader: {sole}");
        let sweeps = h.metrics.sweeps.get();
        if sole {
            assert_eq!(sweeps, 1);
        } else {
            assert!(sweeps > 1, "{sweeps} sweeps");
        }
    }
}

#[tokio::test]
async fn a_warehouse_that_fails_then_recovers_loses_nothing() {
    let h = Harness::new(events());
    h.warehouse.fail_next(&[
        WriteFailure::Transient,
        WriteFailure::Transient,
        WriteFailure::Transient,
    ]);
    h.run(0).await.unwrap();
    assert_eq!(h.warehouse.facts(), h.expected());
    assert_eq!(
        *h.warehouse.writes.lock().unwrap(),
        3 + h.writes() as u32,
        "the failed writes were attempted again"
    );
}

/// Several batches go to the warehouse as one checkpoint, and each state key changed in
/// them once: the same facts and state as a checkpoint after every batch, in fewer writes
/// and fewer state rows.
#[tokio::test]
async fn a_checkpoint_writes_the_batches_since_the_last_one_at_once() {
    // A few months of twenty customers: their invoices, charges and subscriptions change
    // again and again.
    let records = testkit::scenario(7, 20);
    let every_batch = Harness {
        checkpoint_events: 1,
        ..Harness::new(records.clone())
    };
    every_batch.run(0).await.unwrap();
    // Windows of six batches: keys changed in several of them are written once.
    let windows = Harness {
        checkpoint_events: 40,
        ..Harness::new(records.clone())
    };
    windows.run(0).await.unwrap();

    assert_eq!(windows.warehouse.facts(), windows.expected());
    assert_eq!(windows.warehouse.facts(), every_batch.warehouse.facts());
    // The same state, but for the markers of links with wait rows: a hint written when a
    // wait row is, so a wait set and cleared within one window leaves none.
    let (state, markers) = split_markers(windows.warehouse.state());
    assert_eq!(state, split_markers(every_batch.warehouse.state()).0);
    assert_markers_cover_waits(&state, &markers);
    let writes = |h: &Harness| *h.warehouse.writes.lock().unwrap() as usize;
    assert_eq!(writes(&every_batch), 1 + records.len().div_ceil(BATCH));
    assert_eq!(writes(&windows), windows.writes());
    assert!(writes(&windows) * 2 < writes(&every_batch));
    let state_rows = |h: &Harness| *h.warehouse.state_rows.lock().unwrap();
    assert!(
        state_rows(&windows) < state_rows(&every_batch),
        "{} state rows in windows, {} batch by batch",
        state_rows(&windows),
        state_rows(&every_batch)
    );
}

/// The state rows but the link markers (`hasw:`), and the links marked.
fn split_markers(
    state: BTreeMap<String, String>,
) -> (BTreeMap<String, String>, std::collections::BTreeSet<String>) {
    let (markers, rest): (BTreeMap<String, String>, BTreeMap<String, String>) = state
        .into_iter()
        .partition(|(id, _)| id.starts_with("hasw:"));
    let marked = markers
        .into_iter()
        .map(|(id, value)| {
            assert_eq!(value, "1", "{id}");
            id["hasw:".len()..].to_owned()
        })
        .collect();
    (rest, marked)
}

/// Every link a wait row says an orphan waits on is marked: a consumer reads a link's wait
/// rows only through its marker.
fn assert_markers_cover_waits(
    state: &BTreeMap<String, String>,
    marked: &std::collections::BTreeSet<String>,
) {
    for (id, value) in state {
        if let Some(wait) = id.strip_prefix("wait:") {
            if value == "1" {
                let (link, _) = wait.split_once('#').unwrap();
                assert!(
                    marked.contains(link),
                    "{id} waits, but {link} has no marker"
                );
            }
        }
    }
}

/// A bounded cache keeps what a window changed until its checkpoint is durable: a link
/// learned in the first batch of a window, which no later batch of it uses, is still
/// known to the batch right after the checkpoint, read while that checkpoint is being
/// written (from the warehouse it would be missing).
#[tokio::test]
async fn the_cache_keeps_a_windows_objects_while_its_checkpoint_is_written() {
    use testkit::*;
    let mut records = paid_invoice_events("in_1", "cus_1", "sub_1", "pi_1", T0);
    for n in 2..=11 {
        records.extend(paid_invoice_events(
            &format!("in_{n}"),
            &format!("cus_{n}"),
            &format!("sub_{n}"),
            &format!("pi_{n}"),
            T0 + 10 * n,
        ));
    }
    // The first window is three batches (21 events): the charge and its refund come in
    // the first batch after it.
    assert_eq!(records.len(), 22);
    records.push(event(
        "evt_ch",
        "charge.succeeded",
        T0 + 500,
        BASIL,
        charge("ch_1", "pi_1", "cus_1", 2000, 0, T0 + 500),
    ));
    records.push(event(
        "evt_re",
        "refund.created",
        T0 + 600,
        BASIL,
        refund("re_1", "ch_1", "pi_1", 500, "succeeded", T0 + 600),
    ));
    let h = Harness::new(records);
    h.run(0).await.unwrap();
    assert_eq!(h.warehouse.facts(), h.expected());
    let refund = h.warehouse.rows.lock().unwrap()[&("refunds".to_owned(), "re_1".to_owned())]
        .1
        .clone();
    assert_eq!(refund["invoice_id"], "in_1");
}

/// A crash loses the window being matched and any checkpoint not yet committed: the next
/// consumer starts from the last committed checkpoint, with the state as of then (or
/// newer, when a write landed but its commit did not), and ends with the facts and state
/// of an undisturbed run.
#[tokio::test]
async fn after_a_crash_the_next_consumer_replays_from_the_last_committed_checkpoint() {
    let clean = Harness::new(events());
    clean.run(0).await.unwrap();

    let h = Harness::new(events());
    let total = h.records.len();
    for until in [1, total / 3, total / 2, 2 * total / 3] {
        h.run_until(0, until, true).await.unwrap();
    }
    let committed = *h.committed.lock().unwrap();
    assert!(
        committed < total,
        "the crashes left work: {committed} of {total}"
    );
    h.run(0).await.unwrap();
    assert_eq!(h.warehouse.facts(), h.expected());
    assert_eq!(h.warehouse.state(), clean.warehouse.state());
}

#[tokio::test]
async fn a_half_written_batch_is_written_again_in_full() {
    let h = Harness::new(events());
    h.warehouse
        .fail_next(&[WriteFailure::HalfWritten, WriteFailure::HalfWritten]);
    h.run(0).await.unwrap();
    assert_eq!(h.warehouse.facts(), h.expected());
}

#[tokio::test]
async fn failed_log_reads_are_retried() {
    let h = Harness::new(events());
    h.run(3).await.unwrap();
    assert_eq!(h.warehouse.facts(), h.expected());
}

#[tokio::test]
async fn a_permanent_warehouse_error_stops_the_loop_without_committing_the_batch() {
    let h = Harness::new(events());
    h.warehouse.fail_next(&[WriteFailure::Permanent]);
    let err = h.run(0).await.unwrap_err();
    assert!(
        matches!(err, PipelineError::Warehouse(WarehouseError::Permanent(_))),
        "{err}"
    );
    assert_eq!(*h.committed.lock().unwrap(), 0, "nothing was committed");
    assert!(h.warehouse.facts().is_empty());
}

impl MemoryWarehouse {
    /// The state rows, as `id → value`.
    fn state(&self) -> BTreeMap<String, String> {
        self.rows
            .lock()
            .unwrap()
            .iter()
            .filter(|((table, _), _)| table == "reconcile_state")
            .map(|((_, id), (_, v))| (id.clone(), v["value"].as_str().unwrap().to_owned()))
            .collect()
    }
}

/// A warehouse written by a version without wait rows (state format 1) is upgraded when
/// a bounded consumer starts: the wait rows of its orphans are written with the format row,
/// and a link arriving afterwards resolves an orphan the consumer never had in memory.
#[tokio::test]
async fn a_state_written_before_wait_rows_is_upgraded_and_its_orphans_still_resolve() {
    let refund_first = [orphan_refund()];
    let (mut facts, _) = crate::matcher::reconcile(Default::default(), &refund_first);
    facts.state.retain(|r| {
        !["wait:", "hasw:", "subv:"]
            .iter()
            .any(|p| r.id.starts_with(p))
    });
    let warehouse = Arc::new(MemoryWarehouse::default());
    warehouse.write(Arc::new(facts)).await.unwrap();
    assert!(warehouse.state().contains_key("pend:refund:re_1"));
    assert!(!warehouse.state().keys().any(|k| k.starts_with("wait:")));

    let mut pipeline = bounded_pipeline(&warehouse).await;
    let state = warehouse.state();
    assert_eq!(
        state.get("meta:state_format").map(String::as_str),
        Some("3")
    );
    assert_eq!(
        state.get("wait:ch:ch_1#refund:re_1").map(String::as_str),
        Some("1")
    );
    for link in ["hasw:ch:ch_1", "hasw:pi:pi_1"] {
        assert_eq!(state.get(link).map(String::as_str), Some("1"), "{link}");
    }
    assert_eq!(
        state.get("wait:pi:pi_1#refund:re_1").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        pipeline.state().size(),
        0,
        "nothing was loaded but the format"
    );

    // The charge and its invoice arrive: the refund, read back through its wait row, is
    // linked and no longer pending.
    let links = invoice_and_charge_1();
    pipeline.process(&links).await.unwrap();
    let refund = warehouse.rows.lock().unwrap()[&("refunds".to_owned(), "re_1".to_owned())]
        .1
        .clone();
    assert_eq!(refund["invoice_id"], "in_1");
    assert_eq!(refund["subscription_id"], "sub_1");
    let state = warehouse.state();
    assert_eq!(state["pend:refund:re_1"], "null");
    assert_eq!(state["wait:ch:ch_1#refund:re_1"], "null");

    // Started again, nothing is upgraded twice.
    let writes = *warehouse.writes.lock().unwrap();
    pipeline.load_state().await.unwrap();
    assert_eq!(*warehouse.writes.lock().unwrap(), writes);
}

/// `ch_1` succeeded, paying `pi_1` for `cus_1`.
fn charge_1() -> LogRecord {
    use testkit::*;
    event(
        "evt_ch",
        "charge.succeeded",
        T0 + 2,
        BASIL,
        charge("ch_1", "pi_1", "cus_1", 2000, 0, T0 + 2),
    )
}

/// Invoice `in_1` of `sub_1` paid through `pi_1`, and the charge `ch_1` of that payment
/// intent: every link an orphan on `ch_1` waits on.
fn invoice_and_charge_1() -> Vec<LogRecord> {
    let mut links = testkit::paid_invoice_events("in_1", "cus_1", "sub_1", "pi_1", testkit::T0);
    links.push(charge_1());
    links
}

/// A refund of a charge nothing else names yet: an orphan waiting on `ch_1` and `pi_1`.
fn orphan_refund() -> LogRecord {
    use testkit::*;
    event(
        "evt_re",
        "refund.created",
        T0 + 10,
        BASIL,
        refund("re_1", "ch_1", "pi_1", 500, "succeeded", T0 + 10),
    )
}

/// A pipeline over `warehouse` that reads every batch's state back (the smallest cache).
async fn bounded_pipeline(warehouse: &Arc<MemoryWarehouse>) -> Pipeline<MemoryWarehouse> {
    let (_stop, shutdown) = watch::channel(false);
    let mut pipeline = Pipeline::new(
        warehouse.clone(),
        ReconcileMetrics::register(&mut Registry::default()),
        shutdown,
    )
    .with_state_cache(Some(0));
    pipeline.load_state().await.unwrap();
    pipeline
}

/// Two consumers race on one orphan. B holds the dispute's partition; C holds its
/// charge's, learns the charge's links and resolves the dispute in a checkpoint window.
/// Before C's checkpoint lands, B moves the dispute to its next stage (closed) without the
/// links, which are not in the warehouse yet, and sweeps in vain. C's resolution, written
/// last, must not erase that stage: a later sweep links it.
#[tokio::test]
async fn a_resolution_written_late_does_not_erase_a_newer_stage_of_its_orphan() {
    use testkit::*;
    let warehouse = Arc::new(MemoryWarehouse::default());
    let mut b = bounded_pipeline(&warehouse).await;
    let mut c = bounded_pipeline(&warehouse).await;
    let dispute_event = |id: &str, status: &str, t: i64| {
        event(
            id,
            &format!(
                "charge.dispute.{}",
                if status == "won" { "closed" } else { "created" }
            ),
            t,
            BASIL,
            dispute("dp_1", "ch_1", 2000, status, T0 + 200),
        )
    };

    b.process(&[dispute_event("evt_dc", "needs_response", T0 + 200)])
        .await
        .unwrap();
    let state = warehouse.state();
    assert_ne!(state["pend:dispute:dp_1"], "null");

    // C matches the links into its window: the dispute, read through its wait row, is
    // resolved there, but nothing is written yet.
    let links = invoice_and_charge_1();
    let (mut window, dead) = c.match_batch(&links).await.unwrap();
    assert!(dead.is_empty());
    let resolved = window.disputes.iter().find(|d| d.id == "dp_1");
    assert_eq!(
        resolved.and_then(|d| d.invoice_id.as_deref()),
        Some("in_1"),
        "C resolves the stage it read"
    );

    b.process(&[dispute_event("evt_dx", "won", T0 + 900)])
        .await
        .unwrap();
    b.sweep().await.unwrap();
    // B goes on with other events: the dispute leaves its memory (the smallest cache).
    b.process(&paid_invoice_events(
        "in_2",
        "cus_2",
        "sub_2",
        "pi_2",
        T0 + 5,
    ))
    .await
    .unwrap();
    assert!(b.state().pending.is_empty());
    tokio::time::sleep(Duration::from_millis(2)).await;

    window.state = c.checkpoint();
    c.writer().write(Arc::new(window)).await.unwrap();
    b.sweep().await.unwrap();

    let dispute = warehouse.rows.lock().unwrap()[&("disputes".to_owned(), "dp_1".to_owned())]
        .1
        .clone();
    assert_eq!(dispute["status"], "won");
    assert_eq!(dispute["invoice_id"], "in_1");
    assert_eq!(dispute["customer_id"], "cus_1");
    assert_eq!(dispute["subscription_id"], "sub_1");
    assert_eq!(warehouse.state()["pend:dispute:dp_1"], "null");
}

/// A warehouse in state format 2 (wait rows, but no link markers nor lists of snapshot
/// versions) is upgraded when a bounded consumer starts: its orphans are still found
/// through their links, and a subscription's history, now read by exact ids, gives the
/// same item intervals as the whole state would.
#[tokio::test]
async fn a_state_in_format_2_is_upgraded_to_exact_ids_and_reads_the_same_history() {
    use testkit::*;
    let snapshot = |id: &str, quantity: i64, t: i64| {
        event(
            id,
            "customer.subscription.updated",
            t,
            BASIL,
            subscription("sub_1", "cus_1", "active", quantity, 2000, t),
        )
    };
    let before = vec![
        snapshot("evt_s1", 1, T0),
        snapshot("evt_s3", 3, T0 + 30 * 86_400),
        orphan_refund(),
    ];
    let (mut facts, _) = crate::matcher::reconcile(Default::default(), &before);
    facts
        .state
        .retain(|r| !r.id.starts_with("hasw:") && !r.id.starts_with("subv:"));
    facts.state.push(StateRow {
        id: "meta:state_format".into(),
        value: "2".into(),
        version: 1,
    });
    let warehouse = Arc::new(MemoryWarehouse::default());
    warehouse.write(Arc::new(facts)).await.unwrap();

    let mut pipeline = bounded_pipeline(&warehouse).await;
    let state = warehouse.state();
    assert_eq!(state["meta:state_format"], "3");
    let versions: Vec<u64> = serde_json::from_str(&state["subv:sub_1"]).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(state["hasw:ch:ch_1"], "1");

    // A snapshot between the two known ones closes the first sooner and opens its own
    // interval up to the second: only right with the whole history read back.
    let mut after = vec![snapshot("evt_s2", 2, T0 + 10 * 86_400)];
    after.extend(paid_invoice_events("in_1", "cus_1", "sub_1", "pi_1", T0));
    after.push(charge_1());
    pipeline.process(&after).await.unwrap();
    let all: Vec<LogRecord> = before.iter().chain(&after).cloned().collect();
    let (expected, _) = crate::matcher::reconcile(Default::default(), &all);
    assert_eq!(warehouse.facts(), testkit::converge(&expected));
    let versions: Vec<u64> = serde_json::from_str(&warehouse.state()["subv:sub_1"]).unwrap();
    assert_eq!(versions.len(), 3);
}

/// A resolution that leaves an orphan pending writes it at the version it was read at
/// (see `State::take_dirty_rows`), which may be older than any sweep looks; the wait row
/// it adds is new, and a sweep finds the orphan through it. Here the dispute's rows are
/// long persisted; C learns its charge's payment intent (the dispute now waits on it too),
/// while Y, which learns that payment intent's invoice, looked before C's wait row landed.
#[tokio::test]
async fn a_sweep_finds_an_old_orphan_through_a_wait_row_written_lately() {
    use testkit::*;
    let warehouse = Arc::new(MemoryWarehouse::default());
    // Persisted long ago: the matcher's own row clock gives versions near zero.
    let (old, _) = crate::matcher::reconcile(
        Default::default(),
        &[event(
            "evt_dc",
            "charge.dispute.created",
            T0 + 200,
            BASIL,
            dispute("dp_1", "ch_1", 2000, "needs_response", T0 + 200),
        )],
    );
    let mut old = old;
    old.state.push(StateRow {
        id: "meta:state_format".into(),
        value: crate::matcher::state::FORMAT.into(),
        version: 1,
    });
    warehouse.write(Arc::new(old)).await.unwrap();
    let mut c = bounded_pipeline(&warehouse).await;
    let mut y = bounded_pipeline(&warehouse).await;

    let (mut y_window, _) = y
        .match_batch(&paid_invoice_events("in_1", "cus_1", "sub_1", "pi_1", T0))
        .await
        .unwrap();
    c.process(&[charge_1()]).await.unwrap();
    let state = warehouse.state();
    assert_eq!(state["wait:pi:pi_1#dispute:dp_1"], "1");
    y_window.state = y.checkpoint();
    y.writer().write(Arc::new(y_window)).await.unwrap();
    let dispute = |w: &MemoryWarehouse| {
        w.rows.lock().unwrap()[&("disputes".to_owned(), "dp_1".to_owned())]
            .1
            .clone()
    };
    assert_eq!(dispute(&warehouse)["customer_id"], "cus_1");
    assert!(dispute(&warehouse)["invoice_id"].is_null());

    // The charge's own payment row is pending too, and a sweep would reach the dispute
    // from it through the charge: marked resolved, so that only the new wait row leads
    // there.
    let resolved = FactSet {
        state: vec![StateRow {
            id: "pend:payment:ch_1".into(),
            value: "null".into(),
            version: crate::matcher::state::now_micros(),
        }],
        ..FactSet::default()
    };
    warehouse.write(Arc::new(resolved)).await.unwrap();
    let mut sweeper = bounded_pipeline(&warehouse).await;
    sweeper.sweep().await.unwrap();
    assert_eq!(dispute(&warehouse)["invoice_id"], "in_1");
    assert_eq!(dispute(&warehouse)["subscription_id"], "sub_1");
}

/// A sweep with a cache reads its recent orphans back a chunk at a time, and resolves,
/// writes and trims each chunk before it reads the next, so that a backlog of orphans is
/// never in memory at once; every orphan is still resolved. After the first chunk, a chunk
/// holds as many as fit a quarter of the cache at what the first ones added: with no room
/// at all, one.
#[tokio::test]
async fn a_sweep_reads_its_orphans_back_a_chunk_at_a_time_and_resolves_them_all() {
    use testkit::*;
    const ORPHANS: u32 = 5;
    let warehouse = Arc::new(MemoryWarehouse::default());
    let mut owner = bounded_pipeline(&warehouse).await;
    let disputes: Vec<LogRecord> = (1..=ORPHANS)
        .map(|i| {
            event(
                &format!("evt_dc{i}"),
                "charge.dispute.created",
                T0 + 200,
                BASIL,
                dispute(
                    &format!("dp_{i}"),
                    &format!("ch_{i}"),
                    2000,
                    "needs_response",
                    T0 + 200,
                ),
            )
        })
        .collect();
    owner.process(&disputes).await.unwrap();

    // Another consumer's links land without resolving the disputes (it looked before
    // their wait rows were written).
    let mut links = Vec::new();
    for i in 1..=ORPHANS {
        links.extend(paid_invoice_events(
            &format!("in_{i}"),
            &format!("cus_{i}"),
            &format!("sub_{i}"),
            &format!("pi_{i}"),
            T0,
        ));
        links.push(event(
            &format!("evt_ch{i}"),
            "charge.succeeded",
            T0 + 2,
            BASIL,
            charge(
                &format!("ch_{i}"),
                &format!("pi_{i}"),
                &format!("cus_{i}"),
                2000,
                0,
                T0 + 2,
            ),
        ));
    }
    let (mut learned, _) = crate::matcher::reconcile(Default::default(), &links);
    learned
        .state
        .retain(|r| !r.id.starts_with("pend:") && !r.id.starts_with("wait:"));
    warehouse.write(Arc::new(learned)).await.unwrap();
    let dispute_row = |i: u32| {
        warehouse.rows.lock().unwrap()[&("disputes".to_owned(), format!("dp_{i}"))]
            .1
            .clone()
    };
    assert!(dispute_row(1)["invoice_id"].is_null());

    let mut sweeper = bounded_pipeline(&warehouse).await.with_sweep_chunk(2);
    let writes = *warehouse.writes.lock().unwrap();
    sweeper.sweep().await.unwrap();
    assert_eq!(
        *warehouse.writes.lock().unwrap() - writes,
        1 + (ORPHANS - 2),
        "one write per chunk of orphans: the first of two, then one by one"
    );
    let state = warehouse.state();
    for i in 1..=ORPHANS {
        assert_eq!(dispute_row(i)["invoice_id"], format!("in_{i}"), "dp_{i}");
        assert_eq!(dispute_row(i)["subscription_id"], format!("sub_{i}"));
        assert_eq!(state[&format!("pend:dispute:dp_{i}")], "null");
    }
    assert!(
        sweeper.state().pending.is_empty(),
        "the smallest cache keeps no resolved orphan"
    );
}

/// One read of a [`ScriptedSource`]: its records, and whether a rebalance came before it.
struct Step {
    records: Vec<LogRecord>,
    reassigned: bool,
}

/// A consumer-group member's view of the log, driven by the test one read at a time.
/// Positions count the records read.
struct ScriptedSource {
    steps: tokio::sync::mpsc::UnboundedReceiver<Step>,
    /// Reads asked for so far: the test waits on it to know where the loop is.
    asked: Arc<Mutex<usize>>,
    read: usize,
    reassigned: bool,
    committed: Arc<Mutex<usize>>,
    rewinds: Arc<Mutex<usize>>,
    /// What [`EventSource::assigned_later`] answers.
    assigned_later: bool,
}

impl EventSource for ScriptedSource {
    type Position = usize;

    async fn next_batch(
        &mut self,
        _max: usize,
        _wait: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Batch<usize>, LogError> {
        *self.asked.lock().unwrap() += 1;
        let step = tokio::select! {
            step = self.steps.recv() => step,
            _ = eventlog::stopped(shutdown) => None,
        };
        let step = step.unwrap_or(Step {
            records: Vec::new(),
            reassigned: false,
        });
        self.reassigned |= step.reassigned;
        self.read += step.records.len();
        Ok(Batch {
            records: step.records,
            position: self.read,
        })
    }

    async fn commit(
        &mut self,
        position: &usize,
        _dead_letters: &[DeadLetter],
        _shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), LogError> {
        *self.committed.lock().unwrap() = *position;
        Ok(())
    }

    fn merge_position(earlier: &mut usize, later: usize) {
        *earlier = (*earlier).max(later);
    }

    fn take_reassigned(&mut self) -> bool {
        std::mem::take(&mut self.reassigned)
    }

    fn assigned_later(&self) -> bool {
        self.assigned_later
    }

    async fn rewind(&mut self) -> Result<(), LogError> {
        *self.rewinds.lock().unwrap() += 1;
        self.read = *self.committed.lock().unwrap();
        Ok(())
    }

    async fn lag(&mut self) -> Option<i64> {
        None
    }

    async fn close(&mut self) {}
}

/// Waits until the loop has asked for its `n`th read.
async fn wait_for_read(asked: &Arc<Mutex<usize>>, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while *asked.lock().unwrap() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the loop never asked for read {n}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The loop running over a [`ScriptedSource`]: the test feeds it reads through `steps`.
struct Scripted {
    steps: tokio::sync::mpsc::UnboundedSender<Step>,
    asked: Arc<Mutex<usize>>,
    committed: Arc<Mutex<usize>>,
    rewinds: Arc<Mutex<usize>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), PipelineError>>,
}

/// Starts the loop over `warehouse` with a whole state in memory, and no sweep or lag
/// refresh due during a test.
fn start_scripted(
    warehouse: &Arc<MemoryWarehouse>,
    options: LoopOptions,
    assigned_later: bool,
) -> Scripted {
    let (steps, rx) = tokio::sync::mpsc::unbounded_channel();
    let asked = Arc::new(Mutex::new(0));
    let committed = Arc::new(Mutex::new(0));
    let rewinds = Arc::new(Mutex::new(0));
    let source = ScriptedSource {
        steps: rx,
        asked: asked.clone(),
        read: 0,
        reassigned: false,
        committed: committed.clone(),
        rewinds: rewinds.clone(),
        assigned_later,
    };
    let (stop, shutdown) = watch::channel(false);
    let pipeline = Pipeline::new(
        warehouse.clone(),
        ReconcileMetrics::register(&mut Registry::default()),
        shutdown.clone(),
    );
    let options = LoopOptions {
        batch_wait: Duration::from_millis(5),
        sweep_interval: Duration::from_secs(3600),
        sole_sweep_interval: Duration::from_secs(3600),
        lag_interval: Duration::from_secs(3600),
        state_cache_bytes: None,
        ..options
    };
    Scripted {
        steps,
        asked,
        committed,
        rewinds,
        stop,
        task: tokio::spawn(run(source, pipeline, options, shutdown)),
    }
}

/// A loses the dispute's partition to B in a rebalance while the dispute's first stage
/// sits in A's checkpoint window. B reads from the committed offset and writes the
/// dispute's later stage (closed) before A sees the rebalance. A must not write its window
/// then: its pending row, stamped later, would put the dispute back to its first stage.
/// A drops the window, reads again from its committed position and writes nothing.
#[tokio::test]
async fn a_window_matched_before_a_rebalance_is_read_again_not_written() {
    use testkit::*;
    let warehouse = Arc::new(MemoryWarehouse::default());
    let dispute_event = |id: &str, kind: &str, status: &str, t: i64| {
        event(
            id,
            &format!("charge.dispute.{kind}"),
            t,
            BASIL,
            dispute("dp_1", "ch_1", 2000, status, T0 + 200),
        )
    };
    let created = dispute_event("evt_dc", "created", "needs_response", T0 + 200);
    let closed = dispute_event("evt_dx", "closed", "won", T0 + 900);

    let options = LoopOptions {
        batch_events: 1,
        checkpoint_events: 100,
        checkpoint_interval: Duration::from_secs(3600),
        ..LoopOptions::default()
    };
    let Scripted {
        steps,
        asked,
        committed,
        rewinds,
        stop,
        task: a,
    } = start_scripted(&warehouse, options, false);

    // The first read is a checkpoint of its own; the second, a full batch, stays in the
    // window.
    steps
        .send(Step {
            records: vec![charge_1()],
            reassigned: false,
        })
        .unwrap();
    steps
        .send(Step {
            records: vec![created.clone()],
            reassigned: false,
        })
        .unwrap();
    wait_for_read(&asked, 3).await;
    assert!(
        !warehouse.has_event("evt_dc"),
        "the window is not written yet"
    );

    // B, the partition's new owner, reads from the committed offset and goes further.
    let mut b = bounded_pipeline(&warehouse).await;
    b.process(&[created, closed]).await.unwrap();
    let stage = |warehouse: &MemoryWarehouse| -> Value {
        serde_json::from_str(&warehouse.state()["pend:dispute:dp_1"]).unwrap()
    };
    let written_by_b = stage(&warehouse);
    assert!(
        written_by_b.to_string().contains("\"won\""),
        "B wrote the closed stage: {written_by_b}"
    );
    tokio::time::sleep(Duration::from_millis(2)).await;

    // A sees the rebalance in its next read.
    steps
        .send(Step {
            records: Vec::new(),
            reassigned: true,
        })
        .unwrap();
    wait_for_read(&asked, 4).await;
    stop.send(true).unwrap();
    a.await.unwrap().unwrap();

    assert_eq!(stage(&warehouse), written_by_b, "B's stage stands");
    assert_eq!(
        *rewinds.lock().unwrap(),
        1,
        "A moved back to its committed position"
    );
    assert_eq!(*committed.lock().unwrap(), 1, "A committed nothing past it");
    let dispute = warehouse.rows.lock().unwrap()[&("disputes".to_owned(), "dp_1".to_owned())]
        .1
        .clone();
    assert_eq!(dispute["status"], "won");
}

/// A consumer-group member reads its state when its partitions are assigned, and only
/// then: reading it at its start as well read a whole state twice per start. A reader that
/// owns its records from the start (the embedded log) reads it at its start.
#[tokio::test]
async fn a_group_member_reads_its_state_once_at_its_first_assignment() {
    for assigned_later in [true, false] {
        let warehouse = Arc::new(MemoryWarehouse::default());
        let options = LoopOptions {
            batch_events: 100,
            ..LoopOptions::default()
        };
        let Scripted {
            steps,
            asked,
            committed,
            stop,
            task,
            ..
        } = start_scripted(&warehouse, options, assigned_later);
        let loads = || *warehouse.state_loads.lock().unwrap();

        steps
            .send(Step {
                records: Vec::new(),
                reassigned: false,
            })
            .unwrap();
        wait_for_read(&asked, 2).await;
        assert_eq!(
            loads(),
            usize::from(!assigned_later),
            "before any assignment (assigned later: {assigned_later})"
        );
        // The assignment comes with the first records, which are read again from the
        // committed position once the state is loaded.
        let records = invoice_and_charge_1();
        for reassigned in [assigned_later, false] {
            steps
                .send(Step {
                    records: records.clone(),
                    reassigned,
                })
                .unwrap();
            if !assigned_later {
                break;
            }
        }
        // An empty read: caught up, the checkpoint is settled and committed.
        steps
            .send(Step {
                records: Vec::new(),
                reassigned: false,
            })
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while *committed.lock().unwrap() < records.len() {
            assert!(tokio::time::Instant::now() < deadline, "nothing committed");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
        assert_eq!(loads(), 1, "assigned later: {assigned_later}");
        for record in &records {
            assert!(warehouse.has_event(&record.headers.event_id));
        }
    }
}

/// A sweep's chunks after the first: as many orphans as add a quarter of the cache at
/// the bytes per orphan measured so far, never more than the most, never none.
#[test]
fn sweep_chunks_are_sized_to_a_quarter_of_the_cache() {
    const MIB: usize = 1 << 20;
    assert_eq!(sweep_chunk_size(64 * MIB, 4_000, 10_000), 4_194);
    assert_eq!(sweep_chunk_size(64 * MIB, 1_000, 10_000), 10_000);
    assert_eq!(sweep_chunk_size(256 * MIB, 4_000, 10_000), 10_000);
    assert_eq!(sweep_chunk_size(0, 4_000, 10_000), 1);
    assert_eq!(sweep_chunk_size(64 * MIB, 0, 10_000), 10_000);
    assert_eq!(sweep_chunk_size(64 * MIB, 4_000, 0), 1);
}
