//! `mentorfy bench memory --locomo FILE` (issue 4): retrieval recall@k and search latency of the embedded memory
//! engine on LoCoMo conversations, through the real `EmbeddedMemory` on a fresh store (a temp SQLite file, or a
//! scratch PostgreSQL schema that is dropped afterwards). Evaluation data is read from where it lies; nothing of it
//! is copied into the repository.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use mentorfy_core::Config;
use mentorfy_memory::{Container, EmbeddedMemory, Embedder, IndexParams, NewMemory, SearchOptions, text};
use mentorfy_store::Store;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Args, Debug)]
pub struct BenchMemoryArgs {
    /// A LoCoMo JSON file (for example ../shared/data/locomo/locomo10-dev.json).
    #[arg(long)]
    pub locomo: PathBuf,
    /// Recall is measured over the top K results.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Print exactly one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// `sqlite` (a temp file) or a postgres:// URL (a scratch schema is created there and dropped).
    #[arg(long, default_value = "sqlite")]
    pub database: String,
    /// A model2vec model folder; default: MENTORFY_EMBED_MODEL, else ../shared/models/potion-base-8M if present.
    #[arg(long)]
    pub embed_model: Option<PathBuf>,
    /// BM25 only, even when a model is available.
    #[arg(long)]
    pub no_embed: bool,
    /// Also measure each feature on its own (BM25, blend, window, neighbour boost) on the same rows.
    #[arg(long)]
    pub ablation: bool,
    /// Scoring overrides (defaults: the engine's `IndexParams::default()`).
    #[arg(long)]
    pub semantic_weight: Option<f32>,
    #[arg(long)]
    pub window: Option<usize>,
    #[arg(long)]
    pub window_weight: Option<f32>,
    #[arg(long)]
    pub neighbour_boost: Option<f32>,
    #[arg(long)]
    pub k1: Option<f32>,
    #[arg(long)]
    pub b: Option<f32>,
}

const CATEGORIES: [(u64, &str); 5] =
    [(1, "multi-hop"), (2, "temporal"), (3, "open-domain"), (4, "single-hop"), (5, "adversarial")];

struct Question {
    container: Container,
    text: String,
    category: u64,
    evidence: Vec<String>,
}

struct Loaded {
    questions: Vec<Question>,
    /// Memory id → dia_id.
    turns: HashMap<Uuid, String>,
    turn_count: usize,
    conversations: usize,
    dropped_evidence: usize,
    questions_without_evidence: usize,
}

pub async fn run(config: Config, args: BenchMemoryArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.k > 0, "--k must be positive");
    let model_dir = if args.no_embed {
        None
    } else {
        args.embed_model.clone().or_else(|| config.memory.embed_model.clone()).or_else(|| {
            [
                PathBuf::from("../shared/models/potion-base-8M"),
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/potion-base-8M"),
            ]
            .into_iter()
            .find(|p| p.join("model.safetensors").is_file())
        })
    };
    let embedder = match &model_dir {
        Some(dir) => Some(Arc::new(
            Embedder::load(dir).with_context(|| format!("loading the embedding model {}", dir.display()))?,
        )),
        None => {
            eprintln!("no embedding model: BM25 only");
            None
        }
    };
    let data: Value = serde_json::from_slice(
        &std::fs::read(&args.locomo).with_context(|| format!("reading {}", args.locomo.display()))?,
    )
    .context("parsing the LoCoMo file")?;

    let tmp = tempfile::tempdir()?;
    let mut scratch = None;
    let (url, label) = if args.database == "sqlite" {
        (format!("sqlite://{}", tmp.path().join("bench-memory.db").display()), "SQLite (temp file, WAL)")
    } else if args.database.starts_with("postgres") {
        let (url, schema) = mentorfy_store::create_scratch_schema(&args.database, "benchmem").await?;
        scratch = Some(schema);
        (url, "PostgreSQL (fresh schema)")
    } else {
        anyhow::bail!("--database must be 'sqlite' or a postgres:// URL");
    };
    let result = bench(&args, &url, label, embedder, &data).await;
    if let Some(schema) = scratch {
        mentorfy_store::drop_scratch_schema(&args.database, &schema).await?;
    }
    result
}

fn params(args: &BenchMemoryArgs) -> IndexParams {
    let d = IndexParams::default();
    IndexParams {
        k1: args.k1.unwrap_or(d.k1),
        b: args.b.unwrap_or(d.b),
        semantic_weight: args.semantic_weight.unwrap_or(d.semantic_weight),
        window: args.window.unwrap_or(d.window),
        window_weight: args.window_weight.unwrap_or(d.window_weight),
        neighbour_boost: args.neighbour_boost.unwrap_or(d.neighbour_boost),
        duplicate_cosine: d.duplicate_cosine,
    }
}

