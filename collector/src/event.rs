//! The normalized event: one shape for every log line, agent record and EVTX record.
//!
//! Field naming follows ARCHITECTURE.md "The event": a few ECS-named core fields that every
//! consumer can rely on (`host.name`, `source.ip`, `process.command_line`, …), and `fields`
//! holding every key/value the parser found under the name the device wrote, so Sigma and YARA
//! rules see exactly what the device said.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::fields::Fields;

/// Text of a short core field (a host name, an address, a program or user name): up to 24
/// bytes are held inline, so setting one does not allocate. It reads as a `&str` (`Deref`),
/// compares with `&str` and `String`, and serializes as a JSON string.
pub type ShortText = compact_str::CompactString;

/// One normalized event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Stable id: a 128-bit hash of collector, source, sequence number and raw bytes, in hex.
    /// The same record read again from the same place gets the same id, which is what lets the
    /// server drop duplicates after a retry.
    pub id: String,
    /// When the event happened, in UTC. Device local times without a zone were read in the
    /// configured zone; records without any time take `received_at`.
    #[serde(serialize_with = "crate::timestamp::rfc3339::serialize")]
    pub timestamp: DateTime<Utc>,
    /// When the collector (or `citysoc parse`) read the record.
    #[serde(serialize_with = "crate::timestamp::rfc3339::serialize")]
    pub received_at: DateTime<Utc>,
    /// The agency this event belongs to. Set from the collector's enrollment identity (or the
    /// `--agency` flag), never from the payload. Shared (`Arc`) with the parse context, so
    /// every event of a stream does not copy it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<Arc<str>>,
    /// The collector that read the record (shared like `agency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<Arc<str>>,
    /// Where the record came from.
    pub source: EventSource,
    /// Which parser understood the record.
    pub format: Format,
    /// Sigma's product/category/service, where the parser could tell.
    #[serde(default, skip_serializing_if = "LogSource::is_empty")]
    pub logsource: LogSource,
    /// The ECS-named core fields.
    #[serde(flatten)]
    pub core: CoreFields,
    /// Every parsed key/value under the device's own names.
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub fields: Fields,
    /// Why no parser accepted the record (only on `format: unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<ParseError>,
    /// The exact bytes received, when they are valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The exact bytes received, base64-encoded, when they are not valid UTF-8 (legacy devices
    /// still send Windows-1258).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
}

impl Event {
    /// The exact bytes this event was parsed from.
    pub fn raw_bytes(&self) -> Cow<'_, [u8]> {
        if let Some(raw) = &self.raw {
            return Cow::Borrowed(raw.as_bytes());
        }
        match &self.raw_base64 {
            Some(encoded) => Cow::Owned(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .unwrap_or_default(),
            ),
            None => Cow::Borrowed(&[]),
        }
    }

    /// How many bytes [`Event::raw_bytes`] holds, without decoding base64.
    pub fn raw_len(&self) -> usize {
        match (&self.raw, &self.raw_base64) {
            (Some(raw), _) => raw.len(),
            (None, Some(encoded)) => {
                let padding = encoded
                    .bytes()
                    .rev()
                    .take(2)
                    .filter(|&byte| byte == b'=')
                    .count();
                (encoded.len() / 4 * 3).saturating_sub(padding)
            }
            (None, None) => 0,
        }
    }

    /// Stores `bytes` byte-exact: as text when valid UTF-8, as base64 otherwise.
    pub fn set_raw(&mut self, bytes: &[u8]) {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                self.raw = Some(text.to_owned());
                self.raw_base64 = None;
            }
            Err(_) => {
                self.raw = None;
                self.raw_base64 = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
        }
    }

    /// Looks a field up by name: the core fields by their ECS name first, then `fields`
    /// (where a dotted name also walks into nested objects).
    pub fn field(&self, name: &str) -> Option<Cow<'_, serde_json::Value>> {
        if let Some(value) = self.core.get(name) {
            return Some(Cow::Owned(value));
        }
        if let Some(value) = self.fields.get(name) {
            return Some(Cow::Borrowed(value));
        }
        let mut parts = name.split('.');
        let mut current = self.fields.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(Cow::Borrowed(current))
    }
}

