//! The embedded loop: reads the embedded event log in order from a stored cursor, runs
//! batches through the pipeline, and moves the cursor after each confirmed write. Runs
//! inside `revline serve`.

use std::sync::Arc;
use std::time::Instant;

use ingest::log::embedded::LogReader;
use tokio::sync::watch;

use super::{InFlight, LoopOptions, Pipeline, PipelineError};
use crate::warehouse::Warehouse;

/// Cursor name of the reconciler in the embedded log.
pub const CURSOR: &str = "reconcile";

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, PipelineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PipelineError::Log(e.to_string()))?
        .map_err(|e| PipelineError::Log(e.to_string()))
}

/// Runs until `shutdown` turns true (returns `Ok`) or a permanent error. Batch N+1 is
/// read and matched while batch N is written; the cursor moves to N only after N's write.
pub async fn run<W: Warehouse>(
    reader: Arc<LogReader>,
    mut pipeline: Pipeline<W>,
    options: LoopOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    pipeline.load_state().await?;
    let r = reader.clone();
    let mut read_to = blocking(move || r.cursor(CURSOR)).await?;
    tracing::info!(cursor = read_to, "embedded reconcile loop started");
    let mut last_sweep = Instant::now();
    let mut inflight: Option<InFlight<i64>> = None;

    // Waits for the batch in flight and moves the cursor past it.
    async fn settle(
        reader: &Arc<LogReader>,
        inflight: &mut Option<InFlight<i64>>,
    ) -> Result<(), PipelineError> {
        if let Some(batch) = inflight.take() {
            let seq = batch.finish().await?;
            let r = reader.clone();
            blocking(move || r.store_cursor(CURSOR, seq)).await?;
        }
        Ok(())
    }

    let result = loop {
        if *shutdown.borrow() {
            break settle(&reader, &mut inflight).await;
        }
        let r = reader.clone();
        let limit = options.batch_events;
        let from = read_to;
        let batch = match blocking(move || r.read_after(from, limit)).await {
            Ok(batch) => batch,
            Err(err) => break Err(err),
        };
        if batch.is_empty() {
            if let Err(err) = settle(&reader, &mut inflight).await {
                break Err(err);
            }
            let r = reader.clone();
            if let Ok(head) = blocking(move || r.head()).await {
                pipeline.metrics().lag.set(head.saturating_sub(read_to));
            }
            if last_sweep.elapsed() >= options.sweep_interval {
                if let Err(err) = pipeline.sweep().await {
                    break Err(err);
                }
                last_sweep = Instant::now();
            }
            tokio::select! {
                _ = tokio::time::sleep(options.batch_wait.min(std::time::Duration::from_millis(200))) => {}
                _ = crate::consumer::stopped(&mut shutdown) => {}
            }
            continue;
        }
        let last = batch.last().map(|s| s.seq).unwrap_or(read_to);
        let records: Vec<_> = batch.into_iter().map(|s| s.record).collect();
        let prepared = pipeline.prepare(&records);
        if let Err(err) = settle(&reader, &mut inflight).await {
            break Err(err);
        }
        inflight = Some(InFlight::spawn(pipeline.writer(), prepared.facts, last));
        read_to = last;
        if last_sweep.elapsed() >= options.sweep_interval {
            // Due even under steady traffic; it reads and writes state, so settle first.
            if let Err(err) = settle(&reader, &mut inflight).await {
                break Err(err);
            }
            if let Err(err) = pipeline.sweep().await {
                break Err(err);
            }
            last_sweep = Instant::now();
        }
    };
    match result {
        Err(PipelineError::Stopped) => Ok(()),
        other => other,
    }
}
