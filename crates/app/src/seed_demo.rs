//! `mentorfy seed-demo`: generated demo conversations (`mentorfy_sensei::demo`) loaded through the real ingestion
//! API with `mentorfy-client`, either into this install's database (the app is served in-process with a
//! temporary API key, revoked at the end) or into a running server (`--url`, `--api-key`). Wiring only: it never
//! writes to the store directly, and never prints the API key.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use mentorfy_client::{BatchEvent, BatchResponse, Client, Role, TrackMessage, TrackRequest};
use mentorfy_core::Config;
use mentorfy_sensei::demo::{self, DemoConversation};
use time::OffsetDateTime;

use crate::local_server::LocalServer;

/// Load generated demo conversations through the ingestion API.
///
/// Conversation and message ids are derived from the seed and the conversation's position, so running the
/// command again with the same seed adds nothing: the server recognises every message as a duplicate. A larger
/// `--conversations` with the same seed adds only the new ones.
#[derive(Args, Clone)]
pub struct SeedDemoArgs {
    /// How many conversations to generate (about 10 messages each, 2 to 30; support, coaching and sales agents,
    /// mostly happy paths with realistic failures: frustration, refusals, loops, tool errors, escalations).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub conversations: u64,
    /// Seed of the generator. The same seed gives the same conversations (ids, text, message counts); only the
    /// timestamps follow the current time (the last 30 days). Ids are deterministic, so re-running with the same
    /// seed adds nothing.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Send to this running server (e.g. http://localhost:8080) instead of this install's database. Needs an API
    /// key.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// API key (sk_sensei_…) for --url. Without --url it is not used: a temporary key is created and revoked.
    #[arg(long, env = "SENSEI_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Conversations per batch request (one track event each; the server takes at most 1,000 events and 3.5 MB).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub batch_size: u64,
    /// Batch requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
}

impl std::fmt::Debug for SeedDemoArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedDemoArgs")
            .field("conversations", &self.conversations)
            .field("seed", &self.seed)
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("batch_size", &self.batch_size)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

pub async fn run(mut config: Config, args: SeedDemoArgs) -> anyhow::Result<()> {
    if let Some(url) = args.url.clone() {
        let key = args
            .api_key
            .clone()
            .filter(|k| !k.trim().is_empty())
            .context("--url needs an API key: pass --api-key or set SENSEI_API_KEY")?;
        let summary = load(&url, &key, &args).await?;
        summary.print(&url);
        return summary.outcome();
    }

    // In-process: this install's database, no job workers, a temporary key.
    config.jobs.workers = 0;
    let server = LocalServer::start(config, "seed-demo").await?;
    // Ctrl-C stops loading but still revokes the key.
    let result = tokio::select! {
        r = load(&server.base, &server.key, &args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; what was acknowledged is stored")),
    };
    server.stop().await?;
    let summary = result?;
    summary.print("this install's database");
    summary.outcome()
}

/// What a run did.
#[derive(Debug, Default)]
struct Summary {
    conversations: u64,
    messages: u64,
    /// Conversations the server already had (duplicate events).
    duplicates: u64,
    /// Events refused for good, with the first few reasons.
    failed: u64,
    reasons: Vec<String>,
    elapsed: Duration,
}

impl Summary {
    fn add(&mut self, sent: &[(String, u64)], res: &BatchResponse) {
        for s in &res.successes {
            if let Some((_, n)) = sent.iter().find(|(id, _)| *id == s.id) {
                self.conversations += 1;
                self.messages += n;
                if s.status == 200 {
                    self.duplicates += 1;
                }
            }
        }
        for e in &res.errors {
            self.failed += 1;
            if self.reasons.len() < 5 {
                self.reasons.push(format!("{}: {}", e.status, e.message));
            }
        }
    }

    fn print(&self, target: &str) {
        let secs = self.elapsed.as_secs_f64().max(0.001);
        println!(
            "seed-demo: {} conversations, {} messages to {target}; {} duplicate conversations (already stored); \
             {:.1} s, {:.0} messages/s",
            self.conversations,
            self.messages,
            self.duplicates,
            secs,
            self.messages as f64 / secs
        );
    }

    fn outcome(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.failed == 0,
            "{} conversations were refused by the server, e.g. {}",
            self.failed,
            self.reasons.join("; ")
        );
        Ok(())
    }
}

