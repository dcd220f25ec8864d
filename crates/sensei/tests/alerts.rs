#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns
//! Alerts end to end on both backends, against the fake Slack webhook: one message per alert with a deep link,
//! dedupe, digests, retry on 429, no retry on 404, edge-triggered rate rules, suppression without a webhook,
//! the test alert, and the webhook URL validation and redaction table.

use std::time::Duration;

use mentorfy_core::Secret;
use mentorfy_core::config::AlertConfig;
use mentorfy_fakes::slack::{FakeSlack, SlackFailure};
use mentorfy_jobs::Registry;
use mentorfy_sensei::alerts::{Alerts, DELIVER_ALERTS_KIND, DeliverError, TestAlertOutcome, register};
use mentorfy_sensei::analysis::{Transcript, analyse};
use mentorfy_sensei::pipeline::Processed;
use mentorfy_sensei::webhook::{
    DeliveryError, WebhookError, WebhookPolicy, is_blocked_ip, validate_webhook_url, validate_with_policy,
};
use mentorfy_store::{
    AnalysisWrite, FailureWrite, IngestWrite, IngestWriteOutcome, IngestedMessage, NewConversation, NewJob, Store,
};
use mentorfy_test_support::{TestDb, both_backends};
use serde_json::json;
use uuid::Uuid;

both_backends!(
    a_frustrated_user_asking_for_a_human_through_the_real_pipeline_gives_one_slack_message,
    one_high_failure_sends_one_slack_message_with_a_deep_link_and_never_stores_the_url,
    the_same_outcome_twice_alerts_once,
    five_alerts_at_once_go_out_as_one_digest,
    rate_limited_delivery_is_retried_after_retry_after_and_then_sent,
    not_found_marks_alerts_failed_without_retrying,
    failure_rate_alert_fires_once_on_crossing_and_rearms_after_recovery,
    analysing_a_backlog_of_old_conversations_does_not_count_toward_the_failure_rate,
    low_final_health_alerts_once,
    without_a_webhook_alerts_are_suppressed_and_nothing_is_enqueued,
    test_alert_uses_the_same_path_and_is_recorded,
);

const PUBLIC_URL: &str = "https://sensei.example.com";

fn config(webhook: Option<String>) -> AlertConfig {
    AlertConfig {
        slack_webhook_url: webhook.map(Secret::new),
        min_severity: Some("high".to_owned()),
        health_below: 40.0,
        failure_rate: None,
        public_url: PUBLIC_URL.to_owned(),
    }
}

fn alerts(store: &Store, config: AlertConfig) -> Alerts {
    Alerts::with_policy(store.clone(), config, WebhookPolicy::loopback_for_tests(), Duration::ZERO).unwrap()
}

async fn conversation(store: &Store, external_id: &str) -> Uuid {
    store
        .upsert_conversation(NewConversation {
            source: "api",
            environment: "staging",
            external_id,
            org_id: None,
            agent_id: None,
            user_id: None,
            metadata: json!({}),
        })
        .await
        .unwrap()
        .id
}

fn failure(kind: &str, severity: &str, n: usize) -> FailureWrite {
    FailureWrite {
        message_id: None,
        kind: kind.to_owned(),
        severity: severity.to_owned(),
        evidence: format!("this is useless, I asked {n} times"),
        detector: "test".to_owned(),
        detector_version: 1,
        fingerprint: format!("test:{kind}:{n}"),
        details: json!({}),
    }
}

/// Stores an analysis with `failures` and returns what the pipeline would hand to the alerts.
async fn analysed(store: &Store, conversation_id: Uuid, failures: Vec<FailureWrite>, is_final: bool) -> Processed {
    let conv = store.get_conversation(conversation_id).await.unwrap().unwrap();
    let stored = store
        .save_analysis(&AnalysisWrite {
            conversation_id,
            seen_last_message_at: conv.last_message_at,
            sentiments: Vec::new(),
            failures,
            health_score: 90.0,
            health_breakdown: json!({}),
            avg_sentiment: None,
            is_final,
        })
        .await
        .unwrap();
    Processed { conversation_id, analysis: analyse(&Transcript::default()), stored, is_final }
}

