//! Message framing (RFC 3261 §18.3): one message per UDP datagram, Content-Length delimited
//! messages on TCP/TLS, with hard size limits so no peer can make us buffer without bound.

use bytes::{Bytes, BytesMut};

use super::error::MessageError;
use super::normalise::{find, is_content_length, is_wsp, physical_lines, trim_wsp};
use super::start_line::looks_like_response;
use super::Message;

/// Largest message (head + body) we accept. UDP cannot carry more than 65 507 bytes anyway and
/// nothing a phone-answering B2BUA handles (INVITE with SDP, REGISTER) comes close; a bound
/// here is what keeps a TCP peer from growing our buffer forever.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// Largest unfolded header field. Long enough for longreq.dat and RFC 8224 Identity, short
/// enough that one header cannot eat the whole message budget.
pub const MAX_HEADER_LINE: usize = 8 * 1024;
/// Most header fields per message; real traffic uses 10-30, torture tests under 60.
pub const MAX_HEADERS: usize = 256;
/// Most Via values: beyond Max-Forwards' recommended start of 70 (RFC 3261 §8.1.1.6) the request
/// has looped, and every Via is copied into each response we send.
pub const MAX_VIAS: usize = 70;
/// Largest body: SDP offers are a few KiB; multipart with S/MIME stays well under this.
pub const MAX_BODY_SIZE: usize = 32 * 1024;

/// Parses one UDP datagram (RFC 3261 §18.3).
///
/// * The body is exactly Content-Length bytes; trailing octets are ignored, never parsed as a
///   second message (RFC 4475 §3.1.1.8 dblreq.dat).
/// * Content-Length larger than what arrived is a 400 (clerr.dat).
/// * Without Content-Length the body is the rest of the datagram (inv2543.dat).
pub fn parse_datagram(buf: &[u8]) -> Result<Message, MessageError> {
    let start = buf
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .ok_or(MessageError::Empty)?;
    let msg = buf.get(start..).unwrap_or_default();
    if msg.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(MessageError::Empty);
    }
    frame_datagram(msg).map_err(|e| {
        if looks_like_response(msg) {
            e.in_response()
        } else {
            e
        }
    })
}

fn frame_datagram(msg: &[u8]) -> Result<Message, MessageError> {
    let window = msg.get(..MAX_MESSAGE_SIZE).unwrap_or(msg);
    let head_end = match find(window, b"\r\n\r\n") {
        Some(i) => i,
        None if msg.len() > MAX_MESSAGE_SIZE => {
            return Err(MessageError::MessageTooLarge {
                limit: MAX_MESSAGE_SIZE,
            })
        }
        None => return Err(MessageError::UnterminatedHeaders),
    };
    let head = msg.get(..head_end).unwrap_or_default();
    let after = msg.get(head_end + 4..).unwrap_or_default();
    let body = match content_length(head)? {
        Some(n) if n > MAX_BODY_SIZE => {
            return Err(MessageError::BodyTooLarge {
                limit: MAX_BODY_SIZE,
            })
        }
        Some(n) => after.get(..n).ok_or(MessageError::TruncatedBody {
            declared: n,
            available: after.len(),
        })?,
        None if after.len() > MAX_BODY_SIZE => {
            return Err(MessageError::BodyTooLarge {
                limit: MAX_BODY_SIZE,
            })
        }
        None => after,
    };
    if head_end + 4 + body.len() > MAX_MESSAGE_SIZE {
        return Err(MessageError::MessageTooLarge {
            limit: MAX_MESSAGE_SIZE,
        });
    }
    Message::parse_framed(head, Bytes::copy_from_slice(body))
}

