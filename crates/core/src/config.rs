//! Configuration: one table of variables ([`VARS`]) drives parsing, `.env.example`, the README table and
//! `mentorfy config`. Parsed and validated once at start-up from defaults, an optional `mentorfy.toml`,
//! then the environment (highest). It must not read the environment anywhere else, and never print a secret.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// One configuration variable.
#[derive(Debug)]
pub struct VarSpec {
    pub name: &'static str,
    pub default: &'static str,
    pub secret: bool,
    pub help: &'static str,
}

const fn var(name: &'static str, default: &'static str, help: &'static str) -> VarSpec {
    VarSpec { name, default, secret: false, help }
}

const fn secret(name: &'static str, help: &'static str) -> VarSpec {
    VarSpec { name, default: "", secret: true, help }
}

/// Every variable Mentorfy reads. An empty default means "unset".
pub const VARS: &[VarSpec] = &[
    var("MENTORFY_ADDR", "127.0.0.1:8080", "Address `serve` listens on (`--addr` overrides)."),
    var(
        "DATABASE_URL",
        "sqlite://data/mentorfy.db",
        "`sqlite://PATH` (created on first run) or `postgres://…` (Supabase works). A password in it is redacted in output.",
    ),
    var("MENTORFY_DB_MAX_CONNECTIONS", "16", "Connection pool size."),
    var("MENTORFY_LOG", "info", "Log filter (tracing `EnvFilter` syntax, e.g. `info,mentorfy_web=debug`)."),
    var("MENTORFY_LOG_FORMAT", "text", "`text` for people, `json` for log shippers."),
    var(
        "MENTORFY_CORS_ORIGINS",
        "http://localhost:3000",
        "Comma-separated origins allowed to call the API from a browser; `*` allows any.",
    ),
    var(
        "MENTORFY_ABANDON_AFTER",
        "7d",
        "A session idle longer than this is marked `abandoned` by the sweep (`30s`, `15m`, `12h`, `7d`).",
    ),
    var("MENTORFY_SWEEP_INTERVAL", "10m", "How often the abandoned-session sweep runs."),
    var("MENTORFY_REQUEST_TIMEOUT", "30s", "Longest time a request may take before it is answered 503."),
    var("MENTORFY_SHUTDOWN_TIMEOUT", "30s", "On SIGTERM/SIGINT, how long in-flight requests get to finish."),
    var("MENTORFY_ORGS_DIR", "", "Folder of extra organisation files (`<org>.toml`); `rafael-tatts` is built in."),
    var(
        "MENTORFY_DEFAULT_COUNTRY_CODE",
        "1",
        "Country calling code assumed for 10-digit phone numbers without `+`; empty to require `+`.",
    ),
    var("CLERK_JWT_KEY", "", "Clerk's PEM public key: verifies session tokens with no network (preferred)."),
    var("CLERK_JWKS_URL", "", "Clerk Frontend API JWKS URL, used when `CLERK_JWT_KEY` is unset (cached)."),
    var("CLERK_ISSUER", "", "Expected `iss` of Clerk tokens (derived from `CLERK_JWKS_URL` when unset)."),
    var(
        "CLERK_AUTHORIZED_PARTIES",
        "",
        "Comma-separated origins allowed as the token's `azp`; when set, a token without `azp` is refused.",
    ),
    secret("CLERK_SECRET_KEY", "Clerk backend secret key (not needed for token verification)."),
    var("SUPABASE_URL", "", "Supabase project URL (admin sign-in via Supabase JWTs)."),
    secret("SUPABASE_ANON_KEY", "Supabase anon key."),
    secret("SUPABASE_SERVICE_ROLE_KEY", "Supabase service-role key."),
    secret("SUPABASE_JWT_SECRET", "Supabase legacy HS256 JWT secret."),
    var(
        "SENSEI_ADMIN_EMAILS",
        "",
        "Comma-separated emails (case-insensitive) of the Supabase users allowed on the admin API; unset: any \
         authenticated Supabase user.",
    ),
    secret(
        "SENSEI_API_KEY_PEPPER",
        "Pepper (at least 32 characters) keying the stored digests of API keys; unset: one generated and kept in the \
         database.",
    ),
    var(
        "SENSEI_INGEST_RATE_LIMIT",
        "100/1s",
        "Ingestion requests allowed per API key, as `COUNT/WINDOW` (GCRA, per server); more get 429 with Retry-After.",
    ),
    var("SENSEI_INGEST_BURST", "500", "Ingestion requests an idle API key may send at once before the rate applies."),
    var(
        "SENSEI_ANALYSIS_DEBOUNCE",
        "250ms",
        "Delay between a conversation's new messages and its analysis job; messages arriving meanwhile join it.",
    ),
    var(
        "SENSEI_IDLE_TIMEOUT",
        "5m",
        "A conversation with no new message for this long is final: analysed once more (abandonment, unresolved \
         escalations) and marked idle; a new message reopens it. 0s makes every analysis final.",
    ),
    var(
        "SENSEI_PATTERNS_EVERY",
        "7d",
        "How often usage patterns are recomputed in the background (`off` to only run `mentorfy patterns run`).",
    ),
    var(
        "SENSEI_ROLLUP_REFRESH",
        "1m",
        "How often a server brings the hourly analytics rollups up to date (`off`: never; answers stay exact, as \
         hours not rolled up are read from the raw tables, only slower). Servers take turns through a lock.",
    ),
    var("SENSEI_PATTERNS_WINDOW", "30d", "Usage patterns cluster the conversations that started within this window."),
    var(
        "FEATURE_EMBEDDINGS",
        "0",
        "1: embed each conversation's opening with the static model in MENTORFY_EMBED_MODEL and blend it into usage \
         patterns (cached in conversation_embeddings); 0: word statistics (TF-IDF) only.",
    ),
    var(
        "SENSEI_JUDGE_MODEL",
        "",
        "Optional LLM judge of final conversations, as `PROVIDER:MODEL` (e.g. `anthropic:claude-haiku-4-5`, \
         `openai:gpt-4o-mini`); needs that provider's key. Verdicts land in `evaluations`, calls in `llm_calls`. Empty: off.",
    ),
    var(
        "SENSEI_JUDGE_PROMPT_FILE",
        "",
        "A file with the judge's instructions (it must ask for JSON `{score 1-5, label, explanation}`); empty: built in.",
    ),
    secret(
        "SLACK_WEBHOOK_URL",
        "Slack incoming webhook (https://hooks.slack.com/services/…) for Sensei alerts; the dashboard's setting wins.",
    ),
    var(
        "SENSEI_ALERT_MIN_SEVERITY",
        "high",
        "Alert when a conversation gets a failure of at least this severity (low, medium, high, critical, or off).",
    ),
    var(
        "SENSEI_ALERT_HEALTH_BELOW",
        "40",
        "Alert when a conversation's final health falls below this (0–100; 0 = off).",
    ),
    var(
        "SENSEI_ALERT_FAILURE_RATE",
        "0.25/1h",
        "Alert when one failure type appears in more than this share of the conversations of a window, as \
         `SHARE/WINDOW` (`off` to disable).",
    ),
    var(
        "SENSEI_PUBLIC_URL",
        "",
        "Base URL people use to reach this server (for links in alerts); empty: http://MENTORFY_ADDR.",
    ),
    var("MENTORFY_ADMIN_TOKEN_TTL", "12h", "Lifetime of the admin tokens issued by `POST /api/v1/auth/login`."),
    var(
        "MENTORFY_LOGIN_RATE_LIMIT",
        "10/15m",
        "Login attempts allowed per email and per client IP, as `COUNT/WINDOW` (e.g. `10/15m`); more get 429.",
    ),
    secret("ANTHROPIC_API_KEY", "Anthropic API key: enables Claude agents."),
    var("ANTHROPIC_BASE_URL", "https://api.anthropic.com", "Anthropic API base URL (`/v1/messages` is appended)."),
    var("ANTHROPIC_VERSION", "2023-06-01", "The `anthropic-version` header sent with every Anthropic request."),
    var(
        "ANTHROPIC_AUTH_STYLE",
        "x-api-key",
        "`x-api-key` (API versions up to 2023-06-01) or `bearer` (`Authorization: Bearer`, newer API versions).",
    ),
    secret("OPENAI_API_KEY", "OpenAI (or compatible server) API key: enables agents with `provider = \"openai\"`."),
    var(
        "OPENAI_BASE_URL",
        "https://api.openai.com/v1",
        "OpenAI-compatible base URL (`/chat/completions` is appended): Ollama `http://localhost:11434/v1`, vLLM, llama.cpp, OpenRouter. A non-default URL enables the provider without a key.",
    ),
    var(
        "OPENAI_PROVIDER_NAME",
        "openai",
        "Name of the OpenAI-compatible provider in traces (`gen_ai.provider.name`), e.g. `ollama`.",
    ),
    var(
        "OPENAI_INCLUDE_USAGE",
        "true",
        "Send `stream_options.include_usage` (token counts for streamed calls); turn off for servers that reject it.",
    ),
    var("MENTORFY_LLM_CONNECT_TIMEOUT", "10s", "Longest wait to connect to an LLM provider."),
    var(
        "MENTORFY_LLM_FIRST_TOKEN_TIMEOUT",
        "60s",
        "Longest wait from sending an LLM request to its first token (retried like a connection error).",
    ),
    var("MENTORFY_LLM_TIMEOUT", "10m", "Longest time one LLM call may take in all, streaming included."),
    var(
        "MENTORFY_LLM_MAX_RETRIES",
        "2",
        "Retries of an LLM call that failed before its first token reached the client (408/409/429/5xx/529).",
    ),
    var(
        "MENTORFY_PRICES_FILE",
        "",
        "TOML price table (USD per million tokens per model) laid over the built-in one; unknown models cost `null`.",
    ),
    var("MENTORFY_AGENTS_DIR", "", "Folder of extra agents, `<org>/<agent>.toml|yaml`; the shipped ones are built in."),
    var(
        "MENTORFY_CHAT_HISTORY_TURNS",
        "10",
        "How many recent turns (user + assistant) of the transcript go to the model.",
    ),
    var("MENTORFY_SSE_KEEPALIVE", "15s", "Interval of `: keep-alive` comments on an idle chat stream."),
    var(
        "MENTORFY_WORKERS",
        "4",
        "Job workers run inside `mentorfy serve` (jobs at once); 0 runs none (then run `mentorfy worker` elsewhere).",
    ),
    var(
        "MENTORFY_JOB_POLL_INTERVAL",
        "1s",
        "How often idle workers look for due jobs (jobs enqueued by the same process wake them at once).",
    ),
    var(
        "MENTORFY_JOB_LEASE",
        "60s",
        "How long a claimed job stays reserved without a heartbeat; a job whose worker died is retried after it.",
    ),
    var(
        "MENTORFY_JOB_MAX_ATTEMPTS",
        "8",
        "Attempts of a job (retried with exponential backoff) before it is `dead`, unless the job sets its own.",
    ),
    var(
        "MENTORFY_JOB_RETRY_BASE",
        "5s",
        "First retry delay of a failed job; doubles each attempt (random jitter, at most 1h) unless the failure said when.",
    ),
    var(
        "MENTORFY_EMBED_MODEL",
        "",
        "Folder of a model2vec embedding model for the embedded memory; empty = keyword (BM25) search only.",
    ),
    secret("SUPERMEMORY_API_KEY", "Supermemory API key: uses Supermemory instead of the embedded memory."),
    var("SUPERMEMORY_BASE_URL", "https://api.supermemory.ai", "Supermemory API base URL."),
    var(
        "MENTORFY_KNOWLEDGE_DIR",
        "",
        "Folder of extra knowledge files, `<org>/*.md`, searchable by agents; the shipped ones are built in.",
    ),
    var("MENTORFY_MEMORY_TOKEN_BUDGET", "1200", "Most tokens of memories put into one prompt."),
    var("LANGFUSE_PUBLIC_KEY", "", "Langfuse public key: with the secret key and host, LLM traces go to Langfuse."),
    secret("LANGFUSE_SECRET_KEY", "Langfuse secret key."),
    var("LANGFUSE_HOST", "", "Langfuse base URL, e.g. `https://cloud.langfuse.com`."),
    var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "",
        "OTLP/HTTP collector base URL (`/v1/traces` is appended): LLM calls are exported as GenAI spans. Langfuse wins when both are set.",
    ),
    var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", "`http/protobuf` or `http/json` (gRPC is not supported)."),
    secret("OTEL_EXPORTER_OTLP_HEADERS", "Headers for the OTLP collector, `key=value,key2=value2` (e.g. an API key)."),
    var("OTEL_SERVICE_NAME", "mentorfy", "`service.name` of exported spans."),
    var(
        "MENTORFY_TRACE_CONTENT",
        "false",
        "Put prompts and answers on exported spans (`gen_ai.input.messages`, …). They are always kept in `llm_calls`.",
    ),
    secret("POSTHOG_API_KEY", "PostHog project key: product analytics events."),
    var("POSTHOG_HOST", "", "PostHog host, e.g. `https://us.i.posthog.com`."),
    var(
        "REDIS_URL",
        "",
        "Redis for shared rate limits across several servers; a password in it is redacted in output.",
    ),
];

