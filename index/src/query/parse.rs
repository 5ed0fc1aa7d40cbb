//! The query-string parser: query text → [`Query`], with the byte position of the problem in
//! every error.
//!
//! Three steps, each its own module: [`lexer`] (nom: words, quoted phrases with `\"` and `\\`,
//! `field:` prefixes, ranges, operators, escapes), [`ast`] (precedence `NOT` > `AND` > `OR`,
//! parentheses, field groups; limits on depth and size) and [`resolve`] (field names looked up
//! in [`crate::fields`], values checked against the field's kind and normalised with
//! [`crate::text`]).
//!
//! Values by field kind:
//!
//! | kind | `value` | `"phrase"` | wildcards `*` `?` | `*` alone | ranges |
//! |---|---|---|---|---|---|
//! | keyword, `fields.<path>` | `Exact`, folded | `Exact` | `Wildcard`, whole value | `Exists` | no |
//! | text, no field | `Phrase` of its tokens | `Phrase` | `Wildcard`, one word | `Exists` (no field: every event) | no |
//! | number | exactly that number | same | no | `Exists` | `[a TO b]`, `>a`, … |
//! | time | a day (UTC) or an RFC 3339 instant | same | no | `Exists` | a day as an end is the whole day |
//!
//! In unquoted text a backslash escapes `\ : ( ) * ? " [ ] { } < > = ! + - & | ^ ~ /` and
//! whitespace; before any other character it is kept (`C:\Windows` stays as typed inside
//! quotes, and `C\:\Windows` works unquoted). After `field:` the value runs to whitespace or
//! `)`, so `source.ip:fe80::1` needs no quotes.

mod ast;
mod lexer;
mod resolve;

use super::Query;
use crate::IndexError;

/// Parses and resolves a query string. The empty string and `*` mean every event.
///
/// Errors are [`IndexError::Query`] with the byte offset of the problem: an unknown field
/// (with suggestions), a value that does not fit its field, unbalanced parentheses, an
/// operator without its term, more than 32 levels of parentheses or 1024 terms.
pub fn parse(text: &str) -> Result<Query, IndexError> {
    let lexed = lexer::lex(text);
    match ast::build(text, lexed)? {
        Some(node) => resolve::resolve(node),
        None => Ok(Query::All),
    }
}
