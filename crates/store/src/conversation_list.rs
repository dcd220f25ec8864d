//! Listing conversations for the admin API and dashboard (issue 7): filters, a stable sort and keyset (cursor)
//! pagination, so pages never skip or repeat a row while new conversations arrive.

use sea_query::{Alias, Cond, Expr, ExprTrait, Func, Order, Query, SelectStatement, UnionType};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::analysis::Failures;
use crate::conversations::{CONVERSATION_READ_COLUMNS, ConversationRow, Conversations, Messages};
use crate::db::{Store, StoreKind};
use crate::dialect::{text_candidates, text_candidates_sample, ts};
use crate::error::StoreError;
use crate::text_signature::{self, query_mask};

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

/// Below this many candidate messages in SQLite's trigram index, a search goes straight to the index plan (a text
/// that rare would walk the whole signature window to find fewer matches than a page).
pub(crate) const FEW_CANDIDATES: u64 = 500;

/// Rows up to and including `(key, id)` in `sort`'s order (the end of a window; the cursor's condition is the
/// other side). The leading `key >= v` (`<=` ascending) bounds the index walk.
fn up_to(kind: StoreKind, sort: ConversationSort, key: &SortKey, id: Uuid) -> Cond {
    let k = sort_expr(sort);
    let v = key_value(kind, sort, key);
    let id_col = Expr::col((Conversations::Table, Conversations::Id));
    if sort.descending() {
        Cond::all()
            .add(k.clone().gte(v.clone()))
            .add(Cond::any().add(k.clone().gt(v.clone())).add(Cond::all().add(k.eq(v)).add(id_col.gte(id))))
    } else {
        Cond::all()
            .add(k.clone().lte(v.clone()))
            .add(Cond::any().add(k.clone().lt(v.clone())).add(Cond::all().add(k.eq(v)).add(id_col.lte(id))))
    }
}

/// How a text search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SearchPlan {
    /// Walk the conversations in list order and probe each one's messages with the `LIKE` (`EXISTS`): fast when
    /// many conversations match, a scan of every message when few do.
    Probe,
    /// Find the matching messages through the trigram index, then their conversations: cost grows with the number
    /// of matching messages, whatever the order and page.
    Index,
    /// [`SearchPlan::Probe`], but only conversations whose text signature holds every trigram bit of the text
    /// (or that have no signature yet) are probed: the others cannot match. Run over a window of the list
    /// (up to [`Store::signature_window_end`]).
    Signature,
}

/// How many conversations, in list order, the signature plan reads at most (bit tests on the conversation row,
/// a message probe for the few that pass) before the list falls back to the other plans: a text this rare
/// (fewer matches than a page in the window) is cheaper to find through the trigram index.
const SIGNATURE_WINDOW: u64 = 2000;

/// Below this many candidate messages the index plan is cheaper than the probe (measured at 100,000
/// conversations, docs/PERFORMANCE.md "Text search at 100,000 conversations").
const INDEX_PLAN_MAX_CANDIDATES: u64 = 4000;