/// A configuration problem, always naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: String,
    pub message: String,
}

fn err(var: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { var: var.to_owned(), message: message.into() }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct ClerkConfig {
    pub jwt_key_pem: Option<String>,
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub authorized_parties: Vec<String>,
    pub secret_key: Option<Secret>,
}

impl ClerkConfig {
    pub fn is_configured(&self) -> bool {
        self.jwt_key_pem.is_some() || self.jwks_url.is_some()
    }
}

/// Admin sign-in and project API keys (issue 5).
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// Lower-cased; empty means any authenticated Supabase user is an admin.
    pub admin_emails: Vec<String>,
    pub api_key_pepper: Option<Secret>,
    pub token_ttl: Duration,
    /// At most `login_attempts` logins per `login_window`, per email and per client IP.
    pub login_attempts: u32,
    pub login_window: Duration,
    pub supabase_url: Option<String>,
    pub supabase_jwt_secret: Option<Secret>,
}

/// Sensei ingestion (issue 5).
#[derive(Clone, Debug)]
pub struct SenseiConfig {
    /// Per API key: `ingest_rate.0` requests per `ingest_rate.1`.
    pub ingest_rate: (u32, Duration),
    /// Requests an idle key may send at once.
    pub ingest_burst: u32,
    /// Delay before a conversation's analysis job runs after new messages.
    pub analysis_debounce: Duration,
    /// Quiet time after which a conversation is final.
    pub idle_timeout: Duration,
    pub alerts: AlertConfig,
    /// Background pattern analysis cadence; `None` = off.
    pub patterns_every: Option<Duration>,
    /// Conversations that started within this window are clustered.
    pub patterns_window: Duration,
    /// How often the hourly analytics rollups are refreshed; `None` = off.
    pub rollup_refresh: Option<Duration>,
    /// `FEATURE_EMBEDDINGS=1` (checked at start-up to come with `MENTORFY_EMBED_MODEL`).
    pub embeddings: bool,
    /// The optional LLM judge.
    pub judge: Option<JudgeConfig>,
}

