//! Writing a conversation's analysis (issue 6) in one transaction: message sentiment, failures (upserted by
//! fingerprint so re-runs never duplicate and keep a status an admin set), and the conversation's health,
//! failure count and final state.

use sea_query::{Alias, Expr, ExprTrait, OnConflict, Order, Query};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::conversations::{Conversations, Messages};
use crate::db::Store;
use crate::dialect::{now, ts};
use crate::error::StoreError;

#[derive(sea_query::Iden, Clone, Copy)]
pub(crate) enum Failures {
    Table,
    Id,
    ConversationId,
    MessageId,
    Type,
    Severity,
    Evidence,
    Detector,
    DetectorVersion,
    Fingerprint,
    Status,
    Details,
    CreatedAt,
    UpdatedAt,
}

const FAILURE_COLUMNS: [Failures; 13] = [
    Failures::Id,
    Failures::ConversationId,
    Failures::MessageId,
    Failures::Type,
    Failures::Severity,
    Failures::Evidence,
    Failures::Detector,
    Failures::DetectorVersion,
    Failures::Fingerprint,
    Failures::Status,
    Failures::Details,
    Failures::CreatedAt,
    Failures::UpdatedAt,
];

/// A stored failure.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FailureRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub message_id: Option<Uuid>,
    /// `user_frustration`, `escalation_request`, …
    #[sqlx(rename = "type")]
    pub kind: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    pub evidence: String,
    pub detector: String,
    pub detector_version: i32,
    pub fingerprint: String,
    /// `open`, `ack` or `resolved`.
    pub status: String,
    #[sqlx(json)]
    pub details: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A failure found by the analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureWrite {
    pub message_id: Option<Uuid>,
    pub kind: String,
    pub severity: String,
    pub evidence: String,
    pub detector: String,
    pub detector_version: i32,
    pub fingerprint: String,
    /// A JSON object (subtype, confidence, …).
    pub details: serde_json::Value,
}

/// One analysis of one conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisWrite {
    pub conversation_id: Uuid,
    /// The conversation's `last_message_at` the analysis saw: it is marked final only if no message came since.
    pub seen_last_message_at: OffsetDateTime,
    /// Sentiment per message id; only messages without a score are written (a message's text never changes).
    pub sentiments: Vec<(Uuid, f64)>,
    /// Every failure the analysis found; open failures it no longer finds are deleted.
    pub failures: Vec<FailureWrite>,
    pub health_score: f64,
    /// A JSON object.
    pub health_breakdown: serde_json::Value,
    pub avg_sentiment: Option<f64>,
    pub is_final: bool,
}

/// What [`Store::save_analysis`] changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnalysisOutcome {
    /// Failures stored for the first time.
    pub new_failures: Vec<FailureRow>,
    /// The health score before this analysis (`None` when never analysed).
    pub previous_health: Option<f64>,
    /// The conversation went from active to final in this analysis.
    pub became_final: bool,
    /// False when the conversation no longer exists (nothing was written).
    pub found: bool,
}

