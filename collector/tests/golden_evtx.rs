//! Golden tests for EVTX files: the evtx crate's own samples (tests/data/
//! windows-evtx-omerbenamram-evtx-samples), compared with the JSON lines the crate's Python
//! binding (evtx 0.14) rendered for them.
//!
//! Documented differences, all from the crate's newer rendering (we use evtx 0.15), not from
//! our reading:
//! - GUIDs are rendered `{94f748d5-…}` (braces, lower case) where 0.14 wrote `94F748D5-…`;
//! - FILETIME values in event data have 7 fraction digits (`…46.4740281Z`) where 0.14 cut
//!   them to 6 (`…46.474028Z`);
//! - an empty unnamed `<Data/>` is rendered as `EventData: null` (0.14: `{"Data": "", "Binary":
//!   null}`), and a null value is left out of `fields` (so reference nulls match absent fields);
//! - `sample_with_a_bad_chunk_magic.evtx`: 0.15 recovers 31 more records (301) than 0.14 (270).
//!
//! Values are compared after normalizing exactly those renderings (GUID, FILETIME, null); every
//! other value must be identical.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use citysoc_collector::format::evtx::{decode_evtx, EvtxSummary};
use citysoc_collector::{CollectorError, Event, Format, ParseContext};
use serde_json::Value;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/windows-evtx-omerbenamram-evtx-samples"
);

fn context() -> ParseContext {
    let mut context = ParseContext::new("evtx");
    context.timezone = chrono_tz::UTC;
    context.received_at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_else(|error| panic!("{error}"));
    context
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn decode(name: &str) -> (Vec<Event>, EvtxSummary) {
    let mut events = Vec::new();
    let summary = decode_evtx(
        read(&format!("{DATA}/evtx/{name}.evtx")),
        &context(),
        &mut events,
    )
    .unwrap_or_else(|error| panic!("{name}: {error}"));
    (events, summary)
}

fn reference(name: &str) -> Vec<Value> {
    let text = String::from_utf8(read(&format!("{DATA}/jsonl/{name}.jsonl")))
        .unwrap_or_else(|error| panic!("{error}"));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{name}: {error}")))
        .collect()
}

/// Undoes the two rendering changes between evtx 0.14 and 0.15 (see the module docs).
fn normalize(value: &Value) -> Value {
    let Value::String(text) = value else {
        return value.clone();
    };
    let unbraced = text
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or(text);
    let is_guid = unbraced.len() == 36
        && unbraced.bytes().enumerate().all(|(index, byte)| {
            if [8, 13, 18, 23].contains(&index) {
                byte == b'-'
            } else {
                byte.is_ascii_hexdigit()
            }
        });
    if is_guid {
        return Value::from(unbraced.to_ascii_uppercase());
    }
    // `2017-04-14T01:19:46.4740280Z` → `2017-04-14T01:19:46.474028Z`
    if text.len() == 28 && text.ends_with('Z') && text.as_bytes().get(19) == Some(&b'.') {
        return Value::from(format!("{}Z", &text[..26]));
    }
    value.clone()
}

#[derive(Default, Debug)]
struct Tally {
    checked: usize,
    exact: usize,
    normalized: usize,
    mismatched: Vec<String>,
}

/// Compares our events with the reference records of one file, by record id.
fn compare(name: &str, events: &[Event], reference: &[Value], tally: &mut Tally) -> usize {
    let by_id: BTreeMap<u64, &Event> = events
        .iter()
        .filter(|event| event.format == Format::Winevent)
        .filter_map(|event| Some((event.source.sequence?, event)))
        .collect();
    let mut missing = 0;
    for record in reference {
        let id = record["event_record_id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: no record id"));
        let Some(event) = by_id.get(&id) else {
            missing += 1;
            continue;
        };
        let system = &record["Event"]["System"];
        let event_id = system["EventID"].get("#text").unwrap_or(&system["EventID"]);
        let event_id = event_id
            .as_u64()
            .or_else(|| event_id.as_str().and_then(|text| text.parse().ok()))
            .unwrap_or_else(|| panic!("{name}: EventID {event_id}"));
        let mut expected = vec![
            ("EventID".to_owned(), Value::from(event_id)),
            ("Channel".to_owned(), system["Channel"].clone()),
            ("Computer".to_owned(), system["Computer"].clone()),
        ];
        if let Some(data) = record["Event"]["EventData"].as_object() {
            for (key, value) in data {
                let value = value.get("#text").unwrap_or(value).clone();
                // Documented: an empty unnamed <Data/> is rendered as a null EventData now.
                if key == "Data" && value.as_str() == Some("") {
                    continue;
                }
                expected.push((key.clone(), value));
            }
        }
        assert_eq!(
            event.core.event_code.as_deref(),
            Some(event_id.to_string().as_str()),
            "{name} #{id}"
        );
        assert_eq!(event.core.host_name.as_deref(), system["Computer"].as_str());
        for (key, value) in expected {
            tally.checked += 1;
            let ours = event.fields.get(&key);
            if ours == Some(&value) {
                tally.exact += 1;
            } else if ours.map(normalize) == Some(normalize(&value))
                || (ours.is_none() && value.is_null())
            {
                tally.normalized += 1;
            } else {
                tally.mismatched.push(format!(
                    "{name} #{id} {key}: expected {value}, got {ours:?}"
                ));
            }
        }
    }
    missing
}

