//! How many values and keys one batch may decode to.
//!
//! Decoding multiplies memory: a one-byte value tag becomes a `serde_json::Value` or a `fields`
//! entry of 32–96 bytes, and `0,` in JSON a `Value` too, so a batch at the size limits (16 MiB
//! on the wire, 128 MiB decompressed) could decode to several GiB. A signed batch comes from an
//! enrolled collector, but a collector can be compromised or broken: the server must not be
//! made to run out of memory by one. Every value and every owned key a batch decodes is
//! charged to one [`ValueBudget`]; past [`MAX_BATCH_VALUES`] the batch is refused before the
//! rest is read.

use crate::CollectorError;

/// The most values and keys one batch decodes to: at ~100 bytes each, about 400 MB at worst.
/// A collector's batch cannot reach it: it holds at most 8 MiB of records
/// (`batch_max_bytes`), and a value takes at least two bytes there (its name and its tag,
/// or `0,` in JSON), while a syslog event has a few dozen values in ~500 bytes.
pub const MAX_BATCH_VALUES: usize = 4_000_000;

/// What is left of a batch's allowance of decoded values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueBudget {
    left: usize,
}

impl ValueBudget {
    /// A batch's allowance: [`MAX_BATCH_VALUES`].
    pub fn for_batch() -> Self {
        ValueBudget::new(MAX_BATCH_VALUES)
    }

    /// An allowance of `values`.
    pub fn new(values: usize) -> Self {
        ValueBudget { left: values }
    }

    /// No limit: for records this process wrote itself (its own buffer and archive).
    pub fn unlimited() -> Self {
        ValueBudget::new(usize::MAX)
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
}
