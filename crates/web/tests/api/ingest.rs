//! Sensei ingestion over HTTP (issue 5): the track API, SDK batches and OTLP traces with a key made like
//! `mentorfy keys create` makes it; retries never duplicate, bad input stores nothing, revoked keys are refused
//! at once, and each key is rate limited.

use mentorfy_sensei::{ANALYSIS_JOB_KIND, ANALYSIS_QUEUE};
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::{Value, json};

both_backends!(
    track_stores_once_and_retries_are_duplicates,
    track_keeps_environments_apart_and_merges_metadata,
    track_rejections_name_the_field_and_store_nothing,
    keys_are_required_and_a_revoked_key_is_refused_at_once,
    batch_reports_each_event_and_dedupes_event_ids,
    batch_limits_are_whole_request_413s,
    otlp_json_and_gzip_protobuf_spans_become_conversations,
    ingestion_is_rate_limited_per_key_with_retry_after,
);

const T: &str = "2026-11-28T10:00:00.000Z";

async fn post(app: &TestApp, path: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(path)).bearer_auth(key).json(body).send().await.unwrap()
}

fn track_body(conversation: &str) -> Value {
    json!({
        "conversationId": conversation,
        "userId": "user_42",
        "metadata": {"plan": "pro"},
        "messages": [
            {"id": "m1", "role": "user", "content": "My invoice is wrong", "timestamp": T},
            {"id": "m2", "role": "assistant", "content": "Let me check that invoice.", "timestamp": "2026-11-28T10:00:02Z",
             "metadata": {"model": "claude-sonnet-4-5", "latency_ms": 900}},
            // No id: deduplicated by role + content + timestamp.
            {"role": "user", "content": "Thanks", "timestamp": 1_795_860_010_000i64}
        ]
    })
}

async fn track_stores_once_and_retries_are_duplicates(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let key = app.api_key(None).await;
    let res = post(&app, "/api/v1/conversations/track", &key, &track_body("conv-1")).await;
    assert!(res.headers().get("ratelimit").is_some(), "rate-limit state on admitted requests");
    assert_eq!(expect_json(res, 202).await, json!({"accepted": 3, "duplicates": 0}));
    // The retry (same body) and a partial overlap store nothing twice.
    let res = post(&app, "/api/v1/conversations/track", &key, &track_body("conv-1")).await;
    assert_eq!(expect_json(res, 202).await, json!({"accepted": 0, "duplicates": 3}));
    let more = json!({"conversationId": "conv-1", "messages": [
        {"id": "m2", "role": "assistant", "content": "Let me check that invoice.", "timestamp": "2026-11-28T10:00:02Z"},
        {"role": "assistant", "content": "Fixed: you will get a refund.", "timestamp": "2026-11-28T10:01:00+00:00"}]});
    let res = post(&app, "/api/v1/conversations/track", &key, &more).await;
    assert_eq!(expect_json(res, 202).await, json!({"accepted": 1, "duplicates": 1}));

    let conv = app.store.find_conversation("api", "production", "conv-1").await.unwrap().expect("stored");
    assert_eq!((conv.message_count, conv.user_id.as_deref()), (4, Some("user_42")));
    assert_eq!(conv.metadata, json!({"plan": "pro"}));
    let first = time::macros::datetime!(2026-11-28 10:00 UTC);
    assert_eq!(conv.first_message_at, Some(first));
    assert_eq!(conv.started_at, first, "a past conversation starts at its first message");
    assert_eq!(conv.last_message_at, time::macros::datetime!(2026-11-28 10:01 UTC));
    let messages = app.store.list_messages(conv.id).await.unwrap();
    let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        contents,
        ["My invoice is wrong", "Let me check that invoice.", "Thanks", "Fixed: you will get a refund."],
        "in time order"
    );
    assert_eq!(messages[1].metadata, json!({"model": "claude-sonnet-4-5", "latency_ms": 900}));
    assert_eq!(messages[1].latency_ms, Some(900), "usage in metadata fills the columns");
    assert!(messages[2].external_id.as_deref().is_some_and(|id| id.starts_with("h_")));
    // One debounced analysis job for the conversation, enqueued with the messages.
    let jobs = app.store.jobs_of_kind(ANALYSIS_JOB_KIND, 10).await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].queue, ANALYSIS_QUEUE);
    assert_eq!(jobs[0].payload, json!({"conversation_id": conv.id}));
}

