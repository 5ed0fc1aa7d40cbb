//! The searchable fields and how each one matches. One table for both stores and the query
//! parser: a field that is not here (and not under `fields.`) is an error, never an empty
//! result.

/// How a field's values are stored and matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A point in time (`timestamp`, `received_at`): ranges, and a bare date means that day.
    Time,
    /// Whole-value match, case and diacritics folded (IPs, hashes, ids, host and user names).
    Keyword,
    /// An unsigned integer (ports, pids, status codes): exact values and ranges.
    Number,
    /// Tokenized, folded text: a word matches a token, a phrase a run of tokens.
    Text,
}

/// One searchable field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The name users type (ECS name for core fields).
    pub name: &'static str,
    /// How it matches.
    pub kind: FieldKind,
}

const fn spec(name: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec { name, kind }
}

/// Every named field. `fields.<path>` (the event's original fields) is accepted besides these.
pub const FIELDS: &[FieldSpec] = &[
    spec("timestamp", FieldKind::Time),
    spec("received_at", FieldKind::Time),
    spec("id", FieldKind::Keyword),
    spec("agency", FieldKind::Keyword),
    spec("collector", FieldKind::Keyword),
    spec("format", FieldKind::Keyword),
    spec("logsource.product", FieldKind::Keyword),
    spec("logsource.category", FieldKind::Keyword),
    spec("logsource.service", FieldKind::Keyword),
    spec("source.transport", FieldKind::Keyword),
    spec("source.address", FieldKind::Keyword),
    spec("host.name", FieldKind::Keyword),
    spec("source.ip", FieldKind::Keyword),
    spec("source.port", FieldKind::Number),
    spec("destination.ip", FieldKind::Keyword),
    spec("destination.port", FieldKind::Number),
    spec("user.name", FieldKind::Keyword),
    spec("process.name", FieldKind::Keyword),
    spec("process.pid", FieldKind::Number),
    spec("process.executable", FieldKind::Keyword),
    spec("process.command_line", FieldKind::Text),
    spec("event.code", FieldKind::Keyword),
    spec("event.action", FieldKind::Keyword),
    spec("event.outcome", FieldKind::Keyword),
    spec("log.level", FieldKind::Keyword),
    spec("url.original", FieldKind::Text),
    spec("http.request.method", FieldKind::Keyword),
    spec("http.response.status_code", FieldKind::Number),
    spec("user_agent.original", FieldKind::Text),
    spec("message", FieldKind::Text),
    spec("raw", FieldKind::Text),
    spec("parse_error.format", FieldKind::Keyword),
];

/// Prefix of the event's original fields (`fields.EventID`, `fields.winlog.event_data.Image`).
/// They match as keywords: whole value, folded; wildcards for parts.
pub const ORIGINAL_FIELDS_PREFIX: &str = "fields.";

/// The text fields a word without a field name searches.
pub const DEFAULT_TEXT_FIELDS: &[&str] = &["raw", "message"];

/// Looks a named field up.
pub fn lookup(name: &str) -> Option<&'static FieldSpec> {
    FIELDS.iter().find(|spec| spec.name == name)
}

/// Fields that can be counted by (`--count-by`): every keyword and number field and any
/// `fields.<path>`.
pub fn can_count_by(name: &str) -> bool {
    name.strip_prefix(ORIGINAL_FIELDS_PREFIX)
        .is_some_and(|path| !path.is_empty())
        || lookup(name)
            .is_some_and(|spec| matches!(spec.kind, FieldKind::Keyword | FieldKind::Number))
}

/// The known field names closest to `name`, for "unknown field" messages.
pub fn suggestions(name: &str) -> Vec<&'static str> {
    let lower = name.to_ascii_lowercase();
    let mut close: Vec<(usize, &'static str)> = FIELDS
        .iter()
        .map(|spec| (edit_distance(&lower, spec.name), spec.name))
        .filter(|(distance, candidate)| *distance <= 2 || candidate.ends_with(&format!(".{lower}")))
        .collect();
    close.sort();
    close
        .into_iter()
        .map(|(_, candidate)| candidate)
        .take(3)
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_field_of_the_event_is_searchable() {
        for name in citysoc_collector::event::CoreFields::NAMES {
            assert!(lookup(name).is_some(), "{name} missing from the catalogue");
        }
    }

    #[test]
    fn suggestions_name_the_close_fields() {
        assert_eq!(suggestions("source.pi"), ["source.ip"]);
        assert!(suggestions("ip").contains(&"source.ip"));
        assert!(suggestions("zzzzzz").is_empty());
    }

    #[test]
    fn count_by_accepts_keywords_numbers_and_original_fields() {
        assert!(can_count_by("source.ip"));
        assert!(can_count_by("source.port"));
        assert!(can_count_by("fields.EventID"));
        assert!(!can_count_by("message"));
        assert!(!can_count_by("fields."));
        assert!(!can_count_by("timestamp"));
    }
}
