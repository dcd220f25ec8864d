//! `mentorfy patterns run` (cluster what users came for now, on this install's database) and `mentorfy patterns
//! list` (the latest run's patterns). Wiring and printing only: the analysis is `mentorfy_sensei::patterns`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mentorfy_core::Config;
use mentorfy_memory::Embedder;
use mentorfy_sensei::patterns::{ClusterParams, Patterns, RunOptions, Stage, Trigger};
use mentorfy_store::{Store, UsagePatternRow};
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct PatternsArgs {
    #[command(subcommand)]
    pub command: PatternsCommand,
}

#[derive(Subcommand, Debug)]
pub enum PatternsCommand {
    /// Cluster the conversations of the window by what users came for and store the patterns (replacing the
    /// current ones; the last 8 runs are kept).
    Run(RunArgs),
    /// Print the patterns of the latest run.
    List(ListArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Conversations that started within this window (e.g. 7d, 30d; default SENSEI_PATTERNS_WINDOW).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// At most this many of the most recent conversations of the window.
    #[arg(long, default_value_t = 50_000)]
    pub max_conversations: u64,
    /// Least average similarity of a conversation to a pattern's members (0–1); higher: tighter, more
    /// unclustered.
    #[arg(long, default_value_t = ClusterParams::default().threshold)]
    pub threshold: f64,
    /// Conversations clustered to discover patterns (the rest are assigned to them).
    #[arg(long, default_value_t = ClusterParams::default().sample)]
    pub sample: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn patterns(config: Config, args: PatternsArgs) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose(), 2).await.context("DATABASE_URL")?;
    store.migrate().await?;
    match args.command {
        PatternsCommand::Run(a) => run(&config, store, a).await,
        PatternsCommand::List(a) => list(store, a.json).await,
    }
}

async fn run(config: &Config, store: Store, args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!((0.0..=1.0).contains(&args.threshold), "--threshold must be between 0 and 1");
    anyhow::ensure!(args.sample >= 2, "--sample must be at least 2");
    let window = match &args.window {
        Some(w) => mentorfy_core::config::parse_duration("--window", w)?,
        None => config.sensei.patterns_window,
    };
    let embedder = match (&config.memory.embed_model, config.sensei.embeddings) {
        (Some(path), true) => Some(Arc::new(
            Embedder::load(path).with_context(|| format!("MENTORFY_EMBED_MODEL: cannot load {}", path.display()))?,
        )),
        _ => None,
    };
    let params = ClusterParams { threshold: args.threshold, sample: args.sample, ..ClusterParams::default() };
    let options = RunOptions { window, max_conversations: args.max_conversations, params, trigger: Trigger::Manual };
    let patterns = Patterns::new(store.clone(), embedder);
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}")?);
    bar.enable_steady_tick(Duration::from_millis(120));
    let progress = {
        let bar = bar.clone();
        move |stage: Stage| {
            bar.set_message(match stage {
                Stage::Reading => "reading conversations".to_owned(),
                Stage::Embedding { done, total } => format!("embedding openings {done}/{total}"),
                Stage::Clustering => "clustering".to_owned(),
                Stage::Saving => "saving patterns".to_owned(),
            });
        }
    };
    let summary = patterns.run(&options, &progress).await?;
    bar.finish_and_clear();
    let rows = match summary.run_id {
        Some(id) => store.list_patterns(id).await?,
        None => Vec::new(),
    };
    let report = json!({
        "run_id": summary.run_id,
        "conversations": summary.conversations,
        "unclustered": summary.unclustered,
        "embedded": summary.embedded,
        "representation": summary.representation,
        "patterns": rows.iter().map(pattern_json).collect::<Vec<_>>(),
    });
    if args.json {
        println!("{report}");
    } else {
        if summary.conversations == 0 {
            println!(
                "No conversations started in the last {}. Ingest some (or run `mentorfy seed-demo`) and try again.",
                humantime(window)
            );
            return Ok(());
        }
        println!(
            "{} conversations of the last {}: {} patterns, {} unclustered ({}).",
            summary.conversations,
            humantime(window),
            summary.patterns.len(),
            summary.unclustered,
            summary.representation
        );
        print_table(&rows, summary.conversations);
    }
    Ok(())
}

async fn list(store: Store, json_out: bool) -> anyhow::Result<()> {
    let Some(run) = store.latest_pattern_run().await? else {
        if json_out {
            println!("{}", json!({"run": null, "patterns": []}));
        } else {
            println!("No pattern run yet: run `mentorfy patterns run`.");
        }
        return Ok(());
    };
    let rows = store.list_patterns(run.id).await?;
    if json_out {
        let report = json!({
            "run": {
                "id": run.id,
                "trigger": run.trigger,
                "finished_at": run.finished_at.to_string(),
                "conversations": run.conversations,
                "clustered": run.clustered,
                "representation": run.representation,
            },
            "patterns": rows.iter().map(pattern_json).collect::<Vec<_>>(),
        });
        println!("{report}");
    } else {
        println!(
            "Run {} ({}, {}): {} conversations, {} in {} patterns.",
            run.id, run.trigger, run.finished_at, run.conversations, run.clustered, run.patterns
        );
        print_table(&rows, usize::try_from(run.conversations).unwrap_or(0));
    }
    Ok(())
}

fn pattern_json(p: &UsagePatternRow) -> Value {
    json!({
        "id": p.id,
        "label": p.label,
        "size": p.size,
        "avg_health": p.avg_health,
        "failure_rate": p.failure_rate,
        "keywords": p.keywords,
        "examples": p.examples,
    })
}

/// One line per pattern with a bar of its share of the conversations, then its first example.
fn print_table(rows: &[UsagePatternRow], total: usize) {
    let total = total.max(1) as f64;
    let widest = rows.iter().map(|r| r.label.chars().count()).max().unwrap_or(0).min(48);
    for r in rows {
        let share = r.size as f64 / total;
        let bar = "█".repeat(((share * 40.0).round() as usize).max(1));
        let health = r.avg_health.map_or_else(|| "  -".to_owned(), |h| format!("{h:3.0}"));
        let failing = r.failure_rate.map_or_else(|| "  -".to_owned(), |f| format!("{:3.0}%", f * 100.0));
        let label: String = r.label.chars().take(48).collect();
        println!("{label:<widest$}  {:>6} {:>5.1}%  health {health}  failing {failing}  {bar}", r.size, share * 100.0);
        if let Some(example) = r.examples.get(0).and_then(|e| e.get("excerpt")).and_then(Value::as_str) {
            println!("{:<widest$}  e.g. \"{example}\"", "");
        }
    }
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} s"),
    }
}
