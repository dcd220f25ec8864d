#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The JSON and protobuf encodings: shape per the spec, round trips through the fake collector's independent
//! (`opentelemetry-proto`) decoder, and our own lenient decoders.

use std::io::Write as _;

use mentorfy_fakes::otlp::decode_export_request;
use mentorfy_otlp::{
    AnyValue, OtlpError, SpanKind, StatusCode, decode_json, decode_protobuf, encode_json, encode_protobuf, hex,
    new_span_id, new_trace_id,
};
use serde_json::{Value, json};

use crate::helpers::{PARENT_ID, SPAN_ID, TRACE_ID, chat_span, resource, rich_span};

fn attr<'a>(attrs: &'a Value, key: &str) -> &'a Value {
    attrs.as_array().unwrap().iter().find(|kv| kv["key"] == key).map(|kv| &kv["value"]).unwrap()
}

/// Every object key in the document, recursively (attribute keys are values, not object keys).
fn object_keys(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                object_keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| object_keys(v, out)),
        _ => {}
    }
}

#[test]
fn json_encoding_matches_the_spec_example_shapes() {
    let body = encode_json(&resource(), &[chat_span()]);
    let doc: Value = serde_json::from_slice(&body).unwrap();

    let rs = &doc["resourceSpans"][0];
    assert_eq!(attr(&rs["resource"]["attributes"], "service.name"), &json!({"stringValue": "chat-backend"}));
    assert_eq!(attr(&rs["resource"]["attributes"], "service.version"), &json!({"stringValue": "0.1.0"}));
    assert_eq!(
        attr(&rs["resource"]["attributes"], "deployment.environment.name"),
        &json!({"stringValue": "production"})
    );
    assert_eq!(rs["scopeSpans"][0]["scope"], json!({"name": "chat-backend", "version": "0.1.0"}));

    let span = &rs["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(span["spanId"], "eee19b7ec3c1b174");
    assert_eq!(span["parentSpanId"], "eee19b7ec3c1b173");
    assert_eq!(span["name"], "chat claude-sonnet-4-5-20250929");
    assert_eq!(span["kind"], json!(3), "enums are integers");
    assert_eq!(span["startTimeUnixNano"], json!("1763776800000000000"), "int64 as decimal strings");
    assert_eq!(span["endTimeUnixNano"], json!("1763776801400000000"));
    assert_eq!(span["status"], json!({"code": 0}));

    let attrs = &span["attributes"];
    assert_eq!(attr(attrs, "gen_ai.operation.name"), &json!({"stringValue": "chat"}));
    assert_eq!(attr(attrs, "gen_ai.request.stream"), &json!({"boolValue": true}));
    assert_eq!(attr(attrs, "gen_ai.request.max_tokens"), &json!({"intValue": "4096"}));
    assert_eq!(attr(attrs, "gen_ai.usage.input_tokens"), &json!({"intValue": "812"}));
    assert_eq!(attr(attrs, "server.port"), &json!({"intValue": "443"}));
    assert_eq!(attr(attrs, "gen_ai.response.time_to_first_chunk"), &json!({"doubleValue": 0.42}));
    assert_eq!(
        attr(attrs, "gen_ai.response.finish_reasons"),
        &json!({"arrayValue": {"values": [{"stringValue": "end_turn"}]}})
    );

    let mut keys = Vec::new();
    object_keys(&doc, &mut keys);
    assert!(keys.iter().all(|k| !k.contains('_')), "snake_case key in {keys:?}");
}

#[test]
fn json_encoding_of_events_status_and_every_value_type() {
    let span = rich_span();
    let doc: Value = serde_json::from_slice(&encode_json(&resource(), std::slice::from_ref(&span))).unwrap();
    let s = &doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert!(s.get("parentSpanId").is_none(), "a root span has no parentSpanId");
    assert_eq!(s["kind"], json!(1));
    assert_eq!(s["status"], json!({"code": 2, "message": "provider overloaded"}));
    let attrs = &s["attributes"];
    assert_eq!(attr(attrs, "error.type"), &json!({"stringValue": "overloaded_error"}));
    assert_eq!(attr(attrs, "i"), &json!({"intValue": "-42"}));
    assert_eq!(attr(attrs, "big"), &json!({"intValue": i64::MAX.to_string()}));
    assert_eq!(attr(attrs, "d"), &json!({"doubleValue": 1.0}));
    assert_eq!(attr(attrs, "bytes"), &json!({"bytesValue": "AAEC/w=="}));
    assert_eq!(
        attr(attrs, "kv"),
        &json!({"kvlistValue": {"values": [
            {"key": "inner", "value": {"stringValue": "x"}},
            {"key": "n", "value": {"intValue": "7"}}
        ]}})
    );
    let event = &s["events"][0];
    assert_eq!(event["name"], "gen_ai.evaluation.result");
    assert_eq!(event["timeUnixNano"], json!(span.events[0].time_unix_nano.to_string()));
    assert_eq!(attr(&event["attributes"], "gen_ai.evaluation.score.value"), &json!({"doubleValue": 0.82}));
}

#[test]
fn json_encoding_is_read_by_the_canonical_decoder() {
    let body = encode_json(&resource(), &[chat_span(), rich_span()]);
    let spans = decode_export_request(&body, "application/json", None).unwrap();
    assert_eq!(spans.len(), 2);
    let chat = &spans[0];
    assert_eq!(chat.trace_id_hex, hex(&TRACE_ID));
    assert_eq!(chat.span_id_hex, hex(&SPAN_ID));
    assert_eq!(chat.parent_span_id_hex.as_deref(), Some(hex(&PARENT_ID).as_str()));
    assert_eq!(chat.kind, 3);
    assert_eq!(chat.start_unix_nano, 1_763_776_800_000_000_000);
    assert_eq!(chat.int("gen_ai.request.max_tokens"), Some(4096));
    assert_eq!(chat.double("gen_ai.response.time_to_first_chunk"), Some(0.42));
    assert_eq!(chat.strings("gen_ai.response.finish_reasons"), Some(vec!["end_turn"]));
    assert_eq!(chat.bool("gen_ai.request.stream"), Some(true));
    assert_eq!(chat.resource_str("service.name"), Some("chat-backend"));
    let rich = &spans[1];
    assert_eq!(rich.status_code, 2);
    assert_eq!(rich.status_message, "provider overloaded");
    assert_eq!(rich.int("big"), Some(i64::MAX));
    assert_eq!(rich.double("d"), Some(1.0), "a whole double stays a double");
    assert_eq!(rich.int("d"), None);
    assert_eq!(rich.str("bytes"), Some("AAEC/w=="));
    assert_eq!(rich.events[0].double("gen_ai.evaluation.score.value"), Some(0.82));
}

#[test]
fn protobuf_round_trips_through_the_canonical_decoder() {
    let chat = chat_span();
    let rich = rich_span();
    let body = encode_protobuf(&resource(), &[chat.clone(), rich.clone()]);
    let spans = decode_export_request(&body, "application/x-protobuf", None).unwrap();
    assert_eq!(spans.len(), 2);

    let c = &spans[0];
    assert_eq!(c.trace_id_hex, "5b8efff798038103d269b633813fc60c");
    assert_eq!(c.span_id_hex, "eee19b7ec3c1b174");
    assert_eq!(c.parent_span_id_hex.as_deref(), Some("eee19b7ec3c1b173"));
    assert_eq!(c.name, chat.name);
    assert_eq!(c.kind, 3);
    assert_eq!((c.start_unix_nano, c.end_unix_nano), (chat.start_unix_nano, chat.end_unix_nano));
    assert_eq!(c.status_code, 0);
    assert_eq!(c.str("gen_ai.provider.name"), Some("anthropic"));
    assert_eq!(c.int("gen_ai.usage.input_tokens"), Some(812));
    assert_eq!(c.strings("gen_ai.response.finish_reasons"), Some(vec!["end_turn"]));
    assert_eq!(c.resource_str("deployment.environment.name"), Some("production"));
    assert_eq!((c.scope_name.as_str(), c.scope_version.as_str()), ("chat-backend", "0.1.0"));

    let r = &spans[1];
    assert_eq!(r.parent_span_id_hex, None);
    assert_eq!(r.kind, 1);
    assert_eq!((r.status_code, r.status_message.as_str()), (2, "provider overloaded"));
    assert_eq!(r.str("s"), Some("text ü ✓"));
    assert_eq!(r.bool("b"), Some(false));
    assert_eq!(r.int("i"), Some(-42));
    assert_eq!(r.double("d"), Some(1.0));
    assert_eq!(r.attr("arr"), Some(&json!(["a", 1, true])));
    assert_eq!(r.attr("kv"), Some(&json!({"inner": "x", "n": 7})));
    assert_eq!(r.str("bytes"), Some("AAEC/w=="));
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].name, "gen_ai.evaluation.result");
    assert_eq!(r.events[0].time_unix_nano, rich.events[0].time_unix_nano);
    assert_eq!(r.events[0].str("gen_ai.evaluation.name"), Some("helpfulness"));
}

