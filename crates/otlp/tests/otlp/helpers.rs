#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Shared test data: a GenAI chat span like the spec's example, and exporter settings tuned for fast tests.

use std::time::Duration;

use mentorfy_otlp::{AnyValue, ExporterSettings, KeyValue, Protocol, Resource, Span, SpanEvent, SpanKind, StatusCode};

pub const TRACE_ID: [u8; 16] =
    [0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c];
pub const SPAN_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];
pub const PARENT_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73];

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn resource() -> Resource {
    Resource::new("chat-backend", "0.1.0").attr("deployment.environment.name", "production")
}

/// The spec's §8 chat span.
pub fn chat_span() -> Span {
    let mut span = Span {
        trace_id: TRACE_ID,
        span_id: SPAN_ID,
        parent_span_id: Some(PARENT_ID),
        name: "chat claude-sonnet-4-5-20250929".into(),
        kind: SpanKind::Client,
        start_unix_nano: 1_763_776_800_000_000_000,
        end_unix_nano: 1_763_776_801_400_000_000,
        attributes: Vec::new(),
        events: Vec::new(),
        status: StatusCode::Unset,
        status_message: None,
    };
    span.attr("gen_ai.operation.name", "chat")
        .attr("gen_ai.provider.name", "anthropic")
        .attr("gen_ai.request.model", "claude-sonnet-4-5-20250929")
        .attr("gen_ai.request.stream", true)
        .attr("gen_ai.request.max_tokens", 4096i64)
        .attr("gen_ai.response.finish_reasons", ["end_turn"])
        .attr("gen_ai.response.time_to_first_chunk", 0.42)
        .attr("gen_ai.usage.input_tokens", 812u64)
        .attr("gen_ai.usage.output_tokens", 143i64)
        .attr("session.id", "chat_8f2c")
        .attr("server.port", 443i64);
    span
}

/// A span exercising every value type, an event and an error status.
pub fn rich_span() -> Span {
    let mut span = Span::start(mentorfy_otlp::new_trace_id(), None, "execute_tool get_weather", SpanKind::Internal);
    span.attr("s", "text ü ✓")
        .attr("b", false)
        .attr("i", -42i64)
        .attr("big", i64::MAX)
        .attr("d", 1.0)
        .attr("arr", AnyValue::Array(vec![AnyValue::from("a"), AnyValue::from(1i64), AnyValue::from(true)]))
        .attr("kv", vec![KeyValue::new("inner", "x"), KeyValue::new("n", 7i64)])
        .attr("bytes", AnyValue::Bytes(vec![0, 1, 2, 255]))
        .event(
            SpanEvent::new("gen_ai.evaluation.result")
                .attr("gen_ai.evaluation.name", "helpfulness")
                .attr("gen_ai.evaluation.score.value", 0.82),
        )
        .error("overloaded_error", "provider overloaded")
        .end();
    span
}

pub fn numbered_span(i: usize) -> Span {
    let mut span = Span::start(mentorfy_otlp::new_trace_id(), None, format!("span {i}"), SpanKind::Internal);
    span.attr("n", i).end();
    span
}

/// Settings with short intervals and backoffs so tests run fast.
pub fn fast_settings(endpoint: &str, protocol: Protocol) -> ExporterSettings {
    let mut settings = ExporterSettings::new(endpoint, protocol, Vec::new(), resource());
    settings.flush_interval = Duration::from_millis(20);
    settings.request_timeout = Duration::from_secs(5);
    settings.initial_backoff = Duration::from_millis(20);
    settings.max_backoff = Duration::from_millis(200);
    settings
}

/// A loopback address nothing listens on.
pub fn closed_port_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < until {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}
