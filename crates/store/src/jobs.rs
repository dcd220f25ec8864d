//! Job rows (issue 4): enqueue (also inside another write's transaction), claim, renew, complete, fail, release.
//! The runtime that runs handlers lives in `mentorfy-jobs`; nothing here knows handlers, backoff or time budgets.
//!
//! States: `pending → running → done | dead`, and `running → pending` on a retry or a release. Every transition a
//! worker makes names its claim token (`locked_by`), so a worker whose lease was taken over cannot finish someone
//! else's claim. Claims take due pending jobs and running jobs whose lease expired (their worker died).

use mentorfy_core::JobId;
use sea_query::{Expr, ExprTrait, Iden, LockBehavior, LockType, OnConflict, Order, Query, SelectStatement};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{Store, Tx};
use crate::dialect::{now, ts};
use crate::error::StoreError;

#[derive(Iden, Clone, Copy)]
enum Jobs {
    Table,
    Id,
    Queue,
    Kind,
    Payload,
    State,
    Attempts,
    MaxAttempts,
    RunAt,
    UniqueKey,
    LockedBy,
    LeaseExpiresAt,
    LastError,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

const COLUMNS: [Jobs; 15] = [
    Jobs::Id,
    Jobs::Queue,
    Jobs::Kind,
    Jobs::Payload,
    Jobs::State,
    Jobs::Attempts,
    Jobs::MaxAttempts,
    Jobs::RunAt,
    Jobs::UniqueKey,
    Jobs::LockedBy,
    Jobs::LeaseExpiresAt,
    Jobs::LastError,
    Jobs::CreatedAt,
    Jobs::UpdatedAt,
    Jobs::FinishedAt,
];

fn columns() -> &'static [Jobs] {
    &COLUMNS
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    /// Waiting for `run_at` and a free worker.
    Pending,
    /// Claimed by a worker holding a lease.
    Running,
    /// Finished successfully (kept as history).
    Done,
    /// Gave up: a permanent error, or the last attempt failed. `last_error` says why.
    Dead,
}

impl JobState {
    pub const ALL: [JobState; 4] = [JobState::Pending, JobState::Running, JobState::Done, JobState::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to enqueue. Built with [`NewJob::new`] and the optional setters.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    pub queue: String,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Debounce key: while a pending job holds it, enqueueing another with the same key is a no-op.
    pub unique_key: Option<String>,
    /// Not claimed before this time; `None` means now.
    pub run_at: Option<OffsetDateTime>,
    /// `None`: the workers' default.
    pub max_attempts: Option<u32>,
}

impl NewJob {
    pub fn new(queue: impl Into<String>, kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self { queue: queue.into(), kind: kind.into(), payload, unique_key: None, run_at: None, max_attempts: None }
    }

    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    pub fn run_at(mut self, at: OffsetDateTime) -> Self {
        self.run_at = Some(at);
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(Ord::max(n, 1));
        self
    }
}

/// A stored job.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub queue: String,
    pub kind: String,
    /// May hold user data: never log it above debug level.
    pub payload: serde_json::Value,
    pub state: JobState,
    /// Times a worker started it, this run included when `Running`.
    pub attempts: u32,
    /// `None`: the workers' default.
    pub max_attempts: Option<u32>,
    pub run_at: OffsetDateTime,
    pub unique_key: Option<String>,
    /// The claim token of the worker that holds (or last held) it.
    pub locked_by: Option<String>,
    pub lease_expires_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    queue: String,
    kind: String,
    payload: Json<serde_json::Value>,
    state: String,
    attempts: i64,
    max_attempts: Option<i64>,
    run_at: OffsetDateTime,
    unique_key: Option<String>,
    locked_by: Option<String>,
    lease_expires_at: Option<OffsetDateTime>,
    last_error: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    finished_at: Option<OffsetDateTime>,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        Ok(Job {
            id: JobId::from_uuid(r.id),
            queue: r.queue,
            kind: r.kind,
            payload: r.payload.0,
            state: JobState::parse(&r.state)
                .ok_or_else(|| StoreError::Other(format!("unknown job state '{}'", r.state)))?,
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            max_attempts: r.max_attempts.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            run_at: r.run_at,
            unique_key: r.unique_key,
            locked_by: r.locked_by,
            lease_expires_at: r.lease_expires_at,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        })
    }
}

