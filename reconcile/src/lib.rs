//! `reconcile`: consumes the event log, matches events to invoices and subscriptions, and
//! writes revenue facts to the warehouse.
//!
//! - [`matcher`]: pure functions, `(events, state) → (facts, new state)`;
//! - [`version`]: how rows are versioned so order and duplicates do not matter;
//! - [`warehouse`]: the `Warehouse` port, with ClickHouse and embedded (SQLite) adapters;
//! - [`consumer`]: the loops that feed the matcher from Kafka or the embedded log and store
//!   their position only after the warehouse confirmed the facts.

pub mod consumer;
pub mod enrich;
pub mod matcher;
pub mod metrics;
pub mod testkit;
pub mod version;
pub mod warehouse;
