//! Conversations: the filtered list (filters live in the URL, so a view can be shared and saved), saved views, and
//! one conversation's transcript with per-message sentiment, its failures marked on the messages they point at,
//! and the health breakdown.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value};

use super::fmt;
use super::overview::ConversationLine;
use super::page::{Layout, PageError, is_htmx, render};
use super::session::{Admin, Form};
use crate::api::conversations::{self, ConversationView, FailureView, MessageView};
use crate::api::query::query_pairs;
use crate::api::saved_views::{self, CreateSavedView};
use crate::extract::Json;
use crate::state::AppState;

pub use mentorfy_sensei::analysis::detect::FAILURE_TYPES;

/// The query without empty fields (an empty form field means "any"), re-encoded.
pub fn clean_query(raw: Option<&str>) -> Result<Vec<(String, String)>, PageError> {
    Ok(query_pairs(raw)?.into_iter().filter(|(_, v)| !v.trim().is_empty()).collect())
}

pub fn encode(pairs: &[(String, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// The filter form's current values.
#[derive(Default)]
pub struct Filters {
    pub range: String,
    pub q: String,
    pub health_min: String,
    pub health_max: String,
    pub has_failures: String,
    pub failure_type: String,
    pub failure_status: String,
    pub environment: String,
    pub source: String,
    pub agent_id: String,
    pub pattern: String,
    pub sort: String,
}

impl Filters {
    fn of(pairs: &[(String, String)]) -> Self {
        let mut f = Filters::default();
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "range" => &mut f.range,
                "q" => &mut f.q,
                "health_min" => &mut f.health_min,
                "health_max" => &mut f.health_max,
                "has_failures" => &mut f.has_failures,
                "failure_type" => &mut f.failure_type,
                "failure_status" => &mut f.failure_status,
                "environment" => &mut f.environment,
                "source" => &mut f.source,
                "agent_id" => &mut f.agent_id,
                "pattern" => &mut f.pattern,
                "sort" => &mut f.sort,
                _ => continue,
            };
            slot.clone_from(v);
        }
        f
    }
}

pub struct Row {
    pub line: ConversationLine,
    pub source: String,
    pub environment: String,
    pub messages: String,
    pub sentiment: String,
    pub started: String,
}

pub struct SavedViewLink {
    pub id: String,
    pub name: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "dashboard/conversations.html")]
struct ListPage {
    layout: Layout,
    f: Filters,
    failure_types: Vec<(String, String)>,
    results: Results,
    views: Vec<SavedViewLink>,
    /// The filters of this view (no cursor), for "save this view".
    filters_query: String,
}

#[derive(Template)]
#[template(path = "dashboard/_conversation_results.html")]
struct Results {
    rows: Vec<Row>,
    next_href: Option<String>,
    first_href: Option<String>,
    filtered: bool,
}

fn sentiment_label(s: Option<f64>) -> String {
    match s {
        None => "–".to_owned(),
        Some(s) if s > 0.05 => format!("positive ({s:+.2})"),
        Some(s) if s < -0.05 => format!("negative ({s:+.2})"),
        Some(s) => format!("neutral ({s:+.2})"),
    }
}

fn row(c: &ConversationView, now: time::OffsetDateTime) -> Row {
    Row {
        line: ConversationLine::of(c, now),
        source: c.source.clone(),
        environment: c.environment.clone(),
        messages: fmt::count(c.message_count),
        sentiment: sentiment_label(c.avg_sentiment),
        started: fmt::datetime(c.started_at),
    }
}

