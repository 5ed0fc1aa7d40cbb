//! Query text → tokens, each with its byte position (nom parsers over `&str`).
//!
//! The lexer knows the one piece of context the language has: inside a field group
//! (`source.port:(22 OR >1000)`) a term may be a range without a field name. Everything else
//! (precedence, grouping) is the [`super::ast`] parser's job.

use std::borrow::Cow;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while};
use nom::character::complete::{char, one_of, satisfy};
use nom::combinator::{eof, map, peek, recognize};
use nom::error::{ErrorKind, ParseError};
use nom::sequence::{pair, terminated};
use nom::{IResult, Parser};

/// One token and where it is in the query.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Byte offset of its first character.
    pub position: usize,
    /// Byte offset just after it.
    pub end: usize,
}

/// The kinds of token.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokenKind {
    /// `(`
    Open,
    /// `)`
    Close,
    /// `AND`, `&&`
    And,
    /// `OR`, `||`
    Or,
    /// `NOT`, `!`
    Not,
    /// `+` directly before a term
    Required,
    /// `-` directly before a term
    Prohibited,
    /// `field:(`: a group whose terms are all on this field.
    FieldOpen(FieldName),
    /// A word, phrase or range, with or without a field.
    Term(Term),
}

/// A field name as typed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FieldName {
    /// The name (`source.ip`, `fields.EventID`, `_exists_`).
    pub name: String,
    /// Byte offset of its first character.
    pub position: usize,
}

/// One term: an optional field and a value.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Term {
    /// `field:` in front of the value, if any.
    pub field: Option<FieldName>,
    /// The value.
    pub value: Value,
    /// Byte offset of the value.
    pub position: usize,
}

/// A term's value, escapes removed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    /// Unquoted text.
    Bare(Bare),
    /// `"…"` with its escapes removed.
    Quoted(String),
    /// `[a TO b]`, `{a TO b}`, `>a`, `<=b`, …
    Range(RangeSyntax),
}

/// Unquoted text with its escapes removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Bare {
    /// The text; unescaped `*` and `?` are kept as they are.
    pub text: String,
    /// An unescaped `*` or `?` is in the text.
    pub wildcards: bool,
    /// An escaped (literal) `*` or `?` is in the text.
    pub escaped_wildcards: bool,
}

impl Bare {
    /// Only unescaped `*`: "anything".
    pub fn is_star(&self) -> bool {
        self.wildcards && !self.escaped_wildcards && self.text.chars().all(|c| c == '*')
    }
}

/// A range as written; each end is still text.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RangeSyntax {
    /// Lower end.
    pub lower: RangeEnd,
    /// Upper end.
    pub upper: RangeEnd,
}

/// One end of a [`RangeSyntax`].
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RangeEnd {
    /// The value; `None` for `*` (open end).
    pub value: Option<String>,
    /// `[`/`]`, `>=`, `<=`: the value itself is in the range.
    pub inclusive: bool,
    /// Byte offset of the value.
    pub position: usize,
}

/// The tokens of a query, and the error that stopped the lexer, if one did (the parser
/// reports it when it gets there, so an earlier problem is reported first).
#[derive(Debug)]
pub(super) struct Lexed {
    /// The tokens before the error, or all of them.
    pub tokens: Vec<Token>,
    /// Byte offset and message.
    pub error: Option<(usize, String)>,
}

/// Characters a backslash escapes in unquoted text. A backslash before anything else is kept,
/// so `C:\Windows` pasted into a quoted or escaped value still means what it says.
const ESCAPABLE: &str = "\\:()*?\"[]{}<>=!+-&|^~/";

/// Splits `text` into tokens.
pub(super) fn lex(text: &str) -> Lexed {
    let lexer = Lexer { text };
    let mut tokens = Vec::new();
    // One entry per open parenthesis: whether it is inside a field group.
    let mut groups: Vec<bool> = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let in_field_group = groups.last().copied().unwrap_or(false);
        match lexer.token(rest, in_field_group) {
            Ok((next, kind)) => {
                match kind {
                    TokenKind::Open => groups.push(in_field_group),
                    TokenKind::FieldOpen(_) => groups.push(true),
                    TokenKind::Close => {
                        groups.pop();
                    }
                    _ => {}
                }
                tokens.push(Token {
                    kind,
                    position: lexer.offset(rest),
                    end: lexer.offset(next),
                });
                debug_assert!(next.len() < rest.len(), "every token consumes input");
                rest = next.trim_start();
            }
            Err(nom::Err::Error(error) | nom::Err::Failure(error)) => {
                let error = Some((lexer.offset(error.at), error.message.into_owned()));
                return Lexed { tokens, error };
            }
            Err(nom::Err::Incomplete(_)) => {
                let error = Some((lexer.offset(rest), "unexpected end of the query".to_owned()));
                return Lexed { tokens, error };
            }
        }
    }
    Lexed {
        tokens,
        error: None,
    }
}

