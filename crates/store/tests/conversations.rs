#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Conversations, messages and LLM calls on both backends: get-or-create under concurrency, the message rollups
//! committed with each message, history windows, and every column of `llm_calls` read back as written.

use mentorfy_store::{
    ConversationRow, InsertOutcome, LlmCallFilter, LlmCallRow, MessageRow, NewConversation, NewMessage, Store,
    StoreError,
};
use mentorfy_test_support::{TestDb, both_backends};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

both_backends!(
    upsert_creates_once_and_keeps_existing_fields,
    upsert_fills_missing_agent_and_user_but_never_overwrites_them,
    concurrent_upserts_of_one_key_make_one_row,
    insert_message_bumps_count_and_last_message_at,
    duplicate_external_id_changes_nothing,
    messages_without_external_id_are_never_duplicates,
    concurrent_inserts_keep_message_count_equal_to_rows,
    refused_message_leaves_conversation_untouched,
    earlier_message_moves_started_at_back_but_not_last_message_at,
    recent_messages_returns_last_n_oldest_first_filtered_by_status,
    set_message_status_by_external_id_reports_whether_it_matched,
    json_columns_round_trip_nested_objects_and_unicode,
    llm_call_round_trips_every_field,
    llm_call_with_unknown_cost_keeps_null_not_zero,
    llm_call_refuses_non_finite_cost_and_malformed_ids,
    list_llm_calls_filters_and_orders_newest_first,
);

const T0: OffsetDateTime = datetime!(2026-03-01 10:00:00.123456 UTC);

fn conv<'a>(external_id: &'a str) -> NewConversation<'a> {
    NewConversation {
        source: "mentorfy",
        environment: "production",
        external_id,
        org_id: Some("rafael-tatts"),
        agent_id: None,
        user_id: None,
        metadata: json!({}),
    }
}

fn msg<'a>(
    conversation_id: Uuid,
    external_id: Option<&'a str>,
    content: &'a str,
    at: OffsetDateTime,
) -> NewMessage<'a> {
    NewMessage {
        id: Uuid::now_v7(),
        conversation_id,
        external_id,
        role: "user",
        content,
        status: "complete",
        finish_reason: None,
        input_tokens: None,
        output_tokens: None,
        latency_ms: None,
        ttft_ms: None,
        metadata: json!({}),
        created_at: at,
    }
}

async fn new_conversation(store: &Store, external_id: &str) -> ConversationRow {
    store.upsert_conversation(conv(external_id)).await.expect("upsert")
}

async fn reload(store: &Store, id: Uuid) -> ConversationRow {
    store.get_conversation(id).await.expect("get").expect("exists")
}

fn contents(rows: &[MessageRow]) -> Vec<&str> {
    rows.iter().map(|m| m.content.as_str()).collect()
}

async fn upsert_creates_once_and_keeps_existing_fields(db: TestDb) {
    let store = db.store().await;
    let first = store
        .upsert_conversation(NewConversation { metadata: json!({"channel": "web"}), ..conv("s-1") })
        .await
        .expect("upsert");
    assert_eq!(first.source, "mentorfy");
    assert_eq!(first.external_id, "s-1");
    assert_eq!(first.org_id.as_deref(), Some("rafael-tatts"));
    assert_eq!(first.status, "active");
    assert_eq!(first.message_count, 0);
    assert_eq!(first.metadata, json!({"channel": "web"}));
    assert_eq!(first.id.get_version_num(), 7);
    assert_eq!(first.started_at, first.last_message_at);
    assert_eq!(first.created_at, first.updated_at);
    assert_eq!(reload(&store, first.id).await, first, "what upsert returns is what is stored");

    let again = store
        .upsert_conversation(NewConversation { org_id: Some("acme"), metadata: json!({"other": 1}), ..conv("s-1") })
        .await
        .expect("upsert");
    assert_eq!(again, first, "an existing conversation is returned unchanged");
    assert_eq!(store.find_conversation("mentorfy", "production", "s-1").await.expect("find"), Some(first.clone()));

    // The key is (source, external_id): the same external id from another source is another conversation.
    let api = store.upsert_conversation(NewConversation { source: "api", ..conv("s-1") }).await.expect("upsert");
    assert_ne!(api.id, first.id);
    assert!(store.find_conversation("otlp", "production", "s-1").await.expect("find").is_none());
    assert!(store.get_conversation(Uuid::now_v7()).await.expect("get").is_none());
}

