#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Memory rows on both backends: round trip of every column, replacement by key (also under concurrency),
//! newest-first listing, container isolation, deletes scoped to their container, and the version fingerprint.

use mentorfy_store::{MemoryRow, MemoryVersion, NewMemoryRow, Store, StoreError};
use mentorfy_test_support::{TestDb, both_backends};
use serde_json::json;
use time::macros::datetime;
use uuid::Uuid;

both_backends!(
    memory_round_trips_every_column,
    same_key_replaces_the_old_memory_in_its_container_only,
    concurrent_writes_of_one_key_leave_one_row,
    list_is_newest_first_and_limited_and_container_memories_oldest_first,
    delete_only_touches_its_container,
    version_changes_on_insert_replace_and_delete,
    reused_id_is_a_conflict,
);

fn new<'a>(container: &'a str, content: &'a str, key: Option<&'a str>) -> NewMemoryRow<'a> {
    NewMemoryRow {
        id: Uuid::now_v7(),
        container,
        content,
        source: "chat",
        key,
        memory_date: None,
        memory_group: None,
        position: None,
        embedding: None,
        metadata: json!({}),
    }
}

async fn add(store: &Store, container: &str, content: &str) -> MemoryRow {
    store.upsert_memory(new(container, content, None)).await.expect("upsert")
}

fn contents(rows: &[MemoryRow]) -> Vec<&str> {
    rows.iter().map(|r| r.content.as_str()).collect()
}

