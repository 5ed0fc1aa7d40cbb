//! Timestamps as devices write them, turned into UTC.
//!
//! Devices often send local time without a zone, and BSD syslog has no year. Both are resolved
//! against the [`ParseContext`](crate::ParseContext): the configured zone (default
//! Asia/Ho_Chi_Minh) and the time the record was received, which gives the year.

mod civil;
pub mod rfc3339;
mod zone_cache;

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;
use nom::bytes::complete::tag;
use nom::character::complete::{char, one_of};
use nom::combinator::opt;
use nom::{IResult, Parser};

/// Month abbreviations as BSD syslog writes them (the reference reader's table; the reader
/// itself matches the letters).
#[cfg(test)]
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A BSD syslog time: month, day and time of day, and the year when the device wrote one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BsdTime {
    /// Year, when written (Cisco `Mar 1 2019 10:00:00`, `Mar 1 10:00:00 2019`).
    pub year: Option<i32>,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// Time of day, with fractions when the device sent them.
    pub time: NaiveTime,
}

fn digits_u32(min: usize, max: usize) -> impl Fn(&str) -> IResult<&str, u32> {
    move |input| leading_digits(input, min, max)
}

/// `min..=max` leading ASCII digits (as many as there are, up to `max`) as a number. By hand
/// rather than `take_while_m_n` + `str::parse`: timestamps are read on every syslog record and
/// the generic path showed in profiles. `max` is at most 4 at every call, so no overflow.
fn leading_digits(input: &str, min: usize, max: usize) -> IResult<&str, u32> {
    let bytes = input.as_bytes();
    let count = bytes
        .iter()
        .take(max)
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    if count < min {
        return Err(nom_error(input, nom::error::ErrorKind::TakeWhileMN));
    }
    let value = bytes[..count]
        .iter()
        .fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0'));
    // Only ASCII digits were counted, so `count` is a character boundary.
    Ok((&input[count..], value))
}

fn nom_error(input: &str, kind: nom::error::ErrorKind) -> nom::Err<nom::error::Error<&str>> {
    nom::Err::Error(nom::error::Error::new(input, kind))
}

/// Parses `Mmm dd hh:mm:ss[.frac]`, day padded with a space or a zero or not at all, with an
/// optional year before the time.
pub fn bsd_timestamp(input: &str) -> IResult<&str, BsdTime> {
    let (rest, month) = month_abbreviation(input)?;
    // One or two spaces, then a one- or two-digit day and a space.
    let spaces = rest
        .bytes()
        .take(2)
        .take_while(|byte| *byte == b' ')
        .count();
    if spaces == 0 {
        return Err(nom_error(rest, nom::error::ErrorKind::TakeWhileMN));
    }
    let (rest, day) = leading_digits(&rest[spaces..], 1, 2)?;
    let rest = rest
        .strip_prefix(' ')
        .ok_or_else(|| nom_error(rest, nom::error::ErrorKind::Char))?;
    // An optional year before the time (Cisco `Jun 11 2013 19:41:20`).
    let (rest, year) = match leading_digits(rest, 4, 4) {
        Ok((after, year)) if after.starts_with(' ') => (&after[1..], Some(year as i32)),
        _ => (rest, None),
    };
    let (rest, time) = time_of_day(rest)?;
    if !(1..=31).contains(&day) {
        return Err(nom_error(input, nom::error::ErrorKind::Verify));
    }
    Ok((
        rest,
        BsdTime {
            year,
            month,
            day,
            time,
        },
    ))
}

/// A month's three letters in any case. One `match` on the letters folded to lower case
/// rather than a case-insensitive compare with each name in turn (up to twelve, every BSD
/// line). `| 0x20` turns exactly the ASCII letters into lower case letters and nothing else
/// into one, so only letters can match, and a match is three ASCII bytes: `[3..]` is a
/// character boundary.
fn month_abbreviation(input: &str) -> IResult<&str, u32> {
    let month = match input.as_bytes() {
        [first, second, third, ..] => match [first | 0x20, second | 0x20, third | 0x20] {
            [b'j', b'a', b'n'] => 1,
            [b'f', b'e', b'b'] => 2,
            [b'm', b'a', b'r'] => 3,
            [b'a', b'p', b'r'] => 4,
            [b'm', b'a', b'y'] => 5,
            [b'j', b'u', b'n'] => 6,
            [b'j', b'u', b'l'] => 7,
            [b'a', b'u', b'g'] => 8,
            [b's', b'e', b'p'] => 9,
            [b'o', b'c', b't'] => 10,
            [b'n', b'o', b'v'] => 11,
            [b'd', b'e', b'c'] => 12,
            _ => 0,
        },
        _ => 0,
    };
    match input.get(3..) {
        Some(rest) if month != 0 => Ok((rest, month)),
        _ => Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Tag,
        ))),
    }
}

