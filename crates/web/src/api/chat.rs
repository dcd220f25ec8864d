//! `/api/chat` (streamed, AI SDK UI message stream v1), `/api/generate/{type}` and `/api/agents`.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use mentorfy_core::SessionId;
use mentorfy_mentor::{Agent, AgentKind, ChatInput};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::error::{AppError, ErrorEnvelope};
use crate::extract::Json;
use crate::state::AppState;
use crate::ui_stream;

/// Largest `/api/chat` body: `useChat` re-sends the whole history with every message.
pub const CHAT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Either the PRD body `{sessionId, agentId, message}` or the body `useChat` sends
/// (`{id, messages, trigger, messageId?}` plus `sessionId`/`agentId` passed through `body`). Other keys a
/// frontend merges in are ignored.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatRequestBody {
    /// The Mentor session (UUID).
    pub session_id: Option<String>,
    #[schema(example = "rafael-chat")]
    pub agent_id: Option<String>,
    /// PRD shape: the user's new message.
    pub message: Option<String>,
    /// `useChat` shape: the chat id (ignored: the session is the conversation).
    pub id: Option<String>,
    /// `useChat` shape: the full history; the last user message's text is the message.
    #[schema(value_type = Option<Vec<Object>>)]
    pub messages: Option<Vec<Value>>,
    /// `submit-message` or `regenerate-message`.
    pub trigger: Option<String>,
    /// On regenerate: the assistant message to replace.
    pub message_id: Option<String>,
}

fn field_error(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message)
        .with_details(json!({"field": field}))
}

fn parse_session_id(raw: Option<&str>) -> Result<SessionId, AppError> {
    let raw = raw.ok_or_else(|| field_error("sessionId", "sessionId is required"))?;
    raw.parse::<SessionId>().map_err(|_| field_error("sessionId", "sessionId must be a session id (a UUID)"))
}