/// `SENSEI_JUDGE_MODEL` and `SENSEI_JUDGE_PROMPT_FILE`.
#[derive(Clone, Debug, PartialEq)]
pub struct JudgeConfig {
    /// `anthropic` or `openai`.
    pub provider: String,
    pub model: String,
    /// The instructions, read at start-up; `None`: the built-in ones.
    pub prompt: Option<String>,
}

/// Alert thresholds and the default Slack webhook (the dashboard's settings, when saved, win).
#[derive(Clone, Debug)]
pub struct AlertConfig {
    pub slack_webhook_url: Option<Secret>,
    /// `None`: failure alerts off. One of `low`, `medium`, `high`, `critical`.
    pub min_severity: Option<String>,
    /// 0 = off.
    pub health_below: f64,
    /// (share 0..1, window); `None` = off.
    pub failure_rate: Option<(f64, Duration)>,
    /// Base of dashboard links, without a trailing slash.
    pub public_url: String,
}

/// LLM providers and the gateway's limits.
#[derive(Clone, Debug)]
pub struct LlmConfig {
    pub anthropic_api_key: Option<Secret>,
    pub anthropic_base_url: String,
    pub anthropic_version: String,
    /// `Authorization: Bearer` instead of `x-api-key`.
    pub anthropic_bearer: bool,
    pub openai_api_key: Option<Secret>,
    pub openai_base_url: String,
    /// Set when a key or a non-default base URL enables the OpenAI-compatible provider.
    pub openai_enabled: bool,
    pub openai_provider_name: String,
    pub openai_include_usage: bool,
    pub connect_timeout: Duration,
    pub first_token_timeout: Duration,
    pub total_timeout: Duration,
    pub max_retries: u32,
    pub prices_file: Option<PathBuf>,
}

/// The job queue's workers.
#[derive(Clone, Debug)]
pub struct JobsConfig {
    /// Jobs run at once by the workers inside `serve`; 0 means `serve` runs none.
    pub workers: u32,
    pub poll_interval: Duration,
    pub lease: Duration,
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub retry_base: Duration,
}

/// Memory: the embedded engine or Supermemory, and the knowledge files.
#[derive(Clone, Debug)]
pub struct MemoryConfig {
    /// A model2vec model folder; `None` means keyword (BM25) search only.
    pub embed_model: Option<PathBuf>,
    /// When set, memories go to Supermemory instead of the embedded engine.
    pub supermemory_api_key: Option<Secret>,
    pub supermemory_base_url: String,
    pub knowledge_dir: Option<PathBuf>,
    /// Most tokens of memories put into one prompt.
    pub token_budget: u32,
}

/// Where LLM-call spans go.
#[derive(Clone, Debug)]
pub enum TraceExport {
    Off,
    Langfuse { host: String, public_key: String, secret_key: Secret },
    Otlp { endpoint: String, json: bool, headers: Option<Secret> },
}

/// The effective configuration. Built only by [`Config::load`] (or [`Config::from_sources`] in tests).
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: Secret,
    pub database_kind: DatabaseKind,
    pub db_max_connections: u32,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// Empty means no browser origin is allowed; `["*"]` allows any.
    pub cors_origins: Vec<String>,
    pub abandon_after: Duration,
    pub sweep_interval: Duration,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub orgs_dir: Option<PathBuf>,
    pub default_country_code: Option<String>,
    pub clerk: ClerkConfig,
    pub admin: AdminConfig,
    pub sensei: SenseiConfig,
    pub llm: LlmConfig,
    pub agents_dir: Option<PathBuf>,
    pub chat_history_turns: u32,
    pub sse_keepalive: Duration,
    pub trace_export: TraceExport,
    pub otel_service_name: String,
    pub trace_content: bool,
    pub jobs: JobsConfig,
    pub memory: MemoryConfig,
    /// Where each variable's value came from, for `mentorfy config`.
    pub origins: BTreeMap<&'static str, ValueOrigin>,
    /// The raw values of optional services (`ANTHROPIC_API_KEY`, …) keyed by variable name.
    raw: BTreeMap<&'static str, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueOrigin {
    Default,
    File,
    Env,
}

impl fmt::Display for ValueOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Default => "default",
            Self::File => "file",
            Self::Env => "env",
        })
    }
}

