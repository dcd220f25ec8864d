//! `GET/PUT /api/v1/settings` (the one-row alert settings: Slack webhook and threshold overrides) and
//! `POST /api/v1/settings/test-alert` (issue 7). The webhook URL is a secret: written here, never returned — only
//! masked. Admin auth; updates are idempotent; a bad payload is a 400 naming the field and stores nothing.

use axum::extract::State;
use axum::http::StatusCode;
use mentorfy_sensei::alerts::{TestAlertOutcome, Thresholds};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::admin_auth::AdminAuth;
use crate::error::{AppError, ErrorEnvelope};
use crate::extract::{Json, JsonOrEmpty};
use crate::state::AppState;

fn invalid(field: &str, message: impl Into<String>) -> AppError {
    AppError::new(StatusCode::BAD_REQUEST, "invalid_field", message).with_details(json!({"field": field}))
}

/// The settings as shown to admins.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    /// The webhook in force, masked (`https://hooks.slack.com/services/T…/B…/****`); null when none.
    pub slack_webhook_url: Option<String>,
    /// `settings` (saved here) or `environment` (`SLACK_WEBHOOK_URL`); null when none.
    pub slack_webhook_source: Option<String>,
    /// When the webhook last refused an alert for good, and why (a status class); null when it works.
    pub slack_webhook_error: Option<String>,
    /// The saved overrides (`null`: the `SENSEI_ALERT_*` defaults apply).
    #[schema(value_type = Option<Object>)]
    pub alert_thresholds: Option<Value>,
    /// The thresholds in force: defaults with the overrides applied.
    #[schema(value_type = Object)]
    pub effective_thresholds: Value,
}

fn thresholds_json(t: &Thresholds) -> Value {
    json!({
        "min_severity": t.min_severity.map_or("off", |s| s.as_str()),
        "health_below": t.health_below,
        "failure_rate": t.failure_rate.map_or(Value::from("off"), |(share, window)| {
            json!({"share": share, "window_secs": window.as_secs()})
        }),
        "min_conversations": t.min_conversations,
    })
}

async fn view(state: &AppState) -> Result<SettingsView, AppError> {
    let alerts = state.alerts();
    let stored = state.store().alert_settings().await?;
    let in_force = alerts.webhook_in_force().await.map_err(|e| AppError::internal(e.to_string()))?;
    let thresholds = alerts.thresholds().await.map_err(|e| AppError::internal(e.to_string()))?;
    Ok(SettingsView {
        slack_webhook_source: in_force.as_ref().map(|(_, s)| if *s { "settings" } else { "environment" }.to_owned()),
        slack_webhook_url: in_force.map(|(masked, _)| masked),
        slack_webhook_error: stored.slack_webhook_error,
        alert_thresholds: stored.alert_thresholds,
        effective_thresholds: thresholds_json(&thresholds),
    })
}

/// Read the alert settings (the webhook masked).
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings", security(("admin" = [])),
    responses((status = 200, body = SettingsView), (status = 401, body = ErrorEnvelope)))]
pub async fn get_settings(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
) -> Result<axum::Json<SettingsView>, AppError> {
    Ok(axum::Json(view(&state).await?))
}

/// `PUT /api/v1/settings`: a field left out stays as it is; `null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    /// `https://hooks.slack.com/…`, or another https URL that resolves to a public address; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub slack_webhook_url: Option<Option<String>>,
    /// `{"min_severity": "low"|"medium"|"high"|"critical"|"off", "health_below": 0-100,
    /// "failure_rate": {"share": 0-1, "window_secs": n} | "off", "min_conversations": n}` (any subset); `null`
    /// removes the overrides.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub alert_thresholds: Option<Option<Value>>,
}

