//! `mentorfy bench read`: latency of read endpoints (admin API now, dashboard pages later) on an already running
//! server, path by path, closed loop at a fixed concurrency. Sends the admin token as a bearer header and as the
//! dashboard's session cookie; never prints it. Measures only: it never writes through the API.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{AUTHORIZATION, COOKIE, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::bench_util::{loadavg, machine, micros, ms, new_hist};

/// The cookie the dashboard authenticates with.
const SESSION_COOKIE: &str = "mentorfy_session";
/// Ids fetched for `{conversation}`; requests rotate over them.
const CONVERSATION_SAMPLE: usize = 100;

#[derive(Args, Debug)]
pub struct BenchReadArgs {
    /// Base URL of the running server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Admin session token (from POST /api/v1/auth/login); sent as `Authorization: Bearer` and as the
    /// `mentorfy_session` cookie. Never printed.
    #[arg(long, env = "MENTORFY_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// A path to measure, e.g. `/api/v1/conversations?range=7d` (repeatable). `{conversation}` is replaced by
    /// real conversation ids (requests rotate over up to 100 of them), `{cursor}` by the `nextCursor` of the
    /// default conversation list.
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// A file of paths, one per line; blank lines and `#` comments are skipped.
    #[arg(long, value_name = "FILE")]
    pub paths_file: Option<PathBuf>,
    /// Requests in flight at any time (closed loop: each worker sends its next request when the last returned).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// Measured seconds per path (ignored with --requests).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Measure this many requests per path instead of a duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Unmeasured warm-up seconds per path before measuring (0 for none).
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One measured path.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub path: String,
    pub requests: u64,
    /// Responses outside 2xx plus transport errors.
    pub non_2xx: u64,
    /// The first non-2xx status seen (0 for a transport error), to tell a 404 from a 500 at a glance.
    pub first_bad_status: Option<u16>,
    pub rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Row {
    fn from_hist(path: &str, h: &Histogram<u64>, non_2xx: u64, first_bad_status: Option<u16>, secs: f64) -> Self {
        Self {
            path: path.to_owned(),
            requests: h.len(),
            non_2xx,
            first_bad_status,
            rps: if secs > 0.0 { (h.len() as f64 / secs * 10.0).round() / 10.0 } else { 0.0 },
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "path": self.path,
            "requests": self.requests,
            "non_2xx": self.non_2xx,
            "first_bad_status": self.first_bad_status,
            "rps": self.rps,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
        })
    }
}

/// Paths from a paths file: one per line, trimmed; blank lines, `#` lines and ` #` trailing comments skipped.
/// Every path must start with `/`.
pub fn parse_paths_file(text: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = match line.find(" #") {
            Some(i) => &line[..i],
            None => line,
        }
        .trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(check_path(line).with_context(|| format!("line {}", n + 1))?);
    }
    Ok(out)
}

fn check_path(p: &str) -> anyhow::Result<String> {
    let p = p.trim();
    anyhow::ensure!(p.starts_with('/'), "a path must start with '/': {p:?}");
    anyhow::ensure!(!p.contains(char::is_whitespace), "a path must not contain spaces: {p:?}");
    Ok(p.to_owned())
}

/// `--path` values first, then the file's, in order; at least one.
pub fn collect_paths(cli: &[String], file: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut out = cli.iter().map(|p| check_path(p)).collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(text) = file {
        out.extend(parse_paths_file(text)?);
    }
    anyhow::ensure!(!out.is_empty(), "no path to measure: give --path or --paths-file");
    Ok(out)
}

/// `template` with `{conversation}` and `{cursor}` filled in.
pub fn fill(template: &str, conversation: &str, cursor: &str) -> String {
    template.replace("{conversation}", conversation).replace("{cursor}", &encode_query_value(cursor))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The result table, one line per path; the path column widens to the longest path.
pub fn format_table(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.path.len()).max().unwrap_or(0).max(4);
    let mut out = format!(
        "{:<width$} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        "path", "requests", "non-2xx", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for r in rows {
        let bad = match r.first_bad_status {
            Some(s) if r.non_2xx > 0 => format!("{} ({s})", r.non_2xx),
            _ => r.non_2xx.to_string(),
        };
        out.push_str(&format!(
            "{:<width$} {:>8} {:>8} {:>8.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2}\n",
            r.path, r.requests, bad, r.rps, r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms
        ));
    }
    out
}

