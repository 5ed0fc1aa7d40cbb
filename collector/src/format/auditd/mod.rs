//! Linux audit (auditd) records, grouped into one event per audit event.
//!
//! The kernel writes one audit event as several records sharing the stamp
//! `msg=audit(seconds.millis:serial)`: a `SYSCALL`, then `EXECVE`, `CWD`, `PATH`×n,
//! `PROCTITLE`, … [`AuditGrouper`] puts them back together; [`parse_single`] reads one record
//! alone for the stateless path. Either way the event looks the same:
//!
//! - `fields.auditd.<TYPE>` holds each record's key/values under its record type (an array for
//!   `PATH` and for any type that appears more than once);
//! - the same key/values are also merged at the top of `fields`, because that is where SigmaHQ's
//!   `linux/auditd` rules look (`a0`, `exe`, `comm`, `key`, `name`, `nametype`, `euid`). On a
//!   clash the `EXECVE` record wins (its `a0` is the program, not a register), then `SYSCALL`,
//!   then the others in arrival order; repeated `PATH` values become lists;
//! - `type` is the list of distinct record types, so a rule's `type: EXECVE` matches a group
//!   whose first record is `SYSCALL`; `record_type` is the primary record's type,
//!   `record_types` every record's type in arrival order, `serial` the serial number;
//! - `SYSCALL` is the system call's name (from ENRICHED logs, or the x86-64 number) since rules
//!   match `SYSCALL: 'execve'`.
//!
//! Values are stored as auditd meant them: quotes removed, hex-encoded strings decoded
//! (`proctitle` with its NULs as spaces), `msg='…'` of userspace records flattened.

mod grouper;
mod record;
mod syscalls;

use std::net::IpAddr;

use serde_json::Value;

use crate::event::{Event, Fields, Format, LogSource};
use crate::format::FormatError;
use crate::parse::ParseContext;

pub use grouper::{AuditGrouper, AuditGrouperStats};
use record::AuditRecord;

/// True when the text looks like an audit record (`type=… msg=audit(…)`, bare, after `node=`
/// or inside a syslog envelope). Cheap enough to call on every line.
pub fn looks_like(text: &str) -> bool {
    record::looks_like(text)
}

/// Parses one audit record as an event on its own (no grouping).
pub fn parse_single(
    text: &str,
    _context: &ParseContext,
    event: &mut Event,
) -> Result<(), FormatError> {
    let record = record::parse_record(text)?;
    fill_event(std::slice::from_ref(&record), event);
    Ok(())
}

/// Record types whose keys win a clash at the top level of `fields`, strongest first.
const TOP_LEVEL_PRECEDENCE: [&str; 2] = ["EXECVE", "SYSCALL"];

/// Record types that repeat within one event, kept as arrays even when there is one.
const REPEATING_TYPES: [&str; 1] = ["PATH"];

/// Top-level names the event itself uses; record keys of the same name stay in `auditd.<TYPE>`.
const RESERVED_NAMES: [&str; 6] = [
    "type",
    "record_type",
    "record_types",
    "serial",
    "auditd",
    "node",
];

/// The record that names the event: the first one that is not the end marker, as go-libaudit
/// and ausearch do (an `AVC` before its `SYSCALL` names the event `AVC`).
fn primary_record(records: &[AuditRecord]) -> Option<&AuditRecord> {
    records
        .iter()
        .find(|record| record.record_type != "EOE")
        .or_else(|| records.first())
}

