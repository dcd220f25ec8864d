//! Admin and API-key authentication for the HTTP layer: the services built at start-up (token verifier, API-key
//! service, login rate limiter), the `AdminAuth` and `ApiKeyAuth` extractors, and the generated server secrets.
//! Must never log or echo a token, a password or an API key; API keys are logged by prefix only.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use mentorfy_auth::api_key::{Pepper, generate_key, parse_key, random_secret_hex};
use mentorfy_auth::{AdminAuthSettings, AdminIdentity, AdminVerifier, AuthError};
use mentorfy_core::Config;
use mentorfy_store::{ApiKeyRow, AppSecrets, NewApiKey, Store, StoreError};
use serde_json::json;
use uuid::Uuid;

use crate::error::AppError;
use crate::state::AppState;

/// Longest API key name.
pub const MAX_KEY_NAME_CHARS: usize = 100;
/// Longest environment label.
pub const MAX_ENVIRONMENT_CHARS: usize = 32;
/// The message of every refused API key (unknown, revoked or malformed alike).
const API_KEY_REFUSED: &str = "invalid API key";

/// Reads the generated server secrets, creating them on first start. They live in the database (`app_settings`)
/// rather than in a file, so every server sharing a PostgreSQL database verifies the others' tokens.
pub async fn server_secrets(store: &Store) -> Result<AppSecrets, StoreError> {
    store
        .app_secrets_get_or_init(&AppSecrets {
            admin_jwt_secret: random_secret_hex(),
            api_key_pepper: random_secret_hex(),
        })
        .await
}

/// The pepper of API-key digests: `SENSEI_API_KEY_PEPPER` when set, else the generated one.
pub fn api_key_pepper(config: &Config, secrets: &AppSecrets) -> Result<Pepper, AuthError> {
    match &config.admin.api_key_pepper {
        Some(pepper) => Pepper::new(pepper.expose().as_bytes().to_vec()),
        None => Pepper::new(secrets.api_key_pepper.as_bytes().to_vec()),
    }
}

/// Builds the admin token verifier from the configuration and the generated local secret.
pub fn admin_verifier(
    config: &Config,
    secrets: &AppSecrets,
    http: reqwest::Client,
) -> Result<AdminVerifier, AuthError> {
    AdminVerifier::new(
        AdminAuthSettings {
            supabase_url: config.admin.supabase_url.clone(),
            supabase_jwt_secret: config.admin.supabase_jwt_secret.as_ref().map(|s| s.expose().to_owned()),
            admin_emails: config.admin.admin_emails.clone(),
            local_secret: secrets.admin_jwt_secret.as_bytes().to_vec(),
            local_token_ttl: config.admin.token_ttl,
        },
        http,
    )
}

/// Why an API-key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// A field of a create request is unacceptable.
    #[error("{1}")]
    Invalid(&'static str, String),
    /// The presented key is malformed, unknown or revoked (the reason is for the log only).
    #[error("invalid API key: {0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ApiKeyError> for AppError {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::Invalid(field, message) => {
                AppError::new(StatusCode::BAD_REQUEST, "invalid_field", message).with_details(json!({"field": field}))
            }
            ApiKeyError::Refused(reason) => {
                let mut err = AppError::unauthorized(API_KEY_REFUSED);
                err.internal = Some(reason);
                err
            }
            ApiKeyError::Store(e) => e.into(),
        }
    }
}

/// A key just created: `key` is the only copy of the full key and is shown once.
pub struct CreatedApiKey {
    pub key: String,
    pub row: ApiKeyRow,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey").field("prefix", &self.row.prefix).finish_non_exhaustive()
    }
}

/// An API key that verified: who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedApiKey {
    pub id: Uuid,
    pub environment: String,
    pub prefix: String,
}

/// Creates, lists, revokes and verifies project API keys. No cache: a revocation takes effect on the next request.
#[derive(Clone, Debug)]
pub struct ApiKeyService {
    store: Store,
    pepper: Pepper,
}

impl ApiKeyService {
    pub fn new(store: Store, pepper: Pepper) -> Self {
        Self { store, pepper }
    }

    /// The service as configured: `SENSEI_API_KEY_PEPPER`, or the generated pepper in the database.
    pub async fn from_config(config: &Config, store: Store) -> Result<Self, String> {
        let secrets = server_secrets(&store).await.map_err(|e| e.to_string())?;
        let pepper = api_key_pepper(config, &secrets).map_err(|e| e.to_string())?;
        Ok(Self::new(store, pepper))
    }

