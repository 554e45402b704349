//! Call flows through the whole sans-IO endpoint with fake time: the carrier and the seats
//! are scripted here, every message we emit is parsed back and checked.

use super::*;
use crate::config::profiles::{NumberFormat, Transport};
use crate::sip::endpoint::{Endpoint, Outbound};
use crate::sip::message::parse_datagram;
use crate::sip::seats::{
    RegistryConfig, SeatCredential, SeatRegistry, SeatTransport, StoredBinding,
};
use crate::sip::transaction::LayerConfig;

const T_UNIX: u64 = 1_800_000_000;

const CARRIER: &str = "192.0.2.10:5060";
const SEAT1: &str = "198.51.100.5:5062";
const SEAT2: &str = "198.51.100.6:5062";
const LOCAL: &str = "192.0.2.1:5060";

const OFFER: &str = "v=0\r\no=carrier 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
    t=0 0\r\nm=audio 20000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";
const SEAT_ANSWER: &str = "v=0\r\no=seat 7 7 IN IP4 198.51.100.5\r\ns=-\r\n\
    c=IN IP4 198.51.100.5\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn seat(id: i64, name: &str, at: &str) -> SeatTarget {
    SeatTarget {
        seat_id: id,
        seat: name.into(),
        contact_uri: format!("sip:{name}@{at}"),
        dest: Destination::Udp(addr(at)),
    }
}

struct H {
    ep: Endpoint,
    now: Instant,
    effects: Vec<CallEffect>,
}

impl H {
    fn new(seats: Vec<SeatTarget>) -> H {
        H::with_acd(
            seats,
            AcdConfig {
                // Long enough not to interfere with the flows tested here.
                max_wait: Duration::from_secs(600),
                wrap_up_max: Duration::ZERO,
                ..AcdConfig::default()
            },
        )
    }

    fn with_acd(seats: Vec<SeatTarget>, acd: AcdConfig) -> H {
        let cfg = B2buaConfig {
            local: addr(LOCAL),
            media_ip: "192.0.2.1".parse().unwrap(),
            rtp_port_min: 40000,
            rtp_port_max: 40099,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            acd,
            recording_max: Duration::from_secs(120),
            trunks: vec![Trunk {
                name: "carrier-a".into(),
                sources: vec!["192.0.2.0/24".parse().unwrap()],
                number_format: NumberFormat::National,
                transports: vec![Transport::Udp],
                codecs: vec!["PCMU".into()],
            }],
            seat_domain: "smartdesk".into(),
            max_calls: 100,
            timers: TimerConfig::default(),
        };
        // The seats are registered (restored bindings, as after a restart).
        let mut registry = SeatRegistry::new(
            RegistryConfig::new("smartdesk"),
            crate::sip::auth::ServerSecret::from_bytes([1; 32]),
        )
        .unwrap();
        registry.set_credentials(
            seats
                .iter()
                .map(|s| SeatCredential {
                    seat_id: s.seat_id,
                    name: s.seat.clone(),
                    ha1_md5: None,
                    ha1_sha256: None,
                })
                .collect(),
        );
        let restored = registry.restore(
            seats
                .iter()
                .map(|s| StoredBinding {
                    seat_id: s.seat_id,
                    aor: format!("sip:{}@smartdesk", s.seat),
                    contact: s.contact_uri.clone(),
                    source: match s.dest {
                        Destination::Udp(a) => a,
                        Destination::Stream(_) => unreachable!(),
                    },
                    transport: SeatTransport::Udp,
                    call_id: "reg".into(),
                    cseq: 1,
                    expires_at: T_UNIX + 3600,
                    q: None,
                    params: String::new(),
                })
                .collect(),
            T_UNIX,
        );
        assert_eq!(restored, seats.len());
        let now = Instant::now();
        let mut ep = Endpoint::new(LayerConfig::default(), 7, registry)
            .unwrap()
            .with_b2bua(B2bua::new(cfg).unwrap());
        ep.set_unix_base(now, Duration::from_secs(T_UNIX));
        H {
            ep,
            now,
            effects: Vec::new(),
        }
    }

    fn drain(&mut self) -> Vec<(SocketAddr, Message)> {
        while let Some(e) = self.ep.poll_call_effect() {
            self.effects.push(e);
        }
        std::iter::from_fn(|| self.ep.poll_transmit())
            .map(|Outbound { to, bytes }| {
                let Destination::Udp(a) = to else {
                    panic!("udp only here")
                };
                (a, parse_datagram(&bytes).expect("we send valid SIP"))
            })
            .collect()
    }

    fn feed(&mut self, from: &str, text: &str) -> Vec<(SocketAddr, Message)> {
        self.ep
            .handle_datagram(self.now, addr(from), text.as_bytes());
        self.drain()
    }

    fn feed_msg(&mut self, from: &str, m: &Message) -> Vec<(SocketAddr, Message)> {
        let bytes = m.to_bytes();
        self.ep.handle_datagram(self.now, addr(from), &bytes);
        self.drain()
    }

    fn admit(&mut self, call: u64, a: Admission) -> Vec<(SocketAddr, Message)> {
        self.ep.handle_admission(self.now, call, a);
        self.drain()
    }

    fn advance(&mut self, d: Duration) -> Vec<(SocketAddr, Message)> {
        let until = self.now + d;
        let mut out = Vec::new();
        for _ in 0..10_000 {
            match self.ep.poll_timeout() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.ep.handle_timeout(self.now);
                    out.extend(self.drain());
                }
                _ => break,
            }
        }
        self.now = until;
        out
    }

    fn take_effects(&mut self) -> Vec<CallEffect> {
        std::mem::take(&mut self.effects)
    }

    fn calls(&self) -> usize {
        self.ep.b2bua().unwrap().stats().calls
    }
}

fn invite(call_id: &str, branch: &str, extra: &str, body: &str) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "INVITE sip:0312345678@192.0.2.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:0312345678@192.0.2.1>\r\n\
         From: \"Caller\" <sip:0901234567@192.0.2.10>;tag=c1\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:0901234567@192.0.2.10:5060>\r\n{extra}{ct}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A request from the carrier inside the call's dialog.
fn carrier_in_dialog(method: &str, call_id: &str, to_tag: &str, cseq: u32, body: &str) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "{method} sip:smartdesk@192.0.2.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{method}{cseq}\r\n\
         Max-Forwards: 70\r\nTo: <sip:0312345678@192.0.2.1>;tag={to_tag}\r\n\
         From: \"Caller\" <sip:0901234567@192.0.2.10>;tag=c1\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn route(row: i64) -> Admission {
    Admission::Route {
        row,
        contractor_id: 3,
        name: "株式会社ABC".into(),
        greeting: "お電話ありがとうございます、株式会社ABCでございます".into(),
        skill: None,
    }
}

fn statuses(out: &[(SocketAddr, Message)]) -> Vec<u16> {
    out.iter().filter_map(|(_, m)| m.status()).collect()
}

fn only<'a>(out: &'a [(SocketAddr, Message)], to: &str) -> Vec<&'a Message> {
    out.iter()
        .filter(|(a, _)| *a == addr(to))
        .map(|(_, m)| m)
        .collect()
}

fn seat_reply(inv: &Message, code: u16, tag: &str, sdp: Option<&str>) -> Message {
    let contact = format!("<sip:op@{SEAT1}>");
    wire::response(
        inv,
        code,
        crate::sip::message::reason_phrase(code),
        Some(tag),
        &[("Contact", &contact)],
        sdp.map(str::as_bytes),
    )
    .unwrap()
}

