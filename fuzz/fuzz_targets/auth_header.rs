//! An `Authorization` header value through `parse_authorization`, then through the digest
//! verifier the seat registrar uses.
//!
//! The fuzzer cannot forge our HMAC'd nonces, so the literal `$NONCE` in the input is replaced
//! by a nonce the verifier really issued: that lets inputs reach the checks behind the nonce
//! (nonce-count, replay window, response comparison) instead of stopping at "stale".
#![no_main]

use libfuzzer_sys::fuzz_target;
use smartdesk::sip::auth::{
    ha1_md5, ha1_sha256, parse_authorization, Algorithm, ServerSecret, Verifier,
};

const REALM: &str = "smartdesk";
const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut verifier =
        Verifier::with_rng_seed(REALM, ServerSecret::from_bytes([9; 32]), [3; 32]).unwrap();
    let text = if text.contains("$NONCE") {
        let challenge = verifier.challenge(NOW, false);
        let nonce = challenge
            .first()
            .and_then(|c| c.split("nonce=\"").nth(1))
            .and_then(|s| s.split('"').next())
            .expect("challenge carries a nonce")
            .to_owned();
        text.replace("$NONCE", &nonce)
    } else {
        text.into_owned()
    };
    let resp = match parse_authorization(&text) {
        Ok(r) => r,
        Err(e) => {
            let _ = (e.to_string(), e.status_code());
            return;
        }
    };
    let _ = resp.nonce_count();
    // Verify twice: the second time exercises the replay window with the same nonce-count.
    for _ in 0..2 {
        let _ = verifier.verify(NOW + 1, "REGISTER", "sip:smartdesk", &resp, |user, alg| {
            let h = match alg {
                Algorithm::Md5 => ha1_md5(user, REALM, "pw"),
                Algorithm::Sha256 => ha1_sha256(user, REALM, "pw"),
            };
            Some(h)
        });
    }
});