/// Every stored alert event as text, to look for the secret.
async fn events_text(store: &Store) -> String {
    format!("{:?}", store.list_alert_events(1000).await.unwrap())
}

async fn one_high_failure_sends_one_slack_message_with_a_deep_link_and_never_stores_the_url(db: TestDb) {
    let store = db.store().await;
    let slack = FakeSlack::start().await;
    let alerts = alerts(&store, config(Some(slack.webhook_url())));
    let conv = conversation(&store, "conv-ext-1").await;
    let p = analysed(&store, conv, vec![failure("user_frustration", "high", 1), failure("slow_turn", "low", 2)], false)
        .await;

    let raised = alerts.on_processed(&p).await.unwrap();
    assert_eq!(raised.recorded, 1, "only the high-severity failure alerts");
    assert!(raised.delivery_scheduled);

    let report = alerts.deliver_pending(false).await.unwrap();
    assert_eq!((report.sent, report.messages), (1, 1));
    let delivered = slack.delivered();
    assert_eq!(delivered.len(), 1);
    let body = delivered[0].to_string();
    assert!(body.contains(&format!("{PUBLIC_URL}/dashboard/conversations/{conv}")), "{body}");
    assert!(body.contains("user_frustration") && body.contains("conv-ext-1") && body.contains("staging"), "{body}");
    assert!(body.contains("I asked 1 times"), "evidence excerpt: {body}");
    assert!(delivered[0]["blocks"].is_array());

    let events = store.list_alert_events(10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].kind.as_str(), events[0].status.as_str()), ("failure", "sent"));
    assert_eq!(events[0].conversation_id, Some(conv));
    assert_eq!(events[0].attempts, 1);
    assert!(events[0].sent_at.is_some());
    let text = events_text(&store).await;
    assert!(!text.contains("xoxTestSecret123") && !text.contains(&slack.url()), "webhook URL leaked: {text}");
}

async fn the_same_outcome_twice_alerts_once(db: TestDb) {
    let store = db.store().await;
    let slack = FakeSlack::start().await;
    let alerts = alerts(&store, config(Some(slack.webhook_url())));
    let conv = conversation(&store, "conv-dup").await;
    let p = analysed(&store, conv, vec![failure("agent_refusal", "critical", 1)], false).await;

    assert_eq!(alerts.on_processed(&p).await.unwrap().recorded, 1);
    alerts.deliver_pending(false).await.unwrap();
    assert_eq!(alerts.on_processed(&p).await.unwrap().recorded, 0, "same failure id, same dedupe key");
    // A re-analysis that finds the same failure again reports no new failure at all.
    let again = analysed(&store, conv, vec![failure("agent_refusal", "critical", 1)], false).await;
    assert!(again.stored.new_failures.is_empty());
    assert_eq!(alerts.on_processed(&again).await.unwrap().recorded, 0);
    alerts.deliver_pending(false).await.unwrap();
    assert_eq!(slack.requests().len(), 1);
}

async fn five_alerts_at_once_go_out_as_one_digest(db: TestDb) {
    let store = db.store().await;
    let slack = FakeSlack::start().await;
    let alerts = alerts(&store, config(Some(slack.webhook_url())));
    let conv = conversation(&store, "conv-many").await;
    let failures = (0..5).map(|n| failure("escalation_request", "high", n)).collect();
    let p = analysed(&store, conv, failures, false).await;
    assert_eq!(alerts.on_processed(&p).await.unwrap().recorded, 5);

    let report = alerts.deliver_pending(false).await.unwrap();
    assert_eq!((report.sent, report.messages), (5, 1));
    let delivered = slack.delivered();
    assert_eq!(delivered.len(), 1, "one digest");
    let body = delivered[0].to_string();
    assert!(body.contains("5 Sensei alerts") && body.contains("5 failure"), "{body}");
    assert!(body.contains(&format!("/dashboard/conversations/{conv}")), "{body}");

    let events = store.list_alert_events(100).await.unwrap();
    let digest = events.iter().find(|e| e.kind == "digest").expect("a digest event");
    assert_eq!(digest.status, "sent");
    let members: Vec<_> = events.iter().filter(|e| e.kind == "failure").collect();
    assert_eq!(members.len(), 5);
    assert!(members.iter().all(|e| e.status == "sent" && e.digest_id == Some(digest.id)));
    assert!(!events_text(&store).await.contains("xoxTestSecret123"));
}

