//! Usage patterns (issue 6): what users come for, found by clustering the opening of each conversation
//! ([`cluster`]) and labelled by class-based TF-IDF. A run reads the conversations of a window, optionally embeds
//! their openings with static embeddings (`FEATURE_EMBEDDINGS=1`, cached in `conversation_embeddings` by
//! [`EMBED_JOB_KIND`]), clusters them, and stores the patterns with size, average health, failure rate and
//! examples. Runs weekly ([`PATTERN_JOB_KIND`]) and on demand (`mentorfy patterns run`).

pub mod cluster;

use std::sync::Arc;
use std::time::Duration;

use mentorfy_memory::{Embedder, from_bytes, to_bytes};
use mentorfy_store::{ConversationEmbedding, PatternRunWrite, PatternSource, PatternWrite, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

pub use cluster::{ClusterParams, Clustering, Doc};

use crate::error::SenseiError;

/// The weekly (and on-demand) pattern analysis.
pub const PATTERN_JOB_KIND: &str = "sensei.pattern_analyze";
/// Embeds one conversation's opening (only when embeddings are on).
pub const EMBED_JOB_KIND: &str = "sensei.embed_conversation";
/// The queue of both.
pub const PATTERN_QUEUE: &str = "patterns";
/// User messages read per conversation: the opening (at most [`OPENING_TURNS`]) and the context after it.
pub const READ_TURNS: u32 = 6;
/// Most user messages making the opening.
pub const OPENING_TURNS: usize = 3;
/// Most characters of the context considered.
const MAX_CONTEXT_CHARS: usize = 1_000;
/// Runs kept (with their patterns); older ones are deleted.
pub const KEEP_RUNS: u64 = 8;
/// Characters of an example's excerpt.
const EXCERPT_CHARS: usize = 160;
/// An opening shorter than this ("hi!") is extended with the next user message.
const MIN_OPENING_CHARS: usize = 40;
/// Most characters of an opening considered.
const MAX_OPENING_CHARS: usize = 600;

/// What the user came for: the first user message, extended with the next ones while it is shorter than a
/// sentence ("hi" then the question), at most [`OPENING_TURNS`] messages and [`MAX_OPENING_CHARS`] characters.
pub fn came_for(user_messages: &[String]) -> String {
    opening_and_context(user_messages).0
}

/// [`came_for`] and the user messages after it (at most [`MAX_CONTEXT_CHARS`] characters), each joined by
/// newlines.
pub fn opening_and_context(user_messages: &[String]) -> (String, String) {
    let mut opening = String::new();
    let mut used = 0;
    for m in user_messages.iter().take(OPENING_TURNS) {
        used += 1;
        let m = m.trim();
        if m.is_empty() {
            continue;
        }
        if !opening.is_empty() {
            opening.push('\n');
        }
        opening.push_str(m);
        if opening.chars().count() >= MIN_OPENING_CHARS {
            break;
        }
    }
    let context: Vec<&str> = user_messages[used..].iter().map(|m| m.trim()).filter(|m| !m.is_empty()).collect();
    (truncate(&opening, MAX_OPENING_CHARS), truncate(&context.join("\n"), MAX_CONTEXT_CHARS))
}

fn truncate(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((i, _)) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

/// SHA-256 (hex) of the embedded text, so unchanged text is not embedded again.
pub fn text_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(EXCERPT_CHARS) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// What triggered a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Scheduled,
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => "scheduled",
            Trigger::Manual => "manual",
        }
    }
}

/// A run's settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Conversations that started within this long before now.
    pub window: Duration,
    /// The most recent conversations of the window read, at most.
    pub max_conversations: u64,
    pub params: ClusterParams,
    pub trigger: Trigger,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(30 * 24 * 3600),
            max_conversations: 50_000,
            params: ClusterParams::default(),
            trigger: Trigger::Manual,
        }
    }
}

/// A pattern of a finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternSummary {
    pub label: String,
    pub keywords: Vec<String>,
    pub size: usize,
    pub avg_health: Option<f64>,
    pub failure_rate: Option<f64>,
    pub examples: Vec<String>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// `None` when there was nothing to cluster (no run is stored then, so an empty run never hides the last one).
    pub run_id: Option<Uuid>,
    pub conversations: usize,
    pub unclustered: usize,
    /// Embeddings computed in this run (cache misses).
    pub embedded: usize,
    pub representation: String,
    pub patterns: Vec<PatternSummary>,
}

/// Where a long run is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Reading,
    Embedding { done: usize, total: usize },
    Clustering,
    Saving,
}

/// Runs pattern analyses and embeds conversations.
#[derive(Debug, Clone)]
pub struct Patterns {
    store: Store,
    /// Static embeddings, when `FEATURE_EMBEDDINGS=1`.
    embedder: Option<Arc<Embedder>>,
}

