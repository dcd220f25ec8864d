//! Command-line shape of `mentorfy` (clap). `--help` works on every command.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

/// Mentorfy: AI-mentor sessions and conversation intelligence in one binary.
///
/// Configuration comes from the environment (see .env.example) and an optional mentorfy.toml;
/// with none, it runs on SQLite in ./data.
#[derive(Parser, Debug)]
#[command(name = "mentorfy", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server (the default when no command is given).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the effective configuration with secrets redacted, and which optional features are on.
    Config(ConfigArgs),
    /// Run background job workers only (no HTTP server); `mentorfy serve` also runs them unless disabled.
    Worker(crate::jobs_cli::WorkerArgs),
    /// Show the job queue: counts per queue and state, and the latest dead jobs.
    Jobs(crate::jobs_cli::JobsArgs),
    /// Manage local admin accounts (sign-in for the admin API).
    Admin(crate::admin_cli::AdminArgs),
    /// Manage project API keys (for the ingestion API).
    Keys(crate::admin_cli::KeysArgs),
    /// Load generated demo conversations (support, coaching, sales; happy paths and failures) through the real
    /// ingestion API, so a fresh install shows a living dashboard.
    SeedDemo(crate::seed_demo::SeedDemoArgs),
    /// Usage patterns: cluster conversations by what users came for (`run`), or show the latest (`list`).
    Patterns(crate::patterns_cli::PatternsArgs),
    /// Run a benchmark against a server started in this process.
    #[command(subcommand)]
    Bench(BenchCommand),
}

impl Default for Command {
    fn default() -> Self {
        Command::Serve(ServeArgs { addr: None })
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (overrides MENTORFY_ADDR).
    #[arg(long)]
    pub addr: Option<SocketAddr>,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Print as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Print a documented `.env.example` with every variable and its default instead.
    #[arg(long, conflicts_with = "json")]
    pub env_example: bool,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Load-test the session endpoints (create, PATCH with context, GET) at a fixed request rate.
    Sessions(BenchSessionsArgs),
    /// Retrieval quality and speed of the memory engine on LoCoMo: recall@k per category, search latency.
    Memory(crate::bench_memory::BenchMemoryArgs),
    /// Ingestion throughput (messages/s) and ack latency, batched and single-message, N concurrent clients.
    Ingest(crate::bench_ingest::BenchIngestArgs),
    /// Health scores and failure flags against human labels (USS satisfaction, DBDC breakdowns), through the
    /// real ingestion and analysis pipeline; and the pipeline's speed.
    Health(crate::bench_health::BenchHealthArgs),
    /// Read-endpoint latency (p50/p95/p99 per path) against an already running server, closed loop, with an
    /// admin token as bearer and session cookie.
    Read(crate::bench_read::BenchReadArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BenchSessionsArgs {
    /// Database to benchmark: `sqlite` (a fresh temp file) or a postgres:// URL (a fresh schema is made and
    /// dropped). Defaults to a fresh SQLite file.
    #[arg(long, default_value = "sqlite")]
    pub database: String,
    /// Target requests per second (open loop: requests are sent on schedule whether or not earlier ones returned).
    #[arg(long, default_value_t = 2000)]
    pub rate: u32,
    /// Measured duration in seconds (after a warm-up of a fifth of it).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Sessions created before the run, which PATCH and GET pick from.
    #[arg(long, default_value_t = 1000)]
    pub sessions: u32,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}
