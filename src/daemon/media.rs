//! The media edge: carries the sans-IO media cores ([`RelaySession`], [`PromptPlayer`],
//! [`CngDetector`]) onto real UDP sockets, one tokio task per call.
//!
//! ```text
//!   SIP core task ── MediaEdge (owned, sync methods) ──┐ commands: per-leg slots in a
//!                                                     │ Mutex + a doorbell mpsc(1)
//!        ▲                                            ▼
//!        │ bounded mpsc<MediaEvent>        call task (one per call): 4 sockets
//!        └─────────────────────────────── A RTP/RTCP, B RTP/RTCP; RelaySession,
//!                                         two PromptPlayers, CngDetector on leg A
//! ```
//!
//! **Ownership.** [`MediaEdge`] is owned by the SIP core task and its methods are synchronous
//! and never wait: the core chooses ports with its `PortAllocator`, calls [`MediaEdge::start`]
//! (which binds the four sockets at once, so a bind failure is an immediate `Err` with nothing
//! left bound), and releases the ports when [`MediaEvent::Stopped`] arrives: by then the task
//! has closed its sockets, so the ports can be bound again at once.
//!
//! **Commands never get lost and never block.** Each call has a small command record (one slot
//! per leg for remote, hold and play) behind a mutex, plus a doorbell channel of capacity one.
//! A command writes its slot (the latest write wins — `set_remote` twice is the second SDP,
//! `play` then `stop_play` is a stop) and rings; a full doorbell means a ring is already
//! pending. [`MediaEdge::stop`] drops the doorbell sender; the task sees the channel close. So
//! there is no queue to overflow and the SIP core never waits on a busy call. Commands for
//! calls the edge does not know are ignored.
//!
//! **Why one task per call.** Every call owns four sockets with their own ports, so the kernel
//! tells tokio exactly which sockets are readable and tokio wakes only that call's task: the
//! per-packet cost does not grow with the number of calls (see `examples/relay_load.rs`). A
//! fixed pool of tasks each owning many calls would have to either re-poll all of its calls on
//! every wake-up or rebuild per-call wakers — the work tokio already does for a task.
//!
//! **The packet path allocates nothing.** A task receives into one fixed buffer with
//! `poll_recv_from`, hands the bytes to [`RelaySession::handle_packet`] and sends the same
//! bytes with `try_send_to`; prompt packets are built into a second fixed buffer and fax
//! detection decodes into a fixed `[i16; 160]`. Deadlines (media timeout, the next prompt
//! packet, an event retry) share one `Sleep` allocated when the call starts, re-armed only when
//! a deadline moves earlier (a timer that fires early just finds nothing to do and re-arms).
//! The `relay_path_does_not_allocate` test counts allocations around hundreds of relayed
//! packets.
//!
//! **Events are never lost and never stall the relay.** `Timeout`, `FaxTone` and
//! `PlayFinished` are flags until `try_send` succeeds; if the SIP core's queue is full the task
//! keeps relaying and retries every [`EVENT_RETRY`]. Once the call is stopping, outstanding
//! events and then `Stopped` are sent with `send().await` (the relay is over by then).
//!
//! **Playing.** A prompt played to a leg replaces the RTP the other leg relays to it (RTCP still
//! flows). Each leg has one outgoing SSRC for the call, chosen at start; consecutive prompts
//! continue its sequence numbers, and its timestamps advance with wall time across gaps (RFC
//! 3550 §5.1), so the receiver sees one continuous stream. `PlayFinished` is emitted when a
//! non-repeating prompt's last frame has played out (one packet time after it was sent, so a
//! BYE sent on it does not clip the announcement); a prompt that is stopped or replaced emits
//! nothing.
//!
//! **Fax.** Leg A's accepted RTP with payload type 0 (PCMU) or 8 (PCMA) is decoded into a
//! fixed buffer and fed to a [`CngDetector`]; `FaxTone` is emitted once per call, and
//! detection stops then (the detector latches).
//!
//! **Robustness.** Every datagram goes through the relay's validation, the fax decoder reads
//! only through `rtp-rs`'s checked reader, and slices are taken with `get`. As a last line, a
//! panic inside a call's poll is caught: the call's sockets are closed and `Stopped` is still
//! emitted, so the core releases the ports instead of leaking them.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rtp_rs::RtpReader;
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Sleep;

use crate::media::g711::{Law, FRAME_SAMPLES};
use crate::media::player::{PromptPlayer, StreamParams, PACKET_BYTES, PACKET_INTERVAL};
use crate::media::ports::PortGate;
use crate::media::recorder::Recorder;
use crate::media::relay::{PacketKind, RelaySession, MAX_PACKET_BYTES};
use crate::media::tone::{CngDetector, CngStatus};

pub use crate::media::relay::{Leg, LegStats, RelayConfig, Remote};

/// The SIP core's name for a call; opaque to the media edge.
pub type CallKey = u64;

/// Receive buffer: one byte more than the largest datagram relayed, so an oversized datagram
/// arrives with a length the relay rejects instead of being silently truncated to a valid one.
const RECV_BUF: usize = MAX_PACKET_BYTES + 1;

/// Datagrams taken from one socket per poll before the task yields (and reschedules itself):
/// a flooded socket cannot starve the call's other sockets or its prompt schedule.
const SOCKET_BUDGET: usize = 32;

/// Overdue prompt packets sent per poll. A task woken very late (the host stalled) catches up
/// in slices of this many packets, yielding in between.
const PLAY_BURST: usize = 25;

/// How often a task retries an event the SIP core's full queue refused.
pub const EVENT_RETRY: Duration = Duration::from_millis(10);

/// Sends retried after a stale ICMP error (see `send_datagram`).
const SEND_ATTEMPTS: usize = 4;

/// Timer passes per poll: a deadline that is already due is handled and re-armed at most this
/// many times before the task yields.
const TIMER_PASSES: usize = 4;

/// Doorbell rings taken per poll (each applies all pending commands, so more than one or two
/// means the SIP core is ringing as fast as the task polls).
const COMMAND_PASSES: usize = 4;

/// Errors from [`MediaEdge::start`].
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The call key already has media running.
    #[error("call {0} already has media running")]
    AlreadyStarted(CallKey),
    /// An RTP port without room for its RTCP port above it.
    #[error("RTP port {0} has no RTCP port above it")]
    BadPort(u16),
    /// A socket could not be bound (port in use, address not local, descriptor limit).
    #[error("cannot bind media socket {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// `start` was called outside a tokio runtime.
    #[error("media edge used outside a tokio runtime")]
    NoRuntime,
}

/// What the call tasks report to the SIP core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// No RTP from either leg for the configured `media_timeout` and no leg on hold
    /// ([`RelaySession::media_timeout`]). Reported once; reported again only if media resumes
    /// and then stops again. The call keeps relaying until [`MediaEdge::stop`].
    Timeout { call: CallKey },
    /// A non-repeating prompt played to `leg` has ended: its last frame's 20 ms are over.
    PlayFinished { call: CallKey, leg: Leg },
    /// A T.30 CNG cadence was detected in leg A's audio. Once per call.
    FaxTone { call: CallKey },
    /// What leg A sent since [`MediaEdge::record`], when the call's media stops (just before
    /// `Stopped`): G.711 samples of `law`, 8 kHz.
    Recorded {
        call: CallKey,
        law: Law,
        samples: Vec<u8>,
    },
    /// The call's task has ended and its four sockets are closed: the ports may be reused.
    /// Counters are the relay's (played prompt packets are not included).
    Stopped {
        call: CallKey,
        a: LegStats,
        b: LegStats,
    },
}

