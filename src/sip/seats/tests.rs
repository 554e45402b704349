//! Fake-time tests of the seat registrar TU: a test-side softphone answers the challenges.

use super::*;
use crate::sip::auth::{ha1_md5, ha1_sha256, response_hex};
use crate::sip::message::parse_datagram;

const REALM: &str = "smartdesk";
const URI: &str = "sip:smartdesk";
const T0: u64 = 1_800_000_000;
const PW: &str = "s3cret-pw";

fn config() -> RegistryConfig {
    let mut cfg = RegistryConfig::new(REALM);
    cfg.bounds = ExpiryBounds::new(60, 3600, 600).unwrap();
    cfg
}

fn cred(seat_id: i64, name: &str, pw: &str) -> SeatCredential {
    SeatCredential {
        seat_id,
        name: name.into(),
        ha1_md5: Some(ha1_md5(name, REALM, pw).as_str().into()),
        ha1_sha256: Some(ha1_sha256(name, REALM, pw).as_str().into()),
    }
}

fn registry_with(cfg: RegistryConfig) -> SeatRegistry {
    let mut r =
        SeatRegistry::with_rng_seed(cfg, ServerSecret::from_bytes([7; 32]), [3; 32]).unwrap();
    r.set_credentials(vec![cred(1, "op1", PW), cred(2, "op2", "other-pw")]);
    r
}

fn registry() -> SeatRegistry {
    registry_with(config())
}

fn udp(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], port))
}

/// A test-side softphone.
struct Phone {
    user: String,
    password: String,
    to_user: String,
    call_id: String,
    cseq: u32,
    src: SocketAddr,
    dest: Destination,
}

