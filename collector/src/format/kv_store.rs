//! Storing a key=value record's tokens in the event's `fields`: a pair adds its value (a
//! repeated key collects its values in an array), a flag word is stored once.
//!
//! A netfilter line has ~20 pairs, nearly all under names `kv_names` knows. For those, one
//! bit per known name says whether `fields` holds it already, so a new pair is appended
//! without searching `fields` (the search, behind a 64-bit filter that ~20 keys fill a third
//! of, cost ~60 instructions a pair). Other keys, and a known key seen again, go through the
//! map's own lookup as before: the result is the same map either way (a differential test in
//! `kv.rs` holds the two to that).

use std::borrow::Cow;
use std::ops::Range;

use serde_json::Value;

use crate::event::Fields;
use crate::fields::{Entry, TextSource};
use crate::format::kv_known::KnownPositions;
use crate::format::kv_names::{
    name_and_bit_at, name_at, static_index, static_index_of_bytes, static_name, NAME_COUNT,
};

// One bit per known name must fit the bitset.
const _: () = assert!(NAME_COUNT <= 128);

/// `fields` with a record of which known names it holds.
pub(crate) struct PairStore<'f, 's> {
    fields: &'f mut Fields,
    /// The record's text, copied into the fields' text buffer once: values cut from it are
    /// stored as spans of that copy.
    source: TextSource<'s>,
    /// Bit `i % 64` of word `i / 64` set: `fields` holds the known name with index `i`
    /// (`kv_names::static_index`). Two words rather than a `u128`, whose shifts by a variable
    /// amount are several instructions each (~15 a pair for the test and the set).
    present: [u64; 2],
    /// Where the entries of `kv_known`'s keys are.
    known: KnownPositions,
}

impl<'f, 's> PairStore<'f, 's> {
    /// Starts storing into `fields` the pairs of `source` (values that are slices of it are
    /// stored as spans of one copy of it), noting which known names `fields` holds already
    /// (the syslog envelope's and the prefix's entries, a handful). Everything stored into
    /// `fields` from now on until the store is dropped must go through the store.
    pub(crate) fn new(fields: &'f mut Fields, source: &'s str) -> Self {
        let mut present = [0u64; 2];
        let mut known = KnownPositions::new();
        for (position, index) in fields
            .keys()
            .enumerate()
            .filter_map(|(position, key)| Some((position, static_index(key)?)))
        {
            if let Some(word) = present.get_mut(index / 64) {
                *word |= 1 << (index % 64);
            }
            known.note(index, position);
        }
        let source = fields.text_source(source);
        PairStore {
            fields,
            source,
            present,
            known,
        }
    }

    /// Where the entries of `kv_known`'s keys are, once every pair is stored.
    pub(crate) fn into_known_positions(self) -> KnownPositions {
        self.known
    }

    /// Marks the known name `index` as present, its entry about to be pushed (the next
    /// position); true when it was absent before. (An index past the bits, which `kv_names`
    /// never gives, answers false: the pair then takes the map's own lookup.)
    #[inline]
    fn newly_present(&mut self, index: usize) -> bool {
        let Some(word) = self.present.get_mut(index / 64) else {
            return false;
        };
        let bit = 1u64 << (index % 64);
        let absent = *word & bit == 0;
        if absent {
            *word |= bit;
            self.known.note(index, self.fields.len());
        }
        absent
    }

