//! `ingest`: receives Stripe webhooks, verifies their signatures over the raw bytes, and
//! appends them durably to the event log before acknowledging.
//!
//! Layout: [`signature`] (verification, the only way to a [`signature::VerifiedWebhook`]),
//! [`routes`] (one module per route), [`startup`] (the server), [`tls`] (HTTPS, optional),
//! [`metrics`] (registered here, served on the binary's admin listener), [`settings`].
//! The event log it appends to is the `eventlog` crate's port ([`eventlog::EventLog`]).

pub mod metrics;
pub mod routes;
pub mod settings;
pub mod signature;
pub mod startup;
pub mod tls;

pub use settings::{Endpoint, IngestSettings, DEFAULT_ENDPOINT};