/// Parses `hh:mm:ss[.frac]` (fractions up to nanoseconds; more digits are read and ignored).
pub fn time_of_day(input: &str) -> IResult<&str, NaiveTime> {
    let bytes = input.as_bytes();
    let two_digits = |at: usize| match (bytes.get(at), bytes.get(at + 1)) {
        (Some(tens @ b'0'..=b'9'), Some(units @ b'0'..=b'9')) => {
            Some(u32::from(tens - b'0') * 10 + u32::from(units - b'0'))
        }
        _ => None,
    };
    let (Some(hour), Some(b':'), Some(minute), Some(b':'), Some(second)) = (
        two_digits(0),
        bytes.get(2),
        two_digits(3),
        bytes.get(5),
        two_digits(6),
    ) else {
        return Err(nom_error(input, nom::error::ErrorKind::Digit));
    };
    let (rest, nanos) = match fraction(&input[8..]) {
        Some((rest, nanos)) => (rest, nanos),
        None => (&input[8..], 0),
    };
    // A leap second (60) is clamped rather than rejected: the record is still worth keeping.
    let second = second.min(59);
    match NaiveTime::from_hms_nano_opt(hour, minute, second, nanos) {
        Some(time) => Ok((rest, time)),
        None => Err(nom_error(input, nom::error::ErrorKind::Verify)),
    }
}

/// `.` or `,` and 1 to 18 digits; nanoseconds from the first nine.
fn fraction(input: &str) -> Option<(&str, u32)> {
    let after_mark = input.strip_prefix(['.', ','])?;
    let digits = after_mark
        .bytes()
        .take(18)
        .take_while(u8::is_ascii_digit)
        .count();
    if digits == 0 {
        return None;
    }
    let mut nanos: u32 = 0;
    for (index, digit) in after_mark.bytes().take(digits.min(9)).enumerate() {
        nanos += u32::from(digit - b'0') * 10u32.pow(8 - index as u32);
    }
    Some((&after_mark[digits..], nanos))
}

/// Parses an RFC 3339 / ISO 8601 date-time: `YYYY-MM-DD(T| )hh:mm:ss[.frac][Z|±hh:mm|±hhmm]`.
/// Without a zone the time is local to `zone`.
pub fn iso8601(input: &str, zone: Tz) -> IResult<&str, DateTime<Utc>> {
    let start = input;
    let (rest, (year, _, month, _, day)) = (
        digits_u32(4, 4),
        char('-'),
        digits_u32(2, 2),
        char('-'),
        digits_u32(2, 2),
    )
        .parse(input)?;
    let (rest, _) = one_of("T ").parse(rest)?;
    let (rest, time) = time_of_day(rest)?;
    let (rest, offset) = opt(zone_offset).parse(rest)?;
    let fail = || nom::Err::Error(nom::error::Error::new(start, nom::error::ErrorKind::Verify));
    let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or_else(fail)?;
    let naive = NaiveDateTime::new(date, time);
    let utc = match offset {
        Some(offset) => offset
            .from_local_datetime(&naive)
            .single()
            .map(|time| time.with_timezone(&Utc))
            .and_then(within_event_years),
        None => local_to_utc(naive, zone),
    };
    Ok((rest, utc.ok_or_else(fail)?))
}

fn zone_offset(input: &str) -> IResult<&str, FixedOffset> {
    if let Ok((rest, _)) = tag::<&str, &str, nom::error::Error<&str>>("Z").parse(input) {
        return Ok((rest, Utc.fix()));
    }
    let (rest, sign) = one_of("+-").parse(input)?;
    let (rest, hours) = digits_u32(2, 2)(rest)?;
    let (rest, _) = opt(char(':')).parse(rest)?;
    let (rest, minutes) = digits_u32(2, 2)(rest)?;
    let seconds = (hours * 3600 + minutes * 60) as i32;
    let seconds = if sign == '-' { -seconds } else { seconds };
    match FixedOffset::east_opt(seconds) {
        Some(offset) => Ok((rest, offset)),
        None => Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Verify,
        ))),
    }
}

