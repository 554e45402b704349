//! The B2BUA call path (sans-IO): a carrier's INVITE on leg A becomes our own INVITE to an
//! operator's seat on leg B, with media anchored at our relay.
//!
//! ```text
//!  carrier ── INVITE ──► trunk ACL (403) ─► number (404) ─► 100 Trying ─► Admit effect
//!                                                                         │ (edge: number owner,
//!                                                                         │  contract rules, the
//!                                                                         │  durable call row)
//!           ◄── 404 / 503 / announcement ◄───── Admission ◄──────────────┘
//!                                            │ Route
//!           ◄── 183 + our SDP: "please wait", ▼ ringback (early media, looped)
//!                                  queue (crate::acd) ── Offer ─► INVITE (From "【name】caller",
//!                                    │   ▲ no answer / busy /          X-Smartdesk-*) ─► seat
//!                                    │   └ decline / offline: Withdraw (CANCEL), next seat
//!                                    │ max wait, nobody registered: Overflow
//!           ◄── 200, "leave a message" + tone, recording ◄─┘
//!           ◄── 200 (our SDP) ◄── answered ◄───────────────────────────────── 200
//!           ── ACK ─────────────► ACK to the seat (end to end, late offers carried)
//! ```
//!
//! Which seat rings for which caller, when an offer is withdrawn and when a caller overflows
//! is decided by the ACD ([`crate::acd`]), which this core owns and feeds; this core carries
//! its [`Decision`]s out in SIP and reports back what the seats did. A withdrawn seat INVITE
//! is kept apart (`Call::dying`) until its transaction ends, so the caller moves on at once
//! while the seat still shows `ringing`.
//!
//! Everything that must survive a crash happens in the edge before this core sends more than
//! 100 Trying: the call row is written by the Admit effect, and only its result lets the call
//! go on. This core never reads a clock and does no IO: the endpoint feeds it requests,
//! responses and transaction events, and the edge feeds it admission results and media
//! notices; it answers through [`Io`] (messages) and [`CallEffect`]s (ledger and media).
//!
//! Routing of in-dialog requests: we send them to the address the leg's messages come from
//! (the carrier SBC, or the seat's registered source) rather than resolving the remote
//! target, as SBC-facing B2BUAs do (Asterisk `force_rport`/`comedia`): both peers may be
//! behind NAT, and the trunk ACL names the carrier's addresses anyway.

pub mod ops;
pub mod wire;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::acd::{Acd, AcdConfig, Decision, LiveLeg, OfferEnd, QueueEventKind};
use crate::config::profiles::Trunk;
use crate::media::g711::Law;
use crate::media::ports::{PortAllocator, PortGate, RtpPort};
use crate::media::relay::{Leg, Remote};
use crate::number::E164;
use crate::sip::endpoint::{envelope, Destination, Io};
use crate::sip::message::{Message, Method as SipMethod};
use crate::sip::sdp::{rewrite_for_anchor, Codec, MediaInfo, Sdp};
use crate::sip::transaction::{
    PeerId, TimerConfig, TsxKey, Uas2xxEvent, Uas2xxRetransmitter, Uas2xxState,
};

pub use ops::{CallSummary, HangupError, LiveCall, DRAIN_RETRY_AFTER_SECS};
use wire::{quote_display, uri_of, uri_user, RequestSpec, BRANCH_PREFIX};

/// Retry-After (seconds) on the 503 sent when the call row cannot be written: long enough
/// for a ledger fail-over, short enough that the carrier's retry still reaches a person.
pub const LEDGER_RETRY_AFTER_SECS: u32 = 5;

/// Configuration of the call path.
#[derive(Debug, Clone)]
pub struct B2buaConfig {
    /// Our SIP address as peers must see it (Via sent-by, Contact).
    pub local: SocketAddr,
    /// Address our relay ports are on (SDP `c=`).
    pub media_ip: IpAddr,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Codecs offered to seats and accepted from carriers, in preference order.
    pub codecs: Vec<Codec>,
    /// Queue and seat rules (ring timeout, retry delays, maximum wait, wrap-up).
    pub acd: AcdConfig,
    /// Longest voice message a caller may leave when the call overflows.
    pub recording_max: Duration,
    pub trunks: Vec<Trunk>,
    /// The seats' domain (the seat profile realm), for the To of our INVITEs.
    pub seat_domain: String,
    /// Concurrent calls; beyond it new calls get 503.
    pub max_calls: usize,
    pub timers: TimerConfig,
}

/// A registered seat the call path may ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatTarget {
    pub seat_id: i64,
    pub seat: String,
    pub contact_uri: String,
    pub dest: Destination,
}

/// Longest the message prompt may take before recording must have started (prompts are
/// checked to be well under this when loaded).
pub const MESSAGE_PROMPT_MAX: Duration = Duration::from_secs(60);

/// How often the call path cross-checks the ACD against registrations and live calls
/// ([`B2bua::reconcile`]); mismatches are repaired and logged.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// Pairs looked at for one allocation when the edge refuses some (held by another process).
const PORT_TRIES: usize = 256;

/// Where the call path finds registered seats (the registrar).
pub trait SeatLocator {
    /// One target per seat with a reachable registration: its most preferred contact.
    fn seat_targets(&self) -> Vec<SeatTarget>;

    /// Changes whenever the targets may have changed; `None` if unknown (then every check
    /// re-reads the targets).
    fn version(&self) -> Option<u64> {
        None
    }
}

/// An operator's command on a seat: `smartdesk seat pause|resume|reset` (by name) or the
/// operator console's pause/resume buttons (by id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatCommand {
    Pause { seat: SeatRef, reason: String },
    Resume { seat: SeatRef },
    Reset { seat: SeatRef },
}

/// A seat named by an admin (its name) or known to the console (its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatRef {
    Name(String),
    Id(i64),
}

impl From<&str> for SeatRef {
    fn from(name: &str) -> SeatRef {
        SeatRef::Name(name.to_owned())
    }
}

impl From<String> for SeatRef {
    fn from(name: String) -> SeatRef {
        SeatRef::Name(name)
    }
}

/// What the edge needs to admit a call: look up the number, apply the contract rules and
/// write the row durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmitRequest {
    pub trunk: String,
    pub number: E164,
    /// E.164 when it parses as a Japanese number, else the raw user part; `None` if withheld.
    pub caller: Option<String>,
    pub withheld: bool,
    pub sip_call_id: String,
    pub from_tag: String,
}

/// Situations with a recorded announcement (issue #5 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    OutOfHours,
    Suspended,
    AllBusy,
    PleaseWait,
    /// Japanese ringback (呼出音), looped while a queued caller waits.
    Ringback,
    /// "Please leave your name, number and message after the tone", ending with the tone.
    LeaveMessage,
}

/// The edge's answer to [`CallEffect::Admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Ring a seat.
    Route {
        row: i64,
        contractor_id: i64,
        name: String,
        greeting: String,
        /// A seat skill the contractor prefers (`hearing` with the hearing option).
        skill: Option<String>,
    },
    /// Answer, play `prompt`, hang up; the row gets `outcome`.
    Announce {
        row: i64,
        prompt: Prompt,
        outcome: &'static str,
    },
    /// Refuse with `status`; the row (if one was written) gets `outcome`.
    Reject {
        row: Option<i64>,
        status: u16,
        outcome: Option<&'static str>,
    },
    /// The row could not be written: 503 with Retry-After, nothing counted.
    Unavailable,
}

/// Work for the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEffect {
    Admit {
        call: u64,
        request: AdmitRequest,
    },
    /// A seat answered: stamp `answered_at` and the seat on the row now.
    Answered {
        call: u64,
        row: i64,
        seat_id: i64,
    },
    /// The call is over: outcome, seat and `ended_at` on the row.
    Finished {
        call: u64,
        row: i64,
        outcome: &'static str,
        seat_id: Option<i64>,
    },
    MediaStart {
        call: u64,
        a_port: u16,
        b_port: u16,
        a: Remote,
        b: Remote,
    },
    MediaRemote {
        call: u64,
        leg: Leg,
        remote: Remote,
        hold: bool,
    },
    MediaPlay {
        call: u64,
        leg: Leg,
        prompt: Prompt,
        repeat: bool,
        /// The codec negotiated on that leg.
        law: Law,
    },
    /// Stop a prompt playing to `leg`; relayed audio resumes.
    MediaStopPlay {
        call: u64,
        leg: Leg,
    },
    /// Record what the caller (leg A) sends, at most `max`; the recording is handed over
    /// when the call's media stops, as the voice message of `row`.
    MediaRecord {
        call: u64,
        row: i64,
        law: Law,
        max: Duration,
    },
    MediaStop {
        call: u64,
    },
    /// An entry for the queue log (issue #6 §7).
    Queue {
        call: u64,
        row: i64,
        contractor: i64,
        kind: QueueEventKind,
    },
    /// A seat is being rung for this call (the operator console shows the call).
    SeatOffered {
        call: u64,
        row: i64,
        seat_id: i64,
    },
    /// The seat is no longer on this call: it stopped ringing (moved on, caller gave up) or
    /// the answered call ended. `Answered` in between means the operator took it.
    SeatReleased {
        call: u64,
        row: i64,
        seat_id: i64,
    },
}

/// What the media edge reports about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaNotice {
    /// No RTP for the configured time.
    Timeout,
    PlayFinished,
    /// Fax calling tone heard from the caller.
    FaxTone,
    /// The relay ports could not be opened.
    Failed,
    /// Sockets closed; the ports may be reused.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the edge's [`Admission`].
    Admitting,
    /// In the queue: waiting for a seat, or a seat is being rung.
    Ringing,
    /// Overflowed: answered, the message prompt plays, then the caller's words are recorded.
    Message,
    /// Playing an announcement to the caller.
    Announcing,
    Answered,
    /// Leg A is finished; waiting for leg B to resolve (CANCEL/487, or a 2xx to tear down).
    Ending,
}

/// One leg's dialog from our side (RFC 3261 §12).
#[derive(Debug, Clone)]
struct Dialog {
    call_id: String,
    /// Our From (leg B) or To (leg A) value, tag included.
    local: String,
    /// Their value, tag included once known.
    remote: String,
    remote_target: String,
    routes: Vec<String>,
    cseq: u32,
    peer: PeerId,
    transport: &'static str,
}