    /// `key` as a `'static` name when it is a known name `fields` does not hold yet (it is
    /// then marked as held): such a pair is appended without a lookup.
    #[inline]
    fn newly_present_name(&mut self, key: &[u8]) -> Option<&'static str> {
        let index = static_index_of_bytes(key)?;
        self.newly_present(index).then(|| name_at(index)).flatten()
    }

    /// Adds a pair; a key already present collects its values in an array, in order.
    #[cfg(test)]
    pub(crate) fn pair(&mut self, key: &str, value: Value) {
        match self.newly_present_name(key.as_bytes()) {
            Some(name) => self.fields.push_absent(Cow::Borrowed(name), value),
            None => self.fields.insert_repeatable(key, value, static_name),
        }
    }

    /// [`PairStore::pair`] for a text value (a quoted value whose escapes were resolved), kept
    /// in the fields' text buffer rather than as a `Value::String` of its own.
    #[inline]
    pub(crate) fn text_pair(&mut self, key: &str, text: &str) {
        match self.newly_present_name(key.as_bytes()) {
            Some(name) => {
                self.fields
                    .push_absent_text_from(Cow::Borrowed(name), text, Some(&self.source))
            }
            None => {
                self.fields
                    .insert_repeatable_text_from(key, text, static_name, Some(&self.source))
            }
        }
    }

    /// [`PairStore::text_pair`] of the value at `value` of the source text, a span of its
    /// copy: the pair of nearly every token, which the tokenizer hands over as positions.
    /// `known` is the key's index among the common names when the tokenizer has found it.
    #[inline]
    pub(crate) fn span_pair(&mut self, key: &[u8], known: Option<usize>, value: Range<usize>) {
        let index = match known {
            Some(index) => Some(index),
            None => static_index_of_bytes(key),
        };
        let name = index
            .filter(|index| self.newly_present(*index))
            .and_then(name_and_bit_at);
        match name {
            Some((name, bit)) => {
                self.fields
                    .push_absent_span(Cow::Borrowed(name), bit, &self.source, value)
            }
            None => {
                let text = self.source.text(value);
                // Key bytes are ASCII (the tokenizer's key class), so this never replaces a
                // byte; lossy rather than a silent empty key should that change.
                let key = String::from_utf8_lossy(key);
                self.fields.insert_repeatable_text_from(
                    &key,
                    text,
                    static_name,
                    Some(&self.source),
                );
            }
        }
    }

    /// Adds a flag word with its value (`true` or its argument), unless the word is present.
    pub(crate) fn flag(&mut self, word: &str, value: Value) {
        match static_index(word) {
            Some(index) => {
                if self.newly_present(index) {
                    if let Some(name) = name_at(index) {
                        self.fields.push_absent(Cow::Borrowed(name), value);
                    }
                }
            }
            None => {
                if let Entry::Vacant(vacant) = self.fields.entry(word) {
                    vacant.insert(value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The same through `Fields`' own lookups only (what `kv.rs` did before the store).
    fn reference(fields: &mut Fields, token: &(bool, String, Value)) {
        let (is_flag, key, value) = token;
        if *is_flag {
            if !fields.contains_key(key) {
                fields.insert(Cow::Owned(key.clone()), value.clone());
            }
            return;
        }
        match fields.get_mut(key) {
            None => {
                fields.insert(Cow::Owned(key.clone()), value.clone());
            }
            Some(Value::Array(values)) => values.push(value.clone()),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value.clone()]);
            }
        }
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(
                &[
                    "SRC",
                    "DST",
                    "LEN",
                    "SYN",
                    "DF",
                    "action",
                    "eventtime",
                    "srcintfrole"
                ][..]
            )
            .prop_map(str::to_owned),
            "[A-Za-z_.]{1,4}",
            Just("syslog.priority".to_owned()),
        ]
    }

    fn tokens() -> impl Strategy<Value = Vec<(bool, String, Value)>> {
        proptest::collection::vec(
            (
                proptest::bool::weighted(0.2),
                key(),
                prop_oneof![
                    "[0-9a-z]{0,3}".prop_map(Value::from),
                    Just(Value::Bool(true)),
                ],
            ),
            0..40,
        )
    }

    proptest! {
        /// Whatever `fields` held before and whatever the tokens, the store leaves the same
        /// map (same entries, same order, same JSON) as lookups by name.
        #[test]
        fn store_equals_lookups_by_name(before in tokens(), during in tokens()) {
            let mut expected = Fields::new();
            for token in &before {
                reference(&mut expected, token);
            }
            let mut stored = expected.clone();
            for token in &during {
                reference(&mut expected, token);
            }
            let mut store = PairStore::new(&mut stored, "");
            for (is_flag, key, value) in &during {
                match value {
                    _ if *is_flag => store.flag(key, value.clone()),
                    Value::String(text) => store.text_pair(key, text),
                    _ => store.pair(key, value.clone()),
                }
            }
            prop_assert_eq!(
                serde_json::to_string(&stored).unwrap_or_default(),
                serde_json::to_string(&expected).unwrap_or_default()
            );
            let stored_keys: Vec<&str> = stored.keys().collect();
            let expected_keys: Vec<&str> = expected.keys().collect();
            prop_assert_eq!(stored_keys, expected_keys);
            for (key, value) in &expected {
                prop_assert_eq!(stored.get(key), Some(value));
            }
        }
    }
}
