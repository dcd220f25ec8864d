//! Start-up (connect, migrate, build the state), the middleware stack, and serving with graceful shutdown.
//! The binary and the integration tests both start the app through here, so tests run what ships.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use mentorfy_auth::{ClerkSettings, ClerkVerifier};
use mentorfy_core::config::redact_url_password;
use mentorfy_core::{Config, LlmConfig, OrgRegistry, TraceExport};
use mentorfy_jobs::{Jobs, Registry, WorkerSettings, Workers, WorkersHandle};
use mentorfy_llm::{AnthropicAuth, Gateway, GatewaySettings, PriceTable, ProviderKind, ProviderSettings};
use mentorfy_memory::{
    EmbeddedMemory, Embedder, KnowledgeBase, MemoryStore, Supermemory, SupermemoryConfig, split_markdown,
};
use mentorfy_mentor::{Agents, ChatService, MemoryService, Sessions, ToolRegistry, Tracer};
use mentorfy_otlp::{Exporter, ExporterSettings, Protocol, Resource};
use mentorfy_sensei::Ingestor;
use mentorfy_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::admin_auth::AdminServices;
use crate::error::AppError;
use crate::extract::BODY_LIMIT;
use crate::rate_limit::Gcra;
use crate::routes;
use crate::state::{AppState, AuthSetup, JobsSetup, MentorSetup, SenseiSetup};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A start-up failure, with a message fit for one log line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

/// Connects to the database, applies migrations, loads organisations and builds the Clerk verifier.
pub async fn prepare(config: Arc<Config>) -> Result<AppState, StartupError> {
    // reqwest is built without a default TLS provider; install ring once (ignored if already installed).
    let _ = rustls::crypto::ring::default_provider().install_default();

    let orgs = OrgRegistry::load(config.orgs_dir.as_deref()).map_err(StartupError)?;
    let store = Store::connect(config.database_url.expose(), config.db_max_connections)
        .await
        .map_err(|e| StartupError(format!("DATABASE_URL: {e}")))?;
    let applied = store.migrate().await.map_err(|e| StartupError(e.to_string()))?;
    for migration in &applied {
        tracing::info!(migration = %migration, "applied migration");
    }
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| StartupError(format!("cannot build the HTTP client: {e}")))?;
    let clerk = if config.clerk.is_configured() {
        let settings = ClerkSettings {
            jwt_key_pem: config.clerk.jwt_key_pem.clone(),
            jwks_url: config.clerk.jwks_url.clone(),
            issuer: config.clerk.issuer.clone(),
            authorized_parties: config.clerk.authorized_parties.clone(),
            ..ClerkSettings::default()
        };
        Some(
            ClerkVerifier::new(settings, http.clone())
                .map_err(|e| StartupError(format!("CLERK_JWT_KEY / CLERK_JWKS_URL: {e}")))?,
        )
    } else {
        None
    };
    let admin = AdminServices::build(&config, &store, http.clone()).await.map_err(StartupError)?;
    for (feature, enabled, vars) in config.features() {
        if !enabled {
            tracing::info!(feature, "{feature} disabled: set {vars} to enable it");
        }
    }
    let orgs = Arc::new(orgs);
    let jobs = Jobs::new(store.clone());
    let sessions =
        Sessions::new(store.clone(), orgs.clone(), config.default_country_code.clone()).with_jobs(jobs.clone());
    let embedder = embedder(&config)?;
    let memory = memory_service(&config, &store, &orgs, embedder.clone())?;
    let mut tools = ToolRegistry::builtin();
    for tool in memory.tools() {
        tools.register(tool);
    }
    let agents = Agents::load(config.agents_dir.as_deref(), &orgs, &tools).map_err(StartupError)?;
    for agent in agents.list() {
        tracing::debug!(agent = %agent.id, provider = %agent.provider, model = %agent.model, "agent loaded");
    }
    let prices = PriceTable::load(config.llm.prices_file.as_deref())
        .map_err(|e| StartupError(format!("MENTORFY_PRICES_FILE: {e}")))?;
    let gateway = Gateway::new(gateway_settings(&config.llm))
        .map_err(|e| StartupError(format!("cannot build the LLM gateway: {e}")))?;
    let exporter = trace_exporter(&config)?;
    let tracer = Tracer::new(store.clone(), exporter, Arc::new(prices), config.trace_content);
    let judge = judge(&config, &store, &gateway, &tracer)?;
    let chat = ChatService::new(
        store.clone(),
        orgs,
        gateway.clone(),
        agents,
        tools,
        tracer,
        config.chat_history_turns,
        memory.clone(),
        Some(jobs.clone()),
    );
    let mut registry = Registry::new();
    let deps = mentorfy_mentor::jobs::JobDeps {
        store: store.clone(),
        sessions: sessions.clone(),
        memory,
        abandon_after: config.abandon_after,
        assistant_name: "Assistant".to_owned(),
    };
    mentorfy_mentor::jobs::register(&mut registry, &deps);
    let pipeline = mentorfy_sensei::pipeline::Pipeline::new(store.clone(), config.sensei.idle_timeout);
    let alerts = mentorfy_sensei::alerts::Alerts::new(store.clone(), config.sensei.alerts.clone())
        .map_err(|e| StartupError(format!("Sensei alerts: {e}")))?;
    mentorfy_sensei::alerts::register(&mut registry, &alerts);
    let patterns = mentorfy_sensei::patterns::Patterns::new(
        store.clone(),
        if config.sensei.embeddings { embedder.clone() } else { None },
    );
    let sensei_deps =
        mentorfy_sensei::jobs::JobDeps { store: store.clone(), pipeline, alerts: alerts.clone(), patterns, judge };
    mentorfy_sensei::jobs::register(&mut registry, &sensei_deps);
    let mut recurring = mentorfy_mentor::jobs::recurring(&config);
    recurring.extend(mentorfy_sensei::jobs::recurring(config.sensei.patterns_every, config.sensei.patterns_window));
    let jobs = JobsSetup { jobs, registry, recurring };
    let (rate, period) = config.sensei.ingest_rate;
    let sensei = SenseiSetup {
        ingestor: Ingestor::new(store.clone(), config.sensei.analysis_debounce).with_jobs(jobs.jobs.clone()),
        limiter: Gcra::new("ingest", rate, period, config.sensei.ingest_burst),
        alerts,
    };
    let mentor = MentorSetup { sessions, chat, gateway };
    Ok(AppState::new(config, store, mentor, AuthSetup { clerk, admin }, jobs, sensei))
}

