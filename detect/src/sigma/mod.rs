//! Sigma detection: `SigmaEngine`, our own type in front of rsigma so the evaluator can be
//! replaced without touching the pipeline.
//!
//! Rules load from any number of files and directories (multi-document YAML with detection,
//! correlation and filter documents). A rule that fails to parse or compile is reported with
//! its path, id and reason; the others still load. Detection rules are partitioned by
//! logsource ([`routing`]); correlations run in rsigma's correlation engine over the
//! detections, with bounded state that can be saved and restored across restarts.

pub mod literals;
pub mod mapping;
pub mod prefilter;
pub mod route_gate;
pub mod routing;
pub mod view;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use citysoc_collector::{Event, LogSource};
use rsigma_eval::{
    CorrelationConfig, CorrelationEngine, CorrelationEventMode, Engine, EvaluationResult, Pipeline,
    ResultBody,
};
use rsigma_parser::{parse_sigma_yaml, CorrelationRule, FilterRule, SigmaRule};
use serde::Serialize;

use crate::alert::{Alert, AlertKind, Entities, Level};
use crate::error::DetectError;
use mapping::{AliasTable, FieldMappings};
use prefilter::PrefilteredRules;
use route_gate::{GateScratch, NamedFields, RouteGate};
use routing::PartitionKey;
use view::SigmaEventView;

/// A rule (or a whole file) that did not load, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleProblem {
    /// The file.
    pub path: PathBuf,
    /// The rule's id (or title) when the document got far enough to have one.
    pub rule_id: Option<String>,
    /// What was wrong.
    pub reason: String,
}

/// What a load did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// YAML files read.
    pub files: usize,
    /// Detection rules compiled.
    pub rules: usize,
    /// Correlation rules compiled.
    pub correlations: usize,
    /// Filter documents applied to at least one rule.
    pub filters: usize,
    /// Everything that failed, one entry each.
    pub problems: Vec<RuleProblem>,
}

/// How to load and run rules.
#[derive(Debug, Clone)]
pub struct SigmaOptions {
    /// Values for `%name%` placeholders (`|expand`); unknown placeholders match anything.
    pub placeholders: BTreeMap<String, Vec<String>>,
    /// Field aliases per logsource.
    pub mappings: FieldMappings,
    /// Upper bound on correlation state entries across all groups (memory bound).
    pub max_correlation_state: usize,
    /// Upper bound on entries kept in one group's window. rsigma re-reads a group's whole
    /// window on every event of the group (value_count hashes every value), so this bounds the
    /// cost an attacker flooding one group can cause as well as the memory; past it the oldest
    /// entries go, which can only under-count, long after any sane threshold fired.
    pub max_group_entries: usize,
    /// Gate each partition's rules behind the literals they need ([`prefilter`]): the same
    /// detections, far fewer rules evaluated per event. Off only to compare against.
    pub literal_prefilter: bool,
}

impl Default for SigmaOptions {
    fn default() -> Self {
        SigmaOptions {
            placeholders: BTreeMap::new(),
            mappings: FieldMappings::default(),
            max_correlation_state: 100_000,
            max_group_entries: 1_000,
            literal_prefilter: true,
        }
    }
}

/// Where a rule came from, for alerts and reports.
#[derive(Debug, Clone)]
struct RuleOrigin {
    path: PathBuf,
}

/// The routed evaluation plan for one event logsource: which partitions, which aliases, and
/// with the literal prefilter on, the gate over those partitions' rules.
#[derive(Debug, Default)]
struct Route {
    partitions: Vec<usize>,
    aliases: AliasTable,
    /// Index into `SigmaEngine::gates`.
    gate: Option<usize>,
    /// The event fields the gate scans, under this logsource's aliases.
    named: NamedFields,
}