/// The first and last years of the times an event takes (UTC).
pub const EVENT_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// `time` when it lies within [`EVENT_YEARS`], the device times an event takes. RFC 3339 writes
/// those in four digits, which ClickHouse, tantivy's dates and browsers read; and adding any
/// window the SOC uses (minutes to years) to them stays far inside chrono's ±262,143 years,
/// where `DateTime + TimeDelta` panics. Devices can write times outside it (chrono's `%Y`
/// takes any number of digits and a sign; epoch numbers go to the year 292 million): those are
/// not read as the event's time, the record keeps them as written.
pub fn within_event_years(time: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // The year, not the Unix seconds: chrono keeps the year in the date's bits (a shift),
    // the seconds are counted from the date (a few dozen instructions, for every event).
    EVENT_YEARS
        .contains(&time.naive_utc().year())
        .then_some(time)
}

/// Reads a zone-less local time in `zone`. In a DST gap or fold (not in Vietnam, but in zones
/// a collector may be configured with) the earliest valid reading wins, and a time that does
/// not exist at all is read as if the offset before the gap still applied. Hours without a
/// transition are served from a per-thread cache of the zone's offset ([`zone_cache`]).
/// `None` outside [`EVENT_YEARS`].
pub fn local_to_utc(naive: NaiveDateTime, zone: Tz) -> Option<DateTime<Utc>> {
    if !EVENT_YEARS.contains(&naive.date().year()) {
        return None;
    }
    zone_cache::local_to_utc(naive, zone).and_then(within_event_years)
}

/// The year `at` falls in, in `zone`. Zone offsets are under a day, so away from New Year's
/// Eve and Day (UTC) the local year is the UTC year and no zone lookup is needed.
fn local_year(at: DateTime<Utc>, zone: Tz) -> i32 {
    // The UTC date read directly: `Datelike` on a `DateTime` first adds its (zero) offset.
    let date = at.naive_utc().date();
    let near_new_year =
        (date.month() == 1 && date.day() == 1) || (date.month() == 12 && date.day() == 31);
    if near_new_year {
        at.with_timezone(&zone).year()
    } else {
        date.year()
    }
}

/// Turns a BSD time into UTC. The year, when the device left it out, is the one that puts the
/// time closest before `received_at` (plus a day of clock skew): a December record read in
/// January belongs to last year.
pub fn resolve_bsd_time(
    bsd: BsdTime,
    zone: Tz,
    received_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    // By arithmetic and two per-thread caches (`civil`): the same answers as reading the date
    // with chrono and the time with `local_to_utc` (`reference::resolve_bsd_time`, property
    // tests), for a fraction of the instructions.
    let at_year = |year: i32| {
        civil::local_date_time_to_utc(year, bsd.month, bsd.day, bsd.time, zone)
            .and_then(within_event_years)
    };
    if let Some(year) = bsd.year {
        return at_year(year);
    }
    let this_year = local_year(received_at, zone);
    match at_year(this_year) {
        Some(time) if more_than_a_day_after(time, received_at) => at_year(this_year - 1),
        Some(time) => Some(time),
        // Feb 29 in a year that has none: the record was written in a leap year.
        None if bsd.month == 2 && bsd.day == 29 => at_year(last_leap_year(this_year)),
        None => None,
    }
}

/// `time > received_at + 1 day`, compared as seconds and nanoseconds (adding a `Duration` to a
/// `DateTime` rebuilds its date; this runs for every BSD line).
fn more_than_a_day_after(time: DateTime<Utc>, received_at: DateTime<Utc>) -> bool {
    let limit = (
        received_at.timestamp().saturating_add(86_400),
        received_at.timestamp_subsec_nanos(),
    );
    (time.timestamp(), time.timestamp_subsec_nanos()) > limit
}

fn last_leap_year(from: i32) -> i32 {
    (from - 4..=from)
        .rev()
        .find(|year| NaiveDate::from_ymd_opt(*year, 2, 29).is_some())
        .unwrap_or(from)
}

