//! The literal gate of one route: every gated rule of the partitions an event is routed to,
//! behind two Aho-Corasick automata that run over one pass of the event's fields.
//!
//! Before, each partition ran its own automaton over the fields its rules read (looked up one
//! name at a time), and the keyword rules sat in rsigma's engine, whose keyword index scanned
//! every string of the event again for each partition holding one. Now an event's field map is
//! walked once: a field some gated rule of the route reads (by name, by an alias of the
//! route's logsource, or as the root of a dotted path) is scanned for the field rules'
//! literals; every string (named or not) is scanned for the keyword rules' literals, a much
//! smaller automaton, since keywords match any string value. Scanning more text than a rule
//! reads can only open more gates, never fewer, so the detections are the same as evaluating
//! every rule (`tests/sigma_prefilter.rs`).

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use citysoc_collector::CoreValue;
use rsigma_eval::{evaluate_rule, EvaluationResult};
use serde_json::Value;
use std::hash::{BuildHasherDefault, Hasher};

use super::mapping::AliasTable;
use super::prefilter::{fold_haystack, PrefilteredRules};
use super::view::SigmaEventView;

/// Nested values deeper than this are not scanned (hostile JSON cannot blow the stack); the
/// view does not resolve them either.
const MAX_DEPTH: usize = 32;

/// Ends each text in the scan buffers. A literal set holding it is not built (its rules are
/// always evaluated), so no match can span two texts.
const SEPARATOR: char = '\0';

/// The gated rules of one list of partitions, behind two automata.
pub struct RouteGate {
    /// Per gated rule of the route, in partition order then load order: the partition's slot
    /// in the route and the rule's index among that partition's gated rules.
    rules: Vec<(u32, u32)>,
    /// The literals of the rules that read named fields only, scanned over those fields.
    named: Option<Literals>,
    /// The literals of the keyword rules, scanned over every string of the event (and the
    /// named fields). A small set: the keyword scan covers far more text.
    anywhere: Option<Literals>,
    /// The automaton of rules that could not be built: these rules are always evaluated.
    unbuilt: Vec<u32>,
    /// The fields the gated rules read (Sigma names), for [`NamedFields`].
    fields: Vec<String>,
}

/// One automaton and, per literal (pattern id), the rules it opens.
struct Literals {
    automaton: AhoCorasick,
    /// A SIMD (Teddy) searcher over the same literals when the set is small enough: most
    /// events hold none of the keyword literals, and this says so much faster than walking
    /// the automaton (which cannot use one: the automata's literals and haystacks are folded
    /// to lower case by us, not case-insensitive, precisely so that this works).
    quick: Option<aho_corasick::packed::Searcher>,
    rules: Vec<Vec<u32>>,
}

/// Literals and their rules while a gate is built.
#[derive(Default)]
struct LiteralSet<'r> {
    ids: std::collections::HashMap<&'r str, u32>,
    texts: Vec<&'r str>,
    rules: Vec<Vec<u32>>,
    /// Every rule with a literal here, for when the automaton cannot be built.
    members: Vec<u32>,
}

impl<'r> LiteralSet<'r> {
    fn add(&mut self, rule: u32, literals: &'r [String]) {
        self.members.push(rule);
        for literal in literals {
            let id = *self.ids.entry(literal.as_str()).or_insert_with(|| {
                self.texts.push(literal.as_str());
                self.rules.push(Vec::new());
                (self.texts.len() - 1) as u32
            });
            if let Some(rules) = self.rules.get_mut(id as usize) {
                rules.push(rule);
            }
        }
    }

    /// The automaton, or the rules to evaluate always when it cannot be built.
    fn build(self, unbuilt: &mut Vec<u32>) -> Option<Literals> {
        if self.texts.is_empty() {
            return None;
        }
        if self.texts.iter().any(|text| text.contains(SEPARATOR)) {
            unbuilt.extend(self.members);
            return None;
        }
        // A DFA: the overlapping scan is the hot loop, and a route's literal set (a few
        // thousand) is small enough for its memory. Literals are lower case already and the
        // haystacks are folded to lower case ([`fold_haystack`]).
        let automaton = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::DFA))
            .match_kind(MatchKind::Standard)
            .build(&self.texts);
        // Leftmost-first finds a match whenever any literal occurs, which is all it is asked.
        let quick = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&self.texts)
            .build();
        match automaton {
            Ok(automaton) => Some(Literals {
                automaton,
                quick,
                rules: self.rules,
            }),
            // Cannot happen with sane sizes; evaluating the rules every time is slower but
            // still right.
            Err(_) => {
                unbuilt.extend(self.members);
                None
            }
        }
    }
}

