//! The per-worker scanner: picks the configured targets out of an event, decodes hidden
//! payloads, scans each with yara-x and turns matches into alerts.

use std::borrow::Cow;
use std::time::Duration;

use citysoc_collector::Event;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::decode::{self, Decoding};
use super::rules::YaraRuleSet;
use crate::{Alert, AlertKind};

/// At most this many matched strings (identifier and offset) go into an alert's details.
const MAX_REPORTED_STRINGS: usize = 10;

/// At most this many decoded payloads are scanned per event; a record stuffed with base64
/// must not multiply the work without bound. The rest are counted as skipped.
const MAX_DECODED_PER_EVENT: usize = 16;

/// What the YARA scanner looks at, and its limits. In the server configuration under `yara:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct YaraConfig {
    /// The fields to scan, by the names `Event::field` knows (ECS core names or the device's
    /// own), plus `raw` for the record as received. A field holding a list has each string
    /// scanned. Names starting with `url.` and the W3C/IIS query fields are also scanned
    /// percent-decoded; names ending in `base64` are attachments scanned as their decoded
    /// bytes. A field whose text appears verbatim in the raw record is not scanned again.
    pub targets: Vec<String>,
    /// Bytes scanned at most per target (default 1 MiB). Longer input is scanned up to the
    /// limit, counted in [`YaraStats::truncated`] and flagged `truncated` in alert details.
    pub max_scan_bytes: usize,
    /// yara-x scan timeout in seconds per target (default 1; yara-x counts whole seconds).
    /// 0 disables the timeout. A timed-out scan is counted and gives no alert.
    pub timeout_secs: u64,
    /// Decode and scan PowerShell `-EncodedCommand` arguments and base64 runs of 40
    /// characters or more found in the targets (default true).
    pub decode_base64: bool,
}

impl Default for YaraConfig {
    fn default() -> Self {
        YaraConfig {
            targets: [
                "raw",
                "process.command_line",
                "CommandLine",
                "ParentCommandLine",
                "message",
                "url.original",
                "cs-uri-query",
                "http.request.body.content",
                "request_body",
                "file.content",
                "file_content_base64",
            ]
            .map(str::to_owned)
            .to_vec(),
            max_scan_bytes: 1024 * 1024,
            timeout_secs: 1,
            decode_base64: true,
        }
    }
}

/// What a scanner has done, for metrics and `citysoc` summaries. Every target that was not
/// scanned in full is counted somewhere here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct YaraStats {
    /// Events given to the scanner.
    pub events: u64,
    /// yara-x scans run (targets and decoded payloads).
    pub targets_scanned: u64,
    /// Bytes handed to yara-x.
    pub bytes_scanned: u64,
    /// Decoded payloads among the scans.
    pub decoded_scanned: u64,
    /// Targets cut at `max_scan_bytes`.
    pub truncated: u64,
    /// Scans aborted by the timeout.
    pub timeouts: u64,
    /// Scans yara-x failed for another reason.
    pub errors: u64,
    /// Field targets not scanned because the raw record already held their exact text.
    pub skipped_inside_raw: u64,
    /// Decoded payloads not scanned because the event already had `MAX_DECODED_PER_EVENT`.
    pub skipped_decoded: u64,
    /// Alerts raised.
    pub alerts: u64,
}

/// How a configured target is read from an event.
#[derive(Debug, Clone)]
struct TargetSpec {
    name: String,
    raw: bool,
    /// Also scan the percent-decoded text.
    url: bool,
    /// The value is base64: scan its decoded bytes instead.
    base64_attachment: bool,
}

impl TargetSpec {
    fn new(name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        TargetSpec {
            name: name.to_owned(),
            raw: name == "raw",
            url: lower.starts_with("url.") || matches!(lower.as_str(), "cs-uri-query" | "cs-uri-stem" | "cs-uri" | "request" | "uri" | "url"),
            base64_attachment: lower.ends_with("base64"),
        }
    }
}

