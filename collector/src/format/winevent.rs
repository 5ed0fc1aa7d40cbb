//! Windows events as JSON, in the shapes agents and tools send them:
//!
//! - **Winlogbeat**: `winlog.event_id`, `winlog.channel`, `winlog.provider_name`,
//!   `winlog.computer_name`, `winlog.event_data.*` (and `winlog.user_data.*`), ECS fields around.
//! - **NXLog** `im_msvistalog` and the OTRF Security-Datasets recordings: flat documents with
//!   `EventID`, `Channel`, `SourceName`, `Hostname`, `EventTime`/`TimeCreated` and the event
//!   data fields at the top level.
//! - **The evtx crate's JSON** (what [`crate::format::evtx`] produces, and `evtx_dump -o jsonl`):
//!   `Event.System.*` with `#attributes`, `Event.EventData.*`, `Event.UserData.*`.
//!
//! Whatever the shape, the event ends up the same way for detection: the event data fields at
//! the TOP level of `fields` under the names Windows gives them (`Image`, `CommandLine`,
//! `TargetObject`, `TargetUserName`, …), which are the names Sigma rules use, plus `EventID`
//! (always a number), `Channel`, `Provider_Name` and `Computer`. The logsource is Sigma's:
//! product `windows`, the service from the channel, the category from the Sysmon EventID (or
//! Security 4688, PowerShell 4103/4104).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::fields::{Fields, Key};

use crate::event::{Event, Format, LogSource};
use crate::format::json::member;
use crate::format::FormatError;
use crate::parse::ParseContext;
use crate::timestamp;

/// How far into a document [`looks_like`] searches: agents put `EventID`/`winlog`/`Event`
/// near the start, and the check runs on every JSON record in `auto` mode.
const LOOKS_LIKE_WINDOW: usize = 512;

/// True when the text looks like a Windows event as JSON (cheap substring checks on the first
/// few hundred bytes; [`fill_from_value`] decides for real).
pub fn looks_like(text: &str) -> bool {
    let head = head_bytes(text.as_bytes(), LOOKS_LIKE_WINDOW);
    let contains = |needle: &[u8]| memchr::memmem::find(head, needle).is_some();
    contains(b"\"EventID\"")
        || contains(b"\"winlog\"")
        || (contains(b"\"Event\"") && contains(b"\"System\""))
}

fn head_bytes(bytes: &[u8], limit: usize) -> &[u8] {
    bytes.get(..limit).unwrap_or(bytes)
}

/// Parses one Windows event JSON document (any of the shapes in the module docs).
pub fn parse(text: &str, context: &ParseContext, event: &mut Event) -> Result<(), FormatError> {
    let document = crate::format::json::read_object(text)?;
    fill_from_fields(document, context, event).map_err(|(error, _)| error)
}

/// The shapes a Windows event arrives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `{"Event": {"System": …, "EventData": …}}`, maybe wrapped (`event_record_id`, `timestamp`).
    EvtxJson,
    /// `{"winlog": {"event_id": …, "event_data": …}, …}`.
    Winlogbeat,
    /// `{"EventID": …, "Channel": …, <event data fields>…}`.
    Flat,
}

fn shape_of(document: &Fields) -> Option<Shape> {
    if document
        .get("Event")
        .and_then(Value::as_object)
        .is_some_and(|event| member(event, "System").is_some_and(Value::is_object))
    {
        return Some(Shape::EvtxJson);
    }
    if document
        .get("winlog")
        .and_then(Value::as_object)
        .is_some_and(|winlog| member(winlog, "event_id").is_some())
    {
        return Some(Shape::Winlogbeat);
    }
    let has_event_id = document.get("EventID").and_then(event_id_number).is_some();
    let has_origin = ["Channel", "SourceName", "ProviderName", "Provider_Name"]
        .iter()
        .any(|name| document.contains_key(name));
    (has_event_id && has_origin).then_some(Shape::Flat)
}

/// True when a parsed JSON object is a Windows event in one of the shapes this module reads.
pub fn is_winevent(document: &Fields) -> bool {
    shape_of(document).is_some()
}

/// The `System` part of an event, whatever shape it came in.
#[derive(Debug, Default)]
struct System {
    event_id: Option<u64>,
    channel: Option<String>,
    provider: Option<String>,
    computer: Option<String>,
    /// The event time as written (ISO with `Z`, or NXLog's zone-less local time).
    time: Option<String>,
    level: Option<u64>,
    keywords: Option<String>,
}

