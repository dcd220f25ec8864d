//! `mentorfy seed-demo`: generated demo conversations loaded through the real ingestion API.

use clap::Args;
use mentorfy_core::Config;

#[derive(Args, Debug, Clone)]
pub struct SeedDemoArgs {
    /// How many conversations to generate.
    #[arg(long, default_value_t = 200)]
    pub conversations: usize,
}

pub async fn run(_config: Config, _args: SeedDemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("seed-demo is being written")
}
