//! Golden tests for Windows events sent as JSON:
//!
//! - the OTRF Security-Datasets recordings (tests/data/windows-linux-attack-otrf-security-datasets:
//!   NXLog-style flat JSON lines, 1,951 events) with their metadata: the attack each recording
//!   holds must show up with the Sigma field names detection will match on;
//! - the evtx crate's JSON lines (`Event.System`/`Event.EventData`) read as text through the
//!   stream decoder, which must agree with reading the EVTX file itself;
//! - CrowdSec's Windows fixtures, which are Windows event XML: not a supported format, so every
//!   line must become `format: unknown` with its bytes kept.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use citysoc_collector::format::evtx::decode_evtx;
use citysoc_collector::{Decoder, Event, Format, InputFormat, ParseContext};
use serde_json::Value;

const OTRF: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/windows-linux-attack-otrf-security-datasets"
);
const EVTX_SAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/windows-evtx-omerbenamram-evtx-samples"
);
const CROWDSEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/syslog-firewall-crowdsec-hub"
);

/// (recording, metadata id, lines), from the folder's PROVENANCE.md.
const RECORDINGS: &[(&str, &str, usize)] = &[
    (
        "cmd_discover_iexplorer_version_registry_2020-10-2123281491",
        "SDWIN-201021232814",
        68,
    ),
    (
        "cmd_lsass_memory_dumpert_syscalls_2020-10-1822561997",
        "SDWIN-201018225619",
        118,
    ),
    (
        "cmd_psexec_lsa_secrets_dump_2020-10-1903305471",
        "SDWIN-201019033054",
        286,
    ),
    (
        "cmd_service_mod_fax_2020-10-2120454410",
        "SDWIN-201021204544",
        437,
    ),
    (
        "cmd_userinitmprlogonscript_batch_2020-10-1922471810",
        "SDWIN-201019224718",
        122,
    ),
    (
        "covenant_copy_smb_CreateRequest_2020-09-22145302",
        "SDWIN-200806015757",
        506,
    ),
    (
        "psh_lsass_memory_dump_comsvcs_2020-10-18T19500924",
        "SDWIN-201018195009",
        184,
    ),
    (
        "psh_powershell_httplistener_2020-11-0204130683",
        "SDWIN-201102041306",
        110,
    ),
    (
        "psh_windows_vault_web_credentials_2020-10-2819191483",
        "SDWIN-201028191914",
        120,
    ),
];

fn context(address: &str) -> ParseContext {
    let mut context = ParseContext::new("file");
    context.source.address = Some(address.into());
    context.timezone = chrono_tz::UTC;
    context.received_at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_else(|error| panic!("{error}"));
    context
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Runs a file through the stream decoder line by line, as `citysoc parse` does.
fn decode_lines(path: &str, input_format: InputFormat) -> Vec<Event> {
    let bytes = read(path);
    let mut decoder = Decoder::new(input_format, context(path));
    let mut events = Vec::new();
    for line in bytes.split(|byte| *byte == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        decoder.decode(line, &mut events);
    }
    decoder.finish(&mut events);
    events
}

fn recording(name: &str) -> Vec<Event> {
    decode_lines(&format!("{OTRF}/windows/{name}.json"), InputFormat::Auto)
}

fn text<'a>(event: &'a Event, name: &str) -> &'a str {
    event.fields.get(name).and_then(Value::as_str).unwrap_or("")
}

