//! The checks a UAS makes before any dialog logic (RFC 3261 §8.2.1–§8.2.3, §10.3), in the
//! order the RFC lists them, so the first failing one decides the answer.

use super::fields::list_elements;
use super::normalise::trim_wsp;
use super::{Message, Method};

/// Why a well-formed request is refused, and the extra headers the answer must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    fn new(status: u16, reason: &str) -> Self {
        Self {
            status,
            reason: reason.to_owned(),
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_owned(), value));
        self
    }

    /// The response to send (RFC 3261 §8.2.6); `to_tag` comes from the caller's tag source.
    /// Extra headers that fail validation are left out rather than sent malformed.
    pub fn to_response(&self, request: &Message, to_tag: &str) -> Message {
        let mut response =
            Message::response_to(request, self.status, &self.reason).with_to_tag(to_tag);
        for (name, value) in &self.headers {
            if let Ok(r) = response.clone().with_header(name, value) {
                response = r;
            }
        }
        response
    }
}

/// Runs the RFC 3261 §8.2 UAS checks on a request; `None` means "go on and process it".
///
/// * 405/501 + Allow: method not in `allowed_methods` (§8.2.1; 501 for methods we do not even
///   recognise: intmeth.dat, esc02.dat).
/// * 416: Request-URI scheme other than sip/sips (§8.2.2.1; unkscm.dat, novelsc.dat).
/// * 400: REGISTER whose To is not a sip/sips AOR (§10.3 step 5; unksm2.dat).
/// * 420 + Unsupported: Require tags not in `supported_extensions` (§8.2.2.3; bext01.dat).
///   Proxy-Require is for proxies and is ignored here.
/// * 415 + Accept: INVITE body other than SDP (§8.2.3; invut.dat); multipart/mixed is fine
///   when one part is SDP.
/// * 406: INVITE whose Accept excludes application/sdp (§8.2.3 / §21.4.7; sdp01.dat).
///
/// ACK is never answered (§17.2.1) and responses are not requests: both give `None`.
/// Max-Forwards 0 is left to the caller ([`Message::is_zero_max_forwards`]).
pub fn uas_precheck(
    msg: &Message,
    supported_extensions: &[&str],
    allowed_methods: &[&str],
) -> Option<Rejection> {
    let method = msg.method()?;
    if *method == Method::Ack {
        return None;
    }
    if !allowed_methods.iter().any(|m| *m == method.as_str()) {
        let (status, reason) = if method.is_extension() {
            (501, "Not Implemented")
        } else {
            (405, "Method Not Allowed")
        };
        return Some(Rejection::new(status, reason).with("Allow", allowed_methods.join(", ")));
    }
    if !msg.request_uri_scheme().is_some_and(is_sip_scheme) {
        return Some(Rejection::new(416, "Unsupported URI Scheme"));
    }
    if *method == Method::Register && !super::uri_scheme(&msg.to().uri).is_some_and(is_sip_scheme) {
        return Some(Rejection::new(400, "Bad Request (To is not a SIP AOR)"));
    }
    if *method != Method::Cancel {
        let unsupported: Vec<&str> = msg
            .headers("Require")
            .flat_map(|v| v.split(','))
            .map(trim_wsp)
            .filter(|t| !t.is_empty())
            .filter(|t| {
                !supported_extensions
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(t))
            })
            .collect();
        if !unsupported.is_empty() {
            return Some(
                Rejection::new(420, "Bad Extension").with("Unsupported", unsupported.join(", ")),
            );
        }
    }
    if *method == Method::Invite {
        if let Some(rejection) = check_invite_body(msg) {
            return Some(rejection);
        }
        if !accepts_sdp(msg) {
            return Some(Rejection::new(406, "Not Acceptable"));
        }
    }
    None
}

fn is_sip_scheme(s: &str) -> bool {
    s.eq_ignore_ascii_case("sip") || s.eq_ignore_ascii_case("sips")
}

fn check_invite_body(msg: &Message) -> Option<Rejection> {
    if msg.body().is_empty() {
        return None;
    }
    let unsupported = || {
        Rejection::new(415, "Unsupported Media Type").with("Accept", "application/sdp".to_owned())
    };
    // RFC 3261 §8.2.3: an unknown Content-Encoding is a 415 listing what we take.
    if let Some(enc) = msg.header("Content-Encoding") {
        if !trim_wsp(enc).eq_ignore_ascii_case("identity") {
            return Some(unsupported().with("Accept-Encoding", "identity".to_owned()));
        }
    }
    let Some(ct) = msg.content_type() else {
        // RFC 3261 §7.4.1: a non-empty body MUST have a Content-Type.
        return Some(Rejection::new(
            400,
            "Bad Request (body without Content-Type)",
        ));
    };
    if ct.eq_ignore_ascii_case("application/sdp") {
        return None;
    }
    if ct.eq_ignore_ascii_case("multipart/mixed") && multipart_has_sdp(msg) {
        return None;
    }
    Some(unsupported())
}

/// True when a multipart/mixed body (RFC 2046 §5.1) has an application/sdp part.
fn multipart_has_sdp(msg: &Message) -> bool {
    let Some(boundary) = msg.header("Content-Type").and_then(boundary_param) else {
        return false;
    };
    let delimiter = format!("--{boundary}");
    let body = msg.body();
    let mut rest = body;
    while let Some(i) = super::normalise::find(rest, delimiter.as_bytes()) {
        rest = rest.get(i + delimiter.len()..).unwrap_or_default();
        let part_head_end = super::normalise::find(rest, b"\r\n\r\n").unwrap_or(rest.len());
        let part_head = rest.get(..part_head_end).unwrap_or_default();
        let is_sdp = super::normalise::physical_lines(part_head).any(|line| {
            let line = String::from_utf8_lossy(line);
            line.split_once(':').is_some_and(|(n, v)| {
                trim_wsp(n).eq_ignore_ascii_case("Content-Type")
                    && trim_wsp(v.split(';').next().unwrap_or_default())
                        .eq_ignore_ascii_case("application/sdp")
            })
        });
        if is_sdp {
            return true;
        }
    }
    false
}