/// Where a record came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSource {
    /// How it arrived: `file`, `stdin`, `udp`, `tcp`, `tls`, `http`, `evtx`. A `Cow` because it
    /// is nearly always one of those literals, and copying it into every event showed in
    /// profiles.
    pub transport: Cow<'static, str>,
    /// The peer address or the file path. Shared (`Arc`) with the parse context: building an
    /// event clones the context's source, and copying the address into every event showed in
    /// profiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Arc<str>>,
    /// Position of the record in its stream (line number for files, frame number for
    /// connections), counting from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

/// The parser that understood a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// BSD syslog and its real-world variants.
    Rfc3164,
    /// IETF syslog.
    Rfc5424,
    /// ArcSight Common Event Format (alone or inside syslog).
    Cef,
    /// IBM QRadar Log Event Extended Format 1.0/2.0.
    Leef,
    /// key=value lines (FortiGate, iptables, …) and pfSense/OPNsense filterlog CSV.
    Kv,
    /// A JSON document (one per line, or one after another).
    Json,
    /// A Windows event as JSON (Winlogbeat, NXLog, Sysmon shapes) or from an EVTX file.
    Winevent,
    /// Linux audit records grouped by serial number.
    Auditd,
    /// Apache/nginx common and combined access logs.
    AccessLog,
    /// Nothing understood the record; `parse_error` says why.
    Unknown,
}

impl Format {
    /// The name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Rfc3164 => "rfc3164",
            Format::Rfc5424 => "rfc5424",
            Format::Cef => "cef",
            Format::Leef => "leef",
            Format::Kv => "kv",
            Format::Json => "json",
            Format::Winevent => "winevent",
            Format::Auditd => "auditd",
            Format::AccessLog => "access_log",
            Format::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Sigma's logsource triple. The parts are `Cow`s because parsers nearly always set them from
/// a fixed set of names (`linux`, `firewall`, `sshd`, …): borrowed, those cost no allocation
/// per event (two per netfilter line showed in profiles). They serialize as plain strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogSource {
    /// e.g. `windows`, `linux`, `fortios`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<Cow<'static, str>>,
    /// e.g. `process_creation`, `webserver`, `firewall`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Cow<'static, str>>,
    /// e.g. `sshd`, `security`, `sysmon`, `auditd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Cow<'static, str>>,
}

impl LogSource {
    /// A logsource with the given parts, copied (for parts read from the record; fixed names
    /// go through [`LogSource::from_static`], which does not allocate).
    pub fn new(product: Option<&str>, category: Option<&str>, service: Option<&str>) -> Self {
        let owned = |part: Option<&str>| part.map(|part| Cow::Owned(part.to_owned()));
        LogSource {
            product: owned(product),
            category: owned(category),
            service: owned(service),
        }
    }

    /// A logsource from fixed names, borrowed (no allocation).
    pub const fn from_static(
        product: Option<&'static str>,
        category: Option<&'static str>,
        service: Option<&'static str>,
    ) -> Self {
        LogSource {
            product: borrowed(product),
            category: borrowed(category),
            service: borrowed(service),
        }
    }

    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        self.product.is_none() && self.category.is_none() && self.service.is_none()
    }
}

/// `part` as a borrowed `Cow` (a `const fn`: `Option::map` is not one).
const fn borrowed(part: Option<&'static str>) -> Option<Cow<'static, str>> {
    match part {
        Some(part) => Some(Cow::Borrowed(part)),
        None => None,
    }
}

/// Why no parser accepted a record, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParseError {
    /// The format that was tried last (or was fixed for the source).
    pub format: String,
    /// What was wrong, e.g. "expecting a priority value within angle brackets".
    pub message: String,
    /// The byte offset in the record where the problem was found.
    pub offset: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}: {} at byte {}",
            self.format, self.message, self.offset
        )
    }
}

/// A core field's value, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreValue<'a> {
    /// Text.
    Text(&'a str),
    /// A port, pid or status code.
    Number(u32),
}

trait AsCoreValue {
    fn as_core_value(&self) -> CoreValue<'_>;
}

impl AsCoreValue for String {
    fn as_core_value(&self) -> CoreValue<'_> {
        CoreValue::Text(self)
    }
}

impl AsCoreValue for ShortText {
    fn as_core_value(&self) -> CoreValue<'_> {
        CoreValue::Text(self)
    }
}

