//! The dashboard over HTTP on both backends: sign-in with a real password and the session cookie's attributes,
//! CSRF and cross-site refusals, the security headers, and the Overview and Conversations pages on live data
//! (filters in the URL, htmx fragments, a transcript with its failures, saved views, failure triage).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mentorfy_store::{AnalysisWrite, FailureWrite, NewConversation, NewMessage, Store};
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_json};
use mentorfy_web::dashboard::session::csrf_token;
use serde_json::json;
use time::Duration;
use uuid::Uuid;

both_backends!(
    signing_in_sets_a_strict_session_cookie_and_signing_out_needs_csrf,
    overview_and_conversations_show_live_data,
    views_and_failure_triage_are_csrf_protected_and_stored,
);

const PASSWORD: &str = "a long enough password";

/// reqwest is built without its `form` feature: the body is encoded here.
trait FormBody {
    fn form_body(self, fields: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body(self, fields: &[(&str, &str)]) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap())
    }
}

async fn admin_with_password(app: &TestApp) -> String {
    let email = format!("dash-{}@example.com", Uuid::now_v7().simple());
    let hash = mentorfy_auth::password::hash_password(PASSWORD).unwrap();
    app.store.create_admin(&email, &hash).await.unwrap();
    email
}

fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("mentorfy_session="))
        .map(str::to_owned)
}

async fn page(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).header("cookie", format!("mentorfy_session={token}")).send().await.unwrap()
}

async fn post_form(app: &TestApp, token: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("cookie", format!("mentorfy_session={token}"))
        .form_body(form)
        .send()
        .await
        .unwrap()
}

