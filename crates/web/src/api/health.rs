//! Liveness and readiness probes.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, ErrorEnvelope};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` for liveness, `ready` for readiness.
    pub status: &'static str,
}

/// Liveness: the process is up and serving. Never touches the database.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = HealthResponse)))]
pub async fn get_healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// Readiness: the database answers. 503 when it does not, so a load balancer stops sending traffic.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = HealthResponse),
    (status = 503, description = "The database is unreachable", body = ErrorEnvelope),
))]
pub async fn get_readyz(State(state): State<AppState>) -> Result<Json<HealthResponse>, AppError> {
    match state.store().ping().await {
        Ok(()) => Ok(Json(HealthResponse { status: "ready" })),
        Err(e) => {
            let mut err =
                AppError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the database is unreachable");
            err.internal = Some(e.to_string());
            Err(err)
        }
    }
}
