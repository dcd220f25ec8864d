//! `mentorfy worker` and `mentorfy jobs` (issue 4).

use clap::Args;
use mentorfy_core::Config;

#[derive(Args, Debug)]
pub struct WorkerArgs {}

#[derive(Args, Debug)]
pub struct JobsArgs {}

pub async fn worker(_config: Config, _args: WorkerArgs) -> anyhow::Result<()> {
    anyhow::bail!("mentorfy worker is being built (issue 4)")
}

pub async fn jobs(_config: Config, _args: JobsArgs) -> anyhow::Result<()> {
    anyhow::bail!("mentorfy jobs is being built (issue 4)")
}
