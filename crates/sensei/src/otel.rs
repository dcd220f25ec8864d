//! OTLP/HTTP trace ingestion (`POST /v1/traces`, `shared/specs/otlp-genai.md`): decoding the request body (gzip,
//! protobuf or JSON) and turning GenAI model-call spans into [`IngestConversation`]s. Knows nothing of HTTP beyond
//! the two header values it is given, and never invents a conversation id: a span without one is rejected.
//!
//! # Message ids (dedupe across spans)
//!
//! Each model call's input repeats the conversation's history, so a message's id must not depend on the span that
//! carried it. A message gets `external_id = "o_" + hex(SHA-256(role ␀ canonical ␀ position)[..16])` where
//!
//! - `canonical` is the compact JSON array `[text, [[tool_call_id, tool_name], ...], tool_call_response_id]`: the
//!   text parts joined by `"\n"` (before truncation), the tool calls' ids and names (not their arguments, whose
//!   rendering varies between emitters), and the id of the tool call a `tool` message answers. Reasoning, unknown
//!   parts and `finish_reason` are left out, so an output message and the same message coming back in the next
//!   call's input hash alike;
//! - `position` is the message's index in the conversation as that call saw it: the index in the input (after
//!   `gen_ai.system_instructions`, when prepended, at 0), and `input length + j` for output message `j`. A message
//!   that is split (one stored message per `tool_call_response` part) uses `index.k` for its `k`th piece.
//!
//! The one exception is the placeholder answer of a failed call without output (empty content, status `error`): it
//! never comes back as input, so its canonical form is `["error", trace_id, span_id]` and each failure is kept.
//! History rewritten by the client (a sliding window, a summary) shifts positions and yields new ids.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use flate2::read::MultiGzDecoder;
use mentorfy_otlp::{AnyValue, DecodedSpan, Span, StatusCode, decode_json, decode_protobuf, hex};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::ingest::{
    IngestConversation, IngestMessage, MAX_CONTENT_BYTES, MAX_MESSAGES, MAX_METADATA_BYTES, Role, check_environment,
    check_id, check_metadata,
};

/// At most this many distinct rejection reasons are reported per request.
const MAX_REJECTIONS: usize = 10;
/// Span timestamps before this (2000-01-01) are refused.
const EARLIEST_UNIX_NANO: u64 = 946_684_800_000_000_000;
/// Span timestamps further in the future than this are refused.
const MAX_FUTURE: time::Duration = time::Duration::days(1);
/// Indexed attributes (`gen_ai.prompt.N.*`) beyond this index are ignored.
const MAX_INDEXED: usize = 10_000;

const MODEL_CALL_OPERATIONS: [&str; 3] = ["chat", "text_completion", "generate_content"];
const VERCEL_MODEL_CALLS: [&str; 4] = [
    "ai.generateText.doGenerate",
    "ai.streamText.doStream",
    "ai.generateObject.doGenerate",
    "ai.streamObject.doStream",
];
const CONVERSATION_ID_KEYS: [&str; 5] = [
    "gen_ai.conversation.id",
    "session.id",
    "langfuse.session.id",
    "ai.telemetry.metadata.sessionId",
    "ai.telemetry.metadata.conversationId",
];

/// Why an OTLP request body could not be decoded. The HTTP layer maps `TooLarge` to 413, `UnsupportedEncoding` and
/// `UnsupportedMediaType` to 415, `Malformed` to 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtelDecodeError {
    /// The (decompressed) body is larger than the limit.
    #[error("the decoded request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// A `Content-Encoding` other than `gzip` or `identity`.
    #[error("unsupported Content-Encoding {0:?}: send gzip or identity")]
    UnsupportedEncoding(String),
    /// A `Content-Type` other than `application/x-protobuf` or `application/json`.
    #[error("unsupported Content-Type {0:?}: send application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    /// Bad gzip, protobuf or OTLP/JSON; the decoder's message.
    #[error("{0}")]
    Malformed(String),
}

/// Decodes an OTLP/HTTP trace request: gunzips it when `content_encoding` is `gzip` (refusing more than
/// `max_decoded_bytes` of output, without ever buffering more than that), then decodes protobuf
/// (`application/x-protobuf`, `application/protobuf`) or OTLP/JSON (`application/json`). Header values are
/// compared case-insensitively and media-type parameters (`; charset=utf-8`) are ignored.
pub fn decode_request(
    body: &[u8],
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    max_decoded_bytes: usize,
) -> Result<Vec<DecodedSpan>, OtelDecodeError> {
    let media_type = content_type.and_then(|ct| ct.split(';').next()).map(|t| t.trim().to_ascii_lowercase());
    let protobuf = match media_type.as_deref() {
        Some("application/x-protobuf" | "application/protobuf") => true,
        Some("application/json") => false,
        other => return Err(OtelDecodeError::UnsupportedMediaType(other.unwrap_or_default().to_owned())),
    };
    let mut gzip = false;
    for coding in content_encoding.unwrap_or_default().split(',').map(|c| c.trim().to_ascii_lowercase()) {
        match coding.as_str() {
            "" | "identity" => {}
            "gzip" | "x-gzip" if !gzip => gzip = true,
            _ => return Err(OtelDecodeError::UnsupportedEncoding(content_encoding.unwrap_or_default().trim().into())),
        }
    }
    let inflated;
    let bytes: &[u8] = if gzip {
        inflated = gunzip(body, max_decoded_bytes)?;
        &inflated
    } else {
        if body.len() > max_decoded_bytes {
            return Err(OtelDecodeError::TooLarge { limit: max_decoded_bytes });
        }
        body
    };
    let decoded = if protobuf { decode_protobuf(bytes) } else { decode_json(bytes) };
    decoded.map_err(|e| OtelDecodeError::Malformed(e.to_string()))
}

/// Gunzips `body`, reading at most `max + 1` bytes of output so a zip bomb cannot allocate unbounded memory.
fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, OtelDecodeError> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    MultiGzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| OtelDecodeError::Malformed(format!("invalid gzip body: {e}")))?;
    if out.len() > max {
        return Err(OtelDecodeError::TooLarge { limit: max });
    }
    Ok(out)
}

/// The conversations found in one request's spans, and what was left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanMapping {
    /// One per (conversation id, environment, user id), in order of first appearance; messages in time order,
    /// without duplicates.
    pub conversations: Vec<IngestConversation>,
    /// GenAI model-call spans that could not be mapped (the `rejectedSpans` of a partial success).
    pub rejected_spans: u64,
    /// Distinct reasons for the rejections, at most ten.
    pub rejections: Vec<String>,
    /// Spans that are not GenAI model calls (agent, tool, HTTP spans...): neither stored nor rejected.
    pub ignored_spans: u64,
}

impl SpanMapping {
    fn reject(&mut self, reason: String) {
        self.rejected_spans += 1;
        if self.rejections.len() < MAX_REJECTIONS && !self.rejections.contains(&reason) {
            self.rejections.push(reason);
        }
    }
}

/// Maps GenAI model-call spans (current and older semantic conventions, OpenLLMetry, OpenInference, Vercel AI SDK)
/// to conversations. Spans of one conversation are merged and their repeated history deduplicated (see the module
/// docs for the id scheme). `now` bounds span timestamps (at most a day ahead).
pub fn conversations_from_spans(spans: &[DecodedSpan], now: OffsetDateTime) -> SpanMapping {
    let mut ordered: Vec<&DecodedSpan> = spans.iter().collect();
    ordered.sort_by_key(|ds| (ds.span.start_unix_nano, ds.span.end_unix_nano));
    let mut out = SpanMapping::default();
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<GroupKey, usize> = HashMap::new();
    for ds in ordered {
        let mapped = match map_span(ds, now) {
            Ok(Some(mapped)) => mapped,
            Ok(None) => {
                out.ignored_spans += 1;
                continue;
            }
            Err(reason) => {
                out.reject(reason);
                continue;
            }
        };
        let key = (mapped.conversation_id.clone(), mapped.environment.clone(), mapped.user_id.clone());
        match index.get(&key) {
            Some(&i) => {
                let group = &mut groups[i];
                let new = group.count_new(&mapped.messages);
                if group.messages.len() + new > MAX_MESSAGES {
                    out.reject(format!(
                        "conversation {}: more than {MAX_MESSAGES} messages in one request",
                        mapped.conversation_id
                    ));
                    continue;
                }
                group.merge(mapped);
            }
            None => {
                index.insert(key, groups.len());
                groups.push(Group::new(mapped));
            }
        }
    }
    out.conversations = groups.into_iter().map(Group::finish).collect();
    out
}

