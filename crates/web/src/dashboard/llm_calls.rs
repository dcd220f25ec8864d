//! LLM calls: every traced model call (the API's `GET /api/v1/llm-calls`) with filters in the URL, the per agent
//! and model figures (count, errors, tokens, cost, latency and time-to-first-token percentiles), the latency of
//! the listed calls, and one call's full input and output.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::chart::{self, Series};
use super::conversations::{clean_query, encode};
use super::fmt;
use super::page::{Layout, PageError, is_htmx, render};
use super::session::Admin;
use crate::api::llm_calls::{self, LlmCallAggregate, LlmCallView};
use crate::state::AppState;

#[derive(Default)]
pub struct LlmFilters {
    pub agent: String,
    pub model: String,
    pub status: String,
    pub range: String,
    pub conversation_id: String,
    pub session_id: String,
}

pub struct AggregateRow {
    pub agent: String,
    pub model: String,
    pub calls: String,
    pub errors: String,
    pub has_errors: bool,
    pub tokens: String,
    pub cost: String,
    pub latency_p50: String,
    pub latency_p95: String,
    pub ttft_p50: String,
    pub ttft_p95: String,
}

pub struct CallRow {
    pub href: String,
    pub when: String,
    pub when_exact: String,
    pub agent: String,
    pub model: String,
    pub operation: String,
    pub status: String,
    pub tokens: String,
    pub cost: String,
    pub latency: String,
    pub ttft: String,
}

#[derive(Template)]
#[template(path = "dashboard/_llm_results.html")]
struct Results {
    aggregates: Option<Vec<AggregateRow>>,
    latency_chart: String,
    latency_legend: String,
    rows: Vec<CallRow>,
    next_href: Option<String>,
    first_href: Option<String>,
    filtered: bool,
}

#[derive(Template)]
#[template(path = "dashboard/llm_calls.html")]
struct ListPage {
    layout: Layout,
    f: LlmFilters,
    results: Results,
}

fn tokens(input: Option<i64>, output: Option<i64>) -> String {
    match (input, output) {
        (None, None) => "–".to_owned(),
        (i, o) => format!(
            "{} in / {} out",
            i.map_or_else(|| "–".to_owned(), fmt::count),
            o.map_or_else(|| "–".to_owned(), fmt::count)
        ),
    }
}

fn aggregate_row(a: &LlmCallAggregate) -> AggregateRow {
    let cost = if a.cost_unknown_calls > 0 {
        format!("{} ({} unpriced)", fmt::usd(Some(a.cost_usd)), fmt::count(a.cost_unknown_calls as i64))
    } else {
        fmt::usd(Some(a.cost_usd))
    };
    AggregateRow {
        agent: a.agent_id.clone().unwrap_or_else(|| "–".to_owned()),
        model: a.model.clone(),
        calls: fmt::count(a.calls as i64),
        errors: fmt::count(a.errors as i64),
        has_errors: a.errors > 0,
        tokens: tokens(Some(a.input_tokens), Some(a.output_tokens)),
        cost,
        latency_p50: fmt::millis(a.latency_p50_ms),
        latency_p95: fmt::millis(a.latency_p95_ms),
        ttft_p50: fmt::millis(a.ttft_p50_ms),
        ttft_p95: fmt::millis(a.ttft_p95_ms),
    }
}

fn call_row(c: &LlmCallView, now: time::OffsetDateTime) -> CallRow {
    CallRow {
        href: format!("/dashboard/llm-calls/{}", c.id),
        when: fmt::ago(c.started_at, now),
        when_exact: fmt::datetime(c.started_at),
        agent: c.agent_id.clone().unwrap_or_else(|| "–".to_owned()),
        model: c.model.clone(),
        operation: c.operation.clone(),
        status: c.status.clone(),
        tokens: tokens(c.input_tokens, c.output_tokens),
        cost: fmt::usd(c.cost_usd),
        latency: fmt::millis(Some(c.latency_ms)),
        ttft: fmt::millis(c.ttft_ms),
    }
}

/// Latency and time to first token of the listed calls, oldest first, in seconds.
fn latency_chart(calls: &[LlmCallView]) -> (String, String) {
    if calls.len() < 2 {
        return (String::new(), String::new());
    }
    let ordered: Vec<&LlmCallView> = calls.iter().rev().collect();
    let labels: Vec<String> = ordered
        .iter()
        .map(|c| {
            let t = c.started_at.to_offset(time::UtcOffset::UTC);
            format!("{:02}:{:02}", t.hour(), t.minute())
        })
        .collect();
    let names = ["Latency".to_owned(), "Time to first token".to_owned()];
    let series = [
        Series { name: names[0].clone(), values: ordered.iter().map(|c| Some(c.latency_ms as f64 / 1000.0)).collect() },
        Series {
            name: names[1].clone(),
            values: ordered.iter().map(|c| c.ttft_ms.map(|t| t as f64 / 1000.0)).collect(),
        },
    ];
    (
        chart::line("Latency of the listed calls, oldest first (seconds)", &labels, &series, None, "s"),
        chart::legend(&names),
    )
}

