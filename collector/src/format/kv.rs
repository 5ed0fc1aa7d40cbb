//! key=value records (FortiGate, netfilter/iptables kernel lines, Proxmox firewall, UniFi, …) and
//! pfSense/OPNsense `filterlog` CSV.
//!
//! # key=value
//! Pairs are separated by spaces; a value is either bare (up to the next space, possibly empty as
//! in iptables' `OUT= MAC=`) or double-quoted with `\"` and `\\` escapes. Before the first pair a
//! short prefix is allowed: kernel uptime in brackets (`[50028442.088484]`), a log prefix
//! (`[UFW BLOCK]`, `IPTABLES-DROP:`, `SFW2-INext-DROP-DEFLT`, `Shorewall:net2fw:DROP:` glued to
//! the first key) or the Proxmox `vmid loglevel chain date policy ACTION:` header.
//!
//! Choices (documented here because consumers rely on them):
//! - Every key lands in `fields` under its original name, values as strings exactly as written
//!   (quotes removed, escapes resolved). A key written twice (iptables writes `LEN=` for the IP
//!   packet and again for the UDP datagram) becomes an array of the values in order.
//! - Words without `=` (netfilter's `DF`, `SYN`, `ACK`) are flags: `fields["SYN"] = true`. A flag
//!   followed by a parenthesised argument (`OPT (020405B4…)`) stores the argument as its value.
//! - The prefix is kept in `log_prefix` (and the kernel time in `kernel_timestamp`).
//! - `msg` replaces `message`: the syslog envelope set `message` to the whole key=value text,
//!   which is still in `raw`; analysts want the device's human sentence. Without `msg`, an
//!   enveloped record keeps the envelope's message and a bare record gets the whole text.
//! - `devname` replaces `host.name` and `level` replaces `log.level` (the device's own name and
//!   severity are more specific than the syslog header's); FortiGate `date`+`time`(+`tz`), or
//!   `eventtime` without them, replace the timestamp.
//! - Logsource: FortiGate (`logid` with `devid` or `type`+`subtype`) is product `fortigate`,
//!   service = its `type` (`event`, `traffic`, `utm`, as SigmaHQ's fortigate rules name it), and
//!   category `firewall` for `type=traffic`. Netfilter lines (`SRC`, `DST` and `IN`/`OUT`/`PROTO`)
//!   are product `linux`, category `firewall`, so generic Sigma firewall rules see them.
//!
//! # filterlog
//! The CSV after `filterlog[pid]:` is split into pfSense's own column names (those of pfSense's
//! `filter_log.inc`): `rulenum, subrulenum, anchor, tracker, realint, reason, act, direction,
//! version`, then `tos, ecn, ttl, id, offset, flags, protoid, proto` (IPv4) or `class, flowlabel,
//! hlim, proto, protoid` (IPv6), then `length, srcip, dstip`, then per protocol (TCP/UDP
//! `srcport, dstport, datalen`; TCP also `tcpflags, seq, ack, window, urg, options`; ICMP
//! `icmp_type` and its type-specific columns; CARP `carp_type, carp_ttl, carp_vhid,
//! carp_version, carp_advskew, carp_advbase`). Empty columns are left out; columns the layout
//! does not name are kept in `extra`. Logsource category `firewall`, product `pfsense` or
//! `opnsense` when the host name says so or the tracker is an OPNsense rule hash.

use std::borrow::Cow;
use std::net::IpAddr;
use std::ops::Range;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde_json::Value;

use crate::event::{Event, Fields, Format, LogSource, ShortText};
use crate::fields::StoredValue;
use crate::format::kv_known::{KnownFields, KnownPositions};
use crate::format::kv_names;
use crate::format::kv_store::PairStore;
use crate::format::FormatError;
use crate::parse::ParseContext;
use crate::timestamp::{local_to_utc, within_event_years};

/// Longest bracketed group or prefix word [`looks_like`] accepts before the first pair.
const MAX_PREFIX_WORD: usize = 64;
/// Pairs that must follow the prefix for [`looks_like`] to say yes.
const PAIRS_REQUIRED: usize = 3;
/// Longest key accepted.
const MAX_KEY_LEN: usize = 64;

/// Bytes per pair assumed when making room for a line's pairs before reading them.
const PAIR_BYTES: usize = 10;

/// True when the text is key=value pairs: at most two bracketed groups and one prefix word, then
/// at least three `key=value` pairs in a row. Strict on purpose: syslog prose such as
/// `pam_unix(sshd:auth): authentication failure; logname= uid=0 …` has pairs too, but after
/// several words. Called on every syslog message, so it only scans bytes and never allocates.
pub fn looks_like(text: &str) -> bool {
    pairs_start(text).is_some()
}

/// Where the pairs start when [`looks_like`] says yes: the start [`parse`] would find, so
/// [`parse_at`] can skip finding it again.
pub fn pairs_start(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let start = strict_prefix_end(bytes)?;
    let mut position = start;
    for _ in 0..PAIRS_REQUIRED {
        position = skip_spaces(bytes, pair_end(bytes, position)?);
    }
    Some(start)
}

/// Where pairs may start under [`looks_like`]'s rules, or `None` when the prefix is too long.
fn strict_prefix_end(bytes: &[u8]) -> Option<usize> {
    let mut position = skip_spaces(bytes, 0);
    for _ in 0..2 {
        if bytes.get(position) != Some(&b'[') {
            break;
        }
        let window = &bytes[position..bytes.len().min(position + MAX_PREFIX_WORD)];
        let close = window.iter().position(|byte| *byte == b']')?;
        position = skip_spaces(bytes, position + close + 1);
    }
    let word_end = next_space(bytes, position);
    let word = &bytes[position..word_end];
    match word.iter().position(|byte| *byte == b'=') {
        // A prefix word such as `IPTABLES-DROP:` or `SFW2-INext-DROP-DEFLT`.
        None if word.len() <= MAX_PREFIX_WORD => Some(skip_spaces(bytes, word_end)),
        None => None,
        // `Shorewall:net2fw:DROP:IN=eth1`: the prefix is glued to the first key.
        Some(equals) => match word[..equals].iter().rposition(|byte| *byte == b':') {
            Some(colon) => Some(position + colon + 1),
            None => Some(position),
        },
    }
}

/// Byte classes for the tokenizer, one table lookup per byte instead of a chain of compares
/// (the tokenizer walks every byte of a line; the compares were ~5% of a netfilter line's
/// instructions).
const SPACE: u8 = 1;
const KEY: u8 = 2;
static CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        let character = byte as u8;
        if matches!(character, b' ' | b'\t' | b'\r' | b'\n') {
            classes[byte] |= SPACE;
        }
        if character.is_ascii_alphanumeric() || matches!(character, b'_' | b'-' | b'.') {
            classes[byte] |= KEY;
        }
        byte += 1;
    }
    classes
};

#[inline]
fn is_space(byte: u8) -> bool {
    CLASSES[usize::from(byte)] & SPACE != 0
}

fn skip_spaces(bytes: &[u8], from: usize) -> usize {
    let mut position = from;
    while bytes.get(position).copied().is_some_and(is_space) {
        position += 1;
    }
    position
}

fn next_space(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut position = from.min(bytes.len());
    // Eight bytes at a time. Every space byte is below 0x21, and in
    // `(word - 0x21…) & !word & 0x80…` (the "has a byte less than n" test, n <= 128) the
    // lowest set bit marks exactly the first byte below 0x21 (a borrow only runs upwards, so
    // only bits above it can be false): its position comes from counting trailing zeros, with
    // no second pass byte by byte. Values are mostly shorter than eight bytes, so the word
    // holding the end is the usual case, not the exception. A byte below 0x21 that is not a
    // space (a control byte) is stepped over.
    while let Some(chunk) = bytes.get(position..position + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(chunk);
        let below = word.wrapping_sub(ONES * 0x21) & !word & (ONES * 0x80);
        if below == 0 {
            position += 8;
            continue;
        }
        position += (below.trailing_zeros() / 8) as usize;
        if bytes.get(position).copied().is_some_and(is_space) {
            return position;
        }
        position += 1;
    }
    // The last bytes, byte by byte; a plain loop, not an iterator over a sub-slice (fewer
    // instructions per byte).
    while position < bytes.len() && !is_space(bytes[position]) {
        position += 1;
    }
    position
}

#[inline]
fn is_key_byte(byte: u8) -> bool {
    CLASSES[usize::from(byte)] & KEY != 0
}

