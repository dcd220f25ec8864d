//! A cache of verification keys (RS256 for Clerk; ES256/RS256 for Supabase) fetched from a JWKS endpoint, with single-flight, rate-limited refetches;
//! must never fetch keys from a location named by a token, nor hit the endpoint more than the rate limit allows.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use jsonwebtoken::DecodingKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use serde::Deserialize;

use crate::error::AuthError;

/// Upper bound for one JWKS request, so a hanging endpoint cannot hang requests that wait for keys.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWKS document holds a handful of keys; anything larger is not one.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Smallest RSA modulus accepted for a verification key.
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// base64url, with or without padding (RFC 7517 says without; be lenient on input).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Turns a JWKS document into the usable keys by `kid`.
pub(crate) type JwksParser = fn(&[u8]) -> Result<HashMap<String, DecodingKey>, String>;

pub(crate) struct JwksCache {
    /// Who serves the keys, for messages ("Clerk", "Supabase").
    label: &'static str,
    parse: JwksParser,
    url: reqwest::Url,
    http: reqwest::Client,
    ttl: Duration,
    min_refetch_interval: Duration,
    state: RwLock<CacheState>,
    /// Held while deciding on and performing a fetch: concurrent misses wait for one request instead of each
    /// sending their own.
    fetch_lock: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct CacheState {
    keys: HashMap<String, DecodingKey>,
    /// When the current `keys` were fetched (successfully).
    fetched_at: Option<Instant>,
    /// When the last request was sent, successful or not: the rate limit counts from here.
    last_attempt: Option<Instant>,
    /// Why the last request failed, if it did.
    last_error: Option<String>,
}

impl CacheState {
    fn is_fresh(&self, now: Instant, ttl: Duration) -> bool {
        self.fetched_at.is_some_and(|at| now.saturating_duration_since(at) < ttl)
    }
}

enum Next {
    Use(DecodingKey),
    UnknownKidThrottled,
    FailingThrottled(String),
    Fetch,
}

impl JwksCache {
    pub(crate) fn new(url: reqwest::Url, http: reqwest::Client, ttl: Duration, min_refetch_interval: Duration) -> Self {
        Self::with_parser("Clerk", parse_jwks, url, http, ttl, min_refetch_interval)
    }