/// Carrier INVITE → admitted → the seat's INVITE; returns it.
fn ring(h: &mut H, call_id: &str) -> Message {
    let out = h.feed(CARRIER, &invite(call_id, "1", "", OFFER));
    assert_eq!(statuses(&out), [100], "only 100 before the row is written");
    let admit = h.take_effects();
    let [CallEffect::Admit { call, request }] = admit.as_slice() else {
        panic!("{admit:?}")
    };
    assert_eq!(request.number.as_str(), "+81312345678");
    assert_eq!(request.caller.as_deref(), Some("+81901234567"));
    let out = h.admit(*call, route(11));
    let early = only(&out, CARRIER);
    assert_eq!(early.len(), 1, "{out:?}");
    assert_eq!(early[0].status(), Some(183), "queue audio as early media");
    assert!(std::str::from_utf8(early[0].body())
        .unwrap()
        .contains("c=IN IP4 192.0.2.1"));
    let invites = only(&out, SEAT1);
    assert_eq!(invites.len(), 1, "{out:?}");
    invites[0].clone()
}

#[test]
fn answered_call_end_to_end_with_bye_from_the_carrier() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "call-1");
    // What the operator's softphone sees.
    assert_eq!(inv.method(), Some(&SipMethod::Invite));
    let display = inv.from().display.clone().unwrap();
    assert_eq!(display.trim_matches('"'), "【株式会社ABC】0901234567");
    assert_eq!(inv.header("X-Smartdesk-Contractor"), Some("3"));
    assert!(inv
        .header("X-Smartdesk-Greeting")
        .unwrap()
        .starts_with("お電話"));
    assert_eq!(inv.header("X-Smartdesk-Call"), Some("11"));
    assert_eq!(inv.max_forwards(), Some(69));
    let body = std::str::from_utf8(inv.body()).unwrap();
    assert!(body.contains("c=IN IP4 192.0.2.1"), "{body}");
    let fx = h.take_effects();
    let Some(CallEffect::MediaStart { a, b_port, .. }) = fx.first() else {
        panic!("{fx:?}")
    };
    assert!(body.contains(&format!("m=audio {b_port} RTP/AVP")));
    assert_eq!(a.rtp, Some(addr("192.0.2.10:20000")));

    // The caller hears our queue audio (early media), not the seat's ringing.
    assert!(fx.iter().any(|e| matches!(
        e,
        CallEffect::MediaPlay {
            leg: Leg::A,
            prompt: Prompt::PleaseWait,
            repeat: false,
            ..
        }
    )));
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 180, "s1", None));
    assert!(only(&out, CARRIER).is_empty(), "{out:?}");
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    assert!(h
        .effects
        .iter()
        .any(|e| matches!(e, CallEffect::MediaStopPlay { leg: Leg::A, .. })));
    let to_carrier = only(&out, CARRIER);
    assert_eq!(to_carrier.len(), 1);
    let ok = to_carrier[0];
    assert_eq!(ok.status(), Some(200));
    let our_tag = ok.to_tag().unwrap().to_owned();
    let answer = std::str::from_utf8(ok.body()).unwrap();
    assert!(answer.contains("c=IN IP4 192.0.2.1") && !answer.contains("198.51.100.5"));
    assert!(ok.header("Contact").is_some());
    let fx = h.take_effects();
    assert!(fx.contains(&CallEffect::Answered {
        call: 0,
        row: 11,
        seat_id: 1
    }));
    assert!(fx.iter().any(|e| matches!(e, CallEffect::MediaRemote { leg: Leg::B, remote, .. } if remote.rtp == Some(addr("198.51.100.5:30000")))));
    // The seat's ACK waits for the carrier's (end-to-end ACK).
    assert!(only(&out, SEAT1).is_empty());
    let out = h.feed(
        CARRIER,
        &carrier_in_dialog("ACK", "call-1", &our_tag, 1, ""),
    );
    let acks = only(&out, SEAT1);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method(), Some(&SipMethod::Ack));
    assert_eq!(acks[0].to_tag(), Some("s1"));
    assert_eq!(
        acks[0].request_uri(),
        Some(format!("sip:op@{SEAT1}").as_str())
    );

    // Carrier hangs up.
    let out = h.feed(
        CARRIER,
        &carrier_in_dialog("BYE", "call-1", &our_tag, 2, ""),
    );
    assert_eq!(statuses(&out), [200]);
    let byes = only(&out, SEAT1);
    assert_eq!(byes[0].method(), Some(&SipMethod::Bye));
    let fx = h.take_effects();
    assert!(fx.contains(&CallEffect::Finished {
        call: 0,
        row: 11,
        outcome: "answered",
        seat_id: Some(1)
    }));
    assert!(fx.contains(&CallEffect::MediaStop { call: 0 }));
    assert_eq!(h.calls(), 0);
    let bye_ok = wire::response(byes[0], 200, "OK", None, &[], None).unwrap();
    assert!(h.feed_msg(SEAT1, &bye_ok).is_empty());
    // Ports come back when the relay has closed them.
    h.ep.handle_media(h.now, 0, MediaNotice::Stopped);
    // Everything drains: no timer left after the transactions end.
    h.advance(Duration::from_secs(40));
    assert_eq!(h.ep.transactions(), 0);
}

#[test]
fn bye_from_the_seat_ends_the_carrier_leg() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "call-2");
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    let tag = only(&out, CARRIER)[0].to_tag().unwrap().to_owned();
    h.feed(CARRIER, &carrier_in_dialog("ACK", "call-2", &tag, 1, ""));
    h.take_effects();
    let bye = format!(
        "BYE sip:smartdesk@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {SEAT1};branch=z9hG4bKsb1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:op1@smartdesk>;tag=s1\r\nTo: {};\r\nCall-ID: {}\r\n\
         CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        inv.header("From").unwrap(),
        inv.call_id()
    )
    .replace(";\r\nCall-ID", "\r\nCall-ID");
    let out = h.feed(SEAT1, &bye);
    assert_eq!(
        statuses(
            &only(&out, SEAT1)
                .into_iter()
                .map(|m| (addr(SEAT1), m.clone()))
                .collect::<Vec<_>>()
        ),
        [200]
    );
    let to_carrier = only(&out, CARRIER);
    assert_eq!(to_carrier[0].method(), Some(&SipMethod::Bye));
    assert_eq!(to_carrier[0].to_tag(), Some("c1"));
    assert_eq!(to_carrier[0].from_tag(), Some(tag.as_str()));
    assert_eq!(
        to_carrier[0].request_uri(),
        Some("sip:0901234567@192.0.2.10:5060")
    );
    assert!(h.take_effects().iter().any(|e| matches!(
        e,
        CallEffect::Finished {
            outcome: "answered",
            ..
        }
    )));
    assert_eq!(h.calls(), 0);
}

#[test]
fn trunk_acl_refuses_strangers_without_counting() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let out = h.feed("203.0.113.7:5060", &invite("x", "1", "", OFFER));
    assert_eq!(statuses(&out), [403]);
    assert!(h.take_effects().is_empty(), "not counted");
    assert_eq!(h.ep.b2bua().unwrap().stats().refused_acl, 1);
}

#[test]
fn unassigned_number_is_404_and_ledger_failure_is_503() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    h.feed(CARRIER, &invite("u1", "1", "", OFFER));
    let out = h.admit(
        0,
        Admission::Reject {
            row: None,
            status: 404,
            outcome: None,
        },
    );
    assert_eq!(statuses(&out), [404]);
    assert!(!h
        .take_effects()
        .iter()
        .any(|e| matches!(e, CallEffect::Finished { .. })));
    h.feed(CARRIER, &invite("u2", "2", "", OFFER));
    h.take_effects();
    let out = h.admit(1, Admission::Unavailable);
    assert_eq!(statuses(&out), [503]);
    assert_eq!(out[0].1.header("Retry-After"), Some("5"));
    assert_eq!(h.calls(), 0);
    // The 404 is retransmitted until ACKed (§17.2.1), then the layer ACKs it away.
    let out = h.advance(Duration::from_millis(600));
    assert!(statuses(&out).contains(&404));
}

