use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use citysoc_collector::{parse_record, Event, InputFormat, ParseContext};

use super::*;

/// A fresh directory with the given rule files.
fn rules_dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("citysoc-sigma-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap_or_else(|error| panic!("{error}"));
    for (file, text) in files {
        std::fs::write(directory.join(file), text).unwrap_or_else(|error| panic!("{error}"));
    }
    directory
}

fn event(record: &str, seconds: i64) -> Event {
    let mut context = ParseContext::new("test");
    context.timezone = chrono_tz::UTC;
    context.received_at = Utc
        .timestamp_opt(1_763_800_000 + seconds, 0)
        .single()
        .unwrap_or_default();
    context.agency = Some("quan-1".into());
    parse_record(
        record.as_bytes(),
        InputFormat::Auto,
        &context,
        seconds as u64,
    )
}

const WHOAMI: &str = r#"
title: Whoami
id: 11111111-1111-1111-1111-111111111111
logsource: {product: windows, category: process_creation}
detection:
  selection:
    CommandLine|contains: whoami
  condition: selection
level: high
tags: [attack.discovery, attack.t1033]
"#;

const SSH_FAILED: &str = r#"
title: SSH failed password
id: ssh-failed
name: ssh_failed
logsource: {product: linux, service: sshd}
detection:
  keywords:
    - 'Failed password'
  condition: keywords
level: low
---
title: SSH brute force
id: ssh-brute
correlation:
  type: event_count
  rules: [ssh_failed]
  group-by: [source.ip]
  timespan: 5m
  condition:
    gte: 5
level: high
"#;

fn sysmon(command_line: &str) -> String {
    format!(
        r#"{{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"pc1","Image":"C:\\x.exe","CommandLine":"{command_line}"}}"#
    )
}

#[test]
fn detection_with_routing() {
    let directory = rules_dir("routing", &[("whoami.yml", WHOAMI)]);
    let (mut engine, report) = SigmaEngine::load(&[directory], SigmaOptions::default())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!((report.rules, report.problems.len()), (1, 0), "{report:?}");
    let alerts = engine.process(&event(&sysmon("cmd /c whoami /all"), 0));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule_id, "11111111-1111-1111-1111-111111111111");
    assert_eq!(alerts[0].level, Level::High);
    assert_eq!(alerts[0].agency.as_deref(), Some("quan-1"));
    // The same words in a Linux log line never reach a Windows rule.
    let linux = event(
        "<38>Nov 22 08:20:01 host sshd[1]: whoami CommandLine whoami",
        1,
    );
    assert!(engine.process(&linux).is_empty());
    assert_eq!(engine.process(&event(&sysmon("cmd /c dir"), 2)).len(), 0);
}

#[test]
fn a_bad_rule_is_reported_and_the_others_load() {
    let broken = "title: Broken\nid: broken-1\nlogsource: {product: windows}\ndetection:\n  selection:\n    Image|nosuchmodifier: x\n  condition: selection\n";
    let not_yaml = "title: [unclosed\n";
    let directory = rules_dir(
        "bad",
        &[
            ("whoami.yml", WHOAMI),
            ("broken.yml", broken),
            ("notyaml.yml", not_yaml),
        ],
    );
    let (_, report) = SigmaEngine::load(std::slice::from_ref(&directory), SigmaOptions::default())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(report.rules, 1);
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(report
        .problems
        .iter()
        .all(|problem| problem.path.starts_with(&directory) && !problem.reason.is_empty()));
}

#[test]
fn correlation_counts_in_event_time_and_names_the_group() {
    let directory = rules_dir("correlation", &[("ssh.yml", SSH_FAILED)]);
    let (mut engine, report) = SigmaEngine::load(&[directory], SigmaOptions::default())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!((report.rules, report.correlations), (1, 1), "{report:?}");
    let mut correlation_alerts = Vec::new();
    for second in 0..6 {
        let line = format!("<38>Nov 22 08:20:0{second} host sshd[1]: Failed password for root from 203.0.113.45 port 4{second} ssh2");
        correlation_alerts.extend(
            engine
                .process(&event(&line, second))
                .into_iter()
                .filter(|alert| alert.kind == AlertKind::Correlation),
        );
    }
    assert!(!correlation_alerts.is_empty());
    let alert = &correlation_alerts[0];
    assert_eq!(alert.rule_id, "ssh-brute");
    assert_eq!(alert.entities.ip.as_deref(), Some("203.0.113.45"));
    assert!(alert.event_ids.len() >= 5, "{:?}", alert.event_ids);
    // State survives a restart: a new engine restored from the saved state keeps counting.
    let state = engine.correlation_state().unwrap_or_default();
    let directory = rules_dir("correlation-restart", &[("ssh.yml", SSH_FAILED)]);
    let (mut restarted, _) = SigmaEngine::load(&[directory], SigmaOptions::default())
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(restarted.restore_correlation_state(state));
    assert!(restarted.correlation_state_entries() > 0);
}

#[test]
fn placeholders_expand_from_configured_lists() {
    let rule = "title: Admin login\nid: admin-login\nlogsource: {product: linux, service: sshd}\ndetection:\n  selection:\n    user.name|expand: '%admins%'\n  condition: selection\n";
    let directory = rules_dir("placeholders", &[("admin.yml", rule)]);
    let mut options = SigmaOptions::default();
    options
        .placeholders
        .insert("admins".into(), vec!["root".into(), "quantri".into()]);
    let (mut engine, report) =
        SigmaEngine::load(&[directory], options).unwrap_or_else(|error| panic!("{error}"));
    assert!(report.problems.is_empty(), "{report:?}");
    let hit = event("<38>Nov 22 08:20:01 host sshd[1]: Accepted password for quantri from 203.0.113.4 port 4 ssh2", 0);
    let miss = event("<38>Nov 22 08:20:01 host sshd[1]: Accepted password for alice from 203.0.113.4 port 4 ssh2", 0);
    assert_eq!(engine.process(&hit).len(), 1);
    assert_eq!(engine.process(&miss).len(), 0);
}

#[test]
fn field_mappings_let_rules_use_sigma_names() {
    let rule = "title: Web SQLi\nid: web-sqli\nlogsource: {category: webserver}\ndetection:\n  selection:\n    c-uri-query|contains: 'union%20select'\n  condition: selection\n";
    let directory = rules_dir("mapping", &[("sqli.yml", rule)]);
    let mut options = SigmaOptions::default();
    options
        .mappings
        .add_yaml(
            "- logsource: {category: webserver}\n  fields:\n    c-uri-query: [cs-uri-query]\n",
            std::path::Path::new("m.yml"),
        )
        .unwrap_or_else(|error| panic!("{error}"));
    let (mut engine, _) =
        SigmaEngine::load(&[directory], options).unwrap_or_else(|error| panic!("{error}"));
    let line = r#"198.51.100.9 - - [22/Nov/2026:08:10:03 +0700] "GET /tra-cuu?ma=1%20union%20select%201 HTTP/1.1" 500 3 "-" "x""#;
    let parsed = event(line, 0);
    assert_eq!(
        parsed.format,
        citysoc_collector::Format::AccessLog,
        "{:?}",
        parsed.parse_error
    );
    let alerts = engine.process(&parsed);
    assert_eq!(alerts.len(), 1, "{:?}", parsed.fields.get("cs-uri-query"));
}