/// When a key and `=` start at `position`: the position of the value.
fn value_start(bytes: &[u8], position: usize) -> Option<usize> {
    // Key bytes up to one past the longest key (so a longer run is seen as too long).
    let limit = bytes.len().min(position.saturating_add(MAX_KEY_LEN + 1));
    let mut end = position;
    while end < limit && is_key_byte(bytes[end]) {
        end += 1;
    }
    let key_len = end.saturating_sub(position);
    if key_len == 0 || key_len > MAX_KEY_LEN || bytes.get(end) != Some(&b'=') {
        return None;
    }
    Some(end + 1)
}

/// When one of `kv_names`' common names (of 2 to 7 bytes) and `=` start at `position`: the
/// name's index and the position of the value. One 8-byte load finds the `=` and packs the
/// key for the name table at once; a known name is made of key bytes, so this answers exactly
/// what [`value_start`] would for it, without reading the key byte by byte and packing it
/// again for the table (~40 instructions a pair on a netfilter line). `None` sends the pair to
/// [`value_start`]: other keys, longer ones, and the last 7 bytes of the text.
#[inline]
fn known_pair_at(bytes: &[u8], position: usize) -> Option<(usize, usize)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let chunk: [u8; 8] = bytes.get(position..position + 8)?.try_into().ok()?;
    let word = u64::from_le_bytes(chunk);
    // The first `=`: the lowest byte of `word ^ '='…` that is zero, by the same "has a zero
    // byte" test as `next_space` (its lowest set bit is exact).
    let equals = word ^ (ONES * u64::from(b'='));
    let found = equals.wrapping_sub(ONES) & !equals & (ONES * 0x80);
    let length = (found.trailing_zeros() / 8) as usize;
    if !(2..8).contains(&length) {
        return None;
    }
    let key = word & ((1u64 << (8 * length)) - 1);
    let index = kv_names::static_index_of_packed(key, length)?;
    Some((index, position + length + 1))
}

/// The index of the `"` closing a quoted value that starts at `from` (just after the opening
/// quote); a backslash escapes the byte after it.
fn closing_quote(bytes: &[u8], from: usize) -> Option<usize> {
    let mut position = from;
    while let Some(byte) = bytes.get(position) {
        match byte {
            b'\\' => position += 2,
            b'"' => return Some(position),
            _ => position += 1,
        }
    }
    None
}

/// End of the pair starting at `position` (after its value), when one starts there.
fn pair_end(bytes: &[u8], position: usize) -> Option<usize> {
    let start = value_start(bytes, position)?;
    if bytes.get(start) == Some(&b'"') {
        return closing_quote(bytes, start + 1).map(|close| close + 1);
    }
    Some(next_space(bytes, start))
}

/// One piece of a key=value record.
enum Token<'a> {
    /// A pair whose value reads as written, at this range of the text (bare, or quoted
    /// without a backslash). The key is its bytes (key bytes: ASCII) and the value a range,
    /// so that the pair of nearly every token needs no `str` slicing: the four char-boundary
    /// checks of slicing both out cost ~27 instructions a pair (BENCHMARKS.md "Parsing").
    /// With the index of the key among `kv_names`' common names when the tokenizer found it
    /// already ([`known_pair_at`]); `None` says only that it has not looked.
    Pair(&'a [u8], Option<usize>, Range<usize>),
    /// A quoted pair whose value had escapes, resolved.
    Escaped(&'a [u8], String),
    /// A word without `=` (`SYN`, `DF`), with its parenthesized argument if one follows.
    Flag(&'a str, Option<&'a str>),
}

/// Parses key=value text into `event`. On an error the event is left as it was.
pub fn parse(text: &str, context: &ParseContext, event: &mut Event) -> Result<(), FormatError> {
    // The only error past the start of the pairs is an unterminated quoted value. Without a
    // quote the pairs cannot fail, so they go straight into `fields` as they are read
    // (netfilter and filterlog lines: no token list to allocate and walk twice); with one,
    // every token is read first so that a failure leaves the event untouched.
    let start = lenient_pairs_start(text.as_bytes())
        .ok_or_else(|| FormatError::new("expecting at least one key=value pair", 0))?;
    parse_from(text, start, context, event)
}

/// [`parse`] with the start of the pairs already known ([`pairs_start`]: a caller that asked
/// [`looks_like`]'s question has found it once already).
pub(crate) fn parse_at(
    text: &str,
    start: usize,
    context: &ParseContext,
    event: &mut Event,
) -> Result<(), FormatError> {
    // `pairs_start` skips at most two bracketed groups, `parse` any number: with a third
    // before the pairs (or a start that is not one of `text`'s boundaries), `parse` finds its
    // own start, so the result is always what `parse` gives.
    let prefix = text.as_bytes().get(..start);
    if !text.is_char_boundary(start)
        || prefix.is_none_or(|prefix| prefix.iter().filter(|byte| **byte == b'[').count() > 2)
    {
        return parse(text, context, event);
    }
    parse_from(text, start, context, event)
}

/// The pairs of `text` from `start` on, which is where they start.
fn parse_from(
    text: &str,
    start: usize,
    context: &ParseContext,
    event: &mut Event,
) -> Result<(), FormatError> {
    let may_fail = memchr::memchr(b'"', text.as_bytes()).is_some();
    parse_pairs(text, start, context, event, may_fail)
}

/// [`parse_at`], reading every token before touching the event when `read_first` (it must be
/// when the text has a quote).
fn parse_pairs(
    text: &str,
    start: usize,
    context: &ParseContext,
    event: &mut Event,
    read_first: bool,
) -> Result<(), FormatError> {
    let bytes = text.as_bytes();
    let prefix = text.get(..start).unwrap_or_default().trim();
    let tokens = if read_first {
        let mut tokens = Vec::with_capacity(32);
        for_each_token(text, start, |token| tokens.push(token))?;
        Some(tokens)
    } else {
        None
    };

    event.format = Format::Kv;
    if !prefix.is_empty() {
        record_prefix(prefix, context, event);
    }
    let known = match tokens {
        Some(tokens) => {
            // One allocation for the entries instead of growth by doubling (~20 pairs a line).
            event.fields.reserve(tokens.len());
            let mut store = PairStore::new(&mut event.fields, text);
            for token in tokens {
                insert_token(&mut store, token);
            }
            store.into_known_positions()
        }
        None => {
            // Room for about one pair per 10 bytes (a netfilter line's pairs average 12): an
            // estimate rather than a count of the spaces, whose pass over the line cost ~240
            // instructions a netfilter line. Lines of shorter pairs grow the entries by
            // doubling, as any `Vec` does. `Fields::reserve` makes room for at most 64 entries
            // a call, so a long line of few pairs gets at most that much room it does not use.
            event
                .fields
                .reserve(bytes.len().saturating_sub(start) / PAIR_BYTES + 1);
            let mut store = PairStore::new(&mut event.fields, text);
            for_each_token(text, start, |token| insert_token(&mut store, token))?;
            store.into_known_positions()
        }
    };
    map_core_fields(text, context, event, &known);
    Ok(())
}

/// Adds one token to `fields`: a pair (a repeated key collects its values in an array), or a
/// flag word (`SYN`, `DF`; `true`, or its parenthesized argument), kept once.
///
/// Inlined into the tokenizer's loop, so that a pair (nearly every token) goes to the store
/// with no `Token` made and matched and no call of its own (~20 instructions a pair); the
/// other tokens go out of line ([`insert_other_token`]), keeping the loop small.
#[inline(always)]
fn insert_token(store: &mut PairStore<'_, '_>, token: Token<'_>) {
    match token {
        Token::Pair(key, known, value) => store.span_pair(key, known, value),
        other => insert_other_token(store, other),
    }
}

/// [`insert_token`] of an escaped pair or a flag word.
#[inline(never)]
fn insert_other_token(store: &mut PairStore<'_, '_>, token: Token<'_>) {
    match token {
        Token::Pair(key, known, value) => store.span_pair(key, known, value),
        Token::Escaped(key, value) => store.text_pair(&String::from_utf8_lossy(key), &value),
        Token::Flag(word, argument) => {
            store.flag(word, argument.map_or(Value::Bool(true), Value::from));
        }
    }
}

/// The first token where a pair starts (any prefix allowed, for sources fixed to kv).
fn lenient_pairs_start(bytes: &[u8]) -> Option<usize> {
    let mut position = skip_spaces(bytes, 0);
    while position < bytes.len() {
        if bytes[position] == b'[' {
            // A bracketed group (`[UFW BLOCK]`) is one token even with spaces inside.
            if let Some(close) = bytes[position..]
                .iter()
                .take(MAX_PREFIX_WORD)
                .position(|byte| *byte == b']')
            {
                position = skip_spaces(bytes, position + close + 1);
                continue;
            }
        }
        if value_start(bytes, position).is_some() {
            return Some(position);
        }
        let word_end = next_space(bytes, position);
        let word = &bytes[position..word_end];
        if let Some(equals) = word.iter().position(|byte| *byte == b'=') {
            if let Some(colon) = word[..equals].iter().rposition(|byte| *byte == b':') {
                if value_start(bytes, position + colon + 1).is_some() {
                    return Some(position + colon + 1);
                }
            }
        }
        position = skip_spaces(bytes, word_end);
    }
    None
}

/// Reads the tokens from `start` on, handing each to `each` in order. Fails only on a quoted
/// value without its closing quote (the tokens before it have been handed over by then).
fn for_each_token<'a>(
    text: &'a str,
    start: usize,
    mut each: impl FnMut(Token<'a>),
) -> Result<(), FormatError> {
    let bytes = text.as_bytes();
    let mut position = skip_spaces(bytes, start);
    while position < bytes.len() {
        // A common name is found with its `=` in one load; any other key byte by byte. The
        // bare value of a common name (nearly every pair of a firewall line) is read first,
        // on its own short path.
        let known = known_pair_at(bytes, position);
        if let Some((index, value_at)) = known {
            if bytes.get(value_at) != Some(&b'"') {
                let end = next_space(bytes, value_at);
                let key = bytes.get(position..value_at - 1).unwrap_or_default();
                each(Token::Pair(key, Some(index), value_at..end));
                position = skip_spaces(bytes, end);
                continue;
            }
        }
        let (known, value_at) = match known {
            Some((index, value_at)) => (Some(index), Some(value_at)),
            None => (None, value_start(bytes, position)),
        };
        if let Some(value_at) = value_at {
            let key = bytes.get(position..value_at - 1).unwrap_or_default();
            if bytes.get(value_at) == Some(&b'"') {
                let close = closing_quote(bytes, value_at + 1)
                    .ok_or_else(|| FormatError::new("unterminated quoted value", value_at))?;
                let quoted = value_at + 1..close;
                match unescape(text.get(quoted.clone()).unwrap_or_default()) {
                    Cow::Borrowed(_) => each(Token::Pair(key, known, quoted)),
                    Cow::Owned(value) => each(Token::Escaped(key, value)),
                }
                position = close + 1;
            } else {
                let end = next_space(bytes, value_at);
                each(Token::Pair(key, known, value_at..end));
                position = end;
            }
        } else {
            let end = next_space(bytes, position);
            let word = &text[position..end];
            let after = skip_spaces(bytes, end);
            let argument_end = next_space(bytes, after);
            let argument = &text[after..argument_end];
            if argument.len() >= 2 && argument.starts_with('(') && argument.ends_with(')') {
                each(Token::Flag(word, Some(&argument[1..argument.len() - 1])));
                position = argument_end;
            } else {
                each(Token::Flag(word, None));
                position = end;
            }
        }
        position = skip_spaces(bytes, position);
    }
    Ok(())
}

/// Resolves `\"` and `\\`; any other backslash is kept as written (Windows paths).
fn unescape(value: &str) -> Cow<'_, str> {
    if !value.contains('\\') {
        return Cow::Borrowed(value);
    }
    let mut unescaped = String::with_capacity(value.len());
    let mut characters = value.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            unescaped.push(character);
            continue;
        }
        match characters.next() {
            Some(escaped @ ('"' | '\\')) => unescaped.push(escaped),
            Some(other) => {
                unescaped.push('\\');
                unescaped.push(other);
            }
            None => unescaped.push('\\'),
        }
    }
    Cow::Owned(unescaped)
}

