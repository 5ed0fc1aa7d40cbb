#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // criterion_group! generates an undocumented function
//! Disk buffer throughput: appending groups of 1,000 event-sized records (~400 bytes, what a
//! source hands over per batch), and the forwarder's side (read 1,000 + acknowledge), with
//! interval sync (the production setting) and with a sync per append. Run:
//! `cargo bench -p citysoc-collector --bench buffer`.

use std::hint::black_box;
use std::time::Duration;

use citysoc_collector::{BufferConfig, DiskBuffer, SyncPolicy, WhenFull};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[global_allocator]
static ALLOCATOR: citysoc_alloc::Allocator = citysoc_alloc::Allocator;

const RECORDS: usize = 1_000;

fn records() -> Vec<Vec<u8>> {
    (0..RECORDS)
        .map(|index| {
            let mut record = format!(
                r#"{{"id":"{index:032x}","timestamp":"2026-11-22T03:00:00Z","format":"rfc3164","raw":"<38>Nov 22 10:00:00 web-01 sshd[{index}]: Failed password for invalid user admin from 203.113.1.{} port 40000 ssh2","#,
                index % 256
            )
            .into_bytes();
            record.resize(400, b' ');
            record.push(b'}');
            record
        })
        .collect()
}

fn config(sync: SyncPolicy) -> BufferConfig {
    BufferConfig {
        max_bytes: 4 << 30,
        segment_bytes: 64 << 20,
        when_full: WhenFull::Block,
        sync,
    }
}

fn append(criterion: &mut Criterion) {
    let records = records();
    let bytes: usize = records.iter().map(Vec::len).sum();
    let mut group = criterion.benchmark_group("buffer");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (name, sync) in [
        (
            "append_1000_interval_sync",
            SyncPolicy::Interval(Duration::from_secs(1)),
        ),
        ("append_1000_sync_each", SyncPolicy::EveryAppend),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let buffer = DiskBuffer::open(dir.path(), config(sync)).unwrap();
        group.bench_function(name, |bench| {
            bench.iter(|| {
                buffer.append(black_box(&records), Duration::ZERO).unwrap();
                // Keep the disk use flat: what a forwarder keeping up would do.
                let stats = buffer.stats();
                buffer
                    .ack(citysoc_collector::Offset(stats.next_offset.0 - 1))
                    .unwrap();
            });
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(
        dir.path(),
        config(SyncPolicy::Interval(Duration::from_secs(1))),
    )
    .unwrap();
    group.bench_function("read_and_ack_1000", |bench| {
        bench.iter(|| {
            buffer.append(&records, Duration::ZERO).unwrap();
            let batch = buffer
                .read(None, RECORDS, bytes * 2, Duration::ZERO)
                .unwrap();
            buffer.ack(black_box(batch.last().unwrap().0)).unwrap();
        });
    });
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
