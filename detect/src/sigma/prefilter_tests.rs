//! The literal prefilter, modifier by modifier: the requirement derived from each kind of
//! detection, and the same alerts with and without the prefilter on events built to sit on
//! each edge (case variants, windash variants, encodings, Unicode case folding, negations).

use std::path::PathBuf;

use citysoc_collector::{parse_record, Event, InputFormat, ParseContext};

use super::literals::rule_requirement;
use super::*;

/// The requirement of the one rule in `yaml`, as compiled (after the placeholder pipeline).
fn requirement(yaml: &str, options: &SigmaOptions) -> Option<Vec<String>> {
    let collection = parse_sigma_yaml(yaml).unwrap_or_else(|error| panic!("{error}"));
    let rule = collection
        .rules
        .first()
        .unwrap_or_else(|| panic!("no rule in {yaml}"));
    let pipeline = placeholder_pipeline(&options.placeholders).unwrap_or_else(|e| panic!("{e}"));
    let rule = prepared(rule, &pipeline).unwrap_or_else(|error| panic!("{error}"));
    let compiled = rsigma_eval::compile_rule(&rule).unwrap_or_else(|error| panic!("{error}"));
    rule_requirement(&compiled)
}

fn rule(detection: &str) -> String {
    format!(
        "title: test\nid: test-rule\nlogsource: {{product: windows, category: process_creation}}\ndetection:\n{detection}\nlevel: high\n"
    )
}

fn sysmon(command_line: &str) -> Event {
    let record = serde_json::json!({
        "EventID": 1,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Hostname": "pc1",
        "Image": "C:\\Windows\\System32\\cmd.exe",
        "CommandLine": command_line,
    });
    parse_record(
        record.to_string().as_bytes(),
        InputFormat::Auto,
        &ParseContext::new("test"),
        1,
    )
}

fn rules_dir(name: &str, yaml: &str) -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("citysoc-prefilter-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap_or_else(|error| panic!("{error}"));
    std::fs::write(directory.join("rule.yml"), yaml).unwrap_or_else(|error| panic!("{error}"));
    directory
}

/// Whether the rule fires on an event with `command_line`, asserting that the prefiltered and
/// the unfiltered engines agree.
fn fires(name: &str, yaml: &str, options: &SigmaOptions, command_line: &str) -> bool {
    let directory = rules_dir(name, yaml);
    let verdicts: Vec<bool> = [true, false]
        .iter()
        .map(|literal_prefilter| {
            let options = SigmaOptions {
                literal_prefilter: *literal_prefilter,
                ..options.clone()
            };
            let (mut engine, report) = SigmaEngine::load(std::slice::from_ref(&directory), options)
                .unwrap_or_else(|error| panic!("{error}"));
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            assert_eq!(report.rules, 1);
            !engine.process(&sysmon(command_line)).is_empty()
        })
        .collect();
    let _ = std::fs::remove_dir_all(&directory);
    assert_eq!(
        verdicts[0], verdicts[1],
        "{name}: prefilter changed the verdict on {command_line:?}"
    );
    verdicts[0]
}

fn literals(values: &[&str]) -> Option<Vec<String>> {
    let mut values: Vec<String> = values.iter().map(|value| (*value).to_owned()).collect();
    values.sort();
    Some(values)
}

/// (name, detection, expected requirement, command lines that fire, that do not).
type Case = (
    &'static str,
    &'static str,
    Option<&'static [&'static str]>,
    &'static [&'static str],
    &'static [&'static str],
);

