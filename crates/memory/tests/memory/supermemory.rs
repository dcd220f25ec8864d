//! The Supermemory client against the local fake: the wire format we send, the 404 fallback to `/v3/documents`
//! taken once per tag, keyed writes replacing through `customId`, search mapping, idempotent forget, and error
//! classification with retry advice.

use std::time::Duration;

use mentorfy_fakes::supermemory::{API_KEY, FakeSupermemory};
use mentorfy_memory::{Container, MemoryError, MemoryStore, NewMemory, SearchOptions, Supermemory, SupermemoryConfig};
use serde_json::json;
use time::macros::datetime;

fn client(fake: &FakeSupermemory) -> Supermemory {
    Supermemory::new(SupermemoryConfig::new(fake.url(), API_KEY)).unwrap()
}

fn memory(content: &str) -> NewMemory {
    NewMemory {
        content: content.into(),
        source: "chat".into(),
        metadata: json!({"turn": 4, "nested": {"a": 1}}),
        ..NewMemory::default()
    }
}

fn tag() -> Container {
    Container::for_session("acme", "3f9c2a1e-8b7d-4c6f-9a1b-2c3d4e5f6a7b").unwrap()
}

#[tokio::test]
async fn first_write_to_a_new_tag_falls_back_to_documents_once_then_uses_v4() {
    let fake = FakeSupermemory::start().await;
    let sm = client(&fake);
    let c = tag();
    let dated = NewMemory { date: Some(datetime!(2026-08-20 10:15 UTC)), ..memory("Dana prefers Rust examples.") };
    sm.add(&c, dated).await.unwrap();
    sm.add(&c, memory("Dana's name is Dana.")).await.unwrap();
    let requests = fake.requests();
    let calls: Vec<(&str, &str, u16)> =
        requests.iter().map(|r| (r.method.as_str(), r.path.as_str(), r.status)).collect();
    assert_eq!(calls, [("POST", "/v4/memories", 404), ("POST", "/v3/documents", 200), ("POST", "/v4/memories", 201)]);
    for r in &requests {
        assert_eq!(r.header("authorization"), Some("Bearer sm_test_key"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body["containerTag"], json!(c.as_str()), "one tag, singular");
        assert!(r.body.get("containerTags").is_none());
    }
    let first = &requests[0].body["memories"][0];
    assert_eq!(first["content"], "Dana prefers Rust examples.");
    assert_eq!(first["isStatic"], false);
    assert_eq!(first["temporalContext"]["documentDate"], "2026-08-20T10:15:00Z");
    assert_eq!(first["metadata"]["turn"], 4);
    assert_eq!(first["metadata"]["source"], "chat");
    assert_eq!(first["metadata"]["nested"], "{\"a\":1}", "metadata is flattened");
    assert_eq!(requests[1].body["content"], "Dana prefers Rust examples.");
    assert_eq!(fake.memories(c.as_str()).len(), 2);
}

#[tokio::test]
async fn keyed_writes_replace_through_custom_id() {
    let fake = FakeSupermemory::start().await;
    let sm = client(&fake);
    let c = tag();
    let goal = |t: &str| NewMemory { key: Some("onboarding.goal".into()), ..memory(t) };
    sm.add(&c, goal("Goal: run a marathon.")).await.unwrap();
    sm.add(&c, goal("Goal: learn to swim.")).await.unwrap();
    let held: Vec<String> = fake.memories(c.as_str()).into_iter().map(|m| m.content).collect();
    assert_eq!(held, ["Goal: learn to swim."]);
    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.path == "/v3/documents" && r.status == 200));
    assert_eq!(requests[0].body["customId"], requests[1].body["customId"]);
    let store: &dyn MemoryStore = &sm;
    store.forget_key(&c, "onboarding.goal").await.unwrap();
    store.forget_key(&c, "onboarding.goal").await.unwrap(); // 404: already gone
    assert!(fake.memories(c.as_str()).is_empty());
    let last = fake.requests();
    assert_eq!(last[2].method, "DELETE");
    assert_eq!(last[2].path, format!("/v3/documents/{}", requests[0].body["customId"].as_str().unwrap()));
    assert_eq!((last[2].status, last[3].status), (204, 404));
}

