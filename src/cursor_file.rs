//! Where a long command stands, in a small JSON file of the data directory, so that a run
//! killed half-way continues rather than starting over (`revline replay`, `revline
//! backfill`). Written beside the file and renamed over it, so a kill mid-write leaves the
//! previous position, never half a file.

use std::path::Path;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The saved position, if any; `fix` says what to do about an unreadable file.
pub fn read<T: DeserializeOwned>(path: &Path, fix: &str) -> anyhow::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not a saved position: {fix}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Saves `value` at `path` atomically (creating the directory).
pub fn write<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(value)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Forgets the position (done, or starting over); no file is fine.
pub fn remove(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_bad_files_say_what_to_do() {
        let dir = std::env::temp_dir().join(format!("revline-cursor-{}", std::process::id()));
        let path = dir.join("sub/pos.json");
        assert_eq!(read::<(u64, String)>(&path, "x").unwrap(), None);
        write(&path, &(7u64, "evt_1".to_owned())).unwrap();
        assert_eq!(
            read::<(u64, String)>(&path, "x").unwrap(),
            Some((7, "evt_1".to_owned()))
        );
        std::fs::write(&path, "{").unwrap();
        let err = read::<(u64, String)>(&path, "run it with --restart").unwrap_err();
        assert!(err
            .to_string()
            .ends_with("is not a saved position: run it with --restart"));
        remove(&path).unwrap();
        remove(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
