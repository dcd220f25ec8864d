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

/// The "done when": `mentorfy patterns run` on the demo data gives readable, distinct patterns. The
/// generator's intent (never sent to the clustering, only kept in metadata) is the yardstick: each pattern must be
/// nearly pure in intent.
async fn patterns_run_on_demo_data_finds_distinct_intents(db: TestDb) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, path) = (db.url.clone(), dir.path().to_owned());
    let empty = tokio::task::spawn_blocking(move || mentorfy(&path, &url, &["patterns", "run"])).await.unwrap();
    assert!(empty.status.success(), "{}", describe(&empty));
    assert!(String::from_utf8_lossy(&empty.stdout).contains("mentorfy seed-demo"), "{}", describe(&empty));

    let (url, path) = (db.url.clone(), dir.path().to_owned());
    let args = ["seed-demo", "--conversations", "400", "--seed", "11"];
    let seeded = tokio::task::spawn_blocking(move || mentorfy(&path, &url, &args)).await.unwrap();
    assert!(seeded.status.success(), "{}", describe(&seeded));
    let (url, path) = (db.url.clone(), dir.path().to_owned());
    let out = tokio::task::spawn_blocking(move || mentorfy(&path, &url, &["patterns", "run", "--json"])).await.unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let patterns = report["patterns"].as_array().expect("patterns");
    assert!(patterns.len() >= 8, "{report:#}");
    let mut labels: Vec<&str> = patterns.iter().map(|p| p["label"].as_str().unwrap()).collect();
    assert!(labels.iter().all(|l| l.chars().any(char::is_alphabetic)), "{labels:?}");
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), patterns.len(), "labels must be distinct: {labels:?}");
    let clustered: i64 = patterns.iter().map(|p| p["size"].as_i64().unwrap()).sum();
    assert_eq!(clustered + report["unclustered"].as_i64().unwrap(), report["conversations"].as_i64().unwrap());
    assert!(clustered as f64 >= 0.7 * report["conversations"].as_f64().unwrap(), "{report:#}");

    // Purity against the generator's intents, read back from the stored memberships.
    let store = db.store().await;
    let (mut pure, mut total) = (0usize, 0usize);
    for p in patterns {
        let id = uuid::Uuid::parse_str(p["id"].as_str().unwrap()).unwrap();
        let members = store.pattern_members(id).await.expect("members");
        assert_eq!(members.len() as i64, p["size"].as_i64().unwrap());
        let mut intents = std::collections::HashMap::<String, usize>::new();
        for (conversation_id, _) in members {
            let c = store.get_conversation(conversation_id).await.unwrap().unwrap();
            *intents.entry(c.metadata["intent"].as_str().unwrap_or("").to_owned()).or_default() += 1;
        }
        pure += intents.values().max().copied().unwrap_or(0);
        total += intents.values().sum::<usize>();
        let example = &p["examples"][0];
        assert!(example["excerpt"].as_str().is_some_and(|e| !e.is_empty()), "{p:#}");
    }
    assert!(pure as f64 >= 0.9 * total as f64, "purity {pure}/{total}: {report:#}");

    // `list` shows the same run.
    let (url, path) = (db.url.clone(), dir.path().to_owned());
    let listed =
        tokio::task::spawn_blocking(move || mentorfy(&path, &url, &["patterns", "list", "--json"])).await.unwrap();
    assert!(listed.status.success(), "{}", describe(&listed));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(listed["run"]["id"], report["run_id"]);
    assert_eq!(listed["patterns"].as_array().unwrap().len(), patterns.len());
    store.close().await;
}

both_backends!(seed_demo_loads_every_generated_message_once, patterns_run_on_demo_data_finds_distinct_intents);

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
