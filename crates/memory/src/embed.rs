//! Static sentence embeddings (model2vec) from a local model folder. Never downloads: the crate is built with
//! `local-only`. Vectors are L2-normalised so a dot product is the cosine similarity.

use std::path::Path;

use model2vec_rs::model::StaticModel;

use crate::error::MemoryError;

/// A loaded model2vec model (for example `potion-base-8M`: 256 dimensions, ~30 MB). Cheap to share behind an
/// `Arc`; encoding is CPU-only and takes microseconds per sentence.
pub struct Embedder {
    model: StaticModel,
    name: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("model", &self.name).field("dim", &self.dim()).finish()
    }
}

impl Embedder {
    /// Loads `tokenizer.json`, `model.safetensors` and `config.json` from the folder `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, MemoryError> {
        let path = path.as_ref();
        if !path.join("model.safetensors").is_file() {
            return Err(MemoryError::Invalid(format!("no model2vec model in {}", path.display())));
        }
        let model = StaticModel::from_pretrained(path, None, Some(true), None)
            .map_err(|e| MemoryError::Other(format!("cannot load the embedding model {}: {e:#}", path.display())))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Self { model, name })
    }

    /// The model folder's name, for logs and reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dim(&self) -> usize {
        self.model.dim()
    }

    /// The unit-length embedding of `text` (all zeros when no token of it is in the vocabulary).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut v = self.model.encode_single(text);
        normalise(&mut v);
        v
    }
}

/// Scales `v` to unit length (leaves a zero vector as it is).
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The dot product (the cosine similarity of unit vectors); 0 when the lengths differ.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The storage form of a vector: little-endian `f32` bytes.
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`to_bytes`]; `None` when the length is not a multiple of four.
pub fn from_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_normalise() {
        let mut v = vec![3.0f32, 4.0];
        normalise(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        assert_eq!(from_bytes(&to_bytes(&v)), Some(v.clone()));
        assert_eq!(from_bytes(&[0, 1, 2]), None);
        assert!((dot(&v, &v) - 1.0).abs() < 1e-6);
    }
}
