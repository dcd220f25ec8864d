//! A fake Slack incoming webhook for tests: `POST /services/{T}/{B}/{secret}` with a JSON body answers `ok`
//! (200, text/plain) like Slack; a body that is not a JSON object with `text` or `blocks` answers 400
//! `invalid_payload`. Records every request, and fails on demand (the next N requests answer 429 with
//! `Retry-After`, 500, or 404 `no_service`). Never used by production code.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

/// The path of the webhook the fake serves; any `/services/...` path is accepted.
pub const WEBHOOK_PATH: &str = "/services/T0000TEST/B0000TEST/xoxTestSecret123";

/// One request the fake received, whatever it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackRequest {
    pub path: String,
    /// Every request header, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Null` when absent or not JSON).
    pub body: Value,
    /// The status the fake answered.
    pub status: u16,
}

/// An injected answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlackFailure {
    /// 429 `rate_limited` with `Retry-After: secs`.
    RateLimited { retry_after: u64 },
    /// 500 `internal_error`.
    ServerError,
    /// 404 `no_service` (the webhook was revoked).
    NoService,
}

#[derive(Default)]
struct Shared {
    requests: Vec<SlackRequest>,
    failures: VecDeque<SlackFailure>,
}

/// The fake server; stops when dropped.
pub struct FakeSlack {
    url: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeSlack {
    /// Starts on `127.0.0.1:0`.
    #[allow(clippy::expect_used)] // a test fixture that cannot bind loopback cannot do anything useful
    pub async fn start() -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Slack");
        let addr = listener.local_addr().expect("local address of the fake Slack");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new().route("/services/{*rest}", post(handle)).with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSlack { url: format!("http://{addr}"), shared, server }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The full webhook URL, `http://127.0.0.1:PORT/services/T…/B…/secret`.
    pub fn webhook_url(&self) -> String {
        format!("{}{WEBHOOK_PATH}", self.url)
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `n` requests get `failure` (recorded, otherwise ignored).
    pub fn fail_next(&self, n: usize, failure: SlackFailure) {
        let mut shared = self.lock();
        for _ in 0..n {
            shared.failures.push_back(failure);
        }
    }

    /// Every request, in arrival order.
    pub fn requests(&self) -> Vec<SlackRequest> {
        self.lock().requests.clone()
    }

    /// The bodies of the requests answered `ok`.
    pub fn delivered(&self) -> Vec<Value> {
        self.lock().requests.iter().filter(|r| r.status == 200).map(|r| r.body.clone()).collect()
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

async fn handle(State(shared): State<Arc<Mutex<Shared>>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let response = match s.failures.pop_front() {
        Some(SlackFailure::RateLimited { retry_after }) => {
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            r
        }
        Some(SlackFailure::ServerError) => text(StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        Some(SlackFailure::NoService) => text(StatusCode::NOT_FOUND, "no_service"),
        None if body.get("text").is_some() || body.get("blocks").is_some() => text(StatusCode::OK, "ok"),
        None => text(StatusCode::BAD_REQUEST, "invalid_payload"),
    };
    s.requests.push(SlackRequest {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body,
        status: response.status().as_u16(),
    });
    response
}
