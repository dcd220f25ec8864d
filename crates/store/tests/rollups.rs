//! The hourly rollups (migration 000013) answer exactly what the raw tables answer: before any refresh, after one,
//! and after late changes to hours already rolled up (a historical message, a re-analysis, new failures) that no
//! refresh has seen yet.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mentorfy_store::{
    AnalysisWrite, Bucket, FailureCount, FailureWrite, HealthPoint, IngestWrite, IngestedMessage, NewJob, PeriodStats,
    Store,
};
use mentorfy_test_support::{TestDb, both_backends};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

both_backends!(rollups_answer_what_the_raw_tables_answer);

fn message(n: usize, role: &str, at: OffsetDateTime) -> IngestedMessage {
    IngestedMessage {
        external_id: format!("m{n}"),
        role: role.into(),
        content: format!("message {n}"),
        status: "complete".into(),
        finish_reason: None,
        input_tokens: None,
        output_tokens: None,
        latency_ms: None,
        ttft_ms: None,
        metadata: json!({}),
        created_at: at,
    }
}

/// Ingests a conversation of `n` messages a minute apart starting at `start`; returns its id.
async fn conversation(store: &Store, id: &str, env: &str, start: OffsetDateTime, n: usize, first: usize) -> Uuid {
    let write = IngestWrite {
        event_id: None,
        api_key_id: None,
        source: "api".into(),
        environment: env.into(),
        external_id: id.into(),
        user_id: None,
        agent_id: None,
        metadata: json!({}),
        messages: (0..n)
            .map(|i| {
                message(first + i, if i % 2 == 0 { "user" } else { "assistant" }, start + Duration::minutes(i as i64))
            })
            .collect(),
    };
    let job = |_id: Uuid| NewJob::new("test", "noop", json!({}));
    match store.ingest(&[write], &job).await.unwrap()[0] {
        mentorfy_store::IngestWriteOutcome::Stored { conversation_id, .. } => conversation_id,
        other => panic!("not stored: {other:?}"),
    }
}

async fn analyse(store: &Store, id: Uuid, health: f64, failures: &[(&str, Option<Uuid>)]) {
    let row = store.get_conversation(id).await.unwrap().unwrap();
    let failures = failures
        .iter()
        .enumerate()
        .map(|(i, (kind, message_id))| FailureWrite {
            message_id: *message_id,
            kind: (*kind).into(),
            severity: "medium".into(),
            evidence: String::new(),
            detector: "test".into(),
            detector_version: 1,
            fingerprint: format!("test:{kind}:{i}"),
            details: json!({}),
        })
        .collect();
    let write = AnalysisWrite {
        conversation_id: id,
        seen_last_message_at: row.last_message_at,
        sentiments: Vec::new(),
        failures,
        health_score: health,
        health_breakdown: json!({}),
        avg_sentiment: None,
        is_final: false,
    };
    assert!(store.save_analysis(&write).await.unwrap().found);
}

#[derive(Debug, PartialEq)]
struct Answers {
    week: PeriodStats,
    week_prod: PeriodStats,
    day_before: PeriodStats,
    hourly: Vec<HealthPoint>,
    daily: Vec<HealthPoint>,
    failures_hourly: Vec<FailureCount>,
    failures_daily_prod: Vec<FailureCount>,
}

/// Every aggregate over periods that start and end mid-hour (so both rollup hours and raw edges are used).
async fn answers(store: &Store, now: OffsetDateTime) -> Answers {
    let week = now - Duration::days(7);
    Answers {
        week: store.period_stats(week, now, None).await.unwrap(),
        week_prod: store.period_stats(week, now, Some("production")).await.unwrap(),
        day_before: store.period_stats(now - Duration::hours(50), now - Duration::hours(26), None).await.unwrap(),
        hourly: store.health_trend(week, now, Bucket::Hour, None).await.unwrap(),
        daily: store.health_trend(week, now, Bucket::Day, None).await.unwrap(),
        failures_hourly: store.failure_counts(week, now, Bucket::Hour, None).await.unwrap(),
        failures_daily_prod: store.failure_counts(week, now, Bucket::Day, Some("production")).await.unwrap(),
    }
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        (None, None) => true,
        _ => false,
    }
}

