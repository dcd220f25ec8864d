//! Admin bearer tokens (spec auth-tokens.md §1 and §3): Supabase access tokens (HS256 with the project secret, or
//! ES256/RS256 from the project's JWKS) and local admin tokens of the same shape, signed with a locally generated
//! secret. One verification path for both; must never take the algorithm or a key location from the token, and
//! never put a token in an error or a log line.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::AuthError;
use crate::jwks::{JwksCache, decode_segment, parse_supabase_jwks};

/// `iss` of local admin tokens. Never a URL, so it cannot collide with a Supabase issuer.
pub const LOCAL_ISSUER: &str = "mentorfy-local";
/// The audience every admin token carries (Supabase's value).
pub const AUDIENCE: &str = "authenticated";
/// Clock skew allowed on `exp` (spec §3: at most 30 s).
const LEEWAY_SECS: u64 = 30;
const MAX_TOKEN_BYTES: usize = 16 * 1024;
const MAX_KID_BYTES: usize = 256;
/// Supabase: cache the JWKS for at most 10 minutes; refetch on an unknown kid at most every 10 s.
const JWKS_TTL: Duration = Duration::from_secs(10 * 60);
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);

/// How admin tokens are verified. Blank strings count as unset.
#[derive(Clone, Default)]
pub struct AdminAuthSettings {
    /// `SUPABASE_URL`: the issuer is `<url>/auth/v1`, the JWKS `<url>/auth/v1/.well-known/jwks.json`.
    pub supabase_url: Option<String>,
    /// `SUPABASE_JWT_SECRET`: when set, Supabase tokens are HS256 with this secret (legacy projects), and the
    /// JWKS is not used (HMAC and asymmetric algorithms are never mixed).
    pub supabase_jwt_secret: Option<String>,
    /// `SENSEI_ADMIN_EMAILS`: when non-empty, only these (lower-cased) emails are admins among Supabase users.
    pub admin_emails: Vec<String>,
    /// The locally generated HS256 secret for local admin tokens.
    pub local_secret: Vec<u8>,
    /// Lifetime of issued local tokens.
    pub local_token_ttl: Duration,
}

impl fmt::Debug for AdminAuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminAuthSettings")
            .field("supabase_url", &self.supabase_url)
            .field("supabase_jwt_secret", &self.supabase_jwt_secret.as_ref().map(|_| "[redacted]"))
            .field("admin_emails", &self.admin_emails)
            .field("local_token_ttl", &self.local_token_ttl)
            .finish()
    }
}

/// Who an admin token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminIdentity {
    /// The token's `sub`: a local admin id or a Supabase user id.
    pub subject: Uuid,
    pub email: Option<String>,
    pub source: AdminSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminSource {
    Local,
    Supabase,
}

/// The claims of a local admin token (the shape of a Supabase access token).
#[derive(Debug, Serialize, Deserialize)]
struct LocalClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    email: &'a str,
    role: &'a str,
    iat: i64,
    exp: i64,
}

/// A local token just issued.
pub struct IssuedToken {
    pub token: String,
    pub expires_at: time::OffsetDateTime,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// Verifies admin tokens and issues local ones. Cheap to clone.
#[derive(Clone)]
pub struct AdminVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    local_key: DecodingKey,
    local_encoding: EncodingKey,
    local_validation: Validation,
    local_ttl: Duration,
    supabase: Option<Supabase>,
    admin_emails: Vec<String>,
}

struct Supabase {
    source: SupabaseKeys,
    validation: Validation,
}

enum SupabaseKeys {
    Secret(DecodingKey),
    Jwks(Box<JwksCache>),
}

impl fmt::Debug for AdminVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let supabase = match self.inner.supabase.as_ref().map(|s| &s.source) {
            None => "off".to_owned(),
            Some(SupabaseKeys::Secret(_)) => "hs256".to_owned(),
            Some(SupabaseKeys::Jwks(cache)) => format!("jwks {}", cache.url()),
        };
        f.debug_struct("AdminVerifier").field("supabase", &supabase).finish_non_exhaustive()
    }
}

fn validation(algorithms: Vec<Algorithm>, issuer: &str) -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.algorithms = algorithms;
    v.leeway = LEEWAY_SECS;
    v.reject_tokens_expiring_in_less_than = 0;
    v.validate_exp = true;
    v.validate_nbf = false;
    v.set_audience(&[AUDIENCE]);
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

