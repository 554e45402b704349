//! Strict parsers for the header values the transaction and dialog layers key on
//! (RFC 3261 §20, grammar in §25.1). rsip's typed headers are lenient (they accept `;;`, unbalanced
//! quotes and overlarge numbers), so the values that decide routing are checked here.

use super::error::MessageError;
use super::normalise::{is_token, is_token_byte, trim_wsp};
use super::start_line::{split_hostport, uri_scheme, Method};

/// A `name[=value]` parameter as written (name case preserved, value unquoted text kept).
pub type Param = (String, Option<String>);

/// One Via value (RFC 3261 §20.42), with the RFC 3581 `rport`/`received` parameters at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    transport: String,
    host: String,
    port: Option<u16>,
    params: Vec<Param>,
}

impl Via {
    /// Transport token as written, upper-cased (`UDP`, `TCP`, `TLS`, `SCTP`, or unknown).
    pub fn transport(&self) -> &str {
        &self.transport
    }

    /// sent-by host (brackets kept for IPv6 references).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// sent-by port, if written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The `branch` parameter: the RFC 3261 §17.2.3 transaction key when it starts `z9hG4bK`.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// The `received` parameter (RFC 3261 §18.2.1).
    pub fn received(&self) -> Option<&str> {
        self.param("received").flatten()
    }

    /// True when `rport` is present, with or without a value (RFC 3581 §4: the client asks for it).
    pub fn has_rport(&self) -> bool {
        self.param("rport").is_some()
    }

    /// The value of `rport`, once a server has filled it in (RFC 3581 §4).
    pub fn rport(&self) -> Option<u16> {
        self.param("rport")
            .flatten()
            .and_then(|p| p.parse::<u16>().ok())
    }

    /// A parameter by case-insensitive name: `Some(None)` for a flag, `Some(Some(v))` for a value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }
}

/// `name-addr` / `addr-spec` with header parameters (RFC 3261 §20.10, §20.20, §20.39).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Vec<Param>,
}

impl NameAddr {
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }
}

/// Splits at `sep` outside quoted strings and `<...>`; `None` on an unterminated quote.
pub(crate) fn split_outside(s: &str, sep: u8) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let (mut in_quote, mut escaped, mut in_angle) = (false, false, false);
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            b'<' if !in_quote => in_angle = true,
            b'>' if !in_quote => in_angle = false,
            _ if b == sep && !in_quote && !in_angle => {
                out.push(s.get(start..i)?);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_quote {
        return None;
    }
    out.push(s.get(start..)?);
    Some(out)
}

/// Elements of a comma-separated header value; empty elements (badinv01.dat `,,`) are refused.
pub(crate) fn list_elements<'a>(name: &str, value: &'a str) -> Result<Vec<&'a str>, MessageError> {
    split_nonempty(name, value, b',', "empty list element")
}

/// Split `s` on `sep` outside quoted strings, trimming each part; an empty part (RFC 4475
/// badinv01.dat: `,,` and `;;` in Via and Contact) is refused with `empty`.
fn split_nonempty<'a>(
    name: &str,
    s: &'a str,
    sep: u8,
    empty: &'static str,
) -> Result<Vec<&'a str>, MessageError> {
    split_outside(s, sep)
        .ok_or_else(|| MessageError::bad_header(name, "unterminated quoted string"))?
        .into_iter()
        .map(|p| match trim_wsp(p) {
            "" => Err(MessageError::bad_header(name, empty)),
            p => Ok(p),
        })
        .collect()
}