type GroupKey = (String, Option<String>, Option<String>);

/// A message built from a span, and whether it was that span's output (which carries usage figures).
struct SpanMessage {
    message: IngestMessage,
    output: bool,
}

/// What one model-call span contributes.
struct MappedSpan {
    conversation_id: String,
    environment: Option<String>,
    user_id: Option<String>,
    agent_id: Option<String>,
    metadata: Map<String, Value>,
    messages: Vec<SpanMessage>,
}

/// The spans of one conversation, merged.
struct Group {
    conversation: IngestConversation,
    messages: Vec<SpanMessage>,
    by_id: HashMap<String, usize>,
}

impl Group {
    fn new(mapped: MappedSpan) -> Group {
        let conversation = IngestConversation {
            external_id: mapped.conversation_id.clone(),
            environment: mapped.environment.clone(),
            user_id: mapped.user_id.clone(),
            agent_id: None,
            metadata: Map::new(),
            messages: Vec::new(),
        };
        let mut group = Group { conversation, messages: Vec::new(), by_id: HashMap::new() };
        group.merge(mapped);
        group
    }

    /// How many of `messages` this group does not hold yet.
    fn count_new(&self, messages: &[SpanMessage]) -> usize {
        let mut seen = std::collections::HashSet::new();
        messages
            .iter()
            .filter(|m| !self.by_id.contains_key(&m.message.external_id) && seen.insert(&m.message.external_id))
            .count()
    }

    /// Adds a span's messages; a duplicate replaces the held copy only when it is an output (with usage) and the held
    /// one is not.
    fn merge(&mut self, mapped: MappedSpan) {
        if self.conversation.agent_id.is_none() {
            self.conversation.agent_id = mapped.agent_id;
        }
        for (k, v) in mapped.metadata {
            self.conversation.metadata.entry(k).or_insert(v);
        }
        for m in mapped.messages {
            match self.by_id.get(&m.message.external_id) {
                Some(&i) => {
                    if m.output && !self.messages[i].output {
                        self.messages[i] = m;
                    }
                }
                None => {
                    self.by_id.insert(m.message.external_id.clone(), self.messages.len());
                    self.messages.push(m);
                }
            }
        }
    }

    fn finish(mut self) -> IngestConversation {
        let mut messages: Vec<IngestMessage> = self.messages.into_iter().map(|m| m.message).collect();
        messages.sort_by_key(|m| m.created_at);
        self.conversation.messages = messages;
        self.conversation
    }
}

// --- one span -------------------------------------------------------------------------------------------------------

/// `Ok(None)`: not a GenAI model call. `Err`: a model call that cannot be stored, with the reason.
fn map_span(ds: &DecodedSpan, now: OffsetDateTime) -> Result<Option<MappedSpan>, String> {
    let span = &ds.span;
    if !is_model_call(span) {
        return Ok(None);
    }
    let (id_key, raw_id) = CONVERSATION_ID_KEYS
        .iter()
        .find_map(|k| attr_string(span, k).map(|v| (*k, v)))
        .ok_or_else(|| "no gen_ai.conversation.id or session.id".to_owned())?;
    let conversation_id = check_id(id_key, &raw_id).map_err(|e| e.to_string())?;

    let (start, end) = span_times(span, now)?;

    let environment = ["deployment.environment.name", "deployment.environment"]
        .iter()
        .find_map(|k| ds.resource_attr(k).and_then(any_string))
        .and_then(|e| check_environment("deployment.environment.name", &e).ok());
    let user_id = ["user.id", "langfuse.user.id", "ai.telemetry.metadata.userId"]
        .iter()
        .find_map(|k| attr_string(span, k))
        .and_then(|u| check_id("user.id", &u).ok());
    let agent_id = ["gen_ai.agent.id", "app.agent_id", "gen_ai.agent.name"]
        .iter()
        .find_map(|k| attr_string(span, k))
        .and_then(|a| check_id("gen_ai.agent.id", &a).ok());
    let metadata = conversation_metadata(ds);

    // Messages, each a list of units (usually one) at one position.
    let mut inputs = input_messages(span);
    if let Some(system) = attr(span, &["gen_ai.system_instructions"]).map(system_unit)
        && !system.text.is_empty()
        && !inputs.iter().flatten().any(|u| u.role == Role::System)
    {
        inputs.insert(0, vec![system]);
    }
    let outputs = output_messages(span);
    let failed = span.status == StatusCode::Error;
    if inputs.iter().all(Vec::is_empty) && outputs.iter().all(Vec::is_empty) && !failed {
        return Err("no message content (gen_ai.input.messages / gen_ai.output.messages missing: is content \
                    capture on?)"
            .to_owned());
    }

    let mut messages = Vec::new();
    for (i, units) in inputs.iter().enumerate() {
        let at = start + time::Duration::microseconds(i64::try_from(i).unwrap_or(i64::MAX));
        for (k, unit) in units.iter().enumerate() {
            let position = if units.len() == 1 { i.to_string() } else { format!("{i}.{k}") };
            messages.push(SpanMessage { message: build_message(unit, &position, at), output: false });
        }
    }
    let output_at = end.max(start + time::Duration::microseconds(i64::try_from(inputs.len()).unwrap_or(i64::MAX)));
    let usage = usage_metadata(span);
    let finish_reasons = finish_reasons(span);
    let mut first_output = true;
    for (j, units) in outputs.iter().enumerate() {
        let i = inputs.len() + j;
        for (k, unit) in units.iter().enumerate() {
            let position = if units.len() == 1 { i.to_string() } else { format!("{i}.{k}") };
            let mut message = build_message(unit, &position, output_at);
            if let Some(reason) = finish_reasons.get(j) {
                message.finish_reason = Some(reason.clone());
            }
            if first_output && unit.role == Role::Assistant {
                first_output = false;
                apply_usage(&mut message, span, &usage);
                if failed {
                    error_metadata(&mut message.metadata, span);
                }
                fit_metadata(&mut message.metadata);
            }
            messages.push(SpanMessage { message, output: true });
        }
    }
    if first_output && failed {
        // A failed call without output: a placeholder answer that records the failure.
        let canonical = json!(["error", hex(&span.trace_id), hex(&span.span_id)]).to_string();
        let id = message_key(Role::Assistant, &canonical, &inputs.len().to_string());
        let mut message = IngestMessage::new(Some(id), Role::Assistant, String::new(), output_at);
        message.status = "error";
        message.finish_reason = finish_reasons.first().cloned();
        apply_usage(&mut message, span, &usage);
        error_metadata(&mut message.metadata, span);
        fit_metadata(&mut message.metadata);
        messages.push(SpanMessage { message, output: true });
    }
    // One call with more history than a request may hold: keep the most recent (earlier ones were stored by earlier
    // calls).
    if messages.len() > MAX_MESSAGES {
        messages.drain(..messages.len() - MAX_MESSAGES);
    }
    Ok(Some(MappedSpan { conversation_id, environment, user_id, agent_id, metadata, messages }))
}

fn is_model_call(span: &Span) -> bool {
    if let Some(op) = attr_string(span, "gen_ai.operation.name") {
        return MODEL_CALL_OPERATIONS.contains(&op.as_str());
    }
    let vercel = attr_string(span, "ai.operationId");
    if VERCEL_MODEL_CALLS.contains(&span.name.as_str())
        || vercel.as_deref().is_some_and(|o| VERCEL_MODEL_CALLS.contains(&o))
    {
        return true;
    }
    if vercel.is_some() {
        // The outer `ai.generateText` / `ai.streamText` spans repeat their inner calls.
        return false;
    }
    if let Some(kind) = attr_string(span, "openinference.span.kind") {
        return kind.eq_ignore_ascii_case("llm");
    }
    ["gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.prompt", "gen_ai.completion", "gen_ai.request.model"]
        .iter()
        .any(|k| span.get(k).is_some())
        || span.get("llm.model_name").is_some()
        || span
            .attributes
            .iter()
            .any(|kv| is_indexed(&kv.key, "gen_ai.prompt.") || is_indexed(&kv.key, "gen_ai.completion."))
}

