//! The public SigmaHQ rule pack, read from the path in `CITYSOC_SIGMA_PACK`. These tests are
//! `#[ignore]`d, so a plain `cargo test` lists them as ignored, never as passed; the test
//! command runs them with `--ignored` when the variable is set and prints `NOT RUN` otherwise.

use std::path::PathBuf;

use citysoc_detect::{SigmaEngine, SigmaOptions};

fn pack() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("CITYSOC_SIGMA_PACK")?);
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!("CITYSOC_SIGMA_PACK={} is not a directory", path.display());
        None
    }
}

/// The production rule folders of a SigmaHQ snapshot.
fn production_folders(pack: &std::path::Path) -> Vec<PathBuf> {
    [
        "rules",
        "rules-emerging-threats",
        "rules-threat-hunting",
        "rules-placeholder",
        "rules-compliance",
        "rules-dfir",
    ]
    .iter()
    .map(|name| pack.join(name))
    .filter(|path| path.is_dir())
    .collect()
}

#[test]
#[ignore = "needs the SigmaHQ pack: scripts/test.sh runs it with --ignored when CITYSOC_SIGMA_PACK is set"]
fn every_production_rule_of_the_sigmahq_pack_loads() {
    // Ignored by default; run on purpose, it must have the pack rather than pass without it.
    let pack = pack().unwrap_or_else(|| {
        panic!("CITYSOC_SIGMA_PACK must name a SigmaHQ snapshot to run this test")
    });
    let folders = production_folders(&pack);
    let files = citysoc_detect::sigma::rule_files(&folders).unwrap_or_default();
    let (engine, report) = SigmaEngine::load(&folders, SigmaOptions::default())
        .unwrap_or_else(|error| panic!("{error}"));
    println!(
        "SigmaHQ pack: {} files, {} detection rules, {} correlations, {} filters loaded; {} problems",
        report.files,
        report.rules,
        report.correlations,
        report.filters,
        report.problems.len()
    );
    for problem in &report.problems {
        println!(
            "  {} [{}]: {}",
            problem.path.display(),
            problem.rule_id.as_deref().unwrap_or("-"),
            problem.reason
        );
    }
    assert_eq!(report.files, files.len());
    assert!(
        report.problems.is_empty(),
        "{} rules failed to load",
        report.problems.len()
    );
    assert_eq!(engine.rule_count(), report.rules);
    assert!(report.rules > 3000, "only {} rules", report.rules);
}