/// Counters for metrics and summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SigmaStats {
    /// Events processed.
    pub events: u64,
    /// Partition evaluations (events × partitions routed to).
    pub partition_evaluations: u64,
    /// Events that matched at least one detection rule (alerting or feeding a correlation).
    pub matched_events: u64,
    /// Detection matches.
    pub detections: u64,
    /// Correlation firings.
    pub correlations: u64,
    /// Literal-gated rules evaluated because one of their literals occurred in the event.
    pub gated_rule_evaluations: u64,
}

/// The rules of one logsource partition: as loaded (rules are added and filters applied to
/// an rsigma `Engine`), then, with the literal prefilter on, split behind the literal gate.
enum PartitionRules {
    Plain(Engine),
    Prefiltered(PrefilteredRules),
}

impl PartitionRules {
    fn rule_count(&self) -> usize {
        match self {
            PartitionRules::Plain(engine) => engine.rule_count(),
            PartitionRules::Prefiltered(rules) => rules.rule_count(),
        }
    }
}

/// Sigma detection and correlation over our events.
pub struct SigmaEngine {
    partitions: Vec<(PartitionKey, PartitionRules)>,
    /// One gate per distinct list of routed partitions (built on first use: most lists never
    /// occur).
    gates: Vec<RouteGate>,
    gate_index: HashMap<Vec<usize>, usize>,
    scratch: GateScratch,
    partition_index: HashMap<PartitionKey, usize>,
    correlation: Option<CorrelationEngine>,
    mappings: FieldMappings,
    routes: HashMap<LogSource, usize>,
    route_table: Vec<Route>,
    origins: HashMap<String, RuleOrigin>,
    /// Rules referenced by a correlation without `generate: true`: per the Sigma correlation
    /// specification they feed the correlation but raise no alert of their own.
    correlation_only: HashSet<String>,
    stats: SigmaStats,
    last_event_matched: bool,
}

impl std::fmt::Debug for SigmaEngine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SigmaEngine")
            .field("partitions", &self.partitions.len())
            .field("rules", &self.rule_count())
            .field("stats", &self.stats)
            .finish()
    }
}

/// The YAML files under `paths` (files as given, directories walked), sorted.
pub fn rule_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DetectError> {
    let mut files = Vec::new();
    for path in paths {
        collect_yaml(path, &mut files)?;
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn collect_yaml(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), DetectError> {
    let metadata = std::fs::metadata(path).map_err(|source| DetectError::Read {
        path: path.to_owned(),
        source,
    })?;
    if metadata.is_file() {
        files.push(path.to_owned());
        return Ok(());
    }
    let entries = std::fs::read_dir(path).map_err(|source| DetectError::Read {
        path: path.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| DetectError::Read {
            path: path.to_owned(),
            source,
        })?;
        let child = entry.path();
        if child.is_dir() {
            collect_yaml(&child, files)?;
        } else if child
            .extension()
            .is_some_and(|extension| extension == "yml" || extension == "yaml")
        {
            files.push(child);
        }
    }
    Ok(())
}

/// The ids (or titles) of the documents of a multi-document file that fail to parse on their
/// own, in order: what a per-document parse error is about. Only runs when a file had errors.
fn failing_document_ids(text: &str) -> Vec<Option<String>> {
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            documents.push(String::new());
        } else if let Some(current) = documents.last_mut() {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents
        .iter()
        .filter(|document| !document.trim().is_empty())
        .filter(|document| {
            parse_sigma_yaml(document).map_or(true, |collection| !collection.errors.is_empty())
        })
        .map(|document| {
            top_level_value(document, "id").or_else(|| top_level_value(document, "title"))
        })
        .collect()
}

fn top_level_value(document: &str, key: &str) -> Option<String> {
    document.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?.trim();
        (!value.is_empty()).then(|| value.trim_matches(['\'', '"']).to_owned())
    })
}

fn rule_key(id: &Option<String>, title: &str) -> String {
    id.clone().unwrap_or_else(|| title.to_owned())
}

