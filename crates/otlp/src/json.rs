//! OTLP/JSON encoding: the proto3 JSON mapping with the OTLP deviations (hex ids, integer enums, 64-bit integers as
//! decimal strings, lowerCamelCase keys). Encoding is strict; decoding is lenient the way the spec asks receivers to
//! be (numbers or strings for 64-bit integers, hex or base64 ids, enum names or numbers, unknown fields ignored).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::error::OtlpError;
use crate::model::{AnyValue, DecodedSpan, KeyValue, Resource, Span, SpanEvent, SpanKind, StatusCode, hex};

// --- encoding -------------------------------------------------------------------------------------------------------

/// Encodes an `ExportTraceServiceRequest` (one resource, one scope named after the service) as OTLP/JSON.
pub fn encode_json(resource: &Resource, spans: &[Span]) -> Vec<u8> {
    let mut scope = Map::new();
    scope.insert("name".into(), Value::String(resource.service_name.clone()));
    if !resource.service_version.is_empty() {
        scope.insert("version".into(), Value::String(resource.service_version.clone()));
    }
    let body = json!({
        "resourceSpans": [{
            "resource": { "attributes": attrs_to_json(&resource.wire_attributes()) },
            "scopeSpans": [{
                "scope": scope,
                "spans": spans.iter().map(span_to_json).collect::<Vec<_>>(),
            }],
        }],
    });
    // Serialising a `Value` cannot fail (all map keys are strings).
    serde_json::to_vec(&body).unwrap_or_default()
}

fn span_to_json(span: &Span) -> Value {
    let mut m = Map::new();
    m.insert("traceId".into(), Value::String(hex(&span.trace_id)));
    m.insert("spanId".into(), Value::String(hex(&span.span_id)));
    if let Some(parent) = &span.parent_span_id {
        m.insert("parentSpanId".into(), Value::String(hex(parent)));
    }
    m.insert("name".into(), Value::String(span.name.clone()));
    m.insert("kind".into(), Value::from(span.kind.as_i32()));
    m.insert("startTimeUnixNano".into(), Value::String(span.start_unix_nano.to_string()));
    m.insert("endTimeUnixNano".into(), Value::String(span.end_unix_nano.to_string()));
    m.insert("attributes".into(), attrs_to_json(&span.attributes));
    if !span.events.is_empty() {
        m.insert("events".into(), Value::Array(span.events.iter().map(event_to_json).collect()));
    }
    let mut status = Map::new();
    status.insert("code".into(), Value::from(span.status.as_i32()));
    if let Some(message) = &span.status_message {
        status.insert("message".into(), Value::String(message.clone()));
    }
    m.insert("status".into(), Value::Object(status));
    Value::Object(m)
}

fn event_to_json(event: &SpanEvent) -> Value {
    json!({
        "timeUnixNano": event.time_unix_nano.to_string(),
        "name": event.name,
        "attributes": attrs_to_json(&event.attributes),
    })
}

fn attrs_to_json(attrs: &[KeyValue]) -> Value {
    Value::Array(attrs.iter().map(kv_to_json).collect())
}

fn kv_to_json(kv: &KeyValue) -> Value {
    json!({ "key": kv.key, "value": value_to_json(&kv.value) })
}

fn value_to_json(value: &AnyValue) -> Value {
    match value {
        AnyValue::String(s) => json!({ "stringValue": s }),
        AnyValue::Bool(b) => json!({ "boolValue": b }),
        AnyValue::Int(i) => json!({ "intValue": i.to_string() }),
        AnyValue::Double(d) => json!({ "doubleValue": double_to_json(*d) }),
        AnyValue::Array(values) => {
            json!({ "arrayValue": { "values": values.iter().map(value_to_json).collect::<Vec<_>>() } })
        }
        AnyValue::KvList(values) => {
            json!({ "kvlistValue": { "values": values.iter().map(kv_to_json).collect::<Vec<_>>() } })
        }
        AnyValue::Bytes(b) => json!({ "bytesValue": BASE64.encode(b) }),
    }
}

