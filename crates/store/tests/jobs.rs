#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns
//! The job queue's storage on both backends: enqueue/claim/complete, debounce by unique key, scheduling,
//! retries to `dead`, lease expiry and takeover, concurrent claimers, and enqueueing in a session's transaction.

use std::collections::HashSet;
use std::time::Duration;

use mentorfy_core::{JobId, OrgId, Session, SessionId, SessionStatus};
use mentorfy_store::{JobState, NewJob, Store, StoreError};
use mentorfy_test_support::{TestDb, both_backends};
use serde_json::json;
use time::OffsetDateTime;

both_backends!(
    enqueued_job_is_claimed_once_and_completed,
    unique_key_debounces_only_while_pending,
    scheduled_job_is_not_claimed_before_run_at,
    failed_job_is_retried_then_dead_with_its_error_kept,
    expired_lease_is_reclaimed_and_the_old_worker_can_no_longer_finish,
    release_returns_the_job_without_counting_the_attempt,
    retry_that_meets_a_pending_duplicate_key_drops_its_key,
    concurrent_claimers_never_get_the_same_job,
    jobs_enqueued_with_a_session_change_commit_with_it_and_roll_back_with_it,
    claim_filters_by_queue,
    claim_reclaims_expired_leases_first_then_due_jobs_oldest_first,
);

const LEASE: Duration = Duration::from_secs(30);

fn job(kind: &str) -> NewJob {
    NewJob::new("test", kind, json!({"n": 1, "text": "é"}))
}

fn queues() -> Vec<String> {
    Vec::new()
}

async fn enqueued_job_is_claimed_once_and_completed(db: TestDb) {
    let store = db.store().await;
    let id = store.enqueue(&job("a").max_attempts(3)).await.unwrap().expect("enqueued");
    let stored = store.get_job(id).await.unwrap().expect("stored");
    assert_eq!(
        (stored.state, stored.attempts, stored.max_attempts, stored.payload.clone()),
        (JobState::Pending, 0, Some(3), json!({"n": 1, "text": "é"}))
    );

    let claimed = store.claim(&queues(), "w1", LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!((c.id, c.state, c.attempts, c.locked_by.as_deref()), (id, JobState::Running, 1, Some("w1")));
    assert!(c.lease_expires_at.expect("lease") > OffsetDateTime::now_utc() + time::Duration::seconds(20));
    assert!(store.claim(&queues(), "w2", LEASE, 10).await.unwrap().is_empty(), "a held job is not claimed again");

    assert!(!store.complete(id, "w2").await.unwrap(), "only the holder completes");
    assert!(store.renew_lease(id, "w1", LEASE).await.unwrap());
    assert!(store.complete(id, "w1").await.unwrap());
    assert!(!store.complete(id, "w1").await.unwrap(), "completing twice changes nothing");
    let done = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Done);
    assert!(done.finished_at.is_some() && done.lease_expires_at.is_none());
    assert!(store.claim(&queues(), "w1", LEASE, 10).await.unwrap().is_empty());
    assert_eq!(store.job_counts().await.unwrap(), vec![("test".to_owned(), JobState::Done, 1)]);
}

async fn unique_key_debounces_only_while_pending(db: TestDb) {
    let store = db.store().await;
    let first = store.enqueue(&job("analyse").unique_key("conv:1")).await.unwrap().expect("first");
    assert_eq!(store.enqueue(&job("analyse").unique_key("conv:1")).await.unwrap(), None, "debounced");
    assert!(store.enqueue(&job("analyse").unique_key("conv:2")).await.unwrap().is_some(), "other key");
    assert!(store.enqueue(&job("analyse")).await.unwrap().is_some(), "no key: never debounced");
    assert!(store.enqueue(&job("analyse")).await.unwrap().is_some());

    // Once the first is running, a new pending one with the key may be enqueued (it covers later changes)...
    let claimed = store.claim(&queues(), "w", LEASE, 1).await.unwrap();
    assert_eq!(claimed[0].id, first);
    let second = store.enqueue(&job("analyse").unique_key("conv:1")).await.unwrap().expect("key free again");
    assert_ne!(second, first);
    // ...but `enqueue_if_idle` (recurring jobs) also counts the running one.
    assert!(store.enqueue_if_idle(&job("tick").unique_key("recurring:x")).await.unwrap().is_some());
    assert_eq!(store.enqueue_if_idle(&job("tick").unique_key("recurring:x")).await.unwrap(), None);
    assert_eq!(store.enqueue_if_idle(&job("analyse").unique_key("conv:1")).await.unwrap(), None);
}

