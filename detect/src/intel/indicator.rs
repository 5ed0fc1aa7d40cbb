//! Indicators and the normal forms both sides of a match are reduced to.
//!
//! Everything here is pure text handling: the loaders use it to turn a list row into a match
//! key, and the matcher uses the same functions on event values, so an indicator and an event
//! value meet only when they normalize to the same key (`EVIL.example.` and `evil.example`,
//! `HTTP://Evil.Example:80/a` and `http://evil.example/a`, upper- and lower-case hex).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alert::Level;

/// Longest host name we look up: DNS names cannot exceed 253 bytes, and a cap keeps a huge
/// field value with thousands of dots from turning into thousands of hash lookups.
pub(crate) const MAX_HOST_LEN: usize = 255;

/// Longest text we try to read as an IP address (`[ffff:…:255.255.255.255]:65535` fits).
const MAX_IP_TEXT_LEN: usize = 64;

/// What an indicator describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IndicatorType {
    /// One IPv4 or IPv6 address.
    Ip,
    /// An IPv4 or IPv6 network (`203.0.113.0/24`).
    Cidr,
    /// A domain; it also matches every name below it (`evil.example` matches `a.evil.example`).
    Domain,
    /// A URL, matched exactly after normalization.
    Url,
    /// An MD5 file hash.
    Md5,
    /// A SHA-1 file hash.
    Sha1,
    /// A SHA-256 file hash.
    Sha256,
    /// A SHA-512 file hash.
    Sha512,
}

impl IndicatorType {
    /// Every type, in a fixed order (the order of [`IntelStats::by_type`](crate::intel::IntelStats)).
    pub const ALL: [IndicatorType; 8] = [
        IndicatorType::Ip,
        IndicatorType::Cidr,
        IndicatorType::Domain,
        IndicatorType::Url,
        IndicatorType::Md5,
        IndicatorType::Sha1,
        IndicatorType::Sha256,
        IndicatorType::Sha512,
    ];

    /// The lower-case name used in lists, alert titles and details.
    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorType::Ip => "ip",
            IndicatorType::Cidr => "cidr",
            IndicatorType::Domain => "domain",
            IndicatorType::Url => "url",
            IndicatorType::Md5 => "md5",
            IndicatorType::Sha1 => "sha1",
            IndicatorType::Sha256 => "sha256",
            IndicatorType::Sha512 => "sha512",
        }
    }

    /// Position in [`IndicatorType::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One loaded indicator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Indicator {
    /// The list it belongs to (the file stem of its file).
    pub list: Arc<str>,
    /// What it describes.
    pub indicator_type: IndicatorType,
    /// Its normalized text: `203.0.113.0/24`, `evil.example`, `http://evil.example/x`,
    /// lower-case hex.
    pub value: String,
    /// The level its alerts carry.
    pub level: Level,
    /// Tags its alerts carry (the list's, then its own).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Free text from the list (`description`/`comment` column, MISP attribute comment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where it came from inside the list, beyond the file: the MISP event's info.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// When it stops matching.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    /// Where in its file it was written (`line 7`, `Event.Attribute[3]`).
    pub location: String,
}

/// The key an indicator is stored under and an event value is looked up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum MatchKey {
    /// IPv4 network; a single address has length 32. Host bits are zero.
    V4 { network: u32, length: u8 },
    /// IPv6 network; a single address has length 128. Host bits are zero.
    V6 { network: u128, length: u8 },
    /// Normalized domain.
    Domain(String),
    /// Normalized URL key (see [`url_key`]).
    Url(String),
    /// MD5 bytes.
    Md5([u8; 16]),
    /// SHA-1 bytes.
    Sha1([u8; 20]),
    /// SHA-256 bytes.
    Sha256([u8; 32]),
    /// SHA-512 bytes.
    Sha512([u8; 64]),
}

/// An indicator value read by its type: the key, the type it turned out to be (an `ip` with a
/// prefix length is a `cidr`, a `domain` written as an address is an `ip`), and its display text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedValue {
    pub(crate) indicator_type: IndicatorType,
    pub(crate) key: MatchKey,
    pub(crate) display: String,
}

/// How the loaders should read a value, from the type name a list gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    /// An address or a network.
    Network,
    /// A domain or host name.
    Domain,
    /// A URL.
    Url,
    /// A hash of the given type, or any supported hash (length decides) when `None`.
    Hash(Option<IndicatorType>),
}

