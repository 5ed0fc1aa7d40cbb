//! Writes an event's times the way chrono's `Serialize` does (`2026-11-22T08:00:00.123Z`: no
//! fraction when it is zero, else 3, 6 or 9 digits; a leap second as `:60`), without going
//! through `fmt`. chrono hands serde a `Display` value, and the formatting machinery plus the
//! serializer's per-piece escaping of it were ~8% of the collector's time at line rate
//! (two times per event).

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// `#[serde(serialize_with)]` for `DateTime<Utc>` fields; reads back with chrono's own
/// `Deserialize`.
pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = [0u8; 30];
    match write(time, &mut text) {
        // Only ASCII digits and separators were written.
        Some(len) => serializer.serialize_str(std::str::from_utf8(&text[..len]).unwrap_or("")),
        // Years outside 0..=9999 (signed in chrono's form): rare enough for chrono to write.
        None => serde::Serialize::serialize(time, serializer),
    }
}

/// Writes `time` into `out` and returns the length, or `None` for years chrono writes with a
/// sign.
fn write(time: &DateTime<Utc>, out: &mut [u8; 30]) -> Option<usize> {
    let year = u32::try_from(time.year())
        .ok()
        .filter(|year| *year <= 9999)?;
    let (mut second, mut nanos) = (time.second(), time.nanosecond());
    if nanos >= 1_000_000_000 {
        // chrono keeps a leap second as nanoseconds past 1e9.
        second += 1;
        nanos -= 1_000_000_000;
    }
    digits(&mut out[0..4], year);
    out[4] = b'-';
    digits(&mut out[5..7], time.month());
    out[7] = b'-';
    digits(&mut out[8..10], time.day());
    out[10] = b'T';
    digits(&mut out[11..13], time.hour());
    out[13] = b':';
    digits(&mut out[14..16], time.minute());
    out[16] = b':';
    digits(&mut out[17..19], second);
    let mut len = 19;
    if nanos > 0 {
        let (value, width) = if nanos % 1_000_000 == 0 {
            (nanos / 1_000_000, 3)
        } else if nanos % 1_000 == 0 {
            (nanos / 1_000, 6)
        } else {
            (nanos, 9)
        };
        out[len] = b'.';
        digits(&mut out[len + 1..len + 1 + width], value);
        len += 1 + width;
    }
    out[len] = b'Z';
    Some(len + 1)
}

/// `value` as decimal digits filling `out`, zero-padded on the left.
fn digits(out: &mut [u8], mut value: u32) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    #[derive(serde::Serialize)]
    struct Ours(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    fn ours(time: DateTime<Utc>) -> String {
        serde_json::to_string(&Ours(time)).unwrap()
    }

    fn chronos(time: DateTime<Utc>) -> String {
        serde_json::to_string(&time).unwrap()
    }

    #[test]
    fn the_forms_chrono_writes() {
        let time = Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
        assert_eq!(ours(time), "\"2026-11-22T08:00:00Z\"");
        let with = |nanos| time + chrono::Duration::nanoseconds(nanos);
        assert_eq!(ours(with(123_000_000)), "\"2026-11-22T08:00:00.123Z\"");
        assert_eq!(ours(with(123_456_000)), "\"2026-11-22T08:00:00.123456Z\"");
        assert_eq!(ours(with(5)), "\"2026-11-22T08:00:00.000000005Z\"");
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        assert_eq!(ours(leap), chronos(leap));
        let far = Utc.with_ymd_and_hms(12_000, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(ours(far), chronos(far));
        let before = Utc.with_ymd_and_hms(-5, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(ours(before), chronos(before));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]

        #[test]
        fn always_what_chrono_writes(
            seconds in -62_000_000_000i64..300_000_000_000i64,
            nanos in prop_oneof![
                Just(0u32),
                (0u32..1_000).prop_map(|millis| millis * 1_000_000),
                (0u32..1_000_000).prop_map(|micros| micros * 1_000),
                0u32..2_000_000_000,
            ],
        ) {
            let date = DateTime::from_timestamp(seconds, nanos.min(999_999_999));
            prop_assume!(date.is_some());
            let mut time = date.unwrap();
            if nanos >= 1_000_000_000 && time.second() == 59 {
                // A leap second: only representable at :59.
                time = time.naive_utc().with_nanosecond(nanos).unwrap().and_utc();
            }
            prop_assert_eq!(ours(time), chronos(time));
        }
    }
}