async fn scheduled_job_is_not_claimed_before_run_at(db: TestDb) {
    let store = db.store().await;
    let soon = OffsetDateTime::now_utc() + time::Duration::milliseconds(300);
    let later = store.enqueue(&job("later").run_at(soon)).await.unwrap().unwrap();
    let far = store.enqueue(&job("far").run_at(OffsetDateTime::now_utc() + time::Duration::days(1))).await.unwrap();
    assert!(far.is_some());
    assert!(store.claim(&queues(), "w", LEASE, 10).await.unwrap().is_empty(), "not due yet");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let claimed = store.claim(&queues(), "w", LEASE, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![later], "only the due job");
}

async fn failed_job_is_retried_then_dead_with_its_error_kept(db: TestDb) {
    let store = db.store().await;
    let id = store.enqueue(&job("flaky").max_attempts(2)).await.unwrap().unwrap();
    let c = store.claim(&queues(), "w", LEASE, 1).await.unwrap();
    assert_eq!(c[0].attempts, 1);
    let retry_at = OffsetDateTime::now_utc() + time::Duration::milliseconds(200);
    assert!(!store.fail(id, "other", "nope", Some(retry_at)).await.unwrap(), "only the holder fails it");
    assert!(store.fail(id, "w", "boom 1", Some(retry_at)).await.unwrap());
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!((j.state, j.last_error.as_deref(), j.locked_by.as_deref()), (JobState::Pending, Some("boom 1"), None));
    assert!(store.claim(&queues(), "w", LEASE, 1).await.unwrap().is_empty(), "retry waits for its time");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = store.claim(&queues(), "w", LEASE, 1).await.unwrap();
    assert_eq!((c[0].id, c[0].attempts), (id, 2));
    assert!(store.fail(id, "w", "boom 2: final", None).await.unwrap());
    let dead = store.dead_jobs(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].id, dead[0].state, dead[0].attempts, dead[0].last_error.as_deref()),
        (id, JobState::Dead, 2, Some("boom 2: final"))
    );
    assert!(dead[0].finished_at.is_some());
    assert!(store.claim(&queues(), "w", LEASE, 1).await.unwrap().is_empty(), "dead jobs are not claimed");
}

async fn expired_lease_is_reclaimed_and_the_old_worker_can_no_longer_finish(db: TestDb) {
    let store = db.store().await;
    let id = store.enqueue(&job("slow")).await.unwrap().unwrap();
    let c = store.claim(&queues(), "dead-worker", Duration::from_millis(100), 1).await.unwrap();
    assert_eq!(c.len(), 1);
    assert!(store.claim(&queues(), "w2", LEASE, 1).await.unwrap().is_empty(), "lease still valid");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = store.claim(&queues(), "w2", LEASE, 1).await.unwrap();
    assert_eq!((c[0].id, c[0].attempts, c[0].locked_by.as_deref()), (id, 2, Some("w2")));
    assert!(!store.renew_lease(id, "dead-worker", LEASE).await.unwrap());
    assert!(!store.complete(id, "dead-worker").await.unwrap());
    assert!(!store.fail(id, "dead-worker", "late", None).await.unwrap());
    assert!(!store.release(id, "dead-worker").await.unwrap());
    assert_eq!(store.get_job(id).await.unwrap().unwrap().state, JobState::Running);
    assert!(store.complete(id, "w2").await.unwrap());
    assert_eq!(store.get_job(id).await.unwrap().unwrap().state, JobState::Done);
}

async fn release_returns_the_job_without_counting_the_attempt(db: TestDb) {
    let store = db.store().await;
    let id = store.enqueue(&job("r").unique_key("k")).await.unwrap().unwrap();
    store.claim(&queues(), "w", LEASE, 1).await.unwrap();
    assert!(store.release(id, "w").await.unwrap());
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts, j.locked_by, j.unique_key.as_deref()), (JobState::Pending, 0, None, Some("k")));
    assert_eq!(store.enqueue(&job("r").unique_key("k")).await.unwrap(), None, "pending again: debounces again");
    let c = store.claim(&queues(), "w2", LEASE, 1).await.unwrap();
    assert_eq!((c[0].id, c[0].attempts), (id, 1));
}