fn select_jobs() -> SelectStatement {
    Query::select().columns(columns().iter().copied()).from(Jobs::Table).to_owned()
}

/// `lease` as a `time::Duration`, saturating.
fn lease_span(lease: std::time::Duration) -> time::Duration {
    time::Duration::try_from(lease).unwrap_or(time::Duration::MAX)
}

impl Store {
    /// Enqueues a job. `None` when debounced: a pending job with the same `unique_key` exists, and nothing was
    /// inserted. Wakes no worker by itself; the caller pings its in-process waker if it has one.
    pub async fn enqueue(&self, job: &NewJob) -> Result<Option<JobId>, StoreError> {
        let insert = self.insert_job(job)?;
        Ok(self.write_returning::<(Uuid,)>(&insert).await?.map(|(id,)| JobId::from_uuid(id)))
    }

    /// Enqueues inside `tx`, so the job commits (or rolls back) with the write that causes it.
    /// `None` when debounced, as for [`Store::enqueue`].
    pub(crate) async fn enqueue_in(&self, tx: &mut Tx, job: &NewJob) -> Result<Option<JobId>, StoreError> {
        let insert = self.insert_job(job)?;
        Ok(tx.fetch_optional::<(Uuid,)>(&insert).await?.map(|(id,)| JobId::from_uuid(id)))
    }

    /// Enqueues only when no job with this `unique_key` is pending *or running* (for recurring jobs: a process
    /// starting while another runs the job must not add a second chain). `None` when one exists. A job without
    /// a key is always enqueued.
    pub async fn enqueue_if_idle(&self, job: &NewJob) -> Result<Option<JobId>, StoreError> {
        let Some(key) = job.unique_key.as_deref() else { return self.enqueue(job).await };
        let mut tx = self.begin_for_update().await?;
        let active = Query::select()
            .column(Jobs::Id)
            .from(Jobs::Table)
            .and_where(Expr::col(Jobs::UniqueKey).eq(key))
            .and_where(Expr::col(Jobs::State).is_in([JobState::Pending.as_str(), JobState::Running.as_str()]))
            .limit(1)
            .to_owned();
        if tx.fetch_optional::<(Uuid,)>(&active).await?.is_some() {
            return Ok(None);
        }
        let id = self.enqueue_in(&mut tx, job).await?;
        tx.commit().await?;
        Ok(id)
    }

    fn insert_job(&self, job: &NewJob) -> Result<sea_query::InsertStatement, StoreError> {
        self.insert_jobs(std::slice::from_ref(job))
    }

    /// One multi-row insert of `jobs` (at least one).
    fn insert_jobs(&self, jobs: &[NewJob]) -> Result<sea_query::InsertStatement, StoreError> {
        let kind = self.kind();
        let t = now();
        let mut insert = Query::insert();
        insert.into_table(Jobs::Table).columns([
            Jobs::Id,
            Jobs::Queue,
            Jobs::Kind,
            Jobs::Payload,
            Jobs::State,
            Jobs::Attempts,
            Jobs::MaxAttempts,
            Jobs::RunAt,
            Jobs::UniqueKey,
            Jobs::CreatedAt,
            Jobs::UpdatedAt,
        ]);
        for job in jobs {
            insert
                .values([
                    Expr::val(JobId::new_v7().as_uuid()),
                    Expr::val(job.queue.as_str()),
                    Expr::val(job.kind.as_str()),
                    Expr::val(job.payload.clone()),
                    Expr::val(JobState::Pending.as_str()),
                    Expr::val(0i64),
                    Expr::val(job.max_attempts.map(i64::from)),
                    ts(kind, job.run_at.unwrap_or(t)),
                    Expr::val(job.unique_key.clone()),
                    ts(kind, t),
                    ts(kind, t),
                ])
                .map_err(|e| StoreError::Other(e.to_string()))?;
        }
        // The only unique index a fresh v7 id can meet is the pending unique-key one: that is the debounce.
        Ok(insert.on_conflict(OnConflict::new().do_nothing().to_owned()).returning_col(Jobs::Id).to_owned())
    }