/// The text of a field's value (the first value of a repeated key).
fn text_of(value: Option<StoredValue<'_>>) -> Option<&str> {
    match value? {
        StoredValue::Text(text) => Some(text),
        StoredValue::Json(Value::String(text)) => Some(text),
        StoredValue::Json(Value::Array(values)) => values.first()?.as_str(),
        StoredValue::StructuredData(_) | StoredValue::Json(_) => None,
    }
}

/// The text of the field `key` (the first value of a repeated key).
fn text_field<'a>(fields: &'a Fields, key: &str) -> Option<&'a str> {
    text_of(fields.get_stored(key))
}

/// The first of `values` (fields' values in order of preference) with non-empty text.
fn first_of<'a>(values: &[Option<StoredValue<'a>>]) -> Option<&'a str> {
    values
        .iter()
        .filter_map(|value| text_of(*value))
        .find(|value| !value.is_empty())
}

/// The first of `values` whose text is an IP address.
fn first_ip(values: &[Option<StoredValue<'_>>]) -> Option<ShortText> {
    values
        .iter()
        .filter_map(|value| text_of(*value))
        .find(|value| is_ip_address(value))
        .map(ShortText::from)
}

/// Whether `text` parses as an `IpAddr`: exactly `text.parse::<IpAddr>().is_ok()`, with IPv4
/// (nearly every firewall line, twice) checked by hand: the standard parser, which also
/// reads IPv6, cost ~200 instructions per address.
fn is_ip_address(text: &str) -> bool {
    // Every IPv6 text form has a colon and no IPv4 one has. (`contains` rather than `memchr`,
    // whose set-up costs more than the scan of a 7 to 15 byte value.)
    is_ipv4_address(text.as_bytes())
        || (text.as_bytes().contains(&b':') && text.parse::<IpAddr>().is_ok())
}

/// `Ipv4Addr`'s text form as the standard library reads it: four decimal numbers of 1 to 3
/// digits separated by dots, each at most 255, none with a leading zero (`0` itself is fine).
fn is_ipv4_address(bytes: &[u8]) -> bool {
    let mut groups = 0;
    let mut position = 0;
    loop {
        // One group: its digits, then a dot or the end.
        let start = position;
        let mut number = 0u32;
        while position < bytes.len() && position - start < 4 && bytes[position].is_ascii_digit() {
            number = number * 10 + u32::from(bytes[position] - b'0');
            position += 1;
        }
        let digits = position - start;
        let leading_zero = digits > 1 && bytes[start] == b'0';
        if digits == 0 || digits > 3 || leading_zero || number > 255 {
            return false;
        }
        groups += 1;
        match bytes.get(position) {
            None => return groups == 4,
            Some(b'.') if groups < 4 => position += 1,
            Some(_) => return false,
        }
    }
}

/// The first of `values` whose text is a port number.
fn first_port(values: &[Option<StoredValue<'_>>]) -> Option<u16> {
    values
        .iter()
        .filter_map(|value| text_of(*value))
        .find_map(parse_port)
}

/// `text.parse::<u16>().ok()`, by hand (the standard parser's general radix loop cost ~100
/// instructions per port): one optional leading `+`, then ASCII digits only (leading zeros
/// allowed), at most 65535.
fn parse_port(text: &str) -> Option<u16> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    let mut number: u32 = 0;
    for byte in digits.bytes() {
        if !byte.is_ascii_digit() {
            return None;
        }
        number = number * 10 + u32::from(byte - b'0');
        if number > u32::from(u16::MAX) {
            return None;
        }
    }
    u16::try_from(number).ok()
}

/// Placeholders devices write where they have no user.
fn is_placeholder(value: &str) -> bool {
    matches!(value, "" | "-" | "N/A" | "n/a" | "none" | "unknown")
}

/// Sets the core fields, time and logsource from the pairs' values; `positions` says where
/// `kv_known`'s keys are in `fields` (the pair store noted them).
fn map_core_fields(
    text: &str,
    context: &ParseContext,
    event: &mut Event,
    positions: &KnownPositions,
) {
    let known = KnownFields::at(&event.fields, positions);
    let core = &mut event.core;
    if let Some(ip) = first_ip(&[known.srcip, known.src, known.SRC, known.src_ip, known.remip]) {
        core.source_ip = Some(ip);
    }
    if let Some(ip) = first_ip(&[known.dstip, known.dst, known.DST, known.dst_ip]) {
        core.destination_ip = Some(ip);
    }
    if let Some(port) = first_port(&[
        known.srcport,
        known.SPT,
        known.spt,
        known.src_port,
        known.sport,
    ]) {
        core.source_port = Some(port);
    }
    if let Some(port) = first_port(&[
        known.dstport,
        known.DPT,
        known.dpt,
        known.dst_port,
        known.dport,
    ]) {
        core.destination_port = Some(port);
    }
    if let Some(user) = first_of(&[known.user, known.usrName, known.dstuser, known.srcuser])
        .filter(|user| !is_placeholder(user))
    {
        core.user_name = Some(user.into());
    }
    if let Some(action) = first_of(&[known.action, known.act]) {
        core.event_action = Some(action.to_owned().into());
    }
    let outcome = first_of(&[known.status, known.result])
        .and_then(outcome_of)
        .or_else(|| first_of(&[known.action]).and_then(outcome_of_action));
    if let Some(outcome) = outcome {
        core.event_outcome = Some(Cow::Borrowed(outcome));
    }
    if let Some(code) = first_of(&[known.logid]) {
        core.event_code = Some(code.to_owned());
    }
    if let Some(level) = first_of(&[known.level]) {
        core.log_level = Some(level.to_owned().into());
    }
    if let Some(message) = first_of(&[known.msg]) {
        core.message = Some(message.to_owned());
    } else if core.message.is_none() {
        core.message = Some(text.to_owned());
    }
    if let Some(device) = first_of(&[known.devname]) {
        core.host_name = Some(device.into());
    }
    if let Some(time) = device_time(&known, context) {
        event.timestamp = time;
    }
    if let Some(logsource) = logsource_of(&known) {
        event.logsource = logsource;
    }
}

/// `success`/`failure` from a status or result word, where it is clear.
fn outcome_of(status: &str) -> Option<&'static str> {
    const SUCCESS: &[&str] = &[
        "success",
        "succeeded",
        "successful",
        "ok",
        "pass",
        "passed",
        "accept",
        "allowed",
    ];
    const FAILURE: &[&str] = &[
        "failed", "failure", "fail", "denied", "deny", "error", "rejected", "blocked",
    ];
    if SUCCESS.iter().any(|word| status.eq_ignore_ascii_case(word)) {
        Some("success")
    } else if FAILURE.iter().any(|word| status.eq_ignore_ascii_case(word)) {
        Some("failure")
    } else {
        None
    }
}

