//! The handful of keys the key=value parser maps to core fields and logsource, read from
//! where the pair store put them instead of one lookup per key.
//!
//! `fields` was an `IndexMap` with SipHash, and `map_core_fields` asked it for ~40 names per
//! record, each lookup hashing the name. (`Fields` is now a `Vec` scanned linearly while
//! small, where ~40 lookups would be ~40 scans.) One pass over the ~25 entries of a netfilter
//! line, matching each name against the known set, replaced them; but that match switched on
//! each entry's name length and compared it with every known name of that length, a branch
//! the processor mostly guessed wrong (~6% of a netfilter line's parse time). Now the pair
//! store notes where it puts each known name ([`KnownPositions`]), the way it notes which
//! names it holds, and [`KnownFields::at`] reads those entries only. The result is exactly
//! what `fields.get_stored(name)` returns (property tests hold both to it).

use crate::event::Fields;
use crate::fields::StoredValue;
use crate::format::kv_names::{index_of_const, NAME_COUNT};

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

        /// The known keys in declaration order, so that `Known::$slot as usize` numbers them.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)] // the device's own keys, as the slots
        #[derive(Clone, Copy)]
        enum Known {
            $( $slot, )*
        }

        /// The names of the known keys, in declaration order.
        const KNOWN_NAMES: &[&str] = &[$($name),*];

        impl<'a> KnownFields<'a> {
            /// The names of the known keys, in declaration order.
            #[cfg(test)]
            pub(crate) const NAMES: &'static [&'static str] = KNOWN_NAMES;

            /// The known keys' values, read from the entries `positions` says hold them
            /// (nothing else of `fields` is looked at).
            pub(crate) fn at(fields: &'a Fields, positions: &KnownPositions) -> Self {
                let mut known = KnownFields::default();
                $(
                    if positions.present & (1 << Known::$slot as u64) != 0 {
                        let position = positions.positions[Known::$slot as usize] as usize;
                        debug_assert_eq!(fields.key_at(position), Some($name), "a noted position");
                        known.$slot = fields.stored_at(position);
                    }
                )*
                known
            }

            /// Collects the known keys' values from `fields` in one pass over its entries:
            /// the reference [`KnownFields::at`] is held to.
            #[cfg(test)]
            pub(crate) fn collect(fields: &'a Fields) -> Self {
                let mut known = KnownFields::default();
                for (name, value) in fields.iter_stored() {
                    match name {
                        $( $name => known.$slot = Some(value), )*
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

// One bit per known key must fit `KnownPositions::present`.
const _: () = assert!(KNOWN_NAMES.len() <= 64);

/// Marks a `kv_names` index that is not a known key.
const NOT_KNOWN: u8 = u8::MAX;

/// For each `kv_names` index, the number of the known key of that name, or [`NOT_KNOWN`].
/// Built at compile time; a known key missing from `kv_names` fails the build.
static KNOWN_OF_NAME: [u8; NAME_COUNT] = {
    let mut known = [NOT_KNOWN; NAME_COUNT];
    let mut slot = 0;
    while slot < KNOWN_NAMES.len() {
        known[index_of_const(KNOWN_NAMES[slot])] = slot as u8;
        slot += 1;
    }
    known
};

/// Where in `fields` each known key's entry is: what the pair store notes as it stores pairs
/// under `kv_names`' names, for [`KnownFields::at`].
#[derive(Debug, Clone)]
pub(crate) struct KnownPositions {
    /// Bit `i` set: known key number `i` is at `positions[i]`.
    present: u64,
    positions: [u32; KNOWN_NAMES.len()],
}

impl KnownPositions {
    /// No known key noted.
    pub(crate) fn new() -> Self {
        KnownPositions {
            present: 0,
            positions: [0; KNOWN_NAMES.len()],
        }
    }

    /// The positions of the known keys `fields` holds, found by a scan of its keys (what the
    /// pair store notes as it goes; for tests that fill `fields` themselves).
    #[cfg(test)]
    pub(crate) fn scan(fields: &Fields) -> Self {
        let mut positions = KnownPositions::new();
        for (position, key) in fields.keys().enumerate() {
            if let Some(index) = crate::format::kv_names::static_index(key) {
                positions.note(index, position);
            }
        }
        positions
    }

    /// Notes that the name with `kv_names` index `name_index` has its entry at `position`
    /// (the first time only: an entry keeps its position, a repeated key collects its values
    /// there).
    #[inline]
    pub(crate) fn note(&mut self, name_index: usize, position: usize) {
        let Some(&slot) = KNOWN_OF_NAME.get(name_index) else {
            return;
        };
        if slot == NOT_KNOWN || self.present & (1 << slot) != 0 {
            return;
        }
        // Positions past 4 G entries cannot happen (each entry is 96 bytes); should one, the
        // key reads as absent rather than as another entry.
        let Ok(position) = u32::try_from(position) else {
            return;
        };
        self.present |= 1 << slot;
        self.positions[usize::from(slot)] = position;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        /// The one-pass collection and the read at noted positions see exactly what a lookup
        /// by name sees, for every known name, whatever else the map holds and in whatever
        /// order.
        #[test]
        fn collect_matches_lookup_by_name(
            entries in proptest::collection::vec((name(), value()), 0..40)
        ) {
            let mut fields = Fields::new();
            for (name, value) in entries {
                fields.insert(name.into(), value);
            }
            let known = KnownFields::collect(&fields);
            let at_positions = KnownFields::at(&fields, &KnownPositions::scan(&fields));
            for name in KnownFields::NAMES {
                prop_assert_eq!(known.get(name), fields.get_stored(name), "{}", name);
                prop_assert_eq!(at_positions.get(name), fields.get_stored(name), "{}", name);
            }
        }
    }
}
