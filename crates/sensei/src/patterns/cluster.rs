//! Clustering what users came for, with no database: text → vectors (TF-IDF over stemmed words and word pairs,
//! optionally blended with static embeddings) → average-linkage agglomerative clustering of a sample, cut at a
//! similarity threshold → every conversation assigned to the pattern whose members it resembles on average, or to
//! none → labels from class-based TF-IDF (c-TF-IDF).
//!
//! Why this shape: average linkage cut at a threshold gives clusters whose members are similar *on average* to
//! each other, so it does not chain unrelated topics together the way single linkage does, and it needs no number
//! of clusters up front. A conversation's average similarity to a cluster's members equals its dot product with the
//! members' mean vector, so assigning the rest by "mean similarity ≥ threshold" applies the same rule the clustering
//! used. Conversations below the threshold for every pattern, and clusters smaller than the minimum size, stay
//! unclustered instead of being forced into a pattern. Everything is deterministic: same input, same patterns.

use std::collections::HashMap;

use mentorfy_memory::text::{Analyzer, is_stop_word, words};

/// Words that say nothing about what a user came for in a chat opening (on top of the English stop words).
const CHAT_STOP_WORDS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "please",
    "can",
    "could",
    "would",
    "need",
    "want",
    "help",
    "know",
    "like",
    "just",
    "ok",
    "okay",
    "yes",
    "no",
    "also",
    "still",
    "one",
    "im",
    "ive",
    "dont",
    "cant",
    "i'd",
    "i'll",
    "i've",
    "don't",
    "can't",
    "won't",
    "doesn't",
    "isn't",
    "there",
    "here",
    "get",
    "got",
    "make",
    "way",
    "think",
    // Pleasantries and filler that open and close chat messages.
    "good",
    "morning",
    "afternoon",
    "evening",
    "thx",
    "ty",
    "cheers",
    "advance",
    "ideas",
    "asking",
    "question",
    "questions",
    "quick",
    "wondering",
    "someone",
    "something",
    "everything",
    "anything",
    "people",
    "see",
    "use",
    "today",
    "start",
    "thing",
    "things",
    "lot",
    "actually",
    "maybe",
    "much",
    "many",
    "every",
    "always",
    "never",
    "ever",
    "year",
    "years",
    "week",
    "weeks",
    "day",
    "days",
    "tried",
    "try",
    "trying",
];

/// Weight of a term of the later user messages, against 1 for the opening.
const CONTEXT_WEIGHT: f32 = 0.5;

/// Tuning of a pattern analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterParams {
    /// Conversations clustered to discover patterns (the rest are assigned); bounds the quadratic step.
    pub sample: usize,
    /// Least average similarity of a conversation to a pattern's members for it to belong there.
    pub threshold: f64,
    /// Smallest pattern, as a share of the conversations (at least `min_size_floor`).
    pub min_share: f64,
    pub min_size_floor: usize,
    /// Weight of the TF-IDF similarity when embeddings are blended in (1 = TF-IDF only); without embeddings
    /// TF-IDF is all there is, whatever this says.
    pub tfidf_weight: f64,
    /// Keywords kept per pattern.
    pub keywords: usize,
    /// Examples kept per pattern.
    pub examples: usize,
}

impl Default for ClusterParams {
    fn default() -> Self {
        Self {
            sample: 2_000,
            threshold: 0.10,
            min_share: 0.005,
            min_size_floor: 3,
            tfidf_weight: 0.5,
            keywords: 8,
            examples: 3,
        }
    }
}

/// One conversation to cluster.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    /// What the user came for (see [`super::came_for`]).
    pub text: String,
    /// The user's later messages: they count half as much as the opening (they say more about the topic than a
    /// terse opening does, but also carry the friction of a failing conversation, which is not a topic).
    pub context: String,
    /// A unit-length embedding of `text`, when embeddings are on.
    pub embedding: Option<Vec<f32>>,
}

