//! Start lines (RFC 3261 §7.1, §7.2), parsed here rather than by rsip because rsip's `Method` is a
//! closed enum matched case-insensitively (so `invite` would become INVITE and `NEWMETHOD` could
//! not be represented at all) and its version parser ignores the minor number.

use std::fmt;

use super::error::MessageError;
use super::normalise::is_token;

/// A request method. Methods are case-sensitive tokens (RFC 3261 §7.1); anything outside
/// the methods we know stays representable as [`Method::Extension`] so it can be answered 501
/// (intmeth.dat, esc02.dat: `RE%47IST%45R` is *not* REGISTER).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Prack,
    Update,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Extension(String),
}

impl Method {
    /// Parses a method token; `None` when `s` is not a token.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "REGISTER" => Self::Register,
            "OPTIONS" => Self::Options,
            "INFO" => Self::Info,
            "PRACK" => Self::Prack,
            "UPDATE" => Self::Update,
            "SUBSCRIBE" => Self::Subscribe,
            "NOTIFY" => Self::Notify,
            "REFER" => Self::Refer,
            "MESSAGE" => Self::Message,
            "PUBLISH" => Self::Publish,
            other if is_token(other) => Self::Extension(other.to_owned()),
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Register => "REGISTER",
            Self::Options => "OPTIONS",
            Self::Info => "INFO",
            Self::Prack => "PRACK",
            Self::Update => "UPDATE",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Refer => "REFER",
            Self::Message => "MESSAGE",
            Self::Publish => "PUBLISH",
            Self::Extension(s) => s,
        }
    }

    /// True for methods this layer does not recognise (RFC 3261 §8.2.1: such requests get 501).
    pub fn is_extension(&self) -> bool {
        matches!(self, Self::Extension(_))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartLine {
    Request { method: Method, uri: String },
    Response { code: u16, reason: String },
}

/// True when the bytes start like a status line; used to decide "answer or drop" for errors.
pub(crate) fn looks_like_response(buf: &[u8]) -> bool {
    buf.get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
}

pub(crate) fn parse_start_line(line: &[u8]) -> Result<StartLine, MessageError> {
    if looks_like_response(line) {
        parse_status_line(line)
    } else {
        parse_request_line(line)
    }
}

/// `SIP-Version SP Status-Code SP Reason-Phrase` (RFC 3261 §7.2). An empty reason is legal
/// (noreason.dat) and UTF-8 is legal (unreason.dat); a missing final SP is tolerated because a
/// response is only ever dropped or accepted and nothing is ambiguous about `SIP/2.0 200`.
fn parse_status_line(line: &[u8]) -> Result<StartLine, MessageError> {
    let line = std::str::from_utf8(line).map_err(|_| MessageError::BadStatusLine("not UTF-8"))?;
    if line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(MessageError::BadStatusLine("control character"));
    }
    let (version, rest) = line
        .split_once(' ')
        .ok_or(MessageError::BadStatusLine("no status code"))?;
    if version_numbers(version) != Some((2, 0)) {
        return Err(MessageError::BadStatusLine("not SIP/2.0"));
    }
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MessageError::BadStatusLine("status code is not 3 digits"));
    }
    let code: u16 = code
        .parse()
        .map_err(|_| MessageError::BadStatusLine("status code"))?;
    // RFC 3261 §7.2 / bigcode.dat: classes 1xx..6xx only.
    if !(100..=699).contains(&code) {
        return Err(MessageError::BadStatusLine("status code out of range"));
    }
    Ok(StartLine::Response {
        code,
        reason: reason.to_owned(),
    })
}

/// `Method SP Request-URI SP SIP-Version` with exactly one SP each (RFC 3261 §7.1). We are the
/// strict kind of element RFC 4475 §3.1.2.9/§3.1.2.10 allow: extra or trailing SP is a 400, so
/// nothing ambiguous ever gets forwarded by the B2BUA's other leg.
fn parse_request_line(line: &[u8]) -> Result<StartLine, MessageError> {
    if line.iter().any(|b| !(0x20..0x7f).contains(b)) {
        return Err(MessageError::BadRequestLine(
            "control or non-ASCII character",
        ));
    }
    let line = std::str::from_utf8(line).map_err(|_| MessageError::BadRequestLine("not ASCII"))?;
    let parts: Vec<&str> = line.split(' ').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(MessageError::BadRequestLine("extra SP"));
    }
    let (method, uri, version) = match parts.as_slice() {
        [m, u, v] => (*m, *u, *v),
        [_, _] | [_] => return Err(MessageError::BadRequestLine("missing element")),
        // lwsruri.dat: `sip:user@example.com; lr` - LWS inside the Request-URI.
        _ => return Err(MessageError::BadRequestUri("embedded whitespace")),
    };
    match version_numbers(version) {
        Some((2, 0)) => {}
        Some(_) => return Err(MessageError::VersionNotSupported),
        None => return Err(MessageError::BadRequestLine("malformed SIP-Version")),
    }
    let method =
        Method::parse(method).ok_or(MessageError::BadRequestLine("method is not a token"))?;
    check_request_uri(uri)?;
    Ok(StartLine::Request {
        method,
        uri: uri.to_owned(),
    })
}

