//! A stand-in for Supabase Auth's JWKS endpoint (`/auth/v1/.well-known/jwks.json`) and builders of Supabase-shaped
//! access-token claims, for tests only. Signing reuses the committed RSA test keys of [`crate::clerk::ClerkKeys`]
//! (Supabase allows RS256 signing keys).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Where Supabase serves its JWKS, relative to the project URL.
pub const SUPABASE_JWKS_PATH: &str = "/auth/v1/.well-known/jwks.json";

/// Claims of a Supabase user access token for `sub` (a UUID) and `email`, issued by `<project_url>/auth/v1`,
/// valid for an hour. Edit the returned object to build invalid tokens.
pub fn access_token(project_url: &str, sub: &str, email: &str) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "iss": format!("{project_url}/auth/v1"),
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "sub": sub,
        "email": email,
        "phone": "",
        "role": "authenticated",
        "aal": "aal1",
        "session_id": uuid::Uuid::new_v4().to_string(),
        "is_anonymous": false,
        "app_metadata": {"provider": "email"},
        "user_metadata": {},
    })
}

const ES256_PRIVATE_PEM: &str = include_str!("../keys/supabase_es256_private.pem");
const ES256_X: &str = "hpamZL0TTZSwSH7VgGW2CehExFxqqT37FjLWvPbD6LI";
const ES256_Y: &str = "DVcsBt8DUxBsccxoKvHfI45XEI_DlH048u84VZ6eOkg";

/// The committed, test-only P-256 key of a Supabase project using ES256 signing keys (Supabase's recommended setup).
#[derive(Debug, Clone, Copy)]
pub struct SupabaseEcKey;

impl SupabaseEcKey {
    pub const KID: &'static str = "sb_test_es256";

    /// The public key as Supabase's JWKS lists it.
    pub fn jwk(&self) -> Value {
        json!({"kid": Self::KID, "alg": "ES256", "kty": "EC", "key_ops": ["verify"], "crv": "P-256",
               "x": ES256_X, "y": ES256_Y})
    }

    /// Signs `claims` with ES256 under `{"alg":"ES256","typ":"JWT","kid":KID}`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(Self::KID.to_owned());
        header.typ = Some("JWT".to_owned());
        #[expect(clippy::expect_used, reason = "the embedded test key is known-good; a failure is a broken fixture")]
        let key = jsonwebtoken::EncodingKey::from_ec_pem(ES256_PRIVATE_PEM.as_bytes()).expect("embedded EC key parses");
        #[expect(clippy::expect_used, reason = "signing JSON with a known-good P-256 key cannot fail")]
        jsonwebtoken::encode(&header, claims, &key).expect("signing with the embedded EC key")
    }
}

/// A local HTTP server answering `GET /auth/v1/.well-known/jwks.json` with `{"keys": keys}`. Stopped when dropped.
#[derive(Debug)]
pub struct FakeSupabase {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    keys: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
}

impl FakeSupabase {
    pub async fn start(keys: Vec<Value>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { keys: Mutex::new(keys), fetches: AtomicUsize::new(0) });
        let app = Router::new().route(SUPABASE_JWKS_PATH, get(serve_jwks)).with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>`: the value for `SUPABASE_URL`.
    pub fn project_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the served key set (rotation).
    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.shared.keys.lock().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// How many JWKS requests were received.
    pub fn fetch_count(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for FakeSupabase {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_jwks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    let keys = shared.keys.lock().unwrap_or_else(PoisonError::into_inner).clone();
    Json(json!({ "keys": keys }))
}