/// Found by fuzz/endpoint: a Reject whose status is not a final failure answered the INVITE
/// with a provisional, so its server transaction and the caller waited forever.
#[test]
fn reject_with_a_non_failure_status_answers_500() {
    for status in [0, 109, 183, 200, 299, 700, u16::MAX] {
        let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
        h.feed(CARRIER, &invite("r1", "1", "", OFFER));
        let out = h.admit(
            0,
            Admission::Reject {
                row: Some(1),
                status,
                outcome: Some("not_in_contract"),
            },
        );
        assert_eq!(statuses(&out), [500], "status {status}");
        assert_eq!(h.calls(), 0);
        // Unacknowledged, the 500 is retransmitted until timer H ends the transaction.
        h.advance(Duration::from_secs(64));
        assert_eq!(h.ep.transactions(), 0, "status {status}");
    }
}

#[test]
fn number_that_is_not_japanese_is_404_before_admission() {
    let mut h = H::new(vec![]);
    let out = h.feed(
        CARRIER,
        &invite("n1", "1", "", OFFER).replace("sip:0312345678@", "sip:hello@"),
    );
    assert_eq!(statuses(&out), [404]);
    assert!(h.take_effects().is_empty());
}

#[test]
fn retransmitted_invite_is_one_call_and_a_resent_one_is_merged() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    h.feed(CARRIER, &invite("r1", "1", "", OFFER));
    let out = h.feed(CARRIER, &invite("r1", "1", "", OFFER));
    assert_eq!(statuses(&out), [100], "retransmission absorbed, 100 resent");
    let out = h.feed(CARRIER, &invite("r1", "2", "", OFFER));
    assert_eq!(
        statuses(&out),
        [482],
        "same call on a new branch: merged request"
    );
    let admits = h
        .take_effects()
        .into_iter()
        .filter(|e| matches!(e, CallEffect::Admit { .. }))
        .count();
    assert_eq!(admits, 1);
}

#[test]
fn withheld_caller_and_asserted_identity() {
    let mut h = H::new(vec![]);
    h.feed(
        CARRIER,
        &invite(
            "p1",
            "1",
            "P-Asserted-Identity: <sip:+81312340000@carrier>\r\n",
            OFFER,
        ),
    );
    h.feed(
        CARRIER,
        &invite(
            "p2",
            "2",
            "P-Asserted-Identity: <sip:+81312340000@carrier>\r\nPrivacy: id\r\n",
            OFFER,
        ),
    );
    h.feed(
        CARRIER,
        &invite("p3", "3", "", OFFER).replace(
            "\"Caller\" <sip:0901234567@192.0.2.10>",
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>",
        ),
    );
    let reqs: Vec<AdmitRequest> = h
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            CallEffect::Admit { request, .. } => Some(request),
            _ => None,
        })
        .collect();
    assert_eq!(reqs[0].caller.as_deref(), Some("+81312340000"));
    assert!(!reqs[0].withheld);
    assert_eq!(reqs[1].caller, None, "never the asserted number");
    assert!(reqs[1].withheld);
    assert!(reqs[2].withheld && reqs[2].caller.is_none());
    // The seat sees 非通知.
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    h.feed(CARRIER, &invite("p4", "4", "Privacy: id\r\n", OFFER));
    let out = h.admit(0, route(1));
    let inv = only(&out, SEAT1)[0];
    assert!(inv
        .from()
        .display
        .as_deref()
        .unwrap()
        .contains("【株式会社ABC】非通知"));
    assert!(inv.from().uri.starts_with("sip:anonymous@"));
}

#[test]
fn cancel_while_ringing_cancels_the_seat_and_counts_abandoned() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "c1");
    h.feed_msg(SEAT1, &seat_reply(&inv, 180, "s1", None));
    h.take_effects();
    let cancel = "CANCEL sip:0312345678@192.0.2.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1;rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:0312345678@192.0.2.1>\r\n\
         From: \"Caller\" <sip:0901234567@192.0.2.10>;tag=c1\r\nCall-ID: c1\r\n\
         CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n";
    let out = h.feed(CARRIER, cancel);
    let mut st = statuses(&out);
    st.sort();
    assert_eq!(st, [200, 487]);
    let to_seat = only(&out, SEAT1);
    assert_eq!(to_seat[0].method(), Some(&SipMethod::Cancel));
    assert_eq!(to_seat[0].top_via().branch(), inv.top_via().branch());
    assert!(h.take_effects().iter().any(|e| matches!(
        e,
        CallEffect::Finished {
            outcome: "abandoned",
            row: 11,
            ..
        }
    )));
    // The seat confirms: 200 to the CANCEL, 487 to the INVITE, which the layer ACKs.
    let cancel_ok = wire::response(to_seat[0], 200, "OK", Some("s1"), &[], None).unwrap();
    h.feed_msg(SEAT1, &cancel_ok);
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 487, "s1", None));
    assert_eq!(only(&out, SEAT1)[0].method(), Some(&SipMethod::Ack));
    assert_eq!(h.calls(), 0);
}

#[test]
fn cancel_while_the_row_is_written_still_finishes_the_row() {
    // Regression (tests/net_faults.rs): a CANCEL right after 100 Trying, before the
    // admission, dropped the call (and answered 487 before the row was durable); its row,
    // written anyway, never got an outcome.
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    h.feed(CARRIER, &invite("c9", "1", "", OFFER));
    let admit = h.take_effects();
    let [CallEffect::Admit { call, .. }] = admit.as_slice() else {
        panic!("{admit:?}")
    };
    let cancel = invite("c9", "1", "", "")
        .replace("INVITE sip", "CANCEL sip")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let st = statuses(&h.feed(CARRIER, &cancel));
    assert_eq!(
        st,
        [200],
        "the 487 waits for the durable row (only 100 before it)"
    );
    assert_eq!(h.calls(), 1, "kept until its row is known");
    let out = h.admit(*call, route(12));
    assert_eq!(
        statuses(&out),
        [487],
        "no seat rings for a cancelled call: {out:?}"
    );
    assert!(h.take_effects().iter().any(|e| matches!(
        e,
        CallEffect::Finished {
            outcome: "abandoned",
            row: 12,
            ..
        }
    )));
    assert_eq!(h.calls(), 0);
}

#[test]
fn cancel_before_the_seat_rings_waits_for_its_provisional() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "c2");
    let cancel = invite("c2", "1", "", "")
        .replace("INVITE sip", "CANCEL sip")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let out = h.feed(CARRIER, &cancel);
    assert!(
        only(&out, SEAT1).is_empty(),
        "no CANCEL before a provisional (§9.1)"
    );
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 180, "s1", None));
    assert_eq!(only(&out, SEAT1)[0].method(), Some(&SipMethod::Cancel));
    assert!(
        only(&out, CARRIER).is_empty(),
        "no 180 relayed after the caller left"
    );
}

