//! Timestamps as devices write them, turned into UTC.
//!
//! Devices often send local time without a zone, and BSD syslog has no year. Both are resolved
//! against the [`ParseContext`](crate::ParseContext): the configured zone (default
//! Asia/Ho_Chi_Minh) and the time the record was received, which gives the year.

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use nom::bytes::complete::{tag, take_while_m_n};
use nom::character::complete::{char, one_of};
use nom::combinator::{map_res, opt};
use nom::{IResult, Parser};

/// Month abbreviations as BSD syslog writes them.
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
    move |input| {
        map_res(
            take_while_m_n(min, max, |c: char| c.is_ascii_digit()),
            |text: &str| text.parse::<u32>(),
        )
        .parse(input)
    }
}

/// Parses `Mmm dd hh:mm:ss[.frac]`, day padded with a space or a zero or not at all, with an
/// optional year before the time.
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

fn month_abbreviation(input: &str) -> IResult<&str, u32> {
    let Some(prefix) = input.get(..3) else {
        return Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Tag,
        )));
    };
    for (index, name) in MONTHS.iter().enumerate() {
        if prefix.eq_ignore_ascii_case(name) {
            return Ok((&input[3..], index as u32 + 1));
        }
    }
    Err(nom::Err::Error(nom::error::Error::new(
        input,
        nom::error::ErrorKind::Tag,
    )))
}

/// Parses `hh:mm:ss[.frac]` (fractions up to nanoseconds; more digits are read and ignored).
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
    // A leap second (60) is clamped rather than rejected: the record is still worth keeping.
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
            .ok_or_else(fail)?,
        None => local_to_utc(naive, zone),
    };
    Ok((rest, utc))
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

/// Reads a zone-less local time in `zone`. In a DST gap or fold (not in Vietnam, but in zones
/// a collector may be configured with) the earliest valid reading wins, and a time that does
/// not exist at all is read as if the offset before the gap still applied.
pub fn local_to_utc(naive: NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    match zone.from_local_datetime(&naive).earliest() {
        Some(time) => time.with_timezone(&Utc),
        None => zone
            .from_local_datetime(&(naive - Duration::hours(1)))
            .earliest()
            .map(|time| time.with_timezone(&Utc) + Duration::hours(1))
            .unwrap_or_else(|| Utc.from_utc_datetime(&naive)),
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
    let at_year = |year: i32| {
        NaiveDate::from_ymd_opt(year, bsd.month, bsd.day)
            .map(|date| local_to_utc(NaiveDateTime::new(date, bsd.time), zone))
    };
    if let Some(year) = bsd.year {
        return at_year(year);
    }
    let this_year = received_at.with_timezone(&zone).year();
    match at_year(this_year) {
        Some(time) if time > received_at + Duration::days(1) => at_year(this_year - 1),
        Some(time) => Some(time),
        // Feb 29 in a year that has none: the record was written in a leap year.
        None if bsd.month == 2 && bsd.day == 29 => at_year(last_leap_year(this_year)),
        None => None,
    }
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
    DateTime::from_timestamp(seconds, nanos)
}

/// Unix epoch milliseconds (CEF `rt`, LEEF `devTime` in some products).
pub fn epoch_millis(text: &str) -> Option<DateTime<Utc>> {
    let millis: i64 = text.parse().ok()?;
    DateTime::from_timestamp_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_else(|error| panic!("{text}: {error}"))
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
