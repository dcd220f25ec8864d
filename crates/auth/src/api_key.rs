//! Project API keys (spec auth-tokens.md §4): generation, parsing with a checksum, and the keyed digest that is
//! stored. Pure functions, no store and no HTTP; must never put a key's secret into an error or a log line.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::error::AuthError;

/// Every Sensei key begins with this: the secret-key marker plus the product name.
pub const KEY_PREFIX: &str = "sk_sensei_";
/// Length of the public key id between `sk_sensei_` and the secret.
pub const KEY_ID_LEN: usize = 8;
const SECRET_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
/// `sk_sensei_` + id + `_` + secret + checksum.
pub const KEY_LEN: usize = KEY_PREFIX.len() + KEY_ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// Smallest accepted pepper.
pub const MIN_PEPPER_BYTES: usize = 32;

/// A freshly generated key. `full` is shown once and never stored.
pub struct GeneratedKey {
    /// The whole key, `sk_sensei_<id>_<secret><checksum>`.
    pub full: String,
    /// `sk_sensei_<id>`: unique, stored, shown in listings and logs.
    pub prefix: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey").field("prefix", &self.prefix).field("full", &"[redacted]").finish()
    }
}

/// A key whose format and checksum are right (which says nothing about whether it exists).
pub struct ParsedKey<'a> {
    full: &'a str,
    prefix: &'a str,
}

impl<'a> ParsedKey<'a> {
    /// `sk_sensei_<id>`, the lookup handle.
    pub fn prefix(&self) -> &'a str {
        self.prefix
    }

    pub fn full(&self) -> &'a str {
        self.full
    }
}

/// Generates a key: a random public id and 32 bytes from the operating system's CSPRNG (through `rand`'s
/// thread-local ChaCha generator, reseeded from the OS).
pub fn generate_key() -> GeneratedKey {
    let mut rng = rand::rng();
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let mut id_bytes = [0u8; KEY_ID_LEN];
    rng.fill_bytes(&mut id_bytes);
    let id: String = id_bytes.iter().map(|b| char::from(ID_ALPHABET[usize::from(*b) % ID_ALPHABET.len()])).collect();
    let prefix = format!("{KEY_PREFIX}{id}");
    let full = format!("{prefix}_{}", secret_with_checksum(&secret));
    GeneratedKey { full, prefix }
}

/// `secret` (43 base62 characters) followed by its CRC32 checksum (6 base62 characters).
pub(crate) fn secret_with_checksum(secret: &[u8; 32]) -> String {
    let encoded = base62(secret, SECRET_LEN);
    let checksum = base62(&crc32fast::hash(encoded.as_bytes()).to_be_bytes(), CHECKSUM_LEN);
    format!("{encoded}{checksum}")
}

/// Big-endian base62 of `bytes`, left-padded with `0` to `width` digits.
pub(crate) fn base62(bytes: &[u8], width: usize) -> String {
    let mut number: Vec<u8> = bytes.to_vec();
    let mut digits = Vec::with_capacity(width);
    while number.iter().any(|b| *b != 0) {
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            remainder = acc % 62;
        }
        digits.push(BASE62[remainder as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8_lossy(&digits).into_owned()
}

/// Checks the format and checksum of a presented key, parsing from the right (spec §4.1). Errors say what is
/// wrong but never contain the key.
pub fn parse_key(key: &str) -> Result<ParsedKey<'_>, AuthError> {
    if !key.starts_with(KEY_PREFIX) {
        return Err(AuthError::invalid("API key does not start with sk_sensei_"));
    }
    if key.len() != KEY_LEN || !key.is_ascii() {
        return Err(AuthError::invalid(format!("API key has the wrong length (expected {KEY_LEN} characters)")));
    }
    let (head, tail) = key.split_at(key.len() - SECRET_LEN - CHECKSUM_LEN);
    let (secret, checksum) = tail.split_at(SECRET_LEN);
    let Some(prefix) = head.strip_suffix('_') else {
        return Err(AuthError::invalid("API key is malformed (missing separator before the secret)"));
    };
    let id = &prefix[KEY_PREFIX.len()..];
    if id.len() != KEY_ID_LEN || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(AuthError::invalid("API key has a malformed key id"));
    }
    if !tail.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(AuthError::invalid("API key secret is not base62"));
    }
    let expected = base62(&crc32fast::hash(secret.as_bytes()).to_be_bytes(), CHECKSUM_LEN);
    if !bool::from(expected.as_bytes().ct_eq(checksum.as_bytes())) {
        return Err(AuthError::invalid("API key checksum does not match (typo or truncated key?)"));
    }
    Ok(ParsedKey { full: key, prefix })
}

