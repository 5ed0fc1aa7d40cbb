//! Payloads inside a syslog envelope: CEF, LEEF, pfSense/OPNsense filterlog and key=value
//! messages are parsed at both levels, the syslog header into `syslog.*` fields and the payload
//! into its own fields. The event's `format` becomes the innermost format understood.
//!
//! A payload that looks like CEF or LEEF but does not parse keeps the syslog reading and says
//! why in `payload_parse_error`, so nothing is hidden.

use serde_json::Value;

use crate::event::{Event, Format};
use crate::format::{access_log, cef, kv, leef, sshd, FormatError};
use crate::logsource;
use crate::parse::ParseContext;

/// Parses `message` (found at byte `offset` of the record) as a payload, when it is one.
pub fn parse_payload(
    message: &str,
    offset: usize,
    appname: Option<&str>,
    context: &ParseContext,
    event: &mut Event,
) {
    let envelope_format = event.format;
    let (cef_start, leef_start) = payload_markers(message);
    let attempt = if let Some(start) = cef_start {
        Some(("cef", start, cef::parse(&message[start..], context, event)))
    } else if let Some(start) = leef_start {
        Some((
            "leef",
            start,
            leef::parse(&message[start..], context, event),
        ))
    } else if appname == Some("CEF") && cef::looks_like_unmarked(message) {
        // `CEF: 0|Vendor|…` reads as tag `CEF` and message `0|Vendor|…` (UniFi sends this).
        Some(("cef", 0, cef::parse_without_marker(message, context, event)))
    } else if appname == Some("filterlog")
        && !filterlog_csv_possible(message)
        && kv::looks_like(message)
    {
        // key=value under the tag pfSense uses for its CSV (other firewalls and relays use
        // `filterlog` too). Without the commas of the CSV's nine leading columns the CSV read
        // below could only fail, so it is not tried: the failure cost an allocation and an
        // error message per line, on a third of some agencies' traffic.
        Some(("kv", 0, kv::parse(message, context, event)))
    } else if appname == Some("filterlog") {
        match kv::parse_filterlog(message, context, event) {
            // Not pfSense's CSV, but key=value under the same tag (other firewalls and relays
            // use `filterlog` too): read it as such rather than lose its fields. A failed
            // filterlog read leaves the event untouched.
            Err(_) if kv::looks_like(message) => {
                Some(("kv", 0, kv::parse(message, context, event)))
            }
            result => Some(("filterlog", 0, result)),
        }
    } else if let Some(start) = kv::pairs_start(message) {
        // The start `looks_like` found is where `parse` would find it (a property test in
        // `kv.rs`): found once.
        Some(("kv", 0, kv::parse_at(message, start, context, event)))
    } else if access_log::looks_like(message) {
        // nginx and Apache sending their access log through syslog (`nginx: 1.2.3.4 - - […]`).
        Some(("access_log", 0, access_log::parse(message, context, event)))
    } else {
        None
    };
    if let Some((name, start, Err(error))) = attempt {
        event.format = envelope_format;
        record_payload_error(event, name, error.shifted(offset + start));
    }
}

/// Whether `message` has the eight commas that the nine leading columns of pfSense's CSV
/// need: without them [`kv::parse_filterlog`] cannot succeed.
fn filterlog_csv_possible(message: &str) -> bool {
    memchr::memchr_iter(b',', message.as_bytes())
        .nth(7)
        .is_some()
}

/// Where `CEF:` and where `LEEF:` start within the first 64 bytes of the message, each as a
/// payload start ([`payload_marker`] for both markers). Only the front is searched: this runs
/// on every syslog message, and a marker deep inside free text is not a payload. One `memchr2`
/// pass over the front for both markers' first letters instead of one `memchr` pass each
/// (their set-up was most of the cost on 64 bytes).
fn payload_markers(message: &str) -> (Option<usize>, Option<usize>) {
    const CEF: &[u8] = b"CEF:";
    const LEEF: &[u8] = b"LEEF:";
    let bytes = message.as_bytes();
    // Each marker is looked for in its own window, as `payload_marker` does.
    let cef_window = &bytes[..bytes.len().min(64 + CEF.len())];
    let leef_window = &bytes[..bytes.len().min(64 + LEEF.len())];
    let (mut cef, mut leef) = (None, None);
    for start in memchr::memchr2_iter(b'C', b'L', leef_window) {
        if cef.is_none()
            && cef_window
                .get(start..)
                .is_some_and(|rest| rest.starts_with(CEF))
        {
            cef = Some(start);
        }
        if leef.is_none() && leef_window[start..].starts_with(LEEF) {
            leef = Some(start);
        }
        if cef.is_some() && leef.is_some() {
            break;
        }
    }
    // The first occurrence of each counts, and only where a payload may start.
    let at_payload_start = |start: &usize| is_payload_start(message, *start);
    (cef.filter(at_payload_start), leef.filter(at_payload_start))
}

