//! The admin dashboard in a real browser: starts the app against a fake Anthropic server, signs a local admin up,
//! loads conversations through the ingestion API (one frustrated user, so the analysis pipeline finds failures;
//! one happy one), Mentor sessions and a chat, waits for the analysis, then runs `tests/browser/dashboard.mjs`
//! (playwright-core driving the system's headless Chromium, `/usr/bin/chromium`; no browser is downloaded). The
//! script logs in, filters, opens a conversation, acknowledges a failure, saves views, creates and revokes an API
//! key, chats in the Playground and screenshots every page into `target/browser-screenshots/<backend>/`; any page
//! error or console error (CSP violations among them) fails it.
//!
//! Runs on both backends through `both_backends!` (PostgreSQL only with `TEST_DATABASE_URL`). Installs the pinned
//! playwright-core with `npm ci` when it is missing. Without Node it prints SKIPPED; without Chromium it prints
//! SKIPPED too, except under CI (`CI` set), where it fails: `.ci/run` installs Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mentorfy_fakes::anthropic::{FakeAnthropic, Reply};
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_json, node};
use serde_json::{Value, json};

both_backends!(the_dashboard_works_in_a_browser);

const CHROMIUM: &str = "/usr/bin/chromium";
const NO_CHROMIUM: &str = "SKIPPED browser tests: install chromium (apt-get install chromium)";
/// What the fake model answers to every request (the Playground shows it).
const ANSWER: &str = "Price the full day at six hours of your rate, and take a deposit when you book.";
const ADMIN_EMAIL: &str = "browser-admin@example.com";
const ADMIN_PASSWORD: &str = "correct horse battery staple 42";
/// The conversation with failures the browser searches for, and words from its transcript.
const ANGRY: &str = "angry-billing-1";
const SEARCH: &str = "charged twice";

const FRUSTRATED: &[(&str, &str)] = &[
    ("user", "Hi, I was charged twice for my subscription this month."),
    ("assistant", "I'm sorry to hear that. Could you tell me the email on your account?"),
    ("user", "It's ana@example.com. Please fix the double charge."),
    ("assistant", "I can't help with billing issues. Is there anything else I can do for you?"),
    ("user", "This is useless!!! I already told you I was charged twice. I want a refund NOW."),
    ("assistant", "I'm sorry, I can't help with that."),
    ("user", "Can I talk to a human please? This is ridiculous."),
];

const HAPPY: &[(&str, &str)] = &[
    ("user", "Hi! How do I export my data to CSV?"),
    ("assistant", "Go to Settings, then Data, then Export, and choose CSV. The file downloads right away."),
    ("user", "Perfect, that worked. Thanks a lot!"),
    ("assistant", "Glad it helped! Anything else I can do?"),
    ("user", "No, that's all. Have a great day!"),
];

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

fn transcript(lines: &[(&str, &str)], start: time::OffsetDateTime) -> Vec<Value> {
    let fmt = &time::format_description::well_known::Rfc3339;
    lines
        .iter()
        .enumerate()
        .map(|(i, (role, content))| {
            let at = start + time::Duration::seconds(20 * i as i64);
            json!({"id": format!("m{i}"), "role": role, "content": content, "timestamp": at.format(fmt).unwrap()})
        })
        .collect()
}

async fn track(app: &TestApp, key: &str, body: Value) {
    let res =
        app.client.post(app.url("/api/v1/conversations/track")).bearer_auth(key).json(&body).send().await.unwrap();
    expect_json(res, 202).await;
}

/// Waits until the ingested conversation has had its final analysis (yesterday's conversations are past the idle
/// timeout, so their first analysis is final).
async fn analysed(app: &TestApp, id: &str) -> mentorfy_store::ConversationRow {
    for _ in 0..400 {
        if let Some(c) = app.store.find_conversation("api", "production", id).await.unwrap()
            && c.analyzed_at.is_some()
            && c.status == "idle"
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("conversation {id} was not analysed in 20 s");
}

async fn the_dashboard_works_in_a_browser(db: TestDb) {
    if !node::have_node() {
        eprintln!("SKIPPED browser tests: node is not installed; the browser test needs Node 20+");
        return;
    }
    if !Path::new(CHROMIUM).exists() {
        assert!(std::env::var_os("CI").is_none(), "{NO_CHROMIUM}");
        eprintln!("{NO_CHROMIUM}");
        return;
    }
    tokio::task::spawn_blocking(|| {
        node::ensure_packages(
            &browser_dir(),
            &["node_modules/playwright-core/package.json"],
            &[("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")],
        );
    })
    .await
    .unwrap();
    let backend = format!("{:?}", db.backend).to_lowercase();

    let fake = FakeAnthropic::start().await;
    fake.respond_with(|_| Reply::text(ANSWER));
    let fake_url = fake.url();
    let app = TestApp::spawn_with(
        db,
        &[("ANTHROPIC_API_KEY", "sk-ant-test"), ("ANTHROPIC_BASE_URL", &fake_url), ("SENSEI_ANALYSIS_DEBOUNCE", "0ms")],
    )
    .await;

    // A local admin who signs in with a real password.
    let hash = mentorfy_auth::password::hash_password(ADMIN_PASSWORD).expect("hash");
    app.store.create_admin(ADMIN_EMAIL, &hash).await.expect("create admin");

    // Conversations through the ingestion API, analysed by the real job workers.
    let key = app.api_key(None).await;
    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    track(&app, &key, json!({"conversationId": ANGRY, "userId": "ana", "messages": transcript(FRUSTRATED, yesterday)}))
        .await;
    track(
        &app,
        &key,
        json!({"conversationId": "happy-export-1", "userId": "bo", "messages": transcript(HAPPY, yesterday + time::Duration::hours(2))}),
    )
    .await;
    let angry = analysed(&app, ANGRY).await;
    assert!(angry.failure_count > 0, "the frustrated conversation has no failure");
    let happy = analysed(&app, "happy-export-1").await;
    assert_eq!(happy.failure_count, 0);

    // Mentor sessions, one with a chat (an LLM call to show).
    let session = app.create_session(json!({"orgId": "rafael-tatts", "name": "Ana"})).await;
    app.create_session(json!({"orgId": "rafael-tatts", "name": "Bo"})).await;
    let chat = json!({
        "id": "chat_1",
        "trigger": "submit-message",
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "How do I fill my books?"}]}],
        "sessionId": session,
        "agentId": "rafael-chat",
    });
    let res = app.post_json("/api/chat", &chat).await;
    assert_eq!(res.status().as_u16(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("[DONE]"), "{body}");

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots").join(&backend);
    // Fresh each run, so no screenshot of an earlier run (a FAILED-<n>.png) is left behind.
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("create the screenshot folder");
    let base = format!("http://{}", app.addr);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("dashboard.mjs")
            .current_dir(browser_dir())
            .env("BASE_URL", &base)
            .env("ADMIN_EMAIL", ADMIN_EMAIL)
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("SCREENSHOT_DIR", &shots)
            .env("EXPECT_CONVERSATION", ANGRY)
            .env("EXPECT_SEARCH", SEARCH)
            .env("EXPECT_ANSWER", ANSWER)
            .env("CHROMIUM", CHROMIUM)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the dashboard browser test failed ({backend}):\n{stdout}\n{stderr}");
    println!("{stdout}");
}
