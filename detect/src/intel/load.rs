//! Reading indicator lists: CSV and MISP's JSON export. Pure text in, indicators and problems
//! out; the store does the file I/O.
//!
//! Each file is one list, named by its file stem (`rules/intel/city-blocklist.csv` is the list
//! `city-blocklist`, alerts say `intel:city-blocklist`). A MISP file keeps the event's `info` on
//! each indicator as its context instead of naming the list after it: event titles are long
//! free text and change, rule ids should not.
//!
//! A malformed row never stops a load: it becomes a [`LoadProblem`] naming the file, the line
//! (CSV) or the JSON path (MISP) and the reason, and the other rows load.
//!
//! ## CSV
//!
//! ```text
//! # level: high                      optional list defaults in leading comment lines:
//! # tags: attack.command_and_control; tlp:amber    level, tags (`;`-separated), description
//! type,value,level,description,tags,expires
//! cidr,203.0.113.0/24,critical,Scanner network seen in 2026,attack.t1595,2027-06-30
//! domain,evil.example,,,,
//! ```
//!
//! The header needs `type` and `value`; `level`, `description` (or `comment`), `tags`
//! (`;`-separated; `attribute_tag` is read too), `expires` (RFC 3339 time, or a date meaning the
//! end of that day in UTC) and `to_ids` are optional, other columns are ignored, so MISP's own
//! CSV export loads as is. Fields may be quoted the RFC 4180 way (`"a,b"`, `""` for a quote).
//!
//! ## Types
//!
//! `ip`, `cidr` (an `ip` with `/len` is a network too), `domain`, `url`, `md5`, `sha1`,
//! `sha256`, `sha512`, `hash` (length decides), and MISP's names: `ip-src`, `ip-dst`,
//! `ip-src|port`, `ip-dst|port`, `hostname`, `hostname|port`, `domain|ip` (both halves),
//! `filename|md5`/`|sha1`/`|sha256`/`|sha512`, `malware-sample`. Other MISP types (`email-src`,
//! `regkey`, `text`, …) are skipped and counted, not reported: MISP events are full of them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::alert::Level;
use crate::intel::indicator::{parse_value, Indicator, IndicatorType, MatchKey, ValueKind};

/// How lists are read.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Load only MISP attributes (and CSV rows with a `to_ids` column) flagged `to_ids`, the
    /// ones their author meant for detection. On by default.
    pub to_ids_only: bool,
    /// The level of indicators whose list says none.
    pub default_level: Level,
    /// The time expiry is judged against; `None` is the wall clock at load time.
    pub now: Option<DateTime<Utc>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            to_ids_only: true,
            default_level: Level::High,
            now: None,
        }
    }
}

/// A row or file that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadProblem {
    /// The list file.
    pub path: PathBuf,
    /// Where in it: `line 7`, `Event.Attribute[3]`; `None` for the whole file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(
                formatter,
                "{}: {location}: {}",
                self.path.display(),
                self.reason
            ),
            None => write!(formatter, "{}: {}", self.path.display(), self.reason),
        }
    }
}

/// Counts of what a load left out on purpose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SkipCounts {
    /// Indicators whose `expires` had passed.
    pub expired: usize,
    /// MISP attributes (or CSV rows) not flagged `to_ids`, or deleted.
    pub not_to_ids: usize,
    /// MISP attribute types we do not match on (`email-src`, `regkey`, …).
    pub unsupported_type: usize,
    /// The same indicator twice in one list (the first is kept).
    pub duplicate: usize,
}

impl SkipCounts {
    pub(crate) fn add(&mut self, other: SkipCounts) {
        self.expired += other.expired;
        self.not_to_ids += other.not_to_ids;
        self.unsupported_type += other.unsupported_type;
        self.duplicate += other.duplicate;
    }
}

/// One list as read from its file.
#[derive(Debug, Clone, Default)]
pub struct ParsedList {
    /// The indicators with their keys, in file order.
    pub(crate) entries: Vec<(Indicator, MatchKey)>,
    /// Rows that could not be read.
    pub problems: Vec<LoadProblem>,
    /// What was left out on purpose.
    pub skipped: SkipCounts,
}

impl ParsedList {
    /// The indicators, in file order.
    pub fn indicators(&self) -> impl Iterator<Item = &Indicator> {
        self.entries.iter().map(|(indicator, _)| indicator)
    }
}

/// The list name of a file: its stem.
pub fn list_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |stem| stem.to_string_lossy().into_owned(),
    )
}

/// Reads one list file's text, choosing CSV or MISP JSON by the extension (`.json` is MISP;
/// anything else is CSV).
pub fn parse_list(path: &Path, text: &str, options: &LoadOptions) -> ParsedList {
    let is_json = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
    let mut builder = ListBuilder::new(path, options);
    if is_json {
        parse_misp(text, &mut builder);
    } else {
        parse_csv(text, &mut builder);
    }
    builder.list
}

