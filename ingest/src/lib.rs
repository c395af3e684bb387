//! `ingest`: receives Stripe webhooks, verifies their signatures over the raw bytes, and
//! appends them durably to the event log before acknowledging.
//!
//! Layout: [`signature`] (verification, the only way to a [`signature::VerifiedWebhook`]),
//! [`log`] (the `EventLog` port with its Kafka and embedded adapters), [`routes`] (one
//! module per route), [`startup`] (the server), [`metrics`], [`settings`].

pub mod log;
pub mod metrics;
pub mod routes;
pub mod settings;
pub mod signature;
pub mod startup;

pub use log::{Appended, EventLog, LogError};
pub use settings::{Endpoint, IngestSettings, DEFAULT_ENDPOINT};