/// A lexing problem: where (the rest of the input from there) and what.
#[derive(Debug)]
struct LexError<'a> {
    at: &'a str,
    message: Cow<'static, str>,
}

impl<'a> ParseError<&'a str> for LexError<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        LexError {
            at: input,
            message: Cow::Borrowed("unexpected character"),
        }
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

type LexResult<'a, T> = IResult<&'a str, T, LexError<'a>>;

/// A committed error: no other alternative is tried.
fn failure<T>(at: &str, message: impl Into<Cow<'static, str>>) -> LexResult<'_, T> {
    Err(nom::Err::Failure(LexError {
        at,
        message: message.into(),
    }))
}

/// Not this alternative: the next one is tried.
fn no_match<T>(at: &str) -> LexResult<'_, T> {
    Err(nom::Err::Error(LexError::from_error_kind(
        at,
        ErrorKind::Alt,
    )))
}

struct Lexer<'a> {
    text: &'a str,
}

impl<'a> Lexer<'a> {
    fn offset(&self, rest: &str) -> usize {
        self.text.len() - rest.len()
    }

    fn token(&self, input: &'a str, in_field_group: bool) -> LexResult<'a, TokenKind> {
        alt((
            map(char('('), |_| TokenKind::Open),
            map(char(')'), |_| TokenKind::Close),
            operator,
            prefix,
            |i| self.field_term(i),
            |i| self.term(i, in_field_group),
        ))
        .parse(input)
    }

    /// `name:value`, `name:"phrase"`, `name:[a TO b]`, `name:>a`, `name:(`.
    fn field_term(&self, input: &'a str) -> LexResult<'a, TokenKind> {
        let (after_colon, name) = terminated(field_name, char(':')).parse(input)?;
        let field = FieldName {
            name: name.to_owned(),
            position: self.offset(input),
        };
        match after_colon.chars().next() {
            Some('(') => Ok((&after_colon[1..], TokenKind::FieldOpen(field))),
            Some(c) if !c.is_whitespace() && c != ')' => {
                let (rest, value) = self.value(after_colon, true, is_value_end)?;
                let term = Term {
                    field: Some(field),
                    value,
                    position: self.offset(after_colon),
                };
                Ok((rest, TokenKind::Term(term)))
            }
            _ => failure(
                after_colon,
                format!(
                    "expected a value after `{name}:` (to search for a `:` itself, write `\\:` \
                     or quote the text)"
                ),
            ),
        }
    }

    /// A term without a field: a word, a phrase, or (in a field group) a range.
    fn term(&self, input: &'a str, in_field_group: bool) -> LexResult<'a, TokenKind> {
        if !in_field_group {
            if looks_like_comparison(input) {
                return failure(
                    input,
                    "a comparison needs a field in front of it, as in source.port:>1023",
                );
            }
            if input.starts_with(['[', '{']) && self.range(input).is_ok() {
                return failure(
                    input,
                    "a range needs a field in front of it, as in source.port:[1 TO 1023]",
                );
            }
        }
        let (rest, value) = self.value(input, in_field_group, is_word_end)?;
        let term = Term {
            field: None,
            value,
            position: self.offset(input),
        };
        Ok((rest, TokenKind::Term(term)))
    }

    /// A value: a range or comparison (when `ranges`), a quoted phrase or unquoted text up to
    /// a character for which `end` holds.
    fn value(&self, input: &'a str, ranges: bool, end: fn(char) -> bool) -> LexResult<'a, Value> {
        if ranges && input.starts_with(['[', '{']) {
            let (rest, range) = self.range(input)?;
            return Ok((rest, Value::Range(range)));
        }
        if ranges && input.starts_with(['<', '>']) {
            let (rest, range) = self.comparison(input)?;
            return Ok((rest, Value::Range(range)));
        }
        if input.starts_with('"') {
            let (rest, text) = quoted(input)?;
            return Ok((rest, Value::Quoted(text)));
        }
        let (rest, bare) = bare(input, end)?;
        Ok((rest, Value::Bare(bare)))
    }

    /// `[a TO b]`, `{a TO b}`, `[a TO b}`, `{a TO b]`; `*` for an open end.
    fn range(&self, input: &'a str) -> LexResult<'a, RangeSyntax> {
        let (rest, open) = one_of("[{").parse(input)?;
        let (rest, lower) = self.range_end(rest.trim_start(), open == '[', "lower")?;
        let at_to = rest.trim_start();
        let mut to_keyword = terminated(
            tag::<_, _, LexError<'a>>("TO"),
            peek(satisfy(|c| c.is_whitespace() || c == ']' || c == '}')),
        );
        let Ok((rest, _)) = to_keyword.parse(at_to) else {
            return failure(
                at_to,
                "expected `TO` between the ends of the range, as in [1 TO 1023]",
            );
        };
        let (rest, mut upper) = self.range_end(rest.trim_start(), true, "upper")?;
        let at_close = rest.trim_start();
        let Ok((rest, close)) = one_of::<_, _, LexError<'a>>("]}").parse(at_close) else {
            return failure(
                at_close,
                "expected `]` or `}` to close the range (`]` includes the upper end, `}` \
                 excludes it)",
            );
        };
        upper.inclusive = close == ']';
        Ok((rest, RangeSyntax { lower, upper }))
    }

    fn range_end(
        &self,
        input: &'a str,
        inclusive: bool,
        which: &'static str,
    ) -> LexResult<'a, RangeEnd> {
        let position = self.offset(input);
        let parsed = if input.starts_with('"') {
            quoted(input).map(|(rest, text)| (rest, Some(text)))
        } else {
            bare(input, |c| c.is_whitespace() || matches!(c, ']' | '}' | ')'))
                .map(|(rest, bare)| (rest, (!bare.is_star()).then_some(bare.text)))
        };
        match parsed {
            Ok((rest, value)) => Ok((
                rest,
                RangeEnd {
                    value,
                    inclusive,
                    position,
                },
            )),
            Err(nom::Err::Error(_)) => failure(
                input,
                format!("expected the {which} end of the range here: a value, or * for no limit"),
            ),
            Err(error) => Err(error),
        }
    }

    /// `>a`, `>=a`, `<a`, `<=a`.
    fn comparison(&self, input: &'a str) -> LexResult<'a, RangeSyntax> {
        let (rest, operator) = alt((tag(">="), tag("<="), tag(">"), tag("<"))).parse(input)?;
        let value_input = rest.trim_start();
        let position = self.offset(value_input);
        let parsed = if value_input.starts_with('"') {
            quoted(value_input).map(|(rest, text)| (rest, Some(text)))
        } else {
            bare(value_input, is_value_end)
                .map(|(rest, bare)| (rest, (!bare.is_star()).then_some(bare.text)))
        };
        let (rest, value) = match parsed {
            Ok(parsed) => parsed,
            Err(nom::Err::Error(_)) => {
                return failure(value_input, format!("expected a value after `{operator}`"))
            }
            Err(error) => return Err(error),
        };
        let end = RangeEnd {
            value,
            inclusive: operator.ends_with('='),
            position,
        };
        let open = RangeEnd {
            value: None,
            inclusive: true,
            position,
        };
        let range = if operator.starts_with('>') {
            RangeSyntax {
                lower: end,
                upper: open,
            }
        } else {
            RangeSyntax {
                lower: open,
                upper: end,
            }
        };
        Ok((rest, range))
    }
}

/// `AND`/`&&`, `OR`/`||`, `NOT`/`!`. The words only in capitals and standing alone.
fn operator(input: &str) -> LexResult<'_, TokenKind> {
    alt((
        map(alt((keyword("AND"), tag("&&"))), |_| TokenKind::And),
        map(alt((keyword("OR"), tag("||"))), |_| TokenKind::Or),
        map(alt((keyword("NOT"), tag("!"))), |_| TokenKind::Not),
    ))
    .parse(input)
}

fn keyword<'a>(word: &'static str) -> impl Parser<&'a str, Output = &'a str, Error = LexError<'a>> {
    terminated(
        tag(word),
        peek(alt((
            eof,
            recognize(satisfy(|c| {
                c.is_whitespace() || matches!(c, '(' | ')' | '"')
            })),
        ))),
    )
}

/// `-` and `+` directly before a term.
fn prefix(input: &str) -> LexResult<'_, TokenKind> {
    let (rest, sign) = one_of("-+").parse(input)?;
    match rest.chars().next() {
        Some(c) if !c.is_whitespace() && c != ')' => {
            let kind = if sign == '-' {
                TokenKind::Prohibited
            } else {
                TokenKind::Required
            };
            Ok((rest, kind))
        }
        _ => failure(
            input,
            format!("`{sign}` must be followed directly by a term, as in {sign}word"),
        ),
    }
}