/// Where `marker` starts within the first 64 bytes of the message, as a payload start (what
/// [`payload_markers`] answers for `CEF:` and `LEEF:`, in one pass).
#[cfg(test)]
fn payload_marker(message: &str, marker: &[u8]) -> Option<usize> {
    let window = &message.as_bytes()[..message.len().min(64 + marker.len())];
    // Both markers start with an upper-case letter that is rare in the first bytes of a
    // message: find it with memchr and compare the rest, instead of building a substring
    // searcher per message.
    let first = *marker.first()?;
    memchr::memchr_iter(first, window)
        .find(|start| window[*start..].starts_with(marker))
        .filter(|start| is_payload_start(message, *start))
}

/// `CEF:`/`LEEF:` count as a payload at the start of the message or after a space (some
/// senders put a host or a date before it), not in the middle of a word.
fn is_payload_start(message: &str, start: usize) -> bool {
    start == 0 || message.as_bytes()[start - 1] == b' '
}

fn record_payload_error(event: &mut Event, format_name: &str, error: FormatError) {
    event.fields.insert(
        "payload_parse_error".into(),
        Value::from(format!(
            "{format_name}: {} at byte {}",
            error.message, error.offset
        )),
    );
}

/// Fills the logsource from the syslog program name when no payload parser set one, and reads
/// the login fields out of sshd's prose.
pub fn infer_logsource_from_program(event: &mut Event, appname: Option<&str>) {
    if matches!(appname, Some("sshd" | "sshd-session")) && event.format != Format::Kv {
        if let Some(message) = event.core.message.take() {
            sshd::enrich(&message, event);
            event.core.message = Some(message);
        }
    }
    if !event.logsource.is_empty() {
        return;
    }
    if let Some(found) = appname.and_then(logsource::for_program) {
        event.logsource = found;
    }
}

/// Parses `text` as `wanted` (CEF or LEEF), bare or after a syslog header; used for a source
/// whose format is fixed to CEF or LEEF.
pub fn parse_enveloped(
    text: &str,
    wanted: Format,
    bare: fn(&str, &ParseContext, &mut Event) -> Result<(), FormatError>,
    context: &ParseContext,
    event: &mut Event,
) -> Result<(), FormatError> {
    let marker = if wanted == Format::Cef {
        "CEF:"
    } else {
        "LEEF:"
    };
    if text.starts_with(marker) {
        return bare(text, context, event);
    }
    let envelope = if crate::format::rfc5424::looks_like(text) {
        crate::format::rfc5424::parse(text, context, event)
            .or_else(|_| crate::format::rfc3164::parse(text, context, event))
    } else {
        crate::format::rfc3164::parse(text, context, event)
    };
    match envelope {
        Ok(()) if event.format == wanted => Ok(()),
        Ok(()) => {
            let reason = event
                .fields
                .get("payload_parse_error")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let offset = text.find(marker).unwrap_or(0);
            Err(FormatError::new(
                reason.unwrap_or_else(|| {
                    format!(
                        "expecting `{marker}` at the start of the record or after a syslog header"
                    )
                }),
                offset,
            ))
        }
        Err(_) => Err(FormatError::new(
            format!("expecting `{marker}` at the start of the record or after a syslog header"),
            0,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    proptest::proptest! {
        /// One pass for both markers finds what one search per marker finds, wherever the
        /// markers are (inside and across the edge of the window, repeated, glued to a word).
        #[test]
        fn markers_in_one_pass_equal_one_search_each(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(&["CEF:", "LEEF:", "CEF", "LEEF", "C", "L", " ", "EF:", "x"][..]).prop_map(str::to_owned),
                    "[a-zA-Z :|]{0,9}",
                ],
                0..30,
            ),
        ) {
            let message = pieces.concat();
            proptest::prop_assert_eq!(
                payload_markers(&message),
                (payload_marker(&message, b"CEF:"), payload_marker(&message, b"LEEF:")),
                "{:?}", message
            );
        }
    }
}