async fn track_keeps_environments_apart_and_merges_metadata(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let staging_key = app.api_key(Some("staging")).await;
    let res = post(&app, "/api/v1/conversations/track", &staging_key, &track_body("shared-id")).await;
    expect_json(res, 202).await;
    // The body's environment wins over the key's; the same id in another environment is another conversation.
    let mut body = track_body("shared-id");
    body["environment"] = json!("production");
    body["metadata"] = json!({"channel": "web", "plan": null});
    let res = post(&app, "/api/v1/conversations/track", &staging_key, &body).await;
    assert_eq!(expect_json(res, 202).await, json!({"accepted": 3, "duplicates": 0}));
    let staging = app.store.find_conversation("api", "staging", "shared-id").await.unwrap().unwrap();
    let production = app.store.find_conversation("api", "production", "shared-id").await.unwrap().unwrap();
    assert_ne!(staging.id, production.id);
    assert_eq!((staging.message_count, production.message_count), (3, 3));
    assert_eq!(production.metadata, json!({"channel": "web"}), "null values are not stored");
    // Later metadata merges key by key; the first user id stays.
    let update = json!({"conversationId": "shared-id", "userId": "someone-else", "metadata": {"plan": "team", "tier": 2},
        "messages": [{"role": "user", "content": "one more", "timestamp": T}]});
    expect_json(post(&app, "/api/v1/conversations/track", &staging_key, &update).await, 202).await;
    let staging = app.store.find_conversation("api", "staging", "shared-id").await.unwrap().unwrap();
    assert_eq!(staging.metadata, json!({"plan": "team", "tier": 2}));
    assert_eq!((staging.user_id.as_deref(), staging.message_count), (Some("user_42"), 4));
    // API keys never reach Mentor's own conversations (source 'mentorfy').
    assert!(app.store.find_conversation("mentorfy", "production", "shared-id").await.unwrap().is_none());
}

async fn track_rejections_name_the_field_and_store_nothing(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let key = app.api_key(None).await;
    let url = "/api/v1/conversations/track";
    let msg = |content: &str| json!({"role": "user", "content": content, "timestamp": T});
    let cases = [
        (json!({"messages": [msg("a")]}), "conversationId"),
        (
            json!({"conversationId": "bad", "messages": [msg("ok"), {"role": "robot", "content": "x", "timestamp": T}]}),
            "messages[1].role",
        ),
        (
            json!({"conversationId": "bad", "messages": [msg("ok"), {"role": "user", "content": "x", "timestamp": 1_764_410_400}]}),
            "messages[1].timestamp",
        ),
        (
            json!({"conversationId": "bad", "messages": [msg("ok"), {"role": "user", "content": "x"}]}),
            "messages[1].timestamp",
        ),
        (json!({"conversationId": "bad", "messages": [msg("ok"), msg(&"é".repeat(40_000))]}), "messages[1].content"),
        (json!({"conversationId": "bad", "messages": []}), "messages"),
        (json!({"conversationId": "bad", "messages": [msg("a")], "colour": "red"}), "colour"),
        (json!({"conversationId": "bad", "environment": "no spaces", "messages": [msg("a")]}), "environment"),
    ];
    for (body, field) in cases {
        let err = expect_error(post(&app, url, &key, &body).await, 400, "invalid_field").await;
        assert_eq!(err["details"]["field"], field, "{body} → {err}");
        assert!(err["message"].as_str().unwrap().starts_with(field), "{err}");
    }
    let many: Vec<Value> = (0..501).map(|i| msg(&i.to_string())).collect();
    let err = expect_error(
        post(&app, url, &key, &json!({"conversationId": "bad", "messages": many})).await,
        400,
        "invalid_field",
    )
    .await;
    assert!(err["message"].as_str().unwrap().contains("500"), "{err}");
    // Over 1 MiB: 413 with the limit.
    let huge: Vec<Value> = (0..20).map(|_| msg(&"x".repeat(60_000))).collect();
    let err = expect_error(
        post(&app, url, &key, &json!({"conversationId": "bad", "messages": huge})).await,
        413,
        "payload_too_large",
    )
    .await;
    assert_eq!(err["details"]["max_bytes"], 1024 * 1024);
    // Not JSON.
    let res = app.client.post(app.url(url)).bearer_auth(&key).body("conversationId=x").send().await.unwrap();
    expect_error(res, 415, "unsupported_media_type").await;
    let res = app
        .client
        .post(app.url(url))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    expect_error(res, 400, "malformed_json").await;
    // Nothing partial was stored: the valid first messages of rejected requests are not there.
    assert!(app.store.find_conversation("api", "production", "bad").await.unwrap().is_none());
    assert!(app.store.jobs_of_kind(ANALYSIS_JOB_KIND, 10).await.unwrap().is_empty());
}

