//! A fake Anthropic Messages API (`POST /v1/messages`) for tests and benchmarks: replays scripted [`Reply`]s in the
//! real wire format (`event:` + `data:` SSE with `message_start`, a `ping`, blocks, cumulative `message_delta` usage
//! and `message_stop`; or a JSON message; or the JSON error body) and records every request.
//! It must not depend on any mentorfy crate: it writes the wire format from the spec, not from our reader.

use serde_json::{Value, json};

pub use crate::sse::{Block, Recorded, Reply};
use crate::sse::{FakeLlm, Rendered, ReplyKind, Wire, json_fragments, sse_event, word_deltas};

/// The Anthropic wire format.
pub struct AnthropicWire;

/// A fake Anthropic API: `FakeAnthropic::start().await`, then point `ANTHROPIC_BASE_URL` at `url()`.
pub type FakeAnthropic = FakeLlm<AnthropicWire>;

impl FakeLlm<AnthropicWire> {
    /// Starts a fake Anthropic API on `127.0.0.1:0`.
    pub async fn start() -> Self {
        crate::sse::start().await
    }
}

impl Wire for AnthropicWire {
    const PATH: &'static str = "/v1/messages";
    const URL_SUFFIX: &'static str = "";
    const REQUEST_ID_HEADER: &'static str = "request-id";

    fn render(request: &Recorded, reply: &Reply, seq: u64) -> Rendered {
        match &reply.kind {
            ReplyKind::Raw { status, content_type, body } => {
                Rendered::Raw { status: *status, content_type: content_type.clone(), body: body.clone() }
            }
            ReplyKind::Error { status, error } => {
                let (error_type, message) = error.clone().unwrap_or_else(|| default_error(*status));
                Rendered::Json { status: *status, body: error_body(&error_type, &message, seq, None) }
            }
            ReplyKind::SpendLimit => Rendered::Json {
                status: 429,
                body: error_body(
                    "rate_limit_error",
                    "You have reached your specified workspace API usage limits.",
                    seq,
                    Some(json!({ "error_code": "enforced_spend_limit_reached" })),
                ),
            },
            ReplyKind::Message { blocks, error } => {
                if !request.is_stream() {
                    if let Some((error_type, message)) = error {
                        let status = if error_type == "overloaded_error" { 529 } else { 500 };
                        return Rendered::Json { status, body: error_body(error_type, message, seq, None) };
                    }
                    return Rendered::Json { status: 200, body: message_json(request, reply, blocks, seq) };
                }
                stream(request, reply, blocks, error.as_ref(), seq)
            }
        }
    }
}

/// The default `error.type` and message Anthropic uses for an HTTP status.
fn default_error(status: u16) -> (String, String) {
    let (error_type, message) = match status {
        400 => ("invalid_request_error", "Invalid request."),
        401 => ("authentication_error", "invalid x-api-key"),
        402 => ("billing_error", "Your credit balance is too low."),
        403 => ("permission_error", "Your API key does not have permission to use the specified resource."),
        404 => ("not_found_error", "The requested resource could not be found."),
        413 => ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        429 => ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
        504 => ("timeout_error", "Request timed out."),
        529 => ("overloaded_error", "Overloaded"),
        _ => ("api_error", "Internal server error"),
    };
    (error_type.to_owned(), message.to_owned())
}

fn error_body(error_type: &str, message: &str, seq: u64, details: Option<Value>) -> Value {
    let mut error = json!({ "type": error_type, "message": message });
    if let (Some(details), Some(obj)) = (details, error.as_object_mut()) {
        obj.insert("details".to_owned(), details);
    }
    json!({ "type": "error", "error": error, "request_id": format!("req_fake_{seq}") })
}

fn model_of(request: &Recorded, reply: &Reply) -> String {
    reply.model.clone().unwrap_or_else(|| {
        let requested = request.model();
        if requested.is_empty() { "claude-haiku-4-5-20251001".to_owned() } else { requested.to_owned() }
    })
}

fn stop_reason_of(reply: &Reply, blocks: &[Block]) -> String {
    reply.stop_reason.clone().unwrap_or_else(|| {
        if blocks.iter().any(|b| matches!(b, Block::ToolCall { .. })) { "tool_use" } else { "end_turn" }.to_owned()
    })
}

fn usage_json(reply: &Reply, output: u64) -> Value {
    let (input, _) = reply.usage_or_default();
    let (read, write) = reply.cache.unwrap_or((0, 0));
    json!({
        "input_tokens": input,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": output,
    })
}

