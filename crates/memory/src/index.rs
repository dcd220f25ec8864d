//! The in-process search index: exact hybrid search over a few hundred to a few thousand documents (one memory
//! container, or one organisation's knowledge base). BM25 over stemmed terms plus cosine similarity of static
//! embeddings, each normalised per query and blended; optional context features for sequences of documents
//! (a chat session's turns, a file's chunks): a previous-document window and a neighbour boost. Holds no I/O.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;

use crate::embed::{dot, normalise};
use crate::text::{Analyzer, estimate_tokens};

/// One searchable document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The caller's id (a memory id, `file#chunk`…).
    pub id: String,
    /// The text that is searched and returned.
    pub text: String,
    /// When what it tells happened; returned with every hit so a prompt can date it.
    pub date: Option<OffsetDateTime>,
    /// What produced it (`chat`, `context`, a file name…).
    pub source: String,
    /// The unit-length embedding of `text`, if a model was configured when it was stored.
    pub embedding: Option<Vec<f32>>,
    /// Documents with the same group form a sequence ordered by `position` (a chat session, a file); both are
    /// needed for the window and the neighbour boost. `None` for a standalone document.
    pub group: Option<String>,
    pub position: Option<i64>,
}

/// Scoring parameters. The defaults were tuned on LoCoMo conversations (see docs/PERFORMANCE.md) and are
/// generic: none of them knows what a document is about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexParams {
    /// BM25 term-frequency saturation.
    pub k1: f32,
    /// BM25 length normalisation (0 = none, 1 = full).
    pub b: f32,
    /// Weight of the semantic (cosine) score in the blend; `1 - semantic_weight` goes to BM25. Ignored when the
    /// query or the documents have no embeddings (then BM25 alone ranks).
    pub semantic_weight: f32,
    /// How many preceding documents of the same group are indexed with each document (terms and embedding).
    pub window: usize,
    /// Weight of the window's terms and vectors relative to the document's own (1.0 = as much as its own text).
    pub window_weight: f32,
    /// Share of the better neighbour's blended score (previous or next document in the group) added to each
    /// document's score.
    pub neighbour_boost: f32,
    /// Two results at least this similar (cosine of their own embeddings) are duplicates; the lower one is
    /// dropped. Identical normalised text is always a duplicate.
    pub duplicate_cosine: f32,
}

impl Default for IndexParams {
    fn default() -> Self {
        Self {
            k1: 1.2,
            b: 0.75,
            semantic_weight: 0.35,
            window: 1,
            window_weight: 0.5,
            neighbour_boost: 0.25,
            duplicate_cosine: 0.95,
        }
    }
}

impl IndexParams {
    /// Plain hybrid search: no window, no neighbour boost.
    pub fn plain() -> Self {
        Self { window: 0, neighbour_boost: 0.0, ..Self::default() }
    }
}

/// One result: the document, its final score (0..≈1+boost, comparable within one query only) and its estimated
/// tokens ([`estimate_tokens`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit<'a> {
    pub doc: &'a Document,
    pub score: f32,
    pub tokens: usize,
}

/// An immutable index. Build it once per set of documents ([`Index::new`]); searching never allocates per
/// document beyond one score vector.
pub struct Index {
    docs: Vec<Document>,
    params: IndexParams,
    analyzer: Analyzer,
    terms: HashMap<String, usize>,
    /// Per term: (document, weighted term frequency).
    postings: Vec<Vec<(u32, f32)>>,
    doc_len: Vec<f32>,
    avg_len: f32,
    /// The vectors cosine is computed against (the document's embedding blended with its window's).
    vectors: Vec<Option<Vec<f32>>>,
    prev: Vec<Option<u32>>,
    next: Vec<Option<u32>>,
    normalised: Vec<String>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("documents", &self.docs.len()).field("params", &self.params).finish()
    }
}

impl Index {
    pub fn new(docs: Vec<Document>, params: IndexParams) -> Self {
        let analyzer = Analyzer::new();
        let n = docs.len();
        // Sequence links: within each group, by position (ties by input order).
        let mut prev = vec![None; n];
        let mut next = vec![None; n];
        let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, d) in docs.iter().enumerate() {
            if let (Some(g), Some(_)) = (&d.group, d.position) {
                groups.entry(g.as_str()).or_default().push(i);
            }
        }
        for members in groups.values_mut() {
            members.sort_by_key(|&i| (docs[i].position, i));
            for pair in members.windows(2) {
                prev[pair[1]] = Some(pair[0] as u32);
                next[pair[0]] = Some(pair[1] as u32);
            }
        }