    /// Creates a key. `environment` defaults to `production`.
    pub async fn create(
        &self,
        name: &str,
        environment: Option<&str>,
        created_by: Option<&str>,
    ) -> Result<CreatedApiKey, ApiKeyError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_KEY_NAME_CHARS {
            return Err(ApiKeyError::Invalid("name", format!("name must have 1 to {MAX_KEY_NAME_CHARS} characters")));
        }
        if name.chars().any(char::is_control) {
            return Err(ApiKeyError::Invalid("name", "name must not contain control characters".to_owned()));
        }
        let environment = environment.map(str::trim).unwrap_or("production");
        if environment.is_empty()
            || environment.len() > MAX_ENVIRONMENT_CHARS
            || !environment.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(ApiKeyError::Invalid(
                "environment",
                format!("environment must be 1 to {MAX_ENVIRONMENT_CHARS} characters of a-z, 0-9, - and _"),
            ));
        }
        let generated = generate_key();
        let digest = self.pepper.digest(&generated.full);
        let row = self
            .store
            .insert_api_key(&NewApiKey { name, environment, prefix: &generated.prefix, key_hash: &digest, created_by })
            .await?;
        tracing::info!(prefix = %row.prefix, id = %row.id, "API key created");
        Ok(CreatedApiKey { key: generated.full, row })
    }

    pub async fn list(&self) -> Result<Vec<ApiKeyRow>, ApiKeyError> {
        Ok(self.store.list_api_keys().await?)
    }

    /// Revokes a key; `None` when there is no such key. Idempotent.
    pub async fn revoke(&self, id: Uuid) -> Result<Option<ApiKeyRow>, ApiKeyError> {
        let row = self.store.revoke_api_key(id).await?;
        if let Some(row) = &row {
            tracing::info!(prefix = %row.prefix, id = %row.id, "API key revoked");
        }
        Ok(row)
    }

    /// Verifies a presented key: format and checksum (no database query when they fail), lookup by prefix,
    /// constant-time digest comparison, revocation. Records `last_used_at` off the request path, at most once a
    /// minute.
    pub async fn verify(&self, presented: &str) -> Result<VerifiedApiKey, ApiKeyError> {
        let parsed = parse_key(presented).map_err(|e| ApiKeyError::Refused(e.to_string()))?;
        let row = self
            .store
            .find_api_key_by_prefix(parsed.prefix())
            .await?
            .ok_or_else(|| ApiKeyError::Refused(format!("unknown key {}", parsed.prefix())))?;
        if !self.pepper.matches(&parsed, &row.key_hash) {
            return Err(ApiKeyError::Refused(format!("wrong secret for key {}", row.prefix)));
        }
        if row.revoked_at.is_some() {
            return Err(ApiKeyError::Refused(format!("key {} is revoked", row.prefix)));
        }
        let now = mentorfy_store::now();
        let stale = row.last_used_at.is_none_or(|at| now - at >= mentorfy_store::API_KEY_TOUCH_INTERVAL);
        if stale {
            let store = self.store.clone();
            let id = row.id;
            tokio::spawn(async move {
                if let Err(e) = store.touch_api_key(id, now).await {
                    tracing::warn!(error = %e, "could not record API key use");
                }
            });
        }
        Ok(VerifiedApiKey { id: row.id, environment: row.environment, prefix: row.prefix })
    }
}

/// In-process sliding-window limiter of login attempts, keyed by email and by client IP. Per server: with several
/// servers the effective limit is multiplied by their number.
#[derive(Debug)]
pub struct LoginLimiter {
    max: usize,
    window: Duration,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Above this many tracked keys, expired ones are dropped on the next check.
const LIMITER_PRUNE_AT: usize = 10_000;

impl LoginLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self { max: max as usize, window, hits: Mutex::new(HashMap::new()) }
    }

    /// Records one attempt under every key, or refuses with the seconds until one is allowed again (nothing is
    /// recorded then).
    pub fn check(&self, keys: &[String]) -> Result<(), u64> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(PoisonError::into_inner);
        if hits.len() > LIMITER_PRUNE_AT {
            hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        let mut retry_after = 0u64;
        for key in keys {
            let queue = hits.entry(key.clone()).or_default();
            while queue.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                queue.pop_front();
            }
            if queue.len() >= self.max
                && let Some(oldest) = queue.front()
            {
                let wait = self.window.saturating_sub(now.duration_since(*oldest));
                retry_after = retry_after.max(wait.as_secs().max(1));
            }
        }
        if retry_after > 0 {
            return Err(retry_after);
        }
        for key in keys {
            hits.entry(key.clone()).or_default().push_back(now);
        }
        Ok(())
    }
}

/// The admin services held in [`AppState`].
#[derive(Clone, Debug)]
pub struct AdminServices {
    pub verifier: AdminVerifier,
    pub api_keys: ApiKeyService,
    pub login_limiter: Arc<LoginLimiter>,
}

