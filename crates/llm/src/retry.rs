//! The retry policy of the official SDKs: which failures are retried, and how long to wait (the provider's
//! `retry-after-ms` / `retry-after`, else exponential backoff with jitter). Pure functions; the gateway sleeps.

use std::time::Duration;

use rand::Rng as _;
use reqwest::header::HeaderMap;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::{LlmError, TimeoutPhase};

/// The longest provider-requested wait we honour before retrying; longer ones fall back to our backoff.
const MAX_HONOURED_RETRY_AFTER: Duration = Duration::from_secs(60);

/// What the response headers say about retrying.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RetryHint {
    /// `x-should-retry: true|false`.
    pub should_retry: Option<bool>,
    /// `retry-after-ms`, else `retry-after`.
    pub delay: Option<Duration>,
}

impl RetryHint {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let should_retry = match header(headers, "x-should-retry") {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        };
        RetryHint { should_retry, delay: retry_after(headers, OffsetDateTime::now_utc()) }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn duration_from_secs(seconds: f64) -> Option<Duration> {
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(1e9)))
}

/// `retry-after-ms` (milliseconds), else `retry-after` (seconds, or an HTTP date relative to `now`).
pub(crate) fn retry_after(headers: &HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    if let Some(ms) = header(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return duration_from_secs(ms / 1000.0);
    }
    let value = header(headers, "retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return duration_from_secs(seconds);
    }
    let at = parse_http_date(value)?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the HTTP date format.
pub(crate) fn parse_http_date(value: &str) -> Option<OffsetDateTime> {
    let format =
        format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    time::PrimitiveDateTime::parse(value, &format).ok().map(time::PrimitiveDateTime::assume_utc)
}

/// `min(base × 2^retry, max) × random[0.75, 1]`, `retry` counting from 0.
pub(crate) fn backoff(base: Duration, max: Duration, retry: u32) -> Duration {
    let exp = base.saturating_mul(2_u32.saturating_pow(retry.min(31)));
    let capped = exp.min(max);
    capped.mul_f64(rand::rng().random_range(0.75..=1.0))
}

/// Whether a failed attempt may be retried (before anything was handed to the caller).
pub(crate) fn should_retry(error: &LlmError, hint: &RetryHint) -> bool {
    match error {
        LlmError::SpendLimit { .. } | LlmError::NotConfigured { .. } | LlmError::Timeout(TimeoutPhase::Total) => false,
        _ => hint.should_retry.unwrap_or_else(|| error.retryable()),
    }
}

/// How long to wait before retry number `retry` (from 0).
pub(crate) fn delay(hint: &RetryHint, base: Duration, max: Duration, retry: u32) -> Duration {
    match hint.delay {
        Some(d) if d <= MAX_HONOURED_RETRY_AFTER => d,
        _ => backoff(base, max, retry),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use time::macros::datetime;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn retry_after_ms_wins_then_seconds_then_http_date() {
        let now = datetime!(2026-11-01 12:00:00 UTC);
        let h = headers(&[("retry-after-ms", "250"), ("retry-after", "3")]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&headers(&[("retry-after", "3")]), now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&headers(&[("retry-after", "1.5")]), now), Some(Duration::from_millis(1500)));
        let date = headers(&[("retry-after", "Sun, 01 Nov 2026 12:00:07 GMT")]);
        assert_eq!(retry_after(&date, now), Some(Duration::from_secs(7)));
        let past = headers(&[("retry-after", "Sun, 01 Nov 2026 11:00:00 GMT")]);
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")]), now), None);
    }

    #[test]
    fn backoff_doubles_caps_and_jitters_down_by_at_most_a_quarter() {
        let (base, max) = (Duration::from_millis(500), Duration::from_secs(8));
        for (retry, nominal) in [(0, 500), (1, 1000), (2, 2000), (4, 8000), (10, 8000), (40, 8000)] {
            for _ in 0..50 {
                let d = backoff(base, max, retry).as_secs_f64() * 1000.0;
                assert!(d <= f64::from(nominal) + 1e-6 && d >= f64::from(nominal) * 0.75 - 1e-6, "{retry}: {d}");
            }
        }
    }

    #[test]
    fn should_retry_headers_override_except_for_spend_limits() {
        let overloaded = LlmError::Upstream { status: 529, error_type: None, message: String::new(), request_id: None };
        let bad = LlmError::Upstream { status: 400, error_type: None, message: String::new(), request_id: None };
        let yes = RetryHint { should_retry: Some(true), delay: None };
        let no = RetryHint { should_retry: Some(false), delay: None };
        assert!(should_retry(&overloaded, &RetryHint::default()));
        assert!(!should_retry(&overloaded, &no));
        assert!(!should_retry(&bad, &RetryHint::default()));
        assert!(should_retry(&bad, &yes));
        assert!(!should_retry(&LlmError::SpendLimit { message: String::new() }, &yes));
    }

    #[test]
    fn an_unreasonable_retry_after_falls_back_to_backoff() {
        let hint = RetryHint { should_retry: None, delay: Some(Duration::from_secs(3600)) };
        assert!(delay(&hint, Duration::from_millis(10), Duration::from_millis(20), 0) <= Duration::from_millis(10));
        let hint = RetryHint { should_retry: None, delay: Some(Duration::from_secs(2)) };
        assert_eq!(delay(&hint, Duration::from_millis(10), Duration::from_millis(20), 0), Duration::from_secs(2));
    }
}
