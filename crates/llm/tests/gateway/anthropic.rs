#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Anthropic provider end to end against `FakeAnthropic`: request headers and body, streamed and non-streamed
//! answers, tool calls, thinking, usage, and the stream's failure modes.

use mentorfy_fakes::anthropic::{FakeAnthropic, Reply};
use mentorfy_llm::{
    AnthropicAuth, Content, FinishReason, Gateway, GatewaySettings, LlmError, Message, ProviderKind, Role, StreamEvent,
    ToolInput, Usage,
};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn streams_text_with_spec_headers_and_a_cached_system_prompt() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("Hello! How can I help?").usage(10, 9).model("claude-haiku-4-5-20251001").id("msg_01Hx"));
    let gateway = anthropic_gateway(&fake);

    let stream = gateway.stream(ProviderKind::Anthropic, &request("Say hello")).await.unwrap();
    assert_eq!(stream.attempts(), 1);
    assert_eq!(stream.response_id(), Some("msg_01Hx"));
    assert_eq!(stream.response_model(), Some("claude-haiku-4-5-20251001"));
    let (events, error) = collect(stream).await;
    assert_eq!(error, None);

    assert_eq!(events.first(), Some(&StreamEvent::TextStart { block: 0 }));
    assert_eq!(streamed_text(&events), "Hello! How can I help?");
    assert!(events.iter().filter(|e| matches!(e, StreamEvent::TextDelta { .. })).count() > 1, "several deltas");
    assert_eq!(events[events.len() - 2], StreamEvent::TextEnd { block: 0 });
    let completion = finish(&events);
    assert_eq!(completion.text(), "Hello! How can I help?");
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    assert_eq!(completion.raw_finish_reason.as_deref(), Some("end_turn"));
    assert_eq!(completion.usage.input_tokens, Some(10));
    assert_eq!(completion.usage.output_tokens, Some(9));
    assert_eq!(completion.response_id.as_deref(), Some("msg_01Hx"));

    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.body,
        json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 256,
            "stream": true,
            "system": [{"type":"text","text":"You are a patient coding mentor.","cache_control":{"type":"ephemeral"}}],
            "messages": [{"role":"user","content":[{"type":"text","text":"Say hello"}]}],
        })
    );
}

#[tokio::test]
async fn bearer_auth_and_a_configured_version_and_temperature_are_sent() {
    let fake = FakeAnthropic::start().await;
    let mut provider = anthropic_settings(&fake);
    provider.anthropic_auth = AnthropicAuth::Bearer;
    provider.anthropic_version = "2026-10-21".into();
    let gateway = Gateway::new(GatewaySettings { anthropic: Some(provider), ..settings() }).unwrap();
    let mut req = request("Hi");
    req.temperature = Some(0.5);
    req.tools = vec![weather_tool()];

    gateway.complete(ProviderKind::Anthropic, &req).await.unwrap();

    let sent = fake.last_request().unwrap();
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {ANTHROPIC_KEY}").as_str()));
    assert_eq!(sent.header("x-api-key"), None);
    assert_eq!(sent.header("anthropic-version"), Some("2026-10-21"));
    assert_eq!(sent.body["temperature"], 0.5);
    assert_eq!(sent.body["stream"], false);
    assert_eq!(
        sent.body["tools"],
        json!([{"name":"get_weather","description":"Get the weather",
        "input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}])
    );
}

#[tokio::test]
async fn a_tool_call_streams_and_its_round_trip_is_sent_back_per_spec() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("Let me check.").then_tool_call("toolu_01", "get_weather", json!({"city": "Paris"})));
    fake.push(Reply::text("It is 21°C in Paris."));
    let gateway = anthropic_gateway(&fake);
    let mut req = request("Weather in Paris?");
    req.tools = vec![weather_tool()];

    let (events, error) = collect(gateway.stream(ProviderKind::Anthropic, &req).await.unwrap()).await;
    assert_eq!(error, None);
    let starts: Vec<_> = events.iter().filter(|e| matches!(e, StreamEvent::ToolCallStart { .. })).collect();
    assert_eq!(
        starts,
        vec![&StreamEvent::ToolCallStart { block: 1, id: "toolu_01".into(), name: "get_weather".into() }]
    );
    let json: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta { json, .. } => Some(json.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap(), json!({"city":"Paris"}));
    assert!(events.contains(&StreamEvent::ToolCallEnd {
        block: 1,
        id: "toolu_01".into(),
        name: "get_weather".into(),
        input: ToolInput::Parsed(json!({"city":"Paris"})),
    }));
    let completion = finish(&events);
    assert_eq!(completion.finish_reason, FinishReason::ToolCalls);

    // Next step of the tool loop: the assistant turn as received, then the result.
    req.messages.push(completion.message.clone());
    req.messages.push(Message {
        role: Role::User,
        content: vec![Content::ToolResult {
            call_id: "toolu_01".into(),
            output: "{\"tempC\":21}".into(),
            is_error: false,
        }],
    });
    let second = gateway.complete(ProviderKind::Anthropic, &req).await.unwrap();
    assert_eq!(second.text(), "It is 21°C in Paris.");
    assert_eq!(
        fake.last_request().unwrap().body["messages"],
        json!([
            {"role":"user","content":[{"type":"text","text":"Weather in Paris?"}]},
            {"role":"assistant","content":[
                {"type":"text","text":"Let me check."},
                {"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris"}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"{\"tempC\":21}","is_error":false}]}
        ])
    );
}

