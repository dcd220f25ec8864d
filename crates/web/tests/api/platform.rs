//! Probes, request ids, CORS, the OpenAPI document and docs page, and graceful shutdown.

use std::time::Duration;

use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

both_backends!(
    healthz_is_alive_and_readyz_follows_the_database,
    every_response_carries_a_request_id,
    cors_allows_configured_origins_only,
    openapi_document_and_docs_page_are_served,
    shutdown_finishes_in_flight_requests,
);

async fn healthz_is_alive_and_readyz_follows_the_database(db: TestDb) {
    let app = TestApp::spawn(db).await;
    assert_eq!(expect_json(app.get("/healthz").await, 200).await, json!({"status": "ok"}));
    assert_eq!(expect_json(app.get("/readyz").await, 200).await, json!({"status": "ready"}));
    app.store.close().await;
    expect_error(app.get("/readyz").await, 503, "not_ready").await;
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200, "liveness does not depend on the database");
}

async fn every_response_carries_a_request_id(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id_of =
        |res: &reqwest::Response| res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let a = id_of(&app.get("/healthz").await).expect("generated id");
    let b = id_of(&app.get("/api/nope").await).expect("id on errors too");
    assert_ne!(a, b);
    uuid::Uuid::parse_str(&a).expect("generated ids are UUIDs");
    let res = app.client.get(app.url("/healthz")).header("x-request-id", "client-123").send().await.expect("request");
    assert_eq!(id_of(&res).as_deref(), Some("client-123"), "a sane client id is kept");
    let long = "x".repeat(500);
    let res = app.client.get(app.url("/healthz")).header("x-request-id", &long).send().await.expect("request");
    let replaced = id_of(&res).expect("id");
    assert_ne!(replaced, long);
    uuid::Uuid::parse_str(&replaced).expect("an unusable client id is replaced");
}

async fn cors_allows_configured_origins_only(db: TestDb) {
    let app = TestApp::spawn_with(db, &[("MENTORFY_CORS_ORIGINS", "https://app.example.com")]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/session"))
            .header("origin", origin)
            .header("access-control-request-method", "PATCH")
            .header("access-control-request-headers", "content-type,authorization")
            .send()
    };
    let ok = preflight("https://app.example.com").await.expect("preflight");
    assert_eq!(
        ok.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("https://app.example.com")
    );
    let methods =
        ok.headers().get("access-control-allow-methods").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(methods.contains("PATCH"), "{methods}");
    let refused = preflight("https://evil.example").await.expect("preflight");
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    let res =
        app.client.get(app.url("/healthz")).header("origin", "https://app.example.com").send().await.expect("get");
    let exposed =
        res.headers().get("access-control-expose-headers").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

async fn openapi_document_and_docs_page_are_served(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let doc = expect_json(app.get("/openapi.json").await, 200).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    for path in [
        "/api/session",
        "/api/session/{id}",
        "/api/session/{id}/complete",
        "/api/session/{id}/link",
        "/healthz",
        "/readyz",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    assert!(doc["paths"]["/api/session/{id}"].get("patch").is_some());
    assert!(doc["components"]["schemas"].get("ErrorEnvelope").is_some());
    assert!(doc["components"]["securitySchemes"].get("clerk").is_some());

    let mut res = app.get("/docs").await;
    if res.status().is_redirection() {
        let location = res.headers().get("location").and_then(|v| v.to_str().ok()).expect("location").to_owned();
        let target = if location.starts_with('/') { location } else { format!("/docs/{location}") };
        res = app.get(&target).await;
    }
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "a docs page");
    assert!(!html.contains("cdn.") && !html.contains("unpkg.com"), "no CDN: it must work offline");
    let init = app.get("/docs/swagger-initializer.js").await.text().await.expect("js");
    assert!(init.contains("/openapi.json"), "{init}");
}

async fn shutdown_finishes_in_flight_requests(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let body = json!({"context": {"sent_during_shutdown": true}}).to_string();
    let (head, tail) = body.split_at(10);
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    let request = format!(
        "PATCH /api/session/{id} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{head}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write head");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let store = app.store.clone();
    let addr = app.addr;
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The request that was already in flight is finished …
    stream.write_all(tail.as_bytes()).await.expect("write tail");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    stopping.await.expect("join").expect("serve returned cleanly");
    // … and new connections are refused.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed");
    let _ = store;
}
