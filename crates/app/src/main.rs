//! The `mentorfy` binary: command-line parsing, logging and process lifecycle. Everything else lives in the
//! library crates; this file only wires them together.

mod admin_cli;
mod bench;
mod bench_health;
mod bench_ingest;
mod bench_memory;
mod bench_read;
mod bench_util;
mod cli;
mod jobs_cli;
mod local_server;
mod patterns_cli;
mod seed_demo;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use mentorfy_core::Config;
use mentorfy_core::config::LogFormat;

use crate::cli::{BenchCommand, Cli, Command, ServeArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Configuration is parsed once, before anything else; a bad value is one clear line and exit code 2.
    let overrides: Vec<(&str, String)> = match &cli.command {
        Some(Command::Serve(ServeArgs { addr: Some(addr) })) => vec![("MENTORFY_ADDR", addr.to_string())],
        _ => Vec::new(),
    };
    let config = match Config::load_with(&overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mentorfy: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let log_format = config.log_format;
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mentorfy: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli, config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, in the log's own format: JSON log shippers must not meet a stray text line.
            match log_format {
                LogFormat::Json => tracing::error!(error = %format!("{e:#}"), "mentorfy stopped"),
                LogFormat::Text => eprintln!("mentorfy: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command.unwrap_or_default() {
        Command::Serve(_) => serve(config).await,
        Command::Migrate => migrate(config).await,
        Command::Config(args) if args.env_example => {
            print!("{}", mentorfy_core::config::env_example());
            Ok(())
        }
        Command::Config(args) => {
            print_config(&config, args.json);
            Ok(())
        }
        Command::Bench(BenchCommand::Sessions(args)) => bench::sessions(config, args).await,
        Command::Bench(BenchCommand::Memory(args)) => bench_memory::run(config, args).await,
        Command::Bench(BenchCommand::Ingest(args)) => bench_ingest::run(config, args).await,
        Command::Bench(BenchCommand::Health(args)) => bench_health::run(config, args).await,
        Command::Bench(BenchCommand::Read(args)) => bench_read::run(args).await,
        Command::SeedDemo(args) => seed_demo::run(config, args).await,
        Command::Patterns(args) => patterns_cli::patterns(config, args).await,
        Command::Worker(args) => jobs_cli::worker(config, args).await,
        Command::Jobs(args) => jobs_cli::jobs(config, args).await,
        Command::Admin(args) => admin_cli::admin(config, args).await,
        Command::Keys(args) => admin_cli::keys(config, args).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = config.addr;
    let state = mentorfy_web::prepare(Arc::new(config)).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("MENTORFY_ADDR: cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, docs = %format!("http://{local}/docs"), "mentorfy is listening");
    mentorfy_web::serve(listener, state, shutdown_signal()).await?;
    Ok(())
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = mentorfy_store::Store::connect(config.database_url.expose(), 1).await?;
    let applied = store.migrate().await?;
    if applied.is_empty() {
        println!("database is up to date");
    }
    for m in applied {
        println!("applied {m}");
    }
    store.close().await;
    Ok(())
}

fn print_config(config: &Config, json: bool) {
    let rows = config.redacted();
    if json {
        let map: serde_json::Map<String, serde_json::Value> = rows
            .into_iter()
            .map(|(name, value, origin)| {
                (name.to_owned(), serde_json::json!({"value": value, "source": origin.to_string()}))
            })
            .collect();
        println!("{}", serde_json::Value::Object(map));
        return;
    }
    let width = rows.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
    for (name, value, origin) in rows {
        println!("{name:<width$}  {value}  ({origin})");
    }
    println!();
    for (feature, enabled, vars) in config.features() {
        let state = if enabled { "on " } else { "off" };
        println!("{state}  {feature}  ({vars})");
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter).unwrap_or_else(|e| {
        eprintln!("mentorfy: MENTORFY_LOG: {e}; using 'info'");
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
