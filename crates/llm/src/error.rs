//! [`LlmError`], the gateway's one error type, and the reading of provider error bodies into it.
//! Its `Display` is for operators' logs (upstream messages included); [`LlmError::public_message`] is the only
//! text meant for end users. Nothing here may ever hold an API key.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::types::ProviderKind;

/// Which deadline expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutPhase {
    /// The TCP/TLS connection was not established in time.
    Connect,
    /// No content arrived in time after the request was sent.
    FirstToken,
    /// The whole call (retries and streaming included) ran out of time.
    Total,
}

impl TimeoutPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::FirstToken => "first token",
            Self::Total => "total",
        }
    }
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an LLM call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The provider has no settings (no key / base URL configured).
    #[error("{}", not_configured(*provider))]
    NotConfigured { provider: ProviderKind },
    /// HTTP 429 (not a spend limit), once retries are exhausted.
    #[error("rate limited by the provider: {message}")]
    RateLimited { retry_after: Option<Duration>, message: String },
    /// A spend or quota limit (Anthropic `enforced_spend_limit_reached`, OpenAI `insufficient_quota`): never retried.
    #[error("spend limit reached: {message}")]
    SpendLimit { message: String },
    /// Any other non-2xx answer.
    #[error("provider answered HTTP {status}{}: {message}{}", fmt_type(error_type), fmt_request_id(request_id))]
    Upstream { status: u16, error_type: Option<String>, message: String, request_id: Option<String> },
    /// An error reported inside a 200 stream (Anthropic `error` event, OpenAI `{"error":…}` data line).
    #[error("provider stream error ({error_type}): {message}")]
    Stream { error_type: String, message: String },
    #[error("timed out ({0})")]
    Timeout(TimeoutPhase),
    /// The connection failed or broke.
    #[error("transport error: {0}")]
    Transport(String),
    /// The provider's answer did not follow the wire format (bad JSON, a stream that ended without its end marker).
    #[error("protocol error: {0}")]
    Protocol(String),
}

fn not_configured(provider: ProviderKind) -> String {
    match provider {
        ProviderKind::Anthropic => "the Anthropic provider is not configured: set ANTHROPIC_API_KEY".to_owned(),
        ProviderKind::OpenAi => {
            "the OpenAI provider is not configured: set OPENAI_API_KEY, or OPENAI_BASE_URL for a compatible server"
                .to_owned()
        }
    }
}

fn fmt_type(error_type: &Option<String>) -> String {
    error_type.as_ref().map(|t| format!(" ({t})")).unwrap_or_default()
}

fn fmt_request_id(request_id: &Option<String>) -> String {
    request_id.as_ref().map(|id| format!(" [request-id {id}]")).unwrap_or_default()
}

/// Provider error types that mean "this request itself is wrong": retrying cannot help.
const NON_RETRYABLE_TYPES: &[&str] = &[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "billing_error",
    "request_too_large",
    "insufficient_quota",
    "invalid_api_key",
];

impl LlmError {
    /// Whether the same request may succeed if sent again (after [`LlmError::retry_after`] if any).
    pub fn retryable(&self) -> bool {
        match self {
            Self::NotConfigured { .. } | Self::SpendLimit { .. } | Self::Protocol(_) => false,
            Self::RateLimited { .. } | Self::Transport(_) => true,
            Self::Upstream { status, .. } => matches!(status, 408 | 409 | 429) || *status >= 500,
            Self::Stream { error_type, .. } => !NON_RETRYABLE_TYPES.contains(&error_type.as_str()),
            Self::Timeout(phase) => *phase != TimeoutPhase::Total,
        }
    }

    /// The OpenTelemetry `error.type`: the provider's error type (`overloaded_error`, `rate_limit_error`), else the
    /// HTTP status (`"529"`), `timeout`, or `_OTHER`. A spend limit is `spend_limit_reached`.
    pub fn error_type(&self) -> String {
        match self {
            Self::RateLimited { .. } => "rate_limit_error".to_owned(),
            Self::SpendLimit { .. } => "spend_limit_reached".to_owned(),
            Self::Upstream { status, error_type, .. } => error_type.clone().unwrap_or_else(|| status.to_string()),
            Self::Stream { error_type, .. } => error_type.clone(),
            Self::Timeout(_) => "timeout".to_owned(),
            Self::NotConfigured { .. } | Self::Transport(_) | Self::Protocol(_) => "_OTHER".to_owned(),
        }
    }

    /// How long the provider asked us to wait, when it said so (rate limits).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A message safe to show end users: never an upstream body, a key or a URL.
    pub fn public_message(&self) -> String {
        let overloaded = "The model is overloaded. Please retry.";
        let message = match self {
            Self::NotConfigured { .. } => "The AI model is not configured on this server.",
            Self::RateLimited { .. } => "The model is receiving too many requests. Please retry in a moment.",
            Self::SpendLimit { .. } => "The AI usage limit for this service has been reached.",
            Self::Upstream { status, error_type, .. } => match (status, error_type.as_deref()) {
                (529, _) | (_, Some("overloaded_error")) => overloaded,
                (401 | 403, _) => "The model provider rejected this server's credentials.",
                (404, _) => "The requested model is not available.",
                (413, _) => "The conversation is too long for the model.",
                (408 | 504, _) => "The model took too long to answer. Please retry.",
                (400..=499, _) => "The model provider rejected the request.",
                _ => "The model provider had an error. Please retry.",
            },
            Self::Stream { error_type, .. } => match error_type.as_str() {
                "overloaded_error" => overloaded,
                "rate_limit_error" => "The model is receiving too many requests. Please retry in a moment.",
                _ => "The model stopped with an error. Please retry.",
            },
            Self::Timeout(_) => "The model took too long to answer. Please retry.",
            Self::Transport(_) => "Could not reach the model provider. Please retry.",
            Self::Protocol(_) => "The model provider sent an unexpected answer. Please retry.",
        };
        message.to_owned()
    }
}

