#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::fields::Key;
use crate::parse::{parse_record, InputFormat, ParseContext};
use proptest::prelude::*;

fn context() -> ParseContext {
    ParseContext {
        timezone: chrono_tz::Asia::Ho_Chi_Minh,
        received_at: DateTime::from_timestamp(1_790_000_000, 123_456_789).unwrap(),
        agency: Some("quan-1".into()),
        collector: Some("col-7".into()),
        source: EventSource {
            transport: "tcp".into(),
            address: Some("10.1.2.3:5514".into()),
            sequence: Some(42),
        },
    }
}

/// One line of every shape the parsers know, plus bad ones.
const LINES: &[&[u8]] = &[
    b"<86>1 2024-05-14T09:58:30.679954Z web-20 sudo 34167 SUDO [meta sequenceId=\"711166\"][origin ip=\"10.15.238.195\"] pam_unix(sudo:session): session opened for user root",
    b"<84>May 14 09:58:30 web-24 sshd[3445]: Accepted publickey for bob from 10.10.48.4 port 2407 ssh2",
    b"<4>May 14 09:58:30 fw kernel: [123.4] DROP IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP SPT=1 DPT=22",
    b"CEF:0|Vendor|Product|1.0|100|Th\xe1\xbb\xa7 \xc4\x90\xe1\xbb\xa9c login|5|src=10.0.0.1 suser=admin msg=a\\=b",
    b"{\"EventID\": 4688, \"Channel\": \"Security\", \"NewProcessName\": \"C:\\\\x.exe\", \"nested\": {\"a\": [1, 2.5, null, true]}}",
    b"10.0.0.1 - - [14/May/2024:09:58:30 +0700] \"GET /portal?id=1' OR 1=1 HTTP/1.1\" 500 12 \"-\" \"curl/8\"",
    b"\xff\xfe not utf-8 at all \x80",
    b"",
    b"<999>garbage",
];

fn events() -> Vec<Event> {
    let mut events = Vec::new();
    for line in LINES {
        for format in [InputFormat::Auto, InputFormat::Rfc5424, InputFormat::Json] {
            events.push(parse_record(line, format, &context(), 7));
        }
    }
    events
}

#[test]
fn format_codes_follow_the_format_table() {
    for (code, format) in FORMATS.iter().enumerate() {
        assert_eq!(usize::from(format_code(*format)), code, "{format}");
    }
}

#[test]
fn message_is_the_first_core_field() {
    assert_eq!(CoreFields::NAMES[MESSAGE_INDEX], "message");
}

#[test]
fn every_parsed_event_comes_back_equal_and_serializes_the_same() {
    for event in events() {
        let record = to_vec(&event).unwrap();
        assert!(is_record(&record));
        let back = decode(&record).unwrap_or_else(|error| panic!("{error}: {event:?}"));
        assert_eq!(back, event);
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&event).unwrap()
        );
        assert_eq!(to_json(&record).unwrap(), sonic_rs::to_vec(&event).unwrap());
    }
}

#[test]
fn records_are_much_smaller_than_json() {
    let line = LINES[1];
    let event = parse_record(line, InputFormat::Auto, &context(), 7);
    let record = to_vec(&event).unwrap();
    let json = serde_json::to_vec(&event).unwrap();
    assert!(
        record.len() * 10 < json.len() * 6,
        "record {} bytes, JSON {} bytes",
        record.len(),
        json.len()
    );
}

#[test]
fn a_message_not_inside_raw_is_stored_whole() {
    let mut event = parse_record(LINES[1], InputFormat::Auto, &context(), 7);
    event.core.message = Some("rewritten by the parser".into());
    let back = decode(&to_vec(&event).unwrap()).unwrap();
    assert_eq!(
        back.core.message.as_deref(),
        Some("rewritten by the parser")
    );
    // Inside raw but not at its end.
    event.core.message = Some("web-24".into());
    assert_eq!(decode(&to_vec(&event).unwrap()).unwrap(), event);
}

#[test]
fn json_records_of_older_collectors_still_read() {
    for event in events() {
        let json = serde_json::to_vec(&event).unwrap();
        assert!(!is_record(&json));
        assert_eq!(decode_any(&json).unwrap(), event);
        assert_eq!(to_json(&json).unwrap(), json);
    }
    assert!(decode_any(b"{\"id\": 5").is_err());
}