async fn rate_limited_delivery_is_retried_after_retry_after_and_then_sent(db: TestDb) {
    let store = db.store().await;
    let slack = FakeSlack::start().await;
    let alerts = alerts(&store, config(Some(slack.webhook_url())));
    let conv = conversation(&store, "conv-429").await;
    let p = analysed(&store, conv, vec![failure("tool_error", "high", 1)], false).await;
    alerts.on_processed(&p).await.unwrap();
    slack.fail_next(1, SlackFailure::RateLimited { retry_after: 7 });

    // Through the registered handler, as a worker would run it.
    let mut registry = Registry::new();
    register(&mut registry, &alerts);
    let handler = registry.get(DELIVER_ALERTS_KIND).expect("registered");
    let job = claim_delivery_job(&store).await;
    let err = handler
        .run(mentorfy_jobs::JobContext { job: job.clone(), cancelled: Default::default() })
        .await
        .expect_err("429 is retried");
    assert!(!err.is_permanent());
    assert_eq!(err.retry_after_hint(), Some(Duration::from_secs(7)));
    assert!(!err.message().contains("xoxTestSecret123") && !err.message().contains(&slack.url()));
    let events = store.list_alert_events(10).await.unwrap();
    assert_eq!((events[0].status.as_str(), events[0].attempts), ("pending", 1));
    assert_eq!(events[0].last_error.as_deref(), Some("http 429 (rate limited)"));

    // The retry delivers.
    handler.run(mentorfy_jobs::JobContext { job, cancelled: Default::default() }).await.unwrap();
    assert_eq!(slack.requests().len(), 2);
    assert_eq!(slack.delivered().len(), 1);
    let events = store.list_alert_events(10).await.unwrap();
    assert_eq!((events[0].status.as_str(), events[0].attempts), ("sent", 2));
}

/// The delivery job that `on_processed` enqueued, claimed as a worker would.
async fn claim_delivery_job(store: &Store) -> mentorfy_store::Job {
    let claimed =
        store.claim_kinds(&[], &[DELIVER_ALERTS_KIND], "test-worker", Duration::from_secs(60), 1).await.unwrap();
    claimed.into_iter().next().expect("a delivery job was enqueued")
}

async fn not_found_marks_alerts_failed_without_retrying(db: TestDb) {
    let store = db.store().await;
    let slack = FakeSlack::start().await;
    let alerts = alerts(&store, config(Some(slack.webhook_url())));
    let conv = conversation(&store, "conv-404").await;
    let p = analysed(&store, conv, vec![failure("tool_error", "high", 1)], false).await;
    alerts.on_processed(&p).await.unwrap();
    slack.fail_next(1, SlackFailure::NoService);

    let report = alerts.deliver_pending(false).await.expect("a permanent error is not retried");
    assert_eq!((report.sent, report.failed), (0, 1));
    let events = store.list_alert_events(10).await.unwrap();
    assert_eq!(events[0].status, "failed");
    assert_eq!(events[0].last_error.as_deref(), Some("http 404 (rejected)"));
    let again = alerts.deliver_pending(false).await.unwrap();
    assert_eq!(again, Default::default());
    assert_eq!(slack.requests().len(), 1, "not retried");
}

