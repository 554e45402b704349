//! The normalising pre-pass: turns a framed header section into a start line plus a list of
//! logical header fields with canonical names, so later stages (rsip included) only ever see
//! RFC 3261 §7.3.1 "canonical" text: no folding, no compact names, no LWS around the colon.

use std::borrow::Cow;

use super::error::MessageError;
use super::{MAX_HEADERS, MAX_HEADER_LINE};

/// One logical header field after unfolding, with its name canonicalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderField {
    pub(crate) name: Cow<'static, str>,
    pub(crate) value: String,
}

/// Compact forms (RFC 3261 §7.3.3 and the RFCs that registered the other letters).
/// Lookup is case-insensitive: esc01.dat uses `C:` and escnull.dat `L:`.
pub const COMPACT_FORMS: &[(char, &str)] = &[
    ('a', "Accept-Contact"),      // RFC 3841
    ('b', "Referred-By"),         // RFC 3892
    ('c', "Content-Type"),        // RFC 3261
    ('d', "Request-Disposition"), // RFC 3841
    ('e', "Content-Encoding"),    // RFC 3261
    ('f', "From"),                // RFC 3261
    ('i', "Call-ID"),             // RFC 3261
    ('j', "Reject-Contact"),      // RFC 3841
    ('k', "Supported"),           // RFC 3261
    ('l', "Content-Length"),      // RFC 3261
    ('m', "Contact"),             // RFC 3261
    ('o', "Event"),               // RFC 6665
    ('r', "Refer-To"),            // RFC 3515
    ('s', "Subject"),             // RFC 3261
    ('t', "To"),                  // RFC 3261
    ('u', "Allow-Events"),        // RFC 6665
    ('v', "Via"),                 // RFC 3261
    ('x', "Session-Expires"),     // RFC 4028
    ('y', "Identity"),            // RFC 8224
];

/// Canonical spellings, so `header("call-id")`, `i` and `CALL-ID` all meet the same field and
/// serialisation writes the form peers expect.
const KNOWN_NAMES: &[&str] = &[
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Organization",
    "Priority",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "Server",
    "Session-Expires",
    "Subject",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
];

/// Headers whose grammar uses quoted-string, so an unbalanced `"` is a syntax error (quotbal.dat).
/// Extension headers are free text (RFC 3261 §25.1 `header-value`), where a lone `"` is legal.
const QUOTED_GRAMMAR: &[&str] = &[
    "From",
    "To",
    "Contact",
    "Route",
    "Record-Route",
    "Reply-To",
    "Via",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Content-Type",
    "Warning",
];

/// The canonical name for a header name as written (compact forms expanded).
pub(crate) fn canonical_name(raw: &str) -> Cow<'static, str> {
    if let &[b] = raw.as_bytes() {
        let c = char::from(b.to_ascii_lowercase());
        if let Some((_, full)) = COMPACT_FORMS.iter().find(|(k, _)| *k == c) {
            return Cow::Borrowed(full);
        }
    }
    // Only the known names of the same length are compared (a few at most): this runs for
    // every header line of every message, and for every `Message::header` lookup.
    let known = known_by_len()
        .get(raw.len())
        .and_then(|names| names.iter().find(|k| k.eq_ignore_ascii_case(raw)));
    match known {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(raw.to_owned()),
    }
}

/// [`KNOWN_NAMES`] grouped by length (index = length).
fn known_by_len() -> &'static [Vec<&'static str>] {
    static BY_LEN: std::sync::OnceLock<Vec<Vec<&'static str>>> = std::sync::OnceLock::new();
    BY_LEN.get_or_init(|| {
        let longest = KNOWN_NAMES.iter().map(|n| n.len()).max().unwrap_or(0);
        let mut by_len = vec![Vec::new(); longest + 1];
        for name in KNOWN_NAMES {
            if let Some(slot) = by_len.get_mut(name.len()) {
                slot.push(*name);
            }
        }
        by_len
    })
}

