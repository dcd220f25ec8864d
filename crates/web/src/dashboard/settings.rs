//! Settings: the Slack webhook (shown masked, set, cleared, tested), the alert thresholds, and project API keys
//! (listed, created with a one-time reveal of the full key, revoked). Everything goes through the API handlers, so
//! the page shows exactly what `/api/v1/settings` and `/api/v1/api-keys` answer.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value};

use super::fmt;
use super::page::{Layout, PageError, render};
use super::session::{Admin, Form};
use crate::api::admin::{self, ApiKeyView, CreateApiKeyRequest};
use crate::api::query::query_pairs;
use crate::api::settings::{self, SettingsUpdate, SettingsView};
use crate::error::AppError;
use crate::extract::{Json, JsonOrEmpty};
use crate::state::AppState;

/// The path of the page.
const PATH: &str = "/dashboard/settings";
/// The id of the readonly input holding a newly created key (the Copy button points at it).
const NEW_KEY_INPUT: &str = "new-api-key";

/// A message at the top of the page.
pub struct Flash {
    /// `ok` or `error`.
    pub tone: &'static str,
    pub text: String,
}

/// The threshold form's values, as typed (empty = the default applies).
#[derive(Default)]
pub struct ThresholdFields {
    pub min_severity: String,
    pub health_below: String,
    pub failure_share: String,
    pub failure_window: String,
    pub failure_off: bool,
    pub min_conversations: String,
}

impl ThresholdFields {
    /// The saved overrides (`alert_thresholds`) as form values.
    fn of_saved(saved: Option<&Value>) -> Self {
        let Some(o) = saved.and_then(Value::as_object) else { return ThresholdFields::default() };
        let text = |v: Option<&Value>| match v {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let rate = o.get("failure_rate");
        ThresholdFields {
            min_severity: text(o.get("min_severity")),
            health_below: text(o.get("health_below")),
            failure_share: text(rate.and_then(|r| r.get("share"))),
            failure_window: text(rate.and_then(|r| r.get("window_secs"))),
            failure_off: rate.and_then(Value::as_str) == Some("off"),
            min_conversations: text(o.get("min_conversations")),
        }
    }

    fn of_form(form: &Form) -> Self {
        let field = |name: &str| form.get(name).unwrap_or_default().trim().to_owned();
        ThresholdFields {
            min_severity: field("min_severity"),
            health_below: field("health_below"),
            failure_share: field("failure_share"),
            failure_window: field("failure_window"),
            failure_off: form.get("failure_off").is_some_and(|v| !v.is_empty()),
            min_conversations: field("min_conversations"),
        }
    }

    /// The `alert_thresholds` body: only the fields filled in; none filled is `null` (the defaults apply). A
    /// number that does not parse is sent as typed, so the API's own message explains what is wrong.
    fn to_json(&self) -> Value {
        fn typed(raw: &str) -> Value {
            match serde_json::from_str::<Value>(raw) {
                Ok(n @ Value::Number(_)) => n,
                _ => Value::String(raw.to_owned()),
            }
        }
        let mut o = Map::new();
        if !self.min_severity.is_empty() {
            o.insert("min_severity".into(), Value::String(self.min_severity.clone()));
        }
        if !self.health_below.is_empty() {
            o.insert("health_below".into(), typed(&self.health_below));
        }
        if self.failure_off {
            o.insert("failure_rate".into(), Value::String("off".into()));
        } else if !self.failure_share.is_empty() || !self.failure_window.is_empty() {
            let mut rate = Map::new();
            if !self.failure_share.is_empty() {
                rate.insert("share".into(), typed(&self.failure_share));
            }
            if !self.failure_window.is_empty() {
                rate.insert("window_secs".into(), typed(&self.failure_window));
            }
            o.insert("failure_rate".into(), Value::Object(rate));
        }
        if !self.min_conversations.is_empty() {
            o.insert("min_conversations".into(), typed(&self.min_conversations));
        }
        if o.is_empty() { Value::Null } else { Value::Object(o) }
    }
}

/// One API key in the list.
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub environment: String,
    pub created: String,
    pub last_used: String,
    pub revoked: String,
    pub active: bool,
}

