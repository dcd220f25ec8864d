#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns
//! Usage patterns on both backends: a run over ingested conversations stores patterns with health and failure
//! rates from the analysis; with embeddings on (the real potion-base-8M model from ../shared/models), openings are
//! embedded once and cached by text hash, and the analysis job enqueues the embedding job that fills the cache.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mentorfy_jobs::{Jobs, Registry, WorkerSettings, Workers};
use mentorfy_memory::Embedder;
use mentorfy_sensei::alerts::Alerts;
use mentorfy_sensei::ingest::{IngestConversation, IngestMessage, Role};
use mentorfy_sensei::patterns::{Patterns, RunOptions, text_hash};
use mentorfy_sensei::pipeline::Pipeline;
use mentorfy_sensei::{Ingestor, KeyContext, Source};
use mentorfy_store::Store;
use mentorfy_test_support::{TestDb, both_backends};
use uuid::Uuid;

both_backends!(
    a_run_groups_ingested_conversations_and_reports_health_and_failure_rate,
    embeddings_are_computed_once_and_reused,
    the_analysis_job_fills_the_embedding_cache_when_embeddings_are_on,
);

fn model() -> Arc<Embedder> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/potion-base-8M");
    Arc::new(Embedder::load(&path).unwrap_or_else(|e| panic!("the test model at {}: {e}", path.display())))
}

fn conversation(id: &str, lines: &[(Role, &str)]) -> IngestConversation {
    let start = time::OffsetDateTime::now_utc() - time::Duration::hours(3);
    IngestConversation {
        external_id: id.to_owned(),
        environment: None,
        user_id: None,
        agent_id: None,
        metadata: serde_json::Map::new(),
        messages: lines
            .iter()
            .enumerate()
            .map(|(i, (role, text))| {
                IngestMessage::new(None, *role, (*text).to_owned(), start + time::Duration::seconds(20 * i as i64))
            })
            .collect(),
    }
}

/// Eight billing conversations (two of them failing), eight password ones, and two loners.
fn corpus() -> Vec<IngestConversation> {
    let mut out = Vec::new();
    for i in 0..8 {
        let billing = if i < 2 {
            vec![
                (Role::User, "Why was I charged twice on my invoice this month?"),
                (Role::Assistant, "I can't help with billing."),
                (Role::User, "This is useless. I want to talk to a human now!"),
            ]
        } else {
            vec![
                (Role::User, "Why was I charged twice on my invoice this month?"),
                (Role::Assistant, "The second charge is a prorated upgrade; the invoice shows both."),
                (Role::User, "Great, thanks!"),
            ]
        };
        out.push(conversation(&format!("billing-{i}"), &billing));
        out.push(conversation(
            &format!("password-{i}"),
            &[
                (Role::User, "I forgot my password and the reset email never arrives"),
                (Role::Assistant, "I sent a new reset link; it is valid for 30 minutes."),
                (Role::User, "Got it, the password reset worked."),
            ],
        ));
    }
    out.push(conversation("loner-1", &[(Role::User, "write a limerick about a cat named Gus")]));
    out.push(conversation("loner-2", &[(Role::User, "what is the boiling point of nitrogen")]));
    out
}

async fn load(store: &Store) -> Vec<Uuid> {
    let ingestor = Ingestor::new(store.clone(), Duration::ZERO);
    let key = KeyContext { api_key_id: None, environment: "production".to_owned() };
    let stored = ingestor.ingest(Source::Api, &key, corpus()).await.unwrap();
    let pipeline = Pipeline::new(store.clone(), Duration::from_secs(300));
    for s in &stored {
        pipeline.process(s.conversation_id).await.unwrap();
    }
    stored.iter().map(|s| s.conversation_id).collect()
}

async fn a_run_groups_ingested_conversations_and_reports_health_and_failure_rate(db: TestDb) {
    let store = db.store().await;
    let patterns = Patterns::new(store.clone(), None);
    let nothing = patterns.run(&RunOptions::default(), &|_| {}).await.unwrap();
    assert_eq!((nothing.run_id, nothing.conversations), (None, 0));
    assert!(store.latest_pattern_run().await.unwrap().is_none(), "an empty run is not stored");
    load(&store).await;
    let summary = patterns.run(&RunOptions::default(), &|_| {}).await.unwrap();
    assert_eq!(summary.conversations, 18);
    assert_eq!(summary.representation, "tfidf");
    assert_eq!(summary.patterns.len(), 2, "{summary:#?}");
    assert_eq!(summary.unclustered, 2, "the loners stay unclustered: {summary:#?}");
    let billing = summary.patterns.iter().find(|p| p.label.contains("invoice") || p.label.contains("charged")).unwrap();
    let password = summary.patterns.iter().find(|p| p.label.contains("password")).unwrap();
    assert_eq!((billing.size, password.size), (8, 8));
    assert_eq!(billing.failure_rate, Some(0.25), "two of eight billing conversations failed: {billing:#?}");
    assert_eq!(password.failure_rate, Some(0.0), "{password:#?}");
    let (b, p) = (billing.avg_health.unwrap(), password.avg_health.unwrap());
    assert!(b < p, "failing conversations lower the billing pattern's health: {b} vs {p}");

    let run = store.latest_pattern_run().await.unwrap().unwrap();
    assert_eq!(Some(run.id), summary.run_id);
    assert_eq!((run.conversations, run.clustered, run.patterns), (18, 16, 2));
    assert_eq!(run.trigger, "manual");
    let rows = store.list_patterns(run.id).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.method == "ctfidf" && r.examples.as_array().is_some_and(|e| !e.is_empty())));
}

