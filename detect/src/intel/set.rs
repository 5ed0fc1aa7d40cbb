//! The matching structure: built once per load, immutable, shared behind an `Arc`.
//!
//! Every lookup is a hash lookup, never a scan over indicators:
//!
//! - addresses and networks: one hash map per prefix length that occurs in the lists, longest
//!   first; an address costs one lookup per such length (at most 33 for IPv4, 129 for IPv6,
//!   in practice a handful);
//! - domains: the name, then each suffix after a dot (`a.b.evil.vn`, `b.evil.vn`, `evil.vn`,
//!   `vn`), so `evil.vn` matches its subdomains and never `notevil.vn`;
//! - URLs: the normalized `host[:port]/path?query` key, and the host as a domain or address;
//! - hashes: decoded to bytes, one map per algorithm.
//!
//! Per list, a value reports only its most specific indicator (the longest prefix, the longest
//! domain suffix), and an event reports each (list, indicator) once.

use std::hash::Hash;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use citysoc_collector::Event;
use serde::Serialize;
use serde_json::Value;

use crate::alert::{Alert, AlertKind};
use crate::intel::fields::{
    address_list_items, core_fields, for_each_hash, looks_like_address, nested_table_fields,
    strip_host_port, table_kind, url_host, FieldKind, MatchOptions,
};
use crate::intel::hasher::FastMap;
use crate::intel::indicator::{
    hash_key, network_key, normalize_domain, normalize_url_host, parse_ip_text, split_url, url_key,
    v4_mask, v6_mask, Indicator, IndicatorType, MatchKey, MAX_HOST_LEN,
};
use crate::intel::load::{LoadProblem, ParsedList, SkipCounts};

/// Indicator ids sharing one key (the same network or domain in several lists).
type Ids = Vec<u32>;

/// Networks of one address family: a map per prefix length, longest length first.
#[derive(Debug, Default)]
struct PrefixTable<A> {
    levels: Vec<(u8, FastMap<A, Ids>)>,
}

impl<A: Copy + Eq + Hash> PrefixTable<A> {
    fn ids_mut(&mut self, network: A, length: u8) -> &mut Ids {
        let position = match self.levels.iter().position(|(level, _)| *level <= length) {
            Some(position)
                if self
                    .levels
                    .get(position)
                    .is_some_and(|(level, _)| *level == length) =>
            {
                position
            }
            Some(position) => {
                self.levels.insert(position, (length, FastMap::default()));
                position
            }
            None => {
                self.levels.push((length, FastMap::default()));
                self.levels.len() - 1
            }
        };
        let (_, map) = &mut self.levels[position];
        map.entry(network).or_default()
    }

    /// Visits the ids of every network containing the address, most specific first.
    fn lookup(&self, address: A, mask: impl Fn(A, u8) -> A, mut visit: impl FnMut(&[u32])) {
        for (length, map) in &self.levels {
            if let Some(ids) = map.get(&mask(address, *length)) {
                visit(ids);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
}

/// One loaded list, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListSummary {
    /// The list name (file stem).
    pub name: String,
    /// Its file.
    pub path: std::path::PathBuf,
    /// Indicators loaded from it.
    pub indicators: usize,
    /// Rows that could not be loaded.
    pub problems: usize,
}

/// One indicator that matched one event value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntelHit<'s, 'e> {
    /// The indicator.
    pub indicator: &'s Indicator,
    /// The event field the value came from.
    pub field: &'e str,
    /// The field's value as the event had it.
    pub value: &'e str,
}

/// Loaded indicators, ready for matching. Immutable; a reload builds a new one.
#[derive(Debug, Default)]
pub struct IntelSet {
    indicators: Vec<Indicator>,
    lists: Vec<ListSummary>,
    v4: PrefixTable<u32>,
    v6: PrefixTable<u128>,
    domains: FastMap<Box<str>, Ids>,
    urls: FastMap<Box<str>, Ids>,
    md5: FastMap<[u8; 16], Ids>,
    sha1: FastMap<[u8; 20], Ids>,
    sha256: FastMap<[u8; 32], Ids>,
    sha512: FastMap<[u8; 64], Ids>,
    by_type: [usize; IndicatorType::ALL.len()],
    problems: Vec<LoadProblem>,
    skipped: SkipCounts,
}

impl IntelSet {
    /// A set with no indicators.
    pub fn empty() -> Self {
        IntelSet::default()
    }

