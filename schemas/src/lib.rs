//! Shared formats of revline: what a Stripe event envelope holds, how one is written to
//! the event log, and (for `reconcile`) the typed views of the objects inside events.
//!
//! Everything here is pure data and parsing: no I/O, so both `ingest` and `reconcile`
//! depend on it without pulling each other in.

pub mod envelope;
pub mod facts;
pub mod record;
pub mod stripe;
pub mod time;

pub use envelope::{Envelope, EnvelopeFlag, EventObjectKind};
pub use record::{LogRecord, RecordHeaders, FORMAT_VERSION};
