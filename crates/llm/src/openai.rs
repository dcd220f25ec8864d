//! The OpenAI Chat Completions wire format, for OpenAI and compatible servers (shared/specs/openai-chat-completions.md):
//! the request body, the streaming [`Decoder`] (tool calls accumulated by index, usage from any chunk, `[DONE]`),
//! and the non-streaming response. No HTTP here: the gateway sends and retries.

use std::collections::VecDeque;

use eventsource_stream::Event;
use serde_json::{Map, Value, json};

use crate::error::{LlmError, stream_error};
use crate::stream::{Decoder, parse_tool_input};
use crate::types::{ChatRequest, Completion, Content, FinishReason, Message, Role, StreamEvent, ToolInput, Usage};

/// Block numbers of the events (see [`StreamEvent`]): text 0, reasoning 1, tool call `n` at `2 + n`.
const TEXT_BLOCK: usize = 0;
const REASONING_BLOCK: usize = 1;
const FIRST_TOOL_BLOCK: usize = 2;

/// The request body. The system prompt is the first message; tool results become one `tool` message each (before
/// the user's text of the same turn); assistant tool calls carry their arguments as a JSON string; reasoning is not
/// sent back (the API has no field for it). `stream_options.include_usage` only when `include_usage`. The official
/// API (`api.openai.com`) gets `max_completion_tokens`, other servers `max_tokens`.
pub(crate) fn request_body(request: &ChatRequest, stream: bool, include_usage: bool, official_api: bool) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("stream".into(), json!(stream));
    if stream && include_usage {
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    let max_tokens_key = if official_api { "max_completion_tokens" } else { "max_tokens" };
    body.insert(max_tokens_key.into(), json!(request.max_tokens));
    let mut messages = Vec::new();
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({ "role": "system", "content": system }));
    }
    for message in &request.messages {
        push_message(&mut messages, message);
    }
    body.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({ "type": "function",
                        "function": { "name": t.name, "description": t.description, "parameters": t.input_schema } })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(f64::from(t)));
    }
    Value::Object(body)
}

fn push_message(messages: &mut Vec<Value>, message: &Message) {
    let texts: Vec<&str> = message
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Text { text } if !text.is_empty() => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let text = texts.join("\n");
    match message.role {
        Role::User => {
            for content in &message.content {
                if let Content::ToolResult { call_id, output, .. } = content {
                    messages.push(json!({ "role": "tool", "tool_call_id": call_id, "content": output }));
                }
            }
            if !text.is_empty() {
                messages.push(json!({ "role": "user", "content": text }));
            }
        }
        Role::Assistant => {
            let calls: Vec<Value> = message
                .content
                .iter()
                .filter_map(|c| match c {
                    Content::ToolCall { id, name, input } => {
                        // An input kept as raw text (it did not parse) goes back exactly as the model sent it.
                        let arguments = match input {
                            Value::String(raw) => raw.clone(),
                            other => other.to_string(),
                        };
                        Some(json!({ "id": id, "type": "function", "function": { "name": name, "arguments": arguments } }))
                    }
                    _ => None,
                })
                .collect();
            if text.is_empty() && calls.is_empty() {
                return;
            }
            let mut m = Map::new();
            m.insert("role".into(), json!("assistant"));
            m.insert("content".into(), if text.is_empty() { Value::Null } else { json!(text) });
            if !calls.is_empty() {
                m.insert("tool_calls".into(), Value::Array(calls));
            }
            messages.push(Value::Object(m));
        }
    }
}

/// `finish_reason` → normalised finish reason (spec §5).
pub(crate) fn finish_reason(raw: Option<&str>) -> FinishReason {
    match raw {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        _ => FinishReason::Other,
    }
}

/// OpenAI usage in the crate's convention (`prompt_tokens` already includes cached tokens).
fn usage(u: &Value) -> Usage {
    let count = |pointer: &str| u.pointer(pointer).and_then(Value::as_u64);
    Usage {
        input_tokens: count("/prompt_tokens"),
        output_tokens: count("/completion_tokens"),
        cache_read_tokens: count("/prompt_tokens_details/cached_tokens"),
        cache_write_tokens: None,
        cache_write_1h_tokens: None,
        reasoning_tokens: count("/completion_tokens_details/reasoning_tokens"),
    }
}

