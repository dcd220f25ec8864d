//! Sensei's read API over conversations (issue 7) and failure triage: list with filters and cursor pagination,
//! one conversation's messages, health and failures, and `PATCH /api/v1/failures/{id}`. Admin auth on every route.
//! Handlers parse the query strictly (unknown parameters are a 400), call the store, and map rows to the wire.

use axum::extract::{Path, RawQuery, State};
use base64::Engine as _;
use mentorfy_store::{ConversationFilter, ConversationRow, ConversationSort, FailureRow, MessageRow, SortKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::admin_auth::AdminAuth;
use crate::api::query::{bad_query, number, query_pairs, range_back, rfc3339_time};
use crate::error::{AppError, ErrorEnvelope};
use crate::extract::Json;
use crate::state::AppState;

/// Rows per page unless `limit` says otherwise, and the most a page may hold.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 200;

/// `GET /api/v1/conversations` query.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Active at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Started before this time (RFC 3339).
    pub to: Option<String>,
    /// Instead of from/to: `24h`, `7d` or `30d` back from now.
    pub range: Option<String>,
    pub health_min: Option<f64>,
    pub health_max: Option<f64>,
    /// `true` or `false`.
    pub has_failures: Option<bool>,
    /// Has a failure of this type (e.g. `escalation_request`).
    pub failure_type: Option<String>,
    /// Has a failure with this status: `open`, `ack` or `resolved`.
    pub failure_status: Option<String>,
    pub environment: Option<String>,
    /// `api`, `otel` or `mentorfy`.
    pub source: Option<String>,
    pub agent_id: Option<String>,
    /// A usage pattern id: its member conversations.
    pub pattern: Option<String>,
    /// Text in a message (case-insensitive), or the exact conversation id the client sent.
    pub q: Option<String>,
    /// `-last_message_at` (default), `last_message_at`, `health`, `-health`, `-started_at`.
    pub sort: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<u64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// Every parameter checked by name: an unknown one, a repeated one or a malformed value is a 400 naming it.
    pub fn parse(raw: Option<&str>) -> Result<Self, AppError> {
        let mut q = ListQuery::default();
        for (key, value) in query_pairs(raw)? {
            let text = Some(value.clone());
            match key.as_str() {
                "from" => q.from = text,
                "to" => q.to = text,
                "range" => q.range = text,
                "health_min" => q.health_min = Some(number(&value, "health_min", "a number from 0 to 100")?),
                "health_max" => q.health_max = Some(number(&value, "health_max", "a number from 0 to 100")?),
                "has_failures" => q.has_failures = Some(number(&value, "has_failures", "true or false")?),
                "failure_type" => q.failure_type = text,
                "failure_status" => q.failure_status = text,
                "environment" => q.environment = text,
                "source" => q.source = text,
                "agent_id" => q.agent_id = text,
                "pattern" => q.pattern = text,
                "q" => q.q = text,
                "sort" => q.sort = text,
                "limit" => q.limit = Some(number(&value, "limit", "a whole number from 1 to 200")?),
                "cursor" => q.cursor = text,
                other => return Err(bad_query(format!("unknown query parameter '{other}'"), other)),
            }
        }
        Ok(q)
    }
}

/// A conversation in a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub id: Uuid,
    /// The id the sender gave it.
    pub external_id: String,
    pub source: String,
    pub environment: String,
    pub agent_id: Option<String>,
    pub user_id: Option<String>,
    /// `active` or `idle` (final).
    pub status: String,
    pub message_count: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_message_at: OffsetDateTime,
    /// 0–100; null until analysed.
    pub health_score: Option<f64>,
    pub failure_count: i64,
    /// Mean sentiment of the user's messages, −1..1.
    pub avg_sentiment: Option<f64>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub final_at: Option<OffsetDateTime>,
    #[schema(value_type = Object)]
    pub metadata: Value,
}

