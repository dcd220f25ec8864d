//! Gateway overhead of `/api/chat`: how much later the first text reaches a client through Mentorfy than it
//! reaches a client talking to the (fake) model provider directly, at a given number of concurrent streams;
//! and how much memory one open stream costs the server.
//!
//! ```bash
//! cargo bench -p mentorfy-web --bench chat -- --concurrency 50,500 --seconds 10
//! cargo bench -p mentorfy-web --bench chat -- --help
//! ```
//!
//! Latency: for each concurrency C, a fresh app (the same `prepare`/`serve` as `mentorfy serve` and `TestApp`)
//! on a fresh database (`TestDb`), pointed at a fresh fake Anthropic in this process. C closed-loop workers
//! (each with its own session, their first streams spread over one answer's length) run one stream after
//! another for the warm-up and then the measured seconds: first straight to the fake (the exact request body
//! Mentorfy sends it, replayed), timing until the first `content_block_delta`; then through `/api/chat` with a
//! `useChat` body, timing until the first `text-delta` chunk. The overhead figures are differences of the two
//! distributions' statistics (not of paired requests). By default an answer is 60 words, one event every 50 ms
//! (about 3.3 s per stream), so C is the number of streams open at once; `--delta-ms 0` turns it into a
//! saturation test (answers arrive at once and every worker always has a request in the server).
//!
//! Breakdown: the database calls a turn makes before calling upstream, timed one by one on an idle app.
//!
//! Memory: the fake and the clients run in a child process (this executable again, `--hold-child`), so this
//! process holds only the app. The child opens streams that stay mid-answer; the per-stream figure is the
//! growth of this process's `VmRSS` divided by the number of streams opened.

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use mentorfy_core::Config;
use mentorfy_fakes::anthropic::{FakeAnthropic, Reply};
use mentorfy_test_support::{Backend, TestDb};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

const AGENT: &str = "rafael-chat";
const ORG: &str = "rafael-tatts";
/// What marks the first text in each stream.
const DIRECT_FIRST_TEXT: &[u8] = b"event: content_block_delta";
const DIRECT_END: &[u8] = b"event: message_stop";
const VIA_FIRST_TEXT: &[u8] = b"\"type\":\"text-delta\"";
const VIA_END: &[u8] = b"data: [DONE]";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "chat",
    about = "Gateway overhead of /api/chat: time to first text through Mentorfy minus straight from the (fake) \
             upstream, at N concurrent streams; and server memory per open stream.",
    after_help = "Run with: cargo bench -p mentorfy-web --bench chat -- --concurrency 50,500 --seconds 10\n\
                  Logging: MENTORFY_LOG (default warn) filters the app's logs, written to stderr."
)]
struct Args {
    /// Concurrent streams: closed-loop workers, each starting its next stream when the last one ended.
    #[arg(long, value_delimiter = ',', default_value = "50,500")]
    concurrency: Vec<usize>,
    /// Measured seconds per run (each concurrency runs twice: direct, then through Mentorfy).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds before each measured run [default: a fifth of --seconds, at least 1].
    #[arg(long)]
    warmup: Option<u64>,
    /// The fake upstream's time to first byte (delay before its response headers), in ms; several values run
    /// the whole matrix again.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    upstream_ms: Vec<u64>,
    /// Text deltas (words) in each answer.
    #[arg(long, default_value_t = 60)]
    deltas: usize,
    /// Pause before each upstream SSE event after the first, in ms. The first text is the fourth event
    /// (message_start, ping, content_block_start, content_block_delta), so it arrives 3 pauses after the headers;
    /// an answer lasts (deltas + 5) pauses. 0: answers arrive at once, and the closed loop becomes a saturation test.
    #[arg(long, default_value_t = 50)]
    delta_ms: u64,
    /// How the fake sends its answer. `buffered` (only with --delta-ms 0): the whole Anthropic event stream, as the
    /// fake renders it, in one response written at once (content type `Text/event-stream`, which the fake does not
    /// stream). `streamed`: the fake's streamed `Reply::text`, one write per event.
    #[arg(long, default_value = "buffered", value_parser = ["buffered", "streamed"])]
    upstream_wire: String,
    /// MENTORFY_CHAT_HISTORY_TURNS for the app (keeps the prompt's size bounded as sessions accumulate turns).
    #[arg(long, default_value_t = 2)]
    history_turns: u32,
    /// Memory: numbers of open streams to measure at, cumulative (e.g. 500,2000); 0 skips the measurement.
    #[arg(long, value_delimiter = ',', default_value = "500,2000")]
    hold: Vec<usize>,
    /// Breakdown: times the database calls a chat turn makes before it calls upstream, this many times each,
    /// one after another on an otherwise idle app (0 skips it).
    #[arg(long, default_value_t = 2000)]
    breakdown: usize,
    /// `sqlite` (a temp file) or `postgres` (a fresh schema in TEST_DATABASE_URL, as the tests do).
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// Print one JSON document instead of the tables.
    #[arg(long)]
    json: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// Internal: run as the memory measurement's child (fake upstream + clients).
    #[arg(long, hide = true)]
    hold_child: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // reqwest is built without a TLS crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if args.hold_child {
        return rt.block_on(child::run());
    }
    let filter = std::env::var("MENTORFY_LOG").ok().filter(|f| !f.is_empty()).unwrap_or_else(|| "warn".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter).context("MENTORFY_LOG")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    rt.block_on(run(args))
}

