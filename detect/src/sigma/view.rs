//! How a Sigma rule sees one of our events: a flat view without copying anything.
//!
//! Field lookup order: the core fields by ECS name (`source.ip`, `user.name`, …), then the
//! device's own names in `fields` (`Image`, `EventID`, `srcip`, …) with dotted paths walking
//! into nested objects, then the field aliases from `rules/mappings/` that apply to the event's
//! logsource (so a rule written for `c-uri-query` reads our `cs-uri-query`). `id` is the event
//! id, which the correlation engine keeps as its reference to the event.

use std::borrow::Cow;

use citysoc_collector::{CoreValue, Event};
use rsigma_eval::{Event as SigmaEvent, EventValue};
use serde_json::Value;

use super::mapping::AliasTable;

/// Nested values deeper than this are not visited (hostile JSON cannot blow the stack).
const MAX_DEPTH: usize = 32;

/// One event as a Sigma rule sees it.
pub struct SigmaEventView<'a> {
    event: &'a Event,
    aliases: Option<&'a AliasTable>,
}

impl<'a> SigmaEventView<'a> {
    /// A view of `event`, with the aliases that apply to its logsource.
    pub fn new(event: &'a Event, aliases: Option<&'a AliasTable>) -> Self {
        SigmaEventView { event, aliases }
    }

    /// The event seen.
    pub fn event(&self) -> &'a Event {
        self.event
    }

    fn direct(&self, path: &str) -> Option<EventValue<'_>> {
        if path == "id" {
            return Some(EventValue::Str(Cow::Borrowed(&self.event.id)));
        }
        if let Some(value) = self.event.core.value(path) {
            return Some(core_value(value));
        }
        if let Some(value) = self.event.fields.get(path) {
            return Some(json_value(value, MAX_DEPTH));
        }
        // `winlog.event_data.Image`-style paths into nested objects.
        let (root, rest) = path.split_once('.')?;
        let mut current = self.event.fields.get(root)?;
        for part in rest.split('.') {
            current = match current {
                Value::Object(map) => map.get(part)?,
                _ => return None,
            };
        }
        Some(json_value(current, MAX_DEPTH))
    }
}

fn core_value(value: CoreValue<'_>) -> EventValue<'_> {
    match value {
        CoreValue::Text(text) => EventValue::Str(Cow::Borrowed(text)),
        CoreValue::Number(number) => EventValue::Int(i64::from(number)),
    }
}

fn json_value(value: &Value, depth: usize) -> EventValue<'_> {
    match value {
        Value::String(text) => EventValue::Str(Cow::Borrowed(text)),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => EventValue::Int(integer),
            None => number.as_f64().map_or(EventValue::Null, EventValue::Float),
        },
        Value::Bool(flag) => EventValue::Bool(*flag),
        Value::Null => EventValue::Null,
        Value::Array(items) if depth > 0 => EventValue::Array(
            items
                .iter()
                .map(|item| json_value(item, depth - 1))
                .collect(),
        ),
        Value::Object(map) if depth > 0 => EventValue::Map(
            map.iter()
                .map(|(key, item)| (Cow::Borrowed(key.as_str()), json_value(item, depth - 1)))
                .collect(),
        ),
        Value::Array(_) | Value::Object(_) => EventValue::Null,
    }
}

fn visit_json_strings(value: &Value, visit: &mut dyn FnMut(&str), depth: usize) {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) if depth > 0 => items
            .iter()
            .for_each(|item| visit_json_strings(item, visit, depth - 1)),
        Value::Object(map) if depth > 0 => map
            .values()
            .for_each(|item| visit_json_strings(item, visit, depth - 1)),
        _ => {}
    }
}

