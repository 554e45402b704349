//! Tone detection on 8 kHz linear PCM: a Goertzel filter and the fax calling-tone (CNG)
//! detector used to classify a call as fax (SPEC §3 bills fax calls like any other; the call
//! layer needs to know so it can hang up or log the outcome instead of ringing a seat).
//!
//! CNG is defined in ITU-T T.30 §5.2.1: 1100 Hz ±38 Hz, 0.5 s on, 3 s off. The detector looks
//! for one whole on-period followed by a drop in level:
//!
//! ```text
//!  Idle ──tone──► On(n) ──quiet, n ≥ MIN_ON──► Off(k) ──k = MIN_OFF──► Detected (latched)
//!   ▲  ▲           │  │                         │  │
//!   │  │           │  └─ n > MAX_ON ─► TooLong  │  └─ tone again ─► On(1)
//!   │  └── other ──┘    (n < MIN_ON)    │       └─ loud non-tone ─► Idle
//!   └────── non-tone ───────────────────┘
//! ```
//! (The first non-tone frame after the on-period may be part tone, part quiet; it moves to
//! `Off(0)` without counting as quiet.)
//!
//! A frame is a "tone frame" when its level is above [`CNG_MIN_MEAN_SQUARE`] and at least
//! [`CNG_MIN_PURITY`] of its energy lies within ±38 Hz of 1100 Hz. That purity test is what
//! rejects DTMF (two equal tones: at most ~50 % each), speech (energy spread over formants and
//! harmonics) and noise (about 1/80 of the band per 50 Hz bin). The cadence test is what rejects
//! steady tones at or near 1100 Hz such as line test tones: they never stop.

use crate::media::g711::FRAME_SAMPLES;

/// Sample rate this module works at (G.711 narrowband).
pub const SAMPLE_RATE_HZ: f64 = 8000.0;

/// CNG nominal frequency: ITU-T T.30 §5.2.1.
pub const CNG_FREQ_HZ: f64 = 1100.0;
/// T.30 tolerance on the CNG frequency.
pub const CNG_TOLERANCE_HZ: f64 = 38.0;
/// Goertzel probes across the tolerance band. A 160-sample window has a 50 Hz bin, so probes
/// 19 Hz apart keep any in-band tone within 9.5 Hz of a probe (≥ 88 % of its power seen).
const CNG_PROBES_HZ: [f64; 5] = [
    CNG_FREQ_HZ - CNG_TOLERANCE_HZ,
    CNG_FREQ_HZ - CNG_TOLERANCE_HZ / 2.0,
    CNG_FREQ_HZ,
    CNG_FREQ_HZ + CNG_TOLERANCE_HZ / 2.0,
    CNG_FREQ_HZ + CNG_TOLERANCE_HZ,
];

/// Fraction of a frame's energy that must sit at one CNG probe. A clean tone scores ~0.9–1.0
/// even after G.711 round-tripping; DTMF scores ≤ 0.5 on its strongest component and cannot
/// reach this band at all; a 1000 Hz or 1200 Hz tone leaks ~3 % into the nearest probe.
pub const CNG_MIN_PURITY: f64 = 0.6;
/// Minimum mean square (16-bit scale) of a tone frame: about −43 dBm0. T.30 CNG is sent at
/// −10 to −15 dBm0 typically; this floor keeps idle-channel noise from counting as tone.
pub const CNG_MIN_MEAN_SQUARE: f64 = 12_800.0;
/// A quiet frame after the tone must be at least this many times below the tone's mean level
/// (15 dB): the "3 s off" of T.30, without requiring digital silence on a noisy line.
pub const CNG_OFF_DROP_RATIO: f64 = 31.6;
/// Shortest accepted on-period: 400 ms (T.30 says 0.5 s ±15 %; one 20 ms frame may be lost to
/// the tone starting mid-frame and another to it ending mid-frame).
pub const CNG_MIN_ON_FRAMES: u32 = 20;
/// Longest accepted on-period: 700 ms. Anything longer is a steady tone, not CNG.
pub const CNG_MAX_ON_FRAMES: u32 = 35;
/// Quiet needed after the on-period before reporting: 200 ms. Enough to tell a cadence from a
/// tone with a short glitch, and far shorter than the 3 s off-period so detection is quick.
pub const CNG_MIN_OFF_FRAMES: u32 = 10;

