//! The stored row: one event as the `events` table holds it, and the column of every catalogue
//! field. Values are taken with [`document::visit_fields`] and [`document::original_fields`],
//! folded and tokenized with [`text`], exactly as the tantivy store indexes them, so the same
//! query matches the same events in both.

use citysoc_collector::Event;
use serde::{Deserialize, Serialize};

use crate::document::{self, FieldValue};
use crate::fields::FieldKind;
use crate::text;
use crate::IndexError;

/// One event as stored. Field names are the column names (the `clickhouse` crate writes
/// them into the `INSERT`), and [`COLUMNS`] gives their SQL types in the same order.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub(crate) struct EventRow {
    /// The event id as sent (sort tie-breaker, cursor, dedup key).
    pub id: String,
    /// The agency as sent, `""` when the event has none (the sorting key cannot be Nullable
    /// on 18.16); scope checks also require `kw_agency` to be set.
    pub agency: String,
    /// `timestamp` in microseconds since the epoch (18.16 has no DateTime64).
    pub timestamp_us: i64,
    /// `received_at` in microseconds since the epoch.
    pub received_at_us: i64,
    /// `timestamp` in whole seconds clamped to what `DateTime` holds: the partition key.
    pub event_time: u32,

    pub kw_id: Option<String>,
    pub kw_agency: Option<String>,
    pub kw_collector: Option<String>,
    pub kw_format: Option<String>,
    pub kw_logsource_product: Option<String>,
    pub kw_logsource_category: Option<String>,
    pub kw_logsource_service: Option<String>,
    pub kw_source_transport: Option<String>,
    pub kw_source_address: Option<String>,
    pub kw_host_name: Option<String>,
    pub kw_source_ip: Option<String>,
    pub kw_destination_ip: Option<String>,
    pub kw_user_name: Option<String>,
    pub kw_process_name: Option<String>,
    pub kw_process_executable: Option<String>,
    pub kw_event_code: Option<String>,
    pub kw_event_action: Option<String>,
    pub kw_event_outcome: Option<String>,
    pub kw_log_level: Option<String>,
    pub kw_http_request_method: Option<String>,
    pub kw_parse_error_format: Option<String>,

    pub num_source_port: Option<u64>,
    pub num_destination_port: Option<u64>,
    pub num_process_pid: Option<u64>,
    pub num_http_response_status_code: Option<u64>,

    pub txt_message: Option<String>,
    pub txt_raw: Option<String>,
    pub txt_process_command_line: Option<String>,
    pub txt_url_original: Option<String>,
    pub txt_user_agent_original: Option<String>,

    /// Paths of the original fields, parallel to `field_values` (an array element repeats
    /// its path).
    pub field_paths: Vec<String>,
    /// Folded values of the original fields.
    pub field_values: Vec<String>,

    /// The whole event as JSON: what searches return.
    pub event_json: String,
}

/// Every column with its SQL type, in [`EventRow`] order (a unit test holds them together).
pub(crate) const COLUMNS: &[(&str, &str)] = &[
    ("id", "String"),
    ("agency", "String"),
    ("timestamp_us", "Int64"),
    ("received_at_us", "Int64"),
    ("event_time", "DateTime('UTC')"),
    ("kw_id", "Nullable(String)"),
    ("kw_agency", "Nullable(String)"),
    ("kw_collector", "Nullable(String)"),
    ("kw_format", "Nullable(String)"),
    ("kw_logsource_product", "Nullable(String)"),
    ("kw_logsource_category", "Nullable(String)"),
    ("kw_logsource_service", "Nullable(String)"),
    ("kw_source_transport", "Nullable(String)"),
    ("kw_source_address", "Nullable(String)"),
    ("kw_host_name", "Nullable(String)"),
    ("kw_source_ip", "Nullable(String)"),
    ("kw_destination_ip", "Nullable(String)"),
    ("kw_user_name", "Nullable(String)"),
    ("kw_process_name", "Nullable(String)"),
    ("kw_process_executable", "Nullable(String)"),
    ("kw_event_code", "Nullable(String)"),
    ("kw_event_action", "Nullable(String)"),
    ("kw_event_outcome", "Nullable(String)"),
    ("kw_log_level", "Nullable(String)"),
    ("kw_http_request_method", "Nullable(String)"),
    ("kw_parse_error_format", "Nullable(String)"),
    ("num_source_port", "Nullable(UInt64)"),
    ("num_destination_port", "Nullable(UInt64)"),
    ("num_process_pid", "Nullable(UInt64)"),
    ("num_http_response_status_code", "Nullable(UInt64)"),
    ("txt_message", "Nullable(String)"),
    ("txt_raw", "Nullable(String)"),
    ("txt_process_command_line", "Nullable(String)"),
    ("txt_url_original", "Nullable(String)"),
    ("txt_user_agent_original", "Nullable(String)"),
    ("field_paths", "Array(String)"),
    ("field_values", "Array(String)"),
    ("event_json", "String"),
];

