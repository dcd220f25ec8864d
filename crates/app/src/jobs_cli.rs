//! `mentorfy worker` (job workers without the HTTP server) and `mentorfy jobs` (the queue at a glance).
//! Wiring only: the runtime is `mentorfy-jobs`, the queries are in the store.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use mentorfy_core::Config;
use mentorfy_store::{Job, Store};

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Jobs run at once (overrides MENTORFY_WORKERS; at least 1).
    #[arg(long)]
    pub concurrency: Option<usize>,
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    /// Print as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// How many of the latest dead jobs to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub dead: u64,
}

/// Runs job workers until SIGINT/SIGTERM, then stops them gracefully (running jobs get
/// MENTORFY_SHUTDOWN_TIMEOUT, then are released back to pending).
pub async fn worker(config: Config, args: WorkerArgs) -> anyhow::Result<()> {
    let concurrency = args.concurrency.unwrap_or(usize::try_from(config.jobs.workers).unwrap_or(1)).max(1);
    let state = mentorfy_web::prepare(Arc::new(config)).await?;
    let workers = mentorfy_web::server::start_workers(&state, concurrency);
    tracing::info!(concurrency, "mentorfy worker is running; stop with Ctrl-C or SIGTERM");
    crate::shutdown_signal().await;
    tracing::info!("shutdown requested: finishing running jobs");
    workers.shutdown().await;
    state.store().close().await;
    Ok(())
}

/// Prints job counts per queue and state, and the latest dead jobs.
pub async fn jobs(config: Config, args: JobsArgs) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose(), 2).await.context("DATABASE_URL")?;
    store.migrate().await?;
    let counts = store.job_counts().await?;
    let dead = store.dead_jobs(args.dead).await?;
    let rollups = store.rollup_status().await?;
    store.close().await;
    let refreshed = rollups.refreshed_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    if args.json {
        let counts: Vec<_> = counts
            .iter()
            .map(|(queue, state, n)| serde_json::json!({"queue": queue, "state": state.as_str(), "count": n}))
            .collect();
        let dead: Vec<_> = dead.iter().map(dead_json).collect();
        let rollups = serde_json::json!({
            "watermark": rollups.watermark,
            "refreshed_at": refreshed,
            "stale_hours": rollups.stale_hours,
        });
        println!("{}", serde_json::json!({"counts": counts, "dead": dead, "rollups": rollups}));
        return Ok(());
    }
    if counts.is_empty() {
        println!("no jobs");
    } else {
        let qw = counts.iter().map(|(q, _, _)| q.len()).max().unwrap_or(0).max("QUEUE".len());
        println!("{:<qw$}  {:<7}  {:>7}", "QUEUE", "STATE", "COUNT");
        for (queue, state, n) in &counts {
            println!("{queue:<qw$}  {:<7}  {n:>7}", state.as_str());
        }
    }
    match &refreshed {
        Some(at) => println!(
            "\nanalytics rollups: hours before {} UTC computed (refreshed {at}); {} hour(s) marked stale since",
            rollups.watermark, rollups.stale_hours
        ),
        None => println!("\nanalytics rollups: not computed yet (a running `mentorfy serve` refreshes them)"),
    }
    if !dead.is_empty() {
        println!();
        println!("latest dead jobs:");
        for job in &dead {
            println!(
                "{}  {}  attempts={}  {}  {}",
                job.id,
                job.kind,
                job.attempts,
                when(job),
                one_line(job.last_error.as_deref().unwrap_or("(no error recorded)"), 200)
            );
        }
    }
    Ok(())
}

fn dead_json(job: &Job) -> serde_json::Value {
    serde_json::json!({
        "id": job.id.to_string(),
        "queue": job.queue,
        "kind": job.kind,
        "attempts": job.attempts,
        "error": job.last_error,
        "finishedAt": when(job),
    })
}

fn when(job: &Job) -> String {
    job.finished_at.unwrap_or(job.updated_at).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The first `max` characters of `text` on one line.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() > max { format!("{}…", flat.chars().take(max).collect::<String>()) } else { flat }
}