/// proto3 JSON writes the non-finite doubles as the strings `NaN`, `Infinity` and `-Infinity`.
fn double_to_json(d: f64) -> Value {
    if d.is_nan() {
        Value::String("NaN".into())
    } else if d.is_infinite() {
        Value::String(if d > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        Value::from(d)
    }
}

// --- decoding -------------------------------------------------------------------------------------------------------

/// Decodes an OTLP/JSON `ExportTraceServiceRequest` into spans with their resource and scope.
pub fn decode_json(body: &[u8]) -> Result<Vec<DecodedSpan>, OtlpError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| OtlpError::Invalid(format!("not an OTLP/JSON trace request: {e}")))?;
    let root = root.as_object().ok_or_else(|| invalid("the request body must be a JSON object"))?;
    let mut out = Vec::new();
    for rs in array(root.get("resourceSpans"), "resourceSpans")? {
        let resource = match rs.get("resource") {
            Some(r) if !r.is_null() => attrs_from_json(r.get("attributes"))?,
            _ => Vec::new(),
        };
        // `instrumentationLibrarySpans` / `instrumentationLibrary` are the pre-1.0 names of the scope fields.
        let scope_spans = rs.get("scopeSpans").or_else(|| rs.get("instrumentationLibrarySpans"));
        for ss in array(scope_spans, "scopeSpans")? {
            let scope = ss.get("scope").or_else(|| ss.get("instrumentationLibrary"));
            let scope_name = scope.and_then(|s| s.get("name")).and_then(Value::as_str).unwrap_or_default();
            let scope_version = scope.and_then(|s| s.get("version")).and_then(Value::as_str).unwrap_or_default();
            for span in array(ss.get("spans"), "spans")? {
                out.push(DecodedSpan {
                    resource: resource.clone(),
                    scope_name: scope_name.to_owned(),
                    scope_version: scope_version.to_owned(),
                    span: span_from_json(span)?,
                });
            }
        }
    }
    Ok(out)
}

fn invalid(message: impl Into<String>) -> OtlpError {
    OtlpError::Invalid(message.into())
}

/// A missing or null list is empty; anything else that is not an array is an error.
fn array<'a>(value: Option<&'a Value>, field: &str) -> Result<&'a [Value], OtlpError> {
    match value {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(format!("{field} must be an array"))),
    }
}

fn span_from_json(span: &Value) -> Result<Span, OtlpError> {
    let trace_id =
        id_from_json::<16>(span.get("traceId"), "traceId")?.ok_or_else(|| invalid("a span has no traceId"))?;
    let span_id = id_from_json::<8>(span.get("spanId"), "spanId")?.ok_or_else(|| invalid("a span has no spanId"))?;
    let parent_span_id = id_from_json::<8>(span.get("parentSpanId"), "parentSpanId")?;
    let name = span.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let kind = SpanKind::from_i32(enum_from_json(span.get("kind"), "SPAN_KIND_", &SPAN_KIND_NAMES)?);
    let status = span.get("status").filter(|s| !s.is_null());
    let status_code = match status {
        Some(s) => StatusCode::from_i32(enum_from_json(s.get("code"), "STATUS_CODE_", &STATUS_CODE_NAMES)?),
        None => StatusCode::Unset,
    };
    let status_message =
        status.and_then(|s| s.get("message")).and_then(Value::as_str).filter(|m| !m.is_empty()).map(str::to_owned);
    let mut events = Vec::new();
    for e in array(span.get("events"), "events")? {
        events.push(SpanEvent {
            name: e.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
            time_unix_nano: u64_from_json(e.get("timeUnixNano"), "timeUnixNano")?,
            attributes: attrs_from_json(e.get("attributes"))?,
        });
    }
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        name,
        kind,
        start_unix_nano: u64_from_json(span.get("startTimeUnixNano"), "startTimeUnixNano")?,
        end_unix_nano: u64_from_json(span.get("endTimeUnixNano"), "endTimeUnixNano")?,
        attributes: attrs_from_json(span.get("attributes"))?,
        events,
        status: status_code,
        status_message,
    })
}

const SPAN_KIND_NAMES: [&str; 6] = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"];
const STATUS_CODE_NAMES: [&str; 3] = ["UNSET", "OK", "ERROR"];

/// An enum as an integer (the OTLP rule) or, leniently, as its proto name (`SPAN_KIND_CLIENT`). Missing means 0.
fn enum_from_json(value: Option<&Value>, prefix: &str, names: &[&str]) -> Result<i32, OtlpError> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => {
            n.as_i64().and_then(|i| i32::try_from(i).ok()).ok_or_else(|| invalid(format!("bad enum value {n}")))
        }
        Some(Value::String(s)) => {
            let short = s.strip_prefix(prefix).unwrap_or(s);
            names
                .iter()
                .position(|name| *name == short)
                .and_then(|i| i32::try_from(i).ok())
                .or_else(|| s.parse().ok())
                .ok_or_else(|| invalid(format!("unknown enum value {s:?}")))
        }
        Some(other) => Err(invalid(format!("bad enum value {other}"))),
    }
}