#[test]
fn answer_racing_the_cancel_is_acked_and_hung_up() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "c3");
    h.feed_msg(SEAT1, &seat_reply(&inv, 180, "s1", None));
    let cancel = invite("c3", "1", "", "")
        .replace("INVITE sip", "CANCEL sip")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    h.feed(CARRIER, &cancel);
    // The seat answered before our CANCEL reached it.
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    let methods: Vec<_> = only(&out, SEAT1)
        .iter()
        .filter_map(|m| m.method().cloned())
        .collect();
    assert_eq!(methods, [SipMethod::Ack, SipMethod::Bye]);
    assert!(
        only(&out, CARRIER).is_empty(),
        "the caller already has its 487"
    );
    assert_eq!(h.calls(), 0);
    let fx = h.take_effects();
    let finished: Vec<_> = fx
        .iter()
        .filter(|e| matches!(e, CallEffect::Finished { .. }))
        .collect();
    assert_eq!(finished.len(), 1, "{fx:?}");
}

/// Nobody registered: the caller is answered at once, asked to leave a message after the
/// tone, recorded, and the call counts as `overflow` (issue #6 §4).
#[test]
fn no_seat_registered_overflows_to_message_taking() {
    let mut h = H::new(vec![]);
    h.feed(CARRIER, &invite("o1", "1", "", OFFER));
    let out = h.admit(0, route(5));
    assert_eq!(statuses(&out), [183, 200]);
    let tag = out[1].1.to_tag().unwrap().to_owned();
    let fx = h.take_effects();
    let kinds: Vec<_> = fx
        .iter()
        .filter_map(|e| match e {
            CallEffect::Queue { row: 5, kind, .. } => Some(kind.name()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["entered", "overflow"]);
    assert!(matches!(
        fx.last(),
        Some(CallEffect::MediaPlay {
            prompt: Prompt::LeaveMessage,
            repeat: false,
            ..
        })
    ));
    h.feed(CARRIER, &carrier_in_dialog("ACK", "o1", &tag, 1, ""));
    h.ep.handle_media(h.now, 0, MediaNotice::PlayFinished);
    h.drain();
    assert!(h.take_effects().contains(&CallEffect::MediaRecord {
        call: 0,
        row: 5,
        law: Law::Pcmu,
        max: Duration::from_secs(120),
    }));
    // The caller speaks, then hangs up.
    let out = h.feed(CARRIER, &carrier_in_dialog("BYE", "o1", &tag, 2, ""));
    assert_eq!(statuses(&out), [200]);
    let fx = h.take_effects();
    assert!(fx.contains(&CallEffect::Finished {
        call: 0,
        row: 5,
        outcome: "overflow",
        seat_id: None
    }));
    assert!(fx.contains(&CallEffect::MediaStop { call: 0 }));
    assert_eq!(h.calls(), 0);
}

#[test]
fn message_recording_is_bounded_and_a_late_offer_gets_480() {
    let mut h = H::new(vec![]);
    h.feed(CARRIER, &invite("o2", "1", "", OFFER));
    let out = h.admit(0, route(6));
    let tag = out[1].1.to_tag().unwrap().to_owned();
    h.feed(CARRIER, &carrier_in_dialog("ACK", "o2", &tag, 1, ""));
    h.ep.handle_media(h.now, 0, MediaNotice::PlayFinished);
    h.drain();
    // The caller never stops talking: we hang up at the maximum length.
    let out = h.advance(Duration::from_secs(121));
    assert_eq!(only(&out, CARRIER)[0].method(), Some(&SipMethod::Bye));
    assert!(h.take_effects().iter().any(|e| matches!(
        e,
        CallEffect::Finished {
            outcome: "overflow",
            ..
        }
    )));
    // Without SDP nothing can be played or recorded.
    h.feed(CARRIER, &invite("o3", "1", "", ""));
    let out = h.admit(1, route(7));
    assert_eq!(statuses(&out), [180, 480]);
}

#[test]
fn a_seat_takes_one_call_at_a_time_and_busy_waits_its_retry_delay() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1), seat(2, "op2", SEAT2)]);
    let inv = ring(&mut h, "b1");
    // A second call while op1 rings goes to op2.
    h.feed(CARRIER, &invite("b2", "2", "", OFFER));
    let out = h.admit(1, route(12));
    assert_eq!(only(&out, SEAT2).len(), 1, "never two offers to one seat");
    assert!(only(&out, SEAT1).is_empty());
    // op1 is busy: the first call waits in the queue (op2 is ringing for the other).
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 486, "s1", None));
    assert!(only(&out, CARRIER).is_empty(), "{out:?}");
    assert!(!only(&out, SEAT1)
        .iter()
        .any(|m| m.method() == Some(&SipMethod::Invite)));
    // After the busy retry delay (30 s) op1 is offered the call again.
    let out = h.advance(Duration::from_secs(31));
    let again: HashSet<_> = only(&out, SEAT1)
        .into_iter()
        .filter(|m| m.method() == Some(&SipMethod::Invite))
        .map(|m| m.call_id().to_owned())
        .collect();
    assert_eq!(again.len(), 1, "one new INVITE (and its retransmissions)");
    assert!(!again.contains(inv.call_id()));
    assert!(h.take_effects().iter().any(|e| matches!(
        e,
        CallEffect::Queue {
            kind: crate::acd::QueueEventKind::Busy { seat: 1 },
            ..
        }
    )));
}

#[test]
fn seat_decline_tries_the_other_seat() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1), seat(2, "op2", SEAT2)]);
    let inv = ring(&mut h, "d1");
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 603, "s1", None));
    assert_eq!(only(&out, SEAT2).len(), 1);
    assert_eq!(only(&out, SEAT2)[0].method(), Some(&SipMethod::Invite));
}

#[test]
fn ring_timeout_cancels_and_moves_on_at_once() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1), seat(2, "op2", SEAT2)]);
    let inv = ring(&mut h, "t1");
    h.feed_msg(SEAT1, &seat_reply(&inv, 180, "s1", None));
    let out = h.advance(Duration::from_secs(14));
    assert!(only(&out, SEAT1).is_empty());
    let out = h.advance(Duration::from_secs(2));
    let cancels: Vec<_> = only(&out, SEAT1)
        .into_iter()
        .filter(|m| m.method() == Some(&SipMethod::Cancel))
        .collect();
    assert!(!cancels.is_empty(), "ring timeout 15 s");
    assert!(
        cancels
            .iter()
            .all(|c| c.top_via().branch() == inv.top_via().branch()),
        "one CANCEL transaction (retransmitted until answered)"
    );
    assert_eq!(
        only(&out, SEAT2)[0].method(),
        Some(&SipMethod::Invite),
        "the next seat is rung without waiting for the 487"
    );
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 487, "s1", None));
    assert_eq!(only(&out, SEAT1)[0].method(), Some(&SipMethod::Ack));
    assert!(only(&out, SEAT2).is_empty());
}

#[test]
fn a_withdrawn_seat_that_answers_anyway_is_hung_up() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1), seat(2, "op2", SEAT2)]);
    let inv = ring(&mut h, "t3");
    h.feed_msg(SEAT1, &seat_reply(&inv, 180, "s1", None));
    h.advance(Duration::from_secs(16));
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    let methods: Vec<_> = only(&out, SEAT1)
        .iter()
        .filter_map(|m| m.method().cloned())
        .collect();
    assert_eq!(methods, [SipMethod::Ack, SipMethod::Bye]);
    assert!(
        only(&out, CARRIER).is_empty(),
        "the caller is not answered by it"
    );
}

#[test]
fn unresponsive_seat_is_withdrawn_and_offered_again_after_its_delay() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "t2");
    // No response at all: no CANCEL can go before a provisional (§9.1); Timer B (64·T1)
    // ends the INVITE; the no-answer retry delay (10 s) follows.
    let out = h.advance(Duration::from_secs(40));
    assert!(statuses(&out).is_empty(), "the caller keeps waiting");
    assert!(only(&out, SEAT1)
        .iter()
        .all(|m| m.call_id() == inv.call_id() && m.method() == Some(&SipMethod::Invite)));
    let out = h.advance(Duration::from_secs(3));
    let again: HashSet<_> = only(&out, SEAT1)
        .into_iter()
        .filter(|m| m.call_id() != inv.call_id())
        .map(|m| m.call_id().to_owned())
        .collect();
    assert_eq!(again.len(), 1);
    let snapshot = h.ep.acd_snapshot(h.now);
    assert_eq!(snapshot.waiting.len(), 1);
    assert_eq!(snapshot.seats[0].consecutive_no_answers, 1);
}

