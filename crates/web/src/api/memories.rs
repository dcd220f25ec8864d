//! `GET /api/session/{id}/memories`: what the mentor remembers about a session — searched with `q`, newest
//! first without it. For the frontend's "what I know about you" and for debugging recall.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use mentorfy_memory::{MemoryHit, SearchOptions};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::error::{AppError, ErrorEnvelope};
use crate::extract::SessionIdPath;
use crate::state::AppState;

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
const MAX_QUERY_CHARS: usize = 1_000;

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string for OpenAPI; parsed by hand for envelope errors
pub struct MemoriesQuery {
    /// Search text. Without it, the newest memories are listed.
    q: Option<String>,
    /// How many memories (1–100, default 20).
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct MemoriesResponse {
    pub memories: Vec<MemoryView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryView {
    pub id: String,
    pub content: String,
    /// Relevance to `q` (higher is better); 0 when listing.
    pub score: f32,
    /// The memory's date (when what it tells happened, or when it was stored).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// What produced it: `context` (an onboarding answer) or `chat` (a finished chat turn).
    pub source: String,
}

impl From<MemoryHit> for MemoryView {
    fn from(h: MemoryHit) -> Self {
        Self { id: h.id, content: h.content, score: h.score, created_at: h.created_at, source: h.source }
    }
}

#[utoipa::path(get, path = "/api/session/{id}/memories", tag = "sessions",
    params(("id" = String, Path, description = "Session id (UUID)"), MemoriesQuery),
    responses(
        (status = 200, body = MemoriesResponse),
        (status = 400, description = "Bad `q` or `limit`", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 503, description = "The memory service is unavailable", body = ErrorEnvelope),
    ))]
pub async fn list_memories(
    State(state): State<AppState>,
    SessionIdPath(id): SessionIdPath,
    Query(params): Query<HashMap<String, String>>,
) -> Result<axum::Json<MemoriesResponse>, AppError> {
    if let Some(unknown) = params.keys().find(|k| *k != "q" && *k != "limit") {
        return Err(bad_query(
            format!("unknown query parameter '{unknown}'; use q and limit"),
            json!({"field": unknown}),
        ));
    }
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad_query(
                    format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                    json!({"field": "limit"}),
                ));
            }
        },
    };
    let query = params.get("q").map(|q| q.trim()).filter(|q| !q.is_empty());
    if query.is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS) {
        return Err(bad_query(format!("q is longer than {MAX_QUERY_CHARS} characters"), json!({"field": "q"})));
    }
    let session = state.sessions().get(id).await?;
    let memory = state.memory();
    let hits = match query {
        Some(q) => {
            memory.search_session(&session.org_id, session.id, q, SearchOptions { limit, token_budget: None }).await
        }
        None => memory.list_session(&session.org_id, session.id, limit).await,
    }
    .map_err(mentorfy_mentor::MentorError::from)?;
    Ok(axum::Json(MemoriesResponse { memories: hits.into_iter().map(MemoryView::from).collect() }))
}

fn bad_query(message: String, details: serde_json::Value) -> AppError {
    AppError::new(StatusCode::BAD_REQUEST, "bad_request", message).with_details(details)
}
