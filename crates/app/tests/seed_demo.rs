//! `mentorfy seed-demo` end to end: the built binary loads generated conversations into a fresh database (a temp
//! SQLite file; also a fresh PostgreSQL schema when `TEST_DATABASE_URL` is set) through the real ingestion API,
//! and a second run with the same seed adds nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output, Stdio};

use mentorfy_sensei::demo;
use mentorfy_test_support::{TestDb, both_backends};

const BIN: &str = env!("CARGO_BIN_EXE_mentorfy");
const CONVERSATIONS: usize = 50;
const SEED: u64 = 7;

/// Runs `mentorfy <args>` with a cleared environment (only PATH, HOME, TMPDIR and `DATABASE_URL`) in `dir`.
fn mentorfy(dir: &std::path::Path, database_url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("TMPDIR", dir)
        .env("DATABASE_URL", database_url)
        .stdin(Stdio::null())
        .output()
        .expect("run mentorfy")
}

fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Message count of each generated conversation, as stored (0 when missing).
async fn stored_counts(db: &TestDb) -> Vec<(String, usize, i64)> {
    let store = db.store().await;
    let mut out = Vec::new();
    for c in demo::generate(SEED, CONVERSATIONS, time::OffsetDateTime::now_utc()) {
        let row = store.find_conversation("api", &c.environment, &c.id).await.expect("query");
        out.push((c.id.clone(), c.messages.len(), row.map_or(0, |r| r.message_count)));
    }
    store.close().await;
    out
}

async fn seed_demo_loads_every_generated_message_once(db: TestDb) {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ["seed-demo", "--conversations", "50", "--seed", "7", "--batch-size", "16"];
    let url = db.url.clone();
    let path = dir.path().to_owned();
    let first = tokio::task::spawn_blocking(move || mentorfy(&path, &url, &args)).await.unwrap();
    assert!(first.status.success(), "{}", describe(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("50 conversations"), "{}", describe(&first));

    let counts = stored_counts(&db).await;
    assert_eq!(counts.len(), CONVERSATIONS);
    for (id, generated, stored) in &counts {
        assert_eq!(*stored, *generated as i64, "conversation {id}");
    }
    let total: usize = counts.iter().map(|(_, n, _)| n).sum();

    // The same seed again: nothing new.
    let url = db.url.clone();
    let path = dir.path().to_owned();
    let second = tokio::task::spawn_blocking(move || mentorfy(&path, &url, &args)).await.unwrap();
    assert!(second.status.success(), "{}", describe(&second));
    let again = stored_counts(&db).await;
    assert_eq!(again, counts, "a second run with the same seed must not add messages");
    assert_eq!(again.iter().map(|(_, n, _)| n).sum::<usize>(), total);

    // The temporary API key was revoked.
    let store = db.store().await;
    let keys = store.list_api_keys().await.expect("keys");
    store.close().await;
    assert_eq!(keys.len(), 2, "one temporary key per run");
    assert!(keys.iter().all(|k| k.revoked_at.is_some()), "temporary keys are revoked");
}

both_backends!(seed_demo_loads_every_generated_message_once);

#[test]
fn help_explains_every_flag_and_that_reruns_do_not_duplicate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = mentorfy(dir.path(), "sqlite://unused.db", &["seed-demo", "--help"]);
    assert!(out.status.success(), "{}", describe(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--conversations", "--seed", "--url", "--api-key", "--batch-size", "--concurrency", "SENSEI_API_KEY"] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(help.contains("adds nothing"), "{help}");
}

#[test]
fn url_without_a_key_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = mentorfy(dir.path(), "sqlite://unused.db", &["seed-demo", "--url", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SENSEI_API_KEY"), "{}", describe(&out));
}
