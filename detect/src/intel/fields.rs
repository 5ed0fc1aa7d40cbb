//! Which event fields carry observables, as data: the table says a field's name and how to read
//! it, and the small extractors below turn its text into addresses, host names, URLs and hashes.
//!
//! Names are the ones devices and agents write (see `citysoc parse --pretty`): the ECS core
//! fields, FortiGate/CEF/LEEF keys, Windows and Sysmon event data, W3C/IIS and nginx fields.
//! A dotted name is matched flat (`"dns.question.name": …`) and as a path into nested objects
//! (`{"dns": {"question": {"name": …}}}`), like `Event::field`. Arrays of strings are read item
//! by item.
//!
//! Matching makes one pass over the event's fields and looks each name up in the table (a hash
//! map built once), rather than looking every table name up in the event: an event has a couple
//! of dozen fields, the table has seventy names.
//!
//! Beyond the table, [`MatchOptions::scan_all_fields_for_addresses`] (on by default) also reads
//! every other top-level string field that is exactly an IP address: devices have more address
//! fields than any table (FortiGate `transip`, `tunnelip`, …). A byte check rejects most values
//! before the address parser runs. The bench (`cargo bench -p citysoc-detect --bench intel`)
//! measured no cost above its noise on a shared 2-core machine (2026-11-22: 620k events/s with
//! the scan, 500k without, both ±10%), so it is on by default.

use std::sync::LazyLock;

use citysoc_collector::Event;
use serde_json::Value;

use crate::intel::hasher::FastMap;

/// How a field's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// An IP address, maybe with a port (`203.0.113.7:443`, `[2001:db8::1]:443`).
    Ip,
    /// A host: an IP address or a domain name, maybe with a port.
    Host,
    /// A URL; its host is also matched as a host. A bare path (`/a/b?c`) is combined with the
    /// event's host field ([`URL_HOST_FIELDS`]) when there is one.
    Url,
    /// File hashes: one hex hash, or Sysmon's `SHA256=…,MD5=…,IMPHASH=…` list.
    Hashes,
    /// Several addresses separated by commas, semicolons or spaces (`X-Forwarded-For`,
    /// Sysmon's DNS `QueryResults`); the items that are IP addresses are matched.
    AddressList,
}

/// Options of matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchOptions {
    /// Also match every top-level string field whose whole value is an IP address, not only the
    /// fields of [`INTEL_FIELDS`].
    pub scan_all_fields_for_addresses: bool,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions {
            scan_all_fields_for_addresses: true,
        }
    }
}

