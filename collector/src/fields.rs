//! [`Fields`]: the event's insertion-ordered map of parsed key/values.
//!
//! It replaces `serde_json::Map` (an `IndexMap` with SipHash, because `evtx` turns on
//! serde_json's `preserve_order`), whose entries each cost a SipHash, an owned `String` key and
//! an index push; an RFC 5424 record made ~25 allocations (BENCHMARKS.md "Parsing"). Here:
//!
//! - keys are `Cow<'static, str>`: the names parsers know (`syslog.priority`, netfilter's
//!   `SRC`, …) are stored without allocating;
//! - entries live in one `Vec` in insertion order; a small map is searched linearly (most
//!   events have fewer than ~24 entries, and a length-first comparison rejects most keys at
//!   once), after a 64-bit filter of the keys present has said the key may be there (most
//!   lookups a parser makes are for keys it is about to add), and a seeded foldhash index is
//!   built once the map grows past [`INDEX_THRESHOLD`], so an object with 100,000 keys from
//!   outside stays linear to build and to look up;
//! - the semantics follow `serde_json::Map` with `preserve_order`: `insert` of an existing key
//!   replaces its value in place (first position kept), `remove` swaps the last entry into the
//!   removed one's place, equality ignores order, and (de)serialization reads and writes
//!   exactly the same JSON object.

use std::borrow::Cow;
use std::fmt;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A field name: borrowed when the parser knows it, owned when it came from the record.
pub type Key = Cow<'static, str>;

/// Above this many entries, lookups go through a hash index instead of a linear scan.
pub const INDEX_THRESHOLD: usize = 24;

/// The deepest nesting `fields` may hold ([`Fields::depth`]). An event is stored and sent
/// wrapped in a few more levels (the event object, a batch, an alert), and serde_json reads at
/// most 127 levels back: an event nested just under that on the way in would be stored fine
/// and then fail every search page that holds it. Parsers refuse deeper documents (kept raw,
/// with a parse error) and the server refuses records that hold deeper `fields`.
pub const MAX_DEPTH: usize = 100;

/// The event's parsed key/values in insertion order (see the module docs).
#[derive(Clone, Default)]
pub struct Fields {
    entries: Vec<(Key, Value)>,
    /// Positions in `entries`, hashed by key; only while `entries` is longer than
    /// [`INDEX_THRESHOLD`].
    index: Option<HashIndex>,
    /// One bit per key ever pushed ([`key_bit`]): a key whose bit is clear is absent, so most
    /// lookups of an absent key (every pair a key=value parser adds asks first) skip the
    /// linear scan. Removals leave bits set (a stale bit only costs the scan); only
    /// [`Fields::clear`] resets them.
    key_bits: u64,
}

/// The bit of [`Fields::key_bits`] for `key`, from its length and its first and last bytes
/// (what tells short device keys apart: `SRC`/`SPT`/`SYN` differ in the last byte). Not a
/// defence against chosen keys, and it need not be: a collision only costs the scan that
/// would have run anyway.
#[inline]
fn key_bit(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let (first, last) = match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => (u64::from(*first), u64::from(*last)),
        _ => (0, 0),
    };
    let mixed =
        (first | last << 8 | (bytes.len() as u64) << 16).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    1 << (mixed >> 58)
}

/// A hash index over the entries' keys. Seeded per process (keys come from outside, so an
/// unseeded hash would let a record force collisions).
#[derive(Clone)]
struct HashIndex {
    table: HashTable<usize>,
    hasher: foldhash::fast::RandomState,
}

impl HashIndex {
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn build(entries: &[(Key, Value)]) -> Self {
        let mut index = HashIndex {
            table: HashTable::with_capacity(entries.len() * 2),
            hasher: foldhash::fast::RandomState::default(),
        };
        for position in 0..entries.len() {
            index.push(entries, position);
        }
        index
    }

    /// Records the entry at `position` (already in `entries`).
    fn push(&mut self, entries: &[(Key, Value)], position: usize) {
        let Some((key, _)) = entries.get(position) else {
            return;
        };
        let hash = self.hash(key);
        let hasher = &self.hasher;
        self.table.insert_unique(hash, position, |&other| {
            entries
                .get(other)
                .map_or(0, |(key, _)| hasher.hash_one(&**key))
        });
    }

