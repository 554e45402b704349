//! Sans-IO RTP/RTCP relay for one B2BUA call: leg A is the carrier, leg B the seat.
//!
//! The daemon edge owns the four sockets (RTP and RTCP per leg), hands every datagram to
//! [`RelaySession::handle_packet`] and, if a [`Forward`] comes back, sends the *same bytes*
//! (`&data[..len]`) from the other leg's socket to `dst`. The relay does not rewrite packets
//! (SSRC, sequence and timestamps pass through, like a plain media anchor), so it never
//! allocates per packet — see the `no_allocation_per_packet` test, which counts allocations with
//! a test-only global allocator.
//!
//! Symmetric RTP latching (RFC 4961, "comedia" of RFC 4145): endpoints behind NAT send from an
//! address other than the one in their SDP, so each leg's destination starts as its SDP address
//! and moves to the source of the first valid RTP v2 packet received on that leg. To resist
//! media hijacking by anyone who can reach our port, a latched leg moves again only
//!
//! * within [`DEFAULT_LATCH_WINDOW`] after the session (or the leg's last SDP change) starts —
//!   the window in which NATs and SBCs settle; or
//! * when the packet carries a new SSRC **and** the latched source has been silent for
//!   [`RELATCH_IDLE`] — an endpoint that really switched streams (transfer, media server change)
//!   stops the old one; an injector cannot take over a stream that is still flowing.
//!
//! Packets from any other source are dropped and counted.
//!
//! Media timeout: when no RTP has arrived from either leg for `media_timeout`
//! ([`DEFAULT_MEDIA_TIMEOUT`]) the call is dead (lost BYE, crashed phone) and the call layer
//! should tear it down. A leg put on hold (a=sendonly/inactive, RFC 3264 §8.4) may legitimately
//! send nothing, so while either leg is on hold no timeout is reported.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtp_rs::RtpReader;

/// No-RTP time after which a call is considered dead. 30 s is what common SBCs and rtpengine
/// default to: long enough to ride out a network blip, short enough to stop billing-irrelevant
/// but port-consuming zombie calls.
pub const DEFAULT_MEDIA_TIMEOUT: Duration = Duration::from_secs(30);
/// Time after session start (or an SDP change) during which a leg may re-latch freely: long
/// enough for ICE-less NAT traversal and early media to settle, short enough to keep the
/// hijack window small.
pub const DEFAULT_LATCH_WINDOW: Duration = Duration::from_secs(3);
/// Silence of the latched source required before a new SSRC may take the leg over
/// (10 packet times at 20 ms).
pub const RELATCH_IDLE: Duration = Duration::from_millis(200);
/// Largest datagram relayed: one Ethernet MTU. G.711 20 ms packets are 172 bytes; anything
/// bigger than an MTU is not voice.
pub const MAX_PACKET_BYTES: usize = 1500;
/// A forward sequence jump larger than this is a restart, not loss (RFC 3550 A.1 MAX_DROPOUT).
const MAX_DROPOUT: i32 = 3000;
/// A backward jump larger than this is a restart, not reordering (RFC 3550 A.1 MAX_MISORDER).
const MAX_MISORDER: i32 = 100;

/// Which side of the B2BUA a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The carrier side (caller).
    A,
    /// The seat side (operator softphone).
    B,
}

impl Leg {
    /// The leg packets from this one are relayed to.
    pub fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }
}

/// Which socket of a leg a packet arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// RTP (even port).
    Rtp,
    /// RTCP (RTP port + 1).
    Rtcp,
}

/// Where to send a relayed packet: `&data[..len]` from `leg_out`'s socket of the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// Leg whose socket sends it.
    pub leg_out: Leg,
    /// Destination address.
    pub dst: SocketAddr,
    /// Bytes to send from the start of the input buffer.
    pub len: usize,
}

/// Remote media addresses of one leg, as learned from SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Remote {
    /// RTP address (c= and m= port); `None` if unknown or held with c=0.0.0.0.
    pub rtp: Option<SocketAddr>,
    /// RTCP address (a=rtcp, RFC 3605); `None` means RTP port + 1.
    pub rtcp: Option<SocketAddr>,
}

