//! The wire types of the ingestion API, as the server accepts and answers them (camelCase JSON). Plain data:
//! no I/O here, and nothing that knows about retries.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    System,
    Tool,
}

impl Role {
    /// The wire name: `user`, `assistant`, `system` or `tool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Tool => "tool",
        }
    }
}

/// When a message was said: sent as RFC 3339 text, or as epoch milliseconds. The server refuses times before
/// 2000 (the usual sign of epoch *seconds*) and more than a day in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Timestamp {
    /// Serialized as RFC 3339 text, such as `2026-11-29T10:15:30.123Z`.
    Rfc3339(#[serde(with = "time::serde::rfc3339")] OffsetDateTime),
    /// Milliseconds since the Unix epoch.
    EpochMillis(i64),
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Timestamp::Rfc3339(OffsetDateTime::now_utc())
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Timestamp::Rfc3339(t)
    }
}

/// The body of `POST /api/v1/conversations/track`, and of a batch `track` event: messages to append to one
/// conversation, created on first sight. Conversations are keyed by (environment, `conversation_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackRequest {
    /// Your id for the conversation (at most 256 characters).
    pub conversation_id: String,
    /// 1 to 500 messages.
    pub messages: Vec<TrackMessage>,
    /// Merged key by key into the stored conversation's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Defaults to the API key's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl TrackRequest {
    /// A request with these messages and nothing else set.
    pub fn new(conversation_id: impl Into<String>, messages: Vec<TrackMessage>) -> Self {
        Self {
            conversation_id: conversation_id.into(),
            messages,
            metadata: None,
            user_id: None,
            agent_id: None,
            environment: None,
        }
    }
}

/// One message of a [`TrackRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackMessage {
    /// Your id for the message, unique within the conversation; it makes a resent message a duplicate instead
    /// of a second copy. Must not start with `h_`. Without it the server dedupes by role, content and timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub role: Role,
    /// Plain text, at most 64 KiB of UTF-8.
    pub content: String,
    pub timestamp: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl TrackMessage {
    /// A message without id or metadata.
    pub fn new(role: Role, content: impl Into<String>, timestamp: impl Into<Timestamp>) -> Self {
        Self { id: None, role, content: content.into(), timestamp: timestamp.into(), metadata: None }
    }

    /// The same message with this id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// `202` answer of the track endpoint: how many messages were stored now and how many were already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TrackResponse {
    pub accepted: u64,
    pub duplicates: u64,
}

/// The body of a batch `message` event: one message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEvent {
    pub conversation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub role: Role,
    pub content: String,
    /// Defaults to the event's timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// What a batch event carries; serialized as the event's `type` and `body`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "lowercase")]
pub enum EventBody {
    /// Messages of one conversation (the track body).
    Track(TrackRequest),
    /// One message.
    Message(MessageEvent),
}

/// One event of `POST /api/v1/ingest`. Its `id` is the idempotency key: a retry must reuse it (the client's
/// retries do), and the server collapses repeated ids for at least 24 hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEvent {
    pub id: String,
    /// When the event happened (sent as RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    #[serde(flatten)]
    pub body: EventBody,
}

impl BatchEvent {
    /// A `track` event with a fresh UUID v4 id, stamped now.
    pub fn track(body: TrackRequest) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: OffsetDateTime::now_utc(),
            body: EventBody::Track(body),
        }
    }

    /// A `message` event with a fresh UUID v4 id, stamped now.
    pub fn message(body: MessageEvent) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: OffsetDateTime::now_utc(),
            body: EventBody::Message(body),
        }
    }

    /// The same event with this id (for ids you derive yourself, so that a re-run is recognised as a duplicate).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }
}

/// An event the server stored (`201`) or already had (`200`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSuccess {
    pub id: String,
    pub status: u16,
}

/// An event the server did not store, and why. `400`/`413`/`422` are final; `429`/`503` may be retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventError {
    /// `None` when the event's id could not be read.
    #[serde(default)]
    pub id: Option<String>,
    pub status: u16,
    #[serde(default)]
    pub message: String,
}

impl EventError {
    /// Whether the event may be sent again (`429` or `503`).
    pub fn is_retryable(&self) -> bool {
        matches!(self.status, 429 | 503)
    }
}

/// The `207` answer of the batch endpoint: one verdict per event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BatchResponse {
    #[serde(default)]
    pub successes: Vec<EventSuccess>,
    #[serde(default)]
    pub errors: Vec<EventError>,
    /// The response's `Retry-After`, when it had one (for the retryable events).
    #[serde(skip)]
    pub retry_after: Option<std::time::Duration>,
}

impl BatchResponse {
    /// Events stored by this request (`201`).
    pub fn stored(&self) -> usize {
        self.successes.iter().filter(|s| s.status == 201).count()
    }

    /// Events the server already had (`200`).
    pub fn duplicates(&self) -> usize {
        self.successes.iter().filter(|s| s.status == 200).count()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn events_serialize_to_the_wire_shape() {
        let at = time::macros::datetime!(2026-11-29 10:15:30.123 UTC);
        let mut body = TrackRequest::new("c1", vec![TrackMessage::new(Role::User, "hi", at).with_id("m1")]);
        body.environment = Some("staging".into());
        let event = BatchEvent { id: "e1".into(), timestamp: at, body: EventBody::Track(body) };
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(
            v,
            json!({"id": "e1", "timestamp": "2026-11-29T10:15:30.123Z", "type": "track", "body": {
                "conversationId": "c1", "environment": "staging",
                "messages": [{"id": "m1", "role": "user", "content": "hi", "timestamp": "2026-11-29T10:15:30.123Z"}]}})
        );
        let back: BatchEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, event);
        let ms = TrackMessage::new(Role::Tool, "x", Timestamp::EpochMillis(1_764_411_330_123));
        assert_eq!(serde_json::to_value(ms).unwrap()["timestamp"], json!(1_764_411_330_123i64));
    }
}
