//! The daemon's own SIP user agent for a browser seat (issue #11), sans-IO.
//!
//! A browser seat is rung exactly like a softphone: the call path (B2BUA and ACD) sends its
//! INVITE, CANCEL and BYE over loopback UDP to this agent, which stands in for the phone the
//! operator does not have. The agent turns them into events for the page (ringing, connected,
//! ended) and the operator's clicks into SIP answers (200, 603, BYE). Because the ACD only
//! ever sees SIP, ringing, answer, decline and no-answer of a browser seat are counted by the
//! very code that counts them for softphones; nothing in `acd` or `b2bua` knows browsers.
//!
//! ```text
//!            INVITE ─► 180 (+ Offered)        answer ─► 200 + SDP (retransmitted until ACK)
//!   Idle ─────────────────────────► Ringing ─────────────────────────────────► Answered
//!    ▲   CANCEL ─► 200, 487 (Ended cancelled)  │ decline ─► 603                  │ BYE in ─► 200
//!    └─────────────────────────────────────────┘ (Ended declined)                │ hang_up ─► BYE
//!    └────────────────────────────────────────────────────────────────────────────┘ (Ended)
//! ```
//!
//! A late offer (INVITE without SDP) gets our G.711 offer in the 200 and is connected by the
//! answer in the ACK. One call at a time: a second INVITE while busy gets 486. Only the daemon talks to this
//! agent (it listens on loopback or the SIP address and answers whoever sent the INVITE).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::b2bua::wire::{self, uri_of, RequestSpec, BRANCH_PREFIX};
use super::message::{Message, Method};
use super::sdp::{rewrite_for_anchor, Codec, Sdp};
use crate::media::g711::Law;

/// RFC 3261 T1 and T2 (UDP retransmission of our 2xx and BYE).
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// Retransmissions give up after 64·T1 (RFC 3261 §13.3.1.4, §17.1.2.2).
const GIVE_UP: Duration = Duration::from_secs(32);

/// What the page is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UaEvent {
    /// A call rings at the seat (the console's live feed shows the same call).
    Offered {
        contractor: String,
        greeting: String,
        caller: String,
    },
    /// Answered: media goes to `remote` (our relay) in `law`.
    Connected { remote: SocketAddr, law: Law },
    /// The call (or the offer) is over.
    Ended { reason: EndReason },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The call path withdrew the offer (ring timeout, caller hung up, seat offline).
    Cancelled,
    /// The operator declined.
    Declined,
    /// The caller's side ended the call (BYE from the call path).
    Remote,
    /// The operator hung up (or the page went away).
    Local,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Cancelled => "cancelled",
            EndReason::Declined => "declined",
            EndReason::Remote => "remote",
            EndReason::Local => "local",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UaError {
    #[error("no call is ringing")]
    NotRinging,
    #[error("no call is connected")]
    NotConnected,
}

#[derive(Debug)]
struct Dialog {
    invite: Message,
    peer: SocketAddr,
    to_tag: String,
    /// The last response to the INVITE, sent again when the INVITE is retransmitted.
    last: Message,
}

/// A message retransmitted on T1 doubling to T2 until answered or [`GIVE_UP`].
#[derive(Debug)]
struct Retransmit {
    message: Message,
    peer: SocketAddr,
    next: Instant,
    interval: Duration,
    until: Instant,
}

impl Retransmit {
    fn new(now: Instant, message: Message, peer: SocketAddr) -> Retransmit {
        Retransmit {
            message,
            peer,
            next: now + T1,
            interval: T1,
            until: now + GIVE_UP,
        }
    }
}

#[derive(Debug)]
enum State {
    Idle,
    Ringing(Box<Dialog>),
    /// `ok` is retransmitted until the ACK arrives.
    Answered(Box<Dialog>, Option<Box<Retransmit>>),
}

/// The agent of one browser seat.
#[derive(Debug)]
pub struct BrowserUa {
    seat: String,
    /// Our SIP address (Contact, Via of our BYE).
    local: SocketAddr,
    /// Our RTP address (the SDP answer).
    media: SocketAddr,
    state: State,
    /// Our BYE until it is answered.
    bye: Option<Retransmit>,
    unique: u64,
    out: VecDeque<(SocketAddr, Message)>,
    events: VecDeque<UaEvent>,
}