fn backend(args: &Args) -> anyhow::Result<Backend> {
    match args.database.as_str() {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" => {
            ensure!(
                std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()),
                "--database postgres needs TEST_DATABASE_URL (a database in which fresh schemas are created)"
            );
            Ok(Backend::Postgres)
        }
        other => bail!("--database must be sqlite or postgres (with TEST_DATABASE_URL), not '{other}'"),
    }
}

fn database_label(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SQLite (temp file, WAL)",
        Backend::Postgres => "PostgreSQL (fresh schema in TEST_DATABASE_URL)",
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.seconds > 0, "--seconds must be positive");
    ensure!(args.concurrency.iter().all(|c| *c > 0), "--concurrency values must be positive");
    ensure!(args.deltas > 0, "--deltas must be positive");
    let backend = backend(&args)?;
    let warmup = Duration::from_secs(args.warmup.unwrap_or((args.seconds / 5).max(1)));
    let measured = Duration::from_secs(args.seconds);
    let runs: Vec<(u64, usize)> =
        args.upstream_ms.iter().flat_map(|u| args.concurrency.iter().map(move |c| (*u, *c))).collect();
    let holds: Vec<usize> = args.hold.iter().copied().filter(|n| *n > 0).collect();

    let per_run = 2 * (warmup + measured).as_secs();
    let bar = ProgressBar::new(per_run * runs.len() as u64);
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} s")?.progress_chars("=> "));

    // Memory first: a process that already ran the latency runs keeps freed memory it will reuse, which would
    // hide what the streams cost.
    let memory = if holds.is_empty() {
        None
    } else {
        bar.set_message(format!("memory: holding {} streams", holds.iter().max().copied().unwrap_or(0)));
        Some(memory_run(&args, backend, &holds).await?)
    };
    let breakdown = if args.breakdown > 0 {
        bar.set_message("breakdown: database calls before the upstream call");
        Some(breakdown_run(&args, backend).await?)
    } else {
        None
    };
    let mut results = Vec::new();
    for (i, (upstream_ms, concurrency)) in runs.iter().enumerate() {
        let base = per_run * i as u64;
        results.push(latency_run(&args, backend, *upstream_ms, *concurrency, warmup, measured, &bar, base).await?);
    }
    bar.finish_and_clear();

    let report = json!({
        "database": database_label(backend),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "warmup_s": warmup.as_secs(),
        "seconds": args.seconds,
        "upstream": {"deltas": args.deltas, "delta_ms": args.delta_ms,
                     "wire": if buffered(&args) { "buffered" } else { "streamed" }},
        "history_turns": args.history_turns,
        "runs": results,
        "breakdown": breakdown,
        "memory": memory,
    });
    if args.json {
        println!("{report}");
    } else {
        print_report(&report, &args, warmup);
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------------------------------
// Latency

/// A text of `n` words: the fake streams one delta per word.
fn answer(n: usize) -> String {
    (0..n).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ")
}

fn buffered(args: &Args) -> bool {
    args.upstream_wire == "buffered" && args.delta_ms == 0
}

fn app_vars(fake: &FakeAnthropic, history_turns: u32) -> Vec<(&'static str, String)> {
    vec![
        ("ANTHROPIC_API_KEY", "x".to_owned()),
        ("ANTHROPIC_BASE_URL", fake.url()),
        ("MENTORFY_CHAT_HISTORY_TURNS", history_turns.to_string()),
        ("MENTORFY_LOG", "warn".to_owned()),
    ]
}

/// The real app on 127.0.0.1:0 with its own database: the same `prepare`/`serve` as `mentorfy serve` and
/// `TestApp`.
struct App {
    base: String,
    store: mentorfy_store::Store,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
    _db: TestDb,
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        Ok((&mut self.handle).await??)
    }
}

