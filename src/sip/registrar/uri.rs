//! The two URI operations a registrar needs, on plain strings: canonical address-of-record
//! (RFC 3261 §10.3 step 5) and contact URI equality (RFC 3261 §19.1.4).

use std::fmt;

use super::RegisterError;

/// A canonical address-of-record: `sip:user@host` or `sips:user@host`.
///
/// RFC 3261 §10.3 step 5: URI parameters and headers are removed and escapes are resolved.
/// Because the registrar serves a single domain, the port is dropped too: the AOR names a user
/// of our domain, however the softphone spelled the host:port in `To`. The user part stays
/// case-sensitive (RFC 3261 §19.1.4), the scheme and host are lowercased. Characters that would
/// be ambiguous in the canonical string are re-escaped, so `parse(aor.as_str())` is identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Aor {
    canonical: String,
    user: String,
    host: String,
}

impl Aor {
    /// Accepts a `To` URI (`sip:alice@example.jp`) or a whole name-addr
    /// (`"Alice" <sip:alice@example.jp>;tag=x`). Anything but sip/sips is 400.
    pub fn parse(value: &str) -> Result<Aor, RegisterError> {
        let uri = strip_name_addr(value.trim());
        let (scheme, rest) = split_scheme(uri).ok_or(RegisterError::BadRequest(
            "address-of-record must be a sip or sips URI",
        ))?;
        let (userinfo, hostpart) = rest.split_once('@').ok_or(RegisterError::BadRequest(
            "address-of-record has no user part",
        ))?;
        // userinfo = user [":" password]; a password in an AOR is meaningless, drop it.
        let user_raw = userinfo.split(':').next().unwrap_or_default();
        let user = unescape(user_raw)
            .ok_or(RegisterError::BadRequest("bad escape in address-of-record"))?;
        let hostport = hostpart
            .split([';', '?'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let host = strip_port(&hostport).to_owned();
        if user.is_empty() || host.is_empty() || !host.bytes().all(is_host_char) {
            return Err(RegisterError::BadRequest("malformed address-of-record"));
        }
        let canonical = format!("{scheme}:{}@{host}", escape_user(&user));
        Ok(Aor {
            canonical,
            user,
            host,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The unescaped user part, compared with the authenticated digest username.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Lowercased host without port.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl fmt::Display for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

fn strip_name_addr(v: &str) -> &str {
    match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => v.get(a + 1..b).unwrap_or(v),
        _ => v,
    }
}

/// Returns the lowercased scheme (`sip`/`sips` only) and the rest after `:`.
fn split_scheme(uri: &str) -> Option<(&'static str, &str)> {
    let (scheme, rest) = uri.split_once(':')?;
    if scheme.eq_ignore_ascii_case("sip") {
        Some(("sip", rest))
    } else if scheme.eq_ignore_ascii_case("sips") {
        Some(("sips", rest))
    } else {
        None
    }
}

/// Whether a contact URI uses a scheme the B2BUA can call.
pub(crate) fn is_sip_uri(uri: &str) -> bool {
    split_scheme(uri).is_some_and(|(_, rest)| !rest.is_empty())
}

fn strip_port(hostport: &str) -> &str {
    if let Some(rest) = hostport.strip_prefix('[') {
        // IPv6 reference: keep the brackets, drop what follows `]`.
        return match rest.find(']') {
            Some(i) => hostport.get(..i + 2).unwrap_or(hostport),
            None => hostport,
        };
    }
    hostport.split(':').next().unwrap_or(hostport)
}

fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':')
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Resolves `%HH` escapes; `None` on a broken escape or non-UTF-8 result.
pub(crate) fn unescape(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = hex_val(bytes.next()?)?;
            let lo = hex_val(bytes.next()?)?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 3261 §25.1 `unreserved` and `user-unreserved`, minus `;` and `?` which we escape so the
/// canonical form never looks like it carries parameters or headers.
fn escape_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for b in user.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'!'
                    | b'~'
                    | b'*'
                    | b'\''
                    | b'('
                    | b')'
                    | b'&'
                    | b'='
                    | b'+'
                    | b'$'
                    | b','
                    | b'/'
            );
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct UriParts {
    scheme: String,
    userinfo: Option<String>,
    hostport: String,
    params: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

fn split_uri(uri: &str) -> Option<UriParts> {
    let (scheme, rest) = split_scheme(uri)?;
    let (before_headers, headers) = match rest.split_once('?') {
        Some((a, h)) => (a, Some(h)),
        None => (rest, None),
    };
    let (userinfo, after_user) = match before_headers.split_once('@') {
        Some((u, h)) => (Some(unescape(u).unwrap_or_else(|| u.to_owned())), h),
        None => (None, before_headers),
    };
    let mut parts = after_user.split(';');
    let hostport = parts.next().unwrap_or_default().to_ascii_lowercase();
    let norm = |kv: &str| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let k = unescape(k)
            .unwrap_or_else(|| k.to_owned())
            .to_ascii_lowercase();
        let v = unescape(v)
            .unwrap_or_else(|| v.to_owned())
            .to_ascii_lowercase();
        (k, v)
    };
    let params = parts.filter(|p| !p.is_empty()).map(norm).collect();
    let mut headers: Vec<(String, String)> = headers
        .map(|h| {
            h.split('&')
                .filter(|p| !p.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    let k = unescape(k)
                        .unwrap_or_else(|| k.to_owned())
                        .to_ascii_lowercase();
                    let v = unescape(v).unwrap_or_else(|| v.to_owned());
                    (k, v)
                })
                .collect()
        })
        .unwrap_or_default();
    headers.sort();
    Some(UriParts {
        scheme: scheme.to_owned(),
        userinfo,
        hostport,
        params,
        headers,
    })
}

/// SIP URI equality per RFC 3261 §19.1.4: user part case-sensitive, host and parameter names
/// and values case-insensitive, parameter order irrelevant, a parameter present in only one
/// URI ignored unless it is `user`, `ttl`, `method`, `maddr` or `transport`, headers never
/// ignored. Used to decide whether a Contact refreshes an existing binding. Non-SIP strings
/// compare byte for byte.
pub fn sip_uri_eq(a: &str, b: &str) -> bool {
    let (Some(x), Some(y)) = (split_uri(a), split_uri(b)) else {
        return a == b;
    };
    if x.scheme != y.scheme
        || x.userinfo != y.userinfo
        || x.hostport != y.hostport
        || x.headers != y.headers
    {
        return false;
    }
    // Both directions: a parameter repeated in one URI (RFC 3261 §19.1.1 forbids it, but it
    // arrives) is only compared by its first occurrence when looked up from the other side,
    // so a one-way check made `a == b` differ from `b == a` (found by fuzz/registrar).
    params_match(&x.params, &y.params) && params_match(&y.params, &x.params)
}

/// Every parameter of `x` has the same value in `y` where `y` has it, and the ones that must
/// match are present in `y`.
fn params_match(x: &[(String, String)], y: &[(String, String)]) -> bool {
    const MUST_MATCH: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];
    x.iter().all(|(k, v)| match y.iter().find(|(n, _)| n == k) {
        Some((_, w)) => w == v,
        None => !MUST_MATCH.contains(&k.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aor_canonical_form() {
        let a = Aor::parse("\"Op 1\" <SIP:op1@Example.JP:5060;transport=tcp?X=y>;tag=9").unwrap();
        assert_eq!(a.as_str(), "sip:op1@example.jp");
        assert_eq!(a.user(), "op1");
        assert_eq!(a.host(), "example.jp");
        let b = Aor::parse("sip:%6Fp1@example.jp").unwrap();
        assert_eq!(a, b);
        let s = Aor::parse("sips:op1@example.jp").unwrap();
        assert_eq!(s.as_str(), "sips:op1@example.jp");
        assert_ne!(a, s);
        let v6 = Aor::parse("sip:op1@[2001:DB8::1]:5060").unwrap();
        assert_eq!(v6.host(), "[2001:db8::1]");
    }

    #[test]
    fn aor_round_trips_through_its_canonical_form() {
        for raw in [
            "sip:a%25b%40c@example.jp",
            "sip:a%3Bb@example.jp",
            "sip:受付@example.jp",
        ] {
            let a = Aor::parse(raw).unwrap();
            assert_eq!(Aor::parse(a.as_str()).unwrap(), a, "{raw}");
        }
        assert_eq!(
            Aor::parse("sip:a%25b%40c@example.jp").unwrap().user(),
            "a%b@c"
        );
    }

    #[test]
    fn aor_rejections() {
        for bad in [
            "tel:+81312345678",
            "mailto:op1@example.jp",
            "sip:example.jp",
            "sip:@example.jp",
            "sip:op1@",
            "sip:op%zz@example.jp",
            "sip:op1@exa mple.jp",
            "",
        ] {
            assert!(
                matches!(Aor::parse(bad), Err(RegisterError::BadRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn rfc3261_19_1_4_equal_uris() {
        assert!(sip_uri_eq(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(sip_uri_eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(sip_uri_eq(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(sip_uri_eq(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x"
        ));
    }

    #[test]
    fn rfc3261_19_1_4_unequal_uris() {
        assert!(!sip_uri_eq(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!sip_uri_eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!sip_uri_eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!sip_uri_eq("sip:bob@biloxi.com", "sips:bob@biloxi.com"));
        assert!(!sip_uri_eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off"
        ));
        assert!(!sip_uri_eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting"
        ));
    }

    /// Found by fuzz/registrar: with a parameter repeated on one side, the comparison used
    /// to depend on the argument order.
    #[test]
    fn repeated_parameters_compare_symmetrically() {
        let pairs = [
            ("sip:a@b;x=1;x=2", "sip:a@b;x=1"),
            (
                "sip:a@b;transport=tcp;transport=udp",
                "sip:a@b;transport=tcp",
            ),
            ("sip:a@b;x=1;x=1", "sip:a@b;x=1"),
        ];
        for (a, b) in pairs {
            assert_eq!(sip_uri_eq(a, b), sip_uri_eq(b, a), "{a} / {b}");
        }
        assert!(!sip_uri_eq("sip:a@b;x=1;x=2", "sip:a@b;x=1"));
        assert!(sip_uri_eq("sip:a@b;x=1;x=1", "sip:a@b;x=1"));
    }
}
