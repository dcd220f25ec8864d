#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The exporter against the fake collector: delivery in both encodings, Langfuse, retries, back-pressure, shutdown.

use std::time::{Duration, Instant};

use base64::Engine as _;
use mentorfy_fakes::otlp::FakeCollector;
use mentorfy_otlp::{ExportStats, Exporter, ExporterSettings, Protocol, hex};

use crate::helpers::{
    chat_span, closed_port_addr, fast_settings, install_crypto, numbered_span, resource, rich_span, wait_until,
};

const WAIT: Duration = Duration::from_secs(10);

async fn deliver_and_check(protocol: Protocol, compression: bool) {
    install_crypto();
    let collector = FakeCollector::start().await;
    let mut settings = fast_settings(&collector.traces_url(), protocol);
    settings.compression = compression;
    settings.headers = vec![("x-tenant".into(), "acme".into())];
    let exporter = Exporter::spawn(settings);

    let chat = chat_span();
    exporter.export(chat.clone());
    exporter.export(rich_span());
    let spans = collector.wait_for_spans(2, WAIT).await;
    assert_eq!(spans.len(), 2, "requests: {:?}", collector.requests());

    let requests = collector.requests();
    let request = &requests[0];
    assert_eq!(request.status, 200);
    assert_eq!(request.path, "/v1/traces");
    assert_eq!(request.content_type, protocol.content_type());
    assert_eq!(request.content_encoding.as_deref(), compression.then_some("gzip"));
    assert_eq!(request.header("x-tenant"), Some("acme"));

    let received = spans.iter().find(|s| s.span_id_hex == hex(&chat.span_id)).unwrap();
    assert_eq!(received.trace_id_hex, hex(&chat.trace_id));
    assert_eq!(received.kind, 3);
    assert_eq!(received.int("gen_ai.usage.output_tokens"), Some(143));
    assert_eq!(received.resource_str("service.name"), Some("chat-backend"));

    exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(exporter.stats(), ExportStats { exported: 2, dropped: 0, failed: 0, batches: requests.len() as u64 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_delivers_protobuf_to_the_collector() {
    deliver_and_check(Protocol::HttpProtobuf, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_delivers_json_to_the_collector() {
    deliver_and_check(Protocol::HttpJson, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_gzips_protobuf_when_compression_is_on() {
    deliver_and_check(Protocol::HttpProtobuf, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_gzips_json_when_compression_is_on() {
    deliver_and_check(Protocol::HttpJson, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn langfuse_settings_reach_the_langfuse_path_with_auth_headers() {
    install_crypto();
    let collector = FakeCollector::start().await;
    let mut settings = ExporterSettings::langfuse(&collector.url(), "pk-lf-test", "sk-lf-test", resource());
    settings.flush_interval = Duration::from_millis(20);
    let exporter = Exporter::spawn(settings);
    exporter.export(chat_span());
    assert_eq!(collector.wait_for_spans(1, WAIT).await.len(), 1);

    let request = &collector.requests()[0];
    assert_eq!(request.path, "/api/public/otel/v1/traces");
    assert_eq!(request.content_type, "application/x-protobuf");
    let basic = base64::engine::general_purpose::STANDARD.encode("pk-lf-test:sk-lf-test");
    assert_eq!(request.header("authorization"), Some(format!("Basic {basic}").as_str()));
    assert_eq!(request.header("x-langfuse-ingestion-version"), Some("4"));
    exporter.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_batched_up_to_max_batch() {
    install_crypto();
    let collector = FakeCollector::start().await;
    let mut settings = fast_settings(&collector.traces_url(), Protocol::HttpProtobuf);
    settings.max_batch = 5;
    settings.flush_interval = Duration::from_secs(3600);
    let exporter = Exporter::spawn(settings);
    for i in 0..12 {
        exporter.export(numbered_span(i));
    }
    // Two full batches go at once; the remaining two wait for the (hour-long) interval, so shutdown must flush them.
    assert_eq!(collector.wait_for_spans(10, WAIT).await.len(), 10);
    exporter.shutdown(Duration::from_secs(5)).await;
    let sizes: Vec<usize> = collector.requests().iter().map(|r| r.spans.len()).collect();
    assert_eq!(sizes, vec![5, 5, 2]);
    assert_eq!(exporter.stats(), ExportStats { exported: 12, dropped: 0, failed: 0, batches: 3 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_on_503_honouring_retry_after_then_succeeds() {
    install_crypto();
    let collector = FakeCollector::start().await;
    collector.fail_next(2, 503, Some(1));
    let mut settings = fast_settings(&collector.traces_url(), Protocol::HttpJson);
    // Without Retry-After the exporter would wait a minute: delivery within the test's wait proves it was honoured.
    settings.initial_backoff = Duration::from_secs(60);
    settings.max_backoff = Duration::from_secs(60);
    let exporter = Exporter::spawn(settings);
    let started = Instant::now();
    exporter.export(chat_span());
    let spans = collector.wait_for_spans(1, WAIT).await;
    assert_eq!(spans.len(), 1);
    assert!(started.elapsed() >= Duration::from_millis(1900), "retried after {:?}", started.elapsed());
    let statuses: Vec<u16> = collector.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);
    exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(exporter.stats(), ExportStats { exported: 1, dropped: 0, failed: 0, batches: 1 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_on_429_502_and_504_with_backoff() {
    install_crypto();
    let collector = FakeCollector::start().await;
    collector.fail_next(1, 429, None);
    collector.fail_next(1, 502, None);
    collector.fail_next(1, 504, None);
    let exporter = Exporter::spawn(fast_settings(&collector.traces_url(), Protocol::HttpProtobuf));
    exporter.export(chat_span());
    assert_eq!(collector.wait_for_spans(1, WAIT).await.len(), 1);
    let statuses: Vec<u16> = collector.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 502, 504, 200]);
    exporter.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_max_retries() {
    install_crypto();
    let collector = FakeCollector::start().await;
    collector.fail_next(10, 503, None);
    let mut settings = fast_settings(&collector.traces_url(), Protocol::HttpProtobuf);
    settings.max_retries = 2;
    let exporter = Exporter::spawn(settings);
    exporter.export(chat_span());
    assert!(wait_until(WAIT, || exporter.stats().failed == 1).await, "{:?}", exporter.stats());
    assert_eq!(collector.requests().len(), 3, "one attempt and two retries");
    exporter.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn does_not_retry_on_400_and_keeps_exporting_afterwards() {
    install_crypto();
    let collector = FakeCollector::start().await;
    collector.fail_next(1, 400, None);
    let exporter = Exporter::spawn(fast_settings(&collector.traces_url(), Protocol::HttpJson));
    exporter.export(chat_span());
    assert!(wait_until(WAIT, || exporter.stats().failed == 1).await, "{:?}", exporter.stats());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(collector.requests().len(), 1, "a 400 is not retried");
    assert!(collector.spans().is_empty());

    exporter.export(rich_span());
    assert_eq!(collector.wait_for_spans(1, WAIT).await.len(), 1);
    exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(exporter.stats(), ExportStats { exported: 1, dropped: 0, failed: 1, batches: 1 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_success_is_counted_and_not_retried() {
    install_crypto();
    for protocol in [Protocol::HttpProtobuf, Protocol::HttpJson] {
        let collector = FakeCollector::start().await;
        collector.partial_success(1, "span too large");
        let exporter = Exporter::spawn(fast_settings(&collector.traces_url(), protocol));
        exporter.export(chat_span());
        exporter.export(rich_span());
        exporter.shutdown(Duration::from_secs(5)).await;
        assert_eq!(collector.requests().len(), 1, "{protocol}: a partial success is not retried");
        assert_eq!(exporter.stats(), ExportStats { exported: 1, dropped: 0, failed: 1, batches: 1 }, "{protocol}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_when_the_collector_is_not_up_yet() {
    install_crypto();
    let addr = closed_port_addr();
    let mut settings = fast_settings(&format!("http://{addr}/v1/traces"), Protocol::HttpProtobuf);
    settings.initial_backoff = Duration::from_millis(300);
    settings.max_backoff = Duration::from_millis(300);
    settings.max_retries = 20;
    let exporter = Exporter::spawn(settings);
    exporter.export(chat_span());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let collector = FakeCollector::start_at(addr).await;
    assert_eq!(collector.wait_for_spans(1, WAIT).await.len(), 1);
    exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(exporter.stats(), ExportStats { exported: 1, dropped: 0, failed: 0, batches: 1 });
}

/// Calls `export()` `n` times; returns the slowest single call and the total time.
fn export_many(exporter: &Exporter, n: usize) -> (Duration, Duration) {
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let span = numbered_span(i);
        let t = Instant::now();
        exporter.export(span);
        slowest = slowest.max(t.elapsed());
    }
    (slowest, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_collector_never_blocks_export_and_drops_are_counted() {
    install_crypto();
    let addr = closed_port_addr();
    let mut settings = fast_settings(&format!("http://{addr}/v1/traces"), Protocol::HttpProtobuf);
    settings.max_queue = 16;
    settings.max_batch = 8;
    settings.max_retries = 1000;
    let exporter = Exporter::spawn(settings);

    let n = 5_000;
    let (slowest, total) = export_many(&exporter, n);
    // A blocked call would take seconds (the request timeout, the collector's delay); these bounds only leave room
    // for a loaded test machine.
    assert!(slowest < Duration::from_millis(500), "one export() took {slowest:?}");
    assert!(total < Duration::from_millis(2500), "{n} export() calls took {total:?}");
    let stats = exporter.stats();
    assert!(stats.dropped >= (n - 16 - 8) as u64, "{stats:?}");
    assert_eq!(stats.exported, 0);

    let started = Instant::now();
    exporter.shutdown(Duration::from_millis(300)).await;
    assert!(started.elapsed() < Duration::from_secs(2), "shutdown took {:?}", started.elapsed());
    let stats = exporter.stats();
    assert_eq!(stats.exported + stats.dropped + stats.failed, n as u64, "every span is accounted for: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_collector_never_blocks_export() {
    install_crypto();
    let collector = FakeCollector::start().await;
    collector.delay(Duration::from_secs(3));
    let mut settings = fast_settings(&collector.traces_url(), Protocol::HttpJson);
    settings.max_queue = 32;
    settings.max_batch = 16;
    let exporter = Exporter::spawn(settings);

    let n = 2_000;
    let (slowest, total) = export_many(&exporter, n);
    // A blocked call would take seconds (the request timeout, the collector's delay); these bounds only leave room
    // for a loaded test machine.
    assert!(slowest < Duration::from_millis(500), "one export() took {slowest:?}");
    assert!(total < Duration::from_millis(2500), "{n} export() calls took {total:?}");
    assert!(exporter.stats().dropped > 0, "{:?}", exporter.stats());

    collector.delay(Duration::ZERO);
    exporter.shutdown(Duration::from_secs(10)).await;
    let stats = exporter.stats();
    assert_eq!(stats.exported + stats.dropped + stats.failed, n as u64, "{stats:?}");
    assert!(stats.exported >= 16, "the queued spans are still delivered: {stats:?}");
    assert_eq!(collector.spans().len() as u64, stats.exported);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out_and_are_retried() {
    install_crypto();
    let collector = FakeCollector::start().await;
    collector.delay(Duration::from_millis(500));
    let mut settings = fast_settings(&collector.traces_url(), Protocol::HttpProtobuf);
    settings.request_timeout = Duration::from_millis(100);
    settings.max_retries = 1;
    let exporter = Exporter::spawn(settings);
    exporter.export(chat_span());
    assert!(wait_until(WAIT, || exporter.stats().failed == 1).await, "{:?}", exporter.stats());
    exporter.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_queued_spans() {
    install_crypto();
    let collector = FakeCollector::start().await;
    let mut settings = fast_settings(&collector.traces_url(), Protocol::HttpProtobuf);
    settings.flush_interval = Duration::from_secs(3600);
    let exporter = Exporter::spawn(settings);
    for i in 0..10 {
        exporter.export(numbered_span(i));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(collector.requests().is_empty(), "nothing is sent before the interval");

    exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(collector.spans().len(), 10);
    assert_eq!(exporter.stats(), ExportStats { exported: 10, dropped: 0, failed: 0, batches: 1 });

    // After shutdown, export() is still safe: the span is dropped and counted; a second shutdown is a no-op.
    exporter.clone().export(chat_span());
    assert_eq!(exporter.stats().dropped, 1);
    exporter.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_by_its_timeout_while_retrying() {
    install_crypto();
    let collector = FakeCollector::start().await;
    collector.fail_next(100, 503, Some(30));
    let exporter = Exporter::spawn(fast_settings(&collector.traces_url(), Protocol::HttpProtobuf));
    exporter.export(chat_span());
    assert!(wait_until(WAIT, || !collector.requests().is_empty()).await);
    let started = Instant::now();
    exporter.shutdown(Duration::from_millis(500)).await;
    assert!(started.elapsed() < Duration::from_secs(2), "shutdown took {:?}", started.elapsed());
    assert_eq!(exporter.stats(), ExportStats { exported: 0, dropped: 0, failed: 1, batches: 0 });
}

#[tokio::test]
async fn a_disabled_exporter_does_nothing() {
    let exporter = Exporter::disabled();
    assert!(!exporter.is_enabled());
    exporter.export(chat_span());
    assert_eq!(exporter.stats(), ExportStats::default());
    exporter.shutdown(Duration::from_secs(1)).await;
}