/// A discovered pattern: member indexes into the input with their similarity, most similar first.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub label: String,
    /// Distinctive terms with their c-TF-IDF weight, strongest first.
    pub keywords: Vec<(String, f64)>,
    pub members: Vec<(usize, f64)>,
}

/// The outcome: patterns, largest first, and how many inputs stayed unclustered.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    pub clusters: Vec<Cluster>,
    pub unclustered: usize,
}

/// A document's terms: stemmed words and adjacent pairs of them.
struct Terms {
    /// Term id → weighted count in the document.
    counts: HashMap<u32, f32>,
    /// Term id → count in the opening alone: labels say what users came for.
    opening: HashMap<u32, f32>,
}

struct Vocabulary {
    ids: HashMap<String, u32>,
    /// Per term id: its stem(s), space-separated for a pair.
    stems: Vec<String>,
    /// Per term id: surface form → count.
    surfaces: Vec<HashMap<String, u32>>,
}

impl Vocabulary {
    fn id(&mut self, stem: &str, surface: &str) -> u32 {
        let next = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        let id = *self.ids.entry(stem.to_owned()).or_insert(next);
        if id == next {
            self.surfaces.push(HashMap::new());
            self.stems.push(stem.to_owned());
        }
        *self.surfaces[id as usize].entry(surface.to_owned()).or_default() += 1;
        id
    }

    /// The most frequent surface form of a term (ties: alphabetical first).
    fn surface(&self, id: u32) -> String {
        self.surfaces[id as usize]
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(s, _)| s.clone())
            .unwrap_or_default()
    }
}

/// Adds the terms of `text` to `counts`, each occurrence counting `weight`: stemmed words (stop words,
/// contractions and anything with a digit left out) and pairs of neighbouring kept words within one clause (no
/// pair across punctuation).
fn tokenize(analyzer: &Analyzer, vocab: &mut Vocabulary, text: &str, weight: f32, counts: &mut HashMap<u32, f32>) {
    for clause in text.split(['.', ',', ';', ':', '!', '?', '\n', '(', ')', '"']) {
        let mut kept: Vec<(String, String)> = Vec::new();
        for w in words(clause) {
            let w = w.strip_suffix("'s").map(str::to_owned).unwrap_or(w);
            if w.chars().count() < 2
                || w.contains('\'')
                || w.chars().any(|c| c.is_ascii_digit())
                || is_stop_word(&w)
                || CHAT_STOP_WORDS.contains(&w.as_str())
            {
                continue;
            }
            let stem = analyzer.stem(&w).into_owned();
            kept.push((stem, w));
        }
        for (stem, surface) in &kept {
            *counts.entry(vocab.id(stem, surface)).or_default() += weight;
        }
        for pair in kept.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.0 == b.0 {
                continue;
            }
            let id = vocab.id(&format!("{} {}", a.0, b.0), &format!("{} {}", a.1, b.1));
            *counts.entry(id).or_default() += weight;
        }
    }
}

/// A sparse unit vector, sorted by term id.
type Sparse = Vec<(u32, f32)>;

fn sparse_dot(a: &Sparse, b: &Sparse) -> f32 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

