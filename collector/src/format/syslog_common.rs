//! What RFC 3164 and RFC 5424 share: the PRI part, facility and severity names, and how the
//! header lands in the event.

use serde_json::Value;

use crate::event::{Event, Fields};
use crate::format::{static_fields, FormatError};

/// Error text for a missing `<`, as go-syslog words it (so our errors name the same problems).
pub const EXPECTED_PRI_BRACKETS: &str = "expecting a priority value within angle brackets";
/// Error text for a PRI that is not 0..=191 or has a leading zero.
pub const EXPECTED_PRI_RANGE: &str = "expecting a priority value in the range 1-191 or equal to 0";

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Reads `<PRIVAL>` at the start of `input`: 1 to 3 digits, 0..=191, no leading zero. Returns
/// the value and the bytes used. The error offset is the first byte that cannot belong to a PRI.
pub fn parse_pri(input: &str) -> Result<(u8, usize), FormatError> {
    let bytes = input.as_bytes();
    if bytes.first() != Some(&b'<') {
        return Err(FormatError::new(EXPECTED_PRI_BRACKETS, 0));
    }
    let mut value: u32 = 0;
    let mut position = 1;
    loop {
        match bytes.get(position) {
            Some(b'>') if position > 1 => return Ok((value as u8, position + 1)),
            Some(digit @ b'0'..=b'9') => {
                let leading_zero = position == 2 && value == 0;
                value = value * 10 + u32::from(digit - b'0');
                if leading_zero || position > 3 || value > 191 {
                    return Err(FormatError::new(EXPECTED_PRI_RANGE, position));
                }
                position += 1;
            }
            _ => return Err(FormatError::new(EXPECTED_PRI_RANGE, position)),
        }
    }
}

/// The facility name of a PRI value (`auth`, `local7`, …).
pub fn facility_name(priority: u8) -> &'static str {
    FACILITIES
        .get(usize::from(priority >> 3))
        .copied()
        .unwrap_or("unknown")
}

/// The severity name of a PRI value (`err`, `info`, …).
pub fn severity_name(priority: u8) -> &'static str {
    SEVERITIES[usize::from(priority & 7)]
}

// The header lands once: fields that have an ECS home (host.name, process.name, process.pid,
// log.level = severity) live only there, so a syslog event does not carry each value twice.
// `fields` keeps what has no ECS home (priority, facility, version, msgid, a non-numeric procid,
// the timestamp as written).

/// Most entries a syslog header puts in `fields` (RFC 5424: priority, facility, version,
/// timestamp, procid, msgid, structured data).
const HEADER_ENTRIES: usize = 8;

/// The header's `fields` entries, gathered in the order they land and written in one go with
/// [`HeaderFields::write_into`], which skips hashing their names when `fields` is still empty
/// (see `static_fields`). Every syslog record goes through here.
pub struct HeaderFields {
    names: [&'static str; HEADER_ENTRIES],
    values: [Value; HEADER_ENTRIES],
    len: usize,
    /// Entries past `HEADER_ENTRIES` (none today; kept so a new one is never dropped).
    overflow: Vec<(&'static str, Value)>,
}

impl Default for HeaderFields {
    fn default() -> Self {
        const NULL: Value = Value::Null;
        HeaderFields {
            names: [""; HEADER_ENTRIES],
            values: [NULL; HEADER_ENTRIES],
            len: 0,
            overflow: Vec::new(),
        }
    }
}

impl HeaderFields {
    /// Adds an entry after the ones already gathered.
    pub fn push(&mut self, name: &'static str, value: Value) {
        if self.len < HEADER_ENTRIES {
            self.names[self.len] = name;
            self.values[self.len] = value;
            self.len += 1;
        } else {
            self.overflow.push((name, value));
        }
    }

    /// Writes the entries into `fields`, after what it holds, as inserts in order would.
    pub fn write_into(mut self, fields: &mut Fields) {
        static_fields::write(fields, &self.names[..self.len], &mut self.values[..self.len]);
        for (name, value) in self.overflow {
            fields.insert(name.to_owned(), value);
        }
    }
}

/// Gathers PRI as `syslog.priority` and `syslog.facility`, and sets `log.level` (the severity
/// name).
pub fn record_priority(event: &mut Event, header: &mut HeaderFields, priority: u8) {
    header.push("syslog.priority", Value::from(priority));
    header.push("syslog.facility", Value::from(facility_name(priority)));
    event.core.log_level = Some(severity_name(priority).into());
}

/// Stores the host name as `host.name`.
pub fn record_hostname(event: &mut Event, hostname: &str) {
    event.core.host_name = Some(hostname.to_owned());
}

/// Stores the program as `process.name` and the process id as `process.pid`, or gathers it as
/// `syslog.procid` when it is not a number (RFC 5424 allows any token).
pub fn record_program(
    event: &mut Event,
    header: &mut HeaderFields,
    appname: Option<&str>,
    procid: Option<&str>,
) {
    if let Some(appname) = appname {
        event.core.process_name = Some(appname.to_owned());
    }
    if let Some(procid) = procid {
        match procid.parse() {
            Ok(pid) => event.core.process_pid = Some(pid),
            Err(_) => header.push("syslog.procid", Value::from(procid)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pri_values_and_errors_match_go_syslog_columns() {
        assert_eq!(parse_pri("<0>1"), Ok((0, 3)));
        assert_eq!(parse_pri("<191>1"), Ok((191, 5)));
        let offset = |input: &str| parse_pri(input).err().map(|error| error.offset);
        assert_eq!(offset(""), Some(0));
        assert_eq!(offset("(190>"), Some(0));
        assert_eq!(offset("<87]"), Some(3));
        assert_eq!(offset("<>"), Some(1));
        assert_eq!(offset("<19000021>"), Some(4));
        assert_eq!(offset("<192>"), Some(3));
        assert_eq!(offset("<002>"), Some(2));
        assert_eq!(offset("<aaa>"), Some(1));
    }

    #[test]
    fn names() {
        assert_eq!((facility_name(34), severity_name(34)), ("auth", "crit"));
        assert_eq!(
            (facility_name(191), severity_name(191)),
            ("local7", "debug")
        );
    }
}
