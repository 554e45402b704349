//! Building the messages the B2BUA originates: responses with headers and bodies, and
//! requests inside or outside a dialog (RFC 3261 §8.1.1, §12.2.1.1).
//!
//! Messages are assembled from their parts with [`Message::from_parts`], which validates
//! them like received input, so everything we send passed the same validation as everything
//! we receive; a value that would make an invalid message (a CR/LF smuggled in through a
//! header we copy) yields `None` instead of a malformed packet.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::sip::message::Message;

/// Our branch prefix: RFC 3261 magic cookie plus a marker that lets us spot our own
/// requests coming back to us (loop detection, §16.3 item 4 by analogy).
pub const BRANCH_PREFIX: &str = "z9hG4bK-sd";

/// A response to `req`: the §8.2.6 copied headers, our To tag (if `to_tag` is given and
/// the request's To has none), `extra` headers, and an optional SDP body.
pub fn response(
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, &str)],
    sdp: Option<&[u8]>,
) -> Option<Message> {
    let mut base = Message::response_to(req, code, reason);
    if let Some(tag) = to_tag {
        base = base.with_to_tag(tag);
    }
    if extra.is_empty() && sdp.is_none() {
        return Some(base);
    }
    let body = sdp.map(|b| ("application/sdp", Bytes::copy_from_slice(b)));
    base.with_fields(extra, body).ok()
}

/// Everything a request line and its dialog headers need.
#[derive(Debug, Clone)]
pub struct RequestSpec<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    /// "UDP" or "TCP".
    pub transport: &'a str,
    pub local: SocketAddr,
    pub branch: &'a str,
    /// Full From value, tag included.
    pub from: &'a str,
    /// Full To value (with the remote tag once the dialog has one).
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub routes: &'a [String],
    pub max_forwards: u8,
    pub contact: Option<&'a str>,
    pub extra: &'a [(&'a str, &'a str)],
    pub sdp: Option<&'a [u8]>,
}

/// Builds a request; `cseq_method` differs from `method` only for CANCEL/ACK building that
/// reuses an INVITE's number (the method is the same string there too).
pub fn request(s: &RequestSpec<'_>) -> Option<Message> {
    let start = format!("{} {} SIP/2.0", s.method, s.uri);
    let via = format!(
        "SIP/2.0/{} {};branch={};rport",
        s.transport,
        host_port(s.local),
        s.branch
    );
    let max_forwards = s.max_forwards.to_string();
    let cseq = format!("{} {}", s.cseq, s.method);
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(8 + s.routes.len() + s.extra.len());
    headers.extend([
        ("Via", via.as_str()),
        ("Max-Forwards", max_forwards.as_str()),
        ("From", s.from),
        ("To", s.to),
        ("Call-ID", s.call_id),
        ("CSeq", cseq.as_str()),
    ]);
    headers.extend(s.routes.iter().map(|r| ("Route", r.as_str())));
    if let Some(c) = s.contact {
        headers.push(("Contact", c));
    }
    headers.extend_from_slice(s.extra);
    let body = match s.sdp {
        Some(body) => {
            headers.push(("Content-Type", "application/sdp"));
            Bytes::copy_from_slice(body)
        }
        None => Bytes::new(),
    };
    Message::from_parts(&start, &headers, body).ok()
}

