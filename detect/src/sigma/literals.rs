//! Which literals a compiled Sigma rule needs to see before it can match.
//!
//! For each rule we derive a conservative requirement: a set of literals of which at least
//! one must occur in the event's values (ASCII case folded, see [`fold_haystack`]) for the
//! rule to be able to match. `None` means "no such set is known": the rule is always
//! evaluated. The derivation works on rsigma's *compiled* rule, after filters and the
//! placeholder pipeline, so modifier expansions (windash variants, base64 and base64offset
//! encodings, UTF-16) are already concrete matchers and wildcards are regexes.
//!
//! Soundness, case by case:
//! - a positive string matcher (exact, contains, startswith, endswith, Aho-Corasick set) needs
//!   its value (or one of its values) as a substring of the field's value; a value with
//!   non-ASCII characters contributes its longest ASCII run, which is still required;
//! - a regex (from `|re` or from `*`/`?` wildcards) needs every literal its syntax tree forces
//!   on any match ([`regex_requirement`]); none found means no requirement;
//! - `and` / `all of` / a selection's fields: any one child's requirement holds, we keep the
//!   most selective; `or` / `1 of` / value lists: every child needs one, we take the union;
//! - `not`, `|neq`, numeric comparisons, `|cidr`, `null`, `|exists`, `|fieldref`,
//!   timestamp parts, array scopes and `N of` with N = 0: no requirement; `|expand` needs the
//!   literal parts of its template.

use regex_syntax::hir::{Class, Hir, HirKind};
use rsigma_eval::matcher::{ExpandPart, GroupMode};
use rsigma_eval::{CompiledDetection, CompiledDetectionItem, CompiledMatcher, CompiledRule};
use rsigma_parser::{ConditionExpr, Quantifier, SelectorPattern};

/// The fields a rule's detection items read, all of them added to `fields`; false when the
/// rule also matches keywords (values of any field), which a scan of named fields cannot cover.
pub fn rule_fields(rule: &CompiledRule, fields: &mut Vec<String>) -> bool {
    // No short cut (`all` would stop at the first keyword detection): a keyword rule's field
    // selections must be collected too (their literals can be numbers, which only a named
    // field's scan formats).
    let mut named_only = true;
    for detection in rule.detections.values() {
        named_only &= detection_fields(detection, fields);
    }
    named_only
}

fn detection_fields(detection: &CompiledDetection, fields: &mut Vec<String>) -> bool {
    let mut named_only = true;
    match detection {
        CompiledDetection::AllOf(items) => {
            for item in items {
                match &item.field {
                    Some(field) => fields.push(field.clone()),
                    None => named_only = false,
                }
            }
        }
        CompiledDetection::AnyOf(children) | CompiledDetection::And(children) => {
            for child in children {
                named_only &= detection_fields(child, fields);
            }
        }
        CompiledDetection::Keywords(_) => named_only = false,
        CompiledDetection::ArrayMatch { field, .. } => fields.push(field.clone()),
        CompiledDetection::Conditional { named, .. } => {
            for child in named.values() {
                named_only &= detection_fields(child, fields);
            }
        }
    }
    named_only
}

/// At least one of these (ASCII lower-case, non-empty) literals must occur in the event.
pub type Requirement = Vec<String>;

/// The requirement of a whole rule: one of its conditions must hold, so every condition needs
/// a requirement and the rule's is their union.
pub fn rule_requirement(rule: &CompiledRule) -> Option<Requirement> {
    any_of(
        rule.conditions
            .iter()
            .map(|condition| condition_requirement(condition, rule)),
    )
}

