//! Every batch a collector can send fits the server's allowance of decoded values and field
//! paths (`record/budget.rs`): events whose own cost would not fit are kept raw and flagged
//! before a source stores them (`record::encode_within_ceiling`), and the densest batches of what is left (as many records of the worst
//! shapes we know as `batch_max_bytes`' ceiling and the event cap allow) are accepted whole.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use citysoc_collector::protocol::{self, MAX_BATCH_EVENTS, MAX_BODY_BYTES};
use citysoc_collector::record;
use citysoc_collector::{Decoder, Event, Format, InputFormat, ParseContext};

/// The context a TCP source gives its events (agency, collector and address are in every
/// record, so they count against the batch's bytes as they would).
fn context() -> ParseContext {
    ParseContext::new("tcp")
        .with_agency("quan-1")
        .with_collector("col-quan-1-0001")
        .with_address("10.1.2.3:51514")
}

fn parse(format: InputFormat, record: &[u8]) -> Vec<Event> {
    let mut decoder = Decoder::new(format, context());
    let mut events = Vec::new();
    decoder.decode(record, &mut events);
    decoder.finish(&mut events);
    events
}

/// What a collector's source stores of `event`: its compact record held to the ceilings
/// (`event` turned into its raw bytes when past one).
fn stored(event: &mut Event) -> Vec<u8> {
    let mut record = Vec::new();
    record::encode_within_ceiling(event, &mut record).unwrap();
    record
}

/// What the fullest batch of `record(i)`s held and what the server made of it.
struct Fullest {
    events: usize,
    flagged: usize,
    record_bytes: usize,
}

/// Parses `record(0)`, `record(1)`, … as a TCP source would and packs their compact records
/// into the fullest batch a forwarder builds (records up to `batch_max_bytes`' ceiling, at
/// most the server's event cap), then has the server's decoder read it.
fn fullest_batch(format: InputFormat, record: impl Fn(usize) -> Vec<u8>) -> Fullest {
    let max_bytes = MAX_BODY_BYTES / 2;
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut record_bytes = 0;
    let mut flagged = 0;
    'fill: for index in 0.. {
        for mut event in parse(format, &record(index)) {
            let encoded = stored(&mut event);
            if records.len() == MAX_BATCH_EVENTS || record_bytes + encoded.len() > max_bytes {
                break 'fill;
            }
            flagged += usize::from(event.format == Format::Unknown);
            record_bytes += encoded.len();
            records.push(encoded);
        }
    }
    let body = protocol::encode_records(records.iter().map(Vec::as_slice)).unwrap();
    assert!(body.len() <= MAX_BODY_BYTES, "body of {} bytes", body.len());
    let decoded = protocol::decode_batch(&body)
        .unwrap_or_else(|error| panic!("the server refused the batch: {error}"));
    assert_eq!(decoded.len(), records.len());
    Fullest {
        events: records.len(),
        flagged,
        record_bytes,
    }
}

fn zeros(count: usize) -> String {
    vec!["0"; count].join(",")
}

