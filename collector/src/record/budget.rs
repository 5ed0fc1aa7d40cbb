//! How much one batch may decode to.
//!
//! Decoding multiplies memory: a one-byte value tag becomes a `serde_json::Value` or a `fields`
//! entry of 32–96 bytes, and `0,` in JSON a `Value` too, so a batch at the size limits (16 MiB
//! on the wire, 128 MiB decompressed) could decode to several GiB. Storing multiplies it again:
//! every value of `fields` is indexed under its whole dotted path, so a long key over many
//! values (or many nested long keys) costs its length once per value. A signed batch comes from
//! an enrolled collector, but a collector can be compromised or broken: the server must not be
//! made to run out of memory by one. Every value and every owned key a batch decodes is
//! charged to one [`ValueBudget`], and so is the path of every value it will index; past
//! [`MAX_BATCH_VALUES`] or [`MAX_BATCH_PATH_BYTES`] the batch is refused before the rest is
//! read.

use serde_json::Value;

use crate::event::Fields;
use crate::CollectorError;

/// The most values and keys one batch decodes to: at ~100 bytes each, about 400 MB at worst.
/// Real batches stay far below: a syslog event has a few dozen values in a ~500-byte record
/// (its raw line included), so a collector's largest batch (8 MiB of records,
/// `batch_max_bytes`) holds a few hundred thousand. Only a batch of nothing but one-byte
/// values (no raw lines) could reach it.
pub const MAX_BATCH_VALUES: usize = 4_000_000;

/// The most bytes of dotted paths one batch's values are indexed under (each value counts its
/// path's length): what the stores build on top of the decoded events. A syslog value's path is
/// ~10–30 bytes, so a collector's largest batch of real events needs a few tens of MiB.
pub const MAX_BATCH_PATH_BYTES: usize = 256 << 20;

/// What is left of a batch's allowance of decoded values and indexed path bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueBudget {
    left: usize,
    path_bytes_left: usize,
}

impl ValueBudget {
    /// A batch's allowance: [`MAX_BATCH_VALUES`] and [`MAX_BATCH_PATH_BYTES`].
    pub fn for_batch() -> Self {
        ValueBudget {
            left: MAX_BATCH_VALUES,
            path_bytes_left: MAX_BATCH_PATH_BYTES,
        }
    }

    /// An allowance of `values` (and [`MAX_BATCH_PATH_BYTES`]).
    pub fn new(values: usize) -> Self {
        ValueBudget {
            left: values,
            path_bytes_left: MAX_BATCH_PATH_BYTES,
        }
    }

    /// No limit: for records this process wrote itself (its own buffer and archive).
    pub fn unlimited() -> Self {
        ValueBudget {
            left: usize::MAX,
            path_bytes_left: usize::MAX,
        }
    }

    /// Takes `values` from the allowance, or fails when there are not that many left.
    pub fn charge(&mut self, values: usize) -> Result<(), CollectorError> {
        match self.left.checked_sub(values) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(CollectorError::BadRecord(format!(
                "the batch decodes to more than {MAX_BATCH_VALUES} values and keys"
            ))),
        }
    }

    /// [`ValueBudget::charge`] for the JSON text `json` before it is parsed: an upper bound
    /// on the values and keys it holds ([`json_values`]).
    pub fn charge_json(&mut self, json: &[u8]) -> Result<(), CollectorError> {
        self.charge(json_values(json))
    }

    /// Takes from the path allowance the bytes of the dotted path of every value of `fields`
    /// (what indexing them builds), or fails once it is spent. Walks the decoded fields, which
    /// [`ValueBudget::charge`] has bounded already.
    pub fn charge_paths(&mut self, fields: &Fields) -> Result<(), CollectorError> {
        self.charge_path(fields_cost(fields).path_bytes)
    }

    fn charge_path(&mut self, bytes: usize) -> Result<(), CollectorError> {
        match self.path_bytes_left.checked_sub(bytes) {
            Some(left) => {
                self.path_bytes_left = left;
                Ok(())
            }
            None => Err(CollectorError::BadRecord(format!(
                "the batch's values would be indexed under more than {} MiB of field paths",
                MAX_BATCH_PATH_BYTES >> 20
            ))),
        }
    }
}

/// What one event's `fields` cost a server that receives them: see [`fields_cost`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldsCost {
    /// Values and keys decoded, counted as a binary record's reader charges them: an entry 2
    /// (its key and its value), an array item 1, an object member 2, each plus what its value
    /// holds.
    pub values: usize,
    /// Bytes of the dotted paths the values are indexed under: each leaf value (null
    /// included) counts its whole path.
    pub path_bytes: usize,
}

/// What decoding and indexing `fields` costs (saturating: a sum past `usize::MAX` stays there).
/// The collector holds every event to its ceiling with it before it is stored
/// (`record/ceiling.rs`), and the server charges the same paths to the batch.
pub fn fields_cost(fields: &Fields) -> FieldsCost {
    let mut cost = FieldsCost::default();
    let (values, path_bytes) = fields.flat_cost(|key, value| {
        cost.values = cost.values.saturating_add(1);
        cost.add_value(key.len(), value);
    });
    cost.values = cost.values.saturating_add(values);
    cost.path_bytes = cost.path_bytes.saturating_add(path_bytes);
    cost
}

