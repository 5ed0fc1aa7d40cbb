//! Key names that key=value devices write on nearly every line (netfilter's `SRC`, `DPT`, …,
//! FortiGate's `srcip`, `policyid`, …, the lower-case `spt`, `rule`, `zone`, … firewalls write
//! under the `filterlog` tag, and every name `kv_known` reads), as `'static` strings:
//! a pair whose key is one of them is stored in `fields` without copying the key (an
//! allocation per pair was a tenth of a netfilter line's parse, BENCHMARKS.md "Parsing").
//! Any other key is copied as before; the list only saves allocations, it never changes
//! what is stored.

use crate::fields::key_bit;

/// The common names (any order; lengths 2 to [`MAX_NAME_LEN`]).
const NAMES: [&str; 120] = [
    "CE",
    "DF",
    "ID",
    "IN",
    "MF",
    "TC",
    "in",
    "tz",
    "ui",
    "vd", //
    "ACK",
    "CWR",
    "DPT",
    "DST",
    "ECE",
    "FIN",
    "GID",
    "LEN",
    "MAC",
    "OPT",
    "OUT",
    "PSH",
    "RES",
    "RST",
    "SEQ",
    "SPT",
    "SRC",
    "SYN",
    "TOS",
    "TTL",
    "UID",
    "URG",
    "act",
    "app",
    "dpt",
    "dst",
    "len",
    "msg",
    "out",
    "spt",
    "src",
    "ttl", //
    "CODE",
    "MARK",
    "PREC",
    "TYPE",
    "URGP",
    "date",
    "rule",
    "time",
    "type",
    "user",
    "zone", //
    "PROTO",
    "appid",
    "devid",
    "dport",
    "dstip",
    "flags",
    "group",
    "level",
    "logid",
    "proto",
    "remip",
    "sport",
    "srcip", //
    "PHYSIN",
    "WINDOW",
    "action",
    "appcat",
    "dst_ip",
    "method",
    "policy",
    "reason",
    "result",
    "src_ip",
    "srcmac",
    "status", //
    "FLOWLBL",
    "PHYSOUT",
    "apprisk",
    "crlevel",
    "devname",
    "dstintf",
    "dstname",
    "dstport",
    "dstuser",
    "logdesc",
    "poluuid",
    "rcvdpkt",
    "sentpkt",
    "service",
    "srcintf",
    "srcname",
    "srcport",
    "srcuser",
    "subtype",
    "transip",
    "usrName", //
    "HOPLIMIT",
    "countapp",
    "craction",
    "dst_port",
    "duration",
    "policyid",
    "rcvdbyte",
    "sentbyte",
    "src_port",
    "trandisp", //
    "eventtime",
    "sessionid",
    "transport",
    "utmaction", //
    "INCOMPLETE",
    "dstcountry",
    "policyname",
    "policytype",
    "srccountry", //
    "dstintfrole",
    "srcintfrole",
];

/// The longest common name.
const MAX_NAME_LEN: usize = 11;

/// `key` as a `'static` string, when it is one of the common names.
pub(crate) fn static_name(key: &str) -> Option<&'static str> {
    static_index(key).and_then(|index| NAMES.get(index).copied())
}

/// The common name `NAMES[index]` (for keys [`static_index`] found).
#[inline]
pub(crate) fn name_at(index: usize) -> Option<&'static str> {
    NAMES.get(index).copied()
}

/// The common name `NAMES[index]` with its `fields` filter bit ([`key_bit`], computed at
/// compile time): a pair stored under a known name does not compute it again (~12
/// instructions a pair, ~17 pairs a netfilter line).
#[inline]
pub(crate) fn name_and_bit_at(index: usize) -> Option<(&'static str, u64)> {
    Some((*NAMES.get(index)?, *KEY_BITS.get(index)?))
}

