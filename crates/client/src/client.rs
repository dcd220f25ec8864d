//! [`Client`]: the HTTP calls and their retry policy (`shared/specs/rate-limits-and-webhooks.md` §4). Retries
//! resend the very same bytes (so event ids are reused); the API key never appears in `Debug` output or logs.

use std::collections::VecDeque;
use std::time::Duration;

use rand::Rng as _;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ClientError};
use crate::types::{BatchEvent, BatchResponse, EventError, TrackRequest, TrackResponse};

/// Most events the server takes in one batch request.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Longest body of an error response kept in [`ClientError::Api`] when it is not the JSON error envelope.
const MAX_ERROR_TEXT: usize = 500;

/// Settings for a [`Client`]; start from [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    base_url: String,
    api_key: String,
    timeout: Duration,
    connect_timeout: Duration,
    max_retries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retry_after: Duration,
    user_agent: String,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Whole-request timeout (default 30 s). A timed-out request counts as a network error and is retried.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connection timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Retries after the first attempt (default 5); 0 sends each request once.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The first retry's backoff (default 500 ms); it doubles with each attempt, up to
    /// [`backoff_max`](Self::backoff_max), and is jittered between half and all of it.
    pub fn backoff_base(mut self, base: Duration) -> Self {
        self.backoff_base = base;
        self
    }

    /// Cap of the exponential backoff (default 30 s).
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.backoff_max = max;
        self
    }

    /// Cap on a server's `Retry-After` (default 120 s), so a misconfigured server cannot park the client.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The `User-Agent` header (default `mentorfy-client/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Builds the client. Fails on a base URL that is not `http(s)://…` or a key that cannot be a header.
    pub fn build(self) -> Result<Client, ClientError> {
        // reqwest is built without a default TLS provider; install ring once (ignored if one is installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = self.base_url.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base).map_err(|e| ClientError::Config(format!("base URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ClientError::Config("base URL must be http:// or https:// with a host".to_owned()));
        }
        let key = self.api_key.trim();
        if key.is_empty() {
            return Err(ClientError::Config("the API key is empty".to_owned()));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| ClientError::Config("the API key contains characters not allowed in a header".to_owned()))?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent.clone())
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            auth,
            max_retries: self.max_retries,
            backoff_base: self.backoff_base,
            backoff_max: self.backoff_max.max(self.backoff_base),
            max_retry_after: self.max_retry_after,
        })
    }
}