const CASES: &[Case] = &[
    (
        "contains",
        "  selection:\n    CommandLine|contains: 'WhoAmI'\n  condition: selection",
        Some(&["whoami"]),
        &["cmd /c WHOAMI /all", "whoami"],
        &["who am i"],
    ),
    (
        "startswith_endswith",
        "  selection:\n    CommandLine|startswith: 'net '\n    Image|endswith: '\\cmd.exe'\n  condition: selection",
        Some(&["\\cmd.exe"]),
        &["NET user"],
        &["xnet user"],
    ),
    (
        "exact",
        "  selection:\n    CommandLine: 'ipconfig /all'\n  condition: selection",
        Some(&["ipconfig /all"]),
        &["IPCONFIG /ALL"],
        &["ipconfig /all2"],
    ),
    (
        "value_list",
        "  selection:\n    CommandLine|contains:\n      - 'vssadmin'\n      - 'wbadmin'\n  condition: selection",
        Some(&["vssadmin", "wbadmin"]),
        &["wbadmin delete", "VSSADMIN"],
        &["admin"],
    ),
    (
        "all",
        "  selection:\n    CommandLine|contains|all:\n      - ' -enc'\n      - 'hidden'\n  condition: selection",
        Some(&["hidden"]),
        &["powershell -w hidden -enc AAA"],
        &["powershell -w hidden", "powershell -enc AAA"],
    ),
    (
        "windash",
        "  selection:\n    CommandLine|windash|contains: ' -exec '\n  condition: selection",
        None,
        &["x -exec y", "x /exec y", "x \u{2013}exec y", "x \u{2014}exec y"],
        &["x exec y"],
    ),
    (
        "base64",
        "  selection:\n    CommandLine|base64|contains: 'http://'\n  condition: selection",
        Some(&["ahr0cdovlw=="]),
        &["aHR0cDovLw=="],
        &["http://"],
    ),
    (
        "base64offset",
        "  selection:\n    CommandLine|base64offset|contains: 'http://'\n  condition: selection",
        None,
        &["xaHR0cDovLw", "powershell -e odHRwOi8v", "h0dHA6Ly8"],
        &["http://"],
    ),
    (
        "utf16_base64offset",
        "  selection:\n    CommandLine|wide|base64offset|contains: 'ping'\n  condition: selection",
        None,
        &["-enc cABpAG4AZwA"],
        &["ping"],
    ),
    (
        "cased",
        "  selection:\n    CommandLine|cased|contains: 'WhoAmI'\n  condition: selection",
        Some(&["whoami"]),
        &["x WhoAmI"],
        &["x whoami", "x WHOAMI"],
    ),
    (
        "regex_with_literal",
        "  selection:\n    CommandLine|re: '(?i)invoke-(mimikatz|kerberoast)'\n  condition: selection",
        Some(&["kerberoast", "mimikatz"]),
        &["Invoke-Mimikatz", "INVOKE-KERBEROAST"],
        &["invoke-other"],
    ),
    (
        "regex_case_sensitive",
        "  selection:\n    CommandLine|re: 'sekurlsa::\\w+'\n  condition: selection",
        Some(&["sekurlsa::"]),
        &["sekurlsa::logonpasswords"],
        &["SEKURLSA::logonpasswords"],
    ),
    (
        "regex_without_literal",
        "  selection:\n    CommandLine|re: '^[a-z]{3,}\\d+$'\n  condition: selection",
        None,
        &["abc123"],
        &["ab1"],
    ),
    (
        "regex_unicode_case_folding",
        "  selection:\n    CommandLine|re: '(?i)sekurlsa'\n  condition: selection",
        Some(&["sekurlsa"]),
        &["\u{17F}ekurlsa", "SEKURLSA", "se\u{212A}urlsa"],
        &["sekurls"],
    ),
    (
        "kelvin_sign_lowercases_to_k",
        "  selection:\n    CommandLine|contains: 'kerb'\n  condition: selection",
        Some(&["kerb"]),
        &["\u{212A}ERB", "KERB"],
        &["erb"],
    ),
    (
        "non_ascii_value",
        "  selection:\n    CommandLine|contains: 'Пароль admin'\n  condition: selection",
        Some(&[" admin"]),
        &["x пароль ADMIN"],
        &["x admin"],
    ),
    (
        "wildcards",
        "  selection:\n    CommandLine: '*\\Temp\\ab*.ps1'\n  condition: selection",
        Some(&["\\temp\\ab"]),
        &["powershell C:\\TEMP\\ab1.ps1"],
        &["powershell C:\\TEMP\\ab1.ps2"],
    ),
    (
        "single_char_wildcard",
        "  selection:\n    CommandLine|contains: 'mimi?atz'\n  condition: selection",
        Some(&["mimi"]),
        &["MIMIKATZ"],
        &["mimi"],
    ),
    (
        "not",
        "  selection:\n    CommandLine|contains: 'safe'\n  condition: not selection",
        None,
        &["anything"],
        &["safe"],
    ),
    (
        "filters_under_negation",
        "  selection:\n    CommandLine|contains: 'rundll32'\n  filter_main:\n    CommandLine|contains: 'shell32'\n  filter_optional:\n    CommandLine: null\n  condition: selection and not 1 of filter_*",
        Some(&["rundll32"]),
        &["rundll32 x.dll"],
        &["rundll32 shell32.dll"],
    ),
    (
        "one_of_without_literal",
        "  selection_a:\n    CommandLine|contains: 'certutil'\n  selection_b:\n    EventID: 1\n  condition: 1 of selection_*",
        None,
        &["anything"],
        &[],
    ),
    (
        "all_of",
        "  selection_a:\n    CommandLine|contains: 'certutil'\n  selection_b:\n    CommandLine|contains: 'urlcache'\n  condition: all of selection_*",
        Some(&["certutil"]),
        &["certutil -urlcache -f"],
        &["certutil -f", "urlcache"],
    ),
    (
        "keywords",
        "  keywords:\n    - 'mimikatz'\n    - 'lsadump'\n  condition: keywords",
        Some(&["lsadump", "mimikatz"]),
        &["x Mimikatz", "lsadump::sam"],
        &["mimi"],
    ),
    // Keyword rules are gated on every string of the event; their field selections' literals
    // count too, numbers included (a number is scanned only in a field some rule names).
    (
        "keywords_and_number",
        "  selection:\n    EventID: 1\n  keywords:\n    - 'mimikatz'\n  condition: selection and keywords",
        Some(&["mimikatz"]),
        &["c:\\x\\MIMIKATZ.exe"],
        &["mimi katz"],
    ),
    (
        "keywords_or_number_field",
        "  selection:\n    EventID|startswith: '1'\n  keywords:\n    - 'zzzq'\n  condition: selection or keywords",
        Some(&["1", "zzzq"]),
        &["anything"],
        &[],
    ),
    (
        "keywords_in_a_field_no_rule_names",
        "  keywords:\n    - 'system32'\n  condition: keywords",
        Some(&["system32"]),
        // `Image` holds it, whatever the command line.
        &["anything"],
        &[],
    ),
    (
        "numeric",
        "  selection:\n    EventID: 1\n  condition: selection",
        None,
        &["anything"],
        &[],
    ),
    (
        "number_as_string",
        "  selection:\n    EventID|startswith: '1'\n  condition: selection",
        Some(&["1"]),
        &["anything"],
        &[],
    ),
    (
        "numeric_comparison",
        "  selection:\n    EventID|gt: 0\n  condition: selection",
        None,
        &["anything"],
        &[],
    ),
    (
        "null",
        "  selection:\n    ParentImage: null\n  condition: selection",
        None,
        &["anything"],
        &[],
    ),
    (
        "exists",
        "  selection:\n    CommandLine|exists: true\n  condition: selection",
        None,
        &["anything"],
        &[],
    ),
    (
        "neq",
        "  selection:\n    CommandLine|neq: 'x'\n  condition: selection",
        None,
        &["y"],
        &["x"],
    ),
    (
        "fieldref",
        "  selection:\n    CommandLine|fieldref: Image\n  condition: selection",
        None,
        &["C:\\Windows\\System32\\cmd.exe"],
        &["y"],
    ),
];

