#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Deadlines and connection lifetime: a stall before the first token is retried, the total deadline ends a call
//! before or during streaming, and dropping a stream closes the upstream connection.

use std::time::{Duration, Instant};

use futures::StreamExt;
use mentorfy_fakes::anthropic::{FakeAnthropic, Reply};
use mentorfy_fakes::openai::FakeOpenAi;
use mentorfy_llm::{LlmError, ProviderKind, StreamEvent, TimeoutPhase};

use crate::helpers::*;

#[tokio::test]
async fn a_stall_before_the_first_token_is_retried_on_a_new_connection() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::stall_before_first_token(Duration::from_secs(10)));
    fake.push(Reply::text("Fresh answer."));
    let gateway = anthropic_gateway_with(&fake, |s| s.first_token_timeout = Duration::from_millis(300));
    let started = Instant::now();
    let stream = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap();
    assert_eq!(stream.attempts(), 2);
    assert!(stream.time_to_first_event() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(5));
    let (events, error) = collect(stream).await;
    assert_eq!((streamed_text(&events).as_str(), error), ("Fresh answer.", None));
    assert_eq!(fake.wait_for_closed_early(1, Duration::from_secs(5)).await, 1, "the stalled response was dropped");
}

#[tokio::test]
async fn a_stall_without_retries_left_is_a_first_token_timeout() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::stall_before_first_token(Duration::from_secs(10)));
    let gateway = anthropic_gateway_with(&fake, |s| {
        s.first_token_timeout = Duration::from_millis(200);
        s.max_retries = 0;
    });
    let error = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap_err();
    assert_eq!(error, LlmError::Timeout(TimeoutPhase::FirstToken));
    assert!(error.retryable());
    assert_eq!(error.error_type(), "timeout");
}

#[tokio::test]
async fn the_first_token_deadline_does_not_cut_a_slow_but_flowing_stream() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("one two three four five six").with_delta_delay(Duration::from_millis(100)));
    let gateway = anthropic_gateway_with(&fake, |s| s.first_token_timeout = Duration::from_millis(500));
    let (events, error) = collect(gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap()).await;
    assert_eq!((streamed_text(&events).as_str(), error), ("one two three four five six", None));
}

#[tokio::test]
async fn the_total_deadline_applies_before_the_first_event() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::delay_first_byte(Duration::from_secs(10)));
    let gateway = anthropic_gateway_with(&fake, |s| s.total_timeout = Duration::from_millis(300));
    let started = Instant::now();
    let error = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap_err();
    assert_eq!(error, LlmError::Timeout(TimeoutPhase::Total));
    assert!(!error.retryable());
    assert!(started.elapsed() < Duration::from_secs(3));

    fake.push(Reply::delay_first_byte(Duration::from_secs(10)));
    let error = gateway.complete(ProviderKind::Anthropic, &request("x")).await.unwrap_err();
    assert_eq!(error, LlmError::Timeout(TimeoutPhase::Total));
}

#[tokio::test]
async fn the_total_deadline_ends_a_stream_midway() {
    let fake = FakeAnthropic::start().await;
    let long = "word ".repeat(200);
    fake.push(Reply::text(long).with_delta_delay(Duration::from_millis(50)));
    let gateway = anthropic_gateway_with(&fake, |s| s.total_timeout = Duration::from_millis(600));
    let (events, error) = collect(gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap()).await;
    assert!(!events.is_empty() && !matches!(events.last(), Some(StreamEvent::Finish(_))));
    assert_eq!(error, Some(LlmError::Timeout(TimeoutPhase::Total)));
    assert_eq!(fake.wait_for_closed_early(1, Duration::from_secs(5)).await, 1);
}

#[tokio::test]
async fn dropping_an_anthropic_stream_closes_the_upstream_connection() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("word ".repeat(500)).with_delta_delay(Duration::from_millis(10)));
    let gateway = anthropic_gateway(&fake);
    let mut stream = gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap();
    for _ in 0..3 {
        stream.next().await.unwrap().unwrap();
    }
    drop(stream);
    assert_eq!(fake.wait_for_closed_early(1, Duration::from_secs(5)).await, 1);
    assert_eq!(fake.streams_completed(), 0);
}

#[tokio::test]
async fn dropping_an_openai_stream_closes_the_upstream_connection() {
    let fake = FakeOpenAi::start().await;
    fake.push(mentorfy_fakes::openai::Reply::text("word ".repeat(500)).with_delta_delay(Duration::from_millis(10)));
    let gateway = openai_gateway(&fake);
    let mut req = request("x");
    req.model = "gpt-4o-mini".into();
    let mut stream = gateway.stream(ProviderKind::OpenAi, &req).await.unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    assert_eq!(fake.wait_for_closed_early(1, Duration::from_secs(5)).await, 1);
}

#[tokio::test]
async fn a_completed_stream_is_not_counted_as_closed_early() {
    let fake = FakeAnthropic::start().await;
    let gateway = anthropic_gateway(&fake);
    let (_, error) = collect(gateway.stream(ProviderKind::Anthropic, &request("x")).await.unwrap()).await;
    assert_eq!(error, None);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.connections_closed_early(), 0);
    assert_eq!(fake.streams_completed(), 1);
}
