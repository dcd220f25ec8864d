//! Request extractors that turn every client mistake into the error envelope with the right status:
//! 415 for a non-JSON body, 413 over the body limit, 400 for malformed JSON, wrong types, unknown or missing
//! fields (naming the field), 404 for an id that cannot exist, 401 for a malformed Authorization header.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes::Bytes;
use mentorfy_core::SessionId;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::AppError;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 256 * 1024;

/// A JSON body, strictly checked.
pub struct Json<T>(pub T);

/// A JSON body that may also be absent (an empty body reads as `T::default()`).
pub struct JsonOrEmpty<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let is_json = json_content_type(req.headers());
        let bytes = read_body(req, state).await?;
        if !is_json {
            return Err(unsupported_media_type());
        }
        parse_json(&bytes).map(Json)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for JsonOrEmpty<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let is_json = json_content_type(req.headers());
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonOrEmpty(T::default()));
        }
        if !is_json {
            return Err(unsupported_media_type());
        }
        parse_json(&bytes).map(JsonOrEmpty)
    }
}

pub(crate) fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let mime = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

pub(crate) fn unsupported_media_type() -> AppError {
    AppError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON with Content-Type: application/json",
    )
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, AppError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {} KiB", BODY_LIMIT / 1024),
            )
            .with_details(json!({"limit_bytes": BODY_LIMIT}))
        } else {
            AppError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("could not read the body: {}", rejection.body_text()),
            )
        }
    })
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    // serde's derived structs also accept arrays of fields in order; a body must be an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        serde::de::IgnoredAny::deserialize(&mut de).and_then(|_| de.end()).map_err(|e| json_error(".", &e))?;
        return Err(AppError::new(StatusCode::BAD_REQUEST, "invalid_field", "the body must be a JSON object")
            .with_details(json!({"field": null, "reason": "expected a JSON object"})));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(&path, &inner)
    })?;
    de.end().map_err(|e| json_error(".", &e))?;
    Ok(value)
}

fn json_error(path: &str, e: &serde_json::Error) -> AppError {
    use serde_json::error::Category;
    let reason = strip_position(&e.to_string());
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            AppError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {reason}"))
                .with_details(json!({"line": e.line(), "column": e.column()}))
        }
        Category::Data => {
            let field = field_name(path, &reason);
            let message = match &field {
                Some(f) => format!("{f}: {reason}"),
                None => format!("the body has the wrong shape: {reason}"),
            };
            AppError::new(StatusCode::BAD_REQUEST, "invalid_field", message)
                .with_details(json!({"field": field, "reason": reason}))
        }
    }
}

/// The field a data error is about: the path when it points inside the body, else the name serde quotes
/// in "missing field `x`" / "unknown field `x`".
fn field_name(path: &str, reason: &str) -> Option<String> {
    let quoted = reason.split('`').nth(1).map(str::to_owned);
    let at_root = path == ".";
    if reason.starts_with("missing field") {
        // The path points at the object that lacks the field.
        return quoted.map(|q| if at_root { q } else { format!("{path}.{q}") });
    }
    if reason.starts_with("unknown field") && at_root {
        return quoted;
    }
    (!at_root).then(|| path.to_owned())
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A raw body of at most `LIMIT` bytes (the route must disable axum's default body limit). Over it: 413
/// `payload_too_large` with `details.max_bytes`.
pub struct LimitedBody<const LIMIT: usize>(pub Bytes);

/// How much of an oversized body is read and dropped before answering 413, so a client still sending gets to read
/// the answer instead of a broken pipe.
const DRAIN_AFTER_LIMIT: usize = 16 * 1024 * 1024;

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for LimitedBody<LIMIT> {
    type Rejection = AppError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, AppError> {
        use futures::StreamExt as _;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut stream = req.into_body().into_data_stream();
        let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(0).min(LIMIT));
        let mut seen = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                AppError::new(StatusCode::BAD_REQUEST, "bad_request", format!("could not read the body: {e}"))
            })?;
            seen += chunk.len();
            if seen <= LIMIT {
                buf.extend_from_slice(&chunk);
            } else if seen > LIMIT + DRAIN_AFTER_LIMIT {
                break;
            }
        }
        if seen > LIMIT {
            return Err(payload_too_large(LIMIT, json!({"max_bytes": LIMIT})));
        }
        Ok(LimitedBody(buf.freeze()))
    }
}

/// 413 `payload_too_large` naming the limit.
pub fn payload_too_large(limit: usize, details: serde_json::Value) -> AppError {
    let size = if limit >= 1024 * 1024 && limit.is_multiple_of(1024 * 1024) {
        format!("{} MiB", limit / (1024 * 1024))
    } else if limit.is_multiple_of(1024) {
        format!("{} KiB", limit / 1024)
    } else {
        format!("{limit} bytes")
    };
    AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body is larger than {size}"))
        .with_details(details)
}

/// The `{id}` of a session route. Anything that is not a UUID cannot name a session: 404.
pub struct SessionIdPath(pub SessionId);

impl<S: Send + Sync> FromRequestParts<S> for SessionIdPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::not_found("no such session"))?;
        raw.parse::<SessionId>()
            .map(SessionIdPath)
            .map_err(|_| AppError::not_found(format!("no session with id '{}'", truncate(&raw, 64))))
    }
}

/// A bearer token from `Authorization: Bearer …`, if the header is present. A present but malformed header
/// is a 401 rather than being ignored.
pub struct OptionalBearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for OptionalBearer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else { return Ok(OptionalBearer(None)) };
        let text = value.to_str().map_err(|_| AppError::unauthorized("the Authorization header is not readable"))?;
        let (scheme, token) = text.trim().split_once(' ').unwrap_or((text, ""));
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AppError::unauthorized("use Authorization: Bearer <Clerk session token>"));
        }
        Ok(OptionalBearer(Some(token.to_owned())))
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_come_from_the_path_or_the_message() {
        assert_eq!(field_name("email", "invalid type: integer `5`, expected a string"), Some("email".into()));
        assert_eq!(field_name(".", "missing field `orgId`"), Some("orgId".into()));
        assert_eq!(field_name("nmae", "unknown field `nmae`, expected one of `a`"), Some("nmae".into()));
        assert_eq!(field_name("a", "missing field `b`"), Some("a.b".into()));
        assert_eq!(field_name(".", "invalid type: sequence, expected struct X"), None);
    }
}