/// Unix epoch seconds with an optional fraction (`1170021493.977`, auditd, CEF `rt`).
pub fn epoch_seconds(text: &str) -> Option<DateTime<Utc>> {
    let (seconds, fraction) = match text.split_once('.') {
        Some((seconds, fraction)) => (seconds, fraction),
        None => (text, ""),
    };
    let seconds: i64 = seconds.parse().ok()?;
    let mut nanos: u32 = 0;
    for (index, digit) in fraction.bytes().take(9).enumerate() {
        if !digit.is_ascii_digit() {
            return None;
        }
        nanos += u32::from(digit - b'0') * 10u32.pow(8 - index as u32);
    }
    DateTime::from_timestamp(seconds, nanos).and_then(within_event_years)
}

/// Unix epoch milliseconds (CEF `rt`, LEEF `devTime` in some products).
pub fn epoch_millis(text: &str) -> Option<DateTime<Utc>> {
    let millis: i64 = text.parse().ok()?;
    DateTime::from_timestamp_millis(millis).and_then(within_event_years)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn event_years_are_inclusive() {
        let first = NaiveDate::from_ymd_opt(*EVENT_YEARS.start(), 1, 1)
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .map(|naive| naive.and_utc());
        let last = NaiveDate::from_ymd_opt(*EVENT_YEARS.end(), 12, 31)
            .and_then(|date| date.and_hms_nano_opt(23, 59, 59, 999_999_999))
            .map(|naive| naive.and_utc());
        let (Some(first), Some(last)) = (first, last) else {
            panic!("the ends of EVENT_YEARS are dates");
        };
        for inside in [first, last] {
            assert_eq!(within_event_years(inside), Some(inside));
        }
        for outside in [
            first - Duration::nanoseconds(1),
            last + Duration::nanoseconds(1),
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
        ] {
            assert_eq!(within_event_years(outside), None, "{outside:?}");
        }
    }

    /// Device times beyond the years an event takes are not read, whatever writes them (the
    /// panics these once were: subtracting the zone's offset at chrono's ends).
    #[test]
    fn times_beyond_the_event_years_are_not_read() {
        let zone = crate::parse::DEFAULT_TIMEZONE;
        let naive = |year: i32| {
            NaiveDate::from_ymd_opt(year, 1, 1)
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .unwrap_or_else(|| panic!("year {year}"))
        };
        for year in [-262_143, -1, 0, 10_000, 262_142] {
            assert_eq!(local_to_utc(naive(year), zone), None, "{year}");
        }
        // Year 1 at midnight in UTC+7 is year 0 in UTC.
        assert_eq!(local_to_utc(naive(1), zone), None);
        assert!(local_to_utc(naive(2), zone).is_some());
        // Year 10000: within chrono's range, outside the event years.
        assert_eq!(epoch_seconds("253402300800"), None);
        assert_eq!(epoch_millis("253402300800000"), None);
        assert!(epoch_seconds("253402300799").is_some());
        assert!(epoch_seconds("1763775000.5").is_some());
        assert!(iso8601("0000-01-01T00:00:00+00:01", zone).is_err());
        assert!(iso8601("0001-01-01T00:00:00Z", zone).is_ok());
        let received_at = utc("2026-11-22T00:00:00Z");
        let bsd = |year| BsdTime {
            year: Some(year),
            month: 1,
            day: 1,
            time: NaiveTime::MIN,
        };
        assert_eq!(resolve_bsd_time(bsd(0), zone, received_at), None);
        assert!(resolve_bsd_time(bsd(2026), zone, received_at).is_some());
    }

    #[test]
    fn bsd_time_variants() {
        let (rest, time) =
            bsd_timestamp("Feb  5 17:32:18.123 host").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((time.month, time.day, time.year), (2, 5, None));
        assert_eq!(
            time.time,
            NaiveTime::from_hms_milli_opt(17, 32, 18, 123).unwrap_or_default()
        );
        assert_eq!(rest, " host");
        let (_, time) =
            bsd_timestamp("Jun 11 2013 19:41:20: %ASA").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(time.year, Some(2013));
        assert!(bsd_timestamp("Foo 11 19:41:20").is_err());
        assert!(bsd_timestamp("Feb 45 19:41:20").is_err());
    }

    #[test]
    fn yearless_time_takes_the_year_that_puts_it_in_the_past() {
        let zone = chrono_tz::Asia::Ho_Chi_Minh;
        let received = utc("2026-01-02T00:00:00Z");
        let december = BsdTime {
            year: None,
            month: 12,
            day: 31,
            time: NaiveTime::from_hms_opt(23, 0, 0).unwrap_or_default(),
        };
        assert_eq!(
            resolve_bsd_time(december, zone, received),
            Some(utc("2025-12-31T16:00:00Z"))
        );
        let january = BsdTime {
            month: 1,
            day: 1,
            ..december
        };
        assert_eq!(
            resolve_bsd_time(january, zone, received),
            Some(utc("2026-01-01T16:00:00Z"))
        );
    }

    #[test]
    fn local_year_matches_the_zone_reading_around_new_year() {
        let zones = [
            chrono_tz::Asia::Ho_Chi_Minh,
            chrono_tz::America::New_York,
            chrono_tz::Pacific::Kiritimati,
            chrono_tz::Etc::GMTPlus12,
            chrono_tz::UTC,
        ];
        let start = utc("2025-12-29T00:00:00Z");
        for step in 0..(6 * 24 * 4) {
            let at = start + Duration::minutes(15 * step);
            for zone in zones {
                assert_eq!(
                    local_year(at, zone),
                    at.with_timezone(&zone).year(),
                    "{at} {zone}"
                );
            }
        }
    }

    #[test]
    fn iso8601_with_and_without_zone() {
        let zone = chrono_tz::Asia::Ho_Chi_Minh;
        let (_, time) =
            iso8601("2003-10-11T22:14:15.003Z x", zone).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(time, utc("2003-10-11T22:14:15.003Z"));
        let (_, time) =
            iso8601("2003-08-24T05:14:15.000003-07:00", zone).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(time, utc("2003-08-24T12:14:15.000003Z"));
        let (_, time) = iso8601("2024-03-01 08:00:00", zone).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(time, utc("2024-03-01T01:00:00Z"));
        assert!(iso8601("2024-13-01T08:00:00Z", zone).is_err());
    }

    #[test]
    fn epochs() {
        assert_eq!(
            epoch_seconds("1170021493.977"),
            Some(utc("2007-01-28T21:58:13.977Z"))
        );
        assert_eq!(
            epoch_millis("1170021493977"),
            Some(utc("2007-01-28T21:58:13.977Z"))
        );
        assert_eq!(epoch_seconds("12x"), None);
    }
}