async fn embeddings_are_computed_once_and_reused(db: TestDb) {
    let store = db.store().await;
    let ids = load(&store).await;
    let patterns = Patterns::new(store.clone(), Some(model()));
    // The defaults, as the weekly job runs: with embeddings on, the blend is used.
    let options = RunOptions { trigger: mentorfy_sensei::patterns::Trigger::Scheduled, ..RunOptions::default() };
    let first = patterns.run(&options, &|_| {}).await.unwrap();
    assert_eq!(first.embedded, 18, "every opening embedded once");
    assert_eq!(first.representation, "tfidf+embedding:potion-base-8M");
    assert_eq!(first.patterns.len(), 2, "{first:#?}");
    let cached = store.conversation_embeddings(&ids).await.unwrap();
    assert_eq!(cached.len(), 18);
    assert!(cached.iter().all(|c| c.model == "potion-base-8M" && c.embedding.len() == 4 * 256));
    let second = patterns.run(&options, &|_| {}).await.unwrap();
    assert_eq!(second.embedded, 0, "unchanged openings come from the cache");
    assert_eq!(second.patterns.len(), first.patterns.len());

    // A stale hash (the opening changed) is embedded again by the job, and only then.
    let id = ids[0];
    let mut row = store.conversation_embeddings(&[id]).await.unwrap().remove(0);
    let good_hash = row.text_hash.clone();
    row.text_hash = text_hash("something else");
    store.upsert_conversation_embeddings(&[row]).await.unwrap();
    assert!(patterns.embed_conversation(id).await.unwrap(), "stale: embedded");
    assert_eq!(store.conversation_embeddings(&[id]).await.unwrap()[0].text_hash, good_hash);
    assert!(!patterns.embed_conversation(id).await.unwrap(), "fresh: skipped");
    assert!(!Patterns::new(store.clone(), None).embed_conversation(id).await.unwrap(), "off: nothing to do");
}

async fn the_analysis_job_fills_the_embedding_cache_when_embeddings_are_on(db: TestDb) {
    let store = db.store().await;
    let jobs = Jobs::new(store.clone());
    let ingestor = Ingestor::new(store.clone(), Duration::ZERO).with_jobs(jobs.clone());
    let pipeline = Pipeline::new(store.clone(), Duration::from_secs(300));
    let alerts = Alerts::new(
        store.clone(),
        mentorfy_core::config::AlertConfig {
            slack_webhook_url: None,
            min_severity: None,
            health_below: 0.0,
            failure_rate: None,
            public_url: "http://localhost".to_owned(),
        },
    )
    .unwrap();
    let patterns = Patterns::new(store.clone(), Some(model()));
    let mut registry = Registry::new();
    let deps = mentorfy_sensei::jobs::JobDeps { store: store.clone(), pipeline, alerts, patterns, judge: None };
    mentorfy_sensei::jobs::register(&mut registry, &deps);
    let settings =
        WorkerSettings { concurrency: 2, poll_interval: Duration::from_millis(20), ..WorkerSettings::default() };
    let workers = Workers::start_with(jobs, registry, settings, Vec::new());

    let key = KeyContext { api_key_id: None, environment: "production".to_owned() };
    let stored = ingestor.ingest(Source::Api, &key, corpus().into_iter().take(3).collect()).await.unwrap();
    let ids: Vec<Uuid> = stored.iter().map(|s| s.conversation_id).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = store.conversation_embeddings(&ids).await.unwrap().len();
        if n == ids.len() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "only {n} of {} embedded", ids.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counts = store.job_counts().await.unwrap();
    assert!(
        counts.iter().any(|(queue, _, n)| queue == mentorfy_sensei::patterns::PATTERN_QUEUE && *n > 0),
        "{counts:?}"
    );
    workers.shutdown().await;
}