/// Reads `text` as a value of `kind`, or says why it is not one.
pub(crate) fn parse_value(kind: ValueKind, text: &str) -> Result<ParsedValue, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty value".to_owned());
    }
    match kind {
        ValueKind::Network => parse_network_value(text),
        ValueKind::Domain => parse_domain_value(text),
        ValueKind::Url => parse_url_value(text),
        ValueKind::Hash(expected) => parse_hash_value(text, expected),
    }
}

fn parse_network_value(text: &str) -> Result<ParsedValue, String> {
    let (address_text, length_text) = match text.split_once('/') {
        Some((address, length)) => (address, Some(length)),
        None => (text, None),
    };
    let address: IpAddr = address_text
        .parse()
        .map_err(|_| format!("`{address_text}` is not an IP address"))?;
    let max_length: u8 = if address.is_ipv4() { 32 } else { 128 };
    let length = match length_text {
        None => max_length,
        Some(length_text) => length_text
            .parse::<u8>()
            .ok()
            .filter(|length| *length <= max_length)
            .ok_or_else(|| {
                format!("`/{length_text}` is not a prefix length (0 to {max_length})")
            })?,
    };
    let key = network_key(address, length);
    let display = display_network(&key);
    let indicator_type = match key {
        MatchKey::V4 { length: 32, .. } | MatchKey::V6 { length: 128, .. } => IndicatorType::Ip,
        _ => IndicatorType::Cidr,
    };
    Ok(ParsedValue {
        indicator_type,
        key,
        display,
    })
}

/// The key of `address/length`, host bits cleared. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`,
/// what Windows logs for IPv4 clients of dual-stack sockets) become IPv4 so both spellings meet.
pub(crate) fn network_key(address: IpAddr, length: u8) -> MatchKey {
    match address {
        IpAddr::V4(v4) => MatchKey::V4 {
            network: u32::from(v4) & v4_mask(length),
            length,
        },
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if length >= 96 => {
                let length = length - 96;
                MatchKey::V4 {
                    network: u32::from(v4) & v4_mask(length),
                    length,
                }
            }
            _ => MatchKey::V6 {
                network: u128::from(v6) & v6_mask(length),
                length,
            },
        },
    }
}

/// The netmask of a prefix length (0 to 32; longer counts as 32).
pub(crate) fn v4_mask(length: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(length.min(32)))
        .unwrap_or(0)
}

/// The netmask of a prefix length (0 to 128; longer counts as 128).
pub(crate) fn v6_mask(length: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(length.min(128)))
        .unwrap_or(0)
}

fn display_network(key: &MatchKey) -> String {
    match *key {
        MatchKey::V4 {
            network,
            length: 32,
        } => Ipv4Addr::from(network).to_string(),
        MatchKey::V4 { network, length } => format!("{}/{length}", Ipv4Addr::from(network)),
        MatchKey::V6 {
            network,
            length: 128,
        } => Ipv6Addr::from(network).to_string(),
        MatchKey::V6 { network, length } => format!("{}/{length}", Ipv6Addr::from(network)),
        _ => String::new(),
    }
}

fn parse_domain_value(text: &str) -> Result<ParsedValue, String> {
    // Lists sometimes write a host name as an address; match it as one rather than refuse it.
    if let Some(address) = parse_ip_text(text) {
        return parse_network_value(&address.to_string());
    }
    let without_wildcard = text.strip_prefix("*.").unwrap_or(text);
    let domain = normalize_domain(without_wildcard)
        .ok_or_else(|| format!("`{text}` is not a domain name"))?;
    let domain = domain.into_owned();
    Ok(ParsedValue {
        indicator_type: IndicatorType::Domain,
        key: MatchKey::Domain(domain.clone()),
        display: domain,
    })
}

