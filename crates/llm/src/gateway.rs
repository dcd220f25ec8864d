//! [`Gateway`]: sends a [`ChatRequest`] to a configured provider over HTTP, streamed or not, retrying failures that
//! happen before anything reached the caller, under connect, first-token and total deadlines.
//! It logs request ids and rate-limit headers at debug and never logs or returns an API key.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use crate::error::{LlmError, TimeoutPhase, http_error};
use crate::retry::{self, RetryHint};
use crate::settings::{AnthropicAuth, GatewaySettings, ProviderSettings};
use crate::stream::{Decoder, LlmStream, Pipeline, is_content};
use crate::types::{ChatRequest, Completion, ProviderKind, StreamEvent};
use crate::{anthropic, openai};

/// The LLM gateway. Cheap to clone: clones share one HTTP connection pool.
#[derive(Clone, Debug)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: GatewaySettings,
    client: reqwest::Client,
    anthropic: Option<Endpoint>,
    openai: Option<Endpoint>,
}

/// A provider, ready to be called: its settings, full URL and fixed headers (the key marked sensitive).
#[derive(Debug)]
struct Endpoint {
    settings: ProviderSettings,
    url: reqwest::Url,
    headers: HeaderMap,
    /// `api.openai.com` itself, which wants `max_completion_tokens`.
    official_openai: bool,
}

/// A failed attempt and what its response said about retrying.
struct AttemptError {
    error: LlmError,
    hint: RetryHint,
}

impl From<LlmError> for AttemptError {
    fn from(error: LlmError) -> Self {
        AttemptError { error, hint: RetryHint::default() }
    }
}

impl Endpoint {
    fn new(kind: ProviderKind, settings: &ProviderSettings) -> Result<Self, LlmError> {
        let invalid = |what: &str| LlmError::Transport(format!("provider {:?}: {what}", settings.name));
        if settings.kind != kind {
            return Err(invalid(&format!("configured as {} in the {kind} slot", settings.kind)));
        }
        let base = settings.base_url.trim().trim_end_matches('/');
        let path = match kind {
            ProviderKind::Anthropic => "/v1/messages",
            ProviderKind::OpenAi => "/chat/completions",
        };
        let url = reqwest::Url::parse(&format!("{base}{path}"))
            .map_err(|e| invalid(&format!("base URL {:?} is not a URL: {e}", settings.base_url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(&format!("base URL {:?} is not http(s)", settings.base_url)));
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let secret = |value: String| {
            let mut value =
                HeaderValue::try_from(value).map_err(|_| invalid("the API key is not a valid header value"))?;
            value.set_sensitive(true);
            Ok::<_, LlmError>(value)
        };
        let key = settings.api_key.as_deref().filter(|k| !k.is_empty());
        match kind {
            ProviderKind::Anthropic => {
                let version = HeaderValue::try_from(settings.anthropic_version.as_str())
                    .map_err(|_| invalid("anthropic_version is not a valid header value"))?;
                headers.insert(HeaderName::from_static("anthropic-version"), version);
                match (key, settings.anthropic_auth) {
                    (Some(key), AnthropicAuth::XApiKey) => {
                        headers.insert(HeaderName::from_static("x-api-key"), secret(key.to_owned())?);
                    }
                    (Some(key), AnthropicAuth::Bearer) => {
                        headers.insert(AUTHORIZATION, secret(format!("Bearer {key}"))?);
                    }
                    (None, _) => {}
                }
            }
            ProviderKind::OpenAi => {
                if let Some(key) = key {
                    headers.insert(AUTHORIZATION, secret(format!("Bearer {key}"))?);
                }
            }
        }
        let official_openai = kind == ProviderKind::OpenAi && url.host_str() == Some("api.openai.com");
        Ok(Endpoint { settings: settings.clone(), url, headers, official_openai })
    }

    fn kind(&self) -> ProviderKind {
        self.settings.kind
    }

    fn body(&self, request: &ChatRequest, stream: bool) -> Result<Bytes, LlmError> {
        let body = match self.kind() {
            ProviderKind::Anthropic => anthropic::request_body(request, stream),
            ProviderKind::OpenAi => {
                openai::request_body(request, stream, self.settings.include_usage, self.official_openai)
            }
        };
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .map_err(|e| LlmError::Protocol(format!("cannot serialise the request: {e}")))
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        match self.kind() {
            ProviderKind::Anthropic => Box::new(anthropic::StreamDecoder::default()),
            ProviderKind::OpenAi => Box::new(openai::StreamDecoder::default()),
        }
    }

    fn parse_response(&self, body: &[u8]) -> Result<Completion, LlmError> {
        match self.kind() {
            ProviderKind::Anthropic => anthropic::parse_response(body),
            ProviderKind::OpenAi => openai::parse_response(body),
        }
    }
}

/// The request id a provider put on its response.
fn request_id(headers: &HeaderMap) -> Option<String> {
    ["request-id", "x-request-id"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()).map(str::to_owned))
}

/// Logs the request id and rate-limit headers of a response, at debug.
fn log_response(endpoint: &Endpoint, status: u16, headers: &HeaderMap) {
    tracing::debug!(
        provider = %endpoint.settings.name,
        status,
        request_id = %request_id(headers).as_deref().unwrap_or("-"),
        rate_limits = %RateLimitHeaders(headers),
        "LLM provider answered"
    );
}

/// The rate-limit headers of a response as `name=value` pairs, formatted only if the log event is recorded.
struct RateLimitHeaders<'a>(&'a HeaderMap);

