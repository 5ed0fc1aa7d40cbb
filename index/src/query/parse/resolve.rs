//! Syntax tree → [`Query`]: field names looked up in the catalogue, values checked against
//! the field's kind and normalised with [`crate::text`].

use chrono::{DateTime, NaiveDate, Utc};

use super::ast::Node;
use super::lexer::{Bare, FieldName, RangeEnd, RangeSyntax, Term, Value};
use crate::fields::{self, FieldKind, FieldSpec, ORIGINAL_FIELDS_PREFIX};
use crate::query::{Bound, Condition, FieldMatch, Query, Range, Target};
use crate::{text, IndexError};

/// The pseudo-field of `_exists_:field`.
const EXISTS: &str = "_exists_";

/// Resolves a whole tree.
pub(super) fn resolve(node: Node) -> Result<Query, IndexError> {
    resolve_in(node, None)
}

/// A resolved field name.
#[derive(Debug, Clone)]
enum Field {
    Named(&'static FieldSpec),
    Original(String),
}

impl Field {
    fn target(&self) -> Target {
        match self {
            Field::Named(spec) => Target::Field(spec.name),
            Field::Original(path) => Target::Original(path.clone()),
        }
    }

    /// Original fields match like keywords.
    fn kind(&self) -> FieldKind {
        match self {
            Field::Named(spec) => spec.kind,
            Field::Original(_) => FieldKind::Keyword,
        }
    }