/// `key` is `prefix` + a message index + `.` + a field (`gen_ai.prompt.0.role`, not `gen_ai.prompt.name`).
fn is_indexed(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(index, _)| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
}

/// Start and end as times, checked: not missing, not before 2000, at most a day ahead. An end before the start is
/// taken as the start.
fn span_times(span: &Span, now: OffsetDateTime) -> Result<(OffsetDateTime, OffsetDateTime), String> {
    if span.start_unix_nano == 0 {
        return Err("span has no startTimeUnixNano".to_owned());
    }
    if span.start_unix_nano < EARLIEST_UNIX_NANO {
        return Err("span startTimeUnixNano is before 2000-01-01".to_owned());
    }
    let at = |nanos: u64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).ok();
    let start = at(span.start_unix_nano).filter(|t| *t <= now + MAX_FUTURE);
    let start = start.ok_or_else(|| "span startTimeUnixNano is more than a day in the future".to_owned())?;
    let end = at(span.end_unix_nano.max(span.start_unix_nano)).filter(|t| *t <= now + MAX_FUTURE);
    let end = end.ok_or_else(|| "span endTimeUnixNano is more than a day in the future".to_owned())?;
    Ok((start, end))
}

fn conversation_metadata(ds: &DecodedSpan) -> Map<String, Value> {
    let mut metadata = Map::new();
    if let Some(service) = ds.resource_attr("service.name").and_then(any_string) {
        metadata.insert("service.name".into(), Value::String(service));
    }
    // Vercel AI SDK user metadata (`experimental_telemetry.metadata`), except the ids read above.
    for kv in &ds.span.attributes {
        if let Some(key) = kv.key.strip_prefix("ai.telemetry.metadata.")
            && !matches!(key, "sessionId" | "conversationId" | "userId")
            && !key.is_empty()
        {
            metadata.entry(key.to_owned()).or_insert_with(|| to_json(&kv.value));
        }
    }
    if check_metadata("metadata", &metadata).is_err() {
        metadata.retain(|k, _| k == "service.name");
    }
    metadata
}

// --- messages -------------------------------------------------------------------------------------------------------

