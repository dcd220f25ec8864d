//! The TypeScript SDK (`sdks/typescript`, npm `@convosensei/sdk`) against the real server: starts the app and a
//! fake OpenAI API, then runs the SDK's `npm test` (unit tests plus `test/integration.test.mjs`, which runs only
//! with `SENSEI_URL` and `SENSEI_API_KEY`): a batch tracked and flushed, the same batch re-sent (a duplicate), the
//! same messages through `POST /api/v1/conversations/track` (0 accepted, 2 duplicates), a bad key (401 to
//! `onError`, no throw) and `wrap(fetch)` against the fake OpenAI. Then checks the store. Installs the pinned
//! `typescript` with `npm ci` when `node_modules` is missing. Without Node on the machine it prints SKIPPED.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use mentorfy_fakes::openai::{FakeOpenAi, Reply};
use mentorfy_test_support::{TestApp, TestDb, both_backends, node};

both_backends!(the_typescript_sdk_tracks_into_the_real_server);

/// `npm test` rebuilds `dist/`: the SQLite and PostgreSQL variants must not run it at the same time.
static NPM: Mutex<()> = Mutex::new(());

const ANSWER: &str = "Tuesday at three works. Shall I book it?";

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sdks/typescript")
}

async fn the_typescript_sdk_tracks_into_the_real_server(db: TestDb) {
    if !node::have_node() {
        eprintln!("SKIPPED: node/npm are not installed; the TypeScript SDK test needs Node 20+");
        return;
    }
    // The server's logs (a 500's cause) appear with the failure output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_test_writer()
        .try_init();
    tokio::task::spawn_blocking(|| {
        let _one_at_a_time = NPM.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        node::ensure_packages(&sdk_dir(), &["node_modules/typescript/package.json"], &[]);
    })
    .await
    .unwrap();

    let fake = FakeOpenAi::start().await;
    fake.respond_with(|_| Reply::text(ANSWER).usage(12, 9));
    let app = TestApp::spawn(db).await;
    let key = app.api_key(None).await;

    // Unique per run: both backends may share nothing, but a PostgreSQL schema could be reused.
    let suffix = format!("{}-{}", std::process::id(), app.addr.port());
    let conversation = format!("sdk-ts-{suffix}");
    let wrapped = format!("sdk-ts-wrap-{suffix}");
    let base = app.url("");
    let fake_url = fake.url();
    let (conv, wrap) = (conversation.clone(), wrapped.clone());
    let output = tokio::task::spawn_blocking(move || {
        let _one_at_a_time = NPM.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Command::new("npm")
            .args(["test", "--silent"])
            .current_dir(sdk_dir())
            .env("SENSEI_URL", &base)
            .env("SENSEI_API_KEY", &key)
            .env("FAKE_OPENAI_URL", &fake_url)
            .env("SENSEI_CONVERSATION_ID", &conv)
            .env("SENSEI_WRAP_CONVERSATION_ID", &wrap)
            .output()
    })
    .await
    .unwrap()
    .expect("npm runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "the TypeScript SDK suite failed:\n{stdout}\n{stderr}");
    // The server scenarios really ran (they skip without SENSEI_URL).
    assert!(!stdout.contains("# SKIP"), "integration tests were skipped:\n{stdout}");
    assert!(
        stdout.contains(&format!("SENSEI_IT_CONVERSATION_ID={conversation}")),
        "the tracking scenario did not finish"
    );
    assert!(
        stdout.contains(&format!("SENSEI_IT_WRAP_CONVERSATION_ID={wrapped}")),
        "the wrap(fetch) scenario did not finish"
    );
    assert_eq!(fake.request_count(), 2, "wrap(fetch) made one JSON and one streamed call");

    // Stored once: two messages, as the SDK sent them.
    let row = app
        .store
        .find_conversation("api", "production", &conversation)
        .await
        .unwrap()
        .expect("the tracked conversation is stored");
    assert_eq!(row.message_count, 2);
    assert_eq!(row.user_id.as_deref(), Some("user-it"));
    assert_eq!(row.agent_id.as_deref(), Some("agent-it"));
    let messages = app.store.list_messages(row.id).await.unwrap();
    let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant"]);

    // wrap(fetch): two turns of user + assistant, the assistant's text as the fake answered it.
    let row = app
        .store
        .find_conversation("api", "production", &wrapped)
        .await
        .unwrap()
        .expect("the wrapped conversation is stored");
    assert_eq!(row.message_count, 4);
    let messages = app.store.list_messages(row.id).await.unwrap();
    let assistant: Vec<&str> = messages.iter().filter(|m| m.role == "assistant").map(|m| m.content.as_str()).collect();
    assert_eq!(assistant, [ANSWER, ANSWER]);
    let meta = &messages.iter().find(|m| m.role == "assistant").unwrap().metadata;
    assert_eq!(meta["provider"], "openai");
    assert_eq!(meta["inputTokens"], 12);
}