async fn failure_rate_alert_fires_once_on_crossing_and_rearms_after_recovery(db: TestDb) {
    let store = db.store().await;
    let slack = FakeSlack::start().await;
    let cfg = AlertConfig {
        min_severity: None,
        failure_rate: Some((0.5, Duration::from_secs(3600))),
        ..config(Some(slack.webhook_url()))
    };
    let alerts = alerts(&store, cfg);
    let mut convs = Vec::new();
    for i in 0..5 {
        convs.push(conversation(&store, &format!("rate-{i}")).await);
    }
    let mut rate_alerts = 0;
    // 1/5, 2/5: below; 3/5 > 50 %: fires; 4/5: still above, disarmed, silent.
    for (i, conv) in convs.iter().take(4).enumerate() {
        let p = analysed(&store, *conv, vec![failure("tool_error", "low", i)], false).await;
        let fired = alerts.evaluate(&p).await.unwrap();
        assert!(fired.iter().all(|a| a.dedupe_key.starts_with("failure_rate:tool_error:")));
        rate_alerts += fired.len();
        if i == 2 {
            assert_eq!(fired.len(), 1, "fires on crossing");
            alerts.raise(fired).await.unwrap();
        } else {
            assert!(fired.is_empty(), "step {i}");
        }
    }
    assert_eq!(rate_alerts, 1);
    assert!(!store.alert_rule_state("failure_rate:tool_error").await.unwrap().unwrap().armed);

    // Recovery: 4 of 10 conversations = 40 % ≤ 0.8 × 50 %. Any later analysis re-arms the rule.
    for i in 5..10 {
        convs.push(conversation(&store, &format!("rate-{i}")).await);
    }
    let quiet = analysed(&store, convs[9], Vec::new(), false).await;
    assert!(alerts.evaluate(&quiet).await.unwrap().is_empty());
    assert!(store.alert_rule_state("failure_rate:tool_error").await.unwrap().unwrap().armed, "re-armed");

    // Crossing again (6 of 10) fires again, once.
    let p = analysed(&store, convs[5], vec![failure("tool_error", "low", 50)], false).await;
    assert!(alerts.evaluate(&p).await.unwrap().is_empty(), "5/10 is not above 50 %");
    let p = analysed(&store, convs[6], vec![failure("tool_error", "low", 60)], false).await;
    let fired = alerts.evaluate(&p).await.unwrap();
    assert_eq!(fired.len(), 1);
    alerts.raise(fired).await.unwrap();
    alerts.deliver_pending(false).await.unwrap();
    let delivered = slack.delivered();
    assert_eq!(delivered.len(), 2, "two crossings, two messages");
    assert!(delivered[1].to_string().contains("tool_error in 60% of conversations"), "{}", delivered[1]);
}

/// A conversation whose one message was written `ago` before now (through ingestion, which keeps that time).
async fn old_conversation(store: &Store, external_id: &str, ago: time::Duration) -> Uuid {
    let write = IngestWrite {
        event_id: None,
        api_key_id: None,
        source: "api".into(),
        environment: "staging".into(),
        external_id: external_id.into(),
        user_id: None,
        agent_id: None,
        metadata: json!({}),
        messages: vec![IngestedMessage {
            external_id: "m1".into(),
            role: "user".into(),
            content: "the export keeps failing".into(),
            status: "complete".into(),
            finish_reason: None,
            input_tokens: None,
            output_tokens: None,
            latency_ms: None,
            ttft_ms: None,
            metadata: json!({}),
            created_at: mentorfy_store::now() - ago,
        }],
    };
    match store.ingest(&[write], &|_| NewJob::new("test", "noop", json!({}))).await.unwrap()[0] {
        IngestWriteOutcome::Stored { conversation_id, .. } => conversation_id,
        other => panic!("not stored: {other:?}"),
    }
}

/// The rate compares failures and conversations of the same window, both dated by when they happened: failures
/// found now in conversations of three days ago (a backlog being analysed) are not "4 of the last hour's 5".
async fn analysing_a_backlog_of_old_conversations_does_not_count_toward_the_failure_rate(db: TestDb) {
    let store = db.store().await;
    let slack = FakeSlack::start().await;
    let cfg = AlertConfig {
        min_severity: None,
        failure_rate: Some((0.5, Duration::from_secs(3600))),
        ..config(Some(slack.webhook_url()))
    };
    let alerts = alerts(&store, cfg);
    let mut recent = Vec::new();
    for i in 0..5 {
        recent.push(conversation(&store, &format!("recent-{i}")).await);
    }
    for i in 0..4 {
        let old = old_conversation(&store, &format!("old-{i}"), time::Duration::days(3)).await;
        let p = analysed(&store, old, vec![failure("tool_error", "low", i)], false).await;
        assert!(alerts.evaluate(&p).await.unwrap().is_empty(), "old conversation {i}");
    }
    let since = mentorfy_store::now() - time::Duration::HOUR;
    let rate = store.failure_type_rate("tool_error", since).await.unwrap();
    assert_eq!((rate.failing, rate.conversations), (0, 5));

    // A recent one failing counts: 1 of 5.
    analysed(&store, recent[0], vec![failure("tool_error", "low", 9)], false).await;
    let rate = store.failure_type_rate("tool_error", since).await.unwrap();
    assert_eq!((rate.failing, rate.conversations), (1, 5));
}

