//! Queries on `llm_calls`, the append-only log of every call to a model. Rows are written exactly as given and
//! never updated here; a NULL cost means "unknown" and is never turned into 0.

use sea_query::{Expr, ExprTrait, Iden, Order, Query};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::Store;
use crate::dialect::ts;
use crate::error::StoreError;

#[derive(Iden, Clone, Copy)]
enum LlmCalls {
    Table,
    Id,
    TraceId,
    SpanId,
    ParentSpanId,
    SessionId,
    ConversationId,
    MessageId,
    OrgId,
    AgentId,
    Operation,
    Provider,
    Model,
    ResponseModel,
    ResponseId,
    Stream,
    Parameters,
    Input,
    Output,
    InputTokens,
    OutputTokens,
    CacheReadTokens,
    CacheWriteTokens,
    CostUsd,
    LatencyMs,
    TtftMs,
    Attempts,
    Status,
    Error,
    ErrorType,
    FinishReason,
    StartedAt,
    CreatedAt,
}

const COLUMNS: [LlmCalls; 32] = [
    LlmCalls::Id,
    LlmCalls::TraceId,
    LlmCalls::SpanId,
    LlmCalls::ParentSpanId,
    LlmCalls::SessionId,
    LlmCalls::ConversationId,
    LlmCalls::MessageId,
    LlmCalls::OrgId,
    LlmCalls::AgentId,
    LlmCalls::Operation,
    LlmCalls::Provider,
    LlmCalls::Model,
    LlmCalls::ResponseModel,
    LlmCalls::ResponseId,
    LlmCalls::Stream,
    LlmCalls::Parameters,
    LlmCalls::Input,
    LlmCalls::Output,
    LlmCalls::InputTokens,
    LlmCalls::OutputTokens,
    LlmCalls::CacheReadTokens,
    LlmCalls::CacheWriteTokens,
    LlmCalls::CostUsd,
    LlmCalls::LatencyMs,
    LlmCalls::TtftMs,
    LlmCalls::Attempts,
    LlmCalls::Status,
    LlmCalls::Error,
    LlmCalls::ErrorType,
    LlmCalls::FinishReason,
    LlmCalls::StartedAt,
    LlmCalls::CreatedAt,
];

/// One call to a model: what was sent, what came back, what it cost. Read and insert type alike.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LlmCallRow {
    pub id: Uuid,
    /// 32 lower-case hex digits (W3C trace context / OTLP).
    pub trace_id: String,
    /// 16 lower-case hex digits.
    pub span_id: String,
    pub parent_span_id: Option<String>,
    /// Not foreign keys: the log is written in any order relative to these rows and outlives them.
    pub session_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub org_id: Option<String>,
    pub agent_id: Option<String>,
    /// `chat`, `generate`, `judge`, …
    pub operation: String,
    pub provider: String,
    /// The model asked for.
    pub model: String,
    /// The model that answered, when the provider says.
    pub response_model: Option<String>,
    pub response_id: Option<String>,
    pub stream: bool,
    /// A JSON object (temperature, max tokens, …).
    #[sqlx(json)]
    pub parameters: serde_json::Value,
    /// What was sent (system prompt and messages), as JSON.
    #[sqlx(json)]
    pub input: serde_json::Value,
    /// What came back, as JSON; `None` when nothing did.
    #[sqlx(json(nullable))]
    pub output: Option<serde_json::Value>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    /// `None` means unknown (a model missing from the price table), not free.
    pub cost_usd: Option<f64>,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub attempts: i64,
    /// `ok`, `error` or `aborted`.
    pub status: String,
    pub error: Option<String>,
    pub error_type: Option<String>,
    pub finish_reason: Option<String>,
    pub started_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// Which calls [`Store::list_llm_calls`] returns: every given field must match. `limit` is taken as is
/// (0 returns nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LlmCallFilter {
    pub session_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub agent_id: Option<String>,
    pub model: Option<String>,
    /// `ok`, `error` or `aborted`.
    pub status: Option<String>,
    /// Started at or after.
    pub from: Option<OffsetDateTime>,
    /// Started before.
    pub to: Option<OffsetDateTime>,
    /// Only calls after this position of the newest-first order: the previous page's last `(started_at, id)`.
    pub before: Option<(OffsetDateTime, Uuid)>,
    pub limit: u32,
}

/// One call's figures, for aggregates (latency percentiles are computed by the caller).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LlmCallFigures {
    pub agent_id: Option<String>,
    pub model: String,
    pub status: String,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
}

