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

/// The record code of `key`, when it is in [`KEYS`]: one hash and (nearly always) one probe
/// of a table built at compile time, not a scan of [`KEYS`]: this runs for every field of
/// every event.
#[inline]
pub(super) fn code_of(key: &str) -> Option<usize> {
    CODES.with_key(key)
}

/// [`KEYS`] as a hash table built at compile time: open addressing over a power-of-two slot
/// array, at most a quarter full, probed linearly.
struct Codes {
    slots: [u16; SLOT_COUNT],
}

const SLOT_COUNT: usize = 1024;

/// FNV-1a over the key's bytes: cheap for the short names here, and computable in `const`.
const fn hash(bytes: &[u8]) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut index = 0;
    while index < bytes.len() {
        hash ^= bytes[index] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        index += 1;
    }
    (hash >> 32) as usize & (SLOT_COUNT - 1)
}

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

static CODES: Codes = {
    assert!(KEYS.len() * 4 <= SLOT_COUNT && KEYS.len() < u16::MAX as usize);
    let mut slots = [0u16; SLOT_COUNT];
    let mut code = 0;
    while code < KEYS.len() {
        let name = KEYS[code].as_bytes();
        let mut slot = hash(name);
        while slots[slot] != 0 {
            // A name twice would give it two codes: refuse at compile time.
            assert!(!same(KEYS[(slots[slot] - 1) as usize].as_bytes(), name));
            slot = (slot + 1) & (SLOT_COUNT - 1);
        }
        slots[slot] = (code + 1) as u16;
        code += 1;
    }
    Codes { slots }
};

impl Codes {
    #[inline]
    fn with_key(&self, key: &str) -> Option<usize> {
        let bytes = key.as_bytes();
        let mut slot = hash(bytes);
        // The table is at most a quarter full, so a free slot ends every probe; the bound
        // only keeps the loop finite whatever the table holds.
        for _ in 0..SLOT_COUNT {
            let code = usize::from(*self.slots.get(slot)?).checked_sub(1)?;
            if KEYS.get(code).is_some_and(|name| name.as_bytes() == bytes) {
                return Some(code);
            }
            slot = (slot + 1) & (SLOT_COUNT - 1);
        }
        None
    }
}

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
}
