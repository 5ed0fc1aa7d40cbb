//! Exceptions (allow-lists): a Sigma-like condition with an owner, a reason and an expiry.
//!
//! An exception names the rule it applies to (or `*`) and a `match` map written exactly like a
//! Sigma selection (field names, modifiers, lists), which is compiled by the same Sigma engine.
//! An alert whose triggering event matches is not raised, and the exception's hit counter goes
//! up: exceptions are applied and counted, never silent. Expired exceptions are not applied;
//! loading says which ones expired.
//!
//! ```yaml
//! - id: exc-backup-rsync
//!   rule: 5c1e1b6e-...            # rule id, YARA rule, `intel:<list>`, or `*`
//!   owner: tran.thi.b@soc.hcm
//!   reason: nightly backup logs in as root from the backup server
//!   expires: 2027-06-30           # date or RFC 3339 time, UTC
//!   match:
//!     source.ip|cidr: 10.20.0.0/24
//!     user.name: root
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use citysoc_collector::Event;
use rsigma_eval::Engine;
use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::error::DetectError;
use crate::sigma::view::SigmaEventView;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionFile {
    id: String,
    rule: String,
    owner: String,
    reason: String,
    expires: String,
    #[serde(rename = "match")]
    condition: yaml_serde::Value,
}

/// One loaded exception.
#[derive(Debug, Clone, Serialize)]
pub struct ExceptionInfo {
    /// Its id.
    pub id: String,
    /// The rule it silences (`*` for all).
    pub rule: String,
    /// Who asked for it.
    pub owner: String,
    /// Why.
    pub reason: String,
    /// When it stops applying.
    pub expires: DateTime<Utc>,
    /// The file it came from.
    pub path: PathBuf,
}

/// A loaded exception set and its counters.
pub struct Exceptions {
    entries: Vec<(ExceptionInfo, Engine)>,
    hits: HashMap<String, u64>,
    /// Exceptions that had expired when loaded (not applied).
    expired: Vec<ExceptionInfo>,
}

impl std::fmt::Debug for Exceptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Exceptions")
            .field("active", &self.entries.len())
            .field("expired", &self.expired.len())
            .field("hits", &self.hits)
            .finish()
    }
}

fn parse_expiry(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(23, 59, 59)
        .map(|time| time.and_utc())
}

impl Exceptions {
    /// No exceptions.
    pub fn none() -> Self {
        Exceptions {
            entries: Vec::new(),
            hits: HashMap::new(),
            expired: Vec::new(),
        }
    }