/// Lower-cases a host name and drops a final dot; `None` when it cannot be one (empty, too
/// long, empty labels, characters no host name has). Borrows when nothing changes, which is
/// nearly always on the event side.
pub(crate) fn normalize_domain(text: &str) -> Option<std::borrow::Cow<'_, str>> {
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() || text.len() > MAX_HOST_LEN {
        return None;
    }
    let bytes = text.as_bytes();
    let bad_byte = |byte: &u8| {
        byte.is_ascii_whitespace()
            || matches!(
                byte,
                b'/' | b'\\'
                    | b':'
                    | b'@'
                    | b'?'
                    | b'#'
                    | b'"'
                    | b'\''
                    | b'<'
                    | b'>'
                    | b'='
                    | b','
                    | b';'
                    | b'|'
            )
    };
    if bytes.iter().any(bad_byte) || text.split('.').any(str::is_empty) {
        return None;
    }
    if text.bytes().any(|byte| byte.is_ascii_uppercase()) || !text.is_ascii() {
        Some(std::borrow::Cow::Owned(text.to_lowercase()))
    } else {
        Some(std::borrow::Cow::Borrowed(text))
    }
}

/// Reads an address as event fields write it: bare (`203.0.113.7`, `2001:db8::1`,
/// `::ffff:10.0.0.5`), with a port (`203.0.113.7:443`, `[2001:db8::1]:443`), or with a zone
/// (`fe80::1%eth0`). `None` for anything else, cheaply: a byte check runs before the parser.
pub(crate) fn parse_ip_text(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if text.len() < 2 || text.len() > MAX_IP_TEXT_LEN {
        return None;
    }
    let first = *text.as_bytes().first()?;
    if !(first.is_ascii_hexdigit() || first == b':' || first == b'[') {
        return None;
    }
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return strip_zone(inside).parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Some((host, port)) = text.rsplit_once(':') {
        if host.contains('.')
            && !host.contains(':')
            && !port.is_empty()
            && port.bytes().all(|byte| byte.is_ascii_digit())
        {
            return host.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
        }
    }
    if text.contains('%') {
        return strip_zone(text).parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    None
}

fn strip_zone(text: &str) -> &str {
    text.split_once('%').map_or(text, |(address, _)| address)
}

fn parse_url_value(text: &str) -> Result<ParsedValue, String> {
    let parts = split_url(text).ok_or_else(|| format!("`{text}` is not a URL"))?;
    if parts.host.is_empty() {
        return Err(format!("`{text}` has no host"));
    }
    let host = normalize_url_host(parts.host)
        .ok_or_else(|| format!("`{}` is not a host name", parts.host))?;
    let key = url_key(&host, parts.port_to_keep(), parts.path);
    let display = match parts.scheme {
        Some(scheme) => format!("{}://{key}", scheme.to_ascii_lowercase()),
        None => key.clone(),
    };
    Ok(ParsedValue {
        indicator_type: IndicatorType::Url,
        key: MatchKey::Url(key),
        display,
    })
}

/// A URL cut into the parts matching cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UrlParts<'a> {
    /// The scheme as written, when there is one.
    pub(crate) scheme: Option<&'a str>,
    /// The host as written (brackets of an IPv6 literal removed).
    pub(crate) host: &'a str,
    /// The port as written.
    pub(crate) port: Option<&'a str>,
    /// Path and query, fragment removed; may be empty.
    pub(crate) path: &'a str,
}

impl UrlParts<'_> {
    /// The port, unless it is the default one of the scheme (or 80/443 without a scheme).
    pub(crate) fn port_to_keep(&self) -> Option<&str> {
        let port = self.port?;
        let default = match self.scheme.map(str::to_ascii_lowercase).as_deref() {
            Some("http" | "ws") => port == "80",
            Some("https" | "wss") => port == "443",
            Some("ftp") => port == "21",
            Some(_) => false,
            None => port == "80" || port == "443",
        };
        (!default).then_some(port)
    }
}

/// Cuts `scheme://user@host:port/path?query#fragment` (scheme optional) into its parts; `None`
/// when there is no plausible authority (a bare path is not a URL to match on its own).
pub(crate) fn split_url(text: &str) -> Option<UrlParts<'_>> {
    let text = text.trim();
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => (Some(scheme), rest),
        Some(_) => return None,
        None => (None, text),
    };
    if rest.starts_with('/') {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let path = path.split_once('#').map_or(path, |(before, _)| before);
    let host_and_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = split_host_port(host_and_port)?;
    Some(UrlParts {
        scheme,
        host,
        port,
        path,
    })
}

fn is_scheme(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'-' | b'.'))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':');
        return Some((host, port.filter(|port| !port.is_empty())));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            if port.is_empty() {
                return Some((host, None));
            }
            port.bytes()
                .all(|byte| byte.is_ascii_digit())
                .then_some((host, Some(port)))
        }
        // Unbracketed IPv6 literal: no port can be told apart.
        Some(_) => Some((text, None)),
        None => Some((text, None)),
    }
}

