//! The gateway's provider-neutral vocabulary: what callers send ([`ChatRequest`]), what a streamed call yields
//! ([`StreamEvent`]), what a finished call returns ([`Completion`]), and token [`Usage`].
//! Provider modules translate to and from their wire formats; nothing above this crate sees a wire format.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which wire protocol a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Anthropic Messages API.
    Anthropic,
    /// OpenAI chat completions, or any compatible server (Ollama, vLLM, llama.cpp, OpenRouter).
    #[serde(rename = "openai")]
    OpenAi,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::OpenAi => "openai",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One block of a message. Tool results travel in `User` messages (Anthropic's convention); the OpenAI
/// provider turns them into `tool` messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text {
        text: String,
    },
    /// Extended thinking, sent back unchanged (with its signature) before tool calls of the same turn.
    Reasoning {
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    ToolCall {
        id: String,
        name: String,
        input: Value,
    },
    /// `output` is the text the model sees (JSON text for structured results).
    ToolResult {
        call_id: String,
        output: String,
        is_error: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Content>,
}

impl Message {
    pub fn user(text: impl Into<String>) -> Self {
        Self { role: Role::User, content: vec![Content::Text { text: text.into() }] }
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: vec![Content::Text { text: text.into() }] }
    }

    /// The concatenated text blocks.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|c| match c {
                Content::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// A JSON Schema object.
    pub input_schema: Value,
}

/// One LLM call, provider-neutral.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    /// The system prompt. Anthropic: sent as one text block with `cache_control: ephemeral` (prompt caching).
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    /// Omitted from the request when `None` (newer Claude models reject it).
    pub temperature: Option<f32>,
    pub max_tokens: u32,
}

impl ChatRequest {
    /// The parameters as recorded in traces: model, temperature, max tokens, tool names.
    pub fn parameters(&self) -> Value {
        let mut p = serde_json::Map::new();
        p.insert("model".into(), Value::from(self.model.clone()));
        p.insert("max_tokens".into(), Value::from(self.max_tokens));
        if let Some(t) = self.temperature {
            p.insert("temperature".into(), Value::from(f64::from(t)));
        }
        if !self.tools.is_empty() {
            p.insert("tools".into(), self.tools.iter().map(|t| Value::from(t.name.clone())).collect());
        }
        Value::Object(p)
    }
}

/// Why the model stopped, normalised (the UI stream's `finishReason` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
    ToolCalls,
    Error,
    Other,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ContentFilter => "content-filter",
            Self::ToolCalls => "tool-calls",
            Self::Error => "error",
            Self::Other => "other",
        }
    }
}

/// Token counts, in one convention for every provider: `input_tokens` is **all** prompt tokens including
/// cached ones (OpenAI's `prompt_tokens`; Anthropic's `input_tokens + cache_creation + cache_read`), and
/// the cache counts are subsets of it. `None` means the provider did not report it (never guessed as 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    /// All cache writes (Anthropic `cache_creation_input_tokens`).
    pub cache_write_tokens: Option<u64>,
    /// The part of `cache_write_tokens` written with the 1-hour TTL (billed at 2× instead of 1.25×).
    pub cache_write_1h_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
}

/// Sums two usages (a tool loop's steps); a field is `None` only if it is `None` in both.
impl std::ops::Add for Usage {
    type Output = Usage;

    fn add(self, other: Usage) -> Usage {
        fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
            }
        }
        Usage {
            input_tokens: sum(self.input_tokens, other.input_tokens),
            output_tokens: sum(self.output_tokens, other.output_tokens),
            cache_read_tokens: sum(self.cache_read_tokens, other.cache_read_tokens),
            cache_write_tokens: sum(self.cache_write_tokens, other.cache_write_tokens),
            cache_write_1h_tokens: sum(self.cache_write_1h_tokens, other.cache_write_1h_tokens),
            reasoning_tokens: sum(self.reasoning_tokens, other.reasoning_tokens),
        }
    }
}

/// A tool call's input as parsed at the end of its block: JSON, or the raw text that did not parse.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolInput {
    Parsed(Value),
    Invalid { raw: String, error: String },
}

/// What a streamed call yields, in order. `block` is the provider's content index (Anthropic block index;
/// OpenAI: 0 for text, 1 for reasoning, 2 + tool index for tool calls), unique among open blocks of one call.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    TextStart {
        block: usize,
    },
    TextDelta {
        block: usize,
        text: String,
    },
    TextEnd {
        block: usize,
    },
    ReasoningStart {
        block: usize,
    },
    ReasoningDelta {
        block: usize,
        text: String,
    },
    /// Anthropic's thinking signature, to be sent back with the block.
    ReasoningSignature {
        block: usize,
        signature: String,
    },
    ReasoningEnd {
        block: usize,
    },
    ToolCallStart {
        block: usize,
        id: String,
        name: String,
    },
    /// A fragment of the tool input's JSON text (never empty).
    ToolCallDelta {
        block: usize,
        id: String,
        json: String,
    },
    ToolCallEnd {
        block: usize,
        id: String,
        name: String,
        input: ToolInput,
    },
    /// The end of the call: always the last event of a successful stream.
    Finish(Completion),
}

/// A finished call: the assistant message as received (blocks in order), why it stopped and what it used.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The assistant turn, blocks in the order received (reasoning, text, tool calls), ready to be sent
    /// back in the next request of a tool loop. A tool call whose input did not parse carries its raw text
    /// as a JSON string (its `ToolCallEnd` event says `ToolInput::Invalid`); the caller answers it with an
    /// error result.
    pub message: Message,
    pub finish_reason: FinishReason,
    /// The provider's own stop reason (`end_turn`, `tool_use`, `stop`, `tool_calls`), for traces.
    pub raw_finish_reason: Option<String>,
    pub usage: Usage,
    /// `msg_…` / `chatcmpl-…`
    pub response_id: Option<String>,
    /// The model that actually answered.
    pub response_model: Option<String>,
}

impl Completion {
    pub fn text(&self) -> String {
        self.message.text()
    }

    /// The tool calls the model asked for, in order.
    pub fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.message.content.iter().filter_map(|c| match c {
            Content::ToolCall { id, name, input } => Some((id.as_str(), name.as_str(), input)),
            _ => None,
        })
    }
}
