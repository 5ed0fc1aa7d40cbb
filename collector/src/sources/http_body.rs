//! HTTP intake bodies: decompression (gzip, deflate, zstd, as agents' `http` outputs send
//! them) with a bound on the decompressed size, and the split into records: a JSON array
//! gives one record per element (its exact bytes), anything else one record per line
//! (NDJSON; a pretty-printed document spanning lines is put back together by the decoder).

use std::borrow::Cow;
use std::io::Read;

use serde_json::value::RawValue;

/// Why a body cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// A Content-Encoding we do not decode: 415.
    UnsupportedEncoding(String),
    /// Compressed data that does not decompress: 400.
    Corrupt(String),
    /// Decompresses to more than the limit: 413.
    TooLarge(usize),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::UnsupportedEncoding(encoding) => write!(
                formatter,
                "Content-Encoding `{encoding}` is not supported (use gzip, deflate, zstd or none)"
            ),
            BodyError::Corrupt(message) => {
                write!(formatter, "the body does not decompress: {message}")
            }
            BodyError::TooLarge(limit) => {
                write!(
                    formatter,
                    "the body decompresses to more than {limit} bytes"
                )
            }
        }
    }
}

/// Whether a `Content-Encoding` says the body is sent as it is.
pub(crate) fn is_identity(encoding: Option<&str>) -> bool {
    encoding
        .map(str::trim)
        .is_none_or(|encoding| encoding.is_empty() || encoding.eq_ignore_ascii_case("identity"))
}

/// The body as sent by the agent, decompressed per `Content-Encoding`.
pub(crate) fn decompress<'a>(
    encoding: Option<&str>,
    body: &'a [u8],
    limit: usize,
) -> Result<Cow<'a, [u8]>, BodyError> {
    let encoding = encoding.map(|value| value.trim().to_ascii_lowercase());
    let reader: Box<dyn Read + 'a> = match encoding.as_deref() {
        None | Some("") | Some("identity") => return Ok(Cow::Borrowed(body)),
        Some("gzip") | Some("x-gzip") => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Some("deflate") => Box::new(flate2::read::ZlibDecoder::new(body)),
        Some("zstd") => Box::new(
            zstd::Decoder::new(body).map_err(|error| BodyError::Corrupt(error.to_string()))?,
        ),
        Some(other) => return Err(BodyError::UnsupportedEncoding(other.to_owned())),
    };
    let mut decompressed = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut decompressed)
        .map_err(|error| BodyError::Corrupt(error.to_string()))?;
    if decompressed.len() > limit {
        return Err(BodyError::TooLarge(limit));
    }
    Ok(Cow::Owned(decompressed))
}

/// At most this many records in one request. Agents send far fewer at a time (Beats 1,600
/// events, Vector, Fluent Bit and NXLog a few megabytes), but a body's record list costs 16
/// bytes a record: a decompressed body of one-byte lines would make it eight times the body.
pub(crate) const MAX_RECORDS_PER_REQUEST: usize = 1_000_000;

/// A body with more than [`MAX_RECORDS_PER_REQUEST`] records: 413.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyRecords;

impl std::fmt::Display for TooManyRecords {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "the body holds more than {MAX_RECORDS_PER_REQUEST} records; send smaller batches"
        )
    }
}

/// Cuts a body into records: the elements of a top-level JSON array, else the lines (blank
/// lines skipped, CR before LF removed). Returns the records and the number of blank lines.
pub(crate) fn split_records(body: &[u8]) -> Result<(Vec<&[u8]>, u64), TooManyRecords> {
    let start = body.iter().position(|byte| !byte.is_ascii_whitespace());
    if let Some(start) = start {
        if body[start] == b'[' {
            match array_elements(body) {
                Ok(elements) => return Ok((elements, 0)),
                Err(ArrayError::TooMany) => return Err(TooManyRecords),
                // Not one valid array (an array per line, or broken JSON): read it line by
                // line, so nothing is lost and a broken line becomes an unknown event.
                Err(ArrayError::NotOneArray) => {}
            }
        }
    }
    let mut records = Vec::new();
    let mut blank = 0;
    for line in lines(body) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            if !line.is_empty() {
                blank += 1;
            }
            continue;
        }
        if records.len() == MAX_RECORDS_PER_REQUEST {
            return Err(TooManyRecords);
        }
        records.push(line);
    }
    Ok((records, blank))
}

/// The lines of `body`: what `body.split(|byte| *byte == b'\n')` gives (an empty last line
/// after a final newline included), with the newlines found by `memchr`'s vector search
/// instead of a byte-by-byte loop, which was 3% of an agent's event's CPU.
pub(crate) fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut newlines = memchr::memchr_iter(b'\n', body);
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let from = start?;
        match newlines.next() {
            Some(end) => {
                start = Some(end + 1);
                body.get(from..end)
            }
            None => {
                start = None;
                body.get(from..)
            }
        }
    })
}

/// Why a body is not read as one array's elements.
enum ArrayError {
    NotOneArray,
    TooMany,
}

