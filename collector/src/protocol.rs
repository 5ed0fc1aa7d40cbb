//! The wire protocol between a collector and the SOC server: what a batch looks like, how it
//! is signed, and the JSON bodies of enrollment, key rotation and heartbeats. Both sides use
//! this module, so they cannot drift apart. Pure: no I/O.
//!
//! A batch is `POST INTAKE_PATH` with
//!
//! - body: zstd-compressed, either a records batch ([`BATCH_MAGIC`], then each event's record
//!   as a LEB128 length and the record: compact [`crate::record`]s, or the JSON of one from a
//!   buffer an older collector wrote) or NDJSON, one [`Event`] per line (older collectors and
//!   tools). The body says which by its first bytes, and the signature covers it.
//!   Records version themselves part by part, not by the batch: a reader refuses a part it
//!   does not know by name ("unknown (written by a newer version?) part 19": the 16-byte
//!   id; 18 is binary `fields`, see [`crate::record`]), so a server older than its
//!   collectors answers 400 saying so, the collector logs "upgrade the server first" and
//!   keeps the batch in `rejected/`. The batch magic stays `CSREC1`: a new magic would make an older server read
//!   the body as NDJSON and answer a less useful "line 1: not an event";
//! - `x-citysoc-collector`: the collector id the server issued at enrollment;
//! - `x-citysoc-sequence`: the batch's number, from 1, increasing by one per batch; a batch is
//!   re-sent with the same number until the server acknowledges it;
//! - `x-citysoc-time`: when this attempt was signed, Unix milliseconds (each retry is signed
//!   again, so a long outage does not make the batch expire);
//! - `x-citysoc-signature`: base64 of HMAC-SHA256 with the collector's key over
//!   [`signing_input`]: the protocol version, the request path, the collector id, the sequence
//!   number, the time and the body exactly as sent;
//! - `x-citysoc-head-signature`: base64 of HMAC-SHA256 with the same key over
//!   [`head_signing_input`]: the same fields and the body's length (`Content-Length`), but not
//!   the body. The server checks it from the headers alone, before it gives the request a
//!   place or reads its body, so a sender without the key cannot hold the places where the
//!   server reads bodies, even knowing collector ids (which are not secret). A server takes
//!   requests without it from a collector that has never sent it (older collectors), and
//!   refuses them from one that has.
//!
//! The server answers 200 with an [`IntakeAck`] only once the batch is durable. 5xx answers and
//! network errors are retried, and so are 401 and 403 (they are about the collector, not the
//! batch: a clock, a key, a revocation, a missing head signature), 408 and 429; a 409 replay
//! makes the collector renumber after the batch the server names, and a batch refused for its
//! content (`bad_body`, `too_large`) is sent again in halves; what is refused still is final
//! (saved under `rejected/`: the batch is wrong and retrying will not help). Heartbeats and key rotation are signed the same way (their own paths, sequence 0).

use std::io::{Read, Write};

use base64::Engine as _;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::record::ValueBudget;
pub use crate::record::{MAX_BATCH_PATH_BYTES, MAX_BATCH_VALUES};
use crate::{CollectorError, Event};

/// Where batches are posted.
pub const INTAKE_PATH: &str = "/api/v1/intake";
/// Where a collector exchanges a one-time token for its key.
pub const ENROLL_PATH: &str = "/api/v1/enroll";
/// Where a collector reports its health.
pub const HEARTBEAT_PATH: &str = "/api/v1/heartbeat";
/// Where a collector asks for a new key.
pub const ROTATE_PATH: &str = "/api/v1/rotate";

/// Header: the collector id.
pub const HEADER_COLLECTOR: &str = "x-citysoc-collector";
/// Header: the batch sequence number.
pub const HEADER_SEQUENCE: &str = "x-citysoc-sequence";
/// Header: signing time, Unix milliseconds.
pub const HEADER_TIME: &str = "x-citysoc-time";
/// Header: base64 HMAC-SHA256.
pub const HEADER_SIGNATURE: &str = "x-citysoc-signature";
/// Header: base64 HMAC-SHA256 over the headers' fields and the body's length
/// ([`head_signing_input`]).
pub const HEADER_HEAD_SIGNATURE: &str = "x-citysoc-head-signature";

