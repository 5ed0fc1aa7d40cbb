//! The alert: what detection hands to the index and the console.

use chrono::{DateTime, Utc};
use citysoc_collector::Event;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// How serious an alert is, with Sigma's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Informational.
    Informational,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Level {
    /// Reads Sigma's level names; anything else is `medium`.
    pub fn from_sigma(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "informational" | "info" => Level::Informational,
            "low" => Level::Low,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => Level::Medium,
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

/// Which detector raised the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A Sigma detection rule.
    Sigma,
    /// A Sigma correlation rule.
    Correlation,
    /// A YARA rule.
    Yara,
    /// A threat-intelligence indicator.
    Intel,
}

/// The entities an alert is about: what analysts pivot on and what suppression groups by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entities {
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// IP address (the source where there is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl Entities {
    /// The entities of an event: host, user and source address (destination when no source).
    pub fn of(event: &Event) -> Self {
        Entities {
            host: event.core.host_name.as_deref().map(str::to_owned),
            user: event.core.user_name.as_deref().map(str::to_owned),
            ip: event
                .core
                .source_ip
                .as_deref()
                .or(event.core.destination_ip.as_deref())
                .map(str::to_owned),
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id: a hash of rule id, grouping key and first triggering event id.
    pub id: String,
    /// The rule, YARA rule or indicator list that fired.
    pub rule_id: String,
    /// Human title.
    pub title: String,
    /// Severity.
    pub level: Level,
    /// Which detector.
    pub kind: AlertKind,
    /// Tags, ATT&CK ones included (`attack.t1003.001`). Shared with the rule that fired (a
    /// rule's alerts all carry its tags: one count increment per alert instead of a copy of
    /// every tag); in JSON a list of strings, as a `Vec<String>` is.
    #[serde(
        default,
        skip_serializing_if = "tags_are_empty",
        serialize_with = "serialize_tags",
        deserialize_with = "deserialize_tags"
    )]
    pub tags: Arc<[String]>,
    /// The agency of the triggering events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// Host, user, ip.
    pub entities: Entities,
    /// Ids of the events that caused the alert.
    pub event_ids: Vec<String>,
    /// What suppression groups by: rule id and entities (or a correlation's group-by values).
    pub grouping_key: String,
    /// Time of the first triggering event.
    pub first_seen: DateTime<Utc>,
    /// Time of the last triggering event.
    pub last_seen: DateTime<Utc>,
    /// How many hits were folded into this alert (1 unless suppression grouped repeats).
    pub count: u64,
    /// Detector-specific details: matched YARA strings, the indicator and its list, the
    /// correlation's aggregate, the rule's file.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Alert {
    /// An alert for one event that matched one rule. `tags` is a `Vec<String>` or, to share
    /// a rule's tags between its alerts without copying them, an `Arc<[String]>`.
    pub fn for_event(
        kind: AlertKind,
        rule_id: &str,
        title: &str,
        level: Level,
        tags: impl Into<Arc<[String]>>,
        event: &Event,
    ) -> Self {
        let entities = Entities::of(event);
        let grouping_key = grouping_key(rule_id, event.agency.as_deref(), &entities);
        Alert {
            id: alert_id(rule_id, &grouping_key, &event.id),
            rule_id: rule_id.to_owned(),
            title: title.to_owned(),
            level,
            kind,
            tags: tags.into(),
            agency: event.agency.as_deref().map(str::to_owned),
            entities,
            event_ids: vec![event.id.clone()],
            grouping_key,
            first_seen: event.timestamp,
            last_seen: event.timestamp,
            count: 1,
            details: serde_json::Map::new(),
        }
    }

    /// The ATT&CK technique ids among the tags (`attack.t1003.001` → `T1003.001`).
    pub fn attack_techniques(&self) -> Vec<String> {
        self.tags
            .iter()
            .filter_map(|tag| tag.strip_prefix("attack.t"))
            .map(|technique| format!("T{}", technique.to_ascii_uppercase()))
            .collect()
    }
}

fn tags_are_empty(tags: &Arc<[String]>) -> bool {
    tags.is_empty()
}

fn serialize_tags<S: Serializer>(tags: &Arc<[String]>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(tags.iter())
}

