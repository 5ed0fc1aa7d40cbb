//! Suppression: the same rule on the same entities within a window is one alert with a count.
//!
//! Alerts are grouped by their grouping key (rule, agency, host, user, ip). The first alert of
//! a group is raised at once (an analyst should not wait for a window to close to see an
//! attack); repeats inside the window fold into it — `count` goes up, `last_seen` moves, event
//! ids are kept up to a cap — and are reported as updates. Memory is bounded: at most
//! `max_open` groups are held; the oldest is closed first. Times are event times, so a replay
//! of old logs groups the same way as the live stream did.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::alert::Alert;

/// Event ids kept per grouped alert; beyond it only the count grows (and `event_ids_dropped`).
pub const MAX_EVENT_IDS: usize = 100;

/// What happened to an offered alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Offered {
    /// A new alert: raise it.
    New(Alert),
    /// Folded into an open alert: this is the updated alert (same id, higher count).
    Folded(Alert),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SuppressionStats {
    /// Alerts raised as new.
    pub raised: u64,
    /// Alerts folded into an open one.
    pub folded: u64,
    /// Event ids not kept because a group passed [`MAX_EVENT_IDS`] (still counted).
    pub event_ids_dropped: u64,
    /// Groups closed early because `max_open` was reached.
    pub evicted: u64,
}

/// `time + window`, or chrono's last time when that is past it. Event times are held to years
/// 1–9999 (`citysoc_collector::timestamp::within_event_years`), but alerts also come from
/// stored and imported events, and `DateTime + TimeDelta` panics past the end: one batch
/// with such a time would fail every time the collector resent it.
fn later_by(time: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    time.checked_add_signed(window)
        .unwrap_or(if window < Duration::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// The open groups.
#[derive(Debug)]
pub struct Suppressor {
    window: Duration,
    max_open: usize,
    open: HashMap<String, Alert>,
    stats: SuppressionStats,
}

impl Suppressor {
    /// Groups repeats within `window`, holding at most `max_open` groups.
    pub fn new(window: Duration, max_open: usize) -> Self {
        Suppressor {
            window,
            max_open: max_open.max(1),
            open: HashMap::new(),
            stats: SuppressionStats::default(),
        }
    }

    /// Offers one alert.
    pub fn offer(&mut self, alert: Alert) -> Offered {
        if let Some(open) = self.open.get_mut(&alert.grouping_key) {
            if alert.first_seen <= later_by(open.last_seen, self.window)
                && later_by(alert.first_seen, self.window) >= open.first_seen
            {
                open.count += alert.count;
                open.first_seen = open.first_seen.min(alert.first_seen);
                open.last_seen = open.last_seen.max(alert.last_seen);
                for id in alert.event_ids {
                    if open.event_ids.len() < MAX_EVENT_IDS {
                        if !open.event_ids.contains(&id) {
                            open.event_ids.push(id);
                        }
                    } else {
                        self.stats.event_ids_dropped += 1;
                        let dropped = open
                            .details
                            .entry("event_ids_not_listed")
                            .or_insert(0.into());
                        *dropped = (dropped.as_u64().unwrap_or(0) + 1).into();
                    }
                }
                self.stats.folded += 1;
                return Offered::Folded(open.clone());
            }
        }
        if self.open.len() >= self.max_open && !self.open.contains_key(&alert.grouping_key) {
            self.evict_oldest();
        }
        self.stats.raised += 1;
        self.open.insert(alert.grouping_key.clone(), alert.clone());
        Offered::New(alert)
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, alert)| alert.last_seen)
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            self.open.remove(&key);
            self.stats.evicted += 1;
        }
    }

    /// Closes the groups whose window ended before `now` (event time); returns them.
    pub fn close_expired(&mut self, now: DateTime<Utc>) -> Vec<Alert> {
        let window = self.window;
        let expired: Vec<String> = self
            .open
            .iter()
            .filter(|(_, alert)| later_by(alert.last_seen, window) < now)
            .map(|(key, _)| key.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|key| self.open.remove(&key))
            .collect()
    }

    /// Counters.
    pub fn stats(&self) -> SuppressionStats {
        self.stats
    }

    /// Groups currently open.
    pub fn open_groups(&self) -> usize {
        self.open.len()
    }
}

