//! The values of an event that the stores index, taken the same way for both, so a query
//! matches the same events in tantivy and in ClickHouse.

use citysoc_collector::{CoreValue, Event};
use serde_json::Value;

use crate::fields::{FieldKind, FIELDS};
use crate::text;

/// Separates path and value in an original-field term (`EventID\u{1f}4625`). The unit
/// separator cannot appear in a JSON key a device sends by accident, and keeps `a.b` + `c`
/// apart from `a` + `b.c`.
pub const PATH_VALUE_SEPARATOR: char = '\u{1f}';

/// The value of a named catalogue field, as text (keyword and text fields) or number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// Text, unfolded.
    Text(std::borrow::Cow<'a, str>),
    /// A number field's value.
    Number(u64),
}

/// Calls `visit` with every named keyword, number or text field the event has (time fields
/// excluded), by catalogue name.
pub fn visit_fields<'a>(
    event: &'a Event,
    mut visit: impl FnMut(&'static str, FieldKind, FieldValue<'a>),
) {
    use std::borrow::Cow;
    for spec in FIELDS {
        let value = match spec.name {
            "timestamp" | "received_at" => None,
            "id" => Some(FieldValue::Text(Cow::Borrowed(event.id.as_str()))),
            "agency" => event
                .agency
                .as_deref()
                .map(|v| FieldValue::Text(Cow::Borrowed(v))),
            "collector" => event
                .collector
                .as_deref()
                .map(|v| FieldValue::Text(Cow::Borrowed(v))),
            "format" => Some(FieldValue::Text(Cow::Borrowed(event.format.as_str()))),
            "logsource.product" => event
                .logsource
                .product
                .as_deref()
                .map(|v| FieldValue::Text(Cow::Borrowed(v))),
            "logsource.category" => event
                .logsource
                .category
                .as_deref()
                .map(|v| FieldValue::Text(Cow::Borrowed(v))),
            "logsource.service" => event
                .logsource
                .service
                .as_deref()
                .map(|v| FieldValue::Text(Cow::Borrowed(v))),
            "source.transport" => Some(FieldValue::Text(Cow::Borrowed(
                event.source.transport.as_ref(),
            ))),
            "source.address" => event
                .source
                .address
                .as_deref()
                .map(|v| FieldValue::Text(Cow::Borrowed(v))),
            "parse_error.format" => event
                .parse_error
                .as_ref()
                .map(|error| FieldValue::Text(Cow::Borrowed(error.format.as_str()))),
            "raw" => Some(FieldValue::Text(raw_text(event))),
            name => event.core.value(name).map(|value| match value {
                CoreValue::Text(text) => FieldValue::Text(Cow::Borrowed(text)),
                CoreValue::Number(number) => FieldValue::Number(u64::from(number)),
            }),
        };
        if let Some(value) = value {
            visit(spec.name, spec.kind, value);
        }
    }
}

/// The raw record as text: `raw`, or the bytes of `raw_base64` read as UTF-8 with
/// replacement characters (its words are still searchable).
pub fn raw_text(event: &Event) -> std::borrow::Cow<'_, str> {
    match &event.raw {
        Some(raw) => std::borrow::Cow::Borrowed(raw.as_str()),
        None => std::borrow::Cow::Owned(String::from_utf8_lossy(&event.raw_bytes()).into_owned()),
    }
}

/// The event's original fields flattened to `(dotted path, folded value)` pairs: objects are
/// walked, every array element is a value of the same path, numbers and booleans are written
/// as JSON writes them, `null` is skipped.
pub fn original_fields(event: &Event) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut path = String::new();
    for (key, value) in &event.fields {
        path.clear();
        path.push_str(key);
        flatten(&mut path, value, &mut out);
    }
    out
}

fn flatten(path: &mut String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::String(text) => out.push((path.clone(), text::keyword(text))),
        Value::Bool(_) | Value::Number(_) => out.push((path.clone(), value.to_string())),
        Value::Array(items) => {
            for item in items {
                flatten(path, item, out);
            }
        }
        Value::Object(map) => {
            let base = path.len();
            for (key, item) in map {
                path.truncate(base);
                path.push('.');
                path.push_str(key);
                flatten(path, item, out);
            }
            path.truncate(base);
        }
    }
}

