#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Integration tests for mentorfy-otlp: the encodings (checked against the canonical `opentelemetry-proto` decoder in
//! the fake collector) and the exporter against the fake collector.

mod encoding;
mod exporter;
mod helpers;
mod logging;
mod settings;
