//! `Contact` header values for REGISTER (RFC 3261 §20.10, §10.2.1).
//!
//! The one subtle rule: parameters *inside* `<...>` belong to the URI, parameters after the
//! address belong to the contact; and a URI written without `<...>` cannot carry URI parameters
//! or headers at all, so every `;param` after it is a contact parameter (RFC 3261 §20.10,
//! RFC 4475 §3.3.12 cparam01 vs §3.3.13 cparam02). Both kinds are kept verbatim: URI parameters
//! as part of [`ContactSpec::uri`], contact parameters in [`ContactSpec::params`].

use std::fmt;

use super::RegisterError;

/// Bound on one `Contact` header value; a softphone's is well under 1 KiB.
pub const MAX_CONTACT_VALUE_LEN: usize = 8192;

/// Bound on contacts per REGISTER across all `Contact` headers. Above the per-AOR binding cap
/// (so the registrar can answer 403 with a reason), but bounded so a request cannot make us
/// allocate without limit.
pub const MAX_CONTACTS_PER_REQUEST: usize = 64;

/// A qvalue in thousandths (RFC 3261 §20.10: `0`..`1` with at most three decimals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QValue(u16);

impl QValue {
    pub fn parse(s: &str) -> Option<QValue> {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut thousandths: u16 = 0;
        for (i, b) in frac.bytes().enumerate() {
            let scale = [100u16, 10, 1].get(i).copied()?;
            thousandths += u16::from(b - b'0') * scale;
        }
        match int {
            "0" => Some(QValue(thousandths)),
            "1" if thousandths == 0 => Some(QValue(1000)),
            _ => None,
        }
    }

    pub fn thousandths(self) -> u16 {
        self.0
    }
}

impl fmt::Display for QValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1000 {
            f.write_str("1")
        } else {
            let s = format!("0.{:03}", self.0);
            f.write_str(s.trim_end_matches('0').trim_end_matches('.'))
        }
    }
}

/// A contact parameter as written: name and raw value (quotes kept, so
/// `+sip.instance="<urn:uuid:...>"` re-renders byte for byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactParam {
    pub name: String,
    pub value: Option<String>,
}

impl fmt::Display for ContactParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, ";{}={}", self.name, v),
            None => write!(f, ";{}", self.name),
        }
    }
}

/// One contact address from a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    /// Display name as written (quotes kept), if any.
    pub display_name: Option<String>,
    /// The URI verbatim, including URI parameters and headers if it was in `<...>`.
    pub uri: String,
    /// The `expires` contact parameter (RFC 3261 §10.2.1.1); saturates at `u32::MAX`.
    pub expires_param: Option<u32>,
    pub q: Option<QValue>,
    /// Every other contact parameter, in order (e.g. `+sip.instance`, `reg-id`).
    pub params: Vec<ContactParam>,
}

impl ContactSpec {
    /// The non-`expires`, non-`q` parameters rendered as `;a=b;c`, kept opaque in the binding.
    pub fn opaque_params(&self) -> String {
        self.params.iter().map(|p| p.to_string()).collect()
    }
}

/// The `Contact` headers of a REGISTER, taken together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterContacts {
    /// `Contact: *` (RFC 3261 §10.2.2): remove all bindings; only valid alone with Expires: 0.
    Star,
    /// Zero or more contacts. Empty means "list my bindings" (RFC 3261 §10.2.3).
    List(Vec<ContactSpec>),
}

/// Parses all `Contact` header values of one REGISTER (each may hold several comma-separated
/// contacts). `*` mixed with anything else is a 400 (RFC 3261 §10.3 step 6).
pub fn parse_contacts<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<RegisterContacts, RegisterError> {
    let mut star = false;
    let mut list = Vec::new();
    for value in values {
        if value.len() > MAX_CONTACT_VALUE_LEN {
            return Err(RegisterError::BadRequest("Contact header too long"));
        }
        if value.trim() == "*" {
            if star {
                return Err(RegisterError::BadRequest("'*' given twice"));
            }
            star = true;
            continue;
        }
        parse_one_value(value, &mut list)?;
    }
    match (star, list.is_empty()) {
        (true, true) => Ok(RegisterContacts::Star),
        (true, false) => Err(RegisterError::BadRequest("'*' mixed with other contacts")),
        (false, _) => Ok(RegisterContacts::List(list)),
    }
}

