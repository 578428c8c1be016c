//! Secrets moat hands out: API keys, session cookies, device codes. Each is 256 random bits;
//! only a SHA-256 of it is stored (a fast hash is right for high-entropy secrets, unlike
//! passwords).

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The prefix of every moat key, so secret scanners and people recognise one.
pub const KEY_PREFIX: &str = "moat_sk_";
/// Characters of a key kept for display.
const DISPLAY_PREFIX_CHARS: usize = 12;

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A new random key secret.
pub fn generate_secret() -> String {
    format!("{KEY_PREFIX}{}", random_token())
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The part of a key safe to show next to it: enough to tell keys apart.
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(DISPLAY_PREFIX_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hash_stably() {
        let a = generate_secret();
        let b = generate_secret();
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 43);
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
        assert_eq!(display_prefix(&a).len(), 12);
    }
}
