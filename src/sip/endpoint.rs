//! The SIP endpoint core (sans-IO): what the daemon edge feeds every received datagram and
//! stream frame into, and drains for bytes to send.
//!
//! ```text
//!  edge ── handle_datagram / handle_stream ──► parse (message) ──► with_received (§18.2.1)
//!                                                │ malformed request: stateless error (§8.2.6)
//!                                                │ malformed response: dropped (§18.1.2)
//!                                                ▼
//!                                   TransactionLayer (§17) ──► TU (this file, for now)
//!  edge ◄── poll_transmit ◄── PeerId → Destination ◄── transmits
//! ```
//!
//! The TUs: capability checks ([`uas_precheck`]) and OPTIONS with our capabilities here,
//! REGISTER through the seat registrar ([`SeatRegistry`]), and calls through the B2BUA
//! ([`B2bua`]).
//!
//! The registrar works in unix seconds (bindings outlive the process); the edge supplies the
//! mapping from `Instant` once with [`Endpoint::set_unix_base`], so the core still reads no
//! clock. Its ledger writes come out of [`Endpoint::poll_registry_effect`]; a REGISTER that
//! changed bindings is answered only once the edge reports those writes done
//! ([`Endpoint::registry_effects_done`]), so a 200 OK means the binding survives `kill -9`.
//!
//! Responses go back to the address and port the request came from, whether or not the Via
//! asks for `rport` (symmetric response routing, as Asterisk's default `force_rport` and
//! Kamailio's `force_rport()`): our peers are a carrier SBC and softphones behind NAT, for
//! which the sent-by port of RFC 3261 §18.2.2 is unreachable. RFC 3581 §4 is followed for
//! the Via parameters themselves.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::b2bua::{Admission, B2bua, CallEffect, MediaNotice, SeatLocator, SeatTarget};
use super::counters::SipCounters;
use super::guard::{Guard, GuardConfig, RequestClass, Verdict};
use super::message::{
    parse_datagram, stateless_error_response, uas_precheck, Frame, Message, MessageError,
    Method as SipMethod,
};
use super::seats::{RegistryEffect, SeatRegistry};
use super::transaction::{
    Kind, LayerConfig, Method, PeerId, Reliability, TransactionLayer, TsxError, TsxEvent, TsxKey,
    TsxMessage, WireBuilder,
};

/// Methods this endpoint accepts (the `Allow` list, RFC 3261 §20.5). The B2BUA needs them
/// all; an unlisted standard method gets 405, an unknown one 501 (§8.2.1).
pub const ALLOWED_METHODS: &[&str] = &[
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO",
];

/// Option tags we implement (RFC 3261 §20.37). Empty until the call path implements one:
/// advertising an extension we do not honour would break calls that rely on it.
pub const SUPPORTED_EXTENSIONS: &[&str] = &[];

/// The only body the call path will understand (RFC 3261 §11.2: OPTIONS lists `Accept`).
pub const ACCEPTED_BODY: &str = "application/sdp";

/// UDP peers on IPv6 get a table slot for their [`PeerId`]; this bounds the table under a
/// flood of spoofed sources. The oldest slot is reused, so at worst a late retransmission to
/// a peer evicted by a flood is dropped, which UDP tolerates.
pub const MAX_V6_PEERS: usize = 4096;

/// Malformed-input log budget: lines per kind per [`LOG_WINDOW`], so that a hostile or broken
/// peer cannot fill the journal.
pub const LOG_LINES_PER_WINDOW: u32 = 5;
pub const LOG_WINDOW: Duration = Duration::from_secs(10);

/// Retry-After for the 503 sent when the transaction table is full (RFC 3261 §21.5.4).
const OVERLOAD_RETRY_AFTER_SECS: u32 = 5;

/// Where a message leaves: a UDP address or an accepted stream connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    Udp(SocketAddr),
    Stream(ConnId),
}

/// A stream connection, numbered by the edge. Only the low 62 bits are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Bytes for the edge to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    pub to: Destination,
    pub bytes: Arc<[u8]>,
}

/// Errors of the endpoint core.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("transaction layer: {0}")]
    Transaction(#[from] TsxError),
}

/// What kind of malformed input was seen, for the rate-limited log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Malformed {
    Request,
    Response,
    Stream,
}

