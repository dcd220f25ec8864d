//! The ingestion service: stores validated conversations for an API key, with their analysis job, in one
//! transaction per request.

use std::time::Duration;

use mentorfy_store::{IngestWrite, IngestWriteOutcome, IngestedMessage, NewJob, Store};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::error::SenseiError;
use crate::ingest::IngestConversation;

/// The queue of conversation analysis jobs.
pub const ANALYSIS_QUEUE: &str = "analysis";
/// The job kind that analyses one conversation (payload `{"conversation_id": "<uuid>"}`).
pub const ANALYSIS_JOB_KIND: &str = "sensei.process_conversation";

/// Which ingestion path a conversation came by; stored as `conversations.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The JSON APIs (track and batch) and the SDKs built on them.
    Api,
    /// OTLP GenAI spans.
    Otel,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Otel => "otel",
        }
    }
}

/// The API key a request was authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyContext {
    pub api_key_id: Option<Uuid>,
    /// The environment of conversations that do not name one.
    pub environment: String,
}

/// What one stored conversation gained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOutcome {
    pub conversation_id: Uuid,
    /// Messages stored now.
    pub accepted: u64,
    /// Messages that were already stored (same id, or same role, content and time).
    pub duplicates: u64,
}

/// What happened to one batch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Stored(IngestOutcome),
    /// The event id was seen within the dedupe window: nothing stored.
    Duplicate,
}

/// Stores ingested conversations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingestor {
    store: Store,
    debounce: Duration,
    /// Wakes this process's workers when an analysis job falls due (they would otherwise find it on their next poll).
    jobs: Option<mentorfy_jobs::Jobs>,
}

impl Ingestor {
    /// `debounce`: how long after a conversation's first new message in a quiet period its analysis runs;
    /// messages arriving meanwhile join the same pending job.
    pub fn new(store: Store, debounce: Duration) -> Self {
        Self { store, debounce, jobs: None }
    }

    /// Wakes `jobs`' in-process workers when the analysis jobs this ingestor enqueues fall due.
    pub fn with_jobs(mut self, jobs: mentorfy_jobs::Jobs) -> Self {
        self.jobs = Some(jobs);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The analysis job of a conversation, debounced by its unique key.
    pub fn analysis_job(&self, conversation_id: Uuid) -> NewJob {
        let run_at = mentorfy_store::now() + time::Duration::try_from(self.debounce).unwrap_or(time::Duration::ZERO);
        NewJob::new(ANALYSIS_QUEUE, ANALYSIS_JOB_KIND, json!({"conversation_id": conversation_id}))
            .unique_key(format!("{ANALYSIS_JOB_KIND}:{conversation_id}"))
            .run_at(run_at)
    }

    /// Stores conversations in one transaction; one outcome per conversation, in order.
    pub async fn ingest(
        &self,
        source: Source,
        key: &KeyContext,
        conversations: Vec<IngestConversation>,
    ) -> Result<Vec<IngestOutcome>, SenseiError> {
        let events = conversations.into_iter().map(|c| (None, c)).collect();
        let outcomes = self.ingest_events(source, key, events).await?;
        Ok(outcomes
            .into_iter()
            .filter_map(|o| match o {
                EventOutcome::Stored(s) => Some(s),
                EventOutcome::Duplicate => None,
            })
            .collect())
    }

    /// Stores events (each with an optional client event id) in one transaction; one outcome per event.
    pub async fn ingest_events(
        &self,
        source: Source,
        key: &KeyContext,
        events: Vec<(Option<String>, IngestConversation)>,
    ) -> Result<Vec<EventOutcome>, SenseiError> {
        let writes: Vec<IngestWrite> = events.into_iter().map(|(id, c)| to_write(source, key, id, c)).collect();
        let job = |id: Uuid| self.analysis_job(id);
        let outcomes = self.store.ingest(&writes, &job).await?;
        let gained = outcomes.iter().any(|o| matches!(o, IngestWriteOutcome::Stored { inserted, .. } if *inserted > 0));
        if let (true, Some(jobs)) = (gained, &self.jobs) {
            let (jobs, delay) = (jobs.clone(), self.debounce);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                jobs.notify();
            });
        }
        Ok(outcomes
            .into_iter()
            .map(|o| match o {
                IngestWriteOutcome::DuplicateEvent => EventOutcome::Duplicate,
                IngestWriteOutcome::Stored { conversation_id, inserted, duplicates } => {
                    EventOutcome::Stored(IngestOutcome { conversation_id, accepted: inserted, duplicates })
                }
            })
            .collect())
    }
}

fn strip_nulls(m: Map<String, Value>) -> Value {
    Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect())
}

fn to_write(source: Source, key: &KeyContext, event_id: Option<String>, c: IngestConversation) -> IngestWrite {
    IngestWrite {
        event_id,
        api_key_id: key.api_key_id,
        source: source.as_str().to_owned(),
        environment: c.environment.unwrap_or_else(|| key.environment.clone()),
        external_id: c.external_id,
        user_id: c.user_id,
        agent_id: c.agent_id,
        metadata: strip_nulls(c.metadata),
        messages: c
            .messages
            .into_iter()
            .map(|m| IngestedMessage {
                external_id: m.external_id,
                role: m.role.as_str().to_owned(),
                content: m.content,
                status: m.status.to_owned(),
                finish_reason: m.finish_reason,
                input_tokens: m.input_tokens,
                output_tokens: m.output_tokens,
                latency_ms: m.latency_ms,
                ttft_ms: m.ttft_ms,
                metadata: Value::Object(m.metadata),
                created_at: m.created_at,
            })
            .collect(),
    }
}