fn dense_dot(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Every document as a TF-IDF vector and optionally an embedding; similarity blends the two.
struct Space {
    tfidf: Vec<Sparse>,
    dense: Vec<Option<Vec<f32>>>,
    /// Weight of the TF-IDF part when both are present.
    alpha: f32,
}

impl Space {
    fn sim(&self, i: usize, j: usize) -> f32 {
        let t = sparse_dot(&self.tfidf[i], &self.tfidf[j]);
        match (&self.dense[i], &self.dense[j]) {
            (Some(a), Some(b)) => self.alpha * t + (1.0 - self.alpha) * dense_dot(a, b),
            _ => t,
        }
    }
}

/// The mean of some documents' vectors: a document's dot product with it is its average similarity to them.
struct Centroid {
    tfidf: HashMap<u32, f32>,
    dense: Option<Vec<f32>>,
}

impl Centroid {
    fn of(space: &Space, members: &[usize]) -> Self {
        let n = members.len().max(1) as f32;
        let mut tfidf: HashMap<u32, f32> = HashMap::new();
        let mut dense: Option<Vec<f32>> = None;
        let mut with_dense = 0usize;
        for &m in members {
            for &(t, w) in &space.tfidf[m] {
                *tfidf.entry(t).or_default() += w / n;
            }
            if let Some(v) = &space.dense[m] {
                let acc = dense.get_or_insert_with(|| vec![0.0; v.len()]);
                if acc.len() == v.len() {
                    acc.iter_mut().zip(v).for_each(|(a, x)| *a += x);
                    with_dense += 1;
                }
            }
        }
        if let Some(acc) = dense.as_mut() {
            let k = with_dense.max(1) as f32;
            acc.iter_mut().for_each(|a| *a /= k);
        }
        Self { tfidf, dense }
    }

    fn sim(&self, space: &Space, i: usize) -> f32 {
        let t: f32 = space.tfidf[i].iter().map(|(id, w)| w * self.tfidf.get(id).copied().unwrap_or(0.0)).sum();
        match (&self.dense, &space.dense[i]) {
            (Some(c), Some(v)) => space.alpha * t + (1.0 - space.alpha) * dense_dot(c, v),
            _ => t,
        }
    }
}

/// Clusters `docs` (see the module doc).
pub fn cluster(docs: &[Doc], params: &ClusterParams) -> Clustering {
    let n = docs.len();
    if n == 0 {
        return Clustering { clusters: Vec::new(), unclustered: 0 };
    }
    let analyzer = Analyzer::new();
    let mut vocab = Vocabulary { ids: HashMap::new(), stems: Vec::new(), surfaces: Vec::new() };
    let terms: Vec<Terms> = docs
        .iter()
        .map(|d| {
            let mut opening = HashMap::new();
            tokenize(&analyzer, &mut vocab, &d.text, 1.0, &mut opening);
            let mut counts = opening.clone();
            tokenize(&analyzer, &mut vocab, &d.context, CONTEXT_WEIGHT, &mut counts);
            Terms { counts, opening }
        })
        .collect();
    let mut df = vec![0u32; vocab.ids.len()];
    for t in &terms {
        for id in t.counts.keys() {
            df[*id as usize] += 1;
        }
    }
    let idf: Vec<f32> = df.iter().map(|&d| (((1 + n) as f32) / ((1 + d) as f32)).ln() + 1.0).collect();
    let tfidf: Vec<Sparse> = terms
        .iter()
        .map(|t| {
            // Terms of one document only say nothing about similarity.
            let mut v: Sparse = t
                .counts
                .iter()
                .filter(|(id, _)| df[**id as usize] >= 2)
                .map(|(id, c)| (*id, (1.0 + c.max(1.0).ln()) * c.min(1.0) * idf[*id as usize]))
                .collect();
            v.sort_unstable_by_key(|(id, _)| *id);
            let norm = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|(_, w)| *w /= norm);
            }
            v
        })
        .collect();
    let has_dense = docs.iter().any(|d| d.embedding.is_some());
    let space = Space {
        tfidf,
        dense: docs.iter().map(|d| d.embedding.clone()).collect(),
        alpha: if has_dense { params.tfidf_weight.clamp(0.0, 1.0) as f32 } else { 1.0 },
    };

    // Discover on an evenly spread sample.
    let sample: Vec<usize> = if n <= params.sample.max(2) {
        (0..n).collect()
    } else {
        let step = n as f64 / params.sample as f64;
        (0..params.sample).map(|k| ((k as f64 * step) as usize).min(n - 1)).collect()
    };
    let threshold = params.threshold as f32;
    let groups = average_linkage(&space, &sample, threshold);
    let min_size = ((n as f64 * params.min_share).ceil() as usize).max(params.min_size_floor).max(2);
    let sample_min = ((sample.len() as f64 * params.min_share).ceil() as usize).max(params.min_size_floor).max(2);
    let centroids: Vec<Centroid> =
        groups.iter().filter(|g| g.len() >= sample_min).map(|g| Centroid::of(&space, g)).collect();

    // Assign everyone by the same rule.
    let mut members: Vec<Vec<(usize, f64)>> = vec![Vec::new(); centroids.len()];
    for i in 0..n {
        let best = centroids
            .iter()
            .enumerate()
            .map(|(c, centroid)| (c, centroid.sim(&space, i)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
        if let Some((c, s)) = best
            && s >= threshold
        {
            members[c].push((i, f64::from(s)));
        }
    }
    let mut kept: Vec<Vec<(usize, f64)>> = members.into_iter().filter(|m| m.len() >= min_size).collect();
    for m in &mut kept {
        m.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }
    kept.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a[0].0.cmp(&b[0].0)));
    let clustered: usize = kept.iter().map(Vec::len).sum();

    let labels = label(&terms, &vocab, &kept, n, params.keywords);
    let clusters =
        kept.into_iter().zip(labels).map(|(members, (label, keywords))| Cluster { label, keywords, members }).collect();
    Clustering { clusters, unclustered: n - clustered }
}

