//! Sensei's background jobs: the conversation analysis ([`crate::ANALYSIS_JOB_KIND`], enqueued by ingestion and by
//! itself for the idle check) and forgetting batch event ids once their dedupe window has passed.

use std::time::Duration;

use mentorfy_jobs::{JobError, Recurring, Registry};
use mentorfy_store::Store;
use uuid::Uuid;

use crate::alerts::Alerts;
use crate::error::SenseiError;
use crate::pipeline::Pipeline;
use crate::service::ANALYSIS_JOB_KIND;

/// The job kind that deletes old client event ids.
pub const PRUNE_INGEST_EVENTS: &str = "sensei.prune_ingest_events";
/// Client event ids are remembered at least this long (the promise is 24 hours).
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(48 * 3600);

/// Registers Sensei's job handlers.
pub fn register(registry: &mut Registry, store: &Store, pipeline: &Pipeline, alerts: &Alerts) {
    let (p, a) = (pipeline.clone(), alerts.clone());
    registry.register_fn(ANALYSIS_JOB_KIND, move |ctx| {
        let (p, a) = (p.clone(), a.clone());
        async move {
            let id = ctx
                .job
                .payload
                .get("conversation_id")
                .and_then(serde_json::Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| JobError::permanent("payload has no conversation_id"))?;
            match p.process(id).await {
                Ok(Some(processed)) => {
                    // Logged, not retried: a re-run would find no *new* failures and raise nothing.
                    if let Err(e) = a.on_processed(&processed).await {
                        tracing::warn!(error = %e, conversation_id = %id, "could not raise alerts");
                    }
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(SenseiError::Invalid(e)) => Err(JobError::permanent(e.to_string())),
                Err(e) => Err(JobError::retryable(e.to_string())),
            }
        }
    });
    let store = store.clone();
    registry.register_fn(PRUNE_INGEST_EVENTS, move |_ctx| {
        let store = store.clone();
        async move {
            let before = mentorfy_store::now() - time::Duration::try_from(DEDUPE_WINDOW).unwrap_or(time::Duration::DAY);
            let n = store.prune_ingest_events(before).await.map_err(|e| JobError::retryable(e.to_string()))?;
            if n > 0 {
                tracing::info!(events = n, "forgot client event ids older than the dedupe window");
            }
            Ok(())
        }
    });
}

/// Sensei's periodic jobs: the event-id prune, hourly.
pub fn recurring() -> Vec<Recurring> {
    vec![Recurring {
        name: "sensei-prune-ingest-events".to_owned(),
        kind: PRUNE_INGEST_EVENTS.to_owned(),
        queue: "maintenance".to_owned(),
        every: Duration::from_secs(3600),
        payload: serde_json::json!({}),
    }]
}