impl From<ConversationRow> for ConversationView {
    fn from(c: ConversationRow) -> Self {
        Self {
            id: c.id,
            external_id: c.external_id,
            source: c.source,
            environment: c.environment,
            agent_id: c.agent_id,
            user_id: c.user_id,
            status: c.status,
            message_count: c.message_count,
            started_at: c.started_at,
            last_message_at: c.last_message_at,
            health_score: c.health_score,
            failure_count: c.failure_count,
            avg_sentiment: c.avg_sentiment,
            final_at: c.final_at,
            metadata: c.metadata,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationPage {
    pub data: Vec<ConversationView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

fn parse_sort(raw: Option<&str>) -> Result<ConversationSort, AppError> {
    Ok(match raw.unwrap_or("-last_message_at") {
        "-last_message_at" => ConversationSort::LastMessageDesc,
        "last_message_at" => ConversationSort::LastMessageAsc,
        "health" => ConversationSort::HealthAsc,
        "-health" => ConversationSort::HealthDesc,
        "-started_at" => ConversationSort::StartedDesc,
        other => {
            return Err(bad_query(
                format!("sort '{other}' is not one of -last_message_at, last_message_at, health, -health, -started_at"),
                "sort",
            ));
        }
    })
}

fn sort_name(sort: ConversationSort) -> &'static str {
    match sort {
        ConversationSort::LastMessageDesc => "-last_message_at",
        ConversationSort::LastMessageAsc => "last_message_at",
        ConversationSort::HealthAsc => "health",
        ConversationSort::HealthDesc => "-health",
        ConversationSort::StartedDesc => "-started_at",
    }
}

/// A cursor: base64url of `sort|key|id`, so a cursor from another sort is refused rather than misread.
fn encode_cursor(sort: ConversationSort, key: &SortKey, id: Uuid) -> String {
    let key = match key {
        SortKey::Time(t) => format!("t{}", t.unix_timestamp_nanos() / 1_000),
        SortKey::Number(n) => format!("n{n}"),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}|{key}|{id}", sort_name(sort)))
}

fn decode_cursor(raw: &str, sort: ConversationSort) -> Result<(SortKey, Uuid), AppError> {
    let bad = || bad_query("cursor is not a cursor this listing gave out (with the same sort)", "cursor");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '|');
    let (s, key, id) = (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
    if s != sort_name(sort) {
        return Err(bad());
    }
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    let key = if let Some(micros) = key.strip_prefix('t') {
        let micros: i128 = micros.parse().map_err(|_| bad())?;
        SortKey::Time(OffsetDateTime::from_unix_timestamp_nanos(micros * 1_000).map_err(|_| bad())?)
    } else if let Some(n) = key.strip_prefix('n') {
        SortKey::Number(n.parse::<f64>().ok().filter(|n| n.is_finite()).ok_or_else(bad)?)
    } else {
        return Err(bad());
    };
    Ok((key, id))
}

/// Turns the query into a store filter, validating every field.
pub fn filter_of(q: &ListQuery, now: OffsetDateTime) -> Result<ConversationFilter, AppError> {
    let sort = parse_sort(q.sort.as_deref())?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad_query(format!("limit must be from 1 to {MAX_LIMIT}"), "limit"));
    }
    let (mut from, mut to) = (None, None);
    if let Some(range) = &q.range {
        if q.from.is_some() || q.to.is_some() {
            return Err(bad_query("give either range or from/to, not both", "range"));
        }
        let back = range_back(range)?;
        from = Some(now - back);
    }
    if let Some(raw) = &q.from {
        from = Some(rfc3339_time(raw, "from")?);
    }
    if let Some(raw) = &q.to {
        to = Some(rfc3339_time(raw, "to")?);
    }
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(bad_query("from must be before to", "from"));
    }
    for (value, field) in [(q.health_min, "health_min"), (q.health_max, "health_max")] {
        if value.is_some_and(|v| !(0.0..=100.0).contains(&v)) {
            return Err(bad_query(format!("{field} must be from 0 to 100"), field));
        }
    }
    if let (Some(min), Some(max)) = (q.health_min, q.health_max)
        && min > max
    {
        return Err(bad_query("health_min must not exceed health_max", "health_min"));
    }
    if let Some(s) = &q.failure_status
        && !matches!(s.as_str(), "open" | "ack" | "resolved")
    {
        return Err(bad_query("failure_status must be open, ack or resolved", "failure_status"));
    }
    let pattern_id = match &q.pattern {
        Some(p) => Some(Uuid::parse_str(p).map_err(|_| bad_query("pattern must be a pattern id (UUID)", "pattern"))?),
        None => None,
    };
    if q.q.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(bad_query("q must be at most 200 characters", "q"));
    }
    let after = match &q.cursor {
        Some(c) => Some(decode_cursor(c, sort)?),
        None => None,
    };
    let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    Ok(ConversationFilter {
        from,
        to,
        health_min: q.health_min,
        health_max: q.health_max,
        has_failures: q.has_failures,
        failure_type: non_empty(&q.failure_type),
        failure_status: non_empty(&q.failure_status),
        environment: non_empty(&q.environment),
        source: non_empty(&q.source),
        agent_id: non_empty(&q.agent_id),
        pattern_id,
        search: non_empty(&q.q),
        sort,
        after,
        limit,
    })
}