/// `GET /dashboard/conversations?…`: the same parameters as `GET /api/v1/conversations`.
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let pairs = clean_query(raw.as_deref())?;
    let page =
        conversations::list_conversations(State(state.clone()), admin.api(), RawQuery(Some(encode(&pairs)))).await?.0;
    let now = mentorfy_store::now();
    let without_cursor: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "cursor").cloned().collect();
    let filters_query = encode(&without_cursor);
    let next_href = page.next_cursor.as_ref().map(|cursor| {
        let mut next = without_cursor.clone();
        next.push(("cursor".to_owned(), cursor.clone()));
        format!("/dashboard/conversations?{}", encode(&next))
    });
    let first_href =
        pairs.iter().any(|(k, _)| k == "cursor").then(|| format!("/dashboard/conversations?{filters_query}"));
    let results = Results {
        rows: page.data.iter().map(|c| row(c, now)).collect(),
        next_href,
        first_href,
        filtered: without_cursor.iter().any(|(k, _)| k != "sort"),
    };
    if is_htmx(&headers) {
        return render(&results);
    }
    let views =
        saved_views::list_saved_views(State(state.clone()), admin.api(), RawQuery(Some("page=conversations".into())))
            .await?
            .0
            .data
            .into_iter()
            .map(|v| SavedViewLink {
                id: v.id.to_string(),
                href: format!("/dashboard/conversations?{}", encode(&filter_pairs(&v.filters))),
                name: v.name,
            })
            .collect();
    render(&ListPage {
        layout: Layout::new(&admin, "/dashboard/conversations", "Conversations"),
        f: Filters::of(&pairs),
        failure_types: FAILURE_TYPES.iter().map(|t| ((*t).to_owned(), fmt::label(t))).collect(),
        results,
        views,
        filters_query,
    })
}

/// A saved view's filters as query pairs.
fn filter_pairs(filters: &Value) -> Vec<(String, String)> {
    filters
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
        .unwrap_or_default()
}

/// `POST /dashboard/views` (name, filters as a query string): saves the current conversations filters.
pub async fn save_view(State(state): State<AppState>, form: Form) -> Result<Response, PageError> {
    let name = form.get("name").unwrap_or_default().to_owned();
    let query = form.get("filters").unwrap_or_default();
    let pairs = clean_query(Some(query))?;
    let filters: Map<String, Value> =
        pairs.iter().filter(|(k, _)| k != "cursor").map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    let body = CreateSavedView { name, page: "conversations".to_owned(), filters: Value::Object(filters) };
    saved_views::create_saved_view(State(state), form.admin.api(), Json(body)).await?;
    Ok(Redirect::to(&format!("/dashboard/conversations?{}", encode(&pairs))).into_response())
}

/// `POST /dashboard/views/{id}/delete`.
pub async fn delete_view(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    saved_views::delete_saved_view(State(state), form.admin.api(), Path(id)).await?;
    Ok(Redirect::to("/dashboard/conversations").into_response())
}

pub struct FailureItem {
    pub id: String,
    pub kind: String,
    pub severity: String,
    pub evidence: String,
    pub status: String,
    pub detector: String,
    pub message_anchor: Option<String>,
}

impl FailureItem {
    pub fn of(f: &FailureView) -> Self {
        FailureItem {
            id: f.id.to_string(),
            kind: fmt::label(&f.kind),
            severity: f.severity.clone(),
            evidence: f.evidence.clone(),
            status: f.status.clone(),
            detector: format!("{} v{}", f.detector, f.detector_version),
            message_anchor: f.message_id.map(|m| format!("msg-{m}")),
        }
    }
}

pub struct MessageItem {
    pub anchor: String,
    pub role: String,
    pub content: String,
    pub when: String,
    pub sentiment: String,
    pub sentiment_class: &'static str,
    pub latency: String,
    pub failures: Vec<FailureItem>,
}

pub struct Component {
    pub name: String,
    pub weight: String,
    pub value: String,
    pub meter: String,
    pub evidence: String,
}

#[derive(Template)]
#[template(path = "dashboard/conversation.html")]
struct DetailPage {
    layout: Layout,
    csrf: String,
    title: String,
    facts: Vec<(&'static str, String)>,
    health: String,
    health_class: &'static str,
    components: Vec<Component>,
    messages: Vec<MessageItem>,
    unanchored: Vec<FailureItem>,
    failure_count: usize,
}

#[derive(Template)]
#[template(path = "dashboard/_failure.html")]
pub struct FailureFragment {
    pub f: FailureItem,
    pub csrf: String,
}

fn sentiment_class(s: Option<f64>) -> &'static str {
    match s {
        Some(s) if s > 0.05 => "pos",
        Some(s) if s < -0.05 => "neg",
        Some(_) => "neu",
        None => "none",
    }
}

