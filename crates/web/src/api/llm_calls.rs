//! The LLM call log for admins (issue 7): `GET /api/v1/llm-calls` (filters, newest first, cursor pages, and per
//! agent and model aggregates: count, errors, tokens, cost, p50/p95 latency and time to first token) and
//! `GET /api/v1/llm-calls/{id}` (one call with its full input and output).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use mentorfy_store::{LlmCallFigures, LlmCallFilter, LlmCallRow};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::admin_auth::AdminAuth;
use crate::api::query::{bad_query, number, parse_time_cursor, query_pairs, range_back, rfc3339_time, time_cursor};
use crate::error::{AppError, ErrorEnvelope};
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmCallView {
    pub id: Uuid,
    pub trace_id: String,
    pub span_id: String,
    pub session_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub agent_id: Option<String>,
    /// `chat`, `generate`, `evaluate`, …
    pub operation: String,
    pub provider: String,
    pub model: String,
    pub response_model: Option<String>,
    pub stream: bool,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    /// Null when the model is missing from the price table (unknown, not free).
    pub cost_usd: Option<f64>,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub attempts: i64,
    /// `ok`, `error` or `aborted`.
    pub status: String,
    pub error_type: Option<String>,
    pub finish_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: OffsetDateTime,
    /// What was sent (system prompt and messages); only in `GET /api/v1/llm-calls/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    /// What came back; only in `GET /api/v1/llm-calls/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl LlmCallView {
    fn of(c: LlmCallRow, full: bool) -> Self {
        Self {
            id: c.id,
            trace_id: c.trace_id,
            span_id: c.span_id,
            session_id: c.session_id,
            conversation_id: c.conversation_id,
            agent_id: c.agent_id,
            operation: c.operation,
            provider: c.provider,
            model: c.model,
            response_model: c.response_model,
            stream: c.stream,
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            cache_read_tokens: c.cache_read_tokens,
            cache_write_tokens: c.cache_write_tokens,
            cost_usd: c.cost_usd,
            latency_ms: c.latency_ms,
            ttft_ms: c.ttft_ms,
            attempts: c.attempts,
            status: c.status,
            error_type: c.error_type,
            finish_reason: c.finish_reason,
            started_at: c.started_at,
            input: full.then_some(c.input),
            output: if full { c.output } else { None },
            error: if full { c.error } else { None },
        }
    }
}

/// Figures of one agent and model over the filtered calls.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LlmCallAggregate {
    pub agent_id: Option<String>,
    pub model: String,
    pub calls: usize,
    /// Calls whose status is not `ok`.
    pub errors: usize,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Sum of the known costs; `costUnknownCalls` says how many had none.
    pub cost_usd: f64,
    pub cost_unknown_calls: usize,
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
    pub ttft_p50_ms: Option<i64>,
    pub ttft_p95_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmCallPage {
    pub data: Vec<LlmCallView>,
    pub next_cursor: Option<String>,
    /// Per agent and model over every call the filters match (not just this page); only on the first page.
    pub aggregates: Option<Vec<LlmCallAggregate>>,
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Groups call figures by agent and model, busiest first.
pub fn aggregate(figures: Vec<LlmCallFigures>) -> Vec<LlmCallAggregate> {
    let mut groups: BTreeMap<(Option<String>, String), Vec<LlmCallFigures>> = BTreeMap::new();
    for f in figures {
        groups.entry((f.agent_id.clone(), f.model.clone())).or_default().push(f);
    }
    let mut out: Vec<LlmCallAggregate> = groups
        .into_iter()
        .map(|((agent_id, model), calls)| {
            let mut latency: Vec<i64> = calls.iter().map(|c| c.latency_ms).collect();
            let mut ttft: Vec<i64> = calls.iter().filter_map(|c| c.ttft_ms).collect();
            latency.sort_unstable();
            ttft.sort_unstable();
            let cost: f64 = calls.iter().filter_map(|c| c.cost_usd).sum();
            LlmCallAggregate {
                agent_id,
                model,
                calls: calls.len(),
                errors: calls.iter().filter(|c| c.status != "ok").count(),
                input_tokens: calls.iter().filter_map(|c| c.input_tokens).sum(),
                output_tokens: calls.iter().filter_map(|c| c.output_tokens).sum(),
                cost_usd: (cost * 1e6).round() / 1e6,
                cost_unknown_calls: calls.iter().filter(|c| c.cost_usd.is_none()).count(),
                latency_p50_ms: percentile(&latency, 0.5),
                latency_p95_ms: percentile(&latency, 0.95),
                ttft_p50_ms: percentile(&ttft, 0.5),
                ttft_p95_ms: percentile(&ttft, 0.95),
            }
        })
        .collect();
    out.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.model.cmp(&b.model)));
    out
}

