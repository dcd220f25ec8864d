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
use mentorfy_auth::{ClerkSettings, ClerkVerifier};
use mentorfy_core::config::redact_url_password;
use mentorfy_core::{Config, LlmConfig, OrgRegistry, TraceExport};
use mentorfy_llm::{AnthropicAuth, Gateway, GatewaySettings, PriceTable, ProviderKind, ProviderSettings};
use mentorfy_mentor::{Agents, ChatService, Sessions, ToolRegistry, Tracer};
use mentorfy_otlp::{Exporter, ExporterSettings, Protocol, Resource};
use mentorfy_store::Store;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::AppError;
use crate::extract::BODY_LIMIT;
use crate::routes;
use crate::state::AppState;

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
            ClerkVerifier::new(settings, http)
                .map_err(|e| StartupError(format!("CLERK_JWT_KEY / CLERK_JWKS_URL: {e}")))?,
        )
    } else {
        None
    };
    for (feature, enabled, vars) in config.features() {
        if !enabled {
            tracing::info!(feature, "{feature} disabled: set {vars} to enable it");
        }
    }
    let orgs = Arc::new(orgs);
    let sessions = Sessions::new(store.clone(), orgs.clone(), config.default_country_code.clone());
    let tools = ToolRegistry::builtin();
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
    let chat = ChatService::new(store.clone(), orgs, gateway.clone(), agents, tools, tracer, config.chat_history_turns);
    Ok(AppState::new(config, store, sessions, clerk, chat, gateway))
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

/// Serves until `shutdown` resolves, then stops accepting, gives in-flight requests up to
/// `shutdown_timeout` to finish, stops background tasks and closes the pool.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = state.config().clone();
    let store = state.store().clone();
    let state_exporter = state.chat().tracer().exporter().clone();
    let stop = CancellationToken::new();
    let sweep = tokio::spawn(abandoned_sweep(state.clone(), stop.clone()));
    let checkpoints = tokio::spawn(wal_checkpoints(store.clone(), stop.clone()));

    let graceful = stop.clone();
    // Streamed answers are many small writes; with Nagle's algorithm on, each write after the first waits for the
    // client's delayed ACK (~40 ms on Linux). docs/PERFORMANCE.md, "Chat gateway overhead", measures the difference.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on an accepted connection");
        }
    });
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(async move { graceful.cancelled().await });
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
    let _ = sweep.await;
    let _ = checkpoints.await;
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

/// Periodically marks idle sessions abandoned. (Moves onto the job queue when it exists.)
async fn abandoned_sweep(state: AppState, stop: CancellationToken) {
    let every = state.config().sweep_interval.max(Duration::from_millis(100));
    let idle = state.config().abandon_after;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match state.sessions().sweep_abandoned(idle).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "marked idle sessions abandoned"),
            Err(e) => tracing::warn!(error = %e, "abandoned-session sweep failed; will retry"),
        }
    }
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