/// Collects indicators and problems for one file.
struct ListBuilder<'a> {
    path: &'a Path,
    name: Arc<str>,
    options: &'a LoadOptions,
    now: DateTime<Utc>,
    list: ParsedList,
}

/// What a row says besides its type and value.
#[derive(Default)]
struct RowExtras {
    level: Option<Level>,
    tags: Vec<String>,
    description: Option<String>,
    context: Option<String>,
    expires: Option<DateTime<Utc>>,
}

impl<'a> ListBuilder<'a> {
    fn new(path: &'a Path, options: &'a LoadOptions) -> Self {
        ListBuilder {
            path,
            name: Arc::from(list_name(path)),
            options,
            now: options.now.unwrap_or_else(Utc::now),
            list: ParsedList::default(),
        }
    }

    fn problem(&mut self, location: Option<String>, reason: impl Into<String>) {
        self.list.problems.push(LoadProblem {
            path: self.path.to_path_buf(),
            location,
            reason: reason.into(),
        });
    }

    /// Adds the indicators of one row (`domain|ip` gives two), or records why it cannot.
    fn add_row(&mut self, location: String, type_name: &str, value: &str, extras: RowExtras) {
        let kinds = match classify_type(type_name) {
            TypeClass::Supported(kinds) => kinds,
            TypeClass::Unsupported => {
                self.list.skipped.unsupported_type += 1;
                return;
            }
            TypeClass::Unknown => {
                self.problem(
                    Some(location),
                    format!("unknown indicator type `{type_name}`"),
                );
                return;
            }
        };
        if extras.expires.is_some_and(|expires| expires <= self.now) {
            self.list.skipped.expired += 1;
            return;
        }
        let parts = split_composite(type_name, value, kinds.len());
        for (kind, part) in kinds.iter().zip(parts) {
            let Some(part) = part else {
                self.problem(
                    Some(location.clone()),
                    format!(
                        "`{value}` should have {} `|`-separated parts for type `{type_name}`",
                        kinds.len() + usize::from(is_filename_composite(type_name))
                    ),
                );
                continue;
            };
            match parse_value(*kind, part) {
                Ok(parsed) => {
                    let indicator = Indicator {
                        list: Arc::clone(&self.name),
                        indicator_type: parsed.indicator_type,
                        value: parsed.display,
                        level: extras.level.unwrap_or(self.options.default_level),
                        tags: extras.tags.clone(),
                        description: extras.description.clone(),
                        context: extras.context.clone(),
                        expires: extras.expires,
                        location: location.clone(),
                    };
                    self.list.entries.push((indicator, parsed.key));
                }
                Err(reason) => self.problem(
                    Some(location.clone()),
                    format!("{reason} (type `{type_name}`)"),
                ),
            }
        }
    }
}

/// How a list's type name is read.
enum TypeClass {
    /// Matched on: one value kind per `|`-separated part that carries an indicator.
    Supported(&'static [ValueKind]),
    /// A MISP type we know and do not match on.
    Unsupported,
    /// Not a type we know.
    Unknown,
}

fn classify_type(name: &str) -> TypeClass {
    const NETWORK: &[ValueKind] = &[ValueKind::Network];
    const DOMAIN: &[ValueKind] = &[ValueKind::Domain];
    const URL: &[ValueKind] = &[ValueKind::Url];
    const DOMAIN_AND_IP: &[ValueKind] = &[ValueKind::Domain, ValueKind::Network];
    const ANY_HASH: &[ValueKind] = &[ValueKind::Hash(None)];
    const MD5: &[ValueKind] = &[ValueKind::Hash(Some(IndicatorType::Md5))];
    const SHA1: &[ValueKind] = &[ValueKind::Hash(Some(IndicatorType::Sha1))];
    const SHA256: &[ValueKind] = &[ValueKind::Hash(Some(IndicatorType::Sha256))];
    const SHA512: &[ValueKind] = &[ValueKind::Hash(Some(IndicatorType::Sha512))];
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "ip" | "ipv4" | "ipv6" | "ip-src" | "ip-dst" | "ip-src|port" | "ip-dst|port" | "cidr"
        | "network" => TypeClass::Supported(NETWORK),
        "domain" | "hostname" | "fqdn" | "host" | "hostname|port" => TypeClass::Supported(DOMAIN),
        "domain|ip" => TypeClass::Supported(DOMAIN_AND_IP),
        "url" => TypeClass::Supported(URL),
        "hash" => TypeClass::Supported(ANY_HASH),
        "md5" | "filename|md5" | "malware-sample" => TypeClass::Supported(MD5),
        "sha1" | "filename|sha1" => TypeClass::Supported(SHA1),
        "sha256" | "filename|sha256" => TypeClass::Supported(SHA256),
        "sha512" | "filename|sha512" => TypeClass::Supported(SHA512),
        other if is_known_misp_type(other) => TypeClass::Unsupported,
        _ => TypeClass::Unknown,
    }
}

