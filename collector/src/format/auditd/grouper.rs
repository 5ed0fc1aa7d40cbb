//! Puts the records of one audit event back together.
//!
//! Records of one event share `node` and the stamp `audit(seconds.millis:serial)`. auditd writes
//! them one after the other, but streams interleave (several CPUs, relays that reorder), so a
//! few events stay open at once:
//!
//! - an `EOE` record closes its event, and so does a userspace record (`USER_*`, `CRED_*`, …),
//!   which is always an event of its own;
//! - an open event that has received nothing for [`MAX_RECORD_DISTANCE`] records closes when a
//!   record of another event arrives; at most [`MAX_OPEN_EVENTS`] stay open, the oldest closes
//!   first;
//! - [`AuditGrouper::flush`] closes everything (end of the stream, or a non-audit line).
//!
//! Memory is bounded: an event that reaches [`MAX_RECORDS_PER_EVENT`] records is closed and the
//! following ones start a new event flagged `audit_group_continued`; the open events hold at
//! most [`MAX_OPEN_BYTES`] of records together (the oldest are split off first, as above). Nothing is dropped: a record
//! for an event that already closed starts a new event flagged `audit_group_late`, and a line
//! that is not an audit record becomes a `format: unknown` event, emitted in order.

use std::collections::VecDeque;

use crate::event::{Event, ParseError};
use crate::parse::{flag_cut, new_event, ParseContext};

use super::fill_event;
use super::record::{parse_record, AuditRecord};

/// How many events may be open at once.
pub const MAX_OPEN_EVENTS: usize = 16;

/// An open event that has not received a record for this many records is complete.
pub const MAX_RECORD_DISTANCE: u64 = 64;

/// Records kept in one event before it is closed and continued in another.
pub const MAX_RECORDS_PER_EVENT: usize = 256;

/// Bytes of records the open events may hold together (their raw text; their parsed copies
/// take about as much again). Without it, 16 events of 256 records of up to a frame each
/// could hold hundreds of megabytes for one connection of a sender that interleaves serials.
/// Real audit events are a few kilobytes (an `EXECVE` with long arguments some hundreds).
pub const MAX_OPEN_BYTES: usize = 1 << 20;

/// How many closed events are remembered to recognise late records.
const RECENTLY_CLOSED: usize = 64;

/// Userspace record types (auditctl, PAM, sshd, systemd, …). Each is an event of its own, so it
/// closes at once instead of waiting for the window.
const STANDALONE_PREFIXES: &[&str] = &[
    "USER_",
    "CRED_",
    "DAEMON_",
    "SERVICE_",
    "SYSTEM_",
    "ADD_USER",
    "ADD_GROUP",
    "DEL_USER",
    "DEL_GROUP",
    "GRP_",
    "ACCT_",
    "ROLE_",
    "USYS_",
    "CRYPTO_",
    "VIRT_",
    "RESP_",
    "CHGRP_ID",
    "CHUSER_ID",
    "LABEL_",
    "TRUSTED_APP",
    "ANOM_LOGIN_",
    "ANOM_ADD_ACCT",
    "ANOM_DEL_ACCT",
    "ANOM_MOD_ACCT",
    "ANOM_ROOT_TRANS",
];

/// What the grouper has done, for summaries and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditGrouperStats {
    /// Records offered.
    pub records: u64,
    /// Events emitted from audit records.
    pub events: u64,
    /// Lines that were not audit records (emitted as unknown events).
    pub unparsed_records: u64,
    /// Records that joined an open event other than the newest one (interleaved streams).
    pub out_of_order_records: u64,
    /// Records whose event had already closed; they start a new event flagged late.
    pub late_records: u64,
    /// Events closed because they reached the record limit (continued in a new event).
    pub split_events: u64,
    /// Events closed because too many were open at once.
    pub evicted_events: u64,
}

/// Names one audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EventKey {
    node: Option<String>,
    seconds: String,
    serial: u64,
}

impl EventKey {
    fn of(record: &AuditRecord) -> Self {
        EventKey {
            node: record.node.clone(),
            seconds: record.seconds.clone(),
            serial: record.serial,
        }
    }
}

