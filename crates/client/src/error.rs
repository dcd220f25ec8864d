//! [`ClientError`]: everything a call can fail with. It carries the server's error envelope as sent
//! (`{"error":{"code","message","details"}}`) and never the API key.

use std::time::Duration;

use serde_json::Value;

/// Why a call failed (after the retries it was entitled to).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client could not be built: a bad base URL, key or user agent.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The server answered with an error status (after the retries it was entitled to).
    #[error("{0}")]
    Api(Box<ApiError>),
    /// No answer: connection refused or reset, DNS, or the request timed out.
    #[error("network error: {0}")]
    Network(String),
    /// The server answered with a success status but a body this client cannot read.
    #[error("unexpected response (HTTP {status}): {message}")]
    Decode { status: u16, message: String },
    /// The request could not be serialized.
    #[error("cannot encode the request: {0}")]
    Encode(String),
}

/// An error status and the server's error envelope. `code`, `message` and `details` come from
/// `{"error":{"code","message","details"}}`; for a body that is not one (a proxy's page), `code` is
/// `http_<status>` and `message` the start of the body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("HTTP {status} {code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// `null` when the server sent none.
    pub details: Value,
    /// The `Retry-After` the server asked for, if any.
    pub retry_after: Option<Duration>,
}

impl ClientError {
    /// The server's error, for [`ClientError::Api`].
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status, for [`ClientError::Api`] and [`ClientError::Decode`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api(e) => Some(e.status),
            ClientError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's error code (`payload_too_large`, `unauthorized`, …), for [`ClientError::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api(e) => Some(&e.code),
            _ => None,
        }
    }

    /// Whether the spec allows sending the same request again: network errors, 408, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Network(_) => true,
            ClientError::Api(e) => retryable_status(e.status),
            _ => false,
        }
    }
}

/// 408, 429 and every 5xx.
pub(crate) fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}
