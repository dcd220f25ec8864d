//! Linking a session to a Clerk user, and returning users without leaking sessions.

use mentorfy_fakes::clerk::{ClerkKeys, FakeJwksServer, TEST_ISSUER, session_token};
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::json;

both_backends!(
    link_with_a_valid_token_links_the_session,
    link_refuses_a_body_user_that_is_not_the_token_user,
    link_needs_a_valid_token,
    link_without_clerk_configured_is_503_naming_the_variables,
    a_session_linked_to_someone_else_cannot_be_relinked,
    link_verifies_through_jwks_when_no_pem_is_set,
    matching_email_without_sign_in_gets_a_new_session_and_account_exists,
    signed_in_owner_gets_their_own_session_back,
    another_signed_in_user_never_gets_someone_elses_session,
);

async fn clerk_app(db: TestDb) -> TestApp {
    let pem = ClerkKeys::primary().public_pem().to_owned();
    TestApp::spawn_with(db, &[("CLERK_JWT_KEY", &pem), ("CLERK_AUTHORIZED_PARTIES", "http://localhost:3000")]).await
}

fn token_for(user: &str) -> String {
    ClerkKeys::primary().sign(&session_token(user))
}

async fn link(app: &TestApp, id: &str, body_user: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app.client.post(app.url(&format!("/api/session/{id}/link"))).json(&json!({"clerkUserId": body_user}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

async fn create_with_token(app: &TestApp, token: &str, body: serde_json::Value) -> reqwest::Response {
    app.client.post(app.url("/api/session")).bearer_auth(token).json(&body).send().await.expect("request")
}

async fn link_with_a_valid_token_links_the_session(db: TestDb) {
    let app = clerk_app(db).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let res = link(&app, &id, "user_ana", Some(&token_for("user_ana"))).await;
    assert_eq!(expect_json(res, 200).await, json!({"success": true, "sessionId": id, "linked": true}));
    let got = expect_json(app.get(&format!("/api/session/{id}")).await, 200).await;
    assert_eq!(got["linked"], true);
    assert!(!got.to_string().contains("user_ana"), "the Clerk user id is never returned: {got}");
    let stored = app.store.get_session(id.parse().expect("id")).await.expect("get").expect("exists");
    assert_eq!(stored.clerk_user_id.as_deref(), Some("user_ana"));
    // Linking again to the same user is a no-op.
    expect_json(link(&app, &id, "user_ana", Some(&token_for("user_ana"))).await, 200).await;
}

async fn link_refuses_a_body_user_that_is_not_the_token_user(db: TestDb) {
    let app = clerk_app(db).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    expect_error(link(&app, &id, "user_victim", Some(&token_for("user_attacker"))).await, 403, "forbidden").await;
    let stored = app.store.get_session(id.parse().expect("id")).await.expect("get").expect("exists");
    assert_eq!(stored.clerk_user_id, None);
}

async fn link_needs_a_valid_token(db: TestDb) {
    let app = clerk_app(db).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let expired = {
        let mut claims = session_token("user_ana");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        claims["exp"] = json!(now - 60);
        claims["iat"] = json!(now - 120);
        claims["nbf"] = json!(now - 120);
        ClerkKeys::primary().sign(&claims)
    };
    let wrong_key = ClerkKeys::other().sign(&session_token("user_ana"));
    let wrong_party = {
        let mut claims = session_token("user_ana");
        claims["azp"] = json!("https://evil.example");
        ClerkKeys::primary().sign(&claims)
    };
    let res = link(&app, &id, "user_ana", None).await;
    assert_eq!(res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    expect_error(res, 401, "unauthorized").await;
    for token in [expired.as_str(), wrong_key.as_str(), wrong_party.as_str(), "garbage"] {
        let err = expect_error(link(&app, &id, "user_ana", Some(token)).await, 401, "unauthorized").await;
        assert!(!err.to_string().contains(token), "the token is never echoed");
    }
    let res = app
        .client
        .post(app.url(&format!("/api/session/{id}/link")))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .json(&json!({"clerkUserId": "user_ana"}))
        .send()
        .await
        .expect("request");
    expect_error(res, 401, "unauthorized").await;
    let stored = app.store.get_session(id.parse().expect("id")).await.expect("get").expect("exists");
    assert_eq!(stored.clerk_user_id, None);
}

async fn link_without_clerk_configured_is_503_naming_the_variables(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let err =
        expect_error(link(&app, &id, "user_ana", Some(&token_for("user_ana"))).await, 503, "service_unavailable").await;
    let message = err["message"].as_str().expect("message");
    assert!(message.contains("CLERK_JWT_KEY") && message.contains("CLERK_JWKS_URL"), "{message}");
}

async fn a_session_linked_to_someone_else_cannot_be_relinked(db: TestDb) {
    let app = clerk_app(db).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    expect_json(link(&app, &id, "user_ana", Some(&token_for("user_ana"))).await, 200).await;
    expect_error(link(&app, &id, "user_bob", Some(&token_for("user_bob"))).await, 409, "conflict").await;
    let stored = app.store.get_session(id.parse().expect("id")).await.expect("get").expect("exists");
    assert_eq!(stored.clerk_user_id.as_deref(), Some("user_ana"));
}

async fn link_verifies_through_jwks_when_no_pem_is_set(db: TestDb) {
    let jwks = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await.expect("jwks server");
    let app = TestApp::spawn_with(db, &[("CLERK_JWKS_URL", &jwks.jwks_url()), ("CLERK_ISSUER", TEST_ISSUER)]).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    expect_json(link(&app, &id, "user_ana", Some(&token_for("user_ana"))).await, 200).await;
    let other = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    expect_json(link(&app, &other, "user_ana", Some(&token_for("user_ana"))).await, 200).await;
    assert_eq!(jwks.fetch_count(), 1, "keys are cached between verifications");
    jwks.set_failing(true);
    let third = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let unknown_kid = ClerkKeys::other().sign(&session_token("user_ana"));
    let res = link(&app, &third, "user_ana", Some(&unknown_kid)).await;
    assert!(matches!(res.status().as_u16(), 401 | 503), "{}", res.status());
}

async fn matching_email_without_sign_in_gets_a_new_session_and_account_exists(db: TestDb) {
    let app = clerk_app(db).await;
    let original = app.create_session(json!({"orgId": "rafael-tatts", "email": "ana@example.com"})).await;
    expect_json(link(&app, &original, "user_ana", Some(&token_for("user_ana"))).await, 200).await;
    expect_json(
        app.patch_json(&format!("/api/session/{original}"), &json!({"context": {"secret": "my answers"}})).await,
        200,
    )
    .await;

    let res = app.post_json("/api/session", &json!({"orgId": "rafael-tatts", "email": "ANA@example.com"})).await;
    let body = expect_json(res, 201).await;
    assert_ne!(body["sessionId"], original.as_str(), "an email alone never hands out someone's session");
    assert_eq!(body["accountExists"], true);
    assert!(!body.to_string().contains(&original));
    let new_id = body["sessionId"].as_str().expect("id");
    let got = expect_json(app.get(&format!("/api/session/{new_id}")).await, 200).await;
    assert_eq!(got["context"], json!({}));

    // The same signal on PATCH, when a visitor types that email later.
    let other = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let res = app.patch_json(&format!("/api/session/{other}"), &json!({"email": "ana@example.com"})).await;
    assert_eq!(expect_json(res, 200).await["accountExists"], true);
    // An email nobody signed in with is not flagged.
    let res = app.post_json("/api/session", &json!({"orgId": "rafael-tatts", "email": "new@example.com"})).await;
    assert_eq!(expect_json(res, 201).await["accountExists"], false);
}

async fn signed_in_owner_gets_their_own_session_back(db: TestDb) {
    let app = clerk_app(db).await;
    let original = app.create_session(json!({"orgId": "rafael-tatts", "email": "ana@example.com"})).await;
    expect_json(link(&app, &original, "user_ana", Some(&token_for("user_ana"))).await, 200).await;
    let res =
        create_with_token(&app, &token_for("user_ana"), json!({"orgId": "rafael-tatts", "email": "ana@example.com"}))
            .await;
    let body = expect_json(res, 200).await;
    assert_eq!(body, json!({"sessionId": original, "returning": true, "accountExists": false}));
}

async fn another_signed_in_user_never_gets_someone_elses_session(db: TestDb) {
    let app = clerk_app(db).await;
    let original = app.create_session(json!({"orgId": "rafael-tatts", "email": "ana@example.com"})).await;
    expect_json(link(&app, &original, "user_ana", Some(&token_for("user_ana"))).await, 200).await;
    let res = create_with_token(
        &app,
        &token_for("user_mallory"),
        json!({"orgId": "rafael-tatts", "email": "ana@example.com"}),
    )
    .await;
    let body = expect_json(res, 201).await;
    assert_ne!(body["sessionId"], original.as_str());
    assert_eq!(body["returning"], false);
    // Mallory's new session is hers, linked at creation.
    let id: mentorfy_core::SessionId = body["sessionId"].as_str().expect("id").parse().expect("uuid");
    let stored = app.store.get_session(id).await.expect("get").expect("exists");
    assert_eq!(stored.clerk_user_id.as_deref(), Some("user_mallory"));
    // A bad token on create is refused rather than silently ignored.
    let res = create_with_token(&app, "not-a-token", json!({"orgId": "rafael-tatts"})).await;
    expect_error(res, 401, "unauthorized").await;
}
