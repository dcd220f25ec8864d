//! `/api/chat`, `/api/generate/{type}` and `/api/agents` end to end: the real app against local fake model
//! providers and a fake OTLP collector, on SQLite and PostgreSQL. Tests assert what we sent upstream as well
//! as what we streamed, stored and exported.

use std::time::Duration;

use mentorfy_fakes::anthropic::{FakeAnthropic, Reply};
use mentorfy_fakes::openai::FakeOpenAi;
use mentorfy_fakes::otlp::FakeCollector;
use mentorfy_store::{LlmCallFilter, LlmCallRow};
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::{Value, json};

both_backends!(
    use_chat_body_streams_the_answer_stores_the_transcript_and_traces_the_call,
    prd_body_works_and_history_comes_from_storage,
    tool_round_trip_runs_server_side_and_sends_results_after_calls,
    tool_errors_go_back_to_the_model_not_to_a_crash,
    failure_after_the_stream_started_is_error_then_finish_then_done,
    errors_before_the_stream_are_json_envelopes,
    rate_limits_pass_retry_after_through_and_overloads_are_retried,
    client_disconnect_drops_the_upstream_and_stores_what_was_produced,
    generation_reads_the_fresh_context_and_is_traced,
    agents_are_listed_with_their_availability,
    openai_compatible_agents_stream_too,
    spans_reach_the_collector_with_genai_attributes,
    a_dead_collector_never_fails_a_chat,
);

const MODEL: &str = "claude-sonnet-4-6";

fn anthropic_vars(fake: &FakeAnthropic) -> Vec<(&'static str, String)> {
    vec![("ANTHROPIC_API_KEY", "sk-ant-test-key".to_owned()), ("ANTHROPIC_BASE_URL", fake.url())]
}

async fn spawn(db: TestDb, vars: &[(&'static str, String)]) -> TestApp {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::spawn_with(db, &vars).await
}

/// A session with onboarding answers, as the frontend builds it.
async fn session_with_answers(app: &TestApp) -> String {
    let id = app.create_session(json!({"orgId": "rafael-tatts", "name": "Ana"})).await;
    let res = app
        .patch_json(
            &format!("/api/session/{id}"),
            &json!({"context": {"goals": "fill my books three months out", "pricing": {"hourly_rate": 150}}}),
        )
        .await;
    assert_eq!(res.status().as_u16(), 200);
    id
}

fn use_chat_body(session: &str, text: &str, id: &str) -> Value {
    json!({
        "id": "chat_1",
        "trigger": "submit-message",
        "messages": [{"id": id, "role": "user", "parts": [{"type": "text", "text": text}]}],
        "sessionId": session,
        "agentId": "rafael-chat",
    })
}

struct Stream {
    raw: String,
    chunks: Vec<Value>,
}

impl Stream {
    fn types(&self) -> Vec<&str> {
        self.chunks.iter().map(|c| c["type"].as_str().unwrap_or("?")).collect()
    }

    fn text(&self) -> String {
        self.chunks.iter().filter(|c| c["type"] == "text-delta").map(|c| c["delta"].as_str().unwrap_or("")).collect()
    }

    fn of_type(&self, t: &str) -> Vec<&Value> {
        self.chunks.iter().filter(|c| c["type"] == t).collect()
    }
}

fn assert_no_nulls(v: &Value, path: &str) {
    match v {
        Value::Null => panic!("null at {path}"),
        Value::Object(m) => m.iter().for_each(|(k, v)| assert_no_nulls(v, &format!("{path}.{k}"))),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| assert_no_nulls(v, &format!("{path}[{i}]"))),
        _ => {}
    }
}

/// Posts to `/api/chat`, checks the protocol's headers and framing, and parses every chunk.
async fn chat(app: &TestApp, body: &Value) -> Stream {
    let res = app.post_json("/api/chat", body).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let raw = res.text().await.expect("body");
    assert_eq!(status, 200, "{raw}");
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["x-vercel-ai-ui-message-stream"], "v1");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(headers["cache-control"].to_str().unwrap().contains("no-cache"));
    assert!(raw.ends_with("data: [DONE]\n\n"), "{raw}");
    let mut chunks = Vec::new();
    for event in raw.split("\n\n").filter(|e| !e.is_empty()) {
        if event.starts_with(':') {
            continue;
        }
        let data = event.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {event:?}"));
        assert!(!data.contains('\n'), "one line per event: {event:?}");
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("bad JSON ({e}): {data}"));
        assert_no_nulls(&chunk, "chunk");
        chunks.push(chunk);
    }
    Stream { raw, chunks }
}

