//! The query language: a Lucene-like string ([`parse`]) resolved against the field catalogue
//! into a [`Query`] that both stores translate (tantivy into its query objects, ClickHouse into
//! SQL with bound values).
//!
//! ```text
//! failed password                       words: every one must appear (raw or message)
//! "Thủ Đức"                             a phrase; folded, so "thu duc" finds it too
//! source.ip:10.0.0.5                    keyword fields match the whole value, folded
//! user.name:adm*  host.name:web-0?      wildcards on keywords (whole value) and text (one token)
//! source.port:[1 TO 1023]  process.pid:>=4   ranges on numbers, `[]` inclusive, `{}` exclusive
//! timestamp:[2026-11-01 TO 2026-11-02T12:00:00Z]   ranges on time; a bare date is that day
//! fields.EventID:4625                   the event's original fields, whole value
//! a AND (b OR c) NOT d   -e   +f        boolean; juxtaposition means AND
//! _exists_:user.name                    the field is set
//! ```

mod parse;

pub use parse::parse;

use chrono::{DateTime, Utc};

/// A resolved query. Values are already folded and tokenized with [`crate::text`], so the
/// stores compare them to what they indexed without normalising again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Every event (the empty query, `*`).
    All,
    /// One field condition.
    Match(FieldMatch),
    /// All of these.
    And(Vec<Query>),
    /// Any of these.
    Or(Vec<Query>),
    /// Not this (inside `And`, or alone meaning "all but this").
    Not(Box<Query>),
}

/// Which field a condition is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A named field of the catalogue ([`crate::fields::FIELDS`]).
    Field(&'static str),
    /// `fields.<path>`: the event's original field at this dotted path.
    Original(String),
    /// A word or phrase without a field: the default text fields
    /// ([`crate::fields::DEFAULT_TEXT_FIELDS`]), any of them.
    DefaultText,
}

/// A condition on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMatch {
    /// The field.
    pub target: Target,
    /// The condition.
    pub condition: Condition,
}

/// What a field's value must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Text fields: these tokens, consecutive and in order (one token: a word). Never empty.
    Phrase(Vec<String>),
    /// Keyword and original fields: the whole folded value equals this.
    Exact(String),
    /// A glob with `*` (any run) and `?` (one character), folded. Keyword and original fields:
    /// matches the whole value; text fields: one token.
    Wildcard(String),
    /// Number fields.
    NumberRange(Range<u64>),
    /// Time fields.
    TimeRange(Range<DateTime<Utc>>),
    /// The field has a value.
    Exists,
}

/// A range with optional, inclusive or exclusive ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range<T> {
    /// Lower end.
    pub lower: Bound<T>,
    /// Upper end.
    pub upper: Bound<T>,
}

/// One end of a [`Range`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound<T> {
    /// No limit on this side.
    Unbounded,
    /// This value is in the range.
    Included(T),
    /// This value is not.
    Excluded(T),
}

impl<T: PartialOrd + Copy> Range<T> {
    /// The range holding exactly `value`.
    pub fn exactly(value: T) -> Self {
        Range {
            lower: Bound::Included(value),
            upper: Bound::Included(value),
        }
    }

    /// Whether `value` lies in the range.
    pub fn contains(&self, value: T) -> bool {
        let above = match self.lower {
            Bound::Unbounded => true,
            Bound::Included(lower) => value >= lower,
            Bound::Excluded(lower) => value > lower,
        };
        let below = match self.upper {
            Bound::Unbounded => true,
            Bound::Included(upper) => value <= upper,
            Bound::Excluded(upper) => value < upper,
        };
        above && below
    }
}

/// Translates a glob (`*`, `?`) into an anchored regular expression for the Rust `regex` and
/// RE2 syntaxes (tantivy's `RegexQuery`, ClickHouse's `match`); ASCII punctuation is escaped,
/// other characters (letters, digits, non-ASCII symbols) stand for themselves.
pub fn glob_to_regex(glob: &str) -> String {
    let mut regex = String::with_capacity(glob.len() + 8);
    for c in glob.chars() {
        match c {
            '*' => regex.push_str(".*"),
            '?' => regex.push('.'),
            c if !c.is_ascii_punctuation() => regex.push(c),
            c => {
                regex.push('\\');
                regex.push(c);
            }
        }
    }
    regex
}
