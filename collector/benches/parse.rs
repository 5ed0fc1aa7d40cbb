#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! Parse throughput per format, for `auto`, and a baseline that only splits lines.
//!
//! Each bench parses 1,000 records of one format (syslog-sized, ~200 bytes, with varying
//! numbers so nothing is cached) into full `Event`s, as the collector does. The syslog lines
//! (`support/syslog_lines.rs`, shared with `examples/parse_cpu.rs`) are shaped like the real
//! samples in `tests/data`: sshd, a kernel netfilter drop, RFC 5424 with structured data. The baseline only
//! frames the same bytes into lines, so "ratio to baseline" says what parsing costs on top of
//! reading. Run: `cargo bench -p citysoc-collector --bench parse`; figures in BENCHMARKS.md.

use std::hint::black_box;

use citysoc_collector::framing::{split_all, Framer, Framing};
use citysoc_collector::{parse_record, Decoder, InputFormat, ParseContext};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod support {
    pub mod format_lines;
    pub mod syslog_lines;
}
use support::format_lines::{access, auditd, cef, json, kv, leef, winevent, winlogbeat};
use support::syslog_lines::{rfc3164_filterlog_kv, rfc3164_firewall, rfc3164_sshd, rfc5424};

/// The same allocator as the `citysoc` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: citysoc_alloc::Allocator = citysoc_alloc::Allocator;

const RECORDS: usize = 1_000;

fn lines(template: fn(usize) -> String) -> Vec<Vec<u8>> {
    (0..RECORDS)
        .map(|index| template(index).into_bytes())
        .collect()
}

