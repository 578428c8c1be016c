//! Passwords for local accounts: argon2id with a random salt per password, stored as a PHC
//! string; verification costs the same whether or not the account exists.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 12;

/// Why a password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WeakPassword(pub &'static str);

/// The PHC string for `password`, after checking it is long enough.
pub fn hash(password: &str) -> Result<String, WeakPassword> {
    if password.chars().count() < MIN_LENGTH {
        return Err(WeakPassword("a password needs at least 12 characters"));
    }
    if password.len() > 1024 {
        return Err(WeakPassword("a password may have at most 1024 bytes"));
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| WeakPassword("the password could not be salted"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| WeakPassword("the password could not be hashed"))
}

/// A hash of a password nobody knows: checked against when an account has none, so a wrong
/// e-mail takes as long as a wrong password.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&crate::secrets::random_token()).unwrap_or_default())
}

/// Whether `password` matches `stored` (`None`: no password set, which never matches).
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let matches = |phc: &str| {
        PasswordHash::new(phc)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    };
    match stored {
        Some(phc) => matches(phc),
        None => {
            let _ = matches(decoy());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash("correct horse battery").expect("hash");
        let b = hash("correct horse battery").expect("hash");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a salt per password");
        assert!(verify("correct horse battery", Some(&a)));
        assert!(!verify("correct horse battery!", Some(&a)));
        assert!(!verify("anything at all", None));
        assert!(hash("short").is_err());
    }
}
