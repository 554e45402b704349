//! ITU-T G.711 companding: PCMU (μ-law, RTP PT 0) and PCMA (A-law, RTP PT 8), RFC 3551 §4.5.14.
//!
//! Encoding is arithmetic (a leading-zeros count picks the segment); decoding is a 256-entry table
//! built at compile time, because decode runs on every received sample (tone detection,
//! recordings) while encode mostly runs once per prompt at load time.
//!
//! Linear samples are 16-bit two's complement. G.711 μ-law covers 14 bits and A-law 13 bits of
//! magnitude; the low bits are simply dropped on encode and decode returns the segment midpoint,
//! which is the reference behaviour of the ITU-T G.191 software tools.

/// Samples in one 20 ms packet at 8 kHz: the RFC 3551 §4.5 default `ptime` for G.711.
pub const FRAME_SAMPLES: usize = 160;

/// μ-law code of a zero sample (positive zero). Receivers treat 0x7F (negative zero) alike.
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law code of a zero sample: the even-bit inversion (0x55) of positive zero with sign bit set.
pub const ALAW_SILENCE: u8 = 0xD5;

/// μ-law bias: makes every segment boundary a power of two (G.711 Table 2a).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude μ-law can represent after biasing without overflowing segment 7.
const ULAW_CLIP: i32 = 32_635;

/// The two G.711 laws, with their static RTP payload types (RFC 3551 Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// μ-law, used on North American and Japanese networks (PCMU).
    Pcmu,
    /// A-law, used on European networks (PCMA).
    Pcma,
}

impl Law {
    /// Static RTP payload type: RFC 3551 Table 4.
    pub const fn payload_type(self) -> u8 {
        match self {
            Law::Pcmu => 0,
            Law::Pcma => 8,
        }
    }

    /// The code of a zero sample, used to pad frames and fill gaps.
    pub const fn silence(self) -> u8 {
        match self {
            Law::Pcmu => ULAW_SILENCE,
            Law::Pcma => ALAW_SILENCE,
        }
    }

    /// Encode one linear sample.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Pcmu => ulaw_encode(sample),
            Law::Pcma => alaw_encode(sample),
        }
    }

    /// Decode one code to a linear sample.
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Pcmu => ulaw_decode(code),
            Law::Pcma => alaw_decode(code),
        }
    }

    /// Encode `pcm` into `out`, pairwise; stops at the shorter of the two.
    pub fn encode_into(self, pcm: &[i16], out: &mut [u8]) {
        for (o, &s) in out.iter_mut().zip(pcm) {
            *o = self.encode(s);
        }
    }

    /// Decode `codes` into `out`, pairwise; stops at the shorter of the two.
    pub fn decode_into(self, codes: &[u8], out: &mut [i16]) {
        for (o, &c) in out.iter_mut().zip(codes) {
            *o = self.decode(c);
        }
    }
}

/// Index (0-based) of the highest set bit; `x` must be non-zero.
fn highest_bit(x: u32) -> u32 {
    31 - x.leading_zeros()
}

