//! `mentorfy bench health`: the health score and the per-turn risk against human labels, through the real
//! pipeline. Each labelled dialogue (USS, DBDC3) is stored as one conversation by `Ingestor::ingest` on a fresh
//! database, then analysed by `Pipeline::process` (the body of the `sensei.process_conversation` job); the health
//! is read back from the store and the per-turn risk taken from the job's analysis. Parsers and metrics are
//! `mentorfy_sensei::eval`.
//!
//! `--speed` also measures the pipeline's analysis throughput (and pure `analyse` for comparison), and the
//! ingest → health-visible latency of the app started in this process with its job workers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use mentorfy_core::config::DatabaseKind;
use mentorfy_core::{Config, Secret};
use mentorfy_sensei::analysis::analyse;
use mentorfy_sensei::eval::{self, DbdcDialogue, UssDialogue, UssMetrics, UssScored};
use mentorfy_sensei::pipeline::Pipeline;
use mentorfy_sensei::{IngestConversation, IngestMessage, Ingestor, KeyContext, Role, Source};
use mentorfy_store::Store;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::bench_util::{loadavg, machine, micros, ms, new_hist};

/// Measure the health score and failure detection against human labels (USS satisfaction ratings, DBDC3
/// breakdown annotations), through the real ingestion and analysis pipeline on a fresh database.
///
/// USS: Spearman of health vs the dialogue OVERALL rating (majority, ties to the lower) with a bootstrap 95%
/// interval; AUC of low health for OVERALL < 3 beside the same AUC for dialogue length; AUC of the per-turn risk
/// of every rated USER turn for a majority rating ≤ 2. DBDC: AUC of the risk of annotated system turns for a
/// majority X.
#[derive(Args, Debug, Clone)]
pub struct BenchHealthArgs {
    /// USS files (SGD.txt, MWOZ.txt); each is one corpus, named by its file stem.
    #[arg(long, num_args = 1..)]
    pub uss: Vec<PathBuf>,
    /// DBDC3 folder (e.g. dbdc3/en-dev): *.json dialogues in it and its subfolders.
    #[arg(long)]
    pub dbdc: Option<PathBuf>,
    /// Print exactly one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// `sqlite` (a fresh temp file) or a postgres:// URL (a fresh scratch schema, dropped at the end).
    #[arg(long, default_value = "sqlite")]
    pub database: String,
    /// At most this many dialogues per corpus (the first ones).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Also measure speed: analysis throughput and ingest → health-visible latency.
    #[arg(long)]
    pub speed: bool,
    /// Only measure speed (no corpora needed).
    #[arg(long)]
    pub speed_only: bool,
    /// Generated 20-message conversations for the throughput measurement.
    #[arg(long, default_value_t = 2_000)]
    pub conversations: usize,
    /// Conversations tracked one after another for the latency measurement.
    #[arg(long, default_value_t = 200)]
    pub latency_samples: usize,
    /// MENTORFY_JOB_POLL_INTERVAL of the in-process workers during the latency measurement (at least 10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub poll_interval_ms: u64,
}

/// Targets of the issue.
const TARGET_SPEARMAN: f64 = 0.30;
const TARGET_TURN_AUC: f64 = 0.80;
const TARGET_DBDC_AUC: f64 = 0.70;
const TARGET_CONVS_PER_S: f64 = 2_000.0;
const TARGET_VISIBLE_P95_MS: f64 = 1_000.0;
/// Conversations per `Ingestor::ingest` call.
const BATCH: usize = 100;
/// Labelled dialogues are stored as this long ago, 10 s per message: final for any idle timeout under 2 days.
const AGO: time::Duration = time::Duration::days(2);
const STEP: time::Duration = time::Duration::seconds(10);
const ENVIRONMENT: &str = "bench-health";

