//! Time series of one usage pattern for the dashboard: its member conversations' volume, health and failure rate
//! per hour or day, dated by their last message.

use sea_query::{Alias, Expr, ExprTrait, Func, Order, Query};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::conversations::Conversations;
use crate::db::Store;
use crate::dialect::{Bucket, time_bucket, ts};
use crate::error::StoreError;
use crate::trends::HealthPoint;

#[derive(sea_query::Iden, Clone, Copy)]
enum PatternConversations {
    Table,
    PatternId,
    ConversationId,
}

impl Store {
    /// Per bucket, the pattern's member conversations last active in `[from, to)` (either bound optional): how
    /// many, their mean health and how many have a failure. Buckets without members are absent; oldest first.
    pub async fn pattern_trend(
        &self,
        pattern_id: Uuid,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
        bucket: Bucket,
    ) -> Result<Vec<HealthPoint>, StoreError> {
        let kind = self.kind();
        let col = |c: Conversations| Expr::col((Conversations::Table, c));
        let bigint = |e: Expr| Expr::from(Func::cast_as(e, Alias::new("BIGINT")));
        let mut q = Query::select();
        q.expr_as(time_bucket(kind, bucket, col(Conversations::LastMessageAt)), Alias::new("bucket"))
            .expr_as(col(Conversations::Id).count(), Alias::new("n"))
            .expr_as(Func::avg(col(Conversations::HealthScore)), Alias::new("health"))
            .expr_as(
                bigint(
                    Func::sum(Expr::case(col(Conversations::FailureCount).gt(0), Expr::val(1)).finally(Expr::val(0)))
                        .into(),
                ),
                Alias::new("failing"),
            )
            .from(PatternConversations::Table)
            .inner_join(
                Conversations::Table,
                Expr::col((Conversations::Table, Conversations::Id))
                    .equals((PatternConversations::Table, PatternConversations::ConversationId)),
            )
            .and_where(Expr::col((PatternConversations::Table, PatternConversations::PatternId)).eq(pattern_id));
        if let Some(from) = from {
            q.and_where(col(Conversations::LastMessageAt).gte(ts(kind, from)));
        }
        if let Some(to) = to {
            q.and_where(col(Conversations::LastMessageAt).lt(ts(kind, to)));
        }
        // PostgreSQL: group by the output alias (the expression repeated would be a second, unequal bind).
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
