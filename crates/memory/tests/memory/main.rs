#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Integration tests of `mentorfy-memory`: the embedded engine on both backends, the Supermemory client against
//! the local fake, and the knowledge base on the fixture folder.

mod embedded;
mod knowledge;
mod supermemory;

use std::path::PathBuf;
use std::sync::Arc;

use mentorfy_memory::Embedder;

/// The shared model, if this checkout has it (tests that need it say so and skip otherwise).
pub fn embedder() -> Option<Arc<Embedder>> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models/potion-base-8M"));
    if !dir.join("model.safetensors").is_file() {
        eprintln!("SKIPPED embedding checks: no model at {}", dir.display());
        return None;
    }
    Some(Arc::new(Embedder::load(&dir).expect("load the model")))
}
