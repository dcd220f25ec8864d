//! The per-organisation knowledge base: `<dir>/<org>/*.md` split into chunks by headings and paragraphs, each
//! chunk remembering its file and heading path, searched with the same [`Index`] as memories. Read-only; loaded
//! once at start-up (files are small), so a search never touches the disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::embed::Embedder;
use crate::error::MemoryError;
use crate::index::{Document, Index, IndexParams};

/// Paragraphs of one section are merged into chunks of at most this many characters (about 200 tokens).
const CHUNK_CHARS: usize = 800;

/// A piece of a knowledge file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The file name within the organisation's folder (`pricing.md`).
    pub file: String,
    /// The heading path above the chunk (`Pricing > Refunds`); empty before the first heading.
    pub heading: String,
    /// The chunk's text (paragraphs, lists, code blocks kept whole).
    pub text: String,
}

/// One knowledge search result.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeHit {
    pub file: String,
    pub heading: String,
    pub text: String,
    pub score: f32,
    /// Estimated tokens of `text` (chars / 4).
    pub tokens: usize,
}

/// Every organisation's knowledge, indexed.
pub struct KnowledgeBase {
    dir: PathBuf,
    embedder: Option<Arc<Embedder>>,
    orgs: HashMap<String, (Vec<Chunk>, Index)>,
}

impl std::fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chunks: usize = self.orgs.values().map(|(c, _)| c.len()).sum();
        f.debug_struct("KnowledgeBase")
            .field("dir", &self.dir)
            .field("organisations", &self.orgs.len())
            .field("chunks", &chunks)
            .finish()
    }
}

fn valid_org(org: &str) -> bool {
    !org.is_empty() && org.len() <= 100 && org.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl KnowledgeBase {
    /// The folder the repository ships (`knowledge/` at its root), relative to the working directory.
    pub const DEFAULT_DIR: &'static str = "knowledge";

    /// A knowledge base with no organisation yet; fill it with [`KnowledgeBase::insert`].
    pub fn empty(embedder: Option<Arc<Embedder>>) -> Self {
        Self { dir: PathBuf::new(), embedder, orgs: HashMap::new() }
    }

    /// Loads `<dir>/<org>/*.md` for every organisation folder (names as in `^[A-Za-z0-9_-]{1,100}$`; others are
    /// skipped). A missing `dir` is an empty knowledge base, not an error.
    pub fn load(dir: impl AsRef<Path>, embedder: Option<Arc<Embedder>>) -> Result<Self, MemoryError> {
        let dir = dir.as_ref().to_path_buf();
        let mut kb = Self { dir: dir.clone(), embedder, orgs: HashMap::new() };
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(kb),
            Err(e) => return Err(MemoryError::Other(format!("cannot read {}: {e}", dir.display()))),
        };
        for entry in entries {
            let entry = entry.map_err(|e| MemoryError::Other(format!("cannot read {}: {e}", dir.display())))?;
            let org = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && valid_org(&org) {
                let chunks = read_org(&entry.path())?;
                kb.insert(org, chunks);
            }
        }
        Ok(kb)
    }

    /// Replaces one organisation's knowledge with `chunks` (tests, or files from elsewhere).
    pub fn insert(&mut self, org: String, chunks: Vec<Chunk>) {
        let docs = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                // The heading is searched with the text: "Refunds" finds the paragraphs under it.
                let indexed = if c.heading.is_empty() { c.text.clone() } else { format!("{}\n{}", c.heading, c.text) };
                Document {
                    id: i.to_string(),
                    embedding: self.embedder.as_ref().map(|e| e.embed(&indexed)),
                    text: indexed,
                    date: None,
                    source: c.file.clone(),
                    group: Some(c.file.clone()),
                    position: i64::try_from(i).ok(),
                }
            })
            .collect();
        let index = Index::new(docs, IndexParams { window: 0, neighbour_boost: 0.1, ..IndexParams::default() });
        self.orgs.insert(org, (chunks, index));
    }

    /// The organisations that have knowledge.
    pub fn organisations(&self) -> impl Iterator<Item = &str> {
        self.orgs.keys().map(String::as_str)
    }

    /// How many chunks `org` has (0 when it has none).
    pub fn chunk_count(&self, org: &str) -> usize {
        self.orgs.get(org).map_or(0, |(c, _)| c.len())
    }

    /// The best chunks of `org` for `query`, best first, within `limit` and `token_budget` (estimated tokens).
    /// An organisation without knowledge has no results.
    pub fn search(&self, org: &str, query: &str, limit: usize, token_budget: Option<usize>) -> Vec<KnowledgeHit> {
        let Some((chunks, index)) = self.orgs.get(org) else { return Vec::new() };
        let query_embedding = match &self.embedder {
            Some(e) if index.has_embeddings() => Some(e.embed(query)),
            _ => None,
        };
        index
            .search(query, query_embedding.as_deref(), limit, token_budget)
            .into_iter()
            .filter_map(|h| {
                let chunk = chunks.get(h.doc.id.parse::<usize>().ok()?)?;
                Some(KnowledgeHit {
                    file: chunk.file.clone(),
                    heading: chunk.heading.clone(),
                    text: chunk.text.clone(),
                    score: h.score,
                    tokens: h.tokens,
                })
            })
            .collect()
    }
}