/// The text of a `UIMessage`: its `text` parts joined (or a v4-style `content` string).
fn ui_message_text(message: &Value) -> String {
    if let Some(parts) = message.get("parts").and_then(Value::as_array) {
        return parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n");
    }
    message.get("content").and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn chat_input(body: ChatRequestBody) -> Result<ChatInput, AppError> {
    let session_id = parse_session_id(body.session_id.as_deref())?;
    let agent_id =
        body.agent_id.filter(|a| !a.is_empty()).ok_or_else(|| field_error("agentId", "agentId is required"))?;
    let regenerate = match body.trigger.as_deref() {
        None | Some("submit-message") => false,
        Some("regenerate-message") => true,
        Some(other) => {
            return Err(field_error("trigger", format!("'{other}' is not submit-message or regenerate-message")));
        }
    };
    let (message, user_message_id) = match (body.message, body.messages) {
        (Some(message), _) => (message, None),
        (None, Some(messages)) => {
            let last = messages.last().ok_or_else(|| field_error("messages", "messages is empty"))?;
            let role = last.get("role").and_then(Value::as_str).unwrap_or_default();
            if role != "user" {
                return Err(field_error(
                    "messages",
                    "the last message must be the user's: this server runs every tool itself, so there are no \
                     client tool results to continue from",
                ));
            }
            let id = last.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
            (ui_message_text(last), id)
        }
        (None, None) => return Err(field_error("message", "send message, or messages as useChat does")),
    };
    Ok(ChatInput {
        session_id,
        agent_id,
        message,
        user_message_id,
        replaces_message_id: if regenerate { body.message_id } else { None },
    })
}

/// Streams the agent's answer in the AI SDK UI message stream format (`text/event-stream`,
/// `x-vercel-ai-ui-message-stream: v1`). Errors found before the stream starts are JSON envelopes; after it
/// starts, an upstream failure is an `error` chunk, then `finish`, then `[DONE]`.
#[utoipa::path(
    post, path = "/api/chat", tag = "chat",
    request_body = ChatRequestBody,
    responses(
        (status = 200, description = "AI SDK UI message stream v1 (server-sent events)", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such session or agent", body = ErrorEnvelope),
        (status = 422, description = "A field is missing or invalid", body = ErrorEnvelope),
        (status = 429, description = "The model provider is rate limiting; see retry-after", body = ErrorEnvelope),
        (status = 502, description = "The model provider failed", body = ErrorEnvelope),
        (status = 503, description = "No provider configured for the agent (details name the variables)", body = ErrorEnvelope),
        (status = 504, description = "The model provider did not answer in time", body = ErrorEnvelope),
    )
)]
pub async fn chat(State(state): State<AppState>, Json(body): Json<ChatRequestBody>) -> Result<Response, AppError> {
    let input = chat_input(body)?;
    let turn = state.chat().chat(input).await?;
    Ok(ui_stream::response(turn.events, state.config().sse_keepalive))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenerateRequest {
    pub session_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageView {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    /// The generated document (Markdown).
    pub content: String,
    pub agent_id: String,
    pub model: String,
    pub usage: UsageView,
    /// USD; null when the model's price is unknown.
    pub cost_usd: Option<f64>,
    /// The trace id of the call (`llm_calls.trace_id`, and the OTLP trace).
    pub trace_id: String,
}

/// Writes one document (`diagnosis`, `summary`, …) from the session's current answers with the agent of that
/// kind in the session's organisation. Not streamed.
#[utoipa::path(
    post, path = "/api/generate/{type}", tag = "chat",
    params(("type" = String, Path, description = "Generation type, e.g. `diagnosis` or `summary`")),
    request_body = GenerateRequest,
    responses(
        (status = 200, body = GenerateResponse),
        (status = 404, description = "No such session, or no agent of that type for its organisation", body = ErrorEnvelope),
        (status = 422, description = "A field is missing or invalid", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope),
    )
)]
pub async fn generate(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    Json(body): Json<GenerateRequest>,
) -> Result<axum::Json<GenerateResponse>, AppError> {
    if kind.is_empty()
        || kind.len() > 64
        || !kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(AppError::not_found(format!("no generation type '{kind}'")));
    }
    let session_id = parse_session_id(Some(&body.session_id))?;
    let g = state.chat().generate(session_id, &kind).await?;
    Ok(axum::Json(GenerateResponse {
        content: g.content,
        agent_id: g.agent_id,
        model: g.model,
        usage: UsageView {
            input_tokens: g.usage.input_tokens,
            output_tokens: g.usage.output_tokens,
            cache_read_tokens: g.usage.cache_read_tokens,
            cache_write_tokens: g.usage.cache_write_tokens,
        },
        cost_usd: g.cost_usd,
        trace_id: g.trace_id,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AgentsQuery {
    /// Only this organisation's agents.
    pub org: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub description: String,
    /// `chat`, or the generation type (`diagnosis`, `summary`, …).
    pub kind: String,
    /// `anthropic` or `openai`.
    pub provider: String,
    pub model: String,
    pub temperature: Option<f32>,
    pub max_tokens: u32,
    pub max_steps: u32,
    pub tools: Vec<String>,
    /// Whether the agent's provider is configured on this server (otherwise calls answer 503).
    pub available: bool,
    /// The endpoint to call it with.
    pub endpoint: String,
}

#[derive(Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentView>,
}

fn agent_view(state: &AppState, a: &Agent) -> AgentView {
    AgentView {
        id: a.id.clone(),
        org_id: a.org.to_string(),
        name: a.name.clone(),
        description: a.description.clone(),
        kind: a.kind.as_str().to_owned(),
        provider: a.provider.as_str().to_owned(),
        model: a.model.clone(),
        temperature: a.temperature,
        max_tokens: a.max_tokens,
        max_steps: a.max_steps,
        tools: a.tools.clone(),
        available: state.gateway().provider(a.provider).is_some(),
        endpoint: match &a.kind {
            AgentKind::Chat => "/api/chat".to_owned(),
            AgentKind::Generation(kind) => format!("/api/generate/{kind}"),
        },
    }
}

/// The agents this server loaded (shipped and from `MENTORFY_AGENTS_DIR`), sorted by id. System prompts are
/// not exposed.
#[utoipa::path(
    get, path = "/api/agents", tag = "chat",
    params(AgentsQuery),
    responses((status = 200, body = AgentList), (status = 400, body = ErrorEnvelope))
)]
pub async fn list_agents(State(state): State<AppState>, Query(q): Query<AgentsQuery>) -> Response {
    let agents = state
        .chat()
        .agents()
        .list()
        .filter(|a| q.org.as_deref().is_none_or(|o| a.org.as_str() == o))
        .map(|a| agent_view(&state, a))
        .collect();
    axum::Json(AgentList { agents }).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn body(v: Value) -> ChatRequestBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_last_user_message_of_a_use_chat_body_is_the_message() {
        let input = chat_input(body(json!({
            "id": "chat_1", "trigger": "submit-message",
            "sessionId": "6f1c4a8e-2b7d-4c3a-9e5f-0a1b2c3d4e5f", "agentId": "rafael-chat",
            "messages": [
                {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "first"}]},
                {"id": "a1", "role": "assistant", "parts": [{"type": "step-start"}, {"type": "text", "text": "reply"}]},
                {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "Hello"}, {"type": "file", "url": "x", "mediaType": "image/png"}, {"type": "text", "text": "again"}]}
            ],
            "extraFromTheFrontend": true
        })))
        .unwrap();
        assert_eq!(input.message, "Hello\nagain");
        assert_eq!(input.user_message_id.as_deref(), Some("u2"));
        assert_eq!(input.agent_id, "rafael-chat");
        assert!(input.replaces_message_id.is_none());
    }

    #[test]
    fn regenerate_names_the_message_it_replaces_and_continuations_are_refused() {
        let sid = "6f1c4a8e-2b7d-4c3a-9e5f-0a1b2c3d4e5f";
        let input = chat_input(body(json!({
            "sessionId": sid, "agentId": "rafael-chat", "trigger": "regenerate-message", "messageId": "a1",
            "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]
        })))
        .unwrap();
        assert_eq!(input.replaces_message_id.as_deref(), Some("a1"));
        let err = chat_input(body(json!({
            "sessionId": sid, "agentId": "rafael-chat",
            "messages": [{"id": "a1", "role": "assistant", "parts": []}]
        })))
        .err()
        .unwrap();
        assert_eq!(err.details["field"], "messages");
        let err = chat_input(body(json!({"agentId": "rafael-chat", "message": "hi"}))).err().unwrap();
        assert_eq!(err.details["field"], "sessionId");
        let err = chat_input(body(json!({"sessionId": sid, "message": "hi"}))).err().unwrap();
        assert_eq!(err.details["field"], "agentId");
        let err =
            chat_input(body(json!({"sessionId": sid, "agentId": "a", "message": "hi", "trigger": "x"}))).err().unwrap();
        assert_eq!(err.details["field"], "trigger");
    }
}
