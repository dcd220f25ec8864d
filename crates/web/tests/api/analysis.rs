//! The analysis pipeline end to end (issue 6): ingest through the API, let the real job workers run
//! `sensei.process_conversation`, and read what it stored: sentiment per message, failures, health with its
//! breakdown, the final state after the idle timeout, and idempotent re-runs.

use std::time::Duration;

use mentorfy_store::ConversationRow;
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_json};
use serde_json::{Value, json};

both_backends!(
    a_frustrated_user_who_asks_for_a_human_gets_failures_and_low_health,
    a_happy_conversation_gets_no_failures_and_high_health,
    a_quiet_conversation_becomes_final_and_a_new_message_reopens_it,
);

async fn track(app: &TestApp, key: &str, body: Value) {
    let res =
        app.client.post(app.url("/api/v1/conversations/track")).bearer_auth(key).json(&body).send().await.unwrap();
    expect_json(res, 202).await;
}

/// Waits until the conversation has been analysed at least `after` (by analyzed_at) and `check` holds.
async fn analysed(app: &TestApp, env: &str, id: &str, check: impl Fn(&ConversationRow) -> bool) -> ConversationRow {
    for _ in 0..200 {
        if let Some(c) = app.store.find_conversation("api", env, id).await.unwrap()
            && c.analyzed_at.is_some()
            && check(&c)
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("conversation {id} was not analysed as expected in 10 s");
}

fn transcript(lines: &[(&str, &str)], start: time::OffsetDateTime) -> Vec<Value> {
    let fmt = &time::format_description::well_known::Rfc3339;
    lines
        .iter()
        .enumerate()
        .map(|(i, (role, content))| {
            let at = start + time::Duration::seconds(20 * i as i64);
            json!({"id": format!("m{i}"), "role": role, "content": content, "timestamp": at.format(fmt).unwrap()})
        })
        .collect()
}

const FRUSTRATED: &[(&str, &str)] = &[
    ("user", "Hi, I was charged twice for my subscription this month."),
    ("assistant", "I'm sorry to hear that. Could you tell me the email on your account?"),
    ("user", "It's ana@example.com. Please fix the double charge."),
    ("assistant", "I can't help with billing issues. Is there anything else I can do for you?"),
    ("user", "This is useless!!! I already told you I was charged twice. I want a refund NOW."),
    ("assistant", "I'm sorry, I can't help with that."),
    ("user", "Can I talk to a human please? This is ridiculous."),
];

const HAPPY: &[(&str, &str)] = &[
    ("user", "Hi! How do I export my data to CSV?"),
    ("assistant", "Go to Settings, then Data, then Export, and choose CSV. The file downloads right away."),
    ("user", "Perfect, that worked. Thanks a lot!"),
    ("assistant", "Glad it helped! Anything else I can do?"),
    ("user", "No, that's all. Have a great day!"),
];

fn yesterday() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() - time::Duration::days(1)
}