async fn calls(app: &TestApp, session: &str) -> Vec<LlmCallRow> {
    let filter = LlmCallFilter { session_id: Some(session.parse().unwrap()), limit: 100, ..LlmCallFilter::default() };
    let mut rows = app.store.list_llm_calls(&filter).await.unwrap();
    rows.reverse();
    rows
}

/// Waits for background recording (the turn's task writes after the stream ends).
async fn calls_eventually(app: &TestApp, session: &str, n: usize) -> Vec<LlmCallRow> {
    for _ in 0..200 {
        let rows = calls(app, session).await;
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("expected {n} llm_calls rows for {session}, got {:?}", calls(app, session).await);
}

async fn messages_eventually(app: &TestApp, session: &str, n: usize) -> Vec<mentorfy_store::MessageRow> {
    for _ in 0..200 {
        if let Some(conv) = app.store.find_conversation("mentorfy", "production", session).await.unwrap() {
            let rows = app.store.list_messages(conv.id).await.unwrap();
            if rows.len() >= n {
                return rows;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("expected {n} messages for {session}");
}

fn system_text(request: &Value) -> String {
    request["system"]
        .as_array()
        .map(|blocks| blocks.iter().filter_map(|b| b["text"].as_str()).collect())
        .unwrap_or_default()
}

async fn use_chat_body_streams_the_answer_stores_the_transcript_and_traces_the_call(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("Hello Ana! Let's fill those books.").usage(1200, 9).cache(1000, 0).model(MODEL));
    let app = spawn(db, &anthropic_vars(&fake)).await;
    let session = session_with_answers(&app).await;

    let s = chat(&app, &use_chat_body(&session, "How do I get booked out?", "u1")).await;
    let types = s.types();
    assert_eq!(types.first(), Some(&"start"));
    assert_eq!(&types[1..3], &["start-step", "text-start"]);
    assert_eq!(&types[types.len() - 3..], &["text-end", "finish-step", "finish"], "{}", s.raw);
    assert_eq!(s.text(), "Hello Ana! Let's fill those books.");
    let message_id = s.chunks[0]["messageId"].as_str().unwrap().to_owned();
    assert!(message_id.starts_with("msg_"));
    let finish = s.of_type("finish")[0];
    assert_eq!(finish["finishReason"], "stop");
    assert_eq!(finish["messageMetadata"]["inputTokens"], 2200, "all prompt tokens, cached ones included");
    assert_eq!(finish["messageMetadata"]["outputTokens"], 9);
    assert!(finish["messageMetadata"]["costUsd"].as_f64().unwrap() > 0.0);

    // What we sent: the rendered system prompt with the session's answers, cached; the user's message.
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test-key"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.body["model"], MODEL);
    assert_eq!(sent.body["stream"], true);
    let system = system_text(&sent.body);
    assert!(system.contains("fill my books three months out"), "{system}");
    assert!(system.contains("hourly_rate: 150"), "{system}");
    assert!(system.contains("Ana"), "{system}");
    assert!(!system.contains("{{"), "every placeholder is rendered: {system}");
    assert_eq!(sent.body["system"][0]["cache_control"]["type"], "ephemeral");
    let msgs = sent.body["messages"].as_array().unwrap();
    assert_eq!(msgs.last().unwrap()["role"], "user");
    assert!(serde_json::to_string(msgs.last().unwrap()).unwrap().contains("How do I get booked out?"));
    assert_eq!(sent.body["tools"][0]["name"], "session_answers");

    // What we stored: the transcript as a Sensei conversation, and the call with tokens and cost.
    let conv = app.store.find_conversation("mentorfy", "production", &session).await.unwrap().expect("conversation");
    assert_eq!(conv.org_id.as_deref(), Some("rafael-tatts"));
    assert_eq!(conv.agent_id.as_deref(), Some("rafael-chat"));
    let rows = messages_eventually(&app, &session, 2).await;
    assert_eq!(rows[0].role, "user");
    assert_eq!(rows[0].content, "How do I get booked out?");
    assert_eq!(rows[0].external_id.as_deref(), Some("u1"));
    assert_eq!(rows[1].role, "assistant");
    assert_eq!(rows[1].content, "Hello Ana! Let's fill those books.");
    assert_eq!(rows[1].external_id.as_deref(), Some(message_id.as_str()));
    assert_eq!(rows[1].status, "complete");
    assert_eq!(rows[1].finish_reason.as_deref(), Some("stop"));
    assert_eq!(rows[1].input_tokens, Some(2200));
    assert_eq!(rows[1].output_tokens, Some(9));
    assert!(rows[1].latency_ms.is_some() && rows[1].ttft_ms.is_some());
    // The same shape as an ingested conversation: environment, rollups, an analysis-ready row.
    let conv = app.store.find_conversation("mentorfy", "production", &session).await.unwrap().expect("conversation");
    assert_eq!((conv.environment.as_str(), conv.message_count, conv.status.as_str()), ("production", 2, "active"));
    assert_eq!(conv.first_message_at, Some(rows[0].created_at));
    assert_eq!(conv.last_message_at, rows[1].created_at);

    let calls = calls_eventually(&app, &session, 1).await;
    let call = &calls[0];
    assert_eq!(call.operation, "chat");
    assert_eq!(call.provider, "anthropic");
    assert_eq!(call.model, MODEL);
    assert_eq!(call.agent_id.as_deref(), Some("rafael-chat"));
    assert_eq!(call.conversation_id, Some(conv.id));
    assert_eq!(call.message_id, Some(rows[1].id));
    assert_eq!(call.status, "ok");
    assert_eq!(call.input_tokens, Some(2200));
    assert_eq!(call.output_tokens, Some(9));
    assert_eq!(call.cache_read_tokens, Some(1000));
    assert_eq!(call.finish_reason.as_deref(), Some("end_turn"));
    assert!(call.stream);
    assert!(call.ttft_ms.is_some());
    assert_eq!(call.trace_id.len(), 32);
    // Anthropic's input_tokens (1200) excludes the 1000 read from cache: 1200 × $3 + 1000 × $0.30 + 9 × $15.
    let expected = (1200.0 * 3.0 + 1000.0 * 0.30 + 9.0 * 15.0) / 1_000_000.0;
    assert!((call.cost_usd.unwrap() - expected).abs() < 1e-12, "{:?} vs {expected}", call.cost_usd);
    assert!(call.input["system"].as_str().unwrap().contains("fill my books"));
    assert_eq!(call.output.as_ref().unwrap()["content"][0]["text"], "Hello Ana! Let's fill those books.");
    assert_eq!(call.parameters["max_tokens"], sent.body["max_tokens"]);
}

async fn prd_body_works_and_history_comes_from_storage(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    fake.push_all([Reply::text("First answer."), Reply::text("Second answer."), Reply::text("Third answer.")]);
    let mut vars = anthropic_vars(&fake);
    vars.push(("MENTORFY_CHAT_HISTORY_TURNS", "1".to_owned()));
    let app = spawn(db, &vars).await;
    let session = session_with_answers(&app).await;
    let body = |m: &str| json!({"sessionId": session, "agentId": "rafael-chat", "message": m});

    assert_eq!(chat(&app, &body("one")).await.text(), "First answer.");
    messages_eventually(&app, &session, 2).await;
    assert_eq!(chat(&app, &body("two")).await.text(), "Second answer.");
    messages_eventually(&app, &session, 4).await;
    // The client sent only the new message; the transcript came from storage.
    let requests = fake.requests();
    let second = &requests[1].body["messages"];
    let texts: Vec<String> = second.as_array().unwrap().iter().map(|m| m["content"].to_string()).collect();
    assert_eq!(texts.len(), 3, "{second}");
    assert!(texts[0].contains("one") && texts[1].contains("First answer.") && texts[2].contains("two"), "{second}");

    // One turn of history: the oldest exchange has dropped out.
    chat(&app, &body("three")).await;
    let requests = fake.requests();
    let third = &requests[2].body["messages"];
    let all = third.to_string();
    assert!(!all.contains("First answer.") && all.contains("Second answer.") && all.contains("three"), "{third}");
    assert_eq!(third[0]["role"], "user", "a transcript starts with the user: {third}");
}

async fn tool_round_trip_runs_server_side_and_sends_results_after_calls(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("Let me check your answers.").then_tool_call(
        "toolu_01",
        "session_answers",
        json!({"key": "goals"}),
    ));
    fake.push(Reply::text("Your goal is to fill your books three months out."));
    let app = spawn(db, &anthropic_vars(&fake)).await;
    let session = session_with_answers(&app).await;

    let s = chat(&app, &use_chat_body(&session, "What did I say my goal was?", "u1")).await;
    let types = s.types();
    assert_eq!(types.iter().filter(|t| **t == "start-step").count(), 2, "{}", s.raw);
    assert_eq!(types.iter().filter(|t| **t == "finish-step").count(), 2);
    let start = types.iter().position(|t| *t == "tool-input-start").unwrap();
    let available = types.iter().position(|t| *t == "tool-input-available").unwrap();
    let output = types.iter().position(|t| *t == "tool-output-available").unwrap();
    let first_finish_step = types.iter().position(|t| *t == "finish-step").unwrap();
    assert!(start < available && available < output && output < first_finish_step, "{types:?}");
    let out = s.of_type("tool-output-available")[0];
    assert_eq!(out["toolCallId"], "toolu_01");
    assert_eq!(out["output"], json!({"key": "goals", "value": "fill my books three months out"}));
    assert_eq!(s.of_type("tool-input-available")[0]["input"], json!({"key": "goals"}));
    assert_eq!(s.of_type("finish")[0]["finishReason"], "stop");
    assert!(s.text().ends_with("Your goal is to fill your books three months out."));

    // The second request carries the assistant's tool_use and, right after, the tool_result with the same id.
    let requests = fake.requests();
    let second = &requests[1].body;
    let msgs = second["messages"].as_array().unwrap();
    let n = msgs.len();
    let assistant = &msgs[n - 2];
    let result = &msgs[n - 1];
    assert_eq!(assistant["role"], "assistant");
    let tool_use = assistant["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").unwrap();
    assert_eq!(tool_use["id"], "toolu_01");
    assert_eq!(result["role"], "user");
    assert_eq!(result["content"][0]["type"], "tool_result");
    assert_eq!(result["content"][0]["tool_use_id"], "toolu_01");
    assert!(result["content"][0]["content"].to_string().contains("three months out"));
    assert_ne!(result["content"][0]["is_error"], true);

    let calls = calls_eventually(&app, &session, 2).await;
    assert_eq!(calls[0].finish_reason.as_deref(), Some("tool_use"));
    assert_eq!(calls[0].trace_id, calls[1].trace_id, "one trace per turn");
    let rows = messages_eventually(&app, &session, 2).await;
    assert_eq!(rows[1].metadata["toolCalls"][0]["name"], "session_answers");
    assert!(rows[1].content.contains("Let me check") && rows[1].content.contains("three months out"));
}

async fn tool_errors_go_back_to_the_model_not_to_a_crash(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::tool_call("toolu_bad", "session_answers", json!({"key": "tattoo_styles"})));
    fake.push(Reply::text("You haven't told me your styles yet."));
    let app = spawn(db, &anthropic_vars(&fake)).await;
    let session = session_with_answers(&app).await;

    let s = chat(&app, &use_chat_body(&session, "What styles do I do?", "u1")).await;
    let err = s.of_type("tool-output-error");
    assert_eq!(err.len(), 1, "{}", s.raw);
    assert!(err[0]["errorText"].as_str().unwrap().contains("tattoo_styles"));
    assert_eq!(s.of_type("finish")[0]["finishReason"], "stop");
    let requests = fake.requests();
    let result = &requests[1].body["messages"].as_array().unwrap().last().unwrap()["content"][0];
    assert_eq!(result["is_error"], true);
    assert!(result["content"].to_string().contains("known keys"), "{result}");
}

async fn failure_after_the_stream_started_is_error_then_finish_then_done(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::error_after_text("Here is the first half", "overloaded_error", "Overloaded"));
    let app = spawn(db, &anthropic_vars(&fake)).await;
    let session = session_with_answers(&app).await;

    let s = chat(&app, &use_chat_body(&session, "Tell me everything", "u1")).await;
    let types = s.types();
    let n = types.len();
    assert_eq!(&types[n - 3..], &["error", "finish-step", "finish"], "{}", s.raw);
    assert!(!types.contains(&"text-end"), "the interrupted text part is not closed");
    assert_eq!(s.of_type("finish")[0]["finishReason"], "error");
    let text = s.of_type("error")[0]["errorText"].as_str().unwrap();
    assert!(!text.is_empty() && !text.contains("overloaded_error") && !text.contains('{'), "{text}");
    assert_eq!(s.text(), "Here is the first half");
    assert_eq!(fake.request_count(), 1, "no retry after bytes reached the client");

    let calls = calls_eventually(&app, &session, 1).await;
    assert_eq!(calls[0].status, "error");
    assert_eq!(calls[0].error_type.as_deref(), Some("overloaded_error"));
    let rows = messages_eventually(&app, &session, 2).await;
    assert_eq!(rows[1].status, "error");
    assert_eq!(rows[1].content, "Here is the first half");
}

