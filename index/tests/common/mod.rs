//! Events for the store tests: a small, fixed city day with the cases search must get right
//! (Vietnamese text, IPs that share prefixes, hashes in original fields, two agencies, equal
//! timestamps).

#![allow(dead_code)]

use chrono::{DateTime, TimeDelta, Utc};
use citysoc_collector::Event;
use serde_json::json;

/// 2026-11-20T00:00:00Z plus `seconds`.
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_default()
        + TimeDelta::seconds(seconds)
}

/// A 32-hex-digit id from a number.
pub fn id(n: u64) -> String {
    format!("{n:032x}")
}

/// An event with the given id number, agency, time offset, and extra JSON members merged in.
pub fn event(n: u64, agency: Option<&str>, seconds: i64, extra: serde_json::Value) -> Event {
    let mut value = json!({
        "id": id(n),
        "timestamp": at(seconds).to_rfc3339(),
        "received_at": at(seconds + 1).to_rfc3339(),
        "source": {"transport": "udp", "address": "10.1.1.1:514"},
        "format": "rfc3164",
        "raw": format!("<13>event {n}"),
    });
    if let Some(agency) = agency {
        value["agency"] = json!(agency);
    }
    if let (Some(object), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
        for (key, item) in extra {
            object.insert(key.clone(), item.clone());
        }
    }
    serde_json::from_value(value).unwrap_or_else(|error| panic!("test event {n}: {error}"))
}

/// The shared sample: 12 events over three days and two agencies (plus one without agency).
pub fn city_events() -> Vec<Event> {
    vec![
        event(
            1,
            Some("quan-1"),
            60,
            json!({"message": "Đăng nhập thất bại tại Thủ Đức", "user.name": "Nguyễn Văn An", "source.ip": "10.0.0.5", "raw": "sshd: Failed password for admin from 10.0.0.5"}),
        ),
        event(
            2,
            Some("quan-1"),
            120,
            json!({"message": "Accepted password for root", "source.ip": "10.0.0.50", "source.port": 22, "user.name": "root", "event.outcome": "success"}),
        ),
        event(
            3,
            Some("quan-1"),
            120,
            json!({"message": "Failed password for root", "source.ip": "10.0.0.5", "source.port": 2222, "user.name": "root", "event.outcome": "failure"}),
        ),
        event(
            4,
            Some("quan-3"),
            180,
            json!({"message": "Phường Bến Nghé camera login", "host.name": "NVR-01", "source.ip": "192.168.1.10", "destination.port": 23}),
        ),
        event(
            5,
            Some("quan-3"),
            86_400 + 10,
            json!({"message": "process created", "process.command_line": "powershell.exe -enc SQBFAFgA", "process.executable": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "fields": {"EventID": 4688, "Hashes": "SHA256=9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"}, "format": "winevent"}),
        ),
        event(
            6,
            Some("quan-3"),
            86_400 + 20,
            json!({"message": "GET /dich-vu-cong?id=1' OR 1=1 --", "url.original": "/dich-vu-cong?id=1' OR 1=1 --", "http.response.status_code": 500, "source.ip": "203.0.113.7", "format": "access_log"}),
        ),
        event(
            7,
            Some("quan-1"),
            86_400 + 30,
            json!({"fields": {"EventID": 4625, "TargetUserName": "Administrator", "tags": ["vpn", "Thủ Đức"]}, "format": "winevent", "message": "An account failed to log on"}),
        ),
        event(
            8,
            None,
            86_400 + 40,
            json!({"message": "event without agency from 10.0.0.5", "source.ip": "10.0.0.5"}),
        ),
        event(
            9,
            Some("quan-1"),
            2 * 86_400 + 5,
            json!({"message": "Quận 1 firewall deny", "event.action": "deny", "source.ip": "fe80::1", "destination.port": 443}),
        ),
        event(
            10,
            Some("quan-1"),
            2 * 86_400 + 5,
            json!({"message": "Quận 1 firewall deny", "event.action": "deny", "source.ip": "fe80::2", "destination.port": 443}),
        ),
        event(
            11,
            Some("quan-1"),
            2 * 86_400 + 5,
            json!({"message": "Quận 1 firewall accept", "event.action": "accept", "source.ip": "fe80::3", "destination.port": 80}),
        ),
        event(
            12,
            Some("so-y-te"),
            2 * 86_400 + 7,
            json!({"message": "Sở Y tế export 120000 rows", "user.name": "TRAN.B", "fields": {"rows": 120000, "system": "kho-du-lieu"}}),
        ),
    ]
}
