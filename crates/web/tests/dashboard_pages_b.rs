//! Dashboard pages (part B) end to end, on SQLite and PostgreSQL: Settings (the webhook shown masked, thresholds
//! refused with the API's message, test alerts, API keys revealed once and revoked, CSRF), Mentor sessions (the
//! funnel, leads, filters and the CSV export through the cookie session) and the Playground page and its script.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

use mentorfy_fakes::anthropic::{FakeAnthropic, Reply};
use mentorfy_test_support::{TestApp, TestDb, both_backends};
use serde_json::json;

both_backends!(
    settings_show_the_webhook_masked_and_refuse_bad_thresholds_and_forged_posts,
    api_keys_are_revealed_once_work_and_can_be_revoked,
    sessions_page_shows_the_funnel_and_leads_and_exports_csv,
    playground_lists_agents_and_loads_its_script,
    playground_requests_stream_an_answer_or_say_why_not,
);

const SECRET_PART: &str = "xoxbSECRETtoken123";

fn slack_url() -> String {
    format!("https://hooks.slack.com/services/T0123ABC/B0456DEF/{SECRET_PART}")
}

struct Admin<'a> {
    app: &'a TestApp,
    cookie: String,
}

impl<'a> Admin<'a> {
    async fn new(app: &'a TestApp) -> Self {
        Admin { app, cookie: format!("mentorfy_session={}", app.admin_token().await) }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.app.client.get(self.app.url(path)).header("cookie", &self.cookie).send().await.unwrap()
    }

    async fn page(&self, path: &str) -> String {
        let res = self.get(path).await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        text
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url(path))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap())
            .send()
            .await
            .unwrap()
    }

    /// The CSRF token of the forms of a page.
    async fn csrf(&self) -> String {
        let html = self.page("/dashboard/settings").await;
        between(&html, r#"name="_csrf" value=""#, "\"").expect("a CSRF field").to_owned()
    }
}

fn between<'t>(text: &'t str, start: &str, end: &str) -> Option<&'t str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