/// Goertzel power of `samples` at `freq_hz` (sample rate [`SAMPLE_RATE_HZ`]).
///
/// Returns |X(f)|², which for a sine of amplitude A filling N samples is about (N·A/2)².
pub fn goertzel_power(samples: &[i16], freq_hz: f64) -> f64 {
    let [p] = goertzel_powers(samples, &[freq_hz]);
    p
}

/// [`goertzel_power`] at several frequencies in one pass over `samples`, with the same result
/// bit for bit. Each recurrence depends on its previous step, so one frequency at a time is
/// bound by floating-point latency; interleaving independent ones lets the CPU overlap them
/// (the CNG detector runs on every 20 ms frame of every call's caller leg).
pub fn goertzel_powers<const N: usize>(samples: &[i16], freqs_hz: &[f64; N]) -> [f64; N] {
    let coeff = freqs_hz.map(|f| 2.0 * (2.0 * std::f64::consts::PI * f / SAMPLE_RATE_HZ).cos());
    let (mut s1, mut s2) = ([0.0f64; N], [0.0f64; N]);
    for &x in samples {
        let x = f64::from(x);
        for k in 0..N {
            let s0 = x + coeff[k] * s1[k] - s2[k];
            s2[k] = s1[k];
            s1[k] = s0;
        }
    }
    std::array::from_fn(|k| (s1[k] * s1[k] + s2[k] * s2[k] - coeff[k] * s1[k] * s2[k]).max(0.0))
}

/// Fraction (0..=1, approximately) of the energy of `samples` that is at `freq_hz`.
///
/// For N samples of total energy E, a pure sine gives |X|² ≈ N·E/2, hence the normalisation.
pub fn tone_purity(samples: &[i16], freq_hz: f64, energy: f64) -> f64 {
    if energy <= 0.0 || samples.is_empty() {
        return 0.0;
    }
    goertzel_power(samples, freq_hz) / (energy * samples.len() as f64 / 2.0)
}

/// What the detector has concluded so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CngStatus {
    /// No complete CNG cadence seen yet.
    Listening,
    /// A CNG on-period followed by quiet was seen; latched for the life of the detector.
    Detected,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CngState {
    Idle,
    On { frames: u32, energy_sum: f64 },
    TooLong,
    Off { frames: u32, on_mean: f64 },
    Detected,
}

/// Stateful T.30 CNG detector; feed it the caller's decoded audio as it arrives.
#[derive(Debug, Clone)]
pub struct CngDetector {
    buf: [i16; FRAME_SAMPLES],
    filled: usize,
    state: CngState,
}

impl Default for CngDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl CngDetector {
    /// A detector in the listening state.
    pub fn new() -> Self {
        Self {
            buf: [0; FRAME_SAMPLES],
            filled: 0,
            state: CngState::Idle,
        }
    }

    /// Current conclusion.
    pub fn status(&self) -> CngStatus {
        if self.state == CngState::Detected {
            CngStatus::Detected
        } else {
            CngStatus::Listening
        }
    }

    /// Feed 8 kHz samples of any length (normally one 20 ms frame of 160). Samples are analysed
    /// in 160-sample blocks; a partial block waits for the next call. No allocation.
    pub fn feed(&mut self, samples: &[i16]) -> CngStatus {
        let mut rest = samples;
        while !rest.is_empty() && self.state != CngState::Detected {
            let take = (FRAME_SAMPLES - self.filled).min(rest.len());
            let (head, tail) = rest.split_at(take);
            if let Some(dst) = self.buf.get_mut(self.filled..self.filled + take) {
                dst.copy_from_slice(head);
            }
            self.filled += take;
            rest = tail;
            if self.filled == FRAME_SAMPLES {
                self.filled = 0;
                let frame = self.buf;
                self.analyse(&frame);
            }
        }
        self.status()
    }