pub async fn run(args: BenchReadArgs) -> anyhow::Result<()> {
    let file = match &args.paths_file {
        Some(f) => Some(std::fs::read_to_string(f).with_context(|| format!("--paths-file {}", f.display()))?),
        None => None,
    };
    let paths = collect_paths(&args.paths, file.as_deref())?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    anyhow::ensure!(!args.token.trim().is_empty(), "--token (or MENTORFY_ADMIN_TOKEN) is empty");
    let base = args.url.trim_end_matches('/').to_owned();
    let concurrency = usize::try_from(args.concurrency)?;

    let mut headers = HeaderMap::new();
    let mut bearer = HeaderValue::from_str(&format!("Bearer {}", args.token.trim())).context("--token")?;
    bearer.set_sensitive(true);
    let mut cookie = HeaderValue::from_str(&format!("{SESSION_COOKIE}={}", args.token.trim())).context("--token")?;
    cookie.set_sensitive(true);
    headers.insert(AUTHORIZATION, bearer);
    headers.insert(COOKIE, cookie);
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;

    let needs_ids = paths.iter().any(|p| p.contains("{conversation}") || p.contains("{cursor}"));
    let (ids, cursor) = if needs_ids { sample_conversations(&client, &base).await? } else { (Vec::new(), None) };
    if paths.iter().any(|p| p.contains("{cursor}")) && cursor.is_none() {
        anyhow::bail!("a path uses {{cursor}} but the conversation list has a single page");
    }
    let ids = Arc::new(ids);
    let cursor = cursor.unwrap_or_default();

    let per_path = match args.requests {
        Some(n) => n,
        None => args.warmup + args.seconds,
    };
    let bar = ProgressBar::new(per_path * paths.len() as u64);
    let unit = if args.requests.is_some() { "requests" } else { "s" };
    bar.set_style(
        ProgressStyle::with_template(&format!("{{msg}} [{{bar:40}}] {{pos}}/{{len}} {unit}"))?.progress_chars("=> "),
    );
    let load_before = loadavg();
    let mut rows = Vec::new();
    for (i, template) in paths.iter().enumerate() {
        bar.set_message(format!("{}/{} {template}", i + 1, paths.len()));
        let offset = per_path * i as u64;
        let row = measure(&client, &base, template, &ids, &cursor, &args, concurrency, &bar, offset).await?;
        rows.push(row);
    }
    bar.finish_and_clear();
    let load_after = loadavg();

    let mode = match args.requests {
        Some(n) => format!("{n} requests per path"),
        None => format!("{} s per path", args.seconds),
    };
    if args.json {
        let report = json!({
            "url": base,
            "loop": "closed",
            "concurrency": args.concurrency,
            "seconds": if args.requests.is_some() { Value::Null } else { json!(args.seconds) },
            "requests_per_path": args.requests,
            "warmup_seconds": args.warmup,
            "machine": machine(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "results": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        });
        println!("{report}");
    } else {
        println!(
            "{base}: closed loop, {} concurrent requests, {mode} after {} s warm-up; latency from send to last body \
             byte; load average {} -> {}",
            args.concurrency,
            args.warmup,
            load_before.map_or_else(|| "?".to_owned(), |l| format!("{l:.2}")),
            load_after.map_or_else(|| "?".to_owned(), |l| format!("{l:.2}")),
        );
        print!("{}", format_table(&rows));
    }
    Ok(())
}

/// Up to [`CONVERSATION_SAMPLE`] conversation ids from the default list, and the list's next cursor.
async fn sample_conversations(client: &reqwest::Client, base: &str) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let url = format!("{base}/api/v1/conversations");
    let res =
        client.get(format!("{url}?limit={CONVERSATION_SAMPLE}")).send().await.context("GET /api/v1/conversations")?;
    let status = res.status();
    anyhow::ensure!(status.is_success(), "GET /api/v1/conversations?limit={CONVERSATION_SAMPLE}: {status}");
    let page: Value = res.json().await.context("conversation list")?;
    let ids: Vec<String> = page["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    anyhow::ensure!(!ids.is_empty(), "a path uses {{conversation}} but there is no conversation");
    // `{cursor}` is page 2 of the default list (default page size), as the dashboard would ask for it.
    let res = client.get(&url).send().await.context("GET /api/v1/conversations")?;
    let page: Value = res.json().await.context("conversation list")?;
    let cursor = page["nextCursor"].as_str().map(str::to_owned);
    Ok((ids, cursor))
}

struct Tally {
    hist: Histogram<u64>,
    non_2xx: u64,
    first_bad_status: Option<u16>,
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    client: &reqwest::Client,
    base: &str,
    template: &str,
    ids: &Arc<Vec<String>>,
    cursor: &str,
    args: &BenchReadArgs,
    concurrency: usize,
    bar: &ProgressBar,
    offset: u64,
) -> anyhow::Result<Row> {
    let tally = Arc::new(Mutex::new(Tally { hist: new_hist()?, non_2xx: 0, first_bad_status: None }));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let deadline = args.requests.is_none().then(|| measure_from + Duration::from_secs(args.seconds));
    // In --requests mode each worker claims a ticket per measured request.
    let tickets = Arc::new(AtomicU64::new(0));
    let limit = args.requests;
    let ticker = deadline.map(|_| {
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                bar.set_position(offset + start.elapsed().as_secs());
            }
        })
    });
    let measured_start = Arc::new(Mutex::new(None::<Instant>));
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (client, tally, ids, tickets, bar, measured_start) =
            (client.clone(), tally.clone(), ids.clone(), tickets.clone(), bar.clone(), measured_start.clone());
        let (base, template, cursor) = (base.to_owned(), template.to_owned(), cursor.to_owned());
        workers.push(tokio::spawn(async move {
            let mut n = w;
            let mut measured = 0u64;
            loop {
                let now = Instant::now();
                // Past the deadline, a worker still sends one measured request if it has none yet, so an endpoint
                // slower than the warm-up plus the duration is reported rather than shown as zero requests.
                if deadline.is_some_and(|d| now >= d) && measured > 0 {
                    break;
                }
                let warming = now < measure_from;
                if !warming && let Some(limit) = limit {
                    let t = tickets.fetch_add(1, Ordering::Relaxed);
                    if t >= limit {
                        break;
                    }
                    if t == 0 {
                        *measured_start.lock().await = Some(now);
                    }
                }
                let conversation = if ids.is_empty() { "" } else { ids[n % ids.len()].as_str() };
                n += concurrency;
                let url = format!("{base}{}", fill(&template, conversation, &cursor));
                let sent = Instant::now();
                let status = match client.get(&url).send().await {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        match res.bytes().await {
                            Ok(_) => status,
                            Err(_) => 0,
                        }
                    }
                    Err(_) => 0,
                };
                if warming {
                    continue;
                }
                measured += 1;
                let took = micros(sent.elapsed());
                let mut t = tally.lock().await;
                let _ = t.hist.record(took);
                if !(200..300).contains(&status) {
                    t.non_2xx += 1;
                    t.first_bad_status.get_or_insert(status);
                }
                drop(t);
                if limit.is_some() {
                    bar.inc(1);
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    if let Some(t) = ticker {
        t.abort();
    }
    let secs = match (deadline, *measured_start.lock().await) {
        (Some(_), _) => Instant::now().saturating_duration_since(measure_from).as_secs_f64(),
        (None, Some(from)) => from.elapsed().as_secs_f64(),
        (None, None) => 0.0,
    };
    bar.set_position(
        offset
            + match args.requests {
                Some(n) => n,
                None => args.warmup + args.seconds,
            },
    );
    let t = tally.lock().await;
    Ok(Row::from_hist(template, &t.hist, t.non_2xx, t.first_bad_status, secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_file_skips_blank_lines_and_comments_and_keeps_order() {
        let text = "# admin API\n\n/api/v1/conversations\n  /api/v1/conversations?range=7d   # last week\n\
                    #/api/v1/skipped\n/api/v1/conversations/{conversation}/messages\n";
        assert_eq!(
            parse_paths_file(text).unwrap(),
            vec![
                "/api/v1/conversations".to_owned(),
                "/api/v1/conversations?range=7d".to_owned(),
                "/api/v1/conversations/{conversation}/messages".to_owned(),
            ]
        );
    }

    #[test]
    fn paths_file_rejects_a_line_that_is_not_a_path_and_names_it() {
        let err = parse_paths_file("/ok\napi/v1/conversations\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        assert!(parse_paths_file("/a b\n").is_err());
    }

    #[test]
    fn cli_paths_come_before_file_paths_and_none_at_all_is_an_error() {
        let cli = vec!["/api/v1/settings".to_owned()];
        assert_eq!(
            collect_paths(&cli, Some("/api/v1/saved-views\n")).unwrap(),
            vec!["/api/v1/settings".to_owned(), "/api/v1/saved-views".to_owned()]
        );
        assert!(collect_paths(&[], Some("# only a comment\n")).is_err());
        assert!(collect_paths(&["no-slash".to_owned()], None).is_err());
    }

    #[test]
    fn placeholders_are_filled_and_the_cursor_is_percent_encoded() {
        assert_eq!(
            fill("/api/v1/conversations/{conversation}/health", "0191-ab", ""),
            "/api/v1/conversations/0191-ab/health"
        );
        assert_eq!(
            fill("/api/v1/conversations?cursor={cursor}", "", "a+b/c=="),
            "/api/v1/conversations?cursor=a%2Bb%2Fc%3D%3D"
        );
        assert_eq!(fill("/api/v1/settings", "x", "y"), "/api/v1/settings");
    }

    #[test]
    fn table_aligns_columns_and_shows_the_first_bad_status() {
        let rows = vec![
            Row {
                path: "/api/v1/settings".to_owned(),
                requests: 1200,
                non_2xx: 0,
                first_bad_status: None,
                rps: 120.0,
                p50_ms: 1.5,
                p95_ms: 2.25,
                p99_ms: 3.0,
                max_ms: 10.0,
            },
            Row {
                path: "/api/v1/sessions".to_owned(),
                requests: 50,
                non_2xx: 50,
                first_bad_status: Some(404),
                rps: 5.0,
                p50_ms: 0.5,
                p95_ms: 0.75,
                p99_ms: 1.0,
                max_ms: 1.25,
            },
        ];
        let table = format_table(&rows);
        let expected = "\
path             requests  non-2xx    req/s   p50 ms   p95 ms   p99 ms   max ms
/api/v1/settings     1200        0    120.0     1.50     2.25     3.00    10.00
/api/v1/sessions       50 50 (404)      5.0     0.50     0.75     1.00     1.25
";
        assert_eq!(table, expected);
        let widths: Vec<usize> = table.lines().map(str::len).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{widths:?}");
    }

    #[test]
    fn row_from_histogram_rounds_to_hundredths_of_a_millisecond() {
        let mut h = new_hist().unwrap();
        for v in [1_000, 2_000, 3_000, 4_000] {
            h.record(v).unwrap();
        }
        let r = Row::from_hist("/x", &h, 1, Some(500), 2.0);
        assert_eq!(r.requests, 4);
        assert!((r.rps - 2.0).abs() < 1e-9);
        assert!((r.p50_ms - 2.0).abs() < 0.01, "{}", r.p50_ms);
        assert!((r.max_ms - 4.0).abs() < 0.01, "{}", r.max_ms);
        assert_eq!(r.to_json()["first_bad_status"], 500);
    }
}
