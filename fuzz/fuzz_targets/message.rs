//! One UDP datagram through the message layer: `parse_datagram`, every accessor, the rsip view,
//! serialisation, the response builders, `with_received`, and the stateless error answer for
//! what fails to parse.
//!
//! Oracles beyond "no panic": whatever we build from a parsed message (its own serialisation,
//! a response, a received-stamped copy, a stateless error answer) must itself parse, because
//! that is what we put on the wire.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use smartdesk::sip::message::{
    parse_datagram, stateless_error_response, uas_precheck, Message, MAX_MESSAGE_SIZE,
};
use smartdesk_fuzz::assert_stateless_answer;

const SOURCES: [&str; 4] = [
    "192.0.2.7:40000",
    "[2001:db8::1]:5070",
    "127.0.0.1:5060",
    "[::ffff:192.0.2.9]:1",
];

fuzz_target!(|data: &[u8]| {
    // The edge reads at most one 64 KiB datagram.
    if data.len() > 65_535 {
        return;
    }
    match parse_datagram(data) {
        Ok(m) => exercise(&m, data),
        Err(e) => {
            let _ = e.status();
            let _ = e.to_string();
            if let Some(answer) = stateless_error_response(data, &e, "fz1") {
                assert!(answer.len() <= 2 * MAX_MESSAGE_SIZE, "bounded answer");
                assert_stateless_answer(&answer);
            }
        }
    }
});

fn exercise(m: &Message, data: &[u8]) {
    touch_accessors(m);
    let _ = m.as_rsip();

    let bytes = m.to_bytes();
    let again = parse_datagram(&bytes)
        .unwrap_or_else(|e| panic!("own serialisation does not parse ({e}): {bytes:?}"));
    assert_eq!(&again, m, "serialisation round trip");

    if m.is_request() {
        let _ = uas_precheck(m, &[], &["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"]);
        // The source varies with the input so every kind of Via meets every kind of address.
        let src: SocketAddr = SOURCES[data.len() % SOURCES.len()].parse().unwrap();
        if let Ok(stamped) = m.clone().with_received(src) {
            touch_accessors(&stamped);
            let bytes = stamped.to_bytes();
            let back = parse_datagram(&bytes)
                .unwrap_or_else(|e| panic!("stamped message does not parse ({e}): {bytes:?}"));
            assert_eq!(back, stamped);
            // Re-stamping a stamped message is allowed to change nothing or re-stamp; not panic.
            let _ = stamped.with_received(src);
        }
        let code = 100 + (data.len() % 600) as u16;
        let r = Message::response_to(m, code, "Fuzz\r\nReason").with_to_tag("fz2");
        let bytes = r.to_bytes();
        let back = parse_datagram(&bytes)
            .unwrap_or_else(|e| panic!("response does not parse ({e}): {bytes:?}"));
        assert_eq!(back, r);
        let _ = r.with_header("X-Fuzz", "1");
    } else {
        let _ = m.clone().with_received("192.0.2.1:1".parse().unwrap());
    }
    let _ = m
        .clone()
        .with_body("application/sdp", bytes::Bytes::from_static(b"v=0\r\n"));
}

fn touch_accessors(m: &Message) {
    let _ = (m.is_request(), m.is_response(), m.method(), m.cseq_method());
    let _ = (m.cseq(), m.status(), m.reason(), m.call_id());
    let _ = (m.from_tag(), m.to_tag(), m.from().param("x"), m.to().tag());
    let top = m.top_via();
    let _ = (top.transport(), top.host(), top.port(), top.branch());
    let _ = (top.received(), top.has_rport(), top.rport(), top.params());
    assert!(!m.vias().is_empty());
    assert_eq!(m.via_count(), m.vias().len());
    let _ = (m.max_forwards(), m.is_zero_max_forwards());
    let _ = (m.request_uri(), m.request_uri_scheme());
    let _ = (m.header("i"), m.header("Contact"), m.headers("Via").count());
    let _ = m.header_fields().count();
    let _ = (m.body().len(), m.body_bytes(), m.content_type());
}