impl KeyRow {
    fn of(k: &ApiKeyView, now: time::OffsetDateTime) -> Self {
        KeyRow {
            id: k.id.to_string(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            environment: k.environment.clone(),
            created: fmt::datetime(k.created_at),
            last_used: k.last_used_at.map_or_else(|| "never".to_owned(), |t| fmt::ago(t, now)),
            revoked: k.revoked_at.map_or_else(String::new, fmt::datetime),
            active: k.revoked_at.is_none(),
        }
    }
}

/// A key just created: shown once, on the response to the create form.
pub struct NewKey {
    pub name: String,
    pub key: String,
    pub input_id: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard/settings.html")]
struct SettingsPage {
    layout: Layout,
    flash: Option<Flash>,
    /// The masked webhook in force, or empty.
    webhook: String,
    webhook_source: String,
    /// Whether the webhook in force is the one saved here (so it can be removed here).
    webhook_saved: bool,
    webhook_error: String,
    webhook_form_error: Option<String>,
    thresholds_error: Option<String>,
    t: ThresholdFields,
    effective: Vec<(&'static str, String)>,
    severities: Vec<(&'static str, &'static str)>,
    keys: Vec<KeyRow>,
    key_error: Option<String>,
    key_name: String,
    key_environment: String,
    new_key: Option<NewKey>,
}

/// What a POST changes on the page it renders directly (errors, the test result, a new key).
#[derive(Default)]
struct Outcome {
    flash: Option<Flash>,
    webhook_form_error: Option<String>,
    thresholds_error: Option<String>,
    thresholds: Option<ThresholdFields>,
    key_error: Option<String>,
    key_name: String,
    key_environment: String,
    new_key: Option<NewKey>,
}

fn effective_rows(v: &Value) -> Vec<(&'static str, String)> {
    let get = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let severity = match get("min_severity") {
        Value::String(s) if s == "off" => "off (no alerts for single failures)".to_owned(),
        Value::String(s) => format!("{s} and above"),
        _ => "–".to_owned(),
    };
    let health = match get("health_below").as_f64() {
        Some(h) if h <= 0.0 => "off".to_owned(),
        Some(h) => format!("below {h:.0}"),
        None => "–".to_owned(),
    };
    let rate = match get("failure_rate") {
        Value::Object(r) => format!(
            "{} of conversations within {}",
            fmt::percent(r.get("share").and_then(Value::as_f64)),
            window_text(r.get("window_secs").and_then(Value::as_u64).unwrap_or(0))
        ),
        Value::String(s) => s,
        _ => "–".to_owned(),
    };
    let min = get("min_conversations").as_i64().map_or_else(|| "–".to_owned(), fmt::count);
    vec![
        ("Failure severity that alerts", severity),
        ("Health score that alerts", health),
        ("Failure rate that alerts", rate),
        ("Fewest conversations for a rate alert", min),
    ]
}

fn window_text(secs: u64) -> String {
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// The notice of a redirect after a successful post (fixed codes only: nothing from the URL is shown as text).
fn notice(raw: Option<&str>) -> Result<Option<Flash>, PageError> {
    let mut flash = None;
    for (k, v) in query_pairs(raw)? {
        if k != "notice" {
            continue;
        }
        let text = match v.as_str() {
            "webhook-saved" => "The Slack webhook was saved. Send a test alert to check it.",
            "webhook-cleared" => "The Slack webhook was removed from the settings.",
            "thresholds-saved" => "The alert thresholds were saved.",
            "key-revoked" => "The API key was revoked: requests with it are refused from now on.",
            _ => continue,
        };
        flash = Some(Flash { tone: "ok", text: text.to_owned() });
    }
    Ok(flash)
}

async fn page(state: &AppState, admin: &Admin, outcome: Outcome) -> Result<SettingsPage, PageError> {
    let view: SettingsView = settings::get_settings(State(state.clone()), admin.api()).await?.0;
    let keys = admin::list_api_keys(State(state.clone()), admin.api()).await?.0.keys;
    let now = mentorfy_store::now();
    Ok(SettingsPage {
        layout: Layout::new(admin, PATH, "Settings"),
        flash: outcome.flash,
        webhook: view.slack_webhook_url.clone().unwrap_or_default(),
        webhook_source: match view.slack_webhook_source.as_deref() {
            Some("environment") => "from the SLACK_WEBHOOK_URL environment variable".to_owned(),
            Some(_) => "saved in these settings".to_owned(),
            None => String::new(),
        },
        webhook_saved: view.slack_webhook_source.as_deref() == Some("settings"),
        webhook_error: view.slack_webhook_error.clone().unwrap_or_default(),
        webhook_form_error: outcome.webhook_form_error,
        thresholds_error: outcome.thresholds_error,
        t: outcome.thresholds.unwrap_or_else(|| ThresholdFields::of_saved(view.alert_thresholds.as_ref())),
        effective: effective_rows(&view.effective_thresholds),
        severities: vec![
            ("low", "Low and above"),
            ("medium", "Medium and above"),
            ("high", "High and above"),
            ("critical", "Critical only"),
            ("off", "Off"),
        ],
        keys: keys.iter().map(|k| KeyRow::of(k, now)).collect(),
        key_error: outcome.key_error,
        key_name: outcome.key_name,
        key_environment: outcome.key_environment,
        new_key: outcome.new_key,
    })
}

fn with_status(mut response: Response, status: StatusCode) -> Response {
    *response.status_mut() = status;
    response
}

/// A 400 from the API as a sentence for the form (with the field it names).
fn form_message(e: AppError) -> Result<String, PageError> {
    if e.status == StatusCode::BAD_REQUEST || e.status == StatusCode::UNPROCESSABLE_ENTITY {
        match PageError::from(e) {
            PageError::Show { message, .. } => Ok(message),
            other => Err(other),
        }
    } else {
        Err(e.into())
    }
}

/// `GET /dashboard/settings`.
pub async fn show(State(state): State<AppState>, admin: Admin, RawQuery(raw): RawQuery) -> Result<Response, PageError> {
    let outcome = Outcome { flash: notice(raw.as_deref())?, ..Outcome::default() };
    render(&page(&state, &admin, outcome).await?)
}

/// `POST /dashboard/settings/alerts`: `action` = `webhook` (save `slack_webhook_url`), `clear_webhook`, or
/// `thresholds` (the threshold fields; empty = the default). A refused value shows the API's message next to the
/// form (400) and stores nothing.
pub async fn save_alerts(State(state): State<AppState>, form: Form) -> Result<Response, PageError> {
    let action = form.get("action").unwrap_or_default();
    let (body, done, thresholds) = match action {
        "webhook" => {
            let url = form.get("slack_webhook_url").unwrap_or_default().trim().to_owned();
            if url.is_empty() {
                let outcome = Outcome {
                    webhook_form_error: Some("Paste the webhook URL to save it, or use Remove webhook.".to_owned()),
                    ..Outcome::default()
                };
                let response = render(&page(&state, &form.admin, outcome).await?)?;
                return Ok(with_status(response, StatusCode::BAD_REQUEST));
            }
            (serde_json::json!({"slack_webhook_url": url}), "webhook-saved", None)
        }
        "clear_webhook" => (serde_json::json!({"slack_webhook_url": null}), "webhook-cleared", None),
        "thresholds" => {
            let t = ThresholdFields::of_form(&form);
            (serde_json::json!({"alert_thresholds": t.to_json()}), "thresholds-saved", Some(t))
        }
        _ => return Err(PageError::new(StatusCode::BAD_REQUEST, "This form could not be read.")),
    };
    let update: SettingsUpdate =
        serde_json::from_value(body).map_err(|e| PageError::from(AppError::internal(format!("settings body: {e}"))))?;
    match settings::put_settings(State(state.clone()), form.admin.api(), Json(update)).await {
        Ok(_) => Ok(Redirect::to(&format!("{PATH}?notice={done}")).into_response()),
        Err(e) => {
            let message = form_message(e)?;
            let outcome = if thresholds.is_some() {
                Outcome { thresholds_error: Some(message), thresholds, ..Outcome::default() }
            } else {
                Outcome { webhook_form_error: Some(message), ..Outcome::default() }
            };
            let response = render(&page(&state, &form.admin, outcome).await?)?;
            Ok(with_status(response, StatusCode::BAD_REQUEST))
        }
    }
}

/// `POST /dashboard/settings/test-alert`: sends a test message to the webhook in force and shows the result.
pub async fn test_alert(State(state): State<AppState>, form: Form) -> Result<Response, PageError> {
    let result = settings::test_alert(State(state.clone()), form.admin.api(), JsonOrEmpty(Default::default())).await;
    let (flash, status) = match result {
        Ok(r) if r.0.status == "sent" => {
            (Flash { tone: "ok", text: "Test alert sent: check the Slack channel.".to_owned() }, StatusCode::OK)
        }
        Ok(r) => (
            Flash {
                tone: "error",
                text: format!(
                    "The test alert was not delivered: {}.",
                    r.0.error.unwrap_or_else(|| "no reason given".to_owned())
                ),
            },
            StatusCode::OK,
        ),
        Err(e) if e.status.is_client_error() => {
            let status = e.status;
            let text = if status == StatusCode::CONFLICT {
                format!("No test alert was sent: {}.", e.message)
            } else {
                format!("No test alert was sent: {}", form_message(e)?)
            };
            (Flash { tone: "error", text }, status)
        }
        Err(e) => return Err(e.into()),
    };
    let response = render(&page(&state, &form.admin, Outcome { flash: Some(flash), ..Outcome::default() }).await?)?;
    Ok(with_status(response, status))
}

/// `POST /dashboard/settings/keys` (name, environment): creates a key and renders the page with the full key,
/// once (201, `no-store`). The key is never put in a URL, a cookie or a redirect.
pub async fn create_key(State(state): State<AppState>, form: Form) -> Result<Response, PageError> {
    let name = form.get("name").unwrap_or_default().trim().to_owned();
    let environment = form.get("environment").unwrap_or_default().trim().to_owned();
    let body =
        CreateApiKeyRequest { name: name.clone(), environment: (!environment.is_empty()).then(|| environment.clone()) };
    let created = match admin::create_api_key(State(state.clone()), form.admin.api(), Json(body)).await {
        Ok(r) => r.into_response(),
        Err(e) => {
            let message = form_message(e)?;
            let outcome = Outcome {
                key_error: Some(message),
                key_name: name,
                key_environment: environment,
                ..Outcome::default()
            };
            let response = render(&page(&state, &form.admin, outcome).await?)?;
            return Ok(with_status(response, StatusCode::BAD_REQUEST));
        }
    };
    let bytes = axum::body::to_bytes(created.into_body(), 64 * 1024)
        .await
        .map_err(|e| PageError::from(AppError::internal(format!("api key response: {e}"))))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| PageError::from(AppError::internal(format!("api key response: {e}"))))?;
    let key = v.get("key").and_then(Value::as_str).unwrap_or_default().to_owned();
    let key_name = v.get("name").and_then(Value::as_str).unwrap_or(&name).to_owned();
    let outcome = Outcome {
        flash: Some(Flash { tone: "ok", text: format!("API key \u{201c}{key_name}\u{201d} created.") }),
        new_key: Some(NewKey { name: key_name, key, input_id: NEW_KEY_INPUT }),
        ..Outcome::default()
    };
    let mut response = with_status(render(&page(&state, &form.admin, outcome).await?)?, StatusCode::CREATED);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /dashboard/settings/keys/{id}/revoke`.
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    admin::revoke_api_key(State(state), form.admin.api(), Path(id)).await?;
    Ok(Redirect::to(&format!("{PATH}?notice=key-revoked")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_threshold_fields_are_null_and_numbers_are_typed() {
        assert_eq!(ThresholdFields::default().to_json(), Value::Null);
        let t = ThresholdFields {
            min_severity: "medium".into(),
            health_below: "30".into(),
            failure_share: "0.2".into(),
            failure_window: "3600".into(),
            failure_off: false,
            min_conversations: "abc".into(),
        };
        assert_eq!(
            t.to_json(),
            json!({"min_severity": "medium", "health_below": 30, "failure_rate": {"share": 0.2, "window_secs": 3600},
                   "min_conversations": "abc"})
        );
        let off = ThresholdFields { failure_off: true, failure_share: "0.2".into(), ..ThresholdFields::default() };
        assert_eq!(off.to_json(), json!({"failure_rate": "off"}));
        let back = ThresholdFields::of_saved(Some(&t.to_json()));
        assert_eq!((back.failure_share.as_str(), back.min_conversations.as_str()), ("0.2", "abc"));
    }

    #[test]
    fn windows_read_in_the_largest_whole_unit() {
        assert_eq!(window_text(3600), "1 h");
        assert_eq!(window_text(86_400 * 2), "2 d");
        assert_eq!(window_text(90), "90 s");
    }
}
