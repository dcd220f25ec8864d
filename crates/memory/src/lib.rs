//! Semantic memory (issue 4): the `MemoryStore` interface, the embedded hybrid engine and the Supermemory client.