    /// Loads every `.yml`/`.yaml` file in `directory` (missing directory: none), applying those
    /// not expired at `now`. A malformed exception fails the load with its file and id: an
    /// allow-list that silently does not apply is worse than none.
    pub fn load_dir(directory: &Path, now: DateTime<Utc>) -> Result<Self, DetectError> {
        let mut exceptions = Exceptions::none();
        if !directory.exists() {
            return Ok(exceptions);
        }
        let mut paths = crate::sigma::rule_files(&[directory.to_owned()])?;
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| DetectError::Read {
                path: path.clone(),
                source,
            })?;
            exceptions.add_yaml(&text, &path, now)?;
        }
        Ok(exceptions)
    }

    /// Adds the exceptions of one YAML document (a list).
    pub fn add_yaml(
        &mut self,
        text: &str,
        path: &Path,
        now: DateTime<Utc>,
    ) -> Result<(), DetectError> {
        let invalid = |reason: String| DetectError::InvalidFile {
            path: path.to_owned(),
            reason,
        };
        let files: Vec<ExceptionFile> =
            yaml_serde::from_str(text).map_err(|error| invalid(error.to_string()))?;
        for file in files {
            let expires = parse_expiry(&file.expires).ok_or_else(|| {
                invalid(format!(
                    "exception `{}`: `expires` must be a date (YYYY-MM-DD) or an RFC 3339 time",
                    file.id
                ))
            })?;
            if file.owner.trim().is_empty() || file.reason.trim().is_empty() {
                return Err(invalid(format!(
                    "exception `{}` needs an owner and a reason",
                    file.id
                )));
            }
            let selection = yaml_serde::to_string(&file.condition)
                .map_err(|error| invalid(error.to_string()))?;
            let indented: String = selection
                .lines()
                .map(|line| format!("    {line}\n"))
                .collect();
            let rule_yaml = format!(
                "title: exception {id}\nid: exception-{id}\nlogsource: {{}}\ndetection:\n  selection:\n{indented}  condition: selection\n",
                id = file.id
            );
            let collection = rsigma_parser::parse_sigma_yaml(&rule_yaml)
                .map_err(|error| invalid(format!("exception `{}`: {error}", file.id)))?;
            if let Some(problem) = collection.errors.first() {
                return Err(invalid(format!("exception `{}`: {problem}", file.id)));
            }
            let mut engine = Engine::new();
            engine
                .add_collection(&collection)
                .map_err(|error| invalid(format!("exception `{}`: {error}", file.id)))?;
            let info = ExceptionInfo {
                id: file.id,
                rule: file.rule,
                owner: file.owner,
                reason: file.reason,
                expires,
                path: path.to_owned(),
            };
            if expires < now {
                self.expired.push(info);
            } else {
                self.entries.push((info, engine));
            }
        }
        Ok(())
    }

    /// The exception that silences `alert` raised by `event`, if any; its hit is counted.
    pub fn silencing(&mut self, alert: &Alert, event: &Event) -> Option<&ExceptionInfo> {
        let view = SigmaEventView::new(event, None);
        let position = self.entries.iter().position(|(info, engine)| {
            (info.rule == "*" || info.rule == alert.rule_id)
                && event.timestamp <= info.expires
                && !engine.evaluate(&view).is_empty()
        })?;
        let info = &self.entries[position].0;
        *self.hits.entry(info.id.clone()).or_default() += 1;
        Some(info)
    }

    /// Hits per exception id.
    pub fn hits(&self) -> &HashMap<String, u64> {
        &self.hits
    }

    /// Exceptions applied.
    pub fn active(&self) -> impl Iterator<Item = &ExceptionInfo> {
        self.entries.iter().map(|(info, _)| info)
    }

    /// Exceptions that had expired when loaded.
    pub fn expired(&self) -> &[ExceptionInfo] {
        &self.expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertKind, Level};
    use citysoc_collector::{parse_record, InputFormat, ParseContext};

    fn sshd(user: &str, address: &str) -> Event {
        let line = format!("<38>Nov 22 08:20:01 host sshd[1]: Accepted password for {user} from {address} port 4 ssh2");
        parse_record(
            line.as_bytes(),
            InputFormat::Auto,
            &ParseContext::new("test"),
            1,
        )
    }

    const YAML: &str = "- id: exc-backup\n  rule: root-login\n  owner: tran.thi.b\n  reason: nightly backup\n  expires: 2999-01-01\n  match:\n    source.ip|cidr: 10.20.0.0/24\n    user.name: root\n- id: exc-old\n  rule: '*'\n  owner: a\n  reason: b\n  expires: 2001-01-01\n  match:\n    user.name: root\n";

    #[test]
    fn exceptions_apply_to_their_rule_and_are_counted() {
        let mut exceptions = Exceptions::none();
        exceptions
            .add_yaml(YAML, Path::new("exc.yml"), Utc::now())
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(exceptions.expired().len(), 1);
        let backup = sshd("root", "10.20.0.7");
        let alert = Alert::for_event(
            AlertKind::Sigma,
            "root-login",
            "Root login",
            Level::High,
            vec![],
            &backup,
        );
        assert_eq!(
            exceptions
                .silencing(&alert, &backup)
                .map(|info| info.id.clone())
                .as_deref(),
            Some("exc-backup")
        );
        let attacker = sshd("root", "203.0.113.9");
        let alert = Alert::for_event(
            AlertKind::Sigma,
            "root-login",
            "Root login",
            Level::High,
            vec![],
            &attacker,
        );
        assert!(exceptions.silencing(&alert, &attacker).is_none());
        let other_rule = Alert::for_event(
            AlertKind::Sigma,
            "other",
            "Other",
            Level::High,
            vec![],
            &backup,
        );
        assert!(exceptions.silencing(&other_rule, &backup).is_none());
        assert_eq!(exceptions.hits().get("exc-backup"), Some(&1));
    }

    #[test]
    fn malformed_exceptions_fail_loudly() {
        let mut exceptions = Exceptions::none();
        let no_owner = "- id: x\n  rule: r\n  owner: ''\n  reason: b\n  expires: 2999-01-01\n  match: {a: b}\n";
        assert!(exceptions
            .add_yaml(no_owner, Path::new("e.yml"), Utc::now())
            .is_err());
        let bad_date =
            "- id: x\n  rule: r\n  owner: a\n  reason: b\n  expires: soon\n  match: {a: b}\n";
        assert!(exceptions
            .add_yaml(bad_date, Path::new("e.yml"), Utc::now())
            .is_err());
    }
}
