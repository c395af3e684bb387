//! HTTP routes of the receiver, one module each.

pub mod health;
pub mod stripe_webhook;
