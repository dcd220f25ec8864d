//! The crate's error type: a small matchable surface for decoding and configuration. Export failures are never
//! returned to callers (export is fire-and-forget); they are counted in `ExportStats` and logged by the exporter.

/// What went wrong decoding an OTLP request or reading exporter configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtlpError {
    /// The input is malformed (bad JSON or protobuf, a wrong-length id, a bad header list).
    #[error("invalid OTLP input: {0}")]
    Invalid(String),
    /// A valid choice this crate does not implement (for example the gRPC protocol).
    #[error("unsupported: {0}")]
    Unsupported(String),
}