/// Knowledge pages shipped in the binary: `knowledge/<org>/<file>.md` at the repository root.
const BUILTIN_KNOWLEDGE: &[(&str, &str, &str)] = &[
    ("rafael-tatts", "pricing.md", include_str!("../../../knowledge/rafael-tatts/pricing.md")),
    ("rafael-tatts", "booking.md", include_str!("../../../knowledge/rafael-tatts/booking.md")),
    (
        "rafael-tatts",
        "growing-your-business.md",
        include_str!("../../../knowledge/rafael-tatts/growing-your-business.md"),
    ),
];

/// The LLM judge of `SENSEI_JUDGE_MODEL`, traced through the gateway; its provider must be configured.
fn judge(
    config: &Config,
    store: &Store,
    gateway: &Gateway,
    tracer: &Tracer,
) -> Result<Option<mentorfy_sensei::judge::Judge>, StartupError> {
    let Some(settings) = &config.sensei.judge else { return Ok(None) };
    let provider = match settings.provider.as_str() {
        "anthropic" => mentorfy_llm::ProviderKind::Anthropic,
        _ => mentorfy_llm::ProviderKind::OpenAi,
    };
    if gateway.provider(provider).is_none() {
        let key =
            if provider == mentorfy_llm::ProviderKind::Anthropic { "ANTHROPIC_API_KEY" } else { "OPENAI_API_KEY" };
        return Err(StartupError(format!(
            "SENSEI_JUDGE_MODEL uses {provider}, which is not configured: set {key} (or clear SENSEI_JUDGE_MODEL)"
        )));
    }
    tracing::info!(provider = %provider, model = %settings.model, "Sensei LLM judge on: final conversations are evaluated");
    let model = crate::judge::TracedJudge {
        gateway: gateway.clone(),
        tracer: tracer.clone(),
        provider,
        model: settings.model.clone(),
    };
    Ok(Some(mentorfy_sensei::judge::Judge::new(store.clone(), Arc::new(model), settings.prompt.clone())))
}

