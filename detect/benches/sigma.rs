#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! Sigma throughput: events/s on one core with every production SigmaHQ rule loaded, over the
//! OTRF Windows recordings in `tests/data/`, through `SigmaEngine` (logsource routing + field
//! view) and, as the peer in the same run, through one plain rsigma `Engine` holding all rules
//! evaluating the same events as JSON. Also the city rules over the bundled mixed samples.
//! The pack path comes from `CITYSOC_SIGMA_PACK`; without it the pack benches are skipped.
//! Run: `CITYSOC_SIGMA_PACK=../shared/sigma cargo bench -p citysoc-detect --bench sigma`.

use std::hint::black_box;
use std::path::PathBuf;

use citysoc_collector::{Decoder, Event, InputFormat, ParseContext};
use citysoc_detect::{SigmaEngine, SigmaOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rsigma_eval::{Engine, JsonEvent};

#[global_allocator]
static ALLOCATOR: citysoc_alloc::Allocator = citysoc_alloc::Allocator;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn decode_files(paths: &[PathBuf]) -> Vec<Event> {
    let mut events = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut decoder = Decoder::new(InputFormat::Auto, ParseContext::new("bench"));
        for line in text.lines() {
            decoder.decode(line.as_bytes(), &mut events);
        }
        decoder.finish(&mut events);
    }
    events
}

fn otrf_windows_events() -> Vec<Event> {
    let directory =
        repository().join("tests/data/windows-linux-attack-otrf-security-datasets/windows");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(directory)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    decode_files(&paths)
}

fn bench_pack(criterion: &mut Criterion) {
    let Some(pack) = std::env::var_os("CITYSOC_SIGMA_PACK").map(PathBuf::from) else {
        eprintln!("sigma bench: CITYSOC_SIGMA_PACK not set, the SigmaHQ pack benches did not run");
        return;
    };
    let folders: Vec<PathBuf> = ["rules", "rules-emerging-threats", "rules-threat-hunting"]
        .iter()
        .map(|name| pack.join(name))
        .filter(|path| path.is_dir())
        .collect();
    let (mut engine, report) = SigmaEngine::load(&folders, SigmaOptions::default())
        .unwrap_or_else(|error| panic!("{error}"));
    let events = otrf_windows_events();
    eprintln!(
        "sigma bench: {} rules loaded ({} problems), {} Windows events",
        report.rules,
        report.problems.len(),
        events.len()
    );

    let mut group = criterion.benchmark_group("sigma");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(20);
    group.bench_function("sigmahq-pack/windows/citysoc", |bencher| {
        bencher.iter(|| {
            for event in &events {
                black_box(engine.process(black_box(event)));
            }
        })
    });

    let stats = engine.stats();
    eprintln!(
        "sigma bench: {} of {} rules behind the literal gate; {:.1} gated rules evaluated per event",
        engine.gated_rule_count(),
        engine.rule_count(),
        stats.gated_rule_evaluations as f64 / stats.events.max(1) as f64
    );

    // The peer: all rules in one rsigma Engine, events as flat JSON, no routing by us.
    let mut peer = Engine::new();
    for file in citysoc_detect::sigma::rule_files(&folders).unwrap_or_default() {
        if let Ok(collection) =
            rsigma_parser::parse_sigma_yaml(&std::fs::read_to_string(&file).unwrap_or_default())
        {
            for rule in &collection.rules {
                let _ = peer.add_rule(rule);
            }
        }
    }
    let json_events: Vec<serde_json::Value> = events
        .iter()
        .map(|event| {
            let mut flat = event.fields.to_map();
            event.core.visit(|name, value| {
                let json = match value {
                    citysoc_collector::CoreValue::Text(text) => serde_json::Value::from(text),
                    citysoc_collector::CoreValue::Number(number) => serde_json::Value::from(number),
                };
                flat.insert(name.to_owned(), json);
            });
            serde_json::Value::Object(flat)
        })
        .collect();
    group.bench_function("sigmahq-pack/windows/rsigma-engine-alone", |bencher| {
        bencher.iter(|| {
            for event in &json_events {
                black_box(peer.evaluate(&JsonEvent::borrow(black_box(event))));
            }
        })
    });
    group.finish();
}

fn bench_city(criterion: &mut Criterion) {
    let rules = repository().join("rules/sigma");
    if !rules.is_dir() {
        eprintln!("sigma bench: no rules/sigma, the city rules bench did not run");
        return;
    }
    let options = SigmaOptions {
        mappings: citysoc_detect::sigma::mapping::FieldMappings::load_dir(
            &repository().join("rules/mappings"),
        )
        .unwrap_or_default(),
        ..SigmaOptions::default()
    };
    let (mut engine, report) =
        SigmaEngine::load(&[rules], options).unwrap_or_else(|error| panic!("{error}"));
    let samples: Vec<PathBuf> = [
        "quan1-fortigate.log",
        "portal-nginx-access.log",
        "linux-auth.log",
        "audit.log",
        "firewall-cef.log",
        "sysmon.ndjson",
    ]
    .iter()
    .map(|name| repository().join("samples").join(name))
    .collect();
    let base = decode_files(&samples);
    // A stream, not a loop over the same records: every copy gets its own id and a later time,
    // as a live feed would (repeating identical events would pile up in correlation windows).
    let start = chrono::Utc::now();
    let events: Vec<Event> = base
        .iter()
        .cycle()
        .take(1_000)
        .enumerate()
        .map(|(index, event)| {
            let mut event = event.clone();
            event.id = format!("{}-{index}", event.id);
            event.timestamp = start + chrono::Duration::seconds(index as i64);
            event
        })
        .collect();
    eprintln!(
        "sigma bench: {} city rules, {} mixed events",
        report.rules,
        events.len()
    );
    let mut group = criterion.benchmark_group("sigma");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("city-rules/mixed-samples", |bencher| {
        bencher.iter(|| {
            for event in &events {
                black_box(engine.process(black_box(event)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_pack, bench_city);
criterion_main!(benches);