/// The server pepper keying the stored digests.
#[derive(Clone)]
pub struct Pepper(Vec<u8>);

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper([redacted])")
    }
}

impl Pepper {
    /// Refuses peppers shorter than 32 bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, AuthError> {
        if bytes.len() < MIN_PEPPER_BYTES {
            return Err(AuthError::Config(format!("the API key pepper must be at least {MIN_PEPPER_BYTES} bytes")));
        }
        Ok(Self(bytes))
    }

    /// HMAC-SHA-256(pepper, full key string): what is stored.
    pub fn digest(&self, full_key: &str) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => return [0u8; 32],
        };
        mac.update(full_key.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `stored` is the digest of `key`, compared in constant time.
    pub fn matches(&self, key: &ParsedKey<'_>, stored: &[u8]) -> bool {
        bool::from(self.digest(key.full).as_slice().ct_eq(stored))
    }
}

/// 32 random bytes, hex-encoded: a fresh secret for `app_settings`.
pub fn random_secret_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_secret() -> [u8; 32] {
        let mut secret = [0u8; 32];
        for (i, b) in secret.iter_mut().enumerate() {
            *b = i as u8;
        }
        secret
    }

    #[test]
    fn spec_test_vector_encodes_secret_and_checksum() {
        assert_eq!(secret_with_checksum(&vector_secret()), "003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf1Yo7hP");
    }

    #[test]
    fn spec_test_vector_hmac_over_full_key() {
        let pepper = Pepper::new(vec![0u8; 32]).map_err(|e| e.to_string());
        let digest = pepper.map(|p| p.digest("xx_live_003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf1Yo7hP"));
        let hex: Option<String> = digest.ok().map(|d| d.iter().map(|b| format!("{b:02x}")).collect());
        assert_eq!(hex.as_deref(), Some("f43315fdb358dba50983632ebebcf61367675290cdacd00050028c1b486e4f9b"));
    }

    #[test]
    fn generated_keys_parse_and_match_their_digest() {
        let key = generate_key();
        assert_eq!(key.full.len(), KEY_LEN);
        let parsed = parse_key(&key.full).map_err(|e| e.to_string());
        assert!(parsed.is_ok(), "{:?}", parsed.err());
        if let Ok(parsed) = parsed {
            assert_eq!(parsed.prefix(), key.prefix);
            let Ok(pepper) = Pepper::new(vec![7u8; 32]) else { return };
            assert!(pepper.matches(&parsed, &pepper.digest(&key.full)));
            assert!(!pepper.matches(&parsed, &[0u8; 32]));
        }
    }

    #[test]
    fn parse_errors_name_the_problem_without_the_secret() {
        let key = generate_key();
        let wrong_prefix = key.full.replacen("sk_sensei_", "sk_other__", 1);
        let err = parse_key(&wrong_prefix).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("sk_sensei_"), "{err}");

        let mut typo = key.full.clone().into_bytes();
        let at = KEY_PREFIX.len() + KEY_ID_LEN + 5;
        typo[at] = if typo[at] == b'A' { b'B' } else { b'A' };
        let typo = String::from_utf8(typo).unwrap_or_default();
        let err = parse_key(&typo).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("checksum"), "{err}");
        assert!(!err.contains(&typo[KEY_PREFIX.len() + KEY_ID_LEN + 1..]), "{err}");

        assert!(parse_key("sk_sensei_short").is_err());
    }

    #[test]
    fn short_peppers_are_refused() {
        assert!(Pepper::new(vec![1u8; 16]).is_err());
    }
}