async fn memory_round_trips_every_column(db: TestDb) {
    let store = db.store().await;
    let embedding: Vec<u8> = [0.5f32, -1.25, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let row = store
        .upsert_memory(NewMemoryRow {
            memory_date: Some(datetime!(2023-05-08 13:56:00.123456 UTC)),
            memory_group: Some("session_1"),
            position: Some(3),
            embedding: Some(embedding.clone()),
            metadata: json!({"turn": 4, "speaker": "Caroline", "tags": ["é", "ü"]}),
            ..new("org-s1", "Caroline went to an LGBTQ support group.", Some("q1"))
        })
        .await
        .expect("upsert");
    assert_eq!(row.container, "org-s1");
    assert_eq!(row.source, "chat");
    assert_eq!(row.key.as_deref(), Some("q1"));
    assert_eq!(row.memory_date, Some(datetime!(2023-05-08 13:56:00.123456 UTC)));
    assert_eq!((row.memory_group.as_deref(), row.position), (Some("session_1"), Some(3)));
    assert_eq!(row.embedding.as_deref(), Some(embedding.as_slice()));
    assert_eq!(row.metadata["tags"], json!(["é", "ü"]));
    assert_eq!(row.id.get_version_num(), 7);
    assert_eq!(row.created_at, row.updated_at);
    let stored = store.container_memories("org-s1").await.expect("rows");
    assert_eq!(stored, vec![row], "what upsert returns is what is stored");
}

async fn same_key_replaces_the_old_memory_in_its_container_only(db: TestDb) {
    let store = db.store().await;
    let old = store.upsert_memory(new("org-a", "Goal: learn Rust", Some("goal"))).await.expect("upsert");
    let other = store.upsert_memory(new("org-b", "Goal: learn Go", Some("goal"))).await.expect("upsert");
    add(&store, "org-a", "unkeyed one").await;
    add(&store, "org-a", "unkeyed two").await;
    let replaced = store.upsert_memory(new("org-a", "Goal: learn Haskell", Some("goal"))).await.expect("upsert");
    assert_ne!(replaced.id, old.id, "the replacement is a new memory");
    assert!(replaced.updated_at >= old.updated_at);
    let rows = store.container_memories("org-a").await.expect("rows");
    assert_eq!(contents(&rows), ["unkeyed one", "unkeyed two", "Goal: learn Haskell"]);
    assert_eq!(store.container_memories("org-b").await.expect("rows"), vec![other]);
    // Memories without a key never replace each other.
    add(&store, "org-a", "unkeyed one").await;
    assert_eq!(store.count_memories("org-a").await.expect("count"), 4);
}

async fn concurrent_writes_of_one_key_leave_one_row(db: TestDb) {
    let store = db.store().await;
    let writes = (0..16).map(|i| {
        let store = store.clone();
        async move {
            let content = format!("answer {i}");
            store.upsert_memory(new("org-c", &content, Some("answer"))).await.expect("upsert")
        }
    });
    let written = futures::future::join_all(writes).await;
    let rows = store.container_memories("org-c").await.expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(store.memory_version("org-c").await.expect("version"), MemoryVersion { version: 16, memory_count: 1 });
    assert!(written.iter().any(|w| w.id == rows[0].id), "the survivor is one of the writes");
}

async fn list_is_newest_first_and_limited_and_container_memories_oldest_first(db: TestDb) {
    let store = db.store().await;
    for c in ["one", "two", "three"] {
        add(&store, "org-l", c).await;
    }
    add(&store, "org-other", "elsewhere").await;
    assert_eq!(contents(&store.list_memories("org-l", 10).await.expect("list")), ["three", "two", "one"]);
    assert_eq!(contents(&store.list_memories("org-l", 2).await.expect("list")), ["three", "two"]);
    assert!(store.list_memories("org-l", 0).await.expect("list").is_empty());
    assert_eq!(contents(&store.container_memories("org-l").await.expect("rows")), ["one", "two", "three"]);
    assert!(store.list_memories("org-none", 10).await.expect("list").is_empty());
}

async fn delete_only_touches_its_container(db: TestDb) {
    let store = db.store().await;
    let a = add(&store, "org-d", "keep me?").await;
    assert!(!store.delete_memory("org-x", a.id).await.expect("delete"), "another container cannot delete it");
    assert_eq!(store.count_memories("org-d").await.expect("count"), 1);
    assert!(store.delete_memory("org-d", a.id).await.expect("delete"));
    assert!(!store.delete_memory("org-d", a.id).await.expect("delete"), "second delete finds nothing");
    assert_eq!(store.count_memories("org-d").await.expect("count"), 0);
    store.upsert_memory(new("org-d", "keyed", Some("k"))).await.expect("upsert");
    assert!(!store.delete_memory_by_key("org-x", "k").await.expect("delete"));
    assert!(store.delete_memory_by_key("org-d", "k").await.expect("delete"));
    assert_eq!(store.count_memories("org-d").await.expect("count"), 0);
}

async fn version_changes_on_insert_replace_and_delete(db: TestDb) {
    let store = db.store().await;
    let empty = store.memory_version("org-v").await.expect("version");
    assert_eq!(empty, MemoryVersion { version: 0, memory_count: 0 });
    store.upsert_memory(new("org-v", "first", Some("k"))).await.expect("upsert");
    let v1 = store.memory_version("org-v").await.expect("version");
    assert_eq!(v1, MemoryVersion { version: 1, memory_count: 1 });
    store.upsert_memory(new("org-v", "second", Some("k"))).await.expect("upsert");
    let v2 = store.memory_version("org-v").await.expect("version");
    assert_eq!(v2, MemoryVersion { version: 2, memory_count: 1 }, "a replacement changes the version");
    let c = add(&store, "org-v", "third").await;
    assert!(store.delete_memory("org-v", c.id).await.expect("delete"));
    assert_eq!(store.memory_version("org-v").await.expect("version"), MemoryVersion { version: 4, memory_count: 1 });
    assert_eq!(store.memory_version("org-w").await.expect("version"), MemoryVersion::default());
    // A refused write leaves the version alone (the bump rolls back with it).
    let err = store.upsert_memory(NewMemoryRow { id: c.id, ..new("org-v", "x", None) }).await;
    assert!(err.is_ok(), "the deleted id is free again");
    let v5 = store.memory_version("org-v").await.expect("version");
    assert!(store.upsert_memory(NewMemoryRow { id: c.id, ..new("org-v", "y", None) }).await.is_err());
    assert_eq!(store.memory_version("org-v").await.expect("version"), v5);
}

async fn reused_id_is_a_conflict(db: TestDb) {
    let store = db.store().await;
    let a = add(&store, "org-r", "one").await;
    let err = store.upsert_memory(NewMemoryRow { id: a.id, ..new("org-r", "two", None) }).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}