fn deserialize_tags<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<[String]>, D::Error> {
    Vec::<String>::deserialize(deserializer).map(Arc::from)
}

/// `rule|agency|host|user|ip`: the same rule on the same entities groups together.
pub fn grouping_key(rule_id: &str, agency: Option<&str>, entities: &Entities) -> String {
    // Joined by hand: `format!` costs about as much as the rest of an alert (every YARA and
    // Sigma alert builds one).
    let parts = [
        rule_id,
        agency.unwrap_or(""),
        entities.host.as_deref().unwrap_or(""),
        entities.user.as_deref().unwrap_or(""),
        entities.ip.as_deref().unwrap_or(""),
    ];
    let mut key = String::with_capacity(parts.iter().map(|part| part.len() + 1).sum());
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push('|');
        }
        key.push_str(part);
    }
    key
}

/// The hash of `rule_id`, `grouping_key` and `first_event_id`, each followed by a zero byte.
fn alert_id(rule_id: &str, grouping_key: &str, first_event_id: &str) -> String {
    lower_hex_128(alert_hash(rule_id, grouping_key, first_event_id))
}

/// Parts up to this many bytes in all are hashed in one call from a buffer on the stack: the
/// streaming hasher sets up about 600 bytes of state per alert, more than the hashing itself.
/// XXH3 gives the same value either way.
const ONE_SHOT_BYTES: usize = 512;

fn alert_hash(rule_id: &str, grouping_key: &str, first_event_id: &str) -> u128 {
    let parts = [rule_id, grouping_key, first_event_id];
    let total: usize = parts.iter().map(|part| part.len() + 1).sum();
    if total <= ONE_SHOT_BYTES {
        let mut buffer = [0u8; ONE_SHOT_BYTES];
        let mut end = 0;
        for part in parts {
            if let Some(slot) = buffer.get_mut(end..end + part.len()) {
                slot.copy_from_slice(part.as_bytes());
            }
            // The zero byte after the part is already there.
            end += part.len() + 1;
        }
        return xxh3_128(buffer.get(..end).unwrap_or_default());
    }
    let mut hasher = Xxh3::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    hasher.digest128()
}