#[derive(Debug)]
struct OpenEvent {
    key: EventKey,
    first_sequence: u64,
    last_record_index: u64,
    raw: Vec<u8>,
    records: Vec<AuditRecord>,
    late: bool,
    continued: bool,
    /// Bytes missing from records of this event their stream cut short (0: none was cut).
    missing_bytes: u64,
}

/// Why an event closed, remembered so a record arriving after it is classified right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    Complete,
    Split,
}

/// Groups audit records into one event per audit event (see the module docs).
#[derive(Debug, Default)]
pub struct AuditGrouper {
    open: VecDeque<OpenEvent>,
    recently_closed: VecDeque<(EventKey, Closed)>,
    record_index: u64,
    stats: AuditGrouperStats,
    /// The record of the current [`AuditGrouper::push`] is in an open event or out as an
    /// event: after a panic, the decoder need not keep it raw on its own.
    placed_current: bool,
}

impl AuditGrouper {
    /// Offers one record (its exact bytes and its text); appends the events it completes to
    /// `out`. `missing`: 0, or the bytes of the record its stream never delivered (the event
    /// that ends up holding it is flagged `frame_truncated`, see `Decoder::decode_cut`).
    pub fn push(
        &mut self,
        record: &[u8],
        text: &str,
        sequence: u64,
        missing: u64,
        context: &ParseContext,
        out: &mut Vec<Event>,
    ) {
        self.record_index += 1;
        self.stats.records += 1;
        self.placed_current = false;
        let parsed = match parse_record(text) {
            Ok(parsed) => parsed,
            Err(error) => {
                // Not an audit record: close what is open first so events stay in stream order.
                self.flush(context, out);
                self.stats.unparsed_records += 1;
                let mut event = new_event(record, context, sequence);
                event.parse_error = Some(ParseError {
                    format: "auditd".into(),
                    message: format!("not an audit record: {}", error.message),
                    offset: error.offset,
                });
                if missing > 0 {
                    flag_cut(&mut event, missing);
                }
                out.push(event);
                self.placed_current = true;
                return;
            }
        };
        let key = EventKey::of(&parsed);
        self.close_stale(&key, context, out);

        let position = match self.open.iter().position(|open| open.key == key) {
            Some(position) => {
                if position + 1 != self.open.len() {
                    self.stats.out_of_order_records += 1;
                }
                position
            }
            None => self.open_event(key, sequence, context, out),
        };
        let Some(open) = self.open.get_mut(position) else {
            return;
        };
        if !open.raw.is_empty() || !open.records.is_empty() {
            open.raw.push(b'\n');
        }
        open.raw.extend_from_slice(record);
        self.placed_current = true;
        open.missing_bytes = open.missing_bytes.saturating_add(missing);
        open.last_record_index = self.record_index;
        let record_type = parsed.record_type.clone();
        open.records.push(parsed);

        let complete =
            record_type == "EOE" || (open.records.len() == 1 && is_standalone(&record_type));
        if complete {
            self.close(position, Closed::Complete, context, out);
        } else if open.records.len() >= MAX_RECORDS_PER_EVENT {
            self.stats.split_events += 1;
            self.close(position, Closed::Split, context, out);
        }
        self.close_while_over_bytes(context, out);
    }

    /// Bytes of records the open events hold.
    pub(crate) fn open_bytes(&self) -> usize {
        self.open.iter().map(|open| open.raw.len()).sum()
    }

    /// Keeps the open events within [`MAX_OPEN_BYTES`]: the oldest are split off first, then
    /// one event over it alone; their next records start events flagged continued.
    fn close_while_over_bytes(&mut self, context: &ParseContext, out: &mut Vec<Event>) {
        while self.open_bytes() > MAX_OPEN_BYTES {
            // Closed as split, not complete: the event is live (the bound is for senders that
            // keep many open), so its next records start an event flagged continued, not late.
            if self.open.len() > 1 {
                self.stats.evicted_events += 1;
            } else {
                self.stats.split_events += 1;
            }
            self.close(0, Closed::Split, context, out);
        }
    }

    /// Closes every open event (end of the stream), oldest first.
    pub fn flush(&mut self, context: &ParseContext, out: &mut Vec<Event>) {
        while !self.open.is_empty() {
            self.close(0, Closed::Complete, context, out);
        }
    }

