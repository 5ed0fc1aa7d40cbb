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
//!   exactly the same JSON object;
//! - a parser that copies text out of the record (a key=value line's ~20 values) can store it
//!   in one text buffer the map owns instead of a `Value::String` each
//!   ([`Fields::insert_text`]): one allocation per event instead of one per value, and none
//!   to free each. Such a value becomes a `Value` only when someone asks for it as one
//!   ([`Fields::get`] builds it once and keeps it); serializing, the compact record and the
//!   parsers' own reads ([`Fields::iter_stored`], [`StoredValue`]) take the text as it is.
//!   On the collector's path from a line to its buffer nothing asks, so nothing is built.
//! - a parser that stores many values cut from one text (a key=value message) copies that
//!   text into the buffer once ([`Fields::text_source`]); a value that is a slice of it is
//!   then stored as a span of that copy, with no copy of its own.
//! - RFC 5424 structured data is stored the same way, as the section's text, and stands for
//!   the object it describes ([`crate::structured_data`]): built when asked for, written to
//!   the compact record and counted for the batch ceiling from the text.

use std::borrow::Cow;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use hashbrown::HashTable;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A field name: borrowed when the parser knows it, owned when it came from the record.
pub type Key = Cow<'static, str>;

/// Above this many entries, lookups go through a hash index instead of a linear scan.
pub const INDEX_THRESHOLD: usize = 24;

/// The most entries one [`Fields::reserve`] makes room for (96 bytes each): more than the
/// pairs of nearly any device's line (a netfilter line has ~20, a FortiGate one ~40).
pub const MAX_RESERVE_AHEAD: usize = 64;

/// The deepest nesting `fields` may hold ([`Fields::depth`]). An event is stored and sent
/// wrapped in a few more levels (the event object, a batch, an alert), and serde_json reads at
/// most 127 levels back: an event nested just under that on the way in would be stored fine
/// and then fail every search page that holds it. Parsers refuse deeper documents (kept raw,
/// with a parse error) and the server refuses records that hold deeper `fields`.
pub const MAX_DEPTH: usize = 100;

/// A value as the map holds it.
#[derive(Clone)]
enum Slot {
    /// A JSON value.
    Value(Value),
    /// Text at `start..start + len` of [`Fields::text`]; its `Value::String`, once asked for
    /// (boxed, so that a slot is no larger than a `Value`: entries are moved and dropped on
    /// every parse, and most text values are never asked for as a `Value`).
    Text {
        start: u32,
        len: u32,
        kind: TextKind,
        value: OnceLock<Box<Value>>,
    },
}

/// What a text slot's text stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    /// A string: the text itself.
    Plain,
    /// RFC 5424 structured data as the sender wrote it, which stands for its object
    /// ([`crate::structured_data`]).
    StructuredData,
}

impl TextKind {
    /// The `Value` a text of this kind stands for.
    fn value_of(self, text: &str) -> Value {
        match self {
            TextKind::Plain => Value::String(text.to_owned()),
            TextKind::StructuredData => crate::structured_data::to_value(text),
        }
    }
}

/// A value on its way into the map: text is copied into the buffer only if it gets a slot of
/// its own.
enum NewValue<'t> {
    Text(&'t str),
    /// Only tests store pairs whose values are not text.
    #[cfg_attr(not(test), allow(dead_code))]
    Json(Value),
}

// A text slot is no larger than a `Value`: entries are moved and dropped on every parse.
const _: () = assert!(std::mem::size_of::<Slot>() <= std::mem::size_of::<Value>());

/// `text[start..start + len]`, or `""` for a span outside it (never the case: spans are made
/// by [`Fields::store_text`] and the buffer only grows).
#[inline]
fn text_at(text: &str, start: u32, len: u32) -> &str {
    let start = start as usize;
    text.get(start..start + len as usize).unwrap_or_default()
}

impl Slot {
    /// A text slot for `start..start + len` of the text buffer, its `Value` not built yet.
    #[inline(always)]
    fn span(start: u32, len: u32) -> Self {
        Slot::Text {
            start,
            len,
            kind: TextKind::Plain,
            value: OnceLock::new(),
        }
    }

    /// The slot as a `Value`, building (and keeping) a text slot's `Value::String` the first
    /// time.
    #[inline]
    fn value<'a>(&'a self, text: &'a str, built: &AtomicBool) -> &'a Value {
        match self {
            Slot::Value(value) => value,
            Slot::Text { .. } => self.text_value(text, built),
        }
    }

    /// [`Slot::value`] of a text slot. Out of line: readers that want a `Value` mostly read
    /// value slots (the JSON formats look up ~40 names a record), and the `OnceLock` set-up
    /// inlined into each lookup cost them ~2% (BENCHMARKS.md "Parsing"). `built` is the
    /// map's [`Fields::built_values`]: set when a `Value` is built, which the slot then owns.
    #[cold]
    #[inline(never)]
    fn text_value<'a>(&'a self, text: &'a str, built: &AtomicBool) -> &'a Value {
        match self {
            Slot::Value(value) => value,
            Slot::Text {
                start,
                len,
                kind,
                value,
            } => value.get_or_init(|| {
                built.store(true, Ordering::Relaxed);
                Box::new(kind.value_of(text_at(text, *start, *len)))
            }),
        }
    }

    /// True when the slot owns no memory: a text span whose `Value` was never built, or a
    /// null, a boolean or a number (the syslog header's priority) unless serde_json's
    /// numbers own memory (its `arbitrary_precision` feature, which any crate may turn on).
    #[inline(always)]
    fn owns_nothing(&self) -> bool {
        match self {
            Slot::Text { value, .. } => value.get().is_none(),
            Slot::Value(Value::Null | Value::Bool(_)) => true,
            Slot::Value(Value::Number(_)) => !std::mem::needs_drop::<serde_json::Number>(),
            Slot::Value(_) => false,
        }
    }