/// A bench case: name, the fixed format, and the record generator.
type FormatCase = (&'static str, InputFormat, fn(usize) -> String);

const FORMATS: &[FormatCase] = &[
    ("rfc3164-sshd", InputFormat::Rfc3164, rfc3164_sshd),
    ("rfc3164-firewall", InputFormat::Rfc3164, rfc3164_firewall),
    (
        "rfc3164-filterlog-kv",
        InputFormat::Rfc3164,
        rfc3164_filterlog_kv,
    ),
    ("rfc5424", InputFormat::Rfc5424, rfc5424),
    ("cef", InputFormat::Cef, cef),
    ("leef", InputFormat::Leef, leef),
    ("kv", InputFormat::Kv, kv),
    ("json", InputFormat::Json, json),
    ("winevent", InputFormat::Winevent, winevent),
    ("auditd", InputFormat::Auditd, auditd),
    ("access", InputFormat::Access, access),
];

/// Formats measured alone but kept out of the `auto-mixed` mix, so that its figure stays
/// comparable with the runs before they were added: a Winlogbeat event (nested JSON, ~440
/// bytes) read with `auto`, as the HTTP intake reads host agents' events.
const AGENT_FORMATS: &[FormatCase] = &[("winlogbeat", InputFormat::Auto, winlogbeat)];

fn average_length(records: &[Vec<u8>]) -> usize {
    records.iter().map(Vec::len).sum::<usize>() / records.len().max(1)
}

fn bench_formats(criterion: &mut Criterion) {
    // A transport the sources use, so the context is the one events get in production (a
    // borrowed transport name, not a copy per event).
    let context = ParseContext::new("file");
    let mut group = criterion.benchmark_group("parse");
    for (name, input_format, template) in FORMATS.iter().chain(AGENT_FORMATS) {
        let records = lines(*template);
        eprintln!("{name}: average record {} bytes", average_length(&records));
        group.throughput(Throughput::Elements(RECORDS as u64));
        group.bench_function(*name, |bencher| {
            bencher.iter(|| {
                for (sequence, record) in records.iter().enumerate() {
                    black_box(parse_record(
                        black_box(record),
                        *input_format,
                        &context,
                        sequence as u64,
                    ));
                }
            })
        });
    }

    // `auto` over a mix of every format, through the Decoder as `citysoc parse` runs it.
    let mixed: Vec<Vec<u8>> = (0..RECORDS)
        .map(|index| (FORMATS[index % FORMATS.len()].2)(index).into_bytes())
        .collect();
    eprintln!(
        "auto-mixed: average record {} bytes",
        average_length(&mixed)
    );
    group.bench_function("auto-mixed", |bencher| {
        bencher.iter(|| {
            let mut decoder = Decoder::new(InputFormat::Auto, context.clone());
            let mut events = Vec::with_capacity(RECORDS);
            for record in &mixed {
                decoder.decode(black_box(record), &mut events);
            }
            decoder.finish(&mut events);
            black_box(events)
        })
    });
    // `auto` over syslog only (sshd, kernel firewall and RFC 5424 lines in turn): what a
    // collector behind a server and firewall farm mostly sees.
    let syslog = syslog_mix();
    eprintln!(
        "auto-syslog: average record {} bytes",
        average_length(&syslog)
    );
    group.bench_function("auto-syslog", |bencher| {
        bencher.iter(|| {
            for (sequence, record) in syslog.iter().enumerate() {
                black_box(parse_record(
                    black_box(record),
                    InputFormat::Auto,
                    &context,
                    sequence as u64,
                ));
            }
        })
    });
    group.finish();
}

/// The three syslog shapes in turn.
fn syslog_mix() -> Vec<Vec<u8>> {
    const SYSLOG: [fn(usize) -> String; 3] = [rfc3164_sshd, rfc3164_firewall, rfc5424];
    (0..RECORDS)
        .map(|index| (SYSLOG[index % SYSLOG.len()])(index).into_bytes())
        .collect()
}

/// The baseline: newline framing of the same syslog bytes (the `auto-syslog` mix), no parsing.
fn bench_baseline(criterion: &mut Criterion) {
    let mut stream = Vec::new();
    for record in syslog_mix() {
        stream.extend_from_slice(&record);
        stream.push(b'\n');
    }
    let mut group = criterion.benchmark_group("baseline");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("split-lines", |bencher| {
        bencher.iter(|| {
            let mut framer = Framer::new(Framing::Newline, 64 * 1024);
            let mut rest = black_box(stream.as_slice());
            let mut count = 0usize;
            while let Some(frame) = framer.next_frame(rest, true) {
                count += black_box(frame.bytes).len();
                rest = &rest[frame.consumed..];
            }
            count
        })
    });
    group.finish();
    debug_assert_eq!(
        split_all(Framing::Newline, 64 * 1024, &stream).len(),
        RECORDS
    );
}

/// Peers in the same run: syslog_loose (Vector's syslog parser) on the same syslog lines, and
/// serde_json's `Value` on the same JSON records. They do no event building (no id, no raw
/// copy, no sshd reading, no core fields), so each is an upper bound for parsing alone; the
/// ratio says what our full event costs.
fn bench_peer(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("peer");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (name, template) in [
        (
            "syslog_loose-rfc3164-sshd",
            rfc3164_sshd as fn(usize) -> String,
        ),
        ("syslog_loose-rfc3164-firewall", rfc3164_firewall),
        ("syslog_loose-rfc5424", rfc5424),
    ] {
        let texts: Vec<String> = (0..RECORDS).map(template).collect();
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                for text in &texts {
                    black_box(syslog_loose::parse_message(
                        black_box(text),
                        syslog_loose::Variant::Either,
                    ));
                }
            })
        });
    }
    // serde_json (what Vector's and most Rust tools' JSON intake is) building its `Value` tree
    // of the same JSON records: no event, no id, no raw copy, no core fields. Our JSON parse
    // starts with the same deserialization, so the ratio is what the event costs on top.
    for (name, template) in [
        ("serde_json-value-json", json as fn(usize) -> String),
        ("serde_json-value-winlogbeat", winlogbeat),
    ] {
        let texts: Vec<String> = (0..RECORDS).map(template).collect();
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                for text in &texts {
                    black_box(serde_json::from_str::<serde_json::Value>(black_box(text)).ok());
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_baseline, bench_peer, bench_formats);
criterion_main!(benches);