#[derive(Debug)]
struct BLeg {
    dialog: Dialog,
    seat_id: i64,
    invite: Message,
    invite_tsx: TsxKey,
    provisional: bool,
    cancel_wanted: bool,
    cancel_sent: bool,
    answered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    fn leg(self) -> Leg {
        match self {
            Side::A => Leg::A,
            Side::B => Leg::B,
        }
    }
}

#[derive(Debug)]
struct ReInvite {
    /// Side that sent the re-INVITE to us.
    from: Side,
    server: TsxKey,
    request: Message,
    /// CSeq of the re-INVITE we sent on the other side.
    cseq: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    BInvite,
    Cancel,
    Bye,
    ReInvite,
}

#[derive(Debug)]
struct Call {
    phase: Phase,
    a: Dialog,
    a_invite: Message,
    /// The carrier's INVITE server transaction until its final response.
    a_tsx: Option<TsxKey>,
    a_key: (String, String),
    a_offer: Option<Sdp>,
    a_remote: Remote,
    caller_label: String,
    caller_user: String,
    number_national: String,
    max_forwards: u8,
    row: Option<i64>,
    contractor: Option<(i64, String, String)>,
    b: Option<BLeg>,
    /// Seat INVITEs withdrawn by the ACD (ring timeout, registration lost, overflow) whose
    /// transactions have not ended yet: CANCELled, and hung up should they answer anyway.
    dying: Vec<BLeg>,
    ports: Option<(RtpPort, RtpPort)>,
    media_started: bool,
    /// Early media (183 with our SDP) is going to the caller: queue audio plays on leg A.
    early: bool,
    /// The codec of leg A (prompts, the recording).
    law: Law,
    recording: bool,
    record_deadline: Option<Instant>,
    seat_answered: Option<i64>,
    outcome: Option<&'static str>,
    finished: bool,
    cancelled: bool,
    /// 2xx we sent and whose ACK we wait for, per side.
    retrans: [Option<Uas2xxRetransmitter>; 2],
    /// ACK owed to a side once the other side ACKs our 2xx: (side, CSeq, SDP answer needed).
    ack_owed: Option<(Side, u32)>,
    /// Last ACK sent to each side, resent when its 2xx is retransmitted.
    last_ack: [Option<(u32, Arc<[u8]>)>; 2],
    reinvite: Option<ReInvite>,
    /// When the carrier's INVITE arrived and when a seat answered (for status and metrics).
    started: Instant,
    answered_at: Option<Instant>,
    trunk: String,
}

impl Call {
    fn dialog(&self, side: Side) -> Option<&Dialog> {
        match side {
            Side::A => Some(&self.a),
            Side::B => self.b.as_ref().filter(|b| b.answered).map(|b| &b.dialog),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d = self.record_deadline;
        for r in self.retrans.iter().flatten() {
            if let Some(t) = r.poll_timeout() {
                d = Some(d.map_or(t, |x| x.min(t)));
            }
        }
        d
    }
}

/// Counters for status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct B2buaStats {
    pub calls: usize,
    pub refused_acl: u64,
    pub unknown_number: u64,
    /// INVITEs answered 503 because the daemon is shutting down.
    pub refused_draining: u64,
    /// RTP/RTCP port pairs held: by calls, and by ended calls until their relay closes.
    pub rtp_ports_in_use: usize,
    pub rtp_ports_capacity: usize,
}

/// The call table and its rules.
pub struct B2bua {
    cfg: B2buaConfig,
    calls: HashMap<u64, Call>,
    next_call: u64,
    by_a: HashMap<(String, String), u64>,
    by_b: HashMap<String, u64>,
    server_invites: HashMap<TsxKey, u64>,
    client: HashMap<TsxKey, (u64, Purpose)>,
    /// Queue and seats: who gets which call (see [`crate::acd`]).
    acd: Acd,
    /// Where each registered seat is reached, refreshed from the registrar.
    targets: HashMap<i64, SeatTarget>,
    next_reconcile: Option<Instant>,
    /// The locator's version at the last [`Self::sync_seats`].
    synced: Option<u64>,
    ports: PortAllocator,
    /// The edge's check that a pair can really be bound (see [`PortGate`]); none in tests.
    port_gate: Option<Box<dyn PortGate>>,
    /// Ports of ended calls until the media edge reports them closed.
    releasing: HashMap<u64, (RtpPort, RtpPort)>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    effects: VecDeque<CallEffect>,
    stats: B2buaStats,
    /// Shutting down: new calls are refused (see [`ops`]).
    draining: bool,
    /// Trunk name → when an OPTIONS from one of its addresses was last answered.
    trunk_seen: HashMap<String, Instant>,
    /// One summary per call that ended, until the edge polls it.
    ended: VecDeque<CallSummary>,
    /// Seat → the call row it last answered (whose record ends its wrap-up). One per seat.
    answered_rows: HashMap<i64, i64>,
    /// Seat → the row of its running call whose record came in before the call ended.
    records_early: HashMap<i64, i64>,
}

impl std::fmt::Debug for B2bua {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("B2bua")
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

/// The header-safe form of a text we put in a header value (greeting, names).
fn header_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn is_withheld(req: &Message, identity: &str) -> bool {
    let privacy = req
        .headers("Privacy")
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .any(|p| p.eq_ignore_ascii_case("id") || p.eq_ignore_ascii_case("header"));
    let user = uri_user(uri_of(identity)).unwrap_or_default();
    privacy
        || user.eq_ignore_ascii_case("anonymous")
        || user.is_empty()
        || uri_of(identity).contains("anonymous.invalid")
}

impl B2bua {
    pub fn new(cfg: B2buaConfig) -> Result<B2bua, crate::media::ports::PortError> {
        let ports = PortAllocator::new(cfg.rtp_port_min, cfg.rtp_port_max)?;
        Ok(B2bua {
            acd: Acd::new(cfg.acd.clone()),
            cfg,
            calls: HashMap::new(),
            next_call: 0,
            by_a: HashMap::new(),
            by_b: HashMap::new(),
            server_invites: HashMap::new(),
            client: HashMap::new(),
            targets: HashMap::new(),
            next_reconcile: None,
            synced: None,
            ports,
            port_gate: None,
            releasing: HashMap::new(),
            deadlines: BinaryHeap::new(),
            effects: VecDeque::new(),
            stats: B2buaStats::default(),
            draining: false,
            trunk_seen: HashMap::new(),
            ended: VecDeque::new(),
            answered_rows: HashMap::new(),
            records_early: HashMap::new(),
        })
    }

    pub fn stats(&self) -> B2buaStats {
        B2buaStats {
            calls: self.calls.len(),
            rtp_ports_in_use: self.ports.in_use(),
            rtp_ports_capacity: self.ports.capacity(),
            ..self.stats
        }
    }

    /// The queue and seat pool (states, snapshot).
    pub fn acd(&self) -> &Acd {
        &self.acd
    }

    pub fn poll_effect(&mut self) -> Option<CallEffect> {
        self.effects.pop_front()
    }

    /// Whether a request from `src` would be a trunk call.
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&Trunk> {
        self.cfg.trunks.iter().find(|t| t.admits(ip))
    }

    /// Whether this in-dialog request belongs to one of our calls.
    pub fn owns_dialog(&self, req: &Message) -> bool {
        self.find_dialog(req).is_some()
    }

    fn find_dialog(&self, req: &Message) -> Option<(u64, Side)> {
        let from_tag = req.from_tag().unwrap_or_default();
        if let Some(&id) = self
            .by_a
            .get(&(req.call_id().to_owned(), from_tag.to_owned()))
        {
            return Some((id, Side::A));
        }
        self.by_b.get(req.call_id()).map(|&id| (id, Side::B))
    }

    // ------------------------------------------------------------------ leg A: new calls

    /// A new INVITE (no To tag) in server transaction `key`.
    pub fn on_invite(
        &mut self,
        io: &mut Io,
        now: Instant,
        key: &TsxKey,
        req: &Message,
        src: SocketAddr,
        from: PeerId,
    ) {
        let reply = |io: &mut Io, code: u16, reason: &str| {
            let tag = io.unique();
            if let Some(r) = wire::response(req, code, reason, Some(&tag), &[], None) {
                io.respond(now, key, &r);
            }
        };
        let Some(trunk) = self.trunk_for(src.ip()).cloned() else {
            self.stats.refused_acl += 1;
            io.log_limited(now, "refused", || {
                crate::sip::security::event(crate::sip::security::ACL_REJECT, src.ip())
            });
            return reply(io, 403, "Forbidden");
        };
        if self.draining {
            self.stats.refused_draining += 1;
            return ops::refuse_retry_after(io, now, key, req, DRAIN_RETRY_AFTER_SECS);
        }
        if req.max_forwards() == Some(0) {
            return reply(io, 483, "Too Many Hops");
        }
        let ours = wire::host_port(self.cfg.local);
        if req.vias().iter().any(|v| {
            v.branch().is_some_and(|b| b.starts_with(BRANCH_PREFIX))
                && format!("{}:{}", v.host(), v.port().unwrap_or(5060)) == ours
        }) {
            return reply(io, 482, "Loop Detected");
        }
        let from_tag = req.from_tag().unwrap_or_default().to_owned();
        let a_key = (req.call_id().to_owned(), from_tag.clone());
        // §8.2.2.2: the same request again on another branch (a fork merged back to us, or
        // a carrier re-sending without its transaction) must not become a second call.
        if self.by_a.contains_key(&a_key) {
            return reply(io, 482, "Loop Detected");
        }
        if self.calls.len() >= self.cfg.max_calls {
            return ops::refuse_retry_after(io, now, key, req, LEDGER_RETRY_AFTER_SECS);
        }
        let user = req.request_uri().and_then(uri_user).unwrap_or_default();
        let Ok(number) = E164::parse_jp(user) else {
            self.stats.unknown_number += 1;
            io.log_limited(now, "number", || {
                tracing::info!(trunk = %trunk.name, "INVITE for a number that is not a Japanese number (404)")
            });
            return reply(io, 404, "Not Found");
        };
        let offer = if req.body().is_empty() {
            None
        } else if req
            .content_type()
            .is_some_and(|c| c.eq_ignore_ascii_case("application/sdp"))
        {
            match Sdp::parse_bytes(req.body()) {
                Ok(s) => Some(s),
                Err(_) => return reply(io, 400, "Bad Request (SDP)"),
            }
        } else {
            return reply(io, 415, "Unsupported Media Type");
        };

        let identity = req
            .header("P-Asserted-Identity")
            .and_then(|v| v.split(',').next())
            .unwrap_or_else(|| req.header("From").unwrap_or_default());
        let withheld = is_withheld(req, identity);
        let raw_user = uri_user(uri_of(identity)).unwrap_or_default().to_owned();
        let caller = if withheld {
            None
        } else {
            Some(
                E164::parse_jp(&raw_user)
                    .map(|e| e.as_str().to_owned())
                    .unwrap_or_else(|_| raw_user.clone()),
            )
        };
        let caller_label = match &caller {
            Some(c) => E164::parse_jp(c)
                .map(|e| e.national())
                .unwrap_or_else(|_| c.clone()),
            None => "非通知".to_owned(),
        };
        let caller_user = match &caller {
            Some(_) => caller_label
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '+')
                .collect(),
            None => "anonymous".to_owned(),
        };

