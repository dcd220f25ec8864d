//! Sensei alerts (issue 6, M6): after each analysis, decide which alerts fire (a new failure at or above the
//! severity threshold; a conversation that became final below the health threshold; a failure type whose rate
//! over a window crossed its share, edge-triggered with hysteresis), record each once in `alert_events` (dedupe
//! key), and deliver them through the job queue to the Slack incoming webhook, one message each or one digest
//! when more than [`DIGEST_THRESHOLD`] are waiting. Never sends from the analysis path itself, never logs or
//! stores the webhook URL, never shows a target's response body.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use mentorfy_core::config::AlertConfig;
use mentorfy_jobs::{JobError, Registry};
use mentorfy_store::{AlertEventRow, ConversationRow, FailureRow, NewAlertEvent, NewJob, Store, StoreError};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::analysis::Severity;
use crate::pipeline::Processed;
use crate::webhook::{DeliveryError, WebhookError, WebhookPolicy, WebhookSender, WebhookUrl, validate_with_policy};

/// The delivery job's kind.
pub const DELIVER_ALERTS_KIND: &str = "sensei.deliver_alerts";
/// The delivery job's queue.
pub const ALERTS_QUEUE: &str = "alerts";
/// The delivery job's unique key: while one is pending, alerts raised meanwhile join it.
pub const DELIVER_ALERTS_KEY: &str = "sensei.deliver_alerts";
/// How long the delivery job waits, so alerts raised together go out together.
pub const GROUPING_DELAY: Duration = Duration::from_secs(2);
/// More pending alerts than this go out as one digest message.
pub const DIGEST_THRESHOLD: usize = 3;
/// A fired rate rule re-arms when the rate falls to this fraction of its threshold.
pub const RATE_HYSTERESIS: f64 = 0.8;
/// Delivery attempts before pending alerts are marked failed.
pub const DELIVERY_ATTEMPTS: u32 = 8;
/// Rate rules don't fire on fewer conversations than this in the window (unless overridden).
pub const DEFAULT_MIN_CONVERSATIONS: i64 = 5;
/// Evidence excerpts in messages are cut to this many characters.
const EVIDENCE_CHARS: usize = 200;
/// A digest lists at most this many alerts.
const DIGEST_ITEMS: usize = 10;

/// Why an alert operation failed (delivery problems are results, not errors).
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client could not be built.
    #[error("alert delivery unavailable")]
    Unavailable,
}

/// The thresholds in force: the configuration (`SENSEI_ALERT_*`) with the dashboard's overrides on top.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// `None`: failure alerts off.
    pub min_severity: Option<Severity>,
    /// 0 = off.
    pub health_below: f64,
    /// (share, window); `None` = off.
    pub failure_rate: Option<(f64, Duration)>,
    /// Rate rules need at least this many conversations in the window.
    pub min_conversations: i64,
}

impl Thresholds {
    pub fn from_config(config: &AlertConfig) -> Self {
        Self {
            min_severity: config.min_severity.as_deref().and_then(parse_severity),
            health_below: config.health_below,
            failure_rate: config.failure_rate,
            min_conversations: DEFAULT_MIN_CONVERSATIONS,
        }
    }

    /// Applies `app_settings.alert_thresholds`: `{"min_severity": "high"|"off", "health_below": 40,
    /// "failure_rate": {"share": 0.25, "window_secs": 3600} | "off", "min_conversations": 5}`. Absent or
    /// malformed keys keep the current value.
    pub fn with_overrides(mut self, o: &Value) -> Self {
        match o.get("min_severity").and_then(Value::as_str) {
            Some("off") => self.min_severity = None,
            Some(s) => self.min_severity = parse_severity(s).or(self.min_severity),
            None => {}
        }
        if let Some(h) = o.get("health_below").and_then(Value::as_f64).filter(|h| (0.0..=100.0).contains(h)) {
            self.health_below = h;
        }
        match o.get("failure_rate") {
            Some(Value::String(s)) if s == "off" => self.failure_rate = None,
            Some(Value::Object(r)) => {
                let share = r.get("share").and_then(Value::as_f64).filter(|s| *s > 0.0 && *s <= 1.0);
                let window = r.get("window_secs").and_then(Value::as_u64).filter(|w| *w > 0);
                if let (Some(share), Some(window)) = (share, window) {
                    self.failure_rate = Some((share, Duration::from_secs(window)));
                }
            }
            _ => {}
        }
        if let Some(n) = o.get("min_conversations").and_then(Value::as_i64).filter(|n| *n >= 1) {
            self.min_conversations = n;
        }
        self
    }
}

