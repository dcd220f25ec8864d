//! Time series for the dashboard's charts: conversation health per hour or day.

use sea_query::{Alias, Expr, ExprTrait, Func, Order, Query};
use time::OffsetDateTime;

use crate::conversations::Conversations;
use crate::db::Store;
use crate::dialect::{Bucket, time_bucket, ts};
use crate::error::StoreError;

/// The conversations whose last message fell in one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPoint {
    /// `2026-11-29T14` (hour) or `2026-11-29` (day), UTC.
    pub bucket: String,
    pub conversations: i64,
    /// Mean health of the analysed ones; `None` when none is analysed.
    pub avg_health: Option<f64>,
    /// Conversations with at least one failure.
    pub failing: i64,
}

impl Store {
    /// Health per bucket of the conversations last active in `[from, to)`, dated by their last message. Buckets
    /// without conversations are absent; oldest first.
    pub async fn health_trend(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        bucket: Bucket,
        environment: Option<&str>,
    ) -> Result<Vec<HealthPoint>, StoreError> {
        let kind = self.kind();
        let bigint = |e: Expr| Expr::from(Func::cast_as(e, Alias::new("BIGINT")));
        let mut q = Query::select();
        q.expr_as(time_bucket(kind, bucket, Expr::col(Conversations::LastMessageAt)), Alias::new("bucket"))
            .expr_as(Expr::col(Conversations::Id).count(), Alias::new("n"))
            .expr_as(Func::avg(Expr::col(Conversations::HealthScore)), Alias::new("health"))
            .expr_as(
                bigint(
                    Func::sum(
                        Expr::case(Expr::col(Conversations::FailureCount).gt(0), Expr::val(1)).finally(Expr::val(0)),
                    )
                    .into(),
                ),
                Alias::new("failing"),
            )
            .from(Conversations::Table)
            .and_where(Expr::col(Conversations::LastMessageAt).gte(ts(kind, from)))
            .and_where(Expr::col(Conversations::LastMessageAt).lt(ts(kind, to)));
        if let Some(env) = environment {
            q.and_where(Expr::col(Conversations::Environment).eq(env));
        }
        q.add_group_by([Expr::col(Alias::new("bucket"))]).order_by(Alias::new("bucket"), Order::Asc);
        let rows = self.fetch_all::<(String, i64, Option<f64>, i64)>(&q).await?;
        Ok(rows
            .into_iter()
            .map(|(bucket, conversations, avg_health, failing)| HealthPoint {
                bucket,
                conversations,
                avg_health,
                failing,
            })
            .collect())
    }
}
