//! A [`Query`] as a SQL condition with bound values.
//!
//! User values (words, globs, numbers, agency names, cursors) never enter the SQL text: each is
//! a `?` placeholder filled by the `clickhouse` crate's `bind()`, which quotes and escapes it.
//! The only names written into the SQL are the columns of [`super::row::column`].
//!
//! Every condition evaluates to 0 or 1, never NULL (`ifNull(…, 0)` around Nullable columns),
//! so an event without the field fails the condition and passes its `NOT`, as in tantivy.

use std::collections::BTreeSet;

use crate::fields::FieldKind;
use crate::query::{glob_to_regex, Bound, Condition, FieldMatch, Query, Range, Target};
use crate::request::{AgencyScope, Cursor, Order, TimeRange};
use crate::IndexError;

use super::row::{self, column};

/// A value for one `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindValue {
    /// A string literal.
    Str(String),
    /// An unsigned number.
    U64(u64),
    /// A signed number.
    I64(i64),
}

/// SQL text with `?` placeholders and their values, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sql {
    text: String,
    binds: Vec<BindValue>,
}

impl Sql {
    /// SQL starting with `text`.
    pub(crate) fn new(text: &str) -> Self {
        let mut sql = Sql::default();
        sql.push(text);
        sql
    }

    /// Appends fixed SQL. It must not hold a `?`: that would be taken for a placeholder.
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        debug_assert!(!text.contains('?'), "placeholder in fixed SQL: {text}");
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind(&mut self, value: BindValue) -> &mut Self {
        self.text.push('?');
        self.binds.push(value);
        self
    }

    /// Appends a string placeholder.
    pub(crate) fn bind_str(&mut self, value: impl Into<String>) -> &mut Self {
        self.bind(BindValue::Str(value.into()))
    }

    /// Appends another fragment with its values.
    pub(crate) fn append(&mut self, other: Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.binds.extend(other.binds);
        self
    }

    /// The SQL text (placeholders unfilled).
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The bound values, in placeholder order.
    #[cfg(test)]
    pub(crate) fn binds(&self) -> &[BindValue] {
        &self.binds
    }

    /// A query on `client` with every value bound.
    pub(crate) fn into_query(self, client: &clickhouse::Client) -> clickhouse::query::Query {
        let mut query = client.query(&self.text);
        for value in self.binds {
            query = match value {
                BindValue::Str(text) => query.bind(text),
                BindValue::U64(number) => query.bind(number),
                BindValue::I64(number) => query.bind(number),
            };
        }
        query
    }
}

/// The whole filter of a search or aggregation: scope, time, then the query.
pub(crate) fn filter(
    query: &Query,
    time: &TimeRange,
    scope: &AgencyScope,
) -> Result<Sql, IndexError> {
    let mut sql = Sql::new("(");
    sql.append(scope_condition(scope));
    sql.push(") AND (");
    sql.append(time_condition(time));
    sql.push(") AND (");
    sql.append(condition(query)?);
    sql.push(")");
    Ok(sql)
}

/// The caller's agencies, on the agency exactly as sent (not folded: `Quận-1` and `quan-1`
/// are different agencies).
pub(crate) fn scope_condition(scope: &AgencyScope) -> Sql {
    match scope {
        AgencyScope::All => Sql::new("1"),
        AgencyScope::Only(agencies) => agency_in(agencies),
    }
}

fn agency_in(agencies: &BTreeSet<String>) -> Sql {
    if agencies.is_empty() {
        return Sql::new("0");
    }
    // `agency` is "" for events without one; `kw_agency` tells them from an agency named "".
    let mut sql = Sql::new("isNotNull(kw_agency) AND agency IN (");
    for (index, agency) in agencies.iter().enumerate() {
        if index > 0 {
            sql.push(", ");
        }
        sql.bind_str(agency.as_str());
    }
    sql.push(")");
    sql
}