#[test]
fn gzipped_bodies_decode_in_the_fake() {
    let body = encode_protobuf(&resource(), &[chat_span()]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&body).unwrap();
    let spans = decode_export_request(&gz.finish().unwrap(), "application/x-protobuf", Some("gzip")).unwrap();
    assert_eq!(spans[0].name, "chat claude-sonnet-4-5-20250929");
}

#[test]
fn our_decoders_round_trip_our_encoders() {
    let spans = vec![chat_span(), rich_span()];
    for decoded in [
        decode_json(&encode_json(&resource(), &spans)).unwrap(),
        decode_protobuf(&encode_protobuf(&resource(), &spans)).unwrap(),
    ] {
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].span, spans[0]);
        assert_eq!(decoded[1].span, spans[1]);
        assert_eq!(decoded[0].scope_name, "chat-backend");
        assert_eq!(decoded[0].resource_attr("service.name"), Some(&AnyValue::from("chat-backend")));
    }
}

#[test]
fn decode_json_reads_the_spec_example() {
    let body = br#"{
      "resourceSpans": [ {
        "resource": { "attributes": [
          { "key": "service.name", "value": { "stringValue": "chat-backend" } } ] },
        "scopeSpans": [ {
          "scope": { "name": "chat-backend.llm", "version": "0.1.0" },
          "spans": [ {
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
            "parentSpanId": "eee19b7ec3c1b173",
            "name": "chat claude-sonnet-4-5-20250929",
            "kind": 3,
            "startTimeUnixNano": "1763776800000000000",
            "endTimeUnixNano": "1763776801400000000",
            "attributes": [
              { "key": "gen_ai.request.max_tokens", "value": { "intValue": "4096" } },
              { "key": "gen_ai.response.finish_reasons", "value": { "arrayValue": { "values": [ { "stringValue": "end_turn" } ] } } },
              { "key": "gen_ai.response.time_to_first_chunk", "value": { "doubleValue": 0.42 } }
            ],
            "status": { "code": 0 }
          } ]
        } ]
      } ]
    }"#;
    let decoded = decode_json(body).unwrap();
    assert_eq!(decoded.len(), 1);
    let d = &decoded[0];
    assert_eq!(d.scope_name, "chat-backend.llm");
    assert_eq!(d.span.trace_id, TRACE_ID);
    assert_eq!(d.span.parent_span_id, Some(PARENT_ID));
    assert_eq!(d.span.kind, SpanKind::Client);
    assert_eq!(d.span.end_unix_nano, 1_763_776_801_400_000_000);
    assert_eq!(d.span.get("gen_ai.request.max_tokens"), Some(&AnyValue::Int(4096)));
    assert_eq!(d.span.get("gen_ai.response.finish_reasons"), Some(&AnyValue::from(["end_turn"])));
    assert_eq!(d.span.get("gen_ai.response.time_to_first_chunk"), Some(&AnyValue::Double(0.42)));
}

