//! What `ingest` counts, exported at `GET /metrics` in the Prometheus text format.
//! Labels are low-cardinality: outcome and reason codes, never ids, never secrets.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `accepted`, `duplicate`, `rejected`, `unknown_endpoint`, `too_large`, `unavailable`, `error`.
    pub outcome: &'static str,
    /// Why: a signature reason code, a dead-letter flag, a log error kind, or `ok`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// The ingest metrics; cheap to clone (every field is a shared handle).
#[derive(Clone)]
pub struct IngestMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duplicates: Counter,
    pub flagged: Family<ReasonLabel, Counter>,
    pub log_write_seconds: Histogram,
    pub log_errors: Family<KindLabel, Counter>,
}

impl IngestMetrics {
    /// Creates the metrics and registers them under the `revline_` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = IngestMetrics {
            requests: Family::default(),
            duplicates: Counter::default(),
            flagged: Family::default(),
            // 0.25 ms … 4 s
            log_write_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
            log_errors: Family::default(),
        };
        registry.register(
            "revline_webhook_requests",
            "Webhook requests by outcome and reason",
            metrics.requests.clone(),
        );
        registry.register(
            "revline_webhook_duplicates",
            "Webhook events already in the log, acknowledged without a second write",
            metrics.duplicates.clone(),
        );
        registry.register(
            "revline_webhook_flagged",
            "Authentic events stored with a dead-letter flag, by reason",
            metrics.flagged.clone(),
        );
        registry.register(
            "revline_log_write_seconds",
            "Time from append to durable acknowledgement by the event log",
            metrics.log_write_seconds.clone(),
        );
        registry.register(
            "revline_log_errors",
            "Event log appends that did not become durable, by kind",
            metrics.log_errors.clone(),
        );
        metrics
    }

    pub fn request(&self, outcome: &'static str, reason: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { outcome, reason })
            .inc();
    }
}