/// Common MISP attribute types we do not match on; a list exported from MISP is full of them,
/// and reporting each would bury the real problems.
fn is_known_misp_type(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "email",
        "filename",
        "regkey",
        "x509-",
        "whois-",
        "pattern-in-",
        "ja3",
        "jarm",
        "ssdeep",
        "imphash",
        "tlsh",
        "authentihash",
        "impfuzzy",
        "pehash",
        "sha224",
        "sha384",
        "sha3-",
        "sha512/",
        "cdhash",
        "vhash",
        "telfhash",
    ];
    const NAMES: &[&str] = &[
        "text",
        "comment",
        "other",
        "link",
        "uri",
        "user-agent",
        "vulnerability",
        "weakness",
        "as",
        "port",
        "yara",
        "snort",
        "sigma",
        "mutex",
        "named pipe",
        "attachment",
        "btc",
        "xmr",
        "phone-number",
        "threat-actor",
        "campaign-name",
        "campaign-id",
        "size-in-bytes",
        "counter",
        "datetime",
        "float",
        "hex",
        "http-method",
        "mac-address",
        "mac-eui-64",
        "target-user",
        "target-email",
        "target-machine",
        "target-org",
        "target-location",
        "target-external",
        "windows-service-name",
        "windows-service-displayname",
        "windows-scheduled-task",
        "process-state",
        "cookie",
        "hassh-md5",
        "hasshserver-md5",
        "stix2-pattern",
        "zeek",
        "bro",
        "community-id",
        "dns-soa-email",
        "mime-type",
        "full-name",
        "first-name",
        "last-name",
        "anonymised",
        "cpe",
        "github-username",
        "github-repository",
        "github-organisation",
    ];
    PREFIXES.iter().any(|prefix| name.starts_with(prefix)) || NAMES.contains(&name)
}

fn is_filename_composite(type_name: &str) -> bool {
    type_name
        .trim()
        .to_ascii_lowercase()
        .starts_with("filename|")
        || type_name.trim().eq_ignore_ascii_case("malware-sample")
}

/// The parts of a value that carry indicators, one per value kind: `filename|hash` keeps the
/// hash, `ip-dst|port` and `hostname|port` keep the address or host, `domain|ip` keeps both.
/// A `None` part means the value did not have the `|` the type promises.
fn split_composite<'v>(type_name: &str, value: &'v str, parts: usize) -> Vec<Option<&'v str>> {
    let type_name = type_name.trim().to_ascii_lowercase();
    if is_filename_composite(&type_name) {
        return vec![value.rsplit_once('|').map(|(_, hash)| hash)];
    }
    if type_name.ends_with("|port") {
        return vec![Some(value.split_once('|').map_or(value, |(host, _)| host))];
    }
    if parts == 2 {
        let (first, second) = match value.split_once('|') {
            Some((first, second)) => (Some(first), Some(second)),
            None => (None, None),
        };
        return vec![first, second];
    }
    vec![Some(value)]
}

// ---------------------------------------------------------------------------------------------
// CSV

/// One CSV record and the line it starts on.
struct CsvRecord<'t> {
    line: usize,
    fields: Vec<std::borrow::Cow<'t, str>>,
}

/// Records, leading comment lines and syntax problems (each with its line number).
type CsvSplit<'t> = (
    Vec<CsvRecord<'t>>,
    Vec<(usize, &'t str)>,
    Vec<(usize, String)>,
);

/// Splits CSV text into records, RFC 4180 style: quoted fields may hold commas, doubled quotes
/// and line breaks. Lines starting with `#` outside a record are comments, blank lines are
/// skipped. Also returns the leading comment lines (list defaults) and problems (an
/// unterminated quote, a quote inside an unquoted field).
fn csv_records(text: &str) -> CsvSplit<'_> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut comments = Vec::new();
    let mut problems = Vec::new();
    let mut rest = text;
    let mut line = 1usize;
    while !rest.is_empty() {
        let line_end = rest.find('\n').map_or(rest.len(), |at| at + 1);
        let (current_line, _) = rest.split_at(line_end);
        let trimmed = current_line.trim();
        if trimmed.is_empty() {
            rest = &rest[line_end..];
            line += 1;
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if records.is_empty() {
                comments.push((line, comment.trim()));
            }
            rest = &rest[line_end..];
            line += 1;
            continue;
        }
        let start_line = line;
        match csv_record(rest) {
            Ok((fields, consumed)) => {
                line += rest[..consumed].matches('\n').count();
                rest = &rest[consumed..];
                records.push(CsvRecord {
                    line: start_line,
                    fields,
                });
            }
            Err(reason) => {
                problems.push((start_line, reason));
                rest = &rest[line_end..];
                line += 1;
            }
        }
    }
    (records, comments, problems)
}

