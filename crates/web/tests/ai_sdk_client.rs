//! The real AI SDK client reads our stream: starts the app against a fake Anthropic server, then runs the Node
//! conformance suite in `tests/node/` (pinned `ai` 6.0.0 and latest 6.x, through `parseJsonEventStream`,
//! `uiMessageChunkSchema`, `readUIMessageStream` and `DefaultChatTransport`) against it for a plain answer, a
//! tool round trip and a mid-stream failure. Installs the pinned packages with `npm ci` when they are missing.
//! Without Node on the machine it prints SKIPPED (CI has Node).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use mentorfy_fakes::anthropic::{FakeAnthropic, Recorded, Reply};
use mentorfy_test_support::{TestApp, TestDb, both_backends, node};
use serde_json::{Value, json};

both_backends!(the_ai_sdk_client_parses_and_assembles_every_scenario);

const PLAIN: &str = "Hi! Tell me where your bookings stand and we'll start there.";
const TOOL_FINAL: &str = "You said your goal is to fill your books three months out.";
const PARTIAL: &str = "Let me think about your pricing";

/// Picks the fake model's answer from the request's last message, as the Node suite's scenarios expect.
fn respond(request: &Recorded, calls: &AtomicU32) -> Reply {
    let last = request.body["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or(Value::Null);
    let blocks = last["content"].as_array().cloned().unwrap_or_default();
    if blocks.iter().any(|b| b["type"] == "tool_result") {
        return Reply::text(TOOL_FINAL);
    }
    let text = match &last["content"] {
        Value::String(s) => s.clone(),
        _ => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
    };
    // Consecutive user turns are joined into one message; the newest is the last paragraph.
    let text = text.rsplit("\n\n").next().unwrap_or_default().to_owned();
    if text.contains("[tool]") {
        let n = calls.fetch_add(1, Ordering::Relaxed);
        Reply::text("Let me look at your answers.").then_tool_call(
            format!("toolu_{n:04}"),
            "session_answers",
            json!({"key": "goals"}),
        )
    } else if text.contains("[fail]") {
        Reply::error_after_text(PARTIAL, "overloaded_error", "Overloaded")
    } else {
        Reply::text(PLAIN)
    }
}

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node")
}

async fn the_ai_sdk_client_parses_and_assembles_every_scenario(db: TestDb) {
    if !node::have_node() {
        eprintln!("SKIPPED: node is not installed; the AI SDK client test needs Node 20+");
        return;
    }
    tokio::task::spawn_blocking(|| {
        node::ensure_packages(
            &node_dir(),
            &["node_modules/ai/package.json", "node_modules/ai-latest/package.json"],
            &[],
        );
    })
    .await
    .unwrap();

    let fake = FakeAnthropic::start().await;
    let calls = std::sync::Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    fake.respond_with(move |r| respond(r, &c));
    let url = fake.url();
    let app = TestApp::spawn_with(
        db,
        &[("ANTHROPIC_API_KEY", "sk-ant-test"), ("ANTHROPIC_BASE_URL", &url), ("MENTORFY_SSE_KEEPALIVE", "50ms")],
    )
    .await;
    let session = app.create_session(json!({"orgId": "rafael-tatts", "name": "Ana"})).await;
    let res = app
        .patch_json(
            &format!("/api/session/{session}"),
            &json!({"context": {"goals": "fill my books three months out"}}),
        )
        .await;
    assert_eq!(res.status().as_u16(), 200);

    let base = format!("http://{}", app.addr);
    let session_id = session.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("--test")
            .arg("--test-reporter=spec")
            .current_dir(node_dir())
            .env("MENTORFY_URL", &base)
            .env("MENTORFY_SESSION_ID", &session_id)
            .env("MENTORFY_AGENT_ID", "rafael-chat")
            .env("MENTORFY_EXPECT_PLAIN", PLAIN)
            .env("MENTORFY_EXPECT_TOOL_NAME", "session_answers")
            .env("MENTORFY_EXPECT_TOOL_FINAL", TOOL_FINAL)
            .env("MENTORFY_EXPECT_PARTIAL", PARTIAL)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "the Node AI SDK suite failed:\n{stdout}\n{stderr}");
    // The server scenarios really ran (they skip without MENTORFY_URL).
    assert!(fake.request_count() >= 12, "only {} model calls were made", fake.request_count());
    assert!(!stdout.contains("# skipped 12"), "server scenarios were skipped:\n{stdout}");
}