/// The fields checked against indicators. An alert names the first field that matched its
/// indicator: the core fields (`source.ip`, `destination.ip`, `url.original`) come first, then
/// the event's fields in the order the parser wrote them, then dotted names found inside nested
/// documents.
pub const INTEL_FIELDS: &[(&str, FieldKind)] = &[
    // ECS core fields (every parser fills them where it can).
    ("source.ip", FieldKind::Ip),
    ("destination.ip", FieldKind::Ip),
    ("url.original", FieldKind::Url),
    // Addresses as devices name them.
    ("srcip", FieldKind::Ip), // FortiGate
    ("dstip", FieldKind::Ip), // FortiGate
    ("remip", FieldKind::Ip), // FortiGate VPN
    ("src", FieldKind::Ip),   // CEF, LEEF, kv
    ("dst", FieldKind::Ip),   // CEF, LEEF, kv
    ("SRC", FieldKind::Ip),   // iptables
    ("DST", FieldKind::Ip),   // iptables
    ("src_ip", FieldKind::Ip),
    ("dst_ip", FieldKind::Ip),
    ("sourceAddress", FieldKind::Ip), // CEF full names
    ("destinationAddress", FieldKind::Ip),
    ("SourceIp", FieldKind::Ip),      // Sysmon 3
    ("DestinationIp", FieldKind::Ip), // Sysmon 3
    ("IpAddress", FieldKind::Ip),     // Windows 4624/4625/4768/4776…
    ("SourceAddress", FieldKind::Ip), // Windows 5156 (filtering platform)
    ("DestAddress", FieldKind::Ip),   // Windows 5156
    ("ClientAddress", FieldKind::Ip), // Windows 4769 and others
    ("c-ip", FieldKind::Ip),          // W3C/IIS
    ("s-ip", FieldKind::Ip),          // W3C/IIS
    ("client_ip", FieldKind::Ip),
    ("clientip", FieldKind::Ip),
    ("remote_addr", FieldKind::Ip), // nginx JSON
    ("ip", FieldKind::Ip),
    ("client.ip", FieldKind::Ip), // ECS JSON
    ("server.ip", FieldKind::Ip),
    ("source.address", FieldKind::Host), // ECS: address or name
    ("destination.address", FieldKind::Host),
    ("rhost", FieldKind::Host), // PAM
    ("addr", FieldKind::Host),  // auditd
    ("x-forwarded-for", FieldKind::AddressList),
    ("X-Forwarded-For", FieldKind::AddressList),
    ("http_x_forwarded_for", FieldKind::AddressList),
    // Host names.
    ("dns.question.name", FieldKind::Host),   // ECS
    ("QueryName", FieldKind::Host),           // Sysmon 22
    ("QueryResults", FieldKind::AddressList), // Sysmon 22: `type: 5 a.example;::ffff:192.0.2.1;`
    ("query", FieldKind::Host),               // Zeek, Windows DNS analytic
    ("qname", FieldKind::Host),               // FortiGate DNS
    ("DestinationHostname", FieldKind::Host), // Sysmon 3
    ("dhost", FieldKind::Host),               // CEF
    ("cs-host", FieldKind::Host),             // W3C/IIS, our access-log parser's vhost
    ("hostname", FieldKind::Host),            // FortiGate web filter
    ("url.domain", FieldKind::Host),          // ECS
    ("destination.domain", FieldKind::Host),  // ECS
    ("server_name", FieldKind::Host),
    // URLs.
    ("url", FieldKind::Url), // FortiGate (a path, with `hostname`), LEEF, JSON
    ("url.full", FieldKind::Url), // ECS
    ("request", FieldKind::Url), // CEF
    ("requestUrl", FieldKind::Url), // CEF
    ("cs-uri", FieldKind::Url), // W3C
    ("cs-uri-stem", FieldKind::Url), // W3C/IIS (a path, with `cs-host`)
    // Hashes.
    ("Hashes", FieldKind::Hashes), // Sysmon 1, 6, 7, 23, 26, 29
    ("Hash", FieldKind::Hashes),   // Sysmon 15
    ("hash", FieldKind::Hashes),
    ("md5", FieldKind::Hashes),
    ("sha1", FieldKind::Hashes),
    ("sha256", FieldKind::Hashes),
    ("sha512", FieldKind::Hashes),
    ("fileHash", FieldKind::Hashes),      // CEF
    ("filehash", FieldKind::Hashes),      // FortiGate
    ("file.hash.md5", FieldKind::Hashes), // ECS
    ("file.hash.sha1", FieldKind::Hashes),
    ("file.hash.sha256", FieldKind::Hashes),
    ("file.hash.sha512", FieldKind::Hashes),
    ("process.hash.md5", FieldKind::Hashes),
    ("process.hash.sha1", FieldKind::Hashes),
    ("process.hash.sha256", FieldKind::Hashes),
];

/// Where a bare URL path finds its host, in order.
pub const URL_HOST_FIELDS: &[&str] =
    &["cs-host", "hostname", "dhost", "url.domain", "Host", "host"];

/// The ECS core fields that can hold an observable. They live in `event.core`, not in
/// `fields`; reading them directly avoids `Event::field`'s JSON copy.
pub(crate) fn core_fields(event: &Event) -> impl Iterator<Item = (&'static str, FieldKind, &str)> {
    [
        ("source.ip", FieldKind::Ip, event.core.source_ip.as_deref()),
        (
            "destination.ip",
            FieldKind::Ip,
            event.core.destination_ip.as_deref(),
        ),
        (
            "url.original",
            FieldKind::Url,
            event.core.url_original.as_deref(),
        ),
    ]
    .into_iter()
    .filter_map(|(name, kind, value)| Some((name, kind, value?)))
}

/// True for the names [`core_fields`] reads.
fn is_core(name: &str) -> bool {
    matches!(name, "source.ip" | "destination.ip" | "url.original")
}

/// The table as a hash map from field name to kind (core names left out), built once.
static TABLE_INDEX: LazyLock<FastMap<&'static str, FieldKind>> = LazyLock::new(|| {
    INTEL_FIELDS
        .iter()
        .filter(|(name, _)| !is_core(name))
        .map(|(name, kind)| (*name, *kind))
        .collect()
});

/// How the table reads the top-level field `name`, if it is in the table.
pub(crate) fn table_kind(name: &str) -> Option<FieldKind> {
    TABLE_INDEX.get(name).copied()
}