async fn a_frustrated_user_who_asks_for_a_human_gets_failures_and_low_health(db: TestDb) {
    let app = TestApp::spawn_with(db, &[("SENSEI_ANALYSIS_DEBOUNCE", "0ms")]).await;
    let key = app.api_key(None).await;
    track(&app, &key, json!({"conversationId": "angry", "messages": transcript(FRUSTRATED, yesterday())})).await;
    // Yesterday's conversation is quiet past the idle timeout: its first analysis is final.
    let conv = analysed(&app, "production", "angry", |c| c.status == "idle").await;
    assert!(conv.final_at.is_some());
    let health = conv.health_score.unwrap();
    assert!(health < 50.0, "health {health}");
    let breakdown = conv.health_breakdown.clone().unwrap();
    assert_eq!(breakdown["score"].as_f64(), Some(health));
    let components = breakdown["components"].as_array().unwrap();
    assert!(components.len() >= 2, "{breakdown}");
    let weights: f64 = components.iter().map(|c| c["weight"].as_f64().unwrap()).sum();
    assert!((weights - 1.0).abs() < 1e-6, "weights sum to 1: {breakdown}");
    assert!(components.iter().all(|c| c["evidence"].as_str().is_some_and(|e| !e.is_empty())), "{breakdown}");

    let failures = app.store.list_failures(conv.id).await.unwrap();
    let kinds: Vec<&str> = failures.iter().map(|f| f.kind.as_str()).collect();
    assert!(kinds.contains(&"user_frustration"), "{kinds:?}");
    assert!(kinds.contains(&"escalation_request"), "{kinds:?}");
    assert!(kinds.contains(&"agent_refusal"), "{kinds:?}");
    assert_eq!(conv.failure_count, failures.len() as i64);
    let messages = app.store.list_messages(conv.id).await.unwrap();
    let escalation = failures.iter().find(|f| f.kind == "escalation_request").unwrap();
    let pointed = messages.iter().find(|m| Some(m.id) == escalation.message_id).expect("points at a message");
    assert!(pointed.content.contains("talk to a human"), "{}", pointed.content);
    assert!(failures.iter().all(|f| f.status == "open" && !f.evidence.is_empty() && f.detector_version >= 1));
    // Sentiment per message; the user's outburst is negative.
    assert!(messages.iter().all(|m| m.sentiment_score.is_some()));
    assert!(messages[4].sentiment_score.unwrap() < -0.3, "{:?}", messages[4].sentiment_score);
    assert!(conv.avg_sentiment.unwrap() < 0.0);

    // Re-running gives the same rows and keeps an admin's status.
    assert!(app.store.set_failure_status(escalation.id, "ack").await.unwrap());
    let pipeline = mentorfy_sensei::pipeline::Pipeline::new(app.store.clone(), Duration::from_secs(300));
    let again = pipeline.process(conv.id).await.unwrap().unwrap();
    assert!(again.stored.new_failures.is_empty(), "nothing new on a re-run");
    assert!(!again.stored.became_final, "already final");
    let after = app.store.list_failures(conv.id).await.unwrap();
    assert_eq!(after.iter().map(|f| f.id).collect::<Vec<_>>(), failures.iter().map(|f| f.id).collect::<Vec<_>>());
    assert_eq!(after.iter().find(|f| f.id == escalation.id).unwrap().status, "ack");
    let reread = app.store.get_conversation(conv.id).await.unwrap().unwrap();
    assert_eq!(reread.health_score, Some(health));
}

async fn a_happy_conversation_gets_no_failures_and_high_health(db: TestDb) {
    let app = TestApp::spawn_with(db, &[("SENSEI_ANALYSIS_DEBOUNCE", "0ms")]).await;
    let key = app.api_key(None).await;
    track(&app, &key, json!({"conversationId": "happy", "messages": transcript(HAPPY, yesterday())})).await;
    let conv = analysed(&app, "production", "happy", |c| c.status == "idle").await;
    let failures = app.store.list_failures(conv.id).await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(conv.failure_count, 0);
    let health = conv.health_score.unwrap();
    assert!(health >= 80.0, "health {health}");
    assert!(conv.avg_sentiment.unwrap() > 0.2);
}

async fn a_quiet_conversation_becomes_final_and_a_new_message_reopens_it(db: TestDb) {
    let app = TestApp::spawn_with(
        db,
        &[("SENSEI_ANALYSIS_DEBOUNCE", "0ms"), ("SENSEI_IDLE_TIMEOUT", "2s"), ("MENTORFY_JOB_POLL_INTERVAL", "100ms")],
    )
    .await;
    let key = app.api_key(None).await;
    let now = time::OffsetDateTime::now_utc() - time::Duration::seconds(21);
    track(&app, &key, json!({"conversationId": "live", "messages": transcript(&HAPPY[..2], now)})).await;
    // Analysed while live: not final yet.
    let first = analysed(&app, "production", "live", |_| true).await;
    assert_eq!((first.status.as_str(), first.final_at), ("active", None));
    // Quiet for the idle timeout: the idle check makes it final.
    let idle = analysed(&app, "production", "live", |c| c.status == "idle").await;
    let final_at = idle.final_at.expect("final");
    // A new message reopens it, and it becomes final again later.
    let next = time::OffsetDateTime::now_utc();
    let fmt = &time::format_description::well_known::Rfc3339;
    track(&app, &key, json!({"conversationId": "live", "messages": [
        {"id": "m9", "role": "user", "content": "One more question: can I schedule exports?", "timestamp": next.format(fmt).unwrap()}]}))
    .await;
    let reopened = app.store.find_conversation("api", "production", "live").await.unwrap().unwrap();
    assert_eq!(reopened.status, "active");
    let again =
        analysed(&app, "production", "live", |c| c.status == "idle" && c.final_at.is_some_and(|f| f > final_at)).await;
    assert_eq!(again.message_count, 3);
}
