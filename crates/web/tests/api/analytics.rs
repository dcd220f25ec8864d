//! Sensei analytics over HTTP (issue 7) on both backends: the period summary and its change from the previous
//! period, the latest usage patterns, and failure trends dated by the message they point at.

use mentorfy_store::{AnalysisWrite, FailureWrite, NewConversation, NewMessage, PatternRunWrite, PatternWrite, Store};
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

both_backends!(
    summary_compares_the_period_with_the_one_before,
    patterns_come_from_the_latest_run,
    failure_trends_count_per_type_and_bucket,
    health_trends_average_per_bucket,
    bad_analytics_queries_are_refused,
);

/// A conversation with two messages at `at`, analysed with `health` and failures of `kinds` (pointing at the
/// user message) when `health` is given.
async fn conversation(
    store: &Store,
    name: &str,
    env: &str,
    at: OffsetDateTime,
    health: Option<f64>,
    kinds: &[&str],
) -> Uuid {
    let c = store
        .upsert_conversation(NewConversation {
            source: "api",
            environment: env,
            external_id: name,
            org_id: None,
            agent_id: None,
            user_id: None,
            metadata: json!({}),
        })
        .await
        .unwrap();
    let user = Uuid::now_v7();
    for (k, (id, role)) in [(user, "user"), (Uuid::now_v7(), "assistant")].into_iter().enumerate() {
        store
            .insert_message(NewMessage {
                id,
                conversation_id: c.id,
                external_id: None,
                role,
                content: "hello",
                status: "complete",
                finish_reason: None,
                input_tokens: None,
                output_tokens: None,
                latency_ms: None,
                ttft_ms: None,
                metadata: json!({}),
                created_at: at + Duration::seconds(k as i64),
            })
            .await
            .unwrap();
    }
    if let Some(h) = health {
        let conv = store.get_conversation(c.id).await.unwrap().unwrap();
        let failures = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| FailureWrite {
                message_id: Some(user),
                kind: (*k).to_owned(),
                severity: "medium".to_owned(),
                evidence: "…".to_owned(),
                detector: "test".to_owned(),
                detector_version: 1,
                fingerprint: format!("test:{k}:{i}"),
                details: json!({}),
            })
            .collect();
        store
            .save_analysis(&AnalysisWrite {
                conversation_id: c.id,
                seen_last_message_at: conv.last_message_at,
                sentiments: Vec::new(),
                failures,
                health_score: h,
                health_breakdown: json!({}),
                avg_sentiment: None,
                is_final: true,
            })
            .await
            .unwrap();
    }
    c.id
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

async fn summary_compares_the_period_with_the_one_before(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let now = OffsetDateTime::now_utc();
    let s = &app.store;
    conversation(s, "a", "production", now - Duration::days(1), Some(80.0), &[]).await;
    conversation(s, "b", "production", now - Duration::days(2), Some(40.0), &["user_frustration"]).await;
    conversation(s, "c", "staging", now - Duration::hours(3), None, &[]).await;
    conversation(s, "old-1", "production", now - Duration::days(9), Some(60.0), &[]).await;
    conversation(s, "old-2", "production", now - Duration::days(10), Some(60.0), &[]).await;
    conversation(s, "ancient", "production", now - Duration::days(40), Some(10.0), &["tool_error"]).await;
    let token = app.admin_token().await;

    let body = expect_json(get(&app, &token, "/api/v1/analytics/summary").await, 200).await;
    assert_eq!(body["range"], "7d");
    let cur = &body["current"];
    assert_eq!(
        (cur["conversations"].as_i64(), cur["messages"].as_i64(), cur["analysed"].as_i64()),
        (Some(3), Some(6), Some(2))
    );
    assert_eq!(cur["avgHealth"].as_f64(), Some(60.0));
    assert_eq!(cur["failureRate"].as_f64(), Some(0.3333));
    let prev = &body["previous"];
    assert_eq!(
        (prev["conversations"].as_i64(), prev["avgHealth"].as_f64(), prev["failureRate"].as_f64()),
        (Some(2), Some(60.0), Some(0.0))
    );
    assert_eq!(body["change"], json!({"conversationsPct": 50.0, "avgHealthDelta": 0.0, "failureRateDelta": 0.3333}));

    let staging =
        expect_json(get(&app, &token, "/api/v1/analytics/summary?range=24h&environment=staging").await, 200).await;
    assert_eq!(staging["current"]["conversations"], 1);
    assert!(staging["current"]["avgHealth"].is_null(), "nothing analysed: no average, not 0");
    assert!(staging["change"]["conversationsPct"].is_null(), "no previous conversations: no percentage");
    let month = expect_json(get(&app, &token, "/api/v1/analytics/summary?range=30d").await, 200).await;
    assert_eq!(month["current"]["conversations"], 5);
    assert_eq!(month["previous"]["conversations"], 1);
    app.stop().await.unwrap();
}