#[test]
fn every_truncation_is_an_error_and_damage_never_panics() {
    let event = parse_record(LINES[0], InputFormat::Auto, &context(), 7);
    let record = to_vec(&event).unwrap();
    for end in 0..record.len() {
        assert!(decode(&record[..end]).is_err(), "cut at {end} read");
    }
    // A flipped bit may still read as some event (the buffer's frames and the batch's
    // signature are what catch damage); it must never panic.
    for index in 0..record.len() {
        for bit in 0..8 {
            let mut damaged = record.clone();
            damaged[index] ^= 1 << bit;
            let _ = decode(&damaged);
        }
    }
}

/// The required parts only.
fn minimal_record() -> Vec<u8> {
    let mut record = vec![RECORD_MARK];
    put_text(&mut record, TAG_ID, "x");
    record.push(TAG_FORMAT);
    record.push(0);
    put_text(&mut record, TAG_TRANSPORT, "tcp");
    put_time(&mut record, TAG_TIMESTAMP, &DateTime::UNIX_EPOCH);
    put_time(&mut record, TAG_RECEIVED_AT, &DateTime::UNIX_EPOCH);
    record.push(TAG_END);
    record
}

#[test]
fn a_minimal_record_reads_and_a_cut_one_does_not() {
    let event = decode(&minimal_record()).unwrap();
    assert_eq!(event.id, "x");
    assert_eq!(event.format, Format::Rfc3164);
    let record = minimal_record();
    for end in 0..record.len() {
        assert!(decode(&record[..end]).is_err(), "cut at {end} read");
    }
    let mut trailing = record.clone();
    trailing.push(TAG_ID);
    assert!(decode(&trailing)
        .unwrap_err()
        .to_string()
        .contains("after the end"));
}

#[test]
fn malformed_records_name_the_problem() {
    let mut event = parse_record(LINES[1], InputFormat::Auto, &context(), 7);
    // A text id, so that the record's first part is text that a cut runs through.
    event.id = "ev-000001".into();
    let record = to_vec(&event).unwrap();
    let message = |bytes: &[u8]| decode(bytes).unwrap_err().to_string();
    assert!(
        message(&record[..3]).contains("runs past the end"),
        "{}",
        message(&record[..3])
    );
    assert!(message(&[RECORD_MARK, TAG_END]).contains("no id"));
    assert!(message(&[RECORD_MARK]).contains("truncated"));
    assert!(message(b"{}").contains("record mark"));
    let mut twice = record[..record.len() - 1].to_vec();
    twice.extend_from_slice(&[TAG_SEQUENCE, 1, TAG_END]);
    assert!(
        message(&twice).contains("appears twice"),
        "{}",
        message(&twice)
    );
    let mut unknown = record[..record.len() - 1].to_vec();
    unknown.extend_from_slice(&[40, 0, TAG_END]);
    assert!(
        message(&unknown).contains("newer version"),
        "{}",
        message(&unknown)
    );
    let mut bad_port = minimal_record();
    bad_port.pop();
    // source.port is a u16: 70,000 does not fit.
    let port = CoreFields::NAMES
        .iter()
        .position(|name| *name == "source.port")
        .unwrap();
    bad_port.push(CORE_NUMBER + port as u8);
    put_varint(&mut bad_port, 70_000);
    bad_port.push(TAG_END);
    assert!(
        message(&bad_port).contains("source.port"),
        "{}",
        message(&bad_port)
    );
    let mut outside = minimal_record();
    outside.pop();
    put_text(&mut outside, TAG_RAW, "short");
    outside.push(TAG_MESSAGE_IN_RAW);
    put_varint(&mut outside, 3);
    put_varint(&mut outside, 10);
    outside.push(TAG_END);
    assert!(
        message(&outside).contains("outside the raw text"),
        "{}",
        message(&outside)
    );
    let mut long_number = vec![RECORD_MARK, TAG_SEQUENCE];
    long_number.extend_from_slice(&[0xff; 11]);
    assert!(
        message(&long_number).contains("too long"),
        "{}",
        message(&long_number)
    );
}

