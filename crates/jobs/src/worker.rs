//! The worker loop: claim due jobs up to the concurrency, run each handler in a task of its own with a lease
//! heartbeat, record the outcome (done, retry after a backoff, dead), re-schedule recurring jobs, and on shutdown
//! stop claiming, wait, then release what is still running. It never logs payloads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mentorfy_core::JobId;
use mentorfy_store::{Job, Store};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{JobContext, JobError, Jobs, Recurring, Registry, WorkerSettings};

/// Starts job workers.
pub struct Workers;

impl Workers {
    /// Starts one worker instance (up to `settings.concurrency` jobs at once) on `store`, after ensuring the
    /// `recurring` jobs exist. Returns at once; the workers run until [`WorkersHandle::shutdown`].
    pub fn start(
        store: Store,
        registry: Registry,
        settings: WorkerSettings,
        recurring: Vec<Recurring>,
    ) -> WorkersHandle {
        Self::start_with(Jobs::new(store), registry, settings, recurring)
    }

    /// Like [`Workers::start`], woken by `jobs`' [`Jobs::notify`] (share the handle with the code that enqueues).
    pub fn start_with(
        jobs: Jobs,
        registry: Registry,
        settings: WorkerSettings,
        recurring: Vec<Recurring>,
    ) -> WorkersHandle {
        let instance = format!("{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let shared = Arc::new(Shared {
            store: jobs.store().clone(),
            registry,
            recurring: recurring.into_iter().map(|r| (r.unique_key(), r)).collect(),
            instance: instance.clone(),
            claims: AtomicU64::new(0),
            settings,
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(shared, jobs.waker(), stop.clone()));
        WorkersHandle { jobs, stop, task, instance }
    }
}

/// A running worker instance.
#[derive(Debug)]
pub struct WorkersHandle {
    jobs: Jobs,
    stop: CancellationToken,
    task: JoinHandle<()>,
    instance: String,
}

impl WorkersHandle {
    /// Enqueue through this to wake these workers at once.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// This instance's id (the prefix of its claim tokens in `jobs.locked_by`).
    pub fn id(&self) -> &str {
        &self.instance
    }

    /// Graceful stop: no new claims; running jobs get `shutdown_timeout` to finish, then are cancelled and
    /// released back to `pending` without counting the attempt. Returns when all is settled.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "job workers stopped abnormally");
        }
    }

    /// Stops everything at once, recording nothing, as if the process had been killed: claimed jobs stay
    /// `running` until their lease expires and another worker reclaims them. For tests of that path.
    pub fn abort(self) {
        self.task.abort();
    }
}

struct Shared {
    store: Store,
    registry: Registry,
    settings: WorkerSettings,
    /// By unique key (`recurring:<name>`).
    recurring: HashMap<String, Recurring>,
    instance: String,
    claims: AtomicU64,
}

/// Backoff before the retry that follows attempt `attempt` (1-based): uniformly random in
/// `[0, min(cap, base·2^(attempt-1))]` ("full jitter"), so retries of many jobs failing together spread out.
pub fn backoff(settings: &WorkerSettings, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    let ceiling = settings.backoff_base.saturating_mul(2u32.saturating_pow(exp)).min(settings.backoff_cap);
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=ceiling_ms))
}

async fn run(shared: Arc<Shared>, wake: Arc<Notify>, stop: CancellationToken) {
    let settings = &shared.settings;
    tracing::info!(
        worker = %shared.instance,
        concurrency = settings.concurrency,
        kinds = ?shared.registry.kinds(),
        "job workers started"
    );
    let mut recurring_ensured = false;
    let mut running: JoinSet<()> = JoinSet::new();
    let mut held: HashMap<tokio::task::Id, (JobId, String)> = HashMap::new();
    let give_up = CancellationToken::new();
    loop {
        if stop.is_cancelled() {
            break;
        }
        if !recurring_ensured {
            recurring_ensured = ensure_recurring(&shared).await;
        }
        let free = settings.concurrency.saturating_sub(running.len());
        // Only kinds this process can run: another server's newer job kinds wait for a server that knows them.
        let kinds = shared.registry.kinds();
        let free = if kinds.is_empty() { 0 } else { free };
        let mut more_due = false;
        if free > 0 {
            let token = format!("{}#{}", shared.instance, shared.claims.fetch_add(1, Ordering::Relaxed));
            match shared.store.claim_kinds(&settings.queues, &kinds, &token, settings.lease, free).await {
                Ok(jobs) => {
                    more_due = jobs.len() == free;
                    for job in jobs {
                        let id = job.id;
                        let task = running.spawn(run_one(shared.clone(), job, token.clone(), give_up.child_token()));
                        held.insert(task.id(), (id, token.clone()));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming jobs failed; will retry"),
            }
        }
        if more_due && running.len() < settings.concurrency {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = wake.notified() => {}
            () = tokio::time::sleep(settings.poll_interval) => {}
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let id = match done { Ok((id, ())) => id, Err(e) => e.id() };
                held.remove(&id);
            }
        }
    }

    // Graceful shutdown: no more claims; let running jobs finish within the timeout.
    if !running.is_empty() {
        tracing::info!(running = running.len(), "job workers stopping: waiting for running jobs");
    }
    let deadline = tokio::time::sleep(settings.shutdown_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            done = running.join_next_with_id() => match done {
                None => break,
                Some(Ok((id, ()))) => { held.remove(&id); }
                Some(Err(e)) => { held.remove(&e.id()); }
            },
            () = &mut deadline => break,
        }
    }
    if !running.is_empty() {
        give_up.cancel();
        running.abort_all();
        while running.join_next().await.is_some() {}
        // A job that finished meanwhile is no longer `running` under our token, so its release changes nothing.
        for (job_id, token) in held.values() {
            match shared.store.release(*job_id, token).await {
                Ok(true) => tracing::info!(job_id = %job_id, "job released back to pending at shutdown"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(job_id = %job_id, error = %e, "could not release a job; its lease will expire")
                }
            }
        }
    }
    tracing::info!(worker = %shared.instance, "job workers stopped");
}

