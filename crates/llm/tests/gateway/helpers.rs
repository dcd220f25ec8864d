#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Shared set-up for the gateway tests: gateways pointed at fakes with fast retries, requests, and stream collection.

use std::time::Duration;

use futures::StreamExt;
use mentorfy_fakes::anthropic::FakeAnthropic;
use mentorfy_fakes::openai::FakeOpenAi;
use mentorfy_llm::{
    ChatRequest, Completion, Gateway, GatewaySettings, LlmError, LlmStream, Message, ProviderSettings, StreamEvent,
    ToolSpec,
};
use serde_json::json;

pub const ANTHROPIC_KEY: &str = "sk-ant-test-SECRET-key";
pub const OPENAI_KEY: &str = "sk-openai-test-SECRET-key";

/// Fast retries and generous deadlines; tests tighten what they exercise.
pub fn settings() -> GatewaySettings {
    GatewaySettings {
        connect_timeout: Duration::from_secs(5),
        first_token_timeout: Duration::from_secs(10),
        total_timeout: Duration::from_secs(30),
        max_retries: 2,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..GatewaySettings::default()
    }
}

pub fn anthropic_settings(fake: &FakeAnthropic) -> ProviderSettings {
    ProviderSettings::anthropic(ANTHROPIC_KEY).with_base_url(fake.url())
}

pub fn openai_settings(fake: &FakeOpenAi) -> ProviderSettings {
    ProviderSettings::openai(OPENAI_KEY).with_base_url(format!("{}/", fake.url()))
}

pub fn anthropic_gateway(fake: &FakeAnthropic) -> Gateway {
    Gateway::new(GatewaySettings { anthropic: Some(anthropic_settings(fake)), ..settings() }).unwrap()
}

pub fn anthropic_gateway_with(fake: &FakeAnthropic, tweak: impl FnOnce(&mut GatewaySettings)) -> Gateway {
    let mut s = GatewaySettings { anthropic: Some(anthropic_settings(fake)), ..settings() };
    tweak(&mut s);
    Gateway::new(s).unwrap()
}

pub fn openai_gateway(fake: &FakeOpenAi) -> Gateway {
    Gateway::new(GatewaySettings { openai: Some(openai_settings(fake)), ..settings() }).unwrap()
}

pub fn request(text: &str) -> ChatRequest {
    ChatRequest {
        model: "claude-haiku-4-5".into(),
        system: Some("You are a patient coding mentor.".into()),
        messages: vec![Message::user(text)],
        tools: Vec::new(),
        temperature: None,
        max_tokens: 256,
    }
}

pub fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Get the weather".into(),
        input_schema: json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
    }
}

/// Every event of a stream, and the error that ended it if one did.
pub async fn collect(mut stream: LlmStream) -> (Vec<StreamEvent>, Option<LlmError>) {
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(e) => {
                assert!(stream.next().await.is_none(), "a stream ends after its error");
                return (events, Some(e));
            }
        }
    }
    (events, None)
}

/// The completion of a stream that must have succeeded.
pub fn finish(events: &[StreamEvent]) -> Completion {
    match events.last() {
        Some(StreamEvent::Finish(c)) => c.clone(),
        other => panic!("the stream did not finish: {other:?}"),
    }
}

/// The text deltas, concatenated.
pub fn streamed_text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}