impl AdminServices {
    /// Reads or creates the server secrets and builds the verifier, the key service and the limiter.
    pub async fn build(config: &Config, store: &Store, http: reqwest::Client) -> Result<Self, String> {
        let secrets = server_secrets(store).await.map_err(|e| format!("cannot read server secrets: {e}"))?;
        let verifier =
            admin_verifier(config, &secrets, http).map_err(|e| format!("SUPABASE_URL / SUPABASE_JWT_SECRET: {e}"))?;
        let pepper = api_key_pepper(config, &secrets).map_err(|e| format!("SENSEI_API_KEY_PEPPER: {e}"))?;
        Ok(Self {
            verifier,
            api_keys: ApiKeyService::new(store.clone(), pepper),
            login_limiter: Arc::new(LoginLimiter::new(config.admin.login_attempts, config.admin.login_window)),
        })
    }
}

/// The one message of every failed login: unknown email and wrong password look the same.
pub const LOGIN_REFUSED: &str = "wrong email or password";

impl AdminServices {
    /// Checks an email and password against the local admins and issues a token. Rate limited per email and per
    /// client IP before any work; an unknown email spends the same argon2 hash as a wrong password.
    pub async fn login(
        &self,
        store: &Store,
        email: &str,
        password: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<mentorfy_auth::IssuedToken, AppError> {
        let email = email.trim().to_lowercase();
        let mut keys = vec![format!("email:{email}")];
        if let Some(ip) = ip {
            keys.push(format!("ip:{ip}"));
        }
        if let Err(retry_after) = self.login_limiter.check(&keys) {
            let mut err =
                AppError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many login attempts; try later");
            err.retry_after = Some(retry_after);
            return Err(err);
        }
        let admin = store.find_admin_by_email(&email).await?;
        let stored = admin.as_ref().map(|a| a.password_hash.clone());
        let password = password.to_owned();
        let ok =
            tokio::task::spawn_blocking(move || mentorfy_auth::password::verify_password(&password, stored.as_deref()))
                .await
                .map_err(|e| AppError::internal(format!("password check failed: {e}")))?;
        let Some(admin) = admin.filter(|_| ok) else {
            return Err(AppError::unauthorized(LOGIN_REFUSED));
        };
        store.touch_admin_login(admin.id).await?;
        Ok(self.verifier.issue_local(admin.id, &admin.email)?)
    }
}

/// The client address, when the server was started with connect info.
pub fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())
}

fn bearer(parts: &Parts) -> Result<Option<&str>, AppError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let text = value.to_str().map_err(|_| AppError::unauthorized("the Authorization header is not readable"))?;
    let (scheme, token) = text.trim().split_once(' ').unwrap_or((text, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AppError::unauthorized("use Authorization: Bearer <token>"));
    }
    Ok(Some(token))
}

/// An authenticated admin: `Authorization: Bearer <jwt>` holding a local admin token or a Supabase access token.
/// 401 `unauthorized` for a missing or refused token, 403 `forbidden` for a valid non-admin.
#[derive(Debug, Clone)]
pub struct AdminAuth(pub AdminIdentity);

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer(parts)?.ok_or_else(|| AppError::unauthorized("use Authorization: Bearer <admin token>"))?;
        match state.admin().verifier.verify(token).await {
            Ok(identity) => Ok(AdminAuth(identity)),
            Err(AuthError::InvalidToken(why)) => {
                Err(AppError::unauthorized(format!("the admin token was refused: {why}")))
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// A project API key, from `Authorization: Bearer sk_sensei_…` or `x-api-key: sk_sensei_…`, for the ingestion
/// routes. 401 with one body for missing, malformed, unknown and revoked keys. API keys never grant admin access.
#[derive(Debug, Clone)]
pub struct ApiKeyAuth(pub VerifiedApiKey);

impl FromRequestParts<AppState> for ApiKeyAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let from_header = parts.headers.get("x-api-key").map(|v| v.to_str().map(str::trim));
        let presented = match from_header {
            Some(Ok(key)) if !key.is_empty() => key.to_owned(),
            Some(_) => return Err(AppError::unauthorized(API_KEY_REFUSED)),
            None => bearer(parts)?
                .map(str::to_owned)
                .ok_or_else(|| AppError::unauthorized("use Authorization: Bearer <API key> or x-api-key"))?,
        };
        Ok(ApiKeyAuth(state.admin().api_keys.verify(&presented).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_refuses_over_the_limit_with_a_retry_after() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60));
        let keys = vec!["email:a".to_owned(), "ip:1".to_owned()];
        assert!(limiter.check(&keys).is_ok());
        assert!(limiter.check(&keys).is_ok());
        let retry = limiter.check(&keys).err();
        assert!(retry.is_some_and(|s| (1..=60).contains(&s)), "{retry:?}");
        // Another email from the same IP is refused too; another IP and email is not.
        assert!(limiter.check(&["email:b".to_owned(), "ip:1".to_owned()]).is_err());
        assert!(limiter.check(&["email:c".to_owned(), "ip:2".to_owned()]).is_ok());
    }
}