#[test]
fn every_modifier_case_has_the_expected_requirement_and_the_same_verdicts() {
    let options = SigmaOptions::default();
    for (name, detection, expected, positive, negative) in CASES {
        let yaml = rule(detection);
        let derived = requirement(&yaml, &options);
        println!("{name}: {derived:?}");
        if let Some(expected) = expected {
            assert_eq!(derived, literals(expected), "{name}");
        } else if *name == "windash" || name.contains("base64offset") {
            // Expanded into every variant: each must be a requirement of its own.
            assert!(derived.is_some(), "{name}: {derived:?}");
        } else {
            assert_eq!(derived, None, "{name}");
        }
        for command_line in *positive {
            assert!(
                fires(name, &yaml, &options, command_line),
                "{name} must fire on {command_line:?} (requirement {derived:?})"
            );
        }
        for command_line in *negative {
            assert!(
                !fires(name, &yaml, &options, command_line),
                "{name} must not fire on {command_line:?}"
            );
        }
    }
}

#[test]
fn a_field_read_through_an_alias_is_scanned() {
    let mut mappings = FieldMappings::default();
    mappings
        .add_yaml(
            "- fields:\n    ProcessCommandLine: CommandLine\n",
            std::path::Path::new("aliases.yml"),
        )
        .unwrap_or_else(|error| panic!("{error}"));
    let options = SigmaOptions {
        mappings,
        ..SigmaOptions::default()
    };
    let yaml =
        rule("  selection:\n    ProcessCommandLine|contains: 'vssadmin'\n  condition: selection");
    assert!(fires("alias", &yaml, &options, "vssadmin delete shadows"));
    assert!(!fires("alias", &yaml, &options, "vss admin"));
}

