//! Saved views (issue 7): a named set of filters for a dashboard page. `POST/PUT/DELETE /api/v1/saved-views` and a
//! listing. Filters of the conversations page are checked with the same parser as `GET /api/v1/conversations`, so a
//! saved view always opens.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use mentorfy_store::SavedViewRow;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::admin_auth::AdminAuth;
use crate::api::conversations::{ListQuery, filter_of};
use crate::api::query::{bad_query, query_pairs};
use crate::error::{AppError, ErrorEnvelope};
use crate::extract::Json;
use crate::state::AppState;

/// The pages a view can belong to.
pub const PAGES: &[&str] = &["overview", "conversations", "failures", "patterns", "llm_calls", "sessions"];
const MAX_NAME_CHARS: usize = 100;
const MAX_FILTERS_BYTES: usize = 4096;

fn invalid(field: &str, message: impl Into<String>) -> AppError {
    AppError::new(StatusCode::BAD_REQUEST, "invalid_field", message).with_details(json!({"field": field}))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavedView {
    pub id: Uuid,
    pub name: String,
    pub page: String,
    /// The page's filters, as query parameters.
    #[schema(value_type = Object)]
    pub filters: Value,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<SavedViewRow> for SavedView {
    fn from(r: SavedViewRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            page: r.page,
            filters: r.filters,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn check_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid("name", format!("name must be 1 to {MAX_NAME_CHARS} characters")));
    }
    Ok(name.to_owned())
}

/// Filters are a flat object of strings, numbers and booleans (query parameters), at most 4 KiB; those of the
/// conversations page must be a valid conversations query.
fn check_filters(page: &str, filters: &Value) -> Result<(), AppError> {
    let obj: &Map<String, Value> =
        filters.as_object().ok_or_else(|| invalid("filters", "filters must be an object"))?;
    if filters.to_string().len() > MAX_FILTERS_BYTES {
        return Err(invalid("filters", format!("filters must be at most {MAX_FILTERS_BYTES} bytes")));
    }
    let mut pairs = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(invalid(&format!("filters.{k}"), "a filter is a string, number or boolean")),
        };
        if k == "cursor" {
            return Err(invalid("filters.cursor", "a view saves filters, not a position in a listing"));
        }
        pairs.push((k.clone(), text));
    }
    if page == "conversations" {
        let raw = serde_urlencoded::to_string(&pairs).map_err(|e| invalid("filters", e.to_string()))?;
        let q = ListQuery::parse(Some(&raw)).map_err(|e| {
            let field = e.details.get("field").and_then(Value::as_str).unwrap_or("").to_owned();
            invalid(&format!("filters.{field}"), e.message.clone())
        })?;
        filter_of(&q, mentorfy_store::now()).map_err(|e| {
            let field = e.details.get("field").and_then(Value::as_str).unwrap_or("").to_owned();
            invalid(&format!("filters.{field}"), e.message.clone())
        })?;
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSavedView {
    pub name: String,
    /// One of `overview`, `conversations`, `failures`, `patterns`, `llm_calls`, `sessions`.
    pub page: String,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub filters: Value,
}

fn empty_object() -> Value {
    json!({})
}

/// Save a view.
#[utoipa::path(post, path = "/api/v1/saved-views", tag = "saved views", request_body = CreateSavedView,
    security(("admin" = [])),
    responses((status = 201, body = SavedView), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn create_saved_view(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Json(body): Json<CreateSavedView>,
) -> Result<impl IntoResponse, AppError> {
    let name = check_name(&body.name)?;
    if !PAGES.contains(&body.page.as_str()) {
        return Err(invalid("page", format!("page must be one of {}", PAGES.join(", "))));
    }
    check_filters(&body.page, &body.filters)?;
    let source = match admin.source {
        mentorfy_auth::AdminSource::Local => "admin",
        mentorfy_auth::AdminSource::Supabase => "supabase",
    };
    let created_by = format!("{source}:{}", admin.subject);
    let row = state.store().create_saved_view(&name, &body.page, &body.filters, Some(&created_by)).await?;
    Ok((StatusCode::CREATED, axum::Json(SavedView::from(row))))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSavedView {
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub filters: Option<Value>,
}

/// Rename a view or replace its filters. Idempotent.
#[utoipa::path(put, path = "/api/v1/saved-views/{id}", tag = "saved views", request_body = UpdateSavedView,
    params(("id" = String, Path, description = "Saved view id (UUID)")),
    security(("admin" = [])),
    responses(
        (status = 200, body = SavedView),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    ))]
pub async fn update_saved_view(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    Path(id): Path<String>,
    Json(body): Json<UpdateSavedView>,
) -> Result<axum::Json<SavedView>, AppError> {
    let not_found = || AppError::not_found("no such saved view");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let name = body.name.as_deref().map(check_name).transpose()?;
    if let Some(filters) = &body.filters {
        let view = state.store().get_saved_view(id).await?.ok_or_else(not_found)?;
        check_filters(&view.page, filters)?;
    }
    let row =
        state.store().update_saved_view(id, name.as_deref(), body.filters.as_ref()).await?.ok_or_else(not_found)?;
    Ok(axum::Json(SavedView::from(row)))
}

/// Delete a view.
#[utoipa::path(delete, path = "/api/v1/saved-views/{id}", tag = "saved views",
    params(("id" = String, Path, description = "Saved view id (UUID)")),
    security(("admin" = [])),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_saved_view(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let not_found = || AppError::not_found("no such saved view");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    if !state.store().delete_saved_view(id).await? {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SavedViewList {
    pub data: Vec<SavedView>,
}

/// The saved views, of one page when `page` is given.
#[utoipa::path(get, path = "/api/v1/saved-views", tag = "saved views",
    params(("page" = Option<String>, Query, description = "Only this page's views")),
    security(("admin" = [])),
    responses((status = 200, body = SavedViewList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn list_saved_views(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<SavedViewList>, AppError> {
    let mut page = None;
    for (k, v) in query_pairs(raw.as_deref())? {
        match k.as_str() {
            "page" if PAGES.contains(&v.as_str()) => page = Some(v),
            "page" => return Err(bad_query(format!("page must be one of {}", PAGES.join(", ")), "page")),
            other => return Err(bad_query(format!("unknown query parameter '{other}'"), other)),
        }
    }
    let rows = state.store().list_saved_views(page.as_deref()).await?;
    Ok(axum::Json(SavedViewList { data: rows.into_iter().map(SavedView::from).collect() }))
}