impl Patterns {
    pub fn new(store: Store, embedder: Option<Arc<Embedder>>) -> Self {
        Self { store, embedder }
    }

    pub fn embeddings_on(&self) -> bool {
        self.embedder.is_some()
    }

    /// Reads, (embeds,) clusters and stores one run. `progress` is called as the run moves on.
    pub async fn run(
        &self,
        options: &RunOptions,
        progress: &(dyn Fn(Stage) + Sync),
    ) -> Result<RunSummary, SenseiError> {
        let started_at = mentorfy_store::now();
        let window = time::Duration::try_from(options.window).unwrap_or(time::Duration::days(30));
        let (from, to) = (started_at - window, started_at + time::Duration::seconds(1));
        progress(Stage::Reading);
        let sources = self.store.pattern_sources(from, to, READ_TURNS, options.max_conversations).await?;
        if sources.is_empty() {
            return Ok(RunSummary {
                run_id: None,
                conversations: 0,
                unclustered: 0,
                embedded: 0,
                representation: "none".to_owned(),
                patterns: Vec::new(),
            });
        }
        let (texts, contexts): (Vec<String>, Vec<String>) =
            sources.iter().map(|s| opening_and_context(&s.user_messages)).unzip();
        let (embeddings, embedded) = match &self.embedder {
            Some(e) => {
                let ids: Vec<Uuid> = sources.iter().map(|s| s.conversation_id).collect();
                let (v, n) = self.embeddings(e, &ids, &texts, progress).await?;
                (Some(v), n)
            }
            None => (None, 0),
        };
        progress(Stage::Clustering);
        let docs: Vec<Doc> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| Doc {
                text: t.clone(),
                context: contexts[i].clone(),
                embedding: embeddings.as_ref().map(|v: &Vec<Vec<f32>>| v[i].clone()),
            })
            .collect();
        let mut params = options.params.clone();
        if self.embedder.is_none() {
            params.tfidf_weight = 1.0;
        }
        let params_for_task = params.clone();
        let clustering = tokio::task::spawn_blocking(move || cluster::cluster(&docs, &params_for_task))
            .await
            .map_err(|e| SenseiError::Other(format!("pattern clustering task: {e}")))?;
        progress(Stage::Saving);
        let representation = match &self.embedder {
            Some(e) if params.tfidf_weight < 1.0 => format!("tfidf+embedding:{}", e.name()),
            _ => "tfidf".to_owned(),
        };
        let (write, summary) =
            build_run(&sources, &texts, &clustering, options, &params, &representation, started_at, (from, to));
        self.store.save_pattern_run(&write, KEEP_RUNS).await?;
        Ok(RunSummary { embedded, ..summary })
    }

    /// Every text's embedding: cached when the model and text hash match, else computed and stored.
    async fn embeddings(
        &self,
        embedder: &Arc<Embedder>,
        ids: &[Uuid],
        texts: &[String],
        progress: &(dyn Fn(Stage) + Sync),
    ) -> Result<(Vec<Vec<f32>>, usize), SenseiError> {
        let cached: std::collections::HashMap<Uuid, ConversationEmbedding> =
            self.store.conversation_embeddings(ids).await?.into_iter().map(|e| (e.conversation_id, e)).collect();
        let mut out = Vec::with_capacity(ids.len());
        let mut fresh = Vec::new();
        for (i, (id, text)) in ids.iter().zip(texts).enumerate() {
            let hash = text_hash(text);
            let hit = cached
                .get(id)
                .filter(|c| c.model == embedder.name() && c.text_hash == hash)
                .and_then(|c| from_bytes(&c.embedding))
                .filter(|v| v.len() == embedder.dim());
            match hit {
                Some(v) => out.push(v),
                None => {
                    let v = embedder.embed(text);
                    fresh.push(ConversationEmbedding {
                        conversation_id: *id,
                        model: embedder.name().to_owned(),
                        embedding: to_bytes(&v),
                        text_hash: hash,
                    });
                    out.push(v);
                }
            }
            if i % 1000 == 999 {
                progress(Stage::Embedding { done: i + 1, total: ids.len() });
            }
        }
        progress(Stage::Embedding { done: ids.len(), total: ids.len() });
        self.store.upsert_conversation_embeddings(&fresh).await?;
        Ok((out, fresh.len()))
    }

    /// The `embed-conversation` job: embeds one conversation's opening unless the stored embedding is of the same
    /// text and model. Returns whether it embedded. A no-op when embeddings are off.
    pub async fn embed_conversation(&self, conversation_id: Uuid) -> Result<bool, SenseiError> {
        let Some(embedder) = &self.embedder else { return Ok(false) };
        let openings = self.store.first_user_messages(&[conversation_id], OPENING_TURNS as u32).await?;
        let Some(messages) = openings.get(&conversation_id) else { return Ok(false) };
        let text = came_for(messages);
        if text.is_empty() {
            return Ok(false);
        }
        let hash = text_hash(&text);
        let cached = self.store.conversation_embeddings(&[conversation_id]).await?;
        if cached.iter().any(|c| c.model == embedder.name() && c.text_hash == hash) {
            return Ok(false);
        }
        let v = embedder.embed(&text);
        self.store
            .upsert_conversation_embeddings(&[ConversationEmbedding {
                conversation_id,
                model: embedder.name().to_owned(),
                embedding: to_bytes(&v),
                text_hash: hash,
            }])
            .await?;
        Ok(true)
    }
}