/// The top-level keys (and core field names) of an event that hold a field some gated rule of
/// a route reads, with the route's aliases applied.
#[derive(Debug, Default)]
pub struct NamedFields {
    names: HashSet<String, BuildHasherDefault<NameHasher>>,
}

impl NamedFields {
    /// The event-side names of `gate`'s fields under the logsource's `aliases`.
    pub fn new(gate: &RouteGate, aliases: &AliasTable) -> Self {
        let mut named = NamedFields::default();
        for field in &gate.fields {
            named.add(field);
            for alias in aliases.get(field).into_iter().flatten() {
                named.add(alias);
            }
        }
        named
    }

    fn add(&mut self, name: &str) {
        // A dotted name is also looked up as a path into the object under its first part.
        if let Some((root, _)) = name.split_once('.') {
            self.names.insert(root.to_owned());
        }
        self.names.insert(name.to_owned());
    }

    fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

/// FNV-1a over a field name: field names are short, and this lookup runs for every field of
/// every event (SipHash and xxh3's streaming state were visible in profiles).
#[derive(Debug)]
pub struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Per-event working memory, kept across events so the hot path does not allocate.
#[derive(Debug, Default)]
pub struct GateScratch {
    /// Per literal of the named and anywhere sets (the latter after the former): seen yet.
    literal_seen: Vec<bool>,
    literals_touched: Vec<u32>,
    selected_flag: Vec<bool>,
    selected: Vec<u32>,
    /// The folded texts of the named fields, each followed by [`SEPARATOR`].
    named_text: String,
    /// The folded texts of the other strings, each followed by [`SEPARATOR`].
    other_text: String,
}

impl GateScratch {
    fn select(&mut self, rules: &[u32]) {
        for rule in rules {
            if let Some(flag) = self.selected_flag.get_mut(*rule as usize) {
                if !*flag {
                    *flag = true;
                    self.selected.push(*rule);
                }
            }
        }
    }
}

impl RouteGate {
    /// The gate over the gated rules of `parts`, in route order.
    pub fn build(parts: &[&PrefilteredRules]) -> RouteGate {
        let mut rules = Vec::new();
        let mut named = LiteralSet::default();
        let mut anywhere = LiteralSet::default();
        let mut fields = Vec::new();
        for (slot, part) in parts.iter().enumerate() {
            for (index, gated) in part.gated.iter().enumerate() {
                let rule = rules.len() as u32;
                rules.push((slot as u32, index as u32));
                fields.extend(gated.fields.iter().cloned());
                if gated.anywhere {
                    anywhere.add(rule, &gated.literals);
                } else {
                    named.add(rule, &gated.literals);
                }
            }
        }
        let mut unbuilt = Vec::new();
        let named = named.build(&mut unbuilt);
        let anywhere = anywhere.build(&mut unbuilt);
        unbuilt.sort_unstable();
        fields.sort();
        fields.dedup();
        RouteGate {
            rules,
            named,
            anywhere,
            unbuilt,
            fields,
        }
    }

    /// Evaluates the rules of the route's partitions (`parts`, in the order the gate was built
    /// from) on one event: per partition, its always-evaluated rules, then its gated rules
    /// whose gate opened, in load order. Returns how many gated rules ran.
    pub fn evaluate<'p>(
        &self,
        parts: impl Iterator<Item = &'p PrefilteredRules>,
        named: &NamedFields,
        view: &SigmaEventView<'_>,
        scratch: &mut GateScratch,
        results: &mut Vec<EvaluationResult>,
    ) -> usize {
        scratch.selected.clear();
        scratch
            .selected_flag
            .resize(self.rules.len().max(scratch.selected_flag.len()), false);
        scratch.select(&self.unbuilt);
        if self.named.is_some() || self.anywhere.is_some() {
            self.open_gates(named, view, scratch);
        }
        scratch.selected.sort_unstable();
        for rule in &scratch.selected {
            if let Some(flag) = scratch.selected_flag.get_mut(*rule as usize) {
                *flag = false;
            }
        }
        let mut selected = scratch.selected.iter().peekable();
        for (slot, part) in parts.enumerate() {
            results.extend(part.always.evaluate(view));
            while let Some((rule_slot, index)) = selected
                .peek()
                .and_then(|rule| self.rules.get(**rule as usize))
            {
                if *rule_slot as usize != slot {
                    break;
                }
                selected.next();
                if let Some(result) = part
                    .gated
                    .get(*index as usize)
                    .and_then(|gated| evaluate_rule(&gated.rule, view))
                {
                    results.push(result);
                }
            }
        }
        scratch.selected.len()
    }

