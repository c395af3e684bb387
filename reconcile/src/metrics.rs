//! What `reconcile` counts (exported by the binary at `GET /metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `reconciled`, `ignored`, `dead_lettered`, `backfill_requested`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone)]
pub struct ReconcileMetrics {
    pub events: Family<OutcomeLabel, Counter>,
    pub dead_letters: Family<ReasonLabel, Counter>,
    pub facts_written: Counter,
    pub batch_events: Histogram,
    pub batch_write_seconds: Histogram,
    pub warehouse_errors: Family<KindLabel, Counter>,
    /// Events in the log not yet reconciled.
    pub lag: Gauge,
    pub state_entries: Gauge,
    /// Bytes the matcher state holds in memory, roughly.
    pub state_bytes: Gauge,
    /// State rows read by batches whose objects were not in memory.
    pub state_rows_loaded: Counter,
    /// State objects dropped from memory (persisted; read again when needed).
    pub state_evicted: Counter,
    pub pending_orphans: Gauge,
    /// Sweeps run (orphans looking for parents other consumers learned).
    pub sweeps: Counter,
    /// Stripe API fetches by outcome (`fetched`, `skipped`, `failed`).
    pub enrichment: Family<OutcomeLabel, Counter>,
    /// Same-second ties nothing in the payloads decides.
    pub same_second_ties: Counter,
    /// 1 while the reconcile loop runs, 0 while it is stopped by a permanent error.
    pub status: Gauge,
}

impl ReconcileMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = ReconcileMetrics {
            events: Family::default(),
            dead_letters: Family::default(),
            facts_written: Counter::default(),
            batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            batch_write_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            warehouse_errors: Family::default(),
            lag: Gauge::default(),
            state_entries: Gauge::default(),
            state_bytes: Gauge::default(),
            state_rows_loaded: Counter::default(),
            state_evicted: Counter::default(),
            pending_orphans: Gauge::default(),
            sweeps: Counter::default(),
            enrichment: Family::default(),
            same_second_ties: Counter::default(),
            status: Gauge::default(),
        };
        registry.register(
            "revline_reconcile_status",
            "1 while the reconcile loop runs, 0 while a permanent error stopped it (serve keeps receiving webhooks and starts it again every REVLINE_RECONCILE_RETRY_SECS)",
            m.status.clone(),
        );
        registry.register(
            "revline_reconcile_events",
            "Events reconciled, by outcome",
            m.events.clone(),
        );
        registry.register(
            "revline_reconcile_dead_letters",
            "Events dead-lettered, by reason",
            m.dead_letters.clone(),
        );
        registry.register(
            "revline_reconcile_facts_written",
            "Fact rows written to the warehouse",
            m.facts_written.clone(),
        );
        registry.register(
            "revline_reconcile_batch_events",
            "Events per reconciled batch",
            m.batch_events.clone(),
        );
        registry.register(
            "revline_reconcile_batch_write_seconds",
            "Time to write one batch's facts to the warehouse, retries included",
            m.batch_write_seconds.clone(),
        );
        registry.register(
            "revline_reconcile_warehouse_errors",
            "Failed warehouse writes, by kind (transient ones are retried)",
            m.warehouse_errors.clone(),
        );
        registry.register(
            "revline_reconcile_lag_events",
            "Events in the log not reconciled yet",
            m.lag.clone(),
        );
        registry.register(
            "revline_reconcile_state_entries",
            "Entries in the matcher state",
            m.state_entries.clone(),
        );
        registry.register(
            "revline_reconcile_state_bytes",
            "Bytes the matcher state holds in memory, roughly (bounded by REVLINE_RECONCILE_STATE_CACHE_MB)",
            m.state_bytes.clone(),
        );
        registry.register(
            "revline_reconcile_state_rows_loaded",
            "State rows read from the warehouse for objects not in memory",
            m.state_rows_loaded.clone(),
        );
        registry.register(
            "revline_reconcile_state_evicted",
            "State objects dropped from memory (they stay persisted and are read again when needed)",
            m.state_evicted.clone(),
        );
        registry.register(
            "revline_reconcile_pending_orphans",
            "Facts waiting for their parent object",
            m.pending_orphans.clone(),
        );
        registry.register(
            "revline_reconcile_sweeps",
            "Sweeps run: orphans looking for parents that other consumers learned",
            m.sweeps.clone(),
        );
        registry.register(
            "revline_enrich_fetches",
            "Objects and lists fetched from Stripe's API (balance transactions, payout items, invoice lines), by outcome",
            m.enrichment.clone(),
        );
        registry.register(
            "revline_reconcile_same_second_ties",
            "Same-second snapshots of one object that nothing in the payloads orders (see the same_second_ties table)",
            m.same_second_ties.clone(),
        );
        m
    }
}