impl Config {
    /// Reads `mentorfy.toml` (or the file named by `MENTORFY_CONFIG`) if present, then the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_with(&[])
    }

    /// Like [`Config::load`], with command-line flags (`--addr`) taking precedence over the environment,
    /// so a flag can replace a bad environment value before it is validated.
    pub fn load_with(overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        let explicit = std::env::var("MENTORFY_CONFIG").ok().filter(|v| !v.is_empty());
        let path = PathBuf::from(explicit.clone().unwrap_or_else(|| "mentorfy.toml".into()));
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => None,
            Err(e) => return Err(err("MENTORFY_CONFIG", format!("cannot read {}: {e}", path.display()))),
        };
        Self::from_sources(file.as_deref(), |name| {
            overrides.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()).or_else(|| std::env::var(name).ok())
        })
    }

    /// Builds the configuration from an optional TOML text and an environment lookup.
    /// TOML keys are the variable names in lower case without the `MENTORFY_` prefix (`addr`, `database_url`).
    pub fn from_sources(file: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file_values = match file {
            Some(text) => parse_file(text)?,
            None => BTreeMap::new(),
        };
        let mut raw = BTreeMap::new();
        let mut origins = BTreeMap::new();
        for spec in VARS {
            let (value, origin) = match env(spec.name).filter(|v| !v.trim().is_empty()) {
                Some(v) => (v, ValueOrigin::Env),
                None => match file_values.get(spec.name) {
                    Some(v) => (v.clone(), ValueOrigin::File),
                    None => (spec.default.to_owned(), ValueOrigin::Default),
                },
            };
            raw.insert(spec.name, value.trim().to_owned());
            origins.insert(spec.name, origin);
        }
        let get = |name: &str| raw.get(name).cloned().unwrap_or_default();
        let opt = |name: &str| Some(get(name)).filter(|v| !v.is_empty());

        let addr: std::net::SocketAddr = get("MENTORFY_ADDR").parse().map_err(|_| {
            err("MENTORFY_ADDR", format!("'{}' is not a socket address such as 127.0.0.1:8080", get("MENTORFY_ADDR")))
        })?;
        let database_url = get("DATABASE_URL");
        let database_kind = database_kind(&database_url)?;
        let db_max_connections =
            parse_u32("MENTORFY_DB_MAX_CONNECTIONS", &get("MENTORFY_DB_MAX_CONNECTIONS"), 1, 1000)?;
        let log_format = match get("MENTORFY_LOG_FORMAT").as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(err("MENTORFY_LOG_FORMAT", format!("'{other}' is not one of text, json"))),
        };
        let cors_origins = split_list(&get("MENTORFY_CORS_ORIGINS"));
        for origin in &cors_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(err(
                    "MENTORFY_CORS_ORIGINS",
                    format!("'{origin}' is not an origin such as https://app.example.com"),
                ));
            }
        }
        let abandon_after = parse_duration("MENTORFY_ABANDON_AFTER", &get("MENTORFY_ABANDON_AFTER"))?;
        let sweep_interval = parse_duration("MENTORFY_SWEEP_INTERVAL", &get("MENTORFY_SWEEP_INTERVAL"))?;
        let request_timeout = parse_duration("MENTORFY_REQUEST_TIMEOUT", &get("MENTORFY_REQUEST_TIMEOUT"))?;
        let shutdown_timeout = parse_duration("MENTORFY_SHUTDOWN_TIMEOUT", &get("MENTORFY_SHUTDOWN_TIMEOUT"))?;
        let default_country_code = opt("MENTORFY_DEFAULT_COUNTRY_CODE");
        if let Some(cc) = &default_country_code
            && (cc.len() > 3 || !cc.bytes().all(|b| b.is_ascii_digit()) || cc.starts_with('0'))
        {
            return Err(err(
                "MENTORFY_DEFAULT_COUNTRY_CODE",
                format!("'{cc}' is not a country calling code such as 1 or 44"),
            ));
        }
        let jwks_url = opt("CLERK_JWKS_URL");
        if let Some(url) = &jwks_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(err("CLERK_JWKS_URL", format!("'{url}' is not an http(s) URL")));
        }
        let jwt_key_pem = opt("CLERK_JWT_KEY").map(|pem| pem.replace("\\n", "\n"));
        if let Some(pem) = &jwt_key_pem
            && !pem.contains("-----BEGIN PUBLIC KEY-----")
        {
            return Err(err("CLERK_JWT_KEY", "expected a PEM public key (-----BEGIN PUBLIC KEY-----…)"));
        }
        let clerk = ClerkConfig {
            jwt_key_pem,
            jwks_url,
            issuer: opt("CLERK_ISSUER"),
            authorized_parties: split_list(&get("CLERK_AUTHORIZED_PARTIES")),
            secret_key: opt("CLERK_SECRET_KEY").map(Secret::new),
        };
        let admin = parse_admin(&get, &opt)?;
        let sensei = SenseiConfig {
            ingest_rate: parse_rate("SENSEI_INGEST_RATE_LIMIT", &get("SENSEI_INGEST_RATE_LIMIT"))?,
            ingest_burst: parse_u32("SENSEI_INGEST_BURST", &get("SENSEI_INGEST_BURST"), 1, 1_000_000)?,
            analysis_debounce: parse_duration("SENSEI_ANALYSIS_DEBOUNCE", &get("SENSEI_ANALYSIS_DEBOUNCE"))?,
            idle_timeout: parse_duration("SENSEI_IDLE_TIMEOUT", &get("SENSEI_IDLE_TIMEOUT"))?,
            alerts: parse_alerts(&get, &opt, &addr.to_string())?,
            patterns_every: match get("SENSEI_PATTERNS_EVERY").trim() {
                "off" | "0" => None,
                raw => Some(parse_duration("SENSEI_PATTERNS_EVERY", raw)?),
            },
            patterns_window: parse_duration("SENSEI_PATTERNS_WINDOW", &get("SENSEI_PATTERNS_WINDOW"))?,
            rollup_refresh: match get("SENSEI_ROLLUP_REFRESH").trim() {
                "off" | "0" | "0s" => None,
                raw => Some(parse_duration("SENSEI_ROLLUP_REFRESH", raw)?),
            },
            embeddings: parse_bool("FEATURE_EMBEDDINGS", &get("FEATURE_EMBEDDINGS"))?,
            judge: parse_judge(&opt)?,
        };
        if sensei.rollup_refresh.is_some_and(|d| d < Duration::from_secs(1)) {
            return Err(err("SENSEI_ROLLUP_REFRESH", "must be at least 1s (or off)"));
        }
        if sensei.patterns_every.is_some_and(|d| d < Duration::from_secs(60)) {
            return Err(err("SENSEI_PATTERNS_EVERY", "must be at least 1m (or off)"));
        }
        if sensei.patterns_window < Duration::from_secs(3600) {
            return Err(err("SENSEI_PATTERNS_WINDOW", "must be at least 1h"));
        }
        if sensei.embeddings && opt("MENTORFY_EMBED_MODEL").is_none() {
            return Err(err(
                "FEATURE_EMBEDDINGS",
                "is 1 but MENTORFY_EMBED_MODEL is empty: set it to a model2vec folder (e.g. models/potion-base-8M)",
            ));
        }
        if sensei.analysis_debounce > Duration::from_secs(3600) {
            return Err(err("SENSEI_ANALYSIS_DEBOUNCE", "must be at most 1h"));
        }
        let llm = LlmConfig {
            anthropic_api_key: opt("ANTHROPIC_API_KEY").map(Secret::new),
            anthropic_base_url: parse_http_url("ANTHROPIC_BASE_URL", &get("ANTHROPIC_BASE_URL"))?,
            anthropic_version: get("ANTHROPIC_VERSION"),
            anthropic_bearer: match get("ANTHROPIC_AUTH_STYLE").as_str() {
                "x-api-key" => false,
                "bearer" => true,
                other => return Err(err("ANTHROPIC_AUTH_STYLE", format!("'{other}' is not one of x-api-key, bearer"))),
            },
            openai_api_key: opt("OPENAI_API_KEY").map(Secret::new),
            openai_base_url: parse_http_url("OPENAI_BASE_URL", &get("OPENAI_BASE_URL"))?,
            openai_enabled: opt("OPENAI_API_KEY").is_some()
                || origins.get("OPENAI_BASE_URL").is_some_and(|o| *o != ValueOrigin::Default),
            openai_provider_name: get("OPENAI_PROVIDER_NAME"),
            openai_include_usage: parse_bool("OPENAI_INCLUDE_USAGE", &get("OPENAI_INCLUDE_USAGE"))?,
            connect_timeout: parse_duration("MENTORFY_LLM_CONNECT_TIMEOUT", &get("MENTORFY_LLM_CONNECT_TIMEOUT"))?,
            first_token_timeout: parse_duration(
                "MENTORFY_LLM_FIRST_TOKEN_TIMEOUT",
                &get("MENTORFY_LLM_FIRST_TOKEN_TIMEOUT"),
            )?,
            total_timeout: parse_duration("MENTORFY_LLM_TIMEOUT", &get("MENTORFY_LLM_TIMEOUT"))?,
            max_retries: parse_u32("MENTORFY_LLM_MAX_RETRIES", &get("MENTORFY_LLM_MAX_RETRIES"), 0, 10)?,
            prices_file: opt("MENTORFY_PRICES_FILE").map(PathBuf::from),
        };
        if llm.anthropic_version.is_empty() {
            return Err(err("ANTHROPIC_VERSION", "must not be empty (the default is 2023-06-01)"));
        }
        let json = match get("OTEL_EXPORTER_OTLP_PROTOCOL").as_str() {
            "http/protobuf" => false,
            "http/json" => true,
            "grpc" => {
                return Err(err(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    "grpc is not supported; use http/protobuf or http/json (Langfuse accepts both)",
                ));
            }
            other => {
                return Err(err(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    format!("'{other}' is not one of http/protobuf, http/json"),
                ));
            }
        };
        let langfuse = [opt("LANGFUSE_PUBLIC_KEY"), opt("LANGFUSE_SECRET_KEY"), opt("LANGFUSE_HOST")];
        let trace_export = match langfuse {
            [Some(public_key), Some(secret_key), Some(host)] => TraceExport::Langfuse {
                host: parse_http_url("LANGFUSE_HOST", &host)?,
                public_key,
                secret_key: Secret::new(secret_key),
            },
            [None, None, None] => match opt("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(endpoint) => TraceExport::Otlp {
                    endpoint: parse_http_url("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)?,
                    json,
                    headers: opt("OTEL_EXPORTER_OTLP_HEADERS").map(Secret::new),
                },
                None => TraceExport::Off,
            },
            _ => {
                return Err(err(
                    "LANGFUSE_PUBLIC_KEY",
                    "Langfuse needs all three of LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST",
                ));
            }
        };
        let jobs = JobsConfig {
            workers: parse_u32("MENTORFY_WORKERS", &get("MENTORFY_WORKERS"), 0, 1024)?,
            poll_interval: parse_duration("MENTORFY_JOB_POLL_INTERVAL", &get("MENTORFY_JOB_POLL_INTERVAL"))?,
            lease: parse_duration("MENTORFY_JOB_LEASE", &get("MENTORFY_JOB_LEASE"))?,
            max_attempts: parse_u32("MENTORFY_JOB_MAX_ATTEMPTS", &get("MENTORFY_JOB_MAX_ATTEMPTS"), 1, 100)?,
            retry_base: parse_duration("MENTORFY_JOB_RETRY_BASE", &get("MENTORFY_JOB_RETRY_BASE"))?,
        };
        if jobs.poll_interval < Duration::from_millis(10) {
            return Err(err("MENTORFY_JOB_POLL_INTERVAL", "must be at least 10ms"));
        }
        if jobs.retry_base < Duration::from_millis(10) || jobs.retry_base > Duration::from_secs(3600) {
            return Err(err("MENTORFY_JOB_RETRY_BASE", "must be from 10ms to 1h"));
        }
        if jobs.lease < Duration::from_secs(1) {
            return Err(err("MENTORFY_JOB_LEASE", "must be at least 1s (the heartbeat renews it every third of it)"));
        }
        let memory = MemoryConfig {
            embed_model: opt("MENTORFY_EMBED_MODEL").map(PathBuf::from),
            supermemory_api_key: opt("SUPERMEMORY_API_KEY").map(Secret::new),
            supermemory_base_url: parse_http_url("SUPERMEMORY_BASE_URL", &get("SUPERMEMORY_BASE_URL"))?,
            knowledge_dir: opt("MENTORFY_KNOWLEDGE_DIR").map(PathBuf::from),
            token_budget: parse_u32("MENTORFY_MEMORY_TOKEN_BUDGET", &get("MENTORFY_MEMORY_TOKEN_BUDGET"), 0, 100_000)?,
        };
        Ok(Self {
            jobs,
            memory,
            llm,
            agents_dir: opt("MENTORFY_AGENTS_DIR").map(PathBuf::from),
            chat_history_turns: parse_u32("MENTORFY_CHAT_HISTORY_TURNS", &get("MENTORFY_CHAT_HISTORY_TURNS"), 0, 500)?,
            sse_keepalive: parse_duration("MENTORFY_SSE_KEEPALIVE", &get("MENTORFY_SSE_KEEPALIVE"))?,
            trace_export,
            otel_service_name: get("OTEL_SERVICE_NAME"),
            trace_content: parse_bool("MENTORFY_TRACE_CONTENT", &get("MENTORFY_TRACE_CONTENT"))?,
            addr,
            database_url: Secret::new(database_url),
            database_kind,
            db_max_connections,
            log_filter: get("MENTORFY_LOG"),
            log_format,
            cors_origins,
            abandon_after,
            sweep_interval,
            request_timeout,
            shutdown_timeout,
            orgs_dir: opt("MENTORFY_ORGS_DIR").map(PathBuf::from),
            default_country_code,
            clerk,
            admin,
            sensei,
            origins,
            raw,
        })
    }

    /// The value of any variable in [`VARS`], `None` when unset.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.raw.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Every variable with its effective value as it may be shown to an operator: secrets as `[redacted]`,
    /// passwords inside URLs replaced.
    pub fn redacted(&self) -> Vec<(&'static str, String, ValueOrigin)> {
        VARS.iter()
            .map(|spec| {
                let value = self.value(spec.name).unwrap_or("");
                let shown = if value.is_empty() {
                    "(unset)".to_owned()
                } else if spec.secret {
                    "[redacted]".to_owned()
                } else if spec.name == "CLERK_JWT_KEY" {
                    "(PEM public key set)".to_owned()
                } else {
                    redact_url_password(value)
                };
                let origin = self.origins.get(spec.name).copied().unwrap_or(ValueOrigin::Default);
                (spec.name, shown, origin)
            })
            .collect()
    }

    /// Optional services and whether each is enabled, with the variables that enable it.
    pub fn features(&self) -> Vec<(&'static str, bool, &'static str)> {
        let set = |n: &str| self.value(n).is_some();
        vec![
            ("clerk sign-in linking", self.clerk.is_configured(), "CLERK_JWT_KEY or CLERK_JWKS_URL"),
            (
                "supabase admin sign-in",
                set("SUPABASE_URL") || set("SUPABASE_JWT_SECRET"),
                "SUPABASE_URL or SUPABASE_JWT_SECRET",
            ),
            ("anthropic provider", set("ANTHROPIC_API_KEY"), "ANTHROPIC_API_KEY"),
            ("openai-compatible provider", self.llm.openai_enabled, "OPENAI_API_KEY or OPENAI_BASE_URL"),
            ("otlp trace export", matches!(self.trace_export, TraceExport::Otlp { .. }), "OTEL_EXPORTER_OTLP_ENDPOINT"),
            ("supermemory", set("SUPERMEMORY_API_KEY"), "SUPERMEMORY_API_KEY"),
            (
                "langfuse traces",
                set("LANGFUSE_PUBLIC_KEY") && set("LANGFUSE_SECRET_KEY") && set("LANGFUSE_HOST"),
                "LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST",
            ),
            ("posthog analytics", set("POSTHOG_API_KEY"), "POSTHOG_API_KEY"),
            ("redis shared rate limits", set("REDIS_URL"), "REDIS_URL"),
        ]
    }
}