/// Whether `raw` (a header name as written, not yet trimmed) is Content-Length, in full or
/// compact form: the framing looks for it in every line before the message is split.
pub(crate) fn is_content_length(raw: &[u8]) -> bool {
    let name = trim_wsp_bytes(raw);
    name.eq_ignore_ascii_case(b"l") || name.eq_ignore_ascii_case(b"content-length")
}

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn trim_wsp(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

fn trim_wsp_bytes(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_wsp(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_wsp(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Splits `head` (everything before the CRLFCRLF) into CRLF-terminated physical lines.
/// A bare CR or LF is refused: accepting them is how header-smuggling differentials start.
pub(crate) fn physical_lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(head);
    std::iter::from_fn(move || {
        let cur = rest?;
        match find(cur, b"\r\n") {
            Some(i) => {
                rest = cur.get(i + 2..);
                cur.get(..i)
            }
            None => {
                rest = None;
                Some(cur)
            }
        }
    })
}

/// Position of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(tail) = hay.get(from..) {
        let i = from + tail.iter().position(|b| *b == first)?;
        if hay
            .get(i + 1..)
            .is_some_and(|after| after.starts_with(rest))
        {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// Unfolds and canonicalises the header section (RFC 3261 §7.3.1): continuation lines
/// (starting with SP/HTAB) join the previous field with one SP; LWS around the colon goes.
pub(crate) fn split_head(head: &[u8]) -> Result<(&[u8], Vec<HeaderField>), MessageError> {
    let mut lines = physical_lines(head);
    let start = lines.next().unwrap_or_default();
    if start.contains(&b'\r') || start.contains(&b'\n') {
        return Err(MessageError::BadRequestLine("bare CR or LF"));
    }
    // A field is its line as received unless continuation lines follow (rare): only then is
    // it copied to be joined.
    let mut logical: Vec<Cow<'_, [u8]>> = Vec::with_capacity(16);
    for line in lines {
        if line.contains(&b'\r') || line.contains(&b'\n') {
            return Err(MessageError::bad_header("(line)", "bare CR or LF"));
        }
        match line.first() {
            Some(b) if is_wsp(*b) => {
                let Some(prev) = logical.last_mut() else {
                    return Err(MessageError::bad_header(
                        "(line)",
                        "continuation before any header",
                    ));
                };
                let cont = trim_wsp_bytes(line);
                if !cont.is_empty() {
                    let prev = prev.to_mut();
                    while prev.last().is_some_and(|b| is_wsp(*b)) {
                        prev.pop();
                    }
                    prev.push(b' ');
                    prev.extend_from_slice(cont);
                }
                if prev.len() > MAX_HEADER_LINE {
                    return Err(MessageError::HeaderLineTooLong {
                        limit: MAX_HEADER_LINE,
                    });
                }
            }
            _ => {
                if line.len() > MAX_HEADER_LINE {
                    return Err(MessageError::HeaderLineTooLong {
                        limit: MAX_HEADER_LINE,
                    });
                }
                if logical.len() >= MAX_HEADERS {
                    return Err(MessageError::TooManyHeaders { limit: MAX_HEADERS });
                }
                logical.push(Cow::Borrowed(line));
            }
        }
    }
    let fields = logical
        .iter()
        .map(|l| field_from_line(l))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((start, fields))
}

pub(crate) fn field_from_line(line: &[u8]) -> Result<HeaderField, MessageError> {
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return Err(MessageError::bad_header("(line)", "no colon"));
    };
    let (raw_name, raw_value) = line.split_at(colon);
    field_from_parts(raw_name, raw_value.get(1..).unwrap_or_default())
}

/// A field from its name and value as they would stand around the colon of one line.
pub(crate) fn field_from_parts(
    raw_name: &[u8],
    raw_value: &[u8],
) -> Result<HeaderField, MessageError> {
    let raw_name = trim_wsp_bytes(raw_name);
    let name = std::str::from_utf8(raw_name)
        .ok()
        .filter(|n| is_token(n))
        .ok_or_else(|| MessageError::bad_header("(line)", "header name is not a token"))?;
    let name = canonical_name(name);
    let value = trim_wsp_bytes(raw_value);
    let value = std::str::from_utf8(value)
        .map_err(|_| MessageError::bad_header(&name, "value is not UTF-8"))?;
    check_controls(&name, value)?;
    Ok(HeaderField {
        name,
        value: value.to_owned(),
    })
}

/// Control characters are only legal as a quoted-pair inside a quoted-string (RFC 3261 §25.1;
/// intmeth.dat carries NUL, BEL and DEL that way). Anywhere else a NUL is how C-string parsers
/// downstream get truncated, so refuse it.
fn check_controls(name: &str, value: &str) -> Result<(), MessageError> {
    let mut in_quote = false;
    let mut escaped = false;
    for b in value.bytes() {
        if escaped {
            escaped = false;
            continue;
        }
        let ctl = (b < 0x20 && b != b'\t') || b == 0x7f;
        if ctl {
            return Err(MessageError::bad_header(name, "control character"));
        }
        match b {
            b'"' => in_quote = !in_quote,
            b'\\' if in_quote => escaped = true,
            _ => {}
        }
    }
    if in_quote && QUOTED_GRAMMAR.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        return Err(MessageError::bad_header(name, "unterminated quoted string"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_forms_expand_case_insensitively() {
        assert_eq!(canonical_name("v"), "Via");
        assert_eq!(canonical_name("V"), "Via");
        assert_eq!(canonical_name("i"), "Call-ID");
        assert_eq!(canonical_name("L"), "Content-Length");
        assert_eq!(canonical_name("y"), "Identity");
        assert_eq!(canonical_name("cseq"), "CSeq");
        assert_eq!(canonical_name("X-Custom"), "X-Custom");
        assert_eq!(canonical_name("C%6Fntact"), "C%6Fntact");
        for (c, full) in COMPACT_FORMS {
            assert_eq!(canonical_name(&c.to_string()), *full);
            assert!(
                KNOWN_NAMES.contains(full),
                "{full} missing from KNOWN_NAMES"
            );
        }
    }

    #[test]
    fn unfolds_continuations_and_trims_colon_whitespace() {
        let head =
            b"INVITE sip:a@b SIP/2.0\r\nTO :\r\n sip:x@y ;   tag    = 1\r\ncseq: 0009\r\n  INVITE";
        let (start, fields) = split_head(head).unwrap();
        assert_eq!(start, b"INVITE sip:a@b SIP/2.0");
        assert_eq!(fields[0].name, "To");
        assert_eq!(fields[0].value, "sip:x@y ;   tag    = 1");
        assert_eq!(fields[1].name, "CSeq");
        assert_eq!(fields[1].value, "0009 INVITE");
    }

    #[test]
    fn refuses_bare_lf_and_missing_colon_and_nul() {
        assert!(split_head(b"A sip:a SIP/2.0\r\nTo: a\nFrom: b").is_err());
        assert!(split_head(b"A sip:a SIP/2.0\r\nFoobar roobar").is_err());
        assert!(split_head(b"A sip:a SIP/2.0\r\nX: a\0b").is_err());
        assert!(split_head(b"A sip:a SIP/2.0\r\n continued").is_err());
        // NUL as a quoted-pair is legal (intmeth.dat).
        assert!(split_head(b"A sip:a SIP/2.0\r\nTo: \"a\\\0\" <sip:a@b>").is_ok());
        assert!(split_head(b"A sip:a SIP/2.0\r\nTo: \"a <sip:a@b>").is_err());
        assert!(split_head(b"A sip:a SIP/2.0\r\nX-Free: 5\" tall").is_ok());
    }

    #[test]
    fn limits_field_count_and_length() {
        let mut head = b"A sip:a SIP/2.0".to_vec();
        for _ in 0..=MAX_HEADERS {
            head.extend_from_slice(b"\r\nX: y");
        }
        assert_eq!(
            split_head(&head).unwrap_err(),
            MessageError::TooManyHeaders { limit: MAX_HEADERS }
        );
        let mut head = b"A sip:a SIP/2.0\r\nX: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', MAX_HEADER_LINE));
        assert!(matches!(
            split_head(&head).unwrap_err(),
            MessageError::HeaderLineTooLong { .. }
        ));
        // Folding cannot be used to sneak past the line limit.
        let mut head = b"A sip:a SIP/2.0\r\nX: a".to_vec();
        for _ in 0..20 {
            head.extend_from_slice(b"\r\n ");
            head.extend(std::iter::repeat_n(b'a', 500));
        }
        assert!(matches!(
            split_head(&head).unwrap_err(),
            MessageError::HeaderLineTooLong { .. }
        ));
    }
}
