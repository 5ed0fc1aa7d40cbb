//! Detection for citysoc: turns normalized events into alerts.
//!
//! What will live here (issue "Detection"): the `SigmaEngine` (rsigma behind our own type) that
//! loads the SigmaHQ pack and the city rules from `rules/`, logsource routing and field mappings,
//! correlation windows, YARA scanning with yara-x, threat-intel indicator matching, and the
//! `Alert` with its suppression and exceptions. Events enter from `citysoc-collector`'s `Event`;
//! alerts leave to the index and the console.