/// True when the rule uses the `|expand` modifier. Only those rules get the placeholder
/// pipeline: applied to every rule, it would also rewrite `%AppData%`-like text inside regular
/// expressions and plain values, which is not what the rule author meant.
fn uses_expand(rule: &SigmaRule) -> bool {
    // The AST's field specs print as `modifiers: [Contains, Expand]`; a value such as
    // 'Expand-Archive' prints inside quotes elsewhere and does not count.
    let debug = format!("{:?}", rule.detection);
    debug.match_indices("modifiers: [").any(|(start, marker)| {
        let list = &debug[start + marker.len()..];
        let list = &list[..list.find(']').unwrap_or(list.len())];
        list.split(", ").any(|modifier| modifier == "Expand")
    })
}

/// The rule as it is compiled: placeholders expanded when it uses `|expand`.
fn prepared(rule: &SigmaRule, pipeline: &Pipeline) -> Result<SigmaRule, String> {
    let mut rule = rule.clone();
    if uses_expand(&rule) {
        rsigma_eval::apply_pipelines(std::slice::from_ref(pipeline), &mut rule)
            .map_err(|error| error.to_string())?;
    }
    Ok(rule)
}

fn placeholder_pipeline(
    placeholders: &BTreeMap<String, Vec<String>>,
) -> Result<Pipeline, DetectError> {
    // pySigma's processing-pipeline format, which rsigma reads: expand the known placeholders,
    // then let any unknown one match anything rather than nothing.
    let vars = serde_json::to_string(placeholders).unwrap_or_else(|_| "{}".to_owned());
    let yaml = format!(
        "name: citysoc placeholders\npriority: 10\nvars: {vars}\ntransformations:\n  - id: expand_known\n    type: value_placeholders\n  - id: unknown_match_anything\n    type: wildcard_placeholders\n"
    );
    rsigma_eval::parse_pipeline(&yaml).map_err(|error| DetectError::InvalidFile {
        path: PathBuf::from("<placeholders>"),
        reason: error.to_string(),
    })
}