impl std::fmt::Display for RateLimitHeaders<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (name, value) in self.0 {
            let name = name.as_str();
            if name.starts_with("anthropic-ratelimit-") || name.starts_with("x-ratelimit-") || name == "retry-after" {
                if !first {
                    f.write_str(" ")?;
                }
                first = false;
                write!(f, "{name}={}", value.to_str().unwrap_or("?"))?;
            }
        }
        Ok(())
    }
}

/// A reqwest failure as our error. The client has no overall timeout, so a timeout is the connect timeout.
fn transport_error(e: &reqwest::Error) -> LlmError {
    if e.is_timeout() {
        return LlmError::Timeout(TimeoutPhase::Connect);
    }
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    LlmError::Transport(message)
}

impl Gateway {
    /// Builds the gateway and its HTTP client (connect timeout set, no overall timeout: deadlines are per call).
    /// Installs rustls' `ring` crypto provider as the process default if none is installed yet (reqwest is built
    /// without one and would panic). Fails on a provider whose settings cannot work (wrong slot, bad URL, a key
    /// that is not a header value) or when the HTTP client cannot be built.
    pub fn new(settings: GatewaySettings) -> Result<Gateway, LlmError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: a provider is installed either way.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let anthropic = settings.anthropic.as_ref().map(|s| Endpoint::new(ProviderKind::Anthropic, s)).transpose()?;
        let openai = settings.openai.as_ref().map(|s| Endpoint::new(ProviderKind::OpenAi, s)).transpose()?;
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| LlmError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Gateway { inner: Arc::new(Inner { settings, client, anthropic, openai }) })
    }

    /// The settings of a configured provider.
    pub fn provider(&self, kind: ProviderKind) -> Option<&ProviderSettings> {
        self.endpoint(kind).map(|e| &e.settings)
    }

    /// The settings the gateway was built with.
    pub fn settings(&self) -> &GatewaySettings {
        &self.inner.settings
    }

    fn endpoint(&self, kind: ProviderKind) -> Option<&Endpoint> {
        match kind {
            ProviderKind::Anthropic => self.inner.anthropic.as_ref(),
            ProviderKind::OpenAi => self.inner.openai.as_ref(),
        }
    }

    /// Starts a streamed call. Resolves once its first content event (or `Finish`, for an empty answer) has
    /// arrived, retrying until then; the stream yields the block-start events that preceded it, that event, and
    /// the rest. Failures after that are yielded by the stream and never retried.
    pub async fn stream(&self, kind: ProviderKind, request: &ChatRequest) -> Result<LlmStream, LlmError> {
        let started = Instant::now();
        let deadline = started + self.inner.settings.total_timeout;
        let endpoint = self.endpoint(kind).ok_or(LlmError::NotConfigured { provider: kind })?;
        let body = endpoint.body(request, true)?;
        tracing::debug!(provider = %endpoint.settings.name, model = %request.model, stream = true, "LLM call");
        let attempt = || self.stream_attempt(endpoint, body.clone());
        let ((pipeline, prefix), attempts) = self.with_retries(endpoint, deadline, attempt).await?;
        Ok(LlmStream::new(pipeline, prefix, deadline, attempts, started.elapsed()))
    }

    /// A non-streamed call (`"stream": false`), with the same retries and total deadline. The first-token deadline
    /// does not apply (nothing arrives before the whole answer): only the connect and total ones do.
    pub async fn complete(&self, kind: ProviderKind, request: &ChatRequest) -> Result<Completion, LlmError> {
        let deadline = Instant::now() + self.inner.settings.total_timeout;
        let endpoint = self.endpoint(kind).ok_or(LlmError::NotConfigured { provider: kind })?;
        let body = endpoint.body(request, false)?;
        tracing::debug!(provider = %endpoint.settings.name, model = %request.model, stream = false, "LLM call");
        let attempt = || self.complete_attempt(endpoint, body.clone(), deadline);
        let (completion, _) = self.with_retries(endpoint, deadline, attempt).await?;
        Ok(completion)
    }

    /// Runs `attempt` until it succeeds, fails for good, runs out of retries or the deadline passes. Returns the
    /// result and the number of attempts made.
    async fn with_retries<T, F, Fut>(
        &self,
        endpoint: &Endpoint,
        deadline: Instant,
        mut attempt: F,
    ) -> Result<(T, u32), LlmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let settings = &self.inner.settings;
        let work = async {
            let mut retries = 0_u32;
            loop {
                let AttemptError { error, hint } = match attempt().await {
                    Ok(value) => return Ok((value, retries + 1)),
                    Err(e) => e,
                };
                if retries >= settings.max_retries || !retry::should_retry(&error, &hint) {
                    return Err(error);
                }
                let wait = retry::delay(&hint, settings.backoff_base, settings.backoff_max, retries);
                if Instant::now() + wait >= deadline {
                    return Err(error);
                }
                retries += 1;
                tracing::warn!(
                    provider = %endpoint.settings.name,
                    error = %error,
                    retry = retries,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "LLM call failed before any output; retrying"
                );
                tokio::time::sleep(wait).await;
            }
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(LlmError::Timeout(TimeoutPhase::Total)),
        }
    }

    /// Sends one request; a non-2xx answer becomes an error carrying the response's retry hint.
    async fn send(&self, endpoint: &Endpoint, body: Bytes, stream: bool) -> Result<reqwest::Response, AttemptError> {
        let accept = if stream { "text/event-stream" } else { "application/json" };
        let response = self
            .inner
            .client
            .post(endpoint.url.clone())
            .headers(endpoint.headers.clone())
            .header(ACCEPT, accept)
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        log_response(endpoint, status, response.headers());
        if response.status().is_success() {
            return Ok(response);
        }
        let hint = RetryHint::from_headers(response.headers());
        let id = request_id(response.headers());
        let raw_retry_after = retry::retry_after(response.headers(), time::OffsetDateTime::now_utc());
        // The body of an error is small; if it cannot be read, the status alone still classifies it.
        let body = response.bytes().await.unwrap_or_default();
        let error = http_error(status, &body, id, raw_retry_after);
        tracing::debug!(provider = %endpoint.settings.name, %error, "LLM provider refused the request");
        Err(AttemptError { error, hint })
    }

    /// One streamed attempt, up to and including its first content event (under the first-token deadline).
    async fn stream_attempt(
        &self,
        endpoint: &Endpoint,
        body: Bytes,
    ) -> Result<(Pipeline, Vec<StreamEvent>), AttemptError> {
        let first_token_deadline = Instant::now() + self.inner.settings.first_token_timeout;
        let work = async {
            let response = self.send(endpoint, body, true).await?;
            let is_json = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            let mut pipeline = if is_json {
                // A server that ignored `"stream": true`: replay its whole answer as a stream.
                tracing::warn!(provider = %endpoint.settings.name, "streaming request answered with JSON");
                let bytes = response.bytes().await.map_err(|e| transport_error(&e))?;
                Pipeline::replay(endpoint.parse_response(&bytes)?, endpoint.decoder())
            } else {
                Pipeline::new(response, endpoint.decoder())
            };
            let mut prefix = Vec::new();
            loop {
                match pipeline.next().await {
                    Some(Ok(event)) => {
                        let first = is_content(&event);
                        prefix.push(event);
                        if first {
                            return Ok((pipeline, prefix));
                        }
                    }
                    Some(Err(e)) => return Err(AttemptError::from(e)),
                    None => {
                        return Err(AttemptError::from(LlmError::Protocol("the stream ended without events".into())));
                    }
                }
            }
        };
        match tokio::time::timeout_at(first_token_deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(AttemptError::from(LlmError::Timeout(TimeoutPhase::FirstToken))),
        }
    }

    /// One non-streamed attempt.
    async fn complete_attempt(
        &self,
        endpoint: &Endpoint,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Completion, AttemptError> {
        let response = self.send(endpoint, body, false).await?;
        let bytes = tokio::time::timeout_at(deadline, response.bytes())
            .await
            .map_err(|_| LlmError::Timeout(TimeoutPhase::Total))?
            .map_err(|e| transport_error(&e))?;
        Ok(endpoint.parse_response(&bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::LlmStream;

    fn send<T: Send>(_: T) {}

    #[test]
    fn the_public_types_can_cross_tasks() {
        fn shared<T: Send + Sync + Clone + 'static>() {}
        fn stream<T: futures::Stream + Unpin + Send + 'static>() {}
        shared::<Gateway>();
        stream::<LlmStream>();
    }

    /// Compiles only if the calls' futures are `Send` (callers spawn them on a multi-threaded runtime).
    #[allow(dead_code)]
    fn the_call_futures_are_send(gateway: &Gateway, request: &ChatRequest) {
        send(gateway.stream(ProviderKind::Anthropic, request));
        send(gateway.complete(ProviderKind::OpenAi, request));
    }
}
