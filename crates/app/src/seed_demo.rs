//! `mentorfy seed-demo`: generated demo conversations (`mentorfy_sensei::demo`) loaded through the real ingestion
//! API with `mentorfy-client`, and demo Mentor sessions made through the real session API, either into this
//! install's database (the app is served in-process with a temporary API key, revoked at the end) or into a running
//! server (`--url`, `--api-key`). Wiring only: everything goes through the HTTP API, except the two session steps it
//! has no public call for (linking an account without a Clerk sign-in, and an idle session being abandoned), which
//! in-process go through the app's session service and store and with `--url` are skipped. Never prints the API key.

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
    /// How many demo Mentor sessions to create (through the session API: names and emails for about two thirds,
    /// a spread of in progress, completed and abandoned, some linked to an account). Deterministic from --seed,
    /// but added on every run (the server gives the ids). 0 skips them.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub sessions: u64,
    /// The org of the demo sessions.
    #[arg(long, default_value = "rafael-tatts", value_name = "SLUG")]
    pub sessions_org: String,
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
            .field("sessions", &self.sessions)
            .field("sessions_org", &self.sessions_org)
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
        summary.outcome()?;
        let sessions = seed_sessions(&url, &args, None).await?;
        sessions.print(&url);
        return Ok(());
    }

    // In-process: this install's database, no job workers, a temporary key.
    config.jobs.workers = 0;
    let server = LocalServer::start(config, "seed-demo").await?;
    // Ctrl-C stops loading but still revokes the key.
    let result = tokio::select! {
        r = async {
            let conversations = load(&server.base, &server.key, &args).await?;
            let sessions = seed_sessions(&server.base, &args, Some(&server.state)).await?;
            server.state.store().refresh_statistics().await?;
            Ok::<_, anyhow::Error>((conversations, sessions))
        } => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; what was acknowledged is stored")),
    };
    server.stop().await?;
    let (summary, sessions) = result?;
    summary.print("this install's database");
    sessions.print("this install's database");
    summary.outcome()
}

/// Where a demo session ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DemoOutcome {
    InProgress,
    Completed,
    Abandoned,
}

/// One demo Mentor session, derived from the seed and its position alone.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DemoSession {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    outcome: DemoOutcome,
    /// Linked to an account (only sessions with an email that are not abandoned).
    linked: bool,
}

const FIRST_NAMES: [&str; 16] = [
    "Ana", "Bruno", "Carla", "Diego", "Elena", "Felipe", "Gabi", "Hugo", "Inês", "João", "Kiara", "Luís", "Marta",
    "Nuno", "Olívia", "Pedro",
];
const LAST_NAMES: [&str; 10] =
    ["Silva", "Santos", "Costa", "Pereira", "Oliveira", "Martins", "Rocha", "Almeida", "Lopes", "Gomes"];

/// SplitMix64 of the seed and the position: the same pair always gives the same session.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn demo_session(seed: u64, i: u64) -> DemoSession {
    let h = mix(seed, i);
    let roll = |shift: u32| (h >> shift) % 100;
    let first = FIRST_NAMES[(h % FIRST_NAMES.len() as u64) as usize];
    let last = LAST_NAMES[((h >> 8) % LAST_NAMES.len() as u64) as usize];
    let named = roll(16) < 65;
    let ascii = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                'ê' => 'e',
                'ã' | 'á' => 'a',
                'í' => 'i',
                'ó' => 'o',
                'ú' => 'u',
                'ç' => 'c',
                other => other.to_ascii_lowercase(),
            })
            .collect()
    };
    let email = named.then(|| format!("{}.{}.{i}@example.com", ascii(first), ascii(last)));
    let phone = (named && roll(24) < 30).then(|| format!("+1 555 {:03} {:04}", 200 + (h >> 40) % 800, i % 10_000));
    let outcome = match roll(32) {
        0..45 => DemoOutcome::Completed,
        45..65 => DemoOutcome::Abandoned,
        _ => DemoOutcome::InProgress,
    };
    let linked = email.is_some() && outcome != DemoOutcome::Abandoned && roll(48) < 40;
    DemoSession { name: named.then(|| format!("{first} {last}")), email, phone, outcome, linked }
}

/// What the session part of a run did.
#[derive(Debug, Default)]
struct SessionSummary {
    created: u64,
    completed: u64,
    abandoned: u64,
    linked: u64,
    with_contact: u64,
    /// Abandoned or linked steps left out because the app is not in-process (`--url`).
    skipped: u64,
    elapsed: Duration,
}

impl SessionSummary {
    fn print(&self, target: &str) {
        if self.created == 0 {
            return;
        }
        println!(
            "seed-demo: {} Mentor sessions to {target} ({} completed, {} abandoned, {} linked, {} with contact); {:.1} s",
            self.created,
            self.completed,
            self.abandoned,
            self.linked,
            self.with_contact,
            self.elapsed.as_secs_f64()
        );
        if self.skipped > 0 {
            println!(
                "seed-demo: {} abandon or link steps skipped: a running server (--url) has no public call for them",
                self.skipped
            );
        }
    }
}

