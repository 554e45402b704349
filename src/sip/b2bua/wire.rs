//! Building the messages the B2BUA originates: responses with headers and bodies, and
//! requests inside or outside a dialog (RFC 3261 §8.1.1, §12.2.1.1).
//!
//! Messages are written as text and parsed back with [`parse_datagram`], so everything we
//! send passed the same validation as everything we receive; a value that would make an
//! invalid message (a CR/LF smuggled in through a header we copy) yields `None` instead of
//! a malformed packet.

use std::net::SocketAddr;

use crate::sip::message::{parse_datagram, Message};

/// Our branch prefix: RFC 3261 magic cookie plus a marker that lets us spot our own
/// requests coming back to us (loop detection, §16.3 item 4 by analogy).
pub const BRANCH_PREFIX: &str = "z9hG4bK-sd";

/// Writes `name: value` lines.
fn push_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

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
    // `to_bytes` ends with "Content-Length: 0\r\n\r\n"; replace that tail.
    let bytes = base.to_bytes();
    let text = std::str::from_utf8(&bytes).ok()?;
    let head = text.strip_suffix("Content-Length: 0\r\n\r\n")?;
    let mut out = String::with_capacity(head.len() + 256);
    out.push_str(head);
    for (n, v) in extra {
        push_header(&mut out, n, v);
    }
    finish(out, sdp)
}

fn finish(mut out: String, sdp: Option<&[u8]>) -> Option<Message> {
    let mut bytes = match sdp {
        Some(body) => {
            push_header(&mut out, "Content-Type", "application/sdp");
            push_header(&mut out, "Content-Length", &body.len().to_string());
            out.push_str("\r\n");
            let mut b = out.into_bytes();
            b.extend_from_slice(body);
            b
        }
        None => {
            out.push_str("Content-Length: 0\r\n\r\n");
            out.into_bytes()
        }
    };
    bytes.shrink_to_fit();
    parse_datagram(&bytes).ok()
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
    let mut out = String::with_capacity(512);
    out.push_str(s.method);
    out.push(' ');
    out.push_str(s.uri);
    out.push_str(" SIP/2.0\r\n");
    push_header(
        &mut out,
        "Via",
        &format!(
            "SIP/2.0/{} {};branch={};rport",
            s.transport,
            host_port(s.local),
            s.branch
        ),
    );
    push_header(&mut out, "Max-Forwards", &s.max_forwards.to_string());
    push_header(&mut out, "From", s.from);
    push_header(&mut out, "To", s.to);
    push_header(&mut out, "Call-ID", s.call_id);
    push_header(&mut out, "CSeq", &format!("{} {}", s.cseq, s.method));
    for r in s.routes {
        push_header(&mut out, "Route", r);
    }
    if let Some(c) = s.contact {
        push_header(&mut out, "Contact", c);
    }
    for (n, v) in s.extra {
        push_header(&mut out, n, v);
    }
    finish(out, s.sdp)
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
