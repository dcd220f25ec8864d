//! Sensei's background jobs: the conversation analysis ([`crate::ANALYSIS_JOB_KIND`], enqueued by ingestion and by
//! itself for the idle check), embedding a conversation's opening when embeddings are on, the usage-pattern
//! analysis (recurring, weekly by default), and forgetting batch event ids once their dedupe window has passed.

use std::time::Duration;

use mentorfy_jobs::{JobError, Recurring, Registry};
use mentorfy_store::{NewJob, Store};
use uuid::Uuid;

use crate::alerts::Alerts;
use crate::error::SenseiError;
use crate::judge::{JUDGE_JOB_KIND, JUDGE_QUEUE, Judge};
use crate::patterns::{EMBED_JOB_KIND, PATTERN_JOB_KIND, PATTERN_QUEUE, Patterns, RunOptions, Trigger};
use crate::pipeline::Pipeline;
use crate::service::ANALYSIS_JOB_KIND;

/// The job kind that deletes old client event ids.
pub const PRUNE_INGEST_EVENTS: &str = "sensei.prune_ingest_events";
/// Client event ids are remembered at least this long (the promise is 24 hours).
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(48 * 3600);

fn conversation_id(payload: &serde_json::Value) -> Result<Uuid, JobError> {
    payload
        .get("conversation_id")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| JobError::permanent("payload has no conversation_id"))
}

fn job_error(e: SenseiError) -> JobError {
    match e {
        SenseiError::Invalid(e) => JobError::permanent(e.to_string()),
        e => JobError::retryable(e.to_string()),
    }
}

/// What Sensei's jobs run on.
#[derive(Debug, Clone)]
pub struct JobDeps {
    pub store: Store,
    pub pipeline: Pipeline,
    pub alerts: Alerts,
    pub patterns: Patterns,
    /// The LLM judge, when `SENSEI_JUDGE_MODEL` is set.
    pub judge: Option<Judge>,
}

/// Registers Sensei's job handlers.
pub fn register(registry: &mut Registry, deps: &JobDeps) {
    let JobDeps { store, pipeline, alerts, patterns, judge } = deps;
    let (p, a, pat, st, judging) = (pipeline.clone(), alerts.clone(), patterns.clone(), store.clone(), judge.is_some());
    registry.register_fn(ANALYSIS_JOB_KIND, move |ctx| {
        let (p, a, pat, st) = (p.clone(), a.clone(), pat.clone(), st.clone());
        async move {
            let id = conversation_id(&ctx.job.payload)?;
            match p.process(id).await {
                Ok(Some(processed)) => {
                    // Logged, not retried: a re-run would find no *new* failures and raise nothing.
                    if let Err(e) = a.on_processed(&processed).await {
                        tracing::warn!(error = %e, conversation_id = %id, "could not raise alerts");
                    }
                    if judging && processed.stored.became_final {
                        let job = NewJob::new(JUDGE_QUEUE, JUDGE_JOB_KIND, serde_json::json!({"conversation_id": id}))
                            .unique_key(format!("{JUDGE_JOB_KIND}:{id}"));
                        if let Err(e) = st.enqueue(&job).await {
                            tracing::warn!(error = %e, conversation_id = %id, "could not enqueue the judge job");
                        }
                    }
                    if pat.embeddings_on() {
                        let job =
                            NewJob::new(PATTERN_QUEUE, EMBED_JOB_KIND, serde_json::json!({"conversation_id": id}))
                                .unique_key(format!("{EMBED_JOB_KIND}:{id}"));
                        if let Err(e) = st.enqueue(&job).await {
                            tracing::warn!(error = %e, conversation_id = %id, "could not enqueue the embedding job");
                        }
                    }
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(job_error(e)),
            }
        }
    });
    if let Some(judge) = judge.clone() {
        registry.register_fn(JUDGE_JOB_KIND, move |ctx| {
            let judge = judge.clone();
            async move {
                let id = conversation_id(&ctx.job.payload)?;
                judge.judge(id).await.map(|_| ()).map_err(job_error)
            }
        });
    }
    let pat = patterns.clone();
    registry.register_fn(EMBED_JOB_KIND, move |ctx| {
        let pat = pat.clone();
        async move {
            let id = conversation_id(&ctx.job.payload)?;
            pat.embed_conversation(id).await.map(|_| ()).map_err(job_error)
        }
    });
    let pat = patterns.clone();
    registry.register_fn(PATTERN_JOB_KIND, move |ctx| {
        let pat = pat.clone();
        async move {
            let mut options = RunOptions { trigger: Trigger::Scheduled, ..RunOptions::default() };
            if let Some(secs) = ctx.job.payload.get("window_secs").and_then(serde_json::Value::as_u64) {
                options.window = Duration::from_secs(secs);
            }
            let summary = pat.run(&options, &|_| {}).await.map_err(job_error)?;
            tracing::info!(
                run_id = ?summary.run_id,
                conversations = summary.conversations,
                patterns = summary.patterns.len(),
                unclustered = summary.unclustered,
                "usage patterns recomputed"
            );
            Ok(())
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

/// Sensei's periodic jobs: the event-id prune, hourly; the pattern analysis every `patterns_every` (weekly by
/// default) over the conversations of the last `patterns_window`.
pub fn recurring(patterns_every: Option<Duration>, patterns_window: Duration) -> Vec<Recurring> {
    let mut jobs = vec![Recurring {
        name: "sensei-prune-ingest-events".to_owned(),
        kind: PRUNE_INGEST_EVENTS.to_owned(),
        queue: "maintenance".to_owned(),
        every: Duration::from_secs(3600),
        payload: serde_json::json!({}),
    }];
    if let Some(every) = patterns_every {
        jobs.push(Recurring {
            name: "sensei-pattern-analyze".to_owned(),
            kind: PATTERN_JOB_KIND.to_owned(),
            queue: PATTERN_QUEUE.to_owned(),
            every,
            payload: serde_json::json!({"window_secs": patterns_window.as_secs()}),
        });
    }
    jobs
}
