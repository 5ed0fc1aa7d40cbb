//! Retention: whole agency-day indexes are removed once older than the agency's policy.
//! Removal renames the directory to a hidden trash name first, so a crash mid-delete never
//! leaves a half-deleted index where a search would open it.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{NaiveDate, TimeDelta};

use super::partition::{agency_dir, day_dir, read_dir};
use crate::IndexError;

/// How many days each agency's events are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Days kept for agencies not listed (and events without agency); `None` keeps forever.
    pub default_days: Option<u32>,
    /// Days kept per agency.
    pub agencies: BTreeMap<String, u32>,
}

impl RetentionPolicy {
    /// Whether the day index of `agency` for `day` is past retention on `today`. Keeping `n`
    /// days means today and the `n - 1` days before it.
    pub fn expired(&self, agency: Option<&str>, day: NaiveDate, today: NaiveDate) -> bool {
        let days = agency
            .and_then(|agency| self.agencies.get(agency).copied())
            .or(self.default_days);
        match days {
            None => false,
            // A retention longer than the calendar (a mistyped number of days) keeps all.
            Some(days) => today
                .checked_sub_signed(TimeDelta::days(i64::from(days)))
                .is_some_and(|limit| day <= limit),
        }
    }
}

/// What a retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// (agency, day) of each removed index.
    pub dropped: Vec<(Option<String>, NaiveDate)>,
    /// Events added to those days through this store and not committed yet, dropped with them
    /// (as old as what the policy removes; counted so that no drop goes unseen). Always 0 for
    /// `citysoc retention`, which opens the store on its own and adds nothing; it matters to a
    /// process that stores and applies retention in one `TantivyStore`.
    pub uncommitted_dropped: u64,
}

/// Removes one day index: rename to trash, then delete.
pub fn remove_day(root: &Path, agency: Option<&str>, day: NaiveDate) -> Result<(), IndexError> {
    let agency_path = root.join(agency_dir(agency));
    let path = agency_path.join(day_dir(day));
    let trash = agency_path.join(format!(".trash-{}-{}", day_dir(day), std::process::id()));
    std::fs::rename(&path, &trash).map_err(|source| IndexError::Io {
        path: path.clone(),
        source,
    })?;
    std::fs::remove_dir_all(&trash).map_err(|source| IndexError::Io {
        path: trash,
        source,
    })
}

/// Deletes staging (`.new-*`) and trash (`.trash-*`) directories a crash left behind.
pub fn remove_leftovers(root: &Path) -> Result<(), IndexError> {
    for agency in read_dir(root)? {
        let agency_path = root.join(agency);
        let entries = std::fs::read_dir(&agency_path).map_err(|source| IndexError::Io {
            path: agency_path.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".new-") || name.starts_with(".trash-") {
                let path = entry.path();
                std::fs::remove_dir_all(&path).map_err(|source| IndexError::Io { path, source })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_default()
    }

    #[test]
    fn keeping_n_days_keeps_today_and_n_minus_one_before() {
        let policy = RetentionPolicy {
            default_days: Some(2),
            agencies: BTreeMap::from([("so-y-te".to_owned(), 30)]),
        };
        let today = day("2026-11-22");
        assert!(!policy.expired(None, day("2026-11-22"), today));
        assert!(!policy.expired(None, day("2026-11-21"), today));
        assert!(policy.expired(None, day("2026-11-20"), today));
        assert!(!policy.expired(Some("so-y-te"), day("2026-10-24"), today));
        assert!(policy.expired(Some("so-y-te"), day("2026-10-23"), today));
        assert!(!RetentionPolicy::default().expired(None, day("1970-01-01"), today));
        // More days than the calendar holds (a mistyped number): nothing expires, no panic.
        let forever = RetentionPolicy {
            default_days: Some(u32::MAX),
            agencies: BTreeMap::new(),
        };
        assert!(!forever.expired(None, NaiveDate::MIN, today));
    }
}
