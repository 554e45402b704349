//! Sans-IO prompt player: turns 20 ms G.711 frames into RTP packets on a drift-free schedule.
//!
//! Packet `n` is due at `start + n·20 ms` and carries timestamp `ts0 + n·160` (RFC 3551 §4.5:
//! 8000 Hz clock). Deadlines are computed from the start time, never from the previous send, so
//! a late wake-up does not shift every later packet; if the edge wakes up late it drains the
//! overdue packets back to back and the receiver's jitter buffer absorbs the burst. The first
//! packet has the marker bit set (RFC 3551 §4.1: start of a talkspurt).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, Seq};

use crate::media::g711::{Law, FRAME_SAMPLES};

/// Packet interval: RFC 3551 default ptime for G.711.
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);
/// Bytes a caller's buffer needs for one packet: 12-byte RTP header + 160 payload bytes.
pub const PACKET_BYTES: usize = 12 + FRAME_SAMPLES;

/// Errors from the prompt player.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PlayerError {
    #[error("output buffer of {0} bytes is smaller than one RTP packet ({PACKET_BYTES})")]
    BufferTooSmall(usize),
}

/// RTP stream parameters of the player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamParams {
    /// Encoding of the frames (sets the payload type).
    pub law: Law,
    /// Our SSRC for this stream.
    pub ssrc: u32,
    /// First sequence number (random per RFC 3550 §5.1).
    pub first_seq: u16,
    /// First timestamp (random per RFC 3550 §5.1).
    pub first_timestamp: u32,
}

/// Plays a prompt once, or in a loop (hold/queue music).
#[derive(Debug, Clone)]
pub struct PromptPlayer {
    frames: Arc<[[u8; FRAME_SAMPLES]]>,
    params: StreamParams,
    start: Instant,
    repeat: bool,
    sent: u64,
}

impl PromptPlayer {
    /// Start playing `frames` (shared: one loaded prompt serves many calls) at `start`.
    pub fn new(
        frames: Arc<[[u8; FRAME_SAMPLES]]>,
        params: StreamParams,
        start: Instant,
        repeat: bool,
    ) -> Self {
        Self {
            frames,
            params,
            start,
            repeat,
            sent: 0,
        }
    }

    /// True once every frame of a non-repeating prompt has been sent.
    pub fn is_finished(&self) -> bool {
        self.frames.is_empty() || (!self.repeat && self.sent >= self.frames.len() as u64)
    }

    /// Packets sent so far.
    pub fn packets_sent(&self) -> u64 {
        self.sent
    }

    fn due(&self, n: u64) -> Instant {
        // 2^32 × 20 ms is 2.7 years of playback, unreachable for a call; past it (or past
        // `Instant`'s range) fall back to `start` instead of panicking.
        self.start
            .checked_add(PACKET_INTERVAL * u32::try_from(n).unwrap_or(u32::MAX))
            .unwrap_or(self.start)
    }

    /// When the next packet is due; `None` when finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.is_finished()).then(|| self.due(self.sent))
    }

    /// If a packet is due at `now`, write it into `buf` and return its length.
    pub fn poll_packet(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Result<Option<usize>, PlayerError> {
        if buf.len() < PACKET_BYTES {
            return Err(PlayerError::BufferTooSmall(buf.len()));
        }
        if self.is_finished() || now < self.due(self.sent) {
            return Ok(None);
        }
        let count = self.frames.len() as u64;
        let Some(frame) = self.frames.get((self.sent % count) as usize) else {
            return Ok(None);
        };
        // Sequence and timestamp wrap modulo 2^16 / 2^32 by design (RFC 3550 §5.1).
        let seq = self.params.first_seq.wrapping_add(self.sent as u16);
        let ts = self
            .params
            .first_timestamp
            .wrapping_add((self.sent as u32).wrapping_mul(FRAME_SAMPLES as u32));
        let len = RtpPacketBuilder::new()
            .payload_type(self.params.law.payload_type())
            .marked(self.sent == 0)
            .sequence(Seq::from(seq))
            .timestamp(ts)
            .ssrc(self.params.ssrc)
            .payload(frame)
            .build_into(buf)
            .map_err(|_| PlayerError::BufferTooSmall(buf.len()))?;
        self.sent += 1;
        Ok(Some(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::RtpReader;

    fn frames(n: u8) -> Arc<[[u8; FRAME_SAMPLES]]> {
        (0..n)
            .map(|i| [i; FRAME_SAMPLES])
            .collect::<Vec<_>>()
            .into()
    }

    const PARAMS: StreamParams = StreamParams {
        law: Law::Pcma,
        ssrc: 0xDEAD_BEEF,
        first_seq: 65_534,
        first_timestamp: u32::MAX - 100,
    };

    #[test]
    fn packets_follow_the_schedule() {
        let t0 = Instant::now();
        let mut p = PromptPlayer::new(frames(3), PARAMS, t0, false);
        let mut buf = [0u8; 200];
        assert_eq!(p.poll_timeout(), Some(t0));
        let mut seen = Vec::new();
        for i in 0..3u32 {
            let due = t0 + PACKET_INTERVAL * i;
            assert_eq!(p.poll_timeout(), Some(due));
            assert_eq!(
                p.poll_packet(due - Duration::from_millis(1), &mut buf),
                Ok(None)
            );
            // Waking up 7 ms late must not push the next deadline.
            let n = p
                .poll_packet(due + Duration::from_millis(7), &mut buf)
                .unwrap()
                .unwrap();
            assert_eq!(n, PACKET_BYTES);
            let r = RtpReader::new(&buf[..n]).unwrap();
            seen.push((u16::from(r.sequence_number()), r.timestamp(), r.mark()));
            assert_eq!(r.ssrc(), 0xDEAD_BEEF);
            assert_eq!(r.payload_type(), 8);
            assert_eq!(r.payload(), &[i as u8; 160][..]);
        }
        assert_eq!(
            seen,
            [
                (65_534, u32::MAX - 100, true),
                (65_535, (u32::MAX - 100).wrapping_add(160), false),
                (0, (u32::MAX - 100).wrapping_add(320), false),
            ]
        );
        assert!(p.is_finished());
        assert_eq!(p.poll_timeout(), None);
        assert_eq!(
            p.poll_packet(t0 + Duration::from_secs(9), &mut buf),
            Ok(None)
        );
    }

    #[test]
    fn late_wakeup_drains_without_drift() {
        let t0 = Instant::now();
        let mut p = PromptPlayer::new(frames(2), PARAMS, t0, true);
        let mut buf = [0u8; PACKET_BYTES];
        let late = t0 + Duration::from_millis(95);
        let mut n = 0;
        while p.poll_packet(late, &mut buf).unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 5); // packets due at 0, 20, 40, 60, 80 ms
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_millis(100)));
        // Looping keeps going after the last frame, with continuous seq/timestamps.
        assert!(!p.is_finished());
        assert_eq!(p.packets_sent(), 5);
    }

    #[test]
    fn small_buffer_and_empty_prompt() {
        let t0 = Instant::now();
        let mut p = PromptPlayer::new(frames(1), PARAMS, t0, false);
        assert_eq!(
            p.poll_packet(t0, &mut [0u8; 100]),
            Err(PlayerError::BufferTooSmall(100))
        );
        let mut empty = PromptPlayer::new(frames(0), PARAMS, t0, true);
        assert!(empty.is_finished());
        assert_eq!(empty.poll_packet(t0, &mut [0u8; 200]), Ok(None));
    }
}
