//! Aggregates for Sensei's analytics API and dashboard (issue 7): period totals over conversations and failure
//! counts per type and time bucket. Whole hours come from the hourly rollups where they are current, the rest from
//! the raw tables (`rollups.rs`); both give the same sums, so the answer does not depend on which was used.

use std::collections::BTreeMap;

use sea_query::{Alias, Expr, ExprTrait, Func, Query, SelectStatement, SimpleExpr};
use time::OffsetDateTime;

use crate::analysis::Failures;
use crate::conversations::Conversations;
use crate::db::Store;
pub use crate::dialect::Bucket;
use crate::dialect::{time_bucket, ts};
use crate::error::StoreError;
use crate::rollups::{ConversationHours, FailureHours, ReadPlan, rollup_bucket};

/// Totals of the conversations whose last message fell in a period.
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

/// Conversation totals as sums, so rollup hours and raw spans add up.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Sums {
    pub conversations: i64,
    pub messages: i64,
    pub analysed: i64,
    pub health_sum: f64,
    pub failing: i64,
}

impl Sums {
    fn add(&mut self, (conversations, messages, analysed, health_sum, failing): (i64, i64, i64, f64, i64)) {
        self.conversations += conversations;
        self.messages += messages;
        self.analysed += analysed;
        self.health_sum += health_sum;
        self.failing += failing;
    }

    pub fn avg_health(&self) -> Option<f64> {
        (self.analysed > 0).then(|| self.health_sum / self.analysed as f64)
    }
}

/// SUM of a BIGINT is NUMERIC on PostgreSQL: sums are cast back (harmless on SQLite), and NULL (no rows) is 0.
fn int_sum(e: impl Into<SimpleExpr>) -> SimpleExpr {
    let sum: SimpleExpr = Func::coalesce([Func::sum(e.into()).into(), Expr::val(0)]).into();
    Func::cast_as(sum, Alias::new("BIGINT")).into()
}

fn real_sum(e: impl Into<SimpleExpr>) -> SimpleExpr {
    let sum: SimpleExpr = Func::coalesce([Func::sum(e.into()).into(), Expr::val(0.0)]).into();
    Func::cast_as(sum, Alias::new("DOUBLE PRECISION")).into()
}

/// Groups by the output column `bucket` when there is one. By the output name: the bucket expression carries bound
/// parameters, and PostgreSQL would not see a second copy of it (with its own placeholders) as the same expression.
fn select_bucket(q: &mut SelectStatement, bucket: Option<SimpleExpr>) {
    if let Some(b) = bucket {
        q.expr_as(b, Alias::new("bucket"));
        q.add_group_by([Expr::col(Alias::new("bucket"))]);
    }
}

impl Store {
    /// Totals of the conversations whose last message is in `[from, to)`, optionally of one environment.
    pub async fn period_stats(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        environment: Option<&str>,
    ) -> Result<PeriodStats, StoreError> {
        let sums = self.conversation_sums(from, to, None, environment).await?.remove("").unwrap_or_default();
        Ok(PeriodStats {
            conversations: sums.conversations,
            messages: sums.messages,
            analysed: sums.analysed,
            avg_health: sums.avg_health(),
            failing: sums.failing,
        })
    }

