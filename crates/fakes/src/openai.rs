//! A fake OpenAI Chat Completions API (`POST /v1/chat/completions`) for tests and benchmarks: replays scripted
//! [`Reply`]s in the real wire format (data-only SSE chunks, tool calls by `index`, the `choices: []` usage chunk
//! only when `stream_options.include_usage` was sent, `[DONE]`; or a JSON completion; or the JSON error body) and
//! records every request. It must not depend on any mentorfy crate: it writes the wire format from the spec.

use serde_json::{Value, json};

pub use crate::sse::{Block, Recorded, Reply};
use crate::sse::{FakeLlm, Rendered, ReplyKind, Wire, json_fragments, sse_event, word_deltas};

/// The OpenAI Chat Completions wire format.
pub struct OpenAiWire;

/// A fake OpenAI-compatible API: `FakeOpenAi::start().await`, then use `url()` (`http://127.0.0.1:PORT/v1`) as
/// `OPENAI_BASE_URL`.
pub type FakeOpenAi = FakeLlm<OpenAiWire>;

impl FakeLlm<OpenAiWire> {
    /// Starts a fake OpenAI API on `127.0.0.1:0`.
    pub async fn start() -> Self {
        crate::sse::start().await
    }
}

impl Wire for OpenAiWire {
    const PATH: &'static str = "/v1/chat/completions";
    const URL_SUFFIX: &'static str = "/v1";
    const REQUEST_ID_HEADER: &'static str = "x-request-id";

    fn render(request: &Recorded, reply: &Reply, seq: u64) -> Rendered {
        match &reply.kind {
            ReplyKind::Raw { status, content_type, body } => {
                Rendered::Raw { status: *status, content_type: content_type.clone(), body: body.clone() }
            }
            ReplyKind::Error { status, error } => {
                let (error_type, code, message) = match error {
                    Some((error_type, message)) => (error_type.clone(), Value::Null, message.clone()),
                    None => default_error(*status),
                };
                Rendered::Json { status: *status, body: error_body(&error_type, code, &message) }
            }
            ReplyKind::SpendLimit => Rendered::Json {
                status: 429,
                body: error_body(
                    "insufficient_quota",
                    json!("insufficient_quota"),
                    "You exceeded your current quota, please check your plan and billing details.",
                ),
            },
            ReplyKind::Message { blocks, error } => {
                if !request.is_stream() {
                    if let Some((error_type, message)) = error {
                        return Rendered::Json { status: 500, body: error_body(error_type, Value::Null, message) };
                    }
                    return Rendered::Json { status: 200, body: completion_json(request, reply, blocks, seq) };
                }
                stream(request, reply, blocks, error.as_ref(), seq)
            }
        }
    }
}

/// OpenAI's error `type`, `code` and message for an HTTP status.
fn default_error(status: u16) -> (String, Value, String) {
    let (error_type, code, message) = match status {
        400 => ("invalid_request_error", Value::Null, "Invalid request."),
        401 => ("invalid_request_error", json!("invalid_api_key"), "Incorrect API key provided."),
        403 => ("invalid_request_error", json!("unsupported_country_region_territory"), "Forbidden."),
        404 => ("invalid_request_error", json!("model_not_found"), "The model does not exist."),
        429 => ("requests", json!("rate_limit_exceeded"), "Rate limit reached for requests."),
        _ => ("server_error", Value::Null, "The server had an error while processing your request."),
    };
    (error_type.to_owned(), code, message.to_owned())
}

fn error_body(error_type: &str, code: Value, message: &str) -> Value {
    json!({ "error": { "message": message, "type": error_type, "param": null, "code": code } })
}

fn model_of(request: &Recorded, reply: &Reply) -> String {
    reply.model.clone().unwrap_or_else(|| {
        let requested = request.model();
        if requested.is_empty() { "gpt-4o-mini".to_owned() } else { requested.to_owned() }
    })
}

fn finish_reason_of(reply: &Reply, blocks: &[Block]) -> String {
    reply.stop_reason.clone().unwrap_or_else(|| {
        if blocks.iter().any(|b| matches!(b, Block::ToolCall { .. })) { "tool_calls" } else { "stop" }.to_owned()
    })
}

