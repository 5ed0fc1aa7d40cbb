//! RFC 5424 structured data kept as the text the sender wrote (`[id name="value" …]…`), which
//! [`crate::fields::Fields`] stores as a span of its text buffer instead of the nested
//! `serde_json` object it stands for: `{"id": {"name": "value", …}, …}`.
//!
//! Why: building that object cost about a third of an RFC 5424 line's parse (an `IndexMap` per
//! element and for the section, each key and value a `String`, each key a SipHash), and on the
//! collector's path from a line to its buffer nobody reads it as an object: the compact record
//! writes it from the text ([`crate::record`]), the batch's cost is counted from the text. The
//! object is built only when someone asks for it as a `Value`.
//!
//! Only text that [`checked_end`] accepts is kept so: strict syntax, no element id twice (an
//! error), no parameter name twice within an element (its values would make an array). The
//! RFC 5424 reader parses anything else into the object as before.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Most elements (and most parameters of one element) a section kept as text may have: the
/// checks for repeated ids and names compare each with those before it.
const MAX_ITEMS: usize = 16;

/// Longest SD-NAME (element id or parameter name).
const MAX_NAME: usize = 32;

/// Where the structured data that starts at `start` of `text` ends, when it is a section this
/// module can read back: one or more elements in strict RFC 5424 syntax, no element id twice,
/// no parameter name twice within an element, at most [`MAX_ITEMS`] of each. `None` for
/// anything else, which the caller parses the general way (for its errors, its arrays of
/// repeated names and the lenient reading).
pub(crate) fn checked_end(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut position = start;
    let mut ids = Distinct::default();
    if bytes.get(position) != Some(&b'[') {
        return None;
    }
    while bytes.get(position) == Some(&b'[') {
        let id = name_at(text, position + 1)?;
        ids.add(id)?;
        position += 1 + id.len();
        let mut names = Distinct::default();
        loop {
            match bytes.get(position)? {
                b']' => {
                    position += 1;
                    break;
                }
                b' ' => {
                    let name = name_at(text, position + 1)?;
                    names.add(name)?;
                    position += 1 + name.len();
                    if bytes.get(position..position + 2)? != b"=\"" {
                        return None;
                    }
                    position = value_end(bytes, position + 2)? + 1;
                }
                _ => return None,
            }
        }
    }
    Some(position)
}

/// Up to [`MAX_ITEMS`] names, each different from the others.
#[derive(Default)]
struct Distinct<'a> {
    names: [&'a str; MAX_ITEMS],
    count: usize,
}

impl<'a> Distinct<'a> {
    /// Adds `name`; `None` when it is there already or the list is full.
    fn add(&mut self, name: &'a str) -> Option<()> {
        if self.count == MAX_ITEMS || self.names[..self.count].contains(&name) {
            return None;
        }
        self.names[self.count] = name;
        self.count += 1;
        Some(())
    }
}

/// The SD-NAME at `start`: 1 to 32 printable US-ASCII characters except `=`, space, `]` and
/// `"` (what the RFC 5424 reader's `sd_name` takes).
fn name_at(text: &str, start: usize) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut end = start;
    while let Some(byte) = bytes.get(end) {
        if !(33..=126).contains(byte) || matches!(byte, b'=' | b']' | b'"') {
            break;
        }
        end += 1;
        if end - start > MAX_NAME {
            return None;
        }
    }
    if end == start {
        return None;
    }
    text.get(start..end)
}

/// The position of the quote that ends the PARAM-VALUE starting at `start`: `\"`, `\\` and
/// `\]` are escapes, an unescaped `]` or any other backslash makes the value invalid.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut position = start;
    loop {
        match bytes.get(position)? {
            b'"' => return Some(position),
            b']' => return None,
            b'\\' => match bytes.get(position + 1)? {
                b'"' | b'\\' | b']' => position += 2,
                _ => return None,
            },
            _ => position += 1,
        }
    }
}

/// The elements of a section [`checked_end`] accepted, in order: each id with its parameters.
pub(crate) fn elements(text: &str) -> Elements<'_> {
    Elements { text, position: 0 }
}

/// See [`elements`]. On text [`checked_end`] did not accept it stops early; it never panics.
#[derive(Clone)]
pub(crate) struct Elements<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = (&'a str, Params<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.position) != Some(&b'[') {
            return None;
        }
        let id = name_at(self.text, self.position + 1)?;
        let params_start = self.position + 1 + id.len();
        // The element ends at the first `]` outside a value.
        let mut position = params_start;
        let mut in_value = false;
        loop {
            match (bytes.get(position)?, in_value) {
                (b']', false) => break,
                (b'"', _) => in_value = !in_value,
                (b'\\', true) => position += 1,
                _ => {}
            }
            position += 1;
        }
        self.position = position + 1;
        let params = Params {
            text: self.text.get(params_start..position)?,
            position: 0,
        };
        Some((id, params))
    }
}

