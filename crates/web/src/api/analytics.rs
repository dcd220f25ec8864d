//! Sensei analytics for admins (issue 7): period summary with the trend against the previous period, the current
//! usage patterns, and failure trends per type. Handlers parse strictly, call the store, and shape the series.

use axum::extract::{RawQuery, State};
use mentorfy_store::{Bucket, PeriodStats};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::admin_auth::AdminAuth;
use crate::api::query::{bad_query, number, query_pairs, range_back};
use crate::error::{AppError, ErrorEnvelope};
use crate::state::AppState;

/// `range` (`24h`, `7d`, `30d`) as a duration; `7d` when absent.
fn parse_range(raw: Option<&str>) -> Result<(String, time::Duration), AppError> {
    let range = raw.unwrap_or("7d");
    Ok((range.to_owned(), range_back(range)?))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeriodView {
    pub from: String,
    pub to: String,
    /// Conversations active in the period.
    pub conversations: i64,
    /// Messages of those conversations.
    pub messages: i64,
    /// Those analysed so far.
    pub analysed: i64,
    /// Mean health (0–100) of the analysed ones.
    pub avg_health: Option<f64>,
    /// Share (0–1) of the conversations with at least one failure.
    pub failure_rate: Option<f64>,
}

fn period(s: PeriodStats, from: OffsetDateTime, to: OffsetDateTime) -> PeriodView {
    PeriodView {
        from: rfc3339(from),
        to: rfc3339(to),
        conversations: s.conversations,
        messages: s.messages,
        analysed: s.analysed,
        avg_health: s.avg_health.map(|h| (h * 10.0).round() / 10.0),
        failure_rate: (s.conversations > 0).then(|| ((s.failing as f64 / s.conversations as f64) * 1e4).round() / 1e4),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub range: String,
    pub current: PeriodView,
    /// The period of the same length just before.
    pub previous: PeriodView,
    /// `{conversationsPct, avgHealthDelta, failureRateDelta}`; a field is null when a side has no data.
    #[schema(value_type = Object)]
    pub change: Value,
}

/// How the conversations of the period went: volume, health, failure rate, and the change from the period before.
#[utoipa::path(get, path = "/api/v1/analytics/summary", tag = "analytics",
    params(
        ("range" = Option<String>, Query, description = "24h, 7d (default) or 30d"),
        ("environment" = Option<String>, Query, description = "Only this environment"),
    ),
    security(("admin" = [])),
    responses((status = 200, body = Summary), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn get_summary(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<Summary>, AppError> {
    let (mut range, mut environment) = (None, None);
    for (k, v) in query_pairs(raw.as_deref())? {
        match k.as_str() {
            "range" => range = Some(v),
            "environment" => environment = Some(v).filter(|e| !e.is_empty()),
            other => return Err(bad_query(format!("unknown query parameter '{other}'"), other)),
        }
    }
    let (range, length) = parse_range(range.as_deref())?;
    let to = mentorfy_store::now();
    let from = to - length;
    let store = state.store();
    let (cur, prev) = tokio::try_join!(
        store.period_stats(from, to, environment.as_deref()),
        store.period_stats(from - length, from, environment.as_deref()),
    )?;
    let (current, previous) = (period(cur, from, to), period(prev, from - length, from));
    let pct = (previous.conversations > 0).then(|| {
        (((current.conversations - previous.conversations) as f64 / previous.conversations as f64) * 1000.0).round()
            / 10.0
    });
    let delta = |a: Option<f64>, b: Option<f64>, scale: f64| a.zip(b).map(|(a, b)| ((a - b) * scale).round() / scale);
    let change = json!({
        "conversationsPct": pct,
        "avgHealthDelta": delta(current.avg_health, previous.avg_health, 10.0),
        "failureRateDelta": delta(current.failure_rate, previous.failure_rate, 1e4),
    });
    Ok(axum::Json(Summary { range, current, previous, change }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatternView {
    pub id: uuid::Uuid,
    pub label: String,
    /// `[{term, weight}]`, most distinctive first.
    #[schema(value_type = Vec<Object>)]
    pub keywords: Value,
    pub size: i64,
    /// Share (0–1) of the run's conversations.
    pub share: f64,
    pub avg_health: Option<f64>,
    pub failure_rate: Option<f64>,
    /// `[{conversation_id, excerpt, similarity}]`.
    #[schema(value_type = Vec<Object>)]
    pub examples: Value,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatternsView {
    /// The run the patterns come from; null before the first run.
    #[schema(value_type = Option<Object>)]
    pub run: Option<Value>,
    pub patterns: Vec<PatternView>,
}

/// What users come for: the patterns of the latest run, largest first.
#[utoipa::path(get, path = "/api/v1/analytics/patterns", tag = "analytics",
    params(("limit" = Option<u64>, Query, description = "Most patterns returned, 1–100 (default 20)")),
    security(("admin" = [])),
    responses((status = 200, body = PatternsView), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn get_patterns(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<PatternsView>, AppError> {
    let mut limit = 20u64;
    for (k, v) in query_pairs(raw.as_deref())? {
        match k.as_str() {
            "limit" => limit = number(&v, "limit", "a whole number from 1 to 100")?,
            other => return Err(bad_query(format!("unknown query parameter '{other}'"), other)),
        }
    }
    if !(1..=100).contains(&limit) {
        return Err(bad_query("limit must be from 1 to 100", "limit"));
    }
    let Some(run) = state.store().latest_pattern_run().await? else {
        return Ok(axum::Json(PatternsView { run: None, patterns: Vec::new() }));
    };
    let total = run.conversations.max(1) as f64;
    let patterns = state
        .store()
        .list_patterns(run.id)
        .await?
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(|p| PatternView {
            id: p.id,
            share: ((p.size as f64 / total) * 1e4).round() / 1e4,
            label: p.label,
            keywords: p.keywords,
            size: p.size,
            avg_health: p.avg_health,
            failure_rate: p.failure_rate,
            examples: p.examples,
        })
        .collect();
    let run = json!({
        "id": run.id,
        "trigger": run.trigger,
        "finishedAt": rfc3339(run.finished_at),
        "windowFrom": rfc3339(run.window_from),
        "windowTo": rfc3339(run.window_to),
        "conversations": run.conversations,
        "clustered": run.clustered,
        "representation": run.representation,
    });
    Ok(axum::Json(PatternsView { run: Some(run), patterns }))
}

/// The query of a trend: `range`, `bucket` (hour for 24h, else day, unless given), `environment`; every bucket start
/// from the one holding `from` to the one holding `to`.
struct TrendQuery {
    bucket: Bucket,
    environment: Option<String>,
    from: OffsetDateTime,
    to: OffsetDateTime,
    starts: Vec<OffsetDateTime>,
}

impl TrendQuery {
    fn parse(raw: Option<&str>) -> Result<Self, AppError> {
        let (mut range, mut bucket, mut environment) = (None, None, None);
        for (k, v) in query_pairs(raw)? {
            match k.as_str() {
                "range" => range = Some(v),
                "bucket" => bucket = Some(v),
                "environment" => environment = Some(v).filter(|e| !e.is_empty()),
                other => return Err(bad_query(format!("unknown query parameter '{other}'"), other)),
            }
        }
        let (range, length) = parse_range(range.as_deref())?;
        let bucket = match bucket.as_deref() {
            Some("hour") => Bucket::Hour,
            Some("day") => Bucket::Day,
            None if range == "24h" => Bucket::Hour,
            None => Bucket::Day,
            Some(_) => return Err(bad_query("bucket must be hour or day", "bucket")),
        };
        let step = if bucket == Bucket::Hour { time::Duration::HOUR } else { time::Duration::DAY };
        if length / step > 1000.0 {
            return Err(bad_query("too many buckets: use bucket=day for this range", "bucket"));
        }
        let to = mentorfy_store::now();
        let from = to - length;
        let floor = |t: OffsetDateTime| {
            let t = t.replace_nanosecond(0).unwrap_or(t).replace_second(0).unwrap_or(t).replace_minute(0).unwrap_or(t);
            if bucket == Bucket::Day { t.replace_hour(0).unwrap_or(t) } else { t }
        };
        let mut starts = Vec::new();
        let mut t = floor(from);
        while t <= to {
            starts.push(t);
            t += step;
        }
        Ok(TrendQuery { bucket, environment, from, to, starts })
    }

    fn bucket_name(&self) -> String {
        if self.bucket == Bucket::Hour { "hour" } else { "day" }.to_owned()
    }
}

/// The store's text for the bucket holding `t`: `2026-11-29T14` (hour) or `2026-11-29` (day).
fn bucket_key(bucket: Bucket, t: OffsetDateTime) -> String {
    let d = t.date();
    let day = format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    if bucket == Bucket::Hour { format!("{day}T{:02}", t.hour()) } else { day }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureSeries {
    #[serde(rename = "type")]
    pub kind: String,
    /// One count per bucket of `buckets`.
    pub counts: Vec<i64>,
    pub total: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureTrends {
    /// `hour` or `day`.
    pub bucket: String,
    pub from: String,
    pub to: String,
    /// Bucket starts (RFC 3339, UTC), oldest first; every bucket of the range, empty ones included.
    pub buckets: Vec<String>,
    /// One series per failure type, most frequent first.
    pub series: Vec<FailureSeries>,
}

/// Failures per type over time (dated by the message they point at).
#[utoipa::path(get, path = "/api/v1/analytics/failures/trends", tag = "analytics",
    params(
        ("bucket" = Option<String>, Query, description = "hour or day (default: hour for 24h, else day)"),
        ("range" = Option<String>, Query, description = "24h, 7d (default) or 30d"),
        ("environment" = Option<String>, Query, description = "Only this environment"),
    ),
    security(("admin" = [])),
    responses((status = 200, body = FailureTrends), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn get_failure_trends(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<FailureTrends>, AppError> {
    let TrendQuery { bucket, environment, from, to, starts } = TrendQuery::parse(raw.as_deref())?;
    let label = |t: OffsetDateTime| bucket_key(bucket, t);
    let index: std::collections::HashMap<String, usize> =
        starts.iter().enumerate().map(|(i, t)| (label(*t), i)).collect();
    let counts = state.store().failure_counts(from, to, bucket, environment.as_deref()).await?;
    let mut by_type: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for c in counts {
        if let Some(&i) = index.get(&c.bucket) {
            by_type.entry(c.kind).or_insert_with(|| vec![0; starts.len()])[i] += c.count;
        }
    }
    let mut series: Vec<FailureSeries> =
        by_type.into_iter().map(|(kind, counts)| FailureSeries { total: counts.iter().sum(), kind, counts }).collect();
    series.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.kind.cmp(&b.kind)));
    Ok(axum::Json(FailureTrends {
        bucket: if bucket == Bucket::Hour { "hour" } else { "day" }.to_owned(),
        from: rfc3339(from),
        to: rfc3339(to),
        buckets: starts.into_iter().map(rfc3339).collect(),
        series,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthTrend {
    /// `hour` or `day`.
    pub bucket: String,
    pub from: String,
    pub to: String,
    /// Every bucket's start (RFC 3339, UTC), oldest first; the arrays below are aligned with it.
    pub buckets: Vec<String>,
    /// Conversations whose last message fell in the bucket.
    pub conversations: Vec<i64>,
    /// Mean health (0–100) of those analysed; null for a bucket with none.
    pub avg_health: Vec<Option<f64>>,
    /// Those with at least one failure.
    pub failing: Vec<i64>,
}

/// Conversation health over time: per hour or day, the conversations last active in it, their mean health and how
/// many had failures. Every bucket is present.
#[utoipa::path(get, path = "/api/v1/analytics/health/trends", tag = "analytics",
    params(
        ("bucket" = Option<String>, Query, description = "hour or day (default: hour for 24h, else day)"),
        ("range" = Option<String>, Query, description = "24h, 7d (default) or 30d"),
        ("environment" = Option<String>, Query, description = "Only this environment"),
    ),
    security(("admin" = [])),
    responses((status = 200, body = HealthTrend), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn get_health_trends(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<HealthTrend>, AppError> {
    let q = TrendQuery::parse(raw.as_deref())?;
    let points = state.store().health_trend(q.from, q.to, q.bucket, q.environment.as_deref()).await?;
    let by_key: std::collections::HashMap<String, &mentorfy_store::HealthPoint> =
        points.iter().map(|p| (p.bucket.clone(), p)).collect();
    let at = |t: &OffsetDateTime| by_key.get(&bucket_key(q.bucket, *t)).copied();
    Ok(axum::Json(HealthTrend {
        bucket: q.bucket_name(),
        from: rfc3339(q.from),
        to: rfc3339(q.to),
        conversations: q.starts.iter().map(|t| at(t).map_or(0, |p| p.conversations)).collect(),
        avg_health: q
            .starts
            .iter()
            .map(|t| at(t).and_then(|p| p.avg_health).map(|h| (h * 10.0).round() / 10.0))
            .collect(),
        failing: q.starts.iter().map(|t| at(t).map_or(0, |p| p.failing)).collect(),
        buckets: q.starts.iter().copied().map(rfc3339).collect(),
    }))
}