/// Session parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// Leg A (carrier) remote from its SDP.
    pub a: Remote,
    /// Leg B (seat) remote from its SDP; often unknown until the seat answers.
    pub b: Remote,
    /// See [`DEFAULT_MEDIA_TIMEOUT`].
    pub media_timeout: Duration,
    /// See [`DEFAULT_LATCH_WINDOW`].
    pub latch_window: Duration,
}

impl RelayConfig {
    /// Config with default timers.
    pub fn new(a: Remote, b: Remote) -> Self {
        Self {
            a,
            b,
            media_timeout: DEFAULT_MEDIA_TIMEOUT,
            latch_window: DEFAULT_LATCH_WINDOW,
        }
    }
}

/// Per-leg counters. "In" is what the leg sent us, "out" what we sent to the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegStats {
    /// Valid packets received from this leg (RTP and RTCP).
    pub packets_in: u64,
    /// Bytes of those packets.
    pub bytes_in: u64,
    /// Packets relayed to this leg.
    pub packets_out: u64,
    /// Bytes relayed to this leg.
    pub bytes_out: u64,
    /// Packets from this leg that were dropped (malformed, wrong source, nowhere to send).
    pub dropped: u64,
    /// RTP packets missing according to sequence gaps (reordering can overcount).
    pub lost: u64,
    /// When the last valid RTP packet from this leg arrived.
    pub last_rtp: Option<Instant>,
}

#[derive(Debug, Clone)]
struct LegState {
    sdp: Remote,
    rtp_dst: Option<SocketAddr>,
    rtcp_dst: Option<SocketAddr>,
    rtp_latched: bool,
    rtcp_latched: bool,
    latch_until: Instant,
    ssrc: Option<u32>,
    last_seq: Option<u16>,
    resync_seq: Option<u16>,
    hold: bool,
    stats: LegStats,
}

impl LegState {
    fn new(sdp: Remote, latch_until: Instant) -> Self {
        Self {
            sdp,
            rtp_dst: sdp.rtp,
            rtcp_dst: sdp.rtcp.or_else(|| sdp.rtp.map(rtcp_of)),
            rtp_latched: false,
            rtcp_latched: false,
            latch_until,
            ssrc: None,
            last_seq: None,
            resync_seq: None,
            hold: false,
            stats: LegStats::default(),
        }
    }
}

fn rtcp_of(rtp: SocketAddr) -> SocketAddr {
    SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1))
}

/// One call's relay; see the module doc.
#[derive(Debug, Clone)]
pub struct RelaySession {
    config: RelayConfig,
    started: Instant,
    a: LegState,
    b: LegState,
}

impl RelaySession {
    /// Start a session at `now`.
    pub fn new(now: Instant, config: RelayConfig) -> Self {
        // An absurd configured window must not panic on overflow: no window is the safe side.
        let latch_until = now.checked_add(config.latch_window).unwrap_or(now);
        Self {
            a: LegState::new(config.a, latch_until),
            b: LegState::new(config.b, latch_until),
            config,
            started: now,
        }
    }

    fn leg(&self, leg: Leg) -> &LegState {
        match leg {
            Leg::A => &self.a,
            Leg::B => &self.b,
        }
    }

    fn leg_mut(&mut self, leg: Leg) -> &mut LegState {
        match leg {
            Leg::A => &mut self.a,
            Leg::B => &mut self.b,
        }
    }

    /// Counters of one leg.
    pub fn stats(&self, leg: Leg) -> &LegStats {
        &self.leg(leg).stats
    }

    /// Where RTP for `leg` is currently sent.
    pub fn rtp_destination(&self, leg: Leg) -> Option<SocketAddr> {
        self.leg(leg).rtp_dst
    }