    /// Builds the set from parsed lists (with their files, for [`IntelSet::lists`]). The same
    /// key twice in one list keeps the first and counts a duplicate.
    pub fn build(lists: impl IntoIterator<Item = (std::path::PathBuf, ParsedList)>) -> Self {
        let mut set = IntelSet::default();
        for (path, list) in lists {
            let before = set.indicators.len();
            set.skipped.add(list.skipped);
            let problems = list.problems.len();
            set.problems.extend(list.problems);
            for (indicator, key) in list.entries {
                set.insert(indicator, key);
            }
            let name = super::load::list_name(&path);
            set.lists.push(ListSummary {
                name,
                path,
                indicators: set.indicators.len() - before,
                problems,
            });
        }
        set
    }

    fn insert(&mut self, indicator: Indicator, key: MatchKey) {
        let Ok(id) = u32::try_from(self.indicators.len()) else {
            return;
        };
        let ids = match key {
            MatchKey::V4 { network, length } => self.v4.ids_mut(network, length),
            MatchKey::V6 { network, length } => self.v6.ids_mut(network, length),
            MatchKey::Domain(domain) => self.domains.entry(domain.into_boxed_str()).or_default(),
            MatchKey::Url(url) => self.urls.entry(url.into_boxed_str()).or_default(),
            MatchKey::Md5(bytes) => self.md5.entry(bytes).or_default(),
            MatchKey::Sha1(bytes) => self.sha1.entry(bytes).or_default(),
            MatchKey::Sha256(bytes) => self.sha256.entry(bytes).or_default(),
            MatchKey::Sha512(bytes) => self.sha512.entry(bytes).or_default(),
        };
        let indicators = &self.indicators;
        let duplicate = ids.iter().any(|other| {
            indicators
                .get(*other as usize)
                .is_some_and(|other| other.list == indicator.list)
        });
        if duplicate {
            self.skipped.duplicate += 1;
            return;
        }
        ids.push(id);
        self.by_type[indicator.indicator_type.index()] += 1;
        self.indicators.push(indicator);
    }

    /// Every loaded indicator.
    pub fn indicators(&self) -> &[Indicator] {
        &self.indicators
    }

    /// The loaded lists.
    pub fn lists(&self) -> &[ListSummary] {
        &self.lists
    }

    /// Rows and files that could not be loaded.
    pub fn problems(&self) -> &[LoadProblem] {
        &self.problems
    }

    /// What the load left out on purpose.
    pub fn skipped(&self) -> SkipCounts {
        self.skipped
    }

    /// How many indicators of a type are loaded.
    pub fn count(&self, indicator_type: IndicatorType) -> usize {
        self.by_type[indicator_type.index()]
    }

    /// True when nothing is loaded.
    pub fn is_empty(&self) -> bool {
        self.indicators.is_empty()
    }