/// `low`, `medium`, `high`, `critical`.
pub fn parse_severity(s: &str) -> Option<Severity> {
    match s.trim().to_ascii_lowercase().as_str() {
        "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

/// What kind of alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    Failure,
    Health,
    FailureRate,
    Test,
    Digest,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Failure => "failure",
            AlertKind::Health => "health",
            AlertKind::FailureRate => "failure_rate",
            AlertKind::Test => "test",
            AlertKind::Digest => "digest",
        }
    }
}

/// An alert that fired, before it is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub kind: AlertKind,
    pub conversation_id: Option<Uuid>,
    pub failure_id: Option<Uuid>,
    /// `failure:<failure id>`, `health:<conversation id>:<final_at>`, `failure_rate:<type>:<id>`.
    pub dedupe_key: String,
    pub severity: Option<Severity>,
    pub title: String,
    /// `{"facts": {...}, "message": <the Slack message>}`; never the webhook URL.
    pub payload: Value,
}

/// What [`Alerts::on_processed`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertsRaised {
    /// Alerts recorded for the first time (the rest were duplicates).
    pub recorded: usize,
    /// True when a delivery job was enqueued (or one was already pending); false when no webhook is configured
    /// (alerts are then stored as `suppressed`).
    pub delivery_scheduled: bool,
}

/// What one delivery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: usize,
    pub failed: usize,
    pub suppressed: usize,
    /// Messages posted (a digest is one).
    pub messages: usize,
}

/// The result of [`Alerts::send_test_alert`], as a status class only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestAlertOutcome {
    Sent,
    /// No URL given and none configured.
    NotConfigured,
    /// The URL was refused (the reason never contains the URL).
    InvalidUrl(WebhookError),
    /// The webhook did not accept the message: `http 404 (rejected)`, `network error (timeout)`, …
    Failed(String),
}

/// The alert service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Alerts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    config: AlertConfig,
    sender: WebhookSender,
    policy: WebhookPolicy,
    grouping_delay: Duration,
}

impl Alerts {
    /// Slack-only webhooks, [`GROUPING_DELAY`].
    pub fn new(store: Store, config: AlertConfig) -> Result<Self, AlertError> {
        Self::with_policy(store, config, WebhookPolicy::default(), GROUPING_DELAY)
    }

