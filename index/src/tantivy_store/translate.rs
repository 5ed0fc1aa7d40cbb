//! A resolved [`Query`] as tantivy query objects. Values are already folded and tokenized, so
//! every condition becomes terms directly (no query parser, no analyzer).

use std::ops::Bound as StdBound;

use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, ExistsQuery, Occur, PhraseQuery, Query as TantivyQuery,
    RangeQuery, RegexQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::Term;

use super::schema::{tantivy_name, EventSchema, ID_FIELD, MESSAGE, RAW_FIELD};
use super::span::MessageSpanQuery;
use crate::document::original_field_term;
use crate::fields::{self, FieldKind, DEFAULT_TEXT_FIELDS, ORIGINAL_FIELDS_PREFIX};
use crate::query::{glob_to_regex, Bound, Condition, FieldMatch, Query, Range, Target};
use crate::IndexError;

/// Translates `query` for indexes of `schema`.
pub fn translate(schema: &EventSchema, query: &Query) -> Result<Box<dyn TantivyQuery>, IndexError> {
    Ok(match query {
        Query::All => Box::new(AllQuery),
        Query::Match(field_match) => translate_match(schema, field_match)?,
        Query::And(children) => {
            let mut clauses = Vec::with_capacity(children.len());
            let mut positive = false;
            for child in children {
                match child {
                    Query::Not(inner) => clauses.push((Occur::MustNot, translate(schema, inner)?)),
                    child => {
                        positive = true;
                        clauses.push((Occur::Must, translate(schema, child)?));
                    }
                }
            }
            if !positive {
                // Only exclusions: they exclude from everything.
                clauses.push((Occur::Must, Box::new(AllQuery)));
            }
            Box::new(BooleanQuery::new(clauses))
        }
        Query::Or(children) => {
            let clauses = children
                .iter()
                .map(|child| Ok((Occur::Should, translate(schema, child)?)))
                .collect::<Result<Vec<_>, IndexError>>()?;
            Box::new(BooleanQuery::new(clauses))
        }
        Query::Not(inner) => Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery)),
            (Occur::MustNot, translate(schema, inner)?),
        ])),
    })
}

fn translate_match(
    schema: &EventSchema,
    field_match: &FieldMatch,
) -> Result<Box<dyn TantivyQuery>, IndexError> {
    let condition = &field_match.condition;
    match &field_match.target {
        Target::DefaultText => {
            let clauses = DEFAULT_TEXT_FIELDS
                .iter()
                .map(|name| {
                    let field = named(schema, name)?;
                    // A message inside `raw` needs no span check here: whatever matches in it
                    // matches in `raw`, which is searched too.
                    Ok((
                        Occur::Should,
                        indexed_text_condition(schema, name, field, condition)?,
                    ))
                })
                .collect::<Result<Vec<_>, IndexError>>()?;
            Ok(Box::new(BooleanQuery::new(clauses)))
        }
        Target::Original(path) => original_condition(schema, path, condition),
        Target::Field(name) => {
            let spec = fields::lookup(name).ok_or_else(|| unsupported(name, condition))?;
            if *condition == Condition::Exists {
                return Ok(match spec.kind {
                    FieldKind::Text => present(schema, name),
                    // Every event has an id (`document::visit_fields` always gives one), and
                    // `id` has no fast column for `ExistsQuery` to read.
                    _ if *name == ID_FIELD => Box::new(AllQuery),
                    // The other keyword, number and time fields all have fast columns.
                    _ => Box::new(ExistsQuery::new(tantivy_name(name), false)),
                });
            }
            match spec.kind {
                FieldKind::Time => match condition {
                    Condition::TimeRange(range) => {
                        let field = if *name == "received_at" {
                            schema.received_at
                        } else {
                            schema.timestamp
                        };
                        Ok(i64_range(
                            field,
                            &map_range(range, |time| time.timestamp_micros()),
                        ))
                    }
                    _ => Err(unsupported(name, condition)),
                },
                FieldKind::Number => match condition {
                    Condition::NumberRange(range) => {
                        let field = named(schema, name)?;
                        Ok(u64_range(field, range))
                    }
                    _ => Err(unsupported(name, condition)),
                },
                FieldKind::Keyword => {
                    let field = named(schema, name)?;
                    match condition {
                        Condition::Exact(value) => Ok(term(field, value)),
                        Condition::Wildcard(glob) => regex(field, &glob_to_regex(glob)),
                        _ => Err(unsupported(name, condition)),
                    }
                }
                FieldKind::Text => text_condition(schema, name, named(schema, name)?, condition),
            }
        }
    }
}

