//! The minimal view of a SIP message that the transaction layer needs.
//!
//! The transaction layer must not depend on the message layer (it is written separately and
//! the integrator maps the parsed message onto [`TsxMessage`]). Everything RFC 3261 §17 matches
//! on is lifted into plain fields; the wire form travels alongside as opaque bytes so that
//! retransmissions are byte-identical (RFC 3261 §17.1.1.2: "retransmit the request").

use std::fmt;
use std::sync::Arc;

/// A SIP method. Method names are case-sensitive (RFC 3261 §7.1), so `Other` keeps the exact
/// token and no normalisation is applied.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Other(String),
}

impl Method {
    /// The wire token, as written in the request line and the CSeq header.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Other(token) => token,
        }
    }

    /// Parses a method token exactly (case-sensitive, RFC 3261 §7.1).
    pub fn from_token(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            other => Method::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a message is a request or a response (RFC 3261 §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Request { method: Method },
    Response { status: u16 },
}

/// The fields of a SIP message that transaction matching and state changes depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsxMessage {
    pub kind: Kind,
    /// `branch` parameter of the top Via (RFC 3261 §17.1.3, §17.2.3).
    pub branch: String,
    /// `sent-by` of the top Via, `host[:port]` as normalised by the message layer (§17.2.3).
    pub sent_by: String,
    pub cseq: u32,
    pub cseq_method: Method,
    pub call_id: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    /// The wire form; never inspected here, only (re)transmitted.
    pub bytes: Arc<[u8]>,
}

impl TsxMessage {
    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<&Method> {
        match &self.kind {
            Kind::Request { method } => Some(method),
            Kind::Response { .. } => None,
        }
    }

    /// The status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            Kind::Request { .. } => None,
            Kind::Response { status } => Some(status),
        }
    }
}

/// Builds the few messages the transaction layer must originate itself. The layer never
/// parses or prints SIP; the integrator implements this with the message layer.
pub trait WireBuilder: Send {
    /// The ACK for a non-2xx final response (§17.1.1.3): Request-URI, Call-ID, From, CSeq
    /// number and top Via (same branch) of `invite`, To of `response`, CSeq method ACK.
    /// `None` if it cannot be built; the transaction then stays silent and lets the server's
    /// Timer H expire.
    fn ack_for_non_2xx(&self, invite: &TsxMessage, response: &TsxMessage) -> Option<TsxMessage>;

    /// A 100 Trying for `request` (§8.2.6.1: copy Via, From, Call-ID, CSeq, To without tag).
    fn trying_for(&self, request: &TsxMessage) -> Option<TsxMessage>;
}

/// Response classes as RFC 3261 §7.2 and §17 use them to drive state changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusClass {
    Provisional,
    Success,
    /// 300–699: every final response that is not 2xx ("non-2xx final" in §17).
    Failure,
}

impl StatusClass {
    /// `None` for codes outside 100–699, which §7.2 does not define and which no transaction
    /// may act upon.
    pub(crate) fn of(status: u16) -> Option<StatusClass> {
        match status {
            100..=199 => Some(StatusClass::Provisional),
            200..=299 => Some(StatusClass::Success),
            300..=699 => Some(StatusClass::Failure),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_tokens_round_trip_case_sensitively() {
        for m in [
            Method::Invite,
            Method::Ack,
            Method::Bye,
            Method::Cancel,
            Method::Options,
            Method::Register,
            Method::Other("INFO".into()),
        ] {
            assert_eq!(Method::from_token(m.as_str()), m);
        }
        assert_eq!(Method::from_token("invite"), Method::Other("invite".into()));
    }

    #[test]
    fn status_classes_follow_rfc3261_7_2() {
        assert_eq!(StatusClass::of(99), None);
        assert_eq!(StatusClass::of(100), Some(StatusClass::Provisional));
        assert_eq!(StatusClass::of(199), Some(StatusClass::Provisional));
        assert_eq!(StatusClass::of(200), Some(StatusClass::Success));
        assert_eq!(StatusClass::of(300), Some(StatusClass::Failure));
        assert_eq!(StatusClass::of(699), Some(StatusClass::Failure));
        assert_eq!(StatusClass::of(700), None);
    }
}
