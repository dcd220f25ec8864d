//! Verification of incoming credentials (Clerk session tokens, admin tokens, project API keys, admin passwords); knows nothing of HTTP frameworks, cookies or
//! the store, and never logs or echoes a token.
//!
//! Security note on dependencies: `jsonwebtoken` runs on the `rust_crypto` backend, which pulls in the `rsa` crate
//! and with it RUSTSEC-2023-0071 (Marvin attack: a timing side channel that can leak a *private* key during
//! decryption or signing). It is acceptable here because this crate only *verifies* RS256 signatures with public
//! keys; no private-key operation ever runs in production code (the committed test keys in `mentorfy-fakes` sign
//! only in tests).

mod admin_token;
pub mod api_key;
mod clerk;
mod error;
mod jwks;
pub mod password;

pub use admin_token::{AdminAuthSettings, AdminIdentity, AdminSource, AdminVerifier, IssuedToken, LOCAL_ISSUER};
pub use clerk::{ClerkClaims, ClerkSettings, ClerkVerifier};
pub use error::AuthError;
