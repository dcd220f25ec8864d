//! The span data model shared by both encodings: ids, attribute values, spans and the resource. Plain data with small
//! builder helpers; it must not know about HTTP, queues or either wire format.

use std::time::{SystemTime, UNIX_EPOCH};

/// A 16-byte trace id (raw bytes; 32 hex characters on the JSON wire).
pub type TraceId = [u8; 16];
/// An 8-byte span id (raw bytes; 16 hex characters on the JSON wire).
pub type SpanId = [u8; 8];

/// A random trace id that is never all zeroes (an all-zero id is invalid in OTLP).
pub fn new_trace_id() -> TraceId {
    loop {
        let id: TraceId = rand::random();
        if id != [0; 16] {
            return id;
        }
    }
}

/// A random span id that is never all zeroes.
pub fn new_span_id() -> SpanId {
    loop {
        let id: SpanId = rand::random();
        if id != [0; 8] {
            return id;
        }
    }
}

/// Lowercase hex of `bytes` (the OTLP/JSON form of ids).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Nanoseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_unix_nano() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// An OTLP attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyValue {
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Array(Vec<AnyValue>),
    KvList(Vec<KeyValue>),
    Bytes(Vec<u8>),
}

impl AnyValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AnyValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AnyValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AnyValue::Double(d) => Some(*d),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AnyValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[AnyValue]> {
        match self {
            AnyValue::Array(values) => Some(values),
            _ => None,
        }
    }
}

impl From<&str> for AnyValue {
    fn from(v: &str) -> Self {
        AnyValue::String(v.to_owned())
    }
}

impl From<String> for AnyValue {
    fn from(v: String) -> Self {
        AnyValue::String(v)
    }
}

impl From<&String> for AnyValue {
    fn from(v: &String) -> Self {
        AnyValue::String(v.clone())
    }
}

impl From<bool> for AnyValue {
    fn from(v: bool) -> Self {
        AnyValue::Bool(v)
    }
}

impl From<i64> for AnyValue {
    fn from(v: i64) -> Self {
        AnyValue::Int(v)
    }
}

impl From<i32> for AnyValue {
    fn from(v: i32) -> Self {
        AnyValue::Int(i64::from(v))
    }
}

impl From<u32> for AnyValue {
    fn from(v: u32) -> Self {
        AnyValue::Int(i64::from(v))
    }
}

/// Values above `i64::MAX` saturate (OTLP has no unsigned integer).
impl From<u64> for AnyValue {
    fn from(v: u64) -> Self {
        AnyValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

/// Values above `i64::MAX` saturate.
impl From<usize> for AnyValue {
    fn from(v: usize) -> Self {
        AnyValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<f64> for AnyValue {
    fn from(v: f64) -> Self {
        AnyValue::Double(v)
    }
}

impl From<Vec<AnyValue>> for AnyValue {
    fn from(v: Vec<AnyValue>) -> Self {
        AnyValue::Array(v)
    }
}

/// A string array (`gen_ai.response.finish_reasons`, `gen_ai.request.stop_sequences`).
impl From<Vec<String>> for AnyValue {
    fn from(v: Vec<String>) -> Self {
        AnyValue::Array(v.into_iter().map(AnyValue::String).collect())
    }
}

impl From<&[&str]> for AnyValue {
    fn from(v: &[&str]) -> Self {
        AnyValue::Array(v.iter().map(|s| AnyValue::from(*s)).collect())
    }
}

impl<const N: usize> From<[&str; N]> for AnyValue {
    fn from(v: [&str; N]) -> Self {
        AnyValue::Array(v.iter().map(|s| AnyValue::from(*s)).collect())
    }
}

impl From<Vec<KeyValue>> for AnyValue {
    fn from(v: Vec<KeyValue>) -> Self {
        AnyValue::KvList(v)
    }
}

/// One attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    pub key: String,
    pub value: AnyValue,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: impl Into<AnyValue>) -> Self {
        KeyValue { key: key.into(), value: value.into() }
    }
}

/// Span kind; the wire value is 1..=5 (0, "unspecified", is never produced and decodes as `Internal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    #[default]
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// The OTLP enum number.
    pub fn as_i32(self) -> i32 {
        match self {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }

    /// From the OTLP enum number; unspecified (0) and unknown values become `Internal`.
    pub fn from_i32(v: i32) -> SpanKind {
        match v {
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Internal,
        }
    }
}

/// Span status code; the wire value is 0 (unset), 1 (ok), 2 (error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn as_i32(self) -> i32 {
        match self {
            StatusCode::Unset => 0,
            StatusCode::Ok => 1,
            StatusCode::Error => 2,
        }
    }