    fn name(&self) -> String {
        match self {
            Field::Named(spec) => spec.name.to_owned(),
            Field::Original(path) => format!("{ORIGINAL_FIELDS_PREFIX}{path}"),
        }
    }
}

/// The field of the `field:( … )` group being resolved.
struct GroupField {
    field: Field,
    name: String,
}

fn resolve_in(node: Node, group: Option<&GroupField>) -> Result<Query, IndexError> {
    match node {
        Node::Term(term) => resolve_term(term, group),
        Node::FieldGroup { field, inner } => {
            if let Some(outer) = group {
                return Err(field_in_group(&field, outer));
            }
            if field.name == EXISTS {
                return Err(IndexError::query(
                    field.position,
                    "`_exists_:` takes one field name, as in _exists_:user.name",
                ));
            }
            let resolved = GroupField {
                field: resolve_field(&field)?,
                name: field.name,
            };
            resolve_in(*inner, Some(&resolved))
        }
        Node::And(children) => {
            let children = children
                .into_iter()
                .map(|child| resolve_in(child, group))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(and(children))
        }
        Node::Or(children) => {
            let children = children
                .into_iter()
                .map(|child| resolve_in(child, group))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(or(children))
        }
        Node::Not(inner) => Ok(not(resolve_in(*inner, group)?)),
    }
}

/// All of `children`: nested `And`s flattened, `All` dropped, one child is itself.
fn and(children: Vec<Query>) -> Query {
    let mut flat = Vec::with_capacity(children.len());
    for child in children {
        match child {
            Query::And(inner) => flat.extend(inner),
            Query::All => {}
            other => flat.push(other),
        }
    }
    match flat.len() {
        0 => Query::All,
        1 => flat.pop().unwrap_or(Query::All),
        _ => Query::And(flat),
    }
}

/// Any of `children`: nested `Or`s flattened, `All` if one is `All`, one child is itself.
fn or(children: Vec<Query>) -> Query {
    let mut flat = Vec::with_capacity(children.len());
    for child in children {
        match child {
            Query::Or(inner) => flat.extend(inner),
            Query::All => return Query::All,
            other => flat.push(other),
        }
    }
    match flat.len() {
        0 => Query::All,
        1 => flat.pop().unwrap_or(Query::All),
        _ => Query::Or(flat),
    }
}

/// Not `query`; a double negation cancels out.
fn not(query: Query) -> Query {
    match query {
        Query::Not(inner) => *inner,
        other => Query::Not(Box::new(other)),
    }
}

fn resolve_term(term: Term, group: Option<&GroupField>) -> Result<Query, IndexError> {
    let field = match (&term.field, group) {
        (Some(name), Some(outer)) => return Err(field_in_group(name, outer)),
        (Some(name), None) if name.name == EXISTS => return exists(term.value, term.position),
        (Some(name), None) => Some(resolve_field(name)?),
        (None, Some(outer)) => Some(outer.field.clone()),
        (None, None) => None,
    };
    let Some(field) = field else {
        return default_text(term.value, term.position);
    };
    let condition = match field.kind() {
        FieldKind::Keyword => keyword_condition(&field, term.value, term.position)?,
        FieldKind::Text => text_condition(&field, term.value, term.position)?,
        FieldKind::Number => number_condition(&field, term.value, term.position)?,
        FieldKind::Time => time_condition(&field, term.value, term.position)?,
    };
    Ok(Query::Match(FieldMatch {
        target: field.target(),
        condition,
    }))
}

fn resolve_field(name: &FieldName) -> Result<Field, IndexError> {
    if let Some(path) = name.name.strip_prefix(ORIGINAL_FIELDS_PREFIX) {
        if path.is_empty() {
            return Err(IndexError::query(
                name.position,
                "`fields.` needs the name of an original field after it, as in fields.EventID",
            ));
        }
        return Ok(Field::Original(path.to_owned()));
    }
    fields::lookup(&name.name)
        .map(Field::Named)
        .ok_or_else(|| unknown_field(&name.name, name.position))
}

/// `unknown field "x"; did you mean a, b or fields.x?`
fn unknown_field(name: &str, position: usize) -> IndexError {
    let mut candidates: Vec<String> = fields::suggestions(name)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let close = !candidates.is_empty();
    if !name.starts_with(ORIGINAL_FIELDS_PREFIX) && name != EXISTS {
        candidates.push(format!("{ORIGINAL_FIELDS_PREFIX}{name}"));
    }
    let mut message = format!("unknown field \"{name}\"");
    if let Some((last, first)) = candidates.split_last() {
        message.push_str("; did you mean ");
        if !first.is_empty() {
            message.push_str(&first.join(", "));
            message.push_str(" or ");
        }
        message.push_str(last);
        message.push('?');
    }
    if !close {
        message.push_str(" (to search for text with a `:`, write `\\:` or quote the text)");
    }
    IndexError::query(position, message)
}

fn field_in_group(name: &FieldName, group: &GroupField) -> IndexError {
    IndexError::query(
        name.position,
        format!(
            "a field name inside `{}:( … )`: the group's field applies to every term in it",
            group.name
        ),
    )
}

/// `_exists_:field`.
fn exists(value: Value, position: usize) -> Result<Query, IndexError> {
    let name = match value {
        Value::Bare(bare) if !bare.wildcards => bare.text,
        Value::Quoted(text) => text,
        _ => {
            return Err(IndexError::query(
                position,
                "`_exists_:` takes one field name, as in _exists_:user.name",
            ))
        }
    };
    let field = resolve_field(&FieldName { name, position })?;
    Ok(Query::Match(FieldMatch {
        target: field.target(),
        condition: Condition::Exists,
    }))
}

/// A word or phrase without a field: the default text fields.
fn default_text(value: Value, position: usize) -> Result<Query, IndexError> {
    if let Value::Bare(bare) = &value {
        if bare.is_star() {
            return Ok(Query::All);
        }
    }
    let condition = text_value(value, position, "the text")?;
    Ok(Query::Match(FieldMatch {
        target: Target::DefaultText,
        condition,
    }))
}

fn keyword_condition(
    field: &Field,
    value: Value,
    position: usize,
) -> Result<Condition, IndexError> {
    match value {
        Value::Bare(bare) if bare.is_star() => Ok(Condition::Exists),
        Value::Bare(bare) if bare.wildcards => {
            no_mixed_wildcards(&bare, position)?;
            Ok(Condition::Wildcard(text::fold(&bare.text)))
        }
        Value::Bare(Bare { text: value, .. }) | Value::Quoted(value) => {
            if value.is_empty() {
                return Err(empty_value(field, position));
            }
            Ok(Condition::Exact(text::keyword(&value)))
        }
        Value::Range(_) => Err(not_rangeable(field, position)),
    }
}

fn text_condition(field: &Field, value: Value, position: usize) -> Result<Condition, IndexError> {
    match value {
        Value::Bare(bare) if bare.is_star() => Ok(Condition::Exists),
        Value::Range(_) => Err(not_rangeable(field, position)),
        value => text_value(value, position, &field.name()),
    }
}

/// A text value: a phrase of its tokens, or a one-word wildcard. `what` names the field for
/// messages.
fn text_value(value: Value, position: usize, what: &str) -> Result<Condition, IndexError> {
    let (value, quoted) = match value {
        Value::Bare(bare) if bare.wildcards => {
            no_mixed_wildcards(&bare, position)?;
            let glob = text::fold(&bare.text);
            if !glob
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '*' | '?'))
            {
                return Err(IndexError::query(
                    position,
                    format!(
                        "wildcards in text fields match one word: \"{}\" is several words or \
                         has punctuation; drop the wildcard to search for the words",
                        bare.text
                    ),
                ));
            }
            return Ok(Condition::Wildcard(glob));
        }
        Value::Bare(bare) => (bare.text, false),
        Value::Quoted(text) => (text, true),
        Value::Range(_) => {
            return Err(IndexError::query(
                position,
                "a range needs a number or time field in front of it",
            ))
        }
    };
    let tokens = text::tokens(&value);
    if tokens.is_empty() {
        let message = if quoted {
            format!("the phrase \"{value}\" has no letters or digits to search {what} for")
        } else {
            format!("`{value}` has no letters or digits to search {what} for")
        };
        return Err(IndexError::query(position, message));
    }
    Ok(Condition::Phrase(tokens))
}

