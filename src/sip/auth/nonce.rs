//! Stateless nonces (RFC 2617 §3.2.1 leaves the nonce format to the server).
//!
//! `nonce = hex( issued_at:u64be || salt:[u8;16] || HMAC-SHA256(secret, LABEL || issued_at || salt || realm) )`
//!
//! Why this shape: the server keeps no table of issued nonces (a flood of unauthenticated
//! REGISTERs costs nothing to remember), yet can tell its own nonces from forged ones and knows
//! each nonce's age. The salt keeps two challenges in the same second distinct, so nonce-counts
//! of different clients never collide in the replay window. Binding the realm stops a nonce from
//! one realm being replayed against another realm sharing the secret. Hex rather than base64
//! keeps the nonce inside `token` characters and avoids another dependency.

use std::fmt;

use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// How long a nonce is accepted, in seconds.
///
/// Why 300: long enough for a softphone to answer the 401 and to reuse the nonce (with rising
/// `nc`) for the INVITEs and re-REGISTERs of a short burst, short enough that a captured nonce
/// is soon worthless and that the replay window (which only has to remember nonces that are
/// still young) stays small. Expiry costs a client one silent round trip: `stale=true` tells it
/// to retry with its stored credentials without asking the operator (RFC 2617 §3.2.1).
pub const NONCE_LIFETIME_SECS: u64 = 300;

/// Clock skew we tolerate for nonces that claim to come from the future (our own clock stepped
/// back a little between issue and use).
const FUTURE_TOLERANCE_SECS: u64 = 5;

/// Domain separation: the same secret also derives the dummy HA1s.
const LABEL: &[u8] = b"smartdesk/sip-digest-nonce/v1";

const TIME_LEN: usize = 8;
const SALT_LEN: usize = 16;
const MAC_LEN: usize = 32;
const RAW_LEN: usize = TIME_LEN + SALT_LEN + MAC_LEN;

type HmacSha256 = Hmac<Sha256>;

/// Identifies a nonce inside the replay window: issue time and salt. Once the MAC is verified
/// these determine the whole nonce.
pub(crate) type NonceKey = [u8; TIME_LEN + SALT_LEN];

/// The server's HMAC key. Persist it (e.g. in the ledger) if nonces should survive a restart;
/// a fresh one merely makes clients re-authenticate once. `Debug` is redacted.
#[derive(Clone)]
pub struct ServerSecret([u8; 32]);

impl ServerSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ServerSecret(bytes)
    }

    /// A new random secret from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        ServerSecret(b)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// HMAC keyed with this secret. The 32-byte key is zero-padded to the SHA-256 block size,
    /// which is exactly what HMAC does with short keys (RFC 2104 §2), so this equals
    /// `new_from_slice` without its (impossible) error path.
    pub(crate) fn mac(&self) -> HmacSha256 {
        let mut key = Key::<HmacSha256>::default();
        for (k, s) in key.iter_mut().zip(self.0.iter()) {
            *k = *s;
        }
        <HmacSha256 as KeyInit>::new(&key)
    }
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

/// What a nonce turned out to be when it came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceState {
    /// Ours and young enough.
    Fresh { key: NonceKey, issued_at: u64 },
    /// Ours but too old (or from too far in the future): answer with `stale=true`.
    Expired,
    /// Not produced by this secret and realm (forged, mangled, or from before a secret change).
    Unknown,
}

fn tag(secret: &ServerSecret, realm: &str, key: &NonceKey) -> HmacSha256 {
    let mut mac = secret.mac();
    mac.update(LABEL);
    mac.update(key);
    mac.update(realm.as_bytes());
    mac
}

/// Mints a nonce issued at `now` with the given random salt.
pub(crate) fn mint(secret: &ServerSecret, realm: &str, now: u64, salt: [u8; SALT_LEN]) -> String {
    let mut key: NonceKey = [0; TIME_LEN + SALT_LEN];
    for (k, b) in key
        .iter_mut()
        .zip(now.to_be_bytes().iter().chain(salt.iter()))
    {
        *k = *b;
    }
    let mac = tag(secret, realm, &key).finalize().into_bytes();
    let mut raw = Vec::with_capacity(RAW_LEN);
    raw.extend_from_slice(&key);
    raw.extend_from_slice(&mac);
    hex::encode(raw)
}

