//! Feeding the matcher: the [`Pipeline`] (match a batch, write its facts with retries) and
//! the one loop, [`run`], that drives it from any event source (the Kafka consumer group or
//! the embedded log: both are [`eventlog::EventSource`]s) into any [`Warehouse`].
//!
//! Batches are written at checkpoints: the facts of the batches matched since the last
//! one, with the matcher state rows they changed (each key once, however many batches
//! changed it), in one write per table. A checkpoint comes when the log is caught up (a
//! batch that did not fill), after [`LoopOptions::checkpoint_events`] events or
//! [`LoopOptions::checkpoint_interval`], after the first batch since a start or a
//! rebalance, and before a sweep or a stop. After a rebalance the batches matched since
//! the last checkpoint are dropped, not written, and read again ([`EventSource::rewind`]):
//! they may hold partitions another member owns now.
//!
//! Every [`LoopOptions::sweep_interval`] the orphans look for parents that other consumers
//! learned ([`Pipeline::sweep`]). A consumer that holds every partition
//! ([`EventSource::sole_reader`]) sweeps once after it got them, for what their previous
//! owners left, and then only every [`LoopOptions::sole_sweep_interval`]: no other consumer
//! writes state, and its own batches find the orphans their links resolve.
//!
//! The order is fixed: a checkpoint's facts and state are confirmed by the warehouse
//! before the source's position moves past its batches (and before their poison records
//! are forwarded to the dead-letter topic), so a crash replays at most what came after the
//! last confirmed checkpoint, from the state as of that checkpoint, and the idempotent
//! tables absorb the facts written again. The batches after a checkpoint are read and
//! matched while it is written. Transient warehouse and log errors are retried with
//! backoff, never skipped; a permanent warehouse error stops the loop (its position stays
//! before the checkpoint).

mod retry;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlog::{Batch, DeadLetter, EventSource, LogError};
use futures_util::TryStreamExt;
use schemas::facts::{FactSet, StateRow};
use schemas::LogRecord;
use tokio::sync::watch;
use warehouse::{RowQuery, Warehouse, WarehouseError};

pub use eventlog::stopped;
pub use retry::{retry, Backoff};

use crate::matcher::state::{now_micros, FORMAT, FORMAT_KEY};
use crate::matcher::{self, Matcher, Object, Outcome, State};
use crate::metrics::{KindLabel, OutcomeLabel, ReasonLabel, ReconcileMetrics};

/// Why a loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("stopped")]
    Stopped,
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("write task failed: {0}")]
    Task(String),
}

/// Batch bounds and timers.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Most events per batch.
    pub batch_events: usize,
    /// Longest a batch waits to fill up.
    pub batch_wait: Duration,
    /// How often orphans look for parents written by other consumers.
    pub sweep_interval: Duration,
    /// How often once this consumer holds every partition and has swept since it got
    /// them: no other consumer writes state then, and its own batches find the orphans
    /// their links resolve. The first sweep after an assignment still comes after
    /// `sweep_interval`, for what the previous owners left.
    pub sole_sweep_interval: Duration,
    /// How often the lag metric is refreshed.
    pub lag_interval: Duration,
    /// Most bytes of matcher state kept in memory (the rest is read when needed); `None`
    /// keeps the whole state, loaded at start.
    pub state_cache_bytes: Option<usize>,
    /// A checkpoint after at most this many events (facts of more batches per insert, and
    /// each changed state row once; more memory, and more to replay after a crash).
    pub checkpoint_events: usize,
    /// A checkpoint at most this long after the first batch since the last one, even
    /// while the log is not caught up.
    pub checkpoint_interval: Duration,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            batch_events: 2_000,
            batch_wait: Duration::from_millis(500),
            sweep_interval: Duration::from_secs(30),
            sole_sweep_interval: Duration::from_secs(600),
            lag_interval: Duration::from_secs(10),
            state_cache_bytes: None,
            checkpoint_events: 10_000,
            checkpoint_interval: Duration::from_secs(2),
        }
    }
}

