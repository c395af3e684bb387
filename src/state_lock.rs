//! One writer of matcher state per data directory. `revline serve` (which reconciles) and
//! `revline replay` both load the matcher's state, change it and write it back whole per
//! key; two of them at once on one warehouse could each overwrite what the other added
//! (a subscription snapshot, a link). So each holds an exclusive lock on
//! `<data dir>/reconcile.lock` while it runs, and the second one to start stops with an
//! error naming the first. The operating system releases the lock when the process
//! ends, however it ends (a SIGKILL leaves no stale lock).
//!
//! Consumers of a Kafka group on other machines are not covered by a file: `revline
//! replay` checks the consumer group for active members instead (`commands::replay`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{bail, Context};

/// Held while the process writes matcher state; dropping it releases the lock.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// Takes the lock of `data_dir` for `holder` (`"revline serve"`, `"revline replay"`), or
/// fails naming whoever holds it.
pub fn acquire(data_dir: &Path, holder: &str) -> anyhow::Result<StateLock> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join("reconcile.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut other = String::new();
            let _ = file.read_to_string(&mut other);
            let other = other.trim();
            bail!(
                "{} is running on {} ({}): {holder} and it would both write the matcher's \
                 state; stop it first",
                if other.is_empty() {
                    "another revline"
                } else {
                    other
                },
                data_dir.display(),
                path.display()
            );
        }
        Err(TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    // Who holds it, for the error of the next one (best effort: the lock is what counts).
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{holder} (pid {})", std::process::id());
    let _ = file.flush();
    Ok(StateLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_holder_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("revline-lock-{}", std::process::id()));
        let first = acquire(&dir, "revline serve").unwrap();
        let err = acquire(&dir, "revline replay").unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "revline serve (pid {}) is running on {}",
                std::process::id(),
                dir.display()
            )),
            "{err}"
        );
        assert!(
            err.contains("revline replay and it would both write"),
            "{err}"
        );
        drop(first);
        let again = acquire(&dir, "revline replay").unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