/// The Content-Length of a header section (`l` included), scanned leniently so framing works
/// even when another header is malformed; the full parse reports that one.
///
/// Identical duplicates are tolerated (framing is unambiguous); different values are not
/// (mcl01.dat). Negative or non-numeric values are errors (ncl.dat), never a counter.
pub(crate) fn content_length(head: &[u8]) -> Result<Option<usize>, MessageError> {
    let mut found: Option<usize> = None;
    let mut collecting: Option<String> = None;
    let mut values: Vec<String> = Vec::new();
    for line in physical_lines(head).skip(1) {
        if line.first().is_some_and(|b| is_wsp(*b)) {
            if let Some(v) = collecting.as_mut() {
                v.push(' ');
                v.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        if let Some(v) = collecting.take() {
            values.push(v);
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        if is_content_length(name) {
            collecting = Some(String::from_utf8_lossy(value.get(1..).unwrap_or_default()).into());
        }
    }
    values.extend(collecting);
    for v in values {
        let v = trim_wsp(&v);
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MessageError::InvalidContentLength);
        }
        let digits = v.trim_start_matches('0');
        // More than 9 significant digits is already far beyond MAX_BODY_SIZE.
        let n = if digits.is_empty() {
            0
        } else if digits.len() > 9 {
            usize::MAX
        } else {
            digits
                .parse::<usize>()
                .map_err(|_| MessageError::InvalidContentLength)?
        };
        match found {
            Some(prev) if prev != n => return Err(MessageError::ConflictingContentLength),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

/// What a stream connection yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A well-formed message.
    Message(Box<Message>),
    /// RFC 5626 §3.5.1 keep-alive "ping" (CRLFCRLF): the edge answers with a single CRLF "pong".
    Ping,
    /// Correctly framed but invalid: the connection survives. `raw` is the frame, for
    /// [`super::stateless_error_response`].
    Rejected { error: MessageError, raw: Bytes },
}

/// Incremental framer for one TCP/TLS connection (RFC 3261 §18.3: Content-Length is mandatory).
///
/// Contract: after every [`StreamFramer::push`], call [`StreamFramer::next_frame`] until it returns
/// `None`. Then the buffer never holds more than [`MAX_MESSAGE_SIZE`] plus one read. An `Err`
/// from either is fatal: close the connection (ncl.dat, mcl01.dat). A message that never
/// completes (clerr.dat) just waits; the edge closes the connection on its idle timer.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: BytesMut,
    /// Bytes of the current message already searched for CRLFCRLF, so byte-at-a-time input
    /// costs O(n) overall rather than O(n²).
    scanned: usize,
    /// Start of the physical line being scanned (for the early line-length check).
    line_start: usize,
    /// `(head_end, total)` once the header section of the current message is known.
    pending: Option<(usize, usize)>,
    closed: bool,
}

impl StreamFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), MessageError> {
        if self.closed {
            return Err(MessageError::StreamClosed);
        }
        if self.buf.len() > MAX_MESSAGE_SIZE {
            // The caller did not drain, or a message is oversized: refuse rather than grow.
            return Err(self.fail(MessageError::MessageTooLarge {
                limit: MAX_MESSAGE_SIZE,
            }));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Bytes currently buffered (for tests and metrics).
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// True once a fatal error was reported.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next complete frame, `None` when more bytes are needed (or after a fatal error).
    pub fn next_frame(&mut self) -> Option<Result<Frame, MessageError>> {
        if self.closed {
            return None;
        }
        if self.scanned == 0 && self.pending.is_none() {
            // RFC 3261 §7.5 / RFC 5626 §3.5.1: CRLFs between messages are keep-alives.
            loop {
                if self.buf.starts_with(b"\r\n\r\n") {
                    let _ = self.buf.split_to(4);
                    return Some(Ok(Frame::Ping));
                }
                // "\r", "\r\n", "\r\n\r": cannot tell a ping from a lone CRLF yet.
                if !self.buf.is_empty() && b"\r\n\r".starts_with(&self.buf) {
                    return None;
                }
                if self.buf.starts_with(b"\r\n") {
                    let _ = self.buf.split_to(2);
                    continue;
                }
                break;
            }
        }
        let (head_end, total) = match self.pending {
            Some(p) => p,
            None => match self.scan_head() {
                Ok(Some(p)) => p,
                Ok(None) => return None,
                Err(e) => return Some(Err(self.fail(e))),
            },
        };
        if self.buf.len() < total {
            return None;
        }
        let raw = self.buf.split_to(total).freeze();
        self.scanned = 0;
        self.line_start = 0;
        self.pending = None;
        let head = raw.get(..head_end).unwrap_or_default();
        let body = raw.slice((head_end + 4).min(total)..total);
        Some(Ok(match Message::parse_framed(head, body) {
            Ok(m) => Frame::Message(Box::new(m)),
            Err(error) => {
                let error = if looks_like_response(&raw) {
                    error.in_response()
                } else {
                    error
                };
                Frame::Rejected { error, raw }
            }
        }))
    }

    /// Finds the end of the header section and the message's total size.
    fn scan_head(&mut self) -> Result<Option<(usize, usize)>, MessageError> {
        let limit = self.buf.len().min(MAX_MESSAGE_SIZE);
        let mut head_end = None;
        while self.scanned < limit {
            let i = self.scanned;
            if self.buf.get(i) == Some(&b'\n') {
                if i >= 3 && self.buf.get(i - 3..=i) == Some(b"\r\n\r\n".as_slice()) {
                    head_end = Some(i - 3);
                    self.scanned += 1;
                    break;
                }
                self.line_start = i + 1;
            } else if i + 1 - self.line_start > MAX_HEADER_LINE {
                return Err(MessageError::HeaderLineTooLong {
                    limit: MAX_HEADER_LINE,
                });
            }
            self.scanned += 1;
        }
        let Some(head_end) = head_end else {
            if self.buf.len() >= MAX_MESSAGE_SIZE {
                return Err(MessageError::MessageTooLarge {
                    limit: MAX_MESSAGE_SIZE,
                });
            }
            return Ok(None);
        };
        let head = self.buf.get(..head_end).unwrap_or_default();
        let body_len = content_length(head)?.ok_or(MessageError::MissingContentLength)?;
        if body_len > MAX_BODY_SIZE {
            return Err(MessageError::BodyTooLarge {
                limit: MAX_BODY_SIZE,
            });
        }
        let total = head_end + 4 + body_len;
        if total > MAX_MESSAGE_SIZE {
            return Err(MessageError::MessageTooLarge {
                limit: MAX_MESSAGE_SIZE,
            });
        }
        self.pending = Some((head_end, total));
        Ok(Some((head_end, total)))
    }

    fn fail(&mut self, e: MessageError) -> MessageError {
        self.closed = true;
        self.buf = BytesMut::new();
        self.pending = None;
        e
    }
}
