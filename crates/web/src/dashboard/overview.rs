//! Overview: how healthy conversations are this period, what fails most, what users come for, and which
//! conversations to read first.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::chart::{self, Series};
use super::fmt;
use super::page::{Layout, PageError, render};
use super::session::Admin;
use crate::api::analytics::{self, FailureTrends, PatternView, Summary};
use crate::api::conversations::{self, ConversationView};
use crate::api::query::{bad_query, query_pairs};
use crate::state::AppState;

/// A headline number with its change from the previous period.
pub struct Kpi {
    pub label: &'static str,
    pub value: String,
    /// e.g. `+12.0% vs previous 7d`; empty when there is nothing to compare.
    pub change: String,
    /// `up-good`, `up-bad`, `down-good`, `down-bad` or `flat`: colours the change.
    pub tone: &'static str,
}

pub struct PatternRow {
    pub href: String,
    pub label: String,
    pub size: String,
    pub share: String,
    pub health: String,
    pub health_class: &'static str,
    pub failure_rate: String,
}

/// A conversation in a short list.
pub struct ConversationLine {
    pub href: String,
    pub title: String,
    pub agent: String,
    pub health: String,
    pub health_class: &'static str,
    pub failures: i64,
    pub when: String,
}

impl ConversationLine {
    pub fn of(c: &ConversationView, now: time::OffsetDateTime) -> Self {
        ConversationLine {
            href: format!("/dashboard/conversations/{}", c.id),
            title: fmt::clip(&c.external_id, 48),
            agent: c.agent_id.clone().unwrap_or_else(|| "–".to_owned()),
            health: fmt::score(c.health_score),
            health_class: fmt::health_class(c.health_score),
            failures: c.failure_count,
            when: fmt::ago(c.last_message_at, now),
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    layout: Layout,
    ranges: Vec<(&'static str, &'static str, bool)>,
    empty: bool,
    analysed_note: String,
    kpis: Vec<Kpi>,
    health_chart: String,
    volume_chart: String,
    failure_chart: String,
    failure_legend: String,
    top_failures: Vec<(String, String, String)>,
    patterns: Vec<PatternRow>,
    patterns_note: String,
    read_first: Vec<ConversationLine>,
    read_first_href: String,
}

fn change_text(value: Option<f64>, unit: &str, range: &str, higher_is_better: bool) -> (String, &'static str) {
    match value {
        None => (String::new(), "flat"),
        Some(v) if v.abs() < 1e-9 => (format!("no change vs previous {range}"), "flat"),
        Some(v) => {
            let tone = match (v > 0.0, higher_is_better) {
                (true, true) => "up-good",
                (true, false) => "up-bad",
                (false, true) => "down-bad",
                (false, false) => "down-good",
            };
            (format!("{}{v:.1}{unit} vs previous {range}", if v > 0.0 { "+" } else { "" }), tone)
        }
    }
}

fn kpis(s: &Summary) -> Vec<Kpi> {
    let c = &s.current;
    let ch = |key: &str| s.change.get(key).and_then(serde_json::Value::as_f64);
    let (conv_change, conv_tone) = change_text(ch("conversationsPct"), "%", &s.range, true);
    let (health_change, health_tone) = change_text(ch("avgHealthDelta"), " pts", &s.range, true);
    let (rate_change, rate_tone) = change_text(ch("failureRateDelta").map(|d| d * 100.0), " pts", &s.range, false);
    vec![
        Kpi { label: "Conversations", value: fmt::count(c.conversations), change: conv_change, tone: conv_tone },
        Kpi { label: "Messages", value: fmt::count(c.messages), change: String::new(), tone: "flat" },
        Kpi { label: "Average health", value: fmt::score(c.avg_health), change: health_change, tone: health_tone },
        Kpi { label: "With failures", value: fmt::percent(c.failure_rate), change: rate_change, tone: rate_tone },
    ]
}

/// `GET /dashboard?range=24h|7d|30d`.
pub async fn page(State(state): State<AppState>, admin: Admin, RawQuery(raw): RawQuery) -> Result<Response, PageError> {
    let mut range = "7d".to_owned();
    for (k, v) in query_pairs(raw.as_deref())? {
        match k.as_str() {
            "range" if matches!(v.as_str(), "24h" | "7d" | "30d") => range = v,
            "range" => return Err(bad_query("range must be 24h, 7d or 30d", "range").into()),
            other => return Err(bad_query(format!("unknown query parameter '{other}'"), other).into()),
        }
    }
    let q = |extra: &str| RawQuery(Some(format!("range={range}{extra}")));
    // The five reads are independent: run them at once (each on its own pooled connection).
    let (summary, trends, patterns, read_first, health_trend) = tokio::try_join!(
        analytics::get_summary(State(state.clone()), admin.api(), q("")),
        analytics::get_failure_trends(State(state.clone()), admin.api(), q("")),
        analytics::get_patterns(State(state.clone()), admin.api(), RawQuery(Some("limit=8".into()))),
        conversations::list_conversations(
            State(state.clone()),
            admin.api(),
            q("&has_failures=true&failure_status=open&sort=health&limit=8"),
        ),
        analytics::get_health_trends(State(state.clone()), admin.api(), q("")),
    )?;
    let (summary, trends, patterns, read_first, health_trend): (_, FailureTrends, _, _, _) =
        (summary.0, trends.0, patterns.0, read_first.0, health_trend.0);
    let now = mentorfy_store::now();
    let hourly = trends.bucket == "hour";
    let labels: Vec<String> = trends.buckets.iter().map(|b| short_bucket(b, hourly)).collect();
    // Each chart is labelled by its own response's buckets (each computed its own "now").
    let health_labels: Vec<String> = health_trend.buckets.iter().map(|b| short_bucket(b, hourly)).collect();
    let health = health_trend.avg_health.clone();
    let volume: Vec<Option<f64>> = health_trend.conversations.iter().map(|n| Some(*n as f64)).collect();
    let health_chart = chart::line(
        &format!("Average health per {}", trends.bucket),
        &health_labels,
        &[Series { name: "Average health".into(), values: health }],
        Some(100.0),
        "",
    );
    let volume_chart = chart::stacked_bars(
        &format!("Conversations per {}", trends.bucket),
        &health_labels,
        &[Series { name: "Conversations".into(), values: volume }],
    );
    let mut series: Vec<_> = trends.series.iter().filter(|s| s.total > 0).collect();
    series.sort_by_key(|s| std::cmp::Reverse(s.total));
    let failure_chart = chart::stacked_bars(
        &format!("Failures per {} by type", trends.bucket),
        &labels,
        &series
            .iter()
            .map(|s| Series { name: fmt::label(&s.kind), values: s.counts.iter().map(|c| Some(*c as f64)).collect() })
            .collect::<Vec<_>>(),
    );
    let failure_legend = chart::legend(&series.iter().map(|s| fmt::label(&s.kind)).collect::<Vec<_>>());
    let top_failures = series
        .iter()
        .take(5)
        .map(|s| {
            (fmt::label(&s.kind), fmt::count(s.total), format!("/dashboard/failures?type={}&range={range}", s.kind))
        })
        .collect();

    let patterns_note = match &patterns.run {
        None => String::new(),
        Some(run) => format!(
            "From the run of {} over {} conversations.",
            run.get("finishedAt").and_then(|v| v.as_str()).unwrap_or("?").get(..10).unwrap_or("?"),
            fmt::count(run.get("conversations").and_then(serde_json::Value::as_i64).unwrap_or(0))
        ),
    };
    let c = &summary.current;
    let analysed_note = if c.analysed < c.conversations {
        format!("{} of {} conversations analysed so far.", fmt::count(c.analysed), fmt::count(c.conversations))
    } else {
        String::new()
    };
    let empty = c.conversations == 0 && summary.previous.conversations == 0;
    let page = OverviewPage {
        layout: Layout::new(&admin, "/dashboard", "Overview"),
        ranges: [("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days")]
            .into_iter()
            .map(|(r, l)| (r, l, r == range))
            .collect(),
        empty,
        analysed_note,
        kpis: kpis(&summary),
        health_chart,
        volume_chart,
        failure_chart,
        failure_legend,
        top_failures,
        patterns: patterns.patterns.iter().map(pattern_row).collect(),
        patterns_note,
        read_first: read_first.data.iter().map(|c| ConversationLine::of(c, now)).collect(),
        read_first_href: format!(
            "/dashboard/conversations?range={range}&has_failures=true&failure_status=open&sort=health"
        ),
    };
    render(&page)
}

fn pattern_row(p: &PatternView) -> PatternRow {
    PatternRow {
        href: format!("/dashboard/patterns?pattern={}", p.id),
        label: p.label.clone(),
        size: fmt::count(p.size),
        share: fmt::percent(Some(p.share)),
        health: fmt::score(p.avg_health),
        health_class: fmt::health_class(p.avg_health),
        failure_rate: fmt::percent(p.failure_rate),
    }
}

/// An RFC 3339 bucket start as a short axis label: `14:00` for hours, `11-29` for days.
pub fn short_bucket(bucket: &str, hourly: bool) -> String {
    if hourly {
        bucket.get(11..13).map_or_else(|| bucket.to_owned(), |h| format!("{h}:00"))
    } else {
        bucket.get(5..10).unwrap_or(bucket).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_labels_are_short() {
        assert_eq!(short_bucket("2026-11-29T14:00:00Z", true), "14:00");
        assert_eq!(short_bucket("2026-11-29T00:00:00Z", false), "11-29");
    }
}
