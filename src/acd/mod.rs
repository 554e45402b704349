//! Automatic call distribution (sans-IO): one shared pool of operator seats serving the
//! callers of every contractor (issue #6).
//!
//! ```text
//!                      registered                offer               2xx
//!   offline ◄──────────────────────► available ────────► ringing ─────────► on_call
//!      ▲  registration lost / expired     ▲  ▲             │ │ no answer (ring timeout),│
//!      │  (a ringing offer is withdrawn   │  │             │ │ 486 busy, 603/4xx decline │ call ends
//!      │   and the caller moves on)       │  └─ retry ─────┘ │   (+ per-reason retry    ▼
//!      │                                  │     delay        │    delay before this  wrap_up
//!      │                                  │                  │    seat is offered     │ record submitted
//!   paused(reason) ◄── pause / N no-answers in a row         │    again)              │ or wrap_up_max
//!      └── resume ──► available ◄───────────────────────────────────────────────────────┘
//! ```
//!
//! The state a seat shows is derived from three independent facts, so that none of them can
//! hide another (the classic "stuck seat" bugs of queue servers come from folding them into
//! one field): whether it is registered (`online`), whether an operator or the no-answer rule
//! paused it (`paused`), and what it is doing (`activity`: idle, ringing one call, on one
//! call, wrapping up). A seat is offered a call only when it is online, not paused, idle, past
//! its retry delay — so it can never hold two offers, nor ring while on a call.
//!
//! Callers wait in one queue across all contractors, ordered by when they entered: the longest
//! waiter is served first, and gets the free seat idle the longest. A caller whose contractor
//! prefers a skill (`hearing` for the hearing option) is offered only seats with that skill
//! until it has waited [`AcdConfig::skill_fallback`]; a seat such a caller cannot take yet goes
//! to the next caller, so a skilled caller never blocks the queue.
//!
//! Like the other cores this one reads no clock: every input carries `now`, timers are
//! deadlines reported by [`Acd::poll_timeout`], and results come out as [`Decision`]s for the
//! call path (offer a seat, withdraw an offer, overflow a caller to message taking) and
//! [`QueueEvent`]s for the ledger's queue log (from which [`stats`] computes service levels).

pub mod stats;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The call path's name for a call.
pub type CallKey = u64;
/// A seat's ledger id.
pub type SeatId = i64;

/// Default ring-no-answer timeout (issue #6 §3).
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(15);
/// After a seat let an offer ring out: long enough for an operator who stepped away not to be
/// rung again at once, short enough not to lose a seat for long (mod_callcenter's
/// `no_answer_delay_time` is commonly set to 10 s).
pub const DEFAULT_RETRY_NO_ANSWER: Duration = Duration::from_secs(10);
/// After 486 Busy: the softphone is on another call, which rarely ends within seconds.
pub const DEFAULT_RETRY_BUSY: Duration = Duration::from_secs(30);
/// After a decline (603 or another refusal): the operator chose not to take that call now.
pub const DEFAULT_RETRY_DECLINE: Duration = Duration::from_secs(10);
/// Consecutive no-answers that pause a seat (mod_callcenter's `max_no_answer` default use).
pub const DEFAULT_MAX_NO_ANSWER: u32 = 3;
/// Longest wait before message taking (issue #6 §4).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);
/// Wrap-up ends at the latest after this, record or not: operators write the first response
/// while the caller's words are fresh, and a forgotten submit must not lose the seat.
pub const DEFAULT_WRAP_UP_MAX: Duration = Duration::from_secs(30);
/// How long a caller waits for a seat with the preferred skill before any seat will do.
pub const DEFAULT_SKILL_FALLBACK: Duration = Duration::from_secs(20);

/// Pause reason set by the no-answer rule.
pub const PAUSE_NO_ANSWER: &str = "no_answer";

/// The distribution rules' tunables (config `[acd]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcdConfig {
    pub ring_timeout: Duration,
    pub retry_no_answer: Duration,
    pub retry_busy: Duration,
    pub retry_decline: Duration,
    /// Consecutive no-answers before the seat is paused (`no_answer`); 0 never pauses.
    pub max_no_answer: u32,
    pub max_wait: Duration,
    pub wrap_up_max: Duration,
    pub skill_fallback: Duration,
}

impl Default for AcdConfig {
    fn default() -> Self {
        AcdConfig {
            ring_timeout: DEFAULT_RING_TIMEOUT,
            retry_no_answer: DEFAULT_RETRY_NO_ANSWER,
            retry_busy: DEFAULT_RETRY_BUSY,
            retry_decline: DEFAULT_RETRY_DECLINE,
            max_no_answer: DEFAULT_MAX_NO_ANSWER,
            max_wait: DEFAULT_MAX_WAIT,
            wrap_up_max: DEFAULT_WRAP_UP_MAX,
            skill_fallback: DEFAULT_SKILL_FALLBACK,
        }
    }
}

