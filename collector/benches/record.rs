#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // criterion_group! generates an undocumented function
//! The compact record: encoding 1,000 parsed events of each bench syslog shape (what a source
//! does per event before the disk buffer), with `fields` in binary (what collectors write) and,
//! as the peer in the same run, with `fields` as JSON text (what they wrote before); and
//! decoding both (what the server's intake does per event). Prints the average record size of
//! each shape and encoding first. Run: `cargo bench -p citysoc-collector --bench record`;
//! figures in BENCHMARKS.md "Collector throughput".

use std::hint::black_box;

use citysoc_collector::record::{decode, encode, encode_legacy};
use citysoc_collector::{parse_record, Event, InputFormat, ParseContext};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod support {
    pub mod syslog_lines;
}
use support::syslog_lines::{rfc3164_filterlog_kv, rfc3164_firewall, rfc3164_sshd, rfc5424};

#[global_allocator]
static ALLOCATOR: citysoc_alloc::Allocator = citysoc_alloc::Allocator;

const RECORDS: usize = 1_000;

type Case = (&'static str, InputFormat, fn(usize) -> String);

const CASES: &[Case] = &[
    ("rfc3164-sshd", InputFormat::Rfc3164, rfc3164_sshd),
    ("rfc3164-firewall", InputFormat::Rfc3164, rfc3164_firewall),
    (
        "rfc3164-filterlog-kv",
        InputFormat::Rfc3164,
        rfc3164_filterlog_kv,
    ),
    ("rfc5424", InputFormat::Rfc5424, rfc5424),
];

/// Events as a TCP source stamps them (agency, collector, peer address, sequence).
fn events(input_format: InputFormat, template: fn(usize) -> String) -> Vec<Event> {
    let context = ParseContext::new("tcp")
        .with_agency("ubnd-quan-1")
        .with_collector("col-q1-01")
        .with_address("10.20.1.7:51514");
    (0..RECORDS)
        .map(|index| {
            let line = template(index);
            parse_record(line.as_bytes(), input_format, &context, index as u64)
        })
        .collect()
}

type Encoder = fn(&Event, &mut Vec<u8>) -> Result<(), citysoc_collector::CollectorError>;

const ENCODINGS: [(&str, Encoder); 2] = [("binary-fields", encode), ("json-fields", encode_legacy)];

fn average(records: &[Vec<u8>]) -> usize {
    records.iter().map(Vec::len).sum::<usize>() / records.len().max(1)
}

fn bench_record(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("record");
    for (name, input_format, template) in CASES {
        let events = events(*input_format, *template);
        let line = average(
            &(0..RECORDS)
                .map(|index| template(index).into_bytes())
                .collect::<Vec<_>>(),
        );
        for (encoding, encoder) in ENCODINGS {
            let records: Vec<Vec<u8>> = events
                .iter()
                .map(|event| {
                    let mut out = Vec::new();
                    encoder(event, &mut out).unwrap();
                    out
                })
                .collect();
            let json = average(
                &events
                    .iter()
                    .map(|event| sonic_rs::to_vec(event).unwrap())
                    .collect::<Vec<_>>(),
            );
            eprintln!(
                "{name} {encoding}: line {line} bytes, record {} bytes (event JSON {json})",
                average(&records)
            );
            group.throughput(Throughput::Elements(RECORDS as u64));
            group.bench_function(format!("encode/{name}/{encoding}"), |bencher| {
                let mut out = Vec::with_capacity(1 << 20);
                bencher.iter(|| {
                    out.clear();
                    for event in &events {
                        encoder(black_box(event), &mut out).unwrap();
                    }
                    black_box(out.len())
                })
            });
            group.bench_function(format!("decode/{name}/{encoding}"), |bencher| {
                bencher.iter(|| {
                    for record in &records {
                        black_box(decode(black_box(record)).unwrap());
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_record);
criterion_main!(benches);
