//! The Mentor funnel and leads for admins: `GET /api/v1/sessions` (funnel counts over the sessions created in a
//! period, and the matching leads newest first in cursor pages) and its CSV export (`format=csv`: every matching
//! lead, streamed). Parsing and mapping only: the counting and filtering are the store's; no SQL here.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mentorfy_core::{OrgId, Session, SessionId, SessionStatus};
use mentorfy_store::{SessionFunnel, SessionLeadFilter, Store, StoreError};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::admin_auth::AdminAuth;
use crate::api::query::{bad_query, number, parse_time_cursor, query_pairs, rfc3339_time, time_cursor};
use crate::error::{AppError, ErrorEnvelope};
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;
/// The period when neither `range` nor `from` is given.
const DEFAULT_BACK: Duration = Duration::days(30);
/// Rows read from the store per query of a CSV export.
const CSV_CHUNK: u32 = 1000;
/// Most rows in one CSV export.
pub const CSV_MAX_ROWS: usize = 100_000;
const CSV_HEADER: [&str; 8] = ["id", "name", "email", "phone", "status", "linked", "created_at", "updated_at"];

/// `json` (the default) or `csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Csv,
}

/// A parsed `GET /api/v1/sessions` query: the period resolved to `[from, to)`, the filters, the page.
#[derive(Debug, Clone)]
pub struct SessionReportQuery {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub filter: SessionLeadFilter,
    pub format: ReportFormat,
}

impl SessionReportQuery {
    /// Every parameter checked by name: an unknown one, a repeated one or a malformed value is a 400 naming it.
    /// Without `range` or `from`, the period is the 30 days before `to` (default: now).
    pub fn parse(raw: Option<&str>, now: OffsetDateTime) -> Result<Self, AppError> {
        let mut f = SessionLeadFilter { limit: DEFAULT_LIMIT, ..SessionLeadFilter::default() };
        let (mut range, mut from, mut to, mut format) = (None, None, None, ReportFormat::Json);
        let boolean = |v: &str, field: &str| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad_query(format!("{field} must be true or false"), field)),
        };
        for (k, v) in query_pairs(raw)? {
            match k.as_str() {
                "range" => range = Some(v),
                "from" => from = Some(rfc3339_time(&v, "from")?),
                "to" => to = Some(rfc3339_time(&v, "to")?),
                "status" => {
                    let status = SessionStatus::parse(&v)
                        .ok_or_else(|| bad_query("status must be in_progress, completed or abandoned", "status"))?;
                    f.status = Some(status);
                }
                "linked" => f.linked = Some(boolean(&v, "linked")?),
                "has_contact" => f.has_contact = Some(boolean(&v, "has_contact")?),
                "org" => f.org = Some(OrgId::parse(&v).map_err(|_| bad_query("org must be an org slug", "org"))?),
                "limit" => f.limit = number(&v, "limit", "a whole number from 1 to 200")?,
                "cursor" => {
                    f.before = Some(parse_time_cursor("ses", &v).map(|(at, id)| (at, SessionId::from_uuid(id)))?)
                }
                "format" => {
                    format = match v.as_str() {
                        "json" => ReportFormat::Json,
                        "csv" => ReportFormat::Csv,
                        _ => return Err(bad_query("format must be json or csv", "format")),
                    }
                }
                other => return Err(bad_query(format!("unknown query parameter '{other}'"), other)),
            }
        }
        if !(1..=MAX_LIMIT).contains(&f.limit) {
            return Err(bad_query(format!("limit must be from 1 to {MAX_LIMIT}"), "limit"));
        }
        let to = to.unwrap_or(now);
        let from = match range {
            Some(r) => {
                if from.is_some() {
                    return Err(bad_query("give either range or from/to, not both", "range"));
                }
                let back = match r.as_str() {
                    "24h" => Duration::hours(24),
                    "7d" => Duration::days(7),
                    "30d" => Duration::days(30),
                    "90d" => Duration::days(90),
                    _ => return Err(bad_query("range must be 24h, 7d, 30d or 90d", "range")),
                };
                to - back
            }
            None => from.unwrap_or(to - DEFAULT_BACK),
        };
        if from >= to {
            return Err(bad_query("from must be before to", "from"));
        }
        f.from = Some(from);
        f.to = Some(to);
        Ok(Self { from, to, filter: f, format })
    }
}

/// The funnel of the sessions created in the period. Rates are fractions (0–1, four decimals); null when no
/// session was created.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FunnelView {
    pub created: i64,
    pub in_progress: i64,
    pub completed: i64,
    pub abandoned: i64,
    /// Linked to a signed-in account.
    pub linked: i64,
    /// Left an email or a phone number.
    pub with_contact: i64,
    /// completed / created.
    pub completion_rate: Option<f64>,
    /// linked / created.
    pub link_rate: Option<f64>,
}