impl Phone {
    fn new(user: &str, password: &str) -> Phone {
        Phone {
            user: user.into(),
            password: password.into(),
            to_user: user.into(),
            call_id: format!("{user}-call@192.0.2.10"),
            cseq: 0,
            src: udp(5062),
            dest: Destination::Udp(udp(5062)),
        }
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.user, self.src)
    }

    /// A REGISTER with the next CSeq; `extra` are complete header lines.
    fn request(&mut self, extra: &[String], auth: Option<&str>) -> Message {
        self.cseq += 1;
        let mut text = format!(
            "REGISTER {URI} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {};branch=z9hG4bK{}x{}\r\n\
             Max-Forwards: 70\r\nTo: <sip:{}@smartdesk>\r\n\
             From: <sip:{}@smartdesk>;tag=f1\r\nCall-ID: {}\r\nCSeq: {} REGISTER\r\n",
            self.src, self.cseq, self.user, self.to_user, self.user, self.call_id, self.cseq
        );
        for line in extra {
            text.push_str(line);
            text.push_str("\r\n");
        }
        if let Some(a) = auth {
            text.push_str(&format!("Authorization: {a}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        parse_datagram(text.as_bytes()).expect("valid REGISTER")
    }

    /// The Authorization value answering `challenge` (one WWW-Authenticate value).
    fn answer(&self, challenge: &str, nc: u32) -> String {
        let alg = Algorithm::from_token(directive(challenge, "algorithm")).unwrap();
        let nonce = directive(challenge, "nonce");
        let ha1 = match alg {
            Algorithm::Md5 => ha1_md5(&self.user, REALM, &self.password),
            Algorithm::Sha256 => ha1_sha256(&self.user, REALM, &self.password),
        };
        let nc = format!("{nc:08x}");
        let response = response_hex(alg, &ha1, nonce, &nc, "c0ffee", "REGISTER", URI);
        format!(
            "Digest username=\"{}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{URI}\", \
             response=\"{response}\", algorithm={alg}, qop=auth, nc={nc}, cnonce=\"c0ffee\"",
            self.user
        )
    }

    /// Unauthenticated REGISTER, then the authenticated one with `alg`; returns the final
    /// response of the second.
    fn login(
        &mut self,
        r: &mut SeatRegistry,
        now: u64,
        extra: &[String],
        alg: Algorithm,
    ) -> (Message, String) {
        let first = self.request(extra, None);
        let c = r.handle_register(now, &first, self.src, self.dest);
        assert_eq!(c.status(), Some(401));
        let challenge = c
            .headers("WWW-Authenticate")
            .find(|h| h.contains(&format!("algorithm={alg}")))
            .expect("challenge for the algorithm")
            .to_owned();
        let auth = self.answer(&challenge, 1);
        let second = self.request(extra, Some(&auth));
        (r.handle_register(now, &second, self.src, self.dest), auth)
    }
}

fn directive<'a>(challenge: &'a str, name: &str) -> &'a str {
    let start = challenge.find(&format!("{name}=")).unwrap() + name.len() + 1;
    let rest = &challenge[start..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest.find(['"', ',']).unwrap_or(rest.len());
    &rest[..end]
}

fn effects(r: &mut SeatRegistry) -> Vec<RegistryEffect> {
    std::iter::from_fn(|| r.poll_effect()).collect()
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn challenge_offers_configured_algorithms_in_order() {
    let mut r = registry();
    let mut p = Phone::new("op1", PW);
    let m = r.handle_register(T0, &p.request(&[], None), p.src, p.dest);
    assert_eq!(m.status(), Some(401));
    let c: Vec<&str> = m.headers("WWW-Authenticate").collect();
    assert_eq!(c.len(), 2);
    assert!(c[0].contains("algorithm=MD5") && c[1].contains("algorithm=SHA-256"));
    assert!(c
        .iter()
        .all(|h| h.contains("qop=\"auth\"") && !h.contains("stale")));
    assert_eq!(directive(c[0], "nonce"), directive(c[1], "nonce"));

    let mut cfg = config();
    cfg.algorithms = vec![Algorithm::Sha256, Algorithm::Md5];
    let mut r = registry_with(cfg);
    let m = r.handle_register(T0, &p.request(&[], None), p.src, p.dest);
    let c: Vec<&str> = m.headers("WWW-Authenticate").collect();
    assert!(c[0].contains("algorithm=SHA-256") && c[1].contains("algorithm=MD5"));
    assert!(effects(&mut r).is_empty());
}

#[test]
fn register_with_md5_and_with_sha256() {
    for (i, alg) in [Algorithm::Md5, Algorithm::Sha256].into_iter().enumerate() {
        let mut r = registry();
        let mut p = Phone::new("op1", PW);
        let contact = format!("Contact: {};expires=300", p.contact());
        let (ok, _) = p.login(&mut r, T0, &[contact], alg);
        assert_eq!(ok.status(), Some(200), "{alg}");
        let contacts: Vec<&str> = ok.headers("Contact").collect();
        assert_eq!(contacts, vec!["<sip:op1@192.0.2.10:5062>;expires=300"]);
        assert!(ok.header("Date").unwrap().ends_with(" GMT"));
        assert_eq!(
            effects(&mut r),
            vec![RegistryEffect::Upsert(StoredBinding {
                seat_id: 1,
                aor: "sip:op1@smartdesk".into(),
                contact: "sip:op1@192.0.2.10:5062".into(),
                source: udp(5062),
                transport: SeatTransport::Udp,
                call_id: p.call_id.clone(),
                cseq: 2,
                expires_at: T0 + 300,
                q: None,
                params: String::new(),
            })],
            "case {i}"
        );
        assert_eq!(
            r.contacts("op1"),
            vec![SeatContact {
                seat_id: 1,
                seat: "op1".into(),
                contact_uri: "sip:op1@192.0.2.10:5062".into(),
                dest: Destination::Udp(udp(5062)),
                source: udp(5062),
                expires_at: T0 + 300,
            }]
        );
        assert_eq!(r.registered_seats().collect::<Vec<_>>(), vec![(1, "op1")]);
        assert_eq!(r.poll_timeout(), Some(T0 + 300));
        assert_eq!(r.effects_emitted(), 1);
        r.handle_timeout(T0 + 300);
        assert_eq!(r.effects_emitted(), 2);
    }
}

#[test]
fn expiry_bounds_come_from_the_profile() {
    let mut r = registry();
    let mut p = Phone::new("op1", PW);
    let (m, _) = p.login(
        &mut r,
        T0,
        &lines(&["Contact: <sip:op1@192.0.2.10:5062>", "Expires: 30"]),
        Algorithm::Md5,
    );
    assert_eq!(m.status(), Some(423));
    assert_eq!(m.header("Min-Expires"), Some("60"));
    assert!(effects(&mut r).is_empty() && r.binding_count() == 0);

    let (m, _) = p.login(
        &mut r,
        T0,
        &lines(&["Contact: <sip:op1@192.0.2.10:5062>", "Expires: 99999"]),
        Algorithm::Md5,
    );
    assert_eq!(
        m.header("Contact"),
        Some("<sip:op1@192.0.2.10:5062>;expires=3600")
    );
    let (m, _) = p.login(
        &mut r,
        T0,
        &lines(&["Contact: <sip:op1@192.0.2.10:5062>"]),
        Algorithm::Md5,
    );
    assert_eq!(
        m.header("Contact"),
        Some("<sip:op1@192.0.2.10:5062>;expires=600"),
        "profile default"
    );
    let (m, _) = p.login(
        &mut r,
        T0,
        &lines(&["Contact: <sip:op1@192.0.2.10:5062>", "Expires: soon"]),
        Algorithm::Md5,
    );
    assert_eq!(m.status(), Some(400));
}

#[test]
fn old_nonce_with_right_password_gets_stale_true() {
    let mut r = registry();
    let mut p = Phone::new("op1", PW);
    let contact = vec![format!("Contact: {}", p.contact())];
    let c = r.handle_register(T0, &p.request(&contact, None), p.src, p.dest);
    let challenge = c.header("WWW-Authenticate").unwrap().to_owned();
    let auth = p.answer(&challenge, 1);
    let late = T0 + NONCE_LIFETIME_SECS + 1;
    let m = r.handle_register(late, &p.request(&contact, Some(&auth)), p.src, p.dest);
    assert_eq!(m.status(), Some(401));
    assert!(m
        .headers("WWW-Authenticate")
        .all(|h| h.ends_with(", stale=true")));
    assert_eq!(r.binding_count(), 0);
    // The phone retries silently with the new nonce and succeeds.
    let fresh = m.header("WWW-Authenticate").unwrap().to_owned();
    let auth = p.answer(&fresh, 1);
    let m = r.handle_register(late, &p.request(&contact, Some(&auth)), p.src, p.dest);
    assert_eq!(m.status(), Some(200));
    // A wrong password on an old nonce is not stale.
    let mut q = Phone::new("op1", "wrong-password");
    let auth = q.answer(&challenge, 1);
    let m = r.handle_register(late, &q.request(&contact, Some(&auth)), q.src, q.dest);
    assert!(m.headers("WWW-Authenticate").all(|h| !h.contains("stale")));
}

#[test]
fn replayed_nonce_count_is_refused() {
    let mut r = registry();
    let mut p = Phone::new("op1", PW);
    let contact = vec![format!("Contact: {}", p.contact())];
    let (ok, auth) = p.login(&mut r, T0, &contact, Algorithm::Sha256);
    assert_eq!(ok.status(), Some(200));
    effects(&mut r);
    // An eavesdropper resends the captured Authorization (nc=1) in a new request.
    let m = r.handle_register(T0 + 1, &p.request(&contact, Some(&auth)), p.src, p.dest);
    assert_eq!(m.status(), Some(401));
    assert!(m.headers("WWW-Authenticate").all(|h| !h.contains("stale")));
    assert!(effects(&mut r).is_empty());
    // The phone itself goes on with nc=2 on the same nonce.
    let nonce_challenge = format!(
        "Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=SHA-256",
        directive(&auth, "nonce")
    );
    let next = p.answer(&nonce_challenge, 2);
    let m = r.handle_register(T0 + 2, &p.request(&contact, Some(&next)), p.src, p.dest);
    assert_eq!(m.status(), Some(200));
}

#[test]
fn unknown_user_and_wrong_password_get_identical_401s() {
    let mut a = registry();
    let mut b = registry();
    let mut unknown = Phone::new("nobody", PW);
    let mut wrong = Phone::new("op1", "not-the-password");
    // Same Call-ID and source so that the messages differ only where the server chose.
    wrong.call_id = unknown.call_id.clone();
    let answer = |reg: &mut SeatRegistry, p: &mut Phone| {
        let contact = vec!["Contact: <sip:x@192.0.2.10:5062>".to_owned()];
        let c = reg.handle_register(T0, &p.request(&contact, None), p.src, p.dest);
        let auth = p.answer(c.header("WWW-Authenticate").unwrap(), 1);
        let m = reg.handle_register(T0, &p.request(&contact, Some(&auth)), p.src, p.dest);
        (c, m)
    };
    let (ca, ma) = answer(&mut a, &mut unknown);
    let (cb, mb) = answer(&mut b, &mut wrong);
    assert_eq!(ca.status(), Some(401));
    assert_eq!(ma.status(), Some(401));
    assert_eq!(mb.status(), Some(401));
    let shape = |m: &Message| {
        (
            m.status(),
            m.reason().map(str::to_owned),
            m.headers("WWW-Authenticate")
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(shape(&ca), shape(&cb));
    assert_eq!(
        shape(&ma),
        shape(&mb),
        "same seed: byte-identical challenges"
    );
    assert_eq!(
        ma.header_fields().map(|(n, _)| n).collect::<Vec<_>>(),
        mb.header_fields().map(|(n, _)| n).collect::<Vec<_>>()
    );
    assert!(effects(&mut a).is_empty() && effects(&mut b).is_empty());
    assert_eq!(a.binding_count() + b.binding_count(), 0);
}

#[test]
fn a_seat_may_register_only_its_own_aor() {
    let mut r = registry();
    let mut p = Phone::new("op1", PW);
    p.to_user = "op2".into();
    let (m, _) = p.login(
        &mut r,
        T0,
        &lines(&["Contact: <sip:op1@192.0.2.10:5062>"]),
        Algorithm::Md5,
    );
    assert_eq!(m.status(), Some(403));
    assert!(effects(&mut r).is_empty());
    assert!(r.contacts("op2").is_empty() && r.contacts("op1").is_empty());
}

#[test]
fn aor_hosts_restrict_the_domain_and_aors_are_canonical() {
    let mut cfg = config();
    cfg.aor_hosts = vec!["PBX.example.jp".into(), "127.0.0.1".into()];
    let mut r = registry_with(cfg);
    let mut p = Phone::new("op1", PW);
    // To host is "smartdesk" in the test phone: not listed.
    let (m, _) = p.login(
        &mut r,
        T0,
        &lines(&["Contact: <sip:op1@192.0.2.10:5062>"]),
        Algorithm::Md5,
    );
    assert_eq!(m.status(), Some(404));
    // Same phone, To spelled with a listed host and port: stored under the canonical AOR.
    let contact = lines(&["Contact: <sip:op1@192.0.2.10:5062>"]);
    let first = p.request(&contact, None);
    let c = r.handle_register(T0, &first, p.src, p.dest);
    let auth = p.answer(c.header("WWW-Authenticate").unwrap(), 1);
    let text = String::from_utf8(p.request(&contact, Some(&auth)).to_bytes().to_vec())
        .unwrap()
        .replace(
            "To: <sip:op1@smartdesk>",
            "To: <sip:op1@pbx.example.jp:5060>",
        );
    let req = parse_datagram(text.as_bytes()).unwrap();
    let m = r.handle_register(T0, &req, p.src, p.dest);
    assert_eq!(m.status(), Some(200));
    let Ok::<[RegistryEffect; 1], _>([RegistryEffect::Upsert(b)]) = effects(&mut r).try_into()
    else {
        panic!("one upsert")
    };
    assert_eq!(b.aor, "sip:op1@smartdesk");
}

#[test]
fn bindings_expire_on_time() {
    let mut r = registry();
    let mut p = Phone::new("op1", PW);
    let (m, _) = p.login(
        &mut r,
        T0,
        &lines(&[
            "Contact: <sip:op1@192.0.2.10:5062>;expires=60",
            "Contact: <sip:op1@192.0.2.10:5064>;expires=120",
        ]),
        Algorithm::Md5,
    );
    assert_eq!(m.headers("Contact").count(), 2);
    assert_eq!(effects(&mut r).len(), 2);
    assert_eq!(r.poll_timeout(), Some(T0 + 60));
    r.handle_timeout(T0 + 59);
    assert!(effects(&mut r).is_empty());
    assert_eq!(r.contacts("op1").len(), 2);
    r.handle_timeout(T0 + 60);
    assert_eq!(
        effects(&mut r),
        vec![RegistryEffect::Remove {
            aor: "sip:op1@smartdesk".into(),
            contact: "sip:op1@192.0.2.10:5062".into()
        }]
    );
    assert_eq!(r.contacts("op1").len(), 1);
    assert_eq!(r.poll_timeout(), Some(T0 + 120));
    r.handle_timeout(T0 + 500);
    assert_eq!(effects(&mut r).len(), 1);
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(r.registered_seats().count(), 0);
}

#[test]
fn unregister_with_expires_zero_and_star() {
    let mut r = registry();
    let mut p = Phone::new("op1", PW);
    p.login(
        &mut r,
        T0,
        &lines(&[
            "Contact: <sip:op1@192.0.2.10:5062>",
            "Contact: <sip:op1@192.0.2.10:5064>",
            "Contact: <sip:op1@192.0.2.10:5066>",
        ]),
        Algorithm::Md5,
    );
    effects(&mut r);
    let (m, _) = p.login(
        &mut r,
        T0 + 5,
        &lines(&["Contact: <sip:op1@192.0.2.10:5062>", "Expires: 0"]),
        Algorithm::Md5,
    );
    assert_eq!(m.status(), Some(200));
    assert_eq!(m.headers("Contact").count(), 2);
    assert_eq!(
        effects(&mut r),
        vec![RegistryEffect::Remove {
            aor: "sip:op1@smartdesk".into(),
            contact: "sip:op1@192.0.2.10:5062".into()
        }]
    );
    // '*' without Expires: 0 is refused.
    let (m, _) = p.login(&mut r, T0 + 6, &lines(&["Contact: *"]), Algorithm::Md5);
    assert_eq!(m.status(), Some(400));
    let (m, _) = p.login(
        &mut r,
        T0 + 7,
        &lines(&["Contact: *", "Expires: 0"]),
        Algorithm::Md5,
    );
    assert_eq!(m.status(), Some(200));
    assert_eq!(m.headers("Contact").count(), 0);
    assert_eq!(effects(&mut r).len(), 2);
    assert_eq!(r.binding_count(), 0);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn query_lists_bindings_without_changing_them() {
    let mut r = registry();
    let mut p = Phone::new("op1", PW);
    p.login(
        &mut r,
        T0,
        &lines(&["Contact: <sip:op1@192.0.2.10:5062>;expires=300"]),
        Algorithm::Md5,
    );
    effects(&mut r);
    let (m, _) = p.login(&mut r, T0 + 100, &[], Algorithm::Md5);
    assert_eq!(m.status(), Some(200));
    assert_eq!(
        m.header("Contact"),
        Some("<sip:op1@192.0.2.10:5062>;expires=200")
    );
    assert!(effects(&mut r).is_empty());
}

#[test]
fn malformed_authorization_is_400_and_other_schemes_are_challenged() {
    let mut r = registry();
    let mut p = Phone::new("op1", PW);
    let m = r.handle_register(
        T0,
        &p.request(&[], Some("Digest username=\"op1\", realm=\"smartdesk\"")),
        p.src,
        p.dest,
    );
    assert_eq!(m.status(), Some(400));
    let m = r.handle_register(T0, &p.request(&[], Some("Basic b3AxOnB3")), p.src, p.dest);
    assert_eq!(m.status(), Some(401));
    assert_eq!(m.headers("WWW-Authenticate").count(), 2);
}

#[test]
fn credentials_are_replaced_wholesale() {
    let mut r = registry();
    let mut p = Phone::new("op1", PW);
    let contact = lines(&["Contact: <sip:op1@192.0.2.10:5062>"]);
    r.set_credentials(vec![cred(9, "op1", "new-password")]);
    assert_eq!(r.credential_count(), 1);
    let (m, _) = p.login(&mut r, T0, &contact, Algorithm::Md5);
    assert_eq!(m.status(), Some(401), "old password no longer works");
    p.password = "new-password".into();
    let (m, _) = p.login(&mut r, T0, &contact, Algorithm::Sha256);
    assert_eq!(m.status(), Some(200));
    assert_eq!(r.contacts("op1")[0].seat_id, 9);
    // A seat with only an MD5 hash cannot use SHA-256 (and garbage counts as absent).
    r.set_credentials(vec![SeatCredential {
        seat_id: 9,
        name: "op1".into(),
        ha1_md5: Some(ha1_md5("op1", REALM, "new-password").as_str().into()),
        ha1_sha256: Some("not-hex".into()),
    }]);
    let (m, _) = p.login(&mut r, T0 + 1, &contact, Algorithm::Sha256);
    assert_eq!(m.status(), Some(401));
    let (m, _) = p.login(&mut r, T0 + 1, &contact, Algorithm::Md5);
    assert_eq!(m.status(), Some(200));
}

fn stored(contact: &str, transport: SeatTransport, expires_at: u64) -> StoredBinding {
    StoredBinding {
        seat_id: 1,
        aor: "sip:op1@smartdesk".into(),
        contact: contact.into(),
        source: udp(5070),
        transport,
        call_id: "old-call".into(),
        cseq: 7,
        expires_at,
        q: Some(500),
        params: ";reg-id=1".into(),
    }
}

#[test]
fn restore_makes_udp_seats_reachable_and_keeps_tcp_ones_waiting() {
    let mut r = registry();
    let n = r.restore(
        vec![
            stored("sip:op1@192.0.2.10:5070", SeatTransport::Udp, T0 + 100),
            stored(
                "sip:op1@192.0.2.10:5072;transport=tcp",
                SeatTransport::Tcp,
                T0 + 100,
            ),
            stored("sip:op1@192.0.2.10:5074", SeatTransport::Udp, T0),
            StoredBinding {
                aor: "tel:+81312345678".into(),
                ..stored("sip:x@h", SeatTransport::Udp, T0 + 100)
            },
        ],
        T0,
    );
    assert_eq!(n, 2, "expired and invalid rows are skipped");
    assert!(effects(&mut r).is_empty(), "restoring writes nothing");
    assert_eq!(r.binding_count(), 2);
    assert_eq!(
        r.contacts("op1"),
        vec![SeatContact {
            seat_id: 1,
            seat: "op1".into(),
            contact_uri: "sip:op1@192.0.2.10:5070".into(),
            dest: Destination::Udp(udp(5070)),
            source: udp(5070),
            expires_at: T0 + 100,
        }]
    );
    assert_eq!(r.poll_timeout(), Some(T0 + 100));
    // A refresh of the restored UDP binding with the old Call-ID and a higher CSeq works, and
    // the stored q and params are kept unless the phone sends new ones.
    let mut p = Phone::new("op1", PW);
    p.call_id = "old-call".into();
    p.cseq = 7;
    p.src = SocketAddr::from(([192, 0, 2, 10], 5072));
    p.dest = Destination::Stream(ConnId(4));
    let (m, _) = p.login(
        &mut r,
        T0 + 10,
        &lines(&["Contact: <sip:op1@192.0.2.10:5072;transport=tcp>"]),
        Algorithm::Md5,
    );
    assert_eq!(m.status(), Some(200));
    assert_eq!(m.headers("Contact").count(), 2);
    let contacts = r.contacts("op1");
    assert_eq!(contacts.len(), 2, "the TCP seat is reachable again");
    assert_eq!(
        contacts[0].dest,
        Destination::Stream(ConnId(4)),
        "q 1 before q 0.5"
    );
    let Ok::<[RegistryEffect; 1], _>([RegistryEffect::Upsert(b)]) = effects(&mut r).try_into()
    else {
        panic!("one upsert")
    };
    assert_eq!(b.transport, SeatTransport::Tcp);
    assert_eq!(b.cseq, 9);
    // Its connection closes: still bound, no longer offered.
    r.connection_closed(ConnId(4));
    assert_eq!(r.contacts("op1").len(), 1);
    assert_eq!(r.binding_count(), 2);
    assert_eq!(r.registered_seats().collect::<Vec<_>>(), vec![(1, "op1")]);
}

#[test]
fn restored_out_of_order_cseq_is_still_refused() {
    let mut r = registry();
    r.restore(
        vec![stored(
            "sip:op1@192.0.2.10:5062",
            SeatTransport::Udp,
            T0 + 100,
        )],
        T0,
    );
    let mut p = Phone::new("op1", PW);
    p.call_id = "old-call".into();
    p.cseq = 3; // login sends 4 then 5, both not above the stored 7
    let (m, _) = p.login(
        &mut r,
        T0,
        &lines(&["Contact: <sip:op1@192.0.2.10:5062>"]),
        Algorithm::Md5,
    );
    assert_eq!(m.status(), Some(500));
}

#[test]
fn helpers() {
    assert_eq!(parse_delta_seconds(" 3600 "), Some(3600));
    assert_eq!(parse_delta_seconds("99999999999"), Some(u32::MAX));
    assert_eq!(parse_delta_seconds("-1"), None);
    assert_eq!(parse_delta_seconds(""), None);
    assert_eq!(
        http_date(0).as_deref(),
        Some("Thu, 01 Jan 1970 00:00:00 GMT")
    );
    assert_eq!(qvalue(500).map(QValue::thousandths), Some(500));
    assert_eq!(qvalue(1000).map(QValue::thousandths), Some(1000));
    assert_eq!(qvalue(7).map(QValue::thousandths), Some(7));
    assert_eq!(SeatTransport::parse("tcp"), Some(SeatTransport::Tcp));
    assert_eq!(SeatTransport::parse("sctp"), None);
    assert_eq!(RegistryConfig::new("My Realm").domain(), "my-realm");
}

/// A phone that moved (new address, new Call-ID) is reached at its new contact at once, not
/// at the stale one until that expires.
#[test]
fn a_moved_phone_is_reached_at_its_new_contact() {
    let mut r = registry();
    let mut home = Phone::new("op1", PW);
    let (m, _) = home.login(
        &mut r,
        T0,
        &lines(&["Contact: <sip:op1@192.0.2.10:5062>"]),
        Algorithm::Md5,
    );
    assert_eq!(m.status(), Some(200));
    let mut moved = Phone::new("op1", PW);
    moved.call_id = "op1-after-move@198.51.100.7".into();
    moved.src = "198.51.100.7:5062".parse().unwrap();
    moved.dest = Destination::Udp(moved.src);
    let (m, _) = moved.login(
        &mut r,
        T0 + 30,
        &lines(&["Contact: <sip:op1@198.51.100.7:5062>"]),
        Algorithm::Md5,
    );
    assert_eq!(m.status(), Some(200));
    let contacts = r.contacts("op1");
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    assert_eq!(contacts[0].contact_uri, "sip:op1@198.51.100.7:5062");
}

#[test]
fn a_browser_seat_is_reachable_without_a_ledger_row_until_detached_or_expired() {
    let mut r = registry();
    let agent = SocketAddr::from(([127, 0, 0, 1], 40000));
    assert!(!r.attach_browser(T0, "nobody", agent, T0 + 90));
    assert!(r.attach_browser(T0, "op1", agent, T0 + 90));
    // Refreshing replaces the binding instead of adding one.
    assert!(r.attach_browser(T0 + 30, "op1", agent, T0 + 120));
    assert_eq!(r.binding_count(), 1);
    let c = r.contacts("op1");
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].dest, Destination::Udp(agent));
    assert_eq!(c[0].seat_id, 1);
    assert!(effects(&mut r).is_empty(), "nothing for the ledger");
    r.detach_browser("op1", agent);
    assert!(r.contacts("op1").is_empty());
    assert_eq!(r.registered_seats().count(), 0);
    // A session that died without detaching is gone at expiry.
    assert!(r.attach_browser(T0, "op1", agent, T0 + 90));
    r.handle_timeout(T0 + 90);
    assert!(r.contacts("op1").is_empty());
}