/// Fills `event` from an already-parsed Windows event document (any shape in the module docs):
/// the flattened event data and System values in `fields`, the core fields, the timestamp,
/// Sigma's logsource, and `format: winevent`. Fails (and leaves the caller to mark the event
/// unknown) when the document is not a Windows event.
///
/// What is kept in `fields`: for the evtx crate's shape, the event data plus the System values
/// (the nested `Event` object itself is not repeated: `raw` holds it); for Winlogbeat, the
/// whole document with `winlog.event_data`/`winlog.user_data` MOVED to the top level (not
/// copied, so the index does not hold every value twice); for NXLog-style flat documents,
/// the document as it is.
pub fn fill_from_value(
    document: Value,
    context: &ParseContext,
    event: &mut Event,
) -> Result<(), FormatError> {
    let Value::Object(document) = document else {
        return Err(FormatError::new(
            "expecting a JSON object holding a Windows event",
            0,
        ));
    };
    fill_from_fields(document.into(), context, event).map_err(|(error, _)| error)
}

/// [`fill_from_value`] for an object, giving the object back untouched when it is not a
/// Windows event (so the JSON reader can keep it as a plain document without a copy).
pub fn fill_from_fields(
    document: Fields,
    context: &ParseContext,
    event: &mut Event,
) -> Result<(), (FormatError, Fields)> {
    let Some(shape) = shape_of(&document) else {
        let error = FormatError::new(
            "not a Windows event: expecting `Event.System`, `winlog.event_id`, or `EventID` with `Channel`/`SourceName`",
            0,
        );
        return Err((error, document));
    };
    if peek_event_id(&document, shape).is_none() {
        return Err((
            FormatError::new("the Windows event has no numeric EventID", 0),
            document,
        ));
    }
    // From here on nothing fails: the document is taken apart.
    let (system, mut fields) = match shape {
        Shape::EvtxJson => split_evtx_json(document),
        Shape::Winlogbeat => split_winlogbeat(document),
        Shape::Flat => {
            let system = flat_system(&document);
            (system, document)
        }
    };
    let event_id = system.event_id.unwrap_or_default();
    add_system_fields(&system, event_id, &mut fields);
    add_sigma_aliases(event_id, &mut fields);

    // ECS names a Winlogbeat document already carries (host.name, message, event.outcome, …)
    // come first; the Windows-specific values below win where both exist.
    crate::format::json::fill_core(&fields, context, event);
    fill_windows_core(&system, event_id, &fields, event);
    if let Some(time) = event_time(&system, &fields, context) {
        event.timestamp = time;
    }
    event.logsource = logsource_for(system.channel.as_deref(), event_id, &fields);
    event.fields = fields;
    event.format = Format::Winevent;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shapes

/// The EventID where each shape keeps it (the same places the `split_*` functions read).
fn peek_event_id(document: &Fields, shape: Shape) -> Option<u64> {
    let value = match shape {
        Shape::EvtxJson => document
            .get("Event")?
            .get("System")?
            .get("EventID")
            .map(text_node)?,
        Shape::Winlogbeat => member(document.get("winlog")?.as_object()?, "event_id")?,
        Shape::Flat => document.get("EventID")?,
    };
    event_id_number(value)
}

/// The evtx crate's `{"Event": {"System": …, "EventData": …}}`. Other top-level keys (the
/// `event_record_id`/`timestamp` wrapper of `evtx_dump` jsonl) are kept.
fn split_evtx_json(mut document: Fields) -> (System, Fields) {
    let Some(Value::Object(mut windows_event)) = document.shift_remove("Event") else {
        return (System::default(), document);
    };
    let mut fields = Fields::new();
    let system = match windows_event.shift_remove("System") {
        Some(Value::Object(system)) => evtx_system(&system, &mut fields),
        _ => System::default(),
    };
    if let Some(data) = windows_event.shift_remove("EventData") {
        flatten_event_data(data, &mut fields);
    }
    if let Some(data) = windows_event.shift_remove("UserData") {
        flatten_user_data(data, &mut fields);
    }
    for (key, value) in document {
        insert_absent(&mut fields, key, value);
    }
    (system, fields)
}

/// Reads `Event.System` of the evtx crate's JSON, adding its plain values (EventRecordID,
/// Level, Task, …) to `fields`.
fn evtx_system(system: &Map<String, Value>, fields: &mut Fields) -> System {
    for name in [
        "EventRecordID",
        "Version",
        "Level",
        "Task",
        "Opcode",
        "Keywords",
    ] {
        if let Some(value) = system.get(name).filter(|value| is_scalar(value)) {
            fields.insert(Key::Borrowed(name), value.clone());
        }
    }
    let attribute = |element: &str, name: &str| {
        system
            .get(element)
            .and_then(|value| value.get("#attributes"))
            .and_then(|attributes| attributes.get(name))
            .and_then(scalar_text)
            .map(Cow::into_owned)
    };
    if let Some(user) = attribute("Security", "UserID") {
        fields.insert(Key::Borrowed("UserID"), Value::from(user));
    }
    if let Some(process) = system
        .get("Execution")
        .and_then(|value| value.get("#attributes"))
    {
        for (from, to) in [
            ("ProcessID", "ExecutionProcessID"),
            ("ThreadID", "ExecutionThreadID"),
        ] {
            if let Some(value) = process.get(from).filter(|value| is_scalar(value)) {
                fields.insert(Key::Borrowed(to), value.clone());
            }
        }
    }
    System {
        // A qualified EventID is `{"#attributes": {"Qualifiers": …}, "#text": 7045}`.
        event_id: system
            .get("EventID")
            .and_then(|value| event_id_number(text_node(value))),
        channel: text_of(system.get("Channel")),
        provider: attribute("Provider", "Name"),
        computer: text_of(system.get("Computer")),
        time: attribute("TimeCreated", "SystemTime"),
        level: system.get("Level").and_then(number_of),
        keywords: text_of(system.get("Keywords")),
    }
}

/// Winlogbeat: `winlog.*` holds the System values and the event data.
fn split_winlogbeat(mut document: Fields) -> (System, Fields) {
    let mut event_data = None;
    let mut user_data = None;
    let mut system = System::default();
    if let Some(Value::Object(winlog)) = document.get_mut("winlog") {
        // Each `shift_remove` hashes its name: `user_data` is seldom there, so it is looked
        // for first.
        event_data = winlog.shift_remove("event_data");
        if member(winlog, "user_data").is_some() {
            user_data = winlog.shift_remove("user_data");
        }
        system = System {
            event_id: member(winlog, "event_id").and_then(event_id_number),
            channel: text_of(member(winlog, "channel")),
            provider: text_of(member(winlog, "provider_name")),
            computer: text_of(member(winlog, "computer_name")),
            time: member(winlog, "time_created")
                .and_then(scalar_text)
                .map(Cow::into_owned),
            level: member(winlog, "level").and_then(number_of),
            keywords: None,
        };
        if let Some(Value::Array(keywords)) = member(winlog, "keywords") {
            system.keywords = keywords
                .iter()
                .find_map(|keyword| keyword.as_str().map(str::to_owned));
        }
    }
    // Room for every data field at once, in the flattened map and in the document with the
    // system fields and aliases added later: growing entry blocks by doubling was a fifth of
    // the HTTP intake's page faults on Sysmon events (each growth a fresh block).
    let data_len = |data: &Option<Value>| match data {
        Some(Value::Object(data)) => data.len(),
        _ => 0,
    };
    let mut flattened = Fields::with_capacity(data_len(&event_data) + data_len(&user_data));
    if let Some(data) = event_data {
        flatten_event_data(data, &mut flattened);
    }
    if let Some(data) = user_data {
        flatten_event_data(data, &mut flattened);
    }
    // Event data names are CamelCase and ECS names lower-case, so collisions are unlikely; if
    // one happens the document's own top-level value is kept.
    document.reserve(flattened.len() + ADDED_FIELDS);
    for (key, value) in flattened {
        insert_absent(&mut document, key, value);
    }
    (system, document)
}

/// Fields [`fill_from_fields`] adds to a Winlogbeat document besides its data: the system
/// fields (`EventID`, `Channel`, `Provider_Name`, `Computer`) and the Sigma aliases of
/// [`add_sigma_aliases`] (at most two).
const ADDED_FIELDS: usize = 6;

/// NXLog and the OTRF recordings: everything is already at the top level.
fn flat_system(document: &Fields) -> System {
    let first_text = |names: &[&str]| names.iter().find_map(|name| text_of(document.get(name)));
    System {
        event_id: document.get("EventID").and_then(event_id_number),
        channel: first_text(&["Channel"]),
        provider: first_text(&["Provider_Name", "ProviderName", "SourceName"]),
        computer: first_text(&["Computer", "Hostname", "hostname"]),
        time: first_text(&["TimeCreated", "EventTime"]),
        level: document.get("Level").and_then(number_of),
        keywords: first_text(&["Keywords"]),
    }
}

/// Moves event data fields to the top level. The evtx crate renders unnamed `<Data>` items
/// as `{"Data": {"#text": […]}}`: that becomes a `Data` field holding the text or the list.
fn flatten_event_data(data: Value, fields: &mut Fields) {
    let Value::Object(data) = data else {
        return;
    };
    for (key, value) in data {
        if key == "#attributes" {
            continue;
        }
        let value = match value {
            Value::Object(mut node) if node.contains_key("#text") => {
                node.shift_remove("#text").unwrap_or(Value::Null)
            }
            other => other,
        };
        fields.insert(Key::Owned(key), value);
    }
}

/// `UserData` holds one element named after the event (`LogFileCleared`, …) whose children
/// are the data fields.
fn flatten_user_data(data: Value, fields: &mut Fields) {
    let Value::Object(data) = data else {
        return;
    };
    for (_, element) in data {
        flatten_event_data(element, fields);
    }
}

fn add_system_fields(system: &System, event_id: u64, fields: &mut Fields) {
    fields.insert(Key::Borrowed("EventID"), Value::from(event_id));
    for (name, value) in [
        ("Channel", &system.channel),
        ("Provider_Name", &system.provider),
        ("Computer", &system.computer),
    ] {
        if let Some(value) = value {
            if !fields.contains_key(name) {
                fields.insert(Key::Borrowed(name), Value::from(value.as_str()));
            }
        }
    }
}

/// Inserts `key` unless it is present (the first value wins), without copying the key.
fn insert_absent(fields: &mut Fields, key: Key, value: Value) {
    if !fields.contains_key(&key) {
        fields.insert(key, value);
    }
}

/// Security 4688 names the new process `NewProcessName`/`ParentProcessName`; Sigma's
/// process_creation rules say `Image`/`ParentImage` (SigmaHQ's THOR config maps them the same
/// way). Both names are kept so the rules match without a per-rule field mapping.
fn add_sigma_aliases(event_id: u64, fields: &mut Fields) {
    if event_id != 4688 {
        return;
    }
    for (alias, original) in [
        ("Image", "NewProcessName"),
        ("ParentImage", "ParentProcessName"),
    ] {
        if !fields.contains_key(alias) {
            if let Some(value) = fields.get(original).cloned() {
                fields.insert(Key::Borrowed(alias), value);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Core fields, time, logsource

fn fill_windows_core(system: &System, event_id: u64, fields: &Fields, event: &mut Event) {
    let first = |names: &[&str]| first_meaningful(fields, names);
    let core = &mut event.core;
    core.event_code = Some(event_id.to_string());
    if let Some(computer) = &system.computer {
        core.host_name = Some(computer.as_str().into());
    }
    if core.message.is_none() {
        core.message = first(&["Message"]);
    }
    if let Some(executable) = first(&["Image", "NewProcessName", "ProcessName"]) {
        core.process_name = Some(base_name(&executable).into());
        core.process_executable = Some(executable);
    }
    if let Some(command_line) = first(&["CommandLine"]) {
        core.process_command_line = Some(command_line);
    }
    let pid_field = if event_id == 4688 {
        "NewProcessId"
    } else {
        "ProcessId"
    };
    if let Some(pid) = fields
        .get(pid_field)
        .and_then(number_of)
        .and_then(|pid| u32::try_from(pid).ok())
    {
        core.process_pid = Some(pid);
    }
    if let Some(user) = first(&["TargetUserName", "SubjectUserName", "User", "AccountName"]) {
        core.user_name = Some(user.into());
    }
    if let Some(address) = first(&["IpAddress", "SourceIp", "SourceAddress", "ClientAddress"]) {
        core.source_ip = Some(address.into());
    }
    if let Some(port) = first_port(fields, &["IpPort", "SourcePort"]) {
        core.source_port = Some(port);
    }
    if let Some(address) = first(&["DestinationIp", "DestAddress"]) {
        core.destination_ip = Some(address.into());
    }
    if let Some(port) = first_port(fields, &["DestinationPort", "DestPort"]) {
        core.destination_port = Some(port);
    }
    if let Some(outcome) = system.keywords.as_deref().and_then(audit_outcome) {
        core.event_outcome = Some(outcome.to_owned().into());
    }
    if let Some(level) = system.level.and_then(level_name) {
        core.log_level = Some(level.to_owned().into());
    }
}

/// The first of `names` with a value that says something (`-` is Windows for "none").
fn first_meaningful(fields: &Fields, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        let text = fields.get(name).and_then(scalar_text)?;
        let text = text.trim();
        (!text.is_empty() && text != "-").then(|| text.to_owned())
    })
}

fn first_port(fields: &Fields, names: &[&str]) -> Option<u16> {
    names
        .iter()
        .find_map(|name| {
            fields
                .get(name)
                .and_then(number_of)
                .and_then(|port| u16::try_from(port).ok())
        })
        .filter(|port| *port != 0)
}

fn base_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// Security events carry the audit result in the Keywords bit mask (0x0010… failure,
/// 0x0020… success); agents sometimes write the names instead.
fn audit_outcome(keywords: &str) -> Option<&'static str> {
    if let Some(hex) = keywords
        .strip_prefix("0x")
        .or_else(|| keywords.strip_prefix("0X"))
    {
        let mask = u64::from_str_radix(hex, 16).ok()?;
        return if mask & 0x0010_0000_0000_0000 != 0 {
            Some("failure")
        } else if mask & 0x0020_0000_0000_0000 != 0 {
            Some("success")
        } else {
            None
        };
    }
    match keywords {
        "Audit Failure" => Some("failure"),
        "Audit Success" => Some("success"),
        _ => None,
    }
}

fn level_name(level: u64) -> Option<&'static str> {
    Some(match level {
        1 => "critical",
        2 => "error",
        3 => "warning",
        0 | 4 => "information",
        5 => "verbose",
        _ => return None,
    })
}

/// The event time: the System time first (UTC with `Z` in the evtx and Winlogbeat shapes),
/// then the time fields NXLog adds. NXLog's `2020-10-19 22:47:18` has no zone and is read in
/// `context.timezone`. `None` leaves the time `json::fill_core` read from the names agents
/// share (`@timestamp`, `timestamp`, `time`, `ts`; ISO 8601 or epoch): reading Winlogbeat's
/// `@timestamp` a second time here was 2% of its event's parse.
fn event_time(system: &System, fields: &Fields, context: &ParseContext) -> Option<DateTime<Utc>> {
    let from_text = |text: &str| {
        timestamp::iso8601(text.trim(), context.timezone)
            .ok()
            .map(|(_, time)| time)
    };
    if let Some(time) = system.time.as_deref().and_then(from_text) {
        return Some(time);
    }
    ["TimeCreated", "EventTime"]
        .iter()
        .find_map(|name| fields.get(name).and_then(Value::as_str).and_then(from_text))
}

/// (channel, Sigma service), from SigmaHQ's logsource config (tests/thor.yml). Compared
/// ignoring case: recordings show `security` as well as `Security`.
const CHANNEL_SERVICES: &[(&str, &str)] = &[
    ("Security", "security"),
    ("System", "system"),
    ("Application", "application"),
    ("Microsoft-Windows-Sysmon/Operational", "sysmon"),
    ("Microsoft-Windows-PowerShell/Operational", "powershell"),
    ("PowerShellCore/Operational", "powershell"),
    ("Windows PowerShell", "powershell-classic"),
    ("Microsoft-Windows-NTLM/Operational", "ntlm"),
    (
        "Microsoft-Windows-TaskScheduler/Operational",
        "taskscheduler",
    ),
    ("Microsoft-Windows-WMI-Activity/Operational", "wmi"),
    ("Microsoft-Windows-DHCP-Server/Operational", "dhcp"),
    ("Microsoft-Windows-PrintService/Admin", "printservice-admin"),
    (
        "Microsoft-Windows-PrintService/Operational",
        "printservice-operational",
    ),
    ("Microsoft-Windows-SmbClient/Security", "smbclient-security"),
    (
        "Microsoft-Windows-SmbClient/Connectivity",
        "smbclient-connectivity",
    ),
    (
        "Microsoft-Windows-SMBServer/Connectivity",
        "smbserver-connectivity",
    ),
    (
        "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational",
        "terminalservices-localsessionmanager",
    ),
    (
        "Microsoft-Windows-CodeIntegrity/Operational",
        "codeintegrity-operational",
    ),
    ("Microsoft-Windows-AppLocker/MSI and Script", "applocker"),
    ("Microsoft-Windows-AppLocker/EXE and DLL", "applocker"),
    (
        "Microsoft-Windows-AppLocker/Packaged app-Deployment",
        "applocker",
    ),
    (
        "Microsoft-Windows-AppLocker/Packaged app-Execution",
        "applocker",
    ),
    ("MSExchange Management", "msexchange-management"),
    (
        "Microsoft-Windows-Windows Defender/Operational",
        "windefend",
    ),
    (
        "Microsoft-Windows-Windows Firewall With Advanced Security/Firewall",
        "firewall-as",
    ),
    ("Microsoft-Windows-Bits-Client/Operational", "bits-client"),
    (
        "Microsoft-Windows-Security-Mitigations/Kernel Mode",
        "security-mitigations",
    ),
    (
        "Microsoft-Windows-Security-Mitigations/User Mode",
        "security-mitigations",
    ),
    (
        "Microsoft-Windows-Diagnosis-Scripted/Operational",
        "diagnosis-scripted",
    ),
    ("Microsoft-Windows-Shell-Core/Operational", "shell-core"),
    ("OpenSSH/Operational", "openssh"),
    ("Microsoft-Windows-LDAP-Client/Debug", "ldap"),
    (
        "Microsoft-Windows-BitLocker/BitLocker Management",
        "bitlocker",
    ),
    ("Microsoft-Windows-VHDMP/Operational", "vhdmp"),
    (
        "Microsoft-Windows-AppXDeploymentServer/Operational",
        "appxdeployment-server",
    ),
    ("Microsoft-Windows-LSA/Operational", "lsa-server"),
    (
        "Microsoft-Windows-AppxPackaging/Operational",
        "appxpackaging-om",
    ),
    (
        "Microsoft-Windows-DNS Client Events/Operational",
        "dns-client",
    ),
    (
        "Microsoft-Windows-AppModel-Runtime/Admin",
        "appmodel-runtime",
    ),
    ("Microsoft-Windows-CAPI2/Operational", "capi2"),
    (
        "Microsoft-Windows-CertificateServicesClient-Lifecycle-System/Operational",
        "certificateservicesclient-lifecycle-system",
    ),
    (
        "Microsoft-Windows-Kernel-ShimEngine/Operational",
        "kernel-shimengine",
    ),
    (
        "Microsoft-Windows-Kernel-ShimEngine/Diagnostic",
        "kernel-shimengine",
    ),
    (
        "Microsoft-Windows-Application-Experience/Program-Telemetry",
        "application-experience",
    ),
    (
        "Microsoft-Windows-Application-Experience/Program-Compatibility-Assistant",
        "application-experience",
    ),
    ("Microsoft-Windows-Ntfs/Operational", "ntfs"),
    ("Microsoft-Windows-Hyper-V-Worker", "hyper-v-worker"),
    (
        "Microsoft-Windows-Kernel-EventTracing",
        "kernel-event-tracing",
    ),
    ("Microsoft-Windows-SENSE/Operational", "sense"),
    ("Microsoft-ServiceBus-Client/Admin", "servicebus-client"),
    (
        "Microsoft-ServiceBus-Client/Operational",
        "servicebus-client",
    ),
    (
        "Microsoft-IIS-Configuration/Operational",
        "iis-configuration",
    ),
];

/// Sysmon EventID → Sigma category (SigmaHQ tests/thor.yml). EventID 12 is split by
/// `EventType` in [`sysmon_category`].
const SYSMON_CATEGORIES: &[(u64, &str)] = &[
    (1, "process_creation"),
    (2, "file_change"),
    (3, "network_connection"),
    (4, "sysmon_status"),
    (5, "process_termination"),
    (6, "driver_load"),
    (7, "image_load"),
    (8, "create_remote_thread"),
    (9, "raw_access_thread"),
    (10, "process_access"),
    (11, "file_event"),
    (13, "registry_set"),
    (14, "registry_rename"),
    (15, "create_stream_hash"),
    (16, "sysmon_status"),
    (17, "pipe_created"),
    (18, "pipe_created"),
    (19, "wmi_event"),
    (20, "wmi_event"),
    (21, "wmi_event"),
    (22, "dns_query"),
    (23, "file_delete"),
    (24, "clipboard_change"),
    (25, "process_tampering"),
    (26, "file_delete_detected"),
    (27, "file_block_executable"),
    (28, "file_block_shredding"),
    (29, "file_executable_detected"),
    (255, "sysmon_error"),
];

/// The Sigma service for a channel name, when SigmaHQ names one.
pub fn service_for_channel(channel: &str) -> Option<&'static str> {
    CHANNEL_SERVICES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(channel))
        .map(|(_, service)| *service)
}