#[test]
fn times_round_trip_across_their_range() {
    let mut event = parse_record(LINES[1], InputFormat::Auto, &context(), 7);
    for (seconds, nanos) in [
        (0, 0),
        (-1, 999_999_999),
        (-62_135_596_800, 0),
        (253_402_300_799, 999_999_999),
        (1_483_228_799, 1_500_000_000),
    ] {
        let Some(time) = DateTime::from_timestamp(seconds, nanos) else {
            continue;
        };
        event.timestamp = time;
        assert_eq!(decode(&to_vec(&event).unwrap()).unwrap().timestamp, time);
    }
}

/// A record whose times lie outside years 1–9999 (written before parsers held them there, or
/// by anything else): the event time becomes the receive time with the time kept, as
/// `parse_record` does; a receive time outside them is refused.
#[test]
fn times_beyond_the_event_years_are_held_to_them() {
    let mut event = parse_record(LINES[1], InputFormat::Auto, &context(), 7);
    let far = DateTime::from_timestamp(8_000_000_000_000, 0).unwrap();
    event.timestamp = far;
    let decoded = decode(&to_vec(&event).unwrap()).unwrap();
    assert_eq!(decoded.timestamp, event.received_at);
    assert_eq!(
        decoded.fields.get(crate::parse::TIME_OUT_OF_RANGE_FIELD),
        Some(&serde_json::Value::from(far.to_rfc3339()))
    );
    // The same in JSON (chrono reads signed years of six digits).
    let json = serde_json::to_vec(&event).unwrap();
    assert!(String::from_utf8_lossy(&json).contains("+255479"));
    let decoded = decode_any(&json).unwrap();
    assert_eq!(decoded.timestamp, event.received_at);
    assert!(decoded
        .fields
        .get(crate::parse::TIME_OUT_OF_RANGE_FIELD)
        .is_some());
    event.received_at = far;
    let error = decode(&to_vec(&event).unwrap()).unwrap_err().to_string();
    assert!(error.contains("received_at"), "{error}");
    let error = decode_any(&serde_json::to_vec(&event).unwrap())
        .unwrap_err()
        .to_string();
    assert!(error.contains("received_at"), "{error}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut marked = vec![RECORD_MARK];
        marked.extend_from_slice(&bytes);
        let _ = decode(&marked);
        let _ = decode_any(&bytes);
    }

    #[test]
    fn any_line_round_trips(line in proptest::collection::vec(any::<u8>(), 0..300), format in 0usize..3) {
        let format = [InputFormat::Auto, InputFormat::Rfc3164, InputFormat::Kv][format];
        let event = parse_record(&line, format, &context(), 7);
        let back = decode(&to_vec(&event).unwrap()).unwrap();
        prop_assert_eq!(back, event);
    }

    #[test]
    fn any_strings_round_trip(
        id in ".*", agency in proptest::option::of(".*"), address in proptest::option::of(".*"),
        raw in proptest::option::of(".*"), message in proptest::option::of(".*"),
        user in proptest::option::of(".*"), port in proptest::option::of(any::<u16>()),
        pid in proptest::option::of(any::<u32>()), sequence in proptest::option::of(any::<u64>()),
        key in ".*", value in ".*",
    ) {
        let mut event = parse_record(b"x", InputFormat::Auto, &context(), 7);
        event.id = id;
        event.agency = agency.map(Into::into);
        event.source.address = address.map(Into::into);
        event.source.sequence = sequence;
        event.raw = raw;
        event.core.message = message;
        event.core.user_name = user.map(Into::into);
        event.core.source_port = port;
        event.core.process_pid = pid;
        event.fields.insert(key.into(), serde_json::Value::String(value));
        let back = decode(&to_vec(&event).unwrap()).unwrap();
        prop_assert_eq!(back, event);
    }
}

// ---- binary `fields` ----