/// A field name: a letter, `_` or `@`, then letters, digits, `_`, `.`, `@`, `-`.
fn field_name(input: &str) -> LexResult<'_, &str> {
    recognize(pair(
        satisfy(|c| c.is_alphabetic() || c == '_' || c == '@'),
        take_while(|c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '-')),
    ))
    .parse(input)
}

/// `"…"`: `\"` and `\\` are escapes, any other backslash is kept.
fn quoted(input: &str) -> LexResult<'_, String> {
    let (mut rest, _) = char('"').parse(input)?;
    let mut text = String::new();
    loop {
        let mut chars = rest.chars();
        match chars.next() {
            None => {
                return failure(
                    input,
                    "unterminated quote: this `\"` has no closing `\"` (write `\\\"` for a quote \
                     inside a phrase)",
                )
            }
            Some('"') => break,
            Some('\\') => match chars.clone().next() {
                Some(escaped @ ('"' | '\\')) => {
                    text.push(escaped);
                    chars.next();
                }
                _ => text.push('\\'),
            },
            Some(c) => text.push(c),
        }
        rest = chars.as_str();
    }
    let rest = &rest[1..];
    // Lucene's proximity (`"a b"~2`) and boosts (`"a"^2`) would otherwise be read as words.
    if rest.starts_with('~') {
        return failure(rest, "`~` (proximity and fuzzy search) is not supported");
    }
    if rest.starts_with('^') {
        return failure(
            rest,
            "`^` (boosts) is not supported: results are ordered by time",
        );
    }
    Ok((rest, text))
}