/// The parameters of one element: each name with its value as written (escapes in it:
/// [`unescaped`] gives the value itself; counting or skipping values needs no copy).
#[derive(Clone)]
pub(crate) struct Params<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.position) != Some(&b' ') {
            return None;
        }
        let name = name_at(self.text, self.position + 1)?;
        let value_start = self.position + 1 + name.len() + 2;
        let end = value_end(bytes, value_start)?;
        self.position = end + 1;
        Some((name, self.text.get(value_start..end)?))
    }
}

/// A value as written, without the backslashes of its escapes (in a section [`checked_end`]
/// accepted, each is before `"`, `\` or `]`).
pub(crate) fn unescaped(written: &str) -> Cow<'_, str> {
    if !written.contains('\\') {
        return Cow::Borrowed(written);
    }
    let mut value = String::with_capacity(written.len());
    let mut characters = written.chars();
    while let Some(character) = characters.next() {
        match character {
            '\\' => value.extend(characters.next()),
            other => value.push(other),
        }
    }
    Cow::Owned(value)
}

/// The object a section stands for (what the RFC 5424 reader would have built).
pub(crate) fn to_value(text: &str) -> Value {
    let mut object = Map::new();
    for (id, params) in elements(text) {
        let members: Map<String, Value> = params
            .map(|(name, written)| {
                (
                    name.to_owned(),
                    Value::String(unescaped(written).into_owned()),
                )
            })
            .collect();
        object.insert(id.to_owned(), Value::Object(members));
    }
    Value::Object(object)
}

/// What `record::fields_cost` counts for the section's object under a key of `key_len` bytes,
/// without building it: its values and keys (the entry's key, the object, each element's id
/// and object, each parameter's name and value), and the bytes of the paths its values are
/// indexed under (`key.id.name`).
pub(crate) fn flat_cost(key_len: usize, text: &str) -> (usize, usize) {
    let (mut values, mut path_bytes) = (2usize, 0usize);
    for (id, params) in elements(text) {
        values = values.saturating_add(2);
        for (name, _) in params {
            values = values.saturating_add(2);
            path_bytes = path_bytes.saturating_add(key_len + 1 + id.len() + 1 + name.len());
        }
    }
    (values, path_bytes)
}

/// How deeply the section's object nests, as `fields::value_depth` counts: an object of
/// objects (empty ones too) is 2 deep. A section has at least one element.
pub(crate) const DEPTH: usize = 2;

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Option<&str> {
        checked_end(text, 0).map(|end| &text[..end])
    }

    #[test]
    fn a_section_reads_back_as_its_object() {
        let text = r#"[exampleSDID@32473 iut="3" eventSource="App\"li\]ca\\tion"][examplePriority@32473][meta sequenceId="2"]"#;
        assert_eq!(section(text), Some(text));
        assert_eq!(
            to_value(text),
            serde_json::json!({
                "exampleSDID@32473": {"iut": "3", "eventSource": "App\"li]ca\\tion"},
                "examplePriority@32473": {},
                "meta": {"sequenceId": "2"},
            })
        );
    }

    #[test]
    fn what_the_general_reader_must_handle_is_refused() {
        for text in [
            "-",
            "",
            "[",
            "[]",
            "[a x=\"1\"][a y=\"2\"]",              // an id twice: an error
            "[a x=\"1\" x=\"2\"]",                 // a name twice: an array
            "[a x = \"1\"]",                       // spaces: the lenient reading
            "[a x=\"1]\"]",                        // an unescaped ]
            "[a x=\"\\n\"]",                       // an unknown escape
            "[a x=\"1\"",                          // not closed
            "[a x=1]",                             // no quotes
            "[a  x=\"1\"]",                        // two spaces
            "[aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]", // 33 bytes
            "[a=b]",
        ] {
            assert_eq!(section(text), None, "{text}");
        }
        let many: String = (0..=MAX_ITEMS).map(|index| format!("[e{index}]")).collect();
        assert_eq!(section(&many), None);
    }

    #[test]
    fn the_section_ends_where_the_message_starts() {
        let text = "[a x=\"1\"] message [b]";
        assert_eq!(section(text), Some("[a x=\"1\"]"));
        assert_eq!(
            checked_end("<13>1 - h a - - [a] m", 16),
            Some("<13>1 - h a - - [a]".len())
        );
    }
}