#[derive(Debug)]
struct Call {
    index: Option<u64>,
    id: Option<String>,
    name: Option<String>,
    arguments: String,
    started: bool,
}

/// Reads an OpenAI chunk stream.
#[derive(Default)]
pub(crate) struct StreamDecoder {
    id: Option<String>,
    model: Option<String>,
    text: Option<String>,
    reasoning: Option<String>,
    content: Vec<Content>,
    calls: Vec<Call>,
    /// Tool calls already ended (so block numbers keep growing after a `finish_reason`).
    ended_calls: usize,
    usage: Usage,
    finish_reason: Option<String>,
    done: bool,
}

impl StreamDecoder {
    fn close_text(&mut self, out: &mut VecDeque<StreamEvent>) {
        if let Some(text) = self.text.take() {
            out.push_back(StreamEvent::TextEnd { block: TEXT_BLOCK });
            self.content.push(Content::Text { text });
        }
    }

    fn close_reasoning(&mut self, out: &mut VecDeque<StreamEvent>) {
        if let Some(text) = self.reasoning.take() {
            out.push_back(StreamEvent::ReasoningEnd { block: REASONING_BLOCK });
            self.content.push(Content::Reasoning { text, signature: None });
        }
    }

    fn on_text(&mut self, piece: &str, out: &mut VecDeque<StreamEvent>) {
        self.close_reasoning(out);
        let text = self.text.get_or_insert_with(|| {
            out.push_back(StreamEvent::TextStart { block: TEXT_BLOCK });
            String::new()
        });
        text.push_str(piece);
        out.push_back(StreamEvent::TextDelta { block: TEXT_BLOCK, text: piece.to_owned() });
    }

    fn on_reasoning(&mut self, piece: &str, out: &mut VecDeque<StreamEvent>) {
        self.close_text(out);
        let text = self.reasoning.get_or_insert_with(|| {
            out.push_back(StreamEvent::ReasoningStart { block: REASONING_BLOCK });
            String::new()
        });
        text.push_str(piece);
        out.push_back(StreamEvent::ReasoningDelta { block: REASONING_BLOCK, text: piece.to_owned() });
    }

    fn block_of(&self, slot: usize) -> usize {
        FIRST_TOOL_BLOCK + self.ended_calls + slot
    }

    fn on_tool_call(&mut self, delta: &Value, out: &mut VecDeque<StreamEvent>) {
        let index = delta.get("index").and_then(Value::as_u64);
        let id = delta.get("id").and_then(Value::as_str).filter(|s| !s.is_empty());
        let existing = match (index, id) {
            (Some(index), _) => self.calls.iter().position(|c| c.index == Some(index)),
            (None, Some(id)) => self.calls.iter().position(|c| c.id.as_deref() == Some(id)),
            (None, None) => self.calls.len().checked_sub(1),
        };
        let slot = match existing {
            Some(slot) => slot,
            None => {
                // Text ends before the first tool call (the UI stream's rule).
                self.close_text(out);
                self.close_reasoning(out);
                self.calls.push(Call { index, id: None, name: None, arguments: String::new(), started: false });
                self.calls.len() - 1
            }
        };
        let block = self.block_of(slot);
        let Some(call) = self.calls.get_mut(slot) else {
            return;
        };
        if call.id.is_none() {
            call.id = id.map(str::to_owned);
        }
        if let Some(name) = delta.pointer("/function/name").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            call.name.get_or_insert_with(|| name.to_owned());
        }
        let fragment = delta.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("");
        call.arguments.push_str(fragment);
        match (&call.id, &call.name, call.started) {
            (Some(id), _, true) if !fragment.is_empty() => {
                out.push_back(StreamEvent::ToolCallDelta { block, id: id.clone(), json: fragment.to_owned() });
            }
            (Some(id), Some(name), false) => {
                call.started = true;
                out.push_back(StreamEvent::ToolCallStart { block, id: id.clone(), name: name.clone() });
                if !call.arguments.is_empty() {
                    out.push_back(StreamEvent::ToolCallDelta { block, id: id.clone(), json: call.arguments.clone() });
                }
            }
            _ => {}
        }
    }

    /// Ends text, reasoning and every tool call (parsing their arguments).
    fn end_blocks(&mut self, out: &mut VecDeque<StreamEvent>) {
        self.close_reasoning(out);
        self.close_text(out);
        let calls = std::mem::take(&mut self.calls);
        for (slot, call) in calls.into_iter().enumerate() {
            let block = self.block_of(slot);
            let id = call.id.unwrap_or_else(|| format!("call_{}", uuid::Uuid::new_v4().simple()));
            let name = call.name.unwrap_or_default();
            if !call.started {
                out.push_back(StreamEvent::ToolCallStart { block, id: id.clone(), name: name.clone() });
                if !call.arguments.is_empty() {
                    out.push_back(StreamEvent::ToolCallDelta { block, id: id.clone(), json: call.arguments.clone() });
                }
            }
            let (event_input, input) = parse_tool_input(&call.arguments);
            if let ToolInput::Invalid { error, .. } = &event_input {
                tracing::warn!(tool = %name, %error, "the model sent tool arguments that are not valid JSON");
            }
            out.push_back(StreamEvent::ToolCallEnd { block, id: id.clone(), name: name.clone(), input: event_input });
            self.content.push(Content::ToolCall { id, name, input });
        }
        self.ended_calls = self.content.iter().filter(|c| matches!(c, Content::ToolCall { .. })).count();
    }

    fn finish(&mut self, out: &mut VecDeque<StreamEvent>) {
        self.end_blocks(out);
        let has_calls = self.content.iter().any(|c| matches!(c, Content::ToolCall { .. }));
        let finish_reason =
            if has_calls { FinishReason::ToolCalls } else { finish_reason(self.finish_reason.as_deref()) };
        out.push_back(StreamEvent::Finish(Completion {
            message: Message { role: Role::Assistant, content: std::mem::take(&mut self.content) },
            finish_reason,
            raw_finish_reason: self.finish_reason.clone(),
            usage: self.usage,
            response_id: self.id.clone(),
            response_model: self.model.clone(),
        }));
        self.done = true;
    }
}