impl AsCoreValue for Cow<'static, str> {
    fn as_core_value(&self) -> CoreValue<'_> {
        CoreValue::Text(self)
    }
}

impl AsCoreValue for u16 {
    fn as_core_value(&self) -> CoreValue<'_> {
        CoreValue::Number(u32::from(*self))
    }
}

impl AsCoreValue for u32 {
    fn as_core_value(&self) -> CoreValue<'_> {
        CoreValue::Number(*self)
    }
}

/// The way back from [`CoreValue`], for reading compact records.
trait FromCoreValue: Sized {
    fn from_core_value(value: CoreValue<'_>) -> Option<Self>;
}

impl FromCoreValue for String {
    fn from_core_value(value: CoreValue<'_>) -> Option<Self> {
        match value {
            CoreValue::Text(text) => Some(text.to_owned()),
            CoreValue::Number(_) => None,
        }
    }
}

impl FromCoreValue for ShortText {
    fn from_core_value(value: CoreValue<'_>) -> Option<Self> {
        match value {
            CoreValue::Text(text) => Some(ShortText::from(text)),
            CoreValue::Number(_) => None,
        }
    }
}

impl FromCoreValue for Cow<'static, str> {
    fn from_core_value(value: CoreValue<'_>) -> Option<Self> {
        String::from_core_value(value).map(Cow::Owned)
    }
}

impl FromCoreValue for u16 {
    fn from_core_value(value: CoreValue<'_>) -> Option<Self> {
        match value {
            CoreValue::Number(number) => u16::try_from(number).ok(),
            CoreValue::Text(_) => None,
        }
    }
}

impl FromCoreValue for u32 {
    fn from_core_value(value: CoreValue<'_>) -> Option<Self> {
        match value {
            CoreValue::Number(number) => Some(number),
            CoreValue::Text(_) => None,
        }
    }
}

macro_rules! core_fields {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty => $name:literal ),* $(,)?) => {
        /// The ECS-named core fields (serialized flat, under their ECS names). Fields whose values
/// are mostly a few fixed words (`log.level`, `event.action`, `event.outcome`) are
/// `Cow<'static, str>`, so parsers store those words without allocating.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct CoreFields {
            $(
                $(#[$doc])*
                #[serde(rename = $name, default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl CoreFields {
            /// The ECS names of the core fields, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// A core field's value by its ECS name, borrowed (what the detection stage reads on
            /// every event, so it must not allocate).
            pub fn value(&self, name: &str) -> Option<CoreValue<'_>> {
                match name {
                    $( $name => self.$field.as_ref().map(AsCoreValue::as_core_value), )*
                    _ => None,
                }
            }

            /// Calls `visit` with every core field that is set, by ECS name.
            pub fn visit<'a>(&'a self, mut visit: impl FnMut(&'static str, CoreValue<'a>)) {
                $( if let Some(value) = &self.$field { visit($name, value.as_core_value()); } )*
            }

            /// Calls `visit` with the position in [`Self::NAMES`] of every core field that is
            /// set (the compact record names core fields by position).
            #[allow(unused_assignments)]
            pub fn visit_indexed<'a>(&'a self, mut visit: impl FnMut(usize, CoreValue<'a>)) {
                let mut index = 0usize;
                $(
                    if let Some(value) = &self.$field {
                        visit(index, value.as_core_value());
                    }
                    index += 1;
                )*
            }

            /// Sets the core field at position `index` of [`Self::NAMES`]. `None` when there is
            /// no such field or the value does not fit it (text for a number, a port over
            /// 65535).
            #[allow(unused_assignments)]
            pub fn set_indexed(&mut self, index: usize, value: CoreValue<'_>) -> Option<()> {
                let mut position = 0usize;
                $(
                    if index == position {
                        self.$field = Some(<$ty as FromCoreValue>::from_core_value(value)?);
                        return Some(());
                    }
                    position += 1;
                )*
                None
            }

            /// A core field's value by its ECS name.
            pub fn get(&self, name: &str) -> Option<serde_json::Value> {
                match name {
                    $( $name => self.$field.as_ref().map(|value| serde_json::json!(value)), )*
                    _ => None,
                }
            }
        }
    };
}

