//! The background exporter: a bounded queue that `export()` fills without ever blocking, and one tokio task that
//! batches spans and POSTs them to the collector with retries. It must never block or fail the caller (export runs
//! on request paths), never log a header value, and never log once per dropped span.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::model::{Resource, Span};
use crate::settings::{ExporterSettings, Protocol};

/// Longest `Retry-After` the exporter will honour.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// At most one warning per this interval for dropped spans, and one for failed batches.
const WARN_INTERVAL: Duration = Duration::from_secs(10);
/// How much of a collector's error body goes into a log line.
const MAX_ERROR_BODY_LOG: usize = 300;

/// Counters since the exporter started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportStats {
    /// Spans the collector accepted (a partial success's rejected spans are not counted here).
    pub exported: u64,
    /// Spans dropped at `export()` because the queue was full or the exporter had stopped.
    pub dropped: u64,
    /// Spans given up on: retries exhausted, a non-retryable answer, rejected in a partial success, or still queued
    /// when `shutdown` ran out of time.
    pub failed: u64,
    /// Requests the collector answered with success.
    pub batches: u64,
}

#[derive(Default)]
struct Counters {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
    /// Spans accepted by `export()` whose outcome is not yet known.
    pending: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ExportStats {
        ExportStats {
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
        }
    }

    fn settle(&self, exported: u64, failed: u64) {
        self.exported.fetch_add(exported, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
        self.pending.fetch_sub(exported + failed, Ordering::Relaxed);
    }
}

/// Lets one event through per [`WARN_INTERVAL`] and counts the ones suppressed in between. Lock-free, so it is safe
/// on the `export()` path.
struct RateLimiter {
    epoch: std::time::Instant,
    /// Milliseconds since `epoch` of the last event let through, or `u64::MAX` for never.
    last_ms: AtomicU64,
    /// Events since the last one let through.
    since_last: AtomicU64,
}

impl RateLimiter {
    fn new() -> Self {
        RateLimiter {
            epoch: std::time::Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
            since_last: AtomicU64::new(0),
        }
    }

