//! `citysoc import` and `citysoc search` as an incident responder uses them, and what a crash
//! during an import leaves behind.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use citysoc_index::{AgencyScope, Query, SearchRequest, TantivyConfig, TantivyStore, TimeRange};
use serde_json::Value;

fn citysoc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{error}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn import_samples(data: &Path) {
    let data = data.to_string_lossy();
    for (agency, files) in [
        (
            "quan-1",
            vec![
                "samples/quan1-fortigate.log",
                "samples/linux-auth.log",
                "samples/legacy-windows-1258.log",
            ],
        ),
        (
            "so-y-te",
            vec!["samples/sysmon.ndjson", "samples/portal-nginx-access.log"],
        ),
    ] {
        let mut args = vec!["import", "--data", &data, "--agency", agency];
        args.extend(files);
        let output = citysoc(&args);
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(
            text(&output.stderr).contains(" alerts"),
            "{}",
            text(&output.stderr)
        );
    }
}

fn json_lines(output: &Output) -> Vec<Value> {
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect()
}

#[test]
fn imported_samples_are_searchable_by_ip_text_and_agency() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    import_samples(dir.path());
    let data = dir.path().to_string_lossy().into_owned();
    let alerts = std::fs::read_to_string(dir.path().join("alerts.ndjson")).unwrap_or_default();
    assert!(alerts.lines().count() >= 3, "alerts: {alerts}");

    let by_ip = json_lines(&citysoc(&[
        "search",
        "--data",
        &data,
        "--format",
        "json",
        "source.ip:203.0.113.45",
    ]));
    assert!(!by_ip.is_empty());
    assert!(by_ip
        .iter()
        .all(|event| event["source.ip"] == "203.0.113.45"));

    let failed = json_lines(&citysoc(&[
        "search",
        "--data",
        &data,
        "--format",
        "json",
        "\"failed password\" AND agency:quan-1",
    ]));
    assert!(failed.len() >= 2);
    assert!(failed.iter().all(|event| event["agency"] == "quan-1"));

    // The agency option scopes: quan-1's events are invisible to a so-y-te search.
    let scoped = json_lines(&citysoc(&[
        "search", "--data", &data, "--agency", "so-y-te", "--format", "json", "--limit", "1000",
    ]));
    assert!(!scoped.is_empty());
    assert!(scoped.iter().all(|event| event["agency"] == "so-y-te"));
    let escaped = json_lines(&citysoc(&[
        "search",
        "--data",
        &data,
        "--agency",
        "so-y-te",
        "--format",
        "json",
        "agency:quan-1",
    ]));
    assert!(escaped.is_empty());

    let counts = json_lines(&citysoc(&[
        "search",
        "--data",
        &data,
        "--format",
        "json",
        "--count-by",
        "agency",
    ]));
    let agencies: BTreeSet<String> = counts
        .iter()
        .filter_map(|line| line["value"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        agencies,
        BTreeSet::from(["quan-1".to_owned(), "so-y-te".to_owned()])
    );

    let histogram = json_lines(&citysoc(&[
        "search",
        "--data",
        &data,
        "--format",
        "json",
        "--histogram",
        "1h",
    ]));
    let total: u64 = histogram
        .iter()
        .filter_map(|bucket| bucket["count"].as_u64())
        .sum();
    let all = json_lines(&citysoc(&[
        "search", "--data", &data, "--format", "json", "--limit", "100000",
    ]));
    assert_eq!(total, all.len() as u64);
}

#[test]
fn pages_chain_through_the_cursor() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    import_samples(dir.path());
    let data = dir.path().to_string_lossy().into_owned();
    let all = json_lines(&citysoc(&[
        "search", "--data", &data, "--format", "json", "--limit", "100000",
    ]));
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec![
            "search", "--data", &data, "--format", "json", "--limit", "3",
        ];
        if let Some(cursor) = &after {
            args.extend(["--after", cursor.as_str()]);
        }
        let output = citysoc(&args);
        paged.extend(json_lines(&output));
        let stderr = text(&output.stderr);
        match stderr.split("--after ").nth(1) {
            Some(cursor) => after = Some(cursor.trim().to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, all);
}

#[test]
fn bad_requests_fail_with_a_message_that_says_where() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    import_samples(dir.path());
    let data = dir.path().to_string_lossy().into_owned();
    let cases: [(&[&str], &str); 6] = [
        (&["source.ip:(10.0.0.1"], "position 10"),
        (&["sourceip:10.0.0.1"], "unknown field"),
        (
            &["--from", "2026-11-22", "--to", "2026-11-01", "x"],
            "backwards",
        ),
        (&["--from", "yesterday", "x"], "invalid time"),
        (&["--count-by", "message"], "cannot count by"),
        (&["--after", "garbage"], "invalid cursor"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["search", "--data", &data];
        args.extend(extra);
        let output = citysoc(&args);
        assert!(!output.status.success(), "{extra:?} succeeded");
        assert!(
            text(&output.stderr).contains(expected),
            "{extra:?}: {}",
            text(&output.stderr)
        );
    }
    let missing = citysoc(&["search", "--data", "/nonexistent/citysoc", "x"]);
    assert!(text(&missing.stderr).contains("not a citysoc data directory"));
}