/// Makes sure each recurring job has a pending or running run. `false` if the database refused (retried later).
async fn ensure_recurring(shared: &Shared) -> bool {
    let mut ok = true;
    for r in shared.recurring.values() {
        match shared.store.enqueue_if_idle(&r.job_at(mentorfy_store::now())).await {
            Ok(Some(id)) => tracing::debug!(job_id = %id, name = %r.name, "recurring job scheduled"),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(name = %r.name, error = %e, "could not schedule a recurring job; will retry");
                ok = false;
            }
        }
    }
    ok
}

/// Aborts the task when dropped, so a handler never outlives the worker slot that runs it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_one(shared: Arc<Shared>, job: Job, token: String, cancelled: CancellationToken) {
    let span = tracing::info_span!("job", job_id = %job.id, kind = %job.kind, attempt = job.attempts);
    run_one_inner(shared, job, token, cancelled).instrument(span).await;
}

async fn run_one_inner(shared: Arc<Shared>, job: Job, token: String, cancelled: CancellationToken) {
    let settings = &shared.settings;
    let store = &shared.store;
    let max_attempts = job.max_attempts.unwrap_or(settings.max_attempts).max(1);
    let Some(handler) = shared.registry.get(&job.kind) else {
        let error = format!("no handler is registered for job kind '{}'", job.kind);
        finish_failed(&shared, &job, &token, &JobError::permanent(error), max_attempts).await;
        return;
    };
    if job.attempts > max_attempts {
        // Reclaimed after the worker of its last attempt stopped without recording anything.
        let error = JobError::permanent(format!(
            "gave up after {max_attempts} attempts: the worker running the last one stopped (lease expired){}",
            job.last_error.as_deref().map(|e| format!("; earlier error: {e}")).unwrap_or_default()
        ));
        finish_failed(&shared, &job, &token, &error, max_attempts).await;
        return;
    }
    tracing::debug!("job started");
    let started = Instant::now();
    let ctx = JobContext { job: job.clone(), cancelled: cancelled.clone() };
    let mut handler_task = AbortOnDrop(tokio::spawn(handler.run(ctx)));
    let beat_every = (settings.lease / 3).max(Duration::from_millis(10));
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + beat_every, beat_every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            joined = &mut handler_task.0 => break match joined {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err(JobError::retryable("the handler panicked")),
                Err(_) => Err(JobError::retryable("the handler was cancelled")),
            },
            _ = beat.tick() => match store.renew_lease(job.id, &token, settings.lease).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("job lease lost (another worker reclaimed it); stopping this run");
                    cancelled.cancel();
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "could not renew the job lease; will retry"),
            },
            () = cancelled.cancelled() => return,
        }
    };
    let elapsed_ms = started.elapsed().as_millis();
    match result {
        Ok(()) => {
            let recurring = recurring_of(&shared, &job);
            let done = match recurring {
                Some(r) => {
                    let next = mentorfy_store::now() + time::Duration::try_from(r.every).unwrap_or(time::Duration::DAY);
                    store.complete_and_enqueue(job.id, &token, &r.job_at(next)).await
                }
                None => store.complete(job.id, &token).await,
            };
            match done {
                Ok(true) => tracing::debug!(elapsed_ms, "job done"),
                Ok(false) => tracing::warn!(elapsed_ms, "job finished after its lease was taken over; not recorded"),
                Err(e) => tracing::error!(error = %e, "job finished but could not be marked done; it will run again"),
            }
        }
        Err(e) => finish_failed(&shared, &job, &token, &e, max_attempts).await,
    }
}

fn recurring_of<'a>(shared: &'a Shared, job: &Job) -> Option<&'a Recurring> {
    let r = shared.recurring.get(job.unique_key.as_deref()?)?;
    (r.kind == job.kind).then_some(r)
}

/// Records a failed attempt: retried after a backoff (or the handler's hint), or `dead` when the error is
/// permanent or this was the last attempt. A dead recurring job still gets its next run.
async fn finish_failed(shared: &Shared, job: &Job, token: &str, error: &JobError, max_attempts: u32) {
    let dead = error.is_permanent() || job.attempts >= max_attempts;
    let delay = error.retry_after_hint().unwrap_or_else(|| backoff(&shared.settings, job.attempts));
    let next = (!dead).then(|| mentorfy_store::now() + time::Duration::try_from(delay).unwrap_or(time::Duration::DAY));
    match shared.store.fail(job.id, token, error.message(), next).await {
        Ok(true) if dead => {
            tracing::error!(error = %error, max_attempts, permanent = error.is_permanent(), "job is dead");
            if let Some(r) = recurring_of(shared, job) {
                let at = mentorfy_store::now() + time::Duration::try_from(r.every).unwrap_or(time::Duration::DAY);
                if let Err(e) = shared.store.enqueue(&r.job_at(at)).await {
                    tracing::warn!(error = %e, "could not schedule the next run of a recurring job");
                }
            }
        }
        Ok(true) => {
            tracing::warn!(error = %error, retry_in_ms = delay.as_millis(), max_attempts, "job failed; will retry");
        }
        Ok(false) => tracing::warn!(error = %error, "job failed after its lease was taken over; not recorded"),
        Err(e) => tracing::error!(error = %e, job_error = %error, "could not record a job failure; it will run again"),
    }
}
