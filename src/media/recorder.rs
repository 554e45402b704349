//! Message taking: collect a caller's G.711 audio from RTP into one bounded buffer.
//!
//! Payloads are placed by RTP timestamp, not by arrival order: that puts reordered packets
//! where they belong, leaves lost packets as silence (the buffer is pre-filled with the law's
//! silence code), and needs no jitter buffer. A timestamp jump larger than [`MAX_GAP_SAMPLES`]
//! or a new SSRC is a discontinuity (the far end restarted its stream, e.g. after hold), and the
//! new audio is appended instead of leaving minutes of silence. The buffer never grows past the
//! configured maximum, whatever the packets claim.

use rtp_rs::RtpReader;

use crate::media::g711::Law;
use crate::media::wav::{write_wav_g711_8k, WavError};

/// Default longest message: 3 minutes (8 kHz, one byte a sample = 1.44 MB).
pub const DEFAULT_MAX_SAMPLES: usize = 8000 * 180;
/// Largest forward timestamp gap filled with silence: 2 s of lost packets is still "the same
/// recording"; more is a restart.
pub const MAX_GAP_SAMPLES: u32 = 8000 * 2;

/// Why a packet was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Not RTP v2.
    Malformed,
    /// Another payload type (telephone-event, comfort noise, another codec).
    OtherPayload,
    /// Belongs before the start of the current stream segment.
    TooLate,
}

/// Result of offering one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Payload stored (possibly truncated at the length limit).
    Stored,
    /// Packet skipped.
    Ignored(Ignored),
    /// The recording reached its maximum length; nothing more is stored.
    Full,
}

/// Collects one recording.
#[derive(Debug, Clone)]
pub struct Recorder {
    law: Law,
    max_samples: usize,
    buf: Vec<u8>,
    ssrc: Option<u32>,
    base_ts: u32,
    base_pos: usize,
}

impl Recorder {
    /// A recorder for `law` audio, at most `max_samples` long.
    pub fn new(law: Law, max_samples: usize) -> Self {
        Self {
            law,
            max_samples,
            buf: Vec::new(),
            ssrc: None,
            base_ts: 0,
            base_pos: 0,
        }
    }

    /// Offer one received RTP packet.
    pub fn push_rtp(&mut self, packet: &[u8]) -> RecordOutcome {
        let Ok(rtp) = RtpReader::new(packet) else {
            return RecordOutcome::Ignored(Ignored::Malformed);
        };
        if rtp.payload_type() != self.law.payload_type() {
            return RecordOutcome::Ignored(Ignored::OtherPayload);
        }
        let ts = rtp.timestamp();
        if self.ssrc != Some(rtp.ssrc()) {
            self.ssrc = Some(rtp.ssrc());
            self.rebase(ts);
        }
        let offset = i64::from(ts.wrapping_sub(self.base_ts) as i32);
        let end_now = self.buf.len() as i64;
        let mut pos = self.base_pos as i64 + offset;
        if pos > end_now + i64::from(MAX_GAP_SAMPLES) || offset < -i64::from(MAX_GAP_SAMPLES) {
            self.rebase(ts);
            pos = end_now;
        }
        if pos < 0 || (pos as usize) < self.base_pos {
            return RecordOutcome::Ignored(Ignored::TooLate);
        }
        let pos = pos as usize;
        if pos >= self.max_samples {
            return RecordOutcome::Full;
        }
        let payload = rtp.payload();
        let end = pos.saturating_add(payload.len()).min(self.max_samples);
        if self.buf.len() < end {
            self.buf.resize(end, self.law.silence());
        }
        if let (Some(dst), Some(src)) = (self.buf.get_mut(pos..end), payload.get(..end - pos)) {
            dst.copy_from_slice(src);
        }
        RecordOutcome::Stored
    }

    fn rebase(&mut self, ts: u32) {
        self.base_ts = ts;
        self.base_pos = self.buf.len();
    }

    /// The codec being recorded.
    pub fn law(&self) -> Law {
        self.law
    }

    /// Recorded G.711 bytes so far (one per sample at 8 kHz).
    pub fn samples(&self) -> &[u8] {
        &self.buf
    }

    /// True once the maximum length is reached.
    pub fn is_full(&self) -> bool {
        self.buf.len() >= self.max_samples
    }

    /// Finish as a G.711 WAV file.
    pub fn to_wav(&self) -> Result<Vec<u8>, WavError> {
        write_wav_g711_8k(self.law, &self.buf)
    }