/// The per-call media edge; see the module doc. Owned by the SIP core task.
///
/// Dropping it stops every call (each still reports `Stopped`).
#[derive(Debug)]
pub struct MediaEdge {
    bind_ip: IpAddr,
    events: mpsc::Sender<MediaEvent>,
    calls: HashMap<CallKey, CallHandle>,
    bound: BoundPairs,
}

/// RTP/RTCP pairs the call core was let hand out ([`PortGate`]): bound when the core asks,
/// so a pair another process holds is skipped before its port is put in any SDP; taken by
/// the call's relay when its media starts; closed when the core gives the pair back unused.
/// At most one entry per pair of the range.
#[derive(Debug, Clone)]
pub struct BoundPairs {
    ip: IpAddr,
    pairs: Arc<Mutex<HashMap<u16, [std::net::UdpSocket; 2]>>>,
}

impl BoundPairs {
    fn take(&self, port: u16) -> Option<[std::net::UdpSocket; 2]> {
        lock(&self.pairs).remove(&port)
    }
}

impl PortGate for BoundPairs {
    fn open(&mut self, port: u16) -> bool {
        let mut pairs = lock(&self.pairs);
        if pairs.contains_key(&port) {
            return true;
        }
        let Some(rtcp) = port.checked_add(1) else {
            return false;
        };
        match (bind_std(self.ip, port), bind_std(self.ip, rtcp)) {
            (Ok(rtp), Ok(rtcp)) => {
                pairs.insert(port, [rtp, rtcp]);
                true
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "RTP pair in use elsewhere; the next one is taken");
                false
            }
        }
    }

    fn close(&mut self, port: u16) {
        lock(&self.pairs).remove(&port);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug)]
struct CallHandle {
    commands: Arc<Mutex<Commands>>,
    /// Capacity one; dropping it tells the task to stop.
    doorbell: mpsc::Sender<()>,
}

/// Commands not yet taken by the task: the latest per slot wins.
#[derive(Debug, Default)]
struct Commands {
    remote: [Option<Remote>; 2],
    hold: [Option<bool>; 2],
    play: [Option<PlayCommand>; 2],
    /// Start recording leg A: codec and the most samples to keep.
    record: Option<(Law, usize)>,
    #[cfg(test)]
    crash: bool,
}

#[derive(Debug)]
enum PlayCommand {
    Start {
        frames: Arc<[[u8; FRAME_SAMPLES]]>,
        law: Law,
        repeat: bool,
    },
    Stop,
}

fn idx(leg: Leg) -> usize {
    match leg {
        Leg::A => 0,
        Leg::B => 1,
    }
}

const LEGS: [Leg; 2] = [Leg::A, Leg::B];

impl MediaEdge {
    /// An edge binding its sockets on `bind_ip` and reporting to `events` (bounded; see the
    /// module doc for what happens when it is full).
    pub fn new(bind_ip: IpAddr, events: mpsc::Sender<MediaEvent>) -> MediaEdge {
        MediaEdge {
            bind_ip,
            events,
            calls: HashMap::new(),
            bound: BoundPairs {
                ip: bind_ip,
                pairs: Arc::default(),
            },
        }
    }

    /// The gate for the call core's port allocator: pairs it hands out are bound here first.
    pub fn port_gate(&self) -> Box<dyn PortGate> {
        Box::new(self.bound.clone())
    }

    /// Calls with media running (started and not yet stopped).
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// True when no call has media running.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// True if `call` has media running.
    pub fn contains(&self, call: CallKey) -> bool {
        self.calls.contains_key(&call)
    }

    /// Binds RTP and RTCP for both legs (`a_port`, `a_port + 1`, `b_port`, `b_port + 1`) and
    /// spawns the call's task. On `Err` nothing is left bound and nothing is spawned. Must be
    /// called inside a tokio runtime.
    pub fn start(
        &mut self,
        call: CallKey,
        a_port: u16,
        b_port: u16,
        config: RelayConfig,
    ) -> Result<(), MediaError> {
        if self.calls.contains_key(&call) {
            return Err(MediaError::AlreadyStarted(call));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MediaError::NoRuntime)?;
        let sockets = {
            // from_std registers with the runtime's reactor.
            let _entered = runtime.enter();
            let [a_rtp, a_rtcp] = self.pair(a_port)?;
            let [b_rtp, b_rtcp] = self.pair(b_port)?;
            [a_rtp, a_rtcp, b_rtp, b_rtcp]
        };
        let commands = Arc::new(Mutex::new(Commands::default()));
        let (doorbell, rings) = mpsc::channel(1);
        let now = tokio::time::Instant::now();
        let task = CallTask {
            call,
            sockets,
            relay: RelaySession::new(now.into_std(), config),
            commands: commands.clone(),
            rings,
            events: self.events.clone(),
            players: [None, None],
            streams: [OutStream::random(), OutStream::random()],
            fax: FaxWatch::new(),
            recorder: None,
            record_armed: None,
            outbox: Outbox::default(),
            timer: Box::pin(tokio::time::sleep_until(now)),
            armed: None,
            timer_registered: false,
            timed_out: false,
            send_failures: 0,
            buf: [0; RECV_BUF],
            out: [0; PACKET_BYTES],
        };
        runtime.spawn(task.run());
        self.calls.insert(call, CallHandle { commands, doorbell });
        Ok(())
    }

    /// New SDP for a leg (re-INVITE, the seat's answer); see [`RelaySession::set_remote`].
    pub fn set_remote(&mut self, call: CallKey, leg: Leg, remote: Remote) {
        self.command(call, |c| c.remote[idx(leg)] = Some(remote));
    }

    /// A leg is (or is no longer) on hold: silence from it is not a media timeout.
    pub fn set_hold(&mut self, call: CallKey, leg: Leg, hold: bool) {
        self.command(call, |c| c.hold[idx(leg)] = Some(hold));
    }

    /// Plays G.711 `frames` (20 ms each, payload type by `law`) to `leg` from that leg's RTP
    /// socket, replacing the RTP the other leg relays to it; `repeat` loops (queue music).
    /// Replaces a prompt already playing to that leg. Emits `PlayFinished` when a
    /// non-repeating prompt ends: one packet time after its last packet was due, when the last
    /// frame has played out.
    pub fn play(
        &mut self,
        call: CallKey,
        leg: Leg,
        frames: Arc<[[u8; FRAME_SAMPLES]]>,
        law: Law,
        repeat: bool,
    ) {
        self.command(call, |c| {
            c.play[idx(leg)] = Some(PlayCommand::Start {
                frames,
                law,
                repeat,
            })
        });
    }

    /// Records what leg A sends (RTP of `law`'s payload type), at most `max_samples`; the
    /// recording comes back as [`MediaEvent::Recorded`] when the call stops.
    pub fn record(&mut self, call: CallKey, law: Law, max_samples: usize) {
        self.command(call, |c| c.record = Some((law, max_samples)));
    }

    /// Stops a prompt playing to `leg` (no `PlayFinished`); relaying to it resumes.
    pub fn stop_play(&mut self, call: CallKey, leg: Leg) {
        self.command(call, |c| c.play[idx(leg)] = Some(PlayCommand::Stop));
    }

    /// Ends the call's task. Its sockets are closed before [`MediaEvent::Stopped`] is emitted.
    /// Unknown calls are ignored.
    pub fn stop(&mut self, call: CallKey) {
        // Dropping the handle drops the doorbell sender: the task sees the channel close.
        self.calls.remove(&call);
    }

