//! The literal prefilter of one logsource partition.
//!
//! Every rule with a literal requirement ([`literals`](super::literals)) is *gated*: its
//! literals go into one Aho-Corasick automaton for the partition (ASCII case-insensitive, as
//! Sigma's default matching is), and per event the automaton runs once over the values of the
//! fields those rules read; only the gated rules one of whose literals occurred are evaluated,
//! one by one. Rules without a requirement (and keyword rules, which read every field) stay in
//! an rsigma `Engine` of their own, whose candidate index prunes them as before. The result is
//! the same set of detections as evaluating every rule: the differential test
//! (`tests/sigma_prefilter.rs`) checks it over the whole SigmaHQ pack.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use rsigma_eval::{evaluate_rule, CompiledRule, Engine, EvaluationResult, Event, EventValue};

use super::literals::{self, fold_char, rule_requirement};
use super::view::SigmaEventView;

/// Rules of one partition split into literal-gated rules and always-evaluated ones.
pub struct PrefilteredRules {
    /// Rules with a literal requirement, in load order.
    gated: Vec<CompiledRule>,
    /// For each literal of the automaton (by pattern id), the gated rules needing it.
    literal_rules: Vec<Vec<u32>>,
    /// `None` when no rule is gated.
    automaton: Option<AhoCorasick>,
    /// The fields the gated rules read: the automaton runs over their values.
    fields: Vec<String>,
    /// Rules without a requirement: always evaluated, through rsigma's own indexes.
    always: Engine,
}

/// Per-event working memory, kept across events so the hot path does not allocate.
#[derive(Debug, Default)]
pub struct PrefilterScratch {
    literal_seen: Vec<bool>,
    literals_touched: Vec<u32>,
    rule_selected: Vec<bool>,
    rules_selected: Vec<u32>,
    folded: String,
}

impl PrefilteredRules {
    /// Splits the compiled rules of a partition (after filters were applied).
    pub fn build(rules: &[CompiledRule]) -> PrefilteredRules {
        let mut gated = Vec::new();
        let mut always_rules = Vec::new();
        let mut literal_ids: std::collections::HashMap<String, u32> =
            std::collections::HashMap::new();
        let mut literal_texts: Vec<String> = Vec::new();
        let mut literal_rules: Vec<Vec<u32>> = Vec::new();
        let mut fields = Vec::new();
        for rule in rules {
            // Gated rules read named fields only, so the automaton runs over those fields'
            // values, not over every string of the event (the whole `Message` of a Windows
            // event, say); keyword rules are evaluated every time instead.
            let mut rule_fields = Vec::new();
            let requirement =
                rule_requirement(rule).filter(|_| literals::rule_fields(rule, &mut rule_fields));
            let Some(requirement) = requirement else {
                always_rules.push(rule.clone());
                continue;
            };
            fields.append(&mut rule_fields);
            let rule_index = gated.len() as u32;
            gated.push(rule.clone());
            for literal in requirement {
                let id = *literal_ids.entry(literal.clone()).or_insert_with(|| {
                    literal_texts.push(literal);
                    literal_rules.push(Vec::new());
                    (literal_texts.len() - 1) as u32
                });
                literal_rules[id as usize].push(rule_index);
            }
        }
        let automaton = if literal_texts.is_empty() {
            None
        } else {
            // A DFA: the overlapping scan is the hot loop, and the partitions' literal sets
            // are small enough (a few thousand) for its memory.
            AhoCorasick::builder()
                .kind(Some(AhoCorasickKind::DFA))
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(&literal_texts)
                .ok()
        };
        if automaton.is_none() && !gated.is_empty() {
            // Cannot happen with sane sizes; if the automaton cannot be built, evaluating
            // every rule is slower but still right.
            always_rules.append(&mut gated);
            literal_rules.clear();
        }
        // Without rsigma's bloom prefilter, which can skip matching rules (see
        // `SigmaEngine::partition_for`); its candidate index still prunes these rules.
        let mut always = Engine::new();
        always.extend_compiled_rules(always_rules);
        fields.sort();
        fields.dedup();
        PrefilteredRules {
            gated,
            literal_rules,
            automaton,
            fields,
            always,
        }
    }

    /// Number of rules, gated or not.
    pub fn rule_count(&self) -> usize {
        self.gated.len() + self.always.rule_count()
    }

    /// Number of rules behind the literal gate.
    pub fn gated_count(&self) -> usize {
        self.gated.len()
    }

    /// Evaluates the partition's rules on one event; returns how many gated rules ran.
    pub fn evaluate(
        &self,
        view: &SigmaEventView<'_>,
        scratch: &mut PrefilterScratch,
        results: &mut Vec<EvaluationResult>,
    ) -> usize {
        results.extend(self.always.evaluate(view));
        let Some(automaton) = &self.automaton else {
            return 0;
        };
        let PrefilterScratch {
            literal_seen,
            literals_touched,
            rule_selected,
            rules_selected,
            folded,
        } = scratch;
        literal_seen.resize(self.literal_rules.len().max(literal_seen.len()), false);
        rule_selected.resize(self.gated.len().max(rule_selected.len()), false);
        literals_touched.clear();
        rules_selected.clear();

        let mut scan = |haystack: &str| {
            for found in automaton.find_overlapping_iter(haystack) {
                let literal = found.pattern().as_usize();
                if !literal_seen[literal] {
                    literal_seen[literal] = true;
                    literals_touched.push(literal as u32);
                }
            }
        };
        for field in &self.fields {
            if let Some(value) = view.get_field(field) {
                visit_value_text(&value, &mut |text| {
                    if text.is_ascii() {
                        scan(text);
                    } else {
                        fold_haystack(text, folded);
                        scan(folded);
                    }
                });
            }
        }

        for literal in literals_touched.iter() {
            literal_seen[*literal as usize] = false;
            for rule in &self.literal_rules[*literal as usize] {
                if !rule_selected[*rule as usize] {
                    rule_selected[*rule as usize] = true;
                    rules_selected.push(*rule);
                }
            }
        }
        // Load order, as the unfiltered engine would see them.
        rules_selected.sort_unstable();
        for rule in rules_selected.iter() {
            rule_selected[*rule as usize] = false;
            if let Some(result) = evaluate_rule(&self.gated[*rule as usize], view) {
                results.push(result);
            }
        }
        rules_selected.len()
    }
}

/// The texts a string matcher compares a field's value against, as rsigma coerces them
/// (numbers and booleans formatted, each element of an array; maps and nulls never match).
fn visit_value_text(value: &EventValue<'_>, visit: &mut dyn FnMut(&str)) {
    match value {
        EventValue::Str(text) => visit(text),
        EventValue::Int(number) => visit(&number.to_string()),
        EventValue::Float(number) => visit(&number.to_string()),
        EventValue::Bool(flag) => visit(if *flag { "true" } else { "false" }),
        EventValue::Array(items) => items.iter().for_each(|item| visit_value_text(item, visit)),
        EventValue::Null | EventValue::Map(_) => {}
    }
}

/// Lower-cases a non-ASCII value the way rsigma's case-insensitive matchers do
/// (`str::to_lowercase`, character by character) and maps the long s to `s`, which regex
/// case folding equates with it; ASCII characters stay ASCII characters in place, so every
/// ASCII literal a matcher needs is still found by the ASCII case-insensitive automaton.
pub fn fold_haystack(text: &str, folded: &mut String) {
    folded.clear();
    for character in text.chars() {
        match fold_char(character) {
            Some(ascii) if character == '\u{017F}' => folded.push(ascii),
            _ => folded.extend(character.to_lowercase()),
        }
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
    }
}
