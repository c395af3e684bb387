//! `revline replay`: rebuilds every fact from the raw `stripe_events` table with this
//! build's reconciler (after an upgrade, or to repair). Facts are overwritten by id, so the
//! running consumer can keep going meanwhile.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use prometheus_client::registry::Registry;
use reconcile::consumer::Pipeline;
use reconcile::matcher::record_from_event_row;
use reconcile::metrics::ReconcileMetrics;
use tokio::sync::watch;
use warehouse::embedded::Embedded;
use warehouse::Warehouse;

use crate::backends;
use crate::config::Config;

const PAGE: usize = 5_000;

pub async fn run(config: Config) -> anyhow::Result<()> {
    match &config.clickhouse {
        Some(ch) => replay(backends::clickhouse(ch)?).await,
        None => replay(Embedded::open(&config.data_dir)?).await,
    }
}

async fn replay<W: Warehouse>(warehouse: W) -> anyhow::Result<()> {
    let (_stop_tx, stop) = watch::channel(false);
    let mut stop_rx = stop.clone();
    backends::migrate_when_up(&warehouse, &mut stop_rx).await?;
    let total = warehouse
        .count("stripe_events")
        .await
        .context("cannot count raw events")?;
    let warehouse = Arc::new(warehouse);
    let mut pipeline = Pipeline::new(
        warehouse.clone(),
        ReconcileMetrics::register(&mut Registry::default()),
        stop,
    );
    let started = Instant::now();
    let mut done = 0u64;
    let mut after = None;
    let mut progress = Progress::new(total);
    loop {
        let page = warehouse
            .raw_events_after(after.clone(), PAGE)
            .await
            .context("cannot read raw events")?;
        let Some(last) = page.last() else { break };
        after = Some((last.received_at_ms, last.id.clone()));
        let records: Vec<_> = page.iter().map(record_from_event_row).collect();
        pipeline.process(&records).await?;
        done += records.len() as u64;
        progress.show(done);
    }
    progress.finish(done);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "replayed {done} events in {secs:.1} s ({:.0} events/s)",
        done as f64 / secs.max(0.001)
    );
    Ok(())
}

/// `[######----------]  37% 7400/20000 events` on a terminal, a line per 10 % otherwise.
struct Progress {
    total: u64,
    terminal: bool,
    last_decile: u64,
}

impl Progress {
    fn new(total: u64) -> Self {
        Progress {
            total,
            terminal: std::io::stderr().is_terminal(),
            last_decile: 0,
        }
    }

    fn show(&mut self, done: u64) {
        let pct = (done * 100)
            .checked_div(self.total)
            .map_or(100, |p| p.min(100));
        if self.terminal {
            let filled = (pct / 5) as usize;
            eprint!(
                "\r[{}{}] {pct:>3}% {done}/{} events",
                "#".repeat(filled),
                "-".repeat(20 - filled),
                self.total
            );
            let _ = std::io::stderr().flush();
        } else if pct / 10 > self.last_decile {
            self.last_decile = pct / 10;
            eprintln!("replay: {pct}% ({done}/{} events)", self.total);
        }
    }

    fn finish(&mut self, done: u64) {
        self.show(done);
        if self.terminal {
            eprintln!();
        }
    }
}