pub async fn run(config: Config, args: BenchHealthArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let quality = !args.speed_only;
    anyhow::ensure!(
        !quality || !args.uss.is_empty() || args.dbdc.is_some(),
        "give --uss FILE... and/or --dbdc DIR (or --speed-only)"
    );
    anyhow::ensure!(
        args.database == "sqlite" || args.database.starts_with("postgres"),
        "--database must be 'sqlite' or a postgres:// URL"
    );
    let mut report = Map::new();
    report.insert("machine".into(), machine());
    report.insert("loadavg_start".into(), json!(loadavg()));
    if quality {
        let q = with_db(&args.database, "bench_health", |store| labelled(store, &config, &args)).await?;
        for (k, v) in q {
            report.insert(k, v);
        }
    }
    if args.speed || args.speed_only {
        report.insert("speed".into(), speed(&config, &args).await?);
    }
    report.insert("loadavg_end".into(), json!(loadavg()));
    report.insert("database".into(), json!(db_label(&args.database)));
    let report = Value::Object(report);
    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    if report["health_mismatches"].as_u64().unwrap_or(0) > 0 {
        anyhow::bail!("the stored health differs from the analysis' health for some conversations (see above)");
    }
    Ok(())
}

fn db_label(database: &str) -> &'static str {
    if database == "sqlite" { "SQLite (temp file, WAL)" } else { "PostgreSQL (fresh schema)" }
}

/// A fresh database URL: a temp SQLite file (kept alive by the returned dir) or a scratch PostgreSQL schema.
async fn fresh_url(database: &str, prefix: &str) -> anyhow::Result<(String, Option<String>, tempfile::TempDir)> {
    let tmp = tempfile::tempdir()?;
    if database == "sqlite" {
        Ok((format!("sqlite://{}", tmp.path().join("bench.db").display()), None, tmp))
    } else {
        let (url, schema) = mentorfy_store::create_scratch_schema(database, prefix).await?;
        Ok((url, Some(schema), tmp))
    }
}

async fn drop_scratch(database: &str, scratch: Option<String>) -> anyhow::Result<()> {
    if let Some(schema) = scratch {
        mentorfy_store::drop_scratch_schema(database, &schema).await?;
    }
    Ok(())
}

/// Runs `f` on a migrated store over a fresh database, then drops the database.
async fn with_db<T, F, Fut>(database: &str, prefix: &str, f: F) -> anyhow::Result<T>
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let (url, scratch, _tmp) = fresh_url(database, prefix).await?;
    let result = async {
        let store = Store::connect(&url, 4).await?;
        store.migrate().await?;
        f(store).await
    }
    .await;
    drop_scratch(database, scratch).await?;
    result
}

fn bar(len: usize, msg: String) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(msg);
    bar
}

fn conversation(external_id: String, turns: &[(Role, &str)], start: OffsetDateTime) -> IngestConversation {
    let messages = turns
        .iter()
        .enumerate()
        .map(|(i, (role, text))| {
            let at = start + STEP * i32::try_from(i).unwrap_or(i32::MAX);
            IngestMessage::new(Some(format!("m{i}")), *role, (*text).to_owned(), at)
        })
        .collect();
    IngestConversation {
        external_id,
        environment: None,
        user_id: None,
        agent_id: Some("bench-health".into()),
        metadata: Map::new(),
        messages,
    }
}

/// Stores dialogues (as `prefix-<index>`) in batches; their conversation ids, in order.
async fn ingest_all(
    ingestor: &Ingestor,
    prefix: &str,
    dialogues: &[Vec<(Role, &str)>],
    start: OffsetDateTime,
    bar: &ProgressBar,
) -> anyhow::Result<Vec<Uuid>> {
    let key = KeyContext { api_key_id: None, environment: ENVIRONMENT.into() };
    let mut ids = Vec::with_capacity(dialogues.len());
    for (b, chunk) in dialogues.chunks(BATCH).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(i, d)| conversation(format!("{prefix}-{}", b * BATCH + i), d, start))
            .collect();
        let outcomes = ingestor.ingest(Source::Api, &key, batch).await?;
        anyhow::ensure!(
            outcomes.len() == chunk.len(),
            "ingestion stored {} of {} conversations",
            outcomes.len(),
            chunk.len()
        );
        ids.extend(outcomes.iter().map(|o| o.conversation_id));
        bar.inc(chunk.len() as u64);
    }
    Ok(ids)
}