async fn low_final_health_alerts_once(db: TestDb) {
    let store = db.store().await;
    let slack = FakeSlack::start().await;
    let alerts = alerts(&store, config(Some(slack.webhook_url())));
    let conv = conversation(&store, "conv-health").await;
    let mut p = analysed(&store, conv, Vec::new(), true).await;
    assert!(p.stored.became_final);
    p.analysis.health.score = 22.0;
    let fired = alerts.evaluate(&p).await.unwrap();
    assert_eq!(fired.len(), 1);
    assert!(fired[0].dedupe_key.starts_with(&format!("health:{conv}:")));
    assert_eq!(alerts.raise(fired).await.unwrap().recorded, 1);
    assert_eq!(alerts.on_processed(&p).await.unwrap().recorded, 0, "deduplicated");
    // Healthy or not final: nothing.
    let mut healthy = p.clone();
    healthy.analysis.health.score = 80.0;
    assert!(alerts.evaluate(&healthy).await.unwrap().is_empty());
    alerts.deliver_pending(false).await.unwrap();
    let delivered = slack.delivered();
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].to_string().contains("health 22 (below 40)"), "{}", delivered[0]);
}

async fn without_a_webhook_alerts_are_suppressed_and_nothing_is_enqueued(db: TestDb) {
    let store = db.store().await;
    let alerts = alerts(&store, config(None));
    let conv = conversation(&store, "conv-quiet").await;
    let p = analysed(&store, conv, vec![failure("user_frustration", "critical", 1)], false).await;
    let raised = alerts.on_processed(&p).await.unwrap();
    assert_eq!(raised.recorded, 1);
    assert!(!raised.delivery_scheduled);
    let events = store.list_alert_events(10).await.unwrap();
    assert_eq!(events[0].status, "suppressed");
    let claimed = store.claim_kinds(&[], &[DELIVER_ALERTS_KIND], "w", Duration::from_secs(60), 1).await.unwrap();
    assert!(claimed.is_empty(), "no delivery job");
    assert_eq!(alerts.deliver_pending(false).await.unwrap(), Default::default());
}

async fn test_alert_uses_the_same_path_and_is_recorded(db: TestDb) {
    let store = db.store().await;
    let slack = FakeSlack::start().await;
    let alerts = alerts(&store, config(None));
    assert_eq!(alerts.send_test_alert(None).await.unwrap(), TestAlertOutcome::NotConfigured);
    assert_eq!(alerts.send_test_alert(Some(&slack.webhook_url())).await.unwrap(), TestAlertOutcome::Sent);
    assert_eq!(
        alerts.send_test_alert(Some("https://evil.example.com/services/x")).await.unwrap(),
        TestAlertOutcome::InvalidUrl(WebhookError::NotSlack)
    );
    slack.fail_next(1, SlackFailure::NoService);
    assert_eq!(
        alerts.send_test_alert(Some(&slack.webhook_url())).await.unwrap(),
        TestAlertOutcome::Failed("http 404 (rejected)".to_owned())
    );
    let events = store.list_alert_events(10).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "test").count(), 2);
    assert!(events.iter().any(|e| e.kind == "test" && e.status == "sent"));
    assert!(events.iter().any(|e| e.kind == "test" && e.status == "failed"));
    assert_eq!(slack.delivered().len(), 1);
    assert!(!events_text(&store).await.contains("xoxTestSecret123"));
}