impl FieldsCost {
    fn add_leaf(&mut self, path: usize) {
        self.values = self.values.saturating_add(1);
        self.path_bytes = self.path_bytes.saturating_add(path);
    }

    fn add_value(&mut self, path: usize, value: &Value) {
        match value {
            Value::Array(items) => {
                self.values = self.values.saturating_add(1);
                for item in items {
                    self.add_value(path, item);
                }
            }
            Value::Object(map) => {
                self.values = self.values.saturating_add(1);
                for (key, item) in map {
                    self.values = self.values.saturating_add(1);
                    self.add_value(path.saturating_add(1 + key.len()), item);
                }
            }
            _ => self.add_leaf(path),
        }
    }
}

/// At least as many as the values and keys JSON text `json` parses to: every value is the
/// first one, or follows a `[`, a `:` or a `,`, and every key precedes a `:`, outside strings.
/// (For text that is not JSON the parser fails anyway; the count only has to bound what it
/// could build before failing.)
pub fn json_values(json: &[u8]) -> usize {
    let mut count = 1;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b',' => count += 1,
            b':' => count += 2,
            _ => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Values and keys of a parsed JSON value, counted the way the bound counts them.
    fn values_and_keys(value: &serde_json::Value) -> usize {
        1 + match value {
            serde_json::Value::Array(items) => items.iter().map(values_and_keys).sum(),
            serde_json::Value::Object(map) => {
                map.values().map(|item| 1 + values_and_keys(item)).sum()
            }
            _ => 0,
        }
    }

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            // Strings full of the bytes the bound counts outside strings.
            "[a-z\\[\\]{}:,\"\\\\ ]{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z:,\\[\"]{0,6}", inner, 0..8)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The bound is never below what parsing builds, whatever the strings hold.
        #[test]
        fn the_bound_covers_every_value_and_key(value in json()) {
            let text = serde_json::to_vec(&value).unwrap_or_default();
            prop_assert!(json_values(&text) >= values_and_keys(&value));
        }
    }

    #[test]
    fn counts_only_outside_strings() {
        // The object, `a` and its array, `[` then two `,` for the zeros, then `,` and `:` for
        // `b` (the comma between members counts once more than needed); nothing inside the
        // strings, escaped quote included.
        assert_eq!(
            json_values(br#"{"a":[0,0,0],"b":"x,y:[z"}"#),
            1 + 2 + 3 + 1 + 2
        );
        assert_eq!(json_values(br#""a\"b,c""#), 1);
    }

    #[test]
    fn charges_until_the_allowance_is_spent() {
        let mut budget = ValueBudget::new(10);
        assert!(budget.charge(4).is_ok());
        assert!(budget.charge(6).is_ok());
        let error = budget.charge(1).map(|()| "").unwrap_or_else(|error| {
            if let CollectorError::BadRecord(message) = &error {
                assert!(message.contains("more than"), "{message}");
            }
            "refused"
        });
        assert_eq!(error, "refused");
        assert!(ValueBudget::unlimited().charge(usize::MAX).is_ok());
    }

    /// The values [`fields_cost`] counts are what a reader of the binary record charges, so
    /// the collector's per-event ceiling and the server's allowance count the same things.
    #[test]
    fn the_cost_counts_what_decoding_charges() {
        let line = br#"{"user":"an","n":[1,2,{"deep":{"er":[null,true]}}],"o":{},"a":[],"s":"x"}"#;
        let event = crate::parse_record(
            line,
            crate::InputFormat::Json,
            &crate::ParseContext::new("tcp"),
            1,
        );
        assert_eq!(event.format, crate::Format::Json);
        let record = crate::record::to_vec(&event).unwrap_or_default();
        let mut budget = ValueBudget::for_batch();
        let decoded = crate::record::decode_within(&record, &mut budget);
        assert!(decoded.is_ok(), "{decoded:?}");
        let cost = fields_cost(&event.fields);
        assert_eq!(MAX_BATCH_VALUES - budget.left, cost.values);
        // `user`, `n` ×2, `n.deep.er` ×2, `s`; the empty `o` and `a` index nothing.
        assert_eq!(
            cost.path_bytes,
            4 + 1 + 1 + 2 * "n.deep.er".len() + 1,
            "{:?}",
            event.fields
        );
    }

    #[test]
    fn paths_are_charged_once_per_value_under_their_whole_path() {
        let mut fields = Fields::new();
        fields.insert_text("abc".into(), "x");
        fields.insert(
            "de".into(),
            serde_json::json!({"fgh": [1, 2, {"i": null}], "j": true}),
        );
        // `abc`; `de.fgh` twice; `de.fgh.i`; `de.j`.
        let bytes = 3 + 6 + 6 + 8 + 4;
        let mut budget = ValueBudget::for_batch();
        budget.path_bytes_left = bytes;
        assert!(budget.charge_paths(&fields).is_ok());
        assert_eq!(budget.path_bytes_left, 0);
        budget.path_bytes_left = bytes - 1;
        let refused = budget
            .charge_paths(&fields)
            .err()
            .map(|error| error.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|error| error.contains("field paths")),
            "{refused:?}"
        );
    }
}