/// A seat's state as operators and admins see it (issue #6 §1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SeatState {
    Offline,
    Available,
    Ringing { call: CallKey },
    OnCall { call: CallKey },
    WrapUp,
    Paused { reason: String },
}

impl SeatState {
    pub fn name(&self) -> &'static str {
        match self {
            SeatState::Offline => "offline",
            SeatState::Available => "available",
            SeatState::Ringing { .. } => "ringing",
            SeatState::OnCall { .. } => "on_call",
            SeatState::WrapUp => "wrap_up",
            SeatState::Paused { .. } => "paused",
        }
    }
}

/// How an offer ended without the seat answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferEnd {
    /// 486 (or 600): the softphone is busy on another call.
    Busy,
    /// 603 or any other refusal.
    Declined,
    /// No final answer: the request timed out or could not be delivered.
    Unreachable,
    /// The INVITE transaction ended after we withdrew the offer (487 to our CANCEL, or
    /// anything else): what to count was decided when it was withdrawn.
    AfterWithdraw,
}

/// What the call path must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Ring `seat` for `call`.
    Offer { call: CallKey, seat: SeatId },
    /// Stop ringing `seat` for `call` (CANCEL). The seat stays `ringing` until the call path
    /// reports the INVITE over ([`Acd::offer_ended`]); the caller may be offered elsewhere
    /// at once.
    Withdraw { call: CallKey, seat: SeatId },
    /// `call` cannot be served: take a message.
    Overflow { call: CallKey },
}

/// The queue log's vocabulary (issue #6 §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueEventKind {
    Entered,
    Offered { seat: SeatId },
    NoAnswer { seat: SeatId },
    Busy { seat: SeatId },
    Declined { seat: SeatId },
    Connected { seat: SeatId, wait_ms: u64 },
    Abandoned { wait_ms: u64, position: u32 },
    Overflow { wait_ms: u64 },
}

impl QueueEventKind {
    pub fn name(&self) -> &'static str {
        match self {
            QueueEventKind::Entered => "entered",
            QueueEventKind::Offered { .. } => "offered",
            QueueEventKind::NoAnswer { .. } => "no_answer",
            QueueEventKind::Busy { .. } => "busy",
            QueueEventKind::Declined { .. } => "declined",
            QueueEventKind::Connected { .. } => "connected",
            QueueEventKind::Abandoned { .. } => "abandoned",
            QueueEventKind::Overflow { .. } => "overflow",
        }
    }

    pub fn seat(&self) -> Option<SeatId> {
        match self {
            QueueEventKind::Offered { seat }
            | QueueEventKind::NoAnswer { seat }
            | QueueEventKind::Busy { seat }
            | QueueEventKind::Declined { seat }
            | QueueEventKind::Connected { seat, .. } => Some(*seat),
            _ => None,
        }
    }

    pub fn wait_ms(&self) -> Option<u64> {
        match self {
            QueueEventKind::Connected { wait_ms, .. }
            | QueueEventKind::Abandoned { wait_ms, .. }
            | QueueEventKind::Overflow { wait_ms } => Some(*wait_ms),
            _ => None,
        }
    }

    pub fn position(&self) -> Option<u32> {
        match self {
            QueueEventKind::Abandoned { position, .. } => Some(*position),
            _ => None,
        }
    }
}

/// One entry for the queue log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEvent {
    pub call: CallKey,
    pub contractor: i64,
    pub kind: QueueEventKind,
}

/// What a seat is doing (independent of registration and pause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    Idle,
    /// `deadline` is the ring timeout; `None` once the offer was withdrawn (waiting for the
    /// INVITE to end). `penalty` is what to apply when it ends.
    Ringing {
        call: CallKey,
        deadline: Option<Instant>,
        penalty: Penalty,
    },
    OnCall {
        call: CallKey,
    },
    WrapUp {
        until: Instant,
    },
}

/// The retry delay to apply when a withdrawn offer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Penalty {
    None,
    NoAnswer,
}

#[derive(Debug, Clone)]
struct Seat {
    name: String,
    skills: Vec<String>,
    online: bool,
    paused: Option<String>,
    activity: Activity,
    /// When the shown state last changed.
    since: Instant,
    /// When the seat last finished a call or an offer; `None` = never (counts as idlest).
    idle_since: Option<Instant>,
    /// Not offered anything before this (retry delay after no answer, busy, decline).
    hold_until: Option<Instant>,
    no_answers: u32,
    /// Calls answered since [`Acd::reset_daily_counts`].
    handled: u32,
}