/// What the pipeline gave one conversation.
struct Scored {
    /// Health as stored (read back from the conversation).
    health: f64,
    turn_risk: Vec<f64>,
}

#[derive(Default)]
struct Checks {
    health_mismatches: u64,
    not_final: u64,
    misaligned: u64,
}

/// `Pipeline::process` on each conversation; the stored health checked against the analysis.
async fn process_all(
    store: &Store,
    pipeline: &Pipeline,
    ids: &[Uuid],
    lengths: &[usize],
    checks: &mut Checks,
    bar: &ProgressBar,
) -> anyhow::Result<Vec<Scored>> {
    let mut out = Vec::with_capacity(ids.len());
    for (id, len) in ids.iter().zip(lengths) {
        let p = pipeline.process(*id).await?.with_context(|| format!("conversation {id} vanished"))?;
        let row = store.get_conversation(*id).await?.with_context(|| format!("conversation {id} vanished"))?;
        let stored = row.health_score.with_context(|| format!("conversation {id} has no health after processing"))?;
        let expected = (p.analysis.health.score * 1000.0).round() / 1000.0;
        if (stored - expected).abs() > 1e-9 {
            checks.health_mismatches += 1;
            tracing::warn!(%id, stored, expected, "stored health differs from the analysis");
        }
        if !p.is_final {
            checks.not_final += 1;
        }
        if p.analysis.turn_risk.len() != *len {
            checks.misaligned += 1;
        }
        out.push(Scored { health: stored, turn_risk: p.analysis.turn_risk });
        bar.inc(1);
    }
    Ok(out)
}

fn uss_json(m: &UssMetrics) -> Value {
    json!({
        "n": m.n,
        "spearman": r3(m.spearman.value),
        "spearman_ci": [r3(m.spearman.lo), r3(m.spearman.hi)],
        "auc_overall_lt3": r3(m.auc_overall_lt3),
        "auc_length_baseline": r3(m.auc_length_baseline),
        "turn_auc": r3(m.turn_auc),
        "spearman_length": r3(m.spearman_length),
        "length_shorter_is_worse": m.length_shorter_is_worse,
        "overall_lt3": m.overall_lt3,
        "turns": m.turns,
        "turns_rated_le2": m.turns_low,
        "mean_health": (m.mean_health * 10.0).round() / 10.0,
    })
}

