//! Dashboard pages over HTTP on both backends: Failures (with bulk triage), Patterns and LLM calls, fed by real
//! ingestion and analysis. Each page shows real content to a signed-in admin, sends the CSP, redirects signed-out
//! visitors to the login page, answers htmx with the fragment only, and shows an empty state that says what next.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use mentorfy_store::{LlmCallRow, PatternRunWrite, PatternWrite};
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_json};
use serde_json::{Value, json};
use uuid::Uuid;

both_backends!(empty_pages_say_what_to_do_next, pages_show_failures_patterns_and_llm_calls);

const FRUSTRATED: &[(&str, &str)] = &[
    ("user", "Hi, I was charged twice for my subscription this month."),
    ("assistant", "I'm sorry to hear that. Could you tell me the email on your account?"),
    ("user", "It's ana@example.com. Please fix the double charge."),
    ("assistant", "I can't help with billing issues. Is there anything else I can do for you?"),
    ("user", "This is useless!!! I already told you I was charged twice. I want a refund NOW."),
    ("assistant", "I'm sorry, I can't help with that."),
    ("user", "Can I talk to a human please? This is ridiculous."),
];

fn cookie(token: &str) -> String {
    format!("mentorfy_session={token}")
}

async fn page(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).header("cookie", cookie(token)).send().await.unwrap()
}

/// A page's HTML, asserting 200 and the security headers.
async fn html(app: &TestApp, token: &str, path: &str) -> String {
    let res = page(app, token, path).await;
    let status = res.status().as_u16();
    let csp = res.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_owned());
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    let csp = csp.unwrap_or_else(|| panic!("{path}: no CSP"));
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(!body.contains("style=\""), "{path}: inline style");
    assert!(!body.contains("<script>"), "{path}: inline script");
    body
}

/// The fragment htmx gets: no page around it.
async fn fragment(app: &TestApp, token: &str, path: &str) -> String {
    let res = app
        .client
        .get(app.url(path))
        .header("cookie", cookie(token))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    assert!(!body.contains("<html"), "{path}: htmx got the whole page");
    body
}

async fn signed_out_redirects(app: &TestApp, path: &str) {
    let res = app.get(path).await;
    assert!(matches!(res.status().as_u16(), 302 | 303), "{path}: {}", res.status());
    let location = res.headers().get("location").unwrap().to_str().unwrap();
    assert!(location.starts_with("/dashboard/login"), "{path}: {location}");
}

async fn bulk(app: &TestApp, token: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url("/dashboard/failures/bulk"))
        .header("cookie", cookie(token))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap())
        .send()
        .await
        .unwrap()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a CSRF field") + "name=\"_csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

async fn empty_pages_say_what_to_do_next(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    let failures = html(&app, &token, "/dashboard/failures").await;
    assert!(failures.contains("No open failures"), "{failures}");
    let patterns = html(&app, &token, "/dashboard/patterns").await;
    assert!(
        patterns.contains(
            "No usage patterns yet — they are computed weekly, or now with <code>mentorfy patterns run</code>."
        ),
        "{patterns}"
    );
    let calls = html(&app, &token, "/dashboard/llm-calls").await;
    assert!(calls.contains("No LLM calls yet — chat in the"), "{calls}");
    assert!(calls.contains("/api/chat"));
    let filtered = html(&app, &token, "/dashboard/llm-calls?status=error").await;
    assert!(filtered.contains("No LLM calls match these filters"));
    // Bad filters are shown as an error page naming the field, not a crash.
    let res = page(&app, &token, "/dashboard/failures?severity=huge").await;
    assert_eq!(res.status().as_u16(), 400);
    assert!(res.text().await.unwrap().contains("severity"));
    let res = page(&app, &token, "/dashboard/llm-calls/not-a-call").await;
    assert_eq!(res.status().as_u16(), 404);
    app.stop().await.unwrap();
}