fn usage_json(reply: &Reply) -> Value {
    let (prompt, completion) = reply.usage_or_default();
    let mut usage =
        json!({ "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion });
    if let (Some((read, _)), Some(obj)) = (reply.cache, usage.as_object_mut()) {
        obj.insert("prompt_tokens_details".to_owned(), json!({ "cached_tokens": read }));
    }
    usage
}

fn completion_json(request: &Recorded, reply: &Reply, blocks: &[Block], seq: u64) -> Value {
    let text: String = blocks
        .iter()
        .filter_map(|b| match b {
            Block::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let reasoning: String = blocks
        .iter()
        .filter_map(|b| match b {
            Block::Thinking { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let tool_calls: Vec<Value> = blocks
        .iter()
        .filter_map(|b| match b {
            Block::ToolCall { id, name, input } => Some(json!({
                "id": id, "type": "function", "function": { "name": name, "arguments": input.to_string() }
            })),
            _ => None,
        })
        .collect();
    let mut message =
        json!({ "role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) } });
    if let Some(obj) = message.as_object_mut() {
        if !tool_calls.is_empty() {
            obj.insert("tool_calls".to_owned(), Value::Array(tool_calls));
        }
        if !reasoning.is_empty() {
            obj.insert("reasoning_content".to_owned(), json!(reasoning));
        }
    }
    json!({
        "id": reply.id.clone().unwrap_or_else(|| format!("chatcmpl-fake-{seq}")),
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model_of(request, reply),
        "choices": [ { "index": 0, "message": message, "finish_reason": finish_reason_of(reply, blocks) } ],
        "usage": usage_json(reply),
    })
}

fn stream(request: &Recorded, reply: &Reply, blocks: &[Block], error: Option<&(String, String)>, seq: u64) -> Rendered {
    let id = reply.id.clone().unwrap_or_else(|| format!("chatcmpl-fake-{seq}"));
    let model = model_of(request, reply);
    let chunk = |delta: Value, finish_reason: Value| {
        let data = json!({
            "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [ { "index": 0, "delta": delta, "finish_reason": finish_reason } ],
            "usage": null,
        });
        sse_event(None, &data.to_string())
    };
    let mut frames = vec![chunk(json!({ "role": "assistant", "content": "" }), Value::Null)];
    let stall_before = frames.len();
    let mut tool_index = 0_usize;
    for block in blocks {
        match block {
            Block::Text(text) => {
                for delta in word_deltas(text) {
                    frames.push(chunk(json!({ "content": delta }), Value::Null));
                }
            }
            Block::Thinking { text, .. } => {
                for delta in word_deltas(text) {
                    frames.push(chunk(json!({ "reasoning_content": delta }), Value::Null));
                }
            }
            Block::ToolCall { id, name, input } => {
                frames.push(chunk(
                    json!({ "role": "assistant", "content": null, "tool_calls": [ {
                        "index": tool_index, "id": id, "type": "function",
                        "function": { "name": name, "arguments": "" } } ] }),
                    Value::Null,
                ));
                for fragment in json_fragments(&input.to_string()) {
                    frames.push(chunk(
                        json!({ "tool_calls": [ { "index": tool_index, "function": { "arguments": fragment } } ] }),
                        Value::Null,
                    ));
                }
                tool_index += 1;
            }
        }
    }
    if let Some((error_type, message)) = error {
        let data = json!({ "error": { "message": message, "type": error_type, "code": null } });
        frames.push(sse_event(None, &data.to_string()));
        return Rendered::Sse { frames, stall_before };
    }
    frames.push(chunk(json!({}), json!(finish_reason_of(reply, blocks))));
    let include_usage = request.body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    if include_usage {
        let data = json!({
            "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [], "usage": usage_json(reply),
        });
        frames.push(sse_event(None, &data.to_string()));
    }
    frames.push(sse_event(None, "[DONE]"));
    Rendered::Sse { frames, stall_before }
}