/// Largest compressed body the server reads.
pub const MAX_BODY_BYTES: usize = 16 << 20;
/// Largest decompressed batch (a zstd bomb stops here).
pub const MAX_DECOMPRESSED_BYTES: usize = 128 << 20;
/// Most events one batch may hold. Bytes alone do not bound a batch's memory: a minimal
/// record is ~20 bytes but its decoded `Event` ~1 KB, so 128 MiB of them would be gigabytes.
/// Collectors send at most `batch_max_events` (5,000 by default, at most this).
pub const MAX_BATCH_EVENTS: usize = 50_000;
/// Largest zstd window the server accepts (2^24 = 16 MiB; the collector's encoder uses far
/// less), so a crafted frame cannot make the decoder reserve the format's 128 MiB.
const MAX_WINDOW_LOG: u32 = 24;
/// How far a signing time may be from the server's clock, in milliseconds.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// Length of a collector key, bytes.
pub const KEY_BYTES: usize = 32;

const VERSION: &str = "citysoc-batch-v1";
/// The head signature's version ([`head_signing_input`]).
const HEAD_VERSION: &str = "citysoc-head-v1";

/// The signed fields of a request besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Collector id.
    pub collector: String,
    /// Batch number (0 for heartbeats and rotation).
    pub sequence: u64,
    /// Signing time, Unix milliseconds.
    pub time_ms: i64,
}

/// The bytes the HMAC covers: version, path, collector, sequence and time, each followed by a
/// newline, then the body. Fields cannot run into each other: none may contain a newline
/// (collector ids are checked at enrollment, the rest are numbers and fixed paths).
pub fn signing_input(path: &str, signed: &Signed, body: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(body.len() + 96);
    for part in [
        VERSION,
        path,
        &signed.collector,
        &signed.sequence.to_string(),
        &signed.time_ms.to_string(),
    ] {
        input.extend_from_slice(part.as_bytes());
        input.push(b'\n');
    }
    input.extend_from_slice(body);
    input
}

/// What the head signature covers ([`HEADER_HEAD_SIGNATURE`]): its own version, the path,
/// collector, sequence and time, and the body's length, each followed by a newline. Its
/// version differs from the body signature's, so neither tag can stand for the other.
pub fn head_signing_input(path: &str, signed: &Signed, body_len: u64) -> Vec<u8> {
    let mut input = Vec::with_capacity(128);
    for part in [
        HEAD_VERSION,
        path,
        &signed.collector,
        &signed.sequence.to_string(),
        &signed.time_ms.to_string(),
        &body_len.to_string(),
    ] {
        input.extend_from_slice(part.as_bytes());
        input.push(b'\n');
    }
    input
}

/// The head signature header value for a request whose body is `body_len` bytes.
pub fn sign_head(key: &[u8], path: &str, signed: &Signed, body_len: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, &head_signing_input(path, signed, body_len));
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// Checks a head signature in constant time.
pub fn verify_head(
    key: &[u8],
    path: &str,
    signed: &Signed,
    body_len: u64,
    signature: &str,
) -> Result<(), CollectorError> {
    let tag = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| CollectorError::Protocol("head signature is not base64".into()))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&key, &head_signing_input(path, signed, body_len), &tag)
        .map_err(|_| CollectorError::Protocol("head signature does not match".into()))
}

/// The signature header value for a request.
pub fn sign(key: &[u8], path: &str, signed: &Signed, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, &signing_input(path, signed, body));
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// Checks a signature in constant time.
pub fn verify(
    key: &[u8],
    path: &str,
    signed: &Signed,
    body: &[u8],
    signature: &str,
) -> Result<(), CollectorError> {
    let tag = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| CollectorError::Protocol("signature is not base64".into()))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&key, &signing_input(path, signed, body), &tag)
        .map_err(|_| CollectorError::Protocol("signature does not match".into()))
}

/// A new random collector key.
pub fn generate_key() -> Result<[u8; KEY_BYTES], CollectorError> {
    let mut key = [0u8; KEY_BYTES];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| CollectorError::Protocol("the system random generator failed".into()))?;
    Ok(key)
}

