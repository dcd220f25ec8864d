#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The retry policy end to end: what is retried (connection errors, 408/409/429/5xx/529, `x-should-retry: true`,
//! an in-stream error before any content), what never is (spend limits, other 4xx, `x-should-retry: false`), how
//! long we wait (`retry-after-ms`, `retry-after`) and what is left when retries run out.

use std::time::{Duration, Instant};

use mentorfy_fakes::anthropic::{FakeAnthropic, Reply};
use mentorfy_llm::{Gateway, GatewaySettings, LlmError, ProviderKind, ProviderSettings};

use crate::helpers::*;

#[tokio::test]
async fn retryable_statuses_are_retried_until_success() {
    for status in [408, 409, 429, 500, 503, 504, 529] {
        let fake = FakeAnthropic::start().await;
        fake.push(Reply::status(status));
        fake.push(Reply::text("Made it."));
        let gateway = anthropic_gateway(&fake);
        let stream = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap();
        assert_eq!(stream.attempts(), 2, "status {status}");
        let (events, error) = collect(stream).await;
        assert_eq!((streamed_text(&events).as_str(), error), ("Made it.", None), "status {status}");
        assert_eq!(fake.request_count(), 2, "status {status}");
    }
}

#[tokio::test]
async fn non_streamed_calls_retry_too() {
    let fake = FakeAnthropic::start().await;
    fake.push_all([Reply::status(529), Reply::status(500), Reply::text("Third time.")]);
    let gateway = anthropic_gateway(&fake);
    let completion = gateway.complete(ProviderKind::Anthropic, &request("x")).await.unwrap();
    assert_eq!(completion.text(), "Third time.");
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn other_client_errors_are_not_retried_and_keep_type_and_request_id() {
    for status in [400, 401, 403, 404, 413] {
        let fake = FakeAnthropic::start().await;
        fake.push(Reply::status(status));
        let gateway = anthropic_gateway(&fake);
        let error = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap_err();
        let LlmError::Upstream { status: got, error_type, request_id, .. } = &error else { panic!("{error:?}") };
        assert_eq!(*got, status);
        assert!(
            error_type.as_deref().is_some_and(|t| t.ends_with("_error") || t == "request_too_large"),
            "{error_type:?}"
        );
        assert_eq!(request_id.as_deref(), Some("req_fake_1"));
        assert!(!error.public_message().contains("x-api-key"), "no upstream body in the public message");
        assert_eq!(fake.request_count(), 1, "status {status}");
    }
}

#[tokio::test]
async fn a_spend_limit_429_is_never_retried() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::spend_limit().retry_after_secs(1));
    let gateway = anthropic_gateway(&fake);
    let error = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap_err();
    assert!(matches!(error, LlmError::SpendLimit { .. }), "{error:?}");
    assert_eq!(error.error_type(), "spend_limit_reached");
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn x_should_retry_overrides_the_status() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::status(500).header("x-should-retry", "false"));
    let gateway = anthropic_gateway(&fake);
    let error = gateway.complete(ProviderKind::Anthropic, &request("x")).await.unwrap_err();
    assert!(matches!(error, LlmError::Upstream { status: 500, .. }), "{error:?}");
    assert_eq!(fake.request_count(), 1);

    fake.push(Reply::status(400).header("x-should-retry", "true"));
    fake.push(Reply::text("ok"));
    gateway.complete(ProviderKind::Anthropic, &request("x")).await.unwrap();
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn retry_after_ms_and_retry_after_seconds_are_honoured() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::status(429).retry_after_ms(300));
    let gateway = anthropic_gateway(&fake);
    let started = Instant::now();
    gateway.complete(ProviderKind::Anthropic, &request("x")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());

    fake.push(Reply::status(529).retry_after_secs(1));
    let started = Instant::now();
    let stream = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert!(stream.time_to_first_event() >= Duration::from_secs(1));
}

#[tokio::test]
async fn exhausted_retries_return_the_last_error_with_its_retry_after() {
    let fake = FakeAnthropic::start().await;
    fake.respond_with(|_| Reply::status(429).retry_after_ms(5));
    let gateway = anthropic_gateway(&fake);
    let error = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap_err();
    assert!(matches!(error, LlmError::RateLimited { .. }), "{error:?}");
    assert_eq!(error.retry_after(), Some(Duration::from_millis(5)));
    assert_eq!(error.error_type(), "rate_limit_error");
    assert!(error.retryable());
    assert_eq!(fake.request_count(), 3, "1 + max_retries (2)");

    let fake = FakeAnthropic::start().await;
    fake.respond_with(|_| Reply::status(529));
    let gateway = anthropic_gateway_with(&fake, |s| s.max_retries = 0);
    let error = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap_err();
    assert_eq!(error.error_type(), "overloaded_error");
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn an_in_stream_error_before_any_content_is_retried_like_a_529() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::stream_error("overloaded_error", "Overloaded"));
    fake.push(Reply::text("Second try."));
    let gateway = anthropic_gateway(&fake);
    let stream = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap();
    assert_eq!(stream.attempts(), 2);
    let (events, error) = collect(stream).await;
    assert_eq!((streamed_text(&events).as_str(), error), ("Second try.", None));
}

#[tokio::test]
async fn a_retry_wait_that_would_pass_the_total_deadline_gives_up_at_once() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::status(429).retry_after_secs(5));
    let gateway = anthropic_gateway_with(&fake, |s| s.total_timeout = Duration::from_secs(2));
    let started = Instant::now();
    let error = gateway.complete(ProviderKind::Anthropic, &request("x")).await.unwrap_err();
    assert!(matches!(error, LlmError::RateLimited { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn connection_errors_are_retried_then_reported_as_transport() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener); // nothing listens there any more
    let provider = ProviderSettings::anthropic(ANTHROPIC_KEY).with_base_url(url);
    let gateway = Gateway::new(GatewaySettings { anthropic: Some(provider), ..settings() }).unwrap();
    let error = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap_err();
    assert!(matches!(error, LlmError::Transport(_)), "{error:?}");
    assert!(error.retryable());
    assert_eq!(error.error_type(), "_OTHER");
    assert_eq!(error.public_message(), "Could not reach the model provider. Please retry.");
    assert!(!error.to_string().contains("SECRET"));
}
