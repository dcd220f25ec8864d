//! The Anthropic Messages wire format (shared/specs/anthropic-messages.md): the request body, the streaming
//! [`Decoder`] (blocks keyed by index, tool input parsed at block stop, usage overwritten by `message_delta`), and
//! the non-streaming response. No HTTP here: the gateway sends and retries.

use std::collections::{BTreeMap, HashMap, VecDeque};

use eventsource_stream::Event;
use serde_json::{Map, Value, json};

use crate::error::{LlmError, stream_error};
use crate::stream::{Decoder, parse_tool_input};
use crate::types::{ChatRequest, Completion, Content, FinishReason, Message, Role, StreamEvent, ToolInput, Usage};

/// The request body. Consecutive same-role messages are merged; in user turns tool results come before text
/// (the API requires it). Empty text blocks and thinking blocks without a signature (which the API rejects) are
/// left out; a tool call whose input is not an object (unparsable input kept as text) is sent with `{}`.
pub(crate) fn request_body(request: &ChatRequest, stream: bool) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("max_tokens".into(), json!(request.max_tokens));
    body.insert("stream".into(), json!(stream));
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        body.insert(
            "system".into(),
            json!([{ "type": "text", "text": system, "cache_control": { "type": "ephemeral" } }]),
        );
    }
    body.insert("messages".into(), Value::Array(messages(&request.messages)));
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.input_schema }))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(f64::from(t)));
    }
    Value::Object(body)
}

fn messages(messages: &[Message]) -> Vec<Value> {
    let mut merged: Vec<(Role, Vec<Value>)> = Vec::new();
    for message in messages {
        let blocks: Vec<Value> = message.content.iter().filter_map(block).collect();
        if blocks.is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some((role, existing)) if *role == message.role => existing.extend(blocks),
            _ => merged.push((message.role, blocks)),
        }
    }
    merged
        .into_iter()
        .map(|(role, blocks)| {
            let blocks = if role == Role::User {
                let (mut results, rest): (Vec<Value>, Vec<Value>) =
                    blocks.into_iter().partition(|b| b["type"] == "tool_result");
                results.extend(rest);
                results
            } else {
                blocks
            };
            let role = match role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({ "role": role, "content": blocks })
        })
        .collect()
}

fn block(content: &Content) -> Option<Value> {
    Some(match content {
        Content::Text { text } if text.is_empty() => return None,
        Content::Text { text } => json!({ "type": "text", "text": text }),
        Content::Reasoning { text, signature: Some(signature) } => {
            json!({ "type": "thinking", "thinking": text, "signature": signature })
        }
        Content::Reasoning { signature: None, .. } => return None,
        Content::ToolCall { id, name, input } => {
            let input = if input.is_object() { input.clone() } else { json!({}) };
            json!({ "type": "tool_use", "id": id, "name": name, "input": input })
        }
        Content::ToolResult { call_id, output, is_error } => {
            json!({ "type": "tool_result", "tool_use_id": call_id, "content": output, "is_error": is_error })
        }
    })
}