        let id = self.next_call;
        self.next_call += 1;
        let local_tag = io.unique();
        let a = Dialog {
            call_id: req.call_id().to_owned(),
            local: format!("{};tag={local_tag}", req.header("To").unwrap_or_default()),
            remote: req.header("From").unwrap_or_default().to_owned(),
            remote_target: req
                .header("Contact")
                .map(|c| uri_of(c).to_owned())
                .unwrap_or_else(|| uri_of(req.header("From").unwrap_or_default()).to_owned()),
            routes: req.headers("Record-Route").map(str::to_owned).collect(),
            cseq: 1,
            peer: from,
            transport: io.transport(from),
        };
        let request = AdmitRequest {
            trunk: trunk.name.clone(),
            number: number.clone(),
            caller,
            withheld,
            sip_call_id: req.call_id().to_owned(),
            from_tag,
        };
        self.calls.insert(
            id,
            Call {
                phase: Phase::Admitting,
                a,
                a_invite: req.clone(),
                a_tsx: Some(key.clone()),
                a_key: a_key.clone(),
                a_offer: offer,
                a_remote: Remote::default(),
                caller_label,
                caller_user,
                number_national: number.national(),
                max_forwards: req.max_forwards().unwrap_or(70).saturating_sub(1),
                row: None,
                contractor: None,
                b: None,
                dying: Vec::new(),
                ports: None,
                media_started: false,
                early: false,
                law: Law::Pcmu,
                recording: false,
                record_deadline: None,
                seat_answered: None,
                outcome: None,
                finished: false,
                cancelled: false,
                retrans: [None, None],
                ack_owed: None,
                last_ack: [None, None],
                reinvite: None,
                started: now,
                answered_at: None,
                trunk: trunk.name.clone(),
            },
        );
        self.by_a.insert(a_key, id);
        self.server_invites.insert(key.clone(), id);
        // 100 Trying at once (§17.2.1): admission may take a disk write; nothing beyond
        // 100 goes out until the call row is durable.
        if let Some(t) = wire::response(req, 100, "Trying", None, &[], None) {
            io.respond(now, key, &t);
        }
        self.effects
            .push_back(CallEffect::Admit { call: id, request });
    }

    /// The edge's answer to an Admit effect.
    pub fn handle_admission(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: u64,
        admission: Admission,
        seats: &dyn SeatLocator,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.phase != Phase::Admitting {
            return;
        }
        if call.cancelled {
            // The caller cancelled while its row was being written: now that it is durable,
            // leg A gets its 487 and the row its outcome (found by tests/net_faults.rs, CANCEL
            // right after 100 Trying: the call was dropped before its admission and the row
            // kept no outcome).
            let (row, outcome) = match admission {
                Admission::Unavailable => (None, "failed"),
                Admission::Reject { row, .. } => (row, "abandoned"),
                Admission::Announce { row, outcome, .. } => (Some(row), outcome),
                Admission::Route {
                    row,
                    contractor_id,
                    name,
                    greeting,
                    ..
                } => {
                    call.contractor = Some((contractor_id, name, greeting));
                    (Some(row), "abandoned")
                }
            };
            call.row = row;
            call.outcome = Some(outcome);
            self.fail_a(io, now, id, 487, "Request Terminated", &[]);
            self.finish(id, outcome);
            self.remove_if_done(id);
            return;
        }
        match admission {
            Admission::Unavailable => {
                let retry = LEDGER_RETRY_AFTER_SECS.to_string();
                self.fail_a(
                    io,
                    now,
                    id,
                    503,
                    "Service Unavailable",
                    &[("Retry-After", &retry)],
                );
                self.remove_if_done(id);
            }
            Admission::Reject {
                row,
                status,
                outcome,
            } => {
                call.row = row;
                call.outcome = outcome;
                let reason = crate::sip::message::reason_phrase(status);
                self.fail_a(io, now, id, status, reason, &[]);
                self.finish(id, "failed");
                self.remove_if_done(id);
            }
            Admission::Announce {
                row,
                prompt,
                outcome,
            } => {
                call.row = Some(row);
                call.outcome = Some(outcome);
                self.announce(io, now, id, prompt);
            }
            Admission::Route {
                row,
                contractor_id,
                name,
                greeting,
                skill,
            } => {
                call.row = Some(row);
                call.contractor = Some((contractor_id, name, greeting));
                if call.a_offer.as_ref().is_some_and(is_fax_only) {
                    // A fax machine offering T.38 straight away: never ring an operator.
                    // Counted (the row is written) and refused, outcome fax (SPEC §3).
                    call.outcome = Some("fax");
                    self.fail_a(io, now, id, 488, "Not Acceptable Here", &[]);
                    self.finish(id, "fax");
                    self.remove_if_done(id);
                    return;
                }
                call.phase = Phase::Ringing;
                if self.synced.is_none() || seats.version().is_none_or(|v| self.synced != Some(v)) {
                    self.sync_seats(io, now, seats);
                }
                self.enter_queue(io, now, id, contractor_id, skill);
            }
        }
    }

    /// Ports for both legs, allocated once per call.
    fn ensure_ports(&mut self, id: u64) -> Option<(RtpPort, RtpPort)> {
        let call = self.calls.get_mut(&id)?;
        if let Some(p) = call.ports {
            return Some(p);
        }
        let (a, b) = self.allocate_pairs()?;
        if let Some(call) = self.calls.get_mut(&id) {
            call.ports = Some((a, b));
        }
        Some((a, b))
    }

    /// Two pairs from the range, each opened by the edge's [`PortGate`] when there is one.
    fn allocate_pairs(&mut self) -> Option<(RtpPort, RtpPort)> {
        let a = self.allocate_pair()?;
        let Some(b) = self.allocate_pair() else {
            self.release_pair(a);
            return None;
        };
        Some((a, b))
    }

    fn allocate_pair(&mut self) -> Option<RtpPort> {
        match self.port_gate.as_mut() {
            Some(gate) => self
                .ports
                .allocate_usable(PORT_TRIES, |p| gate.open(p))
                .ok(),
            None => self.ports.allocate().ok(),
        }
    }

    fn release_pair(&mut self, port: RtpPort) {
        if self.ports.release(port).is_ok() {
            if let Some(gate) = self.port_gate.as_mut() {
                gate.close(port.get());
            }
        }
    }

    /// Let the edge check each pair before it is handed out (see [`PortGate`]).
    pub fn set_port_gate(&mut self, gate: Box<dyn PortGate>) {
        self.port_gate = Some(gate);
    }

    /// Answers the caller and plays `prompt`; the call ends when it has been played.
    fn announce(&mut self, io: &mut Io, now: Instant, id: u64, prompt: Prompt) {
        let Some((a_port, b_port)) = self.ensure_ports(id) else {
            self.fail_a(io, now, id, 503, "Service Unavailable", &[]);
            self.finish(id, "failed");
            return self.remove_if_done(id);
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let answer = call.a_offer.as_ref().and_then(|offer| {
            rewrite_for_anchor(offer, self.cfg.media_ip, a_port.get(), &self.cfg.codecs).ok()
        });
        let Some((sdp, info)) = answer else {
            // No offer to answer (or nothing we can play to it): the caller cannot hear a
            // prompt, so the call is refused with the outcome already decided.
            let outcome = call.outcome.unwrap_or("failed");
            self.fail_a(io, now, id, 480, "Temporarily Unavailable", &[]);
            self.finish(id, outcome);
            return self.remove_if_done(id);
        };
        call.a_remote = remote_of(&info);
        call.phase = Phase::Announcing;
        call.media_started = true;
        let law = match info.codecs.first() {
            Some((Codec::Pcma, _)) => Law::Pcma,
            _ => Law::Pcmu,
        };
        self.effects.push_back(CallEffect::MediaStart {
            call: id,
            a_port: a_port.get(),
            b_port: b_port.get(),
            a: call.a_remote,
            b: Remote::default(),
        });
        self.answer_a(io, now, id, sdp.to_string().as_bytes());
        self.effects.push_back(CallEffect::MediaPlay {
            call: id,
            leg: Leg::A,
            prompt,
            repeat: false,
            law,
        });
    }

    /// Sends our 2xx to the carrier's INVITE and starts its retransmission (§13.3.1.4).
    fn answer_a(&mut self, io: &mut Io, now: Instant, id: u64, sdp: &[u8]) {
        let contact = wire::contact(self.cfg.local, self.transport_a(id));
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(key) = call.a_tsx.take() else {
            return;
        };
        self.server_invites.remove(&key);
        let tag = local_tag(&call.a.local);
        let mut extra: Vec<(&str, &str)> =
            vec![("Contact", &contact), ("Allow", ALLOW), ("Supported", "")];
        let rr: Vec<String> = call
            .a_invite
            .headers("Record-Route")
            .map(str::to_owned)
            .collect();
        for r in &rr {
            extra.push(("Record-Route", r));
        }
        extra.retain(|(_, v)| !v.is_empty());
        let Some(ok) = wire::response(&call.a_invite, 200, "OK", Some(tag), &extra, Some(sdp))
        else {
            return;
        };
        io.respond(now, &key, &ok);
        call.retrans[0] = Some(Uas2xxRetransmitter::new(
            now,
            call.a.peer,
            &envelope(&ok),
            &self.cfg.timers,
        ));
        self.schedule(id);
    }

    fn transport_a(&self, id: u64) -> &'static str {
        self.calls.get(&id).map_or("UDP", |c| c.a.transport)
    }

