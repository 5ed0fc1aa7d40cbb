//! What a search asks and what it gets back, the same for both stores.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use citysoc_collector::Event;

use crate::query::Query;
use crate::IndexError;

/// The agencies a caller may see. The store applies it to every query and aggregation; it is
/// built from the caller's identity, never from the query string (`agency:x` in a query only
/// narrows inside the scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgencyScope {
    /// Every agency, and events that carry none (SOC analysts, incident responders).
    All,
    /// Only events whose `agency` is one of these, compared exactly (agency admins). An empty
    /// set sees nothing.
    Only(BTreeSet<String>),
}

impl AgencyScope {
    /// The scope of one agency.
    pub fn agency(name: impl Into<String>) -> Self {
        AgencyScope::Only(BTreeSet::from([name.into()]))
    }

    /// Whether an event with this agency is visible.
    pub fn allows(&self, agency: Option<&str>) -> bool {
        match self {
            AgencyScope::All => true,
            AgencyScope::Only(agencies) => agency.is_some_and(|agency| agencies.contains(agency)),
        }
    }
}

/// A time range over `timestamp`: `from` included, `to` excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Start, included.
    pub from: DateTime<Utc>,
    /// End, excluded.
    pub to: DateTime<Utc>,
}

impl TimeRange {
    /// A checked range: an error when `to` is before `from`.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self, IndexError> {
        if to < from {
            return Err(IndexError::InvalidRequest(format!(
                "time range is backwards: from {} is after to {}",
                from.to_rfc3339(),
                to.to_rfc3339()
            )));
        }
        Ok(TimeRange { from, to })
    }

    /// All of time that events can carry.
    pub fn everything() -> Self {
        TimeRange {
            from: DateTime::<Utc>::MIN_UTC,
            to: DateTime::<Utc>::MAX_UTC,
        }
    }

    /// Whether `time` is inside.
    pub fn contains(&self, time: DateTime<Utc>) -> bool {
        self.from <= time && time < self.to
    }
}

/// Result order. Ties on `timestamp` are broken by event id, so pages never skip or repeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Latest first (the default: what happened last is what people look for).
    #[default]
    NewestFirst,
    /// Earliest first (reading a story in order).
    OldestFirst,
}

/// Where the previous page stopped: the sort key (`timestamp`, `id`) of its last event. Its
/// text form (`Display`/[`Cursor::parse`]) is what the CLI and the API hand out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// `timestamp` of the last event, microseconds since the Unix epoch.
    pub timestamp_micros: i64,
    /// `id` of the last event.
    pub id: String,
}

impl Cursor {
    /// The cursor after the event with sort key (`timestamp_micros`, `id_key`): the id as 32
    /// hex digits, which sorts as the key does (every id the collector makes is such text).
    pub(crate) fn after_key(timestamp_micros: i64, id_key: u128) -> Self {
        Cursor {
            timestamp_micros,
            id: format!("{id_key:032x}"),
        }
    }

    /// The cursor after `event`.
    pub fn after(event: &Event) -> Self {
        Cursor {
            timestamp_micros: event.timestamp.timestamp_micros(),
            id: event.id.clone(),
        }
    }

    /// Reads a cursor's text form (`<micros>:<id>`).
    pub fn parse(text: &str) -> Result<Self, IndexError> {
        let bad = || IndexError::InvalidRequest(format!("invalid cursor {text:?}"));
        let (micros, id) = text.split_once(':').ok_or_else(bad)?;
        let timestamp_micros = micros.parse().map_err(|_| bad())?;
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad());
        }
        Ok(Cursor {
            timestamp_micros,
            id: id.to_owned(),
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.timestamp_micros, self.id)
    }
}

/// A search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// What to match.
    pub query: Query,
    /// When.
    pub time: TimeRange,
    /// Whose events.
    pub scope: AgencyScope,
    /// At most this many events per page.
    pub limit: usize,
    /// Continue after this event (from the previous page's `next`).
    pub after: Option<Cursor>,
    /// Sort order.
    pub order: Order,
}