/// Creates the demo sessions through `POST /api/session` and `POST /api/session/{id}/complete` on `base`; with the
/// in-process app's `state`, also links some to an account and abandons some (no public call does either).
async fn seed_sessions(
    base: &str,
    args: &SeedDemoArgs,
    state: Option<&mentorfy_web::AppState>,
) -> anyhow::Result<SessionSummary> {
    let mut summary = SessionSummary::default();
    if args.sessions == 0 {
        return Ok(summary);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("mentorfy-seed-demo/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let started = Instant::now();
    let concurrency = usize::try_from(args.concurrency).context("--concurrency")?.saturating_mul(4);
    let mut made = futures::stream::iter(0..args.sessions)
        .map(|i| {
            let http = http.clone();
            async move {
                let plan = demo_session(args.seed, i);
                let id = create_demo_session(&http, base, &args.sessions_org, &plan).await?;
                Ok::<_, anyhow::Error>((plan, id))
            }
        })
        .buffer_unordered(concurrency);
    while let Some(made) = made.next().await {
        let (plan, id) = made?;
        summary.created += 1;
        summary.with_contact += u64::from(plan.email.is_some() || plan.phone.is_some());
        summary.completed += u64::from(plan.outcome == DemoOutcome::Completed);
        let Some(state) = state else {
            summary.skipped += u64::from(plan.linked) + u64::from(plan.outcome == DemoOutcome::Abandoned);
            continue;
        };
        let session_id: mentorfy_core::SessionId = id.parse().context("POST /api/session: sessionId is not a UUID")?;
        if plan.linked {
            let user = format!("demo_user_{}_{}", args.seed, id.replace('-', ""));
            state.sessions().link(session_id, &user, &user).await.context("link a demo session")?;
            summary.linked += 1;
        }
        if plan.outcome == DemoOutcome::Abandoned {
            state
                .store()
                .modify_session(session_id, |s| {
                    s.status = mentorfy_core::SessionStatus::Abandoned;
                    Ok::<(), mentorfy_store::StoreError>(())
                })
                .await
                .context("abandon a demo session")?;
            summary.abandoned += 1;
        }
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// One session through the public API; returns its id.
async fn create_demo_session(
    http: &reqwest::Client,
    base: &str,
    org: &str,
    plan: &DemoSession,
) -> anyhow::Result<String> {
    let body = serde_json::json!({"orgId": org, "name": plan.name, "email": plan.email, "phone": plan.phone});
    let res = http.post(format!("{base}/api/session")).json(&body).send().await.context("POST /api/session")?;
    let status = res.status();
    let created: serde_json::Value = res.json().await.context("POST /api/session: not JSON")?;
    anyhow::ensure!(status.is_success(), "POST /api/session answered {status}: {created}");
    let id = created["sessionId"].as_str().context("POST /api/session: no sessionId")?.to_owned();
    if plan.outcome == DemoOutcome::Completed {
        let res = http
            .post(format!("{base}/api/session/{id}/complete"))
            .json(&serde_json::json!({"context": {"demo": true}}))
            .send()
            .await
            .context("POST /api/session/{id}/complete")?;
        anyhow::ensure!(res.status().is_success(), "completing a demo session answered {}", res.status());
    }
    Ok(id)
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
    fn demo_sessions_are_deterministic_and_spread() {
        let plans: Vec<DemoSession> = (0..1000).map(|i| demo_session(42, i)).collect();
        assert_eq!(plans, (0..1000).map(|i| demo_session(42, i)).collect::<Vec<_>>());
        assert_ne!(plans, (0..1000).map(|i| demo_session(7, i)).collect::<Vec<_>>());
        let count = |f: &dyn Fn(&DemoSession) -> bool| plans.iter().filter(|p| f(p)).count();
        let between = |n: usize, lo: usize, hi: usize| assert!((lo..=hi).contains(&n), "{n} not in {lo}..={hi}");
        between(count(&|p| p.email.is_some()), 550, 750);
        between(count(&|p| p.phone.is_some()), 120, 280);
        between(count(&|p| p.outcome == DemoOutcome::Completed), 370, 530);
        between(count(&|p| p.outcome == DemoOutcome::Abandoned), 130, 270);
        between(count(&|p| p.linked), 100, 250);
        assert!(plans.iter().all(|p| !p.linked || (p.email.is_some() && p.outcome != DemoOutcome::Abandoned)));
        assert!(plans.iter().filter_map(|p| p.email.as_deref()).all(|e| e.is_ascii() && e.ends_with("@example.com")));
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        assert_eq!(stable_uuid("a"), stable_uuid("a"));
        assert_ne!(stable_uuid("demo-1-000001"), stable_uuid("demo-1-000002"));
        assert_eq!(stable_uuid("a").get_version_num(), 4);
    }
}