impl BrowserUa {
    /// `seed` makes our tags and branches unique (the edge passes a random number).
    pub fn new(seat: &str, local: SocketAddr, media: SocketAddr, seed: u64) -> BrowserUa {
        BrowserUa {
            seat: seat.to_owned(),
            local,
            media,
            state: State::Idle,
            bye: None,
            unique: seed,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    fn unique(&mut self) -> String {
        self.unique = self.unique.wrapping_add(1);
        format!("{:x}", self.unique)
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.seat, wire::host_port(self.local))
    }

    /// Messages to send, with where to.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Message)> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    /// Nothing in progress: no call, no unanswered BYE.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle) && self.bye.is_none()
    }

    pub fn is_ringing(&self) -> bool {
        matches!(self.state, State::Ringing(_))
    }

    pub fn is_answered(&self) -> bool {
        matches!(self.state, State::Answered(..))
    }

    fn respond(&mut self, peer: SocketAddr, req: &Message, code: u16, tag: Option<&str>) {
        let reason = super::message::reason_phrase(code);
        if let Some(m) = wire::response(req, code, reason, tag, &[], None) {
            self.out.push_back((peer, m));
        }
    }

    pub fn handle_message(&mut self, peer: SocketAddr, msg: Message) {
        if msg.is_response() {
            if msg.cseq_method() == &Method::Bye
                && self
                    .bye
                    .as_ref()
                    .is_some_and(|b| b.message.call_id() == msg.call_id())
                && msg.status().is_some_and(|s| s >= 200)
            {
                self.bye = None;
            }
            return;
        }
        let same_call = |d: &Dialog| d.invite.call_id() == msg.call_id();
        match msg.method() {
            Some(Method::Invite) if msg.to_tag().is_none() => {
                let retransmitted = match &self.state {
                    State::Ringing(d) | State::Answered(d, _) if same_call(d) => {
                        Some(d.last.clone())
                    }
                    _ => None,
                };
                if let Some(last) = retransmitted {
                    self.out.push_back((peer, last));
                    return;
                }
                if !matches!(self.state, State::Idle) {
                    let tag = self.unique();
                    self.respond(peer, &msg, 486, Some(&tag));
                    return;
                }
                let tag = self.unique();
                let contact = self.contact();
                let Some(ringing) = wire::response(
                    &msg,
                    180,
                    "Ringing",
                    Some(&tag),
                    &[("Contact", &contact)],
                    None,
                ) else {
                    return;
                };
                self.out.push_back((peer, ringing.clone()));
                let text = |name: &str| msg.header(name).unwrap_or_default().to_owned();
                let caller = msg.from().display.clone().unwrap_or_default();
                // The call path writes "【contractor】caller": the page shows them apart.
                let caller = caller
                    .split_once('】')
                    .map_or(caller.as_str(), |(_, c)| c)
                    .trim_matches('"')
                    .to_owned();
                self.events.push_back(UaEvent::Offered {
                    contractor: text("X-Smartdesk-Contractor-Name"),
                    greeting: text("X-Smartdesk-Greeting"),
                    caller,
                });
                self.state = State::Ringing(Box::new(Dialog {
                    invite: msg,
                    peer,
                    to_tag: tag,
                    last: ringing,
                }));
            }
            Some(Method::Invite) => {
                // A re-INVITE: keep the media as it is and answer with our description.
                let (tag, ok) = match &self.state {
                    State::Answered(d, _) if same_call(d) => (d.to_tag.clone(), true),
                    _ => (String::new(), false),
                };
                if !ok {
                    self.respond(peer, &msg, 481, None);
                    return;
                }
                let sdp = self.answer_sdp(&msg).map(|(s, _, _)| s);
                let contact = self.contact();
                match sdp {
                    Some(sdp) => {
                        if let Some(m) = wire::response(
                            &msg,
                            200,
                            "OK",
                            Some(&tag),
                            &[("Contact", &contact)],
                            Some(sdp.as_bytes()),
                        ) {
                            self.out.push_back((peer, m));
                        }
                    }
                    None => self.respond(peer, &msg, 488, Some(&tag)),
                }
            }
            Some(Method::Ack) => {
                let late_answer = match &mut self.state {
                    State::Answered(d, retransmit) if d.invite.call_id() == msg.call_id() => {
                        // The first ACK of a late-offer INVITE carries the answer.
                        let first = retransmit.take().is_some();
                        first && d.invite.body().is_empty()
                    }
                    _ => false,
                };
                if late_answer {
                    match self.answer_sdp(&msg) {
                        Some((_, remote, law)) => {
                            self.events.push_back(UaEvent::Connected { remote, law })
                        }
                        None => tracing::warn!("browser seat: ACK without a usable SDP answer"),
                    }
                }
            }
            Some(Method::Cancel) => {
                let ringing = matches!(&self.state, State::Ringing(d) if same_call(d));
                if !ringing {
                    self.respond(peer, &msg, 481, None);
                    return;
                }
                self.respond(peer, &msg, 200, None);
                if let State::Ringing(d) = std::mem::replace(&mut self.state, State::Idle) {
                    let tag = d.to_tag.clone();
                    self.respond(d.peer, &d.invite, 487, Some(&tag));
                }
                self.events.push_back(UaEvent::Ended {
                    reason: EndReason::Cancelled,
                });
            }
            Some(Method::Bye) => {
                let ours = matches!(&self.state, State::Answered(d, _) if same_call(d));
                if !ours {
                    self.respond(peer, &msg, 481, None);
                    return;
                }
                self.respond(peer, &msg, 200, None);
                self.state = State::Idle;
                self.events.push_back(UaEvent::Ended {
                    reason: EndReason::Remote,
                });
            }
            Some(Method::Options) => self.respond(peer, &msg, 200, None),
            _ => self.respond(peer, &msg, 501, None),
        }
    }

