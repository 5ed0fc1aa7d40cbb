//! Every rule in `rules/` raises on its positive samples and stays quiet on its negative ones,
//! through the whole pipeline (parsers, logsource routing, mappings, Sigma, correlations), as
//! `citysoc rules test` runs it for rule authors.

use std::process::Command;

#[test]
fn every_rule_sample_gives_the_expected_result() {
    let rules = format!("{}/rules", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .args(["rules", "test", &rules])
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failures: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("FAIL"))
        .collect();
    assert!(output.status.success(), "{}\n{stderr}", failures.join("\n"));
    let cases = stdout.lines().filter(|line| line.starts_with("ok")).count();
    assert!(cases >= 100, "only {cases} sample cases ran");
}

#[test]
fn rules_check_reports_every_city_rule_loading() {
    let rules = format!("{}/rules/sigma", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .args(["rules", "check", "--json", &rules])
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(report["failed"], 0);
    assert!(report["loaded"].as_u64().unwrap_or(0) >= 25, "{report}");
    assert!(report["errors"].as_array().is_some_and(Vec::is_empty));
}

#[test]
fn rules_check_names_the_broken_rule() {
    let directory = std::env::temp_dir().join(format!("citysoc-check-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap_or_else(|error| panic!("{error}"));
    std::fs::write(directory.join("bad.yml"), "title: Bad\nid: bad-rule\nlogsource: {product: linux}\ndetection:\n  sel:\n    a|nosuch: b\n  condition: sel\n")
        .unwrap_or_else(|error| panic!("{error}"));
    let output = Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .args(["rules", "check", "--json"])
        .arg(&directory)
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(!output.status.success());
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(report["failed"], 1);
    assert_eq!(report["errors"][0]["rule_id"], "bad-rule");
    assert!(report["errors"][0]["path"]
        .as_str()
        .is_some_and(|path| path.ends_with("bad.yml")));
}
