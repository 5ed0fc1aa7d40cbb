//! A per-thread cache of a zone's UTC offset per local hour.
//!
//! Reading a zone-less device time in the configured zone is a chrono-tz lookup (a search of the
//! zone's transition table plus the gap/fold handling), which showed in profiles of the syslog
//! hot path. Records arrive in time order, so nearly every record falls in an hour already
//! seen: the offset of that hour is looked up once and reused.
//!
//! An hour is cached only when it is *uniform*: its start and the next hour's start each map to
//! exactly one instant, with the same offset. Hours that hold a DST gap or fold (or touch one
//! at their end) are never cached; they always take the exact chrono-tz path, so the cache can
//! only ever return what that path would. The reasoning relies on a zone not changing offset
//! twice within one hour and coming back to the first offset, which no tzdb zone does.

use std::cell::Cell;

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Slots in the direct-mapped cache. A collector thread sees one or two zones and a few hours
/// at a time (late records, several devices' clocks), so a small table is plenty.
const SLOTS: usize = 16;

/// One cached local hour: the zone, the local hour (hours since 1970-01-01T00:00 local), and
/// its offset east of UTC in seconds, or `None` when the hour is not uniform.
#[derive(Debug, Clone, Copy)]
struct Entry {
    zone: Tz,
    local_hour: i64,
    offset_seconds: Option<i32>,
}

thread_local! {
    static CACHE: [Cell<Option<Entry>>; SLOTS] = const { [const { Cell::new(None) }; SLOTS] };
}

/// Reads a zone-less local time in `zone` exactly as [`exact_local_to_utc`] does, through the
/// per-hour cache. `None` only at the ends of chrono's range (±262,143 years), where applying
/// the offset would leave it.
pub fn local_to_utc(naive: NaiveDateTime, zone: Tz) -> Option<DateTime<Utc>> {
    let local_seconds = naive.and_utc().timestamp();
    let local_hour = local_seconds.div_euclid(3600);
    match uniform_offset(zone, local_hour) {
        Some(offset_seconds) => naive
            .checked_sub_signed(Duration::seconds(i64::from(offset_seconds)))
            .map(|utc| utc.and_utc()),
        None => exact_local_to_utc(naive, zone),
    }
}

/// The offset of `local_hour` in `zone` when the hour is uniform, from the cache or computed
/// and stored.
pub(super) fn uniform_offset(zone: Tz, local_hour: i64) -> Option<i32> {
    let slot = slot_of(zone, local_hour);
    // `try_with` fails only while the thread is being torn down: then compute without caching.
    let cached = CACHE
        .try_with(|cache| cache[slot].get())
        .ok()
        .flatten()
        .filter(|entry| entry.zone == zone && entry.local_hour == local_hour);
    if let Some(entry) = cached {
        return entry.offset_seconds;
    }
    let offset_seconds = compute_uniform_offset(zone, local_hour);
    let _ = CACHE.try_with(|cache| {
        cache[slot].set(Some(Entry {
            zone,
            local_hour,
            offset_seconds,
        }))
    });
    offset_seconds
}

fn slot_of(zone: Tz, local_hour: i64) -> usize {
    // Consecutive hours land in consecutive slots; the zone moves the window so two zones in
    // use at once rarely evict each other.
    let mixed = local_hour.wrapping_add((zone as i64).wrapping_mul(7));
    mixed.rem_euclid(SLOTS as i64) as usize
}

/// The hour's offset when its start and the next hour's start each have exactly one reading
/// in `zone`, with the same offset.
fn compute_uniform_offset(zone: Tz, local_hour: i64) -> Option<i32> {
    let start = DateTime::from_timestamp(local_hour.checked_mul(3600)?, 0)?.naive_utc();
    let end = start.checked_add_signed(Duration::hours(1))?;
    let at_start = zone.offset_from_local_datetime(&start).single()?.fix();
    let at_end = zone.offset_from_local_datetime(&end).single()?.fix();
    (at_start == at_end).then_some(at_start.local_minus_utc())
}