/// Reads one record from the start of `text`; returns its fields and how many bytes it used
/// (through its line break).
fn csv_record(text: &str) -> Result<(Vec<std::borrow::Cow<'_, str>>, usize), String> {
    let mut fields = Vec::new();
    let mut position = 0usize;
    loop {
        let rest = &text[position..];
        if let Some(quoted) = rest.strip_prefix('"') {
            let (value, used) =
                quoted_field(quoted).ok_or_else(|| "unterminated quoted field".to_owned())?;
            fields.push(value);
            position += 1 + used;
            let after = &text[position..];
            let after_trimmed = after.trim_start_matches([' ', '\t']);
            position += after.len() - after_trimmed.len();
            match after_trimmed.as_bytes().first() {
                Some(b',') => position += 1,
                Some(b'\r') | Some(b'\n') | None => {
                    return Ok((fields, end_of_line(text, position)))
                }
                Some(_) => {
                    return Err(
                        "text after a closing quote (a quote inside a field must be doubled)"
                            .to_owned(),
                    )
                }
            }
        } else {
            let end = rest.find([',', '\n']).unwrap_or(rest.len());
            let raw = rest[..end].trim_end_matches('\r');
            if raw.contains('"') {
                return Err("a quote inside an unquoted field (quote the whole field)".to_owned());
            }
            fields.push(std::borrow::Cow::Borrowed(raw));
            position += end;
            match text.as_bytes().get(position) {
                Some(b',') => position += 1,
                _ => return Ok((fields, end_of_line(text, position))),
            }
        }
    }
}

/// The field inside quotes (text after the opening quote): value and bytes used through the
/// closing quote.
fn quoted_field(text: &str) -> Option<(std::borrow::Cow<'_, str>, usize)> {
    let mut value: Option<String> = None;
    let mut start = 0usize;
    loop {
        let at = start + text[start..].find('"')?;
        if text.as_bytes().get(at + 1) == Some(&b'"') {
            value
                .get_or_insert_with(String::new)
                .push_str(&text[start..=at]);
            start = at + 2;
            continue;
        }
        let result = match value {
            Some(mut owned) => {
                owned.push_str(&text[start..at]);
                std::borrow::Cow::Owned(owned)
            }
            None => std::borrow::Cow::Borrowed(&text[..at]),
        };
        return Some((result, at + 1));
    }
}

/// The byte after the line break at or after `position` (or the end).
fn end_of_line(text: &str, position: usize) -> usize {
    text[position..]
        .find('\n')
        .map_or(text.len(), |at| position + at + 1)
}

/// The columns a CSV header names.
struct CsvColumns {
    count: usize,
    type_column: usize,
    value_column: usize,
    level: Option<usize>,
    description: Option<usize>,
    tags: Option<usize>,
    expires: Option<usize>,
    to_ids: Option<usize>,
}

impl CsvColumns {
    fn from_header(fields: &[std::borrow::Cow<'_, str>]) -> Result<Self, String> {
        let find = |names: &[&str]| {
            fields.iter().position(|field| {
                names
                    .iter()
                    .any(|name| field.trim().eq_ignore_ascii_case(name))
            })
        };
        let type_column = find(&["type"]);
        let value_column = find(&["value"]);
        let (Some(type_column), Some(value_column)) = (type_column, value_column) else {
            let header = fields.join(",");
            return Err(format!(
                "the header `{header}` needs `type` and `value` columns"
            ));
        };
        Ok(CsvColumns {
            count: fields.len(),
            type_column,
            value_column,
            level: find(&["level"]),
            description: find(&["description", "comment"]),
            tags: find(&["tags", "tag", "attribute_tag"]),
            expires: find(&["expires", "expiration", "valid_until"]),
            to_ids: find(&["to_ids"]),
        })
    }
}

/// List defaults from the comment lines before the header.
#[derive(Default)]
struct CsvDefaults {
    level: Option<Level>,
    tags: Vec<String>,
    description: Option<String>,
}

fn parse_csv(text: &str, builder: &mut ListBuilder<'_>) {
    let (records, comments, syntax_problems) = csv_records(text);
    for (line, reason) in syntax_problems {
        builder.problem(Some(format!("line {line}")), reason);
    }
    let defaults = csv_defaults(&comments, builder);
    let mut records = records.into_iter();
    let Some(header) = records.next() else {
        builder.problem(None, "no header row (`type,value,…`)");
        return;
    };
    let columns = match CsvColumns::from_header(&header.fields) {
        Ok(columns) => columns,
        Err(reason) => {
            builder.problem(Some(format!("line {}", header.line)), reason);
            return;
        }
    };
    for record in records {
        csv_row(&record, &columns, &defaults, builder);
    }
    // Syntax problems were found in a first pass; report everything in file order.
    builder
        .list
        .problems
        .sort_by_key(|problem| problem.location.as_deref().and_then(line_number));
}

/// The number in a `line N` location.
fn line_number(location: &str) -> Option<usize> {
    location.strip_prefix("line ")?.parse().ok()
}

fn csv_defaults(comments: &[(usize, &str)], builder: &mut ListBuilder<'_>) -> CsvDefaults {
    let mut defaults = CsvDefaults::default();
    for (line, comment) in comments {
        let Some((key, value)) = comment.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "level" => match parse_level(value) {
                Some(level) => defaults.level = Some(level),
                None => builder.problem(
                    Some(format!("line {line}")),
                    format!("unknown level `{value}`"),
                ),
            },
            "tags" => defaults.tags = split_tags(value),
            "description" => defaults.description = Some(value.to_owned()),
            _ => {}
        }
    }
    defaults
}