async fn upsert_fills_missing_agent_and_user_but_never_overwrites_them(db: TestDb) {
    let store = db.store().await;
    let created = new_conversation(&store, "s-2").await;
    assert_eq!((created.agent_id.as_deref(), created.user_id.as_deref()), (None, None));

    let filled = store
        .upsert_conversation(NewConversation { agent_id: Some("rafael-chat"), ..conv("s-2") })
        .await
        .expect("upsert");
    assert_eq!(filled.id, created.id);
    assert_eq!(filled.agent_id.as_deref(), Some("rafael-chat"));
    assert_eq!(filled.user_id, None);
    assert!(filled.updated_at >= created.updated_at);
    assert_eq!(reload(&store, created.id).await, filled);

    let both = store
        .upsert_conversation(NewConversation { agent_id: Some("other-agent"), user_id: Some("user_1"), ..conv("s-2") })
        .await
        .expect("upsert");
    assert_eq!(both.agent_id.as_deref(), Some("rafael-chat"), "a set agent is never overwritten");
    assert_eq!(both.user_id.as_deref(), Some("user_1"), "a missing user is filled");

    let unchanged =
        store.upsert_conversation(NewConversation { user_id: Some("user_2"), ..conv("s-2") }).await.expect("upsert");
    assert_eq!(unchanged, both);
}

async fn concurrent_upserts_of_one_key_make_one_row(db: TestDb) {
    let store = db.store().await;
    let tasks = (0..20).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let agent = format!("agent-{i}");
            store.upsert_conversation(NewConversation { agent_id: Some(&agent), ..conv("race") }).await.expect("upsert")
        })
    });
    let rows: Vec<ConversationRow> =
        futures::future::join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect();
    let stored = store.find_conversation("mentorfy", "production", "race").await.expect("find").expect("exists");
    // One caller created the row with its agent; every other caller read that row and left it as it was.
    for row in &rows {
        assert_eq!(row, &stored, "every caller got the one row");
    }
    assert!(stored.agent_id.as_deref().is_some_and(|a| a.starts_with("agent-")));
}

async fn insert_message_bumps_count_and_last_message_at(db: TestDb) {
    let store = db.store().await;
    let c = new_conversation(&store, "s-3").await;
    let at1 = OffsetDateTime::now_utc().replace_nanosecond(123_000).unwrap() + Duration::seconds(5);
    let at2 = at1 + Duration::milliseconds(1500);

    let m1 = msg(c.id, Some("msg_1"), "hello", at1);
    assert_eq!(store.insert_message(m1.clone()).await.expect("insert"), InsertOutcome::Inserted);
    let after1 = reload(&store, c.id).await;
    assert_eq!(after1.message_count, 1);
    assert_eq!(after1.last_message_at, at1, "the first message sets last_message_at");
    assert_eq!(after1.started_at, c.started_at, "a message after the start leaves started_at alone");
    assert_eq!(after1.status, "active");
    assert!(after1.updated_at >= c.updated_at);

    let m2 = NewMessage {
        role: "assistant",
        status: "complete",
        finish_reason: Some("stop"),
        input_tokens: Some(1200),
        output_tokens: Some(80),
        latency_ms: Some(950),
        ttft_ms: Some(210),
        metadata: json!({"tool_calls": [{"name": "memory_search", "args": {"q": "preço"}}]}),
        ..msg(c.id, Some("msg_2"), "Olá! Como posso ajudar?", at2)
    };
    assert_eq!(store.insert_message(m2.clone()).await.expect("insert"), InsertOutcome::Inserted);
    let after2 = reload(&store, c.id).await;
    assert_eq!(after2.message_count, 2);
    assert_eq!(after2.last_message_at, at2);
    assert_eq!(after2.first_message_at, Some(at1), "first_message_at stays at the earliest message");
    assert_eq!(c.first_message_at, None, "no message, no first_message_at");

    let listed = store.list_messages(c.id).await.expect("list");
    assert_eq!(listed.len(), 2);
    let got = &listed[1];
    assert_eq!(
        got,
        &MessageRow {
            id: m2.id,
            conversation_id: c.id,
            external_id: Some("msg_2".into()),
            role: "assistant".into(),
            content: "Olá! Como posso ajudar?".into(),
            status: "complete".into(),
            finish_reason: Some("stop".into()),
            input_tokens: Some(1200),
            output_tokens: Some(80),
            latency_ms: Some(950),
            ttft_ms: Some(210),
            metadata: m2.metadata.clone(),
            created_at: at2,
            sentiment_score: None,
        }
    );
    assert_eq!(listed[0].id, m1.id);
    assert_eq!(listed[0].finish_reason, None);
}