/// `*( SEMI generic-param )`, where `s` is the text after the first `;`.
fn parse_params(name: &str, s: &str) -> Result<Vec<Param>, MessageError> {
    split_nonempty(name, s, b';', "empty parameter")?
        .into_iter()
        .map(|p| {
            let (pname, pvalue) = match p.split_once('=') {
                Some((n, v)) => (trim_wsp(n), Some(trim_wsp(v))),
                None => (p, None),
            };
            if !is_token(pname) {
                return Err(MessageError::bad_header(
                    name,
                    "parameter name is not a token",
                ));
            }
            match pvalue {
                Some("") => Err(MessageError::bad_header(name, "empty parameter value")),
                Some(v) if v.bytes().any(|b| b == b' ' || b == b'\t') && !v.starts_with('"') => {
                    Err(MessageError::bad_header(
                        name,
                        "whitespace in parameter value",
                    ))
                }
                v => Ok((pname.to_owned(), v.map(str::to_owned))),
            }
        })
        .collect()
}

/// One via-parm: `sent-protocol LWS sent-by *( SEMI via-params )`, LWS allowed around `/`
/// (wsinv.dat `SIP  /   2.0 /UDP`).
pub(crate) fn parse_via(value: &str) -> Result<Via, MessageError> {
    const NAME: &str = "Via";
    let (head, params) = match value.split_once(';') {
        Some((h, p)) => (h, Some(p)),
        None => (value, None),
    };
    let mut proto = head.splitn(3, '/');
    let (Some(pname), Some(pversion), Some(rest)) = (proto.next(), proto.next(), proto.next())
    else {
        return Err(MessageError::bad_header(NAME, "sent-protocol"));
    };
    if !is_token(trim_wsp(pname)) || !is_token(trim_wsp(pversion)) {
        return Err(MessageError::bad_header(NAME, "sent-protocol"));
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    let tlen = rest.bytes().take_while(|b| is_token_byte(*b)).count();
    let (transport, sent_by) = rest.split_at(tlen);
    if transport.is_empty() || !sent_by.starts_with([' ', '\t']) {
        return Err(MessageError::bad_header(NAME, "transport"));
    }
    // sent-by = host [ COLON port ], COLON = SWS ":" SWS
    let sent_by: String = trim_wsp(sent_by)
        .split(':')
        .map(trim_wsp)
        .collect::<Vec<_>>()
        .join(":");
    let single_colon = sent_by.bytes().filter(|b| *b == b':').count() <= 1;
    let (host, port) = (sent_by.starts_with('[') || single_colon)
        .then(|| split_hostport(&sent_by))
        .flatten()
        .ok_or_else(|| MessageError::bad_header(NAME, "sent-by"))?;
    let params = match params {
        Some(p) => parse_params(NAME, p)?,
        None => Vec::new(),
    };
    Ok(Via {
        transport: transport.to_ascii_uppercase(),
        host: host.to_owned(),
        port,
        params,
    })
}

/// `( name-addr / addr-spec ) *( SEMI param )` for From, To, Contact, Route, Record-Route, Reply-To.
pub(crate) fn parse_name_addr(name: &str, value: &str) -> Result<NameAddr, MessageError> {
    let s = trim_wsp(value);
    let (display, uri, rest) = if let Some(quoted) = s.strip_prefix('"') {
        let end = closing_quote(quoted)
            .ok_or_else(|| MessageError::bad_header(name, "unterminated quoted string"))?;
        let display = quoted.get(..end).unwrap_or_default();
        let after = trim_wsp(quoted.get(end + 1..).unwrap_or_default());
        let inner = after
            .strip_prefix('<')
            .ok_or_else(|| MessageError::bad_header(name, "quoted display name without <URI>"))?;
        let (uri, rest) = inner
            .split_once('>')
            .ok_or_else(|| MessageError::bad_header(name, "missing >"))?;
        (Some(display.to_owned()), uri, rest)
    } else if let Some((display, inner)) = s.split_once('<') {
        let display = trim_wsp(display);
        // baddn.dat: an unquoted display name is `*(token LWS)`; lwsdisp.dat: no LWS before `<`.
        if !display
            .bytes()
            .all(|b| is_token_byte(b) || b == b' ' || b == b'\t')
        {
            return Err(MessageError::bad_header(
                name,
                "non-token characters in unquoted display name",
            ));
        }
        let (uri, rest) = inner
            .split_once('>')
            .ok_or_else(|| MessageError::bad_header(name, "missing >"))?;
        let display = (!display.is_empty()).then(|| display.to_owned());
        (display, uri, rest)
    } else {
        // addr-spec form: everything after the first ';' is a header parameter (cparam01.dat).
        let (uri, rest) = match s.find(';') {
            Some(i) => s.split_at(i),
            None => (s, ""),
        };
        let uri = trim_wsp(uri);
        // RFC 3261 §20.10: a URI with ',', '?' or ';' must be in <> (regbadct.dat).
        if uri.contains(['?', ',', '"', '>']) {
            return Err(MessageError::bad_header(
                name,
                "URI with reserved characters not in <>",
            ));
        }
        (None, uri, rest)
    };
    // badaspec.dat: no LWS inside <...>.
    if uri.bytes().any(|b| b == b' ' || b == b'\t') {
        return Err(MessageError::bad_header(name, "whitespace in URI"));
    }
    if uri_scheme(uri).is_none() {
        return Err(MessageError::bad_header(name, "URI without scheme"));
    }
    let rest = trim_wsp(rest);
    let params = if rest.is_empty() {
        Vec::new()
    } else {
        let p = rest
            .strip_prefix(';')
            .ok_or_else(|| MessageError::bad_header(name, "junk after URI"))?;
        parse_params(name, p)?
    };
    Ok(NameAddr {
        display,
        uri: uri.to_owned(),
        params,
    })
}

/// Index of the closing `"` in `s` (which starts after the opening one), honouring quoted-pair.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return Some(i);
        }
    }
    None
}

