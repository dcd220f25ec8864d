//! Clerk session-token verification (spec auth-tokens.md §2 and §3): RS256 only, key from a PEM or Clerk's JWKS,
//! then exp/nbf/iat, iss, azp, sub and sid; must never take the algorithm or a key location from the token, and
//! never put the token in an error or a log line.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use serde_json::{Map, Value};

use crate::error::AuthError;
use crate::jwks::{JwksCache, check_rsa_public, decode_segment};

/// Allowed clock skew for `exp`, `nbf` and `iat`, in seconds (the Clerk SDK's default).
const LEEWAY_SECS: u64 = 5;
/// Clerk session tokens are around 1 KiB; refuse to parse anything absurdly larger.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest `kid` accepted in a header.
const MAX_KID_BYTES: usize = 256;
/// Clerk: cache the JWKS for at most 5 minutes.
const MAX_JWKS_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
const WELL_KNOWN_JWKS_SUFFIX: &str = "/.well-known/jwks.json";

/// Where Clerk keys come from and which tokens to accept. Blank strings count as unset.
#[derive(Debug, Clone)]
pub struct ClerkSettings {
    /// `CLERK_JWT_KEY`: the instance's RSA public key as PEM. Networkless verification; preferred, and wins over
    /// `jwks_url` when both are set. Literal `\n` sequences (as often found in `.env` files) are accepted.
    pub jwt_key_pem: Option<String>,
    /// `CLERK_JWKS_URL`: `<Frontend API URL>/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
    /// `CLERK_ISSUER`: when set, `iss` must equal it. When unset, it is derived from `jwks_url` if that ends with
    /// `/.well-known/jwks.json`; otherwise `iss` is not checked.
    pub issuer: Option<String>,
    /// `CLERK_AUTHORIZED_PARTIES`: when non-empty, `azp` must be present and one of these origins.
    pub authorized_parties: Vec<String>,
    /// How long fetched JWKS keys are trusted (at most 5 minutes).
    pub jwks_cache_ttl: Duration,
    /// Minimum time between JWKS requests triggered by an unknown `kid` (or retried after a failure).
    pub jwks_min_refetch_interval: Duration,
}

impl Default for ClerkSettings {
    fn default() -> Self {
        Self {
            jwt_key_pem: None,
            jwks_url: None,
            issuer: None,
            authorized_parties: Vec::new(),
            jwks_cache_ttl: Duration::from_secs(5 * 60),
            jwks_min_refetch_interval: Duration::from_secs(10),
        }
    }
}

impl ClerkSettings {
    /// Whether a key source (PEM or JWKS URL) is set, i.e. whether Clerk routes can be served at all.
    pub fn is_configured(&self) -> bool {
        non_blank(self.jwt_key_pem.as_deref()).is_some() || non_blank(self.jwks_url.as_deref()).is_some()
    }

    /// The issuer to enforce: the explicit one, else the one derived from a well-known JWKS URL.
    fn effective_issuer(&self) -> Option<String> {
        if let Some(issuer) = non_blank(self.issuer.as_deref()) {
            return Some(issuer.to_owned());
        }
        non_blank(self.jwks_url.as_deref())
            .and_then(|url| url.strip_suffix(WELL_KNOWN_JWKS_SUFFIX))
            .filter(|base| !base.is_empty())
            .map(str::to_owned)
    }
}

fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// The verified claims of a Clerk session token (v2 layout).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct ClerkClaims {
    /// User id, `user_...`.
    pub sub: String,
    /// Session id, `sess_...`.
    pub sid: String,
    /// Origin that requested the token.
    pub azp: Option<String>,
    /// Frontend API URL of the instance.
    pub iss: Option<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: Option<i64>,
    /// Session status; `"pending"` means no required organization chosen yet (kept, not rejected, here).
    pub sts: Option<String>,
    /// Impersonation: `act.sub` is the impersonator. Callers must audit it.
    pub act: Option<Value>,
}

/// Verifies Clerk session tokens. Cheap to clone; shares its key cache between clones.
#[derive(Clone)]
pub struct ClerkVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    source: KeySource,
    validation: Validation,
    issuer: Option<String>,
    authorized_parties: Vec<String>,
}

enum KeySource {
    Pem(DecodingKey),
    Jwks(Box<JwksCache>),
}

impl fmt::Debug for ClerkVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.inner.source {
            KeySource::Pem(_) => "pem".to_owned(),
            KeySource::Jwks(cache) => format!("jwks {}", cache.url()),
        };
        f.debug_struct("ClerkVerifier")
            .field("source", &source)
            .field("issuer", &self.inner.issuer)
            .field("authorized_parties", &self.inner.authorized_parties)
            .finish()
    }
}

