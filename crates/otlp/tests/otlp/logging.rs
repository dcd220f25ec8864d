#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What the exporter logs: one rate-limited warning for many dropped spans, and never a header value.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use mentorfy_fakes::otlp::FakeCollector;
use mentorfy_otlp::{Exporter, ExporterSettings};

use crate::helpers::{chat_span, closed_port_addr, install_crypto, numbered_span, resource, wait_until};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every log line of the current thread (the tests run on a current-thread runtime, so the exporter's task
/// logs here too).
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(flavor = "current_thread")]
async fn dropped_spans_are_reported_in_one_rate_limited_warning() {
    install_crypto();
    let (logs, _guard) = capture();
    let addr = closed_port_addr();
    let mut settings = ExporterSettings::otlp(&format!("http://{addr}"), Default::default(), vec![], resource());
    settings.max_queue = 4;
    settings.max_retries = 0;
    let exporter = Exporter::spawn(settings);
    for i in 0..1_000 {
        exporter.export(numbered_span(i));
    }
    assert_eq!(exporter.stats().dropped, 996);
    exporter.shutdown(Duration::from_millis(200)).await;
    let text = logs.text();
    let warnings = text.lines().filter(|l| l.contains("dropping OTLP spans")).count();
    assert_eq!(warnings, 1, "{text}");
}

#[tokio::test(flavor = "current_thread")]
async fn logs_never_contain_header_values() {
    install_crypto();
    let (logs, _guard) = capture();
    let collector = FakeCollector::start().await;
    collector.fail_next(1, 400, None);
    let mut settings = ExporterSettings::langfuse(&collector.url(), "pk-lf-public", "sk-lf-very-secret", resource());
    settings.flush_interval = Duration::from_millis(10);
    settings.headers.push(("x-api-key".into(), "another-secret".into()));
    tracing::info!(?settings, "starting");
    let exporter = Exporter::spawn(settings);
    exporter.export(chat_span());
    assert!(wait_until(Duration::from_secs(10), || exporter.stats().failed == 1).await);
    exporter.export(chat_span());
    exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(exporter.stats().exported, 1);

    let text = logs.text();
    let basic = base64::engine::general_purpose::STANDARD.encode("pk-lf-public:sk-lf-very-secret");
    assert!(text.contains("OTLP export failed"), "{text}");
    for secret in ["sk-lf-very-secret", basic.as_str(), "another-secret"] {
        assert!(!text.contains(secret), "{secret} leaked into the logs:\n{text}");
    }
}