#[tokio::test]
async fn search_maps_results_and_applies_the_budget() {
    let fake = FakeSupermemory::start().await;
    fake.create_container(tag().as_str());
    let sm = client(&fake);
    let c = tag();
    let dated = NewMemory { date: Some(datetime!(2023-05-08 13:56 UTC)), ..memory("Dana adopted a puppy named Rex.") };
    let id = sm.add(&c, dated).await.unwrap();
    sm.add(&c, memory("Dana plays the violin.")).await.unwrap();
    let hits = sm.search(&c, "puppy named", SearchOptions { limit: 5, token_budget: None }).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, id);
    assert_eq!(hits[0].content, "Dana adopted a puppy named Rex.");
    assert_eq!(hits[0].created_at, datetime!(2023-05-08 13:56 UTC));
    assert_eq!(hits[0].source, "chat");
    assert!(hits[0].score > 0.0);
    let sent = fake.requests().last().unwrap().body.clone();
    assert_eq!(sent["q"], "puppy named");
    assert_eq!(sent["limit"], 5);
    assert_eq!(sent["searchMode"], "memories");
    let none = sm.search(&c, "puppy named", SearchOptions { limit: 5, token_budget: Some(2) }).await.unwrap();
    assert!(none.is_empty(), "a result larger than the budget is left out");
    let unknown = Container::parse("never-written").unwrap();
    assert!(sm.search(&unknown, "anything", SearchOptions::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn forget_is_idempotent_and_list_is_unsupported() {
    let fake = FakeSupermemory::start().await;
    fake.create_container(tag().as_str());
    let sm = client(&fake);
    let c = tag();
    let id = sm.add(&c, memory("to be forgotten")).await.unwrap();
    sm.forget(&c, &id).await.unwrap();
    sm.forget(&c, &id).await.unwrap(); // 409 already forgotten
    sm.forget(&c, "mem_unknown").await.unwrap(); // 404
    assert!(fake.memories(c.as_str()).is_empty());
    let statuses: Vec<u16> = fake.requests().iter().skip(1).map(|r| r.status).collect();
    assert_eq!(statuses, [200, 409, 404]);
    assert_eq!(fake.requests()[1].body, json!({"id": id, "containerTag": c.as_str()}));
    let store: &dyn MemoryStore = &sm;
    let err = store.list(&c, 10).await.unwrap_err();
    assert!(matches!(err, MemoryError::Unsupported { .. }), "{err}");
    assert!(!err.retryable());
}

#[tokio::test]
async fn errors_are_classified_with_retry_advice() {
    let fake = FakeSupermemory::start().await;
    fake.create_container(tag().as_str());
    let sm = client(&fake);
    let c = tag();
    fake.fail_next(1, 429, Some(7));
    let err = sm.add(&c, memory("x")).await.unwrap_err();
    assert!(err.retryable(), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    fake.fail_next(1, 503, None);
    let err = sm.search(&c, "x", SearchOptions::default()).await.unwrap_err();
    assert!(err.retryable() && err.retry_after().is_none(), "{err}");
    fake.fail_next(1, 400, None);
    let err = sm.add(&c, memory("x")).await.unwrap_err();
    assert!(matches!(err, MemoryError::Rejected { status: 400, .. }) && !err.retryable(), "{err}");
    fake.fail_next(1, 402, None);
    assert!(matches!(
        sm.search(&c, "x", SearchOptions::default()).await,
        Err(MemoryError::Rejected { status: 402, .. })
    ));
    let wrong_key = Supermemory::new(SupermemoryConfig::new(fake.url(), "nope")).unwrap();
    let err = wrong_key.add(&c, memory("x")).await.unwrap_err();
    assert!(matches!(err, MemoryError::Rejected { status: 401, .. }), "{err}");
    // Nothing listening: a transport error, retryable.
    let closed = Supermemory::new(SupermemoryConfig::new("http://127.0.0.1:9", API_KEY)).unwrap();
    assert!(closed.add(&c, memory("x")).await.unwrap_err().retryable());
    // After all that, the one good write is there once.
    sm.add(&c, memory("finally stored")).await.unwrap();
    assert_eq!(fake.memories(c.as_str()).len(), 1);
}
