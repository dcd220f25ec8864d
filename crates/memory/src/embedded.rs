//! The embedded memory engine: memories are rows of the store's `memories` table (embedding computed once, on
//! write), searched in process with [`Index`]. Each process caches one index per container (the 1,024 most
//! recently searched) and checks it against the container's version in `memory_containers`, bumped by every write,
//! before every search, so servers sharing one PostgreSQL see each other's writes. No vector database, no network.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use mentorfy_store::{MemoryRow, MemoryVersion, NewMemoryRow, Store};
use uuid::Uuid;

use crate::api::{BoxFuture, Container, MemoryHit, MemoryStore, NewMemory, SearchOptions};
use crate::embed::{Embedder, from_bytes, to_bytes};
use crate::error::MemoryError;
use crate::index::{Document, Index, IndexParams};

/// Longest memory accepted, in characters (Supermemory's limit, so both backends take the same input).
pub const MAX_CONTENT_CHARS: usize = 10_000;
/// How many containers' indexes a process keeps; the least recently searched is dropped beyond this.
const CACHED_CONTAINERS: usize = 1024;

struct Cached {
    version: MemoryVersion,
    index: Arc<Index>,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    containers: HashMap<String, Cached>,
    tick: u64,
}

/// Memories in our own database. Cheap to share behind an `Arc`.
pub struct EmbeddedMemory {
    store: Store,
    embedder: Option<Arc<Embedder>>,
    params: IndexParams,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for EmbeddedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedMemory").field("embedder", &self.embedder).field("params", &self.params).finish()
    }
}

impl EmbeddedMemory {
    /// Without an embedder search is BM25 alone (the caller says so once in its log).
    pub fn new(store: Store, embedder: Option<Arc<Embedder>>) -> Self {
        Self { store, embedder, params: IndexParams::default(), cache: Mutex::new(Cache::default()) }
    }

    /// Replaces the scoring parameters (benchmarks and tuning).
    pub fn with_params(mut self, params: IndexParams) -> Self {
        self.params = params;
        self
    }

    pub fn has_embedder(&self) -> bool {
        self.embedder.is_some()
    }

    /// Stores a memory; returns the stored row's id.
    pub async fn add(&self, container: &Container, memory: NewMemory) -> Result<Uuid, MemoryError> {
        let content = memory.content.trim();
        let chars = content.chars().count();
        if chars == 0 || chars > MAX_CONTENT_CHARS {
            return Err(MemoryError::Invalid(format!("memory content must be 1..{MAX_CONTENT_CHARS} characters")));
        }
        let metadata = match memory.metadata {
            serde_json::Value::Null => serde_json::json!({}),
            m @ serde_json::Value::Object(_) => m,
            _ => return Err(MemoryError::Invalid("memory metadata must be a JSON object".into())),
        };
        let embedding = self.embedder.as_ref().map(|e| to_bytes(&e.embed(content)));
        let row = self
            .store
            .upsert_memory(NewMemoryRow {
                id: Uuid::now_v7(),
                container: container.as_str(),
                content,
                source: &memory.source,
                key: memory.key.as_deref().filter(|k| !k.is_empty()),
                memory_date: memory.date,
                memory_group: memory.group.as_deref(),
                position: memory.position,
                embedding,
                metadata,
            })
            .await?;
        self.invalidate(container);
        Ok(row.id)
    }

    /// The best memories for `query`: hybrid search over the container's cached index.
    pub async fn search(
        &self,
        container: &Container,
        query: &str,
        options: SearchOptions,
    ) -> Result<Vec<MemoryHit>, MemoryError> {
        let index = self.index(container).await?;
        let query_embedding = match &self.embedder {
            Some(e) if index.has_embeddings() => Some(e.embed(query)),
            _ => None,
        };
        let hits = index.search(query, query_embedding.as_deref(), options.limit, options.token_budget);
        Ok(hits
            .into_iter()
            .map(|h| MemoryHit {
                id: h.doc.id.clone(),
                content: h.doc.text.clone(),
                score: h.score,
                created_at: h.doc.date.unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                source: h.doc.source.clone(),
            })
            .collect())
    }

