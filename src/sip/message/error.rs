//! The one error type of the message layer, and its mapping to SIP status codes.
//!
//! ARCHITECTURE "one function per layer maps errors to SIP status codes": that function is
//! [`MessageError::status`]. A malformed *response* is never answered (RFC 3261 §18.1.2 /
//! RFC 4475 §3.1.2.19: drop it), so every error found while parsing a response is wrapped in
//! [`MessageError::InvalidResponse`], whose status is `None`.

/// Why a datagram or a stream frame could not become a [`super::Message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Only CRLF / whitespace: a keep-alive, not a message (RFC 5626 §3.5.1, RFC 3261 §7.5).
    #[error("no message: only CRLF or whitespace")]
    Empty,
    /// The message (header section plus body) exceeds [`super::MAX_MESSAGE_SIZE`].
    #[error("message exceeds {limit} bytes")]
    MessageTooLarge { limit: usize },
    /// One (unfolded) header field exceeds [`super::MAX_HEADER_LINE`].
    #[error("header line exceeds {limit} bytes")]
    HeaderLineTooLong { limit: usize },
    /// More header fields than [`super::MAX_HEADERS`].
    #[error("more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    /// More Via values than [`super::MAX_VIAS`].
    #[error("more than {limit} Via values")]
    TooManyVias { limit: usize },
    /// Content-Length announces more than [`super::MAX_BODY_SIZE`].
    #[error("body exceeds {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// Stream transports frame by Content-Length only (RFC 3261 §18.3: it MUST be present).
    #[error("Content-Length missing on a stream transport")]
    MissingContentLength,
    /// Negative, non-numeric or empty Content-Length (RFC 4475 §3.1.2.3 ncl.dat).
    #[error("Content-Length is not a decimal number")]
    InvalidContentLength,
    /// Two Content-Length fields with different values (RFC 4475 §3.3.9 mcl01.dat).
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    /// The datagram holds fewer body bytes than announced (RFC 3261 §18.3, clerr.dat).
    #[error("Content-Length {declared} exceeds the {available} body bytes received")]
    TruncatedBody { declared: usize, available: usize },
    /// No empty line ends the header section.
    #[error("header section not terminated by an empty line")]
    UnterminatedHeaders,
    /// The framer hit a fatal error earlier; the connection must be closed.
    #[error("stream framer closed after a fatal framing error")]
    StreamClosed,
    /// Request line does not follow `Method SP Request-URI SP SIP-Version CRLF`.
    #[error("malformed request line: {0}")]
    BadRequestLine(&'static str),
    /// Request-URI is syntactically unacceptable (RFC 4475 §3.1.2.7, §3.1.2.8, §3.1.2.11).
    #[error("malformed Request-URI: {0}")]
    BadRequestUri(&'static str),
    /// A SIP version other than SIP/2.0 (RFC 3261 §8.2.4 ... §21.5.7: 505).
    #[error("SIP version not supported")]
    VersionNotSupported,
    /// Status line does not follow `SIP-Version SP 3DIGIT SP Reason-Phrase CRLF`.
    #[error("malformed status line: {0}")]
    BadStatusLine(&'static str),
    /// A header line or value breaks the RFC 3261 §25 grammar.
    #[error("malformed {name} header: {why}")]
    BadHeader { name: String, why: &'static str },
    /// One of Call-ID, From, To, CSeq, Via is absent (RFC 3261 §8.1.1, insuf.dat).
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A single-valued header appears more than once (RFC 4475 §3.3.8 multi01.dat).
    #[error("duplicate single-valued header {0}")]
    DuplicateHeader(&'static str),
    /// CSeq method differs from the request method (RFC 3261 §8.1.1.5). `extension` is true when
    /// the request method is not one we recognise: RFC 4475 §3.1.2.18 prefers 501 then.
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch { extension: bool },
    /// Any defect in a response: never answered, just dropped.
    #[error("invalid response dropped: {0}")]
    InvalidResponse(Box<MessageError>),
}

impl MessageError {
    /// The status code to answer a request with, or `None` to drop silently.
    ///
    /// `Some` means "this deserves an answer if one can be addressed" (a top Via is needed; see
    /// [`super::stateless_error_response`]).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Empty
            | Self::StreamClosed
            | Self::InvalidResponse(_)
            | Self::BadStatusLine(_) => None,
            // RFC 3261 §21.5.12 513 Message Too Large covers every size limit on the head.
            Self::MessageTooLarge { .. }
            | Self::HeaderLineTooLong { .. }
            | Self::TooManyHeaders { .. } => Some(513),
            // RFC 3261 §21.4.11 413 Request Entity Too Large is about the body.
            Self::BodyTooLarge { .. } => Some(413),
            // More hops than Max-Forwards' recommended 70 (RFC 3261 §8.1.1.6) means a loop.
            Self::TooManyVias { .. } => Some(483),
            Self::VersionNotSupported => Some(505),
            Self::CSeqMethodMismatch { extension: true } => Some(501),
            Self::MissingContentLength
            | Self::InvalidContentLength
            | Self::ConflictingContentLength
            | Self::TruncatedBody { .. }
            | Self::UnterminatedHeaders
            | Self::BadRequestLine(_)
            | Self::BadRequestUri(_)
            | Self::BadHeader { .. }
            | Self::MissingHeader(_)
            | Self::DuplicateHeader(_)
            | Self::CSeqMethodMismatch { extension: false } => Some(400),
        }
    }

    /// The reason phrase matching [`Self::status`] (RFC 3261 §21).
    pub fn reason(&self) -> Option<&'static str> {
        self.status().map(reason_phrase)
    }

    /// True when a stream connection cannot be resynchronised and must be closed
    /// (RFC 3261 §18.3: without a trustworthy Content-Length the next message start is unknown).
    pub fn is_fatal_for_stream(&self) -> bool {
        matches!(
            self,
            Self::MessageTooLarge { .. }
                | Self::HeaderLineTooLong { .. }
                | Self::BodyTooLarge { .. }
                | Self::MissingContentLength
                | Self::InvalidContentLength
                | Self::ConflictingContentLength
                | Self::StreamClosed
        )
    }

    /// Marks an error as belonging to a response, so it is dropped rather than answered.
    pub(crate) fn in_response(self) -> Self {
        match self {
            Self::InvalidResponse(_) => self,
            other => Self::InvalidResponse(Box::new(other)),
        }
    }

    pub(crate) fn bad_header(name: &str, why: &'static str) -> Self {
        Self::BadHeader {
            name: name.to_owned(),
            why,
        }
    }
}

/// Default reason phrases for the codes this layer produces (RFC 3261 §21).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        603 => "Decline",
        _ => match status / 100 {
            1 => "Trying",
            2 => "OK",
            3 => "Redirected",
            4 => "Request Failure",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_never_answered() {
        let e = MessageError::MissingHeader("Call-ID").in_response();
        assert_eq!(e.status(), None);
        assert_eq!(e.clone().in_response(), e);
    }

    #[test]
    fn status_and_reason_agree() {
        assert_eq!(MessageError::VersionNotSupported.status(), Some(505));
        assert_eq!(
            MessageError::VersionNotSupported.reason(),
            Some("Version Not Supported")
        );
        assert_eq!(
            MessageError::CSeqMethodMismatch { extension: true }.status(),
            Some(501)
        );
        assert_eq!(
            MessageError::CSeqMethodMismatch { extension: false }.status(),
            Some(400)
        );
        assert!(MessageError::InvalidContentLength.is_fatal_for_stream());
        assert!(!MessageError::TruncatedBody {
            declared: 2,
            available: 1
        }
        .is_fatal_for_stream());
    }
}
