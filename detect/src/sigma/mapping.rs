//! Field mappings as data: which of our field names a Sigma field name may be read from, per
//! logsource. Loaded from `rules/mappings/*.yml`:
//!
//! ```yaml
//! - logsource: {category: webserver}       # applies when every given key equals the event's
//!   fields:
//!     c-uri-query: [cs-uri-query]          # Sigma name: our names, tried in order
//!     c-useragent: [cs-user-agent, user_agent.original]
//! ```
//!
//! A rule's field is read directly when the event has it; the aliases are tried only on a miss,
//! so mapping never hides what the device wrote.
//!
//! The same files also give a logsource to events our parsers cannot name themselves (a CEF
//! feed from cameras, the data warehouse's JSON audit log), so rules can be written for them:
//!
//! ```yaml
//! - when: {format: cef, field: deviceVendor, in: [Hikvision, Dahua]}   # case-insensitive
//!   set: {product: citysoc, service: nvr}                              # category kept
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use citysoc_collector::{Event, LogSource};
use serde::Deserialize;

use crate::error::DetectError;

/// Sigma field name → our field names, for one event's logsource.
pub type AliasTable = HashMap<String, Vec<String>>;

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum MappingEntry {
    Aliases(AliasEntry),
    Assignment(AssignmentEntry),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasEntry {
    #[serde(default)]
    logsource: LogSourceMatch,
    fields: HashMap<String, OneOrMany>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentEntry {
    when: AssignmentCondition,
    set: LogSourceMatch,
}

/// Which events get an assigned logsource.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentCondition {
    /// The event's format (`cef`, `json`, …).
    format: Option<String>,
    /// A field of the event, read like a rule reads it.
    field: Option<String>,
    /// Values the field may have (case-insensitive).
    #[serde(rename = "in", default)]
    values: Vec<String>,
}

impl AssignmentCondition {
    fn applies_to(&self, event: &Event) -> bool {
        if let Some(format) = &self.format {
            if !event.format.as_str().eq_ignore_ascii_case(format) {
                return false;
            }
        }
        let Some(field) = &self.field else {
            return true;
        };
        let Some(value) = event.field(field) else {
            return false;
        };
        let text = match value.as_ref() {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        self.values.is_empty()
            || self
                .values
                .iter()
                .any(|wanted| wanted.eq_ignore_ascii_case(&text))
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
struct LogSourceMatch {
    product: Option<String>,
    category: Option<String>,
    service: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(name) => vec![name],
            OneOrMany::Many(names) => names,
        }
    }
}

impl LogSourceMatch {
    fn applies_to(&self, event: &LogSource) -> bool {
        let same = |wanted: &Option<String>, actual: Option<&str>| match wanted {
            None => true,
            Some(wanted) => actual.is_some_and(|actual| actual.eq_ignore_ascii_case(wanted)),
        };
        same(&self.product, event.product.as_deref())
            && same(&self.category, event.category.as_deref())
            && same(&self.service, event.service.as_deref())
    }
}

/// Every mapping loaded, and the merged table per logsource seen so far.
#[derive(Debug, Clone, Default)]
pub struct FieldMappings {
    entries: Vec<(LogSourceMatch, AliasTable)>,
    assignments: Vec<(AssignmentCondition, LogSourceMatch)>,
    /// Where each entry came from, for messages.
    sources: Vec<PathBuf>,
}

impl FieldMappings {
    /// Loads every `.yml`/`.yaml` file in `directory` (a missing directory is no mappings).
    pub fn load_dir(directory: &Path) -> Result<Self, DetectError> {
        let mut mappings = FieldMappings::default();
        if !directory.exists() {
            return Ok(mappings);
        }
        let mut paths: Vec<PathBuf> = std::fs::read_dir(directory)
            .map_err(|source| DetectError::Read {
                path: directory.to_owned(),
                source,
            })?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "yml" || extension == "yaml")
            })
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| DetectError::Read {
                path: path.clone(),
                source,
            })?;
            mappings.add_yaml(&text, &path)?;
        }
        Ok(mappings)
    }

    /// Adds the entries of one mapping document.
    pub fn add_yaml(&mut self, text: &str, path: &Path) -> Result<(), DetectError> {
        let entries: Vec<MappingEntry> =
            yaml_serde::from_str(text).map_err(|error| DetectError::InvalidFile {
                path: path.to_owned(),
                reason: error.to_string(),
            })?;
        for entry in entries {
            match entry {
                MappingEntry::Aliases(entry) => {
                    let table = entry
                        .fields
                        .into_iter()
                        .map(|(sigma, ours)| (sigma, ours.into_vec()))
                        .collect();
                    self.entries.push((entry.logsource, table));
                    self.sources.push(path.to_owned());
                }
                MappingEntry::Assignment(entry) => self.assignments.push((entry.when, entry.set)),
            }
        }
        Ok(())
    }

    /// The aliases that apply to an event with `logsource`, merged in file order (a later
    /// entry adds candidates after earlier ones).
    pub fn table_for(&self, logsource: &LogSource) -> AliasTable {
        let mut merged = AliasTable::new();
        for (matcher, table) in &self.entries {
            if !matcher.applies_to(logsource) {
                continue;
            }
            for (sigma, ours) in table {
                let candidates = merged.entry(sigma.clone()).or_default();
                for name in ours {
                    if !candidates.contains(name) {
                        candidates.push(name.clone());
                    }
                }
            }
        }
        merged
    }

    /// The logsource rules should see this event under: the first assignment that applies
    /// sets its product/service/category over the parser's, otherwise the parser's own.
    pub fn effective_logsource(&self, event: &Event) -> Option<LogSource> {
        let (_, set) = self
            .assignments
            .iter()
            .find(|(condition, _)| condition.applies_to(event))?;
        let mut logsource = event.logsource.clone();
        if set.product.is_some() {
            logsource.product = set.product.clone().map(Cow::Owned);
        }
        if set.category.is_some() {
            logsource.category = set.category.clone().map(Cow::Owned);
        }
        if set.service.is_some() {
            logsource.service = set.service.clone().map(Cow::Owned);
        }
        Some(logsource)
    }

    /// Number of mapping entries loaded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.assignments.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_merge_by_logsource() {
        let mut mappings = FieldMappings::default();
        let yaml = "- logsource: {category: webserver}\n  fields:\n    c-uri-query: cs-uri-query\n- fields:\n    SourceIp: [source.ip]\n";
        mappings
            .add_yaml(yaml, Path::new("test.yml"))
            .unwrap_or_else(|error| panic!("{error}"));
        let web = mappings.table_for(&LogSource::new(None, Some("webserver"), None));
        assert_eq!(
            web.get("c-uri-query"),
            Some(&vec!["cs-uri-query".to_owned()])
        );
        assert_eq!(web.get("SourceIp"), Some(&vec!["source.ip".to_owned()]));
        let linux = mappings.table_for(&LogSource::new(Some("linux"), None, Some("sshd")));
        assert!(!linux.contains_key("c-uri-query"));
        assert!(mappings
            .add_yaml("- fields: 3\n", Path::new("bad.yml"))
            .is_err());
    }

    #[test]
    fn assignments_name_sources_the_parsers_cannot() {
        use citysoc_collector::{parse_record, InputFormat, ParseContext};
        let mut mappings = FieldMappings::default();
        let yaml = "- when: {format: cef, field: deviceVendor, in: [hikvision]}\n  set: {product: citysoc, service: nvr}\n";
        mappings
            .add_yaml(yaml, Path::new("ls.yml"))
            .unwrap_or_else(|error| panic!("{error}"));
        let context = ParseContext::new("test");
        let nvr = parse_record(
            b"CEF:0|Hikvision|NVR|4|login|Login|5|suser=admin",
            InputFormat::Auto,
            &context,
            1,
        );
        let assigned = mappings.effective_logsource(&nvr).unwrap_or_default();
        assert_eq!(
            (assigned.product.as_deref(), assigned.service.as_deref()),
            (Some("citysoc"), Some("nvr"))
        );
        let other = parse_record(
            b"CEF:0|Fortinet|FortiGate|7|1|x|5|src=1.2.3.4",
            InputFormat::Auto,
            &context,
            1,
        );
        assert!(mappings.effective_logsource(&other).is_none());
    }
}
