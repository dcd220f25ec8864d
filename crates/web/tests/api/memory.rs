//! Memory end to end: onboarding answers become memories through the job queue, `GET …/memories` finds them,
//! the next chat's prompt recalls them, chat turns are remembered, the `memory_search` and `knowledge_search`
//! tools answer the model, and Supermemory (a local fake speaking its wire format) receives the same memories
//! even when it is down at first. On SQLite and PostgreSQL.

use std::time::Duration;

use mentorfy_fakes::anthropic::{FakeAnthropic, Reply};
use mentorfy_fakes::supermemory::{API_KEY, FakeSupermemory};
use mentorfy_store::JobState;
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::{Value, json};

both_backends!(
    answers_become_memories_that_search_finds_and_the_next_chat_recalls,
    a_changed_answer_replaces_its_memory_and_a_removed_one_is_forgotten,
    chat_turns_are_remembered,
    memory_and_knowledge_tools_answer_the_model,
    supermemory_receives_the_memories_and_an_outage_only_delays_them,
    bad_memory_queries_are_envelopes,
    a_memory_outage_never_fails_a_chat,
);

const MODEL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models/potion-base-8M");

/// The app against a fake Anthropic, with fast job retries, and the shared embedding model when present.
async fn spawn(db: TestDb, fake: &FakeAnthropic, extra: &[(&str, String)]) -> TestApp {
    let mut vars: Vec<(&str, String)> = vec![
        ("ANTHROPIC_API_KEY", "sk-ant-test".to_owned()),
        ("ANTHROPIC_BASE_URL", fake.url()),
        ("MENTORFY_JOB_RETRY_BASE", "50ms".to_owned()),
        ("MENTORFY_JOB_POLL_INTERVAL", "50ms".to_owned()),
    ];
    if std::path::Path::new(MODEL_DIR).join("model.safetensors").exists() {
        vars.push(("MENTORFY_EMBED_MODEL", MODEL_DIR.to_owned()));
    } else {
        eprintln!("note: {MODEL_DIR} is absent; memory search runs on BM25 alone in this test");
    }
    vars.extend(extra.iter().cloned());
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::spawn_with(db, &vars).await
}

async fn patch_context(app: &TestApp, session: &str, context: Value) {
    let res = app.patch_json(&format!("/api/session/{session}"), &json!({ "context": context })).await;
    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap_or_default());
}

async fn memories(app: &TestApp, session: &str, query: &str) -> Vec<Value> {
    let path = if query.is_empty() {
        format!("/api/session/{session}/memories")
    } else {
        format!("/api/session/{session}/memories?q={}", query.replace(' ', "%20"))
    };
    let body = expect_json(app.get(&path).await, 200).await;
    body["memories"].as_array().cloned().unwrap_or_default()
}