async fn retry_that_meets_a_pending_duplicate_key_drops_its_key(db: TestDb) {
    let store = db.store().await;
    let first = store.enqueue(&job("a").unique_key("k")).await.unwrap().unwrap();
    store.claim(&queues(), "w", LEASE, 1).await.unwrap();
    let second = store.enqueue(&job("a").unique_key("k")).await.unwrap().expect("key is free while first runs");
    assert!(store.fail(first, "w", "transient", Some(OffsetDateTime::now_utc())).await.unwrap());
    let (a, b) = (store.get_job(first).await.unwrap().unwrap(), store.get_job(second).await.unwrap().unwrap());
    assert_eq!((a.state, a.unique_key), (JobState::Pending, None));
    assert_eq!((b.state, b.unique_key.as_deref()), (JobState::Pending, Some("k")));
}

async fn concurrent_claimers_never_get_the_same_job(db: TestDb) {
    let store = db.store().await;
    const JOBS: usize = 200;
    for i in 0..JOBS {
        store.enqueue(&NewJob::new("test", "c", json!({"i": i}))).await.unwrap().unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        // A store (pool) of its own per claimer: on PostgreSQL these are separate connections, like processes.
        let own: Store = db.store().await;
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut mine = Vec::new();
            loop {
                let batch = own.claim(&[], &worker, LEASE, 3).await.expect("claim");
                if batch.is_empty() {
                    break;
                }
                for j in batch {
                    assert!(own.complete(j.id, &worker).await.expect("complete"), "holder completes");
                    mine.push(j.id);
                }
            }
            own.close().await;
            mine
        }));
    }
    let mut all: Vec<JobId> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a job was claimed twice");
    assert_eq!(all.len(), JOBS);
    assert_eq!(store.job_counts().await.unwrap(), vec![("test".to_owned(), JobState::Done, JOBS as u64)]);
}

async fn jobs_enqueued_with_a_session_change_commit_with_it_and_roll_back_with_it(db: TestDb) {
    let store = db.store().await;
    let org = OrgId::parse("rafael-tatts").unwrap();
    let id = SessionId::new_random();
    let session = Session {
        supermemory_container: Session::container_tag(&org, id),
        id,
        org_id: org,
        email: None,
        phone: None,
        name: None,
        clerk_user_id: None,
        context: json!({}),
        status: SessionStatus::InProgress,
        created_at: OffsetDateTime::UNIX_EPOCH,
        updated_at: OffsetDateTime::UNIX_EPOCH,
    };
    store.insert_session(&session).await.unwrap();

    let (after, ids) = store
        .modify_session_and_enqueue(
            id,
            |s| {
                s.context = json!({"goal": "ship"});
                Ok::<_, StoreError>(())
            },
            |before, after| {
                assert_eq!(before.context, json!({}));
                vec![
                    NewJob::new("memory", "memory.write", json!({"session": after.id, "context": after.context}))
                        .unique_key(format!("memory:{}", after.id)),
                    NewJob::new("memory", "memory.write", json!({})).unique_key(format!("memory:{}", after.id)),
                ]
            },
        )
        .await
        .unwrap()
        .expect("session exists");
    assert_eq!(after.context, json!({"goal": "ship"}));
    assert_eq!(ids.len(), 1, "the second job was debounced by the first, in the same transaction");
    let j = store.get_job(ids[0]).await.unwrap().unwrap();
    assert_eq!((j.kind.as_str(), j.payload["context"]["goal"].as_str()), ("memory.write", Some("ship")));

    // The change closure refuses: neither the session nor any job is written.
    let refused: Result<_, StoreError> = store
        .modify_session_and_enqueue(
            id,
            |s| {
                s.context = json!({"goal": "other"});
                Err(StoreError::Conflict("refused".into()))
            },
            |_, _| vec![NewJob::new("memory", "never", json!({}))],
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));
    assert_eq!(store.get_session(id).await.unwrap().unwrap().context, json!({"goal": "ship"}));
    assert!(store.jobs_of_kind("never", 10).await.unwrap().is_empty());

    // A failing enqueue rolls the change back too (a payload that is not valid JSON cannot be built, so use a
    // bad queue name, which the table's CHECK refuses).
    let failed: Result<_, StoreError> = store
        .modify_session_and_enqueue(
            id,
            |s| {
                s.context = json!({"goal": "lost"});
                Ok(())
            },
            |_, _| vec![NewJob::new("", "bad", json!({}))],
        )
        .await;
    assert!(failed.is_err());
    assert_eq!(store.get_session(id).await.unwrap().unwrap().context, json!({"goal": "ship"}));

    // The plain modify_session still works and enqueues nothing.
    let plain = store.modify_session(id, |s| {
        s.name = Some("Ana".into());
        Ok::<_, StoreError>(())
    });
    assert_eq!(plain.await.unwrap().unwrap().name.as_deref(), Some("Ana"));
    assert_eq!(store.job_counts().await.unwrap(), vec![("memory".to_owned(), JobState::Pending, 1)]);
    // Unknown session: nothing happens, no job.
    let none = store
        .modify_session_and_enqueue(SessionId::new_random(), |_| Ok::<_, StoreError>(()), |_, _| vec![job("x")])
        .await
        .unwrap();
    assert!(none.is_none());
    assert!(store.jobs_of_kind("x", 10).await.unwrap().is_empty());
}