#[test]
fn max_wait_overflows_a_queued_caller() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "w1");
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    let tag = only(&out, CARRIER)[0].to_tag().unwrap().to_owned();
    h.feed(CARRIER, &carrier_in_dialog("ACK", "w1", &tag, 1, ""));
    // op1 is on a call: the next caller waits, then leaves a message at max_wait.
    h.feed(CARRIER, &invite("w2", "2", "", OFFER));
    let out = h.admit(1, route(13));
    assert_eq!(statuses(&out), [183]);
    let out = h.advance(Duration::from_secs(599));
    assert!(only(&out, CARRIER).is_empty() || statuses(&out).iter().all(|s| *s < 200));
    let out = h.advance(Duration::from_secs(2));
    assert!(statuses(&out).contains(&200), "{:?}", statuses(&out));
    assert!(h.take_effects().iter().any(|e| matches!(
        e,
        CallEffect::Queue {
            row: 13,
            kind: crate::acd::QueueEventKind::Overflow { wait_ms: 600_000 },
            ..
        }
    )));
}

#[test]
fn seat_commands_and_reconcile() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1), seat(2, "op2", SEAT2)]);
    let now = h.now;
    h.ep.seat_command(
        now,
        SeatCommand::Pause {
            seat: "op1".into(),
            reason: "break".into(),
        },
    )
    .unwrap();
    h.feed(CARRIER, &invite("p1", "1", "", OFFER));
    let out = h.admit(0, route(20));
    assert!(only(&out, SEAT1).is_empty(), "paused");
    assert_eq!(only(&out, SEAT2).len(), 1);
    assert_eq!(
        h.ep.seat_command(now, SeatCommand::Resume { seat: "op9".into() }),
        Err(crate::acd::AcdError::UnknownSeat("op9".into()))
    );
    let snap = h.ep.acd_snapshot(now);
    assert_eq!(snap.seats[0].state.name(), "paused");
    assert_eq!(snap.seats[1].state.name(), "ringing");
    // The periodic reconcile finds nothing to repair in a consistent state.
    h.advance(RECONCILE_EVERY * 2);
    assert_eq!(h.ep.acd_snapshot(h.now).seats[1].state.name(), "ringing");
    assert_eq!(h.ep.acd_snapshot(h.now).seats[0].state.name(), "paused");
}

#[test]
fn reinvite_hold_passes_through_with_rewritten_sdp() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "h1");
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    let tag = only(&out, CARRIER)[0].to_tag().unwrap().to_owned();
    h.feed(CARRIER, &carrier_in_dialog("ACK", "h1", &tag, 1, ""));
    h.take_effects();
    let hold = OFFER
        .replace("a=sendrecv", "a=sendonly")
        .replace("o=carrier 1 1", "o=carrier 1 2");
    let out = h.feed(CARRIER, &carrier_in_dialog("INVITE", "h1", &tag, 2, &hold));
    let re = only(&out, SEAT1)
        .into_iter()
        .find(|m| m.method() == Some(&SipMethod::Invite))
        .expect("forwarded")
        .clone();
    assert_eq!(re.to_tag(), Some("s1"));
    let body = std::str::from_utf8(re.body()).unwrap();
    assert!(body.contains("a=sendonly") && body.contains("192.0.2.1"));
    assert!(h.take_effects().iter().any(|e| matches!(
        e,
        CallEffect::MediaRemote {
            leg: Leg::A,
            hold: true,
            ..
        }
    )));
    let held = SEAT_ANSWER.replace("a=sendrecv", "a=recvonly");
    let out = h.feed_msg(SEAT1, &seat_reply(&re, 200, "s1", Some(&held)));
    let ok = only(&out, CARRIER)[0].clone();
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.cseq(), 2);
    assert!(std::str::from_utf8(ok.body())
        .unwrap()
        .contains("a=recvonly"));
    let out = h.feed(CARRIER, &carrier_in_dialog("ACK", "h1", &tag, 2, ""));
    let ack = only(&out, SEAT1)[0];
    assert_eq!(ack.method(), Some(&SipMethod::Ack));
    assert_eq!(ack.cseq(), re.cseq());
    // A second re-INVITE while none is pending is fine; glare gets 491.
    let out = h.feed(CARRIER, &carrier_in_dialog("INVITE", "h1", &tag, 3, OFFER));
    assert_eq!(only(&out, SEAT1).len(), 1);
    let out = h.feed(CARRIER, &carrier_in_dialog("INVITE", "h1", &tag, 4, OFFER));
    assert!(statuses(&out).contains(&491));
}

/// Found by fuzz/endpoint: a call that ended while its forwarded re-INVITE was unanswered
/// never answered the sender, whose INVITE server transaction then stayed forever.
#[test]
fn call_ending_during_a_reinvite_answers_it_487() {
    for end in ["media timeout", "BYE from the seat", "BYE from the carrier"] {
        let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
        let inv = ring(&mut h, "p1");
        let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
        let tag = only(&out, CARRIER)[0].to_tag().unwrap().to_owned();
        h.feed(CARRIER, &carrier_in_dialog("ACK", "p1", &tag, 1, ""));
        let out = h.feed(CARRIER, &carrier_in_dialog("INVITE", "p1", &tag, 2, OFFER));
        let re = only(&out, SEAT1)[0].clone();
        assert_eq!(re.method(), Some(&SipMethod::Invite), "{end}");
        let out = match end {
            "media timeout" => {
                h.ep.handle_media(h.now, 0, MediaNotice::Timeout);
                h.drain()
            }
            "BYE from the seat" => {
                let bye = format!(
                    "BYE sip:smartdesk@192.0.2.1:5060 SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {SEAT1};branch=z9hG4bKsb1\r\nMax-Forwards: 70\r\n\
                     From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 9 BYE\r\n\
                     Content-Length: 0\r\n\r\n",
                    re.header("To").unwrap(),
                    re.header("From").unwrap(),
                    re.call_id()
                );
                h.feed(SEAT1, &bye)
            }
            _ => h.feed(CARRIER, &carrier_in_dialog("BYE", "p1", &tag, 3, "")),
        };
        let to_reinvite: Vec<u16> = only(&out, CARRIER)
            .iter()
            .filter(|m| m.cseq() == 2 && m.cseq_method() == &SipMethod::Invite)
            .filter_map(|m| m.status())
            .collect();
        assert_eq!(to_reinvite, [487], "{end}: {out:?}");
        assert_eq!(h.calls(), 0, "{end}");
        // Unacknowledged, the 487 ends with timer H; the unanswered BYEs with timer F.
        h.advance(Duration::from_secs(64));
        assert_eq!(h.ep.transactions(), 0, "{end}");
    }
}

