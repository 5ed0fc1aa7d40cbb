//! Runs every YARA sample file (`rules/samples/yara/*.yml`) against the city rules
//! (`rules/yara`): each case's records go through the collector's decoder (the case's format
//! and agency) and `YaraScanner::scan_event`, and the case's expectation for its rule id must
//! hold. A preview of `citysoc rules test` for YARA.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use citysoc_collector::{Decoder, Event, InputFormat, ParseContext};
use citysoc_detect::{Alert, YaraConfig, YaraRuleSet, YaraScanner};
use serde::Deserialize;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleFile {
    rule: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    expect: Expect,
    #[serde(default)]
    rule_id: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    agency: Option<String>,
    records: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Expect {
    Alert,
    NoAlert,
}

fn sample_files() -> Vec<PathBuf> {
    let directory = Path::new(RULES).join("samples/yara");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "yml"))
        .collect();
    files.sort();
    files
}

/// The rule ids (and YARA names) of the rules compiled from `rule_file`.
fn rules_of_file<'a>(
    rules: &'a YaraRuleSet,
    rule_file: &Path,
) -> Vec<&'a citysoc_detect::YaraRuleInfo> {
    rules
        .rules()
        .filter(|info| info.file == rule_file)
        .collect()
}

fn events_of(case: &Case) -> Vec<Event> {
    let format: InputFormat = case
        .format
        .as_deref()
        .unwrap_or("auto")
        .parse()
        .unwrap_or_else(|error| panic!("case `{}`: {error}", case.name));
    let mut context = ParseContext::new("file");
    context.agency = case.agency.as_deref().map(Into::into);
    let mut decoder = Decoder::new(format, context);
    let mut events = Vec::new();
    for line in case.records.lines() {
        decoder.decode(line.as_bytes(), &mut events);
    }
    decoder.finish(&mut events);
    assert!(!events.is_empty(), "case `{}` gave no events", case.name);
    for event in &events {
        assert!(
            event.parse_error.is_none(),
            "case `{}`: record not parsed: {:?}",
            case.name,
            event.parse_error
        );
        assert_eq!(
            event.agency.as_deref(),
            case.agency.as_deref(),
            "case `{}`: agency must come from the context",
            case.name
        );
    }
    events
}