/// The part tag `fields` went in as: binary, JSON text, or none.
fn fields_tag(event: &Event) -> Option<u8> {
    // A text id, which both layouts write the same, so they differ only from `fields` on.
    let mut event = event.clone();
    event.id = "not 32 hex digits".into();
    let binary = to_vec(&event).unwrap();
    let mut legacy = Vec::new();
    encode_legacy(&event, &mut legacy).unwrap();
    if event.fields.is_empty() {
        assert_eq!(binary, legacy);
        return None;
    }
    if binary == legacy {
        return Some(TAG_FIELDS);
    }
    // Both encodings agree up to where `fields` starts.
    let at = binary
        .iter()
        .zip(&legacy)
        .position(|(left, right)| left != right)
        .unwrap();
    Some(binary[at])
}

/// Keys, values and number kinds in order, recursively: what `==` on `Fields` and on
/// `serde_json::Map` (both ignore order) does not check.
fn assert_same_order(left: &Fields, right: &Fields) {
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        right.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        serde_json::to_string(left).unwrap(),
        serde_json::to_string(right).unwrap()
    );
}

#[test]
fn parsed_events_write_binary_fields_and_legacy_records_still_read() {
    for event in events() {
        if event.fields.is_empty() {
            continue;
        }
        assert_eq!(fields_tag(&event), Some(TAG_FIELDS_BINARY), "{event:?}");
        let mut legacy = Vec::new();
        encode_legacy(&event, &mut legacy).unwrap();
        let back = decode(&legacy).unwrap();
        assert_eq!(back, event);
        assert_same_order(&back.fields, &event.fields);
        assert_eq!(to_json(&legacy).unwrap(), sonic_rs::to_vec(&event).unwrap());
        let back = decode(&to_vec(&event).unwrap()).unwrap();
        assert_same_order(&back.fields, &event.fields);
        // Binary fields are smaller than their JSON text.
        assert!(to_vec(&event).unwrap().len() < legacy.len());
    }
}

#[test]
fn number_kinds_survive() {
    let mut event = parse_record(b"x", InputFormat::Auto, &context(), 7);
    let values = [
        serde_json::json!(0),
        serde_json::json!(1),
        serde_json::json!(63),
        serde_json::json!(64),
        serde_json::json!(u64::MAX),
        serde_json::json!(-1),
        serde_json::json!(i64::MIN),
        serde_json::json!(1.0),
        serde_json::json!(-0.0),
        serde_json::json!(0.1),
        serde_json::json!(f64::MAX),
        serde_json::json!(f64::MIN_POSITIVE),
        serde_json::json!([1, -1, 1.5, null, true, false, "", {"SRC": 2, "x": [[]]}]),
    ];
    for (index, value) in values.iter().enumerate() {
        event
            .fields
            .insert(format!("k{index}").into(), value.clone());
    }
    let back = decode(&to_vec(&event).unwrap()).unwrap();
    assert_eq!(back, event);
    assert_same_order(&back.fields, &event.fields);
    for (index, value) in values.iter().enumerate() {
        let kind = |value: &serde_json::Value| {
            value
                .as_number()
                .map(|number| (number.is_u64(), number.is_i64(), number.is_f64()))
        };
        let got = &back.fields[&format!("k{index}")];
        assert_eq!(kind(got), kind(value), "{value}");
    }
}

#[test]
fn common_names_are_codes_and_other_names_are_text() {
    let mut event = parse_record(LINES[2], InputFormat::Auto, &context(), 7);
    assert!(event.fields.contains_key("SRC"));
    let with_codes = to_vec(&event).unwrap().len();
    // The same fields under names outside the table: each costs its length in text.
    let renamed: Fields = event
        .fields
        .iter()
        .map(|(key, value)| (format!("{key}_"), value.clone()))
        .collect();
    let extra: usize = renamed.keys().map(str::len).sum();
    event.fields = renamed;
    let with_text = to_vec(&event).unwrap().len();
    assert!(
        with_text >= with_codes + extra,
        "{with_text} {with_codes} {extra}"
    );
    assert_eq!(decode(&to_vec(&event).unwrap()).unwrap(), event);
}

/// `depth` arrays, one inside the other, around `null`.
fn nested(depth: usize) -> serde_json::Value {
    let mut value = serde_json::Value::Null;
    for _ in 0..depth {
        value = serde_json::Value::Array(vec![value]);
    }
    value
}