#[test]
fn lost_ack_makes_us_retransmit_the_200_and_lost_200_is_reacked() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "l1");
    let seat_ok = seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER));
    let out = h.feed_msg(SEAT1, &seat_ok);
    let tag = only(&out, CARRIER)[0].to_tag().unwrap().to_owned();
    // The carrier's ACK is lost: our 200 goes again at T1, 2T1...
    let out = h.advance(Duration::from_millis(1600));
    let again = only(&out, CARRIER)
        .into_iter()
        .filter(|m| m.status() == Some(200))
        .count();
    assert!(again >= 2, "{again}");
    h.feed(CARRIER, &carrier_in_dialog("ACK", "l1", &tag, 1, ""));
    let out = h.advance(Duration::from_secs(5));
    assert!(only(&out, CARRIER).is_empty(), "ACK stops retransmission");
    // The seat did not get our ACK and resends its 200: we ACK again.
    let out = h.feed_msg(SEAT1, &seat_ok);
    assert_eq!(only(&out, SEAT1)[0].method(), Some(&SipMethod::Ack));
}

#[test]
fn no_ack_at_all_ends_both_legs() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "l2");
    h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    let out = h.advance(Duration::from_secs(33));
    let seat_methods: Vec<_> = only(&out, SEAT1)
        .iter()
        .filter_map(|m| m.method().cloned())
        .collect();
    assert!(seat_methods.contains(&SipMethod::Ack) && seat_methods.contains(&SipMethod::Bye));
    assert!(only(&out, CARRIER)
        .iter()
        .any(|m| m.method() == Some(&SipMethod::Bye)));
    assert_eq!(h.calls(), 0);
}

#[test]
fn media_timeout_hangs_up_both_sides() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "m1");
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    let tag = only(&out, CARRIER)[0].to_tag().unwrap().to_owned();
    h.feed(CARRIER, &carrier_in_dialog("ACK", "m1", &tag, 1, ""));
    h.ep.handle_media(h.now, 0, MediaNotice::Timeout);
    let out = h.drain();
    assert_eq!(only(&out, SEAT1)[0].method(), Some(&SipMethod::Bye));
    assert_eq!(only(&out, CARRIER)[0].method(), Some(&SipMethod::Bye));
    assert_eq!(h.calls(), 0);
}

#[test]
fn announcement_answers_plays_and_hangs_up() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    h.feed(CARRIER, &invite("a1", "1", "", OFFER));
    h.take_effects();
    let out = h.admit(
        0,
        Admission::Announce {
            row: 9,
            prompt: Prompt::OutOfHours,
            outcome: "out_of_hours",
        },
    );
    assert_eq!(statuses(&out), [200]);
    let tag = out[0].1.to_tag().unwrap().to_owned();
    let fx = h.take_effects();
    assert!(fx.iter().any(|e| matches!(
        e,
        CallEffect::MediaPlay {
            leg: Leg::A,
            prompt: Prompt::OutOfHours,
            ..
        }
    )));
    h.feed(CARRIER, &carrier_in_dialog("ACK", "a1", &tag, 1, ""));
    h.ep.handle_media(h.now, 0, MediaNotice::PlayFinished);
    let out = h.drain();
    assert_eq!(out[0].1.method(), Some(&SipMethod::Bye));
    assert!(h.take_effects().contains(&CallEffect::Finished {
        call: 0,
        row: 9,
        outcome: "out_of_hours",
        seat_id: None
    }));
    assert_eq!(h.calls(), 0);
}

#[test]
fn loop_and_max_forwards() {
    let mut h = H::new(vec![]);
    let looped = invite("lp", "1", "", OFFER).replace(
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1;rport\r\n",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1;rport\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-sdabc\r\n",
    );
    assert_eq!(statuses(&h.feed(CARRIER, &looped)), [482]);
    let hops = invite("mf", "2", "", OFFER).replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(statuses(&h.feed(CARRIER, &hops)), [483]);
}

#[test]
fn in_dialog_request_for_unknown_dialog_is_481() {
    let mut h = H::new(vec![]);
    let out = h.feed(CARRIER, &carrier_in_dialog("BYE", "nope", "x", 2, ""));
    assert_eq!(statuses(&out), [481]);
}

#[test]
fn wrap_up_holds_the_seat_until_the_record_is_submitted() {
    let acd = AcdConfig {
        wrap_up_max: Duration::from_secs(120),
        max_wait: Duration::from_secs(600),
        ..AcdConfig::default()
    };
    let mut h = H::with_acd(vec![seat(1, "op1", SEAT1)], acd);
    let inv = ring(&mut h, "u1");
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    let tag = only(&out, CARRIER)[0].to_tag().unwrap().to_owned();
    h.feed(CARRIER, &carrier_in_dialog("ACK", "u1", &tag, 1, ""));
    h.feed(CARRIER, &carrier_in_dialog("BYE", "u1", &tag, 2, ""));
    assert_eq!(h.ep.acd_snapshot(h.now).seats[0].state.name(), "wrap_up");
    // The next caller waits while the operator writes the record.
    h.feed(CARRIER, &invite("u2", "2", "", OFFER));
    let out = h.admit(1, route(12));
    assert_eq!(statuses(&out), [183]);
    assert!(only(&out, SEAT1)
        .iter()
        .all(|m| m.method() != Some(&SipMethod::Invite)));
    assert!(
        !h.ep.record_submitted(h.now, 1, 12),
        "a record for another call ends nothing"
    );
    assert!(
        !h.ep.record_submitted(h.now, 2, 11),
        "nor one from another seat"
    );
    assert!(
        h.ep.record_submitted(h.now, 1, 11),
        "the record was submitted"
    );
    let out = h.drain();
    assert_eq!(only(&out, SEAT1)[0].method(), Some(&SipMethod::Invite));
    assert!(
        !h.ep.record_submitted(h.now, 1, 11),
        "not in wrap-up any more"
    );
}

#[test]
fn a_record_submitted_during_the_call_skips_wrap_up() {
    let acd = AcdConfig {
        wrap_up_max: Duration::from_secs(120),
        ..AcdConfig::default()
    };
    let mut h = H::with_acd(vec![seat(1, "op1", SEAT1)], acd);
    let inv = ring(&mut h, "w1");
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    let tag = only(&out, CARRIER)[0].to_tag().unwrap().to_owned();
    h.feed(CARRIER, &carrier_in_dialog("ACK", "w1", &tag, 1, ""));
    assert!(
        h.ep.record_submitted(h.now, 1, 11),
        "noted while on the call"
    );
    assert_eq!(h.ep.acd_snapshot(h.now).seats[0].state.name(), "on_call");
    h.feed(CARRIER, &carrier_in_dialog("BYE", "w1", &tag, 2, ""));
    assert_eq!(h.ep.acd_snapshot(h.now).seats[0].state.name(), "available");
}

#[test]
fn the_console_pauses_and_resumes_a_seat_by_id() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    h.ep.seat_command(
        h.now,
        SeatCommand::Pause {
            seat: SeatRef::Id(1),
            reason: "休憩".into(),
        },
    )
    .unwrap();
    assert_eq!(h.ep.acd_snapshot(h.now).seats[0].state.name(), "paused");
    assert_eq!(
        h.ep.seat_command(
            h.now,
            SeatCommand::Resume {
                seat: SeatRef::Id(9)
            }
        ),
        Err(crate::acd::AcdError::UnknownSeat("#9".into()))
    );
    h.ep.seat_command(
        h.now,
        SeatCommand::Resume {
            seat: SeatRef::Id(1),
        },
    )
    .unwrap();
    assert_eq!(h.ep.acd_snapshot(h.now).seats[0].state.name(), "available");
}

