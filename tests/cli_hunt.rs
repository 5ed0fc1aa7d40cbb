//! `citysoc hunt` as an incident responder runs it over files.

use std::process::Command;

use serde_json::Value;

fn repository(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn samples() -> Vec<String> {
    [
        "quan1-fortigate.log",
        "portal-nginx-access.log",
        "linux-auth.log",
        "sysmon.ndjson",
        "audit.log",
        "firewall-cef.log",
    ]
    .iter()
    .map(|name| repository(&format!("samples/{name}")))
    .collect()
}

fn hunt(extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("hunt")
        .args([
            "--rules",
            "rules/sigma",
            "--yara",
            "rules/yara",
            "--intel",
            "rules/intel",
        ])
        .args(extra)
        .args(samples())
        .output()
        .unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn json_alerts_carry_rule_title_level_and_their_events() {
    let output = hunt(&["--format", "json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let alerts: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    assert!(alerts.len() >= 10, "{} alerts", alerts.len());
    for alert in &alerts {
        assert!(
            alert["rule_id"].is_string()
                && alert["title"].is_string()
                && alert["level"].is_string(),
            "{alert}"
        );
        let events = alert["events"].as_array().map(Vec::len).unwrap_or(0);
        assert!(events >= 1, "no triggering event in {alert}");
        assert_eq!(alert["event_ids"][0], alert["events"][0]["id"]);
    }
    let kinds: std::collections::BTreeSet<&str> = alerts
        .iter()
        .filter_map(|alert| alert["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["intel", "sigma", "yara"].into_iter().collect(),
        "every detector raised something"
    );
    let mimikatz = alerts
        .iter()
        .find(|alert| alert["rule_id"] == "46f39cf0-d697-4647-bb63-75cac0f378dc")
        .unwrap_or_else(|| panic!("no mimikatz alert"));
    assert_eq!(mimikatz["level"], "critical");
    assert!(
        mimikatz["events"][0]["CommandLine"].is_string()
            || mimikatz["events"][0]["fields"]["CommandLine"].is_string()
    );
}

#[test]
fn the_table_summarises_by_level_and_rule() {
    let output = hunt(&[]);
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.starts_with("level"), "{table}");
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("critical") && line.contains("Mimikatz")),
        "{table}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("events (0 unknown)"), "{stderr}");
}

#[test]
fn a_brute_force_correlation_fires_across_lines() {
    let directory = std::env::temp_dir().join(format!("citysoc-hunt-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap_or_else(|error| panic!("{error}"));
    let log = directory.join("auth.log");
    let mut lines: String = (0..12).map(|second| format!("Nov 22 08:20:{second:02} gis-app-01 sshd[1]: Failed password for root from 203.0.113.45 port 4{second} ssh2\n")).collect();
    // Blank lines (a copy-paste, a log cut in two) yield no event, and the summary says so.
    lines.insert_str(0, "\n  \n");
    std::fs::write(&log, lines).unwrap_or_else(|error| panic!("{error}"));
    let output = Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["hunt", "--rules", "rules/sigma", "--format", "json"])
        .arg(&log)
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("12 events (0 unknown, 2 blank lines skipped)"),
        "{stderr}"
    );
    let alerts: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let brute = alerts
        .iter()
        .find(|alert| alert["kind"] == "correlation")
        .unwrap_or_else(|| panic!("no correlation in {alerts:?}"));
    assert_eq!(brute["entities"]["ip"], "203.0.113.45");
    assert!(brute["event_ids"].as_array().map(Vec::len).unwrap_or(0) >= 10);
}
