//! Operations on the live call table (issue #9): what `smartdesk status` and `calls --live`
//! show, an admin's hang-up, draining before a shutdown, carrier keep-alives seen, and trunk
//! reload. Still sans-IO: `now` comes in, messages go out through [`Io`].
//!
//! Hang-up by an admin ([`B2bua::hang_up`]) ends a call the way the call path itself would:
//!
//! ```text
//!  phase        to the carrier            to the seat            recorded outcome
//!  Admitting    (refused: try again — admission takes milliseconds; nothing to end yet)
//!  Ringing      480 Temporarily Unavail.  CANCEL (→ 487)         failed
//!   (queued or a seat ringing; the caller leaves the ACD's queue unlogged)
//!  Announcing   BYE                       —                      the decided one (out_of_hours…)
//!  Message      BYE (recording kept)      —                      overflow
//!  Answered     BYE                       BYE                    answered
//!  Ending       (already ending: nothing to do)
//! ```
//!
//! An unanswered call the admin ends was not abandoned by the caller and not served by an
//! operator, so it is `failed` (billable as every admitted call is, SPEC §3); an answered
//! call stays `answered` whoever hangs up.
//!
//! Draining ([`B2bua::set_draining`]): new INVITEs from trunks get 503 with
//! `Retry-After: DRAIN_RETRY_AFTER_SECS` (strangers still get 403 first); calls in progress
//! and in-dialog requests continue untouched.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{wire, B2bua, Call, Phase, Purpose, Side};
use crate::config::profiles::Trunk;
use crate::sip::endpoint::Io;
use crate::sip::message::Message;
use crate::sip::transaction::TsxKey;

/// Retry-After (seconds) of the 503 sent while draining: a restart takes seconds, so the
/// carrier may try this server again soon (or route elsewhere meanwhile).
pub const DRAIN_RETRY_AFTER_SECS: u32 = 10;

/// Summaries of ended calls kept for the edge at most (it drains them after every input).
pub(super) const MAX_ENDED: usize = 4096;

/// A call in progress as `status` and `calls --live` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveCall {
    /// The call path's key (internal, for logs).
    pub call: u64,
    /// The ledger row id (`calls` lists it; `call hangup` takes it); `None` while admitting.
    pub id: Option<i64>,
    pub trunk: String,
    pub contractor_id: Option<i64>,
    pub contractor: Option<String>,
    /// National form of the caller's number, or 非通知 (withheld).
    pub caller: String,
    /// The seat being rung or on the call.
    pub seat_id: Option<i64>,
    /// `admitting`, `queued` (waiting for a free seat), `ringing` (a seat is rung),
    /// `message` (overflow: leaving a voice message), `announcing`, `answered`, `ending`.
    pub state: &'static str,
    /// Since the carrier's INVITE.
    pub duration_ms: u64,
    /// Since a seat answered.
    pub talk_ms: Option<u64>,
}

/// One ended call, for the per-call log line and metrics; polled by the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSummary {
    pub call: u64,
    pub row: Option<i64>,
    pub trunk: String,
    pub contractor_id: Option<i64>,
    pub seat_id: Option<i64>,
    pub outcome: &'static str,
    pub started: Instant,
    pub answered_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HangupError {
    #[error("no such call in progress")]
    NotFound,
    #[error("the call is being admitted; try again in a moment")]
    Admitting,
}

fn state_name(c: &Call) -> &'static str {
    match c.phase {
        Phase::Admitting => "admitting",
        Phase::Ringing if c.b.is_none() => "queued",
        Phase::Ringing => "ringing",
        Phase::Message => "message",
        Phase::Announcing => "announcing",
        Phase::Answered => "answered",
        Phase::Ending => "ending",
    }
}

pub(super) fn summary(id: u64, call: &Call, outcome: &'static str) -> CallSummary {
    CallSummary {
        call: id,
        row: call.row,
        trunk: call.trunk.clone(),
        contractor_id: call.contractor.as_ref().map(|c| c.0),
        seat_id: call
            .seat_answered
            .or_else(|| call.b.as_ref().map(|b| b.seat_id)),
        outcome,
        started: call.started,
        answered_at: call.answered_at,
    }
}