/// Calls `visit` with the original-field term ([`original_field_term`]) of every pair
/// [`original_fields`] gives, in the same order, built in one reused buffer: the tantivy store
/// makes one per original field of every event, and three strings each were a share of its
/// document building.
pub fn for_each_original_field_term(event: &Event, mut visit: impl FnMut(&str)) {
    let mut term = String::new();
    for (key, value) in &event.fields {
        term.clear();
        term.push_str(key);
        visit_terms(&mut term, value, &mut visit);
    }
}

/// [`flatten`], writing `path \u{1f} value` into `term` (which holds the path) for each value.
fn visit_terms(term: &mut String, value: &Value, visit: &mut impl FnMut(&str)) {
    use std::fmt::Write;
    let base = term.len();
    match value {
        Value::Null => {}
        Value::String(text) => {
            term.push(PATH_VALUE_SEPARATOR);
            text::keyword_into(text, term);
            visit(term);
        }
        Value::Bool(_) | Value::Number(_) => {
            term.push(PATH_VALUE_SEPARATOR);
            // `Display` of a JSON value is its JSON text, as `to_string` in `flatten`.
            let _ = write!(term, "{value}");
            visit(term);
        }
        Value::Array(items) => {
            for item in items {
                visit_terms(term, item, visit);
                term.truncate(base);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                term.truncate(base);
                term.push('.');
                term.push_str(key);
                visit_terms(term, item, visit);
            }
        }
    }
    term.truncate(base);
}

/// One original-field term: `path`, separator, folded value.
pub fn original_field_term(path: &str, folded_value: &str) -> String {
    let mut term = String::with_capacity(path.len() + 1 + folded_value.len());
    term.push_str(path);
    term.push(PATH_VALUE_SEPARATOR);
    term.push_str(folded_value);
    term
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        let json = serde_json::json!({
            "id": "ab", "timestamp": "2026-11-22T00:00:00Z", "received_at": "2026-11-22T00:00:00Z",
            "source": {"transport": "file"}, "format": "json", "agency": "quan-1",
            "source.port": 22, "message": "Thủ Đức",
            "fields": {"EventID": 4625, "winlog": {"event_data": {"Image": "C:\\X.exe"}}, "tags": ["A", "b"], "n": null},
            "raw": "{\"x\":1}"
        });
        serde_json::from_value(json).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn original_fields_flatten_objects_and_arrays() {
        assert_eq!(
            original_fields(&event()),
            [
                ("EventID".to_owned(), "4625".to_owned()),
                ("winlog.event_data.Image".to_owned(), "c:\\x.exe".to_owned()),
                ("tags".to_owned(), "a".to_owned()),
                ("tags".to_owned(), "b".to_owned()),
            ]
        );
    }

    #[test]
    fn original_field_terms_are_the_pairs_joined() {
        let mut events = vec![event()];
        let mut nested = event();
        nested.fields = serde_json::from_value(serde_json::json!({
            "a": {"b": [1, {"c": "Đ", "d": [true, null, ["x", 2.5]]}], "e": {}},
            "a.b": "dotted", "long": "ấ".repeat(3000), "empty": "", "list": [], "z": -3
        }))
        .unwrap_or_else(|error| panic!("{error}"));
        events.push(nested);
        for event in &events {
            let expected: Vec<String> = original_fields(event)
                .iter()
                .map(|(path, value)| original_field_term(path, value))
                .collect();
            let mut terms = Vec::new();
            for_each_original_field_term(event, |term| terms.push(term.to_owned()));
            assert_eq!(terms, expected);
        }
    }

    #[test]
    fn visit_sees_core_and_envelope_fields() {
        let event = event();
        let mut seen = Vec::new();
        visit_fields(&event, |name, _, value| seen.push((name, value)));
        assert!(seen.contains(&("agency", FieldValue::Text("quan-1".into()))));
        assert!(seen.contains(&("source.port", FieldValue::Number(22))));
        assert!(seen.contains(&("raw", FieldValue::Text("{\"x\":1}".into()))));
        assert!(!seen.iter().any(|(name, _)| *name == "user.name"));
    }
}