/// `stop_reason` → normalised finish reason (spec §5).
pub(crate) fn finish_reason(raw: Option<&str>) -> FinishReason {
    match raw {
        Some("end_turn" | "stop_sequence" | "pause_turn") => FinishReason::Stop,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("refusal") => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// Anthropic's usage counters as last reported: later reports overwrite, never add.
#[derive(Debug, Default, Clone, Copy)]
struct RawUsage {
    input: Option<u64>,
    cache_creation: Option<u64>,
    cache_read: Option<u64>,
    cache_1h: Option<u64>,
    output: Option<u64>,
}

impl RawUsage {
    fn apply(&mut self, usage: &Value) {
        let count = |key: &str| usage.get(key).and_then(Value::as_u64);
        if let Some(v) = count("input_tokens") {
            self.input = Some(v);
        }
        if let Some(v) = count("cache_creation_input_tokens") {
            self.cache_creation = Some(v);
        }
        if let Some(v) = count("cache_read_input_tokens") {
            self.cache_read = Some(v);
        }
        if let Some(v) = count("output_tokens") {
            self.output = Some(v);
        }
        if let Some(v) = usage.pointer("/cache_creation/ephemeral_1h_input_tokens").and_then(Value::as_u64) {
            self.cache_1h = Some(v);
        }
    }

    /// In the crate's convention: input = uncached + cache writes + cache reads.
    fn usage(&self) -> Usage {
        Usage {
            input_tokens: self.input.map(|i| i + self.cache_creation.unwrap_or(0) + self.cache_read.unwrap_or(0)),
            output_tokens: self.output,
            cache_read_tokens: self.cache_read,
            cache_write_tokens: self.cache_creation,
            cache_write_1h_tokens: self.cache_1h,
            reasoning_tokens: None,
        }
    }
}

enum Block {
    Text(String),
    Thinking { text: String, signature: Option<String> },
    ToolUse { id: String, name: String, json: String, initial: Option<Value> },
}

/// Reads an Anthropic event stream.
#[derive(Default)]
pub(crate) struct StreamDecoder {
    id: Option<String>,
    model: Option<String>,
    open: HashMap<usize, Block>,
    done_blocks: BTreeMap<usize, Content>,
    usage: RawUsage,
    stop_reason: Option<String>,
    done: bool,
}

impl StreamDecoder {
    fn start_block(&mut self, index: usize, block: &Value, out: &mut VecDeque<StreamEvent>) {
        let text_of = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        let new = match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                out.push_back(StreamEvent::TextStart { block: index });
                let text = text_of("text");
                if !text.is_empty() {
                    out.push_back(StreamEvent::TextDelta { block: index, text: text.clone() });
                }
                Block::Text(text)
            }
            Some("thinking") => {
                out.push_back(StreamEvent::ReasoningStart { block: index });
                let text = text_of("thinking");
                if !text.is_empty() {
                    out.push_back(StreamEvent::ReasoningDelta { block: index, text: text.clone() });
                }
                Block::Thinking { text, signature: None }
            }
            Some("tool_use") => {
                let (id, name) = (text_of("id"), text_of("name"));
                out.push_back(StreamEvent::ToolCallStart { block: index, id: id.clone(), name: name.clone() });
                // `input` is `{}` here in practice; keep anything else in case no delta follows.
                let initial = block.get("input").filter(|v| v.as_object().is_some_and(|o| !o.is_empty())).cloned();
                Block::ToolUse { id, name, json: String::new(), initial }
            }
            other => {
                tracing::debug!(block_type = ?other, index, "ignoring an unknown Anthropic content block");
                return;
            }
        };
        self.open.insert(index, new);
    }

    fn delta(&mut self, index: usize, delta: &Value, out: &mut VecDeque<StreamEvent>) {
        let Some(block) = self.open.get_mut(&index) else {
            return; // a delta of an ignored or unknown block
        };
        let text_of = |key: &str| delta.get(key).and_then(Value::as_str).unwrap_or("");
        match (delta.get("type").and_then(Value::as_str), block) {
            (Some("text_delta"), Block::Text(text)) => {
                let piece = text_of("text");
                if !piece.is_empty() {
                    text.push_str(piece);
                    out.push_back(StreamEvent::TextDelta { block: index, text: piece.to_owned() });
                }
            }
            (Some("thinking_delta"), Block::Thinking { text, .. }) => {
                let piece = text_of("thinking");
                if !piece.is_empty() {
                    text.push_str(piece);
                    out.push_back(StreamEvent::ReasoningDelta { block: index, text: piece.to_owned() });
                }
            }
            (Some("signature_delta"), Block::Thinking { signature, .. }) => {
                let piece = text_of("signature");
                signature.get_or_insert_with(String::new).push_str(piece);
                out.push_back(StreamEvent::ReasoningSignature { block: index, signature: piece.to_owned() });
            }
            (Some("input_json_delta"), Block::ToolUse { id, json, .. }) => {
                let piece = text_of("partial_json");
                if !piece.is_empty() {
                    json.push_str(piece);
                    out.push_back(StreamEvent::ToolCallDelta { block: index, id: id.clone(), json: piece.to_owned() });
                }
            }
            (other, _) => tracing::debug!(delta_type = ?other, index, "ignoring an Anthropic delta"),
        }
    }

    fn stop_block(&mut self, index: usize, out: &mut VecDeque<StreamEvent>) {
        let Some(block) = self.open.remove(&index) else {
            return;
        };
        let content = match block {
            Block::Text(text) => {
                out.push_back(StreamEvent::TextEnd { block: index });
                Content::Text { text }
            }
            Block::Thinking { text, signature } => {
                out.push_back(StreamEvent::ReasoningEnd { block: index });
                Content::Reasoning { text, signature }
            }
            Block::ToolUse { id, name, json, initial } => {
                let (event_input, input) = match initial {
                    Some(initial) if json.trim().is_empty() => (ToolInput::Parsed(initial.clone()), initial),
                    _ => parse_tool_input(&json),
                };
                if let ToolInput::Invalid { error, .. } = &event_input {
                    tracing::warn!(tool = %name, %error, "the model sent tool input that is not valid JSON");
                }
                out.push_back(StreamEvent::ToolCallEnd {
                    block: index,
                    id: id.clone(),
                    name: name.clone(),
                    input: event_input,
                });
                Content::ToolCall { id, name, input }
            }
        };
        self.done_blocks.insert(index, content);
    }

    fn finish(&mut self, out: &mut VecDeque<StreamEvent>) {
        let mut still_open: Vec<usize> = self.open.keys().copied().collect();
        still_open.sort_unstable();
        for index in still_open {
            self.stop_block(index, out);
        }
        let content = std::mem::take(&mut self.done_blocks).into_values().collect();
        out.push_back(StreamEvent::Finish(Completion {
            message: Message { role: Role::Assistant, content },
            finish_reason: finish_reason(self.stop_reason.as_deref()),
            raw_finish_reason: self.stop_reason.clone(),
            usage: self.usage.usage(),
            response_id: self.id.clone(),
            response_model: self.model.clone(),
        }));
        self.done = true;
    }
}

