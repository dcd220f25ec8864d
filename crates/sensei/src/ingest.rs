//! The ingested conversation: the track API's wire shape ([`TrackBody`]), and the validated form every ingestion
//! path produces ([`IngestConversation`]). Validation names the field and the reason of the first problem, so a
//! client can fix its request; nothing is stored from a request that fails it.

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Largest message content, in bytes of UTF-8.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;
/// Most messages in one track request (or one batch event).
pub const MAX_MESSAGES: usize = 500;
/// Longest conversation id, message id, user id or agent id, in characters.
pub const MAX_ID_CHARS: usize = 256;
/// Longest environment label, in characters (as for API keys).
pub const MAX_ENVIRONMENT_CHARS: usize = 32;
/// Largest metadata object, in bytes of serialized JSON.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Timestamps before this are refused: epoch *seconds* sent where milliseconds are expected land in 1970.
const EARLIEST_UNIX_MS: i64 = 946_684_800_000; // 2000-01-01T00:00:00Z
/// Timestamps further in the future than this are refused (clock skew is tolerated, typos are not).
const MAX_FUTURE: time::Duration = time::Duration::days(1);

/// The first problem found in an ingested payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// A path into the body, such as `messages[3].content`.
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }

    /// The same error with `prefix.` before its field (for batch events: `body.messages[0].role`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    System,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Tool => "tool",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "system" => Some(Role::System),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

/// `POST /api/v1/conversations/track` (and the body of a batch `track` event).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackBody {
    pub conversation_id: String,
    pub messages: Vec<TrackMessage>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
}

/// One message of a [`TrackBody`].
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackMessage {
    #[serde(default)]
    pub id: Option<String>,
    pub role: String,
    pub content: String,
    /// RFC 3339 text or epoch milliseconds (a number).
    pub timestamp: Value,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// A validated conversation with the messages to append, whatever path it came by.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestConversation {
    /// The client's conversation id.
    pub external_id: String,
    /// `None`: the API key's environment.
    pub environment: Option<String>,
    pub user_id: Option<String>,
    pub agent_id: Option<String>,
    /// Merged key by key into the stored conversation's metadata.
    pub metadata: Map<String, Value>,
    pub messages: Vec<IngestMessage>,
}

/// A validated message.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestMessage {
    /// The client's id, or `h_` and a digest of role, content and timestamp when it gave none: the key that
    /// makes a retried message a duplicate.
    pub external_id: String,
    pub role: Role,
    pub content: String,
    /// Truncated to the microsecond.
    pub created_at: OffsetDateTime,
    pub metadata: Map<String, Value>,
    /// `complete` unless the source says otherwise (OTLP spans with an error status give `error`).
    pub status: &'static str,
    pub finish_reason: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub ttft_ms: Option<i64>,
}

impl IngestMessage {
    /// A plain message (no usage figures); `external_id` is derived when `id` is `None`.
    pub fn new(id: Option<String>, role: Role, content: String, created_at: OffsetDateTime) -> Self {
        let created_at = truncate_to_micros(created_at);
        let external_id = id.unwrap_or_else(|| content_key(role, &content, created_at));
        Self {
            external_id,
            role,
            content,
            created_at,
            metadata: Map::new(),
            status: "complete",
            finish_reason: None,
            input_tokens: None,
            output_tokens: None,
            latency_ms: None,
            ttft_ms: None,
        }
    }
}

