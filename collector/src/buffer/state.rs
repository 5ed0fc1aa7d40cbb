//! The buffer's durable state: what is acknowledged, what was dropped, and the forwarder's next
//! batch number. Written whole to a temporary file, synced, renamed over the old one and the
//! directory synced, so a crash leaves either the old state or the new one, never a mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::CollectorError;

/// Name of the state file.
pub(crate) const STATE_FILE: &str = "state.json";
/// Name of the file a state is written to before it replaces the old one.
pub(crate) const STATE_TEMP_FILE: &str = "state.json.tmp";
const VERSION: u32 = 1;

/// What survives a restart besides the segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    /// Every record below this offset is acknowledged or dropped.
    pub first_unacked: u64,
    /// The forwarder's next batch number.
    pub next_sequence: u64,
    /// Records dropped since the buffer was created (`drop_oldest`).
    pub dropped_total: u64,
    /// The newest offset of batch `next_sequence` once it has been sent: after a restart the
    /// forwarder sends that batch again with the same records, not more.
    pub in_flight_last: Option<u64>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            first_unacked: 0,
            next_sequence: 1,
            dropped_total: 0,
            in_flight_last: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    first_unacked: u64,
    next_sequence: u64,
    dropped_total: u64,
    in_flight_last: Option<u64>,
    /// xxh3 of the fields above, comma-separated: a damaged digit is not mistaken for a real
    /// value.
    checksum: u64,
}

fn checksum(state: &State) -> u64 {
    xxh3_64(
        format!(
            "{VERSION},{},{},{},{:?}",
            state.first_unacked, state.next_sequence, state.dropped_total, state.in_flight_last
        )
        .as_bytes(),
    )
}

/// An I/O error on a buffer file.
pub(crate) fn io_error(
    action: &'static str,
    path: &Path,
    source: std::io::Error,
) -> CollectorError {
    CollectorError::BufferIo {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Makes a rename or a new or deleted file in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CollectorError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| io_error("sync directory", dir, error))
}

/// Reads the state of the buffer in `dir`: the default when there is none yet.
pub(crate) fn load(dir: &Path) -> Result<Option<State>, CollectorError> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("read", &path, error)),
    };
    let corrupt = |reason: String| CollectorError::BufferCorrupt {
        path: path.clone(),
        reason,
    };
    let file: StateFile =
        serde_json::from_slice(&text).map_err(|error| corrupt(error.to_string()))?;
    if file.version != VERSION {
        return Err(corrupt(format!(
            "state version {} is not the supported {VERSION}",
            file.version
        )));
    }
    let state = State {
        first_unacked: file.first_unacked,
        next_sequence: file.next_sequence,
        dropped_total: file.dropped_total,
        in_flight_last: file.in_flight_last,
    };
    if checksum(&state) != file.checksum {
        return Err(corrupt("checksum does not match the values".into()));
    }
    Ok(Some(state))
}

/// Replaces the state atomically and durably.
pub(crate) fn store(dir: &Path, state: &State) -> Result<(), CollectorError> {
    let temp: PathBuf = dir.join(STATE_TEMP_FILE);
    let file = StateFile {
        version: VERSION,
        first_unacked: state.first_unacked,
        next_sequence: state.next_sequence,
        dropped_total: state.dropped_total,
        in_flight_last: state.in_flight_last,
        checksum: checksum(state),
    };
    let text = serde_json::to_vec(&file).map_err(|error| CollectorError::BufferCorrupt {
        path: temp.clone(),
        reason: error.to_string(),
    })?;
    let mut handle = File::create(&temp).map_err(|error| io_error("create", &temp, error))?;
    handle
        .write_all(&text)
        .and_then(|()| handle.sync_all())
        .map_err(|error| io_error("write", &temp, error))?;
    let path = dir.join(STATE_FILE);
    fs::rename(&temp, &path).map_err(|error| io_error("rename", &temp, error))?;
    sync_dir(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let state = State {
            first_unacked: 17,
            next_sequence: 5,
            dropped_total: 3,
            in_flight_last: Some(20),
        };
        store(dir.path(), &state).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(state));
        assert!(!dir.path().join(STATE_TEMP_FILE).exists());

        let path = dir.path().join(STATE_FILE);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("17", "18")).unwrap();
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("checksum"), "{error}");
        fs::write(&path, "{").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