/// Polls until `check` accepts the memories listed (jobs run in the background).
async fn memories_until(app: &TestApp, session: &str, query: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..300 {
        let found = memories(app, session, query).await;
        if check(&found) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("memories of {session} for {query:?} never matched: {:?}", memories(app, session, query).await);
}

fn contents(memories: &[Value]) -> Vec<String> {
    memories.iter().filter_map(|m| m["content"].as_str().map(str::to_owned)).collect()
}

fn system_text(request: &Value) -> String {
    request["system"]
        .as_array()
        .map(|blocks| blocks.iter().filter_map(|b| b["text"].as_str()).collect())
        .unwrap_or_default()
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

async fn chat(app: &TestApp, session: &str, text: &str, id: &str) -> String {
    let res = app.post_json("/api/chat", &use_chat_body(session, text, id)).await;
    assert_eq!(res.status().as_u16(), 200);
    let raw = res.text().await.unwrap();
    assert!(raw.ends_with("data: [DONE]\n\n"), "{raw}");
    raw
}

async fn answers_become_memories_that_search_finds_and_the_next_chat_recalls(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    let app = spawn(db, &fake, &[]).await;
    let session = app.create_session(json!({"orgId": "rafael-tatts", "name": "Ana"})).await;
    patch_context(
        &app,
        &session,
        json!({"day_rate": "$200-400", "city": "Lisbon", "business": {"styles": ["fine line", "blackwork"]}, "favouriteColour": "teal"}),
    )
    .await;

    // The organisation's templates for known keys, a readable sentence for the others.
    let found = memories_until(&app, &session, "", |m| m.len() == 4).await;
    let texts = contents(&found);
    for expected in [
        "User is a tattoo artist charging $200-400 per day.",
        "User works as a tattoo artist in Lisbon.",
        "User tattoos in these styles: fine line and blackwork.",
        "User's favourite colour is teal.",
    ] {
        assert!(texts.iter().any(|t| t == expected), "{expected:?} not in {texts:?}");
    }
    assert!(found.iter().all(|m| m["source"] == "context" && m["id"].is_string() && m["createdAt"].is_string()));

    // Search ranks the relevant memory first.
    let hits = memories(&app, &session, "how much per day do I charge").await;
    assert_eq!(hits[0]["content"], "User is a tattoo artist charging $200-400 per day.", "{hits:?}");
    assert!(hits[0]["score"].as_f64().unwrap() > 0.0);
    let hits = memories(&app, &session, "where is the studio city").await;
    assert_eq!(hits[0]["content"], "User works as a tattoo artist in Lisbon.", "{hits:?}");

    // Another session's memories are not this one's.
    let other = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    assert!(memories(&app, &other, "").await.is_empty());
    assert!(memories(&app, &other, "day rate").await.is_empty());

    // The next chat's prompt holds what search finds for the user's message.
    fake.push(Reply::text("Let's look at your day rate."));
    chat(&app, &session, "Should I raise my day rate?", "u1").await;
    let system = system_text(&fake.last_request().unwrap().body);
    assert!(system.contains("User is a tattoo artist charging $200-400 per day."), "{system}");
    assert!(!system.contains("(no memories yet)"), "{system}");

    // Every memory job finished, none dead.
    let jobs = app.store.jobs_of_kind("memory.answers", 10).await.unwrap();
    assert_eq!(jobs.len(), 1, "one PATCH, one job");
    assert_ne!(jobs[0].state, JobState::Dead, "{:?}", jobs[0]);
}

async fn a_changed_answer_replaces_its_memory_and_a_removed_one_is_forgotten(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    let app = spawn(db, &fake, &[]).await;
    let session = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    patch_context(&app, &session, json!({"day_rate": "$200-400", "city": "Lisbon"})).await;
    memories_until(&app, &session, "", |m| m.len() == 2).await;

    patch_context(&app, &session, json!({"day_rate": "$300-500"})).await;
    let found = memories_until(&app, &session, "", |m| {
        contents(m).contains(&"User is a tattoo artist charging $300-500 per day.".to_owned())
    })
    .await;
    let texts = contents(&found);
    assert_eq!(texts.len(), 2, "replaced, not added: {texts:?}");
    assert!(!texts.iter().any(|t| t.contains("$200-400")), "{texts:?}");

    // A PATCH that changes no answer enqueues nothing.
    let before = app.store.jobs_of_kind("memory.answers", 10).await.unwrap().len();
    patch_context(&app, &session, json!({"day_rate": "$300-500"})).await;
    assert_eq!(app.store.jobs_of_kind("memory.answers", 10).await.unwrap().len(), before);

    // Completing with a null answer removes it, and its memory goes.
    let res = app.post_json(&format!("/api/session/{session}/complete"), &json!({"context": {"city": null}})).await;
    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap_or_default());
    let found = memories_until(&app, &session, "", |m| m.len() == 1).await;
    assert_eq!(contents(&found), ["User is a tattoo artist charging $300-500 per day."]);
}

async fn chat_turns_are_remembered(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    let app = spawn(db, &fake, &[]).await;
    let session = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    fake.push(Reply::text("Take a non-refundable deposit for every booking."));
    chat(&app, &session, "Clients keep not showing up to appointments.", "u1").await;

    let found = memories_until(&app, &session, "", |m| m.iter().any(|x| x["source"] == "chat")).await;
    let turn = found.iter().find(|m| m["source"] == "chat").unwrap();
    assert_eq!(
        turn["content"],
        "User said: Clients keep not showing up to appointments.\nRafael answered: Take a non-refundable deposit for every booking."
    );
    let hits = memories(&app, &session, "no-shows appointments").await;
    assert_eq!(hits[0]["source"], "chat", "{hits:?}");

    // The next turn recalls it.
    fake.push(Reply::text("Yes, as we discussed."));
    chat(&app, &session, "What did you say about people not showing up to appointments?", "u2").await;
    let system = system_text(&fake.last_request().unwrap().body);
    assert!(system.contains("Take a non-refundable deposit for every booking."), "{system}");
    // One memory per answered turn, even though each job could be retried.
    let found = memories_until(&app, &session, "", |m| m.iter().filter(|x| x["source"] == "chat").count() == 2).await;
    assert_eq!(found.len(), 2);
}

async fn memory_and_knowledge_tools_answer_the_model(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    let app = spawn(db, &fake, &[]).await;
    let session = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    patch_context(&app, &session, json!({"booking_method": "Instagram DMs"})).await;
    memories_until(&app, &session, "", |m| m.len() == 1).await;

    fake.push(Reply::tool_call("toolu_1", "memory_search", json!({"query": "how clients book"})));
    fake.push(Reply::tool_call("toolu_2", "knowledge_search", json!({"query": "deposit policy no-shows", "limit": 3})));
    fake.push(Reply::tool_call("toolu_3", "knowledge_search", json!({"query": ""})));
    fake.push(Reply::text("Move bookings off DMs and take deposits."));
    let raw = chat(&app, &session, "How should I handle bookings?", "u1").await;
    assert!(raw.contains(r#""delta":"deposits.""#), "the final answer streamed after three tool steps: {raw}");

    let requests = fake.requests();
    assert_eq!(requests.len(), 4);
    let tool_result = |i: usize, id: &str| -> Value {
        let msgs = requests[i].body["messages"].as_array().unwrap();
        let last = msgs.last().unwrap();
        last["content"].as_array().unwrap().iter().find(|b| b["tool_use_id"] == id).unwrap().clone()
    };
    let memory = tool_result(1, "toolu_1");
    assert_ne!(memory["is_error"], true, "{memory}");
    assert!(memory.to_string().contains("Clients book with user through Instagram DMs."), "{memory}");
    let knowledge = tool_result(2, "toolu_2");
    assert_ne!(knowledge["is_error"], true, "{knowledge}");
    let text = knowledge.to_string();
    assert!(text.contains("booking.md") && text.to_lowercase().contains("deposit"), "{text}");
    let bad = tool_result(3, "toolu_3");
    assert_eq!(bad["is_error"], true, "an empty query goes back to the model as an error: {bad}");
    assert!(bad.to_string().contains("query"), "{bad}");
}

async fn supermemory_receives_the_memories_and_an_outage_only_delays_them(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    let memory = FakeSupermemory::start().await;
    memory.fail_next(3, 503, None);
    let app =
        spawn(db, &fake, &[("SUPERMEMORY_API_KEY", API_KEY.to_owned()), ("SUPERMEMORY_BASE_URL", memory.url())]).await;
    let session = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    patch_context(&app, &session, json!({"day_rate": "$200-400", "city": "Lisbon"})).await;

    let tag = format!("rafael-tatts-{session}");
    let mut held = Vec::new();
    for _ in 0..400 {
        held = memory.memories(&tag).into_iter().filter(|m| !m.forgotten).map(|m| m.content).collect::<Vec<_>>();
        if held.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    held.sort();
    assert_eq!(
        held,
        ["User is a tattoo artist charging $200-400 per day.", "User works as a tattoo artist in Lisbon."],
        "the same memories the embedded engine would hold"
    );
    let requests = memory.requests();
    assert!(requests.iter().filter(|r| r.status == 503).count() >= 3, "the outage happened");
    assert!(requests.iter().all(|r| r.header("authorization") == Some(format!("Bearer {API_KEY}").as_str())));
    // The worker records the job as done just after the handler's last write reached the fake.
    let mut job = app.store.jobs_of_kind("memory.answers", 10).await.unwrap().remove(0);
    for _ in 0..200 {
        if job.state == JobState::Done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        job = app.store.jobs_of_kind("memory.answers", 10).await.unwrap().remove(0);
    }
    assert_eq!(job.state, JobState::Done);
    assert!(job.attempts > 1, "delivered by a retry: {job:?}");

    // Search goes to Supermemory too, and the chat prompt recalls from it.
    let hits = memories(&app, &session, "day rate").await;
    assert!(contents(&hits).iter().any(|c| c.contains("$200-400")), "{hits:?}");
    assert!(memory.requests().iter().any(|r| r.path == "/v4/search" && r.body["containerTag"] == tag.as_str()));
    fake.push(Reply::text("ok"));
    chat(&app, &session, "What is my day rate?", "u1").await;
    assert!(system_text(&fake.last_request().unwrap().body).contains("$200-400"));
}

async fn bad_memory_queries_are_envelopes(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    let app = spawn(db, &fake, &[]).await;
    let session = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    for query in ["limit=0", "limit=101", "limit=ten", "top=3"] {
        let res = app.get(&format!("/api/session/{session}/memories?{query}")).await;
        let err = expect_error(res, 400, "bad_request").await;
        assert!(err["details"]["field"].is_string(), "{query}: {err}");
    }
    let long = "a".repeat(1001);
    expect_error(app.get(&format!("/api/session/{session}/memories?q={long}")).await, 400, "bad_request").await;
    let unknown = "6f1c9a52-1111-4222-8333-944455556666";
    expect_error(app.get(&format!("/api/session/{unknown}/memories")).await, 404, "not_found").await;
    expect_error(app.get("/api/session/not-a-uuid/memories").await, 404, "not_found").await;
    assert!(memories(&app, &session, "").await.is_empty());
}

async fn a_memory_outage_never_fails_a_chat(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    let memory = FakeSupermemory::start().await;
    let app =
        spawn(db, &fake, &[("SUPERMEMORY_API_KEY", API_KEY.to_owned()), ("SUPERMEMORY_BASE_URL", memory.url())]).await;
    let session = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    memory.fail_next(1_000, 500, None);
    fake.push(Reply::text("Still here."));
    let raw = chat(&app, &session, "Any advice?", "u1").await;
    assert!(raw.contains(r#""finishReason":"stop""#), "{raw}");
    let system = system_text(&fake.last_request().unwrap().body);
    assert!(system.contains("(no memories yet)"), "{system}");
    assert!(memory.requests().iter().any(|r| r.path == "/v4/search" && r.status == 500), "recall was attempted");
    // The listing endpoint says what failed instead.
    let err =
        expect_error(app.get(&format!("/api/session/{session}/memories?q=advice")).await, 503, "memory_unavailable")
            .await;
    assert!(err["message"].as_str().unwrap().contains("memory"), "{err}");
}
