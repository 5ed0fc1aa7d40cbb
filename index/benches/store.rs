//! Storage and search at city scale, as a bench binary (criterion's repeated sampling does not
//! fit a 10-million-event index). Run:
//!
//! ```text
//! cargo bench -p citysoc-index --bench store            # 10,000,000 events
//! CITYSOC_BENCH_EVENTS=1000000 cargo bench -p citysoc-index --bench store
//! ```
//!
//! 1. Indexing, one writer thread: our store (folded keywords, tokens, original fields, the
//!    event JSON stored, dedup by id) against a peer in the same run on the same events: plain
//!    tantivy indexing the raw line into one default-tokenized text field plus a fast
//!    timestamp — the least a log index does — and the same without positions (no phrase
//!    search). Reported as events/s, MB/s of raw log and the ratio to the first peer.
//!
//! 2. Search over one agency-day holding every event (24 hours): a needle IP (10 events), a
//!    needle word, a 24-hour histogram by hour, and a count-by; p50 and p95 of repeated runs.
//!
//! 3. With `CITYSOC_CLICKHOUSE_URL` set (a server from `scripts/clickhouse.sh start DIR`):
//!    inserting the first events into ClickHouse through our store (RowBinary, batches of
//!    10,000), against a peer in the same run: curl posting the same raw lines as TSV into a
//!    one-column table over the same HTTP interface.
//!
//! `CITYSOC_BENCH_ONLY_INDEXING=1` stops after step 1 (and the ClickHouse step), for quick
//! iterations on the indexing path. "Per core" is MB per CPU-second of the whole process
//! (user + system time from `/proc/self/stat`, every thread: ours, tantivy's indexing and
//! merge threads), measured around each indexing run.
//!
//! Figures go to BENCHMARKS.md.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use citysoc_collector::{parse_record, Event, InputFormat, ParseContext};
use citysoc_index::request::AggregationRequest;
use citysoc_index::{AgencyScope, Interval, SearchRequest, TantivyConfig, TantivyStore, TimeRange};
use tantivy::schema::{
    IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, TEXT,
};
use tantivy::{doc, Index, IndexWriter};

/// The same allocator as the `citysoc` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: citysoc_alloc::Allocator = citysoc_alloc::Allocator;

const NEEDLE_EVERY: u64 = 1_000_000;
const CHUNK: u64 = 100_000;

fn day_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn line(n: u64) -> String {
    let ip = if n % NEEDLE_EVERY == 7 {
        "198.51.100.77".to_owned()
    } else {
        format!("10.{}.{}.{}", n % 7, (n / 7) % 250, n % 251)
    };
    let word = if n % NEEDLE_EVERY == 11 {
        "mimikatz"
    } else {
        "sekurlsa"
    };
    match n % 4 {
        0 => format!(
            "<38>Nov 20 10:11:12 gis-app-{:02} sshd[{}]: Failed password for invalid user user{} from {ip} port {} ssh2",
            n % 23, 1000 + n % 30000, n % 5000, 1024 + n % 60000
        ),
        1 => format!(
            "<189>date=2026-11-20 time=10:11:12 devname=\"FG100F-QUAN{}\" logid=\"0000000013\" type=\"traffic\" subtype=\"forward\" level=\"notice\" srcip={ip} srcport={} dstip=192.0.2.{} dstport={} action=\"{}\" policyid={} service=\"HTTPS\" sentbyte={} rcvdbyte={}",
            n % 24, 1024 + n % 60000, n % 250, [443, 80, 23, 3389][(n / 4 % 4) as usize], if n.is_multiple_of(3) { "deny" } else { "accept" }, n % 90, n % 100000, n % 70000
        ),
        2 => format!(
            "{ip} - - [20/Nov/2026:10:11:12 +0700] \"GET /dich-vu-cong/tra-cuu-ho-so?ma=HS2026-{:06} HTTP/1.1\" {} {} \"-\" \"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/130.0\"",
            n % 1_000_000, [200, 200, 304, 404, 500][(n % 5) as usize], n % 9000
        ),
        _ => format!(
            "<134>Nov 20 10:11:12 sw-core-{:02} CEF:0|CitySwitch|CoreFW|3.1|{}|Thủ Đức process {word} alert|{}|src={ip} dst=10.3.0.{} dpt={} act=blocked suser=nguyen{} cs1Label=zone cs1=thu-duc",
            n % 9, 2000 + n % 40, n % 10, n % 250, n % 65535, n % 3000
        ),
    }
}

