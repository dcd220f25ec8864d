//! The Mentor domain's error type: a small surface the web layer maps to statuses.

use mentorfy_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MentorError {
    /// No such thing (404).
    #[error("{0}")]
    NotFound(String),
    /// A request field is well-formed JSON but not acceptable (422), or names an unknown org (400).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// An unknown `orgId` (400).
    #[error("{0}")]
    UnknownOrg(String),
    /// The caller is authenticated but may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model could not be called or failed before answering.
    #[error(transparent)]
    Llm(#[from] mentorfy_llm::LlmError),
    /// The memory service failed (503); the text says how.
    #[error("memory: {0}")]
    Memory(String),
}

impl MentorError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { field, message: message.into() }
    }
}
