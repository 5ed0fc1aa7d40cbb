//! Detection for citysoc: turns normalized events into alerts.
//!
//! Events enter as `citysoc_collector::Event`. The [`sigma`] engine (rsigma behind our own
//! `SigmaEngine`) evaluates the SigmaHQ pack and the city rules with logsource routing and
//! field mappings, correlation rules keep bounded windows; [`yara`] scans chosen payload
//! fields with yara-x; [`intel`] matches threat-intelligence indicators. Every hit leaves as an
//! [`Alert`], which [`alert`] groups (suppression) and filters (exceptions) before the index
//! and the console see it.

// Only the allocator crate may hold `unsafe` (allocator/: a global allocator is an unsafe
// trait over C); no other crate needs any.
#![forbid(unsafe_code)]

mod error;

pub mod alert;
pub mod detector;
pub mod exceptions;
pub mod intel;
pub mod samples;
pub mod sigma;
pub mod suppression;
pub mod yara;

pub use alert::{Alert, AlertKind, Entities, Level};
pub use detector::{Detector, DetectorConfig};
pub use error::DetectError;
pub use exceptions::Exceptions;
pub use intel::{IntelMatcher, IntelSet, IntelStore};
pub use sigma::{LoadReport, RuleProblem, SigmaEngine, SigmaOptions};
pub use suppression::{Offered, Suppressor};
pub use yara::{RuleLoadProblem, YaraConfig, YaraRuleInfo, YaraRuleSet, YaraScanner, YaraStats};

impl samples::CaseDetector for SigmaEngine {
    fn detect(&mut self, event: &citysoc_collector::Event) -> Vec<Alert> {
        self.process(event)
    }

    fn rule_ids(&self) -> Vec<String> {
        SigmaEngine::rule_ids(self)
    }
}