impl AdminVerifier {
    pub fn new(settings: AdminAuthSettings, http: reqwest::Client) -> Result<Self, AuthError> {
        if settings.local_secret.len() < 32 {
            return Err(AuthError::Config("the local admin token secret must be at least 32 bytes".to_owned()));
        }
        let blank = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let supabase_url = blank(&settings.supabase_url).map(|u| u.trim_end_matches('/').to_owned());
        let issuer = supabase_url.as_ref().map(|u| format!("{u}/auth/v1"));
        let supabase = match (blank(&settings.supabase_jwt_secret), &issuer) {
            (Some(secret), issuer) => {
                let mut v = validation(vec![Algorithm::HS256], issuer.as_deref().unwrap_or(""));
                if issuer.is_none() {
                    // Legacy setups that only know the secret: `iss` cannot be checked.
                    v.iss = None;
                    v.set_required_spec_claims(&["exp", "aud", "sub"]);
                }
                Some(Supabase {
                    source: SupabaseKeys::Secret(DecodingKey::from_secret(secret.as_bytes())),
                    validation: v,
                })
            }
            (None, Some(issuer)) => {
                let url = reqwest::Url::parse(&format!("{issuer}/.well-known/jwks.json"))
                    .map_err(|e| AuthError::Config(format!("SUPABASE_URL is not a URL: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(AuthError::Config("SUPABASE_URL must be an http(s) URL".to_owned()));
                }
                let cache =
                    JwksCache::with_parser("Supabase", parse_supabase_jwks, url, http, JWKS_TTL, JWKS_MIN_REFETCH);
                Some(Supabase {
                    source: SupabaseKeys::Jwks(Box::new(cache)),
                    validation: validation(vec![Algorithm::ES256, Algorithm::RS256], issuer),
                })
            }
            (None, None) => None,
        };
        let admin_emails =
            settings.admin_emails.iter().map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty()).collect();
        Ok(Self {
            inner: Arc::new(Inner {
                local_key: DecodingKey::from_secret(&settings.local_secret),
                local_encoding: EncodingKey::from_secret(&settings.local_secret),
                local_validation: validation(vec![Algorithm::HS256], LOCAL_ISSUER),
                local_ttl: settings.local_token_ttl,
                supabase,
                admin_emails,
            }),
        })
    }

    /// Whether Supabase tokens are accepted at all.
    pub fn supabase_enabled(&self) -> bool {
        self.inner.supabase.is_some()
    }

    /// Issues a local admin token for an admin account.
    pub fn issue_local(&self, admin_id: Uuid, email: &str) -> Result<IssuedToken, AuthError> {
        let now = time::OffsetDateTime::now_utc();
        let ttl = time::Duration::try_from(self.inner.local_ttl)
            .map_err(|_| AuthError::Config("admin token ttl out of range".to_owned()))?;
        let expires_at = now + ttl;
        let claims = LocalClaims {
            iss: LOCAL_ISSUER,
            aud: AUDIENCE,
            sub: admin_id.to_string(),
            email,
            role: AUDIENCE,
            iat: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.inner.local_encoding)
            .map_err(|e| AuthError::Config(format!("cannot sign admin token: {e}")))?;
        Ok(IssuedToken { token, expires_at })
    }

    /// Verifies a bearer token. `InvalidToken` for anything unacceptable, `Forbidden` for a valid Supabase user who
    /// is not in `SENSEI_ADMIN_EMAILS`.
    pub async fn verify(&self, token: &str) -> Result<AdminIdentity, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::invalid("empty or oversized token"));
        }
        let peek = Peek::parse(token)?;
        // The unverified `iss` only chooses which trusted verifier runs; each one fixes its own algorithms,
        // key and issuer, and the signature is checked before any claim is believed.
        let (source, claims) = if peek.iss.as_deref() == Some(LOCAL_ISSUER) {
            let data =
                jsonwebtoken::decode::<Map<String, Value>>(token, &self.inner.local_key, &self.inner.local_validation)
                    .map_err(jwt_error)?;
            (AdminSource::Local, data.claims)
        } else {
            let Some(supabase) = &self.inner.supabase else {
                return Err(AuthError::invalid("not a local admin token, and Supabase sign-in is not configured"));
            };
            let fetched;
            let key = match &supabase.source {
                SupabaseKeys::Secret(key) => key,
                SupabaseKeys::Jwks(cache) => {
                    let kid = peek.kid.ok_or_else(|| AuthError::invalid("token has no kid, required with JWKS"))?;
                    fetched = cache.key_for(&kid).await?;
                    &fetched
                }
            };
            // The algorithm follows from the trusted key (jsonwebtoken also requires every allowed algorithm to
            // match the key's family): EC keys verify ES256 only, RSA keys RS256 only, the secret HS256 only.
            let algorithm = match key.family() {
                AlgorithmFamily::Ec => Algorithm::ES256,
                AlgorithmFamily::Rsa => Algorithm::RS256,
                AlgorithmFamily::Hmac => Algorithm::HS256,
                _ => return Err(AuthError::invalid("verification key unusable")),
            };
            if !supabase.validation.algorithms.contains(&algorithm) {
                return Err(AuthError::invalid("algorithm not allowed"));
            }
            let mut validation = supabase.validation.clone();
            validation.algorithms = vec![algorithm];
            let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(jwt_error)?;
            (AdminSource::Supabase, data.claims)
        };
        let identity = identity_from_claims(source, &claims)?;
        if source == AdminSource::Supabase && !self.inner.admin_emails.is_empty() {
            let allowed = identity.email.as_deref().is_some_and(|e| self.inner.admin_emails.iter().any(|a| a == e));
            if !allowed {
                return Err(AuthError::Forbidden("this account is not an admin (SENSEI_ADMIN_EMAILS)".to_owned()));
            }
        }
        Ok(identity)
    }

    /// Forgets cached Supabase JWKS keys (urgent revocation hook).
    pub fn purge_jwks_cache(&self) {
        if let Some(Supabase { source: SupabaseKeys::Jwks(cache), .. }) = &self.inner.supabase {
            cache.purge();
        }
    }
}