/// Authenticates a returned nonce (constant-time MAC check) and classifies its age.
pub(crate) fn check(
    secret: &ServerSecret,
    realm: &str,
    nonce: &str,
    now: u64,
    lifetime: u64,
) -> NonceState {
    let mut raw = [0u8; RAW_LEN];
    if hex::decode_to_slice(nonce, &mut raw).is_err() {
        return NonceState::Unknown;
    }
    let (key_bytes, mac_bytes) = raw.split_at(TIME_LEN + SALT_LEN);
    let mut key: NonceKey = [0; TIME_LEN + SALT_LEN];
    key.copy_from_slice(key_bytes);
    if tag(secret, realm, &key).verify_slice(mac_bytes).is_err() {
        return NonceState::Unknown;
    }
    let mut t = [0u8; TIME_LEN];
    for (d, s) in t.iter_mut().zip(key.iter()) {
        *d = *s;
    }
    let issued_at = u64::from_be_bytes(t);
    let too_old = now.saturating_sub(issued_at) > lifetime;
    let from_future = issued_at > now.saturating_add(FUTURE_TOLERANCE_SECS);
    if too_old || from_future {
        NonceState::Expired
    } else {
        NonceState::Fresh { key, issued_at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> ServerSecret {
        ServerSecret::from_bytes([7; 32])
    }

    #[test]
    fn hmac_with_padded_key_equals_hmac_from_slice() {
        let s = secret();
        let mut a = s.mac();
        a.update(b"x");
        let mut b = <HmacSha256 as KeyInit>::new_from_slice(s.as_bytes()).unwrap();
        b.update(b"x");
        assert_eq!(a.finalize().into_bytes(), b.finalize().into_bytes());
    }

    #[test]
    fn fresh_then_expired_at_lifetime_boundary() {
        let n = mint(&secret(), "r", 1000, [1; 16]);
        assert_eq!(n.len(), RAW_LEN * 2);
        assert!(matches!(
            check(
                &secret(),
                "r",
                &n,
                1000 + NONCE_LIFETIME_SECS,
                NONCE_LIFETIME_SECS
            ),
            NonceState::Fresh {
                issued_at: 1000,
                ..
            }
        ));
        assert_eq!(
            check(
                &secret(),
                "r",
                &n,
                1001 + NONCE_LIFETIME_SECS,
                NONCE_LIFETIME_SECS
            ),
            NonceState::Expired
        );
        assert_eq!(
            check(&secret(), "r", &n, 1000 - FUTURE_TOLERANCE_SECS - 1, 300),
            NonceState::Expired
        );
    }

    #[test]
    fn forged_or_foreign_nonces_are_unknown() {
        let n = mint(&secret(), "r", 1000, [1; 16]);
        assert_eq!(
            check(&secret(), "other-realm", &n, 1000, 300),
            NonceState::Unknown
        );
        let other = ServerSecret::from_bytes([8; 32]);
        assert_eq!(check(&other, "r", &n, 1000, 300), NonceState::Unknown);
        // Move the issue time forward by one second without re-MACing.
        let mut tampered = n.clone().into_bytes();
        tampered[15] = if tampered[15] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            check(&secret(), "r", &tampered, 1000, 300),
            NonceState::Unknown
        );
        assert_eq!(check(&secret(), "r", "", 1000, 300), NonceState::Unknown);
        assert_eq!(check(&secret(), "r", "zz", 1000, 300), NonceState::Unknown);
        assert_eq!(
            check(&secret(), "r", &n[..n.len() - 2], 1000, 300),
            NonceState::Unknown
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", secret()), "ServerSecret(<redacted>)");
    }
}