/// The exact bytes of the elements of the one JSON array `body` holds, at most
/// [`MAX_RECORDS_PER_REQUEST`] of them (read one at a time, so a longer array stops there
/// instead of being listed whole first).
fn array_elements(body: &[u8]) -> Result<Vec<&[u8]>, ArrayError> {
    use serde::de::{Deserializer as _, Error as _, SeqAccess, Visitor};

    struct Elements<'flag>(&'flag std::cell::Cell<bool>);

    impl<'de> Visitor<'de> for Elements<'_> {
        type Value = Vec<&'de [u8]>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a JSON array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut elements: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(element) = elements.next_element::<&'de RawValue>()? {
                if out.len() == MAX_RECORDS_PER_REQUEST {
                    self.0.set(true);
                    return Err(A::Error::custom("too many elements"));
                }
                out.push(element.get().as_bytes());
            }
            Ok(out)
        }
    }

    let too_many = std::cell::Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let elements = deserializer.deserialize_seq(Elements(&too_many));
    match elements {
        Ok(elements) if deserializer.end().is_ok() => Ok(elements),
        _ if too_many.get() => Err(ArrayError::TooMany),
        _ => Err(ArrayError::NotOneArray),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Write;

    proptest::proptest! {
        #[test]
        fn lines_are_what_split_gives(
            body in proptest::collection::vec(proptest::sample::select(b"ab\n\r ".to_vec()), 0..64),
        ) {
            let ours: Vec<&[u8]> = lines(&body).collect();
            let split: Vec<&[u8]> = body.split(|byte| *byte == b'\n').collect();
            proptest::prop_assert_eq!(ours, split);
        }
    }

    #[test]
    fn arrays_give_their_elements_byte_exact_and_lines_give_lines() {
        let (records, _) = split_records(b" [ {\"a\": 1}, {\"b\":\n 2} , \"x\" ]\n").unwrap();
        assert_eq!(records, [&b"{\"a\": 1}"[..], b"{\"b\":\n 2}", b"\"x\""]);
        let (records, blank) = split_records(b"{\"a\":1}\r\n\n  \n{\"b\":2}").unwrap();
        assert_eq!(records, [&b"{\"a\":1}"[..], b"{\"b\":2}"]);
        assert_eq!(blank, 1);
        let (records, _) = split_records(b"[1,2]\n[3]\n").unwrap();
        assert_eq!(records, [&b"[1,2]"[..], b"[3]"]);
        let (records, _) = split_records(b"[]").unwrap();
        assert!(records.is_empty());
    }

    /// A million records are taken, one more is refused, as lines and as array elements
    /// (whose list stops at the limit instead of being built whole).
    #[test]
    fn at_most_a_million_records_a_request() {
        let lines = |count: usize| b"x\n".repeat(count);
        assert_eq!(
            split_records(&lines(MAX_RECORDS_PER_REQUEST))
                .unwrap()
                .0
                .len(),
            MAX_RECORDS_PER_REQUEST
        );
        assert_eq!(
            split_records(&lines(MAX_RECORDS_PER_REQUEST + 1)),
            Err(TooManyRecords)
        );
        // Blank lines are not records.
        let mut blanks = lines(MAX_RECORDS_PER_REQUEST);
        blanks.extend(b" \n".repeat(10));
        assert!(split_records(&blanks).is_ok());
        let array = |count: usize| {
            let mut body = b"[".to_vec();
            body.extend(b"1,".repeat(count));
            body.extend(b"1]");
            body
        };
        assert_eq!(
            split_records(&array(MAX_RECORDS_PER_REQUEST - 1))
                .unwrap()
                .0
                .len(),
            MAX_RECORDS_PER_REQUEST
        );
        assert_eq!(
            split_records(&array(MAX_RECORDS_PER_REQUEST)),
            Err(TooManyRecords)
        );
    }

    #[test]
    fn gzip_deflate_and_zstd_are_decoded_within_the_limit() {
        let text = b"{\"message\":\"hello\"}\n".repeat(100);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&text).unwrap();
        let gzip = gzip.finish().unwrap();
        assert_eq!(
            decompress(Some("gzip"), &gzip, 1 << 20).unwrap().as_ref(),
            &text[..]
        );
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&text).unwrap();
        assert_eq!(
            decompress(Some("deflate"), &zlib.finish().unwrap(), 1 << 20)
                .unwrap()
                .as_ref(),
            &text[..]
        );
        let zstd = zstd::encode_all(&text[..], 3).unwrap();
        assert_eq!(
            decompress(Some("zstd"), &zstd, 1 << 20).unwrap().as_ref(),
            &text[..]
        );
        assert_eq!(
            decompress(Some("gzip"), &gzip, 100),
            Err(BodyError::TooLarge(100))
        );
        assert!(matches!(
            decompress(Some("gzip"), b"not gzip", 100),
            Err(BodyError::Corrupt(_))
        ));
        assert!(matches!(
            decompress(Some("br"), b"x", 100),
            Err(BodyError::UnsupportedEncoding(_))
        ));
        assert_eq!(decompress(None, b"plain", 100).unwrap().as_ref(), b"plain");
    }
}