    /// The slot as a mutable `Value`: a text slot becomes a value slot first.
    #[inline]
    fn value_mut<'a>(&'a mut self, text: &str) -> &'a mut Value {
        if let Slot::Text { .. } = self {
            let taken = std::mem::replace(self, Slot::Value(Value::Null));
            *self = Slot::Value(taken.into_value(text));
        }
        match self {
            Slot::Value(value) => value,
            // Made a value slot just above (a `Null` rather than a panic, should that change).
            Slot::Text { .. } => {
                *self = Slot::Value(Value::Null);
                self.value_mut(text)
            }
        }
    }

    /// The slot's `Value`, owned.
    #[inline]
    fn into_value(self, text: &str) -> Value {
        match self {
            Slot::Value(value) => value,
            Slot::Text {
                start,
                len,
                kind,
                value,
            } => value
                .into_inner()
                .map_or_else(|| kind.value_of(text_at(text, start, len)), |value| *value),
        }
    }

    /// The slot as it is stored, without building a `Value`.
    #[inline]
    fn stored<'a>(&'a self, text: &'a str) -> StoredValue<'a> {
        match self {
            Slot::Value(value) => StoredValue::Json(value),
            Slot::Text {
                start,
                len,
                kind: TextKind::Plain,
                ..
            } => StoredValue::Text(text_at(text, *start, *len)),
            Slot::Text {
                start,
                len,
                kind: TextKind::StructuredData,
                ..
            } => StoredValue::StructuredData(text_at(text, *start, *len)),
        }
    }
}

/// A text whose copy heads a part of a [`Fields`]' text buffer ([`Fields::text_source`]): a
/// value that is a slice of it is stored as a span of the copy.
pub(crate) struct TextSource<'s> {
    source: &'s str,
    /// Where the copy starts in the buffer; `None` when there is no copy (the buffer would
    /// have passed 4 GiB): values are then copied one by one.
    start: Option<u32>,
}

impl<'s> TextSource<'s> {
    /// The source's text at `range` (`""` for a range that is not one of its `str` slices;
    /// the tokenizers hand over ranges that end at ASCII bytes, which always are).
    #[inline]
    pub(crate) fn text(&self, range: std::ops::Range<usize>) -> &'s str {
        debug_assert!(self.source.get(range.clone()).is_some(), "{range:?}");
        self.source.get(range).unwrap_or_default()
    }

    /// The span of the buffer holding `text`, when `text` is a slice of the source. Decided
    /// by address alone: the source is borrowed for as long as this lives, so a slice in its
    /// address range is made of its bytes (no `unsafe`, nothing read through the addresses).
    #[inline(always)]
    fn span_of(&self, text: &str) -> Option<(u32, u32)> {
        let offset = (text.as_ptr() as usize).checked_sub(self.source.as_ptr() as usize)?;
        self.span_at(offset..offset.checked_add(text.len())?)
    }

    /// The span of the buffer holding the source's bytes at `range`. Only for ranges that
    /// are `str` slices of the source (what the buffer's readers slice back out); checked in
    /// debug builds, and a reader of a span that is not one gets `""`, never a panic.
    #[inline(always)]
    fn span_at(&self, range: std::ops::Range<usize>) -> Option<(u32, u32)> {
        if range.start > range.end || range.end > self.source.len() {
            return None;
        }
        debug_assert!(self.source.get(range.clone()).is_some(), "{range:?}");
        // Both fit in 32 bits: the copy ends below 4 GiB (`Fields::text_source`).
        let start = self.start?.checked_add(u32::try_from(range.start).ok()?)?;
        Some((start, u32::try_from(range.end - range.start).ok()?))
    }
}

/// A value of [`Fields`] as it is stored: text a parser put in the map's text buffer, or a
/// JSON value. The same value either way as far as the map's JSON and equality go
/// (`Text("a")` is `Json(Value::String("a"))`); reading it so builds nothing. A string may
/// come either way: read it with [`StoredValue::as_str`], or match both variants.
#[derive(Clone, Copy)]
pub enum StoredValue<'a> {
    /// Text stored as text: a JSON string.
    Text(&'a str),
    /// RFC 5424 structured data as the sender wrote it: the object it stands for
    /// ([`crate::structured_data`]).
    StructuredData(&'a str),
    /// Any JSON value.
    Json(&'a Value),
}

impl<'a> StoredValue<'a> {
    /// The text of a string value (as `Value::as_str`).
    #[inline]
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            StoredValue::Text(text) => Some(text),
            StoredValue::StructuredData(_) => None,
            StoredValue::Json(value) => value.as_str(),
        }
    }

    /// The value as a `Value` (a copy).
    #[inline]
    pub fn to_value(self) -> Value {
        match self {
            StoredValue::Text(text) => Value::String(text.to_owned()),
            StoredValue::StructuredData(text) => crate::structured_data::to_value(text),
            StoredValue::Json(value) => value.clone(),
        }
    }
}

impl PartialEq for StoredValue<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StoredValue::Json(left), StoredValue::Json(right)) => left == right,
            (StoredValue::StructuredData(_), _) | (_, StoredValue::StructuredData(_)) => {
                self.to_value() == other.to_value()
            }
            (left, right) => match (left.as_str(), right.as_str()) {
                (Some(left), Some(right)) => left == right,
                _ => false,
            },
        }
    }
}

impl PartialEq<Value> for StoredValue<'_> {
    fn eq(&self, other: &Value) -> bool {
        *self == StoredValue::Json(other)
    }
}

impl fmt::Debug for StoredValue<'_> {
    /// As the `Value` it stands for prints.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredValue::Text(text) => formatter.debug_tuple("String").field(text).finish(),
            StoredValue::StructuredData(text) => {
                crate::structured_data::to_value(text).fmt(formatter)
            }
            StoredValue::Json(value) => value.fmt(formatter),
        }
    }
}

impl Serialize for StoredValue<'_> {
    /// The JSON of the `Value` it stands for.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StoredValue::Text(text) => serializer.serialize_str(text),
            // Off the collector's path to its buffer (JSON goes to the archive and the CLI).
            StoredValue::StructuredData(text) => {
                crate::structured_data::to_value(text).serialize(serializer)
            }
            StoredValue::Json(value) => value.serialize(serializer),
        }
    }
}

