//! Key names that key=value devices write on nearly every line (netfilter's `SRC`, `DPT`, …,
//! FortiGate's `srcip`, `policyid`, …, and every name `kv_known` reads), as `'static` strings:
//! a pair whose key is one of them is stored in `fields` without copying the key (an
//! allocation per pair was a tenth of a netfilter line's parse, BENCHMARKS.md "Parsing").
//! Any other key is copied as before; the list only saves allocations, it never changes
//! what is stored.

/// `key` as a `'static` string, when it is one of the common names.
pub(crate) fn static_name(key: &str) -> Option<&'static str> {
    // Bucketed by length so a lookup compares a handful of names, first byte first.
    let bucket: &[&'static str] = match key.len() {
        2 => &["CE", "DF", "ID", "IN", "MF", "TC", "tz", "ui", "vd"],
        3 => &[
            "ACK", "CWR", "DPT", "DST", "ECE", "FIN", "GID", "LEN", "MAC", "OPT", "OUT", "PSH",
            "RES", "RST", "SEQ", "SPT", "SRC", "SYN", "TOS", "TTL", "UID", "URG", "act", "app",
            "dst", "msg", "src",
        ],
        4 => &[
            "CODE", "MARK", "PREC", "TYPE", "URGP", "date", "time", "type", "user",
        ],
        5 => &[
            "PROTO", "appid", "devid", "dport", "dstip", "group", "level", "logid", "proto",
            "remip", "sport", "srcip",
        ],
        6 => &[
            "PHYSIN", "WINDOW", "action", "appcat", "dst_ip", "method", "reason", "result",
            "src_ip", "srcmac", "status",
        ],
        7 => &[
            "FLOWLBL", "PHYSOUT", "apprisk", "crlevel", "devname", "dstintf", "dstname", "dstport",
            "dstuser", "logdesc", "poluuid", "rcvdpkt", "sentpkt", "service", "srcintf", "srcname",
            "srcport", "srcuser", "subtype", "transip", "usrName",
        ],
        8 => &[
            "HOPLIMIT", "countapp", "craction", "dst_port", "duration", "policyid", "rcvdbyte",
            "sentbyte", "src_port", "trandisp",
        ],
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
    let first = key.as_bytes().first();
    bucket
        .iter()
        .copied()
        .find(|name| name.as_bytes().first() == first && *name == key)
}

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
    ];

    #[test]
    fn every_listed_name_is_found_and_others_are_not() {
        for name in NAMES {
            assert_eq!(static_name(name), Some(*name));
        }
        for other in ["", "S", "SRCX", "Src", "syslog.priority", "srcip "] {
            assert_eq!(static_name(other), None, "{other}");
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
