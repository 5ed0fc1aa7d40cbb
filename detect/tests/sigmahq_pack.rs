//! The public SigmaHQ rule pack, read from the path in `CITYSOC_SIGMA_PACK` (the test command
//! sets it when the snapshot is there). Without it these tests say plainly that they did not
//! run; they never pass silently.

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
    ["rules", "rules-emerging-threats", "rules-threat-hunting", "rules-placeholder", "rules-compliance", "rules-dfir"]
        .iter()
        .map(|name| pack.join(name))
        .filter(|path| path.is_dir())
        .collect()
}

#[test]
fn every_production_rule_of_the_sigmahq_pack_loads() {
    let Some(pack) = pack() else {
        println!("NOT RUN: set CITYSOC_SIGMA_PACK to a SigmaHQ snapshot to load the public rule pack");
        return;
    };
    let folders = production_folders(&pack);
    let files = citysoc_detect::sigma::rule_files(&folders).unwrap_or_default();
    let (engine, report) = SigmaEngine::load(&folders, SigmaOptions::default()).unwrap_or_else(|error| panic!("{error}"));
    println!(
        "SigmaHQ pack: {} files, {} detection rules, {} correlations, {} filters loaded; {} problems",
        report.files,
        report.rules,
        report.correlations,
        report.filters,
        report.problems.len()
    );
    for problem in &report.problems {
        println!("  {} [{}]: {}", problem.path.display(), problem.rule_id.as_deref().unwrap_or("-"), problem.reason);
    }
    assert_eq!(report.files, files.len());
    assert!(report.problems.is_empty(), "{} rules failed to load", report.problems.len());
    assert_eq!(engine.rule_count(), report.rules);
    assert!(report.rules > 3000, "only {} rules", report.rules);
}
