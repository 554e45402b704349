//! `Authorization` parsing and `WWW-Authenticate` quoting (RFC 3261 §25.1 `credentials`,
//! RFC 2617 §3.2.2 `digest-response`).
//!
//! The parser works on the header *value* (after the message layer has unfolded it). It is
//! deliberately strict where leniency would let a response mean two things (duplicate
//! directives, unterminated quotes) and lenient where RFCs and real clients disagree harmlessly
//! (quoted or unquoted `qop`/`nc`/`algorithm`, empty list elements, unknown directives which
//! RFC 2617 §3.2.2 says to ignore).

use std::collections::HashSet;

use super::{Algorithm, AuthError};

/// Upper bound on the header value we are willing to look at. Real digest responses are a few
/// hundred bytes; 4 KiB leaves room for long URIs while bounding work per request.
pub const MAX_AUTHORIZATION_LEN: usize = 4096;

/// A parsed `Digest` credentials value. Values are unquoted and unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestResponse {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    /// Absent means MD5 (RFC 2617 §3.2.1).
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    /// Exactly 8 hex digits as sent (it is hashed verbatim), see [`Self::nonce_count`].
    pub nc: Option<String>,
    pub qop: Option<String>,
    pub opaque: Option<String>,
    /// RFC 7616 §3.4.4; we never offer `userhash`, so `true` is refused by the verifier.
    pub userhash: bool,
}

impl DigestResponse {
    /// The numeric nonce-count (RFC 2617 §3.2.2: 8LHEX).
    pub fn nonce_count(&self) -> Option<u32> {
        self.nc
            .as_deref()
            .and_then(|nc| u32::from_str_radix(nc, 16).ok())
    }
}

/// Parses an `Authorization` (or `Proxy-Authorization`) header value.
///
/// Errors: [`AuthError::UnsupportedScheme`] for anything but `Digest` (RFC 4475 §3.3.7
/// regaut01: the registrar then re-challenges), [`AuthError::UnsupportedAlgorithm`] for
/// algorithms we never offer, otherwise a syntax error. Never panics, work is bounded by
/// [`MAX_AUTHORIZATION_LEN`].
pub fn parse_authorization(value: &str) -> Result<DigestResponse, AuthError> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(AuthError::TooLong);
    }
    let mut cur = Cursor::new(value.as_bytes());
    cur.skip_ws();
    let scheme = cur.token().ok_or(AuthError::Malformed("missing scheme"))?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::UnsupportedScheme);
    }
    if !cur.skip_ws() {
        return Err(AuthError::Malformed("no whitespace after scheme"));
    }

    let mut seen = HashSet::new();
    let mut fields = Fields::default();
    loop {
        cur.skip_ws();
        if cur.eat(b',') {
            continue; // RFC 3261 §7.3.1 #rule: empty elements are allowed.
        }
        if cur.at_end() {
            break;
        }
        let name = cur
            .token()
            .ok_or(AuthError::Malformed("expected parameter name"))?;
        cur.skip_ws();
        if !cur.eat(b'=') {
            return Err(AuthError::Malformed("expected '='"));
        }
        cur.skip_ws();
        let val = if cur.peek() == Some(b'"') {
            cur.quoted_string()?
        } else {
            cur.token()
                .ok_or(AuthError::Malformed("expected parameter value"))?
                .to_owned()
        };
        let lname = name.to_ascii_lowercase();
        if !seen.insert(lname.clone()) {
            return Err(AuthError::DuplicateParam);
        }
        fields.set(&lname, val)?;
        cur.skip_ws();
        if !cur.at_end() && !cur.eat(b',') {
            return Err(AuthError::Malformed("expected ','"));
        }
    }
    fields.finish()
}

#[derive(Default)]
struct Fields {
    username: Option<String>,
    realm: Option<String>,
    nonce: Option<String>,
    uri: Option<String>,
    response: Option<String>,
    algorithm: Option<Algorithm>,
    cnonce: Option<String>,
    nc: Option<String>,
    qop: Option<String>,
    opaque: Option<String>,
    userhash: bool,
}