/// Unquoted text up to an unescaped character for which `end` holds; at least one character.
fn bare(input: &str, end: fn(char) -> bool) -> LexResult<'_, Bare> {
    let mut bare = Bare::default();
    let mut rest = input;
    loop {
        let mut chars = rest.chars();
        match chars.next() {
            None => break,
            Some(c) if end(c) => break,
            Some('\\') => match chars.clone().next() {
                Some(escaped) if ESCAPABLE.contains(escaped) || escaped.is_whitespace() => {
                    bare.escaped_wildcards |= matches!(escaped, '*' | '?');
                    bare.text.push(escaped);
                    chars.next();
                }
                _ => bare.text.push('\\'),
            },
            Some(c) => {
                bare.wildcards |= matches!(c, '*' | '?');
                bare.text.push(c);
            }
        }
        rest = chars.as_str();
    }
    if rest.len() == input.len() {
        return no_match(input);
    }
    Ok((rest, bare))
}

/// Where a value after `field:` ends: whitespace or `)` (so `fe80::1` is one value).
fn is_value_end(c: char) -> bool {
    c.is_whitespace() || c == ')'
}

/// Where a word without a field ends: whitespace or a parenthesis.
fn is_word_end(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')'
}

/// `>5`, `>=2026-…`, `<=9`: a comparison typed without a field. (`<script>` is a word.)
fn looks_like_comparison(input: &str) -> bool {
    let Some(after) = input.strip_prefix(['<', '>']) else {
        return false;
    };
    let after = after.strip_prefix('=').unwrap_or(after);
    after.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        let lexed = lex(text);
        assert_eq!(lexed.error, None, "{text}");
        lexed.tokens.into_iter().map(|token| token.kind).collect()
    }

    #[test]
    fn operators_are_capital_words_or_symbols() {
        use TokenKind::*;
        let words = kinds("AND && OR || NOT ! ( )");
        assert_eq!(words, [And, And, Or, Or, Not, Not, Open, Close]);
        assert!(matches!(kinds("and")[..], [Term(_)]));
        assert!(matches!(kinds("ANDROID")[..], [Term(_)]));
    }

    #[test]
    fn positions_are_byte_offsets() {
        let lexed = lex("Thủ  (x)");
        let positions: Vec<(usize, usize)> = lexed
            .tokens
            .iter()
            .map(|token| (token.position, token.end))
            .collect();
        assert_eq!(positions, [(0, 5), (7, 8), (8, 9), (9, 10)]);
    }

    #[test]
    fn escapes_in_bare_values() {
        let lexed = lex(r"a\:b\*c\Wd\");
        let [Token {
            kind: TokenKind::Term(term),
            ..
        }] = &lexed.tokens[..]
        else {
            panic!("{lexed:?}");
        };
        let Value::Bare(bare) = &term.value else {
            panic!("{term:?}");
        };
        assert_eq!(bare.text, r"a:b*c\Wd\");
        assert!(!bare.wildcards);
        assert!(bare.escaped_wildcards);
    }

    #[test]
    fn ranges_only_after_a_field_or_in_a_field_group() {
        assert!(matches!(
            kinds("source.port:(>5 OR [1 TO 2])")[..],
            [
                TokenKind::FieldOpen(_),
                TokenKind::Term(Term {
                    value: Value::Range(_),
                    ..
                }),
                TokenKind::Or,
                TokenKind::Term(Term {
                    value: Value::Range(_),
                    ..
                }),
                TokenKind::Close
            ]
        ));
        assert!(matches!(
            kinds("[error] <script>")[..],
            [
                TokenKind::Term(Term {
                    value: Value::Bare(_),
                    ..
                }),
                TokenKind::Term(Term {
                    value: Value::Bare(_),
                    ..
                })
            ]
        ));
        assert_eq!(lex(">5").error.map(|(position, _)| position), Some(0));
    }
}
