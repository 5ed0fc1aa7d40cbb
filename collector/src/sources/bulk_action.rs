//! Telling the action lines of an Elasticsearch `_bulk` body from its documents.
//!
//! Every other line of what Winlogbeat sends is an action line
//! (`{"create":{"_index":"winlogbeat-8.17.0"}}`). Reading one into a `serde_json` map, as a
//! first version did, built two ordered maps, hashed their names and copied every name and
//! value, for an answer of one word. Here the line is read by serde without building the
//! outer map: the first member's name is compared with the actions as it is read, and only
//! its value (a member or two) is built.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::bulk_reply::action_named;

/// Longest line read as a bulk action: real ones are well under a kilobyte
/// (`{"create":{"_index":"winlogbeat-8.17.0","pipeline":"…"}}`). A longer line is a document,
/// and is never parsed whole just to find that out.
pub(crate) const MAX_ACTION_LINE: usize = 4096;

/// The action of a bulk action line: an object with exactly one member, named `index`,
/// `create`, `update` or `delete`, whose value is an object (`{"index":{"_index":"x"}}`).
/// Anything else is a document: a log record whose first key happens to be `index` must not
/// be taken for an action (and lose itself, or the line after it).
pub(crate) fn bulk_action(line: &[u8]) -> Option<&'static str> {
    if line.len() > MAX_ACTION_LINE {
        return None;
    }
    // Anything but an object, and an object left unread below, is an error here: a document.
    serde_json::from_slice::<ActionLine>(line).ok()?.0
}

/// What a line says as an action line: its action, or `None` when it is not one.
struct ActionLine(Option<&'static str>);

impl<'de> Deserialize<'de> for ActionLine {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ActionLineVisitor)
    }
}

struct ActionLineVisitor;

impl<'de> Visitor<'de> for ActionLineVisitor {
    type Value = ActionLine;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a bulk action line")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<ActionLine, A::Error> {
        let Some(ActionName(action)) = members.next_key()? else {
            return Ok(ActionLine(None));
        };
        // The value is read whole (a member or two, `{"_index":"…"}`), not skipped: what
        // serde_json cannot read (a number out of range, a lone surrogate, invalid UTF-8,
        // nesting past its limit) keeps the line a document, kept rather than lost.
        let value: serde_json::Value = members.next_value()?;
        // A second member makes it a document; the rest, left unread, ends the reading.
        let alone = members.next_key::<IgnoredAny>()?.is_none();
        Ok(ActionLine(action.filter(|_| value.is_object() && alone)))
    }
}

/// A member's name, compared with the actions where it lies in the line (a name with
/// escapes is handed over resolved): no copy.
struct ActionName(Option<&'static str>);

impl<'de> Deserialize<'de> for ActionName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = ActionName;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a member name")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<ActionName, E> {
                Ok(ActionName(action_named(name)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first version: the line read into a map, then looked at.
    fn action_by_map(line: &[u8]) -> Option<&'static str> {
        if line.len() > MAX_ACTION_LINE {
            return None;
        }
        let object =
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line).ok()?;
        let mut members = object.iter();
        let (name, value) = members.next()?;
        if members.next().is_some() || !value.is_object() {
            return None;
        }
        action_named(name)
    }

    #[test]
    fn beats_action_lines_and_lookalike_documents() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"create":{"_index":"winlogbeat-8.17.0"}}"#,
                Some("create"),
            ),
            (r#"{"index":{}}"#, Some("index")),
            (r#" { "delete" : { "_id" : "1" } } "#, Some("delete")),
            (
                r#"{"update":{"_id":"1","retry_on_conflict":3}}"#,
                Some("update"),
            ),
            (r#"{"cre\u0061te":{}}"#, Some("create")),
            (r#"{"index":{"a":[1,{"b":null}]}}"#, Some("index")),
            // Documents.
            (r#"{"index":"web-1","message":"GET /"}"#, None),
            (r#"{"index":{},"message":"x"}"#, None),
            (r#"{"index":[]}"#, None),
            (r#"{"index":null}"#, None),
            (r#"{"upsert":{}}"#, None),
            (r#"{}"#, None),
            (r#"[{"index":{}}]"#, None),
            (r#""index""#, None),
            (r#"{"index":{}"#, None),
            // A repeated name: a map keeps the last, and took this for an action; as written it
            // has two members, so it is kept as a document rather than lost.
            (r#"{"index":{},"index":{}}"#, None),
            (r#"{"index":{}} trailing"#, None),
            // Values serde_json does not read: the line is a document, as before.
            (r#"{"index":{"a":1e400}}"#, None),
            (r#"{"index":{"a":"\ud800"}}"#, None),
            ("not json", None),
        ];
        for (line, expected) in cases {
            assert_eq!(bulk_action(line.as_bytes()), *expected, "{line}");
        }
        let long = format!(
            r#"{{"index":{{"_index":"{}"}}}}"#,
            "x".repeat(MAX_ACTION_LINE)
        );
        assert_eq!(bulk_action(long.as_bytes()), None);
        assert_eq!(
            bulk_action(b"{\"index\":{\"a\":\"\xff\"}}"),
            None,
            "invalid UTF-8"
        );
        let deep = format!(
            r#"{{"index":{{"a":{}1{}}}}}"#,
            "[".repeat(130),
            "]".repeat(130)
        );
        assert_eq!(
            bulk_action(deep.as_bytes()),
            None,
            "past serde_json's nesting limit"
        );
        assert_eq!(action_by_map(deep.as_bytes()), None);
    }

    /// Lines made of JSON's pieces and the actions' names: the reading without a map answers
    /// what reading into a map answered, whatever the line, but for a repeated name (see
    /// above), which lines naming an action twice are left out for.
    fn json_piece() -> impl proptest::strategy::Strategy<Value = &'static str> {
        proptest::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            " ",
            "\"index\"",
            "\"create\"",
            "\"delete\"",
            "\"update\"",
            "\"x\"",
            "1",
            "-2.5e3",
            "1e400",
            "\"\\ud800\"",
            "null",
            "true",
            "\"a\\\"b\"",
            "\"",
            "\\",
            "\u{e9}",
        ])
    }

    proptest::proptest! {
        #[test]
        fn the_same_answer_as_a_map(pieces in proptest::collection::vec(json_piece(), 0..16)) {
            let line = pieces.concat();
            let by_map = action_by_map(line.as_bytes());
            proptest::prop_assume!(by_map.is_none_or(|action| line.matches(action).count() == 1));
            proptest::prop_assert_eq!(
                bulk_action(line.as_bytes()),
                by_map,
                "{}", line
            );
        }

        #[test]
        fn the_same_answer_as_a_map_on_well_formed_lines(
            name in proptest::sample::select(vec!["index", "create", "delete", "update", "x", ""]),
            value in proptest::sample::select(vec![r#"{}"#, r#"{"_index":"a"}"#, r#"[]"#, "1", "null", r#""s""#]),
            rest in proptest::sample::select(vec!["", r#","m":1"#, r#","n":{}"#]),
        ) {
            let line = format!(r#"{{"{name}":{value}{rest}}}"#);
            proptest::prop_assert_eq!(
                bulk_action(line.as_bytes()),
                action_by_map(line.as_bytes()),
                "{}", line
            );
        }
    }
}