/// `ip:port` with IPv6 bracketed, as Via sent-by and URIs need.
pub fn host_port(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// Our Contact for a leg.
pub fn contact(local: SocketAddr, transport: &str) -> String {
    if transport == "TCP" {
        format!("<sip:smartdesk@{};transport=tcp>", host_port(local))
    } else {
        format!("<sip:smartdesk@{}>", host_port(local))
    }
}

/// Quotes a display name (RFC 3261 §25.1 quoted-string): backslash-escapes `"` and `\`,
/// drops control characters.
pub fn quote_display(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The URI inside a name-addr (`"x" <sip:a@b>;p` → `sip:a@b`), or the addr-spec itself.
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(l), Some(r)) if l < r => value.get(l + 1..r).unwrap_or(value).trim(),
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The user part of a SIP/tel URI (`sip:+81312345678@h;user=phone` → `+81312345678`,
/// `tel:0312345678` → `0312345678`), with URI parameters and percent-escapes of visual
/// separators left as they are (the number parser ignores `-`).
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("SIP:"));
    match rest {
        Some(r) => {
            let user = r.split('@').next()?;
            if !r.contains('@') {
                return None;
            }
            Some(user.split(';').next().unwrap_or(user))
        }
        None => {
            let tel = uri
                .strip_prefix("tel:")
                .or_else(|| uri.strip_prefix("TEL:"))?;
            Some(tel.split(';').next().unwrap_or(tel))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::parse_datagram;

    const INVITE: &str = "INVITE sip:0312345678@192.0.2.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKa1\r\n\
        Max-Forwards: 70\r\nTo: <sip:0312345678@192.0.2.1>\r\n\
        From: <sip:0901234567@192.0.2.9>;tag=c1\r\nCall-ID: a@b\r\n\
        CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn response_with_headers_and_body_parses() {
        let req = parse_datagram(INVITE.as_bytes()).unwrap();
        let sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let r = response(
            &req,
            200,
            "OK",
            Some("t1"),
            &[("Contact", "<sip:smartdesk@192.0.2.1:5060>")],
            Some(sdp),
        )
        .unwrap();
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.to_tag(), Some("t1"));
        assert_eq!(r.body(), sdp);
        assert_eq!(r.content_type(), Some("application/sdp"));
        assert_eq!(r.header("Contact"), Some("<sip:smartdesk@192.0.2.1:5060>"));
    }

    #[test]
    fn request_with_utf8_display_and_injection_refused() {
        let local: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let from = format!(
            "{} <sip:0901234567@192.0.2.1>;tag=x",
            quote_display("【株式会社ABC】0901234567")
        );
        let spec = RequestSpec {
            method: "INVITE",
            uri: "sip:op1@192.0.2.50:5062",
            transport: "UDP",
            local,
            branch: "z9hG4bK-sd1",
            from: &from,
            to: "<sip:op1@smartdesk>",
            call_id: "c1@192.0.2.1",
            cseq: 1,
            routes: &[],
            max_forwards: 69,
            contact: Some("<sip:smartdesk@192.0.2.1:5060>"),
            extra: &[("X-Smartdesk-Greeting", "お電話ありがとうございます")],
            sdp: None,
        };
        let m = request(&spec).unwrap();
        assert_eq!(
            m.from().display.as_deref().map(|d| d.trim_matches('"')),
            Some("【株式会社ABC】0901234567")
        );
        assert_eq!(m.max_forwards(), Some(69));
        let evil = RequestSpec {
            extra: &[("X-Smartdesk-Greeting", "a\r\nBYE sip:x SIP/2.0")],
            ..spec
        };
        assert!(request(&evil).is_none());
    }

    /// Built from parts, a message is exactly what parsing its text gives (the way these
    /// were built before: written out, then parsed back).
    #[test]
    fn built_messages_equal_their_parsed_text() {
        let local: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";
        let routes = vec!["<sip:192.0.2.7;lr>".to_owned()];
        let spec = RequestSpec {
            method: "INVITE",
            uri: "sip:op1@192.0.2.50:5062",
            transport: "UDP",
            local,
            branch: "z9hG4bK-sd1",
            from: "\"A\" <sip:0901234567@192.0.2.1>;tag=x",
            to: "<sip:op1@smartdesk>",
            call_id: "c1@192.0.2.1",
            cseq: 7,
            routes: &routes,
            max_forwards: 69,
            contact: Some("<sip:smartdesk@192.0.2.1:5060>"),
            extra: &[("X-Smartdesk-Call", "11")],
            sdp: Some(sdp),
        };
        let built = request(&spec).unwrap();
        let mut text = "INVITE sip:op1@192.0.2.50:5062 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-sd1;rport\r\nMax-Forwards: 69\r\n\
            From: \"A\" <sip:0901234567@192.0.2.1>;tag=x\r\nTo: <sip:op1@smartdesk>\r\n\
            Call-ID: c1@192.0.2.1\r\nCSeq: 7 INVITE\r\nRoute: <sip:192.0.2.7;lr>\r\n\
            Contact: <sip:smartdesk@192.0.2.1:5060>\r\nX-Smartdesk-Call: 11\r\n\
            Content-Type: application/sdp\r\n"
            .to_owned();
        text.push_str(&format!("Content-Length: {}\r\n\r\n", sdp.len()));
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(sdp);
        assert_eq!(built, parse_datagram(&bytes).unwrap());
        assert_eq!(built.to_bytes().as_ref(), bytes.as_slice());

        let req = parse_datagram(INVITE.as_bytes()).unwrap();
        let contact = [("Contact", "<sip:smartdesk@192.0.2.1:5060>")];
        let r = response(&req, 200, "OK", Some("t1"), &contact, Some(sdp)).unwrap();
        assert_eq!(r, parse_datagram(&r.to_bytes()).unwrap());
        assert_eq!(r.header("Contact"), Some("<sip:smartdesk@192.0.2.1:5060>"));
        // Limits and injection, as for received input.
        let long = "a".repeat(crate::sip::message::MAX_HEADER_LINE);
        assert!(response(&req, 200, "OK", None, &[("X-Long", &long)], None).is_none());
        assert!(response(&req, 200, "OK", None, &[("X-A", "1\r\nX-B: 2")], None).is_none());
        assert!(response(&req, 200, "OK", None, &[("X A", "1")], None).is_none());
        let evil_uri = RequestSpec {
            uri: "sip:a@b SIP/2.0\r\nX: y",
            ..spec
        };
        assert!(request(&evil_uri).is_none());
    }

    #[test]
    fn uri_helpers() {
        assert_eq!(
            uri_of("\"A\" <sip:a@b;transport=tcp>;tag=1"),
            "sip:a@b;transport=tcp"
        );
        assert_eq!(uri_of("sip:a@b;tag=1"), "sip:a@b");
        assert_eq!(
            uri_user("sip:+81312345678@h;user=phone"),
            Some("+81312345678")
        );
        assert_eq!(uri_user("sip:0312345678;isub=1@h"), Some("0312345678"));
        assert_eq!(
            uri_user("tel:03-1234-5678;phone-context=x"),
            Some("03-1234-5678")
        );
        assert_eq!(uri_user("sip:h.example"), None);
        assert_eq!(quote_display("a\"b\\c\r\n"), "\"a\\\"b\\\\c\"");
    }
}