/// `from <= timestamp < to`, plus the same bound on the partition column so whole days
/// outside the range are never read.
pub(crate) fn time_condition(time: &TimeRange) -> Sql {
    let from = time.from.timestamp_micros();
    let to = time.to.timestamp_micros();
    let mut sql = Sql::new("timestamp_us >= ");
    sql.bind(BindValue::I64(from));
    sql.push(" AND timestamp_us < ");
    sql.bind(BindValue::I64(to));
    // event_time is the clamped whole second of timestamp_us, a monotonic function, so these
    // bounds only drop rows the exact bounds drop too.
    sql.push(" AND event_time >= toDateTime(");
    sql.bind(BindValue::U64(u64::from(row::event_time(from))));
    sql.push(") AND event_time <= toDateTime(");
    sql.bind(BindValue::U64(u64::from(row::event_time(to))));
    sql.push(")");
    sql
}

/// Strictly after `cursor` in `order`.
pub(crate) fn after_cursor(order: Order, cursor: &Cursor) -> Sql {
    let operator = match order {
        Order::NewestFirst => " < ",
        Order::OldestFirst => " > ",
    };
    let mut sql = Sql::new("(timestamp_us");
    sql.push(operator);
    sql.bind(BindValue::I64(cursor.timestamp_micros));
    sql.push(" OR (timestamp_us = ");
    sql.bind(BindValue::I64(cursor.timestamp_micros));
    sql.push(" AND id");
    sql.push(operator);
    sql.bind_str(cursor.id.as_str());
    sql.push("))");
    sql
}

/// `ORDER BY` for `order`.
pub(crate) fn order_by(order: Order) -> &'static str {
    match order {
        Order::NewestFirst => "ORDER BY timestamp_us DESC, id DESC",
        Order::OldestFirst => "ORDER BY timestamp_us ASC, id ASC",
    }
}

/// A query as a 0/1 expression.
pub(crate) fn condition(query: &Query) -> Result<Sql, IndexError> {
    match query {
        Query::All => Ok(Sql::new("1")),
        Query::Match(field_match) => field_condition(field_match),
        Query::And(parts) => joined(parts, " AND ", "1"),
        Query::Or(parts) => joined(parts, " OR ", "0"),
        Query::Not(inner) => {
            let mut sql = Sql::new("NOT (");
            sql.append(condition(inner)?);
            sql.push(")");
            Ok(sql)
        }
    }
}

fn joined(parts: &[Query], operator: &str, empty: &str) -> Result<Sql, IndexError> {
    if parts.is_empty() {
        return Ok(Sql::new(empty));
    }
    let mut sql = Sql::new("(");
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            sql.push(operator);
        }
        sql.push("(");
        sql.append(condition(part)?);
        sql.push(")");
    }
    sql.push(")");
    Ok(sql)
}

fn field_condition(field_match: &FieldMatch) -> Result<Sql, IndexError> {
    let condition = &field_match.condition;
    match &field_match.target {
        Target::Field(name) => {
            let (column, kind) = column(name).ok_or_else(|| {
                IndexError::InvalidRequest(format!("field {name:?} is not in the catalogue"))
            })?;
            column_condition(name, column, kind, condition)
        }
        Target::DefaultText => {
            let mut sql = Sql::new("(");
            sql.append(column_condition(
                "raw",
                "txt_raw",
                FieldKind::Text,
                condition,
            )?);
            sql.push(" OR ");
            sql.append(column_condition(
                "message",
                "txt_message",
                FieldKind::Text,
                condition,
            )?);
            sql.push(")");
            Ok(sql)
        }
        Target::Original(path) => original_condition(path, condition),
    }
}

