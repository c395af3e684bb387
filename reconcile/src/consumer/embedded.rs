//! The embedded loop: reads the embedded event log in order from a stored cursor, runs
//! batches through the pipeline, and moves the cursor after each confirmed write. Runs
//! inside `revline serve`.

use std::sync::Arc;
use std::time::Instant;

use ingest::log::embedded::LogReader;
use tokio::sync::watch;

use super::{LoopOptions, Pipeline, PipelineError};
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

/// Runs until `shutdown` turns true (returns `Ok`) or a permanent error.
pub async fn run<W: Warehouse>(
    reader: Arc<LogReader>,
    mut pipeline: Pipeline<W>,
    options: LoopOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    pipeline.load_state().await?;
    let r = reader.clone();
    let mut cursor = blocking(move || r.cursor(CURSOR)).await?;
    tracing::info!(cursor, "embedded reconcile loop started");
    let mut last_sweep = Instant::now();
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let r = reader.clone();
        let limit = options.batch_events;
        let batch = blocking(move || r.read_after(cursor, limit)).await?;
        if batch.is_empty() {
            let r = reader.clone();
            let head = blocking(move || r.head()).await?;
            pipeline.metrics.lag.set(head.saturating_sub(cursor));
            if last_sweep.elapsed() >= options.sweep_interval {
                pipeline.sweep().await?;
                last_sweep = Instant::now();
            }
            tokio::select! {
                _ = tokio::time::sleep(options.batch_wait.min(std::time::Duration::from_millis(200))) => {}
                _ = crate::consumer::stopped(&mut shutdown) => return Ok(()),
            }
            continue;
        }
        let last = batch.last().map(|s| s.seq).unwrap_or(cursor);
        let records: Vec<_> = batch.into_iter().map(|s| s.record).collect();
        match pipeline.process(&records).await {
            Ok(_) => {}
            Err(PipelineError::Stopped) => return Ok(()),
            Err(err) => return Err(err),
        }
        let r = reader.clone();
        blocking(move || r.store_cursor(CURSOR, last)).await?;
        cursor = last;
    }
}
