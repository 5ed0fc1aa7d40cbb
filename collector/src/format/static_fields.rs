//! Writing a run of entries with fixed (`'static`) names into an empty `fields` map without
//! hashing them: the syslog header's `syslog.priority`, `syslog.facility`, `syslog.version`, …
//!
//! `fields` is serde_json's `Map`, an `IndexMap` with SipHash here (serde_json's
//! `preserve_order`, which `evtx` turns on), and every insert hashes its name. The header names
//! come in a few fixed sequences, so each thread keeps one template map per sequence (names in
//! order, values null). Cloning a template into the event's empty map copies its hash table
//! as it is (no hashing), and the values are then set by position. The result is the map the
//! inserts would have built: same names, same order, same values.

use std::cell::RefCell;

use serde_json::Value;

use crate::event::Fields;

/// Templates kept per thread: the name sequences the code writes are few (a handful per
/// syslog format); past this many, entries are simply inserted.
const MAX_TEMPLATES: usize = 32;

/// The capacity events' `fields` start with (`parse::new_event`), so cloning a template into
/// a fresh event's map reuses its allocation.
pub(crate) const FIELDS_CAPACITY: usize = 8;

thread_local! {
    static TEMPLATES: RefCell<Vec<(Vec<&'static str>, Fields)>> = const { RefCell::new(Vec::new()) };
}

/// Writes `values` under `names` (same length, in order) into `fields`, as if each pair were
/// inserted in turn. Without hashing when `fields` is empty and the names are distinct.
pub(crate) fn write(fields: &mut Fields, names: &[&'static str], values: &mut [Value]) {
    debug_assert_eq!(names.len(), values.len());
    if names.is_empty() {
        return;
    }
    if fields.is_empty() && clone_template(fields, names) {
        for (slot, value) in fields.values_mut().zip(values.iter_mut()) {
            *slot = value.take();
        }
        return;
    }
    for (name, value) in names.iter().zip(values.iter_mut()) {
        fields.insert((*name).to_owned(), value.take());
    }
}

/// Makes `fields` (empty) a copy of the template for `names`, building the template on first
/// use. False when there is no usable template (a repeated name, or the cache is full).
fn clone_template(fields: &mut Fields, names: &[&'static str]) -> bool {
    TEMPLATES.with(|templates| {
        let Ok(mut templates) = templates.try_borrow_mut() else {
            return false;
        };
        let found = templates
            .iter()
            .position(|(template_names, _)| same_names(template_names, names));
        let index = match found {
            Some(index) => index,
            None => {
                if templates.len() == MAX_TEMPLATES {
                    return false;
                }
                let mut template = Fields::with_capacity(FIELDS_CAPACITY.max(names.len()));
                for name in names {
                    template.insert((*name).to_owned(), Value::Null);
                }
                templates.push((names.to_vec(), template));
                templates.len() - 1
            }
        };
        let template = &templates[index].1;
        // A repeated name would leave fewer entries than values: insert those one by one.
        if template.len() != names.len() {
            return false;
        }
        fields.clone_from(template);
        true
    })
}

/// Name sequences are compared by address first (the same literal is usually one address),
/// then by text.
fn same_names(left: &[&'static str], right: &[&'static str]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .all(|(a, b)| std::ptr::eq(*a, *b) || a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NAMES: &[&str] = &[
        "syslog.priority",
        "syslog.facility",
        "syslog.version",
        "syslog.timestamp",
        "syslog.msgid",
        "structured_data",
    ];

    fn by_inserts(before: &[(String, Value)], names: &[&str], values: &[Value]) -> Fields {
        let mut fields = Fields::new();
        for (name, value) in before {
            fields.insert(name.clone(), value.clone());
        }
        for (name, value) in names.iter().zip(values) {
            fields.insert((*name).to_owned(), value.clone());
        }
        fields
    }

    proptest! {
        /// Same map, same order, same serialization as inserting each pair, for any name
        /// sequence (repeats included), whether `fields` starts empty or not, and again when
        /// the template is reused.
        #[test]
        fn writes_what_inserts_write(
            picks in proptest::collection::vec((0..NAMES.len(), "[a-z0-9]{0,6}"), 0..8),
            before in proptest::collection::vec(("[a-z.]{1,6}", "[a-z]{0,3}"), 0..2),
        ) {
            let names: Vec<&'static str> = picks.iter().map(|(index, _)| NAMES[*index]).collect();
            let values: Vec<Value> = picks.iter().map(|(_, text)| Value::from(text.as_str())).collect();
            let before: Vec<(String, Value)> =
                before.into_iter().map(|(name, value)| (name, Value::from(value))).collect();
            let expected = by_inserts(&before, &names, &values);
            for _ in 0..2 {
                let mut fields = Fields::with_capacity(FIELDS_CAPACITY);
                for (name, value) in &before {
                    fields.insert(name.clone(), value.clone());
                }
                write(&mut fields, &names, &mut values.clone());
                prop_assert_eq!(&fields, &expected);
                prop_assert_eq!(
                    serde_json::to_string(&fields).unwrap_or_default(),
                    serde_json::to_string(&expected).unwrap_or_default()
                );
                let order: Vec<&String> = fields.keys().collect();
                let expected_order: Vec<&String> = expected.keys().collect();
                prop_assert_eq!(order, expected_order);
            }
        }
    }

    #[test]
    fn later_inserts_and_lookups_work_on_a_cloned_template() {
        let mut fields = Fields::with_capacity(FIELDS_CAPACITY);
        write(
            &mut fields,
            &NAMES[..3],
            &mut [Value::from(13), Value::from("user"), Value::from(1)],
        );
        for index in 0..40 {
            fields.insert(format!("k{index}"), Value::from(index));
        }
        assert_eq!(fields.get("syslog.facility"), Some(&Value::from("user")));
        assert_eq!(fields.get("k39"), Some(&Value::from(39)));
        assert_eq!(fields.len(), 43);
    }
}
