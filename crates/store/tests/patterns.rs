#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Usage-pattern storage on both backends: the opening user messages read per conversation (window, order,
//! superseded messages skipped), embedding cache upserts, and a run saved with its patterns and members, older runs
//! pruned.

use mentorfy_store::{
    ConversationEmbedding, ConversationRow, NewConversation, NewMessage, PatternRunWrite, PatternWrite, Store,
};
use mentorfy_test_support::{TestDb, both_backends};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

both_backends!(
    pattern_sources_read_the_first_user_messages_of_conversations_in_the_window,
    embeddings_are_upserted_per_conversation,
    a_run_is_saved_with_members_and_old_runs_are_pruned,
    bad_embedding_bytes_are_refused,
);

const T0: OffsetDateTime = datetime!(2026-03-01 10:00:00 UTC);

async fn conversation(store: &Store, external_id: &str) -> ConversationRow {
    store
        .upsert_conversation(NewConversation {
            source: "api",
            environment: "production",
            external_id,
            org_id: None,
            agent_id: None,
            user_id: None,
            metadata: json!({}),
        })
        .await
        .unwrap()
}

async fn message(store: &Store, conversation_id: Uuid, role: &str, status: &str, content: &str, at: OffsetDateTime) {
    store
        .insert_message(NewMessage {
            id: Uuid::now_v7(),
            conversation_id,
            external_id: None,
            role,
            content,
            status,
            finish_reason: None,
            input_tokens: None,
            output_tokens: None,
            latency_ms: None,
            ttft_ms: None,
            metadata: json!({}),
            created_at: at,
        })
        .await
        .unwrap();
}

async fn pattern_sources_read_the_first_user_messages_of_conversations_in_the_window(db: TestDb) {
    let store = db.store().await;
    let a = conversation(&store, "a").await;
    // Inserted out of order: the read orders by time.
    message(&store, a.id, "user", "complete", "third", T0 + Duration::minutes(3)).await;
    message(&store, a.id, "user", "complete", "first", T0).await;
    message(&store, a.id, "assistant", "complete", "an answer", T0 + Duration::minutes(1)).await;
    message(&store, a.id, "user", "superseded", "replaced", T0 + Duration::minutes(2)).await;
    message(&store, a.id, "user", "complete", "second", T0 + Duration::minutes(2)).await;
    message(&store, a.id, "user", "complete", "fourth", T0 + Duration::minutes(4)).await;
    let b = conversation(&store, "b").await;
    message(&store, b.id, "user", "complete", "b opens", T0 + Duration::hours(1)).await;
    // Only an assistant message: nothing the user came for.
    let c = conversation(&store, "c").await;
    message(&store, c.id, "assistant", "complete", "hello?", T0 + Duration::hours(2)).await;
    // Outside the window.
    let old = conversation(&store, "old").await;
    message(&store, old.id, "user", "complete", "long ago", T0 - Duration::days(40)).await;

    let got = store.pattern_sources(T0 - Duration::days(1), T0 + Duration::days(1), 3, 100).await.unwrap();
    let ids: Vec<Uuid> = got.iter().map(|s| s.conversation_id).collect();
    assert_eq!(ids, vec![a.id, b.id], "oldest first, no user message = left out, window respected");
    assert_eq!(got[0].user_messages, vec!["first", "second", "third"]);
    assert_eq!(got[1].user_messages, vec!["b opens"]);
    assert_eq!(got[0].failure_count, 0);
    assert!(got[0].health_score.is_none());

    // The limit keeps the most recent (c counts towards it, then has no user message).
    let got = store.pattern_sources(T0 - Duration::days(1), T0 + Duration::days(1), 1, 2).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].conversation_id, b.id);

    let many = store.first_user_messages(&[a.id, b.id, c.id], 10).await.unwrap();
    assert_eq!(many[&a.id], vec!["first", "second", "third", "fourth"]);
    assert!(!many.contains_key(&c.id));
}

fn emb(conversation_id: Uuid, values: &[f32], hash: &str) -> ConversationEmbedding {
    ConversationEmbedding {
        conversation_id,
        model: "potion-base-8M".into(),
        embedding: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        text_hash: hash.into(),
    }
}

