//! OTLP/HTTP binary encoding: hand-written prost messages for the parts of `opentelemetry-proto` that traces use
//! (field numbers from the published `.proto` files), and the conversion to and from the span model. No build
//! script and no protoc; fields we never send (trace state, links, dropped counts) are declared so they decode, and
//! any other unknown field is skipped by prost.

use prost::Message;

use crate::error::OtlpError;
use crate::model::{AnyValue, DecodedSpan, KeyValue, Resource, Span, SpanEvent, SpanId, SpanKind, StatusCode, TraceId};

// --- messages -------------------------------------------------------------------------------------------------------

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`
#[derive(Clone, PartialEq, Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse`
#[derive(Clone, PartialEq, Message)]
pub struct ExportTraceServiceResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportTracePartialSuccess>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ExportTracePartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected_spans: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<ProtoResource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `opentelemetry.proto.resource.v1.Resource`
#[derive(Clone, PartialEq, Message)]
pub struct ProtoResource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<ProtoKeyValue>,
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<ProtoSpan>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<ProtoKeyValue>,
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

/// `opentelemetry.proto.trace.v1.Span`
#[derive(Clone, PartialEq, Message)]
pub struct ProtoSpan {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "3")]
    pub trace_state: String,
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<ProtoKeyValue>,
    #[prost(uint32, tag = "10")]
    pub dropped_attributes_count: u32,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<ProtoEvent>,
    #[prost(uint32, tag = "12")]
    pub dropped_events_count: u32,
    #[prost(message, repeated, tag = "13")]
    pub links: Vec<ProtoLink>,
    #[prost(uint32, tag = "14")]
    pub dropped_links_count: u32,
    #[prost(message, optional, tag = "15")]
    pub status: Option<ProtoStatus>,
    #[prost(fixed32, tag = "16")]
    pub flags: u32,
}

/// `opentelemetry.proto.trace.v1.Span.Event`
#[derive(Clone, PartialEq, Message)]
pub struct ProtoEvent {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<ProtoKeyValue>,
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

/// `opentelemetry.proto.trace.v1.Span.Link` (decoded and ignored; never sent).
#[derive(Clone, PartialEq, Message)]
pub struct ProtoLink {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "3")]
    pub trace_state: String,
    #[prost(message, repeated, tag = "4")]
    pub attributes: Vec<ProtoKeyValue>,
    #[prost(uint32, tag = "5")]
    pub dropped_attributes_count: u32,
    #[prost(fixed32, tag = "6")]
    pub flags: u32,
}

/// `opentelemetry.proto.trace.v1.Status` (field 1 is reserved).
#[derive(Clone, PartialEq, Message)]
pub struct ProtoStatus {
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// `opentelemetry.proto.common.v1.KeyValue`
#[derive(Clone, PartialEq, Message)]
pub struct ProtoKeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<ProtoAnyValue>,
}

/// `opentelemetry.proto.common.v1.AnyValue`
#[derive(Clone, PartialEq, Message)]
pub struct ProtoAnyValue {
    #[prost(oneof = "ProtoValue", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<ProtoValue>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ProtoValue {
    #[prost(string, tag = "1")]
    String(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(message, tag = "5")]
    Array(ProtoArrayValue),
    #[prost(message, tag = "6")]
    Kvlist(ProtoKeyValueList),
    #[prost(bytes = "vec", tag = "7")]
    Bytes(Vec<u8>),
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtoArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<ProtoAnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtoKeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<ProtoKeyValue>,
}

// --- encoding -------------------------------------------------------------------------------------------------------

