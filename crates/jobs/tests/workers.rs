#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns
//! The worker runtime on both backends: a killed worker's job is retried by another, two instances never run
//! the same job, failing handlers end `dead` with their error, graceful shutdown finishes or releases, and
//! recurring jobs keep one chain.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mentorfy_core::JobId;
use mentorfy_jobs::{JobError, Jobs, Recurring, Registry, WorkerSettings, Workers};
use mentorfy_store::{JobState, NewJob, Store};
use mentorfy_test_support::{TestDb, both_backends};
use serde_json::json;
use tokio::sync::Notify;

both_backends!(
    job_of_a_killed_worker_is_retried_by_another_worker,
    two_worker_instances_never_run_the_same_job,
    failing_handler_ends_dead_with_its_error_visible,
    permanent_errors_are_dead_at_once_and_unknown_kinds_wait,
    graceful_shutdown_finishes_quick_jobs_and_releases_slow_ones,
    recurring_job_runs_repeatedly_as_one_chain,
    enqueue_through_the_handle_wakes_idle_workers,
);

fn fast(concurrency: usize) -> WorkerSettings {
    WorkerSettings {
        concurrency,
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_secs(30),
        backoff_base: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(40),
        shutdown_timeout: Duration::from_secs(5),
        ..WorkerSettings::default()
    }
}

/// Polls `check` until it holds (bounded: a guard against hanging, not a timing assertion).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn state(store: &Store, id: JobId) -> JobState {
    store.get_job(id).await.unwrap().expect("job exists").state
}

