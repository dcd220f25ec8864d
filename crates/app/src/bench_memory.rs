//! `mentorfy bench memory --locomo FILE` (issue 4).

use clap::Args;
use mentorfy_core::Config;

#[derive(Args, Debug)]
pub struct BenchMemoryArgs {}

pub async fn run(_config: Config, _args: BenchMemoryArgs) -> anyhow::Result<()> {
    anyhow::bail!("mentorfy bench memory is being built (issue 4)")
}
