//! The `[reconcile]` section: the bounds of the reconcile loop, how many events a batch
//! holds, how long it waits to fill, and how often orphans look for links written by
//! other consumers. Each is bounded so that a typo cannot stall the loop (a batch that
//! never fills, a sweep that never runs) or make one batch too large for the warehouse.

use std::time::Duration;

use serde::Deserialize;

use super::source::{Key, Numeric};
use super::{ConfigError, Env};

/// Default most events per batch.
pub const DEFAULT_BATCH_EVENTS: usize = 2_000;
/// Default longest wait for a batch to fill.
pub const DEFAULT_BATCH_WAIT_MS: u64 = 500;
/// Default most events between two checkpoints.
pub const DEFAULT_CHECKPOINT_EVENTS: usize = 10_000;
/// Default longest time between two checkpoints while the log is not caught up.
pub const DEFAULT_CHECKPOINT_MS: u64 = 2_000;
/// Default time between orphan sweeps.
pub const DEFAULT_SWEEP_SECS: u64 = 30;
/// Default wait before `serve` starts a failed reconcile loop again.
pub const DEFAULT_RETRY_SECS: u64 = 60;

/// Batch size: at least one event, at most what one warehouse insert comfortably takes.
pub(super) const BATCH_EVENTS: Numeric<usize> = Numeric {
    key: Key {
        env: "REVLINE_RECONCILE_BATCH_EVENTS",
        file: "reconcile.batch_events",
    },
    min: 1,
    max: 100_000,
    unit: "events",
    why: "",
};
/// Batch wait: facts should follow events within a minute.
pub(super) const BATCH_WAIT: Numeric<u64> = Numeric {
    key: Key {
        env: "REVLINE_RECONCILE_BATCH_WAIT_MS",
        file: "reconcile.batch_wait_ms",
    },
    min: 1,
    max: 60_000,
    unit: "milliseconds",
    why: "",
};
/// Checkpoint size: the facts of this many events are held in memory (twice, while the
/// one before is written) and replayed after a crash.
pub(super) const CHECKPOINT_EVENTS: Numeric<usize> = Numeric {
    key: Key {
        env: "REVLINE_RECONCILE_CHECKPOINT_EVENTS",
        file: "reconcile.checkpoint_events",
    },
    min: 1,
    max: 1_000_000,
    unit: "events",
    why: "",
};
/// Checkpoint interval: facts should follow events within a minute under load too.
pub(super) const CHECKPOINT: Numeric<u64> = Numeric {
    key: Key {
        env: "REVLINE_RECONCILE_CHECKPOINT_MS",
        file: "reconcile.checkpoint_ms",
    },
    min: 1,
    max: 60_000,
    unit: "milliseconds",
    why: "",
};
/// Sweep interval: 0 would spin, more than an hour leaves orphans unlinked too long.
pub(super) const SWEEP: Numeric<u64> = Numeric {
    key: Key {
        env: "REVLINE_RECONCILE_SWEEP_SECS",
        file: "reconcile.sweep_secs",
    },
    min: 1,
    max: 3_600,
    unit: "seconds",
    why: "",
};

/// How long `serve` waits before starting a reconcile loop that stopped on a permanent
/// error again (the webhook receiver keeps working meanwhile).
pub(super) const RETRY: Numeric<u64> = Numeric {
    key: Key {
        env: "REVLINE_RECONCILE_RETRY_SECS",
        file: "reconcile.retry_secs",
    },
    min: 1,
    max: 3_600,
    unit: "seconds",
    why: "",
};

/// State cache: unset keeps the whole state in memory; 0 keeps only what the current batch
/// uses (every batch reads its state back); more than 64 GiB is a typo.
pub(super) const STATE_CACHE: Numeric<usize> = Numeric {
    key: Key {
        env: "REVLINE_RECONCILE_STATE_CACHE_MB",
        file: "reconcile.state_cache_mb",
    },
    min: 0,
    max: 65_536,
    unit: "MiB",
    why: "",
};

/// The `[reconcile]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileReconcile {
    /// `reconcile.batch_events`: most events per batch.
    batch_events: Option<usize>,
    /// `reconcile.batch_wait_ms`: longest wait for a batch to fill.
    batch_wait_ms: Option<u64>,
    /// `reconcile.checkpoint_events`: most events between two checkpoints.
    checkpoint_events: Option<usize>,
    /// `reconcile.checkpoint_ms`: longest time between two checkpoints.
    checkpoint_ms: Option<u64>,
    /// `reconcile.sweep_secs`: time between orphan sweeps.
    sweep_secs: Option<u64>,
    /// `reconcile.retry_secs`: wait before a failed loop is started again.
    retry_secs: Option<u64>,
    /// `reconcile.state_cache_mb`: memory for the matcher state.
    state_cache_mb: Option<usize>,
}

/// Reconcile loop bounds.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// `REVLINE_RECONCILE_BATCH_EVENTS` / `reconcile.batch_events`: most events per batch,
    /// 1 to 100000.
    pub batch_events: usize,
    /// `REVLINE_RECONCILE_BATCH_WAIT_MS` / `reconcile.batch_wait_ms`: longest wait for a
    /// batch to fill, 1 ms to 60 s.
    pub batch_wait: Duration,
    /// `REVLINE_RECONCILE_CHECKPOINT_EVENTS` / `reconcile.checkpoint_events`: facts and
    /// state are written, and the log position committed, at a checkpoint after at most
    /// this many events (1 to 1000000), or sooner when the log is caught up.
    pub checkpoint_events: usize,
    /// `REVLINE_RECONCILE_CHECKPOINT_MS` / `reconcile.checkpoint_ms`: and at most this long
    /// after the first batch since the last checkpoint, 1 ms to 60 s.
    pub checkpoint_interval: Duration,
    /// `REVLINE_RECONCILE_SWEEP_SECS` / `reconcile.sweep_secs`: time between orphan
    /// sweeps, 1 s to 1 h.
    pub sweep_interval: Duration,
    /// `REVLINE_RECONCILE_RETRY_SECS` / `reconcile.retry_secs`: wait before `serve` starts
    /// a reconcile loop that failed permanently again, 1 s to 1 h.
    pub retry_interval: Duration,
    /// `REVLINE_RECONCILE_STATE_CACHE_MB` / `reconcile.state_cache_mb`: memory the matcher
    /// state may keep, in bytes (0 to 64 GiB; the rest stays in the warehouse and is read
    /// when a batch needs it); `None` (unset) keeps all of it, loaded at start.
    pub state_cache_bytes: Option<usize>,
}

