//! Batches the server refused for good, kept on disk beside the buffer so they are neither
//! retried forever nor lost: `rejected/<sequence>-<first>-<last>.ndjson` holds the events as
//! JSON (ready for `citysoc import`), and the `.rejection.json` beside it says why. `first` and
//! `last` are the buffer offsets the refused batch spanned. Records `drop_oldest` took out of
//! the buffer after the batch was sent cannot be saved: the reason file counts them
//! (`dropped_before_saving`), and when none is left there is no events file, only the reason.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Serialize;

use crate::buffer::Offset;
use crate::protocol::Rejection;
use crate::CollectorError;

/// Folder of rejected batches inside the buffer directory.
pub const REJECTED_DIR: &str = "rejected";

#[derive(Serialize)]
struct RejectionRecord<'a> {
    sequence: u64,
    status: u16,
    reason: &'a str,
    message: &'a str,
    first_offset: u64,
    last_offset: u64,
    /// Events saved in the events file.
    events: usize,
    /// Events of the refused batch that `drop_oldest` took before they could be saved.
    dropped_before_saving: usize,
    rejected_at_ms: i64,
}

/// One refused batch, as the forwarder knows it.
pub(crate) struct RefusedBatch<'a> {
    pub(crate) sequence: u64,
    /// The buffer offsets the batch spanned.
    pub(crate) first: Offset,
    pub(crate) last: Offset,
    /// Events the server was sent.
    pub(crate) events: usize,
    pub(crate) status: u16,
    pub(crate) rejection: &'a Rejection,
}

/// Where a refused batch was saved.
#[derive(Debug)]
pub(crate) struct Saved {
    /// The events file; `None` when every event had been dropped before saving.
    pub(crate) events_path: Option<PathBuf>,
    pub(crate) reason_path: PathBuf,
    /// Events written to the events file.
    pub(crate) events: usize,
}

/// Writes one rejected batch durably: `records` are what is left of it in the buffer. Writing
/// the same batch again (a crash before its acknowledgement) replaces the files.
pub(crate) fn save(
    buffer_dir: &Path,
    batch: &RefusedBatch<'_>,
    records: &[(Offset, Vec<u8>)],
    now_ms: i64,
) -> Result<Saved, CollectorError> {
    let dir = buffer_dir.join(REJECTED_DIR);
    fs::create_dir_all(&dir).map_err(|error| io_error("create directory", &dir, error))?;
    let stem = format!("{:020}-{}-{}", batch.sequence, batch.first.0, batch.last.0);

    let mut events = Vec::new();
    for (_, record) in records {
        // Buffer records are compact; the file is for people and `citysoc import`, so JSON. A
        // record that cannot be read back (it passed the buffer's checksum, so only a bug
        // could do that) is kept as base64 with the reason, not lost.
        match crate::record::to_json(record) {
            Ok(json) => events.extend_from_slice(&json),
            Err(error) => events.extend_from_slice(
                serde_json::json!({
                    "record_error": error.to_string(),
                    "record_base64": base64::engine::general_purpose::STANDARD.encode(record),
                })
                .to_string()
                .as_bytes(),
            ),
        }
        events.push(b'\n');
    }
    let record = RejectionRecord {
        sequence: batch.sequence,
        status: batch.status,
        reason: &batch.rejection.reason,
        message: &batch.rejection.message,
        first_offset: batch.first.0,
        last_offset: batch.last.0,
        events: records.len(),
        dropped_before_saving: batch.events.saturating_sub(records.len()),
        rejected_at_ms: now_ms,
    };
    let mut reason = serde_json::to_vec_pretty(&record)
        .map_err(|error| CollectorError::Protocol(error.to_string()))?;
    reason.push(b'\n');

    // An events file only when there are events: an empty one would look like a batch to
    // re-import.
    let events_path = (!records.is_empty()).then(|| dir.join(format!("{stem}.ndjson")));
    if let Some(path) = &events_path {
        write_atomically(path, &events)?;
    }
    let reason_path = dir.join(format!("{stem}.rejection.json"));
    write_atomically(&reason_path, &reason)?;
    File::open(&dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| io_error("sync directory", &dir, error))?;
    Ok(Saved {
        events_path,
        reason_path,
        events: records.len(),
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CollectorError> {
    let temp = path.with_extension("tmp");
    let mut file = File::create(&temp).map_err(|error| io_error("create", &temp, error))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| io_error("write", &temp, error))?;
    fs::rename(&temp, path).map_err(|error| io_error("rename", &temp, error))
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> CollectorError {
    CollectorError::BufferIo {
        action,
        path: path.to_path_buf(),
        source,
    }
}
