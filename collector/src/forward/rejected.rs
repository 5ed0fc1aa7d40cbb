//! Batches the server refused for good, kept on disk beside the buffer so they are neither
//! retried forever nor lost: `rejected/<sequence>-<first>-<last>.ndjson` holds the events as
//! JSON (ready for `citysoc import`), and the `.rejection.json` beside it says
//! why.

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
    events: usize,
    rejected_at_ms: i64,
}

/// Writes one rejected batch durably; returns the events file. Writing the same batch again
/// (a crash before its acknowledgement) replaces the files.
pub(crate) fn save(
    buffer_dir: &Path,
    sequence: u64,
    status: u16,
    rejection: &Rejection,
    records: &[(Offset, Vec<u8>)],
    now_ms: i64,
) -> Result<PathBuf, CollectorError> {
    let dir = buffer_dir.join(REJECTED_DIR);
    fs::create_dir_all(&dir).map_err(|error| io_error("create directory", &dir, error))?;
    let first = records.first().map_or(0, |(offset, _)| offset.0);
    let last = records.last().map_or(0, |(offset, _)| offset.0);
    let stem = format!("{sequence:020}-{first}-{last}");

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
        sequence,
        status,
        reason: &rejection.reason,
        message: &rejection.message,
        first_offset: first,
        last_offset: last,
        events: records.len(),
        rejected_at_ms: now_ms,
    };
    let mut reason = serde_json::to_vec_pretty(&record)
        .map_err(|error| CollectorError::Protocol(error.to_string()))?;
    reason.push(b'\n');

    let events_path = dir.join(format!("{stem}.ndjson"));
    write_atomically(&events_path, &events)?;
    write_atomically(&dir.join(format!("{stem}.rejection.json")), &reason)?;
    File::open(&dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| io_error("sync directory", &dir, error))?;
    Ok(events_path)
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
