//! `sensei.process_conversation`: reads a conversation, runs the analysis ([`crate::analysis::analyse`]) and stores
//! sentiment, failures and health in one transaction. Runs after ingestion (debounced per conversation) and once
//! more when the conversation has been quiet for the idle timeout, which makes it final. Idempotent: a re-run over
//! the same messages writes the same rows.

use std::time::Duration;

use mentorfy_store::{AnalysisOutcome, AnalysisWrite, FailureWrite, MessageRow, NewJob, Store};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::analysis::{Analysis, Transcript, Turn, analyse};
use crate::error::SenseiError;
use crate::ingest::Role;
use crate::service::{ANALYSIS_JOB_KIND, ANALYSIS_QUEUE};

/// Version of the health breakdown's shape and weights, stored with it.
pub const HEALTH_VERSION: u32 = 1;

/// What one run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub conversation_id: Uuid,
    pub analysis: Analysis,
    pub stored: AnalysisOutcome,
    pub is_final: bool,
}

/// Runs the analysis of conversations against the store.
#[derive(Debug, Clone)]
pub struct Pipeline {
    store: Store,
    idle_timeout: Duration,
}

/// A stored message as the analysers see it; `None` for superseded messages (a regenerated reply replaced them).
pub fn turn_of(m: &MessageRow) -> Option<Turn> {
    if m.status == "superseded" {
        return None;
    }
    Some(Turn {
        role: Role::parse(&m.role).unwrap_or(Role::User),
        content: m.content.clone(),
        status: m.status.clone(),
        created_at: m.created_at,
        latency_ms: m.latency_ms,
        metadata: m.metadata.as_object().cloned().unwrap_or_default(),
    })
}

impl Pipeline {
    pub fn new(store: Store, idle_timeout: Duration) -> Self {
        Self { store, idle_timeout }
    }

    /// Analyses one conversation and stores the result. `Ok(None)` when it no longer exists.
    pub async fn process(&self, conversation_id: Uuid) -> Result<Option<Processed>, SenseiError> {
        let Some(conv) = self.store.get_conversation(conversation_id).await? else { return Ok(None) };
        let rows = self.store.list_messages(conversation_id).await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut turns = Vec::with_capacity(rows.len());
        for m in &rows {
            if let Some(turn) = turn_of(m) {
                ids.push((m.id, m.sentiment_score.is_none()));
                turns.push(turn);
            }
        }
        let now = mentorfy_store::now();
        let quiet = now - conv.last_message_at;
        let is_final = quiet >= time::Duration::try_from(self.idle_timeout).unwrap_or(time::Duration::MAX);
        let transcript = Transcript { turns, is_final };
        let analysis = analyse(&transcript);

        let sentiments = ids
            .iter()
            .zip(&analysis.sentiment)
            .filter(|((_, missing), _)| *missing)
            .map(|((id, _), s)| (*id, *s))
            .collect();
        let user: Vec<f64> = transcript
            .turns
            .iter()
            .zip(&analysis.sentiment)
            .filter(|(t, _)| t.role == Role::User)
            .map(|(_, s)| *s)
            .collect();
        let avg_sentiment = (!user.is_empty()).then(|| user.iter().sum::<f64>() / user.len() as f64);
        let failures = analysis
            .findings
            .iter()
            .map(|f| {
                let mut details = Map::new();
                if !f.subtype.is_empty() {
                    details.insert("subtype".into(), json!(f.subtype));
                }
                details.insert("confidence".into(), json!((f.confidence * 1000.0).round() / 1000.0));
                FailureWrite {
                    message_id: f.turn.and_then(|i| ids.get(i)).map(|(id, _)| *id),
                    kind: f.kind.to_owned(),
                    severity: f.severity.as_str().to_owned(),
                    evidence: f.evidence.clone(),
                    detector: f.detector.to_owned(),
                    detector_version: i32::try_from(f.detector_version).unwrap_or(i32::MAX),
                    fingerprint: f.fingerprint.clone(),
                    details: Value::Object(details),
                }
            })
            .collect();
        let components: Vec<Value> = analysis
            .health
            .components
            .iter()
            .map(|c| json!({"name": c.name, "weight": c.weight, "value": round3(c.value), "evidence": c.evidence}))
            .collect();
        let score = round3(analysis.health.score);
        let write = AnalysisWrite {
            conversation_id,
            seen_last_message_at: conv.last_message_at,
            sentiments,
            failures,
            health_score: score,
            health_breakdown: json!({"score": score, "version": HEALTH_VERSION, "final": is_final, "components": components}),
            avg_sentiment,
            is_final,
        };
        let stored = self.store.save_analysis(&write).await?;
        if !is_final && stored.found {
            // Come back when it has been quiet for the idle timeout (a newer message reschedules this).
            let due = conv.last_message_at + time::Duration::try_from(self.idle_timeout).unwrap_or(time::Duration::DAY);
            let job = NewJob::new(ANALYSIS_QUEUE, ANALYSIS_JOB_KIND, json!({"conversation_id": conversation_id}))
                .unique_key(format!("{ANALYSIS_JOB_KIND}:idle:{conversation_id}"))
                .run_at(due.max(now));
            self.store.enqueue(&job).await?;
        }
        Ok(Some(Processed { conversation_id, analysis, stored, is_final }))
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