#[test]
fn decode_json_is_lenient_as_the_spec_asks() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = json!({
        "resourceSpans": [{
            "someFutureField": {"x": 1},
            "scopeSpans": [{
                "spans": [{
                    "traceId": b64.encode(TRACE_ID),
                    "spanId": b64.encode(SPAN_ID),
                    "parentSpanId": "",
                    "name": "lenient",
                    "kind": "SPAN_KIND_SERVER",
                    "startTimeUnixNano": 1_763_776_800_000_000_000u64,
                    "endTimeUnixNano": "1763776800000000001",
                    "attributes": [
                        {"key": "n", "value": {"intValue": 42}},
                        {"key": "s", "value": {"stringValue": "x"}, "unknown": true},
                        {"key": "empty", "value": {}},
                        {"key": "nan", "value": {"doubleValue": "NaN"}}
                    ],
                    "events": [{"timeUnixNano": 5, "name": "e"}],
                    "links": [{"traceId": "00", "spanId": "00"}],
                    "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                    "flags": 257,
                    "droppedAttributesCount": 0
                }]
            }]
        }]
    });
    let decoded = decode_json(body.to_string().as_bytes()).unwrap();
    let span = &decoded[0].span;
    assert_eq!(span.trace_id, TRACE_ID, "base64 ids are converted");
    assert_eq!(span.span_id, SPAN_ID);
    assert_eq!(span.parent_span_id, None);
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.start_unix_nano, 1_763_776_800_000_000_000);
    assert_eq!(span.end_unix_nano, 1_763_776_800_000_000_001);
    assert_eq!(span.get("n"), Some(&AnyValue::Int(42)));
    assert_eq!(span.get("s"), Some(&AnyValue::from("x")));
    assert_eq!(span.get("empty"), None, "an empty AnyValue is dropped");
    assert!(span.get("nan").and_then(AnyValue::as_f64).unwrap().is_nan());
    assert_eq!(span.events[0].time_unix_nano, 5);
    assert_eq!(span.status, StatusCode::Error);
    assert_eq!(span.status_message.as_deref(), Some("boom"));
    assert!(decoded[0].resource.is_empty());
}

