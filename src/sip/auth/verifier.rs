//! The server side of digest authentication: issue challenges, verify responses.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::digest::{ct_eq_hex, response_hex};
use super::header::{is_quotable, quote};
use super::nonce::{self, NonceState, ServerSecret, NONCE_LIFETIME_SECS};
use super::replay::{NcCheck, ReplayWindow, REPLAY_WINDOW_CAPACITY};
use super::{Algorithm, AuthError, DigestResponse, Ha1};

/// Outcome of [`Verifier::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The response proves knowledge of the user's HA1 for a fresh nonce and an unused `nc`.
    Ok { user: String },
    /// Correct credentials on a nonce we no longer accept: re-challenge with `stale=true`
    /// (RFC 2617 §3.2.1) so the client retries without prompting for a password.
    Stale,
    /// Re-challenge with `stale=false`. The reason is for server logs only; the client must see
    /// the same 401 whatever it is (no user enumeration).
    Reject { reason: RejectReason },
}

/// Why a response was refused. `BadCredentials` deliberately covers both "unknown user" and
/// "wrong password" so that not even logs shipped elsewhere distinguish them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    RealmMismatch,
    /// RFC 3261 §22.4 / RFC 2617 §3.2.2.5: `uri` must be the Request-URI.
    UriMismatch,
    /// We offer only `qop="auth"`; RFC 2069-style responses without qop are refused.
    QopNotAuth,
    MissingCnonce,
    MissingNonceCount,
    /// RFC 7616 §3.4.4 userhash was not offered.
    UserhashNotOffered,
    /// The response uses an algorithm this verifier was configured not to offer
    /// ([`Verifier::with_algorithms`]).
    AlgorithmNotOffered,
    BadCredentials,
    /// Nonce-count not higher than one already accepted for this nonce.
    Replay,
}

/// Issues challenges and verifies digest responses for one realm. Sans-IO: time comes in as
/// `now` (unix seconds, expected to be non-decreasing); randomness comes from an owned RNG
/// that tests can seed. One owner task per instance (ARCHITECTURE.md), hence `&mut self`.
#[derive(Debug)]
pub struct Verifier {
    realm: String,
    secret: ServerSecret,
    nonce_lifetime: u64,
    rng: StdRng,
    replay: ReplayWindow,
    /// Offered in this order, one `WWW-Authenticate` each; only these are accepted.
    algorithms: Vec<Algorithm>,
    dummy_md5: Ha1,
    dummy_sha256: Ha1,
}

impl Verifier {
    /// A verifier whose nonce salts come from OS entropy.
    pub fn new(realm: &str, secret: ServerSecret) -> Result<Verifier, AuthError> {
        Verifier::build(realm, secret, StdRng::from_entropy())
    }

    /// Deterministic salts, for tests and simulations.
    pub fn with_rng_seed(
        realm: &str,
        secret: ServerSecret,
        seed: [u8; 32],
    ) -> Result<Verifier, AuthError> {
        Verifier::build(realm, secret, StdRng::from_seed(seed))
    }

    fn build(realm: &str, secret: ServerSecret, rng: StdRng) -> Result<Verifier, AuthError> {
        if !is_quotable(realm) {
            return Err(AuthError::InvalidRealm);
        }
        // Unknown users are checked against these so that their path does the same hashing as a
        // known user with a wrong password. Derived from the secret: not guessable, stable.
        let dummy = |label: &[u8], alg: Algorithm| {
            use hmac::Mac;
            let mut mac = secret.mac();
            mac.update(b"smartdesk/sip-digest-dummy-ha1/v1/");
            mac.update(label);
            let full = hex::encode(mac.finalize().into_bytes());
            let hex: String = full.chars().take(alg.hex_len()).collect();
            Ha1::from_hex(&hex)
        };
        let dummy_md5 = dummy(b"MD5", Algorithm::Md5)?;
        let dummy_sha256 = dummy(b"SHA-256", Algorithm::Sha256)?;
        Ok(Verifier {
            realm: realm.to_owned(),
            secret,
            nonce_lifetime: NONCE_LIFETIME_SECS,
            rng,
            replay: ReplayWindow::new(REPLAY_WINDOW_CAPACITY),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            dummy_md5,
            dummy_sha256,
        })
    }

