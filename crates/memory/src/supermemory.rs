//! The Supermemory client (specs/supermemory.md): writes with `POST /v4/memories` (falling back once per tag to
//! `POST /v3/documents`, which creates the container), keyed writes as `/v3/documents` with a stable `customId`
//! (so a changed answer replaces the old document), search with `POST /v4/search`, forget with
//! `DELETE /v4/memories`. No retries here: errors say whether and when to retry, and the job queue does it.
//! Responses are read leniently (unknown fields ignored, optional fields defaulted).

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::{BoxFuture, Container, MemoryHit, MemoryStore, NewMemory, SearchOptions};
use crate::error::MemoryError;
use crate::text::estimate_tokens;

/// Where and how to reach Supermemory.
#[derive(Debug, Clone, PartialEq)]
pub struct SupermemoryConfig {
    /// `https://api.supermemory.ai` in production; a fake's URL in tests.
    pub base_url: String,
    pub api_key: String,
    /// Search is on the chat's critical path: give up after this (the spec advises about 2 s).
    pub search_timeout: Duration,
    /// Writes run off the request path.
    pub write_timeout: Duration,
    /// `threshold` sent with searches (0..1; the API's default is 0.6).
    pub threshold: f32,
}

impl SupermemoryConfig {
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: api_key.into(),
            search_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(10),
            threshold: 0.6,
        }
    }
}