/// One piece of bytes to scan and where it came from.
struct Piece<'e> {
    /// Index of the target in the scanner's target list.
    target: usize,
    bytes: Cow<'e, [u8]>,
    decoding: Option<Decoding>,
}

/// One worker's YARA scanner. Create it from the shared rule set in the worker's thread and
/// keep it for the worker's life (creating a yara-x scanner costs far more than a scan):
///
/// ```ignore
/// let rules: Arc<YaraRuleSet> = shared.clone();
/// std::thread::spawn(move || {
///     let mut scanner = YaraScanner::new(&rules, &config);
///     for event in events { alerts.extend(scanner.scan_event(&event)); }
/// });
/// ```
pub struct YaraScanner<'r> {
    rules: &'r YaraRuleSet,
    scanner: yara_x::Scanner<'r>,
    targets: Vec<TargetSpec>,
    max_scan_bytes: usize,
    decode_base64: bool,
    stats: YaraStats,
}

impl std::fmt::Debug for YaraScanner<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("YaraScanner")
            .field("targets", &self.targets)
            .field("max_scan_bytes", &self.max_scan_bytes)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<'r> YaraScanner<'r> {
    /// A scanner over `rules` with the targets and limits of `config`.
    pub fn new(rules: &'r YaraRuleSet, config: &YaraConfig) -> Self {
        let mut scanner = yara_x::Scanner::new(&rules.rules);
        if config.timeout_secs > 0 {
            scanner.set_timeout(Duration::from_secs(config.timeout_secs));
        }
        // Alerts report at most a few offsets; a pattern matching a megabyte of repeated text
        // must not grow the match list without bound.
        scanner.max_matches_per_pattern(1000);
        YaraScanner {
            rules,
            scanner,
            targets: config.targets.iter().map(|name| TargetSpec::new(name)).collect(),
            max_scan_bytes: config.max_scan_bytes.max(1),
            decode_base64: config.decode_base64,
            stats: YaraStats::default(),
        }
    }

    /// What this scanner has done so far.
    pub fn stats(&self) -> YaraStats {
        self.stats
    }

    /// Scans the configured targets of one event: one alert per matching rule (the first
    /// target that matched is in `details.target`, others in `details.other_targets`).
    pub fn scan_event(&mut self, event: &Event) -> Vec<Alert> {
        self.stats.events += 1;
        let pieces = self.pieces(event);
        let mut alerts = Vec::new();
        for piece in &pieces {
            self.scan_piece(piece, event, &mut alerts);
        }
        self.stats.alerts += alerts.len() as u64;
        alerts
    }

    /// The targets of `event` and the payloads decoded from them, in scan order.
    fn pieces<'e>(&mut self, event: &'e Event) -> Vec<Piece<'e>> {
        let mut pieces: Vec<Piece<'e>> = Vec::with_capacity(4);
        let mut raw_scanned: Option<Cow<'e, [u8]>> = None;
        let mut texts: Vec<(usize, Cow<'e, [u8]>, bool)> = Vec::with_capacity(4);
        for name in 0..self.targets.len() {
            let Some(spec) = self.targets.get(name) else { continue };
            if spec.raw {
                let raw = event.raw_bytes();
                if raw.is_empty() {
                    continue;
                }
                texts.push((name, raw.clone(), false));
                raw_scanned = Some(raw);
                continue;
            }
            let mut values = Vec::new();
            field_strings(event, &spec.name, &mut values);
            let (url, base64_attachment) = (spec.url, spec.base64_attachment);
            for value in values {
                if value.is_empty() {
                    continue;
                }
                if base64_attachment {
                    self.push_attachment(name, value, &mut pieces);
                    continue;
                }
                if url {
                    if let Some(decoded) = decode::percent_decode(value.as_bytes()) {
                        pieces.push(Piece { target: name, bytes: Cow::Owned(decoded), decoding: Some(Decoding::Percent) });
                    }
                }
                texts.push((name, Cow::Borrowed(value.as_bytes()), true));
            }
        }
        let mut decoded: Vec<Piece<'e>> = Vec::new();
        if self.decode_base64 {
            // Fields first: a payload found both in `CommandLine` and in the raw record is
            // reported under the field, which tells the analyst more.
            let mut seen_runs: Vec<u64> = Vec::new();
            for (name, bytes, _) in texts.iter().filter(|(_, _, is_field)| *is_field) {
                self.decode_payloads(*name, bytes, &mut seen_runs, &mut decoded);
            }
            for (name, bytes, _) in texts.iter().filter(|(_, _, is_field)| !*is_field) {
                self.decode_payloads(*name, bytes, &mut seen_runs, &mut decoded);
            }
        }
        for (name, bytes, is_field) in texts {
            let inside_raw = is_field
                && raw_scanned.as_deref().is_some_and(|raw| {
                    let limit = raw.len().min(self.max_scan_bytes);
                    memchr::memmem::find(raw.get(..limit).unwrap_or(raw), &bytes).is_some()
                });
            if inside_raw {
                self.stats.skipped_inside_raw += 1;
                continue;
            }
            pieces.push(Piece { target: name, bytes, decoding: None });
        }
        pieces.append(&mut decoded);
        pieces
    }

    /// A base64 attachment (`file_content_base64`): scanned as its decoded bytes.
    fn push_attachment<'e>(&mut self, name: usize, value: &'e str, pieces: &mut Vec<Piece<'e>>) {
        let compact: Vec<u8> = value.bytes().filter(|byte| !byte.is_ascii_whitespace()).take(self.max_base64_chars()).collect();
        match decode::decode_base64(&compact) {
            Some(bytes) => pieces.push(Piece { target: name, bytes: Cow::Owned(bytes), decoding: Some(Decoding::Base64) }),
            // Not base64 after all: scan the text as it is.
            None => pieces.push(Piece { target: name, bytes: Cow::Borrowed(value.as_bytes()), decoding: None }),
        }
    }

    fn max_base64_chars(&self) -> usize {
        // Enough characters to decode to the scan limit, rounded to whole base64 groups.
        (self.max_scan_bytes / 3 + 1).saturating_mul(4)
    }

    /// PowerShell encoded commands and long base64 runs in `text`, decoded. The same run seen
    /// in two targets (raw and `CommandLine`) is decoded once.
    fn decode_payloads<'e>(&mut self, name: usize, text: &[u8], seen: &mut Vec<u64>, out: &mut Vec<Piece<'e>>) {
        let limit = text.len().min(self.max_scan_bytes);
        let text = text.get(..limit).unwrap_or(text);
        let mut runs = decode::powershell_encoded_arguments(text);
        runs.extend(decode::base64_runs(text, decode::MIN_BASE64_RUN));
        for run in runs {
            let Some(run_bytes) = text.get(run.start..run.end.min(run.start.saturating_add(self.max_base64_chars()))) else {
                continue;
            };
            let hash = xxhash_rust::xxh3::xxh3_64(run_bytes);
            if seen.contains(&hash) {
                continue;
            }
            seen.push(hash);
            let Some((bytes, decoding)) = decode::decode_payload(run_bytes) else { continue };
            if seen.len() > MAX_DECODED_PER_EVENT {
                self.stats.skipped_decoded += 1;
                continue;
            }
            out.push(Piece { target: name, bytes: Cow::Owned(bytes), decoding: Some(decoding) });
        }
    }

    /// Scans one piece and adds or extends the alerts of the rules that matched.
    fn scan_piece(&mut self, piece: &Piece<'_>, event: &Event, alerts: &mut Vec<Alert>) {
        let truncated = piece.bytes.len() > self.max_scan_bytes;
        let data = if truncated {
            self.stats.truncated += 1;
            piece.bytes.get(..self.max_scan_bytes).unwrap_or(&piece.bytes)
        } else {
            &piece.bytes
        };
        self.stats.targets_scanned += 1;
        self.stats.bytes_scanned += data.len() as u64;
        if piece.decoding.is_some() {
            self.stats.decoded_scanned += 1;
        }
        let results = match self.scanner.scan(data) {
            Ok(results) => results,
            Err(yara_x::ScanError::Timeout) => {
                self.stats.timeouts += 1;
                return;
            }
            Err(_) => {
                self.stats.errors += 1;
                return;
            }
        };
        let target = self.targets.get(piece.target).map_or("", |spec| spec.name.as_str());
        for rule in results.matching_rules() {
            let Some(info) = self.rules.rule_info(rule.namespace(), rule.identifier()) else { continue };
            if let Some(existing) = alerts
                .iter_mut()
                .find(|alert| alert.details.get("yara_rule").and_then(Value::as_str) == Some(info.qualified_name.as_str()))
            {
                add_other_target(existing, target);
                continue;
            }
            let mut alert = Alert::for_event(AlertKind::Yara, &info.rule_id, &info.title, info.level, info.tags.clone(), event);
            let strings = matched_strings(&rule);
            let details = &mut alert.details;
            details.insert("yara_rule".into(), Value::from(info.qualified_name.as_str()));
            details.insert("rule_file".into(), Value::from(info.file.display().to_string()));
            details.insert("target".into(), Value::from(target));
            details.insert("decoded".into(), Value::from(piece.decoding.is_some()));
            if let Some(decoding) = piece.decoding {
                details.insert("decoding".into(), Value::from(decoding.as_str()));
            }
            details.insert("truncated".into(), Value::from(truncated));
            details.insert("strings".into(), Value::Array(strings));
            alerts.push(alert);
        }
    }
}