    #[cfg(test)]
    fn crash(&mut self, call: CallKey) {
        self.command(call, |c| c.crash = true);
    }

    fn command(&mut self, call: CallKey, f: impl FnOnce(&mut Commands)) {
        let Some(handle) = self.calls.get(&call) else {
            return;
        };
        {
            let mut commands = handle
                .commands
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut commands);
        }
        // Full: a ring is already pending and the task will read the slots after taking it.
        let _ = handle.doorbell.try_send(());
    }
}

impl MediaEdge {
    /// RTP and RTCP of `port`: the sockets the gate bound for it, else bound now.
    fn pair(&self, port: u16) -> Result<[UdpSocket; 2], MediaError> {
        let rtcp = port.checked_add(1).ok_or(MediaError::BadPort(port))?;
        let [rtp_std, rtcp_std] = match self.bound.take(port) {
            Some(pair) => pair,
            None => [
                bind_std(self.bind_ip, port).map_err(bind_error(self.bind_ip, port))?,
                bind_std(self.bind_ip, rtcp).map_err(bind_error(self.bind_ip, rtcp))?,
            ],
        };
        Ok([
            adopt(rtp_std).map_err(bind_error(self.bind_ip, port))?,
            adopt(rtcp_std).map_err(bind_error(self.bind_ip, rtcp))?,
        ])
    }
}

fn bind_error(ip: IpAddr, port: u16) -> impl FnOnce(std::io::Error) -> MediaError {
    move |source| MediaError::Bind {
        addr: SocketAddr::new(ip, port),
        source,
    }
}

fn bind_std(ip: IpAddr, port: u16) -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, port))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A bound std socket into the runtime's reactor (inside `Handle::enter`).
fn adopt(socket: std::net::UdpSocket) -> std::io::Result<UdpSocket> {
    UdpSocket::from_std(socket)
}

/// One leg's outgoing prompt stream: kept across prompts so they form one RTP stream.
#[derive(Debug, Clone, Copy)]
struct OutStream {
    ssrc: u32,
    next_seq: u16,
    next_ts: u32,
    /// When the packet carrying `next_ts` was (or would have been) due; `None` before the
    /// first prompt.
    next_due: Option<Instant>,
}

impl OutStream {
    fn random() -> Self {
        // RFC 3550 §5.1: random SSRC, initial sequence number and timestamp.
        Self {
            ssrc: rand::random(),
            next_seq: rand::random(),
            next_ts: rand::random(),
            next_due: None,
        }
    }

    /// Parameters for a prompt starting at `now`: the timestamp advances with the time elapsed
    /// since the previous prompt's schedule ended.
    fn params(&self, law: Law, now: Instant) -> StreamParams {
        let gap = self
            .next_due
            .map_or(Duration::ZERO, |due| now.saturating_duration_since(due));
        let gap_samples = (gap.as_micros() * 8 / 1000) as u32;
        StreamParams {
            law,
            ssrc: self.ssrc,
            first_seq: self.next_seq,
            first_timestamp: self.next_ts.wrapping_add(gap_samples),
        }
    }
}

#[derive(Debug)]
struct Playing {
    player: PromptPlayer,
    params: StreamParams,
    start: Instant,
}

impl Playing {
    /// The stream position after the packets sent so far.
    fn end(&self) -> OutStream {
        let sent = self.player.packets_sent();
        OutStream {
            ssrc: self.params.ssrc,
            next_seq: self.params.first_seq.wrapping_add(sent as u16),
            next_ts: self
                .params
                .first_timestamp
                .wrapping_add((sent as u32).wrapping_mul(FRAME_SAMPLES as u32)),
            next_due: self.start.checked_add(
                PACKET_INTERVAL.saturating_mul(u32::try_from(sent).unwrap_or(u32::MAX)),
            ),
        }
    }
}

/// CNG detection on leg A's audio, decoding into a fixed buffer.
#[derive(Debug)]
struct FaxWatch {
    detector: CngDetector,
    pcm: [i16; FRAME_SAMPLES],
    detected: bool,
}

impl FaxWatch {
    fn new() -> Self {
        Self {
            detector: CngDetector::new(),
            pcm: [0; FRAME_SAMPLES],
            detected: false,
        }
    }

    /// Feeds one RTP packet; true the first time a CNG cadence is complete.
    fn feed(&mut self, packet: &[u8]) -> bool {
        if self.detected {
            return false;
        }
        let Ok(rtp) = RtpReader::new(packet) else {
            return false;
        };
        let law = match rtp.payload_type() {
            0 => Law::Pcmu,
            8 => Law::Pcma,
            _ => return false,
        };
        for chunk in rtp.payload().chunks(FRAME_SAMPLES) {
            law.decode_into(chunk, &mut self.pcm);
            let pcm = self.pcm.get(..chunk.len()).unwrap_or_default();
            if self.detector.feed(pcm) == CngStatus::Detected {
                self.detected = true;
                return true;
            }
        }
        false
    }
}

/// Events waiting for room in the SIP core's queue.
#[derive(Debug, Default)]
struct Outbox {
    fax: bool,
    timeout: bool,
    play_finished: [bool; 2],
    /// When to try again after the queue was full.
    retry_at: Option<Instant>,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        !(self.fax || self.timeout || self.play_finished.iter().any(|&f| f))
    }

    /// The next event to send and the flag to clear once it is sent.
    fn next(&mut self, call: CallKey) -> Option<(MediaEvent, &mut bool)> {
        if self.fax {
            return Some((MediaEvent::FaxTone { call }, &mut self.fax));
        }
        if self.timeout {
            return Some((MediaEvent::Timeout { call }, &mut self.timeout));
        }
        for leg in LEGS {
            let i = idx(leg);
            if self.play_finished[i] {
                return Some((
                    MediaEvent::PlayFinished { call, leg },
                    &mut self.play_finished[i],
                ));
            }
        }
        None
    }
}

/// Why a call task's loop ended.
enum Exit {
    Stopped,
    Panicked,
}

/// Socket order in [`CallTask::sockets`].
fn socket_index(leg: Leg, kind: PacketKind) -> usize {
    idx(leg) * 2
        + match kind {
            PacketKind::Rtp => 0,
            PacketKind::Rtcp => 1,
        }
}

const SOCKETS: [(Leg, PacketKind); 4] = [
    (Leg::A, PacketKind::Rtp),
    (Leg::A, PacketKind::Rtcp),
    (Leg::B, PacketKind::Rtp),
    (Leg::B, PacketKind::Rtcp),
];

struct CallTask {
    call: CallKey,
    /// A RTP, A RTCP, B RTP, B RTCP (see [`socket_index`]).
    sockets: [UdpSocket; 4],
    relay: RelaySession,
    commands: Arc<Mutex<Commands>>,
    rings: mpsc::Receiver<()>,
    events: mpsc::Sender<MediaEvent>,
    players: [Option<Playing>; 2],
    streams: [OutStream; 2],
    fax: FaxWatch,
    /// Message taking: leg A's audio. Armed with the preferred law and the length limit; the
    /// recorder is made on the first G.711 packet, in that packet's law (a caller offered both
    /// laws may send either).
    recorder: Option<Recorder>,
    record_armed: Option<(Law, usize)>,
    outbox: Outbox,
    /// The one timer of the call, allocated at start and re-armed in place.
    timer: Pin<Box<Sleep>>,
    /// The deadline `timer` is armed for; `None` when it is not armed (or already fired).
    armed: Option<Instant>,
    /// `timer` has been polled since its last reset, so it will wake the task.
    timer_registered: bool,
    /// A `Timeout` was reported and media has not resumed since.
    timed_out: bool,
    send_failures: u64,
    buf: [u8; RECV_BUF],
    out: [u8; PACKET_BYTES],
}