fn condition_requirement(condition: &ConditionExpr, rule: &CompiledRule) -> Option<Requirement> {
    match condition {
        ConditionExpr::Identifier(name) => {
            rule.detections.get(name).and_then(detection_requirement)
        }
        ConditionExpr::And(children) => best_of(
            children
                .iter()
                .map(|child| condition_requirement(child, rule)),
        ),
        ConditionExpr::Or(children) => any_of(
            children
                .iter()
                .map(|child| condition_requirement(child, rule)),
        ),
        // The negated part can hold on an event without any literal at all.
        ConditionExpr::Not(_) => None,
        ConditionExpr::Selector {
            quantifier,
            pattern,
        } => selector_requirement(quantifier, pattern, rule),
    }
}

fn selector_requirement(
    quantifier: &Quantifier,
    pattern: &SelectorPattern,
    rule: &CompiledRule,
) -> Option<Requirement> {
    let selected: Vec<&CompiledDetection> = rule
        .detections
        .iter()
        .filter(|(name, _)| pattern.matches_detection_name(name))
        .map(|(_, detection)| detection)
        .collect();
    if selected.is_empty() {
        // `all of` an empty set is true; `1 of` it is false. Either way, no literal helps.
        return None;
    }
    match quantifier {
        // At least one selected detection matches: each needs its own literal.
        Quantifier::Any => any_of(selected.into_iter().map(detection_requirement)),
        Quantifier::Count(count) if *count >= 1 => {
            any_of(selected.into_iter().map(detection_requirement))
        }
        Quantifier::Count(_) => None,
        Quantifier::All => best_of(selected.into_iter().map(detection_requirement)),
    }
}

fn detection_requirement(detection: &CompiledDetection) -> Option<Requirement> {
    match detection {
        CompiledDetection::AllOf(items) => best_of(items.iter().map(item_requirement)),
        CompiledDetection::AnyOf(children) => any_of(children.iter().map(detection_requirement)),
        CompiledDetection::Keywords(matcher) => matcher_requirement(matcher),
        CompiledDetection::And(children) => best_of(children.iter().map(detection_requirement)),
        // Array scopes (`all` holds on an empty array) and element-level conditions with
        // their own `not`: always evaluated.
        CompiledDetection::ArrayMatch { .. } | CompiledDetection::Conditional { .. } => None,
    }
}

fn item_requirement(item: &CompiledDetectionItem) -> Option<Requirement> {
    if item.exists.is_some() {
        return None;
    }
    matcher_requirement(&item.matcher)
}

/// The requirement of one matcher applied to one value (or to every string, for keywords).
pub fn matcher_requirement(matcher: &CompiledMatcher) -> Option<Requirement> {
    match matcher {
        CompiledMatcher::Exact { value, .. }
        | CompiledMatcher::Contains { value, .. }
        | CompiledMatcher::StartsWith { value, .. }
        | CompiledMatcher::EndsWith { value, .. } => string_literal(value).map(|text| vec![text]),
        CompiledMatcher::AhoCorasickSet { needles, .. } => any_of(
            needles
                .iter()
                .map(|needle| string_literal(needle).map(|text| vec![text])),
        ),
        CompiledMatcher::Regex(regex) => regex_requirement(regex.as_str()),
        CompiledMatcher::RegexSetMatch { set, mode } => {
            let requirements = set
                .patterns()
                .iter()
                .map(|pattern| regex_requirement(pattern));
            match mode {
                GroupMode::Any => any_of(requirements),
                GroupMode::All => best_of(requirements),
            }
        }
        CompiledMatcher::AnyOf(children) => any_of(children.iter().map(matcher_requirement)),
        CompiledMatcher::AllOf(children) => best_of(children.iter().map(matcher_requirement)),
        CompiledMatcher::CaseInsensitiveGroup { children, mode } => {
            let requirements = children.iter().map(matcher_requirement);
            match mode {
                GroupMode::Any => any_of(requirements),
                GroupMode::All => best_of(requirements),
            }
        }
        // The value must equal the template with its placeholders filled in from the event:
        // every literal part of the template is in it.
        CompiledMatcher::Expand { template, .. } => {
            best_of(template.iter().map(|part| match part {
                ExpandPart::Literal(text) => string_literal(text).map(|text| vec![text]),
                ExpandPart::Placeholder(_) => None,
            }))
        }
        CompiledMatcher::Cidr(_)
        | CompiledMatcher::NumericEq(_)
        | CompiledMatcher::NumericGt(_)
        | CompiledMatcher::NumericGte(_)
        | CompiledMatcher::NumericLt(_)
        | CompiledMatcher::NumericLte(_)
        | CompiledMatcher::Exists(_)
        | CompiledMatcher::FieldRef { .. }
        | CompiledMatcher::Null
        | CompiledMatcher::BoolEq(_)
        | CompiledMatcher::TimestampPart { .. }
        | CompiledMatcher::Not(_) => None,
    }
}