    /// Unknown values become `Unset`.
    pub fn from_i32(v: i32) -> StatusCode {
        match v {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }
}

/// A timestamped event on a span (for example `gen_ai.evaluation.result`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub name: String,
    pub time_unix_nano: u64,
    pub attributes: Vec<KeyValue>,
}

impl SpanEvent {
    /// An event named `name`, stamped now.
    pub fn new(name: impl Into<String>) -> Self {
        SpanEvent { name: name.into(), time_unix_nano: now_unix_nano(), attributes: Vec::new() }
    }

    pub fn attr(mut self, key: &str, value: impl Into<AnyValue>) -> Self {
        set_attr(&mut self.attributes, key, value.into());
        self
    }
}

/// A finished (or finishing) span, ready to export.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: Vec<KeyValue>,
    pub events: Vec<SpanEvent>,
    pub status: StatusCode,
    pub status_message: Option<String>,
}

impl Span {
    /// A span in `trace_id` (child of `parent_span_id` when given) with a fresh span id, started now; its end time is
    /// the start time until [`Span::end`] is called.
    pub fn start(trace_id: TraceId, parent_span_id: Option<SpanId>, name: impl Into<String>, kind: SpanKind) -> Self {
        let now = now_unix_nano();
        Span {
            trace_id,
            span_id: new_span_id(),
            parent_span_id,
            name: name.into(),
            kind,
            start_unix_nano: now,
            end_unix_nano: now,
            attributes: Vec::new(),
            events: Vec::new(),
            status: StatusCode::Unset,
            status_message: None,
        }
    }

    /// Sets the end time to now.
    pub fn end(&mut self) -> &mut Self {
        self.end_unix_nano = now_unix_nano().max(self.start_unix_nano);
        self
    }

    /// Sets an attribute, replacing an earlier value under the same key.
    pub fn attr(&mut self, key: &str, value: impl Into<AnyValue>) -> &mut Self {
        set_attr(&mut self.attributes, key, value.into());
        self
    }

    /// The value of attribute `key`, if set.
    pub fn get(&self, key: &str) -> Option<&AnyValue> {
        self.attributes.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
    }

    pub fn event(&mut self, event: SpanEvent) -> &mut Self {
        self.events.push(event);
        self
    }

    /// Marks the span failed: status ERROR with a short message, and `error.type`.
    pub fn error(&mut self, error_type: &str, message: impl Into<String>) -> &mut Self {
        self.status = StatusCode::Error;
        self.status_message = Some(message.into());
        self.attr("error.type", error_type)
    }
}

fn set_attr(attributes: &mut Vec<KeyValue>, key: &str, value: AnyValue) {
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(existing) => existing.value = value,
        None => attributes.push(KeyValue { key: key.to_owned(), value }),
    }
}

/// The resource every exported span is attached to: `service.name`, `service.version` and any extra attributes (for
/// example `deployment.environment.name`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    pub service_name: String,
    pub service_version: String,
    pub attributes: Vec<KeyValue>,
}

impl Resource {
    pub fn new(service_name: impl Into<String>, service_version: impl Into<String>) -> Self {
        Resource { service_name: service_name.into(), service_version: service_version.into(), attributes: Vec::new() }
    }

    pub fn attr(mut self, key: &str, value: impl Into<AnyValue>) -> Self {
        set_attr(&mut self.attributes, key, value.into());
        self
    }

    /// The attribute list as sent on the wire: `service.name`, `service.version` (when non-empty), then the extra
    /// attributes except any that would repeat those two keys.
    pub fn wire_attributes(&self) -> Vec<KeyValue> {
        let mut out = Vec::with_capacity(self.attributes.len() + 2);
        out.push(KeyValue::new("service.name", self.service_name.as_str()));
        if !self.service_version.is_empty() {
            out.push(KeyValue::new("service.version", self.service_version.as_str()));
        }
        out.extend(
            self.attributes.iter().filter(|kv| kv.key != "service.name" && kv.key != "service.version").cloned(),
        );
        out
    }
}

/// One span as decoded from an incoming OTLP request, with the resource and scope it was sent under.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedSpan {
    /// The resource attributes (`service.name`, ...), as received.
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope name (empty when absent).
    pub scope_name: String,
    /// The instrumentation scope version (empty when absent).
    pub scope_version: String,
    pub span: Span,
}

impl DecodedSpan {
    /// A resource attribute by key.
    pub fn resource_attr(&self, key: &str) -> Option<&AnyValue> {
        self.resource.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
    }
}