/// The event's parsed key/values in insertion order (see the module docs).
pub struct Fields {
    entries: Vec<(Key, Slot)>,
    /// The text of the [`Slot::Text`] values, end to end. It only grows: the text of a value
    /// replaced, removed or turned into a `Value` stays until [`Fields::clear`].
    text: String,
    /// Positions in `entries`, hashed by key; only while `entries` is longer than
    /// [`INDEX_THRESHOLD`].
    /// Boxed: most maps never have one, and a smaller `Fields` is a smaller `Event`.
    index: Option<Box<HashIndex>>,
    /// One bit per key ever pushed ([`key_bit`]): a key whose bit is clear is absent, so most
    /// lookups of an absent key (every pair a key=value parser adds asks first) skip the
    /// linear scan. Removals leave bits set (a stale bit only costs the scan); only
    /// [`Fields::clear`] resets them.
    key_bits: u64,
    /// True while no entry owns memory of its own: every key `'static` and every value a
    /// null, a boolean, a number or a text span whose `Value` was never built (nor
    /// `built_values` set). Dropping such a map frees
    /// the entries' block without visiting them: a key=value line's ~20 entries cost ~400
    /// instructions to visit one by one, for nothing to free. Made false by any entry that
    /// owns something and by any change of a value in place; true again after
    /// [`Fields::clear`].
    owns_nothing: bool,
    /// Set when a text slot's `Value` was built through `&self` ([`Slot::text_value`]), after
    /// which that slot owns it.
    built_values: AtomicBool,
}

impl Default for Fields {
    fn default() -> Self {
        Fields::with_capacity(0)
    }
}

impl Clone for Fields {
    fn clone(&self) -> Self {
        Fields {
            entries: self.entries.clone(),
            text: self.text.clone(),
            index: self.index.clone(),
            key_bits: self.key_bits,
            owns_nothing: self.owns_nothing,
            built_values: AtomicBool::new(self.built_values.load(Ordering::Relaxed)),
        }
    }
}

impl Drop for Fields {
    fn drop(&mut self) {
        if self.owns_nothing && !*self.built_values.get_mut() {
            // The entries own nothing: a `Drain` of all of them, forgotten, leaves the `Vec`
            // empty without dropping any (safe: nothing is freed twice, and nothing they own
            // is left behind), and the `Vec` then frees only its block.
            std::mem::forget(self.entries.drain(..));
        }
    }
}