    fn analyse(&mut self, frame: &[i16]) {
        let energy: f64 = frame.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let mean_square = energy / frame.len() as f64;
        // Below the level floor a frame is not tone whatever its purity: skip the filters.
        // Otherwise the same ratio as `tone_purity` per probe (energy > 0 here).
        let is_tone = mean_square >= CNG_MIN_MEAN_SQUARE && {
            let norm = energy * frame.len() as f64 / 2.0;
            let purity = goertzel_powers(frame, &CNG_PROBES_HZ)
                .into_iter()
                .map(|p| p / norm)
                .fold(0.0f64, f64::max);
            purity >= CNG_MIN_PURITY
        };

        self.state = match self.state {
            CngState::Detected => CngState::Detected,
            CngState::Idle | CngState::TooLong if is_tone => CngState::On {
                frames: 1,
                energy_sum: mean_square,
            },
            CngState::Idle => CngState::Idle,
            CngState::TooLong => CngState::Idle,
            CngState::On { frames, energy_sum } if is_tone => {
                if frames + 1 > CNG_MAX_ON_FRAMES {
                    CngState::TooLong
                } else {
                    CngState::On {
                        frames: frames + 1,
                        energy_sum: energy_sum + mean_square,
                    }
                }
            }
            CngState::On { frames, energy_sum } => {
                let on_mean = energy_sum / f64::from(frames);
                if frames < CNG_MIN_ON_FRAMES {
                    CngState::Idle
                } else if mean_square * CNG_OFF_DROP_RATIO <= on_mean {
                    Self::after_quiet_frame(1, on_mean)
                } else {
                    // The frame where the tone stops is part tone, part quiet: neither test
                    // holds, so it is let through once without counting as quiet.
                    CngState::Off { frames: 0, on_mean }
                }
            }
            CngState::Off { frames, on_mean } => {
                if !is_tone && mean_square * CNG_OFF_DROP_RATIO <= on_mean {
                    Self::after_quiet_frame(frames + 1, on_mean)
                } else if is_tone {
                    // Tone came back too soon for T.30's 3 s off-period: start over.
                    CngState::On {
                        frames: 1,
                        energy_sum: mean_square,
                    }
                } else {
                    CngState::Idle
                }
            }
        };
    }

