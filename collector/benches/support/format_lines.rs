//! The non-syslog records the parse bench and `examples/parse_cpu.rs` share: ~150–270 bytes
//! each, one per format, with numbers varied per record so nothing is cached.

/// CEF from a FortiGate, with an escaped `=` in an extension value.
pub fn cef(index: usize) -> String {
    format!(
        "CEF:0|Fortinet|FortiGate|7.2|{}|traffic denied|5|src=10.{}.{}.{} dst=203.113.{}.{} spt={} dpt=443 act=deny suser=user{} msg=policy\\=blocked rt={}",
        13_000 + index % 50, index % 256, (index * 3) % 256, (index * 7) % 256, index % 256, (index * 11) % 256, 30_000 + index, index % 40, 1_763_700_000_000u64 + index as u64
    )
}

/// LEEF 2.0 with `^` as its delimiter.
pub fn leef(index: usize) -> String {
    format!(
        "LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.{}.{}.{}^dst=172.16.{}.{}^srcPort={}^dstPort=445^usrName=nv{}^devTime=Nov 22 2026 10:{:02}:{:02}^cat=lateral",
        index % 256, (index * 3) % 256, (index * 7) % 256, index % 256, (index * 5) % 256, 50_000 + index % 10_000, index % 99, index % 60, (index * 7) % 60
    )
}

/// FortiGate key=value with quoted values.
pub fn kv(index: usize) -> String {
    format!(
        "date=2026-11-22 time=10:{:02}:{:02} devname=\"FG100F-Q1\" devid=\"FG100FTK2200{}\" logid=\"0100032002\" type=\"event\" subtype=\"system\" level=\"alert\" user=\"admin\" srcip=185.{}.{}.{} action=\"login\" status=\"failed\"",
        index % 60, (index * 7) % 60, index % 10, index % 256, (index * 3) % 256, (index * 7) % 256
    )
}

/// An application's NDJSON line.
pub fn json(index: usize) -> String {
    format!(
        "{{\"@timestamp\":\"2026-11-22T03:{:02}:{:02}Z\",\"service\":\"lgsp-gateway\",\"user\":\"citizen{}\",\"client_ip\":\"113.{}.{}.{}\",\"path\":\"/api/v1/ho-so/{}\",\"status\":{}}}",
        index % 60, (index * 7) % 60, index, index % 256, (index * 3) % 256, (index * 7) % 256, index * 17, 200 + index % 3
    )
}

/// Sysmon process creation as flat JSON (NXLog shape).
pub fn winevent(index: usize) -> String {
    format!(
        "{{\"EventID\":1,\"Channel\":\"Microsoft-Windows-Sysmon/Operational\",\"Hostname\":\"PC-{:03}.ubnd.local\",\"EventTime\":\"2026-11-22 10:{:02}:{:02}\",\"Image\":\"C:\\\\Windows\\\\System32\\\\cmd.exe\",\"CommandLine\":\"cmd.exe /c whoami /all {}\",\"ParentImage\":\"C:\\\\Windows\\\\explorer.exe\",\"User\":\"UBND\\\\nv{}\"}}",
        index % 500, index % 60, (index * 7) % 60, index, index % 80
    )
}

/// One auditd SYSCALL record.
pub fn auditd(index: usize) -> String {
    format!(
        "type=SYSCALL msg=audit(1763780000.{:03}:{}): arch=c000003e syscall=59 success=yes exit=0 a0=55d1 a1=55d2 a2=55d3 a3=0 items=2 ppid={} pid={} auid=1000 uid=0 comm=\"bash\" exe=\"/usr/bin/bash\" key=\"exec\"",
        index % 1000, 100_000 + index, 3000 + index, 4000 + index
    )
}

/// An nginx/Apache combined access-log line.
pub fn access(index: usize) -> String {
    format!(
        "113.{}.{}.{} - - [22/Nov/2026:10:{:02}:{:02} +0700] \"GET /dich-vu-cong/tra-cuu?ma={} HTTP/1.1\" 200 {} \"https://dichvucong.hochiminhcity.gov.vn/\" \"Mozilla/5.0 (Windows NT 10.0; Win64; x64)\"",
        index % 256, (index * 3) % 256, (index * 7) % 256, index % 60, (index * 7) % 60, index * 13, 1000 + index
    )
}

/// A Sysmon process creation as Winlogbeat ships it (`winlog.event_data` nested, ~440 bytes):
/// what host agents send to the HTTP intake (the event `scripts/http-intake-bench.sh` sends),
/// read with `auto` as the HTTP source does. Over the ~270 bytes of the others: the
/// nesting is what this one measures.
pub fn winlogbeat(index: usize) -> String {
    format!(
        "{{\"@timestamp\":\"2026-11-22T03:{:02}:{:02}.{:03}Z\",\"winlog\":{{\"channel\":\"Microsoft-Windows-Sysmon/Operational\",\"event_id\":1,\"computer_name\":\"PC-{:03}.ubnd.local\",\"event_data\":{{\"Image\":\"C:\\\\Windows\\\\System32\\\\cmd.exe\",\"CommandLine\":\"cmd.exe /c whoami /all {}\",\"ParentImage\":\"C:\\\\Windows\\\\explorer.exe\",\"User\":\"UBND\\\\nv{}\",\"ProcessId\":\"{}\",\"Hashes\":\"SHA256={:064x}\"}}}},\"host\":{{\"name\":\"PC-{:03}\"}}}}",
        index % 60, (index * 7) % 60, index % 1000, index % 500, index, index % 80, 4000 + index % 30000, index, index % 500
    )
}