/// The static embedding model named by `MENTORFY_EMBED_MODEL`, loaded once and shared by the memory engine and
/// (with `FEATURE_EMBEDDINGS=1`) Sensei's usage patterns.
fn embedder(config: &Config) -> Result<Option<Arc<Embedder>>, StartupError> {
    Ok(match &config.memory.embed_model {
        Some(path) => {
            let e = Embedder::load(path)
                .map_err(|e| StartupError(format!("MENTORFY_EMBED_MODEL: cannot load {}: {e}", path.display())))?;
            tracing::info!(model = %e.name(), dim = e.dim(), "memory search: keywords (BM25) blended with static embeddings");
            Some(Arc::new(e))
        }
        None => {
            tracing::info!(
                "memory search: keywords (BM25) only; set MENTORFY_EMBED_MODEL to a model2vec folder for semantic search"
            );
            None
        }
    })
}

/// Memory: Supermemory when `SUPERMEMORY_API_KEY` is set, else the embedded engine on our database (with
/// static embeddings when `MENTORFY_EMBED_MODEL` names a model); the knowledge pages, shipped and extra.
fn memory_service(
    config: &Config,
    store: &Store,
    orgs: &OrgRegistry,
    embedder: Option<Arc<Embedder>>,
) -> Result<MemoryService, StartupError> {
    let backend: Arc<dyn MemoryStore> = match &config.memory.supermemory_api_key {
        Some(key) => {
            let settings = SupermemoryConfig::new(config.memory.supermemory_base_url.clone(), key.expose());
            let client = Supermemory::new(settings).map_err(|e| StartupError(format!("SUPERMEMORY_API_KEY: {e}")))?;
            tracing::info!(base_url = %config.memory.supermemory_base_url, "memories are kept in Supermemory");
            Arc::new(client)
        }
        None => Arc::new(EmbeddedMemory::new(store.clone(), embedder.clone())),
    };
    let knowledge = knowledge_base(config.memory.knowledge_dir.as_deref(), embedder)?;
    for org in orgs.ids() {
        tracing::debug!(org = %org, chunks = knowledge.chunk_count(org.as_str()), "knowledge loaded");
    }
    Ok(MemoryService::new(backend, Arc::new(knowledge), orgs.clone(), config.memory.token_budget as usize))
}

/// The shipped knowledge pages plus `<dir>/<org>/*.md`; a file in `dir` with a shipped page's name replaces it.
fn knowledge_base(
    dir: Option<&std::path::Path>,
    embedder: Option<Arc<Embedder>>,
) -> Result<KnowledgeBase, StartupError> {
    let mut pages: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> = Default::default();
    for (org, file, text) in BUILTIN_KNOWLEDGE {
        pages.entry((*org).to_owned()).or_default().insert((*file).to_owned(), (*text).to_owned());
    }
    if let Some(dir) = dir {
        let read_dir = |p: &std::path::Path| {
            std::fs::read_dir(p)
                .map_err(|e| StartupError(format!("MENTORFY_KNOWLEDGE_DIR: cannot read {}: {e}", p.display())))
        };
        for org_entry in read_dir(dir)? {
            let org_path = org_entry.map_err(|e| StartupError(format!("MENTORFY_KNOWLEDGE_DIR: {e}")))?.path();
            let Some(org) = org_path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
            if !org_path.is_dir() {
                continue;
            }
            for file_entry in read_dir(&org_path)? {
                let path = file_entry.map_err(|e| StartupError(format!("MENTORFY_KNOWLEDGE_DIR: {e}")))?.path();
                if path.extension().is_none_or(|x| x != "md") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    StartupError(format!("MENTORFY_KNOWLEDGE_DIR: cannot read {}: {e}", path.display()))
                })?;
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
                pages.entry(org.clone()).or_default().insert(name, text);
            }
        }
    }
    let mut kb = KnowledgeBase::empty(embedder);
    for (org, files) in pages {
        let chunks = files.iter().flat_map(|(file, text)| split_markdown(file, text)).collect();
        kb.insert(org, chunks);
    }
    Ok(kb)
}