fn add_other_target(alert: &mut Alert, target: &str) {
    if alert.details.get("target").and_then(Value::as_str) == Some(target) {
        return;
    }
    let entry = alert.details.entry("other_targets").or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = entry {
        if !list.iter().any(|value| value.as_str() == Some(target)) {
            list.push(Value::from(target));
        }
    }
}

/// Identifiers and offsets of the matched strings, at most [`MAX_REPORTED_STRINGS`]; never the
/// matched data (it may hold credentials or personal data).
fn matched_strings(rule: &yara_x::Rule<'_, '_>) -> Vec<Value> {
    let mut strings = Vec::new();
    for pattern in rule.patterns() {
        for found in pattern.matches() {
            if strings.len() >= MAX_REPORTED_STRINGS {
                return strings;
            }
            let range = found.range();
            strings.push(json!({"id": pattern.identifier(), "offset": range.start, "length": range.len()}));
        }
    }
    strings
}

/// The string values of field `name`: core fields by ECS name, then `fields` by the device's
/// name, then a dotted walk into nested objects. Lists give each string element.
fn field_strings<'e>(event: &'e Event, name: &str, out: &mut Vec<&'e str>) {
    let core = &event.core;
    let core_value = match name {
        "message" => Some(core.message.as_deref()),
        "process.command_line" => Some(core.process_command_line.as_deref()),
        "process.executable" => Some(core.process_executable.as_deref()),
        "process.name" => Some(core.process_name.as_deref()),
        "url.original" => Some(core.url_original.as_deref()),
        "user_agent.original" => Some(core.user_agent_original.as_deref()),
        "user.name" => Some(core.user_name.as_deref()),
        "host.name" => Some(core.host_name.as_deref()),
        _ => None,
    };
    if let Some(value) = core_value {
        out.extend(value);
        return;
    }
    let value = match event.fields.get(name) {
        Some(value) => Some(value),
        None => nested(&event.fields, name),
    };
    match value {
        Some(Value::String(text)) => out.push(text),
        Some(Value::Array(items)) => out.extend(items.iter().filter_map(Value::as_str)),
        _ => {}
    }
}

fn nested<'e>(fields: &'e serde_json::Map<String, Value>, name: &str) -> Option<&'e Value> {
    let mut parts = name.split('.');
    let mut current = fields.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}