        let own_terms: Vec<Vec<String>> = docs.iter().map(|d| analyzer.terms(&d.text)).collect();
        let mut terms: HashMap<String, usize> = HashMap::new();
        let mut postings: Vec<Vec<(u32, f32)>> = Vec::new();
        let mut doc_len = vec![0.0f32; n];
        let mut vectors = Vec::with_capacity(n);
        for i in 0..n {
            let mut tf: HashMap<&str, f32> = HashMap::new();
            for t in &own_terms[i] {
                *tf.entry(t.as_str()).or_default() += 1.0;
            }
            let mut vector = docs[i].embedding.clone();
            let mut cursor = prev[i];
            for _ in 0..params.window {
                let Some(p) = cursor else { break };
                let p = p as usize;
                for t in &own_terms[p] {
                    *tf.entry(t.as_str()).or_default() += params.window_weight;
                }
                if let (Some(v), Some(pv)) = (vector.as_mut(), docs[p].embedding.as_ref())
                    && v.len() == pv.len()
                {
                    v.iter_mut().zip(pv).for_each(|(x, y)| *x += params.window_weight * y);
                }
                cursor = prev[p];
            }
            if let Some(v) = vector.as_mut() {
                normalise(v);
            }
            vectors.push(vector);
            doc_len[i] = tf.values().sum();
            for (term, f) in tf {
                let id = match terms.get(term) {
                    Some(&id) => id,
                    None => {
                        terms.insert(term.to_owned(), postings.len());
                        postings.push(Vec::new());
                        postings.len() - 1
                    }
                };
                postings[id].push((i as u32, f));
            }
        }
        let avg_len = if n == 0 { 1.0 } else { (doc_len.iter().sum::<f32>() / n as f32).max(1.0) };
        let normalised = docs.iter().map(|d| crate::text::normalise(&d.text)).collect();
        Self { docs, params, analyzer, terms, postings, doc_len, avg_len, vectors, prev, next, normalised }
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    pub fn documents(&self) -> &[Document] {
        &self.docs
    }

    pub fn params(&self) -> IndexParams {
        self.params
    }

    /// True when at least one document has an embedding (so a query embedding is worth computing).
    pub fn has_embeddings(&self) -> bool {
        self.vectors.iter().any(Option::is_some)
    }