fn number_condition(field: &Field, value: Value, position: usize) -> Result<Condition, IndexError> {
    let range = match value {
        Value::Bare(bare) if bare.is_star() => return Ok(Condition::Exists),
        Value::Bare(bare) if bare.wildcards => return Err(no_wildcards(field, position)),
        Value::Bare(Bare { text: value, .. }) | Value::Quoted(value) => {
            Range::exactly(number(field, &value, position)?)
        }
        Value::Range(range) => {
            let lower = number_bound(field, &range.lower)?;
            let upper = number_bound(field, &range.upper)?;
            checked_range(lower, upper, position)?
        }
    };
    Ok(Condition::NumberRange(range))
}

fn number(field: &Field, value: &str, position: usize) -> Result<u64, IndexError> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(number) = value.parse() {
            return Ok(number);
        }
        return Err(IndexError::query(
            position,
            format!("{} is a number field: {value} is too large", field.name()),
        ));
    }
    Err(IndexError::query(
        position,
        format!(
            "{} is a number field: \"{value}\" is not a whole number",
            field.name()
        ),
    ))
}

fn number_bound(field: &Field, end: &RangeEnd) -> Result<Bound<u64>, IndexError> {
    let Some(value) = &end.value else {
        return Ok(Bound::Unbounded);
    };
    let number = number(field, value, end.position)?;
    Ok(if end.inclusive {
        Bound::Included(number)
    } else {
        Bound::Excluded(number)
    })
}

/// A time value: a day (`2026-11-22`) or an RFC 3339 date-time.
enum TimeValue {
    Day {
        start: DateTime<Utc>,
        next: DateTime<Utc>,
    },
    Instant(DateTime<Utc>),
}

fn time_condition(field: &Field, value: Value, position: usize) -> Result<Condition, IndexError> {
    let range = match value {
        Value::Bare(bare) if bare.is_star() => return Ok(Condition::Exists),
        Value::Bare(bare) if bare.wildcards => return Err(no_wildcards(field, position)),
        Value::Bare(Bare { text: value, .. }) | Value::Quoted(value) => {
            match time(field, &value, position)? {
                TimeValue::Day { start, next } => Range {
                    lower: Bound::Included(start),
                    upper: Bound::Excluded(next),
                },
                TimeValue::Instant(instant) => Range::exactly(instant),
            }
        }
        Value::Range(RangeSyntax { lower, upper }) => {
            let lower = time_bound(field, &lower, true)?;
            let upper = time_bound(field, &upper, false)?;
            checked_range(lower, upper, position)?
        }
    };
    Ok(Condition::TimeRange(range))
}

