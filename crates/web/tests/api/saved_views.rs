//! Saved views over HTTP (issue 7) on both backends: create, list per page, rename and refilter idempotently,
//! delete; filters of the conversations page are checked like a conversations query; bad payloads store nothing.

use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::{Value, json};

both_backends!(saved_views_round_trip, bad_saved_views_are_refused);

async fn send(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn saved_views_round_trip(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    let post = |body: Value| send(&app, &token, reqwest::Method::POST, "/api/v1/saved-views", Some(body));
    let unhealthy = expect_json(
        post(json!({"name": " Unhealthy this week ", "page": "conversations", "filters": {"range": "7d", "health_max": 40, "has_failures": true}})).await,
        201,
    )
    .await;
    assert_eq!(unhealthy["name"], "Unhealthy this week", "trimmed");
    assert!(unhealthy["createdBy"].as_str().unwrap().starts_with("admin:"));
    expect_json(
        post(json!({"name": "Open escalations", "page": "failures", "filters": {"type": "escalation_request"}})).await,
        201,
    )
    .await;
    let id = unhealthy["id"].as_str().unwrap();

    let all = expect_json(send(&app, &token, reqwest::Method::GET, "/api/v1/saved-views", None).await, 200).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    let conv = expect_json(
        send(&app, &token, reqwest::Method::GET, "/api/v1/saved-views?page=conversations", None).await,
        200,
    )
    .await;
    assert_eq!(conv["data"].as_array().unwrap().len(), 1);
    assert_eq!(conv["data"][0]["filters"], json!({"range": "7d", "health_max": 40, "has_failures": true}));

    let path = format!("/api/v1/saved-views/{id}");
    let update = json!({"name": "Unhealthy, staging", "filters": {"range": "7d", "environment": "staging"}});
    let first = expect_json(send(&app, &token, reqwest::Method::PUT, &path, Some(update.clone())).await, 200).await;
    let second = expect_json(send(&app, &token, reqwest::Method::PUT, &path, Some(update)).await, 200).await;
    assert_eq!((first["name"].clone(), first["filters"].clone()), (second["name"].clone(), second["filters"].clone()));
    assert_eq!(second["filters"], json!({"range": "7d", "environment": "staging"}));
    assert_eq!(second["createdAt"], unhealthy["createdAt"]);

    assert_eq!(send(&app, &token, reqwest::Method::DELETE, &path, None).await.status(), 204);
    expect_error(send(&app, &token, reqwest::Method::DELETE, &path, None).await, 404, "not_found").await;
    expect_error(send(&app, &token, reqwest::Method::PUT, &path, Some(json!({"name": "x"}))).await, 404, "not_found")
        .await;
    let left = expect_json(send(&app, &token, reqwest::Method::GET, "/api/v1/saved-views", None).await, 200).await;
    assert_eq!(left["data"].as_array().unwrap().len(), 1);
    app.stop().await.unwrap();
}

async fn bad_saved_views_are_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    for (body, field) in [
        (json!({"name": "", "page": "conversations"}), "name"),
        (json!({"name": "x".repeat(101), "page": "conversations"}), "name"),
        (json!({"name": "v", "page": "settings"}), "page"),
        (json!({"name": "v", "page": "conversations", "filters": [1]}), "filters"),
        (json!({"name": "v", "page": "conversations", "filters": {"range": {"nested": 1}}}), "filters.range"),
        (json!({"name": "v", "page": "conversations", "filters": {"range": "1y"}}), "filters.range"),
        (json!({"name": "v", "page": "conversations", "filters": {"colour": "blue"}}), "filters.colour"),
        (json!({"name": "v", "page": "conversations", "filters": {"cursor": "abc"}}), "filters.cursor"),
        (json!({"name": "v", "page": "failures", "filters": {"q": "y".repeat(5000)}}), "filters"),
    ] {
        let e = expect_error(
            send(&app, &token, reqwest::Method::POST, "/api/v1/saved-views", Some(body.clone())).await,
            400,
            "invalid_field",
        )
        .await;
        assert_eq!(e["details"]["field"], field, "{body}: {e}");
    }
    let res = send(
        &app,
        &token,
        reqwest::Method::POST,
        "/api/v1/saved-views",
        Some(json!({"name": "v", "page": "overview", "owner": "me"})),
    )
    .await;
    assert_eq!(res.status(), 400);
    let e = expect_error(
        send(&app, &token, reqwest::Method::GET, "/api/v1/saved-views?page=nope", None).await,
        400,
        "invalid_query",
    )
    .await;
    assert_eq!(e["details"]["field"], "page");
    let all = expect_json(send(&app, &token, reqwest::Method::GET, "/api/v1/saved-views", None).await, 200).await;
    assert!(all["data"].as_array().unwrap().is_empty(), "nothing was stored");
    expect_error(app.get("/api/v1/saved-views").await, 401, "unauthorized").await;
    app.stop().await.unwrap();
}