#[test]
fn samples_match_the_crate_rendering() {
    // (file, records we read, unreadable parts, records in the reference)
    let files = [
        ("Application_no_crc32", 17, 0, 17),
        ("MSExchange_Management_wec", 1, 0, 1),
        ("Security_short_selected", 7, 0, 7),
        ("issue_201", 1, 0, 1),
        ("new-user-security", 4, 0, 4),
        ("sample_with_a_bad_chunk_magic", 301, 3, 270),
        ("security", 2261, 0, 2261),
        ("sysmon", 358, 8, 358),
    ];
    let mut tally = Tally::default();
    for (name, records, errors, reference_records) in files {
        let (events, summary) = decode(name);
        let reference = reference(name);
        assert_eq!(reference.len(), reference_records, "{name}");
        assert_eq!(
            (summary.records, summary.errors),
            (records, errors),
            "{name}"
        );
        assert_eq!(events.len() as u64, records + errors, "{name}");
        let missing = compare(name, &events, &reference, &mut tally);
        assert_eq!(missing, 0, "{name}: reference records we did not produce");
        for event in &events {
            match event.format {
                Format::Winevent => {
                    let raw: Value = serde_json::from_str(event.raw.as_deref().unwrap_or(""))
                        .unwrap_or_else(|error| {
                            panic!("{name}: raw is not the record's JSON: {error}")
                        });
                    // `source.sequence` is the EVTX record number (checked against the reference in
                    // `compare`); System/EventRecordID is usually the same, but a forwarded (WEC)
                    // event keeps its origin's, so here it is only checked to be carried over.
                    assert_eq!(
                        raw["Event"]["System"].get("EventRecordID"),
                        event.fields.get("EventRecordID"),
                        "{name}"
                    );
                    assert_eq!(event.logsource.product.as_deref(), Some("windows"));
                }
                Format::Unknown => {
                    let error = event
                        .parse_error
                        .as_ref()
                        .unwrap_or_else(|| panic!("{name}: unknown without error"));
                    assert_eq!(error.format, "evtx");
                    assert!(error.message.contains("chunk"), "{name}: {}", error.message);
                    assert_eq!(event.source.sequence, None);
                }
                other => panic!("{name}: unexpected format {other}"),
            }
        }
    }
    for mismatch in tally.mismatched.iter().take(20) {
        eprintln!("{mismatch}");
    }
    println!(
        "evtx golden: {} values checked, {} identical, {} identical after the documented GUID/FILETIME/null normalization, {} different",
        tally.checked,
        tally.exact,
        tally.normalized,
        tally.mismatched.len()
    );
    assert!(tally.mismatched.is_empty());
    assert_eq!(tally.checked, 40_128);
    assert_eq!(tally.normalized, 1_608);
}

