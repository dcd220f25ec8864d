//! Shared application state handed to every handler, built once at start-up by [`crate::prepare`].

use std::sync::Arc;

use mentorfy_auth::{ClerkClaims, ClerkVerifier};
use mentorfy_core::Config;
use mentorfy_jobs::{Jobs, Recurring, Registry};
use mentorfy_llm::Gateway;
use mentorfy_mentor::{ChatService, Sessions};
use mentorfy_store::Store;
use serde_json::json;

use mentorfy_sensei::Ingestor;
use mentorfy_sensei::alerts::Alerts;
use uuid::Uuid;

use crate::admin_auth::AdminServices;
use crate::error::AppError;
use crate::rate_limit::Gcra;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    store: Store,
    sessions: Sessions,
    clerk: Option<ClerkVerifier>,
    admin: AdminServices,
    chat: ChatService,
    gateway: Gateway,
    jobs: Jobs,
    job_registry: Registry,
    recurring: Vec<Recurring>,
    ingestor: Ingestor,
    ingest_limiter: Gcra<Uuid>,
    alerts: Alerts,
}

/// The verifiers of incoming credentials.
pub struct AuthSetup {
    /// Clerk session tokens (app routes); `None` when Clerk is not configured.
    pub clerk: Option<ClerkVerifier>,
    /// Admin tokens, API keys and the login limiter.
    pub admin: AdminServices,
}

/// Mentor's services: sessions, chat (with memory and tools) and the LLM gateway.
pub struct MentorSetup {
    pub sessions: Sessions,
    pub chat: ChatService,
    pub gateway: Gateway,
}

/// Sensei: the service that stores conversations, the per-key ingestion rate limiter, and alerts (for the
/// settings API's test alert).
pub struct SenseiSetup {
    pub ingestor: Ingestor,
    pub limiter: Gcra<Uuid>,
    pub alerts: Alerts,
}

/// The job queue as the app sees it: where to enqueue, what the workers run, and the periodic jobs.
pub struct JobsSetup {
    /// Enqueue through this (or enqueue in a store transaction and call `notify`) to wake in-process workers.
    pub jobs: Jobs,
    pub registry: Registry,
    pub recurring: Vec<Recurring>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        mentor: MentorSetup,
        auth: AuthSetup,
        jobs: JobsSetup,
        sensei: SenseiSetup,
    ) -> Self {
        let MentorSetup { sessions, chat, gateway } = mentor;
        let JobsSetup { jobs, registry: job_registry, recurring } = jobs;
        let SenseiSetup { ingestor, limiter: ingest_limiter, alerts } = sensei;
        let AuthSetup { clerk, admin } = auth;
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                sessions,
                clerk,
                admin,
                chat,
                gateway,
                jobs,
                job_registry,
                recurring,
                ingestor,
                ingest_limiter,
                alerts,
            }),
        }
    }

    /// Stores ingested conversations with their analysis jobs.
    pub fn ingestor(&self) -> &Ingestor {
        &self.inner.ingestor
    }

    /// Sensei alerts (thresholds in force, the test alert).
    pub fn alerts(&self) -> &Alerts {
        &self.inner.alerts
    }

    /// The per-API-key ingestion rate limiter.
    pub fn ingest_limiter(&self) -> &Gcra<Uuid> {
        &self.inner.ingest_limiter
    }

    /// Admin token verification, API keys and the login limiter.
    pub fn admin(&self) -> &AdminServices {
        &self.inner.admin
    }

    /// Enqueue jobs and wake this process's workers (`state.jobs().notify()` after a transactional enqueue).
    pub fn jobs(&self) -> &Jobs {
        &self.inner.jobs
    }

    /// The handlers workers run (built by `prepare`; `serve` and `mentorfy worker` start workers with it).
    pub fn job_registry(&self) -> &Registry {
        &self.inner.job_registry
    }

    /// The periodic jobs the workers ensure at start-up.
    pub fn recurring_jobs(&self) -> &[Recurring] {
        &self.inner.recurring
    }

    /// The session memory (recall, listing, the memory and knowledge tools).
    pub fn memory(&self) -> &mentorfy_mentor::MemoryService {
        self.inner.chat.memory()
    }

    pub fn chat(&self) -> &ChatService {
        &self.inner.chat
    }

    pub fn gateway(&self) -> &Gateway {
        &self.inner.gateway
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// The Clerk verifier, or the 503 that names the variables to set.
    pub fn require_clerk(&self) -> Result<&ClerkVerifier, AppError> {
        self.inner.clerk.as_ref().ok_or_else(|| {
            AppError::unavailable("sign-in is not configured on this server: set CLERK_JWT_KEY (or CLERK_JWKS_URL)")
                .with_details(json!({"missing": ["CLERK_JWT_KEY", "CLERK_JWKS_URL"]}))
        })
    }

    pub async fn verify_clerk(&self, token: &str) -> Result<ClerkClaims, AppError> {
        Ok(self.require_clerk()?.verify(token).await?)
    }
}