/// The text of a search, trimmed; `None` when there is nothing to search.
fn search_text(f: &ConversationFilter) -> Option<&str> {
    f.search.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

/// Conversations whose external id equals `text` or with a message whose `lower(content)` contains the lower-cased
/// `text` (`LIKE` with its wildcards escaped, so `%` and `_` are literal; case-insensitive on both backends).
///
/// [`SearchPlan::Index`] (texts of 3 or more characters; migration 20261129000012,
/// [`crate::dialect::text_candidates`]): `id IN (matching messages' conversation ids UNION ALL the conversation with
/// that external id)`, every candidate message re-tested with the same `LIKE`, so the result is the scan's.
/// [`SearchPlan::Probe`]: `external_id = text OR EXISTS (a message of it LIKE …)`.
fn search_condition(kind: StoreKind, text: &str, plan: SearchPlan) -> Cond {
    let lowered = text.to_lowercase();
    let escaped = lowered.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let content_like = Func::lower(Expr::col((Messages::Table, Messages::Content)))
        .like(sea_query::LikeExpr::new(format!("%{escaped}%")).escape('\\'));
    let external_id = Expr::col((Conversations::Table, Conversations::ExternalId)).eq(text);
    match plan {
        SearchPlan::Index => {
            let mut matching = Query::select();
            matching.column((Messages::Table, Messages::ConversationId)).from(Messages::Table);
            let rowid = Expr::col((Messages::Table, Alias::new("rowid")));
            if let Some(c) = text_candidates(kind, rowid, &lowered) {
                matching.and_where(c);
            }
            matching.and_where(content_like);
            let by_external_id = Query::select()
                .column((Conversations::Table, Conversations::Id))
                .from(Conversations::Table)
                .and_where(external_id)
                .to_owned();
            matching.union(UnionType::All, by_external_id);
            Cond::all().add(Expr::col((Conversations::Table, Conversations::Id)).in_subquery(matching))
        }
        SearchPlan::Probe | SearchPlan::Signature => {
            let sub = Query::select()
                .expr(Expr::val(1))
                .from(Messages::Table)
                .and_where(
                    Expr::col((Messages::Table, Messages::ConversationId))
                        .equals((Conversations::Table, Conversations::Id)),
                )
                .and_where(content_like)
                .to_owned();
            let mut probe = Cond::all();
            if plan == SearchPlan::Signature
                && let Some(mask) = query_mask(&lowered)
            {
                let mut bits = Cond::all();
                for (word, m) in mask {
                    bits = bits.add(Expr::col((Conversations::Table, text_signature::column(word))).bit_and(m).eq(m));
                }
                let unknown = Expr::col((Conversations::Table, Alias::new("text_sig_ready"))).eq(false);
                probe = probe.add(Cond::any().add(unknown).add(bits));
            }
            Cond::any().add(external_id).add(probe.add(Expr::exists(sub)))
        }
    }
}

impl Store {
    /// One page of conversations (see [`ConversationFilter`]); ask for `limit + 1` to learn whether more follow.
    ///
    /// A text search with a trigram mask ([`query_mask`]) first tries the signature plan over the first
    /// [`SIGNATURE_WINDOW`] conversations in list order (the walk stops at the page's last match or at the
    /// window's end): if that fills the page, it is the page (any later match sorts after every row of the
    /// window), and so it is when the whole list fit in the window. Otherwise the search runs over the whole
    /// list as before.
    pub async fn list_conversations(&self, f: &ConversationFilter) -> Result<Vec<ConversationRow>, StoreError> {
        if f.limit > 0
            && f.limit < SIGNATURE_WINDOW
            && let Some(text) = search_text(f)
            && query_mask(&text.to_lowercase()).is_some()
            && !self.few_index_candidates(text).await?
        {
            let end = self.signature_window_end(f).await?;
            let rows = self.fetch_all::<ConversationRow>(&self.signature_window_query(f, end.as_ref())).await?;
            // A full page, or every conversation of the list was in the window: the page is complete.
            if rows.len() as u64 >= f.limit || end.is_none() {
                return Ok(rows);
            }
        }
        let plan = self.search_plan(f).await?;
        let stmt = self.conversation_query(f, plan);
        self.fetch_all::<ConversationRow>(&stmt).await
    }

    /// How many conversations match `f` (its sort, cursor and limit ignored).
    pub async fn count_conversations(&self, f: &ConversationFilter) -> Result<i64, StoreError> {
        // Every match is counted, so the plan that reads only the matches (when the text has a trigram).
        let plan =
            if search_text(f).is_some_and(|t| t.chars().count() >= 3) { SearchPlan::Index } else { SearchPlan::Probe };
        let mut inner = self.conversation_query(&ConversationFilter { after: None, limit: 0, ..f.clone() }, plan);
        inner.clear_order_by();
        inner.reset_limit();
        let stmt = Query::select()
            .expr(Expr::col(Alias::new("id")).count())
            .from_subquery(inner, Alias::new("matching"))
            .to_owned();
        let (n,) = self.fetch_optional::<(i64,)>(&stmt).await?.unwrap_or((0,));
        Ok(n)
    }

    /// The plan for one page of `f`'s search. A text shorter than a trigram has no index: [`SearchPlan::Probe`].
    /// Otherwise [`SearchPlan::Index`], except on SQLite when the FTS5 index holds at least
    /// [`INDEX_PLAN_MAX_CANDIDATES`] candidates (counted from the index alone, up to that cap): a text that common
    /// fills a page within the first conversations the probe walks, while the index plan would read them all.
    /// PostgreSQL always takes the index plan (its per-conversation probe turns into a trigram index scan per
    /// conversation).
    async fn search_plan(&self, f: &ConversationFilter) -> Result<SearchPlan, StoreError> {
        let Some(text) = search_text(f).filter(|t| t.chars().count() >= 3) else { return Ok(SearchPlan::Probe) };
        let Some(sample) = text_candidates_sample(self.kind(), &text.to_lowercase(), INDEX_PLAN_MAX_CANDIDATES) else {
            return Ok(SearchPlan::Index);
        };
        let (n,) = self.fetch_optional::<(i64,)>(&sample).await?.unwrap_or((0,));
        Ok(if u64::try_from(n).unwrap_or(0) >= INDEX_PLAN_MAX_CANDIDATES {
            SearchPlan::Probe
        } else {
            SearchPlan::Index
        })
    }

    /// Whether the trigram index holds fewer than [`FEW_CANDIDATES`] candidate messages for `text` (SQLite, where
    /// the index counts them without reading the rows): the index plan then reads less than any walk. `false`
    /// on PostgreSQL, where counting means rechecking the rows.
    async fn few_index_candidates(&self, text: &str) -> Result<bool, StoreError> {
        let cap = self.index_first_below;
        let Some(sample) = text_candidates_sample(self.kind(), &text.to_lowercase(), cap).filter(|_| cap > 0) else {
            return Ok(false);
        };
        let (n,) = self.fetch_optional::<(i64,)>(&sample).await?.unwrap_or((0,));
        Ok(u64::try_from(n).unwrap_or(0) < cap)
    }

    /// The last conversation of the signature plan's window: the [`SIGNATURE_WINDOW`]-th of `f`'s list (filters,
    /// cursor and order, no text), or `None` when the list is shorter. An `OFFSET` walk of the sort index.
    async fn signature_window_end(&self, f: &ConversationFilter) -> Result<Option<ConversationRow>, StoreError> {
        let mut q =
            self.conversation_query(&ConversationFilter { search: None, limit: 1, ..f.clone() }, SearchPlan::Probe);
        q.offset(SIGNATURE_WINDOW - 1);
        self.fetch_optional::<ConversationRow>(&q).await
    }

    /// `f`'s page among the first [`SIGNATURE_WINDOW`] conversations of its list through
    /// [`SearchPlan::Signature`], in the shape each planner walks in order and stops at the page's last match:
    /// - SQLite: the list's own query, bounded by the window's last row `end` (`up_to`);
    /// - PostgreSQL: `SELECT … FROM (the list's first 2,000, no text) AS conversations WHERE <search> ORDER BY
    ///   … LIMIT …`. Given the bound instead, PostgreSQL expects almost no row to pass the signature test, so it
    ///   reads the whole window through a bitmap and sorts it, probing every candidate (16 ms for a common word
    ///   at 100,000 conversations); the subquery's order carries through, and it reads 57 rows (0.5 ms).
    fn signature_window_query(&self, f: &ConversationFilter, end: Option<&ConversationRow>) -> SelectStatement {
        let kind = self.kind();
        if kind == StoreKind::Sqlite {
            let mut q = self.conversation_query(f, SearchPlan::Signature);
            if let Some(end) = end {
                q.cond_where(up_to(kind, f.sort, &f.sort.key_of(end), end.id));
            }
            return q;
        }
        let window_filter = ConversationFilter { search: None, limit: SIGNATURE_WINDOW, ..f.clone() };
        let mut window = self.conversation_query(&window_filter, SearchPlan::Probe);
        for word in 0..text_signature::WORDS {
            window.column((Conversations::Table, text_signature::column(word)));
        }
        window.column((Conversations::Table, Alias::new("text_sig_ready")));
        let mut q = Query::select();
        q.columns(CONVERSATION_READ_COLUMNS.map(|c| (Conversations::Table, c)))
            .from_subquery(window, Conversations::Table);
        if let Some(text) = search_text(f) {
            q.cond_where(search_condition(kind, text, SearchPlan::Signature));
        }
        let order = if f.sort.descending() { Order::Desc } else { Order::Asc };
        q.order_by_expr(sort_expr(f.sort), order.clone()).order_by((Conversations::Table, Conversations::Id), order);
        q.limit(f.limit);
        q
    }

    fn conversation_query(&self, f: &ConversationFilter, plan: SearchPlan) -> SelectStatement {
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
        if let Some(text) = search_text(f) {
            q.cond_where(search_condition(kind, text, plan));
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