    /// Overrides [`NONCE_LIFETIME_SECS`] (e.g. from the seat profile).
    pub fn with_nonce_lifetime(mut self, secs: u64) -> Verifier {
        self.nonce_lifetime = secs;
        self
    }

    /// Which algorithms to offer, in the order of the `WWW-Authenticate` headers (default:
    /// SHA-256 then MD5, RFC 8760 §2.4). Responses using an algorithm not listed are refused.
    /// An empty list or duplicates are ignored (the default order is kept / the first kept),
    /// so a challenge always offers at least one algorithm.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Verifier {
        self.set_algorithms(algorithms);
        self
    }

    /// [`Self::with_algorithms`] in place (a profile reload).
    pub fn set_algorithms(&mut self, algorithms: &[Algorithm]) {
        let mut list: Vec<Algorithm> = Vec::new();
        for a in algorithms {
            if !list.contains(a) {
                list.push(*a);
            }
        }
        if !list.is_empty() {
            self.algorithms = list;
        }
    }

    /// The algorithms offered, in challenge order.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// Small windows make eviction observable in tests.
    #[cfg(test)]
    fn with_replay_capacity(mut self, capacity: usize) -> Verifier {
        self.replay = ReplayWindow::new(capacity);
        self
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// `WWW-Authenticate` values to send with a 401, by default SHA-256 first then MD5 (RFC 8760
    /// §2.4: one header per algorithm, in order of preference; see [`Self::with_algorithms`]).
    /// All carry the same nonce, so a
    /// client's choice of algorithm shares one nonce-count sequence. Nothing here depends on
    /// who is asking, so known and unknown users receive the same shape.
    pub fn challenge(&mut self, now: u64, stale: bool) -> Vec<String> {
        let mut salt = [0u8; 16];
        self.rng.fill_bytes(&mut salt);
        let nonce = nonce::mint(&self.secret, &self.realm, now, salt);
        let realm = quote(&self.realm);
        let stale = if stale { ", stale=true" } else { "" };
        self.algorithms
            .iter()
            .map(|alg| {
                format!(
                    "Digest realm={realm}, nonce=\"{nonce}\", algorithm={alg}, qop=\"auth\"{stale}"
                )
            })
            .collect()
    }

    /// Verifies a parsed response to one of our challenges.
    ///
    /// `request_uri` is the Request-URI of the request being authenticated, as it appeared on
    /// the request line; the digest `uri` must equal it byte for byte (RFC 3261 §22.4 says it
    /// is the Request-URI; we do not normalise, because the client hashed the exact string).
    /// `lookup` returns the stored HA1 for (user, algorithm).
    pub fn verify(
        &mut self,
        now: u64,
        method: &str,
        request_uri: &str,
        resp: &DigestResponse,
        lookup: impl Fn(&str, Algorithm) -> Option<Ha1>,
    ) -> Verdict {
        let reject = |reason| Verdict::Reject { reason };
        if resp.realm != self.realm {
            return reject(RejectReason::RealmMismatch);
        }
        if resp.uri != request_uri {
            return reject(RejectReason::UriMismatch);
        }
        if resp.userhash {
            return reject(RejectReason::UserhashNotOffered);
        }
        if resp.qop.as_deref() != Some("auth") {
            return reject(RejectReason::QopNotAuth);
        }
        let Some(cnonce) = resp.cnonce.as_deref().filter(|c| !c.is_empty()) else {
            return reject(RejectReason::MissingCnonce);
        };
        let (Some(nc_raw), Some(nc)) = (resp.nc.as_deref(), resp.nonce_count()) else {
            return reject(RejectReason::MissingNonceCount);
        };

        let alg = resp.algorithm;
        if !self.algorithms.contains(&alg) {
            return reject(RejectReason::AlgorithmNotOffered);
        }
        let stored = lookup(&resp.username, alg).filter(|h| h.as_str().len() == alg.hex_len());
        let known = stored.is_some();
        let ha1 = stored.unwrap_or_else(|| match alg {
            Algorithm::Md5 => self.dummy_md5.clone(),
            Algorithm::Sha256 => self.dummy_sha256.clone(),
        });
        let expected = response_hex(alg, &ha1, &resp.nonce, nc_raw, cnonce, method, &resp.uri);
        // `&` not `&&`: evaluate the comparison for unknown users too.
        if !(ct_eq_hex(&expected, &resp.response) & known) {
            return reject(RejectReason::BadCredentials);
        }

        let state = nonce::check(
            &self.secret,
            &self.realm,
            &resp.nonce,
            now,
            self.nonce_lifetime,
        );
        match state {
            // A nonce that is not ours with a correct response is most likely one issued before
            // a secret change (restart); stale lets the client retry silently.
            NonceState::Expired | NonceState::Unknown => Verdict::Stale,
            NonceState::Fresh { key, issued_at } => {
                match self
                    .replay
                    .check_and_record(key, issued_at, nc, now, self.nonce_lifetime)
                {
                    NcCheck::Fresh => Verdict::Ok {
                        user: resp.username.clone(),
                    },
                    NcCheck::Replay => reject(RejectReason::Replay),
                    NcCheck::Forgotten => Verdict::Stale,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::auth::{ha1_md5, ha1_sha256, parse_authorization};

    const REALM: &str = "smartdesk.example.jp";
    const URI: &str = "sip:smartdesk.example.jp";
    const T0: u64 = 1_700_000_000;

    fn verifier() -> Verifier {
        Verifier::with_rng_seed(REALM, ServerSecret::from_bytes([42; 32]), [1; 32]).unwrap()
    }

    fn lookup(user: &str, alg: Algorithm) -> Option<Ha1> {
        (user == "op1").then(|| match alg {
            Algorithm::Md5 => ha1_md5("op1", REALM, "s3cret"),
            Algorithm::Sha256 => ha1_sha256("op1", REALM, "s3cret"),
        })
    }

    /// Extracts a directive from one of our own challenge strings (test-side client).
    fn directive<'a>(challenge: &'a str, name: &str) -> &'a str {
        let start = challenge.find(&format!("{name}=")).unwrap() + name.len() + 1;
        let rest = &challenge[start..];
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        let end = rest.find(['"', ',']).unwrap_or(rest.len());
        &rest[..end]
    }

    /// What a softphone would send back.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        challenge: &str,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
    ) -> DigestResponse {
        let alg = Algorithm::from_token(directive(challenge, "algorithm")).unwrap();
        let realm = directive(challenge, "realm");
        let nonce = directive(challenge, "nonce");
        let ha1 = match alg {
            Algorithm::Md5 => ha1_md5(user, realm, password),
            Algorithm::Sha256 => ha1_sha256(user, realm, password),
        };
        let nc = format!("{nc:08x}");
        let response = response_hex(alg, &ha1, nonce, &nc, "abc123", method, uri);
        let header = format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={alg}, qop=auth, nc={nc}, cnonce=\"abc123\""
        );
        parse_authorization(&header).unwrap()
    }

    #[test]
    fn challenge_shape_sha256_first_then_md5() {
        let mut v = verifier();
        let c = v.challenge(T0, false);
        assert_eq!(c.len(), 2);
        let nonce = directive(&c[0], "nonce");
        assert_eq!(nonce.len(), 112);
        assert_eq!(
            c[0],
            format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=SHA-256, qop=\"auth\"")
        );
        assert_eq!(
            c[1],
            format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"")
        );
        let s = v.challenge(T0, true);
        assert!(s.iter().all(|h| h.ends_with(", stale=true")));
        assert_ne!(
            directive(&s[0], "nonce"),
            nonce,
            "every challenge gets a new salt"
        );
    }

    #[test]
    fn round_trip_both_algorithms() {
        for idx in 0..2 {
            let mut v = verifier();
            let c = v.challenge(T0, false);
            let r = answer(&c[idx], "op1", "s3cret", "REGISTER", URI, 1);
            assert_eq!(
                v.verify(T0 + 1, "REGISTER", URI, &r, lookup),
                Verdict::Ok { user: "op1".into() }
            );
        }
    }

    #[test]
    fn same_nonce_increasing_nc_accepted_replay_rejected() {
        let mut v = verifier();
        let c = v.challenge(T0, false);
        let r1 = answer(&c[0], "op1", "s3cret", "REGISTER", URI, 1);
        let r2 = answer(&c[0], "op1", "s3cret", "INVITE", URI, 2);
        let r5 = answer(&c[1], "op1", "s3cret", "REGISTER", URI, 5);
        let ok = Verdict::Ok { user: "op1".into() };
        assert_eq!(v.verify(T0, "REGISTER", URI, &r1, lookup), ok);
        assert_eq!(v.verify(T0 + 10, "INVITE", URI, &r2, lookup), ok);
        let replay = Verdict::Reject {
            reason: RejectReason::Replay,
        };
        assert_eq!(v.verify(T0 + 11, "INVITE", URI, &r2, lookup), replay);
        assert_eq!(v.verify(T0 + 12, "REGISTER", URI, &r1, lookup), replay);
        // Same nonce via the other algorithm shares the sequence.
        assert_eq!(v.verify(T0 + 13, "REGISTER", URI, &r5, lookup), ok);
        assert_eq!(v.verify(T0 + 14, "REGISTER", URI, &r5, lookup), replay);
    }

    #[test]
    fn unauthenticated_requests_cannot_burn_nonce_counts() {
        let mut v = verifier();
        let c = v.challenge(T0, false);
        let mut forged = answer(&c[0], "op1", "wrong", "REGISTER", URI, 0xffff_ffff);
        forged.response = "0".repeat(64);
        assert!(matches!(
            v.verify(T0, "REGISTER", URI, &forged, lookup),
            Verdict::Reject {
                reason: RejectReason::BadCredentials
            }
        ));
        let good = answer(&c[0], "op1", "s3cret", "REGISTER", URI, 1);
        assert_eq!(
            v.verify(T0, "REGISTER", URI, &good, lookup),
            Verdict::Ok { user: "op1".into() }
        );
    }

    #[test]
    fn expired_nonce_with_correct_response_is_stale() {
        let mut v = verifier();
        let c = v.challenge(T0, false);
        let r = answer(&c[0], "op1", "s3cret", "REGISTER", URI, 1);
        assert_eq!(
            v.verify(T0 + NONCE_LIFETIME_SECS + 1, "REGISTER", URI, &r, lookup),
            Verdict::Stale
        );
        // The follow-up challenge carries stale=true.
        let again = v.challenge(T0 + NONCE_LIFETIME_SECS + 1, true);
        assert!(again[0].contains("stale=true"));
        // Wrong password on an expired nonce is a plain reject, not stale.
        let bad = answer(&c[0], "op1", "nope", "REGISTER", URI, 1);
        assert_eq!(
            v.verify(T0 + NONCE_LIFETIME_SECS + 1, "REGISTER", URI, &bad, lookup),
            Verdict::Reject {
                reason: RejectReason::BadCredentials
            }
        );
    }

    #[test]
    fn nonce_from_another_secret_with_correct_response_is_stale() {
        let mut old =
            Verifier::with_rng_seed(REALM, ServerSecret::from_bytes([9; 32]), [1; 32]).unwrap();
        let c = old.challenge(T0, false);
        let r = answer(&c[0], "op1", "s3cret", "REGISTER", URI, 1);
        assert_eq!(
            verifier().verify(T0, "REGISTER", URI, &r, lookup),
            Verdict::Stale
        );
    }

    #[test]
    fn unknown_user_indistinguishable_from_wrong_password() {
        let mut a = verifier();
        let mut b = verifier();
        let ca = a.challenge(T0, false);
        let cb = b.challenge(T0, false);
        assert_eq!(ca, cb);
        let unknown = answer(&ca[0], "nobody", "s3cret", "REGISTER", URI, 1);
        let wrong_pw = answer(&cb[0], "op1", "guess", "REGISTER", URI, 1);
        let va = a.verify(T0, "REGISTER", URI, &unknown, lookup);
        let vb = b.verify(T0, "REGISTER", URI, &wrong_pw, lookup);
        assert_eq!(va, vb);
        assert_eq!(
            va,
            Verdict::Reject {
                reason: RejectReason::BadCredentials
            }
        );
        // Byte-identical follow-up challenges.
        assert_eq!(a.challenge(T0 + 1, false), b.challenge(T0 + 1, false));
    }

    #[test]
    fn tampering_is_rejected() {
        let mut v = verifier();
        let c = v.challenge(T0, false);
        let good = answer(&c[0], "op1", "s3cret", "REGISTER", URI, 1);

        let mut r = good.clone();
        r.realm = "evil.example".into();
        assert_eq!(
            v.verify(T0, "REGISTER", URI, &r, lookup),
            Verdict::Reject {
                reason: RejectReason::RealmMismatch
            }
        );
        // Response computed for another URI, or request sent to another URI.
        let other = answer(&c[0], "op1", "s3cret", "REGISTER", "sip:other.example", 1);
        assert_eq!(
            v.verify(T0, "REGISTER", URI, &other, lookup),
            Verdict::Reject {
                reason: RejectReason::UriMismatch
            }
        );
        let mut r = good.clone();
        r.uri = "sip:other.example".into();
        assert_eq!(
            v.verify(T0, "REGISTER", "sip:other.example", &r, lookup),
            Verdict::Reject {
                reason: RejectReason::BadCredentials
            }
        );
        let mut r = good.clone();
        r.response.replace_range(
            0..1,
            if r.response.starts_with('0') {
                "1"
            } else {
                "0"
            },
        );
        assert_eq!(
            v.verify(T0, "REGISTER", URI, &r, lookup),
            Verdict::Reject {
                reason: RejectReason::BadCredentials
            }
        );
        // Method is part of HA2.
        assert_eq!(
            v.verify(T0, "INVITE", URI, &good, lookup),
            Verdict::Reject {
                reason: RejectReason::BadCredentials
            }
        );
        let mut r = good.clone();
        r.qop = None;
        assert_eq!(
            v.verify(T0, "REGISTER", URI, &r, lookup),
            Verdict::Reject {
                reason: RejectReason::QopNotAuth
            }
        );
        let mut r = good.clone();
        r.cnonce = None;
        assert_eq!(
            v.verify(T0, "REGISTER", URI, &r, lookup),
            Verdict::Reject {
                reason: RejectReason::MissingCnonce
            }
        );
        let mut r = good.clone();
        r.nc = None;
        assert_eq!(
            v.verify(T0, "REGISTER", URI, &r, lookup),
            Verdict::Reject {
                reason: RejectReason::MissingNonceCount
            }
        );
        // Claiming the other algorithm with the same digest value fails.
        let mut r = good.clone();
        r.algorithm = Algorithm::Md5;
        assert_eq!(
            v.verify(T0, "REGISTER", URI, &r, lookup),
            Verdict::Reject {
                reason: RejectReason::BadCredentials
            }
        );
        // The untouched response still works afterwards.
        assert_eq!(
            v.verify(T0, "REGISTER", URI, &good, lookup),
            Verdict::Ok { user: "op1".into() }
        );
    }

    #[test]
    fn stored_ha1_of_wrong_length_is_treated_as_unknown() {
        let mut v = verifier();
        let c = v.challenge(T0, false);
        let r = answer(&c[0], "op1", "s3cret", "REGISTER", URI, 1);
        let md5_for_everything = |u: &str, _| (u == "op1").then(|| ha1_md5("op1", REALM, "s3cret"));
        assert_eq!(
            v.verify(T0, "REGISTER", URI, &r, md5_for_everything),
            Verdict::Reject {
                reason: RejectReason::BadCredentials
            }
        );
    }

    #[test]
    fn evicted_nonce_is_stale_never_accepted_twice() {
        let mut v = verifier().with_replay_capacity(2);
        let c1 = v.challenge(T0, false);
        let c2 = v.challenge(T0 + 1, false);
        let c3 = v.challenge(T0 + 2, false);
        let ok = Verdict::Ok { user: "op1".into() };
        let r1 = answer(&c1[0], "op1", "s3cret", "REGISTER", URI, 1);
        assert_eq!(v.verify(T0 + 3, "REGISTER", URI, &r1, lookup), ok);
        for c in [&c2, &c3] {
            let r = answer(&c[0], "op1", "s3cret", "REGISTER", URI, 1);
            assert_eq!(v.verify(T0 + 3, "REGISTER", URI, &r, lookup), ok);
        }
        // c1 fell out of the window: neither the replay nor a higher nc is accepted.
        assert_eq!(
            v.verify(T0 + 4, "REGISTER", URI, &r1, lookup),
            Verdict::Stale
        );
        let r1b = answer(&c1[0], "op1", "s3cret", "REGISTER", URI, 2);
        assert_eq!(
            v.verify(T0 + 4, "REGISTER", URI, &r1b, lookup),
            Verdict::Stale
        );
        // A fresh challenge works again.
        let c4 = v.challenge(T0 + 5, true);
        let r4 = answer(&c4[1], "op1", "s3cret", "REGISTER", URI, 1);
        assert_eq!(v.verify(T0 + 5, "REGISTER", URI, &r4, lookup), ok);
    }

    #[test]
    fn configured_algorithms_set_order_and_acceptance() {
        let mut v = verifier().with_algorithms(&[Algorithm::Md5, Algorithm::Md5]);
        assert_eq!(v.algorithms(), &[Algorithm::Md5]);
        let c = v.challenge(T0, false);
        assert_eq!(c.len(), 1);
        assert!(c[0].contains("algorithm=MD5"));
        let md5 = answer(&c[0], "op1", "s3cret", "REGISTER", URI, 1);
        assert_eq!(
            v.verify(T0, "REGISTER", URI, &md5, lookup),
            Verdict::Ok { user: "op1".into() }
        );
        let sha = answer(
            &c[0].replace("algorithm=MD5", "algorithm=SHA-256"),
            "op1",
            "s3cret",
            "REGISTER",
            URI,
            2,
        );
        assert_eq!(
            v.verify(T0, "REGISTER", URI, &sha, lookup),
            Verdict::Reject {
                reason: RejectReason::AlgorithmNotOffered
            }
        );
        let mut both = verifier().with_algorithms(&[Algorithm::Md5, Algorithm::Sha256]);
        let c = both.challenge(T0, false);
        assert!(c[0].contains("algorithm=MD5") && c[1].contains("algorithm=SHA-256"));
        assert_eq!(
            verifier().with_algorithms(&[]).algorithms(),
            &[Algorithm::Sha256, Algorithm::Md5]
        );
    }

    #[test]
    fn realm_with_control_characters_is_refused() {
        assert_eq!(
            Verifier::new("a\r\nb", ServerSecret::from_bytes([0; 32])).err(),
            Some(AuthError::InvalidRealm)
        );
    }
}