/// A new random token (one-time enrollment tokens, collector ids): `bytes` random bytes as
/// URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> Result<String, CollectorError> {
    let mut raw = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
        .map_err(|_| CollectorError::Protocol("the system random generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// First bytes of a decompressed records batch. 0xC1 never starts JSON text (nor UTF-8), so an
/// NDJSON body cannot be taken for one.
pub const BATCH_MAGIC: &[u8; 8] = b"\xC1CSREC1\n";

/// A batch body from buffer records (compact, or JSON from an older collector's buffer): each
/// goes in as it is, after its length.
pub fn encode_records<'a>(
    records: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, CollectorError> {
    let mut encoder = zstd::Encoder::new(Vec::new(), 3).map_err(compression)?;
    encoder.write_all(BATCH_MAGIC).map_err(compression)?;
    let mut length = Vec::with_capacity(10);
    for record in records {
        length.clear();
        let mut value = record.len() as u64;
        while value >= 0x80 {
            length.push((value as u8) | 0x80);
            value >>= 7;
        }
        length.push(value as u8);
        encoder.write_all(&length).map_err(compression)?;
        encoder.write_all(record).map_err(compression)?;
    }
    encoder.finish().map_err(compression)
}

/// A records batch body from events (compact records).
pub fn encode_events_compact(events: &[Event]) -> Result<Vec<u8>, CollectorError> {
    let records = events
        .iter()
        .map(crate::record::to_vec)
        .collect::<Result<Vec<_>, _>>()?;
    encode_records(records.iter().map(Vec::as_slice))
}

/// A batch body from lines that are already one JSON event each.
pub fn encode_lines<'a>(
    lines: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, CollectorError> {
    let mut encoder = zstd::Encoder::new(Vec::new(), 3).map_err(compression)?;
    for line in lines {
        encoder.write_all(line).map_err(compression)?;
        encoder.write_all(b"\n").map_err(compression)?;
    }
    encoder.finish().map_err(compression)
}

/// A batch body from events.
pub fn encode_events(events: &[Event]) -> Result<Vec<u8>, CollectorError> {
    let lines = events
        .iter()
        .map(serde_json::to_vec)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| CollectorError::Protocol(format!("cannot serialize an event: {error}")))?;
    encode_lines(lines.iter().map(Vec::as_slice))
}

/// Reads a batch body: decompresses (at most [`MAX_DECOMPRESSED_BYTES`]) and parses every
/// line. Any bad line rejects the whole batch, naming the line: a batch is stored whole or not
/// at all.
pub fn decode_batch(body: &[u8]) -> Result<Vec<Event>, CollectorError> {
    let mut decoder = zstd::Decoder::new(body)
        .map_err(|error| CollectorError::Protocol(format!("body is not zstd: {error}")))?;
    decoder
        .window_log_max(MAX_WINDOW_LOG)
        .map_err(|error| CollectorError::Protocol(format!("zstd: {error}")))?;
    let mut text = Vec::new();
    decoder
        .take(MAX_DECOMPRESSED_BYTES as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|error| {
            CollectorError::Protocol(format!("body is not valid zstd (truncated?): {error}"))
        })?;
    if text.len() > MAX_DECOMPRESSED_BYTES {
        return Err(CollectorError::Protocol(format!(
            "batch decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes"
        )));
    }
    if let Some(records) = text.strip_prefix(BATCH_MAGIC.as_slice()) {
        return decode_records(records, ValueBudget::for_batch());
    }
    let mut events = Vec::new();
    let mut budget = ValueBudget::for_batch();
    for (number, line) in text.split(|byte| *byte == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if events.len() == MAX_BATCH_EVENTS {
            return Err(too_many_events());
        }
        budget
            .charge_json(line)
            .map_err(|error| CollectorError::Protocol(format!("line {}: {error}", number + 1)))?;
        let event: Event = serde_json::from_slice(line).map_err(|error| {
            CollectorError::Protocol(format!("line {}: not an event: {error}", number + 1))
        })?;
        let event = crate::record::within_event_years(event)
            .map_err(|error| CollectorError::Protocol(format!("line {}: {error}", number + 1)))?;
        budget
            .charge_paths(&event.fields)
            .map_err(|error| CollectorError::Protocol(format!("line {}: {error}", number + 1)))?;
        events.push(event);
    }
    Ok(events)
}

/// The events of a records batch (after [`BATCH_MAGIC`]). Any bad record rejects the batch,
/// naming it.
/// `budget`: the batch's allowance of decoded values ([`ValueBudget`]).
fn decode_records(mut bytes: &[u8], mut budget: ValueBudget) -> Result<Vec<Event>, CollectorError> {
    let mut events = Vec::new();
    while !bytes.is_empty() {
        if events.len() == MAX_BATCH_EVENTS {
            return Err(too_many_events());
        }
        let number = events.len() + 1;
        let (length, rest) = read_length(bytes)
            .ok_or_else(|| CollectorError::Protocol(format!("record {number}: bad length")))?;
        let record = rest.get(..length).ok_or_else(|| {
            CollectorError::Protocol(format!("record {number}: runs past the end of the batch"))
        })?;
        let event = crate::record::decode_any_within(record, &mut budget)
            .map_err(|error| CollectorError::Protocol(format!("record {number}: {error}")))?;
        events.push(event);
        bytes = rest.get(length..).unwrap_or_default();
    }
    Ok(events)
}

fn too_many_events() -> CollectorError {
    CollectorError::Protocol(format!("batch holds more than {MAX_BATCH_EVENTS} events"))
}

/// A LEB128 length at the start of `bytes`, and what follows it.
fn read_length(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut value = 0u64;
    for (index, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f).checked_shl(7 * index as u32)?;
        if byte & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, bytes.get(index + 1..)?));
        }
    }
    None
}