impl Seat {
    fn state(&self) -> SeatState {
        match self.activity {
            Activity::Ringing { call, .. } => SeatState::Ringing { call },
            Activity::OnCall { call } => SeatState::OnCall { call },
            Activity::WrapUp { .. } => SeatState::WrapUp,
            Activity::Idle => match (&self.paused, self.online) {
                (_, false) => SeatState::Offline,
                (Some(r), true) => SeatState::Paused { reason: r.clone() },
                (None, true) => SeatState::Available,
            },
        }
    }

    fn free(&self, now: Instant) -> bool {
        self.online
            && self.paused.is_none()
            && self.activity == Activity::Idle
            && self.hold_until.is_none_or(|t| t <= now)
    }

    fn has(&self, skill: &str) -> bool {
        self.skills.iter().any(|s| s == skill)
    }
}

#[derive(Debug, Clone)]
struct Waiter {
    contractor: i64,
    skill: Option<String>,
    entered: Instant,
    seq: u64,
    /// The seat being rung for this caller.
    offered: Option<SeatId>,
}

/// A waiting caller, for `smartdesk queue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaiterView {
    pub call: CallKey,
    pub contractor: i64,
    pub position: u32,
    pub wait_ms: u64,
    pub ringing_seat: Option<SeatId>,
    pub skill: Option<String>,
}

/// A seat, for `smartdesk queue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatView {
    pub seat_id: SeatId,
    pub name: String,
    #[serde(flatten)]
    pub state: SeatState,
    pub in_state_ms: u64,
    pub handled: u32,
    pub skills: Vec<String>,
    pub consecutive_no_answers: u32,
}

/// Everything `smartdesk queue` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AcdSnapshot {
    pub waiting: Vec<WaiterView>,
    pub seats: Vec<SeatView>,
}

/// A live leg the call path holds, for [`Acd::reconcile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveLeg {
    /// An INVITE to the seat is outstanding (current or withdrawn).
    Ringing { call: CallKey, seat: SeatId },
    /// The seat answered and the call runs.
    OnCall { call: CallKey, seat: SeatId },
}

/// Errors of operator commands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    #[error("no seat named {0:?}")]
    UnknownSeat(String),
    #[error("pause reason must not be empty")]
    EmptyReason,
}

