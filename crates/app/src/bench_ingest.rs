//! `mentorfy bench ingest`: ingestion throughput (messages/s) and ack latency of Sensei's ingestion API, against
//! the real server started in this process (the same `prepare`/`serve` as `mentorfy serve`) on a fresh database
//! per run: a temp SQLite file, or a scratch PostgreSQL schema dropped at the end.
//!
//! Closed loop: each of N clients sends its next request when the previous one is answered, so the figures are
//! the server's capacity at that concurrency and the latency its clients see there. Bodies are built from demo
//! conversations (`mentorfy_sensei::demo`) serialized once into templates; per request only ids are filled in,
//! so the load generator spends little of the shared CPU. The HTTP client never retries: any non-2xx answer or
//! transport error counts as an error.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use mentorfy_client::{BatchEvent, TrackMessage, TrackRequest};
use mentorfy_core::config::DatabaseKind;
use mentorfy_core::{Config, Secret};
use mentorfy_sensei::batch::{BatchBody, BatchItem, validate_batch};
use mentorfy_sensei::{KeyContext, Source};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::bench_util::{loadavg, machine, micros, ms, new_hist};
use crate::local_server::LocalServer;

/// Measure ingestion: messages stored per second and the latency of each request's acknowledgement.
///
/// Each run (one mode at one client count) starts the server in this process on a fresh database, with the
/// per-key ingestion rate limit raised out of the way and job workers off (analysis jobs are only enqueued),
/// creates a temporary API key, warms up, then measures for --duration seconds.
#[derive(Args, Debug, Clone)]
pub struct BenchIngestArgs {
    /// Database to benchmark: `sqlite` (a fresh temp file per run) or a postgres:// URL (a fresh scratch schema
    /// per run, dropped at the end).
    #[arg(long, default_value = "sqlite")]
    pub database: String,
    /// `batch`: POST /api/v1/ingest with --batch-size `track` events, each a whole demo conversation (about 10
    /// messages). `single`: POST /api/v1/conversations/track with one message per request, appended to one of
    /// the client's 8 conversations. `both`: batch, then single.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    pub mode: Mode,
    /// Concurrent closed-loop clients (each sends its next request when the previous one is answered). A
    /// comma-separated list (e.g. 4,8,16) runs each in turn, every run on a fresh database.
    #[arg(long, default_value = "8", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub clients: Vec<u64>,
    /// Events per batch request in `batch` mode (at most 1,000); each event is one conversation, so 100 events
    /// are about 1,000 messages.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub batch_size: u64,
    /// Measured seconds per run, after the warm-up.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Warm-up seconds per run (load is sent but not measured).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub warmup: u64,
    /// Print exactly one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also time, without HTTP and one batch at a time, the two halves of a batch on the server (parsing +
    /// validation, then the store transaction), and the store's time for the same messages in fewer
    /// conversations and for the same conversations with one message each, to show where a batch's time goes.
    #[arg(long)]
    pub breakdown: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Batch,
    Single,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunMode {
    Batch,
    Single,
}

impl RunMode {
    fn name(self) -> &'static str {
        match self {
            RunMode::Batch => "batch",
            RunMode::Single => "single",
        }
    }
}

/// Demo conversations generated for the templates (distinct conversations are made by renaming them).
const TEMPLATES: usize = 2_000;
/// Conversations each client appends to in `single` mode.
const SINGLE_CONVERSATIONS: u64 = 8;
const CONV_PLACEHOLDER: &str = "@@BENCH_CONV@@";
const EVENT_PLACEHOLDER: &str = "@@BENCH_EVENT@@";

/// A serialized track event with holes for its event id and conversation id.
struct Template {
    /// The JSON text split at the placeholders: parts[0] EVENT parts[1] CONV parts[2] (in serialization order).
    parts: Vec<String>,
    /// Which placeholder each hole is, in order.
    holes: Vec<bool>,
    messages: u64,
}