    /// Enqueues `jobs` inside `tx` in multi-row inserts (debounced ones are skipped, as for [`Store::enqueue`]).
    /// Returns how many were inserted.
    pub(crate) async fn enqueue_many_in(&self, tx: &mut Tx, jobs: &[NewJob]) -> Result<usize, StoreError> {
        let mut inserted = 0;
        for chunk in jobs.chunks(crate::ingest::rows_per_statement(self.kind())) {
            inserted += tx.fetch_all::<(Uuid,)>(&self.insert_jobs(chunk)?).await?.len();
        }
        Ok(inserted)
    }

    /// Claims up to `limit` jobs of `queues` (all queues when empty) for `worker`: due pending jobs, and running
    /// jobs whose lease expired. Each becomes `running`, locked by `worker` until `now + lease`, with one more
    /// attempt counted. PostgreSQL: `FOR UPDATE SKIP LOCKED`, so any number of processes claim concurrently and
    /// never get the same job. SQLite: one transaction on the single writer connection (`BEGIN IMMEDIATE`).
    pub async fn claim(
        &self,
        queues: &[String],
        worker: &str,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        self.claim_kinds(queues, &[], worker, lease, limit).await
    }

    /// [`Store::claim`] restricted to jobs of `kinds` (all kinds when empty). Workers pass the kinds they have
    /// handlers for, so during a rolling deploy an older server leaves a newer server's job kinds alone instead
    /// of killing them.
    pub async fn claim_kinds(
        &self,
        queues: &[String],
        kinds: &[&str],
        worker: &str,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let kind = self.kind();
        let t = now();
        let expires = t.saturating_add(lease_span(lease));
        let mut tx = self.begin_for_update().await?;
        let mut claimed = Vec::with_capacity(limit);
        // Two picks, each an index walk that stops at its first match (one query with `pending … OR running …`
        // defeats the indexes and sorts every due job, once per job claimed). Expired leases first: their jobs
        // were claimed when they were the oldest due, so they come before what is pending now, and they never
        // wait behind a backlog. That pick reads only the (few) running rows and usually finds none; the pending
        // pick walks `idx_jobs_pending_due` (migration 000011) in (run_at, id) order.
        let expired_lease =
            Expr::col(Jobs::State).eq(JobState::Running.as_str()).and(Expr::col(Jobs::LeaseExpiresAt).lt(ts(kind, t)));
        // `'pending'` is a literal, not a bound value: a prepared statement's generic plan on PostgreSQL can only
        // use the partial index when the predicate is visible in the statement itself.
        let due_pending =
            Expr::col(Jobs::State).eq(Expr::cust("'pending'")).and(Expr::col(Jobs::RunAt).lte(ts(kind, t)));
        for which in [expired_lease, due_pending] {
            while claimed.len() < limit {
                let mut pick = Query::select()
                    .column(Jobs::Id)
                    .from(Jobs::Table)
                    .cond_where(which.clone())
                    .order_by(Jobs::RunAt, Order::Asc)
                    .order_by(Jobs::Id, Order::Asc)
                    .limit(1)
                    .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                    .to_owned();
                if !queues.is_empty() {
                    pick.and_where(Expr::col(Jobs::Queue).is_in(queues.iter().map(String::as_str)));
                }
                if !kinds.is_empty() {
                    pick.and_where(Expr::col(Jobs::Kind).is_in(kinds.iter().copied()));
                }
                let update = Query::update()
                    .table(Jobs::Table)
                    .value(Jobs::State, JobState::Running.as_str())
                    .value(Jobs::LockedBy, worker)
                    .value(Jobs::LeaseExpiresAt, ts(kind, expires))
                    .value(Jobs::Attempts, Expr::col(Jobs::Attempts).add(1))
                    .value(Jobs::UpdatedAt, ts(kind, t))
                    .and_where(Expr::col(Jobs::Id).in_subquery(pick))
                    .returning(Query::returning().columns(columns().iter().copied()))
                    .to_owned();
                match tx.fetch_optional::<JobRow>(&update).await? {
                    Some(row) => claimed.push(Job::try_from(row)?),
                    None => break,
                }
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Extends the lease of a job `worker` still holds. `false` when it no longer holds it (the lease expired
    /// and another worker reclaimed it, or it finished): the caller should stop working on it.
    pub async fn renew_lease(&self, id: JobId, worker: &str, lease: std::time::Duration) -> Result<bool, StoreError> {
        let kind = self.kind();
        let t = now();
        let update = held_by(id, worker)
            .value(Jobs::LeaseExpiresAt, ts(kind, t.saturating_add(lease_span(lease))))
            .value(Jobs::UpdatedAt, ts(kind, t))
            .to_owned();
        Ok(self.execute(&update).await? == 1)
    }

    /// Marks a job `worker` holds as `done`. `false` when it no longer holds it (nothing changed).
    pub async fn complete(&self, id: JobId, worker: &str) -> Result<bool, StoreError> {
        let update = self.done_update(id, worker);
        Ok(self.execute(&update).await? == 1)
    }

    /// Like [`Store::complete`], and enqueues `next` in the same transaction when the completion took effect
    /// (recurring jobs schedule their next run this way; `next` is debounced like any enqueue).
    pub async fn complete_and_enqueue(&self, id: JobId, worker: &str, next: &NewJob) -> Result<bool, StoreError> {
        let mut tx = self.begin_for_update().await?;
        let done = tx.execute(&self.done_update(id, worker)).await? == 1;
        if done {
            self.enqueue_in(&mut tx, next).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    fn done_update(&self, id: JobId, worker: &str) -> sea_query::UpdateStatement {
        let kind = self.kind();
        let t = now();
        held_by(id, worker)
            .value(Jobs::State, JobState::Done.as_str())
            .value(Jobs::LeaseExpiresAt, Expr::null())
            .value(Jobs::UpdatedAt, ts(kind, t))
            .value(Jobs::FinishedAt, ts(kind, t))
            .to_owned()
    }

    /// Records a failed attempt of a job `worker` holds, keeping `error`. With `next_run_at` it goes back to
    /// `pending` to be retried then; with `None` it is `dead`. `false` when `worker` no longer holds it.
    /// A retry that meets another pending job with the same unique key loses its key (both run; handlers are
    /// idempotent) rather than failing.
    pub async fn fail(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        next_run_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let kind = self.kind();
        let t = now();
        let mut update = held_by(id, worker);
        update.value(Jobs::LastError, error).value(Jobs::UpdatedAt, ts(kind, t));
        match next_run_at {
            Some(at) => {
                update
                    .value(Jobs::State, JobState::Pending.as_str())
                    .value(Jobs::RunAt, ts(kind, at))
                    .value(Jobs::LockedBy, Expr::null())
                    .value(Jobs::LeaseExpiresAt, Expr::null());
                self.back_to_pending(update).await
            }
            None => {
                update
                    .value(Jobs::State, JobState::Dead.as_str())
                    .value(Jobs::LeaseExpiresAt, Expr::null())
                    .value(Jobs::FinishedAt, ts(kind, t));
                Ok(self.execute(&update).await? == 1)
            }
        }
    }

    /// Gives a job `worker` holds back to `pending`, due now, without counting the attempt (a running job has at
    /// least one), after a graceful shutdown of a worker that could not finish it. `false` when `worker` no longer holds it.
    pub async fn release(&self, id: JobId, worker: &str) -> Result<bool, StoreError> {
        let kind = self.kind();
        let t = now();
        let update = held_by(id, worker)
            .value(Jobs::State, JobState::Pending.as_str())
            .value(Jobs::Attempts, Expr::col(Jobs::Attempts).sub(1))
            .value(Jobs::RunAt, ts(kind, t))
            .value(Jobs::LockedBy, Expr::null())
            .value(Jobs::LeaseExpiresAt, Expr::null())
            .value(Jobs::UpdatedAt, ts(kind, t))
            .to_owned();
        self.back_to_pending(update).await
    }

    /// Runs an update that makes a job pending again; if another pending job holds its unique key meanwhile,
    /// runs it once more without the key.
    async fn back_to_pending(&self, update: sea_query::UpdateStatement) -> Result<bool, StoreError> {
        match self.execute(&update).await {
            Ok(n) => Ok(n == 1),
            Err(StoreError::Conflict(_)) => {
                let without_key = update.clone().value(Jobs::UniqueKey, Expr::null()).to_owned();
                Ok(self.execute(&without_key).await? == 1)
            }
            Err(e) => Err(e),
        }
    }

    /// How many jobs each queue has in each state, ordered by queue then state.
    pub async fn job_counts(&self) -> Result<Vec<(String, JobState, u64)>, StoreError> {
        let stmt = Query::select()
            .column(Jobs::Queue)
            .column(Jobs::State)
            .expr(Expr::col(Jobs::Id).count())
            .from(Jobs::Table)
            .group_by_col(Jobs::Queue)
            .group_by_col(Jobs::State)
            .order_by(Jobs::Queue, Order::Asc)
            .order_by(Jobs::State, Order::Asc)
            .to_owned();
        let rows = self.fetch_all::<(String, String, i64)>(&stmt).await?;
        rows.into_iter()
            .map(|(queue, state, n)| {
                let state =
                    JobState::parse(&state).ok_or_else(|| StoreError::Other(format!("unknown job state '{state}'")))?;
                Ok((queue, state, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    /// The most recently failed `dead` jobs, newest first, with their errors.
    pub async fn dead_jobs(&self, limit: u64) -> Result<Vec<Job>, StoreError> {
        let stmt = select_jobs()
            .and_where(Expr::col(Jobs::State).eq(JobState::Dead.as_str()))
            .order_by(Jobs::FinishedAt, Order::Desc)
            .order_by(Jobs::Id, Order::Desc)
            .limit(limit)
            .to_owned();
        self.fetch_all::<JobRow>(&stmt).await?.into_iter().map(Job::try_from).collect()
    }

    pub async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let stmt = select_jobs().and_where(Expr::col(Jobs::Id).eq(id.as_uuid())).to_owned();
        self.fetch_optional::<JobRow>(&stmt).await?.map(Job::try_from).transpose()
    }

    /// Jobs of one kind, oldest first (tests and operators).
    pub async fn jobs_of_kind(&self, kind: &str, limit: u64) -> Result<Vec<Job>, StoreError> {
        let stmt = select_jobs()
            .and_where(Expr::col(Jobs::Kind).eq(kind))
            .order_by(Jobs::CreatedAt, Order::Asc)
            .order_by(Jobs::Id, Order::Asc)
            .limit(limit)
            .to_owned();
        self.fetch_all::<JobRow>(&stmt).await?.into_iter().map(Job::try_from).collect()
    }
}

/// An update of job `id` that applies only while `worker` holds it as `running`.
fn held_by(id: JobId, worker: &str) -> sea_query::UpdateStatement {
    Query::update()
        .table(Jobs::Table)
        .and_where(Expr::col(Jobs::Id).eq(id.as_uuid()))
        .and_where(Expr::col(Jobs::State).eq(JobState::Running.as_str()))
        .and_where(Expr::col(Jobs::LockedBy).eq(worker))
        .to_owned()
}
