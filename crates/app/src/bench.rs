//! `mentorfy bench sessions`: an open-loop load test of the session endpoints against the real server started
//! in this process. Latency is measured from each request's scheduled send time, so a server that falls
//! behind is charged for the queueing it causes (no coordinated omission).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use mentorfy_core::config::DatabaseKind;
use mentorfy_core::{Config, Secret};
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};

use crate::bench_util::{micros, ms, new_hist};
use crate::cli::BenchSessionsArgs;

#[derive(Clone, Copy, Debug)]
enum Op {
    Create,
    Patch,
    Get,
}

const OPS: [Op; 3] = [Op::Create, Op::Patch, Op::Get];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "POST /api/session",
            Op::Patch => "PATCH /api/session/{id}",
            Op::Get => "GET /api/session/{id}",
        }
    }
}

struct Recorder {
    hist: [Histogram<u64>; 3],
    errors: [u64; 3],
}

pub async fn sessions(mut config: Config, args: BenchSessionsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0 && args.seconds > 0, "--rate and --seconds must be positive");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir()?;
    let mut scratch = None;
    let (url, label) = if args.database == "sqlite" {
        (format!("sqlite://{}", tmp.path().join("bench.db").display()), "SQLite (temp file, WAL)".to_owned())
    } else if args.database.starts_with("postgres") {
        let (url, schema) = mentorfy_store::create_scratch_schema(&args.database, "bench").await?;
        scratch = Some(schema);
        (url, "PostgreSQL (fresh schema)".to_owned())
    } else {
        anyhow::bail!("--database must be 'sqlite' or a postgres:// URL");
    };
    config.database_url = Secret::new(url);
    config.database_kind = if scratch.is_some() { DatabaseKind::Postgres } else { DatabaseKind::Sqlite };
    let result = run(config, &args, &label).await;
    if let Some(schema) = scratch {
        mentorfy_store::drop_scratch_schema(&args.database, &schema).await?;
    }
    result
}

async fn run(config: Config, args: &BenchSessionsArgs, label: &str) -> anyhow::Result<()> {
    let state = mentorfy_web::prepare(Arc::new(config)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mentorfy_web::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;

    // Seed sessions for PATCH and GET to pick from.
    let seeded = Arc::new(Semaphore::new(32));
    let mut seeds = Vec::new();
    for _ in 0..args.sessions {
        let (client, base, permit) = (client.clone(), base.clone(), seeded.clone().acquire_owned().await?);
        seeds.push(tokio::spawn(async move {
            let _permit = permit;
            let res =
                client.post(format!("{base}/api/session")).json(&json!({"orgId": "rafael-tatts"})).send().await.ok()?;
            let v: serde_json::Value = res.json().await.ok()?;
            v["sessionId"].as_str().map(str::to_owned)
        }));
    }
    let mut ids = Vec::new();
    for s in seeds {
        if let Some(id) = s.await? {
            ids.push(id);
        }
    }
    anyhow::ensure!(!ids.is_empty(), "could not create any session to benchmark with");
    let ids = Arc::new(ids);

    let warmup = Duration::from_secs((args.seconds / 5).max(1));
    let measured = Duration::from_secs(args.seconds);
    let total = warmup + measured;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let recorder = Arc::new(Mutex::new(Recorder { hist: [new_hist()?, new_hist()?, new_hist()?], errors: [0; 3] }));
    let in_flight = Arc::new(Semaphore::new(1024));
    let bar = ProgressBar::new(total.as_secs());
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} s")?.progress_chars("=> "));
    bar.set_message(format!("{label}: {} req/s", args.rate));

    let start = Instant::now();
    let measure_from = start + warmup;
    let mut sent: u64 = 0;
    let mut tasks = Vec::new();
    loop {
        let scheduled = start + interval.mul_f64(sent as f64);
        if scheduled >= start + total {
            break;
        }
        // Timers tick in milliseconds: sleep only when ahead of schedule, then send everything that is due.
        if scheduled > Instant::now() {
            tokio::time::sleep_until(scheduled.into()).await;
            bar.set_position(start.elapsed().as_secs());
        }
        let op = OPS[(sent % 3) as usize];
        let id = ids[(sent as usize * 7919) % ids.len()].clone();
        let (client, base, recorder, permit) =
            (client.clone(), base.clone(), recorder.clone(), in_flight.clone().acquire_owned().await?);
        let n = sent;
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let req = match op {
                Op::Create => {
                    client.post(format!("{base}/api/session")).json(&json!({"orgId": "rafael-tatts", "name": "Bench"}))
                }
                Op::Patch => client
                    .patch(format!("{base}/api/session/{id}"))
                    .json(&json!({"context": {format!("k{}", n % 50): {"answer": n, "note": "benchmark answer"}}})),
                Op::Get => client.get(format!("{base}/api/session/{id}")),
            };
            let ok = match req.send().await {
                Ok(res) => {
                    let ok = res.status().is_success();
                    let _ = res.bytes().await;
                    ok
                }
                Err(_) => false,
            };
            if scheduled >= measure_from {
                let took = micros(scheduled.elapsed());
                let mut r = recorder.lock().await;
                let i = op as usize;
                let _ = r.hist[i].record(took);
                if !ok {
                    r.errors[i] += 1;
                }
            }
        }));
        sent += 1;
        if tasks.len() > 4096 {
            tasks.retain(|t| !t.is_finished());
        }
    }
    for t in tasks {
        t.await?;
    }
    bar.finish_and_clear();
    let _ = stop_tx.send(());
    server.await?.context("server")?;

    let r = recorder.lock().await;
    let mut all = new_hist()?;
    for h in &r.hist {
        all.add(h)?;
    }
    let secs = measured.as_secs_f64();
    let row = |name: &str, h: &Histogram<u64>, errors: u64| {
        json!({
            "endpoint": name,
            "requests": h.len(),
            "rps": (h.len() as f64 / secs).round(),
            "p50_ms": ms(h.value_at_quantile(0.50)),
            "p95_ms": ms(h.value_at_quantile(0.95)),
            "p99_ms": ms(h.value_at_quantile(0.99)),
            "max_ms": ms(h.max()),
            "errors": errors,
        })
    };
    let mut rows: Vec<_> = OPS.iter().map(|op| row(op.name(), &r.hist[*op as usize], r.errors[*op as usize])).collect();
    rows.push(row("all", &all, r.errors.iter().sum()));
    let report = json!({
        "database": label,
        "target_rps": args.rate,
        "seconds": args.seconds,
        "seeded_sessions": ids.len(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "results": rows,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{label}, target {} req/s for {} s (after {} s warm-up), open loop, client and server in one process",
            args.rate,
            args.seconds,
            warmup.as_secs()
        );
        println!(
            "{:<26} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
            "endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"
        );
        for v in rows {
            println!(
                "{:<26} {:>9} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}",
                v["endpoint"].as_str().unwrap_or(""),
                v["requests"],
                v["rps"],
                v["p50_ms"].as_f64().unwrap_or(0.0),
                v["p95_ms"].as_f64().unwrap_or(0.0),
                v["p99_ms"].as_f64().unwrap_or(0.0),
                v["max_ms"].as_f64().unwrap_or(0.0),
                v["errors"],
            );
        }
    }
    Ok(())
}