async fn errors_before_the_stream_are_json_envelopes(db: TestDb) {
    // No provider configured: the server starts, and chat says which variable to set.
    let app = TestApp::spawn(db).await;
    let session = session_with_answers(&app).await;
    let err = expect_error(
        app.post_json("/api/chat", &use_chat_body(&session, "hi", "u1")).await,
        503,
        "provider_not_configured",
    )
    .await;
    assert_eq!(err["details"]["missing"], json!(["ANTHROPIC_API_KEY"]));
    assert!(err["message"].as_str().unwrap().contains("ANTHROPIC_API_KEY"));
    let err = expect_error(
        app.post_json("/api/generate/diagnosis", &json!({"sessionId": session})).await,
        503,
        "provider_not_configured",
    )
    .await;
    assert_eq!(err["details"]["provider"], "anthropic");

    let unknown = "6f1c4a8e-2b7d-4c3a-9e5f-0a1b2c3d4e5f";
    expect_error(app.post_json("/api/chat", &use_chat_body(unknown, "hi", "u1")).await, 404, "not_found").await;
    let mut body = use_chat_body(&session, "hi", "u1");
    body["agentId"] = json!("nobody");
    expect_error(app.post_json("/api/chat", &body).await, 404, "not_found").await;
    body["agentId"] = json!("rafael-diagnosis");
    let err = expect_error(app.post_json("/api/chat", &body).await, 422, "validation_failed").await;
    assert_eq!(err["details"]["field"], "agentId");
    let err = expect_error(
        app.post_json("/api/chat", &json!({"sessionId": session, "agentId": "rafael-chat", "message": "   "})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(err["details"]["field"], "message");
    let err = expect_error(
        app.post_json("/api/chat", &json!({"agentId": "rafael-chat", "message": "x"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(err["details"]["field"], "sessionId");
    expect_error(app.post_json("/api/generate/horoscope", &json!({"sessionId": session})).await, 404, "not_found")
        .await;
    expect_error(app.post_json("/api/generate/NOPE!", &json!({"sessionId": session})).await, 404, "not_found").await;
    // Nothing was stored for refused requests, and no call was made.
    assert!(app.store.find_conversation("mentorfy", "production", &session).await.unwrap().is_none());
}

async fn rate_limits_pass_retry_after_through_and_overloads_are_retried(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    let mut vars = anthropic_vars(&fake);
    vars.push(("MENTORFY_LLM_MAX_RETRIES", "0".to_owned()));
    let app = spawn(db, &vars).await;
    let session = session_with_answers(&app).await;
    fake.push(
        Reply::error_body(429, "rate_limit_error", "Number of request tokens has exceeded your limit")
            .retry_after_secs(7),
    );
    let res = app.post_json("/api/chat", &use_chat_body(&session, "hi", "u1")).await;
    assert_eq!(res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()), Some("7".to_owned()));
    let err = expect_error(res, 429, "upstream_rate_limited").await;
    assert!(!err["message"].as_str().unwrap().contains("request tokens"), "upstream text is not passed on: {err}");
    let calls = calls_eventually(&app, &session, 1).await;
    assert_eq!(calls[0].status, "error");
    assert_eq!(calls[0].error_type.as_deref(), Some("rate_limit_error"));
    assert_eq!(calls[0].cost_usd, None);
    drop(app);

    // With retries on, a 529 before the first byte is retried and the client never sees it.
    let db = TestDb::create(mentorfy_test_support::Backend::Sqlite).await.unwrap();
    let app = spawn(db, &anthropic_vars(&fake)).await;
    let session = session_with_answers(&app).await;
    let before = fake.request_count();
    fake.push(Reply::error_body(529, "overloaded_error", "Overloaded").retry_after_ms(20));
    fake.push(Reply::text("Made it."));
    let s = chat(&app, &use_chat_body(&session, "hi", "u1")).await;
    assert_eq!(s.text(), "Made it.");
    assert_eq!(fake.request_count() - before, 2);
    let calls = calls_eventually(&app, &session, 1).await;
    assert_eq!(calls[0].status, "ok");
    assert_eq!(calls[0].attempts, 2);
}

async fn client_disconnect_drops_the_upstream_and_stores_what_was_produced(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    let long = "word ".repeat(400);
    fake.push(Reply::text(long).with_delta_delay(Duration::from_millis(20)));
    let app = spawn(db, &anthropic_vars(&fake)).await;
    let session = session_with_answers(&app).await;

    let mut res = app.post_json("/api/chat", &use_chat_body(&session, "talk a lot", "u1")).await;
    assert_eq!(res.status().as_u16(), 200);
    let mut seen = String::new();
    while !seen.contains("text-delta") {
        let chunk = res.chunk().await.unwrap().expect("more body");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(res);

    assert!(fake.wait_for_closed_early(1, Duration::from_secs(10)).await >= 1, "the upstream request was dropped");
    let calls = calls_eventually(&app, &session, 1).await;
    assert_eq!(calls[0].status, "aborted");
    let rows = messages_eventually(&app, &session, 2).await;
    assert_eq!(rows[1].status, "aborted");
    assert_eq!(rows[1].finish_reason.as_deref(), Some("aborted"));
    assert!(rows[1].content.starts_with("word"), "what was produced is kept: {:?}", rows[1].content);
    assert!(rows[1].content.len() < 2000, "but not what was never streamed");
}

async fn generation_reads_the_fresh_context_and_is_traced(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("## Where you stand\nYou charge $150/h.").usage(800, 40).model(MODEL));
    let app = spawn(db, &anthropic_vars(&fake)).await;
    let session = session_with_answers(&app).await;
    // A PATCH just before the generation is what it must read.
    app.patch_json(&format!("/api/session/{session}"), &json!({"context": {"deposit": "none"}})).await;

    let v = expect_json(app.post_json("/api/generate/diagnosis", &json!({"sessionId": session})).await, 200).await;
    assert_eq!(v["content"], "## Where you stand\nYou charge $150/h.");
    assert_eq!(v["agentId"], "rafael-diagnosis");
    assert_eq!(v["usage"]["inputTokens"], 800);
    assert!(v["costUsd"].as_f64().unwrap() > 0.0);

    let sent = fake.last_request().unwrap();
    assert_ne!(sent.body["stream"], true, "generations are not streamed");
    let system = system_text(&sent.body);
    assert!(system.contains("hourly_rate: 150") && system.contains("deposit: none"), "{system}");

    let calls = calls(&app, &session).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].operation, "generate");
    assert_eq!(calls[0].agent_id.as_deref(), Some("rafael-diagnosis"));
    assert!(!calls[0].stream);
    assert_eq!(calls[0].input_tokens, Some(800));
    assert_eq!(calls[0].trace_id, v["traceId"].as_str().unwrap());
    expect_error(
        app.post_json("/api/generate/diagnosis", &json!({"sessionId": "6f1c4a8e-2b7d-4c3a-9e5f-0a1b2c3d4e5f"})).await,
        404,
        "not_found",
    )
    .await;
}

async fn agents_are_listed_with_their_availability(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    let app = spawn(db, &anthropic_vars(&fake)).await;
    let v = expect_json(app.get("/api/agents").await, 200).await;
    let agents = v["agents"].as_array().unwrap();
    let ids: Vec<&str> = agents.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["rafael-chat", "rafael-diagnosis", "rafael-summary"]);
    assert!(agents.iter().all(|a| a["available"] == true && a["provider"] == "anthropic"));
    assert_eq!(agents[0]["endpoint"], "/api/chat");
    assert_eq!(agents[1]["endpoint"], "/api/generate/diagnosis");
    assert!(!v.to_string().contains("system"), "prompts are not exposed");
    let v = expect_json(app.get("/api/agents?org=nobody").await, 200).await;
    assert_eq!(v["agents"], json!([]));
}

async fn openai_compatible_agents_stream_too(db: TestDb) {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("Hi from a local model.").usage(30, 6).model("llama3.2"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rafael-tatts")).unwrap();
    std::fs::write(
        dir.path().join("rafael-tatts/rafael-local.toml"),
        "id = \"rafael-local\"\norg = \"rafael-tatts\"\nname = \"Local\"\nkind = \"chat\"\nprovider = \"openai\"\n\
         model = \"llama3.2\"\nmax_tokens = 256\nsystem = '''You mentor {{name}}. Answers: {{context}}'''\n",
    )
    .unwrap();
    let vars = vec![
        ("OPENAI_BASE_URL", fake.url()),
        ("OPENAI_PROVIDER_NAME", "ollama".to_owned()),
        ("MENTORFY_AGENTS_DIR", dir.path().display().to_string()),
    ];
    let app = spawn(db, &vars).await;
    let session = session_with_answers(&app).await;
    let mut body = use_chat_body(&session, "hello", "u1");
    body["agentId"] = json!("rafael-local");
    let s = chat(&app, &body).await;
    assert_eq!(s.text(), "Hi from a local model.");
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.body["messages"][0]["role"], "system");
    assert!(sent.body["messages"][0]["content"].as_str().unwrap().contains("hourly_rate: 150"));
    assert_eq!(sent.body["stream_options"]["include_usage"], true);
    assert!(sent.header("authorization").is_none(), "no key, no Authorization header");
    let calls = calls_eventually(&app, &session, 1).await;
    assert_eq!(calls[0].provider, "ollama");
    assert_eq!(calls[0].input_tokens, Some(30));
    assert_eq!(calls[0].cost_usd, None, "an unknown model has no cost, never 0");
}

async fn spans_reach_the_collector_with_genai_attributes(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("Let me look.").then_tool_call("toolu_9", "session_answers", json!({})));
    fake.push(Reply::text("Done.").usage(500, 20).model(MODEL));
    let collector = FakeCollector::start().await;
    let mut vars = anthropic_vars(&fake);
    vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url()));
    vars.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()));
    vars.push(("MENTORFY_TRACE_CONTENT", "true".to_owned()));
    let app = spawn(db, &vars).await;
    let session = session_with_answers(&app).await;
    chat(&app, &use_chat_body(&session, "hi", "u1")).await;

    // Two LLM calls, one tool run, one agent turn.
    let spans = collector.wait_for_spans(4, Duration::from_secs(10)).await;
    let llm: Vec<_> = spans.iter().filter(|s| s.name == format!("chat {MODEL}")).collect();
    assert_eq!(llm.len(), 2, "{:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    let root = spans.iter().find(|s| s.name == "invoke_agent rafael-chat").expect("root span");
    let tool = spans.iter().find(|s| s.name == "execute_tool session_answers").expect("tool span");
    for s in [llm[0], llm[1], root, tool] {
        assert_eq!(s.trace_id_hex, root.trace_id_hex);
        assert_eq!(s.str("gen_ai.conversation.id"), Some(session.as_str()));
        assert_eq!(s.str("session.id"), Some(session.as_str()));
        assert_eq!(s.str("user.id"), Some(session.as_str()));
    }
    let last = llm[1];
    assert_eq!(last.kind, 3, "LLM calls are CLIENT spans");
    assert_eq!(last.parent_span_id_hex.as_deref(), Some(root.span_id_hex.as_str()));
    assert_eq!(last.str("gen_ai.operation.name"), Some("chat"));
    assert_eq!(last.str("gen_ai.provider.name"), Some("anthropic"));
    assert_eq!(last.str("gen_ai.request.model"), Some(MODEL));
    assert_eq!(last.bool("gen_ai.request.stream"), Some(true));
    assert_eq!(last.int("gen_ai.usage.input_tokens"), Some(500));
    assert_eq!(last.int("gen_ai.usage.output_tokens"), Some(20));
    assert_eq!(last.strings("gen_ai.response.finish_reasons"), Some(vec!["end_turn"]));
    assert!(last.double("gen_ai.response.time_to_first_chunk").is_some());
    assert!(last.double("app.cost_usd").unwrap() > 0.0);
    assert_eq!(last.str("server.address"), Some("127.0.0.1"));
    assert!(last.str("gen_ai.input.messages").unwrap().contains("tool_call_response"));
    assert_eq!(tool.str("gen_ai.tool.call.id"), Some("toolu_9"));
    let row = calls_eventually(&app, &session, 2).await;
    assert_eq!(row[1].trace_id, last.trace_id_hex);
    assert_eq!(row[1].span_id, last.span_id_hex);
    assert_eq!(collector.requests()[0].content_type, "application/json");
}

async fn a_dead_collector_never_fails_a_chat(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    fake.respond_with(|_| Reply::text("Still here."));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let mut vars = anthropic_vars(&fake);
    vars.push(("LANGFUSE_HOST", url));
    vars.push(("LANGFUSE_PUBLIC_KEY", "pk-lf-test".to_owned()));
    vars.push(("LANGFUSE_SECRET_KEY", "sk-lf-test".to_owned()));
    let app = spawn(db, &vars).await;
    let session = session_with_answers(&app).await;
    for i in 0..3 {
        let s = chat(&app, &use_chat_body(&session, "hi", &format!("u{i}"))).await;
        assert_eq!(s.text(), "Still here.");
    }
    calls_eventually(&app, &session, 3).await;
}