    /// Records one event; returns how many events the caller should report (this one and those suppressed since the
    /// last report), or `None` to stay quiet.
    fn hit(&self, weight: u64) -> Option<u64> {
        self.since_last.fetch_add(weight, Ordering::Relaxed);
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= millis(WARN_INTERVAL);
        if due && self.last_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            Some(self.since_last.swap(0, Ordering::Relaxed))
        } else {
            None
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Handle to the background export task; cheap to clone. [`Exporter::disabled`] is a no-op handle.
#[derive(Clone)]
pub struct Exporter {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: mpsc::Sender<Span>,
    stats: Arc<Counters>,
    drops: RateLimiter,
    control: Mutex<Option<Control>>,
}

struct Control {
    shutdown: watch::Sender<Option<Instant>>,
    worker: JoinHandle<()>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").field("enabled", &self.inner.is_some()).finish()
    }
}

impl Exporter {
    /// Starts the background task on the current tokio runtime. Without a runtime, or if the HTTP client cannot be
    /// built (e.g. no rustls crypto provider installed), it logs an error and returns a disabled exporter.
    pub fn spawn(settings: ExporterSettings) -> Exporter {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("OTLP exporter needs a tokio runtime; trace export is disabled");
            return Exporter::disabled();
        };
        let client = match reqwest::Client::builder().build() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the OTLP HTTP client; trace export is disabled");
                return Exporter::disabled();
            }
        };
        let stats = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel(settings.max_queue.max(1));
        let (shutdown_tx, shutdown_rx) = watch::channel(None);
        tracing::info!(
            endpoint = %redact_url(&settings.endpoint),
            protocol = %settings.protocol,
            compression = settings.compression,
            "OTLP trace exporter started"
        );
        let poster = Poster {
            client,
            headers: build_headers(&settings.headers),
            endpoint: settings.endpoint,
            protocol: settings.protocol,
            resource: settings.resource,
            compression: settings.compression,
            request_timeout: settings.request_timeout,
            max_retries: settings.max_retries,
            initial_backoff: settings.initial_backoff,
            max_backoff: settings.max_backoff,
            stats: Arc::clone(&stats),
            failures: RateLimiter::new(),
        };
        let batcher = Batcher {
            rx,
            shutdown: Shutdown { rx: shutdown_rx, open: true, deadline: None },
            poster,
            max_batch: settings.max_batch.max(1),
            flush_interval: settings.flush_interval,
        };
        let worker = runtime.spawn(batcher.run());
        Exporter {
            inner: Some(Arc::new(Inner {
                tx,
                stats,
                drops: RateLimiter::new(),
                control: Mutex::new(Some(Control { shutdown: shutdown_tx, worker })),
            })),
        }
    }

    /// An exporter that discards everything (no collector configured).
    pub fn disabled() -> Exporter {
        Exporter { inner: None }
    }

    /// Whether spans go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues `span` for export. Never blocks and never fails: when the queue is full (collector down or slow) the
    /// span is dropped, counted, and reported in a rate-limited warning.
    pub fn export(&self, span: Span) {
        let Some(inner) = &self.inner else { return };
        inner.stats.pending.fetch_add(1, Ordering::Relaxed);
        let reason = match inner.tx.try_send(span) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => "the export queue is full (collector down or slow)",
            Err(mpsc::error::TrySendError::Closed(_)) => "the exporter has shut down",
        };
        inner.stats.pending.fetch_sub(1, Ordering::Relaxed);
        let total = inner.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(dropped) = inner.drops.hit(1) {
            tracing::warn!(dropped, total_dropped = total, "dropping OTLP spans: {reason}");
        }
    }

    pub fn stats(&self) -> ExportStats {
        self.inner.as_ref().map(|inner| inner.stats.snapshot()).unwrap_or_default()
    }

    /// Sends what is queued (giving up on whatever is left when `timeout` runs out), then stops the task. Later
    /// `export()` calls drop their spans. Calling it again, or on a clone, returns at once.
    pub async fn shutdown(&self, timeout: Duration) {
        let Some(inner) = &self.inner else { return };
        let control = inner.control.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(Control { shutdown, mut worker }) = control else { return };
        let deadline = Instant::now() + timeout;
        // The worker holds the receiver until it finishes, so this only fails if it already stopped.
        let _ = shutdown.send(Some(deadline));
        // The worker respects the deadline itself; the grace period covers a request that is just finishing.
        let grace = Duration::from_millis(200);
        if tokio::time::timeout(timeout + grace, &mut worker).await.is_err() {
            worker.abort();
            let _ = worker.await;
        }
        let abandoned = inner.stats.pending.swap(0, Ordering::Relaxed);
        if abandoned > 0 {
            inner.stats.failed.fetch_add(abandoned, Ordering::Relaxed);
            tracing::warn!(abandoned, "OTLP exporter shut down before sending every span");
        }
        let stats = inner.stats.snapshot();
        tracing::info!(
            exported = stats.exported,
            dropped = stats.dropped,
            failed = stats.failed,
            batches = stats.batches,
            "OTLP trace exporter stopped"
        );
    }
}

/// The shutdown signal as the worker sees it: `deadline` is set once `shutdown()` has been called.
struct Shutdown {
    rx: watch::Receiver<Option<Instant>>,
    /// False once every handle is gone (no signal can come any more).
    open: bool,
    deadline: Option<Instant>,
}

impl Shutdown {
    /// Waits for the next change; returns when the deadline is set or the handles are gone.
    async fn changed(&mut self) {
        if !self.open {
            return std::future::pending().await;
        }
        match self.rx.changed().await {
            Ok(()) => self.deadline = *self.rx.borrow_and_update(),
            Err(_) => self.open = false,
        }
    }

    /// Sleeps `delay`, unless a shutdown deadline falls before it ends; returns false (without finishing the sleep)
    /// in that case.
    async fn sleep(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            if self.deadline.is_some_and(|d| until > d) {
                return false;
            }
            tokio::select! {
                () = tokio::time::sleep_until(until) => return true,
                () = self.changed() => {}
            }
        }
    }
}

struct Batcher {
    rx: mpsc::Receiver<Span>,
    shutdown: Shutdown,
    poster: Poster,
    max_batch: usize,
    flush_interval: Duration,
}

