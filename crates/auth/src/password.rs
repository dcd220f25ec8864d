//! Admin passwords: argon2id PHC strings and their constant-time verification; must never log a password or
//! let a caller tell an unknown account from a wrong password by timing.

use std::sync::LazyLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::AuthError;

/// Shortest password accepted for a local admin.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (hashing is linear in it; refuse absurd inputs).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// argon2id with OWASP's minimum parameters (19 MiB, 2 passes, 1 lane).
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A valid hash of a random password, verified against when the account does not exist, so that an unknown
/// email costs the same time as a wrong password.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| hash_password("no such account: timing equaliser").ok());

/// Checks the password policy (length only; no composition rules, as NIST SP 800-63B advises).
pub fn check_password_policy(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::Config(format!("the password must have at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::Config(format!("the password must have at most {MAX_PASSWORD_BYTES} bytes")));
    }
    Ok(())
}

/// Hashes a password into an argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) with a random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Config(format!("cannot hash password: {e}")))
}

/// Whether `password` matches `stored` (a PHC string). `None` (no such account) still spends one full hash.
/// CPU-bound (tens of milliseconds): call it from a blocking thread.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let (phc, real) = match stored {
        Some(phc) => (phc, true),
        None => match DUMMY_HASH.as_deref() {
            Some(dummy) => (dummy, false),
            None => return false,
        },
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // The comparison inside `verify_password` is constant-time.
    let ok = hasher().verify_password(password.as_bytes(), &parsed).is_ok();
    ok && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify() {
        let hash = hash_password("correct horse battery").unwrap_or_default();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse battery", Some(&hash)));
        assert!(!verify_password("wrong horse battery", Some(&hash)));
    }

    #[test]
    fn unknown_account_never_verifies() {
        assert!(!verify_password("no such account: timing equaliser", None));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(check_password_policy("short").is_err());
        assert!(check_password_policy("long enough password").is_ok());
    }
}