impl SigmaEvent for SigmaEventView<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        if let Some(found) = self.direct(path) {
            return Some(found);
        }
        let aliases = self.aliases?.get(path)?;
        aliases.iter().find_map(|alias| self.direct(alias))
    }

    fn any_string_value(&self, predicate: &dyn Fn(&str) -> bool) -> bool {
        let mut found = false;
        self.visit_string_values(&mut |text| {
            if !found && predicate(text) {
                found = true;
            }
        });
        found
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut values = Vec::new();
        self.event.core.visit(|_, value| {
            if let CoreValue::Text(text) = value {
                values.push(Cow::Borrowed(text));
            }
        });
        for value in self.event.fields.values() {
            collect_json_strings(value, &mut values, MAX_DEPTH);
        }
        values
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        self.event.core.visit(|_, value| {
            if let CoreValue::Text(text) = value {
                visit(text);
            }
        });
        for value in self.event.fields.values() {
            visit_json_strings(value, visit, MAX_DEPTH);
        }
    }

    fn to_json(&self) -> Value {
        let mut flat = self.event.fields.to_map();
        self.event.core.visit(|name, value| {
            let json = match value {
                CoreValue::Text(text) => Value::from(text),
                CoreValue::Number(number) => Value::from(number),
            };
            flat.insert(name.to_owned(), json);
        });
        flat.insert("id".into(), Value::from(self.event.id.as_str()));
        Value::Object(flat)
    }

    fn visit_top_level_keys(&self, visit: &mut dyn FnMut(&str)) -> bool {
        // What `top_level_keys` lists, in the same order, without collecting it: rsigma's
        // candidate index asks once per partition an event is routed to.
        for key in self.event.fields.keys() {
            visit(key);
        }
        self.event.core.visit(|name, _| visit(name));
        if let Some(aliases) = self.aliases {
            for (sigma_name, ours) in aliases {
                if ours.iter().any(|name| self.direct(name).is_some()) {
                    visit(sigma_name);
                }
            }
        }
        true
    }

    fn top_level_keys(&self) -> Option<Vec<Cow<'_, str>>> {
        let mut keys: Vec<Cow<'_, str>> = self.event.fields.keys().map(Cow::Borrowed).collect();
        self.event
            .core
            .visit(|name, _| keys.push(Cow::Borrowed(name)));
        // The engine's prefilters skip rules whose fields the event lacks: a Sigma name that
        // an alias resolves must count as present, or mapped rules would never run.
        if let Some(aliases) = self.aliases {
            for (sigma_name, ours) in aliases {
                if ours.iter().any(|name| self.direct(name).is_some()) {
                    keys.push(Cow::Borrowed(sigma_name.as_str()));
                }
            }
        }
        Some(keys)
    }
}

fn collect_json_strings<'a>(value: &'a Value, out: &mut Vec<Cow<'a, str>>, depth: usize) {
    match value {
        Value::String(text) => out.push(Cow::Borrowed(text)),
        Value::Array(items) if depth > 0 => items
            .iter()
            .for_each(|item| collect_json_strings(item, out, depth - 1)),
        Value::Object(map) if depth > 0 => map
            .values()
            .for_each(|item| collect_json_strings(item, out, depth - 1)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use citysoc_collector::{parse_record, InputFormat, ParseContext};

    #[test]
    fn core_fields_device_fields_nested_paths_and_aliases() {
        let context = ParseContext::new("test");
        let record = br#"{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"pc1","Image":"C:\\x.exe","CommandLine":"x.exe -a","extra":{"inner":"deep"}}"#;
        let event = parse_record(record, InputFormat::Auto, &context, 1);
        let mut aliases = AliasTable::default();
        aliases.insert("ProcessCommandLine".into(), vec!["CommandLine".into()]);
        let view = SigmaEventView::new(&event, Some(&aliases));
        assert_eq!(view.get_field("EventID"), Some(EventValue::Int(1)));
        assert_eq!(
            view.get_field("host.name"),
            Some(EventValue::Str(Cow::Borrowed("pc1")))
        );
        assert_eq!(
            view.get_field("ProcessCommandLine"),
            Some(EventValue::Str(Cow::Borrowed("x.exe -a")))
        );
        assert_eq!(view.get_field("nope"), None);
        assert_eq!(
            view.get_field("id"),
            Some(EventValue::Str(Cow::Borrowed(event.id.as_str())))
        );
        assert!(view.any_string_value(&|text| text.contains("x.exe -a")));
        assert!(view.to_json().get("id").is_some());
        let mut visited = Vec::new();
        assert!(view.visit_top_level_keys(&mut |key| visited.push(key.to_owned())));
        let listed: Vec<String> = view
            .top_level_keys()
            .unwrap_or_default()
            .iter()
            .map(|key| key.to_string())
            .collect();
        assert_eq!(visited, listed);
        assert!(visited.contains(&"ProcessCommandLine".to_owned()));
    }
}
