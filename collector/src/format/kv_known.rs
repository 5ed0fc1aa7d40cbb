//! The handful of keys the key=value parser maps to core fields and logsource, found in one
//! pass over the event's `fields` instead of one hashed lookup per key.
//!
//! `fields` was then an `IndexMap` with SipHash; `map_core_fields` asked it for ~40 names per
//! record, and each lookup hashed the name. (`Fields` is now a `Vec` scanned linearly while
//! small, where ~40 lookups would be ~40 scans: the one pass still wins.) Walking the ~25
//! entries of a netfilter line once and matching each name against the known set costs no
//! hashing (with one `entry` per pair instead of two lookups, +16% per CPU second
//! on that line, BENCHMARKS.md "Parsing"). The result is exactly what `fields.get_stored(name)`
//! returns, since a map holds each name once.

use crate::event::Fields;
use crate::fields::StoredValue;
use crate::format::kv_names::packed;

/// Declares the known keys once: the struct with one slot per key, and the match that files
/// an entry into its slot.
macro_rules! known_keys {
    ($( $slot:ident => $name:literal ),* $(,)?) => {
        /// The value of each known key in `fields`, or `None` when absent: what
        /// `fields.get_stored(name)` returns for those names.
        #[derive(Debug, Default, Clone, Copy, PartialEq)]
        #[allow(non_snake_case)] // slots are named after the device's own keys (`SRC`, `usrName`)
        pub(crate) struct KnownFields<'a> {
            $( pub(crate) $slot: Option<StoredValue<'a>>, )*
        }

        impl<'a> KnownFields<'a> {
            /// The names of the known keys, in declaration order.
            #[cfg(test)]
            pub(crate) const NAMES: &'static [&'static str] = &[$($name),*];

            /// Collects the known keys' values from `fields` in one pass.
            pub(crate) fn collect(fields: &'a Fields) -> Self {
                /// Each name's length and packed first 8 bytes, as constants the match
                /// below can switch on: a few integer compares per entry instead of a
                /// `memcmp` per candidate name of the same length.
                #[allow(non_upper_case_globals)]
                mod words {
                    use crate::format::kv_names::packed_const;
                    $( pub(super) const $slot: (usize, u64) = ($name.len(), packed_const($name)); )*
                }
                let mut known = KnownFields::default();
                for (name, value) in fields.iter_stored() {
                    // Cheap reject first: every known name is 2 to 9 bytes long.
                    if !(2..=9).contains(&name.len()) {
                        continue;
                    }
                    // Length and first 8 bytes tell names of up to 8 bytes apart; a longer
                    // one (`eventtime`) is compared in full.
                    match (name.len(), packed(name.as_bytes())) {
                        $( words::$slot if $name.len() <= 8 || name == $name => {
                            known.$slot = Some(value)
                        } )*
                        _ => {}
                    }
                }
                known
            }

            /// The slot of a known name (for tests comparing against `fields.get`).
            #[cfg(test)]
            pub(crate) fn get(&self, name: &str) -> Option<StoredValue<'a>> {
                match name {
                    $( $name => self.$slot, )*
                    _ => None,
                }
            }
        }
    };
}

known_keys! {
    srcip => "srcip",
    src => "src",
    SRC => "SRC",
    src_ip => "src_ip",
    remip => "remip",
    dstip => "dstip",
    dst => "dst",
    DST => "DST",
    dst_ip => "dst_ip",
    srcport => "srcport",
    SPT => "SPT",
    spt => "spt",
    src_port => "src_port",
    sport => "sport",
    dstport => "dstport",
    DPT => "DPT",
    dpt => "dpt",
    dst_port => "dst_port",
    dport => "dport",
    user => "user",
    usrName => "usrName",
    dstuser => "dstuser",
    srcuser => "srcuser",
    action => "action",
    act => "act",
    status => "status",
    result => "result",
    logid => "logid",
    level => "level",
    msg => "msg",
    devname => "devname",
    date => "date",
    time => "time",
    tz => "tz",
    eventtime => "eventtime",
    devid => "devid",
    kind => "type",
    subtype => "subtype",
    IN => "IN",
    OUT => "OUT",
    PROTO => "PROTO",
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_name_is_two_to_nine_bytes() {
        // `collect` skips other lengths without matching.
        assert!(KnownFields::NAMES
            .iter()
            .all(|name| (2..=9).contains(&name.len())));
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(KnownFields::NAMES).prop_map(str::to_owned),
            "[a-zA-Z_]{1,10}",
            proptest::sample::select(
                &["SRC ", "sr", "srcipp", "Src", "TYPE", "syslog.priority"][..]
            )
            .prop_map(str::to_owned),
        ]
    }

    use serde_json::Value;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            "[0-9.a-z]{0,8}".prop_map(Value::from),
            Just(Value::Bool(true)),
            proptest::collection::vec("[0-9]{1,3}".prop_map(Value::from), 2..4)
                .prop_map(Value::Array),
        ]
    }

    proptest! {
        /// The one-pass collection sees exactly what a lookup by name sees, for every known
        /// name, whatever else the map holds and in whatever order.
        #[test]
        fn collect_matches_lookup_by_name(
            entries in proptest::collection::vec((name(), value()), 0..40)
        ) {
            let mut fields = Fields::new();
            for (name, value) in entries {
                fields.insert(name.into(), value);
            }
            let known = KnownFields::collect(&fields);
            for name in KnownFields::NAMES {
                prop_assert_eq!(known.get(name), fields.get_stored(name), "{}", name);
            }
        }
    }
}