    /// Scans the event once and adds the rules whose gate opened to `scratch.selected`.
    fn open_gates(
        &self,
        named: &NamedFields,
        view: &SigmaEventView<'_>,
        scratch: &mut GateScratch,
    ) {
        // Literal ids: the named set's, then the anywhere set's after them.
        let named_count = self.named.as_ref().map_or(0, |set| set.rules.len());
        let total = named_count + self.anywhere.as_ref().map_or(0, |set| set.rules.len());
        scratch
            .literal_seen
            .resize(total.max(scratch.literal_seen.len()), false);
        scratch.literals_touched.clear();

        // The texts go into two buffers (named fields, other strings), each text followed by
        // a NUL, which no literal holds (see `LiteralSet::build`), so no match spans two
        // texts: one automaton call per buffer instead of one per field, which cost more than
        // the scanning itself on short Windows fields.
        let GateScratch {
            named_text,
            other_text,
            ..
        } = scratch;
        named_text.clear();
        other_text.clear();
        let anywhere = self.anywhere.is_some();
        let mut push = |text: &str, in_named_field: bool| {
            let buffer = if in_named_field {
                &mut *named_text
            } else {
                &mut *other_text
            };
            fold_haystack(text, buffer);
            buffer.push(SEPARATOR);
        };
        let event = view.event();
        if named.contains("id") {
            push(&event.id, true);
        }
        event.core.visit(|name, value| {
            let in_named_field = named.contains(name);
            match value {
                CoreValue::Text(text) if in_named_field => push(text, true),
                // The core fields mostly repeat a device field (the Windows `Message` is
                // both `message` and `Message`): for the keyword scan, which covers every
                // top-level string below anyway, a repeated text adds nothing.
                CoreValue::Text(text) if anywhere && !is_top_level_string(event, text) => {
                    push(text, false);
                }
                CoreValue::Number(number) if in_named_field => push(&number.to_string(), true),
                _ => {}
            }
        });
        for (key, value) in &event.fields {
            let in_named_field = named.contains(key);
            if in_named_field || anywhere {
                visit_json_text(value, in_named_field, &mut push, MAX_DEPTH);
            }
        }

        let GateScratch {
            named_text,
            other_text,
            literal_seen,
            literals_touched,
            ..
        } = scratch;
        let mut mark = |literals: &Literals, offset: usize, haystack: &str| {
            if literals
                .quick
                .as_ref()
                .is_some_and(|quick| quick.find(haystack).is_none())
            {
                return;
            }
            for found in literals.automaton.find_overlapping_iter(haystack) {
                // Short literals match many times per event: each opens its rules once.
                let literal = found.pattern().as_usize() + offset;
                if let Some(seen) = literal_seen.get_mut(literal) {
                    if !*seen {
                        *seen = true;
                        literals_touched.push(literal as u32);
                    }
                }
            }
        };
        if let Some(set) = &self.named {
            mark(set, 0, named_text);
        }
        if let Some(set) = &self.anywhere {
            mark(set, named_count, named_text);
            mark(set, named_count, other_text);
        }

        let touched = std::mem::take(&mut scratch.literals_touched);
        for literal in &touched {
            let literal = *literal as usize;
            if let Some(seen) = scratch.literal_seen.get_mut(literal) {
                *seen = false;
            }
            let rules = match literal.checked_sub(named_count) {
                None => self.named.as_ref().and_then(|set| set.rules.get(literal)),
                Some(index) => self.anywhere.as_ref().and_then(|set| set.rules.get(index)),
            };
            if let Some(rules) = rules {
                scratch.select(rules);
            }
        }
        scratch.literals_touched = touched;
    }
}

/// True when one of the event's top-level fields holds exactly `text` as a string.
fn is_top_level_string(event: &citysoc_collector::Event, text: &str) -> bool {
    event.fields.values().any(
        |value| matches!(value, Value::String(field) if field.len() == text.len() && field == text),
    )
}

/// The texts of a JSON value a rule can compare: strings everywhere; numbers and booleans
/// only in a named field (keywords match strings only), formatted as the view's values are
/// (`i64` when it fits, else `f64`). Objects are walked, which covers dotted paths.
fn visit_json_text(
    value: &Value,
    in_named_field: bool,
    scan: &mut dyn FnMut(&str, bool),
    depth: usize,
) {
    match value {
        Value::String(text) => scan(text, in_named_field),
        Value::Number(number) if in_named_field => match number.as_i64() {
            Some(integer) => scan(&integer.to_string(), true),
            None => {
                if let Some(float) = number.as_f64() {
                    scan(&float.to_string(), true);
                }
            }
        },
        Value::Bool(flag) if in_named_field => scan(if *flag { "true" } else { "false" }, true),
        Value::Array(items) if depth > 0 => items
            .iter()
            .for_each(|item| visit_json_text(item, in_named_field, scan, depth - 1)),
        Value::Object(map) if depth > 0 => map
            .values()
            .for_each(|item| visit_json_text(item, in_named_field, scan, depth - 1)),
        _ => {}
    }
}