impl Batcher {
    async fn run(mut self) {
        let mut buf: Vec<Span> = Vec::with_capacity(self.max_batch);
        let mut flush_at = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = self.shutdown.changed() => {
                    if self.shutdown.deadline.is_some() || !self.shutdown.open {
                        break;
                    }
                }
                () = tokio::time::sleep_until(flush_at), if !buf.is_empty() => {
                    self.poster.send(std::mem::take(&mut buf), &mut self.shutdown).await;
                }
                span = self.rx.recv() => match span {
                    Some(span) => {
                        if buf.is_empty() {
                            flush_at = Instant::now() + self.flush_interval;
                        }
                        buf.push(span);
                        if buf.len() >= self.max_batch {
                            self.poster.send(std::mem::take(&mut buf), &mut self.shutdown).await;
                        }
                    }
                    None => break,
                },
            }
        }
        // Flush: refuse new spans, then send everything already queued (each send respects the deadline).
        self.rx.close();
        while let Some(span) = self.rx.recv().await {
            buf.push(span);
            if buf.len() >= self.max_batch {
                self.poster.send(std::mem::take(&mut buf), &mut self.shutdown).await;
            }
        }
        if !buf.is_empty() {
            self.poster.send(buf, &mut self.shutdown).await;
        }
    }
}

struct Poster {
    client: reqwest::Client,
    endpoint: String,
    headers: HeaderMap,
    protocol: Protocol,
    resource: Resource,
    compression: bool,
    request_timeout: Duration,
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    stats: Arc<Counters>,
    failures: RateLimiter,
}

enum Attempt {
    /// 2xx; the partial-success details when the collector rejected some spans.
    Accepted(Option<(i64, String)>),
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    Fatal(String),
}

impl Poster {
    /// Sends one batch, retrying as the spec allows, and settles its spans in the counters.
    async fn send(&self, spans: Vec<Span>, shutdown: &mut Shutdown) {
        let n = spans.len() as u64;
        let (body, gzipped) = self.encode(&spans);
        drop(spans);
        let mut retries = 0;
        loop {
            let timeout = match shutdown.deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.give_up(n, "the shutdown timeout ran out");
                        return;
                    }
                    left.min(self.request_timeout)
                }
                None => self.request_timeout,
            };
            let attempt = self.attempt(body.clone(), gzipped, timeout).await;
            match attempt {
                Attempt::Accepted(partial) => {
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                    let rejected = partial.as_ref().map_or(0, |(r, _)| u64::try_from(*r).unwrap_or(0).min(n));
                    if let Some((rejected_spans, error_message)) = partial {
                        tracing::warn!(rejected_spans, error_message, "OTLP collector partially accepted a batch");
                    }
                    self.stats.settle(n - rejected, rejected);
                    return;
                }
                Attempt::Fatal(reason) => {
                    self.give_up(n, &reason);
                    return;
                }
                Attempt::Retry { reason, retry_after } => {
                    if retries >= self.max_retries {
                        self.give_up(n, &format!("{reason} (after {retries} retries)"));
                        return;
                    }
                    let delay = retry_after.map_or_else(|| self.backoff(retries), |d| d.min(MAX_RETRY_AFTER));
                    tracing::debug!(reason, delay_ms = millis(delay), retry = retries + 1, "retrying OTLP export");
                    if !shutdown.sleep(delay).await {
                        self.give_up(n, &format!("{reason} (no time left to retry before shutdown)"));
                        return;
                    }
                    retries += 1;
                }
            }
        }
    }

    fn give_up(&self, spans: u64, reason: &str) {
        self.stats.settle(0, spans);
        if let Some(batches) = self.failures.hit(1) {
            tracing::warn!(
                spans,
                failed_batches = batches,
                total_failed = self.stats.failed.load(Ordering::Relaxed),
                "OTLP export failed: {reason}"
            );
        }
    }

    fn backoff(&self, retry: u32) -> Duration {
        backoff(self.initial_backoff, self.max_backoff, retry)
    }

    fn encode(&self, spans: &[Span]) -> (Bytes, bool) {
        let raw = match self.protocol {
            Protocol::HttpProtobuf => crate::proto::encode_protobuf(&self.resource, spans),
            Protocol::HttpJson => crate::json::encode_json(&self.resource, spans),
        };
        if self.compression {
            match gzip(&raw) {
                Ok(compressed) => return (Bytes::from(compressed), true),
                Err(e) => tracing::warn!(error = %e, "gzip failed; sending the OTLP batch uncompressed"),
            }
        }
        (Bytes::from(raw), false)
    }

    async fn attempt(&self, body: Bytes, gzipped: bool, timeout: Duration) -> Attempt {
        let mut request = self
            .client
            .post(&self.endpoint)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, self.protocol.content_type())
            .timeout(timeout)
            .body(body);
        if gzipped {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let response = match request.send().await {
            Ok(response) => response,
            // Builder errors (a malformed endpoint) will not get better; anything else is a connection problem.
            Err(e) if e.is_builder() => return Attempt::Fatal(format!("bad request: {}", e.without_url())),
            Err(e) => {
                let kind = if e.is_timeout() { "timed out" } else { "connection failed" };
                return Attempt::Retry { reason: format!("{kind}: {}", e.without_url()), retry_after: None };
            }
        };
        let status = response.status();
        if status.is_success() {
            let json = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map_or(self.protocol == Protocol::HttpJson, |ct| ct.contains("json"));
            // The batch is delivered; an unreadable answer body does not change that.
            let body = response.bytes().await.unwrap_or_default();
            let partial = if body.is_empty() {
                None
            } else if json {
                crate::json::decode_partial_success(&body)
            } else {
                crate::proto::decode_partial_success(&body)
            };
            return Attempt::Accepted(partial);
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
        let body = response.bytes().await.unwrap_or_default();
        let reason = format!("collector answered {status}: {}", snippet(&body));
        if retryable { Attempt::Retry { reason, retry_after } } else { Attempt::Fatal(reason) }
    }
}