fn index_of(data: &Value) -> Option<usize> {
    data.get("index").and_then(Value::as_u64).and_then(|i| usize::try_from(i).ok())
}

impl Decoder for StreamDecoder {
    fn feed(&mut self, event: &Event, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError> {
        if self.done {
            return Ok(());
        }
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| LlmError::Protocol(format!("Anthropic event {:?} is not JSON: {e}", event.event)))?;
        let kind = data.get("type").and_then(Value::as_str).unwrap_or(event.event.as_str());
        match kind {
            "message_start" => {
                let message = data.get("message").unwrap_or(&Value::Null);
                self.id = message.get("id").and_then(Value::as_str).map(str::to_owned);
                self.model = message.get("model").and_then(Value::as_str).map(str::to_owned);
                if let Some(usage) = message.get("usage") {
                    self.usage.apply(usage);
                }
            }
            "content_block_start" => {
                if let (Some(index), Some(block)) = (index_of(&data), data.get("content_block")) {
                    self.start_block(index, block, out);
                }
            }
            "content_block_delta" => {
                if let (Some(index), Some(delta)) = (index_of(&data), data.get("delta")) {
                    self.delta(index, delta, out);
                }
            }
            "content_block_stop" => {
                if let Some(index) = index_of(&data) {
                    self.stop_block(index, out);
                }
            }
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(usage) = data.get("usage") {
                    self.usage.apply(usage);
                }
            }
            "message_stop" => self.finish(out),
            "error" => return Err(stream_error(&data)),
            "ping" => {}
            other => tracing::debug!(event = other, "ignoring an unknown Anthropic event"),
        }
        Ok(())
    }

    fn close(&mut self, _out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError> {
        Err(LlmError::Protocol("the Anthropic stream closed before message_stop".to_owned()))
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn response_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    fn response_model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

/// A non-streamed response (`"stream": false`).
pub(crate) fn parse_response(body: &[u8]) -> Result<Completion, LlmError> {
    let data: Value = serde_json::from_slice(body)
        .map_err(|e| LlmError::Protocol(format!("the Anthropic response is not JSON: {e}")))?;
    if data.get("type").and_then(Value::as_str) == Some("error") {
        return Err(stream_error(&data));
    }
    let blocks = data
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| LlmError::Protocol("the Anthropic response has no content array".to_owned()))?;
    let text_of = |b: &Value, key: &str| b.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let content = blocks
        .iter()
        .filter_map(|b| match b.get("type").and_then(Value::as_str) {
            Some("text") => Some(Content::Text { text: text_of(b, "text") }),
            Some("thinking") => Some(Content::Reasoning {
                text: text_of(b, "thinking"),
                signature: b.get("signature").and_then(Value::as_str).map(str::to_owned),
            }),
            Some("tool_use") => Some(Content::ToolCall {
                id: text_of(b, "id"),
                name: text_of(b, "name"),
                input: b.get("input").cloned().unwrap_or_else(|| json!({})),
            }),
            _ => None,
        })
        .collect();
    let mut usage = RawUsage::default();
    if let Some(u) = data.get("usage") {
        usage.apply(u);
    }
    let stop_reason = data.get("stop_reason").and_then(Value::as_str).map(str::to_owned);
    Ok(Completion {
        message: Message { role: Role::Assistant, content },
        finish_reason: finish_reason(stop_reason.as_deref()),
        raw_finish_reason: stop_reason,
        usage: usage.usage(),
        response_id: data.get("id").and_then(Value::as_str).map(str::to_owned),
        response_model: data.get("model").and_then(Value::as_str).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolSpec;

    fn decode(sse: &str) -> (Vec<StreamEvent>, Result<(), LlmError>) {
        let mut decoder = StreamDecoder::default();
        let mut out = VecDeque::new();
        for chunk in sse.split("\n\n").filter(|c| !c.trim().is_empty()) {
            let mut event = Event::default();
            for line in chunk.lines() {
                if let Some(rest) = line.strip_prefix("event: ") {
                    event.event = rest.to_owned();
                } else if let Some(rest) = line.strip_prefix("data: ") {
                    event.data = rest.to_owned();
                }
            }
            if let Err(e) = decoder.feed(&event, &mut out) {
                return (out.into(), Err(e));
            }
        }
        let end = if decoder.is_done() { Ok(()) } else { decoder.close(&mut out) };
        (out.into(), end)
    }

    fn finish(events: &[StreamEvent]) -> &Completion {
        match events.last() {
            Some(StreamEvent::Finish(c)) => c,
            other => panic!("no finish: {other:?}"),
        }
    }

    const SPEC_10_2: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01T9","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay, let me check."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San Fra"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ncisco, CA\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}
"#;

    #[test]
    fn spec_example_text_then_tool_use() {
        let (events, end) = decode(SPEC_10_2);
        assert_eq!(end, Ok(()));
        let c = finish(&events);
        assert_eq!(c.text(), "Okay, let me check.");
        let calls: Vec<_> = c.tool_calls().collect();
        assert_eq!(
            calls,
            vec![("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", &json!({"location":"San Francisco, CA"}))]
        );
        assert_eq!(c.finish_reason, FinishReason::ToolCalls);
        assert_eq!(c.usage.input_tokens, Some(472));
        assert_eq!(c.usage.output_tokens, Some(89));
        assert_eq!(c.response_id.as_deref(), Some("msg_01T9"));
        // The empty partial_json produced no delta event.
        let deltas = events.iter().filter(|e| matches!(e, StreamEvent::ToolCallDelta { .. })).count();
        assert_eq!(deltas, 2);
        assert!(events.contains(&StreamEvent::ToolCallEnd {
            block: 1,
            id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
            name: "get_weather".into(),
            input: ToolInput::Parsed(json!({"location":"San Francisco, CA"})),
        }));
    }

    #[test]
    fn usage_is_overwritten_by_message_delta_and_includes_cache() {
        let sse = r#"event: message_start
data: {"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":5,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000,"output_tokens":1,"cache_creation":{"ephemeral_5m_input_tokens":60,"ephemeral_1h_input_tokens":40}}}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":30}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":42,"input_tokens":6}}

event: message_stop
data: {"type":"message_stop"}
"#;
        let (events, end) = decode(sse);
        assert_eq!(end, Ok(()));
        let usage = finish(&events).usage;
        assert_eq!(usage.output_tokens, Some(42));
        assert_eq!(usage.input_tokens, Some(6 + 100 + 1000));
        assert_eq!(usage.cache_read_tokens, Some(1000));
        assert_eq!(usage.cache_write_tokens, Some(100));
        assert_eq!(usage.cache_write_1h_tokens, Some(40));
    }

    #[test]
    fn thinking_keeps_text_and_signature_and_unknown_things_are_ignored() {
        let sse = r#"event: message_start
data: {"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":1,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me..."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCg"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"web_search_tool_result","content":[]}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{}}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: something_new
data: {"type":"something_new"}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"citations_delta","citation":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"Hi"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"refusal","stop_details":{}},"usage":{"output_tokens":3}}