/// One end of a time range. A day as an end stands for the whole day: an inclusive upper end
/// `2026-11-22]` reaches to the end of that day, an exclusive lower end `{2026-11-22` starts
/// after it.
fn time_bound(
    field: &Field,
    end: &RangeEnd,
    lower: bool,
) -> Result<Bound<DateTime<Utc>>, IndexError> {
    let Some(value) = &end.value else {
        return Ok(Bound::Unbounded);
    };
    Ok(
        match (time(field, value, end.position)?, lower, end.inclusive) {
            (TimeValue::Instant(instant), _, true) => Bound::Included(instant),
            (TimeValue::Instant(instant), _, false) => Bound::Excluded(instant),
            (TimeValue::Day { start, .. }, true, true) => Bound::Included(start),
            (TimeValue::Day { next, .. }, true, false) => Bound::Included(next),
            (TimeValue::Day { next, .. }, false, true) => Bound::Excluded(next),
            (TimeValue::Day { start, .. }, false, false) => Bound::Excluded(start),
        },
    )
}

fn time(field: &Field, value: &str, position: usize) -> Result<TimeValue, IndexError> {
    let bad = |why: &str| {
        IndexError::query(
            position,
            format!(
                "{} is a time field: \"{value}\" {why}; write a day (2026-11-22) or a date-time \
                 with its zone (2026-11-22T10:00:00Z, 2026-11-22T10:00:00+07:00)",
                field.name()
            ),
        )
    };
    let is_day = value.len() == 10
        && value.bytes().enumerate().all(|(index, byte)| match index {
            4 | 7 => byte == b'-',
            _ => byte.is_ascii_digit(),
        });
    if is_day {
        let day = NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map_err(|_| bad("is not a date in the calendar"))?;
        let next = day.succ_opt().ok_or_else(|| bad("is out of range"))?;
        return Ok(TimeValue::Day {
            start: day.and_time(chrono::NaiveTime::MIN).and_utc(),
            next: next.and_time(chrono::NaiveTime::MIN).and_utc(),
        });
    }
    match DateTime::parse_from_rfc3339(value) {
        Ok(instant) => Ok(TimeValue::Instant(instant.with_timezone(&Utc))),
        Err(_) if chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f").is_ok() => {
            Err(bad("has no time zone"))
        }
        Err(_) => Err(bad("is not a date")),
    }
}

/// The range from `lower` to `upper`, unless no value can be in it.
fn checked_range<T: PartialOrd + Copy>(
    lower: Bound<T>,
    upper: Bound<T>,
    position: usize,
) -> Result<Range<T>, IndexError> {
    let ends = |bound| match bound {
        Bound::Included(value) => Some((value, true)),
        Bound::Excluded(value) => Some((value, false)),
        Bound::Unbounded => None,
    };
    if let (Some((low, low_included)), Some((high, high_included))) = (ends(lower), ends(upper)) {
        if low > high || (low == high && !(low_included && high_included)) {
            return Err(IndexError::query(
                position,
                "the range is empty: no value is both above its lower end and below its upper end",
            ));
        }
    }
    Ok(Range { lower, upper })
}

fn no_mixed_wildcards(bare: &Bare, position: usize) -> Result<(), IndexError> {
    if bare.escaped_wildcards {
        return Err(IndexError::query(
            position,
            format!(
                "\"{}\" mixes wildcards with an escaped (literal) `*` or `?`; a value can have \
                 one or the other",
                bare.text
            ),
        ));
    }
    Ok(())
}

fn no_wildcards(field: &Field, position: usize) -> IndexError {
    IndexError::query(
        position,
        format!(
            "wildcards do not work on {}; use a range, as in {}:[1000 TO 1999]",
            field.name(),
            field.name()
        ),
    )
}

fn empty_value(field: &Field, position: usize) -> IndexError {
    IndexError::query(
        position,
        format!(
            "empty value for {name}; to find events without it, write NOT _exists_:{name}",
            name = field.name()
        ),
    )
}

fn not_rangeable(field: &Field, position: usize) -> IndexError {
    let rangeable: Vec<&str> = fields::FIELDS
        .iter()
        .filter(|spec| matches!(spec.kind, FieldKind::Number | FieldKind::Time))
        .map(|spec| spec.name)
        .collect();
    IndexError::query(
        position,
        format!(
            "ranges work on number and time fields: {}; {} is not one (to search for `<`, `>`, \
             `[` or `{{` in it, quote the value)",
            rangeable.join(", "),
            field.name()
        ),
    )
}