impl IngestMessage {
    /// Copies usage figures a client put in the metadata (`inputTokens`/`input_tokens`, `outputTokens`/
    /// `output_tokens`, `latencyMs`/`latency_ms`, `ttftMs`/`ttft_ms`: non-negative integers) into the message's
    /// columns, where analytics read them. The metadata keeps them as sent; other values are left alone.
    pub fn promote_usage(&mut self) {
        let pick = |m: &Map<String, Value>, camel: &str, snake: &str| {
            m.get(camel).or_else(|| m.get(snake)).and_then(Value::as_i64).filter(|n| *n >= 0)
        };
        let m = &self.metadata;
        let (input, output) = (pick(m, "inputTokens", "input_tokens"), pick(m, "outputTokens", "output_tokens"));
        let (latency, ttft) = (pick(m, "latencyMs", "latency_ms"), pick(m, "ttftMs", "ttft_ms"));
        self.input_tokens = self.input_tokens.or(input);
        self.output_tokens = self.output_tokens.or(output);
        self.latency_ms = self.latency_ms.or(latency);
        self.ttft_ms = self.ttft_ms.or(ttft);
    }
}

/// The dedupe key of a message sent without an id: `h_` + the first 128 bits of SHA-256 over role, content and
/// the timestamp in microseconds, hex.
pub fn content_key(role: Role, content: &str, at: OffsetDateTime) -> String {
    let mut h = Sha256::new();
    h.update(role.as_str().as_bytes());
    h.update([0]);
    h.update(content.as_bytes());
    h.update([0]);
    h.update((at.unix_timestamp_nanos() / 1_000).to_string().as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(34);
    out.push_str("h_");
    for b in &digest[..16] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000).unwrap_or(t)
}

/// Parses a timestamp: RFC 3339 text, or an integer of epoch milliseconds. Refuses times before 2000 (the usual
/// sign of epoch seconds) and more than a day ahead.
pub fn parse_timestamp(field: &str, value: &Value, now: OffsetDateTime) -> Result<OffsetDateTime, ValidationError> {
    let t = match value {
        Value::String(s) => OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|_| {
            ValidationError::new(
                field,
                "expected an RFC 3339 timestamp such as 2026-11-29T10:15:30.123Z, or epoch milliseconds",
            )
        })?,
        Value::Number(n) => {
            let ms = n.as_i64().ok_or_else(|| ValidationError::new(field, "epoch milliseconds must be an integer"))?;
            if ms < EARLIEST_UNIX_MS {
                return Err(ValidationError::new(field, "before 2000-01-01: send epoch milliseconds, not seconds"));
            }
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .map_err(|_| ValidationError::new(field, "out of range"))?
        }
        Value::Null => return Err(ValidationError::new(field, "required")),
        _ => return Err(ValidationError::new(field, "expected an RFC 3339 string or epoch milliseconds")),
    };
    if t.unix_timestamp_nanos() < i128::from(EARLIEST_UNIX_MS) * 1_000_000 {
        return Err(ValidationError::new(field, "before 2000-01-01"));
    }
    if t > now + MAX_FUTURE {
        return Err(ValidationError::new(field, "more than a day in the future"));
    }
    Ok(truncate_to_micros(t.to_offset(time::UtcOffset::UTC)))
}

/// Checks an id-like string: not blank, at most [`MAX_ID_CHARS`], no control characters. Returns it trimmed.
pub fn check_id(field: &str, raw: &str) -> Result<String, ValidationError> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if v.chars().count() > MAX_ID_CHARS {
        return Err(ValidationError::new(field, format!("longer than {MAX_ID_CHARS} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "must not contain control characters"));
    }
    Ok(v.to_owned())
}

/// Checks an environment label: 1–32 characters of `[A-Za-z0-9_.-]`.
pub fn check_environment(field: &str, raw: &str) -> Result<String, ValidationError> {
    let v = raw.trim();
    let ok = !v.is_empty()
        && v.chars().count() <= MAX_ENVIRONMENT_CHARS
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(ValidationError::new(
            field,
            format!("1 to {MAX_ENVIRONMENT_CHARS} characters of letters, digits, '_', '-' or '.'"),
        ));
    }
    Ok(v.to_owned())
}

/// Checks a metadata object's size.
pub fn check_metadata(field: &str, m: &Map<String, Value>) -> Result<(), ValidationError> {
    let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(ValidationError::new(field, format!("larger than {} KiB of JSON", MAX_METADATA_BYTES / 1024)));
    }
    Ok(())
}

