//! What each seat has on its line right now, published by the call core for the operator
//! console (issue #7 §1): one entry per seat (so bounded by the seat count), replaced when
//! the seat is offered its next call. The console reads the call's facts (contractor,
//! caller, arrival) from the ledger by `row`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SeatPhase {
    /// The seat's phone is ringing with this call.
    Ringing,
    /// The operator answered.
    Connected,
    /// The seat is off this call (caller hung up, the call moved on, or it ended after
    /// being answered): the console keeps it for the record (wrap-up).
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatCall {
    /// The call row in the ledger.
    pub row: i64,
    pub phase: SeatPhase,
    /// When the seat started ringing.
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

pub type SeatCalls = HashMap<i64, SeatCall>;

/// The core's side of the feed and the console's side.
pub fn channel() -> (watch::Sender<SeatCalls>, watch::Receiver<SeatCalls>) {
    watch::channel(HashMap::new())
}

/// Applies one call-path event to the map (the core calls these).
pub fn offered(feed: &watch::Sender<SeatCalls>, seat: i64, row: i64, at: DateTime<Utc>) {
    feed.send_modify(|m| {
        m.insert(
            seat,
            SeatCall {
                row,
                phase: SeatPhase::Ringing,
                offered_at: at,
                answered_at: None,
                ended_at: None,
            },
        );
    });
}

pub fn answered(feed: &watch::Sender<SeatCalls>, seat: i64, row: i64, at: DateTime<Utc>) {
    feed.send_if_modified(|m| match m.get_mut(&seat) {
        Some(c) if c.row == row && c.phase == SeatPhase::Ringing => {
            c.phase = SeatPhase::Connected;
            c.answered_at = Some(at);
            true
        }
        _ => false,
    });
}

pub fn released(feed: &watch::Sender<SeatCalls>, seat: i64, row: i64, at: DateTime<Utc>) {
    feed.send_if_modified(|m| match m.get_mut(&seat) {
        Some(c) if c.row == row && c.phase != SeatPhase::Ended => {
            c.phase = SeatPhase::Ended;
            c.ended_at = Some(at);
            true
        }
        _ => false,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_follows_its_call() {
        let (tx, rx) = channel();
        let t = Utc::now();
        offered(&tx, 1, 10, t);
        assert_eq!(rx.borrow()[&1].phase, SeatPhase::Ringing);
        answered(&tx, 1, 99, t); // another call's answer changes nothing
        assert_eq!(rx.borrow()[&1].phase, SeatPhase::Ringing);
        answered(&tx, 1, 10, t);
        assert_eq!(rx.borrow()[&1].phase, SeatPhase::Connected);
        released(&tx, 1, 10, t);
        assert_eq!(rx.borrow()[&1].phase, SeatPhase::Ended);
        offered(&tx, 1, 11, t);
        assert_eq!(rx.borrow()[&1].row, 11);
        assert_eq!(rx.borrow().len(), 1);
    }
}