async fn patterns_come_from_the_latest_run(db: TestDb) {
    // No scheduled run: the one the server starts with could finish after the runs saved here and be the latest.
    let app = TestApp::spawn_with(db, &[("SENSEI_PATTERNS_EVERY", "off")]).await;
    let token = app.admin_token().await;
    let empty = expect_json(get(&app, &token, "/api/v1/analytics/patterns").await, 200).await;
    assert_eq!(empty, json!({"run": null, "patterns": []}));
    let now = OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            conversation(&app.store, &format!("c{i}"), "production", now - Duration::hours(i + 1), Some(50.0), &[])
                .await,
        );
    }
    let pattern = |label: &str, members: &[Uuid]| PatternWrite {
        label: label.to_owned(),
        keywords: json!([{"term": label, "weight": 0.5}]),
        avg_health: Some(50.0),
        failure_rate: Some(0.0),
        examples: json!([{"conversation_id": members[0], "excerpt": "hi", "similarity": 0.9}]),
        method: "ctfidf".to_owned(),
        members: members.iter().map(|m| (*m, 0.9)).collect(),
    };
    let run = PatternRunWrite {
        id: Uuid::now_v7(),
        trigger: "manual".to_owned(),
        window_from: now - Duration::days(30),
        window_to: now,
        representation: "tfidf".to_owned(),
        conversations: 4,
        params: json!({}),
        started_at: now,
        patterns: vec![pattern("password reset", &ids[..1]), pattern("billing, invoice", &ids[1..4])],
    };
    app.store.save_pattern_run(&run, 8).await.unwrap();
    let body = expect_json(get(&app, &token, "/api/v1/analytics/patterns").await, 200).await;
    assert_eq!(body["run"]["id"], run.id.to_string());
    assert_eq!(body["run"]["clustered"], 4);
    let labels: Vec<&str> = body["patterns"].as_array().unwrap().iter().map(|p| p["label"].as_str().unwrap()).collect();
    assert_eq!(labels, vec!["billing, invoice", "password reset"], "largest first");
    assert_eq!(body["patterns"][0]["share"].as_f64(), Some(0.75));
    let one = expect_json(get(&app, &token, "/api/v1/analytics/patterns?limit=1").await, 200).await;
    assert_eq!(one["patterns"].as_array().unwrap().len(), 1);
    app.stop().await.unwrap();
}

fn series<'a>(body: &'a Value, kind: &str) -> &'a Value {
    body["series"].as_array().unwrap().iter().find(|s| s["type"] == kind).unwrap_or(&Value::Null)
}

async fn failure_trends_count_per_type_and_bucket(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let now = OffsetDateTime::now_utc();
    let s = &app.store;
    conversation(
        s,
        "a",
        "production",
        now - Duration::days(1),
        Some(30.0),
        &["user_frustration", "escalation_request"],
    )
    .await;
    conversation(s, "b", "production", now - Duration::days(1), Some(30.0), &["user_frustration"]).await;
    conversation(s, "c", "staging", now - Duration::days(3), Some(30.0), &["user_frustration"]).await;
    conversation(s, "old", "production", now - Duration::days(20), Some(30.0), &["tool_error"]).await;
    let token = app.admin_token().await;

    let body = expect_json(get(&app, &token, "/api/v1/analytics/failures/trends").await, 200).await;
    assert_eq!(body["bucket"], "day");
    let buckets = body["buckets"].as_array().unwrap();
    assert!((8..=9).contains(&buckets.len()), "every day of the range: {}", buckets.len());
    let frustration = series(&body, "user_frustration");
    assert_eq!(frustration["total"], 3);
    assert_eq!(body["series"][0]["type"], "user_frustration", "most frequent first");
    let counts: Vec<i64> = frustration["counts"].as_array().unwrap().iter().map(|c| c.as_i64().unwrap()).collect();
    assert_eq!(counts.len(), buckets.len());
    let day = |d: OffsetDateTime| format!("{}T00:00:00Z", d.date());
    let at = |d: OffsetDateTime| buckets.iter().position(|b| b.as_str() == Some(day(d).as_str())).unwrap();
    assert_eq!(counts[at(now - Duration::days(1))], 2);
    assert_eq!(counts[at(now - Duration::days(3))], 1);
    assert_eq!(series(&body, "escalation_request")["total"], 1);
    assert!(series(&body, "tool_error").is_null(), "outside the range");

    let staging =
        expect_json(get(&app, &token, "/api/v1/analytics/failures/trends?environment=staging").await, 200).await;
    assert_eq!(staging["series"].as_array().unwrap().len(), 1);
    let hourly = expect_json(get(&app, &token, "/api/v1/analytics/failures/trends?range=24h").await, 200).await;
    assert_eq!(hourly["bucket"], "hour");
    assert!((24..=25).contains(&hourly["buckets"].as_array().unwrap().len()));
    let month =
        expect_json(get(&app, &token, "/api/v1/analytics/failures/trends?range=30d&bucket=day").await, 200).await;
    assert_eq!(series(&month, "tool_error")["total"], 1);
    app.stop().await.unwrap();
}