/// FortiGate actions such as `ssl-login-fail` or `login-success` carry the outcome.
fn outcome_of_action(action: &str) -> Option<&'static str> {
    let last = action.rsplit(['-', '_']).next().unwrap_or(action);
    match last {
        "fail" | "failed" | "failure" => Some("failure"),
        "success" | "succeeded" => Some("success"),
        _ => None,
    }
}

/// FortiGate's `date`+`time` (+`tz`), or `eventtime` (epoch in s, ms, µs or ns), when it lies
/// within the years an event takes (`timestamp::within_event_years`).
fn device_time(known: &KnownFields<'_>, context: &ParseContext) -> Option<DateTime<Utc>> {
    device_time_as_written(known, context).and_then(within_event_years)
}

/// [`device_time`] whatever its year.
fn device_time_as_written(
    known: &KnownFields<'_>,
    context: &ParseContext,
) -> Option<DateTime<Utc>> {
    if let (Some(date), Some(time)) = (text_of(known.date), text_of(known.time)) {
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok();
        let time = NaiveTime::parse_from_str(time, "%H:%M:%S").ok();
        if let (Some(date), Some(time)) = (date, time) {
            let naive = NaiveDateTime::new(date, time);
            let read = match text_of(known.tz).and_then(zone_offset) {
                Some(offset) => offset.from_local_datetime(&naive).single().map_or_else(
                    || local_to_utc(naive, context.timezone),
                    |time| Some(time.with_timezone(&Utc)),
                ),
                None => local_to_utc(naive, context.timezone),
            };
            // Outside the event years: `eventtime` may still say when.
            if let Some(time) = read.and_then(within_event_years) {
                return Some(time);
            }
        }
    }
    let eventtime = text_of(known.eventtime)?;
    let number: i64 = eventtime.parse().ok()?;
    match eventtime.len() {
        17.. => Some(DateTime::from_timestamp_nanos(number)),
        14..=16 => DateTime::from_timestamp_micros(number),
        11..=13 => DateTime::from_timestamp_millis(number),
        _ => DateTime::from_timestamp(number, 0),
    }
}

/// `-0700`, `+07:00`, `+07`.
fn zone_offset(text: &str) -> Option<FixedOffset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits = rest.replace(':', "");
    if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// FortiGate or netfilter, from which keys are present; `None` leaves the logsource as it was.
fn logsource_of(known: &KnownFields<'_>) -> Option<LogSource> {
    let fortigate = known.logid.is_some()
        && (known.devid.is_some() || (known.kind.is_some() && known.subtype.is_some()));
    if fortigate {
        let service = text_of(known.kind).filter(|kind| !kind.is_empty());
        let category = (service == Some("traffic")).then_some("firewall");
        return Some(fortigate_logsource(category, service));
    }
    let netfilter = known.SRC.is_some()
        && known.DST.is_some()
        && (known.IN.is_some() || known.OUT.is_some() || known.PROTO.is_some());
    netfilter.then(|| LogSource::from_static(Some("linux"), Some("firewall"), None))
}

/// FortiGate's logsource: the fixed names borrowed, the service (the record's `type`) copied.
fn fortigate_logsource(category: Option<&'static str>, service: Option<&str>) -> LogSource {
    LogSource {
        service: service.map(|service| Cow::Owned(service.to_owned())),
        ..LogSource::from_static(Some("fortigate"), category, None)
    }
}

/// Stores the text before the first pair: kernel time, Proxmox header, log prefix.
fn record_prefix(prefix: &str, context: &ParseContext, event: &mut Event) {
    let mut rest = prefix;
    if let Some(after_open) = rest.strip_prefix('[') {
        // A byte search: `str::find` with a `char` sets up a searcher (~180 instructions a
        // netfilter line) to cross the ~17 bytes of a kernel time. `]` is ASCII, so `close`
        // is a character boundary.
        if let Some(close) = after_open.bytes().position(|byte| byte == b']') {
            let inside = after_open[..close].trim();
            if !inside.is_empty()
                && inside
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || byte == b'.')
            {
                event.fields.insert_text("kernel_timestamp".into(), inside);
                rest = after_open[close + 1..].trim_start();
            }
        }
    }
    if rest.is_empty() {
        return;
    }
    event.fields.insert_text("log_prefix".into(), rest);
    if record_proxmox_header(rest, context, event) {
        return;
    }
    if let Some(action) = netfilter_action(rest) {
        event.core.event_action = Some(Cow::Borrowed(action));
    }
}

/// What a netfilter log prefix says was done (`[UFW BLOCK]` → `block`).
fn netfilter_action(prefix: &str) -> Option<&'static str> {
    const WORDS: &[(&str, &str)] = &[
        ("BLOCK", "block"),
        ("DROP", "drop"),
        ("REJECT", "reject"),
        ("DENY", "deny"),
        ("ACCEPT", "accept"),
        ("ALLOW", "allow"),
        ("ACC", "accept"),
    ];
    WORDS
        .iter()
        .find(|(word, _)| contains_ignore_ascii_case(prefix, word))
        .map(|(_, action)| *action)
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Proxmox VE firewall: `vmid loglevel chain dd/Mon/yyyy:HH:MM:SS +zzzz [policy ]ACTION:`.
fn record_proxmox_header(prefix: &str, context: &ParseContext, event: &mut Event) -> bool {
    let mut words = prefix.split(' ').filter(|word| !word.is_empty());
    let (Some(vmid), Some(loglevel), Some(chain), Some(date), Some(zone)) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return false;
    };
    let numeric = |word: &str| !word.is_empty() && word.bytes().all(|byte| byte.is_ascii_digit());
    if !numeric(vmid) || !numeric(loglevel) {
        return false;
    }
    let Some(time) = crate::format::access_log::clf_timestamp(date, Some(zone), context) else {
        return false;
    };
    event.timestamp = time;
    let fields = &mut event.fields;
    fields.insert("vmid".into(), Value::from(vmid));
    fields.insert("loglevel".into(), Value::from(loglevel));
    fields.insert("chain".into(), Value::from(chain));
    fields.insert("logdate".into(), Value::from(format!("{date} {zone}")));
    let action = words.next_back().and_then(|word| word.strip_suffix(':'));
    if let Some(action) = action {
        // Also becomes `event.action`, as written, like any device `action` key.
        fields.insert("action".into(), Value::from(action));
    }
    true
}

/// One comma-separated column with its byte offset.
struct Columns<'a> {
    text: &'a str,
    position: usize,
    done: bool,
}

impl<'a> Columns<'a> {
    fn new(text: &'a str) -> Self {
        Columns {
            text,
            position: 0,
            done: false,
        }
    }

