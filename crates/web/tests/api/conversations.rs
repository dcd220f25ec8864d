//! Sensei's admin read API (issue 7) over HTTP on both backends: every sort pages through all conversations with no
//! gap or repeat (also while new ones arrive), each filter narrows correctly, one conversation's messages, health and
//! failures, failure triage, and the error envelopes for bad queries, unknown ids and missing auth.

use std::collections::HashSet;

use mentorfy_store::{AnalysisWrite, FailureWrite, NewConversation, NewMessage, Store};
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

both_backends!(
    every_sort_pages_through_all_conversations_once,
    pages_stay_consistent_while_new_conversations_arrive,
    filters_narrow_the_listing,
    one_conversation_has_messages_health_and_failures,
    failures_are_acknowledged_and_resolved_idempotently,
    bad_queries_and_missing_auth_get_error_envelopes,
);

const N: usize = 37;

struct Seeded {
    ids: Vec<Uuid>,
}

/// `N` conversations a minute apart; every third analysed with a failure, health 3·i (some equal, to test ties),
/// odd ones in `staging`.
async fn seed(store: &Store, base: OffsetDateTime) -> Seeded {
    seed_named(store, base, "conv").await
}

async fn seed_named(store: &Store, base: OffsetDateTime, prefix: &str) -> Seeded {
    let mut ids = Vec::new();
    for i in 0..N {
        let external_id = format!("{prefix}-{i:02}");
        let env = if i % 2 == 1 { "staging" } else { "production" };
        let c = store
            .upsert_conversation(NewConversation {
                source: "api",
                environment: env,
                external_id: &external_id,
                org_id: None,
                agent_id: Some(if i % 4 == 0 { "billing-bot" } else { "support-bot" }),
                user_id: None,
                metadata: json!({"i": i}),
            })
            .await
            .unwrap();
        let at = base + Duration::minutes(i as i64);
        let text = if i == 7 { "My Invoice_2024 shows 100% extra".to_owned() } else { format!("question number {i}") };
        for (k, (role, content)) in [("user", text.as_str()), ("assistant", "an answer")].into_iter().enumerate() {
            store
                .insert_message(NewMessage {
                    id: Uuid::now_v7(),
                    conversation_id: c.id,
                    external_id: None,
                    role,
                    content,
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
        if i % 3 != 2 {
            let conv = store.get_conversation(c.id).await.unwrap().unwrap();
            let failures = if i % 3 == 0 {
                vec![FailureWrite {
                    message_id: None,
                    kind: if i % 2 == 0 { "escalation_request" } else { "user_frustration" }.to_owned(),
                    severity: "high".to_owned(),
                    evidence: "let me talk to a human".to_owned(),
                    detector: "test".to_owned(),
                    detector_version: 1,
                    fingerprint: format!("test:{i}"),
                    details: json!({}),
                }]
            } else {
                Vec::new()
            };
            store
                .save_analysis(&AnalysisWrite {
                    conversation_id: c.id,
                    seen_last_message_at: conv.last_message_at,
                    sentiments: Vec::new(),
                    failures,
                    health_score: ((i / 2) * 6) as f64,
                    health_breakdown: json!({"score": ((i / 2) * 6) as f64, "components": []}),
                    avg_sentiment: Some(0.1),
                    is_final: true,
                })
                .await
                .unwrap();
        }
        ids.push(c.id);
    }
    Seeded { ids }
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

/// Every page of a listing, following `nextCursor`.
async fn all_pages(app: &TestApp, token: &str, query: &str) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/conversations?{query}");
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

fn health(v: &Value) -> f64 {
    v["healthScore"].as_f64().unwrap_or(-1.0)
}

async fn every_sort_pages_through_all_conversations_once(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let seeded = seed(&app.store, OffsetDateTime::now_utc() - Duration::days(1)).await;
    let token = app.admin_token().await;
    for sort in ["-last_message_at", "last_message_at", "health", "-health", "-started_at"] {
        let (rows, pages) = all_pages(&app, &token, &format!("sort={sort}&limit=5")).await;
        assert_eq!(pages, N.div_ceil(5), "{sort}");
        let ids: Vec<Uuid> = rows.iter().map(|r| Uuid::parse_str(r["id"].as_str().unwrap()).unwrap()).collect();
        let unique: HashSet<Uuid> = ids.iter().copied().collect();
        assert_eq!(unique.len(), N, "{sort}: a repeat");
        assert_eq!(unique, seeded.ids.iter().copied().collect::<HashSet<_>>(), "{sort}: a gap");
        for w in rows.windows(2) {
            let ok = match sort {
                "-last_message_at" => w[0]["lastMessageAt"].as_str() >= w[1]["lastMessageAt"].as_str(),
                "last_message_at" => w[0]["lastMessageAt"].as_str() <= w[1]["lastMessageAt"].as_str(),
                "-started_at" => w[0]["startedAt"].as_str() >= w[1]["startedAt"].as_str(),
                // Not yet analysed: last in both directions of health.
                "health" => {
                    w[1]["healthScore"].is_null() || (!w[0]["healthScore"].is_null() && health(&w[0]) <= health(&w[1]))
                }
                _ => health(&w[0]) >= health(&w[1]),
            };
            assert!(ok, "{sort}: {} then {}", w[0], w[1]);
        }
    }
    app.stop().await.unwrap();
}

async fn pages_stay_consistent_while_new_conversations_arrive(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let seeded = seed(&app.store, OffsetDateTime::now_utc() - Duration::days(1)).await;
    let token = app.admin_token().await;
    let first = expect_json(get(&app, &token, "/api/v1/conversations?limit=10").await, 200).await;
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    // A newer conversation arrives between two pages: it belongs before the cursor, so it never shows up later.
    seed_named(&app.store, OffsetDateTime::now_utc(), "late").await;
    let mut seen: Vec<String> =
        first["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    let mut next = Some(cursor);
    while let Some(c) = next {
        let body =
            expect_json(get(&app, &token, &format!("/api/v1/conversations?limit=10&cursor={c}")).await, 200).await;
        seen.extend(body["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        next = body["nextCursor"].as_str().map(str::to_owned);
    }
    let expected: HashSet<String> = seeded.ids.iter().map(Uuid::to_string).collect();
    assert_eq!(seen.len(), N);
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), expected);
    app.stop().await.unwrap();
}

async fn filters_narrow_the_listing(db: TestDb) {
    let app = TestApp::spawn(db).await;
    seed(&app.store, OffsetDateTime::now_utc() - Duration::days(1)).await;
    let token = app.admin_token().await;
    let ext = |rows: &[Value]| -> Vec<usize> {
        let mut v: Vec<usize> =
            rows.iter().map(|r| r["externalId"].as_str().unwrap()[5..].parse::<usize>().unwrap()).collect();
        v.sort_unstable();
        v
    };
    let expect = |pred: &dyn Fn(usize) -> bool| -> Vec<usize> { (0..N).filter(|i| pred(*i)).collect() };
    let analysed = |i: usize| i % 3 != 2;
    let h = |i: usize| ((i / 2) * 6) as f64;

    let (rows, _) = all_pages(&app, &token, "health_min=30&health_max=60&limit=200").await;
    assert_eq!(ext(&rows), expect(&|i| analysed(i) && (30.0..=60.0).contains(&h(i))));
    let (rows, _) = all_pages(&app, &token, "has_failures=true").await;
    assert_eq!(ext(&rows), expect(&|i| i % 3 == 0));
    let (rows, _) = all_pages(&app, &token, "has_failures=false").await;
    assert_eq!(ext(&rows), expect(&|i| i % 3 != 0));
    let (rows, _) = all_pages(&app, &token, "failure_type=escalation_request").await;
    assert_eq!(ext(&rows), expect(&|i| i % 3 == 0 && i % 2 == 0));
    let (rows, _) = all_pages(&app, &token, "failure_type=user_frustration&environment=staging").await;
    assert_eq!(ext(&rows), expect(&|i| i % 3 == 0 && i % 2 == 1));
    let (rows, _) = all_pages(&app, &token, "environment=production&agent_id=billing-bot").await;
    assert_eq!(ext(&rows), expect(&|i| i % 4 == 0));
    let (rows, _) = all_pages(&app, &token, "source=otel").await;
    assert!(rows.is_empty());
    // Search: case-insensitive, and % and _ are literal characters, not wildcards.
    let (rows, _) = all_pages(&app, &token, "q=invoice_2024").await;
    assert_eq!(ext(&rows), vec![7]);
    let (rows, _) = all_pages(&app, &token, "q=100%25").await;
    assert_eq!(ext(&rows), vec![7]);
    let (rows, _) = all_pages(&app, &token, "q=_").await;
    assert_eq!(ext(&rows), vec![7], "an underscore matches only itself");
    let (rows, _) = all_pages(&app, &token, "q=conv-12").await;
    assert_eq!(ext(&rows), vec![12], "the sender's conversation id");
    // Time: everything is from yesterday.
    let (rows, _) = all_pages(&app, &token, "range=24h").await;
    assert!(rows.len() >= N - 2, "{}", rows.len());
    let future = (OffsetDateTime::now_utc() + Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (rows, _) = all_pages(&app, &token, &format!("from={}", future.replace('+', "%2B"))).await;
    assert!(rows.is_empty());
    // A pattern: its members only.
    let (rows, _) = all_pages(&app, &token, &format!("pattern={}", Uuid::now_v7())).await;
    assert!(rows.is_empty());
    app.stop().await.unwrap();
}

async fn one_conversation_has_messages_health_and_failures(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let seeded = seed(&app.store, OffsetDateTime::now_utc() - Duration::days(1)).await;
    let token = app.admin_token().await;
    let id = seeded.ids[6];
    let messages = expect_json(get(&app, &token, &format!("/api/v1/conversations/{id}/messages")).await, 200).await;
    let messages = messages["data"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"], "question number 6");
    let health = expect_json(get(&app, &token, &format!("/api/v1/conversations/{id}/health")).await, 200).await;
    assert_eq!(health["score"].as_f64(), Some(18.0));
    assert_eq!(health["isFinal"], true);
    assert_eq!(health["breakdown"]["score"].as_f64(), Some(18.0));
    let failures = expect_json(get(&app, &token, &format!("/api/v1/conversations/{id}/failures")).await, 200).await;
    let failures = failures["data"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["type"], "escalation_request");
    assert_eq!(failures[0]["status"], "open");
    // Not analysed yet: health is null, not an error.
    let fresh = seeded.ids[2];
    let health = expect_json(get(&app, &token, &format!("/api/v1/conversations/{fresh}/health")).await, 200).await;
    assert!(health["score"].is_null());
    for path in ["messages", "health", "failures"] {
        expect_error(
            get(&app, &token, &format!("/api/v1/conversations/{}/{path}", Uuid::now_v7())).await,
            404,
            "not_found",
        )
        .await;
        expect_error(get(&app, &token, &format!("/api/v1/conversations/not-a-uuid/{path}")).await, 404, "not_found")
            .await;
    }
    app.stop().await.unwrap();
}

async fn failures_are_acknowledged_and_resolved_idempotently(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let seeded = seed(&app.store, OffsetDateTime::now_utc() - Duration::days(1)).await;
    let token = app.admin_token().await;
    let failure = app.store.list_failures(seeded.ids[3]).await.unwrap().remove(0);
    let patch = |status: &str| {
        app.client
            .patch(app.url(&format!("/api/v1/failures/{}", failure.id)))
            .bearer_auth(&token)
            .json(&json!({"status": status}))
            .send()
    };
    for status in ["ack", "ack", "resolved", "open"] {
        let body = expect_json(patch(status).await.unwrap(), 200).await;
        assert_eq!(body["status"], status);
        assert_eq!(body["id"], failure.id.to_string());
        assert_eq!(app.store.list_failures(seeded.ids[3]).await.unwrap()[0].status, status);
    }
    let e = expect_error(patch("closed").await.unwrap(), 400, "invalid_field").await;
    assert_eq!(e["details"]["field"], "status");
    assert_eq!(
        app.store.list_failures(seeded.ids[3]).await.unwrap()[0].status,
        "open",
        "a refused update changes nothing"
    );
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/failures/{}", Uuid::now_v7())))
        .bearer_auth(&token)
        .json(&json!({"status": "ack"}))
        .send()
        .await
        .unwrap();
    expect_error(res, 404, "not_found").await;
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/failures/{}", failure.id)))
        .bearer_auth(&token)
        .json(&json!({"status": "ack", "note": "extra"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "unknown fields are refused");
    app.stop().await.unwrap();
}

async fn bad_queries_and_missing_auth_get_error_envelopes(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("sort=name", "sort"),
        ("range=1y", "range"),
        ("health_min=120", "health_min"),
        ("cursor=garbage", "cursor"),
        ("colour=blue", "colour"),
    ] {
        let e = expect_error(get(&app, &token, &format!("/api/v1/conversations?{query}")).await, 400, "invalid_query")
            .await;
        assert_eq!(e["details"]["field"], field, "{query}: {e}");
    }
    expect_error(app.get("/api/v1/conversations").await, 401, "unauthorized").await;
    let key = app.api_key(None).await;
    expect_error(get(&app, &key, "/api/v1/conversations").await, 401, "unauthorized").await;
    app.stop().await.unwrap();
}
