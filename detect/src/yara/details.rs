//! The `details` of a YARA alert, built from per-rule templates.
//!
//! Every alert's details hold the same keys in the same order (`yara_rule`, `rule_file`,
//! `target`, `decoded`, `decoding` for decoded payloads, `truncated`, `strings`), and each
//! matched string is an object of `id`, `offset` and `length`. Inserting them one by one hashed
//! every key and regrew the map on every alert; a template made once (per rule for the
//! details, once for a matched string) is cloned and its values set in place, with the same
//! keys, order and JSON as inserting them.

use std::sync::LazyLock;

use serde_json::{Map, Value};

use super::decode::Decoding;

/// A rule's details with its constant values (`yara_rule`, `rule_file`) set, for matches in
/// targets as they are and in decoded payloads (which also name the decoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DetailsTemplate {
    plain: Map<String, Value>,
    decoded: Map<String, Value>,
}

impl DetailsTemplate {
    /// The templates of the rule called `qualified_name` from `file`.
    pub(crate) fn new(qualified_name: &str, file: &str) -> Self {
        let build = |decoded: bool| {
            let mut details = Map::new();
            details.insert("yara_rule".into(), Value::from(qualified_name));
            details.insert("rule_file".into(), Value::from(file));
            details.insert("target".into(), Value::Null);
            details.insert("decoded".into(), Value::Bool(decoded));
            if decoded {
                details.insert("decoding".into(), Value::Null);
            }
            details.insert("truncated".into(), Value::Bool(false));
            details.insert("strings".into(), Value::Null);
            details
        };
        DetailsTemplate {
            plain: build(false),
            decoded: build(true),
        }
    }

    /// The details of a match in `target` (decoded by `decoding`, cut at the scan limit when
    /// `truncated`), with the `strings` that matched.
    pub(crate) fn fill(
        &self,
        target: &str,
        decoding: Option<Decoding>,
        truncated: bool,
        strings: Vec<Value>,
    ) -> Map<String, Value> {
        let mut details = match decoding {
            Some(_) => self.decoded.clone(),
            None => self.plain.clone(),
        };
        let mut strings = Some(strings);
        for (key, value) in details.iter_mut() {
            match key.as_str() {
                "target" => *value = Value::from(target),
                "decoding" => *value = decoding.map_or(Value::Null, |how| how.as_str().into()),
                "truncated" => *value = Value::Bool(truncated),
                "strings" => *value = Value::Array(strings.take().unwrap_or_default()),
                _ => {}
            }
        }
        details
    }
}

/// `{"id": …, "offset": …, "length": …}` with null values, in that order.
static STRING_TEMPLATE: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let mut entry = Map::new();
    for key in ["id", "offset", "length"] {
        entry.insert(key.into(), Value::Null);
    }
    entry
});

/// One matched string of an alert: the pattern's identifier, the match's offset in the target
/// and its length (never the matched bytes).
pub(crate) fn matched_string(id: &str, offset: usize, length: usize) -> Value {
    let mut entry = STRING_TEMPLATE.clone();
    for (key, value) in entry.iter_mut() {
        *value = match key.as_str() {
            "id" => Value::from(id),
            "offset" => Value::from(offset),
            _ => Value::from(length),
        };
    }
    Value::Object(entry)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The details as they were built before the templates: key by key.
    fn inserted(
        target: &str,
        decoding: Option<Decoding>,
        truncated: bool,
        strings: Vec<Value>,
    ) -> Map<String, Value> {
        let mut details = Map::new();
        details.insert("yara_rule".into(), Value::from("web:sqli"));
        details.insert("rule_file".into(), Value::from("rules/yara/web.yar"));
        details.insert("target".into(), Value::from(target));
        details.insert("decoded".into(), Value::from(decoding.is_some()));
        if let Some(decoding) = decoding {
            details.insert("decoding".into(), Value::from(decoding.as_str()));
        }
        details.insert("truncated".into(), Value::from(truncated));
        details.insert("strings".into(), Value::Array(strings));
        details
    }

    #[test]
    fn filled_templates_equal_details_inserted_key_by_key_in_the_same_order() {
        let template = DetailsTemplate::new("web:sqli", "rules/yara/web.yar");
        let strings = || {
            vec![
                matched_string("$union", 41, 12),
                matched_string("$ua", 0, 6),
            ]
        };
        for (target, decoding, truncated) in [
            ("raw", None, false),
            ("url.original", Some(Decoding::Percent), true),
            ("CommandLine", Some(Decoding::Base64Utf16), false),
            ("file_content_base64", Some(Decoding::Base64), false),
        ] {
            let filled = template.fill(target, decoding, truncated, strings());
            let expected = inserted(target, decoding, truncated, strings());
            assert_eq!(filled, expected);
            // Same keys in the same order: the same JSON text.
            assert_eq!(
                serde_json::to_string(&filled).ok(),
                serde_json::to_string(&expected).ok()
            );
        }
        // A template is not changed by filling it.
        assert_eq!(
            template.fill("raw", None, false, Vec::new()),
            inserted("raw", None, false, Vec::new())
        );
    }

    #[test]
    fn a_matched_string_is_what_json_gives() {
        let built = matched_string("$a", 7, 3);
        let expected = json!({"id": "$a", "offset": 7, "length": 3});
        assert_eq!(built, expected);
        assert_eq!(
            serde_json::to_string(&built).ok(),
            serde_json::to_string(&expected).ok()
        );
    }
}