    /// With an explicit webhook policy and grouping delay. Production passes [`WebhookPolicy::default`] (or
    /// [`WebhookPolicy::generic`] if generic webhooks are ever enabled); tests pass
    /// [`WebhookPolicy::loopback_for_tests`] to reach a local fake.
    pub fn with_policy(
        store: Store,
        config: AlertConfig,
        policy: WebhookPolicy,
        grouping_delay: Duration,
    ) -> Result<Self, AlertError> {
        let sender = WebhookSender::new().map_err(|_| AlertError::Unavailable)?;
        Ok(Self { inner: Arc::new(Inner { store, config, sender, policy, grouping_delay }) })
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The thresholds in force now.
    pub async fn thresholds(&self) -> Result<Thresholds, AlertError> {
        let settings = self.store().alert_settings().await?;
        let base = Thresholds::from_config(&self.inner.config);
        Ok(match &settings.alert_thresholds {
            Some(o) => base.with_overrides(o),
            None => base,
        })
    }

    /// The webhook alerts go to, masked (`https://hooks.slack.com/services/T…/B…/****`), and whether it comes from
    /// the dashboard's settings (`true`) or `SLACK_WEBHOOK_URL`. For the settings API: never the URL itself.
    pub async fn webhook_in_force(&self) -> Result<Option<(String, bool)>, AlertError> {
        let stored = self.store().alert_settings().await?.slack_webhook_url;
        let from_settings = stored.is_some();
        Ok(self.webhook().await?.map(|u| (u.redacted(), from_settings)))
    }

    /// Checks a webhook URL under this service's policy (the settings API refuses to store one that fails).
    pub fn validate_webhook(&self, raw: &str) -> Result<WebhookUrl, WebhookError> {
        validate_with_policy(raw, self.inner.policy)
    }

    /// The webhook in force: the dashboard's, else `SLACK_WEBHOOK_URL`. `Err` when the one in force is invalid.
    async fn webhook(&self) -> Result<Option<WebhookUrl>, AlertError> {
        let settings = self.store().alert_settings().await?;
        let raw = settings
            .slack_webhook_url
            .or_else(|| self.inner.config.slack_webhook_url.as_ref().map(|s| s.expose().to_owned()));
        match raw {
            None => Ok(None),
            // An invalid stored URL behaves like none; the settings API refuses to store one.
            Some(raw) => Ok(validate_with_policy(&raw, self.inner.policy).ok()),
        }
    }

    /// The alerts one analysis run raises. Rate rules are edge-triggered: evaluating one that crosses its
    /// threshold disarms it (so this has that side effect), and disarmed rules whose rate recovered are re-armed.
    pub async fn evaluate(&self, p: &Processed) -> Result<Vec<NewAlert>, AlertError> {
        let t = self.thresholds().await?;
        let mut alerts = Vec::new();
        let failures: Vec<&FailureRow> = match t.min_severity {
            Some(min) => {
                p.stored.new_failures.iter().filter(|f| parse_severity(&f.severity).is_some_and(|s| s >= min)).collect()
            }
            None => Vec::new(),
        };
        let low_health = p.stored.became_final && t.health_below > 0.0 && p.analysis.health.score < t.health_below;
        let conv = if failures.is_empty() && !low_health {
            None
        } else {
            self.store().get_conversation(p.conversation_id).await?
        };
        let public_url = self.inner.config.public_url.as_str();
        if let Some(conv) = &conv {
            for f in failures {
                alerts.push(failure_alert(public_url, conv, f));
            }
            if low_health {
                alerts.push(health_alert(public_url, conv, p.analysis.health.score, t.health_below));
            }
        }
        if let Some((share, window)) = t.failure_rate {
            let since = mentorfy_store::now() - time::Duration::try_from(window).unwrap_or(time::Duration::HOUR);
            let types: BTreeSet<&str> = p.stored.new_failures.iter().map(|f| f.kind.as_str()).collect();
            for kind in &types {
                let rate = self.store().failure_type_rate(kind, since).await?;
                let key = format!("failure_rate:{kind}");
                if rate.conversations >= t.min_conversations && rate.share() > share {
                    if self.store().disarm_alert_rule(&key, rate.share()).await? {
                        alerts.push(rate_alert(public_url, kind, rate, share, window));
                    }
                } else if rate.share() <= share * RATE_HYSTERESIS {
                    self.store().arm_alert_rule(&key, rate.share()).await?;
                }
            }
            // Disarmed rules of types not seen in this run may have recovered meanwhile.
            for rule in self.store().disarmed_alert_rules("failure_rate:").await? {
                let Some(kind) = rule.rule_key.strip_prefix("failure_rate:") else { continue };
                if types.contains(kind) {
                    continue;
                }
                let rate = self.store().failure_type_rate(kind, since).await?;
                if rate.share() <= share * RATE_HYSTERESIS {
                    self.store().arm_alert_rule(&rule.rule_key, rate.share()).await?;
                }
            }
        }
        Ok(alerts)
    }

    /// Evaluates, records and schedules delivery. Call after each successful analysis; errors are worth logging
    /// but must not fail the analysis (it is stored already).
    pub async fn on_processed(&self, p: &Processed) -> Result<AlertsRaised, AlertError> {
        if !p.stored.found {
            return Ok(AlertsRaised::default());
        }
        let alerts = self.evaluate(p).await?;
        self.raise(alerts).await
    }

    /// Records `alerts` (each once, by dedupe key) and enqueues one delivery job for all of them; with no
    /// webhook configured they are stored `suppressed` and nothing is enqueued.
    pub async fn raise(&self, alerts: Vec<NewAlert>) -> Result<AlertsRaised, AlertError> {
        if alerts.is_empty() {
            return Ok(AlertsRaised::default());
        }
        let configured = self.webhook().await?.is_some();
        let status = if configured { "pending" } else { "suppressed" };
        let mut recorded = 0;
        for a in alerts {
            let row = NewAlertEvent {
                kind: a.kind.as_str().to_owned(),
                conversation_id: a.conversation_id,
                failure_id: a.failure_id,
                dedupe_key: a.dedupe_key,
                severity: a.severity.map(|s| s.as_str().to_owned()),
                title: a.title,
                payload: a.payload,
                status: status.to_owned(),
                digest_id: None,
            };
            if self.store().insert_alert_event(&row).await?.is_some() {
                recorded += 1;
            }
        }
        if recorded == 0 || !configured {
            return Ok(AlertsRaised { recorded, delivery_scheduled: false });
        }
        self.schedule_delivery().await?;
        Ok(AlertsRaised { recorded, delivery_scheduled: true })
    }

    /// Enqueues the delivery job after the grouping delay; a no-op while one is pending.
    pub async fn schedule_delivery(&self) -> Result<(), AlertError> {
        let delay = time::Duration::try_from(self.inner.grouping_delay).unwrap_or(time::Duration::ZERO);
        let job = NewJob::new(ALERTS_QUEUE, DELIVER_ALERTS_KIND, json!({}))
            .unique_key(DELIVER_ALERTS_KEY)
            .run_at(mentorfy_store::now() + delay)
            .max_attempts(DELIVERY_ATTEMPTS);
        self.store().enqueue(&job).await?;
        Ok(())
    }

    /// Delivers the pending alerts: one message each when there are at most [`DIGEST_THRESHOLD`], else one
    /// digest. `Err` with a retryable [`DeliveryError`] when a later attempt may pass (the unsent alerts stay
    /// pending); with `last_attempt` they are marked failed instead. Permanent errors mark them failed and the
    /// webhook failing.
    pub async fn deliver_pending(&self, last_attempt: bool) -> Result<DeliveryReport, DeliverError> {
        let store = self.store();
        let (token, events) = store.claim_pending_alert_events(Duration::from_secs(120), 500).await?;
        let mut report = DeliveryReport::default();
        if events.is_empty() {
            return Ok(report);
        }
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let Some(url) = self.webhook().await? else {
            // The webhook was removed after the alerts were raised.
            store.mark_alert_events_failed(token, &ids, "no webhook configured").await?;
            report.failed = ids.len();
            return Ok(report);
        };
        let batches: Vec<(Vec<Uuid>, Value, Option<NewAlertEvent>)> = if events.len() <= DIGEST_THRESHOLD {
            events.iter().map(|e| (vec![e.id], message_of(e), None)).collect()
        } else {
            let (message, digest) = digest_of(&events, &self.inner.config.public_url, token);
            vec![(ids.clone(), message, Some(digest))]
        };
        let mut remaining: Vec<Uuid> = ids;
        for (batch, message, digest) in batches {
            match self.inner.sender.post_json(&url, &message).await {
                Ok(()) => {
                    let digest_id = match digest {
                        Some(d) => store.insert_alert_event(&d).await?.map(|row| row.id),
                        None => None,
                    };
                    store.mark_alert_events_sent(token, &batch, digest_id).await?;
                    if report.messages == 0 {
                        store.set_slack_webhook_failing(None).await?;
                    }
                    remaining.retain(|id| !batch.contains(id));
                    report.sent += batch.len();
                    report.messages += 1;
                }
                Err(e) if e.is_retryable() && !last_attempt => {
                    store.release_alert_events(token, &remaining, &e.to_string()).await?;
                    return Err(DeliverError::Delivery(e));
                }
                Err(e) => {
                    store.mark_alert_events_failed(token, &remaining, &e.to_string()).await?;
                    if !e.is_retryable() {
                        store.set_slack_webhook_failing(Some(&e.to_string())).await?;
                    }
                    report.failed += remaining.len();
                    return Ok(report);
                }
            }
        }
        Ok(report)
    }

    /// Sends a test message to `url_override` (validated under this service's policy) or to the webhook in
    /// force, through the same path as real alerts, and records it as a `test` alert event. Returns a status
    /// class only. The caller (the settings API) rate-limits it.
    pub async fn send_test_alert(&self, url_override: Option<&str>) -> Result<TestAlertOutcome, AlertError> {
        let url = match url_override {
            Some(raw) => match validate_with_policy(raw, self.inner.policy) {
                Ok(u) => u,
                Err(e) => return Ok(TestAlertOutcome::InvalidUrl(e)),
            },
            None => match self.webhook().await? {
                Some(u) => u,
                None => return Ok(TestAlertOutcome::NotConfigured),
            },
        };
        let title = "Sensei test alert".to_owned();
        let message = json!({
            "text": title,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "Alerts from Sensei will arrive in this channel."}},
                link_block(&format!("{}/dashboard", self.inner.config.public_url), "Open the dashboard"),
            ],
        });
        let result = self.inner.sender.post_json(&url, &message).await;
        let (status, outcome) = match &result {
            Ok(()) => ("sent", TestAlertOutcome::Sent),
            Err(e) => ("failed", TestAlertOutcome::Failed(e.to_string())),
        };
        let event = NewAlertEvent {
            kind: AlertKind::Test.as_str().to_owned(),
            conversation_id: None,
            failure_id: None,
            dedupe_key: format!("test:{}", Uuid::now_v7()),
            severity: None,
            title,
            payload: json!({"facts": {"target": if url.is_slack() { "slack" } else { "generic" }}, "message": message}),
            status: status.to_owned(),
            digest_id: None,
        };
        self.store().insert_alert_event(&event).await?;
        if url_override.is_none() {
            match &result {
                Ok(()) => {
                    self.store().set_slack_webhook_failing(None).await?;
                }
                Err(e) if !e.is_retryable() => {
                    self.store().set_slack_webhook_failing(Some(&e.to_string())).await?;
                }
                Err(_) => {}
            }
        }
        Ok(outcome)
    }
}

