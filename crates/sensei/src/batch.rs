//! The batch ingestion API's envelope (`POST /api/v1/ingest`, `shared/specs/rate-limits-and-webhooks.md` §4):
//! `{batch:[{id, type, timestamp, body}]}`, each event validated on its own so one bad event does not sink the
//! others. Event types: `track` (body = a track body) and `message` (one message of a conversation).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::ingest::{
    IngestConversation, IngestMessage, Role, TrackBody, ValidationError, check_content, check_environment, check_id,
    check_metadata, parse_timestamp,
};

/// Whole-request limit on the body, in bytes (413 above it).
pub const MAX_BATCH_BYTES: usize = 3_500_000;
/// Whole-request limit on the number of events (413 above it).
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Per-event limit, in bytes of JSON (a per-event 413 above it).
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

/// The request body. Events are kept raw until each is checked on its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    pub batch: Vec<Box<RawValue>>,
    /// Free-form information about the sender (SDK name and version); ignored.
    #[serde(default)]
    pub metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    timestamp: Option<Value>,
    body: Value,
}

/// `type: "message"`: one message of a conversation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MessageEvent {
    conversation_id: String,
    #[serde(default)]
    id: Option<String>,
    role: String,
    content: String,
    /// Defaults to the envelope's timestamp.
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    environment: Option<String>,
}

/// One event after validation.
#[derive(Debug)]
pub enum BatchItem {
    Valid {
        id: String,
        conversation: IngestConversation,
    },
    /// Refused: `id` when it could be read, the index in the batch, a status (400 or 413) and why.
    Invalid {
        id: Option<String>,
        index: usize,
        status: u16,
        message: String,
    },
}

/// Validates every event of a parsed batch.
pub fn validate_batch(body: BatchBody, now: OffsetDateTime) -> Vec<BatchItem> {
    body.batch.into_iter().enumerate().map(|(index, raw)| validate_event(index, &raw, now)).collect()
}

fn validate_event(index: usize, raw: &RawValue, now: OffsetDateTime) -> BatchItem {
    // The id first, so even an oversized or malformed event is reported under it when possible.
    let id = serde_json::from_str::<Map<String, Value>>(raw.get())
        .ok()
        .and_then(|m| m.get("id").and_then(Value::as_str).map(str::to_owned));
    let invalid = |status: u16, message: String| BatchItem::Invalid { id: id.clone(), index, status, message };
    if raw.get().len() > MAX_EVENT_BYTES {
        return invalid(413, format!("the event is larger than {} KiB", MAX_EVENT_BYTES / 1024));
    }
    let envelope: Envelope = match serde_json::from_str(raw.get()) {
        Ok(e) => e,
        Err(e) => return invalid(400, format!("event: {}", strip_position(&e.to_string()))),
    };
    let id = match check_id("id", &envelope.id) {
        Ok(id) => id,
        Err(e) => return invalid(400, e.to_string()),
    };
    match parse_event(envelope, now) {
        Ok(conversation) => BatchItem::Valid { id, conversation },
        Err(e) => BatchItem::Invalid { id: Some(id), index, status: 400, message: e.to_string() },
    }
}

fn parse_event(e: Envelope, now: OffsetDateTime) -> Result<IngestConversation, ValidationError> {
    match e.kind.as_str() {
        "track" => {
            let body: TrackBody = serde_json::from_value(e.body)
                .map_err(|err| ValidationError::new("body", strip_position(&err.to_string())))?;
            body.validate(now).map_err(|err| err.within("body"))
        }
        "message" => {
            let body: MessageEvent = serde_json::from_value(e.body)
                .map_err(|err| ValidationError::new("body", strip_position(&err.to_string())))?;
            message_event(body, e.timestamp, now).map_err(|err| err.within("body"))
        }
        other => Err(ValidationError::new("type", format!("'{other}' is not one of track, message"))),
    }
}