async fn signing_in_sets_a_strict_session_cookie_and_signing_out_needs_csrf(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let email = admin_with_password(&app).await;

    // Signed out: every page sends you to the login page and back.
    let res = app.get("/dashboard/conversations?range=7d").await;
    assert_eq!(res.status().as_u16(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, "/dashboard/login?next=/dashboard/conversations%3Frange%3D7d");
    let res = app.client.get(app.url("/dashboard")).header("hx-request", "true").send().await.unwrap();
    assert_eq!(res.headers()["hx-redirect"], "/dashboard/login?next=/dashboard");
    let login = app.get(&location).await;
    assert_eq!(login.status().as_u16(), 200);
    let csp = login.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = login.text().await.unwrap();
    assert!(html.contains(r#"name="next" value="/dashboard/conversations?range=7d""#), "{html}");

    // A wrong password: the same message as an unknown email, no cookie.
    let res = app
        .client
        .post(app.url("/dashboard/login"))
        .form_body(&[("email", email.as_str()), ("password", "wrong"), ("next", "/dashboard")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(session_cookie(&res).is_none());
    assert!(res.text().await.unwrap().contains("wrong email or password"));

    // A login form posted from another site is refused before the password is checked.
    let res = app
        .client
        .post(app.url("/dashboard/login"))
        .header("origin", "https://evil.example")
        .form_body(&[("email", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert!(session_cookie(&res).is_none());

    // The right password: back to `next`, with an HttpOnly, SameSite=Strict cookie; Secure behind HTTPS.
    let res = app
        .client
        .post(app.url("/dashboard/login"))
        .form_body(&[("email", email.as_str()), ("password", PASSWORD), ("next", "/dashboard/conversations?range=7d")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], "/dashboard/conversations?range=7d");
    let cookie = session_cookie(&res).unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    let token = cookie.trim_start_matches("mentorfy_session=").split(';').next().unwrap().to_owned();
    let res = app
        .client
        .post(app.url("/dashboard/login"))
        .header("x-forwarded-proto", "https")
        .form_body(&[("email", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(session_cookie(&res).unwrap().contains("; Secure"));
    // Never back to another site.
    let res = app
        .client
        .post(app.url("/dashboard/login"))
        .form_body(&[("email", email.as_str()), ("password", PASSWORD), ("next", "https://evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/dashboard");

    // The cookie opens the dashboard; the page carries the CSRF token of this session and the asset URLs work.
    let res = page(&app, &token, "/dashboard").await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    assert!(html.contains(&csrf_token(&token)));
    assert!(html.contains(&email));
    let css = html.split("href=\"/dashboard/assets/app.").nth(1).unwrap().split('"').next().unwrap();
    let res = app.get(&format!("/dashboard/assets/app.{css}")).await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    assert!(html.contains("<script src=\"/dashboard/assets/htmx-2.0.11.min."));
    assert!(!html.contains("style=\""), "no inline styles under the CSP");

    // A forged cookie is no session.
    assert_eq!(page(&app, "not-a-token", "/dashboard").await.status().as_u16(), 303);

    // Signing out is a CSRF-checked post.
    assert_eq!(post_form(&app, &token, "/dashboard/logout", &[]).await.status().as_u16(), 403);
    let res = post_form(&app, &token, "/dashboard/logout", &[("_csrf", &csrf_token(&token))]).await;
    assert_eq!(res.status().as_u16(), 303);
    assert!(session_cookie(&res).unwrap().contains("Max-Age=0"));
}

/// Conversations: `alpha-*` healthy, `beta-*` with an escalation failure on the user's message.
async fn seed(store: &Store) -> Vec<(Uuid, Option<Uuid>)> {
    let now = mentorfy_store::now();
    let mut out = Vec::new();
    for i in 0..6 {
        let failing = i % 2 == 1;
        let external_id = format!("{}-{i}", if failing { "beta" } else { "alpha" });
        let c = store
            .upsert_conversation(NewConversation {
                source: "api",
                environment: "production",
                external_id: &external_id,
                org_id: None,
                agent_id: Some("support-bot"),
                user_id: None,
                metadata: json!({}),
            })
            .await
            .unwrap();
        let at = now - Duration::hours(i64::from(i) + 1);
        let user_text =
            if failing { "This is useless, let me talk to a human" } else { "How do I export my invoices?" };
        let mut user_message = None;
        for (k, (role, content)) in
            [("user", user_text), ("assistant", "Here is how to do that.")].into_iter().enumerate()
        {
            let id = Uuid::now_v7();
            if k == 0 {
                user_message = Some(id);
            }
            store
                .insert_message(NewMessage {
                    id,
                    conversation_id: c.id,
                    external_id: None,
                    role,
                    content,
                    status: "complete",
                    finish_reason: None,
                    input_tokens: None,
                    output_tokens: None,
                    latency_ms: None,
                    ttft_ms: None,
                    metadata: json!({}),
                    created_at: at + Duration::seconds(k as i64),
                })
                .await
                .unwrap();
        }
        let conv = store.get_conversation(c.id).await.unwrap().unwrap();
        let failures = if failing {
            vec![FailureWrite {
                message_id: user_message,
                kind: "escalation_request".to_owned(),
                severity: "high".to_owned(),
                evidence: "asked for a human".to_owned(),
                detector: "test".to_owned(),
                detector_version: 1,
                fingerprint: format!("test:{i}"),
                details: json!({}),
            }]
        } else {
            Vec::new()
        };
        let score = if failing { 30.0 } else { 90.0 };
        store
            .save_analysis(&AnalysisWrite {
                conversation_id: c.id,
                seen_last_message_at: conv.last_message_at,
                sentiments: Vec::new(),
                failures,
                health_score: score,
                health_breakdown: json!({"score": score, "components": [
                    {"name": "user_sentiment", "weight": 0.3, "value": 0.42, "evidence": "2 negative of 3 user turns"}
                ]}),
                avg_sentiment: Some(if failing { -0.4 } else { 0.3 }),
                is_final: true,
            })
            .await
            .unwrap();
        out.push((c.id, failing.then_some(user_message).flatten()));
    }
    out
}

async fn overview_and_conversations_show_live_data(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;

    // Empty: the overview says what to do next.
    let html = page(&app, &token, "/dashboard").await.text().await.unwrap();
    assert!(html.contains("No conversations yet") && html.contains("mentorfy seed-demo"), "{html}");

    let seeded = seed(&app.store).await;
    let res = page(&app, &token, "/dashboard?range=24h").await;
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await.unwrap();
    // KPIs: 6 conversations, 12 messages, average health 60, half with failures.
    for expected in ["<p class=\"value\">6</p>", "<p class=\"value\">12</p>", "<p class=\"value\">60</p>", "50.0%"] {
        assert!(html.contains(expected), "{expected} missing");
    }
    assert!(html.contains("Escalation request"), "failure types are listed");
    assert!(html.contains("<svg class=\"chart\""));
    // Read first: the failing ones only.
    assert!(html.contains("beta-1") && !html.contains(">alpha-0<"), "read-first lists failing conversations");
    assert_eq!(page(&app, &token, "/dashboard?range=1y").await.status().as_u16(), 400);

    // The list honours the URL's filters; empty form fields mean "any".
    let html =
        page(&app, &token, "/dashboard/conversations?has_failures=true&q=&health_min=").await.text().await.unwrap();
    assert!(html.contains("beta-1") && html.contains("beta-3") && !html.contains("alpha-0"), "{html}");
    assert!(html.contains(r#"<option value="true" selected>"#), "the form shows the filter in force");
    let html = page(&app, &token, "/dashboard/conversations?q=export").await.text().await.unwrap();
    assert!(html.contains("alpha-0") && !html.contains("beta-1"));
    // Paging keeps the filters.
    let html = page(&app, &token, "/dashboard/conversations?limit=2&sort=health").await.text().await.unwrap();
    let next = html.split("rel=\"next\"").next().unwrap().rsplit("href=\"").next().unwrap();
    assert!(next.contains("cursor=") && next.contains("sort=health"), "{next}");
    // htmx gets the results fragment alone.
    let res = app
        .client
        .get(app.url("/dashboard/conversations?has_failures=false"))
        .header("cookie", format!("mentorfy_session={token}"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    let fragment = res.text().await.unwrap();
    assert!(!fragment.contains("<html") && fragment.contains("alpha-0") && !fragment.contains("beta-1"));
    // A malformed filter is a 400 page naming it, not a JSON envelope.
    let res = page(&app, &token, "/dashboard/conversations?health_min=abc").await;
    assert_eq!(res.status().as_u16(), 400);
    assert!(res.text().await.unwrap().contains("health_min"));

    // One conversation: transcript, the failure on the message it points at, the breakdown.
    let (failing_id, message_id) = seeded[1];
    let html = page(&app, &token, &format!("/dashboard/conversations/{failing_id}")).await.text().await.unwrap();
    assert!(html.contains("This is useless, let me talk to a human"));
    let anchor = format!("id=\"msg-{}\" class=\"msg user flagged\"", message_id.unwrap());
    assert!(html.contains(&anchor), "the failure marks its message");
    assert!(html.contains("asked for a human") && html.contains("User sentiment") && html.contains("2 negative of 3"));
    assert_eq!(
        page(&app, &token, &format!("/dashboard/conversations/{}", Uuid::now_v7())).await.status().as_u16(),
        404
    );
}

async fn views_and_failure_triage_are_csrf_protected_and_stored(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    let csrf = csrf_token(&token);
    let seeded = seed(&app.store).await;

    // Saving a view: refused without the token, stored with it, listed on the page and through the API.
    let form = [("name", "Escalations"), ("filters", "has_failures=true&failure_type=escalation_request&q=")];
    assert_eq!(post_form(&app, &token, "/dashboard/views", &form).await.status().as_u16(), 403);
    let other = csrf_token("another-session");
    let with_other = [form[0], form[1], ("_csrf", other.as_str())];
    assert_eq!(post_form(&app, &token, "/dashboard/views", &with_other).await.status().as_u16(), 403);
    let with_token = [form[0], form[1], ("_csrf", csrf.as_str())];
    let res = post_form(&app, &token, "/dashboard/views", &with_token).await;
    assert_eq!(res.status().as_u16(), 303);
    let views = expect_json(
        app.client.get(app.url("/api/v1/saved-views?page=conversations")).bearer_auth(&token).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(views["data"].as_array().unwrap().len(), 1);
    assert_eq!(views["data"][0]["filters"], json!({"has_failures": "true", "failure_type": "escalation_request"}));
    let html = page(&app, &token, "/dashboard/conversations").await.text().await.unwrap();
    let link = html.split("\">Escalations</a>").next().unwrap().rsplit("href=\"").next().unwrap();
    assert!(link.starts_with("/dashboard/conversations?"), "{link}");
    assert!(link.contains("has_failures=true") && link.contains("failure_type=escalation_request"), "{link}");
    // A bad filter is refused with the reason.
    let bad = [("name", "Bad"), ("filters", "health_min=abc"), ("_csrf", csrf.as_str())];
    assert_eq!(post_form(&app, &token, "/dashboard/views", &bad).await.status().as_u16(), 400);
    let id = views["data"][0]["id"].as_str().unwrap().to_owned();
    let res = post_form(&app, &token, &format!("/dashboard/views/{id}/delete"), &[("_csrf", &csrf)]).await;
    assert_eq!(res.status().as_u16(), 303);

    // Acknowledging a failure from the transcript (htmx swaps the failure in place).
    let (conversation, _) = seeded[1];
    let failures = expect_json(
        app.client
            .get(app.url(&format!("/api/v1/conversations/{conversation}/failures")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let failure = failures["data"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/dashboard/failures/{failure}/status");
    assert_eq!(post_form(&app, &token, &path, &[("status", "ack")]).await.status().as_u16(), 403);
    let res = app
        .client
        .post(app.url(&path))
        .header("cookie", format!("mentorfy_session={token}"))
        .header("hx-request", "true")
        .header("x-csrf-token", &csrf)
        .form_body(&[("status", "ack")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let fragment = res.text().await.unwrap();
    assert!(fragment.contains("class=\"failure ack\"") && !fragment.contains("<html"), "{fragment}");
    let stored = app.store.get_failure(failure.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.status, "ack");
    let res = post_form(&app, &token, &path, &[("status", "bogus"), ("_csrf", &csrf)]).await;
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(app.store.get_failure(failure.parse().unwrap()).await.unwrap().unwrap().status, "ack");
}
