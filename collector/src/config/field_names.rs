//! The field names a `#[derive(Deserialize)]` struct accepts, asked from serde itself, so the
//! list of known keys used to report unknown ones can never drift from the structs.

use std::fmt;

use serde::de::{self, Deserialize, Visitor};

/// The keys `T` accepts (its serde field names, after renames). Empty for types that are not
/// plain structs.
pub(crate) fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    match T::deserialize(FieldNameProbe) {
        Err(Probe::Fields(fields)) => fields,
        _ => &[],
    }
}

/// A deserializer that stops at the first `deserialize_struct` call and reports its fields.
struct FieldNameProbe;

#[derive(Debug)]
enum Probe {
    Fields(&'static [&'static str]),
    Other,
}

impl fmt::Display for Probe {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("field name probe")
    }
}

impl std::error::Error for Probe {}

impl de::Error for Probe {
    fn custom<M: fmt::Display>(_message: M) -> Self {
        Probe::Other
    }
}

impl<'de> de::Deserializer<'de> for FieldNameProbe {
    type Error = Probe;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Probe> {
        Err(Probe::Other)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Probe> {
        Err(Probe::Fields(fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        port: Option<u16>,
    }

    #[test]
    fn struct_fields_come_from_serde_with_renames() {
        assert_eq!(field_names::<Sample>(), ["name", "type", "port"]);
        assert!(field_names::<String>().is_empty());
    }
}
