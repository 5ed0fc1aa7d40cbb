//! What one event may bring to a batch, so that no batch a collector builds is refused.
//!
//! The server refuses a batch past its allowance (`budget.rs`: values and keys decoded, bytes
//! of the field paths indexed) or past 16 MiB on the wire. Were one event able to pass them,
//! or to crowd its batch past them, the whole batch would be refused and every event sent
//! with it kept in `rejected/` instead of delivered. So before a source stores an event, its
//! record is held to ceilings that add up, over the fullest batch a forwarder builds (at most
//! 8 MiB of records, `batch_max_bytes`' ceiling, and 50,000 events), to less than what the
//! server accepts:
//!
//! | ceiling, per event | over a full batch | the server's allowance |
//! |---|---|---|
//! | a compact record of at most [`MAX_RECORD_BYTES`] (12 MiB) | ≤ 8 MiB of records, or one larger record alone: ≤ 12 MiB compressed at worst | 16 MiB body |
//! | values and keys ≤ 2/5 of its record's bytes, and ≤ [`MAX_EVENT_VALUES`] | ≤ 3.4 M, or 2 M alone | 4,000,000 |
//! | path bytes ≤ 1 KiB + 16 × its raw bytes | ≤ 50,000 KiB + 16 × 8 MiB ≈ 177 MiB | 256 MiB |
//!
//! An event past a ceiling keeps its raw bytes (and the flags of how they arrived) as
//! `format: unknown`, the reason in its parse error. Real events stay far below: a syslog
//! record has a value for every 15–30 of its bytes, and a path byte or two for each byte of
//! raw text; `tests/batch_budget.rs` builds the densest full batches we know and has the
//! server's decoder read them. (Events longer than 4 MiB of raw text are cut into pieces
//! before this, `parse::into_pieces`.)

use super::budget::{fields_cost, FieldsCost, MAX_BATCH_PATH_BYTES, MAX_BATCH_VALUES};
use crate::event::Event;
use crate::CollectorError;

/// The largest compact record of one event. A batch tops up to `batch_max_bytes` (8 MiB at
/// most) but a larger record goes alone, so this is what one record may take of the largest
/// body the server reads (`protocol::MAX_BODY_BYTES`, 16 MiB): 12 MiB leaves a quarter for
/// compression's worst case (zstd adds well under 1% to bytes it cannot shrink). A 4 MiB frame
/// of key=value text makes ~8.4 MiB (its text, then each value copied out of it); more comes
/// only where a parser copies a value again into core fields or aliases (a Windows 4688
/// event's process name is in four places: ~20 MiB for a 4 MiB name).
pub const MAX_RECORD_BYTES: usize = 12 << 20;

/// The most values and keys of one event, whatever its size: half a batch's allowance, so
/// that a record sent alone (larger than `batch_max_bytes`) stays within it.
pub const MAX_EVENT_VALUES: usize = MAX_BATCH_VALUES / 2;

/// Path bytes one event may bring per byte of its raw record, on top of
/// [`EVENT_PATH_BYTES_FLOOR`]. A value's path is its key, which is in the record, plus the keys
/// above it and the names parsers give (`syslog.facility`, …): real events stay near 1–3 bytes
/// per byte even with arrays under long keys.
pub const EVENT_PATH_BYTES_PER_RAW_BYTE: usize = 16;

/// Path bytes any event may bring whatever its size: a short line's parsed names alone
/// (`syslog.priority`, `syslog.facility`, …) are longer than it.
pub const EVENT_PATH_BYTES_FLOOR: usize = 1024;

/// The most path bytes of one event, however large its record: half a batch's allowance.
pub const MAX_EVENT_PATH_BYTES: usize = MAX_BATCH_PATH_BYTES / 2;

/// Values and keys one event may bring per byte of its compact record, as a fraction
/// (numerator, denominator): 2/5. Each takes at least a byte of the record's `fields` and most
/// one or more of its raw text too; the densest shapes we know (arrays of one-digit numbers)
/// reach 1/3.
pub const EVENT_VALUES_PER_RECORD_BYTE: (usize, usize) = (2, 5);

/// Why `event` (whose fields cost `cost`) could not go in a batch the server accepts, judged on
/// its raw bytes before it is encoded, or `None`.
fn fields_problem(event: &Event, cost: FieldsCost) -> Option<String> {
    let raw_len = event.raw_len();
    let path_ceiling = raw_len
        .saturating_mul(EVENT_PATH_BYTES_PER_RAW_BYTE)
        .saturating_add(EVENT_PATH_BYTES_FLOOR)
        .min(MAX_EVENT_PATH_BYTES);
    (cost.path_bytes > path_ceiling).then(|| {
        format!(
            "its values would be indexed under {} bytes of field paths, more than the {path_ceiling} a record of {raw_len} bytes may bring (a long key over many values)",
            cost.path_bytes
        )
    })
}

/// Why a compact record of `record_len` bytes holding `values` values and keys could not go
/// in a batch the server accepts, or `None`.
fn record_problem(values: usize, record_len: usize) -> Option<String> {
    let (numerator, denominator) = EVENT_VALUES_PER_RECORD_BYTE;
    if record_len > MAX_RECORD_BYTES {
        Some(format!(
            "its record would take {record_len} bytes, more than the {MAX_RECORD_BYTES} one event may carry to the server"
        ))
    } else if values > MAX_EVENT_VALUES {
        Some(format!(
            "its fields hold {values} values and keys, more than the {MAX_EVENT_VALUES} one event may carry to the server"
        ))
    } else if values.saturating_mul(denominator) > record_len.saturating_mul(numerator) {
        Some(format!(
            "its fields hold {values} values and keys in a record of {record_len} bytes, more than {numerator} for every {denominator} bytes (the same few bytes parsed into many values)"
        ))
    } else {
        None
    }
}

/// Keeps `event`'s raw bytes and the flags of how they arrived, as `format: unknown` with
/// `problem` as the reason.
fn keep_raw_only(event: &mut Event, problem: &str) {
    let flags = crate::parse::record_flags(&event.fields);
    let format_name = event.format.as_str();
    crate::parse::mark_unknown(
        event,
        format_name,
        crate::format::FormatError::new(format!("{problem}; kept raw"), 0),
    );
    for (name, value) in flags {
        event.fields.insert(name.into(), value);
    }
}

/// Appends `event`'s compact record to `out` (as `record::encode` does) held to the ceilings
/// of this module: an event past one is turned into its raw bytes first (`event` is changed
/// too, so that the caller counts it as unparsed). What the collector's sources store.
pub fn encode_within_ceiling(event: &mut Event, out: &mut Vec<u8>) -> Result<(), CollectorError> {
    let mut cost = fields_cost(&event.fields);
    if let Some(problem) = fields_problem(event, cost) {
        keep_raw_only(event, &problem);
        cost = fields_cost(&event.fields);
    }
    let start = out.len();
    super::encode(event, out)?;
    let Some(problem) = record_problem(cost.values, out.len() - start) else {
        return Ok(());
    };
    out.truncate(start);
    keep_raw_only(event, &problem);
    super::encode(event, out)
}