fn column_condition(
    name: &str,
    column: &'static str,
    kind: FieldKind,
    condition: &Condition,
) -> Result<Sql, IndexError> {
    let mut sql = Sql::default();
    match (kind, condition) {
        (FieldKind::Time, Condition::Exists) => {
            sql.push("1");
        }
        (_, Condition::Exists) => {
            sql.push("isNotNull(").push(column).push(")");
        }
        (FieldKind::Keyword, Condition::Exact(value)) => {
            sql.push("ifNull(").push(column).push(" = ");
            sql.bind_str(value.as_str());
            sql.push(", 0)");
        }
        (FieldKind::Keyword, Condition::Wildcard(glob)) => {
            sql.push("ifNull(match(").push(column).push(", ");
            sql.bind_str(keyword_regex(glob));
            sql.push("), 0)");
        }
        (FieldKind::Text, Condition::Phrase(tokens)) => {
            if tokens.is_empty() {
                // A phrase of no words names nothing to find.
                sql.push("0");
            } else {
                sql.push("ifNull(position(").push(column).push(", ");
                sql.bind_str(phrase_needle(tokens));
                sql.push(") > 0, 0)");
            }
        }
        (FieldKind::Text, Condition::Wildcard(glob)) => match token_regex(glob) {
            Some(regex) => {
                sql.push("ifNull(match(").push(column).push(", ");
                sql.bind_str(regex);
                sql.push("), 0)");
            }
            // The glob holds a character no token can hold (tokens are letters and digits).
            None => {
                sql.push("0");
            }
        },
        (FieldKind::Number, Condition::NumberRange(range)) => {
            sql.append(range_condition(column, range, |n| BindValue::U64(*n)));
        }
        (FieldKind::Time, Condition::TimeRange(range)) => {
            sql.append(range_condition(column, range, |time| {
                BindValue::I64(time.timestamp_micros())
            }));
        }
        (kind, condition) => {
            return Err(IndexError::InvalidRequest(format!(
                "{} does not apply to {name}, a {} field",
                describe(condition),
                describe_kind(kind)
            )))
        }
    }
    Ok(sql)
}

fn original_condition(path: &str, condition: &Condition) -> Result<Sql, IndexError> {
    let mut sql = Sql::default();
    match condition {
        Condition::Exists => {
            sql.push("has(field_paths, ");
            sql.bind_str(path);
            sql.push(")");
        }
        Condition::Exact(value) => {
            sql.push("arrayExists((p, v) -> p = ");
            sql.bind_str(path);
            sql.push(" AND v = ");
            sql.bind_str(value.as_str());
            sql.push(", field_paths, field_values)");
        }
        Condition::Wildcard(glob) => {
            sql.push("arrayExists((p, v) -> p = ");
            sql.bind_str(path);
            sql.push(" AND match(v, ");
            sql.bind_str(keyword_regex(glob));
            sql.push("), field_paths, field_values)");
        }
        other => {
            return Err(IndexError::InvalidRequest(format!(
            "{} does not apply to fields.{path}: original fields match whole values and wildcards",
            describe(other)
        )))
        }
    }
    Ok(sql)
}

fn range_condition<T>(column: &str, range: &Range<T>, value: impl Fn(&T) -> BindValue) -> Sql {
    let mut sql = Sql::new("ifNull(isNotNull(");
    sql.push(column).push(")");
    let mut bound = |operator: &str, limit: &T| {
        sql.push(" AND ").push(column).push(operator);
        sql.bind(value(limit));
    };
    match &range.lower {
        Bound::Unbounded => {}
        Bound::Included(limit) => bound(" >= ", limit),
        Bound::Excluded(limit) => bound(" > ", limit),
    }
    match &range.upper {
        Bound::Unbounded => {}
        Bound::Included(limit) => bound(" <= ", limit),
        Bound::Excluded(limit) => bound(" < ", limit),
    }
    sql.push(", 0)");
    sql
}

/// A keyword glob as an RE2 pattern over the whole value. `(?-s)` keeps `.` off newlines, as
/// in the Rust regex syntax the tantivy store uses (ClickHouse turns `s` on by default).
pub(crate) fn keyword_regex(glob: &str) -> String {
    format!("(?-s)^(?:{})$", glob_to_regex(glob))
}

/// A text glob as an RE2 pattern matching one whole token of a token line (`" tok tok "`):
/// `*` and `?` stay inside the token (`[^ ]`). `None` when the glob holds a character that
/// is not a letter or digit, since no token holds one.
pub(crate) fn token_regex(glob: &str) -> Option<String> {
    let mut body = String::with_capacity(glob.len() + 8);
    for c in glob.chars() {
        match c {
            '*' => body.push_str("[^ ]*"),
            '?' => body.push_str("[^ ]"),
            c if c.is_alphanumeric() => body.push(c),
            _ => return None,
        }
    }
    Some(format!(" (?:{body}) "))
}

