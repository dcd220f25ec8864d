//! Mentor sessions: the funnel of the sessions created in a period (created → in progress / completed / abandoned,
//! linked, with contact) and the leads matching the filters (in the URL, cursor paged), with a CSV export that
//! works with the dashboard's cookie session. Read through the `/api/v1/sessions` functions.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::chart;
use super::conversations::{clean_query, encode};
use super::fmt;
use super::page::{Layout, PageError, is_htmx, render};
use super::session::Admin;
use crate::api::session_report::{self, FunnelView, LeadView};
use crate::state::AppState;

const PATH: &str = "/dashboard/sessions";
/// The query parameters the page passes on (anything else is left to the API to refuse).
const FILTERS: [&str; 8] = ["range", "from", "to", "org", "status", "linked", "has_contact", "limit"];

/// The filter form's current values.
#[derive(Default)]
pub struct Filters {
    pub range: String,
    pub status: String,
    pub linked: String,
    pub has_contact: String,
}

impl Filters {
    fn of(pairs: &[(String, String)]) -> Self {
        let mut f = Filters::default();
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "range" => &mut f.range,
                "status" => &mut f.status,
                "linked" => &mut f.linked,
                "has_contact" => &mut f.has_contact,
                _ => continue,
            };
            slot.clone_from(v);
        }
        f
    }
}

/// One step of the funnel.
pub struct Step {
    pub label: &'static str,
    pub count: String,
    pub share: String,
    pub meter: String,
}

pub struct LeadRow {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub status: String,
    pub status_class: &'static str,
    pub linked: &'static str,
    pub created: String,
}

impl LeadRow {
    fn of(l: &LeadView) -> Self {
        let or_dash = |v: &Option<String>| v.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "–".to_owned());
        LeadRow {
            name: or_dash(&l.name),
            email: or_dash(&l.email),
            phone: or_dash(&l.phone),
            status: fmt::label(l.status),
            status_class: match l.status {
                "completed" => "good",
                "abandoned" => "poor",
                _ => "fair",
            },
            linked: if l.linked { "yes" } else { "no" },
            created: fmt::datetime(l.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/sessions_results.html")]
struct Results {
    period: String,
    steps: Vec<Step>,
    chart: String,
    legend: String,
    /// No session at all in the period and no lead: the page's empty state.
    empty: bool,
    export_href: String,
    leads: Vec<LeadRow>,
    next_href: Option<String>,
    first_href: Option<String>,
    /// Any filter besides the period.
    filtered: bool,
    /// No session at all was created in the period.
    none_in_period: bool,
}

#[derive(Template)]
#[template(path = "dashboard/mentor_sessions.html")]
struct SessionsPage {
    layout: Layout,
    f: Filters,
    results: Results,
}

fn steps(f: &FunnelView) -> Vec<Step> {
    let share = |n: i64| (f.created > 0).then(|| n as f64 / f.created as f64);
    [
        ("Created", f.created),
        ("In progress", f.in_progress),
        ("Completed", f.completed),
        ("Abandoned", f.abandoned),
        ("Linked to an account", f.linked),
        ("Left an email or phone", f.with_contact),
    ]
    .into_iter()
    .map(|(label, n)| {
        let ratio = share(n);
        Step {
            label,
            count: fmt::count(n),
            share: fmt::percent(ratio),
            meter: chart::meter(ratio.unwrap_or(0.0) * 100.0, &format!("{label}: {} of created", fmt::percent(ratio))),
        }
    })
    .collect()
}

/// The funnel as stacked bars: where the created sessions are now, and how many signed in or left contact.
fn funnel_chart(f: &FunnelView) -> (String, String) {
    let labels = vec!["Status".to_owned(), "Linked".to_owned(), "Contact".to_owned()];
    let v = |n: i64| Some(n as f64);
    let series = vec![
        chart::Series { name: "In progress".into(), values: vec![v(f.in_progress), None, None] },
        chart::Series { name: "Completed".into(), values: vec![v(f.completed), None, None] },
        chart::Series { name: "Abandoned".into(), values: vec![v(f.abandoned), None, None] },
        chart::Series { name: "Linked".into(), values: vec![None, v(f.linked), None] },
        chart::Series { name: "With contact".into(), values: vec![None, None, v(f.with_contact)] },
    ];
    let names: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
    (chart::stacked_bars("Mentor sessions created in the period", &labels, &series), chart::legend(&names))
}

/// The filters of the request (empty fields dropped), only the ones this page knows, without the cursor.
fn filter_pairs(pairs: &[(String, String)]) -> Vec<(String, String)> {
    pairs.iter().filter(|(k, _)| FILTERS.contains(&k.as_str())).cloned().collect()
}

/// `GET /dashboard/sessions?range=&status=&linked=&has_contact=&cursor=`.
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let pairs = clean_query(raw.as_deref())?;
    let report = session_report::session_report(&state, Some(&encode(&pairs))).await?;
    let filters = filter_pairs(&pairs);
    let filters_query = encode(&filters);
    let next_href = report.next_cursor.as_ref().map(|cursor| {
        let mut next = filters.clone();
        next.push(("cursor".to_owned(), cursor.clone()));
        format!("{PATH}?{}", encode(&next))
    });
    let first_href = pairs.iter().any(|(k, _)| k == "cursor").then(|| format!("{PATH}?{filters_query}"));
    let (chart, legend) = funnel_chart(&report.funnel);
    let results = Results {
        period: format!("Sessions created from {} to {} (UTC).", fmt::datetime(report.from), fmt::datetime(report.to)),
        steps: steps(&report.funnel),
        chart,
        legend,
        empty: report.funnel.created == 0
            && report.leads.is_empty()
            && first_href.is_none()
            && !filters.iter().any(|(k, _)| k != "limit"),
        export_href: if filters_query.is_empty() {
            format!("{PATH}/export.csv")
        } else {
            format!("{PATH}/export.csv?{filters_query}")
        },
        leads: report.leads.iter().map(LeadRow::of).collect(),
        next_href,
        first_href,
        filtered: filters.iter().any(|(k, _)| k != "range" && k != "limit"),
        none_in_period: report.funnel.created == 0,
    };
    if is_htmx(&headers) {
        return render(&results);
    }
    render(&SessionsPage { layout: Layout::new(&admin, PATH, "Mentor sessions"), f: Filters::of(&pairs), results })
}

/// `GET /dashboard/sessions/export.csv?<filters>`: the API's CSV export (`format=csv`) for the signed-in admin,
/// returned as is.
pub async fn export_csv(
    State(state): State<AppState>,
    admin: Admin,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let _: &Admin = &admin;
    let mut pairs: Vec<(String, String)> =
        clean_query(raw.as_deref())?.into_iter().filter(|(k, _)| k != "cursor" && k != "format").collect();
    pairs.push(("format".to_owned(), "csv".to_owned()));
    Ok(session_report::session_leads_csv(&state, Some(&encode(&pairs))).await?)
}
