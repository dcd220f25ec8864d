//! Exporter settings: protocol, endpoint and header rules (`OTEL_EXPORTER_OTLP_*` semantics, Langfuse's endpoint and
//! auth), and the batching/retry defaults. Header values are secrets: nothing here prints them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::OtlpError;
use crate::model::Resource;

/// The OTLP/HTTP encoding to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// `http/protobuf`: proto3 binary, `Content-Type: application/x-protobuf` (the OTLP default).
    #[default]
    HttpProtobuf,
    /// `http/json`: OTLP/JSON, `Content-Type: application/json`.
    HttpJson,
}

impl Protocol {
    /// The `Content-Type` of request (and response) bodies.
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "application/x-protobuf",
            Protocol::HttpJson => "application/json",
        }
    }

    /// The `OTEL_EXPORTER_OTLP_PROTOCOL` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = OtlpError;

    /// `http/protobuf` or `http/json` (case-insensitive); `grpc` is refused with an explanation.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Ok(Protocol::HttpJson),
            "grpc" => Err(OtlpError::Unsupported(
                "OTLP protocol \"grpc\" is not supported; use \"http/protobuf\" or \"http/json\" (Langfuse accepts \
                 only HTTP)"
                    .into(),
            )),
            other => Err(OtlpError::Invalid(format!(
                "unknown OTLP protocol {other:?}; expected \"http/protobuf\" or \"http/json\""
            ))),
        }
    }
}

/// Where and how the exporter sends spans. Build it with [`ExporterSettings::otlp`] or [`ExporterSettings::langfuse`]
/// and adjust the public fields.
#[derive(Clone)]
pub struct ExporterSettings {
    /// Full URL of the traces endpoint (the request goes exactly here).
    pub endpoint: String,
    pub protocol: Protocol,
    /// Extra request headers, e.g. `Authorization`. The values are secrets and are never logged.
    pub headers: Vec<(String, String)>,
    pub resource: Resource,
    /// Spans waiting to be batched; beyond this `export()` drops (and counts) spans. Default 2048.
    pub max_queue: usize,
    /// Spans per request; a batch is sent as soon as this many are waiting. Default 512.
    pub max_batch: usize,
    /// A partial batch is sent once its oldest span has waited this long. Default 1 s.
    pub flush_interval: Duration,
    /// Per-request timeout. Default 10 s.
    pub request_timeout: Duration,
    /// Retries after the first attempt on 429/502/503/504 or a connection failure. Default 5.
    pub max_retries: u32,
    /// First retry delay when the collector gives no `Retry-After`; doubles each retry. Default 500 ms.
    pub initial_backoff: Duration,
    /// Cap on the doubling backoff. Default 30 s.
    pub max_backoff: Duration,
    /// Gzip request bodies (`Content-Encoding: gzip`). Default false.
    pub compression: bool,
}

impl ExporterSettings {
    /// Default batching and retry values for `endpoint` (the full traces URL).
    pub fn new(
        endpoint: impl Into<String>,
        protocol: Protocol,
        headers: Vec<(String, String)>,
        resource: Resource,
    ) -> Self {
        ExporterSettings {
            endpoint: endpoint.into(),
            protocol,
            headers,
            resource,
            max_queue: 2048,
            max_batch: 512,
            flush_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            max_retries: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            compression: false,
        }
    }

    /// Langfuse's OTLP endpoint `{host}/api/public/otel/v1/traces` with Basic auth (`public_key:secret_key`) and
    /// `x-langfuse-ingestion-version: 4`, sending protobuf.
    pub fn langfuse(host: &str, public_key: &str, secret_key: &str, resource: Resource) -> Self {
        let endpoint = format!("{}/api/public/otel/v1/traces", host.trim().trim_end_matches('/'));
        let credentials = BASE64.encode(format!("{public_key}:{secret_key}"));
        let headers = vec![
            ("Authorization".to_owned(), format!("Basic {credentials}")),
            ("x-langfuse-ingestion-version".to_owned(), "4".to_owned()),
        ];
        ExporterSettings::new(endpoint, Protocol::HttpProtobuf, headers, resource)
    }

    /// A generic OTLP receiver, with `OTEL_EXPORTER_OTLP_ENDPOINT` semantics: `endpoint` is the base URL and
    /// `/v1/traces` is appended (without doubling a trailing slash). For an `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// (used as-is) set [`ExporterSettings::endpoint`] afterwards or use [`ExporterSettings::new`].
    pub fn otlp(endpoint: &str, protocol: Protocol, headers: Vec<(String, String)>, resource: Resource) -> Self {
        let endpoint = format!("{}/v1/traces", endpoint.trim().trim_end_matches('/'));
        ExporterSettings::new(endpoint, protocol, headers, resource)
    }

    /// Parses `OTEL_EXPORTER_OTLP_HEADERS`: `k1=v1,k2=v2`, whitespace around keys and values trimmed, values
    /// percent-decoded (`%20` → space; `+` stays `+`). Empty entries are skipped. Errors name the entry's key, never
    /// its value.
    pub fn parse_headers(spec: &str) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for (index, entry) in spec.split(',').enumerate() {
            if entry.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = entry.split_once('=') else {
                return Err(format!("OTLP header entry {} has no '=' (expected key=value)", index + 1));
            };
            let key = key.trim();
            if key.is_empty() || !key.bytes().all(is_token_byte) {
                return Err(format!("OTLP header entry {} has an invalid name {key:?}", index + 1));
            }
            let value = percent_decode(value.trim())
                .ok_or_else(|| format!("OTLP header {key:?} has a badly percent-encoded value"))?;
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(format!("OTLP header {key:?} has a control character in its value"));
            }
            out.push((key.to_owned(), value));
        }
        Ok(out)
    }
}

/// Debug output redacts header values.
impl fmt::Debug for ExporterSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(k, _)| (k.as_str(), "<redacted>")).collect();
        f.debug_struct("ExporterSettings")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &headers)
            .field("resource", &self.resource)
            .field("max_queue", &self.max_queue)
            .field("max_batch", &self.max_batch)
            .field("flush_interval", &self.flush_interval)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("compression", &self.compression)
            .finish()
    }
}

/// An RFC 9110 token character (valid in a header name).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = char::from(*bytes.get(i + 1)?).to_digit(16)?;
            let lo = char::from(*bytes.get(i + 2)?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