    /// Closes every open event before its end (the decoder gives out what it holds early):
    /// split, so that their next records start events flagged continued, not late.
    pub(crate) fn release(&mut self, context: &ParseContext, out: &mut Vec<Event>) {
        while !self.open.is_empty() {
            self.stats.split_events += 1;
            self.close(0, Closed::Split, context, out);
        }
    }

    /// True while some audit event is open (records received, event not yet handed out).
    pub fn has_open_events(&self) -> bool {
        !self.open.is_empty()
    }

    /// What the grouper has done so far.
    pub fn stats(&self) -> AuditGrouperStats {
        self.stats
    }

    /// True when the record of the last [`AuditGrouper::push`] since
    /// [`AuditGrouper::begin_record`] went into an open event or out as an event.
    pub(crate) fn placed_current(&self) -> bool {
        self.placed_current
    }

    /// A new record is being decoded (it may not come here at all).
    pub(crate) fn begin_record(&mut self) {
        self.placed_current = false;
    }

    /// The open events' bytes, first sequence numbers and missing byte counts, oldest first,
    /// closing them without parsing: what the decoder keeps raw after a parser panicked.
    pub(crate) fn take_open(&mut self) -> Vec<(Vec<u8>, u64, u64)> {
        self.open
            .drain(..)
            .map(|open| (open.raw, open.first_sequence, open.missing_bytes))
            .collect()
    }

    /// Closes open events (other than `key`'s) that have been quiet for too long.
    fn close_stale(&mut self, key: &EventKey, context: &ParseContext, out: &mut Vec<Event>) {
        let mut index = 0;
        while index < self.open.len() {
            let stale = self.open.get(index).is_some_and(|open| {
                open.key != *key && open.last_record_index + MAX_RECORD_DISTANCE < self.record_index
            });
            if stale {
                self.close(index, Closed::Complete, context, out);
            } else {
                index += 1;
            }
        }
    }

    /// Starts an event for `key`, making room first; returns its position.
    fn open_event(
        &mut self,
        key: EventKey,
        sequence: u64,
        context: &ParseContext,
        out: &mut Vec<Event>,
    ) -> usize {
        let previous = self
            .recently_closed
            .iter()
            .rev()
            .find(|(closed, _)| *closed == key)
            .map(|(_, how)| *how);
        let (late, continued) = match previous {
            Some(Closed::Split) => (false, true),
            Some(Closed::Complete) => {
                self.stats.late_records += 1;
                (true, false)
            }
            None => (false, false),
        };
        if self.open.len() >= MAX_OPEN_EVENTS {
            self.stats.evicted_events += 1;
            self.close(0, Closed::Complete, context, out);
        }
        self.open.push_back(OpenEvent {
            key,
            first_sequence: sequence,
            last_record_index: self.record_index,
            raw: Vec::new(),
            records: Vec::new(),
            late,
            continued,
            missing_bytes: 0,
        });
        self.open.len() - 1
    }

    fn close(
        &mut self,
        position: usize,
        how: Closed,
        context: &ParseContext,
        out: &mut Vec<Event>,
    ) {
        // The event is built while its records are still held: should a parser panic on them
        // (a bug), the decoder's guard finds them here and keeps them raw (`take_open`).
        let Some(open) = self.open.get(position) else {
            return;
        };
        let mut event = new_event(&open.raw, context, open.first_sequence);
        fill_event(&open.records, &mut event);
        let Some(open) = self.open.remove(position) else {
            return;
        };
        if open.late {
            event.fields.insert("audit_group_late".into(), true.into());
        }
        if open.continued {
            event
                .fields
                .insert("audit_group_continued".into(), true.into());
        }
        if open.missing_bytes > 0 {
            flag_cut(&mut event, open.missing_bytes);
        }
        if how == Closed::Split {
            event
                .fields
                .insert("audit_group_truncated".into(), true.into());
        }
        self.stats.events += 1;
        out.push(event);
        if self.recently_closed.len() >= RECENTLY_CLOSED {
            self.recently_closed.pop_front();
        }
        self.recently_closed.push_back((open.key, how));
    }
}

