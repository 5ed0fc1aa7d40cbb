//! What RFC 3164 and RFC 5424 share: the PRI part, facility and severity names, and how the
//! header lands in the event.

use serde_json::Value;

use crate::event::Event;
use crate::format::FormatError;

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

/// Stores PRI as `syslog.priority`, `syslog.facility` and `log.level` (the severity name).
pub fn record_priority(event: &mut Event, priority: u8) {
    event
        .fields
        .insert("syslog.priority".into(), Value::from(priority));
    event
        .fields
        .insert_text("syslog.facility".into(), facility_name(priority));
    event.core.log_level = Some(severity_name(priority).into());
}

/// Stores the host name as `host.name`.
pub fn record_hostname(event: &mut Event, hostname: &str) {
    event.core.host_name = Some(hostname.into());
}

/// Stores the program as `process.name` and the process id as `process.pid`, or as
/// `syslog.procid` when it is not a number (RFC 5424 allows any token).
pub fn record_program(event: &mut Event, appname: Option<&str>, procid: Option<&str>) {
    if let Some(appname) = appname {
        event.core.process_name = Some(appname.into());
    }
    if let Some(procid) = procid {
        match procid.parse() {
            Ok(pid) => event.core.process_pid = Some(pid),
            Err(_) => {
                event.fields.insert_text("syslog.procid".into(), procid);
            }
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
