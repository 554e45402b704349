//! The SIP message layer (RFC 3261 §7, §18, §20): framing, parsing, validation, serialisation.
//!
//! The customer chose `rsip` 0.4 as the SIP parser. Read against RFC 3261 and RFC 4475 it falls
//! short in ways that matter at a network edge (checked in its 0.4.0 source):
//!
//! * no compact header names (`v:`, `i:` … become unknown headers) and no header folding;
//! * no framing: the body is "everything after CRLFCRLF", Content-Length is not consulted, so
//!   dblreq.dat's trailing INVITE would become the body and TCP cannot be framed at all;
//! * `Method` is a closed enum matched case-insensitively: extension methods are unrepresentable
//!   and `invite` is taken for `INVITE`;
//! * it accepts duplicate Call-ID/CSeq/From/To, `;;` parameters, overlarge numbers, any minor
//!   SIP version, and keeps headers as untyped strings until asked.
//!
//! So this module wraps it in three stages:
//!
//! ```text
//!  bytes ─► framing ──────► normalising pre-pass ─► start line ─► strict validation ─► Message
//!           (framing.rs)    (normalise.rs)          (start_line)  (fields.rs, here)      │
//!           UDP: CL or rest unfold, compact → full,  own Method                         ▼
//!           TCP: CL required LWS around ':', limits  enum                  as_rsip(): rsip::SipMessage
//! ```
//!
//! [`Message`] keeps the normalised header list plus the fields the transaction and dialog
//! layers key on (Call-ID, CSeq, tags, Vias), already checked. `rsip` sees only the normalised
//! text, lazily, through [`Message::as_rsip`], for code that wants its typed headers; it returns
//! `None` for what rsip cannot represent (extension methods, for one).
//!
//! Requests that fail get a status via [`MessageError::status`]; responses that fail are
//! dropped (RFC 3261 §18.1.2). [`uas_precheck`] applies the RFC 3261 §8.2 checks a UAS makes
//! before any dialog logic runs.

mod error;
mod fields;
mod framing;
mod normalise;
mod precheck;
mod start_line;
#[cfg(test)]
mod torture;

use std::sync::OnceLock;

use bytes::Bytes;

pub use error::{reason_phrase, MessageError};
pub use fields::{NameAddr, Param, Via, MAX_CSEQ};
pub use framing::{
    parse_datagram, Frame, StreamFramer, MAX_BODY_SIZE, MAX_HEADERS, MAX_HEADER_LINE,
    MAX_MESSAGE_SIZE, MAX_VIAS,
};
pub use normalise::COMPACT_FORMS;
pub use precheck::{uas_precheck, Rejection};
pub use start_line::Method;

use fields::{
    check_call_id, list_elements, media_type, parse_bounded, parse_cseq, parse_name_addr, parse_via,
};
use normalise::{
    canonical_name, field_from_line, field_from_parts, is_token, split_head, HeaderField,
};
use start_line::{parse_start_line, uri_scheme, StartLine};

/// A parsed, validated SIP message: what the rest of the daemon handles.
#[derive(Debug, Clone)]
pub struct Message {
    start: StartLine,
    /// Normalised fields in arrival order, Content-Length excluded (it is derived from the body).
    headers: Vec<HeaderField>,
    body: Bytes,
    call_id: String,
    cseq: u32,
    cseq_method: Method,
    from: NameAddr,
    to: NameAddr,
    /// Never empty: validation requires a Via.
    vias: Vec<Via>,
    top_via: Via,
    max_forwards: Option<u8>,
    content_type: Option<String>,
    rsip: OnceLock<Option<rsip::SipMessage>>,
}

impl PartialEq for Message {
    /// Equality of what is on the wire; the lazily built rsip view does not count.
    fn eq(&self, other: &Self) -> bool {
        self.start == other.start && self.headers == other.headers && self.body == other.body
    }
}

impl Message {
    /// Parses a framed message: `head` is everything before CRLFCRLF, `body` exactly the body.
    pub(crate) fn parse_framed(head: &[u8], body: Bytes) -> Result<Message, MessageError> {
        let (start, fields) = split_head(head)?;
        let start = parse_start_line(start)?;
        Self::assemble(start, fields, body)
    }