    fn next_column(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let rest = &self.text[self.position..];
        match rest.find(',') {
            Some(comma) => {
                self.position += comma + 1;
                Some(&rest[..comma])
            }
            None => {
                self.done = true;
                self.position = self.text.len();
                Some(rest)
            }
        }
    }

    fn remainder(&self) -> &'a str {
        if self.done {
            ""
        } else {
            &self.text[self.position..]
        }
    }
}

/// Parses pfSense/OPNsense filterlog CSV (the message after the `filterlog:` tag).
pub fn parse_filterlog(
    text: &str,
    _context: &ParseContext,
    event: &mut Event,
) -> Result<(), FormatError> {
    let csv = text.trim_end_matches(['\r', '\n', ' ']);
    let mut columns = Columns::new(csv);
    let mut parsed: Vec<(&'static str, &str)> = Vec::with_capacity(32);
    const HEADER: [&str; 9] = [
        "rulenum",
        "subrulenum",
        "anchor",
        "tracker",
        "realint",
        "reason",
        "act",
        "direction",
        "version",
    ];
    let mut version_offset = 0;
    for name in HEADER {
        version_offset = columns.position;
        let column = columns.next_column().ok_or_else(|| {
            FormatError::new(
                format!("expecting the `{name}` column of a filterlog record"),
                columns.position,
            )
        })?;
        parsed.push((name, column));
    }
    if !parsed[0].1.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(FormatError::new(
            "expecting a rule number at the start of a filterlog record",
            0,
        ));
    }
    let ip_names: &[&'static str] = match parsed[8].1 {
        "4" => &[
            "tos", "ecn", "ttl", "id", "offset", "flags", "protoid", "proto",
        ],
        "6" => &["class", "flowlabel", "hlim", "proto", "protoid"],
        _ => {
            return Err(FormatError::new(
                "expecting IP version 4 or 6 in a filterlog record",
                version_offset,
            ))
        }
    };
    take_columns(&mut columns, ip_names, &mut parsed);
    take_columns(&mut columns, &["length", "srcip", "dstip"], &mut parsed);
    let protoid = parsed
        .iter()
        .find(|(name, _)| *name == "protoid")
        .map_or("", |(_, value)| *value);
    match protoid {
        "6" => take_columns(
            &mut columns,
            &[
                "srcport", "dstport", "datalen", "tcpflags", "seq", "ack", "window", "urg",
                "options",
            ],
            &mut parsed,
        ),
        "17" => take_columns(
            &mut columns,
            &["srcport", "dstport", "datalen"],
            &mut parsed,
        ),
        "1" => take_icmp_columns(&mut columns, &mut parsed),
        "112" => take_columns(
            &mut columns,
            &[
                "carp_type",
                "carp_ttl",
                "carp_vhid",
                "carp_version",
                "carp_advskew",
                "carp_advbase",
            ],
            &mut parsed,
        ),
        _ => {}
    }
    let extra = columns.remainder();

    event.format = Format::Kv;
    event.fields.reserve_text(text.len());
    for (name, value) in &parsed {
        if !value.is_empty() {
            event.fields.insert_text((*name).into(), value);
        }
    }
    if !extra.trim_matches(',').is_empty() {
        event.fields.insert_text("extra".into(), extra);
    }
    let fields = &event.fields;
    let core = &mut event.core;
    core.source_ip = first_ip(&[fields.get_stored("srcip")]);
    core.destination_ip = first_ip(&[fields.get_stored("dstip")]);
    core.source_port = first_port(&[fields.get_stored("srcport")]);
    core.destination_port = first_port(&[fields.get_stored("dstport")]);
    core.event_action =
        first_of(&[fields.get_stored("act")]).map(|action| action.to_owned().into());
    if core.message.is_none() {
        core.message = Some(text.to_owned());
    }
    let product = filterlog_product(
        event.core.host_name.as_deref(),
        text_field(&event.fields, "tracker"),
    );
    event.logsource = LogSource::from_static(product, Some("firewall"), None);
    Ok(())
}

fn take_columns<'a>(
    columns: &mut Columns<'a>,
    names: &[&'static str],
    parsed: &mut Vec<(&'static str, &'a str)>,
) {
    for name in names {
        match columns.next_column() {
            Some(value) => parsed.push((name, value)),
            None => return,
        }
    }
}

/// ICMP columns depend on the ICMP type (pfSense's `filter_log.inc`).
fn take_icmp_columns<'a>(columns: &mut Columns<'a>, parsed: &mut Vec<(&'static str, &'a str)>) {
    let Some(icmp_type) = columns.next_column() else {
        return;
    };
    parsed.push(("icmp_type", icmp_type));
    let names: &[&'static str] = match icmp_type {
        "request" | "reply" | "tstamp" => &["icmp_id", "icmp_seq"],
        "unreachproto" => &["icmp_dstip", "icmp_protoid"],
        "unreachport" => &["icmp_dstip", "icmp_protoid", "icmp_port"],
        "needfrag" => &["icmp_dstip", "icmp_mtu"],
        "tstampreply" => &[
            "icmp_id",
            "icmp_seq",
            "icmp_otime",
            "icmp_rtime",
            "icmp_ttime",
        ],
        _ => &["icmp_descr"],
    };
    take_columns(columns, names, parsed);
}