/// Fills `event` from the records of one audit event (in arrival order, at least one).
pub(crate) fn fill_event(records: &[AuditRecord], event: &mut Event) {
    let Some(primary) = primary_record(records) else {
        return;
    };
    event.format = Format::Auditd;
    event.timestamp = primary.timestamp;
    event.logsource = LogSource::from_static(Some("linux"), None, Some("auditd"));

    let content: Vec<&AuditRecord> = records
        .iter()
        .filter(|record| record.record_type != "EOE")
        .collect();
    let mut fields = Fields::new();
    merge_top_level(&content, &mut fields);
    fields.insert("auditd".into(), Value::from(per_type_fields(&content)));

    let mut distinct_types: Vec<Value> = Vec::new();
    for record in &content {
        let record_type = Value::from(record.record_type.as_str());
        if !distinct_types.contains(&record_type) {
            distinct_types.push(record_type);
        }
    }
    fields.insert("type".into(), Value::Array(distinct_types));
    fields.insert(
        "record_types".into(),
        Value::Array(
            content
                .iter()
                .map(|record| Value::from(record.record_type.as_str()))
                .collect(),
        ),
    );
    fields.insert(
        "record_type".into(),
        Value::from(primary.record_type.as_str()),
    );
    fields.insert("serial".into(), Value::from(primary.serial));
    if let Some(node) = &primary.node {
        fields.insert("node".into(), Value::from(node.as_str()));
    }
    if let Some(host) = &primary.syslog_host {
        fields.insert("syslog.hostname".into(), Value::from(host.as_str()));
    }
    if let Some(program) = &primary.syslog_program {
        fields.insert("syslog.appname".into(), Value::from(program.as_str()));
    }
    let warnings: Vec<Value> = records
        .iter()
        .flat_map(|record| {
            record
                .warnings
                .iter()
                .map(|warning| Value::from(warning.as_str()))
        })
        .collect();
    if !warnings.is_empty() {
        fields.insert("parse_warnings".into(), Value::Array(warnings));
    }
    if !fields.contains_key("SYSCALL") {
        let name = syscall_name(&fields);
        if let Some(name) = name {
            fields.insert("SYSCALL".into(), Value::from(name));
        }
    }

    fill_core(records, primary, &fields, event);
    event.fields.extend(fields);
}

/// `auditd.<TYPE>`: each record's key/values; `PATH` and repeated types as arrays.
fn per_type_fields(records: &[&AuditRecord]) -> Fields {
    let mut by_type = Fields::new();
    for record in records {
        let value = Value::Object(record.fields.to_map());
        let repeating = REPEATING_TYPES.contains(&record.record_type.as_str());
        match by_type.get_mut(&record.record_type) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None if repeating => {
                by_type.insert(record.record_type.clone().into(), Value::Array(vec![value]));
            }
            None => {
                by_type.insert(record.record_type.clone().into(), value);
            }
        }
    }
    by_type
}

/// Merges every record's key/values at the top of `fields` (see the module docs for who wins).
fn merge_top_level(records: &[&AuditRecord], fields: &mut Fields) {
    let rank = |record: &AuditRecord| {
        TOP_LEVEL_PRECEDENCE
            .iter()
            .position(|name| *name == record.record_type)
            .unwrap_or(TOP_LEVEL_PRECEDENCE.len())
    };
    let mut ordered: Vec<&AuditRecord> = records.to_vec();
    // Stable: records of equal rank keep their arrival order.
    ordered.sort_by_key(|record| rank(record));
    let mut origin: Vec<(String, &str)> = Vec::new();
    for record in ordered {
        for (key, value) in &record.fields {
            if RESERVED_NAMES.contains(&key) {
                continue;
            }
            let from = origin
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, from)| *from);
            match from {
                None => {
                    fields.insert(key.to_owned().into(), value.clone());
                    origin.push((key.to_owned(), record.record_type.as_str()));
                }
                // The same key again from another record of the same type (PATH item 0, 1, …):
                // keep every distinct value so a rule matching any of them fires.
                Some(from) if from == record.record_type => {
                    if let Some(existing) = fields.get_mut(key) {
                        append_distinct(existing, value);
                    }
                }
                Some(_) => {}
            }
        }
    }
}

fn append_distinct(existing: &mut Value, value: &Value) {
    match existing {
        Value::Array(items) if !items.contains(value) => items.push(value.clone()),
        Value::Array(_) => {}
        single if single != value => {
            let first = single.take();
            *single = Value::Array(vec![first, value.clone()]);
        }
        _ => {}
    }
}

