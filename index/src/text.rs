//! Text normalisation shared by both stores, so that a query means the same thing in tantivy
//! and in ClickHouse: [`fold`] (lower case, Vietnamese and other Latin diacritics removed,
//! `đ` → `d`) and [`tokens`] (maximal runs of letters and digits of the folded text).
//!
//! "thu duc" finds "Thủ Đức" because both sides are folded by the same function; neither
//! store's own analyzers are used for matching.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// Longest token kept, in bytes. Longer runs (base64 blobs, hex dumps) are cut at a character
/// boundary; queries are cut the same way, so a search for the blob still finds it.
pub const MAX_TOKEN_BYTES: usize = 255;

/// Longest keyword value kept, in bytes (cut the same way on both sides).
pub const MAX_KEYWORD_BYTES: usize = 4096;

/// Lower case with diacritics removed: `"Thủ Đức"` → `"thu duc"`.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    fold_into(text, &mut out);
    out
}

/// [`fold`] appending to `out`.
pub fn fold_into(text: &str, out: &mut String) {
    for c in text.chars() {
        push_folded(c, out);
    }
}

fn push_folded(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    match c {
        // Not decomposable in Unicode: the stroke is part of the letter.
        'đ' | 'Đ' => out.push('d'),
        _ => {
            let mut base = None;
            decompose_canonical(c, |part| {
                if base.is_none() && !is_combining_mark(part) {
                    base = Some(part);
                }
            });
            // A lone combining mark (text already in NFD form) has no base: dropped like
            // the others.
            if let Some(base) = base {
                out.extend(base.to_lowercase());
            }
        }
    }
}

/// Folds a keyword value (whole-value match) and cuts it to [`MAX_KEYWORD_BYTES`].
pub fn keyword(value: &str) -> String {
    let mut folded = fold(value);
    truncate_at_char(&mut folded, MAX_KEYWORD_BYTES);
    folded
}

/// The tokens of `text`: folded, split on everything that is not a letter or digit, each cut
/// to [`MAX_TOKEN_BYTES`].
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_token(text, |token| out.push(token.to_owned()));
    out
}

/// Calls `visit` with each token of `text` (see [`tokens`]) without collecting them.
pub fn for_each_token(text: &str, mut visit: impl FnMut(&str)) {
    let mut token = String::new();
    let mut folded = String::new();
    for c in text.chars() {
        folded.clear();
        push_folded(c, &mut folded);
        for f in folded.chars() {
            if f.is_alphanumeric() {
                token.push(f);
            } else if !token.is_empty() {
                emit(&mut token, &mut visit);
            }
        }
        if folded.is_empty() && !is_combining_mark(c) && !token.is_empty() {
            emit(&mut token, &mut visit);
        }
    }
    if !token.is_empty() {
        emit(&mut token, &mut visit);
    }
}

fn emit(token: &mut String, visit: &mut impl FnMut(&str)) {
    truncate_at_char(token, MAX_TOKEN_BYTES);
    visit(token);
    token.clear();
}

fn truncate_at_char(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

/// The token sequence of `text` as one string with a space before, between and after the
/// tokens (`" thu duc "`). ClickHouse stores this form, so a phrase is a substring search for
/// `" thu duc "`: the same answer tantivy's positional phrase query gives.
pub fn token_line(text: &str) -> String {
    let mut line = String::from(" ");
    for_each_token(text, |token| {
        line.push_str(token);
        line.push(' ');
    });
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_folds_to_ascii() {
        assert_eq!(fold("Thủ Đức"), "thu duc");
        assert_eq!(fold("Ủy ban nhân dân Quận 1"), "uy ban nhan dan quan 1");
        assert_eq!(fold("NGUYỄN VĂN ĐẠT"), "nguyen van dat");
        // NFD input (base letter + combining marks) folds the same as NFC.
        assert_eq!(fold("Thu\u{309} \u{110}u\u{31b}\u{301}c"), "thu duc");
    }

    #[test]
    fn tokens_split_on_punctuation_and_keep_digits() {
        assert_eq!(
            tokens("Failed password for root from 10.0.0.5 port 22"),
            ["failed", "password", "for", "root", "from", "10", "0", "0", "5", "port", "22"]
        );
        assert_eq!(
            tokens("Phường Bến Nghé, Q.1"),
            ["phuong", "ben", "nghe", "q", "1"]
        );
        assert_eq!(tokens("Thu\u{309}"), ["thu"]);
        assert!(tokens(" ,.;").is_empty());
    }

    #[test]
    fn long_tokens_are_cut_at_a_character_boundary() {
        let long = "ấ".repeat(300);
        let cut = tokens(&long);
        assert_eq!(cut.len(), 1);
        assert!(cut[0].len() <= MAX_TOKEN_BYTES);
        assert!(cut[0].chars().all(|c| c == 'a'));
    }

    #[test]
    fn token_line_brackets_every_token_with_spaces() {
        assert_eq!(token_line("Thủ Đức!"), " thu duc ");
        assert_eq!(token_line(""), " ");
    }
}
