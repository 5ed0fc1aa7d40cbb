//! The tantivy schema of an event and the document built from one.
//!
//! Matching never relies on tantivy's own analyzers: keyword values arrive folded
//! ([`text::keyword`]) and text is split by our tokenizer ([`super::tokenizer`], which is
//! [`text::for_each_token`]), so the terms are exactly those the ClickHouse store compares.

use citysoc_collector::Event;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST,
    INDEXED, STORED,
};
use tantivy::TantivyDocument;

use super::span::{self, MESSAGE_SPAN};
use super::tokenizer::FOLDED;
use crate::document::{self, FieldValue};
use crate::fields::{FieldKind, FIELDS};
use crate::text;

/// Tokenizer name for keyword fields: values are folded before they reach tantivy, so the
/// whole value is one term.
const RAW: &str = "raw";

/// Field handles of the event schema.
#[derive(Debug, Clone)]
pub struct EventSchema {
    /// The schema itself.
    pub schema: Schema,
    /// `timestamp`, microseconds (indexed for ranges, fast for sorting and histograms).
    pub timestamp: Field,
    /// `received_at`, microseconds.
    pub received_at: Field,
    /// High and low 64 bits of the event id: the sort tie-breaker.
    pub id_high: Field,
    /// See `id_high`.
    pub id_low: Field,
    /// The catalogue fields (keyword, number, text), by catalogue name.
    named: Vec<(&'static str, FieldKind, Field)>,
    /// Original fields as `path \u{1f} folded value` terms (indexed only).
    pub original: Field,
    /// Names of the text fields an event has, for `_exists_` (keyword and number fields answer
    /// it from their fast columns, original fields from their terms' prefix).
    pub present: Field,
    /// The whole event as JSON (stored only).
    pub event: Field,
    /// Since version 4: where the message lies in `raw`'s tokens when it is a token run of
    /// it, instead of indexing its tokens a second time (see [`super::span`]).
    pub message_span: Option<Field>,
}

/// The tantivy name of a catalogue field (tantivy reads dots in names as JSON paths).
pub fn tantivy_name(name: &str) -> String {
    name.replace('.', "_")
}

/// The day-index format this build writes. 1: the first; 2: original fields without a fast
/// column, and term dictionaries as sstables instead of FSTs (tantivy's `quickwit` feature:
/// building the FSTs was a tenth of the indexing time); 3: `id` without a fast column, and
/// time and number fields without terms, no field norms (see [`EventSchema::build`]). A version 1 index
/// cannot be read by this build (tantivy refuses the other dictionary type); it is refused up
/// front with a clear error instead, as version 2 is (its extra columns and terms would be
/// harmless to read, but one build reads one format). 4: a `message` that is a token run of
/// `raw` is not indexed; its span in `raw` is a fast column ([`super::span`]).
pub const SCHEMA_VERSION: u32 = 4;

/// The one keyword field without a fast column: every event has its own id, so nothing
/// counts or sorts by it (sorting uses `id_high`/`id_low`), and its column was a million
/// unique strings a day to build. Its terms stay (dedup and lookups by id).
pub const ID_FIELD: &str = "id";

/// The raw record: every event has one, so `_exists_:raw` needs no `present` term.
pub const RAW_FIELD: &str = "raw";

/// The text field that is indexed as a span of `raw` when it is one (see [`super::span`]).
pub const MESSAGE: &str = "message";

impl EventSchema {
    /// Builds the schema every new day index uses ([`SCHEMA_VERSION`]).
    pub fn new() -> Self {
        Self::build(SCHEMA_VERSION)
    }

    /// Which schema version `schema` (a day index's) is, if this build can read and write it:
    /// only the current one. Version 1 is told apart by its schema (the `original` fast
    /// column), which every index written with FST dictionaries has.
    pub fn version_of(schema: &Schema) -> Option<u32> {
        (Self::build(SCHEMA_VERSION).schema == *schema).then_some(SCHEMA_VERSION)
    }

