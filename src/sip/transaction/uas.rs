//! 2xx retransmission for the UAS core (RFC 3261 §13.3.1.4).
//!
//! The INVITE server transaction ends as soon as it passes a 2xx down (§17.2.1), so the
//! reliability of the 2xx/ACK exchange is the TU's job. This small sans-IO machine does it
//! for one 2xx; the dialog layer owns one per unacknowledged 2xx.
//!
//! ```text
//!            new (TU sent the 2xx once)
//!                   |
//!                   v
//!   retransmit  +---------+  ACK (CSeq matches)  +-------+
//!   at T1, 2T1, | Waiting |--------------------->| Acked |
//!   ... cap T2  +---------+                      +-------+
//!    +--------->|    |
//!    +----------+    | 64*T1 without ACK
//!                    v
//!               +--------+  event GaveUp: confirm the dialog, then send BYE
//!               | GaveUp |
//!               +--------+
//! ```
//!
//! Retransmission runs whatever the transport: a 2xx crosses proxies hop by hop and a later
//! hop may be UDP even when ours is TCP (§13.3.1.4 makes no transport exception).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::envelope::{Method, TsxMessage};
use super::event::{PeerId, Transmit};
use super::timer::{deadline, TimerConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uas2xxState {
    Waiting,
    Acked,
    GaveUp,
}

/// What the TU must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uas2xxEvent {
    /// No ACK within 64·T1: §13.3.1.4 says the dialog is confirmed and the session SHOULD be
    /// ended with a BYE.
    GaveUp,
}

/// Retransmits one 2xx until its ACK arrives or 64·T1 passes (§13.3.1.4).
#[derive(Debug)]
pub struct Uas2xxRetransmitter {
    to: PeerId,
    bytes: Arc<[u8]>,
    call_id: String,
    cseq: u32,
    interval: Duration,
    t2: Duration,
    next_retransmit: Instant,
    give_up_at: Instant,
    state: Uas2xxState,
    /// At most one queued copy: a caller that drains late gets one retransmission, not a
    /// burst, and memory stays constant.
    pending: Option<Arc<[u8]>>,
    event: Option<Uas2xxEvent>,
}

impl Uas2xxRetransmitter {
    /// `response` is the 2xx the TU has just sent once through the server transaction.
    pub fn new(
        now: Instant,
        to: PeerId,
        response: &TsxMessage,
        cfg: &TimerConfig,
    ) -> Uas2xxRetransmitter {
        Uas2xxRetransmitter {
            to,
            bytes: response.bytes.clone(),
            call_id: response.call_id.clone(),
            cseq: response.cseq,
            interval: cfg.t1,
            t2: cfg.t2,
            next_retransmit: deadline(now, cfg.t1),
            give_up_at: deadline(now, cfg.sixty_four_t1()),
            state: Uas2xxState::Waiting,
            pending: None,
            event: None,
        }
    }

    /// Whether `ack` acknowledges this 2xx: same Call-ID and CSeq number (§13.3.1.4 matches
    /// on the dialog and the CSeq number; the dialog layer has already matched the dialog).
    pub fn matches_ack(&self, ack: &TsxMessage) -> bool {
        ack.method() == Some(&Method::Ack) && ack.call_id == self.call_id && ack.cseq == self.cseq
    }

    /// The ACK arrived; retransmissions cease.
    pub fn handle_ack(&mut self) {
        if self.state == Uas2xxState::Waiting {
            self.state = Uas2xxState::Acked;
            self.pending = None;
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != Uas2xxState::Waiting {
            return;
        }
        // Giving up wins a tie with a retransmission that nobody would ACK in time anyway.
        if now >= self.give_up_at {
            self.state = Uas2xxState::GaveUp;
            self.pending = None;
            self.event = Some(Uas2xxEvent::GaveUp);
            return;
        }
        if now >= self.next_retransmit {
            self.pending = Some(self.bytes.clone());
            self.interval = self.interval.saturating_mul(2).min(self.t2);
            self.next_retransmit = deadline(now, self.interval);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.pending.take().map(|bytes| Transmit {
            to: self.to,
            bytes,
            key: None,
        })
    }

    pub fn poll_event(&mut self) -> Option<Uas2xxEvent> {
        self.event.take()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state == Uas2xxState::Waiting).then(|| self.next_retransmit.min(self.give_up_at))
    }

    pub fn state(&self) -> Uas2xxState {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::testkit::{request, response_to, Clock};

    fn two_hundred() -> TsxMessage {
        let invite = request(Method::Invite, "z9hG4bKu1", 1);
        response_to(&invite, 200, Some("totag"))
    }

    /// Drives the retransmitter by its own deadlines; returns (retransmit times, give-up time).
    fn run(r: &mut Uas2xxRetransmitter, clock: &Clock) -> (Vec<u64>, Option<u64>) {
        let mut sent = Vec::new();
        let mut gave_up = None;
        while let Some(at) = r.poll_timeout() {
            r.handle_timeout(at);
            let t = clock.ms_of(at);
            while r.poll_transmit().is_some() {
                sent.push(t);
            }
            if r.poll_event() == Some(Uas2xxEvent::GaveUp) {
                gave_up = Some(t);
            }
        }
        (sent, gave_up)
    }

    #[test]
    fn retransmits_at_t1_doubling_capped_at_t2_and_gives_up_at_64_t1() {
        let clock = Clock::new();
        let mut r = Uas2xxRetransmitter::new(
            clock.at(0),
            PeerId(7),
            &two_hundred(),
            &TimerConfig::default(),
        );
        let (sent, gave_up) = run(&mut r, &clock);
        assert_eq!(
            sent,
            vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(gave_up, Some(32_000));
        assert_eq!(r.state(), Uas2xxState::GaveUp);
    }

    #[test]
    fn ack_stops_retransmission_without_an_event() {
        let clock = Clock::new();
        let msg = two_hundred();
        let mut r = Uas2xxRetransmitter::new(clock.at(0), PeerId(7), &msg, &TimerConfig::default());
        r.handle_timeout(clock.at(500));
        assert_eq!(r.poll_transmit().map(|t| t.to), Some(PeerId(7)));
        let mut ack = request(Method::Ack, "z9hG4bKack", 1);
        ack.call_id = msg.call_id.clone();
        assert!(r.matches_ack(&ack));
        ack.cseq = 2;
        assert!(!r.matches_ack(&ack));
        r.handle_ack();
        assert_eq!(r.poll_timeout(), None);
        r.handle_timeout(clock.at(40_000));
        assert_eq!(r.poll_transmit(), None);
        assert_eq!(r.poll_event(), None);
        assert_eq!(r.state(), Uas2xxState::Acked);
    }
}