/// Why a delivery run failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Alerts(#[from] AlertError),
    /// A retryable delivery failure (429, 5xx, network).
    #[error("alert delivery failed: {0}")]
    Delivery(DeliveryError),
}

/// Registers the delivery job. Its queue is [`ALERTS_QUEUE`]: workers restricted to a queue list must include it.
pub fn register(registry: &mut Registry, alerts: &Alerts) {
    let a = alerts.clone();
    registry.register_fn(DELIVER_ALERTS_KIND, move |ctx| {
        let a = a.clone();
        async move {
            let max = ctx.job.max_attempts.unwrap_or(DELIVERY_ATTEMPTS);
            let last_attempt = ctx.job.attempts >= max;
            match a.deliver_pending(last_attempt).await {
                Ok(report) => {
                    if report.failed > 0 {
                        tracing::warn!(failed = report.failed, sent = report.sent, "alerts could not be delivered");
                    }
                    Ok(())
                }
                Err(DeliverError::Delivery(e)) => {
                    let err = JobError::retryable(e.to_string());
                    Err(match e.retry_after() {
                        Some(after) => err.retry_after(after),
                        None => err,
                    })
                }
                Err(e) => Err(JobError::retryable(e.to_string())),
            }
        }
    });
}

/// `<public_url>/dashboard/conversations/<id>`.
pub fn conversation_link(public_url: &str, conversation_id: Uuid) -> String {
    format!("{}/dashboard/conversations/{conversation_id}", public_url.trim_end_matches('/'))
}