impl Store {
    /// Stores an analysis in one transaction (see the module doc).
    pub async fn save_analysis(&self, w: &AnalysisWrite) -> Result<AnalysisOutcome, StoreError> {
        let kind = self.kind();
        let t = now();
        let mut tx = self.begin_for_update().await?;
        let current = Query::select()
            .columns([Conversations::HealthScore, Conversations::Status, Conversations::LastMessageAt])
            .from(Conversations::Table)
            .and_where(Expr::col(Conversations::Id).eq(w.conversation_id))
            .lock(sea_query::LockType::Update)
            .to_owned();
        let Some((previous_health, status, last_message_at)) =
            tx.fetch_optional::<(Option<f64>, String, OffsetDateTime)>(&current).await?
        else {
            return Ok(AnalysisOutcome::default());
        };

        // One statement per chunk of messages (a CASE on the id) rather than one per message.
        for chunk in w.sentiments.chunks(crate::ingest::rows_per_statement(kind)) {
            let mut case = sea_query::CaseStatement::new();
            for (message_id, score) in chunk {
                case = case.case(Expr::col(Messages::Id).eq(*message_id), Expr::val(score.clamp(-1.0, 1.0)));
            }
            let update = Query::update()
                .table(Messages::Table)
                .value(Messages::SentimentScore, case.finally(Expr::col(Messages::SentimentScore)))
                .and_where(Expr::col(Messages::Id).is_in(chunk.iter().map(|(id, _)| *id)))
                .and_where(Expr::col(Messages::SentimentScore).is_null())
                .to_owned();
            tx.execute(&update).await?;
        }

        let existing = Query::select()
            .column(Failures::Fingerprint)
            .from(Failures::Table)
            .and_where(Expr::col(Failures::ConversationId).eq(w.conversation_id))
            .to_owned();
        let existing: std::collections::HashSet<String> =
            tx.fetch_all::<(String,)>(&existing).await?.into_iter().map(|(f,)| f).collect();
        let fingerprints: Vec<&str> = w.failures.iter().map(|f| f.fingerprint.as_str()).collect();
        let mut stale = Query::delete()
            .from_table(Failures::Table)
            .and_where(Expr::col(Failures::ConversationId).eq(w.conversation_id))
            .and_where(Expr::col(Failures::Status).eq("open"))
            .to_owned();
        if !fingerprints.is_empty() {
            stale.and_where(Expr::col(Failures::Fingerprint).is_not_in(fingerprints.iter().copied()));
        }
        tx.execute(&stale).await?;

        let mut new_failures = Vec::new();
        let excluded = |c: Failures| Expr::col((Alias::new("excluded"), c));
        for f in &w.failures {
            let upsert = Query::insert()
                .into_table(Failures::Table)
                .columns(FAILURE_COLUMNS)
                .values([
                    Expr::val(Uuid::now_v7()),
                    Expr::val(w.conversation_id),
                    Expr::val(f.message_id),
                    Expr::val(f.kind.as_str()),
                    Expr::val(f.severity.as_str()),
                    Expr::val(f.evidence.as_str()),
                    Expr::val(f.detector.as_str()),
                    Expr::val(f.detector_version),
                    Expr::val(f.fingerprint.as_str()),
                    Expr::val("open"),
                    Expr::val(f.details.clone()),
                    ts(kind, t),
                    ts(kind, t),
                ])
                .map_err(|e| StoreError::Other(e.to_string()))?
                .on_conflict(
                    OnConflict::columns([Failures::ConversationId, Failures::Fingerprint])
                        .value(Failures::MessageId, excluded(Failures::MessageId))
                        .value(Failures::Type, excluded(Failures::Type))
                        .value(Failures::Severity, excluded(Failures::Severity))
                        .value(Failures::Evidence, excluded(Failures::Evidence))
                        .value(Failures::DetectorVersion, excluded(Failures::DetectorVersion))
                        .value(Failures::Details, excluded(Failures::Details))
                        .value(Failures::UpdatedAt, excluded(Failures::UpdatedAt))
                        .to_owned(),
                )
                .returning(Query::returning().columns(FAILURE_COLUMNS))
                .to_owned();
            let row = tx.fetch_optional::<FailureRow>(&upsert).await?;
            if let Some(row) = row.filter(|r| !existing.contains(&r.fingerprint)) {
                new_failures.push(row);
            }
        }

        let count = Query::select()
            .expr(Expr::col(Failures::Id).count())
            .from(Failures::Table)
            .and_where(Expr::col(Failures::ConversationId).eq(w.conversation_id))
            .to_owned();
        let (failure_count,) = tx.fetch_optional::<(i64,)>(&count).await?.unwrap_or((0,));
        // Final only if nothing arrived since the transcript was read.
        let becomes_final = w.is_final && last_message_at == w.seen_last_message_at;
        let mut update = Query::update()
            .table(Conversations::Table)
            .value(Conversations::HealthScore, w.health_score.clamp(0.0, 100.0))
            .value(Conversations::HealthBreakdown, w.health_breakdown.clone())
            .value(Conversations::FailureCount, failure_count)
            .value(Conversations::AvgSentiment, w.avg_sentiment.map(|s| s.clamp(-1.0, 1.0)))
            .value(Conversations::AnalyzedAt, ts(kind, t))
            .and_where(Expr::col(Conversations::Id).eq(w.conversation_id))
            .to_owned();
        let became_final = becomes_final && status == "active";
        if becomes_final {
            update.value(Conversations::Status, "idle");
            if became_final {
                update.value(Conversations::FinalAt, ts(kind, t));
            }
        }
        tx.execute(&update).await?;
        tx.commit().await?;
        Ok(AnalysisOutcome { new_failures, previous_health, became_final, found: true })
    }

    /// The conversation's failures, oldest first.
    pub async fn list_failures(&self, conversation_id: Uuid) -> Result<Vec<FailureRow>, StoreError> {
        let stmt = Query::select()
            .columns(FAILURE_COLUMNS)
            .from(Failures::Table)
            .and_where(Expr::col(Failures::ConversationId).eq(conversation_id))
            .order_by(Failures::CreatedAt, Order::Asc)
            .order_by(Failures::Id, Order::Asc)
            .to_owned();
        self.fetch_all::<FailureRow>(&stmt).await
    }

    /// Sets a failure's status (`open`, `ack`, `resolved`); false when there is no such failure.
    pub async fn set_failure_status(&self, id: Uuid, status: &str) -> Result<bool, StoreError> {
        let stmt = Query::update()
            .table(Failures::Table)
            .value(Failures::Status, status)
            .value(Failures::UpdatedAt, ts(self.kind(), now()))
            .and_where(Expr::col(Failures::Id).eq(id))
            .to_owned();
        Ok(self.execute(&stmt).await? > 0)
    }
}