async fn health_trends_average_per_bucket(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let now = OffsetDateTime::now_utc();
    let s = &app.store;
    conversation(s, "a", "production", now - Duration::days(1), Some(30.0), &["user_frustration"]).await;
    conversation(s, "b", "production", now - Duration::days(1), Some(90.0), &[]).await;
    conversation(s, "c", "staging", now - Duration::days(3), Some(50.0), &["tool_error"]).await;
    conversation(s, "d", "production", now - Duration::days(2), None, &[]).await;
    conversation(s, "old", "production", now - Duration::days(20), Some(10.0), &[]).await;
    let token = app.admin_token().await;

    let body = expect_json(get(&app, &token, "/api/v1/analytics/health/trends").await, 200).await;
    assert_eq!(body["bucket"], "day");
    let buckets = body["buckets"].as_array().unwrap();
    for key in ["conversations", "avgHealth", "failing"] {
        assert_eq!(body[key].as_array().unwrap().len(), buckets.len(), "{key} is aligned with the buckets");
    }
    let day = |d: OffsetDateTime| format!("{}T00:00:00Z", d.date());
    let at = |d: OffsetDateTime| buckets.iter().position(|b| b.as_str() == Some(day(d).as_str())).unwrap();
    let (d1, d2, d3) = (at(now - Duration::days(1)), at(now - Duration::days(2)), at(now - Duration::days(3)));
    assert_eq!(body["conversations"][d1], 2);
    assert_eq!(body["avgHealth"][d1], 60.0);
    assert_eq!(body["failing"][d1], 1);
    assert_eq!(body["conversations"][d2], 1);
    assert!(body["avgHealth"][d2].is_null(), "not analysed yet");
    assert_eq!(body["avgHealth"][d3], 50.0);
    let total: i64 = body["conversations"].as_array().unwrap().iter().map(|n| n.as_i64().unwrap()).sum();
    assert_eq!(total, 4, "the 20-day-old conversation is outside 7d");

    let staging =
        expect_json(get(&app, &token, "/api/v1/analytics/health/trends?environment=staging").await, 200).await;
    let total: i64 = staging["conversations"].as_array().unwrap().iter().map(|n| n.as_i64().unwrap()).sum();
    assert_eq!(total, 1);
    let hourly = expect_json(get(&app, &token, "/api/v1/analytics/health/trends?range=24h").await, 200).await;
    assert_eq!(hourly["bucket"], "hour");
    let month = expect_json(get(&app, &token, "/api/v1/analytics/health/trends?range=30d").await, 200).await;
    let total: i64 = month["conversations"].as_array().unwrap().iter().map(|n| n.as_i64().unwrap()).sum();
    assert_eq!(total, 5);
    app.stop().await.unwrap();
}

async fn bad_analytics_queries_are_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    for (path, field) in [
        ("/api/v1/analytics/summary?range=1y", "range"),
        ("/api/v1/analytics/summary?days=7", "days"),
        ("/api/v1/analytics/patterns?limit=0", "limit"),
        ("/api/v1/analytics/patterns?limit=x", "limit"),
        ("/api/v1/analytics/failures/trends?bucket=week", "bucket"),
        ("/api/v1/analytics/failures/trends?bucket=", "bucket"),
        ("/api/v1/analytics/failures/trends?range=7d&range=24h", "range"),
        ("/api/v1/analytics/health/trends?bucket=minute", "bucket"),
        ("/api/v1/analytics/health/trends?range=90d", "range"),
    ] {
        let e = expect_error(get(&app, &token, path).await, 400, "invalid_query").await;
        assert_eq!(e["details"]["field"], field, "{path}: {e}");
    }
    for path in [
        "/api/v1/analytics/summary",
        "/api/v1/analytics/patterns",
        "/api/v1/analytics/failures/trends",
        "/api/v1/analytics/health/trends",
    ] {
        expect_error(app.get(path).await, 401, "unauthorized").await;
    }
    app.stop().await.unwrap();
}