/// The nom readers the hand-written ones replaced, kept as the reference they must match.
#[cfg(test)]
mod reference {
    use super::BsdTime;
    use chrono::Datelike;
    use chrono::NaiveTime;
    use nom::bytes::complete::take_while_m_n;
    use nom::character::complete::{char, one_of};
    use nom::combinator::{map_res, opt};
    use nom::{IResult, Parser};

    fn digits_u32(min: usize, max: usize) -> impl Fn(&str) -> IResult<&str, u32> {
        move |input| {
            map_res(
                take_while_m_n(min, max, |c: char| c.is_ascii_digit()),
                |text: &str| text.parse::<u32>(),
            )
            .parse(input)
        }
    }

    /// Month names compared one by one, case-insensitively (what the `match` replaced).
    pub fn month_abbreviation(input: &str) -> IResult<&str, u32> {
        let Some(prefix) = input.get(..3) else {
            return Err(nom::Err::Error(nom::error::Error::new(
                input,
                nom::error::ErrorKind::Tag,
            )));
        };
        for (index, name) in super::MONTHS.iter().enumerate() {
            if prefix.eq_ignore_ascii_case(name) {
                return Ok((&input[3..], index as u32 + 1));
            }
        }
        Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Tag,
        )))
    }

    /// The year rule and the date through chrono, as before the arithmetic path.
    pub fn resolve_bsd_time(
        bsd: BsdTime,
        zone: chrono_tz::Tz,
        received_at: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        use chrono::{NaiveDate, NaiveDateTime};
        let at_year = |year: i32| {
            NaiveDate::from_ymd_opt(year, bsd.month, bsd.day)
                .and_then(|date| {
                    super::zone_cache::exact_local_to_utc(NaiveDateTime::new(date, bsd.time), zone)
                })
                .and_then(super::within_event_years)
        };
        if let Some(year) = bsd.year {
            return at_year(year);
        }
        let this_year = received_at.with_timezone(&zone).year();
        match at_year(this_year) {
            Some(time) if time > received_at + chrono::Duration::days(1) => at_year(this_year - 1),
            Some(time) => Some(time),
            None if bsd.month == 2 && bsd.day == 29 => at_year(super::last_leap_year(this_year)),
            None => None,
        }
    }

    pub fn bsd_timestamp(input: &str) -> IResult<&str, BsdTime> {
        let (rest, month) = month_abbreviation(input)?;
        let (rest, _) = take_while_m_n(1, 2, |c| c == ' ').parse(rest)?;
        let (rest, day) = digits_u32(1, 2)(rest)?;
        let (rest, _) = char(' ').parse(rest)?;
        let (rest, year) =
            opt((digits_u32(4, 4), char(' ')).map(|(year, _)| year as i32)).parse(rest)?;
        let (rest, time) = time_of_day(rest)?;
        if !(1..=31).contains(&day) {
            return Err(nom::Err::Error(nom::error::Error::new(
                input,
                nom::error::ErrorKind::Verify,
            )));
        }
        Ok((
            rest,
            BsdTime {
                year,
                month,
                day,
                time,
            },
        ))
    }

    pub fn time_of_day(input: &str) -> IResult<&str, NaiveTime> {
        let start = input;
        let (rest, (hour, _, minute, _, second)) = (
            digits_u32(2, 2),
            char(':'),
            digits_u32(2, 2),
            char(':'),
            digits_u32(2, 2),
        )
            .parse(input)?;
        let (rest, nanos) = opt(fraction).parse(rest)?;
        let second = second.min(59);
        match NaiveTime::from_hms_nano_opt(hour, minute, second, nanos.unwrap_or(0)) {
            Some(time) => Ok((rest, time)),
            None => Err(nom::Err::Error(nom::error::Error::new(
                start,
                nom::error::ErrorKind::Verify,
            ))),
        }
    }

    fn fraction(input: &str) -> IResult<&str, u32> {
        let (rest, _) = one_of(".,").parse(input)?;
        let (rest, digits) = take_while_m_n(1, 18, |c: char| c.is_ascii_digit()).parse(rest)?;
        let mut nanos: u32 = 0;
        for (index, digit) in digits.bytes().take(9).enumerate() {
            nanos += u32::from(digit - b'0') * 10u32.pow(8 - index as u32);
        }
        Ok((rest, nanos))
    }
}