impl SigmaEngine {
    /// Loads every rule under `paths`. Problems with single rules or files are in the report;
    /// only an unreadable path or a bad placeholder configuration is an error.
    pub fn load(
        paths: &[PathBuf],
        options: SigmaOptions,
    ) -> Result<(SigmaEngine, LoadReport), DetectError> {
        let pipeline = placeholder_pipeline(&options.placeholders)?;
        let mut report = LoadReport::default();
        let mut rules: Vec<(PathBuf, SigmaRule)> = Vec::new();
        let mut correlations: Vec<(PathBuf, CorrelationRule)> = Vec::new();
        let mut filters: Vec<(PathBuf, FilterRule)> = Vec::new();

        for path in rule_files(paths)? {
            report.files += 1;
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) => {
                    report.problems.push(RuleProblem {
                        path,
                        rule_id: None,
                        reason: format!("cannot read: {error}"),
                    });
                    continue;
                }
            };
            match parse_sigma_yaml(&text) {
                Ok(collection) => {
                    let failing_ids = if collection.errors.is_empty() {
                        Vec::new()
                    } else {
                        failing_document_ids(&text)
                    };
                    for (index, reason) in collection.errors.iter().enumerate() {
                        let rule_id = failing_ids.get(index).cloned().flatten();
                        report.problems.push(RuleProblem {
                            path: path.clone(),
                            rule_id,
                            reason: reason.clone(),
                        });
                    }
                    rules.extend(
                        collection
                            .rules
                            .into_iter()
                            .map(|rule| (path.clone(), rule)),
                    );
                    correlations.extend(
                        collection
                            .correlations
                            .into_iter()
                            .map(|rule| (path.clone(), rule)),
                    );
                    filters.extend(
                        collection
                            .filters
                            .into_iter()
                            .map(|rule| (path.clone(), rule)),
                    );
                }
                Err(error) => report.problems.push(RuleProblem {
                    path,
                    rule_id: None,
                    reason: error.to_string(),
                }),
            }
        }

        let mut engine = SigmaEngine {
            partitions: Vec::new(),
            gates: Vec::new(),
            gate_index: HashMap::new(),
            scratch: GateScratch::default(),
            partition_index: HashMap::new(),
            correlation: None,
            mappings: options.mappings.clone(),
            routes: HashMap::new(),
            route_table: Vec::new(),
            origins: HashMap::new(),
            correlation_only: HashSet::new(),
            stats: SigmaStats::default(),
            last_event_matched: false,
        };

        // A rule without an id that a correlation names by `name` would never feed it (rsigma
        // keys detections by id): give such rules their name as id.
        for (_, rule) in &mut rules {
            if rule.id.is_none() {
                rule.id = rule.name.clone();
            }
        }
        for (path, rule) in &rules {
            let key = PartitionKey::of_rule(
                rule.logsource.product.as_deref(),
                rule.logsource.category.as_deref(),
                rule.logsource.service.as_deref(),
            );
            let partition = engine.partition_for(key);
            match prepared(rule, &pipeline).and_then(|rule| match partition {
                Some(partition) => partition.add_rule(&rule).map_err(|error| error.to_string()),
                None => Err("the rule set is already sealed".to_owned()),
            }) {
                Ok(()) => {
                    report.rules += 1;
                    engine.origins.insert(
                        rule_key(&rule.id, &rule.title),
                        RuleOrigin { path: path.clone() },
                    );
                }
                Err(error) => report.problems.push(RuleProblem {
                    path: path.clone(),
                    rule_id: Some(rule_key(&rule.id, &rule.title)),
                    reason: error,
                }),
            }
        }

        for (path, filter) in &filters {
            let mut applied = 0;
            for (_, partition) in &mut engine.partitions {
                if let PartitionRules::Plain(partition) = partition {
                    if partition.apply_filter(filter).is_ok() {
                        applied += 1;
                    }
                }
            }
            if applied > 0 {
                report.filters += 1;
            } else {
                report.problems.push(RuleProblem {
                    path: path.clone(),
                    rule_id: Some(rule_key(&filter.id, &filter.title)),
                    reason: "filter applies to no loaded rule".to_owned(),
                });
            }
        }

        if options.literal_prefilter {
            // After the filters: they rewrite the rules' conditions, and the literal
            // requirements are derived from the final ones.
            for (_, partition) in &mut engine.partitions {
                if let PartitionRules::Plain(plain) = partition {
                    *partition =
                        PartitionRules::Prefiltered(PrefilteredRules::build(plain.rules()));
                }
            }
        }
        engine.correlation_only = correlation_only_rules(&rules, &correlations);
        if !correlations.is_empty() {
            engine.correlation = Some(build_correlation_engine(
                &rules,
                &correlations,
                &pipeline,
                &options,
                &mut report,
                &mut engine.origins,
            ));
        }
        Ok((engine, report))
    }

    /// The engine rules with `key` are added to; `None` once the partitions were split behind
    /// the literal gate (loading is over by then).
    fn partition_for(&mut self, key: PartitionKey) -> Option<&mut Engine> {
        let index = match self.partition_index.get(&key) {
            Some(index) => *index,
            None => {
                // rsigma's bloom prefilter stays off: with the whole SigmaHQ pack loaded it
                // skipped rules that match (the admin-share rule b210394c on the OTRF Covenant
                // recording, once the partition also held the placeholder and emerging-threat
                // rules; found by the prefilter's differential test).
                let partition = Engine::new();
                self.partitions
                    .push((key.clone(), PartitionRules::Plain(partition)));
                self.partition_index.insert(key, self.partitions.len() - 1);
                self.partitions.len() - 1
            }
        };
        // Loading only ever adds to plain partitions: the split happens after the last rule.
        match &mut self.partitions[index].1 {
            PartitionRules::Plain(engine) => Some(engine),
            PartitionRules::Prefiltered(_) => None,
        }
    }

    /// Number of detection rules loaded.
    pub fn rule_count(&self) -> usize {
        self.partitions
            .iter()
            .map(|(_, partition)| partition.rule_count())
            .sum()
    }

    /// Number of detection rules behind the literal prefilter's gate (the others are
    /// evaluated on every event of their partition).
    pub fn gated_rule_count(&self) -> usize {
        self.partitions
            .iter()
            .map(|(_, partition)| match partition {
                PartitionRules::Plain(_) => 0,
                PartitionRules::Prefiltered(rules) => rules.gated_count(),
            })
            .sum()
    }

    /// The ids (or titles, for rules without an id) of every detection and correlation rule.
    pub fn rule_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.origins.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Number of correlation rules loaded.
    pub fn correlation_count(&self) -> usize {
        self.correlation
            .as_ref()
            .map_or(0, CorrelationEngine::correlation_rule_count)
    }

    /// True when the last processed event matched a detection rule, including the rules that
    /// only feed correlations (a hunt keeps such events: a correlation alert refers to them).
    pub fn last_event_matched(&self) -> bool {
        self.last_event_matched
    }

    /// Counters.
    pub fn stats(&self) -> SigmaStats {
        self.stats
    }

    /// The index of the route for `logsource`, computed once per distinct logsource.
    fn route(&mut self, logsource: &LogSource) -> usize {
        if let Some(index) = self.routes.get(logsource) {
            return *index;
        }
        let partitions: Vec<usize> = PartitionKey::candidates_for(logsource)
            .iter()
            .filter_map(|key| self.partition_index.get(key).copied())
            .collect();
        let aliases = self.mappings.table_for(logsource);
        let gate = self.gate_for(&partitions);
        let named = gate
            .and_then(|gate| self.gates.get(gate))
            .map(|gate| NamedFields::new(gate, &aliases))
            .unwrap_or_default();
        self.route_table.push(Route {
            partitions,
            aliases,
            gate,
            named,
        });
        self.routes
            .insert(logsource.clone(), self.route_table.len() - 1);
        self.route_table.len() - 1
    }

    /// The gate over the rules of `partitions` when they are all split behind the literal
    /// prefilter, built once per distinct list.
    fn gate_for(&mut self, partitions: &[usize]) -> Option<usize> {
        if let Some(index) = self.gate_index.get(partitions) {
            return Some(*index);
        }
        let parts: Vec<&PrefilteredRules> = partitions
            .iter()
            .filter_map(|index| match self.partitions.get(*index) {
                Some((_, PartitionRules::Prefiltered(rules))) => Some(rules),
                _ => None,
            })
            .collect();
        if parts.len() != partitions.len() {
            return None;
        }
        self.gates.push(RouteGate::build(&parts));
        let index = self.gates.len() - 1;
        self.gate_index.insert(partitions.to_vec(), index);
        Some(index)
    }

    /// Runs detection and correlation on one event, in event-time order (correlation windows
    /// use the event's timestamp, so replaying old logs works).
    pub fn process(&mut self, event: &Event) -> Vec<Alert> {
        self.stats.events += 1;
        let assigned = self.mappings.effective_logsource(event);
        let route_index = self.route(assigned.as_ref().unwrap_or(&event.logsource));
        let route = &self.route_table[route_index];
        let view = SigmaEventView::new(event, Some(&route.aliases));
        let mut detections: Vec<EvaluationResult> = Vec::new();
        match route.gate.and_then(|gate| self.gates.get(gate)) {
            Some(gate) => {
                let partitions = &self.partitions;
                let parts =
                    route
                        .partitions
                        .iter()
                        .filter_map(|index| match partitions.get(*index) {
                            Some((_, PartitionRules::Prefiltered(rules))) => Some(rules),
                            _ => None,
                        });
                self.stats.gated_rule_evaluations += gate.evaluate(
                    parts,
                    &route.named,
                    &view,
                    &mut self.scratch,
                    &mut detections,
                ) as u64;
            }
            None => {
                for index in &route.partitions {
                    if let Some((_, PartitionRules::Plain(engine))) = self.partitions.get(*index) {
                        detections.extend(engine.evaluate(&view));
                    }
                }
            }
        }
        self.stats.partition_evaluations += route.partitions.len() as u64;
        self.stats.detections += detections.len() as u64;
        self.last_event_matched = !detections.is_empty();
        if self.last_event_matched {
            self.stats.matched_events += 1;
        }
        let results = match &mut self.correlation {
            Some(correlation) => {
                correlation.process_with_detections(&view, detections, event.timestamp.timestamp())
            }
            None => detections,
        };
        let alerts: Vec<Alert> = results
            .iter()
            .filter(|result| {
                result.is_correlation()
                    || !self
                        .correlation_only
                        .contains(&rule_key(&result.header.rule_id, &result.header.rule_title))
            })
            .map(|result| self.alert_for(result, event))
            .collect();
        self.stats.correlations += alerts
            .iter()
            .filter(|alert| alert.kind == AlertKind::Correlation)
            .count() as u64;
        alerts
    }

    fn alert_for(&self, result: &EvaluationResult, event: &Event) -> Alert {
        let header = &result.header;
        let rule_id = rule_key(&header.rule_id, &header.rule_title);
        let level = header.level.map_or(Level::Medium, |level| {
            Level::from_sigma(&format!("{level:?}"))
        });
        let kind = if result.is_correlation() {
            AlertKind::Correlation
        } else {
            AlertKind::Sigma
        };
        let mut alert = Alert::for_event(
            kind,
            &rule_id,
            &header.rule_title,
            level,
            header.tags.clone(),
            event,
        );
        if let Some(origin) = self.origins.get(&rule_id) {
            alert
                .details
                .insert("rule_path".into(), origin.path.display().to_string().into());
        }
        match &result.body {
            ResultBody::Detection(body) => {
                let matched: Vec<serde_json::Value> = body
                    .matched_fields
                    .iter()
                    .take(10)
                    .map(|field| serde_json::json!({"field": field.field, "value": field.value}))
                    .collect();
                if !matched.is_empty() {
                    alert
                        .details
                        .insert("matched_fields".into(), matched.into());
                }
            }
            ResultBody::Correlation(body) => {
                alert.details.insert(
                    "correlation_type".into(),
                    format!("{:?}", body.correlation_type).to_lowercase().into(),
                );
                alert
                    .details
                    .insert("aggregated_value".into(), body.aggregated_value.into());
                alert
                    .details
                    .insert("timespan_secs".into(), body.timespan_secs.into());
                let group: serde_json::Map<String, serde_json::Value> = body
                    .group_key
                    .iter()
                    .map(|(field, value)| (field.clone(), value.clone().into()))
                    .collect();
                // The correlation is about the group, not about whoever sent the last event.
                alert.entities = entities_from_group(&group, &alert.entities);
                alert.grouping_key = format!(
                    "{rule_id}|{}|{}",
                    event.agency.as_deref().unwrap_or(""),
                    serde_json::Value::Object(group.clone())
                );
                alert.details.insert("group".into(), group.into());
                if let Some(references) = &body.event_refs {
                    let ids: Vec<String> = references
                        .iter()
                        .filter_map(|reference| reference.id.clone())
                        .collect();
                    if !ids.is_empty() {
                        alert.event_ids = ids;
                    }
                    if let Some(first) =
                        references.iter().map(|reference| reference.timestamp).min()
                    {
                        if let Some(first) = chrono::DateTime::from_timestamp(first, 0) {
                            alert.first_seen = first;
                        }
                    }
                }
            }
        }
        alert
    }

    /// The correlation windows' state, to persist across a restart.
    pub fn correlation_state(&self) -> Option<serde_json::Value> {
        self.correlation
            .as_ref()
            .and_then(|correlation| serde_json::to_value(correlation.export_state()).ok())
    }

    /// Restores correlation state saved by [`correlation_state`](Self::correlation_state);
    /// false when it does not fit the loaded rules.
    pub fn restore_correlation_state(&mut self, state: serde_json::Value) -> bool {
        let Some(correlation) = &mut self.correlation else {
            return false;
        };
        match serde_json::from_value(state) {
            Ok(snapshot) => correlation.import_state(snapshot),
            Err(_) => false,
        }
    }

    /// Number of live correlation state entries (bounded by the options).
    pub fn correlation_state_entries(&self) -> usize {
        self.correlation
            .as_ref()
            .map_or(0, CorrelationEngine::state_count)
    }
}

