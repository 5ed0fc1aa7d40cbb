//! Local calendar times to UTC by integer arithmetic, for the BSD syslog hot path.
//!
//! [`resolve_bsd_time`](super::resolve_bsd_time) reads the same calendar date for every
//! record of a burst, and going through chrono for it (`NaiveDate::from_ymd_opt`, then
//! subtracting the zone offset as a `Duration`, then the UTC date rebuilt from a day count)
//! cost ~500 instructions a line. Here the local time becomes seconds since the epoch by
//! arithmetic, the zone offset comes from the per-hour cache ([`zone_cache`]), and the UTC date
//! is rebuilt through a one-entry per-thread cache of the last UTC day. Whatever the fast path
//! cannot vouch for (years outside 1..=9999, an hour with a DST change) takes chrono's path,
//! so the result is always the one [`zone_cache::local_to_utc`] gives (a property test holds
//! the two equal, in zones with and without DST).

use std::cell::Cell;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;

use super::zone_cache;

/// `year-month-day time` read in `zone`, in UTC; `None` when there is no such date (Feb 30,
/// Feb 29 of a common year), exactly as `NaiveDate::from_ymd_opt` then
/// [`zone_cache::local_to_utc`].
pub(super) fn local_date_time_to_utc(
    year: i32,
    month: u32,
    day: u32,
    time: NaiveTime,
    zone: Tz,
) -> Option<DateTime<Utc>> {
    let chrono_path = || {
        NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|date| zone_cache::local_to_utc(NaiveDateTime::new(date, time), zone))
    };
    // Outside these years chrono's range checks decide; a leap-second time (nanoseconds past
    // one second) is chrono's to represent. Neither comes from a BSD header in practice.
    if !(1..=9999).contains(&year) || time.nanosecond() >= 1_000_000_000 {
        return chrono_path();
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let local_seconds =
        days_from_epoch(year, month, day) * 86_400 + i64::from(time.num_seconds_from_midnight());
    match zone_cache::uniform_offset(zone, local_seconds.div_euclid(3600)) {
        Some(offset) => utc_from_seconds(local_seconds - i64::from(offset), time.nanosecond()),
        // An hour with a DST change: chrono's gap and fold handling.
        None => chrono_path(),
    }
}

/// Days from 1970-01-01 to a valid proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_epoch(year: i32, month: u32, day: u32) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

thread_local! {
    /// The last UTC day turned into a date: (days since the epoch, its date).
    static LAST_DAY: Cell<Option<(i64, NaiveDate)>> = const { Cell::new(None) };
}

/// The instant `seconds` after the epoch plus `nanos` (under a second), its date taken from
/// the per-thread cache when it is the same UTC day as last time.
fn utc_from_seconds(seconds: i64, nanos: u32) -> Option<DateTime<Utc>> {
    let day = seconds.div_euclid(86_400);
    let second_of_day = u32::try_from(seconds.rem_euclid(86_400)).ok()?;
    let cached = LAST_DAY
        .try_with(Cell::get)
        .ok()
        .flatten()
        .filter(|(cached_day, _)| *cached_day == day)
        .map(|(_, date)| date);
    let date = match cached {
        Some(date) => date,
        None => {
            let date = DateTime::from_timestamp(day.checked_mul(86_400)?, 0)?.date_naive();
            // `try_with` fails only while the thread is being torn down: then nothing is kept.
            let _ = LAST_DAY.try_with(|last| last.set(Some((day, date))));
            date
        }
    };
    let time = NaiveTime::from_num_seconds_from_midnight_opt(second_of_day, nanos)?;
    Some(NaiveDateTime::new(date, time).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the fast path replaces: chrono's date, then the zone cache's reading.
    fn reference(
        year: i32,
        month: u32,
        day: u32,
        time: NaiveTime,
        zone: Tz,
    ) -> Option<DateTime<Utc>> {
        NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|date| zone_cache::exact_local_to_utc(NaiveDateTime::new(date, time), zone))
    }

    const ZONES: [Tz; 5] = [
        chrono_tz::Asia::Ho_Chi_Minh,
        chrono_tz::Europe::Berlin,
        chrono_tz::America::New_York,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::UTC,
    ];

    #[test]
    fn days_from_epoch_matches_chrono_over_every_day_of_four_centuries() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let mut date = NaiveDate::from_ymd_opt(1800, 1, 1).unwrap_or_default();
        let end = NaiveDate::from_ymd_opt(2200, 1, 1).unwrap_or_default();
        while date < end {
            use chrono::Datelike;
            assert_eq!(
                days_from_epoch(date.year(), date.month(), date.day()),
                (date - epoch).num_days(),
                "{date}"
            );
            let next = date.succ_opt().unwrap_or(end);
            let last_of_month = next.month() != date.month();
            assert_eq!(
                days_in_month(date.year(), date.month()) == date.day(),
                last_of_month,
                "{date}"
            );
            date = next;
        }
    }

    #[test]
    fn every_hour_around_dst_changes_matches_chrono() {
        // Every quarter hour of the days around Berlin's and New York's 2026 changes, in
        // order (so the caches are filled and hit), and every invalid day of a month.
        for zone in ZONES {
            for (month, days) in [(3, 7..=30), (10, 24..=26), (11, 1..=2), (2, 27..=31)] {
                for day in days {
                    for quarter in 0..96 {
                        let time = NaiveTime::from_hms_opt(quarter / 4, (quarter % 4) * 15, 7)
                            .unwrap_or_default();
                        for year in [2024, 2026] {
                            assert_eq!(
                                local_date_time_to_utc(year, month, day, time, zone),
                                reference(year, month, day, time, zone),
                                "{zone} {year}-{month}-{day} {time}"
                            );
                        }
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_local_time_matches_chrono(
            year in prop_oneof![1969i32..=2040, 0i32..=10_001, -5i32..=5],
            month in 0u32..=13,
            day in 0u32..=32,
            seconds in 0u32..86_400,
            nanos in 0u32..1_000_000_000,
            zone in 0usize..5,
        ) {
            let time = NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos)
                .unwrap_or_default();
            let zone = ZONES[zone];
            prop_assert_eq!(
                local_date_time_to_utc(year, month, day, time, zone),
                reference(year, month, day, time, zone)
            );
        }
    }
}