/// The index of `name` among the common names, at compile time: a name that is not one of
/// them fails the build (for tables keyed by index, such as `kv_known`'s).
pub(crate) const fn index_of_const(name: &str) -> usize {
    let mut index = 0;
    while index < NAMES.len() {
        let (listed, wanted) = (NAMES[index].as_bytes(), name.as_bytes());
        if listed.len() == wanted.len() {
            let mut at = 0;
            while at < listed.len() && listed[at] == wanted[at] {
                at += 1;
            }
            if at == listed.len() {
                return index;
            }
        }
        index += 1;
    }
    panic!("not one of kv_names' common names")
}

/// Each name's [`key_bit`].
static KEY_BITS: [u64; NAMES.len()] = {
    let mut bits = [0u64; NAMES.len()];
    let mut index = 0;
    while index < NAMES.len() {
        bits[index] = key_bit(NAMES[index]);
        index += 1;
    }
    bits
};

/// How many common names there are: [`static_index`] answers below this.
pub(crate) const NAME_COUNT: usize = NAMES.len();

/// The index of `key` among the common names, when it is one: a number below
/// [`NAME_COUNT`] that stands for the name (a parser can keep one bit per name seen).
#[inline]
pub(crate) fn static_index(key: &str) -> Option<usize> {
    static_index_of_bytes(key.as_bytes())
}

/// [`static_index`] of a key held as bytes (the key=value tokenizer's keys).
#[inline]
pub(crate) fn static_index_of_bytes(bytes: &[u8]) -> Option<usize> {
    // One multiply and one look at a table built at compile time, instead of a scan of a
    // length bucket: this runs once per pair, and the scan (up to 32 compares for netfilter's
    // three-letter names) was ~7% of a netfilter line.
    if !(2..=MAX_NAME_LEN).contains(&bytes.len()) {
        return None;
    }
    let word = packed(bytes);
    let index = home_index(word, bytes.len())?;
    // Names of up to 8 bytes are told apart by their packed word and length; longer ones
    // (whose word is only their first 8 bytes) are compared in full.
    (bytes.len() <= 8 || NAMES.get(index)?.as_bytes() == bytes).then_some(index)
}

/// [`static_index_of_bytes`] of a key of `length` bytes (2 to 8) given as its [`packed`] word:
/// the key=value tokenizer reads a key and the `=` after it in one 8-byte load, so it has the
/// word already and never looks at the key's bytes one by one.
#[inline]
pub(crate) fn static_index_of_packed(word: u64, length: usize) -> Option<usize> {
    if !(2..=8).contains(&length) {
        return None;
    }
    home_index(word, length)
}

/// The index of the name whose packed word (its first 8 bytes) and length these are, when
/// there is one: every name has a home slot of its own ([`HOMES`]), so the one slot says.
#[inline(always)]
fn home_index(word: u64, length: usize) -> Option<usize> {
    let home = HOMES.get(slot_of(word, length))?;
    if home.word == word && usize::from(home.length) == length {
        usize::from(home.index).checked_sub(1)
    } else {
        None
    }
}

/// Slots of the table of home slots (a power of two; room enough that a multiplier giving
/// every name a slot of its own is quick to find: at least four times the names).
const SLOT_COUNT: usize = 1024;

/// The multiplier of [`slot_of`]: one under which every name has a home slot of its own, so a
/// lookup looks at one slot and never probes on. (With probing, the loop's exit was mispredicted
/// on the names that collided, ~8% of a netfilter line's tokenizer samples.) A name added to
/// [`NAMES`] that shares a slot fails the build ([`HOMES`]): then search a new multiplier (odd
/// 64-bit numbers at random until no two names share a slot; a few thousand tries for 120
/// names in 1,024).
const SLOT_MULTIPLIER: u64 = 0x1dfd_0b39_5ea5_16cd;

/// The home slot of a packed word and length.
#[inline]
const fn slot_of(word: u64, length: usize) -> usize {
    let mixed = (word ^ ((length as u64) << 59)).wrapping_mul(SLOT_MULTIPLIER);
    (mixed >> (64 - SLOT_COUNT.trailing_zeros())) as usize
}