/// Escapes text for Slack mrkdwn (`&`, `<`, `>`).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn cut(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

fn link_block(url: &str, label: &str) -> Value {
    json!({"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}
    ]})
}

fn field(label: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", esc(value))})
}

fn failure_alert(public_url: &str, conv: &ConversationRow, f: &FailureRow) -> NewAlert {
    let link = conversation_link(public_url, conv.id);
    let title = cut(&format!("{} failure: {}", capitalise(&f.severity), f.kind), 140);
    let evidence = cut(&f.evidence, EVIDENCE_CHARS);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": title}}),
        json!({"type": "section", "fields": [
            field("Failure", &f.kind),
            field("Severity", &f.severity),
            field("Conversation", &conv.external_id),
            field("Environment", &conv.environment),
        ]}),
    ];
    if !evidence.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(">{}", esc(&evidence))}}));
    }
    blocks.push(link_block(&link, "Open conversation"));
    let message = json!({"text": format!("{title} in conversation {}", conv.external_id), "blocks": blocks});
    NewAlert {
        kind: AlertKind::Failure,
        conversation_id: Some(conv.id),
        failure_id: Some(f.id),
        dedupe_key: format!("failure:{}", f.id),
        severity: parse_severity(&f.severity),
        title,
        payload: json!({
            "facts": {"failure_type": f.kind, "severity": f.severity, "external_id": conv.external_id,
                      "environment": conv.environment, "evidence": evidence, "link": link},
            "message": message,
        }),
    }
}

