//! Sensei, the conversation-intelligence half: what an ingested conversation is, how each ingestion path (the
//! track API, the batch API, OTLP GenAI spans) turns its input into one, and the service that stores it with its
//! analysis job. Knows nothing of HTTP: the web crate maps [`SenseiError`] and [`ValidationError`] to responses.

pub mod alerts;
pub mod analysis;
pub mod batch;
pub mod demo;
mod error;
pub mod eval;
pub mod ingest;
pub mod jobs;
pub mod judge;
pub mod otel;
pub mod patterns;
pub mod pipeline;
mod service;
pub mod webhook;

pub use error::SenseiError;
pub use ingest::{
    IngestConversation, IngestMessage, MAX_CONTENT_BYTES, MAX_MESSAGES, Role, TrackBody, TrackMessage, ValidationError,
};
pub use service::{ANALYSIS_JOB_KIND, ANALYSIS_QUEUE, EventOutcome, IngestOutcome, Ingestor, KeyContext, Source};