/// The first 8 bytes (or fewer) as one little-endian word, zero-padded: what [`packed_const`]
/// gives. Lookups also compare the length, so padding cannot make two names equal. Two
/// overlapping loads instead of a copy of a variable length (a `memcpy` call per key).
#[inline]
pub(crate) fn packed(bytes: &[u8]) -> u64 {
    fn read<const N: usize>(bytes: &[u8], at: usize) -> u64 {
        let mut word = [0u8; 8];
        if let Some(piece) = bytes.get(at..at + N) {
            word[..N].copy_from_slice(piece);
        }
        u64::from_le_bytes(word)
    }
    let length = bytes.len();
    match length {
        8.. => read::<8>(bytes, 0),
        // The two loads overlap; an overlapping byte lands at the same place from both.
        4..=7 => read::<4>(bytes, 0) | read::<4>(bytes, length - 4) << (8 * (length - 4)),
        2..=3 => read::<2>(bytes, 0) | read::<2>(bytes, length - 2) << (8 * (length - 2)),
        1 => read::<1>(bytes, 0),
        _ => 0,
    }
}

/// [`packed`] at compile time, for the tables.
pub(crate) const fn packed_const(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut word = 0u64;
    let mut index = 0;
    while index < bytes.len() && index < 8 {
        word |= (bytes[index] as u64) << (8 * index);
        index += 1;
    }
    word
}

/// A slot of [`HOMES`]: the packed word and length of the name at home there, and its index
/// plus one (0: a free slot, whose length, 0, matches no key).
#[derive(Clone, Copy)]
struct Home {
    word: u64,
    length: u8,
    index: u8,
}

