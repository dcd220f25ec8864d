//! A fake OTLP/HTTP trace collector (and Langfuse's OTLP endpoint) for tests: decodes protobuf or JSON, gzipped or
//! not, with the canonical `opentelemetry-proto` types, records what it received, and can fail or stall on demand.
//! It must not depend on any mentorfy crate: it decodes independently of our encoder so symmetric bugs can't hide.

use std::collections::VecDeque;
use std::io::Read as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use serde_json::Value;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// One event on a received span.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    pub name: String,
    pub time_unix_nano: u64,
    pub attributes: Vec<(String, Value)>,
}

impl ReceivedEvent {
    pub fn attr(&self, key: &str) -> Option<&Value> {
        find(&self.attributes, key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(Value::as_str)
    }

    pub fn double(&self, key: &str) -> Option<f64> {
        self.attr(key).and_then(Value::as_f64)
    }
}

/// A span as the collector decoded it. Attribute values become JSON: strings, booleans, integers (`i64` numbers),
/// doubles (`f64` numbers, so `int()` and `double()` tell them apart), arrays, kvlists as objects, bytes as base64
/// strings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    pub trace_id_hex: String,
    pub span_id_hex: String,
    /// `None` when the parent id is empty.
    pub parent_span_id_hex: Option<String>,
    pub name: String,
    pub kind: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub status_code: i32,
    /// Empty when absent.
    pub status_message: String,
    pub attributes: Vec<(String, Value)>,
    pub events: Vec<ReceivedEvent>,
    /// The resource attributes the span was sent under.
    pub resource: Vec<(String, Value)>,
    pub scope_name: String,
    pub scope_version: String,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&Value> {
        find(&self.attributes, key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(Value::as_str)
    }

    /// An integer attribute (`intValue`); `None` for a double.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.attr(key).filter(|v| v.is_i64() || v.is_u64()).and_then(Value::as_i64)
    }

    /// A double attribute (`doubleValue`); `None` for an integer.
    pub fn double(&self, key: &str) -> Option<f64> {
        self.attr(key).filter(|v| v.is_f64()).and_then(Value::as_f64)
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.attr(key).and_then(Value::as_bool)
    }

    /// A string-array attribute; `None` if it is missing or not an array of strings.
    pub fn strings(&self, key: &str) -> Option<Vec<&str>> {
        self.attr(key)?.as_array()?.iter().map(Value::as_str).collect()
    }

    pub fn resource_str(&self, key: &str) -> Option<&str> {
        find(&self.resource, key).and_then(Value::as_str)
    }
}

fn find<'a>(attrs: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// One request the collector received, whatever it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorRequest {
    pub path: String,
    pub content_type: String,
    pub content_encoding: Option<String>,
    /// Every request header, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The status the collector answered.
    pub status: u16,
    /// Why the body could not be decoded, if it could not.
    pub decode_error: Option<String>,
    pub spans: Vec<ReceivedSpan>,
}

impl CollectorRequest {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    requests: Vec<CollectorRequest>,
    failures: VecDeque<(u16, Option<u64>)>,
    delay: Duration,
    partial: Option<(i64, String)>,
}

/// The fake collector; stops when dropped.
pub struct FakeCollector {
    url: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCollector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeCollector {
    /// Starts on `127.0.0.1:0`, serving `POST /v1/traces` and `POST /api/public/otel/v1/traces`.
    #[allow(clippy::expect_used)] // a test fixture that cannot bind loopback cannot do anything useful
    pub async fn start() -> FakeCollector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake OTLP collector");
        FakeCollector::serve(listener)
    }

    /// Starts on a given address (for tests where a collector comes up after the exporter started).
    #[allow(clippy::expect_used)] // as in `start`
    pub async fn start_at(addr: std::net::SocketAddr) -> FakeCollector {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the fake OTLP collector");
        FakeCollector::serve(listener)
    }

    #[allow(clippy::expect_used)] // as in `start`
    fn serve(listener: tokio::net::TcpListener) -> FakeCollector {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .route("/api/public/otel/v1/traces", post(receive))
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(Arc::clone(&shared));
        let addr = listener.local_addr().expect("local address of the fake OTLP collector");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeCollector { url: format!("http://{addr}"), shared, server }
    }