fn compression(error: std::io::Error) -> CollectorError {
    CollectorError::Protocol(format!("zstd: {error}"))
}

/// The server's answer to a batch, sent once the batch is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeAck {
    /// The sequence number acknowledged.
    pub sequence: u64,
    /// Events stored from this batch.
    pub stored: u64,
    /// Events of this batch the server already had (re-sent after a lost acknowledgement).
    pub duplicates: u64,
}

/// The server's answer to a rejected request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Machine-readable reason (`bad_signature`, `replay`, `expired`, `too_large`, …).
    pub reason: String,
    /// For people.
    pub message: String,
    /// With `replay`: the newest batch number the server has acknowledged from this
    /// collector. A collector whose buffer state was lost (reinstalled, restored from an old
    /// backup) numbers its batches from 1 again; it renumbers after this so its events are
    /// delivered instead of refused forever. Absent from servers that do not send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_acknowledged: Option<u64>,
}

/// Enrollment request: a one-time token from an agency admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The one-time token.
    pub token: String,
    /// A name for the collector (defaults to its host name).
    pub name: String,
    /// Host name of the machine.
    pub hostname: String,
    /// Collector version.
    pub version: String,
}

/// Enrollment answer: the collector's identity and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// Collector id for the `x-citysoc-collector` header.
    pub collector_id: String,
    /// The agency the token was made for: every event the collector sends belongs to it.
    pub agency: String,
    /// The HMAC key, base64.
    pub key: String,
}

/// Rotation answer: the new key (the old one keeps working until the new one is first used,
/// so a lost answer does not lock the collector out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateResponse {
    /// The new HMAC key, base64.
    pub key: String,
}

/// Counters of one source, in a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceHealth {
    /// Records read.
    pub events_in: u64,
    /// Events written to the buffer.
    pub events_out: u64,
    /// Records lost before the buffer (UDP overruns, oversized datagrams cut), by reason.
    pub drops: u64,
    /// Errors (connections refused, unreadable files).
    pub errors: u64,
}