/// A client of Sensei's ingestion API. Cheap to clone (one connection pool); use one per process.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: HeaderValue,
    max_retries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retry_after: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base)
            .field("api_key", &"[redacted]")
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with default settings for the server at `base_url` (such as `http://localhost:8080`), sending
    /// `api_key` (`sk_sensei_…`) as a bearer token.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Result<Self, ClientError> {
        Self::builder(base_url, api_key).build()
    }

    /// Settings to adjust before [`ClientBuilder::build`].
    pub fn builder(base_url: impl Into<String>, api_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: api_key.into(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retries: 5,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            user_agent: concat!("mentorfy-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// `POST /api/v1/conversations/track`: appends messages to one conversation; answers after they are
    /// committed. Retried on network errors, 408, 429 and 5xx; any other error status is returned at once.
    pub async fn track(&self, request: &TrackRequest) -> Result<TrackResponse, ClientError> {
        let (_, _, body) = self.post("/api/v1/conversations/track", request).await?;
        decode(StatusCode::ACCEPTED, &body)
    }

    /// `POST /api/v1/ingest`: one batch request (at most 1,000 events, 3.5 MB), retried as a whole on network
    /// errors, 408, 429 and 5xx. The answer holds one verdict per event; events refused with 429 or 503 are *not*
    /// resent here (see [`Client::ingest_all`]).
    pub async fn ingest(&self, events: &[BatchEvent]) -> Result<BatchResponse, ClientError> {
        #[derive(Serialize)]
        struct Batch<'a> {
            batch: &'a [BatchEvent],
        }
        let (status, headers, body) = self.post("/api/v1/ingest", &Batch { batch: events }).await?;
        let mut response: BatchResponse = decode(status, &body)?;
        response.retry_after = retry_after(&headers).map(|d| d.min(self.max_retry_after));
        Ok(response)
    }

    /// Sends every event, in requests of at most 1,000, and returns the merged verdicts:
    /// - events refused with a per-event 429 or 503 are resent (the same ids, nothing else) after the response's
    ///   `Retry-After` plus backoff, up to the retry limit; those still refused then are in `errors`;
    /// - a whole-request 413 splits the request in halves, each sent on its own; a single event refused that way
    ///   is reported as a per-event 413;
    /// - per-event 400/413/422 are final and reported in `errors`.
    ///
    /// Any other whole-request failure (after its own retries) ends the call with that error; resending the same
    /// events later is safe, as the server dedupes by event id.
    pub async fn ingest_all(&self, events: &[BatchEvent]) -> Result<BatchResponse, ClientError> {
        let mut out = BatchResponse::default();
        let mut queue: VecDeque<(Vec<&BatchEvent>, u32)> =
            events.chunks(MAX_BATCH_EVENTS).map(|c| (c.iter().collect(), 0)).collect();
        while let Some((chunk, round)) = queue.pop_front() {
            let owned: Vec<BatchEvent> = chunk.iter().map(|e| (*e).clone()).collect();
            match self.ingest(&owned).await {
                Ok(res) => {
                    out.successes.extend(res.successes);
                    let mut again = Vec::new();
                    for err in res.errors {
                        let retry = err.is_retryable() && round < self.max_retries;
                        match chunk.iter().find(|e| Some(&e.id) == err.id.as_ref()) {
                            Some(event) if retry => again.push(*event),
                            _ => out.errors.push(err),
                        }
                    }
                    if !again.is_empty() {
                        let wait = res.retry_after.unwrap_or_default() + self.backoff(round);
                        tracing::debug!(
                            events = again.len(),
                            wait_ms = wait.as_millis() as u64,
                            "resending refused events"
                        );
                        tokio::time::sleep(wait).await;
                        queue.push_back((again, round + 1));
                    }
                }
                Err(ClientError::Api(e)) if e.status == 413 && chunk.len() > 1 => {
                    let half = chunk.len() / 2;
                    tracing::debug!(events = chunk.len(), "batch too large; halving");
                    let (a, b) = chunk.split_at(half);
                    // Front of the queue, in order: the halves go before anything queued later.
                    queue.push_front((b.to_vec(), round));
                    queue.push_front((a.to_vec(), round));
                }
                Err(ClientError::Api(e)) if e.status == 413 => {
                    let id = chunk.first().map(|event| event.id.clone());
                    out.errors.push(EventError { id, status: 413, message: e.message });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// POSTs `body` as JSON, retrying per the spec; returns a success status's headers and body, or the error.
    async fn post<T: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Encode(e.to_string()))?;
        let url = format!("{}{path}", self.base);
        // Stable across the retries of this request, for the server's logs.
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut attempt: u32 = 0;
        loop {
            let sent = self
                .http
                .post(&url)
                .header(AUTHORIZATION, self.auth.clone())
                .header(CONTENT_TYPE, "application/json")
                .header("x-request-id", &request_id)
                .body(bytes.clone())
                .send()
                .await;
            let err = match sent {
                Ok(res) => {
                    let status = res.status();
                    let headers = res.headers().clone();
                    match res.bytes().await {
                        Ok(body) if status.is_success() => return Ok((status, headers, body.to_vec())),
                        Ok(body) => api_error(status, &headers, &body, self.max_retry_after),
                        Err(e) => ClientError::Network(describe(&e)),
                    }
                }
                Err(e) => ClientError::Network(describe(&e)),
            };
            if !err.is_retryable() || attempt >= self.max_retries {
                return Err(err);
            }
            let floor = err.api().and_then(|e| e.retry_after).unwrap_or_default();
            let wait = floor + self.backoff(attempt);
            tracing::debug!(
                path,
                attempt = attempt + 1,
                status = err.status(),
                wait_ms = wait.as_millis() as u64,
                "retrying: {err}"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Exponential backoff for retry `attempt` (0-based), capped, with jitter between half and all of it.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.backoff_base.saturating_mul(1u32 << attempt.min(20)).min(self.backoff_max);
        let half = exp / 2;
        let jitter_ns = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::rng().random_range(0..=jitter_ns))
    }
}

fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::Decode { status: status.as_u16(), message: e.to_string() })
}

/// The error envelope `{"error":{"code","message","details"}}`, or what can be said about another body.
fn api_error(status: StatusCode, headers: &HeaderMap, body: &[u8], max_retry_after: Duration) -> ClientError {
    let retry_after = retry_after(headers).map(|d| d.min(max_retry_after));
    let envelope = serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("error").cloned());
    match envelope {
        Some(Value::Object(e)) => ClientError::Api(Box::new(ApiError {
            status: status.as_u16(),
            code: e.get("code").and_then(Value::as_str).unwrap_or("unknown").to_owned(),
            message: e.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
            details: e.get("details").cloned().unwrap_or(Value::Null),
            retry_after,
        })),
        _ => {
            let text = String::from_utf8_lossy(body);
            let mut message: String = text.chars().take(MAX_ERROR_TEXT).collect();
            if message.trim().is_empty() {
                message = status.canonical_reason().unwrap_or("error").to_owned();
            }
            ClientError::Api(Box::new(ApiError {
                status: status.as_u16(),
                code: format!("http_{}", status.as_u16()),
                message,
                details: Value::Null,
                retry_after,
            }))
        }
    }
}

/// `Retry-After` in seconds (the only form the server sends; an HTTP date is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// A network error in one line, without the URL's query (there is none) or any header.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut msg = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::retryable_status;

    #[test]
    fn retryable_statuses_follow_the_spec() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 413, 422] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let c = Client::builder("http://127.0.0.1:1", "sk_test")
            .backoff_base(Duration::from_millis(100))
            .backoff_max(Duration::from_secs(1))
            .build()
            .unwrap();
        for _ in 0..50 {
            let b0 = c.backoff(0);
            assert!(b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100), "{b0:?}");
            let b3 = c.backoff(3);
            assert!(b3 >= Duration::from_millis(400) && b3 <= Duration::from_millis(800), "{b3:?}");
            let b30 = c.backoff(30);
            assert!(b30 >= Duration::from_millis(500) && b30 <= Duration::from_secs(1), "{b30:?}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let b = Client::builder("http://localhost:8080/", "sk_sensei_secret_value");
        assert!(!format!("{b:?}").contains("secret_value"));
        let c = b.build().unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret_value") && shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn bad_configuration_is_refused() {
        assert!(matches!(Client::new("localhost:8080", "k"), Err(ClientError::Config(_))));
        assert!(matches!(Client::new("ftp://h", "k"), Err(ClientError::Config(_))));
        assert!(matches!(Client::new("http://h", " "), Err(ClientError::Config(_))));
        assert!(matches!(Client::new("http://h", "a\nb"), Err(ClientError::Config(_))));
    }
}
