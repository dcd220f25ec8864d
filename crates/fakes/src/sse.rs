//! What the two LLM fakes ([`crate::anthropic`], [`crate::openai`]) share: the scripted [`Reply`], the [`Recorded`]
//! request, and the server that streams a rendered reply frame by frame and notices clients that hang up.
//! It knows no wire format itself (each fake renders a [`Reply`] in its own) and must not depend on any mentorfy crate.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::mpsc;

/// One request a fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The request path, e.g. `/v1/messages`.
    pub path: String,
    /// Every request header, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Value::Null` if it was not JSON; see [`Recorded::raw_body`]).
    pub body: Value,
    /// The body as received, lossily decoded as UTF-8.
    pub raw_body: String,
}

impl Recorded {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the body asked for a streamed answer (`"stream": true`).
    pub fn is_stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool).unwrap_or(false)
    }

    /// The requested model id, or `""`.
    pub fn model(&self) -> &str {
        self.body.get("model").and_then(Value::as_str).unwrap_or("")
    }
}

/// One block of a scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    /// Extended thinking (Anthropic `thinking` + `signature_delta`; OpenAI-compatible `reasoning_content`).
    Thinking {
        text: String,
        signature: String,
    },
    ToolCall {
        id: String,
        name: String,
        input: Value,
    },
}

/// What a scripted reply does. Build one with the constructors and refine it with the builder methods.
#[derive(Debug, Clone)]
pub(crate) enum ReplyKind {
    /// A 200 answer with these blocks, streamed or not as the request asked. With `error` set, a streamed answer
    /// sends an in-stream error after the blocks (unfinished: no stop, no usage) and closes; a non-streamed one
    /// answers that error as an HTTP error instead.
    Message { blocks: Vec<Block>, error: Option<(String, String)> },
    /// An HTTP error with the provider's error body for this `(type, message)`; `None` for the status default.
    Error { status: u16, error: Option<(String, String)> },
    /// A quota/spend-limit 429 in the provider's own shape.
    SpendLimit,
    /// Exactly these bytes with this status and content type; for SSE (`text/event-stream`) they are written
    /// event by event (split after each blank line), with [`Reply::with_delta_delay`] between events.
    Raw { status: u16, content_type: String, body: String },
}

/// A scripted answer for [`crate::anthropic::FakeAnthropic`] or [`crate::openai::FakeOpenAi`]. Token counts are
/// wire values, given as-is: `usage(input, output)` is Anthropic's uncached `input_tokens` but OpenAI's
/// `prompt_tokens` (which includes cached tokens).
#[derive(Debug, Clone)]
pub struct Reply {
    pub(crate) kind: ReplyKind,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) usage: Option<(u64, u64)>,
    pub(crate) cache: Option<(u64, u64)>,
    pub(crate) model: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) stop_reason: Option<String>,
    pub(crate) first_byte_delay: Duration,
    pub(crate) stall: Duration,
    pub(crate) delta_delay: Duration,
}

impl Reply {
    fn of(kind: ReplyKind) -> Self {
        Reply {
            kind,
            headers: Vec::new(),
            usage: None,
            cache: None,
            model: None,
            id: None,
            stop_reason: None,
            first_byte_delay: Duration::ZERO,
            stall: Duration::ZERO,
            delta_delay: Duration::ZERO,
        }
    }

    fn message(blocks: Vec<Block>) -> Self {
        Self::of(ReplyKind::Message { blocks, error: None })
    }

    /// A text answer, streamed one word per delta when the request asked for a stream.
    pub fn text(text: impl Into<String>) -> Self {
        Self::message(vec![Block::Text(text.into())])
    }

    /// A tool call (stop reason `tool_use` / `tool_calls`); its input JSON is streamed in a few fragments.
    pub fn tool_call(id: impl Into<String>, name: impl Into<String>, input: Value) -> Self {
        Self::message(vec![Block::ToolCall { id: id.into(), name: name.into(), input }])
    }

    /// An answer made of these blocks, in order.
    pub fn blocks(blocks: Vec<Block>) -> Self {
        Self::message(blocks)
    }

    /// Appends a text block.
    pub fn then_text(self, text: impl Into<String>) -> Self {
        self.push_block(Block::Text(text.into()))
    }

    /// Appends a tool call (parallel calls: chain several).
    pub fn then_tool_call(self, id: impl Into<String>, name: impl Into<String>, input: Value) -> Self {
        self.push_block(Block::ToolCall { id: id.into(), name: name.into(), input })
    }