/// `fields` as deep as a stored event can be read back at are written in binary and read back;
/// deeper, no record holds them: this collector refuses to write one (the event is counted as
/// not encoded), and the server refuses one an older collector wrote as JSON.
#[test]
fn nesting_up_to_the_limit_is_binary_and_deeper_is_refused() {
    assert_eq!(binary_fields::MAX_DEPTH, crate::fields::MAX_DEPTH);
    let mut event = parse_record(b"x", InputFormat::Auto, &context(), 7);
    event
        .fields
        .insert("deep".into(), nested(crate::fields::MAX_DEPTH));
    assert_eq!(fields_tag(&event), Some(TAG_FIELDS_BINARY));
    assert_eq!(decode(&to_vec(&event).unwrap()).unwrap(), event);
    event
        .fields
        .insert("deep".into(), nested(crate::fields::MAX_DEPTH + 1));
    let error = to_vec(&event).unwrap_err().to_string();
    assert!(error.contains("nested deeper than"), "{error}");
    let mut legacy = Vec::new();
    encode_legacy(&event, &mut legacy).unwrap();
    let error = decode(&legacy).unwrap_err().to_string();
    assert!(error.contains("nested deeper than"), "{error}");
}

/// The required parts, then `fields` as `body` (after the tag), then the end.
fn record_with_fields(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut record = minimal_record();
    record.pop();
    record.push(tag);
    record.extend_from_slice(body);
    record.push(TAG_END);
    record
}

#[test]
fn damaged_binary_fields_name_the_problem() {
    let message = |body: &[u8]| {
        decode(&record_with_fields(TAG_FIELDS_BINARY, body))
            .unwrap_err()
            .to_string()
    };
    let fine = record_with_fields(TAG_FIELDS_BINARY, &[1, 0, 0x45]);
    assert_eq!(decode(&fine).unwrap().fields["syslog.priority"], 5);
    // A forged count: refused before anything is allocated for it.
    let mut huge = Vec::new();
    put_varint(&mut huge, u64::MAX);
    for body in [&huge[..], &[100, 0, 0][..]] {
        assert!(
            message(body).contains("larger than the record"),
            "{}",
            message(body)
        );
    }
    let mut huge_array = vec![1, 0, 7];
    put_varint(&mut huge_array, 1 << 40);
    assert!(message(&huge_array).contains("larger than the record"));
    // Nesting past the limit.
    let mut deep = vec![1, 0];
    for _ in 0..=binary_fields::MAX_DEPTH {
        deep.extend_from_slice(&[7, 1]);
    }
    deep.push(0);
    assert!(message(&deep).contains("deeper"), "{}", message(&deep));
    assert!(message(&[1, 0, 9]).contains("unknown value tag"));
    assert!(message(&[1, 0, 0x3f]).contains("unknown value tag"));
    let mut unknown_key = vec![1];
    put_varint(&mut unknown_key, 5000 << 1);
    unknown_key.push(0);
    assert!(message(&unknown_key).contains("unknown field name code"));
    assert!(message(&[1, 3, 0xff, 0]).contains("not UTF-8"));
    assert!(message(&[1, 0, 0x82, b'a', 0xff]).contains("not UTF-8"));
    let mut infinite = vec![1, 0, 5];
    infinite.extend_from_slice(&f64::INFINITY.to_le_bytes());
    assert!(message(&infinite).contains("not finite"));
    let mut negative = vec![1, 0, 4];
    put_varint(&mut negative, u64::MAX);
    assert!(message(&negative).contains("out of range"));
    // Both forms of `fields` in one record.
    let mut twice = record_with_fields(TAG_FIELDS_BINARY, &[1, 0, 0]);
    twice.pop();
    twice.push(TAG_FIELDS);
    put_str(&mut twice, "{}");
    twice.push(TAG_END);
    let error = decode(&twice).unwrap_err().to_string();
    assert!(error.contains("fields given twice"), "{error}");
}