/// The queue and the seat pool.
#[derive(Debug)]
pub struct Acd {
    cfg: AcdConfig,
    seats: BTreeMap<SeatId, Seat>,
    waiters: HashMap<CallKey, Waiter>,
    /// Waiting order: (entered, seq) → call.
    order: BTreeMap<(Instant, u64), CallKey>,
    next_seq: u64,
    decisions: VecDeque<Decision>,
    events: VecDeque<QueueEvent>,
    /// [`Self::poll_timeout`]'s answer while nothing changed (`None`: to be recomputed).
    /// The call path asks after every input; the scan over all seats runs only after a
    /// change, which every `&mut self` method except the `poll_*` ones counts as.
    next_deadline: Option<Option<Instant>>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Acd {
    pub fn new(cfg: AcdConfig) -> Acd {
        Acd {
            cfg,
            seats: BTreeMap::new(),
            waiters: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            decisions: VecDeque::new(),
            events: VecDeque::new(),
            next_deadline: None,
        }
    }

    pub fn config(&self) -> &AcdConfig {
        &self.cfg
    }

    pub fn poll_decision(&mut self) -> Option<Decision> {
        self.decisions.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<QueueEvent> {
        self.events.pop_front()
    }

    /// The shown state of a seat, if known.
    pub fn seat_state(&self, seat: SeatId) -> Option<SeatState> {
        self.seats.get(&seat).map(Seat::state)
    }

    pub fn seat_name(&self, seat: SeatId) -> Option<&str> {
        self.seats.get(&seat).map(|s| s.name.as_str())
    }

    pub fn seat_id(&self, name: &str) -> Option<SeatId> {
        self.seats
            .iter()
            .find(|(_, s)| s.name == name)
            .map(|(id, _)| *id)
    }

    /// Whether `call` is waiting (offered or not).
    pub fn is_queued(&self, call: CallKey) -> bool {
        self.waiters.contains_key(&call)
    }

    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    fn set_activity(&mut self, seat: SeatId, activity: Activity, now: Instant) {
        if let Some(s) = self.seats.get_mut(&seat) {
            let before = s.state();
            s.activity = activity;
            if s.state() != before {
                s.since = now;
            }
        }
    }

    fn touch<F: FnOnce(&mut Seat)>(&mut self, seat: SeatId, now: Instant, f: F) {
        if let Some(s) = self.seats.get_mut(&seat) {
            let before = s.state();
            f(s);
            if s.state() != before {
                s.since = now;
            }
        }
    }

    // ------------------------------------------------------------------ the pool

    /// The seats that exist (from the ledger) with their skills; seats no longer listed are
    /// forgotten once idle. New seats start offline.
    pub fn set_seats(&mut self, now: Instant, seats: &[(SeatId, String, Vec<String>)]) {
        self.next_deadline = None;
        let listed: HashSet<SeatId> = seats.iter().map(|(id, _, _)| *id).collect();
        for (id, name, skills) in seats {
            let s = self.seats.entry(*id).or_insert_with(|| Seat {
                name: name.clone(),
                skills: Vec::new(),
                online: false,
                paused: None,
                activity: Activity::Idle,
                since: now,
                idle_since: None,
                hold_until: None,
                no_answers: 0,
                handled: 0,
            });
            s.name.clone_from(name);
            s.skills.clone_from(skills);
        }
        self.seats
            .retain(|id, s| listed.contains(id) || s.activity != Activity::Idle || s.online);
        self.dispatch(now);
    }

    /// Registration changed: `online` seats have a reachable binding. A seat that goes
    /// offline while ringing has its offer withdrawn (the caller moves on); one on a call
    /// keeps it (the dialog does not depend on the registration).
    pub fn set_online(&mut self, now: Instant, seat: SeatId, name: &str, online: bool) {
        self.next_deadline = None;
        if !self.seats.contains_key(&seat) {
            self.set_seats_one(now, seat, name);
        }
        let Some(s) = self.seats.get(&seat) else {
            return;
        };
        if s.online == online {
            return;
        }
        let ringing = match s.activity {
            Activity::Ringing {
                call,
                deadline: Some(_),
                ..
            } => Some(call),
            _ => None,
        };
        tracing::info!(seat = %s.name, online, "seat registration");
        self.touch(seat, now, |s| s.online = online);
        if let Some(call) = ringing {
            self.withdraw(now, seat, call, Penalty::None);
        }
        if !online && !self.any_online() {
            // Nobody can take the callers still waiting: they leave a message now.
            let waiting: Vec<CallKey> = self.order.values().copied().collect();
            for call in waiting {
                self.overflow(now, call);
            }
        }
        self.dispatch(now);
    }

    fn set_seats_one(&mut self, now: Instant, seat: SeatId, name: &str) {
        self.seats.insert(
            seat,
            Seat {
                name: name.to_owned(),
                skills: Vec::new(),
                online: false,
                paused: None,
                activity: Activity::Idle,
                since: now,
                idle_since: None,
                hold_until: None,
                no_answers: 0,
                handled: 0,
            },
        );
    }

    fn any_online(&self) -> bool {
        self.seats.values().any(|s| s.online)
    }

    /// Pauses a seat (`smartdesk seat pause`). An offer ringing now rings on; no new one comes.
    pub fn pause(&mut self, now: Instant, name: &str, reason: &str) -> Result<(), AcdError> {
        self.next_deadline = None;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AcdError::EmptyReason);
        }
        let seat = self
            .seat_id(name)
            .ok_or_else(|| AcdError::UnknownSeat(name.to_owned()))?;
        let reason = reason.to_owned();
        self.touch(seat, now, |s| s.paused = Some(reason));
        Ok(())
    }

    /// Ends a pause (`smartdesk seat resume`); clears the no-answer count.
    pub fn resume(&mut self, now: Instant, name: &str) -> Result<(), AcdError> {
        self.next_deadline = None;
        let seat = self
            .seat_id(name)
            .ok_or_else(|| AcdError::UnknownSeat(name.to_owned()))?;
        self.touch(seat, now, |s| {
            s.paused = None;
            s.no_answers = 0;
        });
        self.dispatch(now);
        Ok(())
    }

    /// Forces a seat back to a sane state (`smartdesk seat reset`): not paused, no retry
    /// delay, no counted no-answers. A ringing offer is withdrawn (the seat shows ringing until
    /// its INVITE ends); anything else — a withdrawn offer that never ended, a call, a
    /// wrap-up — is dropped and the seat is idle. The caller must [`Self::reconcile`] right
    /// after: a call or an INVITE the call path really holds comes back from there, and
    /// reconcile offers the seat again.
    pub fn reset(&mut self, now: Instant, name: &str) -> Result<(), AcdError> {
        self.next_deadline = None;
        let seat = self
            .seat_id(name)
            .ok_or_else(|| AcdError::UnknownSeat(name.to_owned()))?;
        let activity = self.seats.get(&seat).map(|s| s.activity);
        if let Some(Activity::Ringing {
            call,
            deadline: Some(_),
            ..
        }) = activity
        {
            self.withdraw(now, seat, call, Penalty::None);
        } else {
            self.set_activity(seat, Activity::Idle, now);
            self.clear_offers_to(seat);
        }
        self.touch(seat, now, |s| {
            s.paused = None;
            s.hold_until = None;
            s.no_answers = 0;
        });
        tracing::info!(seat = %name, "seat reset by an operator");
        Ok(())
    }