    /// Conversation sums of `[from, to)` per bucket label (one entry, `""`, without a bucket), dated by the last
    /// message: from the rollups for the hours they answer, from `conversations` for the rest.
    pub(crate) async fn conversation_sums(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        bucket: Option<Bucket>,
        environment: Option<&str>,
    ) -> Result<BTreeMap<String, Sums>, StoreError> {
        let kind = self.kind();
        let plan = self.read_plan(from, to).await?;
        let mut out: BTreeMap<String, Sums> = BTreeMap::new();
        let mut take = |rows: Vec<(String, i64, i64, i64, f64, i64)>| {
            for (label, a, b, c, d, e) in rows {
                out.entry(label).or_default().add((a, b, c, d, e));
            }
        };
        let label = |q: &mut SelectStatement, b: Option<SimpleExpr>| match b {
            Some(b) => select_bucket(q, Some(b)),
            None => {
                q.expr_as(Expr::val(""), Alias::new("bucket"));
            }
        };

        if plan.rollup.is_some() {
            let mut q = Query::select();
            label(&mut q, bucket.map(rollup_bucket));
            q.expr(int_sum(Expr::col(ConversationHours::Conversations)))
                .expr(int_sum(Expr::col(ConversationHours::Messages)))
                .expr(int_sum(Expr::col(ConversationHours::Analysed)))
                .expr(real_sum(Expr::col(ConversationHours::HealthSum)))
                .expr(int_sum(Expr::col(ConversationHours::Failing)))
                .from(ConversationHours::Table);
            plan.restrict(&mut q);
            if let Some(env) = environment {
                q.and_where(Expr::col(ConversationHours::Environment).eq(env));
            }
            take(self.fetch_all(&q).await?);
        }
        for &(a, b) in &plan.raw {
            let lma = Expr::col(Conversations::LastMessageAt);
            let mut q = Query::select();
            label(&mut q, bucket.map(|bk| time_bucket(kind, bk, lma.clone())));
            q.expr(Expr::cust("COUNT(*)"))
                .expr(int_sum(Expr::col(Conversations::MessageCount)))
                .expr(Expr::col(Conversations::HealthScore).count())
                .expr(real_sum(Expr::col(Conversations::HealthScore)))
                .expr(int_sum(
                    Expr::case(Expr::col(Conversations::FailureCount).gt(0), Expr::val(1)).finally(Expr::val(0)),
                ))
                .from(Conversations::Table)
                .and_where(lma.clone().gte(ts(kind, a)))
                .and_where(lma.lt(ts(kind, b)));
            if let Some(env) = environment {
                q.and_where(Expr::col(Conversations::Environment).eq(env));
            }
            take(self.fetch_all(&q).await?);
        }
        out.retain(|_, s| s.conversations > 0 || bucket.is_none());
        Ok(out)
    }

    /// Failures per type and bucket in `[from, to)`, dated by when they occurred (the message they point at, else
    /// the conversation's last message), so a trend shows when things went wrong, not when they were analysed.
    /// Oldest bucket first, then by type.
    pub async fn failure_counts(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        bucket: Bucket,
        environment: Option<&str>,
    ) -> Result<Vec<FailureCount>, StoreError> {
        let kind = self.kind();
        let plan: ReadPlan = self.read_plan(from, to).await?;
        let mut out: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut take = |rows: Vec<(String, String, i64)>| {
            for (label, kind, n) in rows {
                *out.entry((label, kind)).or_default() += n;
            }
        };
        if plan.rollup.is_some() {
            let mut q = Query::select();
            select_bucket(&mut q, Some(rollup_bucket(bucket)));
            q.expr_as(Expr::col(FailureHours::Type), Alias::new("kind"))
                .expr(int_sum(Expr::col(FailureHours::Failures)))
                .from(FailureHours::Table)
                .add_group_by([Expr::col(Alias::new("kind"))]);
            plan.restrict(&mut q);
            if let Some(env) = environment {
                q.and_where(Expr::col(FailureHours::Environment).eq(env));
            }
            take(self.fetch_all(&q).await?);
        }
        for &(a, b) in &plan.raw {
            let occurred = Expr::col((Failures::Table, Failures::OccurredAt));
            let mut q = Query::select();
            select_bucket(&mut q, Some(time_bucket(kind, bucket, occurred.clone())));
            q.expr_as(Expr::col((Failures::Table, Failures::Type)), Alias::new("kind"))
                .expr(Expr::col((Failures::Table, Failures::Id)).count())
                .from(Failures::Table)
                .and_where(occurred.clone().gte(ts(kind, a)))
                .and_where(occurred.lt(ts(kind, b)))
                .add_group_by([Expr::col(Alias::new("kind"))]);
            if let Some(env) = environment {
                q.inner_join(
                    Conversations::Table,
                    Expr::col((Conversations::Table, Conversations::Id))
                        .equals((Failures::Table, Failures::ConversationId)),
                )
                .and_where(Expr::col((Conversations::Table, Conversations::Environment)).eq(env));
            }
            take(self.fetch_all(&q).await?);
        }
        Ok(out
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .map(|((bucket, kind), count)| FailureCount { bucket, kind, count })
            .collect())
    }
}
