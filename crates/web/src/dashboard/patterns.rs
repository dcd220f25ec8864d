//! Patterns: what users come for, from the latest pattern run (the API's `GET /api/v1/analytics/patterns`), and
//! for one selected pattern (`?pattern=<id>`) its volume, health and failure rate per day over the run's window
//! and its conversations.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mentorfy_store::Bucket;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::chart::{self, Series};
use super::fmt;
use super::overview::ConversationLine;
use super::page::{Layout, PageError, is_htmx, render};
use super::session::Admin;
use crate::api::analytics::{self, PatternView};
use crate::api::conversations;
use crate::api::query::{bad_query, query_pairs};
use crate::error::AppError;
use crate::state::AppState;

pub struct PatternItem {
    pub href: String,
    pub label: String,
    pub keywords: String,
    pub size: String,
    pub share: String,
    pub health: String,
    pub health_class: &'static str,
    pub failure_rate: String,
    /// (excerpt, transcript link)
    pub examples: Vec<(String, String)>,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "dashboard/_patterns_detail.html")]
struct Detail {
    label: String,
    keywords: String,
    facts: Vec<(&'static str, String)>,
    window: String,
    volume_chart: String,
    volume_legend: String,
    health_chart: String,
    failure_chart: String,
    has_trend: bool,
    conversations: Vec<ConversationLine>,
    all_href: String,
    examples: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "dashboard/patterns.html")]
struct PatternsPage {
    layout: Layout,
    run_note: String,
    patterns: Vec<PatternItem>,
    detail: Option<Detail>,
}