/// The text of `.env.example`: every variable, its help and its default. `mentorfy config --env-example`
/// prints it; a test keeps the committed file identical.
pub fn env_example() -> String {
    let mut out = String::from(
        "# Mentorfy configuration. Every variable is optional: with none set, Mentorfy runs on SQLite in ./data.\n\
         # Generated by `mentorfy config --env-example`; values shown are the defaults.\n\
         # The same keys work in mentorfy.toml in lower case without the MENTORFY_ prefix (addr = \"0.0.0.0:8080\").\n",
    );
    for spec in VARS {
        out.push('\n');
        out.push_str(&format!("# {}\n", spec.help.replace('`', "")));
        out.push_str(&format!("{}={}\n", spec.name, spec.default));
    }
    out
}

fn parse_file(text: &str) -> Result<BTreeMap<&'static str, String>, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| err("MENTORFY_CONFIG", format!("mentorfy.toml: {e}")))?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        let spec = VARS
            .iter()
            .find(|s| s.name.trim_start_matches("MENTORFY_").eq_ignore_ascii_case(&key))
            .ok_or_else(|| err("MENTORFY_CONFIG", format!("mentorfy.toml: unknown key '{key}'")))?;
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))
                .collect::<Vec<_>>()
                .join(","),
            other => return Err(err(spec.name, format!("mentorfy.toml: '{key}' cannot be {}", other.type_str()))),
        };
        out.insert(spec.name, text);
    }
    Ok(out)
}