    fn find(&self, entries: &[(Key, Value)], key: &str) -> Option<usize> {
        self.table
            .find(self.hash(key), |&position| {
                entries
                    .get(position)
                    .is_some_and(|(other, _)| **other == *key)
            })
            .copied()
    }

    /// Changes the recorded position of `key` from `from` to `to`, or forgets it (`to: None`).
    fn repoint(&mut self, key: &str, from: usize, to: Option<usize>) {
        let hash = self.hash(key);
        if let Ok(entry) = self.table.find_entry(hash, |&position| position == from) {
            match to {
                Some(to) => *entry.into_mut() = to,
                None => {
                    entry.remove();
                }
            }
        }
    }
}

/// How deep `value` nests (0 for a scalar). Recursion is bounded by what serde_json and the
/// record reader accept (at most 128 levels).
pub(crate) fn value_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        Value::Object(members) => 1 + members.values().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Key equality for the linear scan: the length and the first byte reject nearly every other
/// key (netfilter's `SRC`, `DST`, `SPT`, `DPT`, `LEN`, `TOS`, `TTL` are all three bytes) without
/// calling `memcmp`, which showed in profiles.
#[inline]
fn same_key(stored: &str, key: &str) -> bool {
    let (stored, key) = (stored.as_bytes(), key.as_bytes());
    stored.len() == key.len() && stored.first() == key.first() && stored == key
}

impl Fields {
    /// An empty map.
    pub fn new() -> Self {
        Fields::default()
    }