/// `format!("{:032x}", value)` without the formatting machinery.
fn lower_hex_128(value: u128) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(32);
    for nibble in (0..32).rev() {
        let digit = (value >> (nibble * 4)) & 0xf;
        text.push(char::from(DIGITS[digit as usize]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use citysoc_collector::{parse_record, InputFormat, ParseContext};

    #[test]
    fn ids_and_grouping_keys_are_written_as_format_writes_them() {
        for value in [
            0,
            1,
            0xabc,
            u128::MAX,
            u128::MAX / 3,
            1 << 127,
            0x0123_4567_89ab_cdef,
        ] {
            assert_eq!(lower_hex_128(value), format!("{value:032x}"));
        }
        let entities = Entities {
            host: Some("pc-01".into()),
            user: None,
            ip: Some("10.0.0.1".into()),
        };
        assert_eq!(
            grouping_key("rule-1", Some("quan-1"), &entities),
            "rule-1|quan-1|pc-01||10.0.0.1"
        );
        assert_eq!(
            grouping_key("r", None, &Entities::default()),
            format!("r|{}|{}|{}|{}", "", "", "", "")
        );
    }

    /// The one-shot hash from the stack buffer is the streaming hash, for parts that fit the
    /// buffer exactly, nearly, or not at all.
    #[test]
    fn alert_ids_hash_the_parts_as_the_streaming_hasher_does() {
        let streaming = |parts: [&str; 3]| {
            let mut hasher = Xxh3::new();
            for part in parts {
                hasher.update(part.as_bytes());
                hasher.update(&[0]);
            }
            hasher.digest128()
        };
        let long = "k".repeat(ONE_SHOT_BYTES);
        for (rule, key) in [
            ("", ""),
            ("rule-1", "rule-1|quan-1|pc-01||10.0.0.1"),
            ("r", &long[..ONE_SHOT_BYTES - 3 - 32]),
            ("r", &long[..ONE_SHOT_BYTES - 2 - 32]),
            ("r", &long[..ONE_SHOT_BYTES - 100]),
            ("r", long.as_str()),
        ] {
            let event_id = "0123456789abcdef0123456789abcdef";
            let parts = [rule, key, event_id];
            assert_eq!(alert_hash(rule, key, event_id), streaming(parts));
            assert_eq!(
                alert_id(rule, key, event_id),
                format!("{:032x}", streaming(parts))
            );
        }
    }

    fn fixed_alert(tags: &[&str]) -> Alert {
        let time = DateTime::from_timestamp(1_763_775_000, 0).unwrap_or_default();
        Alert {
            id: "0123".into(),
            rule_id: "rule-1".into(),
            title: "SSH failure".into(),
            level: Level::High,
            kind: AlertKind::Yara,
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            agency: Some("quan-1".into()),
            entities: Entities {
                host: Some("pc-01".into()),
                user: None,
                ip: None,
            },
            event_ids: vec!["e1".into()],
            grouping_key: "rule-1|quan-1|pc-01||".into(),
            first_seen: time,
            last_seen: time,
            count: 1,
            details: serde_json::Map::new(),
        }
    }

    /// Shared tags (`Arc<[String]>`) are written and read as the `Vec<String>` they replaced:
    /// a list of strings, left out when empty.
    #[test]
    fn shared_tags_have_the_json_of_a_list_of_strings() {
        let alert = fixed_alert(&["attack.t1110.001", "ssh"]);
        let json = serde_json::to_string(&alert).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"id":"0123","rule_id":"rule-1","title":"SSH failure","level":"high","kind":"yara","tags":["attack.t1110.001","ssh"],"agency":"quan-1","entities":{"host":"pc-01"},"event_ids":["e1"],"grouping_key":"rule-1|quan-1|pc-01||","first_seen":"2025-11-22T01:30:00Z","last_seen":"2025-11-22T01:30:00Z","count":1}"#
        );
        let back: Alert = serde_json::from_str(&json).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(back, alert);

        let untagged = fixed_alert(&[]);
        let json = serde_json::to_string(&untagged).unwrap_or_default();
        assert!(!json.contains("tags"), "{json}");
        let back: Alert = serde_json::from_str(&json).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(back, untagged);

        // An alert's tags are its rule's: cloning them shares the list.
        let shared: Arc<[String]> = Arc::from(vec!["a".to_owned()]);
        let event = parse_record(
            b"<38>Nov 22 08:20:01 host sshd[1]: x",
            InputFormat::Auto,
            &ParseContext::new("test"),
            1,
        );
        let alert = Alert::for_event(
            AlertKind::Yara,
            "r",
            "t",
            Level::Low,
            shared.clone(),
            &event,
        );
        assert!(Arc::ptr_eq(&alert.tags, &shared));
        let from_vec = Alert::for_event(
            AlertKind::Sigma,
            "r",
            "t",
            Level::Low,
            vec!["a".to_owned()],
            &event,
        );
        assert_eq!(from_vec.tags, shared);
    }

    #[test]
    fn alert_from_an_sshd_event_carries_entities_and_grouping() {
        let context = ParseContext::new("test").with_agency("quan-1");
        let event = parse_record(b"<38>Nov 22 08:20:01 gis-app-01 sshd[1]: Failed password for root from 203.0.113.45 port 4 ssh2", InputFormat::Auto, &context, 1);
        let alert = Alert::for_event(
            AlertKind::Sigma,
            "rule-1",
            "SSH failure",
            Level::Low,
            vec!["attack.t1110.001".into()],
            &event,
        );
        assert_eq!(alert.entities.ip.as_deref(), Some("203.0.113.45"));
        assert_eq!(alert.entities.user.as_deref(), Some("root"));
        assert_eq!(
            alert.grouping_key,
            "rule-1|quan-1|gis-app-01|root|203.0.113.45"
        );
        assert_eq!(alert.attack_techniques(), ["T1110.001"]);
        assert_eq!(alert.event_ids, std::slice::from_ref(&event.id));
        let json = serde_json::to_string(&alert).unwrap_or_default();
        let back: Alert = serde_json::from_str(&json).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(back, alert);
    }
}
