//! Writing a conversation's analysis (issue 6) in one transaction: message sentiment, failures (upserted by
//! fingerprint so re-runs never duplicate and keep a status an admin set), and the conversation's health,
//! failure count and final state.

use std::collections::{HashMap, HashSet};

use sea_query::{Alias, Expr, ExprTrait, Func, OnConflict, Order, Query, QueryStatementBuilder};
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
    OccurredAt,
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
    /// Stores an analysis in one transaction (see the module doc), set-based: a locking read of the
    /// conversation and of its failures, then per [`crate::ingest::rows_per_statement`] rows one CASE update of
    /// message sentiment, one delete of stale open failures (by id) and one multi-row failure upsert, and the
    /// conversation update (its failure count known from the read and the upsert, not counted again).
    ///
    /// A failure is new when the upsert inserted it: its row comes back with the id generated here (an update
    /// keeps the stored id). Failures of `w` sharing a fingerprint are one failure, written with the last one's
    /// values (what consecutive upserts would leave), at the first one's place in `new_failures`.
    pub async fn save_analysis(&self, w: &AnalysisWrite) -> Result<AnalysisOutcome, StoreError> {
        let kind = self.kind();
        let t = now();
        let per_statement = crate::ingest::rows_per_statement(kind);
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
        for chunk in w.sentiments.chunks(per_statement) {
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

        // The conversation's failures, locked (PostgreSQL; SQLite's BEGIN IMMEDIATE already excludes writers) so an
        // admin's status change cannot slip between this read and the delete. Stale ones are deleted by id: a
        // `status = 'open'` term would make SQLite scan every open failure through the status index.
        let failures = distinct_fingerprints(&w.failures);
        let found: HashSet<&str> = failures.iter().map(|f| f.fingerprint.as_str()).collect();
        let existing = Query::select()
            .columns([Failures::Id, Failures::Fingerprint, Failures::Status])
            .from(Failures::Table)
            .and_where(Expr::col(Failures::ConversationId).eq(w.conversation_id))
            .lock(sea_query::LockType::Update)
            .to_owned();
        let (mut stale, mut kept) = (Vec::new(), 0usize);
        for (id, fingerprint, status) in tx.fetch_all::<(Uuid, String, String)>(&existing).await? {
            if found.contains(fingerprint.as_str()) {
                continue;
            }
            if status == "open" {
                stale.push(id);
            } else {
                kept += 1;
            }
        }
        for chunk in stale.chunks(per_statement) {
            let delete = Query::delete()
                .from_table(Failures::Table)
                .and_where(Expr::col(Failures::Id).is_in(chunk.iter().copied()))
                .to_owned();
            tx.execute(&delete).await?;
        }

        let mut new_failures = Vec::new();
        for chunk in failures.chunks(per_statement) {
            let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
            let upsert = failure_upsert(kind, t, last_message_at, w.conversation_id, &ids, chunk)?;
            // RETURNING gives no order: the new rows are put back in the order of the write.
            let mut inserted: HashMap<Uuid, FailureRow> =
                tx.fetch_all::<FailureRow>(&upsert).await?.into_iter().map(|r| (r.id, r)).collect();
            new_failures.extend(ids.iter().filter_map(|id| inserted.remove(id)));
        }

        // Every fingerprint found is stored now, besides the admin-set failures kept above.
        let failure_count = i64::try_from(failures.len() + kept).unwrap_or(i64::MAX);
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

    /// The failure with this id, if any.
    pub async fn get_failure(&self, id: Uuid) -> Result<Option<FailureRow>, StoreError> {
        let stmt = Query::select()
            .columns(FAILURE_COLUMNS)
            .from(Failures::Table)
            .and_where(Expr::col(Failures::Id).eq(id))
            .to_owned();
        self.fetch_optional::<FailureRow>(&stmt).await
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

/// One failure per fingerprint: the last one's values at the first one's place.
fn distinct_fingerprints(failures: &[FailureWrite]) -> Vec<&FailureWrite> {
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(failures.len());
    let mut out: Vec<&FailureWrite> = Vec::with_capacity(failures.len());
    for f in failures {
        match at.get(f.fingerprint.as_str()) {
            Some(&i) => out[i] = f,
            None => {
                at.insert(f.fingerprint.as_str(), out.len());
                out.push(f);
            }
        }
    }
    out
}

/// One multi-row upsert of failures (distinct fingerprints) by (conversation, fingerprint), returning every row
/// it wrote. A conflict updates what the detector says and keeps the id, status and creation time. A failure
/// occurred when the message it points at was written, else at the conversation's last message (`last_message_at`).
fn failure_upsert(
    kind: crate::StoreKind,
    t: OffsetDateTime,
    last_message_at: OffsetDateTime,
    conversation_id: Uuid,
    ids: &[Uuid],
    failures: &[&FailureWrite],
) -> Result<sea_query::InsertStatement, StoreError> {
    let excluded = |c: Failures| Expr::col((Alias::new("excluded"), c));
    let mut upsert = Query::insert();
    upsert.into_table(Failures::Table).columns(FAILURE_COLUMNS.into_iter().chain([Failures::OccurredAt]));
    for (id, f) in ids.iter().zip(failures) {
        let occurred_at = match f.message_id {
            Some(message_id) => {
                let message_time = Query::select()
                    .column(Messages::CreatedAt)
                    .from(Messages::Table)
                    .and_where(Expr::col(Messages::Id).eq(message_id))
                    .to_owned();
                Expr::from(Func::coalesce([
                    Expr::SubQuery(None, Box::new(message_time.into_sub_query_statement())),
                    ts(kind, last_message_at),
                ]))
            }
            None => ts(kind, last_message_at),
        };
        upsert
            .values([
                Expr::val(*id),
                Expr::val(conversation_id),
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
                occurred_at,
            ])
            .map_err(|e| StoreError::Other(e.to_string()))?;
    }
    upsert
        .on_conflict(
            OnConflict::columns([Failures::ConversationId, Failures::Fingerprint])
                .value(Failures::MessageId, excluded(Failures::MessageId))
                .value(Failures::Type, excluded(Failures::Type))
                .value(Failures::Severity, excluded(Failures::Severity))
                .value(Failures::Evidence, excluded(Failures::Evidence))
                .value(Failures::DetectorVersion, excluded(Failures::DetectorVersion))
                .value(Failures::Details, excluded(Failures::Details))
                .value(Failures::UpdatedAt, excluded(Failures::UpdatedAt))
                .value(Failures::OccurredAt, excluded(Failures::OccurredAt))
                .to_owned(),
        )
        .returning(Query::returning().columns(FAILURE_COLUMNS));
    Ok(upsert)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use mentorfy_test_support::{TestDb, both_backends};
    use serde_json::json;

    use super::*;
    use crate::conversations::NewConversation;

    both_backends!(failures_beyond_one_statement_are_upserted_by_fingerprint_and_keep_admin_status);

    fn failure(n: usize, evidence: &str) -> FailureWrite {
        FailureWrite {
            message_id: None,
            kind: "user_frustration".into(),
            severity: "medium".into(),
            evidence: evidence.into(),
            detector: "test".into(),
            detector_version: 1,
            fingerprint: format!("test:user_frustration:{n}"),
            details: json!({"n": n}),
        }
    }

    fn write(conversation_id: Uuid, seen: OffsetDateTime, failures: Vec<FailureWrite>) -> AnalysisWrite {
        AnalysisWrite {
            conversation_id,
            seen_last_message_at: seen,
            sentiments: Vec::new(),
            failures,
            health_score: 50.0,
            health_breakdown: json!({}),
            avg_sentiment: None,
            is_final: false,
        }
    }

    /// More failures than one multi-row statement holds on either backend (200 on SQLite, 50 on PostgreSQL).
    async fn failures_beyond_one_statement_are_upserted_by_fingerprint_and_keep_admin_status(db: TestDb) {
        let store = Store::connect(&db.url, 4).await.unwrap();
        store.migrate().await.unwrap();
        let conv = store
            .upsert_conversation(NewConversation {
                source: "api",
                environment: "test",
                external_id: "many-failures",
                org_id: None,
                agent_id: None,
                user_id: None,
                metadata: json!({}),
            })
            .await
            .unwrap();
        let n = 2 * crate::ingest::rows_per_statement(crate::StoreKind::Sqlite) + 7;
        let first: Vec<FailureWrite> = (0..n).map(|i| failure(i, "first")).collect();
        let out = store.save_analysis(&write(conv.id, conv.last_message_at, first.clone())).await.unwrap();
        assert!(out.found && !out.became_final && out.previous_health.is_none());
        let fingerprints = |rows: &[FailureRow]| rows.iter().map(|r| r.fingerprint.clone()).collect::<Vec<_>>();
        assert_eq!(fingerprints(&out.new_failures), first.iter().map(|f| f.fingerprint.clone()).collect::<Vec<_>>());
        let stored = store.list_failures(conv.id).await.unwrap();
        assert_eq!(stored.len(), n);
        let row = store.get_conversation(conv.id).await.unwrap().unwrap();
        assert_eq!(row.failure_count, n as i64);

        // An admin acknowledges two; the next run finds failures 0..100 again (new evidence, one duplicated
        // fingerprint) and two new ones: stale open ones go, the acknowledged ones stay with their status.
        assert!(store.set_failure_status(stored[3].id, "ack").await.unwrap());
        assert!(store.set_failure_status(stored[n - 1].id, "resolved").await.unwrap());
        let mut second: Vec<FailureWrite> = (0..100).map(|i| failure(i, "second")).collect();
        second.push(failure(5, "second, again"));
        second.extend([failure(n + 1, "new"), failure(n, "new")]);
        let out = store.save_analysis(&write(conv.id, conv.last_message_at, second.clone())).await.unwrap();
        assert_eq!(out.previous_health, Some(50.0));
        assert_eq!(
            fingerprints(&out.new_failures),
            vec![format!("test:user_frustration:{}", n + 1), format!("test:user_frustration:{n}")]
        );
        let after = store.list_failures(conv.id).await.unwrap();
        assert_eq!(after.len(), 100 + 2 + 1, "0..100, the two new ones, and the resolved one");
        let by_fp = |fp: &str| after.iter().find(|r| r.fingerprint == fp).unwrap();
        assert_eq!(by_fp("test:user_frustration:3").status, "ack");
        assert_eq!(by_fp("test:user_frustration:3").id, stored[3].id, "updated in place");
        assert_eq!(by_fp("test:user_frustration:3").evidence, "second");
        assert_eq!(by_fp("test:user_frustration:5").evidence, "second, again", "the last write of a fingerprint wins");
        assert_eq!(by_fp(&stored[n - 1].fingerprint).status, "resolved");
        let row = store.get_conversation(conv.id).await.unwrap().unwrap();
        assert_eq!(row.failure_count, after.len() as i64);

        // The same run again changes nothing and reports nothing new.
        let out = store.save_analysis(&write(conv.id, conv.last_message_at, second)).await.unwrap();
        assert!(out.new_failures.is_empty());
        let again = store.list_failures(conv.id).await.unwrap();
        assert_eq!(again.iter().map(|r| r.id).collect::<Vec<_>>(), after.iter().map(|r| r.id).collect::<Vec<_>>());

        // No failures at all: every open one goes, the admin-set ones stay and are counted.
        let out = store.save_analysis(&write(conv.id, conv.last_message_at, Vec::new())).await.unwrap();
        assert!(out.new_failures.is_empty());
        let left = store.list_failures(conv.id).await.unwrap();
        assert_eq!(left.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(), vec!["ack", "resolved"]);
        assert_eq!(store.get_conversation(conv.id).await.unwrap().unwrap().failure_count, 2);
        store.close().await;
    }
}