impl Fields {
    fn set(&mut self, lname: &str, val: String) -> Result<(), AuthError> {
        match lname {
            "username" => self.username = Some(val),
            "realm" => self.realm = Some(val),
            "nonce" => self.nonce = Some(val),
            "uri" => self.uri = Some(val),
            "response" => self.response = Some(val),
            "algorithm" => {
                self.algorithm =
                    Some(Algorithm::from_token(&val).ok_or(AuthError::UnsupportedAlgorithm)?)
            }
            "cnonce" => self.cnonce = Some(val),
            "nc" => {
                if val.len() != 8 || !val.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(AuthError::Malformed("nc is not 8 hex digits"));
                }
                self.nc = Some(val)
            }
            "qop" => self.qop = Some(val),
            "opaque" => self.opaque = Some(val),
            "userhash" => self.userhash = val.eq_ignore_ascii_case("true"),
            _ => {} // RFC 2617 §3.2.2: unknown directives MUST be ignored.
        }
        Ok(())
    }

    fn finish(self) -> Result<DigestResponse, AuthError> {
        Ok(DigestResponse {
            username: self.username.ok_or(AuthError::MissingParam("username"))?,
            realm: self.realm.ok_or(AuthError::MissingParam("realm"))?,
            nonce: self.nonce.ok_or(AuthError::MissingParam("nonce"))?,
            uri: self.uri.ok_or(AuthError::MissingParam("uri"))?,
            response: self.response.ok_or(AuthError::MissingParam("response"))?,
            algorithm: self.algorithm.unwrap_or(Algorithm::Md5),
            cnonce: self.cnonce,
            nc: self.nc,
            qop: self.qop,
            opaque: self.opaque,
            userhash: self.userhash,
        })
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Self {
        Cursor { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// LWS; CR/LF are accepted in case the caller did not unfold. Returns whether any was eaten.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_token_char) {
            self.pos += 1;
        }
        let tok = self.s.get(start..self.pos)?;
        if tok.is_empty() {
            return None;
        }
        // Token chars are ASCII, so this cannot fail; no unwrap needed either way.
        std::str::from_utf8(tok).ok()
    }

    /// RFC 3261 §25.1 quoted-string with quoted-pair escapes. CTLs other than HTAB are refused
    /// so that nothing we later log or echo can carry a line break.
    fn quoted_string(&mut self) -> Result<String, AuthError> {
        if !self.eat(b'"') {
            return Err(AuthError::Malformed("expected quoted string"));
        }
        let mut out = Vec::new();
        loop {
            let b = self
                .peek()
                .ok_or(AuthError::Malformed("unterminated quoted string"))?;
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let esc = self
                        .peek()
                        .ok_or(AuthError::Malformed("unterminated quoted string"))?;
                    if !esc.is_ascii() || is_ctl(esc) {
                        return Err(AuthError::Malformed("bad quoted-pair"));
                    }
                    self.pos += 1;
                    out.push(esc);
                }
                b if is_ctl(b) => return Err(AuthError::Malformed("control character")),
                b => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| AuthError::Malformed("invalid UTF-8"))
    }
}

fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// RFC 3261 §25.1 `token`.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Renders `s` as a quoted-string, escaping `"` and `\` (RFC 3261 §25.1 quoted-pair).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Whether `s` can be sent inside a quoted-string at all (no CTLs but HTAB).
pub(crate) fn is_quotable(s: &str) -> bool {
    !s.bytes().any(is_ctl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC3261_EXAMPLE: &str = "Digest username=\"bob\", realm=\"biloxi.com\", \
        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:bob@biloxi.com\", qop=auth, \
        nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", \
        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    #[test]
    fn parses_rfc3261_section_20_7_example() {
        let d = parse_authorization(RFC3261_EXAMPLE).unwrap();
        assert_eq!(d.username, "bob");
        assert_eq!(d.realm, "biloxi.com");
        assert_eq!(d.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
        assert_eq!(d.uri, "sip:bob@biloxi.com");
        assert_eq!(d.qop.as_deref(), Some("auth"));
        assert_eq!(d.nc.as_deref(), Some("00000001"));
        assert_eq!(d.nonce_count(), Some(1));
        assert_eq!(d.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(d.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(
            d.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(d.algorithm, Algorithm::Md5);
        assert!(!d.userhash);
    }

    #[test]
    fn case_insensitive_names_scheme_and_algorithm() {
        let v = "dIgEsT USERNAME=\"a\",Realm=\"r\",NONCE=\"n\",Uri=\"sip:x\",RESPONSE=\"00\",\
                 Algorithm=sha-256,QOP=\"auth\",NC=0000000A,CNonce=\"c\"";
        let d = parse_authorization(v).unwrap();
        assert_eq!(d.algorithm, Algorithm::Sha256);
        assert_eq!(d.qop.as_deref(), Some("auth"));
        assert_eq!(d.nonce_count(), Some(10));
    }

    #[test]
    fn escapes_and_folded_whitespace() {
        let v = "Digest username=\"a\\\"b\\\\c\" ,\r\n\trealm = \"r\",,nonce=\"n\", uri=\"sip:x\", response=\"00\", \
                 unknown-directive=\"ignored\"";
        let d = parse_authorization(v).unwrap();
        assert_eq!(d.username, "a\"b\\c");
        assert_eq!(d.realm, "r");
    }

    #[test]
    fn utf8_username_survives() {
        let v =
            "Digest username=\"受付\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"00\"";
        assert_eq!(parse_authorization(v).unwrap().username, "受付");
    }

    #[test]
    fn rfc4475_regaut01_unknown_scheme() {
        assert_eq!(
            parse_authorization("NoOneKnowsThisScheme opaque-data=here"),
            Err(AuthError::UnsupportedScheme)
        );
        assert_eq!(AuthError::UnsupportedScheme.status_code(), 401);
        assert_eq!(
            parse_authorization("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Err(AuthError::UnsupportedScheme)
        );
    }

    #[test]
    fn errors() {
        let base =
            "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"00\"";
        assert_eq!(
            parse_authorization(&format!("{base}, Realm=\"other\"")),
            Err(AuthError::DuplicateParam)
        );
        assert_eq!(
            parse_authorization(&format!("{base}, algorithm=MD5-sess")),
            Err(AuthError::UnsupportedAlgorithm)
        );
        assert_eq!(
            parse_authorization(&format!("{base}, nc=1")),
            Err(AuthError::Malformed("nc is not 8 hex digits"))
        );
        assert_eq!(
            parse_authorization("Digest username=\"a"),
            Err(AuthError::Malformed("unterminated quoted string"))
        );
        assert_eq!(
            parse_authorization("Digest username=\"a\", realm=\"r\""),
            Err(AuthError::MissingParam("nonce"))
        );
        assert_eq!(
            parse_authorization("Digest username=\"a\r\nInjected: x\""),
            Err(AuthError::Malformed("control character"))
        );
        assert_eq!(
            parse_authorization("Digest username=\"a\" realm=\"r\""),
            Err(AuthError::Malformed("expected ','"))
        );
        assert_eq!(
            parse_authorization("Digestusername=\"a\""),
            Err(AuthError::UnsupportedScheme)
        );
        assert_eq!(
            parse_authorization("Digest"),
            Err(AuthError::Malformed("no whitespace after scheme"))
        );
        assert_eq!(
            parse_authorization(""),
            Err(AuthError::Malformed("missing scheme"))
        );
        let long = format!("{base}, x=\"{}\"", "a".repeat(MAX_AUTHORIZATION_LEN));
        assert_eq!(parse_authorization(&long), Err(AuthError::TooLong));
    }

    #[test]
    fn quote_round_trips_through_parser() {
        let name = "we\"ird\\name";
        let v = format!(
            "Digest username={}, realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"00\"",
            quote(name)
        );
        assert_eq!(parse_authorization(&v).unwrap().username, name);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,300}") {
            let _ = parse_authorization(&s);
        }

        #[test]
        fn never_panics_on_digest_shaped_noise(
            body in proptest::collection::vec(
                prop_oneof![
                    Just("username".to_owned()), Just("=".to_owned()), Just("\"".to_owned()),
                    Just("\\".to_owned()), Just(",".to_owned()), Just(" ".to_owned()),
                    Just("nc".to_owned()), Just("algorithm".to_owned()), "[a-zA-Z0-9\\-]{0,6}",
                ],
                0..60,
            )
        ) {
            let v = format!("Digest {}", body.concat());
            let _ = parse_authorization(&v);
        }

        #[test]
        fn quoted_values_round_trip(user in "[ -~]{0,40}") {
            let v = format!(
                "Digest username={}, realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"00\"",
                quote(&user)
            );
            prop_assert_eq!(parse_authorization(&v).map(|d| d.username), Ok(user));
        }
    }
}