/// Matcher + warehouse: batches are prepared (matched) one at a time, in order, and
/// written by a [`Writer`]; [`run`] may match batch N+1 while batch N is being written, but
/// commits the source's position past N only after N's write returned.
pub struct Pipeline<W> {
    matcher: Matcher,
    writer: Writer<W>,
    /// Most bytes the matcher state keeps in memory (`None`: all of it, loaded at start).
    state_cache: Option<usize>,
    /// The next sweep looks at orphans written since this stamp (microseconds).
    sweep_from: u64,
    /// When the whole state's bytes were last counted for the gauge: a walk over all of
    /// it, so at most every [`STATE_BYTES_EVERY`].
    state_bytes_counted: Option<Instant>,
    /// The most recent orphans a cache's sweep reads back at a time
    /// ([`SWEEP_CHUNK_ORPHANS`]); fewer when they would grow the cache past its share.
    sweep_chunk: usize,
}

/// State rows read into the matcher at a time when the whole state is loaded.
const LOAD_CHUNK_ROWS: usize = 10_000;

/// How often the `state_bytes` gauge of a whole in-memory state is recounted.
const STATE_BYTES_EVERY: Duration = Duration::from_secs(10);

/// How far back the first sweep after a start looks for orphans another consumer set
/// (one that stopped before its own sweep): a day.
const FIRST_SWEEP_LOOKBACK_MICROS: u64 = 24 * 3600 * 1_000_000;
/// How far each sweep looks back past the previous one.
const SWEEP_OVERLAP_MICROS: u64 = 120 * 1_000_000;

/// The most recent orphans a sweep with a cache reads back, resolves, writes and trims at
/// a time: what bounds its memory, whatever the backlog.
const SWEEP_CHUNK_ORPHANS: usize = 10_000;
/// Recent orphans a sweep's first chunk reads back. Each next chunk is sized from the bytes
/// per orphan the chunks before it added, so that it adds about [`SWEEP_CHUNK_SHARE`] of
/// the cache's size: an orphan brings its pend row, the links it waits on and their other
/// wait rows, whose size depends on the business, not on revline.
const SWEEP_FIRST_CHUNK: usize = 1_000;
/// A sweep's chunk may grow a cache past its size by this fraction of it (1/4) before the
/// chunk is resolved, written and trimmed.
const SWEEP_CHUNK_SHARE: usize = 4;

/// A matched batch waiting to be written.
pub struct Prepared {
    pub facts: Arc<FactSet>,
    /// Indexes (into the batch) of the events that were dead-lettered, with the reason.
    pub dead_letters: Vec<(usize, String, String)>,
}

/// Writes facts with retries; cheap to clone into a task.
pub struct Writer<W> {
    warehouse: Arc<W>,
    metrics: ReconcileMetrics,
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

impl<W: Warehouse> Pipeline<W> {
    pub fn new(
        warehouse: Arc<W>,
        metrics: ReconcileMetrics,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let mut state = State::default();
        state.use_wall_clock();
        Pipeline {
            matcher: Matcher::new(state),
            writer: Writer {
                warehouse,
                metrics,
                shutdown,
            },
            state_cache: None,
            sweep_from: 0,
            state_bytes_counted: None,
            sweep_chunk: SWEEP_CHUNK_ORPHANS,
        }
    }

    /// Bounds the matcher state to about `bytes` in memory; `None` (the default) keeps all
    /// of it, loaded whole at start.
    pub fn with_state_cache(mut self, bytes: Option<usize>) -> Self {
        self.state_cache = bytes;
        self
    }

    /// Sets how many recent orphans a sweep with a cache reads back at a time.
    pub fn with_sweep_chunk(mut self, orphans: usize) -> Self {
        self.sweep_chunk = orphans.max(1);
        self
    }

    pub fn warehouse(&self) -> &Arc<W> {
        &self.writer.warehouse
    }

    pub fn writer(&self) -> Writer<W> {
        self.writer.clone()
    }

    pub fn metrics(&self) -> &ReconcileMetrics {
        &self.writer.metrics
    }

    pub fn state(&self) -> &State {
        self.matcher.state()
    }

