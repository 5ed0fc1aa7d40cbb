//! The server's counters and their Prometheus text form (`GET /metrics`). Counters start at
//! zero when the server starts (Prometheus handles resets); the per-collector totals that
//! survive restarts are in the registry.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters of every place a request or an event can be refused, stored, or found twice.
#[derive(Debug, Default)]
pub struct Metrics {
    rejected: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Batches acknowledged (re-sent ones included).
    pub batches: AtomicU64,
    /// Batches acknowledged again with the same number (a lost acknowledgement).
    pub batches_resent: AtomicU64,
    /// Events stored.
    pub events: AtomicU64,
    /// Events received that the store already had.
    pub duplicates: AtomicU64,
    /// Batch numbers that skipped ahead.
    pub gaps: AtomicU64,
    /// Batch numbers skipped over.
    pub missing_batches: AtomicU64,
    /// Alerts raised by detection on received events.
    pub alerts: AtomicU64,
    /// Collectors enrolled.
    pub enrollments: AtomicU64,
    /// Keys rotated.
    pub rotations: AtomicU64,
    /// Heartbeats stored.
    pub heartbeats: AtomicU64,
    /// Commits made by the timer (events that arrived before a quiet spell).
    pub timer_commits: AtomicU64,
    /// Events whose `received_at` was implausible and was set to the server's arrival time.
    pub received_at_corrected: AtomicU64,
}

impl Metrics {
    /// Counts a refused request.
    pub fn reject(&self, endpoint: &'static str, reason: &'static str) {
        let mut rejected = self
            .rejected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *rejected.entry((endpoint, reason)).or_insert(0) += 1;
    }

    /// Refused requests of one endpoint for one reason so far.
    pub fn rejected(&self, endpoint: &str, reason: &str) -> u64 {
        self.rejected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|((e, r), _)| *e == endpoint && *r == reason)
            .map(|(_, count)| *count)
            .sum()
    }

    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP citysoc_rejected_total Requests refused, by endpoint and reason.\n\
             # TYPE citysoc_rejected_total counter\n",
        );
        let rejected = self
            .rejected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        for ((endpoint, reason), count) in rejected {
            let _ = writeln!(
                out,
                "citysoc_rejected_total{{endpoint=\"{endpoint}\",reason=\"{reason}\"}} {count}"
            );
        }
        let counters: [(&str, &str, &AtomicU64); 12] = [
            (
                "citysoc_intake_batches_total",
                "Batches acknowledged (re-sent ones included).",
                &self.batches,
            ),
            (
                "citysoc_intake_batches_resent_total",
                "Batches acknowledged again under the same number.",
                &self.batches_resent,
            ),
            (
                "citysoc_intake_events_total",
                "Events stored.",
                &self.events,
            ),
            (
                "citysoc_intake_duplicates_total",
                "Events received that the store already had.",
                &self.duplicates,
            ),
            (
                "citysoc_intake_gaps_total",
                "Times a collector's batch number skipped ahead.",
                &self.gaps,
            ),
            (
                "citysoc_intake_missing_batches_total",
                "Batch numbers skipped over.",
                &self.missing_batches,
            ),
            (
                "citysoc_alerts_total",
                "Alerts raised on received events.",
                &self.alerts,
            ),
            (
                "citysoc_enrollments_total",
                "Collectors enrolled.",
                &self.enrollments,
            ),
            (
                "citysoc_key_rotations_total",
                "Collector keys rotated.",
                &self.rotations,
            ),
            (
                "citysoc_heartbeats_total",
                "Heartbeats stored.",
                &self.heartbeats,
            ),
            (
                "citysoc_timer_commits_total",
                "Store commits made by the timer.",
                &self.timer_commits,
            ),
            (
                "citysoc_intake_received_at_corrected_total",
                "Events whose received_at was in the future or over a year old, set to the server's time (the reported one kept as received_at_reported).",
                &self.received_at_corrected,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                counter.load(Ordering::Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_lists_every_counter_and_rejection() {
        let metrics = Metrics::default();
        metrics.reject("intake", "replay");
        metrics.reject("intake", "replay");
        Metrics::add(&metrics.events, 5);
        let text = metrics.render();
        assert!(text.contains("citysoc_rejected_total{endpoint=\"intake\",reason=\"replay\"} 2\n"));
        assert!(text.contains("\ncitysoc_intake_events_total 5\n"));
        assert!(text.contains("\ncitysoc_intake_gaps_total 0\n"));
        assert_eq!(metrics.rejected("intake", "replay"), 2);
    }
}
