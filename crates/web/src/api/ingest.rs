//! Sensei ingestion, authenticated by project API keys and rate limited per key: `POST /api/v1/conversations/track`
//! (one conversation), `POST /api/v1/ingest` (SDK batches with per-event results) and `POST /api/v1/otel/v1/traces`
//! (OTLP/HTTP GenAI spans). Every success is sent after the commit; a failed request stores nothing.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mentorfy_sensei::batch::{BatchBody, BatchItem, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, validate_batch};
use mentorfy_sensei::otel::{OtelDecodeError, conversations_from_spans, decode_request};
use mentorfy_sensei::{EventOutcome, KeyContext, SenseiError, Source, TrackBody};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::admin_auth::ApiKeyAuth;
use crate::error::{AppError, ErrorEnvelope};
use crate::extract::{LimitedBody, json_content_type, parse_json, payload_too_large, unsupported_media_type};
use crate::state::AppState;

/// Largest track request body.
pub const TRACK_BODY_LIMIT: usize = 1024 * 1024;
/// Largest OTLP request body as sent (possibly gzip-compressed).
pub const OTLP_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Largest OTLP request body after decompression.
pub const OTLP_DECODED_LIMIT: usize = 16 * 1024 * 1024;

/// An API key that passed its rate limit, with the rate-limit headers for the response.
pub struct IngestKey {
    pub key: KeyContext,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl FromRequestParts<AppState> for IngestKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let ApiKeyAuth(key) = ApiKeyAuth::from_request_parts(parts, state).await?;
        let limiter = state.ingest_limiter();
        let decision = limiter.check(&key.id);
        let headers = limiter.headers(&decision);
        if !decision.allowed {
            let mut err = AppError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many ingestion requests for this API key; retry after the delay in retry-after",
            )
            .with_details(json!({"retry_after_seconds": decision.reset_secs}));
            err.retry_after = Some(decision.reset_secs.max(1));
            err.headers = headers;
            return Err(err);
        }
        Ok(IngestKey { key: KeyContext { api_key_id: Some(key.id), environment: key.environment }, headers })
    }
}

fn with_headers(mut response: Response, headers: Vec<(HeaderName, HeaderValue)>) -> Response {
    for (name, value) in headers {
        response.headers_mut().insert(name, value);
    }
    response
}

impl From<SenseiError> for AppError {
    fn from(e: SenseiError) -> Self {
        match e {
            SenseiError::Invalid(v) => AppError::new(StatusCode::BAD_REQUEST, "invalid_field", v.to_string())
                .with_details(json!({"field": v.field, "reason": v.reason})),
            SenseiError::Store(s) => s.into(),
            SenseiError::Other(detail) => AppError::internal(detail),
        }
    }
}

/// `POST /api/v1/conversations/track` body (documentation of the wire shape).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = TrackRequest)]
pub struct TrackRequestDoc {
    /// Your conversation id; with the environment it identifies the conversation (created on first sight).
    #[schema(example = "chat_8f2c")]
    conversation_id: String,
    /// 1 to 500 messages to append.
    messages: Vec<TrackMessageDoc>,
    /// Merged key by key into the conversation's metadata (≤ 16 KiB).
    #[schema(value_type = Object)]
    metadata: Option<serde_json::Value>,
    user_id: Option<String>,
    agent_id: Option<String>,
    /// Defaults to the API key's environment.
    environment: Option<String>,
}

/// One message of a track request.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = TrackMessage)]
pub struct TrackMessageDoc {
    /// Your message id (dedupe key). Without one, role + content + timestamp dedupe. Must not start with `h_`.
    id: Option<String>,
    #[schema(example = "user")]
    role: String,
    /// At most 64 KiB.
    content: String,
    /// RFC 3339 text or epoch milliseconds.
    #[schema(value_type = String, example = "2026-11-29T10:15:30.123Z")]
    timestamp: String,
    #[schema(value_type = Object)]
    metadata: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct TrackResponse {
    /// Messages stored by this request.
    pub accepted: u64,
    /// Messages already stored (retries).
    pub duplicates: u64,
}

/// Append messages to a conversation (created on first sight). Retries are safe: messages dedupe by id, or by
/// role + content + timestamp. Answers after the commit; the conversation's analysis is queued in the same
/// transaction.
#[utoipa::path(post, path = "/api/v1/conversations/track", tag = "ingest", security(("apiKey" = [])),
    request_body = TrackRequestDoc,
    responses(
        (status = 202, body = TrackResponse),
        (status = 400, description = "Invalid body; details name the field and the reason", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 413, description = "Body over 1 MiB", body = ErrorEnvelope),
        (status = 415, body = ErrorEnvelope),
        (status = 429, description = "Rate limited per key; see retry-after and ratelimit headers", body = ErrorEnvelope),
        (status = 503, description = "Storage unavailable; nothing stored, retry after retry-after", body = ErrorEnvelope),
    ))]
