#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Integration tests of the LLM gateway against the local fake providers (`mentorfy_fakes`): what we send, what we
//! make of what comes back, retries, timeouts and connection handling. Never reaches the internet.

mod anthropic;
mod helpers;
mod openai;
mod retries;
mod timeouts;