fn csv_row(
    record: &CsvRecord<'_>,
    columns: &CsvColumns,
    defaults: &CsvDefaults,
    builder: &mut ListBuilder<'_>,
) {
    let location = format!("line {}", record.line);
    if record.fields.len() != columns.count {
        builder.problem(
            Some(location),
            format!(
                "{} fields where the header has {} (quote values that contain commas)",
                record.fields.len(),
                columns.count
            ),
        );
        return;
    }
    let cell = |column: Option<usize>| {
        column
            .and_then(|column| record.fields.get(column))
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    };
    let (Some(type_name), value) = (
        cell(Some(columns.type_column)),
        cell(Some(columns.value_column)).unwrap_or(""),
    ) else {
        builder.problem(Some(location), "empty type");
        return;
    };
    if builder.options.to_ids_only && cell(columns.to_ids).is_some_and(|flag| !is_true(flag)) {
        builder.list.skipped.not_to_ids += 1;
        return;
    }
    let level = match cell(columns.level) {
        Some(text) => match parse_level(text) {
            Some(level) => Some(level),
            None => {
                builder.problem(
                    Some(location),
                    format!("unknown level `{text}` (informational, low, medium, high, critical)"),
                );
                return;
            }
        },
        None => defaults.level,
    };
    let expires = match cell(columns.expires) {
        Some(text) => match parse_expiry(text) {
            Some(time) => Some(time),
            None => {
                builder.problem(
                    Some(location),
                    format!("`{text}` is not an expiry time (RFC 3339 or YYYY-MM-DD)"),
                );
                return;
            }
        },
        None => None,
    };
    let mut tags = defaults.tags.clone();
    tags.extend(cell(columns.tags).map(split_tags).unwrap_or_default());
    let extras = RowExtras {
        level,
        tags,
        description: cell(columns.description)
            .map(str::to_owned)
            .or_else(|| defaults.description.clone()),
        context: None,
        expires,
    };
    builder.add_row(location, type_name, value, extras);
}

/// Sigma's level names (and `info`); `None` for anything else.
fn parse_level(text: &str) -> Option<Level> {
    match text.trim().to_ascii_lowercase().as_str() {
        "informational" | "info" => Some(Level::Informational),
        "low" => Some(Level::Low),
        "medium" => Some(Level::Medium),
        "high" => Some(Level::High),
        "critical" => Some(Level::Critical),
        _ => None,
    }
}

fn split_tags(text: &str) -> Vec<String> {
    text.split(';')
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_true(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "y"
    )
}

/// RFC 3339, or `YYYY-MM-DD` meaning the end of that day (UTC): a list that says "expires
/// 2026-12-31" means the indicator still holds on that day.
fn parse_expiry(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let next_day = date.succ_opt()?;
    Some(next_day.and_hms_opt(0, 0, 0)?.and_utc())
}

// ---------------------------------------------------------------------------------------------
// MISP JSON

/// Reads MISP's JSON export: `{"Event": {…}}`, `{"response": [{"Event": {…}}, …]}`, a bare
/// array of those, or a bare event object.
fn parse_misp(text: &str, builder: &mut ListBuilder<'_>) {
    let document: Value = match serde_json::from_str(text.strip_prefix('\u{feff}').unwrap_or(text))
    {
        Ok(document) => document,
        Err(error) => {
            builder.problem(
                Some(format!("line {}, column {}", error.line(), error.column())),
                format!("not valid JSON: {error}"),
            );
            return;
        }
    };
    let events = misp_events(&document);
    if events.is_empty() {
        builder.problem(None, "no MISP event found (expecting `{\"Event\": …}` or `{\"response\": [{\"Event\": …}]}`)");
    }
    for (path, event) in events {
        misp_event(&path, event, builder);
    }
}

/// The events of a document, each with its JSON path.
fn misp_events(document: &Value) -> Vec<(String, &serde_json::Map<String, Value>)> {
    match document {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| wrapped_event(item, format!("[{index}].")))
            .collect(),
        Value::Object(object) => match object.get("response") {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(index, item)| wrapped_event(item, format!("response[{index}].")))
                .collect(),
            Some(item @ Value::Object(_)) => wrapped_event(item, "response.".to_owned())
                .into_iter()
                .collect(),
            _ => wrapped_event(document, String::new()).into_iter().collect(),
        },
        _ => Vec::new(),
    }
}

