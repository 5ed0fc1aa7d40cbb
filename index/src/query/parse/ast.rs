//! Tokens → an untyped syntax tree (recursive descent, one function per precedence level).
//!
//! ```text
//! query    = or_expr
//! or_expr  = and_expr { ("OR" | "||") and_expr }
//! and_expr = unary { ["AND" | "&&"] unary }        juxtaposition is AND
//! unary    = { "NOT" | "!" | "-" | "+" } primary
//! primary  = "(" or_expr ")" | field ":(" or_expr ")" | term
//! ```
//!
//! Recursion happens only at parentheses, which are limited to [`MAX_DEPTH`] levels, and the
//! number of terms to [`MAX_CLAUSES`]: no input overflows the stack.

use super::lexer::{FieldName, Lexed, Term, Token, TokenKind};
use crate::IndexError;

/// Most levels of parentheses.
pub(super) const MAX_DEPTH: usize = 32;

/// Most terms in one query.
pub(super) const MAX_CLAUSES: usize = 1024;

/// A parsed query before its fields are looked up.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    /// One term.
    Term(Term),
    /// `field:( … )`: every term inside is on `field`.
    FieldGroup {
        /// The field.
        field: FieldName,
        /// What is inside the parentheses.
        inner: Box<Node>,
    },
    /// All of these (two or more).
    And(Vec<Node>),
    /// Any of these (two or more).
    Or(Vec<Node>),
    /// Not this.
    Not(Box<Node>),
}

/// Parses the tokens of `text`; `None` for a query without any (every event).
pub(super) fn build(text: &str, lexed: Lexed) -> Result<Option<Node>, IndexError> {
    let mut parser = Parser {
        text,
        tokens: lexed.tokens.into_iter().peekable(),
        lex_error: lexed.error,
        depth: 0,
        clauses: 0,
    };
    if parser.peek_kind()?.is_none() {
        return Ok(None);
    }
    let node = parser.or_expr()?;
    // `or_expr` stops only at the end or at a `)` it has no `(` for.
    if let Some(token) = parser.next_token()? {
        return Err(unmatched_close(&token));
    }
    Ok(Some(node))
}

/// An operator already read, for messages about what should follow it.
struct Operator {
    position: usize,
    spelling: String,
}

struct Parser<'t> {
    text: &'t str,
    tokens: std::iter::Peekable<std::vec::IntoIter<Token>>,
    lex_error: Option<(usize, String)>,
    depth: usize,
    clauses: usize,
}