/// Validates the `[reconcile]` table overlaid by `env`.
pub(super) fn load(file: FileReconcile, env: &Env) -> Result<ReconcileConfig, ConfigError> {
    Ok(ReconcileConfig {
        batch_events: BATCH_EVENTS.load_or(env, file.batch_events, DEFAULT_BATCH_EVENTS)?,
        batch_wait: Duration::from_millis(BATCH_WAIT.load_or(
            env,
            file.batch_wait_ms,
            DEFAULT_BATCH_WAIT_MS,
        )?),
        checkpoint_events: CHECKPOINT_EVENTS.load_or(
            env,
            file.checkpoint_events,
            DEFAULT_CHECKPOINT_EVENTS,
        )?,
        checkpoint_interval: Duration::from_millis(CHECKPOINT.load_or(
            env,
            file.checkpoint_ms,
            DEFAULT_CHECKPOINT_MS,
        )?),
        sweep_interval: Duration::from_secs(SWEEP.load_or(
            env,
            file.sweep_secs,
            DEFAULT_SWEEP_SECS,
        )?),
        retry_interval: Duration::from_secs(RETRY.load_or(
            env,
            file.retry_secs,
            DEFAULT_RETRY_SECS,
        )?),
        state_cache_bytes: STATE_CACHE
            .load(env, file.state_cache_mb)?
            .map(|mb| mb.value << 20),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{assert_bounds, load, load_toml};

    #[test]
    fn batch_events_0_in_the_file_names_reconcile_batch_events() {
        let e = load_toml("[reconcile]\nbatch_events = 0\n", &[]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid configuration: reconcile.batch_events: "),
            "{e}"
        );
        let e = load(&[("REVLINE_RECONCILE_BATCH_EVENTS", "0")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_RECONCILE_BATCH_EVENTS");
    }

    #[test]
    fn every_reconcile_bound_names_the_source_of_a_bad_value() {
        assert_bounds(&BATCH_EVENTS, &[]);
        assert_bounds(&BATCH_WAIT, &[]);
        assert_bounds(&SWEEP, &[]);
        assert_bounds(&STATE_CACHE, &[]);
        assert_bounds(&CHECKPOINT_EVENTS, &[]);
        assert_bounds(&CHECKPOINT, &[]);
    }

    #[test]
    fn checkpoints_default_to_ten_thousand_events_or_two_seconds() {
        let c = load(&[]).unwrap();
        assert_eq!(c.reconcile.checkpoint_events, 10_000);
        assert_eq!(c.reconcile.checkpoint_interval, Duration::from_secs(2));
        let c = load_toml(
            "[reconcile]\ncheckpoint_events = 500\ncheckpoint_ms = 250\n",
            &[("REVLINE_RECONCILE_CHECKPOINT_EVENTS", "40000")],
        )
        .unwrap();
        assert_eq!(c.reconcile.checkpoint_events, 40_000);
        assert_eq!(c.reconcile.checkpoint_interval, Duration::from_millis(250));
        let e = load_toml("[reconcile]\ncheckpoint_events = 0\n", &[]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid configuration: reconcile.checkpoint_events: "),
            "{e}"
        );
    }

    #[test]
    fn the_state_cache_is_given_in_mib_and_may_be_zero() {
        let c = load(&[]).unwrap();
        assert_eq!(c.reconcile.state_cache_bytes, None);
        let c = load_toml("[reconcile]\nstate_cache_mb = 0\n", &[]).unwrap();
        assert_eq!(c.reconcile.state_cache_bytes, Some(0));
        let c = load(&[("REVLINE_RECONCILE_STATE_CACHE_MB", "64")]).unwrap();
        assert_eq!(c.reconcile.state_cache_bytes, Some(64 << 20));
        let e = load(&[("REVLINE_RECONCILE_STATE_CACHE_MB", "lots")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_RECONCILE_STATE_CACHE_MB");
    }

    #[test]
    fn the_environment_wins_over_the_file_for_each_bound() {
        let c = load_toml(
            "[reconcile]\nbatch_events = 10\nbatch_wait_ms = 10\nsweep_secs = 10\n",
            &[("REVLINE_RECONCILE_SWEEP_SECS", "20")],
        )
        .unwrap();
        assert_eq!(c.reconcile.batch_events, 10);
        assert_eq!(c.reconcile.batch_wait, Duration::from_millis(10));
        assert_eq!(c.reconcile.sweep_interval, Duration::from_secs(20));
    }

    #[test]
    fn reconcile_defaults_lie_within_their_bounds() {
        assert!((BATCH_EVENTS.min..=BATCH_EVENTS.max).contains(&DEFAULT_BATCH_EVENTS));
        assert!((BATCH_WAIT.min..=BATCH_WAIT.max).contains(&DEFAULT_BATCH_WAIT_MS));
        assert!((SWEEP.min..=SWEEP.max).contains(&DEFAULT_SWEEP_SECS));
    }
}