fn read_org(dir: &Path) -> Result<Vec<Chunk>, MemoryError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| MemoryError::Other(format!("cannot read {}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("md")))
        .collect();
    files.sort();
    let mut chunks = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| MemoryError::Other(format!("cannot read {}: {e}", path.display())))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        chunks.extend(split_markdown(&name, &text));
    }
    Ok(chunks)
}

/// Splits a Markdown file into chunks: a heading (`#`…`######`) starts a new section; within a section,
/// blank-line-separated blocks are merged up to about 800 characters. Fenced code blocks are never split and
/// `#` lines inside them are not headings.
pub fn split_markdown(file: &str, text: &str) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut blocks: Vec<String> = Vec::new();
    let mut block = String::new();
    let mut in_fence = false;

    let heading_of = |path: &[(usize, String)]| path.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>().join(" > ");
    let flush_section = |blocks: &mut Vec<String>, heading: String, chunks: &mut Vec<Chunk>| {
        let mut current = String::new();
        for b in blocks.drain(..) {
            if !current.is_empty() && current.len() + b.len() + 2 > CHUNK_CHARS {
                chunks.push(Chunk {
                    file: file.to_owned(),
                    heading: heading.clone(),
                    text: std::mem::take(&mut current),
                });
            }
            if !current.is_empty() {
                current.push_str("\n\n");
            }
            current.push_str(&b);
        }
        if !current.is_empty() {
            chunks.push(Chunk { file: file.to_owned(), heading, text: current });
        }
    };

    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        }
        let level = trimmed.bytes().take_while(|b| *b == b'#').count();
        let is_heading =
            !in_fence && (1..=6).contains(&level) && trimmed.as_bytes().get(level).is_none_or(|b| *b == b' ');
        if is_heading {
            if !block.trim().is_empty() {
                blocks.push(std::mem::take(&mut block).trim().to_owned());
            }
            block.clear();
            flush_section(&mut blocks, heading_of(&path), &mut chunks);
            path.retain(|(l, _)| *l < level);
            path.push((level, trimmed[level..].trim().trim_end_matches('#').trim().to_owned()));
        } else if line.trim().is_empty() && !in_fence {
            if !block.trim().is_empty() {
                blocks.push(std::mem::take(&mut block).trim().to_owned());
            }
            block.clear();
        } else {
            if !block.is_empty() {
                block.push('\n');
            }
            block.push_str(line);
        }
    }
    if !block.trim().is_empty() {
        blocks.push(block.trim().to_owned());
    }
    flush_section(&mut blocks, heading_of(&path), &mut chunks);
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_by_heading_keeps_paths_and_fences() {
        let md = "Intro line.\n\n# Pricing\n\nPlans start at $10.\n\n## Refunds\n\nWithin 30 days.\n\n```\n# not a heading\n\nstill code\n```\n\n# FAQ\nQ and A.";
        let chunks = split_markdown("p.md", md);
        let summary: Vec<(&str, &str)> = chunks.iter().map(|c| (c.heading.as_str(), c.text.as_str())).collect();
        assert_eq!(
            summary,
            [
                ("", "Intro line."),
                ("Pricing", "Plans start at $10."),
                ("Pricing > Refunds", "Within 30 days.\n\n```\n# not a heading\n\nstill code\n```"),
                ("FAQ", "Q and A."),
            ]
        );
        assert!(chunks.iter().all(|c| c.file == "p.md"));
    }

    #[test]
    fn long_sections_become_several_chunks() {
        let para = "word ".repeat(100);
        let md = format!("# Long\n\n{para}\n\n{para}\n\n{para}");
        let chunks = split_markdown("l.md", &md);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.heading == "Long"));
    }
}