    /// A final non-2xx to the carrier's INVITE, if it is still unanswered.
    fn fail_a(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: u64,
        code: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(key) = call.a_tsx.take() else {
            return;
        };
        self.server_invites.remove(&key);
        // Failing leg A must end its INVITE transaction with a final non-2xx answer. A 1xx
        // would leave the server transaction proceeding forever and the caller waiting; a
        // 2xx would start a dialog nobody tracks. `Admission::Reject` carries the edge's
        // status, so guard here (found by fuzz/endpoint with a Reject of status 109).
        let (code, reason) = if (300..=699).contains(&code) {
            (code, reason)
        } else {
            (500, "Server Internal Error")
        };
        let tag = local_tag(&call.a.local);
        if let Some(r) = wire::response(&call.a_invite, code, reason, Some(tag), extra, None) {
            io.respond(now, &key, &r);
        }
        if call.phase != Phase::Answered {
            call.phase = Phase::Ending;
        }
    }

    // ------------------------------------------------------------------ leg B: seats

    /// Rings `seat` for call `id` (the ACD's offer). Returns false if no INVITE went out.
    fn offer(&mut self, io: &mut Io, now: Instant, id: u64, seat: i64) -> bool {
        let Some(target) = self.targets.get(&seat).cloned() else {
            return false;
        };
        let ready = self
            .calls
            .get(&id)
            .is_some_and(|c| c.phase == Phase::Ringing && c.a_tsx.is_some() && c.b.is_none());
        if !ready {
            return false;
        }
        let Some((a_port, b_port)) = self.ensure_ports(id) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let offer = match &call.a_offer {
            Some(o) => {
                match rewrite_for_anchor(o, self.cfg.media_ip, b_port.get(), &self.cfg.codecs) {
                    Ok((sdp, info)) => {
                        call.a_remote = remote_of(&info);
                        Some(sdp.to_string())
                    }
                    Err(_) => return false,
                }
            }
            None => None,
        };
        if !call.media_started {
            call.media_started = true;
            self.effects.push_back(CallEffect::MediaStart {
                call: id,
                a_port: a_port.get(),
                b_port: b_port.get(),
                a: call.a_remote,
                b: Remote::default(),
            });
        }
        let peer = io.peer(target.dest);
        let transport = io.transport(peer);
        let (cid, name, greeting) =
            call.contractor
                .clone()
                .unwrap_or((0, String::new(), String::new()));
        let display = quote_display(&format!("【{}】{}", header_text(&name), call.caller_label));
        let host = wire::host_port(self.cfg.local);
        let from = format!(
            "{display} <sip:{}@{host}>;tag={}",
            call.caller_user,
            io.unique()
        );
        let to = format!("<sip:{}@{}>", target.seat, self.cfg.seat_domain);
        let call_id = format!("{}@{}", io.unique(), self.cfg.local.ip());
        let branch = format!("{BRANCH_PREFIX}{}", io.unique());
        let contact = wire::contact(self.cfg.local, transport);
        let cid_s = cid.to_string();
        let row_s = call.row.unwrap_or_default().to_string();
        let greeting = header_text(&greeting);
        let name = header_text(&name);
        let mut extra: Vec<(&str, &str)> = vec![
            ("X-Smartdesk-Contractor", &cid_s),
            ("X-Smartdesk-Contractor-Name", &name),
            ("X-Smartdesk-Greeting", &greeting),
            ("X-Smartdesk-Number", &call.number_national),
            ("X-Smartdesk-Call", &row_s),
            ("Allow", ALLOW),
        ];
        extra.retain(|(_, v)| !v.is_empty());
        let spec = RequestSpec {
            method: "INVITE",
            uri: &target.contact_uri,
            transport,
            local: self.cfg.local,
            branch: &branch,
            from: &from,
            to: &to,
            call_id: &call_id,
            cseq: 1,
            routes: &[],
            max_forwards: call.max_forwards,
            contact: Some(&contact),
            extra: &extra,
            sdp: offer.as_deref().map(str::as_bytes),
        };
        let sent = wire::request(&spec)
            .and_then(|invite| io.send(now, &invite, peer).map(|k| (invite, k)));
        let Some((invite, tsx)) = sent else {
            // Unsendable (a contact URI we cannot put on a request line).
            return false;
        };
        call.b = Some(BLeg {
            dialog: Dialog {
                call_id: call_id.clone(),
                local: from,
                remote: to,
                remote_target: target.contact_uri.clone(),
                routes: Vec::new(),
                cseq: 1,
                peer,
                transport,
            },
            seat_id: target.seat_id,
            invite,
            invite_tsx: tsx.clone(),
            provisional: false,
            cancel_wanted: false,
            cancel_sent: false,
            answered: false,
        });
        self.by_b.insert(call_id, id);
        self.client.insert(tsx, (id, Purpose::BInvite));
        if let Some(row) = call.row {
            self.effects.push_back(CallEffect::SeatOffered {
                call: id,
                row,
                seat_id: target.seat_id,
            });
        }
        true
    }