async fn claim_filters_by_queue(db: TestDb) {
    let store = db.store().await;
    let a = store.enqueue(&NewJob::new("email", "send", json!({}))).await.unwrap().unwrap();
    let b = store.enqueue(&NewJob::new("memory", "write", json!({}))).await.unwrap().unwrap();
    let got = store.claim(&["memory".to_owned()], "w", LEASE, 10).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![b]);
    let got = store.claim(&["email".to_owned(), "other".to_owned()], "w", LEASE, 10).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a]);
}

async fn claim_reclaims_expired_leases_first_then_due_jobs_oldest_first(db: TestDb) {
    let store = db.store().await;
    let now = OffsetDateTime::now_utc();
    let short = Duration::from_millis(100);
    let a = store.enqueue(&job("a")).await.unwrap().unwrap();
    assert_eq!(store.claim(&queues(), "dead-worker", short, 1).await.unwrap()[0].id, a);
    let z = store.enqueue(&job("z")).await.unwrap().unwrap();
    assert_eq!(store.claim(&queues(), "dead-worker", short, 1).await.unwrap()[0].id, z);
    // Pending jobs due before `a` was: the expired lease still comes first.
    let b = store.enqueue(&job("p").run_at(now - time::Duration::hours(1))).await.unwrap().unwrap();
    let c = store.enqueue(&job("p").run_at(now - time::Duration::hours(2))).await.unwrap().unwrap();
    let half = now - time::Duration::minutes(30);
    let d = store.enqueue(&job("p").run_at(half)).await.unwrap().unwrap();
    let e = store.enqueue(&job("p").run_at(half)).await.unwrap().unwrap();
    store.enqueue(&job("p").run_at(now + time::Duration::hours(1))).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let got = store.claim_kinds(&queues(), &["a", "p"], "w", LEASE, 2).await.unwrap();
    assert_eq!(got.iter().map(|j| (j.id, j.attempts)).collect::<Vec<_>>(), vec![(a, 2), (c, 1)]);
    let got = store.claim_kinds(&queues(), &["a", "p"], "w", LEASE, 10).await.unwrap();
    let mut same_time = [d, e];
    same_time.sort_by_key(|id| id.as_uuid());
    let expected = [vec![b], same_time.to_vec()].concat();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), expected, "run_at, then id; not the future job");
    // The kind filter applies to expired leases too; without it `z` is reclaimed.
    let got = store.claim(&queues(), "w2", LEASE, 10).await.unwrap();
    assert_eq!(
        got.iter().map(|j| (j.id, j.attempts, j.locked_by.as_deref())).collect::<Vec<_>>(),
        vec![(z, 2, Some("w2"))]
    );
}
