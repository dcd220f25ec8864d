//! Sensei's background jobs. For now: forgetting batch event ids once their dedupe window has passed.
//! (The conversation analysis job, [`crate::ANALYSIS_JOB_KIND`], is enqueued by ingestion; its handler comes with
//! the analysis pipeline.)

use std::time::Duration;

use mentorfy_jobs::{JobError, Recurring, Registry};
use mentorfy_store::Store;

/// The job kind that deletes old client event ids.
pub const PRUNE_INGEST_EVENTS: &str = "sensei.prune_ingest_events";
/// Client event ids are remembered at least this long (the promise is 24 hours).
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(48 * 3600);

/// Registers Sensei's job handlers.
pub fn register(registry: &mut Registry, store: &Store) {
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