/// A URL's host in normal form: an address in its canonical text, a name lower-cased.
pub(crate) fn normalize_url_host(host: &str) -> Option<String> {
    if let Ok(address) = host.parse::<IpAddr>() {
        return Some(canonical_ip(address).to_string());
    }
    normalize_domain(host).map(std::borrow::Cow::into_owned)
}

/// IPv4-mapped IPv6 as IPv4, everything else as is.
pub(crate) fn canonical_ip(address: IpAddr) -> IpAddr {
    address.to_canonical()
}

/// The URL match key: `host[:port]path`, path `/` when empty. The scheme is left out on
/// purpose: feeds write `http://` for resources served over both, and a port other than the
/// default one stays in the key anyway.
pub(crate) fn url_key(host: &str, port: Option<&str>, path: &str) -> String {
    let mut key = String::with_capacity(host.len() + path.len() + 8);
    key.push_str(host);
    if let Some(port) = port {
        key.push(':');
        key.push_str(port);
    }
    if !path.starts_with('/') {
        key.push('/');
    }
    key.push_str(path);
    key
}

fn parse_hash_value(text: &str, expected: Option<IndicatorType>) -> Result<ParsedValue, String> {
    let key = hash_key(text)
        .ok_or_else(|| format!("`{text}` is not an MD5, SHA-1, SHA-256 or SHA-512 hash in hex"))?;
    let indicator_type = hash_type(&key);
    if let Some(expected) = expected.filter(|expected| *expected != indicator_type) {
        return Err(format!(
            "`{text}` has {} hex digits, which is not a {} hash",
            text.len(),
            expected.as_str()
        ));
    }
    Ok(ParsedValue {
        indicator_type,
        key,
        display: text.to_ascii_lowercase(),
    })
}

/// The key of a hex hash, its algorithm told by its length.
pub(crate) fn hash_key(text: &str) -> Option<MatchKey> {
    match text.len() {
        32 => decode_hex::<16>(text).map(MatchKey::Md5),
        40 => decode_hex::<20>(text).map(MatchKey::Sha1),
        64 => decode_hex::<32>(text).map(MatchKey::Sha256),
        128 => decode_hex::<64>(text).map(MatchKey::Sha512),
        _ => None,
    }
}

fn hash_type(key: &MatchKey) -> IndicatorType {
    match key {
        MatchKey::Md5(_) => IndicatorType::Md5,
        MatchKey::Sha1(_) => IndicatorType::Sha1,
        MatchKey::Sha512(_) => IndicatorType::Sha512,
        _ => IndicatorType::Sha256,
    }
}

