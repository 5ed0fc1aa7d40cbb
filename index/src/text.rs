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
            // A lone combining mark (text already in NFD form) has no base: dropped like the
            // marks of composed letters.
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

/// [`keyword`] appending to `out`.
pub fn keyword_into(value: &str, out: &mut String) {
    let start = out.len();
    fold_into(value, out);
    if out.len() - start > MAX_KEYWORD_BYTES {
        let mut cut = start + MAX_KEYWORD_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
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
        // Log lines are mostly ASCII: a folded ASCII character is itself lowercased, and it is
        // a letter or digit exactly when `is_alphanumeric` says so of it, so skip the
        // per-character buffer (this loop runs on every character of `raw` and `message`).
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() {
                token.push(c.to_ascii_lowercase());
            } else if !token.is_empty() {
                emit(&mut token, &mut visit);
            }
            continue;
        }
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

/// Where `part`'s tokens sit in `text`'s token sequence, if `part` occurs in `text` without
/// cutting a token: `Some((from, to))` means `tokens(text)[from..to] == tokens(part)`.
///
/// The tantivy store indexes an event's `message` this way when it lies inside `raw` (the usual
/// case: a syslog message is the tail of the line), so its tokens are indexed once, as `raw`'s,
/// and `message:…` is answered from `raw`'s positions within the span.
///
/// Why comparing counts is enough: tokenizing is a left-to-right scan whose only state is the
/// token being built, so tokenizing `a + b` differs from tokenizing `a` then `b` only where a
/// token open at the end of `a` continues into `b` — and that merges two tokens into one. So
/// the counts of the three pieces add up to the count of the whole exactly when no token crosses
/// either cut, and then the whole's tokens are the pieces' tokens in order.
pub fn token_span(text: &str, part: &str) -> Option<(usize, usize)> {
    // The usual places first, without setting up a substring search: the message is the whole
    // line or its tail.
    let start = if text.ends_with(part) {
        text.len() - part.len()
    } else {
        text.find(part)?
    };
    let end = start + part.len();
    let (prefix, rest) = (text.get(..start)?, text.get(end..)?);
    let before = count_tokens(prefix);
    let inside = count_tokens(part);
    let clean = cut_is_clean(prefix, text.get(start..)?) && cut_is_clean(text.get(..end)?, rest);
    if !clean && before + inside + count_tokens(rest) != count_tokens(text) {
        return None;
    }
    Some((before, before + inside))
}

/// Whether no token can run across the cut between `left` and `right` (the whole text on each
/// side): the cut is at an end of the text, or next to an ASCII character that is neither
/// letter nor digit, which always ends the token being built ([`for_each_token`]). Saves
/// counting the whole text again in the usual case (`sshd[1]: Failed…`, `…|Thủ Đức alert|…`).
fn cut_is_clean(left: &str, right: &str) -> bool {
    let separator = |c: Option<char>| c.is_some_and(|c| c.is_ascii() && !c.is_ascii_alphanumeric());
    left.is_empty()
        || right.is_empty()
        || separator(left.chars().next_back())
        || separator(right.chars().next())
}

fn count_tokens(text: &str) -> usize {
    let mut count = 0;
    for_each_token(text, |_| count += 1);
    count
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

    /// The tokenizer before its ASCII shortcut: every character through `push_folded`.
    fn tokens_without_shortcut(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut token = String::new();
        let mut folded = String::new();
        let mut visit = |token: &str| out.push(token.to_owned());
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
        out
    }

    #[test]
    fn ascii_shortcut_gives_the_same_tokens() {
        // Every ASCII character, next to and between non-ASCII letters, combining marks and
        // separators, and a long run that gets cut.
        let ascii: String = (0u8..128).map(char::from).collect();
        let mut inputs = vec![
            ascii.clone(),
            format!("Thủ{ascii}Đức"),
            "a\u{301}b c\u{309}".to_owned(),
            "Thu\u{309} \u{110}u\u{31b}\u{301}c, Q.1: 10.0.0.5/24 user=NGUYỄN_VĂN".to_owned(),
            format!("{}é{}", "x".repeat(300), "Y".repeat(260)),
            "<38>Nov 20 sshd[123]: Failed password for root from 10.0.0.5 port 22".to_owned(),
            "\u{301}abc\u{a0}def\u{2003}ghi…jkl—mno".to_owned(),
        ];
        // Pseudo-random mixes of ASCII and a few non-ASCII characters.
        let alphabet: Vec<char> = ascii
            .chars()
            .chain("ủđĐếẤ\u{301}\u{a0}…ß①".chars())
            .collect();
        let mut state = 0x2545_f491_u64;
        for _ in 0..200 {
            let mut text = String::new();
            for _ in 0..40 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            inputs.push(text);
        }
        for input in &inputs {
            assert_eq!(tokens(input), tokens_without_shortcut(input), "{input:?}");
        }
    }

    #[test]
    fn token_span_finds_the_message_inside_the_line() {
        let raw = "<38>Nov 20 sshd[1]: Failed password for root from 10.0.0.5";
        assert_eq!(
            token_span(raw, "Failed password for root from 10.0.0.5"),
            Some((5, 14))
        );
        // An empty message is an empty span (at the end, where a tail is looked for first).
        assert_eq!(token_span(raw, ""), Some((14, 14)));
        assert_eq!(token_span(raw, raw), Some((0, 14)));
        // Cuts a token ("ailed" inside "failed", "pass" inside "password").
        assert_eq!(token_span(raw, "ailed password"), None);
        assert_eq!(token_span(raw, "Failed pass"), None);
        assert_eq!(token_span(raw, "not there"), None);
        // A combining mark right after the cut keeps the token open: "e\u{301}x" is one token.
        assert_eq!(token_span("ae\u{301}x", "\u{301}x"), None);
        assert_eq!(token_span("a \u{301}x", "\u{301}x"), Some((1, 2)));
    }

    #[test]
    fn token_span_agrees_with_the_token_lists() {
        // Pseudo-random texts over a small alphabet (so parts often occur and often cut
        // tokens), and every substring of them at character boundaries.
        let alphabet: Vec<char> = "ab1 .Đủ\u{301}-".chars().collect();
        let mut state = 0x9e37_79b9_u64;
        for _ in 0..300 {
            let mut text = String::new();
            for _ in 0..12 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let cuts: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain([text.len()])
                .collect();
            let whole = tokens(&text);
            for (n, &from) in cuts.iter().enumerate() {
                for &to in &cuts[n..] {
                    let part = &text[from..to];
                    let Some((start, end)) = token_span(&text, part) else {
                        continue;
                    };
                    assert_eq!(whole[start..end], tokens(part), "{text:?} / {part:?}");
                }
            }
        }
    }

    #[test]
    fn token_line_brackets_every_token_with_spaces() {
        assert_eq!(token_line("Thủ Đức!"), " thu duc ");
        assert_eq!(token_line(""), " ");
    }
}