fn logsource_for(channel: Option<&str>, event_id: u64, fields: &Fields) -> LogSource {
    let service = channel.and_then(service_for_channel);
    let category = match service {
        Some("sysmon") => sysmon_category(event_id, fields),
        Some("security") if event_id == 4688 => Some("process_creation"),
        Some("powershell") => match event_id {
            4103 => Some("ps_module"),
            4104 => Some("ps_script"),
            _ => None,
        },
        Some("powershell-classic") => match event_id {
            400 => Some("ps_classic_start"),
            600 => Some("ps_classic_provider_start"),
            800 => Some("ps_classic_script"),
            _ => None,
        },
        _ => None,
    };
    LogSource::from_static(Some("windows"), category, service)
}

/// Sysmon 12 is "registry object added or deleted": SigmaHQ files it as registry_add for
/// `CreateKey` and registry_delete for `DeleteKey`/`DeleteValue`.
fn sysmon_category(event_id: u64, fields: &Fields) -> Option<&'static str> {
    if event_id == 12 {
        let event_type = fields
            .get("EventType")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Some(if event_type.starts_with("Delete") {
            "registry_delete"
        } else {
            "registry_add"
        });
    }
    SYSMON_CATEGORIES
        .iter()
        .find(|(id, _)| *id == event_id)
        .map(|(_, category)| *category)
}