    /// An empty map with room for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Fields {
            entries: Vec::with_capacity(capacity),
            index: None,
            key_bits: 0,
        }
    }

    /// Makes room for `additional` more entries (parsers that can count their pairs call it
    /// once instead of letting the entries grow by doubling).
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    /// How deep the values nest: 0 when every value is a scalar, 1 when some value is an
    /// object or array of scalars, and so on.
    pub fn depth(&self) -> usize {
        self.entries
            .iter()
            .map(|(_, value)| value_depth(value))
            .max()
            .unwrap_or(0)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.index = None;
        self.key_bits = 0;
    }

    /// The position of `key`, if present.
    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.find(&self.entries, key),
            None if self.key_bits & key_bit(key) == 0 => None,
            None => self
                .entries
                .iter()
                .position(|(other, _)| same_key(other, key)),
        }
    }

    /// [`Fields::position`] with the key's [`key_bit`] already computed (for a caller that
    /// also pushes the key, which needs the bit too).
    #[inline]
    fn position_with_bit(&self, key: &str, bit: u64) -> Option<usize> {
        match &self.index {
            Some(index) => index.find(&self.entries, key),
            None if self.key_bits & bit == 0 => None,
            None => self
                .entries
                .iter()
                .position(|(other, _)| same_key(other, key)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let position = self.position(key)?;
        self.entries.get(position).map(|(_, value)| value)
    }

    /// The value of `key`, mutable.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let position = self.position(key)?;
        self.entries.get_mut(position).map(|(_, value)| value)
    }

    /// The stored key and value of `key`.
    pub fn get_key_value(&self, key: &str) -> Option<(&str, &Value)> {
        let position = self.position(key)?;
        self.entries
            .get(position)
            .map(|(key, value)| (&**key, value))
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Appends an entry whose key is known to be absent.
    #[inline]
    fn push_new(&mut self, key: Key, value: Value) -> usize {
        let bit = key_bit(&key);
        self.push_new_with_bit(key, bit, value)
    }

    /// [`Fields::push_new`] with the key's [`key_bit`] already computed.
    #[inline]
    fn push_new_with_bit(&mut self, key: Key, bit: u64, value: Value) -> usize {
        let position = self.entries.len();
        self.key_bits |= bit;
        self.entries.push((key, value));
        if self.index.is_some() || self.entries.len() > INDEX_THRESHOLD {
            self.index_last();
        }
        position
    }

    /// Records the last entry in the hash index, building the index when the map has just
    /// grown past [`INDEX_THRESHOLD`]. Out of line: most maps never get there, and the push
    /// above, which every parser calls per field, stays small.
    #[cold]
    #[inline(never)]
    fn index_last(&mut self) {
        let last = self.entries.len().saturating_sub(1);
        match &mut self.index {
            Some(index) => index.push(&self.entries, last),
            None => self.index = Some(HashIndex::build(&self.entries)),
        }
    }

    /// Sets `key` to `value`. An existing key keeps its position and its value is replaced
    /// (returned); a new key goes last. The same as `serde_json::Map::insert`.
    pub fn insert(&mut self, key: Key, value: Value) -> Option<Value> {
        match self.position(&key) {
            Some(position) => self
                .entries
                .get_mut(position)
                .map(|(_, old)| std::mem::replace(old, value)),
            None => {
                self.push_new(key, value);
                None
            }
        }
    }

    /// Appends an entry under a key the caller knows to be absent (a parser that keeps track
    /// of the names it has stored), without looking it up. The key must really be absent: a
    /// second entry with the same key would break the map (debug builds check).
    pub(crate) fn push_absent(&mut self, key: Key, value: Value) {
        debug_assert!(!self.contains_key(&key), "{key} is present");
        self.push_new(key, value);
    }

    /// Adds `value` under `key`; when `key` is present already, its values are collected in
    /// an array in order (key=value records write some keys twice: iptables' `LEN=`). What
    /// `entry` and then an insert or a push do, in one call that tests the key filter once
    /// and moves the value once: key=value parsers call it for every pair. `name` gives the
    /// key as a `'static` string when the parser knows it, so the key is not copied.
    pub(crate) fn insert_repeatable(
        &mut self,
        key: &str,
        value: Value,
        name: impl FnOnce(&str) -> Option<&'static str>,
    ) {
        let bit = key_bit(key);
        match self.position_with_bit(key, bit) {
            None => {
                // `name` gives the same text as `key` (the caller's promise, checked in
                // debug builds): comparing again would cost a `memcmp` per pair.
                let key = match name(key) {
                    Some(name) => {
                        debug_assert_eq!(name, key);
                        Cow::Borrowed(name)
                    }
                    None => Cow::Owned(key.to_owned()),
                };
                self.push_new_with_bit(key, bit, value);
            }
            Some(position) => {
                if let Some((_, existing)) = self.entries.get_mut(position) {
                    match existing {
                        Value::Array(values) => values.push(value),
                        existing => {
                            let first = existing.take();
                            *existing = Value::Array(vec![first, value]);
                        }
                    }
                }
            }
        }
    }

    /// Removes `key` and returns its value. Like `serde_json::Map::remove` with
    /// `preserve_order` (a swap remove): the last entry takes the removed one's position.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.remove_entry(key).map(|(_, value)| value)
    }

    /// Removes `key` and returns the stored key and value (a swap remove, see
    /// [`Fields::remove`]).
    pub fn remove_entry(&mut self, key: &str) -> Option<(Key, Value)> {
        let position = self.position(key)?;
        let last = self.entries.len() - 1;
        if let Some(index) = &mut self.index {
            index.repoint(key, position, None);
            if position != last {
                if let Some((moved, _)) = self.entries.get(last) {
                    index.repoint(moved, last, Some(position));
                }
            }
        }
        Some(self.entries.swap_remove(position))
    }

    /// Removes `key` and returns its value, keeping the order of the other entries (what
    /// `IndexMap::shift_remove` does; O(n)). For parsers that take a document apart and keep
    /// the rest as written: the order is what `citysoc parse` shows.
    pub fn shift_remove(&mut self, key: &str) -> Option<Value> {
        let position = self.position(key)?;
        let (_, value) = self.entries.remove(position);
        if self.index.is_some() {
            // Every later position moved down by one: rebuilding is simpler than repointing
            // each, and documents this large are rare.
            self.index =
                (self.entries.len() > INDEX_THRESHOLD).then(|| HashIndex::build(&self.entries));
        }
        Some(value)
    }

    /// The entry of `key`, for one lookup to serve both "is it there" and "set it". The key is
    /// borrowed: it is copied only if a vacant entry is filled.
    pub fn entry<'a, 'k>(&'a mut self, key: &'k str) -> Entry<'a, 'k> {
        match self.position(key) {
            Some(position) => Entry::Occupied(OccupiedEntry {
                fields: self,
                position,
            }),
            None => Entry::Vacant(VacantEntry { fields: self, key }),
        }
    }

    /// The entries in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// The entries in order, values mutable.
    pub fn iter_mut(&mut self) -> IterMut<'_> {
        IterMut(self.entries.iter_mut())
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.entries.iter().map(|(key, _)| &**key)
    }

    /// The values in order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator {
        self.entries.iter().map(|(_, value)| value)
    }

    /// The values in order, mutable.
    pub fn values_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut Value> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, value)| value)
    }

    /// The same entries as a `serde_json::Map` (for callers that need a `Value::Object`).
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(key, value)| (key.to_owned(), value.clone()))
            .collect()
    }

    /// Converts into a `serde_json::Map` with the same entries in the same order.
    pub fn into_map(self) -> Map<String, Value> {
        self.entries
            .into_iter()
            .map(|(key, value)| (key.into_owned(), value))
            .collect()
    }
}