/// The substring a phrase is in a token line: `" t1 t2 "`.
pub(crate) fn phrase_needle(tokens: &[String]) -> String {
    let mut needle = String::from(" ");
    for token in tokens {
        needle.push_str(token);
        needle.push(' ');
    }
    needle
}

fn describe(condition: &Condition) -> &'static str {
    match condition {
        Condition::Phrase(_) => "a word or phrase",
        Condition::Exact(_) => "an exact value",
        Condition::Wildcard(_) => "a wildcard",
        Condition::NumberRange(_) => "a number range",
        Condition::TimeRange(_) => "a time range",
        Condition::Exists => "_exists_",
    }
}

fn describe_kind(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Time => "time",
        FieldKind::Keyword => "keyword",
        FieldKind::Number => "number",
        FieldKind::Text => "text",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Target;

    fn field(name: &'static str, condition: Condition) -> Query {
        Query::Match(FieldMatch {
            target: Target::Field(name),
            condition,
        })
    }

    #[test]
    fn user_values_are_bound_never_written() {
        let evil = "' OR 1=1 -- \\ `x` ?";
        let query = Query::And(vec![
            field("user.name", Condition::Exact(evil.into())),
            field("message", Condition::Phrase(vec![evil.into()])),
            Query::Match(FieldMatch {
                target: Target::Original(evil.into()),
                condition: Condition::Exact(evil.into()),
            }),
        ]);
        let sql = condition(&query).unwrap_or_else(|error| panic!("{error}"));
        assert!(!sql.text().contains("OR 1=1"), "{}", sql.text());
        assert!(!sql.text().contains('\''), "{}", sql.text());
        assert_eq!(sql.text().matches('?').count(), sql.binds().len());
        assert_eq!(sql.binds().len(), 4);
    }

    #[test]
    fn conditions_translate() {
        let sql = condition(&field("source.ip", Condition::Exact("10.0.0.5".into())))
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(sql.text(), "ifNull(kw_source_ip = ?, 0)");
        let sql = condition(&Query::Not(Box::new(field(
            "source.port",
            Condition::NumberRange(Range {
                lower: Bound::Included(1),
                upper: Bound::Excluded(1024),
            }),
        ))))
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            sql.text(),
            "NOT (ifNull(isNotNull(num_source_port) AND num_source_port >= ? AND num_source_port < ?, 0))"
        );
        assert_eq!(sql.binds(), [BindValue::U64(1), BindValue::U64(1024)]);
        assert_eq!(
            condition(&Query::Or(vec![])).map(|s| s.text).ok(),
            Some("0".into())
        );
        assert_eq!(
            condition(&Query::And(vec![])).map(|s| s.text).ok(),
            Some("1".into())
        );
    }

    #[test]
    fn mismatched_conditions_are_errors() {
        assert!(condition(&field("source.port", Condition::Phrase(vec!["a".into()]))).is_err());
        assert!(condition(&field("message", Condition::Exact("a".into()))).is_err());
        assert!(condition(&field("nope", Condition::Exists)).is_err());
    }

    #[test]
    fn globs_become_anchored_or_token_patterns() {
        assert_eq!(keyword_regex("adm*"), "(?-s)^(?:adm.*)$");
        assert_eq!(keyword_regex("10.0.?.5"), "(?-s)^(?:10\\.0\\..\\.5)$");
        assert_eq!(token_regex("fail*").as_deref(), Some(" (?:fail[^ ]*) "));
        assert_eq!(token_regex("p?ss").as_deref(), Some(" (?:p[^ ]ss) "));
        assert_eq!(token_regex("a.b*"), None);
        assert_eq!(token_regex("a b"), None);
        assert_eq!(phrase_needle(&["thu".into(), "duc".into()]), " thu duc ");
    }

    #[test]
    fn empty_scope_sees_nothing() {
        assert_eq!(
            scope_condition(&AgencyScope::Only(BTreeSet::new())).text(),
            "0"
        );
        let sql = scope_condition(&AgencyScope::agency("quan-1"));
        assert_eq!(sql.text(), "isNotNull(kw_agency) AND agency IN (?)");
    }
}