#[test]
fn damage_to_binary_fields_never_panics() {
    for line in [LINES[2], LINES[4], LINES[0]] {
        let event = parse_record(line, InputFormat::Auto, &context(), 7);
        let record = to_vec(&event).unwrap();
        for end in 0..record.len() {
            assert!(decode(&record[..end]).is_err(), "cut at {end} read");
        }
        for index in 0..record.len() {
            for flip in [0x01, 0x02, 0x40, 0x80, 0xff] {
                let mut damaged = record.clone();
                damaged[index] ^= flip;
                let _ = decode(&damaged);
                let _ = to_json(&damaged);
            }
        }
    }
}

fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..keys::KEYS.len()).prop_map(|code| keys::KEYS[code].to_owned()),
        ".{0,70}",
    ]
}

fn any_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0u64..80).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |float| {
            serde_json::Number::from_f64(float).map(Value::Number)
        }),
        (-1e6f64..1e6).prop_map(|float| serde_json::json!(float.trunc())),
        ".{0,10}".prop_map(Value::String),
        ".{120,140}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((any_key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn any_fields() -> impl Strategy<Value = Fields> {
    proptest::collection::vec((any_key(), any_value()), 0..10).prop_map(|entries| {
        entries
            .into_iter()
            .map(|(key, value)| (Key::from(key), value))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_fields_round_trip_exactly(fields in any_fields()) {
        let mut event = parse_record(b"<4>May 14 09:58:30 fw kernel: SRC=1.2.3.4", InputFormat::Auto, &context(), 7);
        event.fields = fields;
        let record = to_vec(&event).unwrap();
        let back = decode(&record).unwrap();
        prop_assert_eq!(&back, &event);
        assert_same_order(&back.fields, &event.fields);
        prop_assert_eq!(to_json(&record).unwrap(), sonic_rs::to_vec(&event).unwrap());
        if !event.fields.is_empty() {
            prop_assert_eq!(fields_tag(&event), Some(TAG_FIELDS_BINARY));
        }
    }

    /// An id is stored as its 16 bytes exactly when it is 32 lower-case hex digits: then it
    /// reads back as that value; anything else (upper case, other letters, other lengths)
    /// stays text.
    #[test]
    fn ids_are_values_exactly_when_they_are_lower_case_hex(
        value in any::<u128>(),
        id in "[0-9a-fA-Fg-z:-]{30,33}|[0-9a-f]{32}",
    ) {
        prop_assert_eq!(hex128_value(&crate::parse::hex128(value)), Some(value));
        let reference = (id.len() == 32
            && id.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)))
        .then(|| u128::from_str_radix(&id, 16).ok())
        .flatten();
        prop_assert_eq!(hex128_value(&id), reference);
    }

    /// Text values take a shortcut when encoded (one two-byte header for a one-byte name code
    /// and a short string): their bytes are exactly those of the same values held as JSON.
    #[test]
    fn text_values_encode_as_the_same_json_strings_do(
        entries in proptest::collection::vec((any_key(), ".{0,10}|.{120,140}|[a-z]{126,129}"), 0..12),
    ) {
        let base = parse_record(b"<4>May 14 09:58:30 fw kernel: x", InputFormat::Auto, &context(), 7);
        let (mut as_text, mut as_json) = (base.clone(), base);
        for (key, value) in entries {
            as_text.fields.insert_text(Key::from(key.clone()), &value);
            as_json.fields.insert(Key::from(key), serde_json::Value::String(value));
        }
        let record = to_vec(&as_text).unwrap();
        prop_assert_eq!(&record, &to_vec(&as_json).unwrap());
        prop_assert_eq!(decode(&record).unwrap(), as_json);
    }

    #[test]
    fn cut_or_damaged_fields_never_panic(fields in any_fields(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bits in 1u8..=255) {
        let mut event = parse_record(b"x", InputFormat::Auto, &context(), 7);
        event.fields = fields;
        let record = to_vec(&event).unwrap();
        let end = cut.index(record.len());
        prop_assert!(decode(&record[..end]).is_err());
        let mut damaged = record.clone();
        damaged[flip.index(record.len())] ^= bits;
        let _ = decode(&damaged);
    }
}