fn is_standalone(record_type: &str) -> bool {
    STANDALONE_PREFIXES
        .iter()
        .any(|prefix| record_type.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Format;

    fn run(lines: &[&str]) -> (Vec<Event>, AuditGrouperStats) {
        let mut grouper = AuditGrouper::default();
        let out = push_all(&mut grouper, lines, |_| {});
        (out, grouper.stats())
    }

    /// Pushes `lines` (numbered from 1) and flushes, calling `after_each` after every push.
    fn push_all<Line: AsRef<str>>(
        grouper: &mut AuditGrouper,
        lines: &[Line],
        mut after_each: impl FnMut(&AuditGrouper),
    ) -> Vec<Event> {
        let context = ParseContext::new("test");
        let mut out = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            let line = line.as_ref();
            grouper.push(
                line.as_bytes(),
                line,
                index as u64 + 1,
                0,
                &context,
                &mut out,
            );
            after_each(grouper);
        }
        grouper.flush(&context, &mut out);
        out
    }

    #[test]
    fn records_of_one_serial_become_one_event_with_exact_raw() {
        let lines = [
            "type=SYSCALL msg=audit(1.0:10): arch=c000003e syscall=59 success=yes pid=5 comm=\"ls\" exe=\"/bin/ls\"",
            "type=EXECVE msg=audit(1.0:10): argc=2 a0=\"ls\" a1=\"-l\"",
            "type=PATH msg=audit(1.0:10): item=0 name=\"/bin/ls\" nametype=NORMAL",
            "type=PATH msg=audit(1.0:10): item=1 name=\"/lib64/ld.so\" nametype=NORMAL",
            "type=EOE msg=audit(1.0:10): ",
            "type=SYSCALL msg=audit(1.1:11): arch=c000003e syscall=2 success=no",
        ];
        let (events, stats) = run(&lines);
        assert_eq!(events.len(), 2);
        let first = &events[0];
        assert_eq!(first.raw.as_deref(), Some(lines[..5].join("\n").as_str()));
        assert_eq!(first.format, Format::Auditd);
        assert_eq!(first.source.sequence, Some(1));
        assert_eq!(
            first.fields.get("type"),
            Some(&serde_json::json!(["SYSCALL", "EXECVE", "PATH"]))
        );
        assert_eq!(first.fields.get("a0"), Some(&serde_json::json!("ls")));
        assert_eq!(
            first.fields.get("name"),
            Some(&serde_json::json!(["/bin/ls", "/lib64/ld.so"]))
        );
        assert_eq!(
            first.fields.get("nametype"),
            Some(&serde_json::json!("NORMAL"))
        );
        assert_eq!(first.core.process_command_line.as_deref(), Some("ls -l"));
        assert_eq!(first.core.event_action.as_deref(), Some("execve"));
        assert_eq!(
            first
                .field("auditd.PATH")
                .and_then(|paths| paths.as_array().map(Vec::len)),
            Some(2)
        );
        assert_eq!(stats.events, 2);
    }

    #[test]
    fn interleaved_serials_are_regrouped_and_counted() {
        let lines = [
            "type=SYSCALL msg=audit(1.0:1): syscall=59",
            "type=SYSCALL msg=audit(1.0:2): syscall=59",
            "type=EXECVE msg=audit(1.0:1): argc=1 a0=\"a\"",
            "type=EXECVE msg=audit(1.0:2): argc=1 a0=\"b\"",
        ];
        let (events, stats) = run(&lines);
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].raw.as_deref(),
            Some(format!("{}\n{}", lines[0], lines[2]).as_str())
        );
        assert_eq!(stats.out_of_order_records, 1);
    }

    #[test]
    fn userspace_records_close_at_once_and_late_records_are_flagged() {
        let context = ParseContext::new("test");
        let mut grouper = AuditGrouper::default();
        let mut out = Vec::new();
        let login =
            "type=USER_LOGIN msg=audit(2.0:5): pid=1 msg='op=login acct=\"root\" res=success'";
        grouper.push(login.as_bytes(), login, 1, 0, &context, &mut out);
        assert_eq!(out.len(), 1);
        grouper.push(login.as_bytes(), login, 2, 0, &context, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1].fields.get("audit_group_late"),
            Some(&serde_json::json!(true))
        );
        assert_eq!(grouper.stats().late_records, 1);
    }

    #[test]
    fn open_events_are_bounded() {
        let lines: Vec<String> = (0..40)
            .map(|serial| format!("type=SYSCALL msg=audit(1.0:{serial}): syscall=1"))
            .collect();
        let context = ParseContext::new("test");
        let mut grouper = AuditGrouper::default();
        let mut out = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            grouper.push(line.as_bytes(), line, index as u64, 0, &context, &mut out);
            assert!(grouper.open.len() <= MAX_OPEN_EVENTS);
        }
        assert_eq!(out.len(), 40 - MAX_OPEN_EVENTS);
        grouper.flush(&context, &mut out);
        assert_eq!(out.len(), 40);
        assert_eq!(grouper.stats().evicted_events, 24);
    }

    /// Serials interleaved round-robin with long records (nothing ever goes stale): the open
    /// events stay within their byte bound, and every record comes out once, in its event.
    #[test]
    fn open_events_are_bounded_in_bytes() {
        let context = ParseContext::new("test");
        let mut grouper = AuditGrouper::default();
        let argument = "a".repeat(8_000);
        let mut lines = Vec::new();
        for round in 0..300 {
            for serial in 0..MAX_OPEN_EVENTS {
                lines.push(format!(
                    "type=EXECVE msg=audit(1.0:{serial}): argc=2 a0=\"{argument}\" a1=\"{round}\""
                ));
            }
        }
        let mut largest = 0;
        let out = push_all(&mut grouper, &lines, |grouper| {
            largest = largest.max(grouper.open_bytes());
        });
        assert!(largest <= MAX_OPEN_BYTES, "{largest}");
        let stats = grouper.stats();
        assert!(stats.evicted_events > 0);
        // The events split off were live: their next records are continued, never late.
        assert_eq!(stats.late_records, 0);
        assert!(out
            .iter()
            .any(|event| event.fields.get("audit_group_continued").is_some()));
        // Every record, once: the events' raw text split back into lines is the input.
        let mut emitted: Vec<String> = out
            .iter()
            .flat_map(|event| {
                event
                    .raw
                    .as_deref()
                    .unwrap_or_default()
                    .split('\n')
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        emitted.sort();
        lines.sort();
        assert_eq!(emitted, lines);
        // One record over the bound by itself is an event of its own, flagged continued after.
        let huge = format!(
            "type=EXECVE msg=audit(2.0:1): a0=\"{}\"",
            "b".repeat(MAX_OPEN_BYTES)
        );
        let mut out = Vec::new();
        grouper.push(huge.as_bytes(), &huge, 1, 0, &context, &mut out);
        grouper.push(huge.as_bytes(), &huge, 2, 0, &context, &mut out);
        assert_eq!(out.len(), 2);
        assert!(!grouper.has_open_events());
        assert_eq!(
            out[1].fields.get("audit_group_continued"),
            Some(&serde_json::Value::Bool(true))
        );
    }

    #[test]
    fn long_events_are_split_not_dropped() {
        let lines: Vec<String> = (0..300)
            .map(|item| format!("type=PATH msg=audit(1.0:7): item={item} name=\"/x\""))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (events, stats) = run(&refs);
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].fields.get("audit_group_truncated"),
            Some(&serde_json::json!(true))
        );
        assert_eq!(
            events[1].fields.get("audit_group_continued"),
            Some(&serde_json::json!(true))
        );
        assert_eq!(stats.split_events, 1);
        assert_eq!(stats.late_records, 0);
    }

    #[test]
    fn a_line_that_is_not_audit_becomes_unknown_in_order() {
        let lines = [
            "type=SYSCALL msg=audit(1.0:1): syscall=59",
            "hello world",
            "type=SYSCALL msg=audit(1.0:2): syscall=59",
        ];
        let (events, stats) = run(&lines);
        assert_eq!(events.len(), 3);
        assert_eq!(events[1].format, Format::Unknown);
        assert_eq!(events[1].raw.as_deref(), Some("hello world"));
        assert!(events[1]
            .parse_error
            .as_ref()
            .is_some_and(|error| error.format == "auditd"));
        assert_eq!(stats.unparsed_records, 1);
    }
}