fn message_json(request: &Recorded, reply: &Reply, blocks: &[Block], seq: u64) -> Value {
    let content: Vec<Value> = blocks
        .iter()
        .map(|b| match b {
            Block::Text(text) => json!({ "type": "text", "text": text }),
            Block::Thinking { text, signature } => {
                json!({ "type": "thinking", "thinking": text, "signature": signature })
            }
            Block::ToolCall { id, name, input } => {
                json!({ "type": "tool_use", "id": id, "name": name, "input": input })
            }
        })
        .collect();
    let (_, output) = reply.usage_or_default();
    json!({
        "id": reply.id.clone().unwrap_or_else(|| format!("msg_fake_{seq}")),
        "type": "message",
        "role": "assistant",
        "model": model_of(request, reply),
        "content": content,
        "stop_reason": stop_reason_of(reply, blocks),
        "stop_sequence": null,
        "usage": usage_json(reply, output),
    })
}

fn event(frames: &mut Vec<String>, data: &Value) {
    let name = data.get("type").and_then(Value::as_str).unwrap_or("message");
    frames.push(sse_event(Some(name), &data.to_string()));
}

fn stream(request: &Recorded, reply: &Reply, blocks: &[Block], error: Option<&(String, String)>, seq: u64) -> Rendered {
    let mut frames = Vec::new();
    let start = json!({
        "type": "message_start",
        "message": {
            "id": reply.id.clone().unwrap_or_else(|| format!("msg_fake_{seq}")),
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model_of(request, reply),
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage_json(reply, 1),
        }
    });
    event(&mut frames, &start);
    frames.push(sse_event(Some("ping"), r#"{"type": "ping"}"#));
    let stall_before = frames.len();
    for (index, block) in blocks.iter().enumerate() {
        match block {
            Block::Text(text) => {
                event(
                    &mut frames,
                    &json!({"type":"content_block_start","index":index,"content_block":{"type":"text","text":""}}),
                );
                for delta in word_deltas(text) {
                    event(
                        &mut frames,
                        &json!({"type":"content_block_delta","index":index,"delta":{"type":"text_delta","text":delta}}),
                    );
                }
            }
            Block::Thinking { text, signature } => {
                event(
                    &mut frames,
                    &json!({"type":"content_block_start","index":index,"content_block":{"type":"thinking","thinking":""}}),
                );
                for delta in word_deltas(text) {
                    event(
                        &mut frames,
                        &json!({"type":"content_block_delta","index":index,"delta":{"type":"thinking_delta","thinking":delta}}),
                    );
                }
                event(
                    &mut frames,
                    &json!({"type":"content_block_delta","index":index,"delta":{"type":"signature_delta","signature":signature}}),
                );
            }
            Block::ToolCall { id, name, input } => {
                event(
                    &mut frames,
                    &json!({"type":"content_block_start","index":index,
                            "content_block":{"type":"tool_use","id":id,"name":name,"input":{}}}),
                );
                let mut fragments = vec![String::new()];
                fragments.extend(json_fragments(&input.to_string()));
                for fragment in fragments {
                    event(
                        &mut frames,
                        &json!({"type":"content_block_delta","index":index,
                                "delta":{"type":"input_json_delta","partial_json":fragment}}),
                    );
                }
            }
        }
        if error.is_none() {
            event(&mut frames, &json!({"type":"content_block_stop","index":index}));
        }
    }
    if let Some((error_type, message)) = error {
        event(&mut frames, &json!({"type":"error","error":{"type":error_type,"message":message}}));
        return Rendered::Sse { frames, stall_before };
    }
    let (_, output) = reply.usage_or_default();
    let mut usage = json!({ "output_tokens": output });
    if let (Some((read, write)), Some(obj)) = (reply.cache, usage.as_object_mut()) {
        // Newer API versions repeat the (cumulative) input counters here.
        obj.insert("input_tokens".to_owned(), json!(reply.usage_or_default().0));
        obj.insert("cache_creation_input_tokens".to_owned(), json!(write));
        obj.insert("cache_read_input_tokens".to_owned(), json!(read));
    }
    event(
        &mut frames,
        &json!({"type":"message_delta","delta":{"stop_reason":stop_reason_of(reply, blocks),"stop_sequence":null},
                "usage":usage}),
    );
    event(&mut frames, &json!({"type":"message_stop"}));
    Rendered::Sse { frames, stall_before }
}