impl ClerkVerifier {
    /// Fails (AuthError::Config) if the PEM does not parse as an RSA public key, if a jwks_url isn't http(s), or if
    /// neither source is set.
    pub fn new(settings: ClerkSettings, http: reqwest::Client) -> Result<Self, AuthError> {
        if settings.jwks_cache_ttl > MAX_JWKS_CACHE_TTL {
            return Err(AuthError::Config(format!(
                "Clerk JWKS cache ttl {:?} exceeds the 5 minutes Clerk allows",
                settings.jwks_cache_ttl
            )));
        }
        let issuer = settings.effective_issuer();
        let source = if let Some(pem) = non_blank(settings.jwt_key_pem.as_deref()) {
            if non_blank(settings.jwks_url.as_deref()).is_some() {
                tracing::info!("both CLERK_JWT_KEY and CLERK_JWKS_URL set; using the PEM key (networkless)");
            }
            KeySource::Pem(decoding_key_from_pem(pem)?)
        } else if let Some(url) = non_blank(settings.jwks_url.as_deref()) {
            let url = parse_jwks_url(url)?;
            KeySource::Jwks(Box::new(JwksCache::new(
                url,
                http,
                settings.jwks_cache_ttl,
                settings.jwks_min_refetch_interval,
            )))
        } else {
            return Err(AuthError::Config(
                "Clerk is not configured: set CLERK_JWT_KEY (preferred) or CLERK_JWKS_URL".to_owned(),
            ));
        };

        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.leeway = LEEWAY_SECS;
        validation.reject_tokens_expiring_in_less_than = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // Clerk issues no `aud`; `azp` is checked by hand below.
        validation.validate_aud = false;
        validation.aud = None;
        validation.sub = None;
        let mut required = vec!["exp", "nbf", "sub"];
        if let Some(issuer) = &issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);

        let authorized_parties = settings
            .authorized_parties
            .iter()
            .map(|party| party.trim().trim_end_matches('/'))
            .filter(|party| !party.is_empty())
            .map(str::to_owned)
            .collect();

        Ok(Self { inner: Arc::new(Inner { source, validation, issuer, authorized_parties }) })
    }

    /// Verifies a session token (the bare JWT, without `Bearer `) and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<ClerkClaims, AuthError> {
        if token.is_empty() {
            return Err(AuthError::invalid("empty token"));
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::invalid("token too large"));
        }
        // Step 1: header. Only `kid` is used from it, to pick among keys we already trust.
        let header = TokenHeader::parse(token)?;
        let fetched;
        let key = match &self.inner.source {
            KeySource::Pem(key) => key,
            KeySource::Jwks(cache) => {
                let kid =
                    header.kid.ok_or_else(|| AuthError::invalid("token has no kid, which is required with JWKS"))?;
                fetched = cache.key_for(&kid).await?;
                &fetched
            }
        };
        // Steps 2-4: signature first, then exp/nbf (leeway 5 s), required claims and iss.
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.inner.validation).map_err(jwt_error)?;
        let claims = claims_from_map(data.claims)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if claims.iat > now.saturating_add(LEEWAY_SECS as i64) {
            return Err(AuthError::invalid("token issued in the future (iat)"));
        }
        // Step 5: authorized party.
        self.check_azp(claims.azp.as_deref())?;
        Ok(claims)
    }

    fn check_azp(&self, azp: Option<&str>) -> Result<(), AuthError> {
        let allowed = &self.inner.authorized_parties;
        if allowed.is_empty() {
            return Ok(());
        }
        match azp {
            None => Err(AuthError::invalid("authorized party (azp) missing while an allowlist is configured")),
            Some(azp) if allowed.iter().any(|party| party == azp) => Ok(()),
            Some(azp) => Err(AuthError::invalid(format!("authorized party (azp) {} is not allowed", shown(azp, 100)))),
        }
    }
}

fn decoding_key_from_pem(pem: &str) -> Result<DecodingKey, AuthError> {
    let pem = pem.replace("\\n", "\n");
    if pem.contains("PRIVATE KEY") {
        return Err(AuthError::Config(
            "CLERK_JWT_KEY holds a private key; use the instance's public key (\"JWKS Public Key\")".to_owned(),
        ));
    }
    let not_rsa = |detail: String| AuthError::Config(format!("CLERK_JWT_KEY is not an RSA public key PEM: {detail}"));
    let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| not_rsa(e.to_string()))?;
    let der = key.try_get_as_bytes().map_err(|e| not_rsa(e.to_string()))?;
    let public = RsaPublicKey::from_pkcs1_der(der).map_err(|e| not_rsa(e.to_string()))?;
    check_rsa_public(&public).map_err(|e| not_rsa(e.to_owned()))?;
    Ok(key)
}