/// Hex to bytes, either case; `None` unless `text` is exactly `2 * N` hex digits.
pub(crate) fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let high = hex_digit(*pair.first()?)?;
        let low = hex_digit(*pair.get(1)?)?;
        *slot = (high << 4) | low;
    }
    Some(out)
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(kind: ValueKind, text: &str) -> ParsedValue {
        parse_value(kind, text).unwrap_or_else(|reason| panic!("{text}: {reason}"))
    }

    #[test]
    fn networks_are_masked_and_typed() {
        let value = parsed(ValueKind::Network, "203.0.113.77/24");
        assert_eq!(
            (value.indicator_type, value.display.as_str()),
            (IndicatorType::Cidr, "203.0.113.0/24")
        );
        let value = parsed(ValueKind::Network, "198.51.100.9/32");
        assert_eq!(
            (value.indicator_type, value.display.as_str()),
            (IndicatorType::Ip, "198.51.100.9")
        );
        let value = parsed(ValueKind::Network, "2001:DB8::/32");
        assert_eq!(
            (value.indicator_type, value.display.as_str()),
            (IndicatorType::Cidr, "2001:db8::/32")
        );
        let value = parsed(ValueKind::Network, "::ffff:192.0.2.1");
        assert_eq!(
            value.key,
            MatchKey::V4 {
                network: 0xc000_0201,
                length: 32
            }
        );
        let value = parsed(ValueKind::Network, "0.0.0.0/0");
        assert_eq!(
            value.key,
            MatchKey::V4 {
                network: 0,
                length: 0
            }
        );
        assert!(parse_value(ValueKind::Network, "10.0.0.0/33").is_err());
        assert!(parse_value(ValueKind::Network, "10.0.0/8").is_err());
        assert!(parse_value(ValueKind::Network, "10.0.0.0/").is_err());
    }

    #[test]
    fn event_addresses_with_ports_and_zones() {
        let v4 = |text: &str| parse_ip_text(text).map(|address| address.to_string());
        assert_eq!(v4("203.0.113.7:443").as_deref(), Some("203.0.113.7"));
        assert_eq!(v4("[2001:db8::1]:443").as_deref(), Some("2001:db8::1"));
        assert_eq!(v4("fe80::1%eth0").as_deref(), Some("fe80::1"));
        assert_eq!(v4(" 10.0.0.1 ").as_deref(), Some("10.0.0.1"));
        for text in ["-", "N/A", "", "1", "host:80", "10.0.0.1:", "evil.example"] {
            assert_eq!(parse_ip_text(text), None, "{text}");
        }
    }

    #[test]
    fn domains_are_lowercased_and_checked() {
        assert_eq!(
            parsed(ValueKind::Domain, "Evil.EXAMPLE.").display,
            "evil.example"
        );
        assert_eq!(
            parsed(ValueKind::Domain, "*.evil.example").display,
            "evil.example"
        );
        assert_eq!(
            parsed(ValueKind::Domain, "192.0.2.5").indicator_type,
            IndicatorType::Ip
        );
        for bad in [
            "evil..example",
            "evil example",
            "http://evil.example",
            ".",
            "a/b",
        ] {
            assert!(parse_value(ValueKind::Domain, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_normalize_scheme_host_and_default_port() {
        let value = parsed(ValueKind::Url, "HTTP://Evil.Example:80/Path?q=A#frag");
        assert_eq!(value.key, MatchKey::Url("evil.example/Path?q=A".into()));
        assert_eq!(value.display, "http://evil.example/Path?q=A");
        assert_eq!(
            parsed(ValueKind::Url, "https://evil.example:443").key,
            MatchKey::Url("evil.example/".into())
        );
        assert_eq!(
            parsed(ValueKind::Url, "https://evil.example:8443/x").key,
            MatchKey::Url("evil.example:8443/x".into())
        );
        assert_eq!(
            parsed(ValueKind::Url, "http://user:pw@[2001:DB8::1]:80/x").key,
            MatchKey::Url("2001:db8::1/x".into())
        );
        assert_eq!(
            parsed(ValueKind::Url, "evil.example/dl.php").key,
            MatchKey::Url("evil.example/dl.php".into())
        );
        assert_eq!(
            parsed(ValueKind::Url, "http://evil.example?x=1").key,
            MatchKey::Url("evil.example/?x=1".into())
        );
        for bad in [
            "/only/a/path",
            "http:///x",
            "1nvalid scheme://x",
            "http://evil example/",
        ] {
            assert!(parse_value(ValueKind::Url, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_by_length_and_declared_type() {
        let md5 = "D41D8CD98F00B204E9800998ECF8427E";
        assert_eq!(
            parsed(ValueKind::Hash(None), md5).indicator_type,
            IndicatorType::Md5
        );
        assert_eq!(
            parsed(ValueKind::Hash(Some(IndicatorType::Md5)), md5).display,
            md5.to_ascii_lowercase()
        );
        assert!(parse_value(ValueKind::Hash(Some(IndicatorType::Sha256)), md5).is_err());
        assert!(parse_value(ValueKind::Hash(None), "xyz").is_err());
        assert!(parse_value(ValueKind::Hash(None), &"g".repeat(32)).is_err());
        assert_eq!(decode_hex::<2>("0aFf"), Some([0x0a, 0xff]));
        assert_eq!(decode_hex::<2>("0aF"), None);
        assert_eq!(decode_hex::<2>("é0a"), None);
    }

    #[test]
    fn masks_cover_the_edges() {
        assert_eq!(v4_mask(0), 0);
        assert_eq!(v4_mask(32), u32::MAX);
        assert_eq!(v4_mask(24), 0xffff_ff00);
        assert_eq!(v6_mask(0), 0);
        assert_eq!(v6_mask(128), u128::MAX);
        assert_eq!(v6_mask(200), u128::MAX);
    }
}
