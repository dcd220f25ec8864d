//! The memory crate's one error type, with the retry advice a job queue needs (specs/supermemory.md §6).

use std::time::Duration;

use mentorfy_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The caller's input is unusable (a container outside `^[A-Za-z0-9_-]{1,100}$`, empty content, an
    /// unreadable model folder). Permanent.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The memory (or the container) does not exist. Permanent.
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend cannot do this at all (Supermemory has no "list a container" endpoint). Permanent.
    #[error("not supported by {backend}: {operation}")]
    Unsupported { backend: &'static str, operation: &'static str },
    /// The service refused the request for good (HTTP 400, 401, 402, 404 other than the container fallback…):
    /// do not retry; `status` tells configuration problems (401) from quota (402).
    #[error("memory service refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// A transient failure (HTTP 429 or 5xx, a timeout, a connection error, a busy database): retry later, after
    /// `retry_after` when the service said how long.
    #[error("memory service unavailable: {message}")]
    Unavailable { message: String, retry_after: Option<Duration> },
    /// Anything else: a bug, corrupt data, an unexpected response.
    #[error("memory error: {0}")]
    Other(String),
}

impl MemoryError {
    /// Whether the same call may succeed if made again later.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// How long the service asked us to wait (`Retry-After` on a 429 or 503), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<StoreError> for MemoryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(message) => Self::Unavailable { message, retry_after: None },
            StoreError::Conflict(m) => Self::Other(format!("conflict: {m}")),
            StoreError::Config(m) | StoreError::Other(m) => Self::Other(m),
        }
    }
}