/// Folds one character the way the prefilter compares: ASCII lower case, plus the two
/// non-ASCII characters that Unicode case folding (regex `(?i)`) or lower-casing (rsigma's
/// case-insensitive matchers) turn into ASCII letters: the Kelvin sign and the long s.
/// `None` for every other non-ASCII character.
pub fn fold_char(character: char) -> Option<char> {
    match character {
        '\u{212A}' => Some('k'),
        '\u{017F}' => Some('s'),
        _ if character.is_ascii() => Some(character.to_ascii_lowercase()),
        _ => None,
    }
}

/// The longest run of foldable characters of `value`, folded; `None` when empty. Any match of
/// `value` (case-sensitive or not) puts this run, folded, in the folded haystack.
fn string_literal(value: &str) -> Option<String> {
    let mut best = String::new();
    let mut current = String::new();
    for character in value.chars() {
        match fold_char(character) {
            Some(folded) => current.push(folded),
            None => {
                if current.len() > best.len() {
                    best = std::mem::take(&mut current);
                }
                current.clear();
            }
        }
    }
    if current.len() > best.len() {
        best = current;
    }
    (!best.is_empty()).then_some(best)
}

/// How selective a requirement is: its shortest literal first (short literals occur
/// everywhere), then how few literals it has.
fn selectivity(requirement: &Requirement) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = requirement.iter().map(String::len).min().unwrap_or(0);
    (shortest, std::cmp::Reverse(requirement.len()))
}

/// Conjunction: any child's requirement holds; the most selective one is kept.
fn best_of(requirements: impl Iterator<Item = Option<Requirement>>) -> Option<Requirement> {
    requirements
        .flatten()
        .filter(|requirement| !requirement.is_empty())
        // Ties go to the smallest literals in byte order: detection names come from a hash
        // map, and the same rule must always get the same requirement.
        .max_by(|left, right| {
            selectivity(left)
                .cmp(&selectivity(right))
                .then_with(|| right.cmp(left))
        })
}

/// Disjunction: every child must have a requirement; the result is their union.
fn any_of(requirements: impl Iterator<Item = Option<Requirement>>) -> Option<Requirement> {
    let mut union = Vec::new();
    for requirement in requirements {
        let requirement = requirement?;
        if requirement.is_empty() {
            return None;
        }
        union.extend(requirement);
    }
    union.sort();
    union.dedup();
    (!union.is_empty()).then_some(union)
}

/// The literals any match of the regex `pattern` must contain (one of them), folded.
pub fn regex_requirement(pattern: &str) -> Option<Requirement> {
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    hir_requirement(&hir)
}

/// The single folded character a one-character piece of a regex always matches, if it is a
/// literal character or a case-insensitive class of one letter (`[Kk\u{212A}]`).
fn single_folded_char(hir: &Hir) -> Option<char> {
    match hir.kind() {
        HirKind::Literal(literal) => {
            let text = std::str::from_utf8(&literal.0).ok()?;
            let mut characters = text.chars();
            let character = characters.next()?;
            if characters.next().is_some() {
                return None;
            }
            fold_char(character)
        }
        HirKind::Class(Class::Unicode(class)) => {
            let mut folded = None;
            let mut count = 0u32;
            for range in class.iter() {
                for character in range.start()..=range.end() {
                    count += 1;
                    if count > 4 {
                        return None;
                    }
                    let this = fold_char(character)?;
                    if folded.is_some_and(|seen| seen != this) {
                        return None;
                    }
                    folded = Some(this);
                }
            }
            folded
        }
        _ => None,
    }
}

