//! [`text::for_each_token`] as a tantivy tokenizer, registered on every day index as
//! [`FOLDED`]. Text fields are added as plain strings and tokenized here, on tantivy's indexing
//! thread: handing tantivy pre-tokenized strings instead made it serialize every token list to
//! JSON and parse it back, which was most of the indexing time.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

use crate::text;

/// The tokenizer's registered name.
pub const FOLDED: &str = "citysoc_folded";

/// Folds and splits text exactly like [`text::tokens`]; reuses its token buffers.
#[derive(Clone, Default)]
pub struct FoldedTokenizer {
    tokens: Vec<Token>,
}

impl Tokenizer for FoldedTokenizer {
    type TokenStream<'a> = FoldedTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, input: &'a str) -> FoldedTokenStream<'a> {
        let mut count = 0;
        let tokens = &mut self.tokens;
        text::for_each_token(input, |token| {
            if count == tokens.len() {
                tokens.push(Token::default());
            }
            let slot = &mut tokens[count];
            slot.text.clear();
            slot.text.push_str(token);
            slot.position = count;
            slot.position_length = 1;
            // Offsets are not used (nothing is highlighted from the index).
            slot.offset_from = 0;
            slot.offset_to = 0;
            count += 1;
        });
        FoldedTokenStream {
            tokens: &mut self.tokens[..count],
            next: 0,
            empty: Token::default(),
        }
    }
}

/// The tokens of one text.
pub struct FoldedTokenStream<'a> {
    tokens: &'a mut [Token],
    next: usize,
    /// What `token()` returns before the first `advance()` (tantivy never asks then).
    empty: Token,
}

impl TokenStream for FoldedTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        match self.next.checked_sub(1) {
            Some(current) => self.tokens.get(current).unwrap_or(&self.empty),
            None => &self.empty,
        }
    }

    fn token_mut(&mut self) -> &mut Token {
        match self.next.checked_sub(1) {
            Some(current) if current < self.tokens.len() => &mut self.tokens[current],
            _ => &mut self.empty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_the_same_tokens_as_text_tokens() {
        let mut tokenizer = FoldedTokenizer::default();
        for input in [
            "Đăng nhập thất bại tại Thủ Đức",
            "a b",
            "",
            "10.0.0.5 port 22",
            "x",
        ] {
            let mut stream = tokenizer.token_stream(input);
            let mut seen = Vec::new();
            while stream.advance() {
                seen.push((stream.token().text.clone(), stream.token().position));
            }
            let expected: Vec<(String, usize)> = text::tokens(input)
                .into_iter()
                .enumerate()
                .map(|(i, t)| (t, i))
                .collect();
            assert_eq!(seen, expected, "{input}");
        }
    }
}
