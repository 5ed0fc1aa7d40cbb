//! `citysoc import --clickhouse-url` writes every event to ClickHouse as well, and
//! `citysoc search --backend clickhouse` answers exactly as the tantivy backend does.
//! Needs a server: `scripts/test.sh` starts one and sets CITYSOC_CLICKHOUSE_URL.

use std::process::{Command, Output};

fn citysoc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{error}"))
}

fn succeeded(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
#[ignore = "needs a ClickHouse server: scripts/test.sh starts one (CITYSOC_CLICKHOUSE_URL)"]
fn both_backends_answer_the_same_after_one_import() {
    let url = std::env::var("CITYSOC_CLICKHOUSE_URL")
        .unwrap_or_else(|_| panic!("CITYSOC_CLICKHOUSE_URL is not set"));
    let database = format!("citysoc_cli_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let data = dir.path().to_string_lossy().into_owned();
    for (agency, files) in [
        (
            "quan-1",
            ["samples/quan1-fortigate.log", "samples/linux-auth.log"],
        ),
        (
            "so-y-te",
            ["samples/sysmon.ndjson", "samples/portal-nginx-access.log"],
        ),
    ] {
        let mut args = vec![
            "import",
            "--data",
            &data,
            "--agency",
            agency,
            "--clickhouse-url",
            &url,
            "--clickhouse-database",
            &database,
        ];
        args.extend(files);
        let output = citysoc(&args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        assert!(
            stderr.contains("events inserted, 0 retries, 0 dropped"),
            "{stderr}"
        );
    }
    let clickhouse = [
        "--backend",
        "clickhouse",
        "--clickhouse-url",
        url.as_str(),
        "--clickhouse-database",
        database.as_str(),
    ];
    let queries: [&[&str]; 8] = [
        &["--limit", "1000"],
        &["source.ip:203.0.113.45"],
        &["\"failed password\" OR fields.EventID:1"],
        &["--agency", "so-y-te", "--limit", "1000"],
        &["--oldest-first", "--limit", "4", "NOT agency:quan-1"],
        &["--count-by", "source.ip"],
        &["--count-by", "fields.EventID"],
        &["--histogram", "10m"],
    ];
    let mut compared = 0;
    for extra in queries {
        let mut tantivy_args = vec!["search", "--data", &data, "--format", "json"];
        tantivy_args.extend(extra);
        let from_tantivy = succeeded(citysoc(&tantivy_args));
        let mut clickhouse_args = vec!["search", "--format", "json"];
        clickhouse_args.extend(clickhouse);
        clickhouse_args.extend(extra);
        let from_clickhouse = succeeded(citysoc(&clickhouse_args));
        assert_eq!(from_clickhouse, from_tantivy, "{extra:?}");
        assert!(!from_tantivy.is_empty(), "{extra:?} found nothing");
        compared += 1;
    }
    assert_eq!(compared, queries.len());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("{error}"));
    if let Ok(store) = citysoc_index::ClickHouseStore::new(&url, &database) {
        let _ = runtime.block_on(store.drop_database());
    }
}
