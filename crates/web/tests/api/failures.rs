//! `GET /api/v1/failures` over HTTP on both backends: failures across conversations with their agent, each filter,
//! newest-first cursor pages with no gap or repeat, and the error envelopes for bad queries and missing auth.

use std::collections::HashSet;

use mentorfy_store::{AnalysisWrite, FailureWrite, NewConversation, NewMessage, Store};
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

both_backends!(failures_are_listed_filtered_and_paged, bad_failure_queries_and_missing_auth_are_refused);

/// `n` conversations, each analysed with three failures (two low `user_frustration`, one high `agent_loop`).
async fn seed(store: &Store, n: usize, prefix: &str) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}-{i:02}");
        let c = store
            .upsert_conversation(NewConversation {
                source: "api",
                environment: "production",
                external_id: &name,
                org_id: None,
                agent_id: Some(if i % 2 == 0 { "billing-bot" } else { "support-bot" }),
                user_id: None,
                metadata: json!({}),
            })
            .await
            .unwrap();
        store
            .insert_message(NewMessage {
                id: Uuid::now_v7(),
                conversation_id: c.id,
                external_id: None,
                role: "user",
                content: "it keeps repeating itself",
                status: "complete",
                finish_reason: None,
                input_tokens: None,
                output_tokens: None,
                latency_ms: None,
                ttft_ms: None,
                metadata: json!({}),
                created_at: OffsetDateTime::now_utc() - Duration::minutes(i as i64),
            })
            .await
            .unwrap();
        let conv = store.get_conversation(c.id).await.unwrap().unwrap();
        let failure = |kind: &str, severity: &str, k: usize| FailureWrite {
            message_id: None,
            kind: kind.to_owned(),
            severity: severity.to_owned(),
            evidence: format!("{kind} {k} in {name}"),
            detector: "test".to_owned(),
            detector_version: 1,
            fingerprint: format!("test:{kind}:{k}"),
            details: json!({}),
        };
        store
            .save_analysis(&AnalysisWrite {
                conversation_id: c.id,
                seen_last_message_at: conv.last_message_at,
                sentiments: Vec::new(),
                failures: vec![
                    failure("user_frustration", "low", 0),
                    failure("user_frustration", "low", 1),
                    failure("agent_loop", "high", 2),
                ],
                health_score: 30.0,
                health_breakdown: json!({}),
                avg_sentiment: None,
                is_final: false,
            })
            .await
            .unwrap();
        ids.push(c.id);
    }
    ids
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

async fn all_pages(app: &TestApp, token: &str, query: &str) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/failures?{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let body = expect_json(get(app, token, &path).await, 200).await;
        pages += 1;
        rows.extend(body["data"].as_array().unwrap().iter().cloned());
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 100, "runaway pagination");
    }
    (rows, pages)
}

async fn failures_are_listed_filtered_and_paged(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let ids = seed(&app.store, 9, "conv").await;
    let token = app.admin_token().await;

    let (rows, pages) = all_pages(&app, &token, "limit=4").await;
    assert_eq!(rows.len(), 27);
    assert_eq!(pages, 7);
    let unique: HashSet<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(unique.len(), 27, "no repeats");
    for w in rows.windows(2) {
        assert!(w[0]["createdAt"].as_str() >= w[1]["createdAt"].as_str(), "newest first");
    }
    // The last analysed conversation's failures come first, with its agent and external id.
    let first = &rows[0];
    assert_eq!(first["conversationId"], ids[8].to_string());
    assert_eq!(first["conversationExternalId"], "conv-08");
    assert_eq!(first["agentId"], "billing-bot");
    assert_eq!(first["status"], "open");
    assert!(first["evidence"].as_str().unwrap().contains("conv-08"));

    // A new failure arriving between pages never shows up later in that walk.
    let body = expect_json(get(&app, &token, "/api/v1/failures?limit=10").await, 200).await;
    let cursor = body["nextCursor"].as_str().unwrap().to_owned();
    seed(&app.store, 1, "late").await;
    let mut seen: Vec<String> =
        body["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    let mut next = Some(cursor);
    while let Some(c) = next {
        let body = expect_json(get(&app, &token, &format!("/api/v1/failures?limit=10&cursor={c}")).await, 200).await;
        seen.extend(body["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        next = body["nextCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 27);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 27);

    let (loops, _) = all_pages(&app, &token, "type=agent_loop").await;
    assert_eq!(loops.len(), 10, "nine seeded and one late");
    assert!(loops.iter().all(|r| r["type"] == "agent_loop" && r["severity"] == "high"));
    let (low, _) = all_pages(&app, &token, "severity=low&range=24h").await;
    assert_eq!(low.len(), 20);
    let (none, _) = all_pages(&app, &token, "type=tool_error").await;
    assert!(none.is_empty());
    let future = (OffsetDateTime::now_utc() + Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (later, _) = all_pages(&app, &token, &format!("from={}", future.replace('+', "%2B"))).await;
    assert!(later.is_empty());

    // Triage through the API shows in the status filter.
    let loop_id = loops[0]["id"].as_str().unwrap();
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/failures/{loop_id}")))
        .bearer_auth(&token)
        .json(&json!({"status": "ack"}))
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    let (acked, _) = all_pages(&app, &token, "status=ack").await;
    assert_eq!(acked.iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>(), vec![loop_id]);
    let (open, _) = all_pages(&app, &token, "status=open&limit=200").await;
    assert_eq!(open.len(), 29);
    app.stop().await.unwrap();
}

async fn bad_failure_queries_and_missing_auth_are_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    for (query, field) in [
        ("status=closed", "status"),
        ("severity=huge", "severity"),
        ("type=Not%20A%20Type", "type"),
        ("range=1y", "range"),
        ("range=7d&from=2026-11-01T00:00:00Z", "range"),
        ("from=yesterday", "from"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=x", "limit"),
        ("cursor=nope", "cursor"),
        ("status=open&status=ack", "status"),
        ("colour=red", "colour"),
    ] {
        let err =
            expect_error(get(&app, &token, &format!("/api/v1/failures?{query}")).await, 400, "invalid_query").await;
        assert_eq!(err["details"]["field"], field, "{query}: {err}");
    }
    let res = app.client.get(app.url("/api/v1/failures")).send().await.unwrap();
    expect_error(res, 401, "unauthorized").await;
    let res = app.client.get(app.url("/api/v1/failures")).bearer_auth("not-a-token").send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    // Listed in the OpenAPI document.
    let doc = expect_json(app.get("/openapi.json").await, 200).await;
    assert!(doc["paths"]["/api/v1/failures"]["get"].is_object(), "missing from OpenAPI");
    app.stop().await.unwrap();
}
