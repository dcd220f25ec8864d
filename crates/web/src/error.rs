//! The one error type of the HTTP layer and the one envelope every error is rendered in:
//! `{"error":{"code","message","details"}}`. The message is for the client; internal detail goes to the log
//! (once, here) and never into the response.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mentorfy_auth::AuthError;
use mentorfy_llm::{LlmError, ProviderKind};
use mentorfy_mentor::MentorError;
use mentorfy_store::StoreError;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// Logged, never sent.
    pub internal: Option<String>,
    /// Sent as `retry-after` (seconds).
    pub retry_after: Option<u64>,
    /// Extra response headers (rate-limit state).
    pub headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
}

/// The error envelope, as documented in the OpenAPI document.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable code such as `invalid_field` or `not_found`.
    pub code: String,
    /// A sentence for the developer reading it.
    pub message: String,
    /// Structured detail (for example `{"field":"email"}`), or null.
    #[schema(value_type = Object, nullable)]
    pub details: Value,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Null,
            internal: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on our side");
        e.internal = Some(detail.into());
        e
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match (&self.internal, self.status.is_server_error()) {
            (Some(detail), true) => {
                tracing::error!(code = self.code, status = self.status.as_u16(), detail = %detail, "request failed")
            }
            (Some(detail), false) => {
                tracing::info!(code = self.code, status = self.status.as_u16(), detail = %detail, "request refused")
            }
            (None, true) => tracing::warn!(code = self.code, status = self.status.as_u16(), "request failed"),
            (None, false) => tracing::debug!(code = self.code, status = self.status.as_u16(), "request refused"),
        }
        let body = json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                let mut err = AppError::unavailable("the database is unavailable; try again shortly");
                err.internal = Some(detail);
                err.retry_after = Some(2);
                err
            }
            StoreError::Conflict(detail) => {
                let mut err = AppError::new(StatusCode::CONFLICT, "conflict", "the request conflicts with stored data");
                err.internal = Some(detail);
                err
            }
            other => AppError::internal(other.to_string()),
        }
    }
}

impl From<MentorError> for AppError {
    fn from(e: MentorError) -> Self {
        match e {
            MentorError::NotFound(m) => AppError::not_found(m),
            MentorError::Invalid { field, message } => {
                AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message)
                    .with_details(json!({"field": field}))
            }
            MentorError::UnknownOrg(m) => {
                AppError::new(StatusCode::BAD_REQUEST, "unknown_org", m).with_details(json!({"field": "orgId"}))
            }
            MentorError::Forbidden(m) => AppError::new(StatusCode::FORBIDDEN, "forbidden", m),
            MentorError::Conflict(m) => AppError::new(StatusCode::CONFLICT, "conflict", m),
            MentorError::Store(s) => s.into(),
            MentorError::Llm(e) => e.into(),
            MentorError::Memory(m) => AppError::new(StatusCode::SERVICE_UNAVAILABLE, "memory_unavailable", m),
        }
    }
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidToken(why) => {
                AppError::unauthorized(format!("the Clerk session token was refused: {why}"))
            }
            AuthError::Unavailable(detail) => {
                let mut err = AppError::unavailable("cannot verify the sign-in token right now; try again shortly");
                err.internal = Some(detail);
                err
            }
            AuthError::Forbidden(why) => AppError::new(StatusCode::FORBIDDEN, "forbidden", why),
            AuthError::Config(detail) => AppError::internal(detail),
        }
    }
}

impl From<LlmError> for AppError {
    fn from(e: LlmError) -> Self {
        let public = e.public_message();
        let detail = e.to_string();
        let mut err = match &e {
            LlmError::NotConfigured { provider } => {
                let vars: &[&str] = match provider {
                    ProviderKind::Anthropic => &["ANTHROPIC_API_KEY"],
                    ProviderKind::OpenAi => &["OPENAI_API_KEY", "OPENAI_BASE_URL"],
                };
                return AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "provider_not_configured",
                    format!("the {provider} provider is not configured on this server: set {}", vars.join(" or ")),
                )
                .with_details(json!({"provider": provider.as_str(), "missing": vars}));
            }
            LlmError::RateLimited { retry_after, .. } => {
                let mut err = AppError::new(StatusCode::TOO_MANY_REQUESTS, "upstream_rate_limited", public);
                err.retry_after = retry_after.map(|d| d.as_secs_f64().ceil() as u64).or(Some(1));
                err
            }
            LlmError::SpendLimit { .. } => AppError::new(StatusCode::SERVICE_UNAVAILABLE, "upstream_quota", public),
            LlmError::Timeout(_) => AppError::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", public),
            _ => AppError::new(StatusCode::BAD_GATEWAY, "upstream_error", public),
        };
        if let Some(after) = e.retry_after()
            && err.retry_after.is_none()
        {
            err.retry_after = Some(after.as_secs_f64().ceil() as u64);
        }
        err.internal = Some(detail);
        err
    }
}