/// The bit of [`Fields::key_bits`] for `key`, from its length and its first and last bytes
/// (what tells short device keys apart: `SRC`/`SPT`/`SYN` differ in the last byte). Not a
/// defence against chosen keys, and it need not be: a collision only costs the scan that
/// would have run anyway.
/// A `const fn`, so that a parser's fixed names have their bits computed at compile time
/// ([`Fields::get_with_bit`]).
#[inline]
pub(crate) const fn key_bit(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let (first, last) = match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => (*first as u64, *last as u64),
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

    fn build(entries: &[(Key, Slot)]) -> Self {
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
    fn push(&mut self, entries: &[(Key, Slot)], position: usize) {
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

    fn find(&self, entries: &[(Key, Slot)], key: &str) -> Option<usize> {
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
            text: String::new(),
            index: None,
            key_bits: 0,
            owns_nothing: true,
            built_values: AtomicBool::new(false),
        }
    }

    /// Makes room for `additional` more entries (parsers that can count or estimate their
    /// pairs call it once instead of letting the entries grow by doubling), at most
    /// [`MAX_RESERVE_AHEAD`] at a time (~6 KB), whatever is asked: an estimate from a record's
    /// length (a 1 MiB line of few pairs) would otherwise make room for ~100,000 entries
    /// (~10 MB) it never fills, and a count of its spaces for as many as it has bytes. The
    /// HTTP intake holds a thousand events at a time per request place. Entries past the room
    /// grow by doubling as they come.
    pub fn reserve(&mut self, additional: usize) {
        let additional = additional.min(MAX_RESERVE_AHEAD);
        if self.entries.capacity() - self.entries.len() >= additional {
            return;
        }
        // A new block with the entries moved over rather than `Vec::reserve`'s `realloc`,
        // which copies the whole old block (768 bytes for the first 8 entries) though a
        // syslog header has filled only 3 or 4 when a key=value payload reserves its pairs.
        // At least double, as `Vec::reserve` grows, so that reserving a little at a time
        // stays amortized.
        let capacity = (self.entries.len() + additional).max(self.entries.capacity() * 2);
        let mut entries = Vec::with_capacity(capacity);
        entries.append(&mut self.entries);
        self.entries = entries;
    }

    /// Makes room for `additional` more bytes of text values (a parser about to store a
    /// record's values as text reserves the record's length once).
    pub fn reserve_text(&mut self, additional: usize) {
        self.text.reserve(additional);
    }

    /// How deep the values nest: 0 when every value is a scalar, 1 when some value is an
    /// object or array of scalars, and so on.
    pub fn depth(&self) -> usize {
        self.entries
            .iter()
            .map(|(_, slot)| match slot {
                Slot::Value(value) => value_depth(value),
                Slot::Text {
                    kind: TextKind::StructuredData,
                    ..
                } => crate::structured_data::DEPTH,
                Slot::Text { .. } => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// True when no entry owns memory of its own (see the field `owns_nothing`): the map
    /// holds only its blocks ([`Fields::block_bytes`]).
    pub fn owns_nothing(&self) -> bool {
        self.owns_nothing && !self.built_values.load(Ordering::Relaxed)
    }

    /// Bytes the map's own blocks hold (the entries' and the text buffer's capacity; not
    /// what values own apart from those): what keeping an emptied map for reuse keeps.
    pub fn block_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(Key, Slot)>() + self.text.capacity()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry, keeping the entries' block and the text buffer for what comes
    /// next.
    pub fn clear(&mut self) {
        if self.owns_nothing && !*self.built_values.get_mut() {
            // As in `drop`: nothing to free in the entries, so they are not visited.
            std::mem::forget(self.entries.drain(..));
        }
        self.entries.clear();
        self.text.clear();
        self.index = None;
        self.key_bits = 0;
        self.owns_nothing = true;
        *self.built_values.get_mut() = false;
    }

    /// The position of `key`, if present.
    fn position(&self, key: &str) -> Option<usize> {
        self.position_with_bit(key, key_bit(key))
    }

    /// [`Fields::position`] with the key's [`key_bit`] already computed (for a caller that
    /// also pushes the key, which needs the bit too, or that looks up a fixed name).
    ///
    /// The bit is tested before the hash index too: a parser asks for many names a record
    /// does not have (the JSON reader tries ~80 for its core fields), and on a map of more
    /// than [`INDEX_THRESHOLD`] entries (a Sysmon event's) each of those was a hash and a probe.
    #[inline]
    fn position_with_bit(&self, key: &str, bit: u64) -> Option<usize> {
        if self.key_bits & bit == 0 {
            return None;
        }
        match &self.index {
            Some(index) => index.find(&self.entries, key),
            None => self
                .entries
                .iter()
                .position(|(other, _)| same_key(other, key)),
        }
    }

    /// The value at `position` (which must be in range), mutable.
    fn value_at_mut(&mut self, position: usize) -> &mut Value {
        self.owns_nothing = false;
        let text = &self.text;
        self.entries[position].1.value_mut(text)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let position = self.position(key)?;
        match self.entries.get(position) {
            Some((_, Slot::Value(value))) => Some(value),
            Some((_, slot)) => Some(slot.text_value(&self.text, &self.built_values)),
            None => None,
        }
    }

    /// [`Fields::get`] of a fixed name whose [`key_bit`] was computed once (at compile time,
    /// as a `const`): `bit` must be `key_bit(key)`.
    pub(crate) fn get_with_bit(&self, key: &str, bit: u64) -> Option<&Value> {
        debug_assert_eq!(bit, key_bit(key), "the bit of another key");
        let position = self.position_with_bit(key, bit)?;
        match self.entries.get(position) {
            Some((_, Slot::Value(value))) => Some(value),
            Some((_, slot)) => Some(slot.text_value(&self.text, &self.built_values)),
            None => None,
        }
    }

    /// The value of `key` as stored (no `Value` built for a text value).
    pub fn get_stored(&self, key: &str) -> Option<StoredValue<'_>> {
        let position = self.position(key)?;
        self.entries
            .get(position)
            .map(|(_, slot)| slot.stored(&self.text))
    }

    /// The key of the entry at `position` (in insertion order), if there is one.
    pub(crate) fn key_at(&self, position: usize) -> Option<&str> {
        self.entries.get(position).map(|(key, _)| &**key)
    }

    /// The value of the entry at `position` (in insertion order) as stored, if there is one.
    pub(crate) fn stored_at(&self, position: usize) -> Option<StoredValue<'_>> {
        self.entries
            .get(position)
            .map(|(_, slot)| slot.stored(&self.text))
    }

    /// The text of `key`'s value when it is a string (`get(key).and_then(Value::as_str)`,
    /// without building a `Value` for a text value).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get_stored(key).and_then(StoredValue::as_str)
    }

    /// The value of `key`, mutable.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let position = self.position(key)?;
        self.owns_nothing = false;
        let text = &self.text;
        self.entries
            .get_mut(position)
            .map(|(_, slot)| slot.value_mut(text))
    }

    /// The stored key and value of `key`.
    pub fn get_key_value(&self, key: &str) -> Option<(&str, &Value)> {
        let position = self.position(key)?;
        self.entries
            .get(position)
            .map(|(key, slot)| (&**key, slot.value(&self.text, &self.built_values)))
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Appends an entry whose key is known to be absent.
    #[inline]
    fn push_new(&mut self, key: Key, slot: Slot) -> usize {
        let bit = key_bit(&key);
        self.push_new_with_bit(key, bit, slot)
    }

    /// [`Fields::push_new`] with the key's [`key_bit`] already computed.
    #[inline]
    fn push_new_with_bit(&mut self, key: Key, bit: u64, slot: Slot) -> usize {
        let position = self.entries.len();
        self.key_bits |= bit;
        self.entries.push((key, slot));
        self.note_last_entry();
        self.index_pushed();
        position
    }

    /// After a push: [`Fields::owns_nothing`] made false if the new entry owns something.
    /// Tested first: once false (say at a JSON document's first entry) it stays so, and the
    /// entries after need not be looked at. The entry is read where it was stored, not as the
    /// argument it was: the key's words, just written to the stack one by one and read back
    /// as one, waited on a failed store-to-load forward (~15% of an access log's inserts).
    #[inline(always)]
    fn note_last_entry(&mut self) {
        if self.owns_nothing {
            self.owns_nothing = self
                .entries
                .last()
                .is_some_and(|(key, slot)| matches!(key, Cow::Borrowed(_)) && slot.owns_nothing());
        }
    }

    /// After a push: the hash index told of the new entry, when there is one or should be.
    #[inline(always)]
    fn index_pushed(&mut self) {
        if self.index.is_some() || self.entries.len() > INDEX_THRESHOLD {
            self.index_last();
        }
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
            None => self.index = Some(Box::new(HashIndex::build(&self.entries))),
        }
    }

    /// Sets `key` to `value`. An existing key keeps its position and its value is replaced
    /// (returned); a new key goes last. The same as `serde_json::Map::insert`.
    pub fn insert(&mut self, key: Key, value: Value) -> Option<Value> {
        self.insert_slot(key, Slot::Value(value))
    }

    /// [`Fields::insert`] of a string value, kept in the text buffer (see the module docs).
    pub fn insert_text(&mut self, key: Key, text: &str) -> Option<Value> {
        let slot = self.store_text(text);
        self.insert_slot(key, slot)
    }

    /// [`Fields::insert`] of the object an RFC 5424 structured data section stands for, kept
    /// as its text until someone asks for it as a `Value` ([`crate::structured_data`]).
    /// `section` must be text [`crate::structured_data::checked_end`] accepted.
    pub(crate) fn insert_structured_data(&mut self, key: Key, section: &str) -> Option<Value> {
        let mut slot = self.store_text(section);
        match &mut slot {
            Slot::Text { kind, .. } => *kind = TextKind::StructuredData,
            // Too long for a span: stored built.
            Slot::Value(value) => *value = crate::structured_data::to_value(section),
        }
        self.insert_slot(key, slot)
    }

    /// [`Fields::insert`] of a slot. The key's filter bit is computed once, for the lookup and
    /// the push (the syslog header's three or four inserts a line paid for it twice).
    #[inline]
    fn insert_slot(&mut self, key: Key, slot: Slot) -> Option<Value> {
        let bit = key_bit(&key);
        match self.position_with_bit(&key, bit) {
            Some(position) => {
                self.owns_nothing &= slot.owns_nothing();
                let text = &self.text;
                self.entries
                    .get_mut(position)
                    .map(|(_, old)| std::mem::replace(old, slot).into_value(text))
            }
            None => {
                self.push_new_with_bit(key, bit, slot);
                None
            }
        }
    }

    /// Copies `text` into the text buffer and returns the slot that reads it back. Text that
    /// would take the buffer past 4 GiB (spans are 32-bit) is stored as a `Value` instead.
    #[inline]
    fn store_text(&mut self, text: &str) -> Slot {
        let start = self.text.len();
        match (u32::try_from(start), u32::try_from(text.len())) {
            (Ok(start32), Ok(len)) if start32.checked_add(len).is_some() => {
                self.text.push_str(text);
                Slot::span(start32, len)
            }
            _ => Slot::Value(Value::String(text.to_owned())),
        }
    }

    /// Copies `source` into the text buffer once, so that values that are slices of it are
    /// stored as spans of the copy ([`Fields::push_absent_text_from`],
    /// [`Fields::push_absent_span`], [`Fields::insert_repeatable_text_from`]) instead of being
    /// copied one by one (the copy of a short value, with its capacity check and `memcpy`
    /// call, cost ~25 instructions; a netfilter line has ~17). When the buffer would pass
    /// 4 GiB (spans are 32-bit) nothing is copied and values are copied one by one as before.
    pub(crate) fn text_source<'s>(&mut self, source: &'s str) -> TextSource<'s> {
        let start = u32::try_from(self.text.len()).ok().filter(|start| {
            u32::try_from(source.len())
                .ok()
                .and_then(|len| start.checked_add(len))
                .is_some()
        });
        if start.is_some() {
            self.text.push_str(source);
        }
        TextSource { source, start }
    }

    /// The slot for `text`: a span of the copy of `source` when `text` is a slice of it,
    /// else a copy of its own ([`Fields::store_text`]).
    #[inline(always)]
    fn store_text_from(&mut self, text: &str, source: Option<&TextSource<'_>>) -> Slot {
        match source.and_then(|source| source.span_of(text)) {
            Some((start, len)) => Slot::span(start, len),
            None => self.store_text(text),
        }
    }

    /// Appends an entry under a key the caller knows to be absent (a parser that keeps track
    /// of the names it has stored), without looking it up. The key must really be absent: a
    /// second entry with the same key would break the map (debug builds check).
    pub(crate) fn push_absent(&mut self, key: Key, value: Value) {
        debug_assert!(!self.contains_key(&key), "{key} is present");
        self.push_new(key, Slot::Value(value));
    }

    /// [`Fields::push_absent`] for a string value, kept in the text buffer (see the module
    /// docs): as a span of `source`'s copy when `text` is a slice of it.
    #[inline]
    pub(crate) fn push_absent_text_from(
        &mut self,
        key: Key,
        text: &str,
        source: Option<&TextSource<'_>>,
    ) {
        debug_assert!(!self.contains_key(&key), "{key} is present");
        let slot = self.store_text_from(text, source);
        self.push_new(key, slot);
    }

    /// [`Fields::push_absent_text_from`] of the value at `range` of `source`'s text (a
    /// tokenizer that knows where its values are need not slice them out as `str`s), under a
    /// key whose [`key_bit`] the caller has (a parser's known names have theirs computed at
    /// compile time): `bit` must be `key_bit(&key)`.
    #[inline]
    pub(crate) fn push_absent_span(
        &mut self,
        key: Key,
        bit: u64,
        source: &TextSource<'_>,
        range: std::ops::Range<usize>,
    ) {
        debug_assert!(!self.contains_key(&key), "{key} is present");
        debug_assert_eq!(bit, key_bit(&key), "the bit of another key");
        match source.span_at(range.clone()) {
            Some((start, len)) => self.push_new_span(key, bit, start, len),
            None => {
                let slot = self.store_text(source.text(range));
                self.push_new_with_bit(key, bit, slot);
            }
        }
    }

    /// [`Fields::push_new_with_bit`] of a text slot for `start..start + len` of the text
    /// buffer, the entry made where it is stored. Made on the stack and copied into the `Vec`
    /// (what a `Slot` argument and `push` compile to), each entry's copy read back in 16-byte
    /// moves what had just been written in 8-byte stores, and waited ~10 cycles for them (a
    /// failed store-to-load forward): half of a netfilter line's pair-storing samples.
    /// `resize_with` writes what its closure makes straight into the `Vec`.
    #[inline(always)]
    fn push_new_span(&mut self, key: Key, bit: u64, start: u32, len: u32) {
        self.key_bits |= bit;
        // (The key=value reader's keys are `'static` at the call: this folds away there.)
        self.owns_nothing &= matches!(key, Cow::Borrowed(_));
        // `resize_with` calls the closure exactly once here, so the key is always there.
        let mut key = Some(key);
        self.entries.resize_with(self.entries.len() + 1, || {
            (key.take().unwrap_or_default(), Slot::span(start, len))
        });
        self.index_pushed();
    }

    /// Adds `value` under `key`; when `key` is present already, its values are collected in
    /// an array in order (key=value records write some keys twice: iptables' `LEN=`). What
    /// `entry` and then an insert or a push do, in one call that tests the key filter once
    /// and moves the value once: key=value parsers call it for every pair. `name` gives the
    /// key as a `'static` string when the parser knows it, so the key is not copied. (Pairs
    /// are text: parsers call [`Fields::insert_repeatable_text_from`]; this is for tests with other
    /// values.)
    #[cfg(test)]
    pub(crate) fn insert_repeatable(
        &mut self,
        key: &str,
        value: Value,
        name: impl FnOnce(&str) -> Option<&'static str>,
    ) {
        self.insert_repeatable_value(key, NewValue::Json(value), name, None);
    }

    /// [`Fields::insert_repeatable`] for a string value, kept in the text buffer while its key
    /// is seen once (a repeated key's values become an array of `Value`s): as a span of
    /// `source`'s copy when `text` is a slice of it.
    pub(crate) fn insert_repeatable_text_from(
        &mut self,
        key: &str,
        text: &str,
        name: impl FnOnce(&str) -> Option<&'static str>,
        source: Option<&TextSource<'_>>,
    ) {
        self.insert_repeatable_value(key, NewValue::Text(text), name, source);
    }

    fn insert_repeatable_value(
        &mut self,
        key: &str,
        value: NewValue<'_>,
        name: impl FnOnce(&str) -> Option<&'static str>,
        source: Option<&TextSource<'_>>,
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
                let slot = match value {
                    NewValue::Text(text) => self.store_text_from(text, source),
                    NewValue::Json(value) => Slot::Value(value),
                };
                self.push_new_with_bit(key, bit, slot);
            }
            Some(position) => {
                // A repeated key's values become an array of `Value`s: its text is not
                // copied into the buffer first.
                let value = match value {
                    NewValue::Text(text) => Value::String(text.to_owned()),
                    NewValue::Json(value) => value,
                };
                self.owns_nothing = false;
                let text = &self.text;
                if let Some((_, existing)) = self.entries.get_mut(position) {
                    match existing.value_mut(text) {
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
        let (key, slot) = self.entries.swap_remove(position);
        Some((key, slot.into_value(&self.text)))
    }

    /// Removes `key` and returns its value, keeping the order of the other entries (what
    /// `IndexMap::shift_remove` does; O(n)). For parsers that take a document apart and keep
    /// the rest as written: the order is what `citysoc parse` shows.
    pub fn shift_remove(&mut self, key: &str) -> Option<Value> {
        let position = self.position(key)?;
        let (_, slot) = self.entries.remove(position);
        let value = slot.into_value(&self.text);
        if self.index.is_some() {
            // Every later position moved down by one: rebuilding is simpler than repointing
            // each, and documents this large are rare.
            self.index = (self.entries.len() > INDEX_THRESHOLD)
                .then(|| Box::new(HashIndex::build(&self.entries)));
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
        Iter {
            entries: self.entries.iter(),
            text: &self.text,
            built: &self.built_values,
        }
    }

    /// Values and keys, and bytes of the paths the values are indexed under, of the entries
    /// whose value is text or a scalar (an entry: its key and its value; a leaf: its key's
    /// length), and `nested` called with each array or object and its key. This is
    /// `record::fields_cost`'s walk, on every parsed event: most entries are text, counted
    /// here without slicing the text out or recursing.
    pub(crate) fn flat_cost(&self, mut nested: impl FnMut(&str, &Value)) -> (usize, usize) {
        let (mut values, mut path_bytes) = (0usize, 0usize);
        for (key, slot) in &self.entries {
            match slot {
                Slot::Value(value @ (Value::Array(_) | Value::Object(_))) => nested(key, value),
                Slot::Text {
                    start,
                    len,
                    kind: TextKind::StructuredData,
                    ..
                } => {
                    let (more_values, more_path_bytes) = crate::structured_data::flat_cost(
                        key.len(),
                        text_at(&self.text, *start, *len),
                    );
                    values = values.saturating_add(more_values);
                    path_bytes = path_bytes.saturating_add(more_path_bytes);
                }
                // Neither sum can overflow: each term is a key held in memory, or 2.
                _ => {
                    values += 2;
                    path_bytes += key.len();
                }
            }
        }
        (values, path_bytes)
    }

    /// The entries in order, values as stored (no `Value` built for a text value).
    pub fn iter_stored(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&str, StoredValue<'_>)> + ExactSizeIterator {
        self.entries
            .iter()
            .map(|(key, slot)| (&**key, slot.stored(&self.text)))
    }

    /// The entries in order, values mutable.
    pub fn iter_mut(&mut self) -> IterMut<'_> {
        self.owns_nothing = false;
        IterMut {
            entries: self.entries.iter_mut(),
            text: &self.text,
        }
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.entries.iter().map(|(key, _)| &**key)
    }

    /// The values in order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator {
        self.iter().map(|(_, value)| value)
    }

    /// The values in order, mutable.
    pub fn values_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut Value> + ExactSizeIterator {
        self.iter_mut().map(|(_, value)| value)
    }

    /// The same entries as a `serde_json::Map` (for callers that need a `Value::Object`).
    pub fn to_map(&self) -> Map<String, Value> {
        self.entries
            .iter()
            .map(|(key, slot)| {
                let value = match slot {
                    Slot::Value(value) => value.clone(),
                    Slot::Text {
                        start, len, kind, ..
                    } => kind.value_of(text_at(&self.text, *start, *len)),
                };
                (key.to_string(), value)
            })
            .collect()
    }

    /// Converts into a `serde_json::Map` with the same entries in the same order.
    pub fn into_map(self) -> Map<String, Value> {
        self.into_iter()
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
        let position = self
            .fields
            .push_new(Cow::Owned(self.key.to_owned()), Slot::Value(value));
        self.fields.value_at_mut(position)
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
        let position = self
            .fields
            .push_new(Cow::Borrowed(name), Slot::Value(value));
        self.fields.value_at_mut(position)
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
        self.fields.entries[self.position]
            .1
            .value(&self.fields.text, &self.fields.built_values)
    }

    /// The value, mutable.
    pub fn get_mut(&mut self) -> &mut Value {
        self.fields.value_at_mut(self.position)
    }

    /// The value, mutable for as long as the map is borrowed.
    pub fn into_mut(self) -> &'a mut Value {
        self.fields.value_at_mut(self.position)
    }

    /// Replaces the value, returning the old one.
    pub fn insert(&mut self, value: Value) -> Value {
        std::mem::replace(self.get_mut(), value)
    }
}

