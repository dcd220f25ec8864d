//! The store conformance suite: every test runs on SQLite and on PostgreSQL (when `TEST_DATABASE_URL` is set),
//! so the two backends cannot drift apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

use mentorfy_core::{OrgId, Session, SessionId, SessionStatus};
use mentorfy_store::{Store, StoreError};
use mentorfy_test_support::{TestDb, both_backends};
use serde_json::json;
use time::OffsetDateTime;

fn org(id: &str) -> OrgId {
    OrgId::parse(id).expect("valid org")
}

fn new_session(org_id: &str) -> Session {
    let id = SessionId::new_random();
    let org_id = org(org_id);
    Session {
        supermemory_container: Session::container_tag(&org_id, id),
        id,
        org_id,
        email: None,
        phone: None,
        name: None,
        clerk_user_id: None,
        context: json!({}),
        status: SessionStatus::InProgress,
        created_at: OffsetDateTime::UNIX_EPOCH,
        updated_at: OffsetDateTime::UNIX_EPOCH,
    }
}

both_backends!(
    session_round_trips_every_column,
    unknown_session_is_none,
    modify_session_writes_fields_and_bumps_updated_at,
    failed_modification_rolls_back,
    concurrent_modifications_of_different_keys_all_survive,
    latest_session_for_user_is_scoped_to_org,
    linked_email_lookup_ignores_unlinked_and_self,
    sweep_abandons_only_idle_in_progress_sessions,
    migrating_twice_applies_nothing_the_second_time,
);

async fn session_round_trips_every_column(db: TestDb) {
    let store = db.store().await;
    let mut s = new_session("rafael-tatts");
    s.email = Some("ana@example.com".into());
    s.phone = Some("+15551234567".into());
    s.name = Some("Ana Lúcia 🐉".into());
    s.context = json!({"business": {"rate": 250, "styles": ["fine line", "blackwork"]}, "ok": true, "n": null});
    let stored = store.insert_session(&s).await.expect("insert");
    assert!(stored.created_at > OffsetDateTime::UNIX_EPOCH);
    let got = store.get_session(s.id).await.expect("get").expect("exists");
    assert_eq!(got, stored, "what was written is what is read, timestamps included");
    assert_eq!(got.supermemory_container, format!("rafael-tatts-{}", s.id));
}

async fn unknown_session_is_none(db: TestDb) {
    let store = db.store().await;
    assert!(store.get_session(SessionId::new_random()).await.expect("get").is_none());
    let modified = store.modify_session(SessionId::new_random(), |_s| Ok::<(), StoreError>(())).await.expect("modify");
    assert!(modified.is_none());
}

async fn modify_session_writes_fields_and_bumps_updated_at(db: TestDb) {
    let store = db.store().await;
    let created = store.insert_session(&new_session("rafael-tatts")).await.expect("insert");
    let updated = store
        .modify_session(created.id, |s| {
            s.email = Some("b@example.com".into());
            s.context = json!({"a": 1});
            s.status = SessionStatus::Completed;
            Ok::<(), StoreError>(())
        })
        .await
        .expect("modify")
        .expect("exists");
    assert!(updated.updated_at >= created.updated_at);
    let got = store.get_session(created.id).await.expect("get").expect("exists");
    assert_eq!(got, updated);
    assert_eq!(got.status, SessionStatus::Completed);
    assert_eq!(got.context, json!({"a": 1}));
    assert_eq!(got.created_at, created.created_at);
}