/// List conversations: filters, sort and cursor pagination (no gaps or repeats while new ones arrive).
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", params(ListQuery),
    security(("admin" = [])),
    responses(
        (status = 200, body = ConversationPage),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
    ))]
pub async fn list_conversations(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<ConversationPage>, AppError> {
    let query = ListQuery::parse(raw.as_deref())?;
    let mut filter = filter_of(&query, mentorfy_store::now())?;
    let limit = filter.limit;
    filter.limit = limit + 1;
    let mut rows = state.store().list_conversations(&filter).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = match rows.last() {
        Some(last) if more => Some(encode_cursor(filter.sort, &filter.sort.key_of(last), last.id)),
        _ => None,
    };
    Ok(axum::Json(ConversationPage { data: rows.into_iter().map(ConversationView::from).collect(), next_cursor }))
}

async fn conversation(state: &AppState, id: &str) -> Result<ConversationRow, AppError> {
    let not_found = || AppError::not_found("no such conversation");
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    state.store().get_conversation(id).await?.ok_or_else(not_found)
}

/// A message with its sentiment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: Uuid,
    pub external_id: Option<String>,
    pub role: String,
    pub content: String,
    /// `complete`, `aborted`, `error` or `superseded`.
    pub status: String,
    /// −1..1 (VADER compound); null until analysed.
    pub sentiment_score: Option<f64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<MessageRow> for MessageView {
    fn from(m: MessageRow) -> Self {
        Self {
            id: m.id,
            external_id: m.external_id,
            role: m.role,
            content: m.content,
            status: m.status,
            sentiment_score: m.sentiment_score,
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
            latency_ms: m.latency_ms,
            metadata: m.metadata,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub data: Vec<MessageView>,
}

/// One conversation's messages, oldest first, with sentiment.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id (UUID)")),
    security(("admin" = [])),
    responses((status = 200, body = MessageList), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn list_conversation_messages(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<MessageList>, AppError> {
    let c = conversation(&state, &id).await?;
    let rows = state.store().list_messages(c.id).await?;
    Ok(axum::Json(MessageList { data: rows.into_iter().map(MessageView::from).collect() }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    pub conversation_id: Uuid,
    /// 0–100; null until analysed.
    pub score: Option<f64>,
    /// Final: quiet past the idle timeout.
    pub is_final: bool,
    /// `{score, version, final, components: [{name, weight, value, evidence}]}`.
    #[schema(value_type = Option<Object>)]
    pub breakdown: Option<Value>,
    pub failure_count: i64,
    pub avg_sentiment: Option<f64>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub analyzed_at: Option<OffsetDateTime>,
}

/// One conversation's health score and its breakdown.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/health", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id (UUID)")),
    security(("admin" = [])),
    responses((status = 200, body = HealthView), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_conversation_health(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<HealthView>, AppError> {
    let c = conversation(&state, &id).await?;
    Ok(axum::Json(HealthView {
        conversation_id: c.id,
        score: c.health_score,
        is_final: c.final_at.is_some() && c.status == "idle",
        breakdown: c.health_breakdown,
        failure_count: c.failure_count,
        avg_sentiment: c.avg_sentiment,
        analyzed_at: c.analyzed_at,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureView {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// The message it points at.
    pub message_id: Option<Uuid>,
    #[serde(rename = "type")]
    pub kind: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    pub evidence: String,
    pub detector: String,
    pub detector_version: i32,
    /// `open`, `ack` or `resolved`.
    pub status: String,
    #[schema(value_type = Object)]
    pub details: Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<FailureRow> for FailureView {
    fn from(f: FailureRow) -> Self {
        Self {
            id: f.id,
            conversation_id: f.conversation_id,
            message_id: f.message_id,
            kind: f.kind,
            severity: f.severity,
            evidence: f.evidence,
            detector: f.detector,
            detector_version: f.detector_version,
            status: f.status,
            details: f.details,
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailureList {
    pub data: Vec<FailureView>,
}

/// One conversation's failures, oldest first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/failures", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id (UUID)")),
    security(("admin" = [])),
    responses((status = 200, body = FailureList), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn list_conversation_failures(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<FailureList>, AppError> {
    let c = conversation(&state, &id).await?;
    let rows = state.store().list_failures(c.id).await?;
    Ok(axum::Json(FailureList { data: rows.into_iter().map(FailureView::from).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchFailure {
    /// `open`, `ack` or `resolved`.
    pub status: String,
}

/// Acknowledge, resolve or reopen a failure. Idempotent: the same status twice changes nothing more.
#[utoipa::path(patch, path = "/api/v1/failures/{id}", tag = "conversations", request_body = PatchFailure,
    params(("id" = String, Path, description = "Failure id (UUID)")),
    security(("admin" = [])),
    responses(
        (status = 200, body = FailureView),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    ))]
pub async fn patch_failure(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    Path(id): Path<String>,
    Json(body): Json<PatchFailure>,
) -> Result<axum::Json<FailureView>, AppError> {
    if !matches!(body.status.as_str(), "open" | "ack" | "resolved") {
        return Err(AppError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_field",
            "status must be open, ack or resolved",
        )
        .with_details(json!({"field": "status"})));
    }
    let not_found = || AppError::not_found("no such failure");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    if !state.store().set_failure_status(id, &body.status).await? {
        return Err(not_found());
    }
    let row = state.store().get_failure(id).await?.ok_or_else(not_found)?;
    Ok(axum::Json(FailureView::from(row)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_sort() {
        let id = Uuid::now_v7();
        let t = time::macros::datetime!(2026-11-29 10:00:00.123456 UTC);
        let c = encode_cursor(ConversationSort::LastMessageDesc, &SortKey::Time(t), id);
        assert_eq!(decode_cursor(&c, ConversationSort::LastMessageDesc).unwrap(), (SortKey::Time(t), id));
        assert!(decode_cursor(&c, ConversationSort::HealthAsc).is_err());
        let c = encode_cursor(ConversationSort::HealthAsc, &SortKey::Number(42.5), id);
        assert_eq!(decode_cursor(&c, ConversationSort::HealthAsc).unwrap(), (SortKey::Number(42.5), id));
        for bad in ["", "not base64!", "aGVsbG8"] {
            assert!(decode_cursor(bad, ConversationSort::LastMessageDesc).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_are_validated() {
        let now = time::macros::datetime!(2026-11-29 10:00 UTC);
        let q = |s: &str| -> Result<ConversationFilter, AppError> {
            let q = ListQuery::parse(Some(s))?;
            filter_of(&q, now)
        };
        let f = q("range=7d&health_max=40&has_failures=true&failure_type=escalation_request&limit=10").unwrap();
        assert_eq!(f.from, Some(now - time::Duration::days(7)));
        assert_eq!((f.health_max, f.has_failures, f.limit), (Some(40.0), Some(true), 10));
        for bad in [
            "range=1y",
            "range=7d&from=2026-11-01T00:00:00Z",
            "from=yesterday",
            "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
            "health_min=-1",
            "health_min=50&health_max=40",
            "limit=0",
            "limit=201",
            "sort=name",
            "failure_status=closed",
            "pattern=abc",
            "cursor=zzz",
            "unknown=1",
            "has_failures=maybe",
            "limit=5&limit=6",
        ] {
            let e = q(bad).expect_err(bad);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