    /// The base URL, `http://127.0.0.1:PORT` (an `OTEL_EXPORTER_OTLP_ENDPOINT` or a Langfuse host).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The full OTLP traces URL, `{url}/v1/traces`.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.url)
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `n` requests are answered with `status` (and `Retry-After: retry_after` seconds when given) and a
    /// `google.rpc.Status` body; their spans are recorded in `requests()` but not counted as received.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let mut shared = self.lock();
        for _ in 0..n {
            shared.failures.push_back((status, retry_after));
        }
    }

    /// Every later request waits `delay` before it is answered (`Duration::ZERO` to stop).
    pub fn delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Every later successful answer carries a `partialSuccess` with these values.
    pub fn partial_success(&self, rejected_spans: i64, error_message: &str) {
        self.lock().partial = Some((rejected_spans, error_message.to_owned()));
    }

    pub fn requests(&self) -> Vec<CollectorRequest> {
        self.lock().requests.clone()
    }

    /// The spans of every request that was answered 200, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().requests.iter().filter(|r| r.status == 200).flat_map(|r| r.spans.iter().cloned()).collect()
    }

    /// Waits until at least `n` spans were accepted or `timeout` passes; returns the spans accepted by then.
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= n || tokio::time::Instant::now() >= until {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// `google.rpc.Status`, the failure body (only `code` and `message`).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

async fn receive(State(shared): State<Arc<Mutex<Shared>>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let delay = shared.lock().unwrap_or_else(PoisonError::into_inner).delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type = header_str(header::CONTENT_TYPE).unwrap_or_default();
    let content_encoding = header_str(header::CONTENT_ENCODING);
    let json = content_type.starts_with(JSON);
    let protobuf = content_type.starts_with(PROTOBUF);

    let decoded = decode_export_request(&body, &content_type, content_encoding.as_deref());

    let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let failure = guard.failures.pop_front();
    let (status, spans, decode_error) = match (failure, decoded) {
        (Some((status, _)), Ok(spans)) => (status, spans, None),
        (Some((status, _)), Err(e)) => (status, Vec::new(), Some(e)),
        (None, Ok(spans)) => (200, spans, None),
        (None, Err(e)) => (if json || protobuf { 400 } else { 415 }, Vec::new(), Some(e)),
    };
    guard.requests.push(CollectorRequest {
        path: uri.path().to_owned(),
        content_type: content_type.clone(),
        content_encoding,
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        status,
        decode_error: decode_error.clone(),
        spans,
    });
    let partial = guard.partial.clone();
    drop(guard);

    let reply_type = if json { JSON } else { PROTOBUF };
    if status == 200 {
        let partial_success =
            partial.map(|(rejected_spans, error_message)| ExportTracePartialSuccess { rejected_spans, error_message });
        let body = if json {
            match &partial_success {
                Some(p) => serde_json::json!({
                    "partialSuccess": { "rejectedSpans": p.rejected_spans.to_string(), "errorMessage": p.error_message }
                })
                .to_string()
                .into_bytes(),
                None => b"{}".to_vec(),
            }
        } else {
            ExportTraceServiceResponse { partial_success }.encode_to_vec()
        };
        return ([(header::CONTENT_TYPE, reply_type)], body).into_response();
    }

    let message = decode_error.unwrap_or_else(|| "injected failure".to_owned());
    // gRPC codes: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE, 2 UNKNOWN.
    let code = match status {
        400 => 3,
        429 => 8,
        502..=504 => 14,
        _ => 2,
    };
    let body = if json {
        serde_json::json!({ "code": code, "message": message }).to_string().into_bytes()
    } else {
        RpcStatus { code, message }.encode_to_vec()
    };
    let mut response =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(reply_type));
    if let Some((_, Some(seconds))) = failure {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Decodes an OTLP/HTTP `ExportTraceServiceRequest` body the way the collector does (by `Content-Type`:
/// `application/x-protobuf` or `application/json`; `Content-Encoding: gzip` or none), for tests that check an
/// encoding without a server.
pub fn decode_export_request(
    body: &[u8],
    content_type: &str,
    content_encoding: Option<&str>,
) -> Result<Vec<ReceivedSpan>, String> {
    let json = content_type.starts_with(JSON);
    if !json && !content_type.starts_with(PROTOBUF) {
        return Err(format!("unsupported content type {content_type:?}"));
    }
    let raw = match content_encoding.map(str::trim) {
        None | Some("") | Some("identity") => body.to_vec(),
        Some(enc) if enc.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body).read_to_end(&mut out).map_err(|e| format!("bad gzip body: {e}"))?;
            out
        }
        Some(other) => return Err(format!("unsupported content encoding {other:?}")),
    };
    let request: ExportTraceServiceRequest = if json {
        serde_json::from_slice(&raw).map_err(|e| format!("bad OTLP/JSON: {e}"))?
    } else {
        ExportTraceServiceRequest::decode(raw.as_slice()).map_err(|e| format!("bad OTLP protobuf: {e}"))?
    };
    let mut spans = Vec::new();
    for rs in request.resource_spans {
        let resource = rs.resource.map(|r| attrs(&r.attributes)).unwrap_or_default();
        for ss in rs.scope_spans {
            let (scope_name, scope_version) = ss.scope.map(|s| (s.name, s.version)).unwrap_or_default();
            for span in ss.spans {
                let status = span.status.unwrap_or_default();
                spans.push(ReceivedSpan {
                    trace_id_hex: hex(&span.trace_id),
                    span_id_hex: hex(&span.span_id),
                    parent_span_id_hex: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
                    name: span.name,
                    kind: span.kind,
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                    status_code: status.code,
                    status_message: status.message,
                    attributes: attrs(&span.attributes),
                    events: span
                        .events
                        .into_iter()
                        .map(|e| ReceivedEvent {
                            name: e.name,
                            time_unix_nano: e.time_unix_nano,
                            attributes: attrs(&e.attributes),
                        })
                        .collect(),
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                });
            }
        }
    }
    Ok(spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attrs(kvs: &[KeyValue]) -> Vec<(String, Value)> {
    kvs.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, to_json))).collect()
}

fn to_json(value: &AnyValue) -> Value {
    match &value.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or_else(|| Value::String(d.to_string()), Value::Number)
        }
        Some(any_value::Value::ArrayValue(a)) => Value::Array(a.values.iter().map(to_json).collect()),
        Some(any_value::Value::KvlistValue(l)) => Value::Object(
            l.values.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, to_json))).collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Some(other) => Value::String(format!("{other:?}")),
    }
}
