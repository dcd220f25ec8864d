//! The durable job queue runtime (issue 4): handlers, the registry, workers (claim, heartbeat, retry with backoff,
//! graceful shutdown) and recurring jobs. Rows and every query live in `mentorfy-store`; this crate holds no SQL
//! and knows nothing of HTTP or of what any job does.
//!
//! **Handlers must be idempotent.** A job runs at least once, not exactly once: a worker that dies (or loses its
//! lease) after a handler's side effects but before recording completion leaves the job to be run again, and a
//! retried job whose unique key was taken meanwhile runs next to the newer one. Write handlers so that running one
//! twice has the effect of running it once (upserts, "set" rather than "add", external calls with idempotency
//! keys derived from the job id).

mod worker;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mentorfy_core::{Config, JobId};
use mentorfy_store::{Job, NewJob, Store, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use worker::{Workers, WorkersHandle, backoff};

/// What a handler returns: a boxed, sendable future, so [`Handler`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The crate's one error type: why a job attempt failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    message: String,
    permanent: bool,
    retry_after: Option<Duration>,
}

impl JobError {
    /// A failure that may pass on a later attempt (a timeout, a 503, the database busy).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { message: message.into(), permanent: false, retry_after: None }
    }

    /// A failure no retry will fix (a malformed payload, a missing row): the job is `dead` at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), permanent: true, retry_after: None }
    }

    /// Asks for the next attempt no sooner than `after` (e.g. a provider's `retry-after`) instead of the backoff.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    pub fn retry_after_hint(&self) -> Option<Duration> {
        self.retry_after
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<StoreError> for JobError {
    /// Database trouble is worth retrying: it is usually transient, and a real bug ends `dead` after the last
    /// attempt with its message kept.
    fn from(e: StoreError) -> Self {
        JobError::retryable(e.to_string())
    }
}

/// What a handler receives: the claimed job (its payload, and `attempts` counting this one) and a token that
/// is cancelled when the worker gives the job up (its lease was taken over, or shutdown ran out of time).
#[derive(Clone, Debug)]
pub struct JobContext {
    pub job: Job,
    pub cancelled: CancellationToken,
}

/// Runs jobs of one kind. Must be idempotent (see the crate documentation).
pub trait Handler: Send + Sync + 'static {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<(), JobError>>;
}

/// A closure as a [`Handler`].
struct FnHandler<F>(F);

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<(), JobError>> {
        Box::pin((self.0)(ctx))
    }
}

/// Job kinds and their handlers. Cheap to clone.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<_> = self.handlers.keys().collect();
        kinds.sort();
        f.debug_struct("Registry").field("kinds", &kinds).finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for `kind`, replacing any earlier one.
    pub fn register(&mut self, kind: impl Into<String>, handler: impl Handler) -> &mut Self {
        self.handlers.insert(kind.into(), Arc::new(handler));
        self
    }

    /// Registers an async closure for `kind`.
    pub fn register_fn<F, Fut>(&mut self, kind: impl Into<String>, f: F) -> &mut Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.register(kind, FnHandler(f))
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(kind).cloned()
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        kinds
    }
}

/// A job that runs every `every`. Ensured at start-up and re-scheduled after each run (done or dead) with the
/// unique key `recurring:<name>`, so several processes starting together keep one chain between them.
#[derive(Clone, Debug, PartialEq)]
pub struct Recurring {
    pub name: String,
    pub kind: String,
    pub queue: String,
    pub every: Duration,
    pub payload: serde_json::Value,
}

impl Recurring {
    pub fn unique_key(&self) -> String {
        format!("recurring:{}", self.name)
    }

    /// The job of the run due at `at`.
    pub fn job_at(&self, at: time::OffsetDateTime) -> NewJob {
        NewJob::new(&self.queue, &self.kind, self.payload.clone()).unique_key(self.unique_key()).run_at(at)
    }
}

/// How workers run.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerSettings {
    /// Jobs run at once by one [`Workers`] instance.
    pub concurrency: usize,
    /// Queues to claim from; empty claims from all.
    pub queues: Vec<String>,
    /// How often idle workers look for due jobs (an in-process [`Jobs::notify`] wakes them sooner).
    pub poll_interval: Duration,
    /// How long a claim holds without a heartbeat; renewed every third of it while a handler runs.
    pub lease: Duration,
    /// Attempts of a job that does not set its own.
    pub max_attempts: u32,
    /// Backoff before retry `n` is a random duration in `[0, min(cap, base·2^(n-1))]` ("full jitter").
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// On shutdown, how long running jobs get to finish before they are released back to `pending`.
    pub shutdown_timeout: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            queues: Vec::new(),
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            max_attempts: 8,
            backoff_base: Duration::from_secs(5),
            backoff_cap: Duration::from_secs(3600),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl WorkerSettings {
    /// `MENTORFY_WORKERS`, `MENTORFY_JOB_*` and `MENTORFY_SHUTDOWN_TIMEOUT`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            concurrency: usize::try_from(config.jobs.workers).unwrap_or(usize::MAX),
            poll_interval: config.jobs.poll_interval,
            lease: config.jobs.lease,
            max_attempts: config.jobs.max_attempts,
            backoff_base: config.jobs.retry_base,
            shutdown_timeout: config.shutdown_timeout,
            ..Self::default()
        }
    }
}

/// A handle to enqueue jobs and wake this process's workers. Cheap to clone. Workers of other processes find new
/// jobs by polling (`MENTORFY_JOB_POLL_INTERVAL`).
#[derive(Clone, Debug)]
pub struct Jobs {
    store: Store,
    wake: Arc<Notify>,
}

impl Jobs {
    pub fn new(store: Store) -> Self {
        Self { store, wake: Arc::new(Notify::new()) }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Enqueues and wakes a worker. `None` when debounced (see [`Store::enqueue`]).
    pub async fn enqueue(&self, job: &NewJob) -> Result<Option<JobId>, StoreError> {
        let id = self.store.enqueue(job).await?;
        if id.is_some() {
            self.notify();
        }
        Ok(id)
    }

    /// Wakes this process's workers to claim now, e.g. after a store call enqueued jobs inside its transaction.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