impl SearchRequest {
    /// A first page, newest first.
    pub fn new(query: Query, time: TimeRange, scope: AgencyScope, limit: usize) -> Self {
        SearchRequest {
            query,
            time,
            scope,
            limit,
            after: None,
            order: Order::NewestFirst,
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// The events, in the requested order.
    pub events: Vec<Event>,
    /// How many events match in all (not only this page).
    pub total: u64,
    /// The cursor for the next page; `None` on the last page.
    pub next: Option<Cursor>,
    /// Matches of this page whose stored event could not be read back (damaged, or stored by
    /// a version that wrote what this one cannot read), each as where it is and why: left out
    /// of `events` so that one of them does not fail the search. Pages still follow on.
    pub unreadable: Vec<String>,
}

/// What an aggregation counts: the matches of a query in a time range and scope.
#[derive(Debug, Clone)]
pub struct AggregationRequest {
    /// What to match.
    pub query: Query,
    /// When.
    pub time: TimeRange,
    /// Whose events.
    pub scope: AgencyScope,
}

/// One value of a count-by (terms) aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermCount {
    /// The value as indexed (keywords folded; numbers in decimal).
    pub value: String,
    /// Matching events with this value.
    pub count: u64,
}

/// Result of a count-by aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// The most frequent values, most frequent first; ties by value.
    pub buckets: Vec<TermCount>,
    /// Matching events whose value is not among `buckets`.
    pub other: u64,
    /// Matching events without the field.
    pub missing: u64,
}

/// A date-histogram bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(TimeDelta);

impl Interval {
    /// An interval of whole seconds, at least one and at most [`Interval::MAX_SECONDS`].
    pub fn seconds(seconds: i64) -> Result<Self, IndexError> {
        if !(1..=Self::MAX_SECONDS).contains(&seconds) {
            return Err(IndexError::InvalidRequest(format!(
                "interval must be between 1s and {}d, not {seconds}s",
                Self::MAX_SECONDS / 86_400
            )));
        }
        TimeDelta::try_seconds(seconds)
            .map(Interval)
            .ok_or_else(|| IndexError::InvalidRequest(format!("interval {seconds}s is too long")))
    }

    /// The longest interval: 100 years (longer ones overflow time arithmetic, and no search
    /// needs them).
    pub const MAX_SECONDS: i64 = 100 * 366 * 86_400;

    /// Reads `30s`, `5m`, `1h`, `1d`.
    pub fn parse(text: &str) -> Result<Self, IndexError> {
        let bad = || {
            IndexError::InvalidRequest(format!(
                "invalid interval {text:?}: write a number and a unit, s, m, h or d (e.g. 1h)"
            ))
        };
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = text.split_at(split);
        let number: i64 = number.parse().map_err(|_| bad())?;
        let unit_seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        Interval::seconds(number.checked_mul(unit_seconds).ok_or_else(bad)?)
    }

    /// The width in microseconds.
    pub fn micros(self) -> i64 {
        self.0.num_microseconds().unwrap_or(i64::MAX)
    }

    /// The start of the bucket holding `timestamp_micros` (buckets are aligned to the Unix
    /// epoch, so both stores agree).
    pub fn bucket_start(self, timestamp_micros: i64) -> i64 {
        timestamp_micros.div_euclid(self.micros()) * self.micros()
    }
}

/// One bar of a date histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramBucket {
    /// Bucket start.
    pub start: DateTime<Utc>,
    /// Matching events in `[start, start + interval)`.
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backwards_time_range_is_an_error() {
        let now = Utc::now();
        assert!(TimeRange::new(now, now - TimeDelta::seconds(1)).is_err());
        assert!(TimeRange::new(now, now).is_ok());
    }

    #[test]
    fn cursor_text_round_trips_and_rejects_junk() {
        let cursor = Cursor {
            timestamp_micros: -5,
            id: "ab12".into(),
        };
        assert_eq!(Cursor::parse(&cursor.to_string()).ok(), Some(cursor));
        for bad in ["", "12", "x:ab", "12:", "12:a b", "12:a'"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn intervals_parse_and_align_to_the_epoch() {
        assert_eq!(
            Interval::parse("1h").map(Interval::micros).ok(),
            Some(3_600_000_000)
        );
        assert_eq!(
            Interval::parse("90s").map(Interval::micros).ok(),
            Some(90_000_000)
        );
        // The last two passed `checked_mul` and then panicked in `TimeDelta::seconds`.
        for bad in [
            "",
            "h",
            "1",
            "1w",
            "0s",
            "-1h",
            "99999999999999999d",
            "9223372036854776s",
            "36601d",
        ] {
            assert!(Interval::parse(bad).is_err(), "{bad}");
        }
        let hour = Interval::parse("1h").unwrap_or(Interval(TimeDelta::hours(1)));
        assert_eq!(hour.bucket_start(3_600_000_001), 3_600_000_000);
        assert_eq!(hour.bucket_start(-1), -3_600_000_000);
    }

    #[test]
    fn scope_only_shows_listed_agencies() {
        let scope = AgencyScope::agency("quan-1");
        assert!(scope.allows(Some("quan-1")));
        assert!(!scope.allows(Some("quan-3")));
        assert!(!scope.allows(None));
        assert!(AgencyScope::All.allows(None));
    }
}