fn database_kind(url: &str) -> Result<DatabaseKind, ConfigError> {
    if url.starts_with("sqlite:") {
        Ok(DatabaseKind::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DatabaseKind::Postgres)
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(err("DATABASE_URL", format!("unsupported scheme '{scheme}': use sqlite://PATH or postgres://…")))
    }
}

fn parse_alerts(
    get: &dyn Fn(&str) -> String,
    opt: &dyn Fn(&str) -> Option<String>,
    addr: &str,
) -> Result<AlertConfig, ConfigError> {
    let slack = opt("SLACK_WEBHOOK_URL");
    if let Some(url) = &slack
        && !url.starts_with("https://")
    {
        return Err(err("SLACK_WEBHOOK_URL", "must be an https:// URL (https://hooks.slack.com/services/…)"));
    }
    let severity = get("SENSEI_ALERT_MIN_SEVERITY").trim().to_ascii_lowercase();
    let min_severity = match severity.as_str() {
        "off" | "" => None,
        "low" | "medium" | "high" | "critical" => Some(severity),
        other => {
            return Err(err(
                "SENSEI_ALERT_MIN_SEVERITY",
                format!("'{other}' is not low, medium, high, critical or off"),
            ));
        }
    };
    let health_below: f64 = get("SENSEI_ALERT_HEALTH_BELOW")
        .trim()
        .parse()
        .ok()
        .filter(|h: &f64| (0.0..=100.0).contains(h))
        .ok_or_else(|| err("SENSEI_ALERT_HEALTH_BELOW", "must be a number from 0 to 100"))?;
    let rate = get("SENSEI_ALERT_FAILURE_RATE");
    let failure_rate = if rate.trim().eq_ignore_ascii_case("off") || rate.trim().is_empty() {
        None
    } else {
        let bad = || err("SENSEI_ALERT_FAILURE_RATE", format!("'{rate}' is not SHARE/WINDOW such as 0.25/1h, or off"));
        let (share, window) = rate.split_once('/').ok_or_else(bad)?;
        let share: f64 = share.trim().parse().map_err(|_| bad())?;
        if !(share > 0.0 && share <= 1.0) {
            return Err(bad());
        }
        let window = parse_duration("SENSEI_ALERT_FAILURE_RATE", window.trim())?;
        if window.is_zero() {
            return Err(bad());
        }
        Some((share, window))
    };
    let public_url = opt("SENSEI_PUBLIC_URL").unwrap_or_else(|| format!("http://{addr}"));
    if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
        return Err(err("SENSEI_PUBLIC_URL", "must be an http(s) URL"));
    }
    Ok(AlertConfig {
        slack_webhook_url: slack.map(Secret::new),
        min_severity,
        health_below,
        failure_rate,
        public_url: public_url.trim_end_matches('/').to_owned(),
    })
}

fn parse_admin(get: &dyn Fn(&str) -> String, opt: &dyn Fn(&str) -> Option<String>) -> Result<AdminConfig, ConfigError> {
    let api_key_pepper = opt("SENSEI_API_KEY_PEPPER");
    if let Some(pepper) = &api_key_pepper
        && pepper.len() < 32
    {
        return Err(err("SENSEI_API_KEY_PEPPER", "must be at least 32 characters (use 32 random bytes, hex-encoded)"));
    }
    let token_ttl = parse_duration("MENTORFY_ADMIN_TOKEN_TTL", &get("MENTORFY_ADMIN_TOKEN_TTL"))?;
    if token_ttl < Duration::from_secs(60) || token_ttl > Duration::from_secs(30 * 86_400) {
        return Err(err("MENTORFY_ADMIN_TOKEN_TTL", "must be between 1m and 30d"));
    }
    let (login_attempts, login_window) = parse_rate("MENTORFY_LOGIN_RATE_LIMIT", &get("MENTORFY_LOGIN_RATE_LIMIT"))?;
    let supabase_url = opt("SUPABASE_URL").map(|u| u.trim_end_matches('/').to_owned());
    if let Some(url) = &supabase_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(err("SUPABASE_URL", format!("'{url}' is not an http(s) URL")));
    }
    Ok(AdminConfig {
        admin_emails: split_list(&get("SENSEI_ADMIN_EMAILS")).into_iter().map(|e| e.to_lowercase()).collect(),
        api_key_pepper: api_key_pepper.map(Secret::new),
        token_ttl,
        login_attempts,
        login_window,
        supabase_url,
        supabase_jwt_secret: opt("SUPABASE_JWT_SECRET").map(Secret::new),
    })
}

/// `COUNT/WINDOW`, such as `10/15m`.
pub fn parse_rate(var: &str, raw: &str) -> Result<(u32, Duration), ConfigError> {
    let bad = || err(var, format!("'{raw}' is not a rate such as 10/15m (count per window)"));
    let (count, window) = raw.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let window = parse_duration(var, window.trim())?;
    if count == 0 || window.is_zero() {
        return Err(bad());
    }
    Ok((count, window))
}

fn parse_u32(var: &str, raw: &str, min: u32, max: u32) -> Result<u32, ConfigError> {
    match raw.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(err(var, format!("'{raw}' is not a whole number from {min} to {max}"))),
    }
}

/// `250ms`, `30s`, `15m`, `12h`, `7d`; a bare number is seconds.
pub fn parse_duration(var: &str, raw: &str) -> Result<Duration, ConfigError> {
    let bad = || err(var, format!("'{raw}' is not a duration such as 30s, 15m, 12h or 7d"));
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (num, unit) = raw.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = |mult: u64| n.checked_mul(mult).map(Duration::from_secs).ok_or_else(bad);
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(bad()),
    }
}

