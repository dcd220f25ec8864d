//! The one error type of the auth crate; messages say why a credential was refused and must never contain it.

/// Why a credential could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token is not acceptable (expired, bad signature, wrong algorithm, unknown key, azp not allowed...).
    /// Maps to HTTP 401.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The credential is valid but its holder may not do this (for example not in `SENSEI_ADMIN_EMAILS`).
    /// Maps to HTTP 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The key source (JWKS endpoint) could not be reached or answered badly. Maps to HTTP 503.
    #[error("{0}")]
    Unavailable(String),
    /// The verifier's configuration is unusable; reported at start-up.
    #[error("{0}")]
    Config(String),
}

impl AuthError {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidToken(reason.into())
    }
}