    pub(crate) fn with_parser(
        label: &'static str,
        parse: JwksParser,
        url: reqwest::Url,
        http: reqwest::Client,
        ttl: Duration,
        min_refetch_interval: Duration,
    ) -> Self {
        Self {
            label,
            parse,
            url,
            http,
            ttl,
            min_refetch_interval,
            state: RwLock::new(CacheState::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Forgets every cached key: the next token fetches the JWKS again (rate limit permitting).
    pub(crate) fn purge(&self) {
        let mut state = self.write();
        state.keys.clear();
        state.fetched_at = None;
    }

    pub(crate) fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// The key with id `kid`: from the cache while it is fresh; otherwise, or when `kid` is unknown, after one
    /// (rate-limited) fetch.
    pub(crate) async fn key_for(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        {
            let state = self.read();
            if state.is_fresh(Instant::now(), self.ttl)
                && let Some(key) = state.keys.get(kid)
            {
                return Ok(key.clone());
            }
        }

        let _single_flight = self.fetch_lock.lock().await;
        // Re-decide under the lock: whoever held it before may just have fetched.
        match self.next_step(kid, Instant::now()) {
            Next::Use(key) => return Ok(key),
            Next::UnknownKidThrottled => return Err(unknown_kid()),
            Next::FailingThrottled(error) => {
                return Err(AuthError::Unavailable(format!(
                    "{} JWKS unavailable (not retried for {:?} after: {error})",
                    self.label, self.min_refetch_interval
                )));
            }
            Next::Fetch => {}
        }

        tracing::debug!(url = %self.url, source = self.label, "fetching JWKS");
        let result = self.fetch().await;
        let mut state = self.write();
        let now = Instant::now();
        state.last_attempt = Some(now);
        match result {
            Ok(keys) => {
                state.keys = keys;
                state.fetched_at = Some(now);
                state.last_error = None;
                state.keys.get(kid).cloned().ok_or_else(unknown_kid)
            }
            Err(error) => {
                // Keep whatever keys we had: they stay usable until their own ttl runs out.
                state.last_error = Some(error.clone());
                Err(AuthError::Unavailable(error))
            }
        }
    }

    fn next_step(&self, kid: &str, now: Instant) -> Next {
        let state = self.read();
        let throttled =
            state.last_attempt.is_some_and(|at| now.saturating_duration_since(at) < self.min_refetch_interval);
        if state.is_fresh(now, self.ttl) {
            match state.keys.get(kid) {
                Some(key) => Next::Use(key.clone()),
                None if throttled => Next::UnknownKidThrottled,
                None => Next::Fetch,
            }
        } else {
            match &state.last_error {
                Some(error) if throttled => Next::FailingThrottled(error.clone()),
                // Expired (or never fetched) keys must be refreshed whatever the rate limit says.
                _ => Next::Fetch,
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let url = &self.url;
        let label = self.label;
        let mut response = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("{label} JWKS request to {url} failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{label} JWKS endpoint {url} answered HTTP {status}"));
        }
        if response.content_length().is_some_and(|len| len > MAX_JWKS_BYTES as u64) {
            return Err(format!("{label} JWKS from {url} is too large"));
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| format!("reading {label} JWKS from {url} failed: {e}"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("{label} JWKS from {url} is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        let keys = (self.parse)(&body).map_err(|e| format!("{label} JWKS from {url}: {e}"))?;
        tracing::debug!(url = %url, keys = keys.len(), source = label, "fetched JWKS");
        Ok(keys)
    }

    fn read(&self) -> RwLockReadGuard<'_, CacheState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, CacheState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn unknown_kid() -> AuthError {
    AuthError::invalid("unknown signing key id (kid)")
}

/// The usable ES256 (P-256) and RS256 (≥ 2048-bit) signature keys of a Supabase JWKS document, by `kid`. An empty
/// key set is not an error here (HS256-only projects publish none); such a cache simply knows no `kid`.
pub(crate) fn parse_supabase_jwks(body: &[u8]) -> Result<HashMap<String, DecodingKey>, String> {
    let document: JwksDocument = serde_json::from_slice(body).map_err(|e| format!("not a JWKS document ({e})"))?;
    let mut keys = HashMap::new();
    for (index, value) in document.keys.into_iter().enumerate() {
        match supabase_key(value) {
            Ok((kid, key)) => {
                keys.insert(kid, key);
            }
            Err(reason) => tracing::debug!(index, reason, "skipping Supabase JWKS entry"),
        }
    }
    Ok(keys)
}

fn supabase_key(value: serde_json::Value) -> Result<(String, DecodingKey), &'static str> {
    let kty = value.get("kty").and_then(serde_json::Value::as_str).unwrap_or_default();
    match kty {
        "RSA" => rs256_key(value),
        "EC" => {
            let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
            if field("crv").as_deref() != Some("P-256") {
                return Err("not a P-256 key");
            }
            if field("alg").is_some_and(|a| a != "ES256") {
                return Err("not an ES256 key");
            }
            if field("use").is_some_and(|u| u != "sig") {
                return Err("not a signature key");
            }
            let kid = field("kid").filter(|k| !k.is_empty()).ok_or("no kid")?;
            let (Some(x), Some(y)) = (field("x"), field("y")) else {
                return Err("missing x or y");
            };
            let key = DecodingKey::from_ec_components(&x, &y).map_err(|_| "invalid EC public key")?;
            Ok((kid, key))
        }
        _ => Err("unsupported key type"),
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RsaJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The usable RS256 signature keys of a JWKS document, by `kid`. Other keys are skipped; no usable key is an error.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, DecodingKey>, String> {
    let document: JwksDocument = serde_json::from_slice(body).map_err(|e| format!("not a JWKS document ({e})"))?;
    let mut keys = HashMap::new();
    for (index, value) in document.keys.into_iter().enumerate() {
        match rs256_key(value) {
            Ok((kid, key)) => {
                if keys.insert(kid, key).is_some() {
                    tracing::warn!(index, "Clerk JWKS repeats a kid; the last entry wins");
                }
            }
            Err(reason) => tracing::debug!(index, reason, "skipping Clerk JWKS entry"),
        }
    }
    if keys.is_empty() {
        return Err("no usable RS256 signature key".to_owned());
    }
    Ok(keys)
}

fn rs256_key(value: serde_json::Value) -> Result<(String, DecodingKey), &'static str> {
    let jwk: RsaJwk = serde_json::from_value(value).map_err(|_| "malformed JWK")?;
    if jwk.kty != "RSA" {
        return Err("not an RSA key");
    }
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signature key");
    }
    if jwk.alg.as_deref().is_some_and(|a| a != "RS256") {
        return Err("not an RS256 key");
    }
    let kid = jwk.kid.filter(|k| !k.is_empty()).ok_or("no kid")?;
    let n = decode_b64url(jwk.n.as_deref())?;
    let e = decode_b64url(jwk.e.as_deref())?;
    check_rsa_public(
        &RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
            .map_err(|_| "invalid RSA public key")?,
    )?;
    Ok((kid, DecodingKey::from_rsa_raw_components(&n, &e)))
}

fn decode_b64url(part: Option<&str>) -> Result<Vec<u8>, &'static str> {
    let part = part.ok_or("missing n or e")?;
    B64URL.decode(part).map_err(|_| "n or e is not base64url")
}

/// Rejects RSA keys too small to trust.
pub(crate) fn check_rsa_public(key: &RsaPublicKey) -> Result<(), &'static str> {
    if key.n().bits() < MIN_RSA_BITS {
        return Err("RSA key shorter than 2048 bits");
    }
    Ok(())
}

/// Strict base64url (no padding), as used by compact JWS segments.
pub(crate) fn decode_segment(segment: &str) -> Option<Vec<u8>> {
    general_purpose::URL_SAFE_NO_PAD.decode(segment).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_without_usable_keys_is_refused() {
        let body = br#"{"keys":[{"kty":"EC","kid":"a","crv":"P-256","x":"AA","y":"AA"},{"kty":"oct","k":"c2VjcmV0"}]}"#;
        assert!(parse_jwks(body).is_err());
    }

    #[test]
    fn supabase_jwks_keeps_p256_keys_and_skips_the_rest() {
        // The P-256 public key of RFC 7517 appendix A.1.
        let body = br#"{"keys":[
            {"kty":"EC","kid":"ec1","alg":"ES256","crv":"P-256","key_ops":["verify"],
             "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
            {"kty":"EC","kid":"p384","crv":"P-384","x":"AA","y":"AA"},
            {"kty":"oct","kid":"hmac","k":"c2VjcmV0"},
            {"kty":"RSA","kid":"tiny","alg":"RS256","n":"AQAB","e":"AQAB"}
        ]}"#;
        let keys = parse_supabase_jwks(body).unwrap_or_default();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ec1"]);
        assert!(parse_supabase_jwks(br#"{"keys":[]}"#).is_ok_and(|k| k.is_empty()));
    }

    #[test]
    fn jwks_that_is_not_json_is_refused() {
        assert!(parse_jwks(b"<html>").is_err());
    }

    #[test]
    fn jwk_with_an_rs384_alg_is_skipped() {
        let value = serde_json::json!({"kty":"RSA","kid":"k","alg":"RS384","n":"AQAB","e":"AQAB"});
        assert!(rs256_key(value).is_err());
    }

    #[test]
    fn tiny_rsa_modulus_is_refused() {
        let value = serde_json::json!({"kty":"RSA","kid":"k","alg":"RS256","n":"AQAB","e":"AQAB"});
        assert!(rs256_key(value).is_err());
    }
}