fn parse_judge(opt: &dyn Fn(&str) -> Option<String>) -> Result<Option<JudgeConfig>, ConfigError> {
    let Some(raw) = opt("SENSEI_JUDGE_MODEL") else {
        if opt("SENSEI_JUDGE_PROMPT_FILE").is_some() {
            return Err(err("SENSEI_JUDGE_PROMPT_FILE", "is set but SENSEI_JUDGE_MODEL is empty"));
        }
        return Ok(None);
    };
    let bad = || err("SENSEI_JUDGE_MODEL", format!("'{raw}' is not PROVIDER:MODEL with PROVIDER anthropic or openai"));
    let (provider, model) = raw.split_once(':').ok_or_else(bad)?;
    let (provider, model) = (provider.trim().to_ascii_lowercase(), model.trim().to_owned());
    if !matches!(provider.as_str(), "anthropic" | "openai") || model.is_empty() {
        return Err(bad());
    }
    let prompt = match opt("SENSEI_JUDGE_PROMPT_FILE") {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| err("SENSEI_JUDGE_PROMPT_FILE", format!("cannot read {path}: {e}")))?;
            if text.trim().is_empty() {
                return Err(err("SENSEI_JUDGE_PROMPT_FILE", format!("{path} is empty")));
            }
            Some(text)
        }
        None => None,
    };
    Ok(Some(JudgeConfig { provider, model, prompt }))
}

fn parse_bool(var: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(err(var, format!("'{raw}' is not true or false"))),
    }
}