/// Generates and sends everything to `base` with `key`.
async fn load(base: &str, key: &str, args: &SeedDemoArgs) -> anyhow::Result<Summary> {
    let client = Client::builder(base, key)
        .timeout(Duration::from_secs(120))
        .max_retries(6)
        .user_agent(concat!("mentorfy-seed-demo/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let count = usize::try_from(args.conversations).context("--conversations")?;
    let batch_size = usize::try_from(args.batch_size).context("--batch-size")?;
    let concurrency = usize::try_from(args.concurrency).context("--concurrency")?;
    let now = OffsetDateTime::now_utc();
    let mut conversations = demo::generate(args.seed, count, now);
    let batches = std::iter::from_fn(move || {
        let chunk: Vec<BatchEvent> = conversations.by_ref().take(batch_size).map(|c| event(&c)).collect();
        (!chunk.is_empty()).then_some(chunk)
    });

    let bar = ProgressBar::new(args.conversations);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} conversations, {msg}")?
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut sends = futures::stream::iter(batches)
        .map(|events| {
            let client = client.clone();
            async move {
                let sent: Vec<(String, u64)> = events.iter().map(|e| (e.id.clone(), message_count(e))).collect();
                let res = client.ingest_all(&events).await;
                (sent, res)
            }
        })
        .buffer_unordered(concurrency);
    while let Some((sent, res)) = sends.next().await {
        let res = res.context("the ingestion API refused a batch")?;
        summary.add(&sent, &res);
        bar.inc(sent.len() as u64);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!("{} messages, {:.0} messages/s", summary.messages, summary.messages as f64 / secs));
    }
    bar.finish_and_clear();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn message_count(e: &BatchEvent) -> u64 {
    match &e.body {
        mentorfy_client::EventBody::Track(t) => t.messages.len() as u64,
        mentorfy_client::EventBody::Message(_) => 1,
    }
}

/// One `track` event per conversation. The event id is derived from the conversation (environment, id, message
/// count, generator version), so a re-run sends the same ids and the server answers "already stored".
fn event(c: &DemoConversation) -> BatchEvent {
    let messages = track_messages(c);
    let mut body = TrackRequest::new(c.id.clone(), messages);
    body.metadata = Some(c.metadata.clone());
    body.user_id = c.user_id.clone();
    body.agent_id = Some(c.agent_id.clone());
    body.environment = Some(c.environment.clone());
    let name = format!("{}\0{}\0{}\0{}", demo::GENERATOR_VERSION, c.environment, c.id, c.messages.len());
    BatchEvent::track(body).with_id(stable_uuid(&name).to_string())
}

/// A UUID (v4 layout) from a 128-bit FNV-1a digest of `name`: the same name always gives the same id.
fn stable_uuid(name: &str) -> uuid::Uuid {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in name.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    uuid::Builder::from_random_bytes(h.to_be_bytes()).into_uuid()
}

/// A generated conversation's messages as the track API takes them (ids, timestamps and metadata kept).
pub(crate) fn track_messages(c: &DemoConversation) -> Vec<TrackMessage> {
    c.messages
        .iter()
        .map(|m| {
            let role = match m.role {
                "assistant" => Role::Assistant,
                "tool" => Role::Tool,
                "system" => Role::System,
                _ => Role::User,
            };
            let mut msg = TrackMessage::new(role, m.content.clone(), m.at).with_id(m.id.clone());
            msg.metadata = (!m.metadata.is_empty()).then(|| m.metadata.clone());
            msg
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_and_distinct() {
        assert_eq!(stable_uuid("a"), stable_uuid("a"));
        assert_ne!(stable_uuid("demo-1-000001"), stable_uuid("demo-1-000002"));
        assert_eq!(stable_uuid("a").get_version_num(), 4);
    }
}