/// `initial * 2^retry`, capped at `max`, with "equal jitter" (between half and all of it).
fn backoff(initial: Duration, max: Duration, retry: u32) -> Duration {
    let base = initial.saturating_mul(2u32.saturating_pow(retry)).min(max);
    let half = base / 2;
    let jitter = rand::random_range(0..=millis(half));
    half + Duration::from_millis(jitter)
}

fn gzip(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 4), flate2::Compression::fast());
    encoder.write_all(raw)?;
    encoder.finish()
}

/// The start of an error body, for a log line (lossy UTF-8, truncated).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_ERROR_BODY_LOG) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Request headers from the settings, marked sensitive so they never show in debug output. Invalid ones are skipped
/// with an error naming the header, not its value.
fn build_headers(headers: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(USER_AGENT, HeaderValue::from_static(concat!("mentorfy-otlp/", env!("CARGO_PKG_VERSION"))));
    for (name, value) in headers {
        let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) else {
            tracing::error!(header = %name, "invalid OTLP header name; header skipped");
            continue;
        };
        let Ok(mut value) = HeaderValue::from_str(value.trim()) else {
            tracing::error!(header = %name, "invalid OTLP header value; header skipped");
            continue;
        };
        value.set_sensitive(true);
        map.append(name, value);
    }
    map
}

/// The endpoint for a log line: without user info, query or fragment.
fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_strips_credentials_and_query() {
        assert_eq!(
            redact_url("https://user:pw@example.com:4318/v1/traces?key=s"),
            "https://example.com:4318/v1/traces"
        );
        assert_eq!(redact_url("http://localhost:4318"), "http://localhost:4318");
    }

    #[test]
    fn rate_limiter_reports_first_event_then_stays_quiet() {
        let limiter = RateLimiter::new();
        assert_eq!(limiter.hit(1), Some(1));
        for _ in 0..100 {
            assert_eq!(limiter.hit(1), None);
        }
        assert_eq!(limiter.since_last.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let initial = Duration::from_millis(500);
        let max = Duration::from_secs(30);
        for retry in 0..12 {
            let base = initial.saturating_mul(2u32.saturating_pow(retry)).min(max);
            let d = backoff(initial, max, retry);
            assert!(d >= base / 2 && d <= base, "retry {retry}: {d:?} not within {base:?}");
        }
        assert!(backoff(initial, max, 40) <= max);
    }
}