fn text<'a>(fields: &'a Fields, key: &str) -> Option<&'a str> {
    match fields.get(key)? {
        Value::String(text) => Some(text.as_str()),
        Value::Array(items) => items.first().and_then(Value::as_str),
        _ => None,
    }
}

/// The syscall's name: x86-64 numbers only (the architecture of nearly every server we see);
/// other architectures keep the number in `syscall`.
fn syscall_name(fields: &Fields) -> Option<&'static str> {
    let arch = text(fields, "arch")?;
    let number: u32 = text(fields, "syscall")?.parse().ok()?;
    if arch.eq_ignore_ascii_case("c000003e") {
        syscalls::x86_64_name(number)
    } else {
        None
    }
}

/// A value that stands for "nothing": auditd writes `?`, `(null)`, `(none)` or an unset id.
fn is_unset(value: &str) -> bool {
    matches!(
        value,
        "" | "?" | "(null)" | "(none)" | "4294967295" | "-1" | "unset"
    )
}

fn fill_core(records: &[AuditRecord], primary: &AuditRecord, fields: &Fields, event: &mut Event) {
    let core = &mut event.core;
    core.process_executable = text(fields, "exe")
        .filter(|exe| !is_unset(exe))
        .map(str::to_owned);
    core.process_name = text(fields, "comm")
        .filter(|comm| !is_unset(comm))
        .map(Into::into)
        .or_else(|| {
            let exe = core.process_executable.as_deref()?;
            exe.rsplit('/')
                .next()
                .filter(|name| !name.is_empty())
                .map(Into::into)
        });
    core.process_pid = text(fields, "pid").and_then(|pid| pid.parse().ok());
    core.process_command_line = command_line(records, fields);
    core.user_name = ["acct", "AUID", "UID", "auid", "uid"]
        .iter()
        .find_map(|key| text(fields, key).filter(|value| !is_unset(value)))
        .map(Into::into);
    core.event_code = Some(primary.record_type.clone());
    core.event_action = Some(
        text(fields, "SYSCALL")
            .map(str::to_owned)
            .unwrap_or_else(|| primary.record_type.clone())
            .into(),
    );
    core.event_outcome = outcome(fields).map(|outcome| outcome.to_owned().into());
    core.host_name = primary
        .node
        .as_deref()
        .or(primary.syslog_host.as_deref())
        .map(Into::into);
    core.source_ip = text(fields, "addr")
        .and_then(|addr| addr.parse::<IpAddr>().ok())
        .map(|addr| compact_str::ToCompactString::to_compact_string(&addr));
}

/// The EXECVE arguments joined with spaces, else the decoded `proctitle`, else a userspace
/// record's `cmd` (sudo).
fn command_line(records: &[AuditRecord], fields: &Fields) -> Option<String> {
    if let Some(execve) = records.iter().find(|record| record.record_type == "EXECVE") {
        let argc: Option<usize> = execve
            .fields
            .get("argc")
            .and_then(Value::as_str)
            .and_then(|argc| argc.parse().ok());
        let mut arguments: Vec<&str> = Vec::new();
        let mut index = 0usize;
        loop {
            if argc.is_some_and(|argc| index >= argc) {
                break;
            }
            match execve
                .fields
                .get(&format!("a{index}"))
                .and_then(Value::as_str)
            {
                Some(argument) => arguments.push(argument),
                None if argc.is_some() => {}
                None => break,
            }
            index += 1;
            if index > 65_536 {
                break;
            }
        }
        if !arguments.is_empty() {
            return Some(arguments.join(" "));
        }
    }
    text(fields, "proctitle")
        .or_else(|| text(fields, "cmd"))
        .map(str::to_owned)
}

