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

/// A prefilter batch holds at most this many bytes (more events make several batches).
const BATCH_BYTES: usize = 256 * 1024;

/// Targets are separated by a newline in a prefilter batch: not a word character, so
/// `fullword` and `\b` behave at a target's edges as they do at the edges of the data.
const SEPARATOR: u8 = b'\n';

/// yara-x's default limit of matches per pattern, kept for prefilter scans: reaching it
/// would hide the matches of later targets, so it triggers the per-target fallback.
const PREFILTER_MAX_MATCHES: usize = 1_000_000;

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
    /// Scan the targets of an event (or of a batch of events) together in one yara-x scan
    /// and rescan alone only the targets where some pattern matched (default true). Alerts
    /// are the same as scanning each target alone; rules that need to see a target alone
    /// (`filesize`, offsets, `not $a` …) are always scanned target by target.
    pub prefilter: bool,
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
            prefilter: true,
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
    /// Prefilter scans of several targets at once.
    pub batch_scans: u64,
    /// yara-x scans of one target alone: prefilter candidates (a pattern matched in them),
    /// targets of rules that must see each target alone, and every target with the prefilter
    /// off.
    pub single_scans: u64,
    /// Prefilter scans that failed (timeout, error, match limit), after which every target of
    /// the batch was scanned alone.
    pub batch_fallbacks: u64,
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
    /// Scans single targets with the prefiltered rules.
    scanner: yara_x::Scanner<'r>,
    /// Scans batches with the prefiltered rules (its own match limit).
    batch_scanner: yara_x::Scanner<'r>,
    /// Scans single targets with the rules that must see each target alone.
    per_target: Option<yara_x::Scanner<'r>>,
    prefiltered_rules: bool,
    targets: Vec<TargetSpec>,
    max_scan_bytes: usize,
    decode_base64: bool,
    prefilter: bool,
    stats: YaraStats,
    /// Reused prefilter buffer and the start offset of each target in it.
    batch: Vec<u8>,
    starts: Vec<usize>,
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
        let timeout = (config.timeout_secs > 0).then(|| Duration::from_secs(config.timeout_secs));
        let single = |compiled: &'r yara_x::Rules| {
            let mut scanner = yara_x::Scanner::new(compiled);
            if let Some(timeout) = timeout {
                scanner.set_timeout(timeout);
            }
            // Alerts report at most a few offsets; a pattern matching a megabyte of repeated
            // text must not grow the match list without bound.
            scanner.max_matches_per_pattern(1000);
            scanner
        };
        let mut batch_scanner = yara_x::Scanner::new(&rules.rules);
        if let Some(timeout) = timeout {
            batch_scanner.set_timeout(timeout);
        }
        batch_scanner.max_matches_per_pattern(PREFILTER_MAX_MATCHES);
        YaraScanner {
            rules,
            scanner: single(&rules.rules),
            batch_scanner,
            per_target: rules.per_target.as_ref().map(single),
            prefiltered_rules: rules.len() > rules.per_target_rules(),
            targets: config.targets.iter().map(|name| TargetSpec::new(name)).collect(),
            max_scan_bytes: config.max_scan_bytes.max(1),
            decode_base64: config.decode_base64,
            prefilter: config.prefilter,
            stats: YaraStats::default(),
            batch: Vec::new(),
            starts: Vec::new(),
        }
    }

    /// What this scanner has done so far.
    pub fn stats(&self) -> YaraStats {
        self.stats
    }

    /// Scans the configured targets of one event: one alert per matching rule (the first
    /// target that matched is in `details.target`, others in `details.other_targets`).
    pub fn scan_event(&mut self, event: &Event) -> Vec<Alert> {
        self.scan_events(std::slice::from_ref(event))
    }

    /// Scans several events, with the same alerts as [`YaraScanner::scan_event`] on each in
    /// turn, but with the prefilter working over the whole batch: far fewer yara-x scans when,
    /// as usual, few events match. Alerts come in event order.
    pub fn scan_events(&mut self, events: &[Event]) -> Vec<Alert> {
        let mut pieces: Vec<(usize, Piece<'_>)> = Vec::with_capacity(events.len() * 2);
        for (index, event) in events.iter().enumerate() {
            self.stats.events += 1;
            pieces.extend(self.pieces(event).into_iter().map(|piece| (index, piece)));
        }
        for (_, piece) in &pieces {
            self.count_piece(piece);
        }
        let candidates = self.candidates(&pieces);
        let mut alerts = Vec::new();
        let mut current_event = usize::MAX;
        let mut first_alert = 0;
        for ((index, piece), candidate) in pieces.iter().zip(candidates) {
            let Some(event) = events.get(*index) else { continue };
            if *index != current_event {
                current_event = *index;
                first_alert = alerts.len();
            }
            if candidate {
                self.scan_piece(piece, event, Which::Prefiltered, &mut alerts, first_alert);
            }
            if self.per_target.is_some() {
                self.scan_piece(piece, event, Which::PerTarget, &mut alerts, first_alert);
            }
        }
        self.stats.alerts += alerts.len() as u64;
        alerts
    }

    fn count_piece(&mut self, piece: &Piece<'_>) {
        self.stats.targets_scanned += 1;
        self.stats.bytes_scanned += piece.bytes.len().min(self.max_scan_bytes) as u64;
        if piece.bytes.len() > self.max_scan_bytes {
            self.stats.truncated += 1;
        }
        if piece.decoding.is_some() {
            self.stats.decoded_scanned += 1;
        }
    }

    /// Which pieces the prefiltered rules must scan alone: those overlapped by a pattern match
    /// in the batch scan; all of them when the prefilter is off, would not save a scan, or
    /// fails.
    fn candidates(&mut self, pieces: &[(usize, Piece<'_>)]) -> Vec<bool> {
        if !self.prefiltered_rules {
            return vec![false; pieces.len()];
        }
        if !self.prefilter || pieces.len() < 2 {
            return vec![true; pieces.len()];
        }
        let mut candidates = vec![false; pieces.len()];
        let mut start = 0;
        while start < pieces.len() {
            // Fill one batch; a piece larger than the batch size makes a batch alone.
            let mut end = start;
            let mut size = 0;
            while let Some((_, piece)) = pieces.get(end) {
                let length = piece.bytes.len().min(self.max_scan_bytes) + 1;
                if end > start && size + length > BATCH_BYTES {
                    break;
                }
                size += length;
                end += 1;
            }
            let batch = pieces.get(start..end).unwrap_or_default();
            let marks = candidates.get_mut(start..end).unwrap_or_default();
            if batch.len() == 1 {
                marks.fill(true);
            } else {
                self.prefilter_batch(batch, marks);
            }
            start = end;
        }
        candidates
    }

    /// One prefilter scan over `batch` concatenated, marking the pieces a match touches.
    fn prefilter_batch(&mut self, batch: &[(usize, Piece<'_>)], marks: &mut [bool]) {
        self.batch.clear();
        self.starts.clear();
        for (_, piece) in batch {
            self.starts.push(self.batch.len());
            let limit = piece.bytes.len().min(self.max_scan_bytes);
            self.batch.extend_from_slice(piece.bytes.get(..limit).unwrap_or_default());
            self.batch.push(SEPARATOR);
        }
        self.stats.batch_scans += 1;
        let complete = match self.batch_scanner.scan(&self.batch) {
            Ok(results) => mark_matched_pieces(&results, &self.starts, marks),
            Err(_) => false,
        };
        if !complete {
            self.stats.batch_fallbacks += 1;
            marks.fill(true);
        }
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

    /// Scans one piece alone with one of the rule sets and adds or extends the alerts of the
    /// rules that matched; `alerts[first_alert..]` are the event's alerts so far.
    fn scan_piece(&mut self, piece: &Piece<'_>, event: &Event, which: Which, alerts: &mut Vec<Alert>, first_alert: usize) {
        let truncated = piece.bytes.len() > self.max_scan_bytes;
        let data = piece.bytes.get(..self.max_scan_bytes).unwrap_or(&piece.bytes);
        let scanner = match which {
            Which::Prefiltered => &mut self.scanner,
            Which::PerTarget => match self.per_target.as_mut() {
                Some(scanner) => scanner,
                None => return,
            },
        };
        self.stats.single_scans += 1;
        let results = match scanner.scan(data) {
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
            let event_alerts = alerts.get_mut(first_alert..).unwrap_or_default();
            if let Some(existing) = event_alerts
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

/// Which rule set a single-target scan uses.
#[derive(Debug, Clone, Copy)]
enum Which {
    Prefiltered,
    PerTarget,
}

/// Marks every piece that a match of any pattern (of any rule, matching or not, private
/// included) overlaps. False when the results cannot be trusted to be complete: a pattern
/// reached the match limit, so matches in later pieces may be missing.
fn mark_matched_pieces(results: &yara_x::ScanResults<'_, '_>, starts: &[usize], marks: &mut [bool]) -> bool {
    let rules = results
        .matching_rules()
        .include_private(true)
        .chain(results.non_matching_rules().include_private(true));
    for rule in rules {
        for pattern in rule.patterns().include_private(true) {
            let matches = pattern.matches();
            if matches.len() >= PREFILTER_MAX_MATCHES {
                return false;
            }
            for found in matches {
                let range = found.range();
                // The piece holding the first byte, through the piece holding the last one.
                let first = starts.partition_point(|&start| start <= range.start).saturating_sub(1);
                let last = starts.partition_point(|&start| start < range.end.max(range.start + 1)).saturating_sub(1);
                if let Some(span) = marks.get_mut(first..=last.max(first)) {
                    span.fill(true);
                }
            }
        }
    }
    true
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