fn text_condition(
    schema: &EventSchema,
    name: &str,
    field: Field,
    condition: &Condition,
) -> Result<Box<dyn TantivyQuery>, IndexError> {
    let own = indexed_text_condition(schema, name, field, condition)?;
    if name != MESSAGE {
        return Ok(own);
    }
    // Messages inside `raw` are not indexed as `message` (see `super::span`): those events
    // match by `raw`'s tokens within the message's span.
    let raw = named(schema, "raw")?;
    let in_raw: Box<dyn TantivyQuery> = match condition {
        Condition::Phrase(tokens) if tokens.is_empty() => return Ok(own),
        Condition::Phrase(tokens) => Box::new(MessageSpanQuery::phrase(raw, tokens)),
        Condition::Wildcard(glob) => {
            let pattern = glob_to_regex(glob);
            Box::new(MessageSpanQuery::pattern(raw, &pattern).map_err(|error| {
                IndexError::InvalidRequest(format!("wildcard pattern {pattern:?}: {error}"))
            })?)
        }
        // `_exists_:message` reads the `present` terms, added for every message.
        _ => return Ok(own),
    };
    Ok(Box::new(BooleanQuery::new(vec![
        (Occur::Should, own),
        (Occur::Should, in_raw),
    ])))
}

/// A condition on a text field's own terms.
fn indexed_text_condition(
    schema: &EventSchema,
    name: &str,
    field: Field,
    condition: &Condition,
) -> Result<Box<dyn TantivyQuery>, IndexError> {
    match condition {
        Condition::Phrase(tokens) => match tokens.as_slice() {
            [] => Ok(Box::new(EmptyQuery)),
            [token] => Ok(term_with(field, token, IndexRecordOption::Basic)),
            tokens => Ok(Box::new(PhraseQuery::new(
                tokens
                    .iter()
                    .map(|token| Term::from_field_text(field, token))
                    .collect(),
            ))),
        },
        Condition::Wildcard(glob) => regex(field, &glob_to_regex(glob)),
        Condition::Exists => Ok(present(schema, name)),
        _ => Err(unsupported(name, condition)),
    }
}

fn original_condition(
    schema: &EventSchema,
    path: &str,
    condition: &Condition,
) -> Result<Box<dyn TantivyQuery>, IndexError> {
    match condition {
        Condition::Exact(value) => Ok(term(schema.original, &original_field_term(path, value))),
        Condition::Wildcard(glob) => regex(
            schema.original,
            &format!("{}{}", escape_path(path), glob_to_regex(glob)),
        ),
        Condition::Exists => regex(schema.original, &format!("{}.*", escape_path(path))),
        _ => Err(unsupported(
            &format!("{ORIGINAL_FIELDS_PREFIX}{path}"),
            condition,
        )),
    }
}

/// The regex prefix matching `path` literally followed by the separator.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 6);
    for c in path.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out.push_str("\\x1f");
    out
}

fn named(schema: &EventSchema, name: &str) -> Result<Field, IndexError> {
    schema
        .field(name)
        .ok_or_else(|| IndexError::InvalidRequest(format!("field {name} is not indexed")))
}

fn present(schema: &EventSchema, name: &str) -> Box<dyn TantivyQuery> {
    if name == RAW_FIELD {
        // Every event has a raw record, so it has no `present` term (`EventSchema::document`).
        return Box::new(AllQuery);
    }
    term(schema.present, name)
}

fn term(field: Field, value: &str) -> Box<dyn TantivyQuery> {
    term_with(field, value, IndexRecordOption::Basic)
}

fn term_with(field: Field, value: &str, option: IndexRecordOption) -> Box<dyn TantivyQuery> {
    Box::new(TermQuery::new(Term::from_field_text(field, value), option))
}

fn regex(field: Field, pattern: &str) -> Result<Box<dyn TantivyQuery>, IndexError> {
    RegexQuery::from_pattern(pattern, field)
        .map(|query| Box::new(query) as Box<dyn TantivyQuery>)
        .map_err(|error| {
            IndexError::InvalidRequest(format!("wildcard pattern {pattern:?}: {error}"))
        })
}

fn map_range<T: Copy, U>(range: &Range<T>, map: impl Fn(T) -> U) -> Range<U> {
    let bound = |bound: Bound<T>| match bound {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(value) => Bound::Included(map(value)),
        Bound::Excluded(value) => Bound::Excluded(map(value)),
    };
    Range {
        lower: bound(range.lower),
        upper: bound(range.upper),
    }
}

fn std_bound<T>(bound: Bound<T>, term: impl Fn(T) -> Term) -> StdBound<Term> {
    match bound {
        Bound::Unbounded => StdBound::Unbounded,
        Bound::Included(value) => StdBound::Included(term(value)),
        Bound::Excluded(value) => StdBound::Excluded(term(value)),
    }
}

/// A range over an i64 field (time in microseconds).
pub fn i64_range(field: Field, range: &Range<i64>) -> Box<dyn TantivyQuery> {
    Box::new(RangeQuery::new(
        std_bound(range.lower, |value| Term::from_field_i64(field, value)),
        std_bound(range.upper, |value| Term::from_field_i64(field, value)),
    ))
}

fn u64_range(field: Field, range: &Range<u64>) -> Box<dyn TantivyQuery> {
    Box::new(RangeQuery::new(
        std_bound(range.lower, |value| Term::from_field_u64(field, value)),
        std_bound(range.upper, |value| Term::from_field_u64(field, value)),
    ))
}

fn unsupported(name: &str, condition: &Condition) -> IndexError {
    IndexError::InvalidRequest(format!("{condition:?} cannot apply to field {name}"))
}
