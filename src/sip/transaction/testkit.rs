//! Test support: a fake clock, a toy wire codec standing in for the message layer, and a
//! [`WireBuilder`] on top of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::envelope::{Kind, Method, TsxMessage, WireBuilder};
use super::event::{Transmit, TsxEvent};
use super::layer::{LayerConfig, TransactionLayer};

/// Fake time: one base instant read once; everything else is base + offset, so behaviour
/// depends only on offsets and tests are deterministic.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    base: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            base: Instant::now(),
        }
    }

    pub(crate) fn at(&self, millis: u64) -> Instant {
        self.base + ms(millis)
    }

    pub(crate) fn ms_of(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }
}

pub(crate) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Serialises the matching fields; the result is what `bytes` carries in tests.
pub(crate) fn encode(msg: &TsxMessage) -> Arc<[u8]> {
    let kind = match &msg.kind {
        Kind::Request { method } => format!("REQ {method}"),
        Kind::Response { status } => format!("RES {status}"),
    };
    let text = [
        kind,
        msg.branch.clone(),
        msg.sent_by.clone(),
        msg.cseq.to_string(),
        msg.cseq_method.to_string(),
        msg.call_id.clone(),
        msg.from_tag.clone().unwrap_or_else(|| "-".into()),
        msg.to_tag.clone().unwrap_or_else(|| "-".into()),
    ]
    .join("\n");
    Arc::from(text.into_bytes().into_boxed_slice())
}

pub(crate) fn decode(bytes: &[u8]) -> Option<TsxMessage> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split('\n');
    let first = lines.next()?;
    let kind = if let Some(m) = first.strip_prefix("REQ ") {
        Kind::Request {
            method: Method::from_token(m),
        }
    } else {
        Kind::Response {
            status: first.strip_prefix("RES ")?.parse().ok()?,
        }
    };
    let mut next = || lines.next().map(str::to_owned);
    let branch = next()?;
    let sent_by = next()?;
    let cseq = next()?.parse().ok()?;
    let cseq_method = Method::from_token(&next()?);
    let call_id = next()?;
    let tag = |s: String| (s != "-").then_some(s);
    let from_tag = tag(next()?);
    let to_tag = tag(next()?);
    Some(TsxMessage {
        kind,
        branch,
        sent_by,
        cseq,
        cseq_method,
        call_id,
        from_tag,
        to_tag,
        bytes: Arc::from(bytes),
    })
}

fn sealed(mut msg: TsxMessage) -> TsxMessage {
    msg.bytes = encode(&msg);
    msg
}

/// A request as a UAC would build it; Call-ID derived from the branch for readability.
pub(crate) fn request(method: Method, branch: &str, cseq: u32) -> TsxMessage {
    sealed(TsxMessage {
        kind: Kind::Request {
            method: method.clone(),
        },
        branch: branch.into(),
        sent_by: "uac.example:5060".into(),
        cseq,
        cseq_method: method,
        call_id: format!("call-{branch}"),
        from_tag: Some("fromtag".into()),
        to_tag: None,
        bytes: Arc::from(&[][..]),
    })
}

/// A response to `req`, copying Via, CSeq, Call-ID and tags (§8.2.6.2).
pub(crate) fn response_to(req: &TsxMessage, status: u16, to_tag: Option<&str>) -> TsxMessage {
    sealed(TsxMessage {
        kind: Kind::Response { status },
        to_tag: to_tag.map(str::to_owned).or_else(|| req.to_tag.clone()),
        ..req.clone()
    })
}

/// An in-dialog request of `call` (ACK for 2xx, BYE) with its own branch.
pub(crate) fn in_dialog(
    call: &TsxMessage,
    method: Method,
    branch: &str,
    cseq: u32,
    to_tag: Option<String>,
) -> TsxMessage {
    sealed(TsxMessage {
        kind: Kind::Request {
            method: method.clone(),
        },
        branch: branch.into(),
        cseq,
        cseq_method: method,
        to_tag,
        ..call.clone()
    })
}

/// Builds ACK and 100 the way §17.1.1.3 and §8.2.6.1 describe, in the toy codec.
#[derive(Debug, Default)]
pub(crate) struct ToyBuilder;

impl WireBuilder for ToyBuilder {
    fn ack_for_non_2xx(&self, invite: &TsxMessage, response: &TsxMessage) -> Option<TsxMessage> {
        Some(sealed(TsxMessage {
            kind: Kind::Request {
                method: Method::Ack,
            },
            cseq_method: Method::Ack,
            to_tag: response.to_tag.clone(),
            ..invite.clone()
        }))
    }

    fn trying_for(&self, request: &TsxMessage) -> Option<TsxMessage> {
        Some(response_to(request, 100, None))
    }
}

pub(crate) fn layer(config: LayerConfig) -> TransactionLayer {
    match TransactionLayer::new(config, Box::new(ToyBuilder)) {
        Ok(layer) => layer,
        Err(e) => panic!("test config rejected: {e}"),
    }
}

/// Drains a layer's outputs.
pub(crate) fn drain(layer: &mut TransactionLayer) -> (Vec<Transmit>, Vec<TsxEvent>) {
    let mut transmits = Vec::new();
    while let Some(t) = layer.poll_transmit() {
        transmits.push(t);
    }
    let mut events = Vec::new();
    while let Some(e) = layer.poll_event() {
        events.push(e);
    }
    (transmits, events)
}

#[test]
fn toy_codec_round_trips() {
    let req = request(Method::Invite, "z9hG4bKx", 3);
    assert_eq!(decode(&req.bytes), Some(req.clone()));
    let resp = response_to(&req, 486, Some("tt"));
    assert_eq!(decode(&resp.bytes), Some(resp));
}