    /// A message we originate, from its start line, header fields and body: validated like
    /// received input (the start line, every field's name and value, the header grammar) and
    /// held to the same limits, but without writing it out and framing it again first, which
    /// the call path did for every message it built. A CR or LF anywhere is refused: once
    /// serialised it would split a line (header injection). `Content-Length` is derived from
    /// the body, as for parsed messages.
    pub fn from_parts(
        start_line: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Message, MessageError> {
        if start_line.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(MessageError::BadRequestLine("bare CR or LF"));
        }
        let start = parse_start_line(start_line.as_bytes())?;
        let mut fields = Vec::with_capacity(headers.len() + 1);
        push_fields(&mut fields, headers)?;
        check_size(start_line.len(), &fields, body.len())?;
        Self::assemble(start, fields, body)
    }

    /// Appends header fields and, if given, replaces the body and its Content-Type, with the
    /// validation of [`Self::from_parts`].
    pub fn with_fields(
        self,
        headers: &[(&str, &str)],
        body: Option<(&str, Bytes)>,
    ) -> Result<Message, MessageError> {
        let mut fields = self.headers;
        push_fields(&mut fields, headers)?;
        let body = match body {
            Some((content_type, body)) => {
                fields.retain(|h| h.name != "Content-Type");
                push_fields(&mut fields, &[("Content-Type", content_type)])?;
                body
            }
            None => self.body,
        };
        let start_len = match &self.start {
            StartLine::Request { method, uri } => method.as_str().len() + uri.len() + 9,
            StartLine::Response { reason, .. } => reason.len() + 12,
        };
        check_size(start_len, &fields, body.len())?;
        Self::assemble(self.start, fields, body)
    }