    /// Puts a thinking block first.
    pub fn with_thinking(mut self, text: impl Into<String>, signature: impl Into<String>) -> Self {
        if let ReplyKind::Message { blocks, .. } = &mut self.kind {
            blocks.insert(0, Block::Thinking { text: text.into(), signature: signature.into() });
        }
        self
    }

    fn push_block(mut self, block: Block) -> Self {
        if let ReplyKind::Message { blocks, .. } = &mut self.kind {
            blocks.push(block);
        }
        self
    }

    /// HTTP `status` with the provider's default error body for it (429 → rate limit, 529 → overloaded…).
    pub fn status(status: u16) -> Self {
        Self::of(ReplyKind::Error { status, error: None })
    }

    /// HTTP `status` with an error body of this provider error type and message.
    pub fn error_body(status: u16, error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self::of(ReplyKind::Error { status, error: Some((error_type.into(), message.into())) })
    }

    /// A non-retryable quota 429: Anthropic `enforced_spend_limit_reached`, OpenAI `insufficient_quota`.
    pub fn spend_limit() -> Self {
        Self::of(ReplyKind::SpendLimit)
    }

    /// 200, the text `partial`, then an in-stream error of this type, then the connection closes.
    pub fn error_after_text(
        partial: impl Into<String>,
        error_type: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::of(ReplyKind::Message {
            blocks: vec![Block::Text(partial.into())],
            error: Some((error_type.into(), message.into())),
        })
    }

    /// 200, the stream preamble (Anthropic `message_start`), then an in-stream error before any content.
    pub fn stream_error(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self::of(ReplyKind::Message { blocks: Vec::new(), error: Some((error_type.into(), message.into())) })
    }

    /// A short text answer that stalls `stall` after the preamble (200 + `message_start`), before any content.
    pub fn stall_before_first_token(stall: Duration) -> Self {
        Self::text("Hello after a stall.").with_stall(stall)
    }

    /// A short text answer whose response headers are sent only after `delay`.
    pub fn delay_first_byte(delay: Duration) -> Self {
        Self::text("Hello after a delay.").with_first_byte_delay(delay)
    }

    /// Exactly this body with this status and content type (for wire-format corner cases).
    pub fn raw(status: u16, content_type: impl Into<String>, body: impl Into<String>) -> Self {
        Self::of(ReplyKind::Raw { status, content_type: content_type.into(), body: body.into() })
    }

    /// A 200 `text/event-stream` with exactly these SSE bytes, written event by event.
    pub fn raw_sse(body: impl Into<String>) -> Self {
        Self::raw(200, "text/event-stream", body)
    }

    /// Reported usage (wire values).
    pub fn usage(mut self, input: u64, output: u64) -> Self {
        self.usage = Some((input, output));
        self
    }

    /// Reported cache reads and writes (wire values; OpenAI has no cache writes and ignores `write`).
    pub fn cache(mut self, read: u64, write: u64) -> Self {
        self.cache = Some((read, write));
        self
    }

    /// The model the answer claims (default: the requested one).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The response id (default: `msg_fake_N` / `chatcmpl-fake-N`).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The raw stop reason (`end_turn`, `max_tokens`, `stop`, `length`…); default from the blocks.
    pub fn stop_reason(mut self, reason: impl Into<String>) -> Self {
        self.stop_reason = Some(reason.into());
        self
    }

    /// An extra response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `retry-after: <seconds>`.
    pub fn retry_after_secs(self, seconds: u64) -> Self {
        self.header("retry-after", seconds.to_string())
    }

    /// `retry-after-ms: <milliseconds>`.
    pub fn retry_after_ms(self, millis: u64) -> Self {
        self.header("retry-after-ms", millis.to_string())
    }

    /// Waits `delay` before sending the response headers.
    pub fn with_first_byte_delay(mut self, delay: Duration) -> Self {
        self.first_byte_delay = delay;
        self
    }

    /// Streamed answers: waits `stall` after the preamble, before the first content event.
    pub fn with_stall(mut self, stall: Duration) -> Self {
        self.stall = stall;
        self
    }

    /// Streamed answers: waits `delay` before each event after the first.
    pub fn with_delta_delay(mut self, delay: Duration) -> Self {
        self.delta_delay = delay;
        self
    }

    /// The answer's blocks (empty for errors and raw replies).
    pub(crate) fn message_blocks(&self) -> &[Block] {
        match &self.kind {
            ReplyKind::Message { blocks, .. } => blocks,
            _ => &[],
        }
    }

    /// The usage to report: the scripted one, else 10 input tokens and one output token per word.
    pub(crate) fn usage_or_default(&self) -> (u64, u64) {
        self.usage.unwrap_or_else(|| {
            let words: usize = self
                .message_blocks()
                .iter()
                .map(|b| match b {
                    Block::Text(t) | Block::Thinking { text: t, .. } => t.split_whitespace().count(),
                    Block::ToolCall { input, .. } => input.to_string().len() / 4 + 1,
                })
                .sum();
            (10, u64::try_from(words.max(1)).unwrap_or(u64::MAX))
        })
    }
}