async fn bench(
    args: &BenchMemoryArgs,
    url: &str,
    label: &str,
    embedder: Option<Arc<Embedder>>,
    data: &Value,
) -> anyhow::Result<()> {
    let store = Store::connect(url, 4).await?;
    store.migrate().await?;
    let params = params(args);
    let memory = EmbeddedMemory::new(store.clone(), embedder.clone()).with_params(params);
    let started = Instant::now();
    let loaded = load(&memory, data).await?;
    let load_secs = started.elapsed().as_secs_f64();

    let main = evaluate(&memory, &loaded, args.k, "asking").await?;
    let mut ablation = Vec::new();
    if args.ablation {
        let plain = IndexParams::plain();
        let mut configs = vec![("BM25", None, plain), ("BM25 + window + neighbour boost", None, params)];
        if embedder.is_some() {
            configs.extend([
                ("BM25 + embeddings (plain blend)", embedder.clone(), plain),
                ("+ previous-turn window", embedder.clone(), IndexParams { neighbour_boost: 0.0, ..params }),
                ("+ neighbour boost (= default)", embedder.clone(), params),
            ]);
        }
        for (name, e, p) in configs {
            let m = EmbeddedMemory::new(store.clone(), e).with_params(p);
            let r = evaluate(&m, &loaded, args.k, name).await?;
            ablation.push((name, r));
        }
    }
    store.close().await;

    let recall_json = |r: &Evaluation| {
        let mut o = serde_json::Map::new();
        for (_, name) in CATEGORIES {
            o.insert(name.into(), json!(round(r.recall.get(name).copied().unwrap_or(0.0), 4)));
        }
        o.insert("cat1-4".into(), json!(round(r.cat14, 4)));
        Value::Object(o)
    };
    if args.json {
        let out = json!({
            "k": args.k,
            "questions": main.questions,
            "recall": recall_json(&main),
            "search_ms": { "p50": round(main.p50_ms, 4), "p95": round(main.p95_ms, 4) },
            "max_ms": round(main.max_ms, 4),
            "tokens_per_result": round(main.tokens_per_result, 1),
            "database": label,
            "embed_model": embedder.as_ref().map(|e| e.name().to_owned()),
            "params": format!("{params:?}"),
            "conversations": loaded.conversations,
            "turns": loaded.turn_count,
            "load_seconds": round(load_secs, 2),
            "dropped_evidence_ids": loaded.dropped_evidence,
            "questions_without_evidence": loaded.questions_without_evidence,
            "per_category_questions": main.counts,
            "ablation": ablation.iter().map(|(n, r)| json!({"config": n, "recall": recall_json(r)})).collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(());
    }
    println!("mentorfy bench memory — {label}");
    println!(
        "  {} conversations, {} turns stored in {load_secs:.1} s, {} questions; model: {}",
        loaded.conversations,
        loaded.turn_count,
        main.questions,
        embedder.as_ref().map_or("none (BM25 only)", |e| e.name())
    );
    println!(
        "  evidence ids dropped as malformed or unknown: {}; questions without usable evidence (skipped): {}",
        loaded.dropped_evidence, loaded.questions_without_evidence
    );
    println!("  {params:?}");
    println!();
    println!("  {:<13} {:>9} {:>10}", "category", "questions", format!("recall@{}", args.k));
    for (_, name) in CATEGORIES {
        println!(
            "  {:<13} {:>9} {:>10.3}",
            name,
            main.counts.get(name).copied().unwrap_or(0),
            main.recall.get(name).copied().unwrap_or(0.0)
        );
    }
    println!("  {:<13} {:>9} {:>10.3}", "cat1-4", main.counts_14, main.cat14);
    println!();
    println!(
        "  search latency: p50 {:.3} ms, p95 {:.3} ms, max {:.3} ms; {:.1} estimated tokens per result",
        main.p50_ms, main.p95_ms, main.max_ms, main.tokens_per_result
    );
    if !ablation.is_empty() {
        println!();
        println!("  ablation (recall@{} cat1-4):", args.k);
        for (name, r) in &ablation {
            println!("    {:<36} {:.3}", name, r.cat14);
        }
    }
    Ok(())
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

async fn load(memory: &EmbeddedMemory, data: &Value) -> anyhow::Result<Loaded> {
    let conversations = data.as_array().context("the LoCoMo file must be a JSON array")?;
    let total_turns: usize = conversations
        .iter()
        .filter_map(|c| c.get("conversation")?.as_object())
        .flat_map(|c| c.iter().filter_map(|(_, v)| v.as_array()).map(Vec::len))
        .sum();
    let bar = progress(total_turns as u64, "loading turns");
    let mut loaded = Loaded {
        questions: Vec::new(),
        turns: HashMap::new(),
        turn_count: 0,
        conversations: 0,
        dropped_evidence: 0,
        questions_without_evidence: 0,
    };
    for conversation in conversations {
        let sample = conversation.get("sample_id").and_then(Value::as_str).unwrap_or("conv");
        let container = Container::parse(format!("locomo-{sample}"))?;
        let sessions = conversation.get("conversation").and_then(Value::as_object).context("conversation missing")?;
        let mut numbers: Vec<u64> =
            sessions.keys().filter_map(|k| k.strip_prefix("session_")?.parse::<u64>().ok()).collect();
        numbers.sort_unstable();
        let mut known: HashSet<String> = HashSet::new();
        for n in numbers {
            let date =
                sessions.get(&format!("session_{n}_date_time")).and_then(Value::as_str).and_then(parse_locomo_date);
            let Some(turns) = sessions.get(&format!("session_{n}")).and_then(Value::as_array) else { continue };
            for (position, turn) in turns.iter().enumerate() {
                let (Some(dia_id), Some(text)) =
                    (turn.get("dia_id").and_then(Value::as_str), turn.get("text").and_then(Value::as_str))
                else {
                    continue;
                };
                let speaker = turn.get("speaker").and_then(Value::as_str).unwrap_or("someone");
                let mut content = format!("{speaker}: {text}");
                if let Some(caption) = turn.get("blip_caption").and_then(Value::as_str) {
                    content.push_str(&format!(" [shares a photo: {caption}]"));
                }
                let id = memory
                    .add(
                        &container,
                        NewMemory {
                            content,
                            source: "locomo".into(),
                            date,
                            metadata: json!({ "dia_id": dia_id }),
                            group: Some(format!("session_{n}")),
                            position: i64::try_from(position).ok(),
                            ..NewMemory::default()
                        },
                    )
                    .await?;
                loaded.turns.insert(id, dia_id.to_owned());
                known.insert(dia_id.to_owned());
                loaded.turn_count += 1;
                bar.inc(1);
            }
        }
        for qa in conversation.get("qa").and_then(Value::as_array).into_iter().flatten() {
            let question = qa.get("question").and_then(Value::as_str).unwrap_or_default();
            let category = qa.get("category").and_then(Value::as_u64).unwrap_or(0);
            let (evidence, dropped) = clean_evidence(qa.get("evidence"), &known);
            loaded.dropped_evidence += dropped;
            if evidence.is_empty() || question.is_empty() {
                loaded.questions_without_evidence += 1;
                continue;
            }
            loaded.questions.push(Question {
                container: container.clone(),
                text: question.to_owned(),
                category,
                evidence,
            });
        }
        loaded.conversations += 1;
    }
    bar.finish_and_clear();
    Ok(loaded)
}

/// Evidence entries may join several ids (`"D8:6; D9:17"`, `"D9:1 D4:4"`); each piece must be `D<session>:<turn>`
/// without leading zeros and name a turn of this conversation. Returns the clean ids and how many were dropped.
fn clean_evidence(evidence: Option<&Value>, known: &HashSet<String>) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut dropped = 0;
    for entry in evidence.and_then(Value::as_array).into_iter().flatten() {
        let Some(entry) = entry.as_str() else {
            dropped += 1;
            continue;
        };
        for piece in entry.split(|c: char| c == ';' || c == ',' || c.is_whitespace()).filter(|p| !p.is_empty()) {
            let well_formed = piece.strip_prefix('D').and_then(|rest| rest.split_once(':')).is_some_and(|(s, t)| {
                [s, t].iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0'))
            });
            if well_formed && known.contains(piece) {
                if !ids.iter().any(|i| i == piece) {
                    ids.push(piece.to_owned());
                }
            } else {
                dropped += 1;
            }
        }
    }
    (ids, dropped)
}

/// `"1:56 pm on 8 May, 2023"` → 2023-05-08 13:56 UTC.
fn parse_locomo_date(s: &str) -> Option<OffsetDateTime> {
    let (clock, date) = s.split_once(" on ")?;
    let (hm, meridiem) = clock.trim().split_once(' ')?;
    let (h, m) = hm.split_once(':')?;
    let mut hour: u8 = h.parse().ok()?;
    let minute: u8 = m.parse().ok()?;
    match meridiem.to_ascii_lowercase().as_str() {
        "pm" if hour < 12 => hour += 12,
        "am" if hour == 12 => hour = 0,
        _ => {}
    }
    let parts: Vec<&str> = date.split([' ', ',']).filter(|p| !p.is_empty()).collect();
    let [day, month, year] = parts.as_slice() else { return None };
    let month = time::Month::try_from(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ]
        .iter()
        .position(|n| n.starts_with(&month.to_ascii_lowercase()))? as u8
            + 1,
    )
    .ok()?;
    let date = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    Some(date.with_hms(hour, minute, 0).ok()?.assume_utc())
}

struct Evaluation {
    questions: usize,
    recall: BTreeMap<&'static str, f64>,
    counts: BTreeMap<&'static str, usize>,
    cat14: f64,
    counts_14: usize,
    p50_ms: f64,
    p95_ms: f64,
    max_ms: f64,
    tokens_per_result: f64,
}

async fn evaluate(memory: &EmbeddedMemory, loaded: &Loaded, k: usize, label: &str) -> anyhow::Result<Evaluation> {
    let bar = progress(loaded.questions.len() as u64, label);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut sums: BTreeMap<&'static str, (f64, usize)> = BTreeMap::new();
    let (mut tokens, mut results) = (0usize, 0usize);
    // Warm the per-container index cache (built once per container after loading), as a running server would.
    let mut warmed = HashSet::new();
    for q in &loaded.questions {
        if warmed.insert(q.container.clone()) {
            memory.search(&q.container, "warm up", SearchOptions { limit: 1, token_budget: None }).await?;
        }
    }
    for q in &loaded.questions {
        let t = Instant::now();
        let hits = memory.search(&q.container, &q.text, SearchOptions { limit: k, token_budget: None }).await?;
        latency.record((t.elapsed().as_nanos() / 1_000).max(1) as u64)?;
        let found: HashSet<&str> = hits
            .iter()
            .filter_map(|h| Uuid::parse_str(&h.id).ok())
            .filter_map(|id| loaded.turns.get(&id).map(String::as_str))
            .collect();
        tokens += hits.iter().map(|h| text::estimate_tokens(&h.content)).sum::<usize>();
        results += hits.len();
        let recall = q.evidence.iter().filter(|e| found.contains(e.as_str())).count() as f64 / q.evidence.len() as f64;
        if let Some((_, name)) = CATEGORIES.iter().find(|(c, _)| *c == q.category) {
            let e = sums.entry(name).or_default();
            e.0 += recall;
            e.1 += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (s14, n14) = sums
        .iter()
        .filter(|(name, _)| **name != "adversarial")
        .fold((0.0, 0), |(s, n), (_, (rs, rn))| (s + rs, n + rn));
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    Ok(Evaluation {
        questions: loaded.questions.len(),
        recall: sums.iter().map(|(k, (s, n))| (*k, if *n == 0 { 0.0 } else { s / *n as f64 })).collect(),
        counts: sums.iter().map(|(k, (_, n))| (*k, *n)).collect(),
        cat14: if n14 == 0 { 0.0 } else { s14 / n14 as f64 },
        counts_14: n14,
        p50_ms: ms(0.5),
        p95_ms: ms(0.95),
        max_ms: latency.max() as f64 / 1000.0,
        tokens_per_result: if results == 0 { 0.0 } else { tokens as f64 / results as f64 },
    })
}

fn progress(len: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>16} [{bar:40}] {pos}/{len} ({elapsed})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_split_validated_and_counted() {
        let known: HashSet<String> = ["D8:6", "D9:17", "D9:1", "D4:4", "D1:3"].iter().map(|s| s.to_string()).collect();
        let ev = json!(["D8:6; D9:17", "D9:1 D4:4", "D:11:26", "D30:05", "D1:3", "D1:3", "D99:1"]);
        let (ids, dropped) = clean_evidence(Some(&ev), &known);
        assert_eq!(ids, ["D8:6", "D9:17", "D9:1", "D4:4", "D1:3"]);
        assert_eq!(dropped, 3);
    }

    #[test]
    fn locomo_dates_parse() {
        let t = parse_locomo_date("1:56 pm on 8 May, 2023").unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(t, time::macros::datetime!(2023-05-08 13:56 UTC));
        let t = parse_locomo_date("12:09 am on 13 September, 2023").unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(t, time::macros::datetime!(2023-09-13 00:09 UTC));
    }
}