/// The keys of the rules that only feed correlations (referenced by id or name by a
/// correlation without `generate: true`, and by none that generates).
fn correlation_only_rules(
    rules: &[(PathBuf, SigmaRule)],
    correlations: &[(PathBuf, CorrelationRule)],
) -> HashSet<String> {
    let refers_to = |reference: &str, rule: &SigmaRule| {
        rule.id.as_deref() == Some(reference)
            || rule.name.as_deref() == Some(reference)
            || rule.title == reference
    };
    let mut silent = HashSet::new();
    let mut generating = HashSet::new();
    for (_, correlation) in correlations {
        for reference in &correlation.rules {
            for (_, rule) in rules.iter().filter(|(_, rule)| refers_to(reference, rule)) {
                let key = rule_key(&rule.id, &rule.title);
                if correlation.generate {
                    generating.insert(key);
                } else {
                    silent.insert(key);
                }
            }
        }
    }
    silent.retain(|key| !generating.contains(key));
    silent
}

fn entities_from_group(
    group: &serde_json::Map<String, serde_json::Value>,
    fallback: &Entities,
) -> Entities {
    let find = |names: &[&str]| {
        names.iter().find_map(|name| {
            group
                .get(*name)
                .and_then(|value| value.as_str())
                .map(str::to_owned)
        })
    };
    Entities {
        host: find(&["host.name", "Computer", "Hostname", "devname", "dvchost"])
            .or_else(|| fallback.host.clone()),
        user: find(&[
            "user.name",
            "User",
            "TargetUserName",
            "SubjectUserName",
            "user",
            "suser",
            "usrName",
        ])
        .or_else(|| fallback.user.clone()),
        ip: find(&[
            "source.ip",
            "SourceIp",
            "IpAddress",
            "srcip",
            "src",
            "remip",
            "c-ip",
            "clientip",
        ])
        .or_else(|| fallback.ip.clone()),
    }
}