async fn keys_are_required_and_a_revoked_key_is_refused_at_once(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let body = track_body("k");
    for path in ["/api/v1/conversations/track", "/api/v1/ingest", "/api/v1/otel/v1/traces"] {
        let res = app.client.post(app.url(path)).json(&body).send().await.unwrap();
        expect_error(res, 401, "unauthorized").await;
        let res = post(&app, path, "sk_sensei_typo", &body).await;
        expect_error(res, 401, "unauthorized").await;
    }
    let created = app.state.admin().api_keys.create("to-revoke", None, None).await.unwrap();
    let res = app
        .client
        .post(app.url("/api/v1/conversations/track"))
        .header("x-api-key", &created.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_json(res, 202).await;
    app.state.admin().api_keys.revoke(created.row.id).await.unwrap();
    let res = post(&app, "/api/v1/conversations/track", &created.key, &track_body("after-revoke")).await;
    expect_error(res, 401, "unauthorized").await;
    assert!(app.store.find_conversation("api", "production", "after-revoke").await.unwrap().is_none());
    // Admin tokens are not API keys, and API keys open no admin route.
    let res = app.client.get(app.url("/api/v1/api-keys")).bearer_auth(&created.key).send().await.unwrap();
    expect_error(res, 401, "unauthorized").await;
}

fn event(id: &str, conversation: &str, content: &str) -> Value {
    json!({"id": id, "type": "track", "timestamp": T, "body": {"conversationId": conversation,
        "messages": [{"role": "user", "content": content, "timestamp": T}]}})
}

async fn batch_reports_each_event_and_dedupes_event_ids(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let key = app.api_key(None).await;
    let batch = json!({"batch": [
        event("e1", "b-1", "hello"),
        {"id": "e2", "type": "message", "timestamp": "2026-11-28T10:00:05Z",
         "body": {"conversationId": "b-1", "id": "reply-1", "role": "assistant", "content": "hi there"}},
        {"id": "e3", "type": "track", "body": {"conversationId": "b-2", "messages": [{"role": "wizard", "content": "x", "timestamp": T}]}},
        {"id": "e4", "type": "pageview", "body": {}},
        {"type": "track", "body": {}},
        event("e6", "b-2", "second conversation"),
    ]});
    let res = post(&app, "/api/v1/ingest", &key, &batch).await;
    let body = expect_json(res, 207).await;
    assert_eq!(
        body["successes"],
        json!([{"id": "e1", "status": 201}, {"id": "e2", "status": 201}, {"id": "e6", "status": 201}])
    );
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{body}");
    assert_eq!(
        (errors[0]["id"].clone(), errors[0]["status"].clone(), errors[0]["index"].clone()),
        (json!("e3"), json!(400), json!(2))
    );
    assert!(errors[0]["message"].as_str().unwrap().starts_with("body.messages[0].role"), "{body}");
    assert_eq!(errors[1]["id"], "e4");
    assert_eq!((errors[2]["id"].clone(), errors[2]["index"].clone()), (Value::Null, json!(4)));

    let b1 = app.store.find_conversation("api", "production", "b-1").await.unwrap().unwrap();
    let b2 = app.store.find_conversation("api", "production", "b-2").await.unwrap().unwrap();
    assert_eq!((b1.message_count, b2.message_count), (2, 1));
    assert!(app.store.ingest_event_seen("e1").await.unwrap());
    assert!(!app.store.ingest_event_seen("e3").await.unwrap(), "a refused event is not remembered");

    // The SDK retries the whole batch: stored events answer 200 and nothing is stored twice; the fixed event is new.
    let retry = json!({"batch": [event("e1", "b-1", "hello"), event("e6", "b-2", "second conversation"),
        {"id": "e3", "type": "track", "body": {"conversationId": "b-2", "messages": [{"role": "user", "content": "fixed", "timestamp": T}]}}]});
    let body = expect_json(post(&app, "/api/v1/ingest", &key, &retry).await, 207).await;
    assert_eq!(
        body,
        json!({"successes": [{"id": "e1", "status": 200}, {"id": "e6", "status": 200}, {"id": "e3", "status": 201}], "errors": []})
    );
    let b2 = app.store.find_conversation("api", "production", "b-2").await.unwrap().unwrap();
    assert_eq!(b2.message_count, 2);
    // An id repeated inside one batch is stored once.
    let twice = json!({"batch": [event("e7", "b-3", "once"), event("e7", "b-3", "once")]});
    let body = expect_json(post(&app, "/api/v1/ingest", &key, &twice).await, 207).await;
    assert_eq!(body["successes"], json!([{"id": "e7", "status": 201}, {"id": "e7", "status": 200}]));
    // Past the dedupe window the ids are forgotten (the hourly prune job); newer ones are kept.
    let pruned = app.store.prune_ingest_events(mentorfy_store::now() - time::Duration::hours(48)).await.unwrap();
    assert_eq!(pruned, 0);
    let pruned = app.store.prune_ingest_events(mentorfy_store::now() + time::Duration::seconds(1)).await.unwrap();
    assert_eq!(pruned, 5, "e1, e2, e6, e3, e7");
    assert!(!app.store.ingest_event_seen("e1").await.unwrap());
    // The prune job is registered and scheduled.
    assert!(app.state.job_registry().kinds().contains(&mentorfy_sensei::jobs::PRUNE_INGEST_EVENTS));
}

async fn batch_limits_are_whole_request_413s(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let key = app.api_key(None).await;
    let many: Vec<Value> = (0..1001).map(|i| event(&format!("e{i}"), "many", "x")).collect();
    let err =
        expect_error(post(&app, "/api/v1/ingest", &key, &json!({"batch": many})).await, 413, "payload_too_large").await;
    assert_eq!(err["details"], json!({"max_bytes": 3_500_000, "max_events": 1000}));
    let big: Vec<Value> = (0..8).map(|i| event(&format!("b{i}"), "big", &"y".repeat(500_000))).collect();
    let err =
        expect_error(post(&app, "/api/v1/ingest", &key, &json!({"batch": big})).await, 413, "payload_too_large").await;
    assert_eq!(err["details"]["max_bytes"], 3_500_000);
    let err =
        expect_error(post(&app, "/api/v1/ingest", &key, &json!({"events": []})).await, 400, "invalid_field").await;
    assert_eq!(err["details"]["field"], "events");
    assert!(app.store.find_conversation("api", "production", "many").await.unwrap().is_none());
}

/// The spec's example span (`shared/specs/otlp-genai.md` §8).
fn spec_span(conversation: Option<&str>) -> Value {
    let mut attributes = vec![
        json!({"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}),
        json!({"key": "gen_ai.provider.name", "value": {"stringValue": "anthropic"}}),
        json!({"key": "gen_ai.request.model", "value": {"stringValue": "claude-sonnet-4-5-20250929"}}),
        json!({"key": "gen_ai.response.model", "value": {"stringValue": "claude-sonnet-4-5-20250929"}}),
        json!({"key": "gen_ai.response.time_to_first_chunk", "value": {"doubleValue": 0.42}}),
        json!({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "812"}}),
        json!({"key": "gen_ai.usage.output_tokens", "value": {"intValue": "143"}}),
        json!({"key": "user.id", "value": {"stringValue": "user_2abc"}}),
        json!({"key": "gen_ai.input.messages", "value": {"stringValue": "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"Why does my borrow checker complain?\"}]}]"}}),
        json!({"key": "gen_ai.output.messages", "value": {"stringValue": "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"Because x is moved into the closure.\"}],\"finish_reason\":\"stop\"}]"}}),
    ];
    if let Some(c) = conversation {
        attributes.push(json!({"key": "gen_ai.conversation.id", "value": {"stringValue": c}}));
    }
    json!({
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "parentSpanId": "eee19b7ec3c1b173",
        "name": "chat claude-sonnet-4-5-20250929", "kind": 3,
        "startTimeUnixNano": "1763776800000000000", "endTimeUnixNano": "1763776801400000000",
        "attributes": attributes, "status": {"code": 0}
    })
}

fn export(spans: Vec<Value>) -> Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "chat-backend"}},
            {"key": "deployment.environment.name", "value": {"stringValue": "production"}}]},
        "scopeSpans": [{"scope": {"name": "chat-backend.llm", "version": "0.1.0"}, "spans": spans}]}]})
}