impl From<SessionFunnel> for FunnelView {
    fn from(f: SessionFunnel) -> Self {
        let rate = |n: i64| (f.created > 0).then(|| ((n as f64 / f.created as f64) * 1e4).round() / 1e4);
        Self {
            created: f.created,
            in_progress: f.in_progress,
            completed: f.completed,
            abandoned: f.abandoned,
            linked: f.linked,
            with_contact: f.with_contact,
            completion_rate: rate(f.completed),
            link_rate: rate(f.linked),
        }
    }
}

/// A session as a lead: who, how far they got, whether they signed in. Never the Clerk user id or the context.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LeadView {
    pub id: Uuid,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `in_progress`, `completed` or `abandoned`.
    pub status: &'static str,
    pub linked: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Session> for LeadView {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.as_uuid(),
            name: s.name,
            email: s.email,
            phone: s.phone,
            status: s.status.as_str(),
            linked: s.clerk_user_id.is_some(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// The funnel of the period and one page of its leads.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionReport {
    /// Over every session created in the period (of `org` if given); the other filters do not apply to it.
    pub funnel: FunnelView,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub to: OffsetDateTime,
    pub leads: Vec<LeadView>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// The funnel and first (or `cursor`) page of leads for a raw query string, as `GET /api/v1/sessions` answers in
/// JSON. For the dashboard as well as the handler; `format` is accepted and ignored.
pub async fn session_report(state: &AppState, query: Option<&str>) -> Result<SessionReport, AppError> {
    let q = SessionReportQuery::parse(query, mentorfy_store::now())?;
    report(state.store(), &q).await
}

async fn report(store: &Store, q: &SessionReportQuery) -> Result<SessionReport, AppError> {
    let limit = q.filter.limit;
    let mut rows = store.list_session_leads(&SessionLeadFilter { limit: limit + 1, ..q.filter.clone() }).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|s| time_cursor("ses", s.created_at, s.id.as_uuid())) } else { None };
    let funnel = store.session_funnel(q.filter.org.as_ref(), q.from, q.to).await?;
    Ok(SessionReport {
        funnel: funnel.into(),
        from: q.from,
        to: q.to,
        leads: rows.into_iter().map(LeadView::from).collect(),
        next_cursor,
    })
}

/// One CSV field: quoted when it holds a quote, comma or line break (quotes doubled), and a value a spreadsheet
/// would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`.
pub fn csv_field(value: &str) -> String {
    // A phone number in E.164 (`+15551234567`) starts with `+` but is no formula: it is kept as it is.
    let phone = value.len() > 1
        && value.starts_with('+')
        && value[1..].bytes().all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'(' | b')' | b'-'));
    let guarded = if !phone && value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains(['"', ',', '\n', '\r']) { format!("\"{}\"", guarded.replace('"', "\"\"")) } else { guarded }
}

/// One CSV record, CRLF-terminated (RFC 4180).
fn csv_record<'a>(fields: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = fields.into_iter().map(csv_field).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

fn lead_record(s: &Session) -> String {
    let at = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let (id, created, updated) = (s.id.to_string(), at(s.created_at), at(s.updated_at));
    csv_record([
        id.as_str(),
        s.name.as_deref().unwrap_or(""),
        s.email.as_deref().unwrap_or(""),
        s.phone.as_deref().unwrap_or(""),
        s.status.as_str(),
        if s.clerk_user_id.is_some() { "true" } else { "false" },
        created.as_str(),
        updated.as_str(),
    ])
}

/// Every lead matching the query (its limit and cursor ignored; at most [`CSV_MAX_ROWS`]) as a streamed CSV
/// attachment, read from the store in chunks. For the dashboard as well as the handler.
pub async fn session_leads_csv(state: &AppState, query: Option<&str>) -> Result<Response, AppError> {
    let q = SessionReportQuery::parse(query, mentorfy_store::now())?;
    Ok(csv_response(state.store().clone(), &q))
}

/// Where a CSV export is: the filter with the position after the last row written.
struct CsvCursor {
    store: Store,
    filter: SessionLeadFilter,
    written: usize,
    done: bool,
}