/// The uncached reading: in a DST gap or fold the earliest valid reading wins, and a time that
/// does not exist at all is read as if the offset before the gap still applied. `None` as for
/// [`local_to_utc`].
pub fn exact_local_to_utc(naive: NaiveDateTime, zone: Tz) -> Option<DateTime<Utc>> {
    if let Some(time) = zone.from_local_datetime(&naive).earliest() {
        return Some(time.with_timezone(&Utc));
    }
    let hour_before = naive.checked_sub_signed(Duration::hours(1))?;
    match zone.from_local_datetime(&hour_before).earliest() {
        Some(time) => time
            .with_timezone(&Utc)
            .checked_add_signed(Duration::hours(1)),
        None => Some(Utc.from_utc_datetime(&naive)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate, NaiveTime};

    /// Every local time checked in `zone` over the given years: the cached reading must equal
    /// the exact one. Times are visited in order (as records arrive), so the cache is both
    /// filled and hit; the minutes and seconds picked sit on and around every hour boundary,
    /// where DST transitions happen (and the half-hour ones of Lord Howe).
    fn assert_cache_matches_exact(zone: Tz, years: std::ops::RangeInclusive<i32>) {
        let mut checked = 0usize;
        for year in years {
            let Some(mut date) = NaiveDate::from_ymd_opt(year, 1, 1) else {
                panic!("bad year {year}");
            };
            while date.year() == year {
                for hour in 0..24 {
                    for (minute, second) in [
                        (0, 0),
                        (0, 1),
                        (1, 0),
                        (29, 59),
                        (30, 0),
                        (30, 1),
                        (59, 0),
                        (59, 59),
                    ] {
                        let Some(time) = NaiveTime::from_hms_opt(hour, minute, second) else {
                            panic!("bad time");
                        };
                        let naive = NaiveDateTime::new(date, time);
                        assert_eq!(
                            local_to_utc(naive, zone),
                            exact_local_to_utc(naive, zone),
                            "{zone} {naive}"
                        );
                        checked += 1;
                    }
                }
                let Some(next) = date.succ_opt() else { break };
                date = next;
            }
        }
        assert!(checked > 0);
    }

    #[test]
    fn berlin_matches_exact_reading_across_dst() {
        assert_cache_matches_exact(chrono_tz::Europe::Berlin, 2025..=2027);
    }

    #[test]
    fn new_york_matches_exact_reading_across_dst() {
        assert_cache_matches_exact(chrono_tz::America::New_York, 2025..=2027);
    }

    #[test]
    fn ho_chi_minh_matches_exact_reading() {
        assert_cache_matches_exact(chrono_tz::Asia::Ho_Chi_Minh, 2025..=2026);
        // 1975: Saigon moved from UTC+8 to UTC+7 on 13 June 1975.
        assert_cache_matches_exact(chrono_tz::Asia::Ho_Chi_Minh, 1975..=1975);
    }

    #[test]
    fn half_hour_dst_matches_exact_reading() {
        assert_cache_matches_exact(chrono_tz::Australia::Lord_Howe, 2026..=2026);
    }

    /// The ends of chrono's range: the offset would take them out of it; no reading, no
    /// panic (devices' `%Y` is read by chrono, which takes any number of digits and a sign).
    #[test]
    fn the_ends_of_the_range_have_no_reading() {
        for zone in [
            chrono_tz::Asia::Ho_Chi_Minh,
            chrono_tz::America::New_York,
            chrono_tz::UTC,
        ] {
            for naive in [NaiveDateTime::MIN, NaiveDateTime::MAX] {
                let cached = local_to_utc(naive, zone);
                assert_eq!(cached, exact_local_to_utc(naive, zone), "{zone} {naive}");
                if let Some(time) = cached {
                    // Where the offset keeps it in range, or read as UTC (the fallback for a
                    // time with no reading, as in a gap): never wrapped to the other end.
                    assert_eq!(
                        time.naive_utc().date().year().signum(),
                        naive.year().signum()
                    );
                }
            }
        }
        assert_eq!(
            local_to_utc(NaiveDateTime::MIN, chrono_tz::Asia::Ho_Chi_Minh),
            None
        );
    }

    #[test]
    fn known_transitions() {
        let at = |zone: Tz, text: &str| {
            let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .unwrap_or_else(|error| panic!("{text}: {error}"));
            local_to_utc(naive, zone)
                .map(|time| time.to_rfc3339())
                .unwrap_or_default()
        };
        let berlin = chrono_tz::Europe::Berlin;
        // Spring forward 2026-03-29 02:00 → 03:00: 02:30 does not exist and is read with the
        // offset before the gap.
        assert_eq!(
            at(berlin, "2026-03-29 01:59:59"),
            "2026-03-29T00:59:59+00:00"
        );
        assert_eq!(
            at(berlin, "2026-03-29 02:30:00"),
            "2026-03-29T01:30:00+00:00"
        );
        assert_eq!(
            at(berlin, "2026-03-29 03:00:00"),
            "2026-03-29T01:00:00+00:00"
        );
        // Fall back 2026-10-25 03:00 → 02:00: 02:30 happens twice, the earliest wins.
        assert_eq!(
            at(berlin, "2026-10-25 02:30:00"),
            "2026-10-25T00:30:00+00:00"
        );
        assert_eq!(
            at(berlin, "2026-10-25 03:00:00"),
            "2026-10-25T02:00:00+00:00"
        );
        let new_york = chrono_tz::America::New_York;
        assert_eq!(
            at(new_york, "2026-03-08 02:30:00"),
            "2026-03-08T07:30:00+00:00"
        );
        assert_eq!(
            at(new_york, "2026-11-01 01:30:00"),
            "2026-11-01T05:30:00+00:00"
        );
        assert_eq!(
            at(new_york, "2026-11-01 02:00:00"),
            "2026-11-01T07:00:00+00:00"
        );
        let saigon = chrono_tz::Asia::Ho_Chi_Minh;
        assert_eq!(
            at(saigon, "2026-11-22 10:00:00"),
            "2026-11-22T03:00:00+00:00"
        );
    }
}