/// The column holding a catalogue field, and the field's kind. `None` for names outside the
/// catalogue. This table and [`EventRow::set`] are the only places that name columns; SQL
/// is built from them, never from user input.
pub(crate) fn column(field: &str) -> Option<(&'static str, FieldKind)> {
    use FieldKind::{Keyword, Number, Text, Time};
    Some(match field {
        "timestamp" => ("timestamp_us", Time),
        "received_at" => ("received_at_us", Time),
        "id" => ("kw_id", Keyword),
        "agency" => ("kw_agency", Keyword),
        "collector" => ("kw_collector", Keyword),
        "format" => ("kw_format", Keyword),
        "logsource.product" => ("kw_logsource_product", Keyword),
        "logsource.category" => ("kw_logsource_category", Keyword),
        "logsource.service" => ("kw_logsource_service", Keyword),
        "source.transport" => ("kw_source_transport", Keyword),
        "source.address" => ("kw_source_address", Keyword),
        "host.name" => ("kw_host_name", Keyword),
        "source.ip" => ("kw_source_ip", Keyword),
        "destination.ip" => ("kw_destination_ip", Keyword),
        "user.name" => ("kw_user_name", Keyword),
        "process.name" => ("kw_process_name", Keyword),
        "process.executable" => ("kw_process_executable", Keyword),
        "event.code" => ("kw_event_code", Keyword),
        "event.action" => ("kw_event_action", Keyword),
        "event.outcome" => ("kw_event_outcome", Keyword),
        "log.level" => ("kw_log_level", Keyword),
        "http.request.method" => ("kw_http_request_method", Keyword),
        "parse_error.format" => ("kw_parse_error_format", Keyword),
        "source.port" => ("num_source_port", Number),
        "destination.port" => ("num_destination_port", Number),
        "process.pid" => ("num_process_pid", Number),
        "http.response.status_code" => ("num_http_response_status_code", Number),
        "message" => ("txt_message", Text),
        "raw" => ("txt_raw", Text),
        "process.command_line" => ("txt_process_command_line", Text),
        "url.original" => ("txt_url_original", Text),
        "user_agent.original" => ("txt_user_agent_original", Text),
        _ => return None,
    })
}

/// The `DateTime` value of a timestamp: whole seconds, clamped to the type's range (events
/// outside 1970–2106 still sort and filter on `timestamp_us`; only their partition is off).
pub(crate) fn event_time(timestamp_micros: i64) -> u32 {
    let seconds = timestamp_micros.div_euclid(1_000_000);
    u32::try_from(seconds.max(0)).unwrap_or(u32::MAX)
}