async fn duplicate_external_id_changes_nothing(db: TestDb) {
    let store = db.store().await;
    let c = new_conversation(&store, "s-4").await;
    store.insert_message(msg(c.id, Some("msg_1"), "original", T0)).await.expect("insert");
    let before = reload(&store, c.id).await;

    // A retry of the same client message, even with a new id, a later time and other content, is a no-op.
    let retry = msg(c.id, Some("msg_1"), "retried", T0 + Duration::minutes(5));
    assert_eq!(store.insert_message(retry).await.expect("insert"), InsertOutcome::Duplicate);
    assert_eq!(reload(&store, c.id).await, before, "count, last_message_at and updated_at unchanged");
    assert_eq!(contents(&store.list_messages(c.id).await.expect("list")), ["original"]);

    // The same external id in another conversation is a different message.
    let other = new_conversation(&store, "s-4b").await;
    assert_eq!(
        store.insert_message(msg(other.id, Some("msg_1"), "elsewhere", T0)).await.expect("insert"),
        InsertOutcome::Inserted
    );
    assert_eq!(reload(&store, other.id).await.message_count, 1);
}

async fn messages_without_external_id_are_never_duplicates(db: TestDb) {
    let store = db.store().await;
    let c = new_conversation(&store, "s-5").await;
    for i in 0..3 {
        let outcome = store.insert_message(msg(c.id, None, "same", T0 + Duration::seconds(i))).await.expect("insert");
        assert_eq!(outcome, InsertOutcome::Inserted);
    }
    assert_eq!(reload(&store, c.id).await.message_count, 3);
    assert_eq!(store.list_messages(c.id).await.expect("list").len(), 3);
}

async fn concurrent_inserts_keep_message_count_equal_to_rows(db: TestDb) {
    let store = db.store().await;
    let c = new_conversation(&store, "s-6").await;
    // 30 distinct messages, each sent twice at once: 60 inserts racing, 30 of them duplicates.
    let tasks = (0..60).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let ext = format!("msg_{}", i % 30);
            let at = T0 + Duration::milliseconds(i64::from(i % 30));
            store.insert_message(msg(c.id, Some(&ext), "hi", at)).await.expect("insert")
        })
    });
    let outcomes: Vec<InsertOutcome> =
        futures::future::join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == InsertOutcome::Inserted).count(), 30);
    assert_eq!(outcomes.iter().filter(|o| **o == InsertOutcome::Duplicate).count(), 30);
    let after = reload(&store, c.id).await;
    assert_eq!(after.message_count, 30);
    assert_eq!(store.list_messages(c.id).await.expect("list").len(), 30);
    assert_eq!(after.last_message_at, T0 + Duration::milliseconds(29), "the latest time won, whatever the order");
}

