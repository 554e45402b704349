//! WAV (RIFF WAVE) prompts in, recordings out.
//!
//! Announcements (SPEC §2: the Japanese out-of-hours message, queue prompts) are supplied by
//! people as whatever WAV their tool produced, so the reader accepts the common encodings —
//! integer PCM 8/16/24/32-bit, IEEE float 32, G.711 μ-law/A-law, mono or stereo, any rate —
//! and turns them into 8 kHz mono, the only thing G.711 carries.
//!
//! Parsing is strict and bounded because the file comes from an upload: input larger than
//! [`MAX_WAV_BYTES`] is refused before it is looked at, every chunk size is checked against the
//! bytes actually present, and a `data` chunk that claims more than the file holds is an error
//! (streaming writers that leave the size at 0xFFFFFFFF are not supported: re-save the file).
//!
//! Resampling uses a windowed-sinc low-pass (Blackman window, [`RESAMPLE_ZERO_CROSSINGS`] lobes
//! each side) evaluated directly at each output instant. The cut-off is 95 % of the lower of the
//! two Nyquist frequencies, so a 44.1/48 kHz prompt is band-limited to ~3.8 kHz before
//! decimation instead of aliasing sibilants into the voice band. It is O(taps) per output
//! sample — fine for prompts, which are converted once at load time.

use crate::media::g711::{alaw_decode, ulaw_decode, Law, FRAME_SAMPLES};

/// Largest WAV accepted: 50 MB is ~26 min of CD audio, far beyond any announcement.
pub const MAX_WAV_BYTES: usize = 50 * 1024 * 1024;
/// Sample rate of everything we play or record.
pub const TARGET_RATE_HZ: u32 = 8000;
/// Lowest/highest input sample rates accepted; outside this a header is surely corrupt.
pub const MIN_RATE_HZ: u32 = 4000;
/// See [`MIN_RATE_HZ`].
pub const MAX_RATE_HZ: u32 = 192_000;
/// Sinc lobes on each side of the resampling kernel: ~60 dB stop-band with Blackman.
pub const RESAMPLE_ZERO_CROSSINGS: f64 = 10.0;
/// Cut-off as a fraction of the lower Nyquist frequency: leaves room for the transition band.
pub const RESAMPLE_CUTOFF: f64 = 0.95;

const FORMAT_PCM: u16 = 1;
const FORMAT_IEEE_FLOAT: u16 = 3;
const FORMAT_ALAW: u16 = 6;
const FORMAT_MULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Errors from reading or writing WAV data.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WavError {
    #[error("WAV data is {0} bytes, more than the {MAX_WAV_BYTES} byte limit")]
    TooLarge(usize),
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("malformed chunk: {0}")]
    Malformed(&'static str),
    #[error("missing {0} chunk")]
    MissingChunk(&'static str),
    #[error("unsupported encoding: format tag {format}, {bits} bits")]
    Unsupported { format: u16, bits: u16 },
    #[error("unsupported channel count {0} (mono or stereo only)")]
    Channels(u16),
    #[error("unsupported sample rate {0} Hz")]
    SampleRate(u32),
}

/// An announcement ready to play: 8 kHz mono linear PCM.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prompt {
    /// Samples at 8 kHz.
    pub pcm8k: Vec<i16>,
}

impl Prompt {
    /// Parse a WAV file (see module doc for what is accepted).
    pub fn from_wav(bytes: &[u8]) -> Result<Self, WavError> {
        let wav = parse(bytes)?;
        let mono = wav.decode_mono();
        Ok(Prompt {
            pcm8k: resample_to_8k(&mono, wav.rate),
        })
    }

    /// 20 ms PCMU frames, the last one padded with silence.
    pub fn to_pcmu(&self) -> Vec<[u8; FRAME_SAMPLES]> {
        self.frames(Law::Pcmu)
    }

    /// 20 ms PCMA frames, the last one padded with silence.
    pub fn to_pcma(&self) -> Vec<[u8; FRAME_SAMPLES]> {
        self.frames(Law::Pcma)
    }