/// A field that is present (even as `null`) is `Some`; an absent one stays `None` (by `default`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Validates threshold overrides strictly (the alert service tolerates bad stored values; we never store one).
fn check_thresholds(v: &Value) -> Result<(), AppError> {
    let field = |k: &str| format!("alert_thresholds.{k}");
    let obj: &Map<String, Value> = v.as_object().ok_or_else(|| invalid("alert_thresholds", "must be an object"))?;
    for (k, val) in obj {
        match k.as_str() {
            "min_severity" => {
                if !matches!(val.as_str(), Some("low" | "medium" | "high" | "critical" | "off")) {
                    return Err(invalid(&field(k), "must be low, medium, high, critical or off"));
                }
            }
            "health_below" => {
                if !val.as_f64().is_some_and(|h| (0.0..=100.0).contains(&h)) {
                    return Err(invalid(&field(k), "must be a number from 0 to 100 (0 = off)"));
                }
            }
            "failure_rate" => match val {
                Value::String(s) if s == "off" => {}
                Value::Object(r) => {
                    if r.keys().any(|k| k != "share" && k != "window_secs") {
                        return Err(invalid(&field(k), "takes only share and window_secs"));
                    }
                    if !r.get("share").and_then(Value::as_f64).is_some_and(|s| s > 0.0 && s <= 1.0) {
                        return Err(invalid("alert_thresholds.failure_rate.share", "must be above 0 and at most 1"));
                    }
                    if !r.get("window_secs").and_then(Value::as_u64).is_some_and(|w| (60..=30 * 86_400).contains(&w)) {
                        return Err(invalid(
                            "alert_thresholds.failure_rate.window_secs",
                            "must be whole seconds from 60 to 2592000 (30 days)",
                        ));
                    }
                }
                _ => return Err(invalid(&field(k), "must be {share, window_secs} or \"off\"")),
            },
            "min_conversations" => {
                if !val.as_u64().is_some_and(|n| (1..=100_000).contains(&n)) {
                    return Err(invalid(&field(k), "must be a whole number from 1 to 100000"));
                }
            }
            other => return Err(invalid(&field(other), format!("unknown threshold '{other}'"))),
        }
    }
    Ok(())
}

/// Update the alert settings. Everything is validated before anything is stored.
#[utoipa::path(put, path = "/api/v1/settings", tag = "settings", request_body = SettingsUpdate,
    security(("admin" = [])),
    responses(
        (status = 200, body = SettingsView),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
    ))]
pub async fn put_settings(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    Json(body): Json<SettingsUpdate>,
) -> Result<axum::Json<SettingsView>, AppError> {
    if let Some(Some(url)) = &body.slack_webhook_url {
        state.alerts().validate_webhook(url.trim()).map_err(|e| invalid("slack_webhook_url", e.to_string()))?;
    }
    if let Some(Some(t)) = &body.alert_thresholds {
        check_thresholds(t)?;
    }
    if let Some(url) = &body.slack_webhook_url {
        state.store().set_slack_webhook(url.as_deref().map(str::trim)).await?;
        // A new URL starts with a clean record.
        state.store().set_slack_webhook_failing(None).await?;
    }
    if let Some(t) = &body.alert_thresholds {
        state.store().set_alert_thresholds(t.as_ref()).await?;
    }
    Ok(axum::Json(view(&state).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestAlertRequest {
    /// Try this URL instead of the saved one (it is not saved).
    pub slack_webhook_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestAlertResult {
    /// `sent` or `failed`.
    pub status: String,
    /// Why it failed: a status class such as `http 404 (rejected)`; never the URL.
    pub error: Option<String>,
}

/// Send a test message to the webhook (the saved one, or the one given), recorded as a `test` alert event.
#[utoipa::path(post, path = "/api/v1/settings/test-alert", tag = "settings", request_body = TestAlertRequest,
    security(("admin" = [])),
    responses(
        (status = 200, body = TestAlertResult),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "No webhook is configured"),
    ))]
pub async fn test_alert(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    JsonOrEmpty(body): JsonOrEmpty<TestAlertRequest>,
) -> Result<axum::Json<TestAlertResult>, AppError> {
    let outcome = state
        .alerts()
        .send_test_alert(body.slack_webhook_url.as_deref().map(str::trim))
        .await
        .map_err(|e| AppError::internal(e.to_string()))?;
    match outcome {
        TestAlertOutcome::Sent => Ok(axum::Json(TestAlertResult { status: "sent".into(), error: None })),
        TestAlertOutcome::Failed(why) => Ok(axum::Json(TestAlertResult { status: "failed".into(), error: Some(why) })),
        TestAlertOutcome::InvalidUrl(e) => Err(invalid("slack_webhook_url", e.to_string())),
        TestAlertOutcome::NotConfigured => Err(AppError::new(
            StatusCode::CONFLICT,
            "not_configured",
            "no Slack webhook is configured: save one in the settings or set SLACK_WEBHOOK_URL",
        )),
    }
}