impl EventRow {
    /// The row of `event`.
    pub(crate) fn from_event(event: &Event) -> Result<Self, IndexError> {
        let timestamp_us = event.timestamp.timestamp_micros();
        let event_json =
            serde_json::to_string(event).map_err(|error| IndexError::CorruptEvent {
                id: event.id.clone(),
                message: format!("cannot be written as JSON: {error}"),
            })?;
        let mut row = EventRow {
            id: event.id.clone(),
            agency: event.agency.as_deref().unwrap_or_default().to_owned(),
            timestamp_us,
            received_at_us: event.received_at.timestamp_micros(),
            event_time: event_time(timestamp_us),
            kw_id: None,
            kw_agency: None,
            kw_collector: None,
            kw_format: None,
            kw_logsource_product: None,
            kw_logsource_category: None,
            kw_logsource_service: None,
            kw_source_transport: None,
            kw_source_address: None,
            kw_host_name: None,
            kw_source_ip: None,
            kw_destination_ip: None,
            kw_user_name: None,
            kw_process_name: None,
            kw_process_executable: None,
            kw_event_code: None,
            kw_event_action: None,
            kw_event_outcome: None,
            kw_log_level: None,
            kw_http_request_method: None,
            kw_parse_error_format: None,
            num_source_port: None,
            num_destination_port: None,
            num_process_pid: None,
            num_http_response_status_code: None,
            txt_message: None,
            txt_raw: None,
            txt_process_command_line: None,
            txt_url_original: None,
            txt_user_agent_original: None,
            field_paths: Vec::new(),
            field_values: Vec::new(),
            event_json,
        };
        document::visit_fields(event, |name, kind, value| row.set(name, kind, value));
        for (path, value) in document::original_fields(event) {
            row.field_paths.push(path);
            row.field_values.push(value);
        }
        Ok(row)
    }

    /// Stores one catalogue field: keywords folded, text as its token line, numbers as is.
    fn set(&mut self, name: &str, kind: FieldKind, value: FieldValue<'_>) {
        let stored = match (kind, value) {
            (FieldKind::Keyword, FieldValue::Text(text)) => Stored::Text(text::keyword(&text)),
            (FieldKind::Text, FieldValue::Text(text)) => Stored::Text(text::token_line(&text)),
            (FieldKind::Number, FieldValue::Number(number)) => Stored::Number(number),
            // The catalogue and `visit_fields` agree on kinds; anything else is not indexed,
            // as in the tantivy store.
            _ => return,
        };
        let slot = match name {
            "id" => &mut self.kw_id,
            "agency" => &mut self.kw_agency,
            "collector" => &mut self.kw_collector,
            "format" => &mut self.kw_format,
            "logsource.product" => &mut self.kw_logsource_product,
            "logsource.category" => &mut self.kw_logsource_category,
            "logsource.service" => &mut self.kw_logsource_service,
            "source.transport" => &mut self.kw_source_transport,
            "source.address" => &mut self.kw_source_address,
            "host.name" => &mut self.kw_host_name,
            "source.ip" => &mut self.kw_source_ip,
            "destination.ip" => &mut self.kw_destination_ip,
            "user.name" => &mut self.kw_user_name,
            "process.name" => &mut self.kw_process_name,
            "process.executable" => &mut self.kw_process_executable,
            "event.code" => &mut self.kw_event_code,
            "event.action" => &mut self.kw_event_action,
            "event.outcome" => &mut self.kw_event_outcome,
            "log.level" => &mut self.kw_log_level,
            "http.request.method" => &mut self.kw_http_request_method,
            "parse_error.format" => &mut self.kw_parse_error_format,
            "message" => &mut self.txt_message,
            "raw" => &mut self.txt_raw,
            "process.command_line" => &mut self.txt_process_command_line,
            "url.original" => &mut self.txt_url_original,
            "user_agent.original" => &mut self.txt_user_agent_original,
            number_field => {
                let slot = match number_field {
                    "source.port" => &mut self.num_source_port,
                    "destination.port" => &mut self.num_destination_port,
                    "process.pid" => &mut self.num_process_pid,
                    "http.response.status_code" => &mut self.num_http_response_status_code,
                    _ => return,
                };
                if let Stored::Number(number) = stored {
                    *slot = Some(number);
                }
                return;
            }
        };
        if let Stored::Text(text) = stored {
            *slot = Some(text);
        }
    }
}

enum Stored {
    Text(String),
    Number(u64),
}

/// A row holding the order columns and the stored JSON, for searches (the page's cursor is
/// taken from the columns, so a row whose JSON cannot be read still moves it on).
#[derive(Debug, clickhouse::Row, Deserialize)]
pub(crate) struct SearchRow {
    pub timestamp_us: i64,
    pub id: String,
    pub event_json: String,
}

