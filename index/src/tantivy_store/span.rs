//! `message:…` over `raw`'s positions, for events whose message is a token run of their raw
//! line (see [`text::token_span`](crate::text::token_span)).
//!
//! Nearly every message is the tail of its raw line, so indexing it as a field of its own put
//! the same tokens into tantivy twice (about a tenth of the indexing CPU). Since schema version
//! 4 such a message is not indexed; its span — which of `raw`'s token positions it covers — is
//! kept in the [`MESSAGE_SPAN`] fast column instead, and `message:word`, `message:"a phrase"`
//! and `message:wild*` match when `raw` has the word, phrase or a matching token inside the
//! span. Together with the `message` field (still indexed for the other events) that is
//! exactly what indexing every message gave.

use std::sync::Arc;

use tantivy::columnar::Column;
use tantivy::postings::{Postings, SegmentPostings};
use tantivy::query::{
    AutomatonWeight, BitSetDocSet, ConstScorer, EmptyScorer, EnableScoring, Explanation, Query,
    Scorer, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{BitSet, DocId, DocSet, Score, SegmentReader, TantivyError, Term, TERMINATED};
use tantivy_fst::Regex;

/// The fast column of the message's span in `raw`: `from << 32 | to`, token positions, `to`
/// excluded. Events whose message is indexed on its own (or that have none) have no value.
pub const MESSAGE_SPAN: &str = "message_span";

/// The column value of the span `from..to` (`None` past 2³² tokens, which no line has).
pub fn pack(from: usize, to: usize) -> Option<u64> {
    let from = u32::try_from(from).ok()?;
    let to = u32::try_from(to).ok()?;
    Some((u64::from(from) << 32) | u64::from(to))
}

fn unpack(value: u64) -> (u64, u64) {
    (value >> 32, value & u64::from(u32::MAX))
}

/// Matches events whose message span in `raw` holds the phrase or a token of the pattern.
#[derive(Clone, Debug)]
pub struct MessageSpanQuery {
    raw: Field,
    matcher: Matcher,
}

#[derive(Clone, Debug)]
enum Matcher {
    /// Consecutive tokens (one for a single word), all inside the span.
    Phrase(Vec<Term>),
    /// One token matching the regex (a wildcard), inside the span.
    Pattern(Arc<Regex>),
}

impl MessageSpanQuery {
    /// The phrase `tokens` (already folded and split) inside the span; at least one token.
    pub fn phrase(raw: Field, tokens: &[String]) -> Self {
        MessageSpanQuery {
            raw,
            matcher: Matcher::Phrase(
                tokens
                    .iter()
                    .map(|token| Term::from_field_text(raw, token))
                    .collect(),
            ),
        }
    }

    /// A token matching `pattern` (the regex a wildcard became) inside the span.
    pub fn pattern(raw: Field, pattern: &str) -> Result<Self, String> {
        let regex = Regex::new(pattern).map_err(|error| error.to_string())?;
        Ok(MessageSpanQuery {
            raw,
            matcher: Matcher::Pattern(Arc::new(regex)),
        })
    }
}

impl Query for MessageSpanQuery {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for MessageSpanQuery {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let Some(spans) = reader.fast_fields().column_opt::<u64>(MESSAGE_SPAN)? else {
            // No event of this segment has its message inside raw.
            return Ok(Box::new(EmptyScorer));
        };
        let mut matches = BitSet::with_max_value(reader.max_doc());
        match &self.matcher {
            Matcher::Phrase(terms) => {
                phrase_matches(reader, self.raw, terms, &spans, &mut matches)?
            }
            Matcher::Pattern(regex) => {
                pattern_matches(reader, self.raw, regex, &spans, &mut matches)?
            }
        }
        // Like tantivy's own wildcard queries: the matches computed up front, a constant score
        // (results are ordered by time, never by score).
        Ok(Box::new(ConstScorer::new(
            BitSetDocSet::from(matches),
            boost,
        )))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.doc() <= doc && scorer.seek(doc) == doc {
            Ok(Explanation::new("MessageSpanQuery", 1.0))
        } else {
            Err(TantivyError::InvalidArgument(format!(
                "document {doc} does not match"
            )))
        }
    }
}

/// Sets the documents where the terms occur consecutively inside the span.
fn phrase_matches(
    reader: &SegmentReader,
    raw: Field,
    terms: &[Term],
    spans: &Column<u64>,
    matches: &mut BitSet,
) -> tantivy::Result<()> {
    let inverted = reader.inverted_index(raw)?;
    let mut postings: Vec<SegmentPostings> = Vec::with_capacity(terms.len());
    for term in terms {
        match inverted.read_postings(term, IndexRecordOption::WithFreqsAndPositions)? {
            Some(found) => postings.push(found),
            // A term this segment never saw: no document has the phrase.
            None => return Ok(()),
        }
    }
    if postings.is_empty() {
        return Ok(());
    }
    let mut positions: Vec<Vec<u32>> = vec![Vec::new(); postings.len()];
    let mut doc = postings[0].doc();
    while doc != TERMINATED {
        // Leapfrog until every term's postings stand on the same document.
        let mut target = doc;
        let mut aligned = false;
        while !aligned && target != TERMINATED {
            aligned = true;
            for list in postings.iter_mut() {
                // `seek` must not go backwards; a list can start past the others.
                let at = if list.doc() < target {
                    list.seek(target)
                } else {
                    list.doc()
                };
                if at != target {
                    target = at;
                    aligned = false;
                    break;
                }
            }
        }
        if target == TERMINATED {
            break;
        }
        if let Some(span) = spans.first(target) {
            for (list, out) in postings.iter_mut().zip(positions.iter_mut()) {
                out.clear();
                list.positions(out);
            }
            if phrase_in_span(&positions, unpack(span)) {
                matches.insert(target);
            }
        }
        doc = postings[0].advance();
    }
    Ok(())
}

/// Whether the tokens start at some position `p` with `from <= p` and `p + len <= to`, token
/// `i` at `p + i` (`positions[i]` ascending, as tantivy returns them).
fn phrase_in_span(positions: &[Vec<u32>], (from, to): (u64, u64)) -> bool {
    let Some((first, rest)) = positions.split_first() else {
        return false;
    };
    let len = positions.len() as u64;
    for &start in first {
        let start = u64::from(start);
        if start < from {
            continue;
        }
        if start + len > to {
            break;
        }
        let consecutive = rest.iter().zip(1..).all(|(list, offset)| {
            u32::try_from(start + offset)
                .is_ok_and(|position| list.binary_search(&position).is_ok())
        });
        if consecutive {
            return true;
        }
    }
    false
}

/// Sets the documents where a token matching `regex` occurs inside the span.
fn pattern_matches(
    reader: &SegmentReader,
    raw: Field,
    regex: &Arc<Regex>,
    spans: &Column<u64>,
    matches: &mut BitSet,
) -> tantivy::Result<()> {
    let inverted = reader.inverted_index(raw)?;
    let term_infos =
        AutomatonWeight::<Regex>::new(raw, regex.clone()).get_match_term_infos(reader)?;
    let mut positions = Vec::new();
    for term_info in &term_infos {
        let mut list = inverted
            .read_postings_from_terminfo(term_info, IndexRecordOption::WithFreqsAndPositions)?;
        let mut doc = list.doc();
        while doc != TERMINATED {
            if !matches.contains(doc) {
                if let Some(span) = spans.first(doc) {
                    let (from, to) = unpack(span);
                    positions.clear();
                    list.positions(&mut positions);
                    if positions
                        .iter()
                        .any(|&position| (from..to).contains(&u64::from(position)))
                    {
                        matches.insert(doc);
                    }
                }
            }
            doc = list.advance();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_pack_and_unpack() {
        assert_eq!(pack(3, 9).map(unpack), Some((3, 9)));
        assert_eq!(pack(0, 0).map(unpack), Some((0, 0)));
        assert_eq!(pack(1 << 33, 1), None);
    }

    #[test]
    fn phrases_must_lie_inside_the_span() {
        // Token a at 1 and 5, b at 2 and 7.
        let positions = vec![vec![1, 5], vec![2, 7]];
        assert!(phrase_in_span(&positions, (0, 3)));
        assert!(phrase_in_span(&positions, (1, 3)));
        assert!(!phrase_in_span(&positions, (2, 10)));
        assert!(!phrase_in_span(&positions, (0, 2)));
        assert!(!phrase_in_span(&[vec![5], vec![7]], (0, 10)));
        assert!(phrase_in_span(&[vec![5]], (5, 6)));
        assert!(!phrase_in_span(&[vec![5]], (5, 5)));
    }
}
