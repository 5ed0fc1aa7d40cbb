//! An error a source meets again and again (a file that cannot be read at every poll): every
//! occurrence is counted, the log gets the first at once and then at most one summary line per
//! [`SUMMARY_INTERVAL`] (also after the error stops, for the ones not logged yet). The
//! counters show how often it happens; the log shows that it still does, without a line per
//! poll.

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::metrics::{SourceErrorKind, SourceMetrics};

/// At most one log line per this interval for one repeated error.
pub(crate) const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// One kind of repeated error of one source (see the module docs).
#[derive(Debug)]
pub(crate) struct RepeatedError {
    kind: SourceErrorKind,
    /// What failed, for the log: "cannot read the file".
    what: &'static str,
    /// When the last line about it was logged; `None` before the first occurrence.
    last_logged: Option<Instant>,
    /// Occurrences since that line.
    not_logged: u64,
}

impl RepeatedError {
    /// A tracker for errors of `kind`, described as `what` in the log.
    pub(crate) fn new(kind: SourceErrorKind, what: &'static str) -> Self {
        RepeatedError {
            kind,
            what,
            last_logged: None,
            not_logged: 0,
        }
    }

    /// One occurrence: always counted; logged when it is the first or when a summary is due.
    pub(crate) fn occurred(&mut self, source: &str, metrics: &SourceMetrics, error: &dyn Display) {
        metrics.add_error(self.kind);
        let due = self
            .last_logged
            .is_none_or(|at| at.elapsed() >= SUMMARY_INTERVAL);
        if !due {
            self.not_logged += 1;
            return;
        }
        if self.last_logged.is_none() {
            tracing::error!(source = %source, %error, "{}", self.what);
        } else {
            tracing::error!(
                source = %source,
                %error,
                repeated = self.not_logged + 1,
                "{} (again; `repeated` counts the times since the last line about it)",
                self.what
            );
        }
        self.last_logged = Some(Instant::now());
        self.not_logged = 0;
    }

    /// Logs the summary of the occurrences not logged yet once [`SUMMARY_INTERVAL`] has passed
    /// since the last line, so an error that stops is not left out of the log. Called at every
    /// poll; costs a clock read while there is something to summarize.
    pub(crate) fn summarize_when_due(&mut self, source: &str) {
        if self.not_logged == 0 {
            return;
        }
        if self
            .last_logged
            .is_some_and(|at| at.elapsed() < SUMMARY_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            source = %source,
            repeated = self.not_logged,
            "{} (`repeated` counts the times since the last line about it)",
            self.what
        );
        self.last_logged = Some(Instant::now());
        self.not_logged = 0;
    }

    /// Occurrences neither logged on their own nor in a summary yet.
    #[cfg(test)]
    fn not_logged(&self) -> u64 {
        self.not_logged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_is_counted_and_only_the_first_logged_at_once() {
        let metrics = SourceMetrics::new("auth", "file");
        let mut read = RepeatedError::new(SourceErrorKind::Read, "cannot read the file");
        for _ in 0..5 {
            read.occurred("auth", &metrics, &"Is a directory");
        }
        assert_eq!(metrics.errors(SourceErrorKind::Read), 5);
        assert_eq!(read.not_logged(), 4, "the first is logged, the rest wait");
        read.summarize_when_due("auth");
        assert_eq!(read.not_logged(), 4, "no summary before the interval");
        // As if the first line had been logged an interval ago.
        read.last_logged = Instant::now().checked_sub(SUMMARY_INTERVAL);
        read.summarize_when_due("auth");
        assert_eq!(read.not_logged(), 0, "the summary covers them");
        read.occurred("auth", &metrics, &"Is a directory");
        assert_eq!(read.not_logged(), 1, "the summary starts a new interval");
        assert_eq!(metrics.errors(SourceErrorKind::Read), 6);
    }
}