    /// Starts the matcher from what the warehouse holds (start, rebalance). With a bounded
    /// state this reads nothing but the state format (each batch then reads what it
    /// needs); a warehouse whose state is in an older format is upgraded first. Call only
    /// with no write in flight.
    pub async fn load_state(&mut self) -> Result<(), PipelineError> {
        // Every version this process wrote or read so far, and those an upgrade writes.
        let mut clock = self.matcher.state().clock();
        let mut state = if self.state_cache.is_some() {
            let query = warehouse::StateQuery {
                ids: vec![FORMAT_KEY.to_owned()],
                ..Default::default()
            };
            let rows = self
                .writer
                .read_state("read the state format", &query)
                .await?;
            if !rows.iter().any(|r| r.value == FORMAT) {
                let (mut whole, _) = self.load_whole_state().await?;
                self.upgrade_state(&mut whole).await?;
                clock = clock.max(whole.clock());
            }
            tracing::info!(
                cache_bytes = self.state_cache,
                "matcher state is read as batches need it"
            );
            State::bounded()
        } else {
            let (mut state, has_format) = self.load_whole_state().await?;
            if has_format {
                // Loading marked the wait rows of the pending rows it read: they are
                // persisted already.
                state.take_dirty_rows();
            } else {
                self.upgrade_state(&mut state).await?;
            }
            tracing::info!(
                entries = state.size(),
                pending = state.pending.len(),
                "matcher state loaded"
            );
            state
        };
        // New state rows must outrank everything persisted and everything this process
        // wrote, whatever this host's clock says.
        state.use_wall_clock();
        state.raise_clock(clock);
        self.matcher = Matcher::new(state);
        self.sweep_from = now_micros().saturating_sub(FIRST_SWEEP_LOOKBACK_MICROS);
        self.state_bytes_counted = None;
        self.update_gauges();
        Ok(())
    }

    /// The whole state, and whether it is in the current format. The rows are streamed
    /// into the state a chunk at a time, so they are never all in memory beside the state
    /// they build (that doubled the peak of a start or a rebalance).
    async fn load_whole_state(&mut self) -> Result<(State, bool), PipelineError> {
        let warehouse = self.writer.warehouse.clone();
        let (state, has_format, skipped) = self
            .writer
            .retry("load state", || {
                let warehouse = warehouse.clone();
                async move {
                    let mut rows = warehouse.rows::<StateRow>(&RowQuery::default());
                    let (mut state, mut has_format, mut skipped) = (State::default(), false, 0);
                    let mut chunk = Vec::with_capacity(LOAD_CHUNK_ROWS);
                    while let Some(row) = rows.try_next().await? {
                        has_format |= row.id == FORMAT_KEY && row.value == FORMAT;
                        chunk.push(row);
                        if chunk.len() == LOAD_CHUNK_ROWS {
                            skipped += state.load_rows(chunk.drain(..));
                        }
                    }
                    skipped += state.load_rows(chunk);
                    Ok((state, has_format, skipped))
                }
            })
            .await?;
        if skipped > 0 {
            tracing::warn!(skipped, "state rows that could not be read were skipped");
        }
        Ok((state, has_format))
    }

    /// State format 1 or 2 → 3: writes the wait rows of every pending row (what lets a
    /// batch find the orphans a link resolves without loading them all), the markers of the
    /// links they wait on and every subscription's list of snapshot versions (what lets it
    /// read everything by exact ids), then the format row.
    /// `state` is the whole state, just loaded. Safe to run twice or on several consumers
    /// at once: it writes what is true.
    async fn upgrade_state(&mut self, state: &mut State) -> Result<(), PipelineError> {
        state.use_wall_clock();
        state.raise_clock(self.matcher.state().clock());
        // Loading marks the wait rows of every pending row it brought in; the links they
        // wait on get their markers, the subscriptions their lists of snapshot versions.
        state.mark_exact_ids();
        let mut facts = FactSet {
            state: state.take_dirty_rows(),
            ..FactSet::default()
        };
        let waits = facts.state.len();
        facts.state.push(schemas::facts::StateRow {
            id: FORMAT_KEY.to_owned(),
            value: FORMAT.to_owned(),
            version: state.next_stamp(),
        });
        self.writer.write(Arc::new(facts)).await?;
        tracing::info!(
            pending = state.pending.len(),
            wait_rows = waits,
            "matcher state upgraded to format {FORMAT}"
        );
        Ok(())
    }

    /// Reads the state objects `decoded` needs that are not in memory, a few queries per
    /// batch (see [`crate::matcher::cache`]).
    async fn load_needed(&mut self, decoded: &[matcher::Decoded]) -> Result<(), PipelineError> {
        if !self.matcher.state().is_bounded() {
            return Ok(());
        }
        self.matcher.state_mut().begin_batch();
        self.load_objects(matcher::roots(decoded)).await
    }