async fn otlp_json_and_gzip_protobuf_spans_become_conversations(db: TestDb) {
    use std::io::Write as _;

    let app = TestApp::spawn(db).await;
    let key = app.api_key(None).await;
    let url = "/api/v1/otel/v1/traces";
    let res = post(&app, url, &key, &export(vec![spec_span(Some("chat_8f2c"))])).await;
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(expect_json(res, 200).await, json!({}));
    // OTLP senders retry: the same span again changes nothing.
    expect_json(post(&app, url, &key, &export(vec![spec_span(Some("chat_8f2c"))])).await, 200).await;
    let conv = app.store.find_conversation("otel", "production", "chat_8f2c").await.unwrap().expect("stored");
    assert_eq!((conv.message_count, conv.user_id.as_deref()), (2, Some("user_2abc")));
    let messages = app.store.list_messages(conv.id).await.unwrap();
    assert_eq!(messages[0].content, "Why does my borrow checker complain?");
    let reply = &messages[1];
    assert_eq!((reply.role.as_str(), reply.content.as_str()), ("assistant", "Because x is moved into the closure."));
    assert_eq!(
        (reply.input_tokens, reply.output_tokens, reply.latency_ms, reply.ttft_ms),
        (Some(812), Some(143), Some(1400), Some(420))
    );
    assert_eq!(reply.metadata["model"], "claude-sonnet-4-5-20250929");

    // A span without a conversation id is a partial success (not retried); the good span still lands.
    let res = post(&app, url, &key, &export(vec![spec_span(None), spec_span(Some("chat_other"))])).await;
    let body = expect_json(res, 200).await;
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "1", "{body}");
    assert!(app.store.find_conversation("otel", "production", "chat_other").await.unwrap().is_some());

    // Protobuf, gzip-compressed, answered in protobuf.
    let mut span =
        mentorfy_otlp::Span::start(mentorfy_otlp::new_trace_id(), None, "chat gpt-4o", mentorfy_otlp::SpanKind::Client);
    span.attr("gen_ai.operation.name", "chat")
        .attr("gen_ai.system", "openai")
        .attr("gen_ai.request.model", "gpt-4o")
        .attr("session.id", "proto-conv")
        .attr("gen_ai.prompt", r#"[{"role":"user","content":"ping"}]"#)
        .attr("gen_ai.completion", r#"[{"role":"assistant","content":"pong"}]"#);
    span.end();
    let resource = mentorfy_otlp::Resource::new("svc", "1").attr("deployment.environment.name", "staging");
    let raw = mentorfy_otlp::encode_protobuf(&resource, &[span]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let res = app
        .client
        .post(app.url(url))
        .bearer_auth(&key)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-protobuf");
    assert!(res.bytes().await.unwrap().is_empty(), "an empty ExportTraceServiceResponse");
    let conv = app.store.find_conversation("otel", "staging", "proto-conv").await.unwrap().expect("stored");
    let contents: Vec<String> =
        app.store.list_messages(conv.id).await.unwrap().into_iter().map(|m| m.content).collect();
    assert_eq!(contents, ["ping", "pong"]);

    // Garbage and unknown media types are 4xx.
    let res = app
        .client
        .post(app.url(url))
        .bearer_auth(&key)
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff; 16])
        .send()
        .await
        .unwrap();
    expect_error(res, 400, "malformed_otlp").await;
    let res = app
        .client
        .post(app.url(url))
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    expect_error(res, 415, "unsupported_media_type").await;
}

async fn ingestion_is_rate_limited_per_key_with_retry_after(db: TestDb) {
    let app = TestApp::spawn_with(db, &[("SENSEI_INGEST_RATE_LIMIT", "1/1m"), ("SENSEI_INGEST_BURST", "2")]).await;
    let key = app.api_key(None).await;
    let other = app.api_key(None).await;
    for i in 0..2 {
        let res = post(&app, "/api/v1/conversations/track", &key, &track_body(&format!("rl-{i}"))).await;
        expect_json(res, 202).await;
    }
    let res = post(&app, "/api/v1/conversations/track", &key, &track_body("rl-2")).await;
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(res.headers()["ratelimit-policy"], "\"ingest\";q=2;w=120");
    assert_eq!(res.headers()["ratelimit"].to_str().unwrap(), format!("\"ingest\";r=0;t={retry_after}"));
    expect_error(res, 429, "rate_limited").await;
    assert!(app.store.find_conversation("api", "production", "rl-2").await.unwrap().is_none());
    // Another key is not affected.
    expect_json(post(&app, "/api/v1/ingest", &other, &json!({"batch": [event("x1", "rl-other", "hi")]})).await, 207)
        .await;
}