fn hir_requirement(hir: &Hir) -> Option<Requirement> {
    match hir.kind() {
        HirKind::Literal(literal) => {
            let text = std::str::from_utf8(&literal.0).ok()?;
            string_literal(text).map(|text| vec![text])
        }
        HirKind::Class(_) => single_folded_char(hir).map(|character| vec![character.to_string()]),
        HirKind::Empty | HirKind::Look(_) => None,
        HirKind::Capture(capture) => hir_requirement(&capture.sub),
        HirKind::Repetition(repetition) if repetition.min >= 1 => hir_requirement(&repetition.sub),
        HirKind::Repetition(_) => None,
        HirKind::Alternation(branches) => any_of(branches.iter().map(hir_requirement)),
        HirKind::Concat(children) => {
            // Adjacent single characters (literals, case-folded letters) form one run that
            // must occur contiguously; anything else ends the run and offers its own
            // requirement as a candidate.
            let mut candidates: Vec<Option<Requirement>> = Vec::new();
            let mut run = String::new();
            let flush = |run: &mut String, candidates: &mut Vec<Option<Requirement>>| {
                if !run.is_empty() {
                    candidates.push(Some(vec![std::mem::take(run)]));
                }
            };
            for child in children {
                match child.kind() {
                    HirKind::Literal(literal) => match std::str::from_utf8(&literal.0) {
                        Ok(text) => {
                            for character in text.chars() {
                                match fold_char(character) {
                                    Some(folded) => run.push(folded),
                                    None => flush(&mut run, &mut candidates),
                                }
                            }
                        }
                        Err(_) => flush(&mut run, &mut candidates),
                    },
                    HirKind::Class(_) => match single_folded_char(child) {
                        Some(folded) => run.push(folded),
                        None => flush(&mut run, &mut candidates),
                    },
                    _ => {
                        flush(&mut run, &mut candidates);
                        candidates.push(hir_requirement(child));
                    }
                }
            }
            flush(&mut run, &mut candidates);
            best_of(candidates.into_iter())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Option<Requirement> {
        let mut values: Vec<String> = values.iter().map(|value| (*value).to_owned()).collect();
        values.sort();
        Some(values)
    }

    #[test]
    fn regex_literals() {
        assert_eq!(
            regex_requirement("(?i)^c:\\\\windows\\\\.*\\.exe$"),
            strings(&["c:\\windows\\"])
        );
        assert_eq!(regex_requirement("(?i)abc|de"), strings(&["abc", "de"]));
        assert_eq!(regex_requirement("a.*|bc.d"), strings(&["a", "bc"]));
        assert_eq!(regex_requirement(".*"), None);
        assert_eq!(regex_requirement("(foo)?bar"), strings(&["bar"]));
        assert_eq!(regex_requirement("(?i)[a-z]+\\d{3}"), None);
        assert_eq!(regex_requirement("(?i)kelvin"), strings(&["kelvin"]));
        assert_eq!(regex_requirement("(?i)x(ab|cd)+y"), strings(&["ab", "cd"]));
        assert_eq!(regex_requirement("éabc"), strings(&["abc"]));
        assert_eq!(regex_requirement("("), None);
    }

    #[test]
    fn string_literals_keep_the_longest_ascii_run() {
        assert_eq!(string_literal("Ab\u{e9}cde"), Some("cde".to_owned()));
        assert_eq!(string_literal("\u{e9}"), None);
        assert_eq!(string_literal(""), None);
        assert_eq!(string_literal("\u{212A}ey"), Some("key".to_owned()));
    }
}
