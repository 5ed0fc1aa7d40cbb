//! Reading a prefilter batch scan back per target.
//!
//! The targets of many events are scanned as one buffer, each followed by a separator. Every
//! target that a pattern match touches used to be scanned again alone, which gave exactly
//! per-target alerts but cost a yara-x scan (and a second regex verification) per matching
//! target. For the rules that match exactly when one of their own patterns matches
//! (`any of them` and the like, see `prefilter::any_pattern_rules`), the batch already says
//! which targets they match, and where: a match lying wholly inside one target's bytes is a
//! match of that target alone (the patterns are position-independent, and the separator is
//! not a word character, so `\b` and `fullword` see it as they see the end of the data). A
//! target is still scanned alone when any match, of any pattern, touches its edge or its
//! separator (a match across targets could hide one inside), when a rule that cannot be read
//! from the batch has a match in it, or when a pattern reached the single scanner's match
//! limit.

use serde_json::Value;

use super::details;
use super::rules::{YaraRuleInfo, YaraRuleSet};

/// At most this many matched strings (identifier and offset) go into an alert's details.
pub(crate) const MAX_REPORTED_STRINGS: usize = 10;

/// yara-x's limit of matches per pattern for single-target scans (and so the most matches a
/// target's alone scan would see).
pub(crate) const SINGLE_MAX_MATCHES: usize = 1000;

/// What the prefiltered rules need for one target after the batch scan.
#[derive(Debug)]
pub(crate) enum Verdict<'r> {
    /// No pattern match touched the target: no prefiltered rule matches it. (Not listed.)
    Clean,
    /// Scan the target alone.
    Rescan,
    /// Settled by the batch scan: these rules match the target (possibly none).
    Settled(Vec<Hit<'r>>),
}

/// One rule matching one target, read from a batch scan.
#[derive(Debug)]
pub(crate) struct Hit<'r> {
    pub(crate) info: &'r YaraRuleInfo,
    /// As [`matched_strings`] gives them for the target scanned alone.
    pub(crate) strings: Vec<Value>,
}

/// How a target's bytes were touched by the batch's matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Touch {
    None,
    /// Only by matches inside it, of rules the batch settles.
    Inside,
    Rescan,
}

/// Reads the batch scan `results` back per target. `starts` holds each target's offset in
/// the batch, `batch_len` the batch's length (every target is followed by one separator
/// byte). The verdicts of the targets that are not clean go to `verdicts` as (`first` + the
/// target's number in the batch, verdict), in order. False when the results may be
/// incomplete (a pattern reached the batch match limit `batch_max_matches`): then every
/// target must be scanned alone.
pub(crate) fn settle<'r>(
    rules: &'r YaraRuleSet,
    results: &yara_x::ScanResults<'_, '_>,
    starts: &[usize],
    batch_len: usize,
    batch_max_matches: usize,
    first: usize,
    verdicts: &mut Vec<(usize, Verdict<'r>)>,
) -> bool {
    let mut touch = vec![Touch::None; starts.len()];
    let rules_seen = results
        .matching_rules()
        .include_private(true)
        .map(|rule| (rule, true))
        .chain(
            results
                .non_matching_rules()
                .include_private(true)
                .map(|rule| (rule, false)),
        );
    for (rule, matching) in rules_seen {
        let settles = matching
            && rules
                .rule_info(rule.namespace(), rule.identifier())
                .is_some_and(|info| info.any_pattern);
        for pattern in rule.patterns().include_private(true) {
            let matches = pattern.matches();
            if matches.len() >= batch_max_matches {
                return false;
            }
            let too_many = matches.len() >= SINGLE_MAX_MATCHES;
            for found in matches {
                let range = found.range();
                let first = piece_of(starts, range.start);
                let last = piece_of(starts, range.end.max(range.start + 1) - 1);
                let inside = first == last && range.end <= content_end(starts, batch_len, first);
                let verdict = if inside && settles && !too_many {
                    Touch::Inside
                } else {
                    Touch::Rescan
                };
                for slot in touch.get_mut(first..=last.max(first)).unwrap_or_default() {
                    if *slot != Touch::Rescan {
                        *slot = verdict;
                    }
                }
            }
        }
    }
    // The alerting rules that matched, with their metadata, looked up once for every target
    // the batch settles (private rules raise no alert, alone or not, so they are left out, as
    // in a scan alone; yara-x lists matching rules in rule order, batch or not).
    let mut alerting = Vec::new();
    if touch.contains(&Touch::Inside) {
        alerting.extend(results.matching_rules().filter_map(|rule| {
            let info = rules.rule_info(rule.namespace(), rule.identifier())?;
            Some((rule, info))
        }));
    }
    for (piece, slot) in touch.iter().enumerate() {
        let verdict = match slot {
            Touch::None => continue,
            Touch::Rescan => Verdict::Rescan,
            Touch::Inside => Verdict::Settled(hits(&alerting, starts, batch_len, piece)),
        };
        verdicts.push((first + piece, verdict));
    }
    true
}

/// The rules among `alerting` matching target `piece`, in the order a scan of the target alone
/// reports them.
fn hits<'r>(
    alerting: &[(yara_x::Rule<'_, '_>, &'r YaraRuleInfo)],
    starts: &[usize],
    batch_len: usize,
    piece: usize,
) -> Vec<Hit<'r>> {
    let start = starts.get(piece).copied().unwrap_or_default();
    let end = content_end(starts, batch_len, piece);
    let within = |range: &std::ops::Range<usize>| range.start >= start && range.end <= end;
    let mut hits = Vec::new();
    for (rule, info) in alerting {
        let info = *info;
        let matched = rule
            .patterns()
            .include_private(true)
            .any(|pattern| pattern.matches().any(|found| within(&found.range())));
        if matched {
            hits.push(Hit {
                info,
                strings: matched_strings(rule, |range| within(range).then(|| range.start - start)),
            });
        }
    }
    hits
}

/// Identifiers and offsets of a rule's matched strings, at most [`MAX_REPORTED_STRINGS`]; never
/// the matched data (it may hold credentials or personal data). `offset` maps a match's
/// range to its offset in the target, or `None` for a match outside it.
pub(crate) fn matched_strings(
    rule: &yara_x::Rule<'_, '_>,
    offset: impl Fn(&std::ops::Range<usize>) -> Option<usize>,
) -> Vec<Value> {
    let mut strings = Vec::new();
    for pattern in rule.patterns() {
        for found in pattern.matches() {
            let range = found.range();
            let Some(at) = offset(&range) else {
                continue;
            };
            if strings.len() >= MAX_REPORTED_STRINGS {
                return strings;
            }
            strings.push(details::matched_string(
                pattern.identifier(),
                at,
                range.len(),
            ));
        }
    }
    strings
}

/// The target holding batch offset `offset`.
fn piece_of(starts: &[usize], offset: usize) -> usize {
    starts
        .partition_point(|&start| start <= offset)
        .saturating_sub(1)
}

/// The end of target `piece`'s own bytes in the batch (its separator excluded).
fn content_end(starts: &[usize], batch_len: usize, piece: usize) -> usize {
    starts
        .get(piece + 1)
        .copied()
        .unwrap_or(batch_len)
        .saturating_sub(1)
}