    /// Reads `roots` and what they lead to, where not in memory yet.
    async fn load_objects(&mut self, roots: Vec<Object>) -> Result<(), PipelineError> {
        let mut todo = self.matcher.state_mut().missing(roots);
        while !todo.is_empty() {
            let mut rows = self
                .writer
                .read_state("load state", &Object::query(&todo))
                .await?;
            let more = Object::follow_up(&rows);
            if !more.is_empty() {
                rows.extend(self.writer.read_state("load state", &more).await?);
            }
            self.writer
                .metrics
                .state_rows_loaded
                .inc_by(rows.len() as u64);
            let state = self.matcher.state_mut();
            let next = state.absorb(&todo, rows);
            todo = state.missing(next);
        }
        self.matcher.state_mut().settle();
        Ok(())
    }

    /// Matches one batch and checkpoints: reads the state it needs, then derives its facts
    /// and the state rows it changed, ready to write, and its dead letters.
    pub async fn prepare(&mut self, records: &[LogRecord]) -> Result<Prepared, PipelineError> {
        let (mut facts, dead_letters) = self.match_batch(records).await?;
        facts.state = self.checkpoint();
        Ok(Prepared {
            facts: Arc::new(facts),
            dead_letters,
        })
    }

    /// The state rows changed since the last checkpoint, stamped, to be written with (or
    /// after) the facts of the batches that changed them; then a bounded state is trimmed
    /// and a new checkpoint window starts.
    pub fn checkpoint(&mut self) -> Vec<StateRow> {
        let rows = self.matcher.state_mut().take_dirty_rows();
        self.trim();
        rows
    }

    /// Once the state rows changed so far are taken: trims a bounded state to its size and
    /// starts a new checkpoint window.
    fn trim(&mut self) {
        if let Some(bytes) = self.state_cache {
            let state = self.matcher.state_mut();
            let evicted = state.evict(bytes);
            state.start_window();
            self.writer.metrics.state_evicted.inc_by(evicted as u64);
        }
        self.update_gauges();
    }