event: message_stop
data: {"type":"message_stop"}
"#;
        let (events, end) = decode(sse);
        assert_eq!(end, Ok(()));
        let c = finish(&events);
        assert_eq!(
            c.message.content,
            vec![
                Content::Reasoning { text: "Let me...".into(), signature: Some("EqQBCg".into()) },
                Content::Text { text: "Hi".into() },
            ]
        );
        assert_eq!(c.finish_reason, FinishReason::ContentFilter);
    }

    #[test]
    fn invalid_or_empty_tool_input() {
        let sse = r#"event: message_start
data: {"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":1,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t1","name":"a","input":{}}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t2","name":"b","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"x\": tru"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":3}}

event: message_stop
data: {"type":"message_stop"}
"#;
        let (events, end) = decode(sse);
        assert_eq!(end, Ok(()));
        let c = finish(&events);
        let calls: Vec<_> = c.tool_calls().collect();
        assert_eq!(calls, vec![("t1", "a", &json!({})), ("t2", "b", &json!("{\"x\": tru"))]);
        assert!(events.iter().any(|e| matches!(e,
            StreamEvent::ToolCallEnd { id, input: ToolInput::Invalid { raw, .. }, .. } if id == "t2" && raw == "{\"x\": tru")));
    }

    #[test]
    fn an_error_event_fails_and_a_missing_message_stop_is_a_protocol_error() {
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\",\"usage\":{}}}\n\n\
                   event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let (_, end) = decode(sse);
        assert_eq!(end, Err(LlmError::Stream { error_type: "overloaded_error".into(), message: "Overloaded".into() }));
        let truncated = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\",\"usage\":{}}}\n\n";
        assert!(matches!(decode(truncated).1, Err(LlmError::Protocol(_))));
        assert!(matches!(decode("event: ping\ndata: {not json\n\n").1, Err(LlmError::Protocol(_))));
    }

    #[test]
    fn stop_reasons_map_per_spec() {
        for (raw, reason) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("pause_turn", FinishReason::Stop),
            ("tool_use", FinishReason::ToolCalls),
            ("max_tokens", FinishReason::Length),
            ("model_context_window_exceeded", FinishReason::Length),
            ("refusal", FinishReason::ContentFilter),
            ("something_else", FinishReason::Other),
        ] {
            assert_eq!(finish_reason(Some(raw)), reason, "{raw}");
        }
        assert_eq!(finish_reason(None), FinishReason::Other);
    }

    #[test]
    fn request_merges_roles_orders_tool_results_first_and_caches_the_system_prompt() {
        let request = ChatRequest {
            model: "claude-haiku-4-5".into(),
            system: Some("Be kind.".into()),
            messages: vec![
                Message::user("Weather?"),
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Content::Reasoning { text: "think".into(), signature: Some("sig".into()) },
                        Content::Reasoning { text: "unsigned".into(), signature: None },
                        Content::Text { text: "Let me check.".into() },
                        Content::ToolCall { id: "t1".into(), name: "w".into(), input: json!({"city":"Paris"}) },
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![Content::ToolResult {
                        call_id: "t1".into(),
                        output: "{\"c\":21}".into(),
                        is_error: false,
                    }],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        Content::Text { text: "and then?".into() },
                        Content::ToolResult { call_id: "t2".into(), output: "boom".into(), is_error: true },
                        Content::Text { text: String::new() },
                    ],
                },
            ],
            tools: vec![ToolSpec { name: "w".into(), description: "d".into(), input_schema: json!({"type":"object"}) }],
            temperature: None,
            max_tokens: 100,
        };
        let body = request_body(&request, true);
        assert_eq!(body["system"], json!([{"type":"text","text":"Be kind.","cache_control":{"type":"ephemeral"}}]));
        assert!(body.get("temperature").is_none());
        assert_eq!(body["tools"], json!([{"name":"w","description":"d","input_schema":{"type":"object"}}]));
        assert_eq!(
            body["messages"],
            json!([
                {"role":"user","content":[{"type":"text","text":"Weather?"}]},
                {"role":"assistant","content":[
                    {"type":"thinking","thinking":"think","signature":"sig"},
                    {"type":"text","text":"Let me check."},
                    {"type":"tool_use","id":"t1","name":"w","input":{"city":"Paris"}}]},
                {"role":"user","content":[
                    {"type":"tool_result","tool_use_id":"t1","content":"{\"c\":21}","is_error":false},
                    {"type":"tool_result","tool_use_id":"t2","content":"boom","is_error":true},
                    {"type":"text","text":"and then?"}]}
            ])
        );
    }

    #[test]
    fn non_streamed_response_is_parsed() {
        let body = json!({"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5-20251001",
            "content":[{"type":"text","text":"Hi"},{"type":"tool_use","id":"t","name":"n","input":{"a":1}}],
            "stop_reason":"tool_use","usage":{"input_tokens":3,"cache_read_input_tokens":7,"output_tokens":4}});
        let c = parse_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(c.text(), "Hi");
        assert_eq!(c.finish_reason, FinishReason::ToolCalls);
        assert_eq!(c.usage.input_tokens, Some(10));
        assert_eq!(c.usage.cache_read_tokens, Some(7));
        assert_eq!(c.usage.cache_write_tokens, None);
    }
}
