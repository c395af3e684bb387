//! Feeding the matcher: the shared [`Pipeline`] (apply a batch, write its facts with
//! retries, then let the caller store its position) and the two loops over it,
//! [`embedded::run`] and [`kafka::run`].
//!
//! The order is fixed: facts are confirmed by the warehouse before the log position
//! moves, so a crash replays at most the unconfirmed batch, which the idempotent tables
//! absorb. Transient warehouse errors are retried with backoff, never skipped; a permanent
//! one stops the consumer (its position stays before the batch).

pub mod embedded;
pub mod kafka;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use schemas::LogRecord;
use tokio::sync::watch;

use crate::matcher::{FactSet, Matcher, Outcome, State};
use crate::metrics::{KindLabel, OutcomeLabel, ReasonLabel, ReconcileMetrics};
use crate::warehouse::{Warehouse, WarehouseError};

/// Resolves once `shutdown` turns true (or its sender is gone). The `Ref` that
/// `wait_for` returns is dropped here, so callers' futures stay `Send`.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Why a loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("stopped")]
    Stopped,
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("event log: {0}")]
    Log(String),
}

/// A dead-lettered event of a batch (for the Kafka dead-letter topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub event_id: String,
    pub reason: String,
    pub detail: String,
}

/// Batch bounds and timers shared by both loops.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Most events per batch.
    pub batch_events: usize,
    /// Longest a batch waits to fill up.
    pub batch_wait: Duration,
    /// How often orphans look for parents written by other consumers.
    pub sweep_interval: Duration,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            batch_events: 2_000,
            batch_wait: Duration::from_millis(500),
            sweep_interval: Duration::from_secs(30),
        }
    }
}

/// Matcher + warehouse: batches are prepared (matched) one at a time, in order, and
/// written by a [`Writer`]; a loop may match batch N+1 while batch N is being written, but
/// stores the log position of N only after N's write returned.
pub struct Pipeline<W> {
    matcher: Matcher,
    writer: Writer<W>,
    last_stamp: u64,
}

/// A matched batch waiting to be written.
pub struct Prepared {
    pub facts: Arc<FactSet>,
    pub dead_letters: Vec<DeadLetter>,
}

/// Writes facts with retries; cheap to clone into a task.
pub struct Writer<W> {
    warehouse: Arc<W>,
    pub(crate) metrics: ReconcileMetrics,
    shutdown: watch::Receiver<bool>,
}

