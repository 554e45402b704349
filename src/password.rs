//! Web passwords: argon2id PHC strings (OWASP-recommended parameters are argon2's defaults).

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

/// Shortest web password accepted: the console and portal face operators' networks.
pub const MIN_WEB_PASSWORD_LEN: usize = 10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("must be at least {MIN_WEB_PASSWORD_LEN} characters")]
    TooShort,
    #[error("hashing failed: {0}")]
    Hash(String),
}

pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_WEB_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Characters of one-time passwords: no look-alikes (0/O, 1/l/I) to misread on the phone.
const ONE_TIME_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A one-time password (16 characters, ~92 bits) printed by the CLI for a new web account;
/// the user must replace it at first login.
pub fn one_time() -> String {
    use argon2::password_hash::rand_core::RngCore;
    let mut b = [0u8; 16];
    let mut out = String::with_capacity(16);
    while out.len() < 16 {
        OsRng.fill_bytes(&mut b);
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ONE_TIME_ALPHABET.len();
        for &x in &b {
            if (x as usize) < limit && out.len() < 16 {
                out.push(ONE_TIME_ALPHABET[x as usize % ONE_TIME_ALPHABET.len()] as char);
            }
        }
    }
    out
}

/// Constant-time verification; a malformed stored hash verifies nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("wrong password!!", &h));
        assert!(!verify("anything", "not a phc string"));
        assert_eq!(hash("short"), Err(PasswordError::TooShort));
        let a = one_time();
        assert_eq!(a.len(), 16);
        assert!(hash(&a).is_ok(), "long enough to be a web password");
        assert_ne!(a, one_time());
    }
}