/// Checks message content: at most [`MAX_CONTENT_BYTES`], no NUL (PostgreSQL text cannot hold it).
pub fn check_content(field: &str, content: &str) -> Result<(), ValidationError> {
    if content.len() > MAX_CONTENT_BYTES {
        return Err(ValidationError::new(
            field,
            format!("{} bytes; the limit is {} KiB", content.len(), MAX_CONTENT_BYTES / 1024),
        ));
    }
    if content.contains('\0') {
        return Err(ValidationError::new(field, "must not contain NUL characters"));
    }
    Ok(())
}

impl TrackBody {
    /// Validates the body against `now` (for the future-timestamp check).
    pub fn validate(self, now: OffsetDateTime) -> Result<IngestConversation, ValidationError> {
        let external_id = check_id("conversationId", &self.conversation_id)?;
        let environment = self.environment.as_deref().map(|e| check_environment("environment", e)).transpose()?;
        let user_id = self.user_id.as_deref().map(|u| check_id("userId", u)).transpose()?;
        let agent_id = self.agent_id.as_deref().map(|a| check_id("agentId", a)).transpose()?;
        let metadata = self.metadata.unwrap_or_default();
        check_metadata("metadata", &metadata)?;
        if self.messages.is_empty() {
            return Err(ValidationError::new("messages", "must hold at least one message"));
        }
        if self.messages.len() > MAX_MESSAGES {
            return Err(ValidationError::new(
                "messages",
                format!("{} messages; at most {MAX_MESSAGES} per request", self.messages.len()),
            ));
        }
        let mut messages = Vec::with_capacity(self.messages.len());
        for (i, m) in self.messages.into_iter().enumerate() {
            let at = |f: &str| format!("messages[{i}].{f}");
            let id = m.id.as_deref().map(|id| check_id(&at("id"), id)).transpose()?;
            if id.as_deref().is_some_and(|id| id.starts_with("h_")) {
                return Err(ValidationError::new(at("id"), "ids starting with 'h_' are reserved"));
            }
            let role = Role::parse(&m.role)
                .ok_or_else(|| ValidationError::new(at("role"), "expected one of user, assistant, system, tool"))?;
            check_content(&at("content"), &m.content)?;
            let created_at = parse_timestamp(&at("timestamp"), &m.timestamp, now)?;
            let metadata = m.metadata.unwrap_or_default();
            check_metadata(&at("metadata"), &metadata)?;
            let mut msg = IngestMessage::new(id, role, m.content, created_at);
            msg.metadata = metadata;
            msg.promote_usage();
            messages.push(msg);
        }
        Ok(IngestConversation { external_id, environment, user_id, agent_id, metadata, messages })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-11-29 12:00 UTC)
    }

    fn body(v: Value) -> TrackBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn timestamps_accept_rfc3339_and_epoch_ms_and_refuse_seconds_and_the_far_future() {
        let want = time::macros::datetime!(2026-11-29 10:15:30.123 UTC);
        assert_eq!(parse_timestamp("t", &json!("2026-11-29T10:15:30.123Z"), now()).unwrap(), want);
        assert_eq!(parse_timestamp("t", &json!("2026-11-29T11:15:30.123+01:00"), now()).unwrap(), want);
        assert_eq!(parse_timestamp("t", &json!(1_795_947_330_123i64), now()).unwrap(), want);
        let secs = parse_timestamp("t", &json!(1_795_947_330i64), now()).unwrap_err();
        assert!(secs.reason.contains("not seconds"), "{secs}");
        assert!(parse_timestamp("t", &json!("yesterday"), now()).is_err());
        assert!(parse_timestamp("t", &json!(1.5), now()).is_err());
        assert!(parse_timestamp("t", &json!("2026-12-01T00:00:00Z"), now()).is_err());
        assert!(parse_timestamp("t", &json!("2026-11-30T11:00:00Z"), now()).is_ok(), "skew under a day is fine");
    }

    #[test]
    fn messages_without_ids_get_a_stable_content_key() {
        let b = json!({"conversationId": " c1 ", "messages": [
            {"role": "user", "content": "hi", "timestamp": "2026-11-29T10:00:00Z"},
            {"id": "m2", "role": "assistant", "content": "hello", "timestamp": "2026-11-29T10:00:01Z"}]});
        let c = body(b.clone()).validate(now()).unwrap();
        assert_eq!(c.external_id, "c1");
        assert_eq!(c.messages[1].external_id, "m2");
        let key = &c.messages[0].external_id;
        assert!(key.starts_with("h_") && key.len() == 34, "{key}");
        // The same message again has the same key; a different time or role does not.
        assert_eq!(&body(b).validate(now()).unwrap().messages[0].external_id, key);
        let later = content_key(Role::User, "hi", time::macros::datetime!(2026-11-29 10:00:00.000001 UTC));
        assert_ne!(&later, key);
        assert_ne!(&content_key(Role::Assistant, "hi", time::macros::datetime!(2026-11-29 10:00 UTC)), key);
    }

    #[test]
    fn usage_in_metadata_fills_the_columns() {
        let c = body(json!({"conversationId": "c", "messages": [
            {"role": "assistant", "content": "a", "timestamp": "2026-11-29T10:00:00Z",
             "metadata": {"inputTokens": 812, "output_tokens": 143, "latencyMs": 900, "ttft_ms": -1, "model": "m"}}]}))
        .validate(now())
        .unwrap();
        let m = &c.messages[0];
        assert_eq!((m.input_tokens, m.output_tokens, m.latency_ms, m.ttft_ms), (Some(812), Some(143), Some(900), None));
        assert_eq!(m.metadata["model"], "m", "metadata is kept as sent");
    }

    #[test]
    fn each_rejection_names_its_field() {
        let cases = [
            (json!({"conversationId": "", "messages": []}), "conversationId"),
            (json!({"conversationId": "c", "messages": []}), "messages"),
            (json!({"conversationId": "c", "environment": "prod env", "messages": []}), "environment"),
            (
                json!({"conversationId": "c", "messages": [{"role": "bot", "content": "x", "timestamp": 1_795_947_330_123i64}]}),
                "messages[0].role",
            ),
            (
                json!({"conversationId": "c", "messages": [{"role": "user", "content": "x", "timestamp": "soon"}]}),
                "messages[0].timestamp",
            ),
            (
                json!({"conversationId": "c", "messages": [{"id": "h_1", "role": "user", "content": "x", "timestamp": 1_795_947_330_123i64}]}),
                "messages[0].id",
            ),
            (
                json!({"conversationId": "c", "messages": [{"role": "user", "content": "a\u{0}b", "timestamp": 1_795_947_330_123i64}]}),
                "messages[0].content",
            ),
        ];
        for (b, field) in cases {
            let err = body(b.clone()).validate(now()).unwrap_err();
            assert_eq!(err.field, field, "{b} → {err}");
        }
        let big = "x".repeat(MAX_CONTENT_BYTES + 1);
        let err = body(json!({"conversationId": "c", "messages": [
            {"role": "user", "content": "ok", "timestamp": 1_795_947_330_123i64},
            {"role": "user", "content": big, "timestamp": 1_795_947_330_123i64}]}))
        .validate(now())
        .unwrap_err();
        assert_eq!(err.field, "messages[1].content");
        let many: Vec<Value> = (0..=MAX_MESSAGES)
            .map(|i| json!({"role": "user", "content": i.to_string(), "timestamp": 1_795_947_330_123i64}))
            .collect();
        let err = body(json!({"conversationId": "c", "messages": many})).validate(now()).unwrap_err();
        assert_eq!(err.field, "messages");
    }
}