    /// The operator submitted the first-response record: wrap-up ends.
    pub fn wrap_up_done(&mut self, now: Instant, seat: SeatId) -> bool {
        self.next_deadline = None;
        let wrapping = self
            .seats
            .get(&seat)
            .is_some_and(|s| matches!(s.activity, Activity::WrapUp { .. }));
        if wrapping {
            self.set_activity(seat, Activity::Idle, now);
            self.dispatch(now);
        }
        wrapping
    }

    /// Counters for "calls handled today" start again (the edge calls this at midnight).
    pub fn reset_daily_counts(&mut self) {
        self.next_deadline = None;
        for s in self.seats.values_mut() {
            s.handled = 0;
        }
    }

    // ------------------------------------------------------------------ callers

    /// A caller enters the queue. With no seat registered at all it overflows at once.
    pub fn enqueue(&mut self, now: Instant, call: CallKey, contractor: i64, skill: Option<String>) {
        self.next_deadline = None;
        if self.waiters.contains_key(&call) {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.waiters.insert(
            call,
            Waiter {
                contractor,
                skill,
                entered: now,
                seq,
                offered: None,
            },
        );
        self.order.insert((now, seq), call);
        self.event(call, contractor, QueueEventKind::Entered);
        if !self.any_online() {
            self.overflow(now, call);
            return;
        }
        self.dispatch(now);
    }

    /// The caller hung up while waiting (or while a seat rang). The ringing seat, if any,
    /// is withdrawn without penalty.
    pub fn abandon(&mut self, now: Instant, call: CallKey) {
        self.next_deadline = None;
        let Some(position) = self.position(call) else {
            return;
        };
        let Some(w) = self.remove_waiter(call) else {
            return;
        };
        if let Some(seat) = w.offered {
            self.withdraw_seat_only(now, seat, call, Penalty::None);
        }
        self.event(
            call,
            w.contractor,
            QueueEventKind::Abandoned {
                wait_ms: ms(now.saturating_duration_since(w.entered)),
                position,
            },
        );
        self.dispatch(now);
    }

    /// The call path dropped `call` for another reason than the caller leaving (a failure):
    /// out of the queue without a log entry; its ringing seat is withdrawn.
    pub fn remove_call(&mut self, call: CallKey) {
        self.next_deadline = None;
        let Some(w) = self.remove_waiter(call) else {
            return;
        };
        let Some(seat) = w.offered else { return };
        // The seat stays `ringing` (withdrawn) until its INVITE ends, so the instant of the
        // state change is not needed: keep the seat's own.
        if let Some(since) = self.seats.get(&seat).map(|s| s.since) {
            self.withdraw_seat_only(since, seat, call, Penalty::None);
        }
    }

    /// 1-based position in the queue.
    fn position(&self, call: CallKey) -> Option<u32> {
        let w = self.waiters.get(&call)?;
        let ahead = self.order.range(..(w.entered, w.seq)).count();
        Some(u32::try_from(ahead + 1).unwrap_or(u32::MAX))
    }

    fn remove_waiter(&mut self, call: CallKey) -> Option<Waiter> {
        let w = self.waiters.remove(&call)?;
        self.order.remove(&(w.entered, w.seq));
        Some(w)
    }

    fn overflow(&mut self, now: Instant, call: CallKey) {
        let Some(w) = self.remove_waiter(call) else {
            return;
        };
        if let Some(seat) = w.offered {
            self.withdraw(now, seat, call, Penalty::None);
        }
        self.event(
            call,
            w.contractor,
            QueueEventKind::Overflow {
                wait_ms: ms(now.saturating_duration_since(w.entered)),
            },
        );
        self.decisions.push_back(Decision::Overflow { call });
    }

    fn event(&mut self, call: CallKey, contractor: i64, kind: QueueEventKind) {
        self.events.push_back(QueueEvent {
            call,
            contractor,
            kind,
        });
    }

    // ------------------------------------------------------------------ offers

    /// The seat answered `call`: it is on the call, the caller leaves the queue.
    pub fn answered(&mut self, now: Instant, call: CallKey, seat: SeatId) {
        self.next_deadline = None;
        let offered = matches!(
            self.seats.get(&seat).map(|s| s.activity),
            Some(Activity::Ringing { call: c, deadline: Some(_), .. }) if c == call
        );
        let waiter_ok = self
            .waiters
            .get(&call)
            .is_some_and(|w| w.offered == Some(seat));
        if !(offered && waiter_ok) {
            return;
        }
        let Some(w) = self.remove_waiter(call) else {
            return;
        };
        self.touch(seat, now, |s| {
            s.activity = Activity::OnCall { call };
            s.no_answers = 0;
            s.handled = s.handled.saturating_add(1);
        });
        self.event(
            call,
            w.contractor,
            QueueEventKind::Connected {
                seat,
                wait_ms: ms(now.saturating_duration_since(w.entered)),
            },
        );
    }

    /// The INVITE to `seat` for `call` ended without an answer (or after we withdrew it).
    pub fn offer_ended(&mut self, now: Instant, call: CallKey, seat: SeatId, end: OfferEnd) {
        self.next_deadline = None;
        let Some(Activity::Ringing {
            call: c,
            deadline,
            penalty,
        }) = self.seats.get(&seat).map(|s| s.activity)
        else {
            return;
        };
        if c != call {
            return;
        }
        let contractor = self.waiters.get(&call).map(|w| w.contractor);
        let delay = match (deadline, end) {
            // Withdrawn earlier: the penalty was decided then.
            (None, _) | (_, OfferEnd::AfterWithdraw) => match penalty {
                Penalty::NoAnswer => Some(self.cfg.retry_no_answer),
                Penalty::None => None,
            },
            (Some(_), OfferEnd::Busy) => {
                if let Some(c) = contractor {
                    self.event(call, c, QueueEventKind::Busy { seat });
                }
                Some(self.cfg.retry_busy)
            }
            (Some(_), OfferEnd::Declined) => {
                if let Some(c) = contractor {
                    self.event(call, c, QueueEventKind::Declined { seat });
                }
                Some(self.cfg.retry_decline)
            }
            (Some(_), OfferEnd::Unreachable) => {
                if let Some(c) = contractor {
                    self.event(call, c, QueueEventKind::NoAnswer { seat });
                }
                self.count_no_answer(now, seat);
                Some(self.cfg.retry_no_answer)
            }
        };
        self.touch(seat, now, |s| {
            s.activity = Activity::Idle;
            s.idle_since = Some(now);
            s.hold_until = delay.map(|d| now + d);
        });
        self.clear_offer(call, seat);
        self.dispatch(now);
    }

    /// The call `seat` was on has ended: wrap-up starts.
    pub fn call_ended(&mut self, now: Instant, call: CallKey, seat: SeatId) {
        self.next_deadline = None;
        let on_it = matches!(
            self.seats.get(&seat).map(|s| s.activity),
            Some(Activity::OnCall { call: c }) if c == call
        );
        if !on_it {
            return;
        }
        let activity = if self.cfg.wrap_up_max.is_zero() {
            Activity::Idle
        } else {
            Activity::WrapUp {
                until: now + self.cfg.wrap_up_max,
            }
        };
        self.touch(seat, now, |s| {
            s.activity = activity;
            s.idle_since = Some(now);
        });
        self.dispatch(now);
    }

    /// Withdraws the ringing offer of `seat` for `call`: the caller is free for another seat.
    fn withdraw(&mut self, now: Instant, seat: SeatId, call: CallKey, penalty: Penalty) {
        self.withdraw_seat_only(now, seat, call, penalty);
        self.clear_offer(call, seat);
    }

    fn withdraw_seat_only(&mut self, now: Instant, seat: SeatId, call: CallKey, penalty: Penalty) {
        let ringing = matches!(
            self.seats.get(&seat).map(|s| s.activity),
            Some(Activity::Ringing { call: c, deadline: Some(_), .. }) if c == call
        );
        if !ringing {
            return;
        }
        self.set_activity(
            seat,
            Activity::Ringing {
                call,
                deadline: None,
                penalty,
            },
            now,
        );
        self.decisions.push_back(Decision::Withdraw { call, seat });
    }

    fn clear_offer(&mut self, call: CallKey, seat: SeatId) {
        if let Some(w) = self.waiters.get_mut(&call) {
            if w.offered == Some(seat) {
                w.offered = None;
            }
        }
    }

    fn clear_offers_to(&mut self, seat: SeatId) {
        for w in self.waiters.values_mut() {
            if w.offered == Some(seat) {
                w.offered = None;
            }
        }
    }

    fn count_no_answer(&mut self, now: Instant, seat: SeatId) {
        let max = self.cfg.max_no_answer;
        let mut paused = None;
        self.touch(seat, now, |s| {
            s.no_answers = s.no_answers.saturating_add(1);
            if max > 0 && s.no_answers >= max && s.paused.is_none() {
                s.paused = Some(PAUSE_NO_ANSWER.to_owned());
                paused = Some((s.name.clone(), s.no_answers));
            }
        });
        if let Some((name, n)) = paused {
            tracing::warn!(seat = %name, no_answers = n, "seat paused: it let calls ring out; `smartdesk seat resume` brings it back");
        }
    }

    // ------------------------------------------------------------------ time

    /// The next instant [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if let Some(known) = self.next_deadline {
            return known;
        }
        let next = self.scan_deadline();
        self.next_deadline = Some(next);
        next
    }

    fn scan_deadline(&self) -> Option<Instant> {
        // A plain loop: this visits every seat after each change, so it stays lean.
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for s in self.seats.values() {
            match s.activity {
                Activity::Ringing { deadline, .. } => consider(deadline),
                Activity::WrapUp { until } => consider(Some(until)),
                _ => {}
            }
            consider(s.hold_until);
        }
        for w in self.waiters.values() {
            consider(Some(w.entered + self.cfg.max_wait));
            if w.skill.is_some() {
                consider(Some(w.entered + self.cfg.skill_fallback));
            }
        }
        next
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.next_deadline = None;
        // Ring timeouts: the seat did not answer.
        let rung_out: Vec<(SeatId, CallKey)> = self
            .seats
            .iter()
            .filter_map(|(id, s)| match s.activity {
                Activity::Ringing {
                    call,
                    deadline: Some(d),
                    ..
                } if d <= now => Some((*id, call)),
                _ => None,
            })
            .collect();
        for (seat, call) in rung_out {
            if let Some(c) = self.waiters.get(&call).map(|w| w.contractor) {
                self.event(call, c, QueueEventKind::NoAnswer { seat });
            }
            self.count_no_answer(now, seat);
            self.withdraw(now, seat, call, Penalty::NoAnswer);
        }
        // Wrap-ups over; retry delays over.
        let ids: Vec<SeatId> = self.seats.keys().copied().collect();
        for id in ids {
            let Some(s) = self.seats.get(&id) else {
                continue;
            };
            if matches!(s.activity, Activity::WrapUp { until } if until <= now) {
                self.set_activity(id, Activity::Idle, now);
            }
            if let Some(s) = self.seats.get_mut(&id) {
                if s.hold_until.is_some_and(|t| t <= now) {
                    s.hold_until = None;
                }
            }
        }
        // Callers over the maximum wait leave a message.
        let over: Vec<CallKey> = self
            .order
            .iter()
            .filter(|((entered, _), _)| *entered + self.cfg.max_wait <= now)
            .map(|(_, c)| *c)
            .collect();
        for call in over {
            self.overflow(now, call);
        }
        // Skill fallbacks that passed are noticed by dispatch; a deadline in the past would
        // keep firing, so drop the skill once any seat will do.
        for w in self.waiters.values_mut() {
            if w.skill.is_some() && w.entered + self.cfg.skill_fallback <= now {
                w.skill = None;
            }
        }
        self.dispatch(now);
    }

    /// Offers free seats to waiting callers: the longest waiter first; for each, among the
    /// free seats it may take, the one idle longest.
    fn dispatch(&mut self, now: Instant) {
        // Most changes leave nobody waiting for an offer: no seat scan then.
        if self.waiters.values().all(|w| w.offered.is_some()) {
            return;
        }
        // Free seats with what the choice compares, so choosing reads no seat again.
        let mut free: Vec<(Option<Instant>, SeatId)> = self
            .seats
            .iter()
            .filter(|(_, s)| s.free(now))
            .map(|(id, s)| (s.idle_since, *id))
            .collect();
        if free.is_empty() {
            return;
        }
        let waiting: Vec<CallKey> = self.order.values().copied().collect();
        for call in waiting {
            if free.is_empty() {
                break;
            }
            let Some(w) = self.waiters.get(&call) else {
                continue;
            };
            if w.offered.is_some() {
                continue;
            }
            let skill = w
                .skill
                .as_deref()
                .filter(|_| now < w.entered + self.cfg.skill_fallback);
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, (_, id))| {
                    skill.is_none_or(|k| self.seats.get(id).is_some_and(|s| s.has(k)))
                })
                // Never idle counts as idlest; then the lower seat id (stable, fair enough).
                .min_by_key(|(_, key)| **key)
                .map(|(i, (_, id))| (i, *id));
            let Some((i, seat)) = best else { continue };
            free.swap_remove(i);
            let contractor = w.contractor;
            if let Some(w) = self.waiters.get_mut(&call) {
                w.offered = Some(seat);
            }
            self.set_activity(
                seat,
                Activity::Ringing {
                    call,
                    deadline: Some(now + self.cfg.ring_timeout),
                    penalty: Penalty::None,
                },
                now,
            );
            self.event(call, contractor, QueueEventKind::Offered { seat });
            self.decisions.push_back(Decision::Offer { call, seat });
        }
    }

    /// The call path could not even send the INVITE (no route): like an unreachable seat,
    /// without counting a no-answer against the operator.
    pub fn offer_failed(&mut self, now: Instant, call: CallKey, seat: SeatId) {
        self.next_deadline = None;
        let ringing = matches!(
            self.seats.get(&seat).map(|s| s.activity),
            Some(Activity::Ringing { call: c, .. }) if c == call
        );
        if !ringing {
            return;
        }
        self.touch(seat, now, |s| {
            s.activity = Activity::Idle;
            s.hold_until = Some(now + DEFAULT_RETRY_NO_ANSWER);
        });
        self.clear_offer(call, seat);
        self.dispatch(now);
    }

    // ------------------------------------------------------------------ repair

    /// Cross-checks the seats and the queue against what the call path really holds
    /// (`live`: legs to seats; `calls`: calls the call path still has) and repairs any
    /// mismatch, logging each repair. Returns the number of repairs. This is what makes a
    /// lost BYE, a crashed softphone or a bug elsewhere unable to leave a seat stuck.
    pub fn reconcile(&mut self, now: Instant, live: &[LiveLeg], calls: &HashSet<CallKey>) -> usize {
        self.next_deadline = None;
        let mut repairs = 0;
        let mut by_seat: HashMap<SeatId, LiveLeg> = HashMap::new();
        for l in live {
            let seat = match l {
                LiveLeg::Ringing { seat, .. } | LiveLeg::OnCall { seat, .. } => *seat,
            };
            // An answered leg outranks a ringing one for the same seat.
            let keep = !matches!(
                (by_seat.get(&seat), l),
                (Some(LiveLeg::OnCall { .. }), LiveLeg::Ringing { .. })
            );
            if keep {
                by_seat.insert(seat, *l);
            }
        }
        let ids: Vec<SeatId> = self.seats.keys().copied().collect();
        for id in ids {
            let Some(s) = self.seats.get(&id) else {
                continue;
            };
            let name = s.name.clone();
            let activity = s.activity;
            match (activity, by_seat.get(&id)) {
                (Activity::Ringing { call, .. }, Some(LiveLeg::Ringing { call: c, .. }))
                    if call == *c => {}
                (Activity::OnCall { call }, Some(LiveLeg::OnCall { call: c, .. }))
                    if call == *c => {}
                (Activity::OnCall { call }, Some(LiveLeg::Ringing { call: c, .. }))
                    if call == *c => {}
                (_, Some(LiveLeg::OnCall { call, .. })) => {
                    tracing::warn!(seat = %name, state = ?activity, "repair: seat is on a call the ACD did not know");
                    self.set_activity(id, Activity::OnCall { call: *call }, now);
                    self.clear_offers_to(id);
                    repairs += 1;
                }
                (_, Some(LiveLeg::Ringing { call, .. })) => {
                    tracing::warn!(seat = %name, state = ?activity, "repair: seat is being rung; the ACD did not know");
                    self.set_activity(
                        id,
                        Activity::Ringing {
                            call: *call,
                            deadline: None,
                            penalty: Penalty::None,
                        },
                        now,
                    );
                    self.clear_offers_to(id);
                    repairs += 1;
                }
                (Activity::Ringing { .. } | Activity::OnCall { .. }, None) => {
                    tracing::warn!(seat = %name, state = ?activity, "repair: seat held by a call that no longer exists; available again");
                    self.set_activity(id, Activity::Idle, now);
                    self.clear_offers_to(id);
                    repairs += 1;
                }
                _ => {}
            }
        }
        // Callers: gone from the call path, or pointing at a seat not ringing for them.
        let queued: Vec<CallKey> = self.waiters.keys().copied().collect();
        for call in queued {
            if !calls.contains(&call) {
                tracing::warn!(call, "repair: a queued caller the call path no longer has");
                self.remove_waiter(call);
                repairs += 1;
                continue;
            }
            let Some(seat) = self.waiters.get(&call).and_then(|w| w.offered) else {
                continue;
            };
            let ok = matches!(
                self.seats.get(&seat).map(|s| s.activity),
                Some(Activity::Ringing { call: c, deadline: Some(_), .. }) if c == call
            );
            if !ok {
                tracing::warn!(call, "repair: a caller waited on an offer no seat holds");
                self.clear_offer(call, seat);
                repairs += 1;
            }
        }
        self.dispatch(now);
        repairs
    }

    // ------------------------------------------------------------------ views

    pub fn snapshot(&self, now: Instant) -> AcdSnapshot {
        let waiting = self
            .order
            .values()
            .enumerate()
            .filter_map(|(i, call)| {
                let w = self.waiters.get(call)?;
                Some(WaiterView {
                    call: *call,
                    contractor: w.contractor,
                    position: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    wait_ms: ms(now.saturating_duration_since(w.entered)),
                    ringing_seat: w.offered,
                    skill: w.skill.clone(),
                })
            })
            .collect();
        let seats = self
            .seats
            .iter()
            .map(|(id, s)| SeatView {
                seat_id: *id,
                name: s.name.clone(),
                state: s.state(),
                in_state_ms: ms(now.saturating_duration_since(s.since)),
                handled: s.handled,
                skills: s.skills.clone(),
                consecutive_no_answers: s.no_answers,
            })
            .collect();
        AcdSnapshot { waiting, seats }
    }
}

#[cfg(test)]
mod tests;