fn keywords(p: &PatternView) -> String {
    p.keywords
        .as_array()
        .map(|ks| {
            ks.iter()
                .filter_map(|k| k.get("term").and_then(Value::as_str).or_else(|| k.as_str()))
                .take(8)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn examples(p: &PatternView, max: usize) -> Vec<(String, String)> {
    p.examples
        .as_array()
        .map(|xs| {
            xs.iter()
                .take(max)
                .filter_map(|x| {
                    let excerpt = x.get("excerpt").and_then(Value::as_str)?;
                    let href = x
                        .get("conversation_id")
                        .or_else(|| x.get("conversationId"))
                        .and_then(Value::as_str)
                        .and_then(|id| uuid::Uuid::parse_str(id).ok())
                        .map(|id| format!("/dashboard/conversations/{id}"))
                        .unwrap_or_default();
                    Some((fmt::clip(excerpt, 160), href))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn item(p: &PatternView, selected: Option<Uuid>) -> PatternItem {
    PatternItem {
        href: format!("/dashboard/patterns?pattern={}", p.id),
        label: p.label.clone(),
        keywords: keywords(p),
        size: fmt::count(p.size),
        share: fmt::percent(Some(p.share)),
        health: fmt::score(p.avg_health),
        health_class: fmt::health_class(p.avg_health),
        failure_rate: fmt::percent(p.failure_rate),
        examples: examples(p, 2),
        selected: selected == Some(p.id),
    }
}

fn run_time(run: &Value, key: &str) -> Option<OffsetDateTime> {
    run.get(key).and_then(Value::as_str).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

fn day(t: OffsetDateTime) -> String {
    let d = t.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Every day from the run's window start to its end, widened to the days that hold data; at most 400.
fn days(run: &Value, points: &[mentorfy_store::HealthPoint]) -> Vec<String> {
    let mut first = run_time(run, "windowFrom").map(day);
    let mut last = run_time(run, "windowTo").map(day);
    if let Some(p) = points.first() {
        first = Some(first.map_or_else(|| p.bucket.clone(), |f| f.min(p.bucket.clone())));
    }
    if let Some(p) = points.last() {
        last = Some(last.map_or_else(|| p.bucket.clone(), |l| l.max(p.bucket.clone())));
    }
    let parse = |s: &str| time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok();
    let (Some(first), Some(last)) = (first.as_deref().and_then(parse), last.as_deref().and_then(parse)) else {
        return points.iter().map(|p| p.bucket.clone()).collect();
    };
    let mut out = Vec::new();
    let mut d = first;
    while d <= last && out.len() < 400 {
        out.push(format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()));
        match d.next_day() {
            Some(n) => d = n,
            None => break,
        }
    }
    out
}

async fn detail(state: &AppState, admin: &Admin, p: &PatternView, run: &Value) -> Result<Detail, PageError> {
    let points = state.store().pattern_trend(p.id, None, None, Bucket::Day).await.map_err(AppError::from)?;
    let labels_full = days(run, &points);
    let labels: Vec<String> = labels_full.iter().map(|b| b.get(5..).unwrap_or(b).to_owned()).collect();
    let at = |b: &String| points.iter().find(|p| &p.bucket == b);
    let failing: Vec<Option<f64>> = labels_full.iter().map(|b| Some(at(b).map_or(0.0, |p| p.failing as f64))).collect();
    let fine: Vec<Option<f64>> =
        labels_full.iter().map(|b| Some(at(b).map_or(0.0, |p| (p.conversations - p.failing) as f64))).collect();
    let health: Vec<Option<f64>> = labels_full.iter().map(|b| at(b).and_then(|p| p.avg_health)).collect();
    let rate: Vec<Option<f64>> = labels_full
        .iter()
        .map(|b| at(b).filter(|p| p.conversations > 0).map(|p| 100.0 * p.failing as f64 / p.conversations as f64))
        .collect();
    let names = ["Without failures".to_owned(), "With failures".to_owned()];
    let volume_chart = chart::stacked_bars(
        &format!("Conversations of {} per day", p.label),
        &labels,
        &[Series { name: names[0].clone(), values: fine }, Series { name: names[1].clone(), values: failing }],
    );
    let health_chart = chart::line(
        &format!("Average health of {} per day", p.label),
        &labels,
        &[Series { name: "Average health".into(), values: health }],
        Some(100.0),
        "",
    );
    let failure_chart = chart::line(
        &format!("Share of {} conversations with failures per day", p.label),
        &labels,
        &[Series { name: "With failures".into(), values: rate }],
        Some(100.0),
        "%",
    );
    let list = conversations::list_conversations(
        State(state.clone()),
        admin.api(),
        RawQuery(Some(format!("pattern={}&limit=20", p.id))),
    )
    .await?
    .0;
    let now = mentorfy_store::now();
    let window = match (run_time(run, "windowFrom"), run_time(run, "windowTo")) {
        (Some(from), Some(to)) => {
            format!("Conversations that started from {} to {}, dated by their last message.", day(from), day(to))
        }
        _ => "Dated by each conversation's last message.".to_owned(),
    };
    Ok(Detail {
        label: p.label.clone(),
        keywords: keywords(p),
        facts: vec![
            ("Conversations", fmt::count(p.size)),
            ("Share of the run", fmt::percent(Some(p.share))),
            ("Average health", fmt::score(p.avg_health)),
            ("With failures", fmt::percent(p.failure_rate)),
        ],
        window,
        volume_chart,
        volume_legend: chart::legend(&names),
        health_chart,
        failure_chart,
        has_trend: !points.is_empty(),
        conversations: list.data.iter().map(|c| ConversationLine::of(c, now)).collect(),
        all_href: format!("/dashboard/conversations?pattern={}", p.id),
        examples: examples(p, 5),
    })
}

/// `GET /dashboard/patterns[?pattern=<id>]`.
pub async fn page(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let mut selected = None;
    for (k, v) in query_pairs(raw.as_deref())? {
        match k.as_str() {
            "pattern" if v.trim().is_empty() => {}
            "pattern" => {
                selected = Some(
                    Uuid::parse_str(v.trim())
                        .map_err(|_| bad_query("pattern must be a pattern id (UUID)", "pattern"))?,
                );
            }
            other => return Err(bad_query(format!("unknown query parameter '{other}'"), other).into()),
        }
    }
    let patterns =
        analytics::get_patterns(State(state.clone()), admin.api(), RawQuery(Some("limit=100".into()))).await?.0;
    let run = patterns.run.clone().unwrap_or(Value::Null);
    let detail = match selected {
        Some(id) => {
            let p = patterns.patterns.iter().find(|p| p.id == id).ok_or_else(|| {
                PageError::new(StatusCode::NOT_FOUND, "This pattern is not in the latest pattern run any more.")
            })?;
            Some(detail(&state, &admin, p, &run).await?)
        }
        None => None,
    };
    if is_htmx(&headers)
        && let Some(d) = &detail
    {
        return render(d);
    }
    let run_note = match &patterns.run {
        None => String::new(),
        Some(run) => format!(
            "From the {} run of {} over {} conversations ({} in a pattern).",
            run.get("trigger").and_then(Value::as_str).unwrap_or("latest"),
            run.get("finishedAt").and_then(Value::as_str).and_then(|t| t.get(..10)).unwrap_or("?"),
            fmt::count(run.get("conversations").and_then(Value::as_i64).unwrap_or(0)),
            fmt::count(run.get("clustered").and_then(Value::as_i64).unwrap_or(0)),
        ),
    };
    render(&PatternsPage {
        layout: Layout::new(&admin, "/dashboard/patterns", "Patterns"),
        run_note,
        patterns: patterns.patterns.iter().map(|p| item(p, selected)).collect(),
        detail,
    })
}