#[test]
fn webhook_urls_are_validated_per_the_ssrf_rules() {
    let slack = "https://hooks.slack.com/services/T0123ABC/B0456DEF/abcdefSECRETxyz";
    let ok = validate_webhook_url(slack, false).unwrap();
    assert!(ok.is_slack());
    assert_eq!(ok.expose(), slack);
    assert!(validate_webhook_url("https://HOOKS.SLACK.COM:443/services/T1/B2/s", false).is_ok());

    let refused: &[(&str, bool, WebhookError)] = &[
        ("http://hooks.slack.com/services/T1/B2/s", false, WebhookError::NotHttps),
        ("https://hooks.slack.com:8443/services/T1/B2/s", false, WebhookError::Port),
        ("https://hooks.slack.com/api/T1/B2/s", false, WebhookError::NotSlackPath),
        ("https://hooks.slack.com./services/T1/B2/s", false, WebhookError::NotSlack),
        ("https://user:pw@hooks.slack.com/services/T1/B2/s", false, WebhookError::UserInfo),
        ("https://hooks.slack.com/services/T1/B2/s#frag", false, WebhookError::Fragment),
        ("https://example.com/hook", false, WebhookError::NotSlack),
        ("https://1.2.3.4/services/T1/B2/s", false, WebhookError::NotSlack),
        ("not a url", false, WebhookError::Unparseable),
        // Generic mode: the SSRF table.
        ("http://example.com/hook", true, WebhookError::NotHttps),
        ("https://example.com:8443/hook", true, WebhookError::Port),
        ("https://user@example.com/hook", true, WebhookError::UserInfo),
        ("https://localhost/hook", true, WebhookError::LocalHost),
        ("https://api.localhost/hook", true, WebhookError::LocalHost),
        ("https://intranet/hook", true, WebhookError::LocalHost),
        ("https://127.0.0.1/hook", true, WebhookError::BlockedAddress),
        ("https://2130706433/hook", true, WebhookError::BlockedAddress),
        ("https://0x7f.1/hook", true, WebhookError::BlockedAddress),
        ("https://10.0.0.5/hook", true, WebhookError::BlockedAddress),
        ("https://172.16.3.4/hook", true, WebhookError::BlockedAddress),
        ("https://192.168.1.1/hook", true, WebhookError::BlockedAddress),
        ("https://169.254.169.254/latest/meta-data", true, WebhookError::BlockedAddress),
        ("https://100.64.1.2/hook", true, WebhookError::BlockedAddress),
        ("https://0.0.0.0/hook", true, WebhookError::BlockedAddress),
        ("https://[::1]/hook", true, WebhookError::BlockedAddress),
        ("https://[fc00::1]/hook", true, WebhookError::BlockedAddress),
        ("https://[fd00:ec2::254]/hook", true, WebhookError::BlockedAddress),
        ("https://[fe80::1]/hook", true, WebhookError::BlockedAddress),
        ("https://[::ffff:127.0.0.1]/hook", true, WebhookError::BlockedAddress),
        ("https://[::ffff:169.254.169.254]/hook", true, WebhookError::BlockedAddress),
        ("https://[64:ff9b::a00:1]/hook", true, WebhookError::BlockedAddress),
        ("https://[2002:a00:1::]/hook", true, WebhookError::BlockedAddress),
    ];
    for (url, generic, want) in refused {
        assert_eq!(validate_webhook_url(url, *generic).as_ref().err(), Some(want), "{url}");
    }
    // Generic public targets pass the static checks (their DNS answers are checked, and pinned, on send).
    assert!(validate_webhook_url("https://example.com/hook", true).is_ok());
    assert!(validate_webhook_url("https://8.8.8.8/hook", true).is_ok());
    // The test-only loopback policy admits loopback literals only.
    assert!(validate_with_policy("http://127.0.0.1:3000/services/T/B/s", WebhookPolicy::loopback_for_tests()).is_ok());
    assert!(validate_with_policy("http://127.0.0.1:3000/services/T/B/s", WebhookPolicy::default()).is_err());
    assert!(validate_with_policy("http://10.0.0.1:3000/services/T/B/s", WebhookPolicy::loopback_for_tests()).is_err());

    assert!(is_blocked_ip("198.18.0.1".parse().unwrap()) && !is_blocked_ip("93.184.216.34".parse().unwrap()));
}

