//! The optional LLM judge end to end (issue 6): a conversation ingested through the API becomes final, the real
//! workers run the analysis and then `sensei.judge_conversation`, which calls a fake Anthropic API in its real wire
//! format; the verdict is stored shaped like `gen_ai.evaluation.result` and the call is traced in `llm_calls`
//! with tokens and cost. An unusable answer is stored as a failed evaluation; no judge, no call.

use std::time::Duration;

use mentorfy_fakes::anthropic::{FakeAnthropic, Reply};
use mentorfy_store::{EvaluationRow, LlmCallFilter};
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_json};
use serde_json::{Value, json};

both_backends!(
    a_final_conversation_is_judged_and_the_call_is_traced_with_cost,
    an_unusable_answer_is_stored_as_a_failed_evaluation,
    without_a_judge_model_nothing_is_called,
);

const MODEL: &str = "claude-haiku-4-5";

async fn spawn(db: TestDb, fake: &FakeAnthropic) -> TestApp {
    let url = fake.url();
    let judge = format!("anthropic:{MODEL}");
    TestApp::spawn_with(
        db,
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-test-key"),
            ("ANTHROPIC_BASE_URL", url.as_str()),
            ("SENSEI_JUDGE_MODEL", judge.as_str()),
            ("SENSEI_ANALYSIS_DEBOUNCE", "0ms"),
        ],
    )
    .await
}

async fn ingest_yesterday(app: &TestApp, id: &str) -> uuid::Uuid {
    let key = app.api_key(None).await;
    let at = |s: i64| {
        (time::OffsetDateTime::now_utc() - time::Duration::days(1) + time::Duration::seconds(s)).unix_timestamp() * 1000
    };
    let body = json!({"conversationId": id, "messages": [
        {"id": "m1", "role": "user", "content": "I was charged twice this month, can you refund one?", "timestamp": at(0)},
        {"id": "m2", "role": "assistant", "content": "I can't help with billing.", "timestamp": at(20)},
        {"id": "m3", "role": "user", "content": "This is useless. Let me talk to a human.", "timestamp": at(40)},
    ]});
    let res =
        app.client.post(app.url("/api/v1/conversations/track")).bearer_auth(&key).json(&body).send().await.unwrap();
    expect_json(res, 202).await;
    for _ in 0..200 {
        if let Some(c) = app.store.find_conversation("api", "production", id).await.unwrap() {
            return c.id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("conversation {id} not stored");
}

async fn evaluation(app: &TestApp, conversation_id: uuid::Uuid) -> EvaluationRow {
    for _ in 0..300 {
        if let Some(e) = app.store.list_evaluations(conversation_id).await.unwrap().into_iter().next() {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no evaluation in 15 s");
}

async fn a_final_conversation_is_judged_and_the_call_is_traced_with_cost(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    fake.push(
        Reply::text(r#"{"score": 1, "label": "fail", "explanation": "The agent refused a billing request and ignored the ask for a human."}"#)
            .usage(420, 31)
            .model(MODEL),
    );
    let app = spawn(db, &fake).await;
    let id = ingest_yesterday(&app, "judged").await;
    let e = evaluation(&app, id).await;
    assert_eq!(e.name, "conversation_quality");
    assert_eq!(e.score_value, Some(0.0));
    assert_eq!(e.score_label.as_deref(), Some("fail"));
    assert!(e.explanation.as_deref().unwrap().contains("refused"), "{e:?}");
    assert_eq!(e.error_type, None);
    assert_eq!(e.evaluator, format!("llm:anthropic/{MODEL}"));
    assert!(e.response_id.is_some());

    // The request carried the transcript and the instructions, and asked for JSON.
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let body: &Value = &requests[0].body;
    assert_eq!(body["model"], MODEL);
    let user = body["messages"][0]["content"].to_string();
    assert!(user.contains("User: I was charged twice") && user.contains("Agent: I can't help with billing."), "{user}");
    assert!(body["system"].to_string().contains("JSON"), "{body}");

    // Traced like every model call: under the conversation, with tokens and a cost from the price table.
    let calls = app
        .store
        .list_llm_calls(&LlmCallFilter { conversation_id: Some(id), limit: 10, ..LlmCallFilter::default() })
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(Some(call.id), e.llm_call_id);
    assert_eq!(call.agent_id.as_deref(), Some("sensei-judge"));
    assert_eq!((call.input_tokens, call.output_tokens), (Some(420), Some(31)));
    assert!(call.cost_usd.is_some_and(|c| c > 0.0), "{call:?}");
    assert_eq!(call.status, "ok");
    app.stop().await.unwrap();
}

async fn an_unusable_answer_is_stored_as_a_failed_evaluation(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("I think the agent did fine overall.").usage(300, 9).model(MODEL));
    let app = spawn(db, &fake).await;
    let id = ingest_yesterday(&app, "unusable").await;
    let e = evaluation(&app, id).await;
    assert_eq!(e.score_value, None);
    assert_eq!(e.error_type.as_deref(), Some("invalid_response"));
    assert!(e.llm_call_id.is_some(), "the spent call is still linked");
    app.stop().await.unwrap();
}

async fn without_a_judge_model_nothing_is_called(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    let url = fake.url();
    let app = TestApp::spawn_with(
        db,
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-test-key"),
            ("ANTHROPIC_BASE_URL", url.as_str()),
            ("SENSEI_ANALYSIS_DEBOUNCE", "0ms"),
        ],
    )
    .await;
    let id = ingest_yesterday(&app, "unjudged").await;
    // Wait for the (final) analysis, then a little longer: no judge job may exist.
    for _ in 0..200 {
        if app.store.get_conversation(id).await.unwrap().is_some_and(|c| c.final_at.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.store.get_conversation(id).await.unwrap().unwrap().final_at.is_some());
    assert!(fake.requests().is_empty());
    assert!(app.store.list_evaluations(id).await.unwrap().is_empty());
    app.stop().await.unwrap();
}