#[test]
fn an_expired_registration_withdraws_the_ringing_offer() {
    let acd = AcdConfig {
        ring_timeout: Duration::from_secs(7200),
        max_wait: Duration::from_secs(7200),
        ..AcdConfig::default()
    };
    let mut h = H::with_acd(vec![seat(1, "op1", SEAT1)], acd);
    let inv = ring(&mut h, "x1");
    h.feed_msg(SEAT1, &seat_reply(&inv, 180, "s1", None));
    h.take_effects();
    // The binding expires while the phone rings (the wall clock moved on to 10 s before its
    // expiry): CANCEL, and with nobody left the caller is asked for a message.
    h.ep.set_unix_base(h.now, Duration::from_secs(T_UNIX + 3590));
    let out = h.advance(Duration::from_secs(11));
    assert!(only(&out, SEAT1)
        .iter()
        .any(|m| m.method() == Some(&SipMethod::Cancel)));
    assert!(statuses(
        &only(&out, CARRIER)
            .into_iter()
            .map(|m| (addr(CARRIER), m.clone()))
            .collect::<Vec<_>>()
    )
    .contains(&200));
    assert_eq!(h.ep.acd_snapshot(h.now).seats[0].state.name(), "ringing");
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 487, "s1", None));
    assert_eq!(only(&out, SEAT1)[0].method(), Some(&SipMethod::Ack));
    assert_eq!(h.ep.acd_snapshot(h.now).seats[0].state.name(), "offline");
    assert!(h.take_effects().iter().any(|e| matches!(
        e,
        CallEffect::MediaPlay {
            prompt: Prompt::LeaveMessage,
            ..
        }
    )));
}

const T38_OFFER: &str = "v=0\r\no=fax 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
t=0 0\r\nm=audio 0 RTP/AVP 0\r\nm=image 30002 udptl t38\r\na=T38FaxVersion:0\r\n";

#[test]
fn t38_reinvite_from_the_carrier_ends_the_call_as_fax() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "t38");
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    let tag = only(&out, CARRIER)[0].to_tag().unwrap().to_owned();
    h.feed(CARRIER, &carrier_in_dialog("ACK", "t38", &tag, 1, ""));
    h.take_effects();
    let out = h.feed(
        CARRIER,
        &carrier_in_dialog("INVITE", "t38", &tag, 2, T38_OFFER),
    );
    // Refused (we relay no T.38), never forwarded to the operator, who is released.
    let to_carrier = only(&out, CARRIER);
    assert_eq!(to_carrier[0].status(), Some(488), "{out:?}");
    assert!(to_carrier
        .iter()
        .any(|m| m.method() == Some(&SipMethod::Bye)));
    let to_seat = only(&out, SEAT1);
    assert_eq!(to_seat.len(), 1, "{out:?}");
    assert_eq!(to_seat[0].method(), Some(&SipMethod::Bye));
    let effects = h.take_effects();
    assert!(
        effects.iter().any(|e| matches!(
            e,
            CallEffect::Finished {
                outcome: "fax",
                seat_id: Some(1),
                ..
            }
        )),
        "{effects:?}"
    );
}

#[test]
fn t38_only_invite_is_counted_as_fax_and_never_rings_a_seat() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let out = h.feed(CARRIER, &invite("t38i", "1", "", T38_OFFER));
    assert_eq!(statuses(&out), [100]);
    let admit = h.take_effects();
    let [CallEffect::Admit { call, .. }] = admit.as_slice() else {
        panic!("{admit:?}")
    };
    let out = h.admit(*call, route(12));
    assert!(only(&out, SEAT1).is_empty(), "{out:?}");
    let to_carrier: Vec<_> = only(&out, CARRIER)
        .iter()
        .filter_map(|m| m.status())
        .collect();
    assert_eq!(to_carrier, [488]);
    let effects = h.take_effects();
    assert!(
        effects.iter().any(|e| matches!(
            e,
            CallEffect::Finished {
                row: 12,
                outcome: "fax",
                ..
            }
        )),
        "{effects:?}"
    );
    assert_eq!(h.calls(), 0);
}

#[test]
fn audio_with_t38_offer_is_routed_as_voice() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let both = OFFER.to_owned() + "m=image 30002 udptl t38\r\n";
    h.feed(CARRIER, &invite("mixed", "1", "", &both));
    let admit = h.take_effects();
    let [CallEffect::Admit { call, .. }] = admit.as_slice() else {
        panic!("{admit:?}")
    };
    let out = h.admit(*call, route(13));
    assert_eq!(only(&out, SEAT1).len(), 1, "{out:?}");
}

/// Toll fraud: a seat that redirects (3xx to an outside number) is never followed; the call
/// moves to the next seat or overflows, and nothing is sent to the redirect target.
#[test]
fn seat_redirect_is_never_followed() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "r1");
    let redirect = wire::response(
        &inv,
        302,
        "Moved Temporarily",
        Some("s1"),
        &[("Contact", "<sip:0120999999@203.0.113.66:5060>")],
        None,
    )
    .unwrap();
    let out = h.feed_msg(SEAT1, &redirect);
    assert!(
        out.iter().all(|(a, _)| *a != addr("203.0.113.66:5060")),
        "{out:?}"
    );
    // The ACD counts it as a refusal: the caller waits on in the queue (for the next free
    // seat, or message taking at the queue's maximum wait).
    assert!(statuses(&out).is_empty(), "{:?}", statuses(&out));
    let snap = h.ep.acd_snapshot(h.now);
    assert_eq!(snap.waiting.len(), 1, "{snap:?}");
    assert_eq!(snap.waiting[0].ringing_seat, None);
}

// ------------------------------------------------------------------ operations (issue #9)

#[test]
fn admin_hangup_of_an_answered_call_byes_both_legs_and_stays_answered() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "h1");
    h.now += Duration::from_secs(2);
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    let tag = only(&out, CARRIER)[0].to_tag().unwrap().to_owned();
    h.feed(CARRIER, &carrier_in_dialog("ACK", "h1", &tag, 1, ""));
    h.now += Duration::from_secs(3);
    let live = h.ep.b2bua().unwrap().live_calls(h.now);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, Some(11));
    assert_eq!(live[0].state, "answered");
    assert_eq!(live[0].seat_id, Some(1));
    assert_eq!(live[0].contractor.as_deref(), Some("株式会社ABC"));
    assert_eq!(live[0].duration_ms, 5000);
    assert_eq!(live[0].talk_ms, Some(3000));
    assert_eq!(h.ep.acd_snapshot(h.now).seats[0].state.name(), "on_call");
    h.take_effects();
    let call = h.ep.b2bua().unwrap().call_by_row(11).unwrap();
    h.ep.hang_up(h.now, call).unwrap();
    let out = h.drain();
    assert_eq!(only(&out, SEAT1)[0].method(), Some(&SipMethod::Bye));
    assert_eq!(only(&out, CARRIER)[0].method(), Some(&SipMethod::Bye));
    assert!(h.take_effects().contains(&CallEffect::Finished {
        call: 0,
        row: 11,
        outcome: "answered",
        seat_id: Some(1)
    }));
    assert_eq!(h.calls(), 0);
    let ended = h.ep.poll_ended_call().unwrap();
    assert_eq!((ended.row, ended.outcome), (Some(11), "answered"));
    assert!(ended.answered_at.is_some());
    // Both BYEs are outstanding until answered; then nothing is.
    assert_eq!(h.ep.b2bua().unwrap().requests_outstanding(), 2);
    for (to, bye) in [
        (SEAT1, only(&out, SEAT1)[0].clone()),
        (CARRIER, only(&out, CARRIER)[0].clone()),
    ] {
        let ok = wire::response(&bye, 200, "OK", None, &[], None).unwrap();
        h.feed_msg(to, &ok);
    }
    assert_eq!(h.ep.b2bua().unwrap().requests_outstanding(), 0);
    assert_eq!(h.ep.hang_up(h.now, call), Err(HangupError::NotFound));
}