impl Malformed {
    fn index(self) -> usize {
        match self {
            Malformed::Request => 0,
            Malformed::Response => 1,
            Malformed::Stream => 2,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Malformed::Request => "request",
            Malformed::Response => "response",
            Malformed::Stream => "stream",
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct LogBudget {
    window_start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    /// Whether a line may be written now; on a new window also how many were suppressed.
    fn take(&mut self, now: Instant) -> (bool, u64) {
        let fresh = match self.window_start {
            None => true,
            Some(s) => now.saturating_duration_since(s) >= LOG_WINDOW,
        };
        let mut reported = 0;
        if fresh {
            self.window_start = Some(now);
            self.used = 0;
            reported = std::mem::take(&mut self.suppressed);
        }
        if self.used < LOG_LINES_PER_WINDOW {
            self.used += 1;
            (true, reported)
        } else {
            self.suppressed += 1;
            (false, reported)
        }
    }
}

/// Interns IPv6 UDP peers into [`PeerId`]s; IPv4 and stream peers are encoded directly.
#[derive(Debug, Default)]
struct PeerTable {
    by_addr: HashMap<SocketAddr, u64>,
    by_id: HashMap<u64, SocketAddr>,
    order: VecDeque<u64>,
    next: u64,
}

const KIND_SHIFT: u32 = 62;
const LOW_BITS: u64 = (1 << KIND_SHIFT) - 1;
const KIND_UDP4: u64 = 0;
const KIND_STREAM: u64 = 1;
const KIND_UDP6: u64 = 2;

impl PeerTable {
    fn peer(&mut self, to: Destination) -> PeerId {
        match to {
            Destination::Udp(SocketAddr::V4(a)) => PeerId(
                (KIND_UDP4 << KIND_SHIFT)
                    | (u64::from(a.ip().to_bits()) << 16)
                    | u64::from(a.port()),
            ),
            Destination::Stream(ConnId(n)) => PeerId((KIND_STREAM << KIND_SHIFT) | (n & LOW_BITS)),
            Destination::Udp(addr @ SocketAddr::V6(_)) => {
                if let Some(id) = self.by_addr.get(&addr) {
                    return PeerId((KIND_UDP6 << KIND_SHIFT) | id);
                }
                if self.order.len() >= MAX_V6_PEERS {
                    if let Some(old) = self.order.pop_front() {
                        if let Some(a) = self.by_id.remove(&old) {
                            self.by_addr.remove(&a);
                        }
                    }
                }
                let id = self.next & LOW_BITS;
                self.next = self.next.wrapping_add(1);
                self.by_addr.insert(addr, id);
                self.by_id.insert(id, addr);
                self.order.push_back(id);
                PeerId((KIND_UDP6 << KIND_SHIFT) | id)
            }
        }
    }

    fn destination(&self, peer: PeerId) -> Option<Destination> {
        let low = peer.0 & LOW_BITS;
        match peer.0 >> KIND_SHIFT {
            KIND_UDP4 => {
                let ip = u32::try_from(low >> 16).ok()?;
                let port = u16::try_from(low & 0xffff).ok()?;
                Some(Destination::Udp(SocketAddr::new(
                    IpAddr::V4(std::net::Ipv4Addr::from_bits(ip)),
                    port,
                )))
            }
            KIND_STREAM => Some(Destination::Stream(ConnId(low))),
            KIND_UDP6 => self.by_id.get(&low).copied().map(Destination::Udp),
            _ => None,
        }
    }
}

/// Builds the two messages the transaction layer originates, with the message layer.
struct MessageWire;

impl WireBuilder for MessageWire {
    fn ack_for_non_2xx(&self, invite: &TsxMessage, response: &TsxMessage) -> Option<TsxMessage> {
        let invite = parse_datagram(&invite.bytes).ok()?;
        let response = parse_datagram(&response.bytes).ok()?;
        // §17.1.1.3: our own INVITEs carry exactly one Via, so the first field is the top one.
        let via = invite.header("Via")?;
        let to = response.header("To")?;
        let mut text = format!(
            "ACK {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {to}\r\n\
             Call-ID: {}\r\nCSeq: {} ACK\r\n",
            invite.request_uri()?,
            invite.header("From")?,
            invite.call_id(),
            invite.cseq(),
        );
        for route in invite.headers("Route") {
            text.push_str("Route: ");
            text.push_str(route);
            text.push_str("\r\n");
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        let ack = parse_datagram(text.as_bytes()).ok()?;
        Some(envelope(&ack))
    }

    fn trying_for(&self, request: &TsxMessage) -> Option<TsxMessage> {
        let request = parse_datagram(&request.bytes).ok()?;
        Some(envelope(&Message::response_to(&request, 100, "Trying")))
    }
}

/// The transaction layer's view of a message (§17.1.3, §17.2.3 matching fields).
pub(crate) fn envelope(m: &Message) -> TsxMessage {
    let via = m.top_via();
    let mut sent_by = String::with_capacity(via.host().len() + 6);
    sent_by.push_str(via.host());
    if let Some(p) = via.port() {
        use std::fmt::Write as _;
        let _ = write!(sent_by, ":{p}");
    }
    TsxMessage {
        kind: match (m.method(), m.status()) {
            (Some(method), _) => Kind::Request {
                method: tsx_method(method),
            },
            (None, status) => Kind::Response {
                status: status.unwrap_or(500),
            },
        },
        branch: via.branch().unwrap_or_default().to_owned(),
        sent_by,
        cseq: m.cseq(),
        cseq_method: tsx_method(m.cseq_method()),
        call_id: m.call_id().to_owned(),
        from_tag: m.from_tag().map(str::to_owned),
        to_tag: m.to_tag().map(str::to_owned),
        bytes: Arc::from(m.to_bytes().as_ref()),
    }
}

fn tsx_method(m: &SipMethod) -> Method {
    Method::from_token(m.as_str())
}

/// What the call path and the other TUs send through: the transaction layer, the peer table,
/// unique tokens and the rate-limited log.
pub struct Io {
    layer: TransactionLayer,
    peers: PeerTable,
    tag_seed: u64,
    tag_counter: u64,
    logs: HashMap<&'static str, LogBudget>,
}

impl Io {
    /// Gives up on client transaction `key` as if its transport had failed: the TU hears a
    /// transport error and the layer forgets it (RFC 3261 §9.1: an INVITE whose CANCEL
    /// brought no final response within 64·T1 is considered cancelled).
    pub fn abandon(&mut self, key: &TsxKey) {
        self.layer.handle_transport_error(key);
    }

    /// A token unique to this process run (§19.3 tags, Call-IDs, branches), from the edge's
    /// seed and a counter.
    pub fn unique(&mut self) -> String {
        self.tag_counter = self.tag_counter.wrapping_add(1);
        let mixed = self
            .tag_seed
            .wrapping_add(self.tag_counter.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        format!("{mixed:016x}")
    }

    pub fn peer(&mut self, to: Destination) -> PeerId {
        self.peers.peer(to)
    }

    pub fn destination(&self, peer: PeerId) -> Option<Destination> {
        self.peers.destination(peer)
    }

    /// "UDP" or "TCP" for the Via of requests to `peer`.
    pub fn transport(&self, peer: PeerId) -> &'static str {
        match self.peers.destination(peer) {
            Some(Destination::Stream(_)) => "TCP",
            _ => "UDP",
        }
    }

    fn reliability(&self, peer: PeerId) -> Reliability {
        match self.peers.destination(peer) {
            Some(Destination::Stream(_)) => Reliability::Reliable,
            _ => Reliability::Unreliable,
        }
    }

    /// A response through server transaction `key`.
    pub fn respond(&mut self, now: Instant, key: &TsxKey, m: &Message) {
        if let Err(e) = self.layer.send_response(now, key, envelope(m)) {
            tracing::debug!(error = %e, "server transaction refused our response");
        }
    }

    /// A request in a new client transaction; `None` if the layer refused it (full table).
    pub fn send(&mut self, now: Instant, m: &Message, to: PeerId) -> Option<TsxKey> {
        let reliability = self.reliability(to);
        match self.layer.send_request(now, envelope(m), to, reliability) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::debug!(error = %e, "client transaction refused");
                None
            }
        }
    }

    /// Bytes outside any transaction (ACK for 2xx, 2xx retransmissions).
    pub fn send_raw(&mut self, to: PeerId, bytes: Arc<[u8]>) {
        self.layer.send_stateless(to, bytes);
    }

    /// Runs `write` unless lines of this `kind` are over budget ([`LOG_LINES_PER_WINDOW`]
    /// per [`LOG_WINDOW`]); a line says how many were suppressed.
    pub fn log_limited(&mut self, now: Instant, kind: &'static str, write: impl FnOnce()) {
        let budget = self.logs.entry(kind).or_default();
        let (ok, suppressed) = budget.take(now);
        if suppressed > 0 {
            tracing::warn!(kind, suppressed, "similar log lines suppressed");
        }
        if ok {
            write();
        }
    }
}

/// The endpoint: message layer + transaction layer + the TUs (registrar, B2BUA).
pub struct Endpoint {
    io: Io,
    logs: [LogBudget; 3],
    b2bua: Option<B2bua>,
    /// Seat REGISTERs and bindings (the registrar TU); also where the call path finds seats.
    registry: SeatRegistry,
    /// `(instant, unix time at that instant)`, from the edge.
    unix_base: Option<(Instant, Duration)>,
    /// Source address of the message being handled (stream peers' [`PeerId`]s do not carry it).
    inbound_src: Option<SocketAddr>,
    /// Set by the REGISTER arm: the answer waits for registry effects up to this number.
    hold_until: Option<u64>,
    /// REGISTER answers waiting for their ledger writes: `(effect number, transaction, answer)`.
    held: Vec<(u64, TsxKey, Message)>,
    /// Scanner drops, per-source rate limits and bans, before the transaction layer.
    guard: Guard,
    counters: SipCounters,
}

/// The call path's view of the registrar: every seat with a reachable binding, through its
/// most preferred contact.
impl SeatLocator for SeatRegistry {
    fn seat_targets(&self) -> Vec<SeatTarget> {
        self.registered_seats()
            .filter_map(|(_, name)| self.contacts(name).into_iter().next())
            .map(|c| SeatTarget {
                seat_id: c.seat_id,
                seat: c.seat,
                contact_uri: c.contact_uri,
                dest: c.dest,
            })
            .collect()
    }

    /// Every binding change is a registry effect (a ledger write), counted.
    fn version(&self) -> Option<u64> {
        Some(self.effects_emitted())
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("layer", &self.io.layer)
            .field("b2bua", &self.b2bua)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// `tag_seed` comes from the edge's randomness: To tags must be globally unique
    /// (RFC 3261 §19.3) and this core has no random source of its own. REGISTERs are answered
    /// 500 until [`Self::set_unix_base`] has been called.
    pub fn new(
        config: LayerConfig,
        tag_seed: u64,
        registry: SeatRegistry,
    ) -> Result<Endpoint, EndpointError> {
        Ok(Endpoint {
            io: Io {
                layer: TransactionLayer::new(config, Box::new(MessageWire))?,
                peers: PeerTable::default(),
                tag_seed,
                tag_counter: 0,
                logs: HashMap::new(),
            },
            logs: [LogBudget::default(); 3],
            b2bua: None,
            registry,
            unix_base: None,
            inbound_src: None,
            hold_until: None,
            held: Vec::new(),
            guard: Guard::new(GuardConfig::default()),
            counters: SipCounters::default(),
        })
    }

    /// Replaces the guard's limits (config `[security]`); its per-source state starts afresh.
    pub fn with_guard(mut self, config: GuardConfig) -> Endpoint {
        self.guard = Guard::new(config);
        self
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    fn is_trunk(&self, ip: IpAddr) -> bool {
        self.b2bua
            .as_ref()
            .is_some_and(|b| b.trunk_for(ip).is_some())
    }

    /// Ties the monotonic clock to wall time: at `at` it was `unix` since the epoch. The edge
    /// calls it at start and may call it again to follow wall-clock adjustments.
    pub fn set_unix_base(&mut self, at: Instant, unix: Duration) {
        self.unix_base = Some((at, unix));
    }

    /// Wall time at `now` in unix seconds, once the edge has set the base.
    pub fn unix_now(&self, now: Instant) -> Option<u64> {
        let (at, unix) = self.unix_base?;
        Some((unix + now.saturating_duration_since(at)).as_secs())
    }

    /// The seat registrar, for the call path (`contacts`, `registered_seats`).
    pub fn registry(&self) -> &SeatRegistry {
        &self.registry
    }

    /// The seat registrar, for the edge (`set_credentials`, `restore`, `connection_closed`).
    pub fn registry_mut(&mut self) -> &mut SeatRegistry {
        &mut self.registry
    }

    /// The next ledger write of the registrar; drain after every `handle_*` call. Effects are
    /// numbered from 1 in the order polled (see [`Self::registry_effects_done`]).
    pub fn poll_registry_effect(&mut self) -> Option<RegistryEffect> {
        self.registry.poll_effect()
    }

    /// Turns the call path on (without it INVITEs get 480, as before the B2BUA existed).
    pub fn with_b2bua(mut self, b2bua: B2bua) -> Endpoint {
        self.b2bua = Some(b2bua);
        self
    }

    pub fn b2bua(&self) -> Option<&B2bua> {
        self.b2bua.as_ref()
    }

    /// Work for the edge from the call path.
    pub fn poll_call_effect(&mut self) -> Option<CallEffect> {
        self.b2bua.as_mut()?.poll_effect()
    }

    /// The edge's answer to a [`CallEffect::Admit`].
    pub fn handle_admission(&mut self, now: Instant, call: u64, admission: Admission) {
        if let Some(b) = self.b2bua.as_mut() {
            b.handle_admission(&mut self.io, now, call, admission, &self.registry);
        }
    }

    /// Seats from the ledger with their skills (names, `hearing`, …).
    pub fn set_seats(&mut self, now: Instant, seats: &[(i64, String, Vec<String>)]) {
        if let Some(b) = self.b2bua.as_mut() {
            b.set_seats(&mut self.io, now, seats);
        }
    }

    /// Registrations changed outside a REGISTER (a TCP connection closed, credentials
    /// reloaded): the call path follows at once.
    pub fn seats_changed(&mut self, now: Instant) {
        if let Some(b) = self.b2bua.as_mut() {
            b.sync_seats(&mut self.io, now, &self.registry);
        }
    }

    /// An operator's command on a seat (pause, resume, reset).
    pub fn seat_command(
        &mut self,
        now: Instant,
        command: super::b2bua::SeatCommand,
    ) -> Result<(), crate::acd::AcdError> {
        match self.b2bua.as_mut() {
            Some(b) => b.seat_command(&mut self.io, now, &self.registry, command),
            None => Err(crate::acd::AcdError::UnknownSeat(String::new())),
        }
    }

    /// The seat's first-response record of call row `row` was submitted: its wrap-up ends
    /// (see [`B2bua::record_submitted`]).
    pub fn record_submitted(&mut self, now: Instant, seat_id: i64, row: i64) -> bool {
        self.b2bua
            .as_mut()
            .is_some_and(|b| b.record_submitted(&mut self.io, now, seat_id, row))
    }

    /// Waiting callers and seat states.
    pub fn acd_snapshot(&self, now: Instant) -> crate::acd::AcdSnapshot {
        self.b2bua
            .as_ref()
            .map(|b| b.acd().snapshot(now))
            .unwrap_or_default()
    }

    /// "Calls handled today" restarts (the edge calls this when the Tokyo date changes).
    pub fn reset_daily_counts(&mut self) {
        if let Some(b) = self.b2bua.as_mut() {
            b.reset_daily_counts();
        }
    }

    /// A media notice for a call.
    pub fn handle_media(&mut self, now: Instant, call: u64, notice: MediaNotice) {
        if let Some(b) = self.b2bua.as_mut() {
            b.handle_media(&mut self.io, now, call, notice);
        }
    }

    /// The edge has finished the registry effects numbered up to `done` (committed, or given
    /// up on after retries): REGISTER answers that waited for them are sent now.
    pub fn registry_effects_done(&mut self, now: Instant, done: u64) {
        if self.held.is_empty() {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) =
            self.held.drain(..).partition(|(n, _, _)| *n <= done);
        self.held = waiting;
        for (_, key, response) in ready {
            if let Err(e) = self.io.layer.send_response(now, &key, envelope(&response)) {
                tracing::debug!(error = %e, "REGISTER transaction gone before its answer");
            }
        }
        self.drain_events(now, None, None);
    }

    /// One UDP datagram from `src` (RFC 3261 §18.3: one datagram, one message).
    pub fn handle_datagram(&mut self, now: Instant, src: SocketAddr, bytes: &[u8]) {
        if self.guard.is_banned(src.ip(), now) {
            return;
        }
        let peer = self.io.peers.peer(Destination::Udp(src));
        match parse_datagram(bytes) {
            Ok(m) => self.handle_message(now, peer, src, m, Reliability::Unreliable),
            // Bare CRLFs are keep-alives (RFC 5626 §3.5.1 applies them to streams; over UDP
            // they need no answer).
            Err(MessageError::Empty) => {}
            Err(e) => self.reject(now, peer, src, bytes, &e),
        }
    }

    /// One result of [`super::message::StreamFramer::next_frame`] on connection `conn`.
    /// The edge closes the connection once its framer reports itself closed.
    pub fn handle_stream(
        &mut self,
        now: Instant,
        conn: ConnId,
        src: SocketAddr,
        frame: Result<Frame, MessageError>,
    ) {
        if self.guard.is_banned(src.ip(), now) {
            return;
        }
        let peer = self.io.peers.peer(Destination::Stream(conn));
        match frame {
            Ok(Frame::Message(m)) => self.handle_message(now, peer, src, *m, Reliability::Reliable),
            // RFC 5626 §3.5.1: a double-CRLF ping is answered with a single CRLF pong.
            Ok(Frame::Ping) => self.io.layer.send_stateless(peer, Arc::from(&b"\r\n"[..])),
            Ok(Frame::Rejected { error, raw }) => self.reject(now, peer, src, &raw, &error),
            Err(error) => self.log_malformed(now, Malformed::Stream, src, &error),
        }
    }

    /// Fires due timers (transaction retransmissions and cleanup, call timers).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(unix) = self.unix_now(now) {
            let before = self.registry.effects_emitted();
            self.registry.handle_timeout(unix);
            // Bindings expired: the call path follows (a ringing seat's offer moves on).
            if self.registry.effects_emitted() != before {
                if let Some(b) = self.b2bua.as_mut() {
                    b.sync_seats(&mut self.io, now, &self.registry);
                }
            }
        }
        self.io.layer.handle_timeout(now);
        self.drain_events(now, None, None);
        if let Some(b) = self.b2bua.as_mut() {
            b.handle_timeout(&mut self.io, now, &self.registry);
        }
        self.drain_events(now, None, None);
    }

    /// The next message to send; drain until `None` after every `handle_*` call.
    pub fn poll_transmit(&mut self) -> Option<Outbound> {
        loop {
            let t = self.io.layer.poll_transmit()?;
            match self.io.peers.destination(t.to) {
                Some(to) => {
                    self.counters.outbound.count(&t.bytes);
                    return Some(Outbound { to, bytes: t.bytes });
                }
                None => tracing::debug!("dropping a transmit to an evicted IPv6 peer"),
            }
        }
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let layer = self.io.layer.poll_timeout();
        let calls = self.b2bua.as_mut().and_then(B2bua::poll_timeout);
        // A binding expiring at unix second D is due at the instant unix_now() reaches D.
        let registry = self.unix_base.and_then(|(at, unix)| {
            let due = Duration::from_secs(self.registry.poll_timeout()?);
            // `checked_add`: a far-future expiry (a hand-edited ledger row) must not panic.
            at.checked_add(due.saturating_sub(unix))
        });
        [layer, calls, registry].into_iter().flatten().min()
    }

    /// Live transactions, for status and tests.
    pub fn transactions(&self) -> usize {
        self.io.layer.len()
    }

    /// SIP traffic so far (metrics).
    pub fn counters(&self) -> SipCounters {
        self.counters
    }

    /// The call path, for reads and for changes that send nothing (drain, trunk reload).
    pub fn b2bua_mut(&mut self) -> Option<&mut B2bua> {
        self.b2bua.as_mut()
    }

    /// An admin ends call `id` (see [`B2bua::hang_up`]).
    pub fn hang_up(&mut self, now: Instant, id: u64) -> Result<(), super::b2bua::HangupError> {
        match self.b2bua.as_mut() {
            Some(b) => b.hang_up(&mut self.io, now, id),
            None => Err(super::b2bua::HangupError::NotFound),
        }
    }

    /// Ends every call that can be ended now (grace period over); returns how many remain.
    pub fn hang_up_all(&mut self, now: Instant) -> usize {
        self.b2bua
            .as_mut()
            .map_or(0, |b| b.hang_up_all(&mut self.io, now))
    }

    /// The next ended call's summary (see [`B2bua::poll_ended`]).
    pub fn poll_ended_call(&mut self) -> Option<super::b2bua::CallSummary> {
        self.b2bua.as_mut()?.poll_ended()
    }

    fn handle_message(
        &mut self,
        now: Instant,
        peer: PeerId,
        src: SocketAddr,
        m: Message,
        reliability: Reliability,
    ) {
        match (m.method(), m.status()) {
            (Some(method), _) => self.counters.inbound.count_request(method.as_str()),
            (None, Some(status)) => self.counters.inbound.count_status(status),
            _ => {}
        }
        if m.is_request() {
            let class = match m.method() {
                Some(SipMethod::Invite) if m.to_tag().is_none() => RequestClass::Initial,
                Some(SipMethod::Options) => RequestClass::Initial,
                Some(SipMethod::Register) => RequestClass::Register,
                _ => RequestClass::Other,
            };
            let trunk = self.is_trunk(src.ip());
            let (verdict, _ban) =
                self.guard
                    .check(src.ip(), trunk, now, class, m.header("User-Agent"));
            if verdict != Verdict::Pass {
                return;
            }
        }
        let m = if m.is_request() {
            match m.with_received(src) {
                Ok(m) => m,
                Err(e) => return self.log_malformed(now, Malformed::Request, src, &e),
            }
        } else {
            m
        };
        self.inbound_src = Some(src);
        self.io
            .layer
            .handle_incoming(now, envelope(&m), reliability, peer);
        self.drain_events(now, Some(&m), Some(src));
        self.inbound_src = None;
    }

    /// Handles what the layer reports. `current` is the message just fed in: a NewRequest
    /// can only come from it, since the layer works synchronously.
    fn drain_events(&mut self, now: Instant, current: Option<&Message>, src: Option<SocketAddr>) {
        while let Some(event) = self.io.layer.poll_event() {
            match event {
                TsxEvent::NewRequest { key, msg, from } => {
                    let Some(request) = current else { continue };
                    if self.route_to_b2bua(now, &key, request, &msg, src, from) {
                        continue;
                    }
                    let Some(response) = self.answer(now, from, request, &msg) else {
                        continue;
                    };
                    if let Some(n) = self.hold_until.take() {
                        self.held.push((n, key, response));
                        continue;
                    }
                    self.io.respond(now, &key, &response);
                }
                // RFC 2543 peers (no magic cookie, inv2543.dat, badbranch.dat): answered
                // statelessly (§17.2.3 matching is not implemented).
                TsxEvent::NoTransactionMatch { msg, from, .. } => {
                    let Some(request) = current else { continue };
                    let response = self.answer(now, from, request, &msg);
                    // Stateless: nothing can wait for the ledger here.
                    self.hold_until = None;
                    if let Some(response) = response {
                        self.io
                            .layer
                            .send_stateless(from, Arc::from(response.to_bytes().as_ref()));
                    }
                }
                TsxEvent::Overloaded { from, .. } => {
                    let Some(request) = current else { continue };
                    let tag = self.io.unique();
                    let response =
                        Message::response_to(request, 503, "Service Unavailable").with_to_tag(&tag);
                    let response = response
                        .clone()
                        .with_header("Retry-After", &OVERLOAD_RETRY_AFTER_SECS.to_string())
                        .unwrap_or(response);
                    self.io
                        .layer
                        .send_stateless(from, Arc::from(response.to_bytes().as_ref()));
                }
                TsxEvent::AckFor2xx { msg, .. } => {
                    let Some(b) = self.b2bua.as_mut() else {
                        continue;
                    };
                    let parsed;
                    let ack = match current {
                        Some(m) if m.is_request() => m,
                        _ => match parse_datagram(&msg.bytes) {
                            Ok(m) => {
                                parsed = m;
                                &parsed
                            }
                            Err(_) => continue,
                        },
                    };
                    b.on_ack(&mut self.io, ack);
                }
                TsxEvent::Response { key, msg } => {
                    let Some(b) = self.b2bua.as_mut() else {
                        continue;
                    };
                    let parsed;
                    let resp = match current {
                        Some(m) if m.is_response() => m,
                        _ => match parse_datagram(&msg.bytes) {
                            Ok(m) => {
                                parsed = m;
                                &parsed
                            }
                            Err(_) => continue,
                        },
                    };
                    b.on_response(&mut self.io, now, &key, resp);
                }
                TsxEvent::StrayResponse { .. } => {
                    let Some(b) = self.b2bua.as_mut() else {
                        continue;
                    };
                    if let Some(resp) = current.filter(|m| m.is_response()) {
                        b.on_stray_response(&mut self.io, resp);
                    }
                }
                TsxEvent::Timeout { key, .. } | TsxEvent::TransportError { key } => {
                    self.counters.timeouts += 1;
                    if let Some(b) = self.b2bua.as_mut() {
                        b.on_client_failure(&mut self.io, now, &key);
                    }
                }
                TsxEvent::Terminated { key } => {
                    if let Some(b) = self.b2bua.as_mut() {
                        b.on_terminated(&key);
                    }
                }
            }
        }
    }

    /// Gives the call path the requests it owns; false if it has none of them.
    fn route_to_b2bua(
        &mut self,
        now: Instant,
        key: &TsxKey,
        request: &Message,
        tsx: &TsxMessage,
        src: Option<SocketAddr>,
        from: PeerId,
    ) -> bool {
        let Some(b) = self.b2bua.as_mut() else {
            return false;
        };
        let Some(method) = request.method() else {
            return false;
        };
        // RFC 3261 §8.2: method, URI scheme, Require and content checks come first.
        if uas_precheck(request, SUPPORTED_EXTENSIONS, ALLOWED_METHODS).is_some() {
            return false;
        }
        match method {
            SipMethod::Invite if request.to_tag().is_none() => {
                let Some(src) = src else { return false };
                b.on_invite(&mut self.io, now, key, request, src, from);
                true
            }
            SipMethod::Cancel => match self.io.layer.find_invite_server_for_cancel(tsx) {
                Some(invite) => b.on_cancel(&mut self.io, now, key, request, &invite),
                None => false,
            },
            _ if request.to_tag().is_some() => b.on_in_dialog(&mut self.io, now, key, request),
            _ => false,
        }
    }

    /// The stateless TU for what no other TU took: the final response, or `None` for ACK.
    fn answer(
        &mut self,
        now: Instant,
        from: PeerId,
        request: &Message,
        tsx: &TsxMessage,
    ) -> Option<Message> {
        let method = request.method()?;
        if *method == SipMethod::Ack {
            return None;
        }
        let tag = self.io.unique();
        // RFC 3261 §8.2: method, URI scheme, Require, then content checks, before anything else.
        if let Some(rejection) = uas_precheck(request, SUPPORTED_EXTENSIONS, ALLOWED_METHODS) {
            return Some(rejection.to_response(request, &tag));
        }
        let reply =
            |code, reason| Some(Message::response_to(request, code, reason).with_to_tag(&tag));
        // §12.2.2: an in-dialog request for a dialog we do not hold.
        if request.to_tag().is_some() {
            return reply(481, "Call/Transaction Does Not Exist");
        }
        match method {
            SipMethod::Options => {
                if let (Some(b), Some(src)) = (self.b2bua.as_mut(), self.inbound_src) {
                    b.note_options(src.ip(), now);
                }
                let ok = Message::response_to(request, 200, "OK").with_to_tag(&tag);
                // §11.2; carriers use OPTIONS as keep-alive. No Server header: a version
                // string only helps an attacker pick exploits.
                let with = ok
                    .clone()
                    .with_header("Allow", &ALLOWED_METHODS.join(", "))
                    .and_then(|m| m.with_header("Accept", ACCEPTED_BODY))
                    .and_then(|m| m.with_header("Accept-Encoding", "identity"))
                    .and_then(|m| m.with_header("Supported", &SUPPORTED_EXTENSIONS.join(", ")));
                Some(with.unwrap_or(ok))
            }
            SipMethod::Register => {
                let Some(unix) = self.unix_now(now) else {
                    tracing::error!("REGISTER before the edge set the wall clock");
                    return reply(500, "Server Internal Error");
                };
                let dest = self.io.peers.destination(from)?;
                let src = match (dest, self.inbound_src) {
                    (Destination::Udp(a), _) => a,
                    (Destination::Stream(_), Some(a)) => a,
                    (Destination::Stream(_), None) => return reply(500, "Server Internal Error"),
                };
                let before = self.registry.effects_emitted();
                let response = self.registry.handle_register(unix, request, src, dest);
                if self.registry.take_auth_failure() {
                    let trunk = self.is_trunk(src.ip());
                    self.guard.auth_failed(src.ip(), trunk, now);
                }
                if let Some(b) = self.b2bua.as_mut() {
                    b.sync_seats(&mut self.io, now, &self.registry);
                }
                let after = self.registry.effects_emitted();
                if after > before {
                    self.hold_until = Some(after);
                }
                Some(response.with_to_tag(&tag))
            }
            // Without the call path (tests of the bare endpoint) callers hear "unavailable"
            // (§21.4.18) rather than a server error.
            SipMethod::Invite => reply(480, "Temporarily Unavailable"),
            // §9.2: 200 if the INVITE it targets is known (its final response already went
            // out, so the CANCEL changes nothing), else 481.
            SipMethod::Cancel => match self.io.layer.find_invite_server_for_cancel(tsx) {
                Some(_) => reply(200, "OK"),
                None => reply(481, "Call/Transaction Does Not Exist"),
            },
            // BYE, INFO outside a dialog (§12.2.2 by analogy, §15.1.2).
            _ => reply(481, "Call/Transaction Does Not Exist"),
        }
    }

    fn reject(
        &mut self,
        now: Instant,
        peer: PeerId,
        src: SocketAddr,
        raw: &[u8],
        error: &MessageError,
    ) {
        self.counters.malformed += 1;
        let kind = if error.status().is_some() {
            Malformed::Request
        } else {
            Malformed::Response
        };
        self.log_malformed(now, kind, src, error);
        let tag = self.io.unique();
        if let Some(bytes) = stateless_error_response(raw, error, &tag) {
            self.io
                .layer
                .send_stateless(peer, Arc::from(bytes.as_ref()));
        }
    }

    /// Warns about malformed input within the budget. Only the error (which names headers,
    /// never their values) and the peer address are logged: From/To hold callers' numbers.
    fn log_malformed(&mut self, now: Instant, kind: Malformed, src: SocketAddr, e: &MessageError) {
        let Some(budget) = self.logs.get_mut(kind.index()) else {
            return;
        };
        let (write, suppressed) = budget.take(now);
        if suppressed > 0 {
            tracing::warn!(
                kind = kind.as_str(),
                suppressed,
                "malformed SIP input not logged"
            );
        }
        if write {
            tracing::warn!(kind = kind.as_str(), peer = %src, error = %e, "malformed SIP input");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::StreamFramer;

    const OPTIONS: &str = "OPTIONS sip:desk@example.jp SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKopt1;rport\r\n\
        Max-Forwards: 70\r\nTo: <sip:desk@example.jp>\r\n\
        From: <sip:carrier@example.net>;tag=c1\r\nCall-ID: opt-1@example.net\r\n\
        CSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    fn src() -> SocketAddr {
        "192.0.2.10:40123".parse().unwrap()
    }

    const T_UNIX: u64 = 1_800_000_000;

    fn registry() -> SeatRegistry {
        use crate::sip::auth::{ha1_md5, ha1_sha256, ServerSecret};
        use crate::sip::seats::{RegistryConfig, SeatCredential};
        let mut r = SeatRegistry::new(
            RegistryConfig::new("smartdesk"),
            ServerSecret::from_bytes([5; 32]),
        )
        .unwrap();
        r.set_credentials(vec![SeatCredential {
            seat_id: 3,
            name: "op1".into(),
            ha1_md5: Some(ha1_md5("op1", "smartdesk", "pw-op1-123").as_str().into()),
            ha1_sha256: Some(ha1_sha256("op1", "smartdesk", "pw-op1-123").as_str().into()),
        }]);
        r
    }

    fn endpoint_at(t0: Instant) -> Endpoint {
        let mut ep = Endpoint::new(LayerConfig::default(), 42, registry()).unwrap();
        ep.set_unix_base(t0, Duration::from_secs(T_UNIX));
        ep
    }

    fn endpoint() -> Endpoint {
        endpoint_at(Instant::now())
    }

    fn drain(ep: &mut Endpoint) -> Vec<(Destination, Message)> {
        std::iter::from_fn(|| ep.poll_transmit())
            .map(|o| (o.to, parse_datagram(&o.bytes).expect("we send valid SIP")))
            .collect()
    }

    fn request(method: &str, extra: &str) -> String {
        format!(
            "{method} sip:desk@example.jp SIP/2.0\r\n\
             Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK{method}1\r\n\
             Max-Forwards: 70\r\nTo: <sip:desk@example.jp>{extra}\r\n\
             From: <sip:a@example.net>;tag=f1\r\nCall-ID: {method}-1@example.net\r\n\
             CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    }

    fn status_of(ep: &mut Endpoint, raw: &str) -> Option<u16> {
        let now = Instant::now();
        ep.handle_datagram(now, src(), raw.as_bytes());
        let out = drain(ep);
        assert!(out.len() <= 1, "one answer at most: {out:?}");
        out.first().and_then(|(_, m)| m.status())
    }

    #[test]
    fn options_gets_capabilities_and_no_version() {
        let mut ep = endpoint();
        ep.handle_datagram(Instant::now(), src(), OPTIONS.as_bytes());
        let out = drain(&mut ep);
        let [(to, r)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(*to, Destination::Udp(src()));
        assert_eq!(r.status(), Some(200));
        assert!(r.to_tag().is_some());
        assert_eq!(r.header("Allow"), Some(ALLOWED_METHODS.join(", ").as_str()));
        assert_eq!(r.header("Accept"), Some("application/sdp"));
        assert!(r.header("Supported").is_some());
        assert!(r.header("Server").is_none() && r.header("User-Agent").is_none());
        // RFC 3581 §4: received and the source port in rport.
        assert_eq!(r.top_via().received(), Some("192.0.2.10"));
        assert_eq!(r.top_via().rport(), Some(40123));
        // A retransmission is absorbed and the response resent by the transaction (§17.2.2).
        ep.handle_datagram(Instant::now(), src(), OPTIONS.as_bytes());
        let again = drain(&mut ep);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].1, *r);
    }

    #[test]
    fn interim_tu_answers() {
        let mut ep = endpoint();
        assert_eq!(status_of(&mut ep, &request("REGISTER", "")), Some(401));
        assert_eq!(status_of(&mut ep, &request("INVITE", "")), Some(480));
        assert_eq!(status_of(&mut ep, &request("BYE", "")), Some(481));
        assert_eq!(status_of(&mut ep, &request("INFO", ";tag=x")), Some(481));
        assert_eq!(status_of(&mut ep, &request("ACK", "")), None);
        assert_eq!(status_of(&mut ep, &request("MESSAGE", "")), Some(405));
        assert_eq!(status_of(&mut ep, &request("FOO", "")), Some(501));
        let require =
            request("OPTIONS", "").replace("Max-Forwards", "Require: foo\r\nMax-Forwards");
        assert_eq!(status_of(&mut ep, &require), Some(420));
    }

    #[test]
    fn malformed_requests_get_stateless_errors_and_responses_are_dropped() {
        let mut ep = endpoint();
        let v7 = request("OPTIONS", "").replace("SIP/2.0\r\n", "SIP/7.0\r\n");
        assert_eq!(status_of(&mut ep, &v7), Some(505));
        let dup = request("OPTIONS", "").replace("CSeq", "Call-ID: again\r\nCSeq");
        assert_eq!(status_of(&mut ep, &dup), Some(400));
        let response = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKr\r\n\r\n";
        assert_eq!(status_of(&mut ep, response), None);
        let good_response = Message::response_to(
            &parse_datagram(request("OPTIONS", "").as_bytes()).unwrap(),
            200,
            "OK",
        );
        assert_eq!(
            status_of(
                &mut ep,
                std::str::from_utf8(&good_response.to_bytes()).unwrap()
            ),
            None
        );
        assert_eq!(status_of(&mut ep, "\r\n\r\n"), None);
        assert_eq!(status_of(&mut ep, "\0\0garbage"), None);
    }

    #[test]
    fn streams_pong_and_route_to_the_connection() {
        let mut ep = endpoint();
        let mut framer = StreamFramer::new();
        framer.push(b"\r\n\r\n").unwrap();
        framer.push(OPTIONS.as_bytes()).unwrap();
        let conn = ConnId(7);
        while let Some(f) = framer.next_frame() {
            ep.handle_stream(Instant::now(), conn, src(), f);
        }
        let out: Vec<Outbound> = std::iter::from_fn(|| ep.poll_transmit()).collect();
        assert_eq!(out.len(), 2);
        assert_eq!(&*out[0].bytes, b"\r\n");
        assert!(out.iter().all(|o| o.to == Destination::Stream(conn)));
        assert!(out[1].bytes.starts_with(b"SIP/2.0 200 OK"));
    }

    #[test]
    fn peer_ids_round_trip_and_v6_table_is_bounded() {
        let mut t = PeerTable::default();
        for d in [
            Destination::Udp("203.0.113.255:65535".parse().unwrap()),
            Destination::Udp("0.0.0.0:0".parse().unwrap()),
            Destination::Stream(ConnId(u64::MAX >> 2)),
            Destination::Udp("[2001:db8::1]:5060".parse().unwrap()),
        ] {
            let p = t.peer(d);
            assert_eq!(t.destination(p), Some(d));
        }
        let first = t.peer(Destination::Udp("[2001:db8::1]:5060".parse().unwrap()));
        for port in 0..(MAX_V6_PEERS as u16 + 10) {
            t.peer(Destination::Udp(SocketAddr::new(
                "2001:db8::2".parse().unwrap(),
                port,
            )));
        }
        assert!(t.by_id.len() <= MAX_V6_PEERS && t.by_addr.len() <= MAX_V6_PEERS);
        assert_eq!(t.destination(first), None, "oldest evicted");
    }

    #[test]
    fn log_budget_limits_lines_per_window() {
        let mut b = LogBudget::default();
        let t0 = Instant::now();
        let written = (0..100).filter(|_| b.take(t0).0).count();
        assert_eq!(written, LOG_LINES_PER_WINDOW as usize);
        assert_eq!(b.take(t0 + LOG_WINDOW), (true, 100 - written as u64));
    }

    /// A REGISTER answered by the registrar: digest round trip over UDP and TCP, ledger
    /// effects, expiry driven by the endpoint's timer, and 500 before the clock is set.
    #[test]
    fn register_goes_to_the_seat_registry() {
        use crate::sip::auth::{ha1_md5, response_hex, Algorithm};
        use crate::sip::seats::RegistryEffect;
        let t0 = Instant::now();
        let mut ep = endpoint_at(t0);
        let register = |branch: &str, cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:smartdesk SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 192.0.2.10:40123;branch=z9hG4bK{branch}\r\n\
                 Max-Forwards: 70\r\nTo: <sip:op1@smartdesk>\r\n\
                 From: <sip:op1@smartdesk>;tag=r1\r\nCall-ID: reg-1@192.0.2.10\r\n\
                 CSeq: {cseq} REGISTER\r\nContact: <sip:op1@192.0.2.10:40123>;expires=120\r\n\
                 {auth}Content-Length: 0\r\n\r\n"
            )
        };
        ep.handle_datagram(t0, src(), register("r1", 1, "").as_bytes());
        let out = drain(&mut ep);
        let [(_, challenge)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(challenge.status(), Some(401));
        assert!(challenge.to_tag().is_some());
        let www = challenge.header("WWW-Authenticate").unwrap();
        assert!(www.contains("algorithm=MD5"));
        let nonce = www
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let ha1 = ha1_md5("op1", "smartdesk", "pw-op1-123");
        let auth = |nc: &str| {
            let resp = response_hex(
                Algorithm::Md5,
                &ha1,
                nonce,
                nc,
                "cn",
                "REGISTER",
                "sip:smartdesk",
            );
            format!(
                "Authorization: Digest username=\"op1\", realm=\"smartdesk\", nonce=\"{nonce}\", \
                 uri=\"sip:smartdesk\", response=\"{resp}\", algorithm=MD5, qop=auth, \
                 nc={nc}, cnonce=\"cn\"\r\n"
            )
        };
        ep.handle_datagram(t0, src(), register("r2", 2, &auth("00000001")).as_bytes());
        assert!(
            drain(&mut ep).is_empty(),
            "the 200 waits for the ledger write"
        );
        // A retransmission meanwhile is absorbed by the server transaction.
        ep.handle_datagram(t0, src(), register("r2", 2, &auth("00000001")).as_bytes());
        assert!(drain(&mut ep).is_empty());
        ep.registry_effects_done(t0, 0);
        assert!(drain(&mut ep).is_empty());
        ep.registry_effects_done(t0, 1);
        let out = drain(&mut ep);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.status(), Some(200));
        assert_eq!(
            out[0].1.header("Contact"),
            Some("<sip:op1@192.0.2.10:40123>;expires=120")
        );
        let effect = ep.poll_registry_effect();
        assert!(
            matches!(effect, Some(RegistryEffect::Upsert(ref b)) if b.expires_at == T_UNIX + 120)
        );
        assert_eq!(ep.poll_registry_effect(), None);
        assert_eq!(
            ep.registry().contacts("op1")[0].dest,
            Destination::Udp(src())
        );

        // Over TCP the seat is reached through its connection.
        let conn = ConnId(9);
        let mut framer = StreamFramer::new();
        framer
            .push(register("r3", 3, &auth("00000002")).as_bytes())
            .unwrap();
        while let Some(f) = framer.next_frame() {
            ep.handle_stream(t0, conn, src(), f);
        }
        ep.registry_effects_done(t0, 2);
        let out: Vec<Outbound> = std::iter::from_fn(|| ep.poll_transmit()).collect();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, Destination::Stream(conn));
        assert!(out[0].bytes.starts_with(b"SIP/2.0 200 OK"));
        assert!(matches!(
            ep.poll_registry_effect(),
            Some(RegistryEffect::Upsert(_))
        ));
        assert_eq!(
            ep.registry().contacts("op1")[0].dest,
            Destination::Stream(conn)
        );

        // The endpoint's timer covers the binding's expiry.
        let due = t0 + Duration::from_secs(120);
        let mut now = t0;
        for _ in 0..200 {
            let Some(at) = ep.poll_timeout() else { break };
            assert!(at <= due);
            now = at;
            ep.handle_timeout(now);
            drain(&mut ep);
        }
        assert_eq!(now, due);
        assert!(matches!(
            ep.poll_registry_effect(),
            Some(RegistryEffect::Remove { .. })
        ));
        assert!(ep.registry().contacts("op1").is_empty());
        assert_eq!(ep.poll_timeout(), None);

        // Without a wall-clock base the registrar cannot work.
        let mut bare = Endpoint::new(LayerConfig::default(), 1, registry()).unwrap();
        assert_eq!(status_of(&mut bare, &register("r9", 1, "")), Some(500));
    }

    #[test]
    fn invite_final_is_retransmitted_until_timer_h() {
        let mut ep = endpoint();
        let t0 = Instant::now();
        ep.handle_datagram(t0, src(), request("INVITE", "").as_bytes());
        assert_eq!(drain(&mut ep).len(), 1);
        let mut sent = 0;
        let mut now = t0;
        for _ in 0..100 {
            let Some(at) = ep.poll_timeout() else { break };
            now = at;
            ep.handle_timeout(now);
            sent += drain(&mut ep).len();
        }
        assert!(sent >= 5, "Timer G retransmissions (§17.2.1): {sent}");
        assert_eq!(ep.transactions(), 0, "Timer H ended it");
        assert!(now.duration_since(t0) >= Duration::from_secs(32));
    }
}