impl Decoder for StreamDecoder {
    fn feed(&mut self, event: &Event, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError> {
        if self.done {
            return Ok(());
        }
        let data = event.data.trim();
        if data == "[DONE]" {
            self.finish(out);
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| LlmError::Protocol(format!("an OpenAI stream chunk is not JSON: {e}")))?;
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return Err(stream_error(&chunk));
        }
        if self.id.is_none() {
            self.id = chunk.get("id").and_then(Value::as_str).map(str::to_owned);
        }
        if self.model.is_none() {
            self.model = chunk.get("model").and_then(Value::as_str).map(str::to_owned);
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = usage(u);
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|choices| choices.iter().find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0))
        else {
            return Ok(());
        };
        if let Some(delta) = choice.get("delta") {
            // Servers use either name; some send both with the same text, so take one.
            let reasoning = ["reasoning_content", "reasoning"]
                .iter()
                .find_map(|key| delta.get(*key).and_then(Value::as_str).filter(|s| !s.is_empty()));
            if let Some(piece) = reasoning {
                self.on_reasoning(piece, out);
            }
            for key in ["content", "refusal"] {
                if let Some(piece) = delta.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()) {
                    self.on_text(piece, out);
                }
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    self.on_tool_call(call, out);
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
            self.end_blocks(out);
        }
        Ok(())
    }

    fn close(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError> {
        if self.finish_reason.is_some() {
            tracing::warn!("the OpenAI-compatible stream closed after finish_reason without [DONE]; accepting it");
            self.finish(out);
            return Ok(());
        }
        Err(LlmError::Protocol("the OpenAI stream closed before [DONE]".to_owned()))
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
        .map_err(|e| LlmError::Protocol(format!("the OpenAI response is not JSON: {e}")))?;
    if data.get("error").is_some_and(|e| !e.is_null()) {
        return Err(stream_error(&data));
    }
    let choice = data
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| LlmError::Protocol("the OpenAI response has no choices".to_owned()))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    let reasoning = ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| message.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()));
    if let Some(text) = reasoning {
        content.push(Content::Reasoning { text: text.to_owned(), signature: None });
    }
    if let Some(text) = message.get("content").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        content.push(Content::Text { text: text.to_owned() });
    }
    for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let text_of = |p: &str| call.pointer(p).and_then(Value::as_str).unwrap_or("").to_owned();
        let arguments = call.pointer("/function/arguments");
        let input = match arguments {
            Some(Value::String(raw)) => parse_tool_input(raw).1,
            Some(other) if other.is_object() => other.clone(),
            _ => json!({}),
        };
        let id = Some(text_of("/id")).filter(|s| !s.is_empty());
        content.push(Content::ToolCall {
            id: id.unwrap_or_else(|| format!("call_{}", uuid::Uuid::new_v4().simple())),
            name: text_of("/function/name"),
            input,
        });
    }
    let raw_reason = choice.get("finish_reason").and_then(Value::as_str).map(str::to_owned);
    let has_calls = content.iter().any(|c| matches!(c, Content::ToolCall { .. }));
    Ok(Completion {
        message: Message { role: Role::Assistant, content },
        finish_reason: if has_calls { FinishReason::ToolCalls } else { finish_reason(raw_reason.as_deref()) },
        raw_finish_reason: raw_reason,
        usage: data.get("usage").filter(|u| u.is_object()).map(usage).unwrap_or_default(),
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
        for line in sse.lines() {
            let Some(data) = line.strip_prefix("data: ") else { continue };
            let event = Event { event: "message".into(), data: data.to_owned(), ..Event::default() };
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

    #[test]
    fn spec_tool_call_example() {
        let sse = r#"data: {"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":61,"completion_tokens":17,"total_tokens":78}}

data: [DONE]
"#;
        let (events, end) = decode(sse);
        assert_eq!(end, Ok(()));
        assert_eq!(
            events[..4],
            [
                StreamEvent::ToolCallStart { block: 2, id: "call_abc".into(), name: "get_weather".into() },
                StreamEvent::ToolCallDelta { block: 2, id: "call_abc".into(), json: "{\"city\":".into() },
                StreamEvent::ToolCallDelta { block: 2, id: "call_abc".into(), json: "\"Paris\"}".into() },
                StreamEvent::ToolCallEnd {
                    block: 2,
                    id: "call_abc".into(),
                    name: "get_weather".into(),
                    input: ToolInput::Parsed(json!({"city":"Paris"}))
                },
            ]
        );
        let c = finish(&events);
        assert_eq!(c.finish_reason, FinishReason::ToolCalls);
        assert_eq!(c.usage.input_tokens, Some(61));
        assert_eq!(c.usage.output_tokens, Some(17));
        assert_eq!(c.response_id.as_deref(), Some("chatcmpl-2"));
    }

    #[test]
    fn text_ends_before_the_first_tool_call_and_parallel_calls_interleave() {
        let sse = r#"data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"Checking"},"finish_reason":null}]}
data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"x","arguments":"{\"q\":"}}]}}]}
data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"y","arguments":""}}]}}]}
data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}
data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}}]}
data: {"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}
data: [DONE]
"#;
        let (events, end) = decode(sse);
        assert_eq!(end, Ok(()));
        let text_end = events.iter().position(|e| matches!(e, StreamEvent::TextEnd { .. })).unwrap();
        let first_call = events.iter().position(|e| matches!(e, StreamEvent::ToolCallStart { .. })).unwrap();
        assert!(text_end < first_call);
        let c = finish(&events);
        // Defensive rule: tool calls present means a tool-call turn, whatever the reason string says.
        assert_eq!(c.finish_reason, FinishReason::ToolCalls);
        assert_eq!(c.raw_finish_reason.as_deref(), Some("stop"));
        let calls: Vec<_> = c.tool_calls().collect();
        assert_eq!(calls, vec![("a", "x", &json!({"q":1})), ("b", "y", &json!({}))]);
        assert_eq!(c.usage, Usage::default(), "no usage chunk: unknown, not zero");
    }

    #[test]
    fn calls_without_index_fall_back_to_id_then_to_the_latest_call() {
        let sse = r#"data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"id":"a","function":{"name":"x","arguments":"{\"v\""}}]}}]}
data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":":1}"}}]}}]}
data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"id":"b","function":{"name":"y","arguments":"{\"w\":2}"}}]}}]}
data: {"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}
data: [DONE]
"#;
        let (events, end) = decode(sse);
        assert_eq!(end, Ok(()));
        let calls: Vec<_> =
            finish(&events).tool_calls().map(|(i, n, v)| (i.to_owned(), n.to_owned(), v.clone())).collect();
        assert_eq!(calls, vec![("a".into(), "x".into(), json!({"v":1})), ("b".into(), "y".into(), json!({"w":2}))]);
    }

    #[test]
    fn usage_from_any_chunk_last_wins_and_reasoning_fields_are_accepted() {
        let sse = r#"data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"reasoning_content":"hmm "}}],"usage":null}
data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"reasoning":"ok","reasoning_content":"ok"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}
data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"Hi"}}]}
data: {"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":9,"completion_tokens":12,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}},"timings":{"prompt_n":9}}
data: [DONE]
"#;
        let (events, end) = decode(sse);
        assert_eq!(end, Ok(()));
        let c = finish(&events);
        assert_eq!(
            c.message.content,
            vec![Content::Reasoning { text: "hmm ok".into(), signature: None }, Content::Text { text: "Hi".into() }]
        );
        assert_eq!(c.finish_reason, FinishReason::Length);
        assert_eq!(
            c.usage,
            Usage {
                input_tokens: Some(9),
                output_tokens: Some(12),
                cache_read_tokens: Some(4),
                reasoning_tokens: Some(2),
                ..Usage::default()
            }
        );
        assert!(events.contains(&StreamEvent::ReasoningEnd { block: 1 }));
    }

    #[test]
    fn error_lines_fail_and_ends_without_done_depend_on_finish_reason() {
        let (_, end) = decode(
            r#"data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","code":null}}"#,
        );
        assert_eq!(
            end,
            Err(LlmError::Stream {
                error_type: "server_error".into(),
                message: "The server had an error while processing your request.".into()
            })
        );
        let after_finish = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n";
        let (events, end) = decode(after_finish);
        assert_eq!(end, Ok(()));
        assert_eq!(finish(&events).text(), "Hi");
        let cut = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n";
        assert!(matches!(decode(cut).1, Err(LlmError::Protocol(_))));
    }

    #[test]
    fn request_shape() {
        let request = ChatRequest {
            model: "gpt-4o-mini".into(),
            system: Some("Be kind.".into()),
            messages: vec![
                Message::user("Weather?"),
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Content::Reasoning { text: "r".into(), signature: None },
                        Content::ToolCall { id: "a".into(), name: "w".into(), input: json!({"city":"Paris"}) },
                        Content::ToolCall { id: "b".into(), name: "w".into(), input: json!("{bad") },
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        Content::ToolResult { call_id: "a".into(), output: "21".into(), is_error: false },
                        Content::ToolResult { call_id: "b".into(), output: "bad input".into(), is_error: true },
                    ],
                },
            ],
            tools: vec![ToolSpec { name: "w".into(), description: "d".into(), input_schema: json!({"type":"object"}) }],
            temperature: Some(0.5),
            max_tokens: 64,
        };
        let body = request_body(&request, true, false, false);
        assert!(body.get("stream_options").is_none());
        assert_eq!(body["max_tokens"], 64);
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(
            body["messages"],
            json!([
                {"role":"system","content":"Be kind."},
                {"role":"user","content":"Weather?"},
                {"role":"assistant","content":null,"tool_calls":[
                    {"id":"a","type":"function","function":{"name":"w","arguments":"{\"city\":\"Paris\"}"}},
                    {"id":"b","type":"function","function":{"name":"w","arguments":"{bad"}}]},
                {"role":"tool","tool_call_id":"a","content":"21"},
                {"role":"tool","tool_call_id":"b","content":"bad input"}
            ])
        );
        assert_eq!(
            body["tools"],
            json!([{"type":"function","function":{"name":"w","description":"d","parameters":{"type":"object"}}}])
        );
        let official = request_body(&request, true, true, true);
        assert_eq!(official["stream_options"], json!({"include_usage": true}));
        assert_eq!(official["max_completion_tokens"], 64);
        assert!(official.get("max_tokens").is_none());
        assert!(request_body(&request, false, true, false).get("stream_options").is_none());
    }

    #[test]
    fn non_streamed_response_is_parsed() {
        let body = json!({"id":"chatcmpl-9","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,
            "message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
            "function":{"name":"w","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25,"prompt_tokens_details":{"cached_tokens":8}}});
        let c = parse_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(c.tool_calls().collect::<Vec<_>>(), vec![("call_1", "w", &json!({"city":"Paris"}))]);
        assert_eq!(c.finish_reason, FinishReason::ToolCalls);
        assert_eq!(c.usage.input_tokens, Some(20));
        assert_eq!(c.usage.cache_read_tokens, Some(8));
        assert_eq!(c.response_model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    }
}
