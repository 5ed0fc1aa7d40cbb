//! Fixed-work parse driver for `perf stat -e task-clock`: parses the bench's rfc3164 or rfc5424
//! lines a given number of rounds (1,000 records each) and prints records per second of wall
//! time. On a shared, loaded machine criterion's wall-clock figures swing by ±30%; records per
//! second of *CPU time* (records ÷ perf's task-clock) does not count the time the process
//! waited for a core, so before/after comparisons stay meaningful.
//!
//! ```sh
//! cargo build --profile bench -p citysoc-collector --example parse_cpu
//! perf stat -e task-clock target/release/examples/parse_cpu rfc3164 300
//! ```

use std::hint::black_box;

use citysoc_collector::{parse_record, InputFormat, ParseContext};

/// The same allocator as the `citysoc` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bench's rfc3164 line (sshd, with login fields read).
fn rfc3164(index: usize) -> String {
    format!(
        "<38>Nov 22 10:{:02}:{:02} web-{:02}.quan1.hcm.gov.vn sshd[{}]: Failed password for invalid user admin{} from 203.113.{}.{} port {} ssh2",
        index % 60, (index * 7) % 60, index % 17, 20_000 + index, index % 50, index % 256, (index * 3) % 256, 40_000 + index
    )
}

/// The bench's rfc5424 line (with structured data).
fn rfc5424(index: usize) -> String {
    format!(
        "<165>1 2026-11-22T10:{:02}:{:02}.{:03}+07:00 portal-{:02}.dvc.hcm.gov.vn nginx {} ID{} [meta sequenceId=\"{}\" zone=\"thu-duc\"] GET /dich-vu-cong/ho-so?id={} 200",
        index % 60, (index * 7) % 60, index % 1000, index % 13, 1000 + index, index % 90, index, index * 31
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "rfc3164".to_owned());
    let rounds: usize = args
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or(300);
    let (template, input_format): (fn(usize) -> String, InputFormat) = match case.as_str() {
        "rfc3164" => (rfc3164, InputFormat::Rfc3164),
        "rfc5424" => (rfc5424, InputFormat::Rfc5424),
        "auto" => (rfc3164, InputFormat::Auto),
        other => {
            eprintln!("unknown case `{other}`: expected rfc3164, rfc5424 or auto");
            std::process::exit(2);
        }
    };
    let records: Vec<Vec<u8>> = (0..1_000)
        .map(|index| template(index).into_bytes())
        .collect();
    let context = ParseContext::new("file");
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        for (sequence, record) in records.iter().enumerate() {
            black_box(parse_record(
                black_box(record),
                input_format,
                &context,
                sequence as u64,
            ));
        }
    }
    let seconds = start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    println!(
        "{case}: {} records, {:.0} records/s (wall)",
        rounds * records.len(),
        (rounds * records.len()) as f64 / seconds
    );
}