fn message_event(
    m: MessageEvent,
    envelope_time: Option<Value>,
    now: OffsetDateTime,
) -> Result<IngestConversation, ValidationError> {
    let external_id = check_id("conversationId", &m.conversation_id)?;
    let environment = m.environment.as_deref().map(|e| check_environment("environment", e)).transpose()?;
    let user_id = m.user_id.as_deref().map(|u| check_id("userId", u)).transpose()?;
    let agent_id = m.agent_id.as_deref().map(|a| check_id("agentId", a)).transpose()?;
    let id = m.id.as_deref().map(|id| check_id("id", id)).transpose()?;
    if id.as_deref().is_some_and(|id| id.starts_with("h_")) {
        return Err(ValidationError::new("id", "ids starting with 'h_' are reserved"));
    }
    let role = Role::parse(&m.role)
        .ok_or_else(|| ValidationError::new("role", "expected one of user, assistant, system, tool"))?;
    check_content("content", &m.content)?;
    let created_at = match (m.timestamp, envelope_time) {
        (Some(t), _) => parse_timestamp("timestamp", &t, now)?,
        (None, Some(t)) => parse_timestamp("timestamp", &t, now)?,
        (None, None) => return Err(ValidationError::new("timestamp", "required (here or on the event)")),
    };
    let metadata = m.metadata.unwrap_or_default();
    check_metadata("metadata", &metadata)?;
    let mut message = IngestMessage::new(id, role, m.content, created_at);
    message.metadata = metadata;
    message.promote_usage();
    Ok(IngestConversation {
        external_id,
        environment,
        user_id,
        agent_id,
        metadata: Map::new(),
        messages: vec![message],
    })
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-11-29 12:00 UTC)
    }

    fn batch(v: Value) -> Vec<BatchItem> {
        let body: BatchBody = serde_json::from_str(&v.to_string()).unwrap();
        validate_batch(body, now())
    }

    #[test]
    fn events_are_checked_one_by_one() {
        let items = batch(serde_json::json!({"batch": [
            {"id": "e1", "type": "track", "timestamp": "2026-11-29T10:00:00Z",
             "body": {"conversationId": "c1", "messages": [{"role": "user", "content": "hi", "timestamp": "2026-11-29T10:00:00Z"}]}},
            {"id": "e2", "type": "message", "timestamp": "2026-11-29T10:00:01Z",
             "body": {"conversationId": "c1", "role": "assistant", "content": "hello"}},
            {"id": "e3", "type": "track", "body": {"conversationId": "c1", "messages": [{"role": "robot", "content": "x", "timestamp": "2026-11-29T10:00:00Z"}]}},
            {"id": "e4", "type": "span", "body": {}},
            {"type": "track", "body": {}},
            {"id": "e6", "type": "message", "body": {"conversationId": "c1", "role": "user", "content": "no time"}}
        ]}));
        assert!(
            matches!(&items[0], BatchItem::Valid { id, conversation } if id == "e1" && conversation.messages.len() == 1)
        );
        match &items[1] {
            BatchItem::Valid { conversation, .. } => {
                assert_eq!(conversation.messages[0].created_at, time::macros::datetime!(2026-11-29 10:00:01 UTC));
            }
            other => panic!("{other:?}"),
        }
        let err = |i: usize| match &items[i] {
            BatchItem::Invalid { id, status, message, .. } => (id.clone(), *status, message.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(err(2).0.as_deref(), Some("e3"));
        assert!(err(2).2.starts_with("body.messages[0].role"), "{:?}", err(2));
        assert!(err(3).2.starts_with("type"), "{:?}", err(3));
        assert_eq!((err(4).0, err(4).1), (None, 400));
        assert!(err(5).2.contains("timestamp"), "{:?}", err(5));
    }

    #[test]
    fn an_oversized_event_is_a_per_event_413() {
        let big = "x".repeat(MAX_EVENT_BYTES);
        let items = batch(serde_json::json!({"batch": [
            {"id": "big", "type": "message", "timestamp": "2026-11-29T10:00:00Z",
             "body": {"conversationId": "c", "role": "user", "content": big}}]}));
        assert!(matches!(&items[0], BatchItem::Invalid { id: Some(id), status: 413, .. } if id == "big"));
    }
}
