//! The literal prefilter must never change what fires: every event in `tests/data/` (and the
//! bundled samples) goes through two engines holding the same rules, one with the prefilter
//! and one without, and the alerts (rule ids, per event, including correlations) must be the
//! same. Run for the city rules always, and for the whole SigmaHQ pack when
//! `CITYSOC_SIGMA_PACK` names it (the test says so when it did not run).

use std::path::{Path, PathBuf};

use citysoc_collector::format::evtx::decode_evtx;
use citysoc_collector::{Decoder, Event, InputFormat, ParseContext};
use citysoc_detect::sigma::mapping::FieldMappings;
use citysoc_detect::{SigmaEngine, SigmaOptions};

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files_under(directory: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// Every event of `tests/data/` (logs, JSON, EVTX; not the golden outputs or metadata) and of
/// `samples/`, in a fixed order.
fn all_events() -> Vec<Event> {
    let mut files = Vec::new();
    files_under(&repository().join("tests/data"), &mut files);
    files_under(&repository().join("samples"), &mut files);
    files.sort();
    let context = ParseContext::new("prefilter-test");
    let mut events = Vec::new();
    for path in files {
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .unwrap_or("");
        match extension {
            "evtx" => {
                let bytes = std::fs::read(&path).unwrap_or_default();
                let _ = decode_evtx(bytes, &context, &mut events);
            }
            "log" | "json" | "jsonl" | "ndjson" | "txt" | "cef" | "leef" => {
                let text = std::fs::read(&path).unwrap_or_default();
                let mut decoder = Decoder::new(InputFormat::Auto, context.clone());
                for line in text.split(|byte| *byte == b'\n') {
                    decoder.decode(line, &mut events);
                }
                decoder.finish(&mut events);
            }
            _ => {}
        }
    }
    events
}

fn options(literal_prefilter: bool) -> SigmaOptions {
    SigmaOptions {
        mappings: FieldMappings::load_dir(&repository().join("rules/mappings")).unwrap_or_default(),
        literal_prefilter,
        ..SigmaOptions::default()
    }
}

/// Runs both engines over the events; returns (events, alerts) after asserting equality.
fn assert_same_alerts(folders: &[PathBuf], events: &[Event]) -> (usize, usize) {
    let (mut filtered, report) =
        SigmaEngine::load(folders, options(true)).unwrap_or_else(|error| panic!("{error}"));
    let (mut unfiltered, _) =
        SigmaEngine::load(folders, options(false)).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(filtered.rule_count(), unfiltered.rule_count());
    assert!(report.rules > 0);
    let mut alerts = 0;
    for (index, event) in events.iter().enumerate() {
        let mut with: Vec<String> = filtered
            .process(event)
            .into_iter()
            .map(|alert| alert.rule_id)
            .collect();
        let mut without: Vec<String> = unfiltered
            .process(event)
            .into_iter()
            .map(|alert| alert.rule_id)
            .collect();
        with.sort();
        without.sort();
        assert_eq!(
            with,
            without,
            "event {index} ({}): the prefilter changed the alerts",
            String::from_utf8_lossy(&event.raw_bytes())
        );
        assert_eq!(
            filtered.last_event_matched(),
            unfiltered.last_event_matched()
        );
        alerts += with.len();
    }
    assert_eq!(filtered.stats().detections, unfiltered.stats().detections);
    assert_eq!(
        filtered.stats().correlations,
        unfiltered.stats().correlations
    );
    (events.len(), alerts)
}

#[test]
fn the_prefilter_changes_no_city_rule_alert() {
    let events = all_events();
    assert!(events.len() > 1_000, "only {} events", events.len());
    let (count, alerts) = assert_same_alerts(&[repository().join("rules/sigma")], &events);
    println!(
        "city rules: {count} events, {alerts} alerts, identical with and without the prefilter"
    );
    assert!(alerts > 0);
}

#[test]
fn the_prefilter_changes_no_sigmahq_pack_alert() {
    let Some(pack) = std::env::var_os("CITYSOC_SIGMA_PACK").map(PathBuf::from) else {
        println!("NOT RUN: CITYSOC_SIGMA_PACK is not set, the SigmaHQ pack differential test did not run");
        return;
    };
    let folders: Vec<PathBuf> = [
        "rules",
        "rules-emerging-threats",
        "rules-threat-hunting",
        "rules-placeholder",
        "rules-compliance",
        "rules-dfir",
    ]
    .iter()
    .map(|name| pack.join(name))
    .filter(|path| path.is_dir())
    .collect();
    assert!(
        !folders.is_empty(),
        "{} holds no rule folder",
        pack.display()
    );
    let events = all_events();
    let (count, alerts) = assert_same_alerts(&folders, &events);
    println!(
        "SigmaHQ pack: {count} events, {alerts} alerts, identical with and without the prefilter"
    );
    assert!(alerts > 0);
}
