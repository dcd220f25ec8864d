//! Strict query strings for the admin API: every parameter checked by name, so an unknown, repeated or malformed
//! one is a 400 `invalid_query` naming it in `details.field` (axum's `Query` would ignore unknown ones).

use base64::Engine;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::AppError;

pub(crate) fn bad_query(message: impl Into<String>, field: &str) -> AppError {
    AppError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_query", message).with_details(json!({"field": field}))
}

/// Splits a query string into decoded pairs; a parameter given twice is refused (which one would win is a guess).
pub(crate) fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, AppError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| bad_query(format!("the query string is not form-encoded: {e}"), ""))?;
    let mut seen = std::collections::HashSet::new();
    for (k, _) in &pairs {
        if !seen.insert(k.as_str()) {
            return Err(bad_query(format!("{k} is given more than once"), k));
        }
    }
    Ok(pairs)
}

/// An RFC 3339 time given as `field`.
pub(crate) fn rfc3339_time(raw: &str, field: &str) -> Result<OffsetDateTime, AppError> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad_query(format!("{field} must be an RFC 3339 time"), field))
}

/// How far back `range` reaches: `24h`, `7d` or `30d`.
pub(crate) fn range_back(raw: &str) -> Result<time::Duration, AppError> {
    match raw {
        "24h" => Ok(time::Duration::hours(24)),
        "7d" => Ok(time::Duration::days(7)),
        "30d" => Ok(time::Duration::days(30)),
        _ => Err(bad_query("range must be 24h, 7d or 30d", "range")),
    }
}

pub(crate) fn number<T: std::str::FromStr>(value: &str, field: &str, what: &str) -> Result<T, AppError> {
    value.trim().parse().map_err(|_| bad_query(format!("{field} must be {what}, not '{value}'"), field))
}

/// A keyset cursor over `(time, id)`, newest first: `base64url(tag|microseconds|id)`. The tag names the listing, so
/// a cursor of another listing is refused.
pub(crate) fn time_cursor(tag: &str, at: OffsetDateTime, id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{tag}|{}|{id}", at.unix_timestamp_nanos() / 1_000))
}

/// Reads a [`time_cursor`] of listing `tag`; anything else is a 400 naming `cursor`.
pub(crate) fn parse_time_cursor(tag: &str, raw: &str) -> Result<(OffsetDateTime, Uuid), AppError> {
    let bad = || bad_query("cursor is not a cursor this listing gave out", "cursor");
    let text =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).ok().and_then(|b| String::from_utf8(b).ok());
    let text = text.ok_or_else(bad)?;
    let mut parts = text.splitn(3, '|');
    if parts.next() != Some(tag) {
        return Err(bad());
    }
    let micros: i128 = parts.next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
    let id = parts.next().and_then(|i| Uuid::parse_str(i).ok()).ok_or_else(bad)?;
    let nanos = micros.checked_mul(1_000).ok_or_else(bad)?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| bad())?;
    Ok((at, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_cursors_round_trip_and_are_bound_to_their_listing() {
        let at = time::macros::datetime!(2026-11-29 12:00:00.123456 UTC);
        let id = Uuid::now_v7();
        let c = time_cursor("llm", at, id);
        assert_eq!(parse_time_cursor("llm", &c).unwrap(), (at, id));
        assert!(parse_time_cursor("ses", &c).is_err(), "another listing's cursor");
        assert!(parse_time_cursor("llm", "bm9wZQ").is_err());
        assert!(parse_time_cursor("llm", "not base64!").is_err());
    }
}