pub async fn track(
    State(state): State<AppState>,
    key: IngestKey,
    headers: HeaderMap,
    LimitedBody(bytes): LimitedBody<TRACK_BODY_LIMIT>,
) -> Result<Response, AppError> {
    if !json_content_type(&headers) {
        return Err(unsupported_media_type());
    }
    let body: TrackBody = parse_json(&bytes)?;
    let conversation = body.validate(mentorfy_store::now()).map_err(SenseiError::from)?;
    let outcomes = state.ingestor().ingest(Source::Api, &key.key, vec![conversation]).await?;
    let (accepted, duplicates) = outcomes.first().map_or((0, 0), |o| (o.accepted, o.duplicates));
    let response = (StatusCode::ACCEPTED, axum::Json(TrackResponse { accepted, duplicates })).into_response();
    Ok(with_headers(response, key.headers))
}

/// `POST /api/v1/ingest` body (documentation of the wire shape).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = IngestBatch)]
pub struct BatchDoc {
    /// Up to 1000 events, 3.5 MB in all, 512 KiB each.
    batch: Vec<BatchEventDoc>,
}

/// One event of a batch.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = IngestEvent)]
pub struct BatchEventDoc {
    /// Client-generated (a UUID): the idempotency key, deduplicated for at least 24 hours. Reuse it on retries.
    id: String,
    /// `track` (body = a track request) or `message` (body = one message with `conversationId`).
    #[schema(example = "track")]
    r#type: String,
    /// RFC 3339; the default time of a `message` event.
    timestamp: Option<String>,
    #[schema(value_type = Object)]
    body: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct BatchSuccess {
    pub id: String,
    /// 201 stored now, 200 a duplicate of an event already stored.
    pub status: u16,
}

#[derive(Serialize, ToSchema)]
pub struct BatchError {
    /// The event's id (null when it could not be read).
    pub id: Option<String>,
    /// The event's position in the batch.
    pub index: usize,
    /// 400 / 413 invalid (never retry), 503 not stored (retry this event).
    pub status: u16,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    pub successes: Vec<BatchSuccess>,
    pub errors: Vec<BatchError>,
}

/// Ingest a batch of events (the SDKs' path), each checked on its own: 207 with per-event results.
#[utoipa::path(post, path = "/api/v1/ingest", tag = "ingest", security(("apiKey" = [])),
    request_body = BatchDoc,
    responses(
        (status = 207, description = "Per-event results", body = BatchResponse),
        (status = 400, description = "The body is not {batch:[...]}", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 413, description = "Over 3.5 MB or 1000 events", body = ErrorEnvelope),
        (status = 415, body = ErrorEnvelope),
        (status = 429, description = "Rate limited per key", body = ErrorEnvelope),
        (status = 503, description = "Storage unavailable; nothing stored", body = ErrorEnvelope),
    ))]