#[cfg(test)]
mod differential {
    use super::*;
    use chrono::Duration;
    use proptest::prelude::*;

    /// Same success, same value, same rest: the error detail is not compared (no caller reads
    /// it, they only test for `Ok`).
    fn same<T: PartialEq + std::fmt::Debug>(
        ours: IResult<&str, T>,
        reference: IResult<&str, T>,
        input: &str,
    ) {
        match (ours, reference) {
            (Ok(ours), Ok(reference)) => assert_eq!(ours, reference, "{input:?}"),
            (Err(_), Err(_)) => {}
            (ours, reference) => panic!("{input:?}: ours {ours:?}, reference {reference:?}"),
        }
    }

    fn check(input: &str) {
        same(
            month_abbreviation(input),
            reference::month_abbreviation(input),
            input,
        );
        same(bsd_timestamp(input), reference::bsd_timestamp(input), input);
        same(time_of_day(input), reference::time_of_day(input), input);
    }

    #[test]
    fn hand_written_readers_match_nom_on_edge_cases() {
        for input in [
            "Feb  5 17:32:18.123 host",
            "Feb 5 17:32:18 host",
            "Feb 05 17:32:18,5 host",
            "feb   5 17:32:18 host",
            "Feb 123 17:32:18",
            "Feb 0 17:32:18",
            "Feb 32 17:32:18",
            "Jun 11 2013 19:41:20: %ASA",
            "Jun 11 20131 19:41:20",
            "Jun 11 2013 19:41:20 2014",
            "Mar  1 24:00:00",
            "Mar  1 23:60:60",
            "Mar  1 23:59:60.5",
            "Mar  1 23:59:59.",
            "Mar  1 23:59:59.x",
            "Mar  1 23:59:59.1234567890123456789012",
            "Mar  1 23:59:5",
            "Mar  1 2:59:59",
            "Mar",
            "Mäz 1 10:00:00",
            "12:00:00",
            "12:00:00.999999999",
            "1:00:00",
            "",
        ] {
            check(input);
        }
    }