struct Corpus {
    events: Vec<Template>,
    /// JSON-escaped (quoted) message contents, with their role.
    messages: Vec<(&'static str, String)>,
}

/// What one client measured.
struct ClientResult {
    hist: Histogram<u64>,
    requests: u64,
    messages: u64,
    errors: u64,
    event_errors: u64,
    first_error: Option<String>,
    /// Everything acknowledged, warm-up and tail included (the data size).
    stored_conversations: u64,
    stored_messages: u64,
}

pub async fn run(config: Config, args: BenchIngestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.clients.is_empty(), "--clients needs at least one number");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let postgres = if args.database == "sqlite" {
        false
    } else if args.database.starts_with("postgres") {
        true
    } else {
        anyhow::bail!("--database must be 'sqlite' or a postgres:// URL");
    };
    let corpus = Arc::new(corpus()?);
    let modes: &[RunMode] = match args.mode {
        Mode::Batch => &[RunMode::Batch],
        Mode::Single => &[RunMode::Single],
        Mode::Both => &[RunMode::Batch, RunMode::Single],
    };
    let machine = machine();
    let label = if postgres { "PostgreSQL (fresh schema)" } else { "SQLite (temp file, WAL)" };
    let mut rows = Vec::new();
    let mut breakdown = None;
    for &mode in modes {
        for &clients in &args.clients {
            let tmp = tempfile::tempdir()?;
            let mut config = config.clone();
            let scratch = if postgres {
                let (url, schema) = mentorfy_store::create_scratch_schema(&args.database, "bench_ingest").await?;
                config.database_url = Secret::new(url);
                config.database_kind = DatabaseKind::Postgres;
                Some(schema)
            } else {
                config.database_url = Secret::new(format!("sqlite://{}", tmp.path().join("bench.db").display()));
                config.database_kind = DatabaseKind::Sqlite;
                None
            };
            // Rate limit out of the way (as SENSEI_INGEST_RATE_LIMIT / SENSEI_INGEST_BURST would), no workers.
            config.sensei.ingest_rate = (1_000_000, Duration::from_secs(1));
            config.sensei.ingest_burst = 1_000_000;
            config.jobs.workers = 0;
            let want_breakdown = args.breakdown && mode == RunMode::Batch && breakdown.is_none();
            let result = one_run(config, &args, mode, clients, corpus.clone(), label, want_breakdown).await;
            if let Some(schema) = scratch {
                mentorfy_store::drop_scratch_schema(&args.database, &schema).await?;
            }
            let (row, b) = result?;
            if !args.json {
                print_row_live(&row);
            }
            if b.is_some() {
                breakdown = b;
            }
            rows.push(row);
        }
    }
    let report = json!({
        "database": label,
        "machine": machine,
        "loadavg_end": loadavg(),
        "batch_size": args.batch_size,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "results": rows,
        "breakdown": breakdown,
    });
    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(())
}

