#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The OpenAI-compatible provider end to end against `FakeOpenAi`: request shape, auth, `stream_options`, streamed
//! text and tool calls, the tolerances compatible servers need, errors in the stream, and non-streamed answers.

use mentorfy_fakes::openai::{FakeOpenAi, Reply};
use mentorfy_llm::{
    Content, FinishReason, Gateway, GatewaySettings, LlmError, Message, ProviderKind, Role, StreamEvent, ToolInput,
};
use serde_json::json;

use crate::helpers::*;

fn gpt(text: &str) -> mentorfy_llm::ChatRequest {
    let mut req = request(text);
    req.model = "gpt-4o-mini".into();
    req
}

#[tokio::test]
async fn streams_text_with_bearer_auth_a_system_message_and_usage() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("Hello there friend").usage(9, 12).cache(4, 0).id("chatcmpl-1"));
    let gateway = openai_gateway(&fake);

    let stream = gateway.stream(ProviderKind::OpenAi, &gpt("Hi")).await.unwrap();
    assert_eq!(stream.response_id(), Some("chatcmpl-1"));
    assert_eq!(stream.response_model(), Some("gpt-4o-mini"));
    let (events, error) = collect(stream).await;
    assert_eq!(error, None);
    assert_eq!(events[0], StreamEvent::TextStart { block: 0 });
    assert_eq!(streamed_text(&events), "Hello there friend");
    let completion = finish(&events);
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    assert_eq!(completion.usage.input_tokens, Some(9));
    assert_eq!(completion.usage.output_tokens, Some(12));
    assert_eq!(completion.usage.cache_read_tokens, Some(4));

    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {OPENAI_KEY}").as_str()));
    assert_eq!(
        sent.body,
        json!({
            "model": "gpt-4o-mini",
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": 256,
            "messages": [
                {"role":"system","content":"You are a patient coding mentor."},
                {"role":"user","content":"Hi"}
            ],
        })
    );
}

#[tokio::test]
async fn without_a_key_or_include_usage_nothing_is_sent_for_them_and_usage_stays_unknown() {
    let fake = FakeOpenAi::start().await;
    let mut provider = openai_settings(&fake).with_name("ollama");
    provider.api_key = None;
    provider.include_usage = false;
    let gateway = Gateway::new(GatewaySettings { openai: Some(provider), ..settings() }).unwrap();
    assert_eq!(gateway.provider(ProviderKind::OpenAi).unwrap().name, "ollama");

    let (events, _) = collect(gateway.stream(ProviderKind::OpenAi, &gpt("Hi")).await.unwrap()).await;
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.header("authorization"), None);
    assert!(sent.body.get("stream_options").is_none());
    assert_eq!(finish(&events).usage.input_tokens, None, "no usage chunk: unknown, never 0");
}

