#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! Threat-intel matching throughput with 100,000 indicators loaded versus 10: the lookups are
//! hash and prefix lookups, so the two should be close (the ratio shows matching does not scan
//! the lists).
//!
//! The events are a realistic mix, parsed once up front: FortiGate traffic, Sysmon process
//! creation (hashes) and DNS queries, nginx access lines, CEF; about one in ten matches. Each
//! bench matches 1,000 events. Run: `cargo bench -p citysoc-detect --bench intel`.
//!
//! First run (2026-11-22, 2 cores shared with other builds, load average 4 to 5, so ±10% or
//! worse): 100,000 indicators 1.61 ms per 1,000 events (620k events/s); 10 indicators 2.85 ms
//! (351k/s, slower only by noise); 100,000 without the all-fields address scan 1.99 ms (503k/s);
//! parsing and building 100,000 indicators from CSV 159 ms.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;

use citysoc_collector::{parse_record, Event, InputFormat, ParseContext};
use citysoc_detect::intel::{parse_list, IntelSet, LoadOptions, MatchOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const EVENTS: usize = 1_000;

/// A deterministic pseudo-random sequence (no dependency needed for a bench).
fn mix(seed: u64) -> u64 {
    let mut value = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// `count` indicators: 40% addresses, 10% networks, 25% domains, 10% URLs, 15% hashes. The
/// first few are the ones the matching events use.
fn indicator_csv(count: usize) -> String {
    let mut csv = String::from("type,value\nip,203.0.113.77\ncidr,198.51.100.0/25\ndomain,evil.example\nsha256,3f1c2a9e0b5d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f\nurl,http://update.evil.example/dl/m.exe\n");
    for index in 5..count {
        let random = mix(index as u64);
        let octets = random.to_be_bytes();
        let _ = match index % 20 {
            0..=7 => writeln!(
                csv,
                "ip,{}.{}.{}.{}",
                11 + octets[0] % 200,
                octets[1],
                octets[2],
                octets[3]
            ),
            8 => writeln!(
                csv,
                "cidr,{}.{}.{}.0/24",
                11 + octets[0] % 200,
                octets[1],
                octets[2]
            ),
            9 => writeln!(csv, "cidr,2001:db8:{:x}::/48", random & 0xffff),
            10..=14 => writeln!(csv, "domain,d{random:x}.example"),
            15 | 16 => writeln!(
                csv,
                "url,http://u{:x}.example/p/{:x}.php",
                random >> 40,
                random & 0xffff
            ),
            17 | 18 => writeln!(
                csv,
                "sha256,{random:016x}{:016x}{:016x}{:016x}",
                mix(random),
                mix(random + 1),
                mix(random + 2)
            ),
            _ => writeln!(csv, "md5,{random:016x}{:016x}", mix(random)),
        };
    }
    csv
}

fn set_of(count: usize) -> IntelSet {
    let path = PathBuf::from(format!("bench-{count}.csv"));
    let list = parse_list(&path, &indicator_csv(count), &LoadOptions::default());
    assert!(list.problems.is_empty(), "{:?}", list.problems.first());
    let set = IntelSet::build([(path, list)]);
    assert!(
        set.indicators().len() >= count * 99 / 100,
        "{} indicators",
        set.indicators().len()
    );
    set
}

fn record(index: usize) -> String {
    let random = mix(1_000_000 + index as u64).to_be_bytes();
    // One event in ten of each kind (but the access lines) uses a listed indicator.
    let listed = (index / 5).is_multiple_of(10);
    match index % 5 {
        0 => {
            let source = if listed {
                "203.0.113.77".to_owned()
            } else {
                format!("10.{}.{}.{}", random[0], random[1], random[2])
            };
            format!(
                r#"<189>date=2026-11-22 time=08:02:40 devname="FG100F-QUAN1" devid="FG100FTK22001234" logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" srcip={source} srcport=51234 srcintf="lan" dstip=172.16.{}.{} dstport=443 dstintf="wan1" proto=6 action="accept" policyid=7 service="HTTPS" transip=100.64.0.1 sentbyte=1200 rcvdbyte=5400"#,
                random[3], random[4]
            )
        }
        1 => {
            let hash = if listed {
                "3F1C2A9E0B5D4E6F7A8B9C0D1E2F3A4B5C6D7E8F9A0B1C2D3E4F5A6B7C8D9E0F".to_owned()
            } else {
                format!(
                    "{:016X}{:016X}{:016X}{:016X}",
                    mix(index as u64),
                    mix(index as u64 + 1),
                    mix(index as u64 + 2),
                    mix(index as u64 + 3)
                )
            };
            format!(
                r#"{{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"PC-{index}.ubnd-q3.local","EventTime":"2026-11-22 08:30:12","Image":"C:\\Windows\\System32\\svchost.exe","CommandLine":"svchost.exe -k netsvcs","ParentImage":"C:\\Windows\\System32\\services.exe","User":"NT AUTHORITY\\SYSTEM","Hashes":"MD5={:016X}{:016X},SHA256={hash},IMPHASH={:016X}{:016X}"}}"#,
                mix(7),
                mix(8),
                mix(9),
                mix(10)
            )
        }
        2 => {
            let name = if listed {
                "cdn.evil.example".to_owned()
            } else {
                format!("www{}.site{}.com.vn", random[0], random[1])
            };
            format!(
                r#"{{"EventID":22,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"PC-{index}.motcua.local","EventTime":"2026-11-22 09:00:02","Image":"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe","QueryName":"{name}","QueryStatus":"0","QueryResults":"::ffff:93.184.{}.{};"}}"#,
                random[2], random[3]
            )
        }
        3 => format!(
            r#"203.0.{}.{} - - [22/Nov/2026:08:10:01 +0700] "GET /dich-vu-cong/tra-cuu-ho-so?ma=HS2026-{index:06} HTTP/1.1" 200 5123 "https://dichvucong.example.gov.vn/" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/130.0""#,
            random[0], random[1]
        ),
        _ => {
            let url = if listed {
                "http://update.evil.example/dl/m.exe".to_owned()
            } else {
                format!("https://cdn{}.example.com/assets/{index}.js", random[0])
            };
            format!(
                r#"<134>Nov 22 08:40:00 proxy-01 CEF:0|CityProxy|WebGW|2.0|100|URL request|3|src=10.3.{}.{} dst=198.18.0.{} request={url} requestMethod=GET act=allowed suser=user{index}"#,
                random[1], random[2], random[3]
            )
        }
    }
}

fn events() -> Vec<Event> {
    let context = ParseContext::new("bench");
    (0..EVENTS)
        .map(|index| {
            parse_record(
                record(index).as_bytes(),
                InputFormat::Auto,
                &context,
                index as u64,
            )
        })
        .collect()
}

fn bench_matching(criterion: &mut Criterion) {
    let events = events();
    let large = set_of(100_000);
    let small = set_of(10);
    let matches = |set: &IntelSet| {
        events
            .iter()
            .map(|event| set.alerts(event, &MatchOptions::default()).len())
            .sum::<usize>()
    };
    let (large_matches, small_matches) = (matches(&large), matches(&small));
    assert_eq!(
        large_matches, small_matches,
        "the same events match in both sets"
    );
    assert!(large_matches >= EVENTS * 8 / 100, "{large_matches} matches");

    let mut group = criterion.benchmark_group("intel");
    group.throughput(Throughput::Elements(EVENTS as u64));
    let table_only = MatchOptions {
        scan_all_fields_for_addresses: false,
    };
    for (name, set, options) in [
        ("match_100k_indicators", &large, MatchOptions::default()),
        ("match_10_indicators", &small, MatchOptions::default()),
        (
            "match_100k_indicators_table_fields_only",
            &large,
            table_only,
        ),
    ] {
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                let mut alerts = 0usize;
                for event in &events {
                    alerts += set.alerts(black_box(event), &options).len();
                }
                black_box(alerts)
            });
        });
    }
    group.finish();

    let mut load = criterion.benchmark_group("intel_load");
    load.sample_size(10);
    let csv = indicator_csv(100_000);
    load.throughput(Throughput::Elements(100_000));
    load.bench_function("parse_and_build_100k", |bencher| {
        bencher.iter(|| {
            let path = PathBuf::from("bench.csv");
            let list = parse_list(&path, black_box(&csv), &LoadOptions::default());
            IntelSet::build([(path, list)]).indicators().len()
        });
    });
    load.finish();
}

criterion_group!(benches, bench_matching);
criterion_main!(benches);