/// `success=yes|no` (syscalls) or `res=success|failed|1|0` (userspace and config records).
fn outcome(fields: &Fields) -> Option<&'static str> {
    let value = text(fields, "success").or_else(|| text(fields, "res"))?;
    match value.to_ascii_lowercase().as_str() {
        "yes" | "1" | "success" => Some("success"),
        "no" | "0" | "failed" | "fail" | "failure" => Some("failure"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::new_event;

    fn single(text: &str) -> Event {
        let context = ParseContext::new("test");
        let mut event = new_event(text.as_bytes(), &context, 1);
        parse_single(text, &context, &mut event)
            .unwrap_or_else(|error| panic!("{text}: {error:?}"));
        event
    }

    #[test]
    fn single_syscall_record_fills_core_fields() {
        let event = single(
            "node=web1 type=SYSCALL msg=audit(1170021493.977:293): arch=c000003e syscall=2 success=no exit=-13 pid=13010 auid=4294967295 uid=890 comm=\"pickup\" exe=\"/usr/libexec/postfix/pickup\" key=(null)",
        );
        assert_eq!(event.format, Format::Auditd);
        assert_eq!(event.timestamp.timestamp(), 1170021493);
        assert_eq!(event.core.process_name.as_deref(), Some("pickup"));
        assert_eq!(
            event.core.process_executable.as_deref(),
            Some("/usr/libexec/postfix/pickup")
        );
        assert_eq!(event.core.process_pid, Some(13010));
        assert_eq!(event.core.user_name.as_deref(), Some("890"));
        assert_eq!(event.core.event_action.as_deref(), Some("open"));
        assert_eq!(event.core.event_outcome.as_deref(), Some("failure"));
        assert_eq!(event.core.host_name.as_deref(), Some("web1"));
        assert_eq!(
            event.fields.get("type"),
            Some(&serde_json::json!(["SYSCALL"]))
        );
        assert_eq!(
            event.fields.get("SYSCALL"),
            Some(&serde_json::json!("open"))
        );
        assert_eq!(event.fields.get("serial"), Some(&serde_json::json!(293)));
        assert_eq!(
            event.field("auditd.SYSCALL.exe").as_deref(),
            Some(&serde_json::json!("/usr/libexec/postfix/pickup"))
        );
        assert_eq!(
            event.logsource,
            LogSource::new(Some("linux"), None, Some("auditd"))
        );
    }

    #[test]
    fn user_login_sets_user_source_and_outcome() {
        let event = single(
            "type=USER_LOGIN msg=audit(1492896301.818:19955): pid=12635 uid=0 auid=4294967295 ses=4294967295 msg='op=login acct=28696E76616C6964207573657229 exe=\"/usr/sbin/sshd\" hostname=? addr=179.38.151.221 terminal=sshd res=failed'",
        );
        assert_eq!(event.core.user_name.as_deref(), Some("(invalid user)"));
        assert_eq!(event.core.source_ip.as_deref(), Some("179.38.151.221"));
        assert_eq!(event.core.event_outcome.as_deref(), Some("failure"));
        assert_eq!(event.core.event_action.as_deref(), Some("USER_LOGIN"));
        assert_eq!(event.core.process_name.as_deref(), Some("sshd"));
    }

    #[test]
    fn syslog_envelope_gives_the_host() {
        let event = single("Nov  2 10:00:00 web1 audispd: type=USER_CMD msg=audit(1.2:3): pid=1 uid=0 msg='cwd=\"/\" cmd=6C73202D6C terminal=pts/0 res=success'");
        assert_eq!(event.core.host_name.as_deref(), Some("web1"));
        assert_eq!(event.core.process_command_line.as_deref(), Some("ls -l"));
        assert_eq!(
            event.fields.get("syslog.appname"),
            Some(&serde_json::json!("audispd"))
        );
    }

    #[test]
    fn not_audit_is_an_error() {
        let context = ParseContext::new("test");
        let mut event = new_event(b"hello", &context, 1);
        assert!(parse_single("hello", &context, &mut event).is_err());
    }
}