fn health_alert(public_url: &str, conv: &ConversationRow, score: f64, below: f64) -> NewAlert {
    let link = conversation_link(public_url, conv.id);
    let title = format!("Conversation ended with health {score:.0} (below {below:.0})");
    let final_at = conv.final_at.map(|t| t.unix_timestamp_nanos().to_string()).unwrap_or_default();
    let message = json!({"text": format!("{title}: {}", conv.external_id), "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        {"type": "section", "fields": [
            field("Health", &format!("{score:.0} / 100")),
            field("Failures", &conv.failure_count.to_string()),
            field("Conversation", &conv.external_id),
            field("Environment", &conv.environment),
        ]},
        link_block(&link, "Open conversation"),
    ]});
    NewAlert {
        kind: AlertKind::Health,
        conversation_id: Some(conv.id),
        failure_id: None,
        // A conversation that reopens and becomes final again gets a new final_at, so it can alert again.
        dedupe_key: format!("health:{}:{final_at}", conv.id),
        severity: Some(Severity::High),
        title,
        payload: json!({
            "facts": {"health": score, "threshold": below, "external_id": conv.external_id,
                      "environment": conv.environment, "link": link},
            "message": message,
        }),
    }
}

fn rate_alert(
    public_url: &str,
    kind: &str,
    rate: mentorfy_store::FailureRate,
    share: f64,
    window: Duration,
) -> NewAlert {
    let pct = rate.share() * 100.0;
    let title = cut(&format!("{kind} in {pct:.0}% of conversations (threshold {:.0}%)", share * 100.0), 140);
    let link = format!("{}/dashboard/failures?type={kind}", public_url.trim_end_matches('/'));
    let window_text = human_window(window);
    let message = json!({"text": title, "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        {"type": "section", "fields": [
            field("Failure", kind),
            field("Rate", &format!("{} of {} conversations", rate.failing, rate.conversations)),
            field("Window", &window_text),
        ]},
        link_block(&link, "Open failures"),
    ]});
    NewAlert {
        kind: AlertKind::FailureRate,
        conversation_id: None,
        failure_id: None,
        // Firing is made unique by the rule's edge trigger; each firing is its own event.
        dedupe_key: format!("failure_rate:{kind}:{}", Uuid::now_v7()),
        severity: Some(Severity::High),
        title,
        payload: json!({
            "facts": {"failure_type": kind, "failing": rate.failing, "conversations": rate.conversations,
                      "share": rate.share(), "threshold": share, "window_secs": window.as_secs(), "link": link},
            "message": message,
        }),
    }
}

fn human_window(w: Duration) -> String {
    let s = w.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The stored Slack message of an event (its payload's `message`), or a plain one from its title.
fn message_of(e: &AlertEventRow) -> Value {
    e.payload.get("message").cloned().unwrap_or_else(|| json!({"text": e.title}))
}

/// One digest message for `events`, and the `digest` alert event that records it.
fn digest_of(events: &[AlertEventRow], public_url: &str, token: Uuid) -> (Value, NewAlertEvent) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in events {
        *counts.entry(e.kind.as_str()).or_default() += 1;
    }
    let title = format!("{} Sensei alerts", events.len());
    let summary = counts.iter().map(|(k, n)| format!("{n} {}", k.replace('_', " "))).collect::<Vec<_>>().join(" · ");
    // Most severe first, then oldest.
    let mut top: Vec<&AlertEventRow> = events.iter().collect();
    top.sort_by_key(|e| std::cmp::Reverse(e.severity.as_deref().and_then(parse_severity)));
    let lines: Vec<String> = top
        .iter()
        .take(DIGEST_ITEMS)
        .map(|e| match e.payload.pointer("/facts/link").and_then(Value::as_str) {
            Some(link) => format!("• <{link}|{}>", esc(&e.title)),
            None => format!("• {}", esc(&e.title)),
        })
        .collect();
    let mut text = lines.join("\n");
    if events.len() > DIGEST_ITEMS {
        text.push_str(&format!("\n…and {} more", events.len() - DIGEST_ITEMS));
    }
    let message = json!({"text": format!("{title}: {summary}"), "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        {"type": "section", "text": {"type": "mrkdwn", "text": esc(&summary)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        link_block(&format!("{}/dashboard/failures", public_url.trim_end_matches('/')), "Open failures"),
    ]});
    let digest = NewAlertEvent {
        kind: AlertKind::Digest.as_str().to_owned(),
        conversation_id: None,
        failure_id: None,
        dedupe_key: format!("digest:{token}"),
        severity: None,
        title,
        payload: json!({"facts": {"counts": counts, "alerts": events.iter().map(|e| e.id).collect::<Vec<_>>()},
                        "message": message}),
        status: "sent".to_owned(),
        digest_id: None,
    };
    (message, digest)
}
