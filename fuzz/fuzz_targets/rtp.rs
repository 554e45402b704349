//! RTP and RTCP datagrams as the media edge meets them: the relay's latching and accounting
//! (`RelaySession::handle_packet`), the overflow-message recorder (`Recorder::push_rtp`) and
//! the fax tone detector fed with decoded payload.
//!
//! The input is a sequence of packets, each introduced by two bytes: flags (leg, RTP/RTCP,
//! which of three sources, time step) and a length. Oracles beyond "no panic": a forward is
//! never longer than the packet and always leaves by the other leg; the recorder never holds
//! more than its bound.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use smartdesk::media::g711::Law;
use smartdesk::media::recorder::Recorder;
use smartdesk::media::relay::{Leg, PacketKind, RelayConfig, RelaySession, Remote};
use smartdesk::media::tone::CngDetector;

const SOURCES: [&str; 3] = ["192.0.2.10:40000", "198.51.100.5:30000", "203.0.113.66:9"];
const MAX_SAMPLES: usize = 8000;

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let remote = |s: &str| Remote {
        rtp: s.parse::<SocketAddr>().ok(),
        rtcp: None,
    };
    let mut relay = RelaySession::new(t0, RelayConfig::new(remote(SOURCES[0]), remote(SOURCES[1])));
    let mut recorder = Recorder::new(Law::Pcmu, MAX_SAMPLES);
    let mut cng = CngDetector::new();
    let mut pcm = [0i16; 1500];
    let mut now = t0;
    let mut rest = data;
    while rest.len() >= 2 {
        let (flags, len) = (rest[0], usize::from(rest[1]) * 8);
        rest = &rest[2..];
        let n = len.min(rest.len());
        let (packet, tail) = rest.split_at(n);
        rest = tail;
        let leg = if flags & 1 == 0 { Leg::A } else { Leg::B };
        let kind = if flags & 2 == 0 {
            PacketKind::Rtp
        } else {
            PacketKind::Rtcp
        };
        let src: SocketAddr = SOURCES[usize::from(flags >> 2) % 3].parse().unwrap();
        now += Duration::from_millis(u64::from(flags >> 4) * 20);
        if let Some(f) = relay.handle_packet(now, leg, kind, src, packet) {
            assert!(f.len <= packet.len(), "forward longer than the packet");
            assert_eq!(f.leg_out, leg.other(), "forwarded out of the wrong leg");
        }
        if kind == PacketKind::Rtp {
            let _ = recorder.push_rtp(packet);
            assert!(recorder.samples().len() <= MAX_SAMPLES, "recorder unbounded");
            let payload = packet.get(12..).unwrap_or_default();
            let m = payload.len().min(pcm.len());
            Law::Pcmu.decode_into(&payload[..m], &mut pcm[..m]);
            let _ = cng.feed(&pcm[..m]);
        }
        let _ = relay.media_timeout(now);
        let _ = relay.poll_timeout();
    }
    let _ = recorder.to_wav();
});