    /// Our SDP answer to `offer` (PCMU preferred, PCMA accepted): the description, the
    /// relay's address and the law.
    fn answer_sdp(&self, offer: &Message) -> Option<(String, SocketAddr, Law)> {
        let sdp = Sdp::parse_bytes(offer.body()).ok()?;
        for (codec, law) in [(Codec::Pcmu, Law::Pcmu), (Codec::Pcma, Law::Pcma)] {
            if let Ok((answer, info)) =
                rewrite_for_anchor(&sdp, self.media.ip(), self.media.port(), &[codec])
            {
                if info.codecs.is_empty() {
                    continue;
                }
                let remote = info.remote?;
                return Some((answer.to_string(), remote, law));
            }
        }
        None
    }

    /// The operator answers the ringing call.
    pub fn answer(&mut self, now: Instant) -> Result<(), UaError> {
        let State::Ringing(d) = std::mem::replace(&mut self.state, State::Idle) else {
            return Err(UaError::NotRinging);
        };
        let contact = self.contact();
        // A late offer (INVITE without SDP): we offer G.711 in the 200, the answer comes in
        // the ACK and only then is the call connected.
        let late = d.invite.body().is_empty();
        let answered = if late {
            Some((self.offer_sdp(), None))
        } else {
            self.answer_sdp(&d.invite)
                .map(|(sdp, remote, law)| (sdp, Some((remote, law))))
        };
        let Some((sdp, media)) = answered else {
            // An offer we cannot take (no G.711, no address): refuse like a phone would.
            self.respond(d.peer, &d.invite, 488, Some(&d.to_tag));
            self.events.push_back(UaEvent::Ended {
                reason: EndReason::Declined,
            });
            return Ok(());
        };
        let Some(ok) = wire::response(
            &d.invite,
            200,
            "OK",
            Some(&d.to_tag),
            &[("Contact", &contact)],
            Some(sdp.as_bytes()),
        ) else {
            self.respond(d.peer, &d.invite, 500, Some(&d.to_tag));
            self.events.push_back(UaEvent::Ended {
                reason: EndReason::Declined,
            });
            return Ok(());
        };
        self.out.push_back((d.peer, ok.clone()));
        let retransmit = Retransmit::new(now, ok.clone(), d.peer);
        self.state = State::Answered(
            Box::new(Dialog { last: ok, ..*d }),
            Some(Box::new(retransmit)),
        );
        if let Some((remote, law)) = media {
            self.events.push_back(UaEvent::Connected { remote, law });
        }
        Ok(())
    }