/// `lines` distinct syslog lines.
fn write_stream(path: &Path, lines: usize) -> BTreeSet<String> {
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).unwrap_or_else(|error| panic!("{error}")),
    );
    let mut all = BTreeSet::new();
    for n in 0..lines {
        let line = format!(
            "<38>Nov 22 08:{:02}:{:02} gis-app-01 sshd[{n}]: Failed password for user{n} from 10.{}.{}.{} port 22 ssh2",
            (n / 60) % 60,
            n % 60,
            n % 200,
            (n / 200) % 250,
            n % 250
        );
        writeln!(file, "{line}").unwrap_or_else(|error| panic!("{error}"));
        all.insert(line);
    }
    file.flush().unwrap_or_else(|error| panic!("{error}"));
    all
}

fn stored_raws(data: &Path) -> Vec<String> {
    let store = TantivyStore::open(data.join("events"), TantivyConfig::default())
        .unwrap_or_else(|error| panic!("{error}"));
    let page = store
        .search(&SearchRequest::new(
            Query::All,
            TimeRange::everything(),
            AgencyScope::All,
            1_000_000,
        ))
        .unwrap_or_else(|error| panic!("{error}"));
    page.events
        .into_iter()
        .filter_map(|event| event.raw)
        .collect()
}

#[test]
fn killing_an_import_keeps_every_committed_event_and_a_rerun_completes_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let input = dir.path().join("stream.log");
    let lines = write_stream(&input, 30_000);
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .args([
            "import",
            "--no-detect",
            "--verbose",
            "--commit-events",
            "3000",
            "--agency",
            "quan-1",
            "--data",
        ])
        .arg(&data)
        .arg(&input)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("{error}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let mut committed = 0u64;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if let Some(count) = line
            .strip_prefix("citysoc import: ")
            .and_then(|rest| rest.strip_suffix(" events committed"))
        {
            committed = count.parse().unwrap_or(committed);
            if committed >= 6_000 {
                break;
            }
        }
    }
    child.kill().unwrap_or_else(|error| panic!("{error}"));
    let _ = child.wait();
    assert!(
        (6_000..30_000).contains(&committed),
        "killed after {committed} committed events"
    );

    let stored = stored_raws(&data);
    assert!(
        stored.len() as u64 >= committed,
        "{} stored, {committed} committed",
        stored.len()
    );
    let unique: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "an event stored twice");
    assert!(
        stored.iter().all(|raw| lines.contains(raw)),
        "a stored event that was never sent"
    );

    // Importing the same file again completes the store without duplicating anything.
    let output = Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .args(["import", "--no-detect", "--agency", "quan-1", "--data"])
        .arg(&data)
        .arg(&input)
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stored: BTreeSet<String> = stored_raws(&data).into_iter().collect();
    assert_eq!(stored, lines);
}

#[test]
fn retention_drops_the_days_past_each_agencys_limit() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let data = dir.path().join("data");
    let data_text = data.to_string_lossy().into_owned();
    let today = chrono::Utc::now().date_naive();
    for (agency, ages) in [("quan-1", [0i64, 3, 10]), ("so-y-te", [0, 3, 10])] {
        let input = dir.path().join(format!("{agency}.log"));
        let lines: Vec<String> = ages
            .iter()
            .map(|age| {
                let day = today - chrono::TimeDelta::days(*age);
                format!("<38>1 {day}T06:00:00Z web-01 sshd 1 - - Failed password for root from 10.0.0.{age} port 22 ssh2")
            })
            .collect();
        std::fs::write(&input, lines.join("\n")).unwrap_or_else(|error| panic!("{error}"));
        let output = citysoc(&[
            "import",
            "--no-detect",
            "--data",
            &data_text,
            "--agency",
            agency,
            &input.to_string_lossy(),
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let dry = citysoc(&[
        "retention",
        "--data",
        &data_text,
        "--days",
        "5",
        "--agency-days",
        "so-y-te=30",
        "--dry-run",
    ]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let expected = format!(
        "would drop quan-1 {}\n",
        today - chrono::TimeDelta::days(10)
    );
    assert_eq!(text(&dry.stdout), expected);
    assert_eq!(stored_raws(&data).len(), 6, "a dry run dropped something");

    let run = citysoc(&[
        "retention",
        "--data",
        &data_text,
        "--days",
        "2",
        "--agency-days",
        "so-y-te=30",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(
        text(&run.stdout),
        format!(
            "dropped quan-1 {}\ndropped quan-1 {}\n",
            today - chrono::TimeDelta::days(10),
            today - chrono::TimeDelta::days(3)
        )
    );
    let left = json_lines(&citysoc(&[
        "search",
        "--data",
        &data_text,
        "--format",
        "json",
        "--count-by",
        "agency",
    ]));
    let counts: Vec<(String, u64)> = left
        .iter()
        .map(|line| {
            (
                line["value"].as_str().unwrap_or_default().to_owned(),
                line["count"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("so-y-te".to_owned(), 3), ("quan-1".to_owned(), 1)]
    );
    let refused = citysoc(&["retention", "--data", &data_text, "--days", "0"]);
    assert!(!refused.status.success());
}

/// `import --framing octet-counting` flags a record the input cut short and says so in its
/// summary.
#[test]
fn import_counts_a_cut_octet_counted_record() {
    let data = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let capture = data.path().join("capture.log");
    let whole = "<34>Oct 11 22:14:15 host su: ok";
    let cut = "<34>Oct 11 22:14:16 host su: cut";
    std::fs::write(
        &capture,
        format!("{} {whole}{} {cut}", whole.len(), cut.len() + 5),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let output = citysoc(&[
        "import",
        "--data",
        &data.path().join("data").to_string_lossy(),
        "--no-detect",
        "--framing",
        "octet-counting",
        &capture.to_string_lossy(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("2 events (0 unknown, 1 record cut short (flagged frame_truncated))"),
        "{stderr}"
    );
}