impl<W> Clone for Writer<W> {
    fn clone(&self) -> Self {
        Writer {
            warehouse: self.warehouse.clone(),
            metrics: self.metrics.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

impl<W: Warehouse> Pipeline<W> {
    pub fn new(
        warehouse: Arc<W>,
        metrics: ReconcileMetrics,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Pipeline {
            matcher: Matcher::default(),
            writer: Writer {
                warehouse,
                metrics,
                shutdown,
            },
            last_stamp: 0,
        }
    }

    pub fn warehouse(&self) -> &Arc<W> {
        &self.writer.warehouse
    }

    pub fn writer(&self) -> Writer<W> {
        self.writer.clone()
    }

    pub(crate) fn metrics(&self) -> &ReconcileMetrics {
        &self.writer.metrics
    }

    pub fn state(&self) -> &State {
        self.matcher.state()
    }

    /// Replaces the matcher state with what the warehouse holds (start, rebalance). Call
    /// only with no write in flight.
    pub async fn load_state(&mut self) -> Result<(), PipelineError> {
        let warehouse = self.writer.warehouse.clone();
        let rows = self
            .writer
            .retry("load state", || warehouse.load_state(None))
            .await?;
        let mut state = State::default();
        let skipped = state.load_rows(rows);
        if skipped > 0 {
            tracing::warn!(skipped, "state rows that could not be read were skipped");
        }
        tracing::info!(
            entries = state.size(),
            pending = state.pending.len(),
            "matcher state loaded"
        );
        // New state rows must outrank everything persisted, whatever this host's clock says.
        self.last_stamp = self.last_stamp.max(state.clock());
        self.matcher = Matcher::new(state);
        self.update_gauges();
        Ok(())
    }

    /// Matches one batch (no I/O): its facts, ready to write, and its dead letters.
    pub fn prepare(&mut self, records: &[LogRecord]) -> Prepared {
        let (facts, outcomes) = self.matcher.apply(records);
        let metrics = &self.writer.metrics;
        let mut dead = Vec::new();
        for (record, outcome) in records.iter().zip(&outcomes) {
            let label = match outcome {
                Outcome::Reconciled => "reconciled",
                Outcome::Ignored => "ignored",
                Outcome::BackfillRequested => {
                    tracing::warn!(
                        stripe_event_id = %record.headers.event_id,
                        "Stripe reports it failed to generate events: list undelivered events \
                         (GET /v1/events?delivery_success=false) and resend them"
                    );
                    "backfill_requested"
                }
                Outcome::DeadLettered { reason, detail } => {
                    metrics
                        .dead_letters
                        .get_or_create(&ReasonLabel {
                            reason: reason.clone(),
                        })
                        .inc();
                    tracing::warn!(
                        stripe_event_id = %record.headers.event_id,
                        event_type = record.headers.event_type.as_deref().unwrap_or(""),
                        reason = %reason,
                        detail = %detail,
                        "event dead-lettered"
                    );
                    dead.push(DeadLetter {
                        event_id: record.headers.event_id.clone(),
                        reason: reason.clone(),
                        detail: detail.clone(),
                    });
                    "dead_lettered"
                }
            };
            metrics
                .events
                .get_or_create(&OutcomeLabel { outcome: label })
                .inc();
        }
        metrics.batch_events.observe(records.len() as f64);
        self.update_gauges();
        Prepared {
            facts: Arc::new(self.stamp(facts)),
            dead_letters: dead,
        }
    }

    /// Matches one batch and waits until its facts are in the warehouse.
    pub async fn process(
        &mut self,
        records: &[LogRecord],
    ) -> Result<Vec<DeadLetter>, PipelineError> {
        let prepared = self.prepare(records);
        self.writer.write(prepared.facts).await?;
        Ok(prepared.dead_letters)
    }

    /// Looks up, in the warehouse, links other consumers learned for this consumer's
    /// orphans, and emits the rows they resolve. Call only with no write in flight.
    pub async fn sweep(&mut self) -> Result<(), PipelineError> {
        let wanted: Vec<String> = self
            .matcher
            .state()
            .wanted_parents()
            .iter()
            .flat_map(|link| State::persisted_keys(link))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let warehouse = self.writer.warehouse.clone();
        let rows = self
            .writer
            .retry("sweep orphans", || warehouse.load_state(Some(&wanted)))
            .await?;
        let mut merged = self.matcher.state().clone();
        merged.load_rows(rows);
        self.last_stamp = self.last_stamp.max(merged.clock());
        self.matcher = Matcher::new(merged);
        let facts = self.matcher.resolve_pending();
        if facts.fact_count() > 0 {
            tracing::info!(
                rows = facts.fact_count(),
                "orphans resolved by links from other consumers"
            );
        }
        let facts = Arc::new(self.stamp(facts));
        self.writer.write(facts).await
    }

    /// State rows: last writer wins across consumers, so they are stamped with the time.
    fn stamp(&mut self, mut facts: FactSet) -> FactSet {
        for row in &mut facts.state {
            self.last_stamp = now_micros().max(self.last_stamp + 1);
            row.version = self.last_stamp;
        }
        facts
    }

    fn update_gauges(&self) {
        let state = self.matcher.state();
        self.writer.metrics.state_entries.set(state.size() as i64);
        self.writer
            .metrics
            .pending_orphans
            .set(state.pending.len() as i64);
    }
}

impl<W: Warehouse> Writer<W> {
    /// Writes a batch's facts, retrying transient failures; returns once they are durable.
    pub async fn write(&self, facts: Arc<FactSet>) -> Result<(), PipelineError> {
        let count = facts.fact_count();
        let started = Instant::now();
        self.retry("write facts", || self.warehouse.write(facts.clone()))
            .await?;
        self.metrics
            .batch_write_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.facts_written.inc_by(count as u64);
        Ok(())
    }

    /// Retries `call` while it fails transiently (backoff 100 ms doubling to 10 s), until
    /// it succeeds, fails permanently, or shutdown is requested.
    async fn retry<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, PipelineError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, WarehouseError>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut shutdown = self.shutdown.clone();
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(err) if err.is_transient() => {
                    self.metrics
                        .warehouse_errors
                        .get_or_create(&KindLabel { kind: "transient" })
                        .inc();
                    tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "{what}: warehouse unavailable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = crate::consumer::stopped(&mut shutdown) => return Err(PipelineError::Stopped),
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(err) => {
                    self.metrics
                        .warehouse_errors
                        .get_or_create(&KindLabel { kind: "permanent" })
                        .inc();
                    tracing::error!(error = %err, "{what}: warehouse error that retrying cannot fix");
                    return Err(err.into());
                }
            }
        }
    }
}

/// A batch being written in the background, with what to do once it is durable.
pub(crate) struct InFlight<T> {
    task: tokio::task::JoinHandle<Result<(), PipelineError>>,
    pub then: T,
}

impl<T> InFlight<T> {
    pub fn spawn<W: Warehouse>(writer: Writer<W>, facts: Arc<FactSet>, then: T) -> Self {
        InFlight {
            task: tokio::spawn(async move { writer.write(facts).await }),
            then,
        }
    }

    /// Waits for the write; gives back `then` once the facts are durable.
    pub async fn finish(self) -> Result<T, PipelineError> {
        match self.task.await {
            Ok(Ok(())) => Ok(self.then),
            Ok(Err(err)) => Err(err),
            Err(join) => Err(PipelineError::Log(format!("write task failed: {join}"))),
        }
    }
}