#[test]
fn webhook_urls_are_redacted_in_debug_and_display() {
    let url =
        validate_webhook_url("https://hooks.slack.com/services/T0123ABC/B0456DEF/abcdefSECRETxyz", false).unwrap();
    assert_eq!(url.to_string(), "https://hooks.slack.com/services/T…/B…/****");
    let debug = format!("{url:?}");
    assert!(!debug.contains("SECRET") && !debug.contains("0123ABC"), "{debug}");
    let generic = validate_webhook_url("https://example.com/hooks/secret-token", true).unwrap();
    assert_eq!(generic.to_string(), "https://example.com/****");
    // Errors never carry the URL.
    let err = DeliveryError::Rejected { status: 404 }.to_string();
    assert_eq!(err, "http 404 (rejected)");
    let _ = DeliverError::Delivery(DeliveryError::Network("timeout")).to_string();
}

/// The "done when": ingest a conversation where the user grows frustrated and asks for a human, run the
/// real analysis, and the fake Slack receives exactly one message (a digest when several alerts fire together)
/// naming the conversation; a happy conversation sends nothing.
async fn a_frustrated_user_asking_for_a_human_through_the_real_pipeline_gives_one_slack_message(db: TestDb) {
    use mentorfy_sensei::ingest::{IngestConversation, IngestMessage, Role};
    use mentorfy_sensei::{Ingestor, KeyContext, Source};

    let store = db.store().await;
    let slack = FakeSlack::start().await;
    let alerts = alerts(&store, config(Some(slack.webhook_url())));
    let ingestor = Ingestor::new(store.clone(), Duration::ZERO);
    let key = KeyContext { api_key_id: None, environment: "production".to_owned() };
    let start = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let conv = |id: &str, lines: &[(Role, &str)]| IngestConversation {
        external_id: id.to_owned(),
        environment: None,
        user_id: None,
        agent_id: None,
        metadata: serde_json::Map::new(),
        messages: lines
            .iter()
            .enumerate()
            .map(|(i, (role, text))| {
                IngestMessage::new(None, *role, (*text).to_owned(), start + time::Duration::seconds(30 * i as i64))
            })
            .collect(),
    };
    let angry = conv(
        "angry-1",
        &[
            (Role::User, "Hi, I was charged twice for my subscription this month."),
            (Role::Assistant, "I'm sorry to hear that. Could you tell me the email on your account?"),
            (Role::User, "It's ana@example.com. Please fix the double charge."),
            (Role::Assistant, "I can't help with billing issues. Is there anything else I can do for you?"),
            (Role::User, "This is useless!!! I already told you I was charged twice. I want a refund NOW."),
            (Role::Assistant, "I'm sorry, I can't help with that."),
            (Role::User, "Can I talk to a human please? This is ridiculous."),
        ],
    );
    let happy = conv(
        "happy-1",
        &[
            (Role::User, "How do I export my data to CSV?"),
            (Role::Assistant, "Settings, then Data, then Export: choose CSV and it downloads."),
            (Role::User, "Perfect, thanks a lot!"),
        ],
    );
    let stored = ingestor.ingest(Source::Api, &key, vec![angry, happy]).await.unwrap();
    let pipeline = mentorfy_sensei::pipeline::Pipeline::new(store.clone(), Duration::from_secs(300));
    for outcome in &stored {
        let processed = pipeline.process(outcome.conversation_id).await.unwrap().unwrap();
        assert!(processed.is_final, "two hours quiet is final");
        alerts.on_processed(&processed).await.unwrap();
    }
    let angry_id = stored[0].conversation_id;
    let conv_row = store.get_conversation(angry_id).await.unwrap().unwrap();
    assert!(conv_row.health_score.unwrap() < 40.0, "{:?}", conv_row.health_score);
    let report = alerts.deliver_pending(false).await.unwrap();
    assert_eq!(report.messages, 1, "one Slack message: {report:?}");
    let delivered = slack.delivered();
    assert_eq!(delivered.len(), 1);
    let body = delivered[0].to_string();
    assert!(body.contains(&angry_id.to_string()), "a deep link to the conversation: {body}");
    assert!(!body.contains(&stored[1].conversation_id.to_string()), "the happy conversation raised nothing");
    // Analysing again raises nothing new.
    let again = pipeline.process(angry_id).await.unwrap().unwrap();
    let raised = alerts.on_processed(&again).await.unwrap();
    assert_eq!(raised.recorded, 0);
}
