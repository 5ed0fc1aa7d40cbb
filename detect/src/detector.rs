//! The detection stage as one piece: Sigma (with mappings and placeholders), exceptions, and
//! the counters a SOC wants to see. YARA and threat-intel plug in next to Sigma here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use citysoc_collector::Event;
use serde::Serialize;

use crate::alert::Alert;
use crate::error::DetectError;
use std::sync::Arc;

use crate::exceptions::Exceptions;
use crate::intel::{IntelMatcher, IntelStore, LoadOptions};
use crate::sigma::mapping::FieldMappings;
use crate::sigma::{LoadReport, SigmaEngine, SigmaOptions};

/// Where the detection content is.
#[derive(Debug, Clone, Default)]
pub struct DetectorConfig {
    /// Sigma rule files and directories (SigmaHQ packs and `rules/sigma`).
    pub sigma_paths: Vec<PathBuf>,
    /// Field mappings directory (`rules/mappings`), optional.
    pub mappings_dir: Option<PathBuf>,
    /// Placeholder lists (`rules/placeholders.yml`: name → values), optional.
    pub placeholders_file: Option<PathBuf>,
    /// Exceptions directory (`rules/exceptions`), optional.
    pub exceptions_dir: Option<PathBuf>,
    /// Threat-intel list files or directories (`rules/intel`); empty: no intel matching.
    pub intel_paths: Vec<PathBuf>,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DetectorStats {
    /// Events seen.
    pub events: u64,
    /// Alerts raised (after exceptions).
    pub alerts: u64,
    /// Alerts an exception silenced (counted per exception in [`Exceptions::hits`]).
    pub silenced: u64,
}

/// Sigma + exceptions.
#[derive(Debug)]
pub struct Detector {
    sigma: SigmaEngine,
    intel: Option<IntelMatcher>,
    exceptions: Exceptions,
    stats: DetectorStats,
}

/// Reads `name: [values]` placeholder lists.
pub fn read_placeholders(path: &Path) -> Result<BTreeMap<String, Vec<String>>, DetectError> {
    let text = std::fs::read_to_string(path).map_err(|source| DetectError::Read {
        path: path.to_owned(),
        source,
    })?;
    yaml_serde::from_str(&text).map_err(|error| DetectError::InvalidFile {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

impl Detector {
    /// Loads everything; rule problems are in the report, configuration problems are errors.
    pub fn build(
        config: &DetectorConfig,
        now: DateTime<Utc>,
    ) -> Result<(Detector, LoadReport), DetectError> {
        let mut options = SigmaOptions::default();
        if let Some(directory) = &config.mappings_dir {
            options.mappings = FieldMappings::load_dir(directory)?;
        }
        if let Some(path) = &config.placeholders_file {
            if path.exists() {
                options.placeholders = read_placeholders(path)?;
            }
        }
        let exceptions = match &config.exceptions_dir {
            Some(directory) => Exceptions::load_dir(directory, now)?,
            None => Exceptions::none(),
        };
        let (sigma, mut report) = SigmaEngine::load(&config.sigma_paths, options)?;
        let intel = if config.intel_paths.is_empty() {
            None
        } else {
            let store = IntelStore::open(
                config.intel_paths.clone(),
                LoadOptions {
                    now: Some(now),
                    ..LoadOptions::default()
                },
            )?;
            for problem in store.current().problems() {
                let reason = match &problem.location {
                    Some(location) => format!("{location}: {}", problem.reason),
                    None => problem.reason.clone(),
                };
                report.problems.push(crate::sigma::RuleProblem {
                    path: problem.path.clone(),
                    rule_id: None,
                    reason,
                });
            }
            Some(IntelMatcher::new(Arc::new(store)))
        };
        Ok((
            Detector {
                sigma,
                intel,
                exceptions,
                stats: DetectorStats::default(),
            },
            report,
        ))
    }

    /// Every alert for one event, exceptions applied (and counted).
    pub fn process(&mut self, event: &Event) -> Vec<Alert> {
        self.stats.events += 1;
        let mut alerts = self.sigma.process(event);
        if let Some(intel) = &mut self.intel {
            alerts.extend(intel.match_event(event));
        }
        self.apply_exceptions(&mut alerts, event);
        alerts
    }

    /// Applies the exceptions to alerts another detector (a YARA scanner beside this one)
    /// raised for `event`, counting what they silence like the Detector's own.
    pub fn apply_exceptions(&mut self, alerts: &mut Vec<Alert>, event: &Event) {
        let before = alerts.len();
        alerts.retain(|alert| self.exceptions.silencing(alert, event).is_none());
        self.stats.silenced += (before - alerts.len()) as u64;
        self.stats.alerts += alerts.len() as u64;
    }

    /// True when the last event matched any detection rule (see
    /// [`SigmaEngine::last_event_matched`]).
    pub fn last_event_matched(&self) -> bool {
        self.sigma.last_event_matched()
    }

    /// Counters.
    pub fn stats(&self) -> DetectorStats {
        self.stats
    }

    /// The Sigma engine.
    pub fn sigma(&self) -> &SigmaEngine {
        &self.sigma
    }

    /// The exceptions, with their hit counts.
    pub fn exceptions(&self) -> &Exceptions {
        &self.exceptions
    }
}
