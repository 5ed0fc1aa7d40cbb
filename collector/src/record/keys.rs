//! The fixed table of field names a record writes as a small code instead of as text.
//!
//! Codes are positions in [`KEYS`]. Records on disk and in batches keep them, so the table is
//! **append-only**: never reorder, rename or remove an entry (a test pins the start of the
//! table and its length only grows). A name missing from the table still round-trips (it is
//! written as text); the table only saves bytes. The first 64 codes take one byte in a record
//! (see `binary_fields`), so they are the names nearly every event has: the syslog header's,
//! then netfilter's and the `filterlog` firewalls' key=value names (the collector peer
//! bench's corpus); FortiGate, CEF/LEEF headers, Windows events and auditd come after.

/// Field names by record code (append-only, see the module docs).
pub(super) const KEYS: [&str; 191] = [
    // 0..12: syslog headers (rfc3164.rs, rfc5424.rs, syslog_common.rs).
    "syslog.priority",
    "syslog.facility",
    "syslog.severity",
    "syslog.timestamp",
    "syslog.hostname",
    "syslog.appname",
    "syslog.procid",
    "syslog.msgid",
    "syslog.version",
    "syslog.header",
    "structured_data",
    "syslog.structured_data_error",
    // 12..50: Linux netfilter (LOG target) names.
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
    "kernel_timestamp",
    "log_prefix",
    // 50..64: key=value firewalls under the `filterlog` tag.
    "action",
    "rule",
    "proto",
    "src",
    "dst",
    "spt",
    "dpt",
    "in",
    "out",
    "len",
    "ttl",
    "flags",
    "policy",
    "zone",
    // 64..: two bytes each from here on.
    "INCOMPLETE",
    "FLOWLBL",
    "TC",
    "HOPLIMIT",
    // FortiGate.
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
    // Other key=value names parsers know (kv_names.rs).
    "src_ip",
    "remip",
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
    // CEF and LEEF headers (cef.rs, leef.rs) and their flags.
    "cefVersion",
    "deviceVendor",
    "deviceProduct",
    "deviceVersion",
    "deviceEventClassId",
    "name",
    "severity",
    "cef_extension_error",
    "leefVersion",
    "vendor",
    "product",
    "version",
    "eventId",
    "leef_attribute_error",
    // Common CEF extension keys.
    "suser",
    "duser",
    "shost",
    "dhost",
    "dvc",
    "dvchost",
    "rt",
    "cat",
    "outcome",
    "request",
    "cs1",
    "cs1Label",
    "cs2",
    "cs2Label",
    // Windows events (winevent.rs).
    "EventID",
    "Channel",
    "Computer",
    "EventRecordID",
    "Version",
    "Level",
    "Task",
    "Opcode",
    "Keywords",
    "UserID",
    "ExecutionProcessID",
    "ExecutionThreadID",
    // auditd (format/auditd/).
    "auditd",
    "record_type",
    "record_types",
    "serial",
    "node",
    "parse_warnings",
    "SYSCALL",
    "seresult",
    "seperms",
    // Flags the decoder and sources set.
    "frame_truncated",
    "frame_missing_bytes",
    "fragment_index",
    "fragment_last",
    "datagram_truncated",
    "datagram_kept_bytes",
    "payload_parse_error",
    "archive_conversion_failed",
];

/// The record code of `key`, when it is in [`KEYS`]: one multiply and (nearly always) one
/// probe of a table built at compile time, with names compared as two words and a length
/// (no `memcmp` call, which was a quarter of the encoding's time with a byte-wise hash and
/// compare): this runs for every field of every event.
#[inline]
pub(super) fn code_of(key: &str) -> Option<usize> {
    let bytes = key.as_bytes();
    let (first, last) = words(bytes);
    let mut slot = slot_of(first, last, bytes.len());
    // The table is at most a quarter full, so a free slot ends every probe; the bound only
    // keeps the loop finite whatever the table holds.
    for _ in 0..SLOT_COUNT {
        let code = usize::from(*SLOTS.get(slot)?).checked_sub(1)?;
        let entry = ENTRIES.get(code)?;
        // Two words cover names of up to 16 bytes whole; longer ones are compared in full.
        if entry.first == first
            && entry.last == last
            && entry.length == bytes.len()
            && (bytes.len() <= 16 || KEYS.get(code).is_some_and(|name| name.as_bytes() == bytes))
        {
            return Some(code);
        }
        slot = (slot + 1) & (SLOT_COUNT - 1);
    }
    None
}

/// Slots of the open-addressing table (a power of two, at least four times the names).
const SLOT_COUNT: usize = 1024;

/// A name as the lookup compares it.
struct Entry {
    first: u64,
    last: u64,
    length: usize,
}

/// The first 8 bytes and the last 8 bytes of `bytes` as little-endian words (zero-padded
/// below 8 bytes, where `last` is 0): for 16 bytes or fewer, two names with the same words
/// and length are the same name. Fixed-size loads instead of a copy of a variable length.
#[inline]
fn words(bytes: &[u8]) -> (u64, u64) {
    fn read<const N: usize>(bytes: &[u8], at: usize) -> u64 {
        let mut word = [0u8; 8];
        if let Some(piece) = bytes.get(at..at + N) {
            word[..N].copy_from_slice(piece);
        }
        u64::from_le_bytes(word)
    }
    let length = bytes.len();
    match length {
        8.. => (read::<8>(bytes, 0), read::<8>(bytes, length - 8)),
        // The two loads overlap; an overlapping byte lands at the same place from both.
        4..=7 => (
            read::<4>(bytes, 0) | read::<4>(bytes, length - 4) << (8 * (length - 4)),
            0,
        ),
        2..=3 => (
            read::<2>(bytes, 0) | read::<2>(bytes, length - 2) << (8 * (length - 2)),
            0,
        ),
        1 => (read::<1>(bytes, 0), 0),
        _ => (0, 0),
    }
}