/// Decodes a stored event.
pub(crate) fn decode_event(json: &str) -> Result<Event, IndexError> {
    serde_json::from_str(json).map_err(|error| IndexError::CorruptEvent {
        id: serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|value| value.get("id")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| "(unknown id)".to_owned()),
        message: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::FIELDS;

    fn full_event() -> Event {
        let json = serde_json::json!({
            "id": "AB12", "timestamp": "2026-11-22T01:02:03.000004Z",
            "received_at": "2026-11-22T01:02:04Z", "agency": "Quận-1", "collector": "c1",
            "source": {"transport": "udp", "address": "10.0.0.1:514"}, "format": "rfc3164",
            "logsource": {"product": "linux", "category": "auth", "service": "sshd"},
            "message": "Thủ Đức failed", "host.name": "WEB-01", "source.ip": "10.0.0.5",
            "source.port": 22, "destination.ip": "10.0.0.6", "destination.port": 443,
            "user.name": "Nguyễn", "process.name": "sshd", "process.pid": 7,
            "process.executable": "/usr/sbin/sshd", "process.command_line": "sshd -D",
            "event.code": "4625", "event.action": "login", "event.outcome": "failure",
            "log.level": "info", "url.original": "/a?b=c", "http.request.method": "GET",
            "http.response.status_code": 200, "user_agent.original": "curl/8",
            "parse_error": {"format": "rfc3164", "message": "x", "offset": 0},
            "fields": {"EventID": 4625, "tags": ["A", "b"]},
            "raw": "<13>Thủ Đức"
        });
        serde_json::from_value(json).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn columns_list_the_row_fields_in_order() {
        let row = EventRow::from_event(&full_event()).unwrap_or_else(|error| panic!("{error}"));
        let value = serde_json::to_value(&row).unwrap_or_else(|error| panic!("{error}"));
        let names: Vec<&str> = value
            .as_object()
            .map(|map| map.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut expected: Vec<&str> = COLUMNS.iter().map(|(name, _)| *name).collect();
        // serde_json maps are sorted; compare as sets, then check the derive's order.
        let mut sorted = names.clone();
        sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
        let derived: Vec<&str> = <EventRow as clickhouse::Row>::COLUMN_NAMES.to_vec();
        let listed: Vec<&str> = COLUMNS.iter().map(|(name, _)| *name).collect();
        assert_eq!(derived, listed);
    }

    #[test]
    fn every_catalogue_field_has_a_filled_column() {
        let row = EventRow::from_event(&full_event()).unwrap_or_else(|error| panic!("{error}"));
        let value = serde_json::to_value(&row).unwrap_or_else(|error| panic!("{error}"));
        for spec in FIELDS {
            let (name, kind) = column(spec.name).unwrap_or_else(|| panic!("{}", spec.name));
            assert_eq!(kind, spec.kind, "{}", spec.name);
            assert!(!value[name].is_null(), "{} ({name}) not filled", spec.name);
        }
    }

    #[test]
    fn values_are_folded_and_tokenized_like_the_tantivy_store() {
        let row = EventRow::from_event(&full_event()).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(row.kw_agency.as_deref(), Some("quan-1"));
        assert_eq!(row.agency, "Quận-1");
        assert_eq!(row.kw_id.as_deref(), Some("ab12"));
        assert_eq!(row.kw_user_name.as_deref(), Some("nguyen"));
        assert_eq!(row.txt_message.as_deref(), Some(" thu duc failed "));
        assert_eq!(row.txt_raw.as_deref(), Some(" 13 thu duc "));
        assert_eq!(row.num_source_port, Some(22));
        assert_eq!(row.field_paths, ["EventID", "tags", "tags"]);
        assert_eq!(row.field_values, ["4625", "a", "b"]);
        assert_eq!(row.timestamp_us % 1_000_000, 4);
        let back = decode_event(&row.event_json).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(back, full_event());
    }

    #[test]
    fn event_time_is_clamped_to_datetime() {
        assert_eq!(event_time(-1), 0);
        assert_eq!(event_time(1_500_000), 1);
        assert_eq!(event_time(i64::MAX), u32::MAX);
    }

    #[test]
    fn missing_fields_stay_null() {
        let mut event = full_event();
        event.core = Default::default();
        let row = EventRow::from_event(&event).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(row.kw_user_name, None);
        assert_eq!(row.num_source_port, None);
        assert_eq!(row.txt_message, None);
        // raw is always there.
        assert!(row.txt_raw.is_some());
    }
}