/// The labelled corpora through the pipeline; also `analyse` called directly on the same transcripts.
async fn labelled(store: Store, config: &Config, args: &BenchHealthArgs) -> anyhow::Result<Map<String, Value>> {
    let ingestor = Ingestor::new(store.clone(), Duration::ZERO);
    let pipeline = Pipeline::new(store.clone(), config.sensei.idle_timeout);
    let start = OffsetDateTime::now_utc() - AGO;
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut checks = Checks::default();
    let mut out = Map::new();
    let (mut uss, mut uss_direct) = (Map::new(), Map::new());
    let (mut pooled, mut pooled_direct) = (Vec::new(), Vec::new());
    let mut sizes = Vec::new();
    for path in &args.uss {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("uss").to_owned();
        let mut dialogues: Vec<UssDialogue> =
            eval::read_uss(path).with_context(|| format!("reading {}", path.display()))?;
        dialogues.truncate(limit);
        let turns: Vec<Vec<(Role, &str)>> = dialogues.iter().map(|d| d.pairs().collect()).collect();
        let lengths: Vec<usize> = turns.iter().map(Vec::len).collect();
        sizes.push(json!({"corpus": name, "dialogues": dialogues.len(), "messages": lengths.iter().sum::<usize>()}));
        let b = bar(dialogues.len(), format!("{name}: ingest"));
        let ids = ingest_all(&ingestor, &name, &turns, start, &b).await?;
        b.finish_and_clear();
        let b = bar(dialogues.len(), format!("{name}: Pipeline::process"));
        let scored = process_all(&store, &pipeline, &ids, &lengths, &mut checks, &b).await?;
        b.finish_and_clear();
        let scored: Vec<UssScored> =
            dialogues.iter().zip(&scored).map(|(d, s)| UssScored::new(d, s.health, &s.turn_risk)).collect();
        let direct: Vec<UssScored> = dialogues
            .iter()
            .zip(&turns)
            .map(|(d, t)| {
                let a = analyse(&eval::transcript(t.iter().copied(), start, STEP));
                UssScored::new(d, a.health.score, &a.turn_risk)
            })
            .collect();
        uss.insert(name.clone(), uss_json(&eval::uss_metrics(&scored)));
        uss_direct.insert(name, uss_json(&eval::uss_metrics(&direct)));
        pooled.extend(scored);
        pooled_direct.extend(direct);
    }
    if args.uss.len() > 1 {
        uss.insert("pooled".into(), uss_json(&eval::uss_metrics(&pooled)));
        uss_direct.insert("pooled".into(), uss_json(&eval::uss_metrics(&pooled_direct)));
    }
    if !uss.is_empty() {
        out.insert("uss".into(), Value::Object(uss));
        out.insert("uss_direct_analyse".into(), Value::Object(uss_direct));
    }
    if let Some(dir) = &args.dbdc {
        let mut dialogues: Vec<DbdcDialogue> =
            eval::read_dbdc_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        dialogues.truncate(limit);
        let turns: Vec<Vec<(Role, &str)>> = dialogues.iter().map(|d| d.pairs().collect()).collect();
        let lengths: Vec<usize> = turns.iter().map(Vec::len).collect();
        sizes.push(json!({"corpus": "dbdc", "dialogues": dialogues.len(), "messages": lengths.iter().sum::<usize>()}));
        let b = bar(dialogues.len(), "DBDC: ingest".into());
        let ids = ingest_all(&ingestor, "dbdc", &turns, start, &b).await?;
        b.finish_and_clear();
        let b = bar(dialogues.len(), "DBDC: Pipeline::process".into());
        let scored = process_all(&store, &pipeline, &ids, &lengths, &mut checks, &b).await?;
        b.finish_and_clear();
        let mut flat = Vec::new();
        let mut flat_direct = Vec::new();
        for ((d, s), t) in dialogues.iter().zip(&scored).zip(&turns) {
            flat.extend(eval::dbdc_turns(d, &s.turn_risk));
            let a = analyse(&eval::transcript(t.iter().copied(), start, STEP));
            flat_direct.extend(eval::dbdc_turns(d, &a.turn_risk));
        }
        let dbdc_json = |m: eval::DbdcMetrics| {
            json!({"n": m.n, "auc": r3(m.auc), "dialogues": m.dialogues, "majority_x": m.positives,
                   "spearman_x_share": r3(m.spearman_x_share)})
        };
        out.insert("dbdc".into(), dbdc_json(eval::dbdc_metrics(dialogues.len(), &flat)));
        out.insert("dbdc_direct_analyse".into(), dbdc_json(eval::dbdc_metrics(dialogues.len(), &flat_direct)));
    }
    out.insert("data".into(), Value::Array(sizes));
    out.insert("health_mismatches".into(), json!(checks.health_mismatches));
    out.insert("not_final".into(), json!(checks.not_final));
    out.insert("misaligned".into(), json!(checks.misaligned));
    out.insert("idle_timeout_s".into(), json!(config.sensei.idle_timeout.as_secs_f64()));
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// Speed
// ---------------------------------------------------------------------------------------------------------

/// `n` 20-message conversations: demo conversations of at least 20 messages cut to 20 (user and assistant
/// turns only), topped up if the generator gives too few with 20-message runs of the demo messages.
fn twenty_message_conversations(n: usize) -> Vec<Vec<(Role, String)>> {
    let now = OffsetDateTime::now_utc();
    let role = |r: &str| if r == "assistant" { Role::Assistant } else { Role::User };
    let mut out: Vec<Vec<(Role, String)>> = mentorfy_sensei::demo::generate(42, n.saturating_mul(20), now)
        .filter(|c| c.messages.len() >= 20)
        .take(n)
        .map(|c| c.messages.iter().take(20).map(|m| (role(m.role), m.content.clone())).collect())
        .collect();
    if out.len() < n {
        let flat: Vec<(Role, String)> = mentorfy_sensei::demo::generate(43, n, now)
            .flat_map(|c| c.messages.into_iter().map(move |m| (role(m.role), m.content)))
            .collect();
        let mut chunks = flat.chunks_exact(20).cycle();
        while out.len() < n {
            match chunks.next() {
                Some(c) => out.push(c.to_vec()),
                None => break,
            }
        }
    }
    out
}

async fn speed(config: &Config, args: &BenchHealthArgs) -> anyhow::Result<Value> {
    let convs = twenty_message_conversations(args.conversations.max(1));
    let n = convs.len();
    let turns: Vec<Vec<(Role, &str)>> =
        convs.iter().map(|c| c.iter().map(|(r, t)| (*r, t.as_str())).collect()).collect();
    let messages: usize = turns.iter().map(Vec::len).sum();
    let start = OffsetDateTime::now_utc() - AGO;

    // Pipeline::process, one task, over conversations already stored.
    let idle = config.sensei.idle_timeout;
    let (pipeline_secs, read_secs, pipeline_load) = with_db(&args.database, "bench_health_speed", |store| {
        let turns = &turns;
        async move {
            let ingestor = Ingestor::new(store.clone(), Duration::ZERO);
            let b = bar(n, "speed: ingest".into());
            let ids = ingest_all(&ingestor, "speed", turns, start, &b).await?;
            b.finish_and_clear();
            let pipeline = Pipeline::new(store.clone(), idle);
            let b = bar(n, "speed: Pipeline::process".into());
            let t = Instant::now();
            for id in &ids {
                pipeline.process(*id).await?;
                b.inc(1);
            }
            let secs = t.elapsed().as_secs_f64();
            b.finish_and_clear();
            let load = loadavg();
            // The job's reads alone (conversation + messages), to split its time into read / analyse / write.
            let t = Instant::now();
            for id in &ids {
                store.get_conversation(*id).await?;
                store.list_messages(*id).await?;
            }
            Ok((secs, t.elapsed().as_secs_f64(), load))
        }
    })
    .await?;

    // analyse() alone on the same transcripts, repeated for at least 2 s.
    let transcripts: Vec<_> = turns.iter().map(|t| eval::transcript(t.iter().copied(), start, STEP)).collect();
    let b = bar(0, "speed: analyse (2 s)".into());
    let t = Instant::now();
    let (mut rounds, mut sink) = (0usize, 0.0);
    while t.elapsed() < Duration::from_secs(2) || rounds == 0 {
        for tr in &transcripts {
            sink += analyse(tr).health.score;
        }
        rounds += 1;
        b.inc(n as u64);
    }
    let analyse_secs = t.elapsed().as_secs_f64();
    b.finish_and_clear();

    let latency = latency(config, args).await?;
    Ok(json!({
        "conversations": n,
        "messages_per_conversation": messages as f64 / n as f64,
        "pipeline_process": {
            "conversations_per_s": (n as f64 / pipeline_secs).round(),
            "messages_per_s": (messages as f64 / pipeline_secs).round(),
            "ms_per_conversation": r3(pipeline_secs * 1000.0 / n as f64),
            "loadavg": pipeline_load,
            "read_ms_per_conversation": r3(read_secs * 1000.0 / n as f64),
        },
        "analyse_only": {
            "conversations_per_s": ((n * rounds) as f64 / analyse_secs).round(),
            "ms_per_conversation": r3(analyse_secs * 1000.0 / (n * rounds) as f64),
            "rounds": rounds,
            "checksum": sink.round(),
        },
        "ingest_to_health_visible": latency,
    }))
}

/// Tracks conversations one at a time through the HTTP API of the app started here with its job workers
/// (debounce 0, idle timeout 0), and polls the store every 5 ms until each one's health is set.
async fn latency(config: &Config, args: &BenchHealthArgs) -> anyhow::Result<Value> {
    let (url, scratch, _tmp) = fresh_url(&args.database, "bench_health_latency").await?;
    let mut cfg = config.clone();
    cfg.database_url = Secret::new(url);
    cfg.database_kind = if scratch.is_some() { DatabaseKind::Postgres } else { DatabaseKind::Sqlite };
    cfg.sensei.analysis_debounce = Duration::ZERO;
    cfg.sensei.idle_timeout = Duration::ZERO;
    cfg.sensei.ingest_rate = (1_000_000, Duration::from_secs(1));
    cfg.sensei.ingest_burst = 1_000_000;
    cfg.jobs.workers = cfg.jobs.workers.max(1);
    cfg.jobs.poll_interval = Duration::from_millis(args.poll_interval_ms);
    let workers = cfg.jobs.workers;
    let result = latency_run(cfg, args).await;
    drop_scratch(&args.database, scratch).await?;
    let mut v = result?;
    if let Some(o) = v.as_object_mut() {
        o.insert("workers".into(), json!(workers));
        o.insert("poll_interval_ms".into(), json!(args.poll_interval_ms));
        o.insert("debounce_ms".into(), json!(0));
        o.insert("idle_timeout_s".into(), json!(0));
    }
    Ok(v)
}

async fn latency_run(cfg: Config, args: &BenchHealthArgs) -> anyhow::Result<Value> {
    let state = mentorfy_web::prepare(Arc::new(cfg)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("bind 127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mentorfy_web::serve(listener, state.clone(), async move {
        let _ = stop_rx.await;
    }));
    let created = state.admin().api_keys.create("bench-health", None, Some("cli")).await?;
    let auth = format!("Bearer {}", created.key);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let convs = twenty_message_conversations(args.latency_samples.max(1));
    let store = state.store().clone();
    let (mut visible, mut ack) = (new_hist()?, new_hist()?);
    let (mut timeouts, mut errors) = (0u64, 0u64);
    let b = bar(convs.len(), "speed: track → health visible".into());
    for (i, c) in convs.iter().enumerate() {
        let now_ms = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let len = i64::try_from(c.len()).unwrap_or(0);
        let messages: Vec<Value> = c
            .iter()
            .enumerate()
            .map(|(k, (role, text))| {
                let k = i64::try_from(k).unwrap_or(0);
                json!({"id": format!("m{k}"), "role": role.as_str(), "content": text,
                       "timestamp": now_ms - (len - k) * 1000})
            })
            .collect();
        let external = format!("latency-{i}");
        let body = json!({"conversationId": external, "environment": ENVIRONMENT, "agentId": "bench-health",
                          "messages": messages});
        let sent = Instant::now();
        let res = http
            .post(format!("{base}/api/v1/conversations/track"))
            .header("authorization", &auth)
            .json(&body)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
            }
            Ok(r) => {
                errors += 1;
                tracing::warn!(status = %r.status(), "track failed");
                continue;
            }
            Err(e) => {
                errors += 1;
                tracing::warn!(error = %e, "track failed");
                continue;
            }
        }
        let _ = ack.record(micros(sent.elapsed()));
        loop {
            let row = store.find_conversation("api", ENVIRONMENT, &external).await?;
            if row.is_some_and(|r| r.health_score.is_some()) {
                let _ = visible.record(micros(sent.elapsed()));
                break;
            }
            if sent.elapsed() > Duration::from_secs(30) {
                timeouts += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        b.inc(1);
    }
    b.finish_and_clear();
    let _ = stop_tx.send(());
    server.await.context("server task")?.context("server")?;
    let q = |h: &Histogram<u64>, p: f64| ms(h.value_at_quantile(p));
    Ok(json!({
        "samples": visible.len(),
        "messages_per_conversation": 20,
        "visible_p50_ms": q(&visible, 0.50),
        "visible_p95_ms": q(&visible, 0.95),
        "visible_p99_ms": q(&visible, 0.99),
        "visible_max_ms": ms(visible.max()),
        "ack_p50_ms": q(&ack, 0.50),
        "ack_p95_ms": q(&ack, 0.95),
        "timeouts": timeouts,
        "errors": errors,
        "store_poll_ms": 5,
    }))
}