/// Equal up to float rounding of the health means (sums of different groupings).
fn assert_same(a: &Answers, b: &Answers, when: &str) {
    for (x, y) in [(&a.week, &b.week), (&a.week_prod, &b.week_prod), (&a.day_before, &b.day_before)] {
        assert!(close(x.avg_health, y.avg_health), "{when}: {x:?} vs {y:?}");
        assert_eq!(
            (x.conversations, x.messages, x.analysed, x.failing),
            (y.conversations, y.messages, y.analysed, y.failing),
            "{when}"
        );
    }
    for (x, y) in [(&a.hourly, &b.hourly), (&a.daily, &b.daily)] {
        assert_eq!(x.len(), y.len(), "{when}: {x:?} vs {y:?}");
        for (p, q) in x.iter().zip(y) {
            assert_eq!((&p.bucket, p.conversations, p.failing), (&q.bucket, q.conversations, q.failing), "{when}");
            assert!(close(p.avg_health, q.avg_health), "{when}: {p:?} vs {q:?}");
        }
    }
    assert_eq!(a.failures_hourly, b.failures_hourly, "{when}");
    assert_eq!(a.failures_daily_prod, b.failures_daily_prod, "{when}");
}

async fn rollups_answer_what_the_raw_tables_answer(db: TestDb) {
    let store = Store::connect(&db.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let now = mentorfy_store::now();
    let h = |hours: i64| now - Duration::hours(hours);

    // Conversations spread over the last four days, in two environments, some analysed with failures.
    let mut ids = Vec::new();
    for i in 0..12 {
        let env = if i % 3 == 0 { "staging" } else { "production" };
        let id = conversation(&store, &format!("c{i}"), env, h(3 + 7 * i), 2 + i as usize % 4, 0).await;
        ids.push(id);
    }
    for (i, id) in ids.iter().enumerate().take(8) {
        let kinds: Vec<(&str, Option<Uuid>)> = match i % 3 {
            0 => vec![("user_frustration", None)],
            1 => vec![("tool_error", None), ("user_frustration", None)],
            _ => vec![],
        };
        analyse(&store, *id, 30.0 + 7.0 * i as f64, &kinds).await;
    }

    let raw = answers(&store, now).await;
    assert_eq!(raw.week.conversations, 12);
    assert_eq!(raw.week.analysed, 8);
    assert_eq!(raw.week.failing, 6, "analysed ones with i % 3 != 2");
    assert_eq!(raw.week_prod.conversations, 8);
    assert_eq!(raw.failures_hourly.iter().map(|f| f.count).sum::<i64>(), 9);

    let refresh = store.refresh_rollups(now).await.unwrap();
    assert!(!refresh.skipped);
    assert!(refresh.watermark.as_str() > "2000", "{refresh:?}");
    let rolled = answers(&store, now).await;
    assert_same(&raw, &rolled, "after the first refresh");
    // A second refresh with nothing new changes nothing.
    let again = store.refresh_rollups(now).await.unwrap();
    assert_eq!(again.watermark, refresh.watermark);
    assert_same(&raw, &answers(&store, now).await, "after an idle refresh");

    // Late changes to hours already rolled up, read before any refresh sees them:
    // a historical conversation, a late message that moves an old conversation to another old hour,
    // a re-analysis that changes health and failures, in both environments.
    conversation(&store, "late", "production", h(40), 3, 0).await;
    conversation(&store, "c4", "production", h(20), 1, 100).await;
    analyse(&store, ids[1], 95.0, &[]).await;
    analyse(&store, ids[9], 10.0, &[("loop", None), ("tool_error", None)]).await;
    let late = answers(&store, now).await;
    assert_eq!(late.week.conversations, 13);
    assert_eq!(late.week.analysed, 9);
    assert_eq!(late.failures_hourly.iter().map(|f| f.count).sum::<i64>(), 9 - 2 + 2);
    assert_ne!(late.hourly, rolled.hourly, "the changes show without a refresh");

    store.refresh_rollups(now).await.unwrap();
    assert_same(&late, &answers(&store, now).await, "after refreshing the late changes");

    // A refresh an hour later rolls up one more hour and still agrees.
    let later = now + Duration::hours(1);
    let next = store.refresh_rollups(later).await.unwrap();
    assert!(next.watermark > refresh.watermark);
    assert_same(&answers(&store, now).await, &late, "after the watermark moved");
}
