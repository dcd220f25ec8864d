//! Shared application state handed to every handler, built once at start-up by [`crate::prepare`].

use std::sync::Arc;

use mentorfy_auth::{ClerkClaims, ClerkVerifier};
use mentorfy_core::Config;
use mentorfy_llm::Gateway;
use mentorfy_mentor::{ChatService, Sessions};
use mentorfy_store::Store;
use serde_json::json;

use crate::error::AppError;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    store: Store,
    sessions: Sessions,
    clerk: Option<ClerkVerifier>,
    chat: ChatService,
    gateway: Gateway,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        sessions: Sessions,
        clerk: Option<ClerkVerifier>,
        chat: ChatService,
        gateway: Gateway,
    ) -> Self {
        Self { inner: Arc::new(Inner { config, store, sessions, clerk, chat, gateway }) }
    }

    pub fn chat(&self) -> &ChatService {
        &self.inner.chat
    }

    pub fn gateway(&self) -> &Gateway {
        &self.inner.gateway
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// The Clerk verifier, or the 503 that names the variables to set.
    pub fn require_clerk(&self) -> Result<&ClerkVerifier, AppError> {
        self.inner.clerk.as_ref().ok_or_else(|| {
            AppError::unavailable("sign-in is not configured on this server: set CLERK_JWT_KEY (or CLERK_JWKS_URL)")
                .with_details(json!({"missing": ["CLERK_JWT_KEY", "CLERK_JWKS_URL"]}))
        })
    }

    pub async fn verify_clerk(&self, token: &str) -> Result<ClerkClaims, AppError> {
        Ok(self.require_clerk()?.verify(token).await?)
    }
}
