//! The client against a local axum server that imitates the ingestion contract: each test scripts the server's
//! answers and then asserts on both sides (what the client returned, and what the server received and when).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mentorfy_client::{BatchEvent, Client, ClientError, Role, TrackMessage, TrackRequest};
use serde_json::{Value, json};

/// One request as the fake server saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    at: Instant,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn event_ids(&self) -> Vec<String> {
        self.json()["batch"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
    }
}

/// `(call number, request body) -> (status, headers, body)`.
type Script = dyn Fn(usize, &Value) -> (u16, Vec<(&'static str, String)>, Value) + Send + Sync;

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Script>,
}

async fn handle(State(fake): State<Fake>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = {
        let mut seen = fake.seen.lock().unwrap();
        seen.push(Seen { path: uri.path().to_owned(), at: Instant::now(), headers, body: body.to_vec() });
        seen.len() - 1
    };
    let (status, extra, reply) = (fake.script)(n, &value);
    let mut res = (StatusCode::from_u16(status).unwrap(), axum::Json(reply)).into_response();
    for (name, v) in extra {
        res.headers_mut().insert(name, v.parse().unwrap());
    }
    res
}

/// Starts the fake on 127.0.0.1:0; returns its base URL and the log of requests.
async fn start(
    script: impl Fn(usize, &Value) -> (u16, Vec<(&'static str, String)>, Value) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let fake = Fake { seen: Arc::default(), script: Arc::new(script) };
    let seen = fake.seen.clone();
    let app = Router::new()
        .route("/api/v1/ingest", post(handle))
        .route("/api/v1/conversations/track", post(handle))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

const KEY: &str = "sk_sensei_test_0123456789abcdef";

fn client(base: &str) -> Client {
    Client::builder(base, KEY).max_retries(3).backoff_base(Duration::from_millis(5)).build().unwrap()
}

fn envelope(code: &str, message: &str, details: Value) -> Value {
    json!({"error": {"code": code, "message": message, "details": details}})
}

fn track(conversation: &str) -> TrackRequest {
    let at = time::macros::datetime!(2026-11-29 10:00 UTC);
    TrackRequest::new(
        conversation,
        vec![
            TrackMessage::new(Role::User, "How do I export my data?", at).with_id("m1"),
            TrackMessage::new(Role::Assistant, "Settings, then Export.", at + time::Duration::seconds(2)).with_id("m2"),
        ],
    )
}

fn events(n: usize) -> Vec<BatchEvent> {
    (0..n).map(|i| BatchEvent::track(track(&format!("c{i}")))).collect()
}

/// 207 with every event of the request stored.
fn all_stored(body: &Value) -> Value {
    let ids: Vec<Value> =
        body["batch"].as_array().unwrap().iter().map(|e| json!({"id": e["id"], "status": 201})).collect();
    json!({"successes": ids, "errors": []})
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_with_the_same_body_and_event_ids() {
    let (base, seen) = start(|n, body| {
        if n == 0 {
            (429, vec![("retry-after", "1".into())], envelope("rate_limited", "slow down", json!({"limit": 10})))
        } else {
            (207, vec![], all_stored(body))
        }
    })
    .await;
    let batch = events(3);
    let res = client(&base).ingest(&batch).await.unwrap();
    assert_eq!(res.stored(), 3);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    assert!(waited >= Duration::from_secs(1), "Retry-After is the minimum delay; waited {waited:?}");
    assert_eq!(seen[0].body, seen[1].body, "a retry resends the same bytes");
    let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
    assert_eq!(seen[1].event_ids(), ids);
    assert_eq!(seen[0].headers.get("x-request-id"), seen[1].headers.get("x-request-id"), "stable request id");
    assert_eq!(seen[0].headers["authorization"].to_str().unwrap(), format!("Bearer {KEY}"));
    assert_eq!(seen[0].path, "/api/v1/ingest");
}

#[tokio::test]
async fn track_retries_a_503_and_returns_the_counts() {
    let (base, seen) = start(|n, _| {
        if n < 2 {
            (503, vec![("retry-after", "0".into())], envelope("unavailable", "storage unavailable", Value::Null))
        } else {
            (202, vec![], json!({"accepted": 1, "duplicates": 1}))
        }
    })
    .await;
    let res = client(&base).track(&track("c1")).await.unwrap();
    assert_eq!((res.accepted, res.duplicates), (1, 1));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].path, "/api/v1/conversations/track");
    assert_eq!(seen[2].json()["conversationId"], "c1");
    assert_eq!(seen[2].json()["messages"][1]["id"], "m2");
}

#[tokio::test]
async fn a_per_event_503_resends_only_that_event() {
    let (base, seen) = start(|n, body| {
        let ids: Vec<&str> = body["batch"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
        if n == 0 {
            let successes: Vec<Value> = ids
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, id)| json!({"id": id, "status": 201}))
                .collect();
            let errors = vec![
                json!({"id": ids[1], "status": 503, "message": "storage unavailable, retry"}),
                json!({"id": ids[3], "status": 400, "message": "body.messages[0].role: bad"}),
            ];
            let successes: Vec<Value> = successes.into_iter().filter(|s| s["id"] != ids[3]).collect();
            (207, vec![("retry-after", "0".into())], json!({"successes": successes, "errors": errors}))
        } else {
            (207, vec![], all_stored(body))
        }
    })
    .await;
    let batch = events(4);
    let res = client(&base).ingest_all(&batch).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one resend, for the 503 event only");
    assert_eq!(seen[1].event_ids(), vec![batch[1].id.clone()]);
    assert_eq!(seen[1].json()["batch"][0], seen[0].json()["batch"][1], "the event is resent unchanged");
    assert_eq!(res.stored(), 3);
    assert_eq!(res.errors.len(), 1, "{res:?}");
    assert_eq!((res.errors[0].id.as_deref(), res.errors[0].status), (Some(batch[3].id.as_str()), 400));
}

#[tokio::test]
async fn a_whole_request_413_halves_the_batch_until_it_fits() {
    let (base, seen) = start(|_, body| {
        if body["batch"].as_array().unwrap().len() > 2 {
            let details = json!({"max_bytes": 3_500_000, "max_events": 2});
            (413, vec![], envelope("payload_too_large", "batch too large", details))
        } else {
            (207, vec![], all_stored(body))
        }
    })
    .await;
    let batch = events(8);
    let res = client(&base).ingest_all(&batch).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let sizes: Vec<usize> = seen.iter().map(|s| s.event_ids().len()).collect();
    assert_eq!(sizes, vec![8, 4, 2, 2, 4, 2, 2]);
    let mut stored: Vec<String> = res.successes.iter().map(|s| s.id.clone()).collect();
    let mut want: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
    stored.sort();
    want.sort();
    assert_eq!(stored, want, "every event stored exactly once");
    assert!(res.errors.is_empty());
}

#[tokio::test]
async fn a_400_is_not_retried_and_its_envelope_is_decoded() {
    let (base, seen) = start(|_, _| {
        (
            400,
            vec![],
            envelope("invalid_request", "conversationId: must not be empty", json!({"field": "conversationId"})),
        )
    })
    .await;
    let err = client(&base).track(&track("")).await.unwrap_err();
    assert_eq!(seen.lock().unwrap().len(), 1, "4xx other than 408/429 is never retried");
    let api = err.api().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(api.status, 400);
    assert_eq!(api.code, "invalid_request");
    assert_eq!(api.message, "conversationId: must not be empty");
    assert_eq!(api.details, json!({"field": "conversationId"}));
    assert_eq!(api.retry_after, None);
    assert!(!err.is_retryable());
    assert_eq!(err.code(), Some("invalid_request"));
    assert!(!err.to_string().contains(KEY));
}

#[tokio::test]
async fn a_401_stops_ingest_all_at_once() {
    let (base, seen) = start(|_, _| (401, vec![], envelope("unauthorized", "invalid API key", Value::Null))).await;
    let err = client(&base).ingest_all(&events(2)).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn retries_stop_after_the_limit_with_the_last_error() {
    let (base, seen) = start(|_, _| (503, vec![], envelope("unavailable", "storage unavailable", Value::Null))).await;
    let err = client(&base).ingest(&events(1)).await.unwrap_err();
    assert_eq!(seen.lock().unwrap().len(), 4, "the first attempt and three retries");
    assert_eq!((err.status(), err.code()), (Some(503), Some("unavailable")));
}

#[tokio::test]
async fn a_body_that_is_not_the_envelope_still_gives_a_useful_error() {
    let (base, _) = start(|_, _| (404, vec![], json!("no such route"))).await;
    let err = client(&base).ingest(&events(1)).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("http_404")));
}

#[tokio::test]
async fn an_unreachable_server_is_a_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = Client::builder(format!("http://{addr}"), KEY)
        .max_retries(1)
        .backoff_base(Duration::from_millis(1))
        .build()
        .unwrap();
    let err = c.track(&track("c1")).await.unwrap_err();
    assert!(matches!(err, ClientError::Network(_)), "{err:?}");
    assert!(err.is_retryable());
}