core_fields! {
    /// Human-readable message (the syslog MSG part, the Windows rendered message, …).
    message: String => "message",
    /// The host that produced the event.
    host_name: ShortText => "host.name",
    /// Source address of a connection or login.
    source_ip: ShortText => "source.ip",
    /// Source port.
    source_port: u16 => "source.port",
    /// Destination address.
    destination_ip: ShortText => "destination.ip",
    /// Destination port.
    destination_port: u16 => "destination.port",
    /// The user concerned.
    user_name: ShortText => "user.name",
    /// Program name (syslog APP-NAME/TAG, image base name).
    process_name: ShortText => "process.name",
    /// Process id.
    process_pid: u32 => "process.pid",
    /// Full path of the process executable.
    process_executable: String => "process.executable",
    /// Full command line.
    process_command_line: String => "process.command_line",
    /// Event code (Windows EventID, CEF signature id, syslog MSGID).
    event_code: String => "event.code",
    /// What happened (`accept`, `deny`, `login`, …).
    event_action: Cow<'static, str> => "event.action",
    /// `success` or `failure`, where the source tells.
    event_outcome: Cow<'static, str> => "event.outcome",
    /// Severity as the source named it (syslog severity name, CEF severity, …).
    log_level: Cow<'static, str> => "log.level",
    /// Requested URL (access logs, proxies).
    url_original: String => "url.original",
    /// HTTP method.
    http_request_method: String => "http.request.method",
    /// HTTP status code.
    http_response_status_code: u16 => "http.response.status_code",
    /// HTTP User-Agent.
    user_agent_original: String => "user_agent.original",
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact for text and for base64 of any length (its padding left out).
    #[test]
    fn raw_len_is_the_length_of_the_raw_bytes() {
        for length in 0..12 {
            let mut event = sample_event();
            let mut bytes = vec![0xFF_u8; length];
            event.set_raw(&bytes);
            assert_eq!(event.raw_len(), length, "{:?}", event.raw_base64);
            bytes.fill(b'a');
            event.set_raw(&bytes);
            assert_eq!(event.raw_len(), length);
        }
    }

    fn sample_event() -> Event {
        let now = DateTime::parse_from_rfc3339("2026-11-22T01:02:03.456Z")
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_default();
        let mut event = Event {
            id: "00".repeat(16),
            timestamp: now,
            received_at: now,
            agency: Some("quan-1".into()),
            collector: None,
            source: EventSource {
                transport: "file".into(),
                address: Some("/var/log/auth.log".into()),
                sequence: Some(7),
            },
            format: Format::Rfc3164,
            logsource: LogSource::new(Some("linux"), None, Some("sshd")),
            core: CoreFields {
                message: Some("Thủ Đức".into()),
                source_port: Some(22),
                ..CoreFields::default()
            },
            fields: Fields::new(),
            parse_error: None,
            raw: None,
            raw_base64: None,
        };
        event
            .fields
            .insert("EventID".into(), serde_json::Value::from(4688));
        event
    }

    #[test]
    fn serde_round_trip_keeps_every_field() {
        let mut event = sample_event();
        event.set_raw(b"<13>Nov 22 01:02:03 host sshd[1]: Th\xe1 \xd0\xfac");
        let json = serde_json::to_string(&event).unwrap_or_default();
        assert!(json.contains("\"source.port\":22"), "{json}");
        assert!(json.contains("\"raw_base64\""), "{json}");
        let back: Event = serde_json::from_str(&json).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(back, event);
        assert_eq!(
            back.raw_bytes().as_ref(),
            b"<13>Nov 22 01:02:03 host sshd[1]: Th\xe1 \xd0\xfac"
        );
    }

    #[test]
    fn field_lookup_prefers_core_then_fields_then_nested() {
        let mut event = sample_event();
        event.fields.insert(
            "winlog".into(),
            serde_json::json!({"event_data": {"Image": "C:\\x.exe"}}),
        );
        assert_eq!(
            event.field("source.port").as_deref(),
            Some(&serde_json::json!(22))
        );
        assert_eq!(
            event.field("EventID").as_deref(),
            Some(&serde_json::json!(4688))
        );
        assert_eq!(
            event.field("winlog.event_data.Image").as_deref(),
            Some(&serde_json::json!("C:\\x.exe"))
        );
        assert!(event.field("nope").is_none());
    }
}
