//! `revline`: Stripe webhooks in, revenue facts out. A thin command line over the crates.

mod admin;
mod backends;
mod commands;
mod config;
mod cursor_file;
mod demo;
mod secret_file;
mod state_lock;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::serve::Mode;
use crate::config::{Config, Env};

/// jemalloc rather than the system allocator: the matcher allocates and frees many small
/// strings and JSON values per event, and glibc's allocator spent about 30 % of reconcile's
/// CPU on it. Reconcile used about half the CPU per event with jemalloc (BENCHMARKS.md,
/// *Scale*). Its options are compiled in from `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "revline",
    version,
    about = "Stripe webhooks in, revenue facts out"
)]
struct Cli {
    /// TOML configuration file; environment variables override it.
    #[arg(long, global = true, env = "REVLINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Receive webhooks into the event log (the default command).
    Serve,
    /// Only receive webhooks (distributed mode: many replicas producing to Kafka).
    Ingest,
    /// Only reconcile: consume Kafka into the warehouse (distributed mode).
    Reconcile,
    /// Create or upgrade the warehouse tables and the Kafka topics.
    Migrate(commands::migrate::MigrateArgs),
    /// Rebuild all facts from the raw events table (continues an interrupted replay).
    Replay(commands::replay::ReplayArgs),
    /// Print a report (mrr, revenue, journal, …: see `revline report --help`).
    Report(commands::report::ReportArgs),
    /// Post a generated, signed Stripe history to a running revline and print its MRR.
    Demo(commands::demo::DemoArgs),
    /// Close a month of the journal: what was exported for it never changes afterwards.
    Close(commands::close::CloseArgs),
    /// Fetch events revline missed from Stripe's API (30 days back at most) into the log.
    Backfill(commands::backfill::BackfillArgs),
    /// Exit 0 when the revline configured here answers `/readyz` (container health checks).
    Healthcheck(commands::healthcheck::HealthcheckArgs),
}

/// A mistake in the command line (an unknown report, a malformed parameter): exit status 2,
/// like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let env: Env = std::env::vars().collect();
    let config = match Config::load(cli.config.as_deref(), &env) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(key = %err.key, "{err}");
            eprintln!("revline: {err}");
            return ExitCode::from(2);
        }
    };
    // A report is one task reading one stream: on one thread the rows are handed over
    // without cross-thread wake-ups. The servers use every core.
    let mut builder = match cli.command {
        Some(Command::Report(_) | Command::Close(_) | Command::Healthcheck(_)) => {
            tokio::runtime::Builder::new_current_thread()
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("revline: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => commands::serve::run(config, Mode::Serve).await,
            Command::Ingest => commands::serve::run(config, Mode::Ingest).await,
            Command::Reconcile => commands::reconcile::run(config).await,
            Command::Migrate(args) => commands::migrate::run(config, args).await,
            Command::Replay(args) => commands::replay::run(config, args).await,
            Command::Report(args) => commands::report::run(config, args).await,
            Command::Demo(args) => commands::demo::run(config, args).await,
            Command::Close(args) => commands::close::run(config, args).await,
            Command::Backfill(args) => commands::backfill::run(config, args).await,
            Command::Healthcheck(args) => commands::healthcheck::run(config, args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<UsageError>().is_some() => {
            eprintln!("revline: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "revline stopped with an error");
            eprintln!("revline: {err:#}");
            ExitCode::FAILURE
        }
    }
}