async fn job_of_a_killed_worker_is_retried_by_another_worker(db: TestDb) {
    let store = db.store().await;
    let id = store.enqueue(&NewJob::new("q", "work", json!({}))).await.unwrap().unwrap();

    // Worker A starts the job and hangs in it; then the whole worker is killed (nothing recorded).
    let started = Arc::new(Notify::new());
    let mut hangs = Registry::new();
    let s = started.clone();
    hangs.register_fn("work", move |_| {
        let s = s.clone();
        async move {
            s.notify_one();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
    });
    let short_lease = WorkerSettings { lease: Duration::from_millis(300), ..fast(1) };
    let a = Workers::start(db.store().await, hangs, short_lease.clone(), Vec::new());
    tokio::time::timeout(Duration::from_secs(10), started.notified()).await.expect("A started the job");
    a.abort();
    assert_eq!(state(&store, id).await, JobState::Running, "a killed worker records nothing");

    // Worker B reclaims it once the lease expires and completes it.
    let runs = Arc::new(AtomicU32::new(0));
    let mut ok = Registry::new();
    let r = runs.clone();
    ok.register_fn("work", move |ctx| {
        let r = r.clone();
        async move {
            assert_eq!(ctx.job.attempts, 2, "the reclaimed run is the second attempt");
            r.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let b = Workers::start(db.store().await, ok, short_lease, Vec::new());
    eventually("B completes the job", || async { state(&store, id).await == JobState::Done }).await;
    b.shutdown().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let job = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2);
    assert!(job.locked_by.unwrap().starts_with(&format!("{}-", std::process::id())));
}

async fn two_worker_instances_never_run_the_same_job(db: TestDb) {
    let store = db.store().await;
    const N: usize = 200;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(store.enqueue(&NewJob::new("q", "count", json!({"i": i}))).await.unwrap().unwrap());
    }
    let counts: Arc<Mutex<HashMap<JobId, u32>>> = Arc::default();
    let registry = |counts: Arc<Mutex<HashMap<JobId, u32>>>| {
        let mut r = Registry::new();
        r.register_fn("count", move |ctx| {
            let counts = counts.clone();
            async move {
                *counts.lock().unwrap().entry(ctx.job.id).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok(())
            }
        });
        r
    };
    let a = Workers::start(db.store().await, registry(counts.clone()), fast(4), Vec::new());
    let b = Workers::start(db.store().await, registry(counts.clone()), fast(4), Vec::new());
    eventually("all jobs done", || async {
        store.job_counts().await.unwrap() == vec![("q".to_owned(), JobState::Done, N as u64)]
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
    let counts = counts.lock().unwrap();
    assert_eq!(counts.len(), N);
    for id in &ids {
        assert_eq!(counts.get(id), Some(&1), "job {id} ran {:?} times", counts.get(id));
    }
}

async fn failing_handler_ends_dead_with_its_error_visible(db: TestDb) {
    let store = db.store().await;
    let id = store.enqueue(&NewJob::new("q", "flaky", json!({})).max_attempts(3)).await.unwrap().unwrap();
    let mut r = Registry::new();
    r.register_fn(
        "flaky",
        |ctx| async move { Err(JobError::retryable(format!("boom on attempt {}", ctx.job.attempts))) },
    );
    let w = Workers::start(db.store().await, r, fast(2), Vec::new());
    eventually("the job is dead", || async { state(&store, id).await == JobState::Dead }).await;
    w.shutdown().await;
    let dead = store.dead_jobs(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts), (id, 3));
    assert_eq!(dead[0].last_error.as_deref(), Some("boom on attempt 3"));
}

async fn permanent_errors_are_dead_at_once_and_unknown_kinds_wait(db: TestDb) {
    let store = db.store().await;
    let bad = store.enqueue(&NewJob::new("q", "strict", json!({"x": 1}))).await.unwrap().unwrap();
    let unknown = store.enqueue(&NewJob::new("q", "nobody.handles.this", json!({}))).await.unwrap().unwrap();
    let mut r = Registry::new();
    r.register_fn("strict", |_| async { Err(JobError::permanent("payload has no 'y'")) });
    let w = Workers::start(db.store().await, r, fast(2), Vec::new());
    eventually("strict dead", || async { state(&store, bad).await == JobState::Dead }).await;
    // A few more claim rounds: the unknown kind is never claimed (a server that knows it will run it).
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.shutdown().await;
    let bad = store.get_job(bad).await.unwrap().unwrap();
    assert_eq!((bad.attempts, bad.last_error.as_deref()), (1, Some("payload has no 'y'")));
    let unknown = store.get_job(unknown).await.unwrap().unwrap();
    assert_eq!((unknown.state, unknown.attempts), (JobState::Pending, 0));
    // A worker that registers the kind runs it.
    let mut r = Registry::new();
    r.register_fn("nobody.handles.this", |_| async { Ok(()) });
    let w = Workers::start(db.store().await, r, fast(2), Vec::new());
    eventually("unknown kind done", || async { state(&store, unknown.id).await == JobState::Done }).await;
    w.shutdown().await;
}

async fn graceful_shutdown_finishes_quick_jobs_and_releases_slow_ones(db: TestDb) {
    let store = db.store().await;
    let quick = store.enqueue(&NewJob::new("q", "quick", json!({}))).await.unwrap().unwrap();
    let slow = store.enqueue(&NewJob::new("q", "slow", json!({}))).await.unwrap().unwrap();
    let started = Arc::new(AtomicU32::new(0));
    let mut r = Registry::new();
    let s = started.clone();
    r.register_fn("quick", move |_| {
        let s = s.clone();
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        }
    });
    let s = started.clone();
    r.register_fn("slow", move |_| {
        let s = s.clone();
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
    });
    let settings = WorkerSettings { shutdown_timeout: Duration::from_millis(800), ..fast(2) };
    let w = Workers::start(db.store().await, r, settings, Vec::new());
    eventually("both started", || async { started.load(Ordering::SeqCst) == 2 }).await;
    w.shutdown().await;
    assert_eq!(state(&store, quick).await, JobState::Done, "finished within the shutdown timeout");
    let slow = store.get_job(slow).await.unwrap().unwrap();
    assert_eq!(
        (slow.state, slow.attempts, slow.locked_by),
        (JobState::Pending, 0, None),
        "released, attempt given back"
    );
}

async fn recurring_job_runs_repeatedly_as_one_chain(db: TestDb) {
    let store = db.store().await;
    let runs = Arc::new(AtomicU32::new(0));
    let registry = |runs: Arc<AtomicU32>| {
        let mut r = Registry::new();
        r.register_fn("tick", move |_| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
        r
    };
    let every = Recurring {
        name: "ticker".into(),
        kind: "tick".into(),
        queue: "maintenance".into(),
        every: Duration::from_millis(100),
        payload: json!({}),
    };
    // Two processes' worth of workers ensure the same recurring job: one chain between them.
    let a = Workers::start(db.store().await, registry(runs.clone()), fast(2), vec![every.clone()]);
    let b = Workers::start(db.store().await, registry(runs.clone()), fast(2), vec![every.clone()]);
    eventually("ran at least 4 times", || async { runs.load(Ordering::SeqCst) >= 4 }).await;
    a.shutdown().await;
    b.shutdown().await;
    let jobs = store.jobs_of_kind("tick", 1000).await.unwrap();
    let active = jobs.iter().filter(|j| matches!(j.state, JobState::Pending | JobState::Running)).count();
    assert_eq!(active, 1, "exactly one next run is scheduled: {jobs:?}");
    let done = jobs.iter().filter(|j| j.state == JobState::Done).count();
    assert_eq!(done as u32, runs.load(Ordering::SeqCst));
    assert!(jobs.iter().all(|j| j.unique_key.as_deref() == Some("recurring:ticker") && j.queue == "maintenance"));
    // Runs are spaced by `every`: each run_at is at least 100ms after the previous one.
    for pair in jobs.windows(2) {
        assert!(pair[1].run_at - pair[0].run_at >= time::Duration::milliseconds(95), "{pair:?}");
    }
}

async fn enqueue_through_the_handle_wakes_idle_workers(db: TestDb) {
    let store = db.store().await;
    let done = Arc::new(Notify::new());
    let mut r = Registry::new();
    let d = done.clone();
    r.register_fn("ping", move |_| {
        let d = d.clone();
        async move {
            d.notify_one();
            Ok(())
        }
    });
    // Polling is slow here: only the wake-up can make the job run quickly.
    let settings = WorkerSettings { poll_interval: Duration::from_secs(3600), ..fast(1) };
    let jobs = Jobs::new(store.clone());
    let w = Workers::start_with(jobs.clone(), r, settings, Vec::new());
    tokio::time::sleep(Duration::from_millis(100)).await; // let the first (empty) claim happen
    let id = jobs.enqueue(&NewJob::new("q", "ping", json!({}))).await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(10), done.notified()).await.expect("woken without polling");
    eventually("done", || async { state(&store, id).await == JobState::Done }).await;
    w.shutdown().await;
}