async fn refused_message_leaves_conversation_untouched(db: TestDb) {
    let store = db.store().await;
    let c = new_conversation(&store, "s-7").await;
    let first = msg(c.id, Some("msg_1"), "hi", T0);
    store.insert_message(first.clone()).await.expect("insert");
    let before = reload(&store, c.id).await;

    let bad_role = store.insert_message(NewMessage { role: "robot", ..msg(c.id, Some("msg_2"), "x", T0) }).await;
    assert!(matches!(bad_role, Err(StoreError::Conflict(_))), "{bad_role:?}");
    let bad_status = store.insert_message(NewMessage { status: "draft", ..msg(c.id, Some("msg_3"), "x", T0) }).await;
    assert!(matches!(bad_status, Err(StoreError::Conflict(_))), "{bad_status:?}");
    // Reusing a message id is an error, not a silent duplicate: only the external id deduplicates.
    let reused_id = store.insert_message(NewMessage { id: first.id, ..msg(c.id, Some("msg_4"), "x", T0) }).await;
    assert!(matches!(reused_id, Err(StoreError::Conflict(_))), "{reused_id:?}");
    let no_conversation = store.insert_message(msg(Uuid::now_v7(), Some("msg_5"), "x", T0)).await;
    assert!(matches!(no_conversation, Err(StoreError::Conflict(_))), "{no_conversation:?}");

    assert_eq!(reload(&store, c.id).await, before);
    assert_eq!(store.list_messages(c.id).await.expect("list").len(), 1);
}

async fn earlier_message_moves_started_at_back_but_not_last_message_at(db: TestDb) {
    let store = db.store().await;
    let c = new_conversation(&store, "import").await;
    // A conversation imported after the fact: its messages are older than the row.
    let old = T0 - Duration::days(30);
    store.insert_message(msg(c.id, Some("b"), "second", old + Duration::minutes(1))).await.expect("insert");
    store.insert_message(msg(c.id, Some("a"), "first", old)).await.expect("insert");
    let after = reload(&store, c.id).await;
    assert_eq!(after.started_at, old);
    assert_eq!(after.last_message_at, old + Duration::minutes(1), "an older message never moves it back");
    assert_eq!(after.message_count, 2);
    assert_eq!(contents(&store.list_messages(c.id).await.expect("list")), ["first", "second"]);
}

async fn recent_messages_returns_last_n_oldest_first_filtered_by_status(db: TestDb) {
    let store = db.store().await;
    let c = new_conversation(&store, "s-8").await;
    let statuses = ["complete", "aborted", "complete", "error", "complete", "superseded", "complete"];
    for (i, status) in statuses.iter().enumerate() {
        let ext = format!("m{i}");
        let content = format!("{i}:{status}");
        let at = T0 + Duration::seconds(i64::try_from(i).unwrap());
        store.insert_message(NewMessage { status, ..msg(c.id, Some(&ext), &content, at) }).await.expect("insert");
    }
    // Two messages at the same instant are ordered by id (v7: creation order).
    let same = T0 + Duration::seconds(100);
    store.insert_message(msg(c.id, Some("x1"), "tie-1", same)).await.expect("insert");
    store.insert_message(msg(c.id, Some("x2"), "tie-2", same)).await.expect("insert");

    let complete = store.recent_messages(c.id, 3, &["complete"]).await.expect("recent");
    assert_eq!(contents(&complete), ["6:complete", "tie-1", "tie-2"]);
    let more = store.recent_messages(c.id, 4, &["complete", "aborted"]).await.expect("recent");
    assert_eq!(contents(&more), ["4:complete", "6:complete", "tie-1", "tie-2"]);
    let all = store.recent_messages(c.id, 100, &["complete", "aborted", "error", "superseded"]).await.expect("all");
    assert_eq!(all, store.list_messages(c.id).await.expect("list"));
    assert_eq!(all.len(), 9);
    let errors = store.recent_messages(c.id, 10, &["error"]).await.expect("recent");
    assert_eq!(contents(&errors), ["3:error"]);
    assert!(store.recent_messages(c.id, 10, &[]).await.expect("recent").is_empty());
    assert!(store.recent_messages(c.id, 0, &["complete"]).await.expect("recent").is_empty());
    assert!(store.recent_messages(Uuid::now_v7(), 10, &["complete"]).await.expect("recent").is_empty());
}

