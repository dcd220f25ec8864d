//! `EmbeddedMemory` on SQLite and PostgreSQL: add/search/list/forget, replacement by key, dates on hits, token
//! budgets, and cache coherence between two processes sharing one database.

use mentorfy_memory::{Container, EmbeddedMemory, MemoryError, MemoryStore, NewMemory, SearchOptions};
use mentorfy_test_support::{TestDb, both_backends};
use serde_json::json;
use time::macros::datetime;

both_backends!(
    search_finds_relevant_memories_with_their_dates,
    same_key_replaces_a_changed_answer,
    list_is_newest_first_and_forget_removes,
    another_process_sees_writes_through_the_version_check,
    semantic_search_finds_paraphrases_when_a_model_is_present,
    token_budget_caps_results,
    bad_input_is_invalid,
);

fn memory(content: &str) -> NewMemory {
    NewMemory { content: content.into(), source: "chat".into(), metadata: json!({}), ..NewMemory::default() }
}

fn container(name: &str) -> Container {
    Container::for_session("acme", name).unwrap()
}

async fn search_finds_relevant_memories_with_their_dates(db: TestDb) {
    let m = EmbeddedMemory::new(db.store().await, super::embedder());
    let c = container("s1");
    let dated = NewMemory { date: Some(datetime!(2023-05-08 13:56 UTC)), ..memory("Dana adopted a puppy called Rex.") };
    let id = m.add(&c, dated).await.unwrap();
    m.add(&c, memory("Dana is learning the violin.")).await.unwrap();
    m.add(&container("s2"), memory("Someone else adopted a puppy.")).await.unwrap();
    let hits = m.search(&c, "What is the name of Dana's puppy?", SearchOptions::default()).await.unwrap();
    assert_eq!(hits[0].id, id.to_string());
    assert_eq!(hits[0].created_at, datetime!(2023-05-08 13:56 UTC));
    assert_eq!(hits[0].source, "chat");
    assert!(hits.iter().all(|h| !h.content.contains("Someone else")), "containers are isolated");
    let dynamic: &dyn MemoryStore = &m;
    assert_eq!(dynamic.backend(), "embedded");
    assert_eq!(
        dynamic.search(&c, "violin", SearchOptions::default()).await.unwrap()[0].content,
        "Dana is learning the violin."
    );
}

async fn same_key_replaces_a_changed_answer(db: TestDb) {
    let m = EmbeddedMemory::new(db.store().await, super::embedder());
    let c = container("s3");
    let goal = |text: &str| NewMemory { key: Some("onboarding.goal".into()), ..memory(text) };
    let old = m.add(&c, goal("Dana's goal is to run a marathon.")).await.unwrap();
    assert!(!m.search(&c, "marathon goal", SearchOptions::default()).await.unwrap().is_empty());
    let new = m.add(&c, goal("Dana's goal is to learn to swim.")).await.unwrap();
    assert_ne!(old, new);
    let listed = m.list(&c, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].content, "Dana's goal is to learn to swim.");
    assert!(m.search(&c, "marathon", SearchOptions::default()).await.unwrap().is_empty(), "the old answer is gone");
    let dynamic: &dyn MemoryStore = &m;
    dynamic.forget_key(&c, "onboarding.goal").await.unwrap();
    dynamic.forget_key(&c, "onboarding.goal").await.unwrap();
    assert!(m.list(&c, 10).await.unwrap().is_empty());
}

async fn list_is_newest_first_and_forget_removes(db: TestDb) {
    let m = EmbeddedMemory::new(db.store().await, None);
    let c = container("s4");
    let first = m.add(&c, memory("first fact about cats")).await.unwrap();
    m.add(&c, memory("second fact about cats")).await.unwrap();
    let listed: Vec<String> = m.list(&c, 10).await.unwrap().into_iter().map(|h| h.content).collect();
    assert_eq!(listed, ["second fact about cats", "first fact about cats"]);
    assert_eq!(m.search(&c, "cats", SearchOptions::default()).await.unwrap().len(), 2);
    m.forget(&c, &first.to_string()).await.unwrap();
    m.forget(&c, &first.to_string()).await.unwrap(); // already gone: fine
    let hits = m.search(&c, "cats", SearchOptions::default()).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].content, "second fact about cats");
}