    /// 20 ms frames in `law`, the last one padded with that law's silence.
    pub fn frames(&self, law: Law) -> Vec<[u8; FRAME_SAMPLES]> {
        self.pcm8k
            .chunks(FRAME_SAMPLES)
            .map(|chunk| {
                let mut frame = [law.silence(); FRAME_SAMPLES];
                law.encode_into(chunk, &mut frame);
                frame
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Pcm,
    Float,
    Alaw,
    Mulaw,
}

struct Parsed<'a> {
    encoding: Encoding,
    channels: u16,
    bytes_per_sample: usize,
    rate: u32,
    data: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn parse(bytes: &[u8]) -> Result<Parsed<'_>, WavError> {
    if bytes.len() > MAX_WAV_BYTES {
        return Err(WavError::TooLarge(bytes.len()));
    }
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    let riff_len = u32_at(bytes, 4).ok_or(WavError::NotWave)? as usize;
    // The RIFF size covers everything after its own 8-byte header; trailing junk after it is
    // ignored (some editors append tags), but a RIFF claiming more than we have is truncated.
    let end = riff_len
        .checked_add(8)
        .filter(|&e| e <= bytes.len())
        .ok_or(WavError::Malformed("RIFF size exceeds file"))?;
    let body = bytes
        .get(12..end)
        .ok_or(WavError::Malformed("RIFF size too small"))?;

    let mut fmt: Option<(Encoding, u16, u16, u32)> = None;
    let mut data: Option<&[u8]> = None;
    let mut pos = 0usize;
    while pos < body.len() {
        let id = body
            .get(pos..pos + 4)
            .ok_or(WavError::Malformed("truncated chunk header"))?;
        let size =
            u32_at(body, pos + 4).ok_or(WavError::Malformed("truncated chunk header"))? as usize;
        let start = pos + 8;
        let chunk = start
            .checked_add(size)
            .and_then(|e| body.get(start..e))
            .ok_or(WavError::Malformed("chunk size exceeds file"))?;
        match id {
            b"fmt " => {
                if fmt.is_some() {
                    return Err(WavError::Malformed("duplicate fmt chunk"));
                }
                fmt = Some(parse_fmt(chunk)?);
            }
            b"data" => {
                if data.is_some() {
                    return Err(WavError::Malformed("duplicate data chunk"));
                }
                data = Some(chunk);
            }
            _ => {}
        }
        // Chunks are word-aligned: odd sizes carry one pad byte (RIFF spec), which may be
        // missing on the last chunk of sloppily written files.
        pos = start + size + (size & 1);
    }
    let (encoding, channels, bits, rate) = fmt.ok_or(WavError::MissingChunk("fmt "))?;
    let data = data.ok_or(WavError::MissingChunk("data"))?;
    let bytes_per_sample = usize::from(bits / 8);
    Ok(Parsed {
        encoding,
        channels,
        bytes_per_sample,
        rate,
        data,
    })
}

fn parse_fmt(chunk: &[u8]) -> Result<(Encoding, u16, u16, u32), WavError> {
    let short = WavError::Malformed("fmt chunk too short");
    let mut format = u16_at(chunk, 0).ok_or(short.clone())?;
    let channels = u16_at(chunk, 2).ok_or(short.clone())?;
    let rate = u32_at(chunk, 4).ok_or(short.clone())?;
    let block_align = u16_at(chunk, 12).ok_or(short.clone())?;
    let bits = u16_at(chunk, 14).ok_or(short)?;
    if format == FORMAT_EXTENSIBLE {
        // WAVEFORMATEXTENSIBLE: the real format tag is the first two bytes of the sub-format
        // GUID at offset 24 (the rest of the GUID is the fixed KSDATAFORMAT suffix).
        format = u16_at(chunk, 24).ok_or(WavError::Malformed("extensible fmt too short"))?;
    }
    let encoding = match (format, bits) {
        (FORMAT_PCM, 8 | 16 | 24 | 32) => Encoding::Pcm,
        (FORMAT_IEEE_FLOAT, 32) => Encoding::Float,
        (FORMAT_ALAW, 8) => Encoding::Alaw,
        (FORMAT_MULAW, 8) => Encoding::Mulaw,
        _ => return Err(WavError::Unsupported { format, bits }),
    };
    if !(1..=2).contains(&channels) {
        return Err(WavError::Channels(channels));
    }
    if !(MIN_RATE_HZ..=MAX_RATE_HZ).contains(&rate) {
        return Err(WavError::SampleRate(rate));
    }
    if u32::from(block_align) != u32::from(channels) * u32::from(bits / 8) {
        return Err(WavError::Malformed(
            "block align does not match channels × bits",
        ));
    }
    Ok((encoding, channels, bits, rate))
}

impl Parsed<'_> {
    /// Decode to mono f32 in [-1, 1]; stereo is averaged. A trailing partial frame is ignored.
    fn decode_mono(&self) -> Vec<f32> {
        let frame_bytes = self.bytes_per_sample * usize::from(self.channels);
        if frame_bytes == 0 {
            return Vec::new();
        }
        let channels = f32::from(self.channels);
        self.data
            .chunks_exact(frame_bytes)
            .map(|frame| {
                frame
                    .chunks_exact(self.bytes_per_sample)
                    .map(|s| self.sample(s))
                    .sum::<f32>()
                    / channels
            })
            .collect()
    }

    fn sample(&self, s: &[u8]) -> f32 {
        match (self.encoding, s) {
            // 8-bit WAV PCM is unsigned with a 128 offset.
            (Encoding::Pcm, [b]) => (f32::from(*b) - 128.0) / 128.0,
            (Encoding::Pcm, [a, b]) => f32::from(i16::from_le_bytes([*a, *b])) / 32768.0,
            (Encoding::Pcm, [a, b, c]) => {
                (i32::from_le_bytes([0, *a, *b, *c]) >> 8) as f32 / 8_388_608.0
            }
            (Encoding::Pcm, [a, b, c, d]) => {
                i32::from_le_bytes([*a, *b, *c, *d]) as f32 / 2_147_483_648.0
            }
            (Encoding::Float, [a, b, c, d]) => {
                let v = f32::from_le_bytes([*a, *b, *c, *d]);
                if v.is_finite() {
                    v.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            }
            (Encoding::Alaw, [b]) => f32::from(alaw_decode(*b)) / 32768.0,
            (Encoding::Mulaw, [b]) => f32::from(ulaw_decode(*b)) / 32768.0,
            _ => 0.0,
        }
    }
}

fn to_i16(v: f64) -> i16 {
    (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Resample mono `input` at `rate` Hz to 8 kHz with a Blackman-windowed sinc low-pass.
pub fn resample_to_8k(input: &[f32], rate: u32) -> Vec<i16> {
    if rate == TARGET_RATE_HZ || rate == 0 {
        return input.iter().map(|&v| to_i16(f64::from(v))).collect();
    }
    let step = f64::from(rate) / f64::from(TARGET_RATE_HZ);
    // Cut-off in cycles per input sample.
    let fc = RESAMPLE_CUTOFF * 0.5 * f64::from(rate.min(TARGET_RATE_HZ)) / f64::from(rate);
    let half_width = RESAMPLE_ZERO_CROSSINGS / (2.0 * fc);
    let out_len = (input.len() as f64 / step).floor() as usize;
    let pi = std::f64::consts::PI;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        let t = n as f64 * step;
        let first = (t - half_width).ceil().max(0.0) as usize;
        let last = ((t + half_width).floor() as usize).min(input.len().saturating_sub(1));
        let mut acc = 0.0f64;
        for (k, &x) in input.iter().enumerate().take(last + 1).skip(first) {
            let d = t - k as f64;
            let arg = 2.0 * fc * d;
            let sinc = if arg.abs() < 1e-12 {
                1.0
            } else {
                (pi * arg).sin() / (pi * arg)
            };
            // Blackman window over [-half_width, half_width].
            let w = 0.5 + 0.5 * d / half_width;
            let window = 0.42 - 0.5 * (2.0 * pi * w).cos() + 0.08 * (4.0 * pi * w).cos();
            acc += f64::from(x) * 2.0 * fc * sinc * window;
        }
        out.push(to_i16(acc));
    }
    out
}

fn riff_header(out: &mut Vec<u8>, fmt: &[u8], extra_chunks: &[(&[u8; 4], &[u8])], data: &[u8]) {
    let mut total = 4 + 8 + fmt.len() + 8 + data.len() + (data.len() & 1);
    for (_, c) in extra_chunks {
        total += 8 + c.len();
    }
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    out.extend_from_slice(fmt);
    for (id, c) in extra_chunks {
        out.extend_from_slice(*id);
        out.extend_from_slice(&(c.len() as u32).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() & 1 == 1 {
        out.push(0);
    }
}

fn fmt_chunk(format: u16, bits: u16, with_cb_size: bool) -> Vec<u8> {
    let bytes_per_sample = u32::from(bits / 8);
    let mut f = Vec::with_capacity(18);
    f.extend_from_slice(&format.to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes());
    f.extend_from_slice(&TARGET_RATE_HZ.to_le_bytes());
    f.extend_from_slice(&(TARGET_RATE_HZ * bytes_per_sample).to_le_bytes());
    f.extend_from_slice(&(bytes_per_sample as u16).to_le_bytes());
    f.extend_from_slice(&bits.to_le_bytes());
    if with_cb_size {
        f.extend_from_slice(&0u16.to_le_bytes());
    }
    f
}

/// Write 8 kHz mono 16-bit PCM as a WAV file (for recordings and tests).
pub fn write_wav_pcm16_8k(samples: &[i16]) -> Result<Vec<u8>, WavError> {
    let data_len = samples.len().saturating_mul(2);
    if data_len > MAX_WAV_BYTES {
        return Err(WavError::TooLarge(data_len));
    }
    let mut data = Vec::with_capacity(data_len);
    for s in samples {
        data.extend_from_slice(&s.to_le_bytes());
    }
    let mut out = Vec::with_capacity(data_len + 44);
    riff_header(&mut out, &fmt_chunk(FORMAT_PCM, 16, false), &[], &data);
    Ok(out)
}

/// Write G.711 payload bytes as an 8 kHz mono μ-law (or A-law) WAV, as recorded off the wire:
/// no transcoding, half the size of PCM16. Non-PCM formats carry `cbSize` and a `fact` chunk
/// (RIFF WAVE spec, "fact chunk").
pub fn write_wav_g711_8k(law: Law, payload: &[u8]) -> Result<Vec<u8>, WavError> {
    if payload.len() > MAX_WAV_BYTES {
        return Err(WavError::TooLarge(payload.len()));
    }
    let format = match law {
        Law::Pcmu => FORMAT_MULAW,
        Law::Pcma => FORMAT_ALAW,
    };
    let fact = (payload.len() as u32).to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 60);
    riff_header(
        &mut out,
        &fmt_chunk(format, 8, true),
        &[(b"fact", &fact)],
        payload,
    );
    Ok(out)
}

/// μ-law shorthand for [`write_wav_g711_8k`].
pub fn write_wav_ulaw_8k(payload: &[u8]) -> Result<Vec<u8>, WavError> {
    write_wav_g711_8k(Law::Pcmu, payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::ulaw_encode;
    use crate::media::tone::goertzel_power;

    fn wav(format: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let block = channels * (bits / 8);
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&format.to_le_bytes());
        fmt.extend_from_slice(&channels.to_le_bytes());
        fmt.extend_from_slice(&rate.to_le_bytes());
        fmt.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        fmt.extend_from_slice(&block.to_le_bytes());
        fmt.extend_from_slice(&bits.to_le_bytes());
        let mut out = Vec::new();
        riff_header(&mut out, &fmt, &[(b"LIST", b"INFOjunk")], data);
        out
    }

    fn sine(rate: u32, freq: f64, secs: f64) -> Vec<f64> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .map(|i| 0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
            .collect()
    }

    #[test]
    fn pcm16_round_trip_through_writer() {
        let samples: Vec<i16> = (0..500).map(|i| (i * 37 - 9000) as i16).collect();
        let bytes = write_wav_pcm16_8k(&samples).unwrap();
        assert_eq!(bytes.len(), 44 + 1000);
        assert_eq!(Prompt::from_wav(&bytes).unwrap().pcm8k, samples);
    }

    #[test]
    fn ulaw_writer_and_reader() {
        let codes: Vec<u8> = (0..321).map(|i| ulaw_encode((i * 50) as i16)).collect();
        let bytes = write_wav_ulaw_8k(&codes).unwrap();
        let prompt = Prompt::from_wav(&bytes).unwrap();
        assert_eq!(prompt.to_pcmu().concat()[..321], codes[..]);
        let alaw = write_wav_g711_8k(Law::Pcma, &[0xD5, 0x55]).unwrap();
        assert_eq!(Prompt::from_wav(&alaw).unwrap().pcm8k, vec![8, -8]);
    }

    #[test]
    fn every_encoding_decodes_to_the_same_signal() {
        let s = sine(8000, 440.0, 0.05);
        let expected: Vec<i16> = s.iter().map(|&v| to_i16(v)).collect();
        let mut u8s = Vec::new();
        let mut s16 = Vec::new();
        let mut s24 = Vec::new();
        let mut s32 = Vec::new();
        let mut f32s = Vec::new();
        let mut stereo = Vec::new();
        for &v in &s {
            u8s.push(((v * 127.0).round() + 128.0) as u8);
            s16.extend_from_slice(&to_i16(v).to_le_bytes());
            s24.extend_from_slice(&(((v * 8_388_607.0) as i32).to_le_bytes()[..3]));
            s32.extend_from_slice(&((v * 2_147_483_647.0) as i32).to_le_bytes());
            f32s.extend_from_slice(&(v as f32).to_le_bytes());
            // Left = signal, right = signal: the downmix must not change it.
            stereo.extend_from_slice(&to_i16(v).to_le_bytes());
            stereo.extend_from_slice(&to_i16(v).to_le_bytes());
        }
        let cases = [
            (wav(1, 1, 8000, 8, &u8s), 300),
            (wav(1, 1, 8000, 16, &s16), 1),
            (wav(1, 1, 8000, 24, &s24), 1),
            (wav(1, 1, 8000, 32, &s32), 1),
            (wav(3, 1, 8000, 32, &f32s), 1),
            (wav(1, 2, 8000, 16, &stereo), 1),
        ];
        for (i, (bytes, tol)) in cases.iter().enumerate() {
            let got = Prompt::from_wav(bytes).unwrap().pcm8k;
            assert_eq!(got.len(), expected.len(), "case {i}");
            for (g, e) in got.iter().zip(&expected) {
                assert!(
                    (i32::from(*g) - i32::from(*e)).abs() <= *tol,
                    "case {i}: {g} vs {e}"
                );
            }
        }
    }

    #[test]
    fn extensible_format_is_understood() {
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&FORMAT_EXTENSIBLE.to_le_bytes());
        fmt.extend_from_slice(&1u16.to_le_bytes());
        fmt.extend_from_slice(&8000u32.to_le_bytes());
        fmt.extend_from_slice(&16000u32.to_le_bytes());
        fmt.extend_from_slice(&2u16.to_le_bytes());
        fmt.extend_from_slice(&16u16.to_le_bytes());
        fmt.extend_from_slice(&22u16.to_le_bytes());
        fmt.extend_from_slice(&16u16.to_le_bytes());
        fmt.extend_from_slice(&4u32.to_le_bytes());
        fmt.extend_from_slice(&FORMAT_PCM.to_le_bytes());
        fmt.extend_from_slice(&[0; 14]);
        let mut out = Vec::new();
        riff_header(&mut out, &fmt, &[], &[1, 0, 2, 0]);
        assert_eq!(Prompt::from_wav(&out).unwrap().pcm8k, vec![1, 2]);
    }

    #[test]
    fn resampling_keeps_voice_band_and_removes_aliases() {
        for rate in [11_025u32, 16_000, 44_100, 48_000] {
            // 1 kHz survives at about the same level and length.
            let tone: Vec<f32> = sine(rate, 1000.0, 0.25).iter().map(|&v| v as f32).collect();
            let out = resample_to_8k(&tone, rate);
            assert!(
                (out.len() as i64 - 2000).abs() <= 1,
                "{rate}: len {}",
                out.len()
            );
            let mid = &out[400..1600];
            let peak = mid.iter().map(|&s| i32::from(s).abs()).max().unwrap();
            assert!((15_500..=17_200).contains(&peak), "{rate}: peak {peak}");
            // 5 kHz (above the new Nyquist) would alias to 3 kHz; it must be attenuated ≥ 40 dB.
            if rate > 10_000 {
                let hi: Vec<f32> = sine(rate, 5000.0, 0.25).iter().map(|&v| v as f32).collect();
                let out = resample_to_8k(&hi, rate);
                let p_alias = goertzel_power(&out[400..1600], 3000.0);
                let p_ref = goertzel_power(mid, 1000.0);
                assert!(
                    p_alias * 10_000.0 < p_ref,
                    "{rate}: alias {p_alias} ref {p_ref}"
                );
            }
        }
        // Upsampling from 4 kHz keeps the tone too.
        let tone: Vec<f32> = sine(4000, 500.0, 0.25).iter().map(|&v| v as f32).collect();
        let out = resample_to_8k(&tone, 4000);
        assert_eq!(out.len(), 2000);
        let peak = out[400..1600]
            .iter()
            .map(|&s| i32::from(s).abs())
            .max()
            .unwrap();
        assert!((15_500..=17_200).contains(&peak), "up: peak {peak}");
    }

    #[test]
    fn frames_are_padded_with_silence() {
        let p = Prompt {
            pcm8k: vec![1000; 170],
        };
        let u = p.to_pcmu();
        assert_eq!(u.len(), 2);
        assert_eq!(u[1][10..], [0xFF; 150]);
        assert_ne!(u[1][9], 0xFF);
        let a = p.to_pcma();
        assert_eq!(a[1][10..], [0xD5; 150]);
        assert!(Prompt::default().to_pcmu().is_empty());
    }

    #[test]
    fn rejects_malformed_input() {
        let good = write_wav_pcm16_8k(&[1, 2, 3]).unwrap();
        assert_eq!(Prompt::from_wav(b""), Err(WavError::NotWave));
        assert_eq!(
            Prompt::from_wav(&good[..20]),
            Err(WavError::Malformed("RIFF size exceeds file"))
        );
        // data chunk claiming more than present
        let mut bad = good.clone();
        bad[40..44].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            Prompt::from_wav(&bad),
            Err(WavError::Malformed("chunk size exceeds file"))
        );
        // huge chunk size must not overflow
        let mut bad = good.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Prompt::from_wav(&bad).is_err());
        assert_eq!(
            Prompt::from_wav(&wav(1, 3, 8000, 16, &[0; 6])),
            Err(WavError::Channels(3))
        );
        assert_eq!(
            Prompt::from_wav(&wav(1, 1, 100, 16, &[0; 2])),
            Err(WavError::SampleRate(100))
        );
        assert_eq!(
            Prompt::from_wav(&wav(2, 1, 8000, 4, &[0; 2])),
            Err(WavError::Unsupported { format: 2, bits: 4 })
        );
        assert_eq!(
            Prompt::from_wav(&vec![0; MAX_WAV_BYTES + 1]),
            Err(WavError::TooLarge(MAX_WAV_BYTES + 1))
        );
        let mut no_data = Vec::new();
        riff_header(&mut no_data, &fmt_chunk(FORMAT_PCM, 16, false), &[], &[]);
        no_data.truncate(no_data.len() - 8);
        let riff = ((no_data.len() - 8) as u32).to_le_bytes();
        no_data[4..8].copy_from_slice(&riff);
        assert_eq!(
            Prompt::from_wav(&no_data),
            Err(WavError::MissingChunk("data"))
        );
    }

    #[test]
    fn never_panics_on_truncations_and_bit_flips() {
        let good = write_wav_pcm16_8k(&[5; 64]).unwrap();
        for cut in 0..good.len() {
            let _ = Prompt::from_wav(&good[..cut]);
        }
        for i in 0..44 {
            for bit in 0..8 {
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                let _ = Prompt::from_wav(&b);
            }
        }
    }
}