/// Model calls, newest first, with per agent and model aggregates.
#[utoipa::path(get, path = "/api/v1/llm-calls", tag = "llm calls",
    params(
        ("agent" = Option<String>, Query, description = "Agent id"),
        ("model" = Option<String>, Query, description = "Model asked for"),
        ("status" = Option<String>, Query, description = "ok, error or aborted"),
        ("range" = Option<String>, Query, description = "24h, 7d or 30d (or from/to, RFC 3339)"),
        ("from" = Option<String>, Query), ("to" = Option<String>, Query),
        ("conversation_id" = Option<String>, Query), ("session_id" = Option<String>, Query),
        ("limit" = Option<u32>, Query, description = "1–200, default 50"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
    ),
    security(("admin" = [])),
    responses((status = 200, body = LlmCallPage), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn list_llm_calls(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<LlmCallPage>, AppError> {
    let mut f = LlmCallFilter { limit: DEFAULT_LIMIT, ..LlmCallFilter::default() };
    let mut range = None;
    let uuid =
        |v: &str, field: &str| Uuid::parse_str(v).map_err(|_| bad_query(format!("{field} must be a UUID"), field));
    for (k, v) in query_pairs(raw.as_deref())? {
        match k.as_str() {
            "agent" => f.agent_id = Some(v),
            "model" => f.model = Some(v),
            "status" if matches!(v.as_str(), "ok" | "error" | "aborted") => f.status = Some(v),
            "status" => return Err(bad_query("status must be ok, error or aborted", "status")),
            "range" => range = Some(v),
            "from" => f.from = Some(rfc3339_time(&v, "from")?),
            "to" => f.to = Some(rfc3339_time(&v, "to")?),
            "conversation_id" => f.conversation_id = Some(uuid(&v, "conversation_id")?),
            "session_id" => f.session_id = Some(uuid(&v, "session_id")?),
            "limit" => f.limit = number(&v, "limit", "a whole number from 1 to 200")?,
            "cursor" => f.before = Some(parse_time_cursor("llm", &v)?),
            other => return Err(bad_query(format!("unknown query parameter '{other}'"), other)),
        }
    }
    if !(1..=MAX_LIMIT).contains(&f.limit) {
        return Err(bad_query(format!("limit must be from 1 to {MAX_LIMIT}"), "limit"));
    }
    if let Some(r) = range {
        if f.from.is_some() || f.to.is_some() {
            return Err(bad_query("give either range or from/to, not both", "range"));
        }
        let back = range_back(&r)?;
        f.from = Some(mentorfy_store::now() - back);
    }
    let first_page = f.before.is_none();
    let limit = f.limit;
    let mut rows = state.store().list_llm_calls(&LlmCallFilter { limit: limit + 1, ..f.clone() }).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|c| time_cursor("llm", c.started_at, c.id)) } else { None };
    let aggregates = if first_page { Some(aggregate(state.store().llm_call_figures(&f).await?)) } else { None };
    Ok(axum::Json(LlmCallPage {
        data: rows.into_iter().map(|c| LlmCallView::of(c, false)).collect(),
        next_cursor,
        aggregates,
    }))
}

/// One call with its full input and output.
#[utoipa::path(get, path = "/api/v1/llm-calls/{id}", tag = "llm calls",
    params(("id" = String, Path, description = "Call id (UUID)")),
    security(("admin" = [])),
    responses((status = 200, body = LlmCallView), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_llm_call(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<LlmCallView>, AppError> {
    let not_found = || AppError::not_found("no such LLM call");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let call = state.store().get_llm_call(id).await?.ok_or_else(not_found)?;
    Ok(axum::Json(LlmCallView::of(call, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(
        agent: &str,
        model: &str,
        latency: i64,
        ttft: Option<i64>,
        cost: Option<f64>,
        status: &str,
    ) -> LlmCallFigures {
        LlmCallFigures {
            agent_id: Some(agent.into()),
            model: model.into(),
            status: status.into(),
            input_tokens: Some(100),
            output_tokens: Some(10),
            cost_usd: cost,
            latency_ms: latency,
            ttft_ms: ttft,
        }
    }

    #[test]
    fn aggregates_group_by_agent_and_model_with_nearest_rank_percentiles() {
        let mut calls: Vec<LlmCallFigures> =
            (1..=20).map(|i| fig("coach", "claude", i * 100, Some(i * 10), Some(0.001), "ok")).collect();
        calls.push(fig("coach", "claude", 5000, None, None, "error"));
        calls.push(fig("judge", "haiku", 300, Some(50), Some(0.0005), "ok"));
        let a = aggregate(calls);
        assert_eq!(a.len(), 2);
        let coach = &a[0];
        assert_eq!((coach.calls, coach.errors, coach.cost_unknown_calls), (21, 1, 1));
        assert_eq!((coach.input_tokens, coach.output_tokens), (2100, 210));
        assert!((coach.cost_usd - 0.02).abs() < 1e-9);
        // 21 latencies 100..2000 and 5000: p50 = 11th = 1100, p95 = 20th = 2000.
        assert_eq!((coach.latency_p50_ms, coach.latency_p95_ms), (Some(1100), Some(2000)));
        // 20 ttfts 10..200: p50 = 10th = 100, p95 = 19th = 190.
        assert_eq!((coach.ttft_p50_ms, coach.ttft_p95_ms), (Some(100), Some(190)));
        assert_eq!(a[1].model, "haiku");
        assert_eq!(percentile(&[], 0.5), None);
    }
}