fn parse_one_value(value: &str, out: &mut Vec<ContactSpec>) -> Result<(), RegisterError> {
    let mut cur = Cursor {
        s: value.as_bytes(),
        pos: 0,
    };
    loop {
        cur.skip_ws();
        if cur.at_end() {
            return Ok(());
        }
        if cur.peek() == Some(b'*') {
            return Err(RegisterError::BadRequest("'*' mixed with other contacts"));
        }
        if out.len() >= MAX_CONTACTS_PER_REQUEST {
            return Err(RegisterError::BadRequest("too many Contact values"));
        }
        out.push(parse_contact(&mut cur)?);
        cur.skip_ws();
        if !cur.at_end() && !cur.eat(b',') {
            return Err(RegisterError::BadRequest("expected ',' between contacts"));
        }
    }
}

fn parse_contact(cur: &mut Cursor<'_>) -> Result<ContactSpec, RegisterError> {
    let bad = RegisterError::BadRequest;
    let start = cur.pos;
    let mut display_name = None;
    let uri;
    if cur.peek() == Some(b'"') {
        cur.quoted_string()?;
        display_name = Some(cur.slice(start, cur.pos).to_owned());
        cur.skip_ws();
        if cur.peek() != Some(b'<') {
            return Err(bad("display name without <URI>"));
        }
    } else {
        // Either a token display-name followed by `<`, or an addr-spec: look ahead over
        // tokens and whitespace (an addr-spec contains ':' so it stops this scan).
        while cur
            .peek()
            .is_some_and(|b| is_token_char(b) || b == b' ' || b == b'\t')
        {
            cur.pos += 1;
        }
        if cur.peek() == Some(b'<') {
            let name = cur.slice(start, cur.pos).trim();
            if !name.is_empty() {
                display_name = Some(name.to_owned());
            }
        } else {
            cur.pos = start;
        }
    }
    if cur.eat(b'<') {
        let s = cur.pos;
        while cur.peek().is_some_and(|b| b != b'>' && b != b'<') {
            cur.pos += 1;
        }
        if !cur.eat(b'>') {
            return Err(bad("unterminated <URI>"));
        }
        uri = cur.slice(s, cur.pos - 1).trim();
    } else {
        let s = cur.pos;
        while cur
            .peek()
            .is_some_and(|b| !matches!(b, b';' | b',' | b' ' | b'\t' | b'\r' | b'\n'))
        {
            cur.pos += 1;
        }
        uri = cur.slice(s, cur.pos);
        // RFC 3261 §20: a URI with '?' must be in <...> (RFC 4475 §3.1.2.13 regbadct).
        if uri.contains(['?', '<', '>', '"']) {
            return Err(bad("Contact URI with headers must be enclosed in <>"));
        }
    }
    if uri.is_empty() || !uri.contains(':') || uri.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad("malformed Contact URI"));
    }
    let mut spec = ContactSpec {
        display_name,
        uri: uri.to_owned(),
        expires_param: None,
        q: None,
        params: Vec::new(),
    };
    loop {
        cur.skip_ws();
        if !cur.eat(b';') {
            return Ok(spec);
        }
        cur.skip_ws();
        let name = cur.token().ok_or(bad("malformed contact parameter"))?;
        cur.skip_ws();
        let value = if cur.eat(b'=') {
            cur.skip_ws();
            let s = cur.pos;
            if cur.peek() == Some(b'"') {
                cur.quoted_string()?;
            } else {
                while cur
                    .peek()
                    .is_some_and(|b| is_token_char(b) || matches!(b, b':' | b'[' | b']'))
                {
                    cur.pos += 1;
                }
            }
            let v = cur.slice(s, cur.pos);
            if v.is_empty() {
                return Err(bad("empty contact parameter value"));
            }
            Some(v.to_owned())
        } else {
            None
        };
        if name.eq_ignore_ascii_case("expires") {
            if spec.expires_param.is_some() {
                return Err(bad("duplicate expires parameter"));
            }
            spec.expires_param = Some(parse_delta_seconds(value.as_deref())?);
        } else if name.eq_ignore_ascii_case("q") {
            if spec.q.is_some() {
                return Err(bad("duplicate q parameter"));
            }
            spec.q = Some(
                value
                    .as_deref()
                    .and_then(QValue::parse)
                    .ok_or(bad("bad q value"))?,
            );
        } else {
            spec.params.push(ContactParam {
                name: name.to_owned(),
                value,
            });
        }
    }
}