/// Splits text into stream deltas: one per word, keeping the spaces.
pub(crate) fn word_deltas(text: &str) -> Vec<String> {
    let parts: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    if parts.is_empty() { vec![String::new()] } else { parts }
}

/// Splits a JSON text in up to three fragments at character boundaries.
pub(crate) fn json_fragments(json: &str) -> Vec<String> {
    let chars: Vec<char> = json.chars().collect();
    let n = chars.len();
    if n < 3 {
        return vec![json.to_owned()];
    }
    let cuts = [0, n / 3, 2 * n / 3, n];
    cuts.windows(2).map(|w| chars[w[0]..w[1]].iter().collect()).collect()
}

/// One SSE event: `event:` name (Anthropic) or none (OpenAI), and its data line.
pub(crate) fn sse_event(name: Option<&str>, data: &str) -> String {
    match name {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// A rendered answer, ready to be written.
pub(crate) enum Rendered {
    Json {
        status: u16,
        body: Value,
    },
    /// SSE frames; `stall_before` is the index of the first frame to delay by the reply's stall.
    Sse {
        frames: Vec<String>,
        stall_before: usize,
    },
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
}

/// How one provider renders replies on its wire.
pub(crate) trait Wire: Send + Sync + 'static {
    /// The route the fake serves, e.g. `/v1/messages`.
    const PATH: &'static str;
    /// Appended to `http://127.0.0.1:PORT` by `url()` (`""` or `"/v1"`).
    const URL_SUFFIX: &'static str;
    /// The response header carrying the request id.
    const REQUEST_ID_HEADER: &'static str;
    fn render(request: &Recorded, reply: &Reply, seq: u64) -> Rendered;
}

type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

struct Script {
    replies: VecDeque<Reply>,
    responder: Responder,
    requests: Vec<Recorded>,
}

struct Shared {
    script: Mutex<Script>,
    seq: AtomicU64,
    closed_early: AtomicUsize,
    completed: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fake LLM provider on `127.0.0.1:0`, generic over its wire format; stopped when dropped. Use the aliases
/// [`crate::anthropic::FakeAnthropic`] and [`crate::openai::FakeOpenAi`].
pub struct FakeLlm<W> {
    url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    wire: PhantomData<fn() -> W>,
}

impl<W> Drop for FakeLlm<W> {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Binds `127.0.0.1:0` and serves `POST` on the provider's path.
#[allow(clippy::expect_used)] // a test fixture that cannot bind loopback cannot do anything useful
pub(crate) async fn start<W: Wire>() -> FakeLlm<W> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a fake LLM provider");
    let addr = listener.local_addr().expect("local address of a fake LLM provider");
    let responder: Responder = Arc::new(|_: &Recorded| Reply::text("Hello! How can I help?"));
    let shared = Arc::new(Shared {
        script: Mutex::new(Script { replies: VecDeque::new(), responder, requests: Vec::new() }),
        seq: AtomicU64::new(0),
        closed_early: AtomicUsize::new(0),
        completed: AtomicUsize::new(0),
    });
    let app = Router::new().route(W::PATH, post(handle::<W>)).with_state(Arc::clone(&shared));
    // Real providers flush each event as it is produced; without TCP_NODELAY the fake's second write would wait
    // for the client's delayed ACK and add ~40 ms that no real upstream has.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FakeLlm { url: format!("http://{addr}{}", W::URL_SUFFIX), shared, server, wire: PhantomData }
}

impl<W> FakeLlm<W> {
    /// The base URL to configure (Anthropic: `http://127.0.0.1:PORT`; OpenAI: `http://127.0.0.1:PORT/v1`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Queues a reply: each request takes the oldest queued one, or asks the responder when none is left.
    pub fn push(&self, reply: Reply) {
        self.shared.lock().replies.push_back(reply);
    }

    /// Queues several replies, in order.
    pub fn push_all(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().replies.extend(replies);
    }

    /// Replaces the responder used when the queue is empty (by default a short text answer).
    pub fn respond_with(&self, responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        self.shared.lock().responder = Arc::new(responder);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<Recorded> {
        self.shared.lock().requests.last().cloned()
    }

    /// How many streamed answers were cut short because the client went away (dropped the response).
    pub fn connections_closed_early(&self) -> usize {
        self.shared.closed_early.load(Ordering::SeqCst)
    }

    /// How many streamed answers were written to the end.
    pub fn streams_completed(&self) -> usize {
        self.shared.completed.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` streamed answers were cut short, or `timeout` passes; returns the count then.
    pub async fn wait_for_closed_early(&self, n: usize, timeout: Duration) -> usize {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let count = self.connections_closed_early();
            if count >= n || tokio::time::Instant::now() >= until {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn handle<W: Wire>(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let recorded = Recorded {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw_body: String::from_utf8_lossy(&body).into_owned(),
    };
    let reply = {
        let mut script = shared.lock();
        script.requests.push(recorded.clone());
        match script.replies.pop_front() {
            Some(reply) => reply,
            None => {
                let responder = Arc::clone(&script.responder);
                drop(script);
                responder(&recorded)
            }
        }
    };
    let seq = shared.seq.fetch_add(1, Ordering::SeqCst) + 1;
    if !reply.first_byte_delay.is_zero() {
        tokio::time::sleep(reply.first_byte_delay).await;
    }
    let mut response = match W::render(&recorded, &reply, seq) {
        Rendered::Json { status, body } => {
            let mut response = (status_code(status), body.to_string()).into_response();
            set_header(&mut response, "content-type", "application/json");
            response
        }
        Rendered::Raw { status, content_type, body } => {
            if content_type.starts_with("text/event-stream") {
                let frames = split_sse(&body);
                stream_response(&shared, frames, usize::MAX, &reply, status)
            } else {
                let mut response = (status_code(status), body).into_response();
                set_header(&mut response, "content-type", &content_type);
                response
            }
        }
        Rendered::Sse { frames, stall_before } => stream_response(&shared, frames, stall_before, &reply, 200),
    };
    set_header(&mut response, W::REQUEST_ID_HEADER, &format!("req_fake_{seq}"));
    for (name, value) in &reply.headers {
        set_header(&mut response, name, value);
    }
    response
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn set_header(response: &mut Response, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        response.headers_mut().insert(name, value);
    }
}

/// Splits an SSE body after each blank line (keeping everything, so the bytes written are exactly the body).
fn split_sse(body: &str) -> Vec<String> {
    let mut frames = Vec::new();
    let mut rest = body;
    while let Some(pos) = rest.find("\n\n") {
        frames.push(rest[..pos + 2].to_owned());
        rest = &rest[pos + 2..];
    }
    if !rest.is_empty() {
        frames.push(rest.to_owned());
    }
    frames
}

/// Writes `frames` through a channel of one, waiting the reply's delays, and counts a client that hung up.
fn stream_response(
    shared: &Arc<Shared>,
    frames: Vec<String>,
    stall_before: usize,
    reply: &Reply,
    status: u16,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Bytes>(1);
    let shared = Arc::clone(shared);
    let (stall, delta_delay) = (reply.stall, reply.delta_delay);
    tokio::spawn(async move {
        for (i, frame) in frames.into_iter().enumerate() {
            let mut wait = if i > 0 { delta_delay } else { Duration::ZERO };
            if i == stall_before {
                wait += stall;
            }
            if !wait.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = tx.closed() => {
                        shared.closed_early.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
            if tx.send(Bytes::from(frame)).await.is_err() {
                shared.closed_early.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        // Dropping the sender ends the body once the last frame is taken.
        drop(tx);
        shared.completed.fetch_add(1, Ordering::SeqCst);
    });
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|frame| frame.map(Ok::<_, Infallible>)));
    let mut response = (status_code(status), Body::from_stream(body)).into_response();
    set_header(&mut response, "content-type", "text/event-stream; charset=utf-8");
    set_header(&mut response, "cache-control", "no-cache");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_bodies_split_after_each_blank_line_without_losing_bytes() {
        let body = "event: a\ndata: 1\n\nevent: b\ndata: 2\n\ntrailing";
        let frames = split_sse(body);
        assert_eq!(frames, vec!["event: a\ndata: 1\n\n", "event: b\ndata: 2\n\n", "trailing"]);
        assert_eq!(frames.concat(), body);
    }

    #[test]
    fn deltas_and_fragments_rebuild_their_input() {
        assert_eq!(word_deltas("Hello! How can I help?").concat(), "Hello! How can I help?");
        assert_eq!(word_deltas("Hello! How can I help?").len(), 5);
        let json = r#"{"city":"Zürich"}"#;
        assert_eq!(json_fragments(json).len(), 3);
        assert_eq!(json_fragments(json).concat(), json);
    }

    #[test]
    fn default_usage_counts_words() {
        assert_eq!(Reply::text("one two three").usage_or_default(), (10, 3));
        assert_eq!(Reply::text("x").usage(7, 8).usage_or_default(), (7, 8));
    }
}