#[test]
fn windash_requires_each_variant() {
    let yaml =
        rule("  selection:\n    CommandLine|windash|contains: ' -exec '\n  condition: selection");
    let derived = requirement(&yaml, &SigmaOptions::default()).unwrap_or_default();
    // The ASCII variants whole; the dash variants outside ASCII by their longest ASCII run.
    assert!(derived.contains(&" -exec ".to_owned()), "{derived:?}");
    assert!(derived.contains(&" /exec ".to_owned()), "{derived:?}");
    assert!(derived.contains(&"exec ".to_owned()), "{derived:?}");
}

#[test]
fn expand_placeholders_known_and_unknown() {
    let mut options = SigmaOptions::default();
    options
        .placeholders
        .insert("admins".into(), vec!["alice".into(), "bob".into()]);
    let known = rule("  selection:\n    CommandLine|expand: '%admins%'\n  condition: selection");
    assert_eq!(requirement(&known, &options), literals(&["alice", "bob"]));
    assert!(fires("expand_known", &known, &options, "Bob"));
    assert!(!fires("expand_known", &known, &options, "carol"));
    // An unknown placeholder becomes `*`, which rsigma compares literally (the known gap
    // pinned by `unknown_placeholder_falls_back_to_a_wildcard` in tests/sigma_spec.rs): the
    // prefilter requires exactly that text, and both paths agree on either event.
    let unknown = rule("  selection:\n    CommandLine|expand: '%nobody%'\n  condition: selection");
    assert_eq!(requirement(&unknown, &options), literals(&["*"]));
    assert!(fires("expand_unknown", &unknown, &options, "*"));
    assert!(!fires("expand_unknown", &unknown, &options, "carol"));
}

#[test]
fn a_correlation_sees_the_same_detections() {
    let yaml = format!(
        "{}---\ntitle: three whoami\nid: corr\ncorrelation:\n  type: event_count\n  rules: [test-rule]\n  group-by: [Hostname]\n  timespan: 1h\n  condition: {{gte: 3}}\nlevel: high\n",
        rule("  selection:\n    CommandLine|contains: 'whoami'\n  condition: selection")
    );
    let directory = rules_dir("correlation", &yaml);
    let mut outcomes = Vec::new();
    for literal_prefilter in [true, false] {
        let options = SigmaOptions {
            literal_prefilter,
            ..SigmaOptions::default()
        };
        let (mut engine, _) = SigmaEngine::load(std::slice::from_ref(&directory), options)
            .unwrap_or_else(|error| panic!("{error}"));
        let alerts: Vec<Vec<String>> = ["whoami", "x", "WHOAMI /all", "whoami"]
            .iter()
            .map(|command_line| {
                engine
                    .process(&sysmon(command_line))
                    .into_iter()
                    .map(|alert| alert.rule_id)
                    .collect()
            })
            .collect();
        outcomes.push(alerts);
    }
    let _ = std::fs::remove_dir_all(&directory);
    assert_eq!(outcomes[0], outcomes[1]);
    assert!(outcomes[0][3].contains(&"corr".to_owned()), "{outcomes:?}");
}