fn parse_jwks_url(url: &str) -> Result<reqwest::Url, AuthError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| AuthError::Config(format!("CLERK_JWKS_URL {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(AuthError::Config(format!("CLERK_JWKS_URL {url:?} must be an http(s) URL")));
    }
    if parsed.scheme() == "http" && !is_loopback(&parsed) {
        tracing::warn!(url = %parsed, "CLERK_JWKS_URL uses plain http; keys can be tampered with in transit");
    }
    Ok(parsed)
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// The parts of the JOSE header we look at before verifying the signature.
struct TokenHeader {
    kid: Option<String>,
}

impl TokenHeader {
    fn parse(token: &str) -> Result<Self, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::invalid("malformed token (not a compact JWS)"));
        };
        let header: Map<String, Value> = decode_segment(header)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| AuthError::invalid("malformed token header"))?;
        // Never take the algorithm from the token: it must be the one we expect.
        match header.get("alg") {
            Some(Value::String(alg)) if alg == "RS256" => {}
            Some(Value::String(alg)) => {
                return Err(AuthError::invalid(format!("algorithm {} is not allowed; only RS256", shown(alg, 16))));
            }
            _ => return Err(AuthError::invalid("token header has no alg")),
        }
        match header.get("typ") {
            None => {}
            Some(Value::String(typ)) if typ == "JWT" => {}
            Some(_) => return Err(AuthError::invalid("token type (typ) is not JWT")),
        }
        if header.contains_key("crit") {
            return Err(AuthError::invalid("critical header extensions (crit) are not supported"));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_BYTES => Some(kid.clone()),
            Some(_) => return Err(AuthError::invalid("malformed key id (kid)")),
        };
        Ok(Self { kid })
    }
}

/// A token-supplied string made safe for an error message: quoted and escaped, or elided when long.
fn shown(value: &str, max_chars: usize) -> String {
    if value.chars().count() <= max_chars { format!("{value:?}") } else { "(too long to show)".to_owned() }
}

fn jwt_error(error: jsonwebtoken::errors::Error) -> AuthError {
    let reason = match error.kind() {
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => "algorithm not allowed; only RS256".to_owned(),
        ErrorKind::ExpiredSignature => "token expired (exp)".to_owned(),
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "issuer (iss) does not match".to_owned(),
        ErrorKind::InvalidAudience => "audience (aud) rejected".to_owned(),
        ErrorKind::InvalidSubject => "subject (sub) rejected".to_owned(),
        // Claim names here come from our own required list, never from the token.
        ErrorKind::MissingRequiredClaim(claim) => format!("missing required claim {claim}"),
        ErrorKind::InvalidClaimFormat(claim) => format!("malformed claim {claim}"),
        ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey => "verification key unusable for this token".to_owned(),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "malformed token".to_owned()
        }
        _ => "token rejected".to_owned(),
    };
    AuthError::InvalidToken(reason)
}

/// Builds [`ClerkClaims`] from a verified payload, with messages that name the claim but not its value.
fn claims_from_map(mut map: Map<String, Value>) -> Result<ClerkClaims, AuthError> {
    Ok(ClerkClaims {
        sub: required_string(&map, "sub")?,
        sid: required_string(&map, "sid")?,
        azp: optional_string(&map, "azp")?,
        iss: optional_string(&map, "iss")?,
        exp: required_int(&map, "exp")?,
        iat: required_int(&map, "iat")?,
        nbf: optional_int(&map, "nbf")?,
        sts: optional_string(&map, "sts")?,
        act: map.remove("act").filter(|act| !act.is_null()),
    })
}

fn required_string(map: &Map<String, Value>, name: &str) -> Result<String, AuthError> {
    optional_string(map, name)?
        .filter(|value| !value.is_empty())
        .ok_or_else(|| AuthError::invalid(format!("missing required claim {name}")))
}

fn optional_string(map: &Map<String, Value>, name: &str) -> Result<Option<String>, AuthError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(AuthError::invalid(format!("claim {name} is not a string"))),
    }
}

fn required_int(map: &Map<String, Value>, name: &str) -> Result<i64, AuthError> {
    optional_int(map, name)?.ok_or_else(|| AuthError::invalid(format!("missing required claim {name}")))
}

fn optional_int(map: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| AuthError::invalid(format!("claim {name} is not an integer timestamp"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_is_derived_only_from_a_well_known_jwks_url() {
        let derived = ClerkSettings {
            jwks_url: Some("https://clerk.example.com/.well-known/jwks.json".to_owned()),
            ..ClerkSettings::default()
        };
        assert_eq!(derived.effective_issuer().as_deref(), Some("https://clerk.example.com"));

        let other =
            ClerkSettings { jwks_url: Some("https://api.clerk.com/v1/jwks".to_owned()), ..ClerkSettings::default() };
        assert_eq!(other.effective_issuer(), None);
    }

    #[test]
    fn explicit_issuer_wins_over_the_derived_one() {
        let settings = ClerkSettings {
            jwks_url: Some("https://clerk.example.com/.well-known/jwks.json".to_owned()),
            issuer: Some("https://issuer.example.com".to_owned()),
            ..ClerkSettings::default()
        };
        assert_eq!(settings.effective_issuer().as_deref(), Some("https://issuer.example.com"));
    }

    #[test]
    fn blank_sources_do_not_count_as_configured() {
        let settings = ClerkSettings {
            jwt_key_pem: Some("  ".to_owned()),
            jwks_url: Some(String::new()),
            ..ClerkSettings::default()
        };
        assert!(!settings.is_configured());
    }

    #[test]
    fn long_token_strings_are_not_shown_in_messages() {
        assert_eq!(shown(&"x".repeat(200), 16), "(too long to show)");
        assert_eq!(shown("HS256", 16), "\"HS256\"");
    }
}
