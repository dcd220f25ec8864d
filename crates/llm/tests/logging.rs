#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The gateway's logs: request ids and rate-limit headers at debug, the retry warning, and never the API key.
//! A binary of its own because it installs a process-wide subscriber (thread-scoped ones race with other tests
//! over `tracing`'s global callsite cache).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use mentorfy_fakes::anthropic::{FakeAnthropic, Reply};
use mentorfy_llm::{ChatRequest, Gateway, GatewaySettings, Message, ProviderKind, ProviderSettings};

const KEY: &str = "sk-ant-test-SECRET-key";

/// A writer that keeps everything written to it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn debug_logs_carry_the_request_id_and_rate_limits_but_never_the_key() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let fake = FakeAnthropic::start().await;
    fake.push(Reply::status(529));
    fake.push(Reply::text("Hi").header("anthropic-ratelimit-requests-remaining", "41"));
    let settings = GatewaySettings {
        anthropic: Some(ProviderSettings::anthropic(KEY).with_base_url(fake.url())),
        backoff_base: Duration::from_millis(1),
        ..GatewaySettings::default()
    };
    let gateway = Gateway::new(settings).unwrap();
    let request = ChatRequest {
        model: "claude-haiku-4-5".into(),
        system: None,
        messages: vec![Message::user("x")],
        tools: Vec::new(),
        temperature: None,
        max_tokens: 16,
    };
    let mut stream = gateway.stream(ProviderKind::Anthropic, &request).await.unwrap();
    while let Some(event) = stream.next().await {
        event.unwrap();
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request_id=req_fake_1") && logs.contains("request_id=req_fake_2"), "{logs}");
    assert!(logs.contains("anthropic-ratelimit-requests-remaining=41"), "{logs}");
    assert!(logs.contains("retrying"), "{logs}");
    assert!(!logs.contains("SECRET"), "the key leaked into the logs: {logs}");
    assert!(!format!("{gateway:?}").contains("SECRET"));
}
