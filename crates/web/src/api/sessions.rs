//! `/api/session…`: Mentor's anonymous sessions. A session id is a capability; contact details and context
//! are returned to whoever holds it, the Clerk user id never is.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use mentorfy_core::Session;
use mentorfy_mentor::{CreateSession, FieldUpdate, SessionPatch};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::{AppError, ErrorEnvelope};
use crate::extract::{Json, JsonOrEmpty, OptionalBearer, SessionIdPath};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateSessionRequest {
    /// Organisation slug, e.g. `rafael-tatts`.
    #[schema(example = "rafael-tatts")]
    pub org_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionResponse {
    pub session_id: String,
    /// True when the signed-in caller already had a session in this org and it was returned (200, not 201).
    pub returning: bool,
    /// True when another session with this email belongs to a signed-in account: ask the person to sign in
    /// to recover it. Its id is never returned without that sign-in.
    pub account_exists: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub session_id: String,
    pub org_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    #[schema(value_type = Object)]
    pub context: Value,
    /// `in_progress`, `completed` or `abandoned`.
    pub status: &'static str,
    /// Whether a signed-in account is linked to this session.
    pub linked: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: time::OffsetDateTime,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        Self {
            session_id: s.id.to_string(),
            org_id: s.org_id.to_string(),
            email: s.email,
            phone: s.phone,
            name: s.name,
            context: s.context,
            status: s.status.as_str(),
            linked: s.clerk_user_id.is_some(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// Absent keys are left alone; `null` clears a contact field.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PatchSessionRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub name: Option<Option<String>>,
    /// Deep-merged into the stored context: objects merge recursively, arrays and scalars replace,
    /// `null` deletes a key.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
}

/// A field that was present in the body: `Some(None)` for `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn field_update(v: Option<Option<String>>) -> FieldUpdate<String> {
    match v {
        None => FieldUpdate::Keep,
        Some(None) => FieldUpdate::Clear,
        Some(Some(s)) => FieldUpdate::Set(s),
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchSessionResponse {
    pub success: bool,
    pub session_id: String,
    /// As in session creation: another session with this email belongs to a signed-in account.
    pub account_exists: bool,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CompleteSessionRequest {
    /// Merged like PATCH before completing.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompleteSessionResponse {
    pub success: bool,
    pub session_id: String,
    pub status: &'static str,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinkSessionRequest {
    /// Must equal the `sub` of the bearer token.
    #[schema(example = "user_2abc")]
    pub clerk_user_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkSessionResponse {
    pub success: bool,
    pub session_id: String,
    pub linked: bool,
}

/// Create a session, or recover the signed-in caller's own.
///
/// With a verified Clerk token whose user already has a session in this org, that session's id is
/// returned (200, `returning: true`). Otherwise a new session is created (201); if the email belongs to
/// another signed-in account, `accountExists` is true and nothing of that account is revealed.
#[utoipa::path(post, path = "/api/session", tag = "sessions", request_body = CreateSessionRequest,
    security((), ("clerk" = [])),
    responses(
        (status = 201, description = "Created", body = CreateSessionResponse),
        (status = 200, description = "The signed-in caller's existing session", body = CreateSessionResponse),
        (status = 400, description = "Malformed body or unknown orgId", body = ErrorEnvelope),
        (status = 401, description = "A bearer token was sent but is not valid", body = ErrorEnvelope),
        (status = 415, body = ErrorEnvelope),
        (status = 422, description = "A field is not acceptable", body = ErrorEnvelope),
    ))]
pub async fn create_session(
    State(state): State<AppState>,
    OptionalBearer(token): OptionalBearer,
    Json(body): Json<CreateSessionRequest>,
) -> Result<impl IntoResponse, AppError> {
    let user = match token {
        Some(token) => Some(state.verify_clerk(&token).await?.sub),
        None => None,
    };
    let input = CreateSession { org_id: body.org_id, email: body.email, phone: body.phone, name: body.name };
    let outcome = state.sessions().create(input, user.as_deref()).await?;
    let status = if outcome.returning { StatusCode::OK } else { StatusCode::CREATED };
    Ok((
        status,
        axum::Json(CreateSessionResponse {
            session_id: outcome.session.id.to_string(),
            returning: outcome.returning,
            account_exists: outcome.account_exists,
        }),
    ))
}

/// Read a session (to restore a returning visitor on the same device).
#[utoipa::path(get, path = "/api/session/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id (UUID)")),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorEnvelope)))]
pub async fn get_session(
    State(state): State<AppState>,
    SessionIdPath(id): SessionIdPath,
) -> Result<axum::Json<SessionView>, AppError> {
    Ok(axum::Json(state.sessions().get(id).await?.into()))
}

/// Update contact details and deep-merge `context`, atomically.
#[utoipa::path(patch, path = "/api/session/{id}", tag = "sessions", request_body = PatchSessionRequest,
    params(("id" = String, Path, description = "Session id (UUID)")),
    responses(
        (status = 200, body = PatchSessionResponse),
        (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
        (status = 415, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn patch_session(
    State(state): State<AppState>,
    SessionIdPath(id): SessionIdPath,
    Json(body): Json<PatchSessionRequest>,
) -> Result<axum::Json<PatchSessionResponse>, AppError> {
    let patch = SessionPatch {
        email: field_update(body.email),
        phone: field_update(body.phone),
        name: field_update(body.name),
        context: body.context,
    };
    let outcome = state.sessions().update(id, patch).await?;
    Ok(axum::Json(PatchSessionResponse {
        success: true,
        session_id: outcome.session.id.to_string(),
        account_exists: outcome.account_exists,
    }))
}

/// Mark the session completed (idempotent), merging `context` first if given. The body may be empty.
#[utoipa::path(post, path = "/api/session/{id}/complete", tag = "sessions", request_body = CompleteSessionRequest,
    params(("id" = String, Path, description = "Session id (UUID)")),
    responses((status = 200, body = CompleteSessionResponse), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn complete_session(
    State(state): State<AppState>,
    SessionIdPath(id): SessionIdPath,
    JsonOrEmpty(body): JsonOrEmpty<CompleteSessionRequest>,
) -> Result<axum::Json<CompleteSessionResponse>, AppError> {
    let session = state.sessions().complete(id, body.context).await?;
    Ok(axum::Json(CompleteSessionResponse {
        success: true,
        session_id: session.id.to_string(),
        status: session.status.as_str(),
    }))
}

/// Link the session to the signed-in Clerk user.
///
/// Requires `Authorization: Bearer <Clerk session token>`; the linked user is the token's `sub`, and a
/// `clerkUserId` that differs is refused (403). Linking again to the same user is a no-op; a session linked
/// to another user is a conflict (409). Without `CLERK_JWT_KEY` or `CLERK_JWKS_URL` configured: 503.
#[utoipa::path(post, path = "/api/session/{id}/link", tag = "sessions", request_body = LinkSessionRequest,
    params(("id" = String, Path, description = "Session id (UUID)")),
    security(("clerk" = [])),
    responses(
        (status = 200, body = LinkSessionResponse),
        (status = 401, description = "Missing or invalid Clerk token", body = ErrorEnvelope),
        (status = 403, description = "clerkUserId is not the token's user", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Linked to another user", body = ErrorEnvelope),
        (status = 503, description = "Clerk is not configured", body = ErrorEnvelope),
    ))]
pub async fn link_session(
    State(state): State<AppState>,
    SessionIdPath(id): SessionIdPath,
    OptionalBearer(token): OptionalBearer,
    Json(body): Json<LinkSessionRequest>,
) -> Result<axum::Json<LinkSessionResponse>, AppError> {
    state.require_clerk()?;
    let token =
        token.ok_or_else(|| AppError::unauthorized("linking needs Authorization: Bearer <Clerk session token>"))?;
    let claims = state.verify_clerk(&token).await?;
    let session = state.sessions().link(id, &body.clerk_user_id, &claims.sub).await?;
    Ok(axum::Json(LinkSessionResponse { success: true, session_id: session.id.to_string(), linked: true }))
}
