//! Shared formats of revline: what a Stripe event envelope holds, how one is written to
//! the event log, the typed views of the objects inside events, and the fact rows the
//! warehouse stores.
//!
//! Everything here is data and parsing (plus, behind the `sqlite` feature, how the embedded
//! stores open their files), so the ports (`eventlog`, `warehouse`) and the stages
//! (`ingest`, `reconcile`) all depend on it without depending on each other.

pub mod currency;
pub mod envelope;
pub mod facts;
pub mod record;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod stripe;
pub mod time;

pub use envelope::{Envelope, EnvelopeFlag, EventObjectKind};
pub use facts::{FactSet, FactTable};
pub use record::{LogRecord, RecordHeaders, FORMAT_VERSION};
