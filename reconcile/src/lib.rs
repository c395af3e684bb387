//! `reconcile`: consumes the event log, matches events to invoices and subscriptions, and
//! writes revenue facts to the warehouse.
//!
//! - [`matcher`]: pure functions, `(events, state) → (facts, new state)`;
//! - [`version`]: how rows are versioned so order and duplicates do not matter;
//! - [`consumer`]: the loop that feeds the matcher from an event source (the `eventlog`
//!   crate's read port) and commits the source's position only after the warehouse (the
//!   `warehouse` crate's port) confirmed the facts;
//! - [`enrich`]: optional fetches from Stripe's API for what webhooks do not carry;
//! - [`metrics`]: what it counts.

pub mod consumer;
pub mod enrich;
pub mod matcher;
pub mod metrics;
pub mod version;
