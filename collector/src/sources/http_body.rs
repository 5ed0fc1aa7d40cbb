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

/// Cuts a body into records: the elements of a top-level JSON array, else the lines (blank
/// lines skipped, CR before LF removed). Returns the records and the number of blank lines.
pub(crate) fn split_records(body: &[u8]) -> (Vec<&[u8]>, u64) {
    let start = body.iter().position(|byte| !byte.is_ascii_whitespace());
    if let Some(start) = start {
        if body[start] == b'[' {
            if let Ok(elements) = serde_json::from_slice::<Vec<&RawValue>>(body) {
                return (
                    elements
                        .into_iter()
                        .map(|element| element.get().as_bytes())
                        .collect(),
                    0,
                );
            }
            // Not one valid array (an array per line, or broken JSON): read it line by line,
            // so nothing is lost and a broken line becomes an unknown event.
        }
    }
    let mut records = Vec::new();
    let mut blank = 0;
    for line in body.split(|byte| *byte == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            if !line.is_empty() {
                blank += 1;
            }
            continue;
        }
        records.push(line);
    }
    (records, blank)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn arrays_give_their_elements_byte_exact_and_lines_give_lines() {
        let (records, _) = split_records(b" [ {\"a\": 1}, {\"b\":\n 2} , \"x\" ]\n");
        assert_eq!(records, [&b"{\"a\": 1}"[..], b"{\"b\":\n 2}", b"\"x\""]);
        let (records, blank) = split_records(b"{\"a\":1}\r\n\n  \n{\"b\":2}");
        assert_eq!(records, [&b"{\"a\":1}"[..], b"{\"b\":2}"]);
        assert_eq!(blank, 1);
        let (records, _) = split_records(b"[1,2]\n[3]\n");
        assert_eq!(records, [&b"[1,2]"[..], b"[3]"]);
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