/// A key as long as the per-event ceiling lets through over an array of zeros: 16 bytes of
/// path per byte of record, the most a record may bring (a 32-byte key costs 32 per `0,`).
#[test]
fn arrays_under_long_keys_at_the_ceiling() {
    let key = "k".repeat(32);
    let fullest = fullest_batch(InputFormat::Json, |index| {
        format!(r#"{{"{key}{index:08}":[{}]}}"#, zeros(200)).into_bytes()
    });
    assert_eq!(
        fullest.flagged, 0,
        "a key of 40 bytes is within 16 per byte"
    );
    assert!(fullest.record_bytes > MAX_BODY_BYTES / 2 - 4096);
}

/// Small documents with arrays under long keys, as many as fit.
#[test]
fn many_small_documents() {
    let key = "k".repeat(20);
    let fullest = fullest_batch(InputFormat::Json, |index| {
        format!(r#"{{"{key}{index:05}":[{}]}}"#, zeros(12)).into_bytes()
    });
    assert_eq!(fullest.flagged, 0);
    assert!(fullest.events > 20_000, "{}", fullest.events);
}

/// The most values per byte: arrays of one-digit numbers in 64 KiB lines (the default frame).
#[test]
fn the_densest_values() {
    let fullest = fullest_batch(InputFormat::Json, |index| {
        format!(r#"{{"a{index}":[{}]}}"#, zeros(32_700)).into_bytes()
    });
    assert_eq!(fullest.flagged, 0);
    assert!(fullest.record_bytes > MAX_BODY_BYTES / 2 - (128 << 10));
}

/// key=value with a new one-letter key per pair, and empty values.
#[test]
fn key_value_pairs_with_new_keys() {
    let fullest = fullest_batch(InputFormat::Kv, |index| {
        (0..2_000)
            .map(|pair| format!("k{index}x{pair}="))
            .collect::<Vec<_>>()
            .join(" ")
            .into_bytes()
    });
    assert_eq!(fullest.flagged, 0);
}

/// The shortest syslog lines, as many as the event cap allows: the names the parser gives
/// (`syslog.priority`, …) are longer than the lines.
#[test]
fn the_shortest_syslog_lines() {
    let fullest = fullest_batch(InputFormat::Auto, |index| {
        format!("<13>{index}").into_bytes()
    });
    assert_eq!(fullest.events, MAX_BATCH_EVENTS);
}

/// A long key over many values costs the server its length once per value: such an event is
/// kept raw and flagged, so it cannot get the batch it travels in refused.
#[test]
fn an_event_past_its_ceiling_is_kept_raw_and_flagged() {
    let line = format!(r#"{{"{}":[{}]}}"#, "k".repeat(64), zeros(5_000));
    let mut event = parse(InputFormat::Json, line.as_bytes()).remove(0);
    assert_eq!(event.format, Format::Json);
    let record = stored(&mut event);
    assert_eq!(event.format, Format::Unknown);
    assert_eq!(event.raw.as_deref(), Some(line.as_str()));
    assert!(event.fields.is_empty());
    let error = event.parse_error.as_ref().unwrap();
    assert_eq!(error.format, "json");
    assert!(error.message.contains("field paths"), "{}", error.message);
    assert_eq!(
        record::decode(&record).unwrap(),
        event,
        "the record is the flagged event"
    );

    // How the record arrived stays: a record its stream cut short keeps its flags.
    let mut decoder = Decoder::new(InputFormat::Json, context());
    let mut cut = Vec::new();
    decoder.decode_cut(line.as_bytes(), 7, &mut cut);
    stored(&mut cut[0]);
    assert_eq!(cut[0].format, Format::Unknown);
    assert_eq!(
        cut[0].fields.get("frame_missing_bytes"),
        Some(&serde_json::json!(7))
    );
    assert_eq!(cut[0].fields.len(), 2, "{:?}", cut[0].fields);

    // The same values under a short key are fine.
    let short = format!(r#"{{"k":[{}]}}"#, zeros(5_000));
    let mut event = parse(InputFormat::Json, short.as_bytes()).remove(0);
    stored(&mut event);
    assert_eq!(event.format, Format::Json);

    // In a stream of documents (a JSON array), only the element past its ceiling is flagged.
    let stream = format!(r#"[{line},{{"user":"an"}}]"#);
    let mut events = parse(InputFormat::Json, stream.as_bytes());
    events.iter_mut().for_each(|event| {
        stored(event);
    });
    let formats: Vec<Format> = events.iter().map(|event| event.format).collect();
    assert_eq!(formats, [Format::Unknown, Format::Json]);
    assert_eq!(events[0].raw.as_deref(), Some(line.as_str()));
}

/// RFC 5424 structured data repeats its SD-ID (at most 32 characters) in every parameter's
/// path: at its densest (one-letter names repeated, empty values) it stays within the ceiling.
#[test]
fn structured_data_at_its_densest() {
    let id = format!("{}@32473", "x".repeat(26));
    let fullest = fullest_batch(InputFormat::Rfc5424, |index| {
        format!(
            "<13>1 2026-11-22T08:00:00Z host app {index} - [{id} {}] hello",
            vec![r#"a="""#; 2_000].join(" ")
        )
        .into_bytes()
    });
    assert_eq!(fullest.flagged, 0);
}

/// A parser that copies a value to several fields (a Windows 4688 event's process name goes to
/// `Image` and the process fields too) can make many values of few bytes: past 2 values for
/// every 5 bytes of record, the event is kept raw.
#[test]
fn the_same_bytes_parsed_into_too_many_values_are_kept_raw() {
    let document = format!(
        r#"{{"EventID":4688,"Channel":"Security","NewProcessName":[{}]}}"#,
        zeros(100_000)
    );
    let mut event = parse(InputFormat::Json, document.as_bytes()).remove(0);
    assert_eq!(event.format, Format::Winevent);
    let record = stored(&mut event);
    assert_eq!(event.format, Format::Unknown);
    let message = event
        .parse_error
        .as_ref()
        .map(|error| error.message.clone())
        .unwrap();
    assert!(message.contains("values and keys"), "{message}");
    assert_eq!(record::decode(&record).unwrap(), event);
}

/// Bytes no compression shrinks much (xorshift), and text of the same kind.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn noisy_text(len: usize, seed: u64) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    noise(len, seed)
        .into_iter()
        .map(|byte| char::from(LETTERS[usize::from(byte) % LETTERS.len()]))
        .collect()
}

/// One event alone in a batch: its body within the server's limit, and read back whole.
fn alone_in_a_batch(event: &mut Event) {
    let encoded = stored(event);
    let body = protocol::encode_records([encoded.as_slice()]).unwrap();
    assert!(
        body.len() <= MAX_BODY_BYTES,
        "a record of {} bytes makes a body of {} bytes",
        encoded.len(),
        body.len()
    );
    assert_eq!(protocol::decode_batch(&body).unwrap().len(), 1);
}

/// Stores `event` alone in a batch (see [`alone_in_a_batch`]) and says why it was kept raw.
fn kept_raw_alone(event: &mut Event) -> String {
    alone_in_a_batch(event);
    assert_eq!(event.format, Format::Unknown);
    event
        .parse_error
        .as_ref()
        .map(|error| error.message.clone())
        .unwrap()
}

/// The largest frame a source may take (`framing::MAX_MAX_FRAME`), of the least compressible
/// kinds, goes alone in a batch the server accepts.
#[test]
fn the_largest_frames_fit_a_batch_alone() {
    let max = citysoc_collector::framing::MAX_MAX_FRAME;
    // Bytes that are not UTF-8: kept as base64.
    let mut binary = parse(InputFormat::Auto, &noise(max, 7)).remove(0);
    assert!(binary.raw_base64.is_some());
    alone_in_a_batch(&mut binary);
    // key=value text: the values parsed, so the record holds the text about twice.
    let mut line = String::with_capacity(max);
    let values = noisy_text(max, 11);
    let mut pair = 0;
    while line.len() + 40 < max {
        let start = pair * 24 % (max - 32);
        line.push_str(&format!("k{pair}={} ", &values[start..start + 24]));
        pair += 1;
    }
    let mut kv = parse(InputFormat::Kv, line.as_bytes()).remove(0);
    assert_eq!(kv.format, Format::Kv);
    alone_in_a_batch(&mut kv);
    assert_eq!(
        kv.format,
        Format::Kv,
        "its values kept: {:?}",
        kv.parse_error
    );
    // A JSON document of long random strings.
    let document = format!(r#"{{"a":"{}"}}"#, noisy_text(max - 10, 13));
    let mut json = parse(InputFormat::Json, document.as_bytes()).remove(0);
    assert_eq!(json.format, Format::Json);
    alone_in_a_batch(&mut json);
    // A Windows 4688 event whose process name is the whole frame: the name is in `raw`, its
    // field, `Image` and the two process fields, a record of ~20 MiB that compression cannot
    // bring under the body limit (its copies are further apart than zstd's window). Kept raw.
    let document = format!(
        r#"{{"EventID":4688,"Channel":"Security","NewProcessName":"{}"}}"#,
        noisy_text(max - 64, 17)
    );
    let mut windows = parse(InputFormat::Json, document.as_bytes()).remove(0);
    assert_eq!(windows.format, Format::Winevent);
    let message = kept_raw_alone(&mut windows);
    assert!(message.contains("its record would take"), "{message}");
}

/// A record larger than `batch_max_bytes` goes alone in its batch: its values must fit half
/// the batch's allowance.
#[test]
fn an_event_with_more_values_than_half_a_batch_is_kept_raw() {
    let document = format!(r#"{{"a":[{}]}}"#, zeros(record::MAX_EVENT_VALUES + 10));
    let mut event = parse(InputFormat::Json, document.as_bytes()).remove(0);
    assert_eq!(event.format, Format::Json);
    let message = kept_raw_alone(&mut event);
    assert!(message.contains("2000000 one event may carry"), "{message}");
}