#[derive(Debug)]
enum TestError {
    Refused,
    Store(#[allow(dead_code)] StoreError),
}

impl From<StoreError> for TestError {
    fn from(e: StoreError) -> Self {
        TestError::Store(e)
    }
}

async fn failed_modification_rolls_back(db: TestDb) {
    let store = db.store().await;
    let created = store.insert_session(&new_session("rafael-tatts")).await.expect("insert");
    let result = store
        .modify_session(created.id, |s| {
            s.name = Some("changed".into());
            Err::<(), _>(TestError::Refused)
        })
        .await;
    assert!(matches!(result, Err(TestError::Refused)), "{result:?}");
    let got = store.get_session(created.id).await.expect("get").expect("exists");
    assert_eq!(got.name, None);
    // The lock was released: a later modification goes through.
    let ok = store.modify_session(created.id, |_| Ok::<(), TestError>(())).await;
    assert!(matches!(ok, Ok(Some(_))), "{ok:?}");
}

async fn concurrent_modifications_of_different_keys_all_survive(db: TestDb) {
    let store = db.store().await;
    let created = store.insert_session(&new_session("rafael-tatts")).await.expect("insert");
    let tasks = (0..50).map(|i| {
        let store: Store = store.clone();
        tokio::spawn(async move {
            store
                .modify_session(created.id, move |s| {
                    if let Some(map) = s.context.as_object_mut() {
                        map.insert(format!("key{i}"), json!(i));
                    }
                    Ok::<(), StoreError>(())
                })
                .await
        })
    });
    for result in futures::future::join_all(tasks).await {
        result.expect("task").expect("modify").expect("exists");
    }
    let got = store.get_session(created.id).await.expect("get").expect("exists");
    let keys = got.context.as_object().map(|m| m.len()).unwrap_or(0);
    assert_eq!(keys, 50, "every concurrent write kept: {}", got.context);
}

async fn latest_session_for_user_is_scoped_to_org(db: TestDb) {
    let store = db.store().await;
    let mut older = new_session("rafael-tatts");
    older.clerk_user_id = Some("user_1".into());
    store.insert_session(&older).await.expect("insert");
    let mut newer = new_session("rafael-tatts");
    newer.clerk_user_id = Some("user_1".into());
    store.insert_session(&newer).await.expect("insert");
    store.set_session_updated_at(older.id, OffsetDateTime::now_utc() - time::Duration::hours(1)).await.expect("age");
    let mut other_org = new_session("acme");
    other_org.clerk_user_id = Some("user_1".into());
    store.insert_session(&other_org).await.expect("insert");

    let found = store.latest_session_for_user(&org("rafael-tatts"), "user_1").await.expect("query");
    assert_eq!(found.map(|s| s.id), Some(newer.id));
    assert!(store.latest_session_for_user(&org("rafael-tatts"), "user_2").await.expect("query").is_none());
    assert!(store.latest_session_for_user(&org("nobody"), "user_1").await.expect("query").is_none());
}

async fn linked_email_lookup_ignores_unlinked_and_self(db: TestDb) {
    let store = db.store().await;
    let rt = org("rafael-tatts");
    let mut unlinked = new_session("rafael-tatts");
    unlinked.email = Some("ana@example.com".into());
    store.insert_session(&unlinked).await.expect("insert");
    let mine = SessionId::new_random();
    assert!(!store.linked_session_with_email_exists(&rt, "ana@example.com", mine).await.expect("q"));

    let mut linked = new_session("rafael-tatts");
    linked.email = Some("ana@example.com".into());
    linked.clerk_user_id = Some("user_9".into());
    store.insert_session(&linked).await.expect("insert");
    assert!(store.linked_session_with_email_exists(&rt, "ana@example.com", mine).await.expect("q"));
    assert!(!store.linked_session_with_email_exists(&rt, "ana@example.com", linked.id).await.expect("q"));
    assert!(!store.linked_session_with_email_exists(&org("acme"), "ana@example.com", mine).await.expect("q"));
}

async fn sweep_abandons_only_idle_in_progress_sessions(db: TestDb) {
    let store = db.store().await;
    let now = OffsetDateTime::now_utc();
    let idle = store.insert_session(&new_session("rafael-tatts")).await.expect("insert");
    let active = store.insert_session(&new_session("rafael-tatts")).await.expect("insert");
    let mut done = new_session("rafael-tatts");
    done.status = SessionStatus::Completed;
    let done = store.insert_session(&done).await.expect("insert");
    let eight_days_ago = now - time::Duration::days(8);
    store.set_session_updated_at(idle.id, eight_days_ago).await.expect("age");
    store.set_session_updated_at(done.id, eight_days_ago).await.expect("age");
    // One microsecond on either side of the cut-off shows the comparison is on time, not text length.
    let cutoff = now - time::Duration::days(7);
    let just_after = store.insert_session(&new_session("rafael-tatts")).await.expect("insert");
    store.set_session_updated_at(just_after.id, cutoff + time::Duration::microseconds(1)).await.expect("age");

    let n = store.mark_abandoned_sessions(cutoff).await.expect("sweep");
    assert_eq!(n, 1);
    let status = |id| {
        let store = store.clone();
        async move { store.get_session(id).await.expect("get").expect("exists").status }
    };
    assert_eq!(status(idle.id).await, SessionStatus::Abandoned);
    assert_eq!(status(active.id).await, SessionStatus::InProgress);
    assert_eq!(status(done.id).await, SessionStatus::Completed);
    assert_eq!(status(just_after.id).await, SessionStatus::InProgress);
    assert_eq!(store.mark_abandoned_sessions(cutoff).await.expect("sweep"), 0, "sweeping again changes nothing");
}

async fn migrating_twice_applies_nothing_the_second_time(db: TestDb) {
    let store = Store::connect(&db.url, 2).await.expect("connect");
    let first = store.migrate().await.expect("migrate");
    assert!(!first.is_empty(), "a fresh database gets every migration");
    let second = store.migrate().await.expect("migrate");
    assert!(second.is_empty(), "{second:?}");
    store.ping().await.expect("ping");
}

mod checkpoint {
    use super::*;

    /// With auto-checkpointing off, the background checkpoint is what keeps SQLite's WAL from growing.
    #[tokio::test]
    async fn checkpoint_moves_the_wal_back_into_the_database() {
        let db = TestDb::create(mentorfy_test_support::Backend::Sqlite).await.expect("sqlite");
        let store = db.store().await;
        for _ in 0..50 {
            store.insert_session(&new_session("rafael-tatts")).await.expect("insert");
        }
        let wal = std::path::PathBuf::from(format!("{}-wal", db.url.trim_start_matches("sqlite://")));
        let pages = store.checkpoint().await.expect("checkpoint");
        assert!(pages > 0, "writes went to the WAL");
        // After a checkpoint with no readers in the way, the next writer restarts the WAL from the beginning,
        // so its size stops growing with the number of writes.
        let size_after_first = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        for _ in 0..50 {
            store.insert_session(&new_session("rafael-tatts")).await.expect("insert");
        }
        store.checkpoint().await.expect("checkpoint");
        let size_after_second = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert!(size_after_second <= size_after_first, "{size_after_second} > {size_after_first}");
        assert_eq!(store.list_sessions(&org("rafael-tatts"), 1000).await.expect("list").len(), 100);
    }
}
