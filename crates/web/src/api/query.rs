//! Strict query strings for the admin API: every parameter checked by name, so an unknown, repeated or malformed
//! one is a 400 `invalid_query` naming it in `details.field` (axum's `Query` would ignore unknown ones).

use serde_json::json;

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

pub(crate) fn number<T: std::str::FromStr>(value: &str, field: &str, what: &str) -> Result<T, AppError> {
    value.trim().parse().map_err(|_| bad_query(format!("{field} must be {what}, not '{value}'"), field))
}

