//! Rule samples: every rule in `rules/` ships with records that must (and must not) raise it.
//!
//! A sample file `rules/samples/<kind>/<name>.yml` names its rule file and lists cases of raw
//! records, exactly as a device sends them, with the expected outcome. Running a case parses
//! the records with the collector's parsers (so parsing, logsource routing and field mapping
//! are tested with the rule), feeds them through a fresh detector in order, and checks whether
//! an alert with the expected rule id came out. This is what `citysoc rules test` runs, and a
//! table of (rule, event, expected) in the style of Hayabusa's and Chainsaw's rule tests.
//!
//! ```yaml
//! rule: sigma/ssh_bruteforce.yml
//! cases:
//!   - name: twelve failures in two minutes
//!     expect: alert              # or no_alert
//!     rule_id: 3f0c…             # optional when the file has one rule
//!     format: auto               # optional, any `citysoc parse --format`
//!     agency: quan-1             # optional
//!     records: |
//!       <38>Nov 22 08:20:01 host sshd[1]: Failed password for root from 203.0.113.45 …
//! ```

use std::path::{Path, PathBuf};

use citysoc_collector::{Decoder, Event, InputFormat, ParseContext};
use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::error::DetectError;

/// One sample file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleFile {
    /// The rule file, relative to the rules directory.
    pub rule: String,
    /// The cases.
    pub cases: Vec<SampleCase>,
}

/// Whether a case must raise its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// At least one alert with the rule id.
    Alert,
    /// No alert with the rule id.
    NoAlert,
}

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleCase {
    /// What the case shows.
    pub name: String,
    /// Expected outcome.
    pub expect: Expectation,
    /// The rule id expected; defaults to the rule file's only rule.
    #[serde(default)]
    pub rule_id: Option<String>,
    /// Format of the records (default auto).
    #[serde(default)]
    pub format: Option<String>,
    /// Agency the records belong to.
    #[serde(default)]
    pub agency: Option<String>,
    /// The records, one per line.
    pub records: String,
}

/// The outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseOutcome {
    /// The sample file.
    pub sample: PathBuf,
    /// The rule file.
    pub rule: String,
    /// The case name.
    pub case: String,
    /// The rule id checked.
    pub rule_id: String,
    /// What was expected.
    pub expect: Expectation,
    /// True when the expectation held.
    pub passed: bool,
    /// Alerts with the rule id that were raised.
    pub matching_alerts: usize,
    /// Events the records became (and how many were `unknown`), to spot parse problems.
    pub events: usize,
    /// Events no parser understood.
    pub unknown_events: usize,
}

/// Something that raises alerts from events, built fresh for each case.
pub trait CaseDetector {
    /// Every alert for one event (in event order; state such as correlation windows kept).
    fn detect(&mut self, event: &Event) -> Vec<Alert>;
    /// The rule ids this detector loaded from the rule file (for the default `rule_id`).
    fn rule_ids(&self) -> Vec<String>;
}

/// Every sample file under `directory`, sorted.
pub fn sample_files(directory: &Path) -> Result<Vec<PathBuf>, DetectError> {
    if !directory.exists() {
        return Ok(Vec::new());
    }
    crate::sigma::rule_files(&[directory.to_owned()])
}

/// Reads one sample file.
pub fn read_sample_file(path: &Path) -> Result<SampleFile, DetectError> {
    let text = std::fs::read_to_string(path).map_err(|source| DetectError::Read {
        path: path.to_owned(),
        source,
    })?;
    yaml_serde::from_str(&text).map_err(|error| DetectError::InvalidFile {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

/// The events of a case's records, parsed as `citysoc parse` would.
pub fn case_events(case: &SampleCase, sample: &Path) -> Result<Vec<Event>, DetectError> {
    let input_format: InputFormat = case.format.as_deref().unwrap_or("auto").parse().map_err(
        |error: citysoc_collector::CollectorError| DetectError::InvalidFile {
            path: sample.to_owned(),
            reason: format!("case `{}`: {error}", case.name),
        },
    )?;
    let mut context = ParseContext::new("sample");
    // A fixed receive time: BSD syslog samples have no year, and a run must not depend on
    // the day it runs. Late December keeps every sample month in the same year.
    context.received_at = chrono::DateTime::parse_from_rfc3339("2026-12-31T23:00:00Z")
        .map(|time| time.with_timezone(&chrono::Utc))
        .unwrap_or(context.received_at);
    context.agency = case.agency.as_deref().map(Into::into);
    context.source.address = Some(sample.display().to_string().into());
    let mut decoder = Decoder::new(input_format, context);
    let mut events = Vec::new();
    for line in case.records.lines() {
        decoder.decode(line.as_bytes(), &mut events);
    }
    decoder.finish(&mut events);
    Ok(events)
}

/// Runs one case against a detector built for it.
pub fn run_case(
    sample: &Path,
    file: &SampleFile,
    case: &SampleCase,
    detector: &mut dyn CaseDetector,
) -> Result<CaseOutcome, DetectError> {
    let rule_id = match &case.rule_id {
        Some(rule_id) => rule_id.clone(),
        None => {
            let ids = detector.rule_ids();
            match ids.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Err(DetectError::InvalidFile {
                        path: sample.to_owned(),
                        reason: format!(
                            "case `{}`: the rule file has {} rules; say which with `rule_id`",
                            case.name,
                            ids.len()
                        ),
                    })
                }
            }
        }
    };
    let events = case_events(case, sample)?;
    let unknown_events = events
        .iter()
        .filter(|event| event.format == citysoc_collector::Format::Unknown)
        .count();
    let matching_alerts = events
        .iter()
        .flat_map(|event| detector.detect(event))
        .filter(|alert| alert.rule_id == rule_id)
        .count();
    let passed = match case.expect {
        Expectation::Alert => matching_alerts > 0,
        Expectation::NoAlert => matching_alerts == 0,
    };
    Ok(CaseOutcome {
        sample: sample.to_owned(),
        rule: file.rule.clone(),
        case: case.name.clone(),
        rule_id,
        expect: case.expect,
        passed,
        matching_alerts,
        events: events.len(),
        unknown_events,
    })
}