/// Average-linkage agglomerative clustering of `items` (indexes into `space`) by the nearest-neighbour chain,
/// stopping at `threshold`: returns the groups whose merges all had average similarity ≥ `threshold`.
///
/// A cluster whose most similar neighbour is below the threshold is set aside for good: under average linkage a
/// merge of two clusters is never more similar to a third than the more similar of the two was (reducibility), so
/// nothing formed later can reach it.
fn average_linkage(space: &Space, items: &[usize], threshold: f32) -> Vec<Vec<usize>> {
    let s = items.len();
    let mut sim = vec![0f32; s * s];
    for a in 0..s {
        for b in (a + 1)..s {
            let v = space.sim(items[a], items[b]);
            sim[a * s + b] = v;
            sim[b * s + a] = v;
        }
    }
    let mut groups: Vec<Vec<usize>> = items.iter().map(|&i| vec![i]).collect();
    // 0 = open, 1 = merged away, 2 = finished.
    let mut state = vec![0u8; s];
    let mut chain: Vec<usize> = Vec::new();
    let mut next_start = 0;
    loop {
        if chain.is_empty() {
            while next_start < s && state[next_start] != 0 {
                next_start += 1;
            }
            if next_start == s {
                break;
            }
            chain.push(next_start);
        }
        let top = chain[chain.len() - 1];
        let prev = (chain.len() >= 2).then(|| chain[chain.len() - 2]);
        let mut best: Option<(usize, f32)> = prev.map(|p| (p, sim[top * s + p]));
        for k in 0..s {
            if k == top || state[k] != 0 || Some(k) == prev {
                continue;
            }
            let v = sim[top * s + k];
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((k, v));
            }
        }
        match best {
            Some((nn, v)) if v >= threshold => {
                if Some(nn) == prev {
                    // Reciprocal nearest neighbours: merge `top` into `nn`.
                    chain.truncate(chain.len() - 2);
                    let (na, nb) = (groups[nn].len() as f32, groups[top].len() as f32);
                    for k in 0..s {
                        if k == nn || k == top || state[k] == 1 {
                            continue;
                        }
                        let v = (na * sim[nn * s + k] + nb * sim[top * s + k]) / (na + nb);
                        sim[nn * s + k] = v;
                        sim[k * s + nn] = v;
                    }
                    let moved = std::mem::take(&mut groups[top]);
                    groups[nn].extend(moved);
                    state[top] = 1;
                } else {
                    chain.push(nn);
                }
            }
            _ => {
                state[top] = 2;
                chain.pop();
            }
        }
    }
    groups.into_iter().zip(state).filter(|(_, st)| *st != 1).map(|(g, _)| g).collect()
}