#[tokio::test]
async fn thinking_is_streamed_with_its_signature_and_sent_back_before_the_tool_call() {
    let fake = FakeAnthropic::start().await;
    fake.push(
        Reply::tool_call("toolu_9", "get_weather", json!({"city":"Oslo"}))
            .with_thinking("Need the weather.", "EqQBCg=="),
    );
    let gateway = anthropic_gateway(&fake);
    let (events, _) = collect(gateway.stream(ProviderKind::Anthropic, &request("Oslo?")).await.unwrap()).await;
    assert_eq!(events[0], StreamEvent::ReasoningStart { block: 0 });
    assert!(events.contains(&StreamEvent::ReasoningSignature { block: 0, signature: "EqQBCg==".into() }));
    let completion = finish(&events);
    assert_eq!(
        completion.message.content[0],
        Content::Reasoning { text: "Need the weather.".into(), signature: Some("EqQBCg==".into()) }
    );

    let mut req = request("Oslo?");
    req.messages.push(completion.message);
    req.messages.push(Message {
        role: Role::User,
        content: vec![Content::ToolResult { call_id: "toolu_9".into(), output: "cold".into(), is_error: true }],
    });
    gateway.complete(ProviderKind::Anthropic, &req).await.unwrap();
    let sent = fake.last_request().unwrap().body;
    assert_eq!(
        sent["messages"][1]["content"][0],
        json!({"type":"thinking","thinking":"Need the weather.","signature":"EqQBCg=="})
    );
    assert_eq!(sent["messages"][1]["content"][1]["type"], "tool_use");
    assert_eq!(sent["messages"][2]["content"][0]["is_error"], true);
}

#[tokio::test]
async fn consecutive_same_role_messages_are_merged() {
    let fake = FakeAnthropic::start().await;
    let gateway = anthropic_gateway(&fake);
    let mut req = request("one");
    req.messages.push(Message::user("two"));
    req.messages.push(Message::assistant("three"));
    gateway.complete(ProviderKind::Anthropic, &req).await.unwrap();
    assert_eq!(
        fake.last_request().unwrap().body["messages"],
        json!([
            {"role":"user","content":[{"type":"text","text":"one"},{"type":"text","text":"two"}]},
            {"role":"assistant","content":[{"type":"text","text":"three"}]}
        ])
    );
}

#[tokio::test]
async fn invalid_tool_json_is_a_tool_input_error_not_a_failure() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::raw_sse(concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_x\",\"model\":\"m\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_bad\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":7}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    )));
    let gateway = anthropic_gateway(&fake);
    let (events, error) = collect(gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap()).await;
    assert_eq!(error, None);
    let end = events.iter().find(|e| matches!(e, StreamEvent::ToolCallEnd { .. })).unwrap();
    let StreamEvent::ToolCallEnd { input: ToolInput::Invalid { raw, .. }, .. } = end else { panic!("{end:?}") };
    assert_eq!(raw, "{\"city\": \"Par");
    let completion = finish(&events);
    assert_eq!(completion.tool_calls().next().unwrap().2, &json!("{\"city\": \"Par"));
}