/// Older servers say this of records they cannot read (the text is theirs, so it cannot
/// change); the collector recognises it to tell the admin to upgrade the server first.
#[test]
fn refusals_of_newer_records_are_recognised() {
    // What a server from before binary fields and 16-byte ids answers.
    let old_server = "record 1: unknown (written by a newer version?) part 19 at byte 1";
    assert!(is_newer_version_refusal(old_server));
    let mut unknown = minimal_record();
    unknown.pop();
    unknown.extend_from_slice(&[40, 0, TAG_END]);
    let mut unknown_key = vec![1];
    put_varint(&mut unknown_key, 5000 << 1);
    unknown_key.push(0);
    for record in [
        unknown,
        record_with_fields(TAG_FIELDS_BINARY, &unknown_key),
        record_with_fields(TAG_FIELDS_BINARY, &[1, 0, 9]),
    ] {
        let message = decode(&record).unwrap_err().to_string();
        assert!(is_newer_version_refusal(&message), "{message}");
    }
    assert!(!is_newer_version_refusal("line 2: not an event"));
}

// ---- the id as 16 bytes ----

#[test]
fn parsed_ids_are_written_as_16_bytes_and_other_ids_as_text() {
    let mut event = parse_record(LINES[1], InputFormat::Auto, &context(), 7);
    assert_eq!(event.id.len(), 32);
    let record = to_vec(&event).unwrap();
    assert_eq!(record[1], TAG_ID_HEX128);
    assert_eq!(decode(&record).unwrap(), event);
    for id in [
        "0123456789ABCDEF0123456789abcdef", // upper case: would not come back the same
        "+123456789abcdef0123456789abcdef", // from_str_radix would take the sign
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "",
        "ev-000001",
        "éééééééééééééééé",                 // 32 bytes, not digits
        "0123456789abcdef0123456789abcdeg", // one letter past f
    ] {
        event.id = id.to_owned();
        let record = to_vec(&event).unwrap();
        assert_eq!(record[1], TAG_ID, "{id}");
        assert_eq!(decode(&record).unwrap().id, id);
    }
    for id in [
        "00000000000000000000000000000000",
        "ffffffffffffffffffffffffffffffff",
        "0000000000000000000000000000000a",
    ] {
        event.id = id.to_owned();
        assert_eq!(to_vec(&event).unwrap()[1], TAG_ID_HEX128);
        assert_eq!(decode(&to_vec(&event).unwrap()).unwrap().id, id);
    }
    // Both forms in one record.
    let mut twice = minimal_record();
    twice.pop();
    twice.push(TAG_ID_HEX128);
    twice.extend_from_slice(&[0; 16]);
    twice.push(TAG_END);
    let error = decode(&twice).unwrap_err().to_string();
    assert!(error.contains("id given twice"), "{error}");
    let mut cut = minimal_record();
    cut.pop();
    cut.push(TAG_ID_HEX128);
    cut.extend_from_slice(&[0; 7]);
    assert!(decode(&cut).is_err());
}

proptest! {
    #[test]
    fn any_id_round_trips(id in "[0-9a-fA-F+-]{30,34}|.*", value in any::<u128>()) {
        let mut event = parse_record(b"x", InputFormat::Auto, &context(), 7);
        event.id = id;
        prop_assert_eq!(decode(&to_vec(&event).unwrap()).unwrap(), event.clone());
        event.id = format!("{value:032x}");
        prop_assert_eq!(decode(&to_vec(&event).unwrap()).unwrap(), event);
    }
}

/// A records batch of parsed events (binary `fields`, 16-byte ids) through the functions the
/// server's intake calls.
#[test]
fn batches_of_new_records_decode_as_the_server_reads_them() {
    let events = events();
    let body = crate::protocol::encode_events_compact(&events).unwrap();
    let back = crate::protocol::decode_batch(&body).unwrap();
    assert_eq!(back, events);
}

/// Nested arrays that each claim the rest of a large record: refused or read without
/// reserving depth × count items (this would ask for gigabytes if counts were trusted).
#[test]
fn nested_forged_counts_reserve_little() {
    let padding = 1 << 20;
    let mut body = vec![1, 0];
    for _ in 0..100 {
        body.push(7);
        put_varint(&mut body, padding);
    }
    body.extend(std::iter::repeat_n(0u8, padding as usize));
    let message = decode(&record_with_fields(TAG_FIELDS_BINARY, &body))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("truncated") || message.contains("end"),
        "{message}"
    );
}
