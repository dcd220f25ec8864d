//! Formatting of numbers, times and scores for people, shared by every page.

use time::OffsetDateTime;
use time::macros::format_description;

/// `12345` → `12,345`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A ratio 0–1 as a percentage with one decimal, or `–`.
pub fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "–".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// A score 0–100 without decimals, or `–` when not analysed yet.
pub fn score(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}"))
}

/// The CSS class of a health score: `good` ≥ 70, `fair` ≥ 40, else `poor`; `none` when missing.
pub fn health_class(v: Option<f64>) -> &'static str {
    match v {
        Some(v) if v >= 70.0 => "good",
        Some(v) if v >= 40.0 => "fair",
        Some(_) => "poor",
        None => "none",
    }
}

/// A UTC time as `2026-11-29 14:03`.
pub fn datetime(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day] [hour]:[minute]"))
        .unwrap_or_default()
}

/// How long ago `t` was, relative to `now`: `just now`, `5 min ago`, `3 h ago`, `2 d ago`, or the date.
pub fn ago(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let secs = (now - t).whole_seconds();
    match secs {
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s if s < 30 * 86_400 => format!("{} d ago", s / 86_400),
        _ => datetime(t),
    }
}

/// Milliseconds for people: `850 ms`, `1.2 s`, or `–`.
pub fn millis(ms: Option<i64>) -> String {
    match ms {
        None => "–".to_owned(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
    }
}

/// US dollars: `$0.0123`, `$12.40`, or `–` when the price is unknown.
pub fn usd(v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(v) if v < 1.0 => format!("${v:.4}"),
        Some(v) => format!("${v:.2}"),
    }
}

/// A failure type's name for people: `tool_error` → `Tool error`.
pub fn label(snake: &str) -> String {
    let spaced = snake.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn numbers_and_times_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(-1234567), "-1,234,567");
        assert_eq!(percent(Some(0.1234)), "12.3%");
        assert_eq!(percent(None), "–");
        assert_eq!(health_class(Some(70.0)), "good");
        assert_eq!(health_class(Some(39.9)), "poor");
        let now = datetime!(2026-11-29 12:00 UTC);
        assert_eq!(ago(datetime!(2026-11-29 11:55 UTC), now), "5 min ago");
        assert_eq!(ago(datetime!(2026-11-27 12:00 UTC), now), "2 d ago");
        assert_eq!(millis(Some(1250)), "1.2 s");
        assert_eq!(usd(Some(0.01234)), "$0.0123");
        assert_eq!(label("tool_error"), "Tool error");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
