//! Detection on received events (Sigma, threat intel and exceptions through the
//! [`Detector`], YARA when rules are loaded), and the alert log the alerts go to until the
//! triage store exists: `DATA/alerts.ndjson`, one JSON alert per line, as `citysoc import`
//! writes it.

use std::io::Write;
use std::path::Path;

use citysoc_collector::Event;
use citysoc_detect::suppression::fold_batch;
use citysoc_detect::{Alert, Detector, YaraConfig, YaraRuleSet, YaraScanner};

use crate::ConsoleError;

/// Repeats of a rule on the same entities within one batch are folded into one alert.
const SUPPRESSION_WINDOW_SECONDS: i64 = 300;

/// The loaded rules.
pub struct Detection {
    detector: Detector,
    yara: Option<YaraRuleSet>,
}

impl Detection {
    /// Detection with a detector and, optionally, compiled YARA rules.
    pub fn new(detector: Detector, yara: Option<YaraRuleSet>) -> Self {
        Detection { detector, yara }
    }

    /// The alerts raised by a batch, repeats folded.
    pub fn run(&mut self, events: &[Event]) -> Vec<Alert> {
        // A scanner borrows the rules; making one per batch is cheap next to scanning it.
        let mut scanner = self
            .yara
            .as_ref()
            .map(|rules| YaraScanner::new(rules, &YaraConfig::default()));
        let mut alerts = Vec::new();
        for event in events {
            alerts.extend(self.detector.process(event));
            if let Some(scanner) = scanner.as_mut() {
                let mut yara_alerts = scanner.scan_event(event);
                self.detector.apply_exceptions(&mut yara_alerts, event);
                alerts.extend(yara_alerts);
            }
        }
        if alerts.len() > 1 {
            fold_batch(
                alerts,
                chrono::Duration::seconds(SUPPRESSION_WINDOW_SECONDS),
            )
        } else {
            alerts
        }
    }
}

/// Appends alerts to the alert log and syncs it, so they are on disk before the batch that
/// raised them is acknowledged.
pub(crate) fn append_alerts(path: &Path, alerts: &[Alert]) -> Result<(), ConsoleError> {
    if alerts.is_empty() {
        return Ok(());
    }
    let io_error = |source| ConsoleError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    // Alerts name hosts, users and addresses of every agency: owner only.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(io_error)?;
    let mut lines = Vec::new();
    for alert in alerts {
        serde_json::to_writer(&mut lines, alert).map_err(|error| ConsoleError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(error),
        })?;
        lines.push(b'\n');
    }
    // One write call, so concurrent writers never interleave inside a line.
    let mut writer = std::io::BufWriter::new(file);
    writer.write_all(&lines).map_err(io_error)?;
    let file = writer
        .into_inner()
        .map_err(|error| io_error(error.into_error()))?;
    file.sync_data().map_err(io_error)
}
