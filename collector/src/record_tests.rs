#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
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
    let event = parse_record(LINES[1], InputFormat::Auto, &context(), 7);
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
        event.core.user_name = user;
        event.core.source_port = port;
        event.core.process_pid = pid;
        event.fields.insert(key.into(), serde_json::Value::String(value));
        let back = decode(&to_vec(&event).unwrap()).unwrap();
        prop_assert_eq!(back, event);
    }
}
