//! Digest arithmetic: HA1, HA2 and the `qop=auth` response (RFC 2617 §3.2.2.1–§3.2.2.3,
//! RFC 8760 §2 for SHA-256, which keeps the RFC 2617 construction and only swaps the hash).

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256};

use super::AuthError;

/// The digest algorithms this server offers. RFC 8760 §2.4: SHA-256 is preferred and offered
/// first; MD5 stays for softphones that predate RFC 8760.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The token used in the `algorithm=` directive (RFC 8760 §2.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Case-insensitive, as RFC 2617 §3.2.1 compares tokens. `-sess` variants are deliberately
    /// unknown: we never offer them, so a response using one cannot be answering our challenge.
    pub fn from_token(token: &str) -> Option<Algorithm> {
        if token.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Length of a hex digest for this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }

    fn hex_digest(self, parts: &[&[u8]]) -> String {
        match self {
            Algorithm::Md5 => hex_of::<Md5>(parts),
            Algorithm::Sha256 => hex_of::<Sha256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn hex_of<D: Digest>(parts: &[&[u8]]) -> String {
    let mut h = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// `H(username ":" realm ":" password)` as lowercase hex (RFC 2617 §3.2.2.2).
///
/// This is the only form in which credentials are stored: it is password-equivalent for this
/// realm only, so a leaked ledger does not reveal passwords reused elsewhere. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Ha1(String);

impl Ha1 {
    /// Accepts a stored HA1 (e.g. from the ledger). Must be lowercase hex of an MD5 or SHA-256
    /// digest; anything else would silently never match, so it is refused loudly instead.
    pub fn from_hex(hex: &str) -> Result<Ha1, AuthError> {
        let ok_len =
            hex.len() == Algorithm::Md5.hex_len() || hex.len() == Algorithm::Sha256.hex_len();
        let ok_chars = hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok_len && ok_chars {
            Ok(Ha1(hex.to_owned()))
        } else {
            Err(AuthError::InvalidHa1)
        }
    }

    /// Lowercase hex, for persisting.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Ha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ha1(<redacted>)")
    }
}

/// HA1 for `algorithm=MD5` (RFC 2617 §3.2.2.2).
pub fn ha1_md5(user: &str, realm: &str, password: &str) -> Ha1 {
    Ha1(Algorithm::Md5.hex_digest(&[user.as_bytes(), realm.as_bytes(), password.as_bytes()]))
}

/// HA1 for `algorithm=SHA-256` (RFC 8760 §2, RFC 7616 §3.4.2).
pub fn ha1_sha256(user: &str, realm: &str, password: &str) -> Ha1 {
    Ha1(Algorithm::Sha256.hex_digest(&[user.as_bytes(), realm.as_bytes(), password.as_bytes()]))
}

/// The `qop=auth` request-digest (RFC 2617 §3.2.2.1):
/// `KD(HA1, nonce ":" nc ":" cnonce ":" qop ":" H(method ":" digest-uri))`.
/// Public so that tests (and a client, should we ever need one) share one implementation.
pub fn response_hex(
    algorithm: Algorithm,
    ha1: &Ha1,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hex_digest(&[method.as_bytes(), uri.as_bytes()]);
    algorithm.hex_digest(&[
        ha1.0.as_bytes(),
        nonce.as_bytes(),
        nc.as_bytes(),
        cnonce.as_bytes(),
        b"auth",
        ha2.as_bytes(),
    ])
}

/// Compares a computed lowercase-hex digest with a client-supplied one without an early exit
/// on the first differing byte, so response timing does not reveal how much of a guess was
/// right. Hex digits from the client are case-folded (RFC 2617 says LHEX, some clients send
/// uppercase). The length is not secret (it is fixed per algorithm).
pub(crate) fn ct_eq_hex(expected: &str, supplied: &str) -> bool {
    let (a, b) = (expected.as_bytes(), supplied.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | (x ^ y.to_ascii_lowercase()));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_section_3_5_worked_example() {
        // RFC 2617 §3.5: the response value printed in the RFC.
        let ha1 = ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life");
        let r = response_hex(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001",
            "0a4f113b",
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_section_3_9_1_sha256_and_md5() {
        // RFC 7616 §3.9.1: same inputs, both algorithms; values printed in the RFC.
        let (user, realm, pw) = ("Mufasa", "http-auth@example.org", "Circle of Life");
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let sha = response_hex(
            Algorithm::Sha256,
            &ha1_sha256(user, realm, pw),
            nonce,
            "00000001",
            cnonce,
            "GET",
            "/dir/index.html",
        );
        assert_eq!(
            sha,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let md5 = response_hex(
            Algorithm::Md5,
            &ha1_md5(user, realm, pw),
            nonce,
            "00000001",
            cnonce,
            "GET",
            "/dir/index.html",
        );
        assert_eq!(md5, "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn ha1_lengths_and_validation() {
        assert_eq!(ha1_md5("a", "b", "c").as_str().len(), 32);
        assert_eq!(ha1_sha256("a", "b", "c").as_str().len(), 64);
        let h = ha1_sha256("a", "b", "c");
        assert_eq!(Ha1::from_hex(h.as_str()), Ok(h.clone()));
        assert_eq!(Ha1::from_hex("ABCD"), Err(AuthError::InvalidHa1));
        assert_eq!(Ha1::from_hex(&"G".repeat(32)), Err(AuthError::InvalidHa1));
        assert_eq!(format!("{h:?}"), "Ha1(<redacted>)");
    }

    #[test]
    fn constant_time_compare_semantics() {
        assert!(ct_eq_hex("abcdef", "abcdef"));
        assert!(ct_eq_hex("abcdef", "ABCDEF"));
        assert!(!ct_eq_hex("abcdef", "abcdee"));
        assert!(!ct_eq_hex("abcdef", "abcde"));
        assert!(!ct_eq_hex("abcdef", ""));
    }

    #[test]
    fn algorithm_tokens() {
        assert_eq!(Algorithm::from_token("md5"), Some(Algorithm::Md5));
        assert_eq!(Algorithm::from_token("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::from_token("MD5-sess"), None);
        assert_eq!(Algorithm::from_token("SHA-512-256"), None);
    }
}