    /// Matches one batch: reads the state it needs, then derives its facts and its dead
    /// letters (indexes into `records`, reasons). The state rows it changes wait for the
    /// next [`Pipeline::checkpoint`].
    async fn match_batch(
        &mut self,
        records: &[LogRecord],
    ) -> Result<(FactSet, Vec<(usize, String, String)>), PipelineError> {
        let decoded = matcher::decode(records);
        self.load_needed(&decoded).await?;
        let (facts, outcomes) = self.matcher.match_decoded(records, decoded);
        let metrics = &self.writer.metrics;
        metrics.same_second_ties.inc_by(facts.ties.len() as u64);
        let mut dead = Vec::new();
        for (i, (record, outcome)) in records.iter().zip(&outcomes).enumerate() {
            let label = match outcome {
                Outcome::Reconciled => "reconciled",
                Outcome::Ignored => "ignored",
                Outcome::BackfillRequested => {
                    tracing::warn!(
                        stripe_event_id = %record.headers.event_id,
                        "Stripe reports it failed to generate events: fetch what was missed with \
                         `revline backfill --since <when the incident began>`"
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
                    dead.push((i, reason.clone(), detail.clone()));
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
        Ok((facts, dead))
    }

    /// Matches one batch and waits until its facts are in the warehouse.
    pub async fn process(&mut self, records: &[LogRecord]) -> Result<(), PipelineError> {
        let prepared = self.prepare(records).await?;
        self.writer.write(prepared.facts).await
    }

    /// Looks up, in the warehouse, links other consumers learned for the orphans this
    /// consumer holds, and for every orphan any consumer set since the previous sweep (the
    /// consumer that set it may have stopped before it could sweep, and the consumer that
    /// learned its link may have looked before the orphan's wait row was written), and
    /// emits the rows they resolve. With a cache, those recent orphans are read back a chunk
    /// at a time, each chunk written and trimmed before the next: [`SWEEP_FIRST_CHUNK`]
    /// first, then as many as add about a quarter of the cache's size, judging by the
    /// chunks before (at most [`SWEEP_CHUNK_ORPHANS`]).
    /// Call only with no write in flight.
    pub async fn sweep(&mut self) -> Result<(), PipelineError> {
        let started = now_micros();
        let recent = if self.matcher.state().is_bounded() {
            self.recent_orphans().await?
        } else {
            Vec::new()
        };
        // A cache reads the recent orphans back a chunk at a time, and each chunk is
        // resolved, written and trimmed before the next is read: during a backlog a sweep
        // may look at hundreds of thousands, and holding them all at once is what set the
        // cache's peak memory. Every round also looks at the orphans in memory; there is
        // one round at least.
        let mut asked: HashSet<String> = HashSet::new();
        let mut rest: &[matcher::PendingKey] = &recent;
        let mut size = self.sweep_chunk.min(SWEEP_FIRST_CHUNK);
        // Bytes the chunks so far added to the cache, and their orphans.
        let (mut added, mut orphans) = (0usize, 0usize);
        loop {
            let (chunk, after) = rest.split_at(size.min(rest.len()));
            rest = after;
            let mut before = 0;
            if !chunk.is_empty() {
                before = self.matcher.state().approx_bytes();
                self.matcher.state_mut().begin_batch();
                self.load_objects(chunk.iter().cloned().map(Object::Pending).collect())
                    .await?;
            }
            let grown = self.sweep_round(&mut asked).await?.saturating_sub(before);
            if rest.is_empty() {
                break;
            }
            added += grown;
            orphans += chunk.len();
            size = sweep_chunk_size(
                self.state_cache.unwrap_or(0),
                added / orphans.max(1),
                self.sweep_chunk,
            );
            tracing::debug!(
                orphans = chunk.len(),
                added_bytes = grown,
                next = size,
                "sweep: chunk done"
            );
        }
        // The next sweep looks back past this one by a margin for writes that were in
        // flight (or stamped by a host whose clock is a little behind).
        self.sweep_from = started.saturating_sub(SWEEP_OVERLAP_MICROS);
        self.writer.metrics.sweeps.inc();
        Ok(())
    }

    /// The orphans whose pend or wait rows were written since the last sweep looked (a
    /// resolution that left a row pending writes it at the version it read, see
    /// `State::take_dirty_rows`, which may be older than this sweep looks; but the wait
    /// rows it adds are new), each once.
    async fn recent_orphans(&mut self) -> Result<Vec<matcher::PendingKey>, PipelineError> {
        let query = warehouse::StateQuery {
            prefixes: vec!["pend:".to_owned(), "wait:".to_owned()],
            since: Some(self.sweep_from),
            // Only their ids: during a backlog these are tens of thousands of rows, and
            // their values (each a fact waiting for its parent) are read again, a chunk at
            // a time, when the chunk is loaded.
            keys_only: true,
            ..Default::default()
        };
        let rows = self
            .writer
            .read_state("read recent orphans", &query)
            .await?;
        let mut seen = HashSet::new();
        let recent: Vec<matcher::PendingKey> = rows
            .into_iter()
            .filter(|r| r.value != "null")
            .filter_map(|r| match r.id.parse::<matcher::StateKey>() {
                Ok(matcher::StateKey::Pending(key))
                | Ok(matcher::StateKey::Wait { pending: key, .. }) => Some(key),
                _ => None,
            })
            .filter(|key| seen.insert(key.clone()))
            .collect();
        tracing::debug!(
            orphans = recent.len(),
            "sweep: recent orphans and wait rows"
        );
        Ok(recent)
    }

    /// One round of a sweep over the orphans in memory: reads the links they wait on
    /// (those not `asked` this sweep yet), emits what they resolve with the state rows
    /// that changed, and trims a cache. Returns the bytes the state held before the trim.
    async fn sweep_round(&mut self, asked: &mut HashSet<String>) -> Result<usize, PipelineError> {
        // Read again even when in memory: another consumer may have learned more. A link
        // read may name the next one (a charge's payment intent, that one's invoice), so
        // this goes on until no new link is wanted: at most three reads.
        loop {
            let wanted: Vec<String> = self
                .matcher
                .state()
                .wanted_parents()
                .iter()
                .flat_map(|link| State::persisted_keys(link))
                .filter(|key| !asked.contains(key))
                .collect();
            if wanted.is_empty() {
                break;
            }
            tracing::debug!(
                keys = wanted.len(),
                "sweep: reading the links orphans wait on"
            );
            asked.extend(wanted.iter().cloned());
            let query = warehouse::StateQuery {
                ids: wanted,
                ..Default::default()
            };
            let rows = self.writer.read_state("sweep orphans", &query).await?;
            self.matcher.state_mut().load_rows(rows);
        }
        let state = self.matcher.state_mut();
        // `resolve_pending` below looks at every orphan in memory, those just read too.
        state.take_recheck();
        let facts = self.matcher.resolve_pending();
        if facts.fact_count() > 0 {
            tracing::info!(
                rows = facts.fact_count(),
                "orphans resolved by links from other consumers"
            );
        }
        if !facts.is_empty() {
            self.writer.write(Arc::new(facts)).await?;
        }
        // A walk over the cache (a whole state is never chunked).
        let grown = if self.matcher.state().is_bounded() {
            self.matcher.state().approx_bytes()
        } else {
            0
        };
        self.trim();
        Ok(grown)
    }

    fn update_gauges(&mut self) {
        let state = self.matcher.state();
        self.writer.metrics.state_entries.set(state.size() as i64);
        // A cache knows its bytes as of its last count; a whole state is walked, which
        // grows with the history, so not after every batch.
        let due = self
            .state_bytes_counted
            .is_none_or(|at| at.elapsed() >= STATE_BYTES_EVERY);
        if state.is_bounded() || due {
            self.writer
                .metrics
                .state_bytes
                .set(state.bytes_in_memory() as i64);
            if !state.is_bounded() {
                self.state_bytes_counted = Some(Instant::now());
            }
        }
        self.writer
            .metrics
            .pending_orphans
            .set(state.pending.len() as i64);
    }
}

/// How many recent orphans a sweep's next chunk reads back: as many as add about
/// `1 / SWEEP_CHUNK_SHARE` of a cache of `cache_bytes` at `bytes_per_orphan` (what the
/// chunks before added), at least one and at most `most`.
fn sweep_chunk_size(cache_bytes: usize, bytes_per_orphan: usize, most: usize) -> usize {
    (cache_bytes / SWEEP_CHUNK_SHARE / bytes_per_orphan.max(1)).clamp(1, most.max(1))
}

impl<W: Warehouse> Writer<W> {
    /// Reads the state rows `query` asks for, retrying transient failures (`what` names
    /// the read in the log).
    async fn read_state(
        &self,
        what: &str,
        query: &warehouse::StateQuery,
    ) -> Result<Vec<StateRow>, PipelineError> {
        self.retry(what, || self.warehouse.load_state_matching(query))
            .await
    }

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

    /// Retries `call` while it fails transiently, until it succeeds, fails permanently, or
    /// shutdown is requested; counts every failure by kind.
    async fn retry<T, F, Fut>(&self, what: &str, call: F) -> Result<T, PipelineError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, WarehouseError>>,
    {
        let mut shutdown = self.shutdown.clone();
        let transient = self
            .metrics
            .warehouse_errors
            .get_or_create(&KindLabel { kind: "transient" })
            .clone();
        let result = retry(
            what,
            &mut shutdown,
            call,
            WarehouseError::is_transient,
            |_| {
                transient.inc();
            },
        )
        .await;
        match result {
            Err(PipelineError::Warehouse(err)) => {
                self.metrics
                    .warehouse_errors
                    .get_or_create(&KindLabel { kind: "permanent" })
                    .inc();
                tracing::error!(error = %err, "{what}: warehouse error that retrying cannot fix");
                Err(PipelineError::Warehouse(err))
            }
            other => other,
        }
    }
}

/// A checkpoint being written in the background, with what to do once it is durable.
struct InFlight<P> {
    task: tokio::task::JoinHandle<Result<(), PipelineError>>,
    position: P,
    dead_letters: Vec<DeadLetter>,
}

/// The batches matched since the last checkpoint: their facts, the position past the
/// last of them, and their dead letters, written and committed together.
struct Window<P> {
    facts: FactSet,
    position: Option<P>,
    dead_letters: Vec<DeadLetter>,
    events: usize,
    opened: Option<Instant>,
}

impl<P> Default for Window<P> {
    fn default() -> Self {
        Window {
            facts: FactSet::default(),
            position: None,
            dead_letters: Vec::new(),
            events: 0,
            opened: None,
        }
    }
}

/// The loop's moving parts: the source, the pipeline, the window being matched and the
/// checkpoint being written.
struct Loop<S: EventSource, W> {
    source: S,
    pipeline: Pipeline<W>,
    window: Window<S::Position>,
    inflight: Option<InFlight<S::Position>>,
    shutdown: watch::Receiver<bool>,
}

impl<S: EventSource, W: Warehouse> Loop<S, W> {
    /// Matches `batch` into the window.
    async fn add(&mut self, batch: Batch<S::Position>) -> Result<(), PipelineError> {
        let (facts, dead) = self.pipeline.match_batch(&batch.records).await?;
        let window = &mut self.window;
        window.facts.extend(facts);
        window
            .dead_letters
            .extend(dead.into_iter().map(|(i, reason, detail)| DeadLetter {
                record: batch.records[i].clone(),
                reason,
                detail,
            }));
        window.position = Some(match window.position.take() {
            Some(mut earlier) => {
                S::merge_position(&mut earlier, batch.position);
                earlier
            }
            None => batch.position,
        });
        window.events += batch.records.len();
        window.opened.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Waits for the checkpoint in flight (if any), then commits its position at the
    /// source.
    async fn finish_inflight(&mut self) -> Result<(), PipelineError> {
        let Some(batch) = self.inflight.take() else {
            return Ok(());
        };
        match batch.task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(err),
            Err(join) => return Err(PipelineError::Task(join.to_string())),
        }
        let mut backoff = Backoff::new("commit the log position");
        loop {
            match self
                .source
                .commit(&batch.position, &batch.dead_letters, &mut self.shutdown)
                .await
            {
                Ok(()) => return Ok(()),
                Err(err) => backoff.pause(&err, &mut self.shutdown).await?,
            }
        }
    }

    /// Closes the window (if it holds a batch): takes the state rows its batches changed,
    /// waits for the checkpoint before it, and starts writing this one in the background.
    async fn checkpoint(&mut self) -> Result<(), PipelineError> {
        let Some(position) = self.window.position.take() else {
            return Ok(());
        };
        let mut window = std::mem::take(&mut self.window);
        window.facts.state = self.pipeline.checkpoint();
        tracing::debug!(
            events = window.events,
            facts = window.facts.fact_count(),
            state_rows = window.facts.state.len(),
            "checkpoint"
        );
        // Objects of the window before may have just left the cache: nothing reads state
        // again until its rows are durable, which is here.
        self.finish_inflight().await?;
        let writer = self.pipeline.writer();
        let facts = Arc::new(window.facts);
        self.inflight = Some(InFlight {
            task: tokio::spawn(async move { writer.write(facts).await }),
            position,
            dead_letters: window.dead_letters,
        });
        Ok(())
    }

    /// Checkpoints the window and waits until everything matched is durable and
    /// committed: before a sweep or a stop.
    async fn settle(&mut self) -> Result<(), PipelineError> {
        self.checkpoint().await?;
        self.finish_inflight().await
    }

    /// After a rebalance: drops the window rather than writing it, lets the checkpoint in
    /// flight finish, moves the source back to its committed positions and reloads the
    /// state.
    ///
    /// The window may hold batches of partitions this member no longer owns, and their
    /// new owner may already have written a later stage of an orphan they touched: a
    /// pending row written now, stamped now, would replace that stage with an older one.
    /// Nothing matched since the last checkpoint is written after the rebalance is seen;
    /// the partitions kept are read again from their committed offsets, as after a crash.
    /// The checkpoint in flight was stamped before the rebalance began (the source reports
    /// it in the first read after it), so it is written and committed where the partitions
    /// are still owned.
    async fn reassigned(&mut self) -> Result<(), PipelineError> {
        let dropped = std::mem::take(&mut self.window);
        // The rows of the dropped batches go with the state they were matched on, which
        // is reloaded below.
        drop(self.pipeline.checkpoint());
        if dropped.events > 0 {
            tracing::info!(
                events = dropped.events,
                "partitions reassigned: the events matched since the last checkpoint are read \
                 again rather than written"
            );
        }
        self.finish_inflight().await?;
        let mut backoff = Backoff::new("move the log back to the committed positions");
        loop {
            match self.source.rewind().await {
                Ok(()) => break,
                Err(err) => backoff.pause(&err, &mut self.shutdown).await?,
            }
        }
        // Drop what was cached for records that moved; take what their previous owners
        // confirmed.
        self.pipeline.load_state().await
    }
}

/// Reads batches from `source`, matches them, writes their facts and state at checkpoints
/// and commits the source past a checkpoint's batches once it is durable, until `shutdown`
/// turns true (returns `Ok`) or a permanent warehouse error.
pub async fn run<S: EventSource, W: Warehouse>(
    source: S,
    mut pipeline: Pipeline<W>,
    options: LoopOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    pipeline.state_cache = options.state_cache_bytes;
    // A consumer-group member reads its state when its partitions are assigned, which
    // comes after the start (and must: what their previous owners confirmed last is only
    // final then). Reading it at the start as well read a whole state twice per start.
    let mut loaded = !source.assigned_later();
    if loaded {
        pipeline.load_state().await?;
    }
    tracing::info!("reconcile loop started");
    let mut last_sweep = Instant::now();
    let mut last_lag: Option<Instant> = None;
    let mut read_backoff = Backoff::new("read the event log");
    // The first batch after a start or a rebalance is a checkpoint of its own: what the
    // consumer does is durable and committed at once, whatever the backlog (and a member
    // that keeps being restarted still moves on).
    let mut first_since_load = true;
    let mut lp = Loop {
        source,
        pipeline,
        window: Window::default(),
        inflight: None,
        shutdown,
    };
    // Whether this consumer holds every partition (asked when its records are known: at
    // the start, or at each assignment), and whether it swept since it got them.
    let mut sole = loaded && lp.source.sole_reader().await;
    let mut swept_since_assigned = false;

    let result = loop {
        if *lp.shutdown.borrow() {
            break lp.settle().await;
        }
        let batch = match lp
            .source
            .next_batch(options.batch_events, options.batch_wait, &mut lp.shutdown)
            .await
        {
            Ok(batch) => {
                read_backoff.reset();
                batch
            }
            Err(err) => match read_backoff.pause(&err, &mut lp.shutdown).await {
                Ok(()) => continue,
                Err(stop) => break Err(stop),
            },
        };
        if lp.source.take_reassigned() {
            // The batch and the window are dropped, not written: read again from the
            // committed positions, with the state the previous owners confirmed.
            if let Err(err) = lp.reassigned().await {
                break Err(err);
            }
            first_since_load = true;
            loaded = true;
            sole = lp.source.sole_reader().await;
            swept_since_assigned = false;
            tracing::info!(holds_every_partition = sole, "partitions reassigned");
            continue;
        }
        if !loaded {
            if batch.records.is_empty() {
                // Nothing assigned yet: nothing to match, write or sweep.
                continue;
            }
            // Records before any assignment was reported (not expected): state first.
            if let Err(err) = lp.pipeline.load_state().await {
                break Err(err);
            }
            loaded = true;
        }
        if batch.records.is_empty() {
            if let Err(err) = lp.settle().await {
                break Err(err);
            }
        }
        let interval = if sole && swept_since_assigned {
            options.sole_sweep_interval.max(options.sweep_interval)
        } else {
            options.sweep_interval
        };
        let sweep_due = last_sweep.elapsed() >= interval;
        let filled = batch.records.len() >= options.batch_events;
        if !batch.records.is_empty() {
            if let Err(err) = lp.add(batch).await {
                break Err(err);
            }
            let opened = lp.window.opened.unwrap_or_else(Instant::now);
            // A batch that did not fill: the log is caught up, so what is matched should
            // be visible now rather than after more events.
            let due = !filled
                || std::mem::take(&mut first_since_load)
                || lp.window.events >= options.checkpoint_events
                || opened.elapsed() >= options.checkpoint_interval
                || sweep_due;
            if due {
                if let Err(err) = lp.checkpoint().await {
                    break Err(err);
                }
            }
        }
        if sweep_due {
            // Due even under steady traffic: orphans whose parents another consumer
            // reconciled wait on it. It reads and writes state, so nothing may be in flight.
            if let Err(err) = lp.settle().await {
                break Err(err);
            }
            if let Err(err) = lp.pipeline.sweep().await {
                break Err(err);
            }
            last_sweep = Instant::now();
            swept_since_assigned = true;
        }
        if last_lag.is_none_or(|at| at.elapsed() >= options.lag_interval) {
            if let Some(lag) = lp.source.lag().await {
                lp.pipeline.metrics().lag.set(lag);
            }
            last_lag = Some(Instant::now());
        }
    };
    lp.source.close().await;
    match result {
        Err(PipelineError::Stopped) => Ok(()),
        other => other,
    }
}
