//! Aggregates for Sensei's analytics API and dashboard (issue 7): period totals over conversations and failure
//! counts per type and time bucket.

use sea_query::{Alias, Expr, ExprTrait, Func, Order, Query};
use time::OffsetDateTime;

use crate::analysis::Failures;
use crate::conversations::{Conversations, Messages};
use crate::db::Store;
pub use crate::dialect::Bucket;
use crate::dialect::{time_bucket, ts};
use crate::error::StoreError;

/// Totals of the conversations active in a period.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PeriodStats {
    pub conversations: i64,
    /// Messages of those conversations (all of them, also those before the period).
    pub messages: i64,
    pub analysed: i64,
    /// Mean health of the analysed ones.
    pub avg_health: Option<f64>,
    /// Conversations with at least one failure.
    pub failing: i64,
}

/// Failures of one type in one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureCount {
    /// `2026-11-29T14` (hour) or `2026-11-29` (day), UTC.
    pub bucket: String,
    pub kind: String,
    pub count: i64,
}

impl Store {
    /// Totals of the conversations active in `[from, to)` (last message at or after `from`, started before `to`),
    /// optionally of one environment.
    pub async fn period_stats(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        environment: Option<&str>,
    ) -> Result<PeriodStats, StoreError> {
        let kind = self.kind();
        let col = |c: Conversations| Expr::col(c);
        // SUM of a BIGINT is NUMERIC on PostgreSQL: the sums are cast back (harmless on SQLite).
        let bigint = |e: Expr| Expr::from(Func::cast_as(e, Alias::new("BIGINT")));
        let mut q = Query::select();
        q.expr(Expr::col(Conversations::Id).count())
            .expr(bigint(Func::coalesce([Func::sum(col(Conversations::MessageCount)).into(), Expr::val(0)]).into()))
            .expr(Expr::col(Conversations::HealthScore).count())
            .expr(Func::avg(col(Conversations::HealthScore)))
            .expr(bigint(
                Func::coalesce([
                    Func::sum(Expr::case(col(Conversations::FailureCount).gt(0), Expr::val(1)).finally(Expr::val(0)))
                        .into(),
                    Expr::val(0),
                ])
                .into(),
            ))
            .from(Conversations::Table)
            .and_where(col(Conversations::LastMessageAt).gte(ts(kind, from)))
            .and_where(col(Conversations::StartedAt).lt(ts(kind, to)));
        if let Some(env) = environment {
            q.and_where(col(Conversations::Environment).eq(env));
        }
        let row = self.fetch_optional::<(i64, i64, i64, Option<f64>, i64)>(&q).await?;
        let (conversations, messages, analysed, avg_health, failing) = row.unwrap_or_default();
        Ok(PeriodStats { conversations, messages, analysed, avg_health, failing })
    }

    /// Failures per type and bucket in `[from, to)`, dated by the message they point at (else the conversation's
    /// last message), so a trend shows when things went wrong, not when they were analysed. Oldest bucket first.
    pub async fn failure_counts(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        bucket: Bucket,
        environment: Option<&str>,
    ) -> Result<Vec<FailureCount>, StoreError> {
        let kind = self.kind();
        let when = Func::coalesce([
            Expr::col((Messages::Table, Messages::CreatedAt)),
            Expr::col((Conversations::Table, Conversations::LastMessageAt)),
        ]);
        let when: Expr = when.into();
        let b = time_bucket(kind, bucket, when.clone());
        let mut q = Query::select();
        q.expr_as(b, Alias::new("bucket"))
            .expr_as(Expr::col((Failures::Table, Failures::Type)), Alias::new("kind"))
            .expr_as(Expr::col((Failures::Table, Failures::Id)).count(), Alias::new("n"))
            .from(Failures::Table)
            .inner_join(
                Conversations::Table,
                Expr::col((Conversations::Table, Conversations::Id))
                    .equals((Failures::Table, Failures::ConversationId)),
            )
            .left_join(
                Messages::Table,
                Expr::col((Messages::Table, Messages::Id)).equals((Failures::Table, Failures::MessageId)),
            )
            .and_where(when.clone().gte(ts(kind, from)))
            .and_where(when.lt(ts(kind, to)))
            // Implied by the line above (a message is never after its conversation's last one), but indexable: a
            // short range reads the conversations active since `from` and their failures, not every failure.
            .and_where(Expr::col((Conversations::Table, Conversations::LastMessageAt)).gte(ts(kind, from)));
        if let Some(env) = environment {
            q.and_where(Expr::col((Conversations::Table, Conversations::Environment)).eq(env));
        }
        // By the output names: the bucket expression carries bound parameters, and PostgreSQL would not see a
        // second copy of it (with its own placeholders) as the same expression.
        q.add_group_by([Expr::col(Alias::new("bucket")), Expr::col(Alias::new("kind"))])
            .order_by(Alias::new("bucket"), Order::Asc)
            .order_by(Alias::new("kind"), Order::Asc);
        let rows = self.fetch_all::<(String, String, i64)>(&q).await?;
        Ok(rows.into_iter().map(|(bucket, kind, count)| FailureCount { bucket, kind, count }).collect())
    }
}