async fn set_message_status_by_external_id_reports_whether_it_matched(db: TestDb) {
    let store = db.store().await;
    let c = new_conversation(&store, "s-9").await;
    store.insert_message(msg(c.id, Some("msg_a"), "draft answer", T0)).await.expect("insert");
    let before = reload(&store, c.id).await;

    assert!(store.set_message_status_by_external_id(c.id, "msg_a", "superseded").await.expect("set"));
    assert!(!store.set_message_status_by_external_id(c.id, "msg_zzz", "superseded").await.expect("set"));
    let other = new_conversation(&store, "s-9b").await;
    assert!(!store.set_message_status_by_external_id(other.id, "msg_a", "aborted").await.expect("set"));
    let bad = store.set_message_status_by_external_id(c.id, "msg_a", "deleted").await;
    assert!(matches!(bad, Err(StoreError::Conflict(_))), "{bad:?}");

    assert!(store.recent_messages(c.id, 10, &["complete"]).await.expect("recent").is_empty());
    let listed = store.list_messages(c.id).await.expect("list");
    assert_eq!(listed[0].status, "superseded");
    assert_eq!(reload(&store, c.id).await.message_count, before.message_count, "status changes keep the count");
}

fn awkward_json() -> serde_json::Value {
    json!({
        "text": "naïve café — 東京 🐉 \"quoted\" \\ back\nslash\ttab",
        "nested": {"deeper": {"list": [1, -2.5, 1e-9, true, null, {"k": "v"}], "empty": {}, "none": []}},
        "big": 9_007_199_254_740_993_i64,
        "ключ": "значение",
        "": "empty key"
    })
}

async fn json_columns_round_trip_nested_objects_and_unicode(db: TestDb) {
    let store = db.store().await;
    let c =
        store.upsert_conversation(NewConversation { metadata: awkward_json(), ..conv("json") }).await.expect("upsert");
    assert_eq!(reload(&store, c.id).await.metadata, awkward_json());

    store
        .insert_message(NewMessage { metadata: awkward_json(), ..msg(c.id, Some("j"), "🐉 naïve 東京", T0) })
        .await
        .expect("insert");
    let m = &store.list_messages(c.id).await.expect("list")[0];
    assert_eq!(m.metadata, awkward_json());
    assert_eq!(m.content, "🐉 naïve 東京");

    let call = LlmCallRow {
        parameters: awkward_json(),
        input: json!([{"role": "user", "content": awkward_json()}]),
        output: Some(json!("just a string: ✓")),
        ..llm_call(T0)
    };
    store.insert_llm_call(&call).await.expect("insert");
    assert_eq!(store.get_llm_call(call.id).await.expect("get"), Some(call));

    // Metadata must be an object on both backends.
    let not_object = store.upsert_conversation(NewConversation { metadata: json!([1, 2]), ..conv("json-2") }).await;
    assert!(matches!(not_object, Err(StoreError::Conflict(_))), "{not_object:?}");
}

