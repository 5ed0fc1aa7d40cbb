//! Property tests for the two promises of the collector: no input makes a parser panic or lose
//! the record's bytes, and framing never loses or merges records.

use citysoc_collector::fields::StoredValue;
use citysoc_collector::framing::{split_all, FrameKind, Framer, Framing};
use citysoc_collector::record::encode_within_ceiling;
use citysoc_collector::{
    parse_record, parse_record_into, Decoder, Event, Format, InputFormat, ParseContext,
};
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

/// Whole records as devices write them (they fill many fields, core fields and structured
/// data, which a reused event must not carry over), or [`record_bytes`].
fn whole_or_random_record() -> impl Strategy<Value = Vec<u8>> {
    let whole = prop::sample::select(vec![
        "<86>May 14 09:46:40 web-18 sshd[41960]: Accepted publickey for www-data from 10.14.51.98 port 15652 ssh2: ED25519 SHA256:RNL2EDLbdDZ1c5jAU2rjTbrNLwMtshF6PwKluYIFdlK",
        "<85>1 2024-05-14T09:46:40.146413Z web-21.prod.example.com sudo 43254 SUDO [meta sequenceId=\"2\"][origin ip=\"10.29.73.68\"] carol : TTY=pts/1 ; PWD=/home/carol ; USER=root ; COMMAND=/usr/bin/journalctl -u sshd",
        "<133>May 14 09:46:40 fw-edge-06 filterlog[52209]: action=pass rule=1000298 proto=ICMP src=45.185.112.36 dst=10.31.46.194 spt=4111 dpt=8080 in=wan0 out=lan1 len=264 ttl=51",
        "<4>Jun 12 06:25:01 gw kernel: [123.456] IN=eth0 OUT= MAC=00:11 SRC=203.0.113.9 DST=10.0.0.5 LEN=60 PROTO=TCP SPT=4444 DPT=22 SYN",
        "CEF:0|Fortinet|FortiGate|7.0|13|traffic|3|src=10.1.1.1 dst=8.8.8.8 spt=5353 dpt=53 suser=alice act=accept",
        "LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^sev=5^cat=Scan",
        "{\"@timestamp\":\"2024-05-14T09:46:40Z\",\"message\":\"x\",\"host\":{\"name\":\"pc-7\"},\"user\":{\"name\":\"bob\"},\"tags\":[1,2]}",
        "{\"EventID\":4625,\"Channel\":\"Security\",\"Computer\":\"dc1\",\"TargetUserName\":\"admin\",\"IpAddress\":\"10.2.3.4\"}",
        "type=SYSCALL msg=audit(1170021493.977:293): arch=c000003e syscall=59 success=yes exe=\"/bin/sh\" uid=0",
        "127.0.0.1 - frank [28/Dec/2019:16:49:07 +0000] \"GET /admin HTTP/1.1\" 403 512 \"-\" \"curl/8.0\"",
        "date=2019-05-10 time=11:37:47 devname=fw1 logid=0000000013 srcip=10.1.1.1 dstip=8.8.8.8 action=deny",
        "",
        "\u{feff}<13>1 2024-01-01T00:00:00Z h a - - - x",
    ]);
    prop_oneof![
        whole.prop_map(|line| line.as_bytes().to_vec()),
        record_bytes(),
        // Not UTF-8: kept as base64, and the reused event's text must go.
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|mut bytes| {
            bytes.insert(0, 0xff);
            bytes
        }),
    ]
}