    /// The caller joins the queue (issue #6 §4). Queue audio goes out as early media: a 183
    /// with our SDP, then "please wait" and the ringback tone looped from our relay. The
    /// caller is not answered while waiting, so the carrier does not start charging them
    /// for time on hold, and a caller who gives up pays nothing; only a seat's answer or
    /// message taking answers the call. Without an SDP offer (a late-offer INVITE) there is
    /// nothing to send early media to: the caller hears its carrier's ringback (180).
    fn enter_queue(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: u64,
        contractor: i64,
        skill: Option<String>,
    ) {
        let Some((a_port, b_port)) = self.ensure_ports(id) else {
            self.fail_a(io, now, id, 503, "Service Unavailable", &[]);
            self.finish(id, "failed");
            return self.remove_if_done(id);
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(key) = call.a_tsx.clone() else {
            return;
        };
        let tag = local_tag(&call.a.local).to_owned();
        match call.a_offer.as_ref().map(|offer| {
            rewrite_for_anchor(offer, self.cfg.media_ip, a_port.get(), &self.cfg.codecs)
        }) {
            Some(Ok((sdp, info))) => {
                call.a_remote = remote_of(&info);
                call.law = match info.codecs.first() {
                    Some((Codec::Pcma, _)) => Law::Pcma,
                    _ => Law::Pcmu,
                };
                call.early = true;
                call.media_started = true;
                let law = call.law;
                self.effects.push_back(CallEffect::MediaStart {
                    call: id,
                    a_port: a_port.get(),
                    b_port: b_port.get(),
                    a: call.a_remote,
                    b: Remote::default(),
                });
                let contact = wire::contact(self.cfg.local, call.a.transport);
                if let Some(r) = wire::response(
                    &call.a_invite,
                    183,
                    "Session Progress",
                    Some(&tag),
                    &[("Contact", &contact)],
                    Some(sdp.to_string().as_bytes()),
                ) {
                    io.respond(now, &key, &r);
                }
                self.effects.push_back(CallEffect::MediaPlay {
                    call: id,
                    leg: Leg::A,
                    prompt: Prompt::PleaseWait,
                    repeat: false,
                    law,
                });
            }
            Some(Err(_)) => {
                self.fail_a(io, now, id, 488, "Not Acceptable Here", &[]);
                self.finish(id, "failed");
                return self.remove_if_done(id);
            }
            None => {
                if let Some(r) =
                    wire::response(&call.a_invite, 180, "Ringing", Some(&tag), &[], None)
                {
                    io.respond(now, &key, &r);
                }
            }
        }
        self.acd.enqueue(now, id, contractor, skill);
        self.apply_acd(io, now);
    }

    /// Carries out the ACD's decisions and logs its queue events, until it has none.
    fn apply_acd(&mut self, io: &mut Io, now: Instant) {
        // Each decision is one of a bounded set of state changes of the ACD; the bound here
        // only guards against a bug looping forever.
        for _ in 0..100_000 {
            while let Some(e) = self.acd.poll_event() {
                let row = self.calls.get(&e.call).and_then(|c| c.row);
                if let Some(row) = row {
                    self.effects.push_back(CallEffect::Queue {
                        call: e.call,
                        row,
                        contractor: e.contractor,
                        kind: e.kind,
                    });
                }
            }
            let Some(d) = self.acd.poll_decision() else {
                return;
            };
            match d {
                Decision::Offer { call, seat } => {
                    if !self.offer(io, now, call, seat) {
                        if self
                            .calls
                            .get(&call)
                            .is_none_or(|c| c.phase != Phase::Ringing)
                        {
                            // The caller is gone; the ACD must not keep it.
                            self.acd.abandon(now, call);
                        }
                        self.acd.offer_failed(now, call, seat);
                    }
                }
                Decision::Withdraw { call, seat } => self.withdraw_leg(io, now, call, seat),
                Decision::Overflow { call } => self.take_message(io, now, call),
            }
        }
        tracing::error!("ACD decisions did not settle; continuing at the next input");
    }

    /// Cancels the seat INVITE of `id` to `seat` and keeps it apart until it ends: the
    /// caller is free for the next seat at once.
    fn withdraw_leg(&mut self, io: &mut Io, now: Instant, id: u64, seat: i64) {
        let current = self
            .calls
            .get(&id)
            .and_then(|c| c.b.as_ref())
            .is_some_and(|b| b.seat_id == seat && !b.answered);
        if !current {
            return;
        }
        self.cancel_b(io, now, id);
        if let Some(call) = self.calls.get_mut(&id) {
            if let Some(b) = call.b.take() {
                call.dying.push(b);
            }
        }
        self.seat_released(id, seat);
    }

    /// Overflow (issue #6 §4): the caller is answered, hears the message prompt ending with
    /// the tone, and what they say is recorded (see [`CallEffect::MediaRecord`]). The outcome
    /// is `overflow` whatever happens next. Without SDP to answer, a 480.
    fn take_message(&mut self, io: &mut Io, now: Instant, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.phase != Phase::Ringing || call.a_tsx.is_none() {
            return;
        }
        call.outcome = Some("overflow");
        let Some((a_port, _)) = call.ports else {
            self.fail_a(io, now, id, 480, "Temporarily Unavailable", &[]);
            self.finish(id, "overflow");
            return self.remove_if_done(id);
        };
        let answer = call.a_offer.as_ref().and_then(|offer| {
            rewrite_for_anchor(offer, self.cfg.media_ip, a_port.get(), &self.cfg.codecs).ok()
        });
        let Some((sdp, _)) = answer else {
            self.fail_a(io, now, id, 480, "Temporarily Unavailable", &[]);
            self.finish(id, "overflow");
            return self.remove_if_done(id);
        };
        call.phase = Phase::Message;
        // A bound even if the prompt's end is never reported; reset when recording starts.
        call.record_deadline = Some(now + MESSAGE_PROMPT_MAX + self.cfg.recording_max);
        let law = call.law;
        self.answer_a(io, now, id, sdp.to_string().as_bytes());
        self.schedule(id);
        self.effects.push_back(CallEffect::MediaPlay {
            call: id,
            leg: Leg::A,
            prompt: Prompt::LeaveMessage,
            repeat: false,
            law,
        });
    }

    /// The message prompt has played: recording starts, bounded by `recording_max`.
    fn start_recording(&mut self, id: u64, now: Instant) {
        let max = self.cfg.recording_max;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.recording {
            return;
        }
        let Some(row) = call.row else { return };
        call.recording = true;
        call.record_deadline = Some(now + max);
        self.effects.push_back(CallEffect::MediaRecord {
            call: id,
            row,
            law: call.law,
            max,
        });
        self.schedule(id);
    }

    /// Follows the registrar: where each seat is reached, and which seats are online.
    pub fn sync_seats(&mut self, io: &mut Io, now: Instant, seats: &dyn SeatLocator) {
        self.synced = Some(seats.version().unwrap_or(0));
        let targets: HashMap<i64, SeatTarget> = seats
            .seat_targets()
            .into_iter()
            .map(|t| (t.seat_id, t))
            .collect();
        let gone: Vec<(i64, String)> = self
            .targets
            .iter()
            .filter(|(id, _)| !targets.contains_key(id))
            .map(|(id, t)| (*id, t.seat.clone()))
            .collect();
        for (id, name) in gone {
            self.acd.set_online(now, id, &name, false);
        }
        for (id, t) in &targets {
            self.acd.set_online(now, *id, &t.seat, true);
        }
        self.targets = targets;
        if self.next_reconcile.is_none() {
            self.next_reconcile = Some(now + RECONCILE_EVERY);
        }
        self.apply_acd(io, now);
    }

    /// Seats from the ledger with their skills (the edge reloads them periodically).
    pub fn set_seats(&mut self, io: &mut Io, now: Instant, seats: &[(i64, String, Vec<String>)]) {
        self.acd.set_seats(now, seats);
        self.apply_acd(io, now);
    }

    /// Cross-checks registrations, live calls and seat states, and repairs mismatches
    /// (issue #6 §8): runs every [`RECONCILE_EVERY`] and after operator commands.
    pub fn reconcile(&mut self, io: &mut Io, now: Instant, seats: &dyn SeatLocator) -> usize {
        self.sync_seats(io, now, seats);
        let mut live = Vec::new();
        let mut queued = HashSet::new();
        for (id, c) in &self.calls {
            if let Some(b) = &c.b {
                live.push(if b.answered {
                    LiveLeg::OnCall {
                        call: *id,
                        seat: b.seat_id,
                    }
                } else {
                    LiveLeg::Ringing {
                        call: *id,
                        seat: b.seat_id,
                    }
                });
            }
            for d in &c.dying {
                live.push(LiveLeg::Ringing {
                    call: *id,
                    seat: d.seat_id,
                });
            }
            if c.phase == Phase::Ringing && c.a_tsx.is_some() {
                queued.insert(*id);
            }
        }
        let repairs = self.acd.reconcile(now, &live, &queued);
        self.apply_acd(io, now);
        repairs
    }

    /// Operator commands on seats (pause, resume, reset), applied at once.
    pub fn seat_command(
        &mut self,
        io: &mut Io,
        now: Instant,
        seats: &dyn SeatLocator,
        command: SeatCommand,
    ) -> Result<(), crate::acd::AcdError> {
        self.sync_seats(io, now, seats);
        let name = |acd: &Acd, seat: &SeatRef| match seat {
            SeatRef::Name(n) => Ok(n.clone()),
            SeatRef::Id(id) => acd
                .seat_name(*id)
                .map(str::to_owned)
                .ok_or_else(|| crate::acd::AcdError::UnknownSeat(format!("#{id}"))),
        };
        let r = match &command {
            SeatCommand::Pause { seat, reason } => {
                name(&self.acd, seat).and_then(|n| self.acd.pause(now, &n, reason))
            }
            SeatCommand::Resume { seat } => {
                name(&self.acd, seat).and_then(|n| self.acd.resume(now, &n))
            }
            SeatCommand::Reset { seat } => {
                name(&self.acd, seat).and_then(|n| self.acd.reset(now, &n))
            }
        };
        if r.is_ok() {
            if matches!(command, SeatCommand::Reset { .. }) {
                self.reconcile(io, now, seats);
            }
            self.apply_acd(io, now);
        }
        r
    }

    /// The operator of `seat` submitted the call's first-response record: wrap-up ends.
    /// The operator of `seat` submitted the first-response record of call row `row` (the
    /// console). Only a record for the call the seat last answered counts: submitted during
    /// that call's wrap-up, it ends the wrap-up; submitted while the call still runs, no
    /// wrap-up follows it. A record for an older call (a correction) changes nothing.
    /// Answers whether it was applied.
    pub fn record_submitted(&mut self, io: &mut Io, now: Instant, seat: i64, row: i64) -> bool {
        if self.answered_rows.get(&seat) != Some(&row) {
            return false;
        }
        match self.acd.seat_state(seat) {
            Some(crate::acd::SeatState::WrapUp) => {
                let done = self.acd.wrap_up_done(now, seat);
                self.apply_acd(io, now);
                done
            }
            Some(crate::acd::SeatState::OnCall { call })
                if self.calls.get(&call).and_then(|c| c.row) == Some(row) =>
            {
                self.records_early.insert(seat, row);
                true
            }
            _ => false,
        }
    }

    /// "Calls handled today" starts again (the edge calls this at Tokyo midnight).
    pub fn reset_daily_counts(&mut self) {
        self.acd.reset_daily_counts();
    }

    /// CANCELs leg B's INVITE now if it has had a provisional response, else as soon as it
    /// has one (§9.1: a CANCEL before any response could overtake the INVITE).
    fn cancel_b(&mut self, io: &mut Io, now: Instant, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(b) = call.b.as_mut() else { return };
        if let Some(k) = send_cancel(io, now, b) {
            self.client.insert(k, (id, Purpose::Cancel));
        }
    }

    /// A response to a withdrawn seat INVITE (see [`Call::dying`]): CANCEL it once it has a
    /// provisional response, hang up should the seat answer anyway, forget it once final.
    fn on_dying_response(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: u64,
        key: &TsxKey,
        status: u16,
        resp: Option<&Message>,
    ) {
        let local = self.cfg.local;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(i) = call.dying.iter().position(|b| b.invite_tsx == *key) else {
            return;
        };
        if (101..200).contains(&status) {
            if let Some(b) = call.dying.get_mut(i) {
                b.provisional = true;
                if let Some(k) = send_cancel(io, now, b) {
                    self.client.insert(k, (id, Purpose::Cancel));
                }
            }
            return;
        }
        if status < 200 {
            return;
        }
        let mut b = call.dying.swap_remove(i);
        let seat = b.seat_id;
        self.by_b.remove(&b.dialog.call_id);
        if let (true, Some(resp)) = ((200..300).contains(&status), resp) {
            // §15: the seat answered after we withdrew: confirm, then hang up.
            b.dialog.remote = resp.header("To").unwrap_or_default().to_owned();
            if let Some(c) = resp.header("Contact") {
                b.dialog.remote_target = uri_of(c).to_owned();
            }
            b.dialog.routes = resp.headers("Record-Route").map(str::to_owned).collect();
            b.dialog.routes.reverse();
            let cseq = b.invite.cseq();
            for (method, cseq) in [("ACK", cseq), ("BYE", cseq.saturating_add(1))] {
                let branch = format!("{BRANCH_PREFIX}{}", io.unique());
                let d = &b.dialog;
                let spec = RequestSpec {
                    method,
                    uri: &d.remote_target,
                    transport: d.transport,
                    local,
                    branch: &branch,
                    from: &d.local,
                    to: &d.remote,
                    call_id: &d.call_id,
                    cseq,
                    routes: &d.routes,
                    max_forwards: 70,
                    contact: None,
                    extra: &[],
                    sdp: None,
                };
                let Some(m) = wire::request(&spec) else {
                    continue;
                };
                if method == "ACK" {
                    io.send_raw(d.peer, Arc::from(m.to_bytes().as_ref()));
                } else if let Some(k) = io.send(now, &m, d.peer) {
                    self.client.insert(k, (id, Purpose::Bye));
                }
            }
        }
        self.acd.offer_ended(now, id, seat, OfferEnd::AfterWithdraw);
        self.apply_acd(io, now);
        self.remove_if_done(id);
    }
}

/// CANCELs a seat INVITE now if it has had a provisional response, else marks it wanted
/// (§9.1: a CANCEL before any response could overtake the INVITE). The CANCEL's key.
fn send_cancel(io: &mut Io, now: Instant, b: &mut BLeg) -> Option<TsxKey> {
    {
        if b.answered || b.cancel_sent {
            return None;
        }
        b.cancel_wanted = true;
        if !b.provisional {
            return None;
        }
        let via = b.invite.header("Via").unwrap_or_default().to_owned();
        let mut text = format!(
            "CANCEL {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
             Call-ID: {}\r\nCSeq: {} CANCEL\r\n",
            b.invite.request_uri().unwrap_or_default(),
            b.invite.header("From").unwrap_or_default(),
            b.invite.header("To").unwrap_or_default(),
            b.invite.call_id(),
            b.invite.cseq(),
        );
        text.push_str("Content-Length: 0\r\n\r\n");
        b.cancel_sent = true;
        let cancel = crate::sip::message::parse_datagram(text.as_bytes()).ok()?;
        io.send(now, &cancel, b.dialog.peer)
    }
}

impl B2bua {
    /// A response to one of our client transactions.
    pub fn on_response(&mut self, io: &mut Io, now: Instant, key: &TsxKey, resp: &Message) {
        let Some(&(id, purpose)) = self.client.get(key) else {
            return;
        };
        let Some(status) = resp.status() else { return };
        match purpose {
            Purpose::BInvite => self.on_b_invite_response(io, now, id, key, status, resp),
            Purpose::ReInvite => self.on_reinvite_response(io, now, id, status, resp),
            // Answered: nothing is outstanding any more (shutdown waits for these).
            Purpose::Cancel | Purpose::Bye if status >= 200 => {
                self.client.remove(key);
            }
            Purpose::Cancel | Purpose::Bye => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_b_invite_response(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: u64,
        key: &TsxKey,
        status: u16,
        resp: &Message,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(b) = call.b.as_mut().filter(|b| b.invite_tsx == *key) else {
            return self.on_dying_response(io, now, id, key, status, Some(resp));
        };
        match status {
            100 => {}
            101..=199 => {
                b.provisional = true;
                if b.cancel_wanted && !b.cancel_sent {
                    return self.cancel_b(io, now, id);
                }
                // With early media the caller hears our queue audio until a seat answers.
                if call.phase != Phase::Ringing || call.early {
                    return;
                }
                let early = self.rewrite_for(id, Side::A, resp);
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                let Some(a_key) = call.a_tsx.clone() else {
                    return;
                };
                let tag = local_tag(&call.a.local);
                let (code, reason) = if early.is_some() {
                    (183, "Session Progress")
                } else {
                    (180, "Ringing")
                };
                if let Some(r) = wire::response(
                    &call.a_invite,
                    code,
                    reason,
                    Some(tag),
                    &[],
                    early.as_deref().map(str::as_bytes),
                ) {
                    io.respond(now, &a_key, &r);
                }
            }
            200..=299 => {
                b.answered = true;
                b.dialog.remote = resp.header("To").unwrap_or_default().to_owned();
                if let Some(c) = resp.header("Contact") {
                    b.dialog.remote_target = uri_of(c).to_owned();
                }
                b.dialog.routes = resp.headers("Record-Route").map(str::to_owned).collect();
                b.dialog.routes.reverse();
                let seat_id = b.seat_id;
                let cseq = b.invite.cseq();
                if call.phase != Phase::Ringing || call.a_tsx.is_none() {
                    // The caller left (CANCEL raced the answer) or the ring timed out:
                    // confirm and tear down this seat's dialog (§15).
                    self.send_ack(io, id, Side::B, cseq, None);
                    self.bye(io, now, id, Side::B);
                    return self.remove_if_done(id);
                }
                let answer = self.rewrite_for(id, Side::A, resp);
                // With a late offer (no SDP from the carrier) this is the seat's offer, rewritten
                // the same way; the carrier's answer then comes in its ACK.
                let Some(sdp) = answer else {
                    // The seat answered an offer without SDP, or with SDP we cannot use.
                    self.send_ack(io, id, Side::B, cseq, None);
                    self.bye(io, now, id, Side::B);
                    self.fail_a(io, now, id, 488, "Not Acceptable Here", &[]);
                    self.finish(id, "failed");
                    return self.remove_if_done(id);
                };
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                call.phase = Phase::Answered;
                call.seat_answered = Some(seat_id);
                call.answered_at = Some(now);
                call.ack_owed = Some((Side::B, cseq));
                if call.early {
                    self.effects.push_back(CallEffect::MediaStopPlay {
                        call: id,
                        leg: Leg::A,
                    });
                }
                if let Some(row) = call.row {
                    self.effects.push_back(CallEffect::Answered {
                        call: id,
                        row,
                        seat_id,
                    });
                    self.answered_rows.insert(seat_id, row);
                    self.records_early.remove(&seat_id);
                }
                self.answer_a(io, now, id, sdp.as_bytes());
                self.acd.answered(now, id, seat_id);
                self.apply_acd(io, now);
            }
            // The seat declined, was busy, or our CANCEL took effect (487); the layer has
            // ACKed the final response (§17.1.1.3).
            486 | 600 => self.seat_failed(io, now, id, key, OfferEnd::Busy),
            487 => self.seat_failed(io, now, id, key, OfferEnd::AfterWithdraw),
            _ => self.seat_failed(io, now, id, key, OfferEnd::Declined),
        }
    }

    /// The INVITE `key` to a seat ended without an answer (a final non-2xx, Timer B, a
    /// transport error): that seat is out of the picture and the call moves on, or ends.
    fn seat_failed(&mut self, io: &mut Io, now: Instant, id: u64, key: &TsxKey, end: OfferEnd) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(b) = call.b.take_if(|b| b.invite_tsx == *key) else {
            return self.on_dying_response(io, now, id, key, 500, None);
        };
        self.by_b.remove(&b.dialog.call_id);
        self.seat_released(id, b.seat_id);
        // The ACD counts the refusal and offers the caller (if still waiting) the next seat.
        self.acd.offer_ended(now, id, b.seat_id, end);
        self.apply_acd(io, now);
        self.remove_if_done(id);
    }

    /// The client INVITE to a seat failed without a response (Timer B, transport error).
    pub fn on_client_failure(&mut self, io: &mut Io, now: Instant, key: &TsxKey) {
        let Some(&(id, purpose)) = self.client.get(key) else {
            return;
        };
        match purpose {
            Purpose::BInvite => self.seat_failed(io, now, id, key, OfferEnd::Unreachable),
            Purpose::ReInvite => self.fail_reinvite(io, now, id, 408, "Request Timeout"),
            Purpose::Bye => {
                self.client.remove(key);
            }
            Purpose::Cancel => {
                self.client.remove(key);
                // §9.1: no final response within 64·T1 of our CANCEL (its Timer F): the
                // INVITE it cancelled is given up too. Else a phone that went silent after
                // its 180 (crashed, or a SIPp that aborted on the CANCEL) held the call and
                // itself `ringing` until its registration expired (found by bench/soak.sh).
                let stuck: Vec<TsxKey> = self
                    .calls
                    .get(&id)
                    .map(|c| {
                        c.b.iter()
                            .chain(c.dying.iter())
                            .filter(|b| b.cancel_sent && !b.answered)
                            .map(|b| b.invite_tsx.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                for k in stuck {
                    io.abandon(&k);
                }
            }
        }
    }

    /// The transaction is gone: forget its key.
    pub fn on_terminated(&mut self, key: &TsxKey) {
        self.client.remove(key);
        self.server_invites.remove(key);
    }

    // ------------------------------------------------------------------ in-dialog traffic

    /// CANCEL for INVITE server transaction `invite` (already matched by the layer, §9.2).
    /// Returns false if that INVITE is not one of our calls.
    pub fn on_cancel(
        &mut self,
        io: &mut Io,
        now: Instant,
        cancel_key: &TsxKey,
        cancel: &Message,
        invite: &TsxKey,
    ) -> bool {
        let Some(&id) = self.server_invites.get(invite) else {
            return false;
        };
        let tag = io.unique();
        if let Some(ok) = wire::response(cancel, 200, "OK", Some(&tag), &[], None) {
            io.respond(now, cancel_key, &ok);
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return true;
        };
        call.cancelled = true;
        let phase = call.phase;
        if phase != Phase::Admitting {
            self.fail_a(io, now, id, 487, "Request Terminated", &[]);
        }
        match phase {
            // Nothing beyond 100 Trying before the row is durable: the 487 goes out when the
            // admission arrives (handle_admission), which also finishes the row.
            Phase::Admitting => {}
            Phase::Ringing => {
                self.finish(id, "abandoned");
                self.cancel_b(io, now, id);
                self.acd.abandon(now, id);
                self.apply_acd(io, now);
            }
            Phase::Announcing => {
                self.finish(id, "abandoned");
                self.stop_media(id);
            }
            Phase::Answered | Phase::Message | Phase::Ending => {}
        }
        self.remove_if_done(id);
        true
    }

    /// ACK outside any transaction: for a 2xx we sent (§13.2.2.4, §17.2.3).
    pub fn on_ack(&mut self, io: &mut Io, ack: &Message) {
        let Some((id, side)) = self.find_dialog(ack) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let slot = match side {
            Side::A => 0,
            Side::B => 1,
        };
        let matched = call.retrans[slot]
            .as_mut()
            .is_some_and(|r| r.matches_ack(&envelope(ack)));
        if !matched {
            return; // a retransmitted ACK, or one for something we never sent
        }
        if let Some(r) = call.retrans[slot].as_mut() {
            r.handle_ack();
        }
        call.retrans[slot] = None;
        if let Some((owed_side, cseq)) = call.ack_owed.take() {
            if owed_side == side.other() {
                let sdp = if ack.body().is_empty() {
                    None
                } else {
                    self.rewrite_for(id, owed_side, ack)
                };
                self.send_ack(io, id, owed_side, cseq, sdp.as_deref());
            } else if let Some(c) = self.calls.get_mut(&id) {
                c.ack_owed = Some((owed_side, cseq));
            }
        }
    }

    /// A request with a To tag (or BYE/INVITE inside one of our dialogs).
    pub fn on_in_dialog(&mut self, io: &mut Io, now: Instant, key: &TsxKey, req: &Message) -> bool {
        let Some((id, side)) = self.find_dialog(req) else {
            return false;
        };
        let Some(method) = req.method() else {
            return false;
        };
        let reply = |io: &mut Io, code: u16, reason: &str| {
            if let Some(r) = wire::response(req, code, reason, None, &[], None) {
                io.respond(now, key, &r);
            }
        };
        match method {
            SipMethod::Bye => {
                reply(io, 200, "OK");
                let answered = self
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.phase == Phase::Answered);
                match side {
                    Side::A if !answered => {
                        // BYE in an early dialog: like a CANCEL. (During message taking the
                        // outcome is already `overflow`: hanging up ends the message.)
                        self.fail_a(io, now, id, 487, "Request Terminated", &[]);
                        self.finish(id, "abandoned");
                        self.cancel_b(io, now, id);
                        self.acd.abandon(now, id);
                        self.apply_acd(io, now);
                        if let Some(c) = self.calls.get_mut(&id) {
                            c.phase = Phase::Ending;
                            c.retrans[0] = None;
                        }
                        self.stop_media(id);
                    }
                    _ => {
                        self.hang_up_leg(io, now, id, side);
                        self.bye(io, now, id, side.other());
                        self.finish(id, "answered");
                    }
                }
                self.remove_if_done(id);
            }
            SipMethod::Invite => self.on_reinvite(io, now, id, side, key, req),
            SipMethod::Options | SipMethod::Info => reply(io, 200, "OK"),
            _ => reply(io, 501, "Not Implemented"),
        }
        true
    }

    /// A re-INVITE from `side` (hold, resume, codec change): forwarded with SDP rewritten.
    fn on_reinvite(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: u64,
        side: Side,
        key: &TsxKey,
        req: &Message,
    ) {
        let busy = self.calls.get(&id).is_none_or(|c| {
            c.reinvite.is_some()
                || c.phase != Phase::Answered
                || c.retrans.iter().any(Option::is_some)
        });
        if busy {
            // §14.1: a re-INVITE while another is pending gets 491.
            if let Some(r) = wire::response(req, 491, "Request Pending", None, &[], None) {
                io.respond(now, key, &r);
            }
            return;
        }
        if side == Side::A && offers_t38(req) {
            // The carrier's gateway heard a fax and switches to T.38 (ITU-T T.38 Annex D):
            // we relay no fax, so refuse the switch (488), release the operator and end the
            // call as a fax — counted, billable (SPEC §3), as for a detected CNG tone.
            if let Some(r) = wire::response(req, 488, "Not Acceptable Here", None, &[], None) {
                io.respond(now, key, &r);
            }
            return self.handle_media(io, now, id, MediaNotice::FaxTone);
        }
        let sdp = if req.body().is_empty() {
            None
        } else {
            match self.rewrite_for(id, side.other(), req) {
                Some(s) => Some(s),
                None => {
                    if let Some(r) =
                        wire::response(req, 488, "Not Acceptable Here", None, &[], None)
                    {
                        io.respond(now, key, &r);
                    }
                    return;
                }
            }
        };
        let Some(cseq) = self.send_in_dialog(io, now, id, side.other(), "INVITE", sdp.as_deref())
        else {
            if let Some(r) = wire::response(req, 500, "Server Internal Error", None, &[], None) {
                io.respond(now, key, &r);
            }
            return;
        };
        if let Some(call) = self.calls.get_mut(&id) {
            call.reinvite = Some(ReInvite {
                from: side,
                server: key.clone(),
                request: req.clone(),
                cseq,
            });
        }
    }

    fn on_reinvite_response(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: u64,
        status: u16,
        resp: &Message,
    ) {
        if status < 200 {
            return;
        }
        if status >= 300 {
            let reason = resp.reason().unwrap_or("Failed").to_owned();
            return self.fail_reinvite(io, now, id, status, &reason);
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(re) = call.reinvite.take() else {
            return;
        };
        {
            let sdp = if resp.body().is_empty() {
                None
            } else {
                self.rewrite_for(id, re.from, resp)
            };
            let contact = wire::contact(self.cfg.local, "UDP");
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            // We owe the answering side an ACK once the re-INVITE's sender ACKs us.
            call.ack_owed = Some((re.from.other(), re.cseq));
            if let Some(ok) = wire::response(
                &re.request,
                200,
                "OK",
                None,
                &[("Contact", &contact)],
                sdp.as_deref().map(str::as_bytes),
            ) {
                io.respond(now, &re.server, &ok);
                let peer = match re.from {
                    Side::A => call.a.peer,
                    Side::B => call.b.as_ref().map_or(call.a.peer, |b| b.dialog.peer),
                };
                let slot = match re.from {
                    Side::A => 0,
                    Side::B => 1,
                };
                call.retrans[slot] = Some(Uas2xxRetransmitter::new(
                    now,
                    peer,
                    &envelope(&ok),
                    &self.cfg.timers,
                ));
                self.schedule(id);
            }
        }
    }

    /// Rewrites the SDP of `m` (from the other side) for sending to `to`: our relay port of
    /// `to`'s leg in `c=`/`m=`, and the sender's media address handed to the relay.
    fn rewrite_for(&mut self, id: u64, to: Side, m: &Message) -> Option<String> {
        if m.body().is_empty() {
            return None;
        }
        let call = self.calls.get_mut(&id)?;
        let (a_port, b_port) = call.ports?;
        let port = match to {
            Side::A => a_port,
            Side::B => b_port,
        };
        let sdp = Sdp::parse_bytes(m.body()).ok()?;
        let (out, info) =
            rewrite_for_anchor(&sdp, self.cfg.media_ip, port.get(), &self.cfg.codecs).ok()?;
        let sender = to.other();
        self.effects.push_back(CallEffect::MediaRemote {
            call: id,
            leg: sender.leg(),
            remote: remote_of(&info),
            hold: info.direction.is_hold(),
        });
        Some(out.to_string())
    }

    /// Sends a request in `side`'s dialog; returns the CSeq used.
    fn send_in_dialog(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: u64,
        side: Side,
        method: &str,
        sdp: Option<&str>,
    ) -> Option<u32> {
        let local = self.cfg.local;
        let call = self.calls.get_mut(&id)?;
        let dialog = match side {
            Side::A => &mut call.a,
            Side::B => &mut call.b.as_mut()?.dialog,
        };
        dialog.cseq = dialog.cseq.saturating_add(1);
        let branch = format!("{BRANCH_PREFIX}{}", io.unique());
        let contact = wire::contact(local, dialog.transport);
        let spec = RequestSpec {
            method,
            uri: &dialog.remote_target,
            transport: dialog.transport,
            local,
            branch: &branch,
            from: &dialog.local,
            to: &dialog.remote,
            call_id: &dialog.call_id,
            cseq: dialog.cseq,
            routes: &dialog.routes,
            max_forwards: 70,
            contact: (method == "INVITE").then_some(contact.as_str()),
            extra: &[],
            sdp: sdp.map(str::as_bytes),
        };
        let msg = wire::request(&spec)?;
        let key = io.send(now, &msg, dialog.peer)?;
        let purpose = if method == "INVITE" {
            Purpose::ReInvite
        } else {
            Purpose::Bye
        };
        let cseq = dialog.cseq;
        self.client.insert(key, (id, purpose));
        Some(cseq)
    }

    /// ACK for a 2xx we received on `side` (§13.2.2.4): sent statelessly, kept for resending.
    fn send_ack(&mut self, io: &mut Io, id: u64, side: Side, cseq: u32, sdp: Option<&str>) {
        let local = self.cfg.local;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let dialog = match side {
            Side::A => &call.a,
            Side::B => match call.b.as_ref() {
                Some(b) => &b.dialog,
                None => return,
            },
        };
        let branch = format!("{BRANCH_PREFIX}{}", io.unique());
        let spec = RequestSpec {
            method: "ACK",
            uri: &dialog.remote_target,
            transport: dialog.transport,
            local,
            branch: &branch,
            from: &dialog.local,
            to: &dialog.remote,
            call_id: &dialog.call_id,
            cseq,
            routes: &dialog.routes,
            max_forwards: 70,
            contact: None,
            extra: &[],
            sdp: sdp.map(str::as_bytes),
        };
        if let Some(ack) = wire::request(&spec) {
            let bytes: Arc<[u8]> = Arc::from(ack.to_bytes().as_ref());
            io.send_raw(dialog.peer, bytes.clone());
            let slot = match side {
                Side::A => 0,
                Side::B => 1,
            };
            call.last_ack[slot] = Some((cseq, bytes));
        }
    }

    /// A response no transaction wanted: a retransmitted 2xx whose ACK was lost.
    pub fn on_stray_response(&mut self, io: &mut Io, resp: &Message) {
        if !resp.status().is_some_and(|s| (200..300).contains(&s)) {
            return;
        }
        let Some(&id) = self.by_b.get(resp.call_id()) else {
            return;
        };
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let peer = call.b.as_ref().map(|b| b.dialog.peer);
        if let (Some((cseq, bytes)), Some(peer)) = (&call.last_ack[1], peer) {
            if *cseq == resp.cseq() {
                io.send_raw(peer, bytes.clone());
            }
        }
    }

    /// Sends BYE on `side` if that leg is established, and drops the leg.
    fn bye(&mut self, io: &mut Io, now: Instant, id: u64, side: Side) {
        self.fail_reinvite(io, now, id, 487, "Request Terminated");
        let established = self
            .calls
            .get(&id)
            .is_some_and(|c| c.dialog(side).is_some());
        match side {
            Side::A => {
                let answered_a = self.calls.get(&id).is_some_and(|c| {
                    c.a_tsx.is_none()
                        && matches!(
                            c.phase,
                            Phase::Answered | Phase::Announcing | Phase::Message
                        )
                });
                if established && answered_a {
                    self.send_in_dialog(io, now, id, Side::A, "BYE", None);
                }
                if let Some(c) = self.calls.get_mut(&id) {
                    c.phase = Phase::Ending;
                    c.retrans[0] = None;
                }
            }
            Side::B => {
                if established {
                    self.send_in_dialog(io, now, id, Side::B, "BYE", None);
                }
                self.hang_up_leg(io, now, id, Side::B);
            }
        }
        self.stop_media(id);
    }

    /// Forgets leg `side` after a BYE from it (or to it).
    fn hang_up_leg(&mut self, io: &mut Io, now: Instant, id: u64, side: Side) {
        self.fail_reinvite(io, now, id, 487, "Request Terminated");
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        match side {
            Side::A => {
                call.phase = Phase::Ending;
                call.retrans[0] = None;
            }
            Side::B => {
                call.retrans[1] = None;
                if let Some(b) = call.b.take() {
                    self.by_b.remove(&b.dialog.call_id);
                    self.release_seat(io, now, b.seat_id, id);
                }
            }
        }
    }

    /// Leg B to `seat` is gone: the seat's call (wrap-up follows, unless its record is in
    /// already) or offer is over.
    fn release_seat(&mut self, io: &mut Io, now: Instant, seat: i64, id: u64) {
        self.seat_released(id, seat);
        self.acd.call_ended(now, id, seat);
        let row = self.calls.get(&id).and_then(|c| c.row);
        if row.is_some() && self.records_early.get(&seat) == row.as_ref() {
            self.records_early.remove(&seat);
            self.acd.wrap_up_done(now, seat);
        }
        self.acd.offer_ended(now, id, seat, OfferEnd::AfterWithdraw);
        self.apply_acd(io, now);
    }

    /// Tells the operator console that `seat` is off call `id` (it stopped ringing or the
    /// call ended). Said again for the same seat and call, it changes nothing there.
    fn seat_released(&mut self, id: u64, seat: i64) {
        if let Some(row) = self.calls.get(&id).and_then(|c| c.row) {
            self.effects.push_back(CallEffect::SeatReleased {
                call: id,
                row,
                seat_id: seat,
            });
        }
    }

    fn stop_media(&mut self, id: u64) {
        if let Some(call) = self.calls.get_mut(&id) {
            if let Some((a, b)) = call.ports.take() {
                if call.media_started {
                    self.releasing.insert(id, (a, b));
                    self.effects.push_back(CallEffect::MediaStop { call: id });
                } else {
                    // Nothing was started on these ports (a late offer refused before any
                    // media, or no prompt to play): no relay will report them stopped.
                    self.release_pair(a);
                    self.release_pair(b);
                }
            }
        }
    }

    /// Records the outcome once (the first decided outcome wins).
    fn finish(&mut self, id: u64, fallback: &'static str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.finished {
            return;
        }
        call.finished = true;
        let outcome = call.outcome.unwrap_or(fallback);
        call.outcome = Some(outcome);
        if self.ended.len() >= ops::MAX_ENDED {
            self.ended.pop_front();
        }
        self.ended.push_back(ops::summary(id, call, outcome));
        if let Some(row) = call.row {
            self.effects.push_back(CallEffect::Finished {
                call: id,
                row,
                outcome,
                seat_id: call.seat_answered,
            });
        }
    }

    /// Answers a pending forwarded re-INVITE with a failure: the other side refused it or
    /// never answered (408), or the call is ending (487, RFC 3261 §15.1.2: pending requests
    /// of an ending dialog still get a response — without it the sender's INVITE server
    /// transaction stayed proceeding forever; found by fuzz/endpoint: re-INVITE from the
    /// carrier, seat silent, media timeout).
    fn fail_reinvite(&mut self, io: &mut Io, now: Instant, id: u64, status: u16, reason: &str) {
        let Some(re) = self.calls.get_mut(&id).and_then(|c| c.reinvite.take()) else {
            return;
        };
        if let Some(r) = wire::response(&re.request, status, reason, None, &[], None) {
            io.respond(now, &re.server, &r);
        }
    }

    /// Drops the call once leg A has its final answer and leg B is gone.
    fn remove_if_done(&mut self, id: u64) {
        let done = self.calls.get(&id).is_some_and(|c| {
            c.a_tsx.is_none()
                && c.b.is_none()
                && c.dying.is_empty()
                && c.phase == Phase::Ending
                && c.retrans.iter().all(Option::is_none)
        });
        if !done {
            return;
        }
        self.finish(id, "failed");
        self.stop_media(id);
        // A caller still queued (a failure, not an abandon) leaves the queue unlogged.
        self.acd.remove_call(id);
        if let Some(call) = self.calls.remove(&id) {
            self.by_a.remove(&call.a_key);
            if let Some(k) = call.a_tsx {
                self.server_invites.remove(&k);
            }
        }
    }

    // ------------------------------------------------------------------ media, timers

    pub fn handle_media(&mut self, io: &mut Io, now: Instant, id: u64, notice: MediaNotice) {
        if notice == MediaNotice::Stopped {
            if let Some((a, b)) = self.releasing.remove(&id) {
                self.release_pair(a);
                self.release_pair(b);
            }
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if notice == MediaNotice::Failed {
            // The relay never ran (its ports could not be bound) and no Stopped will follow
            // for it: the ports go back when the call ends (found by bench/soak.sh, where
            // another process held a port of the range and every such call leaked a pair).
            call.media_started = false;
        }
        match notice {
            MediaNotice::PlayFinished if call.phase == Phase::Announcing => {
                self.bye(io, now, id, Side::A);
                self.finish(id, "failed");
            }
            // "Please wait" is over: ringback until a seat answers.
            MediaNotice::PlayFinished if call.phase == Phase::Ringing && call.early => {
                self.effects.push_back(CallEffect::MediaPlay {
                    call: id,
                    leg: Leg::A,
                    prompt: Prompt::Ringback,
                    repeat: true,
                    law: call.law,
                });
            }
            MediaNotice::PlayFinished if call.phase == Phase::Message => {
                self.start_recording(id, now);
            }
            // A queued caller's carrier need not send RTP during early media; the queue's
            // maximum wait bounds the call instead.
            MediaNotice::Timeout if call.phase == Phase::Ringing => {}
            MediaNotice::Timeout | MediaNotice::Failed => {
                let unanswered = call.a_tsx.is_some();
                if unanswered {
                    self.fail_a(io, now, id, 500, "Server Internal Error", &[]);
                    self.cancel_b(io, now, id);
                    self.finish(id, "failed");
                } else {
                    self.bye(io, now, id, Side::B);
                    self.bye(io, now, id, Side::A);
                    self.finish(id, "answered");
                }
            }
            MediaNotice::FaxTone => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.outcome = Some("fax");
                }
                if self.calls.get(&id).is_some_and(|c| c.a_tsx.is_some()) {
                    self.cancel_b(io, now, id);
                    self.fail_a(io, now, id, 487, "Request Terminated", &[]);
                    // A fax heard while queued: out of the queue (not an abandon).
                    self.acd.remove_call(id);
                    self.apply_acd(io, now);
                } else {
                    self.bye(io, now, id, Side::B);
                    self.bye(io, now, id, Side::A);
                }
                self.finish(id, "fax");
            }
            _ => {}
        }
        self.remove_if_done(id);
    }

    fn schedule(&mut self, id: u64) {
        if let Some(d) = self.calls.get(&id).and_then(Call::next_deadline) {
            self.deadlines.push(Reverse((d, id)));
        }
        if self.deadlines.len() > 4 * self.calls.len() + 64 {
            let live: Vec<_> = self
                .calls
                .iter()
                .filter_map(|(id, c)| c.next_deadline().map(|d| Reverse((d, *id))))
                .collect();
            self.deadlines = live.into();
        }
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        [
            self.deadlines.peek().map(|Reverse((d, _))| *d),
            self.acd.poll_timeout(),
            self.next_reconcile,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_timeout(&mut self, io: &mut Io, now: Instant, seats: &dyn SeatLocator) {
        if self.acd.poll_timeout().is_some_and(|d| d <= now) {
            self.acd.handle_timeout(now);
            self.apply_acd(io, now);
        }
        if self.next_reconcile.is_some_and(|d| d <= now) {
            self.next_reconcile = Some(now + RECONCILE_EVERY);
            self.reconcile(io, now, seats);
        }
        let mut due = Vec::new();
        while let Some(Reverse((d, id))) = self.deadlines.peek().copied() {
            if d > now {
                break;
            }
            self.deadlines.pop();
            if !due.contains(&id) {
                due.push(id);
            }
        }
        for id in due {
            self.timeout_call(io, now, id);
            self.schedule(id);
        }
    }

    fn timeout_call(&mut self, io: &mut Io, now: Instant, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let mut gave_up = false;
        for slot in 0..2 {
            if let Some(r) = call.retrans[slot].as_mut() {
                r.handle_timeout(now);
                while let Some(t) = r.poll_transmit() {
                    io.send_raw(t.to, t.bytes);
                }
                if r.poll_event() == Some(Uas2xxEvent::GaveUp) || r.state() == Uas2xxState::GaveUp {
                    call.retrans[slot] = None;
                    gave_up = true;
                }
            }
        }
        if gave_up {
            // §13.3.1.4: no ACK for our 2xx: confirm and end the session on both legs.
            if let Some((side, cseq)) = call.ack_owed.take() {
                self.send_ack(io, id, side, cseq, None);
            }
            self.bye(io, now, id, Side::B);
            self.bye(io, now, id, Side::A);
            self.finish(id, "failed");
            return self.remove_if_done(id);
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.record_deadline.is_some_and(|d| d <= now) {
            // The longest message allowed: thank you and goodbye.
            call.record_deadline = None;
            self.bye(io, now, id, Side::A);
            self.finish(id, "overflow");
            self.remove_if_done(id);
        }
    }
}

/// The `Allow` we put on dialog-creating messages.
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO";

fn local_tag(value: &str) -> &str {
    value.rsplit_once(";tag=").map_or("", |(_, t)| t)
}

fn remote_of(info: &MediaInfo) -> Remote {
    Remote {
        rtp: info.remote,
        rtcp: info.remote_rtcp,
    }
}

/// An offer whose only live stream is T.38 fax (`m=image … udptl t38`): a fax machine, not a
/// person. An offer with audio beside T.38 is routed as voice (the CNG detector and a later
/// T.38 re-INVITE still catch a fax).
fn is_fax_only(offer: &Sdp) -> bool {
    let live = || offer.media.iter().filter(|m| m.port != 0);
    live().any(|m| m.is_t38()) && live().all(|m| m.is_t38())
}

/// A request carrying an SDP offer with a live T.38 stream.
fn offers_t38(req: &Message) -> bool {
    !req.body().is_empty()
        && Sdp::parse_bytes(req.body())
            .is_ok_and(|s| s.media.iter().any(|m| m.port != 0 && m.is_t38()))
}

#[cfg(test)]
mod tests;