async fn settings_show_the_webhook_masked_and_refuse_bad_thresholds_and_forged_posts(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let admin = Admin::new(&app).await;
    let csrf = admin.csrf().await;
    let html = admin.page("/dashboard/settings").await;
    assert!(html.contains("No Slack webhook yet"), "empty state: {html}");
    assert!(html.contains("No API keys yet"), "{html}");

    // No webhook: the test alert says so (the API's 409), as a message on the page.
    let res = admin.post("/dashboard/settings/test-alert", &[("_csrf", &csrf)]).await;
    assert_eq!(res.status().as_u16(), 409);
    let text = res.text().await.unwrap();
    assert!(text.contains("No test alert was sent") && text.contains("no Slack webhook is configured"), "{text}");

    // Saving a webhook redirects back; the page shows it masked and never the secret part.
    let url = slack_url();
    let res = admin
        .post("/dashboard/settings/alerts", &[("_csrf", &csrf), ("action", "webhook"), ("slack_webhook_url", &url)])
        .await;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(location(&res), "/dashboard/settings?notice=webhook-saved");
    let html = admin.page("/dashboard/settings?notice=webhook-saved").await;
    assert!(html.contains("https://hooks.slack.com/services/T") && html.contains("****"), "masked: {html}");
    assert!(!html.contains(SECRET_PART), "the secret is never in the page");
    assert!(html.contains("The Slack webhook was saved"), "{html}");
    assert_eq!(app.store.alert_settings().await.unwrap().slack_webhook_url, Some(slack_url()));

    // A bad threshold is a 400 with the API's message (naming the field) next to the form; nothing is stored.
    let res = admin
        .post(
            "/dashboard/settings/alerts",
            &[("_csrf", &csrf), ("action", "thresholds"), ("health_below", "150"), ("min_severity", "")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 400);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("alert_thresholds.health_below") && text.contains("must be a number from 0 to 100"),
        "{text}"
    );
    assert!(text.contains(r#"value="150""#), "the typed value is kept: {text}");
    assert_eq!(app.store.alert_settings().await.unwrap().alert_thresholds, None);

    // Good thresholds are saved; empty fields stay at the defaults.
    let res = admin
        .post(
            "/dashboard/settings/alerts",
            &[
                ("_csrf", &csrf),
                ("action", "thresholds"),
                ("min_severity", "medium"),
                ("health_below", ""),
                ("failure_share", "0.5"),
                ("failure_window", "7200"),
                ("min_conversations", "10"),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    let stored = app.store.alert_settings().await.unwrap().alert_thresholds;
    assert_eq!(
        stored,
        Some(
            json!({"min_severity": "medium", "failure_rate": {"share": 0.5, "window_secs": 7200}, "min_conversations": 10})
        )
    );
    let html = admin.page("/dashboard/settings").await;
    assert!(html.contains("medium and above") && html.contains("50.0% of conversations within 2 h"), "{html}");

    // A post without the CSRF token (or with another one) is refused and changes nothing.
    let res = admin.post("/dashboard/settings/alerts", &[("action", "clear_webhook")]).await;
    assert_eq!(res.status().as_u16(), 403);
    let res = admin.post("/dashboard/settings/alerts", &[("_csrf", "0000"), ("action", "clear_webhook")]).await;
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(app.store.alert_settings().await.unwrap().slack_webhook_url, Some(slack_url()));

    // Removing it works with the token.
    let res = admin.post("/dashboard/settings/alerts", &[("_csrf", &csrf), ("action", "clear_webhook")]).await;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(app.store.alert_settings().await.unwrap().slack_webhook_url, None);

    // Signed out: the login page.
    let res = app.get("/dashboard/settings").await;
    assert_eq!(res.status().as_u16(), 303);
    assert!(location(&res).starts_with("/dashboard/login"));
    app.stop().await.unwrap();
}

async fn track(app: &TestApp, key: &str, conversation: &str) -> u16 {
    let body = json!({"conversationId": conversation, "messages": [
        {"role": "user", "content": "hello", "timestamp": "2026-11-28T10:00:00Z"}]});
    let res =
        app.client.post(app.url("/api/v1/conversations/track")).bearer_auth(key).json(&body).send().await.unwrap();
    res.status().as_u16()
}

async fn api_keys_are_revealed_once_work_and_can_be_revoked(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let admin = Admin::new(&app).await;
    let csrf = admin.csrf().await;

    // Without the token: refused, no key created.
    let res = admin.post("/dashboard/settings/keys", &[("name", "forged"), ("environment", "")]).await;
    assert_eq!(res.status().as_u16(), 403);
    assert!(app.state.admin().api_keys.list().await.unwrap().is_empty());

    // A bad environment: the API's 400, shown on the form, with what was typed kept.
    let res =
        admin.post("/dashboard/settings/keys", &[("_csrf", &csrf), ("name", "bad"), ("environment", "Not OK!")]).await;
    assert_eq!(res.status().as_u16(), 400);
    let text = res.text().await.unwrap();
    assert!(text.contains(r#"id="key-error""#), "{text}");
    assert!(app.state.admin().api_keys.list().await.unwrap().is_empty());

    let res = admin
        .post("/dashboard/settings/keys", &[("_csrf", &csrf), ("name", "ingest-test"), ("environment", "staging")])
        .await;
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
    assert!(res.headers().get("location").is_none() && res.headers().get("set-cookie").is_none());
    let html = res.text().await.unwrap();
    assert!(html.contains("Copy it now: it will not be shown again."), "{html}");
    assert!(html.contains(r#"data-copy="new-api-key""#), "{html}");
    let key = between(&html, r#"id="new-api-key" type="text" readonly value=""#, "\"").expect("the key").to_owned();
    assert!(key.starts_with("sk_sensei_"), "{key}");
    assert_eq!(html.matches(key.as_str()).count(), 1, "the key appears exactly once");

    // The next page shows the key's metadata, never the key.
    let html = admin.page("/dashboard/settings").await;
    assert!(!html.contains(&key), "the key is not shown again");
    assert!(html.contains("ingest-test") && html.contains("staging"), "{html}");
    let id = app.state.admin().api_keys.list().await.unwrap()[0].id.to_string();
    let prefix = app.state.admin().api_keys.list().await.unwrap()[0].prefix.clone();
    assert!(html.contains(&prefix), "{html}");
    assert!(html.contains(&format!("/dashboard/settings/keys/{id}/revoke")), "{html}");
    assert!(html.contains(r#"data-confirm="Revoke ingest-test?"#), "{html}");

    // The key works on the ingestion API.
    assert_eq!(track(&app, &key, "conv-key").await, 202);

    // Revoking: refused without the token (the key keeps working), then done with it.
    let revoke = format!("/dashboard/settings/keys/{id}/revoke");
    assert_eq!(admin.post(&revoke, &[]).await.status().as_u16(), 403);
    assert_eq!(track(&app, &key, "conv-key-2").await, 202);
    let res = admin.post(&revoke, &[("_csrf", &csrf)]).await;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(location(&res), "/dashboard/settings?notice=key-revoked");
    assert_eq!(track(&app, &key, "conv-key-3").await, 401);
    let html = admin.page("/dashboard/settings?notice=key-revoked").await;
    assert!(html.contains("The API key was revoked"), "{html}");
    assert!(!html.contains(&format!("/dashboard/settings/keys/{id}/revoke")), "no revoke button on a revoked key");
    app.stop().await.unwrap();
}

async fn sessions_page_shows_the_funnel_and_leads_and_exports_csv(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let admin = Admin::new(&app).await;
    let html = admin.page("/dashboard/sessions").await;
    assert!(html.contains("No Mentor sessions yet"), "empty state: {html}");
    assert!(html.contains("mentorfy seed-demo"), "{html}");

    let ana = app.create_session(json!({"orgId": "rafael-tatts", "name": "Ana", "email": "ana@example.com"})).await;
    app.create_session(json!({"orgId": "rafael-tatts", "name": "Bo", "phone": "+15551234567"})).await;
    app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let res = app.post_json(&format!("/api/session/{ana}/complete"), &json!({})).await;
    assert_eq!(res.status().as_u16(), 200);

    let html = admin.page("/dashboard/sessions").await;
    let row = |label: &str, n: &str| format!(r#"<th scope="row">{label}</th><td class="num">{n}</td>"#);
    assert!(html.contains(&row("Created", "3")), "{html}");
    assert!(html.contains(&row("Completed", "1")), "{html}");
    assert!(html.contains(&row("In progress", "2")), "{html}");
    assert!(html.contains(&row("Left an email or phone", "2")), "{html}");
    assert!(html.contains("ana@example.com") && html.contains("Bo"), "{html}");
    assert!(html.contains(r#"href="/dashboard/sessions/export.csv""#), "{html}");
    assert!(!html.contains("No Mentor sessions yet"));

    // Filters in the URL; htmx gets the fragment only.
    let res = app
        .client
        .get(app.url("/dashboard/sessions?status=completed&range=7d&linked="))
        .header("cookie", &admin.cookie)
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let fragment = res.text().await.unwrap();
    assert!(!fragment.contains("<html"), "a fragment: {fragment}");
    assert!(fragment.contains("ana@example.com") && !fragment.contains("+15551234567"), "{fragment}");
    let export = fragment.replace("&#38;", "&").replace("&amp;", "&");
    assert!(export.contains("/dashboard/sessions/export.csv?status=completed&range=7d"), "{fragment}");

    // Paging: one lead per page gives a next link that works.
    let html = admin.page("/dashboard/sessions?limit=1").await;
    let at = html.find("Next page").expect("a next page link");
    let start = html[..at].rfind("href=\"").unwrap() + 6;
    let next = html[start..start + html[start..].find('"').unwrap()].replace("&#38;", "&").replace("&amp;", "&");
    assert!(next.contains("limit=1") && next.contains("cursor="), "{next}");
    let page2 = admin.page(&next).await;
    assert!(page2.contains("First page"), "{page2}");

    // A bad filter is the API's 400.
    assert_eq!(admin.get("/dashboard/sessions?status=lost").await.status().as_u16(), 400);

    // The CSV export through the cookie session.
    let res = admin.get("/dashboard/sessions/export.csv?status=in_progress").await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    assert!(csv.starts_with("id,name,email,phone,status,linked,created_at,updated_at\r\n"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "header and two in-progress leads: {csv}");
    assert!(csv.contains(",Bo,,+15551234567,"), "the E.164 phone is exported as it is: {csv}");
    let res = app.get("/dashboard/sessions/export.csv").await;
    assert_eq!(res.status().as_u16(), 303, "signed out: the login page");
    app.stop().await.unwrap();
}

async fn playground_lists_agents_and_loads_its_script(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let admin = Admin::new(&app).await;
    let html = admin.page("/dashboard/playground").await;
    assert!(html.contains(r#"<option value="rafael-chat" data-org="rafael-tatts">"#), "{html}");
    assert!(!html.contains(r#"<option value="rafael-diagnosis""#), "generation agents are not chat agents");
    for control in [
        r#"<label for="playground-agent">Agent</label>"#,
        r#"<select id="playground-agent""#,
        r#"<label for="playground-message">Message</label>"#,
        r#"<textarea id="playground-message""#,
        ">Send</button>",
        ">New conversation</button>",
        r#"id="playground-transcript""#,
        r#"aria-live="polite""#,
        "This conversation appears in Conversations (source mentorfy) after it is analysed.",
    ] {
        assert!(html.contains(control), "missing {control}: {html}");
    }
    assert!(!html.contains("style=") && !html.contains("<script>") && !html.contains(" onclick"), "CSP-safe");
    let script = html
        .split(r#"<script src=""#)
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|s| s.contains("playground"))
        .expect("playground.js")
        .to_owned();
    assert!(
        script.starts_with("/dashboard/assets/playground.")
            && script.ends_with(".js")
            && script != "/dashboard/assets/playground.js",
        "{script}"
    );
    let res = app.get(&script).await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(res.text().await.unwrap().contains("text-delta"));
    let res = app.get("/dashboard/playground").await;
    assert_eq!(res.status().as_u16(), 303);
    app.stop().await.unwrap();
}

/// The requests `playground.js` makes, as it makes them: a session in the agent's org, then the PRD chat body; the
/// answer streams as `text-delta` chunks. Without a provider, the chat is a 503 envelope whose message the page shows.
async fn playground_requests_stream_an_answer_or_say_why_not(db: TestDb) {
    let fake = FakeAnthropic::start().await;
    fake.push_all([Reply::text("Charge for the whole day.")]);
    let app =
        TestApp::spawn_with(db, &[("ANTHROPIC_API_KEY", "sk-ant-test-key"), ("ANTHROPIC_BASE_URL", &fake.url())]).await;
    let admin = Admin::new(&app).await;
    let html = admin.page("/dashboard/playground").await;
    assert!(!html.contains("provider not configured"), "{html}");
    let post = |path: &str, body: serde_json::Value| {
        app.client.post(app.url(path)).header("content-type", "application/json").body(body.to_string()).send()
    };
    let res = post("/api/session", json!({"orgId": "rafael-tatts"})).await.unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let session: serde_json::Value = res.json().await.unwrap();
    let session = session["sessionId"].as_str().unwrap().to_owned();
    let res = post("/api/chat", json!({"sessionId": session, "agentId": "rafael-chat", "message": "How do I price?"}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let raw = res.text().await.unwrap();
    let text: String = raw
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .filter(|c| c["type"] == "text-delta")
        .map(|c| c["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Charge for the whole day.");
    assert!(raw.ends_with("data: [DONE]\n\n"));
    app.stop().await.unwrap();

    // No provider: the page says so, and the chat answers the JSON envelope the script turns into words.
    let app = TestApp::spawn(TestDb::create(mentorfy_test_support::Backend::Sqlite).await.unwrap()).await;
    let admin = Admin::new(&app).await;
    let html = admin.page("/dashboard/playground").await;
    assert!(html.contains("provider not configured") && html.contains("No model provider is configured"), "{html}");
    let session = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let res =
        app.post_json("/api/chat", &json!({"sessionId": session, "agentId": "rafael-chat", "message": "hi"})).await;
    assert_eq!(res.status().as_u16(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    app.stop().await.unwrap();
}