/// Decimal digits with leading zeros allowed (wsinv.dat `0009`); `None` beyond `max`.
pub(crate) fn parse_bounded(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = s.trim_start_matches('0');
    if t.len() > 19 {
        return None;
    }
    let n: u64 = if t.is_empty() { 0 } else { t.parse().ok()? };
    (n <= max).then_some(n)
}

/// RFC 3261 §8.1.1.5: the CSeq number MUST be less than 2^31.
pub const MAX_CSEQ: u32 = (1 << 31) - 1;

/// `CSeq: 1*DIGIT LWS Method` (RFC 3261 §20.16).
pub(crate) fn parse_cseq(value: &str) -> Result<(u32, Method), MessageError> {
    const NAME: &str = "CSeq";
    let (num, method) = value
        .split_once([' ', '\t'])
        .ok_or_else(|| MessageError::bad_header(NAME, "no method"))?;
    let n = parse_bounded(num, u64::from(MAX_CSEQ))
        .ok_or_else(|| MessageError::bad_header(NAME, "number not in 0..2^31"))?;
    let method = Method::parse(trim_wsp(method))
        .ok_or_else(|| MessageError::bad_header(NAME, "method is not a token"))?;
    let n = u32::try_from(n).map_err(|_| MessageError::bad_header(NAME, "number"))?;
    Ok((n, method))
}

/// `Call-ID: word [ "@" word ]` (RFC 3261 §20.8), `word` as in §25.1.
pub(crate) fn check_call_id(value: &str) -> Result<(), MessageError> {
    let word_byte = |b: u8| {
        is_token_byte(b)
            || matches!(
                b,
                b'(' | b')'
                    | b'<'
                    | b'>'
                    | b':'
                    | b'\\'
                    | b'"'
                    | b'/'
                    | b'['
                    | b']'
                    | b'?'
                    | b'{'
                    | b'}'
            )
    };
    let mut words = value.split('@');
    let ok = words
        .next()
        .is_some_and(|w| !w.is_empty() && w.bytes().all(word_byte))
        && words
            .next()
            .is_none_or(|w| !w.is_empty() && w.bytes().all(word_byte))
        && words.next().is_none();
    if ok {
        Ok(())
    } else {
        Err(MessageError::bad_header("Call-ID", "not word[@word]"))
    }
}