fn boundary_param(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=')?;
        trim_wsp(n)
            .eq_ignore_ascii_case("boundary")
            .then(|| trim_wsp(v).trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

/// No Accept means application/sdp (RFC 3261 §20.1); otherwise some range with q > 0 must
/// cover it.
fn accepts_sdp(msg: &Message) -> bool {
    let mut any = false;
    for value in msg.headers("Accept") {
        any = true;
        let Ok(ranges) = list_elements("Accept", value) else {
            continue;
        };
        for range in ranges {
            let mut parts = range.split(';');
            let media = trim_wsp(parts.next().unwrap_or_default());
            let q_zero = parts.any(|p| {
                p.split_once('=').is_some_and(|(n, v)| {
                    trim_wsp(n).eq_ignore_ascii_case("q")
                        && trim_wsp(v).parse::<f32>().is_ok_and(|q| q <= 0.0)
                })
            });
            let covers = ["application/sdp", "application/*", "*/*"]
                .iter()
                .any(|m| media.eq_ignore_ascii_case(m));
            if covers && !q_zero {
                return true;
            }
        }
    }
    !any
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::parse_datagram;

    const ALLOWED: &[&str] = &["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"];

    fn req(method: &str, extra: &str, body: &str) -> Message {
        let raw = format!(
            "{method} sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n\
             From: <sip:c@d>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n{extra}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        parse_datagram(raw.as_bytes()).unwrap()
    }

    #[test]
    fn method_checks() {
        let r = uas_precheck(&req("FOO", "", ""), &[], ALLOWED).unwrap();
        assert_eq!(r.status, 501);
        assert_eq!(
            r.headers,
            vec![("Allow".into(), "INVITE, ACK, BYE, CANCEL, OPTIONS".into())]
        );
        assert_eq!(
            uas_precheck(&req("SUBSCRIBE", "", ""), &[], ALLOWED)
                .unwrap()
                .status,
            405
        );
        assert_eq!(
            uas_precheck(&req("ACK", "Require: foo\r\n", ""), &[], &[]),
            None
        );
    }

    #[test]
    fn require_and_cancel() {
        let r = uas_precheck(
            &req("OPTIONS", "Require: 100rel, foo\r\n", ""),
            &["100rel"],
            ALLOWED,
        )
        .unwrap();
        assert_eq!(r.status, 420);
        assert_eq!(r.headers, vec![("Unsupported".into(), "foo".into())]);
        assert_eq!(
            uas_precheck(&req("CANCEL", "Require: foo\r\n", ""), &[], ALLOWED),
            None
        );
    }

    #[test]
    fn invite_bodies_and_accept() {
        let sdp = "v=0\r\n";
        assert_eq!(
            uas_precheck(
                &req("INVITE", "Content-Type: application/SDP\r\n", sdp),
                &[],
                ALLOWED
            ),
            None
        );
        let r = uas_precheck(
            &req("INVITE", "Content-Type: text/plain\r\n", sdp),
            &[],
            ALLOWED,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.headers[0].1.as_str()),
            (415, "application/sdp")
        );
        assert_eq!(
            uas_precheck(&req("INVITE", "", sdp), &[], ALLOWED)
                .unwrap()
                .status,
            400
        );
        let enc = "Content-Type: application/sdp\r\nContent-Encoding: gzip\r\n";
        assert_eq!(
            uas_precheck(&req("INVITE", enc, sdp), &[], ALLOWED)
                .unwrap()
                .status,
            415
        );
        let mp = "--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b1--\r\n";
        let ct = "Content-Type: multipart/mixed;boundary=\"b1\"\r\n";
        assert_eq!(uas_precheck(&req("INVITE", ct, mp), &[], ALLOWED), None);
        let mp_no_sdp = mp.replace("application/sdp", "text/html");
        assert_eq!(
            uas_precheck(&req("INVITE", ct, &mp_no_sdp), &[], ALLOWED)
                .unwrap()
                .status,
            415
        );
        let acc = |a: &str| {
            uas_precheck(
                &req("INVITE", &format!("Accept: {a}\r\n"), ""),
                &[],
                ALLOWED,
            )
        };
        assert_eq!(acc("text/plain, application/sdp;level=1"), None);
        assert_eq!(acc("*/*"), None);
        assert_eq!(acc("application/sdp;q=0.0").unwrap().status, 406);
        assert_eq!(acc("text/nobodyKnowsThis").unwrap().status, 406);
    }

    #[test]
    fn rejection_becomes_a_response() {
        let request = req("FOO", "", "");
        let rejection = uas_precheck(&request, &[], ALLOWED).unwrap();
        let response = rejection.to_response(&request, "tt");
        let wire = parse_datagram(&response.to_bytes()).unwrap();
        assert_eq!(wire.status(), Some(501));
        assert_eq!(wire.to_tag(), Some("tt"));
        assert_eq!(
            wire.header("Allow"),
            Some("INVITE, ACK, BYE, CANCEL, OPTIONS")
        );
        assert_eq!(wire.cseq_method(), &Method::Extension("FOO".into()));
    }
}