/// Whether a provider error object says a spend or quota limit was hit, wherever the code is nested.
pub(crate) fn is_spend_limit(error: &Value) -> bool {
    match error {
        Value::String(s) => s.contains("enforced_spend_limit_reached") || s == "insufficient_quota",
        Value::Array(items) => items.iter().any(is_spend_limit),
        Value::Object(map) => map.values().any(is_spend_limit),
        _ => false,
    }
}

/// `(error_type, message)` of an error object: Anthropic `{type:"error",error:{type,message}}`, OpenAI
/// `{error:{message,type,code}}`; the type falls back to OpenAI's `code`.
pub(crate) fn error_fields(body: &Value) -> Option<(Option<String>, Option<String>)> {
    let error = body.get("error")?;
    if let Some(text) = error.as_str() {
        return Some((None, Some(text.to_owned())));
    }
    let text = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_owned);
    Some((text("type").or_else(|| text("code")), text("message")))
}

/// The error for an in-stream error object (Anthropic `error` event data, OpenAI `{"error":…}` line).
pub(crate) fn stream_error(data: &Value) -> LlmError {
    let (error_type, message) = error_fields(data).unwrap_or((None, None));
    let message = message.unwrap_or_else(|| "the provider reported an error".to_owned());
    if is_spend_limit(data) {
        return LlmError::SpendLimit { message };
    }
    LlmError::Stream { error_type: error_type.unwrap_or_else(|| "error".to_owned()), message }
}

/// The error for a non-2xx answer, from its status, parsed body and headers.
pub(crate) fn http_error(
    status: u16,
    body: &[u8],
    request_id: Option<String>,
    retry_after: Option<Duration>,
) -> LlmError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let (error_type, message) = parsed.as_ref().and_then(error_fields).unwrap_or((None, None));
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() { format!("HTTP {status}") } else { text.chars().take(300).collect() }
    });
    let request_id = request_id.or_else(|| parsed.as_ref()?.get("request_id")?.as_str().map(str::to_owned));
    if parsed.as_ref().and_then(|b| b.get("error")).is_some_and(is_spend_limit) {
        return LlmError::SpendLimit { message };
    }
    if status == 429 {
        return LlmError::RateLimited { retry_after, message };
    }
    LlmError::Upstream { status, error_type, message, request_id }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn spend_limit_is_found_wherever_it_is_nested() {
        let body = json!({"type":"error","error":{"type":"rate_limit_error","message":"m",
            "details":{"error_code":"enforced_spend_limit_reached"}}});
        let err = http_error(429, body.to_string().as_bytes(), None, Some(Duration::from_secs(3)));
        assert!(matches!(err, LlmError::SpendLimit { .. }));
        assert!(!err.retryable());
        let openai = json!({"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}});
        assert!(matches!(http_error(429, openai.to_string().as_bytes(), None, None), LlmError::SpendLimit { .. }));
    }

    #[test]
    fn upstream_errors_keep_type_message_and_request_id() {
        let body =
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"});
        let err = http_error(529, body.to_string().as_bytes(), None, None);
        assert_eq!(
            err,
            LlmError::Upstream {
                status: 529,
                error_type: Some("overloaded_error".into()),
                message: "Overloaded".into(),
                request_id: Some("req_1".into())
            }
        );
        assert!(err.retryable());
        assert_eq!(err.error_type(), "overloaded_error");
        assert_eq!(err.public_message(), "The model is overloaded. Please retry.");
    }

    #[test]
    fn a_non_json_body_becomes_the_message_and_the_status_the_type() {
        let err = http_error(502, b"<html>bad gateway</html>", Some("r".into()), None);
        assert_eq!(err.error_type(), "502");
        assert!(err.to_string().contains("bad gateway"));
        assert!(!err.public_message().contains("bad gateway"));
    }

    #[test]
    fn retryable_statuses_follow_the_sdk() {
        let up = |status| LlmError::Upstream { status, error_type: None, message: String::new(), request_id: None };
        for status in [408, 409, 429, 500, 503, 529] {
            assert!(up(status).retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422] {
            assert!(!up(status).retryable(), "{status}");
        }
        assert!(LlmError::Timeout(TimeoutPhase::FirstToken).retryable());
        assert!(!LlmError::Timeout(TimeoutPhase::Total).retryable());
    }

    #[test]
    fn not_configured_names_the_variables() {
        assert!(
            LlmError::NotConfigured { provider: ProviderKind::Anthropic }.to_string().contains("ANTHROPIC_API_KEY")
        );
        let openai = LlmError::NotConfigured { provider: ProviderKind::OpenAi }.to_string();
        assert!(openai.contains("OPENAI_API_KEY") && openai.contains("OPENAI_BASE_URL"));
    }
}