    /// The indicators an event matches, each (list, indicator) once, with the field that
    /// matched first. Expired indicators (by the wall clock) no longer match.
    pub fn hits<'s, 'e>(
        &'s self,
        event: &'e Event,
        options: &MatchOptions,
    ) -> Vec<IntelHit<'s, 'e>> {
        let mut hits = HitCollector {
            set: self,
            hits: Vec::new(),
            now: None,
        };
        if self.is_empty() {
            return hits.hits;
        }
        // Core fields first, then one pass over the event's own fields with a hash lookup of
        // each name in the table (cheaper than looking up every table name in the event).
        for (field, kind, value) in core_fields(event) {
            self.check(kind, field, value, event, &mut hits);
        }
        let scan_addresses =
            options.scan_all_fields_for_addresses && !(self.v4.is_empty() && self.v6.is_empty());
        let mut has_objects = false;
        for (field, value) in &event.fields {
            match (value, table_kind(field)) {
                (Value::String(text), Some(kind)) => {
                    self.check(kind, field, text, event, &mut hits)
                }
                (Value::String(text), None) if scan_addresses && looks_like_address(text) => {
                    if let Some(address) = parse_ip_text(text) {
                        self.lookup_ip(address, field, text, &mut hits);
                    }
                }
                (Value::Array(items), Some(kind)) => {
                    for text in items.iter().filter_map(Value::as_str) {
                        self.check(kind, field, text, event, &mut hits);
                    }
                }
                (Value::Object(_), _) => has_objects = true,
                _ => {}
            }
        }
        // Dotted table names inside nested documents (`{"dns": {"question": {"name": …}}}`).
        if has_objects {
            for (field, kind, text) in nested_table_fields(event) {
                self.check(kind, field, text, event, &mut hits);
            }
        }
        hits.hits
    }

    /// The alerts for an event: one per (list, indicator) it matches.
    pub fn alerts(&self, event: &Event, options: &MatchOptions) -> Vec<Alert> {
        self.hits(event, options)
            .iter()
            .map(|hit| intel_alert(hit, event))
            .collect()
    }

    fn check<'s, 'e>(
        &'s self,
        kind: FieldKind,
        field: &'e str,
        value: &'e str,
        event: &'e Event,
        hits: &mut HitCollector<'s, 'e>,
    ) {
        match kind {
            FieldKind::Ip => {
                if let Some(address) = parse_ip_text(value) {
                    self.lookup_ip(address, field, value, hits);
                }
            }
            FieldKind::Host => self.lookup_host(value, field, value, hits),
            FieldKind::Url => self.lookup_url(value, field, event, hits),
            FieldKind::Hashes => {
                for_each_hash(value, |hex| self.lookup_hash(hex, field, value, hits));
            }
            FieldKind::AddressList => {
                for item in address_list_items(value) {
                    if let Some(address) = parse_ip_text(item) {
                        self.lookup_ip(address, field, value, hits);
                    }
                }
            }
        }
    }

    fn lookup_ip<'s, 'e>(
        &'s self,
        address: IpAddr,
        field: &'e str,
        value: &'e str,
        hits: &mut HitCollector<'s, 'e>,
    ) {
        let start = hits.value_start();
        match network_key(address, if address.is_ipv4() { 32 } else { 128 }) {
            MatchKey::V4 { network, .. } => {
                self.v4.lookup(
                    network,
                    |address, length| address & v4_mask(length),
                    |ids| hits.offer(ids, start, field, value),
                );
            }
            MatchKey::V6 { network, .. } => {
                self.v6.lookup(
                    network,
                    |address, length| address & v6_mask(length),
                    |ids| hits.offer(ids, start, field, value),
                );
            }
            _ => {}
        }
    }

    /// A host as an address, or as a domain and each of its parent domains.
    fn lookup_host<'s, 'e>(
        &'s self,
        host: &str,
        field: &'e str,
        value: &'e str,
        hits: &mut HitCollector<'s, 'e>,
    ) {
        if let Some(address) = parse_ip_text(host) {
            self.lookup_ip(address, field, value, hits);
            return;
        }
        if self.domains.is_empty() || host.len() > MAX_HOST_LEN + 6 {
            return;
        }
        let Some(domain) = normalize_domain(strip_host_port(host.trim())) else {
            return;
        };
        let start = hits.value_start();
        let mut suffix: &str = &domain;
        loop {
            if let Some(ids) = self.domains.get(suffix) {
                hits.offer(ids, start, field, value);
            }
            match suffix.split_once('.') {
                Some((_, parent)) => suffix = parent,
                None => break,
            }
        }
    }