/// One stored message in the making: a message of the span, or one `tool_call_response` part of it.
#[derive(Debug, Clone, PartialEq)]
struct Unit {
    role: Role,
    text: String,
    tool_calls: Vec<ToolCall>,
    /// For `tool` messages: the call answered.
    tool_call_id: Option<String>,
    reasoning: Vec<String>,
    /// Parts of unknown types, kept as received.
    other: Vec<Value>,
    finish_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct ToolCall {
    id: Option<String>,
    name: Option<String>,
    arguments: Value,
}

impl Unit {
    fn new(role: Role) -> Unit {
        Unit {
            role,
            text: String::new(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            reasoning: Vec::new(),
            other: Vec::new(),
            finish_reason: None,
        }
    }

    fn text(role: Role, text: impl Into<String>) -> Unit {
        let mut unit = Unit::new(role);
        unit.text = text.into();
        unit
    }
}

/// The input, by precedence: `gen_ai.input.messages`, `gen_ai.prompt` (JSON), OpenLLMetry's `gen_ai.prompt.N.*`,
/// OpenInference's `llm.input_messages.N.*`, Vercel's `ai.prompt.messages`.
fn input_messages(span: &Span) -> Vec<Vec<Unit>> {
    if let Some(v) = attr(span, &["gen_ai.input.messages", "gen_ai.prompt"]) {
        return parse_messages(v, Role::User);
    }
    for prefix in ["gen_ai.prompt.", "llm.input_messages."] {
        let indexed = indexed_messages(span, prefix, Role::User);
        if !indexed.is_empty() {
            return indexed;
        }
    }
    attr(span, &["ai.prompt.messages"]).map(|v| parse_messages(v, Role::User)).unwrap_or_default()
}

/// The output, by the same precedence; Vercel's is `ai.response.text` with `ai.response.toolCalls`.
fn output_messages(span: &Span) -> Vec<Vec<Unit>> {
    if let Some(v) = attr(span, &["gen_ai.output.messages", "gen_ai.completion"]) {
        return parse_messages(v, Role::Assistant);
    }
    for prefix in ["gen_ai.completion.", "llm.output_messages."] {
        let indexed = indexed_messages(span, prefix, Role::Assistant);
        if !indexed.is_empty() {
            return indexed;
        }
    }
    let text = attr_string(span, "ai.response.text").unwrap_or_default();
    let mut unit = Unit::text(Role::Assistant, text);
    if let Some(Value::Array(calls)) = attr(span, &["ai.response.toolCalls"]).map(json_value) {
        unit.tool_calls = calls.iter().filter_map(tool_call).collect();
    }
    if let Some(reason) = attr_string(span, "ai.response.finishReason") {
        unit.finish_reason = Some(reason);
    }
    if unit.text.is_empty() && unit.tool_calls.is_empty() { Vec::new() } else { vec![vec![unit]] }
}

/// An attribute holding messages: a JSON string or a structured value, an array of messages or one message; text
/// that is not JSON is one message of `default_role`. Entries that are not messages keep their position, empty.
fn parse_messages(value: &AnyValue, default_role: Role) -> Vec<Vec<Unit>> {
    match json_value(value) {
        Value::Array(items) => items.iter().map(|item| parse_message(item, default_role)).collect(),
        obj @ Value::Object(_) => vec![parse_message(&obj, default_role)],
        Value::String(s) if !s.is_empty() => vec![vec![Unit::text(default_role, s)]],
        Value::Null | Value::String(_) => Vec::new(),
        other => vec![vec![Unit::text(default_role, other.to_string())]],
    }
}

/// The JSON form of an attribute: a string holding a JSON array or object is parsed; other strings stay strings.
fn json_value(value: &AnyValue) -> Value {
    match value {
        AnyValue::String(s) => match serde_json::from_str::<Value>(s.trim()) {
            Ok(v @ (Value::Array(_) | Value::Object(_))) => v,
            _ => Value::String(s.clone()),
        },
        other => to_json(other),
    }
}

fn parse_role(raw: &str) -> Option<Role> {
    Role::parse(raw).or(match raw.to_ascii_lowercase().as_str() {
        "user" | "human" => Some(Role::User),
        "assistant" | "model" | "ai" | "bot" => Some(Role::Assistant),
        "system" | "developer" => Some(Role::System),
        "tool" | "function" | "ipython" => Some(Role::Tool),
        _ => None,
    })
}

/// One message in any of the accepted shapes: `{role, parts}` (current conventions), `{role, content: string |
/// [blocks], tool_calls?, tool_call_id?}` (OpenAI, Anthropic, Vercel), or a bare string. Yields the message itself
/// (unless it only holds tool results) and one `tool` message per tool-result part.
fn parse_message(item: &Value, default_role: Role) -> Vec<Unit> {
    let obj = match item {
        Value::Object(obj) => obj,
        Value::String(s) => return vec![Unit::text(default_role, s.clone())],
        _ => return Vec::new(),
    };
    let role = match obj.get("role").and_then(Value::as_str) {
        Some(raw) => match parse_role(raw) {
            Some(role) => role,
            None => return Vec::new(),
        },
        None => default_role,
    };
    let mut unit = Unit::new(role);
    let mut texts: Vec<String> = Vec::new();
    let mut responses: Vec<Unit> = Vec::new();
    let parts = obj.get("parts").filter(|p| p.is_array()).or_else(|| obj.get("content"));
    match parts {
        Some(Value::String(s)) => texts.push(s.clone()),
        Some(Value::Array(parts)) => {
            for part in parts {
                parse_part(part, &mut unit, &mut texts, &mut responses);
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => texts.push(render(other)),
    }
    if let Some(Value::Array(calls)) = obj.get("tool_calls").or_else(|| obj.get("toolCalls")) {
        unit.tool_calls.extend(calls.iter().filter_map(tool_call));
    }
    unit.tool_call_id = str_field(obj, &["tool_call_id", "toolCallId", "tool_use_id"]);
    unit.finish_reason = str_field(obj, &["finish_reason", "finishReason"]);
    unit.text = texts.join("\n");
    let keep_main = responses.is_empty()
        || !unit.text.is_empty()
        || !unit.tool_calls.is_empty()
        || !unit.other.is_empty()
        || !unit.reasoning.is_empty();
    let mut out = Vec::with_capacity(responses.len() + 1);
    if keep_main {
        out.push(unit);
    }
    out.extend(responses);
    out
}

fn parse_part(part: &Value, unit: &mut Unit, texts: &mut Vec<String>, responses: &mut Vec<Unit>) {
    let obj = match part {
        Value::String(s) => {
            texts.push(s.clone());
            return;
        }
        Value::Object(obj) => obj,
        other => {
            unit.other.push(other.clone());
            return;
        }
    };
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("text");
    match kind {
        "text" | "input_text" | "output_text" => match str_field(obj, &["content", "text"]) {
            Some(text) => texts.push(text),
            None => unit.other.push(part.clone()),
        },
        "reasoning" | "thinking" => {
            if let Some(text) = str_field(obj, &["content", "thinking", "text"]) {
                unit.reasoning.push(text);
            }
        }
        "tool_call" | "tool-call" | "tool_use" | "function_call" => match tool_call(part) {
            Some(call) => unit.tool_calls.push(call),
            None => unit.other.push(part.clone()),
        },
        "tool_call_response" | "tool-result" | "tool_result" | "function_call_output" => {
            let mut response = Unit::new(Role::Tool);
            response.tool_call_id = str_field(obj, &["id", "toolCallId", "tool_use_id", "call_id"]);
            let body = ["response", "result", "output", "content"].iter().find_map(|k| obj.get(*k));
            response.text = body.map(render).unwrap_or_default();
            responses.push(response);
        }
        _ => unit.other.push(part.clone()),
    }
}

/// A tool call in any accepted shape: `{id, name, arguments}`, OpenAI's `{id, function: {name, arguments}}`,
/// Vercel's `{toolCallId, toolName, args | input}`, Anthropic's `{id, name, input}`.
fn tool_call(value: &Value) -> Option<ToolCall> {
    let obj = value.as_object()?;
    let function = obj.get("function").and_then(Value::as_object);
    let id = str_field(obj, &["id", "toolCallId", "call_id"]);
    let name = str_field(obj, &["name", "toolName"]).or_else(|| function.and_then(|f| str_field(f, &["name"])));
    let arguments = ["arguments", "args", "input"]
        .iter()
        .find_map(|k| obj.get(*k))
        .or_else(|| function.and_then(|f| f.get("arguments")))
        .cloned()
        .unwrap_or(Value::Null);
    (id.is_some() || name.is_some()).then_some(ToolCall { id, name, arguments })
}

/// `gen_ai.system_instructions`: parts (or a string) as one system message.
fn system_unit(value: &AnyValue) -> Unit {
    let mut unit = Unit::new(Role::System);
    let mut texts = Vec::new();
    let mut ignored = Vec::new();
    match json_value(value) {
        Value::Array(parts) => {
            for part in &parts {
                parse_part(part, &mut unit, &mut texts, &mut ignored);
            }
        }
        Value::String(s) => texts.push(s),
        obj @ Value::Object(_) => parse_part(&obj, &mut unit, &mut texts, &mut ignored),
        _ => {}
    }
    unit.text = texts.join("\n");
    unit
}

/// Indexed attributes: OpenLLMetry `gen_ai.prompt.N.role|content|tool_call_id|finish_reason` and
/// `gen_ai.completion.N.tool_calls.M.id|name|arguments`; OpenInference `llm.input_messages.N.message.role|content`
/// and `...message.tool_calls.M.tool_call.id|function.name|function.arguments`. Gaps in N keep their position.
fn indexed_messages(span: &Span, prefix: &str, default_role: Role) -> Vec<Vec<Unit>> {
    let mut fields: BTreeMap<usize, BTreeMap<&str, &AnyValue>> = BTreeMap::new();
    for kv in &span.attributes {
        let Some(rest) = kv.key.strip_prefix(prefix) else { continue };
        let Some((index, field)) = rest.split_once('.') else { continue };
        let Some(index) = index.parse::<usize>().ok().filter(|i| *i < MAX_INDEXED) else { continue };
        let field = field.strip_prefix("message.").unwrap_or(field);
        fields.entry(index).or_default().insert(field, &kv.value);
    }
    let Some(&last) = fields.keys().next_back() else { return Vec::new() };
    let mut out = vec![Vec::new(); last + 1];
    for (index, f) in fields {
        let mut msg = Map::new();
        if let Some(role) = f.get("role").and_then(|v| any_string(v)) {
            msg.insert("role".into(), Value::String(role));
        }
        if let Some(content) = f.get("content") {
            // OpenLLMetry serializes block lists (Anthropic content) as JSON text.
            let content = match json_value(content) {
                Value::Array(blocks) if blocks.iter().all(|b| b.get("type").is_some()) => Value::Array(blocks),
                _ => to_json(content),
            };
            msg.insert("content".into(), content);
        }
        for key in ["tool_call_id", "finish_reason"] {
            if let Some(v) = f.get(key) {
                msg.insert(key.into(), to_json(v));
            }
        }
        let mut calls: BTreeMap<usize, Map<String, Value>> = BTreeMap::new();
        for (field, value) in &f {
            let Some(rest) = field.strip_prefix("tool_calls.") else { continue };
            let Some((m, key)) = rest.split_once('.') else { continue };
            let Ok(m) = m.parse::<usize>() else { continue };
            let key = key.strip_prefix("tool_call.").unwrap_or(key);
            let key = key.strip_prefix("function.").unwrap_or(key);
            calls.entry(m).or_default().insert(key.to_owned(), to_json(value));
        }
        if !calls.is_empty() {
            msg.insert("tool_calls".into(), Value::Array(calls.into_values().map(Value::Object).collect()));
        }
        out[index] = parse_message(&Value::Object(msg), default_role);
    }
    out
}

/// A stored message from a unit: the dedupe id (module docs), content truncated at a character boundary to
/// [`MAX_CONTENT_BYTES`] (NULs replaced), and metadata for tool calls, reasoning and unknown parts.
fn build_message(unit: &Unit, position: &str, at: OffsetDateTime) -> IngestMessage {
    let id = message_key(unit.role, &canonical(unit), position);
    let (content, truncated) = fit_content(&unit.text);
    let mut message = IngestMessage::new(Some(id), unit.role, content, at);
    let metadata = &mut message.metadata;
    if !unit.tool_calls.is_empty() {
        let calls = unit
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "name": c.name, "arguments": c.arguments}))
            .collect::<Vec<_>>();
        metadata.insert("tool_calls".into(), Value::Array(calls));
    }
    if let Some(id) = &unit.tool_call_id {
        metadata.insert("tool_call_id".into(), Value::String(id.clone()));
    }
    if !unit.reasoning.is_empty() {
        metadata.insert("reasoning".into(), Value::String(unit.reasoning.join("\n")));
    }
    if !unit.other.is_empty() {
        metadata.insert("parts".into(), Value::Array(unit.other.clone()));
    }
    if truncated {
        metadata.insert("truncated".into(), Value::Bool(true));
    }
    fit_metadata(metadata);
    message.finish_reason = unit.finish_reason.clone();
    message
}

/// The span-independent form hashed into a message id: text, tool call ids and names, the answered call's id.
fn canonical(unit: &Unit) -> String {
    let calls: Vec<Value> = unit.tool_calls.iter().map(|c| json!([c.id, c.name])).collect();
    json!([unit.text, calls, unit.tool_call_id]).to_string()
}

/// `o_` + the first 128 bits of SHA-256 over role, canonical form and position, hex.
fn message_key(role: Role, canonical: &str, position: &str) -> String {
    let mut h = Sha256::new();
    h.update(role.as_str().as_bytes());
    h.update([0]);
    h.update(canonical.as_bytes());
    h.update([0]);
    h.update(position.as_bytes());
    let digest = h.finalize();
    format!("o_{}", hex(&digest[..16]))
}

/// The content to store: NULs replaced (PostgreSQL text cannot hold them), cut at a character boundary to
/// [`MAX_CONTENT_BYTES`]. Returns whether it was cut.
fn fit_content(text: &str) -> (String, bool) {
    let mut content = if text.contains('\0') { text.replace('\0', "\u{fffd}") } else { text.to_owned() };
    if content.len() <= MAX_CONTENT_BYTES {
        return (content, false);
    }
    let mut cut = MAX_CONTENT_BYTES;
    while !content.is_char_boundary(cut) {
        cut -= 1;
    }
    content.truncate(cut);
    (content, true)
}

/// Keeps message metadata within [`MAX_METADATA_BYTES`] by dropping, in turn, unknown parts, reasoning, evaluation
/// explanations, and tool call arguments (then the calls themselves).
fn fit_metadata(metadata: &mut Map<String, Value>) {
    let fits = |m: &Map<String, Value>| serde_json::to_vec(m).map(|v| v.len() <= MAX_METADATA_BYTES).unwrap_or(false);
    if fits(metadata) {
        return;
    }
    for key in ["parts", "reasoning", "evaluations"] {
        if metadata.remove(key).is_some() {
            metadata.insert("dropped_".to_owned() + key, Value::Bool(true));
            if fits(metadata) {
                return;
            }
        }
    }
    if let Some(Value::Array(calls)) = metadata.get_mut("tool_calls") {
        for call in calls.iter_mut() {
            if let Some(obj) = call.as_object_mut() {
                obj.insert("arguments".into(), Value::Null);
            }
        }
        metadata.insert("dropped_tool_call_arguments".into(), Value::Bool(true));
        if fits(metadata) {
            return;
        }
    }
    metadata.remove("tool_calls");
    metadata.remove("error");
}

// --- usage and errors -----------------------------------------------------------------------------------------------

/// Model, provider, ids, cache tokens, operation and evaluations of a call, for its output message's metadata.
fn usage_metadata(span: &Span) -> Map<String, Value> {
    let mut m = Map::new();
    let model = ["gen_ai.response.model", "gen_ai.request.model", "ai.response.model", "ai.model.id", "llm.model_name"]
        .iter()
        .find_map(|k| attr_string(span, k));
    if let Some(model) = model {
        m.insert("model".into(), Value::String(model));
    }
    let provider = ["gen_ai.provider.name", "gen_ai.system", "ai.model.provider", "llm.provider", "llm.system"]
        .iter()
        .find_map(|k| attr_string(span, k));
    if let Some(provider) = provider {
        m.insert("provider".into(), Value::String(provider));
    }
    m.insert("trace_id".into(), Value::String(hex(&span.trace_id)));
    m.insert("span_id".into(), Value::String(hex(&span.span_id)));
    if let Some(id) = attr_string(span, "gen_ai.response.id") {
        m.insert("response_id".into(), Value::String(id));
    }
    let cache_read = ["gen_ai.usage.cache_read.input_tokens", "llm.token_count.prompt_details.cache_read"];
    if let Some(n) = cache_read.iter().find_map(|k| attr_i64(span, k)) {
        m.insert("cache_read_input_tokens".into(), Value::from(n));
    }
    let cache_write = [
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "llm.token_count.prompt_details.cache_write",
    ];
    if let Some(n) = cache_write.iter().find_map(|k| attr_i64(span, k)) {
        m.insert("cache_write_input_tokens".into(), Value::from(n));
    }
    if let Some(op) = attr_string(span, "gen_ai.operation.name").or_else(|| attr_string(span, "ai.operationId")) {
        m.insert("operation".into(), Value::String(op));
    }
    let evaluations: Vec<Value> = span
        .events
        .iter()
        .filter(|e| e.name == "gen_ai.evaluation.result")
        .map(|e| {
            let get = |k: &str| e.attributes.iter().find(|kv| kv.key == k).map(|kv| &kv.value);
            let mut ev = Map::new();
            for (field, key) in [
                ("name", "gen_ai.evaluation.name"),
                ("score_value", "gen_ai.evaluation.score.value"),
                ("score_label", "gen_ai.evaluation.score.label"),
                ("explanation", "gen_ai.evaluation.explanation"),
                ("error_type", "error.type"),
            ] {
                if let Some(v) = get(key) {
                    ev.insert(field.into(), to_json(v));
                }
            }
            Value::Object(ev)
        })
        .collect();
    if !evaluations.is_empty() {
        m.insert("evaluations".into(), Value::Array(evaluations));
    }
    m
}

/// Tokens, latency and time to first chunk on the output message, and the call's metadata.
fn apply_usage(message: &mut IngestMessage, span: &Span, usage: &Map<String, Value>) {
    message.input_tokens = [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
        "ai.usage.promptTokens",
        "ai.usage.inputTokens",
    ]
    .iter()
    .find_map(|k| attr_i64(span, k));
    message.output_tokens = [
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
        "ai.usage.completionTokens",
        "ai.usage.outputTokens",
    ]
    .iter()
    .find_map(|k| attr_i64(span, k));
    let nanos = span.end_unix_nano.saturating_sub(span.start_unix_nano);
    message.latency_ms = i64::try_from(nanos / 1_000_000).ok();
    message.ttft_ms = attr_f64(span, "gen_ai.response.time_to_first_chunk")
        .map(|s| s * 1000.0)
        .or_else(|| attr_f64(span, "ai.response.msToFirstChunk"))
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| ms.round() as i64);
    for (k, v) in usage {
        message.metadata.insert(k.clone(), v.clone());
    }
}