/// Labels from class-based TF-IDF: a term's share of a pattern's terms times how rare it is across patterns
/// (the unclustered conversations count as one more class). Terms in fewer than 15% of a pattern's conversations
/// are passed over (a name mentioned twice is not what the pattern is about). The label is the top three
/// keywords, a word dropped when a chosen pair contains it.
fn label(
    terms: &[Terms],
    vocab: &Vocabulary,
    clusters: &[Vec<(usize, f64)>],
    n: usize,
    keep: usize,
) -> Vec<(String, Vec<(String, f64)>)> {
    let mut class_of = vec![clusters.len(); n];
    for (c, m) in clusters.iter().enumerate() {
        for &(i, _) in m {
            class_of[i] = c;
        }
    }
    let classes = clusters.len() + 1;
    let mut tf: Vec<HashMap<u32, f64>> = vec![HashMap::new(); classes];
    let mut docs_with: Vec<HashMap<u32, usize>> = vec![HashMap::new(); classes];
    for (i, t) in terms.iter().enumerate() {
        let c = class_of[i];
        for (id, count) in &t.opening {
            *tf[c].entry(*id).or_default() += f64::from(*count);
            *docs_with[c].entry(*id).or_default() += 1;
        }
    }
    let totals: Vec<f64> = tf.iter().map(|m| m.values().sum::<f64>()).collect();
    let avg = totals.iter().sum::<f64>() / classes as f64;
    let mut across: HashMap<u32, f64> = HashMap::new();
    for m in &tf {
        for (id, v) in m {
            *across.entry(*id).or_default() += v;
        }
    }
    clusters
        .iter()
        .enumerate()
        .map(|(c, m)| {
            let min_docs = ((m.len() as f64) * 0.15).ceil() as usize;
            let mut scored: Vec<(u32, f64)> = tf[c]
                .iter()
                .filter(|(id, _)| docs_with[c].get(id).copied().unwrap_or(0) >= min_docs.max(2))
                .map(|(id, v)| {
                    let w = (v / totals[c].max(1.0)) * (1.0 + avg / across[id].max(1.0)).ln();
                    (*id, w)
                })
                .collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let top: Vec<(u32, f64)> = scored.into_iter().take(keep).collect();
            let keywords: Vec<(String, f64)> =
                top.iter().map(|(id, w)| (vocab.surface(*id), (w * 10_000.0).round() / 10_000.0)).collect();
            // Overlaps are judged on stems ("rate limits" contains "limit").
            let mut chosen: Vec<u32> = Vec::new();
            let stems = |id: u32| -> Vec<&str> { vocab.stems[id as usize].split(' ').collect() };
            for (id, _) in &top {
                let kw = stems(*id);
                // Chosen terms this one contains (a pair replaces its words), or that contain it (then skip it).
                let inside: Vec<usize> = (0..chosen.len())
                    .filter(|&p| {
                        let cw = stems(chosen[p]);
                        cw.len() < kw.len() && cw.iter().all(|w| kw.contains(w))
                    })
                    .collect();
                let covered = chosen.iter().any(|c| {
                    let cw = stems(*c);
                    kw.iter().all(|w| cw.contains(w))
                });
                if covered {
                    continue;
                }
                if let Some(&first) = inside.first() {
                    chosen[first] = *id;
                    for &p in inside.iter().skip(1).rev() {
                        chosen.remove(p);
                    }
                } else {
                    chosen.push(*id);
                }
                if chosen.len() == 3 {
                    break;
                }
            }
            let mut chosen: Vec<String> = chosen.into_iter().map(|id| vocab.surface(id)).collect();
            chosen.dedup();
            let label = if chosen.is_empty() { format!("pattern {}", c + 1) } else { chosen.join(", ") };
            (label, keywords)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(texts: &[&str]) -> Vec<Doc> {
        texts.iter().map(|t| Doc { text: (*t).to_owned(), ..Doc::default() }).collect()
    }

    #[test]
    fn similar_openings_group_and_loners_stay_unclustered() {
        let mut texts = Vec::new();
        for i in 0..6 {
            texts.push(format!("I forgot my password and the reset email never arrives (try {i})"));
            texts.push(format!("how do I reset my password, the reset link expired ({i})"));
            texts.push(format!("please cancel my subscription, we are moving to another tool ({i})"));
            texts.push(format!("cancel subscription and refund the last invoice please ({i})"));
        }
        texts.push("what is the airspeed velocity of an unladen swallow".to_owned());
        texts.push("write me a haiku about autumn leaves".to_owned());
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let out = cluster(&docs(&refs), &ClusterParams::default());
        assert_eq!(out.clusters.len(), 2, "{out:#?}");
        assert_eq!(out.unclustered, 2, "{out:#?}");
        for c in &out.clusters {
            assert_eq!(c.members.len(), 12);
            let topic = if c.label.contains("password") || c.label.contains("reset") { "password" } else { "cancel" };
            assert!(c.members.iter().all(|(i, _)| texts[*i].contains(topic)), "{c:#?}");
        }
        let labels: Vec<&str> = out.clusters.iter().map(|c| c.label.as_str()).collect();
        assert!(labels.iter().any(|l| l.contains("password")), "{labels:?}");
        assert!(labels.iter().any(|l| l.contains("subscription") || l.contains("cancel")), "{labels:?}");
    }

    #[test]
    fn nothing_alike_gives_no_pattern() {
        let out = cluster(
            &docs(&["the weather in Lisbon", "compile a kernel module", "bake sourdough bread", "tax rules in Peru"]),
            &ClusterParams::default(),
        );
        assert!(out.clusters.is_empty());
        assert_eq!(out.unclustered, 4);
    }

    /// The demo generator's conversations carry the intent they were generated from (never shown to the
    /// clustering): patterns must be nearly pure in intent, cover most conversations and carry distinct labels.
    #[test]
    fn demo_conversations_cluster_by_intent() {
        let now = time::macros::datetime!(2026-11-01 12:00 UTC);
        let convs: Vec<_> = crate::demo::generate(7, 1500, now).collect();
        let d: Vec<Doc> = convs
            .iter()
            .map(|c| {
                let users: Vec<String> =
                    c.messages.iter().filter(|m| m.role == "user").map(|m| m.content.clone()).collect();
                let (text, context) = super::super::opening_and_context(&users);
                Doc { text, context, embedding: None }
            })
            .collect();
        let params = ClusterParams::default();
        let out = cluster(&d, &params);
        let intent = |i: usize| convs[i].metadata["intent"].as_str().unwrap_or("").to_owned();
        let mut pure = 0;
        let mut report = String::new();
        for c in &out.clusters {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for (i, _) in &c.members {
                *counts.entry(intent(*i)).or_default() += 1;
            }
            let (top, n) = counts.iter().max_by_key(|(_, n)| **n).map(|(k, n)| (k.clone(), *n)).unwrap();
            pure += n;
            report.push_str(&format!(
                "{:>4} {:<28} {top} {:.2}\n",
                c.members.len(),
                c.label,
                n as f64 / c.members.len() as f64
            ));
        }
        let clustered = d.len() - out.unclustered;
        let purity = pure as f64 / clustered.max(1) as f64;
        let coverage = clustered as f64 / d.len() as f64;
        eprintln!("{report}purity {purity:.3} coverage {coverage:.3} patterns {}", out.clusters.len());
        assert!(purity >= 0.9, "purity {purity:.3}\n{report}");
        assert!(coverage >= 0.7, "coverage {coverage:.3}\n{report}");
        assert!(out.clusters.len() >= 8, "{report}");
        let mut labels: Vec<&str> = out.clusters.iter().map(|c| c.label.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), out.clusters.len(), "labels repeat:\n{report}");
    }

    #[test]
    fn deterministic() {
        let texts: Vec<String> =
            (0..40).map(|i| format!("question about topic{} and billing {}", i % 4, i % 7)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let a = cluster(&docs(&refs), &ClusterParams::default());
        let b = cluster(&docs(&refs), &ClusterParams::default());
        assert_eq!(a, b);
    }
}