/// One entry of [`Fields::entry`].
pub enum Entry<'a, 'k> {
    /// The key is absent.
    Vacant(VacantEntry<'a, 'k>),
    /// The key is present.
    Occupied(OccupiedEntry<'a>),
}

impl<'a> Entry<'a, '_> {
    /// The value, inserting `default` first when the key is absent.
    pub fn or_insert(self, default: Value) -> &'a mut Value {
        match self {
            Entry::Vacant(vacant) => vacant.insert(default),
            Entry::Occupied(occupied) => occupied.into_mut(),
        }
    }
}

/// An absent key of [`Fields::entry`].
pub struct VacantEntry<'a, 'k> {
    fields: &'a mut Fields,
    key: &'k str,
}

impl<'a> VacantEntry<'a, '_> {
    /// Inserts `value` under the entry's key (copied now), last.
    pub fn insert(self, value: Value) -> &'a mut Value {
        let position = self.fields.push_new(Cow::Owned(self.key.to_owned()), value);
        &mut self.fields.entries[position].1
    }
}

impl<'a, 'k> VacantEntry<'a, 'k> {
    /// The key the entry was looked up with.
    pub fn key(&self) -> &'k str {
        self.key
    }

    /// Inserts `value` under `name`, the entry's key as a `'static` string the caller knows,
    /// so the key is not copied. Should `name` differ from the entry's key, the entry's key is
    /// copied as by [`VacantEntry::insert`].
    pub fn insert_static(self, name: &'static str, value: Value) -> &'a mut Value {
        if name != self.key {
            return self.insert(value);
        }
        let position = self.fields.push_new(Cow::Borrowed(name), value);
        &mut self.fields.entries[position].1
    }
}

/// A present key of [`Fields::entry`].
pub struct OccupiedEntry<'a> {
    fields: &'a mut Fields,
    position: usize,
}

impl<'a> OccupiedEntry<'a> {
    /// The value.
    pub fn get(&self) -> &Value {
        &self.fields.entries[self.position].1
    }

    /// The value, mutable.
    pub fn get_mut(&mut self) -> &mut Value {
        &mut self.fields.entries[self.position].1
    }

    /// The value, mutable for as long as the map is borrowed.
    pub fn into_mut(self) -> &'a mut Value {
        &mut self.fields.entries[self.position].1
    }

    /// Replaces the value, returning the old one.
    pub fn insert(&mut self, value: Value) -> Value {
        std::mem::replace(self.get_mut(), value)
    }
}

/// Iterator over `(&str, &Value)` in order.
pub struct Iter<'a>(std::slice::Iter<'a, (Key, Value)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(key, value)| (&**key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(key, value)| (&**key, value))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Iterator over `(&str, &mut Value)` in order.
pub struct IterMut<'a>(std::slice::IterMut<'a, (Key, Value)>);