/// `GET /dashboard/conversations/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let health = conversations::get_conversation_health(State(state.clone()), admin.api(), Path(id.clone())).await?.0;
    let messages =
        conversations::list_conversation_messages(State(state.clone()), admin.api(), Path(id.clone())).await?.0.data;
    let failures =
        conversations::list_conversation_failures(State(state.clone()), admin.api(), Path(id.clone())).await?.0.data;
    let conversation = state
        .store()
        .get_conversation(health.conversation_id)
        .await
        .map_err(crate::error::AppError::from)?
        .ok_or_else(|| PageError::new(StatusCode::NOT_FOUND, "No such conversation."))?;
    let now = mentorfy_store::now();
    let anchored = |m: &MessageView| -> Vec<FailureItem> {
        failures.iter().filter(|f| f.message_id == Some(m.id)).map(FailureItem::of).collect()
    };
    let message_items: Vec<MessageItem> = messages
        .iter()
        .map(|m| MessageItem {
            anchor: format!("msg-{}", m.id),
            role: m.role.clone(),
            content: m.content.clone(),
            when: fmt::datetime(m.created_at),
            sentiment: if m.role == "user" { sentiment_label(m.sentiment_score) } else { String::new() },
            sentiment_class: sentiment_class(m.sentiment_score),
            latency: m.latency_ms.map(|l| fmt::millis(Some(l))).unwrap_or_default(),
            failures: anchored(m),
        })
        .collect();
    let unanchored = failures
        .iter()
        .filter(|f| f.message_id.is_none_or(|id| !messages.iter().any(|m| m.id == id)))
        .map(FailureItem::of)
        .collect();
    let components = health
        .breakdown
        .as_ref()
        .and_then(|b| b.get("components"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let value = c.get("value").and_then(Value::as_f64).unwrap_or(0.0);
                    let name = fmt::label(c.get("name").and_then(Value::as_str).unwrap_or("?"));
                    Component {
                        meter: super::chart::meter(value * 100.0, &format!("{name}: {:.0} of 100", value * 100.0)),
                        weight: format!("{:.0}%", c.get("weight").and_then(Value::as_f64).unwrap_or(0.0) * 100.0),
                        value: format!("{:.0}", value * 100.0),
                        evidence: c.get("evidence").and_then(Value::as_str).unwrap_or_default().to_owned(),
                        name,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let facts = vec![
        ("Agent", conversation.agent_id.clone().unwrap_or_else(|| "–".to_owned())),
        ("Source", conversation.source.clone()),
        ("Environment", conversation.environment.clone()),
        ("User", conversation.user_id.clone().unwrap_or_else(|| "–".to_owned())),
        ("Started", fmt::datetime(conversation.started_at)),
        ("Last message", fmt::ago(conversation.last_message_at, now)),
        ("Messages", fmt::count(conversation.message_count)),
        ("Status", if health.is_final { "final".to_owned() } else { conversation.status.clone() }),
        ("Analysed", health.analyzed_at.map_or_else(|| "not yet".to_owned(), |t| fmt::ago(t, now))),
    ];
    render(&DetailPage {
        layout: Layout::new(&admin, "/dashboard/conversations", format!("Conversation {}", conversation.external_id)),
        csrf: admin.csrf.clone(),
        title: conversation.external_id,
        facts,
        health: fmt::score(health.score),
        health_class: fmt::health_class(health.score),
        components,
        failure_count: failures.len(),
        messages: message_items,
        unanchored,
    })
}

/// `POST /dashboard/failures/{id}/status` (status = open|ack|resolved): one failure's triage. htmx gets the
/// updated failure back; a plain form post returns to where it came from.
pub async fn set_failure_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, PageError> {
    let status = form.get("status").unwrap_or_default().to_owned();
    let body = conversations::PatchFailure { status };
    let view = conversations::patch_failure(State(state), form.admin.api(), Path(id), Json(body)).await?.0;
    if is_htmx(&headers) {
        return render(&FailureFragment { f: FailureItem::of(&view), csrf: form.admin.csrf.clone() });
    }
    let back = headers
        .get(axum::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("/dashboard").map(|i| r[i..].to_owned()))
        .unwrap_or_else(|| format!("/dashboard/conversations/{}", view.conversation_id));
    Ok(Redirect::to(&back).into_response())
}