    /// The schema of `version` (1 to 4).
    pub fn build(version: u32) -> Self {
        let mut builder = Schema::builder();
        // Since version 3, time and number fields are fast columns only: every query on them
        // is a range (`translate::i64_range`/`u64_range`) or `_exists_`, and tantivy answers
        // both from the fast column whenever the field has one, so their terms (one per
        // event for `timestamp`) were built and never read.
        let numeric = if version >= 3 {
            NumericOptions::default() | FAST
        } else {
            NumericOptions::default() | INDEXED | FAST
        };
        let timestamp = builder.add_i64_field("timestamp", numeric.clone());
        let received_at = builder.add_i64_field("received_at", numeric.clone());
        let id_high = builder.add_u64_field("id_high", FAST);
        let id_low = builder.add_u64_field("id_low", FAST);
        // Since version 3, no field norms: they only feed BM25 scores, and results are
        // ordered by time, never by score (tantivy's queries take a constant norm for a field
        // without them), so recording one per text field and event was wasted work.
        let indexing = || TextFieldIndexing::default().set_fieldnorms(version < 3);
        let keyword_terms = TextOptions::default().set_indexing_options(
            indexing()
                .set_tokenizer(RAW)
                .set_index_option(IndexRecordOption::Basic),
        );
        let keyword = keyword_terms.clone().set_fast(RAW);
        let text = TextOptions::default().set_indexing_options(
            indexing()
                .set_tokenizer(FOLDED)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let mut named = Vec::new();
        for spec in FIELDS {
            let name = tantivy_name(spec.name);
            let field = match spec.kind {
                FieldKind::Time => continue,
                FieldKind::Keyword if version >= 3 && spec.name == ID_FIELD => {
                    builder.add_text_field(&name, keyword_terms.clone())
                }
                FieldKind::Keyword => builder.add_text_field(&name, keyword.clone()),
                FieldKind::Text => builder.add_text_field(&name, text.clone()),
                FieldKind::Number => builder.add_u64_field(&name, numeric.clone()),
            };
            named.push((spec.name, spec.kind, field));
        }
        // Original fields are not fast: ~15 values an event made their column a fifth of the
        // indexing time; counting by them reads their postings instead.
        let original_options = TextOptions::default().set_indexing_options(
            indexing()
                .set_tokenizer(RAW)
                .set_index_option(IndexRecordOption::Basic),
        );
        let original = builder.add_text_field(
            "original",
            if version == 1 {
                original_options.set_fast(RAW)
            } else {
                original_options
            },
        );
        let present = builder.add_text_field(
            "present",
            TextOptions::default().set_indexing_options(
                indexing()
                    .set_tokenizer(RAW)
                    .set_index_option(IndexRecordOption::Basic),
            ),
        );
        let event = builder.add_bytes_field("event", STORED);
        let message_span = (version >= 4)
            .then(|| builder.add_u64_field(MESSAGE_SPAN, NumericOptions::default() | FAST));
        EventSchema {
            schema: builder.build(),
            timestamp,
            received_at,
            id_high,
            id_low,
            named,
            original,
            present,
            event,
            message_span,
        }
    }

    /// The handle of a catalogue field (`None` for time fields and unknown names).
    pub fn field(&self, name: &str) -> Option<Field> {
        self.named
            .iter()
            .find(|(named, _, _)| *named == name)
            .map(|(_, _, field)| *field)
    }

    /// The tantivy document of `event`.
    pub fn document(&self, event: &Event) -> Result<TantivyDocument, serde_json::Error> {
        let mut doc = TantivyDocument::new();
        doc.add_i64(self.timestamp, event.timestamp.timestamp_micros());
        doc.add_i64(self.received_at, event.received_at.timestamp_micros());
        let (high, low) = id_key(&event.id);
        doc.add_u64(self.id_high, high);
        doc.add_u64(self.id_low, low);
        let raw = document::raw_text(event);
        let mut keyword = String::new();
        document::visit_fields(event, |name, kind, value| {
            let Some(field) = self.field(name) else {
                return;
            };
            match (kind, value) {
                (FieldKind::Number, FieldValue::Number(number)) => doc.add_u64(field, number),
                (FieldKind::Keyword, FieldValue::Text(value)) => {
                    // One buffer for every keyword of the event (tantivy copies the value).
                    keyword.clear();
                    text::keyword_into(&value, &mut keyword);
                    doc.add_text(field, &keyword)
                }
                (FieldKind::Text, FieldValue::Text(value)) => {
                    let span = self
                        .message_span
                        .filter(|_| name == MESSAGE)
                        .and_then(|column| {
                            let (from, to) = text::token_span(&raw, &value)?;
                            Some((column, span::pack(from, to)?))
                        });
                    match span {
                        // Its tokens are `raw`'s: indexed there once.
                        Some((column, span)) => doc.add_u64(column, span),
                        None => doc.add_text(field, &value),
                    }
                    // Text fields have no fast column for `_exists_` to read. Every event has
                    // a `raw` (`visit_fields` always gives one), so since version 4 its term is
                    // not recorded: `_exists_:raw` is every event.
                    if self.message_span.is_none() || name != RAW_FIELD {
                        doc.add_text(self.present, name);
                    }
                }
                _ => {}
            }
        });
        document::for_each_original_field_term(event, |term| doc.add_text(self.original, term));
        doc.add_bytes(self.event, &serde_json::to_vec(event)?);
        Ok(doc)
    }
}

impl Default for EventSchema {
    fn default() -> Self {
        Self::new()
    }
}

/// The sort tie-breaker of an event id: its 128 bits when it is 32 hex digits (every id the
/// collector makes), otherwise a hash of the text. For hex ids the numeric order equals the
/// text order, which is how ClickHouse sorts them.
pub fn id_key(id: &str) -> (u64, u64) {
    let parsed = (id.len() == 32)
        .then(|| u128::from_str_radix(id, 16).ok())
        .flatten();
    let key = parsed.unwrap_or_else(|| xxhash_rust::xxh3::xxh3_128(id.as_bytes()));
    ((key >> 64) as u64, key as u64)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn tantivy_names_are_unique() {
        let names: BTreeSet<String> = FIELDS.iter().map(|spec| tantivy_name(spec.name)).collect();
        assert_eq!(names.len(), FIELDS.len());
        for reserved in ["original", "present", "event", "id_high", "id_low"] {
            assert!(!names.contains(reserved), "{reserved}");
        }
    }

    #[test]
    fn hex_ids_sort_like_their_text() {
        let a = "0000000000000000ffffffffffffffff";
        let b = "00000000000000010000000000000000";
        assert!(a < b);
        assert!(id_key(a) < id_key(b));
        assert_ne!(id_key("not-hex"), id_key("not-hex2"));
    }
}