fn error_metadata(metadata: &mut Map<String, Value>, span: &Span) {
    if let Some(error_type) = attr_string(span, "error.type") {
        metadata.insert("error_type".into(), Value::String(error_type));
    }
    if let Some(message) = &span.status_message {
        metadata.insert("error".into(), Value::String(message.clone()));
    }
}

/// `gen_ai.response.finish_reasons` (a string array, or one string), one per choice.
fn finish_reasons(span: &Span) -> Vec<String> {
    match span.get("gen_ai.response.finish_reasons") {
        Some(AnyValue::Array(values)) => values.iter().filter_map(any_string).collect(),
        Some(other) => match json_value(other) {
            Value::Array(values) => values.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            Value::String(s) if !s.is_empty() => vec![s],
            _ => Vec::new(),
        },
        None => Vec::new(),
    }
}

// --- attribute helpers ----------------------------------------------------------------------------------------------

/// The first of `keys` that is set.
fn attr<'a>(span: &'a Span, keys: &[&str]) -> Option<&'a AnyValue> {
    keys.iter().find_map(|k| span.get(k))
}

/// A string (or integer) attribute, trimmed; blank is absent.
fn attr_string(span: &Span, key: &str) -> Option<String> {
    span.get(key).and_then(any_string)
}

fn any_string(value: &AnyValue) -> Option<String> {
    match value {
        AnyValue::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
        AnyValue::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// An integer attribute; integral doubles and decimal strings are accepted too.
fn attr_i64(span: &Span, key: &str) -> Option<i64> {
    match span.get(key)? {
        AnyValue::Int(i) => Some(*i),
        AnyValue::Double(d) if d.fract() == 0.0 && d.is_finite() && d.abs() < 9.0e15 => Some(*d as i64),
        AnyValue::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn attr_f64(span: &Span, key: &str) -> Option<f64> {
    match span.get(key)? {
        AnyValue::Double(d) => Some(*d),
        AnyValue::Int(i) => Some(*i as f64),
        AnyValue::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn str_field(obj: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match obj.get(*k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A tool result or odd content as text: a string as-is, anything else as JSON.
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An attribute value as JSON (key-value lists become objects, bytes hex).
fn to_json(value: &AnyValue) -> Value {
    match value {
        AnyValue::String(s) => Value::String(s.clone()),
        AnyValue::Bool(b) => Value::Bool(*b),
        AnyValue::Int(i) => Value::from(*i),
        AnyValue::Double(d) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
        AnyValue::Array(values) => Value::Array(values.iter().map(to_json).collect()),
        AnyValue::KvList(kvs) => Value::Object(kvs.iter().map(|kv| (kv.key.clone(), to_json(&kv.value))).collect()),
        AnyValue::Bytes(bytes) => Value::String(hex(bytes)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use mentorfy_otlp::{KeyValue, Resource, SpanEvent, SpanKind, encode_protobuf};

    use super::*;

    const SPEC_EXAMPLE: &str = r#"{
      "resourceSpans": [ {
        "resource": { "attributes": [
          { "key": "service.name", "value": { "stringValue": "chat-backend" } },
          { "key": "deployment.environment.name", "value": { "stringValue": "production" } } ] },
        "scopeSpans": [ {
          "scope": { "name": "chat-backend.llm", "version": "0.1.0" },
          "spans": [ {
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
            "parentSpanId": "eee19b7ec3c1b173",
            "name": "chat claude-sonnet-4-5-20250929",
            "kind": 3,
            "startTimeUnixNano": "1763776800000000000",
            "endTimeUnixNano": "1763776801400000000",
            "attributes": [
              { "key": "gen_ai.operation.name", "value": { "stringValue": "chat" } },
              { "key": "gen_ai.provider.name", "value": { "stringValue": "anthropic" } },
              { "key": "gen_ai.request.model", "value": { "stringValue": "claude-sonnet-4-5-20250929" } },
              { "key": "gen_ai.request.stream", "value": { "boolValue": true } },
              { "key": "gen_ai.request.max_tokens", "value": { "intValue": "4096" } },
              { "key": "gen_ai.response.id", "value": { "stringValue": "msg_01AbC" } },
              { "key": "gen_ai.response.model", "value": { "stringValue": "claude-sonnet-4-5-20250929" } },
              { "key": "gen_ai.response.finish_reasons", "value": { "arrayValue": { "values": [ { "stringValue": "end_turn" } ] } } },
              { "key": "gen_ai.response.time_to_first_chunk", "value": { "doubleValue": 0.42 } },
              { "key": "gen_ai.usage.input_tokens", "value": { "intValue": "812" } },
              { "key": "gen_ai.usage.cache_read.input_tokens", "value": { "intValue": "512" } },
              { "key": "gen_ai.usage.output_tokens", "value": { "intValue": "143" } },
              { "key": "gen_ai.conversation.id", "value": { "stringValue": "chat_8f2c" } },
              { "key": "session.id", "value": { "stringValue": "chat_8f2c" } },
              { "key": "user.id", "value": { "stringValue": "user_2abc" } },
              { "key": "server.address", "value": { "stringValue": "api.anthropic.com" } },
              { "key": "server.port", "value": { "intValue": "443" } },
              { "key": "gen_ai.input.messages", "value": { "stringValue": "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"Why does my borrow checker complain?\"}]}]" } },
              { "key": "gen_ai.output.messages", "value": { "stringValue": "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"Because x is moved into the closure.\"}],\"finish_reason\":\"stop\"}]" } }
            ],
            "status": { "code": 0 }
          } ]
        } ]
      } ]
    }"#;

    const START: u64 = 1_763_776_800_000_000_000;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-11-29 12:00 UTC)
    }

    fn resource() -> Vec<KeyValue> {
        vec![KeyValue::new("service.name", "chat-backend"), KeyValue::new("deployment.environment.name", "staging")]
    }

    /// A span of `conversation` from `start_s` to `start_s + 1` seconds after [`START`], with `attrs`.
    fn span(name: &str, conversation: Option<&str>, start_s: u64, attrs: Vec<(&str, AnyValue)>) -> DecodedSpan {
        let mut s = Span::start([7; 16], None, name, SpanKind::Client);
        s.start_unix_nano = START + start_s * 1_000_000_000;
        s.end_unix_nano = s.start_unix_nano + 1_000_000_000;
        if let Some(c) = conversation {
            s.attr("gen_ai.conversation.id", c);
        }
        for (k, v) in attrs {
            s.attr(k, v);
        }
        DecodedSpan { resource: resource(), scope_name: "test".into(), scope_version: String::new(), span: s }
    }

    fn chat(conversation: &str, start_s: u64, input: &str, output: &str) -> DecodedSpan {
        span(
            "chat m",
            Some(conversation),
            start_s,
            vec![
                ("gen_ai.operation.name", "chat".into()),
                ("gen_ai.input.messages", input.into()),
                ("gen_ai.output.messages", output.into()),
            ],
        )
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn contents(c: &IngestConversation) -> Vec<(Role, &str)> {
        c.messages.iter().map(|m| (m.role, m.content.as_str())).collect()
    }

    fn check_spec_mapping(m: &SpanMapping) {
        assert_eq!((m.rejected_spans, m.ignored_spans), (0, 0), "{:?}", m.rejections);
        assert_eq!(m.conversations.len(), 1);
        let c = &m.conversations[0];
        assert_eq!(c.external_id, "chat_8f2c");
        assert_eq!(c.environment.as_deref(), Some("production"));
        assert_eq!(c.user_id.as_deref(), Some("user_2abc"));
        assert_eq!(c.metadata.get("service.name"), Some(&json!("chat-backend")));
        assert_eq!(
            contents(c),
            vec![
                (Role::User, "Why does my borrow checker complain?"),
                (Role::Assistant, "Because x is moved into the closure.")
            ]
        );
        let (user, reply) = (&c.messages[0], &c.messages[1]);
        assert!(user.external_id.starts_with("o_") && user.external_id.len() == 34, "{}", user.external_id);
        assert_eq!(user.created_at.unix_timestamp_nanos(), i128::from(START));
        assert_eq!(reply.created_at.unix_timestamp_nanos(), i128::from(START) + 1_400_000_000);
        assert_eq!((reply.input_tokens, reply.output_tokens), (Some(812), Some(143)));
        assert_eq!((reply.ttft_ms, reply.latency_ms), (Some(420), Some(1400)));
        assert_eq!(reply.finish_reason.as_deref(), Some("end_turn"));
        assert_eq!(reply.status, "complete");
        assert_eq!(user.input_tokens, None);
        let md = &reply.metadata;
        assert_eq!(md["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(md["provider"], "anthropic");
        assert_eq!(md["trace_id"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(md["span_id"], "eee19b7ec3c1b174");
        assert_eq!(md["cache_read_input_tokens"], 512);
        assert_eq!(md["operation"], "chat");
    }

    #[test]
    fn the_spec_example_maps_to_one_conversation_with_usage() {
        let spans = decode_request(SPEC_EXAMPLE.as_bytes(), Some("application/json"), None, 1 << 20).unwrap();
        check_spec_mapping(&conversations_from_spans(&spans, now()));
        // Charset parameters and case are ignored; gzip of JSON works as well.
        let gz = gzip(SPEC_EXAMPLE.as_bytes());
        let again = decode_request(&gz, Some("Application/JSON; charset=utf-8"), Some("GZIP"), 1 << 20).unwrap();
        assert_eq!(again, spans);
    }

    #[test]
    fn the_same_request_as_gzipped_protobuf_maps_identically() {
        let json_spans = decode_request(SPEC_EXAMPLE.as_bytes(), Some("application/json"), None, 1 << 20).unwrap();
        let mut s = json_spans[0].span.clone();
        // Rebuild the span with the builder, as an emitter would.
        let mut built = Span::start(s.trace_id, s.parent_span_id, s.name.clone(), SpanKind::Client);
        built.span_id = s.span_id;
        built.start_unix_nano = s.start_unix_nano;
        built.end_unix_nano = s.end_unix_nano;
        for kv in s.attributes.drain(..) {
            built.attr(&kv.key, kv.value);
        }
        let resource = Resource::new("chat-backend", "").attr("deployment.environment.name", "production");
        let body = gzip(&encode_protobuf(&resource, &[built]));
        let spans = decode_request(&body, Some("application/x-protobuf"), Some("gzip"), 1 << 20).unwrap();
        let mapping = conversations_from_spans(&spans, now());
        check_spec_mapping(&mapping);
        assert_eq!(mapping, conversations_from_spans(&json_spans, now()));
        assert!(decode_request(&body, Some("application/protobuf"), Some("gzip"), 1 << 20).is_ok());
    }

    #[test]
    fn consecutive_calls_of_one_conversation_share_their_history() {
        let u0 = r#"{"role":"user","parts":[{"type":"text","content":"What is a borrow?"}]}"#;
        let a1 = r#"{"role":"assistant","parts":[{"type":"text","content":"A reference."}]}"#;
        let a1_out =
            r#"{"role":"assistant","parts":[{"type":"text","content":"A reference."}],"finish_reason":"stop"}"#;
        let u2 = r#"{"role":"user","parts":[{"type":"text","content":"Mutable too?"}]}"#;
        let a3 = r#"{"role":"assistant","parts":[{"type":"text","content":"Yes, one at a time."}]}"#;
        let mut first = chat("c1", 0, &format!("[{u0}]"), &format!("[{a1_out}]"));
        first.span.attr("gen_ai.usage.output_tokens", 5);
        let second = chat("c1", 10, &format!("[{u0},{a1},{u2}]"), &format!("[{a3}]"));
        // Order in the request does not matter.
        let m = conversations_from_spans(&[second.clone(), first.clone()], now());
        assert_eq!(m.conversations.len(), 1);
        let c = &m.conversations[0];
        assert_eq!(
            contents(c),
            vec![
                (Role::User, "What is a borrow?"),
                (Role::Assistant, "A reference."),
                (Role::User, "Mutable too?"),
                (Role::Assistant, "Yes, one at a time.")
            ]
        );
        // The first reply is the first call's output (with its usage), not the second call's copy.
        assert_eq!(c.messages[1].output_tokens, Some(5));
        assert!(c.messages.windows(2).all(|w| w[0].created_at <= w[1].created_at));
        // Ids do not depend on the span: each call alone yields the same ids for the shared messages.
        let alone = conversations_from_spans(&[second], now());
        let ids: Vec<&str> = alone.conversations[0].messages.iter().map(|m| m.external_id.as_str()).collect();
        let merged: Vec<&str> = c.messages.iter().map(|m| m.external_id.as_str()).collect();
        assert_eq!(ids, merged);
        let first_alone = conversations_from_spans(&[first], now());
        assert_eq!(first_alone.conversations[0].messages[1].external_id, merged[1]);
    }

    #[test]
    fn tool_calls_and_results_dedupe_across_calls() {
        let u0 = r#"{"role":"user","parts":[{"type":"text","content":"Weather in Paris?"}]}"#;
        let call = r#"{"role":"assistant","parts":[{"type":"reasoning","content":"need a tool"},{"type":"tool_call","id":"call_1","name":"get_weather","arguments":{"city":"Paris"}}],"finish_reason":"tool_call"}"#;
        let call_in = r#"{"role":"assistant","parts":[{"type":"tool_call","id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}]}"#;
        let result =
            r#"{"role":"tool","parts":[{"type":"tool_call_response","id":"call_1","response":"rainy, 14°C"}]}"#;
        let answer = r#"{"role":"assistant","parts":[{"type":"text","content":"Rainy."}]}"#;
        let a = chat("c1", 0, &format!("[{u0}]"), &format!("[{call}]"));
        let b = chat("c1", 5, &format!("[{u0},{call_in},{result}]"), &format!("[{answer}]"));
        let m = conversations_from_spans(&[a, b], now());
        let c = &m.conversations[0];
        assert_eq!(
            contents(c),
            vec![
                (Role::User, "Weather in Paris?"),
                (Role::Assistant, ""),
                (Role::Tool, "rainy, 14°C"),
                (Role::Assistant, "Rainy.")
            ]
        );
        let calls = &c.messages[1].metadata["tool_calls"];
        assert_eq!(calls, &json!([{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]));
        assert_eq!(c.messages[1].metadata["reasoning"], "need a tool");
        assert_eq!(c.messages[1].finish_reason.as_deref(), Some("tool_call"));
        assert_eq!(c.messages[2].metadata["tool_call_id"], "call_1");
    }

    #[test]
    fn older_attribute_names_map() {
        let d = span(
            "chat gpt-4o",
            None,
            0,
            vec![
                ("session.id", "s1".into()),
                ("langfuse.user.id", "u9".into()),
                ("gen_ai.system", "openai".into()),
                ("gen_ai.request.model", "gpt-4o".into()),
                ("gen_ai.usage.prompt_tokens", 20.into()),
                ("gen_ai.usage.completion_tokens", 7.into()),
                ("gen_ai.usage.cache_creation.input_tokens", 3.into()),
                ("gen_ai.prompt", r#"[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]"#.into()),
                ("gen_ai.completion", r#"[{"role":"assistant","content":"Hello!","finish_reason":"stop"}]"#.into()),
            ],
        );
        let m = conversations_from_spans(&[d], now());
        assert_eq!(m.rejected_spans, 0, "{:?}", m.rejections);
        let c = &m.conversations[0];
        assert_eq!((c.external_id.as_str(), c.user_id.as_deref()), ("s1", Some("u9")));
        assert_eq!(c.environment.as_deref(), Some("staging"));
        assert_eq!(contents(c), vec![(Role::System, "Be brief."), (Role::User, "Hi"), (Role::Assistant, "Hello!")]);
        let reply = &c.messages[2];
        assert_eq!((reply.input_tokens, reply.output_tokens), (Some(20), Some(7)));
        assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
        assert_eq!(reply.metadata["provider"], "openai");
        assert_eq!(reply.metadata["model"], "gpt-4o");
        assert_eq!(reply.metadata["cache_write_input_tokens"], 3);
    }

    #[test]
    fn openllmetry_indexed_attributes_map() {
        let d = span(
            "openai.chat",
            None,
            0,
            vec![
                ("langfuse.session.id", "s2".into()),
                ("gen_ai.system", "openai".into()),
                ("gen_ai.prompt.0.role", "system".into()),
                ("gen_ai.prompt.0.content", "Be brief.".into()),
                ("gen_ai.prompt.1.role", "user".into()),
                ("gen_ai.prompt.1.content", "Weather?".into()),
                ("gen_ai.completion.0.role", "assistant".into()),
                ("gen_ai.completion.0.finish_reason", "tool_calls".into()),
                ("gen_ai.completion.0.tool_calls.0.id", "call_9".into()),
                ("gen_ai.completion.0.tool_calls.0.name", "get_weather".into()),
                ("gen_ai.completion.0.tool_calls.0.arguments", r#"{"city":"Oslo"}"#.into()),
                ("gen_ai.usage.prompt_tokens", 11.into()),
            ],
        );
        let m = conversations_from_spans(&[d], now());
        assert_eq!(m.rejected_spans, 0, "{:?}", m.rejections);
        let c = &m.conversations[0];
        assert_eq!(c.external_id, "s2");
        assert_eq!(contents(c), vec![(Role::System, "Be brief."), (Role::User, "Weather?"), (Role::Assistant, "")]);
        let reply = &c.messages[2];
        assert_eq!(reply.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(reply.input_tokens, Some(11));
        assert_eq!(reply.metadata["tool_calls"][0]["name"], "get_weather");
        assert_eq!(reply.metadata["tool_calls"][0]["id"], "call_9");
    }

    #[test]
    fn openinference_and_vercel_spans_map() {
        let oi = span(
            "ChatCompletion",
            None,
            0,
            vec![
                ("session.id", "oi".into()),
                ("openinference.span.kind", "LLM".into()),
                ("llm.model_name", "gpt-4o-mini".into()),
                ("llm.input_messages.0.message.role", "user".into()),
                ("llm.input_messages.0.message.content", "Hi".into()),
                ("llm.output_messages.0.message.role", "assistant".into()),
                ("llm.output_messages.0.message.content", "Hey".into()),
                ("llm.token_count.prompt", 4.into()),
                ("llm.token_count.completion", 2.into()),
            ],
        );
        let vercel = span(
            "ai.generateText.doGenerate",
            None,
            5,
            vec![
                ("ai.telemetry.metadata.sessionId", "v1".into()),
                ("ai.telemetry.metadata.plan", "pro".into()),
                ("ai.model.id", "claude-haiku".into()),
                (
                    "ai.prompt.messages",
                    r#"[{"role":"system","content":"Terse."},{"role":"user","content":[{"type":"text","text":"Ping"}]}]"#.into(),
                ),
                ("ai.response.text", "Pong".into()),
                ("ai.usage.promptTokens", 9.into()),
                ("ai.usage.completionTokens", 1.into()),
            ],
        );
        let mut outer = span("ai.generateText", None, 5, vec![("ai.telemetry.metadata.sessionId", "v1".into())]);
        outer.span.attr("ai.operationId", "ai.generateText");
        outer.span.attr("ai.response.text", "Pong");
        let m = conversations_from_spans(&[oi, vercel, outer], now());
        assert_eq!((m.rejected_spans, m.ignored_spans), (0, 1), "{:?}", m.rejections);
        let (a, b) = (&m.conversations[0], &m.conversations[1]);
        assert_eq!(contents(a), vec![(Role::User, "Hi"), (Role::Assistant, "Hey")]);
        assert_eq!((a.messages[1].input_tokens, a.messages[1].output_tokens), (Some(4), Some(2)));
        assert_eq!(a.messages[1].metadata["model"], "gpt-4o-mini");
        assert_eq!(b.external_id, "v1");
        assert_eq!(b.metadata["plan"], "pro");
        assert_eq!(contents(b), vec![(Role::System, "Terse."), (Role::User, "Ping"), (Role::Assistant, "Pong")]);
        assert_eq!((b.messages[2].input_tokens, b.messages[2].output_tokens), (Some(9), Some(1)));
        assert_eq!(b.messages[2].metadata["model"], "claude-haiku");
    }

    #[test]
    fn structured_message_values_map_like_json_strings() {
        let text_part = |t: &str| AnyValue::KvList(vec![KeyValue::new("type", "text"), KeyValue::new("content", t)]);
        let message = |role: &str, t: &str| {
            AnyValue::KvList(vec![
                KeyValue::new("role", role),
                KeyValue::new("parts", AnyValue::Array(vec![text_part(t)])),
            ])
        };
        let structured = span(
            "chat m",
            Some("c1"),
            0,
            vec![
                ("gen_ai.operation.name", "chat".into()),
                ("gen_ai.system_instructions", AnyValue::Array(vec![text_part("Be kind.")])),
                ("gen_ai.input.messages", AnyValue::Array(vec![message("user", "Hi")])),
                ("gen_ai.output.messages", AnyValue::Array(vec![message("assistant", "Hello")])),
            ],
        );
        let m = conversations_from_spans(&[structured], now());
        let c = &m.conversations[0];
        assert_eq!(contents(c), vec![(Role::System, "Be kind."), (Role::User, "Hi"), (Role::Assistant, "Hello")]);
        let json = chat(
            "c1",
            0,
            r#"[{"role":"system","parts":[{"type":"text","content":"Be kind."}]},{"role":"user","parts":[{"type":"text","content":"Hi"}]}]"#,
            r#"[{"role":"assistant","parts":[{"type":"text","content":"Hello"}]}]"#,
        );
        let same = conversations_from_spans(&[json], now());
        let ids = |c: &IngestConversation| c.messages.iter().map(|m| m.external_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(c), ids(&same.conversations[0]));
    }

    #[test]
    fn a_span_without_a_conversation_id_is_rejected_and_the_others_still_map() {
        let good = chat("c1", 0, r#"[{"role":"user","content":"hi"}]"#, r#"[{"role":"assistant","content":"yo"}]"#);
        let mut orphan = good.clone();
        orphan.span.attributes.retain(|kv| kv.key != "gen_ai.conversation.id");
        let mut future = good.clone();
        future.span.start_unix_nano = 4_000_000_000_000_000_000;
        future.span.end_unix_nano = future.span.start_unix_nano;
        let mut unstarted = good.clone();
        unstarted.span.start_unix_nano = 0;
        let m = conversations_from_spans(&[orphan.clone(), good, orphan, future, unstarted], now());
        assert_eq!(m.conversations.len(), 1);
        assert_eq!(m.conversations[0].messages.len(), 2);
        assert_eq!(m.rejected_spans, 4);
        assert_eq!(m.rejections.len(), 3, "distinct reasons: {:?}", m.rejections);
        assert!(m.rejections.iter().any(|r| r == "no gen_ai.conversation.id or session.id"), "{:?}", m.rejections);
        assert!(m.rejections.iter().any(|r| r.contains("future")), "{:?}", m.rejections);
    }

    fn failed_call() -> DecodedSpan {
        let mut d = span(
            "chat m",
            Some("c1"),
            0,
            vec![
                ("gen_ai.operation.name", "chat".into()),
                ("gen_ai.input.messages", r#"[{"role":"user","parts":[{"type":"text","content":"hi"}]}]"#.into()),
            ],
        );
        d.span.error("overloaded_error", "Overloaded");
        d
    }

    #[test]
    fn a_failed_call_without_output_yields_an_error_message() {
        let m = conversations_from_spans(&[failed_call()], now());
        let c = &m.conversations[0];
        assert_eq!(contents(c), vec![(Role::User, "hi"), (Role::Assistant, "")]);
        let failed = &c.messages[1];
        assert_eq!(failed.status, "error");
        assert_eq!(failed.metadata["error_type"], "overloaded_error");
        assert_eq!(failed.metadata["error"], "Overloaded");
        assert_eq!(failed.latency_ms, Some(1000));
        // A retry that fails too is a second failure, not a duplicate of the first.
        let mut retry = failed_call();
        retry.span.span_id = [9; 8];
        retry.span.start_unix_nano += 2_000_000_000;
        retry.span.end_unix_nano += 2_000_000_000;
        let both = conversations_from_spans(&[failed_call(), retry], now());
        assert_eq!(both.conversations[0].messages.len(), 3);
    }

    #[test]
    fn a_failed_call_with_output_stays_complete_and_records_the_error() {
        let mut d =
            chat("c1", 0, r#"[{"role":"user","content":"hi"}]"#, r#"[{"role":"assistant","content":"partial"}]"#);
        d.span.error("timeout", "stream timed out");
        d.span.attr("gen_ai.response.finish_reasons", ["error"]);
        let m = conversations_from_spans(&[d], now());
        let reply = &m.conversations[0].messages[1];
        assert_eq!((reply.status, reply.content.as_str()), ("complete", "partial"));
        assert_eq!(reply.metadata["error_type"], "timeout");
        assert_eq!(reply.finish_reason.as_deref(), Some("error"));
    }

    #[test]
    fn spans_that_are_not_model_calls_are_ignored() {
        let agent = span("invoke_agent mentor", Some("c1"), 0, vec![("gen_ai.operation.name", "invoke_agent".into())]);
        let tool = span("execute_tool x", Some("c1"), 0, vec![("gen_ai.operation.name", "execute_tool".into())]);
        let http = span("GET /", None, 0, vec![("http.request.method", "GET".into())]);
        let m = conversations_from_spans(&[agent, tool, http], now());
        assert_eq!((m.ignored_spans, m.rejected_spans, m.conversations.len()), (3, 0, 0));
    }

    #[test]
    fn evaluations_and_long_content_are_kept() {
        let big = "é".repeat(MAX_CONTENT_BYTES); // two bytes each: twice the limit
        let output = json!([{"role": "assistant", "parts": [{"type": "text", "content": big}]}]).to_string();
        let mut d = chat("c1", 0, r#"[{"role":"user","content":"long please"}]"#, &output);
        d.span.event(
            SpanEvent::new("gen_ai.evaluation.result")
                .attr("gen_ai.evaluation.name", "helpfulness")
                .attr("gen_ai.evaluation.score.value", 0.82)
                .attr("gen_ai.evaluation.score.label", "pass"),
        );
        let m = conversations_from_spans(&[d], now());
        let reply = &m.conversations[0].messages[1];
        assert_eq!(reply.content.len(), MAX_CONTENT_BYTES);
        assert_eq!(reply.metadata["truncated"], true);
        assert_eq!(
            reply.metadata["evaluations"],
            json!([{"name": "helpfulness", "score_value": 0.82, "score_label": "pass"}])
        );
    }

    #[test]
    fn decoding_refuses_bombs_garbage_and_unknown_types() {
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 100 * 1024);
        let err = decode_request(&bomb, Some("application/x-protobuf"), Some("gzip"), 1 << 20).unwrap_err();
        assert_eq!(err, OtelDecodeError::TooLarge { limit: 1 << 20 });
        let err = decode_request(&[0xff; 64], Some("application/x-protobuf"), None, 1 << 20).unwrap_err();
        assert!(matches!(err, OtelDecodeError::Malformed(_)), "{err:?}");
        let err = decode_request(b"{not json", Some("application/json"), None, 1 << 20).unwrap_err();
        assert!(matches!(err, OtelDecodeError::Malformed(_)), "{err:?}");
        let err = decode_request(b"not gzip", Some("application/json"), Some("gzip"), 1 << 20).unwrap_err();
        assert!(matches!(err, OtelDecodeError::Malformed(_)), "{err:?}");
        let err = decode_request(b"{}", Some("text/plain"), None, 1 << 20).unwrap_err();
        assert_eq!(err, OtelDecodeError::UnsupportedMediaType("text/plain".into()));
        assert!(matches!(decode_request(b"{}", None, None, 1 << 20), Err(OtelDecodeError::UnsupportedMediaType(_))));
        let err = decode_request(b"{}", Some("application/json"), Some("br"), 1 << 20).unwrap_err();
        assert_eq!(err, OtelDecodeError::UnsupportedEncoding("br".into()));
        assert_eq!(decode_request(b"{}", Some("application/json"), Some("identity"), 1 << 20).unwrap(), vec![]);
        let err = decode_request(&[b' '; 100], Some("application/json"), None, 10).unwrap_err();
        assert_eq!(err, OtelDecodeError::TooLarge { limit: 10 });
    }
}