/// The client. One per process (it pools connections).
pub struct Supermemory {
    http: reqwest::Client,
    config: SupermemoryConfig,
    /// Tags known to exist, so the `/v3/documents` fallback runs at most once per tag in this process.
    known_containers: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Supermemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supermemory").field("base_url", &self.config.base_url).finish_non_exhaustive()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    error: Option<String>,
    details: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreatedMemories {
    memories: Vec<CreatedMemory>,
    #[serde(rename = "documentId")]
    document_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreatedMemory {
    id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreatedDocument {
    id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SearchResponse {
    results: Vec<SearchResult>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SearchResult {
    id: String,
    memory: Option<String>,
    chunk: Option<String>,
    metadata: Option<Value>,
    #[serde(rename = "updatedAt")]
    updated_at: Option<String>,
    similarity: Option<f64>,
}

impl Supermemory {
    /// A client with its own connection pool (installs the ring TLS provider if none is installed yet).
    pub fn new(config: SupermemoryConfig) -> Result<Self, MemoryError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| MemoryError::Other(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self::with_client(http, config))
    }

    /// A client over a shared `reqwest::Client`.
    pub fn with_client(http: reqwest::Client, config: SupermemoryConfig) -> Self {
        Self { http, config, known_containers: Mutex::new(HashSet::new()) }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<(u16, Value), MemoryError> {
        let request = self.http.request(method, self.url(path)).bearer_auth(&self.config.api_key).timeout(timeout);
        let request = if body.is_null() { request } else { request.json(body) };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(transport)?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok((status, value));
        }
        let detail: ErrorBody = serde_json::from_value(value.clone()).unwrap_or_default();
        let mut message = detail.error.unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
        if let Some(d) = detail.details.filter(|d| !d.is_empty()) {
            message = format!("{message} ({d})");
        }
        if status == 429 || status >= 500 {
            return Err(MemoryError::Unavailable { message: format!("HTTP {status}: {message}"), retry_after });
        }
        Err(MemoryError::Rejected { status, message })
    }

    fn knows(&self, container: &Container) -> bool {
        self.known_containers.lock().unwrap_or_else(PoisonError::into_inner).contains(container.as_str())
    }

    fn remember(&self, container: &Container) {
        self.known_containers.lock().unwrap_or_else(PoisonError::into_inner).insert(container.as_str().to_owned());
    }

    /// Stores a memory; returns Supermemory's memory id (or, through `/v3/documents`, the document id).
    pub async fn add(&self, container: &Container, memory: NewMemory) -> Result<String, MemoryError> {
        let content = memory.content.trim().to_owned();
        let chars = content.chars().count();
        if chars == 0 || chars > crate::MAX_CONTENT_CHARS {
            return Err(MemoryError::Invalid(format!(
                "memory content must be 1..{} characters",
                crate::MAX_CONTENT_CHARS
            )));
        }
        let metadata = flat_metadata(&memory);
        if let Some(key) = memory.key.as_deref().filter(|k| !k.is_empty()) {
            // `customId` is Supermemory's own replace-by-key: the same id updates the document.
            return self.add_document(container, &content, metadata, Some(custom_id(container, key))).await;
        }
        let mut item = json!({ "content": content, "isStatic": false, "metadata": metadata });
        if let Some(date) = memory.date.and_then(|d| d.format(&Rfc3339).ok()) {
            item["temporalContext"] = json!({ "documentDate": date });
        }
        let body = json!({ "containerTag": container.as_str(), "memories": [item] });
        match self.send(reqwest::Method::POST, "/v4/memories", &body, self.config.write_timeout).await {
            Ok((_, value)) => {
                self.remember(container);
                let created: CreatedMemories = serde_json::from_value(value).unwrap_or_default();
                created
                    .memories
                    .into_iter()
                    .find_map(|m| m.id)
                    .or(created.document_id)
                    .ok_or_else(|| MemoryError::Other("Supermemory returned no memory id".into()))
            }
            Err(MemoryError::Rejected { status: 404, message }) => {
                if self.knows(container) {
                    // Created through /v3/documents moments ago, still being set up on their side.
                    return Err(MemoryError::Unavailable {
                        message: format!("container is not ready yet: {message}"),
                        retry_after: None,
                    });
                }
                self.add_document(container, &content, metadata, None).await
            }
            Err(e) => Err(e),
        }
    }

    async fn add_document(
        &self,
        container: &Container,
        content: &str,
        metadata: Map<String, Value>,
        custom_id: Option<String>,
    ) -> Result<String, MemoryError> {
        let mut body = json!({ "content": content, "containerTag": container.as_str(), "metadata": metadata });
        if let Some(id) = custom_id {
            body["customId"] = Value::String(id);
        }
        let (_, value) = self.send(reqwest::Method::POST, "/v3/documents", &body, self.config.write_timeout).await?;
        self.remember(container);
        let created: CreatedDocument = serde_json::from_value(value).unwrap_or_default();
        created.id.ok_or_else(|| MemoryError::Other("Supermemory returned no document id".into()))
    }

    /// `POST /v4/search` in memories mode; the token budget is applied here (Supermemory has none).
    pub async fn search(
        &self,
        container: &Container,
        query: &str,
        options: SearchOptions,
    ) -> Result<Vec<MemoryHit>, MemoryError> {
        if query.trim().is_empty() || options.limit == 0 {
            return Ok(Vec::new());
        }
        let body = json!({
            "q": query,
            "containerTag": container.as_str(),
            "limit": options.limit.clamp(1, 100),
            "threshold": self.config.threshold,
            "rerank": false,
            "rewriteQuery": false,
            "searchMode": "memories",
        });
        let (_, value) = match self.send(reqwest::Method::POST, "/v4/search", &body, self.config.search_timeout).await {
            // A container that does not exist yet holds no memories.
            Err(MemoryError::Rejected { status: 404, .. }) => return Ok(Vec::new()),
            other => other?,
        };
        let response: SearchResponse = serde_json::from_value(value).unwrap_or_default();
        let mut left = options.token_budget;
        let mut hits = Vec::new();
        for r in response.results {
            let Some(content) = r.memory.or(r.chunk).filter(|c| !c.is_empty()) else { continue };
            let tokens = estimate_tokens(&content);
            if let Some(left) = left.as_mut() {
                if tokens > *left {
                    continue;
                }
                *left -= tokens;
            }
            let meta = r.metadata.unwrap_or(Value::Null);
            let parse = |s: Option<&str>| s.and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok());
            let created_at = parse(meta.get("date").and_then(Value::as_str))
                .or_else(|| parse(r.updated_at.as_deref()))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            hits.push(MemoryHit {
                id: r.id,
                content,
                score: r.similarity.unwrap_or(0.0) as f32,
                created_at,
                source: meta.get("source").and_then(Value::as_str).unwrap_or("supermemory").to_owned(),
            });
            if hits.len() >= options.limit {
                break;
            }
        }
        Ok(hits)
    }

    /// `DELETE /v4/memories` by id. Already forgotten (409) or gone (404) counts as done.
    pub async fn forget(&self, container: &Container, id: &str) -> Result<(), MemoryError> {
        let body = json!({ "id": id, "containerTag": container.as_str() });
        match self.send(reqwest::Method::DELETE, "/v4/memories", &body, self.config.write_timeout).await {
            Ok(_) | Err(MemoryError::Rejected { status: 404 | 409, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Supermemory {
    /// `DELETE /v3/documents/{customId}` for the keyed document; already gone (404) counts as done.
    pub async fn forget_key(&self, container: &Container, key: &str) -> Result<(), MemoryError> {
        let path = format!("/v3/documents/{}", custom_id(container, key));
        match self.send(reqwest::Method::DELETE, &path, &Value::Null, self.config.write_timeout).await {
            Ok(_) | Err(MemoryError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn transport(e: reqwest::Error) -> MemoryError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    MemoryError::Unavailable { message: format!("Supermemory {kind}: {e}"), retry_after: None }
}

/// Supermemory metadata is flat (string, number, bool or string array): other values are sent as JSON text.
/// The memory's source, key, date, group and position ride along so search results can be dated and traced.
fn flat_metadata(memory: &NewMemory) -> Map<String, Value> {
    let mut out = Map::new();
    if let Value::Object(m) = &memory.metadata {
        for (k, v) in m {
            let flat = match v {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => v.clone(),
                Value::Array(items) if items.iter().all(Value::is_string) => v.clone(),
                Value::Null => continue,
                other => Value::String(other.to_string()),
            };
            out.insert(k.clone(), flat);
        }
    }
    if !memory.source.is_empty() {
        out.insert("source".into(), Value::String(memory.source.clone()));
    }
    if let Some(key) = &memory.key {
        out.insert("key".into(), Value::String(key.clone()));
    }
    if let Some(date) = memory.date.and_then(|d| d.format(&Rfc3339).ok()) {
        out.insert("date".into(), Value::String(date));
    }
    if let Some(group) = &memory.group {
        out.insert("group".into(), Value::String(group.clone()));
    }
    if let Some(position) = memory.position {
        out.insert("position".into(), Value::from(position));
    }
    out
}

/// A `customId` for (container, key): at most 100 characters of `[A-Za-z0-9_-]`, the same on every process
/// (a readable prefix of the key and a 64-bit FNV-1a hash of container and key).
fn custom_id(container: &Container, key: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container.as_str().bytes().chain([0u8]).chain(key.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let readable: String =
        key.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').take(60).collect();
    format!("key_{readable}_{hash:016x}")
}

impl MemoryStore for Supermemory {
    fn add<'a>(&'a self, container: &'a Container, memory: NewMemory) -> BoxFuture<'a, Result<String, MemoryError>> {
        Box::pin(Supermemory::add(self, container, memory))
    }

    fn search<'a>(
        &'a self,
        container: &'a Container,
        query: &'a str,
        options: SearchOptions,
    ) -> BoxFuture<'a, Result<Vec<MemoryHit>, MemoryError>> {
        Box::pin(Supermemory::search(self, container, query, options))
    }

    fn list<'a>(&'a self, _: &'a Container, _: usize) -> BoxFuture<'a, Result<Vec<MemoryHit>, MemoryError>> {
        Box::pin(async { Err(MemoryError::Unsupported { backend: "supermemory", operation: "list memories" }) })
    }

    fn forget<'a>(&'a self, container: &'a Container, id: &'a str) -> BoxFuture<'a, Result<(), MemoryError>> {
        Box::pin(Supermemory::forget(self, container, id))
    }

    fn forget_key<'a>(&'a self, container: &'a Container, key: &'a str) -> BoxFuture<'a, Result<(), MemoryError>> {
        Box::pin(Supermemory::forget_key(self, container, key))
    }

    fn backend(&self) -> &'static str {
        "supermemory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_id_is_stable_short_and_per_container() {
        let a = Container::parse("org-s1").unwrap_or_else(|_| unreachable!());
        let b = Container::parse("org-s2").unwrap_or_else(|_| unreachable!());
        let id = custom_id(&a, "onboarding.goal");
        assert_eq!(id, custom_id(&a, "onboarding.goal"));
        assert_ne!(id, custom_id(&b, "onboarding.goal"));
        assert!(id.len() <= 100 && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'), "{id}");
        assert!(custom_id(&a, &"x".repeat(500)).len() <= 100);
    }
}