#[test]
fn sysmon_events_get_sigma_logsource_and_fields() {
    let (events, _) = decode("sysmon");
    let mut categories: BTreeMap<(u64, String), usize> = BTreeMap::new();
    for event in events
        .iter()
        .filter(|event| event.format == Format::Winevent)
    {
        let event_id = event.fields["EventID"]
            .as_u64()
            .unwrap_or_else(|| panic!("EventID not numeric"));
        assert_eq!(event.logsource.service.as_deref(), Some("sysmon"));
        assert_eq!(
            event.fields["Provider_Name"],
            Value::from("Microsoft-Windows-Sysmon")
        );
        let category = event
            .logsource
            .category
            .as_deref()
            .unwrap_or_default()
            .to_owned();
        *categories.entry((event_id, category)).or_default() += 1;
        if event_id == 1 {
            assert!(event.fields.contains_key("Image") && event.fields.contains_key("CommandLine"));
            assert!(event.fields.contains_key("ParentImage"));
            assert_eq!(
                event.core.process_executable.as_ref(),
                event.fields["Image"].as_str().map(str::to_owned).as_ref()
            );
            assert!(event.core.process_pid.is_some());
        }
        if event_id == 3 {
            assert!(event.core.source_ip.is_some() && event.core.destination_ip.is_some());
        }
    }
    let summary: Vec<String> = categories
        .iter()
        .map(|((id, category), count)| format!("{id}:{category}={count}"))
        .collect();
    println!("sysmon.evtx categories: {}", summary.join(", "));
    for (event_id, category) in [
        (1, "process_creation"),
        (3, "network_connection"),
        (10, "process_access"),
        (11, "file_event"),
        (13, "registry_set"),
        (15, "create_stream_hash"),
        (16, "sysmon_status"),
    ] {
        assert!(
            categories
                .keys()
                .any(|(id, found)| *id == event_id && found == category),
            "no Sysmon {event_id} → {category}: {summary:?}"
        );
    }
    assert!(categories
        .keys()
        .all(|(id, found)| *id != 12 || found == "registry_add" || found == "registry_delete"));
}

#[test]
fn security_log_core_fields_and_times() {
    let (events, _) = decode("security");
    let logons: Vec<&Event> = events
        .iter()
        .filter(|event| event.fields.get("EventID") == Some(&Value::from(4624)))
        .collect();
    assert!(!logons.is_empty());
    for event in &logons {
        assert_eq!(event.logsource.service.as_deref(), Some("security"));
        assert_eq!(event.core.event_outcome.as_deref(), Some("success"));
        assert!(event.core.user_name.is_some(), "{:?}", event.fields);
    }
    // The first record: 2016-07-08T18:12:51.681640Z (System/TimeCreated).
    let first = events
        .iter()
        .find(|event| event.source.sequence == Some(1))
        .unwrap_or_else(|| panic!("no record 1"));
    assert_eq!(
        first.timestamp.to_rfc3339(),
        "2016-07-08T18:12:51.681640800+00:00"
    );
    // Same records, same ids: reading the file again must give the same event ids.
    let (again, _) = decode("security");
    assert_eq!(
        events.iter().map(|event| &event.id).collect::<Vec<_>>(),
        again.iter().map(|event| &event.id).collect::<Vec<_>>()
    );
}

#[test]
fn damaged_string_cache_reads_like_the_intact_file() {
    let (damaged, summary) = decode("security_bad_string_cache");
    let (intact, _) = decode("security");
    assert_eq!(summary.records, 2261);
    let ids = |events: &[Event]| {
        events
            .iter()
            .map(|event| (event.source.sequence, event.fields.get("EventID").cloned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&damaged), ids(&intact));
}

#[test]
fn truncated_and_garbled_files_never_panic() {
    let bytes = read(&format!("{DATA}/evtx/security.evtx"));
    let context = context();
    // Cut inside the third chunk: the first two chunks read completely.
    let mut events = Vec::new();
    let summary = decode_evtx(
        bytes[..4096 + 2 * 65536 + 30_000].to_vec(),
        &context,
        &mut events,
    )
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(summary.records > 0);
    assert_eq!(events.len() as u64, summary.records + summary.errors);
    // Flip bytes all over the record area.
    let mut garbled = bytes.clone();
    for index in (4096..garbled.len()).step_by(997) {
        garbled[index] ^= 0x5a;
    }
    let mut events = Vec::new();
    let summary =
        decode_evtx(garbled, &context, &mut events).unwrap_or_else(|error| panic!("{error}"));
    println!(
        "garbled security.evtx: {} records, {} unreadable parts",
        summary.records, summary.errors
    );
    assert_eq!(events.len() as u64, summary.records + summary.errors);
    assert!(summary.errors > 0);
    // A file whose header is gone is refused as a whole.
    let result = decode_evtx(bytes[..2000].to_vec(), &context, &mut Vec::new());
    assert!(
        matches!(result, Err(CollectorError::EvtxUnreadable { .. })),
        "{result:?}"
    );
}
