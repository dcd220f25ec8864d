//! OTLP/HTTP trace export (and decoding) for Mentorfy: the span model, the OTLP/JSON and protobuf encodings, and a
//! batching exporter for Langfuse or any OTLP receiver. It must never block or fail a caller on a request path, never
//! log header values (they hold credentials), and knows nothing of the web or domain crates.
//!
//! Wire format: `shared/specs/otlp-genai.md` §1–2.

mod error;
mod exporter;
mod json;
mod model;
mod proto;
mod settings;

pub use error::OtlpError;
pub use exporter::{ExportStats, Exporter};
pub use json::{decode_json, encode_json};
pub use model::{
    AnyValue, DecodedSpan, KeyValue, Resource, Span, SpanEvent, SpanId, SpanKind, StatusCode, TraceId, hex,
    new_span_id, new_trace_id, now_unix_nano,
};
pub use proto::{decode_protobuf, encode_protobuf, encode_response_json, encode_response_protobuf};
pub use settings::{ExporterSettings, Protocol};
