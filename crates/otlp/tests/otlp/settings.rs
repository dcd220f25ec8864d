#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Exporter settings: protocol parsing, endpoint rules, Langfuse auth headers, `OTEL_EXPORTER_OTLP_HEADERS`.

use base64::Engine as _;
use mentorfy_otlp::{ExporterSettings, OtlpError, Protocol};

use crate::helpers::resource;

#[test]
fn protocol_parses_http_encodings_and_refuses_grpc_clearly() {
    assert_eq!("http/protobuf".parse::<Protocol>().unwrap(), Protocol::HttpProtobuf);
    assert_eq!("http/json".parse::<Protocol>().unwrap(), Protocol::HttpJson);
    assert_eq!(" HTTP/JSON ".parse::<Protocol>().unwrap(), Protocol::HttpJson);
    let err = "grpc".parse::<Protocol>().unwrap_err();
    assert!(matches!(err, OtlpError::Unsupported(_)));
    assert!(err.to_string().contains("not supported"), "{err}");
    assert!(matches!("thrift".parse::<Protocol>(), Err(OtlpError::Invalid(_))));
    assert_eq!(Protocol::HttpProtobuf.content_type(), "application/x-protobuf");
    assert_eq!(Protocol::HttpJson.to_string(), "http/json");
}

#[test]
fn otlp_endpoint_appends_v1_traces_without_a_double_slash() {
    for base in ["http://localhost:4318", "http://localhost:4318/"] {
        let s = ExporterSettings::otlp(base, Protocol::HttpJson, Vec::new(), resource());
        assert_eq!(s.endpoint, "http://localhost:4318/v1/traces");
    }
    let s = ExporterSettings::otlp(
        "https://cloud.langfuse.com/api/public/otel/",
        Protocol::HttpProtobuf,
        vec![],
        resource(),
    );
    assert_eq!(s.endpoint, "https://cloud.langfuse.com/api/public/otel/v1/traces");
    assert_eq!((s.max_queue, s.max_batch, s.max_retries, s.compression), (2048, 512, 5, false));
    assert_eq!(s.flush_interval, std::time::Duration::from_secs(1));
    assert_eq!(s.request_timeout, std::time::Duration::from_secs(10));
}

#[test]
fn langfuse_settings_use_its_endpoint_basic_auth_and_ingestion_version() {
    let s = ExporterSettings::langfuse("https://cloud.langfuse.com/", "pk-lf-123", "sk-lf-456", resource());
    assert_eq!(s.endpoint, "https://cloud.langfuse.com/api/public/otel/v1/traces");
    assert_eq!(s.protocol, Protocol::HttpProtobuf);
    let auth = s.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.clone());
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("pk-lf-123:sk-lf-456"));
    assert_eq!(auth, Some(expected));
    assert!(s.headers.iter().any(|(k, v)| k == "x-langfuse-ingestion-version" && v == "4"));
}

#[test]
fn settings_debug_output_redacts_header_values() {
    let s = ExporterSettings::langfuse("https://cloud.langfuse.com", "pk-lf-123", "sk-lf-456", resource());
    let debug = format!("{s:?}");
    let credentials = base64::engine::general_purpose::STANDARD.encode("pk-lf-123:sk-lf-456");
    assert!(!debug.contains(&credentials), "{debug}");
    assert!(debug.contains("<redacted>"));
}

#[test]
fn parse_headers_reads_the_otel_format_and_percent_decodes_values() {
    let headers =
        ExporterSettings::parse_headers(" Authorization = Basic%20abc%3D%3D , x-tenant=acme,,api-key=a+b").unwrap();
    assert_eq!(
        headers,
        vec![
            ("Authorization".to_owned(), "Basic abc==".to_owned()),
            ("x-tenant".to_owned(), "acme".to_owned()),
            ("api-key".to_owned(), "a+b".to_owned()),
        ]
    );
    assert_eq!(ExporterSettings::parse_headers("").unwrap(), vec![]);
    assert_eq!(ExporterSettings::parse_headers("k=a=b").unwrap(), vec![("k".to_owned(), "a=b".to_owned())]);
}

#[test]
fn parse_headers_errors_name_the_key_but_never_the_secret() {
    let err = ExporterSettings::parse_headers("authorization=secret%zz").unwrap_err();
    assert!(err.contains("authorization") && !err.contains("secret"), "{err}");
    let err = ExporterSettings::parse_headers("justsecretvalue").unwrap_err();
    assert!(!err.contains("justsecretvalue"), "{err}");
    assert!(ExporterSettings::parse_headers("bad key=v").is_err());
    assert!(ExporterSettings::parse_headers("k=line%0Abreak").is_err());
}