/// Events `from..to` of `total`, spread evenly over the day, with their raw byte count.
fn events(from: u64, to: u64, total: u64) -> (Vec<Event>, u64) {
    let mut context = ParseContext::new("udp");
    context.agency = Some("quan-1".into());
    context.received_at = day_start() + TimeDelta::days(1);
    let mut bytes = 0;
    let events = (from..to)
        .map(|n| {
            let line = line(n);
            bytes += line.len() as u64 + 1;
            let mut event = parse_record(line.as_bytes(), InputFormat::Auto, &context, n);
            event.timestamp = day_start()
                + TimeDelta::microseconds((86_400_000_000i128 * n as i128 / total as i128) as i64);
            event
        })
        .collect();
    (events, bytes)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn time_runs(runs: usize, mut run: impl FnMut()) -> (Duration, Duration) {
    run(); // warm the page cache and the readers
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.95),
    )
}

/// CPU seconds (user + system, every thread) the process has used so far: fields 14 and 15 of
/// `/proc/self/stat`, in clock ticks (100 per second on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |n: usize| {
        fields
            .get(n)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the name, field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// Wall and CPU seconds of `run`.
fn timed(run: impl FnOnce()) -> (f64, f64) {
    let cpu = cpu_seconds();
    let started = Instant::now();
    run();
    (started.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

/// The peer: the raw line in one default-tokenized text field plus a fast timestamp. With
/// `positions` false the text field keeps only which documents hold a term (no phrase
/// queries): the least any word search over logs can index, to show where the target sits
/// against tantivy itself on this machine.
fn peer_index(events: &[Event], positions: bool) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let mut builder = Schema::builder();
    let raw_options = if positions {
        TEXT
    } else {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("default")
                .set_index_option(IndexRecordOption::Basic),
        )
    };
    let raw = builder.add_text_field("raw", raw_options);
    let timestamp = builder.add_i64_field("timestamp", INDEXED | FAST);
    let index =
        Index::create_in_dir(dir.path(), builder.build()).unwrap_or_else(|error| panic!("{error}"));
    let mut writer: IndexWriter = index
        .writer_with_num_threads(1, 64 << 20)
        .unwrap_or_else(|error| panic!("{error}"));
    timed(|| {
        for event in events {
            writer
                .add_document(doc!(raw => event.raw.clone().unwrap_or_default(), timestamp => event.timestamp.timestamp_micros()))
                .unwrap_or_else(|error| panic!("{error}"));
        }
        writer.commit().unwrap_or_else(|error| panic!("{error}"));
    })
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: a smoke run that only
    // shows the code paths work.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let default_total = if measuring { 10_000_000 } else { 4_000 };
    let total: u64 = std::env::var("CITYSOC_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_total);
    let compare = total.min(1_000_000);

    // 1. Indexing, ours against the peer on the same first `compare` events.
    let (sample, sample_bytes) = events(0, compare, total);
    let (peer_seconds, peer_cpu) = peer_index(&sample, true);
    let (bare_seconds, bare_cpu) = peer_index(&sample, false);
    let scratch = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let config = TantivyConfig {
        commit_events: u64::MAX,
        commit_interval: Duration::from_secs(3600),
        ..TantivyConfig::default()
    };
    let store = TantivyStore::open(scratch.path(), config.clone())
        .unwrap_or_else(|error| panic!("{error}"));
    let (ours_seconds, ours_cpu) = timed(|| {
        store.add(&sample).unwrap_or_else(|error| panic!("{error}"));
        store.commit().unwrap_or_else(|error| panic!("{error}"));
    });
    drop(store);
    let mb = sample_bytes as f64 / 1e6;
    println!(
        "indexing {compare} events ({mb:.1} MB raw), one writer ({} indexing threads):",
        config.writer_threads
    );
    for (name, seconds, cpu) in [
        ("citysoc store     ", ours_seconds, ours_cpu),
        ("peer (raw text)   ", peer_seconds, peer_cpu),
        ("peer, no positions", bare_seconds, bare_cpu),
    ] {
        println!(
            "  {name}: {:>9.0} events/s  {:>6.1} MB/s wall  {:>6.1} MB per CPU-second ({cpu:.1} CPU-s in {seconds:.1} s)",
            compare as f64 / seconds,
            mb / seconds,
            mb / cpu.max(0.01),
        );
    }
    println!(
        "  ratio citysoc/peer: {:.2} wall, {:.2} per CPU-second",
        peer_seconds / ours_seconds,
        peer_cpu / ours_cpu.max(0.01)
    );

    if let Ok(url) = std::env::var("CITYSOC_CLICKHOUSE_URL") {
        clickhouse_inserts(&url, &sample);
    }
    drop(sample);
    if std::env::var_os("CITYSOC_BENCH_ONLY_INDEXING").is_some() {
        return;
    }

    // 2. The full day, then searches.
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let store = TantivyStore::open(dir.path(), config).unwrap_or_else(|error| panic!("{error}"));
    let mut indexing = Duration::ZERO;
    let mut raw_bytes = 0;
    let mut from = 0;
    while from < total {
        let to = (from + CHUNK).min(total);
        let (chunk, bytes) = events(from, to, total);
        raw_bytes += bytes;
        let started = Instant::now();
        store.add(&chunk).unwrap_or_else(|error| panic!("{error}"));
        indexing += started.elapsed();
        from = to;
    }
    let started = Instant::now();
    store.close().unwrap_or_else(|error| panic!("{error}"));
    indexing += started.elapsed();
    let on_disk: u64 = walk_size(dir.path());
    println!(
        "indexed {total} events ({:.0} MB raw) in {:.1} s: {:.0} events/s, {:.1} MB/s; index {:.0} MB on disk",
        raw_bytes as f64 / 1e6,
        indexing.as_secs_f64(),
        total as f64 / indexing.as_secs_f64(),
        raw_bytes as f64 / 1e6 / indexing.as_secs_f64(),
        on_disk as f64 / 1e6
    );
    drop(store);

    let store = TantivyStore::open(dir.path(), TantivyConfig::default())
        .unwrap_or_else(|error| panic!("{error}"));
    let day = TimeRange::new(day_start(), day_start() + TimeDelta::days(1))
        .unwrap_or_else(|error| panic!("{error}"));
    let search = |text: &str| {
        let query = citysoc_index::parse(text).unwrap_or_else(|error| panic!("{error}"));
        SearchRequest::new(query, day, AgencyScope::agency("quan-1"), 100)
    };
    for (name, text) in [
        ("needle IP", "source.ip:198.51.100.77"),
        ("needle word", "mimikatz"),
        ("match-all, newest 100", "*"),
        // Since schema 4 a message inside raw is matched through raw's positions within the
        // message's span (computed per segment up front), not its own terms.
        ("message word", "message:password"),
        ("message phrase", "message:\"failed password\""),
    ] {
        let request = search(text);
        let found = store
            .search(&request)
            .map(|page| page.total)
            .unwrap_or_default();
        let (p50, p95) = time_runs(30, || {
            let _ = store.search(&request);
        });
        println!(
            "search {name:<24} ({found:>9} matches): p50 {:>8.2} ms  p95 {:>8.2} ms",
            ms(p50),
            ms(p95)
        );
    }
    let all = AggregationRequest {
        query: citysoc_index::Query::All,
        time: day,
        scope: AgencyScope::agency("quan-1"),
    };
    let hour = Interval::parse("1h").unwrap_or_else(|error| panic!("{error}"));
    let (p50, p95) = time_runs(10, || {
        let _ = store.histogram(&all, hour);
    });
    println!(
        "histogram 24 h by hour over {total}: p50 {:>8.2} ms  p95 {:>8.2} ms",
        ms(p50),
        ms(p95)
    );
    let (p50, p95) = time_runs(5, || {
        let _ = store.count_by(&all, "source.ip", 10);
    });
    println!(
        "count-by source.ip (top 10) over {total}: p50 {:>8.2} ms  p95 {:>8.2} ms",
        ms(p50),
        ms(p95)
    );
}

fn clickhouse_inserts(url: &str, events: &[Event]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("{error}"));
    let database = format!("citysoc_bench_{}", std::process::id());
    let store = runtime
        .block_on(async {
            let store = citysoc_index::ClickHouseStore::connect(url, &database).await?;
            store.ensure_schema().await?;
            Ok::<_, citysoc_index::IndexError>(store)
        })
        .unwrap_or_else(|error| panic!("{error}"));
    let started = Instant::now();
    for batch in events.chunks(10_000) {
        runtime
            .block_on(store.insert(batch))
            .unwrap_or_else(|error| panic!("{error}"));
    }
    let ours = started.elapsed().as_secs_f64();

    // The peer: the raw lines, TSV-escaped, posted by curl in the same 10,000-line batches.
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let sql = |query: &str| {
        let status = std::process::Command::new("curl")
            .args(["-sS", "--fail", "--data-binary", query, url])
            .status()
            .unwrap_or_else(|error| panic!("curl: {error}"));
        assert!(status.success(), "{query}");
    };
    sql(&format!(
        "CREATE TABLE {database}.peer_raw (raw String) ENGINE = MergeTree ORDER BY tuple()"
    ));
    let files: Vec<std::path::PathBuf> = events
        .chunks(10_000)
        .enumerate()
        .map(|(n, batch)| {
            let path = dir.path().join(format!("batch-{n}.tsv"));
            let mut text = String::new();
            for event in batch {
                let raw = event.raw.clone().unwrap_or_default();
                text.push_str(
                    &raw.replace('\\', "\\\\")
                        .replace('\t', "\\t")
                        .replace('\n', "\\n"),
                );
                text.push('\n');
            }
            std::fs::write(&path, text).unwrap_or_else(|error| panic!("{error}"));
            path
        })
        .collect();
    let insert_url = format!("{url}/?query=INSERT%20INTO%20{database}.peer_raw%20FORMAT%20TSV");
    let started = Instant::now();
    for path in &files {
        let status = std::process::Command::new("curl")
            .args(["-sS", "--fail", "--data-binary"])
            .arg(format!("@{}", path.display()))
            .arg(&insert_url)
            .status()
            .unwrap_or_else(|error| panic!("curl: {error}"));
        assert!(status.success());
    }
    let peer = started.elapsed().as_secs_f64();
    sql(&format!("DROP DATABASE {database}"));
    let rows = events.len() as f64;
    println!(
        "ClickHouse inserts of {} events, batches of 10,000:",
        events.len()
    );
    println!("  citysoc store (all columns): {:>9.0} rows/s", rows / ours);
    println!("  peer (curl, raw line only) : {:>9.0} rows/s", rows / peer);
    println!("  ratio citysoc/peer: {:.2}", peer / ours);
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn walk_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    };
    entries
        .flatten()
        .map(|entry| walk_size(&entry.path()))
        .sum()
}