/// Iterator over `(&str, &Value)` in order.
pub struct Iter<'a> {
    entries: std::slice::Iter<'a, (Key, Slot)>,
    text: &'a str,
    built: &'a AtomicBool,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        let (text, built) = (self.text, self.built);
        self.entries
            .next()
            .map(|(key, slot)| (&**key, slot.value(text, built)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let (text, built) = (self.text, self.built);
        self.entries
            .next_back()
            .map(|(key, slot)| (&**key, slot.value(text, built)))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Iterator over `(&str, &mut Value)` in order.
pub struct IterMut<'a> {
    entries: std::slice::IterMut<'a, (Key, Slot)>,
    text: &'a str,
}

impl<'a> Iterator for IterMut<'a> {
    type Item = (&'a str, &'a mut Value);

    fn next(&mut self) -> Option<Self::Item> {
        let text = self.text;
        self.entries
            .next()
            .map(|(key, slot)| (&**key, slot.value_mut(text)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl DoubleEndedIterator for IterMut<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let text = self.text;
        self.entries
            .next_back()
            .map(|(key, slot)| (&**key, slot.value_mut(text)))
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
    type IntoIter = IntoIter;

    fn into_iter(mut self) -> Self::IntoIter {
        // Taken rather than moved out: `Fields` has a `Drop` of its own. What is left (an
        // empty map) owns nothing.
        IntoIter {
            entries: std::mem::take(&mut self.entries).into_iter(),
            text: std::mem::take(&mut self.text),
        }
    }
}

/// Iterator over the owned `(Key, Value)` entries in order.
pub struct IntoIter {
    entries: std::vec::IntoIter<(Key, Slot)>,
    text: String,
}

impl Iterator for IntoIter {
    type Item = (Key, Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.entries
            .next()
            .map(|(key, slot)| (key, slot.into_value(&self.text)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl DoubleEndedIterator for IntoIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.entries
            .next_back()
            .map(|(key, slot)| (key, slot.into_value(&self.text)))
    }
}

impl ExactSizeIterator for IntoIter {}

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
        let entries: Vec<(Key, Slot)> = map
            .into_iter()
            .map(|(key, value)| (Cow::Owned(key), Slot::Value(value)))
            .collect();
        let index = (entries.len() > INDEX_THRESHOLD).then(|| Box::new(HashIndex::build(&entries)));
        let key_bits = entries.iter().fold(0, |bits, (key, _)| bits | key_bit(key));
        Fields {
            owns_nothing: entries.is_empty(),
            entries,
            text: String::new(),
            index,
            key_bits,
            built_values: AtomicBool::new(false),
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
                .iter_stored()
                .all(|(key, value)| other.get_stored(key) == Some(value))
    }
}

impl Eq for Fields {}

impl fmt::Debug for Fields {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_map().entries(self.iter_stored()).finish()
    }
}

impl Serialize for Fields {
    /// The same object `serde_json::Map` writes: entries in order.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self.iter_stored() {
            map.serialize_entry(key, &value)?;
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
    fn reserve_makes_room_for_a_bounded_number_of_entries_at_a_time() {
        // A 1 MiB key=value line of few pairs asks for ~100,000 entries of room.
        let mut fields = Fields::new();
        fields.reserve(1 << 20);
        assert!(fields.entries.capacity() <= MAX_RESERVE_AHEAD);
        // Entries past the room still go in, growing as a `Vec` does.
        for index in 0..MAX_RESERVE_AHEAD + 10 {
            fields.insert_text(Cow::Owned(format!("k{index}")), "v");
        }
        assert_eq!(fields.len(), MAX_RESERVE_AHEAD + 10);
        assert_eq!(fields.get_str("k0"), Some("v"));
    }

    #[test]
    fn a_long_key_value_line_of_few_pairs_gets_bounded_room() {
        let line = format!("a=1 b=2 c={}", "x".repeat(1 << 20));
        let mut event =
            crate::parse::new_event(line.as_bytes(), &crate::ParseContext::new("test"), 1);
        crate::format::kv::parse(&line, &crate::ParseContext::new("test"), &mut event)
            .unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(event.fields.len(), 3);
        assert!(event.fields.entries.capacity() <= MAX_RESERVE_AHEAD);
    }

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

    /// Values cut from a text source read back as themselves, whether stored as spans of its
    /// copy (slices of it) or copied (anything else, including a slice of the same string that
    /// runs past the source's end), and the map is the one plain inserts make.
    #[test]
    fn text_source_spans_read_back() {
        let line = "IN=eth0 OUT= SRC=10.0.0.1 PROTO=TCP tail";
        let pairs = &line[..35];
        let mut fields = Fields::new();
        fields.insert_text("syslog.facility".into(), "kern");
        let source = Some(fields.text_source(pairs));
        let values: [(&str, &str); 6] = [
            ("IN", &line[3..7]),
            ("OUT", &line[12..12]),
            ("SRC", &line[17..25]),
            ("PROTO", &line[32..35]),
            // Straddles the source's end: copied.
            ("straddle", &line[32..40]),
            ("elsewhere", "not from the line"),
        ];
        for (key, value) in values {
            fields.push_absent_text_from(key.into(), value, source.as_ref());
        }
        fields.insert_repeatable_text_from("SRC", &line[17..20], |_| None, source.as_ref());
        let mut expected = Fields::new();
        expected.insert_text("syslog.facility".into(), "kern");
        for (key, value) in values {
            expected.insert(key.into(), Value::from(value));
        }
        expected.insert("SRC".into(), serde_json::json!(["10.0.0.1", "10."]));
        assert_eq!(fields, expected);
        assert_eq!(
            serde_json::to_string(&fields).ok(),
            serde_json::to_string(&expected).ok()
        );
        assert_eq!(fields.get_str("PROTO"), Some("TCP"));
        assert_eq!(fields.get_str("straddle"), Some("TCP tail"));
        assert_eq!(fields.get_str("OUT"), Some(""));
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

    impl Fields {
        /// What `Drop` relies on: when the map says its entries own nothing, none does.
        fn owns_nothing_is_true(&self) -> bool {
            let claims_nothing = self.owns_nothing && !self.built_values.load(Ordering::Relaxed);
            !claims_nothing
                || self
                    .entries
                    .iter()
                    .all(|(key, slot)| matches!(key, Cow::Borrowed(_)) && slot.owns_nothing())
        }
    }

    /// Keys parsers store as `'static` names, and one that comes from the record.
    const STATIC_KEYS: [&str; 4] = ["SRC", "DST", "syslog.facility", "action"];

    proptest! {
        /// Whatever is done to a map, it never says its entries own nothing while one owns
        /// something: `Drop` would leave that behind (only entries under `'static` names whose
        /// values are text spans, numbers, booleans or nulls own nothing: what the key=value
        /// reader stores).
        #[test]
        fn a_map_that_owns_something_says_so(
            ops in proptest::collection::vec((0u8..20, 0usize..5, "[a-z]{0,3}"), 0..60)
        ) {
            let line = "SRC=10.0.0.1 DST=10.0.0.2 PROTO=TCP";
            let mut fields = Fields::new();
            for (op, key_index, text) in ops {
                let key: Key = match STATIC_KEYS.get(key_index) {
                    Some(name) => Cow::Borrowed(*name),
                    None => Cow::Owned(text.clone()),
                };
                let present = fields.contains_key(&key);
                match op {
                    0 if !present => {
                        let source = fields.text_source(line);
                        fields.push_absent_span(key.clone(), key_bit(&key), &source, 4..12);
                    }
                    1 if !present => {
                        let source = fields.text_source(line);
                        fields.push_absent_text_from(key, &line[17..25], Some(&source));
                    }
                    2 => {
                        fields.insert_text(key, &text);
                    }
                    3 => {
                        fields.insert(key, json!(text));
                    }
                    4 => {
                        let _ = fields.get(&key);
                    }
                    5 => {
                        if let Some(value) = fields.get_mut(&key) {
                            *value = json!([value.take()]);
                        }
                    }
                    6 => {
                        let source = fields.text_source(line);
                        fields.insert_repeatable_text_from(&key, &line[0..3], |_| None, Some(&source));
                    }
                    7 => {
                        fields.remove(&key);
                    }
                    8 => {
                        let _ = fields.entry(&key).or_insert(json!(1));
                    }
                    9 => {
                        for (_, value) in fields.iter_mut() {
                            let _ = value.take();
                        }
                    }
                    10 => {
                        let _ = fields.iter().count();
                        let _ = fields.clone();
                    }
                    11 => fields.clear(),
                    // Values that own nothing, in place of whatever was there.
                    12 => {
                        fields.insert(key, json!(text.len()));
                    }
                    13 => {
                        fields.insert(key, if text.is_empty() { Value::Null } else { json!(true) });
                    }
                    14 => match fields.entry(&key) {
                        Entry::Vacant(vacant) => {
                            vacant.insert_static("SRC", json!(text));
                        }
                        Entry::Occupied(mut occupied) => {
                            occupied.insert(json!(text));
                        }
                    },
                    15 => {
                        fields.shift_remove(&key);
                    }
                    16 => {
                        fields.extend([(key, json!(text))]);
                    }
                    17 => {
                        fields = Fields::from(fields.to_map());
                    }
                    18 => {
                        let text = serde_json::to_string(&fields).unwrap_or_default();
                        fields = serde_json::from_str(&text).unwrap_or_default();
                    }
                    19 => {
                        let _ = fields.remove_entry(&key);
                    }
                    _ => {}
                }
                prop_assert!(fields.owns_nothing_is_true());
            }
        }
    }

    #[test]
    fn a_key_value_line_owns_nothing() {
        // What the key=value reader stores: spans of its text under `'static` names. Drop
        // then skips the entries.
        let line = "SRC=10.0.0.1 DST=10.0.0.2";
        let mut fields = Fields::new();
        let source = fields.text_source(line);
        fields.push_absent_span(Cow::Borrowed("SRC"), key_bit("SRC"), &source, 4..12);
        fields.push_absent_span(Cow::Borrowed("DST"), key_bit("DST"), &source, 17..25);
        assert!(fields.owns_nothing);
        assert_eq!(fields.get_str("DST"), Some("10.0.0.2"));
        assert!(
            fields.owns_nothing,
            "a read of the stored text builds nothing"
        );
        assert_eq!(fields.get("SRC"), Some(&json!("10.0.0.1")));
        assert!(
            fields.built_values.load(Ordering::Relaxed),
            "a `Value` was built"
        );
        fields.clear();
        assert!(fields.owns_nothing && !fields.built_values.load(Ordering::Relaxed));
        fields.insert_text("user".into(), "an");
        assert!(fields.owns_nothing, "a 'static name over a text span");
        fields.insert(Cow::Owned("from-the-record".into()), json!(1));
        assert!(!fields.owns_nothing);
    }

    fn operations() -> impl Strategy<Value = Vec<(u8, String, i64)>> {
        // Few distinct keys (so inserts repeat and removes hit), enough entries to cross
        // the index threshold.
        proptest::collection::vec((0u8..4, "[a-e]{0,2}|k[0-9]{1,2}", any::<i64>()), 0..120)
    }

    fn text_operations() -> impl Strategy<Value = Vec<(u8, String, String)>> {
        proptest::collection::vec(
            (0u8..6, "[a-e]{0,2}|k[0-9]{1,2}", "[a-zé0-9 \"\\\\]{0,6}"),
            0..120,
        )
    }

    proptest! {
        /// Values kept as text behave as the `Value::String`s they stand for, whatever is done
        /// to the map in between: the same JSON, lookups, replacements, removals, mutable
        /// access and conversions as a `serde_json::Map` given the strings.
        #[test]
        fn text_values_are_the_strings_they_stand_for(ops in text_operations()) {
            let mut ours = Fields::new();
            let mut theirs = Map::new();
            for (op, key, text) in ops {
                match op {
                    0 => prop_assert_eq!(ours.remove(&key), theirs.remove(&key)),
                    1 => prop_assert_eq!(
                        ours.insert(key.clone().into(), json!(text.len())),
                        theirs.insert(key, json!(text.len()))
                    ),
                    2 => {
                        let stored = ours.get_stored(&key).map(StoredValue::to_value);
                        prop_assert_eq!(stored.as_ref(), theirs.get(&key));
                        prop_assert_eq!(ours.get(&key), theirs.get(&key));
                    }
                    3 => {
                        // Mutable access turns a text value into a `Value` in place.
                        if let (Some(mine), Some(other)) = (ours.get_mut(&key), theirs.get_mut(&key)) {
                            prop_assert_eq!(&*mine, &*other);
                            *mine = json!([mine.take(), 1]);
                            *other = json!([other.take(), 1]);
                        }
                    }
                    _ => prop_assert_eq!(
                        ours.insert_text(key.clone().into(), &text),
                        theirs.insert(key, json!(text))
                    ),
                }
            }
            let our_text = serde_json::to_string(&ours).unwrap_or_default();
            let their_text = serde_json::to_string(&theirs).unwrap_or_default();
            prop_assert_eq!(&our_text, &their_text);
            prop_assert_eq!(sonic_rs::to_string(&ours).unwrap_or_default(), their_text.clone());
            for (key, value) in &theirs {
                prop_assert_eq!(ours.get(key), Some(value));
                prop_assert!(ours.get_stored(key).is_some_and(|stored| stored == *value));
            }
            let through_values = Fields::from(theirs.clone());
            prop_assert_eq!(&through_values, &ours);
            prop_assert_eq!(&ours.clone(), &ours);
            prop_assert_eq!(ours.to_map(), theirs.clone());
            let entries: Vec<(String, Value)> = ours
                .clone()
                .into_iter()
                .map(|(key, value)| (key.into_owned(), value))
                .collect();
            let expected: Vec<(String, Value)> = theirs.clone().into_iter().collect();
            prop_assert_eq!(entries, expected);
            let mut mutated = ours.clone();
            for (_, value) in &mut mutated {
                *value = json!([value.take()]);
            }
            for (key, value) in &theirs {
                prop_assert_eq!(mutated.get(key), Some(&json!([value])));
            }
            prop_assert_eq!(ours.into_map(), theirs);
        }

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
