//! Test audio: sound made by sox (Debian `sox`), packed as G.711 RTP into a pcap file that
//! SIPp's `play_pcap_audio` sends as the caller's voice.

use std::path::Path;
use std::process::Command;

/// Runs sox with `args` (inputs and effects; the output is appended) and returns the result
/// as raw 8 kHz mono µ-law bytes.
pub fn sox_ulaw(args: &[&str]) -> Vec<u8> {
    let (inputs, effects) = match args.iter().position(|a| *a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let out = Command::new("sox")
        .args(inputs)
        .args(["-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw", "-"])
        .args(effects)
        .output()
        .expect("run sox (Debian package sox)");
    assert!(
        out.status.success(),
        "sox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Writes `ulaw` as RTP (payload type 0, 20 ms packets, 160 samples each) in a pcap file
/// (Ethernet / IPv4 / UDP, timestamps 20 ms apart), the form SIPp replays with timing.
pub fn write_rtp_pcap(path: &Path, ulaw: &[u8]) {
    let mut f = Vec::with_capacity(ulaw.len() * 2 + 24);
    // Global header: magic, v2.4, tz 0, sigfigs 0, snaplen 65535, DLT_EN10MB.
    f.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for (i, chunk) in ulaw.chunks(160).enumerate() {
        let seq = i as u16;
        let mut rtp = vec![0x80, 0x00];
        rtp.extend_from_slice(&seq.to_be_bytes());
        rtp.extend_from_slice(&((i as u32) * 160).to_be_bytes());
        rtp.extend_from_slice(&0x5eed_0001_u32.to_be_bytes());
        rtp.extend_from_slice(chunk);
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut pkt = Vec::with_capacity(14 + ip_len);
        pkt.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[127, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[127, 0, 0, 1]);
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        pkt.extend_from_slice(&ip);
        pkt.extend_from_slice(&40000u16.to_be_bytes());
        pkt.extend_from_slice(&40002u16.to_be_bytes());
        pkt.extend_from_slice(&(udp_len as u16).to_be_bytes());
        pkt.extend_from_slice(&0u16.to_be_bytes());
        pkt.extend_from_slice(&rtp);
        let micros = i as u64 * 20_000;
        f.extend_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        f.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        f.extend_from_slice(&pkt);
    }
    std::fs::write(path, f).expect("write pcap");
}