impl CallTask {
    async fn run(mut self) {
        // tokio learns that a new socket is writable on the reactor's next turn; until then
        // `try_send_to` reports WouldBlock. Wait for it so a prompt started right away does
        // not lose its first packets.
        for sock in &self.sockets {
            let _ = sock.writable().await;
        }
        let exit = std::future::poll_fn(|cx| {
            catch_unwind(AssertUnwindSafe(|| self.poll_step(cx)))
                .unwrap_or(Poll::Ready(Exit::Panicked))
        })
        .await;
        let CallTask {
            call,
            sockets,
            relay,
            events,
            mut outbox,
            send_failures,
            recorder,
            record_armed,
            ..
        } = self;
        // Ports are free again before the core hears about it.
        drop(sockets);
        match exit {
            Exit::Panicked => tracing::error!(call, "media task panicked; call media stopped"),
            Exit::Stopped => {
                while let Some((event, flag)) = outbox.next(call) {
                    *flag = false;
                    if events.send(event).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Armed but nothing G.711 came: an empty recording (the caller said nothing).
        let recorder = recorder.or(record_armed.map(|(law, max)| Recorder::new(law, max)));
        if let Some(r) = recorder {
            let law = r.law();
            let _ = events
                .send(MediaEvent::Recorded {
                    call,
                    law,
                    samples: r.into_samples(),
                })
                .await;
        }
        let (a, b) = (*relay.stats(Leg::A), *relay.stats(Leg::B));
        tracing::debug!(call, ?a, ?b, send_failures, "call media stopped");
        let _ = events.send(MediaEvent::Stopped { call, a, b }).await;
    }

    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Exit> {
        // Commands: take the ring first, then the slots (a command written after the take
        // rings again).
        let mut more = true;
        for _ in 0..COMMAND_PASSES {
            match self.rings.poll_recv(cx) {
                Poll::Ready(Some(())) => self.apply_commands(),
                Poll::Ready(None) => return Poll::Ready(Exit::Stopped),
                Poll::Pending => {
                    more = false;
                    break;
                }
            }
        }
        let now = tokio::time::Instant::now().into_std();
        for (i, (leg, kind)) in SOCKETS.into_iter().enumerate() {
            more |= self.drain_socket(cx, i, leg, kind, now);
        }
        for _ in 0..TIMER_PASSES {
            let now = tokio::time::Instant::now().into_std();
            more |= self.play(now);
            self.check_timeout(now);
            self.flush_events(now);
            if !self.arm_timer(cx) {
                break;
            }
        }
        if more {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Applies the pending commands.
    fn apply_commands(&mut self) {
        let taken = std::mem::take(
            &mut *self
                .commands
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        #[cfg(test)]
        if taken.crash {
            panic!("test-only crash of call {}", self.call);
        }
        let now = tokio::time::Instant::now().into_std();
        if let Some(armed) = taken.record {
            self.recorder = None;
            self.record_armed = Some(armed);
        }
        for leg in LEGS {
            let i = idx(leg);
            if let Some(remote) = taken.remote[i] {
                self.relay.set_remote(now, leg, remote);
            }
            if let Some(hold) = taken.hold[i] {
                self.relay.set_hold(leg, hold);
            }
            match &taken.play[i] {
                None => {}
                Some(PlayCommand::Stop) => self.end_play(leg),
                Some(PlayCommand::Start {
                    frames,
                    law,
                    repeat,
                }) => {
                    self.end_play(leg);
                    let params = self.streams[i].params(*law, now);
                    self.players[i] = Some(Playing {
                        player: PromptPlayer::new(frames.clone(), params, now, *repeat),
                        params,
                        start: now,
                    });
                }
            }
        }
        // The timer may now be due earlier (a prompt started, hold ended).
        self.armed = None;
    }

    fn end_play(&mut self, leg: Leg) {
        if let Some(playing) = self.players[idx(leg)].take() {
            self.streams[idx(leg)] = playing.end();
        }
    }

    /// Relays what is waiting on one socket; true if the budget ran out with more waiting.
    fn drain_socket(
        &mut self,
        cx: &mut Context<'_>,
        i: usize,
        leg: Leg,
        kind: PacketKind,
        now: Instant,
    ) -> bool {
        for _ in 0..SOCKET_BUDGET {
            let Some(sock) = self.sockets.get(i) else {
                return false;
            };
            let mut rb = ReadBuf::new(&mut self.buf);
            let (src, len) = match sock.poll_recv_from(cx, &mut rb) {
                Poll::Pending => return false,
                Poll::Ready(Ok(src)) => (src, rb.filled().len()),
                // An ICMP error about an earlier send; it says nothing about this socket.
                Poll::Ready(Err(_)) => continue,
            };
            self.on_datagram(now, leg, kind, src, len);
        }
        true
    }

    fn on_datagram(
        &mut self,
        now: Instant,
        leg: Leg,
        kind: PacketKind,
        src: SocketAddr,
        len: usize,
    ) {
        let data = self.buf.get(..len).unwrap_or_default();
        let before = self.relay.stats(leg).packets_in;
        let forward = self.relay.handle_packet(now, leg, kind, src, data);
        let accepted = self.relay.stats(leg).packets_in != before;
        if accepted && leg == Leg::A && kind == PacketKind::Rtp {
            if self.fax.feed(data) {
                self.outbox.fax = true;
            }
            if let Some((_, max)) = self.record_armed {
                let pt = RtpReader::new(data).ok().map(|r| r.payload_type());
                if let Some(law) = [Law::Pcmu, Law::Pcma]
                    .into_iter()
                    .find(|l| Some(l.payload_type()) == pt)
                {
                    self.recorder = Some(Recorder::new(law, max));
                    self.record_armed = None;
                }
            }
            if let Some(r) = self.recorder.as_mut() {
                r.push_rtp(data);
            }
        }
        let Some(f) = forward else { return };
        if kind == PacketKind::Rtp && self.players[idx(f.leg_out)].is_some() {
            // A prompt is playing to that leg and replaces the relayed audio.
            return;
        }
        let (Some(sock), Some(bytes)) = (
            self.sockets.get(socket_index(f.leg_out, kind)),
            data.get(..f.len),
        ) else {
            return;
        };
        if !send_datagram(sock, bytes, f.dst) {
            self.send_failures += 1;
        }
    }

    /// Sends the prompt packets due at `now`; true if a burst was cut short.
    fn play(&mut self, now: Instant) -> bool {
        let mut more = false;
        for leg in LEGS {
            let i = idx(leg);
            let Some(playing) = self.players[i].as_mut() else {
                continue;
            };
            let dst = self
                .relay
                .rtp_destination(leg)
                .filter(|d| !d.ip().is_unspecified() && d.port() != 0);
            let sock = self.sockets.get(socket_index(leg, PacketKind::Rtp));
            let mut sent = 0;
            while let Ok(Some(len)) = playing.player.poll_packet(now, &mut self.out) {
                if let (Some(dst), Some(sock), Some(bytes)) = (dst, sock, self.out.get(..len)) {
                    if !send_datagram(sock, bytes, dst) {
                        self.send_failures += 1;
                    }
                }
                sent += 1;
                if sent == PLAY_BURST {
                    more = true;
                    break;
                }
            }
            // Finished once the last frame has had its 20 ms, not when it was sent: a BYE sent
            // on PlayFinished must not clip the end of an announcement. Until then the leg
            // still hears the prompt, not the relay.
            if playing.player.is_finished() && playing.end().next_due.is_none_or(|end| now >= end) {
                self.streams[i] = playing.end();
                self.players[i] = None;
                self.outbox.play_finished[i] = true;
            }
        }
        more
    }

    fn check_timeout(&mut self, now: Instant) {
        if self.relay.media_timeout(now) {
            if !self.timed_out {
                self.timed_out = true;
                self.outbox.timeout = true;
            }
        } else {
            self.timed_out = false;
        }
    }

    fn flush_events(&mut self, now: Instant) {
        if self.outbox.retry_at.is_some_and(|t| now < t) {
            return;
        }
        self.outbox.retry_at = None;
        while let Some((event, flag)) = self.outbox.next(self.call) {
            match self.events.try_send(event) {
                Ok(()) => *flag = false,
                Err(TrySendError::Full(_)) => {
                    self.outbox.retry_at = now.checked_add(EVENT_RETRY);
                    return;
                }
                // Nobody listens any more (shutdown): nothing to deliver.
                Err(TrySendError::Closed(_)) => *flag = false,
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let timeout = (!self.timed_out)
            .then(|| self.relay.poll_timeout())
            .flatten();
        let players = self
            .players
            .iter()
            .flatten()
            .filter_map(|p| p.player.poll_timeout().or(p.end().next_due));
        let retry = (!self.outbox.is_empty())
            .then_some(self.outbox.retry_at)
            .flatten();
        timeout.into_iter().chain(players).chain(retry).min()
    }

    /// Arms the timer for the next deadline if that is earlier than what it is armed for, and
    /// polls it. True if it has already fired (the caller handles the deadline and re-arms).
    fn arm_timer(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(deadline) = self.next_deadline() {
            if self.armed.is_none_or(|armed| deadline < armed) {
                self.timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(deadline));
                self.armed = Some(deadline);
                self.timer_registered = false;
            }
        }
        if self.armed.is_none() {
            return false;
        }
        let fired = if self.timer_registered {
            // The task's waker is registered with the timer since the last reset; checking is
            // enough (and cheaper than polling on every packet).
            self.timer.is_elapsed()
        } else {
            self.timer_registered = true;
            self.timer.as_mut().poll(cx).is_ready()
        };
        if fired {
            self.armed = None;
        }
        fired
    }
}

/// Sends without waiting; false if the datagram was not sent. A full socket buffer loses the
/// datagram (UDP would anyway). A send can fail with the ICMP error of an *earlier* datagram
/// (ECONNREFUSED from a peer that went away); that says nothing about this one, so it is
/// retried a bounded number of times.
fn send_datagram(sock: &UdpSocket, bytes: &[u8], dst: SocketAddr) -> bool {
    for _ in 0..SEND_ATTEMPTS {
        match sock.try_send_to(bytes, dst) {
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::relay::alloc_count;
    use rtp_rs::{RtpPacketBuilder, Seq};
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::time::timeout;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    /// Test ports lie above Linux's default ephemeral range (32768–60999), so sockets bound to
    /// port 0 (the test peers', other processes') do not take them; each test process starts
    /// at its own offset, and a port that is taken anyway is skipped.
    const TEST_PORT_FIRST: u32 = 61_000;
    const TEST_PORT_SPAN: u32 = 4_000;
    static NEXT_PORT: AtomicU32 = AtomicU32::new(0);
    const WAIT: Duration = Duration::from_secs(3);

    fn candidate_ports() -> (u16, u16) {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let off = (std::process::id()
            .wrapping_mul(4)
            .wrapping_add(n.wrapping_mul(4)))
            % TEST_PORT_SPAN;
        let a = TEST_PORT_FIRST + (off & !3);
        (a as u16, (a + 2) as u16)
    }

    fn start_call(edge: &mut MediaEdge, call: CallKey, config: RelayConfig) -> (u16, u16) {
        for _ in 0..200 {
            let (a, b) = candidate_ports();
            match edge.start(call, a, b, config) {
                Ok(()) => return (a, b),
                Err(MediaError::Bind { .. }) => continue,
                Err(e) => panic!("start: {e}"),
            }
        }
        panic!("no free test ports");
    }

    fn local(port: u16) -> SocketAddr {
        SocketAddr::new(LOCAL, port)
    }

    /// A test endpoint: RTP and RTCP sockets on ephemeral loopback ports.
    struct Peer {
        rtp: UdpSocket,
        rtcp: UdpSocket,
    }

    impl Peer {
        async fn new() -> Peer {
            Peer {
                rtp: UdpSocket::bind(local(0)).await.unwrap(),
                rtcp: UdpSocket::bind(local(0)).await.unwrap(),
            }
        }
        fn rtp_addr(&self) -> SocketAddr {
            self.rtp.local_addr().unwrap()
        }
        fn rtcp_addr(&self) -> SocketAddr {
            self.rtcp.local_addr().unwrap()
        }
        /// SDP with an explicit a=rtcp.
        fn remote(&self) -> Remote {
            Remote {
                rtp: Some(self.rtp_addr()),
                rtcp: Some(self.rtcp_addr()),
            }
        }
    }

    fn rtp(seq: u16, ssrc: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
        RtpPacketBuilder::new()
            .payload_type(pt)
            .sequence(Seq::from(seq))
            .ssrc(ssrc)
            .timestamp(u32::from(seq).wrapping_mul(160))
            .payload(payload)
            .build()
            .unwrap()
    }

    const RTCP_RR: [u8; 8] = [0x80, 201, 0, 1, 0, 0, 0, 1];

    async fn recv(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = [0u8; 2048];
        let (n, src) = timeout(WAIT, sock.recv_from(&mut buf))
            .await
            .expect("datagram expected")
            .unwrap();
        (buf[..n].to_vec(), src)
    }

    async fn silent(sock: &UdpSocket, for_: Duration) -> bool {
        let mut buf = [0u8; 2048];
        timeout(for_, sock.recv_from(&mut buf)).await.is_err()
    }

    async fn event(rx: &mut mpsc::Receiver<MediaEvent>) -> MediaEvent {
        timeout(WAIT, rx.recv())
            .await
            .expect("media event expected")
            .expect("events channel open")
    }

    async fn stopped(rx: &mut mpsc::Receiver<MediaEvent>, call: CallKey) -> (LegStats, LegStats) {
        loop {
            if let MediaEvent::Stopped { call: c, a, b } = event(rx).await {
                assert_eq!(c, call);
                return (a, b);
            }
        }
    }

    fn edge(capacity: usize) -> (MediaEdge, mpsc::Receiver<MediaEvent>) {
        let (tx, rx) = mpsc::channel(capacity);
        (MediaEdge::new(LOCAL, tx), rx)
    }

    fn config(a: Remote, b: Remote) -> RelayConfig {
        RelayConfig::new(a, b)
    }

    #[tokio::test]
    async fn relays_rtp_and_rtcp_both_ways_and_latches_to_the_real_source() {
        let (mut edge, mut events) = edge(16);
        // Leg A's SDP names one address, its packets come from another (NAT).
        let a_sdp = Peer::new().await;
        let a_real = Peer::new().await;
        let b = Peer::new().await;
        let cfg = config(
            Remote {
                rtp: Some(a_sdp.rtp_addr()),
                rtcp: None,
            },
            b.remote(),
        );
        let (a_port, b_port) = start_call(&mut edge, 1, cfg);
        let (relay_a, relay_b) = (local(a_port), local(b_port));

        // B speaks first: it goes to A's SDP address, from our A socket.
        let p1 = rtp(1, 0xB, 0, &[0xAA; 160]);
        b.rtp.send_to(&p1, relay_b).await.unwrap();
        assert_eq!(recv(&a_sdp.rtp).await, (p1, relay_a));
        // A's real source: relayed to B from our B socket, and latched.
        let p2 = rtp(100, 0xA, 0, &[0x55; 160]);
        a_real.rtp.send_to(&p2, relay_a).await.unwrap();
        assert_eq!(recv(&b.rtp).await, (p2, relay_b));
        let p3 = rtp(2, 0xB, 0, &[0xAB; 160]);
        b.rtp.send_to(&p3, relay_b).await.unwrap();
        assert_eq!(recv(&a_real.rtp).await, (p3, relay_a));
        assert!(silent(&a_sdp.rtp, Duration::from_millis(100)).await);

        // RTCP: A's goes to B's a=rtcp; B's goes to where A's RTCP came from.
        a_real
            .rtcp
            .send_to(&RTCP_RR, local(a_port + 1))
            .await
            .unwrap();
        assert_eq!(recv(&b.rtcp).await, (RTCP_RR.to_vec(), local(b_port + 1)));
        let sr = [0x80, 200, 0, 1, 0, 0, 0, 2];
        b.rtcp.send_to(&sr, local(b_port + 1)).await.unwrap();
        assert_eq!(recv(&a_real.rtcp).await, (sr.to_vec(), local(a_port + 1)));

        edge.stop(1);
        let (a, b) = stopped(&mut events, 1).await;
        assert_eq!((a.packets_in, a.packets_out, a.dropped), (2, 3, 0));
        assert_eq!((b.packets_in, b.packets_out, b.dropped), (3, 2, 0));
        assert_eq!(a.bytes_in, 172 + 8);
    }

    #[tokio::test]
    async fn seat_answer_sets_the_destination() {
        let (mut edge, mut events) = edge(16);
        let a = Peer::new().await;
        let b = Peer::new().await;
        let (a_port, _) = start_call(&mut edge, 2, config(a.remote(), Remote::default()));
        let p = rtp(1, 1, 0, &[0; 160]);
        a.rtp.send_to(&p, local(a_port)).await.unwrap();
        assert!(silent(&b.rtp, Duration::from_millis(100)).await);
        edge.set_remote(2, Leg::B, b.remote());
        let p = rtp(2, 1, 0, &[0; 160]);
        // The command and the packet race; send until it arrives (bounded).
        let mut got = None;
        for _ in 0..20 {
            a.rtp.send_to(&p, local(a_port)).await.unwrap();
            let mut buf = [0u8; 256];
            if let Ok(r) = timeout(Duration::from_millis(50), b.rtp.recv_from(&mut buf)).await {
                got = Some(buf[..r.unwrap().0].to_vec());
                break;
            }
        }
        assert_eq!(got, Some(p));
        edge.stop(2);
        let (a_stats, _) = stopped(&mut events, 2).await;
        assert!(a_stats.dropped >= 1, "first packet had nowhere to go");
    }

    #[tokio::test]
    async fn timeout_is_reported_once_per_silence_and_not_on_hold() {
        let (mut edge, mut events) = edge(16);
        let a = Peer::new().await;
        let b = Peer::new().await;
        let mut cfg = config(a.remote(), b.remote());
        cfg.media_timeout = Duration::from_millis(300);
        let (a_port, _) = start_call(&mut edge, 3, cfg);
        a.rtp
            .send_to(&rtp(1, 1, 0, &[0; 160]), local(a_port))
            .await
            .unwrap();
        let sent = Instant::now();
        assert_eq!(event(&mut events).await, MediaEvent::Timeout { call: 3 });
        let waited = sent.elapsed();
        assert!(
            waited >= Duration::from_millis(290) && waited < Duration::from_millis(1500),
            "{waited:?}"
        );
        // Reported once while the silence lasts.
        assert!(timeout(Duration::from_millis(400), events.recv())
            .await
            .is_err());
        // Media resumes, then stops again: reported again.
        a.rtp
            .send_to(&rtp(2, 1, 0, &[0; 160]), local(a_port))
            .await
            .unwrap();
        assert_eq!(event(&mut events).await, MediaEvent::Timeout { call: 3 });
        // On hold, silence is legitimate.
        edge.set_hold(3, Leg::B, true);
        a.rtp
            .send_to(&rtp(3, 1, 0, &[0; 160]), local(a_port))
            .await
            .unwrap();
        assert!(timeout(Duration::from_millis(700), events.recv())
            .await
            .is_err());
        edge.set_hold(3, Leg::B, false);
        assert_eq!(event(&mut events).await, MediaEvent::Timeout { call: 3 });
        edge.stop(3);
        stopped(&mut events, 3).await;
    }

    struct Received {
        seq: u16,
        ts: u32,
        ssrc: u32,
        pt: u8,
        mark: bool,
        first_byte: u8,
        at: Instant,
    }

    async fn recv_rtp(sock: &UdpSocket) -> Received {
        let (p, _) = recv(sock).await;
        let r = RtpReader::new(&p).unwrap();
        Received {
            seq: r.sequence_number().into(),
            ts: r.timestamp(),
            ssrc: r.ssrc(),
            pt: r.payload_type(),
            mark: r.mark(),
            first_byte: r.payload()[0],
            at: Instant::now(),
        }
    }

    #[tokio::test]
    async fn plays_prompts_on_schedule_as_one_continuous_stream() {
        let (mut edge, mut events) = edge(16);
        let a = Peer::new().await;
        let b = Peer::new().await;
        let (a_port, _) = start_call(&mut edge, 4, config(a.remote(), b.remote()));
        let frames: Arc<[[u8; FRAME_SAMPLES]]> = (0..25u8).map(|i| [i; FRAME_SAMPLES]).collect();
        edge.play(4, Leg::B, frames.clone(), Law::Pcmu, false);
        let played = Instant::now();

        let mut got = Vec::new();
        for i in 0..25u16 {
            got.push(recv_rtp(&b.rtp).await);
            if i == 10 {
                // Leg A's audio is replaced while the prompt plays to B.
                a.rtp
                    .send_to(&rtp(9, 0xA, 0, &[0x42; 160]), local(a_port))
                    .await
                    .unwrap();
            }
        }
        assert_eq!(
            event(&mut events).await,
            MediaEvent::PlayFinished {
                call: 4,
                leg: Leg::B
            }
        );
        // 25 frames of 20 ms have played out by then.
        let finished = played.elapsed();
        assert!(finished >= Duration::from_millis(500), "{finished:?}");
        assert!(finished < Duration::from_millis(1500), "{finished:?}");
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.seq, got[0].seq.wrapping_add(i as u16));
            assert_eq!(r.ts, got[0].ts.wrapping_add(160 * i as u32));
            assert_eq!(
                (r.ssrc, r.pt, r.mark, r.first_byte),
                (got[0].ssrc, 0, i == 0, i as u8)
            );
        }
        let span = got[24].at - got[0].at;
        assert!(
            span >= Duration::from_millis(440) && span <= Duration::from_millis(1200),
            "24 intervals of 20 ms took {span:?}"
        );
        // Relaying to B resumes after the prompt.
        let p = rtp(10, 0xA, 0, &[0x43; 160]);
        a.rtp.send_to(&p, local(a_port)).await.unwrap();
        assert_eq!(recv(&b.rtp).await.0, p);

        // A second prompt (looping, PCMA) continues the stream: same SSRC, next sequence
        // number, timestamp advanced by at least the wall time in between.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let gap_from = got[24].at;
        edge.play(4, Leg::B, frames, Law::Pcma, true);
        let first = recv_rtp(&b.rtp).await;
        let gap_ms = (first.at - gap_from).as_millis() as u32;
        assert_eq!(
            (first.ssrc, first.seq, first.pt, first.mark),
            (got[0].ssrc, got[24].seq.wrapping_add(1), 8, true)
        );
        let ts_gap = first.ts.wrapping_sub(got[24].ts);
        assert!(
            ts_gap >= 160 && ts_gap.abs_diff(gap_ms * 8) <= 8 * 100,
            "ts gap {ts_gap} for {gap_ms} ms"
        );
        // Looping past the end of the frames.
        let mut last = first;
        for _ in 0..30 {
            let r = recv_rtp(&b.rtp).await;
            assert_eq!(r.seq, last.seq.wrapping_add(1));
            assert_eq!(r.ts, last.ts.wrapping_add(160));
            last = r;
        }
        edge.stop_play(4, Leg::B);
        // Drain what was in flight, then nothing more (and no PlayFinished for a stopped loop).
        while !silent(&b.rtp, Duration::from_millis(100)).await {}
        edge.stop(4);
        let (_, b_stats) = stopped(&mut events, 4).await;
        assert_eq!(
            b_stats.packets_out, 2,
            "two relayed packets counted, one suppressed"
        );
    }

    /// T.30 CNG: 500 ms of 1100 Hz then quiet, as 20 ms PCMU payloads.
    fn cng_frames() -> Vec<[u8; FRAME_SAMPLES]> {
        (0..60)
            .map(|f| {
                let mut frame = [Law::Pcmu.silence(); FRAME_SAMPLES];
                if f < 25 {
                    for (i, code) in frame.iter_mut().enumerate() {
                        let t = (f * FRAME_SAMPLES + i) as f64 / 8000.0;
                        let s = 4000.0 * (2.0 * std::f64::consts::PI * 1100.0 * t).sin();
                        *code = Law::Pcmu.encode(s as i16);
                    }
                }
                frame
            })
            .collect()
    }

    #[tokio::test]
    async fn fax_tone_from_leg_a_is_reported_once() {
        let (mut edge, mut events) = edge(16);
        let a = Peer::new().await;
        let b = Peer::new().await;
        let (a_port, b_port) = start_call(&mut edge, 5, config(a.remote(), b.remote()));
        let frames = cng_frames();
        // The seat sending CNG is not a fax call.
        for (i, f) in frames.iter().enumerate() {
            b.rtp
                .send_to(&rtp(i as u16, 0xB, 0, f), local(b_port))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(timeout(Duration::from_millis(200), events.recv())
            .await
            .is_err());
        for _ in 0..2 {
            for (i, f) in frames.iter().enumerate() {
                a.rtp
                    .send_to(&rtp(i as u16, 0xA, 0, f), local(a_port))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        assert_eq!(event(&mut events).await, MediaEvent::FaxTone { call: 5 });
        assert!(timeout(Duration::from_millis(200), events.recv())
            .await
            .is_err());
        edge.stop(5);
        let (a_stats, _) = stopped(&mut events, 5).await;
        assert_eq!(a_stats.packets_out, 60, "B's packets were relayed to A");
    }

    #[tokio::test]
    async fn garbage_is_dropped_and_the_call_goes_on() {
        let (mut edge, mut events) = edge(16);
        let a = Peer::new().await;
        let b = Peer::new().await;
        let (a_port, b_port) = start_call(&mut edge, 6, config(a.remote(), b.remote()));
        let mut rng = 0x9E37_79B9u32;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            rng
        };
        let mut garbage: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x80],
            vec![0x80; 11],
            vec![0x8F, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], // 15 CSRCs announced, none present
            vec![0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0xFF, 0xFF], // huge extension
            {
                let mut p = rtp(1, 1, 0, &[0; 20]);
                p[0] |= 0x20; // padding flag with a pad length beyond the packet
                *p.last_mut().unwrap() = 0xFF;
                p
            },
            vec![0xFF; 2000],
            vec![0x80, 201, 0xFF, 0xFF, 0, 0, 0, 0],
        ];
        for _ in 0..200 {
            let len = (next() % 300) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(b0) = p.first_mut() {
                *b0 = (*b0 & 0x3F) | 0x80; // mostly version 2, to reach deeper parsing
            }
            garbage.push(p);
        }
        for g in &garbage {
            for port in [a_port, a_port + 1, b_port, b_port + 1] {
                let _ = a.rtp.send_to(g, local(port)).await;
            }
        }
        // Still relaying (the garbage from A's address may have been relayed where valid).
        let p = rtp(7, 7, 0, &[1; 160]);
        let mut seen = false;
        for _ in 0..(garbage.len() * 2 + 1) {
            b.rtp.send_to(&p, local(b_port)).await.unwrap();
            let mut buf = [0u8; 2048];
            match timeout(Duration::from_millis(200), a.rtp.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) if buf[..n] == p[..] => {
                    seen = true;
                    break;
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        assert!(seen, "relay still works after garbage");
        edge.stop(6);
        let (a_stats, b_stats) = stopped(&mut events, 6).await;
        assert!(
            a_stats.dropped + b_stats.dropped > 100,
            "{a_stats:?} {b_stats:?}"
        );
    }

    #[test]
    fn fax_decoder_survives_any_bytes() {
        let mut w = FaxWatch::new();
        let mut rng = 12345u32;
        for len in 0..400usize {
            let bytes: Vec<u8> = (0..len)
                .map(|i| {
                    rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    if i == 0 {
                        0x80 | (rng >> 24) as u8 & 0x3F
                    } else if i == 1 {
                        [0u8, 8, 0x80, 0x88][(rng >> 30) as usize]
                    } else {
                        (rng >> 16) as u8
                    }
                })
                .collect();
            w.feed(&bytes);
        }
        // Oversized payloads (ptime > 20 ms) are fed in 160-sample pieces.
        assert!(!w.feed(&rtp(1, 1, 0, &[0xFF; 1400])));
    }

    #[tokio::test]
    async fn ports_are_free_once_stopped_and_bind_errors_leave_nothing_bound() {
        let (mut edge, mut events) = edge(16);
        let a = Peer::new().await;
        let (a_port, b_port) = start_call(&mut edge, 7, config(a.remote(), Remote::default()));
        assert!(matches!(
            edge.start(
                7,
                a_port + 100,
                b_port + 100,
                config(a.remote(), Remote::default())
            ),
            Err(MediaError::AlreadyStarted(7))
        ));
        assert_eq!((edge.len(), edge.contains(7)), (1, true));
        edge.stop(7);
        assert!(edge.is_empty());
        stopped(&mut events, 7).await;
        // Right after Stopped, all four ports can be bound again…
        let held: Vec<_> = [a_port, a_port + 1, b_port, b_port + 1]
            .into_iter()
            .map(|p| std::net::UdpSocket::bind(local(p)).expect("port free after Stopped"))
            .collect();
        drop(held);
        // …and by a new call.
        edge.start(8, a_port, b_port, config(a.remote(), Remote::default()))
            .unwrap();
        edge.stop(8);
        stopped(&mut events, 8).await;

        // A bind failure on the last socket leaves the first three free.
        let blocker = std::net::UdpSocket::bind(local(b_port + 1)).unwrap();
        let err = edge.start(9, a_port, b_port, config(a.remote(), Remote::default()));
        assert!(
            matches!(err, Err(MediaError::Bind { addr, .. }) if addr == local(b_port + 1)),
            "{err:?}"
        );
        assert!(!edge.contains(9));
        for p in [a_port, a_port + 1, b_port] {
            std::net::UdpSocket::bind(local(p)).expect("nothing left bound");
        }
        drop(blocker);
        assert!(matches!(
            edge.start(
                10,
                65_535,
                b_port,
                RelayConfig::new(Remote::default(), Remote::default())
            ),
            Err(MediaError::BadPort(65_535))
        ));
    }

    #[tokio::test]
    async fn the_port_gate_skips_pairs_held_elsewhere_and_hands_its_sockets_to_the_relay() {
        use crate::media::ports::PortAllocator;
        let (mut edge, mut events) = edge(16);
        let mut gate = edge.port_gate();
        // A range of three pairs whose first RTCP port another process holds.
        let (base, _) = candidate_ports();
        let Ok(blocker) = std::net::UdpSocket::bind(local(base + 1)) else {
            return; // taken by someone else between the pick and here: nothing to prove
        };
        let mut ports = PortAllocator::new(base, base + 5).unwrap();
        let Ok(a) = ports.allocate_usable(3, |p| gate.open(p)) else {
            return; // other pairs of the range taken by other tests
        };
        assert_ne!(a.get(), base, "the pair whose RTCP is held is skipped");
        // The gate keeps the pair bound: nobody else can take it before the relay starts.
        assert!(std::net::UdpSocket::bind(local(a.get())).is_err());
        // Opening it again (a retry) is not a conflict with ourselves.
        assert!(gate.open(a.get()));
        let Ok(b) = ports.allocate_usable(3, |p| gate.open(p)) else {
            return;
        };
        edge.start(
            1,
            a.get(),
            b.get(),
            RelayConfig::new(Remote::default(), Remote::default()),
        )
        .expect("the relay takes the gate's sockets");
        edge.stop(1);
        stopped(&mut events, 1).await;
        for p in [a.get(), a.get() + 1, b.get(), b.get() + 1] {
            std::net::UdpSocket::bind(local(p)).expect("free after Stopped");
        }
        // A pair given back unused is closed.
        ports.release(a).unwrap();
        ports.release(b).unwrap();
        let Ok(c) = ports.allocate_usable(3, |p| gate.open(p)) else {
            return;
        };
        assert_ne!(c.get(), base);
        assert!(std::net::UdpSocket::bind(local(c.get())).is_err());
        gate.close(c.get());
        std::net::UdpSocket::bind(local(c.get())).expect("closed by the gate");
        drop(blocker);
    }

    #[tokio::test]
    async fn commands_for_unknown_calls_are_ignored() {
        let (mut edge, mut events) = edge(16);
        edge.set_remote(42, Leg::A, Remote::default());
        edge.set_hold(42, Leg::B, true);
        edge.play(
            42,
            Leg::A,
            Arc::from(vec![[0u8; FRAME_SAMPLES]]),
            Law::Pcmu,
            false,
        );
        edge.stop_play(42, Leg::A);
        edge.stop(42);
        assert!(edge.is_empty());
        assert!(timeout(Duration::from_millis(100), events.recv())
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_panicking_call_still_reports_stopped_and_frees_its_ports() {
        let (mut edge, mut events) = edge(16);
        let (a_port, b_port) =
            start_call(&mut edge, 11, config(Remote::default(), Remote::default()));
        edge.crash(11);
        stopped(&mut events, 11).await;
        for p in [a_port, a_port + 1, b_port, b_port + 1] {
            std::net::UdpSocket::bind(local(p)).expect("port free after a panic");
        }
        edge.stop(11);
    }

    #[tokio::test]
    async fn events_wait_for_room_in_a_full_queue() {
        // Capacity one: Timeout and PlayFinished cannot both be queued; neither is lost.
        let (mut edge, mut events) = edge(1);
        let a = Peer::new().await;
        let mut cfg = config(a.remote(), Remote::default());
        cfg.media_timeout = Duration::from_millis(100);
        start_call(&mut edge, 12, cfg);
        edge.play(
            12,
            Leg::A,
            Arc::from(vec![[0u8; FRAME_SAMPLES]; 3]),
            Law::Pcmu,
            false,
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut got = vec![event(&mut events).await, event(&mut events).await];
        got.sort_by_key(|e| matches!(e, MediaEvent::Timeout { .. }));
        assert_eq!(
            got,
            [
                MediaEvent::PlayFinished {
                    call: 12,
                    leg: Leg::A
                },
                MediaEvent::Timeout { call: 12 }
            ]
        );
        edge.stop(12);
        stopped(&mut events, 12).await;
    }

    #[tokio::test]
    async fn relay_path_does_not_allocate() {
        // current_thread runtime: the call task runs on this thread, where the counting
        // allocator of `media::relay` counts.
        let (mut edge, mut events) = edge(16);
        let a = Peer::new().await;
        let b = Peer::new().await;
        let (a_port, b_port) = start_call(&mut edge, 13, config(a.remote(), b.remote()));
        let (relay_a, relay_b) = (local(a_port), local(b_port));
        let mut pa = [0u8; 172];
        let mut pb = [0u8; 172];
        let mut buf = [0u8; 2048];
        fn build(seq: u16, ssrc: u32, buf: &mut [u8]) -> usize {
            RtpPacketBuilder::new()
                .payload_type(0)
                .sequence(Seq::from(seq))
                .ssrc(ssrc)
                .payload(&[0xFF; 160])
                .build_into(buf)
                .unwrap()
        }
        let mut relayed = 0;
        let mut before = 0;
        for i in 0..600u16 {
            if i == 100 {
                before = alloc_count::allocations();
            }
            let n = build(i, 1, &mut pa);
            let m = build(i, 2, &mut pb);
            a.rtp.send_to(&pa[..n], relay_a).await.unwrap();
            b.rtp.send_to(&pb[..m], relay_b).await.unwrap();
            a.rtcp.send_to(&RTCP_RR, local(a_port + 1)).await.unwrap();
            let (k, _) = b.rtp.recv_from(&mut buf).await.unwrap();
            assert_eq!(k, 172);
            let (k, _) = a.rtp.recv_from(&mut buf).await.unwrap();
            assert_eq!(k, 172);
            let (k, _) = b.rtcp.recv_from(&mut buf).await.unwrap();
            assert_eq!(k, 8);
            relayed += 3;
        }
        let allocated = alloc_count::allocations() - before;
        assert_eq!(relayed, 1800);
        assert_eq!(allocated, 0, "allocations while relaying 1500 datagrams");

        // Playing: once the prompt runs, sending its packets does not allocate either.
        let frames: Arc<[[u8; FRAME_SAMPLES]]> = Arc::from(vec![[0x7F; FRAME_SAMPLES]; 5]);
        edge.play(13, Leg::B, frames, Law::Pcmu, true);
        let (k, _) = b.rtp.recv_from(&mut buf).await.unwrap();
        assert_eq!(k, 172);
        let before = alloc_count::allocations();
        for _ in 0..20 {
            let (k, _) = b.rtp.recv_from(&mut buf).await.unwrap();
            assert_eq!(k, 172);
        }
        assert_eq!(
            alloc_count::allocations() - before,
            0,
            "allocations while playing"
        );
        edge.stop(13);
        stopped(&mut events, 13).await;
    }
}