/// `m-type "/" m-subtype *( ; m-parameter )` (RFC 3261 §20.15); returns `type/subtype`.
pub(crate) fn media_type(name: &str, value: &str) -> Result<String, MessageError> {
    let essence = trim_wsp(value.split(';').next().unwrap_or_default());
    let (t, s) = essence
        .split_once('/')
        .ok_or_else(|| MessageError::bad_header(name, "no /"))?;
    let (t, s) = (trim_wsp(t), trim_wsp(s));
    if !is_token(t) || !is_token(s) {
        return Err(MessageError::bad_header(
            name,
            "type/subtype are not tokens",
        ));
    }
    Ok(format!("{t}/{s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_everywhere() {
        let v = parse_via("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport(), "UDP");
        assert_eq!(v.host(), "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v =
            parse_via("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(v.transport(), "TCP");
        assert_eq!(v.host(), "spindle.example.com");
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        let v = parse_via("SIP/2.0/UDP [2001:db8::9]:5070;rport;received=192.0.2.1").unwrap();
        assert_eq!(v.host(), "[2001:db8::9]");
        assert_eq!(v.port(), Some(5070));
        assert!(v.has_rport());
        assert_eq!(v.rport(), None);
        assert_eq!(v.received(), Some("192.0.2.1"));
        let v = parse_via("SIP/2.0/UDP h : 5060;rport=5070").unwrap();
        assert_eq!(v.port(), Some(5060));
        assert_eq!(v.rport(), Some(5070));
    }

    #[test]
    fn via_rejects_garbage() {
        assert!(parse_via("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(parse_via("SIP/2.0/UDP 192.0.2.15;").is_err());
        assert!(parse_via("SIP/2.0 192.0.2.15").is_err());
        assert!(parse_via("SIP/2.0/UDP").is_err());
        assert!(parse_via("SIP/2.0/UDP host:70000").is_err());
        assert!(parse_via("SIP/2.0/UDP a b").is_err());
        assert!(list_elements("Via", "SIP/2.0/UDP a;branch=1,,SIP/2.0/UDP b").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = parse_name_addr(
            "From",
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com> ; tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.uri, "sip:jdrosen@example.com");
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = parse_name_addr("From", "caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display.as_deref(), Some("caller"));
        let n = parse_name_addr("Contact", "sip:+1972@gw1.example.net;unknownparam").unwrap();
        assert_eq!(n.uri, "sip:+1972@gw1.example.net");
        assert_eq!(n.param("unknownparam"), Some(None));
        assert!(parse_name_addr("To", "Watson, Thomas <sip:t@example.org>").is_err());
        assert!(parse_name_addr("To", "\"Watson\" < sip:t@example.org >").is_err());
        assert!(parse_name_addr("To", "\"Mr. J. User <sip:j@example.com>").is_err());
        assert!(parse_name_addr("Contact", "sip:u@example.com?Route=%3Csip:x%3E").is_err());
        assert!(parse_name_addr("Contact", "<sip:u@example.com?Route=%3Csip:x%3E>").is_ok());
        assert!(parse_name_addr("Contact", "\"Joe\" <sip:joe@example.org>;;;;").is_err());
        assert!(parse_name_addr("To", "isbn:2983792873").is_ok());
    }

    #[test]
    fn numbers_and_cseq() {
        assert_eq!(parse_cseq("0009 INVITE").unwrap(), (9, Method::Invite));
        assert!(parse_cseq("2147483648 INVITE").is_err());
        assert!(parse_cseq("2147483647 INVITE").is_ok());
        assert!(parse_cseq("36893488147419103232 REGISTER").is_err());
        assert!(parse_cseq("-1 INVITE").is_err());
        assert!(parse_cseq("1").is_err());
        assert_eq!(parse_bounded("0068", 255), Some(68));
        assert_eq!(parse_bounded("300", 255), None);
        assert_eq!(parse_bounded("99999999999999999999999999", u64::MAX), None);
    }

    #[test]
    fn call_id_words() {
        assert!(check_call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{").is_ok());
        assert!(check_call_id("a@b@c").is_err());
        assert!(check_call_id("a b").is_err());
        assert!(check_call_id("").is_err());
    }
}
