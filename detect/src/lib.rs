//! Detection for citysoc: turns normalized events into alerts.
//!
//! Events enter as `citysoc_collector::Event`. The [`sigma`] engine (rsigma behind our own
//! `SigmaEngine`) evaluates the SigmaHQ pack and the city rules with logsource routing and
//! field mappings, correlation rules keep bounded windows; [`yara`] scans chosen payload
//! fields with yara-x; [`intel`] matches threat-intelligence indicators. Every hit leaves as an
//! [`Alert`], which [`alert`] groups (suppression) and filters (exceptions) before the index
//! and the console see it.

mod error;

pub mod alert;
pub mod yara;

pub use alert::{Alert, AlertKind, Entities, Level};
pub use error::DetectError;
pub use yara::{RuleLoadProblem, YaraConfig, YaraRuleInfo, YaraRuleSet, YaraScanner, YaraStats};