/// `{"Event": {…}}`, or an event object itself (it has attributes or objects).
fn wrapped_event(
    item: &Value,
    prefix: String,
) -> Option<(String, &serde_json::Map<String, Value>)> {
    if let Some(event) = item.get("Event").and_then(Value::as_object) {
        return Some((format!("{prefix}Event"), event));
    }
    let object = item.as_object()?;
    let looks_like_event = object.contains_key("Attribute") || object.contains_key("Object");
    looks_like_event.then(|| (prefix.trim_end_matches('.').to_owned(), object))
}

/// What an event gives every attribute in it.
struct MispEventDefaults {
    level: Option<Level>,
    tags: Vec<String>,
    context: Option<String>,
}

fn misp_event(path: &str, event: &serde_json::Map<String, Value>, builder: &mut ListBuilder<'_>) {
    let path = if path.is_empty() { "Event" } else { path };
    let defaults = MispEventDefaults {
        level: event.get("threat_level_id").and_then(misp_threat_level),
        tags: misp_tags(event.get("Tag")),
        context: misp_context(event),
    };
    if let Some(attributes) = event.get("Attribute") {
        misp_attributes(&format!("{path}.Attribute"), attributes, &defaults, builder);
    }
    if let Some(objects) = event.get("Object").and_then(Value::as_array) {
        for (index, object) in objects.iter().enumerate() {
            if let Some(attributes) = object.get("Attribute") {
                misp_attributes(
                    &format!("{path}.Object[{index}].Attribute"),
                    attributes,
                    &defaults,
                    builder,
                );
            }
        }
    }
}

/// `info`, with the event id or uuid when there is one: what an analyst searches MISP for.
fn misp_context(event: &serde_json::Map<String, Value>) -> Option<String> {
    let info = event
        .get("info")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|info| !info.is_empty());
    let id = event
        .get("id")
        .and_then(|id| {
            id.as_str()
                .map(str::to_owned)
                .or_else(|| id.as_u64().map(|id| id.to_string()))
        })
        .or_else(|| event.get("uuid").and_then(Value::as_str).map(str::to_owned));
    match (info, id) {
        (Some(info), Some(id)) => Some(format!("MISP event {id}: {info}")),
        (Some(info), None) => Some(format!("MISP event: {info}")),
        (None, Some(id)) => Some(format!("MISP event {id}")),
        (None, None) => None,
    }
}

/// MISP's threat levels: 1 high, 2 medium, 3 low, 4 undefined (the list default).
fn misp_threat_level(value: &Value) -> Option<Level> {
    let number = value
        .as_u64()
        .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))?;
    match number {
        1 => Some(Level::High),
        2 => Some(Level::Medium),
        3 => Some(Level::Low),
        _ => None,
    }
}

fn misp_tags(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|tag| {
                    tag.get("name")
                        .and_then(Value::as_str)
                        .or_else(|| tag.as_str())
                })
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn misp_attributes(
    path: &str,
    attributes: &Value,
    defaults: &MispEventDefaults,
    builder: &mut ListBuilder<'_>,
) {
    let Some(attributes) = attributes.as_array() else {
        builder.problem(Some(path.to_owned()), "expecting an array of attributes");
        return;
    };
    for (index, attribute) in attributes.iter().enumerate() {
        misp_attribute(format!("{path}[{index}]"), attribute, defaults, builder);
    }
}

fn misp_attribute(
    location: String,
    attribute: &Value,
    defaults: &MispEventDefaults,
    builder: &mut ListBuilder<'_>,
) {
    let type_name = attribute.get("type").and_then(Value::as_str);
    let value = attribute.get("value").and_then(Value::as_str);
    let (Some(type_name), Some(value)) = (type_name, value) else {
        builder.problem(
            Some(location),
            "an attribute needs string `type` and `value`",
        );
        return;
    };
    let deleted = attribute.get("deleted").is_some_and(misp_flag);
    let to_ids = attribute.get("to_ids").is_some_and(misp_flag);
    if deleted || (builder.options.to_ids_only && !to_ids) {
        builder.list.skipped.not_to_ids += 1;
        return;
    }
    let mut tags = defaults.tags.clone();
    tags.extend(misp_tags(attribute.get("Tag")));
    let extras = RowExtras {
        level: defaults.level,
        tags,
        description: attribute
            .get("comment")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|comment| !comment.is_empty())
            .map(str::to_owned),
        context: defaults.context.clone(),
        expires: None,
    };
    builder.add_row(location, type_name, value, extras);
}

/// MISP writes flags as `true`, `1` or `"1"` depending on the version.
fn misp_flag(value: &Value) -> bool {
    match value {
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_u64().is_some_and(|number| number != 0),
        Value::String(text) => is_true(text),
        _ => false,
    }
}