fn identity_from_claims(source: AdminSource, claims: &Map<String, Value>) -> Result<AdminIdentity, AuthError> {
    let string = |name: &str| claims.get(name).and_then(Value::as_str);
    match string("role") {
        Some("authenticated") => {}
        Some("anon" | "service_role") => {
            return Err(AuthError::invalid("API-key JWTs (anon, service_role) are refused"));
        }
        _ => return Err(AuthError::invalid("role must be authenticated")),
    }
    if string("iss") == Some("supabase") {
        return Err(AuthError::invalid("API-key JWTs (iss supabase) are refused"));
    }
    if !claims.get("iat").is_some_and(Value::is_i64) && !claims.get("iat").is_some_and(Value::is_u64) {
        return Err(AuthError::invalid("missing required claim iat"));
    }
    if claims.get("is_anonymous").and_then(Value::as_bool) == Some(true) {
        return Err(AuthError::invalid("anonymous users cannot use the admin API"));
    }
    let subject = string("sub")
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| AuthError::invalid("subject (sub) is not a UUID"))?;
    let email = string("email").map(str::to_lowercase).filter(|e| !e.is_empty());
    Ok(AdminIdentity { subject, email, source })
}

/// What is read from a token before its signature is checked: only to pick a verifier and a key.
struct Peek {
    kid: Option<String>,
    iss: Option<String>,
}

impl Peek {
    fn parse(token: &str) -> Result<Self, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::invalid("malformed token (not a compact JWS)"));
        };
        let json = |segment: &str| -> Option<Map<String, Value>> {
            decode_segment(segment).and_then(|bytes| serde_json::from_slice(&bytes).ok())
        };
        let header = json(header).ok_or_else(|| AuthError::invalid("malformed token header"))?;
        let payload = json(payload).ok_or_else(|| AuthError::invalid("malformed token payload"))?;
        match header.get("alg").and_then(Value::as_str) {
            Some("HS256" | "ES256" | "RS256") => {}
            _ => return Err(AuthError::invalid("algorithm not allowed")),
        }
        if header.contains_key("crit") {
            return Err(AuthError::invalid("critical header extensions (crit) are not supported"));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_BYTES => Some(kid.clone()),
            Some(_) => return Err(AuthError::invalid("malformed key id (kid)")),
        };
        let iss = payload.get("iss").and_then(Value::as_str).map(str::to_owned);
        Ok(Self { kid, iss })
    }
}

fn jwt_error(error: jsonwebtoken::errors::Error) -> AuthError {
    let reason = match error.kind() {
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => "algorithm not allowed".to_owned(),
        ErrorKind::ExpiredSignature => "token expired (exp)".to_owned(),
        ErrorKind::InvalidIssuer => "issuer (iss) does not match".to_owned(),
        ErrorKind::InvalidAudience => "audience (aud) rejected".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing required claim {claim}"),
        ErrorKind::InvalidClaimFormat(claim) => format!("malformed claim {claim}"),
        _ => "token rejected".to_owned(),
    };
    AuthError::InvalidToken(reason)
}
