//! Semantic memory (issue 4): the `MemoryStore` interface, the embedded hybrid engine (BM25 + static embeddings
//! over the store's `memories` table, searched in process), the Supermemory client, and the per-organisation
//! knowledge base. No HTTP-server types and no SQL here: rows come from `mentorfy-store`.

mod api;
mod embed;
mod embedded;
mod error;
mod index;
mod knowledge;
mod supermemory;
pub mod text;

pub use api::{BoxFuture, Container, MemoryHit, MemoryStore, NewMemory, SearchOptions};
pub use embed::{Embedder, dot, from_bytes, normalise, to_bytes};
pub use embedded::{EmbeddedMemory, MAX_CONTENT_CHARS};
pub use error::MemoryError;
pub use index::{Document, Hit, Index, IndexParams};
pub use knowledge::{Chunk, KnowledgeBase, KnowledgeHit, split_markdown};
pub use supermemory::{Supermemory, SupermemoryConfig};