/// `"SIP" "/" 1*DIGIT "." 1*DIGIT`, "SIP" case-insensitive (RFC 3261 §7.1, ABNF strings),
/// leading zeros tolerated.
fn version_numbers(v: &str) -> Option<(u32, u32)> {
    let prefix = v.get(..4)?;
    if !prefix.eq_ignore_ascii_case("SIP/") {
        return None;
    }
    let (major, minor) = v.get(4..)?.split_once('.')?;
    Some((small_number(major)?, small_number(minor)?))
}

fn small_number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = s.trim_start_matches('0');
    if t.len() > 9 {
        return None;
    }
    if t.is_empty() {
        Some(0)
    } else {
        t.parse().ok()
    }
}

/// The scheme of an absolute URI (RFC 3261 §25.1 `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
pub(crate) fn uri_scheme(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    (first_ok && rest_ok && !rest.is_empty()).then_some(scheme)
}

fn check_request_uri(uri: &str) -> Result<(), MessageError> {
    // ltgtruri.dat: a name-addr is not a Request-URI.
    if uri.starts_with('<') || uri.ends_with('>') {
        return Err(MessageError::BadRequestUri("enclosed in <>"));
    }
    let scheme = uri_scheme(uri).ok_or(MessageError::BadRequestUri("no scheme"))?;
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let rest = uri.get(scheme.len() + 1..).unwrap_or_default();
        // '@' cannot appear unescaped after the userinfo (RFC 3261 §25.1 paramchar/hvalue),
        // so the last one ends it; the user part may legally hold '?' (intmeth.dat).
        let hostpart = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        // escruri.dat: RFC 3261 §19.1.1 table 1 forbids headers in a Request-URI.
        if hostpart.contains('?') {
            return Err(MessageError::BadRequestUri("headers in Request-URI"));
        }
        let hostport = hostpart.split(';').next().unwrap_or_default();
        if !valid_hostport(hostport) {
            return Err(MessageError::BadRequestUri("bad hostport"));
        }
    }
    Ok(())
}

/// `host [":" port]` where host is a hostname, IPv4 address or bracketed IPv6 reference.
pub(crate) fn valid_hostport(hp: &str) -> bool {
    split_hostport(hp).is_some()
}

/// Splits `host[:port]`; `None` when either part is malformed.
pub(crate) fn split_hostport(hp: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(v6) = hp.strip_prefix('[') {
        let (inner, after) = v6.split_once(']')?;
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        let host = hp.get(..inner.len() + 2)?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        let (host, port) = match hp.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return None;
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Some((host, port))
}

fn parse_port(p: &str) -> Option<u16> {
    let n = small_number(p)?;
    u16::try_from(n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive_tokens() {
        assert_eq!(Method::parse("INVITE"), Some(Method::Invite));
        assert_eq!(
            Method::parse("invite"),
            Some(Method::Extension("invite".into()))
        );
        assert!(Method::parse("RE%47IST%45R").is_some_and(|m| m.is_extension()));
        assert_eq!(Method::parse("IN VITE"), None);
        assert_eq!(Method::parse(""), None);
    }

    #[test]
    fn request_lines() {
        assert!(matches!(
            parse_start_line(b"OPTIONS sip:a@b SIP/2.0"),
            Ok(StartLine::Request {
                method: Method::Options,
                ..
            })
        ));
        assert_eq!(
            parse_start_line(b"OPTIONS sip:a@b SIP/7.0"),
            Err(MessageError::VersionNotSupported)
        );
        assert!(parse_start_line(b"OPTIONS sip:a@b sip/02.00").is_ok());
        assert!(parse_start_line(b"INVITE  sip:a@b SIP/2.0").is_err());
        assert!(parse_start_line(b"INVITE sip:a@b SIP/2.0 ").is_err());
        assert!(parse_start_line(b"INVITE sip:a@b").is_err());
        assert!(parse_start_line(b"INVITE <sip:a@b> SIP/2.0").is_err());
        assert!(parse_start_line(b"INVITE sip:a@b?Route=x SIP/2.0").is_err());
        assert!(parse_start_line(b"INVITE sip:a?b@example.com SIP/2.0").is_ok());
        assert!(parse_start_line(b"INVITE sip:a@[::1]:5060;lr SIP/2.0").is_ok());
        assert!(parse_start_line(b"INVITE sip:a@host:99999 SIP/2.0").is_err());
        assert!(parse_start_line(b"INVITE nocolon SIP/2.0").is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_start_line(b"SIP/2.0 100 "),
            Ok(StartLine::Response {
                code: 100,
                reason: String::new()
            })
        );
        assert!(parse_start_line("SIP/2.0 200 = 2**3 * 5**2 но".as_bytes()).is_ok());
        assert!(parse_start_line(b"SIP/2.0 4294967301 better not break").is_err());
        assert!(parse_start_line(b"SIP/2.0 700 Nope").is_err());
        assert!(parse_start_line(b"SIP/2.0 099 Nope").is_err());
        assert!(parse_start_line(b"SIP/3.0 200 OK").is_err());
    }
}
