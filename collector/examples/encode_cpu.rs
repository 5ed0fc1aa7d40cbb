//! Fixed-work driver for the record encoder, for `perf stat -e task-clock` and callgrind: the
//! events of 1,000 bench syslog lines (sshd, kernel firewall, RFC 5424 in turn, or one shape),
//! parsed once with a network source's context, then encoded as the disk buffer's records
//! (`record::encode_within_ceiling`, what a source does per event) a given number of rounds,
//! into one reused batch buffer. Prints records per second of wall time and the average record.
//!
//! ```sh
//! cargo build --release -p citysoc-collector --example encode_cpu
//! perf stat -e task-clock target/release/examples/encode_cpu auto 300
//! ```

use std::hint::black_box;

use citysoc_collector::record::encode_within_ceiling;
use citysoc_collector::{parse_record, InputFormat, ParseContext};

#[path = "../benches/support/syslog_lines.rs"]
#[allow(dead_code)] // the shared file also has a line this driver does not use
mod syslog_lines;
use syslog_lines::{rfc3164_firewall, rfc3164_sshd, rfc5424};

/// The same allocator as the `citysoc` binary.
#[global_allocator]
static ALLOCATOR: citysoc_alloc::Allocator = citysoc_alloc::Allocator;

type Template = fn(usize) -> String;

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "auto".to_owned());
    let rounds: usize = args
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or(300);
    let templates: &[Template] = match case.as_str() {
        "auto" => &[rfc3164_sshd, rfc3164_firewall, rfc5424],
        "rfc3164" => &[rfc3164_sshd],
        "firewall" => &[rfc3164_firewall],
        "rfc5424" => &[rfc5424],
        other => {
            eprintln!("unknown case `{other}`: expected auto, rfc3164, firewall or rfc5424");
            std::process::exit(2);
        }
    };
    let context = ParseContext::new("tcp")
        .with_agency("quan-1")
        .with_collector("col-q1-7f3a")
        .with_address("10.20.30.40:51514");
    let mut events: Vec<_> = (0..1_000)
        .map(|index| {
            let line = (templates[index % templates.len()])(index);
            parse_record(line.as_bytes(), InputFormat::Auto, &context, index as u64)
        })
        .collect();
    let mut batch = Vec::with_capacity(1 << 20);
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        batch.clear();
        for event in events.iter_mut() {
            if let Err(error) = encode_within_ceiling(black_box(event), &mut batch) {
                eprintln!("cannot encode: {error}");
                std::process::exit(1);
            }
        }
        black_box(&batch);
    }
    let seconds = start.elapsed().as_secs_f64();
    let records = rounds * events.len();
    println!(
        "{case}: {records} records in {seconds:.3} s = {:.0} records/s; {} bytes a record",
        records as f64 / seconds,
        batch.len() / events.len()
    );
}