#[test]
fn decoders_reject_malformed_input() {
    let bad_trace_id = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "abcd", "spanId": "eee19b7ec3c1b174", "name": "x"}
    ]}]}]});
    assert!(matches!(decode_json(bad_trace_id.to_string().as_bytes()), Err(OtlpError::Invalid(_))));
    let no_span_id = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "name": "x"}
    ]}]}]});
    assert!(matches!(decode_json(no_span_id.to_string().as_bytes()), Err(OtlpError::Invalid(_))));
    assert!(matches!(decode_json(b"not json"), Err(OtlpError::Invalid(_))));
    assert!(matches!(decode_json(b"[]"), Err(OtlpError::Invalid(_))));
    assert!(matches!(decode_protobuf(&[0xff, 0xff, 0xff]), Err(OtlpError::Invalid(_))));
    assert_eq!(decode_json(b"{}").unwrap(), vec![]);
    assert_eq!(decode_protobuf(&[]).unwrap(), vec![]);
}

#[test]
fn new_ids_are_random_and_never_zero() {
    let a = new_trace_id();
    let b = new_trace_id();
    assert_ne!(a, b);
    assert_ne!(a, [0; 16]);
    assert_ne!(new_span_id(), [0; 8]);
    assert_eq!(hex(&TRACE_ID), "5b8efff798038103d269b633813fc60c");
    assert_eq!(hex(&a).len(), 32);
    assert_eq!(hex(&new_span_id()).len(), 16);
}
