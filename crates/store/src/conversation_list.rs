//! Listing conversations for the admin API and dashboard (issue 7): filters, a stable sort and keyset (cursor)
//! pagination, so pages never skip or repeat a row while new conversations arrive.

use sea_query::{Alias, Cond, Expr, ExprTrait, Func, Order, Query, SelectStatement};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::analysis::Failures;
use crate::conversations::{CONVERSATION_READ_COLUMNS, ConversationRow, Conversations, Messages};
use crate::db::{Store, StoreKind};
use crate::dialect::ts;
use crate::error::StoreError;

#[derive(sea_query::Iden, Clone, Copy)]
enum PatternConversations {
    Table,
    PatternId,
    ConversationId,
}

/// The order of a listing; every order ends on the id, so it is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConversationSort {
    /// Most recently active first (the default).
    #[default]
    LastMessageDesc,
    LastMessageAsc,
    /// Least healthy first; not yet analysed ones last.
    HealthAsc,
    HealthDesc,
    StartedDesc,
}

/// Where the previous page ended: the sort key of its last row and that row's id.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Time(OffsetDateTime),
    /// The health score, `-1` for not analysed.
    Number(f64),
}

/// What to list. Every set field must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationFilter {
    /// Active in `[from, to)`: its last message at or after `from`, its first before `to`.
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Health within `[health_min, health_max]` (so only analysed conversations).
    pub health_min: Option<f64>,
    pub health_max: Option<f64>,
    pub has_failures: Option<bool>,
    /// Has a failure of this type.
    pub failure_type: Option<String>,
    /// Has a failure with this status (`open`, `ack`, `resolved`).
    pub failure_status: Option<String>,
    pub environment: Option<String>,
    pub source: Option<String>,
    pub agent_id: Option<String>,
    /// Member of this usage pattern.
    pub pattern_id: Option<Uuid>,
    /// The external id equals it, or a message contains it (case-insensitive).
    pub search: Option<String>,
    pub sort: ConversationSort,
    /// Rows after this position of `sort`.
    pub after: Option<(SortKey, Uuid)>,
    pub limit: u64,
}

impl ConversationSort {
    fn descending(self) -> bool {
        matches!(self, Self::LastMessageDesc | Self::HealthDesc | Self::StartedDesc)
    }

    /// The sort key of a row, as the next page's cursor needs it.
    pub fn key_of(self, row: &ConversationRow) -> SortKey {
        match self {
            Self::LastMessageDesc | Self::LastMessageAsc => SortKey::Time(row.last_message_at),
            Self::StartedDesc => SortKey::Time(row.started_at),
            Self::HealthAsc | Self::HealthDesc => SortKey::Number(row.health_score.unwrap_or(-1.0)),
        }
    }
}

/// The sort expression: a column, or the health with "not analysed" as -1 (first when descending is wrong, so
/// ascending health puts them last by using 101 instead). The health fallbacks are SQL literals, not bound
/// values: the expression indexes `idx_conversations_health_asc`/`_desc` (migration 20261129000010) match only
/// this exact text.
fn sort_expr(sort: ConversationSort) -> Expr {
    match sort {
        ConversationSort::LastMessageDesc | ConversationSort::LastMessageAsc => {
            Expr::col((Conversations::Table, Conversations::LastMessageAt))
        }
        ConversationSort::StartedDesc => Expr::col((Conversations::Table, Conversations::StartedAt)),
        ConversationSort::HealthAsc => {
            Func::coalesce([Expr::col((Conversations::Table, Conversations::HealthScore)), Expr::cust("101.0")]).into()
        }
        ConversationSort::HealthDesc => {
            Func::coalesce([Expr::col((Conversations::Table, Conversations::HealthScore)), Expr::cust("-1.0")]).into()
        }
    }
}

fn key_value(kind: StoreKind, sort: ConversationSort, key: &SortKey) -> Expr {
    match key {
        SortKey::Time(t) => ts(kind, *t),
        // "Not analysed" travels as -1 and sorts as 101 when ascending.
        SortKey::Number(n) if *n < 0.0 && sort == ConversationSort::HealthAsc => Expr::val(101.0),
        SortKey::Number(n) => Expr::val(*n),
    }
}

impl Store {
    /// One page of conversations (see [`ConversationFilter`]); ask for `limit + 1` to learn whether more follow.
    pub async fn list_conversations(&self, f: &ConversationFilter) -> Result<Vec<ConversationRow>, StoreError> {
        let stmt = self.conversation_query(f);
        self.fetch_all::<ConversationRow>(&stmt).await
    }

