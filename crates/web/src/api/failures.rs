//! Failures across all conversations for admins: `GET /api/v1/failures` with filters (type, status, severity, a
//! period), newest first, cursor pages with no gap or repeat. Each failure carries its conversation's agent and
//! external id. Triage of one failure is `PATCH /api/v1/failures/{id}` (conversations.rs).

use axum::extract::{RawQuery, State};
use mentorfy_store::{FailureListFilter, FailureListRow};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::admin_auth::AdminAuth;
use crate::api::query::{bad_query, number, parse_time_cursor, query_pairs, range_back, rfc3339_time, time_cursor};
use crate::error::{AppError, ErrorEnvelope};
use crate::state::AppState;

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 200;

/// A failure with its conversation's agent and external id.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureListView {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// The id the sender gave the conversation.
    pub conversation_external_id: String,
    pub environment: String,
    pub agent_id: Option<String>,
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

impl From<FailureListRow> for FailureListView {
    fn from(r: FailureListRow) -> Self {
        let f = r.failure;
        Self {
            id: f.id,
            conversation_id: f.conversation_id,
            conversation_external_id: r.external_id,
            environment: r.environment,
            agent_id: r.agent_id,
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
#[serde(rename_all = "camelCase")]
pub struct FailurePage {
    pub data: Vec<FailureListView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Turns the query string into a store filter; every parameter is checked by name.
pub fn filter_of(raw: Option<&str>, now: OffsetDateTime) -> Result<FailureListFilter, AppError> {
    let mut f = FailureListFilter { limit: DEFAULT_LIMIT, ..FailureListFilter::default() };
    let mut range = None;
    for (k, v) in query_pairs(raw)? {
        match k.as_str() {
            "type" => {
                let ok = !v.is_empty()
                    && v.len() <= 64
                    && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !ok {
                    return Err(bad_query("type must be a failure type such as user_frustration", "type"));
                }
                f.kind = Some(v);
            }
            "status" if matches!(v.as_str(), "open" | "ack" | "resolved") => f.status = Some(v),
            "status" => return Err(bad_query("status must be open, ack or resolved", "status")),
            "severity" if matches!(v.as_str(), "low" | "medium" | "high" | "critical") => f.severity = Some(v),
            "severity" => return Err(bad_query("severity must be low, medium, high or critical", "severity")),
            "range" => range = Some(v),
            "from" => f.from = Some(rfc3339_time(&v, "from")?),
            "to" => f.to = Some(rfc3339_time(&v, "to")?),
            "limit" => f.limit = number(&v, "limit", "a whole number from 1 to 200")?,
            "cursor" => f.after = Some(parse_time_cursor("failures", &v)?),
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
        f.from = Some(now - back);
    }
    if let (Some(from), Some(to)) = (f.from, f.to)
        && from >= to
    {
        return Err(bad_query("from must be before to", "from"));
    }
    Ok(f)
}

/// Failures across all conversations, newest first: filters and cursor pagination (no gaps or repeats while new
/// ones arrive).
#[utoipa::path(get, path = "/api/v1/failures", tag = "conversations",
    params(
        ("type" = Option<String>, Query, description = "Failure type, e.g. user_frustration"),
        ("status" = Option<String>, Query, description = "open, ack or resolved"),
        ("severity" = Option<String>, Query, description = "low, medium, high or critical"),
        ("range" = Option<String>, Query, description = "24h, 7d or 30d back from now (or from/to)"),
        ("from" = Option<String>, Query, description = "Detected at or after (RFC 3339)"),
        ("to" = Option<String>, Query, description = "Detected before (RFC 3339)"),
        ("limit" = Option<u64>, Query, description = "1–200, default 50"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
    ),
    security(("admin" = [])),
    responses((status = 200, body = FailurePage), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn list_failures(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<FailurePage>, AppError> {
    let f = filter_of(raw.as_deref(), mentorfy_store::now())?;
    let limit = f.limit;
    let mut rows = state.store().list_failures_page(&FailureListFilter { limit: limit + 1, ..f }).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = match rows.last() {
        Some(last) if more => Some(time_cursor("failures", last.failure.created_at, last.failure.id)),
        _ => None,
    };
    Ok(axum::Json(FailurePage { data: rows.into_iter().map(FailureListView::from).collect(), next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_validated() {
        let now = time::macros::datetime!(2026-11-29 10:00 UTC);
        let f = filter_of(Some("type=loop&status=open&severity=high&range=7d&limit=10"), now).unwrap();
        assert_eq!(f.kind.as_deref(), Some("loop"));
        assert_eq!(f.from, Some(now - time::Duration::days(7)));
        assert_eq!(f.limit, 10);
        for bad in [
            "status=closed",
            "severity=huge",
            "type=Bad Type",
            "range=1y",
            "range=7d&from=2026-11-01T00:00:00Z",
            "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
            "limit=0",
            "limit=201",
            "cursor=zzz",
            "nope=1",
            "status=open&status=ack",
        ] {
            let e = filter_of(Some(bad), now).expect_err(bad);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