    fn lookup_url<'s, 'e>(
        &'s self,
        value: &'e str,
        field: &'e str,
        event: &'e Event,
        hits: &mut HitCollector<'s, 'e>,
    ) {
        if let Some(parts) = split_url(value) {
            if parts.host.is_empty() || parts.host.len() > MAX_HOST_LEN {
                return;
            }
            if !self.urls.is_empty() {
                if let Some(host) = normalize_url_host(parts.host) {
                    let key = url_key(&host, parts.port_to_keep(), parts.path);
                    self.lookup_url_key(&key, field, value, hits);
                }
            }
            self.lookup_host(parts.host, field, value, hits);
            return;
        }
        // A bare path: only a host field of the same event can make it a URL.
        if self.urls.is_empty() || !value.starts_with('/') {
            return;
        }
        let Some(host_parts) = url_host(event).and_then(split_url) else {
            return;
        };
        let Some(host) = normalize_url_host(host_parts.host) else {
            return;
        };
        let path = value.split_once('#').map_or(value, |(before, _)| before);
        let key = url_key(&host, host_parts.port_to_keep(), path.trim_end());
        self.lookup_url_key(&key, field, value, hits);
    }

    fn lookup_url_key<'s, 'e>(
        &'s self,
        key: &str,
        field: &'e str,
        value: &'e str,
        hits: &mut HitCollector<'s, 'e>,
    ) {
        if let Some(ids) = self.urls.get(key) {
            let start = hits.value_start();
            hits.offer(ids, start, field, value);
        }
    }

    fn lookup_hash<'s, 'e>(
        &'s self,
        hex: &str,
        field: &'e str,
        value: &'e str,
        hits: &mut HitCollector<'s, 'e>,
    ) {
        let ids = match hash_key(hex) {
            Some(MatchKey::Md5(bytes)) => self.md5.get(&bytes),
            Some(MatchKey::Sha1(bytes)) => self.sha1.get(&bytes),
            Some(MatchKey::Sha256(bytes)) => self.sha256.get(&bytes),
            Some(MatchKey::Sha512(bytes)) => self.sha512.get(&bytes),
            _ => None,
        };
        if let Some(ids) = ids {
            let start = hits.value_start();
            hits.offer(ids, start, field, value);
        }
    }
}

/// Gathers hits for one event; allocates only when something matches.
struct HitCollector<'s, 'e> {
    set: &'s IntelSet,
    hits: Vec<IntelHit<'s, 'e>>,
    now: Option<DateTime<Utc>>,
}

impl<'s, 'e> HitCollector<'s, 'e> {
    /// Marks where the hits of the value about to be looked up begin.
    fn value_start(&self) -> usize {
        self.hits.len()
    }