/// Folds a whole batch (a hunt over files): every alert once, repeats counted, sorted by time.
pub fn fold_batch(alerts: Vec<Alert>, window: Duration) -> Vec<Alert> {
    let mut alerts = alerts;
    alerts.sort_by_key(|alert| alert.first_seen);
    let mut suppressor = Suppressor::new(window, usize::MAX);
    let mut order: Vec<String> = Vec::new();
    let mut latest: HashMap<String, Alert> = HashMap::new();
    for alert in alerts {
        match suppressor.offer(alert) {
            Offered::New(alert) => {
                // A new group with the same key replaces the closed one in `latest`; keep both.
                let key = format!("{}#{}", alert.grouping_key, alert.id);
                order.push(key.clone());
                latest.insert(key, alert);
            }
            Offered::Folded(alert) => {
                let key = format!("{}#{}", alert.grouping_key, alert.id);
                latest.insert(key, alert);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|key| latest.remove(&key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertKind, Level};
    use chrono::TimeZone;
    use citysoc_collector::{parse_record, InputFormat, ParseContext};

    fn alert_at(seconds: i64, address: &str) -> Alert {
        let mut context = ParseContext::new("test");
        context.received_at = Utc
            .timestamp_opt(1_763_800_000 + seconds, 0)
            .single()
            .unwrap_or_default();
        let time = Utc
            .with_ymd_and_hms(2026, 11, 22, 8, 0, 0)
            .single()
            .unwrap_or_default()
            + Duration::seconds(seconds);
        let line = format!(
            "<38>{} host sshd[1]: Failed password for root from {address} port 4 ssh2",
            time.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let event = parse_record(line.as_bytes(), InputFormat::Auto, &context, seconds as u64);
        Alert::for_event(
            AlertKind::Sigma,
            "ssh-fail",
            "SSH failure",
            Level::Low,
            vec![],
            &event,
        )
    }

    #[test]
    fn repeats_in_the_window_fold_and_others_do_not() {
        let mut suppressor = Suppressor::new(Duration::minutes(5), 10);
        assert!(matches!(
            suppressor.offer(alert_at(0, "203.0.113.1")),
            Offered::New(_)
        ));
        let Offered::Folded(folded) = suppressor.offer(alert_at(60, "203.0.113.1")) else {
            panic!("not folded")
        };
        assert_eq!((folded.count, folded.event_ids.len()), (2, 2));
        assert!(matches!(
            suppressor.offer(alert_at(61, "203.0.113.2")),
            Offered::New(_)
        ));
        // Outside the window: a new alert for the same key.
        assert!(matches!(
            suppressor.offer(alert_at(60 * 20, "203.0.113.1")),
            Offered::New(_)
        ));
        assert_eq!(suppressor.stats().folded, 1);
    }

    /// Alerts at chrono's ends (a stored or imported event's time): repeats still fold and
    /// groups still close, with no overflow panic.
    #[test]
    fn times_at_the_ends_of_the_calendar_fold_without_panic() {
        for end in [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
            let mut suppressor = Suppressor::new(Duration::minutes(5), 10);
            let at_end = || {
                let mut alert = alert_at(0, "203.0.113.1");
                (alert.first_seen, alert.last_seen) = (end, end);
                alert
            };
            assert!(matches!(suppressor.offer(at_end()), Offered::New(_)));
            assert!(matches!(suppressor.offer(at_end()), Offered::Folded(_)));
            assert_eq!(suppressor.close_expired(end).len(), 0);
            let closed = suppressor.close_expired(DateTime::<Utc>::MAX_UTC);
            assert_eq!(closed.len(), usize::from(end == DateTime::<Utc>::MIN_UTC));
        }
    }

    #[test]
    fn memory_is_bounded_and_evictions_counted() {
        let mut suppressor = Suppressor::new(Duration::minutes(5), 2);
        for index in 0..5 {
            suppressor.offer(alert_at(index, &format!("203.0.113.{index}")));
        }
        assert_eq!(suppressor.open_groups(), 2);
        assert_eq!(suppressor.stats().evicted, 3);
    }

    #[test]
    fn batches_fold_per_window() {
        let alerts = (0..10)
            .map(|index| alert_at(index * 10, "203.0.113.1"))
            .chain([alert_at(3600, "203.0.113.1")])
            .collect();
        let folded = fold_batch(alerts, Duration::minutes(5));
        assert_eq!(
            folded.iter().map(|alert| alert.count).collect::<Vec<_>>(),
            [10, 1]
        );
    }
}