/// `GET /dashboard/llm-calls?agent=&model=&status=&range=&cursor=` (also `conversation_id`, `session_id`): the same
/// parameters as `GET /api/v1/llm-calls`.
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let pairs = clean_query(raw.as_deref())?;
    let page = llm_calls::list_llm_calls(State(state.clone()), admin.api(), RawQuery(Some(encode(&pairs)))).await?.0;
    let mut f = LlmFilters::default();
    for (k, v) in &pairs {
        let slot = match k.as_str() {
            "agent" => &mut f.agent,
            "model" => &mut f.model,
            "status" => &mut f.status,
            "range" => &mut f.range,
            "conversation_id" => &mut f.conversation_id,
            "session_id" => &mut f.session_id,
            _ => continue,
        };
        slot.clone_from(v);
    }
    let now = mentorfy_store::now();
    let without_cursor: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "cursor").cloned().collect();
    let here =
        |q: &str| if q.is_empty() { "/dashboard/llm-calls".to_owned() } else { format!("/dashboard/llm-calls?{q}") };
    let next_href = page.next_cursor.as_ref().map(|cursor| {
        let mut next = without_cursor.clone();
        next.push(("cursor".to_owned(), cursor.clone()));
        here(&encode(&next))
    });
    let first_href = pairs.iter().any(|(k, _)| k == "cursor").then(|| here(&encode(&without_cursor)));
    let (latency_chart, latency_legend) = latency_chart(&page.data);
    let results = Results {
        aggregates: page.aggregates.as_ref().map(|a| a.iter().map(aggregate_row).collect()),
        latency_chart,
        latency_legend,
        rows: page.data.iter().map(|c| call_row(c, now)).collect(),
        next_href,
        first_href,
        filtered: !without_cursor.is_empty(),
    };
    if is_htmx(&headers) {
        return render(&results);
    }
    render(&ListPage { layout: Layout::new(&admin, "/dashboard/llm-calls", "LLM calls"), f, results })
}

#[derive(Template)]
#[template(path = "dashboard/llm_call.html")]
struct DetailPage {
    layout: Layout,
    title: String,
    status: String,
    facts: Vec<(&'static str, String)>,
    links: Vec<(String, String)>,
    error: Option<String>,
    input: String,
    output: Option<String>,
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// `GET /dashboard/llm-calls/{id}`: one call with its full input and output (the API's `GET /api/v1/llm-calls/{id}`).
pub async fn detail(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let c = llm_calls::get_llm_call(State(state), admin.api(), Path(id)).await?.0;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "–".to_owned());
    let facts = vec![
        ("Status", c.status.clone()),
        ("Agent", opt(&c.agent_id)),
        ("Operation", c.operation.clone()),
        ("Provider", c.provider.clone()),
        ("Model", c.model.clone()),
        ("Answered by", opt(&c.response_model)),
        ("Streamed", if c.stream { "yes" } else { "no" }.to_owned()),
        ("Started", fmt::datetime(c.started_at)),
        ("Latency", fmt::millis(Some(c.latency_ms))),
        ("Time to first token", fmt::millis(c.ttft_ms)),
        ("Input tokens", c.input_tokens.map_or_else(|| "–".to_owned(), fmt::count)),
        ("Output tokens", c.output_tokens.map_or_else(|| "–".to_owned(), fmt::count)),
        ("Cache read tokens", c.cache_read_tokens.map_or_else(|| "–".to_owned(), fmt::count)),
        ("Cache write tokens", c.cache_write_tokens.map_or_else(|| "–".to_owned(), fmt::count)),
        (
            "Cost",
            if c.cost_usd.is_some() {
                fmt::usd(c.cost_usd)
            } else {
                "unknown (model not in the price table)".to_owned()
            },
        ),
        ("Attempts", fmt::count(c.attempts)),
        ("Finish reason", opt(&c.finish_reason)),
        ("Error type", opt(&c.error_type)),
        ("Trace id", c.trace_id.clone()),
        ("Span id", c.span_id.clone()),
    ];
    let mut links = Vec::new();
    if let Some(conv) = c.conversation_id {
        links.push((format!("/dashboard/conversations/{conv}"), "Open its conversation".to_owned()));
        links.push((
            format!("/dashboard/llm-calls?conversation_id={conv}"),
            "All calls of this conversation".to_owned(),
        ));
    }
    if let Some(session) = c.session_id {
        links.push((format!("/dashboard/llm-calls?session_id={session}"), format!("All calls of session {session}")));
    }
    render(&DetailPage {
        layout: Layout::new(&admin, "/dashboard/llm-calls", format!("LLM call {}", c.model)),
        title: format!("{} · {}", c.model, fmt::datetime(c.started_at)),
        status: c.status.clone(),
        facts,
        links,
        error: c.error.clone(),
        input: c.input.as_ref().map(pretty).unwrap_or_default(),
        output: c.output.as_ref().map(pretty),
    })
}