#[tokio::test]
async fn usage_counts_cache_reads_and_writes_in_the_input_total() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("Cached.").usage(12, 4).cache(1000, 200));
    fake.push(Reply::text("Cached.").usage(12, 4).cache(1000, 200));
    let gateway = anthropic_gateway(&fake);
    let expected = Usage {
        input_tokens: Some(12 + 1000 + 200),
        output_tokens: Some(4),
        cache_read_tokens: Some(1000),
        cache_write_tokens: Some(200),
        cache_write_1h_tokens: None,
        reasoning_tokens: None,
    };
    let (events, _) = collect(gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap()).await;
    assert_eq!(finish(&events).usage, expected);
    assert_eq!(gateway.complete(ProviderKind::Anthropic, &request("x")).await.unwrap().usage, expected);
}

#[tokio::test]
async fn a_stream_that_closes_without_message_stop_is_a_protocol_error() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::raw_sse(concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_x\",\"model\":\"m\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Half\"}}\n\n",
    )));
    let gateway = anthropic_gateway(&fake);
    let (events, error) = collect(gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap()).await;
    assert_eq!(streamed_text(&events), "Half");
    assert!(matches!(error, Some(LlmError::Protocol(_))), "{error:?}");
    assert_eq!(fake.request_count(), 1, "never retried once content was handed over");
}

#[tokio::test]
async fn an_error_event_after_text_is_surfaced_not_retried() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::error_after_text("Partial answer", "overloaded_error", "Overloaded"));
    let gateway = anthropic_gateway(&fake);
    let (events, error) = collect(gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap()).await;
    assert_eq!(streamed_text(&events), "Partial answer");
    let error = error.unwrap();
    assert_eq!(error, LlmError::Stream { error_type: "overloaded_error".into(), message: "Overloaded".into() });
    assert_eq!(error.error_type(), "overloaded_error");
    assert_eq!(error.public_message(), "The model is overloaded. Please retry.");
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn non_streamed_calls_parse_the_json_message() {
    let fake = FakeAnthropic::start().await;
    fake.push(
        Reply::text("Checking.")
            .then_tool_call("toolu_2", "get_weather", json!({"city":"Rome"}))
            .usage(20, 6)
            .id("msg_2"),
    );
    let gateway = anthropic_gateway(&fake);
    let completion = gateway.complete(ProviderKind::Anthropic, &request("Rome?")).await.unwrap();
    assert_eq!(completion.text(), "Checking.");
    assert_eq!(completion.tool_calls().collect::<Vec<_>>(), vec![("toolu_2", "get_weather", &json!({"city":"Rome"}))]);
    assert_eq!(completion.finish_reason, FinishReason::ToolCalls);
    assert_eq!(completion.usage.input_tokens, Some(20));
    assert_eq!(completion.usage.output_tokens, Some(6));
    assert_eq!(completion.response_id.as_deref(), Some("msg_2"));
    assert_eq!(fake.last_request().unwrap().header("accept"), Some("application/json"));
}

#[tokio::test]
async fn an_unconfigured_provider_names_its_variable() {
    let gateway = Gateway::new(settings()).unwrap();
    let error = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap_err();
    assert_eq!(error, LlmError::NotConfigured { provider: ProviderKind::Anthropic });
    assert!(error.to_string().contains("ANTHROPIC_API_KEY"));
    assert!(gateway.provider(ProviderKind::Anthropic).is_none());
    let error = gateway.complete(ProviderKind::OpenAi, &request("x")).await.unwrap_err();
    assert!(error.to_string().contains("OPENAI_BASE_URL"));
}

#[tokio::test]
async fn a_bad_base_url_is_refused_at_construction() {
    let fake = FakeAnthropic::start().await;
    let provider = anthropic_settings(&fake).with_base_url("not a url");
    assert!(Gateway::new(GatewaySettings { anthropic: Some(provider), ..settings() }).is_err());
    let wrong_slot = anthropic_settings(&fake);
    assert!(Gateway::new(GatewaySettings { openai: Some(wrong_slot), ..settings() }).is_err());
}
