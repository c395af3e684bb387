//! `revline replay`: rebuilds every fact from the raw `stripe_events` table with this
//! build's reconciler (after an upgrade, or to repair). Facts are overwritten by id.
//!
//! Resumable: after each page is written, the position (`received_at_ms`, id) is saved in
//! `<data dir>/replay.json`; a replay that was killed continues after the last saved page
//! when run again (`--restart` starts over), and the file is removed at the end. The
//! matcher's state of the pages already done is in the warehouse, so nothing is lost by
//! continuing rather than starting over.
//!
//! One writer of matcher state at a time: the replay holds the data directory's state lock
//! (`revline serve` holds it too, see `state_lock`), and with Kafka it refuses to start
//! while the consumer group has active members (stop `revline reconcile` first). The
//! consumers resume afterwards from their committed offsets.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures_util::TryStreamExt;
use prometheus_client::registry::Registry;
use reconcile::consumer::{Pipeline, PipelineError};
use reconcile::matcher::record_from_event_row;
use reconcile::metrics::ReconcileMetrics;
use schemas::facts::EventRow;
use tokio::sync::watch;
use warehouse::embedded::Embedded;
use warehouse::Warehouse;

use std::path::Path;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::backends;
use crate::config::Config;
use crate::cursor_file;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Start from the first event even if an earlier replay was interrupted.
    #[arg(long)]
    restart: bool,
    /// Events read, reconciled and written per page (memory is bounded by it); the
    /// position is saved after each page.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    page_events: u32,
}

/// Where an interrupted replay stands: saved after every written page.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    /// Events replayed so far.
    done: u64,
    /// The last replayed event's position: the next page starts after it.
    after: (i64, String),
}

pub async fn run(config: Config, args: ReplayArgs) -> anyhow::Result<()> {
    let _lock = crate::state_lock::acquire(&config.data_dir, "revline replay")?;
    if let Some(k) = &config.kafka {
        let members = eventlog::kafka::group_members(
            &backends::kafka_connection(k),
            &k.group_id,
            std::time::Duration::from_secs(10),
        );
        match members {
            Ok(0) => {}
            Ok(n) => bail!(
                "the consumer group {} has {n} active member(s): stop `revline reconcile` \
                 before a replay (both would write the matcher's state); they resume \
                 from their committed offsets afterwards",
                k.group_id
            ),
            Err(err) => tracing::warn!(
                group = %k.group_id,
                error = %err,
                "cannot tell whether reconcile consumers are running; make sure none is during the replay"
            ),
        }
    }
    let cursor_path = config.data_dir.join("replay.json");
    if args.restart {
        cursor_file::remove(&cursor_path)?;
    }
    match &config.clickhouse {
        Some(ch) => {
            replay(
                backends::clickhouse(ch)?,
                &cursor_path,
                args.page_events as usize,
                config.reconcile.state_cache_bytes,
            )
            .await
        }
        None => {
            replay(
                Embedded::open(&config.data_dir)?,
                &cursor_path,
                args.page_events as usize,
                config.reconcile.state_cache_bytes,
            )
            .await
        }
    }
}

async fn replay<W: Warehouse>(
    warehouse: W,
    cursor_path: &Path,
    page_events: usize,
    state_cache_bytes: Option<usize>,
) -> anyhow::Result<()> {
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
    )
    .with_state_cache(state_cache_bytes);
    // From the persisted state, not from nothing (each page reads what it needs): the
    // state only ever grows, so what the
    // replay writes back per key is a superset of what was there (an interrupted replay
    // never leaves a key knowing less than before), and a resumed replay knows what the
    // pages before its cursor taught (a charge waiting for its invoice, say).
    pipeline.load_state().await?;
    let started = Instant::now();
    let (mut done, after) =
        match cursor_file::read::<Cursor>(cursor_path, "run `revline replay --restart`")? {
            Some(cursor) => {
                eprintln!(
                    "replay: continuing after {} events (an earlier replay stopped there; \
                 `--restart` starts over)",
                    cursor.done
                );
                (cursor.done, Some(cursor.after))
            }
            None => (0, None),
        };
    let resumed_at = done;
    let mut progress = Progress::new(total);
    // One read of the raw events in receipt order, cut into pages by a task of its own:
    // the next page is read while this one is matched. The channel holds one page, so
    // memory stays a few pages whatever the history.
    let (pages_tx, mut pages) = tokio::sync::mpsc::channel(1);
    let reader = tokio::spawn(read_pages(warehouse.clone(), after, page_events, pages_tx));
    // The page matched last is written while the next one is matched (as the Kafka path
    // overlaps its batches); the cursor passes a page only once its write is done.
    let mut inflight: Option<(tokio::task::JoinHandle<_>, Cursor)> = None;
    while let Some(page) = pages.recv().await {
        let rows: Vec<EventRow> = page.context("cannot read raw events")?;
        let Some(last) = rows.last() else { break };
        let position = (last.received_at_ms, last.id.clone());
        let records: Vec<_> = rows.iter().map(record_from_event_row).collect();
        let prepared = pipeline.prepare(&records).await?;
        if let Some((write, cursor)) = inflight.take() {
            finish_page(write, &cursor, cursor_path, &mut progress).await?;
        }
        done += records.len() as u64;
        let writer = pipeline.writer();
        let write = tokio::spawn(async move { writer.write(prepared.facts).await });
        let cursor = Cursor {
            done,
            after: position,
        };
        inflight = Some((write, cursor));
    }
    if let Some((write, cursor)) = inflight.take() {
        finish_page(write, &cursor, cursor_path, &mut progress).await?;
    }
    reader.await.context("the raw events reader stopped")?;
    progress.finish(done);
    cursor_file::remove(cursor_path)?;
    let done = done - resumed_at;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "replayed {done} events in {secs:.1} s ({:.0} events/s)",
        done as f64 / secs.max(0.001)
    );
    Ok(())
}

/// Reads the raw events after `after` and sends them in pages of `page_events`, then
/// ends; an error is sent as the last page. Stops when the receiver is gone.
async fn read_pages<W: Warehouse>(
    warehouse: Arc<W>,
    after: Option<(i64, String)>,
    page_events: usize,
    pages: tokio::sync::mpsc::Sender<Result<Vec<EventRow>, warehouse::WarehouseError>>,
) {
    let mut rows = warehouse.raw_events(after);
    let mut page = Vec::with_capacity(page_events);
    loop {
        match rows.try_next().await {
            Ok(Some(row)) => {
                page.push(row);
                if page.len() < page_events {
                    continue;
                }
            }
            Ok(None) if page.is_empty() => return,
            Ok(None) => {
                let _ = pages.send(Ok(page)).await;
                return;
            }
            Err(err) => {
                let _ = pages.send(Err(err)).await;
                return;
            }
        }
        let full = std::mem::replace(&mut page, Vec::with_capacity(page_events));
        if pages.send(Ok(full)).await.is_err() {
            return;
        }
    }
}

/// Waits for a page's write, then saves the position after it.
async fn finish_page(
    write: tokio::task::JoinHandle<Result<(), PipelineError>>,
    cursor: &Cursor,
    cursor_path: &Path,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    write.await.context("the page writer stopped")??;
    cursor_file::write(cursor_path, cursor)?;
    progress.show(cursor.done);
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