fn llm_call(agent: &str, conversation_id: Option<Uuid>, latency: i64) -> LlmCallRow {
    let now = time::OffsetDateTime::now_utc() - time::Duration::seconds(latency);
    LlmCallRow {
        id: Uuid::now_v7(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: "00f067aa0ba902b7".into(),
        parent_span_id: None,
        session_id: None,
        conversation_id,
        message_id: None,
        org_id: None,
        agent_id: Some(agent.into()),
        operation: "chat".into(),
        provider: "anthropic".into(),
        model: "claude-sonnet-4-5".into(),
        response_model: None,
        response_id: None,
        stream: true,
        parameters: json!({}),
        input: json!({"messages": [{"role": "user", "content": "How do I <reset> my password?"}]}),
        output: Some(json!({"role": "assistant", "content": "Open Settings, then Security."})),
        input_tokens: Some(120),
        output_tokens: Some(30),
        cache_read_tokens: None,
        cache_write_tokens: None,
        cost_usd: Some(0.0021),
        latency_ms: latency,
        ttft_ms: Some(latency / 4),
        attempts: 1,
        status: "ok".into(),
        error: None,
        error_type: None,
        finish_reason: Some("stop".into()),
        started_at: now,
        created_at: now,
    }
}

async fn pages_show_failures_patterns_and_llm_calls(db: TestDb) {
    // No scheduled pattern run: the one the server starts with could finish after the run saved below and replace
    // it as the latest between two requests (a 404 "not in the latest pattern run", about one run in seven).
    let app = TestApp::spawn_with(db, &[("SENSEI_ANALYSIS_DEBOUNCE", "0ms"), ("SENSEI_PATTERNS_EVERY", "off")]).await;
    let key = app.api_key(None).await;
    let start = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let fmt = &time::format_description::well_known::Rfc3339;
    let messages: Vec<Value> = FRUSTRATED
        .iter()
        .enumerate()
        .map(|(i, (role, content))| {
            let at = start + time::Duration::seconds(20 * i as i64);
            json!({"id": format!("m{i}"), "role": role, "content": content, "timestamp": at.format(fmt).unwrap()})
        })
        .collect();
    let res = app
        .client
        .post(app.url("/api/v1/conversations/track"))
        .bearer_auth(&key)
        .json(&json!({"conversationId": "double-charge", "agentId": "billing-bot", "messages": messages}))
        .send()
        .await
        .unwrap();
    expect_json(res, 202).await;
    // The real job workers analyse it.
    let mut conv = None;
    for _ in 0..200 {
        if let Some(c) = app.store.find_conversation("api", "production", "double-charge").await.unwrap()
            && c.analyzed_at.is_some()
            && c.failure_count > 0
        {
            conv = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let conv = conv.expect("the conversation was analysed in 10 s");
    let failures = app.store.list_failures(conv.id).await.unwrap();
    assert!(failures.len() >= 2, "{failures:?}");

    let token = app.admin_token().await;
    for path in [
        "/dashboard/failures",
        "/dashboard/patterns",
        "/dashboard/llm-calls",
        "/dashboard/llm-calls/00000000-0000-0000-0000-000000000000",
    ] {
        signed_out_redirects(&app, path).await;
    }

    // Failures: every open failure with its type, agent and a link to the message it points at.
    let body = html(&app, &token, "/dashboard/failures").await;
    assert!(body.contains("Escalation request"), "{body}");
    assert!(body.contains("User frustration"));
    assert!(body.contains("billing-bot"));
    assert!(body.contains("double-charge"));
    let escalation = failures.iter().find(|f| f.kind == "escalation_request").unwrap();
    let anchor = format!("/dashboard/conversations/{}#msg-{}", conv.id, escalation.message_id.unwrap());
    assert!(body.contains(&anchor), "{anchor}");
    assert!(body.contains("data-select-all=\"id\""));
    let only = fragment(&app, &token, "/dashboard/failures?type=escalation_request").await;
    assert!(only.contains("Escalation request") && !only.contains("User frustration"), "{only}");
    let none = html(&app, &token, "/dashboard/failures?status=resolved").await;
    assert!(none.contains("No resolved failures"), "{none}");

    // Bulk triage: without the CSRF token it is refused; with it every selected failure changes.
    let csrf = csrf_of(&body);
    let ids: Vec<String> = failures.iter().take(2).map(|f| f.id.to_string()).collect();
    let back = "/dashboard/failures?status=open&severity=";
    let mut form: Vec<(&str, &str)> = vec![("action", "ack"), ("back", back)];
    form.extend(ids.iter().map(|id| ("id", id.as_str())));
    let res = bulk(&app, &token, &form).await;
    assert_eq!(res.status().as_u16(), 403);
    let api = expect_json(
        app.client.get(app.url("/api/v1/failures?status=ack")).bearer_auth(&token).send().await.unwrap(),
        200,
    )
    .await;
    assert!(api["data"].as_array().unwrap().is_empty(), "nothing changed: {api}");
    form.push(("_csrf", csrf.as_str()));
    let res = bulk(&app, &token, &form).await;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers().get("location").unwrap(), back, "back to the same view");
    let api = expect_json(
        app.client.get(app.url("/api/v1/failures?status=ack")).bearer_auth(&token).send().await.unwrap(),
        200,
    )
    .await;
    let mut acked: Vec<String> =
        api["data"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_owned()).collect();
    acked.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(acked, expected);
    // Another site as `back` is ignored; a bad action is refused.
    let evil = [
        ("action", "open"),
        ("back", "https://evil.example/dashboard/failures"),
        ("id", ids[0].as_str()),
        ("_csrf", csrf.as_str()),
    ];
    let res = bulk(&app, &token, &evil).await;
    assert_eq!(res.headers().get("location").unwrap(), "/dashboard/failures");
    let bad = [("action", "delete"), ("id", ids[0].as_str()), ("_csrf", csrf.as_str())];
    let res = bulk(&app, &token, &bad).await;
    assert_eq!(res.status().as_u16(), 400);
    let acked_page = html(&app, &token, "/dashboard/failures?status=ack").await;
    assert!(acked_page.contains(&ids[1]) && !acked_page.contains(&ids[0]), "reopened one, acknowledged the other");

    // Patterns: the latest run's patterns, and one pattern's trend and conversations.
    let now = time::OffsetDateTime::now_utc();
    let run = PatternRunWrite {
        id: Uuid::now_v7(),
        trigger: "manual".into(),
        window_from: now - time::Duration::days(7),
        window_to: now,
        representation: "tfidf".into(),
        conversations: 1,
        params: json!({}),
        started_at: now,
        patterns: vec![PatternWrite {
            label: "double charge refunds".into(),
            keywords: json!([{"term": "charged", "weight": 0.4}, {"term": "refund", "weight": 0.3}]),
            avg_health: conv.health_score,
            failure_rate: Some(1.0),
            examples: json!([{"conversation_id": conv.id, "excerpt": "Hi, I was charged twice", "similarity": 0.9}]),
            method: "ctfidf".into(),
            members: vec![(conv.id, 0.9)],
        }],
    };
    app.store.save_pattern_run(&run, 8).await.unwrap();
    let pattern_id = app.store.list_patterns(run.id).await.unwrap()[0].id;
    let body = html(&app, &token, "/dashboard/patterns").await;
    assert!(body.contains("double charge refunds"), "{body}");
    assert!(body.contains("charged, refund"));
    assert!(body.contains("Hi, I was charged twice"));
    assert!(body.contains(&format!("/dashboard/patterns?pattern={pattern_id}")));
    let body = html(&app, &token, &format!("/dashboard/patterns?pattern={pattern_id}")).await;
    assert!(body.contains("<svg class=\"chart\""), "{body}");
    assert!(body.contains(&format!("/dashboard/conversations/{}", conv.id)));
    assert!(body.contains(&format!("/dashboard/conversations?pattern={pattern_id}")));
    let detail = fragment(&app, &token, &format!("/dashboard/patterns?pattern={pattern_id}")).await;
    assert!(detail.contains("double charge refunds") && detail.contains("double-charge"), "{detail}");
    let res = page(&app, &token, &format!("/dashboard/patterns?pattern={}", Uuid::now_v7())).await;
    assert_eq!(res.status().as_u16(), 404);

    // LLM calls: per agent and model figures, the list, and one call in full.
    let first = llm_call("coach-agent", Some(conv.id), 1800);
    app.store.insert_llm_call(&first).await.unwrap();
    for latency in [900, 1200] {
        app.store.insert_llm_call(&llm_call("coach-agent", None, latency)).await.unwrap();
    }
    let body = html(&app, &token, "/dashboard/llm-calls").await;
    assert!(body.contains("coach-agent"), "{body}");
    assert!(body.contains("claude-sonnet-4-5"));
    assert!(body.contains("By agent and model"));
    assert!(body.contains("<svg class=\"chart\""), "a latency chart");
    assert!(body.contains(&format!("/dashboard/llm-calls/{}", first.id)));
    let frag = fragment(&app, &token, "/dashboard/llm-calls?agent=coach-agent&range=24h").await;
    assert!(frag.contains("coach-agent"));
    let frag = fragment(&app, &token, "/dashboard/llm-calls?agent=nobody").await;
    assert!(frag.contains("No LLM calls match these filters"));
    let body = html(&app, &token, &format!("/dashboard/llm-calls/{}", first.id)).await;
    assert!(
        body.contains("How do I &lt;reset&gt; my password?") || body.contains("How do I &#60;reset&#62; my password?"),
        "input escaped: {body}"
    );
    assert!(body.contains("Open Settings, then Security."));
    assert!(body.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert!(body.contains(&format!("/dashboard/conversations/{}", conv.id)));
    assert!(body.contains("<pre"));
    app.stop().await.unwrap();
}
