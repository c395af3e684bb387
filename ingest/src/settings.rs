//! What the webhook receiver needs to know, already validated by the caller (the `revline`
//! binary loads and checks configuration; this crate only consumes it).

use std::time::Duration;

use crate::signature::WebhookSecret;

/// Name of the endpoint served at `/webhooks/stripe`.
pub const DEFAULT_ENDPOINT: &str = "default";

/// One webhook endpoint: `/webhooks/stripe` (named `default`) or `/webhooks/stripe/{name}`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    /// Any of these may sign (several while a secret is rolled).
    pub secrets: Vec<WebhookSecret>,
    /// When set, events whose `livemode` differs are stored but flagged for dead-letter.
    pub livemode: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub endpoints: Vec<Endpoint>,
    /// Allowed distance between the signature timestamp and now, both ways. Never 0.
    pub tolerance_secs: u64,
    /// Largest body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
    /// How long a request waits for the log to confirm a write before answering 503.
    pub append_deadline: Duration,
    /// How long a request's body may take to arrive before 408 (a trickling sender must
    /// not hold a connection for ever).
    pub body_timeout: Duration,
    /// `Retry-After` seconds sent with 503.
    pub retry_after_secs: u32,
}