/// [`words`] at compile time, for the table.
const fn words_const(bytes: &[u8]) -> (u64, u64) {
    let length = bytes.len();
    let mut first = 0u64;
    let mut last = 0u64;
    let mut index = 0;
    while index < length && index < 8 {
        first |= (bytes[index] as u64) << (8 * index);
        index += 1;
    }
    if length >= 8 {
        let mut index = 0;
        while index < 8 {
            last |= (bytes[length - 8 + index] as u64) << (8 * index);
            index += 1;
        }
    }
    (first, last)
}

/// The home slot of a name's words and length.
#[inline]
const fn slot_of(first: u64, last: u64, length: usize) -> usize {
    let mixed = (first ^ last.rotate_left(29) ^ ((length as u64) << 56))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (64 - SLOT_COUNT.trailing_zeros())) as usize
}

/// Every name's words and length, by code.
static ENTRIES: [Entry; KEYS.len()] = {
    let mut entries = [const {
        Entry {
            first: 0,
            last: 0,
            length: 0,
        }
    }; KEYS.len()];
    let mut code = 0;
    while code < KEYS.len() {
        let (first, last) = words_const(KEYS[code].as_bytes());
        entries[code] = Entry {
            first,
            last,
            length: KEYS[code].len(),
        };
        code += 1;
    }
    entries
};

const fn same(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let mut index = 0;
    while index < left.len() {
        if left[index] != right[index] {
            return false;
        }
        index += 1;
    }
    true
}

/// The table: 0 for a free slot, else 1 + the name's code; linear probing.
static SLOTS: [u16; SLOT_COUNT] = {
    assert!(KEYS.len() * 4 <= SLOT_COUNT && KEYS.len() < u16::MAX as usize);
    let mut slots = [0u16; SLOT_COUNT];
    let mut code = 0;
    while code < KEYS.len() {
        let name = KEYS[code].as_bytes();
        let (first, last) = words_const(name);
        let mut slot = slot_of(first, last, name.len());
        while slots[slot] != 0 {
            // A name twice would have two codes: refuse at compile time.
            assert!(!same(KEYS[(slots[slot] - 1) as usize].as_bytes(), name));
            slot = (slot + 1) & (SLOT_COUNT - 1);
        }
        slots[slot] = (code + 1) as u16;
        code += 1;
    }
    slots
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Records on disk keep these codes: the table may only grow at its end.
    #[test]
    fn the_table_is_pinned() {
        assert!(KEYS.len() >= PINNED_LEN);
        let pinned: [(usize, &str); 12] = [
            (0, "syslog.priority"),
            (1, "syslog.facility"),
            (11, "syslog.structured_data_error"),
            (12, "IN"),
            (17, "SRC"),
            (49, "log_prefix"),
            (50, "action"),
            (63, "zone"),
            (64, "INCOMPLETE"),
            (68, "date"),
            (162, "EventID"),
            (190, "archive_conversion_failed"),
        ];
        for (code, name) in pinned {
            assert_eq!(KEYS[code], name, "code {code}");
        }
        // The first PINNED_LEN names, as one hash: any change to them shows here, appending
        // does not.
        let mut text = String::new();
        for name in &KEYS[..PINNED_LEN] {
            text.push_str(name);
            text.push('\n');
        }
        assert_eq!(
            xxhash_rust::xxh3::xxh3_64(text.as_bytes()),
            PINNED_HASH,
            "the key table changed: only appending is allowed"
        );
    }

    /// How many names the hash below covers (the table's length when it was pinned).
    const PINNED_LEN: usize = 191;
    const PINNED_HASH: u64 = 0xc2a9_a5e8_30d1_c178;

    #[test]
    fn every_name_finds_its_code_and_others_do_not() {
        for (code, name) in KEYS.iter().enumerate() {
            assert_eq!(code_of(name), Some(code), "{name}");
        }
        for other in ["", "SRCX", "Src", "syslog.", "syslog.priority ", "zone\0"] {
            assert_eq!(code_of(other), None, "{other:?}");
        }
    }

    proptest::proptest! {
        /// The lookup answers what a comparison with every name answers, for names, their
        /// prefixes and extensions (NUL bytes included: padding) and other text.
        #[test]
        fn lookup_equals_comparing_every_name(
            key in "[A-Za-z_.]{0,30}|(SRC|zone|syslog\\.priority|deviceEventClassId|srcintfrole)[\\x00a-z]{0,3}",
        ) {
            let expected = KEYS.iter().position(|name| *name == key);
            proptest::prop_assert_eq!(code_of(&key), expected);
            for cut in 0..key.len() {
                let prefix = &key[..cut];
                proptest::prop_assert_eq!(code_of(prefix), KEYS.iter().position(|name| *name == prefix));
            }
        }

        /// The runtime loads give what the table was built with, for every length.
        #[test]
        fn words_are_the_padded_ends(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            proptest::prop_assert_eq!(words(&bytes), words_const(&bytes));
        }
    }
}