// ---------------------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------------------

fn r3(x: f64) -> Value {
    if x.is_finite() { json!((x * 1000.0).round() / 1000.0) } else { Value::Null }
}

fn f(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".to_owned(), |x| format!("{x:.3}"))
}

fn met(v: &Value, target: f64, higher: bool) -> &'static str {
    match v.as_f64() {
        Some(x) if (higher && x >= target) || (!higher && x <= target) => "met",
        Some(_) => "NOT met",
        None => "-",
    }
}

/// A text bar of `x` on a 0..0.5 scale, 50 characters, with `|` at the target.
fn bar_text(x: f64) -> String {
    let filled = (x.clamp(0.0, 0.5) * 100.0).round() as usize;
    let target = (TARGET_SPEARMAN * 100.0).round() as usize;
    (0..50)
        .map(|i| {
            if i < filled {
                '#'
            } else if i == target {
                '|'
            } else {
                ' '
            }
        })
        .collect()
}

fn print_report(r: &Value) {
    let m = &r["machine"];
    println!(
        "{} on {} x {}; load average {} at the start, {} at the end",
        r["database"].as_str().unwrap_or(""),
        m["cpus"],
        m["cpu_model"].as_str().unwrap_or(""),
        r["loadavg_start"],
        r["loadavg_end"]
    );
    if let Some(data) = r["data"].as_array() {
        let sizes: Vec<String> = data
            .iter()
            .map(|d| {
                format!(
                    "{} {} dialogues / {} messages",
                    d["corpus"].as_str().unwrap_or(""),
                    d["dialogues"],
                    d["messages"]
                )
            })
            .collect();
        println!("data: {}", sizes.join("; "));
        println!(
            "pipeline: Ingestor::ingest → Pipeline::process → store; stored health = analysis health (rounded) for all \
             but {}; not final: {}; misaligned turn risks: {}",
            r["health_mismatches"], r["not_final"], r["misaligned"]
        );
    }
    if let Some(uss) = r["uss"].as_object() {
        println!();
        println!("USS — health vs dialogue satisfaction (OVERALL, majority, ties to the lower)");
        println!(
            "{:<8} {:>5} {:>8} {:>17} {:>8} {:>10} {:>10} {:>9} {:>14} {:>9}",
            "corpus", "n", "Spearman", "95% CI", "target", "AUC OA<3", "AUC length", "turn AUC", "turns (≤2)", "target"
        );
        for (name, v) in uss {
            println!(
                "{:<8} {:>5} {:>8} {:>17} {:>8} {:>10} {:>10} {:>9} {:>14} {:>9}",
                name,
                v["n"].to_string(),
                f(&v["spearman"]),
                format!("[{}, {}]", f(&v["spearman_ci"][0]), f(&v["spearman_ci"][1])),
                met(&v["spearman"], TARGET_SPEARMAN, true),
                f(&v["auc_overall_lt3"]),
                f(&v["auc_length_baseline"]),
                f(&v["turn_auc"]),
                format!("{} ({})", v["turns"], v["turns_rated_le2"]),
                met(&v["turn_auc"], TARGET_TURN_AUC, true),
            );
        }
        if let Some(direct) = r["uss_direct_analyse"].as_object() {
            let line: Vec<String> = direct
                .iter()
                .map(|(n, v)| format!("{n} ρ {} turn AUC {}", f(&v["spearman"]), f(&v["turn_auc"])))
                .collect();
            println!("analyse() called directly on the same transcripts: {}", line.join("; "));
        }
        println!(
            "targets: Spearman ≥ {TARGET_SPEARMAN:.2} pooled, turn AUC ≥ {TARGET_TURN_AUC:.2}. Reference Spearman: one \
             human annotator vs the others 0.28-0.30; VADER mean of user turns 0.18-0.27; dialogue length 0.10-0.15."
        );
        println!();
        println!("Spearman(health, OVERALL), 0 .. 0.5 (| = target {TARGET_SPEARMAN:.2}):");
        for (name, v) in uss {
            let x = v["spearman"].as_f64().unwrap_or(0.0);
            println!("  {name:<16} {} {x:.3}", bar_text(x));
        }
        for (name, x) in [("human 0.28-0.30", 0.29), ("VADER 0.18-0.27", 0.225), ("length 0.10-0.15", 0.125)] {
            println!("  {name:<16} {} ~{x:.2}", bar_text(x));
        }
    }
    let d = &r["dbdc"];
    if !d.is_null() {
        println!();
        println!(
            "DBDC3 — {} dialogues, {} annotated system turns, {} majority X: AUC(risk → X) = {} (target ≥ {TARGET_DBDC_AUC:.2}: {}); \
             Spearman(risk, X share) = {}; analyse() directly: AUC {}",
            d["dialogues"],
            d["n"],
            d["majority_x"],
            f(&d["auc"]),
            met(&d["auc"], TARGET_DBDC_AUC, true),
            f(&d["spearman_x_share"]),
            f(&r["dbdc_direct_analyse"]["auc"]),
        );
    }
    let s = &r["speed"];
    if !s.is_null() {
        let p = &s["pipeline_process"];
        let a = &s["analyse_only"];
        let l = &s["ingest_to_health_visible"];
        println!();
        println!(
            "Speed — {} conversations of {} messages, one task",
            s["conversations"], s["messages_per_conversation"]
        );
        println!(
            "  Pipeline::process (read, analyse, store): {} conversations/s ({} messages/s, {} ms each) — target ≥ {TARGET_CONVS_PER_S:.0}/s per core: {}",
            p["conversations_per_s"],
            p["messages_per_s"],
            p["ms_per_conversation"],
            met(&p["conversations_per_s"], TARGET_CONVS_PER_S, true)
        );
        println!(
            "  analyse() alone: {} conversations/s ({} ms each); the job's two reads alone: {} ms each",
            a["conversations_per_s"], a["ms_per_conversation"], p["read_ms_per_conversation"]
        );
        println!(
            "  track → health visible ({} samples, {} workers, job poll {} ms, store polled every 5 ms): p50 {} ms, p95 {} ms, \
             p99 {} ms, max {} ms (ack p50 {} ms) — target p95 ≤ {TARGET_VISIBLE_P95_MS:.0} ms: {}; timeouts {}, errors {}",
            l["samples"],
            l["workers"],
            l["poll_interval_ms"],
            l["visible_p50_ms"],
            l["visible_p95_ms"],
            l["visible_p99_ms"],
            l["visible_max_ms"],
            l["ack_p50_ms"],
            met(&l["visible_p95_ms"], TARGET_VISIBLE_P95_MS, false),
            l["timeouts"],
            l["errors"],
        );
    }
}
