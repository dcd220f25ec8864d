//! Every LLM call becomes an `llm_calls` row and, when a collector is configured, an OTLP span with the GenAI
//! semantic conventions (`shared/specs/otlp-genai.md`). One trace per user turn: an `invoke_agent` root span,
//! a `chat {model}` client span per LLM call, an `execute_tool {name}` span per tool run.
//! Recording never fails the caller: a store error is logged; the exporter's queue is bounded and lossy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mentorfy_llm::{ChatRequest, Completion, Content, Message, PriceTable, ProviderKind, Role, Usage};
use mentorfy_otlp::{Exporter, Span, SpanId, SpanKind, TraceId};
use mentorfy_store::{LlmCallRow, Store};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

/// What every span and row of one trace shares.
#[derive(Clone, Debug)]
pub struct TraceScope {
    pub trace_id: TraceId,
    /// The `invoke_agent` span every call of the turn hangs under.
    pub root_span: SpanId,
    pub operation: &'static str,
    pub session_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    /// The assistant message the calls produce (`messages.id`), when there is one.
    pub message_id: Option<Uuid>,
    /// `gen_ai.conversation.id` and `session.id`: the session id, the id the UI knows.
    pub conversation_key: String,
    /// `user.id`: the Clerk user, else the anonymous session's id. Never an email.
    pub user_id: String,
    pub org_id: Option<String>,
    pub agent_id: Option<String>,
}

impl TraceScope {
    pub fn new(operation: &'static str, conversation_key: String, user_id: String) -> Self {
        Self {
            trace_id: mentorfy_otlp::new_trace_id(),
            root_span: mentorfy_otlp::new_span_id(),
            operation,
            session_id: None,
            conversation_id: None,
            message_id: None,
            conversation_key,
            user_id,
            org_id: None,
            agent_id: None,
        }
    }

    fn correlate(&self, span: &mut Span) {
        span.attr("gen_ai.conversation.id", self.conversation_key.as_str());
        span.attr("session.id", self.conversation_key.as_str());
        span.attr("user.id", self.user_id.as_str());
        if let Some(agent) = &self.agent_id {
            span.attr("gen_ai.agent.id", agent.as_str());
            span.attr("gen_ai.agent.name", agent.as_str());
            span.attr("app.agent_id", agent.as_str());
        }
    }
}

/// How a call ended.
#[derive(Clone, Debug)]
pub enum CallEnd {
    Ok(Completion),
    /// Failed after `partial` was produced (possibly nothing).
    Failed {
        partial: Option<Message>,
        error_type: String,
        message: String,
    },
    /// Our client went away; `partial` is what had been streamed.
    Aborted {
        partial: Message,
    },
}

/// One finished LLM call, as the caller saw it.
#[derive(Clone, Debug)]
pub struct CallLog {
    pub provider: ProviderKind,
    /// `gen_ai.provider.name` (`anthropic`, `openai`, `ollama`…).
    pub provider_name: String,
    pub base_url: String,
    pub request: ChatRequest,
    pub stream: bool,
    pub started_at: OffsetDateTime,
    pub started: Instant,
    pub ttft: Option<Duration>,
    pub attempts: u32,
    pub end: CallEnd,
}

/// The recorded call: its row id, span id and what it cost.
#[derive(Clone, Copy, Debug)]
pub struct Recorded {
    pub id: Uuid,
    pub span_id: SpanId,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub latency: Duration,
}