impl Parser<'_> {
    /// The next token's kind; at the end of the tokens, the lexer's error if it stopped early.
    fn peek_kind(&mut self) -> Result<Option<&TokenKind>, IndexError> {
        if self.tokens.peek().is_none() {
            return match &self.lex_error {
                Some((position, message)) => Err(IndexError::query(*position, message.clone())),
                None => Ok(None),
            };
        }
        Ok(self.tokens.peek().map(|token| &token.kind))
    }

    fn next_token(&mut self) -> Result<Option<Token>, IndexError> {
        self.peek_kind()?;
        Ok(self.tokens.next())
    }

    /// Consumes the next token, an operator.
    fn next_operator(&mut self) -> Operator {
        match self.tokens.next() {
            Some(token) => Operator {
                position: token.position,
                spelling: self.spelling(&token).to_owned(),
            },
            None => Operator {
                position: self.text.len(),
                spelling: String::new(),
            },
        }
    }

    fn spelling(&self, token: &Token) -> &str {
        self.text.get(token.position..token.end).unwrap_or("")
    }

    fn or_expr(&mut self) -> Result<Node, IndexError> {
        let mut children = vec![self.and_expr(None)?];
        while let Some(TokenKind::Or) = self.peek_kind()? {
            let operator = self.next_operator();
            children.push(self.and_expr(Some(operator))?);
        }
        Ok(combine(children, Node::Or))
    }

    fn and_expr(&mut self, after: Option<Operator>) -> Result<Node, IndexError> {
        let mut children = vec![self.unary(after)?];
        loop {
            match self.peek_kind()? {
                None | Some(TokenKind::Or | TokenKind::Close) => break,
                Some(TokenKind::And) => {
                    let operator = self.next_operator();
                    children.push(self.unary(Some(operator))?);
                }
                Some(_) => children.push(self.unary(None)?),
            }
        }
        Ok(combine(children, Node::And))
    }

    /// Prefix operators, then a primary. An even number of negations cancels out, so
    /// `NOT NOT … x` never builds a deep tree.
    fn unary(&mut self, mut after: Option<Operator>) -> Result<Node, IndexError> {
        let mut negated = false;
        loop {
            let negates = match self.peek_kind()? {
                Some(TokenKind::Not | TokenKind::Prohibited) => true,
                Some(TokenKind::Required) => false,
                _ => break,
            };
            negated ^= negates;
            after = Some(self.next_operator());
        }
        let node = self.primary(after)?;
        Ok(if negated {
            Node::Not(Box::new(node))
        } else {
            node
        })
    }

    fn primary(&mut self, after: Option<Operator>) -> Result<Node, IndexError> {
        let Some(token) = self.next_token()? else {
            return Err(match after {
                Some(operator) => needs_term_after(&operator),
                None => IndexError::query(self.text.len(), "expected a term"),
            });
        };
        match token.kind {
            TokenKind::Term(term) => {
                self.clauses += 1;
                if self.clauses > MAX_CLAUSES {
                    return Err(IndexError::query(
                        token.position,
                        format!("too many terms: a query has at most {MAX_CLAUSES}"),
                    ));
                }
                Ok(Node::Term(term))
            }
            TokenKind::Open => self.group(token.position),
            TokenKind::FieldOpen(field) => {
                // Errors about the group point at its `(`, after `name:`.
                let open = field.position + field.name.len() + 1;
                let inner = self.group(open)?;
                Ok(Node::FieldGroup {
                    field,
                    inner: Box::new(inner),
                })
            }
            TokenKind::Close => Err(match after {
                Some(operator) => needs_term_after(&operator),
                None => unmatched_close(&token),
            }),
            TokenKind::And | TokenKind::Or => {
                let spelling = self.spelling(&token);
                Err(match after {
                    Some(operator) => IndexError::query(
                        token.position,
                        format!(
                            "expected a term after `{}`, found `{spelling}`",
                            operator.spelling
                        ),
                    ),
                    None => IndexError::query(
                        token.position,
                        format!("`{spelling}` needs a term before it"),
                    ),
                })
            }
            // `unary` consumed every prefix operator.
            TokenKind::Not | TokenKind::Required | TokenKind::Prohibited => {
                Err(IndexError::query(token.position, "expected a term"))
            }
        }
    }

    /// After a `(` at `open`: the query inside and its `)`.
    fn group(&mut self, open: usize) -> Result<Node, IndexError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(IndexError::query(
                open,
                format!("too deeply nested: at most {MAX_DEPTH} levels of parentheses"),
            ));
        }
        if let Some(TokenKind::Close) = self.peek_kind()? {
            return Err(IndexError::query(
                open,
                "empty parentheses: put a query between `(` and `)`",
            ));
        }
        let inner = self.or_expr()?;
        match self.next_token()? {
            Some(Token {
                kind: TokenKind::Close,
                ..
            }) => {}
            _ => {
                return Err(IndexError::query(
                    open,
                    "unclosed `(`: add a `)` to close it",
                ))
            }
        }
        self.depth -= 1;
        Ok(inner)
    }
}

/// One child stays itself; more become `make(children)`.
fn combine(mut children: Vec<Node>, make: fn(Vec<Node>) -> Node) -> Node {
    if children.len() == 1 {
        if let Some(only) = children.pop() {
            return only;
        }
    }
    make(children)
}

fn needs_term_after(operator: &Operator) -> IndexError {
    IndexError::query(
        operator.position,
        format!("`{}` needs a term after it", operator.spelling),
    )
}

fn unmatched_close(token: &Token) -> IndexError {
    IndexError::query(token.position, "unmatched `)`: there is no `(` before it")
}