/// The text values of the table's dotted names found as paths into nested objects (the flat
/// spelling is read with the other top-level fields).
pub(crate) fn nested_table_fields(
    event: &Event,
) -> impl Iterator<Item = (&'static str, FieldKind, &str)> {
    INTEL_FIELDS
        .iter()
        .filter(|(name, _)| name.contains('.') && !is_core(name))
        .filter_map(|(name, kind)| Some((*name, *kind, nested_value(event, name)?)))
        .flat_map(|(name, kind, value)| {
            let texts: Vec<&str> = match value {
                Value::String(text) => vec![text.as_str()],
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            texts.into_iter().map(move |text| (name, kind, text))
        })
}

/// A dotted name as a path into nested objects of `event.fields`.
fn nested_value<'e>(event: &'e Event, name: &str) -> Option<&'e Value> {
    let mut parts = name.split('.');
    let mut current = event.fields.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// The first host field a bare URL path can be combined with.
pub(crate) fn url_host(event: &Event) -> Option<&str> {
    URL_HOST_FIELDS
        .iter()
        .find_map(|name| {
            let value = event
                .fields
                .get(name)
                .or_else(|| nested_value(event, name))?;
            value.as_str()
        })
        .map(str::trim)
        .filter(|host| !host.is_empty() && *host != "-")
}

/// Length 2 to 45 and only hex digits, dots and colons: what every IPv4 and IPv6 text is made of.
pub(crate) fn looks_like_address(text: &str) -> bool {
    (2..=45).contains(&text.len())
        && text
            .bytes()
            .all(|byte| byte.is_ascii_hexdigit() || byte == b'.' || byte == b':')
        && text.bytes().any(|byte| byte == b'.' || byte == b':')
}

/// The hashes in a hash field: Sysmon's `ALGO=hex,ALGO=hex` (only MD5, SHA1, SHA256, SHA512;
/// IMPHASH is an MD5-sized hash of something else and must not meet MD5 indicators), or one
/// bare hex hash.
pub(crate) fn for_each_hash(text: &str, mut visit: impl FnMut(&str)) {
    if !text.contains('=') {
        visit(text.trim());
        return;
    }
    for part in text.split([',', ';', ' ']) {
        let Some((algorithm, hex)) = part.split_once('=') else {
            continue;
        };
        let algorithm = algorithm.trim();
        let wanted = [
            "MD5", "SHA1", "SHA256", "SHA512", "SHA-1", "SHA-256", "SHA-512",
        ]
        .iter()
        .any(|name| algorithm.eq_ignore_ascii_case(name));
        if wanted {
            visit(hex.trim());
        }
    }
}

/// The items of an address list.
pub(crate) fn address_list_items(text: &str) -> impl Iterator<Item = &str> {
    text.split([',', ';', ' ', '\t'])
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// A host value without its port (`evil.example:8080` → `evil.example`); addresses are left
/// to the address parser, which knows the bracketed IPv6 form.
pub(crate) fn strip_host_port(text: &str) -> &str {
    match text.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':') && port.bytes().all(|byte| byte.is_ascii_digit()) =>
        {
            host
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysmon_hashes_field() {
        let mut seen = Vec::new();
        for_each_hash("SHA1=AAA,MD5=BBB,SHA256=CCC,IMPHASH=DDD", |hash| {
            seen.push(hash.to_owned())
        });
        assert_eq!(seen, ["AAA", "BBB", "CCC"]);
        seen.clear();
        for_each_hash(" 0123abcd ", |hash| seen.push(hash.to_owned()));
        assert_eq!(seen, ["0123abcd"]);
        seen.clear();
        for_each_hash("=,==,MD5=,x=y", |hash| seen.push(hash.to_owned()));
        assert_eq!(seen, [""]);
    }

    #[test]
    fn table_names_are_unique() {
        for (index, (name, _)) in INTEL_FIELDS.iter().enumerate() {
            assert!(
                !INTEL_FIELDS[..index].iter().any(|(other, _)| other == name),
                "{name} twice"
            );
        }
    }

    #[test]
    fn address_prefilter() {
        assert!(looks_like_address("203.0.113.7"));
        assert!(looks_like_address("2001:db8::1"));
        for text in [
            "12",
            "deadbeef",
            "evil.example",
            "10.0.0.1 ",
            &"1.".repeat(30),
        ] {
            assert!(!looks_like_address(text), "{text}");
        }
    }

    #[test]
    fn host_ports() {
        assert_eq!(strip_host_port("evil.example:8080"), "evil.example");
        assert_eq!(strip_host_port("evil.example"), "evil.example");
        assert_eq!(strip_host_port("2001:db8::1"), "2001:db8::1");
        assert_eq!(strip_host_port("a:b"), "a:b");
    }
}