/// pfSense or OPNsense, from the host name or from OPNsense's rule hashes (32 hex digits or a
/// UUID where pfSense writes a decimal tracker).
fn filterlog_product(host_name: Option<&str>, tracker: Option<&str>) -> Option<&'static str> {
    if let Some(host) = host_name {
        if contains_ignore_ascii_case(host, "opnsense") {
            return Some("opnsense");
        }
        if contains_ignore_ascii_case(host, "pfsense") {
            return Some("pfsense");
        }
    }
    let tracker = tracker?;
    let hex_or_dash = tracker
        .bytes()
        .all(|byte| byte.is_ascii_hexdigit() || byte == b'-');
    let opnsense_hash = hex_or_dash
        && (tracker.len() == 32 || tracker.len() == 36)
        && !tracker.bytes().all(|byte| byte.is_ascii_digit());
    opnsense_hash.then_some("opnsense")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::new_event;

    #[test]
    fn byte_classes_are_the_documented_sets() {
        for byte in 0..=u8::MAX {
            assert_eq!(
                is_space(byte),
                matches!(byte, b' ' | b'\t' | b'\r' | b'\n'),
                "{byte}"
            );
            assert_eq!(
                is_key_byte(byte),
                byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'),
                "{byte}"
            );
        }
    }

    fn context() -> ParseContext {
        let mut context = ParseContext::new("test");
        context.timezone = chrono_tz::UTC;
        context
    }

    fn parse_kv(text: &str) -> Event {
        let context = context();
        let mut event = new_event(text.as_bytes(), &context, 1);
        parse(text, &context, &mut event).unwrap_or_else(|error| panic!("{text}: {error:?}"));
        event
    }

    fn field<'a>(event: &'a Event, key: &str) -> Option<&'a Value> {
        event.fields.get(key)
    }

    #[test]
    fn looks_like_accepts_devices_and_rejects_prose() {
        assert!(looks_like(
            r#"date=2019-05-10 time=11:37:47 devname="FG100E" devid=FG100E logid="0100032001""#
        ));
        assert!(looks_like(
            "[50028442.088484] IN=enp1s0 OUT= MAC=00:08 SRC=1.2.3.4"
        ));
        assert!(looks_like(
            "[  203.842973] IPTABLES-DROP: IN=lo OUT= MAC=00:00"
        ));
        assert!(looks_like(
            "[ 1234.5678] [UFW BLOCK] IN=eth0 OUT= MAC=aa SRC=1.2.3.4"
        ));
        assert!(looks_like(
            "SFW2-INext-DROP-DEFLT IN=ppp0 OUT= MAC= SRC=24.64.208.134"
        ));
        assert!(looks_like(
            "Shorewall:net2fw:DROP:IN=eth1 OUT= MAC=00:02 SRC=127.0.0.1"
        ));
        assert!(!looks_like(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4"
        ));
        assert!(!looks_like(
            "Accepted password for root from 10.0.0.1 port 22 ssh2"
        ));
        assert!(!looks_like("a=1 b=2"));
        assert!(!looks_like(r#"a="unterminated b=1 c=2"#));
        assert!(!looks_like(""));
        assert!(!looks_like(
            "NetScreen device_id=aka1 [Root]system-notification-00257(traffic): start_time=\"x\""
        ));
    }

    #[test]
    fn fortigate_login_failure() {
        let event = parse_kv(
            r#"date=2019-05-10 time=11:37:47 devname="FG100E" devid="FG100E3G16" logid="0100032001" type="event" subtype="system" level="information" user="admin" srcip=10.0.0.1 action="login" status="failed" msg="Administrator admin login failed from https(10.0.0.1) because of invalid password""#,
        );
        assert_eq!(event.format, Format::Kv);
        assert_eq!(event.core.host_name.as_deref(), Some("FG100E"));
        assert_eq!(event.core.source_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(event.core.user_name.as_deref(), Some("admin"));
        assert_eq!(event.core.event_action.as_deref(), Some("login"));
        assert_eq!(event.core.event_outcome.as_deref(), Some("failure"));
        assert_eq!(event.core.event_code.as_deref(), Some("0100032001"));
        assert_eq!(event.core.log_level.as_deref(), Some("information"));
        assert_eq!(
            event.core.message.as_deref(),
            Some(
                "Administrator admin login failed from https(10.0.0.1) because of invalid password"
            )
        );
        assert_eq!(event.timestamp.to_rfc3339(), "2019-05-10T11:37:47+00:00");
        assert_eq!(
            event.logsource,
            LogSource::new(Some("fortigate"), None, Some("event"))
        );
        assert_eq!(field(&event, "subtype"), Some(&Value::from("system")));
    }

    #[test]
    fn fortigate_zone_and_escapes() {
        let event = parse_kv(
            r#"date=2024-10-14 time=13:46:40 tz="-0700" logid="1" type="traffic" subtype="forward" msg="say \"hi\" C:\temp""#,
        );
        assert_eq!(event.timestamp.to_rfc3339(), "2024-10-14T20:46:40+00:00");
        assert_eq!(event.core.message.as_deref(), Some(r#"say "hi" C:\temp"#));
        assert_eq!(event.logsource.category.as_deref(), Some("firewall"));
    }

    #[test]
    fn iptables_flags_empty_values_and_repeated_keys() {
        let event = parse_kv("[  203.842973] IPTABLES-DROP: IN=lo OUT= MAC=00:00 SRC=127.0.0.1 DST=127.0.0.53 LEN=76 DF PROTO=UDP SPT=49007 DPT=53 LEN=56 OPT (0204)");
        assert_eq!(field(&event, "OUT"), Some(&Value::from("")));
        assert_eq!(field(&event, "DF"), Some(&Value::Bool(true)));
        assert_eq!(field(&event, "OPT"), Some(&Value::from("0204")));
        assert_eq!(field(&event, "LEN"), Some(&serde_json::json!(["76", "56"])));
        assert_eq!(
            field(&event, "kernel_timestamp"),
            Some(&Value::from("203.842973"))
        );
        assert_eq!(
            field(&event, "log_prefix"),
            Some(&Value::from("IPTABLES-DROP:"))
        );
        assert_eq!(event.core.source_port, Some(49007));
        assert_eq!(event.core.destination_ip.as_deref(), Some("127.0.0.53"));
        assert_eq!(event.core.event_action.as_deref(), Some("drop"));
        assert_eq!(
            event.logsource,
            LogSource::new(Some("linux"), Some("firewall"), None)
        );
    }

    #[test]
    fn proxmox_header() {
        let event = parse_kv("0 3 PVEFW-HOST-IN 20/Jun/2022:13:09:14 +0200 policy DROP: IN=vmbr0.94 SRC=10.3.94.11 DST=10.3.94.12 PROTO=UDP");
        assert_eq!(field(&event, "vmid"), Some(&Value::from("0")));
        assert_eq!(field(&event, "action"), Some(&Value::from("DROP")));
        assert_eq!(event.timestamp.to_rfc3339(), "2022-06-20T11:09:14+00:00");
    }

    #[test]
    fn pairs_read_as_they_come_equal_pairs_read_first() {
        // `parse` skips the token list for text without quotes; both ways give one event.
        let context = context();
        for text in [
            "[50028443.007919] IN=eth0 OUT= MAC=00:08:a2 SRC=195.54.1.3 DST=10.20.7.1 LEN=40 TTL=245 ID=30001 DF PROTO=TCP SPT=40001 DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0",
            "[UFW BLOCK] IN=eth0 SRC=1.2.3.4 SRC=5.6.7.8 OPT (020405B4) DPT=22 DPT=23",
            "Shorewall:net2fw:DROP:IN=eth1 OUT= SRC=10.0.0.1 DST=10.0.0.2 PROTO=ICMP TYPE=8 CODE=0",
            "0 3 PVEFW-HOST-IN 20/Jun/2022:13:09:14 +0200 policy DROP: IN=vmbr0.94 SRC=10.3.94.11",
            "date=2026-11-22 time=10:01:07 devname=FG100F srcip=185.1.2.3 action=login status=failed user=admin",
        ] {
            let mut streamed = new_event(text.as_bytes(), &context, 1);
            let mut read_first = streamed.clone();
            let start = lenient_pairs_start(text.as_bytes()).unwrap_or_default();
            let streamed_result = parse_pairs(text, start, &context, &mut streamed, false);
            let read_first_result = parse_pairs(text, start, &context, &mut read_first, true);
            assert!(streamed_result.is_ok() && read_first_result.is_ok(), "{text}");
            assert_same_event(&streamed, &read_first, text);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let context = context();
        let mut event = new_event(b"", &context, 1);
        let error = parse(r#"a=1 b="open"#, &context, &mut event).err();
        assert_eq!(
            error.map(|error| (error.message.into_owned(), error.offset)),
            Some(("unterminated quoted value".into(), 6))
        );
        assert!(event.fields.is_empty(), "nothing is written on failure");
        assert!(parse("no pairs here", &context, &mut event).is_err());
    }

    #[test]
    fn filterlog_ipv4_tcp_and_ipv6_udp() {
        let context = context();
        let text = "53,,,1000000301,em0,match,block,in,4,0x0,,64,420,0,none,6,tcp,460,10.0.2.2,10.0.2.15,53742,22,420,PA,29633380:29633800,3617062173,65535,,";
        let mut event = new_event(text.as_bytes(), &context, 1);
        parse_filterlog(text, &context, &mut event).unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(field(&event, "tcpflags"), Some(&Value::from("PA")));
        assert_eq!(field(&event, "realint"), Some(&Value::from("em0")));
        assert_eq!(event.core.source_port, Some(53742));
        assert_eq!(event.core.event_action.as_deref(), Some("block"));
        assert_eq!(
            event.logsource,
            LogSource::new(None, Some("firewall"), None)
        );

        let text = "98,,,881dd59a3e942966c90498ac104715a0,re0,match,pass,in,6,0x00,0x0ea87,51,udp,17,73,2008:8a0::1,2c02:2454::1738,6881,51918,73";
        let mut event = new_event(text.as_bytes(), &context, 1);
        parse_filterlog(text, &context, &mut event).unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(field(&event, "hlim"), Some(&Value::from("51")));
        assert_eq!(
            event.core.destination_ip.as_deref(),
            Some("2c02:2454::1738")
        );
        assert_eq!(event.logsource.product.as_deref(), Some("opnsense"));
    }

    #[test]
    fn filterlog_rejects_other_text() {
        let context = context();
        let mut event = new_event(b"", &context, 1);
        assert!(parse_filterlog("hello world", &context, &mut event).is_err());
        assert!(parse_filterlog("1,,,2,em0,match,block,in,5,x", &context, &mut event).is_err());
        assert!(event.fields.is_empty());
    }

    /// `parse` as it was before `PairStore`: every token read first, then each stored through
    /// the map's own lookups by name, and the core fields looked up by name. The reference
    /// for the differential tests below.
    fn reference_parse(
        text: &str,
        context: &ParseContext,
        event: &mut Event,
    ) -> Result<(), FormatError> {
        let start = lenient_pairs_start(text.as_bytes())
            .ok_or_else(|| FormatError::new("expecting at least one key=value pair", 0))?;
        let mut tokens = Vec::new();
        for_each_token(text, start, |token| tokens.push(token))?;
        event.format = Format::Kv;
        let prefix = text[..start].trim();
        if !prefix.is_empty() {
            record_prefix(prefix, context, event);
        }
        for token in tokens {
            let (key, value) = match token {
                Token::Flag(word, argument) => {
                    if !event.fields.contains_key(word) {
                        let value = argument.map_or(Value::Bool(true), Value::from);
                        event.fields.insert(word.to_owned().into(), value);
                    }
                    continue;
                }
                Token::Pair(key, _, range) => (key, text[range].to_owned()),
                Token::Escaped(key, value) => (key, value),
            };
            let key = std::str::from_utf8(key).unwrap_or_default();
            let value = Value::from(value);
            match event.fields.get_mut(key) {
                None => {
                    event.fields.insert(key.to_owned().into(), value);
                }
                Some(Value::Array(values)) => values.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
            }
        }
        reference_map_core_fields(text, context, event);
        Ok(())
    }

    /// `parse` and `reference_parse` agree on `text`: the same result, the same event, the
    /// same JSON (which also pins the order of the fields).
    fn assert_same_as_reference(text: &str) {
        let context = context();
        let mut ours = new_event(text.as_bytes(), &context, 1);
        // A field from the envelope, as a syslog line brings (some under known names).
        ours.fields
            .insert("syslog.facility".into(), Value::from("kern"));
        ours.fields.insert("SRC".into(), Value::from("envelope"));
        let mut reference = ours.clone();
        let our_result = parse(text, &context, &mut ours).map_err(|error| error.offset);
        let reference_result =
            reference_parse(text, &context, &mut reference).map_err(|error| error.offset);
        assert_eq!(our_result, reference_result, "{text}");
        if our_result.is_ok() {
            assert_same_event(&ours, &reference, text);
        }
    }

    /// The same event, and the same JSON for it (field order included), parsed from `text`.
    fn assert_same_event(ours: &Event, expected: &Event, text: &str) {
        assert_eq!(ours, expected, "{text}");
        assert_eq!(
            serde_json::to_string(ours).ok(),
            serde_json::to_string(expected).ok(),
            "{text}"
        );
    }

    #[test]
    fn corpus_lines_parse_as_the_reference_does() {
        // Every line of the firewall corpus, whole and from after each of its first colons
        // (where a syslog envelope would hand over its message).
        let folder = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/syslog-firewall-crowdsec-hub"
        );
        let mut checked = 0;
        for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(entry.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if file
                    .path()
                    .extension()
                    .is_none_or(|extension| extension != "log")
                {
                    continue;
                }
                let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                for line in text.lines() {
                    assert_same_as_reference(line);
                    for (at, _) in line.match_indices(": ").take(2) {
                        assert_same_as_reference(&line[at + 2..]);
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "the corpus was not found ({checked} lines)");
    }

    /// key=value lines as devices write them: an optional prefix, then pairs under common and
    /// other names (repeated at times), flags, empty and quoted values.
    fn kv_line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let prefix = proptest::sample::select(
            &[
                "",
                "[50028442.088484] ",
                "[UFW BLOCK] ",
                "IPTABLES-DROP: ",
                "Shorewall:net2fw:DROP:",
                "0 3 PVEFW-HOST-IN 20/Jun/2022:13:09:14 +0200 policy DROP: ",
            ][..],
        );
        let key = prop_oneof![
            proptest::sample::select(
                &[
                    "SRC",
                    "DST",
                    "LEN",
                    "SPT",
                    "DPT",
                    "IN",
                    "OUT",
                    "PROTO",
                    "MAC",
                    "srcip",
                    "dstport",
                    "action",
                    "type",
                    "subtype",
                    "logid",
                    "devid",
                    "msg",
                    "user",
                    "status",
                    "date",
                    "time",
                    "eventtime",
                    "srcintfrole"
                ][..]
            )
            .prop_map(str::to_owned),
            "[A-Za-z_][A-Za-z0-9_.-]{0,5}",
        ];
        let value = prop_oneof![
            "[a-z0-9.:]{0,8}",
            proptest::sample::select(
                &[
                    "10.0.0.1",
                    "2001:db8::1",
                    "443",
                    "+22",
                    "070000",
                    "failed",
                    "traffic",
                    "2026-11-22",
                    "10:15:42"
                ][..]
            )
            .prop_map(str::to_owned),
            "[a-z ]{0,6}".prop_map(|text| format!("\"{text}\"")),
        ];
        let token = prop_oneof![
            6 => (key, value).prop_map(|(key, value)| format!("{key}={value}")),
            1 => proptest::sample::select(&["SYN", "DF", "ACK", "OPT (0204)", "word"][..]).prop_map(str::to_owned),
        ];
        (
            prefix,
            proptest::collection::vec(token, 1..30),
            proptest::sample::select(&[" ", "  "][..]),
        )
            .prop_map(|(prefix, tokens, separator)| format!("{prefix}{}", tokens.join(separator)))
    }

    /// Known names, `=` and other bytes side by side: near misses of the one-load path
    /// (`SRCx=`, `xSRC=`, `SRC.x=`, a name cut by the end) as well as hits.
    fn near_misses() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(&["SRC", "ID", "PROTO", "devname", "srcip", "TTL"][..])
                    .prop_map(str::to_owned),
                proptest::sample::select(&["=", " ", "\"", "x", "-", ".", "\u{e9}"][..])
                    .prop_map(str::to_owned),
                proptest::collection::vec(any::<u8>(), 0..4)
                    .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            ],
            0..24,
        )
        .prop_map(|pieces| pieces.concat())
    }

    proptest::proptest! {
        /// Generated key=value lines parse as the reference parses them (through both the
        /// quote-free path and the read-first one, since some values are quoted).
        #[test]
        fn generated_lines_parse_as_the_reference_does(line in kv_line()) {
            assert_same_as_reference(&line);
        }

        /// The one-load path for common names answers what the byte-by-byte one does, and its
        /// index names the key read: on generated lines and at every position of any bytes.
        #[test]
        fn known_pairs_are_what_value_start_finds(
            line in kv_line(),
            noise in near_misses(),
        ) {
            for bytes in [line.as_bytes(), noise.as_bytes()] {
                for position in 0..bytes.len() {
                    if let Some((index, value_at)) = known_pair_at(bytes, position) {
                        proptest::prop_assert_eq!(value_start(bytes, position), Some(value_at));
                        proptest::prop_assert_eq!(
                            kv_names::name_at(index).map(str::as_bytes),
                            bytes.get(position..value_at - 1)
                        );
                    }
                }
            }
        }
    }

    /// Every common name of 2 to 7 bytes followed by `=` is found by the one-load path, so the
    /// netfilter and FortiGate keys it was made for do not fall back to the slow one.
    #[test]
    fn short_common_names_take_the_one_load_path() {
        let mut short = 0;
        for index in 0..kv_names::NAME_COUNT {
            let Some(name) = kv_names::name_at(index).filter(|name| name.len() < 8) else {
                continue;
            };
            let text = format!("{name}=value more");
            assert_eq!(
                known_pair_at(text.as_bytes(), 0),
                Some((index, name.len() + 1)),
                "{name}"
            );
            assert_eq!(
                value_start(text.as_bytes(), 0),
                Some(name.len() + 1),
                "{name}"
            );
            short += 1;
        }
        assert!(short > 90, "{short} names of 2 to 7 bytes");
        for name in [
            "SRC", "DST", "PROTO", "WINDOW", "srcip", "devname", "URGP", "ID", "IN",
        ] {
            let text = format!("{name}=1 and more");
            let found = known_pair_at(text.as_bytes(), 0)
                .map(|(index, value_at)| (kv_names::name_at(index), value_at));
            assert_eq!(found, Some((Some(name), name.len() + 1)), "{name}");
        }
        // Eight bytes or more before the `=`, or too little text left: the byte-by-byte path.
        assert_eq!(known_pair_at(b"HOPLIMIT=64 x", 0), None);
        assert_eq!(known_pair_at(b"SRC=1", 0), None);
    }

    /// `map_core_fields` as it was before `KnownFields`: one lookup by name per key. Kept to
    /// check the version that reads the known keys at their noted positions against.
    fn reference_map_core_fields(text: &str, context: &ParseContext, event: &mut Event) {
        let fields = &event.fields;
        // Through `get`, which builds each `Value`: the stored text is not what is checked.
        let get = |names: &[&str]| -> Vec<Option<StoredValue<'_>>> {
            names
                .iter()
                .map(|name| fields.get(name).map(StoredValue::Json))
                .collect()
        };
        let core = &mut event.core;
        if let Some(ip) = first_ip(&get(&["srcip", "src", "SRC", "src_ip", "remip"])) {
            core.source_ip = Some(ip);
        }
        if let Some(ip) = first_ip(&get(&["dstip", "dst", "DST", "dst_ip"])) {
            core.destination_ip = Some(ip);
        }
        if let Some(port) = first_port(&get(&["srcport", "SPT", "spt", "src_port", "sport"])) {
            core.source_port = Some(port);
        }
        if let Some(port) = first_port(&get(&["dstport", "DPT", "dpt", "dst_port", "dport"])) {
            core.destination_port = Some(port);
        }
        if let Some(user) = first_of(&get(&["user", "usrName", "dstuser", "srcuser"]))
            .filter(|user| !is_placeholder(user))
        {
            core.user_name = Some(user.into());
        }
        if let Some(action) = first_of(&get(&["action", "act"])) {
            core.event_action = Some(action.to_owned().into());
        }
        let outcome = first_of(&get(&["status", "result"]))
            .and_then(outcome_of)
            .or_else(|| first_of(&get(&["action"])).and_then(outcome_of_action));
        if let Some(outcome) = outcome {
            core.event_outcome = Some(Cow::Borrowed(outcome));
        }
        if let Some(code) = text_field(fields, "logid").filter(|code| !code.is_empty()) {
            core.event_code = Some(code.to_owned());
        }
        if let Some(level) = text_field(fields, "level").filter(|level| !level.is_empty()) {
            core.log_level = Some(level.to_owned().into());
        }
        if let Some(message) = text_field(fields, "msg").filter(|message| !message.is_empty()) {
            core.message = Some(message.to_owned());
        } else if core.message.is_none() {
            core.message = Some(text.to_owned());
        }
        if let Some(device) = text_field(fields, "devname").filter(|device| !device.is_empty()) {
            core.host_name = Some(device.into());
        }
        // The reference fills the slots by name lookups, not from noted positions.
        let known = KnownFields {
            date: fields.get("date").map(StoredValue::Json),
            time: fields.get("time").map(StoredValue::Json),
            tz: fields.get("tz").map(StoredValue::Json),
            eventtime: fields.get("eventtime").map(StoredValue::Json),
            ..KnownFields::default()
        };
        if let Some(time) = device_time(&known, context) {
            event.timestamp = time;
        }
        let has = |name: &str| fields.contains_key(name);
        if has("logid") && (has("devid") || (has("type") && has("subtype"))) {
            let service = text_field(fields, "type").filter(|kind| !kind.is_empty());
            let category = (service == Some("traffic")).then_some("firewall");
            event.logsource = fortigate_logsource(category, service);
        } else if has("SRC") && has("DST") && (has("IN") || has("OUT") || has("PROTO")) {
            event.logsource = LogSource::from_static(Some("linux"), Some("firewall"), None);
        }
    }

    /// Each known name present or not (about half of them), plus names that must not count,
    /// in any order.
    fn core_field_entries() -> impl proptest::strategy::Strategy<Value = Vec<(String, Value)>> {
        use proptest::prelude::*;
        let names: Vec<&'static str> = KnownFields::NAMES
            .iter()
            .copied()
            .chain(["syslog.priority", "kernel_timestamp", "Src", "DF"])
            .collect();
        let count = names.len();
        proptest::collection::vec(proptest::option::of(core_field_value()), count)
            .prop_map(move |values| {
                names
                    .iter()
                    .zip(values)
                    .filter_map(|(name, value)| Some(((*name).to_owned(), value?)))
                    .collect::<Vec<_>>()
            })
            .prop_shuffle()
    }

    /// Values that make the lookups choose: addresses, ports, outcome words, FortiGate
    /// dates and times, placeholders, arrays (repeated keys) and flags.
    fn core_field_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let text = prop_oneof![
            4 => proptest::sample::select(
                &[
                    "", "-", "10.0.0.1", "192.0.2.7", "2001:db8::1", "22", "443", "deny",
                    "failed", "login-success", "traffic", "2026-11-22", "10:15:42", "+07:00",
                    "1763780000123",
                ][..]
            )
            .prop_map(str::to_owned),
            1 => "[a-z0-9.:]{0,8}",
        ];
        prop_oneof![
            5 => text.clone().prop_map(Value::from),
            1 => Just(Value::Bool(true)),
            1 => proptest::collection::vec(text.prop_map(Value::from), 1..3).prop_map(Value::Array),
        ]
    }

    proptest::proptest! {
        // Many cases: a mismatch needs two of a group's names present with different usable
        // values.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// `map_core_fields` from noted positions sets exactly what the lookup-by-name version set:
        /// core fields, timestamp and logsource, whatever the fields and the envelope's message.
        #[test]
        fn core_fields_match_lookup_by_name(
            entries in core_field_entries(),
            envelope_message in proptest::option::of("[a-z ]{0,10}"),
        ) {
            let context = context();
            let mut event = new_event(b"kv", &context, 1);
            event.core.message = envelope_message;
            event.core.event_action = Some("drop".into());
            for (name, value) in entries {
                event.fields.insert(name.into(), value);
            }
            let mut expected = event.clone();
            reference_map_core_fields("k=v", &context, &mut expected);
            let positions = KnownPositions::scan(&event.fields);
            map_core_fields("k=v", &context, &mut event, &positions);
            proptest::prop_assert_eq!(event, expected);
        }
    }

    /// `next_space` as a scan byte by byte.
    fn next_space_bytewise(bytes: &[u8], from: usize) -> usize {
        (from.min(bytes.len())..bytes.len())
            .find(|position| is_space(bytes[*position]))
            .unwrap_or(bytes.len())
    }

    proptest::proptest! {
        /// The word-at-a-time scan stops where a byte-by-byte scan stops, whatever the bytes
        /// (control bytes just below and above the spaces included).
        #[test]
        fn next_space_equals_bytewise_scan(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => proptest::prelude::any::<u8>(),
                    2 => proptest::sample::select(&[b' ', b'\t', b'\r', b'\n', 0x1f, 0x21, 0x0b, 0x00, 0x80, 0xa0][..]),
                ],
                0..40,
            ),
            from in 0usize..45,
        ) {
            proptest::prop_assert_eq!(next_space(&bytes, from), next_space_bytewise(&bytes, from));
        }

        /// The hand-written port reading answers what `str::parse::<u16>` answers.
        #[test]
        fn port_parse_equals_std_parse(text in "[+-]{0,2}[0-9]{0,7}[ a+-]{0,1}|0{0,12}[0-9]{1,5}") {
            proptest::prop_assert_eq!(parse_port(&text), text.parse::<u16>().ok(), "{}", text);
        }

        /// The hand-written address check answers what the standard parser answers.
        #[test]
        fn ip_check_equals_std_parse(
            text in "[0-9]{1,4}(\\.[0-9]{1,4}){0,4}\\.?|[0-9a-f:.]{0,20}|[0-9. +x-]{0,16}",
            address in proptest::prelude::any::<std::net::Ipv4Addr>(),
        ) {
            proptest::prop_assert_eq!(is_ip_address(&text), text.parse::<IpAddr>().is_ok(), "{}", text);
            let written = address.to_string();
            proptest::prop_assert!(is_ip_address(&written));
            for cut in 0..written.len() {
                let prefix = &written[..cut];
                proptest::prop_assert_eq!(is_ip_address(prefix), prefix.parse::<IpAddr>().is_ok(), "{}", prefix);
            }
        }

        /// Where `looks_like` finds the pairs is where `parse` finds them, so a caller may
        /// hand the first to `parse_at`; and both give the same event.
        #[test]
        fn pairs_start_is_where_parse_starts(
            text in "(\\[[ 0-9a-z.=]{0,6}\\] ?){0,4}([A-Za-z:-]{1,8}[ :]?)?([A-Za-z:]{1,4}=[a-z0-9\\[\\]]{0,3} {1,2}){0,5}[ a-z=\\]\\[]{0,6}",
        ) {
            let Some(start) = pairs_start(&text) else {
                return Ok(());
            };
            if text.as_bytes()[..start].iter().filter(|byte| **byte == b'[').count() <= 2 {
                proptest::prop_assert_eq!(lenient_pairs_start(text.as_bytes()), Some(start));
            }
            let context = context();
            let mut through_start = new_event(text.as_bytes(), &context, 1);
            let mut through_parse = through_start.clone();
            let at_result = parse_at(&text, start, &context, &mut through_start).map_err(|error| error.offset);
            let parse_result = parse(&text, &context, &mut through_parse).map_err(|error| error.offset);
            proptest::prop_assert_eq!(at_result, parse_result);
            proptest::prop_assert_eq!(through_start, through_parse);
        }

        #[test]
        fn never_panics(text in "[ a-zA-Z0-9=\"\\\\\\[\\]:,./()+-]{0,80}|\\PC{0,80}") {
            let context = context();
            let mut event = new_event(text.as_bytes(), &context, 1);
            let _ = looks_like(&text);
            let _ = parse(&text, &context, &mut event);
            let _ = parse_filterlog(&text, &context, &mut event);
        }
    }
}