/// Per-type counts of a parsed list (for reports and tests).
pub fn count_by_type(list: &ParsedList) -> BTreeMap<IndicatorType, usize> {
    let mut counts = BTreeMap::new();
    for indicator in list.indicators() {
        *counts.entry(indicator.indicator_type).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> LoadOptions {
        LoadOptions {
            now: DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
                .ok()
                .map(|time| time.with_timezone(&Utc)),
            ..LoadOptions::default()
        }
    }

    fn csv(text: &str) -> ParsedList {
        parse_list(Path::new("/lists/city-blocklist.csv"), text, &options())
    }

    fn values(list: &ParsedList) -> Vec<String> {
        list.indicators()
            .map(|indicator| format!("{}:{}", indicator.indicator_type.as_str(), indicator.value))
            .collect()
    }

    #[test]
    fn csv_with_defaults_quotes_and_optional_columns() {
        let list = csv("\u{feff}# level: critical\n# tags: tlp:amber; intel.city\ntype,value,description,tags\r\nip,203.0.113.7,\"scanner, seen twice\",attack.t1595\r\ncidr,198.51.100.0/24,\"said \"\"hi\"\"\",\ndomain,\"multi\nline.example\",x,\n");
        assert_eq!(values(&list), ["ip:203.0.113.7", "cidr:198.51.100.0/24"]);
        let first = list
            .indicators()
            .next()
            .unwrap_or_else(|| panic!("no indicator"));
        assert_eq!(first.list.as_ref(), "city-blocklist");
        assert_eq!(first.level, Level::Critical);
        assert_eq!(first.tags, ["tlp:amber", "intel.city", "attack.t1595"]);
        assert_eq!(first.description.as_deref(), Some("scanner, seen twice"));
        assert_eq!(first.location, "line 4");
        assert_eq!(
            list.indicators()
                .nth(1)
                .and_then(|indicator| indicator.description.as_deref()),
            Some("said \"hi\"")
        );
        // The quoted line break is inside the value, which then is no domain: reported at the
        // record's first line.
        assert_eq!(list.problems.len(), 1, "{:?}", list.problems);
        assert_eq!(list.problems[0].location.as_deref(), Some("line 6"));
    }

    #[test]
    fn malformed_rows_are_reported_with_their_lines() {
        let list = csv("type,value,level\nip,203.0.113.1,high\nip,not-an-ip,high\nbogus,x,high\nip,203.0.113.2\nip,203.0.113.3,urgent\nip,\"203.0.113.4,low\ndomain,evil.example,low\nsha256,abcd,low\nip,2\"03.0.113.5,low\n");
        assert_eq!(values(&list), ["ip:203.0.113.1", "domain:evil.example"]);
        let problems: Vec<String> = list.problems.iter().map(ToString::to_string).collect();
        let lines: Vec<&str> = list
            .problems
            .iter()
            .filter_map(|problem| problem.location.as_deref())
            .collect();
        assert_eq!(
            lines,
            ["line 3", "line 4", "line 5", "line 6", "line 7", "line 9", "line 10"],
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|problem| problem.contains("line 3: `not-an-ip` is not an IP address")),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|problem| problem.contains("unknown indicator type `bogus`")),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|problem| problem.contains("2 fields where the header has 3")),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|problem| problem.contains("unknown level `urgent`")),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .all(|problem| problem.starts_with("/lists/city-blocklist.csv: line ")),
            "{problems:#?}"
        );
    }

    #[test]
    fn header_without_type_and_value_is_one_problem() {
        let list = csv("kind,indicator\nip,1.2.3.4\n");
        assert_eq!(list.entries.len(), 0);
        assert_eq!(list.problems.len(), 1);
        assert!(list.problems[0].reason.contains("needs `type` and `value`"));
        assert_eq!(
            csv("# only comments\n").problems[0].reason,
            "no header row (`type,value,…`)"
        );
    }

    #[test]
    fn expired_rows_are_skipped_and_counted() {
        let list = csv("type,value,expires\nip,192.0.2.1,2026-11-21\nip,192.0.2.2,2026-11-22\nip,192.0.2.3,2026-11-21T23:59:59Z\nip,192.0.2.4,\nip,192.0.2.5,soon\n");
        assert_eq!(values(&list), ["ip:192.0.2.2", "ip:192.0.2.4"]);
        assert_eq!(list.skipped.expired, 2);
        assert_eq!(list.problems.len(), 1);
    }

    #[test]
    fn misp_csv_export_columns_and_types() {
        let list = csv("uuid,event_id,category,type,value,comment,to_ids,date\n1,7,Network activity,ip-dst|port,192.0.2.10|443,c2,1,x\n2,7,Network activity,domain|ip,evil.example|192.0.2.11,,1,x\n3,7,Payload delivery,filename|sha1,a.exe|da39a3ee5e6b4b0d3255bfef95601890afd80709,,1,x\n4,7,Other,text,hello,,1,x\n5,7,Network activity,ip-src,192.0.2.12,,0,x\n6,7,Payload delivery,filename|md5,nohash,,1,x\n");
        assert_eq!(
            values(&list),
            [
                "ip:192.0.2.10",
                "domain:evil.example",
                "ip:192.0.2.11",
                "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709"
            ]
        );
        assert_eq!(list.skipped.unsupported_type, 1);
        assert_eq!(list.skipped.not_to_ids, 1);
        assert_eq!(list.problems.len(), 1, "{:?}", list.problems);
        assert_eq!(list.problems[0].location.as_deref(), Some("line 7"));
    }

    const MISP_EVENT: &str = r#"{"Event": {"id": "42", "info": "Phishing wave against ward offices", "threat_level_id": "2",
        "Tag": [{"name": "tlp:amber"}],
        "Attribute": [
            {"type": "ip-dst", "value": "203.0.113.66", "to_ids": true, "comment": "C2"},
            {"type": "domain", "value": "login-hcmc.evil.example", "to_ids": "1", "Tag": [{"name": "phishing"}]},
            {"type": "url", "value": "http://login-hcmc.evil.example/dvc/login.php", "to_ids": false},
            {"type": "email-src", "value": "x@evil.example", "to_ids": true},
            {"type": "ip-dst", "value": "not an ip", "to_ids": true},
            {"type": "sha256", "value": 12, "to_ids": true},
            {"type": "md5", "value": "0123456789abcdef0123456789abcdef", "to_ids": true, "deleted": true}
        ],
        "Object": [{"name": "file", "Attribute": [
            {"type": "sha256", "value": "3F1C2A9E0B5D4E6F7A8B9C0D1E2F3A4B5C6D7E8F9A0B1C2D3E4F5A6B7C8D9E0F", "to_ids": true, "object_relation": "sha256"},
            {"type": "filename", "value": "m.exe", "to_ids": false}
        ]}]}}"#;

    #[test]
    fn misp_event_shape() {
        let list = parse_list(Path::new("misp-phishing.json"), MISP_EVENT, &options());
        assert_eq!(
            values(&list),
            [
                "ip:203.0.113.66",
                "domain:login-hcmc.evil.example",
                "sha256:3f1c2a9e0b5d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f"
            ]
        );
        let domain = list
            .indicators()
            .nth(1)
            .unwrap_or_else(|| panic!("no domain"));
        assert_eq!(domain.list.as_ref(), "misp-phishing");
        assert_eq!(domain.level, Level::Medium);
        assert_eq!(domain.tags, ["tlp:amber", "phishing"]);
        assert_eq!(
            domain.context.as_deref(),
            Some("MISP event 42: Phishing wave against ward offices")
        );
        assert_eq!(
            list.indicators()
                .next()
                .and_then(|indicator| indicator.description.as_deref()),
            Some("C2")
        );
        assert_eq!(
            list.skipped,
            SkipCounts {
                not_to_ids: 3,
                unsupported_type: 1,
                ..SkipCounts::default()
            }
        );
        let locations: Vec<&str> = list
            .problems
            .iter()
            .filter_map(|problem| problem.location.as_deref())
            .collect();
        assert_eq!(locations, ["Event.Attribute[4]", "Event.Attribute[5]"]);
        assert_eq!(
            list.indicators()
                .nth(2)
                .map(|indicator| indicator.location.as_str()),
            Some("Event.Object[0].Attribute[0]")
        );
    }

    #[test]
    fn misp_response_shape_and_all_attributes_option() {
        let text = format!("{{\"response\": [{MISP_EVENT}, {{\"Event\": {{\"info\": \"second\", \"Attribute\": [{{\"type\": \"hostname\", \"value\": \"c2.evil.example\", \"to_ids\": 1}}]}}}}]}}");
        let all = LoadOptions {
            to_ids_only: false,
            ..options()
        };
        let list = parse_list(Path::new("feed.JSON"), &text, &all);
        let counts = count_by_type(&list);
        assert_eq!(counts.get(&IndicatorType::Domain), Some(&2));
        assert_eq!(counts.get(&IndicatorType::Url), Some(&1));
        let last = list
            .indicators()
            .last()
            .unwrap_or_else(|| panic!("no indicator"));
        assert_eq!(
            (last.location.as_str(), last.context.as_deref()),
            ("response[1].Event.Attribute[0]", Some("MISP event: second"))
        );
        assert_eq!(last.level, Level::High);
        // Only the deleted attribute is left out when to_ids is not required.
        assert_eq!(list.skipped.not_to_ids, 1);
    }

    #[test]
    fn misp_garbage_is_one_problem() {
        let list = parse_list(Path::new("x.json"), "{\"Event\": [", &options());
        assert_eq!(list.problems.len(), 1);
        assert!(list.problems[0]
            .location
            .as_deref()
            .is_some_and(|location| location.starts_with("line 1")));
        let list = parse_list(Path::new("x.json"), "{\"hello\": 1}", &options());
        assert!(list.problems[0].reason.starts_with("no MISP event found"));
        let list = parse_list(
            Path::new("x.json"),
            "{\"Event\": {\"Attribute\": {}}}",
            &options(),
        );
        assert_eq!(list.problems[0].reason, "expecting an array of attributes");
    }
}