    /// New SDP for a leg (re-INVITE, or the seat's answer): resets latching for that leg and
    /// reopens its latch window, since the endpoint may legitimately move.
    pub fn set_remote(&mut self, now: Instant, leg: Leg, remote: Remote) {
        let window = self.config.latch_window;
        let state = self.leg_mut(leg);
        let stats = state.stats;
        let hold = state.hold;
        *state = LegState::new(remote, now.checked_add(window).unwrap_or(now));
        state.stats = stats;
        state.hold = hold;
    }

    /// Mark a leg as on hold (its SDP says sendonly or inactive) so silence is not a timeout.
    pub fn set_hold(&mut self, leg: Leg, hold: bool) {
        self.leg_mut(leg).hold = hold;
    }

    /// Relay one datagram received on `leg`'s `kind` socket from `src`.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        leg: Leg,
        kind: PacketKind,
        src: SocketAddr,
        data: &[u8],
    ) -> Option<Forward> {
        let accepted = if data.len() > MAX_PACKET_BYTES {
            false
        } else {
            match kind {
                PacketKind::Rtp => self.accept_rtp(now, leg, src, data),
                PacketKind::Rtcp => self.accept_rtcp(now, leg, src, data),
            }
        };
        let len = data.len();
        if !accepted {
            self.leg_mut(leg).stats.dropped += 1;
            return None;
        }
        {
            let stats = &mut self.leg_mut(leg).stats;
            stats.packets_in += 1;
            stats.bytes_in += len as u64;
        }
        let out = self.leg_mut(leg.other());
        let dst = match kind {
            PacketKind::Rtp => out.rtp_dst,
            PacketKind::Rtcp => out.rtcp_dst,
        };
        let Some(dst) = dst.filter(|d| !d.ip().is_unspecified() && d.port() != 0) else {
            self.leg_mut(leg).stats.dropped += 1;
            return None;
        };
        out.stats.packets_out += 1;
        out.stats.bytes_out += len as u64;
        Some(Forward {
            leg_out: leg.other(),
            dst,
            len,
        })
    }

    fn accept_rtp(&mut self, now: Instant, leg: Leg, src: SocketAddr, data: &[u8]) -> bool {
        let Ok(rtp) = RtpReader::new(data) else {
            return false;
        };
        let ssrc = rtp.ssrc();
        let seq = u16::from(rtp.sequence_number());
        let s = self.leg_mut(leg);
        let from_latched = s.rtp_latched && s.rtp_dst == Some(src);
        if !from_latched {
            let old_is_idle = s
                .stats
                .last_rtp
                .is_none_or(|t| now.saturating_duration_since(t) >= RELATCH_IDLE);
            let may_latch =
                !s.rtp_latched || now < s.latch_until || (s.ssrc != Some(ssrc) && old_is_idle);
            if !may_latch {
                return false;
            }
            s.rtp_dst = Some(src);
            s.rtp_latched = true;
            if !s.rtcp_latched && s.sdp.rtcp.is_none() {
                s.rtcp_dst = Some(rtcp_of(src));
            }
        }
        if s.ssrc == Some(ssrc) {
            if let Some(last) = s.last_seq {
                let delta = i32::from(seq.wrapping_sub(last) as i16);
                if delta > 0 && delta <= MAX_DROPOUT {
                    s.stats.lost += (delta - 1) as u64;
                    s.last_seq = Some(seq);
                } else if !(-MAX_MISORDER..=MAX_DROPOUT).contains(&delta) {
                    // RFC 3550 A.1: a big jump is taken as a restart once two packets in a
                    // row confirm it.
                    if s.resync_seq == Some(seq) {
                        s.last_seq = Some(seq);
                        s.resync_seq = None;
                    } else {
                        s.resync_seq = Some(seq.wrapping_add(1));
                    }
                }
            }
        } else {
            s.ssrc = Some(ssrc);
            s.last_seq = Some(seq);
            s.resync_seq = None;
        }
        s.stats.last_rtp = Some(now);
        true
    }

    fn accept_rtcp(&mut self, now: Instant, leg: Leg, src: SocketAddr, data: &[u8]) -> bool {
        if !is_rtcp(data) {
            return false;
        }
        let s = self.leg_mut(leg);
        if s.rtcp_latched && s.rtcp_dst == Some(src) {
            return true;
        }
        if s.rtcp_latched && now >= s.latch_until {
            return false;
        }
        s.rtcp_dst = Some(src);
        s.rtcp_latched = true;
        true
    }

    /// Since when the call counts as silent: the start if no leg has sent RTP yet, else the
    /// last packet of the leg that went quiet first. A leg that has never sent (the seat
    /// while the caller is queued, or during message taking) does not count; a leg that
    /// sent and stopped does, even while the other goes on — an operator's softphone that
    /// crashed mid-call while the caller keeps talking (found by tests/net_faults.rs).
    fn last_activity(&self) -> Instant {
        [self.a.stats.last_rtp, self.b.stats.last_rtp]
            .into_iter()
            .flatten()
            .min()
            .map_or(self.started, |t| t.max(self.started))
    }

    /// When [`media_timeout`](Self::media_timeout) will next become true, if nothing arrives;
    /// `None` while a leg is on hold (or if the configured timeout is beyond `Instant`'s range).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.a.hold || self.b.hold {
            return None;
        }
        self.last_activity().checked_add(self.config.media_timeout)
    }

    /// True when a leg that sent RTP has been silent for the configured time (or nothing
    /// came at all for that long) and no leg is on hold.
    pub fn media_timeout(&self, now: Instant) -> bool {
        self.poll_timeout().is_some_and(|deadline| now >= deadline)
    }
}