fn llm_call(started_at: OffsetDateTime) -> LlmCallRow {
    LlmCallRow {
        id: Uuid::now_v7(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: "00f067aa0ba902b7".into(),
        parent_span_id: None,
        session_id: None,
        conversation_id: None,
        message_id: None,
        org_id: None,
        agent_id: None,
        operation: "chat".into(),
        provider: "anthropic".into(),
        model: "claude-sonnet-4-5".into(),
        response_model: None,
        response_id: None,
        stream: false,
        parameters: json!({}),
        input: json!({"messages": []}),
        output: None,
        input_tokens: None,
        output_tokens: None,
        cache_read_tokens: None,
        cache_write_tokens: None,
        cost_usd: None,
        latency_ms: 0,
        ttft_ms: None,
        attempts: 1,
        status: "ok".into(),
        error: None,
        error_type: None,
        finish_reason: None,
        started_at,
        created_at: started_at + Duration::seconds(2),
    }
}

async fn llm_call_round_trips_every_field(db: TestDb) {
    let store = db.store().await;
    let full = LlmCallRow {
        id: Uuid::now_v7(),
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        span_id: "b7ad6b7169203331".into(),
        parent_span_id: Some("00f067aa0ba902b7".into()),
        session_id: Some(Uuid::new_v4()),
        conversation_id: Some(Uuid::now_v7()),
        message_id: Some(Uuid::now_v7()),
        org_id: Some("rafael-tatts".into()),
        agent_id: Some("rafael-chat".into()),
        operation: "chat".into(),
        provider: "anthropic".into(),
        model: "claude-sonnet-4-5".into(),
        response_model: Some("claude-sonnet-4-5-20250929".into()),
        response_id: Some("msg_01XFDUDYJgAACzvnptvVoYEL".into()),
        stream: true,
        parameters: json!({"temperature": 0.7, "max_tokens": 1024, "tools": ["memory_search"]}),
        input: json!({"system": "You are Rafael.", "messages": [{"role": "user", "content": "Oi"}]}),
        output: Some(json!({"content": [{"type": "text", "text": "Olá!"}], "stop_reason": "end_turn"})),
        input_tokens: Some(1523),
        output_tokens: Some(87),
        cache_read_tokens: Some(1200),
        cache_write_tokens: Some(0),
        cost_usd: Some(0.001_234_567_890_123_4),
        latency_ms: 2345,
        ttft_ms: Some(412),
        attempts: 2,
        status: "ok".into(),
        error: None,
        error_type: None,
        finish_reason: Some("end_turn".into()),
        started_at: T0,
        created_at: T0 + Duration::microseconds(2_345_001),
    };
    store.insert_llm_call(&full).await.expect("insert");
    let got = store.get_llm_call(full.id).await.expect("get").expect("exists");
    assert_eq!(got, full);
    assert_eq!(got.cost_usd.map(f64::to_bits), full.cost_usd.map(f64::to_bits), "the float is bit-for-bit the same");

    let failed = LlmCallRow {
        status: "error".into(),
        error: Some("upstream 529: overloaded".into()),
        error_type: Some("overloaded_error".into()),
        attempts: 3,
        operation: "judge".into(),
        provider: "openai".into(),
        ..llm_call(T0)
    };
    store.insert_llm_call(&failed).await.expect("insert");
    assert_eq!(store.get_llm_call(failed.id).await.expect("get"), Some(failed));
    assert!(store.get_llm_call(Uuid::now_v7()).await.expect("get").is_none());

    let reused = store.insert_llm_call(&full).await;
    assert!(matches!(reused, Err(StoreError::Conflict(_))), "{reused:?}");
}

async fn llm_call_with_unknown_cost_keeps_null_not_zero(db: TestDb) {
    let store = db.store().await;
    let unknown = LlmCallRow { model: "some-local-model".into(), input_tokens: Some(10), ..llm_call(T0) };
    store.insert_llm_call(&unknown).await.expect("insert");
    assert_eq!(store.get_llm_call(unknown.id).await.expect("get").expect("exists").cost_usd, None);

    let free = LlmCallRow { cost_usd: Some(0.0), ..llm_call(T0) };
    store.insert_llm_call(&free).await.expect("insert");
    assert_eq!(store.get_llm_call(free.id).await.expect("get").expect("exists").cost_usd, Some(0.0));

    let tiny = LlmCallRow { cost_usd: Some(3.0e-7), ..llm_call(T0) };
    store.insert_llm_call(&tiny).await.expect("insert");
    assert_eq!(store.get_llm_call(tiny.id).await.expect("get").expect("exists").cost_usd, Some(3.0e-7));
}

async fn llm_call_refuses_non_finite_cost_and_malformed_ids(db: TestDb) {
    let store = db.store().await;
    for cost in [f64::NAN, f64::INFINITY, -0.01] {
        let r = store.insert_llm_call(&LlmCallRow { cost_usd: Some(cost), ..llm_call(T0) }).await;
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{cost}: {r:?}");
    }
    let bad_rows = [
        LlmCallRow { trace_id: "4BF92F3577B34DA6A3CE929D0E0E4736".into(), ..llm_call(T0) },
        LlmCallRow { trace_id: "4bf92f3577b34da6".into(), ..llm_call(T0) },
        LlmCallRow { span_id: "00f067aa0ba902bz".into(), ..llm_call(T0) },
        LlmCallRow { parent_span_id: Some("short".into()), ..llm_call(T0) },
        LlmCallRow { status: "timeout".into(), ..llm_call(T0) },
        LlmCallRow { attempts: 0, ..llm_call(T0) },
        LlmCallRow { input_tokens: Some(-1), ..llm_call(T0) },
        LlmCallRow { parameters: json!("not an object"), ..llm_call(T0) },
    ];
    for row in bad_rows {
        let r = store.insert_llm_call(&row).await;
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{row:?}: {r:?}");
    }
    assert!(store.list_llm_calls(&LlmCallFilter { limit: 100, ..Default::default() }).await.expect("list").is_empty());
}

async fn list_llm_calls_filters_and_orders_newest_first(db: TestDb) {
    let store = db.store().await;
    let (s1, s2) = (Uuid::new_v4(), Uuid::new_v4());
    let conv1 = Uuid::now_v7();
    let mut calls = Vec::new();
    for i in 0..6i64 {
        let call = LlmCallRow {
            session_id: Some(if i % 2 == 0 { s1 } else { s2 }),
            conversation_id: (i < 3).then_some(conv1),
            agent_id: Some(if i == 5 { "rafael-diagnosis" } else { "rafael-chat" }.into()),
            ..llm_call(T0 + Duration::seconds(i))
        };
        store.insert_llm_call(&call).await.expect("insert");
        calls.push(call);
    }
    let ids = |rows: Vec<LlmCallRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let expect = |idx: &[usize]| idx.iter().map(|&i| calls[i].id).collect::<Vec<_>>();
    let list = |f: LlmCallFilter| {
        let store = store.clone();
        async move { ids(store.list_llm_calls(&f).await.expect("list")) }
    };

    assert_eq!(list(LlmCallFilter { limit: 100, ..Default::default() }).await, expect(&[5, 4, 3, 2, 1, 0]));
    assert_eq!(list(LlmCallFilter { limit: 2, ..Default::default() }).await, expect(&[5, 4]));
    assert_eq!(
        list(LlmCallFilter { session_id: Some(s1), limit: 100, ..Default::default() }).await,
        expect(&[4, 2, 0])
    );
    assert_eq!(
        list(LlmCallFilter { conversation_id: Some(conv1), limit: 100, ..Default::default() }).await,
        expect(&[2, 1, 0])
    );
    assert_eq!(
        list(LlmCallFilter { agent_id: Some("rafael-diagnosis".into()), limit: 100, ..Default::default() }).await,
        expect(&[5])
    );
    assert_eq!(
        list(LlmCallFilter {
            session_id: Some(s2),
            conversation_id: Some(conv1),
            agent_id: Some("rafael-chat".into()),
            limit: 100,
            ..Default::default()
        })
        .await,
        expect(&[1]),
        "filters combine"
    );
    assert!(
        list(LlmCallFilter { session_id: Some(Uuid::new_v4()), limit: 100, ..Default::default() }).await.is_empty()
    );
    assert!(list(LlmCallFilter::default()).await.is_empty(), "limit 0 returns nothing");
}
