//! A small async client for Sensei's ingestion API: send your AI agents' conversations to Mentorfy. Used by
//! `mentorfy seed-demo` and by anyone embedding Sensei in Rust. It speaks the HTTP contract only and must not
//! depend on the server's crates.
//!
//! Two endpoints:
//! - [`Client::track`]: `POST /api/v1/conversations/track`, messages of one conversation;
//! - [`Client::ingest`] / [`Client::ingest_all`]: `POST /api/v1/ingest`, batches of up to 1,000 events, each
//!   with its own id and verdict.
//!
//! Retries follow `shared/specs/rate-limits-and-webhooks.md` §4: network errors, 408, 429 and 5xx are retried
//! with the server's `Retry-After` as the minimum delay plus exponential backoff with jitter; other 4xx are
//! returned at once. A retry resends the same bytes, so the same event ids: the server stores each event once.
//! [`Client::ingest_all`] also resends only the events refused with a per-event 429/503, and halves a batch the
//! server refuses as too large (413).
//!
//! Delivery is at least once *while you keep calling*: this client has no queue of its own, and an error
//! returned after the last retry means the events were not acknowledged; sending them again later is safe.
//!
//! ```no_run
//! use mentorfy_client::{BatchEvent, Client, Role, TrackMessage, TrackRequest};
//! use time::OffsetDateTime;
//!
//! # async fn demo() -> Result<(), mentorfy_client::ClientError> {
//! let client = Client::builder("http://localhost:8080", std::env::var("SENSEI_API_KEY").unwrap_or_default())
//!     .max_retries(3)
//!     .build()?;
//! let now = OffsetDateTime::now_utc();
//! let mut request = TrackRequest::new(
//!     "support-4711",
//!     vec![
//!         TrackMessage::new(Role::User, "How do I export my data?", now).with_id("m1"),
//!         TrackMessage::new(Role::Assistant, "Settings → Export, then choose CSV.", now).with_id("m2"),
//!     ],
//! );
//! request.agent_id = Some("support-bot".into());
//! let answer = client.track(&request).await?;
//! println!("{} stored, {} already there", answer.accepted, answer.duplicates);
//!
//! // Many conversations at once: one event per conversation, retried per event.
//! let result = client.ingest_all(&[BatchEvent::track(request)]).await?;
//! for error in &result.errors {
//!     eprintln!("event {:?} refused ({}): {}", error.id, error.status, error.message);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The API key is sent only in the `Authorization` header, marked sensitive; `Debug` output redacts it.

mod client;
mod error;
mod types;

pub use client::{Client, ClientBuilder, MAX_BATCH_EVENTS};
pub use error::{ApiError, ClientError};
pub use types::{
    BatchEvent, BatchResponse, EventBody, EventError, EventSuccess, MessageEvent, Role, Timestamp, TrackMessage,
    TrackRequest, TrackResponse,
};