/// `delta-seconds` (RFC 3261 §25.1); values beyond 2^32-1 saturate, as RFC 3261 §20.19 asks
/// for Expires, rather than failing a registration over an absurd but well-formed number.
fn parse_delta_seconds(v: Option<&str>) -> Result<u32, RegisterError> {
    let v = v.ok_or(RegisterError::BadRequest("expires without value"))?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RegisterError::BadRequest("expires is not delta-seconds"));
    }
    Ok(v.parse::<u32>().unwrap_or(u32::MAX))
}

/// RFC 3261 §25.1 `token` (kept local so the registrar does not depend on `auth`).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    /// The input between two positions; positions only ever sit on ASCII delimiters, so this
    /// is always a char boundary, but a miss degrades to "" rather than a panic.
    fn slice(&self, from: usize, to: usize) -> &'a str {
        self.s
            .get(from..to)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    fn token(&mut self) -> Option<&'a str> {
        let s = self.pos;
        while self.peek().is_some_and(is_token_char) {
            self.pos += 1;
        }
        let t = self.slice(s, self.pos);
        (!t.is_empty()).then_some(t)
    }

    /// Skips a quoted-string (with quoted-pairs), leaving it verbatim in the input.
    fn quoted_string(&mut self) -> Result<(), RegisterError> {
        let unterminated = RegisterError::BadRequest("unterminated quoted string");
        if !self.eat(b'"') {
            return Err(unterminated);
        }
        loop {
            match self.peek() {
                None => return Err(unterminated),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b) if b.is_ascii() && b != b'\r' && b != b'\n' => self.pos += 1,
                        _ => return Err(RegisterError::BadRequest("bad quoted-pair")),
                    }
                }
                Some(b'\r' | b'\n') => {
                    return Err(RegisterError::BadRequest("line break in quoted string"))
                }
                Some(_) => self.pos += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(v: &str) -> ContactSpec {
        match parse_contacts([v]).unwrap() {
            RegisterContacts::List(mut l) if l.len() == 1 => l.remove(0),
            other => panic!("expected one contact, got {other:?}"),
        }
    }

    #[test]
    fn rfc4475_cparam01_param_outside_brackets_is_a_contact_param() {
        let c = one("sip:+19725552222@gw1.example.net;unknownparam");
        assert_eq!(c.uri, "sip:+19725552222@gw1.example.net");
        assert_eq!(
            c.params,
            vec![ContactParam {
                name: "unknownparam".into(),
                value: None
            }]
        );
    }

    #[test]
    fn rfc4475_cparam02_param_inside_brackets_is_a_uri_param() {
        let c = one("<sip:+19725552222@gw1.example.net;unknownparam>");
        assert_eq!(c.uri, "sip:+19725552222@gw1.example.net;unknownparam");
        assert!(c.params.is_empty());
    }

    #[test]
    fn rfc4475_regescrt_and_regbadct() {
        // §3.3.14: escaped header inside <> is fine and kept.
        let c = one("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>");
        assert_eq!(
            c.uri,
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
        );
        // §3.1.2.13: the same without <> is refused.
        assert!(matches!(
            parse_contacts(["sip:user@example.com?Route=%3Csip:sip.example.com%3E"]),
            Err(RegisterError::BadRequest(_))
        ));
    }

    #[test]
    fn full_softphone_contact() {
        let c = one(
            "\"Seat 3\" <sip:op3@192.0.2.10:5062;transport=tcp;ob>;expires=600;q=0.7;\
             +sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1",
        );
        assert_eq!(c.display_name.as_deref(), Some("\"Seat 3\""));
        assert_eq!(c.uri, "sip:op3@192.0.2.10:5062;transport=tcp;ob");
        assert_eq!(c.expires_param, Some(600));
        assert_eq!(c.q, QValue::parse("0.7"));
        assert_eq!(
            c.opaque_params(),
            ";+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1"
        );
    }

    #[test]
    fn several_values_and_headers_with_commas_in_quotes() {
        let got = parse_contacts([
            "Alice Smith <sip:a@192.0.2.1>;expires=0, \"x, y\" <sip:b@192.0.2.2>",
            "sip:c@192.0.2.3 ; EXPIRES = 30",
        ])
        .unwrap();
        let RegisterContacts::List(l) = got else {
            panic!("list")
        };
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].display_name.as_deref(), Some("Alice Smith"));
        assert_eq!(l[0].expires_param, Some(0));
        assert_eq!(l[1].display_name.as_deref(), Some("\"x, y\""));
        assert_eq!(l[1].uri, "sip:b@192.0.2.2");
        assert_eq!(l[2].uri, "sip:c@192.0.2.3");
        assert_eq!(l[2].expires_param, Some(30));
    }

    #[test]
    fn star_rules() {
        assert_eq!(parse_contacts([" * "]).unwrap(), RegisterContacts::Star);
        assert_eq!(parse_contacts([]).unwrap(), RegisterContacts::List(vec![]));
        for bad in [
            vec!["*", "<sip:a@b>"],
            vec!["*, <sip:a@b>"],
            vec!["<sip:a@b>, *"],
            vec!["*", "*"],
        ] {
            assert!(parse_contacts(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_values() {
        for bad in [
            "<sip:a@b",
            "\"unterminated <sip:a@b>",
            "\"name\" sip:a@b",
            "<sip:a@b>;expires=soon",
            "<sip:a@b>;expires=1;expires=2",
            "<sip:a@b>;q=1.5",
            "<sip:a@b>;=x",
            "<sip:a@b> junk",
            "<>",
            "nocolon",
        ] {
            assert!(parse_contacts([bad]).is_err(), "{bad}");
        }
        let huge = format!("<sip:a@b>;x=\"{}\"", "a".repeat(MAX_CONTACT_VALUE_LEN));
        assert!(parse_contacts([huge.as_str()]).is_err());
        let many = vec!["<sip:a@b>"; MAX_CONTACTS_PER_REQUEST + 1].join(",");
        assert!(parse_contacts([many.as_str()]).is_err());
    }

    #[test]
    fn expires_saturates_and_qvalues() {
        assert_eq!(
            one("<sip:a@b>;expires=99999999999").expires_param,
            Some(u32::MAX)
        );
        assert_eq!(QValue::parse("1.000").map(|q| q.thousandths()), Some(1000));
        assert_eq!(QValue::parse("0.05").map(|q| q.thousandths()), Some(50));
        assert_eq!(QValue::parse("0").map(|q| q.to_string()), Some("0".into()));
        assert_eq!(
            QValue::parse("0.500").map(|q| q.to_string()),
            Some("0.5".into())
        );
        assert_eq!(QValue::parse("1").map(|q| q.to_string()), Some("1".into()));
        for bad in ["1.001", "2", "0.1234", "", ".5", "0.x"] {
            assert_eq!(QValue::parse(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse_contacts([s.as_str()]);
        }

        #[test]
        fn never_panics_on_contact_shaped_noise(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("<"), Just(">"), Just("\""), Just("\\"), Just(";"), Just(","),
                    Just("="), Just(" "), Just("sip:"), Just("@"), Just("expires"), Just("q"),
                    Just("*"), Just("受"), Just("a"), Just("0.5"),
                ],
                0..40,
            )
        ) {
            let _ = parse_contacts([parts.concat().as_str()]);
        }
    }
}