#[derive(Clone)]
pub struct Tracer {
    store: Store,
    exporter: Exporter,
    prices: Arc<PriceTable>,
    capture_content: bool,
    /// Models already reported as missing from the price table (logged once each).
    unpriced: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Tracer {
    pub fn new(store: Store, exporter: Exporter, prices: Arc<PriceTable>, capture_content: bool) -> Self {
        Self { store, exporter, prices, capture_content, unpriced: Arc::default() }
    }

    pub fn exporter(&self) -> &Exporter {
        &self.exporter
    }

    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// Writes the `llm_calls` row and exports the `chat {model}` span.
    pub async fn record_call(&self, scope: &TraceScope, log: CallLog) -> Recorded {
        let latency = log.started.elapsed();
        let span_id = mentorfy_otlp::new_span_id();
        let (output, usage, status, error, error_type, raw_finish, response_id, response_model) = match &log.end {
            CallEnd::Ok(c) => (
                Some(message_json(&c.message)),
                c.usage,
                "ok",
                None,
                None,
                c.raw_finish_reason.clone(),
                c.response_id.clone(),
                c.response_model.clone(),
            ),
            CallEnd::Failed { partial, error_type, message } => (
                partial.as_ref().map(message_json),
                Usage::default(),
                "error",
                Some(message.clone()),
                Some(error_type.clone()),
                Some("error".to_owned()),
                None,
                None,
            ),
            CallEnd::Aborted { partial } => {
                (Some(message_json(partial)), Usage::default(), "aborted", None, None, None, None, None)
            }
        };
        let cost_usd = self.prices.cost(log.provider, &log.request.model, &usage);
        if cost_usd.is_none()
            && usage.input_tokens.is_some()
            && self.prices.get(&log.request.model).is_none()
            && self.unpriced.lock().is_ok_and(|mut seen| seen.insert(log.request.model.clone()))
        {
            tracing::warn!(
                model = %log.request.model,
                "no price for this model: its calls are recorded with cost null (add it with MENTORFY_PRICES_FILE)"
            );
        }
        let id = Uuid::now_v7();
        let row = LlmCallRow {
            id,
            trace_id: mentorfy_otlp::hex(&scope.trace_id),
            span_id: mentorfy_otlp::hex(&span_id),
            parent_span_id: Some(mentorfy_otlp::hex(&scope.root_span)),
            session_id: scope.session_id,
            conversation_id: scope.conversation_id,
            message_id: scope.message_id,
            org_id: scope.org_id.clone(),
            agent_id: scope.agent_id.clone(),
            operation: scope.operation.to_owned(),
            provider: log.provider_name.clone(),
            model: log.request.model.clone(),
            response_model: response_model.clone(),
            response_id: response_id.clone(),
            stream: log.stream,
            parameters: log.request.parameters(),
            input: request_json(&log.request),
            output: output.clone(),
            input_tokens: to_i64(usage.input_tokens),
            output_tokens: to_i64(usage.output_tokens),
            cache_read_tokens: to_i64(usage.cache_read_tokens),
            cache_write_tokens: to_i64(usage.cache_write_tokens),
            cost_usd,
            latency_ms: millis(latency),
            ttft_ms: log.ttft.map(millis),
            attempts: i64::from(log.attempts),
            status: status.to_owned(),
            error: error.clone(),
            error_type: error_type.clone(),
            finish_reason: raw_finish.clone(),
            started_at: log.started_at,
            created_at: OffsetDateTime::now_utc(),
        };
        if let Err(e) = self.store.insert_llm_call(&row).await {
            tracing::error!(error = %e, call = %id, "could not record an LLM call");
        }

        if self.exporter.is_enabled() {
            let mut span = Span::start(scope.trace_id, Some(scope.root_span), "", SpanKind::Client);
            span.span_id = span_id;
            span.name = format!("chat {}", log.request.model);
            span.start_unix_nano = unix_nano(log.started_at);
            span.end_unix_nano = span.start_unix_nano + nanos(latency);
            scope.correlate(&mut span);
            span.attr("gen_ai.operation.name", "chat");
            span.attr("gen_ai.provider.name", log.provider_name.as_str());
            span.attr("gen_ai.request.model", log.request.model.as_str());
            if log.stream {
                span.attr("gen_ai.request.stream", true);
            }
            span.attr("gen_ai.request.max_tokens", i64::from(log.request.max_tokens));
            if let Some(t) = log.request.temperature {
                span.attr("gen_ai.request.temperature", f64::from(t));
            }
            if let Some((host, port)) = server_of(&log.base_url) {
                span.attr("server.address", host);
                span.attr("server.port", i64::from(port));
            }
            if let Some(v) = &response_id {
                span.attr("gen_ai.response.id", v.as_str());
            }
            if let Some(v) = &response_model {
                span.attr("gen_ai.response.model", v.as_str());
            }
            if let Some(v) = &raw_finish {
                span.attr("gen_ai.response.finish_reasons", vec![v.clone()]);
            }
            if let Some(ttft) = log.ttft {
                span.attr("gen_ai.response.time_to_first_chunk", ttft.as_secs_f64());
            }
            let usage_attrs = [
                ("gen_ai.usage.input_tokens", usage.input_tokens),
                ("gen_ai.usage.output_tokens", usage.output_tokens),
                ("gen_ai.usage.cache_read.input_tokens", usage.cache_read_tokens),
                ("gen_ai.usage.cache_write.input_tokens", usage.cache_write_tokens),
                ("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens),
            ];
            for (key, value) in usage_attrs {
                if let Some(v) = value {
                    span.attr(key, v);
                }
            }
            if let Some(cost) = cost_usd {
                span.attr("app.cost_usd", cost);
            }
            span.attr("app.llm_call_id", id.to_string());
            if log.attempts > 1 {
                span.attr("app.attempts", i64::from(log.attempts));
            }
            match &log.end {
                CallEnd::Failed { error_type, message, .. } => {
                    span.error(error_type, message.clone());
                }
                CallEnd::Aborted { .. } => {
                    span.attr("app.aborted", true);
                }
                CallEnd::Ok(_) => {}
            }
            if self.capture_content {
                if let Some(system) = &log.request.system {
                    span.attr("gen_ai.system_instructions", json!([{"type": "text", "content": system}]).to_string());
                }
                span.attr("gen_ai.input.messages", semconv_messages(&log.request.messages).to_string());
                let finish = match &log.end {
                    CallEnd::Ok(c) => semconv_finish(c.finish_reason),
                    _ => "error",
                };
                let out = match &log.end {
                    CallEnd::Ok(c) => Some(&c.message),
                    CallEnd::Failed { partial, .. } => partial.as_ref(),
                    CallEnd::Aborted { partial } => Some(partial),
                };
                if let Some(m) = out {
                    let mut msgs = semconv_messages(std::slice::from_ref(m));
                    if let Some(first) = msgs.as_array_mut().and_then(|a| a.first_mut()) {
                        first["finish_reason"] = Value::from(finish);
                    }
                    span.attr("gen_ai.output.messages", msgs.to_string());
                }
                if !log.request.tools.is_empty() {
                    let defs: Vec<Value> = log
                        .request
                        .tools
                        .iter()
                        .map(|t| {
                            json!({"type": "function", "name": t.name, "description": t.description, "parameters": t.input_schema})
                        })
                        .collect();
                    span.attr("gen_ai.tool.definitions", Value::from(defs).to_string());
                }
            }
            self.exporter.export(span);
        }
        Recorded { id, span_id, usage, cost_usd, latency }
    }

    /// Exports an `execute_tool {name}` span.
    #[allow(clippy::too_many_arguments)]
    pub fn record_tool(
        &self,
        scope: &TraceScope,
        name: &str,
        call_id: &str,
        input: &Value,
        result: &Result<Value, String>,
        started_at: OffsetDateTime,
        took: Duration,
    ) {
        if !self.exporter.is_enabled() {
            return;
        }
        let mut span =
            Span::start(scope.trace_id, Some(scope.root_span), format!("execute_tool {name}"), SpanKind::Internal);
        span.start_unix_nano = unix_nano(started_at);
        span.end_unix_nano = span.start_unix_nano + nanos(took);
        scope.correlate(&mut span);
        span.attr("gen_ai.operation.name", "execute_tool");
        span.attr("gen_ai.tool.name", name);
        span.attr("gen_ai.tool.call.id", call_id);
        span.attr("gen_ai.tool.type", "function");
        if self.capture_content {
            span.attr("gen_ai.tool.call.arguments", input.to_string());
            if let Ok(v) = result {
                span.attr("gen_ai.tool.call.result", v.to_string());
            }
        }
        if let Err(message) = result {
            span.error("tool_error", message.clone());
        }
        self.exporter.export(span);
    }

    /// Exports the turn's `invoke_agent {agent}` root span.
    pub fn record_turn(&self, scope: &TraceScope, started_at: OffsetDateTime, took: Duration, error: Option<&str>) {
        if !self.exporter.is_enabled() {
            return;
        }
        let agent = scope.agent_id.clone().unwrap_or_default();
        let mut span = Span::start(scope.trace_id, None, format!("invoke_agent {agent}"), SpanKind::Internal);
        span.span_id = scope.root_span;
        span.start_unix_nano = unix_nano(started_at);
        span.end_unix_nano = span.start_unix_nano + nanos(took);
        scope.correlate(&mut span);
        span.attr("gen_ai.operation.name", "invoke_agent");
        span.attr("app.operation", scope.operation);
        if let Some(error_type) = error {
            span.error(error_type, "the turn failed");
        }
        self.exporter.export(span);
    }
}

fn to_i64(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn unix_nano(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos()).unwrap_or(0)
}

/// `https://api.anthropic.com/v1` → (`api.anthropic.com`, 443).
fn server_of(base_url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = base_url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, p.parse().ok()?),
        _ => (authority, if scheme == "https" { 443 } else { 80 }),
    };
    Some((host.to_owned(), port))
}