    /// Our offer for a late-offer INVITE: PCMU and PCMA at our RTP address.
    fn offer_sdp(&self) -> String {
        let (ip, family) = match self.media.ip() {
            std::net::IpAddr::V4(v4) => (v4.to_string(), "IP4"),
            std::net::IpAddr::V6(v6) => (v6.to_string(), "IP6"),
        };
        format!(
            "v=0\r\no=smartdesk {id} 1 IN {family} {ip}\r\ns=smartdesk\r\nc=IN {family} {ip}\r\n\
             t=0 0\r\nm=audio {port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendrecv\r\n",
            id = self.unique,
            port = self.media.port()
        )
    }

    /// The operator declines the ringing call (603 Decline: the ACD offers the next seat).
    pub fn decline(&mut self) -> Result<(), UaError> {
        self.refuse(603)
    }

    fn refuse(&mut self, code: u16) -> Result<(), UaError> {
        let State::Ringing(d) = std::mem::replace(&mut self.state, State::Idle) else {
            return Err(UaError::NotRinging);
        };
        self.respond(d.peer, &d.invite, code, Some(&d.to_tag));
        self.events.push_back(UaEvent::Ended {
            reason: EndReason::Declined,
        });
        Ok(())
    }

    /// The operator (or the page's disappearance) ends the call: BYE when connected, 480
    /// when still ringing.
    pub fn hang_up(&mut self, now: Instant) -> Result<(), UaError> {
        if self.is_ringing() {
            return self.refuse(480);
        }
        let State::Answered(d, _) = std::mem::replace(&mut self.state, State::Idle) else {
            return Err(UaError::NotConnected);
        };
        let branch = format!("{BRANCH_PREFIX}{}", self.unique());
        let from = format!(
            "{};tag={}",
            d.invite.header("To").unwrap_or_default(),
            d.to_tag
        );
        let target = d
            .invite
            .header("Contact")
            .map(|c| uri_of(c).to_owned())
            .unwrap_or_else(|| format!("sip:{}", wire::host_port(d.peer)));
        let contact = self.contact();
        let spec = RequestSpec {
            method: "BYE",
            uri: &target,
            transport: "UDP",
            local: self.local,
            branch: &branch,
            from: &from,
            to: d.invite.header("From").unwrap_or_default(),
            call_id: d.invite.call_id(),
            cseq: 1,
            routes: &[],
            max_forwards: 70,
            contact: Some(&contact),
            extra: &[],
            sdp: None,
        };
        if let Some(bye) = wire::request(&spec) {
            self.out.push_back((d.peer, bye.clone()));
            self.bye = Some(Retransmit::new(now, bye, d.peer));
        }
        self.events.push_back(UaEvent::Ended {
            reason: EndReason::Local,
        });
        Ok(())
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let ok = match &self.state {
            State::Answered(_, Some(r)) => Some(r.next),
            _ => None,
        };
        [ok, self.bye.as_ref().map(|b| b.next)]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let step = |r: &mut Retransmit, out: &mut VecDeque<(SocketAddr, Message)>| -> bool {
            if now >= r.until {
                return false;
            }
            if now >= r.next {
                out.push_back((r.peer, r.message.clone()));
                r.interval = (r.interval * 2).min(T2);
                r.next = now + r.interval;
            }
            true
        };
        if let State::Answered(_, slot) = &mut self.state {
            if let Some(r) = slot {
                if !step(r, &mut self.out) {
                    *slot = None;
                }
            }
        }
        if let Some(r) = &mut self.bye {
            if !step(r, &mut self.out) {
                self.bye = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::parse_datagram;

    const CORE: &str = "127.0.0.1:5060";

    fn ua() -> BrowserUa {
        BrowserUa::new(
            "op1",
            "127.0.0.1:40000".parse().expect("addr"),
            "127.0.0.1:40002".parse().expect("addr"),
            7,
        )
    }

    fn core() -> SocketAddr {
        CORE.parse().expect("addr")
    }

    fn msg(text: &str) -> Message {
        let text = text.replace('\n', "\r\n");
        parse_datagram(text.as_bytes()).expect("valid SIP")
    }

    fn invite() -> Message {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 30000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n";
        let head = format!(
            "INVITE sip:op1@127.0.0.1:40000 SIP/2.0\n\
             Via: SIP/2.0/UDP {CORE};branch=z9hG4bK-sd1\n\
             Max-Forwards: 70\n\
             From: \"【株式会社ABC】09012345678\" <sip:09012345678@{CORE}>;tag=a1\n\
             To: <sip:op1@desk>\n\
             Call-ID: c1@127.0.0.1\n\
             CSeq: 1 INVITE\n\
             Contact: <sip:{CORE}>\n\
             X-Smartdesk-Contractor-Name: 株式会社ABC\n\
             X-Smartdesk-Greeting: はい、株式会社ABCでございます\n\
             Content-Type: application/sdp\n\
             Content-Length: {}\n\n",
            sdp.len()
        );
        msg(&format!("{head}{sdp}").replace("\r\r\n", "\r\n"))
    }

    fn in_dialog(method: &str, tag: &str) -> Message {
        msg(&format!(
            "{method} sip:op1@127.0.0.1:40000 SIP/2.0\n\
             Via: SIP/2.0/UDP {CORE};branch=z9hG4bK-sd2\n\
             Max-Forwards: 70\n\
             From: <sip:09012345678@{CORE}>;tag=a1\n\
             To: <sip:op1@desk>{tag}\n\
             Call-ID: c1@127.0.0.1\n\
             CSeq: 1 {method}\n\
             Content-Length: 0\n\n"
        ))
    }

    fn sent(ua: &mut BrowserUa) -> Vec<Message> {
        std::iter::from_fn(|| ua.poll_transmit().map(|(_, m)| m)).collect()
    }

    fn codes(ms: &[Message]) -> Vec<u16> {
        ms.iter().filter_map(Message::status).collect()
    }

    #[test]
    fn rings_answers_and_retransmits_until_ack() {
        let mut ua = ua();
        let t0 = Instant::now();
        ua.handle_message(core(), invite());
        assert_eq!(codes(&sent(&mut ua)), [180]);
        assert_eq!(
            ua.poll_event(),
            Some(UaEvent::Offered {
                contractor: "株式会社ABC".into(),
                greeting: "はい、株式会社ABCでございます".into(),
                caller: "09012345678".into(),
            })
        );
        // A retransmitted INVITE gets the same answer again, not a second call.
        ua.handle_message(core(), invite());
        assert_eq!(codes(&sent(&mut ua)), [180]);
        ua.answer(t0).expect("ringing");
        let ok = sent(&mut ua);
        assert_eq!(codes(&ok), [200]);
        let body = String::from_utf8_lossy(ok[0].body()).into_owned();
        assert!(body.contains("m=audio 40002 RTP/AVP 0"), "{body}");
        assert_eq!(
            ua.poll_event(),
            Some(UaEvent::Connected {
                remote: "127.0.0.1:30000".parse().expect("addr"),
                law: Law::Pcmu
            })
        );
        let due = ua.poll_timeout().expect("200 retransmission");
        ua.handle_timeout(due);
        assert_eq!(codes(&sent(&mut ua)), [200]);
        let tag = format!(";tag={}", ok[0].to_tag().expect("tag"));
        ua.handle_message(core(), in_dialog("ACK", &tag));
        assert_eq!(ua.poll_timeout(), None, "ACK stops the retransmissions");
        // A second call while busy.
        let mut other = invite().to_bytes().to_vec();
        let s = String::from_utf8_lossy(&other).replace("c1@127.0.0.1", "c2@127.0.0.1");
        other = s.into_bytes();
        ua.handle_message(core(), parse_datagram(&other).expect("sip"));
        assert_eq!(codes(&sent(&mut ua)), [486]);
        // The caller hangs up.
        ua.handle_message(core(), in_dialog("BYE", &tag));
        assert_eq!(codes(&sent(&mut ua)), [200]);
        assert_eq!(
            ua.poll_event(),
            Some(UaEvent::Ended {
                reason: EndReason::Remote
            })
        );
        assert!(ua.is_idle());
    }

    #[test]
    fn a_late_offer_is_connected_by_the_answer_in_the_ack() {
        let mut ua = ua();
        let bare = String::from_utf8_lossy(&invite().to_bytes()).into_owned();
        let head = bare.split("\r\n\r\n").next().expect("head");
        let head: Vec<&str> = head
            .lines()
            .filter(|l| !l.starts_with("Content-"))
            .collect();
        let late = format!("{}\r\nContent-Length: 0\r\n\r\n", head.join("\r\n"));
        ua.handle_message(core(), parse_datagram(late.as_bytes()).expect("sip"));
        sent(&mut ua);
        ua.poll_event();
        ua.answer(Instant::now()).expect("ringing");
        let ok = sent(&mut ua);
        let body = String::from_utf8_lossy(ok[0].body()).into_owned();
        assert!(body.contains("m=audio 40002 RTP/AVP 0 8"), "{body}");
        assert_eq!(ua.poll_event(), None, "not connected before the answer");
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 30002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";
        let tag = ok[0].to_tag().expect("tag");
        let ack = format!(
            "ACK sip:op1@127.0.0.1:40000 SIP/2.0\r\nVia: SIP/2.0/UDP {CORE};branch=z9hG4bK-sd3\r\n\
             Max-Forwards: 70\r\nFrom: <sip:09012345678@{CORE}>;tag=a1\r\n\
             To: <sip:op1@desk>;tag={tag}\r\nCall-ID: c1@127.0.0.1\r\nCSeq: 1 ACK\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        ua.handle_message(core(), parse_datagram(ack.as_bytes()).expect("sip"));
        assert_eq!(
            ua.poll_event(),
            Some(UaEvent::Connected {
                remote: "127.0.0.1:30002".parse().expect("addr"),
                law: Law::Pcma
            })
        );
    }

    #[test]
    fn cancel_and_decline_end_the_offer() {
        let mut ua = ua();
        ua.handle_message(core(), invite());
        sent(&mut ua);
        ua.handle_message(core(), in_dialog("CANCEL", ""));
        assert_eq!(codes(&sent(&mut ua)), [200, 487]);
        assert!(ua.is_idle());
        assert_eq!(ua.answer(Instant::now()), Err(UaError::NotRinging));

        let mut ua = self::ua();
        ua.handle_message(core(), invite());
        sent(&mut ua);
        ua.decline().expect("ringing");
        assert_eq!(codes(&sent(&mut ua)), [603]);
    }

    #[test]
    fn hang_up_sends_bye_until_answered() {
        let mut ua = ua();
        let t0 = Instant::now();
        ua.handle_message(core(), invite());
        ua.answer(t0).expect("ringing");
        sent(&mut ua);
        ua.hang_up(t0).expect("connected");
        let bye = sent(&mut ua);
        assert_eq!(bye[0].method(), Some(&Method::Bye));
        assert_eq!(bye[0].call_id(), "c1@127.0.0.1");
        assert_eq!(bye[0].request_uri(), Some(&*format!("sip:{CORE}")));
        assert!(!ua.is_idle());
        let due = ua.poll_timeout().expect("BYE retransmission");
        ua.handle_timeout(due);
        assert_eq!(sent(&mut ua).len(), 1);
        let ok = Message::response_to(&bye[0], 200, "OK");
        ua.handle_message(core(), ok);
        assert!(ua.is_idle());
        // Gives up after 64·T1 when nobody answers.
        ua.handle_message(core(), invite());
        ua.answer(t0).expect("ringing");
        ua.hang_up(t0).expect("connected");
        ua.handle_timeout(t0 + GIVE_UP);
        assert!(ua.is_idle());
    }
}