/// An event as the sink and the server see it: its JSON and its compact record.
fn as_written(event: &mut Event) -> (String, Vec<u8>) {
    let json = serde_json::to_string(&*event).unwrap_or_else(|error| panic!("{error}"));
    let mut record = Vec::new();
    encode_within_ceiling(event, &mut record).unwrap_or_else(|error| panic!("{error}"));
    (json, record)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// An event parsed again for another record (what a decoder does with the events a source
    /// hands back) is exactly the event a fresh parse of that record gives: nothing of the
    /// previous record stays, in the event, its JSON or its compact record.
    #[test]
    fn a_reused_event_is_a_fresh_event(
        previous in whole_or_random_record(),
        next in whole_or_random_record(),
        previous_format in prop::sample::select(ALL_FORMATS),
        next_format in prop::sample::select(ALL_FORMATS),
    ) {
        let context = ParseContext::new("tcp").with_agency("quan-1").with_collector("col-1").with_address("10.0.0.9:514");
        let mut reused = parse_record(&previous, previous_format, &context, 3);
        // Every value built from its text, as a reader asking for them leaves them.
        let _built = reused.fields.values().count();
        parse_record_into(&next, next_format, &context, 4, &mut reused);
        let mut fresh = parse_record(&next, next_format, &context, 4);
        prop_assert_eq!(&reused, &fresh);
        prop_assert_eq!(as_written(&mut reused), as_written(&mut fresh));
    }

    /// Structured data kept as its text stands for the object its elements make (built here
    /// from the generated elements, not by the collector's code), and is written, counted and
    /// measured exactly as that object: the event's JSON, its compact record (what the server
    /// reads), the batch cost the ceiling checks and the depth. (Ids and names are made unique,
    /// so every section is one kept as text; the RFC 5424 reader's unit tests cover the rest.)
    #[test]
    fn structured_data_kept_as_text_is_written_as_its_object(
        elements in prop::collection::vec(
            (
                prop::sample::select(vec!["meta", "origin", "exampleSDID@32473", "timeQuality"]),
                prop::collection::vec(
                    (
                        prop::sample::select(vec!["ip", "sequenceId", "iut", "eventSource", "tzKnown", "x"]),
                        "[a-zé0-9 .=\\[]{0,12}",
                        any::<bool>(),
                    ),
                    0..4,
                ),
            ),
            1..4,
        ),
        message in prop::sample::select(vec!["", " hello", " a=1 b=2"]),
    ) {
        let mut seen_ids = std::collections::HashSet::new();
        let elements: Vec<_> = elements
            .into_iter()
            .filter(|(id, _)| seen_ids.insert(*id))
            .map(|(id, params)| {
                let mut seen_names = std::collections::HashSet::new();
                let params: Vec<_> = params.into_iter().filter(|(name, _, _)| seen_names.insert(*name)).collect();
                (id, params)
            })
            .collect();
        let mut expected = serde_json::Map::new();
        for (id, params) in &elements {
            let members: serde_json::Map<String, serde_json::Value> = params
                .iter()
                .map(|(name, value, escaped)| {
                    let value = if *escaped { format!("\"{value}]\\") } else { value.clone() };
                    (name.to_string(), serde_json::Value::String(value))
                })
                .collect();
            expected.insert(id.to_string(), serde_json::Value::Object(members));
        }
        let expected = serde_json::Value::Object(expected);
        let section: String = elements
            .iter()
            .map(|(id, params)| {
                let params: String = params
                    .iter()
                    .map(|(name, value, escaped)| {
                        let value = if *escaped { format!("\\\"{value}\\]\\\\") } else { value.clone() };
                        format!(" {name}=\"{value}\"")
                    })
                    .collect();
                format!("[{id}{params}]")
            })
            .collect();
        let line = format!("<165>1 2026-11-22T10:00:00Z host app 12 ID1 {section}{message}");
        let context = ParseContext::new("tcp").with_collector("col-1");
        for input_format in [InputFormat::Auto, InputFormat::Rfc5424] {
            let mut kept = parse_record(line.as_bytes(), input_format, &context, 1);
            prop_assert!(
                matches!(kept.fields.get_stored("structured_data"), Some(StoredValue::StructuredData(_))),
                "{}", line
            );
            prop_assert_eq!(kept.fields.get("structured_data"), Some(&expected));
            let mut built = kept.clone();
            // Made a value slot holding the object: the form every other reader stores.
            let _ = built.fields.get_mut("structured_data");
            prop_assert_eq!(&kept, &built);
            prop_assert_eq!(kept.fields.depth(), built.fields.depth());
            prop_assert_eq!(
                citysoc_collector::record::fields_cost(&kept.fields),
                citysoc_collector::record::fields_cost(&built.fields)
            );
            prop_assert_eq!(as_written(&mut kept), as_written(&mut built));
        }
    }

    /// A decoder whose events are handed back after every few records gives out the same
    /// events as one whose events are all kept.
    #[test]
    fn a_recycling_decoder_gives_the_same_events(
        records in prop::collection::vec(whole_or_random_record(), 1..40),
        every in 1usize..6,
        input_format in prop::sample::select(ALL_FORMATS),
    ) {
        let context = ParseContext::new("tcp").with_collector("col-1");
        let mut kept = Vec::new();
        let mut decoder = Decoder::new(input_format, context.clone());
        for record in &records {
            decoder.decode(record, &mut kept);
        }
        decoder.finish(&mut kept);
        let mut written = Vec::new();
        let mut recycling = Decoder::new(input_format, context);
        let mut events = Vec::new();
        for (index, record) in records.iter().enumerate() {
            recycling.decode(record, &mut events);
            if index % every == 0 {
                written.extend(events.iter_mut().map(as_written));
                recycling.recycle(&mut events);
                prop_assert!(events.is_empty());
            }
        }
        recycling.finish(&mut events);
        written.extend(events.iter_mut().map(as_written));
        let expected: Vec<_> = kept.iter_mut().map(as_written).collect();
        prop_assert_eq!(written, expected);
    }

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
