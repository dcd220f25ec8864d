//! The `MemoryStore` interface shared by the embedded engine and the Supermemory client, and its value types.
//! Knows nothing of HTTP servers or SQL.

use std::future::Future;
use std::pin::Pin;

use time::OffsetDateTime;

use crate::error::MemoryError;

/// A boxed, sendable future: keeps [`MemoryStore`] object-safe (`Arc<dyn MemoryStore>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A memory namespace, `{orgId}-{sessionId}` by convention. Always matches `^[A-Za-z0-9_-]{1,100}$` (the
/// intersection of what every Supermemory endpoint accepts), so it can be sent anywhere unchecked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Container(String);

impl Container {
    pub fn parse(s: impl Into<String>) -> Result<Self, MemoryError> {
        let s = s.into();
        let ok =
            !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s))
        } else {
            Err(MemoryError::Invalid(format!("container tag '{s}' must match ^[A-Za-z0-9_-]{{1,100}}$")))
        }
    }

    /// The session's container: `{org}-{session}` (a UUID's hyphens are allowed as they are).
    pub fn for_session(org: &str, session: &str) -> Result<Self, MemoryError> {
        Self::parse(format!("{org}-{session}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Container {
    type Err = MemoryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A memory to store.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewMemory {
    /// Natural-language text, entity-centric ("Dana prefers dark mode"). 1..10000 characters.
    pub content: String,
    /// What produced it: `chat`, `context`, `import`…
    pub source: String,
    /// When set, a memory with the same key in the same container is replaced (a changed onboarding answer).
    pub key: Option<String>,
    /// When what it tells happened (a chat turn's time); the store's time when `None`.
    pub date: Option<OffsetDateTime>,
    /// A flat JSON object (string, number, bool or string-array values: Supermemory's rule).
    pub metadata: serde_json::Value,
    /// Consecutive memories (a chat session's turns) share a group and are ordered by `position`, so search can
    /// read each turn with the one before it and lift a hit's neighbours. Embedded store only; Supermemory
    /// receives them as metadata.
    pub group: Option<String>,
    pub position: Option<i64>,
}

/// Search limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// At most this many results (1..100).
    pub limit: usize,
    /// At most this many estimated tokens in total (chars / 4, rounded up per result); `None` for no cap.
    pub token_budget: Option<usize>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self { limit: 10, token_budget: None }
    }
}

/// One search result (or listed memory).
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryHit {
    pub id: String,
    pub content: String,
    /// Relevance within this query, higher is better (embedded: blended 0..≈1.25; Supermemory: `similarity`).
    /// 0 for listed memories.
    pub score: f32,
    /// The memory's date (its `date`, else when it was stored); prompts show it so the model can reason in time.
    pub created_at: OffsetDateTime,
    pub source: String,
}

/// Where memories live. Implementations: [`crate::EmbeddedMemory`] (our database) and [`crate::Supermemory`].
pub trait MemoryStore: Send + Sync {
    /// Stores a memory and returns its id; replaces the container's memory with the same `key`, if any.
    fn add<'a>(&'a self, container: &'a Container, memory: NewMemory) -> BoxFuture<'a, Result<String, MemoryError>>;

    /// The most relevant memories for `query`, best first, within `options`.
    fn search<'a>(
        &'a self,
        container: &'a Container,
        query: &'a str,
        options: SearchOptions,
    ) -> BoxFuture<'a, Result<Vec<MemoryHit>, MemoryError>>;

    /// The newest `limit` memories, newest first.
    fn list<'a>(&'a self, container: &'a Container, limit: usize)
    -> BoxFuture<'a, Result<Vec<MemoryHit>, MemoryError>>;

    /// Forgets the memory `id`; forgetting one that is already gone is not an error.
    fn forget<'a>(&'a self, container: &'a Container, id: &'a str) -> BoxFuture<'a, Result<(), MemoryError>>;

    /// Forgets the container's memory stored under `key` (an onboarding answer that was removed); no such
    /// memory is not an error.
    fn forget_key<'a>(&'a self, container: &'a Container, key: &'a str) -> BoxFuture<'a, Result<(), MemoryError>>;

    /// A short name for logs: `embedded` or `supermemory`.
    fn backend(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_follows_the_project_rule() {
        assert!(Container::for_session("rafael-tatts", "3f9c2a1e-8b7d-4c6f-9a1b-2c3d4e5f6a7b").is_ok());
        assert!(Container::parse("mentor_session_3f9c").is_ok());
        for bad in ["", "a.b", "a:b", "a b", "ü", &"x".repeat(101)] {
            assert!(Container::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Container::parse("x".repeat(100)).is_ok());
    }
}
