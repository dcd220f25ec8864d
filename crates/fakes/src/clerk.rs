//! Fake Clerk for tests: committed test-only RSA keys, a session-token signer and a local JWKS server speaking
//! Clerk's wire format; must never hold real keys nor talk to the real Clerk.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Issuer (`iss`) put in tokens by [`session_token`]: the Frontend API URL of a development instance.
pub const TEST_ISSUER: &str = "https://test.clerk.accounts.dev";
/// Authorized party (`azp`) put in tokens by [`session_token`].
pub const TEST_AUTHORIZED_PARTY: &str = "http://localhost:3000";
/// Path of the Frontend API JWKS document.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

// TEST KEYS ONLY. These key pairs are committed to the repository (see keys/README.md), so anyone can forge tokens
// signed with them. They exist because generating RSA keys at test time is slow in debug builds.
const PRIMARY_PRIVATE_PEM: &str = include_str!("../keys/primary_private.pem");
const PRIMARY_PUBLIC_PEM: &str = include_str!("../keys/primary_public.pem");
const OTHER_PRIVATE_PEM: &str = include_str!("../keys/other_private.pem");
const OTHER_PUBLIC_PEM: &str = include_str!("../keys/other_public.pem");

/// A committed, test-only RSA 2048 key pair with its Clerk-style key id (`kid`).
#[derive(Debug, Clone)]
pub struct ClerkKeys {
    kid: &'static str,
    private_pem: &'static str,
    public_pem: &'static str,
}

impl ClerkKeys {
    /// The key the fake Clerk instance signs with.
    pub fn primary() -> Self {
        Self { kid: "ins_test_primary", private_pem: PRIMARY_PRIVATE_PEM, public_pem: PRIMARY_PUBLIC_PEM }
    }

    /// An unrelated key pair: for "wrong key" and key-rotation tests.
    pub fn other() -> Self {
        Self { kid: "ins_test_other", private_pem: OTHER_PRIVATE_PEM, public_pem: OTHER_PUBLIC_PEM }
    }

    /// The public key as an SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as Clerk shows it for `CLERK_JWT_KEY`.
    pub fn public_pem(&self) -> &str {
        self.public_pem
    }

    /// The key id that [`ClerkKeys::sign`] puts in the header and [`ClerkKeys::jwk`] puts in the JWK.
    pub fn kid(&self) -> &str {
        self.kid
    }

    /// The public key as a JWK, shaped like the entries of Clerk's JWKS document.
    pub fn jwk(&self) -> Value {
        let public = parse_public_pem(self.public_pem);
        json!({
            "use": "sig",
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        })
    }

    /// The header Clerk puts on session tokens: RS256, `typ: JWT` and this key's `kid`.
    pub fn header(&self) -> Header {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.to_owned());
        header.typ = Some("JWT".to_owned());
        header
    }

    /// Signs `claims` with RS256 and [`ClerkKeys::header`].
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&self.header(), claims)
    }

    /// Signs `claims` with this private key under an arbitrary header (no `kid`, another `alg` of the RSA family...).
    pub fn sign_with_header(&self, header: &Header, claims: &Value) -> String {
        #[expect(
            clippy::expect_used,
            reason = "the embedded test keys are known-good; a failure here is a broken fixture, not a runtime case"
        )]
        let key = EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).expect("embedded test private key parses");
        #[expect(
            clippy::expect_used,
            reason = "signing JSON with a known-good RSA key under an RSA algorithm cannot fail"
        )]
        jsonwebtoken::encode(header, claims, &key).expect("signing with the embedded test key")
    }

    /// Valid session-token claims; see [`session_token`].
    pub fn session_token(sub: &str) -> Value {
        session_token(sub)
    }
}

/// Valid Clerk session-token v2 claims for user `sub`: a fresh `sid`, `iat` now, `nbf` now - 1 s, `exp` now + 60 s,
/// `azp` [`TEST_AUTHORIZED_PARTY`], `iss` [`TEST_ISSUER`], `v` 2. Edit the returned object to build invalid tokens.
pub fn session_token(sub: &str) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "azp": TEST_AUTHORIZED_PARTY,
        "exp": now + 60,
        "fva": [0, -1],
        "iat": now,
        "iss": TEST_ISSUER,
        "jti": format!("jti_{}", uuid::Uuid::new_v4().simple()),
        "nbf": now - 1,
        "sid": format!("sess_{}", uuid::Uuid::new_v4().simple()),
        "sub": sub,
        "v": 2,
    })
}

/// An unsigned compact JWS (`header.claims.`, empty signature), for `alg: none` style attacks.
pub fn unsigned_token(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

fn parse_public_pem(pem: &str) -> RsaPublicKey {
    #[expect(
        clippy::expect_used,
        reason = "the embedded test keys are known-good; a failure here is a broken fixture, not a runtime case"
    )]
    RsaPublicKey::from_public_key_pem(pem).expect("embedded test public key parses")
}

/// A local HTTP server serving `GET /.well-known/jwks.json` like Clerk's Frontend API, with knobs for tests.
/// Stopped when dropped.
#[derive(Debug)]
pub struct FakeJwksServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    keys: Mutex<Vec<Value>>,
    failing: AtomicBool,
    delay_ms: AtomicU64,
    fetches: AtomicUsize,
}

impl FakeJwksServer {
    /// Binds 127.0.0.1 on a free port and serves `{"keys": keys}`.
    pub async fn start(keys: Vec<Value>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            keys: Mutex::new(keys),
            failing: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            fetches: AtomicUsize::new(0),
        });
        let app = Router::new().route(JWKS_PATH, get(serve_jwks)).with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            // The server only stops when the task is aborted; an accept error ends it, which tests will notice.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>`: what Clerk calls the Frontend API URL, and so the issuer derived from the JWKS URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port>/.well-known/jwks.json`.
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.base_url())
    }

    /// Replaces the served key set (key rotation).
    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.shared.keys.lock().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// When true, answers HTTP 500 instead of the key set.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Delays every answer, to widen race windows in concurrency tests.
    pub fn set_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(millis, Ordering::SeqCst);
    }

    /// How many JWKS requests were received, failed ones included.
    pub fn fetch_count(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for FakeJwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if shared.failing.load(Ordering::SeqCst) {
        let body = json!({"errors": [{"message": "Internal server error", "code": "internal_clerk_error"}]});
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
    }
    let keys = shared.keys.lock().unwrap_or_else(PoisonError::into_inner).clone();
    Json(json!({ "keys": keys })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwk_exponent_is_the_usual_65537() {
        assert_eq!(ClerkKeys::primary().jwk()["e"], "AQAB");
    }

    #[test]
    fn primary_and_other_are_different_keys() {
        assert_ne!(ClerkKeys::primary().jwk()["n"], ClerkKeys::other().jwk()["n"]);
        assert_ne!(ClerkKeys::primary().kid(), ClerkKeys::other().kid());
    }

    #[test]
    fn signed_token_has_three_parts_and_a_signature() {
        let token = ClerkKeys::primary().sign(&session_token("user_1"));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| !p.is_empty()));
    }
}