/// The table of home slots, word and length in the slot itself, so a lookup is one load after
/// the multiply (a table of indices into a list of names was two loads in a row, and their
/// latency was ~15% of a netfilter line's tokenizer samples). 16 KiB, of which a device's
/// lines touch the few dozen slots of their own names.
static HOMES: [Home; SLOT_COUNT] = {
    assert!(NAMES.len() * 4 <= SLOT_COUNT && NAMES.len() < 255);
    let mut homes = [Home {
        word: 0,
        length: 0,
        index: 0,
    }; SLOT_COUNT];
    let mut index = 0;
    while index < NAMES.len() {
        let name = NAMES[index];
        assert!(name.len() >= 2 && name.len() <= MAX_NAME_LEN);
        let slot = slot_of(packed_const(name), name.len());
        assert!(
            homes[slot].index == 0,
            "two names share a home slot: search a new SLOT_MULTIPLIER"
        );
        homes[slot] = Home {
            word: packed_const(name),
            length: name.len() as u8,
            index: (index + 1) as u8,
        };
        index += 1;
    }
    homes
};

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &[
        "IN",
        "OUT",
        "PHYSIN",
        "PHYSOUT",
        "MAC",
        "SRC",
        "DST",
        "LEN",
        "TOS",
        "PREC",
        "TTL",
        "ID",
        "DF",
        "MF",
        "CE",
        "PROTO",
        "SPT",
        "DPT",
        "SEQ",
        "ACK",
        "WINDOW",
        "RES",
        "CWR",
        "ECE",
        "URG",
        "PSH",
        "RST",
        "SYN",
        "FIN",
        "URGP",
        "TYPE",
        "CODE",
        "MARK",
        "OPT",
        "UID",
        "GID",
        "INCOMPLETE",
        "FLOWLBL",
        "TC",
        "HOPLIMIT",
        "date",
        "time",
        "tz",
        "eventtime",
        "logid",
        "type",
        "subtype",
        "level",
        "vd",
        "devname",
        "devid",
        "srcip",
        "srcport",
        "srcintf",
        "srcintfrole",
        "srcname",
        "srcmac",
        "srccountry",
        "dstip",
        "dstport",
        "dstintf",
        "dstintfrole",
        "dstcountry",
        "dstname",
        "sessionid",
        "proto",
        "action",
        "policyid",
        "policytype",
        "poluuid",
        "policyname",
        "service",
        "trandisp",
        "transip",
        "transport",
        "duration",
        "sentbyte",
        "rcvdbyte",
        "sentpkt",
        "rcvdpkt",
        "appcat",
        "app",
        "appid",
        "apprisk",
        "user",
        "group",
        "msg",
        "logdesc",
        "ui",
        "status",
        "reason",
        "method",
        "craction",
        "crlevel",
        "countapp",
        "utmaction",
        "src",
        "src_ip",
        "remip",
        "dst",
        "dst_ip",
        "src_port",
        "sport",
        "dst_port",
        "dport",
        "usrName",
        "dstuser",
        "srcuser",
        "act",
        "result",
        "in",
        "out",
        "spt",
        "dpt",
        "len",
        "ttl",
        "rule",
        "zone",
        "flags",
        "policy",
    ];

    #[test]
    fn every_listed_name_is_found_and_others_are_not() {
        for name in NAMES {
            assert_eq!(static_name(name), Some(*name));
        }
        for other in [
            "",
            "S",
            "SRCX",
            "Src",
            "syslog.priority",
            "srcip ",
            "SR\0",
            "SRC\0",
            "\0\0\0",
        ] {
            assert_eq!(static_name(other), None, "{other:?}");
        }
    }

    #[test]
    fn the_table_holds_exactly_the_listed_names() {
        let mut listed: Vec<&str> = NAMES.to_vec();
        listed.sort_unstable();
        let mut table: Vec<&str> = super::NAMES.to_vec();
        table.sort_unstable();
        table.dedup();
        assert_eq!(table, listed);
    }

    /// Every name sits in its home slot, its word the packed name (the build fails when two
    /// names share a slot; see `SLOT_MULTIPLIER`).
    #[test]
    fn every_name_sits_in_its_home_slot() {
        for (index, name) in super::NAMES.iter().enumerate() {
            let word = packed(name.as_bytes());
            let home = HOMES[slot_of(word, name.len())];
            assert_eq!(home.word, word, "{name}");
            assert_eq!(usize::from(home.length), name.len(), "{name}");
            assert_eq!(usize::from(home.index), index + 1, "{name}");
        }
        let used = HOMES.iter().filter(|home| home.index != 0).count();
        assert_eq!(used, super::NAMES.len());
    }

    proptest::proptest! {
        /// The overlapping loads give the zero-padded first 8 bytes, for every length.
        #[test]
        fn packed_is_the_padded_prefix(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)) {
            let mut word = [0u8; 8];
            let length = bytes.len().min(8);
            word[..length].copy_from_slice(&bytes[..length]);
            proptest::prop_assert_eq!(packed(&bytes), u64::from_le_bytes(word));
        }

        /// The table answers exactly what a comparison with every name answers, for names,
        /// their prefixes and extensions, and other text (NUL bytes included: padding).
        #[test]
        fn lookup_equals_comparing_every_name(
            key in "[A-Za-z_]{0,12}|(CE|SRC|srcport|dst_port|eventtime|srcintfrole)[\\x00a-z]{0,3}",
        ) {
            let expected = NAMES.iter().copied().find(|name| *name == key);
            proptest::prop_assert_eq!(static_name(&key), expected);
            let by_index = static_index(&key).and_then(name_at);
            proptest::prop_assert_eq!(by_index, expected);
            proptest::prop_assert!(static_index(&key).is_none_or(|index| index < NAME_COUNT));
            for cut in 0..key.len() {
                if let Some(prefix) = key.get(..cut) {
                    let expected = NAMES.iter().copied().find(|name| *name == prefix);
                    proptest::prop_assert_eq!(static_name(prefix), expected);
                }
            }
        }
    }

    #[test]
    fn every_known_field_name_is_static() {
        // `kv_known` reads these on every line: all of them should skip the copy.
        for name in crate::format::kv_known::KnownFields::NAMES {
            assert_eq!(static_name(name), Some(*name));
        }
    }
}