fn build_correlation_engine(
    rules: &[(PathBuf, SigmaRule)],
    correlations: &[(PathBuf, CorrelationRule)],
    pipeline: &Pipeline,
    options: &SigmaOptions,
    report: &mut LoadReport,
    origins: &mut HashMap<String, RuleOrigin>,
) -> CorrelationEngine {
    let config = CorrelationConfig {
        max_state_entries: options.max_correlation_state,
        max_group_entries: Some(options.max_group_entries),
        correlation_event_mode: CorrelationEventMode::Refs,
        max_correlation_events: 50,
        ..CorrelationConfig::default()
    };
    let mut engine = CorrelationEngine::new(config);
    // The correlation engine needs the referenced detection rules to resolve names and ids;
    // detection itself runs in the partitions and is handed over per event.
    let referenced: HashSet<&str> = correlations
        .iter()
        .flat_map(|(_, correlation)| correlation.rules.iter().map(String::as_str))
        .collect();
    for (_, rule) in rules {
        let named = rule.id.as_deref().is_some_and(|id| referenced.contains(id))
            || rule
                .name
                .as_deref()
                .is_some_and(|name| referenced.contains(name));
        if named {
            // Failures were already reported by the detection load.
            if let Ok(rule) = prepared(rule, pipeline) {
                let _ = engine.add_rule(&rule);
            }
        }
    }
    for (path, correlation) in correlations {
        match engine.add_correlation(correlation) {
            Ok(()) => {
                report.correlations += 1;
                origins.insert(
                    rule_key(&correlation.id, &correlation.title),
                    RuleOrigin { path: path.clone() },
                );
            }
            Err(error) => report.problems.push(RuleProblem {
                path: path.clone(),
                rule_id: Some(rule_key(&correlation.id, &correlation.title)),
                reason: error.to_string(),
            }),
        }
    }
    engine
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod prefilter_tests;
