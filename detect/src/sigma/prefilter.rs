//! The literal prefilter: which rules of a logsource partition sit behind the literal gate.
//!
//! Every rule with a literal requirement ([`literals`](super::literals)) is *gated*: it is
//! only evaluated on events where one of its literals occurs (ASCII case-insensitive, as
//! Sigma's default matching is) in a value it can read: the named fields it reads, or, for a
//! rule that also matches keywords, any string of the event. The gate itself (one automaton
//! and one pass over the event for all the partitions an event is routed to) is in
//! [`route_gate`](super::route_gate). Rules without a requirement stay in an rsigma `Engine`
//! of their own, whose candidate index prunes them by field presence and exact values. The
//! result is the same set of detections as evaluating every rule: the differential test
//! (`tests/sigma_prefilter.rs`) checks it over the whole SigmaHQ pack.

use rsigma_eval::{CompiledRule, Engine};

use super::literals::{self, fold_char, rule_requirement};

/// One gated rule and what opens its gate.
pub struct GatedRule {
    /// The rule, evaluated once its gate opens.
    pub rule: CompiledRule,
    /// At least one of these (folded) literals occurs in any event the rule matches.
    pub literals: Vec<String>,
    /// The rule also matches keywords (any string value of the event): its literals count
    /// wherever they occur, not only in the named fields.
    pub anywhere: bool,
    /// The fields the rule's detection items read.
    pub fields: Vec<String>,
}

/// Rules of one partition split into literal-gated rules and always-evaluated ones.
pub struct PrefilteredRules {
    /// Rules with a literal requirement, in load order.
    pub gated: Vec<GatedRule>,
    /// Rules without a requirement: always evaluated, through rsigma's own indexes.
    pub always: Engine,
}

impl PrefilteredRules {
    /// Splits the compiled rules of a partition (after filters were applied).
    pub fn build(rules: &[CompiledRule]) -> PrefilteredRules {
        let mut gated = Vec::new();
        let mut always_rules = Vec::new();
        for rule in rules {
            let mut fields = Vec::new();
            let named_only = literals::rule_fields(rule, &mut fields);
            let Some(literals) = rule_requirement(rule) else {
                always_rules.push(rule.clone());
                continue;
            };
            fields.sort();
            fields.dedup();
            gated.push(GatedRule {
                rule: rule.clone(),
                literals,
                anywhere: !named_only,
                fields,
            });
        }
        // Without rsigma's bloom prefilter, which can skip matching rules (see
        // `SigmaEngine::partition_for`); its candidate index still prunes these rules.
        let mut always = Engine::new();
        always.extend_compiled_rules(always_rules);
        PrefilteredRules { gated, always }
    }

    /// Number of rules, gated or not.
    pub fn rule_count(&self) -> usize {
        self.gated.len() + self.always.rule_count()
    }

    /// Number of rules behind the literal gate.
    pub fn gated_count(&self) -> usize {
        self.gated.len()
    }
}

/// Appends `text` to `folded`, lower case: ASCII letters as ASCII, other characters the way
/// rsigma's case-insensitive matchers do (`str::to_lowercase`, character by character), and
/// the long s and the Kelvin sign to `s` and `k`, which regex case folding equates with them.
/// Every (lower-case) literal a matcher needs is then found by a case-sensitive search.
pub fn fold_haystack(text: &str, folded: &mut String) {
    if text.is_ascii() {
        let start = folded.len();
        folded.push_str(text);
        if let Some(appended) = folded.get_mut(start..) {
            appended.make_ascii_lowercase();
        }
        return;
    }
    let mut rest = text;
    while !rest.is_empty() {
        let ascii = rest
            .bytes()
            .position(|byte| !byte.is_ascii())
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(ascii);
        let start = folded.len();
        folded.push_str(run);
        if let Some(appended) = folded.get_mut(start..) {
            appended.make_ascii_lowercase();
        }
        let mut characters = tail.chars();
        if let Some(character) = characters.next() {
            match fold_char(character) {
                Some(ascii) => folded.push(ascii),
                None => folded.extend(character.to_lowercase()),
            }
        }
        rest = characters.as_str();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_keeps_ascii_and_lowers_unicode() {
        let mut folded = String::new();
        fold_haystack("\u{212A}EY \u{17F}ys \u{130}X \u{c9}", &mut folded);
        assert_eq!(folded, "key sys i\u{307}x \u{e9}");
        fold_haystack("+\u{c9}A", &mut folded);
        assert_eq!(folded, "key sys i\u{307}x \u{e9}+\u{e9}a");
    }
}