/// Linear → μ-law (G.711 §3, with the 0x84 bias trick of the G.191 reference code).
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut x = i32::from(sample);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    x = x.min(ULAW_CLIP) + ULAW_BIAS;
    // x is in 0x84..=0x7FFF, so the highest bit is 7..=14 and the exponent 0..=7.
    let exponent = highest_bit(x as u32) as i32 - 7;
    let mantissa = (x >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Linear → A-law (G.711 §2; 13-bit magnitude, even bits inverted with 0x55).
pub fn alaw_encode(sample: i16) -> u8 {
    let mut x = i32::from(sample) >> 3;
    let mask = if x >= 0 {
        0xD5
    } else {
        // One's complement, not negation: -1 maps to magnitude 0 like the G.191 code.
        x = -x - 1;
        0x55
    };
    // x is in 0..=4095 here.
    let code = if x < 32 {
        x >> 1
    } else {
        let exponent = highest_bit(x as u32) as i32 - 4;
        (exponent << 4) | ((x >> exponent) & 0x0F)
    };
    (code ^ mask) as u8
}

const fn ulaw_decode_const(code: u8) -> i16 {
    let u = !code;
    let mut t = (((u & 0x0F) as i32) << 3) + ULAW_BIAS;
    t <<= ((u & 0x70) >> 4) as i32;
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

const fn alaw_decode_const(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = (a & 0x0F) as i32;
    let seg = ((a & 0x70) >> 4) as i32;
    if seg != 0 {
        t = (t + t + 1 + 32) << (seg + 2);
    } else {
        t = (t + t + 1) << 3;
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn build_table(ulaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if ulaw {
            ulaw_decode_const(i as u8)
        } else {
            alaw_decode_const(i as u8)
        };
        i += 1;
    }
    table
}

static ULAW_TO_LINEAR: [i16; 256] = build_table(true);
static ALAW_TO_LINEAR: [i16; 256] = build_table(false);

/// μ-law → linear, by table.
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(code)]
}

/// A-law → linear, by table.
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(code)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_codes() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
    }

    #[test]
    fn reference_values() {
        // Extremes from the G.711 tables (16-bit scale).
        assert_eq!(ulaw_decode(0x80), 32_124);
        assert_eq!(ulaw_decode(0x00), -32_124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_decode(0xAA), 32_256);
        assert_eq!(alaw_decode(0x2A), -32_256);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        // Segment boundaries.
        assert_eq!(ulaw_decode(0xEF), 132);
        assert_eq!(alaw_encode(256), 0xC5);
        assert_eq!(alaw_decode(0xC5), 264);
    }

    #[test]
    fn every_code_is_a_fixed_point() {
        for code in 0u8..=255 {
            let u = ulaw_decode(code);
            assert_eq!(ulaw_decode(ulaw_encode(u)), u, "ulaw code {code:#04x}");
            let a = alaw_decode(code);
            assert_eq!(alaw_encode(a), code, "alaw code {code:#04x}");
        }
        // μ-law has two zeros; every other code round-trips exactly.
        for code in 0u8..=255 {
            if code != 0x7F {
                assert_eq!(
                    ulaw_encode(ulaw_decode(code)),
                    code,
                    "ulaw code {code:#04x}"
                );
            }
        }
    }

    #[test]
    fn round_trip_error_is_bounded_over_all_i16() {
        let mut prev_u = i16::MIN;
        let mut prev_a = i16::MIN;
        for x in i16::MIN..=i16::MAX {
            let mag = i32::from(x).abs();
            let u = ulaw_decode(ulaw_encode(x));
            let a = alaw_decode(alaw_encode(x));
            // Half a quantisation step: μ-law steps are 2^(seg+3) for |x|+132 in
            // [2^(seg+7), 2^(seg+8)), so half a step is at most (|x|+132)/32; beyond the
            // clip level the error is the distance to the largest code.
            let err_u = (i32::from(u) - i32::from(x)).abs();
            let bound_u = if mag > 32_124 {
                mag - 32_124
            } else {
                (mag + 132) / 32 + 1
            };
            assert!(
                err_u <= bound_u,
                "ulaw x={x} got {u} err {err_u} > {bound_u}"
            );
            // A-law steps are 16 in segments 0/1 and 2^(seg+3) above; half a step is at most
            // |x|/32 + 8 after the 3-bit truncation.
            let err_a = (i32::from(a) - i32::from(x)).abs();
            let bound_a = if mag > 32_256 {
                mag - 32_256 + 1
            } else {
                mag / 32 + 9
            };
            assert!(
                err_a <= bound_a,
                "alaw x={x} got {a} err {err_a} > {bound_a}"
            );
            // Companding is monotonic.
            assert!(u >= prev_u && a >= prev_a, "non-monotonic at {x}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn law_helpers() {
        assert_eq!(Law::Pcmu.payload_type(), 0);
        assert_eq!(Law::Pcma.payload_type(), 8);
        let pcm = [0i16, 1000, -1000, 32_000];
        let mut codes = [0u8; 4];
        Law::Pcma.encode_into(&pcm, &mut codes);
        let mut back = [0i16; 4];
        Law::Pcma.decode_into(&codes, &mut back);
        for (x, y) in pcm.iter().zip(back) {
            assert!((x - y).abs() <= 1024);
        }
        assert_eq!(Law::Pcma.silence(), codes[0]);
    }
}
