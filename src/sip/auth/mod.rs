//! HTTP Digest authentication for SIP (RFC 3261 §22.4), sans-IO.
//!
//! ```text
//!  REGISTER (no Authorization) ──► Verifier::challenge(now, false) ──► 401 + 2× WWW-Authenticate
//!                                                                       (SHA-256 first, then MD5,
//!                                                                        RFC 8760 §2.4)
//!  REGISTER (Authorization) ──► parse_authorization ──► Verifier::verify(now, …, lookup)
//!        Err(_)           → 401 with a fresh challenge (RFC 4475 regaut01) or 400 if malformed
//!        Verdict::Ok      → carry on as the authenticated user
//!        Verdict::Stale   → 401 with challenge(now, true): right password, old nonce
//!        Verdict::Reject  → 401 with challenge(now, false)
//! ```
//!
//! Only `qop=auth` (RFC 2617 §3.2.2) with `MD5` or `SHA-256` (RFC 8760) is offered and accepted;
//! `-sess` variants, `auth-int` and `userhash` are never offered, so a response using them is
//! refused. Credentials are held only as HA1 hashes ([`Ha1`]); plaintext passwords never reach the
//! verifier. Nonces are stateless (HMAC-authenticated, see [`nonce`]) and replays are caught by a
//! bounded nonce-count window (see [`replay`]). Time is always passed in as unix seconds.

mod digest;
mod header;
pub mod nonce;
pub mod replay;
mod verifier;

pub use digest::{ha1_md5, ha1_sha256, response_hex, Algorithm, Ha1};
pub use header::{parse_authorization, DigestResponse, MAX_AUTHORIZATION_LEN};
pub use nonce::{ServerSecret, NONCE_LIFETIME_SECS};
pub use replay::REPLAY_WINDOW_CAPACITY;
pub use verifier::{RejectReason, Verdict, Verifier};

/// Everything that can go wrong in this module. Parsing errors carry no attacker-controlled
/// text so that they can be logged without escaping concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// RFC 4475 §3.3.7 "regaut01": a scheme we do not know must lead to a fresh challenge.
    #[error("unsupported scheme")]
    UnsupportedScheme,
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    #[error("Authorization header value longer than {MAX_AUTHORIZATION_LEN} bytes")]
    TooLong,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("duplicate digest parameter")]
    DuplicateParam,
    #[error("missing digest parameter `{0}`")]
    MissingParam(&'static str),
    /// The configured realm cannot be sent inside a quoted-string (control characters).
    #[error("realm contains characters that cannot be quoted")]
    InvalidRealm,
    #[error("HA1 is not a lowercase hex digest")]
    InvalidHa1,
}

impl AuthError {
    /// The SIP status the edge should answer with (one mapping per layer, ARCHITECTURE.md).
    /// Schemes and algorithms we do not speak get a fresh challenge so the client can retry with
    /// one we do (RFC 4475 regaut01, RFC 8760 §2.4); a syntactically broken header will not be
    /// fixed by re-challenging, so it gets 400.
    pub fn status_code(&self) -> u16 {
        match self {
            AuthError::UnsupportedScheme | AuthError::UnsupportedAlgorithm => 401,
            AuthError::TooLong
            | AuthError::Malformed(_)
            | AuthError::DuplicateParam
            | AuthError::MissingParam(_) => 400,
            AuthError::InvalidRealm | AuthError::InvalidHa1 => 500,
        }
    }
}