#[test]
fn every_yara_sample_case_holds() {
    let rules_directory = Path::new(RULES).join("yara");
    let (rules, problems) = YaraRuleSet::load(std::slice::from_ref(&rules_directory))
        .unwrap_or_else(|error| panic!("{error}"));
    let errors: Vec<String> = problems
        .iter()
        .filter(|problem| !problem.warning)
        .map(ToString::to_string)
        .collect();
    assert!(
        errors.is_empty(),
        "rules/yara has errors:\n{}",
        errors.join("\n")
    );
    let config = YaraConfig::default();
    let mut scanner = YaraScanner::new(&rules, &config);

    let mut cases = 0;
    let mut all_events = Vec::new();
    let mut failures = Vec::new();
    let mut rules_with_positive = BTreeSet::new();
    let mut rules_with_negative = BTreeSet::new();
    let sample_files = sample_files();
    for sample_path in &sample_files {
        let text = std::fs::read_to_string(sample_path)
            .unwrap_or_else(|error| panic!("{}: {error}", sample_path.display()));
        let sample: SampleFile = yaml_serde::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", sample_path.display()));
        let rule_file = Path::new(RULES).join(&sample.rule);
        let file_rules = rules_of_file(&rules, &rule_file);
        assert!(
            !file_rules.is_empty(),
            "{}: `{}` has no compiled rules",
            sample_path.display(),
            sample.rule
        );
        for case in &sample.cases {
            cases += 1;
            // The expected rule: the case's rule id (or YARA name), else the file's only rule.
            let expected: Vec<&str> = match &case.rule_id {
                Some(id) => {
                    let known = file_rules.iter().any(|info| {
                        &info.rule_id == id || info.qualified_name.ends_with(&format!(":{id}"))
                    });
                    assert!(
                        known,
                        "{}: case `{}` names rule `{id}`, not in {}",
                        sample_path.display(),
                        case.name,
                        sample.rule
                    );
                    vec![id.as_str()]
                }
                None => {
                    assert_eq!(
                        file_rules.len(),
                        1,
                        "{}: case `{}` needs a rule_id ({} has several rules)",
                        sample_path.display(),
                        case.name,
                        sample.rule
                    );
                    file_rules
                        .iter()
                        .map(|info| info.rule_id.as_str())
                        .collect()
                }
            };
            let events = events_of(case);
            let alerts: Vec<Alert> = events
                .iter()
                .flat_map(|event| scanner.scan_event(event))
                .collect();
            all_events.extend(events);
            let fired = alerts.iter().any(|alert| {
                expected.iter().any(|id| {
                    alert.rule_id == *id
                        || alert
                            .details
                            .get("yara_rule")
                            .and_then(|name| name.as_str())
                            .is_some_and(|name| name.ends_with(&format!(":{id}")))
                })
            });
            let ok = match case.expect {
                Expect::Alert => fired,
                Expect::NoAlert => !fired,
            };
            for id in &expected {
                match case.expect {
                    Expect::Alert => rules_with_positive.insert(id.to_string()),
                    Expect::NoAlert => rules_with_negative.insert(id.to_string()),
                };
            }
            if std::env::var_os("YARA_SAMPLES_VERBOSE").is_some() {
                let got: Vec<String> = alerts
                    .iter()
                    .map(|alert| {
                        format!(
                            "{} <- {} {}",
                            alert.rule_id,
                            alert
                                .details
                                .get("target")
                                .map(ToString::to_string)
                                .unwrap_or_default(),
                            alert
                                .details
                                .get("decoding")
                                .map(ToString::to_string)
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                println!("{} / {}: {got:?}", sample.rule, case.name);
            }
            if !ok {
                let got: Vec<String> = alerts
                    .iter()
                    .map(|alert| format!("{} {:?}", alert.rule_id, alert.details))
                    .collect();
                failures.push(format!(
                    "{} / {}: expected {:?} for {:?}, got {got:?}",
                    sample_path.display(),
                    case.name,
                    case.expect,
                    expected
                ));
            }
        }
    }

    // Every rule has at least one positive and one negative case.
    for info in rules.rules() {
        assert!(
            rules_with_positive.contains(&info.rule_id),
            "rule {} has no `expect: alert` sample case",
            info.rule_id
        );
        assert!(
            rules_with_negative.contains(&info.rule_id),
            "rule {} has no `expect: no_alert` sample case",
            info.rule_id
        );
    }
    println!(
        "yara samples: {cases} cases in {} files, {} failures; scanner stats {:?}",
        sample_files.len(),
        failures.len(),
        scanner.stats()
    );
    assert!(
        failures.is_empty(),
        "failing YARA sample cases:\n{}",
        failures.join("\n")
    );
    assert!(
        cases >= 30,
        "expected at least 30 sample cases, found {cases}"
    );
    assert_eq!(scanner.stats().timeouts + scanner.stats().errors, 0);

    // The prefilter changes the work, never the alerts: every target scanned alone, every
    // event through scan_event, and all events in one scan_events batch agree.
    let alone_config = YaraConfig {
        prefilter: false,
        ..YaraConfig::default()
    };
    let mut alone = YaraScanner::new(&rules, &alone_config);
    let expected: Vec<Alert> = all_events
        .iter()
        .flat_map(|event| alone.scan_event(event))
        .collect();
    let mut per_event = YaraScanner::new(&rules, &config);
    let one_by_one: Vec<Alert> = all_events
        .iter()
        .flat_map(|event| per_event.scan_event(event))
        .collect();
    let mut batched = YaraScanner::new(&rules, &config);
    let together = batched.scan_events(&all_events);
    assert_eq!(one_by_one, expected);
    assert_eq!(together, expected);
    let stats = batched.stats();
    assert_eq!(stats.batch_fallbacks, 0);
    assert!(
        stats.single_scans < alone.stats().single_scans,
        "batched {stats:?} vs alone {:?}",
        alone.stats()
    );
    println!(
        "prefilter: {} alerts; alone {} single scans, batched {} batch scans + {} single scans",
        expected.len(),
        alone.stats().single_scans,
        stats.batch_scans,
        stats.single_scans
    );
}