/// An `http(s)://` URL without a trailing slash.
fn parse_http_url(var: &str, raw: &str) -> Result<String, ConfigError> {
    let rest = raw.strip_prefix("https://").or_else(|| raw.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(raw.trim_end_matches('/').to_owned()),
        _ => Err(err(var, format!("'{raw}' is not an http(s) URL"))),
    }
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// `postgres://user:pw@host/db?password=x` → `postgres://user:[redacted]@host/db?password=[redacted]`.
/// Redacts the password of the authority and any query parameter that names a credential.
pub fn redact_url_password(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else { return value.to_owned() };
    let (scheme, rest) = value.split_at(scheme_end + 3);
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // The userinfo ends at the last '@' before the query (a raw '/' in a password must not hide it).
    let mut out = String::from(scheme);
    match before_query.rfind('@') {
        Some(at) => {
            let userinfo = &before_query[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:[redacted]")),
                None => out.push_str(userinfo),
            }
            out.push_str(&before_query[at..]);
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_credential_param(k) => format!("{k}=[redacted]"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

fn is_credential_param(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "pass", "pwd", "secret", "token", "key", "sslpassword"]
        .iter()
        .any(|c| k == *c || k.ends_with(&format!("_{c}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn defaults_need_no_environment() {
        let c = Config::from_sources(None, env(&[])).expect("defaults are valid");
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_kind, DatabaseKind::Sqlite);
        assert_eq!(c.abandon_after, Duration::from_secs(7 * 86_400));
        assert!(!c.clerk.is_configured());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("MENTORFY_ADDR", "not-an-addr"),
            ("DATABASE_URL", "mysql://x"),
            ("MENTORFY_ABANDON_AFTER", "7 weeks"),
            ("MENTORFY_LOG_FORMAT", "xml"),
            ("MENTORFY_DB_MAX_CONNECTIONS", "0"),
            ("CLERK_JWKS_URL", "ftp://x"),
            ("MENTORFY_CORS_ORIGINS", "localhost:3000"),
        ] {
            let e = Config::from_sources(None, env(&[(var, value)])).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.starts_with(&format!("{var}: ")), "{var}={value} gave {e:?}");
        }
    }

    #[test]
    fn environment_beats_file_beats_default() {
        let file = "addr = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://f.db\"\ncors_origins = [\"https://a.example\", \"https://b.example\"]\n";
        let c = Config::from_sources(Some(file), env(&[("MENTORFY_ADDR", "127.0.0.1:9001")])).ok();
        let c = c.map(|c| {
            (
                c.addr.to_string(),
                c.origins["MENTORFY_ADDR"],
                c.value("DATABASE_URL").map(str::to_owned),
                c.cors_origins.len(),
            )
        });
        assert_eq!(c, Some(("127.0.0.1:9001".into(), ValueOrigin::Env, Some("sqlite://f.db".into()), 2)));
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let e =
            Config::from_sources(Some("adress = \"x\"\n"), env(&[])).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("unknown key 'adress'"), "{e}");
    }

    #[test]
    fn redacted_output_hides_secrets_and_url_passwords() {
        let c = Config::from_sources(
            None,
            env(&[
                ("ANTHROPIC_API_KEY", "sk-ant-secret"),
                ("DATABASE_URL", "postgres://app:hunter2@db.example:5432/app"),
            ]),
        )
        .ok();
        let shown = c.map(|c| format!("{:?}", c.redacted())).unwrap_or_default();
        assert!(!shown.contains("sk-ant-secret") && !shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://app:[redacted]@db.example:5432/app"), "{shown}");
    }

    #[test]
    fn url_passwords_are_redacted_wherever_they_are() {
        assert_eq!(
            redact_url_password("postgres://app@db/app?password=hunter2&sslmode=require"),
            "postgres://app@db/app?password=[redacted]&sslmode=require"
        );
        assert_eq!(redact_url_password("postgres://app:pa/ss@host/db"), "postgres://app:[redacted]@host/db");
        assert_eq!(redact_url_password("redis://:s3cret@127.0.0.1:6379/0"), "redis://:[redacted]@127.0.0.1:6379/0");
        assert_eq!(redact_url_password("sqlite://data/mentorfy.db"), "sqlite://data/mentorfy.db");
    }

    #[test]
    fn env_example_file_documents_every_variable_with_its_default() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.env.example");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            committed,
            env_example(),
            ".env.example is stale: run `cargo run -- config --env-example > .env.example`"
        );
    }

    #[test]
    fn readme_configuration_table_names_every_variable() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(path).unwrap_or_default();
        for spec in VARS {
            assert!(readme.contains(&format!("`{}`", spec.name)), "README.md does not document {}", spec.name);
        }
    }

    #[test]
    fn llm_and_trace_settings_are_validated_at_start_up() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert!(c.llm.anthropic_api_key.is_none() && !c.llm.openai_enabled);
        assert!(matches!(c.trace_export, TraceExport::Off));
        assert_eq!(c.llm.anthropic_version, "2023-06-01");

        // A local OpenAI-compatible server needs no key: its URL enables it.
        let c = Config::from_sources(None, env(&[("OPENAI_BASE_URL", "http://localhost:11434/v1/")])).unwrap();
        assert!(c.llm.openai_enabled);
        assert_eq!(c.llm.openai_base_url, "http://localhost:11434/v1");

        let c = Config::from_sources(
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ]),
        )
        .unwrap();
        assert!(matches!(c.trace_export, TraceExport::Otlp { json: true, .. }));
        // Langfuse wins over a generic endpoint when all three of its variables are set.
        let c = Config::from_sources(
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
                ("LANGFUSE_SECRET_KEY", "sk-lf-1"),
                ("LANGFUSE_HOST", "https://cloud.langfuse.com"),
            ]),
        )
        .unwrap();
        assert!(matches!(c.trace_export, TraceExport::Langfuse { .. }));

        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")], "OTEL_EXPORTER_OTLP_PROTOCOL"),
            (&[("LANGFUSE_PUBLIC_KEY", "pk-lf-1")], "LANGFUSE_PUBLIC_KEY"),
            (&[("ANTHROPIC_BASE_URL", "api.anthropic.com")], "ANTHROPIC_BASE_URL"),
            (&[("ANTHROPIC_AUTH_STYLE", "basic")], "ANTHROPIC_AUTH_STYLE"),
            (&[("OPENAI_INCLUDE_USAGE", "maybe")], "OPENAI_INCLUDE_USAGE"),
            (&[("MENTORFY_LLM_MAX_RETRIES", "11")], "MENTORFY_LLM_MAX_RETRIES"),
            (&[("MENTORFY_LLM_FIRST_TOKEN_TIMEOUT", "soon")], "MENTORFY_LLM_FIRST_TOKEN_TIMEOUT"),
        ];
        for (vars, named) in cases {
            let e = Config::from_sources(None, env(vars)).expect_err("refused");
            assert_eq!(e.var, *named, "{e}");
        }
    }

    #[test]
    fn job_and_memory_settings_have_defaults_and_are_validated() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!(c.jobs.workers, 4);
        assert_eq!(c.jobs.poll_interval, Duration::from_secs(1));
        assert_eq!(c.jobs.lease, Duration::from_secs(60));
        assert_eq!(c.jobs.max_attempts, 8);
        assert!(c.memory.embed_model.is_none() && c.memory.knowledge_dir.is_none());
        assert!(c.memory.supermemory_api_key.is_none());
        assert_eq!(c.memory.supermemory_base_url, "https://api.supermemory.ai");
        assert_eq!(c.memory.token_budget, 1200);

        let c = Config::from_sources(
            None,
            env(&[
                ("MENTORFY_WORKERS", "0"),
                ("MENTORFY_JOB_POLL_INTERVAL", "250ms"),
                ("MENTORFY_JOB_LEASE", "2m"),
                ("MENTORFY_JOB_MAX_ATTEMPTS", "3"),
                ("MENTORFY_EMBED_MODEL", "models/potion-base-8M"),
                ("SUPERMEMORY_API_KEY", "sm-secret"),
                ("SUPERMEMORY_BASE_URL", "http://127.0.0.1:9999/"),
                ("MENTORFY_KNOWLEDGE_DIR", "knowledge"),
                ("MENTORFY_MEMORY_TOKEN_BUDGET", "500"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (c.jobs.workers, c.jobs.poll_interval, c.jobs.lease, c.jobs.max_attempts),
            (0, Duration::from_millis(250), Duration::from_secs(120), 3)
        );
        assert_eq!(c.memory.embed_model, Some(PathBuf::from("models/potion-base-8M")));
        assert_eq!(c.memory.supermemory_api_key.as_ref().map(Secret::expose), Some("sm-secret"));
        assert_eq!(c.memory.supermemory_base_url, "http://127.0.0.1:9999");
        assert_eq!(c.memory.knowledge_dir, Some(PathBuf::from("knowledge")));
        assert_eq!(c.memory.token_budget, 500);
        assert!(!format!("{:?} {:?}", c.memory, c.redacted()).contains("sm-secret"));

        let cases: &[(&str, &str)] = &[
            ("MENTORFY_WORKERS", "-1"),
            ("MENTORFY_WORKERS", "many"),
            ("MENTORFY_JOB_POLL_INTERVAL", "0s"),
            ("MENTORFY_JOB_LEASE", "500ms"),
            ("MENTORFY_JOB_MAX_ATTEMPTS", "0"),
            ("SUPERMEMORY_BASE_URL", "api.supermemory.ai"),
            ("MENTORFY_MEMORY_TOKEN_BUDGET", "lots"),
        ];
        for (var, value) in cases {
            let e = Config::from_sources(None, env(&[(var, value)])).expect_err("refused");
            assert_eq!(e.var, *var, "{var}={value}: {e}");
        }
    }

    #[test]
    fn pattern_settings_default_weekly_and_embeddings_need_a_model() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!(c.sensei.patterns_every, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(c.sensei.patterns_window, Duration::from_secs(30 * 86_400));
        assert!(!c.sensei.embeddings);
        let c = Config::from_sources(None, env(&[("SENSEI_PATTERNS_EVERY", "off")])).unwrap();
        assert_eq!(c.sensei.patterns_every, None);
        let c = Config::from_sources(
            None,
            env(&[("FEATURE_EMBEDDINGS", "1"), ("MENTORFY_EMBED_MODEL", "models/potion-base-8M")]),
        )
        .unwrap();
        assert!(c.sensei.embeddings);
        assert!(c.sensei.judge.is_none());
        let c = Config::from_sources(None, env(&[("SENSEI_JUDGE_MODEL", "Anthropic:claude-haiku-4-5")])).unwrap();
        let judge = c.sensei.judge.unwrap();
        assert_eq!(
            (judge.provider.as_str(), judge.model.as_str(), judge.prompt),
            ("anthropic", "claude-haiku-4-5", None)
        );
        for (vars, named) in [
            (&[("SENSEI_JUDGE_MODEL", "claude-haiku-4-5")][..], "SENSEI_JUDGE_MODEL"),
            (&[("SENSEI_JUDGE_MODEL", "gemini:pro")][..], "SENSEI_JUDGE_MODEL"),
            (&[("SENSEI_JUDGE_PROMPT_FILE", "judge.md")][..], "SENSEI_JUDGE_PROMPT_FILE"),
            (
                &[("SENSEI_JUDGE_MODEL", "openai:gpt-4o-mini"), ("SENSEI_JUDGE_PROMPT_FILE", "/nonexistent/judge.md")]
                    [..],
                "SENSEI_JUDGE_PROMPT_FILE",
            ),
            (&[("FEATURE_EMBEDDINGS", "1")][..], "FEATURE_EMBEDDINGS"),
            (&[("FEATURE_EMBEDDINGS", "sometimes")][..], "FEATURE_EMBEDDINGS"),
            (&[("SENSEI_PATTERNS_EVERY", "10s")][..], "SENSEI_PATTERNS_EVERY"),
            (&[("SENSEI_PATTERNS_WINDOW", "5m")][..], "SENSEI_PATTERNS_WINDOW"),
        ] {
            let e = Config::from_sources(None, env(vars)).expect_err("refused");
            assert_eq!(e.var, named, "{e}");
        }
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("X", "10/15m").ok(), Some((10, Duration::from_secs(900))));
        assert!(parse_rate("X", "10").is_err());
        assert!(parse_rate("X", "0/1m").is_err());
        assert!(parse_rate("X", "5/soon").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("X", "250ms").ok(), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("X", "90").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("X", "12h").ok(), Some(Duration::from_secs(43_200)));
        assert!(parse_duration("X", "h").is_err());
        assert!(parse_duration("X", "-1s").is_err());
    }
}