/// Minimal RTCP check (RFC 3550 §6.4.1 / A.2): version 2, a packet type in the RTCP range
/// 192..=223 (RFC 5761 §4), and a first-packet length that fits in the datagram.
fn is_rtcp(data: &[u8]) -> bool {
    let (Some(&b0), Some(&pt), Some(&l0), Some(&l1)) =
        (data.first(), data.get(1), data.get(2), data.get(3))
    else {
        return false;
    };
    let words = usize::from(u16::from_be_bytes([l0, l1])) + 1;
    b0 >> 6 == 2 && (192..=223).contains(&pt) && data.len() >= 8 && words * 4 <= data.len()
}

#[cfg(test)]
pub(crate) mod alloc_count {
    //! Test-only global allocator counting allocations per thread, so tests running in
    //! parallel do not disturb each other's counts.
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }

    fn bump() {
        // try_with: the thread-local may already be gone during thread teardown.
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }

    // SAFETY: defers to the system allocator; only adds a counter.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            bump();
            // SAFETY: same contract as the caller's.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: same contract as the caller's.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            bump();
            // SAFETY: same contract as the caller's.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            bump();
            // SAFETY: same contract as the caller's.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    pub fn allocations() -> u64 {
        COUNT.with(|c| c.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::{RtpPacketBuilder, Seq};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn rtp(seq: u16, ssrc: u32, buf: &mut [u8]) -> usize {
        RtpPacketBuilder::new()
            .payload_type(0)
            .sequence(Seq::from(seq))
            .ssrc(ssrc)
            .timestamp(u32::from(seq) * 160)
            .payload(&[0xFF; 160])
            .build_into(buf)
            .unwrap()
    }

    fn packet(seq: u16, ssrc: u32) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let n = rtp(seq, ssrc, &mut buf);
        buf[..n].to_vec()
    }

    const RTCP_RR: [u8; 8] = [0x80, 201, 0, 1, 0, 0, 0, 1];

    fn session(t0: Instant) -> RelaySession {
        RelaySession::new(
            t0,
            RelayConfig::new(
                Remote {
                    rtp: Some(addr("198.51.100.1:4000")),
                    rtcp: None,
                },
                Remote {
                    rtp: Some(addr("192.0.2.20:5000")),
                    rtcp: Some(addr("192.0.2.20:5999")),
                },
            ),
        )
    }

    #[test]
    fn relays_both_ways_to_sdp_addresses_then_latched_ones() {
        let t0 = Instant::now();
        let mut s = session(t0);
        // B's first packet goes to A's SDP address.
        let f = s
            .handle_packet(
                t0,
                Leg::B,
                PacketKind::Rtp,
                addr("192.0.2.20:5000"),
                &packet(1, 7),
            )
            .unwrap();
        assert_eq!(
            f,
            Forward {
                leg_out: Leg::A,
                dst: addr("198.51.100.1:4000"),
                len: 172
            }
        );
        // A sends from behind NAT: latched, and B's next packet goes there.
        let nat = addr("203.0.113.9:61000");
        let f = s
            .handle_packet(t0, Leg::A, PacketKind::Rtp, nat, &packet(100, 9))
            .unwrap();
        assert_eq!(f.dst, addr("192.0.2.20:5000"));
        let f = s
            .handle_packet(
                t0,
                Leg::B,
                PacketKind::Rtp,
                addr("192.0.2.20:5000"),
                &packet(2, 7),
            )
            .unwrap();
        assert_eq!(f.dst, nat);
        assert_eq!(s.rtp_destination(Leg::A), Some(nat));
        // RTCP: A's goes to B's a=rtcp address, B's goes to A's latched RTP port + 1.
        let f = s.handle_packet(
            t0,
            Leg::A,
            PacketKind::Rtcp,
            addr("203.0.113.9:61001"),
            &RTCP_RR,
        );
        assert_eq!(f.unwrap().dst, addr("192.0.2.20:5999"));
        let f = s.handle_packet(
            t0,
            Leg::B,
            PacketKind::Rtcp,
            addr("192.0.2.20:5999"),
            &RTCP_RR,
        );
        assert_eq!(f.unwrap().dst, addr("203.0.113.9:61001"));

        let a = s.stats(Leg::A);
        assert_eq!(
            (a.packets_in, a.bytes_in, a.packets_out, a.bytes_out),
            (2, 180, 3, 352)
        );
        assert_eq!(s.stats(Leg::B).packets_in, 3);
    }

    #[test]
    fn drops_garbage() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let src = addr("198.51.100.1:4000");
        let mut v1 = packet(1, 1);
        v1[0] = (v1[0] & 0x3F) | 0x40; // version 1
        for bad in [&b""[..], &[0x80; 11][..], &v1[..], &[0u8; 2000][..]] {
            assert_eq!(s.handle_packet(t0, Leg::A, PacketKind::Rtp, src, bad), None);
        }
        for bad in [
            &[0x80, 201, 0, 9, 0, 0, 0, 1][..],
            &[0x80, 96, 0, 1, 0, 0, 0, 1][..],
            &[0x80][..],
        ] {
            assert_eq!(
                s.handle_packet(t0, Leg::A, PacketKind::Rtcp, src, bad),
                None
            );
        }
        assert_eq!(s.stats(Leg::A).dropped, 7);
        assert_eq!(s.stats(Leg::A).packets_in, 0);
        // Garbage did not latch anything.
        assert_eq!(s.rtp_destination(Leg::A), Some(src));
    }

    #[test]
    fn latching_resists_hijack_after_window() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let real = addr("198.51.100.1:4000");
        let evil = addr("203.0.113.66:1234");
        for i in 0..10u16 {
            let t = t0 + Duration::from_millis(20 * u64::from(i));
            assert!(s
                .handle_packet(t, Leg::A, PacketKind::Rtp, real, &packet(i, 5))
                .is_some());
        }
        // Inside the window a new source may take over (NAT rebinding).
        let moved = addr("198.51.100.1:4002");
        let t = t0 + Duration::from_secs(1);
        assert!(s
            .handle_packet(t, Leg::A, PacketKind::Rtp, moved, &packet(11, 5))
            .is_some());
        assert_eq!(s.rtp_destination(Leg::A), Some(moved));
        // After the window: same SSRC from elsewhere is refused; so is a new SSRC while the
        // latched stream is still flowing.
        let t = t0 + Duration::from_secs(5);
        assert!(s
            .handle_packet(t, Leg::A, PacketKind::Rtp, moved, &packet(12, 5))
            .is_some());
        assert!(s
            .handle_packet(t, Leg::A, PacketKind::Rtp, evil, &packet(13, 5))
            .is_none());
        let t = t + Duration::from_millis(20);
        assert!(s
            .handle_packet(t, Leg::A, PacketKind::Rtp, evil, &packet(500, 666))
            .is_none());
        assert_eq!(s.rtp_destination(Leg::A), Some(moved));
        // RTCP from a stranger after the window is refused too.
        let f = s.handle_packet(
            t,
            Leg::A,
            PacketKind::Rtcp,
            addr("198.51.100.1:4003"),
            &RTCP_RR,
        );
        assert!(f.is_some());
        assert!(s
            .handle_packet(t, Leg::A, PacketKind::Rtcp, evil, &RTCP_RR)
            .is_none());
        // The real source stops; a new SSRC after RELATCH_IDLE takes over (media server switch).
        let t = t + RELATCH_IDLE;
        let new = addr("198.51.100.2:7000");
        assert!(s
            .handle_packet(t, Leg::A, PacketKind::Rtp, new, &packet(1, 77))
            .is_some());
        assert_eq!(s.rtp_destination(Leg::A), Some(new));
        assert_eq!(s.stats(Leg::A).dropped, 3);
    }

    #[test]
    fn set_remote_reopens_latching() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let t = t0 + Duration::from_secs(10);
        s.handle_packet(
            t,
            Leg::B,
            PacketKind::Rtp,
            addr("192.0.2.20:5000"),
            &packet(1, 1),
        );
        let new = Remote {
            rtp: Some(addr("192.0.2.30:6000")),
            rtcp: None,
        };
        s.set_remote(t, Leg::B, new);
        assert_eq!(s.rtp_destination(Leg::B), new.rtp);
        assert_eq!(s.stats(Leg::B).packets_in, 1, "counters survive");
        let t = t + Duration::from_secs(1);
        s.handle_packet(
            t,
            Leg::B,
            PacketKind::Rtp,
            addr("192.0.2.30:6008"),
            &packet(2, 2),
        );
        assert_eq!(s.rtp_destination(Leg::B), Some(addr("192.0.2.30:6008")));
    }

    #[test]
    fn unknown_or_held_destination_drops() {
        let t0 = Instant::now();
        let mut s = RelaySession::new(
            t0,
            RelayConfig::new(
                Remote {
                    rtp: Some(addr("0.0.0.0:4000")),
                    rtcp: None,
                },
                Remote::default(),
            ),
        );
        let a = addr("198.51.100.1:4000");
        assert!(s
            .handle_packet(t0, Leg::A, PacketKind::Rtp, a, &packet(1, 1))
            .is_none());
        // B's packet: A latched to its real source, so this one flows.
        let b = addr("192.0.2.20:5000");
        assert_eq!(
            s.handle_packet(t0, Leg::B, PacketKind::Rtp, b, &packet(1, 2))
                .unwrap()
                .dst,
            a
        );
        assert_eq!(s.stats(Leg::A).dropped, 1);
    }

    #[test]
    fn counts_sequence_gaps() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let a = addr("198.51.100.1:4000");
        for seq in [65_530u16, 65_531, 65_534, 1, 0, 2, 40_000, 40_001, 40_003] {
            s.handle_packet(t0, Leg::A, PacketKind::Rtp, a, &packet(seq, 3));
        }
        // 65532, 65533 missing; 65535 and 0 missing at the time 1 arrived (0 came late);
        // the jump to 40000 is a restart (confirmed by 40001), not loss; 40002 is lost.
        assert_eq!(s.stats(Leg::A).lost, 5);
        assert_eq!(s.stats(Leg::A).packets_in, 9);
    }

    #[test]
    fn media_timeout_and_hold() {
        let t0 = Instant::now();
        let mut s = session(t0);
        assert_eq!(s.poll_timeout(), Some(t0 + DEFAULT_MEDIA_TIMEOUT));
        let t1 = t0 + Duration::from_secs(10);
        s.handle_packet(
            t1,
            Leg::B,
            PacketKind::Rtp,
            addr("192.0.2.20:5000"),
            &packet(1, 1),
        );
        // RTCP alone does not keep the call alive.
        s.handle_packet(
            t1 + Duration::from_secs(20),
            Leg::B,
            PacketKind::Rtcp,
            addr("192.0.2.20:5999"),
            &RTCP_RR,
        );
        assert_eq!(s.poll_timeout(), Some(t1 + DEFAULT_MEDIA_TIMEOUT));
        assert!(!s.media_timeout(t1 + Duration::from_secs(29)));
        assert!(s.media_timeout(t1 + DEFAULT_MEDIA_TIMEOUT));
        s.set_hold(Leg::A, true);
        assert_eq!(s.poll_timeout(), None);
        assert!(!s.media_timeout(t1 + Duration::from_secs(3600)));
        s.set_hold(Leg::A, false);
        assert!(s.media_timeout(t1 + Duration::from_secs(3600)));
    }

    #[test]
    fn one_leg_going_silent_times_out_while_the_other_talks() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let mut buf = [0u8; 256];
        let (a_src, b_src) = (addr("203.0.113.9:61000"), addr("192.0.2.20:5000"));
        // The caller alone (queued): its RTP keeps the call alive.
        for i in 0..100u16 {
            let t = t0 + Duration::from_millis(20 * u64::from(i));
            let n = rtp(i, 1, &mut buf);
            s.handle_packet(t, Leg::A, PacketKind::Rtp, a_src, &buf[..n]);
        }
        assert_eq!(
            s.poll_timeout(),
            Some(t0 + Duration::from_millis(1980) + DEFAULT_MEDIA_TIMEOUT)
        );
        // The seat talks for a second and its phone dies; the caller goes on.
        let answered = t0 + Duration::from_secs(2);
        let n = rtp(1, 2, &mut buf);
        s.handle_packet(answered, Leg::B, PacketKind::Rtp, b_src, &buf[..n]);
        for i in 0..3000u16 {
            let t = answered + Duration::from_millis(20 * u64::from(i));
            let n = rtp(100 + i, 1, &mut buf);
            s.handle_packet(t, Leg::A, PacketKind::Rtp, a_src, &buf[..n]);
        }
        assert_eq!(s.poll_timeout(), Some(answered + DEFAULT_MEDIA_TIMEOUT));
        assert!(s.media_timeout(answered + DEFAULT_MEDIA_TIMEOUT));
    }

    #[test]
    fn no_allocation_per_packet() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let mut a_pkt = [0u8; 256];
        let mut b_pkt = [0u8; 256];
        let a_src = addr("203.0.113.9:61000");
        let b_src = addr("192.0.2.20:5000");
        let before = alloc_count::allocations();
        let mut forwarded = 0usize;
        for i in 0..1000u16 {
            let t = t0 + Duration::from_millis(20 * u64::from(i));
            let n = rtp(i, 1, &mut a_pkt);
            forwarded += s
                .handle_packet(t, Leg::A, PacketKind::Rtp, a_src, &a_pkt[..n])
                .map_or(0, |f| f.len);
            let n = rtp(i, 2, &mut b_pkt);
            forwarded += s
                .handle_packet(t, Leg::B, PacketKind::Rtp, b_src, &b_pkt[..n])
                .map_or(0, |f| f.len);
            s.handle_packet(t, Leg::A, PacketKind::Rtcp, a_src, &RTCP_RR);
            s.handle_packet(t, Leg::A, PacketKind::Rtp, a_src, &[1, 2, 3]);
            let _ = s.media_timeout(t);
        }
        let after = alloc_count::allocations();
        assert_eq!(forwarded, 2000 * 172);
        assert_eq!(after - before, 0, "handle_packet must not allocate");
        // The counter works: a Vec allocates.
        let v = vec![1u8; 10];
        assert!(alloc_count::allocations() > after);
        drop(v);
    }
}
