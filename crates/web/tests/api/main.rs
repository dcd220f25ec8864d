//! Integration tests of the HTTP API: the real app on a random port, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

mod admin;
mod analysis;
mod analytics;
mod chat;
mod conversations;
mod errors;
mod failures;
mod ingest;
mod judge;
mod llm_calls;
mod memory;
mod platform;
mod returning;
mod saved_views;
mod session_report;
mod sessions;
mod settings;
