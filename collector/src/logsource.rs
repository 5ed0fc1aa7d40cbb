//! Which Sigma logsource a record belongs to, where the parser can tell from the program name.
//!
//! The table is data, not code paths: adding a daemon is adding a row. Parsers that know more
//! (a Sysmon EventID, an access log, a FortiGate `type=event`) set the logsource themselves;
//! this table only fills it when nothing more specific did.

use crate::event::LogSource;

/// One row: program name as in the syslog tag, then product, category, service (SigmaHQ's names).
type ProgramRow = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

const PROGRAMS: &[ProgramRow] = &[
    ("sshd", Some("linux"), None, Some("sshd")),
    ("sshd-session", Some("linux"), None, Some("sshd")),
    ("sudo", Some("linux"), None, Some("sudo")),
    ("su", Some("linux"), None, Some("auth")),
    ("login", Some("linux"), None, Some("auth")),
    ("passwd", Some("linux"), None, Some("auth")),
    ("chpasswd", Some("linux"), None, Some("auth")),
    ("useradd", Some("linux"), None, Some("auth")),
    ("usermod", Some("linux"), None, Some("auth")),
    ("userdel", Some("linux"), None, Some("auth")),
    ("groupadd", Some("linux"), None, Some("auth")),
    ("groupmod", Some("linux"), None, Some("auth")),
    ("systemd-logind", Some("linux"), None, Some("auth")),
    ("cron", Some("linux"), None, Some("cron")),
    ("CRON", Some("linux"), None, Some("cron")),
    ("crond", Some("linux"), None, Some("cron")),
    ("auditd", Some("linux"), None, Some("auditd")),
    ("audispd", Some("linux"), None, Some("auditd")),
    ("audit", Some("linux"), None, Some("auditd")),
    ("vsftpd", Some("linux"), None, Some("vsftpd")),
    ("clamd", Some("linux"), None, Some("clamav")),
    ("freshclam", Some("linux"), None, Some("clamav")),
    ("guacd", Some("linux"), None, Some("guacamole")),
    ("kernel", Some("linux"), None, Some("syslog")),
    ("systemd", Some("linux"), None, Some("syslog")),
    ("rsyslogd", Some("linux"), None, Some("syslog")),
    ("filterlog", None, Some("firewall"), None),
];

/// The logsource for a syslog program name, when the table knows it.
pub fn for_program(program: &str) -> Option<LogSource> {
    PROGRAMS
        .iter()
        .find(|(name, ..)| *name == program)
        .map(|(_, product, category, service)| {
            LogSource::from_static(*product, *category, *service)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_programs() {
        assert_eq!(
            for_program("sshd"),
            Some(LogSource::new(Some("linux"), None, Some("sshd")))
        );
        assert_eq!(for_program("my-app"), None);
    }
}