#[tokio::test]
async fn text_ends_before_tool_calls_which_end_at_finish_reason() {
    let fake = FakeOpenAi::start().await;
    fake.push(
        Reply::text("Checking both.").then_tool_call("call_a", "get_weather", json!({"city":"Paris"})).then_tool_call(
            "call_b",
            "get_weather",
            json!({"city":"Rome"}),
        ),
    );
    let gateway = openai_gateway(&fake);
    let mut req = gpt("Paris and Rome?");
    req.tools = vec![weather_tool()];
    let (events, error) = collect(gateway.stream(ProviderKind::OpenAi, &req).await.unwrap()).await;
    assert_eq!(error, None);

    let pos = |pred: &dyn Fn(&StreamEvent) -> bool| events.iter().position(pred).unwrap();
    let text_end = pos(&|e| matches!(e, StreamEvent::TextEnd { .. }));
    let first_start = pos(&|e| matches!(e, StreamEvent::ToolCallStart { .. }));
    let first_end = pos(&|e| matches!(e, StreamEvent::ToolCallEnd { .. }));
    let last_delta = events.iter().rposition(|e| matches!(e, StreamEvent::ToolCallDelta { .. })).unwrap();
    assert!(text_end < first_start, "text-end comes before the first tool call");
    assert!(last_delta < first_end, "tool calls end only at finish_reason");
    assert!(events.contains(&StreamEvent::ToolCallEnd {
        block: 3,
        id: "call_b".into(),
        name: "get_weather".into(),
        input: ToolInput::Parsed(json!({"city":"Rome"})),
    }));
    let completion = finish(&events);
    assert_eq!(completion.finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        completion.tool_calls().collect::<Vec<_>>(),
        vec![("call_a", "get_weather", &json!({"city":"Paris"})), ("call_b", "get_weather", &json!({"city":"Rome"}))]
    );
    assert_eq!(
        fake.last_request().unwrap().body["tools"],
        json!([{"type":"function","function":{"name":"get_weather","description":"Get the weather",
            "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])
    );

    // The tool round trip: assistant tool_calls with string arguments, then one `tool` message per call.
    req.messages.push(completion.message);
    req.messages.push(Message {
        role: Role::User,
        content: vec![
            Content::ToolResult { call_id: "call_a".into(), output: "21".into(), is_error: false },
            Content::ToolResult { call_id: "call_b".into(), output: "25".into(), is_error: false },
        ],
    });
    gateway.complete(ProviderKind::OpenAi, &req).await.unwrap();
    let messages = fake.last_request().unwrap().body["messages"].clone();
    assert_eq!(
        messages[2],
        json!({"role":"assistant","content":"Checking both.","tool_calls":[
            {"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"call_b","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]})
    );
    assert_eq!(messages[3], json!({"role":"tool","tool_call_id":"call_a","content":"21"}));
    assert_eq!(messages[4], json!({"role":"tool","tool_call_id":"call_b","content":"25"}));
}

#[tokio::test]
async fn compatible_server_quirks_are_tolerated() {
    // No tool-call index (Gemini), reasoning in `reasoning`, usage on the finish chunk (llama.cpp), an empty
    // `choices` chunk, and a clean close after finish_reason without [DONE].
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::raw_sse(concat!(
        "data: {\"id\":\"c9\",\"model\":\"llama\",\"choices\":[]}\n\n",
        "data: {\"id\":\"c9\",\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"Thinking.\"}}]}\n\n",
        "data: {\"id\":\"c9\",\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"call_x\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n",
        "data: {\"id\":\"c9\",\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"\\\"Lima\\\"}\"}}]}}]}\n\n",
        "data: {\"id\":\"c9\",\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":8,\"total_tokens\":38},\"timings\":{\"prompt_n\":30}}\n\n",
    )));
    let gateway = openai_gateway(&fake);
    let (events, error) = collect(gateway.stream(ProviderKind::OpenAi, &gpt("Lima?")).await.unwrap()).await;
    assert_eq!(error, None);
    let completion = finish(&events);
    assert_eq!(completion.message.content[0], Content::Reasoning { text: "Thinking.".into(), signature: None });
    assert_eq!(completion.tool_calls().collect::<Vec<_>>(), vec![("call_x", "get_weather", &json!({"city":"Lima"}))]);
    assert_eq!(completion.usage.input_tokens, Some(30));
    assert_eq!(completion.response_model.as_deref(), Some("llama"));
}

#[tokio::test]
async fn an_error_line_before_content_is_retried_and_after_content_is_surfaced() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::stream_error("server_error", "The server had an error while processing your request."));
    fake.push(Reply::text("Recovered."));
    let gateway = openai_gateway(&fake);
    let stream = gateway.stream(ProviderKind::OpenAi, &gpt("x")).await.unwrap();
    assert_eq!(stream.attempts(), 2);
    let (events, error) = collect(stream).await;
    assert_eq!((streamed_text(&events).as_str(), error), ("Recovered.", None));

    fake.push(Reply::error_after_text("Partial", "server_error", "boom"));
    let (events, error) = collect(gateway.stream(ProviderKind::OpenAi, &gpt("x")).await.unwrap()).await;
    assert_eq!(streamed_text(&events), "Partial");
    assert_eq!(error, Some(LlmError::Stream { error_type: "server_error".into(), message: "boom".into() }));
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn a_stream_cut_before_finish_reason_is_a_protocol_error() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::raw_sse(
        "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Cut\"}}]}\n\n",
    ));
    let gateway = openai_gateway(&fake);
    let (events, error) = collect(gateway.stream(ProviderKind::OpenAi, &gpt("x")).await.unwrap()).await;
    assert_eq!(streamed_text(&events), "Cut");
    assert!(matches!(error, Some(LlmError::Protocol(_))), "{error:?}");
}

#[tokio::test]
async fn non_streamed_calls_parse_the_json_completion() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool_call("call_1", "get_weather", json!({"city":"Oslo"})).usage(50, 7).cache(10, 0));
    let gateway = openai_gateway(&fake);
    let completion = gateway.complete(ProviderKind::OpenAi, &gpt("Oslo?")).await.unwrap();
    assert_eq!(completion.tool_calls().collect::<Vec<_>>(), vec![("call_1", "get_weather", &json!({"city":"Oslo"}))]);
    assert_eq!(completion.finish_reason, FinishReason::ToolCalls);
    assert_eq!(completion.usage.input_tokens, Some(50));
    assert_eq!(completion.usage.cache_read_tokens, Some(10));
    let sent = fake.last_request().unwrap().body;
    assert_eq!(sent["stream"], false);
    assert!(sent.get("stream_options").is_none(), "stream_options is only valid with stream: true");
}

#[tokio::test]
async fn insufficient_quota_is_a_spend_limit_and_never_retried() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::spend_limit());
    let gateway = openai_gateway(&fake);
    let error = gateway.stream(ProviderKind::OpenAi, &gpt("x")).await.unwrap_err();
    assert!(matches!(error, LlmError::SpendLimit { .. }), "{error:?}");
    assert!(!error.retryable());
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn a_json_answer_to_a_streaming_request_is_replayed_as_a_stream() {
    let fake = FakeOpenAi::start().await;
    let body = json!({"id":"chatcmpl-j","object":"chat.completion","model":"m","choices":[{"index":0,
        "message":{"role":"assistant","content":"Whole answer"},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}});
    fake.push(Reply::raw(200, "application/json", body.to_string()));
    let gateway = openai_gateway(&fake);
    let (events, error) = collect(gateway.stream(ProviderKind::OpenAi, &gpt("x")).await.unwrap()).await;
    assert_eq!(error, None);
    assert_eq!(streamed_text(&events), "Whole answer");
    assert_eq!(finish(&events).usage.output_tokens, Some(2));
}