#[test]
fn admin_hangup_while_ringing_cancels_the_seat_and_records_failed() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "h2");
    h.feed_msg(SEAT1, &seat_reply(&inv, 180, "s1", None));
    assert_eq!(h.ep.acd_snapshot(h.now).seats[0].state.name(), "ringing");
    h.take_effects();
    h.ep.hang_up(h.now, 0).unwrap();
    let out = h.drain();
    assert_eq!(
        statuses(
            &only(&out, CARRIER)
                .into_iter()
                .map(|m| (addr(CARRIER), m.clone()))
                .collect::<Vec<_>>()
        ),
        [480]
    );
    assert_eq!(only(&out, SEAT1)[0].method(), Some(&SipMethod::Cancel));
    assert!(h.take_effects().iter().any(|e| matches!(
        e,
        CallEffect::Finished {
            outcome: "failed",
            ..
        }
    )));
}

#[test]
fn admin_hangup_waits_for_admission() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    h.feed(CARRIER, &invite("h3", "1", "", OFFER));
    assert_eq!(h.ep.hang_up(h.now, 0), Err(HangupError::Admitting));
    assert_eq!(
        h.ep.b2bua().unwrap().live_calls(h.now)[0].state,
        "admitting"
    );
}

#[test]
fn draining_refuses_new_calls_with_503_and_keeps_calls_in_progress() {
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "d1");
    h.ep.b2bua_mut().unwrap().set_draining(true);
    h.take_effects();
    let out = h.feed(CARRIER, &invite("d2", "2", "", OFFER));
    assert_eq!(statuses(&out), [503]);
    assert_eq!(
        out[0].1.header("Retry-After"),
        Some(DRAIN_RETRY_AFTER_SECS.to_string().as_str())
    );
    assert!(h.take_effects().is_empty(), "no admission, nothing counted");
    // Strangers still get 403 first.
    let out = h.feed("203.0.113.9:5060", &invite("d3", "3", "", OFFER));
    assert_eq!(statuses(&out), [403]);
    // The call in progress is answered as usual.
    let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
    assert_eq!(only(&out, CARRIER)[0].status(), Some(200));
    assert_eq!(h.ep.b2bua().unwrap().stats().refused_draining, 1);
    // Grace over: every call is hung up.
    assert_eq!(h.ep.hang_up_all(h.now), 0);
}

#[test]
fn options_from_a_trunk_is_remembered_and_trunks_reload() {
    let mut h = H::new(vec![]);
    let opts = "OPTIONS sip:desk@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKo1\r\n\
        Max-Forwards: 70\r\nTo: <sip:desk@192.0.2.1>\r\nFrom: <sip:c@192.0.2.10>;tag=o\r\n\
        Call-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    h.feed(CARRIER, opts);
    h.now += Duration::from_secs(7);
    let out = h.feed(CARRIER, &invite("r9", "4", "", OFFER));
    assert_eq!(statuses(&out), [100], "admitted under the first trunk list");
    let seen = h.ep.b2bua().unwrap().trunks_seen(h.now);
    assert_eq!(seen[0].0.name, "carrier-a");
    assert_eq!(seen[0].1, Some(Duration::from_secs(7)));
    let mut t = seen[0].0.clone();
    t.sources = vec!["198.18.0.0/24".parse().unwrap()];
    h.ep.b2bua_mut().unwrap().set_trunks(vec![t]);
    let out = h.feed(CARRIER, &invite("r10", "5", "", OFFER));
    assert_eq!(
        statuses(&out),
        [403],
        "the old trunk address is refused now"
    );
    assert_eq!(h.ep.counters().inbound.requests[0], 2, "two INVITEs in");
}

/// A late offer (no SDP) with no seat logged in is refused 480 before any media starts: its
/// RTP ports go back at once (no relay will report them stopped), so such calls never
/// exhaust the port range (found by the flood test: 503s after 25 calls).
#[test]
fn refused_late_offers_do_not_leak_rtp_ports() {
    let mut h = H::new(vec![]);
    // 100 ports = 25 calls' worth (two legs, RTP+RTCP); 60 calls in a row.
    for i in 0..60u32 {
        let cid = format!("late{i}");
        let out = h.feed(CARRIER, &invite(&cid, &i.to_string(), "", ""));
        assert_eq!(statuses(&out), [100], "call {i}");
        let admit = h.take_effects();
        let [CallEffect::Admit { call, .. }] = admit.as_slice() else {
            panic!("{admit:?}")
        };
        let out = h.admit(*call, route(100 + i64::from(i)));
        assert_eq!(statuses(&out).last(), Some(&480), "call {i}: {out:?}");
        h.take_effects();
    }
}

#[test]
fn relay_that_failed_to_start_gives_its_ports_back() {
    // Found by bench/soak.sh: the relay could not bind its ports (another process held one);
    // the edge reports Failed and at once Stopped, before the call is gone, so the ports
    // waited for a second Stopped that never comes: leaked for good.
    for seat_answers in [false, true] {
        let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
        let inv = ring(&mut h, "f1");
        assert!(h.ep.b2bua().unwrap().stats().rtp_ports_in_use > 0);
        h.feed_msg(SEAT1, &seat_reply(&inv, 180, "s1", None));
        h.ep.handle_media(h.now, 0, MediaNotice::Failed);
        h.ep.handle_media(h.now, 0, MediaNotice::Stopped);
        let out = h.drain();
        assert!(statuses(&out).contains(&500), "{out:?}");
        let cancel = only(&out, SEAT1)[0].clone();
        assert_eq!(cancel.method(), Some(&SipMethod::Cancel));
        h.feed_msg(
            SEAT1,
            &wire::response(&cancel, 200, "OK", Some("s1"), &[], None).unwrap(),
        );
        if seat_answers {
            // The seat's 200 crossed the CANCEL: ACK and BYE, and its 200 for the BYE.
            let out = h.feed_msg(SEAT1, &seat_reply(&inv, 200, "s1", Some(SEAT_ANSWER)));
            let bye = only(&out, SEAT1)
                .into_iter()
                .find(|m| m.method() == Some(&SipMethod::Bye))
                .expect("BYE to the seat")
                .clone();
            h.feed_msg(
                SEAT1,
                &wire::response(&bye, 200, "OK", None, &[], None).unwrap(),
            );
        } else {
            h.feed_msg(SEAT1, &seat_reply(&inv, 487, "s1", None));
        }
        h.advance(Duration::from_secs(40));
        let stats = h.ep.b2bua().unwrap().stats();
        assert_eq!(
            (stats.calls, stats.rtp_ports_in_use),
            (0, 0),
            "answers: {seat_answers}"
        );
    }
}

#[test]
fn a_seat_silent_after_its_180_and_our_cancel_is_given_up_after_64_t1() {
    // Found by bench/soak.sh: the seat's phone sent 180 and then nothing, not even an answer
    // to our CANCEL; the call stayed `ending` and the seat `ringing` until its registration
    // expired.
    let mut h = H::new(vec![seat(1, "op1", SEAT1)]);
    let inv = ring(&mut h, "s9");
    h.feed_msg(SEAT1, &seat_reply(&inv, 180, "s1", None));
    let cancel = invite("s9", "1", "", "")
        .replace("INVITE sip", "CANCEL sip")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let out = h.feed(CARRIER, &cancel);
    assert_eq!(only(&out, SEAT1)[0].method(), Some(&SipMethod::Cancel));
    h.advance(Duration::from_secs(20));
    assert_eq!(h.calls(), 1, "still waiting within 64·T1");
    h.advance(Duration::from_secs(20));
    assert_eq!(h.calls(), 0, "given up after 64·T1");
    let seats = h.ep.acd_snapshot(h.now).seats;
    assert_ne!(seats[0].state.name(), "ringing");
}
