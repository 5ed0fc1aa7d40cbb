//! The OTRF Security-Datasets recordings in `tests/data/` are labelled with the ATT&CK
//! technique they simulate. With the SigmaHQ pack available (`CITYSOC_SIGMA_PACK`), each
//! labelled attack must raise the SigmaHQ rules that describe it. `#[ignore]`d by default; the
//! test command runs it with `--ignored` when the pack is there and prints `NOT RUN` otherwise.

use std::path::PathBuf;

use citysoc_collector::{Decoder, InputFormat, ParseContext};
use citysoc_detect::{SigmaEngine, SigmaOptions};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/windows-linux-attack-otrf-security-datasets/windows")
        .join(name)
}

/// (recording, ATT&CK technique its metadata labels it with, SigmaHQ rules that must fire).
/// Two recordings have no SigmaHQ rule describing them (PowerShell HTTP listener, T1059.001,
/// and Windows Vault web credentials, T1055): the pack raises nothing specific there, and the
/// test does not pretend otherwise.
const EXPECTED: &[(&str, &str, &[&str])] = &[
    (
        "cmd_lsass_memory_dumpert_syscalls_2020-10-1822561997.json",
        "T1003.001",
        &["93d94efc-d7ad-4161-ad7d-1638c4f908d8"],
    ),
    (
        "psh_lsass_memory_dump_comsvcs_2020-10-18T19500924.json",
        "T1003.001",
        &[
            "646ea171-dded-4578-8a4d-65e9822892e3",
            "a49fa4d5-11db-418c-8473-1e014a8dd462",
        ],
    ),
    (
        "cmd_psexec_lsa_secrets_dump_2020-10-1903305471.json",
        "T1003.004",
        &[
            "42c575ea-e41e-41f1-b248-8093c3e82a28",
            "fd877b94-9bb5-4191-bb25-d79cbd93c167",
        ],
    ),
    (
        "cmd_service_mod_fax_2020-10-2120454410.json",
        "T1543.003",
        &["138d3531-8793-4f50-a2cd-f291b2863d78"],
    ),
    (
        "cmd_userinitmprlogonscript_batch_2020-10-1922471810.json",
        "T1037.001",
        &["21d856f9-9281-4ded-9377-51a1a6e2a432"],
    ),
    (
        "covenant_copy_smb_CreateRequest_2020-09-22145302.json",
        "T1021.002",
        &["b210394c-ba12-4f89-9117-44a2464b9511"],
    ),
    (
        "cmd_discover_iexplorer_version_registry_2020-10-2123281491.json",
        "T1518",
        &["e13f668e-7f95-443d-98d2-1816a7648a7b"],
    ),
];

#[test]
#[ignore = "needs the SigmaHQ pack: scripts/test.sh runs it with --ignored when CITYSOC_SIGMA_PACK is set"]
fn labelled_attacks_raise_the_sigmahq_rules_that_describe_them() {
    // Ignored by default (see sigmahq_pack.rs); run on purpose, it must have the pack.
    let pack = std::env::var_os("CITYSOC_SIGMA_PACK")
        .map(PathBuf::from)
        .filter(|path| path.is_dir())
        .unwrap_or_else(|| {
            panic!("CITYSOC_SIGMA_PACK must name a SigmaHQ snapshot to run this test")
        });
    let (mut engine, report) = SigmaEngine::load(&[pack.join("rules")], SigmaOptions::default())
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(report.problems.is_empty());
    for (file, technique, rules) in EXPECTED {
        let text =
            std::fs::read_to_string(data(file)).unwrap_or_else(|error| panic!("{file}: {error}"));
        let mut decoder = Decoder::new(InputFormat::Auto, ParseContext::new("file"));
        let mut events = Vec::new();
        for line in text.lines() {
            decoder.decode(line.as_bytes(), &mut events);
        }
        decoder.finish(&mut events);
        let fired: std::collections::BTreeSet<String> = events
            .iter()
            .flat_map(|event| engine.process(event))
            .map(|alert| alert.rule_id)
            .collect();
        for rule in *rules {
            assert!(
                fired.contains(*rule),
                "{file} ({technique}): {rule} did not fire; fired: {fired:?}"
            );
        }
        println!(
            "{file} ({technique}): {} SigmaHQ rules fired, the {} expected among them",
            fired.len(),
            rules.len()
        );
    }
}
