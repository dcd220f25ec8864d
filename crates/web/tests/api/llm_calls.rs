//! The LLM call log over HTTP (issue 7) on both backends: filters, newest-first cursor pages with no gap or repeat,
//! per agent and model aggregates over every matching call, one call with its full input and output, and errors.

use std::collections::HashSet;

use mentorfy_store::LlmCallRow;
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

both_backends!(llm_calls_filter_page_and_aggregate, bad_llm_call_queries_are_refused);

fn call(i: i64, agent: &str, model: &str, status: &str, started_at: OffsetDateTime) -> LlmCallRow {
    LlmCallRow {
        id: Uuid::now_v7(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: "00f067aa0ba902b7".into(),
        parent_span_id: None,
        session_id: None,
        conversation_id: None,
        message_id: None,
        org_id: None,
        agent_id: Some(agent.into()),
        operation: "chat".into(),
        provider: "anthropic".into(),
        model: model.into(),
        response_model: None,
        response_id: None,
        stream: true,
        parameters: json!({}),
        input: json!({"messages": [{"role": "user", "content": format!("question {i}")}]}),
        output: Some(json!({"role": "assistant", "content": format!("answer {i}")})),
        input_tokens: Some(100),
        output_tokens: Some(20),
        cache_read_tokens: None,
        cache_write_tokens: None,
        cost_usd: Some(0.001),
        latency_ms: 100 * i,
        ttft_ms: Some(10 * i),
        attempts: 1,
        status: status.into(),
        error: (status != "ok").then(|| "upstream 529".to_owned()),
        error_type: (status != "ok").then(|| "overloaded".to_owned()),
        finish_reason: Some("stop".into()),
        started_at,
        created_at: started_at,
    }
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

async fn llm_calls_filter_page_and_aggregate(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let now = OffsetDateTime::now_utc();
    let mut coach = Vec::new();
    // 25 coach calls, the same second for five of them (ties broken by id), one an error; 3 judge calls; one old.
    for i in 1..=25 {
        let at = now - Duration::minutes(if i <= 5 { 1 } else { i });
        let c = call(i, "coach", "claude-sonnet-4-5", if i == 7 { "error" } else { "ok" }, at);
        app.store.insert_llm_call(&c).await.unwrap();
        coach.push(c.id);
    }
    for i in 1..=3 {
        app.store
            .insert_llm_call(&call(i, "sensei-judge", "claude-haiku-4-5", "ok", now - Duration::hours(i)))
            .await
            .unwrap();
    }
    app.store.insert_llm_call(&call(1, "coach", "claude-sonnet-4-5", "ok", now - Duration::days(40))).await.unwrap();
    let token = app.admin_token().await;

    // Pages of 7 through the coach's calls of the last 30 days.
    let mut seen = Vec::new();
    let mut path = "/api/v1/llm-calls?agent=coach&range=30d&limit=7".to_owned();
    let mut first = None;
    loop {
        let body = expect_json(get(&app, &token, &path).await, 200).await;
        if first.is_none() {
            first = Some(body.clone());
        } else {
            assert!(body["aggregates"].is_null(), "aggregates only on the first page");
        }
        for c in body["data"].as_array().unwrap() {
            assert!(c.get("input").is_none() && c.get("output").is_none(), "no bodies in the list");
            seen.push(c["id"].as_str().unwrap().to_owned());
        }
        match body["nextCursor"].as_str() {
            Some(cur) => path = format!("/api/v1/llm-calls?agent=coach&range=30d&limit=7&cursor={cur}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25, "no repeats");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), coach.iter().map(Uuid::to_string).collect::<HashSet<_>>());

    let first = first.unwrap();
    let agg: &Vec<Value> = first["aggregates"].as_array().unwrap();
    assert_eq!(agg.len(), 1, "filtered to the coach");
    let a = &agg[0];
    assert_eq!((a["calls"].as_u64(), a["errors"].as_u64()), (Some(25), Some(1)));
    assert_eq!((a["inputTokens"].as_i64(), a["outputTokens"].as_i64()), (Some(2500), Some(500)));
    assert_eq!(a["latencyP50Ms"], 1300, "13th of 100..2500");
    assert_eq!(a["latencyP95Ms"], 2400, "24th of 25");
    assert_eq!(a["ttftP95Ms"], 240);

    let all = expect_json(get(&app, &token, "/api/v1/llm-calls?range=7d").await, 200).await;
    let models: Vec<&str> =
        all["aggregates"].as_array().unwrap().iter().map(|a| a["model"].as_str().unwrap()).collect();
    assert_eq!(models, vec!["claude-sonnet-4-5", "claude-haiku-4-5"], "busiest first");
    let errors = expect_json(get(&app, &token, "/api/v1/llm-calls?status=error").await, 200).await;
    assert_eq!(errors["data"].as_array().unwrap().len(), 1);
    let judge = expect_json(get(&app, &token, "/api/v1/llm-calls?model=claude-haiku-4-5").await, 200).await;
    assert_eq!(judge["data"].as_array().unwrap().len(), 3);

    // One call, whole.
    let one = expect_json(get(&app, &token, &format!("/api/v1/llm-calls/{}", coach[6])).await, 200).await;
    assert_eq!(one["input"]["messages"][0]["content"], "question 7");
    assert_eq!(one["output"]["content"], "answer 7");
    assert_eq!((one["status"].as_str(), one["errorType"].as_str()), (Some("error"), Some("overloaded")));
    expect_error(get(&app, &token, &format!("/api/v1/llm-calls/{}", Uuid::now_v7())).await, 404, "not_found").await;
    app.stop().await.unwrap();
}

async fn bad_llm_call_queries_are_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    for (query, field) in [
        ("status=failed", "status"),
        ("limit=500", "limit"),
        ("range=1y", "range"),
        ("range=7d&from=2026-11-01T00:00:00Z", "range"),
        ("from=monday", "from"),
        ("conversation_id=12", "conversation_id"),
        ("cursor=abc", "cursor"),
        ("sort=cost", "sort"),
    ] {
        let e =
            expect_error(get(&app, &token, &format!("/api/v1/llm-calls?{query}")).await, 400, "invalid_query").await;
        assert_eq!(e["details"]["field"], field, "{query}: {e}");
    }
    expect_error(app.get("/api/v1/llm-calls").await, 401, "unauthorized").await;
    app.stop().await.unwrap();
}