    /// The best `limit` documents for `query`, best first, near-duplicates removed, and — with a
    /// `token_budget` — only as many as fit in it (greedily in rank order: a result that does not fit is
    /// skipped and smaller ones after it may still fit). `query_embedding` must be unit length; without it
    /// (or without document embeddings) BM25 alone ranks. Documents that match nothing are not returned.
    pub fn search(
        &self,
        query: &str,
        query_embedding: Option<&[f32]>,
        limit: usize,
        token_budget: Option<usize>,
    ) -> Vec<Hit<'_>> {
        let n = self.docs.len();
        if n == 0 || limit == 0 {
            return Vec::new();
        }
        let p = self.params;
        // BM25, normalised by the best score of this query.
        let mut bm25 = vec![0.0f32; n];
        let mut query_terms: Vec<usize> =
            self.analyzer.terms(query).iter().filter_map(|t| self.terms.get(t).copied()).collect();
        query_terms.sort_unstable();
        query_terms.dedup();
        for &t in &query_terms {
            let posting = &self.postings[t];
            let df = posting.len() as f32;
            let idf = ((n as f32 - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(d, tf) in posting {
                let d = d as usize;
                let norm = p.k1 * (1.0 - p.b + p.b * self.doc_len[d] / self.avg_len);
                bm25[d] += idf * tf * (p.k1 + 1.0) / (tf + norm);
            }
        }
        scale_by_max(&mut bm25);

        // Cosine, min-max normalised over the documents that have a vector.
        let semantic = query_embedding.filter(|q| q.iter().any(|x| *x != 0.0)).and_then(|q| {
            let mut cos = vec![f32::NAN; n];
            let mut any = false;
            for (i, v) in self.vectors.iter().enumerate() {
                if let Some(v) = v {
                    cos[i] = dot(q, v);
                    any = true;
                }
            }
            any.then_some(cos)
        });
        let mut blended = match semantic {
            Some(mut cos) => {
                min_max(&mut cos);
                let w = p.semantic_weight.clamp(0.0, 1.0);
                bm25.iter().zip(&cos).map(|(b, c)| (1.0 - w) * b + w * if c.is_nan() { 0.0 } else { *c }).collect()
            }
            None => bm25,
        };
        let matched: Vec<bool> = blended.iter().map(|s| *s > 0.0).collect();
        if p.neighbour_boost > 0.0 {
            let base = blended.clone();
            for (i, score) in blended.iter_mut().enumerate() {
                let best =
                    [self.prev[i], self.next[i]].into_iter().flatten().map(|j| base[j as usize]).fold(0.0, f32::max);
                *score += p.neighbour_boost * best;
            }
        }

        let mut order: Vec<usize> = (0..n).filter(|&i| matched[i] || blended[i] > 0.0).collect();
        order.sort_by(|&a, &b| blended[b].total_cmp(&blended[a]).then(a.cmp(&b)));

        let mut hits: Vec<Hit<'_>> = Vec::with_capacity(limit);
        let mut seen_text: HashSet<&str> = HashSet::new();
        let mut taken: Vec<usize> = Vec::with_capacity(limit);
        let mut budget_left = token_budget;
        for i in order {
            if hits.len() >= limit {
                break;
            }
            if !seen_text.insert(self.normalised[i].as_str()) {
                continue;
            }
            let own = self.docs[i].embedding.as_deref();
            let near_duplicate = own.is_some_and(|v| {
                taken
                    .iter()
                    .any(|&j| self.docs[j].embedding.as_deref().is_some_and(|w| dot(v, w) >= p.duplicate_cosine))
            });
            if near_duplicate {
                continue;
            }
            let tokens = estimate_tokens(&self.docs[i].text);
            if let Some(left) = budget_left.as_mut() {
                if tokens > *left {
                    continue;
                }
                *left -= tokens;
            }
            taken.push(i);
            hits.push(Hit { doc: &self.docs[i], score: blended[i], tokens });
        }
        hits
    }
}

fn scale_by_max(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(0.0f32, f32::max);
    if max > 0.0 {
        scores.iter_mut().for_each(|s| *s /= max);
    }
}

/// Maps the finite scores onto 0..1 (NaN marks "no vector" and stays NaN).
fn min_max(scores: &mut [f32]) {
    let (min, max) = scores
        .iter()
        .filter(|s| !s.is_nan())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    let range = max - min;
    scores.iter_mut().filter(|s| !s.is_nan()).for_each(|s| *s = if range > 0.0 { (*s - min) / range } else { 0.0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, text: &str, group: Option<&str>, position: Option<i64>) -> Document {
        Document {
            id: id.into(),
            text: text.into(),
            date: None,
            source: "test".into(),
            embedding: None,
            group: group.map(Into::into),
            position,
        }
    }

    fn ids(hits: &[Hit<'_>]) -> Vec<String> {
        hits.iter().map(|h| h.doc.id.clone()).collect()
    }

    #[test]
    fn bm25_ranks_rarer_and_denser_matches_first_and_skips_non_matches() {
        let index = Index::new(
            vec![
                doc("a", "I adopted a dog last week", None, None),
                doc("b", "The dog and the cat and the dog again, dogs everywhere", None, None),
                doc("c", "Painting a sunset by the lake", None, None),
            ],
            IndexParams::plain(),
        );
        let hits = index.search("dogs", None, 10, None);
        assert_eq!(ids(&hits), ["b", "a"]);
        assert!((hits[0].score - 1.0).abs() < 1e-6, "scores are normalised by the best");
        assert!(index.search("quantum", None, 10, None).is_empty());
    }

    #[test]
    fn duplicates_budget_and_limit() {
        let index = Index::new(
            vec![
                doc("a", "Dana likes rust.", None, None),
                doc("b", "dana LIKES Rust", None, None),
                doc("c", "Rust rust rust, Dana wrote a very long note about why she likes rust so much", None, None),
                doc("d", "rust", None, None),
            ],
            IndexParams::plain(),
        );
        let all = index.search("rust", None, 10, None);
        assert_eq!(all.len(), 3, "identical normalised text is a duplicate: {:?}", ids(&all));
        assert_eq!(index.search("rust", None, 1, None).len(), 1);
        let budget = index.search("rust", None, 10, Some(5));
        assert!(budget.iter().map(|h| h.tokens).sum::<usize>() <= 5, "{budget:?}");
        assert!(!budget.is_empty());
    }

    #[test]
    fn window_and_neighbour_boost_find_context_turns() {
        let docs = vec![
            doc("1", "What instrument do you play?", Some("s1"), Some(1)),
            doc("2", "The violin, since I was eight.", Some("s1"), Some(2)),
            doc("3", "Nice weather today.", Some("s2"), Some(1)),
        ];
        // Without context the answer turn does not match the question's words at all.
        let plain = Index::new(docs.clone(), IndexParams::plain());
        assert_eq!(ids(&plain.search("which instrument", None, 10, None)), ["1"]);
        // With a window, the answer turn is indexed with the question before it.
        let windowed =
            Index::new(docs.clone(), IndexParams { window: 1, neighbour_boost: 0.0, ..IndexParams::plain() });
        assert_eq!(ids(&windowed.search("which instrument", None, 10, None)), ["1", "2"]);
        // The neighbour boost lifts the next turn of the same group only (not another group's).
        let boosted = Index::new(docs, IndexParams { window: 0, neighbour_boost: 0.3, ..IndexParams::plain() });
        let hits = boosted.search("instrument", None, 10, None);
        assert_eq!(ids(&hits), ["1", "2"]);
        assert!((hits[1].score - 0.3).abs() < 1e-6);
    }

    #[test]
    fn cosine_blends_with_bm25_and_near_duplicate_vectors_collapse() {
        let mut a = doc("a", "alpha", None, None);
        a.embedding = Some(vec![1.0, 0.0]);
        let mut b = doc("b", "beta", None, None);
        b.embedding = Some(vec![0.0, 1.0]);
        let mut c = doc("c", "gamma", None, None);
        c.embedding = Some(vec![0.999, 0.0447]);
        let index = Index::new(vec![a, b, c], IndexParams { semantic_weight: 1.0, ..IndexParams::plain() });
        let hits = index.search("nothing lexical", Some(&[1.0, 0.0]), 10, None);
        assert_eq!(ids(&hits), ["a"], "c is a near-duplicate of a; b has the lowest cosine (0 after min-max)");
    }
}