// ---------------------------------------------------------------------------------------------
// Small JSON value helpers

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// A string, number or boolean as text.
fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        Value::Bool(flag) => Some(Cow::Owned(flag.to_string())),
        _ => None,
    }
}

/// The text of an XML-ish node: the value itself, or its `#text` when it has attributes.
fn text_node(value: &Value) -> &Value {
    value.get("#text").unwrap_or(value)
}

fn text_of(value: Option<&Value>) -> Option<String> {
    value
        .map(text_node)
        .and_then(scalar_text)
        .map(Cow::into_owned)
        .filter(|text| !text.is_empty())
}

/// A non-negative integer from a number, a decimal string or a `0x` hex string (Security
/// events write process ids in hex).
fn number_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => {
            let text = text.trim();
            match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => text.parse().ok(),
            }
        }
        _ => None,
    }
}

/// EventIDs are decimal: a string `"4688"` is accepted, hex is not.
fn event_id_number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::new_event;

    fn context() -> ParseContext {
        let mut context = ParseContext::new("test");
        context.timezone = chrono_tz::Asia::Ho_Chi_Minh;
        context.received_at = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_default();
        context
    }

    fn parsed(text: &str) -> Event {
        let context = context();
        let mut event = new_event(text.as_bytes(), &context, 1);
        parse(text, &context, &mut event).unwrap_or_else(|error| panic!("{error:?} for {text}"));
        event
    }

    #[test]
    fn looks_like_checks_the_usual_markers() {
        assert!(looks_like(r#"{"EventID":4624,"Channel":"Security"}"#));
        assert!(looks_like(r#"{"@timestamp":"x","winlog":{"event_id":1}}"#));
        assert!(looks_like(r#"{"Event":{"System":{"EventID":1}}}"#));
        assert!(!looks_like(r#"{"message":"hello","Event":"x"}"#));
        assert!(!looks_like("{}"));
    }

    /// The System time or NXLog's own time fields win; without them the time is the one the
    /// agents' shared names give (`@timestamp` first; epoch numbers read too), read once.
    #[test]
    fn the_event_time_and_where_it_comes_from() {
        let time = |text: &str| parsed(text).timestamp.to_rfc3339();
        assert_eq!(
            time(
                r#"{"EventID":4624,"Channel":"Security","EventTime":"2020-10-19 22:47:18","@timestamp":"2020-10-19T00:00:00Z"}"#
            ),
            "2020-10-19T15:47:18+00:00",
            "NXLog's zone-less EventTime, read in Asia/Ho_Chi_Minh"
        );
        assert_eq!(
            time(
                r#"{"EventID":4624,"Channel":"Security","@timestamp":"2020-10-19T01:02:03Z","timestamp":"2021-01-01T00:00:00Z"}"#
            ),
            "2020-10-19T01:02:03+00:00"
        );
        assert_eq!(
            time(
                r#"{"EventID":4624,"Channel":"Security","EventTime":"not a time","timestamp":"2021-01-01T00:00:00Z"}"#
            ),
            "2021-01-01T00:00:00+00:00"
        );
        assert_eq!(
            time(
                r#"{"winlog":{"event_id":1,"time_created":"2024-03-01T10:00:00Z"},"@timestamp":1709287200000}"#
            ),
            "2024-03-01T10:00:00+00:00"
        );
        assert_eq!(
            time(r#"{"winlog":{"event_id":1},"@timestamp":1709287200000}"#),
            "2024-03-01T10:00:00+00:00"
        );
    }

    #[test]
    fn winlogbeat_sysmon_process_creation() {
        let event = parsed(
            r#"{"@timestamp":"2024-03-01T10:00:00.123Z","host":{"name":"ws1"},"winlog":{"channel":"Microsoft-Windows-Sysmon/Operational","event_id":"1","provider_name":"Microsoft-Windows-Sysmon","computer_name":"WS1.corp.local","event_data":{"Image":"C:\\Windows\\System32\\cmd.exe","CommandLine":"cmd /c whoami","ParentImage":"C:\\Windows\\explorer.exe","User":"CORP\\alice","ProcessId":"4242"}},"message":"Process Create"}"#,
        );
        assert_eq!(event.format, Format::Winevent);
        assert_eq!(event.fields.get("EventID"), Some(&Value::from(1)));
        assert_eq!(
            event.fields.get("Image"),
            Some(&Value::from("C:\\Windows\\System32\\cmd.exe"))
        );
        assert_eq!(
            event.fields.get("Provider_Name"),
            Some(&Value::from("Microsoft-Windows-Sysmon"))
        );
        assert!(
            event.field("winlog.event_data").is_none(),
            "event data is moved, not copied"
        );
        assert_eq!(event.core.host_name.as_deref(), Some("WS1.corp.local"));
        assert_eq!(event.core.process_name.as_deref(), Some("cmd.exe"));
        assert_eq!(
            event.core.process_command_line.as_deref(),
            Some("cmd /c whoami")
        );
        assert_eq!(event.core.process_pid, Some(4242));
        assert_eq!(event.core.user_name.as_deref(), Some("CORP\\alice"));
        assert_eq!(event.core.event_code.as_deref(), Some("1"));
        assert_eq!(event.core.message.as_deref(), Some("Process Create"));
        assert_eq!(
            event.timestamp.to_rfc3339(),
            "2024-03-01T10:00:00.123+00:00"
        );
        assert_eq!(
            event.logsource,
            LogSource::new(Some("windows"), Some("process_creation"), Some("sysmon"))
        );
    }

    #[test]
    fn nxlog_security_logon_failure_with_local_time() {
        let event = parsed(
            r#"{"EventTime":"2020-10-19 22:47:18","Hostname":"DC01","Keywords":"0x8010000000000000","EventID":4625,"SourceName":"Microsoft-Windows-Security-Auditing","Channel":"Security","TargetUserName":"admin","SubjectUserName":"-","IpAddress":"10.0.0.9","IpPort":"50123","LogonType":"3"}"#,
        );
        assert_eq!(event.core.user_name.as_deref(), Some("admin"));
        assert_eq!(event.core.source_ip.as_deref(), Some("10.0.0.9"));
        assert_eq!(event.core.source_port, Some(50123));
        assert_eq!(event.core.event_outcome.as_deref(), Some("failure"));
        assert_eq!(event.core.host_name.as_deref(), Some("DC01"));
        assert_eq!(event.fields.get("Computer"), Some(&Value::from("DC01")));
        assert_eq!(
            event.fields.get("Provider_Name"),
            Some(&Value::from("Microsoft-Windows-Security-Auditing"))
        );
        // Ho Chi Minh City is UTC+7.
        assert_eq!(event.timestamp.to_rfc3339(), "2020-10-19T15:47:18+00:00");
        assert_eq!(
            event.logsource,
            LogSource::new(Some("windows"), None, Some("security"))
        );
    }

    #[test]
    fn security_4688_gets_sigma_image_names() {
        let event = parsed(
            r#"{"EventID":4688,"Channel":"Security","NewProcessName":"C:\\x\\a.exe","ParentProcessName":"C:\\y\\b.exe","NewProcessId":"0x1a74","CommandLine":"a.exe -z","SubjectUserName":"bob","TargetUserName":"-"}"#,
        );
        assert_eq!(
            event.fields.get("Image"),
            Some(&Value::from("C:\\x\\a.exe"))
        );
        assert_eq!(
            event.fields.get("ParentImage"),
            Some(&Value::from("C:\\y\\b.exe"))
        );
        assert_eq!(event.core.process_pid, Some(0x1a74));
        assert_eq!(event.core.user_name.as_deref(), Some("bob"));
        assert_eq!(
            event.logsource.category.as_deref(),
            Some("process_creation")
        );
    }

    #[test]
    fn evtx_json_with_qualified_event_id_and_unnamed_data() {
        let event = parsed(
            r##"{"Event":{"#attributes":{"xmlns":"x"},"System":{"Provider":{"#attributes":{"Name":"Service Control Manager"}},"EventID":{"#attributes":{"Qualifiers":"16384"},"#text":"7045"},"Level":4,"Keywords":"0x8080000000000000","TimeCreated":{"#attributes":{"SystemTime":"2020-10-19T03:30:46.416Z"}},"EventRecordID":7,"Channel":"System","Computer":"WS5","Security":{"#attributes":{"UserID":"S-1-5-18"}}},"EventData":{"ServiceName":"PSEXESVC","ImagePath":"%SystemRoot%\\PSEXESVC.exe","Data":{"#text":["a","b"]}}}}"##,
        );
        assert_eq!(event.fields.get("EventID"), Some(&Value::from(7045)));
        assert_eq!(
            event.fields.get("Provider_Name"),
            Some(&Value::from("Service Control Manager"))
        );
        assert_eq!(
            event.fields.get("ServiceName"),
            Some(&Value::from("PSEXESVC"))
        );
        assert_eq!(event.fields.get("UserID"), Some(&Value::from("S-1-5-18")));
        assert_eq!(
            event.fields.get("Data"),
            Some(&serde_json::json!(["a", "b"]))
        );
        assert!(!event.fields.contains_key("Event"));
        assert_eq!(
            event.timestamp.to_rfc3339(),
            "2020-10-19T03:30:46.416+00:00"
        );
        assert_eq!(event.logsource.service.as_deref(), Some("system"));
        assert_eq!(event.core.log_level.as_deref(), Some("information"));
    }

    #[test]
    fn sysmon_registry_categories_follow_event_type() {
        let create = parsed(
            r#"{"EventID":12,"Channel":"Microsoft-Windows-Sysmon/Operational","EventType":"CreateKey"}"#,
        );
        let delete = parsed(
            r#"{"EventID":12,"Channel":"Microsoft-Windows-Sysmon/Operational","EventType":"DeleteValue"}"#,
        );
        let set = parsed(r#"{"EventID":13,"Channel":"microsoft-windows-sysmon/operational"}"#);
        assert_eq!(create.logsource.category.as_deref(), Some("registry_add"));
        assert_eq!(
            delete.logsource.category.as_deref(),
            Some("registry_delete")
        );
        assert_eq!(set.logsource.category.as_deref(), Some("registry_set"));
    }

    #[test]
    fn non_windows_documents_are_rejected() {
        let context = context();
        for text in [
            r#"{"message":"x"}"#,
            "[1,2]",
            r#"{"EventID":"abc","Channel":"Security"}"#,
            "{",
            "\u{0}",
        ] {
            let mut event = new_event(text.as_bytes(), &context, 1);
            assert!(parse(text, &context, &mut event).is_err(), "{text}");
        }
    }
}