    /// How many conversations match `f` (its sort, cursor and limit ignored).
    pub async fn count_conversations(&self, f: &ConversationFilter) -> Result<i64, StoreError> {
        let mut inner = self.conversation_query(&ConversationFilter { after: None, limit: 0, ..f.clone() });
        inner.clear_order_by();
        inner.reset_limit();
        let stmt = Query::select()
            .expr(Expr::col(Alias::new("id")).count())
            .from_subquery(inner, Alias::new("matching"))
            .to_owned();
        let (n,) = self.fetch_optional::<(i64,)>(&stmt).await?.unwrap_or((0,));
        Ok(n)
    }

    fn conversation_query(&self, f: &ConversationFilter) -> SelectStatement {
        let kind = self.kind();
        let col = |c: Conversations| Expr::col((Conversations::Table, c));
        let mut q = Query::select();
        q.columns(CONVERSATION_READ_COLUMNS.map(|c| (Conversations::Table, c))).from(Conversations::Table);
        if let Some(from) = f.from {
            q.and_where(col(Conversations::LastMessageAt).gte(ts(kind, from)));
        }
        if let Some(to) = f.to {
            q.and_where(col(Conversations::StartedAt).lt(ts(kind, to)));
        }
        if let Some(min) = f.health_min {
            q.and_where(col(Conversations::HealthScore).gte(min));
        }
        if let Some(max) = f.health_max {
            q.and_where(col(Conversations::HealthScore).lte(max));
        }
        match f.has_failures {
            Some(true) => {
                q.and_where(col(Conversations::FailureCount).gt(0));
            }
            Some(false) => {
                q.and_where(col(Conversations::FailureCount).eq(0));
            }
            None => {}
        }
        if f.failure_type.is_some() || f.failure_status.is_some() {
            let mut sub = Query::select();
            sub.expr(Expr::val(1)).from(Failures::Table).and_where(
                Expr::col((Failures::Table, Failures::ConversationId))
                    .equals((Conversations::Table, Conversations::Id)),
            );
            if let Some(t) = &f.failure_type {
                sub.and_where(Expr::col((Failures::Table, Failures::Type)).eq(t.as_str()));
            }
            if let Some(s) = &f.failure_status {
                sub.and_where(Expr::col((Failures::Table, Failures::Status)).eq(s.as_str()));
            }
            q.and_where(Expr::exists(sub));
        }
        if let Some(env) = &f.environment {
            q.and_where(col(Conversations::Environment).eq(env.as_str()));
        }
        if let Some(source) = &f.source {
            q.and_where(col(Conversations::Source).eq(source.as_str()));
        }
        if let Some(agent) = &f.agent_id {
            q.and_where(col(Conversations::AgentId).eq(agent.as_str()));
        }
        if let Some(pattern) = f.pattern_id {
            let sub = Query::select()
                .expr(Expr::val(1))
                .from(PatternConversations::Table)
                .and_where(
                    Expr::col((PatternConversations::Table, PatternConversations::ConversationId))
                        .equals((Conversations::Table, Conversations::Id)),
                )
                .and_where(Expr::col((PatternConversations::Table, PatternConversations::PatternId)).eq(pattern))
                .to_owned();
            q.and_where(Expr::exists(sub));
        }
        if let Some(text) = f.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            // LIKE with the wildcards of the text escaped; lower() on both sides for case-insensitivity on both backends.
            let escaped = text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            let pattern = format!("%{escaped}%");
            let content_like = Func::lower(Expr::col((Messages::Table, Messages::Content)))
                .like(sea_query::LikeExpr::new(pattern).escape('\\'));
            let sub = Query::select()
                .expr(Expr::val(1))
                .from(Messages::Table)
                .and_where(
                    Expr::col((Messages::Table, Messages::ConversationId))
                        .equals((Conversations::Table, Conversations::Id)),
                )
                .and_where(content_like)
                .to_owned();
            q.cond_where(Cond::any().add(col(Conversations::ExternalId).eq(text)).add(Expr::exists(sub)));
        }
        let key = sort_expr(f.sort);
        if let Some((after, id)) = &f.after {
            let v = key_value(kind, f.sort, after);
            let id_col = col(Conversations::Id);
            // The leading `key <= v` (`>=` ascending) is implied by the OR, but it is what lets both backends start
            // the index walk at the cursor instead of filtering every row before it.
            let cond = if f.sort.descending() {
                Cond::all().add(key.clone().lte(v.clone())).add(
                    Cond::any()
                        .add(key.clone().lt(v.clone()))
                        .add(Cond::all().add(key.clone().eq(v)).add(id_col.lt(*id))),
                )
            } else {
                Cond::all().add(key.clone().gte(v.clone())).add(
                    Cond::any()
                        .add(key.clone().gt(v.clone()))
                        .add(Cond::all().add(key.clone().eq(v)).add(id_col.gt(*id))),
                )
            };
            q.cond_where(cond);
        }
        let order = if f.sort.descending() { Order::Desc } else { Order::Asc };
        q.order_by_expr(key, order.clone()).order_by((Conversations::Table, Conversations::Id), order);
        if f.limit > 0 {
            q.limit(f.limit);
        }
        q
    }
}
