//! Key names that key=value devices write on nearly every line (netfilter's `SRC`, `DPT`, …,
//! FortiGate's `srcip`, `policyid`, …, the lower-case `spt`, `rule`, `zone`, … firewalls write
//! under the `filterlog` tag, and every name `kv_known` reads), as `'static` strings:
//! a pair whose key is one of them is stored in `fields` without copying the key (an
//! allocation per pair was a tenth of a netfilter line's parse, BENCHMARKS.md "Parsing").
//! Any other key is copied as before; the list only saves allocations, it never changes
//! what is stored.

/// `key` as a `'static` string, when it is one of the common names.
pub(crate) fn static_name(key: &str) -> Option<&'static str> {
    // Bucketed by length. Names of up to 8 bytes are compared as one 64-bit word each (a
    // handful of integer compares instead of `memcmp` calls, which this lookup, asked once
    // per pair, spent most of its time in); longer ones byte-wise.
    let bytes = key.as_bytes();
    let short: &[(u64, &'static str)] = match bytes.len() {
        2 => &LEN_2,
        3 => &LEN_3,
        4 => &LEN_4,
        5 => &LEN_5,
        6 => &LEN_6,
        7 => &LEN_7,
        8 => &LEN_8,
        9..=11 => {
            let long: &[&'static str] = match bytes.len() {
                9 => &["eventtime", "sessionid", "transport", "utmaction"],
                10 => &[
                    "INCOMPLETE",
                    "dstcountry",
                    "policyname",
                    "policytype",
                    "srccountry",
                ],
                11 => &["dstintfrole", "srcintfrole"],
                _ => return None,
            };
            return long.iter().copied().find(|name| *name == key);
        }
        _ => return None,
    };
    let word = packed(bytes);
    short
        .iter()
        .find(|(packed_name, _)| *packed_name == word)
        .map(|(_, name)| *name)
}

/// Up to 8 bytes as one little-endian word, zero-padded (the caller buckets by length, so
/// padding cannot make two names equal).
#[inline]
fn packed(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let length = bytes.len().min(8);
    word[..length].copy_from_slice(&bytes[..length]);
    u64::from_le_bytes(word)
}

/// [`packed`] at compile time, for the tables below.
const fn packed_const(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut word = 0u64;
    let mut index = 0;
    while index < bytes.len() && index < 8 {
        word |= (bytes[index] as u64) << (8 * index);
        index += 1;
    }
    word
}

/// A length bucket of names with their packed words.
const fn bucket<const N: usize>(names: [&'static str; N]) -> [(u64, &'static str); N] {
    let mut table = [(0u64, ""); N];
    let mut index = 0;
    while index < N {
        table[index] = (packed_const(names[index]), names[index]);
        index += 1;
    }
    table
}

static LEN_2: [(u64, &str); 10] =
    bucket(["CE", "DF", "ID", "IN", "MF", "TC", "in", "tz", "ui", "vd"]);
static LEN_3: [(u64, &str); 32] = bucket([
    "ACK", "CWR", "DPT", "DST", "ECE", "FIN", "GID", "LEN", "MAC", "OPT", "OUT", "PSH", "RES",
    "RST", "SEQ", "SPT", "SRC", "SYN", "TOS", "TTL", "UID", "URG", "act", "app", "dpt", "dst",
    "len", "msg", "out", "spt", "src", "ttl",
]);
static LEN_4: [(u64, &str); 11] = bucket([
    "CODE", "MARK", "PREC", "TYPE", "URGP", "date", "rule", "time", "type", "user", "zone",
]);
static LEN_5: [(u64, &str); 13] = bucket([
    "PROTO", "appid", "devid", "dport", "dstip", "flags", "group", "level", "logid", "proto",
    "remip", "sport", "srcip",
]);
static LEN_6: [(u64, &str); 12] = bucket([
    "PHYSIN", "WINDOW", "action", "appcat", "dst_ip", "method", "policy", "reason", "result",
    "src_ip", "srcmac", "status",
]);
static LEN_7: [(u64, &str); 21] = bucket([
    "FLOWLBL", "PHYSOUT", "apprisk", "crlevel", "devname", "dstintf", "dstname", "dstport",
    "dstuser", "logdesc", "poluuid", "rcvdpkt", "sentpkt", "service", "srcintf", "srcname",
    "srcport", "srcuser", "subtype", "transip", "usrName",
]);
static LEN_8: [(u64, &str); 10] = bucket([
    "HOPLIMIT", "countapp", "craction", "dst_port", "duration", "policyid", "rcvdbyte", "sentbyte",
    "src_port", "trandisp",
]);

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
    fn every_table_holds_names_of_its_length() {
        let tables: [(usize, &[(u64, &str)]); 7] = [
            (2, &LEN_2),
            (3, &LEN_3),
            (4, &LEN_4),
            (5, &LEN_5),
            (6, &LEN_6),
            (7, &LEN_7),
            (8, &LEN_8),
        ];
        for (length, table) in tables {
            for (word, name) in table {
                assert_eq!(name.len(), length, "{name}");
                assert_eq!(*word, packed(name.as_bytes()), "{name}");
                assert!(
                    NAMES.contains(name),
                    "{name} is not in the list of common names"
                );
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