/// An id: hex (the OTLP rule) or, when it is not `2*N` hex characters, base64. Missing, empty or all-zero is `None`.
fn id_from_json<const N: usize>(value: Option<&Value>, field: &str) -> Result<Option<[u8; N]>, OtlpError> {
    let s = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(invalid(format!("{field} must be a string"))),
    };
    if s.is_empty() {
        return Ok(None);
    }
    let bytes = match decode_hex(s) {
        Some(bytes) if bytes.len() == N => bytes,
        _ => BASE64
            .decode(s)
            .ok()
            .filter(|b| b.len() == N)
            .ok_or_else(|| invalid(format!("{field} must be {} hex characters (or base64 of {N} bytes)", 2 * N)))?,
    };
    let mut id = [0u8; N];
    id.copy_from_slice(&bytes);
    Ok((id != [0; N]).then_some(id))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes().chunks(2).map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?)).collect()
}

/// A 64-bit unsigned integer as a decimal string or a JSON number; missing means 0.
fn u64_from_json(value: Option<&Value>, field: &str) -> Result<u64, OtlpError> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| invalid(format!("{field} must be a non-negative integer"))),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| invalid(format!("{field} must be a decimal integer"))),
        Some(_) => Err(invalid(format!("{field} must be a string or a number"))),
    }
}

fn i64_from_json(value: &Value) -> Result<i64, OtlpError> {
    match value {
        Value::Number(n) => n.as_i64().ok_or_else(|| invalid("intValue must be a 64-bit integer")),
        Value::String(s) => s.trim().parse().map_err(|_| invalid("intValue must be a decimal integer")),
        _ => Err(invalid("intValue must be a string or a number")),
    }
}

fn f64_from_json(value: &Value) -> Result<f64, OtlpError> {
    match value {
        Value::Number(n) => n.as_f64().ok_or_else(|| invalid("doubleValue must be a number")),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other.trim().parse().map_err(|_| invalid("doubleValue must be a number")),
        },
        _ => Err(invalid("doubleValue must be a number")),
    }
}

fn attrs_from_json(value: Option<&Value>) -> Result<Vec<KeyValue>, OtlpError> {
    let mut out = Vec::new();
    for kv in array(value, "attributes")? {
        if let Some(kv) = kv_from_json(kv)? {
            out.push(kv);
        }
    }
    Ok(out)
}

/// An attribute whose value is empty is dropped.
fn kv_from_json(kv: &Value) -> Result<Option<KeyValue>, OtlpError> {
    let key = kv.get("key").and_then(Value::as_str).ok_or_else(|| invalid("an attribute has no key"))?;
    Ok(match kv.get("value") {
        Some(v) => value_from_json(v)?.map(|value| KeyValue { key: key.to_owned(), value }),
        None => None,
    })
}

/// One `AnyValue`; an empty object (or one with only unknown fields) is `None`.
fn value_from_json(value: &Value) -> Result<Option<AnyValue>, OtlpError> {
    let Some(obj) = value.as_object() else {
        return if value.is_null() { Ok(None) } else { Err(invalid("an attribute value must be an object")) };
    };
    for (key, v) in obj {
        if v.is_null() {
            continue;
        }
        let decoded = match key.as_str() {
            "stringValue" => {
                AnyValue::String(v.as_str().ok_or_else(|| invalid("stringValue must be a string"))?.into())
            }
            "boolValue" => AnyValue::Bool(v.as_bool().ok_or_else(|| invalid("boolValue must be a boolean"))?),
            "intValue" => AnyValue::Int(i64_from_json(v)?),
            "doubleValue" => AnyValue::Double(f64_from_json(v)?),
            "arrayValue" => {
                let mut values = Vec::new();
                for item in array(v.get("values"), "arrayValue.values")? {
                    if let Some(item) = value_from_json(item)? {
                        values.push(item);
                    }
                }
                AnyValue::Array(values)
            }
            "kvlistValue" => {
                let mut values = Vec::new();
                for item in array(v.get("values"), "kvlistValue.values")? {
                    if let Some(item) = kv_from_json(item)? {
                        values.push(item);
                    }
                }
                AnyValue::KvList(values)
            }
            "bytesValue" => {
                let s = v.as_str().ok_or_else(|| invalid("bytesValue must be a base64 string"))?;
                AnyValue::Bytes(BASE64.decode(s).map_err(|_| invalid("bytesValue must be base64"))?)
            }
            _ => continue,
        };
        return Ok(Some(decoded));
    }
    Ok(None)
}

/// The partial-success part of a JSON `ExportTraceServiceResponse`: `(rejected_spans, error_message)`, or `None` for
/// a full success (or an unparsable body, which a 200 answer is treated as).
pub(crate) fn decode_partial_success(body: &[u8]) -> Option<(i64, String)> {
    let root: Value = serde_json::from_slice(body).ok()?;
    let partial = root.get("partialSuccess")?;
    let rejected = partial.get("rejectedSpans").and_then(|v| i64_from_json(v).ok()).unwrap_or(0);
    let message = partial.get("errorMessage").and_then(Value::as_str).unwrap_or_default().to_owned();
    (rejected != 0 || !message.is_empty()).then_some((rejected, message))
}
