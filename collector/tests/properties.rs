//! Property tests for the two promises of the collector: no input makes a parser panic or lose
//! the record's bytes, and framing never loses or merges records.

use citysoc_collector::framing::{split_all, FrameKind, Framer, Framing};
use citysoc_collector::{parse_record, Decoder, Format, InputFormat, ParseContext};
use proptest::prelude::*;

const ALL_FORMATS: &[InputFormat] = &[
    InputFormat::Auto,
    InputFormat::Rfc3164,
    InputFormat::Rfc5424,
    InputFormat::Cef,
    InputFormat::Leef,
    InputFormat::Kv,
    InputFormat::Json,
    InputFormat::Winevent,
    InputFormat::Auditd,
    InputFormat::Access,
    InputFormat::Evtx,
];

/// Bytes that look like log records often enough to reach deep into the parsers: a real
/// prefix from each format followed by arbitrary bytes, or arbitrary bytes alone.
fn record_bytes() -> impl Strategy<Value = Vec<u8>> {
    let prefixes = prop::sample::select(vec![
        "",
        "<34>",
        "<34>1 ",
        "<165>1 2003-10-11T22:14:15.003Z host app - ID47 [id a=\"",
        "<13>Feb  5 17:32:18 host sshd[12]: ",
        "Feb  5 17:32:18 ",
        "CEF:0|Vendor|Prod|1.0|100|name|5|",
        "LEEF:2.0|V|P|1|E|^|",
        "LEEF:1.0|V|P|1|E|",
        "type=SYSCALL msg=audit(1170021493.977:293): ",
        "{\"EventID\": 1, \"Channel\": \"",
        "{\"a\":",
        "[",
        "date=2019-05-10 time=11:37:47 devid=\"",
        "127.0.0.1 - - [28/Dec/2019:16:49:07 +0000] \"GET ",
        "<134>filterlog: 5,,,1000,em0,match,block,in,4,",
    ]);
    (prefixes, prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(prefix, tail)| {
        let mut bytes = prefix.as_bytes().to_vec();
        bytes.extend(tail);
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_parser_returns_and_keeps_the_exact_bytes(bytes in record_bytes()) {
        let context = ParseContext::new("test");
        for input_format in ALL_FORMATS {
            let event = parse_record(&bytes, *input_format, &context, 7);
            let raw = event.raw_bytes();
            prop_assert_eq!(raw.as_ref(), bytes.as_slice());
            if event.format == Format::Unknown {
                prop_assert!(event.parse_error.is_some(), "unknown without a reason");
            } else {
                prop_assert!(event.parse_error.is_none());
            }
            // The event must serialize and come back equal (what the forwarder relies on).
            let json = serde_json::to_string(&event).unwrap_or_default();
            let back: citysoc_collector::Event = serde_json::from_str(&json).unwrap_or_else(|error| panic!("{error}: {json}"));
            prop_assert_eq!(back, event);
        }
    }

    /// Device times at any year chrono reads (its `%Y` takes a sign and any number of digits;
    /// epoch numbers go further), in every format that carries one, in zones east and west of
    /// UTC: no panic (there were, at chrono's ends), and the event's time stays within the
    /// years an event takes, refused by the parsers themselves (the last-resort guard in
    /// `parse_record` never has to step in).
    #[test]
    fn device_times_at_any_year(
        year in prop_oneof![-262_143i32..=262_142, -2i32..=2, 9_998i32..=10_001],
        millis in prop_oneof![any::<i64>(), -62_135_596_800_000i64..=-62_135_596_790_000],
        west in any::<bool>(),
    ) {
        let mut context = ParseContext::new("test");
        context.timezone = if west { chrono_tz::America::New_York } else { chrono_tz::Asia::Ho_Chi_Minh };
        let lines = [
            format!("date={year:04}-01-01 time=00:00:00 devname=fw logid=1"),
            format!("date={year:04}-12-31 time=23:59:59 tz=\"-0800\" devname=fw"),
            format!("CEF:0|V|P|1|1|n|5|rt=01/01/{year:04} 12:00:00 AM"),
            format!("CEF:0|V|P|1|1|n|5|rt={millis}"),
            format!("CEF:0|V|P|1|1|n|5|rt=Jan 01 {year:04} 00:00:00 +0700"),
            format!("LEEF:2.0|V|P|1|E|^|devTime={year:04}-01-01 00:00:00^devTimeFormat=yyyy-MM-dd HH:mm:ss"),
            format!("LEEF:2.0|V|P|1|E|^|devTime={year:04}-01-01 00:00:00 +0700^devTimeFormat=yyyy-MM-dd HH:mm:ss Z"),
            format!("{{\"@timestamp\":{millis},\"message\":\"x\"}}"),
            format!("{{\"@timestamp\":\"{year:04}-01-01T00:00:00+07:00\",\"message\":\"x\"}}"),
            format!("{{\"EventID\":1102,\"Channel\":\"Security\",\"Computer\":\"dc1\",\"@timestamp\":{millis}}}"),
            format!("<13>1 {year:04}-01-01T00:00:00+00:01 h a - - - x"),
            format!("<13>Jan  1 {year:04} 00:00:00 host app: x"),
            format!("127.0.0.1 - - [01/Jan/{year:04}:00:00:00 +0700] \"GET / HTTP/1.1\" 200 1"),
            format!("type=SYSCALL msg=audit({millis}.123:7): arch=c000003e syscall=59 success=yes"),
        ];
        for line in &lines {
            for input_format in ALL_FORMATS {
                let event = parse_record(line.as_bytes(), *input_format, &context, 1);
                prop_assert!(
                    citysoc_collector::timestamp::within_event_years(event.timestamp).is_some(),
                    "{:?} {}: {}", input_format, line, event.timestamp
                );
                prop_assert!(event.fields.get("timestamp_out_of_range").is_none(), "{:?} {}", input_format, line);
            }
            let mut decoder = Decoder::new(InputFormat::Auto, context.clone());
            let mut events = Vec::new();
            decoder.decode(line.as_bytes(), &mut events);
            decoder.finish(&mut events);
            prop_assert_eq!(decoder.stats().parser_failures, 0);
            for event in &events {
                prop_assert!(citysoc_collector::timestamp::within_event_years(event.timestamp).is_some(), "{}", line);
            }
        }
    }

    #[test]
    fn the_decoder_never_loses_a_record(lines in prop::collection::vec(record_bytes(), 1..20)) {
        // Every input record's bytes appear in the events' raw bytes, in order, for streaming
        // formats that group (auditd) or join (JSON) records too: concatenating the events' raw
        // bytes gives back the input. (A top-level JSON array becomes one event
        // per element, each with its own text, so array records are changed into non-arrays.)
        let context = ParseContext::new("test");
        for input_format in [InputFormat::Auto, InputFormat::Auditd, InputFormat::Json] {
            let records: Vec<Vec<u8>> = lines.iter().map(|line| without_array_start(line.iter().copied().filter(|byte| *byte != b'\n').collect())).collect();
            let mut decoder = Decoder::new(input_format, context.clone());
            let mut events = Vec::new();
            for record in &records {
                decoder.decode(record, &mut events);
            }
            decoder.finish(&mut events);
            // One record may become several events (documents one after another on a line, an
            // array); whitespace between them is not kept. Everything else is, in order.
            let not_space = |byte: &u8| !byte.is_ascii_whitespace();
            let emitted: Vec<u8> = events.iter().flat_map(|event| event.raw_bytes().into_owned()).filter(not_space).collect();
            let kept: Vec<u8> = records
                .iter()
                .filter(|record| !(input_format == InputFormat::Auto && record.iter().all(u8::is_ascii_whitespace)))
                .flat_map(|record| record.clone())
                .filter(not_space)
                .collect();
            prop_assert_eq!(emitted, kept, "format {:?}", input_format);
            prop_assert_eq!(decoder.stats().records, records.len() as u64);
            // The decoder keeps a record a parser panicked on; here no parser may.
            prop_assert_eq!(decoder.stats().parser_failures, 0);
        }
    }

    #[test]
    fn newline_framing_neither_loses_nor_merges(records in prop::collection::vec(prop::collection::vec(any::<u8>().prop_filter("no LF", |byte| *byte != b'\n'), 0..50), 1..30), crlf in any::<bool>(), max in 1usize..80) {
        let delimiter: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut stream = Vec::new();
        for record in &records {
            stream.extend_from_slice(record);
            stream.extend_from_slice(delimiter);
        }
        let frames = split_all(Framing::Newline, max, &stream);
        let rebuilt = reassemble(&frames);
        let expected: Vec<Vec<u8>> = records.iter().map(|record| if crlf { record.clone() } else { strip_cr(record) }).collect();
        prop_assert_eq!(rebuilt.len(), records.len());
        if !crlf {
            prop_assert_eq!(rebuilt, expected);
        } else {
            prop_assert_eq!(rebuilt, records);
        }
    }

    #[test]
    fn octet_counting_neither_loses_nor_merges(records in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..60), 1..30), max in 1usize..80, chunk in 1usize..40) {
        let mut stream = Vec::new();
        for record in &records {
            stream.extend_from_slice(format!("{} ", record.len()).as_bytes());
            stream.extend_from_slice(record);
        }
        // Feed the stream in small chunks, as a TCP connection delivers it.
        let mut framer = Framer::new(Framing::OctetCounting, max);
        let mut buffer = Vec::new();
        let mut frames = Vec::new();
        for piece in stream.chunks(chunk) {
            buffer.extend_from_slice(piece);
            while let Some(frame) = framer.next_frame(&buffer, false) {
                frames.push((frame.bytes.to_vec(), frame.kind));
                let used = frame.consumed;
                buffer.drain(..used);
            }
        }
        while let Some(frame) = framer.next_frame(&buffer, true) {
            frames.push((frame.bytes.to_vec(), frame.kind));
            let used = frame.consumed;
            buffer.drain(..used);
        }
        prop_assert_eq!(reassemble(&frames), records);
    }
}

/// Turns a record that opens a JSON array into one that does not (see the test's comment).
fn without_array_start(mut record: Vec<u8>) -> Vec<u8> {
    if let Some(first) = record.iter_mut().find(|byte| !byte.is_ascii_whitespace()) {
        if *first == b'[' {
            *first = b'(';
        }
    }
    record
}

/// Joins fragments back into whole records.
fn reassemble(frames: &[(Vec<u8>, FrameKind)]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut current = Vec::new();
    for (bytes, kind) in frames {
        current.extend_from_slice(bytes);
        if *kind != FrameKind::Fragment {
            records.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        records.push(current);
    }
    records
}

/// With LF framing a record's own trailing CR is taken as part of a CRLF delimiter.
fn strip_cr(record: &[u8]) -> Vec<u8> {
    record.strip_suffix(b"\r").unwrap_or(record).to_vec()
}