impl Store {
    /// Writes the row exactly as given (timestamps truncated to the microsecond). A reused id, a value outside
    /// the checks (malformed trace/span id, unknown status, negative counts) or a cost that is not a finite
    /// number ≥ 0 is [`StoreError::Conflict`].
    pub async fn insert_llm_call(&self, row: &LlmCallRow) -> Result<(), StoreError> {
        // SQLite would store NaN as NULL and PostgreSQL would keep it: refuse it on both, before either sees it.
        if row.cost_usd.is_some_and(|c| !c.is_finite() || c < 0.0) {
            return Err(StoreError::Conflict(format!("cost_usd must be a finite number >= 0, not {:?}", row.cost_usd)));
        }
        let kind = self.kind();
        let stmt = Query::insert()
            .into_table(LlmCalls::Table)
            .columns(COLUMNS)
            .values([
                Expr::val(row.id),
                Expr::val(row.trace_id.as_str()),
                Expr::val(row.span_id.as_str()),
                Expr::val(row.parent_span_id.as_deref()),
                Expr::val(row.session_id),
                Expr::val(row.conversation_id),
                Expr::val(row.message_id),
                Expr::val(row.org_id.as_deref()),
                Expr::val(row.agent_id.as_deref()),
                Expr::val(row.operation.as_str()),
                Expr::val(row.provider.as_str()),
                Expr::val(row.model.as_str()),
                Expr::val(row.response_model.as_deref()),
                Expr::val(row.response_id.as_deref()),
                Expr::val(row.stream),
                Expr::val(row.parameters.clone()),
                Expr::val(row.input.clone()),
                Expr::val(row.output.clone()),
                Expr::val(row.input_tokens),
                Expr::val(row.output_tokens),
                Expr::val(row.cache_read_tokens),
                Expr::val(row.cache_write_tokens),
                Expr::val(row.cost_usd),
                Expr::val(row.latency_ms),
                Expr::val(row.ttft_ms),
                Expr::val(row.attempts),
                Expr::val(row.status.as_str()),
                Expr::val(row.error.as_deref()),
                Expr::val(row.error_type.as_deref()),
                Expr::val(row.finish_reason.as_deref()),
                ts(kind, row.started_at),
                ts(kind, row.created_at),
            ])
            .map_err(|e| StoreError::Other(e.to_string()))?
            .to_owned();
        self.execute(&stmt).await?;
        Ok(())
    }

    /// The call with this id, if any.
    pub async fn get_llm_call(&self, id: Uuid) -> Result<Option<LlmCallRow>, StoreError> {
        let stmt =
            Query::select().columns(COLUMNS).from(LlmCalls::Table).and_where(Expr::col(LlmCalls::Id).eq(id)).to_owned();
        self.fetch_optional::<LlmCallRow>(&stmt).await
    }

    /// Calls matching `f`, newest first (by `started_at`, then id).
    pub async fn list_llm_calls(&self, f: &LlmCallFilter) -> Result<Vec<LlmCallRow>, StoreError> {
        if f.limit == 0 {
            return Ok(Vec::new());
        }
        let mut stmt = Query::select().columns(COLUMNS).from(LlmCalls::Table).to_owned();
        self.filter_llm_calls(&mut stmt, f);
        stmt.order_by(LlmCalls::StartedAt, Order::Desc).order_by(LlmCalls::Id, Order::Desc).limit(u64::from(f.limit));
        self.fetch_all::<LlmCallRow>(&stmt).await
    }

    /// The figures of every call matching `f` (its limit and position ignored), for aggregates.
    pub async fn llm_call_figures(&self, f: &LlmCallFilter) -> Result<Vec<LlmCallFigures>, StoreError> {
        let mut stmt = Query::select()
            .columns([
                LlmCalls::AgentId,
                LlmCalls::Model,
                LlmCalls::Status,
                LlmCalls::InputTokens,
                LlmCalls::OutputTokens,
                LlmCalls::CostUsd,
                LlmCalls::LatencyMs,
                LlmCalls::TtftMs,
            ])
            .from(LlmCalls::Table)
            .to_owned();
        self.filter_llm_calls(&mut stmt, &LlmCallFilter { before: None, ..f.clone() });
        self.fetch_all::<LlmCallFigures>(&stmt).await
    }

    fn filter_llm_calls(&self, stmt: &mut sea_query::SelectStatement, f: &LlmCallFilter) {
        let kind = self.kind();
        if let Some(model) = &f.model {
            stmt.and_where(Expr::col(LlmCalls::Model).eq(model.as_str()));
        }
        if let Some(status) = &f.status {
            stmt.and_where(Expr::col(LlmCalls::Status).eq(status.as_str()));
        }
        if let Some(from) = f.from {
            stmt.and_where(Expr::col(LlmCalls::StartedAt).gte(crate::dialect::ts(kind, from)));
        }
        if let Some(to) = f.to {
            stmt.and_where(Expr::col(LlmCalls::StartedAt).lt(crate::dialect::ts(kind, to)));
        }
        if let Some((at, id)) = f.before {
            let at = crate::dialect::ts(kind, at);
            stmt.cond_where(sea_query::Cond::any().add(Expr::col(LlmCalls::StartedAt).lt(at.clone())).add(
                sea_query::Cond::all().add(Expr::col(LlmCalls::StartedAt).eq(at)).add(Expr::col(LlmCalls::Id).lt(id)),
            ));
        }
        if let Some(id) = f.session_id {
            stmt.and_where(Expr::col(LlmCalls::SessionId).eq(id));
        }
        if let Some(id) = f.conversation_id {
            stmt.and_where(Expr::col(LlmCalls::ConversationId).eq(id));
        }
        if let Some(agent) = &f.agent_id {
            stmt.and_where(Expr::col(LlmCalls::AgentId).eq(agent.as_str()));
        }
    }
}