async fn another_process_sees_writes_through_the_version_check(db: TestDb) {
    // Two engines on one database stand for two server processes: each has its own cache.
    let a = EmbeddedMemory::new(db.store().await, None);
    let b = EmbeddedMemory::new(db.store().await, None);
    let c = container("s5");
    a.add(&c, memory("the studio opens at nine")).await.unwrap();
    assert_eq!(b.search(&c, "studio", SearchOptions::default()).await.unwrap().len(), 1); // b caches
    let second = a.add(&c, memory("the studio closes at six")).await.unwrap();
    assert_eq!(b.search(&c, "studio", SearchOptions::default()).await.unwrap().len(), 2, "b saw a's insert");
    a.forget(&c, &second.to_string()).await.unwrap();
    assert_eq!(b.search(&c, "studio", SearchOptions::default()).await.unwrap().len(), 1, "b saw a's delete");
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    a.add(&c, NewMemory { key: Some("hours".into()), ..memory("the studio opens at ten") }).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    a.add(&c, NewMemory { key: Some("hours".into()), ..memory("the studio opens at eleven") }).await.unwrap();
    let hits = b.search(&c, "studio opens", SearchOptions::default()).await.unwrap();
    assert!(hits.iter().any(|h| h.content.contains("eleven")), "b saw a's replacement: {hits:?}");
    assert!(!hits.iter().any(|h| h.content.contains("ten")));
}

async fn semantic_search_finds_paraphrases_when_a_model_is_present(db: TestDb) {
    let Some(e) = super::embedder() else { return };
    let m = EmbeddedMemory::new(db.store().await, Some(e));
    let c = container("s6");
    m.add(&c, memory("Dana has a golden retriever.")).await.unwrap();
    m.add(&c, memory("The invoice was paid on Tuesday.")).await.unwrap();
    m.add(&c, memory("Dana bought new running shoes.")).await.unwrap();
    // No word in common with the answer: BM25 alone finds nothing.
    let hits = m.search(&c, "which pet dog", SearchOptions::default()).await.unwrap();
    assert_eq!(hits[0].content, "Dana has a golden retriever.", "{hits:?}");
}

async fn token_budget_caps_results(db: TestDb) {
    let m = EmbeddedMemory::new(db.store().await, None);
    let c = container("s7");
    for i in 0..20 {
        m.add(&c, memory(&format!("note {i}: the garden needs watering every morning in summer"))).await.unwrap();
    }
    let all = m.search(&c, "garden watering", SearchOptions { limit: 20, token_budget: None }).await.unwrap();
    assert_eq!(all.len(), 20);
    let capped = m.search(&c, "garden watering", SearchOptions { limit: 20, token_budget: Some(50) }).await.unwrap();
    let tokens: usize = capped.iter().map(|h| mentorfy_memory::text::estimate_tokens(&h.content)).sum();
    assert!(!capped.is_empty() && tokens <= 50, "{} results, {tokens} tokens", capped.len());
}

async fn bad_input_is_invalid(db: TestDb) {
    let m = EmbeddedMemory::new(db.store().await, None);
    let c = container("s8");
    assert!(matches!(m.add(&c, memory("   ")).await, Err(MemoryError::Invalid(_))));
    assert!(matches!(m.add(&c, memory(&"x".repeat(10_001))).await, Err(MemoryError::Invalid(_))));
    let bad_meta = NewMemory { metadata: json!([1]), ..memory("ok") };
    assert!(matches!(m.add(&c, bad_meta).await, Err(MemoryError::Invalid(_))));
    assert!(matches!(m.forget(&c, "not-a-uuid").await, Err(MemoryError::Invalid(_))));
    assert!(m.search(&c, "anything", SearchOptions::default()).await.unwrap().is_empty());
}