    fn after_quiet_frame(frames: u32, on_mean: f64) -> CngState {
        if frames >= CNG_MIN_OFF_FRAMES {
            CngState::Detected
        } else {
            CngState::Off { frames, on_mean }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::Law;

    /// Small deterministic PRNG (xorshift32) for noise.
    struct XorShift(u32);
    impl XorShift {
        fn next(&mut self) -> u32 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            self.0 = x;
            x
        }
        /// Roughly uniform in [-1, 1).
        fn unit(&mut self) -> f64 {
            f64::from(self.next()) / f64::from(u32::MAX) * 2.0 - 1.0
        }
    }

    fn sine(freqs: &[f64], amp: f64, n: usize, phase_start: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = (i + phase_start) as f64 / SAMPLE_RATE_HZ;
                let v: f64 = freqs
                    .iter()
                    .map(|f| (2.0 * std::f64::consts::PI * f * t).sin())
                    .sum();
                (v * amp).round() as i16
            })
            .collect()
    }

    /// Pass through G.711 as the real network would.
    fn via_g711(law: Law, pcm: &[i16]) -> Vec<i16> {
        pcm.iter().map(|&s| law.decode(law.encode(s))).collect()
    }

    /// T.30 CNG cadence: `cycles` × (on_ms of tone, off_ms of low noise).
    fn cng_signal(freq: f64, on_ms: usize, off_ms: usize, cycles: usize) -> Vec<i16> {
        let mut rng = XorShift(0x1234_5678);
        let mut out = Vec::new();
        for _ in 0..cycles {
            let on = on_ms * 8;
            out.extend(sine(&[freq], 4000.0, on, out.len()));
            out.extend((0..off_ms * 8).map(|_| (rng.unit() * 30.0) as i16));
        }
        out
    }

    fn run(detector: &mut CngDetector, pcm: &[i16]) -> CngStatus {
        for frame in pcm.chunks(FRAME_SAMPLES) {
            detector.feed(frame);
        }
        detector.status()
    }

    fn detects(pcm: &[i16]) -> bool {
        run(&mut CngDetector::new(), pcm) == CngStatus::Detected
    }

    #[test]
    fn interleaved_goertzel_matches_one_at_a_time() {
        let mut rng = XorShift(99);
        let s: Vec<i16> = (0..160).map(|_| (rng.unit() * 20_000.0) as i16).collect();
        let one_by_one = CNG_PROBES_HZ.map(|f| {
            let w = 2.0 * std::f64::consts::PI * f / SAMPLE_RATE_HZ;
            let coeff = 2.0 * w.cos();
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for &x in &s {
                let s0 = f64::from(x) + coeff * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0)
        });
        assert_eq!(goertzel_powers(&s, &CNG_PROBES_HZ), one_by_one);
        assert_eq!(goertzel_power(&s, CNG_FREQ_HZ), one_by_one[2]);
    }

    #[test]
    fn goertzel_peaks_at_the_tone() {
        let s = sine(&[1100.0], 1000.0, 160, 0);
        let energy: f64 = s.iter().map(|&x| f64::from(x).powi(2)).sum();
        assert!(tone_purity(&s, 1100.0, energy) > 0.95);
        assert!(tone_purity(&s, 1300.0, energy) < 0.05);
        assert_eq!(goertzel_power(&[], 1100.0), 0.0);
        assert_eq!(tone_purity(&[], 1100.0, 0.0), 0.0);
    }

    #[test]
    fn detects_cng_through_g711() {
        for law in [Law::Pcmu, Law::Pcma] {
            let pcm = via_g711(law, &cng_signal(1100.0, 500, 3000, 2));
            let mut d = CngDetector::new();
            // Not yet during the first on-period.
            assert_eq!(run(&mut d, &pcm[..8 * 450]), CngStatus::Listening);
            // Detected during the first off-period, well before the second tone.
            assert_eq!(run(&mut d, &pcm[8 * 450..8 * 900]), CngStatus::Detected);
            assert_eq!(run(&mut d, &pcm[8 * 900..]), CngStatus::Detected);
        }
    }

    #[test]
    fn detects_cng_at_tolerance_edges_and_odd_frame_sizes() {
        for f in [1063.0, 1137.0] {
            assert!(detects(&cng_signal(f, 500, 1000, 1)), "{f} Hz");
        }
        // Tone starting mid-frame, fed in 97-sample pieces.
        let mut pcm = vec![0i16; 77];
        pcm.extend(cng_signal(1100.0, 500, 1000, 1));
        let mut d = CngDetector::new();
        for piece in pcm.chunks(97) {
            d.feed(piece);
        }
        assert_eq!(d.status(), CngStatus::Detected);
    }

    #[test]
    fn rejects_wrong_cadence() {
        // Too short a burst (200 ms) and a 1.5 s tone.
        assert!(!detects(&cng_signal(1100.0, 200, 3000, 3)));
        assert!(!detects(&cng_signal(1100.0, 1500, 3000, 2)));
    }

    #[test]
    fn rejects_steady_test_tones() {
        for f in [1000.0, 1100.0, 1200.0] {
            let pcm = via_g711(Law::Pcmu, &sine(&[f], 8000.0, 8000 * 5, 0));
            assert!(!detects(&pcm), "{f} Hz steady");
        }
        // 1000/1200 Hz with the CNG cadence are out of band.
        for f in [1000.0, 1200.0] {
            assert!(!detects(&cng_signal(f, 500, 3000, 3)), "{f} Hz cadenced");
        }
    }

    #[test]
    fn rejects_dtmf() {
        // Digits 1, 5, 9, # — 100 ms on/100 ms off, and held 500 ms with the CNG cadence.
        let digits = [
            (697.0, 1209.0),
            (770.0, 1336.0),
            (852.0, 1477.0),
            (941.0, 1477.0),
        ];
        for (lo, hi) in digits {
            let mut pcm = Vec::new();
            for _ in 0..5 {
                pcm.extend(sine(&[lo, hi], 6000.0, 800, pcm.len()));
                pcm.extend(vec![0i16; 800]);
            }
            for _ in 0..2 {
                pcm.extend(sine(&[lo, hi], 6000.0, 4000, pcm.len()));
                pcm.extend(vec![0i16; 24_000]);
            }
            assert!(!detects(&via_g711(Law::Pcma, &pcm)), "DTMF {lo}+{hi}");
        }
    }

    #[test]
    fn rejects_silence_and_noise() {
        assert!(!detects(&vec![0i16; 8000 * 5]));
        let mut rng = XorShift(42);
        let noise: Vec<i16> = (0..8000 * 5)
            .map(|_| (rng.unit() * 8000.0) as i16)
            .collect();
        assert!(!detects(&noise));
        // Noise bursts with the CNG cadence.
        let mut bursts = Vec::new();
        for _ in 0..3 {
            bursts.extend((0..4000).map(|_| (rng.unit() * 8000.0) as i16));
            bursts.extend(vec![0i16; 24_000]);
        }
        assert!(!detects(&bursts));
    }

    #[test]
    fn rejects_synthetic_speech() {
        // A voiced "speech" signal: 120–220 Hz pitch with harmonics shaped by formants that glide
        // through the CNG band, syllable-rate (4 Hz) amplitude modulation and pauses.
        let mut rng = XorShift(7);
        let mut pcm = Vec::new();
        let mut phase = 0.0f64;
        for i in 0..8000 * 6 {
            let t = i as f64 / SAMPLE_RATE_HZ;
            let pitch = 170.0 + 50.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
            phase += 2.0 * std::f64::consts::PI * pitch / SAMPLE_RATE_HZ;
            let f1 = 600.0 + 300.0 * (2.0 * std::f64::consts::PI * 1.3 * t).sin();
            let f2 = 1100.0 + 500.0 * (2.0 * std::f64::consts::PI * 0.9 * t).sin();
            let mut v = 0.0;
            for h in 1..20 {
                let fh = pitch * f64::from(h);
                let w1 = 1.0 / (1.0 + ((fh - f1) / 120.0).powi(2));
                let w2 = 0.7 / (1.0 + ((fh - f2) / 150.0).powi(2));
                v += (w1 + w2) * (phase * f64::from(h)).sin();
            }
            let syllable = (2.0 * std::f64::consts::PI * 4.0 * t).sin().max(0.0);
            let pause = if (t % 2.0) > 1.6 { 0.0 } else { 1.0 };
            pcm.push(((v * syllable * pause * 5000.0) + rng.unit() * 50.0) as i16);
        }
        assert!(!detects(&via_g711(Law::Pcmu, &pcm)));
        // And a single strong formant parked on 1100 Hz with a 3 Hz vibrato over 150 Hz pitch:
        // many harmonics, so no single probe carries most of the energy.
        let vowel: Vec<i16> = (0..8000 * 3)
            .map(|i| {
                let t = i as f64 / SAMPLE_RATE_HZ;
                let mut v = 0.0;
                for h in 1..30 {
                    let fh = 150.0 * f64::from(h);
                    let w = 1.0 / (1.0 + ((fh - 1100.0) / 200.0).powi(2));
                    v += w * (2.0 * std::f64::consts::PI * fh * t).sin();
                }
                (v * 6000.0 * (0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * t).sin())) as i16
            })
            .collect();
        assert!(!detects(&vowel));
    }

    #[test]
    fn detection_is_latched() {
        let mut d = CngDetector::new();
        run(&mut d, &cng_signal(1100.0, 500, 500, 1));
        assert_eq!(d.status(), CngStatus::Detected);
        assert_eq!(d.feed(&[0; 160]), CngStatus::Detected);
        assert_eq!(CngDetector::default().status(), CngStatus::Listening);
    }
}