/// 503 + Retry-After `secs` to a new INVITE that gets no call (draining:
/// [`DRAIN_RETRY_AFTER_SECS`]; the call table full: `LEDGER_RETRY_AFTER_SECS`).
pub(super) fn refuse_retry_after(
    io: &mut Io,
    now: Instant,
    key: &TsxKey,
    req: &Message,
    secs: u32,
) {
    let tag = io.unique();
    let retry = secs.to_string();
    if let Some(r) = wire::response(
        req,
        503,
        "Service Unavailable",
        Some(&tag),
        &[("Retry-After", &retry)],
        None,
    ) {
        io.respond(now, key, &r);
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl B2bua {
    /// Calls in progress, oldest first.
    pub fn live_calls(&self, now: Instant) -> Vec<LiveCall> {
        let mut out: Vec<LiveCall> = self
            .calls
            .iter()
            .map(|(&id, c)| LiveCall {
                call: id,
                id: c.row,
                trunk: c.trunk.clone(),
                contractor_id: c.contractor.as_ref().map(|x| x.0),
                contractor: c.contractor.as_ref().map(|x| x.1.clone()),
                caller: c.caller_label.clone(),
                seat_id: c.seat_answered.or_else(|| c.b.as_ref().map(|b| b.seat_id)),
                state: state_name(c),
                duration_ms: ms(now.saturating_duration_since(c.started)),
                talk_ms: c.answered_at.map(|a| ms(now.saturating_duration_since(a))),
            })
            .collect();
        out.sort_by_key(|c| (std::cmp::Reverse(c.duration_ms), c.call));
        out
    }

    /// The call key of ledger row `row`, if that call is in progress.
    pub fn call_by_row(&self, row: i64) -> Option<u64> {
        self.calls
            .iter()
            .find(|(_, c)| c.row == Some(row))
            .map(|(&id, _)| id)
    }

    /// The next ended call's summary; drain after every `handle_*` call.
    pub fn poll_ended(&mut self) -> Option<CallSummary> {
        self.ended.pop_front()
    }

    /// Ends call `id` cleanly on both legs (see the module doc for what each phase gets).
    pub fn hang_up(&mut self, io: &mut Io, now: Instant, id: u64) -> Result<(), HangupError> {
        let call = self.calls.get(&id).ok_or(HangupError::NotFound)?;
        match call.phase {
            Phase::Admitting => return Err(HangupError::Admitting),
            Phase::Ending => return Ok(()),
            Phase::Ringing => {
                self.fail_a(io, now, id, 480, "Temporarily Unavailable", &[]);
                self.cancel_b(io, now, id);
                self.stop_media(id);
                self.finish(id, "failed");
                self.acd.remove_call(id);
                self.apply_acd(io, now);
            }
            Phase::Announcing | Phase::Message => {
                self.bye(io, now, id, Side::A);
                self.finish(id, "failed");
            }
            Phase::Answered => {
                if let Some(c) = self.calls.get_mut(&id) {
                    // Both 2xx may still wait for their ACK; the BYEs end that too.
                    c.retrans = [None, None];
                    if let Some((side, cseq)) = c.ack_owed.take() {
                        self.send_ack(io, id, side, cseq, None);
                    }
                }
                self.bye(io, now, id, Side::B);
                self.bye(io, now, id, Side::A);
                self.finish(id, "answered");
            }
        }
        self.remove_if_done(id);
        Ok(())
    }

    /// Hangs up every call that can be hung up now; returns how many are still in the table.
    pub fn hang_up_all(&mut self, io: &mut Io, now: Instant) -> usize {
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            let _ = self.hang_up(io, now, id);
        }
        self.calls.len()
    }

    /// Refuse (true) or accept again (false) new calls.
    pub fn set_draining(&mut self, on: bool) {
        self.draining = on;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Calls whose outcome is not decided yet (the rest only wait for a leg to close).
    pub fn calls_unfinished(&self) -> usize {
        self.calls.values().filter(|c| !c.finished).count()
    }

    /// BYEs and CANCELs we sent that have no final response yet.
    pub fn requests_outstanding(&self) -> usize {
        self.client
            .values()
            .filter(|(_, p)| matches!(p, Purpose::Bye | Purpose::Cancel))
            .count()
    }

    /// An OPTIONS from `src` was answered: remember it for its trunk (carrier keep-alive).
    pub fn note_options(&mut self, src: std::net::IpAddr, now: Instant) {
        if let Some(name) = self.trunk_for(src).map(|t| t.name.clone()) {
            self.trunk_seen.insert(name, now);
        }
    }

    /// Each configured trunk with the time since its last OPTIONS, if any.
    pub fn trunks_seen(&self, now: Instant) -> Vec<(Trunk, Option<Duration>)> {
        self.cfg
            .trunks
            .iter()
            .map(|t| {
                let ago = self
                    .trunk_seen
                    .get(&t.name)
                    .map(|at| now.saturating_duration_since(*at));
                (t.clone(), ago)
            })
            .collect()
    }

    /// New trunk list (a reload): new calls are matched against it; calls in progress keep
    /// their dialogs. Keep-alive times of trunks that remain are kept.
    pub fn set_trunks(&mut self, trunks: Vec<Trunk>) {
        self.trunk_seen
            .retain(|name, _| trunks.iter().any(|t| &t.name == name));
        self.cfg.trunks = trunks;
    }
}