    /// Finish, returning the raw G.711 bytes.
    pub fn into_samples(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::wav::Prompt;
    use rtp_rs::{RtpPacketBuilder, Seq};

    fn pkt(pt: u8, ssrc: u32, seq: u16, ts: u32, fill: u8, len: usize) -> Vec<u8> {
        let payload = vec![fill; len];
        RtpPacketBuilder::new()
            .payload_type(pt)
            .ssrc(ssrc)
            .sequence(Seq::from(seq))
            .timestamp(ts)
            .payload(&payload)
            .build()
            .unwrap()
    }

    #[test]
    fn reorders_and_fills_gaps() {
        let mut r = Recorder::new(Law::Pcmu, DEFAULT_MAX_SAMPLES);
        let base = u32::MAX - 200; // crosses the timestamp wrap
        assert_eq!(
            r.push_rtp(&pkt(0, 1, 10, base, 1, 160)),
            RecordOutcome::Stored
        );
        assert_eq!(
            r.push_rtp(&pkt(0, 1, 12, base.wrapping_add(320), 3, 160)),
            RecordOutcome::Stored
        );
        assert_eq!(
            r.push_rtp(&pkt(0, 1, 11, base.wrapping_add(160), 2, 160)),
            RecordOutcome::Stored
        );
        // seq 13 lost, 14 present.
        assert_eq!(
            r.push_rtp(&pkt(0, 1, 14, base.wrapping_add(640), 5, 160)),
            RecordOutcome::Stored
        );
        let s = r.samples();
        assert_eq!(s.len(), 800);
        assert!(s[..160].iter().all(|&b| b == 1));
        assert!(s[160..320].iter().all(|&b| b == 2));
        assert!(s[320..480].iter().all(|&b| b == 3));
        assert!(s[480..640].iter().all(|&b| b == 0xFF), "gap is silence");
        assert!(s[640..].iter().all(|&b| b == 5));
    }

    #[test]
    fn ignores_other_payloads_and_garbage() {
        let mut r = Recorder::new(Law::Pcma, 1000);
        assert_eq!(
            r.push_rtp(&[0u8; 5]),
            RecordOutcome::Ignored(Ignored::Malformed)
        );
        assert_eq!(
            r.push_rtp(&pkt(101, 1, 1, 0, 9, 4)),
            RecordOutcome::Ignored(Ignored::OtherPayload)
        );
        assert_eq!(
            r.push_rtp(&pkt(0, 1, 1, 0, 9, 160)),
            RecordOutcome::Ignored(Ignored::OtherPayload)
        );
        assert_eq!(
            r.push_rtp(&pkt(8, 1, 5, 1000, 9, 160)),
            RecordOutcome::Stored
        );
        assert_eq!(
            r.push_rtp(&pkt(8, 1, 4, 840, 9, 160)),
            RecordOutcome::Ignored(Ignored::TooLate)
        );
        assert_eq!(r.samples().len(), 160);
    }

    #[test]
    fn discontinuities_append() {
        let mut r = Recorder::new(Law::Pcmu, DEFAULT_MAX_SAMPLES);
        r.push_rtp(&pkt(0, 1, 1, 1000, 1, 160));
        // Same SSRC, timestamp jumps an hour ahead: appended, not an hour of silence.
        r.push_rtp(&pkt(0, 1, 2, 1000 + 8000 * 3600, 2, 160));
        // New SSRC with an unrelated timestamp: appended.
        r.push_rtp(&pkt(0, 2, 900, 7, 3, 160));
        let s = r.samples();
        assert_eq!(s.len(), 480);
        assert_eq!((s[0], s[160], s[320]), (1, 2, 3));
    }

    #[test]
    fn bounded_length() {
        let mut r = Recorder::new(Law::Pcmu, 400);
        for i in 0..5u16 {
            let out = r.push_rtp(&pkt(0, 1, i, u32::from(i) * 160, 7, 160));
            assert_eq!(
                out,
                if i < 3 {
                    RecordOutcome::Stored
                } else {
                    RecordOutcome::Full
                }
            );
        }
        assert_eq!(r.samples().len(), 400);
        assert!(r.is_full());
        let wav = r.to_wav().unwrap();
        let back = Prompt::from_wav(&wav).unwrap();
        assert_eq!(back.pcm8k.len(), 400);
        assert_eq!(r.into_samples().len(), 400);
    }
}