    /// The newest `limit` memories, newest first.
    pub async fn list(&self, container: &Container, limit: usize) -> Result<Vec<MemoryHit>, MemoryError> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let rows = self.store.list_memories(container.as_str(), limit).await?;
        Ok(rows
            .into_iter()
            .map(|r| MemoryHit {
                id: r.id.to_string(),
                created_at: r.memory_date.unwrap_or(r.created_at),
                content: r.content,
                score: 0.0,
                source: r.source,
            })
            .collect())
    }

    /// Deletes the memory; an unknown id (or one of another container) is not an error.
    pub async fn forget(&self, container: &Container, id: &str) -> Result<(), MemoryError> {
        let id = Uuid::parse_str(id).map_err(|_| MemoryError::Invalid(format!("'{id}' is not a memory id")))?;
        if self.store.delete_memory(container.as_str(), id).await? {
            self.invalidate(container);
        }
        Ok(())
    }

    /// Deletes the memory stored under `key`; none is not an error.
    pub async fn forget_key(&self, container: &Container, key: &str) -> Result<(), MemoryError> {
        if self.store.delete_memory_by_key(container.as_str(), key).await? {
            self.invalidate(container);
        }
        Ok(())
    }

    /// The container's index: the cached one when the database still has the version it was built from.
    async fn index(&self, container: &Container) -> Result<Arc<Index>, MemoryError> {
        let version = self.store.memory_version(container.as_str()).await?;
        if let Some(index) = self.cached(container, version) {
            return Ok(index);
        }
        // Read after the version: a write in between makes the next search rebuild, never serve stale rows.
        let rows = self.store.container_memories(container.as_str()).await?;
        let dim = self.embedder.as_ref().map(|e| e.dim());
        let docs = rows.into_iter().map(|r| document(r, dim)).collect();
        let index = Arc::new(Index::new(docs, self.params));
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.tick += 1;
        let last_used = cache.tick;
        if cache.containers.len() >= CACHED_CONTAINERS && !cache.containers.contains_key(container.as_str()) {
            let oldest = cache.containers.iter().min_by_key(|(_, c)| c.last_used).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                cache.containers.remove(&oldest);
            }
        }
        cache.containers.insert(container.as_str().to_owned(), Cached { version, index: index.clone(), last_used });
        Ok(index)
    }

    fn cached(&self, container: &Container, version: MemoryVersion) -> Option<Arc<Index>> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.tick += 1;
        let tick = cache.tick;
        let entry = cache.containers.get_mut(container.as_str()).filter(|c| c.version == version)?;
        entry.last_used = tick;
        Some(entry.index.clone())
    }

    fn invalidate(&self, container: &Container) {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).containers.remove(container.as_str());
    }
}

fn document(r: MemoryRow, dim: Option<usize>) -> Document {
    // A vector made by another model (other dimension) is ignored rather than compared.
    let embedding = r.embedding.as_deref().and_then(from_bytes).filter(|v| Some(v.len()) == dim);
    Document {
        id: r.id.to_string(),
        date: Some(r.memory_date.unwrap_or(r.created_at)),
        text: r.content,
        source: r.source,
        embedding,
        group: r.memory_group,
        position: r.position,
    }
}

impl MemoryStore for EmbeddedMemory {
    fn add<'a>(&'a self, container: &'a Container, memory: NewMemory) -> BoxFuture<'a, Result<String, MemoryError>> {
        Box::pin(async move { Ok(EmbeddedMemory::add(self, container, memory).await?.to_string()) })
    }

    fn search<'a>(
        &'a self,
        container: &'a Container,
        query: &'a str,
        options: SearchOptions,
    ) -> BoxFuture<'a, Result<Vec<MemoryHit>, MemoryError>> {
        Box::pin(EmbeddedMemory::search(self, container, query, options))
    }

    fn list<'a>(
        &'a self,
        container: &'a Container,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<MemoryHit>, MemoryError>> {
        Box::pin(EmbeddedMemory::list(self, container, limit))
    }

    fn forget<'a>(&'a self, container: &'a Container, id: &'a str) -> BoxFuture<'a, Result<(), MemoryError>> {
        Box::pin(EmbeddedMemory::forget(self, container, id))
    }

    fn forget_key<'a>(&'a self, container: &'a Container, key: &'a str) -> BoxFuture<'a, Result<(), MemoryError>> {
        Box::pin(EmbeddedMemory::forget_key(self, container, key))
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}
