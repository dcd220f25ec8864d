//! Failures: every failure across conversations, newest first, with filters in the URL (type, status — open by
//! default —, severity, period) and cursor pages; select rows to acknowledge, resolve or reopen them together.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::conversations::{FAILURE_TYPES, clean_query, encode};
use super::fmt;
use super::page::{Layout, PageError, is_htmx, render};
use super::session::{Admin, Form};
use crate::api::failures::{self, FailureListView};
use crate::error::AppError;
use crate::state::AppState;

/// The filter form's current values (`status` is `all` when every status is listed).
#[derive(Default)]
pub struct FailureFilters {
    pub kind: String,
    pub status: String,
    pub severity: String,
    pub range: String,
}

pub struct FailureRowView {
    pub id: String,
    pub kind: String,
    pub severity: String,
    pub evidence: String,
    pub evidence_full: String,
    pub href: String,
    pub conversation: String,
    pub agent: String,
    pub when: String,
    pub when_exact: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "dashboard/_failure_rows.html")]
struct Rows {
    csrf: String,
    rows: Vec<FailureRowView>,
    /// This view's URL (for the bulk form to come back to).
    back: String,
    next_href: Option<String>,
    first_href: Option<String>,
    status_label: String,
    filtered: bool,
}

#[derive(Template)]
#[template(path = "dashboard/failures.html")]
struct FailuresPage {
    layout: Layout,
    f: FailureFilters,
    failure_types: Vec<(String, String)>,
    results: Rows,
}

fn row(v: &FailureListView, now: time::OffsetDateTime) -> FailureRowView {
    let anchor = v.message_id.map(|m| format!("#msg-{m}")).unwrap_or_default();
    FailureRowView {
        id: v.id.to_string(),
        kind: fmt::label(&v.kind),
        severity: v.severity.clone(),
        evidence: fmt::clip(&v.evidence, 140),
        evidence_full: v.evidence.clone(),
        href: format!("/dashboard/conversations/{}{anchor}", v.conversation_id),
        conversation: fmt::clip(&v.conversation_external_id, 32),
        agent: v.agent_id.clone().unwrap_or_else(|| "–".to_owned()),
        when: fmt::ago(v.created_at, now),
        when_exact: fmt::datetime(v.created_at),
        status: v.status.clone(),
    }
}

/// `GET /dashboard/failures?type=&status=open|ack|resolved|all&severity=&range=24h|7d|30d&cursor=`: the API's
/// `GET /api/v1/failures`, open failures unless the status says otherwise.
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let pairs = clean_query(raw.as_deref())?;
    let mut f = FailureFilters::default();
    for (k, v) in &pairs {
        match k.as_str() {
            "type" => f.kind.clone_from(v),
            "status" => f.status.clone_from(v),
            "severity" => f.severity.clone_from(v),
            "range" => f.range.clone_from(v),
            _ => {}
        }
    }
    if f.status.is_empty() {
        f.status = "open".to_owned();
    }
    // The API's query: the page's, with the default status and without `status=all`.
    let mut api: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "status").cloned().collect();
    if f.status != "all" {
        api.push(("status".to_owned(), f.status.clone()));
    }
    let page = failures::list_failures(State(state.clone()), admin.api(), RawQuery(Some(encode(&api)))).await?.0;
    let now = mentorfy_store::now();
    let without_cursor: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "cursor").cloned().collect();
    let filters_query = encode(&without_cursor);
    let here =
        |q: &str| if q.is_empty() { "/dashboard/failures".to_owned() } else { format!("/dashboard/failures?{q}") };
    let next_href = page.next_cursor.as_ref().map(|cursor| {
        let mut next = without_cursor.clone();
        next.push(("cursor".to_owned(), cursor.clone()));
        here(&encode(&next))
    });
    let first_href = pairs.iter().any(|(k, _)| k == "cursor").then(|| here(&filters_query));
    let status_label = match f.status.as_str() {
        "open" => "open ",
        "ack" => "acknowledged ",
        "resolved" => "resolved ",
        _ => "",
    }
    .to_owned();
    let results = Rows {
        csrf: admin.csrf.clone(),
        rows: page.data.iter().map(|v| row(v, now)).collect(),
        back: here(&encode(&pairs)),
        next_href,
        first_href,
        status_label,
        filtered: !f.kind.is_empty() || !f.severity.is_empty() || !f.range.is_empty(),
    };
    if is_htmx(&headers) {
        return render(&results);
    }
    render(&FailuresPage {
        layout: Layout::new(&admin, "/dashboard/failures", "Failures"),
        f,
        failure_types: FAILURE_TYPES.iter().map(|t| ((*t).to_owned(), fmt::label(t))).collect(),
        results,
    })
}

/// Where a bulk action returns to: a failures view only (never another page or site).
fn safe_back(back: Option<&str>) -> String {
    match back {
        Some(b)
            if (b == "/dashboard/failures" || b.starts_with("/dashboard/failures?"))
                && !b.contains("://")
                && !b.contains('\\') =>
        {
            b.to_owned()
        }
        _ => "/dashboard/failures".to_owned(),
    }
}

/// `POST /dashboard/failures/bulk` (`action` = ack|resolved|open, one `id` per selected failure, `back`): sets the
/// status of every selected failure, then returns to the same filtered view.
pub async fn bulk(State(state): State<AppState>, form: Form) -> Result<Response, PageError> {
    let action = form.get("action").unwrap_or_default();
    if !matches!(action, "ack" | "resolved" | "open") {
        return Err(PageError::new(StatusCode::BAD_REQUEST, "Choose acknowledge, resolve or reopen."));
    }
    let ids = form
        .all("id")
        .into_iter()
        .map(|id| Uuid::parse_str(id.trim()))
        .collect::<Result<Vec<Uuid>, _>>()
        .map_err(|_| PageError::new(StatusCode::BAD_REQUEST, "A selected failure id is not valid."))?;
    if ids.len() > 1000 {
        return Err(PageError::new(StatusCode::BAD_REQUEST, "Select at most 1,000 failures at once."));
    }
    if !ids.is_empty() {
        state.store().set_failures_status(&ids, action).await.map_err(AppError::from)?;
    }
    Ok(Redirect::to(&safe_back(form.get("back"))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_actions_return_to_failure_views_only() {
        assert_eq!(
            safe_back(Some("/dashboard/failures?type=loop&status=ack")),
            "/dashboard/failures?type=loop&status=ack"
        );
        assert_eq!(safe_back(Some("/dashboard/failures")), "/dashboard/failures");
        assert_eq!(safe_back(Some("/dashboard/failuresx")), "/dashboard/failures");
        assert_eq!(safe_back(Some("https://evil.example/dashboard/failures")), "/dashboard/failures");
        assert_eq!(safe_back(Some("/dashboard/conversations")), "/dashboard/failures");
        assert_eq!(safe_back(None), "/dashboard/failures");
    }
}