    /// Offers the indicators stored under one key. Lookups go from most to least specific, so
    /// an indicator whose list already matched this value (since `start`) is a less specific
    /// one and is left out; an indicator already reported for this event is left out too.
    fn offer(&mut self, ids: &[u32], start: usize, field: &'e str, value: &'e str) {
        for id in ids {
            let Some(indicator) = self.set.indicators.get(*id as usize) else {
                continue;
            };
            let already = self.hits.iter().enumerate().any(|(index, hit)| {
                std::ptr::eq(hit.indicator, indicator)
                    || (index >= start && hit.indicator.list == indicator.list)
            });
            if already {
                continue;
            }
            if let Some(expires) = indicator.expires {
                let now = *self.now.get_or_insert_with(Utc::now);
                if expires <= now {
                    continue;
                }
            }
            self.hits.push(IntelHit {
                indicator,
                field,
                value,
            });
        }
    }
}

/// The alert for one hit: `intel:<list>`, the indicator's level and tags, and the details an
/// analyst needs to judge it.
fn intel_alert(hit: &IntelHit<'_, '_>, event: &Event) -> Alert {
    let indicator = hit.indicator;
    let rule_id = format!("intel:{}", indicator.list);
    let title = format!(
        "Threat-intel match: {} ({})",
        indicator.list,
        indicator.indicator_type.as_str()
    );
    let mut alert = Alert::for_event(
        AlertKind::Intel,
        &rule_id,
        &title,
        indicator.level,
        indicator.tags.clone(),
        event,
    );
    let details = &mut alert.details;
    details.insert("list".into(), indicator.list.as_ref().into());
    details.insert("indicator".into(), indicator.value.clone().into());
    details.insert(
        "indicator_type".into(),
        indicator.indicator_type.as_str().into(),
    );
    details.insert("field".into(), hit.field.into());
    details.insert("value".into(), hit.value.into());
    details.insert(
        "indicator_location".into(),
        indicator.location.clone().into(),
    );
    if let Some(description) = &indicator.description {
        details.insert("description".into(), description.clone().into());
    }
    if let Some(context) = &indicator.context {
        details.insert("context".into(), context.clone().into());
    }
    alert
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::intel::load::{parse_list, LoadOptions};

    fn set_of(csv: &str) -> IntelSet {
        let path = PathBuf::from("/lists/test.csv");
        let list = parse_list(&path, csv, &LoadOptions::default());
        assert!(list.problems.is_empty(), "{:?}", list.problems);
        IntelSet::build([(path, list)])
    }

    fn event_with(fields: &[(&str, &str)]) -> Event {
        let mut event = citysoc_collector::parse::new_event(
            b"x",
            &citysoc_collector::ParseContext::new("test"),
            1,
        );
        for (name, value) in fields {
            event
                .fields
                .insert((*name).to_owned().into(), (*value).into());
        }
        event
    }

    fn matched(set: &IntelSet, fields: &[(&str, &str)]) -> Vec<String> {
        let event = event_with(fields);
        set.hits(&event, &MatchOptions::default())
            .iter()
            .map(|hit| format!("{}={}", hit.field, hit.indicator.value))
            .collect()
    }

    #[test]
    fn longest_prefix_per_list() {
        let set =
            set_of("type,value\ncidr,10.0.0.0/8\ncidr,10.1.0.0/16\nip,10.1.2.3\ncidr,0.0.0.0/0\n");
        assert_eq!(matched(&set, &[("srcip", "10.1.2.3")]), ["srcip=10.1.2.3"]);
        assert_eq!(
            matched(&set, &[("srcip", "10.1.9.9")]),
            ["srcip=10.1.0.0/16"]
        );
        assert_eq!(
            matched(&set, &[("srcip", "10.200.0.1")]),
            ["srcip=10.0.0.0/8"]
        );
        assert_eq!(
            matched(&set, &[("srcip", "192.0.2.1")]),
            ["srcip=0.0.0.0/0"]
        );
        // Two values in different networks of the same list: two indicators, two hits.
        assert_eq!(
            matched(&set, &[("srcip", "10.1.9.9"), ("dstip", "10.2.0.1")]),
            ["srcip=10.1.0.0/16", "dstip=10.0.0.0/8"]
        );
    }

    #[test]
    fn each_list_reports_its_own_indicator() {
        let first = parse_list(
            Path::new("a.csv"),
            "type,value\ncidr,203.0.113.0/24\n",
            &LoadOptions::default(),
        );
        let second = parse_list(
            Path::new("b.csv"),
            "type,value\nip,203.0.113.77\nip,203.0.113.77\n",
            &LoadOptions::default(),
        );
        let set = IntelSet::build([
            (PathBuf::from("a.csv"), first),
            (PathBuf::from("b.csv"), second),
        ]);
        assert_eq!(set.skipped().duplicate, 1);
        let event = event_with(&[("remip", "203.0.113.77"), ("dstip", "203.0.113.77")]);
        let lists: Vec<String> = set
            .hits(&event, &MatchOptions::default())
            .iter()
            .map(|hit| {
                format!(
                    "{}:{}:{}",
                    hit.indicator.list, hit.indicator.value, hit.field
                )
            })
            .collect();
        // Most specific first (the address, then the network), from the event's first field;
        // `dstip` finds both already reported.
        assert_eq!(lists, ["b:203.0.113.77:remip", "a:203.0.113.0/24:remip"]);
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        let set = set_of("type,value\ncidr,2001:db8:abcd::/48\nip,2001:db8::1\nip,192.0.2.9\n");
        assert_eq!(
            matched(&set, &[("SourceIp", "2001:DB8:ABCD:1::5")]),
            ["SourceIp=2001:db8:abcd::/48"]
        );
        assert_eq!(
            matched(&set, &[("SourceIp", "[2001:db8::1]:443")]),
            ["SourceIp=2001:db8::1"]
        );
        assert_eq!(
            matched(&set, &[("IpAddress", "::ffff:192.0.2.9")]),
            ["IpAddress=192.0.2.9"]
        );
        assert!(matched(&set, &[("SourceIp", "2001:db8:abce::1")]).is_empty());
    }

    #[test]
    fn domain_suffixes_but_not_lookalikes() {
        let set = set_of("type,value\ndomain,evil.vn\ndomain,cdn.evil.vn\n");
        assert_eq!(
            matched(&set, &[("QueryName", "a.b.EVIL.vn.")]),
            ["QueryName=evil.vn"]
        );
        assert_eq!(
            matched(&set, &[("QueryName", "x.cdn.evil.vn")]),
            ["QueryName=cdn.evil.vn"]
        );
        assert_eq!(
            matched(&set, &[("cs-host", "evil.vn:8080")]),
            ["cs-host=evil.vn"]
        );
        for miss in ["notevil.vn", "evil.vn.example", "vn", "evil", "evil-vn", ""] {
            assert!(matched(&set, &[("QueryName", miss)]).is_empty(), "{miss}");
        }
    }

    #[test]
    fn urls_exact_after_normalization_and_host_as_domain() {
        let set = set_of(
            "type,value\nurl,http://Portal.Evil.example/dl/payload.exe\ndomain,c2.example\n",
        );
        assert_eq!(
            matched(
                &set,
                &[("request", "HTTP://portal.evil.EXAMPLE:80/dl/payload.exe#x")]
            ),
            ["request=http://portal.evil.example/dl/payload.exe"]
        );
        assert_eq!(
            matched(
                &set,
                &[("request", "https://portal.evil.example/dl/payload.exe")]
            ),
            ["request=http://portal.evil.example/dl/payload.exe"]
        );
        assert!(matched(
            &set,
            &[("request", "http://portal.evil.example/dl/Payload.exe")]
        )
        .is_empty());
        assert!(matched(
            &set,
            &[("request", "http://portal.evil.example:8080/dl/payload.exe")]
        )
        .is_empty());
        assert_eq!(
            matched(&set, &[("url", "https://www.c2.example/x?y=1")]),
            ["url=c2.example"]
        );
        // A FortiGate web-filter event: path in `url`, host in `hostname`.
        assert_eq!(
            matched(
                &set,
                &[
                    ("hostname", "portal.evil.example"),
                    ("url", "/dl/payload.exe")
                ]
            ),
            ["url=http://portal.evil.example/dl/payload.exe"]
        );
    }

    #[test]
    fn hashes_from_sysmon_and_plain_fields() {
        let sha256 = "3f1c2a9e0b5d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f";
        let md5 = "0123456789abcdef0123456789abcdef";
        let set = set_of(&format!("type,value\nsha256,{sha256}\nmd5,{md5}\n"));
        let sysmon = format!("SHA1=da39a3ee5e6b4b0d3255bfef95601890afd80709,MD5=00000000000000000000000000000000,SHA256={},IMPHASH={md5}", sha256.to_ascii_uppercase());
        assert_eq!(
            matched(&set, &[("Hashes", &sysmon)]),
            [format!("Hashes={sha256}")]
        );
        assert_eq!(
            matched(&set, &[("md5", &md5.to_ascii_uppercase())]),
            [format!("md5={md5}")]
        );
    }

    #[test]
    fn scanning_all_fields_finds_unlisted_address_fields() {
        let set = set_of("type,value\nip,198.51.100.23\n");
        let event = event_with(&[("transip", "198.51.100.23")]);
        assert_eq!(set.hits(&event, &MatchOptions::default()).len(), 1);
        let table_only = MatchOptions {
            scan_all_fields_for_addresses: false,
        };
        assert!(set.hits(&event, &table_only).is_empty());
    }

    #[test]
    fn expired_indicators_stop_matching() {
        let path = PathBuf::from("x.csv");
        let then = DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z")
            .ok()
            .map(|time| time.with_timezone(&Utc));
        let options = LoadOptions {
            now: then,
            ..LoadOptions::default()
        };
        let list = parse_list(
            &path,
            "type,value,expires\nip,192.0.2.1,2021-01-01\nip,192.0.2.2,2999-01-01\n",
            &options,
        );
        let set = IntelSet::build([(path, list)]);
        assert_eq!(set.indicators().len(), 2);
        assert!(matched(&set, &[("srcip", "192.0.2.1")]).is_empty());
        assert_eq!(matched(&set, &[("srcip", "192.0.2.2")]).len(), 1);
    }

    #[test]
    fn alert_names_list_and_indicator() {
        let set = set_of("# tags: intel.city\ntype,value,level,description\ncidr,203.0.113.0/24,critical,VPN brute force\n");
        let event = event_with(&[("remip", "203.0.113.77")]);
        let alerts = set.alerts(&event, &MatchOptions::default());
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!(alert.rule_id, "intel:test");
        assert_eq!(alert.title, "Threat-intel match: test (cidr)");
        assert_eq!(alert.kind, AlertKind::Intel);
        assert_eq!(alert.level, crate::alert::Level::Critical);
        assert_eq!(*alert.tags, ["intel.city"]);
        let detail = |name: &str| {
            alert
                .details
                .get(name)
                .and_then(|value| value.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(
            [
                detail("list"),
                detail("indicator"),
                detail("indicator_type"),
                detail("field"),
                detail("value"),
                detail("description")
            ],
            [
                "test",
                "203.0.113.0/24",
                "cidr",
                "remip",
                "203.0.113.77",
                "VPN brute force"
            ]
        );
    }

    #[test]
    fn nested_documents_and_arrays() {
        let set = set_of("type,value\ndomain,evil.vn\nip,192.0.2.7\nsha256,3f1c2a9e0b5d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f\n");
        let mut event = event_with(&[]);
        event.fields.insert(
            "dns".into(),
            serde_json::json!({"question": {"name": "www.evil.vn"}}),
        );
        event.fields.insert("file".into(), serde_json::json!({"hash": {"sha256": ["00", "3F1C2A9E0B5D4E6F7A8B9C0D1E2F3A4B5C6D7E8F9A0B1C2D3E4F5A6B7C8D9E0F"]}}));
        event.fields.insert(
            "x-forwarded-for".into(),
            serde_json::json!(["10.0.0.1, 192.0.2.7"]),
        );
        let found: Vec<String> = set
            .hits(&event, &MatchOptions::default())
            .iter()
            .map(|hit| format!("{}={}", hit.field, hit.indicator.indicator_type.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                "x-forwarded-for=ip",
                "dns.question.name=domain",
                "file.hash.sha256=sha256"
            ]
        );
    }

    #[test]
    fn empty_set_matches_nothing() {
        let event = event_with(&[("srcip", "203.0.113.77")]);
        assert!(IntelSet::empty()
            .hits(&event, &MatchOptions::default())
            .is_empty());
    }
}
