//! When the dedup delete is needed. Replacing an event by id is a `delete_term` before the
//! `add`, and tantivy pays for every delete: it looks the id up in the new segment and in
//! every committed one at the next commit (about a fifth of the indexing time). Almost every
//! event is new, so [`IdFilter`] skips the delete when the id cannot be in the index yet:
//! it was not added since the writer opened (a set of id hashes) and no committed segment of
//! that moment has it (a term lookup in the `id` field).
//!
//! Exactly once: every document in the index was either committed before the filter was
//! made (the lookup sees it: the reader is reloaded first, and only this writer, holding
//! tantivy's lock, commits to the index) or added through this filter since (the set has it).
//! A hash collision only costs a needless delete. Past a configured size the set is dropped at
//! a commit and the filter made again from the segments, which then hold those ids.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use tantivy::schema::Field;
use tantivy::{IndexReader, InvertedIndexReader, Term};

/// The ids that may already be in one day index.
pub struct IdFilter {
    /// xxh3-64 of the folded ids added since the filter was made.
    added: HashSet<u64, BuildHasherDefault<IdentityHasher>>,
    /// The `id` postings of the segments committed when the filter was made.
    committed: Vec<Arc<InvertedIndexReader>>,
    /// The `id` field.
    field: Field,
}

impl IdFilter {
    /// A filter for the index `reader` reads, which must be the index the caller holds the
    /// writer of: reloaded here so it sees every commit.
    pub fn new(reader: &IndexReader, field: Field) -> tantivy::Result<Self> {
        reader.reload()?;
        let searcher = reader.searcher();
        let mut committed = Vec::new();
        for segment in searcher.segment_readers() {
            if segment.max_doc() > 0 {
                committed.push(segment.inverted_index(field)?);
            }
        }
        Ok(IdFilter {
            added: HashSet::default(),
            committed,
            field,
        })
    }

    /// Records `folded_id` (as indexed in `id`) as added, and says whether an event with it
    /// may already be in the index (then the caller deletes it first).
    pub fn may_hold(&mut self, folded_id: &str) -> tantivy::Result<bool> {
        let hash = xxhash_rust::xxh3::xxh3_64(folded_id.as_bytes());
        if !self.added.insert(hash) {
            return Ok(true);
        }
        if self.committed.is_empty() {
            return Ok(false);
        }
        let term = Term::from_field_text(self.field, folded_id);
        for postings in &self.committed {
            if postings.get_term_info(&term)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The `id` field it looks ids up in.
    pub fn field(&self) -> Field {
        self.field
    }

    /// How many ids it remembers.
    pub fn remembered(&self) -> usize {
        self.added.len()
    }
}

/// The hash set's hasher: the keys are xxh3 hashes already.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `u64` keys; fold anything else in, in case.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}