    /// Strict validation (RFC 3261 §8.1.1, §20; RFC 4475 §3.1.2, §3.3).
    fn assemble(
        start: StartLine,
        fields: Vec<HeaderField>,
        body: Bytes,
    ) -> Result<Message, MessageError> {
        if body.len() > MAX_BODY_SIZE {
            return Err(MessageError::BodyTooLarge {
                limit: MAX_BODY_SIZE,
            });
        }
        let mut headers = Vec::with_capacity(fields.len());
        let mut vias: Vec<Via> = Vec::new();
        let mut call_id = None;
        let mut from = None;
        let mut to = None;
        let mut cseq = None;
        let mut max_forwards = None;
        let mut content_type = None;
        for f in fields {
            let v = f.value.as_str();
            match f.name.as_ref() {
                // Framing already consumed it; serialisation writes the true length.
                "Content-Length" => continue,
                "Via" => {
                    for e in list_elements("Via", v)? {
                        if vias.len() >= MAX_VIAS {
                            return Err(MessageError::TooManyVias { limit: MAX_VIAS });
                        }
                        vias.push(parse_via(e)?);
                    }
                }
                "Call-ID" => {
                    check_call_id(v)?;
                    set_once(&mut call_id, v.to_owned(), "Call-ID")?;
                }
                "From" => set_once(&mut from, parse_name_addr("From", v)?, "From")?,
                "To" => set_once(&mut to, parse_name_addr("To", v)?, "To")?,
                "CSeq" => set_once(&mut cseq, parse_cseq(v)?, "CSeq")?,
                "Max-Forwards" => {
                    let n = parse_bounded(v, 255)
                        .and_then(|n| u8::try_from(n).ok())
                        .ok_or_else(|| MessageError::bad_header("Max-Forwards", "not 0..=255"))?;
                    set_once(&mut max_forwards, n, "Max-Forwards")?;
                }
                "Content-Type" => {
                    set_once(
                        &mut content_type,
                        media_type("Content-Type", v)?,
                        "Content-Type",
                    )?;
                }
                "Contact" if v != "*" => {
                    for e in list_elements("Contact", v)? {
                        parse_name_addr("Contact", e)?;
                    }
                }
                name @ ("Route" | "Record-Route") => {
                    for e in list_elements(name, v)? {
                        parse_name_addr(name, e)?;
                    }
                }
                _ => {}
            }
            headers.push(f);
        }
        let top_via = vias
            .first()
            .cloned()
            .ok_or(MessageError::MissingHeader("Via"))?;
        let call_id = call_id.ok_or(MessageError::MissingHeader("Call-ID"))?;
        let from = from.ok_or(MessageError::MissingHeader("From"))?;
        let to = to.ok_or(MessageError::MissingHeader("To"))?;
        let (cseq, cseq_method) = cseq.ok_or(MessageError::MissingHeader("CSeq"))?;
        if let StartLine::Request { method, .. } = &start {
            if *method != cseq_method {
                return Err(MessageError::CSeqMethodMismatch {
                    extension: method.is_extension(),
                });
            }
        }
        Ok(Message {
            start,
            headers,
            body,
            call_id,
            cseq,
            cseq_method,
            from,
            to,
            vias,
            top_via,
            max_forwards,
            content_type,
            rsip: OnceLock::new(),
        })
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// The request method; `None` for responses (use [`Self::cseq_method`]).
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The CSeq method: for responses, the method of the request they answer.
    pub fn cseq_method(&self) -> &Method {
        &self.cseq_method
    }

    /// The CSeq number, always ≤ [`MAX_CSEQ`] (RFC 3261 §8.1.1.5).
    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    /// Status code of a response (100..=699).
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// Reason phrase of a response, as UTF-8 text (never interpreted: unreason.dat).
    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn from_tag(&self) -> Option<&str> {
        self.from.tag()
    }

    pub fn to_tag(&self) -> Option<&str> {
        self.to.tag()
    }

    /// The From value, parsed.
    pub fn from(&self) -> &NameAddr {
        &self.from
    }

    /// The To value, parsed.
    pub fn to(&self) -> &NameAddr {
        &self.to
    }

    /// The topmost Via: where responses go (RFC 3261 §18.2.2), keyed by its branch (§17.2.3).
    pub fn top_via(&self) -> &Via {
        &self.top_via
    }

    /// All Via values, top first, comma-separated values split out.
    pub fn vias(&self) -> &[Via] {
        &self.vias
    }

    pub fn via_count(&self) -> usize {
        self.vias.len()
    }

    pub fn max_forwards(&self) -> Option<u8> {
        self.max_forwards
    }

    /// RFC 3261 §16.3 step 2: a request that would be forwarded gets 483 when this is true.
    /// A UAS processes it normally (zeromf.dat), so the decision stays with the caller.
    pub fn is_zero_max_forwards(&self) -> bool {
        self.max_forwards == Some(0)
    }

    /// The Request-URI as received (no `<>`, no LWS: validated).
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI scheme as written (compare case-insensitively).
    pub fn request_uri_scheme(&self) -> Option<&str> {
        self.request_uri().and_then(uri_scheme)
    }

    /// First value of a header by name: case-insensitive, compact forms resolved
    /// (`header("i")` is `header("Call-ID")`). Content-Length is not stored; see [`Self::body`].
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).next()
    }

    /// Every field line of a header, in order (a comma-joined line is one item).
    pub fn headers<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = canonical_name(name);
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(&name))
            .map(|h| h.value.as_str())
    }

    /// All header fields as `(canonical name, value)`, in order.
    pub fn header_fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|h| (h.name.as_ref(), h.value.as_str()))
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as a cheaply clonable buffer.
    pub fn body_bytes(&self) -> Bytes {
        self.body.clone()
    }

    /// Content-Type as `type/subtype`, parameters stripped (compare case-insensitively).
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The same message as rsip sees it, built on first use from the normalised text.
    /// `None` when rsip cannot represent it (extension methods, non-UTF-8, URIs it rejects).
    pub fn as_rsip(&self) -> Option<&rsip::SipMessage> {
        self.rsip
            .get_or_init(|| rsip::SipMessage::try_from(self.to_bytes().as_ref()).ok())
            .as_ref()
    }

    /// Serialises with full header names, no folding and a Content-Length that always matches
    /// the body (RFC 3261 §18.3 requires it on streams; we write it everywhere).
    pub fn to_bytes(&self) -> Bytes {
        let head_len: usize = self
            .headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 4)
            .sum();
        let mut out = Vec::with_capacity(head_len + self.body.len() + 128);
        // Written piece by piece: this runs for every message sent (no `format!` per line).
        match &self.start {
            StartLine::Request { method, uri } => {
                out.extend_from_slice(method.as_str().as_bytes());
                out.push(b' ');
                out.extend_from_slice(uri.as_bytes());
                out.extend_from_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.extend_from_slice(b"SIP/2.0 ");
                push_decimal(&mut out, usize::from(*code));
                out.push(b' ');
                out.extend_from_slice(reason.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        for h in &self.headers {
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(&mut out, self.body.len());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }

    /// A response to `request` per RFC 3261 §8.2.6: Via(s), From, To, Call-ID and CSeq copied
    /// (Timestamp too for 100, §8.2.6.1). Add the To tag with [`Self::with_to_tag`].
    /// A code outside 100..=699 cannot be sent and becomes 500; CR/LF/controls in the reason
    /// become spaces so the start line cannot be split.
    pub fn response_to(request: &Message, code: u16, reason: &str) -> Message {
        let code = if (100..=699).contains(&code) {
            code
        } else {
            500
        };
        let reason: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let headers = request
            .headers
            .iter()
            .filter(|h| {
                matches!(h.name.as_ref(), "Via" | "From" | "To" | "Call-ID" | "CSeq")
                    || (code == 100 && h.name == "Timestamp")
            })
            .cloned()
            .collect();
        Message {
            start: StartLine::Response { code, reason },
            headers,
            body: Bytes::new(),
            call_id: request.call_id.clone(),
            cseq: request.cseq,
            cseq_method: request.cseq_method.clone(),
            from: request.from.clone(),
            to: request.to.clone(),
            vias: request.vias.clone(),
            top_via: request.top_via.clone(),
            max_forwards: None,
            content_type: None,
            rsip: OnceLock::new(),
        }
    }

    /// Adds `tag` to the To header of a response that has none (RFC 3261 §8.2.6.2; an existing
    /// tag must be kept). A `tag` that is not a token is ignored rather than corrupt the header.
    pub fn with_to_tag(mut self, tag: &str) -> Message {
        if self.is_response() && self.to.tag().is_none() && is_token(tag) {
            self.to
                .params
                .push(("tag".to_owned(), Some(tag.to_owned())));
            if let Some(h) = self.headers.iter_mut().find(|h| h.name == "To") {
                h.value.push_str(";tag=");
                h.value.push_str(tag);
            }
            self.rsip = OnceLock::new();
        }
        self
    }

    /// Appends a header field; the result is re-validated like received input.
    pub fn with_header(self, name: &str, value: &str) -> Result<Message, MessageError> {
        let field = field_from_line(format!("{name}: {value}").as_bytes())?;
        let mut headers = self.headers;
        headers.push(field);
        Self::assemble(self.start, headers, self.body)
    }

    /// Stamps the top Via of a received request with where it really came from: `received`
    /// when the sent-by host is not `source` (RFC 3261 §18.2.1) or when the client asked for
    /// `rport` (RFC 3581 §4, which also requires `received` then), and the source port into
    /// an `rport` the client asked for. Responses copy the Via, so the peer (and any proxy on
    /// the way back) learns its public address. Responses and re-stamping are left alone.
    pub fn with_received(self, source: std::net::SocketAddr) -> Result<Message, MessageError> {
        if self.is_response() {
            return Ok(self);
        }
        let via = &self.top_via;
        let host = via.host().trim_start_matches('[').trim_end_matches(']');
        let same_host = host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip == source.ip());
        let wants_rport = via.has_rport() && via.rport().is_none();
        if same_host && !wants_rport {
            return Ok(self);
        }
        let Some(index) = self.headers.iter().position(|h| h.name == "Via") else {
            return Ok(self);
        };
        let Some(field) = self.headers.get(index) else {
            return Ok(self);
        };
        let value = field.value.as_str();
        let first = list_elements("Via", value)?
            .first()
            .copied()
            .ok_or(MessageError::MissingHeader("Via"))?;
        // `first` borrows from `value`, so its offset locates it exactly.
        let start = (first.as_ptr() as usize).saturating_sub(value.as_ptr() as usize);
        let end = start + first.len();
        let head = first.split_once(';').map_or(first, |(h, _)| h);
        let mut element = head.to_owned();
        for (name, v) in via.params() {
            if name.eq_ignore_ascii_case("received") {
                continue;
            }
            if name.eq_ignore_ascii_case("rport") && wants_rport {
                element.push_str(&format!(";rport={}", source.port()));
                continue;
            }
            element.push(';');
            element.push_str(name);
            if let Some(v) = v {
                element.push('=');
                element.push_str(v);
            }
        }
        element.push_str(&format!(";received={}", source.ip()));
        let new_value = format!(
            "{}{}{}",
            value.get(..start).unwrap_or_default(),
            element,
            value.get(end..).unwrap_or_default()
        );
        let mut headers = self.headers;
        if let Some(h) = headers.get_mut(index) {
            h.value = new_value;
        }
        Self::assemble(self.start, headers, self.body)
    }

    /// Replaces the body and its Content-Type; re-validated like received input.
    pub fn with_body(self, content_type: &str, body: Bytes) -> Result<Message, MessageError> {
        let field = field_from_line(format!("Content-Type: {content_type}").as_bytes())?;
        let mut headers: Vec<HeaderField> = self
            .headers
            .into_iter()
            .filter(|h| h.name != "Content-Type")
            .collect();
        headers.push(field);
        Self::assemble(self.start, headers, body)
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
}

/// Validated fields for `headers`, with the limits the parser applies to received lines.
fn push_fields(
    fields: &mut Vec<HeaderField>,
    headers: &[(&str, &str)],
) -> Result<(), MessageError> {
    for (name, value) in headers {
        if name.len() + value.len() + 2 > MAX_HEADER_LINE {
            return Err(MessageError::HeaderLineTooLong {
                limit: MAX_HEADER_LINE,
            });
        }
        if fields.len() >= MAX_HEADERS {
            return Err(MessageError::TooManyHeaders { limit: MAX_HEADERS });
        }
        if name
            .bytes()
            .chain(value.bytes())
            .any(|b| b == b'\r' || b == b'\n')
        {
            return Err(MessageError::bad_header("(line)", "bare CR or LF"));
        }
        fields.push(field_from_parts(name.as_bytes(), value.as_bytes())?);
    }
    Ok(())
}

/// The size limit of [`parse_datagram`] for a message with this start line length, these
/// fields and this body once serialised (Content-Length line included).
fn check_size(
    start_len: usize,
    fields: &[HeaderField],
    body_len: usize,
) -> Result<(), MessageError> {
    let head: usize = fields
        .iter()
        .map(|h| h.name.len() + h.value.len() + 4)
        .sum();
    let content_length = "Content-Length: \r\n".len() + body_len.to_string().len();
    if start_len + 2 + head + content_length + 2 + body_len > MAX_MESSAGE_SIZE {
        return Err(MessageError::MessageTooLarge {
            limit: MAX_MESSAGE_SIZE,
        });
    }
    Ok(())
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), MessageError> {
    if slot.is_some() {
        return Err(MessageError::DuplicateHeader(name));
    }
    *slot = Some(value);
    Ok(())
}

/// A stateless error response for bytes that failed to parse (RFC 3261 §8.2.6, §18.2.2),
/// built from whatever Via/From/To/Call-ID/CSeq lines can be read. `None` when the error
/// deserves no answer, the input is a response or an ACK (never answered, §17.2.1), or there is
/// no Via to send it to. `to_tag` is supplied by the caller because this core has no randomness.
pub fn stateless_error_response(raw: &[u8], error: &MessageError, to_tag: &str) -> Option<Bytes> {
    let status = error.status()?;
    let start = raw
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .and_then(|i| raw.get(i..))?;
    if start_line::looks_like_response(start) || start.starts_with(b"ACK ") {
        return None;
    }
    let window = start.get(..MAX_MESSAGE_SIZE).unwrap_or(start);
    let head = match normalise::find(window, b"\r\n\r\n") {
        Some(i) => window.get(..i)?,
        None => window,
    };
    let mut copied: Vec<(Cow, String)> = Vec::new();
    for line in normalise::physical_lines(head).skip(1) {
        if line.first().is_some_and(|b| normalise::is_wsp(*b)) {
            if let Some((_, v)) = copied.last_mut() {
                if let Ok(s) = std::str::from_utf8(line) {
                    v.push(' ');
                    v.push_str(normalise::trim_wsp(s));
                }
            }
            continue;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = canonical_name(normalise::trim_wsp(name));
        // Every Via (the response retraces them), only the first of the single-valued ones
        // so that our answer to multi01.dat is itself well-formed.
        let wanted = match name.as_ref() {
            "Via" => copied.len() < MAX_VIAS + 4,
            "From" | "To" | "Call-ID" | "CSeq" => !copied.iter().any(|(n, _)| *n == name),
            _ => false,
        };
        if wanted {
            copied.push((name, normalise::trim_wsp(value).to_owned()));
        }
    }
    copied.retain(|(_, v)| {
        v.len() <= MAX_HEADER_LINE && !v.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f)
    });
    if !copied.iter().any(|(n, _)| n == "Via") {
        return None;
    }
    let mut out = format!("SIP/2.0 {status} {}\r\n", reason_phrase(status));
    let mut seen_to = false;
    for (name, value) in &copied {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        if name == "To" && !seen_to {
            seen_to = true;
            let has_tag = parse_name_addr("To", value).is_ok_and(|n| n.tag().is_some());
            if !has_tag && is_token(to_tag) {
                out.push_str(";tag=");
                out.push_str(to_tag);
            }
        }
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(Bytes::from(out))
}

type Cow = std::borrow::Cow<'static, str>;

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        v: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds;rport\r\n\
        Via: SIP/2.0/TCP p1.example.com:5061;branch=z9hG4bKa, SIP/2.0/UDP p2;branch=z9hG4bKb\r\n\
        Max-Forwards: 0070\r\n\
        t: Bob <sip:bob@example.com>\r\n\
        f: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n\
        i: a84b4c76e66710@pc33.example.com\r\n\
        CSeq: 314159\r\n INVITE\r\n\
        m: <sip:alice@pc33.example.com>\r\n\
        Subject: folded\r\n\t subject\r\n\
        Timestamp: 54\r\n\
        c: application/sdp\r\n\
        l: 4\r\n\r\nv=0\r";

    fn invite() -> Message {
        parse_datagram(INVITE.as_bytes()).unwrap()
    }

    #[test]
    fn accessors() {
        let m = invite();
        assert!(m.is_request());
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.cseq(), 314159);
        assert_eq!(m.cseq_method(), &Method::Invite);
        assert_eq!(m.call_id(), "a84b4c76e66710@pc33.example.com");
        assert_eq!(m.from_tag(), Some("1928301774"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.top_via().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(m.top_via().host(), "pc33.example.com");
        assert!(m.top_via().has_rport());
        assert_eq!(m.via_count(), 3);
        assert_eq!(m.vias()[1].port(), Some(5061));
        assert_eq!(m.max_forwards(), Some(70));
        assert!(!m.is_zero_max_forwards());
        assert_eq!(m.request_uri(), Some("sip:bob@example.com"));
        assert_eq!(m.request_uri_scheme(), Some("sip"));
        assert_eq!(m.header("call-id"), m.header("i"));
        assert_eq!(m.header("Subject"), Some("folded subject"));
        assert_eq!(m.headers("via").count(), 2);
        assert_eq!(m.content_type(), Some("application/sdp"));
        assert_eq!(m.body(), b"v=0\r");
        assert_eq!(m.status(), None);
    }

    #[test]
    fn serialises_canonically_and_round_trips() {
        let m = invite();
        let bytes = m.to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains("\r\nVia: SIP/2.0/UDP pc33"));
        assert!(text.contains("\r\nCall-ID: a84b"));
        assert!(text.contains("\r\nCSeq: 314159 INVITE\r\n"));
        assert!(text.contains("\r\nContent-Length: 4\r\n\r\nv=0\r"));
        assert!(!text.contains("\r\n "), "no folded lines");
        assert_eq!(parse_datagram(&bytes).unwrap(), m);
        let mut stream = StreamFramer::new();
        stream.push(&bytes).unwrap();
        assert_eq!(
            stream.next_frame(),
            Some(Ok(Frame::Message(Box::new(m.clone()))))
        );
    }

    #[test]
    fn rsip_view_for_standard_methods_only() {
        let m = invite();
        let r = m.as_rsip().unwrap();
        assert!(r.is_request());
        assert_eq!(r.body(), &b"v=0\r".to_vec());
        let ext = INVITE
            .replacen("INVITE sip", "NOTAMETHOD sip", 1)
            .replace("314159\r\n INVITE", "314159 NOTAMETHOD");
        let ext = parse_datagram(ext.as_bytes()).unwrap();
        assert_eq!(ext.method(), Some(&Method::Extension("NOTAMETHOD".into())));
        assert!(ext.as_rsip().is_none());
    }

    #[test]
    fn response_builder_follows_8_2_6() {
        let req = invite();
        let r = Message::response_to(&req, 100, "Trying");
        assert_eq!(r.status(), Some(100));
        assert_eq!(r.header("Timestamp"), Some("54"));
        assert_eq!(r.to_tag(), None);
        let r = Message::response_to(&req, 486, "Busy\r\nX: injected").with_to_tag("abc");
        assert_eq!(r.to_tag(), Some("abc"));
        assert_eq!(r.header("Timestamp"), None);
        assert_eq!(r.via_count(), 3);
        assert_eq!(r.headers("Via").count(), 2);
        let wire = parse_datagram(&r.to_bytes()).unwrap();
        assert_eq!(wire, r);
        assert_eq!(wire.reason(), Some("Busy  X: injected"));
        assert_eq!(wire.to_tag(), Some("abc"));
        assert_eq!(wire.call_id(), req.call_id());
        assert_eq!(wire.cseq(), req.cseq());
        assert_eq!(wire.cseq_method(), &Method::Invite);
        assert_eq!(wire.from_tag(), req.from_tag());
        // An existing tag is kept; bogus codes become 500.
        let again = wire.clone().with_to_tag("other");
        assert_eq!(again.to_tag(), Some("abc"));
        assert_eq!(Message::response_to(&req, 42, "x").status(), Some(500));
        let with = r.with_header("Allow", "INVITE, ACK").unwrap();
        assert_eq!(with.header("allow"), Some("INVITE, ACK"));
        assert!(with.clone().with_header("X", "a\r\nVia: evil").is_err());
        assert!(with.clone().with_header("Call-ID", "dup").is_err());
        let with = with
            .with_body("application/sdp", Bytes::from_static(b"v=0\r\n"))
            .unwrap();
        assert!(std::str::from_utf8(&with.to_bytes())
            .unwrap()
            .contains("Content-Length: 5\r\n\r\nv=0\r\n"));
    }

    #[test]
    fn received_and_rport_stamp_the_top_via_only() {
        let src: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let m = invite().with_received(src).unwrap();
        let top = m.top_via();
        assert_eq!(top.received(), Some("192.0.2.7"));
        assert_eq!(top.rport(), Some(40000));
        assert_eq!(top.branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(m.vias()[1].received(), None);
        assert_eq!(m.via_count(), 3);
        // The response retraces it.
        let r = Message::response_to(&m, 200, "OK");
        assert_eq!(r.top_via().rport(), Some(40000));
        // sent-by equal to the source and no rport asked: nothing to add (§18.2.1).
        let raw = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKq\r\n\
            To: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let m = parse_datagram(raw.as_bytes()).unwrap();
        let same = m.clone().with_received(src).unwrap();
        assert_eq!(same, m);
        let v6: std::net::SocketAddr = "[2001:db8::1]:5070".parse().unwrap();
        let m = m.with_received(v6).unwrap();
        assert_eq!(m.top_via().received(), Some("2001:db8::1"));
        assert_eq!(m.top_via().rport(), None);
    }

    #[test]
    fn stateless_error_responses() {
        let raw =
            b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nTo: <sip:a@b>\r\n\
            From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCall-ID: y\r\nCSeq: 1 INVITE\r\n\r\n";
        let err = parse_datagram(raw).unwrap_err();
        assert_eq!(err, MessageError::DuplicateHeader("Call-ID"));
        let resp = stateless_error_response(raw, &err, "t1").unwrap();
        let resp = parse_datagram(&resp).unwrap();
        assert_eq!(resp.status(), Some(400));
        assert_eq!(resp.call_id(), "x");
        let raw =
            b"INVITE sip:a@b SIP/7.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nTo: <sip:a@b>\r\n\
            From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
        let err = parse_datagram(raw).unwrap_err();
        let resp = parse_datagram(&stateless_error_response(raw, &err, "t1").unwrap()).unwrap();
        assert_eq!(resp.status(), Some(505));
        assert_eq!(resp.to_tag(), Some("t1"));
        assert_eq!(resp.top_via().branch(), Some("z9hG4bKx"));
        // Never for responses, ACKs or without a Via.
        assert!(stateless_error_response(b"SIP/2.0 200 OK\r\n\r\n", &err, "t").is_none());
        assert!(
            stateless_error_response(b"ACK sip:a SIP/7.0\r\nVia: x\r\n\r\n", &err, "t").is_none()
        );
        assert!(stateless_error_response(b"INVITE sip:a SIP/7.0\r\n\r\n", &err, "t").is_none());
    }
}

/// Pins the rsip 0.4 behaviours the module docs cite, so an upgrade that changes them is noticed.
#[cfg(test)]
mod rsip_behaviour {
    use rsip::message::HeadersExt;

    const BASE: &str = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n\
        From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n";

    #[test]
    fn rsip_is_lenient_where_we_are_strict() {
        // Methods are matched case-insensitively.
        let lower = format!("invite sip:a@b SIP/2.0\r\n{BASE}\r\n");
        let m = rsip::SipMessage::try_from(lower.as_str()).unwrap();
        assert!(matches!(m, rsip::SipMessage::Request(ref r) if r.method == rsip::Method::Invite));
        // Extension methods are unrepresentable.
        let ext = format!("NEWMETHOD sip:a@b SIP/2.0\r\n{BASE}\r\n");
        assert!(rsip::SipMessage::try_from(ext.as_str()).is_err());
        // No Content-Length framing: trailing octets become body (dblreq.dat).
        let dbl = format!("INVITE sip:a@b SIP/2.0\r\n{BASE}Content-Length: 0\r\n\r\nINVITE x");
        let m = rsip::SipMessage::try_from(dbl.as_str()).unwrap();
        assert_eq!(m.body(), &b"INVITE x".to_vec());
        // Duplicate Call-IDs are accepted (multi01.dat).
        let dup = format!("INVITE sip:a@b SIP/2.0\r\n{BASE}Call-ID: y\r\n\r\n");
        assert!(rsip::SipMessage::try_from(dup.as_str()).is_ok());
        // Compact forms are not expanded: `i:` is not a Call-ID to rsip.
        let compact = "INVITE sip:a@b SIP/2.0\r\ni: x\r\n\r\n";
        let m = rsip::SipMessage::try_from(compact).unwrap();
        assert!(m.call_id_header().is_err());
        // Folded lines are not unfolded: the continuation line fails to tokenize.
        let folded = format!("INVITE sip:a@b SIP/2.0\r\n{BASE}Subject: a\r\n b\r\n\r\n");
        assert!(rsip::SipMessage::try_from(folded.as_str()).is_err());
        // Any major-2 version passes (SIP/2.5 would be 505 for us).
        let v25 = format!("INVITE sip:a@b SIP/2.5\r\n{BASE}\r\n");
        assert!(rsip::SipMessage::try_from(v25.as_str()).is_ok());
    }
}