async fn spawn_app(backend: Backend, vars: &[(&'static str, String)]) -> anyhow::Result<App> {
    let db = TestDb::create(backend).await.context("TEST_DATABASE_URL is not set")?;
    let mut vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    vars.push(("DATABASE_URL".to_owned(), db.url.clone()));
    vars.push(("MENTORFY_ADDR".to_owned(), "127.0.0.1:0".to_owned()));
    let config = Config::from_sources(None, move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))?;
    let state = mentorfy_web::prepare(Arc::new(config)).await?;
    let store = state.store().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(mentorfy_web::serve(listener, state, async move {
        let _ = rx.await;
    }));
    Ok(App { base, store, stop: Some(tx), handle, _db: db })
}

fn client(pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().pool_max_idle_per_host(pool).tcp_nodelay(true).build()?)
}

/// Creates `n` sessions, 32 at a time.
async fn create_sessions(client: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let url = format!("{base}/api/session");
    let ids: Vec<anyhow::Result<String>> = futures::stream::iter(0..n)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let res = client.post(url).json(&json!({"orgId": ORG, "name": format!("Bench {i}")})).send().await?;
                ensure!(res.status().as_u16() == 201, "create session: {}", res.status());
                let v: Value = res.json().await?;
                v["sessionId"].as_str().map(str::to_owned).context("no sessionId")
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    ids.into_iter().collect()
}

/// The body `useChat` sends for a new user message (plus `sessionId`/`agentId` merged in through `body`).
fn use_chat_body(session: &str, message_id: &str) -> Bytes {
    let body = json!({
        "id": "chat_bench",
        "trigger": "submit-message",
        "messages": [{"id": message_id, "role": "user",
                      "parts": [{"type": "text", "text": "How do I get booked out three months ahead?"}]}],
        "sessionId": session,
        "agentId": AGENT,
    });
    Bytes::from(body.to_string())
}

/// Where a worker sends its streams.
enum Target {
    /// Straight to the fake, with the body Mentorfy sends it.
    Direct { url: String, body: Bytes },
    /// Through `/api/chat`, one session per worker.
    Mentorfy { url: String, sessions: Vec<String> },
}