/// Encodes an `ExportTraceServiceRequest` (one resource, one scope named after the service) as proto3 binary.
pub fn encode_protobuf(resource: &Resource, spans: &[Span]) -> Vec<u8> {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(ProtoResource {
                attributes: resource.wire_attributes().iter().map(kv_to_proto).collect(),
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: resource.service_name.clone(),
                    version: resource.service_version.clone(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                }),
                spans: spans.iter().map(span_to_proto).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    request.encode_to_vec()
}

fn span_to_proto(span: &Span) -> ProtoSpan {
    ProtoSpan {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        trace_state: String::new(),
        parent_span_id: span.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
        name: span.name.clone(),
        kind: span.kind.as_i32(),
        start_time_unix_nano: span.start_unix_nano,
        end_time_unix_nano: span.end_unix_nano,
        attributes: span.attributes.iter().map(kv_to_proto).collect(),
        dropped_attributes_count: 0,
        events: span
            .events
            .iter()
            .map(|e| ProtoEvent {
                time_unix_nano: e.time_unix_nano,
                name: e.name.clone(),
                attributes: e.attributes.iter().map(kv_to_proto).collect(),
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: match (span.status, &span.status_message) {
            (StatusCode::Unset, None) => None,
            (code, message) => Some(ProtoStatus { message: message.clone().unwrap_or_default(), code: code.as_i32() }),
        },
        flags: 0,
    }
}

fn kv_to_proto(kv: &KeyValue) -> ProtoKeyValue {
    ProtoKeyValue { key: kv.key.clone(), value: Some(value_to_proto(&kv.value)) }
}

fn value_to_proto(value: &AnyValue) -> ProtoAnyValue {
    let v = match value {
        AnyValue::String(s) => ProtoValue::String(s.clone()),
        AnyValue::Bool(b) => ProtoValue::Bool(*b),
        AnyValue::Int(i) => ProtoValue::Int(*i),
        AnyValue::Double(d) => ProtoValue::Double(*d),
        AnyValue::Array(values) => {
            ProtoValue::Array(ProtoArrayValue { values: values.iter().map(value_to_proto).collect() })
        }
        AnyValue::KvList(values) => {
            ProtoValue::Kvlist(ProtoKeyValueList { values: values.iter().map(kv_to_proto).collect() })
        }
        AnyValue::Bytes(b) => ProtoValue::Bytes(b.clone()),
    };
    ProtoAnyValue { value: Some(v) }
}

// --- decoding -------------------------------------------------------------------------------------------------------

/// Decodes a binary `ExportTraceServiceRequest` into spans with their resource and scope. Unknown fields are skipped;
/// a span whose trace or span id has the wrong length is an error.
pub fn decode_protobuf(body: &[u8]) -> Result<Vec<DecodedSpan>, OtlpError> {
    let request = ExportTraceServiceRequest::decode(body)
        .map_err(|e| OtlpError::Invalid(format!("not an OTLP protobuf trace request: {e}")))?;
    let mut out = Vec::new();
    for rs in request.resource_spans {
        let resource: Vec<KeyValue> =
            rs.resource.map(|r| r.attributes.into_iter().filter_map(kv_from_proto).collect()).unwrap_or_default();
        for ss in rs.scope_spans {
            let (scope_name, scope_version) = ss.scope.map(|s| (s.name, s.version)).unwrap_or_default();
            for span in ss.spans {
                out.push(DecodedSpan {
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    span: span_from_proto(span)?,
                });
            }
        }
    }
    Ok(out)
}

fn span_from_proto(span: ProtoSpan) -> Result<Span, OtlpError> {
    let trace_id: TraceId = id_bytes(&span.trace_id, "traceId")?;
    let span_id: SpanId = id_bytes(&span.span_id, "spanId")?;
    let parent_span_id = if span.parent_span_id.is_empty() {
        None
    } else {
        let parent: SpanId = id_bytes(&span.parent_span_id, "parentSpanId")?;
        (parent != [0; 8]).then_some(parent)
    };
    let (status, status_message) = match span.status {
        Some(s) => (StatusCode::from_i32(s.code), (!s.message.is_empty()).then_some(s.message)),
        None => (StatusCode::Unset, None),
    };
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        name: span.name,
        kind: SpanKind::from_i32(span.kind),
        start_unix_nano: span.start_time_unix_nano,
        end_unix_nano: span.end_time_unix_nano,
        attributes: span.attributes.into_iter().filter_map(kv_from_proto).collect(),
        events: span
            .events
            .into_iter()
            .map(|e| SpanEvent {
                name: e.name,
                time_unix_nano: e.time_unix_nano,
                attributes: e.attributes.into_iter().filter_map(kv_from_proto).collect(),
            })
            .collect(),
        status,
        status_message,
    })
}

fn id_bytes<const N: usize>(bytes: &[u8], field: &str) -> Result<[u8; N], OtlpError> {
    let id: [u8; N] =
        bytes.try_into().map_err(|_| OtlpError::Invalid(format!("{field} must be {N} bytes, got {}", bytes.len())))?;
    if id == [0; N] {
        return Err(OtlpError::Invalid(format!("{field} is all zeroes")));
    }
    Ok(id)
}

/// An attribute without a value (an empty `AnyValue`) is dropped.
fn kv_from_proto(kv: ProtoKeyValue) -> Option<KeyValue> {
    let value = value_from_proto(kv.value?)?;
    Some(KeyValue { key: kv.key, value })
}

fn value_from_proto(value: ProtoAnyValue) -> Option<AnyValue> {
    Some(match value.value? {
        ProtoValue::String(s) => AnyValue::String(s),
        ProtoValue::Bool(b) => AnyValue::Bool(b),
        ProtoValue::Int(i) => AnyValue::Int(i),
        ProtoValue::Double(d) => AnyValue::Double(d),
        ProtoValue::Array(a) => AnyValue::Array(a.values.into_iter().filter_map(value_from_proto).collect()),
        ProtoValue::Kvlist(l) => AnyValue::KvList(l.values.into_iter().filter_map(kv_from_proto).collect()),
        ProtoValue::Bytes(b) => AnyValue::Bytes(b),
    })
}

/// The partial-success part of a binary `ExportTraceServiceResponse`: `(rejected_spans, error_message)`, or `None`
/// when the answer is a full success (or not decodable, which a 200 answer is treated as).
pub(crate) fn decode_partial_success(body: &[u8]) -> Option<(i64, String)> {
    let response = ExportTraceServiceResponse::decode(body).ok()?;
    let partial = response.partial_success?;
    (partial.rejected_spans != 0 || !partial.error_message.is_empty())
        .then_some((partial.rejected_spans, partial.error_message))
}

/// An `ExportTraceServiceResponse` in protobuf: empty on full success, else a partial success with the number of
/// rejected spans and why (a receiver's answer; still HTTP 200, and the sender must not retry).
pub fn encode_response_protobuf(rejected_spans: i64, error_message: &str) -> Vec<u8> {
    let partial_success = (rejected_spans > 0 || !error_message.is_empty())
        .then(|| ExportTracePartialSuccess { rejected_spans, error_message: error_message.to_owned() });
    ExportTraceServiceResponse { partial_success }.encode_to_vec()
}

/// The same response in OTLP/JSON: `{}` or `{"partialSuccess":{"rejectedSpans":"2","errorMessage":"…"}}`.
pub fn encode_response_json(rejected_spans: i64, error_message: &str) -> Vec<u8> {
    let body = if rejected_spans > 0 || !error_message.is_empty() {
        serde_json::json!({"partialSuccess": {"rejectedSpans": rejected_spans.to_string(), "errorMessage": error_message}})
    } else {
        serde_json::json!({})
    };
    body.to_string().into_bytes()
}