#[allow(clippy::too_many_lines)]
async fn one_run(
    config: Config,
    args: &BenchIngestArgs,
    mode: RunMode,
    clients: u64,
    corpus: Arc<Corpus>,
    label: &str,
    want_breakdown: bool,
) -> anyhow::Result<(Value, Option<Value>)> {
    let server = LocalServer::start(config, "bench-ingest").await?;
    let (base, key_id) = (server.base.clone(), server.key_id);
    let auth = format!("Bearer {}", server.key);
    let http = reqwest::Client::builder().pool_max_idle_per_host(4096).timeout(Duration::from_secs(120)).build()?;

    let loadavg_start = loadavg();
    let warmup = Duration::from_secs(args.warmup);
    let measured = Duration::from_secs(args.duration);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measured;
    let live = Arc::new(AtomicU64::new(0));
    let bar = ProgressBar::new((warmup + measured).as_secs());
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} s")?.progress_chars("=> "));
    let title = format!("{label}, {}, {clients} clients", mode.name());
    bar.set_message(title.clone());
    let ticker = {
        let (bar, live) = (bar.clone(), live.clone());
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let (now, n) = (Instant::now(), live.load(Ordering::Relaxed));
                let rate = (n - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(0.001);
                last = (now, n);
                bar.set_position(now.duration_since(start).as_secs());
                let phase = if now < measure_from { "warm-up" } else { "measuring" };
                bar.set_message(format!("{title}: {phase}, {rate:.0} messages/s"));
            }
        })
    };

    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, auth, corpus, live) = (http.clone(), base.clone(), auth.clone(), corpus.clone(), live.clone());
        let batch_size = args.batch_size;
        tasks.push(tokio::spawn(async move {
            client_loop(ClientCtx {
                http,
                base,
                auth,
                corpus,
                live,
                id: c,
                clients,
                batch_size,
                mode,
                measure_from,
                end,
            })
            .await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await??);
    }
    ticker.abort();
    bar.finish_and_clear();

    let breakdown =
        if want_breakdown { Some(breakdown(&server.state, key_id, &corpus, args.batch_size).await?) } else { None };
    server.stop().await?;

    let mut hist = new_hist()?;
    let (mut requests, mut messages, mut errors, mut event_errors, mut conversations, mut stored) = (0, 0, 0, 0, 0, 0);
    let mut first_error = None;
    for r in results {
        hist.add(&r.hist)?;
        requests += r.requests;
        messages += r.messages;
        errors += r.errors;
        event_errors += r.event_errors;
        conversations += r.stored_conversations;
        stored += r.stored_messages;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let secs = measured.as_secs_f64();
    let row = json!({
        "mode": mode.name(),
        "clients": clients,
        "batch_size": if mode == RunMode::Batch { Some(args.batch_size) } else { None },
        "requests": requests,
        "messages": messages,
        "messages_per_s": (messages as f64 / secs).round() as u64,
        "requests_per_s": (requests as f64 / secs * 10.0).round() / 10.0,
        "p50_ms": ms(hist.value_at_quantile(0.50)),
        "p90_ms": ms(hist.value_at_quantile(0.90)),
        "p99_ms": ms(hist.value_at_quantile(0.99)),
        "max_ms": ms(hist.max()),
        "errors": errors,
        "event_errors": event_errors,
        "first_error": first_error,
        "data": {"conversations": conversations, "messages": stored},
        "loadavg_start": loadavg_start,
    });
    Ok((row, breakdown))
}

struct ClientCtx {
    http: reqwest::Client,
    base: String,
    auth: String,
    corpus: Arc<Corpus>,
    live: Arc<AtomicU64>,
    id: u64,
    clients: u64,
    batch_size: u64,
    mode: RunMode,
    measure_from: Instant,
    end: Instant,
}

async fn client_loop(ctx: ClientCtx) -> anyhow::Result<ClientResult> {
    let mut r = ClientResult {
        hist: new_hist()?,
        requests: 0,
        messages: 0,
        errors: 0,
        event_errors: 0,
        first_error: None,
        stored_conversations: 0,
        stored_messages: 0,
    };
    let url = match ctx.mode {
        RunMode::Batch => format!("{}/api/v1/ingest", ctx.base),
        RunMode::Single => format!("{}/api/v1/conversations/track", ctx.base),
    };
    let mut seq: u64 = 0;
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut seen_conversations = std::collections::HashSet::new();
    while Instant::now() < ctx.end {
        let body = match ctx.mode {
            RunMode::Batch => batch_body(&ctx, seq, &mut counts),
            RunMode::Single => single_body(&ctx, seq),
        };
        let sent = Instant::now();
        let res = ctx
            .http
            .post(&url)
            .header("authorization", &ctx.auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let outcome = match res {
            Ok(res) => {
                let status = res.status();
                match res.bytes().await {
                    Ok(bytes) if status.is_success() => Ok(bytes),
                    Ok(bytes) => Err(format!("{status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)]))),
                    Err(e) => Err(format!("reading the response: {e}")),
                }
            }
            Err(e) => Err(format!("sending: {e}")),
        };
        let done = Instant::now();
        let counted = sent >= ctx.measure_from && done <= ctx.end;
        match outcome {
            Ok(bytes) => {
                let (msgs, convs, bad) = match ctx.mode {
                    RunMode::Batch => batch_stored(&bytes, &counts),
                    RunMode::Single => {
                        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let accepted = v["accepted"].as_u64().unwrap_or(0);
                        let conv = ctx.id * SINGLE_CONVERSATIONS + seq % SINGLE_CONVERSATIONS;
                        let new = u64::from(seen_conversations.insert(conv));
                        (accepted, new, u64::from(accepted == 0))
                    }
                };
                ctx.live.fetch_add(msgs, Ordering::Relaxed);
                r.stored_messages += msgs;
                r.stored_conversations += convs;
                if counted {
                    let micros = u64::try_from(done.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
                    let _ = r.hist.record(micros.max(1));
                    r.requests += 1;
                    r.messages += msgs;
                    r.event_errors += bad;
                }
            }
            Err(e) => {
                if counted {
                    r.errors += 1;
                }
                if r.first_error.is_none() {
                    r.first_error = Some(e);
                }
            }
        }
        seq += 1;
    }
    Ok(r)
}

/// `{"batch":[…]}` of `batch_size` track events of conversations never sent before. Records each event's
/// message count in `counts` (keyed by event id) for reading the answer.
fn batch_body(ctx: &ClientCtx, seq: u64, counts: &mut HashMap<String, u64>) -> String {
    counts.clear();
    let mut body = String::with_capacity(ctx.batch_size as usize * 2_500);
    body.push_str("{\"batch\":[");
    for i in 0..ctx.batch_size {
        // Distinct across clients and requests: client, request, position.
        let n = (seq * ctx.batch_size + i) * ctx.clients + ctx.id;
        let t = &ctx.corpus.events[(n % ctx.corpus.events.len() as u64) as usize];
        let event_id = format!("bench-{}-{seq}-{i}", ctx.id);
        let conv = format!("bench-{}-{seq}-{i}", ctx.id);
        if i > 0 {
            body.push(',');
        }
        for (k, part) in t.parts.iter().enumerate() {
            body.push_str(part);
            match t.holes.get(k) {
                Some(true) => body.push_str(&event_id),
                Some(false) => body.push_str(&conv),
                None => {}
            }
        }
        counts.insert(event_id, t.messages);
    }
    body.push_str("]}");
    body
}

/// Messages and conversations stored according to a 207 answer, and the events refused.
fn batch_stored(bytes: &[u8], counts: &HashMap<String, u64>) -> (u64, u64, u64) {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return (0, 0, counts.len() as u64);
    };
    let (mut msgs, mut convs) = (0, 0);
    for s in v["successes"].as_array().into_iter().flatten() {
        if s["status"].as_u64() == Some(201) {
            convs += 1;
            msgs += s["id"].as_str().and_then(|id| counts.get(id)).copied().unwrap_or(0);
        }
    }
    let bad = v["errors"].as_array().map_or(0, |e| e.len() as u64);
    (msgs, convs, bad)
}

/// One message appended to one of the client's conversations.
fn single_body(ctx: &ClientCtx, seq: u64) -> String {
    let conv = format!("single-{}-{}", ctx.id, seq % SINGLE_CONVERSATIONS);
    let (role, content) =
        &ctx.corpus.messages[((seq * ctx.clients + ctx.id) % ctx.corpus.messages.len() as u64) as usize];
    let now_ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let mut body = String::with_capacity(content.len() + 200);
    let _ = write!(
        body,
        "{{\"conversationId\":\"{conv}\",\"agentId\":\"bench-agent\",\"messages\":[{{\"id\":\"m{seq}\",\
         \"role\":\"{role}\",\"content\":{content},\"timestamp\":{now_ms}}}]}}"
    );
    body
}

/// Serializes demo conversations into event templates, and collects their messages for `single` mode.
fn corpus() -> anyhow::Result<Corpus> {
    let now = OffsetDateTime::now_utc();
    let mut events = Vec::with_capacity(TEMPLATES);
    let mut messages = Vec::new();
    for c in mentorfy_sensei::demo::generate(42, TEMPLATES, now) {
        let msgs: Vec<TrackMessage> = crate::seed_demo::track_messages(&c);
        for m in &c.messages {
            let role = if m.role == "assistant" { "assistant" } else { "user" };
            messages.push((role, serde_json::to_string(&m.content)?));
        }
        let count = msgs.len() as u64;
        let mut body = TrackRequest::new(CONV_PLACEHOLDER, msgs);
        body.metadata = Some(c.metadata.clone());
        body.user_id = c.user_id.clone();
        body.agent_id = Some(c.agent_id.clone());
        body.environment = Some(c.environment.clone());
        let text = serde_json::to_string(&BatchEvent::track(body).with_id(EVENT_PLACEHOLDER))?;
        let (mut parts, mut holes, mut rest) = (Vec::new(), Vec::new(), text.as_str());
        loop {
            let e = rest.find(EVENT_PLACEHOLDER);
            let c = rest.find(CONV_PLACEHOLDER);
            let (at, is_event, len) = match (e, c) {
                (Some(e), Some(c)) if e < c => (e, true, EVENT_PLACEHOLDER.len()),
                (_, Some(c)) => (c, false, CONV_PLACEHOLDER.len()),
                (Some(e), None) => (e, true, EVENT_PLACEHOLDER.len()),
                (None, None) => break,
            };
            parts.push(rest[..at].to_owned());
            holes.push(is_event);
            rest = &rest[at + len..];
        }
        parts.push(rest.to_owned());
        anyhow::ensure!(holes.len() == 2, "a demo conversation's text contains a benchmark placeholder");
        events.push(Template { parts, holes, messages: count });
    }
    anyhow::ensure!(!messages.is_empty(), "the demo generator produced no messages");
    Ok(Corpus { events, messages })
}

/// Times the server's two halves of a batch without HTTP: parsing + validation (`parse_json`'s equivalent and
/// `validate_batch`), then `Ingestor::ingest_events` (one store transaction), one batch at a time; and, to split
/// the store's time into a per-conversation and a per-message cost, the same messages in 500-message
/// conversations, and the same conversations with one message each (10 batches of each kind).
async fn breakdown(
    state: &mentorfy_web::AppState,
    key_id: uuid::Uuid,
    corpus: &Arc<Corpus>,
    batch_size: u64,
) -> anyhow::Result<Value> {
    let key = KeyContext { api_key_id: Some(key_id), environment: "production".to_owned() };
    let ctx = ClientCtx {
        http: reqwest::Client::new(),
        base: String::new(),
        auth: String::new(),
        corpus: corpus.clone(),
        live: Arc::new(AtomicU64::new(0)),
        id: 999_999,
        clients: 1,
        batch_size,
        mode: RunMode::Batch,
        measure_from: Instant::now(),
        end: Instant::now(),
    };
    let mut counts = HashMap::new();
    let (mut build, mut parse, mut store, mut msgs, mut bytes) = (new_hist()?, new_hist()?, new_hist()?, 0u64, 0usize);
    let (mut merged, mut merged_msgs, mut single, mut single_convs) = (new_hist()?, 0u64, new_hist()?, 0u64);
    const ROUNDS: u64 = 30;
    for seq in 0..ROUNDS {
        let t0 = Instant::now();
        let body = batch_body(&ctx, seq, &mut counts);
        let t1 = Instant::now();
        bytes += body.len();
        let parsed: BatchBody = serde_json::from_slice(body.as_bytes())?;
        let mut events = Vec::new();
        for item in validate_batch(parsed, mentorfy_store::now()) {
            if let BatchItem::Valid { id, conversation } = item {
                events.push((Some(id), conversation));
            }
        }
        let t2 = Instant::now();
        match seq % 3 {
            // As sent: one conversation (about 10 messages) per event, with event ids.
            0 => {
                msgs += events.iter().map(|(_, c)| c.messages.len() as u64).sum::<u64>();
                state.ingestor().ingest_events(Source::Api, &key, events).await?;
                let _ = store.record(micros(t2.elapsed()));
                let _ = build.record(micros(t1 - t0));
                let _ = parse.record(micros(t2 - t1));
            }
            // The same messages in as few conversations as allowed (500 messages each), no event ids.
            1 => {
                let mut all = Vec::new();
                let mut template = None;
                for (_, c) in events {
                    let mut c = c;
                    all.append(&mut c.messages);
                    template.get_or_insert(c);
                }
                let Some(template) = template else { continue };
                merged_msgs += all.len() as u64;
                let mut convs = Vec::new();
                let mut k = 0;
                while !all.is_empty() {
                    let rest = all.split_off(all.len().min(mentorfy_sensei::MAX_MESSAGES));
                    let mut c = template.clone();
                    c.external_id = format!("merged-{seq}-{k}");
                    c.messages = std::mem::replace(&mut all, rest);
                    convs.push((None, c));
                    k += 1;
                }
                let t = Instant::now();
                state.ingestor().ingest_events(Source::Api, &key, convs).await?;
                let _ = merged.record(micros(t.elapsed()));
            }
            // One message per conversation, with event ids: the fixed cost of a conversation.
            _ => {
                let convs: Vec<_> = events
                    .into_iter()
                    .map(|(id, mut c)| {
                        c.messages.truncate(1);
                        (id, c)
                    })
                    .collect();
                single_convs += convs.len() as u64;
                let t = Instant::now();
                state.ingestor().ingest_events(Source::Api, &key, convs).await?;
                let _ = single.record(micros(t.elapsed()));
            }
        }
    }
    let per = |h: &Histogram<u64>| json!({"mean_ms": (h.mean() / 10.0).round() / 100.0, "p50_ms": ms(h.value_at_quantile(0.5)), "max_ms": ms(h.max())});
    let rounds = ROUNDS / 3;
    Ok(json!({
        "batches": rounds,
        "events_per_batch": batch_size,
        "messages_per_batch": msgs / rounds,
        "bytes_per_batch": bytes as u64 / ROUNDS,
        "client_build_body": per(&build),
        "server_parse_validate": per(&parse),
        "server_store_transaction": per(&store),
        "store_same_messages_in_500_message_conversations": per(&merged),
        "merged_messages_per_batch": merged_msgs / rounds,
        "store_one_message_per_conversation": per(&single),
        "conversations_per_batch": single_convs / rounds,
    }))
}

fn print_row_live(v: &Value) {
    eprintln!(
        "  {} x{}: {} messages/s, {} req/s, p99 {} ms, {} errors",
        v["mode"].as_str().unwrap_or(""),
        v["clients"],
        v["messages_per_s"],
        v["requests_per_s"],
        v["p99_ms"],
        v["errors"]
    );
}

fn print_report(report: &Value) {
    let m = &report["machine"];
    println!(
        "{} on {} x {} (load average at the end: {}); closed loop, client and server in one process",
        report["database"].as_str().unwrap_or(""),
        m["cpus"],
        m["cpu_model"].as_str().unwrap_or(""),
        report["loadavg_end"],
    );
    println!(
        "{} s measured per run after {} s warm-up; batch = {} track events (one conversation each) per request",
        report["duration_s"], report["warmup_s"], report["batch_size"]
    );
    println!(
        "{:<7} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6} {:>6} {:>9} {:>10} {:>6}",
        "mode",
        "clients",
        "msg/s",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "ev.err",
        "convs",
        "messages",
        "load"
    );
    for v in report["results"].as_array().into_iter().flatten() {
        println!(
            "{:<7} {:>7} {:>10} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>6} {:>6} {:>9} {:>10} {:>6}",
            v["mode"].as_str().unwrap_or(""),
            v["clients"].to_string(),
            v["messages_per_s"].to_string(),
            v["requests_per_s"].to_string(),
            v["p50_ms"].as_f64().unwrap_or(0.0),
            v["p90_ms"].as_f64().unwrap_or(0.0),
            v["p99_ms"].as_f64().unwrap_or(0.0),
            v["max_ms"].as_f64().unwrap_or(0.0),
            v["errors"].to_string(),
            v["event_errors"].to_string(),
            v["data"]["conversations"].to_string(),
            v["data"]["messages"].to_string(),
            v["loadavg_start"].to_string(),
        );
        if let Some(e) = v["first_error"].as_str() {
            println!("        first error: {e}");
        }
    }
    let b = &report["breakdown"];
    if !b.is_null() {
        println!(
            "breakdown (one batch at a time, no HTTP; {} events, {} messages, {} bytes per batch; mean / p50 / max ms):",
            b["events_per_batch"], b["messages_per_batch"], b["bytes_per_batch"]
        );
        for k in [
            "client_build_body",
            "server_parse_validate",
            "server_store_transaction",
            "store_same_messages_in_500_message_conversations",
            "store_one_message_per_conversation",
        ] {
            println!("  {k:<50} {} / {} / {}", b[k]["mean_ms"], b[k]["p50_ms"], b[k]["max_ms"]);
        }
    }
}