/// The gateway's providers and limits, from the configuration.
pub fn gateway_settings(llm: &LlmConfig) -> GatewaySettings {
    let anthropic = llm.anthropic_api_key.as_ref().map(|key| ProviderSettings {
        kind: ProviderKind::Anthropic,
        name: "anthropic".to_owned(),
        base_url: llm.anthropic_base_url.clone(),
        api_key: Some(key.expose().to_owned()),
        anthropic_version: llm.anthropic_version.clone(),
        anthropic_auth: if llm.anthropic_bearer { AnthropicAuth::Bearer } else { AnthropicAuth::XApiKey },
        include_usage: true,
    });
    let openai = llm.openai_enabled.then(|| ProviderSettings {
        kind: ProviderKind::OpenAi,
        name: llm.openai_provider_name.clone(),
        base_url: llm.openai_base_url.clone(),
        api_key: llm.openai_api_key.as_ref().map(|k| k.expose().to_owned()),
        anthropic_version: llm.anthropic_version.clone(),
        anthropic_auth: AnthropicAuth::XApiKey,
        include_usage: llm.openai_include_usage,
    });
    GatewaySettings {
        anthropic,
        openai,
        connect_timeout: llm.connect_timeout,
        first_token_timeout: llm.first_token_timeout,
        total_timeout: llm.total_timeout,
        max_retries: llm.max_retries,
        ..GatewaySettings::default()
    }
}

fn trace_exporter(config: &Config) -> Result<Exporter, StartupError> {
    let resource = Resource::new(config.otel_service_name.clone(), env!("CARGO_PKG_VERSION"));
    let settings = match &config.trace_export {
        TraceExport::Off => return Ok(Exporter::disabled()),
        TraceExport::Langfuse { host, public_key, secret_key } => {
            ExporterSettings::langfuse(host, public_key, secret_key.expose(), resource)
        }
        TraceExport::Otlp { endpoint, json, headers } => {
            let headers = match headers {
                Some(h) => ExporterSettings::parse_headers(h.expose())
                    .map_err(|e| StartupError(format!("OTEL_EXPORTER_OTLP_HEADERS: {e}")))?,
                None => Vec::new(),
            };
            let protocol = if *json { Protocol::HttpJson } else { Protocol::HttpProtobuf };
            ExporterSettings::otlp(endpoint, protocol, headers, resource)
        }
    };
    tracing::info!(endpoint = %redact_url_password(&settings.endpoint), protocol = %settings.protocol, "exporting LLM traces over OTLP");
    Ok(Exporter::spawn(settings))
}

/// The complete HTTP application: API routes, OpenAPI document, docs page, fallbacks and middleware.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = routes::api();
    let config = state.config();
    let timeout = config.request_timeout;
    let cors = cors_layer(&config.cors_origins);
    let docs: Router<AppState> = SwaggerUi::new("/docs").url("/openapi.json", openapi).into();

    let router = api
        .merge(docs)
        .merge(crate::dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(timeout, request_timeout))
        .with_state(state);

    // Added innermost first: the last layer wraps all the others.
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id =
                        req.extensions().get::<RequestId>().and_then(|r| r.header_value().to_str().ok()).unwrap_or("");
                    // The path only: query strings may carry personal data.
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "response"
                    );
                }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::from_fn(drop_bad_request_id))
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    AppError::internal("a handler panicked").into_response()
}

/// Starts job workers with the app's registry and recurring jobs, woken by `state.jobs()`; `concurrency`
/// overrides `MENTORFY_WORKERS`. `serve` calls this; so does `mentorfy worker` (workers without HTTP).
pub fn start_workers(state: &AppState, concurrency: usize) -> WorkersHandle {
    let settings = WorkerSettings { concurrency, ..WorkerSettings::from_config(state.config()) };
    Workers::start_with(state.jobs().clone(), state.job_registry().clone(), settings, state.recurring_jobs().to_vec())
}

