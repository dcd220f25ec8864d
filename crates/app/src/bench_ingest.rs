//! `mentorfy bench ingest`: ingestion throughput and ack latency.

use clap::Args;
use mentorfy_core::Config;

#[derive(Args, Debug, Clone)]
pub struct BenchIngestArgs {
    /// Database to benchmark: `sqlite` (a fresh temp file) or a postgres:// URL.
    #[arg(long, default_value = "sqlite")]
    pub database: String,
}

pub async fn run(_config: Config, _args: BenchIngestArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench ingest is being written")
}
