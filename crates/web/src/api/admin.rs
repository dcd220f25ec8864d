//! `/api/v1/auth/login` and `/api/v1/api-keys`: local admin sign-in and project API key management. Handlers
//! parse, call [`crate::admin_auth`], and map; the full key appears only in the create response.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use mentorfy_store::ApiKeyRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::admin_auth::{AdminAuth, client_ip};
use crate::error::{AppError, ErrorEnvelope};
use crate::extract::Json;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "admin@example.com")]
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// An HS256 JWT: send it as `Authorization: Bearer <token>` to the admin API.
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: time::OffsetDateTime,
}

/// The client's IP address (when the server records it), for per-IP rate limits.
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        Ok(ClientIp(client_ip(parts)))
    }
}

/// Sign in with a local admin account; returns a token valid for `MENTORFY_ADMIN_TOKEN_TTL`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "admin", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, body = ErrorEnvelope),
        (status = 401, description = "Wrong email or password (one message for both)", body = ErrorEnvelope),
        (status = 415, body = ErrorEnvelope),
        (status = 429, description = "Too many attempts for this email or IP; see retry-after", body = ErrorEnvelope),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginRequest>,
) -> Result<axum::Json<LoginResponse>, AppError> {
    let issued = state.admin().login(state.store(), &body.email, &body.password, ip).await?;
    Ok(axum::Json(LoginResponse { token: issued.token, expires_at: issued.expires_at }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A label for people, 1 to 100 characters.
    #[schema(example = "ingestion-prod")]
    pub name: String,
    /// Free label (a-z, 0-9, `-`, `_`), default `production`.
    pub environment: Option<String>,
}

/// An API key's metadata. The key itself is never listed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    pub environment: String,
    /// `sk_sensei_<id>`: the public start of the key.
    pub prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<time::OffsetDateTime>,
}

impl From<ApiKeyRow> for ApiKeyView {
    fn from(r: ApiKeyRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            environment: r.environment,
            prefix: r.prefix,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKeyResponse {
    /// The full key. Shown this once: it cannot be retrieved later.
    pub key: String,
    #[serde(flatten)]
    pub meta: ApiKeyView,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    pub keys: Vec<ApiKeyView>,
}

/// Create a project API key; the response holds the full key, once.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "admin", request_body = CreateApiKeyRequest,
    security(("admin" = [])),
    responses(
        (status = 201, body = CreatedApiKeyResponse),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    ))]
pub async fn create_api_key(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Json(body): Json<CreateApiKeyRequest>,
) -> Result<impl IntoResponse, AppError> {
    let source = match admin.source {
        mentorfy_auth::AdminSource::Local => "admin",
        mentorfy_auth::AdminSource::Supabase => "supabase",
    };
    let created_by = format!("{source}:{}", admin.subject);
    let created = state.admin().api_keys.create(&body.name, body.environment.as_deref(), Some(&created_by)).await?;
    Ok((StatusCode::CREATED, axum::Json(CreatedApiKeyResponse { key: created.key, meta: created.row.into() })))
}

/// List API keys (metadata only), newest first.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = ApiKeyList), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
) -> Result<axum::Json<ApiKeyList>, AppError> {
    let keys = state.admin().api_keys.list().await?;
    Ok(axum::Json(ApiKeyList { keys: keys.into_iter().map(ApiKeyView::from).collect() }))
}

/// Revoke an API key: refused from the next request on.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "API key id (UUID)")),
    responses(
        (status = 204, description = "Revoked (or already revoked)"),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    ))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let not_found = || AppError::not_found("no such API key");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    state.admin().api_keys.revoke(id).await?.ok_or_else(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}