fn event_id(event: &Event) -> u64 {
    event
        .fields
        .get("EventID")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

#[test]
fn every_recorded_event_is_a_windows_event() {
    let mut channels: BTreeMap<String, usize> = BTreeMap::new();
    let mut hosts: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for (name, metadata_id, lines) in RECORDINGS {
        let metadata = String::from_utf8(read(&format!("{OTRF}/metadata/{metadata_id}.yaml")))
            .unwrap_or_default();
        assert!(
            metadata.contains(&format!("id: {metadata_id}")),
            "{metadata_id}"
        );
        let events = recording(name);
        assert_eq!(events.len(), *lines, "{name}");
        for event in &events {
            assert_eq!(
                event.format,
                Format::Winevent,
                "{name}: {:?}",
                event.parse_error
            );
            assert!(
                event.fields["EventID"].is_u64(),
                "{name}: EventID must stay a number"
            );
            assert_eq!(event.logsource.product.as_deref(), Some("windows"));
            assert!(
                event.logsource.service.is_some(),
                "{name}: {}",
                text(event, "Channel")
            );
            assert_eq!(
                event.core.host_name.as_deref(),
                Some(text(event, "Hostname")),
                "{name}"
            );
            *hosts.entry(text(event, "Hostname").to_owned()).or_default() += 1;
            assert_eq!(event.core.event_code, Some(event_id(event).to_string()));
            *channels
                .entry(text(event, "Channel").to_owned())
                .or_default() += 1;
        }
        total += events.len();
    }
    println!("otrf golden: {total} events, channels {channels:?}");
    // PROVENANCE.md: Sysmon/Operational 1,615, Security 279 + 50 written `security`, System 7.
    assert_eq!(total, 1951);
    assert_eq!(
        channels.get("Microsoft-Windows-Sysmon/Operational"),
        Some(&1615)
    );
    assert_eq!(channels.get("Security"), Some(&279));
    assert_eq!(channels.get("security"), Some(&50));
    assert_eq!(channels.get("System"), Some(&7));
    // The Covenant lateral movement recording spans two workstations and the DC.
    assert_eq!(hosts.get("WORKSTATION5"), Some(&1445));
    assert_eq!(hosts.get("WORKSTATION6.theshire.local"), Some(&218));
    assert_eq!(hosts.get("MORDORDC.theshire.local"), Some(&44));
}

/// SDWIN-201018225619 (Dumpert, direct syscalls) and SDWIN-201018195009 (comsvcs.dll
/// MiniDump), ATT&CK T1003.001: Sysmon 10 access to lsass.exe, as Sigma's process_access
/// rules see it.
#[test]
fn lsass_dumps_show_process_access_to_lsass() {
    for (name, source_image, access) in [
        (
            "cmd_lsass_memory_dumpert_syscalls_2020-10-1822561997",
            "Outflank-Dumpert.exe",
            "0x1fffff",
        ),
        (
            "psh_lsass_memory_dump_comsvcs_2020-10-18T19500924",
            "rundll32.exe",
            "0x1fffff",
        ),
    ] {
        let events = recording(name);
        let lsass_access: Vec<&Event> = events
            .iter()
            .filter(|event| event.logsource.category.as_deref() == Some("process_access"))
            .filter(|event| {
                text(event, "TargetImage")
                    .to_ascii_lowercase()
                    .ends_with("\\lsass.exe")
            })
            .collect();
        assert!(!lsass_access.is_empty(), "{name}");
        let attack = lsass_access
            .iter()
            .find(|event| text(event, "SourceImage").ends_with(source_image))
            .unwrap_or_else(|| panic!("{name}: no access from {source_image}"));
        assert_eq!(event_id(attack), 10);
        assert_eq!(attack.logsource.service.as_deref(), Some("sysmon"));
        assert_eq!(
            text(attack, "GrantedAccess").to_ascii_lowercase(),
            access,
            "{name}"
        );
        assert!(
            text(attack, "CallTrace").contains("dbgcore.DLL")
                || text(attack, "CallTrace").contains("dbghelp"),
            "{name}"
        );
        println!(
            "{name}: {} process_access events to lsass.exe",
            lsass_access.len()
        );
    }
    // The comsvcs recording also has the process creation Sigma rules look for.
    let events = recording("psh_lsass_memory_dump_comsvcs_2020-10-18T19500924");
    let creations: Vec<&Event> = events
        .iter()
        .filter(|event| event.logsource.category.as_deref() == Some("process_creation"))
        .filter(|event| text(event, "CommandLine").contains("comsvcs.dll MiniDump"))
        .collect();
    // One from Sysmon 1, one from Security 4688 (with `Image` added for Sigma).
    assert_eq!(creations.len(), 2);
    for event in creations {
        assert!(text(event, "Image").ends_with("\\rundll32.exe"));
        assert_eq!(event.core.process_name.as_deref(), Some("rundll32.exe"));
    }
}

/// SDWIN-201019033054 (PsExec, T1003.004): the PSEXESVC service install as Security 4697 and
/// System 7045, and the remote `reg save` of the LSA secrets.
#[test]
fn psexec_installs_a_service() {
    let events = recording("cmd_psexec_lsa_secrets_dump_2020-10-1903305471");
    let install_4697 = events
        .iter()
        .find(|event| event_id(event) == 4697)
        .unwrap_or_else(|| panic!("no 4697"));
    assert_eq!(text(install_4697, "ServiceName"), "PSEXESVC");
    assert_eq!(
        text(install_4697, "ServiceFileName"),
        "%SystemRoot%\\PSEXESVC.exe"
    );
    assert_eq!(install_4697.logsource.service.as_deref(), Some("security"));
    assert_eq!(install_4697.core.user_name.as_deref(), Some("wardog"));

    let install_7045 = events
        .iter()
        .find(|event| event_id(event) == 7045)
        .unwrap_or_else(|| panic!("no 7045"));
    assert_eq!(text(install_7045, "ServiceName"), "PSEXESVC");
    assert_eq!(
        text(install_7045, "ImagePath"),
        "%SystemRoot%\\PSEXESVC.exe"
    );
    assert_eq!(
        text(install_7045, "Provider_Name"),
        "Service Control Manager"
    );
    assert_eq!(install_7045.logsource.service.as_deref(), Some("system"));
    // NXLog's zone-less TimeCreated, read in the context's zone (UTC here).
    assert_eq!(
        install_7045.timestamp.to_rfc3339(),
        "2020-10-19T03:30:46.416+00:00"
    );

    assert!(events.iter().any(|event| {
        event_id(event) == 1
            && text(event, "CommandLine").contains("reg\" save HKLM\\security\\policy\\secrets")
    }));
}

/// SDWIN-201021204544 (T1543.003): `sc config Fax binPath=` to PowerShell, as process
/// creation and as the registry write of the service's ImagePath.
#[test]
fn fax_service_modification() {
    let events = recording("cmd_service_mod_fax_2020-10-2120454410");
    assert!(events.iter().any(|event| {
        event.logsource.category.as_deref() == Some("process_creation")
            && text(event, "Image").ends_with("\\sc.exe")
            && text(event, "CommandLine").contains("config Fax binPath=")
    }));
    assert!(events.iter().any(|event| {
        event.logsource.category.as_deref() == Some("registry_set")
            && text(event, "TargetObject").ends_with("\\Services\\Fax\\ImagePath")
            && text(event, "Details").contains("powershell.exe")
    }));
}

/// SDWIN-201019224718 (T1037.001): the UserInitMprLogonScript registry value.
#[test]
fn logon_script_registry_value() {
    let events = recording("cmd_userinitmprlogonscript_batch_2020-10-1922471810");
    let set = events
        .iter()
        .find(|event| {
            text(event, "TargetObject").ends_with("\\Environment\\UserInitMprLogonScript")
        })
        .unwrap_or_else(|| panic!("no registry event for UserInitMprLogonScript"));
    assert_eq!(set.logsource.category.as_deref(), Some("registry_set"));
    assert_eq!(event_id(set), 13);
}

/// The evtx crate's JSON lines, read as text, agree with reading the EVTX file itself.
#[test]
fn evtx_json_lines_read_like_the_evtx_file() {
    for name in [
        "sysmon",
        "security",
        "new-user-security",
        "Application_no_crc32",
    ] {
        let from_lines = decode_lines(
            &format!("{EVTX_SAMPLES}/jsonl/{name}.jsonl"),
            InputFormat::Auto,
        );
        let mut from_file = Vec::new();
        decode_evtx(
            read(&format!("{EVTX_SAMPLES}/evtx/{name}.evtx")),
            &context(name),
            &mut from_file,
        )
        .unwrap_or_else(|error| panic!("{name}: {error}"));
        let by_record: BTreeMap<u64, &Event> = from_file
            .iter()
            .filter_map(|event| Some((event.source.sequence?, event)))
            .collect();
        let mut compared = 0;
        for event in &from_lines {
            assert_eq!(
                event.format,
                Format::Winevent,
                "{name}: {:?}",
                event.parse_error
            );
            let record_id = event.fields["event_record_id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: record id"));
            let twin = by_record
                .get(&record_id)
                .unwrap_or_else(|| panic!("{name}: record {record_id}"));
            assert_eq!(event.fields["EventID"], twin.fields["EventID"]);
            assert_eq!(event.logsource, twin.logsource, "{name} #{record_id}");
            assert_eq!(
                event.core.user_name, twin.core.user_name,
                "{name} #{record_id}"
            );
            assert_eq!(
                event.core.process_executable, twin.core.process_executable,
                "{name} #{record_id}"
            );
            assert_eq!(event.core.host_name, twin.core.host_name);
            // 0.14 rendered SystemTime with microseconds, 0.15 with 100 ns: same to the µs.
            let delta = (event.timestamp - twin.timestamp)
                .num_microseconds()
                .unwrap_or(i64::MAX);
            assert!(
                delta.abs() < 1,
                "{name} #{record_id}: {} vs {}",
                event.timestamp,
                twin.timestamp
            );
            compared += 1;
        }
        println!("{name}.jsonl: {compared} events agree with {name}.evtx");
        assert!(compared > 0);
    }
}

/// CrowdSec's `windows-logs`/`windows-bf` fixtures are Windows event XML (Event Viewer's
/// copy-paste, with its `- ` prefixes). XML is not a supported input: each line must still
/// become one event, `format: unknown`, bytes kept, with a parse error.
#[test]
fn windows_event_xml_is_kept_as_unknown() {
    for (file, lines) in [
        ("windows-logs/windows-logs.log", 1),
        ("windows-bf/windows-bf.log", 6),
    ] {
        let events = decode_lines(&format!("{CROWDSEC}/{file}"), InputFormat::Auto);
        assert_eq!(events.len(), lines, "{file}");
        for event in &events {
            assert_eq!(event.format, Format::Unknown, "{file}");
            assert!(event.parse_error.is_some());
            assert!(event
                .raw
                .as_deref()
                .unwrap_or("")
                .contains("<EventID>4625</EventID>"));
        }
    }
}