pub async fn ingest(
    State(state): State<AppState>,
    key: IngestKey,
    headers: HeaderMap,
    LimitedBody(bytes): LimitedBody<MAX_BATCH_BYTES>,
) -> Result<Response, AppError> {
    if !json_content_type(&headers) {
        return Err(unsupported_media_type());
    }
    let body: BatchBody = parse_json(&bytes)?;
    if body.batch.len() > MAX_BATCH_EVENTS {
        return Err(payload_too_large(
            MAX_BATCH_BYTES,
            json!({"max_bytes": MAX_BATCH_BYTES, "max_events": MAX_BATCH_EVENTS}),
        )
        .with_message(format!("{} events; at most {MAX_BATCH_EVENTS} per batch", body.batch.len())));
    }
    let mut errors = Vec::new();
    let mut valid = Vec::new();
    for item in validate_batch(body, mentorfy_store::now()) {
        match item {
            BatchItem::Valid { id, conversation } => valid.push((id, conversation)),
            BatchItem::Invalid { id, index, status, message } => errors.push(BatchError { id, index, status, message }),
        }
    }
    let ids: Vec<String> = valid.iter().map(|(id, _)| id.clone()).collect();
    let events = valid.into_iter().map(|(id, c)| (Some(id), c)).collect();
    let outcomes = state.ingestor().ingest_events(Source::Api, &key.key, events).await?;
    let successes = ids
        .into_iter()
        .zip(outcomes)
        .map(|(id, o)| BatchSuccess { id, status: if matches!(o, EventOutcome::Duplicate) { 200 } else { 201 } })
        .collect();
    let response = (StatusCode::MULTI_STATUS, axum::Json(BatchResponse { successes, errors })).into_response();
    Ok(with_headers(response, key.headers))
}

/// Receive OTLP/HTTP traces (protobuf or JSON, optionally gzip): GenAI model-call spans become conversations
/// (`gen_ai.conversation.id`, else `session.id`) and messages. Other spans are ignored; GenAI spans that cannot be
/// stored (no conversation id) are reported as a partial success, which OTLP senders must not retry.
#[utoipa::path(post, path = "/api/v1/otel/v1/traces", tag = "ingest", security(("apiKey" = [])),
    request_body(content = Vec<u8>, description = "An ExportTraceServiceRequest", content_type = "application/x-protobuf"),
    responses(
        (status = 200, description = "ExportTraceServiceResponse in the request's encoding (partialSuccess when spans were rejected)"),
        (status = 400, description = "Undecodable body", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 413, description = "Over 4 MiB sent or 16 MiB decompressed", body = ErrorEnvelope),
        (status = 415, description = "Not protobuf or JSON, or an unknown Content-Encoding", body = ErrorEnvelope),
        (status = 429, description = "Rate limited per key", body = ErrorEnvelope),
        (status = 503, description = "Storage unavailable; retry", body = ErrorEnvelope),
    ))]
pub async fn otel_traces(
    State(state): State<AppState>,
    key: IngestKey,
    headers: HeaderMap,
    LimitedBody(bytes): LimitedBody<OTLP_BODY_LIMIT>,
) -> Result<Response, AppError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok());
    let spans = decode_request(&bytes, content_type, encoding, OTLP_DECODED_LIMIT).map_err(otel_error)?;
    let mapping = conversations_from_spans(&spans, mentorfy_store::now());
    if !mapping.conversations.is_empty() {
        state.ingestor().ingest(Source::Otel, &key.key, mapping.conversations).await?;
    }
    let rejected = i64::try_from(mapping.rejected_spans).unwrap_or(i64::MAX);
    let message = mapping.rejections.join("; ");
    if rejected > 0 {
        tracing::info!(rejected, reasons = %message, "OTLP spans rejected");
    }
    let json = content_type.is_some_and(|c| c.to_ascii_lowercase().contains("json"));
    let (body, ct) = if json {
        (mentorfy_otlp::encode_response_json(rejected, &message), "application/json")
    } else {
        (mentorfy_otlp::encode_response_protobuf(rejected, &message), "application/x-protobuf")
    };
    let response = (StatusCode::OK, [(header::CONTENT_TYPE, ct)], body).into_response();
    Ok(with_headers(response, key.headers))
}

fn otel_error(e: OtelDecodeError) -> AppError {
    match e {
        OtelDecodeError::TooLarge { limit } => payload_too_large(limit, json!({"max_decoded_bytes": limit})),
        OtelDecodeError::UnsupportedEncoding(enc) => AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("Content-Encoding '{enc}' is not supported: send gzip or no encoding"),
        ),
        OtelDecodeError::UnsupportedMediaType(ct) => AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type '{ct}' is not supported: send application/x-protobuf or application/json"),
        ),
        OtelDecodeError::Malformed(why) => AppError::new(
            StatusCode::BAD_REQUEST,
            "malformed_otlp",
            format!("the OTLP body could not be decoded: {why}"),
        ),
    }
}
