//! One way to wait between attempts, for every loop that retries: exponential backoff from
//! 100 ms doubling to 10 s, without a limit, interrupted by shutdown, each failure logged
//! with the delay before the next attempt. The delays come from the `backon` crate; this
//! module adds the logging and the shutdown, so a retry loop is a plain `loop` with one
//! `pause` in its error arm (the form that works when an attempt borrows `&mut` state).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::sync::watch;

use super::PipelineError;

/// First delay after a failure.
pub const MIN_DELAY: Duration = Duration::from_millis(100);
/// Longest delay between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

fn delays() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(MAX_DELAY)
        .without_max_times()
        .build()
}

/// The delays of one retry loop.
pub struct Backoff {
    what: String,
    delays: ExponentialBackoff,
}

impl Backoff {
    /// Backoff for the loop doing `what` (named in log lines).
    pub fn new(what: impl Into<String>) -> Backoff {
        Backoff {
            what: what.into(),
            delays: delays(),
        }
    }

    /// Starts again from the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.delays = delays();
    }

    /// Logs `err` and waits for the next delay; [`PipelineError::Stopped`] if shutdown comes
    /// first.
    pub async fn pause(
        &mut self,
        err: &impl Display,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), PipelineError> {
        let delay = self.delays.next().unwrap_or(MAX_DELAY);
        tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "{}: failed; retrying", self.what);
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = eventlog::stopped(shutdown) => Err(PipelineError::Stopped),
        }
    }
}

/// Calls `call` until it succeeds, fails with an error `is_transient` says is permanent, or
/// shutdown is requested; `on_transient` sees every transient failure (metrics).
pub async fn retry<T, E, F, Fut>(
    what: &str,
    shutdown: &mut watch::Receiver<bool>,
    mut call: F,
    is_transient: impl Fn(&E) -> bool,
    mut on_transient: impl FnMut(&E),
) -> Result<T, PipelineError>
where
    E: Display + Into<PipelineError>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(what);
    loop {
        if *shutdown.borrow() {
            return Err(PipelineError::Stopped);
        }
        match call().await {
            Ok(value) => return Ok(value),
            Err(err) if is_transient(&err) => {
                on_transient(&err);
                backoff.pause(&err, shutdown).await?;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use warehouse::WarehouseError;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_growing_delays_until_success() {
        let (_tx, mut shutdown) = watch::channel(false);
        let calls = AtomicU32::new(0);
        let mut seen = 0;
        let started = tokio::time::Instant::now();
        let value = retry(
            "test",
            &mut shutdown,
            || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                    Err(WarehouseError::Transient("down".into()))
                } else {
                    Ok(7)
                }
            },
            WarehouseError::is_transient,
            |_| seen += 1,
        )
        .await
        .unwrap();
        assert_eq!((value, seen, calls.load(Ordering::SeqCst)), (7, 3, 4));
        // 100 + 200 + 400 ms of (paused) waiting; tokio's timer rounds each sleep up to the
        // next millisecond.
        let waited = started.elapsed();
        assert!(
            (Duration::from_millis(700)..Duration::from_millis(710)).contains(&waited),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_stops_at_once_and_shutdown_interrupts_a_pause() {
        let (tx, mut shutdown) = watch::channel(false);
        let err = retry(
            "test",
            &mut shutdown,
            || async { Err::<(), _>(WarehouseError::Permanent("bad sql".into())) },
            WarehouseError::is_transient,
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            PipelineError::Warehouse(WarehouseError::Permanent(_))
        ));

        let mut backoff = Backoff::new("test");
        for _ in 0..10 {
            backoff.delays.next();
        }
        let waiting =
            tokio::spawn(async move { backoff.pause(&"still down", &mut shutdown).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(true).unwrap();
        assert!(matches!(
            waiting.await.unwrap(),
            Err(PipelineError::Stopped)
        ));
    }
}