impl<'a> Iterator for IterMut<'a> {
    type Item = (&'a str, &'a mut Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(key, value)| (&**key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for IterMut<'_> {}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a str, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Fields {
    type Item = (&'a str, &'a mut Value);
    type IntoIter = IterMut<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl IntoIterator for Fields {
    type Item = (Key, Value);
    type IntoIter = std::vec::IntoIter<(Key, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: Into<Key>> Extend<(K, Value)> for Fields {
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        for (key, value) in iter {
            self.insert(key.into(), value);
        }
    }
}

impl<K: Into<Key>> FromIterator<(K, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut fields = Fields::new();
        fields.extend(iter);
        fields
    }
}

impl From<Map<String, Value>> for Fields {
    /// Takes the map's entries in order (its keys are already distinct, so nothing is looked
    /// up: linear even for a huge object).
    fn from(map: Map<String, Value>) -> Self {
        let entries: Vec<(Key, Value)> = map
            .into_iter()
            .map(|(key, value)| (Cow::Owned(key), value))
            .collect();
        let index = (entries.len() > INDEX_THRESHOLD).then(|| HashIndex::build(&entries));
        let key_bits = entries.iter().fold(0, |bits, (key, _)| bits | key_bit(key));
        Fields {
            entries,
            index,
            key_bits,
        }
    }
}

impl From<Fields> for Map<String, Value> {
    fn from(fields: Fields) -> Self {
        fields.into_map()
    }
}

impl From<Fields> for Value {
    fn from(fields: Fields) -> Self {
        Value::Object(fields.into_map())
    }
}

/// `Null` for absent keys (`serde_json::Map` would panic; input from outside must not).
static NULL: Value = Value::Null;

impl std::ops::Index<&str> for Fields {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

impl PartialEq for Fields {
    /// Order-insensitive, as `serde_json::Map` with `preserve_order` (an `IndexMap`) compares.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(key, value)| other.get(key) == Some(value))
    }
}

impl Eq for Fields {}

impl fmt::Debug for Fields {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Fields {
    /// The same object `serde_json::Map` writes: entries in order.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Fields {
    /// Reads a JSON object as `serde_json::Map` does: a repeated key keeps its first position
    /// and its last value.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map")
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Fields, E> {
                Ok(Fields::new())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Fields, A::Error> {
                let mut fields = Fields::with_capacity(access.size_hint().unwrap_or(0).min(4096));
                while let Some((key, value)) = access.next_entry::<String, Value>()? {
                    fields.insert(Cow::Owned(key), value);
                }
                Ok(fields)
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn insert_replaces_in_place_like_serde_json() {
        let mut ours = Fields::new();
        let mut theirs = Map::new();
        for (key, value) in [("a", 1), ("b", 2), ("a", 3), ("c", 4)] {
            assert_eq!(
                ours.insert(key.into(), json!(value)),
                theirs.insert(key.to_owned(), json!(value))
            );
        }
        assert_eq!(
            serde_json::to_string(&ours).ok(),
            serde_json::to_string(&theirs).ok()
        );
        assert_eq!(ours.to_map(), theirs);
    }

    #[test]
    fn shift_remove_keeps_order_like_index_map() {
        // Below and above the hash index threshold: positions after the removed key move.
        for count in [4, INDEX_THRESHOLD + 8] {
            let mut ours = Fields::new();
            let mut theirs = Map::new();
            for number in 0..count {
                ours.insert(format!("k{number}").into(), json!(number));
                theirs.insert(format!("k{number}"), json!(number));
            }
            assert_eq!(ours.shift_remove("k1"), theirs.shift_remove("k1"));
            assert_eq!(ours.shift_remove("absent"), None);
            let ours_keys: Vec<&str> = ours.keys().collect();
            let theirs_keys: Vec<&str> = theirs.keys().map(String::as_str).collect();
            assert_eq!(ours_keys, theirs_keys);
            for number in 2..count {
                assert_eq!(ours.get(&format!("k{number}")), Some(&json!(number)));
            }
        }
    }

    #[test]
    fn remove_swaps_like_serde_json_preserve_order() {
        let mut ours = Fields::new();
        let mut theirs = Map::new();
        for key in ["a", "b", "c", "d"] {
            ours.insert(key.into(), json!(key));
            theirs.insert(key.to_owned(), json!(key));
        }
        assert_eq!(ours.remove("b"), theirs.remove("b"));
        assert_eq!(ours.remove("zz"), theirs.remove("zz"));
        let ours_keys: Vec<&str> = ours.keys().collect();
        let theirs_keys: Vec<&str> = theirs.keys().map(String::as_str).collect();
        assert_eq!(ours_keys, theirs_keys);
    }

    #[test]
    fn deserialize_keeps_first_position_and_last_value() {
        let text = r#"{"a":1,"b":2,"a":3}"#;
        let ours: Fields = serde_json::from_str(text).unwrap_or_default();
        let theirs: Map<String, Value> = serde_json::from_str(text).unwrap_or_default();
        assert_eq!(
            serde_json::to_string(&ours).ok(),
            serde_json::to_string(&theirs).ok()
        );
        assert_eq!(ours.get("a"), Some(&json!(3)));
    }

    #[test]
    fn a_huge_object_parses_and_looks_up() {
        // 100,000 distinct keys plus a repeat of each of the first thousand: with a linear
        // scan per insert this would be quadratic; the index keeps it linear.
        let mut text = String::from("{");
        for number in 0..100_000 {
            text.push_str(&format!("\"key{number}\":{number},"));
        }
        for number in 0..1_000 {
            text.push_str(&format!("\"key{number}\":\"again\","));
        }
        text.push_str("\"last\":true}");
        let fields: Fields = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(fields.len(), 100_001);
        assert_eq!(fields.get("key99999"), Some(&json!(99_999)));
        assert_eq!(fields.get("key5"), Some(&json!("again")));
        assert_eq!(fields.get("key1000"), Some(&json!(1000)));
        assert_eq!(fields.keys().nth(5), Some("key5"));
        assert_eq!(fields.get("last"), Some(&json!(true)));
        assert!(!fields.contains_key("key100000"));
        let through_map = Fields::from(fields.to_map());
        assert_eq!(through_map, fields);
        assert_eq!(through_map.get("key77777"), Some(&json!(77_777)));
    }

    #[test]
    fn index_survives_removals() {
        let mut fields = Fields::new();
        for number in 0..100 {
            fields.insert(format!("k{number}").into(), json!(number));
        }
        for number in (0..100).step_by(3) {
            assert_eq!(fields.remove(&format!("k{number}")), Some(json!(number)));
        }
        for number in 0..100 {
            let expected = (number % 3 != 0).then(|| json!(number));
            assert_eq!(fields.get(&format!("k{number}")), expected.as_ref());
        }
        fields.insert("k0".into(), json!("back"));
        assert_eq!(fields.keys().last(), Some("k0"));
    }

    #[test]
    fn entry_inserts_once_and_reads_back() {
        let mut fields = Fields::new();
        match fields.entry("SYN") {
            Entry::Vacant(vacant) => {
                vacant.insert(json!(true));
            }
            Entry::Occupied(_) => panic!("empty map"),
        }
        *fields.entry("SYN").or_insert(json!(false)) = json!("set");
        assert_eq!(fields.get("SYN"), Some(&json!("set")));
        assert_eq!(fields["nope"], Value::Null);
    }

    fn operations() -> impl Strategy<Value = Vec<(u8, String, i64)>> {
        // Few distinct keys (so inserts repeat and removes hit), enough entries to cross
        // the index threshold.
        proptest::collection::vec((0u8..4, "[a-e]{0,2}|k[0-9]{1,2}", any::<i64>()), 0..120)
    }

    proptest! {
        #[test]
        fn same_json_as_serde_json_map(ops in operations()) {
            let mut ours = Fields::new();
            let mut theirs = Map::new();
            for (op, key, number) in ops {
                match op {
                    0 => {
                        prop_assert_eq!(ours.remove(&key), theirs.remove(&key));
                    }
                    _ => {
                        prop_assert_eq!(
                            ours.insert(key.clone().into(), json!(number)),
                            theirs.insert(key, json!(number))
                        );
                    }
                }
            }
            let our_text = serde_json::to_string(&ours).unwrap_or_default();
            let their_text = serde_json::to_string(&theirs).unwrap_or_default();
            prop_assert_eq!(&our_text, &their_text);
            let sonic_text = sonic_rs::to_string(&ours).unwrap_or_default();
            prop_assert_eq!(&sonic_text, &their_text);
            for (key, value) in &theirs {
                prop_assert_eq!(ours.get(key), Some(value));
            }
            let back: Fields = serde_json::from_str(&our_text).unwrap_or_default();
            prop_assert_eq!(serde_json::to_string(&back).unwrap_or_default(), our_text);
            prop_assert_eq!(back, ours);
        }
    }
}