/// A collector's health report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Collector version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Per source name.
    pub sources: std::collections::BTreeMap<String, SourceHealth>,
    /// Bytes in the disk buffer.
    pub buffer_bytes: u64,
    /// Events in the disk buffer not yet acknowledged.
    pub buffer_events: u64,
    /// The buffer's size limit.
    pub buffer_max_bytes: u64,
    /// Events dropped by the buffer (`drop_oldest` when full).
    pub buffer_dropped: u64,
    /// Batches acknowledged by the server.
    pub batches_acked: u64,
    /// Failed send attempts.
    pub send_errors: u64,
    /// Batches the server refused (kept on the collector in `rejected/`). Absent from older
    /// collectors' heartbeats.
    #[serde(default)]
    pub rejected_batches: u64,
    /// Unacknowledged events the buffer lost to damaged files since the collector started.
    #[serde(default)]
    pub buffer_corrupt_events: u64,
    /// Last error, if any.
    pub last_error: Option<String>,
    /// SHA-256 of the configuration, hex.
    pub config_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed() -> Signed {
        Signed {
            collector: "c-1".into(),
            sequence: 7,
            time_ms: 1_795_000_000_000,
        }
    }

    /// [`signed`] with one field changed, for each field.
    fn each_field_changed() -> [Signed; 3] {
        [
            Signed {
                collector: "c-2".into(),
                ..signed()
            },
            Signed {
                sequence: 8,
                ..signed()
            },
            Signed {
                time_ms: 1_795_000_000_001,
                ..signed()
            },
        ]
    }

    #[test]
    fn signatures_verify_and_any_change_breaks_them() {
        let key = [7u8; KEY_BYTES];
        let body = b"compressed bytes";
        let signature = sign(&key, INTAKE_PATH, &signed(), body);
        assert!(verify(&key, INTAKE_PATH, &signed(), body, &signature).is_ok());
        assert!(verify(&[8u8; KEY_BYTES], INTAKE_PATH, &signed(), body, &signature).is_err());
        assert!(verify(
            &key,
            INTAKE_PATH,
            &signed(),
            b"compressed byteS",
            &signature
        )
        .is_err());
        assert!(verify(&key, HEARTBEAT_PATH, &signed(), body, &signature).is_err());
        for changed in each_field_changed() {
            assert!(
                verify(&key, INTAKE_PATH, &changed, body, &signature).is_err(),
                "{changed:?}"
            );
        }
        assert!(verify(&key, INTAKE_PATH, &signed(), body, "not base64!").is_err());
    }

    #[test]
    fn head_signatures_bind_every_header_field_and_the_length_not_the_body() {
        let key = [7u8; KEY_BYTES];
        let signature = sign_head(&key, INTAKE_PATH, &signed(), 4096);
        assert!(verify_head(&key, INTAKE_PATH, &signed(), 4096, &signature).is_ok());
        assert!(verify_head(&[8u8; KEY_BYTES], INTAKE_PATH, &signed(), 4096, &signature).is_err());
        assert!(verify_head(&key, INTAKE_PATH, &signed(), 4097, &signature).is_err());
        assert!(verify_head(&key, HEARTBEAT_PATH, &signed(), 4096, &signature).is_err());
        for changed in each_field_changed() {
            assert!(
                verify_head(&key, INTAKE_PATH, &changed, 4096, &signature).is_err(),
                "{changed:?}"
            );
        }
        assert!(verify_head(&key, INTAKE_PATH, &signed(), 4096, "not base64!").is_err());
        // Neither tag stands for the other: an empty body's signature is not a head signature.
        let body_signature = sign(&key, INTAKE_PATH, &signed(), b"");
        assert!(verify_head(&key, INTAKE_PATH, &signed(), 0, &body_signature).is_err());
        assert!(verify(
            &key,
            INTAKE_PATH,
            &signed(),
            b"",
            &sign_head(&key, INTAKE_PATH, &signed(), 0)
        )
        .is_err());
    }

    #[test]
    fn batches_round_trip_and_bad_bodies_are_rejected() {
        let line = br#"{"id":"ab","timestamp":"2026-11-22T00:00:00Z","received_at":"2026-11-22T00:00:00Z","source":{"transport":"udp"},"format":"unknown","raw":"x"}"#;
        let body = encode_lines([line.as_slice(), line.as_slice()]).unwrap_or_default();
        let events = decode_batch(&body).unwrap_or_default();
        assert_eq!(events.len(), 2);
        assert_eq!(
            decode_batch(&encode_events(&events).unwrap_or_default()).ok(),
            Some(events)
        );
        assert!(decode_batch(b"plain text").is_err());
        assert!(decode_batch(&body[..body.len() / 2]).is_err(), "truncated");
        let bad = encode_lines([line.as_slice(), b"{not json".as_slice()]).unwrap_or_default();
        let error = decode_batch(&bad)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(error.contains("line 2"), "{error}");
    }

    /// `body` is refused, with an error naming `place` (`line 1`, `record 1`) and `problem`.
    fn assert_refused(body: &[u8], place: &str, problem: &str) {
        let error = decode_batch(body).err().map(|error| error.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|error| error.contains(place) && error.contains(problem)),
            "{error:?}"
        );
    }

    /// A batch whose values would take far more memory decoded than on the wire (a value in
    /// one byte) is refused before it is parsed, on both paths.
    #[test]
    fn a_batch_decoding_to_more_values_than_allowed_is_refused() {
        let zeros = vec!["0"; MAX_BATCH_VALUES].join(",");
        let line = format!(
            r#"{{"id":"ab","timestamp":"2026-11-22T00:00:00Z","received_at":"2026-11-22T00:00:00Z","source":{{"transport":"udp"}},"format":"unknown","fields":{{"a":[{zeros}]}}}}"#
        );
        let body = encode_lines([line.as_bytes()]).unwrap_or_default();
        assert_refused(&body, "line 1", "values");
        // The same document as a JSON record in a records batch.
        let body = encode_records([line.as_bytes()]).unwrap_or_default();
        assert_refused(&body, "record 1", "values");
    }

    /// A long key over many values is small decoded but large indexed (its path once per
    /// value): refused on both paths, a batch of real-sized paths is not.
    #[test]
    fn values_under_a_long_path_are_refused() {
        let key = "k".repeat(64 << 10);
        let zeros = vec!["0"; 5_000].join(",");
        let line = format!(
            r#"{{"id":"ab","timestamp":"2026-11-22T00:00:00Z","received_at":"2026-11-22T00:00:00Z","source":{{"transport":"udp"}},"format":"unknown","fields":{{"{key}":[{zeros}]}}}}"#
        );
        let body = encode_lines([line.as_bytes()]).unwrap_or_default();
        assert_refused(&body, "line 1", "field paths");
        let event: Event = serde_json::from_str(&line).unwrap_or_else(|error| panic!("{error}"));
        let compact = crate::record::to_vec(&event).unwrap_or_default();
        let body = encode_records([compact.as_slice()]).unwrap_or_default();
        assert_refused(&body, "record 1", "field paths");
        // The same values under a short key.
        let short = line.replace(&key, "k");
        assert_eq!(
            decode_batch(&encode_lines([short.as_bytes()]).unwrap_or_default())
                .map(|events| events.len())
                .ok(),
            Some(1)
        );
    }

    /// Binary records: every entry, value and key is charged, and the batch stops at the
    /// record that overdraws the allowance.
    #[test]
    fn binary_records_are_charged_per_value() {
        let line = br#"{"id":"ab","timestamp":"2026-11-22T00:00:00Z","received_at":"2026-11-22T00:00:00Z","source":{"transport":"udp"},"format":"unknown","fields":{"a":[0,0,0],"b":{"c":"d"}}}"#;
        let event: Event = serde_json::from_slice(line).unwrap_or_else(|error| panic!("{error}"));
        let compact = crate::record::to_vec(&event).unwrap_or_default();
        let mut records = Vec::new();
        for _ in 0..2 {
            records.push(u8::try_from(compact.len()).unwrap_or(u8::MAX));
            records.extend_from_slice(&compact);
        }
        // Per record: entry `a`, its array, three zeros; entry `b`, its object, key `c`, `d`.
        let per_record = 1 + 1 + 3 + 1 + 1 + 1 + 1;
        assert_eq!(
            decode_records(&records, ValueBudget::new(2 * per_record)).ok(),
            Some(vec![event.clone(), event])
        );
        let error = decode_records(&records, ValueBudget::new(2 * per_record - 1))
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("record 2") && error.contains("values"),
            "{error}"
        );
    }

    #[test]
    fn records_batches_round_trip_mixed_with_json_and_bad_ones_name_the_record() {
        let line = br#"{"id":"ab","timestamp":"2026-11-22T00:00:00Z","received_at":"2026-11-22T00:00:00Z","source":{"transport":"udp"},"format":"unknown","raw":"x"}"#;
        let events =
            decode_batch(&encode_lines([line.as_slice()]).unwrap_or_default()).unwrap_or_default();
        let compact = crate::record::to_vec(&events[0]).unwrap_or_default();
        // A buffer written by an older collector holds JSON records: both kinds in one batch.
        let body = encode_records([compact.as_slice(), line.as_slice(), compact.as_slice()])
            .unwrap_or_default();
        let decoded = decode_batch(&body).unwrap_or_default();
        assert_eq!(decoded, vec![events[0].clone(); 3]);
        assert_eq!(
            decode_batch(&encode_events_compact(&decoded).unwrap_or_default()).ok(),
            Some(decoded)
        );
        assert_eq!(
            decode_batch(&encode_records([]).unwrap_or_default()).ok(),
            Some(vec![])
        );

        let error = |body: Vec<u8>| {
            decode_batch(&body)
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default()
        };
        let damaged = error(
            encode_records([compact.as_slice(), &compact[..compact.len() - 3]]).unwrap_or_default(),
        );
        assert!(damaged.contains("record 2"), "{damaged}");
        // A length that runs past the end of the batch.
        let mut cut = BATCH_MAGIC.to_vec();
        cut.extend_from_slice(&[0x7f, RECORD_MARK_FOR_TESTS]);
        let cut = error(zstd::encode_all(cut.as_slice(), 1).unwrap_or_default());
        assert!(cut.contains("record 1: runs past the end"), "{cut}");
        let mut endless = BATCH_MAGIC.to_vec();
        endless.extend_from_slice(&[0xff; 12]);
        let endless = error(zstd::encode_all(endless.as_slice(), 1).unwrap_or_default());
        assert!(endless.contains("record 1: bad length"), "{endless}");
    }

    /// A few hundred KB of repeated minimal records would decode to millions of events
    /// (gigabytes): the count is capped while decoding, in both batch forms, and a zstd frame
    /// asking for a window past the cap is refused.
    #[test]
    fn batches_past_the_event_cap_or_window_are_refused() {
        let line = br#"{"id":"ab","timestamp":"2026-11-22T00:00:00Z","received_at":"2026-11-22T00:00:00Z","source":{"transport":"udp"},"format":"unknown","raw":"x"}"#;
        let events =
            decode_batch(&encode_lines([line.as_slice()]).unwrap_or_default()).unwrap_or_default();
        let compact = crate::record::to_vec(&events[0]).unwrap_or_default();
        let at_cap = encode_records(std::iter::repeat_n(compact.as_slice(), MAX_BATCH_EVENTS))
            .unwrap_or_default();
        assert_eq!(
            decode_batch(&at_cap).map(|events| events.len()).ok(),
            Some(MAX_BATCH_EVENTS)
        );
        let over = MAX_BATCH_EVENTS + 1;
        let too_many = [
            encode_records(std::iter::repeat_n(compact.as_slice(), over)),
            encode_lines(std::iter::repeat_n(line.as_slice(), over)),
        ];
        for body in too_many {
            let body = body.unwrap_or_default();
            assert!(
                body.len() < 1 << 20,
                "the attack is cheap: {} bytes",
                body.len()
            );
            let error = decode_batch(&body)
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default();
            assert!(error.contains("more than 50000 events"), "{error}");
        }
        // A frame compressed with a 32 MiB window (long-distance matching) is refused.
        let mut encoder = zstd::bulk::Compressor::new(1).unwrap_or_else(|error| panic!("{error}"));
        encoder
            .set_parameter(zstd::zstd_safe::CParameter::WindowLog(25))
            .unwrap_or_else(|error| panic!("{error}"));
        let mut wide_input = BATCH_MAGIC.to_vec();
        wide_input.resize(40 << 20, b'x');
        let wide = encoder
            .compress(&wide_input)
            .unwrap_or_else(|error| panic!("{error}"));
        let error = decode_batch(&wide)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(error.contains("zstd"), "{error}");
    }

    const RECORD_MARK_FOR_TESTS: u8 = crate::record::RECORD_MARK;

    #[test]
    fn keys_and_tokens_are_random() {
        let a = generate_key().unwrap_or([0; KEY_BYTES]);
        let b = generate_key().unwrap_or([0; KEY_BYTES]);
        assert_ne!(a, b);
        let token = random_token(24).unwrap_or_default();
        assert_eq!(token.len(), 32);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}
