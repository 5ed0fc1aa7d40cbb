//! Fixed-work parse driver for `perf stat -e task-clock`: parses the bench's syslog lines (sshd,
//! kernel firewall, RFC 5424, or `auto` over the three in turn) or one of its other formats'
//! records (cef, leef, kv, json, winevent, auditd, access, and a Winlogbeat event read with
//! `auto`) a given number of rounds (1,000 records each) and prints records per second of wall
//! time. On a shared, loaded machine criterion's wall-clock figures swing by ±30%; records per
//! second of *CPU time* (records ÷ perf's task-clock) does not count the time the process
//! waited for a core, so before/after comparisons stay meaningful.
//!
//! ```sh
//! cargo build --profile bench -p citysoc-collector --example parse_cpu
//! perf stat -e task-clock target/release/examples/parse_cpu rfc3164 300
//! perf stat -e task-clock target/release/examples/parse_cpu rfc3164 300 net  # network context
//! perf stat -e task-clock target/release/examples/parse_cpu json 300 file decoder  # as sources read
//! ```

use std::hint::black_box;

use citysoc_collector::{parse_record, Decoder, InputFormat, ParseContext};

#[path = "../benches/support/syslog_lines.rs"]
mod syslog_lines;
use syslog_lines::{rfc3164_filterlog_kv, rfc3164_firewall, rfc3164_sshd, rfc5424};
#[path = "../benches/support/format_lines.rs"]
mod format_lines;
use format_lines::{access, auditd, cef, json, kv, leef, winevent, winlogbeat};

/// The same allocator as the `citysoc` binary.
#[global_allocator]
static ALLOCATOR: citysoc_alloc::Allocator = citysoc_alloc::Allocator;

/// A record generator: the record for an index.
type Template = fn(usize) -> String;

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "rfc3164".to_owned());
    let rounds: usize = args
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or(300);
    const MIX: &[Template] = &[rfc3164_sshd, rfc3164_firewall, rfc5424];
    let (templates, input_format): (&[Template], InputFormat) = match case.as_str() {
        "rfc3164" => (&[rfc3164_sshd], InputFormat::Rfc3164),
        "firewall" => (&[rfc3164_firewall], InputFormat::Rfc3164),
        "filterlog-kv" => (&[rfc3164_filterlog_kv], InputFormat::Rfc3164),
        "rfc5424" => (&[rfc5424], InputFormat::Rfc5424),
        "auto" => (MIX, InputFormat::Auto),
        "cef" => (&[cef], InputFormat::Cef),
        "leef" => (&[leef], InputFormat::Leef),
        "kv" => (&[kv], InputFormat::Kv),
        "json" => (&[json], InputFormat::Json),
        "winevent" => (&[winevent], InputFormat::Winevent),
        "auditd" => (&[auditd], InputFormat::Auditd),
        "access" => (&[access], InputFormat::Access),
        "winlogbeat" => (&[winlogbeat], InputFormat::Auto),
        other => {
            eprintln!(
                "unknown case `{other}`: expected rfc3164, firewall, filterlog-kv, rfc5424, auto, cef, leef, kv, json, winevent, auditd, access or winlogbeat"
            );
            std::process::exit(2);
        }
    };
    let records: Vec<Vec<u8>> = (0..1_000)
        .map(|index| (templates[index % templates.len()])(index).into_bytes())
        .collect();
    // `net` as a third argument: the context a network source gives its records (agency,
    // collector id and peer address set), which every event carries.
    let mut context = ParseContext::new("file");
    if args.next().as_deref() == Some("net") {
        context = ParseContext::new("tcp")
            .with_agency("quan-1")
            .with_collector("col-q1-7f3a")
            .with_address("10.20.30.40:51514");
    }
    // `decoder` as the fourth argument: through the `Decoder`, as every source reads its
    // records (JSON records go through its multi-line document reader first).
    let through_decoder = args.next().as_deref() == Some("decoder");
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        if through_decoder {
            let mut decoder = Decoder::new(input_format, context.clone());
            let mut events = Vec::with_capacity(records.len());
            for record in &records {
                decoder.decode(black_box(record), &mut events);
            }
            decoder.finish(&mut events);
            black_box(events);
            continue;
        }
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