/// The next chunk of CSV records, or `None` when every row (or the cap) is written.
async fn next_csv_chunk(mut c: CsvCursor) -> Result<Option<(String, CsvCursor)>, StoreError> {
    if c.done || c.written >= CSV_MAX_ROWS {
        return Ok(None);
    }
    let room = u32::try_from(CSV_MAX_ROWS - c.written).unwrap_or(CSV_CHUNK).min(CSV_CHUNK);
    let page = c.store.list_session_leads(&SessionLeadFilter { limit: room, ..c.filter.clone() }).await;
    // The status line is already sent: a failure can only cut the body short, so it is logged here.
    let page = page.inspect_err(|e| tracing::error!(error = %e, "CSV export of sessions stopped"))?;
    if page.is_empty() {
        return Ok(None);
    }
    c.done = page.len() < room as usize;
    c.written += page.len();
    c.filter.before = page.last().map(|s| (s.created_at, s.id));
    let chunk: String = page.iter().map(lead_record).collect();
    Ok(Some((chunk, c)))
}

fn csv_response(store: Store, q: &SessionReportQuery) -> Response {
    let filter = SessionLeadFilter { before: None, limit: CSV_CHUNK, ..q.filter.clone() };
    let start = CsvCursor { store, filter, written: 0, done: false };
    let header_row = futures::stream::once(async { Ok::<_, StoreError>(csv_record(CSV_HEADER)) });
    let rows = futures::stream::try_unfold(start, next_csv_chunk);
    let date = mentorfy_store::now().date();
    let disposition = format!("attachment; filename=\"mentorfy-leads-{date}.csv\"");
    let mut response = Body::from_stream(futures::StreamExt::chain(header_row, rows)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    // Leads are personal data: no shared cache may keep them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// The Mentor funnel and leads: counts over the sessions created in the period, and the leads matching the
/// filters, newest first, in cursor pages. With `format=csv`: every matching lead (limit and cursor ignored, at
/// most 100,000) as a CSV attachment.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "mentor funnel",
    params(
        ("range" = Option<String>, Query, description = "24h, 7d, 30d or 90d back from `to` (or from/to, RFC 3339); default 30d"),
        ("from" = Option<String>, Query, description = "Created at or after (RFC 3339)"),
        ("to" = Option<String>, Query, description = "Created before (RFC 3339); default now"),
        ("status" = Option<String>, Query, description = "in_progress, completed or abandoned"),
        ("linked" = Option<bool>, Query, description = "Linked to a signed-in account"),
        ("has_contact" = Option<bool>, Query, description = "Has an email or a phone number"),
        ("org" = Option<String>, Query, description = "Org slug (funnel and leads)"),
        ("limit" = Option<u32>, Query, description = "1–200, default 50 (JSON only)"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page (JSON only)"),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
    ),
    security(("admin" = [])),
    responses(
        (status = 200, description = "The funnel and a page of leads; with format=csv, every matching lead",
            content(
                (SessionReport = "application/json"),
                (String = "text/csv"),
            )),
        (status = 400, description = "An unknown, repeated or malformed parameter", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
    ))]
pub async fn list_sessions_report(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let q = SessionReportQuery::parse(raw.as_deref(), mentorfy_store::now())?;
    match q.format {
        ReportFormat::Csv => Ok(csv_response(state.store().clone(), &q)),
        ReportFormat::Json => Ok(axum::Json(report(state.store(), &q).await?).into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("Ana"), "Ana");
        assert_eq!(csv_field(""), "");
        assert_eq!(csv_field("Silva, Ana"), "\"Silva, Ana\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(csv_field("a@b.com"), "a@b.com", "@ inside is fine");
    }

    #[test]
    fn csv_fields_that_a_spreadsheet_would_run_get_a_leading_quote() {
        assert_eq!(csv_field("=HYPERLINK(\"http://x\")"), "\"'=HYPERLINK(\"\"http://x\"\")\"");
        assert_eq!(csv_field("+15551234567"), "+15551234567", "an E.164 phone is kept as it is");
        assert_eq!(csv_field("+1 (555) 123-4567"), "+1 (555) 123-4567");
        assert_eq!(csv_field("+1+cmd|' /C calc'!A0"), "'+1+cmd|' /C calc'!A0", "a DDE payload is neutralised");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("=1+1,2"), "\"'=1+1,2\"");
        assert_eq!(csv_field("\tx"), "'\tx");
    }

    #[test]
    fn records_end_with_crlf() {
        assert_eq!(csv_record(["a", "b,c"]), "a,\"b,c\"\r\n");
    }

    #[test]
    fn period_defaults_to_the_thirty_days_before_now() {
        let now = time::macros::datetime!(2026-11-29 10:00:00 UTC);
        let q = SessionReportQuery::parse(None, now).unwrap();
        assert_eq!((q.from, q.to), (now - Duration::days(30), now));
        assert_eq!((q.filter.limit, q.format), (50, ReportFormat::Json));
        let q = SessionReportQuery::parse(Some("range=90d&to=2026-11-01T00:00:00Z"), now).unwrap();
        assert_eq!(q.from, time::macros::datetime!(2026-08-03 00:00:00 UTC));
    }
}