/// The request as sent, for the `llm_calls.input` column: system prompt, messages, tool names.
pub fn request_json(request: &ChatRequest) -> Value {
    json!({
        "system": request.system,
        "messages": request.messages.iter().map(message_json).collect::<Vec<_>>(),
    })
}

pub fn message_json(message: &Message) -> Value {
    serde_json::to_value(message).unwrap_or(Value::Null)
}

fn semconv_finish(reason: mentorfy_llm::FinishReason) -> &'static str {
    use mentorfy_llm::FinishReason as F;
    match reason {
        F::Stop | F::Other => "stop",
        F::Length => "length",
        F::ContentFilter => "content_filter",
        F::ToolCalls => "tool_call",
        F::Error => "error",
    }
}

/// Messages in the GenAI conventions' shape (`role`, `parts`); tool results become `tool` messages.
fn semconv_messages(messages: &[Message]) -> Value {
    let mut out = Vec::new();
    for m in messages {
        let mut parts = Vec::new();
        let mut tool_parts = Vec::new();
        for c in &m.content {
            match c {
                Content::Text { text } => parts.push(json!({"type": "text", "content": text})),
                Content::Reasoning { text, .. } => parts.push(json!({"type": "reasoning", "content": text})),
                Content::ToolCall { id, name, input } => {
                    parts.push(json!({"type": "tool_call", "id": id, "name": name, "arguments": input}))
                }
                Content::ToolResult { call_id, output, .. } => {
                    tool_parts.push(json!({"type": "tool_call_response", "id": call_id, "response": output}))
                }
            }
        }
        if !tool_parts.is_empty() {
            out.push(json!({"role": "tool", "parts": tool_parts}));
        }
        if !parts.is_empty() {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            out.push(json!({"role": role, "parts": parts}));
        }
    }
    Value::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_address_and_port_come_from_the_base_url() {
        assert_eq!(server_of("https://api.anthropic.com"), Some(("api.anthropic.com".into(), 443)));
        assert_eq!(server_of("http://127.0.0.1:4321/v1"), Some(("127.0.0.1".into(), 4321)));
        assert_eq!(server_of("http://localhost/v1"), Some(("localhost".into(), 80)));
        assert_eq!(server_of("nonsense"), None);
    }

    #[test]
    fn tool_results_become_tool_messages_in_the_conventions_shape() {
        let msgs = vec![
            Message::user("hi"),
            Message {
                role: Role::Assistant,
                content: vec![Content::ToolCall { id: "c1".into(), name: "t".into(), input: json!({"k": 1}) }],
            },
            Message {
                role: Role::User,
                content: vec![Content::ToolResult { call_id: "c1".into(), output: "ok".into(), is_error: false }],
            },
        ];
        let v = semconv_messages(&msgs);
        assert_eq!(v[0]["role"], "user");
        assert_eq!(v[1]["parts"][0]["type"], "tool_call");
        assert_eq!(v[1]["parts"][0]["arguments"]["k"], 1);
        assert_eq!(v[2]["role"], "tool");
        assert_eq!(v[2]["parts"][0]["id"], "c1");
    }
}
