//! Bad input gets the one error envelope with the right status, never a 500, and stores nothing.

use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error};
use serde_json::json;

both_backends!(
    malformed_json_is_400,
    wrong_types_unknown_and_missing_fields_are_400_naming_the_field,
    non_json_bodies_are_415,
    bodies_over_256_kib_are_413,
    unknown_routes_are_404_and_wrong_methods_405,
    no_client_input_produces_a_500,
);

async fn send_raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.expect("request")
}

async fn malformed_json_is_400(db: TestDb) {
    let app = TestApp::spawn(db).await;
    for body in [&b"{\"orgId\": "[..], b"{orgId: 1}", b"", b"{\"orgId\":\"rafael-tatts\"} trailing"] {
        let res = send_raw(&app, reqwest::Method::POST, "/api/session", Some("application/json"), body.to_vec()).await;
        expect_error(res, 400, "malformed_json").await;
    }
}

async fn wrong_types_unknown_and_missing_fields_are_400_naming_the_field(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let cases = [
        ("/api/session", json!({"orgId": "rafael-tatts", "email": 5}), "email"),
        ("/api/session", json!({"orgId": "rafael-tatts", "nmae": "typo"}), "nmae"),
        ("/api/session", json!({"email": "a@example.com"}), "orgId"),
        ("/api/session", json!({"orgId": ["rafael-tatts"]}), "orgId"),
    ];
    for (path, body, field) in cases {
        let err = expect_error(app.post_json(path, &body).await, 400, "invalid_field").await;
        assert_eq!(err["details"]["field"], field, "{body}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| m.contains(field)), "{err}");
    }
    let path = format!("/api/session/{id}");
    let err =
        expect_error(app.patch_json(&path, &json!({"context": "not an object"})).await, 400, "invalid_field").await;
    assert_eq!(err["details"]["field"], "context");
    let err = expect_error(app.patch_json(&path, &json!({"name": {"first": "A"}})).await, 400, "invalid_field").await;
    assert_eq!(err["details"]["field"], "name");
    let err = expect_error(app.patch_json(&path, &json!([1, 2])).await, 400, "invalid_field").await;
    assert_eq!(err["details"]["field"], serde_json::Value::Null);
}

async fn non_json_bodies_are_415(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let body = br#"{"orgId":"rafael-tatts"}"#.to_vec();
    expect_error(
        send_raw(&app, reqwest::Method::POST, "/api/session", Some("text/plain"), body.clone()).await,
        415,
        "unsupported_media_type",
    )
    .await;
    expect_error(
        send_raw(&app, reqwest::Method::POST, "/api/session", None, body.clone()).await,
        415,
        "unsupported_media_type",
    )
    .await;
    let ok = send_raw(&app, reqwest::Method::POST, "/api/session", Some("application/json; charset=utf-8"), body).await;
    assert_eq!(ok.status().as_u16(), 201);
}

async fn bodies_over_256_kib_are_413(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let big = json!({"context": {"blob": "x".repeat(256 * 1024)}});
    let err = expect_error(app.patch_json(&format!("/api/session/{id}"), &big).await, 413, "payload_too_large").await;
    assert_eq!(err["details"]["limit_bytes"], 256 * 1024);
    let got = app.get(&format!("/api/session/{id}")).await.json::<serde_json::Value>().await.expect("json");
    assert_eq!(got["context"], json!({}));
}

async fn unknown_routes_are_404_and_wrong_methods_405(db: TestDb) {
    let app = TestApp::spawn(db).await;
    expect_error(app.get("/api/nothing-here").await, 404, "not_found").await;
    let res = send_raw(&app, reqwest::Method::DELETE, "/api/session", None, vec![]).await;
    expect_error(res, 405, "method_not_allowed").await;
    let res =
        send_raw(&app, reqwest::Method::PUT, &format!("/api/session/{}", uuid::Uuid::new_v4()), None, vec![]).await;
    expect_error(res, 405, "method_not_allowed").await;
}

/// A small deterministic fuzz: odd bodies, types and paths must all get a 4xx envelope.
async fn no_client_input_produces_a_500(db: TestDb) {
    let pem = mentorfy_fakes::clerk::ClerkKeys::primary().public_pem().to_owned();
    let app = TestApp::spawn_with(db, &[("CLERK_JWT_KEY", &pem)]).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let values = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1e308),
        json!(""),
        json!("\u{0000}"),
        json!("🐉".repeat(300)),
        json!([]),
        json!({}),
        json!({"a": {"b": {"c": [null, {"d": null}]}}}),
        json!("x".repeat(5000)),
    ];
    let fields = ["orgId", "email", "phone", "name", "context", "clerkUserId", "__proto__"];
    let paths = [
        "/api/session".to_owned(),
        format!("/api/session/{id}"),
        format!("/api/session/{id}/complete"),
        format!("/api/session/{id}/link"),
    ];
    for path in &paths {
        for field in fields {
            for value in &values {
                let body = json!({ field: value });
                for method in [reqwest::Method::POST, reqwest::Method::PATCH] {
                    let res =
                        app.client.request(method.clone(), app.url(path)).json(&body).send().await.expect("request");
                    let status = res.status().as_u16();
                    assert!(
                        status < 500,
                        "{method} {path} {body} gave {status}: {}",
                        res.text().await.unwrap_or_default()
                    );
                }
            }
        }
    }
    // Deep nesting: a bare array is refused as "not an object"; inside an object it hits the parser's
    // recursion limit. Either way a 400, and the server stays up.
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let res = send_raw(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/session/{id}"),
        Some("application/json"),
        deep_array.into_bytes(),
    )
    .await;
    expect_error(res, 400, "invalid_field").await;
    let deep_object = format!("{{\"context\":{}1{}}}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let res = send_raw(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/session/{id}"),
        Some("application/json"),
        deep_object.into_bytes(),
    )
    .await;
    expect_error(res, 400, "malformed_json").await;
    let res = send_raw(
        &app,
        reqwest::Method::POST,
        "/api/session",
        Some("application/json"),
        br#"["rafael-tatts"]"#.to_vec(),
    )
    .await;
    expect_error(res, 400, "invalid_field").await;
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
}