async fn embeddings_are_upserted_per_conversation(db: TestDb) {
    let store = db.store().await;
    let a = conversation(&store, "a").await;
    let b = conversation(&store, "b").await;
    store.upsert_conversation_embeddings(&[emb(a.id, &[1.0, 0.0], "h1"), emb(b.id, &[0.5, 0.5], "h2")]).await.unwrap();
    store.upsert_conversation_embeddings(&[emb(a.id, &[0.0, 1.0, 0.0], "h3")]).await.unwrap();
    let mut got = store.conversation_embeddings(&[a.id, b.id, Uuid::now_v7()]).await.unwrap();
    got.sort_by_key(|e| e.conversation_id);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], emb(a.id, &[0.0, 1.0, 0.0], "h3"), "replaced, dims follow the new vector");
    assert_eq!(got[1], emb(b.id, &[0.5, 0.5], "h2"));
    // A conversation that does not exist is skipped, the others stored.
    let ghost = Uuid::now_v7();
    store.upsert_conversation_embeddings(&[emb(ghost, &[1.0], "x"), emb(b.id, &[1.0], "h4")]).await.unwrap();
    let got = store.conversation_embeddings(&[ghost, b.id]).await.unwrap();
    assert_eq!(got, vec![emb(b.id, &[1.0], "h4")]);

    // A missing conversation in the first statement's rows must not drop the rows of later statements.
    let mut many = vec![emb(Uuid::now_v7(), &[1.0], "gone")];
    let mut ids = Vec::new();
    for i in 0..250 {
        let id = conversation(&store, &format!("many-{i}")).await.id;
        ids.push(id);
        many.push(emb(id, &[0.5], "m"));
    }
    store.upsert_conversation_embeddings(&many).await.unwrap();
    assert_eq!(store.conversation_embeddings(&ids).await.unwrap().len(), 250);
}

async fn bad_embedding_bytes_are_refused(db: TestDb) {
    let store = db.store().await;
    let a = conversation(&store, "a").await;
    let mut bad = emb(a.id, &[1.0], "h");
    bad.embedding.pop();
    assert!(store.upsert_conversation_embeddings(&[bad]).await.is_err());
    assert!(store.conversation_embeddings(&[a.id]).await.unwrap().is_empty(), "nothing stored");
}

fn run(members: Vec<Vec<(Uuid, f64)>>) -> PatternRunWrite {
    PatternRunWrite {
        id: Uuid::now_v7(),
        trigger: "manual".into(),
        window_from: T0 - Duration::days(30),
        window_to: T0,
        representation: "tfidf".into(),
        conversations: 300,
        params: json!({"threshold": 0.1}),
        started_at: T0,
        patterns: members
            .into_iter()
            .enumerate()
            .map(|(i, m)| PatternWrite {
                label: format!("pattern {i}"),
                keywords: json!([{"term": "invoice", "weight": 0.4}]),
                avg_health: Some(72.5),
                failure_rate: Some(0.25),
                examples: json!([{"conversation_id": m[0].0, "excerpt": "why was I charged twice", "similarity": 0.8}]),
                method: "ctfidf".into(),
                members: m,
            })
            .collect(),
    }
}

async fn a_run_is_saved_with_members_and_old_runs_are_pruned(db: TestDb) {
    let store = db.store().await;
    assert!(store.latest_pattern_run().await.unwrap().is_none());
    let mut convs = Vec::new();
    for i in 0..260 {
        convs.push(conversation(&store, &format!("c{i}")).await.id);
    }
    // More members than one statement holds on either backend.
    let big: Vec<(Uuid, f64)> = convs[..250].iter().map(|id| (*id, 0.5)).collect();
    let small: Vec<(Uuid, f64)> = convs[250..].iter().map(|id| (*id, 0.9)).collect();
    let first = run(vec![small.clone(), big.clone()]);
    store.save_pattern_run(&first, 2).await.unwrap();
    let latest = store.latest_pattern_run().await.unwrap().unwrap();
    assert_eq!(latest.id, first.id);
    assert_eq!((latest.conversations, latest.clustered, latest.patterns), (300, 260, 2));
    assert_eq!(latest.params, json!({"threshold": 0.1}));
    let patterns = store.list_patterns(first.id).await.unwrap();
    assert_eq!(patterns.iter().map(|p| p.size).collect::<Vec<_>>(), vec![250, 10], "largest first");
    assert_eq!(patterns[0].label, "pattern 1");
    assert_eq!(patterns[0].keywords, json!([{"term": "invoice", "weight": 0.4}]));
    assert_eq!(patterns[0].avg_health, Some(72.5));
    assert_eq!(patterns[0].failure_rate, Some(0.25));
    let members = store.pattern_members(patterns[1].id).await.unwrap();
    assert_eq!(members.len(), 10);
    assert!(members.iter().all(|(id, s)| small.iter().any(|(c, _)| c == id) && *s == Some(0.9)));
    assert_eq!(store.pattern_members(patterns[0].id).await.unwrap().len(), 250);

    // Two more runs with keep = 2: the first one goes, with its patterns and memberships.
    let second = run(vec![small.clone()]);
    store.save_pattern_run(&second, 2).await.unwrap();
    let third = run(vec![big]);
    store.save_pattern_run(&third, 2).await.unwrap();
    assert_eq!(store.latest_pattern_run().await.unwrap().unwrap().id, third.id);
    assert!(store.list_patterns(first.id).await.unwrap().is_empty());
    assert_eq!(store.pattern_members(patterns[0].id).await.unwrap().len(), 0);
    assert_eq!(store.list_patterns(second.id).await.unwrap().len(), 1);
}
