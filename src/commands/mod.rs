//! One module per subcommand.

pub mod backfill;
pub mod close;
pub mod demo;
pub mod healthcheck;
pub mod migrate;
pub mod reconcile;
pub mod replay;
pub mod report;
pub mod serve;
