//! The configuration file as serde reads it: every key optional, unknown keys refused, so each
//! key can be checked on its own and every problem reported at once (see `validate.rs`).

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The top-level sections (only their names are used; each section is read separately).
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSections {
    collector: toml::Value,
    source: toml::Value,
    buffer: toml::Value,
    server: toml::Value,
    archive: toml::Value,
}

/// `[collector]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCollector {
    pub name: Option<String>,
    pub agency: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub timezone: Option<String>,
    pub metrics_listen: Option<String>,
    pub queue_max_bytes: Option<ByteSize>,
}

/// One `[[source]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub listen: Option<String>,
    pub path: Option<PathBuf>,
    pub format: Option<String>,
    pub timezone: Option<String>,
    pub framing: Option<String>,
    pub max_frame: Option<ByteSize>,
    pub max_connections: Option<u32>,
    pub receive_buffer: Option<ByteSize>,
    pub max_body: Option<ByteSize>,
    pub max_requests: Option<u32>,
    pub body_timeout_ms: Option<u64>,
    pub head_timeout_ms: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub poll_interval_ms: Option<u64>,
}

/// `[buffer]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBuffer {
    pub max_bytes: Option<ByteSize>,
    pub when_full: Option<String>,
    pub sync_interval_ms: Option<u64>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub url: Option<String>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

/// `[archive]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArchive {
    pub path: Option<PathBuf>,
    pub max_file_bytes: Option<ByteSize>,
}

/// A size in bytes, written as a number (`65536`) or with a unit (`"64 KiB"`, `"10GB"`):
/// admins edit this file by hand, and `10737418240` is easy to get wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSize(pub u64);

impl ByteSize {
    pub(crate) fn parse(text: &str) -> Result<u64, String> {
        let text = text.trim();
        let split = text
            .find(|character: char| !character.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let number: u64 = digits.parse().map_err(|_| {
            format!("`{text}` is not a size (write 65536, \"64 KiB\" or \"10 GiB\")")
        })?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{text}` (use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB)"
                ))
            }
        };
        number
            .checked_mul(multiplier)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a size: a number of bytes or a string such as \"64 KiB\"")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ByteSize, E> {
                u64::try_from(value)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(value))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<ByteSize, E> {
                ByteSize::parse(value).map(ByteSize).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_numbers_and_units() {
        assert_eq!(ByteSize::parse("65536"), Ok(65536));
        assert_eq!(ByteSize::parse("64 KiB"), Ok(65536));
        assert_eq!(ByteSize::parse("10GiB"), Ok(10 << 30));
        assert_eq!(ByteSize::parse("2 MB"), Ok(2_000_000));
        assert!(ByteSize::parse("ten").is_err());
        assert!(ByteSize::parse("5 parsecs").is_err());
        assert!(ByteSize::parse("99999999999 TiB").is_err());
    }
}
