//! Enrollment over real HTTP: a token works once, for its agency, before it expires.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{expect_rejection, metric, rejected_metric, TestServer};

#[tokio::test]
async fn a_token_enrolls_one_collector_for_its_agency() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    assert!(collector.id.starts_with("c-"));
    assert_eq!(collector.key.len(), 32);
    let record = server.registry.collector(&collector.id).unwrap().unwrap();
    assert_eq!(record.agency, "quan-1");
    assert_eq!(record.name, "collector-1");
    assert_eq!(record.hostname, "ubnd-quan1-log01");
    assert_eq!(record.version, "0.1.0");
    assert_eq!(record.revoked_at, None);
    assert_eq!(record.last_sequence_acked, 0);
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "citysoc_enrollments_total"), 1);
}

#[tokio::test]
async fn unknown_used_and_expired_tokens_are_refused() {
    let server = TestServer::start().await;

    let response = server.enroll_raw("no-such-token").await;
    expect_rejection(response, 401, "unknown_token").await;

    let token = server.token("quan-3");
    assert_eq!(server.enroll_raw(&token).await.status(), 200);
    expect_rejection(server.enroll_raw(&token).await, 403, "token_used").await;

    let expired = server
        .registry
        .create_token(
            "quan-3",
            chrono::Duration::seconds(1),
            "test",
            chrono::Utc::now() - chrono::Duration::seconds(10),
        )
        .unwrap();
    expect_rejection(
        server.enroll_raw(&expired.token).await,
        401,
        "token_expired",
    )
    .await;

    // Not JSON at all.
    let response = server
        .client
        .post(server.url(citysoc_collector::protocol::ENROLL_PATH))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_rejection(response, 400, "bad_request").await;

    assert_eq!(server.registry.collectors().unwrap().len(), 1);
    let text = server.metrics_text().await;
    assert_eq!(
        metric(&text, &rejected_metric("enroll", "unknown_token")),
        1
    );
    assert_eq!(metric(&text, &rejected_metric("enroll", "token_used")), 1);
    assert_eq!(
        metric(&text, &rejected_metric("enroll", "token_expired")),
        1
    );
    assert_eq!(metric(&text, &rejected_metric("enroll", "bad_request")), 1);
    assert_eq!(metric(&text, "citysoc_enrollments_total"), 1);
}

#[tokio::test]
async fn concurrent_uses_of_one_token_enroll_exactly_one_collector() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let token = server.token("so-y-te");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let server = server.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            server.enroll_raw(&token).await.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|status| **status == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|status| **status == 403).count(),
        15,
        "{statuses:?}"
    );
    assert_eq!(server.registry.collectors().unwrap().len(), 1);
}

#[tokio::test]
async fn the_registry_is_private_and_keeps_no_token_in_clear() {
    let server = TestServer::start().await;
    let token = server.token("quan-5");
    let path = server.data.path().join("citysoc.db");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        // SQLite's write-ahead log and shared memory files hold the same data.
        for entry in std::fs::read_dir(server.data.path()).unwrap() {
            let entry = entry.unwrap();
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("citysoc.db")
            {
                let mode = entry.metadata().unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "{:?} {mode:o}", entry.file_name());
            }
        }
    }
    // Checkpoint the WAL into the main file, then look for the token's text anywhere.
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    drop(connection);
    for file in std::fs::read_dir(server.data.path()).unwrap() {
        let file = file.unwrap().path();
        if file.is_file() {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes
                    .windows(token.len())
                    .any(|window| window == token.as_bytes()),
                "{} holds the token",
                file.display()
            );
        }
    }
}

#[test]
fn tokens_need_a_plain_agency_and_a_positive_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let registry = citysoc_console::Registry::open_in(dir.path()).unwrap();
    let now = chrono::Utc::now();
    assert!(registry
        .create_token("", chrono::Duration::hours(1), "t", now)
        .is_err());
    assert!(registry
        .create_token("quan-1", chrono::Duration::zero(), "t", now)
        .is_err());
    let created = registry
        .create_token("quan-1", chrono::Duration::hours(24), "t", now)
        .unwrap();
    assert_eq!(created.token.len(), 32);
    assert_eq!(created.expires_at, now + chrono::Duration::hours(24));
}

/// The data directory a server creates is its owner's alone:
/// it holds every agency's events and alerts, and the collector keys.
#[cfg(unix)]
#[tokio::test]
async fn a_new_data_directory_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("citysoc-data");
    let registry = citysoc_console::Registry::open_in(&data).unwrap();
    drop(registry);
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
}

/// A token handed to the wrong person is revoked before use: listed with its status, refused
/// at enrollment; a used token is not revoked (its collector is), ids must be unambiguous.
#[tokio::test]
async fn a_revoked_token_is_refused_and_tokens_are_listed_with_their_status() {
    let server = TestServer::start().await;
    let now = chrono::Utc::now();
    let wrong = server
        .registry
        .create_token("quan-5", chrono::Duration::hours(1), "an-admin", now)
        .unwrap();
    assert_eq!(wrong.id.len(), citysoc_console::registry::TOKEN_ID_DIGITS);
    let used = server.token("quan-5");
    assert_eq!(server.enroll_raw(&used).await.status(), 200);

    // Too short or not hex: refused before looking.
    for bad in ["", "abc", "zzzzzzzzzzzz"] {
        assert!(
            server.registry.revoke_token(bad, "t", now).is_err(),
            "{bad:?}"
        );
    }
    let revoked = server
        .registry
        .revoke_token(&wrong.id[..8].to_ascii_uppercase(), "soc-lead", now)
        .unwrap();
    assert_eq!(revoked.id, wrong.id);
    assert_eq!(revoked.revoked_by.as_deref(), Some("soc-lead"));
    // Revoking again changes nothing.
    let again = server
        .registry
        .revoke_token(&wrong.id, "someone-else", now)
        .unwrap();
    assert_eq!(again.revoked_by.as_deref(), Some("soc-lead"));

    expect_rejection(server.enroll_raw(&wrong.token).await, 401, "token_revoked").await;
    let text = server.metrics_text().await;
    assert_eq!(
        metric(&text, &rejected_metric("enroll", "token_revoked")),
        1
    );

    let tokens = server.registry.tokens().unwrap();
    let status = |id: &str| {
        tokens
            .iter()
            .find(|token| token.id == id)
            .map(|token| token.status(chrono::Utc::now()))
    };
    assert_eq!(status(&wrong.id), Some("revoked"));
    let used_id = tokens
        .iter()
        .find(|token| token.used_by.is_some())
        .map(|token| token.id.clone())
        .unwrap();
    assert_eq!(status(&used_id), Some("used"));
    let error = server
        .registry
        .revoke_token(&used_id, "t", now)
        .unwrap_err()
        .to_string();
    assert!(error.contains("revoke the collector"), "{error}");
    assert_eq!(server.registry.collectors().unwrap().len(), 1);
}
