//! The example lists in `rules/intel/` against their samples in `rules/samples/intel/`, and a
//! few realistic events checked in detail.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use citysoc_collector::{parse_record, Event, InputFormat, ParseContext};
use citysoc_detect::intel::{IntelMatcher, IntelStore, LoadOptions};
use citysoc_detect::{Alert, AlertKind, Level};
use serde::Deserialize;

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules")
}

fn store() -> Arc<IntelStore> {
    let store = IntelStore::open([rules_dir().join("intel")], LoadOptions::default())
        .unwrap_or_else(|error| panic!("rules/intel: {error}"));
    Arc::new(store)
}

fn parse(line: &str, format: InputFormat, agency: Option<&str>) -> Event {
    let mut context = ParseContext::new("file");
    context.agency = agency.map(Into::into);
    parse_record(line.as_bytes(), format, &context, 1)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleFile {
    rule: String,
    cases: Vec<SampleCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleCase {
    name: String,
    expect: String,
    rule_id: Option<String>,
    format: Option<String>,
    agency: Option<String>,
    records: String,
}

#[test]
fn example_lists_load_without_problems() {
    let store = store();
    let set = store.current();
    assert!(set.problems().is_empty(), "{:#?}", set.problems());
    let names: Vec<&str> = set.lists().iter().map(|list| list.name.as_str()).collect();
    assert_eq!(names, ["city-blocklist", "misp-phishing-ward-offices"]);
    let stats = store.stats();
    // 10 rows in the CSV, one of them expired (2025-12-31); the MISP event has 7 to_ids
    // attributes, one of them an email address.
    assert_eq!(stats.indicators, 9 + 6, "{stats:#?}");
    assert_eq!(stats.skipped.unsupported_type, 1);
    assert_eq!(stats.skipped.not_to_ids, 2);
}

#[test]
fn samples_of_the_example_lists() {
    let store = store();
    let mut matcher = IntelMatcher::new(Arc::clone(&store));
    let mut checked = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(rules_dir().join("samples/intel"))
        .unwrap_or_else(|error| panic!("rules/samples/intel: {error}"))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "yml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 2);
    for file in &files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        let sample: SampleFile = yaml_serde::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        let list = file
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert_eq!(
            sample.rule,
            format!(
                "intel/{list}.{}",
                if list.starts_with("misp") {
                    "json"
                } else {
                    "csv"
                }
            )
        );
        assert!(rules_dir().join(&sample.rule).is_file(), "{}", sample.rule);
        for case in &sample.cases {
            let format: InputFormat = case
                .format
                .as_deref()
                .unwrap_or("auto")
                .parse()
                .unwrap_or_else(|error| panic!("{}: {error:?}", case.name));
            let rule_id = case
                .rule_id
                .clone()
                .unwrap_or_else(|| format!("intel:{list}"));
            let mut alerts: Vec<Alert> = Vec::new();
            for line in case.records.lines().filter(|line| !line.trim().is_empty()) {
                let event = parse(line, format, case.agency.as_deref());
                assert_ne!(
                    event.format,
                    citysoc_collector::Format::Unknown,
                    "{}: {:?}",
                    case.name,
                    event.parse_error
                );
                alerts.extend(matcher.match_event(&event));
            }
            let fired = alerts.iter().any(|alert| alert.rule_id == rule_id);
            match case.expect.as_str() {
                "alert" => assert!(fired, "{}: expected {rule_id}, got {alerts:#?}", case.name),
                "no_alert" => assert!(
                    alerts.is_empty(),
                    "{}: expected no alert, got {alerts:#?}",
                    case.name
                ),
                other => panic!("{}: unknown expectation {other}", case.name),
            }
            if let (true, Some(agency)) = (fired, &case.agency) {
                assert!(alerts
                    .iter()
                    .all(|alert| alert.agency.as_deref() == Some(agency.as_str())));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 11);
    assert!(store.stats().matches >= 9);
}

fn detail<'a>(alert: &'a Alert, name: &str) -> &'a str {
    alert
        .details
        .get(name)
        .and_then(|value| value.as_str())
        .unwrap_or("")
}

#[test]
fn fortigate_vpn_failure_from_a_listed_address() {
    let store = store();
    let mut matcher = IntelMatcher::new(store);
    let line = r#"<189>date=2026-11-22 time=08:01:15 devname="FG100F-QUAN1" devid="FG100FTK22001234" logid="0101039426" type="event" subtype="vpn" level="alert" vd="root" logdesc="SSL VPN login fail" action="ssl-login-fail" tunneltype="ssl-web" remip=203.0.113.77 user="nguyenvana" group="N/A" reason="sslvpn_login_permission_denied" msg="SSL user failed to logged in""#;
    let event = parse(line, InputFormat::Auto, Some("quan-1"));
    let alerts = matcher.match_event(&event);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(alert.kind, AlertKind::Intel);
    assert_eq!(alert.rule_id, "intel:city-blocklist");
    assert_eq!(alert.title, "Threat-intel match: city-blocklist (ip)");
    assert_eq!(alert.level, Level::High);
    assert_eq!(*alert.tags, ["intel.city-blocklist", "attack.t1110.003"]);
    assert_eq!(alert.agency.as_deref(), Some("quan-1"));
    assert_eq!(alert.event_ids, std::slice::from_ref(&event.id));
    assert_eq!(
        [
            detail(alert, "list"),
            detail(alert, "indicator"),
            detail(alert, "indicator_type"),
            detail(alert, "field"),
            detail(alert, "value")
        ],
        // The kv parser also puts `remip` in `source.ip`; the core field comes first.
        [
            "city-blocklist",
            "203.0.113.77",
            "ip",
            "source.ip",
            "203.0.113.77"
        ]
    );
    assert_eq!(detail(alert, "indicator_location"), "line 7");
}

#[test]
fn fortigate_admin_login_from_a_listed_network() {
    let mut matcher = IntelMatcher::new(store());
    let line = r#"<189>date=2026-11-22 time=08:01:12 devname="FG100F-QUAN1" logid="0100032002" type="event" subtype="system" level="alert" user="admin" ui="https(198.51.100.23)" srcip=198.51.100.23 dstip=10.1.0.1 action="login" status="failed""#;
    let alerts = matcher.match_event(&parse(line, InputFormat::Auto, None));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(
        (detail(&alerts[0], "indicator"), detail(&alerts[0], "field")),
        ("198.51.100.0/25", "source.ip")
    );
    assert_eq!(alerts[0].level, Level::Medium);
    assert_eq!(alerts[0].entities.ip.as_deref(), Some("198.51.100.23"));
}

#[test]
fn misp_event_alerts_carry_the_event_context() {
    let mut matcher = IntelMatcher::new(store());
    let line = r#"{"EventID":22,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"PC-TN-004","EventTime":"2026-11-22 09:05:10","QueryName":"login-dvc.phish.example","QueryStatus":"0","QueryResults":"::ffff:203.0.113.200;"}"#;
    let alerts = matcher.match_event(&parse(line, InputFormat::Auto, None));
    let found: Vec<(&str, &str, &str)> = alerts
        .iter()
        .map(|alert| {
            (
                detail(alert, "indicator_type"),
                detail(alert, "indicator"),
                detail(alert, "field"),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("domain", "login-dvc.phish.example", "QueryName"),
            ("ip", "203.0.113.200", "QueryResults")
        ]
    );
    for alert in &alerts {
        assert_eq!(alert.rule_id, "intel:misp-phishing-ward-offices");
        assert_eq!(alert.level, Level::High);
        assert_eq!(
            detail(alert, "context"),
            "MISP event 1042: Phishing wave against ward offices: fake public-services login page"
        );
        assert!(alert.tags.iter().any(|tag| tag == "tlp:amber"));
    }
}