struct Outcome {
    first_text: Duration,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One stream: sends, times the first text, reads to the end. `Err` on any failure (status, transport, a
/// stream without text or without its end marker).
async fn one_stream(client: &reqwest::Client, target: &Target, worker: usize, turn: u64) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let (req, first_marker, end_marker) = match target {
        Target::Direct { url, body } => (
            client
                .post(url)
                .header("content-type", "application/json")
                .header("accept", "text/event-stream")
                .header("x-api-key", "x")
                .header("anthropic-version", "2023-06-01")
                .body(body.clone()),
            DIRECT_FIRST_TEXT,
            DIRECT_END,
        ),
        Target::Mentorfy { url, sessions } => {
            let session = &sessions[worker % sessions.len()];
            (
                client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(use_chat_body(session, &format!("u{worker}_{turn}"))),
                VIA_FIRST_TEXT,
                VIA_END,
            )
        }
    };
    let mut res = req.send().await?;
    ensure!(res.status().is_success(), "status {}", res.status());
    let mut buf = Vec::with_capacity(4096);
    let mut first = None;
    while let Some(chunk) = res.chunk().await? {
        let from = buf.len().saturating_sub(first_marker.len());
        buf.extend_from_slice(&chunk);
        if first.is_none() && contains(&buf[from..], first_marker) {
            first = Some(started.elapsed());
        }
    }
    let first_text = first.context("no text in the stream")?;
    ensure!(contains(&buf[buf.len().saturating_sub(256)..], end_marker), "the stream did not end properly");
    Ok(Outcome { first_text })
}

struct WorkerResult {
    hist: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

fn new_hist() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

#[allow(clippy::too_many_arguments)]
/// Runs `concurrency` closed-loop workers for `warmup + measured`; records streams started after the warm-up.
async fn load(
    client: &reqwest::Client,
    target: Arc<Target>,
    concurrency: usize,
    stagger: Duration,
    warmup: Duration,
    measured: Duration,
    bar: &ProgressBar,
    base: u64,
) -> anyhow::Result<Value> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measured;
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                bar.set_position(base + start.elapsed().as_secs().min((end - start).as_secs()));
            }
        })
    };
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let (client, target) = (client.clone(), target.clone());
        let mut hist = new_hist()?;
        workers.push(tokio::spawn(async move {
            let (mut errors, mut first_error, mut turn) = (0_u64, None, 0_u64);
            // Spread the workers' first streams over one stream's length, so they do not run in lockstep.
            tokio::time::sleep_until((start + stagger.mul_f64(worker as f64 / concurrency as f64)).into()).await;
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                turn += 1;
                let outcome = one_stream(&client, &target, worker, turn).await;
                let failed = outcome.is_err();
                if started >= measure_from {
                    match outcome {
                        Ok(o) => {
                            let micros = u64::try_from(o.first_text.as_micros()).unwrap_or(u64::MAX);
                            let _ = hist.record(micros.max(1));
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
                if failed {
                    // Do not spin on a refusing server.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            WorkerResult { hist, errors, first_error }
        }));
    }
    let mut all = new_hist()?;
    let (mut errors, mut first_error) = (0, None);
    for w in workers {
        let r = w.await?;
        all.add(&r.hist)?;
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    ticker.abort();
    let secs = measured.as_secs_f64();
    Ok(json!({
        "streams": all.len(),
        "streams_per_s": ((all.len() + errors) as f64 / secs).round(),
        "p50_ms": ms(all.value_at_quantile(0.50)),
        "p90_ms": ms(all.value_at_quantile(0.90)),
        "p99_ms": ms(all.value_at_quantile(0.99)),
        "max_ms": ms(all.max()),
        "mean_ms": (all.mean() / 10.0).round() / 100.0,
        "errors": errors,
        "first_error": first_error,
    }))
}

fn ms(micros: u64) -> f64 {
    (micros as f64 / 10.0).round() / 100.0
}

#[allow(clippy::too_many_arguments)]
async fn latency_run(
    args: &Args,
    backend: Backend,
    upstream_ms: u64,
    concurrency: usize,
    warmup: Duration,
    measured: Duration,
    bar: &ProgressBar,
    base: u64,
) -> anyhow::Result<Value> {
    // A fresh fake and app per run: the fake keeps every request it received, and the database grows.
    let fake = FakeAnthropic::start().await;
    let (first_byte, delta) = (Duration::from_millis(upstream_ms), Duration::from_millis(args.delta_ms));
    let text = answer(args.deltas);
    fake.respond_with(move |_| Reply::text(text.clone()).with_first_byte_delay(first_byte).with_delta_delay(delta));
    let client = client(concurrency + 16)?;
    if buffered(args) {
        // The fake's own rendering of the streamed answer, then served as one body.
        let res = client
            .post(format!("{}/v1/messages", fake.url()))
            .json(&json!({"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": true,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await?;
        let sse = res.text().await?;
        ensure!(sse.contains("event: message_stop"), "the fake did not stream an answer: {sse}");
        fake.respond_with(move |_| Reply::raw(200, "Text/event-stream", sse.clone()).with_first_byte_delay(first_byte));
    }
    let app = spawn_app(backend, &app_vars(&fake, args.history_turns)).await?;
    let sessions = create_sessions(&client, &app.url(""), concurrency).await?;

    // A few turns on one session, so the captured upstream request carries a full-length history.
    let via = Target::Mentorfy { url: app.url("/api/chat"), sessions: sessions.clone() };
    for turn in 0..=u64::from(args.history_turns) {
        one_stream(&client, &via, 0, turn + 1_000_000).await.context("probe turn through /api/chat")?;
    }
    let sent = fake.last_request().context("the fake saw no request")?;
    let upstream_body = Bytes::from(sent.raw_body.clone().into_bytes());
    let direct = Target::Direct { url: format!("{}/v1/messages", fake.url()), body: upstream_body.clone() };
    // The last probe's turn is stored in the background; let it land before measuring.
    tokio::time::sleep(Duration::from_millis(200)).await;

    bar.set_message(format!("C={concurrency} upstream +{upstream_ms} ms: direct"));
    // How long one upstream answer lasts: the first-byte delay, then a pause before each event after the first.
    let stream_len = if buffered(args) {
        first_byte
    } else {
        first_byte + delta * u32::try_from(args.deltas + 5).unwrap_or(u32::MAX)
    };
    let direct_result = load(&client, Arc::new(direct), concurrency, stream_len, warmup, measured, bar, base).await?;
    let half = (warmup + measured).as_secs();
    bar.set_message(format!("C={concurrency} upstream +{upstream_ms} ms: through Mentorfy"));
    let via_result = load(&client, Arc::new(via), concurrency, stream_len, warmup, measured, bar, base + half).await?;
    let upstream_requests = fake.request_count();
    drop(client);
    // The last turns are stored after their streams ended; let that finish before the pool closes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await.context("server")?;

    let diff = |key: &str| {
        let d = via_result[key].as_f64().unwrap_or(0.0) - direct_result[key].as_f64().unwrap_or(0.0);
        (d * 100.0).round() / 100.0
    };
    Ok(json!({
        "concurrency": concurrency,
        "upstream_first_byte_ms": upstream_ms,
        "upstream_request_bytes": upstream_body.len(),
        "sessions": sessions.len(),
        "upstream_requests": upstream_requests,
        "direct": direct_result,
        "mentorfy": via_result,
        "overhead": {"mean_ms": diff("mean_ms"), "p50_ms": diff("p50_ms"), "p90_ms": diff("p90_ms"), "p99_ms": diff("p99_ms")},
    }))
}

// ----------------------------------------------------------------------------------------------------------------
// Breakdown

/// The database calls of `ChatService::chat` before it calls upstream, for a session whose conversation
/// exists: `get_session`, `find_conversation` (the read half of `upsert_conversation`), `insert_message` (a
/// transaction: insert and conversation roll-up) and `recent_messages`; each timed alone, sequentially, through
/// the app's own store on an idle app.
async fn breakdown_run(args: &Args, backend: Backend) -> anyhow::Result<Value> {
    use mentorfy_store::NewMessage;
    let fake = FakeAnthropic::start().await;
    let text = answer(args.deltas);
    fake.respond_with(move |_| Reply::text(text.clone()));
    let app = spawn_app(backend, &app_vars(&fake, args.history_turns)).await?;
    let client = client(4)?;
    let sessions = create_sessions(&client, &app.url(""), 1).await?;
    let via = Target::Mentorfy { url: app.url("/api/chat"), sessions: sessions.clone() };
    for turn in 0..=u64::from(args.history_turns) {
        one_stream(&client, &via, 0, turn).await.context("probe turn through /api/chat")?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let store = app.store.clone();
    let session_id: mentorfy_core::SessionId = sessions[0].parse().map_err(|_| anyhow::anyhow!("session id"))?;
    let conversation = store
        .find_conversation("mentorfy", "production", &sessions[0])
        .await?
        .context("the probe turns created no conversation")?;
    let limit = args.history_turns * 2 + 1;
    let names = ["get_session", "find_conversation", "insert_message (transaction)", "recent_messages", "all four"];
    let mut hists = Vec::new();
    for _ in names {
        hists.push(new_hist()?);
    }
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    for i in 0..args.breakdown {
        let t0 = Instant::now();
        store.get_session(session_id).await?.context("session")?;
        let t1 = Instant::now();
        store.find_conversation("mentorfy", "production", &sessions[0]).await?.context("conversation")?;
        let t2 = Instant::now();
        let external = format!("breakdown_{i}");
        store
            .insert_message(NewMessage {
                id: uuid::Uuid::now_v7(),
                conversation_id: conversation.id,
                external_id: Some(&external),
                role: "user",
                content: "How do I get booked out three months ahead?",
                status: "complete",
                finish_reason: None,
                input_tokens: None,
                output_tokens: None,
                latency_ms: None,
                ttft_ms: None,
                metadata: json!({}),
                created_at: mentorfy_store::now(),
            })
            .await?;
        let t3 = Instant::now();
        store.recent_messages(conversation.id, limit, &["complete", "aborted", "error"]).await?;
        let t4 = Instant::now();
        for (h, d) in hists.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0]) {
            let _ = h.record(micros(d));
        }
    }
    drop(client);
    app.stop().await.context("server")?;
    let rows: Vec<Value> = names
        .iter()
        .zip(&hists)
        .map(|(name, h)| {
            json!({
                "call": name,
                "count": h.len(),
                "p50_ms": ms3(h.value_at_quantile(0.50)),
                "p99_ms": ms3(h.value_at_quantile(0.99)),
                "mean_ms": (h.mean()).round() / 1000.0,
            })
        })
        .collect();
    Ok(json!({"calls": rows}))
}

fn ms3(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

// ----------------------------------------------------------------------------------------------------------------
// Memory

fn rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS in /proc/self/status")?;
    line.split_whitespace().nth(1).context("VmRSS value")?.parse().context("VmRSS value")
}

/// The child process, its stdin, and its stdout lines (read on a thread of their own).
struct ChildProc {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
}

impl ChildProc {
    fn spawn() -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("--hold-child")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start the memory measurement's child process")?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, stdin, lines })
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<String> {
        let line = tokio::time::timeout(Duration::from_secs(120), self.lines.recv())
            .await
            .context("the child did not answer within 120 s")?;
        line.context("the child exited")
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn memory_run(args: &Args, backend: Backend, holds: &[usize]) -> anyhow::Result<Value> {
    let mut steps: Vec<usize> = holds.to_vec();
    steps.sort_unstable();
    steps.dedup();
    let most = steps.last().copied().unwrap_or(0);
    let mut child = ChildProc::spawn()?;
    let fake_url = child.recv().await?;
    let vars = vec![
        ("ANTHROPIC_API_KEY", "x".to_owned()),
        ("ANTHROPIC_BASE_URL", fake_url),
        ("MENTORFY_CHAT_HISTORY_TURNS", args.history_turns.to_string()),
        ("MENTORFY_LOG", "warn".to_owned()),
    ];
    let app = spawn_app(backend, &vars).await?;
    let sessions = {
        let client = client(64)?;
        create_sessions(&client, &app.url(""), most).await?
    };
    child.send(&json!({"url": app.url("/api/chat"), "sessions": sessions}).to_string())?;
    let warm = child.recv().await?;
    ensure!(warm == "warm", "child: {warm}");
    // The warm-up turns were cut short by the child; let their background storage finish.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = rss_kib()?;
    let mut rows = vec![json!({"open_streams": 0, "rss_mib": mib(baseline)})];
    let (mut previous_n, mut previous_rss) = (0_usize, baseline);
    for n in steps {
        child.send(&format!("open {n}"))?;
        let reply = child.recv().await?;
        let parts: Vec<&str> = reply.split_whitespace().collect();
        ensure!(parts.first() == Some(&"open") && parts.len() == 4, "child: {reply}");
        let (open, errors, open_s): (usize, usize, f64) = (parts[1].parse()?, parts[2].parse()?, parts[3].parse()?);
        // Let the server settle (the turns' tasks are all parked waiting for the next upstream event).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = rss_kib()?;
        let added = open.saturating_sub(previous_n).max(1);
        rows.push(json!({
            "open_streams": open,
            "errors": errors,
            "seconds_to_open": open_s,
            "rss_mib": mib(rss),
            "kib_per_stream_since_baseline": ((rss.saturating_sub(baseline)) as f64 / open.max(1) as f64 * 10.0).round() / 10.0,
            "kib_per_stream_this_step": ((rss.saturating_sub(previous_rss)) as f64 / added as f64 * 10.0).round() / 10.0,
        }));
        (previous_n, previous_rss) = (open, rss);
    }
    child.send("close")?;
    // Let the child close its streams and exit, and the app store the turns it cut short, before stopping.
    for _ in 0..100 {
        if child.child.try_wait()?.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(child);
    app.stop().await.context("server")?;
    Ok(json!({"steps": rows}))
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

/// The memory measurement's child: the fake upstream and the clients holding streams open.
mod child {
    use super::*;

    /// Long answers, slowly: the first text arrives 3 pauses after the headers, and the stream then stays
    /// open for minutes.
    const PAUSE: Duration = Duration::from_millis(200);
    const WORDS: usize = 300;

    fn say(line: &str) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    }

    /// Opens a stream and reports once its first text arrived; then keeps reading until `stop`.
    async fn hold(
        client: reqwest::Client,
        url: String,
        session: String,
        id: String,
        opened: mpsc::UnboundedSender<bool>,
        mut stop: watch::Receiver<bool>,
    ) {
        let res = client.post(url).header("content-type", "application/json").body(use_chat_body(&session, &id)).send();
        let mut res = match res.await {
            Ok(r) if r.status().is_success() => r,
            _ => {
                let _ = opened.send(false);
                return;
            }
        };
        let mut buf = Vec::new();
        let mut reported = false;
        loop {
            tokio::select! {
                chunk = res.chunk() => match chunk {
                    Ok(Some(c)) => {
                        if !reported {
                            buf.extend_from_slice(&c);
                            if contains(&buf, VIA_FIRST_TEXT) {
                                reported = true;
                                buf = Vec::new();
                                let _ = opened.send(true);
                            }
                        }
                    }
                    _ => break,
                },
                _ = stop.changed() => break,
            }
        }
        if !reported {
            let _ = opened.send(false);
        }
    }

    pub async fn run() -> anyhow::Result<()> {
        let fake = FakeAnthropic::start().await;
        let text = answer(WORDS);
        fake.respond_with(move |_| Reply::text(text.clone()).with_delta_delay(PAUSE));
        say(&fake.url())?;
        let (tx, mut lines) = mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let setup: Value = serde_json::from_str(&lines.recv().await.context("no setup line")?)?;
        let url = setup["url"].as_str().context("url")?.to_owned();
        let sessions: Vec<String> = setup["sessions"]
            .as_array()
            .context("sessions")?
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        ensure!(!sessions.is_empty(), "no sessions");
        let client = reqwest::Client::builder().pool_max_idle_per_host(16).tcp_nodelay(true).build()?;
        let (stop_tx, stop_rx) = watch::channel(false);

        // Warm-up: a few streams opened and dropped, so the server's one-time allocations happen before the
        // baseline.
        {
            let (warm_stop, warm_rx) = watch::channel(false);
            let (otx, mut orx) = mpsc::unbounded_channel();
            for i in 0..16 {
                let s = sessions[i % sessions.len()].clone();
                tokio::spawn(hold(client.clone(), url.clone(), s, format!("w{i}"), otx.clone(), warm_rx.clone()));
            }
            drop(otx);
            for _ in 0..16 {
                let _ = orx.recv().await;
            }
            let _ = warm_stop.send(true);
        }
        say("warm")?;

        let (otx, mut orx) = mpsc::unbounded_channel();
        let (mut open, mut errors) = (0_usize, 0_usize);
        let mut started = 0_usize;
        while let Some(line) = lines.recv().await {
            let Some(n) = line.strip_prefix("open ") else { break };
            let n: usize = n.trim().parse()?;
            let t0 = Instant::now();
            let target = n.min(sessions.len());
            let mut waiting = 0;
            while started < target {
                let s = sessions[started].clone();
                tokio::spawn(hold(client.clone(), url.clone(), s, format!("h{started}"), otx.clone(), stop_rx.clone()));
                started += 1;
                waiting += 1;
            }
            for _ in 0..waiting {
                match orx.recv().await {
                    Some(true) => open += 1,
                    _ => errors += 1,
                }
            }
            say(&format!("open {open} {errors} {:.2}", t0.elapsed().as_secs_f64()))?;
        }
        // Close the clients' side first, so the app sees clients leave (not the upstream failing) before this
        // process exits.
        let _ = stop_tx.send(true);
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    }
}

// ----------------------------------------------------------------------------------------------------------------
// Output

fn print_report(report: &Value, args: &Args, warmup: Duration) {
    println!(
        "Chat gateway overhead, {}, {} cores; closed loop, {} s measured after {} s warm-up per run; \
         client, app and fake upstream in one process",
        report["database"].as_str().unwrap_or(""),
        report["cores"],
        args.seconds,
        warmup.as_secs()
    );
    println!(
        "Upstream answer: {} text deltas, {} ms between events, {}; time to first text (ms)",
        args.deltas,
        args.delta_ms,
        if buffered(args) { "written at once" } else { "one write per event" }
    );
    println!(
        "{:>6} {:>8} {:<9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "conc", "up ms", "path", "streams", "streams/s", "mean", "p50", "p90", "p99", "max", "errors"
    );
    for run in report["runs"].as_array().into_iter().flatten() {
        let (c, up) = (&run["concurrency"], &run["upstream_first_byte_ms"]);
        for (name, key) in [("direct", "direct"), ("mentorfy", "mentorfy")] {
            let r = &run[key];
            println!(
                "{:>6} {:>8} {:<9} {:>8} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}",
                c.to_string(),
                up.to_string(),
                name,
                r["streams"].to_string(),
                r["streams_per_s"].to_string(),
                r["mean_ms"].as_f64().unwrap_or(0.0),
                r["p50_ms"].as_f64().unwrap_or(0.0),
                r["p90_ms"].as_f64().unwrap_or(0.0),
                r["p99_ms"].as_f64().unwrap_or(0.0),
                r["max_ms"].as_f64().unwrap_or(0.0),
                r["errors"].to_string(),
            );
            if let Some(e) = r["first_error"].as_str() {
                println!("{:>6} {:>8} {:<9} first error: {e}", "", "", "");
            }
        }
        let o = &run["overhead"];
        println!(
            "{:>6} {:>8} {:<9} {:>8} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2}   (upstream request: {} bytes)",
            c.to_string(),
            up.to_string(),
            "overhead",
            "",
            "",
            o["mean_ms"].as_f64().unwrap_or(0.0),
            o["p50_ms"].as_f64().unwrap_or(0.0),
            o["p90_ms"].as_f64().unwrap_or(0.0),
            o["p99_ms"].as_f64().unwrap_or(0.0),
            run["upstream_request_bytes"],
        );
    }
    if let Some(calls) = report["breakdown"]["calls"].as_array() {
        println!();
        println!("Database calls before the upstream call, one at a time on an idle app (ms)");
        println!("{:<30} {:>7} {:>8} {:>8} {:>8}", "call", "count", "p50", "p99", "mean");
        for c in calls {
            println!(
                "{:<30} {:>7} {:>8.3} {:>8.3} {:>8.3}",
                c["call"].as_str().unwrap_or(""),
                c["count"].to_string(),
                c["p50_ms"].as_f64().unwrap_or(0.0),
                c["p99_ms"].as_f64().unwrap_or(0.0),
                c["mean_ms"].as_f64().unwrap_or(0.0),
            );
        }
    }
    if let Some(steps) = report["memory"]["steps"].as_array() {
        println!();
        println!("Server memory with streams held open mid-answer (fake upstream and clients in a child process)");
        println!(
            "{:>12} {:>8} {:>9} {:>10} {:>16} {:>14}",
            "open", "errors", "open in s", "RSS MiB", "KiB/stream total", "KiB/stream step"
        );
        for s in steps {
            println!(
                "{:>12} {:>8} {:>9} {:>10.1} {:>16} {:>14}",
                s["open_streams"].to_string(),
                s.get("errors").map(Value::to_string).unwrap_or_default(),
                s.get("seconds_to_open").map(Value::to_string).unwrap_or_default(),
                s["rss_mib"].as_f64().unwrap_or(0.0),
                s.get("kib_per_stream_since_baseline").map(Value::to_string).unwrap_or_default(),
                s.get("kib_per_stream_this_step").map(Value::to_string).unwrap_or_default(),
            );
        }
    }
}