    /// Year-less times on both sides of the year rule's edge (`received_at` plus a day), around
    /// New Year, Feb 29 and DST changes: the arithmetic path picks the year chrono's did.
    #[test]
    fn bsd_year_rule_edge_resolves_as_through_chrono() {
        let zones = [
            chrono_tz::Asia::Ho_Chi_Minh,
            chrono_tz::Europe::Berlin,
            chrono_tz::America::New_York,
            chrono_tz::Pacific::Kiritimati,
        ];
        let received = [
            "2025-12-31T20:00:00.5Z",
            "2026-01-01T03:00:00Z",
            "2026-03-29T00:30:00Z",
            "2026-10-25T01:15:00Z",
            "2026-11-01T06:00:00Z",
            "2027-02-28T12:00:00Z",
            "2028-02-28T12:00:00Z",
            "2028-12-30T23:59:59.999Z",
        ];
        for zone in zones {
            for received in received {
                let received_at = DateTime::parse_from_rfc3339(received)
                    .map(|time| time.with_timezone(&Utc))
                    .unwrap_or_else(|error| panic!("{received}: {error}"));
                for step in -80..=80 {
                    let local = (received_at
                        + Duration::minutes(37 * step)
                        + Duration::nanoseconds(step * 7_919))
                    .with_timezone(&zone)
                    .naive_local();
                    let bsd = BsdTime {
                        year: None,
                        month: local.month(),
                        day: local.day(),
                        time: local.time(),
                    };
                    assert_eq!(
                        resolve_bsd_time(bsd, zone, received_at),
                        reference::resolve_bsd_time(bsd, zone, received_at),
                        "{bsd:?} {zone} {received_at}"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn hand_written_readers_match_nom(
            input in "(Jan|Feb|jun|Dec|Xyz)? {0,3}[0-9]{0,3} ?([0-9]{4} )?[0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}([.,][0-9]{0,20})?[ :a-z]{0,2}"
        ) {
            check(&input);
        }

        #[test]
        fn hand_written_readers_match_nom_on_any_text(input in "\\PC{0,40}") {
            check(&input);
        }

        /// The arithmetic path and its caches against chrono's reading, in zones with and
        /// without DST, around New Year and DST changes, for times with and without a year.
        /// Several records per case, in order, so the per-thread caches are both hit and missed.
        #[test]
        fn bsd_times_resolve_as_through_chrono(
            received_seconds in prop_oneof![
                // Around New Year 2025/2026/2027 and Berlin's and New York's changes.
                1_735_000_000i64..1_736_500_000,
                1_766_500_000i64..1_768_000_000,
                1_774_000_000i64..1_775_500_000,
                1_772_500_000i64..1_773_500_000,
                1_792_500_000i64..1_794_000_000,
                0i64..4_000_000_000,
            ],
            received_nanos in 0u32..1_000_000_000,
            zone in 0usize..6,
            records in proptest::collection::vec(
                (proptest::option::of(1990i32..2030), 1u32..=12, 1u32..=31, 0u32..86_400, 0u32..1_000_000_000),
                1..8,
            ),
        ) {
            let zones = [
                chrono_tz::Asia::Ho_Chi_Minh,
                chrono_tz::Europe::Berlin,
                chrono_tz::America::New_York,
                chrono_tz::Australia::Lord_Howe,
                chrono_tz::Pacific::Kiritimati,
                chrono_tz::UTC,
            ];
            let zone = zones[zone];
            let received_at = DateTime::from_timestamp(received_seconds, received_nanos).unwrap_or_default();
            for (year, month, day, seconds, nanos) in records {
                let bsd = BsdTime {
                    year,
                    month,
                    day,
                    time: NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos).unwrap_or_default(),
                };
                prop_assert_eq!(
                    resolve_bsd_time(bsd, zone, received_at),
                    reference::resolve_bsd_time(bsd, zone, received_at),
                    "{:?} {} {}", bsd, zone, received_at
                );
            }
        }
    }
}
