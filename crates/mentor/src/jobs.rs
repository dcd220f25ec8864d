//! Mentor's background jobs: the handlers the server registers and the recurring jobs it schedules. Add a kind
//! by naming it here, registering its handler in [`register`] and, if periodic, listing it in [`recurring`].
//! Handlers must be idempotent (see `mentorfy_jobs`); none of them logs a payload.

use std::time::Duration;

use mentorfy_core::{Config, SessionId};
use mentorfy_jobs::{JobContext, JobError, Recurring, Registry};
use mentorfy_memory::MemoryError;
use mentorfy_store::Store;
use serde_json::Value;
use uuid::Uuid;

use crate::error::MentorError;
use crate::memory::MemoryService;
use crate::sessions::Sessions;

/// Marks sessions idle longer than `MENTORFY_ABANDON_AFTER` as abandoned. Idempotent by nature.
pub const SWEEP_ABANDONED: &str = "sessions.sweep_abandoned";

/// Housekeeping jobs (sweeps).
pub const MAINTENANCE_QUEUE: &str = "maintenance";

/// Memory writes: onboarding answers and finished chat turns become memories.
pub const MEMORY_QUEUE: &str = "memory";

/// Payload `{sessionId, paths}`: writes the memories of those answers from the session's *current* context
/// (replacing each answer's old memory, forgetting removed ones). Enqueued in the transaction that changed them.
pub const WRITE_ANSWERS: &str = "memory.answers";

/// Payload `{sessionId, conversationId, messageId}`: stores the finished chat turn that ends with the assistant
/// message `messageId` (a row id). Enqueued in the transaction that stored the answer.
pub const WRITE_TURN: &str = "memory.turn";

/// What the handlers need, built once at start-up. New handlers add their services here.
#[derive(Clone)]
pub struct JobDeps {
    pub store: Store,
    pub sessions: Sessions,
    pub memory: MemoryService,
    /// `MENTORFY_ABANDON_AFTER`.
    pub abandon_after: Duration,
    /// How the assistant is named in turn memories (`Rafael answered: …`) when the agent has no name.
    pub assistant_name: String,
}

/// Registers every Mentor job handler.
pub fn register(registry: &mut Registry, deps: &JobDeps) {
    let d = deps.clone();
    registry.register_fn(SWEEP_ABANDONED, move |_ctx| {
        let d = d.clone();
        async move {
            let n = d.sessions.sweep_abandoned(d.abandon_after).await.map_err(job_error)?;
            if n > 0 {
                tracing::info!(sessions = n, "marked idle sessions abandoned");
            }
            Ok(())
        }
    });
    let d = deps.clone();
    registry.register_fn(WRITE_ANSWERS, move |ctx| {
        let d = d.clone();
        async move { write_answers(&d, &ctx).await }
    });
    let d = deps.clone();
    registry.register_fn(WRITE_TURN, move |ctx| {
        let d = d.clone();
        async move { write_turn(&d, &ctx).await }
    });
}

async fn write_answers(d: &JobDeps, ctx: &JobContext) -> Result<(), JobError> {
    let payload = &ctx.job.payload;
    let session_id = payload_session(payload)?;
    let paths: Vec<String> = payload
        .get("paths")
        .and_then(Value::as_array)
        .ok_or_else(|| JobError::permanent("payload has no `paths` list"))?
        .iter()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    let Some(session) = find_session(d, session_id).await? else { return Ok(()) };
    let written = d.memory.write_answers(&session, &paths).await.map_err(memory_error)?;
    tracing::debug!(session_id = %session_id, answers = paths.len(), written, "answer memories written");
    Ok(())
}

async fn write_turn(d: &JobDeps, ctx: &JobContext) -> Result<(), JobError> {
    let payload = &ctx.job.payload;
    let session_id = payload_session(payload)?;
    let uuid = |field: &str| {
        payload
            .get(field)
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| JobError::permanent(format!("payload has no valid `{field}`")))
    };
    let (conversation_id, message_id) = (uuid("conversationId")?, uuid("messageId")?);
    let Some(session) = find_session(d, session_id).await? else { return Ok(()) };
    let messages = d.store.list_messages(conversation_id).await?;
    let Some(at) = messages.iter().position(|m| m.id == message_id) else {
        return Err(JobError::permanent(format!("message {message_id} is not in conversation {conversation_id}")));
    };
    let answer = &messages[at];
    // The question is the closest earlier user message that the person still stands by.
    let question = messages[..at]
        .iter()
        .rev()
        .find(|m| m.role == "user" && m.status != "superseded")
        .map(|m| m.content.as_str())
        .unwrap_or_default();
    if question.trim().is_empty() && answer.content.trim().is_empty() {
        return Ok(());
    }
    let name = answer.metadata.get("agentName").and_then(Value::as_str).unwrap_or(&d.assistant_name).to_owned();
    let position = i64::try_from(at).unwrap_or(i64::MAX);
    d.memory
        .write_turn(&session, &answer.id.to_string(), question, &answer.content, &name, answer.created_at, position)
        .await
        .map_err(memory_error)
}

fn payload_session(payload: &Value) -> Result<SessionId, JobError> {
    payload
        .get("sessionId")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<SessionId>().ok())
        .ok_or_else(|| JobError::permanent("payload has no valid `sessionId`"))
}

/// The session, or `None` when it no longer exists (nothing left to remember).
async fn find_session(d: &JobDeps, id: SessionId) -> Result<Option<mentorfy_core::Session>, JobError> {
    match d.sessions.get(id).await {
        Ok(s) => Ok(Some(s)),
        Err(MentorError::NotFound(_)) => Ok(None),
        Err(e) => Err(job_error(e)),
    }
}

/// A memory service outage is retried (after the service's `Retry-After` when it sent one); a refusal is not.
fn memory_error(e: MemoryError) -> JobError {
    if e.retryable() {
        let err = JobError::retryable(e.to_string());
        match e.retry_after() {
            Some(after) => err.retry_after(after),
            None => err,
        }
    } else {
        JobError::permanent(e.to_string())
    }
}

/// The periodic jobs: the abandoned-session sweep every `MENTORFY_SWEEP_INTERVAL`.
pub fn recurring(config: &Config) -> Vec<Recurring> {
    vec![Recurring {
        name: "sessions-sweep-abandoned".to_owned(),
        kind: SWEEP_ABANDONED.to_owned(),
        queue: MAINTENANCE_QUEUE.to_owned(),
        every: config.sweep_interval.max(Duration::from_millis(100)),
        payload: serde_json::json!({}),
    }]
}

/// Domain errors as job errors: a refused input will not pass on retry; anything else may.
fn job_error(e: MentorError) -> JobError {
    match e {
        MentorError::Invalid { .. } | MentorError::NotFound(_) => JobError::permanent(e.to_string()),
        other => JobError::retryable(other.to_string()),
    }
}