#[allow(clippy::too_many_arguments)]
fn build_run(
    sources: &[PatternSource],
    texts: &[String],
    clustering: &Clustering,
    options: &RunOptions,
    params: &ClusterParams,
    representation: &str,
    started_at: OffsetDateTime,
    (from, to): (OffsetDateTime, OffsetDateTime),
) -> (PatternRunWrite, RunSummary) {
    let run_id = Uuid::now_v7();
    let mut patterns = Vec::with_capacity(clustering.clusters.len());
    let mut summaries = Vec::with_capacity(clustering.clusters.len());
    for c in &clustering.clusters {
        let healths: Vec<f64> = c.members.iter().filter_map(|(i, _)| sources[*i].health_score).collect();
        let avg_health = (!healths.is_empty()).then(|| round(healths.iter().sum::<f64>() / healths.len() as f64, 2));
        let analysed = c.members.iter().filter(|(i, _)| sources[*i].health_score.is_some()).count();
        let failing = c.members.iter().filter(|(i, _)| sources[*i].failure_count > 0).count();
        let failure_rate = (analysed > 0).then(|| round(failing as f64 / c.members.len() as f64, 4));
        let examples: Vec<Value> = c
            .members
            .iter()
            .take(options.params.examples)
            .map(|(i, s)| {
                json!({
                    "conversation_id": sources[*i].conversation_id,
                    "excerpt": excerpt(&texts[*i]),
                    "similarity": round(*s, 4),
                })
            })
            .collect();
        summaries.push(PatternSummary {
            label: c.label.clone(),
            keywords: c.keywords.iter().map(|(k, _)| k.clone()).collect(),
            size: c.members.len(),
            avg_health,
            failure_rate,
            examples: c.members.iter().take(options.params.examples).map(|(i, _)| excerpt(&texts[*i])).collect(),
        });
        patterns.push(PatternWrite {
            label: c.label.clone(),
            keywords: Value::Array(c.keywords.iter().map(|(k, w)| json!({"term": k, "weight": w})).collect()),
            avg_health,
            failure_rate,
            examples: Value::Array(examples),
            method: "ctfidf".to_owned(),
            members: c.members.iter().map(|(i, s)| (sources[*i].conversation_id, round(*s, 4))).collect(),
        });
    }
    let write = PatternRunWrite {
        id: run_id,
        trigger: options.trigger.as_str().to_owned(),
        window_from: from,
        window_to: to,
        representation: representation.to_owned(),
        conversations: i64::try_from(sources.len()).unwrap_or(i64::MAX),
        params: json!({
            "sample": params.sample,
            "threshold": params.threshold,
            "min_share": params.min_share,
            "min_size_floor": params.min_size_floor,
            "tfidf_weight": params.tfidf_weight,
            "max_conversations": options.max_conversations,
            "opening_turns": OPENING_TURNS,
            "context_turns": READ_TURNS as usize - OPENING_TURNS,
        }),
        started_at,
        patterns,
    };
    let summary = RunSummary {
        run_id: Some(run_id),
        conversations: sources.len(),
        unclustered: clustering.unclustered,
        embedded: 0,
        representation: representation.to_owned(),
        patterns: summaries,
    };
    (write, summary)
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn came_for_skips_greetings_and_caps_length() {
        let m = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            came_for(&m(&["hi", "my invoice is wrong, I was charged twice this month"])),
            "hi\nmy invoice is wrong, I was charged twice this month"
        );
        assert_eq!(
            came_for(&m(&["I was charged twice for the Pro plan this month", "also VAT?"])),
            "I was charged twice for the Pro plan this month"
        );
        assert_eq!(came_for(&m(&["", "  "])), "");
        assert_eq!(came_for(&m(&[&"x".repeat(2000)])).chars().count(), MAX_OPENING_CHARS);
        assert_eq!(came_for(&m(&["a", "b", "c", "d"])), "a\nb\nc");
    }

    #[test]
    fn excerpts_are_one_line_and_bounded() {
        assert_eq!(excerpt("a\n b  c"), "a b c");
        let long = excerpt(&"é".repeat(500));
        assert_eq!(long.chars().count(), EXCERPT_CHARS + 1);
        assert!(long.ends_with('…'));
    }
}