/// Serves until `shutdown` resolves, then stops accepting, gives in-flight requests up to
/// `shutdown_timeout` to finish, stops the job workers (running jobs get `shutdown_timeout` too, then are
/// released) and background tasks, and closes the pool.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = state.config().clone();
    let store = state.store().clone();
    let state_exporter = state.chat().tracer().exporter().clone();
    let stop = CancellationToken::new();
    let workers = match usize::try_from(config.jobs.workers) {
        Ok(n) if n > 0 => Some(start_workers(&state, n)),
        _ => None,
    };
    let checkpoints = tokio::spawn(wal_checkpoints(store.clone(), stop.clone()));
    let rollups =
        config.sensei.rollup_refresh.map(|every| tokio::spawn(refresh_rollups(store.clone(), every, stop.clone())));
    let signatures = tokio::spawn(rebuild_text_signatures(store.clone(), stop.clone()));

    let graceful = stop.clone();
    // Streamed answers are many small writes; with Nagle's algorithm on, each write after the first waits for the
    // client's delayed ACK (~40 ms on Linux). docs/PERFORMANCE.md, "Chat gateway overhead", measures the difference.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on an accepted connection");
        }
    });
    let server = axum::serve(listener, app(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move { graceful.cancelled().await });
    let mut server = std::pin::pin!(server.into_future());
    let result = tokio::select! {
        r = &mut server => r,
        () = shutdown => {
            tracing::info!("shutdown requested: no new connections, finishing in-flight requests");
            stop.cancel();
            match tokio::time::timeout(config.shutdown_timeout, &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(timeout_s = config.shutdown_timeout.as_secs(), "in-flight requests did not finish in time; closing");
                    Ok(())
                }
            }
        }
    };
    stop.cancel();
    if let Some(workers) = workers {
        workers.shutdown().await;
    }
    let _ = checkpoints.await;
    let _ = signatures.await;
    if let Some(rollups) = rollups {
        let _ = rollups.await;
    }
    let exporter = state_exporter;
    exporter.shutdown(Duration::from_secs(5)).await;
    let stats = exporter.stats();
    if exporter.is_enabled() {
        tracing::info!(
            exported = stats.exported,
            dropped = stats.dropped,
            failed = stats.failed,
            "trace export stopped"
        );
    }
    store.close().await;
    tracing::info!("shutdown complete");
    result
}

/// Keeps SQLite's write-ahead log short off the request path (see `Store::checkpoint`).
async fn wal_checkpoints(store: Store, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
        }
    }
}

/// Keeps the hourly analytics rollups current (see `Store::refresh_rollups`): at start-up, then every `every`, but
/// never spending more than a tenth of the time refreshing (while a backlog of old conversations is analysed,
/// most hours go stale and a refresh recomputes most of the table). Every server runs this; PostgreSQL servers
/// take turns through an advisory lock.
async fn refresh_rollups(store: Store, every: Duration, stop: CancellationToken) {
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let started = std::time::Instant::now();
        match store.refresh_rollups(mentorfy_store::now()).await {
            Ok(r) if r.ranges > 0 => tracing::debug!(
                ranges = r.ranges,
                watermark = %r.watermark,
                ms = started.elapsed().as_millis() as u64,
                "analytics rollups refreshed"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "analytics rollup refresh failed; will retry"),
        }
        wait = every.max(started.elapsed() * 10);
    }
}

/// Computes the text signatures of conversations stored before they existed (migration 20261129000015), a batch
/// at a time, resting as long as each batch took (half the server's time at most), then looks again every minute
/// (an edited message sends its conversation back): the conversation list's text search treats those
/// conversations as candidates meanwhile, so results never change, only get faster. New conversations get
/// theirs as their messages are stored.
async fn rebuild_text_signatures(store: Store, stop: CancellationToken) {
    let mut total = 0u64;
    loop {
        let started = std::time::Instant::now();
        let rest = match store.rebuild_text_signatures(200).await {
            Ok(0) => {
                if total > 0 {
                    tracing::info!(conversations = total, "text signatures rebuilt");
                    total = 0;
                }
                Duration::from_secs(60)
            }
            Ok(n) => {
                total += n;
                started.elapsed().max(Duration::from_millis(10))
            }
            Err(e) => {
                tracing::warn!(error = %e, "text signature rebuild failed; will retry in 30 s");
                Duration::from_secs(30)
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(rest) => {}
        }
    }
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, REQUEST_ID])
        .expose_headers([REQUEST_ID])
        .max_age(Duration::from_secs(3600))
}

/// An incoming `x-request-id` is kept only if it is short printable ASCII; otherwise a fresh one is made.
async fn drop_bad_request_id(mut req: Request, next: Next) -> Response {
    let bad = req.headers().get(&REQUEST_ID).is_some_and(|v| {
        let b = v.as_bytes();
        b.is_empty() || b.len() > 128 || !b.iter().all(|c| c.is_ascii_graphic())
    });
    if bad {
        req.headers_mut().remove(&REQUEST_ID);
    }
    next.run(req).await
}

async fn request_timeout(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    // LLM routes wait on the model under the gateway's own first-token and total timeouts.
    let path = req.uri().path();
    if path == "/api/chat" || path.starts_with("/api/generate/") {
        return next.run(req).await;
    }
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => AppError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long; try again")
            .into_response(),
    }
}

async fn not_found(req: Request) -> AppError {
    AppError::not_found(format!("no route for {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}
