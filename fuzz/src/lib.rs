//! Oracles shared by the fuzz targets.

use smartdesk::sip::message::{parse_datagram, Message, MessageError};

/// Checks that a message we built from a parsed message parses again: what we originate must
/// be valid SIP.
pub fn assert_sendable(bytes: &[u8]) -> Message {
    parse_datagram(bytes).unwrap_or_else(|e| panic_unparseable(bytes, &e))
}

/// Checks a stateless error answer to bytes that did not parse (`stateless_error_response`).
///
/// RFC 3261 §8.2.6.2 makes the answer copy From, To, Call-ID, CSeq and the Vias of the request
/// as they were, so it is only as well-formed as they were: the 400 to baddn.dat repeats its
/// unquoted display names, the 400 to insuf.dat lacks the Call-ID, From and To it lacked
/// (RFC 4475 §3.1.2.14, §3.1.2.16). What the answer must never do is break framing or inject
/// anything: one status line, whole header lines without control characters, one empty line,
/// no body. Header-level defects copied from the request are accepted; everything else fails.
pub fn assert_stateless_answer(bytes: &[u8]) {
    let fail = |why: &str| -> ! {
        panic!(
            "stateless answer {why}: {:?}",
            String::from_utf8_lossy(bytes)
        )
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        fail("is not UTF-8")
    };
    let Some(head) = text.strip_suffix("\r\nContent-Length: 0\r\n\r\n") else {
        fail("does not end with Content-Length: 0 and the empty line")
    };
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code_ok = status
        .strip_prefix("SIP/2.0 ")
        .and_then(|s| s.get(..4))
        .is_some_and(|c| c.as_bytes()[..3].iter().all(u8::is_ascii_digit) && c.ends_with(' '));
    if !code_ok {
        fail("has no valid status line");
    }
    for line in lines {
        let Some((name, _)) = line.split_once(": ") else {
            fail("has a line that is not a header")
        };
        // ASCII controls only: UTF-8 C1 "controls" are UTF8-NONASCII, legal in TEXT-UTF8char.
        let control = |b: u8| (b < 0x20 && b != b'\t') || b == 0x7f;
        if name.is_empty() || line.bytes().any(control) {
            fail("has a malformed header line");
        }
    }
    match parse_datagram(bytes) {
        Ok(m) => assert!(m.is_response()),
        Err(MessageError::InvalidResponse(inner)) => match *inner {
            MessageError::MissingHeader(_)
            | MessageError::BadHeader { .. }
            | MessageError::DuplicateHeader(_)
            | MessageError::TooManyVias { .. } => {}
            other => panic_unparseable(bytes, &other),
        },
        Err(e) => panic_unparseable(bytes, &e),
    }
}

fn panic_unparseable(bytes: &[u8], e: &MessageError) -> ! {
    panic!(
        "we would send unparseable SIP ({e}): {:?}",
        String::from_utf8_lossy(bytes)
    )
}
