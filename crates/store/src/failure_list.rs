//! Failures across all conversations, for the admin API and the dashboard's failure inbox: filters, newest first,
//! keyset (cursor) pages on `(created_at desc, id desc)` so pages never skip or repeat a row, and bulk triage.

use sea_query::{Cond, Expr, ExprTrait, Order, Query};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::analysis::{FailureRow, Failures};
use crate::conversations::Conversations;
use crate::db::Store;
use crate::dialect::{now, ts};
use crate::error::StoreError;

/// What to list. Every set field must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailureListFilter {
    /// The failure type (`user_frustration`, …).
    pub kind: Option<String>,
    /// `open`, `ack` or `resolved`.
    pub status: Option<String>,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: Option<String>,
    /// Detected at or after.
    pub from: Option<OffsetDateTime>,
    /// Detected before.
    pub to: Option<OffsetDateTime>,
    /// Only rows after this position of the newest-first order: the previous page's last `(created_at, id)`.
    pub after: Option<(OffsetDateTime, Uuid)>,
    /// At most this many rows (0: no limit).
    pub limit: u64,
}

/// A failure with what the list shows of its conversation.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FailureListRow {
    #[sqlx(flatten)]
    pub failure: FailureRow,
    /// The conversation's agent.
    pub agent_id: Option<String>,
    /// The id the sender gave the conversation.
    pub external_id: String,
    pub environment: String,
}

const LISTED: [Failures; 13] = [
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

impl Store {
    /// One page of failures (see [`FailureListFilter`]), newest first; ask for `limit + 1` to learn whether more
    /// follow.
    pub async fn list_failures_page(&self, f: &FailureListFilter) -> Result<Vec<FailureListRow>, StoreError> {
        let kind = self.kind();
        let col = |c: Failures| Expr::col((Failures::Table, c));
        let mut q = Query::select();
        q.columns(LISTED.map(|c| (Failures::Table, c)))
            .columns([
                (Conversations::Table, Conversations::AgentId),
                (Conversations::Table, Conversations::ExternalId),
                (Conversations::Table, Conversations::Environment),
            ])
            .from(Failures::Table)
            .inner_join(
                Conversations::Table,
                Expr::col((Conversations::Table, Conversations::Id))
                    .equals((Failures::Table, Failures::ConversationId)),
            );
        if let Some(t) = &f.kind {
            q.and_where(col(Failures::Type).eq(t.as_str()));
        }
        if let Some(s) = &f.status {
            q.and_where(col(Failures::Status).eq(s.as_str()));
        }
        if let Some(s) = &f.severity {
            q.and_where(col(Failures::Severity).eq(s.as_str()));
        }
        if let Some(from) = f.from {
            q.and_where(col(Failures::CreatedAt).gte(ts(kind, from)));
        }
        if let Some(to) = f.to {
            q.and_where(col(Failures::CreatedAt).lt(ts(kind, to)));
        }
        if let Some((at, id)) = f.after {
            // The leading `created_at <= v` is implied by the OR but lets both backends start the index walk there.
            let v = ts(kind, at);
            q.cond_where(
                Cond::all().add(col(Failures::CreatedAt).lte(v.clone())).add(
                    Cond::any()
                        .add(col(Failures::CreatedAt).lt(v.clone()))
                        .add(Cond::all().add(col(Failures::CreatedAt).eq(v)).add(col(Failures::Id).lt(id))),
                ),
            );
        }
        q.order_by((Failures::Table, Failures::CreatedAt), Order::Desc)
            .order_by((Failures::Table, Failures::Id), Order::Desc);
        if f.limit > 0 {
            q.limit(f.limit);
        }
        self.fetch_all::<FailureListRow>(&q).await
    }

    /// Sets the status (`open`, `ack`, `resolved`) of every failure of `ids` in one statement; returns how many
    /// exist (unknown ids are skipped).
    pub async fn set_failures_status(&self, ids: &[Uuid], status: &str) -> Result<u64, StoreError> {
        let mut changed = 0;
        for chunk in ids.chunks(500) {
            let stmt = Query::update()
                .table(Failures::Table)
                .value(Failures::Status, status)
                .value(Failures::UpdatedAt, ts(self.kind(), now()))
                .and_where(Expr::col(Failures::Id).is_in(chunk.iter().copied()))
                .to_owned();
            changed += self.execute(&stmt).await?;
        }
        Ok(changed)
    }
}
